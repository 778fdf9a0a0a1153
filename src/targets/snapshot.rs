//! `snapshot`, `snapshot-origin` and `snapshot-merge`: copy-on-write snapshots.
//!
//! - `snapshot <origin> <cow> <P|PO|N> <chunk size> [<#features> <feature>...]`: a
//!   point-in-time view of `origin`; changed chunks are kept on the COW device. `P` is a
//!   persistent store, `PO` a persistent store that reports `Overflow` instead of
//!   invalidating when a write to the snapshot fills it, `N` a transient (RAM-only)
//!   store. A chunk size of 0 means "read it from the persistent header". Features:
//!   `discard_zeroes_cow` and `discard_passdown_origin` (which needs the first).
//! - `snapshot-origin <device>`: the origin's table while snapshots exist. Empty status.
//! - `snapshot-merge`: the same params as `snapshot`; loaded on the origin to merge
//!   the snapshot back.
//!
//! The kernel prints the store type in upper case and the features in a fixed order,
//! with their count, and leaves the feature group out when there is none; that is
//! the form produced here. Status (from `snapshot_status`): `<allocated>/<total>
//! <metadata>` in sectors, or one of `Invalid`, `Merge failed`, `Overflow`, `Unknown`.
//!
//! ```
//! use devmapper::targets::{ExceptionStore, Snapshot, SnapshotStatus, Target, TargetStatus};
//! use devmapper::units::Sectors;
//! let s: Snapshot = "253:1 253:2 P 8".parse().unwrap();
//! assert_eq!(s.store, ExceptionStore::Persistent);
//! assert_eq!(s.chunk_size, Sectors(8));
//! let with_features: Snapshot =
//!     "253:1 253:2 PO 16 2 discard_zeroes_cow discard_passdown_origin".parse().unwrap();
//! assert!(with_features.features.discard_passdown_origin);
//!
//! let st = TargetStatus::parse("snapshot-merge", "16/2097152 16").unwrap();
//! let TargetStatus::SnapshotMerge(SnapshotStatus::Active(usage)) = st else { panic!() };
//! assert!(usage.merge_progress().done);
//! assert_eq!(SnapshotStatus::parse("Overflow").unwrap(), SnapshotStatus::Overflow);
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::{Tokens, expect_empty};
use super::{DevRef, ParseError, ParseErrorReason, TextKind};
use crate::units::Sectors;

/// How a snapshot keeps its exception table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExceptionStore {
    /// `P`: persistent, on the COW device.
    Persistent,
    /// `PO`: persistent, and a full snapshot reports `Overflow` rather than invalidating.
    PersistentOverflow,
    /// `N`: transient, in memory only.
    Transient,
}

impl ExceptionStore {
    /// The letters as the kernel prints them.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExceptionStore::Persistent => "P",
            ExceptionStore::PersistentOverflow => "PO",
            ExceptionStore::Transient => "N",
        }
    }

    /// True for the two persistent stores (which support merging).
    pub const fn is_persistent(self) -> bool {
        !matches!(self, ExceptionStore::Transient)
    }
}

/// Optional snapshot features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotFeatures {
    /// `discard_zeroes_cow`: a discard to the snapshot zeroes the COW chunks it covers.
    pub discard_zeroes_cow: bool,
    /// `discard_passdown_origin`: also pass discards to the origin (needs
    /// `discard_zeroes_cow`; the kernel rejects it alone).
    pub discard_passdown_origin: bool,
}

impl SnapshotFeatures {
    /// Number of feature words, as written before them.
    pub fn count(&self) -> u32 {
        u32::from(self.discard_zeroes_cow) + u32::from(self.discard_passdown_origin)
    }
}

/// Parameters of a `snapshot` or `snapshot-merge` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The origin device (normally the `-real` device under the origin).
    pub origin: DevRef,
    /// The COW device holding the exception store.
    pub cow: DevRef,
    /// Store type.
    pub store: ExceptionStore,
    /// Chunk size in sectors: a power of two, or 0 to take it from a persistent header.
    pub chunk_size: Sectors,
    /// Optional features.
    pub features: SnapshotFeatures,
}

