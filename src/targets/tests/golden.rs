//! Golden text from the kernel documentation and sources, and error positions.

use super::{assert_params_canonical, assert_status_canonical};
use crate::DevNum;
use crate::targets::*;
use crate::units::Sectors;

#[test]
fn lvm_snapshot_layout_from_snapshot_rst() {
    // Documentation/admin-guide/device-mapper/snapshot.rst, `dmsetup table` of an LVM
    // snapshot: base-real, snap-cow, snap, base.
    assert_params_canonical("linear", "8:19 384");
    assert_params_canonical("linear", "8:19 2097536");
    assert_params_canonical("snapshot", "254:11 254:12 P 16");
    assert_params_canonical("snapshot-origin", "254:11");
    assert_params_canonical("snapshot-merge", "254:11 254:12 P 16");
    let t = Target::parse("snapshot", "254:11 254:12 P 16").unwrap();
    assert_eq!(
        t,
        Target::Snapshot(Snapshot::persistent(
            DevNum::new(254, 11),
            DevNum::new(254, 12),
            Sectors(16)
        ))
    );
}

#[test]
fn snapshot_statuses() {
    // snapshot.rst merge example, and the kernel's state words.
    for s in [
        "397896/2097152 1560",
        "16/2097152 16",
        "Invalid",
        "Merge failed",
        "Overflow",
        "Unknown",
    ] {
        assert_status_canonical("snapshot", s);
        assert_status_canonical("snapshot-merge", s);
    }
    let st: SnapshotStatus = "397896/2097152 1560".parse().unwrap();
    let u = st.usage().unwrap();
    assert_eq!(u.data(), Sectors(397896 - 1560));
    assert!(!u.merge_progress().done);
    let pct = u.used_percent().unwrap();
    assert!((pct - 18.97).abs() < 0.01, "{pct}");

    let done: SnapshotStatus = "16/2097152 16".parse().unwrap();
    assert_eq!(
        done.merge_progress(),
        Some(MergeProgress {
            remaining: Sectors(0),
            done: true
        })
    );
    assert_eq!(SnapshotStatus::Invalid.merge_progress(), None);
    let half = SnapshotUsage {
        allocated: Sectors(66),
        total: Sectors(1000),
        metadata: Sectors(16),
    };
    let start = SnapshotUsage {
        allocated: Sectors(116),
        ..half
    };
    assert_eq!(half.merge_progress().fraction_done(&start), 0.5);
    assert_eq!(
        SnapshotUsage {
            total: Sectors(0),
            ..half
        }
        .used_percent(),
        None
    );
}

#[test]
fn snapshot_params_normalise_like_the_kernel() {
    // The kernel accepts lower case and prints upper case; an explicit zero feature
    // count and duplicate features collapse.
    let s: Snapshot = "1:2 1:3 po 8".parse().unwrap();
    assert_eq!(s.store, ExceptionStore::PersistentOverflow);
    assert_eq!(s.to_string(), "1:2 1:3 PO 8");
    assert_eq!(
        "1:2 1:3 n 8 0".parse::<Snapshot>().unwrap().to_string(),
        "1:2 1:3 N 8"
    );
    let dup: Snapshot = "1:2 1:3 P 8 2 DISCARD_ZEROES_COW discard_zeroes_cow"
        .parse()
        .unwrap();
    assert_eq!(dup.to_string(), "1:2 1:3 P 8 1 discard_zeroes_cow");
    // Chunk 0: taken from the persistent header.
    assert_eq!(
        "1:2 1:3 P 0".parse::<Snapshot>().unwrap().chunk_size,
        Sectors(0)
    );
}

