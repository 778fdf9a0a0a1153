//! COW sizes as lvm2's `lvcreate -s` computes them (`tools/lvcreate.c`
//! `_update_extents_params`, `lib/metadata/snapshot_manip.c` `cow_max_extents` and
//! `cow_has_min_chunks`): the chunk size rule, whole extents rounded up, relative sizes
//! (`%ORIGIN`, `%FREE`, `%VG`, `%PVS`), the cut to the most the snapshot can ever use
//! (`Reducing COW size X down to maximum usable size Y.`), and the 3-chunk minimum.
//!
//! ```
//! use devmapper::lvm::write::snapshot::size::{cow_max_extents, DEFAULT_CHUNK};
//! // lvm2's example: a 1 GiB origin, 4 KiB chunks, 4 MiB extents -> 258 extents.
//! assert_eq!(cow_max_extents(2 << 20, DEFAULT_CHUNK, 8192), 258);
//! // snapshot-usage.sh, 4 KiB extents: a one-extent origin -> 12.00k at most.
//! assert_eq!(cow_max_extents(8, DEFAULT_CHUNK, 8), 3);
//! ```
#![forbid(unsafe_code)]

use super::SnapshotError;
use crate::lvm::lvs::display_size;
use crate::lvm::model::{LogicalVolume, VolumeGroup};
use crate::lvm::write::alloc::free_extents;
use crate::lvm::write::error::Result;

/// lvm2's default chunk size: 4 KiB, in sectors.
pub const DEFAULT_CHUNK: u64 = 8;
/// The smallest chunk lvm2 takes: 4 KiB, in sectors.
pub const MIN_CHUNK: u64 = 8;
/// The largest chunk lvm2 takes: 512 KiB, in sectors.
pub const MAX_CHUNK: u64 = 1024;
/// The fewest chunks a COW may hold (lvm2's `SNAPSHOT_MIN_CHUNKS`): header, one
/// metadata chunk, one data chunk.
pub const MIN_CHUNKS: u64 = 3;
/// lvm2's `MAX_EXTENT_COUNT`.
pub const MAX_EXTENT_COUNT: u64 = u32::MAX as u64;

/// A chunk size lvm2 takes: a power of two from 4 KiB to 512 KiB (`sectors`).
///
/// ```
/// use devmapper::lvm::write::snapshot::size::check_chunk;
/// assert!(check_chunk(8).is_ok() && check_chunk(1024).is_ok());
/// assert!(check_chunk(4).is_err() && check_chunk(24).is_err() && check_chunk(2048).is_err());
/// ```
///
/// # Errors
/// [`SnapshotError::BadChunk`] with lvm2's message.
pub fn check_chunk(sectors: u64) -> Result<(), SnapshotError> {
    if (MIN_CHUNK..=MAX_CHUNK).contains(&sectors) && sectors.is_power_of_two() {
        Ok(())
    } else {
        Err(SnapshotError::BadChunk { sectors })
    }
}

/// A chunk size as `lvcreate -c` takes it (KiB without a unit), checked.
///
/// ```
/// use devmapper::lvm::write::snapshot::size::parse_chunk;
/// assert_eq!(parse_chunk("64k").unwrap(), 128);
/// assert_eq!(parse_chunk("8").unwrap(), 16);
/// assert!(parse_chunk("3k").is_err());
/// ```
///
/// # Errors
/// [`WriteError::BadSize`](crate::lvm::write::error::WriteError::BadSize), [`SnapshotError::BadChunk`].
pub fn parse_chunk(text: &str) -> Result<u64> {
    let s = crate::lvm::write::ops::parse_size(text, 2)?;
    check_chunk(s)?;
    Ok(s)
}

/// The most a COW of this chunk size can ever use for an origin of `origin_sectors`,
/// in sectors (lvm2's `_cow_max_size` on a kernel whose snapshot target has the
/// `FIXED_LEAK` fix, i.e. every kernel since 2.6.33's target 1.10.2): the header chunk,
/// one chunk per origin chunk, and the metadata chunks of 16-byte exception records
/// with a terminating one.
pub fn cow_max_sectors(origin_sectors: u64, chunk: u64) -> u64 {
    let chunk = chunk.max(1);
    let origin_chunks = origin_sectors.div_ceil(chunk);
    let per_metadata_chunk = chunk << (9 - 4);
    let metadata_chunks = (origin_chunks + per_metadata_chunk) / per_metadata_chunk;
    (1 + origin_chunks + metadata_chunks).saturating_mul(chunk)
}

