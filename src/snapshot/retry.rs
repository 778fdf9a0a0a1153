//! Waiting out transient openers and transient `EBUSY`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use super::blockdev;
use super::error::{SnapError, SnapResult, WrongStateKind};
use crate::kernel::id::DmName;
use crate::table::Table;
use crate::{DeviceMapper, LoadOptions};

/// Refuse when the snapshot device is open: at once when it is mounted; otherwise after
/// giving a transient opener (a probe, a forked child that has not exec'd) five seconds.
pub(super) fn snapshot_not_open(
    dm: &DeviceMapper,
    name: &DmName,
    info: &crate::DeviceInfo,
) -> SnapResult<()> {
    if info.open_count == 0 {
        return Ok(());
    }
    let mounted = !blockdev::mounts_of(info.dev).is_empty();
    let n = if mounted {
        info.open_count
    } else {
        wait_closed(dm, name, Duration::from_secs(5))?
    };
    if n == 0 {
        return Ok(());
    }
    Err(SnapError::WrongState {
        name: name.to_string(),
        kind: WrongStateKind::SnapshotOpen {
            open_count: n,
            mounts: blockdev::mounts_of(info.dev),
        },
    })
}

/// Poll a device's open count for up to `limit`; the last count seen.
pub(super) fn wait_closed(dm: &DeviceMapper, name: &DmName, limit: Duration) -> SnapResult<i32> {
    let start = Instant::now();
    loop {
        let n = dm.info(name)?.open_count;
        if n == 0 || start.elapsed() >= limit {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Load a table whose devices we just released: a process forked by another thread of
/// this program can hold a copy of our exclusive descriptor until it execs, so the kernel's
/// exclusive claim may fail with `EBUSY` for a moment. Retry briefly.
pub(super) fn load_retrying_busy(
    dm: &DeviceMapper,
    name: &DmName,
    table: &Table,
) -> SnapResult<()> {
    let mut tries = 0;
    loop {
        match dm.load(name, table, LoadOptions::default()) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_busy() && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
