//! Typed tables and statuses against the real kernel: what we load reads back as the same
//! typed value, and real statuses parse to what the situation implies.

use devmapper::StatusFlush;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use devmapper::table::{Table, TableLine};
use devmapper::targets::{
    DevRef, ErrorTarget, ExceptionStore, Linear, Snapshot, SnapshotOrigin, SnapshotStatus, Stripe,
    StripeHealth, Striped, Target, TargetStatus, Thin, ThinPool, ThinPoolStatus, ThinStatus, Zero,
};
use devmapper::units::Sectors;
use devmapper::{DeviceMapper, LoadOptions, SuspendOptions, Which};

use crate::common::{DevGuard, LoopDev, unique_name};
use crate::dm_or_skip;

fn line(start: u64, len: u64, t: impl Into<Target>) -> TableLine {
    TableLine::new(Sectors(start), Sectors(len), t)
}

fn table(lines: Vec<TableLine>) -> Table {
    Table::from_lines(lines)
}

/// Load `t` into a new device, resume, and check the kernel's table reads back as `t`
/// with paths resolved.
fn load_and_compare<'a>(dm: &'a DeviceMapper, tag: &str, t: &Table) -> DevGuard<'a> {
    let g = DevGuard::create(dm, unique_name(tag));
    dm.load(&g.name, t, LoadOptions::default()).unwrap();
    let expected = t.resolve_devices().unwrap();
    assert_eq!(
        dm.table(&g.name, Which::Inactive).unwrap(),
        expected,
        "{tag} inactive"
    );
    dm.resume(&g.name, SuspendOptions::default()).unwrap();
    let live = dm.table(&g.name, Which::Live).unwrap();
    assert_eq!(live, expected, "{tag} live");
    // The kernel's text and ours are the same bytes.
    let raw = dm.table_raw(&g.name, Which::Live).unwrap();
    let ours: Vec<String> = expected.lines().iter().map(|l| l.to_string()).collect();
    let theirs: Vec<String> = raw
        .iter()
        .map(|r| format!("{} {} {} {}", r.start, r.length, r.target_type, r.params))
        .collect();
    assert_eq!(ours, theirs, "{tag} text");
    g
}

#[test]
fn typed_tables_round_trip_through_the_kernel() {
    let dm = dm_or_skip!("typed_tables_round_trip_through_the_kernel");
    let a = LoopDev::new(8 << 20);
    let b = LoopDev::new(8 << 20);
    let cow = LoopDev::new(4 << 20);
    let pa = DevRef::path(&a.path).unwrap();
    let _lin = load_and_compare(
        &dm,
        "t-linear",
        &table(vec![line(0, 2048, Linear::new(pa.clone(), Sectors(8)))]),
    );
    let multi = table(vec![
        line(0, 100, Linear::new(a.devnum(), Sectors(0))),
        line(100, 28, Zero),
        line(
            128,
            256,
            Striped {
                chunk_size: Sectors(128),
                stripes: vec![
                    Stripe {
                        device: DevRef::Num(a.devnum()),
                        offset: Sectors(4096),
                    },
                    Stripe {
                        device: DevRef::Num(b.devnum()),
                        offset: Sectors(0),
                    },
                ],
            },
        ),
        line(384, 16, ErrorTarget::default()),
    ]);
    let m = load_and_compare(&dm, "t-multi", &multi);
    let st = dm.status(&m.name, Which::Live, StatusFlush::Flush).unwrap();
    assert_eq!(st[0].status, TargetStatus::Linear);
    assert_eq!(st[1].status, TargetStatus::Zero);
    match &st[2].status {
        TargetStatus::Striped(s) => {
            assert_eq!(s.stripes.len(), 2);
            assert_eq!(s.stripes[0].device, a.devnum());
            assert!(s.stripes.iter().all(|x| x.health == StripeHealth::Alive));
        }
        other => panic!("striped status {other:?}"),
    }

    let real = load_and_compare(
        &dm,
        "t-real",
        &table(vec![line(0, 8192, Linear::new(a.devnum(), Sectors(0)))]),
    );
    let real_dev = dm.info(&real.name).unwrap().dev;
    for (tag, store, chunk) in [
        ("t-snap-p", ExceptionStore::Persistent, 8),
        ("t-snap-po", ExceptionStore::PersistentOverflow, 16),
        ("t-snap-n", ExceptionStore::Transient, 32),
    ] {
        let mut s = Snapshot::persistent(real_dev, cow.devnum(), Sectors(chunk));
        s.store = store;
        if store == ExceptionStore::Persistent {
            s.features.discard_zeroes_cow = true;
            s.features.discard_passdown_origin = true;
        }
        // Zero the COW header so each persistent load starts a fresh store.
        cow.file.as_file().write_all_at(&[0u8; 16384], 0).unwrap();
        let g = load_and_compare(&dm, tag, &table(vec![line(0, 8192, Target::Snapshot(s))]));
        drop(g);
    }
    let _so = load_and_compare(
        &dm,
        "t-origin",
        &table(vec![line(0, 8192, SnapshotOrigin::new(real_dev))]),
    );
}

