//! `vgcreate` and `vgremove`.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::pvs::pvcreate_one;
use super::{DEFAULT_EXTENT_SIZE, check_distinct, open_excl, probe_refusal};
use crate::io::ReadAt;
use crate::lvm::id::LvmId;
use crate::lvm::label::{DiskLocn, read_label};
use crate::lvm::lvs::display_size_long;
use crate::lvm::model::{PhysicalVolume, VolumeGroup};
use crate::lvm::names::check_vg_name;
use crate::lvm::scan::DeviceStatus;
use crate::lvm::write::backup;
use crate::lvm::write::error::{PvOp, Result, WriteError};
use crate::lvm::write::lock::{LockMode, lock_global, lock_vg};
use crate::lvm::write::pv::{PvLayout, remove_metadata, set_in_vg};
use crate::lvm::write::session::{
    self, ScannedDevices, VgSession, WriteOptions, open_rw, scan_devices,
};

/// The VG created by [`vgcreate`].
#[derive(Clone, Debug)]
pub struct VgCreated {
    /// The VG as committed.
    pub vg: VolumeGroup,
    /// Devices that were not PVs yet and were made PVs first (as lvm2's vgcreate does).
    pub pvcreated: Vec<PathBuf>,
}

/// `vgcreate VG DEVICE...`: a new VG over orphan PVs (devices that are no PV yet are made
/// PVs first, refused like [`pvcreate`](super::pvcreate) when they hold something
/// recognisable, unless `force`), extent size `extent_size` sectors (default 4 MiB), first
/// commit on every PV, then each PV's label marked in use. Under the global lock and the
/// new VG's lock.
///
/// # Errors
/// [`WriteError::Name`], [`WriteError::VgExists`], [`WriteError::PvInVg`],
/// [`WriteError::BadOption`] (extent size), the errors of [`pvcreate`](super::pvcreate)
/// and of the commit.
pub fn vgcreate(
    name: &str,
    paths: &[PathBuf],
    extent_size: Option<u64>,
    force: bool,
    opts: &WriteOptions,
) -> Result<VgCreated> {
    check_vg_name(name)?;
    let extent_size = extent_size.unwrap_or(DEFAULT_EXTENT_SIZE);
    if extent_size < 8 || !extent_size.is_power_of_two() {
        return Err(WriteError::BadOption(format!(
            "Physical extent size {} must be a power of 2 of at least 4.00 KiB.",
            display_size_long(extent_size)
        )));
    }
    if paths.is_empty() {
        return Err(WriteError::BadOption(
            "Please enter physical volume name(s)".into(),
        ));
    }
    check_distinct(paths)?;
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    let vg_lock = lock_vg(&opts.lock_dir, name, LockMode::Exclusive, true)?;
    // Scan everything (names are unique across what lvm2 sees) plus the PVs given.
    let mut scan_opts = opts.clone();
    let mut all = session::device_paths(opts)?;
    for p in paths {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    scan_opts.devices = Some(all);
    let scanned = scan_devices(&scan_opts)?;
    if scanned.report.vgs.iter().any(|v| v.vg.name == name)
        || scanned.report.failed_vgs.iter().any(|f| f.name == name)
    {
        return Err(WriteError::VgExists {
            vg: name.to_string(),
        });
    }
    // Each device: an orphan PV, or no PV at all (made one, after the same checks as
    // pvcreate). Checked for all before anything is written.
    let devices = scanned.report.devices();
    let mut to_create = Vec::new();
    for p in paths {
        let i = index_of(&scanned, p)?;
        match devices.get(i).map(|d| &d.status) {
            Some(DeviceStatus::Orphan) => {}
            Some(DeviceStatus::NoLabel) => {
                let dev = open_excl(p)?;
                probe_refusal(dev.file(), p, force)?;
                PvLayout::lvm2_default(dev.len())?;
                to_create.push(p.clone());
            }
            Some(DeviceStatus::InVg { vg }) | Some(DeviceStatus::NotListed { vg }) => {
                return Err(WriteError::PvInVg {
                    path: p.clone(),
                    vg: scanned
                        .report
                        .vgs
                        .get(*vg)
                        .map(|v| v.vg.name.clone())
                        .unwrap_or_default(),
                    op: PvOp::AddToVg,
                });
            }
            Some(DeviceStatus::VgNotImported { vg }) => {
                return Err(WriteError::PvInVg {
                    path: p.clone(),
                    vg: vg.name.clone(),
                    op: PvOp::AddToVg,
                });
            }
            _ => return Err(WriteError::NotAPv { path: p.clone() }),
        }
    }
    for p in &to_create {
        pvcreate_one(p, true)?;
    }
    let id = LvmId::generate().map_err(WriteError::io("/dev/urandom"))?;
    let mut vg = VolumeGroup::new(name, id, extent_size);
    let mut pvs = Vec::new();
    for (n, p) in paths.iter().enumerate() {
        let f = open_rw(p)?;
        let label = read_label(&f)?;
        let size_bytes = ReadAt::size(&f).map_err(WriteError::io(p))?;
        let dev_size = if label.device_size > 0 {
            label.device_size / 512
        } else {
            size_bytes / 512
        };
        let pe_start = label
            .data_areas
            .first()
            .map_or(2048, |d: &DiskLocn| d.offset / 512);
        let pe_count = dev_size.saturating_sub(pe_start) / extent_size;
        if pe_count == 0 {
            return Err(WriteError::BadOption(format!(
                "{}: too small for one extent of {}",
                p.display(),
                display_size_long(extent_size)
            )));
        }
        vg.pvs.push(PhysicalVolume {
            handle: format!("pv{n}"),
            id: label.pv_id,
            device_hint: Some(p.display().to_string()),
            status: ["ALLOCATABLE".to_string()].into_iter().collect(),
            flags: BTreeSet::new(),
            tags: Vec::new(),
            dev_size: Some(dev_size),
            pe_start,
            pe_count,
            device_id_type: None,
            device_id: None,
            ba_start: 0,
            ba_size: 0,
        });
        pvs.push((p.clone(), f, label.metadata_areas.clone()));
    }
    let mut s = VgSession::new_vg(vg.clone(), pvs, opts, vg_lock);
    s.precommit(vg)?;
    s.commit()?;
    for f in s.pv_files() {
        set_in_vg(f, true)?;
    }
    Ok(VgCreated {
        vg: s.vg().clone(),
        pvcreated: to_create,
    })
}

fn index_of(scanned: &ScannedDevices, p: &Path) -> Result<usize> {
    let want = crate::io::FileId::of_path(p).map_err(WriteError::io(p))?;
    scanned
        .paths
        .iter()
        .position(|q| crate::io::FileId::of_path(q).is_ok_and(|id| id == want))
        .ok_or_else(|| WriteError::NotAPv { path: p.to_owned() })
}

/// `vgremove VG` of an empty VG: under the global lock and the VG lock, the metadata
/// areas of every PV emptied (both slots zeroed, as lvm2's `_vg_remove_raw`), then each
/// PV's label marked unused; the old metadata archived and the backup file removed where
/// lvm2's directories exist.
///
/// # Errors
/// [`WriteError::VgNotEmpty`], the errors of [`VgSession::open`], [`WriteError::Io`],
/// [`WriteError::Pv`].
pub fn vgremove(vg_name: &str, opts: &WriteOptions) -> Result<Vec<String>> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    let s = VgSession::open(vg_name, opts)?;
    let vg = s.vg();
    let count = vg.lvs.iter().filter(|l| vg.is_visible(l)).count();
    if !vg.lvs.is_empty() {
        return Err(WriteError::VgNotEmpty {
            vg: vg_name.into(),
            count: count.max(1),
        });
    }
    let mut warnings = Vec::new();
    if let Some(dirs) = &opts.backups
        && let Err(e) = backup::archive(dirs, vg, &opts.command)
    {
        warnings.push(format!(
            "WARNING: archiving volume group {vg_name} failed: {e}"
        ));
    }
    for f in s.pv_files() {
        remove_metadata(f)?;
    }
    for f in s.pv_files() {
        set_in_vg(f, false)?;
    }
    if let Some(dirs) = &opts.backups {
        let _ = std::fs::remove_file(dirs.backup.join(vg_name));
    }
    Ok(warnings)
}
