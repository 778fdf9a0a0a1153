//! `dmsnap backup SOURCE... -- COMMAND`: one call to [`devmapper::backup::run`] with the
//! hooks and the command as programs (`sh -c` for the hooks); `dmsnap recover` without a
//! name: [`devmapper::backup::recover`]. This file parses, spawns and prints.

use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};

use clap::Args;
use devmapper::backup::{
    self, BackupOptions, BackupReport, MemberReport, Outcome, ProcessSteps, RecoveredBackup, Source,
};
use devmapper::lvm::write::ops;
use devmapper::lvm::write::snapshot::size::CowSize;
use devmapper::targets::SnapshotStatus;
use devmapper::{DeviceMapper, DmName};

use crate::CliResult;
use crate::lvm_write::Devices;
use crate::out::{EXIT_FAILURE, EXIT_USAGE, Out};

/// The environment variable naming the mount directory for COMMAND.
const MOUNT_DIR_ENV: &str = "DMSNAP_MOUNT_DIR";
/// The environment variable overriding the state directory (/run/dmsnap/backup).
const STATE_DIR_ENV: &str = "DMSNAP_BACKUP_DIR";

/// The library's defaults, with the state directory from DMSNAP_BACKUP_DIR if set.
fn options(command: &str) -> BackupOptions {
    let mut o = BackupOptions::new(command);
    if let Some(d) = std::env::var_os(STATE_DIR_ENV) {
        o.state_dir = d.into();
    }
    o
}

/// `dmsnap backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to back up: wrapped device NAMEs and VG/LVs, snapshotted at one instant.
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    /// COW devices of the wrapped NAMEs, in their order (one per NAME; a transient store,
    /// the device's start is overwritten).
    #[arg(long, value_name = "DEVICE", num_args = 1..)]
    cow: Vec<PathBuf>,
    /// COW sizes of the VG/LVs (lvm2's units, no unit = MiB): one for all, or one per LV.
    #[arg(long, value_name = "SIZE", num_args = 1..)]
    size: Vec<String>,
    /// Shell command run before the freeze (`sh -c`): flush or lock a database.
    #[arg(long, value_name = "CMD")]
    pre: Option<String>,
    /// Shell command run right after the snapshots were taken, or failed (`sh -c`).
    #[arg(long, value_name = "CMD")]
    post: Option<String>,
    /// Mount the snapshots under DIR/NAME and DIR/VG/LV (an empty or new directory;
    /// default a new directory under /run/dmsnap/backup).
    #[arg(long, value_name = "DIR")]
    mount_dir: Option<PathBuf>,
    /// The summary as one JSON document on stdout (else as text on stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    scan: Devices,
    /// The backup command, run with DMSNAP_MOUNT_DIR set to the mount directory.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The sources with their COWs, or a usage message.
fn sources(a: &BackupArgs) -> Result<Vec<Source>, String> {
    let raw = a.sources.iter().filter(|s| !s.contains('/')).count();
    let lvs = a.sources.len() - raw;
    if a.cow.len() != raw {
        return Err(format!(
            "{raw} wrapped device(s) given but {} --cow device(s): give one --cow per NAME, in order",
            a.cow.len()
        ));
    }
    if lvs == 0 && !a.size.is_empty() {
        return Err("--size is for VG/LV sources, and none is given".into());
    }
    if lvs > 0 && a.size.len() != 1 && a.size.len() != lvs {
        return Err(format!(
            "{lvs} VG/LV source(s) given but {} --size value(s): give one for all, or one per LV",
            a.size.len()
        ));
    }
    let mut cows = a.cow.iter();
    let mut out = Vec::new();
    let mut lv_i = 0;
    for s in &a.sources {
        match s.split_once('/') {
            None => {
                let name = DmName::new(s).map_err(|e| e.to_string())?;
                out.push(Source::raw(name, cows.next().cloned().unwrap_or_default()));
            }
            Some((vg, lv)) => {
                if vg.is_empty() || lv.is_empty() || lv.contains('/') {
                    return Err(format!("{s}: give an LV as VG/LV"));
                }
                let text = a
                    .size
                    .get(lv_i)
                    .or(a.size.first())
                    .cloned()
                    .unwrap_or_default();
                lv_i += 1;
                let sectors = ops::parse_size(&text, 2048).map_err(|e| e.to_string())?;
                out.push(Source::lvm(vg, lv, CowSize::Sectors(sectors)));
            }
        }
    }
    Ok(out)
}

