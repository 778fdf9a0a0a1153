//! Allocation: lvm2's placement choices on hand-made VGs, the refusals with lvm2's
//! messages, the layout check, and property tests over random create/remove sequences.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::lvm::config;
use crate::lvm::id::LvmId;
use crate::lvm::model::{Area, LogicalVolume, Segment, SegmentKind, VolumeGroup};
use crate::lvm::write::alloc::{self, AllocError, AllocRequest};

/// A VG with PVs of these sizes (`pv0`, `pv1`, ...); `false` = not ALLOCATABLE.
pub(crate) fn vg_with_pvs(pvs: &[(u64, bool)]) -> VolumeGroup {
    let mut t = String::from(
        "vg0 {\nid = \"kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE\"\nseqno = 1\n\
         status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nextent_size = 8192\n\
         max_lv = 0\nmax_pv = 0\nphysical_volumes {\n",
    );
    for (i, (count, allocatable)) in pvs.iter().enumerate() {
        let id = LvmId::from_random_bytes([i as u8; 32]);
        let st = if *allocatable { "\"ALLOCATABLE\"" } else { "" };
        t.push_str(&format!(
            "pv{i} {{\nid = \"{id}\"\nstatus = [{st}]\npe_start = 2048\npe_count = {count}\n}}\n"
        ));
    }
    t.push_str("}\n}\ncontents = \"Text Format Volume Group\"\nversion = 1\n");
    VolumeGroup::from_config(&config::parse(t.as_bytes()).unwrap()).unwrap()
}

fn lv(name: &str, n: u8, segments: Vec<Segment>) -> LogicalVolume {
    // Distinct ids from the index (a duplicate-id test passes the same n twice).
    let mut raw = [7u8; 32];
    raw[0] = n % 62;
    raw[1] = n / 62;
    LogicalVolume {
        name: name.into(),
        id: LvmId::from_random_bytes(raw),
        status: ["READ", "WRITE", "VISIBLE"].map(String::from).into(),
        flags: BTreeSet::new(),
        tags: vec![],
        read_ahead: None,
        major: None,
        minor: None,
        creation_time: None,
        creation_host: None,
        lock_args: None,
        allocation_policy: crate::lvm::model::AllocPolicy::Inherit,
        profile: None,
        segments,
    }
}

fn linear(start: u64, pv: &str, pe: u64, len: u64) -> Segment {
    Segment {
        start_extent: start,
        extent_count: len,
        type_name: "striped".into(),
        kind: SegmentKind::Striped {
            stripe_size: 0,
            areas: vec![Area::Pv { pv: pv.into(), pe }],
        },
    }
}

/// `(pv, pe, len)` of each stripe of each segment.
fn placement(segs: &[Segment]) -> Vec<Vec<(String, u64, u64)>> {
    segs.iter()
        .map(|s| match &s.kind {
            SegmentKind::Striped { areas, .. } => areas
                .iter()
                .map(|a| match a {
                    Area::Pv { pv, pe } => (pv.clone(), *pe, s.extent_count / areas.len() as u64),
                    Area::Lv { .. } => panic!("LV area"),
                })
                .collect(),
            _ => panic!("not striped"),
        })
        .collect()
}

fn p(pv: &str, pe: u64, len: u64) -> (String, u64, u64) {
    (pv.to_string(), pe, len)
}

#[test]
fn linear_on_empty_vg_starts_at_pe0_of_first_pv() {
    let vg = vg_with_pvs(&[(100, true), (100, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::linear("a", 10)).unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv0", 0, 10)]]);
    assert_eq!(segs[0].type_name, "striped");
    assert_eq!(segs[0].start_extent, 0);
}

#[test]
fn linear_prefers_the_first_pv_that_fits_whole() {
    // pv0 has 5 free, pv1 100: the request of 10 fits only on pv1, so it goes there
    // whole rather than split.
    let vg = vg_with_pvs(&[(5, true), (100, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::linear("a", 10)).unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv1", 0, 10)]]);
}

#[test]
fn hole_best_fit_when_the_largest_stays_first() {
    // Free: [10,30) (20) and [35,100) (65); 5 extents go to the smaller range that fits.
    let mut vg = vg_with_pvs(&[(100, true)]);
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 0, 10)]));
    vg.lvs.push(lv("c", 2, vec![linear(0, "pv0", 30, 5)]));
    let segs = alloc::allocate(&vg, &AllocRequest::linear("n", 5)).unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv0", 10, 5)]]);
}

