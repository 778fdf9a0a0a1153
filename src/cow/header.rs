//! The 16-byte header in chunk 0 and the layout it implies ([`Geometry`]).
//!
//! ```
//! use devmapper::cow::{Geometry, Header, HeaderState};
//! #[rustfmt::skip]
//! let raw = [
//!     0x53, 0x6e, 0x41, 0x70, // magic "SnAp"
//!     0x01, 0x00, 0x00, 0x00, // valid
//!     0x01, 0x00, 0x00, 0x00, // version 1
//!     0x10, 0x00, 0x00, 0x00, // chunk size: 16 sectors
//! ];
//! let HeaderState::Persistent(h) = Header::parse(&raw)? else { unreachable!() };
//! let geo = Geometry::new(h.chunk_sectors, 1 << 30)?;
//! assert_eq!(geo.exceptions_per_area(), 512);
//! assert_eq!(geo.area_chunk(1), Some(514)); // header, area 0, 512 data chunks, area 1
//! assert_eq!(Header::parse(&[0; 16])?, HeaderState::Fresh);
//! # Ok::<(), devmapper::cow::Error>(())
//! ```

use super::error::{Error, Result};
use crate::io::bytes::le_u32;

/// `"SnAp"` read as a little-endian word: the persistent store's magic.
pub const SNAP_MAGIC: u32 = 0x7041_6e53;
/// The only on-disk format version.
pub const DISK_VERSION: u32 = 1;
/// Size of the header proper; the rest of chunk 0 is zero.
pub const HEADER_LEN: usize = 16;
/// Size of one `disk_exception` entry (`le64 old_chunk; le64 new_chunk`).
pub const ENTRY_LEN: u64 = 16;
/// Largest chunk size the kernel accepts, in sectors: the largest power of two not
/// above `INT_MAX >> 9`.
pub const MAX_CHUNK_SECTORS: u32 = 1 << 21;

/// A parsed persistent-store header with a known magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `valid` word: 0 once the kernel invalidated the snapshot (overflow, I/O error).
    pub valid: u32,
    /// Format version (always [`DISK_VERSION`] once parsed).
    pub version: u32,
    /// Chunk size in 512-byte sectors (a checked power of two).
    pub chunk_sectors: u32,
}

/// What chunk 0 holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// Magic 0: a store the kernel has not initialised yet (the kernel would write a
    /// header and an empty area 0 at load), or a wiped device. The snapshot equals the origin.
    Fresh,
    /// A `SnAp` header.
    Persistent(Header),
}

impl Header {
    /// A valid version-1 header with the given chunk size (not checked).
    pub const fn new(chunk_sectors: u32) -> Header {
        Header {
            valid: 1,
            version: DISK_VERSION,
            chunk_sectors,
        }
    }

    /// Whether the kernel considers the snapshot valid.
    pub const fn is_valid(&self) -> bool {
        self.valid != 0
    }

    /// Parse the first 16 bytes of chunk 0.
    ///
    /// # Errors
    /// [`Error::BadMagic`], [`Error::BadVersion`], [`Error::BadChunkSize`].
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<HeaderState> {
        let word = |at: usize| le_u32(bytes, at);
        let magic = word(0)?;
        if magic == 0 {
            return Ok(HeaderState::Fresh);
        }
        if magic != SNAP_MAGIC {
            return Err(Error::BadMagic { magic });
        }
        let header = Header {
            valid: word(4)?,
            version: word(8)?,
            chunk_sectors: word(12)?,
        };
        if header.version != DISK_VERSION {
            return Err(Error::BadVersion {
                version: header.version,
            });
        }
        check_chunk_sectors(header.chunk_sectors)?;
        Ok(HeaderState::Persistent(header))
    }

    /// The 16 on-disk bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&SNAP_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.valid.to_le_bytes());
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.chunk_sectors.to_le_bytes());
        out
    }
}

