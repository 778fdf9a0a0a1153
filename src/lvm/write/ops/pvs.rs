//! `pvcreate` and `pvremove`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::{check_distinct, open_excl, probe_refusal, vg_of_pv};
use crate::io::Input;
use crate::lvm::id::LvmId;
use crate::lvm::label::read_label;
use crate::lvm::write::error::{PvOp, Result, WriteError};
use crate::lvm::write::lock::{LockMode, lock_global};
use crate::lvm::write::pv::{PvLayout, wipe_pv, write_pv};
use crate::lvm::write::session::WriteOptions;

/// A PV written by [`pvcreate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvCreated {
    /// The device.
    pub path: PathBuf,
    /// The new PV id.
    pub id: LvmId,
    /// Where its data area starts, in sectors.
    pub pe_start: u64,
}

pub(super) fn pvcreate_one(path: &Path, force: bool) -> Result<(PvCreated, Input)> {
    let dev = open_excl(path)?;
    if let Some(vg) = vg_of_pv(&dev) {
        return Err(WriteError::PvInVg {
            path: path.to_owned(),
            vg,
            op: PvOp::Create,
        });
    }
    probe_refusal(dev.file(), path, force)?;
    let size = dev.len();
    let layout = PvLayout::lvm2_default(size)?;
    let id = LvmId::generate().map_err(WriteError::io("/dev/urandom"))?;
    write_pv(&dev, &id, &layout, false)?;
    Ok((
        PvCreated {
            path: path.to_owned(),
            id,
            pe_start: layout.pe_start,
        },
        dev,
    ))
}

/// `pvcreate DEVICE...`: a PV label, `pv_header` and one metadata area in lvm2's default
/// layout on each device, under the global lock. A device that holds something
/// recognisable ([`crate::probe::identify`]) is refused unless `force`; a PV of a VG is
/// always refused. Every device is checked before any is written.
///
/// # Errors
/// [`WriteError::HoldsData`], [`WriteError::PvInVg`], [`WriteError::Io`] (a device in
/// use: opened exclusively), [`WriteError::Pv`], [`WriteError::Lock`].
pub fn pvcreate(paths: &[PathBuf], force: bool, opts: &WriteOptions) -> Result<Vec<PvCreated>> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    check_distinct(paths)?;
    // Every device first: nothing is written when one of them is refused.
    for p in paths {
        // (`Input`, not a bare `File`: a block device's size comes from the kernel, and
        // the scan needs it.)
        let ro = Input::open(p).map_err(|e| WriteError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        if let Some(vg) = vg_of_pv(&ro) {
            return Err(WriteError::PvInVg {
                path: p.clone(),
                vg,
                op: PvOp::Create,
            });
        }
        let dev = open_excl(p)?;
        probe_refusal(dev.file(), p, force)?;
        PvLayout::lvm2_default(dev.len())?;
    }
    paths
        .iter()
        .map(|p| pvcreate_one(p, force).map(|(c, _)| c))
        .collect()
}

/// `pvremove DEVICE...`: the PV labels wiped, under the global lock. A PV of a VG is
/// refused (lvm2's `PV ... is used by VG ... so please use vgreduce first.`) unless
/// `force`; a device that is no PV is refused. Every device is checked before any is
/// wiped.
///
/// # Errors
/// [`WriteError::NotAPv`], [`WriteError::PvInVg`], [`WriteError::Io`], [`WriteError::Pv`].
pub fn pvremove(paths: &[PathBuf], force: bool, opts: &WriteOptions) -> Result<()> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    check_distinct(paths)?;
    let mut devs = Vec::new();
    for p in paths {
        // Read first (a PV under an active LV is held by it: no exclusive open), as lvm2
        // names the VG before it tries to open the device exclusively.
        // (`Input`, not a bare `File`: a block device's size comes from the kernel, and
        // the scan needs it.)
        let ro = Input::open(p).map_err(|e| WriteError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        if read_label(&ro).is_err() {
            return Err(WriteError::NotAPv { path: p.clone() });
        }
        if let Some(vg) = vg_of_pv(&ro)
            && !force
        {
            return Err(WriteError::PvInVg {
                path: p.clone(),
                vg,
                op: PvOp::Remove,
            });
        }
        devs.push(open_excl(p)?);
    }
    for d in &devs {
        wipe_pv(d)?;
    }
    Ok(())
}
