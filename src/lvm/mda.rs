//! Metadata areas: the 512-byte `mda_header` and the circular text buffer behind it.
//!
//! Slot 0 of the header's `raw_locns` is the committed copy of the VG metadata text; it may
//! wrap around the end of the area, continuing right after the header. Its CRC covers the
//! whole stored size, trailing NUL included. Slot 1 (precommitted) is for lvm2's own
//! suspend/resume and is not read here. An area whose slot 0 carries `RAW_LOCN_IGNORED`
//! (`pvchange --metadataignore`) may hold stale text and is skipped.
//!
//! ```
//! use devmapper::lvm::mda;
//! let zeros = [0u8; 512];
//! // A zeroed header fails its checksum.
//! assert!(mda::parse_mda_header(&zeros, 4096).is_err());
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::crc::{INITIAL_CRC, calc_crc};
use super::error::{Error, MdaErrorKind, Result, io_err};
use super::label::DiskLocn;
use crate::io::ReadAt;
use crate::io::bytes::{le_u32, le_u64};

/// Size of `struct mda_header`.
pub const MDA_HEADER_SIZE: usize = 512;
/// `FMTT_MAGIC`, `" LVM2 x[5A%r0N*>"`.
pub const FMTT_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// `FMTT_VERSION`.
pub const FMTT_VERSION: u32 = 1;
/// `RAW_LOCN_IGNORED`: the area is ignored (`pvchange --metadataignore y`).
pub const RAW_LOCN_IGNORED: u32 = 0x1;
/// The largest metadata text this reader accepts (lvm2 allows up to 4 GiB; real VGs are
/// far smaller, and the cap keeps hostile headers from forcing huge allocations).
pub const MAX_METADATA_TEXT: u64 = 64 << 20;
/// Size of one `raw_locn`.
const RAW_LOCN_SIZE: usize = 24;

/// `struct raw_locn`: where one copy of the text is in the area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawLocn {
    /// Offset from the start of the area (0 = no text).
    pub offset: u64,
    /// Size in bytes, trailing NUL included.
    pub size: u64,
    /// CRC of the text.
    pub checksum: u32,
    /// `RAW_LOCN_*` flags.
    pub flags: u32,
}

impl RawLocn {
    /// Is `RAW_LOCN_IGNORED` set?
    pub fn is_ignored(&self) -> bool {
        self.flags & RAW_LOCN_IGNORED != 0
    }
}

/// A decoded `struct mda_header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdaHeader {
    /// `checksum_xl`, already verified.
    pub checksum: u32,
    /// `version` (1).
    pub version: u32,
    /// `start`: absolute offset of the header.
    pub start: u64,
    /// `size`: the whole area in bytes, header included.
    pub size: u64,
    /// The `raw_locns` up to the terminator: `[0]` committed, `[1]` precommitted (if any).
    pub raw_locns: Vec<RawLocn>,
}

impl MdaHeader {
    /// The committed slot, if any.
    pub fn committed(&self) -> Option<&RawLocn> {
        self.raw_locns.first()
    }
}

/// What a metadata area holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MdaContent {
    /// The committed text.
    Text(MetadataText),
    /// The area is flagged ignored.
    Ignored,
    /// No VG metadata (an orphan PV).
    Empty,
}

/// One committed copy of the metadata text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataText {
    /// The slot it was read through.
    pub locn: RawLocn,
    /// Whether the copy wraps around the end of the circular buffer.
    pub wrapped: bool,
    /// The text up to (not including) its first NUL; shared between the PVs of a scan
    /// that hold the same copy (`scan`).
    pub text: Arc<[u8]>,
}

