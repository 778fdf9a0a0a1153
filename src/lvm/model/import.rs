//! The importer: a parsed text to a [`VolumeGroup`], with the checks lvm2's
//! `import_vsn1.c` makes on the VG, its PVs and LVs, and the cross-LV checks.

use std::collections::{HashMap, HashSet};

use super::fields::{
    err, get_id, get_str, get_u32, get_u64w, lenient_str, lenient_u64, opt_str, read_flags, req,
    str_list, wrong_type,
};
use super::segment::import_segment;
use super::types::{
    AllocPolicy, Area, CONTENTS, LV_FLAGS, LogicalVolume, PV_FLAGS, PersistentReservation,
    PhysicalVolume, Segment, SegmentKind, VG_FLAGS, VolumeGroup, valid_name,
};
use super::warning::{Warn, WarningKind};
use crate::lvm::config::{Config, Node, ParseMode, Scalar};
use crate::lvm::error::{Error, ModelErrorKind, Result, UnmappableKind, ValueType};
use crate::lvm::id::LvmId;

impl VolumeGroup {
    /// Parse on-disk text ([`ParseMode::Disk`]) or a backup file ([`ParseMode::File`]) and
    /// import it.
    pub fn from_text(text: &[u8], mode: ParseMode) -> Result<VolumeGroup> {
        let cfg = crate::lvm::config::parse_with(text, mode)?;
        VolumeGroup::from_config(&cfg)
    }

    /// Import a parsed text: the VG is the first top-level section.
    pub fn from_config(cfg: &Config<'_>) -> Result<VolumeGroup> {
        let first = |key: &str| {
            cfg.find(key)
                .and_then(|n| n.value())
                .and_then(|v| v.items().first())
        };
        match first("contents") {
            Some(Scalar::Str(s)) if s == CONTENTS => {}
            _ => return Err(err("contents", ModelErrorKind::WrongContents)),
        }
        if !matches!(first("version"), Some(Scalar::Int(1))) {
            return Err(err("version", ModelErrorKind::WrongVersion));
        }
        let vgn = cfg
            .nodes()
            .find(|n| n.is_section())
            .ok_or_else(|| err("", ModelErrorKind::NoVgSection))?;
        Ok(import_vg(&vgn, None)?.0)
    }

    /// [`VolumeGroup::from_config`] of a text from which the sections of the LVs named in
    /// `elsewhere` were left out: those names count as defined (areas and snapshots may
    /// refer to them; a section of one of them is a duplicate), and the checks across LVs
    /// that need every LV only warn or are not made (an LV mapping onto itself is still an
    /// error). Also returns the names of the LV sections in the
    /// text, in order. This is the read-back of a print whose other LV sections were
    /// copied from a text read and imported before.
    pub(crate) fn from_config_partial(
        cfg: &Config<'_>,
        elsewhere: &[&str],
    ) -> Result<(VolumeGroup, Vec<String>)> {
        let vgn = cfg
            .nodes()
            .find(|n| n.is_section())
            .ok_or_else(|| err("", ModelErrorKind::NoVgSection))?;
        import_vg(&vgn, Some(elsewhere))
    }
}

