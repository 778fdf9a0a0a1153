//! [`SetError`]: why a set was refused or failed, and which member.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use super::SetSource;
use crate::lvm::write::error::WriteError;
use crate::snapshot::SnapError;

/// Why [`SnapshotSet::take`](super::SnapshotSet::take) failed. Unless the kind says so
/// ([`SetErrorKind::AfterCommit`], [`SetErrorKind::BoundExceeded`] with leftovers),
/// nothing of the set is left: no new device, no metadata change, nothing suspended.
///
/// ```
/// use devmapper::snapshot_set::{SetErrorKind, SetOptions, SnapshotSet};
/// # let dm = devmapper::DeviceMapper::new();
/// # let Ok(dm) = dm else { return Ok(()) };
/// match SnapshotSet::new().take(&dm, &SetOptions::new("example")) {
///     Err(e) => assert!(matches!(e.kind, SetErrorKind::Empty)),
///     Ok(_) => unreachable!(),
/// }
/// # Ok::<(), devmapper::snapshot_set::SetError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}", match member { Some(m) => format!("{m}: {kind}"), None => kind.to_string() })]
#[non_exhaustive]
pub struct SetError {
    /// The member the error is about, when it is about one.
    pub member: Option<SetSource>,
    /// What went wrong.
    #[source]
    pub kind: SetErrorKind,
}

impl SetError {
    pub(crate) fn new(member: Option<SetSource>, kind: SetErrorKind) -> Self {
        SetError { member, kind }
    }
}

/// What went wrong in a [`SetError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetErrorKind {
    /// The set has no member.
    #[error("no volume to snapshot")]
    Empty,
    /// A source is in the set twice.
    #[error("{0} is in the set twice")]
    Duplicate(SetSource),
    /// Two members would create snapshot devices of the same name.
    #[error("two snapshots would be named {name}")]
    SnapshotNameTwice {
        /// The device name.
        name: String,
    },
    /// Two members would use the same COW device.
    #[error("{} is the COW device of {other} too", path.display())]
    SameCow {
        /// The COW device.
        path: PathBuf,
        /// The other member (as [`SetSource`] displays it).
        other: String,
    },
    /// The members' origins are stacked on each other in a circle (only a corrupt or
    /// hostile kernel reply can say so): no suspend order is safe.
    #[error(
        "the origins of {} are stacked on each other in a circle",
        list(members)
    )]
    StackCycle {
        /// The members on the cycle.
        members: Vec<SetSource>,
    },
    /// A VG's metadata would be written while a device it lies on is suspended (its PV is
    /// a member's origin or is built on one): the commit would wait for the resume.
    #[error(
        "the metadata of volume group {vg} lies on this volume, which the set suspends: take them in two sets"
    )]
    MetadataOnMember {
        /// The VG (the member its PV is, or is built on, is [`SetError::member`]).
        vg: String,
    },
    /// A wrapped device's workflow refused or failed (see [`SetError::member`]).
    #[error(transparent)]
    Snap(Box<SnapError>),
    /// An LVM step refused or failed (see [`SetError::member`]).
    #[error(transparent)]
    Write(Box<WriteError>),
    /// A device-mapper call failed.
    #[error("cannot {step} {device}: {source}")]
    Dm {
        /// What was being done (`suspend`, `resume`, `deps`, `guard` ...).
        step: &'static str,
        /// The device.
        device: String,
        /// The kernel's error.
        source: Box<crate::Error>,
    },
    /// The freeze outlasted [`SetOptions::bound`](super::SetOptions::bound): the guardian
    /// resumed everything and the set was abandoned (its snapshots dropped again).
    #[error(
        "the freeze outlasted {bound:?}: every origin was resumed and the set abandoned{}",
        if left.is_empty() { String::new() } else { format!("; left behind: {}", left.join("; ")) }
    )]
    BoundExceeded {
        /// The bound.
        bound: Duration,
        /// What could not be cleaned up (empty: nothing of the set is left).
        left: Vec<String>,
    },
    /// The LVM metadata was committed (the snapshots exist) but something after the commit
    /// failed: the devices are resumed as far as possible; LVM activation reconciles.
    #[error("{what}: {source}")]
    AfterCommit {
        /// What was not done.
        what: String,
        /// Why.
        source: Box<SetError>,
    },
}

impl From<SnapError> for SetErrorKind {
    fn from(e: SnapError) -> Self {
        SetErrorKind::Snap(Box::new(e))
    }
}

impl From<WriteError> for SetErrorKind {
    fn from(e: WriteError) -> Self {
        SetErrorKind::Write(Box::new(e))
    }
}

fn list(members: &[SetSource]) -> String {
    members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
