//! `lvconvert --merge VG/SNAP`: rolling an origin back to one of its snapshots, by lvm2's
//! rules (`tools/lvconvert.c` `_lvconvert_merge_old_snapshot`, `lvconvert_poll.c`).
//!
//! * Refused: an origin already merging, a read-only origin (`Use lvchange -p rw`), an
//!   invalid snapshot ([`MergeError`]).
//! * The metadata: the snapshot segment's `cow_store` becomes `merging_store`, `snapshotN`
//!   loses `VISIBLE` ([`start_merge`]).
//! * Started at once ([`MergeStart::Started`]) when the origin is active and neither the
//!   origin nor the snapshot is open: committed, then the origin's device gets
//!   `snapshot-merge <real> <cow> P <chunk>` and the snapshot's device an `error` table
//!   (the exceptions are handed over from the suspended snapshot), as lvm2 loads them.
//!   The origin shows the snapshot's content at once.
//! * Otherwise only committed ([`MergeStart::DelayedOriginOpen`]: `Delaying merge since origin is
//!   open.`; [`MergeStart::OnActivation`] for an inactive origin): the next activation
//!   (ours, [`crate::lvm::activate`], or lvm2's `vgchange -ay`) starts it before anything
//!   opens the origin.
//! * Finished ([`finish_done`], [`wait`]) once the kernel says every chunk is back
//!   (`snapshot-merge` status `used == metadata`): one commit without `snapshotN` and the
//!   COW LV, the origin back to its own table, the `-real`, `-cow` and snapshot devices
//!   removed. Works for merges started by lvm2 that nobody polls.
//!
//! Crash safety: a merge start commits first and switches the devices after, a finish
//! switches the devices first and commits after; in both cases an interruption leaves
//! metadata that the next activation ([`crate::lvm::reconcile`]) carries forward: a
//! committed merge is (re)started, a finished merge whose commit is missing is restarted
//! on the empty COW, done at once, and finished by the next poll.
//!
//! ```no_run
//! use devmapper::lvm::write::session::WriteOptions;
//! use devmapper::lvm::write::snapshot::merge::{self, MergeStart};
//! let opts = WriteOptions::new("example: merge vg0/snap");
//! let started = merge::merge("vg0", "snap", &opts)?;
//! if started.start == MergeStart::Started {
//!     merge::wait("vg0", &started.origin, &opts, |p| eprintln!("{} sectors left", p.remaining.0))?;
//! } else {
//!     println!("{}", started.start);
//! }
//! # Ok::<(), devmapper::lvm::write::snapshot::merge::MergeError>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use crate::kernel::{DeviceMapper, StatusFlush, Which};
use crate::lvm::activate::ActivateError;
use crate::lvm::id::LvmId;
use crate::lvm::model::{PhysicalVolume, SegmentKind, VolumeGroup};
use crate::lvm::plan::{PlanOptions, plan_lv};
use crate::lvm::reconcile::{Reconciled, Scope, reconcile};
use crate::lvm::write::error::WriteError;
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::snapshot::fault::step;
use crate::targets::{DevRef, MergeProgress, SnapshotStatus, Target, TargetStatus};
use crate::{DevId, DmUuid};

