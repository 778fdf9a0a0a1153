//! Snapshot metadata transforms: pure functions from one [`VolumeGroup`] value to the
//! next, writing what lvm2's `vg_add_snapshot` and `vg_remove_snapshot`
//! (`lib/metadata/snapshot_manip.c`) write.
//!
//! [`add_snapshot`] adds the COW LV (the snapshot's user-visible name, status `READ` +
//! `WRITE` without `VISIBLE`: lvm2 shows it because its origin is visible) and the
//! internal `snapshotN` LV (status `READ`, `WRITE`, `VISIBLE`, one `snapshot` segment of
//! the origin's size naming the chunk size, origin and `cow_store`), `N` as lvm2's
//! `generate_lv_name` picks it ([`next_snapshot_name`]). [`remove_snapshot`] takes both
//! out again.
//!
//! ```
//! use devmapper::lvm::config::ParseMode;
//! use devmapper::lvm::model::VolumeGroup;
//! use devmapper::lvm::write::snapshot::meta::{add_snapshot, next_snapshot_name, remove_snapshot, NewSnapshot};
//! # let text = include_bytes!("../../../../tests/fixtures/lvm/snap/before.vg");
//! let vg = VolumeGroup::from_text(text, ParseMode::File)?;
//! let cow = vg.lvs[0].segments.clone(); // stand-in for allocated extents
//! let new = NewSnapshot::new("lv0", "snap", cow, 8, 1_700_000_000, "host1")?;
//! let with = add_snapshot(&vg, &new)?;
//! assert_eq!(next_snapshot_name(&vg), "snapshot0");
//! assert_eq!(with.cow_link("snap").unwrap().origin, "lv0");
//! let without = remove_snapshot(&with, "snap")?;
//! assert_eq!(without.lvs, vg.lvs);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use super::{BadOriginKind, SnapshotError};
use crate::lvm::id::LvmId;
use crate::lvm::model::{AllocPolicy, Area, LogicalVolume, Segment, SegmentKind, VolumeGroup};

/// The number `sscanf(name, "snapshot%d")` reads from an LV name, if any: `snapshot`,
/// an optional sign, digits (anything after them ignored), as lvm2's
/// `generate_lv_name` reads names.
fn snapshot_number(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("snapshot")?;
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let d = &digits[..end];
    if d.is_empty() {
        return None;
    }
    // Past i32 (lvm2's %d) clamp: such names cannot come from lvm2's own numbering.
    let v = d
        .parse::<i64>()
        .unwrap_or(i64::MAX)
        .min(i64::from(i32::MAX));
    Some(if neg { -v } else { v })
}

/// The name lvm2 gives the next internal snapshot LV: `snapshot` + (the highest number
/// any LV name of the form `snapshot<N>` carries, + 1); `snapshot0` when there is none.
/// Not the lowest free number: after `snapshot0` and `snapshot3`, `snapshot4`.
///
/// (lvm2 also counts the names of historical LVs; a VG with a
/// `historical_logical_volumes` section is refused by the writer, so there are none.)
///
/// ```
/// use devmapper::lvm::write::snapshot::meta::next_snapshot_name;
/// # let text = include_bytes!("../../../../tests/fixtures/lvm/multi/backup.vg");
/// # let vg = devmapper::lvm::model::VolumeGroup::from_text(text, devmapper::lvm::config::ParseMode::File).unwrap();
/// assert!(next_snapshot_name(&vg).starts_with("snapshot"));
/// ```
pub fn next_snapshot_name(vg: &VolumeGroup) -> String {
    let high = vg
        .lvs
        .iter()
        .filter_map(|l| snapshot_number(&l.name))
        .max()
        .unwrap_or(-1);
    format!("snapshot{}", high + 1)
}

