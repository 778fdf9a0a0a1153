use super::sample::{SAMPLE, THIN_STRIPED};
use crate::lvm::Error;
use crate::lvm::config::{ParseMode, parse};
use crate::lvm::model::{Area, Discards, SegmentKind, VolumeGroup, valid_name};
use proptest::prelude::*;

fn vg(text: &str) -> Result<VolumeGroup, Error> {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk)
}

fn model_err(text: &str) -> String {
    match vg(text) {
        Err(Error::Model { path, reason }) => format!("{path}: {reason}"),
        other => panic!("expected a model error, got {other:?}"),
    }
}

#[test]
fn sample_imports() {
    let v = vg(SAMPLE).unwrap();
    assert_eq!(v.name, "vg0");
    assert_eq!(v.seqno, 6);
    assert_eq!(v.extent_size, 8192);
    assert_eq!(v.id.as_str(), "kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE");
    assert_eq!(v.pvs[0].device_hint.as_deref(), Some("/dev/sdb"));
    assert_eq!(v.lvs.len(), 4);
    let root = v.lv("root").unwrap();
    assert_eq!(v.lv_size(root), 1280 * 8192);
    assert!(
        matches!(&root.segments[0].kind, SegmentKind::Striped { areas, .. } if areas == &[Area::Pv { pv: "pv0".into(), pe: 0 }])
    );
    let links: Vec<_> = v.snapshots_of("root").collect();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (
            links[0].cow,
            links[0].chunk_size,
            links[0].merging,
            links[0].origin_extents
        ),
        ("root_snap", 8, false, 1280)
    );
    // Visibility as lvm2 sees it: the COW LV follows its origin, snapshot0 is internal.
    assert!(v.is_visible(v.lv("root_snap").unwrap()));
    assert!(!v.is_visible(v.lv("snapshot0").unwrap()));
    assert!(v.is_visible(root));
}

#[test]
fn thin_and_striped_import() {
    let v = vg(THIN_STRIPED).unwrap();
    assert_eq!(v.name, "my-vg");
    let s = v.lv("stripey").unwrap();
    assert!(!s.is_writable());
    assert!(
        matches!(&s.segments[0].kind, SegmentKind::Striped { stripe_size: 128, areas } if areas.len() == 2)
    );
    assert_eq!(v.lv("lv-1").unwrap().segments.len(), 2);
    match &v.lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool {
            metadata,
            data,
            transaction_id,
            chunk_size,
            discards,
            zero_new_blocks,
            messages,
        } => {
            assert_eq!(
                (metadata.as_str(), data.as_str()),
                ("pool_tmeta", "pool_tdata")
            );
            assert_eq!(
                (*transaction_id, *chunk_size, *discards, *zero_new_blocks),
                (1, 128, Discards::Passdown, true)
            );
            assert!(messages.is_empty());
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        &v.lv("thin1").unwrap().segments[0].kind,
        SegmentKind::Thin { device_id: 1, .. }
    ));
}

#[test]
fn backup_file_layout_imports_too() {
    // vgcfgbackup puts the header first and indents; the importer must not care.
    let c = parse(SAMPLE.as_bytes()).unwrap();
    let file = c.to_text(crate::lvm::config::Layout::File);
    let v = VolumeGroup::from_text(file.as_bytes(), ParseMode::File).unwrap();
    assert_eq!(v, vg(SAMPLE).unwrap());
}

#[test]
fn unknown_status_flag_rejected_unknown_flags_ignored() {
    let e = model_err(&SAMPLE.replacen(
        "[\"READ\", \"WRITE\", \"VISIBLE\"]",
        "[\"READ\", \"WRITE\", \"SPARKLY\"]",
        1,
    ));
    assert!(e.contains("unknown status flag 'SPARKLY'"), "{e}");
    assert!(e.starts_with("vg0/logical_volumes/root"), "{e}");
    let ok = vg(&SAMPLE.replacen("flags = []", "flags = [\"SPARKLY\"]", 1)).unwrap();
    assert!(ok.flags.is_empty());
    let e = model_err(&SAMPLE.replacen("[\"ALLOCATABLE\"]", "[\"ALLOCATABLE\", \"X\"]", 1));
    assert!(e.contains("physical_volumes/pv0"), "{e}");
}

#[test]
fn segment_count_must_match() {
    let e = model_err(&SAMPLE.replacen("segment_count = 1", "segment_count = 2", 1));
    assert!(e.contains("segment_count is 2 but there are 1"), "{e}");
}

#[test]
fn any_child_section_is_a_segment() {
    // lvm2 counts every child section, whatever its name.
    let t = THIN_STRIPED.replacen("segment2 {", "whatever {", 1);
    assert_eq!(vg(&t).unwrap().lv("lv-1").unwrap().segments.len(), 2);
}

#[test]
fn gaps_and_overlaps_rejected() {
    let e = model_err(&THIN_STRIPED.replacen(
        "start_extent = 2\nextent_count = 1",
        "start_extent = 3\nextent_count = 1",
        1,
    ));
    assert!(e.contains("gap or overlap"), "{e}");
    let e = model_err(&THIN_STRIPED.replacen(
        "start_extent = 2\nextent_count = 1",
        "start_extent = 1\nextent_count = 1",
        1,
    ));
    assert!(e.contains("gap or overlap"), "{e}");
}

