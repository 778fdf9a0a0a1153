//! `thin-pool` and `thin`: thin provisioning.
//!
//! - `thin-pool <metadata dev> <data dev> <block size> <low water mark>
//!   [<#features> <feature>...]`: block size in sectors (128..=2097152, a multiple of
//!   128), low water mark in blocks, features `skip_block_zeroing`, `ignore_discard`,
//!   `no_discard_passdown`, `read_only`, `error_if_no_space` (at most 4 at once).
//!   The kernel always prints the feature count and puts a space after every word, so
//!   its table text ends in a space: `253:0 253:1 128 0 0 `. That is the form produced.
//! - `thin <pool dev> <dev id> [<external origin dev>]`; dev id below 2^24.
//!
//! Status (`pool_status`): `<transaction id> <used>/<total metadata blocks>
//! <used>/<total data blocks> <held root|-> <rw|ro|out_of_data_space>
//! <discard_passdown|no_discard_passdown|ignore_discard>
//! <error_if_no_space|queue_if_no_space> <needs_check|-> <metadata low watermark> `
//! (again one trailing space), or `Fail` / `Error`. Kernels before `needs_check` and
//! the watermark were added print fewer words; those parse with the fields `None`.
//! Status of `thin` (`thin_status`): `<mapped sectors> <highest mapped sector|->`, or
//! `Fail`, `Error`, or `-`. A thin device of a failed pool prints `Fail` even as its
//! *table*, which does not parse as [`Thin`]: read such tables with
//! [`Target::parse_or_opaque`](super::Target::parse_or_opaque).
//!
//! ```
//! use devmapper::targets::{PoolMode, Thin, ThinPool, ThinPoolStatus, ThinStatus};
//! use devmapper::units::Sectors;
//! let pool: ThinPool = "253:0 253:1 128 32768 1 skip_block_zeroing ".parse().unwrap();
//! assert!(pool.features.skip_block_zeroing);
//! assert_eq!(pool.to_string(), "253:0 253:1 128 32768 1 skip_block_zeroing ");
//! // Params as a user might write them, normalised to the kernel's form:
//! let short: ThinPool = "253:0 253:1 128 0".parse().unwrap();
//! assert_eq!(short.to_string(), "253:0 253:1 128 0 0 ");
//!
//! let st: ThinPoolStatus =
//!     "1 88/4096 12/1024 - rw discard_passdown queue_if_no_space - 1024 ".parse().unwrap();
//! let ThinPoolStatus::Active(usage) = st else { panic!() };
//! assert_eq!(usage.mode, PoolMode::ReadWrite);
//! assert_eq!(usage.data_blocks.used, 12);
//! assert_eq!(usage.needs_check, Some(false));
//!
//! let thin: Thin = "253:2 7".parse().unwrap();
//! assert_eq!(thin.dev_id, 7);
//! let tst: ThinStatus = "1024 2047".parse().unwrap();
//! assert_eq!(tst, ThinStatus::Active { mapped: Sectors(1024), highest_mapped: Some(Sectors(2047)) });
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::Tokens;
use super::{DevRef, ParseError, ParseErrorReason, TextKind};
use crate::units::Sectors;

/// Smallest thin-pool data block size in sectors (64 KiB); sizes are multiples of it.
pub const THIN_POOL_MIN_BLOCK_SIZE: u64 = 128;
/// Largest thin-pool data block size in sectors (1 GiB).
pub const THIN_POOL_MAX_BLOCK_SIZE: u64 = 2_097_152;
/// Largest thin device id (24 bits).
pub const THIN_MAX_DEV_ID: u32 = (1 << 24) - 1;
/// Most feature words a thin-pool table accepts at once.
pub const THIN_POOL_MAX_FEATURES: u32 = 4;

// The parse errors below state the bounds in words.
const _: () = assert!(
    THIN_POOL_MIN_BLOCK_SIZE == 128
        && THIN_POOL_MAX_BLOCK_SIZE == 2_097_152
        && THIN_POOL_MAX_FEATURES == 4
);

/// Optional thin-pool features (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ThinPoolFeatures {
    /// `skip_block_zeroing`: do not zero newly provisioned blocks.
    pub skip_block_zeroing: bool,
    /// `ignore_discard`: disable discard support.
    pub ignore_discard: bool,
    /// `no_discard_passdown`: process discards but do not pass them to the data device.
    pub no_discard_passdown: bool,
    /// `read_only`: allow no metadata changes.
    pub read_only: bool,
    /// `error_if_no_space`: fail I/O instead of queueing it when the pool is full.
    pub error_if_no_space: bool,
}

