//! Tests of table text and validation.

use proptest::prelude::*;

use super::*;
use crate::targets::tests::strategies;
use crate::targets::{DevRef, Linear, Opaque, Snapshot, SnapshotOrigin, Stripe, Striped, Zero};

fn line(s: &str) -> TableLine {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn dmsetup_table_output_round_trips() {
    // `dmsetup table` of an LVM snapshot set (snapshot.rst), one device per table.
    for text in [
        "0 2097152 linear 8:19 384\n",
        "0 2097152 snapshot 254:11 254:12 P 16\n",
        "0 2097152 snapshot-origin 254:11\n",
        "0 2048 zero \n",
        "0 2048 error \n",
        "0 20971520 thin-pool 253:0 253:1 128 0 0 \n",
        "0 2048 linear 8:0 0\n2048 2048 striped 2 8 8:16 0 8:32 0\n4096 10 crypt aes-xts-plain64 0000 0 8:48 0\n",
    ] {
        let t: Table = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
        t.validate().unwrap();
    }
}

#[test]
fn empty_params_end_in_a_space_like_dmsetup() {
    let l = TableLine::new(Sectors(0), Sectors(8), Zero);
    assert_eq!(l.to_string(), "0 8 zero ");
    assert_eq!(line("0 8 zero"), l);
    assert_eq!(line("  0\t8   zero   "), l);
}

#[test]
fn reading_is_lenient_like_dmsetup() {
    let t: Table = "# a comment\n\n0 8 linear 8:0 0\n   \n  # another\n8 8 zero\n"
        .parse()
        .unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.to_string(), "0 8 linear 8:0 0\n8 8 zero \n");
    // Opaque params keep inner and trailing whitespace, lose only leading whitespace.
    let l = line("0 8 flakey   8:0 0 5  5 ");
    assert_eq!(l.target.params(), "8:0 0 5  5 ");
    assert_eq!(l.to_string(), "0 8 flakey 8:0 0 5  5 ");
}