#[test]
fn split_takes_largest_range_first_then_clings_to_the_same_pv() {
    // Free on pv0: [0,10) and [20,50) (30); pv1: [0,8). 35 extents: 30 from pv0's
    // largest range, then the rest from pv0's other range (cling), not from pv1.
    let mut vg = vg_with_pvs(&[(50, true), (8, true)]);
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 10, 10)]));
    let segs = alloc::allocate(&vg, &AllocRequest::linear("n", 35)).unwrap();
    assert_eq!(
        placement(&segs),
        vec![vec![p("pv0", 20, 30)], vec![p("pv0", 0, 5)]]
    );
    assert_eq!(segs[1].start_extent, 30);
}

#[test]
fn striped_puts_stripes_on_distinct_pvs() {
    let vg = vg_with_pvs(&[(100, true), (100, true), (100, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::striped("s", 30, 3, 128)).unwrap();
    assert_eq!(
        placement(&segs),
        vec![vec![p("pv0", 0, 10), p("pv1", 0, 10), p("pv2", 0, 10)]]
    );
    match &segs[0].kind {
        SegmentKind::Striped { stripe_size, .. } => assert_eq!(*stripe_size, 128),
        _ => unreachable!(),
    }
}

#[test]
fn striped_rounds_up_to_the_stripe_count() {
    assert_eq!(alloc::stripe_rounded(10, 3), 12);
    assert_eq!(alloc::stripe_rounded(12, 3), 12);
    let vg = vg_with_pvs(&[(100, true), (100, true), (100, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::striped("s", 10, 3, 128)).unwrap();
    assert_eq!(segs.iter().map(|s| s.extent_count).sum::<u64>(), 12);
}

#[test]
fn striped_uses_the_largest_pvs() {
    let vg = vg_with_pvs(&[(10, true), (100, true), (50, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::striped("s", 40, 2, 128)).unwrap();
    assert_eq!(
        placement(&segs),
        vec![vec![p("pv1", 0, 20), p("pv2", 0, 20)]]
    );
}

#[test]
fn stripe_size_above_extent_size_is_reduced() {
    let vg = vg_with_pvs(&[(100, true), (100, true)]);
    let segs = alloc::allocate(&vg, &AllocRequest::striped("s", 4, 2, 16384)).unwrap();
    match &segs[0].kind {
        SegmentKind::Striped { stripe_size, .. } => assert_eq!(*stripe_size, 8192),
        _ => unreachable!(),
    }
}

#[test]
fn refusals_have_lvm2s_messages() {
    let vg = vg_with_pvs(&[(10, true), (10, true)]);
    let e = alloc::allocate(&vg, &AllocRequest::linear("big", 21)).unwrap_err();
    assert_eq!(
        e,
        AllocError::VgFull {
            vg: "vg0".into(),
            free: 20,
            required: 21
        }
    );
    let e = alloc::allocate(&vg, &AllocRequest::striped("s", 4, 3, 128)).unwrap_err();
    assert_eq!(e, AllocError::TooManyStripes { stripes: 3, pvs: 2 });
    assert_eq!(
        e.to_string(),
        "Number of stripes (3) must not exceed number of physical volumes (2)"
    );
    let e = alloc::allocate(&vg, &AllocRequest::linear("z", 0)).unwrap_err();
    assert_eq!(e, AllocError::ZeroExtents);
    let e = alloc::allocate(&vg, &AllocRequest::striped("s", 4, 2, 100)).unwrap_err();
    assert_eq!(e, AllocError::StripeSize { stripe_size: 100 });
    let e = alloc::allocate(&vg, &AllocRequest::striped("s", 4, 0, 128)).unwrap_err();
    assert_eq!(e, AllocError::StripeCount { stripes: 0 });
    let e = alloc::allocate(
        &vg,
        &AllocRequest::linear("x", 2).on_pvs(vec!["pv9".into()]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        AllocError::PvNotInVg {
            pv: "pv9".into(),
            vg: "vg0".into()
        }
    );
    // Enough in the VG, not on the allowed PV.
    let e = alloc::allocate(
        &vg,
        &AllocRequest::linear("x", 11).on_pvs(vec!["pv1".into()]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        AllocError::InsufficientFree {
            needed: 11,
            available: 10
        }
    );
}

#[test]
fn striping_needs_free_space_on_enough_pvs() {
    // 30 free extents, but only pv0 has any left: two stripes cannot be placed.
    let mut vg = vg_with_pvs(&[(40, true), (10, true)]);
    vg.lvs.push(lv("full", 0, vec![linear(0, "pv1", 0, 10)]));
    vg.lvs.push(lv("half", 1, vec![linear(0, "pv0", 0, 10)]));
    let e = alloc::allocate(&vg, &AllocRequest::striped("s", 4, 2, 128)).unwrap_err();
    assert_eq!(
        e,
        AllocError::Insufficient {
            contiguous: false,
            lv: "s".into(),
            more: 4
        }
    );
    assert_eq!(
        e.to_string(),
        "Insufficient suitable allocatable extents for logical volume s: 4 more required"
    );
}

#[test]
fn a_pv_list_without_free_allocatable_pvs_is_refused_as_lvm2_does() {
    let mut vg = vg_with_pvs(&[(10, true), (10, false), (10, true)]);
    vg.lvs.push(lv("full", 0, vec![linear(0, "pv0", 0, 10)]));
    let e = alloc::allocate(
        &vg,
        &AllocRequest::linear("x", 1).on_pvs(vec!["pv0".into(), "pv1".into()]),
    )
    .unwrap_err();
    assert_eq!(e, AllocError::NoSpecifiedPvSpace);
    assert_eq!(e.to_string(), "No specified PVs have space available.");
    // The full and the non-allocatable PV are dropped from the list, so two stripes
    // on it are too many.
    let e = alloc::allocate(
        &vg,
        &AllocRequest::striped("s", 2, 2, 128).on_pvs(vec![
            "pv0".into(),
            "pv1".into(),
            "pv2".into(),
        ]),
    )
    .unwrap_err();
    assert_eq!(e, AllocError::TooManyStripes { stripes: 2, pvs: 1 });
}

#[test]
fn vg_policy_contiguous_never_splits_and_anywhere_is_refused() {
    let mut vg = vg_with_pvs(&[(50, true)]);
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 10, 10)]));
    vg.allocation_policy = crate::lvm::model::AllocPolicy::Contiguous;
    let segs = alloc::allocate(&vg, &AllocRequest::linear("n", 30)).unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv0", 20, 30)]]);
    let e = alloc::allocate(&vg, &AllocRequest::linear("n", 35)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Insufficient suitable contiguous allocatable extents for logical volume n: 35 more required"
    );
    vg.allocation_policy = crate::lvm::model::AllocPolicy::Normal;
    assert_eq!(
        alloc::allocate(&vg, &AllocRequest::linear("n", 35))
            .unwrap()
            .len(),
        2
    );
    vg.allocation_policy = crate::lvm::model::AllocPolicy::Anywhere;
    assert!(matches!(
        alloc::allocate(&vg, &AllocRequest::linear("n", 1)),
        Err(AllocError::UnsupportedPolicy { .. })
    ));
}

#[test]
fn non_allocatable_pvs_count_as_free_but_get_nothing() {
    let vg = vg_with_pvs(&[(10, false), (10, true)]);
    assert_eq!(alloc::free_extents(&vg).unwrap(), 20);
    let segs = alloc::allocate(&vg, &AllocRequest::linear("a", 10)).unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv1", 0, 10)]]);
    let e = alloc::allocate(&vg, &AllocRequest::linear("b", 11)).unwrap_err();
    assert_eq!(
        e,
        AllocError::InsufficientFree {
            needed: 11,
            available: 10
        }
    );
}

#[test]
fn allowed_pv_list_is_respected() {
    let vg = vg_with_pvs(&[(100, true), (100, true)]);
    let segs = alloc::allocate(
        &vg,
        &AllocRequest::linear("a", 10).on_pvs(vec!["pv1".into()]),
    )
    .unwrap();
    assert_eq!(placement(&segs), vec![vec![p("pv1", 0, 10)]]);
}

#[test]
fn check_layout_finds_each_broken_invariant() {
    let base = vg_with_pvs(&[(100, true)]);
    assert_eq!(alloc::check_layout(&base), Ok(()));

    let mut vg = base.clone();
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 95, 10)]));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::BeyondPv {
            start: 95,
            end: 105,
            pe_count: 100,
            ..
        })
    ));

    let mut vg = base.clone();
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 0, 10)]));
    vg.lvs.push(lv("b", 1, vec![linear(0, "pv0", 9, 10)]));
    assert_eq!(
        alloc::check_layout(&vg),
        Err(AllocError::Overlap {
            pv: "pv0".into(),
            pe: 9,
            first: "a".into(),
            second: "b".into()
        })
    );

    let mut vg = base.clone();
    vg.lvs.push(lv(
        "a",
        0,
        vec![linear(0, "pv0", 0, 10), linear(11, "pv0", 20, 5)],
    ));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::SegmentStart {
            segment: 1,
            expected: 10,
            start: 11,
            ..
        })
    ));

    let mut vg = base.clone();
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv7", 0, 10)]));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::UnknownPv { ref pv, .. }) if pv == "pv7"
    ));

    let mut vg = base.clone();
    let mut seg = linear(0, "pv0", 0, 9);
    if let SegmentKind::Striped { areas, stripe_size } = &mut seg.kind {
        areas.push(Area::Pv {
            pv: "pv0".into(),
            pe: 50,
        });
        *stripe_size = 128;
    }
    vg.lvs.push(lv("a", 0, vec![seg]));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::StripeMismatch {
            extent_count: 9,
            stripes: 2,
            ..
        })
    ));

    let mut vg = base.clone();
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 0, 1)]));
    vg.lvs.push(lv("a", 1, vec![linear(0, "pv0", 1, 1)]));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::DuplicateLvName { .. })
    ));

    let mut vg = base.clone();
    vg.lvs.push(lv("a", 0, vec![linear(0, "pv0", 0, 1)]));
    vg.lvs.push(lv("b", 0, vec![linear(0, "pv0", 1, 1)]));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::DuplicateLvId { .. })
    ));

    let mut vg = base.clone();
    vg.lvs.push(lv(
        "s",
        0,
        vec![Segment {
            start_extent: 0,
            extent_count: 1,
            type_name: "snapshot".into(),
            kind: SegmentKind::Snapshot {
                chunk_size: 8,
                origin: "gone".into(),
                cow: "gone2".into(),
                merging: false,
            },
        }],
    ));
    assert!(matches!(
        alloc::check_layout(&vg),
        Err(AllocError::UnknownLv { ref target, .. }) if target == "gone"
    ));

    let mut vg = base;
    vg.lvs.push(lv("bad name", 0, vec![linear(0, "pv0", 0, 1)]));
    assert!(matches!(alloc::check_layout(&vg), Err(AllocError::Name(_))));
}

