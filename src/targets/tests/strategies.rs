//! proptest strategies for typed targets and for canonical kernel text.
//!
//! The `*_text` strategies build strings the way the kernel's `*_status` functions
//! print them, independently of this crate's `Display` impls.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::DevNum;
use crate::targets::*;
use crate::units::Sectors;

pub(crate) fn dev_num() -> impl Strategy<Value = DevNum> {
    (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| DevNum::new(a, b))
}

pub(crate) fn dev_num_text() -> impl Strategy<Value = String> {
    (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| format!("{a}:{b}"))
}

pub(crate) fn dev_ref() -> impl Strategy<Value = DevRef> {
    prop_oneof![
        3 => dev_num().prop_map(DevRef::Num),
        1 => "/dev/[a-z0-9_./-]{1,24}".prop_filter_map("valid path", |p| DevRef::path(p).ok()),
    ]
}

fn sectors() -> impl Strategy<Value = Sectors> {
    any::<u64>().prop_map(Sectors)
}

pub(crate) fn linear() -> impl Strategy<Value = Linear> {
    (dev_ref(), sectors()).prop_map(|(device, offset)| Linear { device, offset })
}

pub(crate) fn striped() -> impl Strategy<Value = Striped> {
    (1u32.., vec((dev_ref(), sectors()), 1..8)).prop_map(|(chunk, legs)| Striped {
        chunk_size: Sectors(u64::from(chunk)),
        stripes: legs
            .into_iter()
            .map(|(device, offset)| Stripe { device, offset })
            .collect(),
    })
}

pub(crate) fn error_target() -> impl Strategy<Value = ErrorTarget> {
    proptest::option::of((dev_ref(), sectors())).prop_map(|backing| ErrorTarget { backing })
}

fn store() -> impl Strategy<Value = ExceptionStore> {
    prop_oneof![
        Just(ExceptionStore::Persistent),
        Just(ExceptionStore::PersistentOverflow),
        Just(ExceptionStore::Transient),
    ]
}

fn snap_chunk() -> impl Strategy<Value = Sectors> {
    prop_oneof![Just(0u64), (0u32..22).prop_map(|s| 1u64 << s)].prop_map(Sectors)
}

fn snap_features() -> impl Strategy<Value = SnapshotFeatures> {
    (any::<bool>(), any::<bool>()).prop_map(|(z, p)| SnapshotFeatures {
        discard_zeroes_cow: z || p,
        discard_passdown_origin: p,
    })
}

pub(crate) fn snapshot() -> impl Strategy<Value = Snapshot> {
    (dev_ref(), dev_ref(), store(), snap_chunk(), snap_features())
        .prop_filter("COW differs from origin", |(o, c, ..)| o != c)
        .prop_map(|(origin, cow, store, chunk_size, features)| Snapshot {
            origin,
            cow,
            store,
            chunk_size,
            features,
        })
}

pub(crate) fn thin_pool() -> impl Strategy<Value = ThinPool> {
    (
        dev_ref(),
        dev_ref(),
        1u64..=16384,
        any::<u64>(),
        proptest::array::uniform5(any::<bool>()),
    )
        .prop_filter("at most 4 features", |(.., f)| {
            f.iter().filter(|b| **b).count() <= 4
        })
        // The parser refuses one device as both metadata and data, as the kernel does.
        .prop_filter("metadata differs from data", |(m, d, ..)| m != d)
        .prop_map(|(metadata, data, k, low_water_mark, f)| ThinPool {
            metadata,
            data,
            block_size: Sectors(k * 128),
            low_water_mark,
            features: ThinPoolFeatures {
                skip_block_zeroing: f[0],
                ignore_discard: f[1],
                no_discard_passdown: f[2],
                read_only: f[3],
                error_if_no_space: f[4],
            },
        })
}

pub(crate) fn thin() -> impl Strategy<Value = Thin> {
    (
        dev_ref(),
        0..=THIN_MAX_DEV_ID,
        proptest::option::of(dev_ref()),
    )
        .prop_map(|(pool, dev_id, external_origin)| Thin {
            pool,
            dev_id,
            external_origin,
        })
}

pub(crate) fn opaque_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,14}".prop_filter("not a typed target", |n| {
        crate::targets::TargetKind::from_name(n).is_none()
    })
}

/// Opaque params that survive the table text form: no line break, no leading space.
pub(crate) fn opaque_params() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[!-~][ -~]{0,60}"]
}

pub(crate) fn opaque() -> impl Strategy<Value = Opaque> {
    (opaque_name(), opaque_params()).prop_map(|(n, p)| Opaque::new(n, p).unwrap())
}

