//! Streaming iteration over the exception table, area by area, with the kernel's end rule.
//!
//! ```
//! use devmapper::cow::{Store, writer::StoreWriter};
//! let image = StoreWriter::build(8, 1 << 20, &[(40, None), (41, None)])?;
//! let store = Store::open(&image)?;
//! let mut it = store.exceptions(None);
//! for entry in it.by_ref() {
//!     let e = entry?;
//!     println!("area {} #{}: origin chunk {} -> COW chunk {}",
//!              e.area, e.index, e.exception.old_chunk, e.exception.new_chunk);
//! }
//! assert_eq!(it.end().map(|end| end.next_free), Some(4));
//! # Ok::<(), devmapper::cow::Error>(())
//! ```
//!
//! End rule (the kernel's `read_exceptions`/`insert_exceptions`): read area 0, 1, 2, ...;
//! within an area stop at the first entry whose `new_chunk` is 0. Go on to the next area
//! only if every entry of this one was used. A next area that lies past the end of the COW
//! device ends the table too (the kernel would fail to read it; such a store cannot be made
//! by a kernel that kept it valid).

use std::collections::HashMap;

use super::error::{CorruptKind, Error, Result, io_err};
use super::header::{ENTRY_LEN, Geometry};
use crate::io::ReadAt;
use crate::io::bytes::{OutOfBounds, le_u64};

/// [`ENTRY_LEN`] as a `usize`.
const ENTRY: usize = ENTRY_LEN as usize;

/// Entries read per I/O: 64 KiB (or one area when smaller).
const BLOCK_ENTRIES: u32 = 4096;

/// One exception: origin chunk `old_chunk` is stored in COW chunk `new_chunk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exception {
    /// Chunk index on the origin.
    pub old_chunk: u64,
    /// Absolute chunk index on the COW device.
    pub new_chunk: u64,
}

/// An exception and where its entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Metadata area index.
    pub area: u64,
    /// Index within the area.
    pub index: u32,
    /// The exception.
    pub exception: Exception,
}

/// Where the table ended: what the kernel's in-memory state is after loading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEnd {
    /// The area the kernel would append to next (`ps->current_area`): the area holding
    /// the end marker, or, when a full area's successor lies past the device end, that
    /// (nonexistent) successor.
    pub current_area: u64,
    /// Entries used in that area (`ps->current_committed`).
    pub committed: u32,
    /// Exceptions in the table.
    pub exceptions: u64,
    /// First chunk the kernel would allocate next (`ps->next_free`).
    pub next_free: u64,
}

impl TableEnd {
    /// The table of a store with no exceptions (also what the kernel sets up for a fresh one).
    pub const EMPTY: TableEnd = TableEnd {
        current_area: 0,
        committed: 0,
        exceptions: 0,
        next_free: 2,
    };
}

/// A set of COW chunks, one bit each, whose memory is bounded by the chunks inserted, not
/// by the device size a header claims: a dense bitmap from chunk 0 that grows only while
/// the chunks inserted fill it (a kernel-made store allocates chunks in order, so every
/// chunk lands there), and pages of [`PAGE_BITS`] bits allocated on first use for chunks
/// beyond it (one exception near the end of a 15 TiB store costs one page, not 500 MB).
#[derive(Debug, Default)]
pub(crate) struct ChunkSet {
    words: Vec<u64>,
    /// Chunks beyond the dense bitmap: page number -> its bits.
    pages: HashMap<u64, Box<[u64; PAGE_WORDS]>>,
    /// Words the device's chunk count needs.
    cap_words: usize,
    inserted: u64,
}

/// Words per page of [`ChunkSet`]'s sparse part (512 bytes).
const PAGE_WORDS: usize = 64;
/// Chunks per page of [`ChunkSet`]'s sparse part.
const PAGE_BITS: u64 = PAGE_WORDS as u64 * 64;
/// Words of dense bitmap allowed before any chunk was inserted (32 KiB, 262,144 chunks);
/// beyond that, one word per 16 chunks inserted (at most half a byte per chunk).
const DENSE_FREE_WORDS: u64 = 4096;

