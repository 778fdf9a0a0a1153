//! Kernel inspection commands: version, ls, table, status, targets.

use devmapper::StatusFlush;
use devmapper::{DeviceMapper, DmName, Which};

use crate::CliResult;
use crate::out::Out;

pub fn version(out: &mut Out) -> CliResult {
    writeln!(out, "dmsnap version:    {}", env!("CARGO_PKG_VERSION"));
    writeln!(
        out,
        "Library version:   devmapper {}",
        env!("CARGO_PKG_VERSION")
    );
    let dm = DeviceMapper::new()?;
    writeln!(out, "Driver version:    {}", dm.version()?);
    Ok(())
}

pub fn ls(json: bool, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let mut rows = Vec::new();
    for d in dm.list()? {
        let name = DmName::new(&d.name)?;
        // A device can vanish between the list and the query: skip it.
        let Ok(info) = dm.info(&name) else { continue };
        let targets: Vec<String> = dm
            .table_raw(&name, Which::Live)
            .map(|t| t.into_iter().map(|t| t.target_type).collect())
            .unwrap_or_default();
        rows.push((d, info, targets));
    }
    rows.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    if json {
        let devices: Vec<serde_json::Value> = rows
            .iter()
            .map(|(d, i, t)| {
                serde_json::json!({
                    "name": d.name,
                    "uuid": d.uuid,
                    "major": d.dev.major,
                    "minor": d.dev.minor,
                    "open_count": i.open_count,
                    "suspended": i.suspended(),
                    "read_only": i.read_only(),
                    "live_table": i.has_live_table(),
                    "inactive_table": i.has_inactive_table(),
                    "event_nr": i.event_nr,
                    "targets": t,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::json!({ "devices": devices }));
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "No devices found");
        return Ok(());
    }
    let w = rows
        .iter()
        .map(|r| r.0.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<w$}  {:<9}  {:>4}  {:<9}  {:<12}  UUID",
        "NAME", "MAJ:MIN", "OPEN", "STATE", "TARGETS"
    );
    for (d, i, t) in &rows {
        let mut state = if i.suspended() { "suspended" } else { "active" }.to_owned();
        if !i.has_live_table() {
            state = "no-table".to_owned();
        }
        let targets = if t.is_empty() {
            "-".to_owned()
        } else {
            dedup(t).join(",")
        };
        writeln!(
            out,
            "{:<w$}  {:<9}  {:>4}  {:<9}  {:<12}  {}",
            d.name,
            d.dev.to_string(),
            i.open_count,
            state,
            targets,
            d.uuid.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn dedup(t: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for x in t {
        if !v.contains(x) {
            v.push(x.clone());
        }
    }
    v
}

fn which(inactive: bool) -> Which {
    if inactive {
        Which::Inactive
    } else {
        Which::Live
    }
}

/// Through the typed layer (unknown targets stay opaque), keys hidden as dmsetup does
/// unless `show_keys`.
pub fn table(name: &str, inactive: bool, show_keys: bool, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let name = DmName::new(name)?;
    let table = dm.table(&name, which(inactive))?;
    let text = if show_keys {
        table.to_string()
    } else {
        table.to_string_hiding_keys()
    };
    out.write_all(text.as_bytes());
    if table.is_empty() {
        // No table (or no inactive one): dmsetup prints one empty line.
        writeln!(out);
    }
    Ok(())
}

/// Through the typed status parsers; an empty line for a device without a table, as
/// dmsetup prints.
pub fn status(name: &str, inactive: bool, out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let name = DmName::new(name)?;
    let lines = dm.status(&name, which(inactive), StatusFlush::Flush)?;
    for line in &lines {
        writeln!(out, "{line}");
    }
    if lines.is_empty() {
        writeln!(out);
    }
    Ok(())
}

pub fn targets(out: &mut Out) -> CliResult {
    let dm = DeviceMapper::new()?;
    let mut t = dm.target_versions()?;
    t.sort_by(|a, b| a.name.cmp(&b.name));
    for t in t {
        writeln!(out, "{:<16} v{}", t.name, t.version);
    }
    Ok(())
}
