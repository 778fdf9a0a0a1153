//! The writing operations, as lvm2's tools do them: [`pvcreate`], [`vgcreate`],
//! [`lvcreate`], [`lvremove`], [`vgremove`], [`pvremove`]. Each takes lvm2's locks, reads
//! the devices after locking, refuses what lvm2 refuses (with lvm2's messages), and is
//! all-or-nothing: a failure before the commit reverts the precommitted copy and undoes
//! the device-mapper changes made so far.
//!
//! ```no_run
//! use devmapper::lvm::write::ops::{self, LvCreate};
//! use devmapper::lvm::write::session::WriteOptions;
//! let opts = WriteOptions::new("example");
//! let pvs = [std::path::PathBuf::from("/dev/loop0")];
//! ops::pvcreate(&pvs, false, &opts)?;
//! ops::vgcreate("vg0", &pvs, None, false, &opts)?;
//! let made = ops::lvcreate("vg0", "lv0", &LvCreate::size("12M")?, &opts)?;
//! println!("{} extents", made.extents);
//! ops::lvremove("vg0", "lv0", &opts)?;
//! ops::vgremove("vg0", &opts)?;
//! ops::pvremove(&pvs, false, &opts)?;
//! # Ok::<(), devmapper::lvm::write::error::WriteError>(())
//! ```
#![forbid(unsafe_code)]

mod lv;
mod pvs;
mod vg;

pub use lv::{LvCreate, LvCreated, LvRemoved, lvcreate, lvremove};
pub use pvs::{PvCreated, pvcreate, pvremove};
pub use vg::{VgCreated, vgcreate, vgremove};

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::{Result, WriteError};
use crate::io::{Input, ReadAt};
use crate::lvm::scan::MdaOutcome;
use crate::probe::{self, Found};

/// lvm2's default extent size: 4 MiB, in sectors.
pub const DEFAULT_EXTENT_SIZE: u64 = 8192;
/// lvm2's default stripe size: 64 KiB, in sectors.
pub const DEFAULT_STRIPE_SIZE: u64 = 128;
/// What lvcreate zeroes at the start of a new LV: 4 KiB (lvm2's `wipe_lv`), in bytes.
pub const ZERO_BYTES: u64 = 4096;

/// A size as lvm2's `-L` takes it: a number (fractions allowed) with an optional unit
/// `b`, `s` (sectors), `k`, `m`, `g`, `t`, `p`, `e` (binary, either case); no unit means
/// `default_unit_sectors` (MiB for `-L`). Returns sectors.
///
/// ```
/// use devmapper::lvm::write::ops::parse_size;
/// assert_eq!(parse_size("12M", 2048)?, 24576);
/// assert_eq!(parse_size("12", 2048)?, 24576);
/// assert_eq!(parse_size("1.5g", 2048)?, 3 << 20);
/// assert_eq!(parse_size("4096b", 2048)?, 8);
/// assert!(parse_size("1000b", 2048).is_err()); // not a multiple of 512
/// assert!(parse_size("12Q", 2048).is_err());
/// # Ok::<(), devmapper::lvm::write::error::WriteError>(())
/// ```
pub fn parse_size(text: &str, default_unit_sectors: u64) -> Result<u64> {
    let bad = |reason: &'static str| WriteError::BadSize {
        text: text.to_string(),
        reason,
    };
    let t = text.trim();
    if t.starts_with('-') {
        return Err(bad("Size may not be negative."));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    if num.is_empty() || num == "." {
        return Err(bad("Size requires number argument."));
    }
    let v: f64 = num.parse().map_err(|_| bad("Can't parse size argument."))?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let sectors = match unit {
        "" => v * default_unit_sectors as f64,
        "s" => v,
        "b" => {
            if v.fract() != 0.0 || !(v as u64).is_multiple_of(512) {
                return Err(bad("Size is not a multiple of 512."));
            }
            v / 512.0
        }
        u => {
            let i = ["k", "m", "g", "t", "p", "e"]
                .iter()
                .position(|x| *x == u)
                .ok_or_else(|| bad("Can't parse size argument."))?;
            v * 2.0 * 1024f64.powi(i as i32)
        }
    };
    if sectors >= (u64::MAX >> 9) as f64 {
        return Err(bad("Size is too big (>=16EiB)."));
    }
    Ok(sectors as u64)
}

/// The device holds nothing recognisable (an orphan PV of ours or lvm2's is fine: it is
/// what the operation turns into a PV again), unless `force`.
pub(super) fn probe_refusal(f: &File, path: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let found = probe::identify(f).map_err(|source| WriteError::Probe {
        path: path.to_owned(),
        source,
    })?;
    let found: Vec<Found> = found
        .into_iter()
        .filter(|f| !matches!(f, Found::LvmPv { .. }))
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(WriteError::HoldsData {
            path: path.to_owned(),
            found,
        })
    }
}

/// Open a device read-write and exclusively (refused while mounted or held). A device
/// scanner holding it for a moment (`blkid`, lvm2's own exclusive opens) is waited for,
/// up to 2 s.
pub(super) fn open_excl(path: &Path) -> Result<Input> {
    let mut tries = 0;
    loop {
        match Input::open_rw(path, &[]) {
            Ok(i) => return Ok(i),
            Err(crate::io::InputError::InUse { .. }) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(WriteError::Io {
                    path: path.to_owned(),
                    source: e.into(),
                });
            }
        }
    }
}

/// The VG named in a PV's metadata areas, if any.
pub(super) fn vg_of_pv(dev: &impl ReadAt) -> Option<String> {
    let pv = crate::lvm::scan::scan_pv(dev, 0).ok()?;
    pv.mdas.iter().find_map(|m| match &m.outcome {
        MdaOutcome::Text { vg_name, .. } => Some(vg_name.clone()),
        _ => None,
    })
}

pub(super) fn check_distinct(paths: &[PathBuf]) -> Result<()> {
    let mut seen = Vec::new();
    for p in paths {
        let id = crate::io::FileId::of_path(p).map_err(WriteError::io(p))?;
        if seen.contains(&id) {
            return Err(WriteError::DuplicateDevice { path: p.clone() });
        }
        seen.push(id);
    }
    Ok(())
}
