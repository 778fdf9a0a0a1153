//! Why lvm2 would refuse to activate anything of a VG: one typed check, used by the
//! planner's callers and by [`activate`](super::activate) alike.
//!
//! ```
//! use devmapper::lvm::check::{Blocker, activation_blockers};
//! use devmapper::lvm::{config::ParseMode, model::VolumeGroup};
//! # let text = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
//! let vg = VolumeGroup::from_text(text, ParseMode::File)?;
//! assert_eq!(activation_blockers(&vg, None), []);
//! let mut foreign = vg.clone();
//! foreign.system_id = Some("otherhost".into());
//! let b = activation_blockers(&foreign, Some("thishost"));
//! assert!(matches!(&b[..], [Blocker::ForeignSystemId { system_id, .. }] if system_id == "otherhost"));
//! // An empty system id is no system id, as in lvm2.
//! foreign.system_id = Some(String::new());
//! assert_eq!(activation_blockers(&foreign, Some("thishost")), []);
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use super::id::LvmId;
use super::model::{PhysicalVolume, VolumeGroup};
use super::scan::ScannedVg;

/// A PV named in a [`Blocker`]: its handle in the metadata and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvRef {
    /// The PV's name in the metadata (`pv0`).
    pub handle: String,
    /// The PV id.
    pub id: LvmId,
}

impl From<&PhysicalVolume> for PvRef {
    fn from(pv: &PhysicalVolume) -> PvRef {
        PvRef {
            handle: pv.handle.clone(),
            id: pv.id,
        }
    }
}

impl fmt::Display for PvRef {
    /// `handle (id)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.handle, self.id)
    }
}

fn join(pvs: &[PvRef]) -> String {
    pvs.iter()
        .map(PvRef::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One reason lvm2 would refuse to activate anything of a VG.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Blocker {
    /// Some PVs of the VG were not found among the given devices.
    #[error(
        "VG {vg} is partial: PV {} not found (give every PV of the VG)",
        join(missing)
    )]
    Partial {
        /// VG name.
        vg: String,
        /// The PVs not found.
        missing: Vec<PvRef>,
    },
    /// Some PVs are flagged `MISSING` in the metadata.
    #[error("VG {vg} has PVs marked MISSING in its metadata: {}", join(missing))]
    MissingPvs {
        /// VG name.
        vg: String,
        /// The PVs flagged.
        missing: Vec<PvRef>,
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
}

/// Every reason lvm2 would refuse to activate anything in this VG, judged from its
/// metadata: PVs flagged missing, exported, a foreign system id, a lock manager, in that
/// order. `local_system_id` is this host's `system_id` (`None`: no system id set, which
/// only accepts VGs without one; an empty system id is none, as in lvm2).
pub fn activation_blockers(vg: &VolumeGroup, local_system_id: Option<&str>) -> Vec<Blocker> {
    let mut out = Vec::new();
    let flagged: Vec<PvRef> = vg
        .pvs
        .iter()
        .filter(|p| p.is_missing())
        .map(PvRef::from)
        .collect();
    if !flagged.is_empty() {
        out.push(Blocker::MissingPvs {
            vg: vg.name.clone(),
            missing: flagged,
        });
    }
    if vg.status.contains("EXPORTED") {
        out.push(Blocker::Exported {
            vg: vg.name.clone(),
        });
    }
    if let Some(sid) = &vg.system_id
        && !sid.is_empty()
        && Some(sid.as_str()) != local_system_id
    {
        out.push(Blocker::ForeignSystemId {
            vg: vg.name.clone(),
            system_id: sid.clone(),
            local: local_system_id.map(str::to_string),
        });
    }
    if let Some(lt) = &vg.lock_type
        && lt != "none"
    {
        out.push(Blocker::LockType {
            vg: vg.name.clone(),
            lock_type: lt.clone(),
        });
    }
    out
}

/// [`activation_blockers`] of a scanned VG, led by [`Blocker::Partial`] when PVs of the
/// VG were not found.
pub fn scanned_blockers(s: &ScannedVg, local_system_id: Option<&str>) -> Vec<Blocker> {
    let missing: Vec<PvRef> = s.missing_pvs().map(PvRef::from).collect();
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(Blocker::Partial {
            vg: s.vg.name.clone(),
            missing,
        });
    }
    out.extend(activation_blockers(&s.vg, local_system_id));
    out
}