/// Decode and check a header read from `expected_start` (the PV header's area offset).
pub fn parse_mda_header(buf: &[u8], expected_start: u64) -> Result<MdaHeader> {
    let bad = |kind: MdaErrorKind| Error::Mda {
        offset: expected_start,
        kind,
    };
    let hdr = buf
        .get(..MDA_HEADER_SIZE)
        .ok_or_else(|| bad(MdaErrorKind::ShortHeader))?;
    let short = |_: crate::io::bytes::OutOfBounds| bad(MdaErrorKind::ShortHeader);
    let checksum = le_u32(hdr, 0).map_err(short)?;
    let computed = calc_crc(INITIAL_CRC, hdr.get(4..).unwrap_or_default());
    if computed != checksum {
        return Err(bad(MdaErrorKind::HeaderChecksum {
            stored: checksum,
            computed,
        }));
    }
    if hdr.get(4..20) != Some(&FMTT_MAGIC[..]) {
        return Err(bad(MdaErrorKind::WrongMagic));
    }
    let version = le_u32(hdr, 20).map_err(short)?;
    if version != FMTT_VERSION {
        return Err(bad(MdaErrorKind::UnsupportedVersion { version }));
    }
    let start = le_u64(hdr, 24).map_err(short)?;
    if start != expected_start {
        return Err(bad(MdaErrorKind::StartMismatch { start }));
    }
    let size = le_u64(hdr, 32).map_err(short)?;
    if size < MDA_HEADER_SIZE as u64 {
        return Err(bad(MdaErrorKind::AreaTooSmall { size }));
    }
    let mut raw_locns = Vec::new();
    let mut at = 40;
    while at + RAW_LOCN_SIZE <= MDA_HEADER_SIZE {
        let offset = le_u64(hdr, at).map_err(short)?;
        if offset == 0 && !raw_locns.is_empty() {
            break;
        }
        let locn = RawLocn {
            offset,
            size: le_u64(hdr, at + 8).map_err(short)?,
            checksum: le_u32(hdr, at + 16).map_err(short)?,
            flags: le_u32(hdr, at + 20).map_err(short)?,
        };
        // Slot 0 is kept even when empty: its flags still say "ignored".
        raw_locns.push(locn);
        if offset == 0 {
            break;
        }
        at += RAW_LOCN_SIZE;
    }
    Ok(MdaHeader {
        checksum,
        version,
        start,
        size,
        raw_locns,
    })
}

/// Read and check the header of the area at `area`.
pub fn read_mda_header<R: ReadAt + ?Sized>(dev: &R, area: DiskLocn) -> Result<MdaHeader> {
    let mut buf = [0u8; MDA_HEADER_SIZE];
    dev.read_exact_at(&mut buf, area.offset)
        .map_err(io_err("metadata area header", area.offset))?;
    parse_mda_header(&buf, area.offset)
}

/// Read the area's header and its committed text (checksum verified, wrap handled).
pub fn read_metadata<R: ReadAt + ?Sized>(
    dev: &R,
    area: DiskLocn,
) -> Result<(MdaHeader, MdaContent)> {
    let header = read_mda_header(dev, area)?;
    let content = read_committed(dev, &header)?;
    Ok((header, content))
}

/// Where the committed text of an area is, checked against the area's bounds but not
/// read ([`committed_slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommittedSlot {
    /// A text is there: its slot, and whether it wraps around the end of the buffer.
    Text {
        /// The slot.
        locn: RawLocn,
        /// Whether the copy wraps around the end of the circular buffer.
        wrapped: bool,
    },
    /// The area is flagged ignored.
    Ignored,
    /// No VG metadata (an orphan PV).
    Empty,
}

