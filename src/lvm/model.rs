//! The typed VG: physical volumes, logical volumes and their segments, built from a parsed
//! text with the checks lvm2's importer makes (`lib/format_text/import_vsn1.c` and the
//! per-segment-type importers).
//!
//! Segment types that this crate can map (`striped`/`linear`, `snapshot`, `thin-pool`,
//! `thin`, `zero`, `error`) are fully typed; the others (mirror, raid, cache, vdo, ...) are
//! kept as [`SegmentKind::Other`] with their type name and the LVs they reference, so a VG
//! that contains them still loads and lists correctly but those LVs are not activated.
//!
//! Validation is lvm2 2.03's importer, rule for rule and no stricter (each rule was
//! checked against `lvm vgcfgrestore -l`): required keys, unknown **status** flags
//! rejected (unknown `flags` entries ignored), `segment_count` equal to the number of
//! segment sections and not 0, segments contiguous from extent 0, stripes divisible,
//! every area naming an existing PV handle (looked up first; of two PV sections with one
//! name, the later) or LV, PE ranges inside their PV, `creation_time` with
//! `creation_host`, `minor` with `FIXED_MINOR`, one pool metadata spare. Integers are
//! read as lvm2 reads them (32-bit fields keep their low 32 bits).
//!
//! What lvm2 accepts but looks wrong is accepted too and reported as an
//! [`ImportWarning`] ([`VolumeGroup::warnings`]): a PE area past `dev_size` (as `pvresize`
//! backups record it), duplicate PV ids or names, invalid names, PEs used twice, and the
//! LVs plan and export will refuse ([`UnmappableKind`]: striped segments the kernel
//! refuses, areas past an LV's end, snapshot relations lvm2 never writes).
//!
//! ```
//! use devmapper::lvm::{config, model::VolumeGroup};
//! let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 3
//!   status = ["RESIZEABLE", "READ", "WRITE"] extent_size = 8192 max_lv = 0 max_pv = 0
//!   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
//!     status = ["ALLOCATABLE"] pe_start = 2048 pe_count = 10 } } }
//!   contents = "Text Format Volume Group" version = 1"#;
//! let vg = VolumeGroup::from_config(&config::parse(text)?)?;
//! assert_eq!((vg.name.as_str(), vg.seqno, vg.pvs.len()), ("vg0", 3, 1));
//! // An unknown status flag is refused, as lvm2 refuses it.
//! let bad = String::from_utf8_lossy(text).replace("\"RESIZEABLE\"", "\"FUTURE\"");
//! assert!(VolumeGroup::from_config(&config::parse(bad.as_bytes())?).is_err());
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::config::{Config, Node, ParseMode, Scalar};
use super::error::{Error, ImportErrorKind, Result, UnmappableKind};
use super::id::LvmId;

/// A set of validated flag names (`status` or `flags` list entries).
pub type Flags = BTreeSet<String>;

/// Status and compatible flags lvm2 knows for a VG (`lib/format_text/flags.c`).
pub const VG_FLAGS: &[&str] = &[
    "EXPORTED",
    "RESIZEABLE",
    "PVMOVE",
    "READ",
    "WRITE",
    "WRITE_LOCKED",
    "CLUSTERED",
    "SHARED",
    "NOAUTOACTIVATE",
    "PARTIAL",
];
/// Flags lvm2 knows for a PV.
pub const PV_FLAGS: &[&str] = &["ALLOCATABLE", "EXPORTED", "MISSING"];
/// Flags lvm2 knows for an LV.
pub const LV_FLAGS: &[&str] = &[
    "READ",
    "WRITE",
    "WRITE_LOCKED",
    "FIXED_MINOR",
    "VISIBLE",
    "PVMOVE",
    "LOCKED",
    "NOTSYNCED",
    "REBUILD",
    "RESHAPE",
    "RESHAPE_DATA_OFFSET",
    "RESHAPE_DELTA_DISKS_PLUS",
    "RESHAPE_DELTA_DISKS_MINUS",
    "REMOVE_AFTER_RESHAPE",
    "WRITEMOSTLY",
    "ACTIVATION_SKIP",
    "ERROR_WHEN_FULL",
    "METADATA_FORMAT",
    "NOAUTOACTIVATE",
    "CACHE_VOL",
    "CROP_METADATA",
    "CACHE_USES_CACHEVOL",
];
/// Entries of [`VG_FLAGS`] and [`LV_FLAGS`] that lvm2 reads only from `flags` (its
/// `COMPATIBLE_FLAG` kind): in `status` they are unknown, and refused.
pub const FLAGS_ONLY: &[&str] = &[
    "WRITE_LOCKED",
    "NOAUTOACTIVATE",
    "ACTIVATION_SKIP",
    "ERROR_WHEN_FULL",
    "CACHE_VOL",
];

/// `+FLAG` suffixes lvm2 accepts on a segment type (`read_segtype_lvflags`).
pub const SEGTYPE_FLAGS: &[&str] = &[
    "RESHAPE",
    "RESHAPE_DATA_OFFSET",
    "RESHAPE_DELTA_DISKS_PLUS",
    "RESHAPE_DELTA_DISKS_MINUS",
    "REMOVE_AFTER_RESHAPE",
    "METADATA_FORMAT",
    "CROP_METADATA",
    "CACHE_USES_CACHEVOL",
];

/// `contents` of a text metadata file.
pub const CONTENTS: &str = "Text Format Volume Group";
/// Longest VG/LV name (`NAME_LEN - 1`).
pub const MAX_NAME_LEN: usize = 127;
/// Smallest thin-pool chunk in sectors (`DM_THIN_MIN_DATA_BLOCK_SIZE`).
pub const THIN_MIN_CHUNK: u64 = 128;
/// Largest thin-pool chunk in sectors (`DM_THIN_MAX_DATA_BLOCK_SIZE`).
pub const THIN_MAX_CHUNK: u64 = 2_097_152;
/// Largest thin device id (`DM_THIN_MAX_DEVICE_ID`).
pub const THIN_MAX_DEVICE_ID: u64 = (1 << 24) - 1;

/// A volume group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeGroup {
    /// VG name (the section key).
    pub name: String,
    /// VG id.
    pub id: LvmId,
    /// Metadata sequence number (newest wins).
    pub seqno: u64,
    /// `status`.
    pub status: Flags,
    /// `flags` (known entries only).
    pub flags: Flags,
    /// `tags`.
    pub tags: Vec<String>,
    /// `system_id`, if set.
    pub system_id: Option<String>,
    /// `lock_type` (`sanlock`, `dlm`, ...), if set.
    pub lock_type: Option<String>,
    /// Extent size in sectors.
    pub extent_size: u64,
    /// `max_lv`.
    pub max_lv: u64,
    /// `max_pv`.
    pub max_pv: u64,
    /// PVs in metadata order.
    pub pvs: Vec<PhysicalVolume>,
    /// LVs in metadata order (visible LVs first, as lvm2 writes them).
    pub lvs: Vec<LogicalVolume>,
    /// Suspicious facts the import accepted (see [`VolumeGroup::warnings`]).
    warnings: Vec<ImportWarning>,
}

