//! `lvremove` of snapshots and origins: a snapshot (valid or invalid/overflowed), live
//! or not; an origin with `force`, together with all its snapshots. One commit each (lvm2
//! takes two for a snapshot).
//!
//! Removing a snapshot of an active origin: the new VG precommitted; if it was the
//! origin's last snapshot, the origin's plain table staged and the origin suspended with
//! its filesystem frozen; commit; the origin resumed; then the snapshot's devices (and
//! the origin's `-real` with the last one) removed. Failures before the commit undo
//! everything (the origin resumed on its old table). Refused while the snapshot device is
//! open (mounted, held), as lvm2 refuses.
//!
//! ```no_run
//! use devmapper::lvm::write::session::WriteOptions;
//! use devmapper::lvm::write::snapshot::remove::lvremove;
//! let opts = WriteOptions::new("example");
//! lvremove("vg0", "root_snap", false, &opts)?;
//! lvremove("vg0", "data", true, &opts)?; // an origin and its snapshots
//! # Ok::<(), devmapper::lvm::write::error::WriteError>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::SnapshotError;
use super::create::{active_device, resolve};
use super::meta::{remove_snapshot, snapshots_of};
use crate::kernel::undo::{Undo, UndoAction, remove_retrying};
use crate::lvm::model::{LogicalVolume, VolumeGroup};
use crate::lvm::plan::{PlanOptions, dm_name, plan_lv};
use crate::lvm::write::error::{Result, WriteError};
use crate::lvm::write::ops::LvRemoved;
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::targets::DevRef;
use crate::{DeviceMapper, DmName, LoadOptions, SuspendOptions};

/// The LV takes part in a snapshot relation (a COW LV, an internal `snapshotN` LV, an
/// origin with snapshots): [`remove_in_session`] removes it, not the plain lvremove.
pub fn is_snapshot_related(vg: &VolumeGroup, lv: &LogicalVolume) -> bool {
    vg.is_snapshot_internal(lv)
        || vg.cow_link(&lv.name).is_some()
        || vg.snapshot_links().any(|l| l.origin == lv.name)
}

/// `lvremove VG/LV` of a snapshot, or (with `force`) of an origin and its snapshots; any
/// other LV goes to [`ops::lvremove`](crate::lvm::write::ops::lvremove).
///
/// # Errors
/// [`WriteError::LvNotFound`], [`WriteError::LvOpen`], [`WriteError::Snapshot`]
/// ([`SnapshotError::OriginHasSnapshots`] without `force`, [`SnapshotError::InternalLv`],
/// [`SnapshotError::Merging`], [`SnapshotError::NotSnapshot`]), the errors of
/// [`VgSession::open`] and of the commit, [`WriteError::Dm`].
pub fn lvremove(
    vg_name: &str,
    lv_name: &str,
    force: bool,
    opts: &WriteOptions,
) -> Result<LvRemoved> {
    let dm =
        DeviceMapper::new_if_present().map_err(WriteError::dm("open", "/dev/mapper/control"))?;
    let mut s = VgSession::open(vg_name, opts)?;
    let related = s
        .vg()
        .lv(lv_name)
        .is_some_and(|lv| is_snapshot_related(s.vg(), lv));
    if !related {
        drop(s);
        return crate::lvm::write::ops::lvremove(vg_name, lv_name, opts);
    }
    remove_in_session(dm.as_ref(), &mut s, lv_name, force)
}