#[test]
fn a_pvmove_style_segment_on_a_pv_blocks_allocation() {
    let mut vg = vg_with_pvs(&[(100, true)]);
    vg.lvs.push(lv(
        "pvmove0",
        0,
        vec![Segment {
            start_extent: 0,
            extent_count: 10,
            type_name: "mirror".into(),
            kind: SegmentKind::Other {
                segtype: "mirror".into(),
                lv_refs: vec!["pv0".into()],
            },
        }],
    ));
    assert!(matches!(
        alloc::allocate(&vg, &AllocRequest::linear("a", 1)),
        Err(AllocError::UntrackedPvUse { .. })
    ));
}

// ---- property tests ----------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Create { extents: u64, stripes: u32 },
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..40, prop_oneof![3 => Just(1u32), 1 => 2u32..4])
            .prop_map(|(extents, stripes)| Op::Create { extents, stripes }),
        2 => (0usize..100).prop_map(Op::Remove),
    ]
}

fn used_extents(vg: &VolumeGroup) -> u64 {
    vg.lvs.iter().map(|l| l.le_count()).sum()
}

fn allocatable_free(vg: &VolumeGroup) -> u64 {
    let free = alloc::free_space(vg).unwrap();
    vg.pvs
        .iter()
        .filter(|p| p.status.contains("ALLOCATABLE"))
        .map(|p| free[&p.handle].iter().map(|r| r.1).sum::<u64>())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_create_remove_keeps_the_layout_valid(
        pvs in prop::collection::vec((1u64..80, prop::bool::weighted(0.85)), 1..5),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut vg = vg_with_pvs(&pvs);
        let total: u64 = pvs.iter().map(|p| p.0).sum();
        let mut n = 0u8;
        for op in ops {
            match op {
                Op::Create { extents, stripes } => {
                    let before = allocatable_free(&vg);
                    let req = AllocRequest::striped(format!("lv{n}"), extents, stripes, 128);
                    match alloc::allocate(&vg, &req) {
                        Ok(segs) => {
                            let got: u64 = segs.iter().map(|s| s.extent_count).sum();
                            prop_assert_eq!(got, alloc::stripe_rounded(extents, stripes));
                            vg.lvs.push(lv(&format!("lv{n}"), n, segs));
                            n = n.wrapping_add(1);
                        }
                        Err(e) => {
                            // A linear request refused only when it does not fit by count.
                            if stripes == 1 {
                                prop_assert!(extents > before, "{e} with {before} free");
                            }
                            prop_assert!(matches!(
                                e,
                                AllocError::VgFull { .. }
                                    | AllocError::InsufficientFree { .. }
                                    | AllocError::Insufficient { .. }
                                    | AllocError::TooManyStripes { .. }
                            ), "{e}");
                        }
                    }
                }
                Op::Remove(i) => {
                    if !vg.lvs.is_empty() {
                        let i = i % vg.lvs.len();
                        vg.lvs.remove(i);
                    }
                }
            }
            prop_assert_eq!(alloc::check_layout(&vg), Ok(()));
            prop_assert_eq!(alloc::free_extents(&vg).unwrap() + used_extents(&vg), total);
        }
    }

    #[test]
    fn a_linear_request_that_fits_by_count_succeeds(
        pvs in prop::collection::vec(1u64..60, 1..5),
        holes in prop::collection::vec((0usize..5, 0u64..60, 1u64..10), 0..12),
        want in 1u64..200,
    ) {
        let spec: Vec<(u64, bool)> = pvs.iter().map(|c| (*c, true)).collect();
        let mut vg = vg_with_pvs(&spec);
        // Scatter used ranges (skipping ones that would overlap).
        for (k, (pvi, pe, len)) in holes.into_iter().enumerate() {
            let pvi = pvi % pvs.len();
            let mut cand = vg.clone();
            cand.lvs.push(lv(&format!("h{k}"), k as u8, vec![linear(0, &format!("pv{pvi}"), pe, len)]));
            if alloc::check_layout(&cand).is_ok() {
                vg = cand;
            }
        }
        let free = alloc::free_extents(&vg).unwrap();
        let r = alloc::allocate(&vg, &AllocRequest::linear("n", want));
        if want <= free {
            let segs = r.unwrap();
            let mut after = vg.clone();
            after.lvs.push(lv("n", 200, segs));
            prop_assert_eq!(alloc::check_layout(&after), Ok(()));
            prop_assert_eq!(alloc::free_extents(&after).unwrap(), free - want);
        } else {
            let is_vg_full = matches!(r, Err(AllocError::VgFull { .. }));
            prop_assert!(is_vg_full);
        }
    }
}
