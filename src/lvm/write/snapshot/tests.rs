//! Snapshot creation and removal on PV images (no device-mapper needed: the origins are
//! inactive, so both write metadata only): one commit each, the COW header zeroed before
//! the metadata names it, every refusal writes nothing.

use std::path::PathBuf;

use super::SnapshotError;
use super::create::{SnapshotRequest, lvcreate_snapshot};
use super::remove::lvremove;
use super::size::CowSize;
use crate::lvm::write::error::WriteError;
use crate::lvm::write::lock::LockDir;
use crate::lvm::write::ops::{self, LvCreate};
use crate::lvm::write::session::{VgSession, WriteOptions};

struct Vg {
    _dir: tempfile::TempDir,
    path: PathBuf,
    o: WriteOptions,
}

fn setup() -> Vg {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pv.img");
    // Junk everywhere: a COW that is not zeroed would show it.
    std::fs::write(&path, vec![0xa5u8; 64 << 20]).unwrap();
    let mut o = WriteOptions::new("test");
    o.devices = Some(vec![path.clone()]);
    o.lock_dir = LockDir::new(dir.path().join("lock"));
    o.backups = None;
    ops::pvcreate(std::slice::from_ref(&path), true, &o).unwrap();
    ops::vgcreate("vg1", std::slice::from_ref(&path), None, false, &o).unwrap();
    let mut req = LvCreate::size("12M").unwrap();
    req.activate = false;
    req.zero = false;
    ops::lvcreate("vg1", "lv0", &req, &o).unwrap();
    Vg { _dir: dir, path, o }
}

fn committed(v: &Vg) -> crate::lvm::model::VolumeGroup {
    VgSession::open("vg1", &v.o).unwrap().vg().clone()
}

#[test]
fn create_then_remove_on_images() {
    let v = setup();
    let seq = committed(&v).seqno;
    let req = SnapshotRequest::new(CowSize::Sectors(90 << 11));
    let made = lvcreate_snapshot("vg1", "lv0", None, &req, &v.o).unwrap();
    assert_eq!(made.name, "lv0_snap");
    assert_eq!(made.internal, "snapshot0");
    assert_eq!(made.extents, 4);
    assert!(!made.live);
    assert_eq!(
        made.notices,
        [
            "Rounding up size to full physical extent 92.00 MiB",
            "Reducing COW size 92.00 MiB down to maximum usable size 16.00 MiB."
        ]
    );
    let vg = committed(&v);
    assert_eq!(vg.seqno, seq + 1, "one commit");
    let link = vg.cow_link("lv0_snap").unwrap();
    assert_eq!((link.origin, link.chunk_size), ("lv0", 8));
    // The COW's first 4 KiB are zeroed on the PV, the rest of its first extent is not.
    let cow = vg.lv("lv0_snap").unwrap();
    let crate::lvm::model::SegmentKind::Striped { areas, .. } = &cow.segments[0].kind else {
        panic!()
    };
    let crate::lvm::model::Area::Pv { pe, .. } = areas[0] else {
        panic!()
    };
    let off = (vg.pvs[0].pe_start + pe * vg.extent_size) * 512;
    let img = std::fs::read(&v.path).unwrap();
    let at = usize::try_from(off).unwrap();
    assert!(img[at..at + 4096].iter().all(|&b| b == 0));
    assert_eq!(img[at + 4096], 0xa5);

    // A second snapshot, by relative size: snapshot1.
    let mut req = SnapshotRequest::new(CowSize::parse_extents("50%ORIGIN").unwrap());
    req.chunk = 128;
    let two = lvcreate_snapshot("vg1", "lv0", Some("s2"), &req, &v.o).unwrap();
    assert_eq!((two.internal.as_str(), two.extents), ("snapshot1", 3));

    // Removal: the origin needs force; the internal LV is refused; the snapshot goes.
    let seq = committed(&v).seqno;
    let e = lvremove("vg1", "lv0", false, &v.o).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Snapshot(SnapshotError::OriginHasSnapshots { count: 2, .. })
        ),
        "{e}"
    );
    let e = ops::lvremove("vg1", "lv0", &v.o).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Snapshot(SnapshotError::OriginHasSnapshots { .. })
        ),
        "{e}"
    );
    let e = ops::lvremove("vg1", "snapshot0", &v.o).unwrap_err();
    assert!(
        matches!(e, WriteError::Snapshot(SnapshotError::InternalLv { .. })),
        "{e}"
    );
    assert_eq!(committed(&v).seqno, seq, "refusals write nothing");
    ops::lvremove("vg1", "lv0_snap", &v.o).unwrap();
    let vg = committed(&v);
    assert_eq!(vg.seqno, seq + 1, "one commit");
    assert!(vg.lv("lv0_snap").is_none() && vg.lv("snapshot0").is_none());
    assert!(vg.cow_link("s2").is_some());
    // The origin with force: with its last snapshot.
    lvremove("vg1", "lv0", true, &v.o).unwrap();
    let vg = committed(&v);
    assert_eq!(vg.seqno, seq + 2);
    assert!(vg.lvs.is_empty(), "{:?}", vg.lvs);
    // A plain LV through the snapshot lvremove: handed to ops::lvremove.
    let mut req = LvCreate::size("4M").unwrap();
    req.activate = false;
    req.zero = false;
    ops::lvcreate("vg1", "plain", &req, &v.o).unwrap();
    lvremove("vg1", "plain", true, &v.o).unwrap();
    assert!(committed(&v).lvs.is_empty());
}

