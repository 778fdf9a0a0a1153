//! Completing or undoing whatever a crash interrupted, from the kernel's state alone.
#![forbid(unsafe_code)]

use std::fmt;

use super::Wrapper;
use super::discard::finish_merge;
use super::error::SnapResult;
use super::state::cow_of;
use crate::StatusFlush;
use crate::kernel::id::DmName;
use crate::kernel::undo::{Undo, remove_retrying};
use crate::targets::{SnapshotStatus, Target, TargetStatus};
use crate::{DevId, GuardPlan, SuspendOptions, Which};

impl Wrapper<'_> {
    /// Bring the wrapper to a consistent state after an interrupted workflow; returns what
    /// was done, in order (empty when nothing was needed). Every workflow runs this first.
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName};
    /// use devmapper::snapshot::{RecoveryAction, Wrapper};
    /// # let dm = DeviceMapper::new()?;
    /// let w = Wrapper::open(&dm, &DmName::new("data")?)?;
    /// for action in w.recover()? {
    ///     if let RecoveryAction::FinishedMerge { origin } = &action {
    ///         println!("the rollback of {origin} is complete");
    ///     }
    ///     println!("{action}"); // e.g. "removed snapshot device data-snap"
    /// }
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    ///
    /// - An origin left suspended is resumed: with a staged `snapshot-origin` table after
    ///   its snapshot (the snapshot completes), with a staged `snapshot-merge` table (the
    ///   rollback completes), otherwise as it is.
    /// - A staged table on a running origin is dropped (the interrupted step is undone).
    /// - Half-built snapshot devices, snapshots already handed to a merge, and snapshots of
    ///   an origin that no longer tracks them are removed; suspended ones resumed.
    /// - With no snapshot left the origin gets its plain table back and `-real` goes.
    /// - A finished merge is finished.
    ///
    /// # Errors
    /// A device-mapper call fails (the state is then reported by [`Wrapper::status`]).
    pub fn recover(&self) -> SnapResult<Vec<RecoveryAction>> {
        // Right after a crash the dead process's guardian runs its rules once (resumes,
        // a dropped staged table) while this may already be reading the state: a step
        // built on a state read a moment ago can be refused by the kernel (`EINVAL`:
        // nothing to resume, already suspended). Recovery is idempotent, so it starts over
        // from a fresh read, a few times.
        let mut done = Vec::new();
        let mut attempt = 0;
        loop {
            match self.recover_once(&mut done) {
                Err(super::SnapError::Dm(e))
                    if attempt < RECOVER_ATTEMPTS && e.errno() == Some(crate::Errno::EINVAL) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
                    attempt += 1;
                }
                r => return r.map(|()| done),
            }
        }
    }

    fn recover_once(&self, done: &mut Vec<RecoveryAction>) -> SnapResult<()> {
        let dm = self.dm;
        let st = self.state()?;

        // 1. A suspended origin: finish the window it was suspended for, guarded like the
        // workflows (recover itself may be killed here, and it suspends snapshots for a
        // handover).
        if st.origin.info.suspended() {
            let mut undo = Undo::new(dm);
            let r = (|| -> SnapResult<()> {
                let origin = DevId::from(&self.name);
                match &st.origin.inactive {
                    Some(Target::SnapshotOrigin(_)) => {
                        let new: Vec<_> = st
                            .snapshots
                            .iter()
                            .filter(|s| s.info.has_inactive_table() && !s.info.has_live_table())
                            .collect();
                        let order = new.iter().map(|s| DevId::from(&s.name)).chain([origin]);
                        undo.arm(
                            &GuardPlan::new().when_suspended(origin, order),
                            self.suspend_bound,
                        )?;
                        for s in new {
                            dm.resume(&s.name, SuspendOptions::default())?;
                            done.push(RecoveryAction::ResumedNewSnapshot {
                                snapshot: s.name.clone(),
                            });
                        }
                    }
                    Some(Target::SnapshotMerge(m)) => {
                        let sources: Vec<_> = st
                            .snapshots
                            .iter()
                            .filter(|s| s.live.as_ref().and_then(cow_of) == super::devnum(&m.cow))
                            .collect();
                        let mut plan = GuardPlan::new();
                        for s in &sources {
                            plan = plan.when_suspended_handover(origin, &s.name);
                        }
                        plan = plan.when_suspended(origin, [origin]);
                        undo.arm(&plan, self.suspend_bound)?;
                        for s in sources {
                            if !s.info.suspended() {
                                dm.suspend(&s.name, SuspendOptions::default())?;
                            }
                        }
                    }
                    _ => {
                        undo.arm(
                            &GuardPlan::new().when_suspended(origin, [origin]),
                            self.suspend_bound,
                        )?;
                    }
                }
                dm.resume(&self.name, SuspendOptions::default())?;
                done.push(RecoveryAction::ResumedOrigin {
                    origin: self.name.clone(),
                });
                if undo.disarm() {
                    return Err(self.bound_error());
                }
                Ok(())
            })();
            drop(undo);
            r?;
        } else if st.origin.inactive.is_some() {
            // 2. Staged but never suspended: undo the staging.
            dm.clear_table(&self.name)?;
            done.push(RecoveryAction::DroppedStagedTable {
                origin: self.name.clone(),
            });
        }

        // 3. Snapshot devices.
        let st = self.state()?;
        let merge_cow = match &st.origin.live {
            Some(Target::SnapshotMerge(m)) => super::devnum(&m.cow),
            _ => None,
        };
        let tracking = matches!(st.origin.live, Some(Target::SnapshotOrigin(_)));
        for s in &st.snapshots {
            let live_cow = s.live.as_ref().and_then(cow_of);
            let handed_over = merge_cow.is_some() && live_cow == merge_cow;
            if !s.info.has_live_table() || handed_over || !tracking {
                if s.info.suspended() {
                    let _ = dm.clear_table(&s.name);
                    dm.resume(&s.name, SuspendOptions::default())?;
                }
                remove_retrying(dm, &s.name)?;
                done.push(RecoveryAction::RemovedSnapshot {
                    snapshot: s.name.clone(),
                });
            } else if s.info.suspended() {
                if s.info.has_inactive_table() {
                    dm.clear_table(&s.name)?;
                }
                dm.resume(&s.name, SuspendOptions::default())?;
                done.push(RecoveryAction::ResumedSnapshot {
                    snapshot: s.name.clone(),
                });
            }
        }
        if let Some(r) = &st.real
            && r.info.suspended()
        {
            dm.resume(&r.name, SuspendOptions::default())?;
            done.push(RecoveryAction::ResumedReal {
                real: r.name.clone(),
            });
        }

        // -cow layers nothing uses any more (their records are zeroed with them).
        done.extend(super::persist::remove_stale_layers(self, &self.state()?)?);

        // 4. Origin tables without their helpers.
        let st = self.state()?;
        match &st.origin.live {
            Some(Target::Linear(_)) => {
                if let Some(r) = &st.real {
                    remove_retrying(dm, &r.name)?;
                    done.push(RecoveryAction::RemovedReal {
                        real: r.name.clone(),
                    });
                }
            }
            Some(Target::SnapshotOrigin(_)) if st.snapshots.is_empty() => {
                finish_merge(self)?;
                done.push(RecoveryAction::RestoredPlainTable {
                    origin: self.name.clone(),
                });
            }
            Some(Target::SnapshotMerge(_)) => {
                let s = dm.status(&self.name, Which::Live, StatusFlush::NoFlush)?;
                if let Some(TargetStatus::SnapshotMerge(SnapshotStatus::Active(u))) =
                    s.first().map(|l| &l.status)
                    && u.allocated == u.metadata
                {
                    finish_merge(self)?;
                    done.push(RecoveryAction::FinishedMerge {
                        origin: self.name.clone(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// How many times [`Wrapper::recover`] starts over after the kernel refused a step.
const RECOVER_ATTEMPTS: u32 = 4;

/// One thing [`Wrapper::recover`] did, naming the device; `Display` gives a line such as
/// `removed snapshot device data-snap`.
///
/// ```
/// use devmapper::DmName;
/// use devmapper::snapshot::RecoveryAction;
/// let a = RecoveryAction::FinishedMerge { origin: DmName::new("data")? };
/// assert_eq!(a.to_string(), "finished the merge into data");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// The origin was left suspended and was resumed (completing or undoing its window).
    ResumedOrigin {
        /// The origin (the wrapper).
        origin: DmName,
    },
    /// A snapshot staged by an interrupted take was resumed (the take completes).
    ResumedNewSnapshot {
        /// The snapshot device.
        snapshot: DmName,
    },
    /// A table staged on the running origin was dropped (the interrupted step is undone).
    DroppedStagedTable {
        /// The origin.
        origin: DmName,
    },
    /// A snapshot device was removed: half-built, handed to a merge, or no longer tracked.
    RemovedSnapshot {
        /// The snapshot device.
        snapshot: DmName,
    },
    /// A suspended snapshot was resumed.
    ResumedSnapshot {
        /// The snapshot device.
        snapshot: DmName,
    },
    /// The suspended `-real` device was resumed.
    ResumedReal {
        /// The `-real` device.
        real: DmName,
    },
    /// The `-real` device of an origin back on its plain table was removed.
    RemovedReal {
        /// The `-real` device.
        real: DmName,
    },
    /// A `-cow` layer nothing uses any more was removed (its record zeroed).
    RemovedCowLayer {
        /// The `-cow` layer.
        layer: DmName,
    },
    /// The origin had no snapshot left: its plain table was put back.
    RestoredPlainTable {
        /// The origin.
        origin: DmName,
    },
    /// A merge was done: it was finished (plain table back, helpers removed).
    FinishedMerge {
        /// The origin.
        origin: DmName,
    },
}

impl RecoveryAction {
    /// The device the action was on.
    pub fn device(&self) -> &DmName {
        match self {
            Self::ResumedOrigin { origin }
            | Self::DroppedStagedTable { origin }
            | Self::RestoredPlainTable { origin }
            | Self::FinishedMerge { origin } => origin,
            Self::ResumedNewSnapshot { snapshot }
            | Self::RemovedSnapshot { snapshot }
            | Self::ResumedSnapshot { snapshot } => snapshot,
            Self::ResumedReal { real } | Self::RemovedReal { real } => real,
            Self::RemovedCowLayer { layer } => layer,
        }
    }
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResumedOrigin { origin: d } | Self::ResumedReal { real: d } => {
                write!(f, "resumed {d}")
            }
            Self::ResumedNewSnapshot { snapshot } => write!(f, "resumed new snapshot {snapshot}"),
            Self::DroppedStagedTable { origin } => {
                write!(f, "dropped the staged table of {origin}")
            }
            Self::RemovedSnapshot { snapshot } => write!(f, "removed snapshot device {snapshot}"),
            Self::ResumedSnapshot { snapshot } => write!(f, "resumed snapshot {snapshot}"),
            Self::RemovedReal { real: d } | Self::RemovedCowLayer { layer: d } => {
                write!(f, "removed {d}")
            }
            Self::RestoredPlainTable { origin } => {
                write!(f, "restored the plain table of {origin}")
            }
            Self::FinishedMerge { origin } => write!(f, "finished the merge into {origin}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RecoveryAction::*;
    use crate::DmName;

    /// The lines `recover` returned as strings before it returned actions.
    #[test]
    fn display_is_the_old_text() {
        let n = |s| DmName::new(s).unwrap();
        let cases = [
            (ResumedOrigin { origin: n("d") }, "resumed d"),
            (
                ResumedNewSnapshot { snapshot: n("s") },
                "resumed new snapshot s",
            ),
            (
                DroppedStagedTable { origin: n("d") },
                "dropped the staged table of d",
            ),
            (
                RemovedSnapshot { snapshot: n("s") },
                "removed snapshot device s",
            ),
            (ResumedSnapshot { snapshot: n("s") }, "resumed snapshot s"),
            (ResumedReal { real: n("d-real") }, "resumed d-real"),
            (RemovedReal { real: n("d-real") }, "removed d-real"),
            (RemovedCowLayer { layer: n("s-cow") }, "removed s-cow"),
            (
                RestoredPlainTable { origin: n("d") },
                "restored the plain table of d",
            ),
            (
                FinishedMerge { origin: n("d") },
                "finished the merge into d",
            ),
        ];
        for (a, text) in cases {
            assert_eq!(a.to_string(), text);
            assert!(text.ends_with(a.device().as_str()), "{a:?}");
        }
    }
}
