//! [`VgIndex`]: a VG's LVs, PVs and snapshot relations indexed by name once.
//!
//! The model's own lookups ([`VolumeGroup::lv`], [`VolumeGroup::cow_link`],
//! [`VolumeGroup::is_visible`], ...) scan every LV: O(n) each, so quadratic when called
//! once per LV. [`VgIndex`] is built in one pass (O(n)) and answers each of them in O(1)
//! (or O(own size)). It borrows the VG, so it cannot go stale: a VG being edited is
//! indexed again after the edit, never cached inside [`VolumeGroup`] (plain data whose
//! fields writers change). The planner, the exporter, the reports and the CLI use it in
//! every loop.
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
        meter::visit(vg.lvs.len() + vg.pvs.len());
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
            Some(link) => {
                !link.merging
                    && self
                        .lvs
                        .get(link.origin)
                        .is_some_and(|o| o.status.contains("VISIBLE"))
            }
            None => lv.status.contains("VISIBLE"),
        }
    }
}

/// The index of `item` in `items` when it is one of its elements (by address): O(1).
/// Callers hand back references into the VG they got from it; anything else is `None`.
pub(crate) fn position_in<T>(items: &[T], item: &T) -> Option<usize> {
    let size = std::mem::size_of::<T>();
    if size == 0 {
        return None;
    }
    let base = items.as_ptr() as usize;
    let at = (item as *const T as usize).checked_sub(base)?;
    let i = at / size;
    (at % size == 0 && i < items.len()).then_some(i)
}

/// Work counted for the linearity tests: every element a linear scan of a VG's LVs or
/// PVs (or of a scan report's devices, or a walk of snapshot links) visits, and every
/// byte of metadata text parsed. A no-op outside `cfg(test)`.
pub(crate) mod meter {
    #[cfg(test)]
    thread_local! {
        static VISITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        static PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// `n` elements visited.
    #[inline(always)]
    pub(crate) fn visit(n: usize) {
        #[cfg(test)]
        VISITS.with(|v| v.set(v.get() + n as u64));
        #[cfg(not(test))]
        let _ = n;
    }

    /// `n` bytes of metadata text parsed.
    #[inline(always)]
    pub(crate) fn parsed(n: usize) {
        #[cfg(test)]
        PARSED.with(|v| v.set(v.get() + n as u64));
        #[cfg(not(test))]
        let _ = n;
    }

    /// `(visits, bytes parsed)` counted on this thread since the last call (and reset).
    #[cfg(test)]
    pub(crate) fn take() -> (u64, u64) {
        (VISITS.with(|v| v.replace(0)), PARSED.with(|v| v.replace(0)))
    }
}
