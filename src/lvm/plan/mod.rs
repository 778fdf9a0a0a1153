//! The device-mapper devices lvm2 would create to activate LVs: names, uuids, read-only
//! flags and tables, in creation order (lower layers first).
//!
//! This follows lvm2's `_add_new_lv_to_dtree` (`lib/activate/dev_manager.c`), the segment
//! types' `add_target_line` and libdevmapper's table formatting (`libdm-deptree.c`):
//!
//! * names: VG and LV with every `-` doubled, joined by `-`, plus `-layer`
//!   (`my-vg/lv-1` → `my--vg-lv--1`, `vg0-root-real`);
//! * uuids: `LVM-` + VG id + LV id (no dashes), plus `-layer`; hidden sub-LVs get lvm2's
//!   implicit suffixes (`-pool`, `-tdata`, `-tmeta`);
//! * an origin with snapshots becomes `-real` (its own segments) under a `snapshot-origin`
//!   (or `snapshot-merge` while a merge is pending) device, and each snapshot a `-cow`
//!   device under a `snapshot` device named after the COW LV (an `error` table while it
//!   is being merged);
//! * a thin pool in use becomes `-tpool` (the `thin-pool` table) under a linear `vg-pool`
//!   device, its `_tmeta` and `_tdata` LVs below; a thin LV maps onto `-tpool`;
//! * an LV without `WRITE` is read-only (its `-cow` layer stays writable), and so is the
//!   linear device over a used thin pool.
//!
//! PVs appear in the tables as whatever string the caller maps them to (a path or
//! `major:minor`), dm devices as `/dev/mapper/<name>`.
//!
//! ```
//! use devmapper::lvm::plan::{dm_name, dm_uuid};
//! assert_eq!(dm_name("my-vg", "lv-1", None), "my--vg-lv--1");
//! assert_eq!(dm_name("vg0", "root", Some("real")), "vg0-root-real");
//! let vg: devmapper::lvm::LvmId = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse().unwrap();
//! let lv: devmapper::lvm::LvmId = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlK".parse().unwrap();
//! assert_eq!(
//!     dm_uuid(&vg, &lv, Some("real")),
//!     "LVM-kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeEJ4A3DdvHyrNktBXtnjfObINf5AjxvUlK-real"
//! );
//! ```
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::error::{Error, Result, UnmappableKind};
use super::id::LvmId;
use super::model::{
    Area, Discards, LogicalVolume, PhysicalVolume, SegmentKind, SnapshotLink, VolumeGroup,
    valid_name,
};

/// Deepest stack of layers followed (LV on LV, snapshot, pool, ...).
const MAX_DEPTH: usize = 64;

/// Knobs that change the tables lvm2 loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Activate everything read-only (`lvchange -ay -pr` / `activation/read_only_volume_list`).
    pub read_only: bool,
    /// `activation/thin_pool_autoextend_threshold` (default 100: low water mark 0).
    pub thin_pool_autoextend_threshold: u32,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            read_only: false,
            thin_pool_autoextend_threshold: 100,
        }
    }
}

/// One table line: `start length target params`, in sectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLine {
    /// First sector.
    pub start: u64,
    /// Number of sectors.
    pub length: u64,
    /// Target type (`linear`, `striped`, `snapshot`, ...).
    pub target: String,
    /// Parameters, exactly as `dmsetup table` prints them (device references aside).
    pub params: String,
}

/// One dm device to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedDevice {
    /// dm name.
    pub name: String,
    /// dm uuid.
    pub uuid: String,
    /// Load the table read-only.
    pub read_only: bool,
    /// The LV this device belongs to.
    pub lv: String,
    /// The layer (`real`, `cow`, `tpool`), `None` for the LV's own device.
    pub layer: Option<String>,
    /// Persistent major:minor requested by the metadata (top layer only).
    pub major_minor: Option<(u32, u32)>,
    /// The table.
    pub table: Vec<TableLine>,
}