/// [`cow_max_sectors`] in whole extents, rounded up, at most lvm2's `MAX_EXTENT_COUNT`
/// (lvm2's `cow_max_extents`).
pub fn cow_max_extents(origin_sectors: u64, chunk: u64, extent_size: u64) -> u64 {
    let es = extent_size.max(1);
    cow_max_sectors(origin_sectors, chunk)
        .div_ceil(es)
        .min(MAX_EXTENT_COUNT)
}

/// The 3-chunk minimum (lvm2's `cow_has_min_chunks`).
///
/// # Errors
/// [`SnapshotError::TooSmall`]: `Snapshot volume cannot be smaller than 3 chunks (N
/// extents, S).`
pub fn check_min_chunks(extent_size: u64, extents: u64, chunk: u64) -> Result<(), SnapshotError> {
    let min = MIN_CHUNKS * chunk;
    if extent_size.saturating_mul(extents) >= min {
        Ok(())
    } else {
        Err(SnapshotError::TooSmall {
            min_extents: min.div_ceil(extent_size.max(1)),
            min_sectors: min,
        })
    }
}

/// What a relative size (`-l N%WHAT`) is a percentage of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PercentOf {
    /// `%ORIGIN`: of the origin, plus what the COW needs for its own metadata.
    Origin,
    /// `%FREE`: of the VG's free extents.
    Free,
    /// `%VG`: of all the VG's extents (cut to the free ones).
    Vg,
    /// `%PVS`: of the extents of the PVs given (all PVs: the VG's).
    Pvs,
    /// `%LV`: refused for snapshots, as lvm2 does.
    Lv,
}

/// The size asked for a COW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CowSize {
    /// `-L`: sectors (rounded up to whole extents).
    Sectors(u64),
    /// `-l N`: extents.
    Extents(u64),
    /// `-l N%WHAT`.
    Percent {
        /// The percentage (lvm2 takes whole numbers).
        percent: u32,
        /// Of what.
        of: PercentOf,
    },
}

impl CowSize {
    /// `-l`/`--extents` as users type it: `N`, `N%ORIGIN`, `N%FREE`, `N%VG`, `N%PVS`,
    /// `N%LV` (the letters in either case).
    ///
    /// ```
    /// use devmapper::lvm::write::snapshot::size::{CowSize, PercentOf};
    /// assert_eq!(CowSize::parse_extents("20%ORIGIN").unwrap(),
    ///            CowSize::Percent { percent: 20, of: PercentOf::Origin });
    /// assert_eq!(CowSize::parse_extents("30").unwrap(), CowSize::Extents(30));
    /// assert!(CowSize::parse_extents("5%SOMETHING").is_err());
    /// ```
    ///
    /// # Errors
    /// [`SnapshotError::BadExtents`].
    pub fn parse_extents(text: &str) -> Result<CowSize, SnapshotError> {
        let bad = |reason| SnapshotError::BadExtents {
            text: text.to_string(),
            reason,
        };
        let t = text.trim();
        let t = t.strip_prefix('+').unwrap_or(t);
        let (num, what) = match t.split_once('%') {
            Some((n, w)) => (n, Some(w)),
            None => (t, None),
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("a whole number is needed"));
        }
        let Some(what) = what else {
            let n = num.parse::<u64>().map_err(|_| bad("too large"))?;
            return Ok(CowSize::Extents(n));
        };
        let percent = num.parse::<u32>().map_err(|_| bad("too large"))?;
        let of = match what.to_ascii_uppercase().as_str() {
            "ORIGIN" => PercentOf::Origin,
            "FREE" => PercentOf::Free,
            "VG" => PercentOf::Vg,
            "PVS" => PercentOf::Pvs,
            "LV" => PercentOf::Lv,
            _ => return Err(bad("the unit is one of %ORIGIN, %FREE, %VG, %PVS")),
        };
        Ok(CowSize::Percent { percent, of })
    }
}