#[test]
fn text_errors_have_line_and_column() {
    let e = "0 8 linear 8:0 0\n8 x zero\n".parse::<Table>().unwrap_err();
    assert_eq!((e.line, e.column), (2, 3));
    assert!(matches!(
        e.kind,
        TableErrorKind::InvalidNumber {
            field: "length",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "table line 2, column 3: invalid length \"x\", expected a decimal number of sectors"
    );

    let e = "\n\n0 8 linear 8:0 zz".parse::<Table>().unwrap_err();
    assert_eq!((e.line, e.column), (3, 16));
    let TableErrorKind::Target(pe) = &e.kind else {
        panic!("{e}")
    };
    assert_eq!(pe.offset, 4);

    let e = "0 8".parse::<TableLine>().unwrap_err();
    assert_eq!(
        (e.column, e.kind),
        (4, TableErrorKind::Missing("target type"))
    );
    let e = "".parse::<TableLine>().unwrap_err();
    assert_eq!(e.kind, TableErrorKind::Missing("start"));
    let e = "-1 8 zero".parse::<TableLine>().unwrap_err();
    assert_eq!(e.column, 1);
    let e = "0 8 zero\n8 8 zero".parse::<TableLine>().unwrap_err();
    assert_eq!((e.column, e.kind), (9, TableErrorKind::LineBreak));
    let e = "0 8 \u{7}bell".parse::<TableLine>().unwrap_err();
    assert!(matches!(e.kind, TableErrorKind::TargetName(_)));
}

#[test]
fn from_raw_and_to_raw() {
    let l =
        TableLine::from_raw(Sectors(0), Sectors(2048), "snapshot", "254:11 254:12 P 16").unwrap();
    assert!(matches!(l.target, Target::Snapshot(_)));
    let (s, n, ty, p) = l.to_raw();
    assert_eq!(
        (s, n, ty, p.as_str()),
        (Sectors(0), Sectors(2048), "snapshot", "254:11 254:12 P 16")
    );
    // Column of a params error in the Display form: "0 2048 snapshot " is 16 bytes.
    let e = TableLine::from_raw(Sectors(0), Sectors(2048), "snapshot", "254:11 254:12 X 16")
        .unwrap_err();
    assert_eq!(e.column, 17 + 14);
    let e = TableLine::from_raw(Sectors(0), Sectors(1), "a b", "").unwrap_err();
    assert_eq!(e.column, 5);
    // Lenient reading keeps kernel text this crate does not model.
    let l = TableLine::from_raw_lenient(Sectors(0), Sectors(8), "thin", "Fail").unwrap();
    assert_eq!(l.to_string(), "0 8 thin Fail");
    assert!(TableLine::from_raw(Sectors(0), Sectors(8), "thin", "Fail").is_err());
}

#[test]
fn validate_catches_what_the_kernel_refuses() {
    let err = |t: &Table| t.validate().unwrap_err();

    assert_eq!(err(&Table::new()).kind, TableErrorKind::Empty);

    let t: Table = "0 8 zero\n9 8 zero\n".parse().unwrap();
    let e = err(&t);
    assert_eq!((e.line, e.column), (2, 1));
    assert_eq!(
        e.kind,
        TableErrorKind::NotContiguous {
            expected: Sectors(8),
            found: Sectors(9)
        }
    );

    let t: Table = "1 8 zero".parse().unwrap();
    assert!(matches!(err(&t).kind, TableErrorKind::NotContiguous { .. }));

    let t: Table = "0 0 zero".parse().unwrap();
    assert_eq!(
        (err(&t).column, err(&t).kind),
        (3, TableErrorKind::ZeroLength)
    );

    let t: Table = format!("0 {} zero", MAX_TABLE_SECTORS + 1).parse().unwrap();
    assert_eq!(err(&t).kind, TableErrorKind::TooLarge);
    let t: Table = format!("0 {MAX_TABLE_SECTORS} zero").parse().unwrap();
    t.validate().unwrap();

    let t: Table = "0 8 a-very-long-target-name x".parse().unwrap();
    let e = err(&t);
    assert_eq!(e.column, 5);
    assert!(matches!(
        e.kind,
        TableErrorKind::TargetTypeTooLong { len: 23, .. }
    ));
    let t: Table = "0 8 fifteen-bytes-xx x".parse().unwrap();
    assert!(t.validate().is_err());
    let t: Table = "0 8 fifteen-bytes-x x".parse().unwrap();
    t.validate().unwrap();

    let nul = Table::from_lines(vec![TableLine::new(
        Sectors(0),
        Sectors(8),
        Opaque::new("x", "a\0b").unwrap(),
    )]);
    assert_eq!(
        (err(&nul).column, err(&nul).kind),
        (8, TableErrorKind::ParamsNul { offset: 1 })
    );
    let nl = Table::from_lines(vec![TableLine::new(
        Sectors(0),
        Sectors(8),
        Opaque::new("x", "ab\nc").unwrap(),
    )]);
    assert_eq!(err(&nl).kind, TableErrorKind::ParamsLineBreak { offset: 2 });

    // Striped: 3 stripes of 8-sector chunks need a length multiple of 24.
    let striped = |len| {
        Table::from_lines(vec![TableLine::new(
            Sectors(0),
            Sectors(len),
            Striped {
                chunk_size: Sectors(8),
                stripes: (0..3)
                    .map(|i| Stripe {
                        device: DevRef::num(8, i),
                        offset: Sectors(0),
                    })
                    .collect(),
            },
        )])
    };
    striped(48).validate().unwrap();
    assert!(matches!(
        err(&striped(36)).kind,
        TableErrorKind::StripedLength { .. }
    ));
    assert!(matches!(
        err(&striped(40)).kind,
        TableErrorKind::StripedLength { .. }
    ));

    let t: Table = "0 8 thin-pool 1:1 1:2 128 0\n8 8 zero".parse().unwrap();
    let e = err(&t);
    assert_eq!((e.line, e.column, e.kind), (1, 5, TableErrorKind::NotAlone));
    let t: Table = "0 8 thin-pool 1:1 1:2 128 0".parse().unwrap();
    t.validate().unwrap();
}

fn raw(start: u64, length: u64, ty: &str, params: &str) -> RawTarget {
    RawTarget {
        start: Sectors(start),
        length: Sectors(length),
        target_type: ty.into(),
        params: params.into(),
    }
}

/// `load_raw`'s rules are `Table::validate`'s: same error, same line and column, for every
/// case the typed validator catches (what the old raw checker caught included).
#[test]
fn raw_validation_is_the_table_validation() {
    let kind = |t: &[RawTarget]| validate_raw(t).unwrap_err().kind;
    assert_eq!(kind(&[]), TableErrorKind::Empty);
    validate_raw(&[raw(0, 8, "zero", ""), raw(8, 8, "zero", "")]).unwrap();
    assert!(matches!(
        kind(&[raw(1, 8, "zero", "")]),
        TableErrorKind::NotContiguous { .. }
    ));
    assert_eq!(kind(&[raw(0, 0, "zero", "")]), TableErrorKind::ZeroLength);
    assert_eq!(
        kind(&[raw(0, u64::MAX, "zero", "")]),
        TableErrorKind::TooLarge
    );
    // A line break the typed form would have dropped as whitespace is still refused.
    assert_eq!(
        kind(&[raw(0, 8, "linear", "8:0\n0")]),
        TableErrorKind::ParamsLineBreak { offset: 3 }
    );
    assert_eq!(
        kind(&[raw(0, 8, "x", "a\0b")]),
        TableErrorKind::ParamsNul { offset: 1 }
    );
    for text in [
        "0 8 zero\n9 8 zero\n",
        "0 8 a-very-long-target-name x",
        "0 36 striped 3 8 8:0 0 8:1 0 8:2 0",
        "0 8 thin-pool 1:1 1:2 128 0\n8 8 zero",
    ] {
        let typed: Table = text.parse().unwrap();
        let lines: Vec<RawTarget> = typed.lines().iter().map(RawTarget::from).collect();
        assert_eq!(validate_raw(&lines), typed.validate(), "{text:?}");
        assert!(typed.validate().is_err(), "{text:?}");
    }
    // Unparsable params of a known type are the kernel's to refuse, not the validator's.
    validate_raw(&[raw(0, 8, "linear", "not-a-device 0")]).unwrap();
}

#[test]
fn building_tables() {
    let mut t = Table::new();
    t.append(Sectors(100), Linear::new(DevRef::num(8, 0), Sectors(0)))
        .unwrap()
        .append(Sectors(50), SnapshotOrigin::new(DevRef::num(253, 1)))
        .unwrap();
    assert_eq!(t.size(), Some(Sectors(150)));
    assert_eq!(t.lines()[1].start, Sectors(100));
    t.validate().unwrap();
    assert!(t.append(Sectors(u64::MAX), Zero).is_err());
    assert_eq!(t.len(), 2, "a failed append adds nothing");
    let collected: Table = t.lines().iter().cloned().collect();
    assert_eq!(collected, t);
    assert_eq!((&t).into_iter().count(), 2);

    let snap = Snapshot::persistent(
        DevRef::path("/dev/vg/base-real").unwrap(),
        DevRef::num(253, 5),
        Sectors(8),
    );
    let line = TableLine::new(Sectors(0), Sectors(100), snap);
    assert_eq!(
        line.to_string(),
        "0 100 snapshot /dev/vg/base-real 253:5 P 8"
    );
    let unresolvable = Table::from_lines(vec![line]);
    assert!(unresolvable.resolve_devices().is_err());
    assert_eq!(t.resolve_devices().unwrap(), t);
}

fn table_line() -> impl Strategy<Value = TableLine> {
    (any::<u64>(), any::<u64>(), strategies::target())
        .prop_map(|(s, l, t)| TableLine::new(Sectors(s), Sectors(l), t))
}

proptest! {
    #[test]
    fn lines_round_trip(l in table_line()) {
        prop_assert_eq!(l.to_string().parse::<TableLine>().unwrap(), l.clone());
        let (s, n, ty, p) = l.to_raw();
        prop_assert_eq!(TableLine::from_raw(s, n, ty, &p).unwrap(), l);
    }

    #[test]
    fn tables_round_trip(targets in proptest::collection::vec((1u64..1 << 40, strategies::target()), 0..8)) {
        let mut t = Table::new();
        for (len, target) in targets {
            t.append(Sectors(len), target).unwrap();
        }
        let back: Table = t.to_string().parse().unwrap();
        prop_assert_eq!(&back, &t);
        // Everything but striped lengths and lone thin-pools is valid by construction.
        let tricky = t.lines().iter().any(|l| matches!(l.target, Target::Striped(_) | Target::ThinPool(_)));
        if !tricky && !t.is_empty() {
            prop_assert!(t.validate().is_ok(), "{:?}", t.validate());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,120}") {
        if let Ok(t) = text.parse::<Table>() {
            let _ = t.validate();
            prop_assert_eq!(t.to_string().parse::<Table>().unwrap(), t);
        }
    }
}

#[test]
fn dmsetup_key_hiding() {
    let t: Table = "0 8 crypt aes-cbc-essiv:sha256 0123456789abcdef 0 8:0 0\n8 8 linear 8:0 8\n"
        .parse()
        .unwrap();
    assert_eq!(
        t.to_string_hiding_keys(),
        "0 8 crypt aes-cbc-essiv:sha256 0000000000000000 0 8:0 0\n8 8 linear 8:0 8\n"
    );
    assert_eq!(hide_keys("crypt", "onlyoneword"), "onlyoneword");
    assert_eq!(
        hide_keys("crypt", "c  k"),
        "c  k",
        "an empty second word stays"
    );
    assert_eq!(
        hide_keys("crypt", "c k\u{e9}y x"),
        "c 0000 x",
        "bytes, like C"
    );
    assert_eq!(
        hide_keys(
            "integrity",
            "8:0 0 32 J 2 journal_crypt:aes:00ff journal_mac:hmac(sha1) x"
        ),
        "8:0 0 32 J 2 journal_crypt:aes:0000 journal_mac:hmac(sha1) x"
    );
    assert_eq!(
        hide_keys("integrity", "internal_hash:crc32c"),
        "internal_hash:crc32c"
    );
}

#[test]
fn status_lines() {
    let s = StatusLine::from_raw(
        Sectors(0),
        Sectors(4096),
        "thin-pool",
        "0 1/2 3/4 - rw discard_passdown queue_if_no_space - 1 ",
    )
    .unwrap();
    assert_eq!(
        s.to_string(),
        "0 4096 thin-pool 0 1/2 3/4 - rw discard_passdown queue_if_no_space - 1 "
    );
    let e = StatusLine::from_raw(Sectors(0), Sectors(8), "striped", "2 8:0 8:1 1 AZ").unwrap_err();
    assert_eq!(e.column, "0 8 striped ".len() + 1 + 12);
    assert_eq!(
        StatusLine::from_raw(Sectors(0), Sectors(8), "zero", "")
            .unwrap()
            .to_string(),
        "0 8 zero "
    );
}
