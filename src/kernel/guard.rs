//! [`SuspendGuard`]: no device stays suspended when the process that suspended it dies, and
//! no suspend lasts longer than a bound.
//!
//! Arm a guard before the first suspend of a step, with a [`GuardPlan`] saying what to resume
//! (and in which order) if the step is cut short; suspend, do the work, resume, then
//! [`disarm`](SuspendGuard::disarm). If the process is killed in between (SIGKILL, the OOM
//! killer, a crash) a guardian process resumes the suspended devices within milliseconds;
//! if the process is alive but the window lasts longer than the bound, the guardian resumes
//! them anyway and [`SuspendGuard::disarm`] reports [`GuardOutcome::Fired`], so the caller
//! can check what happened instead of trusting its own plan.
//!
//! ```no_run
//! use std::time::Duration;
//! use devmapper::{DeviceMapper, DmName, GuardOutcome, GuardPlan, SuspendGuard, SuspendOptions};
//! let dm = DeviceMapper::new()?;
//! let name = DmName::new("data")?;
//! let plan = GuardPlan::new().when_suspended(&name, [(&name).into()]);
//! let guard = SuspendGuard::arm(&dm, &plan, Duration::from_secs(10))?;
//! dm.suspend(&name, SuspendOptions::default())?;
//! // ... the short window ...
//! dm.resume(&name, SuspendOptions::default())?;
//! if guard.disarm() == GuardOutcome::Fired {
//!     eprintln!("the window took longer than 10 s; the guardian resumed {name}");
//! }
//! # Ok::<(), devmapper::Error>(())
//! ```
//!
//! The guardian acts only on a device that is suspended when it looks, and resumes in the
//! plan's order; a resume that fails is retried once after clearing the device's inactive
//! table, so the device ends up running (on its old table) instead of staying suspended.
//! Resuming a device with a staged inactive table makes that table live: the plan must list
//! devices in an order for which that is correct (the snapshot workflows in
//! [`crate::snapshot`] document theirs).
//!
//! # Why a process, and its limits
//! A thread, or a child sharing the address space (`clone(CLONE_VM)`), dies with the
//! process: SIGKILL takes the whole thread group, and the OOM killer kills every process
//! sharing the victim's memory. So the guardian is a `fork`ed child that leaves the session
//! (a Ctrl-C or a process-group kill does not reach it), ignores SIGHUP, SIGINT, SIGQUIT,
//! SIGTERM and SIGPIPE (a service manager's stop sends SIGTERM to every process of the
//! service; the guardian outlives the parent and acts when it dies), and asks for the lowest
//! OOM score. Cost: one `socketpair` and one `fork`, about 0.5 ms for a small process (the
//! page tables are copied, so more for a very large address space).
//!
//! What it cannot cover: a SIGKILL of the guardian itself at the same moment (killing a whole
//! cgroup with SIGKILL at once); then [`crate::snapshot::Wrapper::recover`] remains. If the
//! process `fork`s a child that keeps running without `exec` while a guard is armed, that
//! child holds the guard's socket open, so the parent's death is only noticed when the bound
//! passes. A guard that is leaked (`mem::forget`) keeps its guardian watching until the
//! process exits.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;
use std::time::Duration;

use crate::kernel::command::Command;
use crate::kernel::dm::DmFlags;
use crate::kernel::error::{Error, Result};
use crate::kernel::id::{DevId, DmName, DmUuid};
use crate::kernel::ioctl::Buffer;
use crate::kernel::ioctl::guardian::{Action, Guardian, Request, Rule};
use crate::kernel::wire::{self, HEADER_SIZE, RequestHeader};
use crate::{DevNum, DeviceMapper};

/// How long a guarded suspend may last by default: 10 s.
///
/// Long enough for a filesystem freeze to flush (workflows `sync()` first, so the freeze
/// itself is short), far below the kernel's 120 s hung-task warning, and short enough that
/// writers stalled by a stuck tool recover on their own.
pub const DEFAULT_SUSPEND_BOUND: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Key {
    Name(DmName),
    Uuid(DmUuid),
    Dev(DevNum),
}

