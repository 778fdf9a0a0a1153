//! What `check_printable` refuses, and what it accepts although the bytes differ.

use super::sample::SAMPLE;
use crate::lvm::config::ParseMode;
use crate::lvm::model::{SegmentKind, VolumeGroup};
use crate::lvm::write::text::{DiffKind, PrintError, check_printable};

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).expect("imports")
}

/// `text` imported and checked against itself.
fn check(text: &str) -> Result<(), PrintError> {
    check_printable(&vg(text), text.as_bytes())
}

#[track_caller]
fn assert_differs(r: Result<(), PrintError>, want_path: &str, want: DiffKind) {
    match r {
        Err(PrintError::Differs { path, kind, .. }) => {
            assert_eq!((path.as_str(), kind), (want_path, want));
        }
        other => panic!("expected a difference at {want_path}, got {other:?}"),
    }
}

#[test]
fn the_sample_prints_back() {
    check(SAMPLE).expect("printable");
}

#[test]
fn an_unmodelled_lv_key_is_refused_with_its_path() {
    let t = SAMPLE.replacen("segment_count = 1", "future_key = 7\nsegment_count = 1", 1);
    assert_differs(
        check(&t),
        "vg0/logical_volumes/root",
        DiffKind::Dropped {
            key: "future_key".into(),
        },
    );
}

#[test]
fn segment_tags_are_refused() {
    let t = SAMPLE.replacen(
        "type = \"striped\"",
        "type = \"striped\"\ntags = [\"seg\"]",
        1,
    );
    assert_differs(
        check(&t),
        "vg0/logical_volumes/root/segment1",
        DiffKind::Dropped { key: "tags".into() },
    );
}

#[test]
fn historical_lvs_are_refused() {
    let end = SAMPLE.rfind("}\n# Generated").expect("VG end");
    let t = format!(
        "{}historical_logical_volumes {{\nold {{\nid = \"J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlA\"\ncreation_time = 1\nremoval_time = 2\n}}\n}}\n{}",
        &SAMPLE[..end],
        &SAMPLE[end..]
    );
    assert_differs(
        check(&t),
        "vg0",
        DiffKind::Dropped {
            key: "historical_logical_volumes".into(),
        },
    );
}

/// lvm2's importer clears VISIBLE on COW LVs, so a COW written with it changes on the
/// next write: refused rather than silently changed.
#[test]
fn a_visible_cow_is_refused_as_lvm2_would_change_it() {
    let t = SAMPLE.replacen(
        "root_snap {\nid = \"t4R5Yh-uIG4-3KIj-FAHQ-siJo-UGm1-YtmaD7\"\nstatus = [\"READ\", \"WRITE\"]",
        "root_snap {\nid = \"t4R5Yh-uIG4-3KIj-FAHQ-siJo-UGm1-YtmaD7\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]",
        1,
    );
    assert_ne!(t, SAMPLE);
    assert_differs(
        check(&t),
        "vg0/logical_volumes/root_snap/status",
        DiffKind::Value {
            committed: "[\"READ\", \"WRITE\", \"VISIBLE\"]".into(),
            printed: "[\"READ\", \"WRITE\"]".into(),
        },
    );
}

/// `read_ahead = 0` means "auto" to lvm2, which then does not write it.
#[test]
fn a_value_lvm2_drops_is_refused() {
    let t = SAMPLE.replacen("segment_count = 1", "read_ahead = 0\nsegment_count = 1", 1);
    assert_differs(
        check(&t),
        "vg0/logical_volumes/root",
        DiffKind::Dropped {
            key: "read_ahead".into(),
        },
    );
}

#[test]
fn a_model_that_differs_from_the_committed_text_is_refused() {
    let mut v = vg(SAMPLE);
    v.seqno += 1;
    assert_differs(
        check_printable(&v, SAMPLE.as_bytes()),
        "vg0/seqno",
        DiffKind::Value {
            committed: "6".into(),
            printed: "7".into(),
        },
    );
    let mut v = vg(SAMPLE);
    v.lvs.pop();
    assert!(matches!(
        check_printable(&v, SAMPLE.as_bytes()),
        Err(PrintError::Differs {
            kind: DiffKind::Dropped { .. },
            ..
        })
    ));
}

#[test]
fn unknown_segment_types_are_refused_by_name() {
    let t = SAMPLE.replacen(
        "type = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", 1280\n]",
        "type = \"raid1\"\nraids = [\"x\"]",
        1,
    );
    let v = vg(&t);
    assert!(matches!(
        v.lv("home").expect("home").segments[0].kind,
        SegmentKind::Other { .. }
    ));
    match check_printable(&v, t.as_bytes()) {
        Err(PrintError::UnprintableSegment { lv, segtype, .. }) => {
            assert_eq!((lv.as_str(), segtype.as_str()), ("home", "raid1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn committed_text_that_does_not_parse_is_reported() {
    assert!(matches!(
        check_printable(&vg(SAMPLE), b"vg0 { id = "),
        Err(PrintError::Committed(_))
    ));
}

/// Key order and flag order are the writer's, not data: older lvm2 versions wrote
/// creation_host first, hand edits reorder flags; lvm2 rewrites both without loss.
#[test]
fn key_and_flag_order_are_not_differences() {
    let t = SAMPLE
        .replacen(
            "creation_time = 1718000000\ncreation_host = \"box\"",
            "creation_host = \"box\"\ncreation_time = 1718000000",
            1,
        )
        .replacen(
            "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]",
            "status = [\"WRITE\", \"READ\", \"RESIZEABLE\"]",
            1,
        )
        .replacen("format = \"lvm2\"\n", "", 1);
    assert_ne!(t, SAMPLE);
    check(&t).expect("same data");
}
