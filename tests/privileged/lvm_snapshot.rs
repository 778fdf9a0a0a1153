//! LVM2 snapshots made and removed by `dmsnap lvm snapshot` / `dmsnap lvm lvremove`, with
//! lvm2 as the oracle, on loop devices and the real kernel:
//!
//! - a live snapshot of a mounted ext4 origin under an fsync-ing writer: lvm2's `lvs`
//!   shows it, `dmsetup` shows the same stack (names, targets, uuids) lvm2 builds for a
//!   snapshot of another LV in the same VG, the snapshot passes `e2fsck -n`, mounts
//!   read-only and holds exactly the files from before, our Data% equals lvm2's; lvm2
//!   removes ours and we remove lvm2's;
//! - overflow: a 20M snapshot receiving more than 20M is invalid for lvm2 and for us, the
//!   origin keeps working, removal works;
//! - lvm2's lvcreate-small-snap.sh (3-chunk minimum; a refusal changes nothing) and
//!   snapshot-usage.sh (maximum sizes 12.00k, 384.00k, 28.00k; Data% 12.00);
//! - lvm2's snapshot-reactivate.sh: the snapshot's content stays the same across origin
//!   writes and deactivation/activation by dmsnap and by lvm2.

use crate::common::{lvm, lvm_try};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{self, LoopDev, assert_nothing_suspended, output};

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Proc::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Ctx {
    dm: devmapper::DeviceMapper,
    bin: PathBuf,
    vg: String,
    devs: String,
    _pv: LoopDev,
}

impl Ctx {
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = output(&self.bin, args);
        assert!(ok, "dmsnap {} failed: {err}{out}", args.join(" "));
        out
    }
    /// `dmsnap lvm snapshot VG/LV ARGS... --devices D`.
    fn snapshot(&self, lv: &str, args: &[&str]) -> (bool, String, String) {
        let vl = format!("{}/{lv}", self.vg);
        let mut a = vec!["lvm", "snapshot", vl.as_str()];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--devices", &self.devs]);
        output(&self.bin, &a)
    }
    fn lvm(&self, args: &[&str]) -> String {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--devices", &self.devs]);
        lvm(&a)
    }
    fn name(&self, lv: &str) -> String {
        format!("{}-{}", self.vg, lv.replace('-', "--"))
    }
    fn node(&self, lv: &str) -> PathBuf {
        let n = devmapper::DmName::new(&self.name(lv)).unwrap();
        PathBuf::from(format!("/dev/dm-{}", self.dm.info(&n).unwrap().dev.minor))
    }
    /// lvm2's `lvs` columns of one LV.
    fn lvs(&self, lv: &str, cols: &str) -> Vec<String> {
        let vl = format!("{}/{lv}", self.vg);
        self.lvm(&[
            "lvs",
            "--noheadings",
            "--separator",
            "|",
            "--units",
            "s",
            "--nosuffix",
            "-o",
            cols,
            &vl,
        ])
        .trim()
        .split('|')
        .map(|s| s.trim().to_string())
        .collect()
    }
    /// dmsnap's `lvs --json` rows by name.
    fn our_lvs(&self) -> BTreeMap<String, serde_json::Value> {
        let out = self.ok(&["lvm", "lvs", "--json", "--devices", &self.devs, &self.vg]);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        j["lvs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    }
    fn vgck(&self) {
        let (ok, out, err) = lvm_try(&["vgck", "--devices", &self.devs, &self.vg]);
        assert!(ok && !err.contains("WARNING"), "vgck: {err}{out}");
    }
    fn seqno(&self) -> u64 {
        self.lvm(&["vgs", "--noheadings", "-o", "vg_seqno", &self.vg])
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let d = self.devs.as_str();
        let _ = Proc::new("umount")
            .arg("-l")
            .arg(format!("/tmp/{}-m", self.vg))
            .status();
        let _ = Proc::new("umount")
            .arg("-l")
            .arg(format!("/tmp/{}-s", self.vg))
            .status();
        let _ = lvm_try(&["vgchange", "-an", "--devices", d, &self.vg]);
        let _ = lvm_try(&["vgremove", "-ff", "-y", "--devices", d, &self.vg]);
        let _ = lvm_try(&["pvremove", "-ff", "-y", "--devices", d, d]);
    }
}

/// A VG over one fresh loop PV of `mib` MiB, extent size `es`, made by lvm2.
fn setup(test: &str, tag: &str, mib: u64, es: &str) -> Option<Ctx> {
    let dm = common::dm_or_skip(test)?;
    if Proc::new("lvm").arg("version").output().is_err() {
        common::skip(test, "lvm2 not installed");
        return None;
    }
    let bin = common::dmsnap_or_skip(test)?;
    let pv = LoopDev::new(mib << 20);
    let devs = pv.path.display().to_string();
    let vg = format!("sn{}{tag}", std::process::id());
    lvm(&["pvcreate", "-q", "--devices", &devs, &devs]);
    lvm(&["vgcreate", "-q", "-s", es, "--devices", &devs, &vg, &devs]);
    Some(Ctx {
        dm,
        bin,
        vg,
        devs,
        _pv: pv,
    })
}

/// The dm stack of a snapshot, named and uuid'd relative to its LVs, device numbers
/// replaced by the names of the devices they are: what must be equal for lvm2's
/// snapshot and ours.
fn stack_shape(c: &Ctx, origin: &str, snap: &str) -> Vec<String> {
    let uuid = |lv: &str| -> String {
        let u = c.lvs(lv, "vg_uuid,lv_uuid");
        format!("LVM-{}{}", u[0].replace('-', ""), u[1].replace('-', ""))
    };
    let (ou, su) = (uuid(origin), uuid(snap));
    let info = run_ok(
        "dmsetup",
        &[
            "info",
            "-c",
            "--noheadings",
            "-o",
            "name,uuid,major,minor",
            "--separator",
            "|",
        ],
    );
    let mut by_num = BTreeMap::new();
    let mut uuids = BTreeMap::new();
    for l in info.lines() {
        let f: Vec<&str> = l.trim().split('|').collect();
        if f.len() == 4 {
            by_num.insert(format!("{}:{}", f[2], f[3]), f[0].to_string());
            uuids.insert(f[0].to_string(), f[1].to_string());
        }
    }
    let rel = |s: &str| {
        s.replace(&c.name(snap), "SNAP")
            .replace(&c.name(origin), "ORIGIN")
            .replace(&su, "SNAPUUID")
            .replace(&ou, "ORIGINUUID")
    };
    let mut out = Vec::new();
    for (lv, layer) in [(origin, ""), (origin, "-real"), (snap, ""), (snap, "-cow")] {
        let name = format!("{}{layer}", c.name(lv));
        let table = run_ok("dmsetup", &["table", &name]);
        let mut t: Vec<String> = table
            .split_whitespace()
            .map(|w| by_num.get(w).cloned().unwrap_or_else(|| w.to_string()))
            .collect();
        // Linear/striped layers: their PV offsets differ between the two LVs.
        if t.get(2).is_some_and(|x| x == "linear") {
            t.truncate(3);
        }
        if layer.is_empty() || layer == "-real" {
            // lengths of origin-sized devices are equal (same-sized origins)
        } else {
            t.remove(1); // COW sizes may differ
        }
        out.push(rel(&format!(
            "{name} uuid={} table={}",
            uuids.get(&name).cloned().unwrap_or_default(),
            t.join(" ")
        )));
    }
    out
}

/// A writer appending 4 KiB records with fsync to a file until told to stop; it counts.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    h: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let (s, d) = (stop.clone(), done.clone());
        let h = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                let rec = format!("{n:08}\n").repeat(4096 / 9);
                f.write_all(rec.as_bytes()).unwrap();
                f.sync_all().unwrap();
                n += 1;
                d.store(n, Ordering::Relaxed);
            }
        });
        Writer {
            stop,
            done,
            h: Some(h),
        }
    }
    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.h.take() {
            h.join().unwrap();
        }
        self.count()
    }
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn percent(v: &serde_json::Value) -> Option<f64> {
    v["data_percent"].as_f64()
}

