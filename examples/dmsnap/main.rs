//! `dmsnap`: snapshots, rollback and device-mapper inspection without lvm2 or dmsetup.
//!
//! A thin layer over the `devmapper` library: every command is a few library calls.
//! See `dmsnap --help` and the project's CLI contract.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod kernel;

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
    /// A device's status, as `dmsetup status NAME` prints it.
    Status {
        /// Device name.
        name: String,
        /// The inactive table's status.
        #[arg(long)]
        inactive: bool,
    },
    /// Loaded target types with their versions.
    Targets,
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
        Cmd::Status { name, inactive } => kernel::status(&name, inactive),
        Cmd::Targets => kernel::targets(),
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