/// [`lvremove`] in an open session (the plain `lvremove` hands snapshot relations over).
///
/// # Errors
/// As [`lvremove`].
pub fn remove_in_session(
    dm: Option<&DeviceMapper>,
    s: &mut VgSession,
    lv_name: &str,
    force: bool,
) -> Result<LvRemoved> {
    let old = s.vg().clone();
    let lv = old.lv(lv_name).ok_or_else(|| WriteError::LvNotFound {
        vg: old.name.clone(),
        lv: lv_name.into(),
    })?;
    if let Some(link) = old.cow_link(lv_name) {
        if link.merging {
            return Err(SnapshotError::Merging {
                lv: format!("{}/{lv_name}", old.name),
            }
            .into());
        }
        let origin = link.origin.to_string();
        return remove_one(dm, s, &old, lv_name, &origin);
    }
    if old.is_snapshot_internal(lv) {
        // remove_snapshot names the COW LV in its refusal.
        remove_snapshot(&old, lv_name)?;
    }
    let snaps = snapshots_of(&old, lv_name);
    if snaps.is_empty() {
        return Err(SnapshotError::NotSnapshot {
            lv: format!("{}/{lv_name}", old.name),
        }
        .into());
    }
    if !force {
        return Err(SnapshotError::OriginHasSnapshots {
            lv: format!("{}/{lv_name}", old.name),
            count: snaps.len(),
        }
        .into());
    }
    remove_origin(dm, s, &old, lv_name, &snaps)
}

fn open_refusal(vg: &VolumeGroup, lv: &str, info: &crate::DeviceInfo) -> Result<()> {
    if info.open_count > 0 {
        return Err(WriteError::LvOpen {
            vg: vg.name.clone(),
            lv: lv.into(),
            open_count: info.open_count,
            holders: std::fs::read_dir(format!("/sys/dev/block/{}/holders", info.dev))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false),
        });
    }
    Ok(())
}

fn layer_name(vg: &VolumeGroup, lv: &str, layer: Option<&str>) -> Result<DmName> {
    DmName::new(&dm_name(&vg.name, lv, layer)).map_err(|e| WriteError::BadOption(e.to_string()))
}

/// Remove these dm devices (gone ones are fine), in order; the first error. Fault
/// injection: step `family:first_step + i` after the i-th device.
fn remove_all(dm: &DeviceMapper, names: &[DmName], family: &str, first_step: u32) -> Result<()> {
    let mut first = None;
    for (n, k) in names.iter().zip(first_step..) {
        if let Err(e) = remove_retrying(dm, n)
            && first.is_none()
        {
            first = Some(WriteError::dm("remove", n.as_str())(e));
        }
        crate::snapshot::fault::step(family, k);
    }
    first.map_or(Ok(()), Err)
}

fn remove_one(
    dm: Option<&DeviceMapper>,
    s: &mut VgSession,
    old: &VolumeGroup,
    cow: &str,
    origin: &str,
) -> Result<LvRemoved> {
    let new = remove_snapshot(old, cow)?;
    let mut out = LvRemoved::default();
    let origin_live = match dm {
        Some(dm) => active_device(dm, old, origin)?,
        None => None,
    };
    let (Some(dm), Some(origin_info)) = (dm, origin_live) else {
        // Inactive: metadata only.
        s.precommit(new)?;
        s.commit()?;
        out.warnings.extend(s.warnings().iter().cloned());
        return Ok(out);
    };
    if let Some(i) = active_device(dm, old, cow)? {
        open_refusal(old, cow, &i)?;
    }
    let last = snapshots_of(&new, origin).is_empty();
    let mut undo = Undo::new(dm);
    let result = (|| -> Result<()> {
        s.precommit(new.clone())?;
        crate::snapshot::fault::step("lvm-remove", 1);
        if last {
            // The origin gets its plain table back (PVs only: no dm references).
            let devnum = |p: &crate::lvm::model::PhysicalVolume| s.pv_devnum(p).map(DevRef::from);
            let plan = plan_lv(&new, origin, &devnum, &PlanOptions::default())?;
            let d = plan
                .devices
                .iter()
                .find(|d| d.lv == origin && d.layer.is_none())
                .ok_or(WriteError::Internal("origin not planned"))?;
            let t = resolve(dm, d, &HashMap::new())?;
            dm.load(&origin_info.name, &t, LoadOptions::default())
                .map_err(WriteError::dm("load", origin_info.name.as_str()))?;
            undo.push(UndoAction::ClearInactive(origin_info.name.clone()));
            crate::snapshot::fault::step("lvm-remove", 2);
            undo.suspend(&origin_info.name, SuspendOptions::default())
                .map_err(WriteError::dm("suspend", origin_info.name.as_str()))?;
            crate::snapshot::fault::step("lvm-remove", 3);
        }
        s.commit()?;
        crate::snapshot::fault::step("lvm-remove", 4);
        Ok(())
    })();
    if let Err(e) = result {
        drop(undo);
        let _ = s.revert();
        return Err(e);
    }
    undo.commit();
    drop(undo);
    let mut gone = vec![
        layer_name(old, cow, None)?,
        layer_name(old, cow, Some("cow"))?,
    ];
    if last {
        dm.resume(&origin_info.name, SuspendOptions::default())
            .map_err(|e| WriteError::AfterCommit {
                what: format!("snapshot {cow} removed, origin {origin} not resumed"),
                source: Box::new(WriteError::dm("resume", origin_info.name.as_str())(e)),
            })?;
        gone.push(layer_name(old, origin, Some("real"))?);
        crate::snapshot::fault::step("lvm-remove", 5);
    }
    // Fault injection: a step after each device removed, from 6 (after the origin's
    // resume, step 5) or, when the origin keeps other snapshots, from 5.
    let after = if last { 6 } else { 5 };
    remove_all(dm, &gone, "lvm-remove", after).map_err(|e| WriteError::AfterCommit {
        what: format!("snapshot {cow} removed from the metadata, its devices not all removed"),
        source: Box::new(e),
    })?;
    out.deactivated = true;
    out.warnings.extend(s.warnings().iter().cloned());
    Ok(out)
}

