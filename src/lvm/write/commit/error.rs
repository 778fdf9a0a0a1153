//! What the commit protocol refuses, and at which step.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use crate::lvm::error::ParseError;

/// Which step of the protocol failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Reading a metadata area header.
    ReadHeader,
    /// Writing the new text into the ring.
    WriteText,
    /// Flushing the text writes.
    SyncText,
    /// Writing slot 1 (precommit).
    Precommit,
    /// Flushing the precommit headers.
    SyncPrecommit,
    /// Writing slot 0 (commit).
    Commit,
    /// Flushing the commit headers.
    SyncCommit,
    /// Clearing slot 1 (revert).
    Revert,
    /// Flushing the reverted headers.
    SyncRevert,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::ReadHeader => "reading the metadata area header",
            Phase::WriteText => "writing metadata text",
            Phase::SyncText => "flushing metadata text",
            Phase::Precommit => "writing the precommit slot",
            Phase::SyncPrecommit => "flushing the precommit slot",
            Phase::Commit => "writing the commit slot",
            Phase::SyncCommit => "flushing the commit slot",
            Phase::Revert => "clearing the precommit slot",
            Phase::SyncRevert => "flushing the cleared precommit slot",
        })
    }
}

/// What is wrong with the text given to [`precommit`](super::precommit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TextProblem {
    /// No bytes at all.
    #[error("is empty")]
    Empty,
    /// The last byte is not the NUL lvm2 stores and checksums with the text.
    #[error("does not end with a NUL byte")]
    NoTrailingNul,
    /// A NUL before the end: readers would stop there.
    #[error("has a NUL byte at {at}, before its end")]
    InnerNul {
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// Longer than any reader here accepts
    /// ([`MAX_METADATA_TEXT`](crate::lvm::mda::MAX_METADATA_TEXT)).
    #[error("is {len} bytes, more than the {max} accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// The first token is not the VG name (lvm2 takes it as the VG name).
    #[error("does not start with the VG name")]
    WrongName,
    /// The text does not parse.
    #[error("does not parse: {0}")]
    Parse(#[source] ParseError),
    /// No `seqno` in the VG section, or not a `u32`.
    #[error("has no valid seqno")]
    NoSeqno,
}

/// A failure of [`precommit`](super::precommit),
/// [`Precommitted::commit`](super::Precommitted::commit) or
/// [`Precommitted::revert`](super::Precommitted::revert).
///
/// ```
/// use devmapper::io::MemDevice;
/// use devmapper::lvm::label::DiskLocn;
/// use devmapper::lvm::write::commit::{self, CommitError, MdaTarget};
/// let dev = MemDevice::new(64 << 10);
/// let area = DiskLocn { offset: 4096, size: 8192 };
/// commit::format_area(&dev, area).unwrap();
/// let mut text = b"vg0 {\nseqno = 7\ndescription = \"".to_vec();
/// text.extend(std::iter::repeat_n(b'x', 4000));
/// text.extend(b"\"\n}\n\0");
/// let err = commit::precommit(&[&dev], &[MdaTarget { device: 0, area }], "vg0", &text).unwrap_err();
/// assert!(matches!(err, CommitError::TooLarge { seqno: 7, max: 3328, .. }));
/// assert!(err.to_string().contains("exceeds maximum metadata size (3328 bytes)"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The text cannot be written as it is.
    #[error("VG {vg}: metadata text {problem}")]
    BadText {
        /// The VG name given.
        vg: String,
        /// What is wrong.
        problem: TextProblem,
    },
    /// No area to write: none given, or every one is ignored.
    #[error("VG {vg}: no metadata area in use to write")]
    NoUsableArea {
        /// The VG name.
        vg: String,
    },
    /// A target names a device index outside the device slice.
    #[error("metadata area at byte {area} names device {device}, but only {devices} were given")]
    NoSuchDevice {
        /// The index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// How many devices were given.
        devices: usize,
    },
    /// The same area is listed twice.
    #[error("metadata area at byte {area} of device {device} is listed twice")]
    DuplicateArea {
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
    },
    /// lvm2's size limit: two copies must fit the ring.
    #[error(
        "VG {vg} {seqno} metadata on device {device} ({size} bytes) exceeds maximum metadata size ({max} bytes)"
    )]
    TooLarge {
        /// The VG name.
        vg: String,
        /// The seqno of the new text.
        seqno: u32,
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// Text size, NUL included.
        size: u64,
        /// [`max_text_size`](super::max_text_size) of the area.
        max: u64,
    },
    /// The new copy would overlap the committed one (lvm2's sanity check).
    #[error(
        "VG {vg} {seqno} metadata on device {device} ({size} bytes) too large for circular buffer ({buffer} bytes with {used} used)"
    )]
    NoRoom {
        /// The VG name.
        vg: String,
        /// The seqno of the new text.
        seqno: u32,
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// Text size.
        size: u64,
        /// The ring's size.
        buffer: u64,
        /// Size of the committed copy.
        used: u64,
    },
    /// The header on disk is not one lvm2 would write to (bad CRC, magic, start, ...), or its
    /// committed slot points outside the ring.
    #[error("metadata area at byte {area} of device {device}: {source}")]
    BadArea {
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// What the reader found wrong.
        #[source]
        source: crate::lvm::Error,
    },
    /// The header claims a larger area than the PV label lists: writing there could reach
    /// past the area.
    #[error(
        "metadata area at byte {area} of device {device}: the header says {header_size} bytes, the PV label {label_size}"
    )]
    AreaSize {
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// `mda_header.size`.
        header_size: u64,
        /// The label's `disk_locn.size`.
        label_size: u64,
    },
    /// The area (as its header gives its size) runs past the end of the device.
    #[error(
        "metadata area at byte {area} of device {device}: {size} bytes run past the end of the device ({device_size} bytes)"
    )]
    AreaPastEnd {
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// `mda_header.size`.
        size: u64,
        /// The device's size.
        device_size: u64,
    },
    /// The header changed between two steps of this commit: another writer is at work.
    #[error("metadata area at byte {area} of device {device} changed while {phase}")]
    HeaderChanged {
        /// Device index.
        device: usize,
        /// The area's offset.
        area: u64,
        /// The step that found the change.
        phase: Phase,
    },
    /// A read, write or flush failed.
    #[error("{phase} on device {device} (area at byte {area}): {source}")]
    Io {
        /// The step.
        phase: Phase,
        /// Device index.
        device: usize,
        /// The area's offset (for a flush: the first area written on that device).
        area: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A precommit failed and clearing slot 1 again failed too (slot 1 is not read by
    /// anyone, so the committed copy is still what readers see).
    #[error("{first}; clearing the precommit slot again failed as well: {revert}")]
    RevertFailed {
        /// The failure of the precommit.
        first: Box<CommitError>,
        /// The failure of the revert.
        revert: Box<CommitError>,
    },
}

impl CommitError {
    /// The index (in the device slice given to [`precommit`](super::precommit)) of the
    /// device this error is about, if it names one.
    pub fn device(&self) -> Option<usize> {
        match self {
            CommitError::NoSuchDevice { device, .. }
            | CommitError::DuplicateArea { device, .. }
            | CommitError::TooLarge { device, .. }
            | CommitError::NoRoom { device, .. }
            | CommitError::BadArea { device, .. }
            | CommitError::AreaSize { device, .. }
            | CommitError::AreaPastEnd { device, .. }
            | CommitError::HeaderChanged { device, .. }
            | CommitError::Io { device, .. } => Some(*device),
            CommitError::RevertFailed { first, .. } => first.device(),
            _ => None,
        }
    }

    /// The step that failed, for I/O failures and changed headers.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            CommitError::Io { phase, .. } | CommitError::HeaderChanged { phase, .. } => {
                Some(*phase)
            }
            CommitError::RevertFailed { first, .. } => first.phase(),
            _ => None,
        }
    }
}