/// The VG section `vgn`; with `elsewhere`, LVs of those names count as defined without a
/// section and the cross-LV checks are not made; then also the names of the LV sections
/// (empty for a whole import).
fn import_vg(vgn: &Node<'_, '_>, elsewhere: Option<&[&str]>) -> Result<(VolumeGroup, Vec<String>)> {
    let w = Warn::default();
    let name = vgn.key().to_string();
    if !valid_name(&name) {
        w.push(&name, WarningKind::InvalidName { name: name.clone() });
    }
    let path = name.as_str();
    let id = get_id(vgn, path)?;
    let seqno = get_u32(vgn, "seqno", path, &w)?;
    req(vgn, "status", path)?;
    let status = read_flags(vgn, "status", VG_FLAGS, true, path)?;
    let flags = read_flags(vgn, "flags", VG_FLAGS, false, path)?;
    let tags = str_list(vgn, "tags", path)?;
    let system_id = opt_str(vgn, "system_id", path)?.filter(|s| !s.is_empty());
    let lock_type = opt_str(vgn, "lock_type", path)?;
    let lock_args = lenient_str(vgn, "lock_args");
    let mut pr = PersistentReservation::default();
    if vgn.find("pr").is_some() {
        for s in str_list(vgn, "pr", path)? {
            match s.as_str() {
                "require" => pr.require = true,
                "autostart" => pr.autostart = true,
                "ptpl" => pr.ptpl = true,
                _ => {}
            }
        }
    }
    let extent_size = get_u32(vgn, "extent_size", path, &w)?;
    if extent_size == 0 {
        w.push(
            path,
            WarningKind::Unmappable(UnmappableKind::ExtentSizeZero),
        );
    }
    let max_lv = get_u32(vgn, "max_lv", path, &w)?;
    let max_pv = get_u32(vgn, "max_pv", path, &w)?;
    let allocation_policy = alloc_policy(vgn, path, AllocPolicy::Normal, &w);
    let profile = lenient_str(vgn, "profile");
    // `_read_uint32` with lvm2's default (0) when absent or not an integer.
    let metadata_copies = u64::from(lenient_u64(vgn, "metadata_copies") as u32);

    let pvs_node = req(vgn, "physical_volumes", path)?;
    let mut pvs: Vec<PhysicalVolume> = Vec::new();
    let mut pv_ids: HashMap<LvmId, String> = HashMap::new();
    let mut pv_handles: HashSet<&str> = HashSet::new();
    for pvn in pvs_node.sections() {
        let ppath = format!("{path}/physical_volumes/{}", pvn.key());
        let pv = import_pv(&pvn, extent_size, &ppath, &w)?;
        if !pv_handles.insert(pvn.key()) {
            w.push(&ppath, WarningKind::DuplicatePvHandle);
        }
        if let Some(first) = pv_ids.get(&pv.id) {
            w.push(
                &ppath,
                WarningKind::DuplicatePvId {
                    id: pv.id,
                    first: first.clone(),
                },
            );
        } else {
            pv_ids.insert(pv.id, pv.handle.clone());
        }
        pvs.push(pv);
    }

    // LV names first (areas may refer to LVs defined later), then segments.
    let mut lv_nodes = Vec::new();
    let mut lv_names: HashMap<&str, ()> = HashMap::new();
    for &name in elsewhere.unwrap_or_default() {
        lv_names.insert(name, ());
    }
    let mut pmspare: Option<&str> = None;
    if let Some(lvs_node) = vgn.find("logical_volumes") {
        for lvn in lvs_node.sections() {
            let lpath = format!("{path}/logical_volumes/{}", lvn.key());
            if !valid_name(lvn.key()) {
                w.push(
                    &lpath,
                    WarningKind::InvalidName {
                        name: lvn.key().to_string(),
                    },
                );
            }
            if lv_names.insert(lvn.key(), ()).is_some() {
                return Err(err(
                    path,
                    ModelErrorKind::DuplicateLv {
                        lv: lvn.key().to_string(),
                    },
                ));
            }
            // `_read_lvnames`: one hidden `*_pmspare` LV per VG.
            let visible = str_list(&lvn, "status", &lpath)?
                .iter()
                .any(|f| f == "VISIBLE");
            if !visible && lvn.key().contains("_pmspare") {
                if let Some(first) = pmspare {
                    return Err(Error::Model {
                        path: lpath,
                        kind: ModelErrorKind::SecondPoolMetadataSpare {
                            first: first.to_string(),
                        },
                    });
                }
                pmspare = Some(lvn.key());
            }
            lv_nodes.push(lvn);
        }
    }
    // Duplicate handles: the later section wins, as in lvm2's PV hash.
    let pv_index: HashMap<&str, &PhysicalVolume> =
        pvs.iter().map(|p| (p.handle.as_str(), p)).collect();
    let ctx = Ctx {
        pvs: &pv_index,
        lvs: &lv_names,
        w: &w,
    };
    // Only a partial import's caller needs them (a whole import's are its LVs' names).
    let names: Vec<String> = match elsewhere {
        Some(_) => lv_nodes.iter().map(|n| n.key().to_string()).collect(),
        None => Vec::new(),
    };
    let mut lvs = Vec::with_capacity(lv_nodes.len());
    for lvn in lv_nodes {
        lvs.push(import_lv(
            &lvn,
            &ctx,
            &format!("{path}/logical_volumes/{}", lvn.key()),
        )?);
    }
    let mut vg = VolumeGroup {
        name,
        id,
        seqno,
        status,
        flags,
        tags,
        system_id,
        lock_type,
        lock_args,
        pr,
        extent_size,
        max_lv,
        max_pv,
        allocation_policy,
        profile,
        metadata_copies,
        pvs,
        lvs,
        warnings: Vec::new(),
    };
    // A partial VG's links to LVs left out only warn (they read as missing).
    check_links(&vg, &w)?;
    if elsewhere.is_none() {
        check_pe_overlaps(&vg, &w);
        for (lv, kind) in vg.snapshot_faults() {
            w.push(
                &format!("{}/logical_volumes/{lv}", vg.name),
                WarningKind::Unmappable(kind),
            );
        }
    }
    vg.warnings = w.0.into_inner();
    Ok((vg, names))
}

