//! Process-wide counts and times of the device-mapper ioctls made, per command: for
//! profiling a whole command (how many `DM_DEV_STATUS` calls does an activation make, and
//! how long do its `DM_DEV_REMOVE` calls take?). Counting costs two relaxed atomic adds and
//! a clock read per ioctl, next to a system call.
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::kernel::stats;
//! let dm = DeviceMapper::new()?;
//! dm.list()?;
//! for s in stats::ioctl_stats() {
//!     println!("{} {} calls, {:?}", s.cmd, s.calls, s.time);
//! }
//! # Ok::<(), devmapper::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::command::Command;

const N: usize = dm_sys::DM_COMMAND_COUNT;

static CALLS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static NANOS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static FAILED: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Record one ioctl of `cmd` that took `time` (`ok`: it succeeded).
pub(crate) fn record(cmd: Command, time: Duration, ok: bool) {
    let i = usize::from(cmd.nr());
    let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
    if let (Some(c), Some(t), Some(f)) = (CALLS.get(i), NANOS.get(i), FAILED.get(i)) {
        c.fetch_add(1, Ordering::Relaxed);
        t.fetch_add(nanos, Ordering::Relaxed);
        if !ok {
            f.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The ioctls of one command made by this process so far ([`ioctl_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlStat {
    /// The command.
    pub cmd: Command,
    /// How many calls (a reply regrown for a larger buffer counts each attempt).
    pub calls: u64,
    /// How many of them the kernel refused.
    pub failed: u64,
    /// Their total wall time (threads add up).
    pub time: Duration,
}

impl fmt::Display for IoctlStat {
    /// `DM_DEV_CREATE 1000 calls (0 failed) 3.210 s, 3.210 ms each`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let each = self.time / u32::try_from(self.calls.max(1)).unwrap_or(u32::MAX);
        write!(
            f,
            "{} {} calls ({} failed) {:.3} s, {:.3} ms each",
            self.cmd,
            self.calls,
            self.failed,
            self.time.as_secs_f64(),
            each.as_secs_f64() * 1e3
        )
    }
}

/// Every command this process has issued, in command-number order, with its count and time.
pub fn ioctl_stats() -> Vec<IoctlStat> {
    Command::ALL
        .iter()
        .zip(CALLS.iter().zip(NANOS.iter().zip(FAILED.iter())))
        .filter_map(|(&cmd, (c, (t, f)))| {
            let calls = c.load(Ordering::Relaxed);
            (calls > 0).then(|| IoctlStat {
                cmd,
                calls,
                failed: f.load(Ordering::Relaxed),
                time: Duration::from_nanos(t.load(Ordering::Relaxed)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_add_up_per_command() {
        let before = ioctl_stats()
            .into_iter()
            .find(|s| s.cmd == Command::DevSetGeometry)
            .map_or(0, |s| s.calls);
        record(Command::DevSetGeometry, Duration::from_millis(2), true);
        record(Command::DevSetGeometry, Duration::from_millis(3), false);
        let s = ioctl_stats()
            .into_iter()
            .find(|s| s.cmd == Command::DevSetGeometry)
            .expect("recorded");
        assert_eq!(s.calls, before + 2);
        assert!(s.failed >= 1);
        assert!(s.time >= Duration::from_millis(5));
        assert!(s.to_string().starts_with("DM_DEV_SET_GEOMETRY "), "{s}");
    }
}
