//! `dmsnap`: snapshots, rollback and device-mapper inspection without lvm2 or dmsetup.
//!
//! A thin layer over the `devmapper` library: every command is a few library calls.
//! See `dmsnap --help` and the project's CLI contract.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use deferred::Deferred;

#[macro_use]
mod out;
mod backup;
mod cow;
mod deferred;
mod kernel;
mod lvm;
mod lvm_merge;
mod lvm_snap;
mod lvm_write;
mod snap;

use out::{EXIT_FAILURE, EXIT_STDOUT_CLOSED, EXIT_USAGE, Out, StdoutError};

const EXIT_STATUS: &str = "Exit status: 0 on success; 1 on an error (message on stderr, nothing \
on stdout) or when stdout cannot be written (a full disk); 2 for a bad command line; 141, \
quietly, when stdout is a closed pipe.";

/// Device-mapper snapshots, rollback and inspection, in pure Rust.
#[derive(Debug, Parser)]
#[command(name = "dmsnap", version, about, long_about = None, after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Crate, device-mapper interface and driver versions.
    Version,
    /// Every device-mapper device: name, uuid, major:minor, open count, state, targets.
    Ls(Deferred<LsArgs>),
    /// A device's table, exactly as `dmsetup table NAME` prints it.
    Table(Deferred<TableArgs>),
    /// Snapshot state and usage of a wrapped device; for any other device its status as
    /// `dmsetup status NAME` prints it.
    Status(Deferred<StatusArgs>),
    /// Put a linear device NAME over DEVICE; mount /dev/mapper/NAME from now on.
    Wrap(Deferred<WrapArgs>),
    /// Take a snapshot of NAME while it stays mounted and in use (brief freeze); with
    /// several NAMEs, snapshots of all of them at one instant (one freeze).
    Snapshot(Deferred<SnapshotArgs>),
    /// Discard a snapshot; the origin keeps its data and gets its plain table back.
    Drop(Deferred<DropArgs>),
    /// Merge the snapshot into NAME: NAME returns to the snapshot's content.
    Rollback(Deferred<RollbackArgs>),
    /// Remove the wrapper (refused while a snapshot exists or the device is open).
    Unwrap(Deferred<UnwrapArgs>),
    /// Complete or undo an interrupted snapshot, drop or rollback of NAME; without NAME,
    /// clean up after every `dmsnap backup` that was killed.
    Recover(Deferred<RecoverArgs>),
    /// Snapshot SOURCEs at one instant, mount them read-only, run COMMAND, clean up.
    ///
    /// State files of running backups live in /run/dmsnap/backup (DMSNAP_BACKUP_DIR
    /// overrides it); `dmsnap recover` cleans up after a killed one.
    Backup(Deferred<Box<backup::BackupArgs>>),
    /// After a reboot: re-create the wrappers and persistent snapshots found on the devices
    /// (every block device when none is given); idempotent.
    Activate(Deferred<ActivateArgs>),
    /// Loaded target types with their versions.
    Targets,
    /// Offline: the snapshot exception store (COW) on a device or image, no kernel needed.
    #[command(subcommand)]
    Cow(Deferred<cow::CowCmd>),
    /// LVM2 volume groups without lvm2: scan, metadata, plan, export (offline).
    #[command(subcommand)]
    Lvm(Deferred<lvm::LvmCmd>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version go to stdout, usage errors to stderr; neither may panic.
        Err(e) => {
            return match e.print() {
                Err(io) if !e.use_stderr() => stdout_failed(&StdoutError(io)),
                _ => ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 }),
            };
        }
    };
    let cmd = match cli.cmd {
        Cmd::Backup(Deferred(a)) => return backup::main(*a),
        c => c,
    };
    let mut out = Out::default();
    let r = run(cmd, &mut out).and_then(|()| Ok(out.flush()?));
    kernel::print_ioctl_stats();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<StdoutError>() {
            Some(s) => stdout_failed(s),
            // A command line clap cannot check alone (counts that must match).
            None if e.is::<snap::Usage>() => {
                errln!("{e}");
                ExitCode::from(EXIT_USAGE)
            }
            None => {
                report(&*e);
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

/// `dmsnap ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `dmsnap table`.
#[derive(Debug, Args)]
pub struct TableArgs {
    /// Device name.
    pub name: String,
    /// The inactive (loaded, not yet resumed) table.
    #[arg(long)]
    pub inactive: bool,
    /// Show encryption keys instead of zeros.
    #[arg(long)]
    pub showkeys: bool,
}

/// `dmsnap status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Device name.
    pub name: String,
    /// The inactive table's status (dmsetup style).
    #[arg(long)]
    pub inactive: bool,
    /// dmsetup-style status even for a wrapped device.
    #[arg(long)]
    pub raw: bool,
    /// One JSON document on stdout (wrapped devices).
    #[arg(long)]
    pub json: bool,
}

/// `dmsnap wrap`.
#[derive(Debug, Args)]
pub struct WrapArgs {
    /// Name of the new device.
    pub name: String,
    /// The block device to wrap (a disk, partition, md array, ...).
    pub device: std::path::PathBuf,
    /// Also write /etc/dmsnap/wrap/NAME.conf, so that `dmsnap activate` re-creates
    /// the wrapper at boot even without a snapshot (DMSNAP_CONFIG_DIR overrides the
    /// directory).
    #[arg(long)]
    pub boot: bool,
}

/// `dmsnap snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The wrapped device(s).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// The COW device holding the snapshot's changed chunks (its start is overwritten);
    /// one per NAME, the n-th for the n-th NAME.
    /// Refused when it holds anything recognisable (a filesystem, partition table, LVM
    /// PV, md member, LUKS, swap, or an earlier snapshot's store); all-zero or
    /// unrecognised devices are used.
    #[arg(long, required = true, value_name = "DEVICE")]
    pub cow: Vec<std::path::PathBuf>,
    /// Overwrite the COW device even though it holds something recognisable (that data,
    /// or that earlier snapshot, is lost).
    #[arg(long)]
    pub force: bool,
    /// Chunk size (power of two: 4k, 8k, 64k, 8s...; default 4k).
    #[arg(long)]
    pub chunk: Option<String>,
    /// Transient store: nothing survives a reboot; cannot be rolled back.
    #[arg(long)]
    pub transient: bool,
    /// Name of the snapshot device (default NAME-snap); with several NAMEs, one per NAME.
    #[arg(long)]
    pub snap: Vec<String>,
}

