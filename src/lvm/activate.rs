//! Activating and deactivating LVs with the ioctl core: a [`Plan`] applied with
//! [`DeviceMapper`], the one part of [`crate::lvm`] that talks to the kernel.
//!
//! [`check_vg`] refuses what lvm2 refuses (a PV missing, an exported VG, a foreign system
//! id, a lock manager); [`apply`] creates each planned device (name, uuid, read-only),
//! loads its table and resumes it, lower layers first, rewriting `/dev/mapper/<name>`
//! references to the `major:minor` of the device just created, and removes everything it
//! created if any step fails; [`deactivate`] removes a VG's devices (found by their
//! `LVM-<vgid>` uuid prefix) upper layers first, refusing while any is in use.
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::lvm::{activate, plan, scan};
//! let pvs = [std::fs::File::open("/dev/loop0")?];
//! let report = scan::scan(&pvs);
//! let s = &report.vgs[0];
//! activate::check_vg(s, None)?;
//! let dev = |_p: &devmapper::lvm::model::PhysicalVolume| Some("7:0".to_string());
//! let p = plan::plan_vg(&s.vg, &dev, &plan::PlanOptions::default())?;
//! let dm = DeviceMapper::new()?;
//! let done = activate::apply(&dm, &p)?;
//! println!("{} devices active", done.len());
//! activate::deactivate(&dm, &s.vg.id)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use crate::RemoveMode;
use std::collections::{HashMap, HashSet};

use super::id::LvmId;
use super::model::VolumeGroup;
use super::plan::{Plan, PlannedDevice, plan_vg};
use super::scan::ScannedVg;
use crate::kernel::dm::{
    CreateOptions, DeviceInfo, DeviceMapper, LoadOptions, SuspendOptions, Which,
};
use crate::kernel::id::{DmName, DmUuid};
use crate::kernel::reply::RawTarget;
use crate::units::Sectors;
use crate::{DevNum, Error as DmError};

/// Why a VG or LV was not activated or deactivated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivateError {
    /// Some PVs of the VG were not found among the given devices.
    #[error("VG {vg} is partial: PV {} not found (give every PV of the VG)", missing.join(", "))]
    Partial {
        /// VG name.
        vg: String,
        /// The missing PVs, as `handle (uuid)`.
        missing: Vec<String>,
    },
    /// Some PVs are flagged `MISSING` in the metadata.
    #[error("VG {vg} has PVs marked MISSING in its metadata: {}", missing.join(", "))]
    MissingPvs {
        /// VG name.
        vg: String,
        /// The PVs, as `handle (uuid)`.
        missing: Vec<String>,
    },
    /// The VG is exported.
    #[error("VG {vg} is exported (vgimport it first)")]
    Exported {
        /// VG name.
        vg: String,
    },
    /// The VG belongs to another host.
    #[error("VG {vg} belongs to system id {system_id:?}, this host has {}", local.as_deref().map_or("none".to_string(), |l| format!("{l:?}")))]
    ForeignSystemId {
        /// VG name.
        vg: String,
        /// The VG's system id.
        system_id: String,
        /// This host's system id.
        local: Option<String>,
    },
    /// The VG is shared through a lock manager.
    #[error("VG {vg} uses lock type {lock_type:?}: it needs lvmlockd, which is not supported")]
    LockType {
        /// VG name.
        vg: String,
        /// `lock_type` from the metadata.
        lock_type: String,
    },
    /// The LV asked for carries the activation skip flag.
    #[error("LV {vg}/{lv} is flagged to skip activation (ACTIVATION_SKIP)")]
    SkipFlagged {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] super::Error),
    /// A table refers to a dm device that is neither planned before it nor present.
    #[error("device {device}: its table refers to {reference}, which is not active")]
    UnknownReference {
        /// The device being loaded.
        device: String,
        /// The reference (`/dev/mapper/<name>`).
        reference: String,
    },
    /// A device with the planned name exists with another uuid.
    #[error("device {device} exists with uuid {found:?}, not {expected}")]
    NameTaken {
        /// dm name.
        device: String,
        /// The uuid it has.
        found: Option<String>,
        /// The uuid the plan gives.
        expected: String,
    },
    /// A device-mapper step failed (everything created before it was removed again).
    #[error("{step} {device}: {source}")]
    Dm {
        /// `create`, `load`, `resume`, `remove`, `list`, ...
        step: &'static str,
        /// dm name.
        device: String,
        /// The ioctl error.
        #[source]
        source: Box<DmError>,
    },
    /// Deactivation found devices of the VG in use by something outside the VG.
    #[error("VG {vg}: {} in use (close or unmount first): {}", if devices.len() == 1 { "device is" } else { "devices are" }, devices.join(", "))]
    Busy {
        /// VG name or id.
        vg: String,
        /// The open devices, as `name (open count)`.
        devices: Vec<String>,
    },
    /// No VG of that name is active.
    #[error("no active device belongs to VG {vg}")]
    NotActive {
        /// VG name.
        vg: String,
    },
    /// Active devices named after the VG belong to several VG ids.
    #[error("devices named after VG {vg} belong to {count} different VGs; give the PVs")]
    Ambiguous {
        /// VG name.
        vg: String,
        /// How many VG ids.
        count: usize,
    },
}

