//! Segment importers: `striped`, `snapshot`, `thin-pool`, `thin`, `zero`, `error`, and
//! the other types kept by name with the LVs they reference.

use super::fields::{err, get_str, get_u32, get_u64w, opt_str, opt_u32};
use super::import::Ctx;
use super::types::{
    Area, Discards, SEGTYPE_FLAGS, Segment, SegmentKind, THIN_MAX_CHUNK, THIN_MAX_DEVICE_ID,
    THIN_MIN_CHUNK, ThinMessage,
};
use super::warning::WarningKind;
use crate::lvm::config::{Node, Scalar};
use crate::lvm::error::{ModelErrorKind, Result};

pub(super) fn import_segment(sn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<Segment> {
    let start_extent = get_u32(sn, "start_extent", path, ctx.w)?;
    let extent_count = get_u32(sn, "extent_count", path, ctx.w)?;
    let type_name = get_str(sn, "type", path)?.to_string();
    // lvm2 takes an empty segment without areas (it maps nothing); one with areas fails
    // its PV/LV area checks.
    if extent_count == 0 && !matches!(type_name.as_str(), "zero" | "error") {
        return Err(err(path, ModelErrorKind::ZeroLengthSegment));
    }
    let mut parts = type_name.split('+');
    let base = parts.next().unwrap_or_default().to_string();
    let unknown_suffix = parts.any(|f| !SEGTYPE_FLAGS.contains(&f));
    let kind = if unknown_suffix {
        ctx.w.push(
            path,
            WarningKind::UnknownSegmentType {
                segtype: type_name.clone(),
            },
        );
        other(sn, &base)
    } else {
        match base.as_str() {
            "striped" | "linear" => import_striped(sn, ctx, path, extent_count)?,
            "snapshot" => {
                let (cow, merging) = if sn.find("merging_store").is_some() {
                    if sn.find("cow_store").is_some() {
                        return Err(err(path, ModelErrorKind::CowAndMergingStore));
                    }
                    (ctx.lv_ref(sn, "merging_store", path)?, true)
                } else {
                    (ctx.lv_ref(sn, "cow_store", path)?, false)
                };
                let origin = ctx.lv_ref(sn, "origin", path)?;
                if origin == cow {
                    return Err(err(path, ModelErrorKind::OriginIsOwnCow));
                }
                // A chunk size of 0 imports (lvm2 reads it); plan and export refuse it.
                let chunk_size = get_u32(sn, "chunk_size", path, ctx.w)?;
                SegmentKind::Snapshot {
                    chunk_size,
                    origin,
                    cow,
                    merging,
                }
            }
            "thin-pool" => import_thin_pool(sn, ctx, path)?,
            "thin" => {
                let device_id = get_u64w(sn, "device_id", path, ctx.w)?;
                if device_id > THIN_MAX_DEVICE_ID {
                    return Err(err(path, ModelErrorKind::ThinDeviceIdRange { device_id }));
                }
                SegmentKind::Thin {
                    pool: ctx.lv_ref(sn, "thin_pool", path)?,
                    transaction_id: get_u64w(sn, "transaction_id", path, ctx.w)?,
                    device_id,
                    origin: ctx.opt_lv_ref(sn, "origin", path)?,
                    merge: ctx.opt_lv_ref(sn, "merge", path)?,
                    external_origin: ctx.opt_lv_ref(sn, "external_origin", path)?,
                }
            }
            "zero" => SegmentKind::Zero,
            "error" => SegmentKind::Error,
            _ => {
                if !KNOWN_SEGTYPES.contains(&base.as_str()) {
                    ctx.w.push(
                        path,
                        WarningKind::UnknownSegmentType {
                            segtype: type_name.clone(),
                        },
                    );
                }
                other(sn, &base)
            }
        }
    };
    Ok(Segment {
        start_extent,
        extent_count,
        type_name,
        kind,
    })
}

/// Segment types lvm2 2.03 knows besides the ones mapped here.
const KNOWN_SEGTYPES: &[&str] = &[
    "mirror",
    "raid0",
    "raid0_meta",
    "raid1",
    "raid10",
    "raid10_near",
    "raid4",
    "raid5",
    "raid5_n",
    "raid5_la",
    "raid5_ra",
    "raid5_ls",
    "raid5_rs",
    "raid6",
    "raid6_zr",
    "raid6_nr",
    "raid6_nc",
    "raid6_n_6",
    "raid6_la_6",
    "raid6_ra_6",
    "raid6_ls_6",
    "raid6_rs_6",
    "cache",
    "cache-pool",
    "writecache",
    "integrity",
    "vdo",
    "vdo-pool",
    "free",
];

fn other(sn: &Node<'_, '_>, base: &str) -> SegmentKind {
    // Keep the LV names the segment mentions (images, logs, pools), best effort.
    let mut lv_refs = Vec::new();
    for n in sn.children() {
        if let Some(v) = n.value()
            && matches!(
                n.key(),
                "mirrors"
                    | "raids"
                    | "raid0_lvs"
                    | "mirror_log"
                    | "cache_pool"
                    | "origin"
                    | "pool"
                    | "metadata"
                    | "data"
                    | "writecache"
                    | "integrity_meta"
                    | "vdo_pool"
                    | "vdo_data"
            )
        {
            for s in v.items() {
                if let Scalar::Str(s) = s {
                    lv_refs.push(s.to_string());
                }
            }
        }
    }
    SegmentKind::Other {
        segtype: base.to_string(),
        lv_refs,
    }
}

fn import_striped(
    sn: &Node<'_, '_>,
    ctx: &Ctx<'_>,
    path: &str,
    extent_count: u64,
) -> Result<SegmentKind> {
    let stripe_count = get_u32(sn, "stripe_count", path, ctx.w)?;
    if stripe_count == 0 {
        return Err(err(path, ModelErrorKind::StripeCountZero));
    }
    // lvm2 reads stripe_size only with several stripes, and takes any value; the ones the
    // kernel refuses (0, not dividing the stripe length) are refused by plan and export.
    let stripe_size = if stripe_count > 1 {
        get_u32(sn, "stripe_size", path, ctx.w)?
    } else {
        0
    };
    if !extent_count.is_multiple_of(stripe_count) {
        return Err(err(
            path,
            ModelErrorKind::ExtentsNotDivisible {
                extent_count,
                stripe_count,
            },
        ));
    }
    let per_stripe = extent_count / stripe_count;
    let items = sn.get_list("stripes").ok_or_else(|| {
        err(
            path,
            ModelErrorKind::MissingKey {
                key: "stripes".into(),
            },
        )
    })?;
    if items.len() as u64 != stripe_count * 2 {
        return Err(err(
            path,
            ModelErrorKind::StripeItemCount {
                items: items.len(),
                stripe_count,
            },
        ));
    }
    let mut areas = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks_exact(2) {
        let (Some(Scalar::Str(name)), Some(Scalar::Int(off))) = (pair.first(), pair.get(1)) else {
            return Err(err(path, ModelErrorKind::StripePairs));
        };
        // `(uint32_t) cv->next->v.i`, as lvm2 reads the offset.
        let off = u64::from(*off as u32);
        if let Some(pv) = ctx.pvs.get(&**name) {
            let end = off
                .checked_add(per_stripe)
                .ok_or_else(|| err(path, ModelErrorKind::ExtentOverflow))?;
            if end > pv.pe_count {
                return Err(err(
                    path,
                    ModelErrorKind::BeyondPv {
                        pv: name.to_string(),
                        start: off,
                        end,
                        pe_count: pv.pe_count,
                    },
                ));
            }
            areas.push(Area::Pv {
                pv: name.to_string(),
                pe: off,
            });
        } else if ctx.lvs.contains_key(&**name) {
            areas.push(Area::Lv {
                lv: name.to_string(),
                le: off,
            });
        } else {
            return Err(err(
                path,
                ModelErrorKind::UnknownVolume {
                    name: name.to_string(),
                },
            ));
        }
    }
    Ok(SegmentKind::Striped { stripe_size, areas })
}

fn import_thin_pool(sn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<SegmentKind> {
    let metadata = ctx.lv_ref(sn, "metadata", path)?;
    let data = ctx.lv_ref(sn, "pool", path)?;
    let transaction_id = get_u64w(sn, "transaction_id", path, ctx.w)?;
    let chunk_size = get_u32(sn, "chunk_size", path, ctx.w)?;
    let discards = match opt_str(sn, "discards", path)?.as_deref() {
        None | Some("ignore") => Discards::Ignore,
        Some("nopassdown") => Discards::NoPassdown,
        Some("passdown") => Discards::Passdown,
        Some(o) => {
            return Err(err(
                path,
                ModelErrorKind::UnknownDiscards {
                    value: o.to_string(),
                },
            ));
        }
    };
    if !(THIN_MIN_CHUNK..=THIN_MAX_CHUNK).contains(&chunk_size) {
        return Err(err(path, ModelErrorKind::ThinChunkRange { chunk_size }));
    }
    let zero_new_blocks = opt_u32(sn, "zero_new_blocks", path, ctx.w)?.unwrap_or(0) != 0;
    let crop_metadata = opt_u32(sn, "crop_metadata", path, ctx.w)?.map(|c| c != 0);
    let mut messages = Vec::new();
    for m in sn.sections() {
        let mpath = format!("{path}/{}", m.key());
        if m.find("create").is_some() {
            messages.push(ThinMessage::Create(ctx.lv_ref(&m, "create", &mpath)?));
        } else if m.find("delete").is_some() {
            messages.push(ThinMessage::Delete(get_u32(&m, "delete", &mpath, ctx.w)?));
        } else {
            return Err(err(&mpath, ModelErrorKind::UnknownThinMessage));
        }
    }
    Ok(SegmentKind::ThinPool {
        metadata,
        data,
        transaction_id,
        chunk_size,
        discards,
        zero_new_blocks,
        messages,
        crop_metadata,
    })
}