/// Check the committed slot of `header` (offset and size inside the area, size under
/// [`MAX_METADATA_TEXT`]) without reading the text: what [`read_committed`] checks before
/// it reads.
///
/// ```
/// use devmapper::lvm::mda::{CommittedSlot, MdaHeader, committed_slot};
/// let h = MdaHeader { checksum: 0, version: 1, start: 4096, size: 1 << 20, raw_locns: vec![] };
/// assert_eq!(committed_slot(&h)?, CommittedSlot::Empty);
/// # Ok::<(), devmapper::lvm::Error>(())
/// ```
///
/// # Errors
/// The slot points outside the area or is too large.
pub fn committed_slot(header: &MdaHeader) -> Result<CommittedSlot> {
    let Some(&locn) = header.committed() else {
        return Ok(CommittedSlot::Empty);
    };
    if locn.is_ignored() {
        return Ok(CommittedSlot::Ignored);
    }
    if locn.offset == 0 {
        return Ok(CommittedSlot::Empty);
    }
    let bad = |kind: MdaErrorKind| Error::Mda {
        offset: header.start,
        kind,
    };
    let hdr_size = MDA_HEADER_SIZE as u64;
    if locn.offset < hdr_size || locn.offset >= header.size {
        return Err(bad(MdaErrorKind::TextOutsideBuffer {
            offset: locn.offset,
            area_size: header.size,
        }));
    }
    if locn.size == 0 || locn.size > header.size - hdr_size || locn.size > u64::from(u32::MAX) {
        return Err(bad(MdaErrorKind::TextSizeUnfit { size: locn.size }));
    }
    if locn.size > MAX_METADATA_TEXT {
        return Err(bad(MdaErrorKind::TextOverLimit {
            size: locn.size,
            limit: MAX_METADATA_TEXT,
        }));
    }
    let end = locn.offset.checked_add(locn.size).ok_or_else(|| {
        bad(MdaErrorKind::Overflow {
            what: "text location",
        })
    })?;
    Ok(CommittedSlot::Text {
        locn,
        wrapped: end > header.size,
    })
}

/// Read the committed text that `header` points at.
pub fn read_committed<R: ReadAt + ?Sized>(dev: &R, header: &MdaHeader) -> Result<MdaContent> {
    let locn = match committed_slot(header)? {
        CommittedSlot::Empty => return Ok(MdaContent::Empty),
        CommittedSlot::Ignored => return Ok(MdaContent::Ignored),
        CommittedSlot::Text { locn, .. } => locn,
    };
    let bad = |kind: MdaErrorKind| Error::Mda {
        offset: header.start,
        kind,
    };
    let hdr_size = MDA_HEADER_SIZE as u64;
    let over_limit = MdaErrorKind::TextOverLimit {
        size: locn.size,
        limit: MAX_METADATA_TEXT,
    };
    // committed_slot checked the bounds and that this sum does not overflow.
    let end = locn.offset.saturating_add(locn.size);
    let wrap = end.saturating_sub(header.size);
    let first_len = locn.size - wrap;
    // Below MAX_METADATA_TEXT, so these fit a usize (checked all the same).
    let total = usize::try_from(locn.size).map_err(|_| bad(over_limit.clone()))?;
    let first = usize::try_from(first_len).map_err(|_| bad(over_limit.clone()))?;
    let mut text = vec![0u8; total];
    let (a, b) = text.split_at_mut(first);
    let first_at = header.start.checked_add(locn.offset).ok_or_else(|| {
        bad(MdaErrorKind::Overflow {
            what: "text offset",
        })
    })?;
    dev.read_exact_at(a, first_at)
        .map_err(io_err("metadata text", first_at))?;
    if !b.is_empty() {
        let second_at = header.start.checked_add(hdr_size).ok_or_else(|| {
            bad(MdaErrorKind::Overflow {
                what: "area offset",
            })
        })?;
        dev.read_exact_at(b, second_at)
            .map_err(io_err("metadata text (wrapped part)", second_at))?;
    }
    let crc = calc_crc(INITIAL_CRC, &text);
    if crc != locn.checksum {
        return Err(bad(MdaErrorKind::TextChecksum {
            stored: locn.checksum,
            computed: crc,
        }));
    }
    // `CStr` finds the NUL with the standard library's word-at-a-time memchr (a byte loop
    // was most of a 200-PV scan).
    if let Ok(c) = std::ffi::CStr::from_bytes_until_nul(&text) {
        let nul = c.count_bytes();
        text.truncate(nul);
    }
    Ok(MdaContent::Text(MetadataText {
        locn,
        wrapped: wrap > 0,
        text: text.into(),
    }))
}
