//! Snapshot workflow commands: wrap, snapshot, status, drop, rollback, unwrap, recover.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use devmapper::snapshot::activate::{self, WrapperEntry};
use devmapper::snapshot::{
    CowOverwrite, Dropped, MergeProgress, Rollback, RollbackOptions, SnapError, SnapshotOptions,
    SnapshotReport, Wrapper, WrapperState, WrongStateKind,
};
use devmapper::snapshot_set::{SetErrorKind, SetOptions, SnapshotSet};
use devmapper::units::parse_size;
use devmapper::{DeviceMapper, DmName};

use crate::CliResult;
use crate::out::Out;

/// Where plain-wrapper entries live: DMSNAP_CONFIG_DIR, else /etc/dmsnap/wrap.
fn config_dir() -> PathBuf {
    std::env::var_os("DMSNAP_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| devmapper::snapshot::activate::DEFAULT_CONFIG_DIR.into())
}

/// The text `main` prints for a library error, with what to run when that is a dmsnap
/// command; `None`: the error's own text.
pub fn advised(e: &SnapError) -> Option<String> {
    Some(match e {
        SnapError::NotWrapped { name, uuid } => format!(
            "{name} is not a dmsnap-wrapped device (its uuid {uuid:?} does not start with DMSNAP-); use `dmsnap wrap` first"
        ),
        SnapError::NoSuchDevice { name } => {
            format!("{e}; create it with `dmsnap wrap {name} DEVICE`")
        }
        SnapError::WrongState {
            name,
            kind: WrongStateKind::ForeignTable,
        } => format!("{name}: its table is not one dmsnap made"),
        _ => return None,
    })
}

pub fn wrap(name: &str, device: &std::path::Path, boot: bool, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let name = DmName::new(name)?;
    let (w, entry) = if boot {
        let (w, entry) = Wrapper::wrap_for_boot(&dm, &name, device, &config_dir())?;
        (w, Some(entry))
    } else {
        (Wrapper::wrap(&dm, &name, device)?, None)
    };
    writeln!(
        out,
        "wrapped {} as {}{}",
        device.display(),
        w.node().display(),
        match entry {
            Some(path) => format!(" (re-created at boot from {})", path.display()),
            None => String::new(),
        }
    );
    Ok(())
}

/// `dmsnap snapshot NAME... --cow DEVICE...`: one NAME is today's single snapshot (same
/// output); several are one [`SnapshotSet`], the n-th `--cow` (and `--snap`) for the n-th
/// NAME.
pub fn snapshot_cmd(
    names: &[String],
    cow: Vec<PathBuf>,
    chunk: Option<&str>,
    transient: bool,
    snap: Vec<String>,
    force: bool,
    out: &mut Out,
) -> CliResult {
    if cow.len() != names.len() {
        return Err(Usage::new::<crate::Cli>(
            &["snapshot"],
            format!(
                "{} NAME(s) but {} --cow: give one --cow DEVICE per NAME, in the same order",
                names.len(),
                cow.len()
            ),
        )
        .into());
    }
    if !snap.is_empty() && snap.len() != names.len() {
        return Err(Usage::new::<crate::Cli>(
            &["snapshot"],
            format!(
                "{} NAME(s) but {} --snap: give none or one per NAME",
                names.len(),
                snap.len()
            ),
        )
        .into());
    }
    if let ([name], [cow]) = (names, cow.as_slice()) {
        return snapshot(
            name,
            cow.clone(),
            chunk,
            transient,
            snap.first().map(String::as_str),
            force,
            out,
        );
    }
    let dm = DeviceMapper::new()?;
    let mut set = SnapshotSet::new();
    for (i, (name, cow)) in names.iter().zip(cow).enumerate() {
        let mut opts = snapshot_options(cow, chunk, transient, force)?;
        if let Some(s) = snap.get(i) {
            opts = opts.name(DmName::new(s)?);
        }
        set.raw(DmName::new(name)?, opts);
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let t = Instant::now();
    let taken = set
        .take(&dm, &SetOptions::new(command))
        .map_err(|e| match &e.kind {
            SetErrorKind::Snap(s) => match advice(s) {
                Some(hint) => format!("{e}{hint}").into(),
                None => Box::<dyn std::error::Error>::from(e),
            },
            _ => Box::<dyn std::error::Error>::from(e),
        })?;
    for m in &taken.members {
        writeln!(
            out,
            "snapshot of {} at {}",
            m.source,
            m.snapshot_node.display()
        );
    }
    writeln!(
        out,
        "{} snapshots at one instant ({:.1} ms, origins suspended {:.1} ms)",
        taken.members.len(),
        t.elapsed().as_secs_f64() * 1e3,
        taken.suspended_for.as_secs_f64() * 1e3
    );
    Ok(())
}

/// What to add to a refusal of the COW device.
fn advice(e: &SnapError) -> Option<&'static str> {
    match e {
        SnapError::CowHoldsData { .. }
        | SnapError::CowHoldsSnapshot { .. }
        | SnapError::CowRecordDamaged { .. } => Some(" (with --force)"),
        SnapError::CowHoldsRecord { .. } => Some(
            "\nhint: run `dmsnap activate` to bring that snapshot back (or overwrite it with --force)",
        ),
        _ => None,
    }
}

fn snapshot_options(
    cow: PathBuf,
    chunk: Option<&str>,
    transient: bool,
    force: bool,
) -> CliResult<SnapshotOptions> {
    let overwrite = if force {
        CowOverwrite::Force
    } else {
        CowOverwrite::Refuse
    };
    let mut opts = SnapshotOptions::new(cow)
        .transient(transient)
        .overwrite(overwrite);
    if let Some(c) = chunk {
        let bytes =
            parse_size(c).ok_or_else(|| format!("invalid chunk size {c:?} (try 4k, 64k, 8s)"))?;
        let sectors = bytes
            .to_sectors_exact()
            .ok_or_else(|| format!("chunk size {c} is not a whole number of 512-byte sectors"))?;
        opts = opts.chunk(sectors);
    }
    Ok(opts)
}

pub fn snapshot(
    name: &str,
    cow: PathBuf,
    chunk: Option<&str>,
    transient: bool,
    snap: Option<&str>,
    force: bool,
    out: &mut Out,
) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    let mut opts = snapshot_options(cow, chunk, transient, force)?;
    if let Some(s) = snap {
        opts = opts.name(DmName::new(s)?);
    }
    let t = Instant::now();
    let s = w.take_snapshot(&opts).map_err(|e| match advice(&e) {
        Some(hint) => format!("{e}{hint}").into(),
        None => Box::<dyn std::error::Error>::from(e),
    })?;
    writeln!(
        out,
        "snapshot of {} at {} ({:.1} ms)",
        w.name(),
        s.node().display(),
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn report_json(r: &SnapshotReport) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "state": r.state.as_str(),
        "cow": r.cow.map(|d| d.to_string()),
        "chunk_sectors": r.chunk.0,
        "store": SnapshotReport::store_name(r.store),
        "allocated_sectors": r.usage.map(|u| u.allocated.0),
        "total_sectors": r.usage.map(|u| u.total.0),
        "metadata_sectors": r.usage.map(|u| u.metadata.0),
        "percent_used": r.used_percent(),
    })
}