#[test]
fn refusals_write_nothing() {
    let v = setup();
    let seq = committed(&v).seqno;
    let sized = |s: CowSize| SnapshotRequest::new(s);
    let cases: Vec<(Option<&str>, &str, SnapshotRequest)> = vec![
        (
            Some("s"),
            "lv0",
            SnapshotRequest {
                chunk: 12,
                ..sized(CowSize::Extents(3))
            },
        ),
        (
            Some("s"),
            "lv0",
            sized(CowSize::Percent {
                percent: 10,
                of: super::size::PercentOf::Lv,
            }),
        ),
        (Some("s"), "nope", sized(CowSize::Extents(3))),
        (Some("lv0"), "lv0", sized(CowSize::Extents(3))),
        (Some("snapshot7"), "lv0", sized(CowSize::Extents(3))),
        (Some("s"), "lv0", sized(CowSize::Extents(0))),
    ];
    let mut kinds = Vec::new();
    for (name, origin, req) in cases {
        let e = lvcreate_snapshot("vg1", origin, name, &req, &v.o).unwrap_err();
        kinds.push(match e {
            WriteError::Snapshot(SnapshotError::BadChunk { .. }) => "chunk",
            WriteError::Snapshot(SnapshotError::PercentOfLv) => "%LV",
            WriteError::Snapshot(SnapshotError::NoSuchLv { .. }) => "no origin",
            WriteError::LvExists { .. } => "exists",
            WriteError::Name(_) => "reserved name",
            WriteError::Snapshot(SnapshotError::TooSmall { .. }) => "too small",
            other => panic!("{other}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "chunk",
            "%LV",
            "no origin",
            "exists",
            "reserved name",
            "too small"
        ]
    );
    // A snapshot of a snapshot.
    lvcreate_snapshot("vg1", "lv0", Some("s"), &sized(CowSize::Extents(1)), &v.o).unwrap();
    let seq2 = committed(&v).seqno;
    assert_eq!(seq2, seq + 1);
    let e =
        lvcreate_snapshot("vg1", "s", Some("t"), &sized(CowSize::Extents(1)), &v.o).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Snapshot(SnapshotError::BadOrigin {
                kind: super::BadOriginKind::IsSnapshot,
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(committed(&v).seqno, seq2);
}
