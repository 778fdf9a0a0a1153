//! What can go wrong while writing: [`WriteError`], the one error type of the writing
//! operations ([`super::session`], [`super::ops`]). It wraps the errors of the pieces
//! (printing, committing, locking, allocating, PV labels, names) and adds the refusals
//! lvm2 makes before it writes anything, with lvm2's wording where lvm2 has one.
//!
//! ```
//! use devmapper::lvm::write::error::WriteError;
//! let e = WriteError::LockType { vg: "vg0".into(), lock_type: "sanlock".into() };
//! assert_eq!(
//!     e.to_string(),
//!     "Cannot access VG vg0 with lock type sanlock that requires lvmlockd."
//! );
//! assert!(e.is_refusal());
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;

use crate::lvm::check::PvRef;
use crate::probe::{Found, ProbeError};

/// A device (by path) with what it holds: [`WriteError::AreasDisagree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AreaRef {
    /// The device.
    pub path: PathBuf,
    /// Byte offset of the metadata area on it.
    pub offset: u64,
}

impl fmt::Display for AreaRef {
    /// `path (metadata area at byte N)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (metadata area at byte {})",
            self.path.display(),
            self.offset
        )
    }
}

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

fn found_list(found: &[Found]) -> String {
    join(found)
}

/// Any failure of a writing operation. Nothing was committed unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    // ---- refusals (nothing written) ----
    /// The VG is shared through lvmlockd (`lock_type`): lvmlockd owns its locks.
    #[error("Cannot access VG {vg} with lock type {lock_type} that requires lvmlockd.")]
    LockType {
        /// VG name.
        vg: String,
        /// `lock_type` from the metadata.
        lock_type: String,
    },
    /// The VG belongs to another host (`system_id`).
    #[error("Cannot access VG {vg} with system ID {system_id} with {}.", match local { Some(l) => format!("local system ID {l}"), None => "unknown local system ID".to_string() })]
    ForeignSystemId {
        /// VG name.
        vg: String,
        /// The VG's system id.
        system_id: String,
        /// This host's system id, if set.
        local: Option<String>,
    },
    /// PVs of the VG were not found, or are flagged missing in the metadata.
    #[error(
        "Cannot change VG {vg} while PVs are missing: {} (give every PV of the VG).",
        join(missing)
    )]
    Partial {
        /// VG name.
        vg: String,
        /// The PVs not found or flagged `MISSING`.
        missing: Vec<PvRef>,
    },
    /// The VG is exported (`vgexport`).
    #[error("Volume group {vg} is exported")]
    Exported {
        /// VG name.
        vg: String,
    },
    /// The VG's metadata holds something the printer cannot write back unchanged
    /// (an unknown segment type, keys it does not know): writing it would lose it.
    #[error(
        "Cannot update volume group {vg} with segments or settings that cannot be written back unchanged: {reason}"
    )]
    Unprintable {
        /// VG name.
        vg: String,
        /// What the printer could not reproduce.
        reason: String,
    },
    /// The VG's newest metadata does not import.
    #[error("VG {vg}: its newest metadata (seqno {seqno}) does not import: {reason}")]
    Unreadable {
        /// VG name.
        vg: String,
        /// The seqno of that copy.
        seqno: u64,
        /// Why.
        reason: String,
    },
    /// Two metadata areas hold different text under the same seqno: lvm2 would not know
    /// which is the VG either.
    #[error(
        "VG {vg}: metadata areas disagree at seqno {seqno} (same seqno, different text): {}; repair with lvm2 (vgck --updatemetadata) first",
        join(areas)
    )]
    AreasDisagree {
        /// VG name.
        vg: String,
        /// The seqno.
        seqno: u64,
        /// The areas that differ from the first one read.
        areas: Vec<AreaRef>,
    },
    /// A metadata area of a PV of the VG cannot be read.
    #[error("VG {vg}: metadata area on {area} cannot be read: {reason}")]
    AreaUnreadable {
        /// VG name.
        vg: String,
        /// The area.
        area: AreaRef,
        /// Why.
        reason: String,
    },
    /// No VG of that name on the devices scanned.
    #[error("Volume group \"{vg}\" not found")]
    VgNotFound {
        /// VG name.
        vg: String,
    },
    /// Several VGs of that name on the devices scanned.
    #[error("Multiple VGs found with the same name: {vg} ({count} VG ids); give --devices")]
    VgAmbiguous {
        /// VG name.
        vg: String,
        /// How many VG ids carry it.
        count: usize,
    },
    /// `vgcreate` of a name that exists.
    #[error("A volume group called {vg} already exists.")]
    VgExists {
        /// VG name.
        vg: String,
    },
    /// `lvcreate` of a name the VG already holds.
    #[error("Logical Volume \"{lv}\" already exists in volume group \"{vg}\"")]
    LvExists {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// The LV asked for is not in the VG.
    #[error("Failed to find logical volume \"{vg}/{lv}\"")]
    LvNotFound {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// The LV's device is open (mounted, held by a process or another dm device).
    #[error("Logical volume {vg}/{lv} {}.", match holders { true => "is used by another device", false => "in use" })]
    LvOpen {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
        /// The kernel's open count.
        open_count: i32,
        /// Another block device holds it (sysfs `holders/`).
        holders: bool,
    },
    /// `vgremove` of a VG that still has LVs.
    #[error("Volume group \"{vg}\" still contains {count} logical volume(s)")]
    VgNotEmpty {
        /// VG name.
        vg: String,
        /// How many LVs.
        count: usize,
    },
    /// The PV belongs to a VG (`pvcreate`, `vgcreate`, `pvremove` without force).
    #[error("{}", match op { PvOp::Remove => format!("PV {} is used by VG {vg} so please use vgreduce first.", path.display()), _ => format!("Physical volume '{}' is already in volume group '{vg}'", path.display()) })]
    PvInVg {
        /// The device.
        path: PathBuf,
        /// Its VG.
        vg: String,
        /// What was asked.
        op: PvOp,
    },
    /// The device is not a PV (`vgcreate`, `pvremove`).
    #[error("No PV found on device {}.", path.display())]
    NotAPv {
        /// The device.
        path: PathBuf,
    },
    /// The device holds something recognisable; nothing was written.
    #[error(
        "{} holds {}: refusing to overwrite it unless forced",
        path.display(),
        found_list(found)
    )]
    HoldsData {
        /// The device.
        path: PathBuf,
        /// What was found (see [`crate::probe::identify`]).
        found: Vec<Found>,
    },
    /// The same device named twice.
    #[error("device {} given more than once", path.display())]
    DuplicateDevice {
        /// The device.
        path: PathBuf,
    },
    /// A size that does not parse, is zero or too large.
    #[error("invalid size {text:?}: {reason}")]
    BadSize {
        /// As given.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// An option value lvm2 would refuse.
    #[error("{0}")]
    BadOption(String),
    /// Something this crate does not write (yet): snapshot LVs, thin LVs, RAID ...
    #[error("{0}")]
    Unsupported(String),

    // ---- the pieces ----
    /// A VG or LV name lvm2 refuses.
    #[error(transparent)]
    Name(#[from] crate::lvm::names::NameError),
    /// Taking an lvm2 lock file failed.
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    /// The VG cannot be printed back unchanged.
    #[error(transparent)]
    Print(#[from] super::text::PrintError),
    /// Allocation failed (not enough free space: lvm2's message) or the layout check
    /// found a fault.
    #[error(transparent)]
    Alloc(#[from] super::alloc::AllocError),
    /// Writing the metadata failed (the size limit, an I/O error); the areas already
    /// written were reverted.
    #[error(transparent)]
    Commit(#[from] super::commit::CommitError),
    /// [`WriteError::Commit`] about one device (the commit error names it by index):
    /// its path.
    #[error("{}: {source}", device.display())]
    CommitOn {
        /// The device the error is about.
        device: PathBuf,
        /// The commit error.
        #[source]
        source: Box<super::commit::CommitError>,
    },
    /// A PV label could not be written or wiped.
    #[error(transparent)]
    Pv(#[from] super::pv::PvError),
    /// An archive file could not be written (nothing was written to the PVs).
    #[error(transparent)]
    Backup(#[from] super::backup::BackupError),
    /// A snapshot operation was refused (chunk size, COW size, origin, removal rules).
    #[error(transparent)]
    Snapshot(#[from] super::snapshot::SnapshotError),

    // ---- failures underneath ----
    /// Reading PVs or metadata failed.
    #[error(transparent)]
    Read(#[from] crate::lvm::Error),
    /// Activating or deactivating failed.
    #[error(transparent)]
    Activate(#[from] crate::lvm::activate::ActivateError),
    /// A device-mapper call failed.
    #[error("{step} {device}: {source}")]
    Dm {
        /// What was done.
        step: &'static str,
        /// The dm device.
        device: String,
        /// The ioctl error.
        #[source]
        source: Box<crate::Error>,
    },
    /// Opening, reading or writing a device failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The device or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content of a device could not be probed.
    #[error("{}: cannot check what it holds: {source}", path.display())]
    Probe {
        /// The device.
        path: PathBuf,
        /// Why.
        #[source]
        source: ProbeError,
    },
    /// The new metadata, parsed back, is not the VG it was printed from (a printer bug
    /// caught before anything was written).
    #[error(
        "VG {vg}: the metadata printed for seqno {seqno} does not parse back to the same VG: {reason}"
    )]
    SelfCheck {
        /// VG name.
        vg: String,
        /// The seqno printed.
        seqno: u64,
        /// What differs.
        reason: String,
    },
    /// A step after the commit failed: the metadata is committed, this part is not done.
    #[error("{what} (the metadata change is committed): {source}")]
    AfterCommit {
        /// What was not done.
        what: String,
        /// Why.
        #[source]
        source: Box<WriteError>,
    },
    /// The session was used out of order (commit without precommit ...).
    #[error("internal: {0}")]
    Internal(&'static str),
}

/// The PV operation a [`WriteError::PvInVg`] refusal came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PvOp {
    /// `pvcreate`.
    Create,
    /// `vgcreate`.
    AddToVg,
    /// `pvremove`.
    Remove,
}

impl WriteError {
    /// A refusal before anything was written (as opposed to a failure underneath).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            WriteError::Read(_)
                | WriteError::Activate(_)
                | WriteError::Dm { .. }
                | WriteError::Io { .. }
                | WriteError::Probe { .. }
                | WriteError::SelfCheck { .. }
                | WriteError::AfterCommit { .. }
                | WriteError::Internal(_)
                | WriteError::Lock(_)
                | WriteError::Commit(_)
                | WriteError::CommitOn { .. }
                | WriteError::Pv(_)
                | WriteError::Backup(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WriteError {
        let path = path.into();
        move |source| WriteError::Io { path, source }
    }

    pub(crate) fn dm(step: &'static str, device: &str) -> impl FnOnce(crate::Error) -> WriteError {
        let device = device.to_string();
        move |source| WriteError::Dm {
            step,
            device,
            source: Box::new(source),
        }
    }
}

/// Result alias of the writing operations.
pub type Result<T, E = WriteError> = std::result::Result<T, E>;
