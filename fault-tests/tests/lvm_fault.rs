//! A crash after every step of an LVM snapshot create, remove, merge start and merge
//! finish, recovered by
//! `dmsnap lvm activate VG`: each step's child process aborts through devmapper's fault
//! injection (`DEVMAPPER_FAULT_STEP`: `lvm-snapshot:<k>`, `lvm-remove:<k>`,
//! `lvm-merge:<k>` / `lvm-merge-finish:<k>` around the
//! metadata writes, `lvm-dm:<k>` after the k-th device-mapper change: create, load,
//! suspend, resume, clear, remove), and afterwards lvm2 reads the VG (`vgck` clean),
//! nothing is suspended, the VG's devices are exactly those of its metadata, and the
//! origin holds either its own content (the merge undone: not committed) or the
//! snapshot's (completed). Privileged, with lvm2 as the oracle (run in the VM).

use common::{lvm, lvm_try};
use std::path::PathBuf;
use std::process::Command as Proc;

use devmapper::DeviceMapper;
use devmapper::lvm::write::session::WriteOptions;
use devmapper::lvm::write::snapshot::merge;

#[allow(dead_code)]
#[path = "../../tests/privileged/common.rs"]
mod common;

use common::{LoopDev, assert_nothing_suspended, pattern, read, write};

const MIB: u64 = 1 << 20;

fn opts(devs: &str) -> WriteOptions {
    let mut o = WriteOptions::new("fault test");
    o.devices = Some(vec![PathBuf::from(devs)]);
    o.backups = None;
    o
}

/// Child half: runs one operation with fault injection armed; only when the parent sets
/// `DMSNAP_LVM_FAULT_OP`.
#[test]
#[ignore = "run by the lvm_*_crash tests in a child process"]
fn lvm_fault_child() {
    let Ok(op) = std::env::var("DMSNAP_LVM_FAULT_OP") else {
        return;
    };
    let vg = std::env::var("DMSNAP_LVM_FAULT_VG").unwrap();
    let devs = std::env::var("DMSNAP_LVM_FAULT_DEVS").unwrap();
    devmapper::snapshot::arm_fault_injection();
    match op.as_str() {
        "merge" => {
            let s = merge::merge(&vg, "snap", &opts(&devs)).unwrap();
            assert_eq!(s.start, merge::MergeStart::Started);
        }
        "finish" => {
            let f = merge::finish_done(&vg, Some("lv"), &opts(&devs)).unwrap();
            assert_eq!(f.len(), 1);
        }
        "snapshot" => {
            use devmapper::lvm::write::snapshot::create::{SnapshotRequest, lvcreate_snapshot};
            use devmapper::lvm::write::snapshot::size::CowSize;
            let req = SnapshotRequest::new(CowSize::Sectors(4096));
            lvcreate_snapshot(&vg, "lv", Some("snap"), &req, &opts(&devs)).unwrap();
        }
        "remove" => {
            devmapper::lvm::write::snapshot::remove::lvremove(&vg, "snap", false, &opts(&devs))
                .unwrap();
        }
        _ => panic!("unknown op {op}"),
    }
}

fn dev_node(dm: &DeviceMapper, vg: &str, lv: &str) -> PathBuf {
    let n = devmapper::DmName::new(&devmapper::lvm::plan::dm_name(vg, lv, None)).unwrap();
    PathBuf::from(format!("/dev/dm-{}", dm.info(&n).unwrap().dev.minor))
}

fn vg_devices(dm: &DeviceMapper, vg: &str) -> Vec<String> {
    let mut v: Vec<String> = dm
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string())
        .filter(|n| n.starts_with(&format!("{vg}-")))
        .collect();
    v.sort();
    v
}

fn lvs(vg: &str, devs: &str) -> Vec<(String, String)> {
    let out = lvm(&[
        "lvs",
        "-a",
        "--noheadings",
        "--separator",
        "|",
        "-o",
        "lv_name,lv_attr",
        "--devices",
        devs,
        vg,
    ]);
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (a, b) = l.trim().split_once('|').unwrap();
            (a.trim_matches(['[', ']']).to_string(), b.to_string())
        })
        .collect();
    v.sort();
    v
}

