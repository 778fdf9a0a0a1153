//! [`VgIndex`]: a VG's LVs, PVs and snapshot relations indexed by name once.
//!
//! The model's own lookups ([`VolumeGroup::lv`], [`VolumeGroup::cow_link`],
//! [`VolumeGroup::is_visible`]) scan every LV, which is quadratic over a VG with many
//! LVs; the planner and the reports use this index instead.
//!
//! ```
//! use devmapper::lvm::{config::ParseMode, index::VgIndex, model::VolumeGroup};
//! # let text = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
//! let vg = VolumeGroup::from_text(text, ParseMode::File)?;
//! let ix = VgIndex::new(&vg);
//! assert_eq!(ix.snapshots_of("origin"), ["snap-1", "snap2"]);
//! assert_eq!(ix.cow("snap2").map(|l| l.origin), Some("origin"));
//! assert!(ix.is_visible(ix.lv("snap2").unwrap()));
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::model::{LogicalVolume, PhysicalVolume, SnapshotLink, VolumeGroup};

/// A VG's LVs, PVs and snapshot relations, by name.
#[derive(Clone, Debug)]
pub struct VgIndex<'a> {
    vg: &'a VolumeGroup,
    lvs: HashMap<&'a str, &'a LogicalVolume>,
    pvs: HashMap<&'a str, &'a PhysicalVolume>,
    cow: HashMap<&'a str, SnapshotLink<'a>>,
    snaps: HashMap<&'a str, Vec<SnapshotLink<'a>>>,
}

impl<'a> VgIndex<'a> {
    /// Index every LV, PV and snapshot relation of `vg`.
    pub fn new(vg: &'a VolumeGroup) -> VgIndex<'a> {
        VgIndex::without(vg, &|_| false)
    }

    /// Index `vg`, leaving out the snapshot relations whose COW LV `skip` names (the
    /// planner leaves out the snapshots lvm2 would not activate).
    pub fn without(vg: &'a VolumeGroup, skip: &dyn Fn(&str) -> bool) -> VgIndex<'a> {
        let mut ix = VgIndex {
            vg,
            // The later of two sections with one name (the importer refuses duplicate LV
            // names; hostile on-disk text may still hold them).
            lvs: vg.lvs.iter().map(|l| (l.name.as_str(), l)).collect(),
            // The later of two PV sections with one name, as `VolumeGroup::pv`.
            pvs: vg.pvs.iter().map(|p| (p.handle.as_str(), p)).collect(),
            cow: HashMap::new(),
            snaps: HashMap::new(),
        };
        for link in vg.snapshot_links() {
            if skip(link.cow) {
                continue;
            }
            ix.cow.entry(link.cow).or_insert(link);
            ix.snaps.entry(link.origin).or_default().push(link);
        }
        ix
    }

    /// The VG indexed.
    pub fn vg(&self) -> &'a VolumeGroup {
        self.vg
    }

    /// The LV of that name.
    pub fn lv(&self, name: &str) -> Option<&'a LogicalVolume> {
        self.lvs.get(name).copied()
    }

    /// The PV with that handle (`pv0`).
    pub fn pv(&self, handle: &str) -> Option<&'a PhysicalVolume> {
        self.pvs.get(handle).copied()
    }

    /// The snapshot relation in which `lv` is the COW store.
    pub fn cow(&self, lv: &str) -> Option<SnapshotLink<'a>> {
        self.cow.get(lv).copied()
    }

    /// The snapshot relations of origin `lv`, in metadata order.
    pub fn links_of(&self, lv: &str) -> &[SnapshotLink<'a>] {
        self.snaps.get(lv).map(Vec::as_slice).unwrap_or_default()
    }

    /// The COW LVs of origin `lv`'s snapshots, in metadata order.
    pub fn snapshots_of(&self, lv: &str) -> Vec<&'a str> {
        self.links_of(lv).iter().map(|l| l.cow).collect()
    }

    /// lvm2's `lv_is_visible` ([`VolumeGroup::is_visible`]), from the index.
    pub fn is_visible(&self, lv: &LogicalVolume) -> bool {
        if self.vg.is_snapshot_internal(lv) {
            return false;
        }
        match self.cow.get(lv.name.as_str()) {
            Some(link) => self
                .lvs
                .get(link.origin)
                .is_some_and(|o| o.status.contains("VISIBLE")),
            None => lv.status.contains("VISIBLE"),
        }
    }
}
