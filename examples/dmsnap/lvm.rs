//! `dmsnap lvm ...`: LVM2 volume groups read without lvm2. `scan`, `metadata`, `plan` and
//! `export` are offline (no kernel, no root); `activate` and `deactivate` apply a
//! [`devmapper::lvm::plan::Plan`] with the ioctl core ([`devmapper::lvm::activate`]).

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::deferred::Deferred;
use devmapper::io::{CopyError, Input, Output, Overwrite, read_file_capped};
use devmapper::lvm::activate;
use devmapper::lvm::check::PvRef;
use devmapper::lvm::config;
use devmapper::lvm::export::{SnapshotView, export_to, open_lv};
use devmapper::lvm::index::VgIndex;
use devmapper::lvm::label::DiskLocn;
use devmapper::lvm::model::{PhysicalVolume, VolumeGroup};
use devmapper::lvm::plan::{Plan, PlanOptions, lvm2_params, plan_vg};
use devmapper::lvm::scan::{self, DeviceReport, DeviceStatus, MdaOutcome, ScanReport, ScannedVg};
use devmapper::lvm::{metadata_text, report};
use devmapper::targets::DevRef;
use devmapper::{DevNum, DeviceMapper};
use serde_json::{Value, json};

use crate::out::Out;

/// Offline commands on LVM2 physical volumes (devices or image files, opened read-only).
#[derive(Debug, Subcommand)]
pub enum LvmCmd {
    /// VGs, PVs and LVs found on the given devices or images (like vgs, pvs, lvs).
    Scan(Deferred<ScanArgs>),
    /// The committed metadata text of the PV's VG, exactly as stored (newest copy).
    Metadata(Deferred<MetadataArgs>),
    /// Every dm device lvm2 would create to activate the VGs, lower layers first.
    Plan(Deferred<PlanArgs>),
    /// Write an LV's content to a file (linear, striped, multi-segment and snapshot LVs).
    Export(Deferred<ExportArgs>),
    /// Activate the LVs of a VG from its PV block devices, as `vgchange -ay` (root).
    Activate(Deferred<ActivateArgs>),
    /// Remove every active dm device of a VG, as `vgchange -an` (root). Without PVs the
    /// VG is found by the names and `LVM-` uuids of the active devices.
    Deactivate(Deferred<DeactivateArgs>),
    /// LVM2 commands that write (pvcreate ... pvremove) and lvs.
    #[command(flatten)]
    Write(crate::lvm_write::WriteCmd),
}

/// The arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// PV devices or images.
    pub pvs: Vec<PathBuf>,
    /// Read a metadata text file instead (a vgcfgbackup/archive file, or text as
    /// stored on disk).
    #[arg(long, conflicts_with = "pvs")]
    pub metadata: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `metadata`.
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// A PV device or image.
    pub pv: PathBuf,
}

/// The arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// PV devices or images (all PVs of the VG).
    #[arg(required = true)]
    pub pvs: Vec<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The LV, as VG/LV.
    pub vg_lv: String,
    /// Output: a new file, written under a temporary name and renamed to OUT when
    /// complete (nothing is left behind on failure); an existing non-empty file or a
    /// block device only with --force; a pipe or FIFO gets the bytes in order. Never
    /// one of the PVs.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: PathBuf,
    /// Replace an existing OUT: a file is replaced only once the export is complete
    /// (kept as it was on failure); a block device (large enough) is overwritten.
    #[arg(long)]
    pub force: bool,
    /// PV devices or images (all PVs the LV uses).
    #[arg(required = true)]
    pub pvs: Vec<PathBuf>,
    /// For a snapshot LV, write its COW store (the LV's own segments) instead of the
    /// snapshot's content.
    #[arg(long)]
    pub raw: bool,
}