/// Result alias of this module.
pub type Result<T, E = ActivateError> = std::result::Result<T, E>;

fn dm_err(step: &'static str, device: &str) -> impl FnOnce(DmError) -> ActivateError {
    let device = device.to_string();
    move |source| ActivateError::Dm {
        step,
        device,
        source: Box::new(source),
    }
}

/// The reasons lvm2 would refuse to activate anything of this scanned VG, as the first
/// error: a PV not found, PVs flagged missing, exported, a foreign system id (compared
/// with `local_system_id`; `None` accepts only VGs without one), a lock type.
pub fn check_vg(s: &ScannedVg, local_system_id: Option<&str>) -> Result<()> {
    let vg = &s.vg;
    let missing: Vec<String> = s
        .missing_pvs()
        .map(|p| format!("{} ({})", p.handle, p.id))
        .collect();
    if !missing.is_empty() {
        return Err(ActivateError::Partial {
            vg: vg.name.clone(),
            missing,
        });
    }
    check_metadata(vg, local_system_id)
}

/// [`check_vg`] for the metadata alone (no completeness check).
pub fn check_metadata(vg: &VolumeGroup, local_system_id: Option<&str>) -> Result<()> {
    let flagged: Vec<String> = vg
        .pvs
        .iter()
        .filter(|p| p.is_missing())
        .map(|p| format!("{} ({})", p.handle, p.id))
        .collect();
    if !flagged.is_empty() {
        return Err(ActivateError::MissingPvs {
            vg: vg.name.clone(),
            missing: flagged,
        });
    }
    if vg.status.contains("EXPORTED") {
        return Err(ActivateError::Exported {
            vg: vg.name.clone(),
        });
    }
    if let Some(sid) = &vg.system_id
        && !sid.is_empty()
        && Some(sid.as_str()) != local_system_id
    {
        return Err(ActivateError::ForeignSystemId {
            vg: vg.name.clone(),
            system_id: sid.clone(),
            local: local_system_id.map(str::to_string),
        });
    }
    if let Some(lt) = &vg.lock_type
        && lt != "none"
    {
        return Err(ActivateError::LockType {
            vg: vg.name.clone(),
            lock_type: lt.clone(),
        });
    }
    Ok(())
}

/// Check, plan and apply: every LV `vgchange -ay` would activate (`lv: None`) or one LV
/// and what it needs. LVs flagged `ACTIVATION_SKIP` are left out of a VG activation (see
/// [`Plan::skipped`] of the returned plan) and refused when asked for by name.
pub fn activate_vg(
    dm: &DeviceMapper,
    s: &ScannedVg,
    pv_device: &dyn Fn(&super::model::PhysicalVolume) -> Option<String>,
    lv: Option<&str>,
    local_system_id: Option<&str>,
    opts: &super::plan::PlanOptions,
) -> Result<(Plan, Vec<DeviceInfo>)> {
    check_vg(s, local_system_id)?;
    let vg = &s.vg;
    let plan = match lv {
        None => plan_vg(vg, pv_device, opts)?,
        Some(name) => {
            if let Some(l) = vg.lv(name)
                && (l.flags.contains("ACTIVATION_SKIP") || l.status.contains("ACTIVATION_SKIP"))
            {
                return Err(ActivateError::SkipFlagged {
                    vg: vg.name.clone(),
                    lv: name.to_string(),
                });
            }
            super::plan::plan_lv(vg, name, pv_device, opts)?
        }
    };
    let created = apply(dm, &plan)?;
    Ok((plan, created))
}

const MAPPER_PREFIX: &str = "/dev/mapper/";

/// Rewrite `/dev/mapper/<name>` words to `major:minor`.
fn resolve_params(
    dm: &DeviceMapper,
    device: &str,
    params: &str,
    known: &HashMap<String, DevNum>,
) -> Result<String> {
    let mut out = String::with_capacity(params.len());
    for (i, word) in params.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.strip_prefix(MAPPER_PREFIX) {
            Some(name) => {
                let dev = match known.get(name) {
                    Some(d) => *d,
                    None => {
                        let unknown = || ActivateError::UnknownReference {
                            device: device.to_string(),
                            reference: word.to_string(),
                        };
                        let n = DmName::new(name).map_err(|_| unknown())?;
                        dm.info(&n).map_err(|_| unknown())?.dev
                    }
                };
                out.push_str(&dev.to_string());
            }
            None => out.push_str(word),
        }
    }
    Ok(out)
}

