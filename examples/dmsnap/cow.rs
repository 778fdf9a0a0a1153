//! `dmsnap cow ...`: offline commands on persistent exception stores (no kernel, no root).

use std::error::Error;
use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use devmapper::cow::export::{ExportOptions, export_to};
use devmapper::cow::merge::{MergeOptions, MergePlan};
use devmapper::cow::reader::{self, SnapshotReader};
use devmapper::cow::region::{clear_record, locate};
use devmapper::cow::{HeaderState, Store};
use devmapper::io::{Input, Output, OutputError, Overwrite, ReadAt};
use devmapper::snapshot::record::{Record, RecordState};
use devmapper::targets::percent;

use crate::out::Out;

/// Offline commands on a snapshot's COW device (persistent `P`/`PO` stores).
#[derive(Debug, Subcommand)]
pub enum CowCmd {
    /// Show the store's header and usage (as the kernel's status line would).
    Inspect {
        /// COW device or image.
        cow: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the snapshot's content (origin + COW) to a file; holes are kept.
    Export {
        /// Origin device or image (read-only).
        #[arg(long)]
        origin: PathBuf,
        /// COW device or image (read-only).
        #[arg(long)]
        cow: PathBuf,
        /// Output: a new file, written under a temporary name and renamed to OUT when
        /// complete (nothing is left behind on failure); an existing non-empty file or a
        /// block device only with --force; a pipe or FIFO gets the bytes in order. Never
        /// one of the inputs.
        #[arg(short = 'o', long, value_name = "OUT")]
        output: PathBuf,
        /// Replace an existing OUT: a file is replaced only once the export is complete
        /// (kept as it was on failure); a block device (large enough) is overwritten.
        #[arg(long)]
        force: bool,
        /// Read an invalidated store anyway (its table may be incomplete).
        #[arg(long)]
        force_invalid: bool,
    },
    /// Roll the origin back to the snapshot: write the exceptions into the origin.
    Merge {
        /// Origin device or image (written!). Must not be mounted or in use.
        #[arg(long)]
        origin: PathBuf,
        /// COW device or image (its table is emptied as chunks are merged).
        #[arg(long)]
        cow: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Merge an invalidated store anyway (the kernel refuses to).
        #[arg(long, alias = "force-invalid")]
        force: bool,
    },
}

/// Run a `dmsnap cow` command.
pub fn run(cmd: CowCmd, out: &mut Out) -> Result<(), Box<dyn Error>> {
    match cmd {
        CowCmd::Inspect { cow, json } => inspect(&cow, json, out),
        CowCmd::Export {
            origin,
            cow,
            output,
            force,
            force_invalid,
        } => export_cmd(&origin, &cow, &output, force, force_invalid),
        CowCmd::Merge {
            origin,
            cow,
            yes,
            force,
        } => merge_cmd(&origin, &cow, yes, force),
    }
}

/// Open read-only (regular files and block devices only, never blocking) and drop the
/// device's clean cached pages: the kernel writes a COW device behind the page cache.
fn open_ro(path: &Path) -> Result<Input, Box<dyn Error>> {
    let f = Input::open(path)?;
    f.drop_cache();
    Ok(f)
}

const FRESH_NOTE: &str = "no header (first word is 0): a persistent store that was never \
activated or was wiped, so the snapshot equals the origin; or a transient (N) store, which \
keeps its table only in kernel memory and cannot be read offline";

/// What a dmsnap record says, for `inspect`.
fn record_json(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "wrapper": r.wrapper_name.as_str(),
        "wrapper_uuid": r.wrapper_uuid.as_str(),
        "snapshot": r.snapshot_name.as_str(),
        "snapshot_uuid": r.snapshot_uuid.as_str(),
        "state": match r.state { RecordState::Merging => "merging", _ => "snapshot" },
        "created": r.created,
        "chunk_sectors": r.chunk_sectors,
        "store_offset_sectors": r.store_offset.0,
        "store_sectors": r.store_sectors.0,
        "origin_sectors": r.origin_sectors,
        "origin_ids": r.origin_ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
    })
}