/// The arguments of `activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The VG name.
    pub vg: String,
    /// Only this LV (and the devices it needs).
    #[arg(long)]
    pub lv: Option<String>,
    /// Everything read-only.
    #[arg(long)]
    pub read_only: bool,
    /// This host's lvm system id (VGs with another one are refused).
    #[arg(long)]
    pub system_id: Option<String>,
    /// PV block devices (all PVs of the VG; default: every block device, as lvm2).
    pub devices: Vec<PathBuf>,
}

/// The arguments of `deactivate`.
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// The VG name.
    pub vg: String,
    /// PV devices of the VG (to read its id from the metadata).
    pub devices: Vec<PathBuf>,
}

/// Run one `dmsnap lvm` command.
pub fn run(cmd: LvmCmd, out: &mut Out) -> Result<(), Box<dyn Error>> {
    match cmd {
        LvmCmd::Scan(Deferred(ScanArgs {
            pvs,
            metadata,
            json,
        })) => match metadata {
            Some(file) => scan_metadata_file(&file, json, out),
            None => scan_devices(&pvs, json, out),
        },
        LvmCmd::Metadata(Deferred(MetadataArgs { pv })) => metadata(&pv, out),
        LvmCmd::Plan(Deferred(PlanArgs { pvs, json })) => plan(&pvs, json, out),
        LvmCmd::Export(Deferred(ExportArgs {
            vg_lv,
            output,
            force,
            pvs,
            raw,
        })) => export_lv(&vg_lv, &output, force, &pvs, raw),
        LvmCmd::Activate(Deferred(ActivateArgs {
            vg,
            lv,
            read_only,
            system_id,
            devices,
        })) => activate(
            &vg,
            lv.as_deref(),
            read_only,
            system_id.as_deref(),
            &devices,
            out,
        ),
        LvmCmd::Deactivate(Deferred(DeactivateArgs { vg, devices })) => {
            deactivate(&vg, &devices, out)
        }
        LvmCmd::Write(c) => crate::lvm_write::run(c, out),
    }
}

/// The table reference for a PV: its block device's `major:minor`.
fn block_devnum(path: &Path) -> Result<DevRef, Box<dyn Error>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !md.file_type().is_block_device() {
        return Err(format!(
            "{}: not a block device (attach an image with losetup first)",
            path.display()
        )
        .into());
    }
    Ok(DevNum::from_dev_t(md.rdev()).into())
}

/// The import's warnings (facts lvm2 accepts but that look wrong), one line each.
fn print_warnings(vg: &VolumeGroup) {
    const SHOWN: usize = 50;
    let all = vg.warnings();
    for w in all.iter().take(SHOWN) {
        errln!("dmsnap: warning: metadata {w}");
    }
    if all.len() > SHOWN {
        errln!(
            "dmsnap: warning: VG {}: {} more warnings not shown",
            vg.name,
            all.len() - SHOWN
        );
    }
}

fn find_vg<'r>(
    report: &'r ScanReport,
    vg: &str,
    paths: &[PathBuf],
) -> Result<&'r ScannedVg, Box<dyn Error>> {
    // Every device named on the command line must be what it is given as: a PV.
    let bad = warn_errors(report, paths);
    let s = report::find_vg(report, vg)
        .ok_or_else(|| format!("VG {vg} not found on the given devices"))?;
    if bad > 0 {
        return Err(format!("{bad} of the given devices could not be read as LVM2 PVs").into());
    }
    print_warnings(&s.vg);
    Ok(s)
}

