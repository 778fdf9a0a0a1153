//! Backups from snapshots that clean up after themselves: [`run`] and [`recover`].
//!
//! One backup: stale backups of dead processes are recovered first; then the caller's
//! `pre` hook (a database flush or lock), every source snapshotted at one instant, in one
//! freeze ([`crate::snapshot_set::SnapshotSet`]; raw wrapped devices with transient
//! stores, LVs tagged [`BACKUP_TAG`] right after), the `post` hook (run even when the
//! snapshots failed, to release what `pre` took), each snapshot mounted read-only under
//! the mount directory (`DIR/NAME`, `DIR/VG/LV`) with the options its filesystem needs
//! ([`MountPlan`]; by device node, never by UUID: a snapshot carries its origin's UUID),
//! the caller's command, each snapshot's state read, then everything unmounted and
//! dropped. A snapshot that became invalid (its COW filled up) while the command ran
//! means the command read a broken view: [`Outcome::BrokenView`].
//!
//! A state file per running backup (see [`state`]), written before the first snapshot
//! exists and before every mount, names everything to undo; [`recover`] undoes it for
//! every backup whose process died (a SIGKILL, a crash), and every [`run`] starts with it.
//! SIGINT, SIGTERM and SIGHUP are blocked while a backup runs: passed on to the command
//! while it runs, and in any case followed by the cleanup.
//!
//! ```no_run
//! use std::process::Command;
//! use devmapper::{DeviceMapper, DmName};
//! use devmapper::backup::{self, BackupOptions, Outcome, ProcessSteps, Source};
//! use devmapper::lvm::write::snapshot::size::CowSize;
//! let dm = DeviceMapper::new()?;
//! let sources = [
//!     Source::raw(DmName::new("dat")?, "/dev/sdc1"),
//!     Source::lvm("vg0", "pccehr", CowSize::Sectors(2 << 21)),
//! ];
//! let mut restic = Command::new("restic");
//! restic.args(["backup", "."]);
//! let mut steps = ProcessSteps::new(restic).env("BACKUP_MOUNT_DIR");
//! let report = backup::run(&dm, &sources, &BackupOptions::new("backup"), &mut steps)?;
//! for m in &report.members {
//!     println!("{} -> {} ({})", m.source, m.mount_point.display(), m.fs.name());
//! }
//! match report.outcome() {
//!     Outcome::Success => println!("done in {:?}", report.total),
//!     Outcome::CommandFailed(st) => println!("the command failed: {st}"),
//!     Outcome::BrokenView { invalid, .. } => println!("snapshots overflowed: {invalid:?}"),
//!     _ => {}
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod btrfs_fsid;
mod error;
mod mount;
mod recover;
pub mod state;
mod steps;
mod take;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

pub use error::{
    BackupError, BadStateKind, MountErrorKind, SnapshotErrorKind, StepError, StepKind,
};
pub use mount::MountPlan;
pub use recover::{CleanupAction, RecoverReport, RecoveredBackup, recover};
pub use state::{BackupState, PlannedSnapshot, ProcessId};
pub use steps::{CommandRun, MountedSource, ProcessSteps, Steps};

use crate::lvm::write::session::WriteOptions;
use crate::lvm::write::snapshot::size::CowSize;
use crate::probe::FsKind;
use crate::targets::{SnapshotStatus, SnapshotUsage};
use crate::units::Sectors;
use crate::{DeviceMapper, DmName};
use state::write_state;
use steps::Signals;

/// The tag every LVM snapshot of a backup carries (`lvs -o tags` shows it).
pub const BACKUP_TAG: &str = "dmsnap_backup";
/// The default state directory: state files and default mount directories.
pub const DEFAULT_STATE_DIR: &str = "/run/dmsnap/backup";

/// A volume to back up, with where its snapshot's changes go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A wrapped device ([`crate::snapshot::Wrapper`]) and its COW device (a transient
    /// store: nothing on it survives a reboot).
    Raw {
        /// The wrapped device.
        name: DmName,
        /// The COW device.
        cow: PathBuf,
    },
    /// An active LV, with the size of its snapshot's COW (allocated in its VG).
    Lvm {
        /// The VG.
        vg: String,
        /// The LV.
        lv: String,
        /// COW size.
        size: CowSize,
    },
}

impl Source {
    /// A wrapped device and its COW device.
    pub fn raw(name: DmName, cow: impl Into<PathBuf>) -> Source {
        Source::Raw {
            name,
            cow: cow.into(),
        }
    }

    /// An LV and its COW size.
    pub fn lvm(vg: impl Into<String>, lv: impl Into<String>, size: CowSize) -> Source {
        Source::Lvm {
            vg: vg.into(),
            lv: lv.into(),
            size,
        }
    }

