//! Errors of the LVM2 reader, each with the context needed to find the fault: the byte
//! offset on the device, the line and column in the text, or the metadata path.
//!
//! ```
//! use devmapper::lvm::config;
//! let err = config::parse(b"vg {\n  id = }\n").unwrap_err();
//! assert_eq!((err.line, err.col), (2, 8));
//! assert!(err.to_string().contains("line 2, column 8"));
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

/// Any failure while reading LVM2 structures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the device or image failed.
    #[error("reading {what} at byte {offset}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Absolute byte offset of the read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No sector among 0-3 holds a valid LVM2 label.
    #[error("no LVM2 label in sectors 0-3")]
    NoLabel,
    /// A label was found (`LABELONE`, right sector, good CRC) but its PV header is malformed.
    #[error("PV label in sector {sector}: {reason}")]
    Label {
        /// The sector holding the label.
        sector: u64,
        /// What is wrong.
        reason: String,
    },
    /// A metadata area header or its text location is invalid.
    #[error("metadata area at byte {offset}: {reason}")]
    Mda {
        /// Absolute byte offset of the metadata area.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The metadata text does not parse.
    #[error("metadata text: {0}")]
    Parse(#[from] ParseError),
    /// The text parses but does not describe a valid VG (as lvm2's importer judges it).
    #[error("metadata {path}: {reason}")]
    Model {
        /// Where in the metadata, e.g. `vg0/logical_volumes/root/segment1`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The text breaks a rule lvm2's importer enforces (the newer, typed checks).
    #[error("metadata {path}: {kind}")]
    Import {
        /// Where in the metadata, e.g. `vg0/logical_volumes/root`.
        path: String,
        /// What is wrong.
        kind: ImportErrorKind,
    },
    /// The VG imports (lvm2 reads it too), but this LV cannot be mapped to
    /// device-mapper tables or read offline: lvm2 would not activate it, or never writes
    /// such metadata.
    #[error("LV {lv}: {kind}")]
    Unmappable {
        /// `vg/lv`.
        lv: String,
        /// Why.
        kind: UnmappableKind,
    },
    /// Several PVs do not make a usable VG.
    #[error("VG {vg}: {reason}")]
    Scan {
        /// VG name (or id when the name is unknown).
        vg: String,
        /// What is wrong.
        reason: String,
    },
    /// An LV cannot be turned into device-mapper tables.
    #[error("LV {lv}: {reason}")]
    Plan {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        reason: String,
    },
    /// An LV cannot be exported.
    #[error("export of {lv}: {reason}")]
    Export {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        reason: String,
    },
}

/// The kinds of [`Error::Import`]: metadata lvm2's importer refuses too.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// An LV without segments (lvm2: "has no segment").
    #[error("the LV has no segment")]
    NoSegments,
    /// `creation_time` without `creation_host`.
    #[error("`creation_time` without `creation_host`")]
    CreationTimeWithoutHost,
    /// `creation_host` without `creation_time`.
    #[error("`creation_host` without `creation_time`")]
    CreationHostWithoutTime,
    /// `FIXED_MINOR` without a `minor`.
    #[error("FIXED_MINOR is set but `minor` is missing")]
    FixedMinorWithoutMinor,
    /// Only one of `ba_start` and `ba_size` is non-zero.
    #[error("incomplete bootloader area (`ba_start` and `ba_size` go together)")]
    IncompleteBootloaderArea,
    /// A second hidden `*_pmspare` LV (lvm2 allows one pool metadata spare per VG).
    #[error("a second pool metadata spare LV (the first is {first})")]
    SecondPoolMetadataSpare {
        /// The first spare.
        first: String,
    },
}

/// The kinds of [`Error::Unmappable`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnmappableKind {
    /// The VG's `extent_size` is 0: every LV is empty.
    #[error("the VG's extent_size is 0")]
    ExtentSizeZero,
    /// A striped segment with several stripes and `stripe_size` 0.
    #[error("segment at extent {start_extent}: stripe_size is 0")]
    StripeSizeZero {
        /// The segment's first extent.
        start_extent: u64,
    },
    /// The per-stripe length is not a multiple of `stripe_size` (the kernel's striped
    /// target refuses it; reading it would run into the next extents).
    #[error(
        "segment at extent {start_extent}: stripe_size {stripe_size} does not divide the \
         per-stripe length of {per_stripe} sectors"
    )]
    StripeSizeNotDividing {
        /// The segment's first extent.
        start_extent: u64,
        /// `stripe_size` in sectors.
        stripe_size: u64,
        /// Length of each stripe in sectors.
        per_stripe: u64,
    },
    /// An area on another LV runs past that LV's end.
    #[error("area on LV {sub} ends at extent {end}, past its {size} extents")]
    AreaBeyondLv {
        /// The LV the area is on.
        sub: String,
        /// End of the area in that LV's extents.
        end: u64,
        /// That LV's size in extents.
        size: u64,
    },
    /// A snapshot with `chunk_size` 0.
    #[error("snapshot chunk_size is 0")]
    SnapshotChunkZero,
    /// The snapshot's origin is an internal `snapshotN` LV.
    #[error("the snapshot's origin {origin} is itself an internal snapshot LV")]
    OriginIsSnapshot {
        /// The origin named by the metadata.
        origin: String,
    },
    /// The snapshot's COW store is an internal `snapshotN` LV.
    #[error("the snapshot's COW store {cow} is an internal snapshot LV")]
    CowIsSnapshot {
        /// The COW LV named by the metadata.
        cow: String,
    },
    /// A snapshot of a snapshot's COW LV (lvm2 does not support snapshots of snapshots).
    #[error("the snapshot's origin {origin} is the COW store of another snapshot")]
    OriginIsCow {
        /// The origin, a COW LV.
        origin: String,
    },
    /// Origins and COW stores that lead back to themselves.
    #[error("snapshot origins form a cycle: {}", chain.join(" -> "))]
    SnapshotCycle {
        /// The LVs of the cycle, from this one back to itself (a long cycle is cut
        /// after 16 names, marked by `...`).
        chain: Vec<String>,
    },
    /// One COW store claimed by several `snapshotN` LVs.
    #[error("the COW store is shared by several snapshot LVs: {}", snapshots.join(", "))]
    SharedCow {
        /// The internal snapshot LVs naming this COW store.
        snapshots: Vec<String>,
    },
    /// LVs that map onto each other.
    #[error("LV references form a cycle through {via}")]
    ReferenceCycle {
        /// The LV met a second time.
        via: String,
    },
    /// LVs stacked deeper than the limit.
    #[error("LVs stacked more than {limit} deep")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A name lvm2 would not create: it is not used for a device-mapper name.
    #[error("name {name:?} is not a valid LVM name")]
    InvalidName {
        /// The VG or LV name.
        name: String,
    },
    /// A PV the LV needs was not found.
    #[error("PV {pv} ({id}) is not available")]
    PvUnavailable {
        /// The PV handle.
        pv: String,
        /// The PV id.
        id: String,
    },
    /// Something this crate does not map or read (lvm2 may).
    #[error("{what} is not supported")]
    Unsupported {
        /// What.
        what: String,
    },
}

