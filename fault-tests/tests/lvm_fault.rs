//! A crash after every step of an LVM snapshot create, remove, origin removal with its
//! snapshots (`lvremove --force`), merge start, merge finish and delayed-merge start at
//! activation, recovered by `dmsnap lvm activate VG`: each step's child process aborts
//! through devmapper's fault injection (`DEVMAPPER_FAULT_STEP`: `lvm-snapshot:<k>`,
//! `lvm-remove:<k>`, `lvm-remove-origin:<k>`, `lvm-merge:<k>` / `lvm-merge-finish:<k>`
//! around the metadata writes and device removals, `lvm-dm:<k>` after the k-th
//! device-mapper change of an activation: create, load, suspend, resume, clear, remove),
//! and afterwards lvm2 reads the VG (`vgck` clean), nothing is suspended, the VG's devices
//! are exactly those of its metadata, and the origin holds either its own content (the
//! operation undone) or the one it has when the operation completed; a committed merge is
//! always completed, an origin removal all or nothing. Privileged, with lvm2 as the oracle
//! (run in the VM). The starting states are made with the library (no lvm2 process per
//! step: lvm2 judges the result, `vgck` and `lvs`).

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
        "remove-origin" => {
            devmapper::lvm::write::snapshot::remove::lvremove(&vg, "lv", true, &opts(&devs))
                .unwrap();
        }
        "activate" => {
            // `dmsnap lvm activate VG` as the library does it: the VG brought to its plan
            // (the delayed merge started), then the merge polled and finished.
            use devmapper::lvm::{plan::PlanOptions, reconcile, report, scan};
            let file = std::fs::File::open(&devs).unwrap();
            let report = scan::scan(std::slice::from_ref(&file));
            let s = report::find_vg(&report, &vg).unwrap();
            let num = pv_devnum(&devs);
            let dev =
                |p: &devmapper::lvm::model::PhysicalVolume| s.device_of(p).map(|_| num.clone());
            let dm = DeviceMapper::new().unwrap();
            reconcile::activate_vg(&dm, s, &dev, None, &PlanOptions::default()).unwrap();
            let f = merge::wait(&vg, "lv", &opts(&devs), |_| {}).unwrap();
            assert!(f.is_some(), "the merge was not started by the activation");
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

/// The `major:minor` of a block device node.
fn pv_devnum(path: &str) -> devmapper::targets::DevRef {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path).unwrap().rdev();
    devmapper::targets::DevRef::num(libc::major(rdev), libc::minor(rdev))
}

/// The snapshots of `lv` that the operation's starting state has.
fn snapshots_for(op: &str) -> &'static [&'static str] {
    match op {
        "snapshot" => &[],
        "remove-origin" | "activate" => &["snap", "snap2"],
        _ => &["snap"],
    }
}

