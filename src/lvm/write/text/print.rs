//! The VG, PV, LV and segment sections, with lvm2's flag tables in lvm2's order.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap, HashSet};

use super::base::{Base, LvSection, PrintedVg};
use super::out::{Out, iso_time, q, str_list};
use crate::lvm::model::{
    AllocPolicy, Area, Discards, LogicalVolume, PhysicalVolume, Segment, SegmentKind, ThinMessage,
    VolumeGroup,
};

// Flags.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `STATUS_FLAG`: `status = [...]`.
    Status,
    /// `COMPATIBLE_FLAG`: `flags = [...]`.
    Compat,
    /// `SEGTYPE_FLAG`: `+FLAG` after segment types.
    Segtype,
}

use Kind::{Compat as C, Segtype as G, Status as S};

/// `_vg_flags` in `flags.c`, in order (internal-only entries left out).
const VG_TABLE: &[(&str, Kind)] = &[
    ("EXPORTED", S),
    ("RESIZEABLE", S),
    ("PVMOVE", S),
    ("READ", S),
    ("WRITE", S),
    ("WRITE_LOCKED", C),
    ("NOAUTOACTIVATE", C),
    ("CLUSTERED", S),
    ("SHARED", S),
];

/// `_pv_flags` (`MISSING` is read from either list and written to `flags`).
const PV_TABLE: &[(&str, Kind)] = &[("ALLOCATABLE", S), ("EXPORTED", S), ("MISSING", C)];

/// `_lv_flags`.
const LV_TABLE: &[(&str, Kind)] = &[
    ("READ", S),
    ("WRITE", S),
    ("WRITE_LOCKED", C),
    ("FIXED_MINOR", S),
    ("VISIBLE", S),
    ("PVMOVE", S),
    ("LOCKED", S),
    ("NOTSYNCED", S),
    ("REBUILD", S),
    ("RESHAPE", G),
    ("RESHAPE_DATA_OFFSET", G),
    ("RESHAPE_DELTA_DISKS_PLUS", G),
    ("RESHAPE_DELTA_DISKS_MINUS", G),
    ("REMOVE_AFTER_RESHAPE", G),
    ("WRITEMOSTLY", S),
    ("ACTIVATION_SKIP", C),
    ("NOAUTOACTIVATE", C),
    ("ERROR_WHEN_FULL", C),
    ("METADATA_FORMAT", G),
    ("CROP_METADATA", G),
    ("CACHE_VOL", C),
    ("CACHE_USES_CACHEVOL", G),
];

/// A set of flags of one table, as [`effective`] makes it: one bit per table entry (every
/// table has fewer than 64), so that printing a list walks the table once (this runs for
/// every LV of every print).
#[derive(Clone, Copy)]
struct FlagSet<'t> {
    table: &'t [(&'t str, Kind)],
    bits: u64,
}

const _: () = assert!(VG_TABLE.len() < 64 && PV_TABLE.len() < 64 && LV_TABLE.len() < 64);

impl<'t> FlagSet<'t> {
    fn new(table: &'t [(&'t str, Kind)]) -> FlagSet<'t> {
        FlagSet { table, bits: 0 }
    }

    fn bit(&self, name: &str) -> u64 {
        self.table
            .iter()
            .position(|(n, _)| *n == name)
            .map_or(0, |i| 1 << i)
    }

    /// A name the table does not have is never in the set.
    fn insert(&mut self, name: &str) {
        self.bits |= self.bit(name);
    }

    fn remove(&mut self, name: &str) -> bool {
        let bit = self.bit(name);
        let had = self.bits & bit != 0;
        self.bits &= !bit;
        had
    }

    /// `["A", "B"]`: the set's flags of `kind`, in table order.
    fn push_list(&self, out: &mut String, kind: Kind) {
        out.push('[');
        let mut first = true;
        for (i, (name, k)) in self.table.iter().enumerate() {
            if *k == kind && self.bits & (1 << i) != 0 {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                // Flag names hold nothing to escape.
                out.push('"');
                out.push_str(name);
                out.push('"');
            }
        }
        out.push(']');
    }
}