    /// Where its snapshot is mounted, relative to the mount directory: `NAME`, `VG/LV`.
    pub fn mount_rel(&self) -> PathBuf {
        match self {
            Source::Raw { name, .. } => PathBuf::from(name.as_str()),
            Source::Lvm { vg, lv, .. } => Path::new(vg).join(lv),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Raw { name, .. } => write!(f, "{name}"),
            Source::Lvm { vg, lv, .. } => write!(f, "{vg}/{lv}"),
        }
    }
}

/// How a backup runs.
#[derive(Clone, Debug)]
#[must_use]
pub struct BackupOptions {
    /// State files (and default mount directories) go here (default
    /// [`DEFAULT_STATE_DIR`]).
    pub state_dir: PathBuf,
    /// Mount the snapshots here (an empty or new directory); default a new
    /// `<state_dir>/<id>`.
    pub mount_dir: Option<PathBuf>,
    /// The longest any suspend may last ([`crate::DEFAULT_SUSPEND_BOUND`]).
    pub bound: Duration,
    /// How LVM metadata is written (devices, locks, the command line in its history).
    pub write: WriteOptions,
    /// Block SIGINT, SIGTERM and SIGHUP while the backup runs and pass them to the command
    /// (default true). Call [`run`] from the main thread before other threads exist, or
    /// block these signals in every thread, for this to hold for the whole process.
    pub signals: bool,
}

impl BackupOptions {
    /// The defaults; `command` is recorded in LVM metadata written on the way.
    pub fn new(command: impl Into<String>) -> BackupOptions {
        BackupOptions {
            state_dir: DEFAULT_STATE_DIR.into(),
            mount_dir: None,
            bound: crate::DEFAULT_SUSPEND_BOUND,
            write: WriteOptions::new(command),
            signals: true,
        }
    }

    /// Set the state directory.
    pub fn state_dir(mut self, d: impl Into<PathBuf>) -> BackupOptions {
        self.state_dir = d.into();
        self
    }

    /// Set the mount directory.
    pub fn mount_dir(mut self, d: impl Into<PathBuf>) -> BackupOptions {
        self.mount_dir = Some(d.into());
        self
    }
}

/// One source of a finished backup.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemberReport {
    /// `NAME` or `VG/LV`.
    pub source: String,
    /// The snapshot (dm device, or `VG/LV` of the snapshot LV).
    pub snapshot: String,
    /// Its device node.
    pub node: PathBuf,
    /// The filesystem found on it.
    pub fs: FsKind,
    /// Where it was mounted.
    pub mount_point: PathBuf,
    /// btrfs beside its mounted origin: the new fsid the snapshot was given so that the
    /// kernel would mount it ([`btrfs_fsid::reidentify`]).
    pub new_fsid: Option<uuid::Uuid>,
    /// Size of its COW.
    pub cow_sectors: Sectors,
    /// The snapshot's state after the command (`None`: its device was gone).
    pub status_at_end: Option<SnapshotStatus>,
}

impl MemberReport {
    /// COW usage after the command, when the snapshot was still valid.
    pub fn usage_at_end(&self) -> Option<SnapshotUsage> {
        match self.status_at_end {
            Some(SnapshotStatus::Active(u)) => Some(u),
            _ => None,
        }
    }

    /// The snapshot overflowed (or vanished): what was read from it may be broken.
    pub fn is_broken(&self) -> bool {
        matches!(
            self.status_at_end,
            None | Some(SnapshotStatus::Invalid | SnapshotStatus::Overflow)
        )
    }
}

/// How a backup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The command succeeded on intact snapshots.
    Success,
    /// The command failed (its status).
    CommandFailed(ExitStatus),
    /// At least one snapshot became invalid while the command ran: it read a broken
    /// view, whatever its status.
    BrokenView {
        /// The sources whose snapshot is invalid.
        invalid: Vec<String>,
        /// The command's status.
        command: ExitStatus,
    },
}

/// What a backup did.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackupReport {
    /// Its id (its state file and default mount directory are named after it).
    pub id: String,
    /// The mount directory.
    pub mount_dir: PathBuf,
    /// Each source, in the order given.
    pub members: Vec<MemberReport>,
    /// How long the origins were suspended (frozen), in all.
    pub suspended_for: Duration,
    /// The whole backup, recovery to cleanup.
    pub total: Duration,
    /// The command's exit status.
    pub status: ExitStatus,
    /// A signal received while the command ran (passed on to it).
    pub interrupted: Option<nix::sys::signal::Signal>,
    /// Backups of dead processes cleaned up first.
    pub recovered: Vec<RecoveredBackup>,
    /// What cleanup did.
    pub cleanup: Vec<CleanupAction>,
    /// What the LVM steps said on the way (sizes rounded up or cut, as lvm2 says it).
    pub notices: Vec<String>,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
}

