//! Cleaning up after backups whose process died: [`recover`].
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::BackupError;
use super::mount::{Unmounted, unmount};
use super::state::{BackupState, PlannedSnapshot, ProcessId, STATE_SUFFIX, read_state, state_path};
use super::take::drop_planned;
use crate::DeviceMapper;
use crate::lvm::write::session::WriteOptions;

/// One thing cleanup did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanupAction {
    /// The backup's command outlived it and was terminated (SIGTERM, then SIGKILL).
    TerminatedCommand(ProcessId),
    /// A snapshot was unmounted.
    Unmounted(PathBuf),
    /// A snapshot was detached (lazy unmount): released when its last user lets go.
    Detached(PathBuf),
    /// A snapshot was dropped.
    DroppedSnapshot(PlannedSnapshot),
    /// A directory the backup made was removed.
    RemovedDir(PathBuf),
    /// The state file was removed.
    RemovedStateFile(PathBuf),
}

impl fmt::Display for CleanupAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CleanupAction::TerminatedCommand(p) => write!(f, "terminated the backup command, {p}"),
            CleanupAction::Unmounted(p) => write!(f, "unmounted {}", p.display()),
            CleanupAction::Detached(p) => write!(f, "detached {} (lazy unmount)", p.display()),
            CleanupAction::DroppedSnapshot(s) => write!(f, "dropped snapshot {s}"),
            CleanupAction::RemovedDir(p) => write!(f, "removed directory {}", p.display()),
            CleanupAction::RemovedStateFile(p) => write!(f, "removed state file {}", p.display()),
        }
    }
}

/// What [`recover`] did with one dead backup.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecoveredBackup {
    /// Its state file, as read.
    pub state: BackupState,
    /// The file.
    pub path: PathBuf,
    /// What was undone, in order.
    pub actions: Vec<CleanupAction>,
    /// What could not be undone (the state file is then kept for the next run).
    pub problems: Vec<String>,
}

/// What [`recover`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RecoverReport {
    /// Backups of dead processes, cleaned up (or attempted).
    pub recovered: Vec<RecoveredBackup>,
    /// State files of backups still running (left alone).
    pub running: Vec<PathBuf>,
    /// State files that could not be read or parsed (left alone).
    pub unreadable: Vec<(PathBuf, BackupError)>,
}

/// Undo the backup described by `st`: unmount (lazily when `lazy`), drop the snapshots
/// (newest first), remove the directories (deepest first) and the state file. Problems are
/// collected, never stopping the rest; the state file goes only when there are none.
pub(crate) fn undo(
    dm: &DeviceMapper,
    st: &BackupState,
    state_dir: &Path,
    write: &WriteOptions,
    lazy: bool,
    actions: &mut Vec<CleanupAction>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for m in st.mounts.iter().rev() {
        match unmount(m, lazy) {
            Ok(Unmounted::Now) => actions.push(CleanupAction::Unmounted(m.clone())),
            Ok(Unmounted::Detached) => actions.push(CleanupAction::Detached(m.clone())),
            Ok(Unmounted::NotMounted) => {}
            Err(e) => problems.push(format!("unmount {}: {e}", m.display())),
        }
    }
    for p in st.snapshots.iter().rev() {
        match drop_planned(dm, p, write) {
            Ok(true) => actions.push(CleanupAction::DroppedSnapshot(p.clone())),
            Ok(false) => {}
            Err(e) => problems.push(format!("drop {p}: {e}")),
        }
    }
    for d in st.dirs.iter().rev() {
        match std::fs::remove_dir(d) {
            Ok(()) => actions.push(CleanupAction::RemovedDir(d.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("remove directory {}: {e}", d.display())),
        }
    }
    if problems.is_empty() {
        let path = state_path(state_dir, &st.id);
        match std::fs::remove_file(&path) {
            Ok(()) => actions.push(CleanupAction::RemovedStateFile(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("remove {}: {e}", path.display())),
        }
    }
    problems
}

/// Stop a command left running by a dead backup: SIGTERM, then SIGKILL after 2 s; waits
/// up to 5 s in all for it to go.
fn terminate(p: ProcessId) -> bool {
    use nix::sys::signal::{Signal, kill};
    let pid = nix::unistd::Pid::from_raw(p.pid as i32);
    if !p.is_alive() {
        return false;
    }
    let _ = kill(pid, Signal::SIGTERM);
    let t0 = Instant::now();
    let mut killed = false;
    while p.is_alive() && t0.elapsed() < Duration::from_secs(5) {
        if !killed && t0.elapsed() > Duration::from_secs(2) {
            let _ = kill(pid, Signal::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Clean up after every backup in `state_dir` whose process is gone (its pid dead, a
/// zombie, or reused by a process that started later): terminate its command if that
/// still runs, lazily unmount its mounts, drop its snapshots, remove its directories and
/// its state file. Running backups and unreadable files are left alone (and reported).
/// Recoveries are serialised by a lock file in `state_dir`, so two at once do not race.
///
/// ```no_run
/// use devmapper::DeviceMapper;
/// use devmapper::backup::{self, BackupOptions};
/// let dm = DeviceMapper::new()?;
/// let opts = BackupOptions::new("backup recover");
/// let report = backup::recover(&dm, &opts)?;
/// for b in &report.recovered {
///     for a in &b.actions {
///         println!("{}: {a}", b.state.id);
///     }
/// }
/// # Ok::<(), devmapper::backup::BackupError>(())
/// ```
///
/// # Errors
/// [`BackupError::StateFile`]: the state directory cannot be read or locked. Failures to
/// undo a backup are in its [`RecoveredBackup::problems`].
pub fn recover(
    dm: &DeviceMapper,
    opts: &super::BackupOptions,
) -> Result<RecoverReport, BackupError> {
    let dir = &opts.state_dir;
    let io = |e| BackupError::StateFile {
        path: dir.clone(),
        source: e,
    };
    let mut report = RecoverReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(io(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(STATE_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    if files.is_empty() {
        return Ok(report);
    }
    files.sort();
    let _lock = lock(dir)?;
    for path in files {
        let st = match read_state(&path) {
            Ok(st) => st,
            Err(BackupError::StateFile { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue; // finished (or recovered) meanwhile
            }
            Err(e) => {
                report.unreadable.push((path, e));
                continue;
            }
        };
        if st.owner.is_alive() {
            report.running.push(path);
            continue;
        }
        let mut actions = Vec::new();
        if let Some(c) = st.command
            && terminate(c)
        {
            actions.push(CleanupAction::TerminatedCommand(c));
        }
        let problems = undo(dm, &st, dir, &opts.write, true, &mut actions);
        report.recovered.push(RecoveredBackup {
            state: st,
            path,
            actions,
            problems,
        });
    }
    Ok(report)
}

/// The recovery lock: `<state_dir>/.recover.lock`, exclusive.
pub(crate) fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, BackupError> {
    let path = dir.join(".recover.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BackupError::StateFile {
            path: path.clone(),
            source: e,
        })?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        BackupError::StateFile {
            path,
            source: e.into(),
        }
    })
}