/// An LV the plan does not activate, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedLv {
    /// LV name.
    pub lv: String,
    /// Why.
    pub reason: String,
    /// The class of the reason.
    pub kind: SkipKind,
}

impl SkippedLv {
    /// lvm2 would activate this LV (or refuse it with an error): the plan is incomplete.
    /// Only [`SkipKind::ActivationSkip`] is a skip that `vgchange -ay` makes too.
    pub fn is_error(&self) -> bool {
        self.kind != SkipKind::ActivationSkip
    }
}

/// Why an LV is in [`Plan::skipped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipKind {
    /// Flagged `ACTIVATION_SKIP`: `vgchange -ay` skips it too.
    ActivationSkip,
    /// A PV it needs was not given.
    PvUnavailable,
    /// lvm2 would map it, this crate cannot (a segment type it does not map).
    Unsupported,
    /// The metadata describes something lvm2 would not activate (see
    /// [`UnmappableKind`]), or refers to what is not there.
    Invalid,
}

impl SkipKind {
    fn of(e: &Error) -> SkipKind {
        match e {
            Error::Unmappable {
                kind: UnmappableKind::PvUnavailable { .. },
                ..
            } => SkipKind::PvUnavailable,
            Error::Unmappable {
                kind: UnmappableKind::Unsupported { .. },
                ..
            } => SkipKind::Unsupported,
            _ => SkipKind::Invalid,
        }
    }
}

/// The devices to create for a VG (or one LV), in creation order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    /// Devices, lower layers first; deactivate in reverse.
    pub devices: Vec<PlannedDevice>,
    /// LVs left out, with the reason.
    pub skipped: Vec<SkippedLv>,
}

/// `dm_build_dm_name`: every `-` in VG and LV doubled, joined by `-`, plus `-layer`
/// (a layer starting with `_` is appended as is).
pub fn dm_name(vg: &str, lv: &str, layer: Option<&str>) -> String {
    let mut out = String::with_capacity(vg.len() + lv.len() + 8);
    let dbl = |out: &mut String, s: &str| {
        for c in s.chars() {
            out.push(c);
            if c == '-' {
                out.push('-');
            }
        }
    };
    dbl(&mut out, vg);
    out.push('-');
    dbl(&mut out, lv);
    if let Some(l) = layer {
        if !l.starts_with('_') {
            out.push('-');
        }
        dbl(&mut out, l);
    }
    out
}

/// `build_dm_uuid`: `LVM-` + VG id + LV id, plus `-layer`.
pub fn dm_uuid(vg: &LvmId, lv: &LvmId, layer: Option<&str>) -> String {
    let mut s = format!("LVM-{}{}", vg.as_str(), lv.as_str());
    if let Some(l) = layer {
        s.push('-');
        s.push_str(l);
    }
    s
}

/// Reasons lvm2 would refuse to activate anything in this VG: exported, foreign system
/// id, a lock manager, PVs flagged missing. `local_system_id` is this host's
/// `system_id` (`None`: no system id set, which only accepts VGs without one).
pub fn activation_blockers(vg: &VolumeGroup, local_system_id: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if vg.status.contains("EXPORTED") {
        out.push(format!("VG {} is exported (vgimport it first)", vg.name));
    }
    if let Some(sid) = &vg.system_id
        && Some(sid.as_str()) != local_system_id
    {
        out.push(format!("VG {} belongs to system id {sid:?}", vg.name));
    }
    if let Some(lt) = &vg.lock_type
        && lt != "none"
    {
        out.push(format!(
            "VG {} uses lock type {lt:?} (needs lvmlockd)",
            vg.name
        ));
    }
    for pv in &vg.pvs {
        if pv.is_missing() {
            out.push(format!("PV {} ({}) is marked MISSING", pv.handle, pv.id));
        }
    }
    out
}

