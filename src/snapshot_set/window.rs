//! The freeze every snapshot workflow shares, for one origin or many: one guardian, the
//! origins suspended top-down (level by level of their stacking; the origins of one level
//! at the same time, one thread each, so N freezes cost about the slowest one), the
//! metadata committed, the snapshots resumed, the origins resumed bottom-up.
//!
//! [`Wrapper::take_snapshot`](crate::snapshot::Wrapper::take_snapshot) and
//! [`lvcreate_snapshot`](crate::lvm::write::snapshot::create::lvcreate_snapshot) run it
//! with one origin, [`SnapshotSet::take`](super::SnapshotSet::take) with all of a set's.
//! The fault-injection points of both single workflows (`snapshot:5`..`8`,
//! `lvm-snapshot:6`..`8`) are marked here, for each family present in the window.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::kernel::undo::{Undo, UndoAction};
use crate::snapshot::fault::{pause, step};
use crate::{DevId, DeviceMapper, DmName, GuardPlan, SuspendOptions};

/// Which workflow an origin of the window belongs to (for the fault-injection points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// A dmsnap-wrapped device (`snapshot:<k>`).
    Raw,
    /// An LVM LV (`lvm-snapshot:<k>`).
    Lvm,
}

/// One origin of the window, with everything staged: the new snapshot device loaded (not
/// resumed), the origin's new table (if any) in its inactive slot.
#[derive(Debug, Clone)]
pub(crate) struct Frozen {
    pub(crate) family: Family,
    /// The device suspended (the filesystem on it frozen).
    pub(crate) origin: DmName,
    /// The new snapshot device, resumed while the origin is suspended.
    pub(crate) snapshot: DmName,
    /// Existing snapshot devices of the origin, suspended with it (LVM, as lvm2 does).
    pub(crate) others: Vec<DmName>,
    /// Stacking level (0: no member is built on this origin; see `order::levels`): the
    /// origins of one level are suspended at the same time, the levels in order.
    pub(crate) level: usize,
}

/// How a window ended early.
#[derive(Debug)]
pub(crate) enum WindowError<E> {
    /// The guardian could not be started: nothing was suspended.
    Guard(Box<crate::Error>),
    /// A suspend failed (the undo resumes what was suspended).
    Suspend(DmName, Box<crate::Error>),
    /// The guardian fired before the commit: the undo list no longer describes the state.
    FiredBeforeCommit,
    /// The commit failed (the undo is intact: nothing of the window is kept).
    Commit(E),
    /// A resume failed; with `committed` the metadata names the snapshots (the undo was
    /// dropped at the commit), without it the undo is intact.
    Resume {
        device: DmName,
        source: Box<crate::Error>,
        committed: bool,
    },
}

/// A window that ran to its end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thawed {
    /// From the first suspend to the last resume.
    pub(crate) suspended_for: Duration,
    /// The guardian fired at some point (it resumed what it found suspended).
    pub(crate) fired: bool,
}

/// The guardian's plan: one rule per origin, lower origins' rules first (`members` is in
/// suspend order, top-down), each resuming the new snapshot, the other snapshots, then the
/// origin, and only while that origin is suspended.
pub(crate) fn guard_plan(members: &[Frozen]) -> GuardPlan {
    let mut plan = GuardPlan::new();
    for m in members.iter().rev() {
        let mut order: Vec<DevId<'_>> = vec![DevId::from(&m.snapshot)];
        order.extend(m.others.iter().map(DevId::from));
        order.push(DevId::from(&m.origin));
        plan = plan.when_suspended(&m.origin, order);
    }
    plan
}

/// One suspend of the window and how it went.
struct Suspended {
    name: DmName,
    result: crate::Result<()>,
    /// Failed in a way that may have left the device suspended.
    maybe: bool,
}

/// Suspend an origin, then its other snapshots; stops at the first failure. What was
/// tried, in order, with its outcome.
fn suspend_one(dm: &DeviceMapper, m: &Frozen) -> Vec<Suspended> {
    let mut done = Vec::with_capacity(1 + m.others.len());
    for n in std::iter::once(&m.origin).chain(&m.others) {
        let result = dm.suspend(n, SuspendOptions::default()).map(drop);
        let failed = result.is_err();
        done.push(Suspended {
            name: n.clone(),
            result,
            maybe: false,
        });
        if failed {
            break;
        }
    }
    done
}

