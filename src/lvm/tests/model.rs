use super::sample::{SAMPLE, THIN_STRIPED, plain_lv, snap_section, with_lv};
use crate::lvm::config::{ParseMode, parse};
use crate::lvm::id::IdError;
use crate::lvm::model::WarningKind;
use crate::lvm::model::{Area, Discards, SegmentKind, VolumeGroup, valid_name};
use crate::lvm::{Error, ModelErrorKind, UnmappableKind, ValueType};
use proptest::prelude::*;

fn vg(text: &str) -> Result<VolumeGroup, Error> {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk)
}

/// The path and kind of the model error `text` gets.
fn model_err(text: &str) -> (String, ModelErrorKind) {
    match vg(text) {
        Err(Error::Model { path, kind }) => (path, kind),
        other => panic!("expected a model error, got {other:?}"),
    }
}

/// The model error as the CLI shows it (after "metadata "): `path: message`.
fn shown((path, kind): &(String, ModelErrorKind)) -> String {
    format!("{path}: {kind}")
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
            crop_metadata: None,
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
    assert!(
        matches!(&e.1, ModelErrorKind::UnknownStatusFlag { flag } if flag == "SPARKLY"),
        "{e:?}"
    );
    assert_eq!(e.0, "vg0/logical_volumes/root");
    let e = shown(&e);
    assert!(e.contains("unknown status flag 'SPARKLY'"), "{e}");
    assert!(e.starts_with("vg0/logical_volumes/root"), "{e}");
    let ok = vg(&SAMPLE.replacen("flags = []", "flags = [\"SPARKLY\"]", 1)).unwrap();
    assert!(ok.flags.is_empty());
    let (path, kind) =
        model_err(&SAMPLE.replacen("[\"ALLOCATABLE\"]", "[\"ALLOCATABLE\", \"X\"]", 1));
    assert!(path.contains("physical_volumes/pv0"), "{path}");
    assert_eq!(kind, ModelErrorKind::UnknownStatusFlag { flag: "X".into() });
}

#[test]
fn segment_count_must_match() {
    let e = model_err(&SAMPLE.replacen("segment_count = 1", "segment_count = 2", 1));
    assert_eq!(
        e.1,
        ModelErrorKind::SegmentCountMismatch {
            declared: 2,
            found: 1
        }
    );
    let e = shown(&e);
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
    assert_eq!(
        e.1,
        ModelErrorKind::SegmentGap {
            start_extent: 3,
            expected: 2
        }
    );
    assert!(shown(&e).contains("gap or overlap"), "{e:?}");
    let e = model_err(&THIN_STRIPED.replacen(
        "start_extent = 2\nextent_count = 1",
        "start_extent = 1\nextent_count = 1",
        1,
    ));
    assert_eq!(
        e.1,
        ModelErrorKind::SegmentGap {
            start_extent: 1,
            expected: 2
        }
    );
    assert!(shown(&e).contains("gap or overlap"), "{e:?}");
}

#[test]
fn unknown_pv_handle_rejected() {
    let e = model_err(&SAMPLE.replacen("\"pv0\", 1280", "\"pv7\", 1280", 1));
    assert_eq!(
        e,
        (
            "vg0/logical_volumes/home/segment1".into(),
            ModelErrorKind::UnknownVolume { name: "pv7".into() }
        )
    );
    let e = shown(&e);
    assert!(e.contains("couldn't find volume \"pv7\""), "{e}");
}

#[test]
fn pe_range_checked() {
    let e = model_err(&SAMPLE.replacen("\"pv0\", 1280", "\"pv0\", 5000", 1));
    assert_eq!(
        e.1,
        ModelErrorKind::BeyondPv {
            pv: "pv0".into(),
            start: 5000,
            end: 7560,
            pe_count: 5119
        }
    );
    let e = shown(&e);
    assert!(e.contains("beyond"), "{e}");
    // A PE area past dev_size imports, as lvm2 imports it, with a warning.
    let v = vg(&SAMPLE.replacen("pe_count = 5119", "pe_count = 6000", 1)).unwrap();
    assert!(
        v.warnings()
            .iter()
            .any(|w| w.path == "vg0/physical_volumes/pv0"
                && matches!(w.kind, WarningKind::DevSizeShort { .. })),
        "{:?}",
        v.warnings()
    );
}