/// `dmsnap drop`.
#[derive(Debug, Args)]
pub struct DropArgs {
    /// The wrapped device.
    pub name: String,
    /// Which snapshot, when there are several.
    #[arg(long)]
    pub snap: Option<String>,
}

/// `dmsnap rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The wrapped device.
    pub name: String,
    /// Which snapshot, when there are several.
    #[arg(long)]
    pub snap: Option<String>,
    /// Wait for the merge, showing progress, and restore the plain table.
    #[arg(long)]
    pub wait: bool,
    /// Merge even though NAME is open (mounted): its data changes underneath.
    #[arg(long)]
    pub force: bool,
}

/// `dmsnap unwrap`.
#[derive(Debug, Args)]
pub struct UnwrapArgs {
    /// The wrapped device.
    pub name: String,
}

/// `dmsnap recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The wrapped device.
    pub name: Option<String>,
}

/// `dmsnap activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Devices to scan for dmsnap records and origins (default: all block devices).
    pub devices: Vec<std::path::PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

fn run(cmd: Cmd, out: &mut Out) -> CliResult {
    match cmd {
        Cmd::Version => kernel::version(out),
        Cmd::Ls(Deferred(LsArgs { json })) => kernel::ls(json, out),
        Cmd::Table(Deferred(TableArgs {
            name,
            inactive,
            showkeys,
        })) => kernel::table(&name, inactive, showkeys, out),
        Cmd::Status(Deferred(StatusArgs {
            name,
            inactive,
            raw,
            json,
        })) => {
            if !raw && !inactive {
                match snap::status(&name, json, out) {
                    Ok(true) => Ok(()),
                    Ok(false) => kernel::status(&name, inactive, out),
                    Err(e) => Err(e),
                }
            } else {
                kernel::status(&name, inactive, out)
            }
        }
        Cmd::Wrap(Deferred(WrapArgs { name, device, boot })) => {
            snap::wrap(&name, &device, boot, out)
        }
        Cmd::Snapshot(Deferred(SnapshotArgs {
            names,
            cow,
            chunk,
            transient,
            snap,
            force,
        })) => snap::snapshot_cmd(&names, cow, chunk.as_deref(), transient, snap, force, out),
        Cmd::Drop(Deferred(DropArgs { name, snap })) => {
            snap::drop_snapshot(&name, snap.as_deref(), out)
        }
        Cmd::Rollback(Deferred(RollbackArgs {
            name,
            snap,
            wait,
            force,
        })) => snap::rollback(&name, snap.as_deref(), wait, force, out),
        Cmd::Unwrap(Deferred(UnwrapArgs { name })) => snap::unwrap(&name, out),
        Cmd::Recover(Deferred(RecoverArgs { name: Some(name) })) => snap::recover(&name, out),
        Cmd::Recover(Deferred(RecoverArgs { name: None })) => backup::recover(out),
        // Dispatched in `main` (its exit status is the command's).
        Cmd::Backup(_) => Err("backup is run by main".into()),
        Cmd::Activate(Deferred(ActivateArgs { devices, json })) => {
            snap::activate(devices, json, out)
        }
        Cmd::Targets => kernel::targets(out),
        Cmd::Cow(c) => cow::run(c.0, out),
        Cmd::Lvm(c) => lvm::run(c.0, out),
    }
}

/// stdout could not be written: quiet for a closed pipe, one line for anything else.
fn stdout_failed(e: &StdoutError) -> ExitCode {
    if e.0.kind() == std::io::ErrorKind::BrokenPipe {
        return ExitCode::from(EXIT_STDOUT_CLOSED);
    }
    errln!("dmsnap: {e}");
    ExitCode::from(EXIT_FAILURE)
}

/// The error and its causes, each cause only when the text so far does not already say
/// it (most errors include their source in their own message).
fn report(e: &(dyn std::error::Error + 'static)) {
    let mut said = e
        .downcast_ref::<devmapper::snapshot::SnapError>()
        .and_then(snap::advised)
        .unwrap_or_else(|| e.to_string());
    errln!("dmsnap: {said}");
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !said.contains(&text) {
            errln!("  caused by: {text}");
            said.push('\n');
            said.push_str(&text);
        }
        src = s.source();
    }
}

/// The example's error type: any library error, with context already in its message.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