/// Apply a plan: for each device in order, create it (or reuse a device that already
/// has the planned name and uuid, e.g. a `-real` layer shared with an active LV), load
/// its table with dm references resolved, and resume it. On failure every device this
/// call created is removed again, newest first, and the first error is returned.
///
/// Returns the devices created (reused ones are not listed).
pub fn apply(dm: &DeviceMapper, plan: &Plan) -> Result<Vec<DeviceInfo>> {
    let mut created: Vec<DeviceInfo> = Vec::new();
    match apply_inner(dm, plan, &mut created) {
        Ok(()) => Ok(created),
        Err(e) => {
            for d in created.iter().rev() {
                let _ = dm.remove(&d.name, RemoveMode::Now);
            }
            Err(e)
        }
    }
}

fn apply_inner(dm: &DeviceMapper, plan: &Plan, created: &mut Vec<DeviceInfo>) -> Result<()> {
    let mut known: HashMap<String, DevNum> = HashMap::new();
    for d in &plan.devices {
        let name = DmName::new(&d.name).map_err(|e| ActivateError::Dm {
            step: "name",
            device: d.name.clone(),
            source: Box::new(DmError::InvalidArgument(e.to_string())),
        })?;
        let uuid = DmUuid::new(&d.uuid).map_err(|e| ActivateError::Dm {
            step: "uuid",
            device: d.name.clone(),
            source: Box::new(DmError::InvalidArgument(e.to_string())),
        })?;
        if let Ok(info) = dm.info(&name) {
            if info.uuid.as_deref() != Some(d.uuid.as_str()) {
                return Err(ActivateError::NameTaken {
                    device: d.name.clone(),
                    found: info.uuid,
                    expected: d.uuid.clone(),
                });
            }
            if info.has_live_table() && !info.suspended() {
                // Already active (a layer shared with an LV activated before): reuse.
                known.insert(d.name.clone(), info.dev);
                continue;
            }
        }
        let targets = targets_of(dm, d, &known)?;
        let mut opts = CreateOptions::default().uuid(uuid).read_only(d.read_only);
        if let Some((ma, mi)) = d.major_minor {
            opts = opts.dev(DevNum::new(ma, mi));
        }
        let info = dm.create(&name, opts).map_err(dm_err("create", &d.name))?;
        known.insert(d.name.clone(), info.dev);
        created.push(info);
        dm.load_raw(
            &name,
            &targets,
            LoadOptions {
                read_only: d.read_only,
                ..LoadOptions::default()
            },
        )
        .map_err(dm_err("load", &d.name))?;
        dm.resume(&name, SuspendOptions::default())
            .map_err(dm_err("resume", &d.name))?;
    }
    Ok(())
}

fn targets_of(
    dm: &DeviceMapper,
    d: &PlannedDevice,
    known: &HashMap<String, DevNum>,
) -> Result<Vec<RawTarget>> {
    d.table
        .iter()
        .map(|l| {
            Ok(RawTarget {
                start: Sectors(l.start),
                length: Sectors(l.length),
                target_type: l.target.clone(),
                params: resolve_params(dm, &d.name, &l.params, known)?,
            })
        })
        .collect()
}

/// The uuid prefix of every dm device of a VG: `LVM-` + the VG id.
pub fn uuid_prefix(vg_id: &LvmId) -> String {
    format!("LVM-{}", vg_id.as_str())
}

/// The active devices of a VG, by uuid prefix.
pub fn vg_devices(dm: &DeviceMapper, vg_id: &LvmId) -> Result<Vec<crate::DeviceEntry>> {
    let prefix = uuid_prefix(vg_id);
    Ok(dm
        .list()
        .map_err(dm_err("list", "devices"))?
        .into_iter()
        .filter(|e| e.uuid.as_deref().is_some_and(|u| u.starts_with(&prefix)))
        .collect())
}