#[test]
fn stripes_checked() {
    let e = model_err(&THIN_STRIPED.replacen(
        "extent_count = 4\ntype = \"striped\"\nstripe_count = 2",
        "extent_count = 3\ntype = \"striped\"\nstripe_count = 2",
        1,
    ));
    assert_eq!(
        e.1,
        ModelErrorKind::ExtentsNotDivisible {
            extent_count: 3,
            stripe_count: 2
        }
    );
    assert!(shown(&e).contains("not divisible"), "{e:?}");
    let e = model_err(&THIN_STRIPED.replacen("stripe_size = 128\n", "", 1));
    assert_eq!(
        e.1,
        ModelErrorKind::MissingKey {
            key: "stripe_size".into()
        }
    );
    assert!(shown(&e).contains("stripe_size"), "{e:?}");
}

#[test]
fn header_checked() {
    let e = model_err(&SAMPLE.replace("contents = \"Text Format Volume Group\"", ""));
    assert_eq!(e, ("contents".into(), ModelErrorKind::WrongContents));
    assert!(shown(&e).contains("contents"));
    let e = model_err(&SAMPLE.replace("version = 1\n", "version = 2\n"));
    assert_eq!(e, ("version".into(), ModelErrorKind::WrongVersion));
    assert!(shown(&e).contains("version"));
    // lvm2 reads 32-bit fields as their low 32 bits: -1 is 4294967295, with a warning.
    let v = vg(&SAMPLE.replacen("seqno = 6", "seqno = -1", 1)).unwrap();
    assert_eq!(v.seqno, u64::from(u32::MAX));
    assert!(matches!(
        &v.warnings()[0].kind,
        WarningKind::Truncated { key, value: -1, read_as: 4294967295 } if key == "seqno"
    ));
    // extent_size 0 imports (lvm2 reads it) but nothing in it can be mapped.
    let v = vg(&SAMPLE.replacen("extent_size = 8192", "extent_size = 0", 1)).unwrap();
    assert!(
        v.warnings()
            .iter()
            .any(|w| w.kind == WarningKind::Unmappable(UnmappableKind::ExtentSizeZero))
    );
    assert_eq!(
        v.unmappable(v.lv("root").unwrap()),
        Some(UnmappableKind::ExtentSizeZero)
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
    // lvm2 hides a merging COW LV (`lvs` without `-a` does not list it).
    assert!(!v.is_visible(v.lv("root_snap").unwrap()));
    let ix = crate::lvm::index::VgIndex::new(&v);
    assert!(!ix.is_visible(v.lv("root_snap").unwrap()));
    assert!(ix.is_visible(v.lv("root").unwrap()));
    let e = model_err(&SAMPLE.replace("cow_store = \"root_snap\"", "cow_store = \"nope\""));
    assert!(
        matches!(&e.1, ModelErrorKind::UnknownLv { key, name } if key == "cow_store" && name == "nope"),
        "{e:?}"
    );
    let e = shown(&e);
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

fn import_kind(text: &str) -> ModelErrorKind {
    model_err(text).1
}

/// Rules lvm2's importer enforces (checked with lvm2 2.03.16 `vgcfgrestore -l`): the same
/// texts are refused here, each with its own kind.
#[test]
fn lvm2_import_refusals_are_typed() {
    let no_segs = with_lv(
        SAMPLE,
        include_str!("fixtures/lv_no_segments.lv").trim_end(),
    );
    assert_eq!(import_kind(&no_segs), ModelErrorKind::NoSegments);
    // A flag lvm2 reads only from `flags` is an unknown status flag in `status`.
    let e = model_err(&SAMPLE.replacen(
        "status = [\"READ\", \"WRITE\", \"VISIBLE\"]",
        "status = [\"READ\", \"WRITE\", \"VISIBLE\", \"ACTIVATION_SKIP\"]",
        1,
    ));
    assert_eq!(
        e.1,
        ModelErrorKind::UnknownStatusFlag {
            flag: "ACTIVATION_SKIP".into()
        }
    );
    let e = shown(&e);
    assert!(e.contains("unknown status flag 'ACTIVATION_SKIP'"), "{e}");
    assert_eq!(
        import_kind(&SAMPLE.replacen("creation_host = \"box\"\nsegment_count", "segment_count", 1)),
        ModelErrorKind::CreationTimeWithoutHost
    );
    assert_eq!(
        import_kind(&SAMPLE.replacen("creation_time = 1718000000\n", "", 1)),
        ModelErrorKind::CreationHostWithoutTime
    );
    assert_eq!(
        import_kind(&SAMPLE.replacen(
            "status = [\"READ\", \"WRITE\", \"VISIBLE\"]",
            "status = [\"READ\", \"WRITE\", \"VISIBLE\", \"FIXED_MINOR\"]",
            1
        )),
        ModelErrorKind::FixedMinorWithoutMinor
    );
    // With the minor it imports.
    assert!(
        vg(&SAMPLE.replacen(
            "status = [\"READ\", \"WRITE\", \"VISIBLE\"]",
            "status = [\"READ\", \"WRITE\", \"VISIBLE\", \"FIXED_MINOR\"]\nminor = 7",
            1
        ))
        .is_ok()
    );
    assert_eq!(
        import_kind(&SAMPLE.replacen("pe_start = 2048", "pe_start = 2048\nba_start = 2048", 1)),
        ModelErrorKind::IncompleteBootloaderArea
    );
    let spare = |n: &str| {
        format!(
            "{n} {{\nid = \"x3dNi8-Lfpp-WTv5-aspz-hU8Q-rTzh-Jqm{t}\"\nstatus = [\"READ\", \"WRITE\"]\n\
             segment_count = 1\nsegment1 {{\nstart_extent = 0\nextent_count = 1\ntype = \"striped\"\n\
             stripe_count = 1\nstripes = [\"pv0\", 4{t}]\n}}\n}}",
            t = if n.starts_with('a') { "100" } else { "200" }
        )
    };
    let two = with_lv(SAMPLE, &(spare("a_pmspare") + "\n" + &spare("b_pmspare")));
    assert_eq!(
        import_kind(&two),
        ModelErrorKind::SecondPoolMetadataSpare {
            first: "a_pmspare".into()
        }
    );
}

/// Facts lvm2 imports without complaint (checked with lvm2 2.03.16) import here too,
/// each with a typed warning.
#[test]
fn lvm2_acceptances_import_with_warnings() {
    let kinds = |t: &str| -> Vec<WarningKind> {
        vg(t)
            .unwrap_or_else(|e| panic!("{e}"))
            .warnings()
            .iter()
            .map(|w| w.kind.clone())
            .collect()
    };
    let k = kinds(&SAMPLE.replacen("pe_count = 5119", "pe_count = 4294972415", 1));
    assert!(
        matches!(&k[..], [WarningKind::Truncated { key, read_as: 5119, .. }] if key == "pe_count"),
        "{k:?}"
    );
    let k = kinds(
        &SAMPLE
            .replacen("\nvg0 {", "\n-vg0 {", 1)
            .replacen("vg0 {", "-vg0 {", 1),
    );
    assert!(
        k.contains(&WarningKind::InvalidName {
            name: "-vg0".into()
        }),
        "{k:?}"
    );
    let long = "l".repeat(130);
    let k = kinds(&with_lv(SAMPLE, &plain_lv(&long, "LNG", 4200)));
    assert!(
        k.contains(&WarningKind::InvalidName { name: long.clone() }),
        "{k:?}"
    );
    let k = kinds(&SAMPLE.replacen("pe_start = 2048", "pe_start = -1", 1));
    assert!(
        k.iter()
            .any(|w| matches!(w, WarningKind::Truncated { key, .. } if key == "pe_start")),
        "{k:?}"
    );
    // A second PV with the first one's id.
    let dup_id = SAMPLE.replacen(
        "}\n}\n\nlogical_volumes",
        &format!(
            "}}\n{}\n}}\n\nlogical_volumes",
            include_str!("fixtures/pv_duplicate_id.pv").trim_end()
        ),
        1,
    );
    let k = kinds(&dup_id);
    assert!(
        k.iter()
            .any(|w| matches!(w, WarningKind::DuplicatePvId { first, .. } if first == "pv0")),
        "{k:?}"
    );
    // home's extents 1280.. also given to a new LV.
    let k = kinds(&with_lv(SAMPLE, &plain_lv("twin", "TWN", 1300)));
    assert!(
        k.contains(&WarningKind::PeOverlap {
            start: 1300,
            end: 1556,
            first: "home".into(),
            second: "twin".into()
        }),
        "{k:?}"
    );
    // An empty `zero` segment before the real one: lvm2 reads it (it maps nothing).
    let t = SAMPLE
        .replacen(
            "segment1 {\nstart_extent = 0\nextent_count = 1280",
            "segment0 {\nstart_extent = 0\nextent_count = 0\ntype = \"zero\"\n}\n\
         segment1 {\nstart_extent = 0\nextent_count = 1280",
            1,
        )
        .replacen("segment_count = 1", "segment_count = 2", 1);
    let v = vg(&t).unwrap();
    assert_eq!(v.lv("root").unwrap().segments.len(), 1);
    let k = kinds(&SAMPLE.replacen("type = \"striped\"", "type = \"frobnicate\"", 1));
    assert!(
        k.contains(&WarningKind::UnknownSegmentType {
            segtype: "frobnicate".into()
        }),
        "{k:?}"
    );
}

/// Striped segments the kernel refuses and LV areas past their LV's end import (lvm2
/// imports them) and are reported as unmappable, naming the segment.
#[test]
fn unmappable_stripes_and_lv_areas() {
    let check = |t: String, want: UnmappableKind, lv: &str| {
        let v = VolumeGroup::from_text(t.as_bytes(), ParseMode::Disk).unwrap();
        assert_eq!(v.unmappable(v.lv(lv).unwrap()), Some(want.clone()));
        assert!(
            v.warnings()
                .iter()
                .any(|w| w.kind == WarningKind::Unmappable(want.clone())
                    && w.path.ends_with(&format!("/{lv}"))),
            "{:?}",
            v.warnings()
        );
    };
    check(
        THIN_STRIPED.replacen("stripe_size = 128", "stripe_size = 0", 1),
        UnmappableKind::StripeSizeZero { start_extent: 0 },
        "stripey",
    );
    let v = vg(THIN_STRIPED).unwrap();
    let per_stripe = 2 * v.extent_size;
    check(
        THIN_STRIPED.replacen("stripe_size = 128", "stripe_size = 3000", 1),
        UnmappableKind::StripeSizeNotDividing {
            start_extent: 0,
            stripe_size: 3000,
            per_stripe,
        },
        "stripey",
    );
    // An LV on `home` (2560 extents) from extent 2500, 256 extents long.
    let on_home = include_str!("fixtures/lv_top_on_home.lv").trim_end();
    check(
        with_lv(SAMPLE, on_home),
        UnmappableKind::AreaBeyondLv {
            sub: "home".into(),
            end: 2756,
            size: 2560,
        },
        "top",
    );
    // Mapping onto itself stays an error, as in lvm2.
    let selfmap = on_home.replace("\"home\", 2500", "\"top\", 0");
    assert!(matches!(
        vg(&with_lv(SAMPLE, &selfmap)),
        Err(Error::Model {
            kind: ModelErrorKind::SelfMapping,
            ..
        })
    ));
}

/// Snapshot relations lvm2 reads but never writes: each is reported on the snapshot's
/// COW LV with its own kind.
#[test]
fn snapshot_faults_are_typed() {
    let fault = |t: &str, cow: &str| -> UnmappableKind {
        let v = vg(t).unwrap_or_else(|e| panic!("{e}"));
        let f = v.snapshot_faults();
        let k = f
            .iter()
            .find(|(c, _)| *c == cow)
            .unwrap_or_else(|| panic!("no fault on {cow}: {f:?}"))
            .1
            .clone();
        assert_eq!(v.unmappable(v.lv(cow).unwrap()), Some(k.clone()));
        k
    };
    assert_eq!(
        fault(
            &SAMPLE.replacen("chunk_size = 8", "chunk_size = 0", 1),
            "root_snap"
        ),
        UnmappableKind::SnapshotChunkZero
    );
    // origin = "snapshot1": an internal snapshot LV as origin.
    let t = with_lv(
        &with_lv(SAMPLE, &plain_lv("s2", "SSB", 4300)),
        &snap_section("snapshot1", "snapshot0", "s2", 8),
    );
    assert_eq!(
        fault(&t, "s2"),
        UnmappableKind::OriginIsSnapshot {
            origin: "snapshot0".into()
        }
    );
    // A snapshot of the COW root_snap.
    let t = with_lv(
        &with_lv(SAMPLE, &plain_lv("s2", "SSB", 4300)),
        &snap_section("snapshot1", "root_snap", "s2", 8),
    );
    assert_eq!(
        fault(&t, "s2"),
        UnmappableKind::OriginIsCow {
            origin: "root_snap".into()
        }
    );
    // Two snapshots sharing root_snap.
    let t = with_lv(SAMPLE, &snap_section("snapshot1", "home", "root_snap", 8));
    assert!(matches!(
        fault(&t, "root_snap"),
        UnmappableKind::SharedCow { snapshots } if snapshots == ["snapshot1", "snapshot0"]
    ));
    // A cycle: home is root_snap's origin's COW... root -> root_snap, root_snap -> root.
    let t = with_lv(SAMPLE, &snap_section("snapshot1", "root_snap", "root", 8));
    assert!(
        matches!(fault(&t, "root"), UnmappableKind::SnapshotCycle { ref chain } if chain.first() == chain.last()),
        "{:?}",
        fault(&t, "root")
    );
    // The sample itself has none.
    assert!(vg(SAMPLE).unwrap().snapshot_faults().is_empty());
    assert!(vg(SAMPLE).unwrap().warnings().is_empty());
}

/// Two PV sections with one name (on-disk text keeps both): the later one is what areas
/// use, in the range check and in every lookup, as lvm2's PV hash does.
#[test]
fn duplicate_pv_names_use_the_later_section() {
    let second = |pe_count: u32| {
        SAMPLE.replacen(
            "}\n}\n\nlogical_volumes",
            &format!(
                "}}\npv0 {{\nid = \"FBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z\"\nstatus = [\"ALLOCATABLE\"]\n\
                 pe_start = 4096\npe_count = {pe_count}\n}}\n}}\n\nlogical_volumes"
            ),
            1,
        )
    };
    // The later pv0 is too small for root: refused, like lvm2's "Segment with extent ...".
    match vg(&second(100)) {
        Err(Error::Model { kind, .. }) => {
            assert!(
                matches!(kind, ModelErrorKind::BeyondPv { pe_count: 100, .. }),
                "{kind:?}"
            );
            assert!(kind.to_string().contains("beyond the 100 PEs"), "{kind}")
        }
        other => panic!("{other:?}"),
    }
    let v = vg(&second(5119)).unwrap();
    assert_eq!(v.pvs.len(), 2);
    let pv = v.pv("pv0").unwrap();
    assert_eq!(
        (pv.id.to_string().as_str(), pv.pe_start),
        ("FBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z", 4096)
    );
    assert!(
        v.warnings()
            .iter()
            .any(|w| w.kind == WarningKind::DuplicatePvHandle)
    );
}

/// A long snapshot cycle (every COW the origin of the next snapshot): found in linear
/// time, each member's chain cut to a bounded length.
#[test]
fn long_snapshot_cycle_is_linear_and_bounded() {
    // n links in one cycle: the walk visits each link a bounded number of times, counted
    // (not timed); the earlier quadratic walk took minutes at 20000.
    let cycle = |n: usize| {
        let mut lvs = String::new();
        for k in 0..n {
            lvs += &format!(
                "c{k} {{ id = \"{k:0>6}-8888-0000-aaaa-bbbb-cccc-dddddd\" status = [\"READ\", \"VISIBLE\"] \
                 segment_count = 1 segment1 {{ start_extent = 0 extent_count = 1 type = \"striped\" \
                 stripe_count = 1 stripes = [\"pv0\", {k}] }} }}\n"
            );
            lvs += &format!(
                "snapshot{k} {{ id = \"{k:0>6}-7777-0000-aaaa-bbbb-cccc-dddddd\" status = [\"READ\"] \
                 segment_count = 1 segment1 {{ start_extent = 0 extent_count = 1 type = \"snapshot\" \
                 chunk_size = 8 origin = \"c{k}\" cow_store = \"c{}\" }} }}\n",
                (k + 1) % n
            );
        }
        format!(
            "big {{ id = \"aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg\" seqno = 1 status = [\"READ\"] \
             extent_size = 8 max_lv = 0 max_pv = 0 physical_volumes {{ pv0 {{ \
             id = \"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG\" status = [\"ALLOCATABLE\"] \
             pe_start = 0 pe_count = {n} }} }} logical_volumes {{ {lvs} }} }}\n\
             contents = \"Text Format Volume Group\" version = 1\n"
        )
    };
    let work = |n: usize| {
        let text = cycle(n);
        crate::lvm::index::meter::take();
        let v = vg(&text).unwrap();
        let f = v.snapshot_faults();
        assert_eq!(f.len(), n);
        (crate::lvm::index::meter::take().0, v, n)
    };
    let (small, _, _) = work(500);
    let (large, v, n) = work(2000);
    assert!(small > 0);
    assert!(
        large <= small * 9 / 2,
        "4x the links cost {:.1}x the visits ({small} -> {large})",
        large as f64 / small as f64
    );
    let f = v.snapshot_faults();
    assert_eq!(f.len(), n);
    for (cow, kind) in &f {
        match kind {
            UnmappableKind::SnapshotCycle { chain } => {
                assert_eq!(chain.len(), 18, "{chain:?}");
                assert_eq!(chain.first().map(String::as_str), Some(*cow));
                assert_eq!(chain.last().map(String::as_str), Some(*cow));
                assert_eq!(chain[16], "...");
            }
            other => panic!("{cow}: {other:?}"),
        }
    }
}

/// Each refusal of the importer has its own kind, at the path of the section at fault;
/// the message is the one lvm2 users know (the CLI prints it after "metadata PATH: ").
#[test]
fn model_refusals_are_typed() {
    const ROOT: &str = "vg0/logical_volumes/root";
    const ROOT_SEG: &str = "vg0/logical_volumes/root/segment1";
    const POOL_SEG: &str = "my-vg/logical_volumes/pool/segment1";
    let cases: Vec<(String, &str, ModelErrorKind, &str)> = vec![
        (
            SAMPLE.replacen("seqno = 6", "seqno = \"6\"", 1),
            "vg0",
            ModelErrorKind::WrongType {
                key: "seqno".into(),
                expected: ValueType::Integer,
            },
            "`seqno` must be an integer",
        ),
        (
            SAMPLE.replacen("type = \"striped\"", "type = 7", 1),
            ROOT_SEG,
            ModelErrorKind::WrongType {
                key: "type".into(),
                expected: ValueType::String,
            },
            "`type` must be a string",
        ),
        (
            SAMPLE.replacen("creation_time = 1718000000", "creation_time = \"noon\"", 1),
            ROOT,
            ModelErrorKind::WrongType {
                key: "creation_time".into(),
                expected: ValueType::Integer,
            },
            "`creation_time` must be an integer",
        ),
        (
            SAMPLE.replacen("flags = []", "flags = [1]", 1),
            "vg0",
            ModelErrorKind::NotStrings {
                key: "flags".into(),
            },
            "`flags` entries must be strings",
        ),
        (
            SAMPLE.replacen(
                "id = \"kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE\"",
                "id = \"short\"",
                1,
            ),
            "vg0",
            ModelErrorKind::BadId {
                id: "short".into(),
                source: IdError::Length(5),
            },
            "id \"short\": an id has 32 characters",
        ),
        (
            SAMPLE.replacen("physical_volumes {", "physical_volumes_ {", 1),
            "vg0",
            ModelErrorKind::MissingKey {
                key: "physical_volumes".into(),
            },
            "`physical_volumes` is missing",
        ),
        (
            with_lv(SAMPLE, &plain_lv("home", "HOM", 4200)),
            "vg0",
            ModelErrorKind::DuplicateLv { lv: "home".into() },
            "LV home appears twice",
        ),
        (
            SAMPLE.replacen("extent_count = 1280", "extent_count = 0", 1),
            ROOT_SEG,
            ModelErrorKind::ZeroLengthSegment,
            "zero-length segment",
        ),
        (
            SAMPLE.replacen(
                "cow_store = \"root_snap\"",
                "cow_store = \"root_snap\"\nmerging_store = \"root_snap\"",
                1,
            ),
            "vg0/logical_volumes/snapshot0/segment1",
            ModelErrorKind::CowAndMergingStore,
            "both cow_store and merging_store are specified",
        ),
        (
            SAMPLE.replacen("cow_store = \"root_snap\"", "cow_store = \"root\"", 1),
            "vg0/logical_volumes/snapshot0/segment1",
            ModelErrorKind::OriginIsOwnCow,
            "a snapshot's origin cannot be its own COW store",
        ),
        (
            THIN_STRIPED.replacen("device_id = 1", "device_id = 16777216", 1),
            "my-vg/logical_volumes/thin1/segment1",
            ModelErrorKind::ThinDeviceIdRange {
                device_id: 1 << 24,
            },
            "unsupported device_id 16777216",
        ),
        (
            THIN_STRIPED.replacen("chunk_size = 128", "chunk_size = 64", 1),
            POOL_SEG,
            ModelErrorKind::ThinChunkRange { chunk_size: 64 },
            "unsupported chunk_size 64",
        ),
        (
            THIN_STRIPED.replacen("\"passdown\"", "\"sideways\"", 1),
            POOL_SEG,
            ModelErrorKind::UnknownDiscards {
                value: "sideways".into(),
            },
            "discards option \"sideways\" unsupported",
        ),
        (
            THIN_STRIPED.replacen(
                "zero_new_blocks = 1",
                "zero_new_blocks = 1\nmessage1 {\nrename = \"x\"\n}",
                1,
            ),
            "my-vg/logical_volumes/pool/segment1/message1",
            ModelErrorKind::UnknownThinMessage,
            "unknown message",
        ),
        (
            SAMPLE.replacen("stripe_count = 1", "stripe_count = 0", 1),
            ROOT_SEG,
            ModelErrorKind::StripeCountZero,
            "stripe_count is 0",
        ),
        (
            SAMPLE.replacen("\"pv0\", 0\n", "\"pv0\", 0, \"pv0\", 7\n", 1),
            ROOT_SEG,
            ModelErrorKind::StripeItemCount {
                items: 4,
                stripe_count: 1,
            },
            "`stripes` has 4 items for 1 stripes",
        ),
        (
            SAMPLE.replacen("\"pv0\", 0\n", "0, \"pv0\"\n", 1),
            ROOT_SEG,
            ModelErrorKind::StripePairs,
            "`stripes` must hold (name, extent) pairs",
        ),
        (
            SAMPLE
                .replacen(
                    "cow_store = \"root_snap\"\n}",
                    "cow_store = \"root_snap\"\n}\nsegment2 {\nstart_extent = 1280\n\
                     extent_count = 1\ntype = \"zero\"\n}",
                    1,
                )
                .replacen(
                    "segment_count = 1\n\nsegment1 {\nstart_extent = 0\nextent_count = 1280\n\ntype = \"snapshot\"",
                    "segment_count = 2\n\nsegment1 {\nstart_extent = 0\nextent_count = 1280\n\ntype = \"snapshot\"",
                    1,
                ),
            "vg0/logical_volumes/snapshot0",
            ModelErrorKind::SnapshotSegments,
            "only one segment is permitted for a snapshot",
        ),
        (
            "contents = \"Text Format Volume Group\"\nversion = 1\n".to_string(),
            "",
            ModelErrorKind::NoVgSection,
            "no volume group section",
        ),
    ];
    for (text, path, kind, message) in cases {
        let got = model_err(&text);
        assert_eq!((got.0.as_str(), &got.1), (path, &kind), "{message}");
        assert!(got.1.to_string().starts_with(message), "{}", got.1);
    }
}

/// `text` without the section of the LV `lv` (brace counting on a printed text).
fn without_section(text: &str, lv: &str) -> String {
    let start = text.find(&format!("\n{lv} {{\n")).expect("section") + 1;
    let mut depth = 0;
    let mut end = start;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 2;
                    break;
                }
            }
            _ => {}
        }
    }
    format!("{}{}", &text[..start], &text[end..])
}

