//! Shared helpers for privileged tests: device-mapper availability (skip with a reason, or
//! fail under `DEVMAPPER_REQUIRE_PRIVILEGED=1`), unique names, RAII guards for dm devices
//! and loop devices, data patterns, "nothing suspended" checks, running tools and dmsnap.
//! fault-tests includes this file too (`#[path]`).

use devmapper::RemoveMode;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use devmapper::{DeviceMapper, DmName, RawTarget, SuspendOptions, units::Sectors};

/// Finding the dmsnap binary (shared with the host tests).
#[allow(dead_code)]
#[path = "../common/bin.rs"]
pub mod bin;
/// Fixtures and gunzip (shared with the host tests).
#[allow(dead_code)]
#[path = "../common/files.rs"]
pub mod files;

/// Whether this run must not skip (`DEVMAPPER_REQUIRE_PRIVILEGED=1`: the VM harness).
pub fn required() -> bool {
    std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
}

/// Skip `test` because of `why`: prints `SKIP <test>: <why>`, or panics when the run must
/// not skip ([`required`]).
pub fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: required but cannot run: {why}");
    println!("SKIP {test}: {why}");
}

/// Return from the test with [`skip`] when `$cond` is an `Err(why)`; else its `Ok` value.
#[macro_export]
macro_rules! ok_or_skip {
    ($test:expr, $cond:expr) => {
        match $cond {
            Ok(v) => v,
            Err(why) => {
                $crate::common::skip($test, &why);
                return;
            }
        }
    };
}

/// The dmsnap binary for `test`, or `None` with a printed skip (see [`bin::find_or_skip`]).
pub fn dmsnap_or_skip(test: &str) -> Option<PathBuf> {
    bin::find_or_skip(test)
}

/// Run `bin args`: (success, stdout, stderr).
pub fn output(bin: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Proc::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `bin args`, which must fail as dmsnap does on an error: exit status 1 and nothing
/// on stdout. Returns stderr.
pub fn fails(bin: &Path, args: &[&str]) -> String {
    let out = Proc::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Run a tool (`args[0]`), panic with its stderr when it fails; returns stdout.
pub fn run_tool(args: &[&str]) -> String {
    let (ok, stdout, stderr) = output(Path::new(args[0]), &args[1..]);
    assert!(ok, "{} failed: {stderr}", args.join(" "));
    stdout
}

/// Open device-mapper for a privileged test, or explain why the test is skipped.
///
/// Prints `PRIVILEGED-TEST-RAN <test>` when the test really runs (the VM harness counts
/// these lines and fails when there are none). With `DEVMAPPER_REQUIRE_PRIVILEGED=1` a test
/// that would skip fails instead.
pub fn dm_or_skip(test: &str) -> Option<DeviceMapper> {
    let reason = if !nix::unistd::Uid::effective().is_root() {
        Some("not running as root".to_owned())
    } else {
        devmapper::availability().err()
    };
    match reason {
        None => {
            println!("PRIVILEGED-TEST-RAN {test}");
            Some(DeviceMapper::new().expect("device-mapper was available a moment ago"))
        }
        Some(r) => {
            if required() {
                panic!("{test}: privileged test required but device-mapper is unusable: {r}");
            }
            println!("SKIP {test}: {r}");
            None
        }
    }
}

/// Open a handle or return from the test with a printed skip reason.
#[macro_export]
macro_rules! dm_or_skip {
    ($name:expr) => {
        match $crate::common::dm_or_skip($name) {
            Some(dm) => dm,
            None => return,
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `dmt<pid>-<n>-<tag>`.
pub fn unique_name(tag: &str) -> DmName {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    DmName::new(&format!("dmt{}-{}-{}", std::process::id(), n, tag)).unwrap()
}

/// A table of one target.
pub fn one(target: &str, params: &str, sectors: u64) -> Vec<RawTarget> {
    vec![RawTarget {
        start: Sectors(0),
        length: Sectors(sectors),
        target_type: target.to_owned(),
        params: params.to_owned(),
    }]
}

/// Removes a dm device when dropped, even when the test failed: resumes it first if it was
/// left suspended, retries while it is briefly busy, and falls back to a deferred remove.
pub struct DevGuard<'a> {
    pub dm: &'a DeviceMapper,
    pub name: DmName,
}

impl<'a> DevGuard<'a> {
    /// Create `name` and guard it.
    pub fn create(dm: &'a DeviceMapper, name: DmName) -> Self {
        dm.create(&name, Default::default())
            .expect("create test device");
        DevGuard { dm, name }
    }

    /// Create, load `table` and resume.
    pub fn active(dm: &'a DeviceMapper, name: DmName, table: &[RawTarget]) -> Self {
        let g = Self::create(dm, name);
        dm.load_raw(&g.name, table, Default::default())
            .expect("load");
        dm.resume(&g.name, SuspendOptions::default())
            .expect("resume");
        g
    }

    pub fn node(&self) -> PathBuf {
        self.dm.node_path(&self.name)
    }
}

impl Drop for DevGuard<'_> {
    fn drop(&mut self) {
        remove_quietly(self.dm, &self.name);
    }
}

/// Best-effort removal used by guards.
pub fn remove_quietly(dm: &DeviceMapper, name: &DmName) {
    if let Ok(info) = dm.info(name) {
        if info.suspended() {
            let _ = dm.resume(name, SuspendOptions::default());
        }
    } else {
        return;
    }
    for _ in 0..50 {
        match dm.remove(name, RemoveMode::Now) {
            Ok(_) => return,
            Err(e) if e.is_not_found() => return,
            Err(e) if e.is_busy() => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(_) => break,
        }
    }
    let _ = dm.remove(name, RemoveMode::Deferred);
}

static LOOP_LOCK: Mutex<()> = Mutex::new(());

/// A loop device over a sparse temporary file; detached and deleted on drop.
pub struct LoopDev {
    pub path: PathBuf,
    pub file: tempfile::NamedTempFile,
}

impl LoopDev {
    /// A new loop device of `bytes` bytes with `sector` logical block size (util-linux).
    pub fn with_sector_size(bytes: u64, sector: u32) -> LoopDev {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(bytes).unwrap();
        let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let out = Proc::new("losetup")
            .args(["--find", "--show", "--sector-size", &sector.to_string()])
            .arg(file.path())
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup --sector-size: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        LoopDev {
            path: PathBuf::from(path),
            file,
        }
    }

    /// A new loop device of `bytes` bytes.
    pub fn new(bytes: u64) -> LoopDev {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(bytes).unwrap();
        let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let out = Proc::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .expect("run losetup");
        let path = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            // busybox: `losetup -f` names a free device, then attach explicitly.
            let free = Proc::new("losetup").arg("-f").output().expect("losetup -f");
            let dev = String::from_utf8_lossy(&free.stdout).trim().to_owned();
            let st = Proc::new("losetup")
                .arg(&dev)
                .arg(file.path())
                .status()
                .expect("losetup");
            assert!(st.success(), "losetup {dev} failed");
            dev
        };
        assert!(
            path.starts_with("/dev/loop"),
            "unexpected losetup output {path:?}"
        );
        LoopDev {
            path: PathBuf::from(path),
            file,
        }
    }

    /// `major:minor` of the loop device.
    pub fn devnum(&self) -> devmapper::DevNum {
        use std::os::unix::fs::MetadataExt;
        devmapper::DevNum::from_dev_t(std::fs::metadata(&self.path).unwrap().rdev())
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Proc::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// Assert that no device whose name starts with `prefix` is left.
pub fn assert_none_left(dm: &DeviceMapper, prefix: &str) {
    let left: Vec<String> = dm
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "devices left over: {left:?}");
}

/// Read `len` bytes at `offset` from a path.
pub fn read_at(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset)?;
    Ok(b)
}

/// Deterministic pseudo-random bytes for `seed` (xorshift; every seed its own stream).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Write `data` at `offset` of `path` and sync it.
pub fn write(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

/// The first `len` bytes of `path`.
pub fn read(path: &Path, len: usize) -> Vec<u8> {
    read_at(path, 0, len).unwrap()
}

/// Removes every device of a wrapper (snapshots, origin, real) when dropped, after letting
/// `recover` finish or undo whatever a test interrupted.
pub struct WrapGuard<'a> {
    /// The handle the devices are removed with.
    pub dm: &'a DeviceMapper,
    /// The wrapper's name (every device whose name starts with it goes).
    pub name: DmName,
}

impl Drop for WrapGuard<'_> {
    fn drop(&mut self) {
        if let Ok(w) = devmapper::snapshot::Wrapper::open(self.dm, &self.name) {
            let _ = w.recover();
        }
        let prefix = self.name.as_str().to_owned();
        if let Ok(list) = self.dm.list() {
            // Snapshots first, then the origin, then -real.
            let mut names: Vec<String> = list
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n.starts_with(&prefix))
                .collect();
            names.sort_by_key(|n| (n.ends_with("-real") || n.ends_with("-cow"), n == &prefix));
            for n in names {
                remove_quietly(self.dm, &DmName::new(&n).unwrap());
            }
        }
    }
}

