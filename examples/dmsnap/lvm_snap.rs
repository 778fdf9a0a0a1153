//! `dmsnap lvm snapshot VG/LV`: an LVM2 snapshot, as `lvcreate -s`, one call to
//! [`devmapper::lvm::write::snapshot::create::lvcreate_snapshot`]; this file parses the
//! arguments and prints what lvm2 prints.

use std::error::Error;

use clap::Args;
use devmapper::lvm::write::ops;
use devmapper::lvm::write::snapshot::create::{SnapshotRequest, lvcreate_snapshot};
use devmapper::lvm::write::snapshot::size::{CowSize, DEFAULT_CHUNK, parse_chunk};

use crate::lvm_write::Devices;
use crate::out::Out;

/// `dmsnap lvm snapshot` arguments.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The origin, as VG/LV.
    vg_lv: String,
    /// COW size (lvm2's units, no unit = MiB), rounded up to whole extents; cut to the
    /// most the snapshot can ever use.
    #[arg(
        long,
        short = 'L',
        required_unless_present = "extents",
        conflicts_with = "extents"
    )]
    size: Option<String>,
    /// COW size in extents or relative: N, N%ORIGIN, N%FREE, N%VG, N%PVS.
    #[arg(long, short = 'l')]
    extents: Option<String>,
    /// The snapshot's name (default LV_snap).
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Chunk size, a power of 2 from 4k to 512k (no unit = KiB; default 4k).
    #[arg(long, short = 'c')]
    chunk: Option<String>,
    /// A read-only snapshot (lvm2's -pr).
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    scan: Devices,
}

/// Run `dmsnap lvm snapshot`.
pub fn run(a: SnapshotArgs, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let (vg, lv) = crate::lvm_write::split_vg_lv(&a.vg_lv)?;
    let size = match (&a.size, &a.extents) {
        (Some(s), _) => CowSize::Sectors(ops::parse_size(s, 2048)?),
        (None, Some(e)) => CowSize::parse_extents(e)?,
        (None, None) => return Err("give --size or --extents".into()),
    };
    let mut req = SnapshotRequest::new(size);
    req.chunk = a
        .chunk
        .as_deref()
        .map(parse_chunk)
        .transpose()?
        .unwrap_or(DEFAULT_CHUNK);
    req.read_only = a.read_only;
    let made = lvcreate_snapshot(vg, lv, a.name.as_deref(), &req, &a.scan.options())?;
    for n in &made.notices {
        writeln!(out, "  {n}");
    }
    for w in &made.warnings {
        errln!("  {w}");
    }
    writeln!(out, "  Logical volume \"{}\" created.", made.name);
    Ok(())
}