/// Something odd in metadata that lvm2's importer accepts, and so does this one: the
/// caller decides whether to show it (the CLI prints each on stderr).
///
/// ```
/// use devmapper::lvm::{config::ParseMode, model::{VolumeGroup, WarningKind}};
/// // pvresize backups record a dev_size short of the PE area's end; lvm2 reads them.
/// let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 3
///   status = ["READ", "WRITE"] extent_size = 8 max_lv = 0 max_pv = 0
///   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
///     status = ["ALLOCATABLE"] dev_size = 64 pe_start = 8 pe_count = 10 } } }
///   contents = "Text Format Volume Group" version = 1"#;
/// let vg = VolumeGroup::from_text(text, ParseMode::Disk)?;
/// let w = &vg.warnings()[0];
/// assert_eq!(w.path, "vg0/physical_volumes/pv0");
/// assert!(matches!(w.kind, WarningKind::DevSizeShort { pe_end: 88, dev_size: 64 }));
/// # Ok::<(), devmapper::lvm::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ImportWarning {
    /// Where in the metadata.
    pub path: String,
    /// What.
    pub kind: WarningKind,
}

/// The kinds of [`ImportWarning`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarningKind {
    /// The PE area ends past `dev_size` (as `pvresize` backups record it).
    #[error("the PE area ends at sector {pe_end}, past dev_size {dev_size}")]
    DevSizeShort {
        /// `pe_start + pe_count * extent_size`.
        pe_end: u64,
        /// `dev_size`.
        dev_size: u64,
    },
    /// `pe_start + pe_count * extent_size` does not fit in 64 bits.
    #[error("the PE area's end overflows")]
    PeAreaOverflows,
    /// Two PV sections with the same name: as in lvm2, segments use the later one.
    #[error("PV section name appears twice; areas use the later one")]
    DuplicatePvHandle,
    /// Two PV sections with the same id.
    #[error("PV id {id} is also the id of PV {first}")]
    DuplicatePvId {
        /// The id.
        id: LvmId,
        /// The first PV with it.
        first: String,
    },
    /// An integer outside its field's range, read the way lvm2 reads it (the low 32 bits
    /// of 32-bit fields, negative numbers as unsigned 64-bit values).
    #[error("`{key}` = {value} is read as {read_as}, as lvm2 reads it")]
    Truncated {
        /// The key.
        key: String,
        /// The value in the text.
        value: i64,
        /// The value used.
        read_as: u64,
    },
    /// Two LVs map the same physical extents (lvm2 never allocates them twice): writing
    /// one changes the other.
    #[error("extents {start}..{end} are used by both {first} and {second}")]
    PeOverlap {
        /// First overlapping extent.
        start: u64,
        /// End of the overlap (exclusive).
        end: u64,
        /// One LV.
        first: String,
        /// The other.
        second: String,
    },
    /// A VG or LV name lvm2 would not create.
    #[error("name {name:?} is not a valid LVM name")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A segment type lvm2 does not know either (lvm2: "Unrecognised segment type").
    #[error("unrecognised segment type {segtype:?}")]
    UnknownSegmentType {
        /// The type as written.
        segtype: String,
    },
    /// The LV imports but cannot be activated or read; plan and export refuse it.
    #[error("{0}")]
    Unmappable(UnmappableKind),
}

/// A physical volume as the VG metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalVolume {
    /// The handle segments use (`pv0`, ...).
    pub handle: String,
    /// PV id; matches the label's `pv_uuid`.
    pub id: LvmId,
    /// `device`: where lvm2 last saw it (a hint only).
    pub device_hint: Option<String>,
    /// `status`.
    pub status: Flags,
    /// `flags`.
    pub flags: Flags,
    /// `tags`.
    pub tags: Vec<String>,
    /// `dev_size` in sectors, if recorded.
    pub dev_size: Option<u64>,
    /// First PE in sectors.
    pub pe_start: u64,
    /// Number of PEs.
    pub pe_count: u64,
}

impl PhysicalVolume {
    /// Marked missing (`MISSING` in `status` or `flags`).
    pub fn is_missing(&self) -> bool {
        self.status.contains("MISSING") || self.flags.contains("MISSING")
    }
}

/// A logical volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalVolume {
    /// LV name.
    pub name: String,
    /// LV id.
    pub id: LvmId,
    /// `status`.
    pub status: Flags,
    /// `flags` (known entries only).
    pub flags: Flags,
    /// `tags`.
    pub tags: Vec<String>,
    /// `read_ahead` in sectors (0 = auto, -1 = none), if set.
    pub read_ahead: Option<i64>,
    /// Persistent major number (with `FIXED_MINOR`).
    pub major: Option<i64>,
    /// Persistent minor number (with `FIXED_MINOR`).
    pub minor: Option<i64>,
    /// `creation_time` (seconds since the epoch).
    pub creation_time: Option<i64>,
    /// `creation_host`.
    pub creation_host: Option<String>,
    /// Segments sorted by `start_extent`, contiguous from 0.
    pub segments: Vec<Segment>,
}

impl LogicalVolume {
    /// Number of logical extents.
    pub fn le_count(&self) -> u64 {
        self.segments
            .last()
            .map_or(0, |s| s.start_extent + s.extent_count)
    }

    /// Has the `WRITE` status flag.
    pub fn is_writable(&self) -> bool {
        self.status.contains("WRITE")
    }

    /// The first segment's kind.
    pub fn first_kind(&self) -> Option<&SegmentKind> {
        self.segments.first().map(|s| &s.kind)
    }
}

/// One segment of an LV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First logical extent.
    pub start_extent: u64,
    /// Length in extents.
    pub extent_count: u64,
    /// `type` exactly as written (with any `+FLAG` suffixes).
    pub type_name: String,
    /// Decoded contents.
    pub kind: SegmentKind,
}

/// Where a stripe (or other area) of a segment lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Area {
    /// On a PV, starting at physical extent `pe`.
    Pv {
        /// PV handle.
        pv: String,
        /// First physical extent.
        pe: u64,
    },
    /// On another LV, starting at logical extent `le`.
    Lv {
        /// LV name.
        lv: String,
        /// First logical extent.
        le: u64,
    },
}

/// `discards` of a thin pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discards {
    /// `ignore` (also the default when absent).
    Ignore,
    /// `nopassdown`.
    NoPassdown,
    /// `passdown`.
    Passdown,
}

/// A `messageN` entry of a thin pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThinMessage {
    /// `create = "lv"`.
    Create(String),
    /// `delete = id`.
    Delete(u64),
}