/// Can `origin` get a (thick) snapshot? lvm2's `validate_snapshot_origin`, for what this
/// crate writes: a visible, linear or striped LV on PVs, not itself a snapshot, without a
/// merging snapshot.
///
/// # Errors
/// [`SnapshotError::NoSuchLv`], [`SnapshotError::BadOrigin`].
pub fn check_origin(vg: &VolumeGroup, origin: &str) -> Result<(), SnapshotError> {
    let lv = vg.lv(origin).ok_or_else(|| SnapshotError::NoSuchLv {
        lv: format!("{}/{origin}", vg.name),
    })?;
    let bad = |kind| {
        Err(SnapshotError::BadOrigin {
            lv: format!("{}/{origin}", vg.name),
            kind,
        })
    };
    if vg.is_snapshot_internal(lv) {
        return bad(BadOriginKind::IsInternal);
    }
    if vg.cow_link(origin).is_some() {
        return bad(BadOriginKind::IsSnapshot);
    }
    if vg.snapshot_links().any(|l| l.origin == origin && l.merging) {
        return bad(BadOriginKind::Merging);
    }
    if !vg.is_visible(lv) {
        return bad(BadOriginKind::Hidden);
    }
    let plain = !lv.segments.is_empty()
        && lv.segments.iter().all(|s| {
            matches!(&s.kind, SegmentKind::Striped { areas, .. }
                if areas.iter().all(|a| matches!(a, Area::Pv { .. })))
        });
    if !plain {
        return bad(BadOriginKind::Unsupported);
    }
    Ok(())
}

/// A snapshot to add with [`add_snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSnapshot {
    /// The origin LV.
    pub origin: String,
    /// The COW LV's name (the snapshot's name as users see it).
    pub cow_name: String,
    /// The COW LV's id (its dm devices' uuids come from it).
    pub cow_id: LvmId,
    /// The internal `snapshotN` LV's id.
    pub snapshot_id: LvmId,
    /// The COW's extents (from the allocator), LE 0 first.
    pub segments: Vec<Segment>,
    /// Chunk size in sectors.
    pub chunk_size: u64,
    /// `creation_time` of both new LVs.
    pub creation_time: i64,
    /// `creation_host` of both new LVs.
    pub creation_host: String,
    /// A read-only snapshot (`lvcreate -s -pr`): the COW LV without `WRITE`.
    pub read_only: bool,
}

impl NewSnapshot {
    /// A read-write snapshot with fresh random ids.
    ///
    /// # Errors
    /// Reading `/dev/urandom` failed.
    pub fn new(
        origin: &str,
        cow_name: &str,
        segments: Vec<Segment>,
        chunk_size: u64,
        creation_time: i64,
        creation_host: &str,
    ) -> std::io::Result<NewSnapshot> {
        Ok(NewSnapshot {
            origin: origin.to_string(),
            cow_name: cow_name.to_string(),
            cow_id: LvmId::generate()?,
            snapshot_id: LvmId::generate()?,
            segments,
            chunk_size,
            creation_time,
            creation_host: creation_host.to_string(),
            read_only: false,
        })
    }
}