/// Plan every LV `vgchange -ay` would activate: visible LVs in metadata order (COW LVs come
/// with their origin, hidden LVs as dependencies), skipping `ACTIVATION_SKIP` LVs and
/// LVs that cannot be mapped. Every LV left out is listed in [`Plan::skipped`] with its
/// [`SkipKind`]: nothing is left out silently, and a snapshot whose relation lvm2 would
/// not activate ([`VolumeGroup::snapshot_faults`]) is listed, its origin planned without it.
///
/// `pv_device` maps a PV to the device string used in tables; `None` means the PV is not
/// available, and LVs needing it are skipped.
pub fn plan_vg(
    vg: &VolumeGroup,
    pv_device: &dyn Fn(&PhysicalVolume) -> Option<String>,
    opts: &PlanOptions,
) -> Result<Plan> {
    let mut b = Builder::new(vg, pv_device, opts);
    let mut skipped = Vec::new();
    for lv in &vg.lvs {
        if let Some(kind) = b.faults.get(lv.name.as_str()) {
            skipped.push(SkippedLv {
                lv: lv.name.clone(),
                reason: kind.to_string(),
                kind: SkipKind::Invalid,
            });
            continue;
        }
        if !b.ix.is_visible(vg, lv) || b.ix.cow.contains_key(lv.name.as_str()) {
            continue;
        }
        if lv.flags.contains("ACTIVATION_SKIP") || lv.status.contains("ACTIVATION_SKIP") {
            skipped.push(SkippedLv {
                lv: lv.name.clone(),
                reason: "flagged to skip activation (ACTIVATION_SKIP)".into(),
                kind: SkipKind::ActivationSkip,
            });
            continue;
        }
        let mark = b.devices.len();
        if let Err(e) = b.add(lv, None) {
            for d in b.devices.drain(mark..) {
                b.seen.remove(&d.uuid);
            }
            let kind = SkipKind::of(&e);
            let reason = match e {
                Error::Plan { reason, .. } => reason,
                Error::Unmappable { lv: l, kind } if l == format!("{}/{}", vg.name, lv.name) => {
                    kind.to_string()
                }
                other => other.to_string(),
            };
            let cows: Vec<SkippedLv> =
                b.ix.snaps
                    .get(lv.name.as_str())
                    .into_iter()
                    .flatten()
                    .map(|link| SkippedLv {
                        lv: link.cow.to_string(),
                        reason: format!("its origin {} is not planned: {reason}", lv.name),
                        kind,
                    })
                    .collect();
            skipped.push(SkippedLv {
                lv: lv.name.clone(),
                kind,
                reason,
            });
            // Its snapshots come with it: they are left out too, and say so.
            skipped.extend(cows);
        }
    }
    Ok(Plan {
        devices: b.devices,
        skipped,
    })
}

/// Plan one LV and what it needs (activating a snapshot activates its origin, as lvm2 does).
pub fn plan_lv(
    vg: &VolumeGroup,
    lv_name: &str,
    pv_device: &dyn Fn(&PhysicalVolume) -> Option<String>,
    opts: &PlanOptions,
) -> Result<Plan> {
    let lv = vg.lv(lv_name).ok_or_else(|| Error::Plan {
        lv: format!("{}/{lv_name}", vg.name),
        reason: "no such LV".into(),
    })?;
    let mut b = Builder::new(vg, pv_device, opts);
    if let Some(kind) = b.faults.get(lv.name.as_str()) {
        return Err(b.unmappable(lv, kind.clone()));
    }
    let lv = match b.ix.cow.get(lv.name.as_str()).and_then(|l| vg.lv(l.origin)) {
        Some(origin) => origin,
        None => lv,
    };
    b.add(lv, None)?;
    Ok(Plan {
        devices: b.devices,
        skipped: Vec::new(),
    })
}

