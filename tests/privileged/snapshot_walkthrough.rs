//! The snapshot workflows end to end on the real kernel, with ext4 mounted on the wrapped
//! device: a live snapshot under a writer, discard, rollback by merge, a COW that fills
//! up, an md RAID1 array as the backing device, and two snapshots of one origin.
//!
//! Every test cleans up after itself even when it fails: mounts are undone by [`Mount`],
//! devices of the test's prefix by [`Devices`], md arrays by [`MdArray`], loop devices by
//! `LoopDev`, in that order (reverse declaration order). Every test ends by checking that no
//! device of its prefix is suspended or left over.

use crate::common::pattern;
use devmapper::RemoveMode;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use devmapper::snapshot::{
    MergeState, RollbackOptions, SnapError, Snapshot, SnapshotOptions, Wrapper, WrapperState,
};
use devmapper::targets::{DevRef, ExceptionStore, SnapshotStatus, Target};
use devmapper::units::Sectors;
use devmapper::{DevNum, DeviceMapper, DmName, SuspendOptions, Which};
use nix::mount::{MntFlags, MsFlags};

use crate::common::{LoopDev, assert_none_left, unique_name};
use crate::dm_or_skip;

// ---------------------------------------------------------------------------------------
// Guards.

/// Removes every device whose name starts with the test's prefix when dropped: resumes
/// suspended ones (dropping a staged table first), removes in passes so holders go before
/// the devices they hold, and falls back to a deferred remove.
struct Devices<'a> {
    dm: &'a DeviceMapper,
    prefix: String,
}

impl<'a> Devices<'a> {
    fn new(dm: &'a DeviceMapper, prefix: &DmName) -> Self {
        Devices {
            dm,
            prefix: prefix.to_string(),
        }
    }