fn flags(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn new_lv(
    name: &str,
    id: LvmId,
    status: &[&str],
    s: &NewSnapshot,
    segments: Vec<Segment>,
) -> LogicalVolume {
    LogicalVolume {
        name: name.to_string(),
        id,
        status: flags(status).into_iter().collect(),
        flags: Default::default(),
        tags: Vec::new(),
        read_ahead: None,
        major: None,
        minor: None,
        creation_time: Some(s.creation_time),
        creation_host: Some(s.creation_host.clone()),
        lock_args: None,
        allocation_policy: AllocPolicy::Inherit,
        profile: None,
        segments,
    }
}

/// The VG with a new snapshot of `s.origin`: the COW LV (after the other visible LVs, as
/// lvm2 appends a new LV) and `snapshotN` (last). Several snapshots of one origin are
/// fine; each gets its own `snapshotN`.
///
/// # Errors
/// [`SnapshotError::BadOrigin`], [`SnapshotError::NoSuchLv`], [`SnapshotError::BadChunk`];
/// [`SnapshotError::NotSnapshot`] when the COW name is taken or the COW has no extents.
pub fn add_snapshot(vg: &VolumeGroup, s: &NewSnapshot) -> Result<VolumeGroup, SnapshotError> {
    check_origin(vg, &s.origin)?;
    super::size::check_chunk(s.chunk_size)?;
    if vg.lv(&s.cow_name).is_some() || s.segments.is_empty() {
        return Err(SnapshotError::NotSnapshot {
            lv: format!("{}/{}", vg.name, s.cow_name),
        });
    }
    let origin_le = vg.lv(&s.origin).map_or(0, LogicalVolume::le_count);
    let cow_status: &[&str] = if s.read_only {
        &["READ"]
    } else {
        &["READ", "WRITE"]
    };
    let cow = new_lv(&s.cow_name, s.cow_id, cow_status, s, s.segments.clone());
    let name = next_snapshot_name(vg);
    let seg = Segment {
        start_extent: 0,
        extent_count: origin_le,
        type_name: "snapshot".into(),
        kind: SegmentKind::Snapshot {
            chunk_size: s.chunk_size,
            origin: s.origin.clone(),
            cow: s.cow_name.clone(),
            merging: false,
        },
    };
    let snap = new_lv(
        &name,
        s.snapshot_id,
        &["READ", "WRITE", "VISIBLE"],
        s,
        vec![seg],
    );
    let mut new = vg.clone();
    let at = new
        .lvs
        .iter()
        .position(|l| !vg.is_visible(l))
        .unwrap_or(new.lvs.len());
    new.lvs.insert(at, cow);
    new.lvs.push(snap);
    Ok(new)
}

/// The VG without the snapshot whose COW LV is `cow`: its `snapshotN` LV and the COW LV
/// both gone (lvm2 takes two commits for this; the result is the VG of the second).
///
/// # Errors
/// [`SnapshotError::NoSuchLv`], [`SnapshotError::NotSnapshot`],
/// [`SnapshotError::InternalLv`] (the `snapshotN` LV named: remove its COW LV).
pub fn remove_snapshot(vg: &VolumeGroup, cow: &str) -> Result<VolumeGroup, SnapshotError> {
    let lv = vg.lv(cow).ok_or_else(|| SnapshotError::NoSuchLv {
        lv: format!("{}/{cow}", vg.name),
    })?;
    if let Some(SegmentKind::Snapshot { cow: c, .. }) = lv.first_kind() {
        return Err(SnapshotError::InternalLv {
            lv: format!("{}/{cow}", vg.name),
            cow: c.clone(),
        });
    }
    let link = vg.cow_link(cow).ok_or_else(|| SnapshotError::NotSnapshot {
        lv: format!("{}/{cow}", vg.name),
    })?;
    let internal = link.snapshot_lv.name.clone();
    let mut new = vg.clone();
    new.lvs.retain(|l| l.name != cow && l.name != internal);
    Ok(new)
}

/// The COW LVs of `origin`'s snapshots, in metadata order.
pub fn snapshots_of(vg: &VolumeGroup, origin: &str) -> Vec<String> {
    vg.snapshot_links()
        .filter(|l| l.origin == origin)
        .map(|l| l.cow.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::config::ParseMode;

    fn vg(name: &str) -> VolumeGroup {
        let p = format!(
            "{}/tests/fixtures/lvm/snap/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&p).unwrap();
        VolumeGroup::from_text(&text, ParseMode::File).unwrap()
    }

    #[test]
    fn sscanf_numbers() {
        assert_eq!(snapshot_number("snapshot0"), Some(0));
        assert_eq!(snapshot_number("snapshot12abc"), Some(12));
        assert_eq!(snapshot_number("snapshot-3"), Some(-3));
        assert_eq!(snapshot_number("snapshot+7"), Some(7));
        assert_eq!(snapshot_number("snapshot"), None);
        assert_eq!(snapshot_number("snapshotx1"), None);
        assert_eq!(snapshot_number("mysnapshot1"), None);
        assert_eq!(
            snapshot_number("snapshot99999999999"),
            Some(i64::from(i32::MAX))
        );
    }

    #[test]
    fn highest_plus_one_not_lowest_free() {
        let mut v = vg("before.vg");
        assert_eq!(next_snapshot_name(&v), "snapshot0");
        let mut a = v.lvs[0].clone();
        a.name = "snapshot3".into();
        v.lvs.push(a.clone());
        a.name = "snapshot1x".into();
        v.lvs.push(a);
        assert_eq!(next_snapshot_name(&v), "snapshot4");
    }

    /// Our transform of lvm2's "before" VG, given lvm2's ids, times and extents, equals
    /// the VG lvm2 wrote after `lvcreate -s` (and after a second snapshot, and after
    /// removing the first), field by field and as printed text.
    #[test]
    fn same_as_lvm2() {
        let before = vg("before.vg");
        let mut prev = before.clone();
        for (after, cow, chunk) in [("after1.vg", "snap", 8), ("after2.vg", "snap2", 32)] {
            let want = vg(after);
            let c = want.lv(cow).unwrap();
            let link = want.cow_link(cow).unwrap();
            let s = NewSnapshot {
                origin: "lv0".into(),
                cow_name: cow.into(),
                cow_id: c.id,
                snapshot_id: link.snapshot_lv.id,
                segments: c.segments.clone(),
                chunk_size: chunk,
                creation_time: c.creation_time.unwrap(),
                creation_host: c.creation_host.clone().unwrap(),
                read_only: false,
            };
            let mut got = add_snapshot(&prev, &s).unwrap();
            // lvm2 gives both new LVs the time of their own creation (a second apart at most).
            let sn = got
                .lvs
                .iter_mut()
                .find(|l| l.name == link.snapshot_lv.name)
                .unwrap();
            sn.creation_time = link.snapshot_lv.creation_time;
            got.seqno = want.seqno;
            assert_eq!(got.lvs, want.lvs, "{after}");
            let h = crate::lvm::write::text::TextHeader::now("x");
            assert_eq!(
                crate::lvm::write::text::disk_text(&got, &h),
                crate::lvm::write::text::disk_text(&want, &h),
                "{after}"
            );
            prev = want;
        }
        let want = vg("after3.vg");
        let mut got = remove_snapshot(&prev, "snap").unwrap();
        got.seqno = want.seqno;
        assert_eq!(got.lvs, want.lvs);
        let want = vg("after4.vg");
        let got = remove_snapshot(&got, "snap2").unwrap();
        assert_eq!(got.lvs, want.lvs);
        assert_eq!(got.lvs, before.lvs);
    }

    #[test]
    fn refusals() {
        let v = vg("after2.vg");
        let seg = v.lv("snap").unwrap().segments.clone();
        let mk = |origin: &str, cow: &str| NewSnapshot {
            origin: origin.into(),
            cow_name: cow.into(),
            cow_id: v.lv("snap").unwrap().id,
            snapshot_id: v.lv("snap").unwrap().id,
            segments: seg.clone(),
            chunk_size: 8,
            creation_time: 1,
            creation_host: "h".into(),
            read_only: false,
        };
        assert!(matches!(
            add_snapshot(&v, &mk("snap", "x")),
            Err(SnapshotError::BadOrigin {
                kind: BadOriginKind::IsSnapshot,
                ..
            })
        ));
        assert!(matches!(
            add_snapshot(&v, &mk("snapshot0", "x")),
            Err(SnapshotError::BadOrigin {
                kind: BadOriginKind::IsInternal,
                ..
            })
        ));
        assert!(matches!(
            add_snapshot(&v, &mk("nope", "x")),
            Err(SnapshotError::NoSuchLv { .. })
        ));
        assert!(matches!(
            add_snapshot(&v, &mk("lv0", "snap")),
            Err(SnapshotError::NotSnapshot { .. })
        ));
        let mut bad_chunk = mk("lv0", "x");
        bad_chunk.chunk_size = 12;
        assert_eq!(
            add_snapshot(&v, &bad_chunk),
            Err(SnapshotError::BadChunk { sectors: 12 })
        );
        assert!(matches!(
            remove_snapshot(&v, "lv0"),
            Err(SnapshotError::NotSnapshot { .. })
        ));
        assert!(matches!(
            remove_snapshot(&v, "snapshot0"),
            Err(SnapshotError::InternalLv { .. })
        ));
        // A third snapshot of the same origin: snapshot2, after the others.
        let third = add_snapshot(&v, &mk("lv0", "snap3")).unwrap();
        assert_eq!(third.lvs.last().unwrap().name, "snapshot2");
        assert_eq!(snapshots_of(&third, "lv0"), ["snap", "snap2", "snap3"]);
    }
}
