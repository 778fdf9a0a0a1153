//! lvm2's lock files (`lvm::write::lock`): conflicts as flock has them, the inode re-check,
//! the `:aux` file, `lvm.conf`, and util-linux `flock(1)` as an independent oracle.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::lvm::write::lock::{self, LockDir, LockError, LockMode};

fn dir() -> (tempfile::TempDir, LockDir) {
    let tmp = tempfile::tempdir().unwrap();
    let d = LockDir::new(tmp.path().join("run/lock/lvm"));
    (tmp, d)
}

#[test]
fn conflicts_are_flocks() {
    let (_tmp, d) = dir();
    let ex = lock::lock_vg(&d, "vg0", LockMode::Exclusive, false).unwrap();
    assert_eq!(ex.path(), d.path().join("V_vg0"));
    match lock::lock_vg(&d, "vg0", LockMode::Exclusive, false) {
        Err(LockError::WouldBlock { resource, path }) => {
            assert_eq!(resource, "vg0");
            assert_eq!(path, d.path().join("V_vg0"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock::lock_vg(&d, "vg0", LockMode::Shared, false),
        Err(LockError::WouldBlock { .. })
    ));
    // Other VGs and the global lock are separate files.
    let other = lock::lock_vg(&d, "vg1", LockMode::Exclusive, false).unwrap();
    let global = lock::lock_global(&d, LockMode::Exclusive, false).unwrap();
    assert_eq!(global.path(), d.path().join("P_global"));
    drop(ex);
    // Readers share; a writer waits for them.
    let r1 = lock::lock_vg(&d, "vg0", LockMode::Shared, false).unwrap();
    let r2 = lock::lock_vg(&d, "vg0", LockMode::Shared, false).unwrap();
    assert_eq!(r1.mode(), LockMode::Shared);
    assert!(matches!(
        lock::lock_vg(&d, "vg0", LockMode::Exclusive, false),
        Err(LockError::WouldBlock { .. })
    ));
    drop((r1, r2));
    lock::lock_vg(&d, "vg0", LockMode::Exclusive, false)
        .unwrap()
        .unlock()
        .unwrap();
    drop((other, global));
    // Nothing was unlinked.
    for f in ["V_vg0", "V_vg0:aux", "V_vg1", "P_global"] {
        assert!(d.path().join(f).exists(), "{f}");
    }
}

#[test]
fn the_directory_is_created_0700() {
    let (_tmp, d) = dir();
    assert!(!d.path().exists());
    let _l = lock::lock_global(&d, LockMode::Shared, false).unwrap();
    let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn write_priority_takes_the_aux_file() {
    let (_tmp, d) = dir();
    let d = d.with_write_priority(false);
    let _l = lock::lock_vg(&d, "vg0", LockMode::Exclusive, false).unwrap();
    assert!(!d.path().join("V_vg0:aux").exists());
    let d = d.with_write_priority(true);
    let _m = lock::lock_vg(&d, "vg9", LockMode::Exclusive, false).unwrap();
    assert!(d.path().join("V_vg9:aux").exists());
    // A writer waiting on aux keeps new readers out: hold aux as a waiting writer would.
    let aux = d.path().join("V_vg9:aux");
    let f = std::fs::OpenOptions::new().read(true).open(&aux).unwrap();
    let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    assert!(matches!(
        lock::lock_vg(&d, "vg9", LockMode::Shared, false),
        Err(LockError::WouldBlock { .. })
    ));
    drop(held);
}

#[test]
fn bad_names_are_refused() {
    let (_tmp, d) = dir();
    for name in ["", ".", "..", "a/b", "a\0b"] {
        assert!(matches!(
            lock::lock_vg(&d, name, LockMode::Shared, false),
            Err(LockError::BadName { .. })
        ));
    }
}

#[test]
fn a_waiting_lock_gets_it_when_released() {
    let (_tmp, d) = dir();
    let held = lock::lock_vg(&d, "vg0", LockMode::Exclusive, false).unwrap();
    let d2 = d.clone();
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let l = lock::lock_vg(&d2, "vg0", LockMode::Exclusive, true).unwrap();
        (start.elapsed(), l.mode())
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let (waited, mode) = t.join().unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(mode, LockMode::Exclusive);
}

#[test]
fn a_lock_file_replaced_while_waiting_is_locked_again() {
    let (_tmp, d) = dir();
    let d = d.with_write_priority(false);
    let held = lock::lock_vg(&d, "vg0", LockMode::Exclusive, false).unwrap();
    let old_id = held.file_id().unwrap();
    let d2 = d.clone();
    let t = std::thread::spawn(move || {
        let l = lock::lock_vg(&d2, "vg0", LockMode::Exclusive, true).unwrap();
        let id = l.file_id().unwrap();
        (l, id)
    });
    std::thread::sleep(Duration::from_millis(200));
    // Another party (an unlocking lvm2) unlinks the file; yet another recreates it. Then the
    // holder releases the old inode, where the waiter's flock succeeds.
    let path = d.path().join("V_vg0");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"").unwrap();
    let new_ino = std::fs::metadata(&path).unwrap().ino();
    assert_ne!(new_ino, old_id.1);
    drop(held);
    let (l, id) = t.join().unwrap();
    assert_eq!(id.1, new_ino, "the waiter locked the file now at the path");
    // And it really holds that one.
    assert!(matches!(
        lock::lock_vg(&d, "vg0", LockMode::Shared, false),
        Err(LockError::WouldBlock { .. })
    ));
    drop(l);
}

#[test]
fn lvm_conf_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("lvm.conf");
    // No file: lvm2's defaults.
    let d = LockDir::from_config_file(&conf).unwrap();
    assert_eq!(d, LockDir::default());
    assert_eq!(d.path(), Path::new("/run/lock/lvm"));
    std::fs::write(
        &conf,
        "# comment\nglobal {\n\tlocking_dir = \"/var/lock/lvm2\"\n\tprioritise_write_locks = 0\n}\n",
    )
    .unwrap();
    let d = LockDir::from_config_file(&conf).unwrap();
    assert_eq!(d.path(), Path::new("/var/lock/lvm2"));
    assert!(!d.prioritises_write_locks());
    std::fs::write(&conf, "global {\n locking_dir = \n}\n").unwrap();
    assert!(matches!(
        LockDir::from_config_file(&conf),
        Err(LockError::Config { .. })
    ));
}

/// util-linux `flock(1)`: `flock -n [-s|-x] FILE true`, exit 0 when it got the lock.
fn flock_tool(path: &Path, shared: bool) -> Option<bool> {
    let out = Command::new("flock")
        .arg("-n")
        .arg(if shared { "-s" } else { "-x" })
        .arg(path)
        .arg("true")
        .output()
        .ok()?;
    Some(out.status.success())
}

#[test]
fn util_linux_flock_agrees() {
    let (_tmp, d) = dir();
    let path = d.path().join("V_vg0");
    let ex = lock::lock_vg(&d, "vg0", LockMode::Exclusive, false).unwrap();
    let Some(got) = flock_tool(&path, true) else {
        println!("SKIP util_linux_flock_agrees: no flock(1) here");
        return;
    };
    assert!(!got, "flock -s got a lock we hold exclusively");
    assert_eq!(flock_tool(&path, false), Some(false));
    drop(ex);
    assert_eq!(flock_tool(&path, false), Some(true));
    let sh = lock::lock_vg(&d, "vg0", LockMode::Shared, false).unwrap();
    assert_eq!(flock_tool(&path, true), Some(true));
    assert_eq!(flock_tool(&path, false), Some(false));
    drop(sh);
    // The other way round: flock(1) holds it exclusively for a while.
    let mut child = Command::new("flock")
        .args(["-x"])
        .arg(&path)
        .args(["sleep", "1"])
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut refused = false;
    while start.elapsed() < Duration::from_millis(900) {
        if matches!(
            lock::lock_vg(&d, "vg0", LockMode::Shared, false),
            Err(LockError::WouldBlock { .. })
        ) {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "flock(1)'s exclusive lock was not seen");
    let l = lock::lock_vg(&d, "vg0", LockMode::Exclusive, true).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(800));
    child.wait().unwrap();
    drop(l);
}
