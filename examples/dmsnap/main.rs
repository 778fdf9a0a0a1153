//! `dmsnap`: snapshots, rollback and device-mapper inspection without lvm2 or dmsetup.
//!
//! A thin layer over the `devmapper` library: every command is a few library calls.
//! See `dmsnap --help` and the project's CLI contract.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cow;
mod kernel;
mod lvm;
mod snap;

/// Device-mapper snapshots, rollback and inspection, in pure Rust.
#[derive(Debug, Parser)]
#[command(name = "dmsnap", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Crate, device-mapper interface and driver versions.
    Version,
    /// Every device-mapper device: name, uuid, major:minor, open count, state, targets.
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// A device's table, exactly as `dmsetup table NAME` prints it.
    Table {
        /// Device name.
        name: String,
        /// The inactive (loaded, not yet resumed) table.
        #[arg(long)]
        inactive: bool,
        /// Show encryption keys instead of zeros.
        #[arg(long)]
        showkeys: bool,
    },
    /// Snapshot state and usage of a wrapped device; for any other device its status as
    /// `dmsetup status NAME` prints it.
    Status {
        /// Device name.
        name: String,
        /// The inactive table's status (dmsetup style).
        #[arg(long)]
        inactive: bool,
        /// dmsetup-style status even for a wrapped device.
        #[arg(long)]
        raw: bool,
        /// One JSON document on stdout (wrapped devices).
        #[arg(long)]
        json: bool,
    },
    /// Put a linear device NAME over DEVICE; mount /dev/mapper/NAME from now on.
    Wrap {
        /// Name of the new device.
        name: String,
        /// The block device to wrap (a disk, partition, md array, ...).
        device: std::path::PathBuf,
    },
    /// Take a snapshot of NAME while it stays mounted and in use (brief freeze).
    Snapshot {
        /// The wrapped device.
        name: String,
        /// The COW device holding the snapshot's changed chunks (its start is overwritten).
        /// Refused when it holds anything recognisable (a filesystem, partition table, LVM
        /// PV, md member, LUKS, swap, or an earlier snapshot's store); all-zero or
        /// unrecognised devices are used.
        #[arg(long)]
        cow: std::path::PathBuf,
        /// Overwrite the COW device even though it holds something recognisable (that data,
        /// or that earlier snapshot, is lost).
        #[arg(long)]
        force: bool,
        /// Chunk size (power of two: 4k, 8k, 64k, 8s...; default 4k).
        #[arg(long)]
        chunk: Option<String>,
        /// Transient store: nothing survives a reboot; cannot be rolled back.
        #[arg(long)]
        transient: bool,
        /// Name of the snapshot device (default NAME-snap).
        #[arg(long)]
        snap: Option<String>,
    },
    /// Discard a snapshot; the origin keeps its data and gets its plain table back.
    Drop {
        /// The wrapped device.
        name: String,
        /// Which snapshot, when there are several.
        #[arg(long)]
        snap: Option<String>,
    },
    /// Merge the snapshot into NAME: NAME returns to the snapshot's content.
    Rollback {
        /// The wrapped device.
        name: String,
        /// Which snapshot, when there are several.
        #[arg(long)]
        snap: Option<String>,
        /// Wait for the merge, showing progress, and restore the plain table.
        #[arg(long)]
        wait: bool,
        /// Merge even though NAME is open (mounted): its data changes underneath.
        #[arg(long)]
        force: bool,
    },
    /// Remove the wrapper (refused while a snapshot exists or the device is open).
    Unwrap {
        /// The wrapped device.
        name: String,
    },
    /// Complete or undo an interrupted snapshot, drop or rollback of NAME.
    Recover {
        /// The wrapped device.
        name: String,
    },
    /// Loaded target types with their versions.
    Targets,
    /// Offline: the snapshot exception store (COW) on a device or image, no kernel needed.
    #[command(subcommand)]
    Cow(cow::CowCmd),
    /// LVM2 volume groups without lvm2: scan, metadata, plan, export (offline).
    #[command(subcommand)]
    Lvm(lvm::LvmCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Version => kernel::version(),
        Cmd::Ls { json } => kernel::ls(json),
        Cmd::Table {
            name,
            inactive,
            showkeys,
        } => kernel::table(&name, inactive, showkeys),
        Cmd::Status {
            name,
            inactive,
            raw,
            json,
        } => {
            if !raw && !inactive {
                match snap::status(&name, json) {
                    Ok(true) => Ok(()),
                    Ok(false) => kernel::status(&name, inactive),
                    Err(e) => Err(e),
                }
            } else {
                kernel::status(&name, inactive)
            }
        }
        Cmd::Wrap { name, device } => snap::wrap(&name, &device),
        Cmd::Snapshot {
            name,
            cow,
            chunk,
            transient,
            snap,
            force,
        } => snap::snapshot(
            &name,
            cow,
            chunk.as_deref(),
            transient,
            snap.as_deref(),
            force,
        ),
        Cmd::Drop { name, snap } => snap::drop_snapshot(&name, snap.as_deref()),
        Cmd::Rollback {
            name,
            snap,
            wait,
            force,
        } => snap::rollback(&name, snap.as_deref(), wait, force),
        Cmd::Unwrap { name } => snap::unwrap(&name),
        Cmd::Recover { name } => snap::recover(&name),
        Cmd::Targets => kernel::targets(),
        Cmd::Cow(c) => cow::run(c),
        Cmd::Lvm(c) => lvm::run(c),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dmsnap: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// The example's error type: any library error, with context already in its message.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
