//! Build persistent stores: for tests, fixtures and benchmarks.
//!
//! [`StoreWriter`] lays out a store as the kernel would: the header in chunk 0, area 0 in
//! chunk 1, data chunks allocated from chunk 2 on with metadata slots skipped, entries
//! appended area after area, and the area after a full one left zeroed. The result is a
//! [`SparseImage`]: only written chunks take memory, the rest reads as zeros, so a store
//! describing terabytes of COW can be built in memory.
//!
//! ```
//! use devmapper::cow::{Store, writer::StoreWriter};
//! let mut w = StoreWriter::new(8, 4 << 20)?; // 4 KiB chunks, 4 MiB COW
//! assert_eq!(w.push(10, b"saved origin data")?, 2); // first data chunk is 2
//! assert_eq!(w.push(11, &[])?, 3);
//! let image = w.finish();
//! let store = Store::open(&image)?;
//! assert_eq!(store.scan(None)?.exceptions, 2);
//! # Ok::<(), devmapper::cow::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::error::{Error, Result};
use super::exceptions::Exception;
use super::header::{Geometry, Header};
use crate::io::ReadAt;

/// An in-memory device image stored as a map of non-zero pages; the rest reads as zeros.
#[derive(Clone, Debug)]
pub struct SparseImage {
    size: u64,
    page: u64,
    pages: BTreeMap<u64, Vec<u8>>,
}

impl SparseImage {
    /// An all-zero image of `size` bytes stored in pages of `page` bytes (at least 1).
    pub fn new(size: u64, page: u64) -> SparseImage {
        SparseImage {
            size,
            page: page.max(1),
            pages: BTreeMap::new(),
        }
    }

    /// Write `data` at `offset`.
    ///
    /// # Errors
    /// [`Error::Writer`] if the write goes past the end of the image.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or(Error::Writer("write past the end of the image"))?;
        let mut pos = offset;
        let mut rest = data;
        while pos < end {
            let index = pos / self.page;
            let within = (pos % self.page) as usize;
            let n = rest.len().min(self.page as usize - within);
            let page_len = self.page_len(index);
            let page = self.pages.entry(index).or_insert_with(|| vec![0; page_len]);
            let (head, tail) = rest.split_at(n);
            if let Some(dst) = page.get_mut(within..within + n) {
                dst.copy_from_slice(head);
            }
            rest = tail;
            pos += n as u64;
        }
        Ok(())
    }

    fn page_len(&self, index: u64) -> usize {
        let start = index * self.page;
        (self.size - start).min(self.page) as usize
    }

    /// The stored (possibly non-zero) pages: `(byte offset, bytes)`, in order.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.pages
            .iter()
            .map(|(&i, p)| (i * self.page, p.as_slice()))
    }

    /// The whole image as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size as usize];
        for (off, bytes) in self.pages() {
            let start = off as usize;
            if let Some(dst) = out.get_mut(start..start + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        out
    }

    /// Write the image into a file: set its length, then write the stored pages (the file
    /// stays sparse elsewhere).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_to(&self, file: &File) -> io::Result<()> {
        file.set_len(0)?;
        file.set_len(self.size)?;
        for (off, bytes) in self.pages() {
            file.write_all_at(bytes, off)?;
        }
        Ok(())
    }
}

impl ReadAt for SparseImage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut pos = offset;
        let mut out = buf;
        while pos < end {
            let index = pos / self.page;
            let within = (pos % self.page) as usize;
            let n = out.len().min(self.page as usize - within);
            let (head, tail) = out.split_at_mut(n);
            match self
                .pages
                .get(&index)
                .and_then(|p| p.get(within..within + n))
            {
                Some(src) => head.copy_from_slice(src),
                None => head.fill(0),
            }
            out = tail;
            pos += n as u64;
        }
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    /// Stored pages are data (runs of consecutive pages as one range), the rest holes.
    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        if offset >= self.size {
            return Ok(None);
        }
        let mut pages = self.pages.range(offset / self.page..).map(|(&i, _)| i);
        let Some(first) = pages.next() else {
            return Ok(None);
        };
        let mut last = first;
        for i in pages {
            if i != last + 1 {
                break;
            }
            last = i;
        }
        let start = (first * self.page).max(offset);
        let end = (last + 1).saturating_mul(self.page).min(self.size);
        Ok((start < end).then_some((start, end)))
    }
}

/// Builds a persistent exception store the way the kernel fills one.
#[derive(Debug)]
pub struct StoreWriter {
    geo: Geometry,
    header: Header,
    next_free: u64,
    entries: Vec<Exception>,
    image: SparseImage,
}