/// Parameters of a `snapshot-origin` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotOrigin {
    /// The device holding the origin's data.
    pub device: DevRef,
}

/// Usage of a snapshot's COW device, all in sectors: the crate's one usage model.
///
/// The kernel's status line reports it for an active snapshot
/// ([`SnapshotStatus::Active`]), and [`crate::cow::Store::usage`] computes the same
/// figures offline from a persistent store. Its `Display` is the status line's form,
/// `<allocated>/<total> <metadata>`.
///
/// ```
/// use devmapper::targets::SnapshotUsage;
/// use devmapper::units::Sectors;
/// let u = SnapshotUsage { allocated: Sectors(40), total: Sectors(128), metadata: Sectors(16) };
/// assert_eq!(u.to_string(), "40/128 16");
/// assert_eq!(u.data(), Sectors(24));
/// assert_eq!(u.used_percent(), Some(31.25));
/// assert_eq!(SnapshotUsage { total: Sectors(0), ..u }.used_percent(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotUsage {
    /// Sectors in use on the COW device: data chunks, metadata and the header (for a
    /// persistent store, the allocation high-water mark `next_free * chunk`).
    pub allocated: Sectors,
    /// Size of the COW device.
    pub total: Sectors,
    /// Of `allocated`, the sectors holding the header and metadata areas.
    pub metadata: Sectors,
}

/// `part` of `whole` in percent: the crate's one percent rule.
///
/// Computed as `part as f64 * 100.0 / whole as f64` and not rounded (exact up to the
/// last bit of the `f64` for `part` below 2^53 / 100; displays round it, e.g. `{:.1}`).
/// `None` when `whole` is 0: there is nothing to be a share of, and the caller says what
/// that means (an empty job is done, a zero-sized device has no usage).
///
/// ```
/// use devmapper::targets::percent;
/// assert_eq!(percent(1, 8), Some(12.5));
/// assert_eq!(percent(3, 0), None);
/// assert_eq!(format!("{:.1}", percent(1, 3).unwrap()), "33.3");
/// ```
pub fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole != 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// Status of a `snapshot` or `snapshot-merge` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotStatus {
    /// Working: `<allocated>/<total> <metadata>`.
    Active(SnapshotUsage),
    /// `Invalid`: the snapshot was dropped (full, or an I/O error); its data is gone.
    Invalid,
    /// `Merge failed`: an I/O error stopped a merge (I/O to the device continues).
    MergeFailed,
    /// `Overflow`: a `PO` snapshot filled up through a write to the snapshot itself.
    Overflow,
    /// `Unknown`: the exception store cannot report usage.
    Unknown,
}

/// How far a `snapshot-merge` has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MergeProgress {
    /// Data sectors still to be copied back to the origin (`allocated - metadata`).
    pub remaining: Sectors,
    /// True once every chunk has been merged (`allocated == metadata`).
    pub done: bool,
}

impl SnapshotUsage {
    /// Sectors holding copied data (`allocated - metadata`, saturating).
    pub fn data(&self) -> Sectors {
        Sectors(self.allocated.0.saturating_sub(self.metadata.0))
    }

    /// Percentage of the COW device in use (allocated / total, as `lvs` shows it), by the
    /// rule of [`percent`]; `None` for a zero-sized device.
    pub fn used_percent(&self) -> Option<f64> {
        percent(self.allocated.0, self.total.0)
    }

    /// The merge view of this usage: a merge is done when only metadata is allocated.
    pub fn merge_progress(&self) -> MergeProgress {
        MergeProgress {
            remaining: self.data(),
            done: self.allocated == self.metadata,
        }
    }
}