#[test]
fn snapshot_params_errors() {
    let e = "1:2 1:3 Q 8".parse::<Snapshot>().unwrap_err();
    assert_eq!(e.offset, 8);
    assert!(matches!(
        e.reason,
        ParseErrorReason::Invalid {
            field: "store type",
            ..
        }
    ));
    let e = "1:2 1:3 P 12".parse::<Snapshot>().unwrap_err();
    assert_eq!(e.offset, 10);
    let e = "1:2 1:3 P 8 1 discard_passdown_origin"
        .parse::<Snapshot>()
        .unwrap_err();
    assert!(matches!(e.reason, ParseErrorReason::Inconsistent(_)), "{e}");
    let e = "1:2 1:3 P 8 3 a b c".parse::<Snapshot>().unwrap_err();
    assert_eq!(e.offset, 12);
    let e = "1:2 1:3 P 8 2 discard_zeroes_cow"
        .parse::<Snapshot>()
        .unwrap_err();
    assert_eq!(e.reason, ParseErrorReason::Missing("feature"));
    let e = "1:2 1:3 P 8 1 discard_zeroes_cow x"
        .parse::<Snapshot>()
        .unwrap_err();
    assert!(matches!(e.reason, ParseErrorReason::Trailing { .. }));
    let e = Target::parse("snapshot-merge", "1:2").unwrap_err();
    assert_eq!(e.target, "snapshot-merge");
    assert_eq!(e.kind, TextKind::Params);
    assert_eq!(e.reason, ParseErrorReason::Missing("COW device"));

    for bad in [
        "",
        "Merge",
        "Merge done",
        "12/",
        "/12 3",
        "1/2",
        "1/2 x",
        "1/2 3 4",
        "invalid",
    ] {
        assert!(SnapshotStatus::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn empty_status_targets() {
    for ty in ["linear", "zero", "error", "snapshot-origin"] {
        let s = TargetStatus::parse(ty, "").unwrap();
        assert_eq!(s.to_string(), "");
        assert_eq!(s.target_type(), ty);
        assert!(TargetStatus::parse(ty, " \t").is_ok());
        let e = TargetStatus::parse(ty, "1 2").unwrap_err();
        assert_eq!(e.offset, 0);
        assert_eq!(e.kind, TextKind::Status);
        assert!(matches!(e.reason, ParseErrorReason::Trailing { .. }));
    }
}

#[test]
fn linear_and_error_params() {
    let e = "8:16 x".parse::<Linear>().unwrap_err();
    assert_eq!(e.offset, 5);
    assert_eq!(
        e.to_string(),
        "linear params, byte 5: invalid offset \"x\", expected a decimal number"
    );
    let e = "8:16".parse::<Linear>().unwrap_err();
    assert_eq!(
        (e.offset, e.reason),
        (4, ParseErrorReason::Missing("offset"))
    );
    let e = "8:16 0 extra".parse::<Linear>().unwrap_err();
    assert_eq!(e.offset, 7);
    assert!(
        "8:16 +5".parse::<Linear>().is_err(),
        "signs are not kernel output"
    );
    assert!("8:16 18446744073709551616".parse::<Linear>().is_err());
    let l: Linear = "/dev/sdb 0".parse().unwrap();
    assert_eq!(l.device, DevRef::path("/dev/sdb").unwrap());

    assert_params_canonical("error", "");
    assert_params_canonical("error", "8:0 2048");
    assert!("8:0".parse::<ErrorTarget>().is_err());
    assert!("8:0 1 2".parse::<ErrorTarget>().is_err());
    assert_params_canonical("zero", "");
    assert!(Target::parse("zero", "1").is_err());
}

#[test]
fn striped_text() {
    assert_params_canonical("striped", "2 128 8:16 0 8:32 0");
    assert_status_canonical("striped", "2 8:16 8:32 1 AA");
    assert_status_canonical("striped", "3 8:16 8:32 8:48 1 ADA");
    let e = "0 128".parse::<Striped>().unwrap_err();
    assert_eq!(e.offset, 0);
    let e = "1 0 8:0 0".parse::<Striped>().unwrap_err();
    assert_eq!(e.offset, 2);
    let e = "2 8 8:0 0".parse::<Striped>().unwrap_err();
    assert_eq!(e.reason, ParseErrorReason::Missing("stripe device"));
    // A hostile count does not allocate: it just runs out of tokens.
    assert!("4294967295 8 8:0 0".parse::<Striped>().is_err());
    assert!("4294967295 8:0 1 A".parse::<StripedStatus>().is_err());
    let e = "2 8:0 8:16 1 AX".parse::<StripedStatus>().unwrap_err();
    assert_eq!(e.offset, 13);
    assert!("2 8:0 8:16 1 A".parse::<StripedStatus>().is_err());
    assert!("2 8:0 8:16 2 AA".parse::<StripedStatus>().is_err());
    assert!("2 8:0 /dev/sda 1 AA".parse::<StripedStatus>().is_err());
    assert!("0 1 ".parse::<StripedStatus>().is_err());
    let st: StripedStatus = "2 8:16 8:32 1 AA".parse().unwrap();
    assert!(st.all_alive());
}

#[test]
fn thin_pool_text() {
    // pool_status TABLE: every word followed by a space, the count always present.
    assert_params_canonical("thin-pool", "253:0 253:1 128 0 0 ");
    assert_params_canonical(
        "thin-pool",
        "253:0 253:1 1024 32768 3 skip_block_zeroing no_discard_passdown error_if_no_space ",
    );
    // What users write (the rst example uses paths and omits the features).
    let p: ThinPool = "/dev/sdc /dev/sdf 128 32768".parse().unwrap();
    assert_eq!(p.to_string(), "/dev/sdc /dev/sdf 128 32768 0 ");
    // Any order and case in, the kernel's order out.
    let p: ThinPool = "1:1 1:2 128 0 2 ERROR_IF_NO_SPACE read_only"
        .parse()
        .unwrap();
    assert_eq!(
        p.to_string(),
        "1:1 1:2 128 0 2 read_only error_if_no_space "
    );
    assert_eq!(p.features.count(), 2);
    for (bad, off) in [
        ("1:1 1:2 100 0", 8),
        ("1:1 1:2 0 0", 8),
        ("1:1 1:2 4194304 0", 8),
        ("1:1 1:2 192 0", 8),
        ("1:1 1:2 128 0 5 a b c d e", 14),
        ("1:1 1:2 128 0 1 bogus", 16),
        ("1:1 1:2 128 x", 12),
    ] {
        let e = bad.parse::<ThinPool>().unwrap_err();
        assert_eq!(e.offset, off, "{bad}: {e}");
    }
    assert!("1:1 1:2 128 0 1 ".parse::<ThinPool>().is_err());
}

#[test]
fn thin_pool_status_text() {
    let cur = "0 88/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024 ";
    assert_status_canonical("thin-pool", cur);
    assert_status_canonical(
        "thin-pool",
        "7 100/4096 16384/16384 1234 out_of_data_space ignore_discard error_if_no_space needs_check 1024 ",
    );
    assert_status_canonical("thin-pool", "Fail");
    assert_status_canonical("thin-pool", "Error");
    let ThinPoolStatus::Active(u) = cur.parse::<ThinPoolStatus>().unwrap() else {
        panic!()
    };
    assert_eq!(u.transaction_id, 0);
    assert_eq!(
        u.metadata_blocks,
        BlockUsage {
            used: 88,
            total: 4096
        }
    );
    assert_eq!(u.held_metadata_root, None);
    assert_eq!(u.discard, DiscardMode::Passdown);
    assert_eq!(u.no_space, NoSpacePolicy::Queue);
    assert_eq!(u.metadata_low_watermark, Some(1024));
    assert!(!u.needs_check());
    let nc: ThinPoolStatus = "1 1/2 3/4 5 ro no_discard_passdown queue_if_no_space needs_check 1 "
        .parse()
        .unwrap();
    assert!(nc.needs_check());
    assert!(!ThinPoolStatus::Fail.needs_check());
    // Older kernels stop earlier; the missing fields are None.
    let old: ThinPoolStatus = "1 1/2 3/4 - rw discard_passdown queue_if_no_space"
        .parse()
        .unwrap();
    let ThinPoolStatus::Active(o) = old else {
        panic!()
    };
    assert_eq!((o.needs_check, o.metadata_low_watermark), (None, None));
    let e = "1 1/2 3/4 - rw discard_passdown"
        .parse::<ThinPoolStatus>()
        .unwrap_err();
    assert_eq!(e.reason, ParseErrorReason::Missing("no-space policy"));
    let e = "1 1/2 3/4 - fast".parse::<ThinPoolStatus>().unwrap_err();
    assert_eq!(e.offset, 12);
    for bad in [
        "",
        "x",
        "1 1/2",
        "1 1-2 3/4 - rw",
        "1 1/2 3/4 x rw",
        "Fail now",
        "1 1/2 3/4 - rw discard_passdown queue_if_no_space maybe",
    ] {
        assert!(bad.parse::<ThinPoolStatus>().is_err(), "{bad:?}");
    }
}

#[test]
fn thin_text() {
    assert_params_canonical("thin", "253:2 0");
    assert_params_canonical("thin", "253:2 16777215 8:0");
    let t: Thin = "/dev/mapper/pool 0".parse().unwrap();
    assert_eq!(t.pool, DevRef::path("/dev/mapper/pool").unwrap());
    let e = "253:2 16777216".parse::<Thin>().unwrap_err();
    assert_eq!(e.offset, 6);
    assert!("253:2".parse::<Thin>().is_err());
    assert!("253:2 1 8:0 8:1".parse::<Thin>().is_err());
    for s in ["0 -", "2048 4095", "Fail", "Error", "-"] {
        assert_status_canonical("thin", s);
    }
    assert_eq!(
        "0 -".parse::<ThinStatus>().unwrap(),
        ThinStatus::Active {
            mapped: Sectors(0),
            highest_mapped: None
        }
    );
    for bad in ["", "1", "1 2 3", "x 1", "1 y", "- 1"] {
        assert!(bad.parse::<ThinStatus>().is_err(), "{bad:?}");
    }
    // A thin device of a failed pool prints `Fail` as its table: kept as opaque text.
    assert!(Target::parse("thin", "Fail").is_err());
    let t = Target::parse_or_opaque("thin", "Fail").unwrap();
    assert_eq!((t.target_type(), t.params().as_str()), ("thin", "Fail"));
}

#[test]
fn opaque_and_names() {
    let t = Target::parse("flakey", "8:0 0 5 5 1 drop_writes").unwrap();
    assert!(matches!(t, Target::Opaque(_)));
    assert_eq!(t.params(), "8:0 0 5 5 1 drop_writes");
    assert_eq!(t.devices().len(), 0);
    for bad in ["", "a b", "a\tb", "a\0b"] {
        let e = Target::parse(bad, "").unwrap_err();
        assert!(
            matches!(e.reason, ParseErrorReason::TargetName(_)),
            "{bad:?}"
        );
        assert!(TargetStatus::parse(bad, "").is_err());
        assert!(Target::parse_or_opaque(bad, "").is_err());
    }
    let s = TargetStatus::parse(
        "cache",
        "8 27/1024 128 0/8192 0 0 0 0 0 0 0 1 writethrough 2 migration_threshold 2048 smq 0 rw - ",
    )
    .unwrap();
    assert_eq!(
        s.to_string(),
        "8 27/1024 128 0/8192 0 0 0 0 0 0 0 1 writethrough 2 migration_threshold 2048 smq 0 rw - "
    );
}

#[test]
fn devices_and_resolution() {
    let t = Target::parse("thin", "253:2 1 /dev/sda").unwrap();
    let devs: Vec<String> = t.devices().iter().map(|d| d.to_string()).collect();
    assert_eq!(devs, ["253:2", "/dev/sda"]);
    let s = Target::parse("snapshot", "1:2 1:3 P 8").unwrap();
    assert_eq!(
        s.resolve_devices().unwrap(),
        s,
        "numbers resolve to themselves"
    );

    let null = Target::parse("linear", "/dev/null 0").unwrap();
    assert!(matches!(
        null.resolve_devices(),
        Err(ResolveError::NotBlockDevice { .. })
    ));
    let missing = DevRef::path("/nonexistent/devmapper-test").unwrap();
    assert!(matches!(missing.resolve(), Err(ResolveError::Io { .. })));
    assert_eq!(DevRef::num(8, 1).resolve().unwrap(), DevNum::new(8, 1));
}

#[test]
fn resolve_a_real_block_device_if_any() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // Whatever block device node exists here; skip quietly on hosts without one.
    let Some((path, rdev)) = std::fs::read_dir("/dev").ok().and_then(|rd| {
        rd.flatten().find_map(|e| {
            let m = e.metadata().ok()?;
            m.file_type()
                .is_block_device()
                .then(|| (e.path(), m.rdev()))
        })
    }) else {
        eprintln!("no block device under /dev: skipped");
        return;
    };
    let d = DevRef::path(&path).unwrap();
    let n = d.resolve().unwrap();
    assert_eq!(n.to_dev_t(), rdev);
    assert_eq!(d.resolved().unwrap(), DevRef::Num(n));
}

#[test]
fn dev_paths() {
    use std::os::unix::ffi::OsStrExt;
    for bad in ["", "a b", "a\\b", "8:0", "x\ny"] {
        assert!(DevRef::path(bad).is_err(), "{bad:?}");
    }
    let non_utf8 = std::ffi::OsStr::from_bytes(b"/dev/\xff");
    assert_eq!(
        DevPath::new(non_utf8).unwrap_err().reason,
        "not valid UTF-8"
    );
    let p = DevPath::new("/dev/mapper/vg-lv").unwrap();
    assert_eq!(p.as_str(), "/dev/mapper/vg-lv");
    assert_eq!(p.as_path(), std::path::Path::new("/dev/mapper/vg-lv"));
    assert_eq!(
        "8:0".parse::<DevRef>().unwrap().as_num(),
        Some(DevNum::new(8, 0))
    );
    assert_eq!("/dev/x".parse::<DevRef>().unwrap().as_num(), None);
}

#[test]
fn same_device_twice_is_refused_like_the_kernel() {
    let e = "8:0 8:0 128 0".parse::<ThinPool>().unwrap_err();
    assert_eq!(
        (e.offset, e.reason.clone()),
        (
            4,
            ParseErrorReason::Inconsistent("metadata and data must be different devices")
        )
    );
    let e = "253:2 1 253:2".parse::<Thin>().unwrap_err();
    assert_eq!(e.offset, 8);
    let e = "8:0 8:0 P 8".parse::<Snapshot>().unwrap_err();
    assert_eq!(e.offset, 4);
    assert!(matches!(e.reason, ParseErrorReason::Inconsistent(_)));
}