/// Every step of `op` (`merge` or `finish`) crashed once and recovered.
fn crash_every_step(test: &str, op: &str, steps: &[(&str, u32)]) {
    let Some(dm) = common::dm_or_skip(test) else {
        return;
    };
    let Some(bin) = common::dmsnap_or_skip(test) else {
        return;
    };
    if Proc::new("lvm").arg("version").output().is_err() {
        common::skip(test, "lvm2 not found");
        return;
    }
    println!("PRIVILEGED-TEST-RAN {test}");
    let exe = std::env::current_exe().unwrap();
    let lo = LoopDev::new(32 * MIB);
    let devs = lo.path.display().to_string();
    let vg = format!("dmf{}{op}", std::process::id());
    lvm(&["pvcreate", "-y", "--devices", &devs, &devs]);
    lvm(&["vgcreate", "-s", "1M", "--devices", &devs, &vg, &devs]);
    let len = 256 * 1024;
    let (before, after) = (pattern(21, len), pattern(22, len));
    let mut crashed = 0;
    for &(family, max) in steps {
        for k in 1..=max {
            // A fresh origin with a snapshot of `before`, the origin then `after`.
            let _ = lvm_try(&["lvremove", "-f", "-y", "--devices", &devs, &vg]);
            lvm(&[
                "lvcreate",
                "-y",
                "-L",
                "4M",
                "-n",
                "lv",
                "--devices",
                &devs,
                &vg,
            ]);
            write(&dev_node(&dm, &vg, "lv"), 0, &before);
            if op != "snapshot" {
                lvm(&[
                    "lvcreate",
                    "-y",
                    "-s",
                    "-L",
                    "2M",
                    "-n",
                    "snap",
                    "--devices",
                    &devs,
                    &format!("{vg}/lv"),
                ]);
                write(&dev_node(&dm, &vg, "lv"), 0, &after);
            }
            if op == "finish" {
                let s = merge::merge(&vg, "snap", &opts(&devs)).unwrap();
                assert_eq!(s.start, merge::MergeStart::Started);
                for _ in 0..300 {
                    let v = devmapper::lvm::write::session::VgSession::open(&vg, &opts(&devs))
                        .unwrap()
                        .vg()
                        .clone();
                    if merge::origin_merge_status(&dm, &v, "lv")
                        .unwrap()
                        .is_some_and(|p| p.done)
                    {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            let st = Proc::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "lvm_fault_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DMSNAP_LVM_FAULT_OP", op)
                .env("DMSNAP_LVM_FAULT_VG", &vg)
                .env("DMSNAP_LVM_FAULT_DEVS", &devs)
                .env("DEVMAPPER_FAULT_STEP", format!("{family}:{k}"))
                .output()
                .unwrap();
            let aborted = !st.status.success();
            let err = String::from_utf8_lossy(&st.stderr);
            if aborted {
                assert!(
                    err.contains("fault injection: aborting"),
                    "{op} {family}:{k}: {err}"
                );
                crashed += 1;
            }
            // A guardian process may still be resuming what the child suspended.
            std::thread::sleep(std::time::Duration::from_millis(300));
            // Recovery: dmsnap lvm activate VG.
            let (ok, out, e) = common::output(&bin, &["lvm", "activate", &vg, &devs]);
            assert!(ok, "{op} {family}:{k}: activate failed: {e}{out}");
            let what = format!("{op} {family}:{k} (aborted: {aborted})");
            let (ok, o, e) = lvm_try(&["vgck", "--devices", &devs, &vg]);
            assert!(
                ok && !e.contains("WARNING") && !o.contains("WARNING"),
                "{what}: vgck: {e}{o}"
            );
            assert_nothing_suspended(&dm, &vg);
            let l = lvs(&vg, &devs);
            let names: Vec<&str> = l.iter().map(|x| x.0.as_str()).collect();
            let origin = read(&dev_node(&dm, &vg, "lv"), len);
            // The origin's content with the snapshot gone / kept.
            let (if_gone, if_kept) = match op {
                "snapshot" => (&before, &before),
                "remove" => (&after, &after),
                _ => (&before, &after),
            };
            match names.as_slice() {
                // The snapshot gone (merged, removed, or not created): only the origin.
                ["lv"] => {
                    assert!(origin == *if_gone, "{what}: the origin's content");
                    assert_eq!(vg_devices(&dm, &vg), [format!("{vg}-lv")], "{what}");
                }
                // The snapshot there, not merging, as lvm2 would activate it.
                ["lv", "snap"] => {
                    assert!(l[1].1.starts_with('s'), "{what}: {l:?}");
                    assert!(origin == *if_kept, "{what}: the origin's content");
                    assert!(
                        read(&dev_node(&dm, &vg, "snap"), len) == before,
                        "{what}: snapshot intact"
                    );
                    assert_eq!(
                        vg_devices(&dm, &vg),
                        [
                            format!("{vg}-lv"),
                            format!("{vg}-lv-real"),
                            format!("{vg}-snap"),
                            format!("{vg}-snap-cow")
                        ],
                        "{what}"
                    );
                }
                other => panic!("{what}: LVs {other:?}"),
            }
            println!("{what}: recovered to LVs {names:?}");
            if !aborted {
                break; // past the last step of this family
            }
        }
    }
    println!("{op}: {crashed} crashes injected, each recovered");
    assert!(crashed >= 5, "{op}: only {crashed} crashes injected");
    let _ = lvm_try(&["vgremove", "-ff", "-y", "--devices", &devs, &vg]);
    let _ = lvm_try(&["pvremove", "-ff", "-y", "--devices", &devs, &devs]);
}

#[test]
fn lvm_merge_start_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_merge_start_crash_at_every_step_is_recovered",
        "merge",
        &[("lvm-merge", 3), ("lvm-dm", 12)],
    );
}

#[test]
fn lvm_merge_finish_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_merge_finish_crash_at_every_step_is_recovered",
        "finish",
        &[("lvm-merge-finish", 3), ("lvm-dm", 12)],
    );
}

#[test]
fn lvm_snapshot_create_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_snapshot_create_crash_at_every_step_is_recovered",
        "snapshot",
        &[("lvm-snapshot", 8)],
    );
}

#[test]
fn lvm_snapshot_remove_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_snapshot_remove_crash_at_every_step_is_recovered",
        "remove",
        &[("lvm-remove", 5)],
    );
}
