//! The typed VG: physical volumes, logical volumes, segments and the names, flags and
//! limits lvm2 gives them.

use std::collections::BTreeSet;

use super::warning::ImportWarning;
use crate::lvm::id::LvmId;

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
/// Smallest thin-pool chunk in sectors (`DM_THIN_MIN_DATA_BLOCK_SIZE`): the kernel's bound.
pub const THIN_MIN_CHUNK: u64 = crate::targets::THIN_POOL_MIN_BLOCK_SIZE;
/// Largest thin-pool chunk in sectors (`DM_THIN_MAX_DATA_BLOCK_SIZE`): the kernel's bound.
pub const THIN_MAX_CHUNK: u64 = crate::targets::THIN_POOL_MAX_BLOCK_SIZE;
/// Largest thin device id (`DM_THIN_MAX_DEVICE_ID`).
pub const THIN_MAX_DEVICE_ID: u64 = crate::targets::THIN_MAX_DEV_ID as u64;

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
    /// `lock_args` (lvmlockd's data for the lock manager), if set; lvm2 writes it only
    /// with `lock_type`.
    pub lock_args: Option<String>,
    /// `pr`: persistent reservation settings (lvm2 2.03.30 and later).
    pub pr: PersistentReservation,
    /// Extent size in sectors.
    pub extent_size: u64,
    /// `max_lv`.
    pub max_lv: u64,
    /// `max_pv`.
    pub max_pv: u64,
    /// `allocation_policy` ([`AllocPolicy::Normal`] when absent or not recognised).
    pub allocation_policy: AllocPolicy,
    /// `profile`: the name of the metadata profile attached to the VG, if any.
    pub profile: Option<String>,
    /// `metadata_copies` (`vgmetadatacopies`; 0, lvm2's default, when absent).
    pub metadata_copies: u64,
    /// PVs in metadata order.
    pub pvs: Vec<PhysicalVolume>,
    /// LVs in metadata order (visible LVs first, as lvm2 writes them).
    pub lvs: Vec<LogicalVolume>,
    /// Suspicious facts the import accepted (see [`VolumeGroup::warnings`]).
    pub(super) warnings: Vec<ImportWarning>,
}

impl VolumeGroup {
    /// An empty VG with the settings `vgcreate` gives one by default: status `RESIZEABLE`,
    /// `READ`, `WRITE`, no limits (`max_lv = max_pv = 0`), the `normal` allocation policy,
    /// `metadata_copies = 0`, seqno 0 (the first commit writes 1), no PVs or LVs.
    ///
    /// ```
    /// use devmapper::lvm::model::{AllocPolicy, VolumeGroup};
    /// let id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse()?;
    /// let vg = VolumeGroup::new("vg0", id, 8192);
    /// assert_eq!(vg.allocation_policy, AllocPolicy::Normal);
    /// assert!(vg.status.contains("RESIZEABLE") && vg.pvs.is_empty());
    /// # Ok::<(), devmapper::lvm::id::IdError>(())
    /// ```
    pub fn new(name: impl Into<String>, id: LvmId, extent_size: u64) -> VolumeGroup {
        VolumeGroup {
            name: name.into(),
            id,
            seqno: 0,
            status: ["RESIZEABLE", "READ", "WRITE"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            flags: Flags::new(),
            tags: Vec::new(),
            system_id: None,
            lock_type: None,
            lock_args: None,
            pr: PersistentReservation::default(),
            extent_size,
            max_lv: 0,
            max_pv: 0,
            allocation_policy: AllocPolicy::Normal,
            profile: None,
            metadata_copies: 0,
            pvs: Vec::new(),
            lvs: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Remove and return the import warnings (for a caller that has shown them, or a VG
    /// built from an imported one that they no longer describe).
    pub fn take_warnings(&mut self) -> Vec<ImportWarning> {
        std::mem::take(&mut self.warnings)
    }
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
    /// `device_id_type` (`sys_wwid`, `devname`, ...), written by lvm2 when a devices file
    /// is in use.
    pub device_id_type: Option<String>,
    /// `device_id`, written together with `device_id_type`.
    pub device_id: Option<String>,
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
    /// `ba_start`: first sector of the bootloader area (0 = none).
    pub ba_start: u64,
    /// `ba_size`: bootloader area size in sectors (0 = none; both or neither are set).
    pub ba_size: u64,
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
    /// `lock_args` (shared VGs: where lvmlockd keeps the LV's lock), if set.
    pub lock_args: Option<String>,
    /// `allocation_policy` ([`AllocPolicy::Inherit`] when absent or not recognised).
    pub allocation_policy: AllocPolicy,
    /// `profile`: the metadata profile attached to the LV, if any.
    pub profile: Option<String>,
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

/// An allocation policy (`allocation_policy` of a VG or LV; lvm2's `alloc_policy_t`).
///
/// ```
/// use devmapper::lvm::model::AllocPolicy;
/// assert_eq!(AllocPolicy::from_lvm("cling_by_tags"), Some(AllocPolicy::Cling));
/// assert_eq!(AllocPolicy::Anywhere.as_str(), "anywhere");
/// assert_eq!(AllocPolicy::from_lvm("sideways"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocPolicy {
    /// `contiguous`.
    Contiguous,
    /// `cling` (also read from `cling_by_tags`, which lvm2 reads as `cling`).
    Cling,
    /// `normal` (also read from the old `next free`): the VG default.
    Normal,
    /// `anywhere`.
    Anywhere,
    /// `inherit`: the LV default (use the VG's policy).
    Inherit,
}

impl AllocPolicy {
    /// The name lvm2 writes.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocPolicy::Contiguous => "contiguous",
            AllocPolicy::Cling => "cling",
            AllocPolicy::Normal => "normal",
            AllocPolicy::Anywhere => "anywhere",
            AllocPolicy::Inherit => "inherit",
        }
    }

    /// lvm2's `get_alloc_from_string`: `None` for a name it does not recognise.
    pub fn from_lvm(s: &str) -> Option<AllocPolicy> {
        Some(match s {
            "contiguous" => AllocPolicy::Contiguous,
            "cling" | "cling_by_tags" => AllocPolicy::Cling,
            "normal" | "next free" => AllocPolicy::Normal,
            "anywhere" => AllocPolicy::Anywhere,
            "inherit" => AllocPolicy::Inherit,
            _ => return None,
        })
    }
}

/// The `pr` list of a VG: persistent reservation settings (`vgchange --setpersist`).
/// lvm2 reads the three names it knows and ignores others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct PersistentReservation {
    /// `require`.
    pub require: bool,
    /// `autostart`.
    pub autostart: bool,
    /// `ptpl`.
    pub ptpl: bool,
}

impl PersistentReservation {
    /// None of the settings.
    pub fn is_empty(&self) -> bool {
        !(self.require || self.autostart || self.ptpl)
    }
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
        /// `crop_metadata` (`None` when absent: lvm2's "unselected").
        crop_metadata: Option<bool>,
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
