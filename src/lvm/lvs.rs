//! What `lvs` prints: one [`LvsRow`] per visible LV with lvm2's `lv_attr` letters, size
//! display and `Data%` rounding, from the metadata and the kernel's live state of each
//! LV's device (lvm2's `lv_attr_dup_with_info_and_seg_status` in `lib/metadata/lv.c`,
//! `dm_size_to_string` and `dm_make_percent` in libdm).
//!
//! [`rows`] is pure: the live state comes through a callback, so the letters can be
//! checked without a kernel; [`kernel_state`] asks device-mapper.
//!
//! ```
//! use devmapper::lvm::lvs::{self, LiveState};
//! use devmapper::lvm::{config::ParseMode, model::VolumeGroup};
//! # let text = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
//! let vg = VolumeGroup::from_text(text, ParseMode::File)?;
//! let rows = lvs::rows(&vg, &|_lv| Some(LiveState::default()), &[]);
//! let origin = rows.iter().find(|r| r.lv == "origin").unwrap();
//! assert_eq!(origin.attr, "owi---s---");
//! let snap = rows.iter().find(|r| r.lv == "snap2").unwrap();
//! assert_eq!((snap.attr.as_str(), snap.origin.as_deref()), ("sri---s---", Some("origin")));
//! assert_eq!(lvs::display_size(24576), "12.00m");
//! assert_eq!(lvs::percent_text(1, 3), "33.33");
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashSet;

use super::index::VgIndex;
use super::model::{Area, LogicalVolume, SegmentKind, VolumeGroup};
use super::scan::ScanReport;
use crate::targets::{SnapshotStatus, TargetStatus};
use crate::{DevId, DeviceMapper, DmUuid, StatusFlush, Which};

/// The kernel's view of an LV's device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveState {
    /// A dm device with the LV's uuid exists.
    pub exists: bool,
    /// It is suspended.
    pub suspended: bool,
    /// It has a live table.
    pub live_table: bool,
    /// It has an inactive (loaded, not resumed) table.
    pub inactive_table: bool,
    /// It was activated read-only.
    pub read_only: bool,
    /// Its open count.
    pub open_count: i32,
    /// The status of its snapshot (or snapshot-merge) target, if it has one.
    pub snapshot: Option<SnapshotStatus>,
}

/// One line of `lvs`.
#[derive(Clone, Debug, PartialEq)]
pub struct LvsRow {
    /// `LV`.
    pub lv: String,
    /// `VG`.
    pub vg: String,
    /// `Attr`, ten letters.
    pub attr: String,
    /// The LV size in sectors (`LSize`; for a snapshot, its COW store's size, as lvm2).
    pub size_sectors: u64,
    /// `Origin` (of a snapshot).
    pub origin: Option<String>,
    /// `Data%` / `Snap%` of a snapshot, as lvm2 shows it (two decimals).
    pub data_percent: Option<f64>,
    /// `Move` (pvmove; never set here).
    pub move_pv: Option<String>,
    /// `Convert` (never set here).
    pub convert: Option<String>,
}

/// lvm2's human size with `--units r` (its default): binary units, two decimals,
/// lower-case one-letter suffix, `<` when the shown value is rounded up.
///
/// ```
/// use devmapper::lvm::lvs::display_size;
/// assert_eq!(display_size(8192), "4.00m");
/// assert_eq!(display_size(2097152), "1.00g");
/// assert_eq!(display_size(2095104), "1023.00m");
/// assert_eq!(display_size(2043 * 2048), "<2.00g"); // 1.995 GiB
/// assert_eq!(display_size(0), "0 ");
/// ```
pub fn display_size(sectors: u64) -> String {
    size_string(sectors, false)
}

/// lvm2's `display_size` in messages: as [`display_size`] with ` MiB`-style suffixes
/// (`Rounding up size to full physical extent 12.00 MiB`).
///
/// ```
/// use devmapper::lvm::lvs::display_size_long;
/// assert_eq!(display_size_long(24576), "12.00 MiB");
/// assert_eq!(display_size_long(1), "512 B");
/// ```
pub fn display_size_long(sectors: u64) -> String {
    size_string(sectors, true)
}

fn size_string(sectors: u64, long: bool) -> String {
    const SHORT: [&str; 7] = ["e", "p", "t", "g", "m", "k", "b"];
    const LONG: [&str; 7] = [" EiB", " PiB", " TiB", " GiB", " MiB", " KiB", " B"];
    if sectors == 0 {
        return "0 ".into();
    }
    let size = u128::from(sectors) * 512;
    let mut byte: u128 = 1 << 60;
    let mut s = 0usize;
    while s < 6 && size < byte {
        byte >>= 10;
        s += 1;
    }
    let value = size as f64 / byte as f64;
    let mut prefix = "";
    if s < 6 {
        let d = 100.0 * value;
        // nearbyintl in libdm: ties to even (12.125 MiB shows as "12.12 MiB", no `<`).
        if (d.floor() - d.round_ties_even()).abs() > 1e-7 {
            prefix = "<";
        }
    }
    let suffix = if long { LONG[s] } else { SHORT[s] };
    if s == 6 {
        format!("{prefix}{value:.0}{suffix}")
    } else {
        format!("{prefix}{value:.2}{suffix}")
    }
}