#[test]
fn live_snapshot_of_a_busy_mounted_origin_as_lvm2() {
    let Some(c) = setup(
        "live_snapshot_of_a_busy_mounted_origin_as_lvm2",
        "l",
        160,
        "4M",
    ) else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "ora", "-L", "24M", &c.vg]);
    c.lvm(&["lvcreate", "-q", "-n", "orb", "-L", "24M", &c.vg]);
    run_ok("mkfs.ext4", &["-q", "-F", c.node("ora").to_str().unwrap()]);
    let mnt = PathBuf::from(format!("/tmp/{}-m", c.vg));
    let smnt = PathBuf::from(format!("/tmp/{}-s", c.vg));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&smnt).unwrap();
    run_ok(
        "mount",
        &[c.node("ora").to_str().unwrap(), mnt.to_str().unwrap()],
    );
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        std::fs::write(mnt.join(n), common::pattern(i as u64, 100_000 + i * 7)).unwrap();
    }
    run_ok("sync", &[]);
    let before = files_of(&mnt);
    let orb_before = run_ok("dmsetup", &["table", &c.name("orb")]);

    // The writer runs through the snapshot.
    let w = Writer::start(&mnt.join("log"));
    while w.count() < 5 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seq0 = c.seqno();
    let (ok, out, err) = c.snapshot("ora", &["--size", "12M", "--name", "sna"]);
    assert!(ok, "dmsnap lvm snapshot: {err}{out}");
    assert!(out.contains("Logical volume \"sna\" created."), "{out}");
    let at = w.count();
    let t = Instant::now();
    while w.count() < at + 5 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let total = w.stop();
    assert!(
        total >= at + 5,
        "the writer stalled after the snapshot ({at} -> {total})"
    );
    // One commit, where lvm2 takes two.
    assert_eq!(c.seqno(), seq0 + 1);
    assert_nothing_suspended(&c.dm, &c.vg);
    c.vgck();

    // lvm2 sees a snapshot of ora.
    let s = c.lvs("sna", "lv_attr,origin,lv_size");
    assert!(s[0].starts_with("swi-a-s"), "lvm2 attr of sna: {s:?}");
    assert_eq!(s[1], "ora");
    assert_eq!(s[2], "24576");
    assert!(
        c.lvs("ora", "lv_attr")[0].starts_with("owi-aos"),
        "{:?}",
        c.lvs("ora", "lv_attr")
    );

    // lvm2's snapshot of orb, the same stack.
    c.lvm(&[
        "lvcreate",
        "-q",
        "-s",
        "-L",
        "12M",
        "-n",
        "snb",
        &format!("{}/orb", c.vg),
    ]);
    let ours = stack_shape(&c, "ora", "sna");
    let theirs = stack_shape(&c, "orb", "snb");
    assert_eq!(ours, theirs, "dm stacks: ours vs lvm2's");
    // -real holds the origin's old table (orb's, before lvm2's snapshot, has the same shape).
    let real_b = run_ok("dmsetup", &["table", &format!("{}-real", c.name("orb"))]);
    assert_eq!(real_b, orb_before);

    // The snapshot: fsck clean, mounts read-only, exactly the files from before.
    let snode = c.node("sna");
    run_ok("e2fsck", &["-n", "-f", snode.to_str().unwrap()]);
    run_ok(
        "mount",
        &["-o", "ro", snode.to_str().unwrap(), smnt.to_str().unwrap()],
    );
    let mut snap_files = files_of(&smnt);
    let log = snap_files.remove("log").expect("log in the snapshot");
    assert_eq!(snap_files, before, "the snapshot's files");
    let now_log = std::fs::read(mnt.join("log")).unwrap();
    assert!(now_log.starts_with(&log) && log.len() < now_log.len());
    run_ok("umount", &[smnt.to_str().unwrap()]);

    // Data%: ours equals lvm2's, for both snapshots, after more writes.
    std::fs::write(mnt.join("big"), common::pattern(9, 3 << 20)).unwrap();
    run_ok("sync", &[]);
    write_direct(&c.node("orb"), 1 << 20, &common::pattern(8, 1 << 20));
    for snap in ["sna", "snb"] {
        // ext4's own background writes (lazy inode-table init, journal commits) may still
        // reach the origin: compare our reading with lvm2's taken just before and after it,
        // once those two agree.
        let mut tries = 0;
        let (ours, theirs) = loop {
            let before: f64 = c.lvs(snap, "data_percent")[0].parse().unwrap();
            let ours = c.our_lvs();
            let after: f64 = c.lvs(snap, "data_percent")[0].parse().unwrap();
            if before == after || tries == 30 {
                break (ours, after);
            }
            tries += 1;
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(theirs > 0.0);
        assert_eq!(percent(&ours[snap]), Some(theirs), "Data% of {snap}");
        assert_eq!(
            ours[snap]["attr"].as_str().unwrap(),
            c.lvs(snap, "lv_attr")[0]
        );
        assert_eq!(
            ours[snap]["origin"].as_str(),
            Some(if snap == "sna" { "ora" } else { "orb" })
        );
    }
    let ours = c.our_lvs();
    assert_eq!(
        ours["ora"]["attr"].as_str().unwrap(),
        c.lvs("ora", "lv_attr")[0]
    );

    // lvm2 removes ours, we remove lvm2's: both origins back to their plain tables.
    c.lvm(&["lvremove", "-f", &format!("{}/sna", c.vg)]);
    c.ok(&[
        "lvm",
        "lvremove",
        &format!("{}/snb", c.vg),
        "--devices",
        &c.devs,
    ]);
    assert_eq!(run_ok("dmsetup", &["table", &c.name("orb")]), orb_before);
    assert!(run_ok("dmsetup", &["table", &c.name("ora")]).contains(" linear "));
    for gone in [
        format!("{}-real", c.name("ora")),
        format!("{}-real", c.name("orb")),
        c.name("sna"),
        format!("{}-cow", c.name("snb")),
    ] {
        let n = devmapper::DmName::new(&gone).unwrap();
        assert!(!c.dm.exists(&n).unwrap(), "{gone} left");
    }
    c.vgck();
    // The origin still holds its files.
    assert_eq!(std::fs::read(mnt.join("a")).unwrap(), before["a"]);
    run_ok("umount", &[mnt.to_str().unwrap()]);
    println!("PRIVILEGED-TEST-RAN live_snapshot_of_a_busy_mounted_origin_as_lvm2");
}