impl BackupReport {
    /// Success, a failed command, or a broken view.
    pub fn outcome(&self) -> Outcome {
        let invalid: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.is_broken())
            .map(|m| m.source.clone())
            .collect();
        if !invalid.is_empty() {
            Outcome::BrokenView {
                invalid,
                command: self.status,
            }
        } else if self.status.success() {
            Outcome::Success
        } else {
            Outcome::CommandFailed(self.status)
        }
    }
}

fn check_component(s: &Source, c: &str) -> Result<(), BackupError> {
    if c.is_empty() || c == "." || c == ".." || c.contains('/') || c.contains('\0') {
        return Err(BackupError::BadName {
            member: s.to_string(),
            why: format!("{c:?} cannot name a mount point"),
        });
    }
    Ok(())
}

/// The snapshot each source gets, named after the backup's id.
fn plan(sources: &[Source], id: &str) -> Result<Vec<PlannedSnapshot>, BackupError> {
    if sources.is_empty() {
        return Err(BackupError::NoSources);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in sources {
        if !seen.insert(s.to_string()) {
            return Err(BackupError::Duplicate {
                member: s.to_string(),
            });
        }
        out.push(match s {
            Source::Raw { name, cow } => {
                check_component(s, name.as_str())?;
                PlannedSnapshot::Raw {
                    cow: std::path::absolute(cow).unwrap_or_else(|_| cow.clone()),
                    origin: name.clone(),
                    snapshot: DmName::new(&format!("{name}-bk{id}")).map_err(|e| {
                        BackupError::BadName {
                            member: s.to_string(),
                            why: e.to_string(),
                        }
                    })?,
                }
            }
            Source::Lvm { vg, lv, .. } => {
                check_component(s, vg)?;
                check_component(s, lv)?;
                PlannedSnapshot::Lvm {
                    vg: vg.clone(),
                    lv: lv.clone(),
                    snapshot: format!("{lv}_bk{id}"),
                }
            }
        });
    }
    Ok(out)
}

/// A new directory with mode 0700.
fn mkdir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(p)
}

/// Run one backup of `sources` (see the [module doc](self)): everything it created is
/// gone again when it returns, whatever happened, unless
/// [`BackupError::CleanupIncomplete`] says otherwise.
///
/// # Errors
/// Refusals before anything is created ([`BackupError::NoSources`],
/// [`BackupError::Duplicate`], [`BackupError::BadName`],
/// [`BackupError::MountDirNotEmpty`], [`BackupError::StateFile`]); a failed step
/// ([`BackupError::Step`], [`BackupError::Snapshot`], [`BackupError::Mount`],
/// [`BackupError::Interrupted`]): cleaned up; [`BackupError::CleanupIncomplete`].
/// A failed command or a broken view is not an error: see [`BackupReport::outcome`].
pub fn run(
    dm: &DeviceMapper,
    sources: &[Source],
    opts: &BackupOptions,
    steps: &mut dyn Steps,
) -> Result<BackupReport, BackupError> {
    let t0 = Instant::now();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let planned = plan(sources, &id)?;
    let dir = &opts.state_dir;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::StateFile { path, source }
    };
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)
            .map_err(io(dir))?;
    }
    let mut warnings = Vec::new();
    let recovered = match recover(dm, opts) {
        Ok(r) => {
            for (p, e) in &r.unreadable {
                warnings.push(format!("{} left alone: {e}", p.display()));
            }
            r.recovered
        }
        Err(e) => {
            warnings.push(format!("recovery of earlier backups failed: {e}"));
            Vec::new()
        }
    };
    for b in &recovered {
        for p in &b.problems {
            warnings.push(format!("earlier backup {}: {p}", b.state.id));
        }
    }
    let owner = ProcessId::current().map_err(io(Path::new("/proc/self/stat")))?;
    let mut st = BackupState::new(&id, owner);
    st.snapshots = planned.clone();
    let (mount_dir, create) = match &opts.mount_dir {
        Some(d) => match std::fs::read_dir(d) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackupError::MountDirNotEmpty { path: d.clone() });
                }
                (d.clone(), false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (d.clone(), true),
            Err(_) => return Err(BackupError::MountDirNotEmpty { path: d.clone() }),
        },
        None => (dir.join(&id), true),
    };
    let mount_dir = std::path::absolute(&mount_dir).map_err(io(&mount_dir))?;
    if create {
        st.dirs.push(mount_dir.clone());
    }
    // The state file exists before anything else does.
    write_state(dir, &st)?;
    let signals = if opts.signals {
        match Signals::block() {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = std::fs::remove_file(state::state_path(dir, &id));
                return Err(e);
            }
        }
    } else {
        None
    };
    let mut body = Body {
        dm,
        opts,
        sources,
        st: &mut st,
        mount_dir: &mount_dir,
        signals: signals.as_ref(),
        members: Vec::new(),
        suspended_for: Duration::ZERO,
        interrupted: None,
        warnings: &mut warnings,
        notices: Vec::new(),
    };
    let result = if create {
        mkdir(&mount_dir).map_err(io(&mount_dir))
    } else {
        Ok(())
    }
    .and_then(|()| body.run(steps, &planned));
    let members = std::mem::take(&mut body.members);
    let suspended_for = body.suspended_for;
    let interrupted = body.interrupted;
    let notices = std::mem::take(&mut body.notices);
    let mut cleanup = Vec::new();
    let problems = recover::undo(dm, &st, dir, &opts.write, false, &mut cleanup);
    drop(signals);
    if !problems.is_empty() {
        return Err(BackupError::CleanupIncomplete {
            problems,
            state: state::state_path(dir, &id),
            cause: result.err().map(Box::new),
        });
    }
    let status = result?;
    Ok(BackupReport {
        id,
        mount_dir,
        members,
        suspended_for,
        total: t0.elapsed(),
        status,
        interrupted,
        recovered,
        cleanup,
        notices,
        warnings,
    })
}

