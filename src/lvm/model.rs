//! The typed VG: physical volumes, logical volumes and their segments, built from a parsed
//! text with the checks lvm2's importer makes (`lib/format_text/import_vsn1.c` and the
//! per-segment-type importers).
//!
//! Segment types that this crate can map (`striped`/`linear`, `snapshot`, `thin-pool`,
//! `thin`, `zero`, `error`) are fully typed; the others (mirror, raid, cache, vdo, ...) are
//! kept as [`SegmentKind::Other`] with their type name and the LVs they reference, so a VG
//! that contains them still loads and lists correctly but those LVs are not activated.
//!
//! Validation follows lvm2: required keys, unknown **status** flags rejected (unknown
//! `flags` entries ignored), `segment_count` equal to the number of segment sections,
//! segments contiguous from extent 0, stripes divisible, every area naming an existing
//! PV handle (looked up first) or LV, PE ranges inside their PV.
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

use std::collections::{BTreeSet, HashMap, HashSet};

use super::config::{Config, Node, ParseMode, Scalar};
use super::error::{Error, Result};
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

fn get_u64(node: &Node<'_, '_>, key: &str, path: &str, max: u64) -> Result<u64> {
    let n = req(node, key, path)?;
    match n.value().and_then(|v| v.items().first()) {
        Some(Scalar::Int(i)) if *i >= 0 && (*i as u64) <= max => Ok(*i as u64),
        Some(Scalar::Int(i)) => Err(err(path, format!("`{key}` = {i} is out of range"))),
        _ => Err(err(path, format!("`{key}` must be an integer"))),
    }
}

