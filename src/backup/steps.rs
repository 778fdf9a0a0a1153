//! The caller's part of a backup: the hooks and the command ([`Steps`]), and what the
//! command is given ([`CommandRun`]): the mounts, and a way to run a child process that
//! receives the signals the backup gets and is recorded in the state file.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::error::{BackupError, StepError};
use super::state::{BackupState, ProcessId, write_state};

/// What the caller does around the snapshots: a hook before the freeze, a hook right
/// after it (run even when the snapshots failed: it releases what `pre` took), and the
/// backup command, run with every snapshot mounted.
///
/// [`ProcessSteps`] runs programs; any other implementation can do the work in-process:
///
/// ```
/// use std::process::ExitStatus;
/// use std::os::unix::process::ExitStatusExt;
/// use devmapper::backup::{CommandRun, StepError, Steps};
/// struct CountFiles(usize);
/// impl Steps for CountFiles {
///     fn command(&mut self, run: &mut CommandRun<'_>) -> Result<ExitStatus, StepError> {
///         for m in run.mounts() {
///             self.0 += std::fs::read_dir(&m.mount_point)?.count();
///         }
///         Ok(ExitStatus::from_raw(0))
///     }
/// }
/// ```
pub trait Steps {
    /// Before the freeze (flush a database, take a lock). An error cancels the backup
    /// (`post` still runs).
    ///
    /// # Errors
    /// Whatever the caller reports.
    fn pre(&mut self) -> Result<(), StepError> {
        Ok(())
    }

    /// Right after the snapshots were taken, or failed. An error cancels the backup.
    ///
    /// # Errors
    /// Whatever the caller reports.
    fn post(&mut self) -> Result<(), StepError> {
        Ok(())
    }

    /// The backup itself, with every snapshot mounted; its status is the backup's.
    ///
    /// # Errors
    /// The command could not be run.
    fn command(&mut self, run: &mut CommandRun<'_>) -> Result<ExitStatus, StepError>;
}

/// One mounted snapshot, as the command sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountedSource {
    /// `NAME` or `VG/LV`.
    pub source: String,
    /// Where the snapshot is mounted (read-only).
    pub mount_point: PathBuf,
}

/// What the command is given: the mount directory, the mounts, and
/// [`CommandRun::spawn`].
#[derive(Debug)]
pub struct CommandRun<'a> {
    pub(super) mount_dir: &'a Path,
    pub(super) mounts: &'a [MountedSource],
    pub(super) state: &'a mut BackupState,
    pub(super) state_dir: &'a Path,
    pub(super) signals: Option<&'a Signals>,
    pub(super) interrupted: Option<Signal>,
}

