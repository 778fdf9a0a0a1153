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
//! Tables are typed ([`Table`] of [`Target`]s): PVs appear in them as whatever
//! [`DevRef`] the caller maps them to (a path or `major:minor`), the planned dm devices
//! as `/dev/mapper/<name>` paths ([`mapper_ref`], [`mapper_name`]), which
//! [`activate::apply`](super::activate::apply) replaces by the numbers of the devices it
//! creates. [`Plan::to_text`] and [`lvm2_params`] give the text lvm2 would load.
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

mod build;
mod names;

use std::fmt::Write as _;

use super::error::{Error, PlanErrorKind, Result, UnmappableKind};
use super::model::{PhysicalVolume, VolumeGroup};
use crate::DevNum;
use crate::table::Table;
use crate::targets::{DevRef, Target};
use crate::{DmName, DmUuid};
use build::Builder;
pub(crate) use build::skips_activation;
pub use names::{dm_name, dm_uuid, mapper_name, mapper_ref};

/// Maps a PV to the device its tables name; `None`: the PV is not available.
pub type PvDevice<'a> = dyn Fn(&PhysicalVolume) -> Option<DevRef> + 'a;

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

/// One dm device to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedDevice {
    /// dm name.
    pub name: DmName,
    /// dm uuid.
    pub uuid: DmUuid,
    /// Load the table read-only.
    pub read_only: bool,
    /// The LV this device belongs to.
    pub lv: String,
    /// The layer (`real`, `cow`, `tpool`), `None` for the LV's own device.
    pub layer: Option<String>,
    /// Persistent device number requested by the metadata (top layer only).
    pub dev: Option<DevNum>,
    /// The table; planned dm devices are named by [`mapper_ref`] paths.
    pub table: Table,
}

impl PlannedDevice {
    /// How the device is created: its uuid, read-only flag and requested number.
    pub(crate) fn create_options(&self) -> crate::CreateOptions {
        let opts = crate::CreateOptions::default()
            .uuid(self.uuid.clone())
            .read_only(self.read_only);
        match self.dev {
            Some(dev) => opts.dev(dev),
            None => opts,
        }
    }

    /// How its table is loaded.
    pub(crate) fn load_options(&self) -> crate::LoadOptions {
        crate::LoadOptions {
            read_only: self.read_only,
            ..crate::LoadOptions::default()
        }
    }

    /// Its table with every `/dev/mapper/<name>` reference ([`mapper_name`]) replaced by
    /// the device number `lookup` gives for that name (and reference), ready to load.
    pub(crate) fn resolved_table<E>(
        &self,
        mut lookup: impl FnMut(&DmName, &DevRef) -> std::result::Result<DevNum, E>,
    ) -> std::result::Result<Table, E> {
        let mut lines = self.table.clone().into_lines();
        for l in &mut lines {
            for r in l.target.devices_mut() {
                if let Some(name) = mapper_name(r) {
                    *r = DevRef::Num(lookup(&name, r)?);
                }
            }
        }
        Ok(Table::from_lines(lines))
    }
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

/// Plan every LV `vgchange -ay` would activate: visible LVs in metadata order (COW LVs come
/// with their origin, hidden LVs as dependencies), skipping `ACTIVATION_SKIP` LVs and
/// LVs that cannot be mapped. Every LV left out is listed in [`Plan::skipped`] with its
/// [`SkipKind`]: nothing is left out silently, and a snapshot whose relation lvm2 would
/// not activate ([`VolumeGroup::snapshot_faults`]) is listed, its origin planned without it.
///
/// `pv_device` maps a PV to the device used in tables; `None` means the PV is not
/// available, and LVs needing it are skipped.
pub fn plan_vg(vg: &VolumeGroup, pv_device: &PvDevice<'_>, opts: &PlanOptions) -> Result<Plan> {
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
        if !b.index().is_visible(lv) || b.index().cow(&lv.name).is_some() {
            continue;
        }
        if skips_activation(lv) {
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
                Error::Plan { kind, .. } => kind.to_string(),
                Error::Unmappable { lv: l, kind } if l == format!("{}/{}", vg.name, lv.name) => {
                    kind.to_string()
                }
                other => other.to_string(),
            };
            let cows: Vec<SkippedLv> = b
                .index()
                .links_of(&lv.name)
                .iter()
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
    pv_device: &PvDevice<'_>,
    opts: &PlanOptions,
) -> Result<Plan> {
    let lv = vg.lv(lv_name).ok_or_else(|| Error::Plan {
        lv: format!("{}/{lv_name}", vg.name),
        kind: PlanErrorKind::NoSuchLv,
    })?;
    let mut b = Builder::new(vg, pv_device, opts);
    if let Some(kind) = b.faults.get(lv.name.as_str()) {
        return Err(b.unmappable(lv, kind.clone()));
    }
    let lv = match b.index().cow(&lv.name).and_then(|l| vg.lv(l.origin)) {
        Some(origin) => origin,
        None => lv,
    };
    b.add(lv, None)?;
    Ok(Plan {
        devices: b.devices,
        skipped: Vec::new(),
    })
}

impl Plan {
    /// The plan as `dmsetup table`-style text: `name: start length target params` lines,
    /// params as lvm2 writes them ([`lvm2_params`]).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for d in &self.devices {
            for l in &d.table {
                let _ = writeln!(
                    out,
                    "{}: {} {} {} {}",
                    d.name,
                    l.start,
                    l.length,
                    l.target.target_type(),
                    lvm2_params(&l.target)
                );
            }
        }
        out
    }
}

/// A target's params as lvm2 (libdm) writes them into the table it loads: the kernel's
/// form ([`Target::params`]) without the space the kernel prints after the last
/// `thin-pool` feature word (libdm puts the space before each word instead).
///
/// ```
/// use devmapper::lvm::plan::lvm2_params;
/// use devmapper::targets::Target;
/// let pool = Target::parse("thin-pool", "8:1 8:2 128 0 1 skip_block_zeroing ").unwrap();
/// assert_eq!(pool.params(), "8:1 8:2 128 0 1 skip_block_zeroing ");
/// assert_eq!(lvm2_params(&pool), "8:1 8:2 128 0 1 skip_block_zeroing");
/// ```
pub fn lvm2_params(target: &Target) -> String {
    let mut p = target.params();
    if matches!(target, Target::ThinPool(_)) {
        p.truncate(p.trim_end_matches(' ').len());
    }
    p
}
