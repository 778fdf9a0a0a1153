//! The planner proper: LVs expanded into typed dm tables, lower layers first
//! (`_add_new_lv_to_dtree` and the segment types' `add_target_line`).
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};

use super::names::{dm_name, dm_uuid, mapper_ref};
use super::{PlanOptions, PlannedDevice, PvDevice};
use crate::lvm::error::{Error, PlanErrorKind, Result, UnmappableKind};
use crate::lvm::index::VgIndex;
use crate::lvm::model::{Area, Discards, LogicalVolume, SegmentKind, VolumeGroup, valid_name};
use crate::table::{Table, TableLine};
use crate::targets::{
    DevRef, ErrorTarget, Linear, Snapshot, SnapshotOrigin, Stripe, Striped, Target, Thin, ThinPool,
    ThinPoolFeatures, Zero,
};
use crate::units::Sectors;
use crate::{DevNum, lvm::model::SnapshotLink};
use crate::{DmName, DmUuid};

/// Deepest stack of layers followed (LV on LV, snapshot, pool, ...).
const MAX_DEPTH: usize = 64;

/// What the plan looks up per LV, built once.
struct Index<'a> {
    vg: VgIndex<'a>,
    /// `_tdata` / `_tmeta` LVs of thin pools, with their implicit uuid suffix.
    pool_parts: HashMap<&'a str, &'static str>,
    /// Thin LVs a pending thin merge goes into.
    thin_merge_targets: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    /// The lookups, leaving out snapshot links whose COW LV is in `faults`.
    fn new(vg: &'a VolumeGroup, faults: &HashMap<&str, UnmappableKind>) -> Index<'a> {
        let mut ix = Index {
            vg: VgIndex::without(vg, &|cow| faults.contains_key(cow)),
            pool_parts: HashMap::new(),
            thin_merge_targets: HashSet::new(),
        };
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
}

/// The LV is flagged `ACTIVATION_SKIP` (in `flags` or, in old metadata, `status`).
pub(crate) fn skips_activation(lv: &LogicalVolume) -> bool {
    lv.flags.contains("ACTIVATION_SKIP") || lv.status.contains("ACTIVATION_SKIP")
}

pub(super) struct Builder<'a> {
    vg: &'a VolumeGroup,
    ix: Index<'a>,
    /// Snapshots (by COW LV) that are not activated, and why.
    pub(super) faults: HashMap<&'a str, UnmappableKind>,
    pv_device: &'a PvDevice<'a>,
    opts: &'a PlanOptions,
    pub(super) devices: Vec<PlannedDevice>,
    pub(super) seen: HashSet<DmUuid>,
    /// LVs being expanded, to stop reference cycles in hostile metadata.
    stack: Vec<String>,
}

fn is_thin_pool(lv: &LogicalVolume) -> Option<u64> {
    match lv.first_kind() {
        Some(SegmentKind::ThinPool { transaction_id, .. }) => Some(*transaction_id),
        _ => None,
    }
}

