//! `lvm::write::snapshot::merge`: the metadata transforms of a snapshot merge, checked on
//! lvm2's own text (the sample VG, written by lvm2) and through the writer's printer.
use super::sample::SAMPLE;
use crate::lvm::config::ParseMode;
use crate::lvm::model::{PhysicalVolume, SegmentKind, VolumeGroup};
use crate::lvm::plan::{PlanOptions, plan_vg};
use crate::lvm::write::alloc::check_layout;
use crate::lvm::write::snapshot::merge::{MergeError, MergeStart, finish_merge, start_merge};
use crate::lvm::write::text::{TextHeader, disk_text};
use crate::targets::{DevRef, Target};

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap()
}

fn sdb(_: &PhysicalVolume) -> Option<DevRef> {
    Some(DevRef::num(8, 16))
}

fn printed(v: &VolumeGroup) -> String {
    let t = disk_text(v, &TextHeader::now("test"));
    String::from_utf8_lossy(t.split(|&c| c == 0).next().unwrap()).into_owned()
}

#[test]
fn start_merge_writes_merging_store_and_hides_snapshot_n() {
    let v = vg(SAMPLE);
    let m = start_merge(&v, "root_snap").unwrap();
    let link = m.cow_link("root_snap").unwrap();
    assert!(link.merging);
    assert!(!link.snapshot_lv.status.contains("VISIBLE"));
    assert!(link.snapshot_lv.status.contains("READ") && link.snapshot_lv.status.contains("WRITE"));
    // Nothing else changed.
    assert_eq!(m.lvs.len(), v.lvs.len());
    for (a, b) in m.lvs.iter().zip(&v.lvs) {
        if a.name != "snapshot0" {
            assert_eq!(a, b);
        }
    }
    let text = printed(&m);
    assert!(text.contains("merging_store = \"root_snap\""), "{text}");
    assert!(!text.contains("cow_store"), "{text}");
    // Reads back as merging; the planner starts the merge: snapshot-merge + error.
    let back = vg(&text);
    assert!(back.cow_link("root_snap").unwrap().merging);
    let p = plan_vg(&back, &sdb, &PlanOptions::default()).unwrap();
    let origin = p
        .devices
        .iter()
        .find(|d| d.name.as_str() == "vg0-root")
        .unwrap();
    assert!(matches!(
        origin.table.lines()[0].target,
        Target::SnapshotMerge(_)
    ));
    let snap = p
        .devices
        .iter()
        .find(|d| d.name.as_str() == "vg0-root_snap")
        .unwrap();
    assert!(matches!(snap.table.lines()[0].target, Target::Error(_)));
}

#[test]
fn start_merge_refusals_are_lvm2s() {
    let v = vg(SAMPLE);
    let m = start_merge(&v, "root_snap").unwrap();
    match start_merge(&m, "root_snap") {
        Err(e @ MergeError::AlreadyMerging { .. }) => assert_eq!(
            e.to_string(),
            "Cannot merge snapshot vg0/root_snap into the origin vg0/root with merging snapshot vg0/root_snap."
        ),
        other => panic!("{other:?}"),
    }
    let mut ro = v.clone();
    ro.lvs
        .iter_mut()
        .find(|l| l.name == "root")
        .unwrap()
        .status
        .remove("WRITE");
    match start_merge(&ro, "root_snap") {
        Err(e @ MergeError::ReadOnlyOrigin { .. }) => assert_eq!(
            e.to_string(),
            "Cannot merge snapshot vg0/root_snap into the read-only origin vg0/root. (Use lvchange -p rw)."
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(start_merge(&v, "root"), Err(MergeError::NotASnapshot { lv, .. }) if lv == "root")
    );
    assert!(matches!(
        start_merge(&v, "snapshot0"),
        Err(MergeError::NotASnapshot { .. })
    ));
    assert!(
        matches!(start_merge(&v, "nope"), Err(MergeError::NoSuchLv { lv, .. }) if lv == "nope")
    );
}

#[test]
fn finish_merge_drops_snapshot_n_and_the_cow_together() {
    let v = vg(SAMPLE);
    assert!(matches!(
        finish_merge(&v, "root"),
        Err(MergeError::NotMerging { .. })
    ));
    assert!(matches!(
        finish_merge(&v, "nope"),
        Err(MergeError::NoSuchLv { .. })
    ));
    let m = start_merge(&v, "root_snap").unwrap();
    let f = finish_merge(&m, "root").unwrap();
    assert!(f.lv("root_snap").is_none() && f.lv("snapshot0").is_none());
    assert_eq!(f.lvs.len(), v.lvs.len() - 2);
    assert!(
        f.lvs
            .iter()
            .all(|l| !matches!(l.first_kind(), Some(SegmentKind::Snapshot { .. })))
    );
    check_layout(&f).unwrap();
    // The origin plans as its own linear table again.
    let back = vg(&printed(&f));
    let p = plan_vg(&back, &sdb, &PlanOptions::default()).unwrap();
    let origin = p
        .devices
        .iter()
        .find(|d| d.name.as_str() == "vg0-root")
        .unwrap();
    assert!(matches!(origin.table.lines()[0].target, Target::Linear(_)));
    assert!(p.devices.iter().all(|d| d.layer.is_none()));
}

#[test]
fn delay_messages_are_lvm2s() {
    assert_eq!(
        MergeStart::DelayedOriginOpen.to_string(),
        "Delaying merge since origin is open."
    );
    assert_eq!(
        MergeStart::DelayedSnapshotOpen.to_string(),
        "Delaying merge since snapshot is open."
    );
}
