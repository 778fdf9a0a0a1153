//! Privileged (VM): random writes to an origin under a live kernel snapshot, then our
//! offline reading of origin + COW equals the kernel's snapshot device byte for byte, and
//! our usage equals the kernel's status line; then, with the devices removed, our offline
//! merge turns the origin into the snapshot's content.
//!
//! Needs root, device-mapper with dm-snapshot, loop devices and `dmsetup`/`losetup` (the
//! test VM has them: scripts/vm/test.sh). Elsewhere it skips, unless
//! `DEVMAPPER_REQUIRE_PRIVILEGED=1` makes a skip a failure.
//!
//! The devices are set up with `dmsetup` until the crate's own ioctl layer can do it.

use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use devmapper::cow::Store;
use devmapper::cow::merge::{MergeOptions, merge};
use devmapper::cow::reader::SnapshotReader;
use devmapper::io::ReadAt;

fn skip(why: &str) {
    if std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("privileged test cannot run: {why}");
    }
    eprintln!("skipping privileged test: {why}");
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Loop devices and dm devices made by one case; removed on drop (dm devices first).
struct Rig {
    dm: Vec<String>,
    loops: Vec<String>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for name in self.dm.iter().rev() {
            let _ = Command::new("dmsetup").args(["remove", name]).status();
        }
        for l in &self.loops {
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

/// xorshift64*: deterministic test randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn file_with(path: &Path, len: u64, fill: impl Fn(u64) -> u8) {
    let f = File::create(path).unwrap();
    let data: Vec<u8> = (0..len).map(fill).collect();
    f.write_all_at(&data, 0).unwrap();
}

fn read_dev(path: &Path, len: u64) -> Vec<u8> {
    let f = File::open(path).unwrap();
    let mut v = vec![0u8; len as usize];
    FileExt::read_exact_at(&f, &mut v, 0).unwrap();
    v
}

/// One live snapshot with `chunk` sectors, `writes` random writes to origin and snapshot.
fn case(dir: &Path, tag: &str, chunk: u32, seed: u64, writes: usize) {
    const ORIGIN: u64 = 8 << 20;
    // Room for every origin chunk plus the metadata areas, at any chunk size: no overflow.
    const COW: u64 = 10 << 20;
    let origin_path: PathBuf = dir.join(format!("{tag}.origin"));
    let cow_path: PathBuf = dir.join(format!("{tag}.cow"));
    file_with(&origin_path, ORIGIN, |i| {
        (i / 512 % 251) as u8 ^ (i % 7) as u8
    });
    file_with(&cow_path, COW, |_| 0);

    let mut rig = Rig {
        dm: Vec::new(),
        loops: Vec::new(),
    };
    let lo = run(
        "losetup",
        &["--find", "--show", origin_path.to_str().unwrap()],
    );
    rig.loops.push(lo.clone());
    let lc = run("losetup", &["--find", "--show", cow_path.to_str().unwrap()]);
    rig.loops.push(lc.clone());
    let sectors = ORIGIN / 512;
    let snap = format!("cowt-{}-{tag}-s", std::process::id());
    let orig = format!("cowt-{}-{tag}-o", std::process::id());
    let table = format!("0 {sectors} snapshot {lo} {lc} P {chunk}");
    run("dmsetup", &["create", &snap, "--table", &table]);
    rig.dm.push(snap.clone());
    let table = format!("0 {sectors} snapshot-origin {lo}");
    run("dmsetup", &["create", &orig, "--table", &table]);
    rig.dm.push(orig.clone());
    run("dmsetup", &["mknodes"]);
    let snap_dev = PathBuf::from(format!("/dev/mapper/{snap}"));
    let orig_dev = PathBuf::from(format!("/dev/mapper/{orig}"));

    // Random writes, most to the origin (the kernel copies the old chunk to the COW
    // first), some to the snapshot (new data in the COW).
    let mut rng = Rng(seed);
    let o = OpenOptions::new().write(true).open(&orig_dev).unwrap();
    let s = OpenOptions::new().write(true).open(&snap_dev).unwrap();
    for n in 0..writes {
        let len = 1 + rng.below(20_000);
        let at = rng.below(ORIGIN - len);
        let byte = (n % 250) as u8 + 1;
        let target = if rng.below(5) == 0 { &s } else { &o };
        target.write_all_at(&vec![byte; len as usize], at).unwrap();
    }
    o.sync_all().unwrap();
    s.sync_all().unwrap();
    drop((o, s));

    let kernel_view = read_dev(&snap_dev, ORIGIN);
    let status = run("dmsetup", &["status", &snap]);
    let info = status.splitn(4, ' ').nth(3).unwrap().to_owned();

    // Offline, from the backing files (the loop devices write through to them).
    let origin_file = File::open(&origin_path).unwrap();
    let cow_file = File::open(&cow_path).unwrap();
    let store = Store::open(&cow_file).unwrap();
    assert_eq!(
        store.kernel_status().unwrap().to_string(),
        info,
        "{tag}: usage"
    );
    let reader = SnapshotReader::open(&origin_file, &cow_file).unwrap();
    assert!(reader.exceptions() > 0, "{tag}: no exceptions were made");
    assert_eq!(reader.size().unwrap(), ORIGIN);
    let mut ours = vec![0u8; ORIGIN as usize];
    reader.read_at(&mut ours, 0).unwrap();
    if let Some(i) = ours.iter().zip(&kernel_view).position(|(a, b)| a != b) {
        panic!("{tag}: offline snapshot differs from the kernel's at byte {i}");
    }
    // And the origin really moved on: the snapshot is not just the origin.
    assert_ne!(ours, read_dev(&origin_path, ORIGIN), "{tag}");
    let exceptions = reader.exceptions();
    drop(reader);

    // With the devices gone, the offline merge rolls the origin back to the snapshot.
    drop(rig);
    let rw = |p: &Path| OpenOptions::new().read(true).write(true).open(p).unwrap();
    let (o, c) = (rw(&origin_path), rw(&cow_path));
    let report = merge(&o, &c, &MergeOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        report.completed && report.merged == exceptions as u64,
        "{tag}: {report:?}"
    );
    assert!(
        read_dev(&origin_path, ORIGIN) == kernel_view,
        "{tag}: merged origin differs"
    );
    eprintln!("{tag}: {exceptions} exceptions, status {info}: equal; offline merge: equal");
}

#[test]
fn offline_snapshot_equals_kernel_snapshot() {
    if !Path::new("/dev/mapper/control").exists() {
        return skip("no /dev/mapper/control");
    }
    if unsafe_free_euid() != 0 {
        return skip("not root");
    }
    // `dmsetup version` fails when the control node exists but the driver does not.
    match Command::new("dmsetup").arg("version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) => return skip("no device-mapper driver in this kernel"),
        Err(_) => return skip("no dmsetup"),
    }
    let dir = tempfile::tempdir().unwrap();
    for (tag, chunk, seed) in [
        ("c8", 8, 11),
        ("c16", 16, 12),
        ("c128", 128, 13),
        ("c1", 1, 14),
    ] {
        case(dir.path(), tag, chunk, seed, 300);
    }
    println!("PRIVILEGED-TEST-RAN offline_snapshot_equals_kernel_snapshot");
}

/// The effective uid, read from /proc (no unsafe, no libc call).
fn unsafe_free_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}