impl UnmappableKind {
    /// lvm2 would activate the LV, this crate cannot (unsupported segment type, a PV
    /// not given): the fault is in the tool or the inputs, not in the metadata.
    pub fn is_limitation(&self) -> bool {
        matches!(
            self,
            UnmappableKind::Unsupported { .. } | UnmappableKind::PvUnavailable { .. }
        )
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A text metadata syntax error, positioned like an editor would show it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col} (byte {offset}): {kind}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in bytes.
    pub col: u32,
    /// 0-based byte offset in the text.
    pub offset: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// The kinds of [`ParseError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A token other than the one the grammar needs here (libdm: "unexpected token").
    Unexpected {
        /// What the grammar needed.
        expected: &'static str,
    },
    /// `=` or `[` or `,` followed by something that is not a value.
    ExpectedValue,
    /// A key that is empty (`""`).
    EmptyKey,
    /// An integer outside the int64 range.
    IntRange,
    /// A float outside the double range.
    FloatRange,
    /// Sections nested deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An array longer than the limit.
    ArrayTooLong {
        /// The limit.
        limit: usize,
    },
    /// More text than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Unexpected { expected } => {
                write!(f, "unexpected token, expected {expected}")
            }
            ParseErrorKind::ExpectedValue => f.write_str("expected a value"),
            ParseErrorKind::EmptyKey => f.write_str("empty section identifier"),
            ParseErrorKind::IntRange => f.write_str("integer out of the int64 range"),
            ParseErrorKind::FloatRange => f.write_str("float out of range"),
            ParseErrorKind::TooDeep { limit } => write!(f, "sections nested deeper than {limit}"),
            ParseErrorKind::ArrayTooLong { limit } => write!(f, "array longer than {limit} items"),
            ParseErrorKind::TooLarge { limit } => write!(f, "text longer than {limit} bytes"),
        }
    }
}

/// Shorthand for a [`Error::Io`] mapper.
pub(crate) fn io_err(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        what,
        offset,
        source,
    }
}
