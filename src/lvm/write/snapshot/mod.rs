//! LVM2 snapshots ("thick", `lvcreate -s`) written without lvm2: the metadata as lvm2
//! writes it, the COW sizes lvm2 computes, live creation on a mounted origin, removal,
//! and (in [`merge`]) merging back into the origin.
//!
//! A snapshot in lvm2's metadata is three LVs: the origin (unchanged), the COW LV (the
//! user-visible snapshot name, `VISIBLE` cleared, its extents hold the exception store)
//! and an internal `snapshotN` LV whose one `snapshot` segment links the two. In the
//! kernel it is four devices: `VG-LV` becomes `snapshot-origin` over `VG-LV-real` (the
//! origin's old table), `VG-SNAP-cow` maps the COW extents and `VG-SNAP` is `snapshot
//! <real> <cow> P <chunk>` carrying the COW LV's uuid (planned by [`crate::lvm::plan`]).
//!
//! Where lvm2 commits twice (the COW as a plain LV first, only so that it can be activated
//! and zeroed), this module commits once: the COW header is zeroed before the metadata
//! names it, so the committed metadata is at every moment the old VG or the new one, and
//! never holds a COW LV without its snapshot.
//!
//! | module | what it does | lvm2 counterpart |
//! |---|---|---|
//! | [`meta`] | add / remove a snapshot on a [`VolumeGroup`](crate::lvm::model::VolumeGroup) value; `snapshotN` naming | `snapshot_manip.c` `vg_add_snapshot`, `vg_remove_snapshot`; `generate_lv_name` |
//! | [`size`] | chunk size rules, 3-chunk minimum, maximum usable COW size, `%ORIGIN`/`%FREE`/`%VG`/`%PVS` | `lvcreate.c` `_update_extents_params`, `cow_max_extents`, `cow_has_min_chunks` |
//! | [`create`] | `lvcreate -s`: live on an active origin (one suspend, fs frozen), metadata only on an inactive one | `lv_manip.c` `_lv_create_an_lv`, `lv_update_and_reload` |
//! | [`remove`] | `lvremove` of a snapshot, of an origin with its snapshots (`force`), of an invalid snapshot | `lv_manip.c` `lv_remove_single`, `vg_remove_snapshot` |
//! | [`merge`] | `lvconvert --merge` | `lvconvert.c` `_lvconvert_merge_old_snapshot` |
#![forbid(unsafe_code)]

pub mod create;
pub mod merge;
pub mod meta;
pub mod remove;
pub mod size;

#[cfg(test)]
mod tests;

/// Why a snapshot operation was refused or its metadata transform failed. The messages
/// are lvm2's where lvm2 has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The chunk size is not a power of two from 4 KiB to 512 KiB.
    #[error("Chunk size must be a power of 2 in the range 4K to 512K.")]
    BadChunk {
        /// The chunk size asked for, in sectors.
        sectors: u64,
    },
    /// The COW would hold fewer than 3 chunks (header, one metadata and one data chunk).
    #[error(
        "Snapshot volume cannot be smaller than 3 chunks ({min_extents} extents, {}).",
        crate::lvm::lvs::display_size_long(*min_sectors)
    )]
    TooSmall {
        /// Extents needed for 3 chunks.
        min_extents: u64,
        /// 3 chunks, in sectors.
        min_sectors: u64,
    },
    /// A relative size lvm2 does not take for a snapshot (`%LV`).
    #[error("Please express size as %FREE, %ORIGIN, %PVS or %VG.")]
    PercentOfLv,
    /// `--extents` that does not parse.
    #[error("Invalid argument for --extents: {text:?}: {reason}")]
    BadExtents {
        /// As given.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// A relative size that comes to 0 extents.
    #[error("Calculated size of logical volume is 0 extents. Needs to be larger.")]
    ZeroExtents,
    /// More extents than lvm2's `MAX_EXTENT_COUNT`.
    #[error("Volume too large ({extents} extents) for extent size.")]
    TooLarge {
        /// The extents asked for.
        extents: u64,
    },
    /// The LV cannot be the origin of a snapshot.
    #[error("{}", origin_refusal(lv, *kind))]
    BadOrigin {
        /// The LV asked for.
        lv: String,
        /// Why not.
        kind: BadOriginKind,
    },
    /// The LV is not a snapshot (its COW LV) where one was expected.
    #[error("Logical volume {lv} is not a snapshot.")]
    NotSnapshot {
        /// The LV asked for.
        lv: String,
    },
    /// The LV is an internal `snapshotN` LV: it is removed through its COW LV.
    #[error(
        "Can't remove logical volume {lv} used as an internal snapshot LV: remove its COW LV {cow}."
    )]
    InternalLv {
        /// The internal LV.
        lv: String,
        /// Its COW LV.
        cow: String,
    },
    /// Removing an origin needs `force`: its snapshots go with it.
    #[error("Removing origin {lv} will also remove {count} snapshots(s): refused without force.")]
    OriginHasSnapshots {
        /// The origin.
        lv: String,
        /// How many snapshots.
        count: usize,
    },
    /// The snapshot is being merged into its origin.
    #[error("Can't remove merging snapshot {lv}.")]
    Merging {
        /// The COW LV.
        lv: String,
    },
    /// An LV a metadata transform needs is not in the VG.
    #[error("Failed to find logical volume \"{lv}\"")]
    NoSuchLv {
        /// The name.
        lv: String,
    },
}

/// Why an LV cannot be a snapshot origin ([`SnapshotError::BadOrigin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadOriginKind {
    /// The LV is itself a snapshot (a COW LV).
    IsSnapshot,
    /// The LV is an internal `snapshotN` LV.
    IsInternal,
    /// A snapshot of the origin is being merged into it.
    Merging,
    /// The LV is hidden (a sub-LV of another).
    Hidden,
    /// The LV is not linear or striped on PVs (thin, RAID, pool ...): thick snapshots
    /// of it are not written here.
    Unsupported,
}

fn origin_refusal(lv: &str, kind: BadOriginKind) -> String {
    match kind {
        BadOriginKind::IsSnapshot | BadOriginKind::IsInternal => {
            format!("Snapshots of snapshots are not supported (LV {lv}).")
        }
        BadOriginKind::Merging => {
            format!(
                "Snapshots of an origin that has a merging snapshot is not supported (LV {lv})."
            )
        }
        BadOriginKind::Hidden => format!("Snapshot origin LV {lv} is hidden (a sub-LV)."),
        BadOriginKind::Unsupported => {
            format!("Snapshots of LV {lv} are not supported: only linear and striped origins.")
        }
    }
}