/// Why a merge was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No such LV.
    #[error("Failed to find logical volume \"{vg}/{lv}\"")]
    NoSuchLv {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// The LV is not a snapshot (a COW LV).
    #[error("Logical volume {vg}/{lv} is not a snapshot.")]
    NotASnapshot {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// The origin has a merge pending already (only one per origin).
    #[error(
        "Cannot merge snapshot {vg}/{lv} into the origin {vg}/{origin} with merging snapshot {vg}/{merging}."
    )]
    AlreadyMerging {
        /// VG name.
        vg: String,
        /// The snapshot asked for.
        lv: String,
        /// Its origin.
        origin: String,
        /// The snapshot (COW LV) merging into it.
        merging: String,
    },
    /// The origin is read-only.
    #[error(
        "Cannot merge snapshot {vg}/{lv} into the read-only origin {vg}/{origin}. (Use lvchange -p rw)."
    )]
    ReadOnlyOrigin {
        /// VG name.
        vg: String,
        /// The snapshot.
        lv: String,
        /// Its origin.
        origin: String,
    },
    /// The snapshot is invalid (overflowed, or an I/O error dropped it).
    #[error("Unable to merge invalidated snapshot LV {vg}/{lv}.")]
    Invalid {
        /// VG name.
        vg: String,
        /// The snapshot.
        lv: String,
    },
    /// No merge is pending into this origin.
    #[error("Logical volume {vg}/{origin} has no merging snapshot.")]
    NotMerging {
        /// VG name.
        vg: String,
        /// The LV given.
        origin: String,
    },
    /// The kernel stopped the merge (`Merge failed`: an I/O error).
    #[error("Merge of snapshot into logical volume {vg}/{origin} has failed.")]
    MergeFailed {
        /// VG name.
        vg: String,
        /// The origin.
        origin: String,
    },
    /// Reading, locking or committing the metadata failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Bringing the devices to the new metadata failed.
    #[error(transparent)]
    Activate(#[from] ActivateError),
    /// A device-mapper query failed.
    #[error("{step} {device}: {source}")]
    Dm {
        /// What was asked.
        step: &'static str,
        /// The device.
        device: String,
        /// The ioctl error.
        #[source]
        source: Box<crate::Error>,
    },
}

/// Result alias of this module.
pub type Result<T, E = MergeError> = std::result::Result<T, E>;

fn dm_err(step: &'static str, device: &str) -> impl FnOnce(crate::Error) -> MergeError {
    let device = device.to_string();
    move |source| MergeError::Dm {
        step,
        device,
        source: Box::new(source),
    }
}

/// The metadata of `vg` with a merge of snapshot `cow` (the COW LV's, i.e. the user's
/// snapshot name) into its origin recorded as lvm2's `init_snapshot_merge` does:
/// `merging_store` instead of `cow_store`, `snapshotN` hidden.
///
/// ```
/// # use devmapper::lvm::model::VolumeGroup;
/// # use devmapper::lvm::config::ParseMode;
/// # fn vg() -> VolumeGroup { unimplemented!() }
/// use devmapper::lvm::write::snapshot::merge::start_merge;
/// # if false {
/// let merging = start_merge(&vg(), "snap")?;
/// assert!(merging.cow_link("snap").unwrap().merging);
/// # }
/// # Ok::<(), devmapper::lvm::write::snapshot::merge::MergeError>(())
/// ```
///
/// # Errors
/// [`MergeError::NoSuchLv`], [`MergeError::NotASnapshot`], [`MergeError::AlreadyMerging`],
/// [`MergeError::ReadOnlyOrigin`].
pub fn start_merge(vg: &VolumeGroup, cow: &str) -> Result<VolumeGroup> {
    let (vg_name, lv) = (vg.name.clone(), cow.to_string());
    if vg.lv(cow).is_none() {
        return Err(MergeError::NoSuchLv { vg: vg_name, lv });
    }
    let link = vg.cow_link(cow).ok_or_else(|| MergeError::NotASnapshot {
        vg: vg_name.clone(),
        lv: lv.clone(),
    })?;
    let origin = link.origin.to_string();
    let merging: Option<String> = vg
        .snapshots_of(&origin)
        .find(|l| l.merging)
        .map(|m| m.cow.to_string());
    if let Some(merging) = merging {
        return Err(MergeError::AlreadyMerging {
            vg: vg_name,
            lv,
            origin,
            merging,
        });
    }
    if !vg.lv(&origin).is_some_and(|o| o.is_writable()) {
        return Err(MergeError::ReadOnlyOrigin {
            vg: vg_name,
            lv,
            origin,
        });
    }
    let internal = link.snapshot_lv.name.clone();
    let mut new = vg.clone();
    for l in &mut new.lvs {
        if l.name != internal {
            continue;
        }
        l.status.remove("VISIBLE");
        for s in &mut l.segments {
            if let SegmentKind::Snapshot { merging, .. } = &mut s.kind {
                *merging = true;
            }
        }
    }
    Ok(new)
}