fn write_direct(path: &Path, offset: u64, data: &[u8]) {
    let f = File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    // O_DIRECT wants an aligned buffer: a Vec of u64-aligned pages is not enough in
    // general, so write through a page-aligned copy.
    let layout = std::alloc::Layout::from_size_align(data.len(), 4096).unwrap();
    let mut buf = AlignedBuf::new(layout);
    buf.as_mut().copy_from_slice(data);
    f.write_all_at(buf.as_mut(), offset).unwrap();
    f.sync_all().unwrap();
}

struct AlignedBuf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(l: std::alloc::Layout) -> AlignedBuf {
        let v = vec![0u8; l.size() + l.align()];
        let off = v.as_ptr().align_offset(l.align());
        AlignedBuf {
            v,
            off,
            len: l.size(),
        }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

#[test]
fn overflowed_snapshot_is_invalid_origin_works_removal_works() {
    let Some(c) = setup(
        "overflowed_snapshot_is_invalid_origin_works_removal_works",
        "o",
        96,
        "4M",
    ) else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "o", "-L", "40M", &c.vg]);
    let (ok, _, err) = c.snapshot("o", &["--size", "20M", "--name", "s"]);
    assert!(ok, "{err}");
    let onode = c.node("o");
    // 24 MiB of new data through the origin: more than the 20M COW can take.
    let chunk = common::pattern(5, 1 << 20);
    for i in 0..24u64 {
        write_direct(&onode, i << 20, &chunk);
    }
    let attr = c.lvs("s", "lv_attr")[0].clone();
    assert_eq!(attr.chars().nth(4), Some('I'), "lvm2 attr {attr}");
    let ours = c.our_lvs();
    assert_eq!(ours["s"]["attr"].as_str(), Some(attr.as_str()));
    assert_eq!(percent(&ours["s"]), Some(100.0));
    // The origin keeps working.
    let more = common::pattern(6, 1 << 20);
    write_direct(&onode, 30 << 20, &more);
    assert_eq!(common::read_at(&onode, 30 << 20, 1 << 20).unwrap(), more);
    // Removal of the invalid snapshot works; the origin is linear again, data intact.
    c.ok(&[
        "lvm",
        "lvremove",
        &format!("{}/s", c.vg),
        "--devices",
        &c.devs,
    ]);
    assert!(run_ok("dmsetup", &["table", &c.name("o")]).contains(" linear "));
    assert_eq!(common::read_at(&onode, 30 << 20, 1 << 20).unwrap(), more);
    assert_eq!(common::read_at(&onode, 0, 1 << 20).unwrap(), chunk);
    assert!(c.lvs("o", "lv_attr")[0].starts_with("-wi-a"));
    c.vgck();
    println!("PRIVILEGED-TEST-RAN overflowed_snapshot_is_invalid_origin_works_removal_works");
}