/// The devices whose name starts with `prefix` that are suspended now (a device removed
/// meanwhile is not).
pub fn suspended(dm: &DeviceMapper, prefix: &str) -> Vec<String> {
    dm.list()
        .unwrap()
        .into_iter()
        .filter(|d| d.name.starts_with(prefix))
        .filter(|d| {
            dm.info(&DmName::new(&d.name).unwrap())
                .is_ok_and(|i| i.suspended())
        })
        .map(|d| d.name)
        .collect()
}

/// No device whose name starts with `prefix` is suspended.
pub fn assert_nothing_suspended(dm: &DeviceMapper, prefix: &str) {
    let left = suspended(dm, prefix);
    assert!(left.is_empty(), "left suspended: {left:?}");
}

/// An ext2 superblock (magic, and a uuid of `seed` bytes) at byte 1024 of `dev`: content
/// the probe recognises, so the device has an identity a dmsnap record can name.
pub fn ext2_superblock(dev: &Path, seed: u8) {
    let mut sb = vec![0u8; 1024];
    sb[0x38..0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
    sb[0x68..0x78].copy_from_slice(&[seed; 16]);
    write(dev, 1024, &sb);
}

/// Every device of wrapper `name` removed (snapshot, origin, -real, -cow) with the disks
/// left as they are, as a reboot does.
pub fn reboot(dm: &DeviceMapper, name: &DmName) {
    for suffix in ["-snap", "", "-real", "-snap-cow"] {
        remove_quietly(dm, &DmName::new(&format!("{name}{suffix}")).unwrap());
    }
    assert!(
        !dm.list()
            .unwrap()
            .iter()
            .any(|d| d.name.starts_with(name.as_str())),
        "devices of {name} left"
    );
}

/// Run lvm2 (`lvm ARGS`, fd warnings suppressed, stdin closed): (success, stdout, stderr).
pub fn lvm_try(args: &[&str]) -> (bool, String, String) {
    let out = Proc::new("lvm")
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run lvm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run lvm2, which must succeed; its stdout.
pub fn lvm(args: &[&str]) -> String {
    let (ok, out, err) = lvm_try(args);
    assert!(ok, "lvm {} failed: {err}{out}", args.join(" "));
    out
}