/// `dm_make_percent` then `dm_percent_to_round_float(.., 2)`: 0 and 100 only when exact,
/// never shown as 0.00 or 100.00 otherwise.
pub fn percent(numerator: u64, denominator: u64) -> f32 {
    const ONE: i64 = 1_000_000;
    const HUNDRED: i64 = 100 * ONE;
    let p: i64 = if denominator == 0 || numerator == denominator {
        HUNDRED
    } else if numerator == 0 {
        0
    } else {
        match (HUNDRED as f64 * (numerator as f64 / denominator as f64)) as i64 {
            HUNDRED => HUNDRED - 1,
            0 => 1,
            p => p,
        }
    };
    let r = ONE / 100;
    if p > 0 && p < r {
        0.01
    } else if p > HUNDRED - r && p < HUNDRED {
        (HUNDRED - r) as f32 / ONE as f32
    } else {
        p as f32 / ONE as f32
    }
}

/// [`percent`] as `lvs` prints it (`%.2f`).
pub fn percent_text(numerator: u64, denominator: u64) -> String {
    format!("{:.2}", percent(numerator, denominator))
}

/// A snapshot's `Data%` from its target status (lvm2's `lvseg_percent_with_info_and_seg_status`):
/// invalid (or overflowed) is 100, a merge that is done is 0, else allocated/total.
pub fn snapshot_percent(st: &SnapshotStatus) -> Option<f32> {
    match st {
        SnapshotStatus::Active(u) if u.allocated == u.metadata => Some(0.0),
        SnapshotStatus::Active(u) => Some(percent(u.allocated.0, u.total.0)),
        SnapshotStatus::Invalid | SnapshotStatus::Overflow => Some(100.0),
        SnapshotStatus::MergeFailed | SnapshotStatus::Unknown => None,
    }
}

fn lv_segtypes(lv: &LogicalVolume) -> impl Iterator<Item = &str> {
    lv.segments.iter().map(|s| match &s.kind {
        SegmentKind::Other { segtype, .. } => segtype.as_str(),
        _ => s.type_name.split('+').next().unwrap_or_default(),
    })
}

