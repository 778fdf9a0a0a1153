//! Offline rollback: write a snapshot's exceptions back into its origin.
//!
//! This is what the kernel's `snapshot-merge` target does, for systems without
//! device-mapper (rescue shells, images). Afterwards the origin holds the snapshot's
//! content and the store is empty (valid, no exceptions), as after a kernel merge.
//!
//! Crash safety follows the kernel: entries are taken from the **tail** of the table, in
//! batches within one metadata area. For each batch the chunks are copied COW -> origin and
//! the origin is synced; only then are the batch's entries zeroed on the COW and the COW
//! synced. The on-disk table is therefore always a prefix of the original one whose
//! chunks, and only those, may still be unmerged: a rerun after a crash re-copies at most
//! one batch (idempotent, the COW data never changes) and completes the merge.
//!
//! Every merged chunk is checksummed when it is copied (that is the snapshot's content)
//! and the origin is read back and compared at the end.
//!
//! ```
//! use devmapper::cow::merge::{merge, MergeOptions};
//! use devmapper::cow::writer::StoreWriter;
//! use std::os::unix::fs::FileExt;
//!
//! let mut w = StoreWriter::new(8, 1 << 20)?;
//! w.push(2, &[9u8; 4096])?;
//! let cow = tempfile::tempfile()?;
//! w.write_to(&cow)?;
//! let origin = tempfile::tempfile()?;
//! origin.set_len(16 << 10)?;
//!
//! let report = merge(&origin, &cow, &MergeOptions::default(), |_| std::ops::ControlFlow::Continue(()))?;
//! assert!(report.completed);
//! let mut b = [0u8; 1];
//! origin.read_exact_at(&mut b, 2 * 4096)?;
//! assert_eq!(b[0], 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;

use super::Store;
use super::error::{Error, Result, io_err};
use super::header::{ENTRY_LEN, Geometry, Header, HeaderState};
use crate::io::{FileId, Input, InputError, ReadAt};

/// A device that can be written in place and synced: the origin and the COW of a merge.
pub trait WriteAt: ReadAt {
    /// Write all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make written data durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Which file or device this is, when known: [`merge`] refuses an origin that is the
    /// COW device.
    fn file_id(&self) -> Option<FileId> {
        None
    }
}

impl WriteAt for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn file_id(&self) -> Option<FileId> {
        self.metadata().ok().map(|m| FileId::of(&m))
    }
}

impl WriteAt for Input {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self.file(), buf, offset).map_err(|source| {
            InputError::Write {
                path: self.path().to_owned(),
                offset,
                source,
            }
            .into()
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.file().sync_data()
    }

    fn file_id(&self) -> Option<FileId> {
        Some(self.id())
    }
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }

    fn file_id(&self) -> Option<FileId> {
        (**self).file_id()
    }
}

/// Merge settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeOptions {
    /// Merge an invalidated store anyway (the kernel refuses to; its table may be
    /// incomplete, so the origin may not end up equal to the snapshot as it was).
    pub force_invalid: bool,
    /// Upper bound on the data copied between two syncs (default 8 MiB; at least one
    /// chunk per batch).
    pub batch_bytes: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            force_invalid: false,
            batch_bytes: 8 << 20,
        }
    }
}

/// Progress after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeProgress {
    /// Chunks merged so far in this run.
    pub merged: u64,
    /// Chunks to merge in this run.
    pub total: u64,
    /// Batches committed so far.
    pub batches: u64,
    /// Chunk size in bytes.
    pub chunk_bytes: u64,
}

impl MergeProgress {
    /// Data merged so far in this run, in bytes.
    pub fn merged_bytes(&self) -> u64 {
        self.merged.saturating_mul(self.chunk_bytes)
    }

    /// Data to merge in this run, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total.saturating_mul(self.chunk_bytes)
    }

    /// Percent merged, by the rule of [`crate::targets::percent`] (100 for an empty run).
    pub fn percent(&self) -> f64 {
        crate::targets::percent(self.merged, self.total).unwrap_or(100.0)
    }
}

