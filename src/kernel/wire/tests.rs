use super::*;
use proptest::prelude::*;

/// Build a DM_LIST_DEVICES payload the way the kernel's `list_devices` does.
fn kernel_name_list(devs: &[(u64, &str, u32, Option<&str>)], uuid_flag: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for (dev, name, ev, uuid) in devs {
        let pos = out.len();
        if let Some(p) = prev {
            let next = (pos - p) as u32;
            out[p + 8..p + 12].copy_from_slice(&next.to_ne_bytes());
        }
        out.resize(pos + 12, 0);
        out[pos..pos + 8].copy_from_slice(&dev.to_ne_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(align8(out.len()), 0);
        out.extend_from_slice(&ev.to_ne_bytes());
        let mut flags = 0u32;
        if uuid_flag {
            flags = if uuid.is_some() { 1 } else { 2 };
        }
        out.extend_from_slice(&flags.to_ne_bytes());
        if let (true, Some(u)) = (uuid_flag, uuid) {
            out.extend_from_slice(u.as_bytes());
            out.push(0);
            out.resize(align8(out.len()), 0);
        }
        prev = Some(pos);
    }
    if devs.is_empty() {
        out.resize(16, 0);
    }
    out
}

/// Build a DM_TABLE_STATUS payload the way the kernel's `retrieve_status` does.
fn kernel_status(targets: &[RawTarget]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in targets {
        let pos = out.len();
        out.resize(pos + SPEC_SIZE, 0);
        out[pos..pos + 8].copy_from_slice(&t.start.0.to_ne_bytes());
        out[pos + 8..pos + 16].copy_from_slice(&t.length.0.to_ne_bytes());
        out[pos + 24..pos + 24 + t.target_type.len()].copy_from_slice(t.target_type.as_bytes());
        out.extend_from_slice(t.params.as_bytes());
        out.push(0);
        out.resize(align8(out.len()), 0);
        let next = out.len() as u32;
        out[pos + 20..pos + 24].copy_from_slice(&next.to_ne_bytes());
    }
    out
}

#[test]
fn name_list_with_and_without_uuids() {
    let devs = [
        (
            DevNum::new(253, 0).to_kernel_huge(),
            "vg0-root",
            3,
            Some("LVM-xyz"),
        ),
        (DevNum::new(253, 300).to_kernel_huge(), "plain", 0, None),
    ];
    let data = kernel_name_list(&devs, true);
    let got = decode_name_list(&data).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, "vg0-root");
    assert_eq!(got[0].uuid.as_deref(), Some("LVM-xyz"));
    assert_eq!(got[0].event_nr, Some(3));
    assert_eq!(got[1].dev, DevNum::new(253, 300));
    assert_eq!(got[1].uuid, None);

    let data = kernel_name_list(&devs, false);
    let got = decode_name_list(&data).unwrap();
    assert_eq!(got[0].uuid, None);
    assert_eq!(got[0].event_nr, Some(3));
}

#[test]
fn empty_name_list() {
    assert!(
        decode_name_list(&kernel_name_list(&[], true))
            .unwrap()
            .is_empty()
    );
    assert!(decode_name_list(&[]).unwrap().is_empty());
}

#[test]
fn name_list_rejects_backward_next() {
    let devs = [(1u64, "a", 0, None), (2u64, "b", 0, None)];
    let mut data = kernel_name_list(&devs, false);
    data[8..12].copy_from_slice(&4u32.to_ne_bytes());
    assert!(decode_name_list(&data).is_err());
    data[8..12].copy_from_slice(&10_000u32.to_ne_bytes());
    assert!(decode_name_list(&data).is_err());
}

#[test]
fn name_without_nul_is_an_error() {
    let mut data = vec![0u8; 16];
    data[0] = 1;
    for b in &mut data[12..16] {
        *b = b'x';
    }
    let e = decode_name_list(&data).unwrap_err();
    assert_eq!(e.offset, 12);
}

#[test]
fn status_specs_round_trip() {
    let t = vec![
        RawTarget {
            start: Sectors(0),
            length: Sectors(2048),
            target_type: "linear".into(),
            params: "7:0 0".into(),
        },
        RawTarget {
            start: Sectors(2048),
            length: Sectors(8),
            target_type: "zero".into(),
            params: String::new(),
        },
    ];
    let data = kernel_status(&t);
    assert_eq!(decode_target_specs(&data, 2).unwrap(), t);
    // A count larger than what is there is an error, not a panic.
    assert!(decode_target_specs(&data, 3).is_err());
    // Truncated params (no NUL) are an error.
    assert!(decode_target_specs(&data[..45], 1).is_err());
}