impl ThinPoolFeatures {
    /// The feature words in the kernel's order.
    pub fn words(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.skip_block_zeroing, "skip_block_zeroing"),
            (self.ignore_discard, "ignore_discard"),
            (self.no_discard_passdown, "no_discard_passdown"),
            (self.read_only, "read_only"),
            (self.error_if_no_space, "error_if_no_space"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
    }

    /// The number of feature words, as written before them.
    pub fn count(&self) -> usize {
        self.words().count()
    }
}

/// Parameters of a `thin-pool` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ThinPool {
    /// Metadata device.
    pub metadata: DevRef,
    /// Data device.
    pub data: DevRef,
    /// Data block size in sectors.
    pub block_size: Sectors,
    /// Free-block count below which the kernel raises an event.
    pub low_water_mark: u64,
    /// Optional features.
    pub features: ThinPoolFeatures,
}

/// Parameters of a `thin` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Thin {
    /// The pool device.
    pub pool: DevRef,
    /// The thin device's id inside the pool.
    pub dev_id: u32,
    /// A read-only external origin whose unprovisioned blocks show through.
    pub external_origin: Option<DevRef>,
}

/// Used and total blocks of one pool device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockUsage {
    /// Blocks in use.
    pub used: u64,
    /// Blocks in total.
    pub total: u64,
}

/// Pool mode word in a thin-pool status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// `rw`.
    ReadWrite,
    /// `ro`: read-only (requested, or after a metadata error or out of metadata space).
    ReadOnly,
    /// `out_of_data_space`: writes to unprovisioned blocks queue or fail.
    OutOfDataSpace,
}

/// Discard handling word in a thin-pool status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscardMode {
    /// `discard_passdown`.
    Passdown,
    /// `no_discard_passdown`.
    NoPassdown,
    /// `ignore_discard`.
    Ignore,
}

/// What the pool does with writes when out of data space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoSpacePolicy {
    /// `error_if_no_space`.
    Error,
    /// `queue_if_no_space`.
    Queue,
}

/// Figures of a working thin pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThinPoolUsage {
    /// Userspace transaction id stored in the metadata.
    pub transaction_id: u64,
    /// Metadata blocks (4 KiB each).
    pub metadata_blocks: BlockUsage,
    /// Data blocks (of the pool's block size).
    pub data_blocks: BlockUsage,
    /// Location of a held metadata root, if one is held (`-` otherwise).
    pub held_metadata_root: Option<u64>,
    /// Pool mode.
    pub mode: PoolMode,
    /// Discard handling.
    pub discard: DiscardMode,
    /// Out-of-space policy.
    pub no_space: NoSpacePolicy,
    /// `needs_check` (`Some(true)`) or `-`; `None` from kernels that do not print it.
    pub needs_check: Option<bool>,
    /// Free metadata blocks below which an event is raised; `None` from older kernels.
    pub metadata_low_watermark: Option<u64>,
}

/// Status of a `thin-pool` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThinPoolStatus {
    /// A working pool.
    Active(ThinPoolUsage),
    /// `Fail`: the pool failed; all I/O errors.
    Fail,
    /// `Error`: the kernel could not read the figures from the metadata.
    Error,
}

/// Status of a `thin` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThinStatus {
    /// Mapped sectors and the highest mapped sector (`None` when nothing is mapped).
    Active {
        /// Sectors mapped (blocks times block size).
        mapped: Sectors,
        /// Last sector of the highest mapped block.
        highest_mapped: Option<Sectors>,
    },
    /// `Fail`: the pool failed.
    Fail,
    /// `Error`: the figures could not be read.
    Error,
    /// `-`: the thin device is not open in the pool.
    Unavailable,
}

impl ThinPool {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "thin-pool";
}

impl Thin {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "thin";
}

impl ThinPoolUsage {
    /// True if the metadata is flagged for `thin_check`.
    pub fn needs_check(&self) -> bool {
        self.needs_check == Some(true)
    }
}

impl ThinPoolStatus {
    /// True if the pool is active and its metadata is flagged for `thin_check`.
    pub fn needs_check(&self) -> bool {
        matches!(self, ThinPoolStatus::Active(u) if u.needs_check())
    }
}

fn parse_usage(
    t: &Tokens<'_>,
    field: &'static str,
    off: usize,
    tok: &str,
) -> Result<BlockUsage, ParseError> {
    let parsed = tok.split_once('/').and_then(|(u, tot)| {
        Some(BlockUsage {
            used: super::text::parse_dec(u)?,
            total: super::text::parse_dec(tot)?,
        })
    });
    parsed.ok_or_else(|| t.invalid(off, field, tok, "USED/TOTAL blocks"))
}