/// Check a chunk size as the kernel does: a power of two, at least one sector, at most
/// [`MAX_CHUNK_SECTORS`].
///
/// # Errors
/// [`Error::BadChunkSize`] with the reason.
pub fn check_chunk_sectors(chunk_sectors: u32) -> Result<()> {
    let reason = if chunk_sectors == 0 {
        "zero"
    } else if !chunk_sectors.is_power_of_two() {
        "not a power of two"
    } else if chunk_sectors > MAX_CHUNK_SECTORS {
        "larger than the kernel's limit of 2^21 sectors"
    } else {
        return Ok(());
    };
    Err(Error::BadChunkSize {
        chunk_sectors,
        reason,
    })
}

/// The layout of a persistent store: where metadata areas and data chunks are.
///
/// ```text
/// chunk:  0        1        2 ..= 1+epa      1+stride   ...
///         [header] [area 0] [epa data chunks] [area 1]  [epa data chunks] ...
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    chunk_sectors: u32,
    cow_bytes: u64,
}

impl Geometry {
    /// The layout for a chunk size (checked with [`check_chunk_sectors`]) on a COW device
    /// of `cow_bytes`.
    ///
    /// # Errors
    /// [`Error::BadChunkSize`].
    pub fn new(chunk_sectors: u32, cow_bytes: u64) -> Result<Geometry> {
        check_chunk_sectors(chunk_sectors)?;
        Ok(Geometry {
            chunk_sectors,
            cow_bytes,
        })
    }

    /// A layout whose chunk size the caller has checked.
    pub(crate) const fn unchecked(chunk_sectors: u32, cow_bytes: u64) -> Geometry {
        Geometry {
            chunk_sectors,
            cow_bytes,
        }
    }

    /// Chunk size in sectors.
    pub const fn chunk_sectors(&self) -> u32 {
        self.chunk_sectors
    }

    /// Chunk size in bytes.
    pub const fn chunk_bytes(&self) -> u64 {
        (self.chunk_sectors as u64) << 9
    }

    /// COW device size in bytes.
    pub const fn cow_bytes(&self) -> u64 {
        self.cow_bytes
    }

    /// COW device size in sectors (what the kernel reports as total).
    pub const fn cow_sectors(&self) -> u64 {
        self.cow_bytes >> 9
    }

    /// Whole chunks on the COW device; a trailing partial chunk is never used.
    pub const fn cow_chunks(&self) -> u64 {
        self.cow_sectors() / self.chunk_sectors as u64
    }

    /// Exceptions per metadata area (`chunk bytes / 16`).
    pub const fn exceptions_per_area(&self) -> u32 {
        // chunk_bytes <= 2^30, so this is <= 2^26.
        (self.chunk_bytes() / ENTRY_LEN) as u32
    }

    /// Distance in chunks between two metadata areas (`epa + 1`).
    pub const fn stride(&self) -> u64 {
        self.exceptions_per_area() as u64 + 1
    }

    /// The chunk holding metadata area `area`, or `None` on overflow.
    pub const fn area_chunk(&self, area: u64) -> Option<u64> {
        match area.checked_mul(self.stride()) {
            Some(x) => x.checked_add(1),
            None => None,
        }
    }

    /// Whether chunk `chunk` is the header or a metadata area.
    pub const fn is_metadata_chunk(&self, chunk: u64) -> bool {
        chunk == 0 || chunk % self.stride() == 1
    }

    /// Whole chunks of an origin of `origin_bytes` (a trailing partial chunk counts).
    pub const fn origin_chunks(&self, origin_bytes: u64) -> u64 {
        origin_bytes.div_ceil(self.chunk_bytes())
    }

    /// The kernel's `skip_metadata`: step over a metadata slot.
    pub(crate) const fn skip_metadata(&self, next_free: u64) -> u64 {
        if next_free % self.stride() == 1 {
            next_free + 1
        } else {
            next_free
        }
    }
}
