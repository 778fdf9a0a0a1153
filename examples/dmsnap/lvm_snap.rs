//! `dmsnap lvm snapshot VG/LV...`: an LVM2 snapshot, as `lvcreate -s`, one call to
//! [`devmapper::lvm::write::snapshot::create::lvcreate_snapshot`]; several LVs at one
//! instant, one call to [`devmapper::snapshot_set::SnapshotSet::take`]. This file parses
//! the arguments and prints what lvm2 prints.

use std::error::Error;

use clap::Args;
use devmapper::lvm::write::ops;
use devmapper::lvm::write::snapshot::create::{SnapshotRequest, lvcreate_snapshot};
use devmapper::lvm::write::snapshot::size::{CowSize, DEFAULT_CHUNK, parse_chunk};

use devmapper::snapshot_set::{SetOptions, SnapshotSet};

use crate::lvm_write::Devices;
use crate::out::Out;
use crate::snap::Usage;

/// `dmsnap lvm snapshot` arguments.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The origin, as VG/LV; several: snapshots of all of them at one instant (one
    /// freeze, each VG's metadata committed once).
    #[arg(required = true, value_name = "VG/LV")]
    vg_lv: Vec<String>,
    /// COW size (lvm2's units, no unit = MiB), rounded up to whole extents; cut to the
    /// most the snapshot can ever use. One for every LV, or one per LV in order.
    #[arg(
        long,
        short = 'L',
        required_unless_present = "extents",
        conflicts_with = "extents"
    )]
    size: Vec<String>,
    /// COW size in extents or relative: N, N%ORIGIN, N%FREE, N%VG, N%PVS (one for every
    /// LV, or one per LV).
    #[arg(long, short = 'l')]
    extents: Vec<String>,
    /// The snapshot's name (default LV_snap); with several LVs, one per LV.
    #[arg(long, short = 'n')]
    name: Vec<String>,
    /// Chunk size, a power of 2 from 4k to 512k (no unit = KiB; default 4k).
    #[arg(long, short = 'c')]
    chunk: Option<String>,
    /// A read-only snapshot (lvm2's -pr).
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    scan: Devices,
}

/// The n-th of `values` for the n-th of `count` LVs: one value for all, or one per LV.
fn nth<'a>(values: &'a [String], what: &str, count: usize) -> Result<Vec<&'a str>, Box<dyn Error>> {
    match values.len() {
        1 => Ok(vec![values[0].as_str(); count]),
        n if n == count => Ok(values.iter().map(String::as_str).collect()),
        n => Err(Usage::new::<crate::Cli>(
            &["lvm", "snapshot"],
            format!("{count} VG/LV but {n} {what}: give one for all, or one per VG/LV"),
        )
        .into()),
    }
}

/// Run `dmsnap lvm snapshot`.
pub fn run(a: SnapshotArgs, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let count = a.vg_lv.len();
    let sizes = match (a.size.is_empty(), a.extents.is_empty()) {
        (false, _) => nth(&a.size, "--size", count)?
            .into_iter()
            .map(|s| Ok(CowSize::Sectors(ops::parse_size(s, 2048)?)))
            .collect::<Result<Vec<_>, Box<dyn Error>>>()?,
        (true, false) => nth(&a.extents, "--extents", count)?
            .into_iter()
            .map(|e| Ok(CowSize::parse_extents(e)?))
            .collect::<Result<Vec<_>, Box<dyn Error>>>()?,
        (true, true) => return Err("give --size or --extents".into()),
    };
    if !a.name.is_empty() && a.name.len() != count {
        return Err(Usage::new::<crate::Cli>(
            &["lvm", "snapshot"],
            format!(
                "{count} VG/LV but {} --name: give none or one per VG/LV",
                a.name.len()
            ),
        )
        .into());
    }
    let chunk = a
        .chunk
        .as_deref()
        .map(parse_chunk)
        .transpose()?
        .unwrap_or(DEFAULT_CHUNK);
    let request = |size: CowSize| {
        let mut req = SnapshotRequest::new(size);
        req.chunk = chunk;
        req.read_only = a.read_only;
        req
    };
    if let ([vg_lv], [size]) = (a.vg_lv.as_slice(), sizes.as_slice()) {
        let (vg, lv) = crate::lvm_write::split_vg_lv(vg_lv)?;
        let req = request(*size);
        let name = a.name.first().map(String::as_str);
        let made = lvcreate_snapshot(vg, lv, name, &req, &a.scan.options())?;
        for n in &made.notices {
            writeln!(out, "  {n}");
        }
        for w in &made.warnings {
            errln!("  {w}");
        }
        writeln!(out, "  Logical volume \"{}\" created.", made.name);
        return Ok(());
    }
    let mut set = SnapshotSet::new();
    for (i, (vg_lv, size)) in a.vg_lv.iter().zip(sizes).enumerate() {
        let (vg, lv) = crate::lvm_write::split_vg_lv(vg_lv)?;
        set.lvm(vg, lv, a.name.get(i).map(String::as_str), request(size));
    }
    let opts = a.scan.options();
    let taken = set.take(
        &devmapper::DeviceMapper::new()?,
        &SetOptions::new(opts.command.clone()).write(opts),
    )?;
    for m in &taken.members {
        if let Some(l) = &m.lvm {
            for n in &l.notices {
                writeln!(out, "  {n}");
            }
        }
    }
    for w in &taken.warnings {
        errln!("  {w}");
    }
    for m in &taken.members {
        if let Some(l) = &m.lvm {
            writeln!(out, "  Logical volume \"{}\" created.", l.name);
        }
    }
    Ok(())
}