    fn names(&self) -> Vec<String> {
        self.dm
            .list()
            .map(|l| {
                l.into_iter()
                    .map(|d| d.name)
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Devices<'_> {
    fn drop(&mut self) {
        for _ in 0..50 {
            let names = self.names();
            if names.is_empty() {
                return;
            }
            for n in &names {
                let Ok(name) = DmName::new(n) else { continue };
                if let Ok(info) = self.dm.info(&name)
                    && info.suspended()
                {
                    let _ = self.dm.clear_table(&name);
                    let _ = self.dm.resume(&name, SuspendOptions::default());
                }
                let _ = self.dm.remove(&name, RemoveMode::Now);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for n in self.names() {
            if let Ok(name) = DmName::new(&n) {
                let _ = self.dm.remove(&name, RemoveMode::Deferred);
            }
        }
    }
}

/// An ext4 mount on a temporary directory; unmounted (lazily as a last resort) on drop.
struct Mount {
    dir: tempfile::TempDir,
    live: bool,
}

impl Mount {
    fn new(dev: &Path, read_only: bool) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let flags = if read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        nix::mount::mount(Some(dev), dir.path(), Some("ext4"), flags, None::<&str>)
            .unwrap_or_else(|e| panic!("mount {} on {}: {e}", dev.display(), dir.path().display()));
        Mount { dir, live: true }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn try_unmount(&mut self) -> nix::Result<()> {
        let mut last = nix::Error::EBUSY;
        for _ in 0..50 {
            match nix::mount::umount(self.dir.path()) {
                Ok(()) => {
                    self.live = false;
                    return Ok(());
                }
                Err(nix::Error::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(last)
    }

    fn unmount(mut self) {
        self.try_unmount()
            .unwrap_or_else(|e| panic!("umount {}: {e}", self.dir.path().display()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.live && self.try_unmount().is_err() {
            let _ = nix::mount::umount2(self.dir.path(), MntFlags::MNT_DETACH);
        }
    }
}

/// An md RAID1 array over two devices, stopped on drop.
struct MdArray {
    path: PathBuf,
}

impl MdArray {
    /// Build the array, or `None` (with the reason printed) when this machine cannot; under
    /// `DEVMAPPER_REQUIRE_PRIVILEGED=1` that is a failure.
    fn raid1(test: &str, tag: &str, a: &Path, b: &Path) -> Option<MdArray> {
        let why = if !Proc::new("mdadm")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            Some("mdadm is not installed".to_owned())
        } else if !std::fs::read_to_string("/proc/mdstat").is_ok_and(|s| s.contains("[raid1]")) {
            Some("the kernel has no raid1 personality (/proc/mdstat; load raid1)".to_owned())
        } else {
            None
        };
        if let Some(why) = why {
            crate::common::skip(test, &format!("md RAID1 unavailable: {why}"));
            return None;
        }
        let path = PathBuf::from(format!("/dev/md/{tag}"));
        let out = Proc::new("mdadm")
            .arg("--create")
            .arg(&path)
            .args([
                "--level=1",
                "--raid-devices=2",
                "--metadata=1.2",
                "--run",
                "--assume-clean",
                "--bitmap=none",
            ])
            .arg(a)
            .arg(b)
            .output()
            .expect("run mdadm");
        let md = MdArray { path };
        assert!(
            out.status.success(),
            "mdadm --create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Instant::now();
        while !md.path.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{} did not appear after mdadm --create",
                md.path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(md)
    }
}

impl Drop for MdArray {
    fn drop(&mut self) {
        for _ in 0..30 {
            let ok = Proc::new("mdadm")
                .arg("--stop")
                .arg(&self.path)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sets a flag when dropped (also when the test panics), so a writer thread stops.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn dm_name(s: &str) -> DmName {
    DmName::new(s).unwrap()
}

fn run(cmd: &str, args: &[&str], dev: &Path) -> (i32, String) {
    let out = Proc::new(cmd)
        .args(args)
        .arg(dev)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mkfs(dev: &Path) {
    let (rc, out) = run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
        ],
        dev,
    );
    assert_eq!(rc, 0, "mkfs.ext4 {} failed: {out}", dev.display());
}

/// `e2fsck -f -n` must find nothing (exit 0).
fn fsck_clean(dev: &Path, what: &str) {
    let (rc, out) = run("e2fsck", &["-f", "-n"], dev);
    assert_eq!(
        rc,
        0,
        "e2fsck -fn of the {what} ({}) found problems:\n{out}",
        dev.display()
    );
}

type Tree = BTreeMap<String, Vec<u8>>;

/// Write `n` files under `dir/tag/dN/`, return what was written.
fn write_set(dir: &Path, tag: &str, n: usize, seed: u64) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        let rel = format!("{tag}/d{}/f{i}", i % 3);
        let data = pattern(seed * 1000 + i as u64, 1000 + (i * 7919) % 60_000);
        let p = dir.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        t.insert(rel, data);
    }
    t
}

/// Every regular file under `dir` (but lost+found) with its content.
fn read_tree(dir: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, t: &mut Tree) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "lost+found" {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, t);
            } else {
                assert!(ft.is_file(), "unexpected file type at {rel}");
                let data =
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                t.insert(rel, data);
            }
        }
    }
    let mut t = Tree::new();
    walk(dir, dir, &mut t);
    t
}

fn digest(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(b);
    h.finish()
}

/// Compare two trees, naming the first differences (not whole contents) on failure.
fn assert_tree_eq(got: &Tree, want: &Tree, what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let differ: Vec<String> = want
        .iter()
        .filter_map(|(k, v)| {
            let g = got.get(k)?;
            (g != v).then(|| {
                format!(
                    "{k} ({} bytes, hash {:x}; want {} bytes, hash {:x})",
                    g.len(),
                    digest(g),
                    v.len(),
                    digest(v)
                )
            })
        })
        .collect();
    panic!(
        "{what}: {} missing {:?}, {} extra {:?}, {} differ {:?}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        differ.len(),
        &differ[..differ.len().min(5)]
    );
}

fn merged(a: &Tree, b: &Tree) -> Tree {
    let mut t = a.clone();
    t.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    t
}

/// Hashes of every 64 KiB of a device, read with `O_DIRECT` (no page cache can hide
/// what the device returns now).
fn device_digest(dev: &Path) -> Vec<u64> {
    const BLOCK: usize = 64 << 10;
    const ALIGN: usize = 4096;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
        .unwrap_or_else(|e| panic!("open {}: {e}", dev.display()));
    let mut raw = vec![0u8; BLOCK + ALIGN];
    let off = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[off..off + BLOCK];
    let mut out = Vec::new();
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read {}: {e}", dev.display()),
            }
        }
        if filled == 0 {
            break;
        }
        out.push(digest(&buf[..filled]));
        if filled < BLOCK {
            break;
        }
    }
    out
}

fn assert_digest_eq(got: &[u64], want: &[u64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: device sizes differ");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} 64 KiB blocks differ (first at block {:?})",
        bad.len(),
        got.len(),
        bad.first()
    );
}

fn helper(name: &DmName, suffix: &str) -> DmName {
    dm_name(&format!("{name}{suffix}"))
}

/// No device of the prefix is suspended or has a staged table.
fn assert_none_suspended(dm: &DeviceMapper, prefix: &DmName) {
    for d in dm.list().unwrap() {
        if !d.name.starts_with(prefix.as_str()) {
            continue;
        }
        let info = dm.info(&dm_name(&d.name)).unwrap();
        assert!(!info.suspended(), "{} is left suspended", d.name);
        assert!(
            !info.has_inactive_table(),
            "{} is left with a staged (inactive) table",
            d.name
        );
    }
}

/// The origin is plain again: `linear` over the backing device, no helper left.
fn assert_plain(dm: &DeviceMapper, w: &Wrapper<'_>, backing: DevNum, snaps: &[&DmName]) {
    let name = w.name();
    let st = w.status().unwrap();
    assert_eq!(st.state, WrapperState::Plain, "{name} state: {st:?}");
    assert!(
        st.snapshots.is_empty(),
        "snapshots left: {:?}",
        st.snapshots
    );
    let t = dm.table(name, Which::Live).unwrap();
    match t.lines() {
        [l] => match &l.target {
            Target::Linear(lin) => {
                assert_eq!(
                    lin.device,
                    DevRef::Num(backing),
                    "{name} maps another device"
                );
                assert_eq!(lin.offset, Sectors(0));
            }
            other => panic!("{name} is not linear again: {other:?}"),
        },
        lines => panic!("{name} has {} table lines", lines.len()),
    }
    let real = helper(name, "-real");
    assert!(!dm.exists(&real).unwrap(), "{real} is left over");
    for s in snaps {
        assert!(!dm.exists(*s).unwrap(), "{s} is left over");
    }
    assert_none_suspended(dm, name);
}

fn devnum_of(p: &Path) -> DevNum {
    use std::os::unix::fs::MetadataExt;
    DevNum::from_dev_t(std::fs::metadata(p).unwrap().rdev())
}

fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// A writer that keeps creating and appending files while a snapshot is taken.

/// Where the main thread is: 0 before `take_snapshot`, 1 during, 2 after it returned.
const BEFORE: u8 = 0;
const DURING: u8 = 1;
const AFTER: u8 = 2;

/// One write by the writer: a whole new file, or one appended chunk (each one `write`).
#[derive(Debug)]
struct Op {
    file: String,
    bytes: Vec<u8>,
    /// The main thread's phase when the op started and when it had returned.
    start: u8,
    end: u8,
}

fn writer(dir: &Path, phase: &AtomicU8, stop: &AtomicBool, done: &AtomicUsize) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for i in 0..5000u64 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let append = i % 3 == 2 && !files.is_empty();
        let file = if append {
            files[(i as usize * 7) % files.len()].clone()
        } else {
            format!("w/f{i}")
        };
        let bytes = pattern(1_000_000 + i, 4096 + (i as usize * 1237) % 12_000);
        let start = phase.load(Ordering::SeqCst);
        let p = dir.join(&file);
        let mut f = if append {
            OpenOptions::new().append(true).open(&p)
        } else {
            File::create_new(&p)
        }
        .unwrap_or_else(|e| panic!("writer: open {}: {e}", p.display()));
        f.write_all(&bytes)
            .unwrap_or_else(|e| panic!("writer: write {}: {e}", p.display()));
        drop(f);
        let end = phase.load(Ordering::SeqCst);
        if !append {
            files.push(file.clone());
        }
        ops.push(Op {
            file,
            bytes,
            start,
            end,
        });
        done.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
    }
    ops
}

/// The writer's files after its first `k` writes; with `torn`, write `k` too if it
/// creates a file, as created but still empty (the freeze fell between its `open` and
/// its `write`).
fn files_after(ops: &[Op], k: usize, torn: bool) -> Option<Tree> {
    let mut t = final_files(&ops[..k]);
    if torn {
        let op = ops.get(k)?;
        if t.contains_key(&op.file) {
            return None;
        }
        t.insert(op.file.clone(), Vec::new());
    }
    Some(t)
}

/// The snapshot must show the writer's files exactly as they were after some cut `k` of
/// its sequence of writes: every write that returned before `take_snapshot` was called is
/// in, none that started after it returned. Returns `k` and the bounds.
fn snapshot_cut(snap: &Tree, ops: &[Op]) -> (usize, usize, usize) {
    let lo = ops.iter().take_while(|o| o.end == BEFORE).count();
    let hi = ops.iter().take_while(|o| o.start != AFTER).count();
    let cut = (lo..=hi).find(|&k| {
        files_after(ops, k, false).as_ref() == Some(snap)
            || files_after(ops, k, true).as_ref() == Some(snap)
    });
    match cut {
        Some(k) => (k, lo, hi),
        None => {
            // Name the difference against the writes that surely came before.
            assert_tree_eq(
                snap,
                &files_after(ops, lo, false).unwrap_or_default(),
                &format!(
                    "writer files in the snapshot match no cut of its writes in {lo}..={hi}; \
                     against the writes that returned before the snapshot"
                ),
            );
            panic!("no cut in {lo}..={hi} matches, yet the lower bound does");
        }
    }
}

fn final_files(ops: &[Op]) -> Tree {
    let mut t = Tree::new();
    for op in ops {
        t.entry(op.file.clone())
            .or_default()
            .extend_from_slice(&op.bytes);
    }
    t
}

// ---------------------------------------------------------------------------------------
// The walkthrough, shared by the loop-device and the md RAID1 tests.

fn live_snapshot_walkthrough(dm: &DeviceMapper, name: &DmName, backing: &Path, cow: &Path) {
    let backing_dev = devnum_of(backing);
    let w = Wrapper::wrap(dm, name, backing).unwrap();
    mkfs(&w.node());
    let origin = Mount::new(&w.node(), false);
    let a = write_set(origin.path(), "a", 24, 1);
    std::fs::create_dir(origin.path().join("w")).unwrap();
    nix::unistd::sync();

    let phase = AtomicU8::new(BEFORE);
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let (snap, ops) = std::thread::scope(|s| {
        let _stop_writer = SetOnDrop(&stop);
        let h = s.spawn(|| writer(origin.path(), &phase, &stop, &done));
        wait_until("the writer's first writes", Duration::from_secs(60), || {
            done.load(Ordering::SeqCst) >= 15
        });
        phase.store(DURING, Ordering::SeqCst);
        let snap = w.take_snapshot(&SnapshotOptions::new(cow).chunk(Sectors(8)));
        phase.store(AFTER, Ordering::SeqCst);
        let n = done.load(Ordering::SeqCst);
        wait_until("writes after the snapshot", Duration::from_secs(60), || {
            done.load(Ordering::SeqCst) >= n + 20
        });
        stop.store(true, Ordering::SeqCst);
        let ops = h.join().expect("writer thread panicked");
        (snap.unwrap(), ops)
    });
    nix::unistd::sync();
    let snap_name = helper(name, "-snap");
    assert_eq!(snap.name(), &snap_name);
    assert!(
        matches!(snap.status().unwrap(), SnapshotStatus::Active(_)),
        "snapshot not active: {:?}",
        snap.status()
    );
    assert_eq!(w.status().unwrap().state, WrapperState::Snapshotted);
    assert_none_suspended(dm, name);

    // The origin has everything.
    let files = final_files(&ops);
    let everything = merged(&a, &files);
    assert_tree_eq(
        &read_tree(origin.path()),
        &everything,
        "origin after the snapshot",
    );

    // The frozen view: a clean file system with exactly the pre-snapshot files.
    fsck_clean(&snap.node(), "snapshot");
    let view = Mount::new(&snap.node(), true);
    let seen = read_tree(view.path());
    view.unmount();
    let a_seen: Tree = seen
        .iter()
        .filter(|(k, _)| k.starts_with("a/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_tree_eq(&a_seen, &a, "set A in the snapshot");
    let w_seen: Tree = seen
        .iter()
        .filter(|(k, _)| !k.starts_with("a/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unknown: Vec<&String> = w_seen.keys().filter(|k| !files.contains_key(*k)).collect();
    assert!(
        unknown.is_empty(),
        "snapshot shows unknown files {unknown:?}"
    );
    let (cut, lo, hi) = snapshot_cut(&w_seen, &ops);
    println!(
        "writer: {} writes; {lo} returned before take_snapshot, {} started after it \
         returned; the snapshot shows exactly the first {cut} ({} of {} files)",
        ops.len(),
        ops.len() - hi,
        w_seen.len(),
        files.len()
    );
    assert!(
        lo >= 15 && ops.len() - hi >= 15,
        "the writer did not straddle the snapshot"
    );

    // Discard: the origin keeps all its data, the helpers are gone, nothing suspended.
    snap.discard().unwrap();
    assert_plain(dm, &w, backing_dev, &[&snap_name]);
    assert_tree_eq(
        &read_tree(origin.path()),
        &everything,
        "origin after the discard",
    );
    let extra = write_set(origin.path(), "x", 5, 9);
    origin.unmount();
    fsck_clean(&w.node(), "origin");
    let again = Mount::new(&w.node(), true);
    assert_tree_eq(
        &read_tree(again.path()),
        &merged(&everything, &extra),
        "origin remounted after the discard",
    );
    again.unmount();
    assert_none_suspended(dm, name);
    w.unwrap_device().unwrap();
    assert_none_left(dm, name.as_str());
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn ext4_live_snapshot_under_a_writer_then_discard() {
    let dm = dm_or_skip!("ext4_live_snapshot_under_a_writer_then_discard");
    let base = LoopDev::new(128 << 20);
    let cow = LoopDev::new(64 << 20);
    let name = unique_name("ext4");
    let _devs = Devices::new(&dm, &name);
    live_snapshot_walkthrough(&dm, &name, &base.path, &cow.path);
}

#[test]
fn ext4_live_snapshot_over_md_raid1() {
    let test = "ext4_live_snapshot_over_md_raid1";
    let dm = dm_or_skip!(test);
    let leg_a = LoopDev::new(128 << 20);
    let leg_b = LoopDev::new(128 << 20);
    let cow = LoopDev::new(64 << 20);
    let name = unique_name("md");
    let Some(md) = MdArray::raid1(test, name.as_str(), &leg_a.path, &leg_b.path) else {
        return;
    };
    let _devs = Devices::new(&dm, &name);
    live_snapshot_walkthrough(&dm, &name, &md.path, &cow.path);
}

#[test]
fn rollback_restores_the_snapshot_exactly() {
    let dm = dm_or_skip!("rollback_restores_the_snapshot_exactly");
    let base = LoopDev::new(128 << 20);
    let cow = LoopDev::new(64 << 20);
    let name = unique_name("rb");
    let _devs = Devices::new(&dm, &name);
    let w = Wrapper::wrap(&dm, &name, &base.path).unwrap();
    mkfs(&w.node());
    let origin = Mount::new(&w.node(), false);
    let a = write_set(origin.path(), "a", 30, 2);
    nix::unistd::sync();
    let snap = w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
    let snap_name = snap.name().clone();

    // The upgrade: modify, delete, add.
    let keys: Vec<&String> = a.keys().collect();
    let mut changed = a.clone();
    for k in keys.iter().step_by(4) {
        let data = pattern(777, 5000);
        std::fs::write(origin.path().join(k), &data).unwrap();
        changed.insert((*k).clone(), data);
    }
    for k in keys.iter().skip(1).step_by(5) {
        std::fs::remove_file(origin.path().join(k)).unwrap();
        changed.remove(*k);
    }
    let mut added = write_set(origin.path(), "new", 12, 3);
    // Enough changed chunks that the merge is likely still running when rollback returns.
    let big = pattern(99, 16 << 20);
    std::fs::write(origin.path().join("new/big"), &big).unwrap();
    added.insert("new/big".to_owned(), big);
    let changed = merged(&changed, &added);
    nix::unistd::sync();
    assert_tree_eq(
        &read_tree(origin.path()),
        &changed,
        "origin after the upgrade",
    );

    // Mounted: refused, nothing changes.
    match snap.rollback(RollbackOptions::default()) {
        Err(SnapError::OriginOpen {
            open_count, mounts, ..
        }) => {
            assert!(open_count > 0);
            assert!(
                mounts.iter().any(|m| Path::new(m) == origin.path()),
                "mounts {mounts:?} do not name {}",
                origin.path().display()
            );
        }
        other => panic!("rollback of a mounted origin: {other:?}"),
    }
    assert_eq!(w.status().unwrap().state, WrapperState::Snapshotted);
    assert_none_suspended(&dm, &name);
    let snap = w.snapshot(None).unwrap();
    assert_eq!(snap.name(), &snap_name);
    assert!(matches!(snap.status().unwrap(), SnapshotStatus::Active(_)));
    assert!(w.merging().unwrap().is_none());
    assert_tree_eq(
        &read_tree(origin.path()),
        &changed,
        "origin after the refused rollback",
    );
    origin.unmount();

    // Unmounted: the origin shows the snapshot's bytes at once, and after the merge.
    let want = device_digest(&snap.node());
    let before = device_digest(&w.node());
    assert!(
        want.iter().zip(&before).any(|(x, y)| x != y),
        "the upgrade changed no block of the origin"
    );
    let merging = snap.rollback(RollbackOptions::default()).unwrap();
    let st = merging.state().unwrap();
    println!("merge state right after the rollback returned: {st:?}");
    assert_digest_eq(
        &device_digest(&w.node()),
        &want,
        "origin right after the rollback",
    );
    assert_ne!(st, MergeState::Failed);
    assert!(matches!(
        w.status().unwrap().state,
        WrapperState::Merging(_)
    ));
    let mut polls = 0;
    merging
        .wait(Some(Duration::from_secs(300)), |_| polls += 1)
        .unwrap();
    println!("merge finished after {polls} progress poll(s)");
    assert_plain(&dm, &w, base.devnum(), &[&snap_name]);
    assert!(w.merging().unwrap().is_none());
    assert_digest_eq(&device_digest(&w.node()), &want, "origin after the merge");
    fsck_clean(&w.node(), "rolled-back origin");
    let m = Mount::new(&w.node(), false);
    assert_tree_eq(&read_tree(m.path()), &a, "origin after the rollback");
    m.unmount();
    w.unwrap_device().unwrap();
    assert_none_left(&dm, name.as_str());
}

#[test]
fn cow_too_small_invalidates_the_snapshot_not_the_origin() {
    let dm = dm_or_skip!("cow_too_small_invalidates_the_snapshot_not_the_origin");
    let base = LoopDev::new(128 << 20);
    // Eight 4 KiB chunks: header, one metadata area, six data chunks.
    let cow = LoopDev::new(8 * 4096);
    let name = unique_name("full");
    let _devs = Devices::new(&dm, &name);
    let w = Wrapper::wrap(&dm, &name, &base.path).unwrap();
    mkfs(&w.node());
    let origin = Mount::new(&w.node(), false);
    let a = write_set(origin.path(), "a", 10, 4);
    nix::unistd::sync();
    let snap = w
        .take_snapshot(&SnapshotOptions::new(&cow.path).chunk(Sectors(8)))
        .unwrap();
    let st = snap.status().unwrap();
    println!("tiny COW right after the snapshot: {st:?}");
    assert!(
        matches!(st, SnapshotStatus::Active(_)),
        "not active at first: {st:?}"
    );

    // Far more than six chunks of changes.
    let big = write_set(origin.path(), "big", 40, 5);
    nix::unistd::sync();
    assert_eq!(snap.status().unwrap(), SnapshotStatus::Invalid);
    let status = w.status().unwrap();
    assert_eq!(status.state, WrapperState::Snapshotted);
    assert_eq!(status.snapshots.len(), 1);
    assert_eq!(
        status.snapshots[0].state,
        devmapper::snapshot::SnapshotState::Invalid
    );
    assert_eq!(status.snapshots[0].store, ExceptionStore::Persistent);
    assert!(!status.suspended);

    // The origin goes on working.
    let more = write_set(origin.path(), "more", 10, 6);
    nix::unistd::sync();
    let want = merged(&merged(&a, &big), &more);
    assert_tree_eq(
        &read_tree(origin.path()),
        &want,
        "origin after the overflow",
    );

    snap.discard().unwrap();
    assert_plain(&dm, &w, base.devnum(), &[&helper(&name, "-snap")]);
    origin.unmount();
    fsck_clean(&w.node(), "origin");
    let m = Mount::new(&w.node(), true);
    assert_tree_eq(&read_tree(m.path()), &want, "origin remounted");
    m.unmount();
    w.unwrap_device().unwrap();
    assert_none_left(&dm, name.as_str());
}

#[test]
fn two_snapshots_of_one_origin() {
    let dm = dm_or_skip!("two_snapshots_of_one_origin");
    let base = LoopDev::new(128 << 20);
    let cow1 = LoopDev::new(48 << 20);
    let cow2 = LoopDev::new(48 << 20);
    let name = unique_name("two");
    let _devs = Devices::new(&dm, &name);
    let (n1, n2) = (helper(&name, "-s1"), helper(&name, "-s2"));
    let w = Wrapper::wrap(&dm, &name, &base.path).unwrap();
    mkfs(&w.node());
    let origin = Mount::new(&w.node(), false);

    let a = write_set(origin.path(), "a", 20, 7);
    nix::unistd::sync();
    let s1 = w
        .take_snapshot(&SnapshotOptions::new(&cow1.path).name(n1.clone()))
        .unwrap();

    // Between the snapshots: rewrite part of A, add B.
    let mut at2 = a.clone();
    for k in a.keys().step_by(3) {
        let data = pattern(4242, 9000);
        std::fs::write(origin.path().join(k), &data).unwrap();
        at2.insert(k.clone(), data);
    }
    let at2 = merged(&at2, &write_set(origin.path(), "b", 10, 8));
    nix::unistd::sync();
    let s2 = w
        .take_snapshot(&SnapshotOptions::new(&cow2.path).name(n2.clone()))
        .unwrap();

    // After both: more changes, which neither snapshot shows.
    let mut now = at2.clone();
    for k in at2.keys().step_by(2) {
        std::fs::remove_file(origin.path().join(k)).unwrap();
        now.remove(k);
    }
    let now = merged(&now, &write_set(origin.path(), "c", 10, 9));
    nix::unistd::sync();

    let status = w.status().unwrap();
    assert_eq!(status.state, WrapperState::Snapshotted);
    let names: Vec<&str> = status.snapshots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [n1.as_str(), n2.as_str()]);
    assert_none_suspended(&dm, &name);

    let view = |s: &Snapshot<'_, '_>, want: &Tree, what: &str| {
        assert!(
            matches!(s.status().unwrap(), SnapshotStatus::Active(_)),
            "{what} is not active"
        );
        fsck_clean(&s.node(), what);
        let m = Mount::new(&s.node(), true);
        assert_tree_eq(&read_tree(m.path()), want, what);
        m.unmount();
    };
    view(&s1, &a, "first snapshot");
    view(&s2, &at2, "second snapshot");
    assert_tree_eq(&read_tree(origin.path()), &now, "origin with two snapshots");

    // Drop the first: the second is unaffected.
    s1.discard().unwrap();
    assert!(!dm.exists(&n1).unwrap(), "{n1} is left over");
    let status = w.status().unwrap();
    assert_eq!(status.state, WrapperState::Snapshotted);
    assert_eq!(status.snapshots.len(), 1);
    assert_eq!(status.snapshots[0].name, n2.as_str());
    assert!(matches!(
        dm.table(&name, Which::Live).unwrap().lines()[0].target,
        Target::SnapshotOrigin(_)
    ));
    assert_none_suspended(&dm, &name);
    // More writes after the first is gone still leave the second's view alone.
    let now = merged(&now, &write_set(origin.path(), "d", 8, 10));
    nix::unistd::sync();
    view(&s2, &at2, "second snapshot after dropping the first");

    s2.discard().unwrap();
    assert_plain(&dm, &w, base.devnum(), &[&n1, &n2]);
    assert_tree_eq(&read_tree(origin.path()), &now, "origin after both drops");
    origin.unmount();
    fsck_clean(&w.node(), "origin");
    w.unwrap_device().unwrap();
    assert_none_left(&dm, name.as_str());
}