impl ChunkSet {
    pub(crate) fn new(chunks: u64) -> ChunkSet {
        ChunkSet {
            words: Vec::new(),
            pages: HashMap::new(),
            cap_words: usize::try_from(chunks.div_ceil(64)).unwrap_or(usize::MAX),
            inserted: 0,
        }
    }

    /// Words the dense bitmap may hold now.
    fn dense_limit(&self) -> usize {
        let allowed = DENSE_FREE_WORDS.saturating_add(self.inserted / 16);
        usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(self.cap_words)
    }

    /// Insert `chunk` (which must be below the capacity); false if it was already present
    /// (or is beyond the capacity).
    #[inline]
    pub(crate) fn insert(&mut self, chunk: u64) -> bool {
        let Ok(w) = usize::try_from(chunk / 64) else {
            return false;
        };
        if w >= self.cap_words {
            return false;
        }
        if w >= self.words.len() && w < self.dense_limit() {
            let want = (w + 1)
                .max(self.words.len().saturating_mul(2))
                .min(self.dense_limit());
            self.words.resize(want, 0);
        }
        let fresh = match self.words.get_mut(w) {
            Some(word) => {
                let bit = 1u64 << (chunk % 64);
                // A chunk put in a page before the bitmap grew over it is still there.
                if *word & bit != 0 || (!self.pages.is_empty() && in_pages(&self.pages, chunk)) {
                    false
                } else {
                    *word |= bit;
                    true
                }
            }
            None => {
                let page = self
                    .pages
                    .entry(chunk / PAGE_BITS)
                    .or_insert_with(|| Box::new([0; PAGE_WORDS]));
                let at = chunk % PAGE_BITS;
                let bit = 1u64 << (at % 64);
                match page.get_mut((at / 64) as usize) {
                    Some(word) if *word & bit == 0 => {
                        *word |= bit;
                        true
                    }
                    _ => false,
                }
            }
        };
        self.inserted += u64::from(fresh);
        fresh
    }

    /// Bytes of memory the set holds (bitmap and pages, without the map's own table).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8 + self.pages.len() * PAGE_WORDS * 8
    }
}

/// Whether `chunk` is in the sparse pages of a [`ChunkSet`].
#[cold]
fn in_pages(pages: &HashMap<u64, Box<[u64; PAGE_WORDS]>>, chunk: u64) -> bool {
    let at = chunk % PAGE_BITS;
    pages
        .get(&(chunk / PAGE_BITS))
        .and_then(|p| p.get((at / 64) as usize))
        .is_some_and(|word| word & (1u64 << (at % 64)) != 0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Done,
    Failed,
}

/// Iterator over the entries of the exception table: `Item = Result<Entry>`. It fuses
/// after the first error; once it returned `None`, [`ExceptionIter::end`] tells where
/// the table ended.
///
/// Each entry is checked: `new_chunk` inside the COW device, not a metadata chunk, not
/// used before; `old_chunk` inside the origin when its size was given.
#[derive(Debug)]
pub struct ExceptionIter<'a, R: ?Sized> {
    src: &'a R,
    geo: Geometry,
    /// `geo.cow_chunks()`, kept to save a division per entry.
    cow_chunks: u64,
    origin_chunks: Option<u64>,
    area: u64,
    area_offset: u64,
    index: u32,
    buf: Vec<u8>,
    buf_first: u32,
    buf_entries: u32,
    seen: ChunkSet,
    /// A run of data chunks between two metadata areas known to hold no metadata chunk:
    /// most entries fall in the last run seen, which saves a division per entry.
    data_run: (u64, u64),
    max_new: u64,
    count: u64,
    state: State,
    end: Option<TableEnd>,
}

