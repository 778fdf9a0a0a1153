//! Rolling the origin back to a snapshot (a merge), and following the merge to its end.
#![forbid(unsafe_code)]

use crate::StatusFlush;
use std::time::{Duration, Instant};

use super::blockdev;
use super::devnum;
use super::discard::finish_merge;
use super::error::{SnapError, SnapResult, WrongStateKind};
use super::fault::{pause, step};
use super::persist;
use super::record::RecordState;
use super::retry::{snapshot_not_open, wait_closed};
use super::{MergeState, Merging, RecoveryAction, RollbackOptions, Snapshot, Wrapper};
use crate::kernel::id::DmName;
use crate::kernel::undo::{Undo, UndoAction, remove_retrying};
use crate::table::{Table, TableLine};
use crate::targets::{ExceptionStore, SnapshotStatus, SnapshotUsage, Target, TargetStatus};
use crate::units::Sectors;
use crate::{GuardPlan, LoadOptions, SuspendOptions, Which};

impl<'w, 'dm> Snapshot<'w, 'dm> {
    /// Roll the origin back to this snapshot: merge the snapshot into it. The origin is
    /// usable at once (reads see the snapshot's content) while the kernel copies in the
    /// background; follow it with [`Merging::wait`](super::Merging::wait).
    ///
    /// # Errors
    /// Refused while the origin is open (unless forced), while the snapshot is open, when
    /// other snapshots exist, or when the snapshot is invalid, overflowed or transient.
    pub fn rollback(self, opts: RollbackOptions) -> SnapResult<Merging<'w, 'dm>> {
        let w = self.wrapper;
        let dm = w.dm;
        let st = w.state()?;
        if st.origin.info.open_count > 0 && !opts.force {
            let mounts = blockdev::mounts_of(st.origin.info.dev);
            // A transient opener (a udev/blkid probe, a just-forked child that has not
            // exec'd yet) goes away by itself; a mount does not.
            let open_count = if mounts.is_empty() {
                wait_closed(dm, &w.name, Duration::from_secs(5))?
            } else {
                st.origin.info.open_count
            };
            if open_count > 0 {
                return Err(SnapError::OriginOpen {
                    name: w.name.to_string(),
                    open_count,
                    mounts,
                });
            }
        }
        let others: Vec<String> = st
            .snapshots
            .iter()
            .filter(|s| s.name != self.name)
            .map(|s| s.name.to_string())
            .collect();
        if !others.is_empty() {
            return Err(SnapError::WrongState {
                name: w.name.to_string(),
                kind: WrongStateKind::OtherSnapshots { snapshots: others },
            });
        }
        let me = st
            .snapshots
            .iter()
            .find(|s| s.name == self.name)
            .ok_or_else(|| SnapError::NoSnapshot {
                name: w.name.to_string(),
            })?;
        snapshot_not_open(dm, &self.name, &me.info)?;
        let Some(Target::Snapshot(t)) = &me.live else {
            return Err(SnapError::NoSnapshot {
                name: w.name.to_string(),
            });
        };
        if t.store == ExceptionStore::Transient {
            return Err(SnapError::WrongState {
                name: self.name.to_string(),
                kind: WrongStateKind::Transient,
            });
        }
        match self.status()? {
            SnapshotStatus::Active(_) => {}
            other => {
                return Err(SnapError::WrongState {
                    name: self.name.to_string(),
                    kind: WrongStateKind::NotMergeable { status: other },
                });
            }
        }
        // A snapshot with a record: mark it merging first, so that a reboot resumes it.
        let recorded = devnum(&t.cow)
            .and_then(|c| st.cow_layer(c))
            .and_then(persist::layer_target)
            .zip(me.info.uuid.clone());
        if let Some(((raw, _), u)) = &recorded {
            persist::set_state(*raw, u, RecordState::Merging)?;
        }
        let mut started = false;
        let mut merge = t.clone();
        merge.store = ExceptionStore::Persistent;
        let table = Table::from_lines(vec![TableLine::new(
            Sectors(0),
            st.origin.length,
            Target::SnapshotMerge(merge),
        )]);
        let mut undo = Undo::new(dm);
        let r = (|| -> SnapResult<()> {
            dm.load(&w.name, &table, LoadOptions::default())?;
            undo.push(UndoAction::ClearInactive(w.name.clone()));
            step("rollback", 1);
            // Guarded (see `GuardPlan::when_suspended_handover`): with the origin suspended
            // the guardian completes the handover (the rollback goes on) and resumes the
            // snapshot; with only the snapshot suspended it drops the staged merge table
            // and resumes the snapshot (the rollback is undone).
            undo.arm(
                &GuardPlan::new().when_suspended_handover(&w.name, &self.name),
                w.suspend_bound,
            )?;
            pause("rollback", 1);
            undo.suspend(&self.name, SuspendOptions::default())?;
            step("rollback", 2);
            pause("rollback", 2);
            undo.suspend(&w.name, SuspendOptions::default())?;
            step("rollback", 3);
            pause("rollback", 3);
            // Resuming the origin hands the exceptions over and starts the merge.
            dm.resume(&w.name, SuspendOptions::default())?;
            pause("rollback", 4);
            // Only a live merge table proves the handover: a guardian that fired early may
            // have resumed the snapshot first, so the kernel refused the handover and the
            // staged table was cleared. Removing the snapshot then would lose it.
            if !matches!(
                dm.table(&w.name, Which::Live)?
                    .lines()
                    .first()
                    .map(|l| &l.target),
                Some(Target::SnapshotMerge(_))
            ) {
                return Err(SnapError::WrongState {
                    name: w.name.to_string(),
                    kind: WrongStateKind::MergeNotStarted,
                });
            }
            // Suspended for the handover and now unused: resume it so nothing that opens
            // it blocks (it answers with I/O errors until it is removed).
            let _ = dm.resume(&self.name, SuspendOptions::default());
            let fired = undo.disarm();
            undo.commit();
            started = true;
            step("rollback", 4);
            if fired {
                return Err(w.bound_error());
            }
            remove_retrying(dm, &self.name)?;
            step("rollback", 5);
            Ok(())
        })();
        let r = w.guarded(r, undo);
        if r.is_err()
            && !started
            && let Some(((raw, _), u)) = &recorded
        {
            let _ = persist::set_state(*raw, u, RecordState::Snapshot);
        }
        r.map(|()| Merging { wrapper: w })
    }
}

