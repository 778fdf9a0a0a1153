//! What can go wrong in a backup: [`BackupError`] and its kinds.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::lvm::write::error::WriteError;
use crate::probe::ProbeError;
use crate::snapshot::SnapError;

/// The error a caller's hook or command returns (any error).
pub type StepError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which of the caller's steps failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepKind {
    /// The hook run before the snapshots (a database flush or lock).
    Pre,
    /// The hook run right after the snapshots (the unlock).
    Post,
    /// The backup command.
    Command,
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepKind::Pre => "the pre hook",
            StepKind::Post => "the post hook",
            StepKind::Command => "the backup command",
        })
    }
}

/// Why a state file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadStateKind {
    /// The first line is not [`MAGIC`](super::state::MAGIC).
    #[error("it does not start with the state file magic line")]
    Magic,
    /// Longer than [`MAX_STATE_LEN`](super::state::MAX_STATE_LEN).
    #[error("it is too long")]
    TooLong,
    /// Not UTF-8 text.
    #[error("it is not UTF-8 text")]
    NotUtf8,
    /// No `owner` record.
    #[error("it names no owner process")]
    NoOwner,
    /// A malformed line.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Why a snapshot could not be mounted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountErrorKind {
    /// The probe found no filesystem on the snapshot.
    #[error("no filesystem found on it")]
    NoFilesystem,
    /// A filesystem (or something else) this module does not know how to mount read-only
    /// without writing to it.
    #[error("it holds {found}, which cannot be mounted for a backup")]
    Unsupported {
        /// What the probe found.
        found: String,
    },
    /// btrfs: a filesystem with the same fsid is mounted (the origin, most likely), the
    /// kernel refuses a second device with that fsid, and the snapshot could not be given
    /// a new one ([`super::btrfs_fsid::reidentify`] refused: another checksum type than
    /// crc32c, a multi-device filesystem, a damaged superblock, or a write error).
    #[error(
        "it is btrfs with fsid {fsid}, and a filesystem with that fsid is mounted (the origin): \
         the kernel does not mount a second device of the same btrfs filesystem, and the \
         snapshot could not be given a new fsid: {why}"
    )]
    BtrfsFsidInUse {
        /// The filesystem's fsid.
        fsid: uuid::Uuid,
        /// Why the snapshot kept it.
        #[source]
        why: super::btrfs_fsid::FsidError,
    },
    /// `/dev/mapper/<name>` is not the snapshot's device (a stale or foreign node).
    #[error("{node} is not device {expected}")]
    NodeMismatch {
        /// The node.
        node: PathBuf,
        /// The snapshot's device number.
        expected: crate::DevNum,
    },
    /// Reading the snapshot's start failed.
    #[error("probing it failed: {0}")]
    Probe(#[source] ProbeError),
    /// Opening the device or creating the mount point failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// `mount(2)` failed.
    #[error("mount(2) with options {options:?} failed: {errno}")]
    Syscall {
        /// The filesystem-specific options given.
        options: String,
        /// The error.
        errno: nix::errno::Errno,
    },
}

/// Why taking or dropping a snapshot failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotErrorKind {
    /// A raw (wrapped device) snapshot workflow.
    #[error(transparent)]
    Raw(#[from] SnapError),
    /// An LVM write.
    #[error(transparent)]
    Lvm(#[from] WriteError),
    /// The snapshot set (everything of it undone unless its kind says otherwise).
    #[error(transparent)]
    Set(#[from] crate::snapshot_set::SetError),
}

/// Any failure of [`run`](super::run) or [`recover`](super::recover).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// No source was given.
    #[error("a backup needs at least one source")]
    NoSources,
    /// A source was given twice.
    #[error("{member} is given twice")]
    Duplicate {
        /// The source.
        member: String,
    },
    /// A name derived for a snapshot or a mount point is invalid (too long).
    #[error("{member}: {why}")]
    BadName {
        /// The source.
        member: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a state file (or the state directory) failed.
    #[error("state file {path}: {source}")]
    StateFile {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A state file is malformed (left as it is).
    #[error("state file {path}: {kind}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        kind: BadStateKind,
    },
    /// The mount directory given exists and is not an empty directory.
    #[error("mount directory {path} is not an empty directory")]
    MountDirNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// A hook or the command failed (exited non-zero for a hook, could not be started for
    /// the command).
    #[error("{step} failed: {source}")]
    Step {
        /// Which step.
        step: StepKind,
        /// The caller's error.
        #[source]
        source: StepError,
    },
    /// Taking or dropping a snapshot failed.
    #[error("snapshot of {member}: {kind}")]
    Snapshot {
        /// The source (`NAME` or `VG/LV`), or empty for a failure of the whole set.
        member: String,
        /// What failed.
        kind: Box<SnapshotErrorKind>,
    },
    /// Mounting a snapshot failed.
    #[error("mounting the snapshot of {member} ({node}) on {target}: {kind}")]
    Mount {
        /// The source.
        member: String,
        /// The snapshot's device node.
        node: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// What failed.
        kind: MountErrorKind,
    },
    /// A signal (SIGINT, SIGTERM, SIGHUP) arrived before the command ran: it was not run,
    /// and everything was cleaned up.
    #[error("interrupted by {signal} before the backup command ran")]
    Interrupted {
        /// The signal.
        signal: nix::sys::signal::Signal,
    },
    /// Setting up signal handling failed.
    #[error("signal handling: {0}")]
    Signals(#[source] nix::errno::Errno),
    /// A device-mapper call failed.
    #[error(transparent)]
    Dm(#[from] crate::Error),
    /// Cleanup (unmount, drop, state file removal) did not finish: the state file is kept,
    /// and [`recover`](super::recover) retries once this process has exited. `cause` is
    /// the failure that ended the backup early, if any.
    #[error(
        "cleanup incomplete ({}){}; the state file {state} is kept for recovery",
        problems.join("; "),
        cause.as_ref().map_or(String::new(), |c| format!(", after: {c}"))
    )]
    CleanupIncomplete {
        /// What could not be undone.
        problems: Vec<String>,
        /// The state file.
        state: PathBuf,
        /// The error that ended the backup early.
        cause: Option<Box<BackupError>>,
    },
}

impl BackupError {
    /// The error that ended the backup, looking through [`BackupError::CleanupIncomplete`].
    pub fn cause(&self) -> &BackupError {
        match self {
            BackupError::CleanupIncomplete { cause: Some(c), .. } => c,
            e => e,
        }
    }
}
