use super::writer::{mda_header, put_text, seal_mda, simple_pv};
use crate::lvm::label::DiskLocn;
use crate::lvm::mda::{MAX_METADATA_TEXT, MdaContent, RAW_LOCN_IGNORED, RawLocn, read_metadata};
use crate::lvm::{Error, MdaErrorKind};
use proptest::prelude::*;

const AREA: DiskLocn = DiskLocn {
    offset: 4096,
    size: 1_048_576 - 4096,
};

fn text_of(c: MdaContent) -> (Vec<u8>, bool) {
    match c {
        MdaContent::Text(t) => (t.text.to_vec(), t.wrapped),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn reads_committed_text() {
    let img = simple_pv(2 << 20, b"vg0 {\nseqno = 1\n}\n");
    let (h, c) = read_metadata(&img[..], AREA).unwrap();
    assert_eq!((h.start, h.size, h.version), (4096, 1_048_576 - 4096, 1));
    let (t, wrapped) = text_of(c);
    assert_eq!(t, b"vg0 {\nseqno = 1\n}\n");
    assert!(!wrapped);
}

#[test]
fn wrapped_copy_is_joined() {
    // A small 8 KiB area; the copy starts 100 bytes before its end and wraps to offset 512.
    let mut img = vec![0u8; 64 << 10];
    let (start, size) = (4096u64, 8192u64);
    let text: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    let locn = put_text(&mut img, start, size, size - 100, &text);
    img[4096..4608].copy_from_slice(&mda_header(start, size, &[locn]));
    let (_, c) = read_metadata(
        &img[..],
        DiskLocn {
            offset: start,
            size,
        },
    )
    .unwrap();
    let (t, wrapped) = text_of(c);
    assert!(wrapped);
    assert_eq!(t, text);
    // The second part really is right after the header.
    assert_eq!(img[4096 + 512], text[100]);
}

#[test]
fn text_checksum_verified() {
    let mut img = simple_pv(2 << 20, b"vg0 { }\n");
    img[4096 + 512 + 2] ^= 1;
    let err = read_metadata(&img[..], AREA).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Mda {
                offset: 4096,
                kind: MdaErrorKind::TextChecksum { stored, computed }
            } if stored != computed
        ),
        "{err}"
    );
    assert!(err.to_string().contains("text checksum"), "{err}");
}

#[test]
fn header_checks() {
    let img = simple_pv(2 << 20, b"vg0 { }\n");
    // Wrong start: the pv_header says 4096 but we ask for 8192 where nothing is.
    let err = read_metadata(
        &img[..],
        DiskLocn {
            offset: 8192,
            size: 4096,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                offset: 8192,
                kind: MdaErrorKind::HeaderChecksum { .. }
            }
        ),
        "{err:?}"
    );
    // Bad magic with a valid checksum.
    let mut h: [u8; 512] = img[4096..4608].try_into().unwrap();
    h[5] = b'X';
    seal_mda(&mut h);
    let mut bad = img.clone();
    bad[4096..4608].copy_from_slice(&h);
    let err = read_metadata(&bad[..], AREA).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                kind: MdaErrorKind::WrongMagic,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("magic"), "{err}");
    // Version 2.
    let mut h: [u8; 512] = img[4096..4608].try_into().unwrap();
    h[20] = 2;
    seal_mda(&mut h);
    bad[4096..4608].copy_from_slice(&h);
    let err = read_metadata(&bad[..], AREA).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                kind: MdaErrorKind::UnsupportedVersion { version: 2 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("version"));
    // Header start field disagrees with where it was found.
    let mut h: [u8; 512] = img[4096..4608].try_into().unwrap();
    h[24] = 1;
    seal_mda(&mut h);
    bad[4096..4608].copy_from_slice(&h);
    let err = read_metadata(&bad[..], AREA).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                offset: 4096,
                kind: MdaErrorKind::StartMismatch { start: 4097 }
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("starts at"));
    // An area smaller than its own header.
    let mut h: [u8; 512] = img[4096..4608].try_into().unwrap();
    h[32..40].copy_from_slice(&100u64.to_le_bytes());
    seal_mda(&mut h);
    bad[4096..4608].copy_from_slice(&h);
    assert!(matches!(
        read_metadata(&bad[..], AREA),
        Err(Error::Mda {
            kind: MdaErrorKind::AreaTooSmall { size: 100 },
            ..
        })
    ));
}