impl MergeProgress {
    /// Fraction merged in `0.0..=1.0`, relative to the data that was allocated when the
    /// merge started (`initial`, e.g. from the first status read).
    pub fn fraction_done(&self, initial: &SnapshotUsage) -> f64 {
        let start = initial.data().0;
        if self.done || start == 0 {
            return 1.0;
        }
        let left = self.remaining.0.min(start);
        (start - left) as f64 / start as f64
    }

    /// [`MergeProgress::fraction_done`] in percent (`0.0..=100.0`).
    pub fn percent_done(&self, initial: &SnapshotUsage) -> f64 {
        let start = initial.data().0;
        if self.done || start == 0 {
            return 100.0;
        }
        percent(start - self.remaining.0.min(start), start).unwrap_or(100.0)
    }
}

impl fmt::Display for SnapshotUsage {
    /// The status line's form: `<allocated>/<total> <metadata>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.allocated, self.total, self.metadata)
    }
}

impl SnapshotStatus {
    /// Parse a status string of `snapshot` or `snapshot-merge`.
    pub fn parse(status: &str) -> Result<Self, ParseError> {
        Self::parse_as(Snapshot::TARGET_TYPE, status)
    }

    pub(crate) fn parse_as(target: &str, status: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(target, TextKind::Status, status);
        let (off, first) = t.field("snapshot state")?;
        let st = match first {
            "Invalid" => SnapshotStatus::Invalid,
            "Overflow" => SnapshotStatus::Overflow,
            "Unknown" => SnapshotStatus::Unknown,
            "Merge" => {
                t.literal("snapshot state", "failed")?;
                SnapshotStatus::MergeFailed
            }
            _ => {
                let (alloc, total) = first.split_once('/').ok_or_else(|| {
                    t.invalid(off, "usage", first, "ALLOCATED/TOTAL or a state word")
                })?;
                let num = |s: &str| super::text::parse_dec(s).map(Sectors);
                let (Some(allocated), Some(total)) = (num(alloc), num(total)) else {
                    return Err(t.invalid(off, "usage", first, "ALLOCATED/TOTAL in sectors"));
                };
                let metadata = t.sectors("metadata sectors")?;
                SnapshotStatus::Active(SnapshotUsage {
                    allocated,
                    total,
                    metadata,
                })
            }
        };
        t.finish()?;
        Ok(st)
    }

    /// The usage if the snapshot is active.
    pub fn usage(&self) -> Option<&SnapshotUsage> {
        match self {
            SnapshotStatus::Active(u) => Some(u),
            _ => None,
        }
    }

    /// The merge progress if the status carries usage (meaningful for `snapshot-merge`).
    pub fn merge_progress(&self) -> Option<MergeProgress> {
        self.usage().map(SnapshotUsage::merge_progress)
    }
}

impl FromStr for SnapshotStatus {
    type Err = ParseError;

    fn from_str(status: &str) -> Result<Self, ParseError> {
        Self::parse(status)
    }
}

impl fmt::Display for SnapshotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotStatus::Active(u) => u.fmt(f),
            SnapshotStatus::Invalid => f.write_str("Invalid"),
            SnapshotStatus::MergeFailed => f.write_str("Merge failed"),
            SnapshotStatus::Overflow => f.write_str("Overflow"),
            SnapshotStatus::Unknown => f.write_str("Unknown"),
        }
    }
}

impl Snapshot {
    /// The kernel's name for the snapshot target type.
    pub const TARGET_TYPE: &'static str = "snapshot";
    /// The kernel's name for the merging variant, which takes the same params.
    pub const MERGE_TARGET_TYPE: &'static str = "snapshot-merge";

    /// A persistent snapshot of `origin` on `cow` without features.
    pub fn persistent(
        origin: impl Into<DevRef>,
        cow: impl Into<DevRef>,
        chunk_size: Sectors,
    ) -> Self {
        Self {
            origin: origin.into(),
            cow: cow.into(),
            store: ExceptionStore::Persistent,
            chunk_size,
            features: SnapshotFeatures::default(),
        }
    }