#[test]
fn partial_import_counts_left_out_lvs_as_defined() {
    use crate::lvm::write::text::{TextHeader, disk_text};
    let full = vg(SAMPLE).unwrap();
    let snap = full
        .lvs
        .iter()
        .find(|l| {
            l.segments
                .iter()
                .any(|s| matches!(s.kind, SegmentKind::Snapshot { .. }))
        })
        .expect("SAMPLE has a snapshot")
        .clone();
    let SegmentKind::Snapshot { origin, .. } = &snap.segments[0].kind else {
        unreachable!()
    };
    let printed = disk_text(&full, &TextHeader::now("test"));
    let printed = String::from_utf8(printed[..printed.len() - 1].to_vec()).unwrap();
    let cut = without_section(&printed, origin);
    let cfg = parse(cut.as_bytes()).unwrap();
    // The snapshot names an LV the text does not hold: an error for a whole import ...
    assert!(VolumeGroup::from_config(&cfg).is_err());
    // ... defined elsewhere for a partial one, which imports the others unchanged.
    let (part, names) = VolumeGroup::from_config_partial(&cfg, &[origin.as_str()]).unwrap();
    assert_eq!(names.len(), full.lvs.len() - 1);
    assert!(!names.contains(origin));
    assert_eq!(part.lv(&snap.name), Some(&snap));
    assert_eq!(part.pvs, full.pvs);
    // An LV mapping onto itself is refused by a partial import too.
    let mut selfish = full.clone();
    let lv = selfish
        .lvs
        .iter_mut()
        .find(|l| l.name != snap.name && l.name != *origin)
        .expect("a third LV");
    let own = lv.name.clone();
    lv.segments.truncate(1);
    lv.segments[0].kind = SegmentKind::Striped {
        stripe_size: 0,
        areas: vec![Area::Lv { lv: own, le: 0 }],
    };
    let t = disk_text(&selfish, &TextHeader::now("test"));
    let cfg = parse(&t[..t.len() - 1]).unwrap();
    assert!(matches!(
        VolumeGroup::from_config_partial(&cfg, &[]),
        Err(Error::Model {
            kind: ModelErrorKind::SelfMapping,
            ..
        })
    ));
    // A section of a name said to be elsewhere is a duplicate.
    let whole = parse(printed.as_bytes()).unwrap();
    assert!(matches!(
        VolumeGroup::from_config_partial(&whole, &[origin.as_str()]),
        Err(Error::Model {
            kind: ModelErrorKind::DuplicateLv { .. },
            ..
        })
    ));
}
