//! Free space and lvm2's normal allocation policy for a new LV; the layout invariants
//! lvm2 checks before it writes a VG.
//!
//! [`allocate`] places a new linear or striped LV the way `lvcreate` does with the default
//! policy (`normal`, `maximise_cling = 1`, no tags): lvm2 builds a map of the free ranges
//! of every ALLOCATABLE PV (largest first, equal sizes in PE order, `pv_map.c`) and then
//! tries the policies `contiguous`, `cling` and `normal` in turn (`_allocate` in
//! `lv_manip.c`). Each round of a policy picks one free range per PV, sorts the picks by
//! how much they can give, takes as many as there are stripes, and allocates the same
//! number of extents from the start of each. This module replays those rounds on the
//! same data structures (free ranges in lvm2's list order, the reservation and
//! reinsertion of ranges while they are considered, the rounds of each policy), so the
//! layout matches the one lvm2 would choose, not just a valid one.
//!
//! [`check_layout`] is what `vg_validate`/`check_pv_segments`/`check_lv_segments` would
//! refuse: areas outside their PV, areas that overlap, segments that are not contiguous
//! from extent 0, stripe counts that do not divide, references to PVs or LVs that do not
//! exist, duplicate names and ids.
//!
//! ```
//! use devmapper::lvm::{config, model::VolumeGroup};
//! use devmapper::lvm::write::alloc::{self, AllocRequest};
//! let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 1
//!   status = ["RESIZEABLE", "READ", "WRITE"] extent_size = 8192 max_lv = 0 max_pv = 0
//!   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
//!     status = ["ALLOCATABLE"] pe_start = 2048 pe_count = 100 } } }
//!   contents = "Text Format Volume Group" version = 1"#;
//! let vg = VolumeGroup::from_config(&config::parse(text)?)?;
//! assert_eq!(alloc::free_extents(&vg)?, 100);
//! let segs = alloc::allocate(&vg, &AllocRequest::linear("lv0", 10))?;
//! assert_eq!((segs.len(), segs[0].extent_count), (1, 10));
//! let e = alloc::allocate(&vg, &AllocRequest::linear("big", 101)).unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     "Volume group \"vg0\" has insufficient free space (100 extents): 101 required."
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::lvm::model::{
    AllocPolicy, Area, LogicalVolume, PhysicalVolume, Segment, SegmentKind, VolumeGroup,
};
use crate::lvm::names::{self, NameError};

/// Most stripes lvm2 allows (`MAX_STRIPES`).
pub const MAX_STRIPES: u32 = 128;
/// Smallest stripe size in sectors (`STRIPE_SIZE_MIN`, a 4 KiB page).
pub const STRIPE_SIZE_MIN: u64 = 8;
/// lvm2's default stripe size in sectors (`metadata/stripesize` = 64 KiB).
pub const DEFAULT_STRIPE_SIZE: u64 = 128;
/// Most extents an LV can have (`MAX_EXTENT_COUNT`).
pub const MAX_EXTENT_COUNT: u64 = u32::MAX as u64;

/// A new LV to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRequest {
    /// The LV's name (for lvm2's messages only).
    pub name: String,
    /// Size in extents; with several stripes rounded up to a multiple of the stripe count,
    /// as lvm2 does ([`stripe_rounded`]).
    pub extents: u64,
    /// Number of stripes (1 = linear).
    pub stripes: u32,
    /// Stripe size in sectors (ignored with one stripe; reduced to the extent size when
    /// larger, as lvm2 does).
    pub stripe_size: u64,
    /// PV handles (`pv0`, ...) allowed, in the order given; `None` = every PV of the VG.
    pub pvs: Option<Vec<String>>,
}

impl AllocRequest {
    /// A linear LV of `extents` extents on any PV.
    pub fn linear(name: impl Into<String>, extents: u64) -> AllocRequest {
        AllocRequest {
            name: name.into(),
            extents,
            stripes: 1,
            stripe_size: 0,
            pvs: None,
        }
    }

    /// A striped LV.
    pub fn striped(
        name: impl Into<String>,
        extents: u64,
        stripes: u32,
        stripe_size: u64,
    ) -> AllocRequest {
        AllocRequest {
            name: name.into(),
            extents,
            stripes,
            stripe_size,
            pvs: None,
        }
    }