impl From<DevId<'_>> for Key {
    fn from(id: DevId<'_>) -> Self {
        match id {
            DevId::Name(n) => Key::Name(n.clone()),
            DevId::Uuid(u) => Key::Uuid(u.clone()),
            DevId::Dev(d) => Key::Dev(d),
        }
    }
}

/// What a [`SuspendGuard`]'s guardian does when it fires: a list of rules "when device W is
/// suspended, resume R1, R2, ... in this order", checked in the order they were added.
///
/// ```
/// use devmapper::{DmName, GuardPlan};
/// let origin = DmName::new("data")?;
/// let snap = DmName::new("data-snap")?;
/// // Snapshot creation: activate the snapshot before the origin, and only while the
/// // origin is frozen.
/// let plan = GuardPlan::new().when_suspended(&origin, [(&snap).into(), (&origin).into()]);
/// assert_eq!(plan.len(), 1);
/// # Ok::<(), devmapper::kernel::id::IdError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GuardPlan {
    rules: Vec<(Key, Vec<Resume>)>,
}

/// One resume of a rule and what to issue before its one retry.
#[derive(Debug, Clone)]
struct Resume {
    dev: Key,
    retry_after: Vec<Prep>,
}

/// A request issued before a retry.
#[derive(Debug, Clone)]
enum Prep {
    /// `DM_TABLE_CLEAR`: drop a staged inactive table.
    Clear(Key),
    /// `DM_DEV_SUSPEND` with `DM_SUSPEND_FLAG`.
    Suspend(Key),
}

impl GuardPlan {
    /// An empty plan (a guardian with it does nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a rule: when `watch` is suspended, resume each of `resume`, in order.
    pub fn when_suspended<'a>(
        mut self,
        watch: impl Into<DevId<'a>>,
        resume: impl IntoIterator<Item = DevId<'a>>,
    ) -> Self {
        self.rules.push((
            watch.into().into(),
            resume
                .into_iter()
                .map(|d| {
                    let dev = Key::from(d);
                    Resume {
                        retry_after: vec![Prep::Clear(dev.clone())],
                        dev,
                    }
                })
                .collect(),
        ));
        self
    }

    /// Add the two rules of a `snapshot-merge` handover (a `snapshot-merge` table staged
    /// on `origin` takes over the exceptions of the `source` snapshot when `origin` resumes,
    /// and only while `source` is suspended):
    ///
    /// 1. when `origin` is suspended, resume it; if the kernel refuses (`source` is not
    ///    suspended; the failed resume has already made the merge table live, so clearing
    ///    does not help), suspend `source` and retry, which completes the handover; then
    ///    resume `source` (allowed once the handover is done);
    /// 2. when `source` is suspended (and `origin` is not), resume it; the kernel refuses
    ///    while the merge table is staged on `origin`, so on failure clear that staged table
    ///    (undoing the handover that never started) and retry.
    ///
    /// ```
    /// use devmapper::{DmName, GuardPlan};
    /// let origin = DmName::new("data")?;
    /// let snap = DmName::new("data-snap")?;
    /// let plan = GuardPlan::new().when_suspended_handover(&origin, &snap);
    /// assert_eq!(plan.len(), 2);
    /// # Ok::<(), devmapper::kernel::id::IdError>(())
    /// ```
    pub fn when_suspended_handover<'a>(
        mut self,
        origin: impl Into<DevId<'a>>,
        source: impl Into<DevId<'a>>,
    ) -> Self {
        let origin: Key = origin.into().into();
        let source: Key = source.into().into();
        self.rules.push((
            origin.clone(),
            vec![
                Resume {
                    dev: origin.clone(),
                    retry_after: vec![Prep::Clear(origin.clone()), Prep::Suspend(source.clone())],
                },
                Resume {
                    dev: source.clone(),
                    retry_after: vec![Prep::Clear(source.clone())],
                },
            ],
        ));
        self.rules.push((
            source.clone(),
            vec![Resume {
                dev: source.clone(),
                retry_after: vec![Prep::Clear(source), Prep::Clear(origin)],
            }],
        ));
        self
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// What a guard saw when it was disarmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum GuardOutcome {
    /// Disarmed within the bound: the guardian did nothing.
    Quiet,
    /// The bound passed first: the guardian resumed whatever of its plan was suspended
    /// (and kept doing so until disarmed). Check the devices' state.
    Fired,
}