/// The ten `lv_attr` letters of `lv`; `live` is `None` when the kernel could not be asked
/// (`X` for state and open, as lvm2 without activation).
pub fn attr(
    ix: &VgIndex<'_>,
    lv: &LogicalVolume,
    live: Option<&LiveState>,
    missing_pvs: &[String],
) -> String {
    let vg = ix.vg();
    let cow = ix.cow(&lv.name);
    let snaps = ix.links_of(&lv.name);
    let kinds: Vec<&str> = lv_segtypes(lv).collect();
    let has = |t: &str| kinds.iter().any(|k| k.starts_with(t));
    let first = lv.first_kind();
    let is_thin_pool = matches!(first, Some(SegmentKind::ThinPool { .. }));
    let is_thin = matches!(first, Some(SegmentKind::Thin { .. }));
    let virt = !lv.segments.is_empty()
        && lv
            .segments
            .iter()
            .all(|s| matches!(s.kind, SegmentKind::Zero | SegmentKind::Error));
    let used_as = |suffix: &str| lv.name.ends_with(suffix);
    let mut a = ['-'; 10];
    a[0] = if !snaps.is_empty() {
        if snaps.iter().any(|l| l.merging) {
            'O'
        } else {
            'o'
        }
    } else if used_as("_tmeta") || used_as("_pmspare") || used_as("_rmeta") || used_as("_cmeta") {
        'e'
    } else if has("cache") || has("writecache") {
        'C'
    } else if has("raid") {
        'r'
    } else if has("mirror") {
        'm'
    } else if is_thin {
        'V'
    } else if has("vdo-pool") {
        'd'
    } else if virt {
        'v'
    } else if is_thin_pool {
        't'
    } else if used_as("_tdata") {
        'T'
    } else if let Some(l) = cow {
        if l.merging { 'S' } else { 's' }
    } else {
        '-'
    };
    a[1] = if lv.status.contains("WRITE") {
        'w'
    } else if lv.status.contains("READ") {
        'r'
    } else {
        '-'
    };
    a[2] = 'i';
    if lv.status.contains("LOCKED") {
        a[2] = 'I';
    }
    if lv.status.contains("FIXED_MINOR") {
        a[3] = 'm';
    }
    match live {
        None => {
            a[4] = 'X';
            a[5] = 'X';
        }
        Some(l) if l.exists => {
            a[4] = if l.suspended {
                's'
            } else if l.live_table {
                'a'
            } else if l.inactive_table {
                'i'
            } else {
                'd'
            };
            if l.live_table {
                match l.snapshot {
                    Some(SnapshotStatus::Invalid) => a[4] = if l.suspended { 'S' } else { 'I' },
                    Some(SnapshotStatus::MergeFailed) => {
                        a[4] = if l.suspended { 'M' } else { 'm' };
                    }
                    _ => {}
                }
            }
            if a[1] != 'r' && l.read_only {
                a[1] = 'R';
            }
            a[5] = if l.open_count > 0 { 'o' } else { '-' };
        }
        Some(_) => {}
    }
    a[6] = if is_thin_pool || is_thin {
        't'
    } else if has("cache") || has("writecache") {
        'C'
    } else if has("raid") {
        'r'
    } else if has("mirror") {
        'm'
    } else if cow.is_some() || !snaps.is_empty() {
        's'
    } else if lv
        .segments
        .iter()
        .any(|s| matches!(s.kind, SegmentKind::Other { .. }))
    {
        'u'
    } else if virt {
        'v'
    } else {
        '-'
    };
    let zero_pool = |pool: &str| {
        ix.lv(pool)
            .and_then(LogicalVolume::first_kind)
            .is_some_and(|k| {
                matches!(
                    k,
                    SegmentKind::ThinPool {
                        zero_new_blocks: true,
                        ..
                    }
                )
            })
    };
    a[7] = match first {
        Some(SegmentKind::ThinPool {
            zero_new_blocks: true,
            ..
        }) => 'z',
        Some(SegmentKind::Thin { pool, .. }) if zero_pool(pool) => 'z',
        _ => '-',
    };
    let on_missing = lv.segments.iter().any(|s| match &s.kind {
        SegmentKind::Striped { areas, .. } => areas.iter().any(|ar| match ar {
            Area::Pv { pv, .. } => {
                missing_pvs.contains(pv) || vg.pv(pv).is_none_or(|p| p.is_missing())
            }
            Area::Lv { .. } => false,
        }),
        _ => false,
    });
    if on_missing {
        a[8] = 'p';
    }
    if lv.flags.contains("ACTIVATION_SKIP") || lv.status.contains("ACTIVATION_SKIP") {
        a[9] = 'k';
    }
    a.iter().collect()
}

/// The `lvs` rows of `vg`: visible LVs in metadata order. `live` gives the kernel state of
/// an LV's device (`None`: unknown); `missing_pvs` are PV handles not found on any device.
pub fn rows(
    vg: &VolumeGroup,
    live: &dyn Fn(&LogicalVolume) -> Option<LiveState>,
    missing_pvs: &[String],
) -> Vec<LvsRow> {
    let ix = VgIndex::new(vg);
    vg.lvs
        .iter()
        .filter(|lv| ix.is_visible(lv))
        .map(|lv| {
            let state = live(lv);
            let cow = ix.cow(&lv.name);
            let data_percent = match (&cow, &state) {
                (Some(_), Some(s)) if s.exists && s.live_table => s
                    .snapshot
                    .as_ref()
                    .and_then(snapshot_percent)
                    .map(|p| f64::from((p * 100.0).round()) / 100.0),
                _ => None,
            };
            LvsRow {
                lv: lv.name.clone(),
                vg: vg.name.clone(),
                attr: attr(&ix, lv, state.as_ref(), missing_pvs),
                size_sectors: vg.lv_size(lv),
                origin: cow.map(|l| l.origin.to_string()),
                data_percent,
                move_pv: None,
                convert: None,
            }
        })
        .collect()
}

/// The kernel state of the dm device with uuid `LVM-<vg id><lv id>` (the LV's own
/// device; for a snapshot, the snapshot device). `None` when device-mapper cannot be
/// asked; a device that does not exist is `exists: false`.
pub fn kernel_state(dm: &DeviceMapper, vg: &VolumeGroup, lv: &LogicalVolume) -> Option<LiveState> {
    live_state(
        dm,
        &format!("LVM-{}{}", vg.id.as_str(), lv.id.as_str()),
        true,
    )
}