    /// Only on these PVs (handles), in this order.
    pub fn on_pvs(mut self, pvs: Vec<String>) -> AllocRequest {
        self.pvs = Some(pvs);
        self
    }
}

/// `extents` rounded up to a multiple of `stripes` (lvm2's `_round_to_stripe_boundary`;
/// lvm2 prints "Rounding size ... up to stripe boundary size ..." when it changes).
pub fn stripe_rounded(extents: u64, stripes: u32) -> u64 {
    let s = u64::from(stripes.max(1));
    extents.div_ceil(s).saturating_mul(s)
}

/// What allocation or the layout check refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// A request of zero extents.
    #[error("Unable to create new logical volume with no extents.")]
    ZeroExtents,
    /// More extents than an LV can have.
    #[error("Logical volume size of {extents} extents exceeds the maximum of {MAX_EXTENT_COUNT}.")]
    TooManyExtents {
        /// The request.
        extents: u64,
    },
    /// A stripe count outside 1..=128.
    #[error("Number of stripes ({stripes}) must be between 1 and {MAX_STRIPES}.")]
    StripeCount {
        /// The request.
        stripes: u32,
    },
    /// A stripe size that is not a power of 2 of at least 4 KiB.
    #[error("Invalid stripe size {stripe_size} sectors.")]
    StripeSize {
        /// The request, in sectors.
        stripe_size: u64,
    },
    /// More stripes than PVs to put them on.
    #[error("Number of stripes ({stripes}) must not exceed number of physical volumes ({pvs})")]
    TooManyStripes {
        /// The request.
        stripes: u32,
        /// PVs allowed.
        pvs: usize,
    },
    /// An allowed PV that is not in the VG.
    #[error("Physical Volume \"{pv}\" not found in Volume Group \"{vg}\".")]
    PvNotInVg {
        /// The handle given.
        pv: String,
        /// The VG.
        vg: String,
    },
    /// None of the PVs the caller allowed is allocatable with free extents.
    #[error("No specified PVs have space available.")]
    NoSpecifiedPvSpace,
    /// Not enough free extents in the whole VG.
    #[error(
        "Volume group \"{vg}\" has insufficient free space ({free} extents): {required} required."
    )]
    VgFull {
        /// The VG.
        vg: String,
        /// Free extents in the VG.
        free: u64,
        /// Extents asked for.
        required: u64,
    },
    /// Not enough free extents on the allowed, allocatable PVs.
    #[error("Insufficient free space: {needed} extents needed, but only {available} available")]
    InsufficientFree {
        /// Extents still needed.
        needed: u64,
        /// Free extents on the allowed, allocatable PVs.
        available: u64,
    },
    /// The free space cannot be arranged as asked (e.g. stripes on too few PVs).
    #[error(
        "Insufficient suitable {}allocatable extents for logical volume {lv}: {more} more required",
        if *contiguous { "contiguous " } else { "" }
    )]
    Insufficient {
        /// The VG's policy is `contiguous` (no splitting).
        contiguous: bool,
        /// The new LV's name.
        lv: String,
        /// Extents that could not be placed.
        more: u64,
    },
    /// The VG's allocation policy is one this allocator does not replay (`anywhere`).
    #[error("Allocation policy {policy} of volume group {vg} is not supported")]
    UnsupportedPolicy {
        /// The VG.
        vg: String,
        /// The policy's name.
        policy: &'static str,
    },
    /// A segment this crate does not model uses PV extents directly (e.g. `pvmove`'s
    /// mirror): its extents cannot be accounted for, so nothing is allocated.
    #[error("LV {lv} has a {segtype} segment on PV {pv} whose extents this crate does not track")]
    UntrackedPvUse {
        /// The LV.
        lv: String,
        /// Its segment type.
        segtype: String,
        /// The PV it names.
        pv: String,
    },
    /// An area names a PV handle the VG does not have.
    #[error("LV {lv} segment {segment}: unknown PV {pv}")]
    UnknownPv {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// The handle.
        pv: String,
    },
    /// A segment names an LV the VG does not have.
    #[error("LV {lv} segment {segment}: unknown LV {target}")]
    UnknownLv {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// The missing LV.
        target: String,
    },
    /// An area reaches past its PV's last extent.
    #[error("LV {lv}: extents {start}..{end} of PV {pv} are beyond its {pe_count} extents")]
    BeyondPv {
        /// The LV.
        lv: String,
        /// The PV handle.
        pv: String,
        /// First PE.
        start: u64,
        /// One past the last PE.
        end: u64,
        /// The PV's size in extents.
        pe_count: u64,
    },
    /// Two areas share a physical extent.
    #[error("PV {pv} extent {pe} is used by both {first} and {second}")]
    Overlap {
        /// The PV handle.
        pv: String,
        /// The first shared PE.
        pe: u64,
        /// One LV using it.
        first: String,
        /// The other.
        second: String,
    },
    /// A segment does not start where the previous one ended.
    #[error("LV {lv}: segment {segment} should begin at LE {expected} (found {start}).")]
    SegmentStart {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Where it should start.
        expected: u64,
        /// Where it starts.
        start: u64,
    },
    /// A segment of zero extents with areas.
    #[error("LV {lv}: segment {segment} has no extents")]
    EmptySegment {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
    },
    /// A striped segment whose length is not a multiple of its stripe count, or without
    /// stripes.
    #[error("LV {lv}: segment {segment} of {extent_count} extents cannot have {stripes} stripes")]
    StripeMismatch {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Its length.
        extent_count: u64,
        /// Its stripe count.
        stripes: usize,
    },
    /// Several stripes and no stripe size.
    #[error("LV {lv}: segment {segment} has {stripes} stripes and no stripe size")]
    NoStripeSize {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Its stripe count.
        stripes: usize,
    },
    /// Two LVs with one name.
    #[error("Duplicate LV name {name} detected in {vg}.")]
    DuplicateLvName {
        /// The name.
        name: String,
        /// The VG.
        vg: String,
    },
    /// Two LVs with one id.
    #[error("Duplicate LV id {id} detected for {name} in {vg}.")]
    DuplicateLvId {
        /// The id.
        id: String,
        /// The second LV with it.
        name: String,
        /// The VG.
        vg: String,
    },
    /// Two PVs with one id or one handle.
    #[error("Duplicate PV {what} detected in {vg}.")]
    DuplicatePv {
        /// `id ...` or `name ...`.
        what: String,
        /// The VG.
        vg: String,
    },
    /// An LV name lvm2 would refuse.
    #[error("{0}")]
    Name(NameError),
}

