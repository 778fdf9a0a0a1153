//! Reading a wrapped device's whole state back from the kernel.
#![forbid(unsafe_code)]

use super::error::{SnapError, SnapResult};
use super::{Wrapper, devnum};
use crate::StatusFlush;
use crate::kernel::id::DmName;
use crate::targets::{
    ExceptionStore, Snapshot as SnapTarget, SnapshotStatus, SnapshotUsage, Target, TargetStatus,
};
use crate::units::Sectors;
use crate::{DevNum, DeviceInfo, Which};

/// One device's info and the single target of its live and inactive tables.
#[derive(Debug, Clone)]
pub(crate) struct Dev {
    pub name: DmName,
    pub info: DeviceInfo,
    pub live: Option<Target>,
    pub inactive: Option<Target>,
    pub length: Sectors,
}

/// Everything about a wrapper, as the kernel has it now.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub origin: Dev,
    pub real: Option<Dev>,
    pub snapshots: Vec<Dev>,
    /// The `-cow` layers of persistent snapshots made with a dmsnap record.
    pub cows: Vec<Dev>,
}

impl State {
    /// The backing device: what the origin (plain) or `-real` maps linearly.
    pub fn backing(&self) -> Option<DevNum> {
        let lin = |d: &Dev| match &d.live {
            Some(Target::Linear(l)) => devnum(&l.device),
            _ => None,
        };
        lin(&self.origin).or_else(|| self.real.as_ref().and_then(lin))
    }

    /// The `-cow` layer whose device number is `cow`, if it is one.
    pub fn cow_layer(&self, cow: DevNum) -> Option<&Dev> {
        self.cows.iter().find(|c| c.info.dev == cow)
    }

    /// The device a snapshot's COW really is: the COW device under a `-cow` layer, else
    /// `cow` itself.
    pub fn raw_cow(&self, cow: DevNum) -> DevNum {
        self.cow_layer(cow)
            .and_then(|c| match &c.live {
                Some(Target::Linear(l)) => devnum(&l.device),
                _ => None,
            })
            .unwrap_or(cow)
    }
}