fn opt_u64(node: &Node<'_, '_>, key: &str, path: &str, max: u64) -> Result<Option<u64>> {
    if node.find(key).is_none() {
        return Ok(None);
    }
    get_u64(node, key, path, max).map(Some)
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

    /// The PV with this handle.
    pub fn pv(&self, handle: &str) -> Option<&PhysicalVolume> {
        self.pvs.iter().find(|p| p.handle == handle)
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
    let name = vgn.key().to_string();
    if !valid_name(&name) {
        return Err(err(&name, "invalid VG name"));
    }
    let path = name.as_str();
    let id = get_id(vgn, path)?;
    let seqno = get_u64(vgn, "seqno", path, u64::from(u32::MAX))?;
    req(vgn, "status", path)?;
    let status = read_flags(vgn, "status", VG_FLAGS, true, path)?;
    let flags = read_flags(vgn, "flags", VG_FLAGS, false, path)?;
    let tags = str_list(vgn, "tags", path)?;
    let system_id = opt_str(vgn, "system_id", path)?.filter(|s| !s.is_empty());
    let lock_type = opt_str(vgn, "lock_type", path)?;
    let extent_size = get_u64(vgn, "extent_size", path, u64::from(u32::MAX))?;
    if extent_size == 0 {
        return Err(err(path, "extent_size is 0"));
    }
    let max_lv = get_u64(vgn, "max_lv", path, u64::from(u32::MAX))?;
    let max_pv = get_u64(vgn, "max_pv", path, u64::from(u32::MAX))?;

    let pvs_node = req(vgn, "physical_volumes", path)?;
    let mut pvs: Vec<PhysicalVolume> = Vec::new();
    let mut pv_ids = HashSet::new();
    for pvn in pvs_node.sections() {
        let pv = import_pv(
            &pvn,
            extent_size,
            &format!("{path}/physical_volumes/{}", pvn.key()),
        )?;
        if !pv_ids.insert(pv.id) {
            return Err(err(path, format!("PV id {} appears twice", pv.id)));
        }
        pvs.push(pv);
    }

    // LV names first (areas may refer to LVs defined later), then segments.
    let mut lv_nodes = Vec::new();
    let mut lv_names: HashMap<&str, ()> = HashMap::new();
    if let Some(lvs_node) = vgn.find("logical_volumes") {
        for lvn in lvs_node.sections() {
            if !valid_name(lvn.key()) {
                return Err(err(path, format!("invalid LV name {:?}", lvn.key())));
            }
            if lv_names.insert(lvn.key(), ()).is_some() {
                return Err(err(path, format!("LV {} appears twice", lvn.key())));
            }
            lv_nodes.push(lvn);
        }
    }
    let pv_index: HashMap<&str, &PhysicalVolume> =
        pvs.iter().map(|p| (p.handle.as_str(), p)).collect();
    let ctx = Ctx {
        pvs: &pv_index,
        lvs: &lv_names,
    };
    let mut lvs = Vec::with_capacity(lv_nodes.len());
    for lvn in lv_nodes {
        lvs.push(import_lv(
            &lvn,
            &ctx,
            &format!("{path}/logical_volumes/{}", lvn.key()),
        )?);
    }
    let vg = VolumeGroup {
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
    };
    check_links(&vg)?;
    Ok(vg)
}

fn import_pv(pvn: &Node<'_, '_>, extent_size: u64, path: &str) -> Result<PhysicalVolume> {
    let id = get_id(pvn, path)?;
    req(pvn, "status", path)?;
    let status = read_flags(pvn, "status", PV_FLAGS, true, path)?;
    let flags = read_flags(pvn, "flags", PV_FLAGS, false, path)?;
    let dev_size = opt_u64(pvn, "dev_size", path, u64::MAX >> 9)?;
    let pe_start = get_u64(pvn, "pe_start", path, u64::MAX >> 9)?;
    let pe_count = get_u64(pvn, "pe_count", path, u64::from(u32::MAX))?;
    let end = pe_count
        .checked_mul(extent_size)
        .and_then(|b| b.checked_add(pe_start))
        .ok_or_else(|| err(path, "PE area overflows"))?;
    if let Some(ds) = dev_size
        && end > ds
    {
        return Err(err(
            path,
            format!("{pe_count} extents from sector {pe_start} exceed dev_size {ds}"),
        ));
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
    let segment_count = get_u64(lvn, "segment_count", path, u64::from(u32::MAX))?;
    let int = |k: &str| -> Result<Option<i64>> {
        match lvn.find(k) {
            None => Ok(None),
            Some(n) => match n.value().and_then(|v| v.items().first()) {
                Some(Scalar::Int(i)) => Ok(Some(*i)),
                _ => Err(err(path, format!("`{k}` must be an integer"))),
            },
        }
    };
    let mut segments = Vec::new();
    for sn in lvn.sections() {
        let spath = format!("{path}/{}", sn.key());
        segments.push(import_segment(&sn, ctx, &spath)?);
    }
    if segments.len() as u64 != segment_count {
        return Err(err(
            path,
            format!(
                "segment_count is {segment_count} but there are {} segments",
                segments.len()
            ),
        ));
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
        minor: int("minor")?,
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
    let start_extent = get_u64(sn, "start_extent", path, u64::from(u32::MAX))?;
    let extent_count = get_u64(sn, "extent_count", path, u64::from(u32::MAX))?;
    if extent_count == 0 {
        return Err(err(path, "zero-length segment"));
    }
    let type_name = get_str(sn, "type", path)?.to_string();
    let mut parts = type_name.split('+');
    let base = parts.next().unwrap_or_default().to_string();
    let unknown_suffix = parts.any(|f| !SEGTYPE_FLAGS.contains(&f));
    let kind = if unknown_suffix {
        other(sn, &base)
    } else {
        match base.as_str() {
            "striped" | "linear" => import_striped(sn, ctx, path, extent_count)?,
            "snapshot" => {
                let (cow, merging) = if sn.find("merging_store").is_some() {
                    (ctx.lv_ref(sn, "merging_store", path)?, true)
                } else {
                    (ctx.lv_ref(sn, "cow_store", path)?, false)
                };
                let origin = ctx.lv_ref(sn, "origin", path)?;
                if origin == cow {
                    return Err(err(path, "a snapshot's origin cannot be its own COW store"));
                }
                let chunk_size = get_u64(sn, "chunk_size", path, u64::from(u32::MAX))?;
                if chunk_size == 0 {
                    return Err(err(path, "chunk_size is 0"));
                }
                SegmentKind::Snapshot {
                    chunk_size,
                    origin,
                    cow,
                    merging,
                }
            }
            "thin-pool" => import_thin_pool(sn, ctx, path)?,
            "thin" => {
                let device_id = get_u64(sn, "device_id", path, u64::from(u32::MAX))?;
                if device_id > THIN_MAX_DEVICE_ID {
                    return Err(err(path, format!("unsupported device_id {device_id}")));
                }
                SegmentKind::Thin {
                    pool: ctx.lv_ref(sn, "thin_pool", path)?,
                    transaction_id: get_u64(sn, "transaction_id", path, u64::MAX)?,
                    device_id,
                    origin: ctx.opt_lv_ref(sn, "origin", path)?,
                    merge: ctx.opt_lv_ref(sn, "merge", path)?,
                    external_origin: ctx.opt_lv_ref(sn, "external_origin", path)?,
                }
            }
            "zero" => SegmentKind::Zero,
            "error" => SegmentKind::Error,
            _ => other(sn, &base),
        }
    };
    Ok(Segment {
        start_extent,
        extent_count,
        type_name,
        kind,
    })
}

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
    let stripe_count = get_u64(sn, "stripe_count", path, u64::from(u32::MAX))?;
    if stripe_count == 0 {
        return Err(err(path, "stripe_count is 0"));
    }
    let stripe_size = if stripe_count > 1 {
        let s = get_u64(sn, "stripe_size", path, u64::from(u32::MAX))?;
        if s == 0 {
            return Err(err(path, "stripe_size is 0"));
        }
        s
    } else {
        opt_u64(sn, "stripe_size", path, u64::from(u32::MAX))?.unwrap_or(0)
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
        let off = u64::try_from(*off).map_err(|_| err(path, "negative extent in `stripes`"))?;
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

fn import_thin_pool(sn: &Node<'_, '_>, ctx: &Ctx<'_>, path: &str) -> Result<SegmentKind> {
    let metadata = ctx.lv_ref(sn, "metadata", path)?;
    let data = ctx.lv_ref(sn, "pool", path)?;
    let transaction_id = get_u64(sn, "transaction_id", path, u64::MAX)?;
    let chunk_size = get_u64(sn, "chunk_size", path, u64::from(u32::MAX))?;
    if !(THIN_MIN_CHUNK..=THIN_MAX_CHUNK).contains(&chunk_size) {
        return Err(err(path, format!("unsupported chunk_size {chunk_size}")));
    }
    let discards = match opt_str(sn, "discards", path)?.as_deref() {
        None | Some("ignore") => Discards::Ignore,
        Some("nopassdown") => Discards::NoPassdown,
        Some("passdown") => Discards::Passdown,
        Some(o) => return Err(err(path, format!("discards option {o:?} unsupported"))),
    };
    let zero_new_blocks =
        opt_u64(sn, "zero_new_blocks", path, u64::from(u32::MAX))?.unwrap_or(0) != 0;
    let mut messages = Vec::new();
    for m in sn.sections() {
        let mpath = format!("{path}/{}", m.key());
        if m.find("create").is_some() {
            messages.push(ThinMessage::Create(ctx.lv_ref(&m, "create", &mpath)?));
        } else if m.find("delete").is_some() {
            messages.push(ThinMessage::Delete(get_u64(
                &m,
                "delete",
                &mpath,
                u64::from(u32::MAX),
            )?));
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

/// Cross-LV checks once every LV is known: LV areas in range, no LV used as its own area.
fn check_links(vg: &VolumeGroup) -> Result<()> {
    let sizes: HashMap<&str, u64> = vg
        .lvs
        .iter()
        .map(|l| (l.name.as_str(), l.le_count()))
        .collect();
    for lv in &vg.lvs {
        for s in &lv.segments {
            if let SegmentKind::Striped { areas, .. } = &s.kind {
                let per = s.extent_count / areas.len().max(1) as u64;
                for a in areas {
                    if let Area::Lv { lv: name, le } = a {
                        if *name == lv.name {
                            return Err(err(&lv.name, "an LV cannot map onto itself"));
                        }
                        let target = sizes.get(name.as_str()).copied().unwrap_or(0);
                        if le.saturating_add(per) > target {
                            return Err(err(&lv.name, format!("area on {name} is beyond its end")));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