#[test]
fn lvm2_small_snap_and_usage_scenarios() {
    let Some(c) = setup("lvm2_small_snap_and_usage_scenarios", "u", 64, "4k") else {
        return;
    };
    // lvcreate-small-snap.sh: a one-extent (4 KiB) origin.
    c.lvm(&["lvcreate", "-q", "-n", "o", "-l", "1", &c.vg]);
    let name = c.name("o");
    let table = run_ok("dmsetup", &["table", &name]);
    let seq = c.seqno();
    for args in [&["-c", "8k", "-l", "2"][..], &["-l", "1"][..]] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--name", "s"]);
        let (ok, out, err) = c.snapshot("o", &a);
        assert!(!ok && out.is_empty(), "{args:?}: {out}");
        assert!(
            err.contains("Snapshot volume cannot be smaller than 3 chunks"),
            "{err}"
        );
        // Nothing changed: metadata, the origin's table, no new device.
        assert_eq!(c.seqno(), seq);
        assert_eq!(run_ok("dmsetup", &["table", &name]), table);
        let left = run_ok("dmsetup", &["ls"]);
        assert!(!left.contains(&format!("{name}-real")), "{left}");
    }
    assert_nothing_suspended(&c.dm, &c.vg);
    for (args, snap) in [
        (&["-l", "3"][..], "s1"),
        (&["-c", "4k", "-l", "3"][..], "s2"),
        (&["-c", "8k", "-l", "6"][..], "s3"),
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--name", snap]);
        let (ok, _, err) = c.snapshot("o", &a);
        assert!(ok, "{args:?}: {err}");
    }
    for snap in ["s1", "s2", "s3"] {
        c.ok(&[
            "lvm",
            "lvremove",
            &format!("{}/{snap}", c.vg),
            "--devices",
            &c.devs,
        ]);
    }
    // snapshot-usage.sh: maximum sizes with 4 KiB extents.
    for (args, want) in [
        (&["-l", "30"][..], "12.00 KiB"),
        (&["-c", "128", "-l", "1700"][..], "384.00 KiB"),
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--name", "m"]);
        let (ok, out, err) = c.snapshot("o", &a);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("down to maximum usable size {want}.")),
            "{out}"
        );
        let size = c.lvs("m", "lv_size")[0].parse::<u64>().unwrap();
        assert_eq!(
            size * 512,
            if want.starts_with("12") {
                12 << 10
            } else {
                384 << 10
            }
        );
        c.ok(&[
            "lvm",
            "lvremove",
            &format!("{}/m", c.vg),
            "--devices",
            &c.devs,
        ]);
    }
    c.lvm(&["lvcreate", "-q", "-n", "o5", "-l", "5", &c.vg]);
    let (ok, out, err) = c.snapshot("o5", &["-l", "100", "--name", "m5"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("down to maximum usable size 28.00 KiB."),
        "{out}"
    );
    // %LV is refused with lvm2's message; %ORIGIN works.
    let (ok, _, err) = c.snapshot("o5", &["-l", "10%LV", "--name", "p"]);
    assert!(
        !ok && err.contains("Please express size as %FREE, %ORIGIN, %PVS or %VG."),
        "{err}"
    );
    // Data%: a 100K COW and one 4 KiB write: 12.00 (header, metadata, data chunk).
    c.lvm(&["lvcreate", "-q", "-n", "d", "-L", "1M", &c.vg]);
    let (ok, _, err) = c.snapshot("d", &["-L", "100k", "--name", "ds"]);
    assert!(ok, "{err}");
    write_direct(&c.node("d"), 0, &common::pattern(1, 4096));
    assert_eq!(c.lvs("ds", "data_percent")[0], "12.00");
    assert_eq!(percent(&c.our_lvs()["ds"]), Some(12.0));
    c.vgck();
    println!("PRIVILEGED-TEST-RAN lvm2_small_snap_and_usage_scenarios");
}

/// sha256 of a device read with O_DIRECT (no page cache can answer for it).
fn sha(path: &Path) -> String {
    let cmd = format!(
        "dd if={} bs=1M iflag=direct 2>/dev/null | sha256sum",
        path.display()
    );
    run_ok("sh", &["-c", &cmd])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn lvm2_snapshot_reactivate_scenario() {
    let Some(c) = setup("lvm2_snapshot_reactivate_scenario", "r", 64, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "o", "-L", "8M", &c.vg]);
    write_direct(&c.node("o"), 0, &common::pattern(3, 8 << 20));
    let (ok, _, err) = c.snapshot("o", &["-L", "12M", "--name", "s"]);
    assert!(ok, "{err}");
    let want = sha(&c.node("s"));
    write_direct(&c.node("o"), 1 << 20, &common::pattern(4, 2 << 20));
    assert_eq!(sha(&c.node("s")), want, "after origin writes");
    // Our deactivation and activation.
    c.ok(&["lvm", "deactivate", &c.vg, &c.devs]);
    c.ok(&["lvm", "activate", &c.vg, &c.devs]);
    assert_eq!(sha(&c.node("s")), want, "after dmsnap reactivation");
    write_direct(&c.node("o"), 5 << 20, &common::pattern(5, 1 << 20));
    // lvm2's.
    c.ok(&["lvm", "deactivate", &c.vg, &c.devs]);
    c.lvm(&["vgchange", "-q", "-ay", &c.vg]);
    assert_eq!(sha(&c.node("s")), want, "after lvm2 reactivation");
    // Created while the origin is inactive: metadata only, both activations build it.
    c.lvm(&["vgchange", "-q", "-an", &c.vg]);
    let (ok, _, err) = c.snapshot("o", &["-L", "12M", "--name", "t"]);
    assert!(ok, "{err}");
    let n = devmapper::DmName::new(&c.name("t")).unwrap();
    assert!(!c.dm.exists(&n).unwrap());
    c.lvm(&["vgchange", "-q", "-ay", &c.vg]);
    let t = sha(&c.node("t"));
    assert_eq!(t, sha(&c.node("o")), "a new snapshot shows the origin");
    assert_eq!(sha(&c.node("s")), want);
    c.vgck();
    println!("PRIVILEGED-TEST-RAN lvm2_snapshot_reactivate_scenario");
}

