//! Questions about an imported VG: lookups, visibility, snapshot relations, and the LVs
//! that import but cannot be mapped or read.
//!
//! The lookups by name here scan the VG (O(n) each, documented on each); code that asks
//! once per LV or PV goes through [`crate::lvm::index::VgIndex`] instead.

use std::collections::{HashMap, HashSet};

use super::types::{Area, LogicalVolume, PhysicalVolume, SegmentKind, SnapshotLink, VolumeGroup};
use super::warning::ImportWarning;
use crate::lvm::error::UnmappableKind;
#[cfg(doc)]
use crate::lvm::index::VgIndex;
use crate::lvm::index::meter;

impl VolumeGroup {
    /// The PV with this handle. If two PV sections share the name, the later one, as
    /// lvm2's importer resolves areas (its PV hash keeps the last insert).
    ///
    /// O(number of PVs): in a loop, use [`VgIndex::pv`].
    pub fn pv(&self, handle: &str) -> Option<&PhysicalVolume> {
        meter::visit(self.pvs.len());
        self.pvs.iter().rev().find(|p| p.handle == handle)
    }

    /// Why the segments of `lv` cannot be mapped or read, though lvm2 imports them: a
    /// striped segment the kernel refuses (`stripe_size` 0 or not dividing the stripe
    /// length) or an area running past the end of the LV it is on. The VG-wide
    /// `extent_size` 0 and snapshot relations are checked by [`Self::unmappable`].
    ///
    /// O(number of LVs) per LV area: in a loop, use [`VgIndex`] (the planner and the
    /// exporter look the sizes up there).
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
    ///
    /// O(number of LVs) for the whole VG: call it once, not per LV.
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
    ///
    /// O(number of LVs): for every LV of a VG, call [`Self::snapshot_faults`] once and
    /// [`Self::lv_fault`] through a [`VgIndex`] instead (as the planner does).
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
    ///
    /// O(number of LVs): in a loop, use [`VgIndex::lv`].
    pub fn lv(&self, name: &str) -> Option<&LogicalVolume> {
        meter::visit(self.lvs.len());
        self.lvs.iter().find(|l| l.name == name)
    }

    /// Size of an LV in sectors.
    pub fn lv_size(&self, lv: &LogicalVolume) -> u64 {
        lv.le_count().saturating_mul(self.extent_size)
    }

    /// The snapshot segments (of internal `snapshotN` LVs) whose origin is `origin`, in
    /// metadata order.
    ///
    /// O(number of LVs): in a loop, use [`VgIndex::links_of`].
    pub fn snapshots_of<'s>(
        &'s self,
        origin: &'s str,
    ) -> impl Iterator<Item = SnapshotLink<'s>> + 's {
        self.snapshot_links().filter(move |l| l.origin == origin)
    }

    /// Every snapshot relation in the VG (one pass over the LVs).
    pub fn snapshot_links(&self) -> impl Iterator<Item = SnapshotLink<'_>> {
        meter::visit(self.lvs.len());
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
    ///
    /// O(number of LVs): in a loop, use [`VgIndex::cow`].
    pub fn cow_link(&self, lv: &str) -> Option<SnapshotLink<'_>> {
        self.snapshot_links().find(|l| l.cow == lv)
    }

    /// Is `lv` an internal `snapshotN` LV?
    pub fn is_snapshot_internal(&self, lv: &LogicalVolume) -> bool {
        matches!(lv.first_kind(), Some(SegmentKind::Snapshot { .. }))
    }

    /// lvm2's `lv_is_visible`: the internal `snapshotN` LVs are not; a COW LV is visible
    /// when its origin is and it is not merging; others by their `VISIBLE` flag.
    ///
    /// O(number of LVs): in a loop, use [`VgIndex::is_visible`].
    pub fn is_visible(&self, lv: &LogicalVolume) -> bool {
        if self.is_snapshot_internal(lv) {
            return false;
        }
        if let Some(link) = self.cow_link(&lv.name) {
            // lvm2 hides a merging COW LV (`lv_is_merging_cow`).
            return !link.merging
                && self
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
            meter::visit(1);
            match state.get(cur) {
                Some(true) => break,
                Some(false) => {
                    meter::visit(path.len());
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

/// The kernel's striped target wants a non-zero chunk that divides each stripe's length.
fn stripe_fault(
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