#[test]
fn load_encoding_has_relative_next() {
    let t = vec![
        RawTarget {
            start: Sectors(0),
            length: Sectors(1),
            target_type: "error".into(),
            params: String::new(),
        },
        RawTarget {
            start: Sectors(1),
            length: Sectors(1),
            target_type: "zero".into(),
            params: "abc".into(),
        },
    ];
    let enc = encode_target_specs(&t).unwrap();
    assert_eq!(enc.len() % 8, 0);
    assert_eq!(u32_at(&enc, 20).unwrap(), 48);
    assert_eq!(u32_at(&enc, 48 + 20).unwrap(), 0);
    let bad = RawTarget {
        target_type: "x".repeat(16),
        ..t[0].clone()
    };
    assert!(encode_target_specs(&[bad]).is_err());
    let nul = RawTarget {
        params: "a\0b".into(),
        ..t[0].clone()
    };
    assert!(encode_target_specs(&[nul]).is_err());
}

#[test]
fn target_versions() {
    let mut data = Vec::new();
    for (i, (name, v)) in [("linear", [1u32, 5, 0]), ("snapshot-origin", [1, 9, 0])]
        .iter()
        .enumerate()
    {
        let pos = data.len();
        data.resize(pos + 16, 0);
        for (k, x) in v.iter().enumerate() {
            data[pos + 4 + 4 * k..pos + 8 + 4 * k].copy_from_slice(&x.to_ne_bytes());
        }
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        data.resize(align8(data.len()), 0);
        if i == 0 {
            let next = (data.len() - pos) as u32;
            data[pos..pos + 4].copy_from_slice(&next.to_ne_bytes());
        }
    }
    let got = decode_target_versions(&data).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].name, "snapshot-origin");
    assert_eq!(got[1].version, Version::new(1, 9, 0));
}

#[test]
fn header_round_trip() {
    let mut buf = vec![0u8; 400];
    let h = RequestHeader {
        version: Version::new(4, 2, 0),
        target_count: 3,
        flags: 0x4000,
        event_nr: 9,
        dev: 0xfd00,
        name: "dev-name",
        uuid: "some-uuid",
    };
    encode_request(&mut buf, &h, b"payload\0").unwrap();
    let d = decode_header(&buf).unwrap();
    assert_eq!(d.version, h.version);
    assert_eq!(d.data_size, 400);
    assert_eq!(d.data_start, 312);
    assert_eq!(d.name, "dev-name");
    assert_eq!(d.uuid, "some-uuid");
    assert_eq!(d.dev, 0xfd00);
    assert_eq!(&buf[312..320], b"payload\0");
    let long = "n".repeat(128);
    let h2 = RequestHeader { name: &long, ..h };
    assert!(encode_request(&mut buf, &h2, &[]).is_err());
}

proptest! {
    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), count in 0u32..64) {
        let _ = decode_name_list(&data);
        let _ = decode_target_versions(&data);
        let _ = decode_deps(&data);
        let _ = decode_target_specs(&data, count);
        let _ = decode_header(&data);
    }

    #[test]
    fn name_list_round_trip(entries in proptest::collection::vec(("[a-z0-9_-]{1,40}", 1u32..4096, 0u32..(1<<20), any::<u32>(), proptest::option::of("[A-Za-z0-9-]{1,60}")), 1..20)) {
        let devs: Vec<(u64, &str, u32, Option<&str>)> = entries.iter()
            .map(|(n, ma, mi, ev, u)| (DevNum::new(*ma, *mi).to_kernel_huge(), n.as_str(), *ev, u.as_deref()))
            .collect();
        let got = decode_name_list(&kernel_name_list(&devs, true)).unwrap();
        prop_assert_eq!(got.len(), devs.len());
        for (g, (dev, n, ev, u)) in got.iter().zip(devs.iter()) {
            prop_assert_eq!(g.dev.to_kernel_huge(), *dev);
            prop_assert_eq!(&g.name, n);
            prop_assert_eq!(g.event_nr, Some(*ev));
            prop_assert_eq!(g.uuid.as_deref(), *u);
        }
    }

    #[test]
    fn specs_round_trip(ts in proptest::collection::vec(("[a-z-]{1,15}", "[ -~]{0,80}", 1u64..1<<40), 1..10)) {
        let mut start = 0;
        let targets: Vec<RawTarget> = ts.iter().map(|(ty, p, len)| {
            let t = RawTarget { start: Sectors(start), length: Sectors(*len), target_type: ty.clone(), params: p.clone() };
            start += len;
            t
        }).collect();
        let got = decode_target_specs(&kernel_status(&targets), targets.len() as u32).unwrap();
        prop_assert_eq!(got, targets.clone());
        let enc = encode_target_specs(&targets).unwrap();
        prop_assert_eq!(enc.len() % 8, 0);
    }
}

#[test]
fn deps_count_is_bounded_by_the_reply() {
    let mut data = vec![0u8; 16];
    data[0] = 1; // count
    data[8..16].copy_from_slice(&0xfd00u64.to_ne_bytes()); // 253:0
    let deps = decode_deps(&data).unwrap();
    assert_eq!(deps[0].to_string(), "253:0");
    data[0] = 9; // claims more than the buffer holds
    assert_eq!(
        decode_deps(&data),
        Err(DecodeError {
            offset: 0,
            reason: "deps count larger than the reply"
        })
    );
}
