use super::sample::THIN_STRIPED;
use super::writer::pv_image;
use crate::lvm::scan::{DeviceStatus, MdaOutcome, scan, summary};
use crate::lvm::{Error, MdaErrorKind, ModelErrorKind, ScanErrorKind, ValueType};

const PV0: &str = "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG";
const PV1: &str = "HHHHHHIIIIJJJJKKKKLLLLMMMMNNNNNN";
const LEN: usize = 4 << 20;
const MDA1: (u64, u64) = (4096, (1 << 20) - 4096);
const MDA2: (u64, u64) = ((LEN as u64) - (1 << 20), 1 << 20);

fn text(seqno: u32) -> Vec<u8> {
    THIN_STRIPED
        .replacen("seqno = 12", &format!("seqno = {seqno}"), 1)
        .into_bytes()
}

#[test]
fn two_pvs_two_copies_newest_wins() {
    let new = text(13);
    let old = text(12);
    // pv0: mda1 old, mda2 new. pv1: both old.
    let a = pv_image(
        LEN,
        PV0,
        &[(MDA1.0, MDA1.1, Some(&old)), (MDA2.0, MDA2.1, Some(&new))],
    );
    let b = pv_image(
        LEN,
        PV1,
        &[(MDA1.0, MDA1.1, Some(&old)), (MDA2.0, MDA2.1, Some(&old))],
    );
    let r = scan(&[&a[..], &b[..]]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.pvs.len(), 2);
    assert_eq!(r.pvs[0].mdas.len(), 2);
    assert_eq!(r.vgs.len(), 1);
    let vg = &r.vgs[0];
    assert_eq!(vg.vg.seqno, 13);
    assert_eq!(vg.text, new);
    assert!(vg.inconsistent);
    assert!(vg.is_complete());
    assert_eq!(vg.pv_devices, vec![Some(0), Some(1)]);
    assert_eq!(vg.device_of(&vg.vg.pvs[1]), Some(1));
}

#[test]
fn device_order_does_not_matter() {
    let t = text(12);
    let a = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(&t))]);
    let b = pv_image(LEN, PV1, &[(MDA1.0, MDA1.1, Some(&t))]);
    let r = scan(&[&b[..], &a[..]]);
    let vg = &r.vgs[0];
    assert!(!vg.inconsistent);
    assert_eq!(vg.pv_devices, vec![Some(1), Some(0)]);
}

#[test]
fn missing_pv_makes_vg_incomplete() {
    let t = text(12);
    let a = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(&t))]);
    let r = scan(&[&a[..]]);
    let vg = &r.vgs[0];
    assert!(!vg.is_complete());
    let missing: Vec<_> = vg.missing_pvs().map(|p| p.handle.as_str()).collect();
    assert_eq!(missing, ["pv1"]);
}

#[test]
fn pv_without_metadata_still_completes_the_vg() {
    let t = text(12);
    let a = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(&t))]);
    let b = pv_image(LEN, PV1, &[]);
    let r = scan(&[&a[..], &b[..]]);
    assert!(r.vgs[0].is_complete());
    assert!(r.pvs[1].mdas.is_empty());
}

#[test]
fn a_bad_copy_is_recorded_and_the_other_used() {
    let t = text(12);
    let mut a = pv_image(
        LEN,
        PV0,
        &[(MDA1.0, MDA1.1, Some(&t)), (MDA2.0, MDA2.1, Some(&t))],
    );
    a[4096 + 600] ^= 0xff; // corrupt the first copy's text
    let r = scan(&[&a[..]]);
    assert!(matches!(r.pvs[0].mdas[0].outcome, MdaOutcome::Error(_)));
    assert!(matches!(
        r.pvs[0].mdas[1].outcome,
        MdaOutcome::Text { seqno: 12, .. }
    ));
    assert_eq!(r.vgs.len(), 1);
}