impl Wrapper<'_> {
    fn read_dev(&self, name: DmName, info: DeviceInfo) -> SnapResult<Dev> {
        let first = |w: Which| -> SnapResult<(Option<Target>, Sectors)> {
            let t = self.dm.table(&name, w)?;
            let len = t.size().unwrap_or(Sectors(0));
            Ok((t.into_lines().into_iter().next().map(|l| l.target), len))
        };
        let (live, length) = if info.has_live_table() {
            first(Which::Live)?
        } else {
            (None, Sectors(0))
        };
        let (inactive, _) = if info.has_inactive_table() {
            first(Which::Inactive)?
        } else {
            (None, Sectors(0))
        };
        Ok(Dev {
            name,
            info,
            live,
            inactive,
            length,
        })
    }

    pub(crate) fn state(&self) -> SnapResult<State> {
        let info = match self.dm.info(&self.name) {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                return Err(SnapError::NoSuchDevice {
                    name: self.name.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let origin = self.read_dev(self.name.clone(), info)?;
        let real_uuid = self.real_uuid()?;
        let real = match self.dm.info(&real_uuid) {
            Ok(i) => Some(self.read_dev(i.name.clone(), i)?),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let prefix = self.snap_uuid_prefix();
        let cow_prefix = self.cow_uuid_prefix();
        let mut snapshots = Vec::new();
        let mut cows = Vec::new();
        for d in self.dm.list()? {
            let Some(u) = d.uuid.as_deref() else {
                continue;
            };
            let into = if u.starts_with(&prefix) {
                &mut snapshots
            } else if u.starts_with(&cow_prefix) {
                &mut cows
            } else {
                continue;
            };
            let n = DmName::new(&d.name)?;
            match self.dm.info(&n) {
                Ok(i) => into.push(self.read_dev(n, i)?),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        cows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(State {
            origin,
            real,
            snapshots,
            cows,
        })
    }

    /// The wrapper's state: plain, snapshotted or merging, with each snapshot's usage.
    ///
    /// # Errors
    /// A device-mapper call fails or the device is not a wrapper.
    pub fn status(&self) -> SnapResult<WrapperStatus> {
        let st = self.state()?;
        let mut snapshots = Vec::new();
        for s in &st.snapshots {
            let Some(Target::Snapshot(t)) = &s.live else {
                continue;
            };
            let status = self.dm.status(&s.name, Which::Live, StatusFlush::NoFlush)?;
            let status = match status.first().map(|l| &l.status) {
                Some(TargetStatus::Snapshot(x)) => *x,
                _ => SnapshotStatus::Unknown,
            };
            let mut r = SnapshotReport::new(s.name.to_string(), t, status);
            r.cow = r.cow.map(|c| st.raw_cow(c));
            snapshots.push(r);
        }
        let state = match &st.origin.live {
            Some(Target::SnapshotMerge(t)) => {
                let status = self
                    .dm
                    .status(&st.origin.name, Which::Live, StatusFlush::NoFlush)?;
                let status = match status.first().map(|l| &l.status) {
                    Some(TargetStatus::SnapshotMerge(x)) => *x,
                    _ => SnapshotStatus::Unknown,
                };
                let mut r = SnapshotReport::new(format!("{} (merging)", self.name), t, status);
                r.cow = r.cow.map(|c| st.raw_cow(c));
                r.state = match status {
                    SnapshotStatus::MergeFailed => SnapshotState::MergeFailed,
                    SnapshotStatus::Invalid => SnapshotState::Invalid,
                    _ => SnapshotState::Merging,
                };
                WrapperState::Merging(r)
            }
            Some(Target::SnapshotOrigin(_)) => WrapperState::Snapshotted,
            Some(Target::Linear(_)) => WrapperState::Plain,
            _ => WrapperState::Unknown,
        };
        Ok(WrapperStatus {
            name: self.name.to_string(),
            backing: st.backing(),
            size: st.origin.length,
            open_count: st.origin.info.open_count,
            suspended: st.origin.info.suspended(),
            state,
            snapshots,
        })
    }
}

/// What state a wrapper is in.
#[derive(Debug, Clone, PartialEq)]
pub enum WrapperState {
    /// A plain linear device.
    Plain,
    /// One or more snapshots are active.
    Snapshotted,
    /// A rollback is merging a snapshot into the origin.
    Merging(SnapshotReport),
    /// A table this crate did not make (changed by hand?).
    Unknown,
}

/// Status of a wrapper and its snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct WrapperStatus {
    /// Device name.
    pub name: String,
    /// The backing device.
    pub backing: Option<DevNum>,
    /// Size in sectors.
    pub size: Sectors,
    /// Open count of the origin.
    pub open_count: i32,
    /// Whether the origin is suspended (it never should be at rest).
    pub suspended: bool,
    /// Plain, snapshotted or merging.
    pub state: WrapperState,
    /// Active snapshots.
    pub snapshots: Vec<SnapshotReport>,
}

/// One snapshot (or a merge) with its usage.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotReport {
    /// Snapshot device name.
    pub name: String,
    /// COW device.
    pub cow: Option<DevNum>,
    /// Chunk size.
    pub chunk: Sectors,
    /// Persistent, persistent with overflow, or transient.
    pub store: ExceptionStore,
    /// Active, invalid, overflowed, merging or merge-failed.
    pub state: SnapshotState,
    /// Usage when the kernel reports it.
    pub usage: Option<SnapshotUsage>,
}

impl SnapshotReport {
    fn new(name: String, t: &SnapTarget, status: SnapshotStatus) -> Self {
        let (state, usage) = match status {
            SnapshotStatus::Active(u) => (SnapshotState::Active, Some(u)),
            SnapshotStatus::Invalid => (SnapshotState::Invalid, None),
            SnapshotStatus::Overflow => (SnapshotState::Overflow, None),
            SnapshotStatus::MergeFailed => (SnapshotState::MergeFailed, None),
            _ => (SnapshotState::Unknown, None),
        };
        Self {
            name,
            cow: devnum(&t.cow),
            chunk: t.chunk_size,
            store: t.store,
            state,
            usage,
        }
    }

    /// Percent of the COW in use.
    pub fn used_percent(&self) -> Option<f64> {
        self.usage.as_ref().and_then(SnapshotUsage::used_percent)
    }

    /// The store's kind in words: `persistent`, `persistent-overflow` or `transient`.
    ///
    /// ```
    /// # use devmapper::targets::ExceptionStore;
    /// use devmapper::snapshot::SnapshotReport;
    /// assert_eq!(SnapshotReport::store_name(ExceptionStore::Transient), "transient");
    /// ```
    pub fn store_name(store: ExceptionStore) -> &'static str {
        match store {
            ExceptionStore::Persistent => "persistent",
            ExceptionStore::PersistentOverflow => "persistent-overflow",
            ExceptionStore::Transient => "transient",
        }
    }
}

/// The state of one snapshot, or of a merge, in a [`SnapshotReport`]; `Display` gives the
/// word (`active`, `invalid`, `overflow`, `merging`, `merge-failed`, `unknown`).
///
/// ```
/// use devmapper::snapshot::SnapshotState;
/// assert_eq!(SnapshotState::MergeFailed.to_string(), "merge-failed");
/// assert_eq!(SnapshotState::Active.as_str(), "active");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotState {
    /// Working, usage reported.
    Active,
    /// Dropped by the kernel (full, or an I/O error): its data is gone.
    Invalid,
    /// A `PO` snapshot filled up through a write to the snapshot itself.
    Overflow,
    /// A rollback is merging it into the origin.
    Merging,
    /// An I/O error stopped the merge (the origin keeps working).
    MergeFailed,
    /// The kernel reports no usable state.
    Unknown,
}

impl SnapshotState {
    /// The word for the state.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Invalid => "invalid",
            Self::Overflow => "overflow",
            Self::Merging => "merging",
            Self::MergeFailed => "merge-failed",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WrapperState {
    /// The word for the state: `plain`, `snapshotted`, `merging` or `unknown`.
    ///
    /// ```
    /// use devmapper::snapshot::WrapperState;
    /// assert_eq!(WrapperState::Snapshotted.as_str(), "snapshotted");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Snapshotted => "snapshotted",
            Self::Merging(_) => "merging",
            Self::Unknown => "unknown",
        }
    }
}

/// The COW device of a snapshot or snapshot-merge target.
pub(crate) fn cow_of(t: &Target) -> Option<crate::DevNum> {
    match t {
        Target::Snapshot(s) | Target::SnapshotMerge(s) => devnum(&s.cow),
        _ => None,
    }
}