    /// Parse params for `target` (`snapshot` or `snapshot-merge`; only used in errors).
    pub(crate) fn parse_as(target: &str, params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(target, TextKind::Params, params);
        let origin = t.dev_ref("origin device")?;
        let (cow_off, _) = t.peek().unwrap_or((t.end_offset(), ""));
        let cow = t.dev_ref("COW device")?;
        if cow == origin {
            return Err(t.error(
                cow_off,
                ParseErrorReason::Inconsistent("the COW device cannot be the origin"),
            ));
        }
        let (off, kind) = t.field("store type")?;
        // The kernel upper-cases the first letter and, for P, the option letter.
        let store = match kind.to_ascii_uppercase().as_str() {
            "P" => ExceptionStore::Persistent,
            "PO" => ExceptionStore::PersistentOverflow,
            "N" => ExceptionStore::Transient,
            _ => return Err(t.invalid(off, "store type", kind, "P, PO or N")),
        };
        let (chunk_off, chunk_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let chunk = t.u32("chunk size")?;
        if chunk != 0 && (!chunk.is_power_of_two() || chunk > (i32::MAX as u32 >> 9)) {
            return Err(t.invalid(
                chunk_off,
                "chunk size",
                chunk_tok,
                "0 or a power of two below 2^22 sectors",
            ));
        }
        let features = match t.peek() {
            None => SnapshotFeatures::default(),
            Some((count_off, count_tok)) => {
                let n = t.u32("feature count")?;
                if n > 2 {
                    return Err(t.invalid(count_off, "feature count", count_tok, "0, 1 or 2"));
                }
                let mut f = SnapshotFeatures::default();
                for _ in 0..n {
                    let (off, word) = t.field("feature")?;
                    if word.eq_ignore_ascii_case("discard_zeroes_cow") {
                        f.discard_zeroes_cow = true;
                    } else if word.eq_ignore_ascii_case("discard_passdown_origin") {
                        f.discard_passdown_origin = true;
                    } else {
                        return Err(t.invalid(
                            off,
                            "feature",
                            word,
                            "discard_zeroes_cow or discard_passdown_origin",
                        ));
                    }
                }
                if f.discard_passdown_origin && !f.discard_zeroes_cow {
                    return Err(t.error(
                        count_off,
                        ParseErrorReason::Inconsistent(
                            "discard_passdown_origin needs discard_zeroes_cow",
                        ),
                    ));
                }
                f
            }
        };
        t.finish()?;
        Ok(Self {
            origin,
            cow,
            store,
            chunk_size: Sectors(u64::from(chunk)),
            features,
        })
    }
}

impl FromStr for Snapshot {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        Self::parse_as(Self::TARGET_TYPE, params)
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.origin,
            self.cow,
            self.store.as_str(),
            self.chunk_size
        )?;
        let n = self.features.count();
        if n != 0 {
            write!(f, " {n}")?;
            if self.features.discard_zeroes_cow {
                f.write_str(" discard_zeroes_cow")?;
            }
            if self.features.discard_passdown_origin {
                f.write_str(" discard_passdown_origin")?;
            }
        }
        Ok(())
    }
}

impl SnapshotOrigin {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "snapshot-origin";

    /// The origin table for `device`.
    pub fn new(device: impl Into<DevRef>) -> Self {
        Self {
            device: device.into(),
        }
    }
}

impl FromStr for SnapshotOrigin {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        let device = t.dev_ref("origin device")?;
        t.finish()?;
        Ok(Self { device })
    }
}

impl fmt::Display for SnapshotOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.device.fmt(f)
    }
}

/// `snapshot-origin` has an empty status.
pub(crate) fn parse_origin_status(status: &str) -> Result<(), ParseError> {
    expect_empty(SnapshotOrigin::TARGET_TYPE, TextKind::Status, status)
}