/// Run the window over `members` (in suspend order: an origin stacked on another comes
/// first), calling `commit` (if any) while everything is suspended. The suspends go into
/// `undo`; after a successful commit the undo is committed (the metadata now names the
/// new devices), before it every error leaves the undo to the caller.
pub(crate) fn freeze<E>(
    dm: &DeviceMapper,
    undo: &mut Undo<'_>,
    members: &[Frozen],
    bound: Duration,
    commit: Option<&mut dyn FnMut() -> Result<(), E>>,
) -> Result<Thawed, WindowError<E>> {
    let raw = members.iter().any(|m| m.family == Family::Raw);
    let lvm = members.iter().any(|m| m.family == Family::Lvm);
    // The freeze flushes less when the page cache was written back just before.
    nix::unistd::sync();
    undo.arm(&guard_plan(members), bound)
        .map_err(|e| WindowError::Guard(Box::new(e)))?;
    if raw {
        pause("snapshot", 5);
    }
    let t0 = Instant::now();
    // Level by level (uppers first); the origins of a level at the same time, so that N
    // filesystems freeze in about the time of the slowest one, not of all in a row.
    let mut at = 0;
    while at < members.len() {
        let level = members[at].level;
        let n = members[at..]
            .iter()
            .take_while(|m| m.level == level)
            .count();
        let group = &members[at..at + n];
        at += n;
        let results: Vec<Vec<Suspended>> = if group.len() == 1 {
            vec![suspend_one(dm, &group[0])]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|m| scope.spawn(move || suspend_one(dm, m)))
                    .collect();
                handles
                    .into_iter()
                    .zip(group)
                    .map(|(h, m)| {
                        // A thread that panicked may have suspended any of its devices.
                        h.join().unwrap_or_else(|_| {
                            std::iter::once(&m.origin)
                                .chain(&m.others)
                                .map(|n| Suspended {
                                    name: n.clone(),
                                    result: Err(crate::Error::Guardian {
                                        what: "suspend (the thread panicked)",
                                        errno: crate::Errno::EINTR,
                                    }),
                                    maybe: true,
                                })
                                .collect()
                        })
                    })
                    .collect()
            })
        };
        // Every suspend that happened is undone by a resume, whatever failed beside it.
        let mut failed = None;
        for s in results.into_iter().flatten() {
            if s.result.is_ok() || s.maybe {
                undo.push(UndoAction::Resume(s.name.clone()));
            }
            if let Err(e) = s.result {
                failed.get_or_insert(WindowError::Suspend(s.name, Box::new(e)));
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let committed = commit.is_some();
    if committed && undo.check_fired() {
        return Err(WindowError::FiredBeforeCommit);
    }
    if lvm {
        step("lvm-snapshot", 6);
    }
    if raw {
        step("snapshot", 6);
        pause("snapshot", 6);
    }
    if let Some(c) = commit {
        c().map_err(WindowError::Commit)?;
        // Committed: the metadata names the new devices, nothing is undone from here.
        undo.commit();
    }
    if lvm {
        step("lvm-snapshot", 7);
    }
    let mut first_err: Option<WindowError<E>> = None;
    let mut resume = |n: &DmName| -> Result<(), WindowError<E>> {
        if let Err(source) = dm.resume(n, SuspendOptions::default()) {
            let e = WindowError::Resume {
                device: n.clone(),
                source: Box::new(source),
                committed,
            };
            if !committed {
                return Err(e);
            }
            // Committed: resume everything else anyway, report the first failure.
            first_err.get_or_insert(e);
        }
        Ok(())
    };
    for m in members {
        resume(&m.snapshot)?;
        for o in &m.others {
            resume(o)?;
        }
    }
    if raw {
        step("snapshot", 7);
        pause("snapshot", 7);
    }
    for m in members.iter().rev() {
        resume(&m.origin)?;
    }
    let suspended_for = t0.elapsed();
    if raw {
        step("snapshot", 8);
        pause("snapshot", 8);
    }
    if lvm {
        step("lvm-snapshot", 8);
    }
    let fired = undo.disarm();
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Thawed {
        suspended_for,
        fired,
    })
}