/// The part of [`run`] between the state file and the cleanup.
struct Body<'a, 'b> {
    dm: &'a DeviceMapper,
    opts: &'a BackupOptions,
    sources: &'a [Source],
    st: &'b mut BackupState,
    mount_dir: &'a Path,
    signals: Option<&'a Signals>,
    members: Vec<MemberReport>,
    suspended_for: Duration,
    interrupted: Option<nix::sys::signal::Signal>,
    warnings: &'b mut Vec<String>,
    notices: Vec<String>,
}

impl Body<'_, '_> {
    fn check_signals(&self) -> Result<(), BackupError> {
        match self.signals.and_then(Signals::interrupted) {
            Some(signal) => Err(BackupError::Interrupted { signal }),
            None => Ok(()),
        }
    }

    fn run(
        &mut self,
        steps: &mut dyn Steps,
        planned: &[PlannedSnapshot],
    ) -> Result<ExitStatus, BackupError> {
        let dm = self.dm;
        let step = |step| move |source| BackupError::Step { step, source };
        let pre = steps.pre().map_err(step(StepKind::Pre));
        let taken = pre.and_then(|()| {
            self.check_signals()?;
            take::take_all(dm, self.sources, planned, self.opts)
        });
        let post = steps.post().map_err(step(StepKind::Post));
        let made = taken?;
        self.warnings.extend(made.warnings);
        self.notices.extend(made.notices);
        let taken = made.taken;
        self.suspended_for = made.suspended_for;
        post?;
        self.check_signals()?;

        // Mount each snapshot: recorded in the state file first.
        let dir = &self.opts.state_dir;
        let mut mounted = Vec::new();
        for (s, t) in self.sources.iter().zip(&taken) {
            let target = self.mount_dir.join(s.mount_rel());
            if let Source::Lvm { vg, .. } = s {
                let parent = self.mount_dir.join(vg);
                if !self.st.dirs.contains(&parent) && !parent.exists() {
                    self.st.dirs.push(parent.clone());
                    write_state(dir, self.st)?;
                    mkdir(&parent).map_err(|e| self.mount_err(s, t, &target, e))?;
                }
            }
            self.st.dirs.push(target.clone());
            self.st.mounts.push(target.clone());
            write_state(dir, self.st)?;
            mkdir(&target).map_err(|e| self.mount_err(s, t, &target, e))?;
            let plan = mount::mount_snapshot(&t.node, t.dev, &target).map_err(|kind| {
                BackupError::Mount {
                    member: s.to_string(),
                    node: t.node.clone(),
                    target: target.clone(),
                    kind,
                }
            })?;
            let cow_sectors = match take::status_of(dm, &t.dm_name)? {
                Some(SnapshotStatus::Active(u)) => u.total,
                _ => Sectors(0),
            };
            self.members.push(MemberReport {
                source: s.to_string(),
                snapshot: match &t.planned {
                    PlannedSnapshot::Raw { snapshot, .. } => snapshot.to_string(),
                    PlannedSnapshot::Lvm { vg, snapshot, .. } => format!("{vg}/{snapshot}"),
                },
                node: t.node.clone(),
                fs: plan.fs,
                mount_point: target.clone(),
                new_fsid: plan.reidentified.map(|r| r.new_fsid),
                cow_sectors,
                status_at_end: None,
            });
            mounted.push(MountedSource {
                source: s.to_string(),
                mount_point: target,
            });
        }
        self.check_signals()?;

        let mut run = steps::CommandRun {
            mount_dir: self.mount_dir,
            mounts: &mounted,
            state: self.st,
            state_dir: dir,
            signals: self.signals,
            interrupted: None,
        };
        let status = steps.command(&mut run).map_err(step(StepKind::Command));
        self.interrupted = run.interrupted;
        // The snapshots' state after the command, whatever it did.
        for (m, t) in self.members.iter_mut().zip(&taken) {
            match take::status_of(dm, &t.dm_name) {
                Ok(s) => m.status_at_end = s,
                Err(e) => self.warnings.push(format!("status of {}: {e}", t.dm_name)),
            }
        }
        status
    }