pub(crate) fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        linear().prop_map(Target::Linear),
        striped().prop_map(Target::Striped),
        Just(Target::Zero(Zero)),
        error_target().prop_map(Target::Error),
        snapshot().prop_map(Target::Snapshot),
        dev_ref().prop_map(|d| Target::SnapshotOrigin(SnapshotOrigin::new(d))),
        snapshot().prop_map(Target::SnapshotMerge),
        thin_pool().prop_map(Target::ThinPool),
        thin().prop_map(Target::Thin),
        opaque().prop_map(Target::Opaque),
    ]
}

fn health() -> impl Strategy<Value = StripeHealth> {
    prop_oneof![Just(StripeHealth::Alive), Just(StripeHealth::Dead)]
}

pub(crate) fn snapshot_status() -> impl Strategy<Value = SnapshotStatus> {
    prop_oneof![
        4 => (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, t, m)| {
            SnapshotStatus::Active(SnapshotUsage {
                allocated: Sectors(a),
                total: Sectors(t),
                metadata: Sectors(m),
            })
        }),
        1 => Just(SnapshotStatus::Invalid),
        1 => Just(SnapshotStatus::MergeFailed),
        1 => Just(SnapshotStatus::Overflow),
        1 => Just(SnapshotStatus::Unknown),
    ]
}

fn block_usage() -> impl Strategy<Value = BlockUsage> {
    (any::<u64>(), any::<u64>()).prop_map(|(used, total)| BlockUsage { used, total })
}

pub(crate) fn thin_pool_status() -> impl Strategy<Value = ThinPoolStatus> {
    let mode = prop_oneof![
        Just(PoolMode::ReadWrite),
        Just(PoolMode::ReadOnly),
        Just(PoolMode::OutOfDataSpace)
    ];
    let discard = prop_oneof![
        Just(DiscardMode::Passdown),
        Just(DiscardMode::NoPassdown),
        Just(DiscardMode::Ignore)
    ];
    let no_space = prop_oneof![Just(NoSpacePolicy::Error), Just(NoSpacePolicy::Queue)];
    // The watermark only exists after needs_check.
    let tail = prop_oneof![
        Just((None, None)),
        any::<bool>().prop_map(|b| (Some(b), None)),
        (any::<bool>(), any::<u64>()).prop_map(|(b, w)| (Some(b), Some(w))),
    ];
    let active = (
        any::<u64>(),
        block_usage(),
        block_usage(),
        proptest::option::of(any::<u64>()),
        mode,
        discard,
        no_space,
        tail,
    )
        .prop_map(
            |(
                transaction_id,
                metadata_blocks,
                data_blocks,
                held,
                mode,
                discard,
                no_space,
                tail,
            )| {
                ThinPoolStatus::Active(ThinPoolUsage {
                    transaction_id,
                    metadata_blocks,
                    data_blocks,
                    held_metadata_root: held,
                    mode,
                    discard,
                    no_space,
                    needs_check: tail.0,
                    metadata_low_watermark: tail.1,
                })
            },
        );
    prop_oneof![
        6 => active,
        1 => Just(ThinPoolStatus::Fail),
        1 => Just(ThinPoolStatus::Error),
    ]
}

pub(crate) fn thin_status() -> impl Strategy<Value = ThinStatus> {
    prop_oneof![
        4 => (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(m, h)| {
            ThinStatus::Active {
                mapped: Sectors(m),
                highest_mapped: h.map(Sectors),
            }
        }),
        1 => Just(ThinStatus::Fail),
        1 => Just(ThinStatus::Error),
        1 => Just(ThinStatus::Unavailable),
    ]
}

pub(crate) fn target_status() -> impl Strategy<Value = TargetStatus> {
    prop_oneof![
        Just(TargetStatus::Linear),
        vec((dev_num(), health()), 1..8).prop_map(|v| {
            TargetStatus::Striped(StripedStatus {
                stripes: v
                    .into_iter()
                    .map(|(device, health)| StripeState { device, health })
                    .collect(),
            })
        }),
        Just(TargetStatus::Zero),
        Just(TargetStatus::Error),
        snapshot_status().prop_map(TargetStatus::Snapshot),
        Just(TargetStatus::SnapshotOrigin),
        snapshot_status().prop_map(TargetStatus::SnapshotMerge),
        thin_pool_status().prop_map(TargetStatus::ThinPool),
        thin_status().prop_map(TargetStatus::Thin),
        (opaque_name(), "[ -~]{0,60}")
            .prop_map(|(n, s)| TargetStatus::Opaque(OpaqueStatus::new(n, s).unwrap())),
    ]
}

// ---------------------------------------------------------------------------------
// Canonical kernel text, built the way the kernel's C code prints it.

/// `stripe_status` TABLE: `"%d %llu"` then `" %s %llu"` per stripe.
pub(crate) fn striped_params_text() -> impl Strategy<Value = String> {
    (1u32.., vec((dev_num_text(), any::<u64>()), 1..8)).prop_map(|(chunk, legs)| {
        let mut s = format!("{} {}", legs.len(), chunk);
        for (d, o) in legs {
            s += &format!(" {d} {o}");
        }
        s
    })
}