fn import_pv(pvn: &Node<'_, '_>, extent_size: u64, path: &str, w: &Warn) -> Result<PhysicalVolume> {
    let id = get_id(pvn, path)?;
    req(pvn, "status", path)?;
    let status = read_flags(pvn, "status", PV_FLAGS, true, path)?;
    let flags = read_flags(pvn, "flags", PV_FLAGS, false, path)?;
    let dev_size = if pvn.find("dev_size").is_some() {
        Some(get_u64w(pvn, "dev_size", path, w)?)
    } else {
        None
    };
    let pe_start = get_u64w(pvn, "pe_start", path, w)?;
    let pe_count = get_u32(pvn, "pe_count", path, w)?;
    // lvm2 reads both as 0 when absent or not integers, and wants both or neither.
    let (ba_start, ba_size) = (lenient_u64(pvn, "ba_start"), lenient_u64(pvn, "ba_size"));
    if (ba_start == 0) != (ba_size == 0) {
        return Err(err(path, ModelErrorKind::IncompleteBootloaderArea));
    }
    // lvm2 does not check the PE area against dev_size on import (pvresize backups
    // record a dev_size short of it): a warning, not an error.
    match pe_count
        .checked_mul(extent_size)
        .and_then(|b| b.checked_add(pe_start))
    {
        None => w.push(path, WarningKind::PeAreaOverflows),
        Some(end) => {
            if let Some(ds) = dev_size
                && end > ds
            {
                w.push(
                    path,
                    WarningKind::DevSizeShort {
                        pe_end: end,
                        dev_size: ds,
                    },
                );
            }
        }
    }
    Ok(PhysicalVolume {
        handle: pvn.key().to_string(),
        id,
        device_hint: opt_str(pvn, "device", path)?,
        device_id_type: lenient_str(pvn, "device_id_type"),
        device_id: lenient_str(pvn, "device_id"),
        status,
        flags,
        tags: str_list(pvn, "tags", path)?,
        dev_size,
        pe_start,
        pe_count,
        ba_start,
        ba_size,
    })
}

pub(super) struct Ctx<'a> {
    pub(super) pvs: &'a HashMap<&'a str, &'a PhysicalVolume>,
    pub(super) lvs: &'a HashMap<&'a str, ()>,
    pub(super) w: &'a Warn,
}

impl Ctx<'_> {
    pub(super) fn lv_ref(&self, node: &Node<'_, '_>, key: &str, path: &str) -> Result<String> {
        let name = get_str(node, key, path)?;
        if !self.lvs.contains_key(name) {
            return Err(err(
                path,
                ModelErrorKind::UnknownLv {
                    key: key.to_string(),
                    name: name.to_string(),
                },
            ));
        }
        Ok(name.to_string())
    }

    pub(super) fn opt_lv_ref(
        &self,
        node: &Node<'_, '_>,
        key: &str,
        path: &str,
    ) -> Result<Option<String>> {
        if node.find(key).is_none() {
            return Ok(None);
        }
        self.lv_ref(node, key, path).map(Some)
    }
}