/// The starting state of `op`, made with the library (fast: no lvm2 process, no scan of
/// every device): `lv` (4 MiB) holding `before`; unless `op` creates it, snapshots of
/// that, then `after` written to the origin; for the merge operations a merge of `snap`
/// started (`finish`: and done) or recorded while the origin is open (`activate`:
/// delayed, and `snap2` stays: the origin goes back to `snapshot-origin` when done).
fn set_up(dm: &DeviceMapper, op: &str, vg: &str, devs: &str, before: &[u8], after: &[u8]) {
    use devmapper::lvm::write::ops::{LvCreate, lvcreate};
    use devmapper::lvm::write::snapshot::create::{SnapshotRequest, lvcreate_snapshot};
    use devmapper::lvm::write::snapshot::size::CowSize;
    let o = opts(devs);
    lvcreate(vg, "lv", &LvCreate::size("4M").unwrap(), &o).unwrap();
    write(&dev_node(dm, vg, "lv"), 0, before);
    for snap in snapshots_for(op) {
        let req = SnapshotRequest::new(CowSize::Sectors(4096));
        lvcreate_snapshot(vg, "lv", Some(snap), &req, &o).unwrap();
    }
    if op == "snapshot" {
        return;
    }
    write(&dev_node(dm, vg, "lv"), 0, after);
    match op {
        "finish" => {
            let s = merge::merge(vg, "snap", &o).unwrap();
            assert_eq!(s.start, merge::MergeStart::Started);
            for _ in 0..300 {
                let v = devmapper::lvm::write::session::VgSession::open(vg, &o)
                    .unwrap()
                    .vg()
                    .clone();
                if merge::origin_merge_status(dm, &v, "lv")
                    .unwrap()
                    .is_some_and(|p| p.done)
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        "activate" => {
            // Held open: the merge is only recorded, for the next activation.
            let held = std::fs::File::open(dev_node(dm, vg, "lv")).unwrap();
            let s = merge::merge(vg, "snap", &o).unwrap();
            assert_eq!(s.start, merge::MergeStart::DelayedOriginOpen);
            drop(held);
        }
        _ => {}
    }
}

/// Back to an empty VG (the origin and whatever snapshots are left), with the library.
fn tear_down(vg: &str, devs: &str) {
    let o = opts(devs);
    let v = devmapper::lvm::write::session::VgSession::open(vg, &o)
        .unwrap()
        .vg()
        .clone();
    if v.lv("lv").is_some() {
        devmapper::lvm::write::snapshot::remove::lvremove(vg, "lv", true, &o).unwrap();
    }
}

/// Every step of `op` crashed once and recovered.
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
    let t0 = std::time::Instant::now();
    let exe = std::env::current_exe().unwrap();
    let lo = LoopDev::new(32 * MIB);
    let devs = lo.path.display().to_string();
    let vg = format!("dmf{}{}", std::process::id(), op.replace('-', ""));
    lvm(&["pvcreate", "-y", "--devices", &devs, &devs]);
    lvm(&["vgcreate", "-s", "1M", "--devices", &devs, &vg, &devs]);
    let len = 256 * 1024;
    let (before, after) = (pattern(21, len), pattern(22, len));
    // The end states that are right: the operation undone (`kept`: these snapshots, the
    // origin `if_kept`) or completed (`left`: these snapshots, the origin `if_gone`; no
    // origin at all after its removal). A merge committed before the crash is always
    // completed; an origin removal is all or nothing.
    let (kept, left): (Option<&[&str]>, Option<&[&str]>) = match op {
        "snapshot" => (Some(&["snap"]), Some(&[])),
        "remove-origin" => (Some(&["snap", "snap2"]), None),
        "finish" => (None, Some(&[])),
        "activate" => (None, Some(&["snap2"])),
        _ => (Some(&["snap"]), Some(&[])),
    };
    let (if_gone, if_kept) = match op {
        "snapshot" => (&before, &before),
        "remove" => (&after, &after),
        _ => (&before, &after),
    };
    let mut crashed = 0;
    for &(family, max) in steps {
        for k in 1..=max {
            let t = std::time::Instant::now();
            let mut ms = Vec::new();
            let lap = |m: &mut Vec<u128>| m.push(t.elapsed().as_millis());
            set_up(&dm, op, &vg, &devs, &before, &after);
            lap(&mut ms);
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
            let out = String::from_utf8_lossy(&st.stdout);
            if aborted {
                assert!(
                    err.contains("fault injection: aborting"),
                    "{op} {family}:{k}: {err}{out}"
                );
                crashed += 1;
            }
            lap(&mut ms);
            // A guardian process may still be resuming what the child suspended.
            if aborted {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            // Recovery: dmsnap lvm activate VG.
            let (ok, o, e) = common::output(&bin, &["lvm", "activate", &vg, &devs]);
            assert!(ok, "{op} {family}:{k}: activate failed: {e}{o}");
            lap(&mut ms);
            let what = format!("{op} {family}:{k} (aborted: {aborted})");
            let (ok, o, e) = lvm_try(&["vgck", "--devices", &devs, &vg]);
            assert!(
                ok && !e.contains("WARNING") && !o.contains("WARNING"),
                "{what}: vgck: {e}{o}"
            );
            lap(&mut ms);
            assert_nothing_suspended(&dm, &vg);
            let l = lvs(&vg, &devs);
            lap(&mut ms);
            let names: Vec<&str> = l.iter().map(|x| x.0.as_str()).collect();
            let with = |snaps: &[&str]| -> Vec<String> {
                std::iter::once("lv")
                    .chain(snaps.iter().copied())
                    .map(str::to_string)
                    .collect()
            };
            let (snaps, content) = if names.is_empty() {
                // The origin removed with its snapshots: nothing of them left.
                assert!(left.is_none(), "{what}: the origin is gone");
                assert!(vg_devices(&dm, &vg).is_empty(), "{what}");
                (None, None)
            } else if let Some(s) = left.filter(|s| names == with(s)) {
                (Some(s), Some(if_gone))
            } else if let Some(s) = kept.filter(|s| names == with(s)) {
                (Some(s), Some(if_kept))
            } else {
                panic!("{what}: LVs {l:?}");
            };
            if let (Some(snaps), Some(content)) = (snaps, content) {
                let origin = read(&dev_node(&dm, &vg, "lv"), len);
                assert!(origin == *content, "{what}: the origin's content");
                // The snapshots there, not merging, as lvm2 would activate them.
                let mut want = vec![format!("{vg}-lv")];
                if !snaps.is_empty() {
                    want.push(format!("{vg}-lv-real"));
                }
                for (snap, attr) in snaps.iter().zip(&l[1..]) {
                    assert!(attr.1.starts_with('s'), "{what}: {l:?}");
                    assert!(
                        read(&dev_node(&dm, &vg, snap), len) == before,
                        "{what}: snapshot {snap} intact"
                    );
                    want.push(format!("{vg}-{snap}"));
                    want.push(format!("{vg}-{snap}-cow"));
                }
                want.sort();
                assert_eq!(vg_devices(&dm, &vg), want, "{what}");
            }
            println!(
                "{what}: recovered to LVs {names:?} ({} ms; set up, child, activate, vgck, lvs at {ms:?})",
                t.elapsed().as_millis()
            );
            tear_down(&vg, &devs);
            if !aborted {
                break; // past the last step of this family
            }
        }
    }
    println!(
        "{op}: {crashed} crashes injected, each recovered ({} s)",
        t0.elapsed().as_secs()
    );
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
        &[("lvm-remove", 8)],
    );
}

#[test]
fn lvm_origin_remove_with_snapshots_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_origin_remove_with_snapshots_crash_at_every_step_is_recovered",
        "remove-origin",
        &[("lvm-remove-origin", 9)],
    );
}

#[test]
fn lvm_delayed_merge_activation_crash_at_every_step_is_recovered() {
    crash_every_step(
        "lvm_delayed_merge_activation_crash_at_every_step_is_recovered",
        "activate",
        &[("lvm-dm", 16), ("lvm-merge-finish", 3)],
    );
}