impl<'a, R: ReadAt + ?Sized> ExceptionIter<'a, R> {
    /// Iterate over the table of a store with layout `geo` on `src` (its header already
    /// checked). The caller guarantees `src` holds at least two chunks (header + area 0);
    /// [`super::Store::open`] checks that.
    pub(crate) fn new(src: &'a R, geo: Geometry, origin_chunks: Option<u64>) -> Self {
        let area_offset = geo.chunk_bytes(); // area 0 is chunk 1
        ExceptionIter {
            src,
            geo,
            cow_chunks: geo.cow_chunks(),
            origin_chunks,
            area: 0,
            area_offset,
            index: 0,
            buf: Vec::new(),
            buf_first: 0,
            buf_entries: 0,
            seen: ChunkSet::new(geo.cow_chunks()),
            data_run: (0, 0),
            max_new: 0,
            count: 0,
            state: State::Running,
            end: None,
        }
    }

    /// An iterator that yields nothing and ends as an empty table (fresh stores).
    pub(crate) fn empty(src: &'a R, geo: Geometry) -> Self {
        let mut it = Self::new(src, geo, None);
        it.state = State::Done;
        it.end = Some(TableEnd::EMPTY);
        it
    }

    /// Where the table ended; `None` until the iterator returned `None`, and after an error.
    pub fn end(&self) -> Option<TableEnd> {
        self.end
    }

    /// The layout being read.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Run to the end, checking every entry, and return where the table ended.
    ///
    /// # Errors
    /// The first error an entry gives.
    pub fn finish(self) -> Result<TableEnd> {
        self.walk(|_| {})
    }

    /// Run to the end, calling `f` with every exception once it passed its checks, and
    /// return where the table ended. Faster than the `Iterator` (a buffer at a time).
    ///
    /// # Errors
    /// The first error an entry gives (`f` has seen the entries before it).
    pub fn walk(mut self, mut f: impl FnMut(Exception)) -> Result<TableEnd> {
        // The same walk as `next()`, a buffer of entries at a time.
        while self.state == State::Running {
            if !self.refill()? {
                break;
            }
            let from = (self.index - self.buf_first) as usize * ENTRY_LEN as usize;
            let buf = std::mem::take(&mut self.buf);
            let mut result = Ok(());
            let mut max_new = self.max_new;
            let mut used = 0u32;
            let (entries, _) = buf.get(from..).unwrap_or_default().as_chunks::<ENTRY>();
            for e in entries {
                let (old_chunk, new_chunk) = match parse_entry(e) {
                    Ok(pair) => pair,
                    Err(err) => {
                        result = Err(err.into());
                        break;
                    }
                };
                if new_chunk == 0 {
                    self.index += used;
                    self.count += u64::from(used);
                    self.max_new = max_new;
                    self.stop(self.area, self.index);
                    break;
                }
                if let Some(kind) = self.check(old_chunk, new_chunk) {
                    result = Err(self.corrupt(self.index + used, kind));
                    break;
                }
                max_new = max_new.max(new_chunk);
                used += 1;
                f(Exception {
                    old_chunk,
                    new_chunk,
                });
            }
            self.buf = buf;
            result?;
            if self.state == State::Running {
                self.index += used;
                self.count += u64::from(used);
                self.max_new = max_new;
            }
        }
        self.end.ok_or(Error::Fresh)
    }

    fn stop(&mut self, current_area: u64, committed: u32) {
        self.state = State::Done;
        let next_free = self
            .geo
            .skip_metadata(self.max_new.saturating_add(1).max(2));
        self.end = Some(TableEnd {
            current_area,
            committed,
            exceptions: self.count,
            next_free,
        });
    }

    /// Whether `chunk` (not 0, inside the device) is a metadata chunk; if not, remember
    /// the run of data chunks it lies in.
    fn is_metadata(&mut self, chunk: u64) -> bool {
        let stride = self.geo.stride();
        let into = chunk % stride;
        if into == 1 {
            return true;
        }
        // chunk is in (area_chunk(k), area_chunk(k + 1)) with area_chunk(k) = chunk - into + 1
        // (or the run before area 0 ends at chunk 1, which chunk 0 never reaches here).
        let start = (chunk - into).saturating_add(2);
        let start = if into == 0 { chunk - stride + 2 } else { start };
        self.data_run = (start, start.saturating_add(stride - 1));
        false
    }