type Result<T> = std::result::Result<T, AllocError>;

/// One used range of a PV.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Used {
    pe: u64,
    len: u64,
    lv: String,
}

/// The used ranges of each PV (by handle), sorted by PE. Areas of LVs are accounted
/// for; a segment this crate keeps only by name that names a PV is refused.
fn pv_usage(vg: &VolumeGroup) -> Result<BTreeMap<&str, Vec<Used>>> {
    let mut by_pv: BTreeMap<&str, Vec<Used>> = vg
        .pvs
        .iter()
        .map(|p| (p.handle.as_str(), Vec::new()))
        .collect();
    for lv in &vg.lvs {
        for (si, seg) in lv.segments.iter().enumerate() {
            match &seg.kind {
                SegmentKind::Striped { areas, .. } => {
                    if areas.is_empty() {
                        return Err(AllocError::StripeMismatch {
                            lv: lv.name.clone(),
                            segment: si,
                            extent_count: seg.extent_count,
                            stripes: 0,
                        });
                    }
                    let len = seg.extent_count / areas.len() as u64;
                    for a in areas {
                        if let Area::Pv { pv, pe } = a {
                            let list = by_pv.get_mut(pv.as_str()).ok_or_else(|| {
                                AllocError::UnknownPv {
                                    lv: lv.name.clone(),
                                    segment: si,
                                    pv: pv.clone(),
                                }
                            })?;
                            list.push(Used {
                                pe: *pe,
                                len,
                                lv: lv.name.clone(),
                            });
                        }
                    }
                }
                SegmentKind::Other { segtype, lv_refs } => {
                    if let Some(pv) = lv_refs.iter().find(|r| by_pv.contains_key(r.as_str())) {
                        return Err(AllocError::UntrackedPvUse {
                            lv: lv.name.clone(),
                            segtype: segtype.clone(),
                            pv: pv.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    for (pv, list) in by_pv.iter_mut() {
        list.sort_by_key(|u| u.pe);
        let pe_count = vg
            .pvs
            .iter()
            .rev()
            .find(|p| p.handle == *pv)
            .map_or(0, |p| p.pe_count);
        for u in list.iter() {
            let end = u.pe.saturating_add(u.len);
            if end > pe_count {
                return Err(AllocError::BeyondPv {
                    lv: u.lv.clone(),
                    pv: pv.to_string(),
                    start: u.pe,
                    end,
                    pe_count,
                });
            }
        }
        for w in list.windows(2) {
            if let [a, b] = w
                && a.pe + a.len > b.pe
            {
                return Err(AllocError::Overlap {
                    pv: pv.to_string(),
                    pe: b.pe,
                    first: a.lv.clone(),
                    second: b.lv.clone(),
                });
            }
        }
    }
    Ok(by_pv)
}

/// The free ranges `(pe, len)` of `pv`, in PE order.
fn free_ranges(pv: &PhysicalVolume, used: &[Used]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for u in used {
        if u.pe > at {
            out.push((at, u.pe - at));
        }
        at = at.max(u.pe + u.len);
    }
    if pv.pe_count > at {
        out.push((at, pv.pe_count - at));
    }
    out
}

/// Free extents of the VG: every PV's extents not used by an LV (lvm2's `vg_free_count`,
/// which counts non-allocatable PVs too).
pub fn free_extents(vg: &VolumeGroup) -> Result<u64> {
    let usage = pv_usage(vg)?;
    let mut free = 0u64;
    for pv in &vg.pvs {
        let used = usage
            .get(pv.handle.as_str())
            .map_or(&[][..], |v| v.as_slice());
        free += free_ranges(pv, used).iter().map(|r| r.1).sum::<u64>();
    }
    Ok(free)
}

/// Free ranges `(first PE, extents)` of every PV, by handle, in PE order.
pub fn free_space(vg: &VolumeGroup) -> Result<BTreeMap<String, Vec<(u64, u64)>>> {
    let usage = pv_usage(vg)?;
    Ok(vg
        .pvs
        .iter()
        .map(|pv| {
            let used = usage
                .get(pv.handle.as_str())
                .map_or(&[][..], |v| v.as_slice());
            (pv.handle.clone(), free_ranges(pv, used))
        })
        .collect())
}

// ---- the replay of lvm2's allocator ---------------------------------------------------

/// A free range of a PV map (`struct pv_area`).
#[derive(Clone, Debug)]
struct PvArea {
    id: usize,
    start: u64,
    count: u64,
    unreserved: u64,
}

/// One PV's free ranges in lvm2's list order (`struct pv_map`).
#[derive(Clone, Debug)]
struct PvMap {
    handle: String,
    areas: Vec<PvArea>,
}

impl PvMap {
    /// `_insert_area`: before the first range whose size is smaller than the key (the
    /// range's size, or what is left unreserved of it), so largest first and equal sizes
    /// in insertion order. Returns the new index.
    fn insert(&mut self, a: PvArea, reduced: bool) -> usize {
        let key = if reduced { a.unreserved } else { a.count };
        let pos = self
            .areas
            .iter()
            .position(|b| key > b.count)
            .unwrap_or(self.areas.len());
        self.areas.insert(pos, a);
        pos
    }

    /// `reinsert_changed_pv_area`.
    fn reinsert(&mut self, i: usize) -> usize {
        let a = self.areas.remove(i);
        self.insert(a, true)
    }

    fn index_of(&self, id: usize) -> Option<usize> {
        self.areas.iter().position(|a| a.id == id)
    }

    fn free(&self) -> u64 {
        self.areas.iter().map(|a| a.count).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Contiguous,
    Cling,
    Normal,
}

#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    can_split: bool,
    cling_to_allocated: bool,
    positional: bool,
}

/// A candidate range for one parallel area (`struct pv_area_used`).
#[derive(Clone, Copy, Debug)]
struct Cand {
    map: usize,
    id: usize,
    used: u64,
}

/// One allocated area of one stripe.
#[derive(Clone, Debug)]
struct Placed {
    map: usize,
    pe: u64,
    len: u64,
}

struct Allocator {
    maps: Vec<PvMap>,
    stripes: usize,
    needed: u64,
    allocated: u64,
    /// Per stripe, the areas allocated so far (`ah->allocated_areas`).
    placed: Vec<Vec<Placed>>,
}

impl Allocator {
    fn free(&self) -> u64 {
        self.maps.iter().map(PvMap::free).sum()
    }

    /// `_reset_unreserved`, walking the list as lvm2 does while it reinserts.
    fn reset_unreserved(&mut self) {
        for m in &mut self.maps {
            let mut i = 0;
            while i < m.areas.len() {
                let a = &mut m.areas[i];
                if a.unreserved != a.count {
                    a.unreserved = a.count;
                    i = m.reinsert(i) + 1;
                } else {
                    i += 1;
                }
            }
        }
    }

    /// `consume_pv_area`.
    fn consume(&mut self, map: usize, id: usize, len: u64) {
        let Some(m) = self.maps.get_mut(map) else {
            return;
        };
        let Some(i) = m.index_of(id) else { return };
        let mut a = m.areas.remove(i);
        if len < a.count {
            a.start += len;
            a.count -= len;
            a.unreserved = a.count;
            m.insert(a, false);
        }
    }

    /// Is `map`'s PV used by stripe `s` already (`_check_cling_to_allocated`'s test)?
    fn used_by_stripe(&self, map: usize, s: usize) -> bool {
        self.placed
            .get(s)
            .is_some_and(|v| v.iter().any(|p| p.map == map))
    }

    /// `_find_some_parallel_space` + `_alloc_parallel_area`: one round. Returns whether
    /// anything was allocated.
    fn round(&mut self, flags: Flags, max: u64) -> bool {
        self.reset_unreserved();
        let stripes = self.stripes;
        let mult = stripes as u64;
        let num_pos = if flags.positional { stripes } else { 0 };
        let mut slots: Vec<Option<Cand>> = vec![None; num_pos];
        let mut sorted: Vec<Cand> = Vec::new();
        let mut preferred = 0usize;
        for mi in 0..self.maps.len() {
            if self.maps[mi].areas.is_empty() {
                continue;
            }
            let mut found_one = false;
            let mut i = 0usize;
            while i < self.maps[mi].areas.len() {
                let (id, count, unreserved) = {
                    let a = &self.maps[mi].areas[i];
                    (a.id, a.count, a.unreserved)
                };
                if unreserved == 0 {
                    i += 1;
                    continue;
                }
                if flags.cling_to_allocated {
                    let mut matched = false;
                    for (s, slot) in (0..stripes).map(|s| (s, slots.get(s).copied().flatten())) {
                        if flags.positional && slot.is_some() {
                            continue;
                        }
                        if self.used_by_stripe(mi, s) {
                            if let Some(slot) = slots.get_mut(s) {
                                *slot = Some(Cand {
                                    map: mi,
                                    id,
                                    used: count,
                                });
                            }
                            matched = true;
                            break;
                        }
                    }
                    if !matched {
                        break;
                    }
                } else if unreserved.saturating_mul(mult) < max && (!flags.can_split || found_one) {
                    break;
                }
                if flags.positional {
                    preferred += 1;
                    break;
                }
                // USE_AREA: the first pick of this PV, or a replacement for it.
                if !found_one {
                    sorted.push(Cand {
                        map: mi,
                        id,
                        used: 0,
                    });
                    found_one = true;
                }
                let m = &mut self.maps[mi];
                let mut required = max / mult;
                let next = if required >= unreserved {
                    required = unreserved;
                    m.areas[i].unreserved = 0;
                    i + 1
                } else {
                    m.areas[i].unreserved -= required;
                    m.reinsert(i) + 1
                };
                if let Some(last) = sorted.last_mut() {
                    *last = Cand {
                        map: mi,
                        id,
                        used: required,
                    };
                }
                i = next;
            }
            if num_pos > 0 && preferred == num_pos {
                break;
            }
        }
        if sorted.len() + preferred < stripes {
            return false;
        }
        // qsort with `_comp_area`: biggest first (glibc's merge sort keeps ties in order).
        sorted.sort_by_key(|c| std::cmp::Reverse(c.used));
        let mut rest = sorted.into_iter();
        let mut chosen = Vec::with_capacity(stripes);
        for slot in slots {
            match slot {
                Some(c) => chosen.push(c),
                None => match rest.next() {
                    Some(c) => chosen.push(c),
                    None => return false,
                },
            }
        }
        chosen.extend(rest.take(stripes - chosen.len().min(stripes)));
        if chosen.len() < stripes {
            return false;
        }
        let mut area_len = max / mult;
        for c in &chosen {
            area_len = area_len.min(c.used);
        }
        if area_len == 0 {
            return false;
        }
        for (s, c) in chosen.iter().enumerate() {
            let Some(pe) = self.maps[c.map]
                .index_of(c.id)
                .map(|i| self.maps[c.map].areas[i].start)
            else {
                return false;
            };
            self.placed[s].push(Placed {
                map: c.map,
                pe,
                len: area_len,
            });
            self.consume(c.map, c.id, area_len);
        }
        self.allocated += area_len * mult;
        true
    }

    /// `_find_max_parallel_space_for_one_policy`.
    fn run_policy(&mut self, policy: Policy, mut flags: Flags) {
        loop {
            let max = self.needed - self.allocated;
            let before = self.allocated;
            self.round(flags, max);
            if self.allocated == before {
                if policy == Policy::Normal && flags.cling_to_allocated {
                    flags.cling_to_allocated = false;
                } else {
                    break;
                }
            } else if policy == Policy::Normal && !flags.cling_to_allocated {
                // maximise_cling
                flags.cling_to_allocated = true;
            }
            if policy == Policy::Contiguous || self.allocated == self.needed || !flags.can_split {
                break;
            }
        }
    }
}

/// Place a new LV as lvm2's `lvcreate` would with the default (`normal`) policy: the
/// segments, from extent 0, of type `striped` (one stripe for linear).
///
/// Checks come in lvm2's order: stripe parameters, stripes against PVs, the VG's free
/// space (`Volume group "vg" has insufficient free space ...`), the allowed allocatable
/// PVs' free space, then whether the space can be arranged.
pub fn allocate(vg: &VolumeGroup, req: &AllocRequest) -> Result<Vec<Segment>> {
    // lvcreate's policy is `inherit`: the VG's. lvm2 tries `contiguous` up to it.
    let (policies, can_split): (&[Policy], bool) = match vg.allocation_policy {
        AllocPolicy::Normal | AllocPolicy::Inherit => {
            (&[Policy::Contiguous, Policy::Cling, Policy::Normal], true)
        }
        AllocPolicy::Cling => (&[Policy::Contiguous, Policy::Cling], true),
        AllocPolicy::Contiguous => (&[Policy::Contiguous], false),
        AllocPolicy::Anywhere => {
            return Err(AllocError::UnsupportedPolicy {
                vg: vg.name.clone(),
                policy: "anywhere",
            });
        }
    };
    if req.stripes == 0 || req.stripes > MAX_STRIPES {
        return Err(AllocError::StripeCount {
            stripes: req.stripes,
        });
    }
    let mut stripe_size = 0;
    if req.stripes > 1 {
        if req.stripe_size < STRIPE_SIZE_MIN || !req.stripe_size.is_power_of_two() {
            return Err(AllocError::StripeSize {
                stripe_size: req.stripe_size,
            });
        }
        stripe_size = req.stripe_size.min(vg.extent_size.max(1));
    }
    let needed = stripe_rounded(req.extents, req.stripes);
    if needed == 0 {
        return Err(AllocError::ZeroExtents);
    }
    if needed > MAX_EXTENT_COUNT {
        return Err(AllocError::TooManyExtents { extents: needed });
    }
    let usage = pv_usage(vg)?;
    let pv_free = |pv: &PhysicalVolume| -> u64 {
        let used = usage
            .get(pv.handle.as_str())
            .map_or(&[][..], |v| v.as_slice());
        free_ranges(pv, used).iter().map(|r| r.1).sum()
    };
    // The allowed PVs, in order, once each. A list given by the caller keeps only the
    // allocatable PVs with free extents, as lvm2's `create_pv_list` does (it warns about
    // the others).
    let mut allowed: Vec<&PhysicalVolume> = Vec::new();
    match &req.pvs {
        None => allowed.extend(vg.pvs.iter()),
        Some(list) => {
            for h in list {
                let pv = vg.pvs.iter().find(|p| &p.handle == h).ok_or_else(|| {
                    AllocError::PvNotInVg {
                        pv: h.clone(),
                        vg: vg.name.clone(),
                    }
                })?;
                if !pv.status.contains("ALLOCATABLE") || pv.is_missing() || pv_free(pv) == 0 {
                    continue;
                }
                if !allowed.iter().any(|p| p.handle == pv.handle) {
                    allowed.push(pv);
                }
            }
            if allowed.is_empty() {
                return Err(AllocError::NoSpecifiedPvSpace);
            }
        }
    }
    if req.stripes as usize > allowed.len() {
        return Err(AllocError::TooManyStripes {
            stripes: req.stripes,
            pvs: allowed.len(),
        });
    }
    let vg_free: u64 = vg
        .pvs
        .iter()
        .map(|pv| {
            let used = usage
                .get(pv.handle.as_str())
                .map_or(&[][..], |v| v.as_slice());
            free_ranges(pv, used).iter().map(|r| r.1).sum::<u64>()
        })
        .sum();
    if vg_free < needed {
        return Err(AllocError::VgFull {
            vg: vg.name.clone(),
            free: vg_free,
            required: needed,
        });
    }
    let mut next_id = 0usize;
    let mut maps = Vec::new();
    for pv in allowed {
        if !pv.status.contains("ALLOCATABLE") || pv.is_missing() {
            continue;
        }
        let used = usage
            .get(pv.handle.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let mut m = PvMap {
            handle: pv.handle.clone(),
            areas: Vec::new(),
        };
        for (start, count) in free_ranges(pv, used) {
            m.insert(
                PvArea {
                    id: next_id,
                    start,
                    count,
                    unreserved: count,
                },
                false,
            );
            next_id += 1;
        }
        maps.push(m);
    }
    let stripes = req.stripes as usize;
    let mut a = Allocator {
        maps,
        stripes,
        needed,
        allocated: 0,
        placed: vec![Vec::new(); stripes],
    };
    for &policy in policies {
        let available = a.free();
        let still = a.needed - a.allocated;
        if still > available {
            return Err(AllocError::InsufficientFree {
                needed: still,
                available,
            });
        }
        let flags = match policy {
            Policy::Contiguous => Flags {
                can_split,
                ..Flags::default()
            },
            Policy::Cling => Flags {
                can_split,
                cling_to_allocated: true,
                positional: true,
            },
            Policy::Normal => Flags {
                can_split,
                cling_to_allocated: a.allocated != a.needed,
                positional: false,
            },
        };
        a.run_policy(policy, flags);
        if a.allocated == a.needed {
            break;
        }
    }
    if a.allocated != a.needed {
        return Err(AllocError::Insufficient {
            contiguous: !can_split,
            lv: req.name.clone(),
            more: a.needed - a.allocated,
        });
    }
    Ok(segments(&a, stripe_size))
}

/// One segment per round, merged where every stripe continues on the same PV right
/// after the previous one (what lvm2's `lv_merge_segments` does to them).
fn segments(a: &Allocator, stripe_size: u64) -> Vec<Segment> {
    let rounds = a.placed.first().map_or(0, Vec::len);
    let stripes = a.stripes as u64;
    let mut out: Vec<(u64, Vec<(usize, u64)>)> = Vec::new(); // (area_len, [(map, pe)])
    for r in 0..rounds {
        let len = a.placed[0][r].len;
        let areas: Vec<(usize, u64)> = a.placed.iter().map(|v| (v[r].map, v[r].pe)).collect();
        if let Some((plen, pareas)) = out.last_mut()
            && pareas
                .iter()
                .zip(&areas)
                .all(|(p, n)| p.0 == n.0 && p.1 + *plen == n.1)
        {
            *plen += len;
            continue;
        }
        out.push((len, areas));
    }
    let mut start = 0;
    out.into_iter()
        .map(|(len, areas)| {
            let seg = Segment {
                start_extent: start,
                extent_count: len * stripes,
                type_name: "striped".into(),
                kind: SegmentKind::Striped {
                    stripe_size,
                    areas: areas
                        .into_iter()
                        .map(|(m, pe)| Area::Pv {
                            pv: a.maps[m].handle.clone(),
                            pe,
                        })
                        .collect(),
                },
            };
            start += len * stripes;
            seg
        })
        .collect()
}

// ---- the layout check ------------------------------------------------------------------

/// The invariants lvm2 checks before writing a VG (`vg_validate`, `check_pv_segments`,
/// `check_lv_segments`): unique PV handles and ids, unique LV names and ids, valid LV
/// names of a supported length, segments contiguous from LE 0, striped segments whose
/// length divides by their stripes (with a stripe size when there are several), every
/// area on an existing PV inside `[0, pe_count)` or on an existing LV, no PV extent used
/// twice, and the LVs that snapshot and thin segments name existing.
pub fn check_layout(vg: &VolumeGroup) -> Result<()> {
    let mut handles = HashSet::new();
    let mut pv_ids = HashSet::new();
    for pv in &vg.pvs {
        if !handles.insert(pv.handle.as_str()) {
            return Err(AllocError::DuplicatePv {
                what: format!("name {}", pv.handle),
                vg: vg.name.clone(),
            });
        }
        if !pv_ids.insert(pv.id) {
            return Err(AllocError::DuplicatePv {
                what: format!("id {}", pv.id),
                vg: vg.name.clone(),
            });
        }
    }
    let mut lv_names: HashMap<&str, &LogicalVolume> = HashMap::new();
    let mut lv_ids = HashSet::new();
    for lv in &vg.lvs {
        names::validate_name(&lv.name)
            .and_then(|()| names::check_dev_name_len(&vg.name, &lv.name))
            .map_err(|reason| {
                AllocError::Name(NameError {
                    of: names::NameOf::Lv,
                    name: lv.name.clone(),
                    reason,
                })
            })?;
        if lv_names.insert(lv.name.as_str(), lv).is_some() {
            return Err(AllocError::DuplicateLvName {
                name: lv.name.clone(),
                vg: vg.name.clone(),
            });
        }
        if !lv_ids.insert(lv.id) {
            return Err(AllocError::DuplicateLvId {
                id: lv.id.to_string(),
                name: lv.name.clone(),
                vg: vg.name.clone(),
            });
        }
    }
    for lv in &vg.lvs {
        let mut expected = 0u64;
        for (si, seg) in lv.segments.iter().enumerate() {
            if seg.start_extent != expected {
                return Err(AllocError::SegmentStart {
                    lv: lv.name.clone(),
                    segment: si,
                    expected,
                    start: seg.start_extent,
                });
            }
            expected = expected.saturating_add(seg.extent_count);
            let unknown_lv = |target: &str| AllocError::UnknownLv {
                lv: lv.name.clone(),
                segment: si,
                target: target.to_string(),
            };
            let need_lv = |target: &str| {
                if lv_names.contains_key(target) {
                    Ok(())
                } else {
                    Err(unknown_lv(target))
                }
            };
            match &seg.kind {
                SegmentKind::Striped { stripe_size, areas } => {
                    if seg.extent_count == 0 {
                        return Err(AllocError::EmptySegment {
                            lv: lv.name.clone(),
                            segment: si,
                        });
                    }
                    if areas.is_empty() || !seg.extent_count.is_multiple_of(areas.len() as u64) {
                        return Err(AllocError::StripeMismatch {
                            lv: lv.name.clone(),
                            segment: si,
                            extent_count: seg.extent_count,
                            stripes: areas.len(),
                        });
                    }
                    if areas.len() > 1 && *stripe_size == 0 {
                        return Err(AllocError::NoStripeSize {
                            lv: lv.name.clone(),
                            segment: si,
                            stripes: areas.len(),
                        });
                    }
                    for a in areas {
                        match a {
                            Area::Pv { pv, .. } => {
                                if !handles.contains(pv.as_str()) {
                                    return Err(AllocError::UnknownPv {
                                        lv: lv.name.clone(),
                                        segment: si,
                                        pv: pv.clone(),
                                    });
                                }
                            }
                            Area::Lv { lv: target, .. } => need_lv(target)?,
                        }
                    }
                }
                SegmentKind::Snapshot { origin, cow, .. } => {
                    need_lv(origin)?;
                    need_lv(cow)?;
                }
                SegmentKind::ThinPool { metadata, data, .. } => {
                    need_lv(metadata)?;
                    need_lv(data)?;
                }
                SegmentKind::Thin {
                    pool,
                    origin,
                    merge,
                    external_origin,
                    ..
                } => {
                    need_lv(pool)?;
                    for t in [origin, merge, external_origin].into_iter().flatten() {
                        need_lv(t)?;
                    }
                }
                SegmentKind::Other { lv_refs, .. } => {
                    for r in lv_refs {
                        if !handles.contains(r.as_str()) {
                            need_lv(r)?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Areas inside their PV, no overlap.
    pv_usage(vg).map(|_| ())
}
