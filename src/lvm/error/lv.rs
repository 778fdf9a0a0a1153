//! The kinds of [`Error::Plan`](super::Error::Plan) and [`Error::Export`](super::Error::Export):
//! an LV of a VG that imports, refused while building its tables or its offline reader.
//!
//! ```
//! use devmapper::lvm::{Error, PlanErrorKind};
//! let e = Error::Plan { lv: "vg0/gone".into(), kind: PlanErrorKind::NoSuchLv };
//! assert_eq!(e.to_string(), "LV vg0/gone: no such LV");
//! assert!(matches!(e, Error::Plan { kind: PlanErrorKind::NoSuchLv, .. }));
//! ```

use crate::kernel::id::IdError;
use crate::targets::DevPathError;

/// Why an LV gets no device-mapper tables (beyond [`UnmappableKind`](super::UnmappableKind),
/// which covers what lvm2 itself would not activate).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanErrorKind {
    /// The LV asked for is not in the VG.
    #[error("no such LV")]
    NoSuchLv,
    /// A segment names an LV the VG does not hold.
    #[error("refers to unknown LV {name}")]
    UnknownLv {
        /// The name it refers to.
        name: String,
    },
    /// A segment names a PV the VG does not hold.
    #[error("unknown PV {pv}")]
    UnknownPv {
        /// The PV name (`pv0`, ...).
        pv: String,
    },
    /// The dm name or uuid lvm2's rules give the LV is not one the kernel takes (VG and LV
    /// names valid on their own, too long together).
    #[error("{0}")]
    DmId(#[from] IdError),
    /// The `/dev/mapper` path of a lower device cannot be written in a table.
    #[error("{0}")]
    DevPath(#[from] DevPathError),
    /// A thin LV's pool is not a thin pool.
    #[error("{pool} is not a thin pool")]
    NotThinPool {
        /// The pool LV's name.
        pool: String,
    },
    /// A thin device id past what the kernel takes.
    #[error("thin device id {id}")]
    ThinDeviceId {
        /// The id in the metadata.
        id: u64,
    },
    /// The internal snapshot LV is activated through its COW LV, never by itself.
    #[error("an internal snapshot LV is not activated by itself")]
    InternalSnapshot,
    /// A device offset past 2^64 sectors.
    #[error("offset overflows")]
    OffsetOverflow,
}

/// Why an LV cannot be read offline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportErrorKind {
    /// The LV asked for is not in the VG.
    #[error("no such LV")]
    NoSuchLv,
    /// A segment names an LV the VG does not hold.
    #[error("refers to unknown LV {name}")]
    UnknownLv {
        /// The name it refers to.
        name: String,
    },
    /// A segment names a PV the VG does not hold.
    #[error("unknown PV {pv}")]
    UnknownPv {
        /// The PV name.
        pv: String,
    },
    /// The PV was not given (or not found) among the devices read.
    #[error("PV {pv} ({id}) is not available")]
    PvUnavailable {
        /// The PV name.
        pv: String,
        /// Its id.
        id: String,
    },
    /// An extent's byte offset is past 2^64 bytes.
    #[error(
        "PV {pv}: pe_start {pe_start} + PE {pe} of {extent_size} sectors is out of range (past 2^64 bytes)"
    )]
    PvOffsetOverflow {
        /// The PV name.
        pv: String,
        /// Its `pe_start` in sectors.
        pe_start: u64,
        /// The extent.
        pe: u64,
        /// The VG's extent size in sectors.
        extent_size: u64,
    },
    /// What overflowed computing a size or an offset.
    #[error("{what} overflows")]
    Overflow {
        /// `extent size`, `segment`, `offset`, `stripe size`.
        what: &'static str,
    },
    /// A striped segment of several areas with a stripe size of 0.
    #[error("striped segment without a stripe size")]
    NoStripeSize,
    /// The internal snapshot LV has no data of its own (read the COW LV).
    #[error("an internal snapshot LV has no data of its own")]
    InternalSnapshot,
    /// Thin volumes live in a pool's metadata, which is not read offline.
    #[error("thin volumes are not readable offline")]
    Thin,
    /// A segment type with no offline reader.
    #[error("segment type {segtype} is not readable offline")]
    SegmentType {
        /// The segment type.
        segtype: String,
    },
    /// The LV named as a snapshot is not one.
    #[error("not a snapshot")]
    NotSnapshot,
    /// The snapshot is merging into its origin: its content is the origin's now.
    #[error("the snapshot is being merged into its origin")]
    Merging,
    /// The snapshot's `origin_size` is larger than its origin.
    #[error("origin_size of {extents} extents exceeds origin {origin}")]
    OriginSize {
        /// `origin_size` in extents.
        extents: u64,
        /// The origin LV.
        origin: String,
    },
    /// The COW store does not read.
    #[error("COW store: {0}")]
    CowStore(#[source] crate::cow::Error),
    /// The COW store's chunk size disagrees with the metadata.
    #[error("COW store chunk size {store} bytes, metadata says {metadata}")]
    ChunkSize {
        /// In the store header, bytes.
        store: u64,
        /// In the metadata, bytes.
        metadata: u64,
    },
}