/// real (linear over a loop) + COW loop + snapshot + snapshot-origin, as LVM stacks them.
struct Stack<'a> {
    dm: &'a DeviceMapper,
    origin: DevGuard<'a>,
    snap: DevGuard<'a>,
    real: DevGuard<'a>,
    _lo: LoopDev,
    _cow: LoopDev,
}

fn stack<'a>(
    dm: &'a DeviceMapper,
    tag: &str,
    cow_bytes: u64,
    store: &str,
    chunk: u64,
) -> Stack<'a> {
    let lo = LoopDev::new(16 << 20);
    let cow = LoopDev::new(cow_bytes);
    let len = 16 * 2048;
    let real = DevGuard::active(
        dm,
        unique_name(&format!("{tag}-real")),
        &crate::common::one("linear", &format!("{} 0", lo.devnum()), len),
    );
    let rdev = dm.info(&real.name).unwrap().dev;
    let snap = DevGuard::active(
        dm,
        unique_name(&format!("{tag}-snap")),
        &crate::common::one(
            "snapshot",
            &format!("{rdev} {} {store} {chunk}", cow.devnum()),
            len,
        ),
    );
    let origin = DevGuard::active(
        dm,
        unique_name(&format!("{tag}-origin")),
        &crate::common::one("snapshot-origin", &rdev.to_string(), len),
    );
    Stack {
        dm,
        origin,
        snap,
        real,
        _lo: lo,
        _cow: cow,
    }
}

impl Stack<'_> {
    fn write_origin(&self, chunks: std::ops::Range<u64>, chunk_bytes: u64) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.origin.node())
            .unwrap();
        for c in chunks {
            let _ = f.write_all_at(&vec![0x5a; chunk_bytes as usize], c * chunk_bytes);
        }
        let _ = f.sync_all();
    }

    fn snap_status(&self) -> SnapshotStatus {
        let st = self
            .dm
            .status(&self.snap.name, Which::Live, StatusFlush::Flush)
            .unwrap();
        match &st[0].status {
            TargetStatus::Snapshot(s) => *s,
            other => panic!("snapshot status {other:?}"),
        }
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        // Order matters: the origin and snapshot hold the real device.
        crate::common::remove_quietly(self.dm, &self.origin.name);
        crate::common::remove_quietly(self.dm, &self.snap.name);
        crate::common::remove_quietly(self.dm, &self.real.name);
    }
}

#[test]
fn snapshot_statuses_fresh_used_invalid_overflow() {
    let dm = dm_or_skip!("snapshot_statuses_fresh_used_invalid_overflow");
    let s = stack(&dm, "st-p", 4 << 20, "P", 8);
    let fresh = match s.snap_status() {
        SnapshotStatus::Active(u) => u,
        other => panic!("fresh snapshot: {other:?}"),
    };
    // Header and first metadata area: 2 chunks of 8 sectors.
    assert_eq!(fresh.metadata, Sectors(16));
    assert_eq!(fresh.allocated, fresh.metadata);
    assert_eq!(fresh.total, Sectors(8192));
    s.write_origin(0..10, 4096);
    let used = match s.snap_status() {
        SnapshotStatus::Active(u) => u,
        other => panic!("used snapshot: {other:?}"),
    };
    assert_eq!(used.allocated, Sectors(16 + 10 * 8));
    assert_eq!(used.data(), Sectors(80));

    // A COW of 4 chunks overflows at once: P invalidates, PO reports Overflow.
    let inv = stack(&dm, "st-inv", 16 * 1024, "P", 8);
    inv.write_origin(0..8, 4096);
    assert_eq!(inv.snap_status(), SnapshotStatus::Invalid);
    // The origin keeps working.
    inv.write_origin(8..9, 4096);
    let ovf = stack(&dm, "st-ovf", 16 * 1024, "PO", 8);
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(ovf.snap.node())
            .unwrap();
        for c in 0..8u64 {
            let _ = f.write_all_at(&[1u8; 4096], c * 4096);
        }
        let _ = f.sync_all();
    }
    assert_eq!(ovf.snap_status(), SnapshotStatus::Overflow);
}

