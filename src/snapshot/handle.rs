//! Handles on a wrapper's snapshots and on a running merge.
#![forbid(unsafe_code)]

use crate::StatusFlush;
use std::path::PathBuf;

use super::Wrapper;
use super::error::{SnapError, SnapResult, WrongStateKind};
use crate::Which;
use crate::kernel::id::DmName;
use crate::targets::{SnapshotStatus, SnapshotUsage, Target, TargetStatus};

/// An active snapshot of a [`Wrapper`]: discard it, or roll the origin back to it.
#[derive(Debug)]
pub struct Snapshot<'w, 'dm> {
    pub(super) wrapper: &'w Wrapper<'dm>,
    pub(super) name: DmName,
}

/// A rollback in progress: the origin is usable while the kernel merges.
#[derive(Debug)]
pub struct Merging<'w, 'dm> {
    pub(super) wrapper: &'w Wrapper<'dm>,
}

/// Where a merge stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MergeState {
    /// Still copying: the usage of the merging store.
    Running(SnapshotUsage),
    /// All exceptions are merged; [`Merging::finish`](super::Merging::finish) restores the plain table.
    Done,
    /// The kernel reported `Merge failed` (I/O error); the origin keeps working.
    Failed,
}

impl<'dm> Wrapper<'dm> {
    /// The snapshots that exist now.
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn snapshots(&self) -> SnapResult<Vec<Snapshot<'_, 'dm>>> {
        Ok(self
            .state()?
            .snapshots
            .into_iter()
            .filter(|s| matches!(s.live, Some(Target::Snapshot(_))))
            .map(|s| Snapshot {
                wrapper: self,
                name: s.name,
            })
            .collect())
    }

    /// The snapshot named `name`, or the only one when `name` is `None`.
    ///
    /// # Errors
    /// No snapshot, several and none named, or no snapshot of that name.
    pub fn snapshot(&self, name: Option<&DmName>) -> SnapResult<Snapshot<'_, 'dm>> {
        let mut snaps = self.snapshots()?;
        match name {
            Some(n) => {
                snaps
                    .into_iter()
                    .find(|s| &s.name == n)
                    .ok_or_else(|| SnapError::WrongState {
                        name: self.name.to_string(),
                        kind: WrongStateKind::NotASnapshot {
                            snapshot: n.to_string(),
                            wrapper: self.name.to_string(),
                        },
                    })
            }
            None if snaps.len() == 1 => Ok(snaps.remove(0)),
            None if snaps.is_empty() => Err(SnapError::NoSnapshot {
                name: self.name.to_string(),
            }),
            None => Err(SnapError::Ambiguous {
                name: self.name.to_string(),
                snaps: snaps.iter().map(|s| s.name.to_string()).collect(),
            }),
        }
    }

    /// The merge in progress, if a rollback is running (or done but not finished).
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn merging(&self) -> SnapResult<Option<Merging<'_, 'dm>>> {
        let st = self.state()?;
        Ok(matches!(st.origin.live, Some(Target::SnapshotMerge(_)))
            .then_some(Merging { wrapper: self }))
    }
}

impl<'w, 'dm> Snapshot<'w, 'dm> {
    /// The snapshot device's name.
    pub fn name(&self) -> &DmName {
        &self.name
    }

    /// `/dev/mapper/<snapshot>`: the frozen view (mount it read-only for a backup).
    pub fn node(&self) -> PathBuf {
        self.wrapper.dm.node_path(&self.name)
    }

    /// Usage and state as the kernel reports it.
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn status(&self) -> SnapResult<SnapshotStatus> {
        let s = self
            .wrapper
            .dm
            .status(&self.name, Which::Live, StatusFlush::NoFlush)?;
        Ok(match s.first().map(|l| &l.status) {
            Some(TargetStatus::Snapshot(x)) => *x,
            _ => SnapshotStatus::Unknown,
        })
    }
}