// ---- Snapshot sets: several volumes, wrapped devices and LVs, at one instant ----

/// Mount points unmounted (lazily) when dropped, last mounted first.
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn mount(&mut self, dev: &Path, dir: &Path, opts: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        let mut a = vec![];
        if let Some(o) = opts {
            a.extend(["-o", o]);
        }
        a.extend([dev.to_str().unwrap(), dir.to_str().unwrap()]);
        run_ok("mount", &a);
        self.0.push(dir.to_owned());
    }
    fn umount(&mut self, dir: &Path) {
        run_ok("umount", &[dir.to_str().unwrap()]);
        self.0.retain(|d| d != dir);
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = Proc::new("umount").arg("-l").arg(d).status();
        }
    }
}

/// `/dev/dm-N` of a dm device (the guest has no udev; nodes by number always exist).
fn dm_node(dm: &devmapper::DeviceMapper, name: &devmapper::DmName) -> PathBuf {
    PathBuf::from(format!("/dev/dm-{}", dm.info(name).unwrap().dev.minor))
}

/// Every dm device name starting with `prefix` (a test's VG name: its LVs and wrappers),
/// sorted.
fn dm_names(dm: &devmapper::DeviceMapper, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = dm
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Files written without a sync on each of `dirs`: only the freeze can make them reach
/// the snapshots.
fn write_files(dirs: &[&Path], tag: u64) -> Vec<BTreeMap<String, Vec<u8>>> {
    dirs.iter()
        .enumerate()
        .map(|(i, d)| {
            for k in 0..3u64 {
                let seed = tag * 100 + i as u64 * 10 + k;
                std::fs::write(
                    d.join(format!("f{k}")),
                    common::pattern(seed, 50_000 + k as usize),
                )
                .unwrap();
            }
            files_of(d)
        })
        .collect()
}

fn set_request(mib: u64) -> devmapper::lvm::write::snapshot::create::SnapshotRequest {
    devmapper::lvm::write::snapshot::create::SnapshotRequest::new(
        devmapper::lvm::write::snapshot::size::CowSize::Sectors(mib << 11),
    )
}

fn set_options(c: &Ctx) -> devmapper::snapshot_set::SetOptions {
    let mut w = devmapper::lvm::write::session::WriteOptions::new("test snapshot set");
    w.devices = Some(vec![PathBuf::from(&c.devs)]);
    devmapper::snapshot_set::SetOptions::new("test snapshot set").write(w)
}

/// A raw wrapper and two LVs of one VG, all mounted ext4 with fresh unsynced files, taken
/// in one set: every snapshot holds its volume's files, lvm2 sees both LV snapshots from
/// one metadata commit, nothing is left suspended; the freeze of three is measured
/// against a set of one.
#[test]
fn snapshot_set_of_a_wrapped_device_and_two_lvs_on_mounted_ext4() {
    use devmapper::snapshot::{SnapshotOptions, Wrapper};
    use devmapper::snapshot_set::{SetSource, SnapshotSet};
    let test = "snapshot_set_of_a_wrapped_device_and_two_lvs_on_mounted_ext4";
    let Some(c) = setup(test, "set3", 128, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "da", "-L", "16M", &c.vg]);
    c.lvm(&["lvcreate", "-q", "-n", "db", "-L", "16M", &c.vg]);
    c.lvm(&["lvcreate", "-q", "-n", "dc", "-L", "16M", &c.vg]);
    let disk = LoopDev::new(16 << 20);
    let cow = LoopDev::new(8 << 20);
    let wname = devmapper::DmName::new(&format!("{}w", c.vg)).unwrap();
    let w = Wrapper::wrap(&c.dm, &wname, &disk.path).unwrap();
    let _wg = common::WrapGuard {
        dm: &c.dm,
        name: wname.clone(),
    };
    let wnode = dm_node(&c.dm, &wname);
    let mut m = Mounts::default();
    let base = PathBuf::from(format!("/tmp/{}", c.vg));
    let dirs: Vec<PathBuf> = ["w", "da", "db", "dc"]
        .iter()
        .map(|d| base.join(d))
        .collect();
    for (dev, dir) in [wnode.clone(), c.node("da"), c.node("db"), c.node("dc")]
        .iter()
        .zip(&dirs)
    {
        run_ok("mkfs.ext4", &["-q", "-F", dev.to_str().unwrap()]);
        m.mount(dev, dir, None);
    }

    // A set of one first, with unsynced files too (its freeze is the yardstick).
    write_files(&[&dirs[3]], 0);
    let one = {
        let mut set = SnapshotSet::new();
        set.lvm(&c.vg, "dc", None, set_request(8));
        set.take(&c.dm, &set_options(&c)).unwrap()
    };
    assert_eq!(one.members.len(), 1);
    assert!(one.members[0].live);

    let before = write_files(&[&dirs[0], &dirs[1], &dirs[2]], 1);
    let seq0 = c.seqno();
    let names0 = dm_names(&c.dm, &c.vg);
    let mut set = SnapshotSet::new();
    set.raw(
        wname.clone(),
        SnapshotOptions::new(&cow.path).transient(true),
    )
    .lvm(&c.vg, "da", None, set_request(8))
    .lvm(&c.vg, "db", Some("db_then"), set_request(8));
    let taken = set.take(&c.dm, &set_options(&c)).unwrap();
    // Files written after the set are not in any snapshot.
    write_files(&[&dirs[0], &dirs[1], &dirs[2]], 2);

    assert_eq!(c.seqno(), seq0 + 1, "one commit for the two LVs of the VG");
    let got: Vec<(String, String, bool)> = taken
        .members
        .iter()
        .map(|t| (t.source.to_string(), t.snapshot.to_string(), t.live))
        .collect();
    assert_eq!(
        got,
        [
            (wname.to_string(), format!("{wname}-snap"), true),
            (format!("{}/da", c.vg), c.name("da_snap"), true),
            (format!("{}/db", c.vg), c.name("db_then"), true),
        ]
    );
    assert_eq!(taken.members[0].source, SetSource::Raw(wname.clone()));
    assert_eq!(taken.members[1].cow_sectors.0, 8 << 11);
    // lvm2 sees both snapshots, each of its origin.
    assert_eq!(c.lvs("da_snap", "origin"), ["da"]);
    assert_eq!(c.lvs("db_then", "origin"), ["db"]);
    c.vgck();
    // Exactly the new devices: the wrapper's snapshot and -real, and per LV snapshot,
    // -cow and -real.
    let mut added: Vec<String> = dm_names(&c.dm, &c.vg)
        .into_iter()
        .filter(|n| !names0.contains(n))
        .collect();
    added.sort();
    let mut want = vec![
        format!("{wname}-snap"),
        format!("{wname}-real"),
        c.name("da_snap"),
        format!("{}-cow", c.name("da_snap")),
        format!("{}-real", c.name("da")),
        c.name("db_then"),
        format!("{}-cow", c.name("db_then")),
        format!("{}-real", c.name("db")),
    ];
    want.sort();
    assert_eq!(added, want);
    assert_nothing_suspended(&c.dm, &c.vg);
    // Each snapshot mounts read-only and holds exactly the files from before the set.
    for (k, t) in taken.members.iter().enumerate() {
        let node = dm_node(&c.dm, &t.snapshot);
        let dir = base.join(format!("s{k}"));
        m.mount(&node, &dir, Some("ro,noload"));
        assert_eq!(files_of(&dir), before[k], "{}", t.source);
        m.umount(&dir);
    }
    println!(
        "SNAPSHOT-SET suspended for {:.2} ms with 3 members, {:.2} ms with 1",
        taken.suspended_for.as_secs_f64() * 1e3,
        one.suspended_for.as_secs_f64() * 1e3
    );
    drop(m);
    w.snapshot(None).unwrap().discard().unwrap();
    println!("PRIVILEGED-TEST-RAN {test}");
}