impl Merging<'_, '_> {
    /// Where the merge stands.
    ///
    /// # Errors
    /// A device-mapper call fails, or the origin is no longer merging.
    pub fn state(&self) -> SnapResult<MergeState> {
        let w = self.wrapper;
        let s = w.dm.status(&w.name, Which::Live, StatusFlush::NoFlush)?;
        match s.first().map(|l| &l.status) {
            Some(TargetStatus::SnapshotMerge(SnapshotStatus::Active(u))) => {
                Ok(if u.allocated == u.metadata {
                    MergeState::Done
                } else {
                    MergeState::Running(*u)
                })
            }
            Some(TargetStatus::SnapshotMerge(SnapshotStatus::MergeFailed)) => {
                Ok(MergeState::Failed)
            }
            _ => Err(SnapError::WrongState {
                name: w.name.to_string(),
                kind: WrongStateKind::NotMerging,
            }),
        }
    }

    /// Poll until the merge is done (calling `progress` with the usage each time), then
    /// [`finish`](Self::finish). `timeout` bounds the wait.
    ///
    /// # Errors
    /// The merge failed, the timeout passed (the merge goes on), or a call fails.
    pub fn wait(
        self,
        timeout: Option<Duration>,
        mut progress: impl FnMut(&SnapshotUsage),
    ) -> SnapResult<()> {
        let start = Instant::now();
        loop {
            match self.state()? {
                MergeState::Done => return self.finish(),
                MergeState::Running(u) => progress(&u),
                MergeState::Failed => {
                    return Err(SnapError::WrongState {
                        name: self.wrapper.name.to_string(),
                        kind: WrongStateKind::MergeFailed,
                    });
                }
            }
            if timeout.is_some_and(|t| start.elapsed() > t) {
                return Err(SnapError::WrongState {
                    name: self.wrapper.name.to_string(),
                    kind: WrongStateKind::MergeTimeout,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After the merge is done: put the plain linear table back and remove `-real`.
    ///
    /// # Errors
    /// The merge is not done yet, or a call fails (undone).
    pub fn finish(self) -> SnapResult<()> {
        let w = self.wrapper;
        if self.state()? != MergeState::Done {
            return Err(SnapError::WrongState {
                name: w.name.to_string(),
                kind: WrongStateKind::MergeNotDone,
            });
        }
        w.guarded(finish_merge(w), Undo::new(w.dm))
    }
}

/// How [`Wrapper::rollback_to`] found or started the rollback.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rollback<'w, 'dm> {
    /// A merge that ran on (say, resumed by [`activate`](super::activate::activate) after a
    /// reboot) was done, and recovery finished it: the rollback is complete.
    Complete,
    /// A rollback was already merging; here it is.
    AlreadyMerging(Merging<'w, 'dm>),
    /// The rollback was started; the origin shows the snapshot's content at once.
    Started(Merging<'w, 'dm>),
}

impl<'dm> Wrapper<'dm> {
    /// Recover (each action is passed to `recovered` as it is reported), then go on with
    /// the merge already running, or else roll back to the snapshot `name` (the only one
    /// when `None`).
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName};
    /// use devmapper::snapshot::{Rollback, RollbackOptions, Wrapper};
    /// # let dm = DeviceMapper::new()?;
    /// let w = Wrapper::open(&dm, &DmName::new("data")?)?;
    /// match w.rollback_to(None, RollbackOptions::default(), |a| eprintln!("recovered: {a}"))? {
    ///     Rollback::Complete => {}
    ///     Rollback::AlreadyMerging(m) | Rollback::Started(m) => m.wait(None, |_| {})?,
    ///     _ => {}
    /// }
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`Wrapper::recover`], [`Wrapper::snapshot`] and [`Snapshot::rollback`].
    pub fn rollback_to(
        &self,
        name: Option<&DmName>,
        opts: RollbackOptions,
        mut recovered: impl FnMut(&RecoveryAction),
    ) -> SnapResult<Rollback<'_, 'dm>> {
        let done = self.recover()?;
        done.iter().for_each(&mut recovered);
        let finished = done
            .iter()
            .any(|d| matches!(d, RecoveryAction::FinishedMerge { .. }));
        if finished && self.merging()?.is_none() {
            return Ok(Rollback::Complete);
        }
        Ok(match self.merging()? {
            Some(m) => Rollback::AlreadyMerging(m),
            None => Rollback::Started(self.snapshot(name)?.rollback(opts)?),
        })
    }
}

/// How far a merge has come since it was first seen: feed it each usage
/// [`Merging::wait`] reports.
///
/// ```
/// use devmapper::snapshot::MergeProgress;
/// use devmapper::targets::SnapshotUsage;
/// use devmapper::units::Sectors;
/// let mut p = MergeProgress::default();
/// let usage = |allocated| SnapshotUsage { allocated: Sectors(allocated), total: Sectors(1000), metadata: Sectors(8) };
/// assert_eq!(p.observe(&usage(208)).percent_done, 0.0);
/// let step = p.observe(&usage(108));
/// assert_eq!(step.left, Sectors(100));
/// assert_eq!(step.percent_done, 50.0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeProgress {
    first: Option<SnapshotUsage>,
}

/// One reading of a [`MergeProgress`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MergeStep {
    /// Data sectors still to merge.
    pub left: Sectors,
    /// Percent merged since the first reading.
    pub percent_done: f64,
}