impl StoreWriter {
    /// A valid, empty store with `chunk_sectors` chunks on a COW device of `cow_bytes`.
    ///
    /// # Errors
    /// [`Error::BadChunkSize`]; [`Error::TooSmall`] below two chunks.
    pub fn new(chunk_sectors: u32, cow_bytes: u64) -> Result<StoreWriter> {
        let geo = Geometry::new(chunk_sectors, cow_bytes)?;
        if geo.cow_chunks() < 2 {
            return Err(Error::TooSmall {
                what: "COW device",
                size: cow_bytes,
                needed: 2 * geo.chunk_bytes(),
            });
        }
        Ok(StoreWriter {
            geo,
            header: Header::new(chunk_sectors),
            next_free: 2,
            entries: Vec::new(),
            image: SparseImage::new(cow_bytes, geo.chunk_bytes().min(1 << 16)),
        })
    }

    /// Build a store from a list of `(old chunk, new chunk)` exceptions in table order;
    /// `None` allocates the next free chunk as the kernel would. Data chunks hold zeros.
    ///
    /// # Errors
    /// As [`StoreWriter::new`], [`StoreWriter::push`] and [`StoreWriter::push_at`].
    pub fn build(
        chunk_sectors: u32,
        cow_bytes: u64,
        exceptions: &[(u64, Option<u64>)],
    ) -> Result<SparseImage> {
        let mut w = StoreWriter::new(chunk_sectors, cow_bytes)?;
        for &(old, new) in exceptions {
            match new {
                Some(new) => w.push_at(old, new, &[])?,
                None => w.push(old, &[]).map(drop)?,
            }
        }
        Ok(w.finish())
    }

    /// The layout.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Mark the store invalidated (`valid = 0`), as the kernel does on overflow.
    pub fn set_invalid(&mut self) -> &mut Self {
        self.header.valid = 0;
        self
    }

    /// The chunk the next [`StoreWriter::push`] will use.
    pub fn next_free(&self) -> u64 {
        self.next_free
    }

    /// Append an exception for origin chunk `old` in the next free chunk, holding `data`
    /// (at most one chunk; the rest of the chunk is zero). Returns the chunk used.
    ///
    /// # Errors
    /// [`Error::Writer`] when the COW is full (the kernel's ENOSPC rule) or `data` is
    /// longer than a chunk.
    pub fn push(&mut self, old: u64, data: &[u8]) -> Result<u64> {
        let c = u64::from(self.geo.chunk_sectors());
        let needed = self.next_free.checked_add(1).and_then(|n| n.checked_mul(c));
        if needed.is_none_or(|n| n > self.geo.cow_sectors()) {
            return Err(Error::Writer("the COW device is full"));
        }
        let new = self.next_free;
        self.push_at(old, new, data)?;
        Ok(new)
    }

    /// Append an exception with an explicit COW chunk (no checks: corrupt stores for tests
    /// can be made this way). Later [`StoreWriter::push`] calls allocate after it.
    ///
    /// # Errors
    /// [`Error::Writer`] if `data` is longer than a chunk or lands outside the device.
    pub fn push_at(&mut self, old: u64, new: u64, data: &[u8]) -> Result<()> {
        if data.len() as u64 > self.geo.chunk_bytes() {
            return Err(Error::Writer("data is longer than a chunk"));
        }
        if !data.is_empty() {
            let off = new
                .checked_mul(self.geo.chunk_bytes())
                .ok_or(Error::Writer("new chunk out of range"))?;
            self.image.write(off, data)?;
        }
        self.entries.push(Exception {
            old_chunk: old,
            new_chunk: new,
        });
        if new >= self.next_free {
            self.next_free = self.geo.skip_metadata(new.saturating_add(1));
        }
        Ok(())
    }

    /// Write the header and the metadata areas and return the image.
    pub fn finish(mut self) -> SparseImage {
        let _ = self.image.write(0, &self.header.to_bytes());
        let epa = u64::from(self.geo.exceptions_per_area());
        let chunk_bytes = self.geo.chunk_bytes();
        let mut area_buf = Vec::new();
        for (area, entries) in self.entries.chunks(epa as usize).enumerate() {
            let Some(off) = self
                .geo
                .area_chunk(area as u64)
                .and_then(|c| c.checked_mul(chunk_bytes))
            else {
                break;
            };
            area_buf.clear();
            for e in entries {
                area_buf.extend_from_slice(&e.old_chunk.to_le_bytes());
                area_buf.extend_from_slice(&e.new_chunk.to_le_bytes());
            }
            // Areas past the device end are dropped, as the kernel could not write them.
            let _ = self.image.write(off, &area_buf);
        }
        self.image
    }

    /// [`StoreWriter::finish`] into one buffer.
    pub fn to_vec(self) -> Vec<u8> {
        self.finish().to_vec()
    }

    /// [`StoreWriter::finish`] into a file (kept sparse).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_to(self, file: &File) -> io::Result<()> {
        self.finish().write_to(file)
    }
}
