//! The kernel's persistent snapshot exception store (the COW device), read offline.
//!
//! A `snapshot <origin> <cow> P <chunk>` target keeps, on its COW device, a header, then
//! metadata areas of `(old_chunk, new_chunk)` entries interleaved with the data chunks they
//! point at. This module reads that format without the kernel and without root: the header
//! ([`header`]), the exception table ([`exceptions`]), the usage figures of the status line
//! ([`TableEnd::usage`], [`Store::summary`]), the snapshot's content as origin + COW ([`reader`], [`export`]), and an
//! offline rollback of the snapshot into the origin ([`merge`]). [`writer`] builds stores
//! for tests and fixtures.
//!
//! ```
//! use devmapper::cow::{Store, reader::SnapshotReader, writer::StoreWriter};
//! use devmapper::io::ReadAt;
//!
//! // A 4 KiB-chunk store on a 1 MiB COW device: origin chunk 3 was overwritten after
//! // the snapshot was taken, so its old content was saved to the COW.
//! let mut w = StoreWriter::new(8, 1 << 20)?;
//! w.push(3, &[0xaa; 4096])?;
//! let cow = w.to_vec();
//!
//! let store = Store::open(&cow[..])?;
//! assert_eq!(store.usage()?.to_string(), "24/2048 16"); // as `dmsetup status` says
//!
//! let origin = vec![0u8; 64 << 10];
//! let snap = SnapshotReader::open(&origin[..], &cow[..])?;
//! let mut buf = [0u8; 4];
//! snap.read_exact_at(&mut buf, 3 * 4096)?;
//! assert_eq!(buf, [0xaa; 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Transient (`N`) stores keep nothing on disk (no header, no table): they cannot be read
//! offline. A device with an all-zero first word reads as [`HeaderState::Fresh`]: a
//! persistent store that was never loaded (or a wiped one), whose snapshot equals the origin.
#![forbid(unsafe_code)]

pub mod error;
pub mod exceptions;
pub mod export;
pub mod header;
pub mod merge;
pub mod reader;
pub mod region;
mod usage;
pub mod writer;

#[cfg(test)]
mod tests;

pub use error::{CorruptKind, Error, Result};
pub use exceptions::{Entry, Exception, ExceptionIter, TableEnd};
pub use header::{Geometry, Header, HeaderState};

use crate::io::ReadAt;
use crate::targets::{SnapshotStatus, SnapshotUsage};
use error::io_err;
use header::HEADER_LEN;

/// A persistent exception store on a COW device: its header and size, checked.
#[derive(Debug)]
pub struct Store<R> {
    src: R,
    size: u64,
    state: HeaderState,
}

impl<R: ReadAt> Store<R> {
    /// Read and check the header of the store on `src`.
    ///
    /// # Errors
    /// I/O errors; [`Error::TooSmall`] when the device cannot hold the header (or, for a
    /// persistent header, the header chunk and metadata area 0); the header's errors
    /// ([`Error::BadMagic`], [`Error::BadVersion`], [`Error::BadChunkSize`]).
    pub fn open(src: R) -> Result<Store<R>> {
        let size = src.size().map_err(io_err("COW device", 0))?;
        if size < HEADER_LEN as u64 {
            return Err(Error::TooSmall {
                what: "COW device",
                size,
                needed: HEADER_LEN as u64,
            });
        }
        let mut raw = [0u8; HEADER_LEN];
        src.read_exact_at(&mut raw, 0)
            .map_err(io_err("COW device", 0))?;
        let state = Header::parse(&raw)?;
        if let HeaderState::Persistent(h) = state {
            let needed = (u64::from(h.chunk_sectors) << 9) * 2;
            if size < needed {
                return Err(Error::TooSmall {
                    what: "COW device",
                    size,
                    needed,
                });
            }
        }
        Ok(Store { src, size, state })
    }

    /// What chunk 0 holds.
    pub fn state(&self) -> HeaderState {
        self.state
    }

    /// The header, unless the store is fresh.
    pub fn header(&self) -> Option<&Header> {
        match &self.state {
            HeaderState::Persistent(h) => Some(h),
            HeaderState::Fresh => None,
        }
    }

    /// The COW device's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The layout, unless the store is fresh (its chunk size is then unknown).
    pub fn geometry(&self) -> Option<Geometry> {
        let h = self.header()?;
        Geometry::new(h.chunk_sectors, self.size).ok()
    }

    /// The device the store is on.
    pub fn source(&self) -> &R {
        &self.src
    }

    /// Give the device back.
    pub fn into_source(self) -> R {
        self.src
    }

