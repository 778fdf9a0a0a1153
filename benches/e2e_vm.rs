//! End-to-end benches against the kernel (issue 15), in the VM: whole `dmsnap` commands
//! against lvm2 and dmsetup doing the same, alternating which goes first, with peak memory.
//!
//! * a VG of 1,000 linear LVs on a loop device (made with `pvcreate`, `vgcreate` and one
//!   `vgcfgrestore` of generated metadata): `dmsnap lvm activate` against
//!   `vgchange -ay`, and `dmsnap lvm deactivate` against `vgchange -an`;
//! * with those LVs active, `dmsnap lvm lvs bench-vg` against `lvs bench-vg` (both scan
//!   every block device, as neither is given the PV);
//! * 5,000 dm devices (`zero` tables, made by one `dmsetup create --concise`):
//!   `dmsnap ls` against `dmsetup ls` and against the same information from dmsetup
//!   (`dmsetup info -c ...` and `dmsetup table`).
//!
//! Run (root, device-mapper, lvm2; the VM has them):
//! `cargo build --release --example dmsnap && cargo bench --no-run --bench e2e_vm`, then
//! `scripts/vm/run.sh --timeout 2400 --add target/release/examples/dmsnap:/usr/local/bin/dmsnap
//! --add <bench executable>:/vmbench/e2e_vm -- 'DMSNAP_BIN=/usr/local/bin/dmsnap
//! /vmbench/e2e_vm --bench'`. `E2E_LVS` and `E2E_DEVICES` change the sizes, `E2E_ROUNDS`
//! the rounds (default 3), `E2E_ONLY=activate|lvs|ls` runs one part. `DMSNAP_IOCTL_STATS=1`
//! with `E2E_STDERR=1` makes each `dmsnap` run print its ioctls (count and time per
//! command) to stderr, for profiling.

mod e2e;

use std::process::Command;

use e2e::run::{compare, dmsnap, measure, report};

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A VG `bench-vg` of `lvs` one-extent LVs on a new loop device; returns the device.
fn make_vg(lvs: usize) -> String {
    sh("truncate -s 16G /tmp/pv.img");
    let dev = sh("losetup --find --show /tmp/pv.img");
    sh(&format!(
        "pvcreate -q -y {dev} && vgcreate -q bench-vg {dev}"
    ));
    sh("vgcfgbackup -q -f /tmp/vg0.txt bench-vg");
    let text = std::fs::read_to_string("/tmp/vg0.txt").expect("backup");
    let close = text.find("\n}\n").expect("end of the VG section");
    let mut lv_text = String::from("\n\tlogical_volumes {\n");
    for i in 0..lvs {
        let id: String = format!("{i:032}")
            .bytes()
            .enumerate()
            .map(|(k, b)| if k < 4 { 'L' } else { b as char })
            .collect();
        let id = format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &id[..6],
            &id[6..10],
            &id[10..14],
            &id[14..18],
            &id[18..22],
            &id[22..26],
            &id[26..]
        );
        lv_text += &format!(
            "\t\tlv{i} {{\n\t\t\tid = \"{id}\"\n\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n\
             \t\t\tflags = []\n\t\t\tcreation_time = 1718000000\n\t\t\tcreation_host = \"vm\"\n\
             \t\t\tsegment_count = 1\n\t\t\tsegment1 {{\n\t\t\t\tstart_extent = 0\n\
             \t\t\t\textent_count = 1\n\t\t\t\ttype = \"striped\"\n\t\t\t\tstripe_count = 1\n\
             \t\t\t\tstripes = [\n\t\t\t\t\t\"pv0\", {i}\n\t\t\t\t]\n\t\t\t}}\n\t\t}}\n"
        );
    }
    lv_text += "\t}\n";
    let new = format!("{}{}{}", &text[..close], lv_text, &text[close..]);
    std::fs::write("/tmp/vg1.txt", new).expect("write");
    sh("vgcfgrestore -q -f /tmp/vg1.txt bench-vg");
    dev
}