/// The metadata of `vg` once the merge into `origin` is done: its merging `snapshotN` and
/// the COW LV gone (one change: never a COW LV without its snapshot).
///
/// # Errors
/// [`MergeError::NoSuchLv`], [`MergeError::NotMerging`].
pub fn finish_merge(vg: &VolumeGroup, origin: &str) -> Result<VolumeGroup> {
    if vg.lv(origin).is_none() {
        return Err(MergeError::NoSuchLv {
            vg: vg.name.clone(),
            lv: origin.to_string(),
        });
    }
    let link =
        vg.snapshots_of(origin)
            .find(|l| l.merging)
            .ok_or_else(|| MergeError::NotMerging {
                vg: vg.name.clone(),
                origin: origin.to_string(),
            })?;
    let (internal, cow) = (link.snapshot_lv.name.clone(), link.cow.to_string());
    let mut new = vg.clone();
    new.lvs.retain(|l| l.name != internal && l.name != cow);
    Ok(new)
}

/// Why a merge waits for the next activation (lvm2's messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeStart {
    /// Running now: the origin shows the snapshot's content.
    Started,
    /// The origin is open (`Delaying merge since origin is open.`).
    DelayedOriginOpen,
    /// The snapshot is open (`Delaying merge since snapshot is open.`).
    DelayedSnapshotOpen,
    /// The origin is not active: the merge starts when it is activated.
    OnActivation,
}

impl fmt::Display for MergeStart {
    /// lvm2's line for the case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MergeStart::Started => "Merging started.",
            MergeStart::DelayedOriginOpen => "Delaying merge since origin is open.",
            MergeStart::DelayedSnapshotOpen => "Delaying merge since snapshot is open.",
            MergeStart::OnActivation => "Conversion starts after activation.",
        })
    }
}

/// What [`merge`] did.
#[derive(Clone, Debug)]
pub struct MergeStarted {
    /// The origin the snapshot merges into.
    pub origin: String,
    /// Started or delayed, and why.
    pub start: MergeStart,
    /// The device changes made to start it.
    pub devices: Reconciled,
    /// Non-fatal problems (a backup file not written).
    pub warnings: Vec<String>,
}

fn lv_dm_uuid(vg_id: &LvmId, lv_id: &LvmId) -> Option<DmUuid> {
    DmUuid::new(&format!("LVM-{}{}", vg_id.as_str(), lv_id.as_str())).ok()
}

/// The LV's own dm device, if active.
fn lv_info(dm: &DeviceMapper, vg: &VolumeGroup, lv: &str) -> Result<Option<crate::DeviceInfo>> {
    let Some(l) = vg.lv(lv) else { return Ok(None) };
    let Some(uuid) = lv_dm_uuid(&vg.id, &l.id) else {
        return Ok(None);
    };
    match dm.info(DevId::Uuid(&uuid)) {
        Ok(i) if i.has_live_table() => Ok(Some(i)),
        Ok(_) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(dm_err("info", lv)(e)),
    }
}

/// The first target status of a device.
fn first_status(dm: &DeviceMapper, dev: crate::DevNum) -> Option<TargetStatus> {
    dm.status(dev, Which::Live, StatusFlush::NoFlush)
        .ok()?
        .into_iter()
        .next()
        .map(|l| l.status)
}