/// The VG id of the active devices named after VG `vg_name` (`LVM-` uuids whose name
/// starts with the VG name, dashes doubled, and `-`).
pub fn active_vg_id(dm: &DeviceMapper, vg_name: &str) -> Result<LvmId> {
    let mut name_prefix = super::plan::dm_name(vg_name, "", None);
    // dm_name(vg, "") ends with the separating `-` already.
    if !name_prefix.ends_with('-') {
        name_prefix.push('-');
    }
    let mut ids: HashSet<String> = HashSet::new();
    for e in dm.list().map_err(dm_err("list", "devices"))? {
        let Some(u) = e.uuid.as_deref() else { continue };
        let Some(rest) = u.strip_prefix("LVM-") else {
            continue;
        };
        // The name must split as <vg>-<lv>: the VG part has no single dash.
        if !e.name.starts_with(&name_prefix) || !vg_part_is(&e.name, vg_name) {
            continue;
        }
        if let Some(id) = rest.get(..32) {
            ids.insert(id.to_string());
        }
    }
    let mut it = ids.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Err(ActivateError::NotActive {
            vg: vg_name.to_string(),
        }),
        (Some(id), None) => LvmId::from_raw(id.as_bytes()).map_err(|_| ActivateError::NotActive {
            vg: vg_name.to_string(),
        }),
        (Some(_), Some(_)) => Err(ActivateError::Ambiguous {
            vg: vg_name.to_string(),
            count: 2 + it.count(),
        }),
    }
}

/// Split a dm name at its first single `-` (lvm2's `dm_split_lvm_name`) and compare the
/// VG part.
pub(crate) fn vg_part_is(dm_name: &str, vg: &str) -> bool {
    let b = dm_name.as_bytes();
    let mut i = 0;
    let mut out = String::new();
    while let Some(&c) = b.get(i) {
        if c == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                out.push('-');
                i += 2;
                continue;
            }
            return out == vg;
        }
        out.push(char::from(c));
        i += 1;
    }
    false
}

/// Remove every active device of the VG, devices nobody in the VG depends on first.
/// Refuses, removing nothing, when a device is held open by anything but another
/// device of the VG. Returns the names removed, in removal order.
pub fn deactivate(dm: &DeviceMapper, vg_id: &LvmId) -> Result<Vec<String>> {
    let devs = vg_devices(dm, vg_id)?;
    let by_dev: HashMap<DevNum, usize> = devs.iter().enumerate().map(|(i, e)| (e.dev, i)).collect();
    // deps[i]: the VG devices device i's tables use.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(devs.len());
    let mut holders = vec![0i32; devs.len()];
    for e in &devs {
        let mut mine = HashSet::new();
        for which in [Which::Live, Which::Inactive] {
            // A device without that table answers with no deps or an error: both mean none.
            if let Ok(d) = dm.deps(e.dev, which) {
                for dn in d {
                    if let Some(&j) = by_dev.get(&dn) {
                        mine.insert(j);
                        if let Some(h) = holders.get_mut(j) {
                            *h += 1;
                        }
                    }
                }
            }
        }
        deps.push(mine.into_iter().collect());
    }
    let mut busy = Vec::new();
    for (i, e) in devs.iter().enumerate() {
        let info = dm.info(e.dev).map_err(dm_err("info", &e.name))?;
        let outside = info.open_count - holders.get(i).copied().unwrap_or(0);
        if outside > 0 {
            busy.push(format!("{} (open {})", e.name, info.open_count));
        }
    }
    if !busy.is_empty() {
        return Err(ActivateError::Busy {
            vg: vg_id.to_string(),
            devices: busy,
        });
    }
    // Remove devices with no remaining holder in the VG, repeatedly.
    let mut remaining_holders: Vec<usize> = vec![0; devs.len()];
    for d in &deps {
        for &j in d {
            if let Some(h) = remaining_holders.get_mut(j) {
                *h += 1;
            }
        }
    }
    let mut removed = vec![false; devs.len()];
    let mut order = Vec::with_capacity(devs.len());
    loop {
        let next = (0..devs.len()).find(|&i| {
            !removed.get(i).copied().unwrap_or(true)
                && remaining_holders.get(i).copied().unwrap_or(0) == 0
        });
        let Some(i) = next else { break };
        let Some(e) = devs.get(i) else { break };
        dm.remove(e.dev, RemoveMode::Now)
            .map_err(dm_err("remove", &e.name))?;
        if let Some(r) = removed.get_mut(i) {
            *r = true;
        }
        for &j in deps.get(i).map(Vec::as_slice).unwrap_or_default() {
            if let Some(h) = remaining_holders.get_mut(j) {
                *h = h.saturating_sub(1);
            }
        }
        order.push(e.name.clone());
    }
    // A dependency cycle (impossible for dm) would leave devices: say so.
    if let Some(e) = devs
        .iter()
        .zip(&removed)
        .find_map(|(e, r)| (!r).then_some(e))
    {
        return Err(ActivateError::Busy {
            vg: vg_id.to_string(),
            devices: vec![e.name.clone()],
        });
    }
    Ok(order)
}