fn main() {
    e2e::run::wrapper_main();
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("E2E_ROUNDS", 3);
    let lvs = env("E2E_LVS", 1000);
    let devices = env("E2E_DEVICES", 5000);
    let only = std::env::var("E2E_ONLY").ok();
    let want = |b: &str| only.as_deref().is_none_or(|o| o == b);
    let bin = dmsnap();
    println!("dmsnap: {bin}");
    let dev = make_vg(lvs);
    println!("VG bench-vg: {lvs} LVs on {dev}");
    if want("activate") {
        bench_activate(&bin, &dev, lvs, rounds);
    }
    if want("lvs") {
        bench_lvs(&bin, lvs, rounds);
    }
    if want("ls") {
        bench_ls(&bin, devices, rounds);
    }
}

fn bench_activate(bin: &str, dev: &str, lvs: usize, rounds: usize) {
    let (bin, dev) = (bin.to_string(), dev.to_string());

    // Activation: each side activates, the other side's deactivation cleans up (and is
    // measured too), alternating which pair goes first.
    let d_act = vec![
        bin.clone(),
        "lvm".into(),
        "activate".into(),
        "bench-vg".into(),
        dev.clone(),
    ];
    let d_deact = vec![
        bin.clone(),
        "lvm".into(),
        "deactivate".into(),
        "bench-vg".into(),
        dev.clone(),
    ];
    let l_act = strs(&["vgchange", "-ay", "bench-vg"]);
    let l_deact = strs(&["vgchange", "-an", "bench-vg"]);
    let (mut da, mut dd, mut la, mut ld) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        for k in 0..2 {
            if (k + r) % 2 == 0 {
                da.push(measure(&d_act, false));
                assert_eq!(sh("dmsetup ls | grep -c '^bench--vg-'"), lvs.to_string());
                ld.push(measure(&l_deact, false));
            } else {
                la.push(measure(&l_act, false));
                assert_eq!(sh("dmsetup ls | grep -c '^bench--vg-'"), lvs.to_string());
                dd.push(measure(&d_deact, false));
            }
            assert_eq!(sh("dmsetup ls | grep -c '^bench--vg-' || true"), "0");
        }
    }
    let med = |v: &mut Vec<e2e::run::Sample>| {
        v.sort_by_key(|s| s.wall);
        v[v.len() / 2]
    };
    report(
        &format!("lvm activate, {lvs} LVs"),
        med(&mut da),
        "vgchange -ay",
        med(&mut la),
    );
    report(
        &format!("lvm deactivate, {lvs} LVs"),
        med(&mut dd),
        "vgchange -an",
        med(&mut ld),
    );
}

fn bench_lvs(bin: &str, lvs: usize, rounds: usize) {
    // Listing the LVs, active.
    sh("vgchange -ay bench-vg >/dev/null");
    let d_lvs = vec![
        bin.to_string(),
        "lvm".into(),
        "lvs".into(),
        "bench-vg".into(),
    ];
    let l_lvs = strs(&["lvs", "bench-vg"]);
    let r = compare(&[&d_lvs, &l_lvs], rounds);
    report(&format!("lvm lvs, {lvs} LVs active"), r[0], "lvs", r[1]);
    sh("vgchange -an bench-vg >/dev/null");
}

fn bench_ls(bin: &str, devices: usize, rounds: usize) {
    let bin = bin.to_string();
    // Listing many devices.
    let concise: Vec<String> = (0..devices).map(|i| format!("zz{i},,,,0 8 zero")).collect();
    std::fs::write("/tmp/concise.txt", concise.join(";")).expect("write");
    sh("dmsetup create --concise \"$(cat /tmp/concise.txt)\"");
    let total: usize = sh("dmsetup ls | wc -l").parse().expect("count");
    let d_ls = vec![bin.clone(), "ls".into()];
    let l_ls = strs(&["dmsetup", "ls"]);
    // The same information as `dmsnap ls` prints (uuid, open count, state, target types).
    let l_full = strs(&[
        "sh",
        "-c",
        "dmsetup info -c --noheadings -o name,uuid,major,minor,open,attr && dmsetup table",
    ]);
    let r = compare(&[&d_ls, &l_ls, &l_full], rounds);
    report(&format!("ls, {total} dm devices"), r[0], "dmsetup ls", r[1]);
    report(
        &format!("ls, {total} dm devices"),
        r[0],
        "dmsetup info -c + dmsetup table",
        r[2],
    );
    sh("dmsetup remove_all");
}