    fn mount_err(
        &self,
        s: &Source,
        t: &take::Taken,
        target: &Path,
        e: std::io::Error,
    ) -> BackupError {
        BackupError::Mount {
            member: s.to_string(),
            node: t.node.clone(),
            target: target.to_owned(),
            kind: MountErrorKind::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_and_refusals() {
        let a = Source::raw(DmName::new("dat").unwrap(), "/dev/x");
        let b = Source::lvm("vg0", "pccehr", CowSize::Extents(4));
        let p = plan(&[a.clone(), b.clone()], "0123456789ab").unwrap();
        assert_eq!(
            p,
            vec![
                PlannedSnapshot::Raw {
                    origin: DmName::new("dat").unwrap(),
                    snapshot: DmName::new("dat-bk0123456789ab").unwrap(),
                    cow: "/dev/x".into(),
                },
                PlannedSnapshot::Lvm {
                    vg: "vg0".into(),
                    lv: "pccehr".into(),
                    snapshot: "pccehr_bk0123456789ab".into(),
                },
            ]
        );
        assert_eq!(b.mount_rel(), PathBuf::from("vg0/pccehr"));
        assert_eq!(b.to_string(), "vg0/pccehr");
        assert!(matches!(plan(&[], "x"), Err(BackupError::NoSources)));
        match plan(&[a.clone(), b, a], "x") {
            Err(BackupError::Duplicate { member }) => assert_eq!(member, "dat"),
            other => panic!("{other:?}"),
        }
        let dots = Source::lvm("vg0", "..", CowSize::Extents(4));
        assert!(matches!(
            plan(&[dots], "x"),
            Err(BackupError::BadName { .. })
        ));
        let long = Source::raw(DmName::new(&"n".repeat(120)).unwrap(), "/dev/x");
        assert!(matches!(
            plan(&[long], "0123456789ab"),
            Err(BackupError::BadName { .. })
        ));
    }

    #[test]
    fn outcome_prefers_a_broken_view() {
        use std::os::unix::process::ExitStatusExt;
        let member = |status| MemberReport {
            source: "dat".into(),
            snapshot: "dat-bk1".into(),
            node: "/dev/mapper/dat-bk1".into(),
            fs: FsKind::Ext4,
            mount_point: "/m/dat".into(),
            new_fsid: None,
            cow_sectors: Sectors(100),
            status_at_end: status,
        };
        let mut r = BackupReport {
            id: "1".into(),
            mount_dir: "/m".into(),
            members: vec![member(Some(SnapshotStatus::Active(SnapshotUsage {
                allocated: Sectors(10),
                total: Sectors(100),
                metadata: Sectors(2),
            })))],
            suspended_for: Duration::ZERO,
            total: Duration::ZERO,
            status: ExitStatus::from_raw(0),
            interrupted: None,
            recovered: Vec::new(),
            cleanup: Vec::new(),
            notices: Vec::new(),
            warnings: Vec::new(),
        };
        assert_eq!(r.outcome(), Outcome::Success);
        assert_eq!(r.members[0].usage_at_end().unwrap().allocated, Sectors(10));
        r.status = ExitStatus::from_raw(1 << 8);
        assert_eq!(r.outcome(), Outcome::CommandFailed(r.status));
        r.status = ExitStatus::from_raw(0);
        r.members.push(member(Some(SnapshotStatus::Invalid)));
        assert_eq!(
            r.outcome(),
            Outcome::BrokenView {
                invalid: vec!["dat".into()],
                command: r.status
            }
        );
    }
}
