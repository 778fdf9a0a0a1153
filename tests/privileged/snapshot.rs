//! Snapshot workflows on raw devices: content, bad inputs that change nothing, and a crash
//! after every step of every workflow, recovered.

use devmapper::snapshot::{
    BadChunkKind, BadDeviceKind, RollbackOptions, SnapError, SnapshotOptions, Wrapper,
};
use devmapper::units::Sectors;
use devmapper::{DeviceMapper, DmName, Which};

use crate::common::{
    DevGuard, LoopDev, WrapGuard, assert_nothing_suspended, one, pattern, read, unique_name, write,
};
use crate::dm_or_skip;

const MIB: u64 = 1 << 20;

fn devices(dm: &DeviceMapper, prefix: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = dm
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| d.name.starts_with(prefix))
        .map(|d| {
            let n = DmName::new(&d.name).unwrap();
            let t = dm.table_raw(&n, Which::Live).unwrap();
            let i = dm.info(&n).unwrap();
            (
                d.name,
                format!(
                    "{t:?} suspended={} inactive={}",
                    i.suspended(),
                    i.has_inactive_table()
                ),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn raw_snapshot_discard_and_rollback() {
    let dm = dm_or_skip!("raw_snapshot_discard_and_rollback");
    let lo = LoopDev::new(16 * MIB);
    let cow = LoopDev::new(4 * MIB);
    let name = unique_name("raw");
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = WrapGuard {
        dm: &dm,
        name: name.clone(),
    };
    let p0 = pattern(1, MIB as usize);
    write(&w.node(), 0, &p0);
    let s = w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
    assert_eq!(s.name().as_str(), format!("{name}-snap"));
    let p1 = pattern(2, MIB as usize / 2);
    write(&w.node(), 4096, &p1);
    assert_eq!(
        read(&s.node(), MIB as usize),
        p0,
        "snapshot changed with the origin"
    );
    let mut now = p0.clone();
    now[4096..4096 + p1.len()].copy_from_slice(&p1);
    assert_eq!(read(&w.node(), MIB as usize), now);
    let st = w.status().unwrap();
    assert_eq!(st.snapshots.len(), 1);
    let u = st.snapshots[0].usage.unwrap();
    assert!(u.data() >= Sectors((p1.len() as u64) / 512), "{u:?}");
    // Taking it again by the same name returns the same snapshot.
    assert_eq!(
        w.take_snapshot(&SnapshotOptions::new(&cow.path))
            .unwrap()
            .name(),
        s.name()
    );
    s.discard().unwrap();
    assert_eq!(
        read(&w.node(), MIB as usize),
        now,
        "discard changed the origin"
    );
    assert!(
        !dm.exists(&DmName::new(&format!("{name}-real")).unwrap())
            .unwrap()
    );
    assert!(matches!(
        dm.table(&name, Which::Live).unwrap().lines()[0].target,
        devmapper::targets::Target::Linear(_)
    ));

    // Rollback: the origin returns to the snapshot's content, usable at once.
    let s = w
        .take_snapshot(&SnapshotOptions::new(&cow.path).chunk(Sectors(16)))
        .unwrap();
    write(&w.node(), 0, &pattern(3, MIB as usize));
    let m = s.rollback(RollbackOptions::default()).unwrap();
    assert_eq!(
        read(&w.node(), MIB as usize),
        now,
        "origin does not show the snapshot at once"
    );
    let mut polls = 0;
    m.wait(Some(std::time::Duration::from_secs(120)), |_| polls += 1)
        .unwrap();
    assert_eq!(read(&w.node(), MIB as usize), now);
    assert!(
        !dm.exists(&DmName::new(&format!("{name}-real")).unwrap())
            .unwrap()
    );
    assert!(
        !dm.exists(&DmName::new(&format!("{name}-snap")).unwrap())
            .unwrap()
    );
    assert_nothing_suspended(&dm, name.as_str());
    w.unwrap_device().unwrap();
    assert!(!dm.exists(&name).unwrap());
}

#[test]
fn bad_inputs_change_nothing() {
    let dm = dm_or_skip!("bad_inputs_change_nothing");
    let lo = LoopDev::new(16 * MIB);
    let cow = LoopDev::new(4 * MIB);
    let tiny = LoopDev::new(8192);
    let big_sector = LoopDev::with_sector_size(4 * MIB, 4096);
    let name = unique_name("bad");
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = WrapGuard {
        dm: &dm,
        name: name.clone(),
    };
    write(&w.node(), 0, &pattern(7, 65536));
    write(&cow.path, 0, b"SnAp-not-really");
    let before = devices(&dm, name.as_str());

    type Case<'a> = (&'a str, SnapshotOptions, fn(&SnapError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "missing COW",
            SnapshotOptions::new("/dev/does-not-exist"),
            |e| {
                matches!(
                    e,
                    SnapError::BadDevice {
                        kind: BadDeviceKind::Stat(_),
                        ..
                    }
                )
            },
        ),
        (
            "not a block device",
            SnapshotOptions::new("/proc/version"),
            |e| {
                matches!(
                    e,
                    SnapError::BadDevice {
                        kind: BadDeviceKind::NotBlockDevice,
                        ..
                    }
                )
            },
        ),
        ("COW too small", SnapshotOptions::new(&tiny.path), |e| {
            matches!(e, SnapError::CowTooSmall { .. })
        }),
        (
            "chunk not a power of two",
            SnapshotOptions::new(&cow.path).chunk(Sectors(12)),
            |e| {
                matches!(
                    e,
                    SnapError::BadChunk {
                        kind: BadChunkKind::NotPowerOfTwo,
                        ..
                    }
                )
            },
        ),
        (
            "chunk zero",
            SnapshotOptions::new(&cow.path).chunk(Sectors(0)),
            |e| {
                matches!(
                    e,
                    SnapError::BadChunk {
                        kind: BadChunkKind::NotPowerOfTwo,
                        ..
                    }
                )
            },
        ),
        (
            "chunk below the block size",
            SnapshotOptions::new(&big_sector.path).chunk(Sectors(4)),
            |e| {
                matches!(
                    e,
                    SnapError::BadChunk {
                        kind: BadChunkKind::BelowBlockSize { block_bytes: 4096 },
                        ..
                    }
                )
            },
        ),
        (
            "COW is the origin's device",
            SnapshotOptions::new(&lo.path),
            |e| {
                matches!(
                    e,
                    SnapError::BadDevice {
                        kind: BadDeviceKind::CowIsOrigin,
                        ..
                    }
                )
            },
        ),
        (
            "snapshot name taken",
            SnapshotOptions::new(&cow.path).name(name.clone()),
            |e| matches!(e, SnapError::NameTaken { .. }),
        ),
    ];
    for (what, opts, ok) in cases {
        let e = match w.take_snapshot(&opts) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        assert!(ok(&e), "{what}: wrong error {e:?}");
        assert!(!e.to_string().is_empty());
        assert_eq!(
            devices(&dm, name.as_str()),
            before,
            "{what} changed the devices"
        );
    }
    // The COW in use by another device.
    let holder = DevGuard::active(
        &dm,
        unique_name("holder"),
        &one("linear", &format!("{} 0", cow.devnum()), 8),
    );
    let e = w
        .take_snapshot(&SnapshotOptions::new(&cow.path))
        .unwrap_err();
    assert!(matches!(e, SnapError::CowInUse { .. }), "{e:?}");
    assert!(e.to_string().contains(holder.name.as_str()), "{e}");
    drop(holder);
    // Nothing written to the COW by any refusal.
    assert_eq!(
        crate::common::read_at(&cow.path, 0, 15).unwrap(),
        b"SnAp-not-really"
    );
    assert_eq!(devices(&dm, name.as_str()), before);
    // Invalid names never reach the kernel.
    assert_eq!(DmName::new("a/b").unwrap_err().reason, "contains '/'");
    let long = DmName::new(&"w".repeat(125)).unwrap();
    assert!(matches!(
        Wrapper::wrap(&dm, &long, &lo.path),
        Err(SnapError::NameTooLong { .. })
    ));
    assert!(matches!(
        Wrapper::wrap(&dm, &name, &cow.path),
        Err(SnapError::NameTaken { .. })
    ));
    // A device that is not a wrapper.
    let plain = DevGuard::active(&dm, unique_name("plain"), &one("zero", "", 8));
    assert!(matches!(
        Wrapper::open(&dm, &plain.name),
        Err(SnapError::NotWrapped { .. })
    ));
    // Rollback of a transient snapshot is refused and changes nothing.
    let s = w
        .take_snapshot(&SnapshotOptions::new(&cow.path).transient(true))
        .unwrap();
    let before = devices(&dm, name.as_str());
    assert!(matches!(
        s.rollback(RollbackOptions::default()),
        Err(SnapError::WrongState { .. })
    ));
    assert_eq!(devices(&dm, name.as_str()), before);
    w.snapshot(None).unwrap().discard().unwrap();
    assert_nothing_suspended(&dm, name.as_str());
}

#[test]
fn several_snapshots_of_one_origin() {
    let dm = dm_or_skip!("several_snapshots_of_one_origin");
    let lo = LoopDev::new(16 * MIB);
    let (c1, c2) = (LoopDev::new(4 * MIB), LoopDev::new(4 * MIB));
    let name = unique_name("multi");
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = WrapGuard {
        dm: &dm,
        name: name.clone(),
    };
    write(&w.node(), 0, &pattern(1, 65536));
    let s1 = w
        .take_snapshot(
            &SnapshotOptions::new(&c1.path).name(DmName::new(&format!("{name}-a")).unwrap()),
        )
        .unwrap();
    write(&w.node(), 0, &pattern(2, 65536));
    let s2 = w
        .take_snapshot(
            &SnapshotOptions::new(&c2.path)
                .chunk(Sectors(32))
                .name(DmName::new(&format!("{name}-b")).unwrap()),
        )
        .unwrap();
    write(&w.node(), 0, &pattern(3, 65536));
    assert_eq!(read(&s1.node(), 65536), pattern(1, 65536));
    assert_eq!(read(&s2.node(), 65536), pattern(2, 65536));
    assert!(matches!(w.snapshot(None), Err(SnapError::Ambiguous { .. })));
    // A rollback needs the other snapshot gone first.
    let n2 = s2.name().clone();
    assert!(matches!(
        s1.rollback(RollbackOptions::default()),
        Err(SnapError::WrongState { .. })
    ));
    w.snapshot(Some(&n2)).unwrap().discard().unwrap();
    let s1 = w.snapshot(None).unwrap();
    write(&w.node(), 0, &pattern(4, 65536));
    assert_eq!(read(&s1.node(), 65536), pattern(1, 65536));
    s1.discard().unwrap();
    assert_eq!(read(&w.node(), 65536), pattern(4, 65536));
    assert_nothing_suspended(&dm, name.as_str());
}
