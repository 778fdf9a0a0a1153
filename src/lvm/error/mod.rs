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

use super::id::IdError;

mod lv;
pub use lv::{ExportErrorKind, PlanErrorKind};

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
    #[error("PV label in sector {sector}: {kind}")]
    Label {
        /// The sector holding the label.
        sector: u64,
        /// What is wrong.
        kind: LabelErrorKind,
    },
    /// A metadata area header or its text location is invalid.
    #[error("metadata area at byte {offset}: {kind}")]
    Mda {
        /// Absolute byte offset of the metadata area.
        offset: u64,
        /// What is wrong.
        kind: MdaErrorKind,
    },
    /// The metadata text does not parse.
    #[error("metadata text: {0}")]
    Parse(#[from] ParseError),
    /// The text parses but does not describe a valid VG: lvm2's importer refuses it too.
    #[error("metadata {path}: {kind}")]
    Model {
        /// Where in the metadata, e.g. `vg0/logical_volumes/root/segment1` (`contents`
        /// and `version` for the header fields, empty when there is no VG section).
        path: String,
        /// What is wrong.
        kind: ModelErrorKind,
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
    #[error("VG {vg}: {kind}")]
    Scan {
        /// VG name (or id when the name is unknown).
        vg: String,
        /// What is wrong.
        kind: ScanErrorKind,
    },
    /// An LV cannot be turned into device-mapper tables.
    #[error("LV {lv}: {kind}")]
    Plan {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        kind: PlanErrorKind,
    },
    /// An LV cannot be exported.
    #[error("export of {lv}: {kind}")]
    Export {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        kind: ExportErrorKind,
    },
}

/// The kinds of [`Error::Label`]: a PV header lvm2 would not read.
///
/// ```
/// use devmapper::lvm::{AreaList, Error, LabelErrorKind};
/// let e = Error::Label { sector: 1, kind: LabelErrorKind::UnterminatedList { list: AreaList::Data } };
/// assert_eq!(e.to_string(), "PV label in sector 1: data area list is not terminated");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelErrorKind {
    /// `offset_xl` puts the `pv_header` outside the label sector.
    #[error("pv_header offset {offset} is outside the sector")]
    PvHeaderOutside {
        /// `offset_xl`.
        offset: u32,
    },
    /// `pv_header.pv_uuid` is not an LVM2 id.
    #[error("PV id: {0}")]
    PvId(#[source] IdError),
    /// An area list runs to the end of the sector without its zero terminator.
    #[error("{list} area list is not terminated")]
    UnterminatedList {
        /// Which list.
        list: AreaList,
    },
}

/// The `disk_locn` lists of a `pv_header`, as named in [`LabelErrorKind::UnterminatedList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AreaList {
    /// The data areas (`pe_start`).
    Data,
    /// The metadata areas.
    Metadata,
    /// The bootloader areas of the `pv_header_extension`.
    Bootloader,
}

impl fmt::Display for AreaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AreaList::Data => "data",
            AreaList::Metadata => "metadata",
            AreaList::Bootloader => "bootloader",
        })
    }
}

