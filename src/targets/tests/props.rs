//! Property tests: typed values survive their text, canonical text survives parsing,
//! and no input makes a parser panic.

use proptest::prelude::*;

use super::strategies::*;
use super::{assert_params_canonical, assert_status_canonical};
use crate::targets::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn target_params_round_trip(t in target()) {
        let back = Target::parse(t.target_type(), &t.params()).unwrap();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn target_status_round_trip(s in target_status()) {
        let back = TargetStatus::parse(s.target_type(), &s.to_string()).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn linear_round_trip(l in linear()) {
        prop_assert_eq!(l.to_string().parse::<Linear>().unwrap(), l);
    }

    #[test]
    fn striped_round_trip(s in striped()) {
        prop_assert_eq!(s.to_string().parse::<Striped>().unwrap(), s);
    }

    #[test]
    fn snapshot_round_trip(s in snapshot()) {
        prop_assert_eq!(s.to_string().parse::<Snapshot>().unwrap(), s.clone());
        let merge = Target::SnapshotMerge(s);
        prop_assert_eq!(Target::parse("snapshot-merge", &merge.params()).unwrap(), merge);
    }

    #[test]
    fn thin_pool_round_trip(p in thin_pool()) {
        prop_assert_eq!(p.to_string().parse::<ThinPool>().unwrap(), p);
    }

    #[test]
    fn thin_round_trip(t in thin()) {
        prop_assert_eq!(t.to_string().parse::<Thin>().unwrap(), t);
    }

    #[test]
    fn striped_params_canonical(s in striped_params_text()) {
        assert_params_canonical("striped", &s);
    }

    #[test]
    fn snapshot_params_canonical(s in snapshot_params_text()) {
        assert_params_canonical("snapshot", &s);
        assert_params_canonical("snapshot-merge", &s);
    }

    #[test]
    fn thin_pool_params_canonical(s in thin_pool_params_text()) {
        assert_params_canonical("thin-pool", &s);
    }

    #[test]
    fn thin_params_canonical(s in thin_params_text()) {
        assert_params_canonical("thin", &s);
    }

    #[test]
    fn linear_params_canonical(d in dev_num_text(), o in any::<u64>()) {
        assert_params_canonical("linear", &format!("{d} {o}"));
        assert_params_canonical("snapshot-origin", &d);
    }

    #[test]
    fn striped_status_canonical(s in striped_status_text()) {
        assert_status_canonical("striped", &s);
    }

    #[test]
    fn snapshot_status_canonical(s in snapshot_status_text()) {
        assert_status_canonical("snapshot", &s);
        assert_status_canonical("snapshot-merge", &s);
    }

    #[test]
    fn thin_pool_status_canonical(s in thin_pool_status_text()) {
        assert_status_canonical("thin-pool", &s);
    }

    #[test]
    fn thin_status_canonical(s in thin_status_text()) {
        assert_status_canonical("thin", &s);
    }

    #[test]
    fn opaque_is_unchanged(name in opaque_name(), params in "\\PC{0,80}") {
        let t = Target::parse(&name, &params).unwrap();
        prop_assert_eq!(t.params(), params.clone());
        let s = TargetStatus::parse(&name, &params).unwrap();
        prop_assert_eq!(s.to_string(), params);
    }

    /// Arbitrary text never panics, and whatever parses re-parses to the same value.
    #[test]
    fn arbitrary_text_never_panics(which in 0usize..10, text in "\\PC{0,80}") {
        let ty = TargetKind::ALL.get(which).map_or("other", |k| k.name());
        if let Ok(t) = Target::parse(ty, &text) {
            prop_assert_eq!(Target::parse(ty, &t.params()).unwrap(), t);
        }
        if let Ok(s) = TargetStatus::parse(ty, &text) {
            prop_assert_eq!(TargetStatus::parse(ty, &s.to_string()).unwrap(), s);
        }
    }

    /// Mutated canonical text (one byte replaced) never panics either.
    #[test]
    fn mutated_text_never_panics(
        s in thin_pool_status_text(),
        at in any::<prop::sample::Index>(),
        b in prop::sample::select(vec![b' ', b'/', b'-', b'0', b'9', b'x', b':', b'\t']),
    ) {
        let mut bytes = s.into_bytes();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let text = String::from_utf8(bytes).unwrap();
        for ty in ["thin-pool", "thin", "snapshot", "striped"] {
            let _ = TargetStatus::parse(ty, &text);
            let _ = Target::parse(ty, &text);
        }
    }
}

proptest! {
    /// Resolution only rewrites devices: numbers stay, and a resolved target names
    /// every device by number.
    #[test]
    fn resolve_keeps_numbers(t in target()) {
        let all_nums = t.devices().iter().all(|d| d.as_num().is_some());
        match t.resolve_devices() {
            Ok(r) => {
                prop_assert!(r.devices().iter().all(|d| d.as_num().is_some()));
                prop_assert_eq!(r.devices().len(), t.devices().len());
                if all_nums {
                    prop_assert_eq!(r, t);
                }
            }
            Err(_) => prop_assert!(!all_nums),
        }
    }
}
