//! Completing or undoing whatever a crash interrupted, from the kernel's state alone.
#![forbid(unsafe_code)]

use super::Wrapper;
use super::discard::finish_merge;
use super::error::SnapResult;
use super::state::cow_of;
use crate::StatusFlush;
use crate::kernel::undo::{Undo, remove_retrying};
use crate::targets::{SnapshotStatus, Target, TargetStatus};
use crate::{DevId, GuardPlan, SuspendOptions, Which};

impl Wrapper<'_> {
    /// Bring the wrapper to a consistent state after an interrupted workflow; returns what
    /// was done (empty when nothing was needed). Every workflow runs this first.
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
    pub fn recover(&self) -> SnapResult<Vec<String>> {
        let dm = self.dm;
        let mut done = Vec::new();
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
                            done.push(format!("resumed new snapshot {}", s.name));
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
                done.push(format!("resumed {}", self.name));
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
            done.push(format!("dropped the staged table of {}", self.name));
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
                done.push(format!("removed snapshot device {}", s.name));
            } else if s.info.suspended() {
                if s.info.has_inactive_table() {
                    dm.clear_table(&s.name)?;
                }
                dm.resume(&s.name, SuspendOptions::default())?;
                done.push(format!("resumed snapshot {}", s.name));
            }
        }
        if let Some(r) = &st.real
            && r.info.suspended()
        {
            dm.resume(&r.name, SuspendOptions::default())?;
            done.push(format!("resumed {}", r.name));
        }

        // -cow layers nothing uses any more (their records are zeroed with them).
        done.extend(super::persist::remove_stale_layers(self, &self.state()?)?);

        // 4. Origin tables without their helpers.
        let st = self.state()?;
        match &st.origin.live {
            Some(Target::Linear(_)) => {
                if let Some(r) = &st.real {
                    remove_retrying(dm, &r.name)?;
                    done.push(format!("removed {}", r.name));
                }
            }
            Some(Target::SnapshotOrigin(_)) if st.snapshots.is_empty() => {
                finish_merge(self)?;
                done.push(format!("restored the plain table of {}", self.name));
            }
            Some(Target::SnapshotMerge(_)) => {
                let s = dm.status(&self.name, Which::Live, StatusFlush::NoFlush)?;
                if let Some(TargetStatus::SnapshotMerge(SnapshotStatus::Active(u))) =
                    s.first().map(|l| &l.status)
                    && u.allocated == u.metadata
                {
                    finish_merge(self)?;
                    done.push(format!("finished the merge into {}", self.name));
                }
            }
            _ => {}
        }
        Ok(done)
    }
}
