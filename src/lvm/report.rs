//! What `vgs`, `pvs` and `lvs` would say about scanned VGs: the names lvm2's reports give
//! segment types and device outcomes, and finding a VG among the scanned ones.
//!
//! ```
//! use devmapper::lvm::{config::ParseMode, model::VolumeGroup, report};
//! # let text = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
//! let vg = VolumeGroup::from_text(text, ParseMode::File)?;
//! let kinds: Vec<&str> = ["lin-ear", "stripe", "pool", "thin1"]
//!     .iter()
//!     .map(|n| report::lvs_segtype(vg.lv(n).unwrap()))
//!     .collect();
//! assert_eq!(kinds, ["linear", "striped", "thin-pool", "thin"]);
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use super::model::{LogicalVolume, SegmentKind};
use super::scan::{DeviceStatus, ScanReport, ScannedVg};

/// The segment type of an LV's first segment as `lvs -o segtype` names it: a one-stripe
/// `striped` segment is `linear`, `+FLAG` suffixes are dropped, an LV without segments is
/// `-`.
pub fn lvs_segtype(lv: &LogicalVolume) -> &str {
    match lv.segments.first() {
        None => "-",
        Some(s) => match &s.kind {
            SegmentKind::Striped { areas, .. } if areas.len() == 1 => "linear",
            _ => s.type_name.split('+').next().unwrap_or_default(),
        },
    }
}

/// The VG named `name` among the scanned ones.
pub fn find_vg<'r>(report: &'r ScanReport, name: &str) -> Option<&'r ScannedVg> {
    report.vgs.iter().find(|s| s.vg.name == name)
}

impl DeviceStatus<'_> {
    /// A stable lower-case name of the outcome (`in_vg`, `orphan`, `no_label`, ...), as
    /// JSON reports spell it.
    ///
    /// ```
    /// use devmapper::lvm::scan;
    /// let blank = vec![0u8; 4096];
    /// let report = scan::scan(&[&blank[..]]);
    /// assert_eq!(report.devices()[0].status.as_str(), "no_label");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceStatus::InVg { .. } => "in_vg",
            DeviceStatus::Orphan => "orphan",
            DeviceStatus::NoMetadataArea => "no_metadata_area",
            DeviceStatus::NotListed { .. } => "not_listed",
            DeviceStatus::Duplicate { .. } => "duplicate",
            DeviceStatus::VgNotImported { .. } => "vg_does_not_import",
            DeviceStatus::MetadataUnreadable => "metadata_unreadable",
            DeviceStatus::NoLabel => "no_label",
            DeviceStatus::BadLabel { .. } => "bad_label",
        }
    }
}