/// The COW's size in extents and lvm2's notices on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CowExtents {
    /// Extents to allocate.
    pub extents: u64,
    /// What lvm2 prints while computing it (`Rounding up size ...`, `Reducing COW size
    /// ...`, `Reducing N%VG ...`).
    pub notices: Vec<String>,
}

/// lvm2's `percent_of_extents`.
fn percent_of(percent: u32, count: u64, round_up: bool) -> u64 {
    (u64::from(percent) * count + if round_up { 99 } else { 0 }) / 100
}

fn vg_extent_count(vg: &VolumeGroup) -> u64 {
    vg.pvs.iter().map(|p| p.pe_count).sum()
}

/// The COW's extents for a snapshot of `origin` in `vg` with chunk `chunk` (sectors), as
/// lvm2 computes them: a size rounded up to whole extents, a percentage converted,
/// then cut to [`cow_max_extents`] (lvm2's notice), then the 3-chunk minimum checked.
///
/// ```
/// use devmapper::lvm::write::snapshot::size::{cow_extents, CowSize};
/// # use devmapper::lvm::model::VolumeGroup;
/// # let text = include_bytes!("../../../../tests/fixtures/lvm/snap/before.vg");
/// # let vg = VolumeGroup::from_text(text, devmapper::lvm::config::ParseMode::File).unwrap();
/// let origin = vg.lv("lv0").unwrap(); // 12 MiB, 4 MiB extents
/// let c = cow_extents(&vg, origin, &CowSize::Sectors(90 << 11), 8).unwrap();
/// assert_eq!(c.extents, 4);
/// assert_eq!(
///     c.notices,
///     [
///         "Rounding up size to full physical extent 92.00 MiB",
///         "Reducing COW size 92.00 MiB down to maximum usable size 16.00 MiB.",
///     ]
/// );
/// ```
///
/// # Errors
/// [`SnapshotError::PercentOfLv`], [`SnapshotError::ZeroExtents`],
/// [`SnapshotError::TooLarge`], [`SnapshotError::TooSmall`], [`WriteError::Alloc`](crate::lvm::write::error::WriteError::Alloc).
pub fn cow_extents(
    vg: &VolumeGroup,
    origin: &LogicalVolume,
    size: &CowSize,
    chunk: u64,
) -> Result<CowExtents> {
    check_chunk(chunk)?;
    let es = vg.extent_size.max(1);
    let origin_le = origin.le_count();
    let max = cow_max_extents(origin_le.saturating_mul(es), chunk, es);
    let mut notices = Vec::new();
    let long = crate::lvm::lvs::display_size_long;
    let mut extents = match *size {
        CowSize::Sectors(s) => {
            let e = s.div_ceil(es);
            if s % es != 0 {
                notices.push(format!(
                    "Rounding up size to full physical extent {}",
                    long(e.saturating_mul(es))
                ));
            }
            e
        }
        CowSize::Extents(e) => e,
        CowSize::Percent { percent, of } => {
            let e = match of {
                PercentOf::Lv => return Err(SnapshotError::PercentOfLv.into()),
                PercentOf::Origin => {
                    max - origin_le.min(max) + percent_of(percent, origin_le, true)
                }
                PercentOf::Free => percent_of(percent, free_extents(vg)?, false),
                PercentOf::Pvs => percent_of(percent, vg_extent_count(vg), false),
                PercentOf::Vg => {
                    let e = percent_of(percent, vg_extent_count(vg), false);
                    let free = free_extents(vg)?;
                    if e > free {
                        notices.push(format!(
                            "Reducing {percent}%VG to remaining free space {} in VG.",
                            long(free * es)
                        ));
                        free
                    } else {
                        e
                    }
                }
            };
            if e == 0 {
                return Err(SnapshotError::ZeroExtents.into());
            }
            e
        }
    };
    if extents > MAX_EXTENT_COUNT {
        return Err(SnapshotError::TooLarge { extents }.into());
    }
    if extents > 0 && max < extents {
        notices.push(format!(
            "Reducing COW size {} down to maximum usable size {}.",
            long(extents * es),
            long(max * es)
        ));
        extents = max;
    }
    check_min_chunks(es, extents, chunk)?;
    Ok(CowExtents { extents, notices })
}