/// The flags lvm2 holds in memory after reading `status` and `flags` with `table`:
/// status-kind names from `status`, compatible ones from `flags` (`MISSING` and
/// `CACHE_VOL` from either), `WRITE_LOCKED` read as `WRITE`. Names not in `table` are
/// dropped, as lvm2 drops them.
fn effective<'t>(
    status: &BTreeSet<String>,
    flags: &BTreeSet<String>,
    table: &'t [(&'t str, Kind)],
) -> FlagSet<'t> {
    let either = |n: &str| n == "MISSING" || n == "CACHE_VOL";
    let mut set = FlagSet::new(table);
    // Each (short) list looked up in the table, rather than the table in the lists.
    for (list, want) in [(status, S), (flags, C)] {
        for f in list {
            if let Some(&(name, kind)) = table.iter().find(|(n, _)| *n == f.as_str())
                && (kind == want || either(name))
            {
                set.insert(name);
            }
        }
    }
    if set.remove("WRITE_LOCKED") {
        set.insert("WRITE");
    }
    set
}

fn print_flags(o: &mut Out, mut set: FlagSet<'_>, write_locked: bool) {
    // `vg_flag_write_locked`: VGs with a system id or lock type are written with
    // WRITE_LOCKED instead of WRITE, so that old lvm2 versions treat them as read-only.
    if write_locked && set.remove("WRITE") {
        set.insert("WRITE_LOCKED");
    }
    let mut line = String::with_capacity(96);
    for (key, kind) in [("status = ", S), ("flags = ", C)] {
        line.clear();
        line.push_str(key);
        set.push_list(&mut line, kind);
        o.line(&line);
    }
}

pub(super) fn write_locked(vg: &VolumeGroup) -> bool {
    vg.system_id.as_deref().is_some_and(|s| !s.is_empty())
        || vg
            .lock_type
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != "none")
}

// ---------------------------------------------------------------------------------------
// The VG.

/// Print `vg`; with a base, the sections of LVs equal to the base's are copied from its
/// print. Returns where each LV's section lies, by position in `vg.lvs`.
pub(super) fn print_vg(
    o: &mut Out,
    vg: &VolumeGroup,
    base: Option<(&VolumeGroup, &PrintedVg)>,
) -> Vec<LvSection> {
    let base = base.and_then(|(old, printed)| Base::new(old, printed, vg, o.file));
    o.linef(format_args!("{} {{", vg.name));
    o.inc();
    o.linef(format_args!("id = \"{}\"", vg.id));
    o.linef(format_args!("seqno = {}", vg.seqno));
    o.line_c("format = \"lvm2\"", Some("# informational"));
    let wl = write_locked(vg);
    print_flags(o, effective(&vg.status, &vg.flags, VG_TABLE), wl);
    if !vg.tags.is_empty() {
        o.linef(format_args!(
            "tags = {}",
            str_list(vg.tags.iter().map(|s| s.as_str()))
        ));
    }
    if let Some(s) = vg.system_id.as_deref().filter(|s| !s.is_empty()) {
        o.linef(format_args!("system_id = {}", q(s)));
    }
    if let Some(lt) = &vg.lock_type {
        o.linef(format_args!("lock_type = {}", q(lt)));
        if let Some(la) = &vg.lock_args {
            o.linef(format_args!("lock_args = {}", q(la)));
        }
    }
    if !vg.pr.is_empty() {
        let names: Vec<&str> = [
            (vg.pr.require, "\"require\""),
            (vg.pr.autostart, "\"autostart\""),
            (vg.pr.ptpl, "\"ptpl\""),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        o.linef(format_args!("pr = [ {} ]", names.join(", ")));
    }
    o.size(&format!("extent_size = {}", vg.extent_size), vg.extent_size);
    o.linef(format_args!("max_lv = {}", vg.max_lv));
    o.linef(format_args!("max_pv = {}", vg.max_pv));
    if !matches!(
        vg.allocation_policy,
        AllocPolicy::Normal | AllocPolicy::Inherit
    ) {
        o.nl();
        o.linef(format_args!(
            "allocation_policy = \"{}\"",
            vg.allocation_policy.as_str()
        ));
    }
    if let Some(p) = &vg.profile {
        o.linef(format_args!("profile = {}", q(p)));
    }
    o.linef(format_args!("metadata_copies = {}", vg.metadata_copies));
    o.nl();

    // PV handles: pvN by position; areas name the last PV with their handle (lvm2's PV
    // hash keeps the later of two sections with one name).
    let pv_index: HashMap<&str, usize> = vg
        .pvs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.handle.as_str(), i))
        .collect();
    o.line("physical_volumes {");
    o.inc();
    for (i, pv) in vg.pvs.iter().enumerate() {
        print_pv(o, vg, i, pv);
    }
    o.dec();
    o.line("}");
    o.nl();
    let mut sections = vec![LvSection::default(); vg.lvs.len()];
    if !vg.lvs.is_empty() {
        o.line("logical_volumes {");
        o.inc();
        let rel = Relations::new(vg);
        for pass in [true, false] {
            for (lv, section) in vg.lvs.iter().zip(&mut sections) {
                if rel.visible(lv, 0) != pass {
                    continue;
                }
                let hidden = rel.hidden.contains(lv.name.as_str());
                let start = o.buf.len();
                let copy = base.as_ref().and_then(|b| b.section(lv, hidden));
                match copy {
                    Some(text) => o.buf.push_str(text),
                    None => print_lv(o, vg, lv, &rel, &pv_index),
                }
                *section = LvSection {
                    name: lv.name.clone(),
                    range: start..o.buf.len(),
                    hidden,
                    copied: copy.is_some(),
                };
            }
        }
        o.dec();
        o.line("}");
    }
    o.nl();
    o.dec();
    o.line("}");
    sections
}

