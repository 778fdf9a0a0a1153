//! Copy a snapshot (or any [`ReadAt`] source) into a file, keeping holes.
//!
//! Only the source's data is read: its holes ([`ReadAt::next_data`]: the holes of a sparse
//! origin image that no exception covers) are skipped. In a regular-file output they stay
//! holes, and 4 KiB pages of data that are all zeros are skipped too (left as holes); the
//! length is set at the end and verified afterwards. Block devices get every
//! byte and must be large enough; pipes, FIFOs and character devices get every byte in
//! order. [`export_to`] writes a checked [`Output`] (never an input, nothing partial left
//! behind); [`export`] writes an open file.
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
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};

use super::error::{Error, Result, io_err};
use crate::io::{Output, OutputKind, ReadAt};

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

/// Where an export writes.
#[derive(Clone, Copy)]
enum Sink<'a> {
    File(&'a File),
    Output(&'a Output),
}

impl Sink<'_> {
    fn write_at(&self, data: &[u8], at: u64) -> Result<()> {
        let r = match self {
            Sink::File(f) => f.write_all_at(data, at),
            Sink::Output(o) => o.write_all_at(data, at).map_err(io::Error::from),
        };
        r.map_err(|source| Error::Write {
            offset: Some(at),
            source,
        })
    }

    fn write_seq(self, data: &[u8]) -> Result<()> {
        let r = match self {
            Sink::File(mut f) => f.write_all(data),
            Sink::Output(mut o) => o.write_all(data),
        };
        r.map_err(|source| Error::Write {
            offset: None,
            source,
        })
    }

    fn file(&self) -> &File {
        match self {
            Sink::File(f) => f,
            Sink::Output(o) => o.file(),
        }
    }
}

/// How the output is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A regular file: truncated first, holes allowed, length set at the end.
    Regular,
    /// A block device: written in place, must be large enough.
    Device,
    /// A pipe, FIFO or character device: every byte, in order.
    Stream,
}

/// Write the non-zero runs of 4 KiB pages of `b` (at `pos`), returning the bytes written.
fn write_sparse(out: Sink<'_>, b: &[u8], pos: u64) -> Result<u64> {
    let mut written = 0;
    let mut run: Option<usize> = None; // start of the pending non-zero run
    let mut flush = |from: usize, to: usize| -> Result<()> {
        if let Some(data) = b.get(from..to) {
            out.write_at(data, pos + from as u64)?;
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
/// A regular file is truncated first; a pipe, FIFO or character device gets every byte in
/// order. Commands use [`export_to`], which never truncates anything.
///
/// # Errors
/// I/O errors with the device and offset ([`Error::Write`] for the output);
/// [`Error::TooSmall`] when a block device output is smaller than the source;
/// [`Error::OutputSize`] when the result has the wrong size.
pub fn export<R: ReadAt + ?Sized>(
    src: &R,
    out: &File,
    opts: &ExportOptions,
    progress: impl FnMut(u64, u64),
) -> Result<ExportReport> {
    let meta = out.metadata().map_err(io_err("output", 0))?;
    let ft = meta.file_type();
    let mode = if ft.is_file() {
        Mode::Regular
    } else if ft.is_block_device() {
        Mode::Device
    } else {
        Mode::Stream
    };
    if mode == Mode::Regular {
        out.set_len(0).map_err(|source| Error::Write {
            offset: Some(0),
            source,
        })?;
    }
    let report = copy_out(src, Sink::File(out), mode, opts, progress)?;
    if mode != Mode::Stream {
        out.sync_all().map_err(|source| Error::Write {
            offset: None,
            source,
        })?;
    }
    Ok(report)
}

/// Export `src` into a checked [`Output`] (see [`crate::io::Output::create`]) and commit
/// it: a regular file appears under its name only when complete, and on any error
/// nothing is left behind (the temporary file is removed). Holes are kept in regular
/// files; block devices must be large enough; streams get every byte in order.
///
/// ```
/// use devmapper::cow::export::{export_to, ExportOptions};
/// use devmapper::io::{Input, Output, Overwrite};
/// let dir = tempfile::tempdir()?;
/// let origin = dir.path().join("origin.img");
/// std::fs::write(&origin, vec![1u8; 8192])?;
/// let input = Input::open(&origin)?;
/// let out_path = dir.path().join("snap.img");
/// let out = Output::create(&out_path, &[&input], Overwrite::Refuse)?;
/// let report = export_to(&input, out, &ExportOptions::default(), |_, _| {})?;
/// assert_eq!(report.bytes, 8192);
/// assert_eq!(std::fs::read(&out_path)?, vec![1u8; 8192]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`export`]; [`Error::Output`] when committing fails.
pub fn export_to<R: ReadAt + ?Sized>(
    src: &R,
    out: Output,
    opts: &ExportOptions,
    progress: impl FnMut(u64, u64),
) -> Result<ExportReport> {
    let mode = match out.kind() {
        OutputKind::File => Mode::Regular,
        OutputKind::BlockDevice => Mode::Device,
        _ => Mode::Stream,
    };
    let report = copy_out(src, Sink::Output(&out), mode, opts, progress)?;
    out.commit()?;
    Ok(report)
}

fn copy_out<R: ReadAt + ?Sized>(
    src: &R,
    out: Sink<'_>,
    mode: Mode,
    opts: &ExportOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport> {
    let total = src.size().map_err(io_err("snapshot", 0))?;
    if mode == Mode::Device {
        let cap = crate::io::ReadAt::size(out.file()).map_err(io_err("output", 0))?;
        if cap < total {
            return Err(Error::TooSmall {
                what: "output",
                size: cap,
                needed: total,
            });
        }
    }
    let sparse = mode == Mode::Regular && opts.sparse;
    let block = opts.block_size.max(4096);
    let mut buf = vec![0u8; usize::try_from(total).unwrap_or(block).min(block)];
    let zero = vec![0u8; buf.len().min(64 << 10)];
    let mut written = 0u64;
    // A hole of the source (reads as zeros, never read): left as a hole in a sparse
    // regular-file output, written as zeros anywhere else.
    let hole = |from: u64, to: u64, written: &mut u64| -> Result<()> {
        if sparse {
            return Ok(());
        }
        let mut at = from;
        while at < to {
            let n = (to - at).min(zero.len() as u64) as usize;
            let z = zero.get(..n).unwrap_or_default();
            if mode == Mode::Stream {
                out.write_seq(z)?;
            } else {
                out.write_at(z, at)?;
            }
            *written += n as u64;
            at += n as u64;
        }
        Ok(())
    };
    let mut pos = 0u64;
    for range in crate::io::data_ranges(src, 0, total) {
        let (start, end) = range.map_err(io_err("snapshot", pos))?;
        if start > pos {
            hole(pos, start, &mut written)?;
            progress(start, total);
        }
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            let Some(b) = buf.get_mut(..n) else { break };
            src.read_exact_at(b, at).map_err(io_err("snapshot", at))?;
            if sparse {
                written += write_sparse(out, b, at)?;
            } else if mode == Mode::Stream {
                out.write_seq(b)?;
                written += n as u64;
            } else {
                out.write_at(b, at)?;
                written += n as u64;
            }
            at += n as u64;
            progress(at, total);
        }
        pos = end;
    }
    if pos < total {
        hole(pos, total, &mut written)?;
        progress(total, total);
    }
    if mode == Mode::Regular {
        out.file().set_len(total).map_err(|source| Error::Write {
            offset: Some(total),
            source,
        })?;
        let actual = out.file().metadata().map_err(io_err("output", 0))?.len();
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