impl CommandRun<'_> {
    /// The directory holding every mount (`<dir>/NAME`, `<dir>/VG/LV`).
    pub fn mount_dir(&self) -> &Path {
        self.mount_dir
    }

    /// Every mounted snapshot, in the order of the sources.
    pub fn mounts(&self) -> &[MountedSource] {
        self.mounts
    }

    /// The first of SIGINT, SIGTERM, SIGHUP received while the command ran.
    pub fn interrupted(&self) -> Option<Signal> {
        self.interrupted
    }

    /// Run `cmd` to its end: it is recorded in the state file (so that recovery can
    /// terminate it should this process die first), and SIGINT, SIGTERM and SIGHUP the
    /// backup receives meanwhile are passed on to it (except those a terminal already sent
    /// to the whole process group). Cleanup follows when it exits.
    ///
    /// The child starts with no signal blocked (the backup blocks these signals in its own
    /// thread, and a child would inherit that). Only the program, the arguments and the
    /// environment changes of `cmd` are used: the child inherits this process's working
    /// directory and standard streams, and a working directory set on `cmd` is refused.
    ///
    /// # Errors
    /// The program cannot be started or waited for.
    pub fn spawn(&mut self, cmd: &Command) -> Result<ExitStatus, StepError> {
        let pid = spawn_clean(cmd)?;
        if let Ok(Some(p)) = ProcessId::of(pid.as_raw() as u32) {
            self.state.command = Some(p);
            // Best effort: without the record, recovery cannot stop an orphaned command.
            let _ = write_state(self.state_dir, self.state);
        }
        let status = loop {
            if let Some(st) = try_wait(pid)? {
                break st;
            }
            match self.signals {
                Some(s) => {
                    s.wait(std::time::Duration::from_millis(500));
                    for (sig, from_terminal) in s.take() {
                        self.interrupted.get_or_insert(sig);
                        if !from_terminal {
                            let _ = nix::sys::signal::kill(pid, sig);
                        }
                    }
                }
                None => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        self.state.command = None;
        let _ = write_state(self.state_dir, self.state);
        Ok(status)
    }
}

/// Start `cmd` (program, arguments, environment) with an empty signal mask.
fn spawn_clean(cmd: &Command) -> Result<nix::unistd::Pid, StepError> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
    use std::ffi::{CString, OsString};
    use std::os::unix::ffi::OsStrExt;
    if cmd.get_current_dir().is_some() {
        return Err("a working directory for the command is not supported".into());
    }
    let c = |s: &std::ffi::OsStr| {
        CString::new(s.as_bytes()).map_err(|_| format!("{s:?} contains a NUL byte"))
    };
    let program = c(cmd.get_program())?;
    let mut argv = vec![program.clone()];
    for a in cmd.get_args() {
        argv.push(c(a)?);
    }
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (k, v) in cmd.get_envs() {
        env.retain(|(ek, _)| ek != k);
        if let Some(v) = v {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            c(&kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    let actions = PosixSpawnFileActions::init()?;
    posix_spawnp(&program, &actions, &attr, &argv, &envp)
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()).into())
}

/// The child's status if it has exited (`None`: still running).
fn try_wait(pid: nix::unistd::Pid) -> Result<Option<ExitStatus>, StepError> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use std::os::unix::process::ExitStatusExt;
    loop {
        return match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(ExitStatus::from_raw((code & 0xff) << 8))),
            Ok(WaitStatus::Signaled(_, sig, core)) => Ok(Some(ExitStatus::from_raw(
                sig as i32 | if core { 0x80 } else { 0 },
            ))),
            Ok(_) => Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => Err(e.into()),
        };
    }
}