/// A set whose last member is refused (its COW holds a filesystem; in the other set an LV
/// snapshot name is taken) changes nothing anywhere: no new dm device, the same VG
/// seqno, nothing suspended, the COW untouched.
#[test]
fn snapshot_set_refused_by_its_last_member_changes_nothing() {
    use devmapper::snapshot::{SnapError, SnapshotOptions, Wrapper};
    use devmapper::snapshot_set::{SetErrorKind, SetSource, SnapshotSet};
    let test = "snapshot_set_refused_by_its_last_member_changes_nothing";
    let Some(c) = setup(test, "setno", 96, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "la", "-L", "16M", &c.vg]);
    c.lvm(&["lvcreate", "-q", "-n", "lb", "-L", "16M", &c.vg]);
    let disk = LoopDev::new(16 << 20);
    let cow = LoopDev::new(8 << 20);
    let wname = devmapper::DmName::new(&format!("{}w", c.vg)).unwrap();
    Wrapper::wrap(&c.dm, &wname, &disk.path).unwrap();
    let _wg = common::WrapGuard {
        dm: &c.dm,
        name: wname.clone(),
    };
    let mut m = Mounts::default();
    let dir = PathBuf::from(format!("/tmp/{}/la", c.vg));
    run_ok("mkfs.ext4", &["-q", "-F", c.node("la").to_str().unwrap()]);
    m.mount(&c.node("la"), &dir, None);
    run_ok("mkfs.ext4", &["-q", "-F", cow.path.to_str().unwrap()]);
    let cow_sha = sha(&cow.path);
    let seq0 = c.seqno();
    let names0 = dm_names(&c.dm, &c.vg);
    let unchanged = |what: &str| {
        assert_eq!(dm_names(&c.dm, &c.vg), names0, "{what}: devices changed");
        assert_eq!(c.seqno(), seq0, "{what}: metadata committed");
        assert_nothing_suspended(&c.dm, &c.vg);
        assert_eq!(sha(&cow.path), cow_sha, "{what}: COW written");
        assert_eq!(
            c.lvs("la", "lv_attr")[0].chars().next(),
            Some('-'),
            "{what}: la is an origin"
        );
    };

    // 1. LVs first, the wrapped device last; its COW holds ext4.
    let mut set = SnapshotSet::new();
    set.lvm(&c.vg, "la", None, set_request(8))
        .lvm(&c.vg, "lb", None, set_request(8))
        .raw(wname.clone(), SnapshotOptions::new(&cow.path));
    let e = set.take(&c.dm, &set_options(&c)).unwrap_err();
    assert_eq!(e.member, Some(SetSource::Raw(wname.clone())), "{e}");
    match &e.kind {
        SetErrorKind::Snap(s) => assert!(matches!(**s, SnapError::CowHoldsData { .. }), "{e}"),
        other => panic!("{other:?}"),
    }
    unchanged("COW holds ext4");

    // 2. The wrapped device first (its COW fine), the last LV's snapshot name taken.
    let good = LoopDev::new(8 << 20);
    let mut set = SnapshotSet::new();
    set.raw(wname.clone(), SnapshotOptions::new(&good.path))
        .lvm(&c.vg, "la", None, set_request(8))
        .lvm(&c.vg, "lb", Some("la"), set_request(8));
    let e = set.take(&c.dm, &set_options(&c)).unwrap_err();
    assert_eq!(
        e.member,
        Some(SetSource::Lvm {
            vg: c.vg.clone(),
            lv: "lb".into()
        }),
        "{e}"
    );
    match &e.kind {
        SetErrorKind::Write(w) => assert!(
            matches!(
                **w,
                devmapper::lvm::write::error::WriteError::LvExists { .. }
            ),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    unchanged("name taken");
    // The same set without the clash goes through (the refusals held nothing).
    let mut set = SnapshotSet::new();
    set.raw(
        wname.clone(),
        SnapshotOptions::new(&good.path).transient(true),
    )
    .lvm(&c.vg, "la", None, set_request(8));
    let taken = set.take(&c.dm, &set_options(&c)).unwrap();
    assert_eq!(taken.members.len(), 2);
    drop(m);
    Wrapper::open(&c.dm, &wname)
        .unwrap()
        .snapshot(None)
        .unwrap()
        .discard()
        .unwrap();
    println!("PRIVILEGED-TEST-RAN {test}");
}

/// A wrapped device over an LV, both in one set, given bottom-up: the wrapper (its
/// filesystem mounted) is suspended before the LV under it, so the freeze does not wait
/// on a suspended device: the set finishes far inside a short bound and both snapshots
/// hold the files.
#[test]
fn snapshot_set_of_a_wrapper_stacked_on_a_member_lv_does_not_deadlock() {
    use devmapper::snapshot::{SnapshotOptions, Wrapper};
    use devmapper::snapshot_set::SnapshotSet;
    let test = "snapshot_set_of_a_wrapper_stacked_on_a_member_lv_does_not_deadlock";
    let Some(c) = setup(test, "setst", 96, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "low", "-L", "16M", &c.vg]);
    let cow = LoopDev::new(8 << 20);
    let wname = devmapper::DmName::new(&format!("{}up", c.vg)).unwrap();
    let w = Wrapper::wrap(&c.dm, &wname, &c.node("low")).unwrap();
    let _wg = common::WrapGuard {
        dm: &c.dm,
        name: wname.clone(),
    };
    let wnode = dm_node(&c.dm, &wname);
    let mut m = Mounts::default();
    let dir = PathBuf::from(format!("/tmp/{}/up", c.vg));
    run_ok("mkfs.ext4", &["-q", "-F", wnode.to_str().unwrap()]);
    m.mount(&wnode, &dir, None);
    let before = write_files(&[&dir], 3);
    let bound = Duration::from_secs(4);
    let mut set = SnapshotSet::new();
    // Bottom-up on purpose: the set must reorder.
    set.lvm(&c.vg, "low", None, set_request(8)).raw(
        wname.clone(),
        SnapshotOptions::new(&cow.path).transient(true),
    );
    let t = Instant::now();
    let taken = set.take(&c.dm, &set_options(&c).bound(bound)).unwrap();
    let took = t.elapsed();
    assert!(
        taken.suspended_for < bound / 2,
        "the freeze took {:?} (bound {bound:?})",
        taken.suspended_for
    );
    assert_nothing_suspended(&c.dm, &c.vg);
    assert_eq!(c.lvs("low_snap", "origin"), ["low"]);
    // Both snapshots hold the filesystem with the files: the wrapper's directly, the LV's
    // because the wrapper maps it linearly.
    for (k, t) in taken.members.iter().enumerate() {
        let node = dm_node(&c.dm, &t.snapshot);
        let sdir = PathBuf::from(format!("/tmp/{}/s{k}", c.vg));
        m.mount(&node, &sdir, Some("ro,noload"));
        assert_eq!(files_of(&sdir), before[0], "{}", t.source);
        m.umount(&sdir);
    }
    println!(
        "SNAPSHOT-SET stacked pair: suspended {:.2} ms, whole set {:.1} ms",
        taken.suspended_for.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3
    );
    drop(m);
    w.snapshot(None).unwrap().discard().unwrap();
    println!("PRIVILEGED-TEST-RAN {test}");
}