fn print_pv(o: &mut Out, vg: &VolumeGroup, i: usize, pv: &PhysicalVolume) {
    o.nl();
    o.linef(format_args!("pv{i} {{"));
    o.inc();
    o.linef(format_args!("id = \"{}\"", pv.id));
    let dev = pv.device_hint.as_deref().unwrap_or("[unknown]");
    o.line_c(&format!("device = {}", q(dev)), Some("# Hint only"));
    o.nl();
    if let (Some(t), Some(id)) = (&pv.device_id_type, &pv.device_id) {
        o.linef(format_args!("device_id_type = {}", q(t)));
        o.linef(format_args!("device_id = {}", q(id)));
    }
    print_flags(o, effective(&pv.status, &pv.flags, PV_TABLE), false);
    if !pv.tags.is_empty() {
        o.linef(format_args!(
            "tags = {}",
            str_list(pv.tags.iter().map(|s| s.as_str()))
        ));
    }
    let dev_size = pv.dev_size.unwrap_or(0);
    o.size(&format!("dev_size = {dev_size}"), dev_size);
    o.linef(format_args!("pe_start = {}", pv.pe_start));
    o.size(
        &format!("pe_count = {}", pv.pe_count),
        vg.extent_size.wrapping_mul(pv.pe_count),
    );
    if pv.ba_start != 0 && pv.ba_size != 0 {
        o.linef(format_args!("ba_start = {}", pv.ba_start));
        o.size(&format!("ba_size = {}", pv.ba_size), pv.ba_size);
    }
    o.dec();
    o.line("}");
}

/// What lvm2's importer derives from the segments about other LVs: COWs, hidden sub-LVs,
/// virtual origins.
struct Relations<'v> {
    by_name: HashMap<&'v str, &'v LogicalVolume>,
    /// COW LV -> (origin, merging).
    cow: HashMap<&'v str, (&'v str, bool)>,
    /// LVs whose `VISIBLE` lvm2 clears on import.
    hidden: HashSet<&'v str>,
}