/// The decoded contents of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentKind {
    /// `striped` (and `linear`): `areas.len()` stripes of `extent_count / stripes` extents.
    Striped {
        /// Stripe size in sectors (0 with one stripe).
        stripe_size: u64,
        /// The stripes.
        areas: Vec<Area>,
    },
    /// The segment of an internal `snapshotN` LV linking an origin to its COW LV.
    Snapshot {
        /// Chunk size in sectors.
        chunk_size: u64,
        /// Origin LV name.
        origin: String,
        /// COW LV name.
        cow: String,
        /// `merging_store` instead of `cow_store`: a merge into the origin is pending.
        merging: bool,
    },
    /// `thin-pool`.
    ThinPool {
        /// Metadata LV (`*_tmeta`).
        metadata: String,
        /// Data LV (`*_tdata`).
        data: String,
        /// `transaction_id`.
        transaction_id: u64,
        /// Chunk size in sectors.
        chunk_size: u64,
        /// `discards`.
        discards: Discards,
        /// `zero_new_blocks`.
        zero_new_blocks: bool,
        /// Pending messages.
        messages: Vec<ThinMessage>,
    },
    /// `thin`.
    Thin {
        /// The pool LV.
        pool: String,
        /// `transaction_id`.
        transaction_id: u64,
        /// Thin device id in the pool.
        device_id: u64,
        /// `origin` (thin snapshot), if any.
        origin: Option<String>,
        /// `merge`, if a merge is pending.
        merge: Option<String>,
        /// `external_origin`, if any.
        external_origin: Option<String>,
    },
    /// `zero`.
    Zero,
    /// `error`.
    Error,
    /// Any other type, kept but not mapped.
    Other {
        /// The base type name (without `+FLAG` suffixes), e.g. `raid1`.
        segtype: String,
        /// LVs named by the segment (images, logs, pools ...), in order.
        lv_refs: Vec<String>,
    },
}

impl SegmentKind {
    /// The dm target family this crate can map the segment to, if any.
    pub fn is_mappable(&self) -> bool {
        !matches!(self, SegmentKind::Other { .. })
    }
}

//------------------------------------------------------------------------------------------
// Import

fn err(path: &str, reason: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// lvm2's `_validate_name`: `[A-Za-z0-9+_.-]`, not starting with `-`, not `.`/`..`, at
/// most 127 bytes.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && !n.starts_with('-')
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'_' | b'.' | b'-'))
}

fn req<'c, 'a>(node: &Node<'c, 'a>, key: &str, path: &str) -> Result<Node<'c, 'a>> {
    node.find(key)
        .ok_or_else(|| err(path, format!("`{key}` is missing")))
}

/// Collects [`ImportWarning`]s during one import.
#[derive(Default)]
struct Warn(RefCell<Vec<ImportWarning>>);

impl Warn {
    fn push(&self, path: &str, kind: WarningKind) {
        self.0.borrow_mut().push(ImportWarning {
            path: path.to_string(),
            kind,
        });
    }
}

fn get_int(node: &Node<'_, '_>, key: &str, path: &str) -> Result<i64> {
    let n = req(node, key, path)?;
    match n.value().and_then(|v| v.items().first()) {
        Some(Scalar::Int(i)) => Ok(*i),
        _ => Err(err(path, format!("`{key}` must be an integer"))),
    }
}