    /// Iterate over the exception table. `origin_bytes`, when known, lets every
    /// `old_chunk` be checked against the origin's size.
    ///
    /// A fresh store yields nothing. The table of an invalidated store (`valid == 0`) is
    /// read anyway: check [`Header::is_valid`] first if that matters.
    pub fn exceptions(&self, origin_bytes: Option<u64>) -> ExceptionIter<'_, R> {
        match self.geometry() {
            Some(geo) => {
                let origin_chunks = origin_bytes.map(|b| geo.origin_chunks(b));
                ExceptionIter::new(&self.src, geo, origin_chunks)
            }
            // Fresh: any layout works for an empty iterator.
            None => ExceptionIter::empty(&self.src, Geometry::unchecked(1, self.size)),
        }
    }

    /// Read the whole table, checking every entry, and return where it ended.
    ///
    /// # Errors
    /// The first I/O error or corrupt entry.
    pub fn scan(&self, origin_bytes: Option<u64>) -> Result<TableEnd> {
        if self.geometry().is_none() {
            return Ok(TableEnd::EMPTY);
        }
        self.exceptions(origin_bytes).finish()
    }

    /// Check an origin of `origin_size` bytes against the largest `old_chunk` of the table
    /// (`max_old`, from a walk without an origin size): a table entry past the origin's
    /// end means the origin is smaller than the one the snapshot was taken of.
    pub(crate) fn check_origin_size(&self, max_old: Option<u64>, origin_size: u64) -> Result<()> {
        let (Some(geo), Some(old_chunk)) = (self.geometry(), max_old) else {
            return Ok(());
        };
        if old_chunk < geo.origin_chunks(origin_size) {
            return Ok(());
        }
        // The snapshot's origin held at least a sector of that chunk.
        let needed = old_chunk
            .checked_mul(geo.chunk_bytes())
            .and_then(|b| b.checked_add(crate::units::SECTOR_SIZE))
            .filter(|&n| n <= i64::MAX as u64);
        let Some(needed) = needed else {
            // No device is that large: the entry itself is corrupt, say which one.
            self.scan(Some(origin_size))?;
            return Err(Error::OriginTooSmall {
                origin_size,
                needed: u64::MAX,
                old_chunk,
            });
        };
        Err(Error::OriginTooSmall {
            origin_size,
            needed,
            old_chunk,
        })
    }

    /// The usage figures the kernel's status line shows for this store once loaded.
    ///
    /// # Errors
    /// [`Error::Fresh`] for a fresh store (its chunk size comes from the table line; use
    /// [`Store::usage_fresh`]), or the errors of [`Store::scan`].
    pub fn usage(&self) -> Result<SnapshotUsage> {
        let geo = self.geometry().ok_or(Error::Fresh)?;
        Ok(self.scan(None)?.usage(&geo))
    }

    /// The usage figures of a fresh store loaded with chunk size `chunk_sectors`:
    /// `2c/total 2c`.
    ///
    /// # Errors
    /// [`Error::BadChunkSize`].
    pub fn usage_fresh(&self, chunk_sectors: u32) -> Result<SnapshotUsage> {
        let geo = Geometry::new(chunk_sectors, self.size)?;
        Ok(TableEnd::EMPTY.usage(&geo))
    }

    /// The kernel's status of this store once loaded as a snapshot:
    /// [`SnapshotStatus::Invalid`] for an invalidated store (its table is not read),
    /// otherwise [`SnapshotStatus::Active`] with [`Store::usage`]. Its `Display` is the
    /// status line's text.
    ///
    /// ```
    /// use devmapper::cow::{Store, writer::StoreWriter};
    /// use devmapper::targets::SnapshotStatus;
    /// let image = StoreWriter::build(8, 1 << 20, &[(3, None)])?;
    /// let status = Store::open(&image)?.kernel_status()?;
    /// assert!(matches!(status, SnapshotStatus::Active(u) if u.data().0 == 8));
    /// assert_eq!(status.to_string(), "24/2048 16");
    /// # Ok::<(), devmapper::cow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Store::usage`].
    pub fn kernel_status(&self) -> Result<SnapshotStatus> {
        match self.header() {
            Some(h) if !h.is_valid() => Ok(SnapshotStatus::Invalid),
            _ => Ok(SnapshotStatus::Active(self.usage()?)),
        }
    }

    /// Everything one scan of the table tells: header, layout, where the table ended,
    /// usage and the kernel's status (what `inspect`-style tools show).
    ///
    /// ```
    /// use devmapper::cow::{Store, writer::StoreWriter};
    /// let image = StoreWriter::build(8, 1 << 20, &[(3, None), (9, None)])?;
    /// let s = Store::open(&image)?.summary()?;
    /// assert_eq!(s.end.exceptions, 2);
    /// assert_eq!(s.usage.map(|u| u.to_string()).as_deref(), Some("32/2048 16"));
    /// assert_eq!(s.kernel_status().map(|st| st.to_string()).as_deref(), Some("32/2048 16"));
    /// # Ok::<(), devmapper::cow::Error>(())
    /// ```
    ///
    /// # Errors
    /// The errors of [`Store::scan`] (a fresh store gives an empty summary, not an error).
    pub fn summary(&self) -> Result<Summary> {
        let end = self.scan(None)?;
        let geometry = self.geometry();
        Ok(Summary {
            size: self.size,
            header: self.header().copied(),
            geometry,
            end,
            usage: geometry.map(|g| end.usage(&g)),
        })
    }
}

/// What one scan of a store tells ([`Store::summary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The COW device's size in bytes.
    pub size: u64,
    /// The header; `None` for a fresh store.
    pub header: Option<Header>,
    /// The layout; `None` for a fresh store.
    pub geometry: Option<Geometry>,
    /// Where the table ended ([`TableEnd::EMPTY`] for a fresh store).
    pub end: TableEnd,
    /// The usage the kernel would report; `None` for a fresh store (its chunk size comes
    /// from the table line).
    pub usage: Option<SnapshotUsage>,
}

impl Summary {
    /// Metadata areas in use (the areas `0..=current_area`).
    pub fn metadata_areas(&self) -> u64 {
        self.end.current_area.saturating_add(1)
    }

    /// The kernel's status, as [`Store::kernel_status`]; `None` for a fresh store.
    pub fn kernel_status(&self) -> Option<SnapshotStatus> {
        match (self.header, self.usage) {
            (Some(h), _) if !h.is_valid() => Some(SnapshotStatus::Invalid),
            (_, Some(u)) => Some(SnapshotStatus::Active(u)),
            _ => None,
        }
    }
}