/// `lvs`' short form of a COW size, as lvm2's test suite compares them (`12.00k`).
pub fn short_size(vg: &VolumeGroup, extents: u64) -> String {
    display_size(extents.saturating_mul(vg.extent_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm2_numbers() {
        // snapshot-usage.sh with 4 KiB extents (8 sectors).
        // Origin 1 extent, chunk 4k: `-l30` cut to 12.00k (3 extents).
        assert_eq!(cow_max_extents(8, 8, 8), 3);
        assert_eq!(display_size(3 * 8), "12.00k");
        // chunk 64k (-c128 in sectors? lvm2's -c is KiB: -c128 is 128 KiB = 256 sectors)
        // on a 1-extent origin: 3 chunks of 128 KiB = 384.00k.
        assert_eq!(cow_max_extents(8, 256, 8) * 8, 768);
        assert_eq!(display_size(768), "384.00k");
        // Origin 5 extents (20 KiB), chunk 4k: 1 + 5 + 1 chunks = 28.00k.
        assert_eq!(display_size(cow_max_extents(40, 8, 8) * 8), "28.00k");
        // 1 GiB origin, chunk 8, 4 MiB extents: 263170 chunks -> 258 extents.
        assert_eq!(cow_max_sectors(2 << 20, 8), 2_105_360);
        assert_eq!(cow_max_extents(2 << 20, 8, 8192), 258);
    }

    #[test]
    fn terminator_chunk_when_divisible() {
        // 256 records per 4 KiB metadata chunk: 256 origin chunks need 2 metadata chunks.
        assert_eq!(cow_max_sectors(256 * 8, 8), (1 + 256 + 2) * 8);
        assert_eq!(cow_max_sectors(255 * 8, 8), (1 + 255 + 1) * 8);
    }

    #[test]
    fn chunk_rules() {
        for s in [8, 16, 32, 64, 128, 256, 512, 1024] {
            assert_eq!(check_chunk(s), Ok(()));
        }
        for s in [0, 1, 4, 12, 24, 2048, u64::MAX] {
            assert_eq!(check_chunk(s), Err(SnapshotError::BadChunk { sectors: s }));
        }
        assert_eq!(
            SnapshotError::BadChunk { sectors: 4 }.to_string(),
            "Chunk size must be a power of 2 in the range 4K to 512K."
        );
    }

    #[test]
    fn minimum_is_three_chunks() {
        // lvcreate-small-snap.sh, 4 KiB extents: -l3 ok, -c8k -l6 ok, -c8k -l2 and -l1 fail.
        assert!(check_min_chunks(8, 3, 8).is_ok());
        assert!(check_min_chunks(8, 6, 16).is_ok());
        let e = check_min_chunks(8, 2, 16).unwrap_err();
        assert_eq!(
            e,
            SnapshotError::TooSmall {
                min_extents: 6,
                min_sectors: 48
            }
        );
        assert_eq!(
            e.to_string(),
            "Snapshot volume cannot be smaller than 3 chunks (6 extents, 24.00 KiB)."
        );
        assert!(matches!(
            check_min_chunks(8, 1, 8),
            Err(SnapshotError::TooSmall { min_extents: 3, .. })
        ));
    }

    #[test]
    fn extents_parse() {
        assert_eq!(
            CowSize::parse_extents("100%origin"),
            Ok(CowSize::Percent {
                percent: 100,
                of: PercentOf::Origin
            })
        );
        assert_eq!(
            CowSize::parse_extents("10%LV"),
            Ok(CowSize::Percent {
                percent: 10,
                of: PercentOf::Lv
            })
        );
        for bad in ["", "%FREE", "1.5%VG", "x", "-3", "3%"] {
            assert!(
                matches!(
                    CowSize::parse_extents(bad),
                    Err(SnapshotError::BadExtents { .. })
                ),
                "{bad}"
            );
        }
    }

    fn vg_with_origin(extent_size: u64, origin_extents: u64) -> VolumeGroup {
        use crate::lvm::model::{AllocPolicy, Area, PhysicalVolume, Segment, SegmentKind};
        let id: crate::lvm::id::LvmId = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse().unwrap();
        let mut vg = VolumeGroup::new("vg0", id, extent_size);
        vg.pvs.push(PhysicalVolume {
            handle: "pv0".into(),
            id,
            device_hint: None,
            device_id_type: None,
            device_id: None,
            status: Default::default(),
            flags: Default::default(),
            tags: Vec::new(),
            dev_size: None,
            pe_start: 2048,
            pe_count: 50942,
            ba_start: 0,
            ba_size: 0,
        });
        vg.lvs.push(LogicalVolume {
            name: "o".into(),
            id,
            status: ["READ", "WRITE", "VISIBLE"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            flags: Default::default(),
            tags: Vec::new(),
            read_ahead: None,
            major: None,
            minor: None,
            creation_time: None,
            creation_host: None,
            lock_args: None,
            allocation_policy: AllocPolicy::Inherit,
            profile: None,
            segments: vec![Segment {
                start_extent: 0,
                extent_count: origin_extents,
                type_name: "striped".into(),
                kind: SegmentKind::Striped {
                    stripe_size: 0,
                    areas: vec![Area::Pv {
                        pv: "pv0".into(),
                        pe: 0,
                    }],
                },
            }],
        });
        vg
    }

    /// Every cell of the grid lvm2 computed in the VM (tests/fixtures/lvm/snap/grid.txt):
    /// extent size x origin size x chunk, `-L 90M` and `-l 20%ORIGIN`: the same size, the
    /// same notices, the same refusals.
    #[test]
    fn same_sizes_as_lvm2_grid() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lvm/snap/grid.txt"
        );
        let grid = std::fs::read_to_string(p).unwrap();
        let kib = |t: &str| -> u64 {
            let (n, u) = t.split_at(t.len() - 1);
            n.parse::<u64>().unwrap() * if u == "m" { 2048 } else { 2 }
        };
        let mut cells = 0;
        for line in grid.lines() {
            let (left, notes) = line.split_once(" | ").unwrap_or((line, ""));
            let f: Vec<&str> = left.split_whitespace().collect();
            let (es, osz, chunk, mode) = (kib(f[0]), kib(f[1]), kib(f[2]), f[3]);
            let vg = vg_with_origin(es, osz.div_ceil(es));
            let size = if mode == "L90M" {
                CowSize::Sectors(90 * 2048)
            } else {
                CowSize::Percent {
                    percent: 20,
                    of: PercentOf::Origin,
                }
            };
            let want_notes: Vec<String> = notes
                .split('|')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            match (cow_extents(&vg, &vg.lvs[0], &size, chunk), f.get(4)) {
                (Ok(c), Some(sz)) => {
                    assert_eq!(c.extents * es, sz.parse::<u64>().unwrap(), "{line}");
                    assert_eq!(c.notices, want_notes, "{line}");
                }
                (Err(e), None) => assert_eq!(vec![e.to_string()], want_notes, "{line}"),
                (got, _) => panic!("{line}: {got:?}"),
            }
            cells += 1;
        }
        assert_eq!(cells, 48);
    }

    /// lvm2's %FREE, %VG and %PVS on a 4 KiB-extent VG of 50944 extents (tests/fixtures/lvm/snap/refusals.txt).
    #[test]
    fn relative_sizes_as_lvm2() {
        let mut vg = vg_with_origin(8, 2);
        vg.pvs[0].pe_count = 50944;
        let o = vg.lvs[0].clone();
        for (percent, of, notice) in [
            (
                10,
                PercentOf::Free,
                "Reducing COW size <19.90 MiB down to maximum usable size 16.00 KiB.",
            ),
            (
                1,
                PercentOf::Vg,
                "Reducing COW size <1.99 MiB down to maximum usable size 16.00 KiB.",
            ),
            (
                1,
                PercentOf::Pvs,
                "Reducing COW size <1.99 MiB down to maximum usable size 16.00 KiB.",
            ),
        ] {
            let c = cow_extents(&vg, &o, &CowSize::Percent { percent, of }, 8).unwrap();
            assert_eq!(c.extents, 4);
            assert_eq!(c.notices, [notice]);
        }
        assert!(matches!(
            cow_extents(
                &vg,
                &o,
                &CowSize::Percent {
                    percent: 10,
                    of: PercentOf::Lv
                },
                8
            ),
            Err(crate::lvm::write::error::WriteError::Snapshot(
                SnapshotError::PercentOfLv
            ))
        ));
    }
}
