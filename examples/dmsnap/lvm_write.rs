//! `dmsnap lvm pvcreate|vgcreate|lvcreate|lvremove|vgremove|pvremove|lvs`: LVM2 commands
//! that write (and `lvs`), pure Rust, safe beside a running lvm2. Each is one library
//! call ([`devmapper::lvm::write::ops`], [`devmapper::lvm::lvs`]); this file parses the
//! arguments and prints what lvm2 prints.

use std::error::Error;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::deferred::Deferred;
use devmapper::DeviceMapper;
use devmapper::lvm::lvs::{self, LvsRow};
use devmapper::lvm::write::ops::{self, LvCreate};
use devmapper::lvm::write::session::{self, WriteOptions};
use serde_json::json;

use crate::out::Out;

/// The devices to scan (default: every block device in sysfs, as lvm2 scans them).
#[derive(Debug, Args)]
pub struct Devices {
    /// Limit the scan to these devices (repeat, or give a comma-separated list).
    #[arg(
        id = "scan_devices",
        long = "devices",
        value_name = "DEV",
        value_delimiter = ','
    )]
    devices: Vec<PathBuf>,
}

impl Devices {
    pub(crate) fn options(&self) -> WriteOptions {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let mut o = WriteOptions::new(command);
        if !self.devices.is_empty() {
            o.devices = Some(self.devices.clone());
        }
        o
    }
}

/// LVM2 commands that write, and `lvs`.
#[derive(Debug, Subcommand)]
pub enum WriteCmd {
    /// Write a PV label, pv_header and one metadata area (lvm2's default layout), as
    /// `pvcreate`. Refuses a device holding a filesystem, partition table, RAID, LVM or
    /// swap signature unless --force.
    Pvcreate(Deferred<PvcreateArgs>),
    /// A new VG over PVs (made by dmsnap or lvm2; other devices are made PVs first), as
    /// `vgcreate`.
    Vgcreate(Deferred<VgcreateArgs>),
    /// A linear (or striped) LV, activated at once, as `lvcreate -n LV -L SIZE VG`.
    Lvcreate(Deferred<LvcreateArgs>),
    /// Remove an LV, as `lvremove` (refused while it is open): also a snapshot, or an
    /// origin with --force together with its snapshots.
    Lvremove(Deferred<LvremoveArgs>),
    /// Roll the origin back to a snapshot, as `lvconvert --merge`: started at once when
    /// neither the origin nor the snapshot is open, otherwise at the next activation.
    Merge(Deferred<MergeArgs>),
    /// A snapshot of an LV, as `lvcreate -s`: taken live (filesystem frozen for a moment)
    /// when the origin is active.
    Snapshot(Deferred<crate::lvm_snap::SnapshotArgs>),
    /// Remove an empty VG, as `vgremove`.
    Vgremove(Deferred<VgremoveArgs>),
    /// Wipe PV labels, as `pvremove`.
    Pvremove(Deferred<PvremoveArgs>),
    /// LVs with lvm2's columns and attr letters, from the metadata and the kernel, as
    /// `lvs`.
    Lvs(Deferred<LvsArgs>),
}