impl MergeProgress {
    /// Take a usage reading: the kernel's merge view of it
    /// ([`SnapshotUsage::merge_progress`]) against the first reading.
    pub fn observe(&mut self, u: &SnapshotUsage) -> MergeStep {
        let first = *self.first.get_or_insert(*u);
        let p = u.merge_progress();
        MergeStep {
            left: p.remaining,
            percent_done: p.percent_done(&first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(allocated: u64) -> SnapshotUsage {
        SnapshotUsage {
            allocated: Sectors(allocated),
            total: Sectors(1000),
            metadata: Sectors(8),
        }
    }

    /// Progress counts from the first reading; a store that grows back does not go
    /// negative.
    #[test]
    fn merge_progress() {
        let mut p = MergeProgress::default();
        assert_eq!(p.observe(&usage(408)).percent_done, 0.0);
        assert_eq!(p.observe(&usage(108)).percent_done, 75.0);
        let s = p.observe(&usage(8));
        assert_eq!((s.left, s.percent_done), (Sectors(0), 100.0));
        assert_eq!(p.observe(&usage(508)).percent_done, 0.0);
        // Nothing left at the first reading: done, without a division by zero.
        let mut p = MergeProgress::default();
        assert_eq!(p.observe(&usage(8)).percent_done, 100.0);
    }
}