/// A set whose freeze outlasts its bound (1 ms: the guardian fires inside the window) is
/// abandoned: `BoundExceeded` with nothing left behind, no new device, the origins back
/// on their plain tables and running, no snapshot in the metadata.
#[test]
fn snapshot_set_past_its_bound_is_abandoned_leaving_nothing() {
    use devmapper::snapshot::{SnapshotOptions, Wrapper};
    use devmapper::snapshot_set::{SetErrorKind, SnapshotSet};
    let test = "snapshot_set_past_its_bound_is_abandoned_leaving_nothing";
    let Some(c) = setup(test, "setbd", 96, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "ba", "-L", "16M", &c.vg]);
    let disk = LoopDev::new(16 << 20);
    let cow = LoopDev::new(8 << 20);
    let wname = devmapper::DmName::new(&format!("{}w", c.vg)).unwrap();
    Wrapper::wrap(&c.dm, &wname, &disk.path).unwrap();
    let _wg = common::WrapGuard {
        dm: &c.dm,
        name: wname.clone(),
    };
    let wnode = dm_node(&c.dm, &wname);
    let mut m = Mounts::default();
    let base = PathBuf::from(format!("/tmp/{}", c.vg));
    for (dev, d) in [(wnode, "w"), (c.node("ba"), "ba")] {
        run_ok("mkfs.ext4", &["-q", "-F", dev.to_str().unwrap()]);
        m.mount(&dev, &base.join(d), None);
    }
    write_files(&[&base.join("w"), &base.join("ba")], 5);
    let names0 = dm_names(&c.dm, &c.vg);
    let seq0 = c.seqno();
    let mut set = SnapshotSet::new();
    set.raw(wname.clone(), SnapshotOptions::new(&cow.path))
        .lvm(&c.vg, "ba", None, set_request(8));
    let e = set
        .take(&c.dm, &set_options(&c).bound(Duration::from_millis(1)))
        .unwrap_err();
    match &e.kind {
        SetErrorKind::BoundExceeded { bound, left } => {
            assert_eq!(*bound, Duration::from_millis(1));
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dm_names(&c.dm, &c.vg), names0, "devices of the set left");
    assert_nothing_suspended(&c.dm, &c.vg);
    for n in [wname.to_string(), c.name("ba")] {
        let t = run_ok("dmsetup", &["table", &n]);
        assert!(t.contains(" linear "), "{n}: {t}");
    }
    assert_eq!(c.lvs("ba", "lv_attr")[0].chars().next(), Some('-'));
    let (ok, _, _) = lvm_try(&["lvs", "--devices", &c.devs, &format!("{}/ba_snap", c.vg)]);
    assert!(!ok, "ba_snap is in the metadata");
    c.vgck();
    // The origins still work.
    write_files(&[&base.join("w"), &base.join("ba")], 6);
    println!(
        "SNAPSHOT-SET past its bound: abandoned ({e}); VG seqno {seq0} -> {}",
        c.seqno()
    );
    println!("PRIVILEGED-TEST-RAN {test}");
}