/// A guardian process armed over a suspend window (see the [module docs](crate::kernel::guard)).
///
/// Dropping the guard disarms it (and reaps the guardian); call
/// [`disarm`](Self::disarm) to learn whether it fired.
#[derive(Debug)]
pub struct SuspendGuard {
    inner: Guardian,
    bound: Duration,
}

fn encode(cmd: Command, key: &Key, flags: DmFlags) -> Result<Request> {
    let (name, uuid, dev) = match key {
        Key::Name(n) => (n.as_str(), "", 0),
        Key::Uuid(u) => ("", u.as_str(), 0),
        Key::Dev(d) => ("", "", d.to_kernel_huge()),
    };
    let header = RequestHeader {
        version: cmd.min_version(),
        target_count: 0,
        flags: flags.bits(),
        event_nr: 0,
        dev,
        name,
        uuid,
    };
    let mut buf = Buffer::zeroed(HEADER_SIZE);
    wire::encode_request(buf.as_bytes_mut(), &header, &[]).map_err(|e| Error::BadReply {
        cmd,
        offset: e.offset,
        reason: e.reason.to_owned(),
    })?;
    Request::new(cmd, buf).map_err(|errno| Error::Guardian {
        what: "encode a request",
        errno,
    })
}

impl SuspendGuard {
    /// Start a guardian for `plan` that fires when this process dies or `bound` passes.
    ///
    /// Costs one `socketpair` and one `fork` (about a millisecond; more for a process with
    /// a very large address space).
    ///
    /// # Errors
    /// [`Error::Guardian`] when the socket or the process cannot be created (nothing was
    /// suspended yet: do not suspend then).
    pub fn arm(dm: &DeviceMapper, plan: &GuardPlan, bound: Duration) -> Result<Self> {
        let mut rules = Vec::with_capacity(plan.rules.len());
        for (watch, resume) in &plan.rules {
            let mut actions = Vec::with_capacity(resume.len());
            for r in resume {
                let mut retry_after = Vec::with_capacity(r.retry_after.len());
                for p in &r.retry_after {
                    retry_after.push(match p {
                        Prep::Clear(k) => encode(Command::TableClear, k, DmFlags::empty())?,
                        Prep::Suspend(k) => encode(Command::DevSuspend, k, DmFlags::SUSPEND)?,
                    });
                }
                actions.push(Action {
                    resume: encode(Command::DevSuspend, &r.dev, DmFlags::empty())?,
                    retry_after,
                });
            }
            rules.push(Rule {
                status: encode(Command::DevStatus, watch, DmFlags::empty())?,
                actions,
            });
        }
        let inner = Guardian::arm(dm.as_fd(), rules, bound).map_err(|errno| Error::Guardian {
            what: "start the suspend guardian",
            errno,
        })?;
        Ok(Self { inner, bound })
    }

    /// The bound this guard was armed with.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The guardian's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid() as u32
    }

    /// Whether the bound has already passed (the guardian fired). Does not block.
    pub fn fired(&mut self) -> bool {
        self.inner.fired()
    }

    /// Stop the guardian (it exits without acting) and reap it.
    pub fn disarm(self) -> GuardOutcome {
        if self.inner.disarm() {
            GuardOutcome::Fired
        } else {
            GuardOutcome::Quiet
        }
    }

    /// For an error path, after the caller's own undo: have the guardian run its plan once
    /// now (it acts only on what is still suspended, with its retries), then stop and reap
    /// it. [`GuardOutcome::Fired`] when the bound had passed before.
    pub fn run_and_disarm(self) -> GuardOutcome {
        if self.inner.run_and_disarm() {
            GuardOutcome::Fired
        } else {
            GuardOutcome::Quiet
        }
    }
}