impl FromStr for ThinPool {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        let metadata = t.dev_ref("metadata device")?;
        let (data_off, _) = t.peek().unwrap_or((t.end_offset(), ""));
        let data = t.dev_ref("data device")?;
        if data == metadata {
            return Err(t.error(
                data_off,
                ParseErrorReason::Inconsistent("metadata and data must be different devices"),
            ));
        }
        let (bs_off, bs_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let block_size = t.u64("block size")?;
        if !(THIN_POOL_MIN_BLOCK_SIZE..=THIN_POOL_MAX_BLOCK_SIZE).contains(&block_size)
            || !block_size.is_multiple_of(THIN_POOL_MIN_BLOCK_SIZE)
        {
            return Err(t.invalid(
                bs_off,
                "block size",
                bs_tok,
                "a multiple of 128 sectors from 128 to 2097152",
            ));
        }
        let low_water_mark = t.u64("low water mark")?;
        let mut features = ThinPoolFeatures::default();
        if let Some((count_off, count_tok)) = t.peek() {
            let n = t.u32("feature count")?;
            if n > THIN_POOL_MAX_FEATURES {
                return Err(t.invalid(count_off, "feature count", count_tok, "at most 4"));
            }
            for _ in 0..n {
                let (off, word) = t.field("feature")?;
                let flag = match word.to_ascii_lowercase().as_str() {
                    "skip_block_zeroing" => &mut features.skip_block_zeroing,
                    "ignore_discard" => &mut features.ignore_discard,
                    "no_discard_passdown" => &mut features.no_discard_passdown,
                    "read_only" => &mut features.read_only,
                    "error_if_no_space" => &mut features.error_if_no_space,
                    _ => return Err(t.invalid(off, "feature", word, "a thin-pool feature")),
                };
                *flag = true;
            }
        }
        t.finish()?;
        Ok(Self {
            metadata,
            data,
            block_size: Sectors(block_size),
            low_water_mark,
            features,
        })
    }
}

impl fmt::Display for ThinPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} ",
            self.metadata,
            self.data,
            self.block_size,
            self.low_water_mark,
            self.features.count()
        )?;
        for w in self.features.words() {
            write!(f, "{w} ")?;
        }
        Ok(())
    }
}

impl FromStr for Thin {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        let pool = t.dev_ref("pool device")?;
        let (id_off, id_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let dev_id = t.u32("device id")?;
        if dev_id > THIN_MAX_DEV_ID {
            return Err(t.invalid(id_off, "device id", id_tok, "a device id below 2^24"));
        }
        let external_origin = match t.peek() {
            Some((off, _)) => {
                let origin = t.dev_ref("external origin device")?;
                if origin == pool {
                    return Err(t.error(
                        off,
                        ParseErrorReason::Inconsistent("the external origin cannot be the pool"),
                    ));
                }
                Some(origin)
            }
            None => None,
        };
        t.finish()?;
        Ok(Self {
            pool,
            dev_id,
            external_origin,
        })
    }
}

impl fmt::Display for Thin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pool, self.dev_id)?;
        if let Some(o) = &self.external_origin {
            write!(f, " {o}")?;
        }
        Ok(())
    }
}

impl FromStr for ThinPoolStatus {
    type Err = ParseError;

