//! Dropping a snapshot, and putting the origin's plain table back (after the last drop or
//! a finished merge).
#![forbid(unsafe_code)]

use crate::RemoveMode;

use super::Snapshot;
use super::blockdev;
use super::error::{SnapError, SnapResult, WrongStateKind};
use super::fault::{pause, step};
use super::persist;
use super::retry::snapshot_not_open;
use super::state::cow_of;
use super::{Wrapper, linear_table};
use crate::kernel::id::DmName;
use crate::kernel::undo::{Undo, UndoAction, remove_retrying};
use crate::{GuardPlan, LoadOptions, SuspendOptions};

impl Snapshot<'_, '_> {
    /// Discard the snapshot: the origin goes back to its plain table (when this was the
    /// last snapshot) and keeps all its data. The store's header on the COW device is then
    /// cleared (best effort), so the device can take a new snapshot without
    /// [`CowOverwrite::Force`](super::CowOverwrite::Force).
    ///
    /// # Errors
    /// `EBUSY` while the snapshot is open (mounted); nothing changes then.
    pub fn discard(self) -> SnapResult<()> {
        let w = self.wrapper;
        let dm = w.dm;
        let snap_info = dm.info(&self.name)?;
        snapshot_not_open(dm, &self.name, &snap_info)?;
        let st = w.state()?;
        let others = st.snapshots.iter().filter(|s| s.name != self.name).count();
        let cow = st
            .snapshots
            .iter()
            .find(|s| s.name == self.name)
            .and_then(|s| s.live.as_ref())
            .and_then(cow_of);
        let mut undo = Undo::new(dm);
        let r = (|| -> SnapResult<()> {
            if others == 0 {
                restore_plain(w, "drop", Some(&self.name))?;
            } else {
                // Other snapshots stay: remove this one with the origin suspended, so the
                // origin's chunk split is recomputed on resume. Guarded: a resume at any
                // point leaves either both snapshots (remove not done) or the others.
                undo.arm(
                    &GuardPlan::new().when_suspended(&w.name, [(&w.name).into()]),
                    w.suspend_bound,
                )?;
                undo.suspend(
                    &w.name,
                    SuspendOptions {
                        noflush: false,
                        skip_lockfs: true,
                    },
                )?;
                step("drop", 1);
                pause("drop", 1);
                dm.remove(&self.name, RemoveMode::Now)?;
                step("drop", 2);
                pause("drop", 2);
                dm.resume(&w.name, SuspendOptions::default())?;
                pause("drop", 3);
                let fired = undo.disarm();
                undo.commit();
                step("drop", 3);
                if fired {
                    return Err(w.bound_error());
                }
                persist::remove_stale_layers(w, &w.state()?)?;
            }
            Ok(())
        })();
        let r = w.guarded(r, undo);
        if r.is_ok()
            && let Some(cow) = cow
        {
            blockdev::forget_store(cow);
        }
        r
    }
}

/// What [`Wrapper::drop_snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// The snapshot was discarded.
    Dropped {
        /// The snapshot device.
        snapshot: DmName,
    },
    /// Recovery already removed what was left (an interrupted drop completed): there was no
    /// snapshot left to drop.
    NothingLeft,
}

impl<'dm> Wrapper<'dm> {
    /// Recover (each action is passed to `recovered` as it is reported), then discard the
    /// snapshot `name` (the only one when `None`).
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName, snapshot::Wrapper};
    /// use devmapper::snapshot::Dropped;
    /// # let dm = DeviceMapper::new()?;
    /// let w = Wrapper::open(&dm, &DmName::new("data")?)?;
    /// match w.drop_snapshot(None, |a| eprintln!("recovered: {a}"))? {
    ///     Dropped::Dropped { snapshot } => println!("dropped {snapshot}"),
    ///     _ => println!("nothing left to drop"),
    /// }
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`Wrapper::recover`], [`Wrapper::snapshot`] (no snapshot is an error only
    /// when recovery did nothing) and [`Snapshot::discard`].
    pub fn drop_snapshot(
        &self,
        name: Option<&DmName>,
        mut recovered: impl FnMut(&super::RecoveryAction),
    ) -> SnapResult<Dropped> {
        let done = self.recover()?;
        done.iter().for_each(&mut recovered);
        match self.snapshot(name) {
            Ok(s) => {
                let snapshot = s.name().clone();
                s.discard()?;
                Ok(Dropped::Dropped { snapshot })
            }
            Err(SnapError::NoSnapshot { .. }) if !done.is_empty() => Ok(Dropped::NothingLeft),
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn finish_merge(w: &Wrapper<'_>) -> SnapResult<()> {
    restore_plain(w, "finish", None)
}

/// Put the origin's plain linear table back (staged, then a short suspend/resume), then
/// remove `also_remove` (the snapshot being dropped) and `-real`. Steps 1-3 are the table
/// swap, then one step per removal, for fault injection under `op`.
pub(super) fn restore_plain(
    w: &Wrapper<'_>,
    op: &str,
    also_remove: Option<&DmName>,
) -> SnapResult<()> {
    let dm = w.dm;
    let st = w.state()?;
    let backing = st.backing().ok_or_else(|| SnapError::WrongState {
        name: w.name.to_string(),
        kind: WrongStateKind::NoBacking,
    })?;
    let mut undo = Undo::new(dm);
    dm.load(
        &w.name,
        &linear_table(backing, st.origin.length),
        LoadOptions::default(),
    )?;
    undo.push(UndoAction::ClearInactive(w.name.clone()));
    step(op, 1);
    // Guarded: a resume at any point swaps the plain table in (the step completes; the
    // snapshots left behind are no longer tracked, and recover removes them).
    undo.arm(
        &GuardPlan::new().when_suspended(&w.name, [(&w.name).into()]),
        w.suspend_bound,
    )?;
    pause(op, 1);
    undo.suspend(
        &w.name,
        SuspendOptions {
            noflush: false,
            skip_lockfs: true,
        },
    )?;
    step(op, 2);
    pause(op, 2);
    dm.resume(&w.name, SuspendOptions::default())?;
    pause(op, 3);
    let fired = undo.disarm();
    undo.commit();
    step(op, 3);
    if fired {
        return Err(w.bound_error());
    }
    let mut k = 4;
    if let Some(n) = also_remove {
        remove_retrying(dm, n)?;
        step(op, k);
        k += 1;
    }
    remove_retrying(dm, &w.real_name()?)?;
    step(op, k);
    persist::remove_stale_layers(w, &w.state()?)?;
    Ok(())
}
