//! A crash after every step of every snapshot workflow, recovered: each step's child
//! process aborts through devmapper's fault injection (`DEVMAPPER_FAULT_STEP`), and
//! `Wrapper::recover` must complete or undo what was interrupted, leaving nothing
//! suspended. Privileged (root and device-mapper; run in the VM with scripts/vm/test.sh).
//!
//! These tests live in their own package because they need the `fault-injection` feature,
//! which must never reach the dmsnap example of the devmapper package. The helpers are the
//! privileged tests' (tests/privileged/common.rs, included by path).

use std::path::Path;
use std::process::Command as Proc;

use devmapper::snapshot::activate::{self, ActivateOptions, Outcome};
use devmapper::snapshot::{RollbackOptions, SnapshotOptions, Wrapper};
use devmapper::{DeviceMapper, DmName};

#[allow(dead_code)]
#[path = "../../tests/privileged/common.rs"]
mod common;

use common::{
    LoopDev, WrapGuard, assert_nothing_suspended, ext2_superblock, pattern, read, reboot,
    unique_name, write,
};

const MIB: u64 = 1 << 20;

/// The workflows and how many fault-injection steps each has.
const WORKFLOWS: [(&str, u32); 4] = [("snapshot", 8), ("drop", 5), ("rollback", 5), ("finish", 4)];

/// Child half of `crash_after_every_step_is_recovered`: runs one workflow with fault
/// injection armed; only runs when the parent sets `DMSNAP_FAULT_CHILD`.
#[test]
#[ignore = "run by crash_after_every_step_is_recovered in a child process"]
fn fault_child() {
    let Ok(op) = std::env::var("DMSNAP_FAULT_CHILD") else {
        return;
    };
    let name = DmName::new(&std::env::var("DMSNAP_FAULT_NAME").unwrap()).unwrap();
    let cow = std::env::var("DMSNAP_FAULT_COW").unwrap();
    devmapper::snapshot::arm_fault_injection();
    let dm = DeviceMapper::new().unwrap();
    if op == "activate" {
        let devices = cow.split(',').map(std::path::PathBuf::from).collect();
        activate::activate(
            &dm,
            &ActivateOptions {
                devices,
                config_dir: None,
            },
        )
        .unwrap();
        return;
    }
    let w = Wrapper::open(&dm, &name).unwrap();
    match op.as_str() {
        "snapshot" => {
            w.take_snapshot(&SnapshotOptions::new(cow)).unwrap();
        }
        "drop" => w.snapshot(None).unwrap().discard().unwrap(),
        "rollback" => {
            w.snapshot(None)
                .unwrap()
                .rollback(RollbackOptions::default())
                .unwrap();
        }
        "finish" => w.merging().unwrap().unwrap().wait(None, |_| {}).unwrap(),
        _ => panic!("unknown op {op}"),
    }
}