fn inspect(path: &Path, json: bool, out: &mut Out) -> Result<(), Box<dyn Error>> {
    let file = open_ro(path)?;
    let located = locate(&file)?;
    let record = located.record.clone();
    if !json && let Some(r) = &record {
        writeln!(out, "dmsnap record: {r}");
        writeln!(
            out,
            "origin:       {} sectors{}",
            r.origin_sectors,
            r.origin_ids
                .iter()
                .map(|i| format!(", {i}"))
                .collect::<String>()
        );
        writeln!(
            out,
            "store:        at sector {}, {} sectors",
            r.store_offset, r.store_sectors
        );
    }
    let record = record.as_ref().map(record_json);
    let store = Store::open(&located.store)?;
    let summary = store.summary()?;
    let size = summary.size;
    let Some(header) = summary.header else {
        if json {
            let doc = serde_json::json!({
                "magic_ok": false, "valid": false, "version": 0, "chunk_sectors": 0,
                "exceptions": 0, "metadata_areas": 0,
                "allocated_sectors": 0, "metadata_sectors": 0, "total_sectors": size >> 9,
                "fresh": true, "record": record,
            });
            writeln!(out, "{doc:#}");
        } else {
            writeln!(out, "COW:          {} ({size} bytes)", path.display());
            writeln!(out, "header:       {FRESH_NOTE}");
        }
        return Ok(());
    };
    let (Some(geo), Some(usage), Some(status)) =
        (summary.geometry, summary.usage, summary.kernel_status())
    else {
        return Err("unusable chunk size".into());
    };
    let end = summary.end;
    if json {
        let doc = serde_json::json!({
            "magic_ok": true,
            "valid": header.is_valid(),
            "version": header.version,
            "chunk_sectors": header.chunk_sectors,
            "exceptions": end.exceptions,
            "metadata_areas": summary.metadata_areas(),
            "allocated_sectors": usage.allocated.0,
            "metadata_sectors": usage.metadata.0,
            "total_sectors": usage.total.0,
            "fresh": false,
            "kernel_status": status.to_string(),
            "record": record,
        });
        writeln!(out, "{doc:#}");
        return Ok(());
    }
    writeln!(out, "COW:          {} ({size} bytes)", path.display());
    writeln!(
        out,
        "header:       SnAp version {}, {}",
        header.version,
        if header.is_valid() {
            "valid"
        } else {
            "INVALID (the kernel invalidated this snapshot, e.g. after the COW overflowed)"
        }
    );
    writeln!(
        out,
        "chunk size:   {} sectors ({})",
        header.chunk_sectors,
        human(geo.chunk_bytes())
    );
    writeln!(
        out,
        "exceptions:   {} in {} metadata area(s)",
        end.exceptions,
        summary.metadata_areas()
    );
    let used = usage
        .used_percent()
        .map(|p| format!(", {p:.1}% used"))
        .unwrap_or_default();
    writeln!(
        out,
        "usage:        {usage} sectors (allocated/total metadata){used}"
    );
    writeln!(out, "status line:  {status}");
    Ok(())
}

fn export_cmd(
    origin: &Path,
    cow: &Path,
    output: &Path,
    force: bool,
    force_invalid: bool,
) -> Result<(), Box<dyn Error>> {
    let o = open_ro(origin)?;
    let c = open_ro(cow)?;
    let policy = if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    // Checked against both inputs before anything is opened for writing.
    let out = Output::create(output, &[&o, &c], policy).map_err(output_hint)?;
    // A COW made by dmsnap starts with a record; the store follows it.
    let cs = locate(&c)?.store;
    let snap =
        SnapshotReader::open_with(&o, &cs, reader::OpenOptions { force_invalid }).map_err(|e| {
            match e {
                devmapper::cow::Error::Invalidated => {
                    format!("{e}\nhint: pass --force-invalid to export what the table holds anyway")
                        .into()
                }
                other => Box::<dyn Error>::from(other),
            }
        })?;
    if snap.state() == HeaderState::Fresh {
        errln!("note: COW has {FRESH_NOTE}; exporting the origin as is");
    }
    let total = snap.size()?;
    let mut bar = Bar::new("export", total);
    let report = export_to(&snap, out, &ExportOptions::default(), |done, _| {
        bar.update(done)
    })?;
    bar.finish();
    errln!(
        "exported {} ({} exceptions) to {}: {} written, {} left as holes",
        human(report.bytes),
        snap.exceptions(),
        output.display(),
        human(report.written),
        human(report.bytes - report.written)
    );
    Ok(())
}