/// `stripe_status` INFO: `"%d "`, `"%s "` per stripe, `"1 "`, one letter per stripe.
pub(crate) fn striped_status_text() -> impl Strategy<Value = String> {
    vec((dev_num_text(), prop_oneof![Just('A'), Just('D')]), 1..8).prop_map(|v| {
        let mut s = format!("{} ", v.len());
        for (d, _) in &v {
            s += &format!("{d} ");
        }
        s += "1 ";
        s.extend(v.iter().map(|(_, c)| *c));
        s
    })
}

/// `snapshot_status` TABLE: `"%s %s"`, store `" P %llu"`/`" PO %llu"`/`" N %llu"`,
/// then `" %u"` and the feature words when there are any.
pub(crate) fn snapshot_params_text() -> impl Strategy<Value = String> {
    (
        dev_num_text(),
        dev_num_text(),
        prop_oneof![Just("P"), Just("PO"), Just("N")],
        snap_chunk(),
        0u8..3,
    )
        .prop_filter("COW differs from origin", |(o, c, ..)| o != c)
        .prop_map(|(o, c, st, chunk, nf)| {
            let mut s = format!("{o} {c} {st} {chunk}");
            match nf {
                1 => s += " 1 discard_zeroes_cow",
                2 => s += " 2 discard_zeroes_cow discard_passdown_origin",
                _ => {}
            }
            s
        })
}

/// `pool_status` TABLE: `"%s %s %lu %llu "` then `emit_flags`: `"%u "` and each set
/// feature followed by a space, in a fixed order.
pub(crate) fn thin_pool_params_text() -> impl Strategy<Value = String> {
    (
        dev_num_text(),
        dev_num_text(),
        1u64..=16384,
        any::<u64>(),
        proptest::sample::subsequence(
            vec![
                "skip_block_zeroing",
                "ignore_discard",
                "no_discard_passdown",
                "read_only",
                "error_if_no_space",
            ],
            0..=4,
        ),
    )
        .prop_filter("metadata differs from data", |(m, d, ..)| m != d)
        .prop_map(|(m, d, k, lwm, feats)| {
            let mut s = format!("{m} {d} {} {lwm} {} ", k * 128, feats.len());
            for f in feats {
                s += f;
                s += " ";
            }
            s
        })
}

/// `thin_status` TABLE: `"%s %lu"` and `" %s"` for an external origin.
pub(crate) fn thin_params_text() -> impl Strategy<Value = String> {
    (
        dev_num_text(),
        0..=THIN_MAX_DEV_ID,
        proptest::option::of(dev_num_text()),
    )
        .prop_filter("origin differs from pool", |(p, _, o)| {
            o.as_ref() != Some(p)
        })
        .prop_map(|(p, id, o)| match o {
            Some(o) => format!("{p} {id} {o}"),
            None => format!("{p} {id}"),
        })
}

/// `pool_status` INFO as a current kernel prints it (every word followed by a space).
pub(crate) fn thin_pool_status_text() -> impl Strategy<Value = String> {
    let active = (
        any::<u64>(),
        (any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>()),
        proptest::option::of(1u64..),
        prop_oneof![Just("rw"), Just("ro"), Just("out_of_data_space")],
        prop_oneof![
            Just("discard_passdown"),
            Just("no_discard_passdown"),
            Just("ignore_discard")
        ],
        prop_oneof![Just("error_if_no_space"), Just("queue_if_no_space")],
        prop_oneof![Just("needs_check"), Just("-")],
        any::<u64>(),
    )
        .prop_map(|(tid, (mu, mt), (du, dt), held, mode, disc, ns, nc, wm)| {
            let held = held.map_or("-".to_owned(), |h| h.to_string());
            format!("{tid} {mu}/{mt} {du}/{dt} {held} {mode} {disc} {ns} {nc} {wm} ")
        });
    prop_oneof![6 => active, 1 => Just("Fail".to_owned()), 1 => Just("Error".to_owned())]
}

/// `thin_status` INFO: `"%llu "` then `"%llu"` or `"-"`; or `Fail`, `Error`, `-`.
pub(crate) fn thin_status_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(m, h)| {
            format!("{m} {}", h.map_or("-".to_owned(), |h| h.to_string()))
        }),
        1 => Just("Fail".to_owned()),
        1 => Just("Error".to_owned()),
        1 => Just("-".to_owned()),
    ]
}

/// `snapshot_status` INFO.
pub(crate) fn snapshot_status_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(a, t, m)| format!("{a}/{t} {m}")),
        1 => Just("Invalid".to_owned()),
        1 => Just("Merge failed".to_owned()),
        1 => Just("Overflow".to_owned()),
        1 => Just("Unknown".to_owned()),
    ]
}
