//! Errors of the `cow` module: every one says where on the COW device it was found.
//!
//! ```
//! use devmapper::cow::{CorruptKind, Error, Store, writer::StoreWriter};
//! // An entry pointing past the end of a 64 KiB COW (16 chunks of 4 KiB).
//! let image = StoreWriter::build(8, 64 << 10, &[(1, Some(99))])?;
//! let err = Store::open(&image)?.scan(None).unwrap_err();
//! assert!(matches!(err, Error::Corrupt { area: 0, entry: 0, offset: 4096,
//!     kind: CorruptKind::NewChunkBeyondCow { new_chunk: 99, cow_chunks: 16 } }));
//! # Ok::<(), devmapper::cow::Error>(())
//! ```

use std::io;

/// What is wrong with one exception-table entry (see [`Error::Corrupt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// `new_chunk` lies at or past the end of the COW device.
    NewChunkBeyondCow {
        /// The entry's new chunk.
        new_chunk: u64,
        /// Whole chunks on the COW device.
        cow_chunks: u64,
    },
    /// `new_chunk` is a metadata-area location (`1 + k * stride`).
    NewChunkIsMetadata {
        /// The entry's new chunk.
        new_chunk: u64,
    },
    /// `new_chunk` was already used by an earlier entry.
    NewChunkReused {
        /// The entry's new chunk.
        new_chunk: u64,
    },
    /// `old_chunk` lies past the end of the origin.
    OldChunkBeyondOrigin {
        /// The entry's old chunk.
        old_chunk: u64,
        /// Chunks on the origin (the last one may be partial).
        origin_chunks: u64,
    },
}

impl std::fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            CorruptKind::NewChunkBeyondCow {
                new_chunk,
                cow_chunks,
            } => write!(
                f,
                "new chunk {new_chunk} is past the end of the COW device ({cow_chunks} chunks)"
            ),
            CorruptKind::NewChunkIsMetadata { new_chunk } => {
                write!(f, "new chunk {new_chunk} is a metadata area")
            }
            CorruptKind::NewChunkReused { new_chunk } => {
                write!(f, "new chunk {new_chunk} is used by an earlier entry")
            }
            CorruptKind::OldChunkBeyondOrigin {
                old_chunk,
                origin_chunks,
            } => write!(
                f,
                "old chunk {old_chunk} is past the end of the origin ({origin_chunks} chunks)"
            ),
        }
    }
}