    /// The checks of one entry (whose `new_chunk` is not 0); marks `new_chunk` used.
    #[inline]
    fn check(&mut self, old_chunk: u64, new_chunk: u64) -> Option<CorruptKind> {
        if new_chunk >= self.cow_chunks {
            Some(CorruptKind::NewChunkBeyondCow {
                new_chunk,
                cow_chunks: self.cow_chunks,
            })
        } else if !(self.data_run.0 <= new_chunk && new_chunk < self.data_run.1)
            && self.is_metadata(new_chunk)
        {
            Some(CorruptKind::NewChunkIsMetadata { new_chunk })
        } else if let Some(origin_chunks) = self.origin_chunks
            && old_chunk >= origin_chunks
        {
            Some(CorruptKind::OldChunkBeyondOrigin {
                old_chunk,
                origin_chunks,
            })
        } else if !self.seen.insert(new_chunk) {
            Some(CorruptKind::NewChunkReused { new_chunk })
        } else {
            None
        }
    }

    /// The error for entry `index` of the current area; fuses the iterator.
    fn corrupt(&mut self, index: u32, kind: CorruptKind) -> Error {
        self.state = State::Failed;
        Error::Corrupt {
            area: self.area,
            entry: index,
            offset: self.area_offset + u64::from(index) * ENTRY_LEN,
            kind,
        }
    }

    /// Make the entry at `self.index` available in the buffer, moving on to the next area
    /// after a full one. `Ok(false)`: the table ended (past the device end).
    fn refill(&mut self) -> Result<bool> {
        let epa = self.geo.exceptions_per_area();
        if self.index == epa {
            // The area was full: go on to the next one, unless it lies past the device end.
            let next = self.area.saturating_add(1);
            match self.geo.area_chunk(next) {
                Some(c) if c < self.cow_chunks => {
                    self.area = next;
                    self.area_offset = c * self.geo.chunk_bytes(); // c < cow_chunks: no overflow
                    self.index = 0;
                    self.buf_entries = 0;
                }
                _ => {
                    self.stop(next, 0);
                    return Ok(false);
                }
            }
        }
        if self.index >= self.buf_first.saturating_add(self.buf_entries) || self.buf_entries == 0 {
            let n = (epa - self.index).min(BLOCK_ENTRIES);
            let len = n as usize * ENTRY_LEN as usize;
            let offset = self.area_offset + u64::from(self.index) * ENTRY_LEN;
            self.buf.resize(len, 0);
            if let Err(e) = self.src.read_exact_at(&mut self.buf, offset) {
                self.state = State::Failed;
                return Err(io_err("COW device", offset)(e));
            }
            self.buf_first = self.index;
            self.buf_entries = n;
        }
        Ok(true)
    }

    fn step(&mut self) -> Option<Result<Entry>> {
        match self.refill() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let at = (self.index - self.buf_first) as usize * ENTRY_LEN as usize;
        let Some(e) = self.buf.get(at..at + ENTRY_LEN as usize) else {
            self.state = State::Failed;
            return None;
        };
        let (old_chunk, new_chunk) = match parse_entry(e) {
            Ok(pair) => pair,
            Err(err) => {
                self.state = State::Failed;
                return Some(Err(err.into()));
            }
        };
        if new_chunk == 0 {
            self.stop(self.area, self.index);
            return None;
        }
        if let Some(kind) = self.check(old_chunk, new_chunk) {
            return Some(Err(self.corrupt(self.index, kind)));
        }
        let entry = Entry {
            area: self.area,
            index: self.index,
            exception: Exception {
                old_chunk,
                new_chunk,
            },
        };
        self.max_new = self.max_new.max(new_chunk);
        self.count += 1;
        self.index += 1;
        Some(Ok(entry))
    }
}

/// `(old_chunk, new_chunk)` of a 16-byte entry.
#[inline]
fn parse_entry(e: &[u8]) -> Result<(u64, u64), OutOfBounds> {
    Ok((le_u64(e, 0)?, le_u64(e, 8)?))
}

impl<R: ReadAt + ?Sized> Iterator for ExceptionIter<'_, R> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        match self.state {
            State::Running => self.step(),
            State::Done | State::Failed => None,
        }
    }
}