#[test]
fn unlabelled_and_unimportable() {
    let blank = vec![0u8; LEN];
    let bad = THIN_STRIPED.replacen("segment_count = 2", "segment_count = 3", 1);
    let a = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(bad.as_bytes()))]);
    let r = scan(&[&blank[..], &a[..]]);
    assert_eq!(r.errors.len(), 2);
    assert_eq!(r.errors[0].0, Some(0));
    assert!(matches!(r.errors[0].1, Error::NoLabel), "{:?}", r.errors[0]);
    match &r.errors[1] {
        (
            None,
            Error::Scan {
                vg,
                kind: ScanErrorKind::NewestDoesNotImport { seqno: 12, error },
            },
        ) => {
            assert_eq!(vg, "aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg");
            assert!(
                matches!(
                    **error,
                    Error::Model {
                        kind: ModelErrorKind::SegmentCountMismatch {
                            declared: 3,
                            found: 2
                        },
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.errors[1].1.to_string().contains("does not import"),
        "{}",
        r.errors[1].1
    );
    assert!(r.vgs.is_empty());
}

/// Each input device gets a typed outcome; the ones that cannot be read as what they
/// claim to be are errors, naming the area and the reason.
#[test]
fn device_outcomes_are_typed() {
    let t = text(12);
    let good = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(&t))]);
    let no_mda = pv_image(LEN, PV1, &[]);
    let blank = vec![0u8; LEN];
    // A PV whose only metadata area is corrupt: its header's checksum fails.
    let mut corrupt = pv_image(LEN, PV1, &[(MDA1.0, MDA1.1, Some(&t))]);
    corrupt[MDA1.0 as usize + 40] ^= 0xff;
    // A PV whose newest (only) metadata does not import.
    let bad = THIN_STRIPED.replacen("segment_count = 2", "segment_count = 3", 1);
    let unimportable = pv_image(LEN, PV0, &[(MDA1.0, MDA1.1, Some(bad.as_bytes()))]);
    let orphan = pv_image(LEN, PV1, &[(MDA1.0, MDA1.1, None)]);

    let r = scan(&[&good[..], &no_mda[..], &blank[..], &corrupt[..]]);
    let d = r.devices();
    assert_eq!(d.len(), 4);
    assert!(matches!(d[0].status, DeviceStatus::InVg { vg: 0 }) && !d[0].is_error());
    // no_mda is pv1 of the VG: listed, so in it.
    assert!(
        matches!(d[1].status, DeviceStatus::InVg { vg: 0 }),
        "{:?}",
        d[1]
    );
    assert!(matches!(d[2].status, DeviceStatus::NoLabel) && d[2].is_error());
    // corrupt also claims pv1's id, which no_mda already holds: a duplicate, with its bad
    // area reported.
    assert!(
        matches!(d[3].status, DeviceStatus::Duplicate { of: 1 }),
        "{:?}",
        d[3]
    );
    assert_eq!(d[3].bad_areas.len(), 1);
    assert_eq!(d[3].bad_areas[0].0.offset, MDA1.0);
    assert!(
        matches!(
            d[3].bad_areas[0].1,
            Error::Mda {
                offset: 4096,
                kind: MdaErrorKind::HeaderChecksum { .. }
            }
        ),
        "{:?}",
        d[3].bad_areas
    );

    // Alone, the corrupt PV is an error: nothing readable says which VG it is in.
    let r = scan(&[&corrupt[..]]);
    let d = r.devices();
    assert!(
        matches!(d[0].status, DeviceStatus::MetadataUnreadable),
        "{:?}",
        d[0]
    );
    assert!(d[0].is_error());

    let stray = pv_image(LEN, "OOOOOOPPPPQQQQRRRRSSSSTTTTUUUUUU", &[]);
    let r = scan(&[&unimportable[..], &orphan[..], &stray[..]]);
    let d = r.devices();
    assert_eq!(r.failed_vgs.len(), 1);
    assert_eq!(r.failed_vgs[0].name, "my-vg");
    assert_eq!(r.failed_vgs[0].devices, [0]);
    assert!(matches!(
        r.failed_vgs[0].error,
        Error::Model {
            kind: ModelErrorKind::SegmentCountMismatch { .. },
            ..
        }
    ));
    assert!(matches!(d[0].status, DeviceStatus::VgNotImported { vg } if vg.seqno == 12));
    assert!(d[0].is_error());
    assert!(matches!(d[1].status, DeviceStatus::Orphan) && !d[1].is_error());
    assert!(matches!(d[2].status, DeviceStatus::NoMetadataArea) && !d[2].is_error());
}

/// The summary read from each metadata area (name, id, seqno) refuses what it cannot
/// read with the importer's kinds.
#[test]
fn summary_errors_are_typed() {
    let (name, id, seqno) = summary(&text(12)).unwrap();
    assert_eq!((name.as_str(), seqno), ("my-vg", 12));
    assert_eq!(id.as_str(), "aaaaaabbbbccccddddeeeeffffgggggg");
    let kind = |t: &str| match summary(t.as_bytes()) {
        Err(Error::Model { path, kind }) => (path, kind),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        kind("version = 1\n"),
        (String::new(), ModelErrorKind::NoVgSection)
    );
    assert_eq!(
        kind("vg { seqno = 1 }"),
        ("vg".into(), ModelErrorKind::MissingKey { key: "id".into() })
    );
    assert!(matches!(
        kind("vg { id = \"x\" seqno = 1 }").1,
        ModelErrorKind::BadId { id, .. } if id == "x"
    ));
    let ok_id = "id = \"aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg\"";
    assert_eq!(
        kind(&format!("vg {{ {ok_id} }}")).1,
        ModelErrorKind::MissingKey {
            key: "seqno".into()
        }
    );
    assert_eq!(
        kind(&format!("vg {{ {ok_id} seqno = \"1\" }}")).1,
        ModelErrorKind::WrongType {
            key: "seqno".into(),
            expected: ValueType::Integer
        }
    );
    assert!(matches!(summary(b"vg {"), Err(Error::Parse(_))));
}
