//! The layout invariants lvm2 checks before it writes a VG (`vg_validate`).

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};

use super::free::pv_usage;
use super::{AllocError, Result};
use crate::lvm::model::{Area, LogicalVolume, SegmentKind, VolumeGroup};
use crate::lvm::names::{self, NameError};

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
