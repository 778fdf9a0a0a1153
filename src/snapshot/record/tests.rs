//! Tests of the record codec.

use super::*;

fn sample() -> Record {
    Record {
        state: RecordState::Snapshot,
        created: 1_764_622_800,
        chunk_sectors: 8,
        store_offset: Sectors(8),
        store_sectors: Sectors(16_376),
        origin_sectors: 409_600,
        wrapper_name: DmName::new("data").unwrap(),
        wrapper_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef").unwrap(),
        snapshot_name: DmName::new("data-snap").unwrap(),
        snapshot_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef-snap-1a2b3c4d")
            .unwrap(),
        origin_ids: vec![
            DeviceId::new(IdKind::Serial, "QM00002"),
            DeviceId::new(IdKind::Content, "ext4:5f0e7a0c-2a3b-4c5d-8e9f-001122334455"),
        ],
    }
}

/// Recompute the CRC after editing the bytes.
fn reseal(b: &mut [u8]) {
    let len = (le_u32(b, 12).unwrap() as usize).clamp(FIXED_LEN, b.len());
    let crc = crc_of(&b[..len]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip() {
    let r = sample();
    let b = r.encode().unwrap();
    assert_eq!(b.len(), RECORD_LEN);
    assert_eq!(&b[..8], b"DMSNAPRC");
    assert_eq!(Record::parse(&b).unwrap(), r);
    let mut m = r.clone();
    m.state = RecordState::Merging;
    m.origin_ids.clear();
    assert_eq!(Record::parse(&m.encode().unwrap()).unwrap(), m);
    // Exactly `length` bytes suffice.
    let len = le_u32(&b, 12).unwrap() as usize;
    assert_eq!(Record::parse(&b[..len]).unwrap(), r);
    assert_eq!(r.store_range(), 4096..4096 + 16_376 * 512);
}

#[test]
fn crc_mismatch_anywhere() {
    let b = sample().encode().unwrap();
    let len = le_u32(&b, 12).unwrap() as usize;
    // Magic, version and length are checked before the CRC.
    for i in 20..len {
        let mut c = b.clone();
        c[i] ^= 0x01;
        assert!(
            matches!(Record::parse(&c), Err(RecordError::Crc { .. })),
            "byte {i}: {:?}",
            Record::parse(&c)
        );
    }
    // Bytes after `length` are not covered and not read.
    let mut c = b.clone();
    c[len + 10] = 0xff;
    assert!(Record::parse(&c).is_ok());
}

#[test]
fn truncated_and_foreign() {
    let b = sample().encode().unwrap();
    let len = le_u32(&b, 12).unwrap() as usize;
    assert_eq!(
        Record::parse(&b[..len - 1]),
        Err(RecordError::Truncated {
            len: len - 1,
            needed: len
        })
    );
    assert!(matches!(
        Record::parse(&b[..10]),
        Err(RecordError::Truncated { len: 10, .. })
    ));
    assert_eq!(
        Record::parse(&[]),
        Err(RecordError::Truncated { len: 0, needed: 64 })
    );
    assert_eq!(Record::parse(&[0; 4096]), Err(RecordError::BadMagic));
    assert_eq!(Record::parse(b"SnAp"), Err(RecordError::BadMagic));
    let mut v = b.clone();
    v[8] = 2;
    assert_eq!(Record::parse(&v), Err(RecordError::BadVersion(2)));
    let mut l = b.clone();
    l[12..16].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(Record::parse(&l), Err(RecordError::BadLength(5000)));
}

#[test]
fn hostile_fields_are_typed_errors() {
    let b = sample().encode().unwrap();
    let field = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut c = b.clone();
        edit(&mut c);
        reseal(&mut c);
        Record::parse(&c)
    };
    let is_field = |r: Result<Record, RecordError>, name: &str| match r {
        Err(RecordError::BadField { field, .. }) => assert_eq!(field, name),
        other => panic!("{name}: {other:?}"),
    };
    is_field(field(&|c| c[20] = 9), "state");
    is_field(
        field(&|c| c[48..52].copy_from_slice(&12u32.to_le_bytes())),
        "chunk size",
    );
    is_field(
        field(&|c| c[48..52].copy_from_slice(&0u32.to_le_bytes())),
        "chunk size",
    );
    is_field(
        field(&|c| c[48..52].copy_from_slice(&(1u32 << 31).to_le_bytes())),
        "chunk size",
    );
    is_field(
        field(&|c| c[32..40].copy_from_slice(&0u64.to_le_bytes())),
        "store offset",
    );
    is_field(
        field(&|c| c[32..40].copy_from_slice(&12u64.to_le_bytes())),
        "store offset",
    );
    is_field(
        field(&|c| c[40..48].copy_from_slice(&u64::MAX.to_le_bytes())),
        "store length",
    );
    is_field(
        field(&|c| c[40..48].copy_from_slice(&16u64.to_le_bytes())),
        "store length",
    );
    is_field(
        field(&|c| c[56..64].copy_from_slice(&0u64.to_le_bytes())),
        "origin size",
    );
    // The first field (wrapper name, 4 bytes "data"): a length past the end.
    is_field(
        field(&|c| c[65..67].copy_from_slice(&0xffffu16.to_le_bytes())),
        "fields",
    );
    // An unknown low tag; a bad name; not UTF-8.
    is_field(field(&|c| c[64] = 7), "fields");
    is_field(field(&|c| c[67] = b'/'), "wrapper name");
    is_field(field(&|c| c[67] = 0xff), "fields");
    // The uuid field's text (after "data": tag 1 at 64, value 67..71, tag 2 at 71).
    is_field(field(&|c| c[74 + 7] = b'x'), "wrapper uuid");
    // Tag 1 turned into tag 3: wrapper name missing, snapshot name twice.
    is_field(field(&|c| c[64] = 3), "snapshot name");
}

#[test]
fn optional_tags_are_skipped_and_required_ones_missing() {
    let r = sample();
    let mut b = r.encode().unwrap();
    let len = le_u32(&b, 12).unwrap() as usize;
    // Append an unknown optional field.
    b[len..len + 6].copy_from_slice(&[40, 3, 0, b'a', b'b', b'c']);
    b[12..16].copy_from_slice(&((len + 6) as u32).to_le_bytes());
    reseal(&mut b);
    assert_eq!(Record::parse(&b).unwrap(), r);
    // No fields at all: the wrapper name is missing.
    let mut c = r.encode().unwrap();
    c[12..16].copy_from_slice(&(FIXED_LEN as u32).to_le_bytes());
    reseal(&mut c);
    assert_eq!(Record::parse(&c), Err(RecordError::Missing("wrapper name")));
}

#[test]
fn encode_leaves_out_overlong_ids() {
    let mut r = sample();
    r.origin_ids
        .push(DeviceId::new(IdKind::Wwid, "x".repeat(300)));
    for i in 0..40 {
        r.origin_ids
            .push(DeviceId::new(IdKind::Serial, format!("s{i}")));
    }
    let p = Record::parse(&r.encode().unwrap()).unwrap();
    assert_eq!(p.origin_ids.len(), MAX_IDS);
    assert!(p.origin_ids.iter().all(|i| i.value.len() <= MAX_ID_LEN));
}

#[test]
fn the_probe_recognises_a_record() {
    use crate::probe::{Found, identify};
    let mut dev = sample().encode().unwrap();
    dev.resize(1 << 20, 0);
    let found = identify(&dev[..]).unwrap();
    assert!(
        matches!(&found[..], [Found::DmsnapRecord { snapshot: Some(s) }] if s.starts_with("snapshot data-snap of data")),
        "{found:?}"
    );
    assert!(
        found[0]
            .to_string()
            .starts_with("a dmsnap snapshot data-snap of data (taken 2025-12-01")
    );
    dev[30] ^= 1;
    assert_eq!(
        identify(&dev[..]).unwrap(),
        vec![Found::DmsnapRecord { snapshot: None }]
    );
}

#[test]
fn utc_dates() {
    assert_eq!(utc(1_764_622_800), "2025-12-01 21:00:00 UTC");
    assert!(utc(u64::MAX).len() > 10);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Record::parse(&b);
        let mut with_magic = RECORD_MAGIC.to_vec();
        with_magic.extend_from_slice(&b);
        let _ = Record::parse(&with_magic);
    }

    #[test]
    fn resealed_mutations_never_panic(i in 8usize..200, v in proptest::num::u8::ANY) {
        let mut b = sample().encode().unwrap();
        b[i] = v;
        reseal(&mut b);
        let _ = Record::parse(&b);
    }
}