fn line(start: u64, length: u64, target: impl Into<Target>) -> TableLine {
    TableLine::new(Sectors(start), Sectors(length), target)
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        vg: &'a VolumeGroup,
        pv_device: &'a PvDevice<'a>,
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

    /// The index the plan uses (snapshot links lvm2 would not activate left out).
    pub(super) fn index(&self) -> &VgIndex<'a> {
        &self.ix.vg
    }

    fn fail(&self, lv: &LogicalVolume, kind: impl Into<PlanErrorKind>) -> Error {
        Error::Plan {
            lv: format!("{}/{}", self.vg.name, lv.name),
            kind: kind.into(),
        }
    }

    pub(super) fn unmappable(&self, lv: &LogicalVolume, kind: UnmappableKind) -> Error {
        Error::Unmappable {
            lv: format!("{}/{}", self.vg.name, lv.name),
            kind,
        }
    }

    fn lv(&self, from: &LogicalVolume, name: &str) -> Result<&'a LogicalVolume> {
        self.ix
            .vg
            .lv(name)
            .ok_or_else(|| self.fail(from, PlanErrorKind::UnknownLv { name: name.into() }))
    }

    /// lvm2's implicit uuid suffix for hidden sub-LVs (`build_dm_uuid` without a layer).
    fn implicit_suffix(&self, lv: &LogicalVolume) -> Option<&'static str> {
        if is_thin_pool(lv).is_some() {
            return Some("pool");
        }
        self.ix.pool_parts.get(lv.name.as_str()).copied()
    }

    /// The table reference to the dm device of LV `lv_name` (layer `layer`), planned
    /// before the device `from` that uses it.
    fn dm_ref(&self, from: &LogicalVolume, lv_name: &str, layer: Option<&str>) -> Result<DevRef> {
        let name = dm_name(&self.vg.name, lv_name, layer);
        DmName::new(&name)
            .map_err(|e| self.fail(from, e))
            .and_then(|n| mapper_ref(&n).map_err(|e| self.fail(from, e)))
    }

    /// `_add_new_lv_to_dtree`.
    pub(super) fn add(&mut self, lv: &'a LogicalVolume, layer: Option<&str>) -> Result<()> {
        let name = dm_name(&self.vg.name, &lv.name, layer);
        // An unused thin pool (transaction 0) still gets the `-tpool` uuid suffix.
        let mut layer = layer.map(str::to_string);
        if layer.is_none() && is_thin_pool(lv) == Some(0) {
            layer = Some("tpool".into());
        }
        let uuid_layer = layer
            .clone()
            .or_else(|| self.implicit_suffix(lv).map(str::to_string));
        let uuid = dm_uuid(&self.vg.id, &lv.id, uuid_layer.as_deref());
        let uuid = DmUuid::new(&uuid).map_err(|e| self.fail(lv, e))?;
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
        let ix = &self.ix.vg;
        if let Some(kind) = self
            .vg
            .lv_fault_with(lv, &|n| ix.lv(n).map(|l| l.le_count()))
        {
            return Err(self.unmappable(lv, kind));
        }
        // Valid LVM names make a valid dm name unless together they are too long.
        let name = DmName::new(&name).map_err(|e| self.fail(lv, e))?;
        self.stack.push(key);
        let r = self.add_inner(lv, layer, name, uuid);
        self.stack.pop();
        r
    }

    fn add_inner(
        &mut self,
        lv: &'a LogicalVolume,
        layer: Option<String>,
        name: DmName,
        uuid: DmUuid,
    ) -> Result<()> {
        let vg = self.vg;
        let es = vg.extent_size;
        let size = vg.lv_size(lv);
        let is_cow_lv = self.ix.vg.cow(&lv.name).is_some();
        let used_pool_top = layer.is_none() && is_thin_pool(lv).is_some_and(|t| t != 0);
        let read_only = if layer.is_some() && is_cow_lv {
            false // the COW store stays writable
        } else {
            // The linear device lvm2 puts over a used pool's -tpool is loaded read-only
            // (observed with lvm2 2.03.16: `dmsetup info` shows `vg-pool` as L--r).
            used_pool_top || self.opts.read_only || !lv.is_writable()
        };
        let mut table = Vec::new();
        let mut after: Vec<(&'a LogicalVolume, bool)> = Vec::new();
        let top = layer.is_none();
        let snaps: Vec<SnapshotLink<'a>> = self.ix.vg.links_of(&lv.name).to_vec();

        if top && !snaps.is_empty() {
            // Snapshot origin: -real holds the segments.
            self.add(lv, Some("real"))?;
            let real = self.dm_ref(lv, &lv.name, Some("real"))?;
            if let Some(m) = snaps.iter().find(|s| s.merging) {
                let cow_lv = self.lv(lv, m.cow)?;
                self.add(cow_lv, Some("cow"))?;
                let cow = self.dm_ref(lv, m.cow, Some("cow"))?;
                let merge = Snapshot::persistent(real, cow, Sectors(m.chunk_size));
                table.push(line(0, size, Target::SnapshotMerge(merge)));
            } else {
                table.push(line(0, size, SnapshotOrigin::new(real)));
            }
            for s in &snaps {
                after.push((self.lv(lv, s.cow)?, s.merging));
            }
        } else if top && let Some(link) = self.ix.vg.cow(&lv.name) {
            let origin = self.lv(lv, link.origin)?;
            self.add(origin, Some("real"))?;
            self.add(lv, Some("cow"))?;
            let len = link.origin_extents.saturating_mul(es);
            if link.merging {
                table.push(line(0, len, ErrorTarget::default()));
            } else {
                let real = self.dm_ref(lv, link.origin, Some("real"))?;
                let cow = self.dm_ref(lv, &lv.name, Some("cow"))?;
                let snap = Snapshot::persistent(real, cow, Sectors(link.chunk_size));
                table.push(line(0, len, snap));
            }
        } else if top && is_thin_pool(lv).is_some_and(|t| t != 0) {
            // A pool in use: the thin-pool target lives in -tpool, a linear device on top.
            self.add(lv, Some("tpool"))?;
            let tpool = self.dm_ref(lv, &lv.name, Some("tpool"))?;
            table.push(line(0, size, Linear::new(tpool, Sectors(0))));
        } else {
            for seg in &lv.segments {
                let start = seg.start_extent.saturating_mul(es);
                let len = seg.extent_count.saturating_mul(es);
                table.push(line(start, len, self.segment(lv, &seg.kind, len)?));
            }
        }
        let dev = if top && lv.status.contains("FIXED_MINOR") {
            match (lv.major, lv.minor) {
                (Some(ma), Some(mi)) => u32::try_from(ma)
                    .ok()
                    .zip(u32::try_from(mi).ok())
                    .map(|(ma, mi)| DevNum::new(ma, mi)),
                _ => None,
            }
        } else {
            None
        };
        // The snapshots before their origin, as lvm2 resumes them ("Resume snapshot
        // origins after new snapshots"): the kernel's snapshot-origin computes the chunk
        // boundary it splits writes at when it resumes, from the snapshots registered
        // then; resumed first, a write spanning several chunks would be copied only for
        // its first chunk. A merging snapshot (its `error` device) comes after.
        for (cow, _) in after.iter().filter(|(_, merging)| !merging) {
            self.add(cow, None)?;
        }
        self.seen.insert(uuid.clone());
        self.devices.push(PlannedDevice {
            name,
            uuid,
            read_only,
            lv: lv.name.clone(),
            layer,
            dev,
            table: Table::from_lines(table),
        });
        for (cow, _) in after.into_iter().filter(|(_, merging)| *merging) {
            self.add(cow, None)?;
        }
        Ok(())
    }

    /// One segment's target (`add_target_line`), `len` sectors long.
    fn segment(&mut self, lv: &'a LogicalVolume, kind: &SegmentKind, len: u64) -> Result<Target> {
        Ok(match kind {
            SegmentKind::Striped { stripe_size, areas } => {
                let mut stripes = Vec::with_capacity(areas.len());
                for a in areas {
                    let (device, offset) = self.area(lv, a)?;
                    stripes.push(Stripe { device, offset });
                }
                match <[Stripe; 1]>::try_from(stripes) {
                    Ok([one]) => Linear::new(one.device, one.offset).into(),
                    Err(stripes) => Striped {
                        chunk_size: Sectors(*stripe_size),
                        stripes,
                    }
                    .into(),
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
                let low_water_mark = if threshold < 100 {
                    len / (*chunk_size).max(1) * u64::from(100 - threshold) / 100
                } else {
                    0
                };
                ThinPool {
                    metadata: self.dm_ref(lv, metadata, None)?,
                    data: self.dm_ref(lv, data, None)?,
                    block_size: Sectors(*chunk_size),
                    low_water_mark,
                    features: ThinPoolFeatures {
                        skip_block_zeroing: !zero_new_blocks,
                        ignore_discard: *discards == Discards::Ignore,
                        no_discard_passdown: *discards == Discards::NoPassdown,
                        read_only: false,
                        error_if_no_space: lv.flags.contains("ERROR_WHEN_FULL"),
                    },
                }
                .into()
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
                if merge.is_some() || self.ix.thin_merge_targets.contains(lv.name.as_str()) {
                    return Err(self.unmappable(
                        lv,
                        UnmappableKind::Unsupported {
                            what: "a thin snapshot merge".into(),
                        },
                    ));
                }
                let pool_lv = self.lv(lv, pool)?;
                if is_thin_pool(pool_lv).is_none() {
                    return Err(self.fail(lv, PlanErrorKind::NotThinPool { pool: pool.clone() }));
                }
                self.add(pool_lv, Some("tpool"))?;
                // The importer refuses ids past 2^24.
                let dev_id = u32::try_from(*device_id)
                    .map_err(|_| self.fail(lv, PlanErrorKind::ThinDeviceId { id: *device_id }))?;
                Thin {
                    pool: self.dm_ref(lv, pool, Some("tpool"))?,
                    dev_id,
                    external_origin: None,
                }
                .into()
            }
            SegmentKind::Zero => Zero.into(),
            SegmentKind::Error => ErrorTarget::default().into(),
            SegmentKind::Snapshot { .. } => {
                return Err(self.fail(lv, PlanErrorKind::InternalSnapshot));
            }
            SegmentKind::Other { segtype, .. } => {
                return Err(self.unmappable(
                    lv,
                    UnmappableKind::Unsupported {
                        what: format!("segment type {segtype}"),
                    },
                ));
            }
        })
    }

    /// `add_areas_line` for one area: device and offset.
    fn area(&mut self, lv: &'a LogicalVolume, a: &Area) -> Result<(DevRef, Sectors)> {
        let es = self.vg.extent_size;
        match a {
            Area::Pv { pv, pe } => {
                let p =
                    self.ix.vg.pv(pv).ok_or_else(|| {
                        self.fail(lv, PlanErrorKind::UnknownPv { pv: pv.clone() })
                    })?;
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
                    .ok_or_else(|| self.fail(lv, PlanErrorKind::OffsetOverflow))?;
                Ok((dev, Sectors(off)))
            }
            Area::Lv { lv: name, le } => {
                let sub = self.lv(lv, name)?;
                self.add(sub, None)?;
                Ok((self.dm_ref(lv, name, None)?, Sectors(le.saturating_mul(es))))
            }
        }
    }
}
