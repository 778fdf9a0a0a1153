use super::sample::SAMPLE;
use crate::lvm::activate::{ActivateError, check_metadata, uuid_prefix, vg_part_is};
use crate::lvm::check::Blocker;
use crate::lvm::config::ParseMode;
use crate::lvm::model::VolumeGroup;

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap()
}

const STATUS: &str = "[\"RESIZEABLE\", \"READ\", \"WRITE\"]";

#[test]
fn plain_vg_passes() {
    check_metadata(&vg(SAMPLE), None).unwrap();
}

#[test]
fn exported_is_refused() {
    let t = SAMPLE.replacen(
        STATUS,
        "[\"RESIZEABLE\", \"READ\", \"WRITE\", \"EXPORTED\"]",
        1,
    );
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::Exported { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("vg0 is exported"), "{e}");
}

#[test]
fn foreign_system_id_is_refused() {
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "system_id = \"otherhost\"\nextent_size = 8192",
        1,
    );
    let e = check_metadata(&vg(&t), Some("thishost")).unwrap_err();
    assert!(
        matches!(&e, ActivateError::Blocked(Blocker::ForeignSystemId { system_id, .. }) if system_id == "otherhost"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"thishost\""), "{e}");
    // No local system id: a VG with one is foreign too.
    assert!(check_metadata(&vg(&t), None).is_err());
    check_metadata(&vg(&t), Some("otherhost")).unwrap();
}

#[test]
fn lock_type_is_refused() {
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "lock_type = \"sanlock\"\nextent_size = 8192",
        1,
    );
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::LockType { .. })),
        "{e:?}"
    );
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "lock_type = \"none\"\nextent_size = 8192",
        1,
    );
    check_metadata(&vg(&t), None).unwrap();
}

#[test]
fn missing_pv_is_refused() {
    let v = vg(SAMPLE);
    let pv0 = v.pvs.first().unwrap();
    let handle = pv0.handle.clone();
    // Flag the first PV MISSING.
    let needle = format!("{handle} {{\nid = \"{}\"", pv0.id);
    let at = SAMPLE.find(&needle).expect("sample PV layout");
    let status_at = at + SAMPLE[at..].find("status = [").unwrap() + "status = [".len();
    let mut t = SAMPLE.to_string();
    t.insert_str(status_at, "\"MISSING\", ");
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::MissingPvs { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(&handle), "{e}");
}

#[test]
fn dm_name_split() {
    assert!(vg_part_is("vg0-root", "vg0"));
    assert!(vg_part_is("my--vg-lv--1-real", "my-vg"));
    assert!(!vg_part_is("my--vg-lv", "my"));
    assert!(!vg_part_is("vg0x-root", "vg0"));
    assert!(!vg_part_is("vg0", "vg0"));
}

#[test]
fn prefix() {
    let v = vg(SAMPLE);
    assert_eq!(uuid_prefix(&v.id), "LVM-kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE");
}

mod parallel {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::super::sample::{SAMPLE, THIN_STRIPED};
    use super::vg;
    use crate::lvm::activate::run_ordered;
    use crate::lvm::model::PhysicalVolume;
    use crate::lvm::plan::{PlanOptions, plan_vg};
    use crate::lvm::reconcile::independent;
    use crate::targets::DevRef;
    use crate::{DevNum, DeviceEntry};

    /// Jobs 0..8: 0 -> 1 -> 2 (a chain), 0 -> 3..6 (a fan-out), 7 alone.
    fn dag() -> Vec<Vec<usize>> {
        vec![
            vec![1, 3, 4, 5, 6],
            vec![2],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        ]
    }

