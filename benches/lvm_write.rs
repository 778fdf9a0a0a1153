//! LVM writing benchmark: `lvcreate` + `lvremove` of a small LV in a VG that holds 1,000
//! LVs, `dmsnap lvm` against lvm2's own tools, in the same run on the same VG.
//!
//! Setup: one sparse loop device (8 GiB), made a PV and a VG by `dmsnap`, then 1,000
//! inactive one-extent LVs added through the library in one commit (about 300 KiB of
//! metadata, which every later command reads, parses, prints and writes twice). Each
//! round then times, as whole processes:
//! - `dmsnap`: `dmsnap lvm lvcreate VG/bench -L 4M` (activated and zeroed, as lvm2) then
//!   `dmsnap lvm lvremove VG/bench`;
//! - `lvm2`: `lvcreate -y -n bench -L 4M VG` then `lvremove -y VG/bench`;
//!
//! both with `--devices` naming the loop device (so neither scans other devices), the
//! sides alternating first each round; medians are reported, and the seqno is checked to
//! have moved by exactly the commits made.
//!
//! Needs root, device-mapper, lvm2 and the dmsnap binary (`DMSNAP_BIN`, default
//! `/usr/local/bin/dmsnap`). In the VM:
//! `cargo build --release --example dmsnap && cargo bench --no-run --bench lvm_write`, then
//! `scripts/vm/run.sh --add target/release/examples/dmsnap:/usr/local/bin/dmsnap --add
//! <bench exe>:/b -- '/b --bench'`. `DM_BENCH_ROUNDS` (default 7) sets the rounds and
//! `DM_BENCH_LVS` (default 1000) the LVs in the VG. `DM_BENCH_HOOK`, a shell command, runs
//! once after the setup and before the rounds with `VG` and `DEV` in its environment (for
//! profiling one command, e.g. under `strace -f -tt -T`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use devmapper::lvm::LvmId;
use devmapper::lvm::model::{AllocPolicy, LogicalVolume};
use devmapper::lvm::write::alloc::{AllocRequest, allocate};
use devmapper::lvm::write::session::{VgSession, WriteOptions};

#[allow(dead_code)]
#[path = "../tests/privileged/common.rs"]
mod common;

fn run(bin: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn seqno(vg: &str, devs: &str) -> u64 {
    let out = Command::new("lvm")
        .args([
            "vgs",
            "--noheadings",
            "-o",
            "vg_seqno",
            "--devices",
            devs,
            vg,
        ])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if let Err(why) = devmapper::availability() {
        println!("SKIP lvm_write: {why}");
        return;
    }
    let bin = std::env::var("DMSNAP_BIN").unwrap_or_else(|_| "/usr/local/bin/dmsnap".into());
    if !PathBuf::from(&bin).exists() {
        println!("SKIP lvm_write: no dmsnap binary at {bin} (set DMSNAP_BIN)");
        return;
    }
    if Command::new("lvm").arg("version").output().is_err() {
        println!("SKIP lvm_write: lvm2 is not installed");
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("DM_BENCH_ROUNDS", 7).max(1);
    let nlvs = env("DM_BENCH_LVS", 1000);
    let dev = common::LoopDev::new(8 << 30);
    let p = dev.path.to_str().unwrap().to_string();
    let vg = format!("bench{}", std::process::id());
    run(&bin, &["lvm", "pvcreate", &p]);
    run(&bin, &["lvm", "vgcreate", &vg, &p, "--devices", &p]);
    // 1,000 inactive LVs, one commit.
    let t = Instant::now();
    let mut opts = WriteOptions::new("lvm_write bench setup");
    opts.devices = Some(vec![dev.path.clone()]);
    let mut s = VgSession::open(&vg, &opts).unwrap();
    let mut v = s.vg().clone();
    for i in 0..nlvs {
        let name = format!("lv{i:04}");
        let segments = allocate(&v, &AllocRequest::linear(&name, 1)).unwrap();
        v.lvs.push(LogicalVolume {
            name,
            id: LvmId::generate().unwrap(),
            status: ["READ", "WRITE", "VISIBLE"].map(String::from).into(),
            flags: Default::default(),
            tags: Vec::new(),
            read_ahead: None,
            major: None,
            minor: None,
            creation_time: Some(1_700_000_000),
            creation_host: Some("bench".into()),
            lock_args: None,
            allocation_policy: AllocPolicy::Inherit,
            profile: None,
            segments,
        });
    }
    s.precommit(v).unwrap();
    s.commit().unwrap();
    drop(s);
    println!(
        "lvm_write: VG {vg} with {nlvs} LVs set up in {}",
        ms(t.elapsed())
    );
    if let Ok(hook) = std::env::var("DM_BENCH_HOOK") {
        let st = Command::new("sh")
            .args(["-c", &hook])
            .env("VG", &vg)
            .env("DEV", &p)
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .status()
            .expect("run DM_BENCH_HOOK");
        println!("lvm_write: DM_BENCH_HOOK exited with {st}");
    }
    let lv = format!("{vg}/bench");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let start = seqno(&vg, &p);
    let mut lvm2_commits = 0;
    for r in 0..rounds {
        let dmsnap_side = || {
            run(&bin, &["lvm", "lvcreate", &lv, "-L", "4M", "--devices", &p])
                + run(&bin, &["lvm", "lvremove", &lv, "--devices", &p])
        };
        let mut lvm2_side = || {
            let s0 = seqno(&vg, &p);
            let d = run(
                "lvm",
                &[
                    "lvcreate",
                    "-y",
                    "-n",
                    "bench",
                    "-L",
                    "4M",
                    "--devices",
                    &p,
                    &vg,
                ],
            ) + run("lvm", &["lvremove", "-y", "--devices", &p, &lv]);
            lvm2_commits += seqno(&vg, &p) - s0;
            d
        };
        if r % 2 == 0 {
            ours.push(dmsnap_side());
            theirs.push(lvm2_side());
        } else {
            theirs.push(lvm2_side());
            ours.push(dmsnap_side());
        }
    }
    let end = seqno(&vg, &p);
    assert_eq!(
        end - start,
        2 * rounds as u64 + lvm2_commits,
        "every commit counted once"
    );
    let (o, t) = (median(ours.clone()), median(theirs.clone()));
    println!(
        "lvm_write: lvcreate+lvremove of a 4 MiB LV in a VG of {nlvs} LVs, {rounds} rounds, median"
    );
    println!(
        "  dmsnap  {:>10}  (min {}, max {})",
        ms(o),
        ms(*ours.iter().min().unwrap()),
        ms(*ours.iter().max().unwrap())
    );
    println!(
        "  lvm2    {:>10}  (min {}, max {})",
        ms(t),
        ms(*theirs.iter().min().unwrap()),
        ms(*theirs.iter().max().unwrap())
    );
    println!(
        "  dmsnap / lvm2 = {:.2}; lvm2 made {} commits per round, dmsnap 2",
        o.as_secs_f64() / t.as_secs_f64(),
        lvm2_commits as f64 / rounds as f64
    );
    let _ = Command::new("lvm")
        .args(["vgremove", "-ff", "-y", "--devices", &p, &vg])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output();
}