/// An error reading, exporting or merging a persistent exception store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on the named device at a byte offset.
    #[error("I/O error on the {what} at byte {offset}: {source}")]
    Io {
        /// `"COW device"`, `"origin"` or `"output"`.
        what: &'static str,
        /// Byte offset of the failed access.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device is too small to hold what it claims to hold.
    #[error("the {what} is {size} bytes, at least {needed} are needed")]
    TooSmall {
        /// Which device.
        what: &'static str,
        /// Its size in bytes.
        size: u64,
        /// The minimum size in bytes.
        needed: u64,
    },
    /// The first word is neither the persistent-store magic nor zero.
    #[error(
        "bad magic {magic:#010x} at byte 0 (expected 0x70416e53 \"SnAp\", or 0 for a fresh store); \
         this is not a persistent exception store (a transient N store keeps no header and \
         cannot be read offline)"
    )]
    BadMagic {
        /// The word found at byte 0.
        magic: u32,
    },
    /// The on-disk format version is not 1.
    #[error("unsupported store version {version} at byte 8 (only version 1 exists)")]
    BadVersion {
        /// The version found.
        version: u32,
    },
    /// The chunk size in the header is unusable.
    #[error("invalid chunk size {chunk_sectors} sectors at byte 12: {reason}")]
    BadChunkSize {
        /// The chunk size found, in sectors.
        chunk_sectors: u32,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An exception-table entry failed a sanity check.
    #[error("corrupt exception in metadata area {area}, entry {entry} (byte {offset}): {kind}")]
    Corrupt {
        /// Metadata area index.
        area: u64,
        /// Entry index within the area.
        entry: u32,
        /// Byte offset of the entry on the COW device.
        offset: u64,
        /// What is wrong.
        kind: CorruptKind,
    },
    /// The origin is smaller than the origin the snapshot was taken of: the table saves a
    /// chunk past its end. The store is not blamed: usually the origin is the wrong device
    /// or image, or it was truncated or shrunk.
    #[error(
        "the origin is {origin_size} bytes, smaller than the origin the snapshot was taken \
         of (at least {needed} bytes: the store holds origin chunk {old_chunk}); is it the \
         right origin, or was it shrunk?"
    )]
    OriginTooSmall {
        /// The origin's size in bytes.
        origin_size: u64,
        /// The least size (in whole sectors) the snapshot's origin had.
        needed: u64,
        /// The largest origin chunk the table saves.
        old_chunk: u64,
    },
    /// The origin and the COW device of a merge are one file or device (same inode or
    /// device number, whatever their names): merging would copy chunks over the store.
    #[error(
        "the origin and the COW device are the same file or device: refusing to merge a \
         store into itself"
    )]
    OriginIsCow,
    /// Writing the output of an export failed.
    #[error("writing the output{at}: {source}",
        at = offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Write {
        /// Byte offset of the write, when positioned.
        offset: Option<u64>,
        /// The underlying error (for an [`crate::io::Output`], an
        /// [`crate::io::OutputError`] naming the path).
        #[source]
        source: io::Error,
    },
    /// Preparing or finishing the output failed (see [`crate::io::OutputError`]).
    #[error(transparent)]
    Output(#[from] crate::io::OutputError),
    /// Two exceptions remap the same origin chunk, so the snapshot's content is ambiguous.
    #[error(
        "origin chunk {old_chunk} has two exceptions (COW chunks {first_new} and {second_new})"
    )]
    DuplicateOldChunk {
        /// The origin chunk.
        old_chunk: u64,
        /// One COW chunk holding it.
        first_new: u64,
        /// The other COW chunk holding it.
        second_new: u64,
    },
    /// The header says the snapshot was invalidated (overflow or I/O error): its table may
    /// be incomplete, so the kernel refuses it; pass `force` to read it anyway.
    #[error(
        "the snapshot was invalidated (header valid=0, e.g. after the COW overflowed): its \
         exception table may miss chunks; refused unless forced"
    )]
    Invalidated,
    /// The requested operation needs a header, but the store is fresh (all-zero magic).
    #[error("the store has no header (fresh, never activated, or a transient N store)")]
    Fresh,
    /// A read of the snapshot view went past its end.
    #[error("read of {len} bytes at {offset} is past the snapshot's end ({size} bytes)")]
    OutOfRange {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Snapshot size.
        size: u64,
    },
    /// The written output does not have the expected size.
    #[error("the output is {actual} bytes, expected {expected}")]
    OutputSize {
        /// Expected size.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// After a merge, an origin chunk does not hold what the snapshot held.
    #[error(
        "verification failed: origin chunk {old_chunk} differs from COW chunk {new_chunk} \
         after the merge"
    )]
    VerifyMismatch {
        /// The origin chunk.
        old_chunk: u64,
        /// The COW chunk it was merged from.
        new_chunk: u64,
    },
    /// A fixed-width field of the on-disk format lies past the end of the bytes read for
    /// it (the offset is from the start of the header or of the table block read).
    #[error("COW device: {0}")]
    Field(#[from] crate::io::bytes::OutOfBounds),
    /// The exception list given to the writer cannot be stored.
    #[error("cannot build the store: {0}")]
    Writer(&'static str),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the device and offset to an `io::Error`.
pub(crate) fn io_err(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        what,
        offset,
        source,
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } | Error::Write { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