/// A 32-bit field read as lvm2 reads it (`dm_config_get_uint32`: the low 32 bits).
fn get_u32(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<u64> {
    let i = get_int(node, key, path)?;
    let v = u64::from(i as u32);
    if u64::try_from(i) != Ok(v) {
        w.push(
            path,
            WarningKind::Truncated {
                key: key.to_string(),
                value: i,
                read_as: v,
            },
        );
    }
    Ok(v)
}

fn opt_u32(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<Option<u64>> {
    if node.find(key).is_none() {
        return Ok(None);
    }
    get_u32(node, key, path, w).map(Some)
}

/// A 64-bit field read as lvm2 reads it (`dm_config_get_uint64`: negative numbers wrap).
fn get_u64w(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<u64> {
    let i = get_int(node, key, path)?;
    let v = i as u64;
    if i < 0 {
        w.push(
            path,
            WarningKind::Truncated {
                key: key.to_string(),
                value: i,
                read_as: v,
            },
        );
    }
    Ok(v)
}

/// An optional integer that lvm2 reads with a fallback of 0 when absent or not an integer.
fn lenient_u64(node: &Node<'_, '_>, key: &str) -> u64 {
    match node
        .find(key)
        .and_then(|n| n.value())
        .and_then(|v| v.items().first().cloned())
    {
        Some(Scalar::Int(i)) => i as u64,
        _ => 0,
    }
}

fn get_str<'c>(node: &Node<'c, '_>, key: &str, path: &str) -> Result<&'c str> {
    let n = req(node, key, path)?;
    match n.value().and_then(|v| v.items().first()) {
        Some(Scalar::Str(s)) => Ok(s),
        _ => Err(err(path, format!("`{key}` must be a string"))),
    }
}

fn opt_str(node: &Node<'_, '_>, key: &str, path: &str) -> Result<Option<String>> {
    if node.find(key).is_none() {
        return Ok(None);
    }
    get_str(node, key, path).map(|s| Some(s.to_string()))
}

fn get_id(node: &Node<'_, '_>, path: &str) -> Result<LvmId> {
    let s = get_str(node, "id", path)?;
    s.parse().map_err(|e| err(path, format!("id {s:?}: {e}")))
}

fn str_list(node: &Node<'_, '_>, key: &str, path: &str) -> Result<Vec<String>> {
    let Some(n) = node.find(key) else {
        return Ok(Vec::new());
    };
    let items = n.value().map(|v| v.items()).unwrap_or_default();
    items
        .iter()
        .map(|s| match s {
            Scalar::Str(s) => Ok(s.to_string()),
            _ => Err(err(path, format!("`{key}` entries must be strings"))),
        })
        .collect()
}

/// `read_flags`: unknown entries are an error for `status` and ignored for `flags`.
fn read_flags(
    node: &Node<'_, '_>,
    key: &str,
    known: &[&str],
    strict: bool,
    path: &str,
) -> Result<Flags> {
    let mut out = Flags::new();
    for f in str_list(node, key, path)? {
        if strict && FLAGS_ONLY.contains(&f.as_str()) {
            return Err(err(path, format!("unknown status flag '{f}'")));
        }
        if known.contains(&f.as_str()) {
            out.insert(f);
        } else if strict {
            return Err(err(path, format!("unknown status flag '{f}'")));
        }
    }
    Ok(out)
}

impl VolumeGroup {
    /// Parse on-disk text ([`ParseMode::Disk`]) or a backup file ([`ParseMode::File`]) and
    /// import it.
    pub fn from_text(text: &[u8], mode: ParseMode) -> Result<VolumeGroup> {
        let cfg = super::config::parse_with(text, mode)?;
        VolumeGroup::from_config(&cfg)
    }

    /// Import a parsed text: the VG is the first top-level section.
    pub fn from_config(cfg: &Config<'_>) -> Result<VolumeGroup> {
        let first = |key: &str| {
            cfg.find(key)
                .and_then(|n| n.value())
                .and_then(|v| v.items().first())
        };
        match first("contents") {
            Some(Scalar::Str(s)) if s == CONTENTS => {}
            _ => return Err(err("contents", format!("must be \"{CONTENTS}\""))),
        }
        if !matches!(first("version"), Some(Scalar::Int(1))) {
            return Err(err("version", "must be 1"));
        }
        let vgn = cfg
            .nodes()
            .find(|n| n.is_section())
            .ok_or_else(|| err("", "no volume group section"))?;
        import_vg(&vgn)
    }

    /// The PV with this handle. If two PV sections share the name, the later one, as
    /// lvm2's importer resolves areas (its PV hash keeps the last insert).
    pub fn pv(&self, handle: &str) -> Option<&PhysicalVolume> {
        self.pvs.iter().rev().find(|p| p.handle == handle)
    }

    /// Why the segments of `lv` cannot be mapped or read, though lvm2 imports them: a
    /// striped segment the kernel refuses (`stripe_size` 0 or not dividing the stripe
    /// length) or an area running past the end of the LV it is on. The VG-wide
    /// `extent_size` 0 and snapshot relations are checked by [`Self::unmappable`].
    pub fn lv_fault(&self, lv: &LogicalVolume) -> Option<UnmappableKind> {
        self.lv_fault_with(lv, &|name| self.lv(name).map(LogicalVolume::le_count))
    }

    /// [`Self::lv_fault`] with the LV sizes (in extents) looked up by `size_of`.
    pub(crate) fn lv_fault_with(
        &self,
        lv: &LogicalVolume,
        size_of: &dyn Fn(&str) -> Option<u64>,
    ) -> Option<UnmappableKind> {
        for s in &lv.segments {
            let SegmentKind::Striped { stripe_size, areas } = &s.kind else {
                continue;
            };
            let k = areas.len() as u64;
            if let Some(f) = stripe_fault(
                s.start_extent,
                s.extent_count,
                k,
                *stripe_size,
                self.extent_size,
            ) {
                return Some(f);
            }
            let per = s.extent_count / k.max(1);
            for a in areas {
                if let Area::Lv { lv: sub, le } = a {
                    let size = size_of(sub).unwrap_or(0);
                    let end = le.saturating_add(per);
                    if end > size {
                        return Some(UnmappableKind::AreaBeyondLv {
                            sub: sub.clone(),
                            end,
                            size,
                        });
                    }
                }
            }
        }
        None
    }

    /// Snapshot relations lvm2 reads but would not activate (and never writes): chunk
    /// size 0, an origin that is an internal `snapshotN` LV or another snapshot's COW
    /// store (snapshots of snapshots, cycles), a COW store shared by several snapshots.
    /// Each is keyed by the snapshot's COW LV (the name `lvs` shows), once.
    ///
    /// ```
    /// # use devmapper::lvm::{config::ParseMode, model::VolumeGroup, UnmappableKind};
    /// # let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 1
    /// #  status = ["READ", "WRITE"] extent_size = 8 max_lv = 0 max_pv = 0
    /// #  physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
    /// #    status = ["ALLOCATABLE"] pe_start = 8 pe_count = 10 } }
    /// #  logical_volumes {
    /// #   a { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlA" status = ["READ", "WRITE", "VISIBLE"]
    /// #     segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "striped"
    /// #     stripe_count = 1 stripes = ["pv0", 0] } }
    /// #   b { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlB" status = ["READ", "WRITE", "VISIBLE"]
    /// #     segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "striped"
    /// #     stripe_count = 1 stripes = ["pv0", 2] } }
    /// #   snapshot0 { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlC" status = ["READ"]
    /// #     segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "snapshot"
    /// #     chunk_size = 8 origin = "a" cow_store = "b" } }
    /// #   snapshot1 { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlD" status = ["READ"]
    /// #     segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "snapshot"
    /// #     chunk_size = 8 origin = "b" cow_store = "a" } } } }
    /// #  contents = "Text Format Volume Group" version = 1"#;
    /// // `a` is the COW of a snapshot of `b`, and `b` the COW of a snapshot of `a`.
    /// let vg = VolumeGroup::from_text(text, ParseMode::Disk)?;
    /// let faults = vg.snapshot_faults();
    /// assert!(matches!(&faults[0], ("b", UnmappableKind::SnapshotCycle { .. })));
    /// # Ok::<(), devmapper::lvm::Error>(())
    /// ```
    pub fn snapshot_faults(&self) -> Vec<(&str, UnmappableKind)> {
        let links: Vec<SnapshotLink<'_>> = self.snapshot_links().collect();
        let mut by_cow: HashMap<&str, Vec<&str>> = HashMap::new();
        for l in &links {
            by_cow
                .entry(l.cow)
                .or_default()
                .push(l.snapshot_lv.name.as_str());
        }
        let internal: HashSet<&str> = links.iter().map(|l| l.snapshot_lv.name.as_str()).collect();
        // COW -> its origin (the first link naming the COW, as `cow_link` finds it).
        let mut origin_of_cow: HashMap<&str, &str> = HashMap::new();
        for l in &links {
            origin_of_cow.entry(l.cow).or_insert(l.origin);
        }
        let cycles = cycles(&origin_of_cow);
        let mut done: HashSet<&str> = HashSet::new();
        let mut out: Vec<(&str, UnmappableKind)> = Vec::new();
        for l in &links {
            if !done.insert(l.cow) {
                continue;
            }
            let kind = if internal.contains(l.origin) {
                UnmappableKind::OriginIsSnapshot {
                    origin: l.origin.to_string(),
                }
            } else if internal.contains(l.cow) {
                UnmappableKind::CowIsSnapshot {
                    cow: l.cow.to_string(),
                }
            } else if let Some(v) = by_cow.get(l.cow).filter(|v| v.len() > 1) {
                UnmappableKind::SharedCow {
                    snapshots: v.iter().map(|s| s.to_string()).collect(),
                }
            } else if let Some(chain) = cycles.get(l.cow) {
                UnmappableKind::SnapshotCycle {
                    chain: chain.clone(),
                }
            } else if origin_of_cow.contains_key(l.origin) {
                UnmappableKind::OriginIsCow {
                    origin: l.origin.to_string(),
                }
            } else if l.chunk_size == 0 {
                UnmappableKind::SnapshotChunkZero
            } else {
                continue;
            };
            out.push((l.cow, kind));
        }
        out
    }

    /// Everything that stops `lv` from being mapped or read although it imports: the
    /// VG's `extent_size` 0, [`Self::lv_fault`], and, for a snapshot's COW LV,
    /// [`Self::snapshot_faults`].
    pub fn unmappable(&self, lv: &LogicalVolume) -> Option<UnmappableKind> {
        if self.extent_size == 0 {
            return Some(UnmappableKind::ExtentSizeZero);
        }
        if let Some(f) = self.lv_fault(lv) {
            return Some(f);
        }
        if self.cow_link(&lv.name).is_some() {
            return self
                .snapshot_faults()
                .into_iter()
                .find(|(c, _)| *c == lv.name)
                .map(|(_, k)| k);
        }
        None
    }

    /// Suspicious facts the import accepted, in the order found.
    pub fn warnings(&self) -> &[ImportWarning] {
        &self.warnings
    }

    /// The LV with this name.
    pub fn lv(&self, name: &str) -> Option<&LogicalVolume> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// Size of an LV in sectors.
    pub fn lv_size(&self, lv: &LogicalVolume) -> u64 {
        lv.le_count().saturating_mul(self.extent_size)
    }

    /// The snapshot segments (of internal `snapshotN` LVs) whose origin is `origin`, in
    /// metadata order.
    pub fn snapshots_of<'s>(
        &'s self,
        origin: &'s str,
    ) -> impl Iterator<Item = SnapshotLink<'s>> + 's {
        self.snapshot_links().filter(move |l| l.origin == origin)
    }

    /// Every snapshot relation in the VG.
    pub fn snapshot_links(&self) -> impl Iterator<Item = SnapshotLink<'_>> {
        self.lvs.iter().filter_map(|lv| match lv.first_kind() {
            Some(SegmentKind::Snapshot {
                chunk_size,
                origin,
                cow,
                merging,
            }) => Some(SnapshotLink {
                snapshot_lv: lv,
                origin,
                cow,
                chunk_size: *chunk_size,
                merging: *merging,
                origin_extents: lv.segments.first().map_or(0, |s| s.extent_count),
            }),
            _ => None,
        })
    }

    /// The snapshot relation in which `lv` is the COW store.
    pub fn cow_link(&self, lv: &str) -> Option<SnapshotLink<'_>> {
        self.snapshot_links().find(|l| l.cow == lv)
    }

    /// Is `lv` an internal `snapshotN` LV?
    pub fn is_snapshot_internal(&self, lv: &LogicalVolume) -> bool {
        matches!(lv.first_kind(), Some(SegmentKind::Snapshot { .. }))
    }

    /// lvm2's `lv_is_visible`: the internal `snapshotN` LVs are not; a COW LV is visible
    /// when its origin is; others by their `VISIBLE` flag.
    pub fn is_visible(&self, lv: &LogicalVolume) -> bool {
        if self.is_snapshot_internal(lv) {
            return false;
        }
        if let Some(link) = self.cow_link(&lv.name) {
            return self
                .lv(link.origin)
                .is_some_and(|o| o.status.contains("VISIBLE"));
        }
        lv.status.contains("VISIBLE")
    }
}

