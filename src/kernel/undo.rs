//! A dm transaction: undo steps run in reverse on drop unless committed, with the suspend
//! guardian of the window held until they have run.
//!
//! Every workflow that builds or changes several devices (a snapshot, a rollback, an LVM
//! activation) records what to undo as it goes; an error path (or a panic unwinding) then
//! leaves no device suspended or half-built.

use crate::RemoveMode;
use std::time::Duration;

use super::command::Command;
use super::dm::{DeviceMapper, SuspendOptions};
use super::error::{Errno, Error, Result};
use super::guard::{GuardOutcome, GuardPlan, SuspendGuard};
use super::id::DmName;

/// Remove a device, retrying a few times while a transient opener (udev, blkid) holds it.
pub(crate) fn remove_retrying(dm: &DeviceMapper, name: &DmName) -> Result<()> {
    let mut last = None;
    // Up to 10 s: device scanners (lvm, blkid) hold devices for a moment, longer on a
    // loaded machine; libdevmapper retries removes for the same reason.
    for _ in 0..50 {
        match dm.remove(name, RemoveMode::Now) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.is_busy() => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Ioctl {
        cmd: Command::DevRemove,
        device: Some(name.to_string()),
        errno: Errno::EBUSY,
        hint: None,
    }))
}

/// One undo step.
#[derive(Debug)]
pub(crate) enum UndoAction {
    Remove(DmName),
    ClearInactive(DmName),
    Resume(DmName),
}

/// Undo actions run in reverse order on drop unless committed: no error path leaves a
/// device suspended or half-built. It also holds the suspend guardian of the window, so
/// the guardian stays armed until the undo actions have run.
#[derive(Debug)]
pub(crate) struct Undo<'a> {
    dm: &'a DeviceMapper,
    actions: Vec<UndoAction>,
    // Declared last: dropped (disarmed) after `drop` has run the actions.
    guard: Option<SuspendGuard>,
    fired: bool,
}

impl<'a> Undo<'a> {
    pub(crate) fn new(dm: &'a DeviceMapper) -> Self {
        Self {
            dm,
            actions: Vec::new(),
            guard: None,
            fired: false,
        }
    }
    pub(crate) fn push(&mut self, a: UndoAction) {
        self.actions.push(a);
    }
    /// Suspend `name` and record its resume at once: no error path can separate the two.
    pub(crate) fn suspend(&mut self, name: &DmName, opts: SuspendOptions) -> Result<()> {
        self.dm.suspend(name, opts)?;
        self.actions.push(UndoAction::Resume(name.clone()));
        Ok(())
    }
    pub(crate) fn commit(&mut self) {
        self.actions.clear();
    }
    /// Arm the guardian for the window about to start (before its first suspend).
    pub(crate) fn arm(&mut self, plan: &GuardPlan, bound: Duration) -> Result<()> {
        self.disarm();
        self.guard = Some(SuspendGuard::arm(self.dm, plan, bound)?);
        Ok(())
    }
    /// Disarm the guardian (after the window's last resume); whether it fired, now or in
    /// an earlier window of this undo.
    pub(crate) fn disarm(&mut self) -> bool {
        if let Some(g) = self.guard.take()
            && g.disarm() == GuardOutcome::Fired
        {
            self.fired = true;
        }
        self.fired
    }
    /// Whether the guardian fired already (does not block or disarm).
    pub(crate) fn check_fired(&mut self) -> bool {
        if let Some(g) = &mut self.guard
            && g.fired()
        {
            self.fired = true;
        }
        self.fired
    }
    /// Run the pending undo actions (guardian still armed), then disarm; whether it fired.
    pub(crate) fn finish(mut self) -> bool {
        self.run();
        self.disarm()
    }
    fn run(&mut self) {
        // Clearing an inactive table must come before a resume, which would otherwise
        // make it live; every resume before any remove.
        let actions = std::mem::take(&mut self.actions);
        if actions.is_empty() {
            return;
        }
        self.run_actions(&actions);
        // An error path: whatever the undo could not resume gets the guardian's plan (and
        // its retries) once more before it goes.
        if let Some(g) = self.guard.take()
            && g.run_and_disarm() == GuardOutcome::Fired
        {
            self.fired = true;
        }
    }
    fn run_actions(&mut self, actions: &[UndoAction]) {
        for a in actions.iter().rev() {
            if let UndoAction::ClearInactive(n) = a {
                let _ = self.dm.clear_table(n);
            }
        }
        for a in actions.iter().rev() {
            if let UndoAction::Resume(n) = a {
                let _ = self.dm.resume(n, SuspendOptions::default());
            }
        }
        for a in actions.iter().rev() {
            if let UndoAction::Remove(n) = a {
                let _ = remove_retrying(self.dm, n);
            }
        }
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.run();
    }
}
