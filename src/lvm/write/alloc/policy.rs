//! The replay of lvm2's allocator (`_allocate` in `lv_manip.c`): PV maps in lvm2's list
//! order, the policies `contiguous`, `cling` and `normal` tried in turn.

#![forbid(unsafe_code)]

use super::free::{free_ranges, pv_free, pv_usage};
use super::{
    AllocError, AllocRequest, MAX_EXTENT_COUNT, MAX_STRIPES, Result, STRIPE_SIZE_MIN,
    stripe_rounded,
};
use crate::lvm::model::{AllocPolicy, Area, PhysicalVolume, Segment, SegmentKind, VolumeGroup};

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
                if !pv.status.contains("ALLOCATABLE") || pv.is_missing() || pv_free(&usage, pv) == 0
                {
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
    let vg_free: u64 = vg.pvs.iter().map(|pv| pv_free(&usage, pv)).sum();
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
        let mut m = PvMap {
            handle: pv.handle.clone(),
            areas: Vec::new(),
        };
        for (start, count) in free_ranges(&usage, pv) {
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
