use super::writer::{LabelSpec, PV_ID, label_sector, seal_label, simple_pv};
use crate::lvm::id::IdError;
use crate::lvm::label::{DiskLocn, find_label, parse_label_sector, read_label};
use crate::lvm::{AreaList, Error, LabelErrorKind};
use proptest::prelude::*;

fn spec(sector: u64) -> LabelSpec<'static> {
    LabelSpec {
        sector,
        pv_id: PV_ID,
        device_size: 20 << 30,
        data_areas: vec![(1 << 20, 0)],
        metadata_areas: vec![(4096, 0xff000), ((20 << 30) - 0x100000, 0x100000)],
        extension: Some((2, 1)),
    }
}

#[test]
fn decodes_all_fields() {
    let img = simple_pv(2 << 20, b"");
    let l = read_label(&img[..]).unwrap();
    assert_eq!(l.sector, 1);
    assert_eq!(l.pv_header_offset, 32);
    assert_eq!(l.pv_id.as_str(), PV_ID);
    assert_eq!(
        l.pv_id.to_string(),
        "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
    );
    assert_eq!(l.device_size, 2 << 20);
    assert_eq!(
        l.data_areas,
        vec![DiskLocn {
            offset: 1 << 20,
            size: 0
        }]
    );
    assert_eq!(
        l.metadata_areas,
        vec![DiskLocn {
            offset: 4096,
            size: 0xff000
        }]
    );
    let ext = l.extension.unwrap();
    assert_eq!(
        (ext.version, ext.flags, ext.bootloader_areas.len()),
        (2, 1, 0)
    );
}

#[test]
fn two_metadata_areas() {
    let s = label_sector(&spec(0));
    let l = parse_label_sector(&s, 0).unwrap().unwrap();
    assert_eq!(l.metadata_areas.len(), 2);
    assert_eq!(l.metadata_areas[1].size, 0x100000);
}

#[test]
fn label_in_any_of_four_sectors() {
    for idx in 0..4u64 {
        let mut buf = vec![0u8; 2048];
        let s = label_sector(&spec(idx));
        buf[idx as usize * 512..][..512].copy_from_slice(&s);
        assert_eq!(find_label(&buf).unwrap().sector, idx);
    }
}

#[test]
fn wrong_sector_field_is_ignored() {
    // A label that says "sector 2" but sits in sector 1 is skipped, as lvm2 does.
    let mut buf = vec![0u8; 2048];
    buf[512..1024].copy_from_slice(&label_sector(&spec(2)));
    assert!(matches!(find_label(&buf), Err(Error::NoLabel)));
}

#[test]
fn bad_crc_is_ignored_and_next_label_wins() {
    let mut buf = vec![0u8; 2048];
    let mut s0 = label_sector(&spec(0));
    s0[100] ^= 1; // corrupt inside the CRC'd range
    buf[..512].copy_from_slice(&s0);
    buf[1024..1536].copy_from_slice(&label_sector(&spec(2)));
    assert_eq!(find_label(&buf).unwrap().sector, 2);
    // The CRC does not cover bytes 0..20 except via sector_xl checks: a flipped id is not a label.
    let mut s = label_sector(&spec(0));
    s[0] = b'X';
    assert!(parse_label_sector(&s, 0).unwrap().is_none());
}

#[test]
fn other_label_type_is_not_ours() {
    let mut s = label_sector(&spec(1));
    s[24..32].copy_from_slice(b"LVM1 001");
    seal_label(&mut s);
    assert!(parse_label_sector(&s, 1).unwrap().is_none());
}

#[test]
fn bad_pv_header_offset() {
    let mut s = label_sector(&spec(1));
    s[20..24].copy_from_slice(&500u32.to_le_bytes());
    seal_label(&mut s);
    let err = parse_label_sector(&s, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                sector: 1,
                kind: LabelErrorKind::PvHeaderOutside { offset: 500 }
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "PV label in sector 1: pv_header offset 500 is outside the sector"
    );
}

#[test]
fn unterminated_area_list() {
    let mut s = label_sector(&spec(1));
    // Fill everything after the pv_header with non-zero offsets: no terminator fits.
    for chunk in s[72..].chunks_mut(8) {
        chunk.copy_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0][..chunk.len()]);
    }
    seal_label(&mut s);
    let err = parse_label_sector(&s, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                sector: 1,
                kind: LabelErrorKind::UnterminatedList {
                    list: AreaList::Data
                }
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not terminated"), "{err}");
    // The metadata list: one data area, then no terminator.
    let mut s = label_sector(&spec(1));
    for chunk in s[104..].chunks_mut(8) {
        chunk.copy_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0][..chunk.len()]);
    }
    seal_label(&mut s);
    assert!(matches!(
        parse_label_sector(&s, 1),
        Err(Error::Label {
            kind: LabelErrorKind::UnterminatedList {
                list: AreaList::Metadata
            },
            ..
        })
    ));
}

#[test]
fn bad_pv_id() {
    let mut s = label_sector(&spec(1));
    s[40] = b'-'; // inside pv_uuid: not an id character
    seal_label(&mut s);
    let err = parse_label_sector(&s, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                sector: 1,
                kind: LabelErrorKind::PvId(IdError::Char(b'-'))
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("PV label in sector 1: PV id: "),
        "{err}"
    );
}

#[test]
fn short_device() {
    assert!(matches!(read_label(&[0u8; 100][..]), Err(Error::NoLabel)));
    let img = simple_pv(2 << 20, b"");
    // Only sectors 0-1 present: still found.
    assert!(read_label(&img[..1024]).is_ok());
}

proptest! {
    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2100)) {
        let _ = find_label(&data);
    }

    #[test]
    fn never_panics_on_sealed_noise(noise in proptest::collection::vec(any::<u8>(), 480)) {
        let mut s = label_sector(&spec(0));
        s[32..].copy_from_slice(&noise);
        seal_label(&mut s);
        let _ = parse_label_sector(&s, 0);
    }
}