/// A checked merge, before anything is written: the store's table read and checked once
/// ([`MergePlan::new`]), then run with [`MergePlan::run`]. Lets a caller say what will be
/// merged (and ask for confirmation) without reading the table twice.
///
/// ```
/// use devmapper::cow::merge::{MergeOptions, MergePlan};
/// use devmapper::cow::writer::StoreWriter;
///
/// let mut w = StoreWriter::new(8, 1 << 20)?;
/// w.push(2, &[9u8; 4096])?;
/// let cow = tempfile::tempfile()?;
/// w.write_to(&cow)?;
/// let origin = tempfile::tempfile()?;
/// origin.set_len(16 << 10)?;
///
/// let plan = MergePlan::new(&origin, &cow, &MergeOptions::default())?;
/// assert_eq!((plan.exceptions(), plan.bytes(), plan.is_valid()), (1, 4096, true));
/// let report = plan.run(|_| std::ops::ControlFlow::Continue(()))?;
/// assert_eq!(report.merged, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MergePlan<'a, O, C> {
    origin: &'a O,
    cow: &'a C,
    opts: MergeOptions,
    origin_size: u64,
    /// `None` for a fresh store (nothing to merge).
    layout: Option<(Header, Geometry)>,
    table: Vec<super::Exception>,
}

/// What a merge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeReport {
    /// Chunks merged (and verified) in this run.
    pub merged: u64,
    /// Exceptions in the table when this run started.
    pub total: u64,
    /// Batches committed.
    pub batches: u64,
    /// False when the progress callback stopped the merge early (the table then holds
    /// the rest: run again to finish).
    pub completed: bool,
}

/// Copy buffer size for one piece of a chunk.
const PIECE: u64 = 1 << 20;

/// Merge the store on `cow` into `origin`. `progress` runs after each committed batch;
/// returning `ControlFlow::Break(())` stops cleanly (the rest stays in the table).
///
/// # Errors
/// [`Error::OriginIsCow`] before anything is read or written when both are one file or
/// device; store errors (header, corrupt table, [`Error::DuplicateOldChunk`]);
/// [`Error::Invalidated`] unless forced; [`Error::OriginTooSmall`]; I/O errors;
/// [`Error::VerifyMismatch`] when the origin does not read back as the snapshot's content.
/// Pass distinct devices: open them with [`crate::io::Input::open_rw`], which refuses the
/// COW when it is the origin (by identity) before anything is written.
pub fn merge<O: WriteAt, C: WriteAt>(
    origin: &O,
    cow: &C,
    opts: &MergeOptions,
    progress: impl FnMut(&MergeProgress) -> ControlFlow<()>,
) -> Result<MergeReport> {
    MergePlan::new(origin, cow, opts)?.run(progress)
}

impl<'a, O: WriteAt, C: WriteAt> MergePlan<'a, O, C> {
    /// Check a merge of the store on `cow` into `origin` and read its table, writing
    /// nothing.
    ///
    /// # Errors
    /// As [`merge`], but for the errors of writing and verifying.
    pub fn new(origin: &'a O, cow: &'a C, opts: &MergeOptions) -> Result<Self> {
        if let (Some(a), Some(b)) = (origin.file_id(), cow.file_id())
            && a == b
        {
            return Err(Error::OriginIsCow);
        }
        let origin_size = origin.size().map_err(io_err("origin", 0))?;
        let store = Store::open(cow)?;
        let mut plan = MergePlan {
            origin,
            cow,
            opts: *opts,
            origin_size,
            layout: None,
            table: Vec::new(),
        };
        let (header, geo) = match (store.state(), store.geometry()) {
            (HeaderState::Persistent(h), Some(g)) => (h, g),
            // Fresh: nothing to merge, the snapshot already equals the origin.
            _ => return Ok(plan),
        };
        if !header.is_valid() && !opts.force_invalid {
            return Err(Error::Invalidated);
        }
        let mut table = Vec::new();
        store.exceptions(None).walk(|e| table.push(e))?;
        store.check_origin_size(table.iter().map(|e| e.old_chunk).max(), origin_size)?;
        check_unique_old(&table)?;
        plan.layout = Some((header, geo));
        plan.table = table;
        Ok(plan)
    }

    /// Exceptions to merge (0 for a fresh store).
    pub fn exceptions(&self) -> u64 {
        self.table.len() as u64
    }

    /// Chunk size in bytes (0 for a fresh store).
    pub fn chunk_bytes(&self) -> u64 {
        self.layout.map_or(0, |(_, g)| g.chunk_bytes())
    }

    /// Data to merge, in bytes.
    pub fn bytes(&self) -> u64 {
        self.exceptions().saturating_mul(self.chunk_bytes())
    }

    /// False when the store was invalidated (and the merge forced).
    pub fn is_valid(&self) -> bool {
        self.layout.is_none_or(|(h, _)| h.is_valid())
    }