fn import_lv(lvn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<LogicalVolume> {
    let id = get_id(lvn, path)?;
    req(lvn, "status", path)?;
    let status = read_flags(lvn, "status", LV_FLAGS, true, path)?;
    let flags = read_flags(lvn, "flags", LV_FLAGS, false, path)?;
    let import_err = |kind| err(path, kind);
    // `_read_lvnames`: creation_time and creation_host go together.
    match (lvn.find("creation_time"), lvn.find("creation_host")) {
        (Some(_), None) => return Err(import_err(ModelErrorKind::CreationTimeWithoutHost)),
        (None, Some(_)) => return Err(import_err(ModelErrorKind::CreationHostWithoutTime)),
        _ => {}
    }
    let int = |k: &str| -> Result<Option<i64>> {
        match lvn.find(k) {
            None => Ok(None),
            Some(n) => match n.value().and_then(|v| v.items().first()) {
                Some(Scalar::Int(i)) => Ok(Some(*i)),
                _ => Err(wrong_type(path, k, ValueType::Integer)),
            },
        }
    };
    let minor = int("minor")?;
    if status.contains("FIXED_MINOR") && minor.is_none() {
        return Err(import_err(ModelErrorKind::FixedMinorWithoutMinor));
    }
    let mut segments = Vec::new();
    for sn in lvn.sections() {
        let spath = format!("{path}/{}", sn.key());
        segments.push(import_segment(&sn, ctx, &spath)?);
    }
    let segment_count = get_u32(lvn, "segment_count", path, ctx.w)?;
    if segments.len() as u64 != segment_count {
        return Err(import_err(ModelErrorKind::SegmentCountMismatch {
            declared: segment_count,
            found: segments.len(),
        }));
    }
    if segments.is_empty() {
        return Err(import_err(ModelErrorKind::NoSegments));
    }
    segments.sort_by_key(|s| s.start_extent);
    let mut next = 0u64;
    for s in &segments {
        if s.start_extent != next {
            return Err(import_err(ModelErrorKind::SegmentGap {
                start_extent: s.start_extent,
                expected: next,
            }));
        }
        next = s
            .start_extent
            .checked_add(s.extent_count)
            .ok_or_else(|| import_err(ModelErrorKind::ExtentCountOverflow))?;
    }
    // Empty `zero`/`error` segments map nothing: dropped once they passed the checks.
    segments.retain(|s| s.extent_count > 0);
    if segments.is_empty() {
        return Err(import_err(ModelErrorKind::NoSegments));
    }
    let is_snap = segments
        .iter()
        .any(|s| matches!(s.kind, SegmentKind::Snapshot { .. }));
    if is_snap && segments.len() != 1 {
        return Err(import_err(ModelErrorKind::SnapshotSegments));
    }
    Ok(LogicalVolume {
        name: lvn.key().to_string(),
        id,
        status,
        flags,
        tags: str_list(lvn, "tags", path)?,
        read_ahead: int("read_ahead")?,
        major: int("major")?,
        minor,
        creation_time: int("creation_time")?,
        creation_host: opt_str(lvn, "creation_host", path)?,
        lock_args: lenient_str(lvn, "lock_args"),
        allocation_policy: alloc_policy(lvn, path, AllocPolicy::Inherit, ctx.w),
        profile: lenient_str(lvn, "profile"),
        segments: merge_segments(segments),
    })
}

/// `allocation_policy` as lvm2 reads it: a name it does not recognise is ignored with a
/// warning (and `fallback` used).
fn alloc_policy(node: &Node<'_, '_>, path: &str, fallback: AllocPolicy, w: &Warn) -> AllocPolicy {
    match lenient_str(node, "allocation_policy") {
        None => fallback,
        Some(s) => AllocPolicy::from_lvm(&s).unwrap_or_else(|| {
            w.push(path, WarningKind::UnknownAllocationPolicy { value: s });
            fallback
        }),
    }
}

/// `lv_merge_segments`: join adjacent striped segments whose every area continues where
/// the previous one ended.
fn merge_segments(segs: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs {
        if let Some(prev) = out.last_mut()
            && let (
                SegmentKind::Striped {
                    stripe_size: ps,
                    areas: pa,
                },
                SegmentKind::Striped {
                    stripe_size: ns,
                    areas: na,
                },
            ) = (&prev.kind, &s.kind)
            && prev.type_name == s.type_name
            && ps == ns
            && pa.len() == na.len()
            && !pa.is_empty()
        {
            let per = prev.extent_count / pa.len() as u64;
            let contiguous = pa.iter().zip(na).all(|(a, b)| match (a, b) {
                (Area::Pv { pv: p1, pe: e1 }, Area::Pv { pv: p2, pe: e2 }) => {
                    p1 == p2 && e1 + per == *e2
                }
                (Area::Lv { lv: l1, le: e1 }, Area::Lv { lv: l2, le: e2 }) => {
                    l1 == l2 && e1 + per == *e2
                }
                _ => false,
            });
            if contiguous {
                prev.extent_count += s.extent_count;
                continue;
            }
        }
        out.push(s);
    }
    out
}

/// Most [`WarningKind::PeOverlap`] warnings reported per VG.
const MAX_OVERLAP_WARNINGS: usize = 32;

/// Physical extents allocated to two LVs: accepted (lvm2 only checks that on write),
/// reported once per PV and pair, at most [`MAX_OVERLAP_WARNINGS`] times.
fn check_pe_overlaps(vg: &VolumeGroup, w: &Warn) {
    let mut count = 0usize;
    let mut by_pv: HashMap<&str, Vec<(u64, u64, &str)>> = HashMap::new();
    for lv in &vg.lvs {
        for s in &lv.segments {
            if let SegmentKind::Striped { areas, .. } = &s.kind {
                let per = s.extent_count / areas.len().max(1) as u64;
                for a in areas {
                    if let Area::Pv { pv, pe } = a {
                        by_pv.entry(pv.as_str()).or_default().push((
                            *pe,
                            pe.saturating_add(per),
                            lv.name.as_str(),
                        ));
                    }
                }
            }
        }
    }
    let mut handles: Vec<&str> = by_pv.keys().copied().collect();
    handles.sort_unstable();
    for h in handles {
        let Some(ranges) = by_pv.get_mut(h) else {
            continue;
        };
        ranges.sort_unstable();
        let mut reported: HashSet<(&str, &str)> = HashSet::new();
        let mut reach: Option<(u64, &str)> = None; // furthest end so far, and its LV
        for &(start, end, lv) in ranges.iter() {
            if let Some((far, other)) = reach
                && start < far
                && other != lv
                && count < MAX_OVERLAP_WARNINGS
                && reported.insert((other, lv))
            {
                count += 1;
                w.push(
                    &format!("{}/physical_volumes/{h}", vg.name),
                    WarningKind::PeOverlap {
                        start,
                        end: end.min(far),
                        first: other.to_string(),
                        second: lv.to_string(),
                    },
                );
            }
            if reach.is_none_or(|(far, _)| end > far) {
                reach = Some((end, lv));
            }
        }
    }
}

/// Cross-LV checks once every LV is known: no LV used as its own area (lvm2 refuses it);
/// LV areas past their LV's end and striped segments the kernel would refuse are
/// accepted, as lvm2 accepts them, with a warning (plan and export refuse those LVs).
fn check_links(vg: &VolumeGroup, w: &Warn) -> Result<()> {
    let sizes: HashMap<&str, u64> = vg
        .lvs
        .iter()
        .map(|l| (l.name.as_str(), l.le_count()))
        .collect();
    for lv in &vg.lvs {
        let path = format!("{}/logical_volumes/{}", vg.name, lv.name);
        for s in &lv.segments {
            if let SegmentKind::Striped { areas, .. } = &s.kind
                && areas
                    .iter()
                    .any(|a| matches!(a, Area::Lv { lv: name, .. } if *name == lv.name))
            {
                return Err(err(&path, ModelErrorKind::SelfMapping));
            }
        }
        if let Some(kind) = vg.lv_fault_with(lv, &|n| sizes.get(n).copied()) {
            w.push(&path, WarningKind::Unmappable(kind));
        }
    }
    Ok(())
}
