//! Kernel inspection commands: version, ls, table, status, targets.

use devmapper::StatusFlush;
use devmapper::kernel::listing::list_devices;
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

/// With `DMSNAP_IOCTL_STATS` set, the ioctls this run made, per command, on stderr
/// (profiling: counts and times).
pub fn print_ioctl_stats() {
    if std::env::var_os("DMSNAP_IOCTL_STATS").is_none() {
        return;
    }
    for s in devmapper::kernel::stats::ioctl_stats() {
        errln!("dmsnap: ioctl {s}");
    }
}

pub fn ls(json: bool, out: &mut Out) -> CliResult {
    let t0 = std::time::Instant::now();
    let dm = DeviceMapper::new()?;
    let rows = list_devices(&dm)?;
    if std::env::var_os("DMSNAP_IOCTL_STATS").is_some() {
        errln!("dmsnap: ls: {:?} to open and list", t0.elapsed());
    }
    if json {
        let devices: Vec<serde_json::Value> = rows
            .iter()
            .map(|d| {
                let i = &d.info;
                serde_json::json!({
                    "name": i.name.as_str(),
                    "uuid": i.uuid,
                    "major": i.dev.major,
                    "minor": i.dev.minor,
                    "open_count": i.open_count,
                    "suspended": i.suspended(),
                    "read_only": i.read_only(),
                    "live_table": i.has_live_table(),
                    "inactive_table": i.has_inactive_table(),
                    "event_nr": i.event_nr,
                    "targets": d.targets,
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
        .map(|d| d.info.name.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<w$}  {:<9}  {:>4}  {:<9}  {:<12}  UUID",
        "NAME", "MAJ:MIN", "OPEN", "STATE", "TARGETS"
    );
    for d in &rows {
        let i = &d.info;
        let targets = if d.targets.is_empty() {
            "-".to_owned()
        } else {
            d.target_types().join(",")
        };
        writeln!(
            out,
            "{:<w$}  {:<9}  {:>4}  {:<9}  {:<12}  {}",
            i.name,
            i.dev.to_string(),
            i.open_count,
            d.state().as_str(),
            targets,
            i.uuid.as_deref().unwrap_or("-")
        );
    }
    Ok(())
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
