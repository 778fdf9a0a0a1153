//! Copy a snapshot (or any [`ReadAt`] source) into a file, keeping holes.
//!
//! When the output is a regular file it is truncated, then 4 KiB pages that are all zeros
//! are skipped (left as holes) and the length is set at the end. Other outputs (block devices)
//! get every byte and must be large enough. The size is verified afterwards.
//!
//! ```
//! use devmapper::cow::export::{export, ExportOptions};
//! let src = vec![0u8; 1 << 20];
//! let out = tempfile::tempfile()?;
//! let report = export(&src[..], &out, &ExportOptions::default(), |_done, _total| {})?;
//! assert_eq!(report.bytes, 1 << 20);
//! assert_eq!(report.written, 0); // all zeros: one big hole
//! assert_eq!(out.metadata()?.len(), 1 << 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::error::{Error, Result, io_err};
use crate::io::ReadAt;

/// Export settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Bytes per read/write (default 1 MiB).
    pub block_size: usize,
    /// Leave all-zero blocks as holes when the output is a regular file (default true).
    pub sparse: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            block_size: 1 << 20,
            sparse: true,
        }
    }
}

/// What an export did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// Bytes exported (the source size).
    pub bytes: u64,
    /// Bytes actually written (the rest are holes).
    pub written: u64,
}

/// Whether a buffer holds only zeros (word-wise, vectorisable).
pub fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// Granularity of holes.
const PAGE: usize = 4096;

/// Write the non-zero runs of 4 KiB pages of `b` (at `pos`), returning the bytes written.
fn write_sparse(out: &File, b: &[u8], pos: u64) -> Result<u64> {
    let mut written = 0;
    let mut run: Option<usize> = None; // start of the pending non-zero run
    let mut flush = |from: usize, to: usize| -> Result<()> {
        if let Some(data) = b.get(from..to) {
            let at = pos + from as u64;
            out.write_all_at(data, at).map_err(io_err("output", at))?;
            written += data.len() as u64;
        }
        Ok(())
    };
    for (i, page) in b.chunks(PAGE).enumerate() {
        let start = i * PAGE;
        match (is_zero(page), run) {
            (true, Some(r)) => {
                flush(r, start)?;
                run = None;
            }
            (false, None) => run = Some(start),
            _ => {}
        }
    }
    if let Some(r) = run {
        flush(r, b.len())?;
    }
    Ok(written)
}

/// Copy all of `src` into `out`, calling `progress(done, total)` after every block.
///
/// # Errors
/// I/O errors with the device and offset; [`Error::TooSmall`] when a non-regular output
/// is smaller than the source; [`Error::OutputSize`] when the result has the wrong size.
pub fn export<R: ReadAt + ?Sized>(
    src: &R,
    out: &File,
    opts: &ExportOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport> {
    let total = src.size().map_err(io_err("snapshot", 0))?;
    let meta = out.metadata().map_err(io_err("output", 0))?;
    let regular = meta.is_file();
    let sparse = regular && opts.sparse;
    if regular {
        out.set_len(0).map_err(io_err("output", 0))?;
    } else {
        let cap = crate::io::ReadAt::size(out).map_err(io_err("output", 0))?;
        if cap < total {
            return Err(Error::TooSmall {
                what: "output",
                size: cap,
                needed: total,
            });
        }
    }
    let block = opts.block_size.max(4096);
    let mut buf = vec![0u8; usize::try_from(total).unwrap_or(block).min(block)];
    let mut pos = 0u64;
    let mut written = 0u64;
    while pos < total {
        let n = (total - pos).min(buf.len() as u64) as usize;
        let Some(b) = buf.get_mut(..n) else { break };
        src.read_exact_at(b, pos).map_err(io_err("snapshot", pos))?;
        if sparse {
            written += write_sparse(out, b, pos)?;
        } else {
            out.write_all_at(b, pos).map_err(io_err("output", pos))?;
            written += n as u64;
        }
        pos += n as u64;
        progress(pos, total);
    }
    if regular {
        out.set_len(total).map_err(io_err("output", total))?;
    }
    out.sync_all().map_err(io_err("output", 0))?;
    if regular {
        let actual = out.metadata().map_err(io_err("output", 0))?.len();
        if actual != total {
            return Err(Error::OutputSize {
                expected: total,
                actual,
            });
        }
    }
    Ok(ExportReport {
        bytes: total,
        written,
    })
}