/// Lookups the plan needs per LV, built once (the model's own lookups scan all LVs).
struct Index<'a> {
    lvs: HashMap<&'a str, &'a LogicalVolume>,
    /// PV handle -> PV (the later of two sections with one name, as `VolumeGroup::pv`).
    pvs: HashMap<&'a str, &'a PhysicalVolume>,
    cow: HashMap<&'a str, SnapshotLink<'a>>,
    snaps: HashMap<&'a str, Vec<SnapshotLink<'a>>>,
    pool_parts: HashMap<&'a str, &'static str>,
    thin_merge_targets: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    /// The lookups, leaving out snapshot links whose COW LV is in `faults`.
    fn new(vg: &'a VolumeGroup, faults: &HashMap<&str, UnmappableKind>) -> Index<'a> {
        let mut ix = Index {
            lvs: vg.lvs.iter().map(|l| (l.name.as_str(), l)).collect(),
            pvs: vg.pvs.iter().map(|p| (p.handle.as_str(), p)).collect(),
            cow: HashMap::new(),
            snaps: HashMap::new(),
            pool_parts: HashMap::new(),
            thin_merge_targets: HashSet::new(),
        };
        for link in vg.snapshot_links() {
            if faults.contains_key(link.cow) {
                continue;
            }
            ix.cow.insert(link.cow, link);
            ix.snaps.entry(link.origin).or_default().push(link);
        }
        for lv in &vg.lvs {
            match lv.first_kind() {
                Some(SegmentKind::ThinPool { metadata, data, .. }) => {
                    ix.pool_parts.entry(data.as_str()).or_insert("tdata");
                    ix.pool_parts.entry(metadata.as_str()).or_insert("tmeta");
                }
                Some(SegmentKind::Thin { merge: Some(m), .. }) => {
                    ix.thin_merge_targets.insert(m.as_str());
                }
                _ => {}
            }
        }
        ix
    }

    /// `lv_is_visible`, with the index.
    fn is_visible(&self, vg: &VolumeGroup, lv: &LogicalVolume) -> bool {
        if vg.is_snapshot_internal(lv) {
            return false;
        }
        if let Some(link) = self.cow.get(lv.name.as_str()) {
            return self
                .lvs
                .get(link.origin)
                .is_some_and(|o| o.status.contains("VISIBLE"));
        }
        lv.status.contains("VISIBLE")
    }
}

struct Builder<'a> {
    vg: &'a VolumeGroup,
    ix: Index<'a>,
    /// Snapshots (by COW LV) that are not activated, and why.
    faults: HashMap<&'a str, UnmappableKind>,
    pv_device: &'a dyn Fn(&PhysicalVolume) -> Option<String>,
    opts: &'a PlanOptions,
    devices: Vec<PlannedDevice>,
    seen: HashSet<String>,
    /// LVs being expanded, to stop reference cycles in hostile metadata.
    stack: Vec<String>,
}

fn mapper(name: &str) -> String {
    format!("/dev/mapper/{name}")
}

impl<'a> Builder<'a> {
    fn new(
        vg: &'a VolumeGroup,
        pv_device: &'a dyn Fn(&PhysicalVolume) -> Option<String>,
        opts: &'a PlanOptions,
    ) -> Self {
        let faults: HashMap<&'a str, UnmappableKind> = vg.snapshot_faults().into_iter().collect();
        Builder {
            vg,
            ix: Index::new(vg, &faults),
            faults,
            pv_device,
            opts,
            devices: Vec::new(),
            seen: HashSet::new(),
            stack: Vec::new(),
        }
    }

    fn fail(&self, lv: &LogicalVolume, reason: impl Into<String>) -> Error {
        Error::Plan {
            lv: format!("{}/{}", self.vg.name, lv.name),
            reason: reason.into(),
        }
    }

    fn unmappable(&self, lv: &LogicalVolume, kind: UnmappableKind) -> Error {
        Error::Unmappable {
            lv: format!("{}/{}", self.vg.name, lv.name),
            kind,
        }
    }

