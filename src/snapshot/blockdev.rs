//! Block-device facts the workflows check before changing anything.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::error::{SnapError, SnapResult};
use crate::DevNum;
use crate::io::ReadAt;

/// A block device's number and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDev {
    /// `major:minor`.
    pub dev: DevNum,
    /// Size in bytes.
    pub size: u64,
}

/// Stat `path`: it must be a block device; read its size.
pub(crate) fn probe(path: &Path) -> SnapResult<BlockDev> {
    let bad = |reason: String| SnapError::BadDevice {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot stat: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(bad("not a block device".to_owned()));
    }
    let f = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let size = ReadAt::size(&f).map_err(|e| bad(format!("cannot read its size: {e}")))?;
    Ok(BlockDev {
        dev: DevNum::from_dev_t(meta.rdev()),
        size,
    })
}

/// Open `path` exclusively for writing (`O_EXCL` on a block device fails with `EBUSY`
/// when it is mounted or held by device-mapper, md or another exclusive opener).
pub(crate) fn open_exclusive(path: &Path) -> SnapResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                let holders = holders(path);
                SnapError::CowInUse {
                    path: path.to_owned(),
                    reason: if holders.is_empty() {
                        "mounted or opened exclusively".to_owned()
                    } else {
                        format!("held by {}", holders.join(", "))
                    },
                }
            } else {
                SnapError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })
}

/// Logical block size in bytes from sysfs (512 when unknown).
pub(crate) fn logical_block_size(dev: DevNum) -> u64 {
    let base = format!("/sys/dev/block/{dev}");
    for p in [
        format!("{base}/queue/logical_block_size"),
        format!("{base}/../queue/logical_block_size"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&p)
            && let Ok(v) = s.trim().parse::<u64>()
            && v >= 512
        {
            return v;
        }
    }
    512
}

fn holders(path: &Path) -> Vec<String> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let dev = DevNum::from_dev_t(meta.rdev());
    std::fs::read_dir(format!("/sys/dev/block/{dev}/holders"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    std::fs::read_to_string(format!("/sys/block/{n}/dm/name"))
                        .map(|s| s.trim().to_owned())
                        .unwrap_or(n)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Overwrite the first `bytes` of an exclusively opened device with zeros and make it
/// durable, so the kernel starts a fresh exception store instead of adopting stale data.
pub(crate) fn zero_start(f: &File, path: &Path, bytes: u64) -> SnapResult<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; usize::try_from(bytes).unwrap_or(4096).min(1 << 20)];
    f.write_all_at(&zeros, 0)
        .and_then(|_| f.sync_all())
        .map_err(|e| SnapError::Io {
            path: path.to_owned(),
            source: e,
        })
}

/// Mount points of a device (from `/proc/self/mountinfo`).
pub(crate) fn mounts_of(dev: DevNum) -> Vec<String> {
    crate::dm::mounts_of(dev)
}
