//! The snapshot's content, offline: origin + COW -> snapshot bytes.
//!
//! [`SnapshotReader`] implements [`ReadAt`] over any two `ReadAt` sources (image files,
//! block devices opened read-only, buffers): chunks with an exception come from the COW
//! device, all others from the origin. [`ReadAtCursor`] adapts it (or any `ReadAt`) to
//! `Read + Seek`.
//!
//! Read a quiescent store: with the snapshot live, the kernel writes the COW device
//! underneath any page cache a reader holds and keeps changing the origin, so the result
//! could mix moments. Remove or suspend the snapshot (or read after `lvchange -an`) first.
//!
//! ```
//! use std::io::{Read, Seek, SeekFrom};
//! use devmapper::cow::reader::{ReadAtCursor, SnapshotReader};
//! use devmapper::cow::writer::StoreWriter;
//!
//! let mut w = StoreWriter::new(1, 64 << 10)?; // 512-byte chunks
//! w.push(1, &[7; 512])?;
//! let cow = w.finish();
//! let origin = vec![1u8; 2048];
//! let snap = SnapshotReader::open(&origin[..], &cow)?;
//! let mut cursor = ReadAtCursor::new(snap);
//! cursor.seek(SeekFrom::Start(510))?;
//! let mut buf = [0u8; 4];
//! cursor.read_exact(&mut buf)?;
//! assert_eq!(buf, [1, 1, 7, 7]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read, Seek, SeekFrom};

use super::Store;
use super::error::{Error, Result, io_err};
use super::header::HeaderState;
use crate::io::ReadAt;

/// How to open a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Read an invalidated store (`valid == 0`) anyway. Its table may lack the chunks
    /// whose copy failed or did not fit, so the result can differ from the snapshot as it
    /// was; the kernel refuses such a snapshot.
    pub force_invalid: bool,
}

/// The snapshot's content as origin + exceptions. Its size is the origin's size.
#[derive(Debug)]
pub struct SnapshotReader<O, C> {
    origin: O,
    cow: C,
    size: u64,
    chunk_bytes: u64,
    /// `(old_chunk, new_chunk)`, sorted by `old_chunk`, no duplicates.
    map: Vec<(u64, u64)>,
    state: HeaderState,
}

impl<O: ReadAt, C: ReadAt> SnapshotReader<O, C> {
    /// Open with default options (an invalidated store is refused).
    ///
    /// # Errors
    /// As [`SnapshotReader::open_with`].
    pub fn open(origin: O, cow: C) -> Result<Self> {
        Self::open_with(origin, cow, OpenOptions::default())
    }