/// The ids of the origin and every COW LV of it: the devices a merge changes.
fn stack_ids(vg: &VolumeGroup, origin: &str) -> Vec<LvmId> {
    let mut ids: Vec<LvmId> = vg.lv(origin).map(|l| l.id).into_iter().collect();
    for link in vg.snapshots_of(origin) {
        if let Some(c) = vg.lv(link.cow) {
            ids.push(c.id);
        }
    }
    ids
}

/// Bring the origin's stack to the plan of `vg` (the metadata to be or just committed).
fn switch_origin(
    dm: &DeviceMapper,
    s: &VgSession,
    vg: &VolumeGroup,
    origin: &str,
    ids: &[LvmId],
) -> Result<Reconciled> {
    let dev = |p: &PhysicalVolume| s.pv_devnum(p).map(DevRef::from);
    let plan = plan_lv(vg, origin, &dev, &PlanOptions::default()).map_err(ActivateError::from)?;
    Ok(reconcile(dm, &vg.id, &plan, Scope::Lvs(ids))?)
}

/// `lvconvert --merge VG/SNAP` (see the module documentation): checks, then one commit
/// recording the merge; started at once when the origin is active and neither it nor the
/// snapshot is open.
///
/// # Errors
/// The refusals of [`start_merge`], [`MergeError::Invalid`], the errors of
/// [`VgSession::open`] and of the commit, [`MergeError::Activate`] (the merge is
/// committed: the next activation starts it).
pub fn merge(vg_name: &str, snap: &str, opts: &WriteOptions) -> Result<MergeStarted> {
    let dm = DeviceMapper::new_if_present().map_err(dm_err("open", "/dev/mapper/control"))?;
    let mut s = VgSession::open(vg_name, opts)?;
    let old = s.vg().clone();
    let new = start_merge(&old, snap)?;
    let origin = old
        .cow_link(snap)
        .map(|l| l.origin.to_string())
        .ok_or(WriteError::Internal("snapshot link gone"))?;
    let mut start = MergeStart::OnActivation;
    if let Some(dm) = &dm {
        if let Some(si) = lv_info(dm, &old, snap)? {
            let invalid = matches!(
                first_status(dm, si.dev),
                Some(TargetStatus::Snapshot(
                    SnapshotStatus::Invalid
                        | SnapshotStatus::Overflow
                        | SnapshotStatus::MergeFailed
                ))
            );
            if invalid {
                return Err(MergeError::Invalid {
                    vg: vg_name.into(),
                    lv: snap.into(),
                });
            }
        }
        if let Some(oi) = lv_info(dm, &old, &origin)? {
            let snap_open = lv_info(dm, &old, snap)?.is_some_and(|i| i.open_count > 0);
            start = if oi.open_count > 0 {
                MergeStart::DelayedOriginOpen
            } else if snap_open {
                MergeStart::DelayedSnapshotOpen
            } else {
                MergeStart::Started
            };
        }
    }
    s.precommit(new)?;
    step("lvm-merge", 1);
    s.commit()?;
    step("lvm-merge", 2);
    let mut devices = Reconciled::default();
    if let (MergeStart::Started, Some(dm)) = (start, &dm) {
        let committed = s.vg().clone();
        devices = switch_origin(dm, &s, &committed, &origin, &stack_ids(&old, &origin))?;
        step("lvm-merge", 3);
        // A race (the origin opened meanwhile) leaves it for the next activation.
        if origin_merge_status(dm, &committed, &origin)?.is_none() {
            start = MergeStart::DelayedOriginOpen;
        }
    }
    Ok(MergeStarted {
        origin,
        start,
        devices,
        warnings: s.warnings().to_vec(),
    })
}