#[test]
fn crash_after_every_step_is_recovered() {
    let dm = dm_or_skip!("crash_after_every_step_is_recovered");
    let exe = std::env::current_exe().unwrap();
    let len = 256 * 1024;
    let (p0, p1) = (pattern(10, len), pattern(11, len));
    for (op, steps) in WORKFLOWS {
        for k in 1..=steps {
            let lo = LoopDev::new(8 * MIB);
            let cow = LoopDev::new(4 * MIB);
            let name = unique_name(&format!("crash-{op}{k}"));
            let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
            let _g = WrapGuard {
                dm: &dm,
                name: name.clone(),
            };
            write(&w.node(), 0, &p0);
            if op != "snapshot" {
                w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
                write(&w.node(), 0, &p1);
            }
            if op == "finish" {
                let m = w
                    .snapshot(None)
                    .unwrap()
                    .rollback(RollbackOptions::default())
                    .unwrap();
                while m.state().unwrap() != devmapper::snapshot::MergeState::Done {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            crash_child(&exe, op, k, &name, cow.path.as_os_str());
            let actions = w.recover().unwrap();
            assert_nothing_suspended(&dm, name.as_str());
            // Recovery is idempotent.
            assert!(
                w.recover().unwrap().is_empty(),
                "{op}:{k}: second recover did more"
            );
            let st = w.status().unwrap();
            let origin = read(&w.node(), len);
            match op {
                "snapshot" => {
                    // Completed (an active snapshot showing p0) or undone (plain).
                    assert_eq!(origin, p0, "{op}:{k}");
                    match st.snapshots.first() {
                        Some(s) => {
                            assert_eq!(
                                s.state,
                                devmapper::snapshot::SnapshotState::Active,
                                "{op}:{k} {actions:?}"
                            );
                            assert_eq!(read(&w.snapshot(None).unwrap().node(), len), p0);
                        }
                        None => assert_eq!(
                            st.state,
                            devmapper::snapshot::WrapperState::Plain,
                            "{op}:{k}"
                        ),
                    }
                    // Running the command again completes it.
                    let s = w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
                    write(&w.node(), 0, &p1);
                    assert_eq!(read(&s.node(), len), p0, "{op}:{k}: snapshot after rerun");
                }
                "drop" => {
                    assert_eq!(origin, p1, "{op}:{k}");
                    if let Ok(s) = w.snapshot(None) {
                        assert_eq!(
                            read(&s.node(), len),
                            p0,
                            "{op}:{k}: undone drop lost the snapshot"
                        );
                        s.discard().unwrap();
                    }
                    assert_eq!(
                        w.status().unwrap().state,
                        devmapper::snapshot::WrapperState::Plain
                    );
                    assert_eq!(read(&w.node(), len), p1);
                }
                "rollback" => {
                    if origin == p1 {
                        // Undone: the snapshot is intact and the rollback can run again.
                        let s = w.snapshot(None).unwrap();
                        assert_eq!(read(&s.node(), len), p0, "{op}:{k}");
                        s.rollback(RollbackOptions::default()).unwrap();
                    } else {
                        assert_eq!(origin, p0, "{op}:{k}: origin is neither state");
                    }
                    if let Some(m) = w.merging().unwrap() {
                        m.wait(Some(std::time::Duration::from_secs(120)), |_| {})
                            .unwrap();
                    }
                    assert_eq!(read(&w.node(), len), p0, "{op}:{k}");
                    assert_eq!(
                        w.status().unwrap().state,
                        devmapper::snapshot::WrapperState::Plain
                    );
                }
                "finish" => {
                    assert_eq!(origin, p0, "{op}:{k}");
                    assert_eq!(
                        st.state,
                        devmapper::snapshot::WrapperState::Plain,
                        "{op}:{k} {actions:?}"
                    );
                }
                _ => unreachable!(),
            }
            assert!(
                !dm.exists(&DmName::new(&format!("{name}-real")).unwrap())
                    .unwrap()
                    || op == "snapshot"
            );
            assert_nothing_suspended(&dm, name.as_str());
        }
    }
}

#[test]
fn activate_killed_at_every_step_completes_on_rerun() {
    let dm = dm_or_skip!("activate_killed_at_every_step_completes_on_rerun");
    let exe = std::env::current_exe().unwrap();
    let len = 256 * 1024;
    let (p0, p1) = (pattern(20, len), pattern(21, len));
    for k in 1..=5u32 {
        let lo = LoopDev::new(8 * MIB);
        let cow = LoopDev::new(4 * MIB);
        let name = unique_name(&format!("act{k}"));
        let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
        let _g = WrapGuard {
            dm: &dm,
            name: name.clone(),
        };
        ext2_superblock(&w.node(), 3);
        write(&w.node(), MIB, &p0);
        w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
        write(&w.node(), MIB, &p1);
        reboot(&dm, &name);
        let devices = format!("{},{}", lo.path.display(), cow.path.display());
        crash_child(&exe, "activate", k, &name, devices.as_ref());
        assert_nothing_suspended(&dm, name.as_str());
        let opts = ActivateOptions {
            devices: vec![lo.path.clone(), cow.path.clone()],
            config_dir: None,
        };
        let r = activate::activate(&dm, &opts).unwrap();
        assert_eq!(r.activations.len(), 1, "{k}: {r:?}");
        let want = if k == 5 {
            Outcome::AlreadyActive
        } else {
            Outcome::Activated
        };
        assert_eq!(r.activations[0].outcome, want, "activate:{k}");
        assert_eq!(r.activations[0].origin.as_deref(), Some(lo.path.as_path()));
        let w = Wrapper::open(&dm, &name).unwrap();
        let s = w.snapshot(None).unwrap();
        assert_eq!(
            crate::common::read_at(&s.node(), MIB, len).unwrap(),
            p0,
            "activate:{k}: snapshot"
        );
        assert_eq!(
            crate::common::read_at(&w.node(), MIB, len).unwrap(),
            p1,
            "activate:{k}: origin"
        );
        // Once more: nothing to do.
        let r = activate::activate(&dm, &opts).unwrap();
        assert_eq!(
            r.activations[0].outcome,
            Outcome::AlreadyActive,
            "activate:{k} again"
        );
        assert_nothing_suspended(&dm, name.as_str());
        s.discard().unwrap();
    }
}

/// Run [`fault_child`] (this test executable, `exe`) for workflow `op` on wrapper `name`
/// with COW (or, for `activate`, devices) `cow`, armed to abort after step `k`; it must
/// die of `SIGABRT` right there.
fn crash_child(exe: &Path, op: &str, k: u32, name: &DmName, cow: &std::ffi::OsStr) {
    use std::os::unix::process::ExitStatusExt;
    let out = Proc::new(exe)
        .args([
            "--exact",
            "fault_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DMSNAP_FAULT_CHILD", op)
        .env("DMSNAP_FAULT_NAME", name.as_str())
        .env("DMSNAP_FAULT_COW", cow)
        .env("DEVMAPPER_FAULT_STEP", format!("{op}:{k}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.signal() == Some(libc::SIGABRT)
            && stderr.contains(&format!("aborting after {op} step {k}")),
        "{op} step {k}: the child did not abort there: {:?}\n{stderr}",
        out.status
    );
}