/// Longest cycle shown in [`UnmappableKind::SnapshotCycle`].
const CYCLE_SHOWN: usize = 16;

/// The members of cycles of a COW -> origin map, each with its cycle from itself back to
/// itself (at most [`CYCLE_SHOWN`] names). Linear: every node is walked once.
fn cycles<'a>(next: &HashMap<&'a str, &'a str>) -> HashMap<&'a str, Vec<String>> {
    let mut state: HashMap<&str, bool> = HashMap::new(); // false: on the path, true: done
    let mut out = HashMap::new();
    let mut starts: Vec<&str> = next.keys().copied().collect();
    starts.sort_unstable();
    for start in starts {
        let mut path: Vec<&str> = Vec::new();
        let mut cur = start;
        loop {
            match state.get(cur) {
                Some(true) => break,
                Some(false) => {
                    let from = path.iter().position(|p| *p == cur).unwrap_or(0);
                    let cyc = path.get(from..).unwrap_or_default();
                    for (i, m) in cyc.iter().enumerate() {
                        let mut chain: Vec<String> = cyc
                            .iter()
                            .cycle()
                            .skip(i)
                            .take(cyc.len().min(CYCLE_SHOWN))
                            .map(|s| s.to_string())
                            .collect();
                        if cyc.len() > CYCLE_SHOWN {
                            chain.push("...".into());
                        }
                        chain.push(m.to_string());
                        out.insert(*m, chain);
                    }
                    break;
                }
                None => {
                    state.insert(cur, false);
                    path.push(cur);
                    match next.get(cur) {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
            }
        }
        for p in path {
            state.insert(p, true);
        }
    }
    out
}

/// One origin/COW relation, from a `snapshotN` LV's segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLink<'a> {
    /// The internal `snapshotN` LV.
    pub snapshot_lv: &'a LogicalVolume,
    /// Origin LV name.
    pub origin: &'a str,
    /// COW LV name.
    pub cow: &'a str,
    /// Chunk size in sectors.
    pub chunk_size: u64,
    /// A merge into the origin is pending.
    pub merging: bool,
    /// The snapshot's size in extents (the origin's size when it was taken).
    pub origin_extents: u64,
}

fn import_vg(vgn: &Node<'_, '_>) -> Result<VolumeGroup> {
    let w = Warn::default();
    let name = vgn.key().to_string();
    if !valid_name(&name) {
        w.push(&name, WarningKind::InvalidName { name: name.clone() });
    }
    let path = name.as_str();
    let id = get_id(vgn, path)?;
    let seqno = get_u32(vgn, "seqno", path, &w)?;
    req(vgn, "status", path)?;
    let status = read_flags(vgn, "status", VG_FLAGS, true, path)?;
    let flags = read_flags(vgn, "flags", VG_FLAGS, false, path)?;
    let tags = str_list(vgn, "tags", path)?;
    let system_id = opt_str(vgn, "system_id", path)?.filter(|s| !s.is_empty());
    let lock_type = opt_str(vgn, "lock_type", path)?;
    let extent_size = get_u32(vgn, "extent_size", path, &w)?;
    if extent_size == 0 {
        w.push(
            path,
            WarningKind::Unmappable(UnmappableKind::ExtentSizeZero),
        );
    }
    let max_lv = get_u32(vgn, "max_lv", path, &w)?;
    let max_pv = get_u32(vgn, "max_pv", path, &w)?;

    let pvs_node = req(vgn, "physical_volumes", path)?;
    let mut pvs: Vec<PhysicalVolume> = Vec::new();
    let mut pv_ids: HashMap<LvmId, String> = HashMap::new();
    for pvn in pvs_node.sections() {
        let ppath = format!("{path}/physical_volumes/{}", pvn.key());
        let pv = import_pv(&pvn, extent_size, &ppath, &w)?;
        if pvs.iter().any(|p| p.handle == pv.handle) {
            w.push(&ppath, WarningKind::DuplicatePvHandle);
        }
        if let Some(first) = pv_ids.get(&pv.id) {
            w.push(
                &ppath,
                WarningKind::DuplicatePvId {
                    id: pv.id,
                    first: first.clone(),
                },
            );
        } else {
            pv_ids.insert(pv.id, pv.handle.clone());
        }
        pvs.push(pv);
    }

    // LV names first (areas may refer to LVs defined later), then segments.
    let mut lv_nodes = Vec::new();
    let mut lv_names: HashMap<&str, ()> = HashMap::new();
    let mut pmspare: Option<&str> = None;
    if let Some(lvs_node) = vgn.find("logical_volumes") {
        for lvn in lvs_node.sections() {
            let lpath = format!("{path}/logical_volumes/{}", lvn.key());
            if !valid_name(lvn.key()) {
                w.push(
                    &lpath,
                    WarningKind::InvalidName {
                        name: lvn.key().to_string(),
                    },
                );
            }
            if lv_names.insert(lvn.key(), ()).is_some() {
                return Err(err(path, format!("LV {} appears twice", lvn.key())));
            }
            // `_read_lvnames`: one hidden `*_pmspare` LV per VG.
            let visible = str_list(&lvn, "status", &lpath)?
                .iter()
                .any(|f| f == "VISIBLE");
            if !visible && lvn.key().contains("_pmspare") {
                if let Some(first) = pmspare {
                    return Err(Error::Import {
                        path: lpath,
                        kind: ImportErrorKind::SecondPoolMetadataSpare {
                            first: first.to_string(),
                        },
                    });
                }
                pmspare = Some(lvn.key());
            }
            lv_nodes.push(lvn);
        }
    }
    // Duplicate handles: the later section wins, as in lvm2's PV hash.
    let pv_index: HashMap<&str, &PhysicalVolume> =
        pvs.iter().map(|p| (p.handle.as_str(), p)).collect();
    let ctx = Ctx {
        pvs: &pv_index,
        lvs: &lv_names,
        w: &w,
    };
    let mut lvs = Vec::with_capacity(lv_nodes.len());
    for lvn in lv_nodes {
        lvs.push(import_lv(
            &lvn,
            &ctx,
            &format!("{path}/logical_volumes/{}", lvn.key()),
        )?);
    }
    let mut vg = VolumeGroup {
        name,
        id,
        seqno,
        status,
        flags,
        tags,
        system_id,
        lock_type,
        extent_size,
        max_lv,
        max_pv,
        pvs,
        lvs,
        warnings: Vec::new(),
    };
    check_links(&vg, &w)?;
    check_pe_overlaps(&vg, &w);
    for (lv, kind) in vg.snapshot_faults() {
        w.push(
            &format!("{}/logical_volumes/{lv}", vg.name),
            WarningKind::Unmappable(kind),
        );
    }
    vg.warnings = w.0.into_inner();
    Ok(vg)
}

fn import_pv(pvn: &Node<'_, '_>, extent_size: u64, path: &str, w: &Warn) -> Result<PhysicalVolume> {
    let id = get_id(pvn, path)?;
    req(pvn, "status", path)?;
    let status = read_flags(pvn, "status", PV_FLAGS, true, path)?;
    let flags = read_flags(pvn, "flags", PV_FLAGS, false, path)?;
    let dev_size = if pvn.find("dev_size").is_some() {
        Some(get_u64w(pvn, "dev_size", path, w)?)
    } else {
        None
    };
    let pe_start = get_u64w(pvn, "pe_start", path, w)?;
    let pe_count = get_u32(pvn, "pe_count", path, w)?;
    // lvm2 reads both as 0 when absent or not integers, and wants both or neither.
    let (ba_start, ba_size) = (lenient_u64(pvn, "ba_start"), lenient_u64(pvn, "ba_size"));
    if (ba_start == 0) != (ba_size == 0) {
        return Err(Error::Import {
            path: path.to_string(),
            kind: ImportErrorKind::IncompleteBootloaderArea,
        });
    }
    // lvm2 does not check the PE area against dev_size on import (pvresize backups
    // record a dev_size short of it): a warning, not an error.
    match pe_count
        .checked_mul(extent_size)
        .and_then(|b| b.checked_add(pe_start))
    {
        None => w.push(path, WarningKind::PeAreaOverflows),
        Some(end) => {
            if let Some(ds) = dev_size
                && end > ds
            {
                w.push(
                    path,
                    WarningKind::DevSizeShort {
                        pe_end: end,
                        dev_size: ds,
                    },
                );
            }
        }
    }
    Ok(PhysicalVolume {
        handle: pvn.key().to_string(),
        id,
        device_hint: opt_str(pvn, "device", path)?,
        status,
        flags,
        tags: str_list(pvn, "tags", path)?,
        dev_size,
        pe_start,
        pe_count,
    })
}

struct Ctx<'a> {
    pvs: &'a HashMap<&'a str, &'a PhysicalVolume>,
    lvs: &'a HashMap<&'a str, ()>,
    w: &'a Warn,
}