/// The kinds of [`Error::Mda`]: a metadata area header, or the committed text it points
/// at, that cannot be read.
///
/// ```
/// use devmapper::lvm::{Error, MdaErrorKind, mda};
/// let err = mda::parse_mda_header(&[0u8; 512], 4096).unwrap_err();
/// assert!(matches!(err, Error::Mda { offset: 4096, kind: MdaErrorKind::HeaderChecksum { .. } }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdaErrorKind {
    /// Fewer than 512 bytes were given.
    #[error("short header")]
    ShortHeader,
    /// `checksum_xl` does not match the header.
    #[error("header checksum {stored:#010x} does not match {computed:#010x}")]
    HeaderChecksum {
        /// `checksum_xl`.
        stored: u32,
        /// The CRC of the header.
        computed: u32,
    },
    /// Not `FMTT_MAGIC`.
    #[error("wrong magic")]
    WrongMagic,
    /// A format version other than 1.
    #[error("unsupported version {version}")]
    UnsupportedVersion {
        /// The header's version.
        version: u32,
    },
    /// The header's `start` is not where the PV header says the area is.
    #[error("header says it starts at byte {start}")]
    StartMismatch {
        /// The header's `start`.
        start: u64,
    },
    /// The header's `size` is smaller than the header.
    #[error("area size {size} is smaller than its header")]
    AreaTooSmall {
        /// The header's `size`.
        size: u64,
    },
    /// The committed slot's offset is outside the circular buffer.
    #[error("text offset {offset} is outside the buffer (area size {area_size})")]
    TextOutsideBuffer {
        /// The slot's offset in the area.
        offset: u64,
        /// The area's size.
        area_size: u64,
    },
    /// The committed slot's size is 0 or larger than the buffer.
    #[error("text size {size} does not fit the area")]
    TextSizeUnfit {
        /// The slot's size.
        size: u64,
    },
    /// The committed text is larger than this reader accepts.
    #[error("text size {size} is over the {limit}-byte limit")]
    TextOverLimit {
        /// The slot's size.
        size: u64,
        /// [`MAX_METADATA_TEXT`](super::mda::MAX_METADATA_TEXT).
        limit: u64,
    },
    /// An offset computed from the header does not fit in 64 bits.
    #[error("{what} overflows")]
    Overflow {
        /// `text location`, `text offset` or `area offset`.
        what: &'static str,
    },
    /// The committed text does not match its slot's checksum.
    #[error("text checksum {stored:#010x} does not match {computed:#010x}")]
    TextChecksum {
        /// The slot's checksum.
        stored: u32,
        /// The CRC of the text read.
        computed: u32,
    },
}

/// The type a metadata value must have, as named in [`ModelErrorKind::WrongType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// An integer.
    Integer,
    /// A string.
    String,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Integer => "an integer",
            ValueType::String => "a string",
        })
    }
}