fn report_line(r: &SnapshotReport) -> String {
    let usage = match (&r.usage, r.used_percent()) {
        (Some(u), Some(p)) => format!(
            "allocated {}/{} sectors ({p:.1}%), metadata {} sectors",
            u.allocated, u.total, u.metadata
        ),
        _ => "no usage reported".to_owned(),
    };
    format!(
        "{}  {}  cow {}  chunk {} sectors  {}  {}",
        r.name,
        r.state,
        r.cow.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
        r.chunk,
        SnapshotReport::store_name(r.store),
        usage
    )
}

/// Snapshot status of a wrapped device; `None` when `name` is not one (the caller then
/// prints the dmsetup-style status).
pub fn status(name: &str, json: bool, out: &mut Out) -> CliResult<bool> {
    let dm = DeviceMapper::new()?;
    let w = match Wrapper::open(&dm, &DmName::new(name)?) {
        Ok(w) => w,
        Err(SnapError::NotWrapped { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let s = w.status()?;
    if json {
        let merge = match &s.state {
            WrapperState::Merging(r) => Some(report_json(r)),
            _ => None,
        };
        let v = serde_json::json!({
            "name": s.name,
            "state": s.state.as_str(),
            "backing": s.backing.map(|d| d.to_string()),
            "size_sectors": s.size.0,
            "open_count": s.open_count,
            "suspended": s.suspended,
            "snapshots": s.snapshots.iter().map(report_json).collect::<Vec<_>>(),
            "merge": merge,
        });
        writeln!(out, "{v}");
        return Ok(true);
    }
    writeln!(
        out,
        "{}: {} (backing {}, {} sectors, open {}{})",
        s.name,
        s.state.as_str(),
        s.backing
            .map(|d| d.to_string())
            .unwrap_or_else(|| "?".into()),
        s.size,
        s.open_count,
        if s.suspended { ", SUSPENDED" } else { "" }
    );
    if let WrapperState::Merging(r) = &s.state {
        writeln!(out, "  {}", report_line(r));
    }
    for r in &s.snapshots {
        writeln!(out, "  {}", report_line(r));
    }
    Ok(true)
}

pub fn drop_snapshot(name: &str, snap: Option<&str>, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    let snap = snap.map(DmName::new).transpose()?;
    match w.drop_snapshot(snap.as_ref(), |d| errln!("recovered: {d}"))? {
        Dropped::Dropped { snapshot } => {
            writeln!(
                out,
                "dropped {snapshot}; {} is a plain device again",
                w.name()
            );
        }
        _ => writeln!(out, "nothing left to drop"),
    }
    Ok(())
}

pub fn rollback(
    name: &str,
    snap: Option<&str>,
    wait: bool,
    force: bool,
    out: &mut Out,
) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    let snap = snap.map(DmName::new).transpose()?;
    let merging = match w.rollback_to(snap.as_ref(), RollbackOptions { force }, |d| {
        errln!("recovered: {d}")
    })? {
        Rollback::AlreadyMerging(m) => {
            errln!("a rollback is already merging into {}", w.name());
            m
        }
        Rollback::Started(m) => {
            writeln!(
                out,
                "{} now shows the snapshot's content; merging in the background",
                w.name()
            );
            m
        }
        _ => {
            // A merge that ran on (say, resumed by `activate` after a reboot) is now done.
            writeln!(out, "rollback of {} complete", w.name());
            return Ok(());
        }
    };
    if !wait {
        writeln!(
            out,
            "run `dmsnap rollback {} --wait` or `dmsnap recover {}` to finish",
            w.name(),
            w.name()
        );
        return Ok(());
    }
    // The merge runs already, whatever happens while waiting: say so now.
    out.flush()?;
    let mut progress = MergeProgress::default();
    merging.wait(None, |u| {
        let p = progress.observe(u);
        errprint!(
            "\rmerging: {} sectors left ({:5.1}% done)   ",
            p.left.0,
            p.percent_done
        );
    })?;
    errln!("\rmerging: done                                  ");
    writeln!(out, "rollback of {} complete", w.name());
    Ok(())
}

pub fn unwrap(name: &str, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    let dm_name = w.name().clone();
    w.unwrap_device()?;
    let dir = config_dir();
    activate::remove_entry(&dir, &dm_name).map_err(|e| {
        let entry = WrapperEntry::path_in(&dir, &dm_name);
        format!("removed {name}, but not {}: {e}", entry.display())
    })?;
    writeln!(out, "removed {name}");
    Ok(())
}

pub fn recover(name: &str, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    let done = w.recover()?;
    if done.is_empty() {
        writeln!(out, "{name}: consistent, nothing to do");
    }
    for d in done {
        writeln!(out, "{d}");
    }
    Ok(())
}

pub fn activate(devices: Vec<PathBuf>, json: bool, out: &mut Out) -> CliResult {
    use devmapper::snapshot::activate::{ActivateOptions, Outcome};
    use devmapper::snapshot::record::{RecordState, utc};
    let dm = DeviceMapper::new()?;
    let report = activate::activate(
        &dm,
        &ActivateOptions {
            devices,
            config_dir: Some(config_dir()),
        },
    )?;
    if json {
        let items: Vec<serde_json::Value> = report
            .activations
            .iter()
            .map(|a| {
                serde_json::json!({
                    "wrapper": a.wrapper,
                    "snapshot": a.snapshot,
                    "cow": a.cow.display().to_string(),
                    "origin": a.origin.as_ref().map(|p| p.display().to_string()),
                    "outcome": a.outcome.as_str(),
                    "reason": a.outcome.refusal(),
                    "merging": a.record.state == RecordState::Merging,
                    "created": a.record.created,
                    "chunk_sectors": a.record.chunk_sectors,
                })
            })
            .collect();
        let damaged: Vec<serde_json::Value> = report
            .damaged
            .iter()
            .map(|(p, e)| serde_json::json!({ "device": p.display().to_string(), "error": e.to_string() }))
            .collect();
        let wrappers: Vec<serde_json::Value> = report
            .wrappers
            .iter()
            .map(|w| {
                serde_json::json!({
                    "wrapper": w.wrapper,
                    "entry": w.entry.display().to_string(),
                    "origin": w.origin.as_ref().map(|p| p.display().to_string()),
                    "outcome": w.outcome.as_str(),
                    "reason": w.outcome.refusal(),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "activations": items, "wrappers": wrappers, "damaged": damaged })
        );
    } else {
        for w in &report.wrappers {
            match &w.outcome {
                Outcome::Refused(why) => {
                    writeln!(
                        out,
                        "{} (from {}): NOT activated: {why}",
                        w.wrapper,
                        w.entry.display()
                    )
                }
                o => writeln!(
                    out,
                    "{} (from {}, origin {}): {}",
                    w.wrapper,
                    w.entry.display(),
                    w.origin
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "as active".into()),
                    o.as_str()
                ),
            }
        }
        for (p, e) in &report.bad_entries {
            writeln!(out, "{}: left alone: {e}", p.display());
        }
        if report.activations.is_empty() && report.damaged.is_empty() && report.wrappers.is_empty()
        {
            writeln!(out, "no dmsnap snapshot found");
        }
        for a in &report.activations {
            let taken = utc(a.record.created);
            match &a.outcome {
                Outcome::Refused(why) => writeln!(
                    out,
                    "{} / {} (COW {}, taken {taken}): NOT activated: {why}",
                    a.wrapper,
                    a.snapshot,
                    a.cow.display()
                ),
                o => writeln!(
                    out,
                    "{} / {} (COW {}, origin {}, taken {taken}): {}",
                    a.wrapper,
                    a.snapshot,
                    a.cow.display(),
                    a.origin
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "as active".into()),
                    o.as_str()
                ),
            }
        }
        for (p, e) in &report.damaged {
            writeln!(out, "{}: left alone: {e}", p.display());
        }
    }
    if report.any_refused() {
        // Everything that could be done is done; say so in the status.
        out.flush()?;
        return Err("some snapshots were not activated (see above)".into());
    }
    Ok(())
}

/// A bad command line found after parsing (counts of options that must match): printed
/// as clap prints its usage errors, exit status 2.
#[derive(Debug)]
pub struct Usage {
    text: String,
}

impl Usage {
    /// `message` for the subcommand at `path` (e.g. `["lvm", "snapshot"]`), with its usage
    /// line, as clap formats it.
    pub fn new<C: clap::CommandFactory>(path: &[&str], message: impl fmt::Display) -> Usage {
        let mut cmd = C::command();
        cmd.build();
        for p in path {
            match cmd.find_subcommand(p) {
                Some(sub) => cmd = sub.clone(),
                None => break,
            }
        }
        let e = cmd.error(clap::error::ErrorKind::WrongNumberOfValues, message);
        Usage {
            text: e.render().to_string().trim_end().to_string(),
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Usage {}