impl Ctx<'_> {
    fn lv_ref(&self, node: &Node<'_, '_>, key: &str, path: &str) -> Result<String> {
        let name = get_str(node, key, path)?;
        if !self.lvs.contains_key(name) {
            return Err(err(path, format!("`{key}` names unknown LV {name:?}")));
        }
        Ok(name.to_string())
    }

    fn opt_lv_ref(&self, node: &Node<'_, '_>, key: &str, path: &str) -> Result<Option<String>> {
        if node.find(key).is_none() {
            return Ok(None);
        }
        self.lv_ref(node, key, path).map(Some)
    }
}

fn import_lv(lvn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<LogicalVolume> {
    let id = get_id(lvn, path)?;
    req(lvn, "status", path)?;
    let status = read_flags(lvn, "status", LV_FLAGS, true, path)?;
    let flags = read_flags(lvn, "flags", LV_FLAGS, false, path)?;
    let import_err = |kind| Error::Import {
        path: path.to_string(),
        kind,
    };
    // `_read_lvnames`: creation_time and creation_host go together.
    match (lvn.find("creation_time"), lvn.find("creation_host")) {
        (Some(_), None) => return Err(import_err(ImportErrorKind::CreationTimeWithoutHost)),
        (None, Some(_)) => return Err(import_err(ImportErrorKind::CreationHostWithoutTime)),
        _ => {}
    }
    let int = |k: &str| -> Result<Option<i64>> {
        match lvn.find(k) {
            None => Ok(None),
            Some(n) => match n.value().and_then(|v| v.items().first()) {
                Some(Scalar::Int(i)) => Ok(Some(*i)),
                _ => Err(err(path, format!("`{k}` must be an integer"))),
            },
        }
    };
    let minor = int("minor")?;
    if status.contains("FIXED_MINOR") && minor.is_none() {
        return Err(import_err(ImportErrorKind::FixedMinorWithoutMinor));
    }
    let mut segments = Vec::new();
    for sn in lvn.sections() {
        let spath = format!("{path}/{}", sn.key());
        segments.push(import_segment(&sn, ctx, &spath)?);
    }
    let segment_count = get_u32(lvn, "segment_count", path, ctx.w)?;
    if segments.len() as u64 != segment_count {
        return Err(err(
            path,
            format!(
                "segment_count is {segment_count} but there are {} segments",
                segments.len()
            ),
        ));
    }
    if segments.is_empty() {
        return Err(import_err(ImportErrorKind::NoSegments));
    }
    segments.sort_by_key(|s| s.start_extent);
    let mut next = 0u64;
    for s in &segments {
        if s.start_extent != next {
            return Err(err(
                path,
                format!(
                    "segment at extent {} leaves a gap or overlap (expected {next})",
                    s.start_extent
                ),
            ));
        }
        next = s
            .start_extent
            .checked_add(s.extent_count)
            .ok_or_else(|| err(path, "extent count overflows"))?;
    }
    // Empty `zero`/`error` segments map nothing: dropped once they passed the checks.
    segments.retain(|s| s.extent_count > 0);
    if segments.is_empty() {
        return Err(import_err(ImportErrorKind::NoSegments));
    }
    let is_snap = segments
        .iter()
        .any(|s| matches!(s.kind, SegmentKind::Snapshot { .. }));
    if is_snap && segments.len() != 1 {
        return Err(err(path, "only one segment is permitted for a snapshot"));
    }
    Ok(LogicalVolume {
        name: lvn.key().to_string(),
        id,
        status,
        flags,
        tags: str_list(lvn, "tags", path)?,
        read_ahead: int("read_ahead")?,
        major: int("major")?,
        minor,
        creation_time: int("creation_time")?,
        creation_host: opt_str(lvn, "creation_host", path)?,
        segments: merge_segments(segments),
    })
}

/// `lv_merge_segments`: join adjacent striped segments whose every area continues where
/// the previous one ended.
fn merge_segments(segs: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs {
        if let Some(prev) = out.last_mut()
            && let (
                SegmentKind::Striped {
                    stripe_size: ps,
                    areas: pa,
                },
                SegmentKind::Striped {
                    stripe_size: ns,
                    areas: na,
                },
            ) = (&prev.kind, &s.kind)
            && prev.type_name == s.type_name
            && ps == ns
            && pa.len() == na.len()
            && !pa.is_empty()
        {
            let per = prev.extent_count / pa.len() as u64;
            let contiguous = pa.iter().zip(na).all(|(a, b)| match (a, b) {
                (Area::Pv { pv: p1, pe: e1 }, Area::Pv { pv: p2, pe: e2 }) => {
                    p1 == p2 && e1 + per == *e2
                }
                (Area::Lv { lv: l1, le: e1 }, Area::Lv { lv: l2, le: e2 }) => {
                    l1 == l2 && e1 + per == *e2
                }
                _ => false,
            });
            if contiguous {
                prev.extent_count += s.extent_count;
                continue;
            }
        }
        out.push(s);
    }
    out
}

fn import_segment(sn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<Segment> {
    let start_extent = get_u32(sn, "start_extent", path, ctx.w)?;
    let extent_count = get_u32(sn, "extent_count", path, ctx.w)?;
    let type_name = get_str(sn, "type", path)?.to_string();
    // lvm2 takes an empty segment without areas (it maps nothing); one with areas fails
    // its PV/LV area checks.
    if extent_count == 0 && !matches!(type_name.as_str(), "zero" | "error") {
        return Err(err(path, "zero-length segment"));
    }
    let mut parts = type_name.split('+');
    let base = parts.next().unwrap_or_default().to_string();
    let unknown_suffix = parts.any(|f| !SEGTYPE_FLAGS.contains(&f));
    let kind = if unknown_suffix {
        ctx.w.push(
            path,
            WarningKind::UnknownSegmentType {
                segtype: type_name.clone(),
            },
        );
        other(sn, &base)
    } else {
        match base.as_str() {
            "striped" | "linear" => import_striped(sn, ctx, path, extent_count)?,
            "snapshot" => {
                let (cow, merging) = if sn.find("merging_store").is_some() {
                    if sn.find("cow_store").is_some() {
                        return Err(err(path, "both cow_store and merging_store are specified"));
                    }
                    (ctx.lv_ref(sn, "merging_store", path)?, true)
                } else {
                    (ctx.lv_ref(sn, "cow_store", path)?, false)
                };
                let origin = ctx.lv_ref(sn, "origin", path)?;
                if origin == cow {
                    return Err(err(path, "a snapshot's origin cannot be its own COW store"));
                }
                // A chunk size of 0 imports (lvm2 reads it); plan and export refuse it.
                let chunk_size = get_u32(sn, "chunk_size", path, ctx.w)?;
                SegmentKind::Snapshot {
                    chunk_size,
                    origin,
                    cow,
                    merging,
                }
            }
            "thin-pool" => import_thin_pool(sn, ctx, path)?,
            "thin" => {
                let device_id = get_u64w(sn, "device_id", path, ctx.w)?;
                if device_id > THIN_MAX_DEVICE_ID {
                    return Err(err(path, format!("unsupported device_id {device_id}")));
                }
                SegmentKind::Thin {
                    pool: ctx.lv_ref(sn, "thin_pool", path)?,
                    transaction_id: get_u64w(sn, "transaction_id", path, ctx.w)?,
                    device_id,
                    origin: ctx.opt_lv_ref(sn, "origin", path)?,
                    merge: ctx.opt_lv_ref(sn, "merge", path)?,
                    external_origin: ctx.opt_lv_ref(sn, "external_origin", path)?,
                }
            }
            "zero" => SegmentKind::Zero,
            "error" => SegmentKind::Error,
            _ => {
                if !KNOWN_SEGTYPES.contains(&base.as_str()) {
                    ctx.w.push(
                        path,
                        WarningKind::UnknownSegmentType {
                            segtype: type_name.clone(),
                        },
                    );
                }
                other(sn, &base)
            }
        }
    };
    Ok(Segment {
        start_extent,
        extent_count,
        type_name,
        kind,
    })
}

/// Segment types lvm2 2.03 knows besides the ones mapped here.
const KNOWN_SEGTYPES: &[&str] = &[
    "mirror",
    "raid0",
    "raid0_meta",
    "raid1",
    "raid10",
    "raid10_near",
    "raid4",
    "raid5",
    "raid5_n",
    "raid5_la",
    "raid5_ra",
    "raid5_ls",
    "raid5_rs",
    "raid6",
    "raid6_zr",
    "raid6_nr",
    "raid6_nc",
    "raid6_n_6",
    "raid6_la_6",
    "raid6_ra_6",
    "raid6_ls_6",
    "raid6_rs_6",
    "cache",
    "cache-pool",
    "writecache",
    "integrity",
    "vdo",
    "vdo-pool",
    "free",
];

fn other(sn: &Node<'_, '_>, base: &str) -> SegmentKind {
    // Keep the LV names the segment mentions (images, logs, pools), best effort.
    let mut lv_refs = Vec::new();
    for n in sn.children() {
        if let Some(v) = n.value()
            && matches!(
                n.key(),
                "mirrors"
                    | "raids"
                    | "raid0_lvs"
                    | "mirror_log"
                    | "cache_pool"
                    | "origin"
                    | "pool"
                    | "metadata"
                    | "data"
                    | "writecache"
                    | "integrity_meta"
                    | "vdo_pool"
                    | "vdo_data"
            )
        {
            for s in v.items() {
                if let Scalar::Str(s) = s {
                    lv_refs.push(s.to_string());
                }
            }
        }
    }
    SegmentKind::Other {
        segtype: base.to_string(),
        lv_refs,
    }
}

fn import_striped(
    sn: &Node<'_, '_>,
    ctx: &Ctx<'_>,
    path: &str,
    extent_count: u64,
) -> Result<SegmentKind> {
    let stripe_count = get_u32(sn, "stripe_count", path, ctx.w)?;
    if stripe_count == 0 {
        return Err(err(path, "stripe_count is 0"));
    }
    // lvm2 reads stripe_size only with several stripes, and takes any value; the ones the
    // kernel refuses (0, not dividing the stripe length) are refused by plan and export.
    let stripe_size = if stripe_count > 1 {
        get_u32(sn, "stripe_size", path, ctx.w)?
    } else {
        0
    };
    if !extent_count.is_multiple_of(stripe_count) {
        return Err(err(
            path,
            format!("extent count {extent_count} is not divisible by stripe count {stripe_count}"),
        ));
    }
    let per_stripe = extent_count / stripe_count;
    let items = sn
        .get_list("stripes")
        .ok_or_else(|| err(path, "`stripes` is missing"))?;
    if items.len() as u64 != stripe_count * 2 {
        return Err(err(
            path,
            format!(
                "`stripes` has {} items for {stripe_count} stripes",
                items.len()
            ),
        ));
    }
    let mut areas = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks_exact(2) {
        let (Some(Scalar::Str(name)), Some(Scalar::Int(off))) = (pair.first(), pair.get(1)) else {
            return Err(err(path, "`stripes` must hold (name, extent) pairs"));
        };
        // `(uint32_t) cv->next->v.i`, as lvm2 reads the offset.
        let off = u64::from(*off as u32);
        if let Some(pv) = ctx.pvs.get(&**name) {
            let end = off
                .checked_add(per_stripe)
                .ok_or_else(|| err(path, "extent overflow"))?;
            if end > pv.pe_count {
                return Err(err(
                    path,
                    format!(
                        "extents {off}..{end} are beyond the {} PEs of {name}",
                        pv.pe_count
                    ),
                ));
            }
            areas.push(Area::Pv {
                pv: name.to_string(),
                pe: off,
            });
        } else if ctx.lvs.contains_key(&**name) {
            areas.push(Area::Lv {
                lv: name.to_string(),
                le: off,
            });
        } else {
            return Err(err(
                path,
                format!("couldn't find volume {name:?} for segment"),
            ));
        }
    }
    Ok(SegmentKind::Striped { stripe_size, areas })
}

/// The kernel's striped target wants a non-zero chunk that divides each stripe's length.
pub(crate) fn stripe_fault(
    start_extent: u64,
    extent_count: u64,
    stripes: u64,
    stripe_size: u64,
    extent_size: u64,
) -> Option<UnmappableKind> {
    if stripes <= 1 {
        return None;
    }
    if stripe_size == 0 {
        return Some(UnmappableKind::StripeSizeZero { start_extent });
    }
    let per_stripe = (extent_count / stripes).saturating_mul(extent_size);
    if !per_stripe.is_multiple_of(stripe_size) {
        return Some(UnmappableKind::StripeSizeNotDividing {
            start_extent,
            stripe_size,
            per_stripe,
        });
    }
    None
}

fn import_thin_pool(sn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<SegmentKind> {
    let metadata = ctx.lv_ref(sn, "metadata", path)?;
    let data = ctx.lv_ref(sn, "pool", path)?;
    let transaction_id = get_u64w(sn, "transaction_id", path, ctx.w)?;
    let chunk_size = get_u32(sn, "chunk_size", path, ctx.w)?;
    let discards = match opt_str(sn, "discards", path)?.as_deref() {
        None | Some("ignore") => Discards::Ignore,
        Some("nopassdown") => Discards::NoPassdown,
        Some("passdown") => Discards::Passdown,
        Some(o) => return Err(err(path, format!("discards option {o:?} unsupported"))),
    };
    if !(THIN_MIN_CHUNK..=THIN_MAX_CHUNK).contains(&chunk_size) {
        return Err(err(path, format!("unsupported chunk_size {chunk_size}")));
    }
    let zero_new_blocks = opt_u32(sn, "zero_new_blocks", path, ctx.w)?.unwrap_or(0) != 0;
    let mut messages = Vec::new();
    for m in sn.sections() {
        let mpath = format!("{path}/{}", m.key());
        if m.find("create").is_some() {
            messages.push(ThinMessage::Create(ctx.lv_ref(&m, "create", &mpath)?));
        } else if m.find("delete").is_some() {
            messages.push(ThinMessage::Delete(get_u32(&m, "delete", &mpath, ctx.w)?));
        } else {
            return Err(err(&mpath, "unknown message"));
        }
    }
    Ok(SegmentKind::ThinPool {
        metadata,
        data,
        transaction_id,
        chunk_size,
        discards,
        zero_new_blocks,
        messages,
    })
}

/// Most [`WarningKind::PeOverlap`] warnings reported per VG.
const MAX_OVERLAP_WARNINGS: usize = 32;

/// Physical extents allocated to two LVs: accepted (lvm2 only checks that on write),
/// reported once per PV and pair, at most [`MAX_OVERLAP_WARNINGS`] times.
fn check_pe_overlaps(vg: &VolumeGroup, w: &Warn) {
    let mut count = 0usize;
    let mut by_pv: HashMap<&str, Vec<(u64, u64, &str)>> = HashMap::new();
    for lv in &vg.lvs {
        for s in &lv.segments {
            if let SegmentKind::Striped { areas, .. } = &s.kind {
                let per = s.extent_count / areas.len().max(1) as u64;
                for a in areas {
                    if let Area::Pv { pv, pe } = a {
                        by_pv.entry(pv.as_str()).or_default().push((
                            *pe,
                            pe.saturating_add(per),
                            lv.name.as_str(),
                        ));
                    }
                }
            }
        }
    }
    let mut handles: Vec<&str> = by_pv.keys().copied().collect();
    handles.sort_unstable();
    for h in handles {
        let Some(ranges) = by_pv.get_mut(h) else {
            continue;
        };
        ranges.sort_unstable();
        let mut reported: HashSet<(&str, &str)> = HashSet::new();
        let mut reach: Option<(u64, &str)> = None; // furthest end so far, and its LV
        for &(start, end, lv) in ranges.iter() {
            if let Some((far, other)) = reach
                && start < far
                && other != lv
                && count < MAX_OVERLAP_WARNINGS
                && reported.insert((other, lv))
            {
                count += 1;
                w.push(
                    &format!("{}/physical_volumes/{h}", vg.name),
                    WarningKind::PeOverlap {
                        start,
                        end: end.min(far),
                        first: other.to_string(),
                        second: lv.to_string(),
                    },
                );
            }
            if reach.is_none_or(|(far, _)| end > far) {
                reach = Some((end, lv));
            }
        }
    }
}

/// Cross-LV checks once every LV is known: no LV used as its own area (lvm2 refuses it);
/// LV areas past their LV's end and striped segments the kernel would refuse are
/// accepted, as lvm2 accepts them, with a warning (plan and export refuse those LVs).
fn check_links(vg: &VolumeGroup, w: &Warn) -> Result<()> {
    let sizes: HashMap<&str, u64> = vg
        .lvs
        .iter()
        .map(|l| (l.name.as_str(), l.le_count()))
        .collect();
    for lv in &vg.lvs {
        let path = format!("{}/logical_volumes/{}", vg.name, lv.name);
        for s in &lv.segments {
            if let SegmentKind::Striped { areas, .. } = &s.kind
                && areas
                    .iter()
                    .any(|a| matches!(a, Area::Lv { lv: name, .. } if *name == lv.name))
            {
                return Err(err(&path, "an LV cannot map onto itself"));
            }
        }
        if let Some(kind) = vg.lv_fault_with(lv, &|n| sizes.get(n).copied()) {
            w.push(&path, WarningKind::Unmappable(kind));
        }
    }
    Ok(())
}