#[test]
fn unknown_pv_handle_rejected() {
    let e = model_err(&SAMPLE.replacen("\"pv0\", 1280", "\"pv7\", 1280", 1));
    assert!(e.contains("couldn't find volume \"pv7\""), "{e}");
}

#[test]
fn pe_range_checked() {
    let e = model_err(&SAMPLE.replacen("\"pv0\", 1280", "\"pv0\", 5000", 1));
    assert!(e.contains("beyond"), "{e}");
    let e = model_err(&SAMPLE.replacen("pe_count = 5119", "pe_count = 6000", 1));
    assert!(e.contains("dev_size"), "{e}");
}

#[test]
fn stripes_checked() {
    let e = model_err(&THIN_STRIPED.replacen(
        "extent_count = 4\ntype = \"striped\"\nstripe_count = 2",
        "extent_count = 3\ntype = \"striped\"\nstripe_count = 2",
        1,
    ));
    assert!(e.contains("not divisible"), "{e}");
    let e = model_err(&THIN_STRIPED.replacen("stripe_size = 128\n", "", 1));
    assert!(e.contains("stripe_size"), "{e}");
}

#[test]
fn header_checked() {
    assert!(
        model_err(&SAMPLE.replace("contents = \"Text Format Volume Group\"", ""))
            .contains("contents")
    );
    assert!(model_err(&SAMPLE.replace("version = 1\n", "version = 2\n")).contains("version"));
    assert!(model_err(&SAMPLE.replacen("seqno = 6", "seqno = -1", 1)).contains("seqno"));
    assert!(
        model_err(&SAMPLE.replacen("extent_size = 8192", "extent_size = 0", 1))
            .contains("extent_size")
    );
}

#[test]
fn duplicate_keys_first_wins_on_disk() {
    // On disk, a duplicated key keeps the first value.
    let t = SAMPLE.replacen("seqno = 6", "seqno = 6\nseqno = 9", 1);
    assert_eq!(vg(&t).unwrap().seqno, 6);
    assert_eq!(
        VolumeGroup::from_text(t.as_bytes(), ParseMode::File)
            .unwrap()
            .seqno,
        9
    );
}

#[test]
fn other_segtypes_kept_not_dropped() {
    let t = SAMPLE.replacen(
        "type = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", 1280\n]",
        "type = \"raid1\"\ndevice_count = 2\nraids = [\"home_rmeta_0\", \"home_rimage_0\"]",
        1,
    );
    let v = vg(&t).unwrap();
    match &v.lv("home").unwrap().segments[0].kind {
        SegmentKind::Other { segtype, lv_refs } => {
            assert_eq!(segtype, "raid1");
            assert_eq!(lv_refs, &["home_rmeta_0", "home_rimage_0"]);
        }
        k => panic!("{k:?}"),
    }
    // An unknown +FLAG makes the type unknown, not an error.
    let t = SAMPLE.replacen("type = \"striped\"", "type = \"striped+FUTURE\"", 1);
    assert!(
        matches!(&vg(&t).unwrap().lvs[0].segments[0].kind, SegmentKind::Other { segtype, .. } if segtype == "striped")
    );
}

#[test]
fn snapshot_merging_store() {
    let t = SAMPLE.replace("cow_store = \"root_snap\"", "merging_store = \"root_snap\"");
    let v = vg(&t).unwrap();
    assert!(v.snapshots_of("root").next().unwrap().merging);
    let e = model_err(&SAMPLE.replace("cow_store = \"root_snap\"", "cow_store = \"nope\""));
    assert!(e.contains("unknown LV \"nope\""), "{e}");
}

#[test]
fn adjacent_segments_merge() {
    let t = THIN_STRIPED.replacen("\"pv1\", 5", "\"pv0\", 2", 1);
    let t = t.replacen("\"pv0\", 2,\n\"pv1\", 0", "\"pv0\", 3,\n\"pv1\", 0", 1);
    let v = vg(&t).unwrap();
    let lv = v.lv("lv-1").unwrap();
    assert_eq!(lv.segments.len(), 1);
    assert_eq!(lv.segments[0].extent_count, 3);
}

#[test]
fn names() {
    assert!(valid_name("my-vg_1.+"));
    assert!(!valid_name("-x"));
    assert!(!valid_name(".."));
    assert!(!valid_name("a b"));
    assert!(!valid_name(&"x".repeat(128)));
}

proptest! {
    /// Model invariants: whatever survives import has contiguous segments, and every PV
    /// area lies inside its PV.
    #[test]
    fn invariants_hold_after_mutation(pos in 0usize..4000, byte in any::<u8>()) {
        let mut t = THIN_STRIPED.as_bytes().to_vec();
        let at = pos % t.len();
        t[at] = byte;
        if let Ok(v) = VolumeGroup::from_text(&t, ParseMode::Disk) {
            for lv in &v.lvs {
                let mut next = 0;
                for s in &lv.segments {
                    prop_assert_eq!(s.start_extent, next);
                    prop_assert!(s.extent_count > 0);
                    next += s.extent_count;
                    if let SegmentKind::Striped { areas, .. } = &s.kind {
                        let per = s.extent_count / areas.len() as u64;
                        for a in areas {
                            if let Area::Pv { pv, pe } = a {
                                prop_assert!(pe + per <= v.pv(pv).unwrap().pe_count);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..500)) {
        let _ = VolumeGroup::from_text(&data, ParseMode::Disk);
    }
}