    /// Read the header and the whole exception table (every entry checked, old chunks
    /// against the origin's size) and build the lookup table.
    ///
    /// ```
    /// use devmapper::cow::{Error, reader::SnapshotReader, writer::StoreWriter};
    /// // The snapshot saved origin chunk 15 (4 KiB chunks): its origin had 64 KiB.
    /// let cow = StoreWriter::build(8, 1 << 20, &[(15, None)])?.to_vec();
    /// let short_origin = vec![0u8; 32 << 10];
    /// let err = SnapshotReader::open(&short_origin[..], &cow[..]).unwrap_err();
    /// assert!(matches!(err, Error::OriginTooSmall { origin_size: 32768, needed: 61952, .. }));
    /// # Ok::<(), devmapper::cow::Error>(())
    /// ```
    ///
    /// A fresh store (all-zero magic) gives a snapshot equal to the origin.
    ///
    /// # Errors
    /// The errors of [`Store::open`] and of the table scan; [`Error::Invalidated`] unless
    /// forced; [`Error::DuplicateOldChunk`] when two entries remap one origin chunk;
    /// [`Error::OriginTooSmall`] when the origin is smaller than the snapshot's.
    pub fn open_with(origin: O, cow: C, opts: OpenOptions) -> Result<Self> {
        let size = origin.size().map_err(io_err("origin", 0))?;
        let store = Store::open(cow)?;
        let state = store.state();
        let mut map = Vec::new();
        let mut chunk_bytes = 0;
        if let (HeaderState::Persistent(h), Some(geo)) = (state, store.geometry()) {
            if !h.is_valid() && !opts.force_invalid {
                return Err(Error::Invalidated);
            }
            chunk_bytes = geo.chunk_bytes();
            store
                .exceptions(None)
                .walk(|e| map.push((e.old_chunk, e.new_chunk)))?;
            map.sort_unstable();
            store.check_origin_size(map.last().map(|e| e.0), size)?;
            if let Some(w) = map.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::DuplicateOldChunk {
                    old_chunk: w[0].0,
                    first_new: w[0].1,
                    second_new: w[1].1,
                });
            }
        }
        Ok(SnapshotReader {
            origin,
            cow: store.into_source(),
            size,
            chunk_bytes,
            map,
            state,
        })
    }

    /// The header state: [`HeaderState::Fresh`] means the snapshot equals the origin.
    pub fn state(&self) -> HeaderState {
        self.state
    }

    /// The number of exceptions (chunks that differ from the origin).
    pub fn exceptions(&self) -> usize {
        self.map.len()
    }

    /// Chunk size in bytes (0 for a fresh store).
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// The exceptions, sorted by origin chunk: `(old_chunk, new_chunk)`.
    pub fn table(&self) -> &[(u64, u64)] {
        &self.map
    }

    /// Snapshot size in bytes (the origin's size).
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the snapshot is empty (a zero-sized origin).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Read `buf.len()` bytes of the snapshot at `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the end; I/O errors of either device.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or(Error::OutOfRange {
                offset,
                len,
                size: self.size,
            })?;
        if self.map.is_empty() {
            return self
                .origin
                .read_exact_at(buf, offset)
                .map_err(io_err("origin", offset));
        }
        let cb = self.chunk_bytes;
        let mut pos = offset;
        let mut out = buf;
        // First exception at or after the chunk of `pos`.
        let mut idx = self.map.partition_point(|&(old, _)| old < pos / cb);
        while pos < end {
            let chunk = pos / cb;
            let within = pos % cb;
            let (n, from_cow) = match self.map.get(idx) {
                Some(&(old, new)) if old == chunk => {
                    idx += 1;
                    ((cb - within).min(end - pos), Some(new * cb + within))
                }
                // An origin run up to the next exception (or the end).
                Some(&(old, _)) => (
                    old.saturating_mul(cb).saturating_sub(pos).min(end - pos),
                    None,
                ),
                None => (end - pos, None),
            };
            let (head, tail) = out.split_at_mut(n as usize);
            match from_cow {
                Some(at) => self
                    .cow
                    .read_exact_at(head, at)
                    .map_err(io_err("COW device", at))?,
                None => self
                    .origin
                    .read_exact_at(head, pos)
                    .map_err(io_err("origin", pos))?,
            }
            out = tail;
            pos += n;
        }
        Ok(())
    }
}

impl<O: ReadAt, C: ReadAt> ReadAt for SnapshotReader<O, C> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_at(buf, offset).map_err(|e| match e {
            Error::OutOfRange { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            other => other.into(),
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    /// The origin's data and the chunks with an exception are data; what is a hole in
    /// the origin and has no exception is a hole.
    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        if offset >= self.size {
            return Ok(None);
        }
        let origin = self
            .origin
            .next_data(offset)?
            .filter(|&(s, _)| s < self.size)
            .map(|(s, e)| (s, e.min(self.size)));
        let cb = self.chunk_bytes;
        // The next run of consecutive exception chunks at or after `offset`.
        let exception = (cb > 0)
            .then(|| {
                let i = self.map.partition_point(|&(old, _)| old < offset / cb);
                let &(first, _) = self.map.get(i)?;
                let mut last = first;
                for &(old, _) in self.map.get(i + 1..).unwrap_or_default() {
                    if old != last + 1 {
                        break;
                    }
                    last = old;
                }
                let start = first.checked_mul(cb)?.max(offset);
                let end = last.checked_add(1)?.checked_mul(cb)?.min(self.size);
                (start < end).then_some((start, end))
            })
            .flatten();
        Ok(match (origin, exception) {
            (Some(o), Some(x)) => Some(if o.0 <= x.0 { o } else { x }),
            (o, x) => o.or(x),
        })
    }
}

/// `Read + Seek` over a [`ReadAt`] source.
#[derive(Debug)]
pub struct ReadAtCursor<R> {
    inner: R,
    pos: u64,
}

impl<R: ReadAt> ReadAtCursor<R> {
    /// A cursor at position 0.
    pub fn new(inner: R) -> Self {
        ReadAtCursor { inner, pos: 0 }
    }

    /// The source.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Give the source back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: ReadAt> Read for ReadAtCursor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.inner.size()?;
        let left = size.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        let Some(dst) = buf.get_mut(..n) else {
            return Ok(0);
        };
        self.inner.read_exact_at(dst, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: ReadAt> Seek for ReadAtCursor<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            SeekFrom::End(d) => (self.inner.size()?, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        let pos = base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative position")
        })?;
        self.pos = pos;
        Ok(pos)
    }
}