#[test]
fn merging_snapshot_status_reaches_done() {
    let dm = dm_or_skip!("merging_snapshot_status_reaches_done");
    let s = stack(&dm, "st-merge", 8 << 20, "P", 8);
    s.write_origin(0..64, 4096);
    let before = match s.snap_status() {
        SnapshotStatus::Active(u) => u,
        other => panic!("{other:?}"),
    };
    assert!(before.data() > Sectors(0));
    // Hand the exceptions over: suspend snapshot and origin, load snapshot-merge on the
    // origin, resume it, then drop the snapshot device.
    let real = dm.info(&s.real.name).unwrap().dev;
    let cow = s._cow.devnum();
    dm.suspend(&s.snap.name, SuspendOptions::default()).unwrap();
    dm.suspend(&s.origin.name, SuspendOptions::default())
        .unwrap();
    let merge = table(vec![line(
        0,
        16 * 2048,
        Target::SnapshotMerge(Snapshot::persistent(real, cow, Sectors(8))),
    )]);
    dm.load(&s.origin.name, &merge, LoadOptions::default())
        .unwrap();
    dm.resume(&s.origin.name, SuspendOptions::default())
        .unwrap();
    crate::common::remove_quietly(&dm, &s.snap.name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = dm
            .status(&s.origin.name, Which::Live, StatusFlush::Flush)
            .unwrap();
        let TargetStatus::SnapshotMerge(ms) = &st[0].status else {
            panic!("{:?}", st[0])
        };
        let p = ms
            .merge_progress()
            .expect("merge progress of an active merge");
        if p.done {
            assert_eq!(p.remaining, Sectors(0));
            break;
        }
        assert!(Instant::now() < deadline, "merge did not finish: {ms:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A thin device's mapped and highest mapped sectors, from its (flushed) status.
fn thin_usage(dm: &DeviceMapper, thin: &DevGuard) -> (Sectors, Option<Sectors>) {
    match &dm
        .status(&thin.name, Which::Live, StatusFlush::Flush)
        .unwrap()[0]
        .status
    {
        TargetStatus::Thin(ThinStatus::Active {
            mapped,
            highest_mapped,
        }) => (*mapped, *highest_mapped),
        other => panic!("thin status {other:?}"),
    }
}

#[test]
fn thin_pool_and_thin_status() {
    let dm = dm_or_skip!("thin_pool_and_thin_status");
    crate::ok_or_skip!(
        "thin_pool_and_thin_status",
        dm.target_version("thin-pool")
            .map_err(|e| format!("no thin-pool target: {e}"))
    );
    let meta = LoopDev::new(4 << 20);
    let data = LoopDev::new(64 << 20);
    let pool_t = table(vec![line(
        0,
        64 * 2048,
        ThinPool {
            metadata: DevRef::Num(meta.devnum()),
            data: DevRef::Num(data.devnum()),
            block_size: Sectors(128),
            low_water_mark: 16,
            features: Default::default(),
        },
    )]);
    let pool = load_and_compare(&dm, "t-pool", &pool_t);
    let pool_dev = dm.info(&pool.name).unwrap().dev;
    dm.message(&pool.name, Sectors(0), "create_thin 0").unwrap();
    let thin_t = table(vec![line(
        0,
        32 * 2048,
        Thin {
            pool: DevRef::Num(pool_dev),
            dev_id: 0,
            external_origin: None,
        },
    )]);
    let thin = load_and_compare(&dm, "t-thin", &thin_t);
    assert_eq!(thin_usage(&dm, &thin), (Sectors(0), None));
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(thin.node())
            .unwrap();
        f.write_all_at(&[7u8; 65536], 1 << 20).unwrap();
        f.sync_all().unwrap();
    }
    assert_eq!(
        thin_usage(&dm, &thin),
        (Sectors(128), Some(Sectors(2048 + 127)))
    );
    match &dm
        .status(&pool.name, Which::Live, StatusFlush::NoFlush)
        .unwrap()[0]
        .status
    {
        TargetStatus::ThinPool(ThinPoolStatus::Active(u)) => {
            assert_eq!(u.data_blocks.used, 1);
            assert_eq!(u.data_blocks.total, 1024);
            assert!(u.metadata_blocks.used > 0);
            assert_eq!(u.needs_check, Some(false));
        }
        other => panic!("pool status {other:?}"),
    }
    drop(thin);
    drop(pool);
}

#[test]
fn garbled_status_is_a_typed_error() {
    // No kernel needed: the parsers refuse nonsense with an error, never a panic.
    use devmapper::targets::{ParseErrorReason, TextKind};
    let invalid = |field, token: &str, expected| ParseErrorReason::Invalid {
        field,
        token: token.to_owned(),
        expected,
    };
    for (t, s, offset, reason) in [
        (
            "snapshot",
            "12/x 3",
            0,
            invalid("usage", "12/x", "ALLOCATED/TOTAL in sectors"),
        ),
        (
            "thin-pool",
            "1 2/3",
            5,
            ParseErrorReason::Missing("data usage"),
        ),
        (
            "striped",
            "2 8:0 A",
            6,
            invalid("stripe device", "A", "MAJOR:MINOR"),
        ),
        (
            "thin",
            "x y z",
            0,
            invalid("mapped sectors", "x", "a number, Fail, Error or -"),
        ),
    ] {
        let e = TargetStatus::parse(t, s).unwrap_err();
        assert_eq!(
            (e.target.as_str(), e.kind, e.offset, &e.reason),
            (t, TextKind::Status, offset, &reason),
            "{t} {s:?}"
        );
    }
}