/// Run `cmd` to its end (a hook), with an empty signal mask.
fn run_clean(cmd: &Command) -> Result<ExitStatus, StepError> {
    let pid = spawn_clean(cmd)?;
    loop {
        if let Some(st) = try_wait(pid)? {
            return Ok(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Programs as the steps: `pre` and `post` must exit 0; the command's status is the
/// backup's. The caller builds the [`Command`]s (a shell line is the caller's business:
/// `sh -c LINE`) and adds the environment it wants (the mount directory: see
/// [`CommandRun::mount_dir`], passed to `command` through `env`).
///
/// ```no_run
/// use std::process::Command;
/// use devmapper::backup::ProcessSteps;
/// let mut pre = Command::new("sh");
/// pre.args(["-c", "mysql -e 'FLUSH TABLES WITH READ LOCK'"]);
/// let steps = ProcessSteps::new(Command::new("restic"))
///     .pre_hook(pre)
///     .env("BACKUP_MOUNT_DIR");
/// ```
#[derive(Debug)]
pub struct ProcessSteps {
    pre: Option<Command>,
    post: Option<Command>,
    command: Command,
    env: Option<String>,
}

impl ProcessSteps {
    /// `command` as the backup command, no hooks.
    pub fn new(command: Command) -> ProcessSteps {
        ProcessSteps {
            pre: None,
            post: None,
            command,
            env: None,
        }
    }

    /// The hook run before the freeze.
    #[must_use]
    pub fn pre_hook(mut self, cmd: Command) -> ProcessSteps {
        self.pre = Some(cmd);
        self
    }

    /// The hook run right after it.
    #[must_use]
    pub fn post_hook(mut self, cmd: Command) -> ProcessSteps {
        self.post = Some(cmd);
        self
    }

    /// Give the command the mount directory in environment variable `name`.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>) -> ProcessSteps {
        self.env = Some(name.into());
        self
    }
}

fn run_hook(cmd: &mut Command) -> Result<(), StepError> {
    let st = run_clean(cmd)?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{:?} {st}", cmd.get_program()).into())
    }
}

impl Steps for ProcessSteps {
    fn pre(&mut self) -> Result<(), StepError> {
        self.pre.as_mut().map_or(Ok(()), run_hook)
    }

    fn post(&mut self) -> Result<(), StepError> {
        self.post.as_mut().map_or(Ok(()), run_hook)
    }

    fn command(&mut self, run: &mut CommandRun<'_>) -> Result<ExitStatus, StepError> {
        if let Some(name) = &self.env {
            self.command.env(name, run.mount_dir());
        }
        run.spawn(&self.command)
    }
}

/// SIGINT, SIGTERM, SIGHUP (and SIGCHLD, to wake up when a child exits) blocked in the
/// calling thread and read through a signalfd while the backup runs; the old mask is put
/// back on drop, after the pending ones were read.
#[derive(Debug)]
pub(crate) struct Signals {
    fd: SignalFd,
    old: SigSet,
    first: std::cell::Cell<Option<Signal>>,
}

/// `si_code` of a signal the kernel sent itself (a terminal's ^C goes to the whole
/// foreground process group this way).
const SI_KERNEL: i32 = 0x80;

impl Signals {
    pub(crate) fn block() -> Result<Signals, BackupError> {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGCHLD,
        ] {
            set.add(s);
        }
        let old = set
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(BackupError::Signals)?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Ok(Signals {
                fd,
                old,
                first: std::cell::Cell::new(None),
            }),
            Err(e) => {
                let _ = old.thread_set_mask();
                Err(BackupError::Signals(e))
            }
        }
    }

    /// Wait up to `d` for a signal.
    fn wait(&self, d: std::time::Duration) {
        let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            self.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    }

    /// The interrupting signals read now (with "sent by the kernel to the process
    /// group"), SIGCHLD dropped.
    fn take(&self) -> Vec<(Signal, bool)> {
        let mut out = Vec::new();
        while let Ok(Some(si)) = self.fd.read_signal() {
            let Ok(sig) = Signal::try_from(si.ssi_signo as i32) else {
                continue;
            };
            if sig == Signal::SIGCHLD {
                continue;
            }
            if self.first.get().is_none() {
                self.first.set(Some(sig));
            }
            out.push((sig, si.ssi_code == SI_KERNEL));
        }
        out
    }

    /// The first interrupting signal received so far (reading the pending ones).
    pub(crate) fn interrupted(&self) -> Option<Signal> {
        let _ = self.take();
        self.first.get()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = self.take();
        let _ = self.old.thread_set_mask();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child started while this thread blocks SIGTERM starts with nothing blocked;
    /// one started by `Command::status` inherits the mask (so the check can tell).
    #[test]
    fn children_start_with_an_empty_signal_mask() {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        let old = set.thread_swap_mask(SigmaskHow::SIG_BLOCK).unwrap();
        let mut grep = Command::new("grep");
        grep.args(["-q", "^SigBlk:\t0*$", "/proc/self/status"]);
        let ours = run_clean(&grep);
        let std_status = grep.status();
        old.thread_set_mask().unwrap();
        let Ok(std_status) = std_status else {
            println!("SKIP: no grep");
            return;
        };
        assert!(ours.unwrap().success(), "the child had signals blocked");
        assert!(
            !std_status.success(),
            "std's child did not inherit the mask"
        );
    }

    #[test]
    fn a_failing_hook_is_an_error_naming_its_status() {
        let mut steps = ProcessSteps::new(Command::new("true")).pre_hook(Command::new("false"));
        let e = Steps::pre(&mut steps).unwrap_err().to_string();
        assert!(e.contains("false") && e.contains("exit status: 1"), "{e}");
        let mut steps =
            ProcessSteps::new(Command::new("true")).post_hook(Command::new("/nonexistent/x"));
        let e = Steps::post(&mut steps).unwrap_err().to_string();
        assert!(e.contains("cannot run"), "{e}");
        let mut cwd = Command::new("true");
        cwd.current_dir("/");
        assert!(spawn_clean(&cwd).is_err());
    }
}
