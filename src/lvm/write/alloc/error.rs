//! What allocation and the layout check refuse.

#![forbid(unsafe_code)]

use super::{MAX_EXTENT_COUNT, MAX_STRIPES};
use crate::lvm::names::NameError;

/// What allocation or the layout check refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// A request of zero extents.
    #[error("Unable to create new logical volume with no extents.")]
    ZeroExtents,
    /// More extents than an LV can have.
    #[error("Logical volume size of {extents} extents exceeds the maximum of {MAX_EXTENT_COUNT}.")]
    TooManyExtents {
        /// The request.
        extents: u64,
    },
    /// A stripe count outside 1..=128.
    #[error("Number of stripes ({stripes}) must be between 1 and {MAX_STRIPES}.")]
    StripeCount {
        /// The request.
        stripes: u32,
    },
    /// A stripe size that is not a power of 2 of at least 4 KiB.
    #[error("Invalid stripe size {stripe_size} sectors.")]
    StripeSize {
        /// The request, in sectors.
        stripe_size: u64,
    },
    /// More stripes than PVs to put them on.
    #[error("Number of stripes ({stripes}) must not exceed number of physical volumes ({pvs})")]
    TooManyStripes {
        /// The request.
        stripes: u32,
        /// PVs allowed.
        pvs: usize,
    },
    /// An allowed PV that is not in the VG.
    #[error("Physical Volume \"{pv}\" not found in Volume Group \"{vg}\".")]
    PvNotInVg {
        /// The handle given.
        pv: String,
        /// The VG.
        vg: String,
    },
    /// None of the PVs the caller allowed is allocatable with free extents.
    #[error("No specified PVs have space available.")]
    NoSpecifiedPvSpace,
    /// Not enough free extents in the whole VG.
    #[error(
        "Volume group \"{vg}\" has insufficient free space ({free} extents): {required} required."
    )]
    VgFull {
        /// The VG.
        vg: String,
        /// Free extents in the VG.
        free: u64,
        /// Extents asked for.
        required: u64,
    },
    /// Not enough free extents on the allowed, allocatable PVs.
    #[error("Insufficient free space: {needed} extents needed, but only {available} available")]
    InsufficientFree {
        /// Extents still needed.
        needed: u64,
        /// Free extents on the allowed, allocatable PVs.
        available: u64,
    },
    /// The free space cannot be arranged as asked (e.g. stripes on too few PVs).
    #[error(
        "Insufficient suitable {}allocatable extents for logical volume {lv}: {more} more required",
        if *contiguous { "contiguous " } else { "" }
    )]
    Insufficient {
        /// The VG's policy is `contiguous` (no splitting).
        contiguous: bool,
        /// The new LV's name.
        lv: String,
        /// Extents that could not be placed.
        more: u64,
    },
    /// The VG's allocation policy is one this allocator does not replay (`anywhere`).
    #[error("Allocation policy {policy} of volume group {vg} is not supported")]
    UnsupportedPolicy {
        /// The VG.
        vg: String,
        /// The policy's name.
        policy: &'static str,
    },
    /// A segment this crate does not model uses PV extents directly (e.g. `pvmove`'s
    /// mirror): its extents cannot be accounted for, so nothing is allocated.
    #[error("LV {lv} has a {segtype} segment on PV {pv} whose extents this crate does not track")]
    UntrackedPvUse {
        /// The LV.
        lv: String,
        /// Its segment type.
        segtype: String,
        /// The PV it names.
        pv: String,
    },
    /// An area names a PV handle the VG does not have.
    #[error("LV {lv} segment {segment}: unknown PV {pv}")]
    UnknownPv {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// The handle.
        pv: String,
    },
    /// A segment names an LV the VG does not have.
    #[error("LV {lv} segment {segment}: unknown LV {target}")]
    UnknownLv {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// The missing LV.
        target: String,
    },
    /// An area reaches past its PV's last extent.
    #[error("LV {lv}: extents {start}..{end} of PV {pv} are beyond its {pe_count} extents")]
    BeyondPv {
        /// The LV.
        lv: String,
        /// The PV handle.
        pv: String,
        /// First PE.
        start: u64,
        /// One past the last PE.
        end: u64,
        /// The PV's size in extents.
        pe_count: u64,
    },
    /// Two areas share a physical extent.
    #[error("PV {pv} extent {pe} is used by both {first} and {second}")]
    Overlap {
        /// The PV handle.
        pv: String,
        /// The first shared PE.
        pe: u64,
        /// One LV using it.
        first: String,
        /// The other.
        second: String,
    },
    /// A segment does not start where the previous one ended.
    #[error("LV {lv}: segment {segment} should begin at LE {expected} (found {start}).")]
    SegmentStart {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Where it should start.
        expected: u64,
        /// Where it starts.
        start: u64,
    },
    /// A segment of zero extents with areas.
    #[error("LV {lv}: segment {segment} has no extents")]
    EmptySegment {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
    },
    /// A striped segment whose length is not a multiple of its stripe count, or without
    /// stripes.
    #[error("LV {lv}: segment {segment} of {extent_count} extents cannot have {stripes} stripes")]
    StripeMismatch {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Its length.
        extent_count: u64,
        /// Its stripe count.
        stripes: usize,
    },
    /// Several stripes and no stripe size.
    #[error("LV {lv}: segment {segment} has {stripes} stripes and no stripe size")]
    NoStripeSize {
        /// The LV.
        lv: String,
        /// Segment index (from 0).
        segment: usize,
        /// Its stripe count.
        stripes: usize,
    },
    /// Two LVs with one name.
    #[error("Duplicate LV name {name} detected in {vg}.")]
    DuplicateLvName {
        /// The name.
        name: String,
        /// The VG.
        vg: String,
    },
    /// Two LVs with one id.
    #[error("Duplicate LV id {id} detected for {name} in {vg}.")]
    DuplicateLvId {
        /// The id.
        id: String,
        /// The second LV with it.
        name: String,
        /// The VG.
        vg: String,
    },
    /// Two PVs with one id or one handle.
    #[error("Duplicate PV {what} detected in {vg}.")]
    DuplicatePv {
        /// `id ...` or `name ...`.
        what: String,
        /// The VG.
        vg: String,
    },
    /// An LV name lvm2 would refuse.
    #[error("{0}")]
    Name(NameError),
}