    fn from_str(status: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(ThinPool::TARGET_TYPE, TextKind::Status, status);
        let (off, first) = t.field("transaction id")?;
        let st = match first {
            "Fail" => ThinPoolStatus::Fail,
            "Error" => ThinPoolStatus::Error,
            _ => {
                let transaction_id = super::text::parse_dec(first).ok_or_else(|| {
                    t.invalid(off, "transaction id", first, "a number, Fail or Error")
                })?;
                let (off, tok) = t.field("metadata usage")?;
                let metadata_blocks = parse_usage(&t, "metadata usage", off, tok)?;
                let (off, tok) = t.field("data usage")?;
                let data_blocks = parse_usage(&t, "data usage", off, tok)?;
                let (off, tok) = t.field("held metadata root")?;
                let held_metadata_root = match tok {
                    "-" => None,
                    _ => Some(super::text::parse_dec(tok).ok_or_else(|| {
                        t.invalid(off, "held metadata root", tok, "a block number or -")
                    })?),
                };
                let (off, tok) = t.field("pool mode")?;
                let mode = match tok {
                    "rw" => PoolMode::ReadWrite,
                    "ro" => PoolMode::ReadOnly,
                    "out_of_data_space" => PoolMode::OutOfDataSpace,
                    _ => {
                        return Err(t.invalid(
                            off,
                            "pool mode",
                            tok,
                            "rw, ro or out_of_data_space",
                        ));
                    }
                };
                let (off, tok) = t.field("discard mode")?;
                let discard = match tok {
                    "discard_passdown" => DiscardMode::Passdown,
                    "no_discard_passdown" => DiscardMode::NoPassdown,
                    "ignore_discard" => DiscardMode::Ignore,
                    _ => {
                        return Err(t.invalid(
                            off,
                            "discard mode",
                            tok,
                            "discard_passdown, no_discard_passdown or ignore_discard",
                        ));
                    }
                };
                let (off, tok) = t.field("no-space policy")?;
                let no_space = match tok {
                    "error_if_no_space" => NoSpacePolicy::Error,
                    "queue_if_no_space" => NoSpacePolicy::Queue,
                    _ => {
                        return Err(t.invalid(
                            off,
                            "no-space policy",
                            tok,
                            "error_if_no_space or queue_if_no_space",
                        ));
                    }
                };
                let needs_check = match t.next() {
                    None => None,
                    Some((_, "needs_check")) => Some(true),
                    Some((_, "-")) => Some(false),
                    Some((off, tok)) => {
                        return Err(t.invalid(off, "needs_check", tok, "needs_check or -"));
                    }
                };
                let metadata_low_watermark = match needs_check {
                    Some(_) if t.peek().is_some() => Some(t.u64("metadata low watermark")?),
                    _ => None,
                };
                ThinPoolStatus::Active(ThinPoolUsage {
                    transaction_id,
                    metadata_blocks,
                    data_blocks,
                    held_metadata_root,
                    mode,
                    discard,
                    no_space,
                    needs_check,
                    metadata_low_watermark,
                })
            }
        };
        t.finish()?;
        Ok(st)
    }
}

impl fmt::Display for ThinPoolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = match self {
            ThinPoolStatus::Fail => return f.write_str("Fail"),
            ThinPoolStatus::Error => return f.write_str("Error"),
            ThinPoolStatus::Active(u) => u,
        };
        write!(
            f,
            "{} {}/{} {}/{} ",
            u.transaction_id,
            u.metadata_blocks.used,
            u.metadata_blocks.total,
            u.data_blocks.used,
            u.data_blocks.total
        )?;
        match u.held_metadata_root {
            Some(r) => write!(f, "{r} ")?,
            None => f.write_str("- ")?,
        }
        f.write_str(match u.mode {
            PoolMode::ReadWrite => "rw ",
            PoolMode::ReadOnly => "ro ",
            PoolMode::OutOfDataSpace => "out_of_data_space ",
        })?;
        f.write_str(match u.discard {
            DiscardMode::Passdown => "discard_passdown ",
            DiscardMode::NoPassdown => "no_discard_passdown ",
            DiscardMode::Ignore => "ignore_discard ",
        })?;
        f.write_str(match u.no_space {
            NoSpacePolicy::Error => "error_if_no_space ",
            NoSpacePolicy::Queue => "queue_if_no_space ",
        })?;
        if let Some(nc) = u.needs_check {
            f.write_str(if nc { "needs_check " } else { "- " })?;
            if let Some(w) = u.metadata_low_watermark {
                write!(f, "{w} ")?;
            }
        }
        Ok(())
    }
}

impl FromStr for ThinStatus {
    type Err = ParseError;

    fn from_str(status: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Thin::TARGET_TYPE, TextKind::Status, status);
        let (off, first) = t.field("mapped sectors")?;
        let st = match first {
            "Fail" => ThinStatus::Fail,
            "Error" => ThinStatus::Error,
            "-" => ThinStatus::Unavailable,
            _ => {
                let mapped = super::text::parse_dec(first).ok_or_else(|| {
                    t.invalid(off, "mapped sectors", first, "a number, Fail, Error or -")
                })?;
                let (off, tok) = t.field("highest mapped sector")?;
                let highest_mapped = match tok {
                    "-" => None,
                    _ => Some(Sectors(super::text::parse_dec(tok).ok_or_else(|| {
                        t.invalid(off, "highest mapped sector", tok, "a sector number or -")
                    })?)),
                };
                ThinStatus::Active {
                    mapped: Sectors(mapped),
                    highest_mapped,
                }
            }
        };
        t.finish()?;
        Ok(st)
    }
}

impl fmt::Display for ThinStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThinStatus::Active {
                mapped,
                highest_mapped,
            } => match highest_mapped {
                Some(h) => write!(f, "{mapped} {h}"),
                None => write!(f, "{mapped} -"),
            },
            ThinStatus::Fail => f.write_str("Fail"),
            ThinStatus::Error => f.write_str("Error"),
            ThinStatus::Unavailable => f.write_str("-"),
        }
    }
}