/// The hint for an output refused because it exists.
pub fn output_hint(e: OutputError) -> Box<dyn Error> {
    match e {
        OutputError::Exists { .. } => format!(
            "{e}\nhint: pass --force to replace it (a file is replaced only once the export \
             is complete)"
        )
        .into(),
        other => other.into(),
    }
}

fn merge_cmd(origin: &Path, cow: &Path, yes: bool, force: bool) -> Result<(), Box<dyn Error>> {
    // Block devices exclusively (a mounted one is refused); the COW must not be the origin.
    let o = Input::open_rw(origin, &[])?;
    let c_file = Input::open_rw(cow, &[&o])?;
    // A COW made by dmsnap starts with a record; the store follows it.
    let located = locate(&c_file)?;
    let had_record = located.record.is_some();
    let c = located.store;
    // Look before writing: what would be merged (the table is read once, here).
    let opts = MergeOptions {
        force_invalid: force,
        ..MergeOptions::default()
    };
    let plan = MergePlan::new(&o, &c, &opts)?;
    let count = plan.exceptions();
    if count == 0 {
        errln!("nothing to merge: the store holds no exceptions");
        return Ok(());
    }
    errln!(
        "merging {count} chunk(s) ({}) from {} into {}{}",
        human(plan.bytes()),
        cow.display(),
        origin.display(),
        if plan.is_valid() {
            ""
        } else {
            " (INVALIDATED store, forced)"
        }
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err("refusing to write the origin without confirmation: pass --yes".into());
        }
        errprint!("the origin will be rolled back to the snapshot; type 'yes' to go on: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            return Err("aborted; nothing was written".into());
        }
    }
    let mut bar = Bar::new("merge", plan.bytes());
    let report = plan.run(|p| {
        bar.update(p.merged_bytes());
        ControlFlow::Continue(())
    })?;
    bar.finish();
    errln!(
        "merged and verified {} chunk(s) in {} batch(es); the store is now empty",
        report.merged,
        report.batches
    );
    if had_record {
        // The snapshot is gone into the origin: nothing is left to activate.
        clear_record(c_file.file())
            .map_err(|e| format!("clearing the dmsnap record on {}: {e}", cow.display()))?;
        errln!("cleared the dmsnap record on {}", cow.display());
    }
    Ok(())
}

/// A one-line progress bar on stderr (drawn only when stderr is a terminal).
struct Bar {
    label: &'static str,
    total: u64,
    start: Instant,
    last: Option<Instant>,
    tty: bool,
}

impl Bar {
    fn new(label: &'static str, total: u64) -> Bar {
        Bar {
            label,
            total,
            start: Instant::now(),
            last: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64) {
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100));
        if !self.tty || !(due || done >= self.total) {
            return;
        }
        self.last = Some(now);
        const WIDTH: u64 = 30;
        let filled = (done.saturating_mul(WIDTH))
            .checked_div(self.total)
            .unwrap_or(WIDTH)
            .min(WIDTH) as usize;
        // An empty job is done.
        let pct = percent(done, self.total).map_or(100, |p| p as u64);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        errprint!(
            "\r{} [{}{}] {pct:3}% {} / {} {}/s ",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            human(done),
            human(self.total),
            human((done as f64 / secs) as u64),
        );
    }

    fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            errln!();
        }
    }
}

/// `1.5 GiB`-style sizes.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
