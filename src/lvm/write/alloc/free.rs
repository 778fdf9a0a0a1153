//! The used and free ranges of each PV of a VG.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use super::{AllocError, Result};
use crate::lvm::model::{Area, PhysicalVolume, SegmentKind, VolumeGroup};

/// One used range of a PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Used {
    pe: u64,
    len: u64,
    lv: String,
}

/// The used ranges of each PV (by handle), sorted by PE. Areas of LVs are accounted
/// for; a segment this crate keeps only by name that names a PV is refused.
pub(super) fn pv_usage(vg: &VolumeGroup) -> Result<Usage<'_>> {
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

/// The used ranges of each PV (by handle), as [`pv_usage`] gives them.
pub(super) type Usage<'v> = BTreeMap<&'v str, Vec<Used>>;

/// The free ranges `(pe, len)` of `pv`, in PE order.
pub(super) fn free_ranges(usage: &Usage<'_>, pv: &PhysicalVolume) -> Vec<(u64, u64)> {
    let used = usage
        .get(pv.handle.as_str())
        .map_or(&[][..], |v| v.as_slice());
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
    Ok(vg.pvs.iter().map(|pv| pv_free(&usage, pv)).sum())
}

/// Free extents of `pv`.
pub(super) fn pv_free(usage: &Usage<'_>, pv: &PhysicalVolume) -> u64 {
    free_ranges(usage, pv).iter().map(|r| r.1).sum()
}

/// Free ranges `(first PE, extents)` of every PV, by handle, in PE order.
pub fn free_space(vg: &VolumeGroup) -> Result<BTreeMap<String, Vec<(u64, u64)>>> {
    let usage = pv_usage(vg)?;
    Ok(vg
        .pvs
        .iter()
        .map(|pv| (pv.handle.clone(), free_ranges(&usage, pv)))
        .collect())
}
