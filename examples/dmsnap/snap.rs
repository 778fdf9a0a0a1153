//! Snapshot workflow commands: wrap, snapshot, status, drop, rollback, unwrap, recover.

use std::path::PathBuf;
use std::time::Instant;

use devmapper::snapshot::{
    CowOverwrite, RollbackOptions, SnapError, SnapshotOptions, SnapshotReport, Wrapper,
    WrapperState, WrapperStatus,
};
use devmapper::target::ExceptionStore;
use devmapper::units::parse_size;
use devmapper::{DeviceMapper, DmName};

use crate::CliResult;
use crate::out::Out;

pub fn wrap(name: &str, device: &std::path::Path, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::wrap(&dm, &DmName::new(name)?, device)?;
    writeln!(
        out,
        "wrapped {} as {}",
        device.display(),
        w.node().display()
    );
    Ok(())
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
    if let Some(s) = snap {
        opts = opts.name(DmName::new(s)?);
    }
    let t = Instant::now();
    let s = w.take_snapshot(&opts).map_err(|e| match e {
        SnapError::CowHoldsData { .. } | SnapError::CowHoldsSnapshot { .. } => {
            format!("{e} (with --force)").into()
        }
        e => Box::<dyn std::error::Error>::from(e),
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

fn store(s: ExceptionStore) -> &'static str {
    match s {
        ExceptionStore::Persistent => "persistent",
        ExceptionStore::PersistentOverflow => "persistent-overflow",
        ExceptionStore::Transient => "transient",
    }
}

fn report_json(r: &SnapshotReport) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "state": r.state,
        "cow": r.cow.map(|d| d.to_string()),
        "chunk_sectors": r.chunk.0,
        "store": store(r.store),
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
        store(r.store),
        usage
    )
}

fn state_name(s: &WrapperStatus) -> &'static str {
    match s.state {
        WrapperState::Plain => "plain",
        WrapperState::Snapshotted => "snapshotted",
        WrapperState::Merging(_) => "merging",
        _ => "unknown",
    }
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
            "state": state_name(&s),
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
        state_name(&s),
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
    let done = w.recover()?;
    for d in &done {
        errln!("recovered: {d}");
    }
    let snap = snap.map(DmName::new).transpose()?;
    match w.snapshot(snap.as_ref()) {
        Ok(s) => {
            let n = s.name().clone();
            s.discard()?;
            writeln!(out, "dropped {n}; {} is a plain device again", w.name());
        }
        Err(SnapError::NoSnapshot { .. }) if !done.is_empty() => {
            writeln!(out, "nothing left to drop");
        }
        Err(e) => return Err(e.into()),
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
    for d in w.recover()? {
        errln!("recovered: {d}");
    }
    let merging = match w.merging()? {
        Some(m) => {
            errln!("a rollback is already merging into {}", w.name());
            m
        }
        None => {
            let snap = snap.map(DmName::new).transpose()?;
            let s = w.snapshot(snap.as_ref())?;
            let m = s.rollback(RollbackOptions { force })?;
            writeln!(
                out,
                "{} now shows the snapshot's content; merging in the background",
                w.name()
            );
            m
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
    let mut initial = None;
    merging.wait(None, |u| {
        let start = *initial.get_or_insert(u.data().0.max(1));
        let left = u.data().0;
        let pct = 100.0 * (start.saturating_sub(left)) as f64 / start as f64;
        errprint!("\rmerging: {left} sectors left ({pct:5.1}% done)   ");
    })?;
    errln!("\rmerging: done                                  ");
    writeln!(out, "rollback of {} complete", w.name());
    Ok(())
}

pub fn unwrap(name: &str, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let w = Wrapper::open(&dm, &DmName::new(name)?)?;
    w.unwrap_device()?;
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