fn activate(
    vg: &str,
    lv: Option<&str>,
    read_only: bool,
    system_id: Option<&str>,
    paths: &[PathBuf],
    out: &mut Out,
) -> Result<(), Box<dyn Error>> {
    // Without devices every block device is scanned, and those that are no PV are fine.
    let scanned_all = paths.is_empty();
    let all;
    let paths = if scanned_all {
        all = crate::lvm_write::scan_for_activate()?;
        &all[..]
    } else {
        paths
    };
    let (_files, report) = scan_paths(paths)?;
    let s = if scanned_all {
        report::find_vg(&report, vg).ok_or_else(|| format!("Volume group \"{vg}\" not found"))?
    } else {
        find_vg(&report, vg, paths)?
    };
    let mut devs = Vec::with_capacity(paths.len());
    for p in paths {
        devs.push(block_devnum(p)?);
    }
    let dev = |p: &PhysicalVolume| s.device_of(p).and_then(|i| devs.get(i)).cloned();
    let opts = PlanOptions {
        read_only,
        ..PlanOptions::default()
    };
    let dm = DeviceMapper::new()?;
    let Some(_) = lv else {
        // The whole VG: brought to the plan (repairs an interrupted snapshot operation),
        // delayed merges started, finished merges removed.
        let (plan, done) = devmapper::lvm::reconcile::activate_vg(&dm, s, &dev, system_id, &opts)?;
        for (n, dev) in done.created.iter().zip(&done.created_devs) {
            writeln!(out, "{n} {dev} active");
        }
        let reused = plan.devices.len() - done.created.len();
        if reused > 0 {
            writeln!(out, "{reused} device(s) were already active");
        }
        let fixes = devmapper::lvm::reconcile::Reconciled {
            created: Vec::new(),
            created_devs: Vec::new(),
            ..done
        };
        if !fixes.is_noop() {
            writeln!(out, "{fixes}");
        }
        for sk in &plan.skipped {
            errln!("dmsnap: {vg}/{}: skipped: {}", sk.lv, sk.reason);
        }
        let failed = plan.skipped.iter().filter(|s| s.is_error()).count();
        if failed > 0 {
            return Err(format!("{failed} LV(s) of {vg} were not activated").into());
        }
        let merging = s.vg.snapshot_links().any(|l| l.merging);
        if merging && !read_only {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let mut wo = devmapper::lvm::write::session::WriteOptions::new(command);
            if !scanned_all {
                wo.devices = Some(paths.to_vec());
            }
            crate::lvm_merge::finish_merges(vg, &wo, out)?;
        }
        return Ok(());
    };
    let (plan, created) = activate::activate_vg(&dm, s, &dev, lv, system_id, &opts)?;
    for d in &created {
        writeln!(out, "{} {} active", d.name, d.dev);
    }
    let reused = plan.devices.len() - created.len();
    if reused > 0 {
        writeln!(out, "{reused} device(s) were already active");
    }
    for sk in &plan.skipped {
        errln!("dmsnap: {vg}/{}: skipped: {}", sk.lv, sk.reason);
    }
    let failed = plan.skipped.iter().filter(|s| s.is_error()).count();
    if failed > 0 {
        return Err(format!("{failed} LV(s) of {vg} were not activated").into());
    }
    Ok(())
}

fn deactivate(vg: &str, paths: &[PathBuf], out: &mut Out) -> Result<(), Box<dyn Error>> {
    let dm = DeviceMapper::new()?;
    let id = if paths.is_empty() {
        activate::active_vg_id(&dm, vg)?
    } else {
        let (_files, report) = scan_paths(paths)?;
        find_vg(&report, vg, paths)?.vg.id
    };
    let removed = activate::deactivate(&dm, &id)?;
    if removed.is_empty() {
        writeln!(out, "VG {vg}: no device was active");
    }
    for n in removed {
        writeln!(out, "{n} removed");
    }
    Ok(())
}

/// Every input through [`Input::open`]: regular files and block devices only, never
/// blocking on a FIFO.
fn open_all(paths: &[PathBuf]) -> Result<Vec<Input>, Box<dyn Error>> {
    paths
        .iter()
        .map(|p| Input::open(p).map_err(Into::into))
        .collect()
}

fn scan_paths(paths: &[PathBuf]) -> Result<(Vec<Input>, ScanReport), Box<dyn Error>> {
    if paths.is_empty() {
        return Err("give the PV devices or images to scan (or --metadata FILE)".into());
    }
    let files = open_all(paths)?;
    let report = scan::scan(&files);
    Ok((files, report))
}

