//! How to take and roll back snapshots: [`SnapshotOptions`], [`CowOverwrite`],
//! [`RollbackOptions`].
#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::kernel::id::DmName;
use crate::units::Sectors;

/// What [`Wrapper::take_snapshot`](super::Wrapper::take_snapshot) does when the COW device already holds something
/// recognisable (see [`crate::probe::identify`]): a filesystem, a partition table, an LVM2
/// PV, an md member, LUKS, swap, or a dm-snapshot store with exceptions.
///
/// ```
/// use devmapper::snapshot::{CowOverwrite, SnapshotOptions};
/// let opts = SnapshotOptions::new("/dev/sdc1");
/// assert_eq!(opts.overwrite, CowOverwrite::Refuse);
/// let opts = opts.overwrite(CowOverwrite::Force);
/// assert_eq!(opts.overwrite, CowOverwrite::Force);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CowOverwrite {
    /// Refuse with [`SnapError::CowHoldsData`](super::SnapError::CowHoldsData) or [`SnapError::CowHoldsSnapshot`](super::SnapError::CowHoldsSnapshot) before
    /// anything is written or suspended. An all-zero device, one with nothing recognisable,
    /// and a dm-snapshot store without exceptions (freshly initialised, or fully merged) are
    /// used.
    #[default]
    Refuse,
    /// Overwrite the device's start whatever it holds.
    Force,
}

/// How to take a snapshot.
#[derive(Debug, Clone)]
#[must_use]
pub struct SnapshotOptions {
    /// The COW device (its start is overwritten).
    pub cow: PathBuf,
    /// What to do when the COW device holds something recognisable (default: refuse).
    pub overwrite: CowOverwrite,
    /// Chunk size (default 8 sectors = 4 KiB, as LVM).
    pub chunk: Sectors,
    /// A transient store (nothing kept on the COW across a reboot; cannot be rolled back).
    pub transient: bool,
    /// Name of the snapshot device (default `<origin>-snap`).
    pub name: Option<DmName>,
}

impl SnapshotOptions {
    /// A persistent snapshot on `cow` with 4 KiB chunks.
    pub fn new(cow: impl Into<PathBuf>) -> Self {
        Self {
            cow: cow.into(),
            overwrite: CowOverwrite::Refuse,
            chunk: Sectors(8),
            transient: false,
            name: None,
        }
    }
    /// Set the policy for a COW device that holds something recognisable.
    pub fn overwrite(mut self, policy: CowOverwrite) -> Self {
        self.overwrite = policy;
        self
    }
    /// Set the chunk size.
    pub fn chunk(mut self, chunk: Sectors) -> Self {
        self.chunk = chunk;
        self
    }
    /// Use a transient store.
    pub fn transient(mut self, t: bool) -> Self {
        self.transient = t;
        self
    }
    /// Name the snapshot device.
    pub fn name(mut self, name: DmName) -> Self {
        self.name = Some(name);
        self
    }
}

/// Options of [`Snapshot::rollback`](super::Snapshot::rollback).
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct RollbackOptions {
    /// Merge even though the origin is open (mounted): its data changes underneath.
    pub force: bool,
}
