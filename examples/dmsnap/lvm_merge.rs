//! `dmsnap lvm merge VG/SNAP [--wait]` and the merge half of `dmsnap lvm activate`: one
//! library call each ([`devmapper::lvm::write::snapshot::merge`]); this file prints what
//! lvm2 prints and the progress.

use std::error::Error;
use std::io::IsTerminal;

use devmapper::lvm::write::session::WriteOptions;
use devmapper::lvm::write::snapshot::merge::{self, MergeStart};
use devmapper::targets::MergeProgress;

use crate::out::Out;

/// Progress on stderr when it is a terminal: sectors left and the share done.
fn progress_printer(what: String) -> impl FnMut(MergeProgress) {
    let tty = std::io::stderr().is_terminal();
    let mut first: Option<u64> = None;
    move |p: MergeProgress| {
        if !tty {
            return;
        }
        let left = p.remaining.0;
        let base = *first.get_or_insert(left.max(1));
        let done = 100.0 * (base.saturating_sub(left)) as f64 / base as f64;
        errprint!("\r  {what}: Merged: {done:5.1}% ({left} sectors left)   ");
    }
}

fn wait_one(
    vg: &str,
    origin: &str,
    opts: &WriteOptions,
    out: &mut Out,
) -> Result<(), Box<dyn Error>> {
    out.flush()?;
    let tty = std::io::stderr().is_terminal();
    let done = merge::wait(vg, origin, opts, progress_printer(format!("{vg}/{origin}")))?;
    if tty {
        errln!("");
    }
    match done {
        Some(f) => writeln!(
            out,
            "  Merge of snapshot into logical volume {vg}/{} has finished.\n  Logical volume \"{}\" successfully removed.",
            f.origin, f.snapshot
        ),
        None => writeln!(out, "  Merge into {vg}/{origin} is not running."),
    }
    Ok(())
}

/// `dmsnap lvm merge VG/SNAP [--wait]`.
pub fn merge_cmd(
    vg: &str,
    snap: &str,
    wait: bool,
    opts: &WriteOptions,
    out: &mut Out,
) -> Result<(), Box<dyn Error>> {
    let started = merge::merge(vg, snap, opts)?;
    for w in &started.warnings {
        errln!("  {w}");
    }
    match started.start {
        MergeStart::Started => {
            writeln!(out, "  Merging of volume {vg}/{snap} started.");
            if wait {
                wait_one(vg, &started.origin, opts, out)?;
            } else {
                writeln!(
                    out,
                    "  {vg}/{} shows the snapshot's content; run `dmsnap lvm activate {vg}` to finish the merge.",
                    started.origin
                );
            }
        }
        other => {
            writeln!(out, "  {other}");
            writeln!(
                out,
                "  Merging of snapshot {vg}/{snap} will occur on next activation of {vg}/{}.",
                started.origin
            );
        }
    }
    Ok(())
}

/// After an activation: finish the merges that are done, wait for those running.
pub fn finish_merges(vg: &str, opts: &WriteOptions, out: &mut Out) -> Result<(), Box<dyn Error>> {
    for f in merge::finish_done(vg, None, opts)? {
        writeln!(
            out,
            "  Merge of snapshot into logical volume {vg}/{} has finished.\n  Logical volume \"{}\" successfully removed.",
            f.origin, f.snapshot
        );
    }
    let running: Vec<String> = {
        let s = devmapper::lvm::write::session::VgSession::open(vg, opts)?;
        s.vg()
            .snapshot_links()
            .filter(|l| l.merging)
            .map(|l| l.origin.to_string())
            .collect()
    };
    for origin in running {
        wait_one(vg, &origin, opts, out)?;
    }
    Ok(())
}