/// The CLI of sets: `dmsnap lvm snapshot VG/LV VG/LV --size S` (one size for both, one
/// commit) and `dmsnap snapshot A B --cow X --cow Y` (the n-th COW for the n-th NAME).
#[test]
fn snapshot_set_from_the_cli() {
    use devmapper::snapshot::Wrapper;
    let test = "snapshot_set_from_the_cli";
    let Some(c) = setup(test, "setcli", 96, "4M") else {
        return;
    };
    c.lvm(&["lvcreate", "-q", "-n", "ca", "-L", "16M", &c.vg]);
    c.lvm(&["lvcreate", "-q", "-n", "cb", "-L", "16M", &c.vg]);
    let seq0 = c.seqno();
    let (a, b) = (format!("{}/ca", c.vg), format!("{}/cb", c.vg));
    let out = c.ok(&[
        "lvm",
        "snapshot",
        &a,
        &b,
        "--size",
        "8M",
        "--devices",
        &c.devs,
    ]);
    assert_eq!(
        out,
        "  Logical volume \"ca_snap\" created.\n  Logical volume \"cb_snap\" created.\n"
    );
    assert_eq!(c.seqno(), seq0 + 1);
    assert_eq!(c.lvs("ca_snap", "origin"), ["ca"]);
    assert_eq!(c.lvs("cb_snap", "lv_size"), ["16384"]);
    c.vgck();

    let (d1, d2, k1, k2) = (
        LoopDev::new(8 << 20),
        LoopDev::new(8 << 20),
        LoopDev::new(4 << 20),
        LoopDev::new(4 << 20),
    );
    let n1 = devmapper::DmName::new(&format!("{}x", c.vg)).unwrap();
    let n2 = devmapper::DmName::new(&format!("{}y", c.vg)).unwrap();
    Wrapper::wrap(&c.dm, &n1, &d1.path).unwrap();
    let _g1 = common::WrapGuard {
        dm: &c.dm,
        name: n1.clone(),
    };
    Wrapper::wrap(&c.dm, &n2, &d2.path).unwrap();
    let _g2 = common::WrapGuard {
        dm: &c.dm,
        name: n2.clone(),
    };
    let (k1s, k2s) = (k1.path.display().to_string(), k2.path.display().to_string());
    let out = c.ok(&[
        "snapshot",
        n1.as_str(),
        n2.as_str(),
        "--cow",
        &k1s,
        "--cow",
        &k2s,
        "--snap",
        &format!("{n1}-s"),
        "--snap",
        &format!("{n2}-s"),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("snapshot of {n1} at /dev/mapper/{n1}-s"));
    assert_eq!(lines[1], format!("snapshot of {n2} at /dev/mapper/{n2}-s"));
    assert!(
        lines[2].starts_with("2 snapshots at one instant ("),
        "{out}"
    );
    // The n-th COW went to the n-th name (under its store's -cow layer).
    let t = run_ok("dmsetup", &["table", &format!("{n2}-s-cow")]);
    assert!(t.contains(&k2.devnum().to_string()), "{t}");
    for n in [&n1, &n2] {
        Wrapper::open(&c.dm, n)
            .unwrap()
            .snapshot(None)
            .unwrap()
            .discard()
            .unwrap();
    }
    println!("PRIVILEGED-TEST-RAN {test}");
}
