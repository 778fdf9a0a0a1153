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
//! LVs plan and export will refuse ([`UnmappableKind`](super::UnmappableKind): striped
//! segments the kernel refuses, areas past an LV's end, snapshot relations lvm2 never
//! writes).
//!
//! The types are in `types` (and the import warnings in `warning`); the importer reads
//! fields in `fields`, the VG, PVs and LVs in `import` and segments in `segment`; `query`
//! answers questions about an imported VG (lookups, snapshot relations, unmappable LVs).
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

mod fields;
mod import;
mod query;
mod segment;
mod types;
mod warning;

pub use types::{
    AllocPolicy, Area, CONTENTS, Discards, FLAGS_ONLY, Flags, LV_FLAGS, LogicalVolume,
    MAX_NAME_LEN, PV_FLAGS, PersistentReservation, PhysicalVolume, SEGTYPE_FLAGS, Segment,
    SegmentKind, SnapshotLink, THIN_MAX_CHUNK, THIN_MAX_DEVICE_ID, THIN_MIN_CHUNK, ThinMessage,
    VG_FLAGS, VolumeGroup, valid_name,
};
pub use warning::{ImportWarning, WarningKind};
