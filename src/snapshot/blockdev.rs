//! Block-device facts the workflows check before changing anything.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::error::{BadDeviceKind, SnapError, SnapResult};
use crate::DevNum;
use crate::io::ReadAt;
use crate::io::{Input, InputError};

/// A block device's number and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDev {
    /// `major:minor`.
    pub dev: DevNum,
    /// Size in bytes.
    pub size: u64,
}

/// Stat `path`: it must be a block device; its device number.
pub(crate) fn block_dev_num(path: &Path) -> SnapResult<DevNum> {
    let meta = std::fs::metadata(path).map_err(|e| bad(path, BadDeviceKind::Stat(e)))?;
    if !meta.file_type().is_block_device() {
        return Err(bad(path, BadDeviceKind::NotBlockDevice));
    }
    Ok(DevNum::from_dev_t(meta.rdev()))
}

/// Stat `path`: it must be a block device; read its size.
pub(crate) fn probe(path: &Path) -> SnapResult<BlockDev> {
    let dev = block_dev_num(path)?;
    let f = File::open(path).map_err(|e| bad(path, BadDeviceKind::Open(e)))?;
    let size = ReadAt::size(&f).map_err(|e| bad(path, BadDeviceKind::Size(e)))?;
    Ok(BlockDev { dev, size })
}

/// A [`SnapError::BadDevice`] for `path`.
pub(crate) fn bad(path: &Path, kind: BadDeviceKind) -> SnapError {
    SnapError::BadDevice {
        path: path.to_owned(),
        kind,
    }
}

/// Open `path` exclusively for writing, through the crate's one input opener
/// ([`Input::open_rw`]: `O_EXCL` on a block device fails with `EBUSY` when it is mounted or
/// held by device-mapper, md or another exclusive opener).
pub(crate) fn open_exclusive(path: &Path) -> SnapResult<Input> {
    Input::open_rw(path, &[]).map_err(|e| match e {
        InputError::InUse { .. } => SnapError::CowInUse {
            path: path.to_owned(),
            holders: holders(path),
        },
        other => SnapError::Io {
            path: path.to_owned(),
            source: other.into(),
        },
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
    crate::kernel::dm::mounts_of(dev)
}

/// After a snapshot was discarded: clear the `SnAp` header of its store on `cow` so the
/// device reads as unused again. Best effort: when the node cannot be found, is held by
/// someone else, or no longer holds a store, nothing is written (a later snapshot on it is
/// then refused as holding a store, which is safe).
pub(crate) fn forget_store(cow: DevNum) {
    use crate::cow::header::HEADER_LEN;
    use crate::cow::{Header, HeaderState};
    use std::os::unix::fs::FileExt;
    let Some(path) = node_of(cow) else {
        return;
    };
    let Ok(f) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(&path)
    else {
        return;
    };
    if f.metadata().map(|m| DevNum::from_dev_t(m.rdev())).ok() != Some(cow) {
        return;
    }
    drop_cached(&f);
    let mut raw = [0u8; HEADER_LEN];
    if FileExt::read_exact_at(&f, &mut raw, 0).is_ok()
        && matches!(Header::parse(&raw), Ok(HeaderState::Persistent(_)))
    {
        let _ = f
            .write_all_at(&[0u8; HEADER_LEN], 0)
            .and_then(|_| f.sync_all());
    }
}

/// `/dev/<DEVNAME>` of a block device, from its sysfs `uevent` (devtmpfs names the node so).
pub(crate) fn node_of(dev: DevNum) -> Option<std::path::PathBuf> {
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{dev}/uevent")).ok()?;
    let name = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))?
        .trim();
    if name.is_empty() || name.contains("..") {
        return None;
    }
    Some(Path::new("/dev").join(name))
}

/// Drop the clean cached pages of a block device, so that reads see what is on the device
/// and not what this host cached before a kernel target wrote to it directly (best effort:
/// a device without a page cache has nothing to drop).
pub(crate) fn drop_cached(f: &File) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let _ = posix_fadvise(f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}