    /// Merge. `progress` runs after each committed batch; returning
    /// `ControlFlow::Break(())` stops cleanly (the rest stays in the table).
    ///
    /// # Errors
    /// As [`merge`].
    pub fn run(
        self,
        mut progress: impl FnMut(&MergeProgress) -> ControlFlow<()>,
    ) -> Result<MergeReport> {
        let MergePlan {
            origin,
            cow,
            opts,
            origin_size,
            layout,
            table,
        } = self;
        let Some((_, geo)) = layout else {
            return Ok(MergeReport {
                merged: 0,
                total: 0,
                batches: 0,
                completed: true,
            });
        };
        let cb = geo.chunk_bytes();
        let epa = u64::from(geo.exceptions_per_area());
        let per_batch = (opts.batch_bytes / cb).max(1);
        let total = table.len() as u64;
        let mut sums = vec![0u32; table.len()];
        let mut piece = vec![0u8; cb.min(PIECE) as usize];
        let zeros = vec![0u8; (per_batch.min(epa) * ENTRY_LEN) as usize];
        let mut pos = total; // entries [0, pos) are still in the table
        let mut batches = 0u64;
        let mut stopped = false;
        while pos > 0 {
            let area = (pos - 1) / epa;
            let start = (area * epa).max(pos - per_batch.min(pos));
            for i in (start..pos).rev() {
                let Some(e) = table.get(i as usize) else {
                    break;
                };
                let sum = copy_chunk(
                    cow,
                    origin,
                    e.new_chunk * cb,
                    e.old_chunk * cb,
                    cb,
                    origin_size,
                    &mut piece,
                )?;
                if let Some(s) = sums.get_mut(i as usize) {
                    *s = sum;
                }
            }
            origin.sync().map_err(io_err("origin", 0))?;
            // Zero the batch's entries: the table now ends before them.
            let area_off = geo.area_chunk(area).unwrap_or(0) * cb;
            let at = area_off + (start - area * epa) * ENTRY_LEN;
            let len = ((pos - start) * ENTRY_LEN) as usize;
            let z = zeros.get(..len).unwrap_or(&zeros);
            cow.write_all_at(z, at).map_err(io_err("COW device", at))?;
            cow.sync().map_err(io_err("COW device", at))?;
            pos = start;
            batches += 1;
            let p = MergeProgress {
                merged: total - pos,
                total,
                batches,
                chunk_bytes: cb,
            };
            if progress(&p).is_break() && pos > 0 {
                stopped = true;
                break;
            }
        }
        // Verify every chunk merged in this run.
        for (i, e) in table.iter().enumerate().skip(pos as usize) {
            let sum = checksum(
                origin,
                "origin",
                e.old_chunk * cb,
                cb,
                origin_size,
                &mut piece,
            )?;
            if sums.get(i) != Some(&sum) {
                return Err(Error::VerifyMismatch {
                    old_chunk: e.old_chunk,
                    new_chunk: e.new_chunk,
                });
            }
        }
        Ok(MergeReport {
            merged: total - pos,
            total,
            batches,
            completed: !stopped,
        })
    }
}

/// Refuse tables that remap one origin chunk twice.
fn check_unique_old(table: &[super::Exception]) -> Result<()> {
    let mut sorted: Vec<(u64, u64)> = table.iter().map(|e| (e.old_chunk, e.new_chunk)).collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        Some(w) => Err(Error::DuplicateOldChunk {
            old_chunk: w[0].0,
            first_new: w[0].1,
            second_new: w[1].1,
        }),
        None => Ok(()),
    }
}

/// Copy one chunk (clipped to the origin's end), returning the CRC-32 of what was copied.
fn copy_chunk<O: WriteAt, C: ReadAt>(
    cow: &C,
    origin: &O,
    from: u64,
    to: u64,
    cb: u64,
    origin_size: u64,
    piece: &mut [u8],
) -> Result<u32> {
    let len = cb.min(origin_size.saturating_sub(to));
    let mut hasher = crc32fast::Hasher::new();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(piece.len() as u64) as usize;
        let Some(b) = piece.get_mut(..n) else { break };
        cow.read_exact_at(b, from + done)
            .map_err(io_err("COW device", from + done))?;
        origin
            .write_all_at(b, to + done)
            .map_err(io_err("origin", to + done))?;
        hasher.update(b);
        done += n as u64;
    }
    Ok(hasher.finalize())
}

/// CRC-32 of one chunk of `dev` (clipped to `limit`).
fn checksum<R: ReadAt>(
    dev: &R,
    what: &'static str,
    at: u64,
    cb: u64,
    limit: u64,
    piece: &mut [u8],
) -> Result<u32> {
    let len = cb.min(limit.saturating_sub(at));
    let mut hasher = crc32fast::Hasher::new();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(piece.len() as u64) as usize;
        let Some(b) = piece.get_mut(..n) else { break };
        dev.read_exact_at(b, at + done)
            .map_err(io_err(what, at + done))?;
        hasher.update(b);
        done += n as u64;
    }
    Ok(hasher.finalize())
}