impl<'v> Relations<'v> {
    fn new(vg: &'v VolumeGroup) -> Relations<'v> {
        let by_name: HashMap<&str, &LogicalVolume> =
            vg.lvs.iter().map(|l| (l.name.as_str(), l)).collect();
        let mut cow = HashMap::new();
        let mut hidden = HashSet::new();
        let mut origins = HashSet::new();
        for lv in &vg.lvs {
            for s in &lv.segments {
                match &s.kind {
                    SegmentKind::Snapshot {
                        origin,
                        cow: c,
                        merging,
                        ..
                    } => {
                        cow.insert(c.as_str(), (origin.as_str(), *merging));
                        origins.insert(origin.as_str());
                        hidden.insert(c.as_str());
                        if *merging {
                            hidden.insert(lv.name.as_str());
                        }
                    }
                    SegmentKind::ThinPool { metadata, data, .. } => {
                        hidden.insert(metadata.as_str());
                        hidden.insert(data.as_str());
                    }
                    SegmentKind::Thin { merge: Some(_), .. } => {
                        hidden.insert(lv.name.as_str());
                    }
                    _ => {}
                }
            }
        }
        // `lv_is_cow`: not for thin LVs or LVs that are origins themselves.
        cow.retain(|c, _| {
            !origins.contains(c)
                && by_name.get(c).is_some_and(|l| {
                    !l.segments
                        .iter()
                        .any(|s| matches!(s.kind, SegmentKind::Thin { .. }))
                })
        });
        Relations {
            by_name,
            cow,
            hidden,
        }
    }

    fn is_snapshot(lv: &LogicalVolume) -> bool {
        lv.segments
            .iter()
            .any(|s| matches!(s.kind, SegmentKind::Snapshot { .. }))
    }

    /// `VISIBLE` as lvm2 holds it after import.
    fn visible_flag(&self, lv: &LogicalVolume) -> bool {
        lv.status.contains("VISIBLE") && !self.hidden.contains(lv.name.as_str())
    }

    /// `lv_is_visible`.
    fn visible(&self, lv: &LogicalVolume, depth: usize) -> bool {
        if Self::is_snapshot(lv) {
            return false;
        }
        if let Some(&(origin, merging)) = self.cow.get(lv.name.as_str()) {
            let Some(o) = self.by_name.get(origin) else {
                return false;
            };
            // An origin that is not visible is a virtual (sparse) origin.
            if !self.visible_flag(o) {
                return true;
            }
            if merging {
                return false;
            }
            return depth < 8 && self.visible(o, depth + 1);
        }
        self.visible_flag(lv)
    }
}

fn print_lv(
    o: &mut Out,
    vg: &VolumeGroup,
    lv: &LogicalVolume,
    rel: &Relations<'_>,
    pv_index: &HashMap<&str, usize>,
) {
    o.nl();
    o.linef(format_args!("{} {{", lv.name));
    o.inc();
    o.linef(format_args!("id = \"{}\"", lv.id));
    let mut set = effective(&lv.status, &lv.flags, LV_TABLE);
    if rel.hidden.contains(lv.name.as_str()) {
        set.remove("VISIBLE");
    }
    print_flags(o, set, write_locked(vg));
    if !lv.tags.is_empty() {
        o.linef(format_args!(
            "tags = {}",
            str_list(lv.tags.iter().map(|s| s.as_str()))
        ));
    }
    if let Some(t) = lv.creation_time.map(|t| t as u64).filter(|&t| t != 0) {
        if o.file {
            let c = format!("# {}", iso_time(t));
            o.line_c(&format!("creation_time = {t}"), Some(&c));
        } else {
            o.linef(format_args!("creation_time = {t}"));
        }
        o.linef(format_args!(
            "creation_host = {}",
            q(lv.creation_host.as_deref().unwrap_or(""))
        ));
    }
    if let Some(la) = &lv.lock_args {
        o.linef(format_args!("lock_args = {}", q(la)));
    }
    if lv.allocation_policy != AllocPolicy::Inherit {
        o.linef(format_args!(
            "allocation_policy = \"{}\"",
            lv.allocation_policy.as_str()
        ));
    }
    if let Some(p) = &lv.profile {
        o.linef(format_args!("profile = {}", q(p)));
    }
    // lvm2 reads 0 as "auto" (not written) and -1 as "none".
    match lv.read_ahead.map(|r| r as u32) {
        None | Some(0) => {}
        Some(u32::MAX) => o.line_c("read_ahead = -1", Some("# None")),
        Some(r) => o.linef(format_args!("read_ahead = {r}")),
    }
    if lv.status.contains("FIXED_MINOR") {
        if let Some(m) = lv.major {
            o.linef(format_args!("major = {}", m as i32));
        }
        if let Some(m) = lv.minor {
            o.linef(format_args!("minor = {}", m as i32));
        }
    }
    o.linef(format_args!("segment_count = {}", lv.segments.len()));
    o.nl();
    // Segment-type flags are LV-wide in lvm2: every segment carries all of them.
    let seg_flags: BTreeSet<&str> = lv
        .segments
        .iter()
        .flat_map(|s| s.type_name.split('+').skip(1))
        .collect();
    let suffix: String = LV_TABLE
        .iter()
        .filter(|(n, k)| *k == G && seg_flags.contains(n))
        .map(|(n, _)| format!("+{n}"))
        .collect();
    for (i, seg) in lv.segments.iter().enumerate() {
        print_segment(o, vg, i + 1, seg, &suffix, pv_index);
    }
    o.dec();
    o.line("}");
}

fn print_segment(
    o: &mut Out,
    vg: &VolumeGroup,
    n: usize,
    seg: &Segment,
    suffix: &str,
    pv_index: &HashMap<&str, usize>,
) {
    o.linef(format_args!("segment{n} {{"));
    o.inc();
    o.linef(format_args!("start_extent = {}", seg.start_extent));
    o.size(
        &format!("extent_count = {}", seg.extent_count),
        seg.extent_count.wrapping_mul(vg.extent_size),
    );
    o.nl();
    let base = seg.type_name.split('+').next().unwrap_or_default();
    o.linef(format_args!("type = {}", q(&format!("{base}{suffix}"))));
    match &seg.kind {
        SegmentKind::Striped { stripe_size, areas } => {
            let c = (areas.len() == 1).then_some("# linear");
            o.line_c(&format!("stripe_count = {}", areas.len()), c);
            if areas.len() > 1 {
                o.size(&format!("stripe_size = {stripe_size}"), *stripe_size);
            }
            o.nl();
            o.line("stripes = [");
            o.inc();
            for (i, a) in areas.iter().enumerate() {
                let comma = if i + 1 == areas.len() { "" } else { "," };
                match a {
                    Area::Pv { pv, pe } => {
                        let idx = pv_index.get(pv.as_str()).copied().unwrap_or(usize::MAX);
                        if idx == usize::MAX {
                            o.linef(format_args!("{}, {pe}{comma}", q(pv)));
                        } else {
                            o.linef(format_args!("\"pv{idx}\", {pe}{comma}"));
                        }
                    }
                    Area::Lv { lv, le } => o.linef(format_args!("{}, {le}{comma}", q(lv))),
                }
            }
            o.dec();
            o.line("]");
        }
        SegmentKind::Snapshot {
            chunk_size,
            origin,
            cow,
            merging,
        } => {
            o.linef(format_args!("chunk_size = {chunk_size}"));
            o.linef(format_args!("origin = {}", q(origin)));
            let key = if *merging {
                "merging_store"
            } else {
                "cow_store"
            };
            o.linef(format_args!("{key} = {}", q(cow)));
        }
        SegmentKind::ThinPool {
            metadata,
            data,
            transaction_id,
            chunk_size,
            discards,
            zero_new_blocks,
            messages,
            crop_metadata,
        } => {
            o.linef(format_args!("metadata = {}", q(metadata)));
            o.linef(format_args!("pool = {}", q(data)));
            o.linef(format_args!("transaction_id = {transaction_id}"));
            o.size(&format!("chunk_size = {chunk_size}"), *chunk_size);
            let d = match discards {
                Discards::Ignore => "ignore",
                Discards::NoPassdown => "nopassdown",
                Discards::Passdown => "passdown",
            };
            o.linef(format_args!("discards = \"{d}\""));
            if *zero_new_blocks {
                o.line("zero_new_blocks = 1");
            }
            if let Some(c) = crop_metadata {
                o.linef(format_args!("crop_metadata = {}", u32::from(*c)));
            }
            for (i, m) in messages.iter().enumerate() {
                if i == 0 {
                    o.nl();
                }
                o.linef(format_args!("message{} {{", i + 1));
                o.inc();
                match m {
                    ThinMessage::Create(lv) => o.linef(format_args!("create = {}", q(lv))),
                    ThinMessage::Delete(id) => {
                        o.linef(format_args!("delete = {}", *id as u32 as i32))
                    }
                }
                o.dec();
                o.line("}");
            }
        }
        SegmentKind::Thin {
            pool,
            transaction_id,
            device_id,
            origin,
            merge,
            external_origin,
        } => {
            o.linef(format_args!("thin_pool = {}", q(pool)));
            o.linef(format_args!("transaction_id = {transaction_id}"));
            o.linef(format_args!("device_id = {}", *device_id as u32 as i32));
            if let Some(e) = external_origin {
                o.linef(format_args!("external_origin = {}", q(e)));
            }
            if let Some(e) = origin {
                o.linef(format_args!("origin = {}", q(e)));
            }
            if let Some(e) = merge {
                o.linef(format_args!("merge = {}", q(e)));
            }
        }
        // No keys of their own; `Other` segments cannot be printed back (their keys are
        // not modelled): check_printable refuses them.
        _ => {}
    }
    o.dec();
    o.line("}");
}
