//! Suspend windows of the workflows: how a guarded step ends when its guardian fired.
//!
//! # Never left suspended
//! Every suspend happens inside a window guarded by a [`SuspendGuard`]: armed just before
//! the window's first suspend (after the `sync()` that keeps the freeze short), disarmed
//! after its last resume. The guard lives in the step's [`Undo`], so on an error path it
//! stays armed until the undo actions have run. If the process dies anywhere in the window
//! (SIGKILL, the OOM killer, a crash) the guardian resumes within milliseconds. If the window
//! outlasts the wrapper's bound ([`Wrapper::with_suspend_bound`], default
//! [`crate::DEFAULT_SUSPEND_BOUND`] = 10 s) it resumes anyway, and goes on ending any later
//! suspend of its plan until the workflow disarms; the workflow then leaves the state to
//! [`Wrapper::recover`] and fails with [`SnapError::SuspendBound`]. The guardian only acts
//! on a device that is suspended when it looks, in the plan's order.
//!
//! What a resume at each point of each window leaves, and how `recover` (which every
//! workflow runs first) ends it. The numbers are the fault-injection points.
//!
//! **take** (plan: while the origin is suspended, resume the snapshot, then the origin):
//! - 5, armed, origin not suspended yet: nothing is done. Resuming the staged snapshot now
//!   would activate it while the origin's writes bypass it. `recover` drops the staged
//!   tables and removes the half-built devices (undone).
//! - 6, origin frozen: the snapshot is resumed while the origin is frozen, then the origin
//!   swaps `snapshot-origin` in. That is the workflow's own order (completed).
//! - 7, snapshot resumed: resuming it again changes nothing; the origin resume completes.
//! - 8, both resumed: nothing is suspended. Inside the suspend ioctl itself nothing can
//!   happen: the kernel finishes or aborts the call before a dead process's socket closes,
//!   so the guardian sees one of the states above.
//!
//! **drop while other snapshots stay** (plan: resume the origin):
//! - 1, suspended: resumed; the snapshot still exists and is tracked (undone).
//! - 2, snapshot removed: the resume recomputes the chunk split (completed).
//! - 3, resumed: nothing.
//!
//! **drop of the last snapshot, finish of a merge** (plan: resume the origin):
//! - 1, plain table staged, not suspended: nothing; `recover` drops the staged table.
//! - 2, suspended: the resume makes the linear table live (completed). The snapshot and
//!   `-real` no longer back the origin, and `recover` removes them.
//! - 3, resumed: nothing; `recover` removes what is left.
//!
//! **rollback** (plan: [`GuardPlan::when_suspended_handover`]):
//! - 1, merge table staged: nothing is suspended; `recover` drops the staged table.
//! - 2, snapshot suspended, origin not: the kernel refuses to resume a handover source
//!   while a merge table is staged. So the guardian clears the staged table and resumes the
//!   snapshot (undone: it is intact and the rollback can run again).
//! - 3, both suspended: the origin's resume makes the handover and starts the merge, then
//!   the snapshot is resumed (completed; `recover` removes the emptied snapshot device).
//! - 4, origin resumed: the snapshot is still suspended until the workflow has checked
//!   the handover; the guardian resumes it (completed).
//! - A slow workflow can race the guardian between 2 and 3. If the guardian resumed the
//!   snapshot first, the kernel refuses the handover, and that refused resume has already
//!   made the merge table live on a still-suspended origin. The guardian then suspends the
//!   snapshot and resumes the origin again, which completes the handover. The workflow never
//!   removes the snapshot before it has seen the merge table live.
//!
//! **recover** guards its own window (finishing a suspended origin) with the same plans.
//! LVM activation (`lvm::activate`) never suspends a device that is in use: it creates,
//! loads and resumes new devices, so it needs no guard.
#![forbid(unsafe_code)]

use super::Wrapper;
use super::error::{SnapError, SnapResult};
use crate::kernel::undo::Undo;

impl Wrapper<'_> {
    /// The error of a workflow whose guardian fired (recovery not run yet).
    pub(crate) fn bound_error(&self) -> SnapError {
        SnapError::SuspendBound {
            name: self.name.to_string(),
            bound: self.suspend_bound,
            recovery: Vec::new(),
            recovery_failed: None,
        }
    }

    /// End a guarded workflow: run `undo` (guardian still armed), disarm. When the
    /// guardian fired (here or in a nested window), the state is no longer what the
    /// workflow planned: hand it to [`Wrapper::recover`], which completes or undoes the
    /// step from the kernel's state, and report [`SnapError::SuspendBound`].
    pub(crate) fn guarded<T>(&self, r: SnapResult<T>, mut undo: Undo<'_>) -> SnapResult<T> {
        if undo.check_fired() {
            // The guardian acted: our undo list no longer describes the state.
            undo.commit();
        }
        let fired = undo.finish();
        if !fired && !matches!(r, Err(SnapError::SuspendBound { .. })) {
            return r;
        }
        let (recovery, recovery_failed) = match self.recover() {
            Ok(done) => (done, None),
            Err(e) => (Vec::new(), Some(Box::new(e))),
        };
        Err(SnapError::SuspendBound {
            name: self.name.to_string(),
            bound: self.suspend_bound,
            recovery,
            recovery_failed,
        })
    }
}