/// The kinds of [`Error::Model`]: metadata that parses but that lvm2's importer refuses
/// too (`import_vsn1.c` and the segment type importers).
///
/// ```
/// use devmapper::lvm::{Error, ModelErrorKind, config::ParseMode, model::VolumeGroup};
/// let text = b"vg0 { seqno = 1 }\ncontents = \"Text Format Volume Group\"\nversion = 1\n";
/// match VolumeGroup::from_text(text, ParseMode::Disk) {
///     Err(Error::Model { path, kind: ModelErrorKind::MissingKey { key } }) => {
///         assert_eq!((path.as_str(), key.as_str()), ("vg0", "id"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelErrorKind {
    /// `contents` is not `Text Format Volume Group`.
    #[error("must be \"{}\"", super::model::CONTENTS)]
    WrongContents,
    /// `version` is not 1.
    #[error("must be 1")]
    WrongVersion,
    /// No top-level section.
    #[error("no volume group section")]
    NoVgSection,
    /// A required key is absent.
    #[error("`{key}` is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A value of the wrong type.
    #[error("`{key}` must be {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type it must have.
        expected: ValueType,
    },
    /// A list (`tags`, `status`, `flags`) with an item that is not a string.
    #[error("`{key}` entries must be strings")]
    NotStrings {
        /// The key.
        key: String,
    },
    /// An `id` that is not an LVM2 id.
    #[error("id {id:?}: {source}")]
    BadId {
        /// The id as written.
        id: String,
        /// Why it is not one.
        #[source]
        source: IdError,
    },
    /// A `status` entry lvm2 does not know (or reads only from `flags`).
    #[error("unknown status flag '{flag}'")]
    UnknownStatusFlag {
        /// The flag.
        flag: String,
    },
    /// Two LV sections with one name.
    #[error("LV {lv} appears twice")]
    DuplicateLv {
        /// The name.
        lv: String,
    },
    /// A second hidden `*_pmspare` LV (lvm2 allows one pool metadata spare per VG).
    #[error("a second pool metadata spare LV (the first is {first})")]
    SecondPoolMetadataSpare {
        /// The first spare.
        first: String,
    },
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
    /// `segment_count` differs from the number of segment sections.
    #[error("segment_count is {declared} but there are {found} segments")]
    SegmentCountMismatch {
        /// `segment_count`.
        declared: u64,
        /// Segment sections found.
        found: usize,
    },
    /// An LV without segments (lvm2: "has no segment").
    #[error("the LV has no segment")]
    NoSegments,
    /// Segments not contiguous from extent 0.
    #[error("segment at extent {start_extent} leaves a gap or overlap (expected {expected})")]
    SegmentGap {
        /// The segment's `start_extent`.
        start_extent: u64,
        /// Where the previous segment ended.
        expected: u64,
    },
    /// The segments' extents add up past 64 bits.
    #[error("extent count overflows")]
    ExtentCountOverflow,
    /// A snapshot LV with several segments.
    #[error("only one segment is permitted for a snapshot")]
    SnapshotSegments,
    /// An LV that is an area of itself.
    #[error("an LV cannot map onto itself")]
    SelfMapping,
    /// A segment of 0 extents that is not `zero` or `error`.
    #[error("zero-length segment")]
    ZeroLengthSegment,
    /// A snapshot with both `cow_store` and `merging_store`.
    #[error("both cow_store and merging_store are specified")]
    CowAndMergingStore,
    /// A snapshot whose origin is its own COW store.
    #[error("a snapshot's origin cannot be its own COW store")]
    OriginIsOwnCow,
    /// A key naming an LV the VG does not have.
    #[error("`{key}` names unknown LV {name:?}")]
    UnknownLv {
        /// The key.
        key: String,
        /// The name.
        name: String,
    },
    /// A thin `device_id` past `DM_THIN_MAX_DEVICE_ID`.
    #[error("unsupported device_id {device_id}")]
    ThinDeviceIdRange {
        /// The id.
        device_id: u64,
    },
    /// A thin pool `chunk_size` outside the kernel's bounds.
    #[error("unsupported chunk_size {chunk_size}")]
    ThinChunkRange {
        /// The chunk size in sectors.
        chunk_size: u64,
    },
    /// A thin pool `discards` value lvm2 does not know.
    #[error("discards option {value:?} unsupported")]
    UnknownDiscards {
        /// The value.
        value: String,
    },
    /// A thin pool message section with neither `create` nor `delete`.
    #[error("unknown message")]
    UnknownThinMessage,
    /// A striped segment with `stripe_count` 0.
    #[error("stripe_count is 0")]
    StripeCountZero,
    /// The extent count does not split into equal stripes.
    #[error("extent count {extent_count} is not divisible by stripe count {stripe_count}")]
    ExtentsNotDivisible {
        /// The segment's extent count.
        extent_count: u64,
        /// Its stripe count.
        stripe_count: u64,
    },
    /// `stripes` does not hold one pair per stripe.
    #[error("`stripes` has {items} items for {stripe_count} stripes")]
    StripeItemCount {
        /// Items in `stripes`.
        items: usize,
        /// `stripe_count`.
        stripe_count: u64,
    },
    /// A `stripes` pair that is not (name, extent).
    #[error("`stripes` must hold (name, extent) pairs")]
    StripePairs,
    /// An area's end does not fit in 64 bits.
    #[error("extent overflow")]
    ExtentOverflow,
    /// An area past the end of its PV.
    #[error("extents {start}..{end} are beyond the {pe_count} PEs of {pv}")]
    BeyondPv {
        /// The PV handle.
        pv: String,
        /// First extent of the area.
        start: u64,
        /// End of the area (exclusive).
        end: u64,
        /// The PV's extent count.
        pe_count: u64,
    },
    /// An area naming neither a PV handle nor an LV.
    #[error("couldn't find volume {name:?} for segment")]
    UnknownVolume {
        /// The name.
        name: String,
    },
}

/// The kinds of [`Error::Scan`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanErrorKind {
    /// The newest copy of the VG's metadata (highest seqno) is refused.
    #[error("newest metadata (seqno {seqno}) does not import: {error}")]
    NewestDoesNotImport {
        /// Its seqno.
        seqno: u64,
        /// Why.
        #[source]
        error: Box<Error>,
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
#[non_exhaustive]
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