fn path_of(paths: &[PathBuf], i: usize) -> String {
    paths
        .get(i)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// `metadata area at byte X (N bytes): reason`.
fn area_problem(area: DiskLocn, e: &devmapper::lvm::Error) -> String {
    let reason = match e {
        devmapper::lvm::Error::Mda { kind, .. } => kind.to_string(),
        other => other.to_string(),
    };
    format!(
        "metadata area at byte {} ({} bytes): {reason}",
        area.offset, area.size
    )
}

/// Why a device is an error, or what it is when it is only worth a note: `(is_error,
/// message)` ([`DeviceReport::is_error`]); `None` for a PV of a VG that imported with
/// every area readable.
fn device_line(
    report: &ScanReport,
    d: &DeviceReport<'_>,
    paths: &[PathBuf],
) -> Option<(bool, String)> {
    let p = path_of(paths, d.device);
    let id =
        d.pv.map(|pv| pv.label.pv_id.to_string())
            .unwrap_or_default();
    let areas = || {
        d.bad_areas
            .iter()
            .map(|(a, e)| area_problem(*a, e))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let line = match &d.status {
        DeviceStatus::InVg { .. } | DeviceStatus::Orphan if d.bad_areas.is_empty() => {
            if matches!(d.status, DeviceStatus::Orphan) {
                format!("PV {p} ({id}) is in no VG: its metadata area holds none")
            } else {
                return None;
            }
        }
        DeviceStatus::InVg { .. } | DeviceStatus::Orphan => {
            format!("warning: {p}: {} (another copy was used)", areas())
        }
        DeviceStatus::NoMetadataArea => {
            format!("PV {p} ({id}) has no metadata area; its VG is on PVs not given")
        }
        DeviceStatus::Duplicate { of } => format!(
            "warning: {p}: same PV id {id} as {}, which is used instead",
            path_of(paths, *of)
        ),
        DeviceStatus::NotListed { vg } => format!(
            "warning: PV {p} ({id}) names VG {}, whose metadata does not list it",
            report.vgs.get(*vg).map_or("?", |v| v.vg.name.as_str())
        ),
        DeviceStatus::VgNotImported { vg } => format!(
            "{p}: VG {} (seqno {}) does not import: {}",
            vg.name, vg.seqno, vg.error
        ),
        DeviceStatus::MetadataUnreadable => {
            format!("{p}: PV {id}: no metadata area could be read: {}", areas())
        }
        DeviceStatus::NoLabel => format!("{p}: not an LVM2 PV (no LVM2 label in sectors 0-3)"),
        DeviceStatus::BadLabel { error } => format!("{p}: {error}"),
        _ => format!("{p}: unreadable"),
    };
    Some((d.is_error(), line))
}

/// Print every device problem to stderr; the number of devices that are errors.
fn warn_errors(report: &ScanReport, paths: &[PathBuf]) -> usize {
    let mut n = 0;
    for d in report.devices() {
        if let Some((is_error, line)) = device_line(report, &d, paths) {
            if is_error {
                n += 1;
                errln!("dmsnap: {line}");
            } else if line.starts_with("warning") {
                errln!("dmsnap: {line}");
            }
        }
    }
    n
}

fn scan_devices(paths: &[PathBuf], as_json: bool, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let (_files, report) = scan_paths(paths)?;
    let devices = report.devices();
    let errors = warn_errors(&report, paths);
    for s in &report.vgs {
        print_warnings(&s.vg);
    }
    if as_json {
        let vgs: Vec<Value> = report
            .vgs
            .iter()
            .map(|s| vg_json(&s.vg, Some((s, paths))))
            .collect();
        let devs: Vec<Value> = devices
            .iter()
            .map(|d| {
                let line = device_line(&report, d, paths);
                json!({
                    "path": path_of(paths, d.device),
                    "status": d.status.as_str(),
                    "error": line.as_ref().filter(|(e, _)| *e).map(|(_, l)| l),
                    "bad_areas": d.bad_areas.iter().map(|(a, e)| json!({
                        "offset": a.offset, "size": a.size, "reason": e.to_string(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({ "vgs": vgs, "devices": devs }))?
        );
    } else {
        for s in &report.vgs {
            print_vg(&s.vg, Some((s, paths)), out);
        }
        for d in &devices {
            if let Some((false, line)) = device_line(&report, d, paths)
                && !line.starts_with("warning")
            {
                writeln!(out, "{line}");
            }
        }
    }
    if errors > 0 {
        return Err(format!(
            "{errors} of {} device(s) could not be read as LVM2 PVs",
            paths.len()
        )
        .into());
    }
    Ok(())
}

fn scan_metadata_file(file: &Path, as_json: bool, out: &mut Out) -> Result<(), Box<dyn Error>> {
    // Capped while reading: /dev/zero or a huge file is never read whole.
    let text = read_file_capped(file, config::MAX_TEXT as u64)?;
    let vg = metadata_text::read_vg(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    print_warnings(&vg);
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({ "vgs": [vg_json(&vg, None)] }))?
        );
    } else {
        print_vg(&vg, None, out);
    }
    Ok(())
}

fn vg_json(vg: &VolumeGroup, scanned: Option<(&ScannedVg, &[PathBuf])>) -> Value {
    let links = VgIndex::new(vg);
    let pvs: Vec<Value> = vg
        .pvs
        .iter()
        .map(|p| {
            let device = scanned
                .and_then(|(s, paths)| s.device_of(p).and_then(|i| paths.get(i)))
                .map(|p| p.display().to_string());
            json!({
                "name": p.handle, "uuid": p.id.to_string(), "device": device,
                "device_hint": p.device_hint, "pe_start": p.pe_start, "pe_count": p.pe_count,
                "missing": p.is_missing() || (scanned.is_some() && device.is_none()),
            })
        })
        .collect();
    let lvs: Vec<Value> = vg
        .lvs
        .iter()
        .filter(|lv| !vg.is_snapshot_internal(lv))
        .map(|lv| {
            let mut o = json!({
                "name": lv.name, "uuid": lv.id.to_string(),
                "size_sectors": vg.lv_size(lv), "segments": lv.segments.len(),
                "segtype": report::lvs_segtype(lv), "visible": links.is_visible(lv),
                "read_only": !lv.is_writable(),
                "snapshots": links.snapshots_of(&lv.name),
            });
            if let Some(link) = links.cow(&lv.name) {
                o["origin"] = json!(link.origin);
                o["chunk_sectors"] = json!(link.chunk_size);
                o["merging"] = json!(link.merging);
                o["size_sectors"] = json!(link.origin_extents * vg.extent_size);
                o["cow_size_sectors"] = json!(vg.lv_size(lv));
            }
            o
        })
        .collect();
    let mut o = json!({
        "name": vg.name, "uuid": vg.id.to_string(), "seqno": vg.seqno,
        "extent_size_sectors": vg.extent_size, "pvs": pvs, "lvs": lvs,
    });
    if let Some((s, _)) = scanned {
        o["complete"] = json!(s.is_complete());
        o["inconsistent"] = json!(s.inconsistent);
    }
    o
}

fn print_vg(vg: &VolumeGroup, scanned: Option<(&ScannedVg, &[PathBuf])>, out: &mut Out) {
    let links = VgIndex::new(vg);
    let state = match scanned {
        Some((s, _)) if !s.is_complete() => ", INCOMPLETE (PVs missing)",
        Some((s, _)) if s.inconsistent => ", metadata copies disagree (newest used)",
        _ => "",
    };
    writeln!(
        out,
        "VG {}  uuid {}  seqno {}  extent {} sectors{state}",
        vg.name, vg.id, vg.seqno, vg.extent_size
    );
    for p in &vg.pvs {
        let dev = scanned
            .and_then(|(s, paths)| s.device_of(p).and_then(|i| paths.get(i)))
            .map_or_else(
                || {
                    if scanned.is_some() {
                        "MISSING".to_string()
                    } else {
                        "-".to_string()
                    }
                },
                |p| p.display().to_string(),
            );
        writeln!(
            out,
            "  PV {:<6} {:<40} {} PEs from sector {}  {}",
            p.handle,
            p.id.to_string(),
            p.pe_count,
            p.pe_start,
            dev
        );
    }
    for lv in vg.lvs.iter().filter(|lv| !vg.is_snapshot_internal(lv)) {
        let name = if links.is_visible(lv) {
            lv.name.clone()
        } else {
            format!("[{}]", lv.name)
        };
        let mut extra = String::new();
        if let Some(link) = links.cow(&lv.name) {
            extra = format!(
                "  snapshot of {} (chunk {} sectors{})",
                link.origin,
                link.chunk_size,
                if link.merging { ", merging" } else { "" }
            );
        }
        let snaps = links.snapshots_of(&lv.name);
        if !snaps.is_empty() {
            extra = format!("  origin of {}", snaps.join(", "));
        }
        writeln!(
            out,
            "  LV {:<20} {:>12} sectors  {:<10} {}{}{extra}",
            name,
            vg.lv_size(lv),
            report::lvs_segtype(lv),
            if lv.is_writable() { "rw" } else { "ro" },
            if lv.segments.iter().all(|s| s.kind.is_mappable()) {
                ""
            } else {
                "  (not activatable here)"
            },
        );
    }
}

fn metadata(pv: &Path, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let f = Input::open(pv)?;
    let scanned = scan::scan_pv(&f, 0).map_err(|e| format!("{}: {e}", pv.display()))?;
    let Some(text) = metadata_text::newest_text(&scanned) else {
        for m in &scanned.mdas {
            if let MdaOutcome::Error(e) = &m.outcome {
                errln!("dmsnap: {}: {e}", pv.display());
            }
        }
        return Err(format!("{}: no readable VG metadata on this PV", pv.display()).into());
    };
    out.write_all(&text.text);
    Ok(())
}

fn plan(paths: &[PathBuf], as_json: bool, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let (_files, report) = scan_paths(paths)?;
    let device_errors = warn_errors(&report, paths);
    if report.vgs.is_empty() {
        // Say what each device was.
        let why: Vec<String> = report
            .devices()
            .iter()
            .map(|d| {
                device_line(&report, d, paths)
                    .map(|(_, l)| l)
                    .unwrap_or_else(|| format!("{}: a PV", path_of(paths, d.device)))
            })
            .collect();
        return Err(format!(
            "no volume group found on the given devices: {}",
            why.join("; ")
        )
        .into());
    }
    // The PVs as tables name them: their paths.
    let refs = paths
        .iter()
        .map(|p| DevRef::path(p.display().to_string()))
        .collect::<Result<Vec<DevRef>, _>>()?;
    let mut all = Plan::default();
    for s in &report.vgs {
        print_warnings(&s.vg);
        if !s.is_complete() {
            let missing: Vec<String> = s
                .missing_pvs()
                .map(|p| PvRef::from(p).to_string())
                .collect();
            errln!(
                "dmsnap: VG {} is incomplete, missing {}; LVs on them are skipped",
                s.vg.name,
                missing.join(", ")
            );
        }
        let dev = |p: &PhysicalVolume| s.device_of(p).and_then(|i| refs.get(i)).cloned();
        let p = plan_vg(&s.vg, &dev, &PlanOptions::default())?;
        all.devices.extend(p.devices);
        all.skipped.extend(p.skipped);
    }
    if as_json {
        let devices: Vec<Value> = all
            .devices
            .iter()
            .map(|d| {
                let table: Vec<Value> = d
                    .table
                    .lines()
                    .iter()
                    .map(|l| json!({ "start": l.start.0, "length": l.length.0, "target": l.target.target_type(), "params": lvm2_params(&l.target) }))
                    .collect();
                json!({ "name": d.name.as_str(), "uuid": d.uuid.as_str(), "read_only": d.read_only, "lv": d.lv, "layer": d.layer, "table": table })
            })
            .collect();
        let skipped: Vec<Value> = all
            .skipped
            .iter()
            .map(|s| json!({ "lv": s.lv, "reason": s.reason, "error": s.is_error() }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({ "devices": devices, "skipped": skipped }))?
        );
        return plan_status(&all, device_errors);
    }
    if all.devices.is_empty() && all.skipped.is_empty() {
        let names: Vec<&str> = report.vgs.iter().map(|s| s.vg.name.as_str()).collect();
        writeln!(out, "no LV to activate in VG {}", names.join(", "));
    }
    for d in &all.devices {
        writeln!(
            out,
            "{}  {}{}",
            d.name,
            d.uuid,
            if d.read_only { "  (read-only)" } else { "" }
        );
        for l in &d.table {
            let (ty, params) = (l.target.target_type(), lvm2_params(&l.target));
            writeln!(out, "  {} {} {ty} {params}", l.start, l.length);
        }
    }
    for s in &all.skipped {
        if s.is_error() {
            errln!("dmsnap: LV {} not planned: {}", s.lv, s.reason);
        } else {
            writeln!(out, "skipped {}: {}", s.lv, s.reason);
        }
    }
    plan_status(&all, device_errors)
}

/// A plan that leaves out an LV lvm2 would activate, or that read bad devices, fails.
fn plan_status(plan: &Plan, device_errors: usize) -> Result<(), Box<dyn Error>> {
    let missing = plan.skipped.iter().filter(|s| s.is_error()).count();
    match (missing, device_errors) {
        (0, 0) => Ok(()),
        (0, n) => Err(format!("{n} device(s) could not be read as LVM2 PVs").into()),
        (m, _) => Err(format!("{m} LV(s) that lvm2 would activate are not in the plan").into()),
    }
}

fn export_lv(
    vg_lv: &str,
    output: &Path,
    force: bool,
    paths: &[PathBuf],
    raw: bool,
) -> Result<(), Box<dyn Error>> {
    let (vg_name, lv_name) = vg_lv
        .split_once('/')
        .ok_or_else(|| format!("{vg_lv}: give the LV as VG/LV"))?;
    let (files, report) = scan_paths(paths)?;
    let policy = if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    // Checked against every PV before anything is opened for writing.
    let inputs: Vec<&Input> = files.iter().collect();
    let out = Output::create(output, &inputs, policy).map_err(crate::cow::output_hint)?;
    let s = find_vg(&report, vg_name, paths)?;
    let vg = &s.vg;
    if vg.lv(lv_name).is_none() {
        return Err(format!("LV {lv_name} not found in VG {vg_name}").into());
    }
    let src = |p: &PhysicalVolume| s.device_of(p).and_then(|i| files.get(i));
    // A snapshot LV is origin + COW store; `--raw` writes the store itself.
    let view = if raw {
        SnapshotView::CowStore
    } else {
        SnapshotView::Content
    };
    let reader = open_lv(vg, lv_name, &src, view)?;
    out.ensure_capacity(reader.size()?)?;
    // Only the data of sparse PVs is read; holes stay holes in a file output. Write
    // errors name the output path themselves.
    let n = export_to(&*reader, &out).map_err(|e| match e {
        CopyError::Read { .. } => format!("{vg_lv}: {e}"),
        other => other.to_string(),
    })?;
    out.commit()?;
    errln!("{vg_lv}: {n} bytes written to {}", output.display());
    Ok(())
}