fn sh(line: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", line]);
    c
}

/// Run `dmsnap backup`; the exit status is COMMAND's (1 on an error of the backup itself,
/// and non-zero when a snapshot became invalid).
pub fn main(a: BackupArgs) -> ExitCode {
    let sources = match sources(&a) {
        Ok(s) => s,
        Err(why) => {
            errln!("dmsnap backup: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(a, &sources) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<crate::out::StdoutError>() {
            Some(s) => crate::stdout_failed(s),
            None => {
                crate::report(&*e);
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

fn run(a: BackupArgs, sources: &[Source]) -> CliResult<ExitCode> {
    let dm = DeviceMapper::new()?;
    let mut opts = options("dmsnap backup");
    opts.write = a.scan.options();
    opts.mount_dir = a.mount_dir.clone();
    let mut cmd = Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    let mut steps = ProcessSteps::new(cmd).env(MOUNT_DIR_ENV);
    if let Some(p) = &a.pre {
        steps = steps.pre_hook(sh(p));
    }
    if let Some(p) = &a.post {
        steps = steps.post_hook(sh(p));
    }
    let report = backup::run(&dm, sources, &opts, &mut steps)?;
    for n in &report.notices {
        errln!("  {n}");
    }
    for w in &report.warnings {
        errln!("dmsnap backup: warning: {w}");
    }
    let outcome = report.outcome();
    if a.json {
        let mut out = Out::default();
        writeln!(out, "{}", json(&report, &outcome));
        out.flush()?;
    } else {
        summary(&report);
    }
    let code = exit_code(report.status);
    Ok(match outcome {
        Outcome::Success => ExitCode::SUCCESS,
        Outcome::CommandFailed(st) => {
            errln!("dmsnap backup: the command failed ({st})");
            ExitCode::from(code)
        }
        Outcome::BrokenView { invalid, .. } => {
            errln!(
                "dmsnap backup: the snapshot of {} became invalid while the command ran (its COW \
                 filled up): the backup read a broken view; give a larger COW",
                invalid.join(", ")
            );
            ExitCode::from(if code == 0 { EXIT_FAILURE } else { code })
        }
        _ => ExitCode::from(EXIT_FAILURE),
    })
}

/// The shell's convention: the code, or 128 + the signal that ended the command.
fn exit_code(st: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(EXIT_FAILURE),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(EXIT_FAILURE),
        _ => EXIT_FAILURE,
    }
}

fn state_name(s: Option<SnapshotStatus>) -> &'static str {
    match s {
        Some(SnapshotStatus::Active(_)) => "active",
        Some(SnapshotStatus::Invalid) => "invalid",
        Some(SnapshotStatus::Overflow) => "overflow",
        Some(SnapshotStatus::MergeFailed) => "merge-failed",
        Some(SnapshotStatus::Unknown) => "unknown",
        None => "gone",
    }
}

fn mib(sectors: u64) -> f64 {
    sectors as f64 / 2048.0
}

fn member_line(m: &MemberReport) -> String {
    let usage = match m.usage_at_end() {
        Some(u) => format!("{:.1}% used at the end", u.used_percent().unwrap_or(0.0)),
        None => state_name(m.status_at_end).to_uppercase(),
    };
    let fsid = m
        .new_fsid
        .map(|u| format!(" (given the new fsid {u}: the origin's is in use)"))
        .unwrap_or_default();
    format!(
        "  {}: snapshot {} ({}), {}{fsid} on {}, COW {:.1} MiB, {usage}",
        m.source,
        m.snapshot,
        m.node.display(),
        m.fs.name(),
        m.mount_point.display(),
        mib(m.cow_sectors.0),
    )
}

fn summary(r: &BackupReport) {
    for b in &r.recovered {
        recovered_lines(b);
    }
    errln!(
        "backup {}: {} source(s), frozen {:.1} ms, {:.2} s in all",
        r.id,
        r.members.len(),
        r.suspended_for.as_secs_f64() * 1e3,
        r.total.as_secs_f64()
    );
    for m in &r.members {
        errln!("{}", member_line(m));
    }
    if let Some(s) = r.interrupted {
        errln!("  {s} was passed on to the command");
    }
}

fn recovered_lines(b: &RecoveredBackup) {
    errln!(
        "earlier backup {} (pid {}, gone): {}",
        b.state.id,
        b.state.owner.pid,
        if b.problems.is_empty() {
            "cleaned up"
        } else {
            "cleanup incomplete"
        }
    );
    for a in &b.actions {
        errln!("  {a}");
    }
    for p in &b.problems {
        errln!("  problem: {p}");
    }
}

fn recovered_json(b: &RecoveredBackup) -> serde_json::Value {
    serde_json::json!({
        "id": b.state.id,
        "pid": b.state.owner.pid,
        "actions": b.actions.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "problems": b.problems,
    })
}

fn json(r: &BackupReport, outcome: &Outcome) -> serde_json::Value {
    use std::os::unix::process::ExitStatusExt;
    let members: Vec<serde_json::Value> = r
        .members
        .iter()
        .map(|m| {
            let u = m.usage_at_end();
            serde_json::json!({
                "source": m.source,
                "snapshot": m.snapshot,
                "node": m.node.display().to_string(),
                "fs": m.fs.name(),
                "mount_point": m.mount_point.display().to_string(),
                "new_fsid": m.new_fsid.map(|u| u.to_string()),
                "cow_sectors": m.cow_sectors.0,
                "state_at_end": state_name(m.status_at_end),
                "allocated_sectors": u.map(|u| u.allocated.0),
                "metadata_sectors": u.map(|u| u.metadata.0),
                "used_percent": u.and_then(|u| u.used_percent()),
            })
        })
        .collect();
    let (name, invalid) = match outcome {
        Outcome::Success => ("success", Vec::new()),
        Outcome::CommandFailed(_) => ("command-failed", Vec::new()),
        Outcome::BrokenView { invalid, .. } => ("broken-view", invalid.clone()),
        _ => ("unknown", Vec::new()),
    };
    serde_json::json!({
        "id": r.id,
        "outcome": name,
        "invalid": invalid,
        "exit_code": r.status.code(),
        "signal": r.status.signal(),
        "interrupted_by": r.interrupted.map(|s| s.as_str()),
        "mount_dir": r.mount_dir.display().to_string(),
        "suspended_ms": r.suspended_for.as_secs_f64() * 1e3,
        "total_ms": r.total.as_secs_f64() * 1e3,
        "sources": members,
        "recovered": r.recovered.iter().map(recovered_json).collect::<Vec<_>>(),
        "notices": r.notices,
        "warnings": r.warnings,
    })
}

/// `dmsnap recover` without a name: clean up after every backup whose process died.
pub fn recover(out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let report = backup::recover(&dm, &options("dmsnap recover"))?;
    if report.recovered.is_empty() {
        writeln!(out, "no interrupted backup to clean up");
    }
    let mut incomplete = 0;
    for b in &report.recovered {
        writeln!(
            out,
            "backup {} (pid {}, gone): {}",
            b.state.id,
            b.state.owner.pid,
            if b.problems.is_empty() {
                "cleaned up"
            } else {
                "cleanup incomplete"
            }
        );
        for a in &b.actions {
            writeln!(out, "  {a}");
        }
        for p in &b.problems {
            errln!("dmsnap recover: backup {}: {p}", b.state.id);
        }
        incomplete += usize::from(!b.problems.is_empty());
    }
    for p in &report.running {
        writeln!(out, "backup running, left alone: {}", p.display());
    }
    for (p, e) in &report.unreadable {
        errln!("dmsnap recover: {} left alone: {e}", p.display());
    }
    if incomplete > 0 {
        out.flush()?;
        return Err(format!(
            "{incomplete} backup(s) could not be cleaned up completely (see above); run `dmsnap recover` again once what holds them is gone"
        )
        .into());
    }
    Ok(())
}