/// [`kernel_state`] of the device with this uuid; its status is read only with
/// `snapshot` (an LV whose device can run `snapshot` or `snapshot-merge`).
fn live_state(dm: &DeviceMapper, uuid: &str, snapshot: bool) -> Option<LiveState> {
    let uuid = DmUuid::new(uuid).ok()?;
    let info = match dm.info(DevId::Uuid(&uuid)) {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Some(LiveState::default()),
        Err(_) => return None,
    };
    let mut st = LiveState {
        exists: true,
        suspended: info.suspended(),
        live_table: info.has_live_table(),
        inactive_table: info.has_inactive_table(),
        read_only: info.read_only(),
        open_count: info.open_count,
        snapshot: None,
    };
    if snapshot
        && st.live_table
        && !st.suspended
        && let Ok(lines) = dm.status(DevId::Uuid(&uuid), Which::Live, StatusFlush::NoFlush)
    {
        st.snapshot = lines.iter().find_map(|l| match &l.status {
            TargetStatus::Snapshot(s) | TargetStatus::SnapshotMerge(s) => Some(*s),
            _ => None,
        });
    }
    Some(st)
}

/// The `lvs` rows of every VG of a scan (or of the VGs named), with the kernel state
/// from `dm` (`None`: unknown, `X` letters) and the PVs not found marked partial.
///
/// One `DM_LIST_DEVICES` says which LVs have a device; only those are asked for their
/// info, and only snapshots and origins of snapshots for their status too.
pub fn collect(report: &ScanReport, vg_names: &[String], dm: Option<&DeviceMapper>) -> Vec<LvsRow> {
    let mut out = Vec::new();
    // The uuids of every dm device (`None`: device-mapper cannot be asked).
    let listed: Option<(&DeviceMapper, HashSet<String>)> = dm.and_then(|dm| {
        let l = dm.list().ok()?;
        Some((dm, l.into_iter().filter_map(|e| e.uuid).collect()))
    });
    for s in &report.vgs {
        if !vg_names.is_empty() && !vg_names.contains(&s.vg.name) {
            continue;
        }
        let missing: Vec<String> = s.missing_pvs().map(|p| p.handle.clone()).collect();
        let ix = VgIndex::new(&s.vg);
        let live = |lv: &LogicalVolume| -> Option<LiveState> {
            let (dm, uuids) = listed.as_ref()?;
            let uuid = format!("LVM-{}{}", s.vg.id.as_str(), lv.id.as_str());
            if !uuids.contains(&uuid) {
                return Some(LiveState::default());
            }
            let snapshotty = ix.cow(&lv.name).is_some() || !ix.links_of(&lv.name).is_empty();
            live_state(dm, &uuid, snapshotty)
        };
        out.extend(rows(&s.vg, &live, &missing));
    }
    out
}

/// The fixed-width table `lvs` prints (two leading spaces, left-aligned text columns,
/// right-aligned sizes and percentages).
pub fn format_table(rows: &[LvsRow]) -> String {
    let head = [
        "LV", "VG", "Attr", "LSize", "Origin", "Data%", "Move", "Convert",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.lv.clone(),
                r.vg.clone(),
                r.attr.clone(),
                display_size(r.size_sectors),
                r.origin.clone().unwrap_or_default(),
                r.data_percent
                    .map(|p| format!("{p:.2}"))
                    .unwrap_or_default(),
                r.move_pv.clone().unwrap_or_default(),
                r.convert.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let right = [false, false, false, true, false, true, false, false];
    let line = |c: &[String]| {
        let mut s = String::from(" ");
        for (i, v) in c.iter().enumerate() {
            s.push(' ');
            if right[i] {
                s.push_str(&format!("{v:>width$}", width = w[i]));
            } else {
                s.push_str(&format!("{v:<width$}", width = w[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&head.map(String::from));
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_like_libdm() {
        assert_eq!(percent_text(0, 10), "0.00");
        assert_eq!(percent_text(10, 10), "100.00");
        // Tiny but non-zero: never 0.00.
        assert_eq!(percent_text(1, 1_000_000), "0.01");
        // Nearly full: never 100.00.
        assert_eq!(percent_text(999_999, 1_000_000), "99.99");
        // lvm2's snapshot-usage.sh: 100K COW (200 sectors), a 4K write: 24/200.
        assert_eq!(percent_text(24, 200), "12.00");
        let used = SnapshotStatus::Active(crate::targets::SnapshotUsage {
            allocated: crate::units::Sectors(16),
            total: crate::units::Sectors(200),
            metadata: crate::units::Sectors(16),
        });
        assert_eq!(snapshot_percent(&used), Some(0.0));
        assert_eq!(snapshot_percent(&SnapshotStatus::Invalid), Some(100.0));
    }

    #[test]
    fn sizes_like_lvm2() {
        assert_eq!(display_size(24576), "12.00m");
        assert_eq!(display_size(1), "512b");
        assert_eq!(display_size(8), "4.00k");
        assert_eq!(display_size(3 << 30), "1.50t");
        // 2043 MiB: 1.995 GiB, printed 2.00 with the '<'.
        assert_eq!(display_size(2043 * 2048), "<2.00g");
        assert_eq!(display_size_long(8192), "4.00 MiB");
    }
}
