//! Kernel-written COW stores read by our reader: random writes to an origin under a live
//! kernel snapshot (set up with the crate's own typed tables), then our offline reading of
//! origin + COW equals the kernel's snapshot device byte for byte, and our usage equals
//! the kernel's status; then, with the devices removed, our offline merge turns the origin
//! into the snapshot's content.

use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use devmapper::cow::Store;
use devmapper::cow::merge::{MergeOptions, merge};
use devmapper::cow::reader::SnapshotReader;
use devmapper::io::ReadAt;
use devmapper::table::{Table, TableLine};
use devmapper::targets::{Snapshot, SnapshotOrigin, SnapshotStatus, Target, TargetStatus};
use devmapper::units::Sectors;
use devmapper::{DeviceMapper, LoadOptions, StatusFlush, SuspendOptions, Which};

use crate::common::{DevGuard, LoopDev, read, unique_name, write};
use crate::dm_or_skip;

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

/// A new device `tag` with the one-line table `target`, resumed.
fn device<'a>(dm: &'a DeviceMapper, tag: &str, sectors: u64, target: Target) -> DevGuard<'a> {
    let g = DevGuard::create(dm, unique_name(tag));
    let table = Table::from_lines(vec![TableLine::new(Sectors(0), Sectors(sectors), target)]);
    dm.load(&g.name, &table, LoadOptions::default())
        .expect("load");
    dm.resume(&g.name, SuspendOptions::default())
        .expect("resume");
    g
}

/// One live snapshot with `chunk` sectors, `writes` random writes to origin and snapshot.
fn case(dm: &DeviceMapper, tag: &str, chunk: u64, seed: u64, writes: usize) {
    const ORIGIN: u64 = 8 << 20;
    // Room for every origin chunk plus the metadata areas, at any chunk size: no overflow.
    const COW: u64 = 10 << 20;
    let lo = LoopDev::new(ORIGIN);
    let lc = LoopDev::new(COW);
    let data: Vec<u8> = (0..ORIGIN)
        .map(|i| (i / 512 % 251) as u8 ^ (i % 7) as u8)
        .collect();
    write(&lo.path, 0, &data);
    drop(data);
    let sectors = ORIGIN / 512;
    // The snapshot first (it reads the origin's loop device directly), then the origin
    // that sends writes through the copy-on-write: the order the old dmsetup setup used.
    let snap = device(
        dm,
        &format!("cowt-{tag}-s"),
        sectors,
        Target::Snapshot(Snapshot::persistent(
            lo.devnum(),
            lc.devnum(),
            Sectors(chunk),
        )),
    );
    let orig = device(
        dm,
        &format!("cowt-{tag}-o"),
        sectors,
        SnapshotOrigin::new(lo.devnum()).into(),
    );
    let (snap_dev, orig_dev) = (snap.node(), orig.node());

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

    let kernel_view = read(&snap_dev, ORIGIN as usize);
    let raw = dm
        .status_raw(&snap.name, Which::Live, StatusFlush::Flush)
        .unwrap();
    let info = raw[0].params.clone();
    let typed = dm
        .status(&snap.name, Which::Live, StatusFlush::Flush)
        .unwrap();
    let TargetStatus::Snapshot(SnapshotStatus::Active(kernel_usage)) = &typed[0].status else {
        panic!("{tag}: snapshot status {:?}", typed[0].status);
    };

    // Offline, from the backing files (the loop devices write through to them).
    let origin_path: &Path = lo.file.path();
    let cow_path: &Path = lc.file.path();
    let origin_file = File::open(origin_path).unwrap();
    let cow_file = File::open(cow_path).unwrap();
    let store = Store::open(&cow_file).unwrap();
    assert_eq!(
        store.kernel_status().unwrap().to_string(),
        info,
        "{tag}: usage"
    );
    let ours = store.usage().unwrap();
    assert_eq!(
        (ours.allocated, ours.total, ours.metadata),
        (
            kernel_usage.allocated,
            kernel_usage.total,
            kernel_usage.metadata
        ),
        "{tag}: typed usage"
    );
    let reader = SnapshotReader::open(&origin_file, &cow_file).unwrap();
    assert!(reader.exceptions() > 0, "{tag}: no exceptions were made");
    assert_eq!(reader.size().unwrap(), ORIGIN);
    let mut offline = vec![0u8; ORIGIN as usize];
    reader.read_at(&mut offline, 0).unwrap();
    if let Some(i) = offline.iter().zip(&kernel_view).position(|(a, b)| a != b) {
        panic!("{tag}: offline snapshot differs from the kernel's at byte {i}");
    }
    // And the origin really moved on: the snapshot is not just the origin.
    assert_ne!(offline, read(origin_path, ORIGIN as usize), "{tag}");
    let exceptions = reader.exceptions();
    drop(reader);

    // With the devices gone (origin first: it holds the snapshot's exceptions), the
    // offline merge rolls the origin back to the snapshot.
    drop(orig);
    drop(snap);
    let rw = |p: &Path| OpenOptions::new().read(true).write(true).open(p).unwrap();
    let (o, c) = (rw(origin_path), rw(cow_path));
    let report = merge(&o, &c, &MergeOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        report.completed && report.merged == exceptions as u64,
        "{tag}: {report:?}"
    );
    assert!(
        read(origin_path, ORIGIN as usize) == kernel_view,
        "{tag}: merged origin differs"
    );
    eprintln!("{tag}: {exceptions} exceptions, status {info}: equal; offline merge: equal");
}

#[test]
fn offline_snapshot_equals_kernel_snapshot() {
    let dm = dm_or_skip!("offline_snapshot_equals_kernel_snapshot");
    for (tag, chunk, seed) in [
        ("c8", 8, 11),
        ("c16", 16, 12),
        ("c128", 128, 13),
        ("c1", 1, 14),
    ] {
        case(&dm, tag, chunk, seed, 300);
    }
}