/// The arguments of `pvcreate`.
#[derive(Debug, Args)]
pub struct PvcreateArgs {
    /// Block devices.
    #[arg(required = true)]
    pub devices: Vec<PathBuf>,
    /// Overwrite whatever the devices hold.
    #[arg(long, short = 'f')]
    pub force: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `vgcreate`.
#[derive(Debug, Args)]
pub struct VgcreateArgs {
    /// The VG name.
    pub vg: String,
    /// PV devices.
    #[arg(required = true)]
    pub pvs: Vec<PathBuf>,
    /// Physical extent size (lvm2's units, default 4 MiB).
    #[arg(long, short = 's', value_name = "SIZE")]
    pub extent_size: Option<String>,
    /// Make PVs of devices holding something recognisable.
    #[arg(long, short = 'f')]
    pub force: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `lvcreate`.
#[derive(Debug, Args)]
pub struct LvcreateArgs {
    /// The LV, as VG/LV.
    pub vg_lv: String,
    /// Size (lvm2's units: 512b, 8s, 4k, 12M, 10G, 1T; no unit = MiB), rounded up to
    /// whole extents.
    #[arg(long, short = 'L')]
    pub size: String,
    /// Number of stripes.
    #[arg(long, short = 'i', default_value_t = 1)]
    pub stripes: u32,
    /// Stripe size (default 64k).
    #[arg(long, short = 'I', value_name = "SIZE")]
    pub stripe_size: Option<String>,
    /// Do not activate the new LV (it is not zeroed either).
    #[arg(long)]
    pub no_activate: bool,
    /// Do not zero the first 4 KiB of the new LV.
    #[arg(long)]
    pub no_zero: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `lvremove`.
#[derive(Debug, Args)]
pub struct LvremoveArgs {
    /// The LV, as VG/LV.
    pub vg_lv: String,
    /// Remove an origin together with its snapshots.
    #[arg(long, short = 'f')]
    pub force: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The snapshot, as VG/SNAP.
    pub vg_snap: String,
    /// Wait for the merge to finish (progress on a terminal), then remove the snapshot.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `vgremove`.
#[derive(Debug, Args)]
pub struct VgremoveArgs {
    /// The VG name.
    pub vg: String,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `pvremove`.
#[derive(Debug, Args)]
pub struct PvremoveArgs {
    /// PV devices.
    #[arg(required = true)]
    pub devices: Vec<PathBuf>,
    /// Wipe a PV that belongs to a VG.
    #[arg(long, short = 'f')]
    pub force: bool,
    #[command(flatten)]
    pub scan: Devices,
}

/// The arguments of `lvs`.
#[derive(Debug, Args)]
pub struct LvsArgs {
    /// Only these VGs.
    pub vgs: Vec<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub scan: Devices,
}

pub(crate) fn split_vg_lv(s: &str) -> Result<(&str, &str), Box<dyn Error>> {
    s.split_once('/')
        .filter(|(v, l)| !v.is_empty() && !l.is_empty())
        .ok_or_else(|| format!("{s}: give the LV as VG/LV").into())
}

/// Run one writing command.
pub fn run(cmd: WriteCmd, out: &mut Out) -> Result<(), Box<dyn Error>> {
    match cmd {
        WriteCmd::Pvcreate(Deferred(PvcreateArgs {
            devices,
            force,
            scan,
        })) => {
            for c in ops::pvcreate(&devices, force, &scan.options())? {
                writeln!(
                    out,
                    "  Physical volume \"{}\" successfully created.",
                    c.path.display()
                );
            }
        }
        WriteCmd::Vgcreate(Deferred(VgcreateArgs {
            vg,
            pvs,
            extent_size,
            force,
            scan,
        })) => {
            let es = extent_size.map(|s| ops::parse_size(&s, 2048)).transpose()?;
            let made = ops::vgcreate(&vg, &pvs, es, force, &scan.options())?;
            for p in &made.pvcreated {
                writeln!(
                    out,
                    "  Physical volume \"{}\" successfully created.",
                    p.display()
                );
            }
            writeln!(out, "  Volume group \"{vg}\" successfully created");
        }
        WriteCmd::Lvcreate(Deferred(LvcreateArgs {
            vg_lv,
            size,
            stripes,
            stripe_size,
            no_activate,
            no_zero,
            scan,
        })) => {
            let (vg, lv) = split_vg_lv(&vg_lv)?;
            let mut req = LvCreate::size(&size)?;
            req.stripes = stripes;
            req.stripe_size = stripe_size.map(|s| ops::parse_size(&s, 2)).transpose()?;
            req.activate = !no_activate;
            req.zero = !no_zero && !no_activate;
            let made = ops::lvcreate(vg, lv, &req, &scan.options())?;
            for n in &made.notices {
                writeln!(out, "  {n}");
            }
            for w in &made.warnings {
                errln!("  {w}");
            }
            writeln!(out, "  Logical volume \"{lv}\" created.");
        }
        WriteCmd::Lvremove(Deferred(LvremoveArgs { vg_lv, force, scan })) => {
            let (vg, lv) = split_vg_lv(&vg_lv)?;
            let done = if force {
                devmapper::lvm::write::snapshot::remove::lvremove(vg, lv, true, &scan.options())?
            } else {
                ops::lvremove(vg, lv, &scan.options())?
            };
            for w in &done.warnings {
                errln!("  {w}");
            }
            writeln!(out, "  Logical volume \"{lv}\" successfully removed.");
        }
        WriteCmd::Merge(Deferred(MergeArgs {
            vg_snap,
            wait,
            scan,
        })) => {
            let (vg, snap) = split_vg_lv(&vg_snap)?;
            return crate::lvm_merge::merge_cmd(vg, snap, wait, &scan.options(), out);
        }
        WriteCmd::Vgremove(Deferred(VgremoveArgs { vg, scan })) => {
            for w in ops::vgremove(&vg, &scan.options())? {
                errln!("  {w}");
            }
            writeln!(out, "  Volume group \"{vg}\" successfully removed");
        }
        WriteCmd::Pvremove(Deferred(PvremoveArgs {
            devices,
            force,
            scan,
        })) => {
            ops::pvremove(&devices, force, &scan.options())?;
            for d in &devices {
                writeln!(
                    out,
                    "  Labels on physical volume \"{}\" successfully wiped.",
                    d.display()
                );
            }
        }
        WriteCmd::Snapshot(Deferred(a)) => return crate::lvm_snap::run(a, out),
        WriteCmd::Lvs(Deferred(LvsArgs { vgs, json, scan })) => {
            return lvs_cmd(&vgs, json, &scan, out);
        }
    }
    Ok(())
}

fn lvs_cmd(
    vgs: &[String],
    as_json: bool,
    scan: &Devices,
    out: &mut Out,
) -> Result<(), Box<dyn Error>> {
    let scanned = session::scan_devices(&scan.options())?;
    for v in vgs {
        if !scanned.report.vgs.iter().any(|s| &s.vg.name == v) {
            return Err(format!("Volume group \"{v}\" not found").into());
        }
    }
    // Without device-mapper (no root) the state letters are X, as lvm2 without activation.
    let dm = DeviceMapper::new().ok();
    let rows: Vec<LvsRow> = lvs::collect(&scanned.report, vgs, dm.as_ref());
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.lv, "vg": r.vg, "attr": r.attr, "size_sectors": r.size_sectors,
                    "origin": r.origin, "data_percent": r.data_percent,
                    "move": r.move_pv, "convert": r.convert,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({ "lvs": v }))?
        );
    } else if !rows.is_empty() {
        out.write_all(lvs::format_table(&rows).as_bytes());
    }
    Ok(())
}

/// `dmsnap lvm activate VG` without devices: every block device is scanned, as lvm2.
pub fn scan_for_activate() -> Result<Vec<PathBuf>, Box<dyn Error>> {
    Ok(devmapper::lvm::devices::scan_devices()?
        .into_iter()
        .map(|d| d.path)
        .collect())
}