    fn lv(&self, from: &LogicalVolume, name: &str) -> Result<&'a LogicalVolume> {
        self.ix
            .lvs
            .get(name)
            .copied()
            .ok_or_else(|| self.fail(from, format!("refers to unknown LV {name}")))
    }

    fn is_thin_pool(lv: &LogicalVolume) -> Option<u64> {
        match lv.first_kind() {
            Some(SegmentKind::ThinPool { transaction_id, .. }) => Some(*transaction_id),
            _ => None,
        }
    }

    /// lvm2's implicit uuid suffix for hidden sub-LVs (`build_dm_uuid` without a layer).
    fn implicit_suffix(&self, lv: &LogicalVolume) -> Option<&'static str> {
        if Self::is_thin_pool(lv).is_some() {
            return Some("pool");
        }
        self.ix.pool_parts.get(lv.name.as_str()).copied()
    }

    fn device_name(&self, lv: &LogicalVolume) -> String {
        mapper(&dm_name(&self.vg.name, &lv.name, None))
    }

    /// `_add_new_lv_to_dtree`.
    fn add(&mut self, lv: &'a LogicalVolume, layer: Option<&str>) -> Result<()> {
        let name = dm_name(&self.vg.name, &lv.name, layer);
        // An unused thin pool (transaction 0) still gets the `-tpool` uuid suffix.
        let mut layer = layer.map(str::to_string);
        if layer.is_none() && Self::is_thin_pool(lv) == Some(0) {
            layer = Some("tpool".into());
        }
        let uuid_layer = layer
            .clone()
            .or_else(|| self.implicit_suffix(lv).map(str::to_string));
        let uuid = dm_uuid(&self.vg.id, &lv.id, uuid_layer.as_deref());
        if self.seen.contains(&uuid) {
            return Ok(());
        }
        let key = format!("{}-{}", lv.name, layer.as_deref().unwrap_or(""));
        if self.stack.contains(&key) {
            return Err(self.unmappable(
                lv,
                UnmappableKind::ReferenceCycle {
                    via: lv.name.clone(),
                },
            ));
        }
        if self.stack.len() > MAX_DEPTH {
            return Err(self.unmappable(lv, UnmappableKind::TooDeep { limit: MAX_DEPTH }));
        }
        // What lvm2 imports but the kernel (or lvm2's activation) would refuse.
        for name in [&self.vg.name, &lv.name] {
            if !valid_name(name) {
                return Err(self.unmappable(
                    lv,
                    UnmappableKind::InvalidName {
                        name: name.to_string(),
                    },
                ));
            }
        }
        if self.vg.extent_size == 0 {
            return Err(self.unmappable(lv, UnmappableKind::ExtentSizeZero));
        }
        let ix = &self.ix;
        if let Some(kind) = self
            .vg
            .lv_fault_with(lv, &|n| ix.lvs.get(n).map(|l| l.le_count()))
        {
            return Err(self.unmappable(lv, kind));
        }
        self.stack.push(key);
        let r = self.add_inner(lv, layer, name, uuid);
        self.stack.pop();
        r
    }

    fn add_inner(
        &mut self,
        lv: &'a LogicalVolume,
        layer: Option<String>,
        name: String,
        uuid: String,
    ) -> Result<()> {
        let vg = self.vg;
        let es = vg.extent_size;
        let size = vg.lv_size(lv);
        let is_cow_lv = self.ix.cow.contains_key(lv.name.as_str());
        let used_pool_top = layer.is_none() && Self::is_thin_pool(lv).is_some_and(|t| t != 0);
        let read_only = if layer.is_some() && is_cow_lv {
            false // the COW store stays writable
        } else {
            // The linear device lvm2 puts over a used pool's -tpool is loaded read-only
            // (observed with lvm2 2.03.16: `dmsetup info` shows `vg-pool` as L--r).
            used_pool_top || self.opts.read_only || !lv.is_writable()
        };
        let mut table = Vec::new();
        let mut after: Vec<&'a LogicalVolume> = Vec::new();
        let top = layer.is_none();
        let snaps: Vec<SnapshotLink<'a>> = self
            .ix
            .snaps
            .get(lv.name.as_str())
            .cloned()
            .unwrap_or_default();

        if top && !snaps.is_empty() {
            // Snapshot origin: -real holds the segments.
            self.add(lv, Some("real"))?;
            let real = mapper(&dm_name(&vg.name, &lv.name, Some("real")));
            if let Some(m) = snaps.iter().find(|s| s.merging) {
                let cow_lv = self.lv(lv, m.cow)?;
                self.add(cow_lv, Some("cow"))?;
                let cow = mapper(&dm_name(&vg.name, m.cow, Some("cow")));
                table.push(line(
                    0,
                    size,
                    "snapshot-merge",
                    format!("{real} {cow} P {}", m.chunk_size),
                ));
            } else {
                table.push(line(0, size, "snapshot-origin", real));
            }
            for s in &snaps {
                after.push(self.lv(lv, s.cow)?);
            }
        } else if top && let Some(link) = self.ix.cow.get(lv.name.as_str()).copied() {
            let origin = self.lv(lv, link.origin)?;
            self.add(origin, Some("real"))?;
            self.add(lv, Some("cow"))?;
            let len = link.origin_extents.saturating_mul(es);
            if link.merging {
                table.push(line(0, len, "error", String::new()));
            } else {
                let real = mapper(&dm_name(&vg.name, link.origin, Some("real")));
                let cow = mapper(&dm_name(&vg.name, &lv.name, Some("cow")));
                table.push(line(
                    0,
                    len,
                    "snapshot",
                    format!("{real} {cow} P {}", link.chunk_size),
                ));
            }
        } else if top && Self::is_thin_pool(lv).is_some_and(|t| t != 0) {
            // A pool in use: the thin-pool target lives in -tpool, a linear device on top.
            self.add(lv, Some("tpool"))?;
            let tpool = mapper(&dm_name(&vg.name, &lv.name, Some("tpool")));
            table.push(line(0, size, "linear", format!("{tpool} 0")));
        } else {
            for seg in &lv.segments {
                let start = seg.start_extent.saturating_mul(es);
                let len = seg.extent_count.saturating_mul(es);
                match &seg.kind {
                    SegmentKind::Striped { stripe_size, areas } => {
                        let mut refs = Vec::with_capacity(areas.len());
                        for a in areas {
                            refs.push(self.area(lv, a)?);
                        }
                        if refs.len() == 1 {
                            table.push(line(start, len, "linear", refs.concat()));
                        } else {
                            let mut p = format!("{} {stripe_size}", refs.len());
                            for r in refs {
                                p.push(' ');
                                p.push_str(&r);
                            }
                            table.push(line(start, len, "striped", p));
                        }
                    }
                    SegmentKind::ThinPool {
                        metadata,
                        data,
                        chunk_size,
                        discards,
                        zero_new_blocks,
                        ..
                    } => {
                        let meta_lv = self.lv(lv, metadata)?;
                        let data_lv = self.lv(lv, data)?;
                        self.add(meta_lv, None)?;
                        self.add(data_lv, None)?;
                        let threshold = self.opts.thin_pool_autoextend_threshold.max(50);
                        let lwm = if threshold < 100 {
                            len / (*chunk_size).max(1) * u64::from(100 - threshold) / 100
                        } else {
                            0
                        };
                        let mut features = Vec::new();
                        if !zero_new_blocks {
                            features.push("skip_block_zeroing");
                        }
                        match discards {
                            Discards::Ignore => features.push("ignore_discard"),
                            Discards::NoPassdown => features.push("no_discard_passdown"),
                            Discards::Passdown => {}
                        }
                        if lv.flags.contains("ERROR_WHEN_FULL") {
                            features.push("error_if_no_space");
                        }
                        let mut p = format!(
                            "{} {} {chunk_size} {lwm} {}",
                            self.device_name(meta_lv),
                            self.device_name(data_lv),
                            features.len()
                        );
                        for f in features {
                            p.push(' ');
                            p.push_str(f);
                        }
                        table.push(line(start, len, "thin-pool", p));
                    }
                    SegmentKind::Thin {
                        pool,
                        device_id,
                        merge,
                        external_origin,
                        ..
                    } => {
                        if external_origin.is_some() {
                            return Err(self.unmappable(
                                lv,
                                UnmappableKind::Unsupported {
                                    what: "a thin LV with an external origin".into(),
                                },
                            ));
                        }
                        if merge.is_some() || self.ix.thin_merge_targets.contains(lv.name.as_str())
                        {
                            return Err(self.unmappable(
                                lv,
                                UnmappableKind::Unsupported {
                                    what: "a thin snapshot merge".into(),
                                },
                            ));
                        }
                        let pool_lv = self.lv(lv, pool)?;
                        if Self::is_thin_pool(pool_lv).is_none() {
                            return Err(self.fail(lv, format!("{pool} is not a thin pool")));
                        }
                        self.add(pool_lv, Some("tpool"))?;
                        let tpool = mapper(&dm_name(&vg.name, pool, Some("tpool")));
                        table.push(line(start, len, "thin", format!("{tpool} {device_id}")));
                    }
                    SegmentKind::Zero => table.push(line(start, len, "zero", String::new())),
                    SegmentKind::Error => table.push(line(start, len, "error", String::new())),
                    SegmentKind::Snapshot { .. } => {
                        return Err(
                            self.fail(lv, "an internal snapshot LV is not activated by itself")
                        );
                    }
                    SegmentKind::Other { segtype, .. } => {
                        return Err(self.unmappable(
                            lv,
                            UnmappableKind::Unsupported {
                                what: format!("segment type {segtype}"),
                            },
                        ));
                    }
                }
            }
        }
        let major_minor = if top && lv.status.contains("FIXED_MINOR") {
            match (lv.major, lv.minor) {
                (Some(ma), Some(mi)) => u32::try_from(ma).ok().zip(u32::try_from(mi).ok()),
                _ => None,
            }
        } else {
            None
        };
        self.seen.insert(uuid.clone());
        self.devices.push(PlannedDevice {
            name,
            uuid,
            read_only,
            lv: lv.name.clone(),
            layer,
            major_minor,
            table,
        });
        for cow in after {
            self.add(cow, None)?;
        }
        Ok(())
    }

    /// `add_areas_line` for one area: `<dev> <offset>`.
    fn area(&mut self, lv: &'a LogicalVolume, a: &Area) -> Result<String> {
        let es = self.vg.extent_size;
        match a {
            Area::Pv { pv, pe } => {
                let p = self
                    .ix
                    .pvs
                    .get(pv.as_str())
                    .copied()
                    .ok_or_else(|| self.fail(lv, format!("unknown PV {pv}")))?;
                let dev = (self.pv_device)(p).ok_or_else(|| {
                    self.unmappable(
                        lv,
                        UnmappableKind::PvUnavailable {
                            pv: pv.clone(),
                            id: p.id.to_string(),
                        },
                    )
                })?;
                let off = pe
                    .checked_mul(es)
                    .and_then(|o| o.checked_add(p.pe_start))
                    .ok_or_else(|| self.fail(lv, "offset overflows"))?;
                Ok(format!("{dev} {off}"))
            }
            Area::Lv { lv: name, le } => {
                let sub = self.lv(lv, name)?;
                self.add(sub, None)?;
                let mut s = self.device_name(sub);
                let _ = write!(s, " {}", le.saturating_mul(es));
                Ok(s)
            }
        }
    }
}

fn line(start: u64, length: u64, target: &str, params: String) -> TableLine {
    TableLine {
        start,
        length,
        target: target.to_string(),
        params,
    }
}

impl Plan {
    /// The plan as `dmsetup table`-style text: `name: start length target params` lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for d in &self.devices {
            for l in &d.table {
                let _ = writeln!(
                    out,
                    "{}: {} {} {} {}",
                    d.name, l.start, l.length, l.target, l.params
                );
            }
        }
        out
    }
}