/// The kernel's progress of the merge into `origin`: `None` when the origin's device does
/// not run `snapshot-merge`.
///
/// # Errors
/// [`MergeError::MergeFailed`], [`MergeError::Dm`].
pub fn origin_merge_status(
    dm: &DeviceMapper,
    vg: &VolumeGroup,
    origin: &str,
) -> Result<Option<MergeProgress>> {
    let Some(info) = lv_info(dm, vg, origin)? else {
        return Ok(None);
    };
    let table = dm
        .table(info.dev, Which::Live)
        .map_err(dm_err("table", origin))?;
    if !table
        .lines()
        .iter()
        .any(|l| matches!(l.target, Target::SnapshotMerge(_)))
    {
        return Ok(None);
    }
    match first_status(dm, info.dev) {
        Some(TargetStatus::SnapshotMerge(st) | TargetStatus::Snapshot(st)) => {
            match st.merge_progress() {
                Some(p) => Ok(Some(p)),
                None => Err(MergeError::MergeFailed {
                    vg: vg.name.clone(),
                    origin: origin.to_string(),
                }),
            }
        }
        _ => Ok(None),
    }
}

/// A merge [`finish_done`] finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeFinished {
    /// The origin.
    pub origin: String,
    /// The snapshot (COW LV) that was merged and is now gone.
    pub snapshot: String,
    /// The device changes.
    pub devices: Reconciled,
}

/// Finish every merge of the VG (`origin: None`) or into one origin whose kernel merge is
/// done: per origin, the origin's devices back to the plan without the snapshot (its own
/// table, or `snapshot-origin` for the snapshots left), then one commit without
/// `snapshotN` and the COW LV. Merges still running, or not started, are left alone.
///
/// # Errors
/// The errors of [`VgSession::open`] and of the commit, [`MergeError::MergeFailed`],
/// [`MergeError::Activate`].
pub fn finish_done(
    vg_name: &str,
    origin: Option<&str>,
    opts: &WriteOptions,
) -> Result<Vec<MergeFinished>> {
    let Some(dm) = DeviceMapper::new_if_present().map_err(dm_err("open", "/dev/mapper/control"))?
    else {
        return Ok(Vec::new());
    };
    let mut s = VgSession::open(vg_name, opts)?;
    let mut done = Vec::new();
    let merging: Vec<(String, String)> = s
        .vg()
        .snapshot_links()
        .filter(|l| l.merging && origin.is_none_or(|o| o == l.origin))
        .map(|l| (l.origin.to_string(), l.cow.to_string()))
        .collect();
    for (o, cow) in merging {
        let old = s.vg().clone();
        if !origin_merge_status(&dm, &old, &o)?.is_some_and(|p| p.done) {
            continue;
        }
        let new = finish_merge(&old, &o)?;
        s.precommit(new.clone())?;
        step("lvm-merge-finish", 1);
        let devices = switch_origin(&dm, &s, &new, &o, &stack_ids(&old, &o))?;
        step("lvm-merge-finish", 2);
        s.commit()?;
        step("lvm-merge-finish", 3);
        done.push(MergeFinished {
            origin: o,
            snapshot: cow,
            devices,
        });
    }
    Ok(done)
}

/// Wait for the merge into `origin` to finish, calling `progress` with the kernel's
/// figures about five times a second, then [`finish_done`] it. Returns at once with
/// `None` when no merge into `origin` runs (nothing merging, or delayed).
///
/// # Errors
/// [`MergeError::MergeFailed`], the errors of [`finish_done`].
pub fn wait(
    vg_name: &str,
    origin: &str,
    opts: &WriteOptions,
    mut progress: impl FnMut(MergeProgress),
) -> Result<Option<MergeFinished>> {
    let Some(dm) = DeviceMapper::new_if_present().map_err(dm_err("open", "/dev/mapper/control"))?
    else {
        return Ok(None);
    };
    let vg = {
        let s = VgSession::open(vg_name, opts)?;
        s.vg().clone()
    };
    if !vg.snapshots_of(origin).any(|l| l.merging) {
        return Ok(None);
    }
    loop {
        match origin_merge_status(&dm, &vg, origin)? {
            None => return Ok(None),
            Some(p) => {
                progress(p);
                if p.done {
                    return Ok(finish_done(vg_name, Some(origin), opts)?.into_iter().next());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