#[test]
fn ignored_and_empty() {
    let mut img = simple_pv(2 << 20, b"vg0 { }\n");
    let mut h: [u8; 512] = img[4096..4608].try_into().unwrap();
    h[60..64].copy_from_slice(&RAW_LOCN_IGNORED.to_le_bytes());
    seal_mda(&mut h);
    img[4096..4608].copy_from_slice(&h);
    assert_eq!(
        read_metadata(&img[..], AREA).unwrap().1,
        MdaContent::Ignored
    );
    let orphan = simple_pv(2 << 20, b"");
    assert_eq!(
        read_metadata(&orphan[..], AREA).unwrap().1,
        MdaContent::Empty
    );
}

#[test]
fn hostile_locations_rejected() {
    let mut img = simple_pv(2 << 20, b"");
    let outside = |offset| MdaErrorKind::TextOutsideBuffer {
        offset,
        area_size: AREA.size,
    };
    for (offset, size, want) in [
        (AREA.size, 10, outside(AREA.size)),
        (100, 10, outside(100)),
        (
            512,
            AREA.size,
            MdaErrorKind::TextSizeUnfit { size: AREA.size },
        ),
        (512, 0, MdaErrorKind::TextSizeUnfit { size: 0 }),
        (u64::MAX, 5, outside(u64::MAX)),
    ] {
        let locn = RawLocn {
            offset,
            size,
            checksum: 0,
            flags: 0,
        };
        img[4096..4608].copy_from_slice(&mda_header(4096, AREA.size, &[locn]));
        match read_metadata(&img[..], AREA) {
            Err(Error::Mda { offset: 4096, kind }) => assert_eq!(kind, want, "{offset} {size}"),
            other => panic!("{offset} {size}: {other:?}"),
        }
    }
    // Offsets near the top of the u64 range fail cleanly (no overflow).
    let locn = RawLocn {
        offset: u64::MAX - 10,
        size: 100,
        checksum: 0,
        flags: 0,
    };
    img[4096..4608].copy_from_slice(&mda_header(4096, u64::MAX, &[locn]));
    let err = read_metadata(&img[..], AREA).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                kind: MdaErrorKind::Overflow {
                    what: "text location"
                },
                ..
            }
        ),
        "{err:?}"
    );
    // A huge area with a huge (but "fitting") size is capped before allocating.
    let locn = RawLocn {
        offset: 512,
        size: 3 << 30,
        checksum: 0,
        flags: 0,
    };
    img[4096..4608].copy_from_slice(&mda_header(4096, 4 << 30, &[locn]));
    let err = read_metadata(&img[..], AREA).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mda {
                kind: MdaErrorKind::TextOverLimit {
                    size: 0xc000_0000,
                    limit: MAX_METADATA_TEXT
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn text_ends_at_nul() {
    let img = simple_pv(2 << 20, b"vg0 { }\n\0garbage");
    let (t, _) = text_of(read_metadata(&img[..], AREA).unwrap().1);
    assert_eq!(t, b"vg0 { }\n");
}

proptest! {
    #[test]
    fn wrap_anywhere(start_off in 512u64..8192, len in 1usize..3000) {
        let mut img = vec![0u8; 64 << 10];
        let (start, size) = (4096u64, 8192u64);
        let text: Vec<u8> = (0..len).map(|i| b'A' + (i % 26) as u8).collect();
        let locn = put_text(&mut img, start, size, start_off, &text);
        img[4096..4608].copy_from_slice(&mda_header(start, size, &[locn]));
        let (_, c) = read_metadata(&img[..], DiskLocn { offset: start, size }).unwrap();
        prop_assert_eq!(text_of(c).0, text);
    }

    #[test]
    fn never_panics(hdr in proptest::collection::vec(any::<u8>(), 512)) {
        let mut img = vec![0u8; 16 << 10];
        let mut h: [u8; 512] = hdr.try_into().unwrap();
        h[4..20].copy_from_slice(crate::lvm::mda::FMTT_MAGIC);
        h[24..32].copy_from_slice(&4096u64.to_le_bytes());
        seal_mda(&mut h);
        img[4096..4608].copy_from_slice(&h);
        let _ = read_metadata(&img[..], DiskLocn { offset: 4096, size: 8192 });
    }
}