fn remove_origin(
    dm: Option<&DeviceMapper>,
    s: &mut VgSession,
    old: &VolumeGroup,
    origin: &str,
    snaps: &[String],
) -> Result<LvRemoved> {
    let mut new = old.clone();
    for c in snaps {
        new = remove_snapshot(&new, c)?;
    }
    new.lvs.retain(|l| l.name != origin);
    let mut out = LvRemoved::default();
    if let Some(dm) = dm
        && active_device(dm, old, origin)?.is_some()
    {
        // Nothing may be open: the origin, or any of its snapshots.
        for lv in std::iter::once(origin).chain(snaps.iter().map(String::as_str)) {
            if let Some(i) = active_device(dm, old, lv)? {
                open_refusal(old, lv, &i)?;
            }
        }
        // Top devices first, then the layers below them.
        let mut names = Vec::new();
        for c in snaps {
            names.push(layer_name(old, c, None)?);
        }
        names.push(layer_name(old, origin, None)?);
        for c in snaps {
            names.push(layer_name(old, c, Some("cow"))?);
        }
        names.push(layer_name(old, origin, Some("real"))?);
        // Fault injection: `lvm-remove-origin:1..=n` after each device removed.
        remove_all(dm, &names, "lvm-remove-origin", 1)?;
        out.deactivated = true;
    }
    // Then `:n+1` after the precommit, `:n+2` after the commit (n = 0 when inactive).
    let n = if out.deactivated {
        2 * snaps.len() as u32 + 2
    } else {
        0
    };
    let done = s.precommit(new).and_then(|()| {
        crate::snapshot::fault::step("lvm-remove-origin", n + 1);
        s.commit()?;
        crate::snapshot::fault::step("lvm-remove-origin", n + 2);
        Ok(())
    });
    if let Err(e) = done {
        if let (true, Some(dm)) = (out.deactivated, dm) {
            // Bring the origin and its snapshots back, as they were.
            let devnum = |p: &crate::lvm::model::PhysicalVolume| s.pv_devnum(p).map(DevRef::from);
            if let Ok(plan) = plan_lv(old, origin, &devnum, &PlanOptions::default()) {
                let _ = crate::lvm::activate::apply(dm, &plan);
            }
        }
        return Err(e);
    }
    out.warnings.extend(s.warnings().iter().cloned());
    Ok(out)
}