    #[test]
    fn runs_every_job_after_its_prerequisites() {
        for threads in [1, 3, 8] {
            let started: Mutex<Vec<usize>> = Mutex::new(Vec::new());
            let finished: Mutex<Vec<usize>> = Mutex::new(Vec::new());
            let order = run_ordered(&dag(), threads, |i| -> Result<(), ()> {
                started.lock().unwrap().push(i);
                std::thread::sleep(Duration::from_millis(5));
                finished.lock().unwrap().push(i);
                Ok(())
            })
            .unwrap();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "{threads} threads");
            let started = started.into_inner().unwrap();
            let pos = |v: &[usize], x| v.iter().position(|&y| y == x).unwrap();
            // A job starts only after each job that unblocks it has finished.
            for (i, next) in dag().iter().enumerate() {
                for &j in next {
                    assert!(pos(&order, i) < pos(&order, j), "{threads}: {order:?}");
                    assert!(
                        pos(&started, j) > pos(&started, i),
                        "{threads}: {started:?}"
                    );
                }
            }
            if threads == 1 {
                // One thread: the lowest-numbered ready job first.
                assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 7]);
            }
        }
    }

    #[test]
    fn independent_jobs_overlap() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let none: Vec<Vec<usize>> = vec![Vec::new(); 8];
        run_ordered(&none, 4, |_| -> Result<(), ()> {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert!(most.load(Ordering::SeqCst) >= 2, "never ran two at once");
        assert!(most.load(Ordering::SeqCst) <= 4, "more than 4 threads");
    }

    #[test]
    fn the_first_error_stops_what_depends_on_it() {
        for threads in [1, 4] {
            let ran: Mutex<Vec<usize>> = Mutex::new(Vec::new());
            let r = run_ordered(&dag(), threads, |i| {
                ran.lock().unwrap().push(i);
                if i == 1 {
                    Err(format!("job {i}"))
                } else {
                    Ok(())
                }
            });
            assert_eq!(r, Err("job 1".to_string()));
            // Job 2 waits for job 1, which failed: it never starts.
            assert!(!ran.lock().unwrap().contains(&2), "{threads}");
        }
    }

    #[test]
    fn a_cycle_is_left_out() {
        // 1 and 2 unblock each other: neither is ever ready.
        let order = run_ordered(&[vec![], vec![2], vec![1]], 2, |_| -> Result<(), ()> {
            Ok(())
        })
        .unwrap();
        assert_eq!(order, [0]);
    }

    fn sdb(_: &PhysicalVolume) -> Option<DevRef> {
        Some(DevRef::num(8, 16))
    }

    #[test]
    fn only_new_groups_without_snapshots_are_made_in_parallel() {
        let v = vg(SAMPLE);
        let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
        let names: Vec<&str> = p.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vg0-root-real",
                "vg0-root_snap-cow",
                "vg0-root_snap",
                "vg0-root",
                "vg0-home"
            ]
        );
        // The snapshot stack goes one device at a time; the linear LV is on its own.
        let alone = independent(&p, &HashMap::new());
        assert_eq!(alone, [None, None, None, None, Some(vec![])]);
        // An LV whose device exists is compared and reloaded, not made.
        let listed: HashMap<String, DeviceEntry> = [(
            "vg0-home".to_string(),
            DeviceEntry {
                name: "vg0-home".into(),
                dev: DevNum::new(254, 0),
                event_nr: None,
                uuid: Some(p.devices[4].uuid.to_string()),
            },
        )]
        .into();
        assert!(independent(&p, &listed).iter().all(Option::is_none));
    }

    #[test]
    fn a_thin_pool_stack_is_made_after_its_layers() {
        let v = vg(THIN_STRIPED);
        let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
        let alone = independent(&p, &HashMap::new());
        let index: HashMap<&str, usize> = p
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let mut with_refs = 0;
        for (i, d) in p.devices.iter().enumerate() {
            let refs = alone[i].as_ref().expect("no snapshot here: all parallel");
            // Exactly the planned devices its table names, each planned before it.
            let mut want: Vec<usize> = d
                .table
                .lines()
                .iter()
                .flat_map(|l| l.target.devices())
                .filter_map(crate::lvm::plan::mapper_name)
                .map(|n| index[n.as_str()])
                .collect();
            want.sort_unstable();
            let mut got = refs.clone();
            got.sort_unstable();
            assert_eq!(got, want, "{}", d.name);
            assert!(got.iter().all(|&j| j < i), "{}", d.name);
            with_refs += usize::from(!got.is_empty());
        }
        assert!(
            with_refs >= 2,
            "the pool and the thin LV refer to layers: {with_refs}"
        );
    }
}
