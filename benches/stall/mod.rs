//! The writer of the stall benches (`snapshot_window`, `lvm_snapshot`, `snapshot_set`):
//! 4 KiB `O_DIRECT | O_DSYNC` writes over the first 64 KiB of a device or file, as fast as
//! they go, each logged with its start and duration, until told to stop. The stall of an
//! operation is the longest logged write that overlapped it.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sets its flag when dropped: stops the writers even if the measured operation panics
/// (the thread scope then joins them).
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Write to `path` until `stop` is set; (start, duration) of every write.
pub fn write_loop(path: &Path, stop: &AtomicBool) -> Vec<(Instant, Duration)> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut raw = vec![0x5au8; 8192];
    let off = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[off..off + 4096];
    let mut log = Vec::with_capacity(1 << 16);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        buf[0] = i as u8;
        let t = Instant::now();
        f.write_all_at(buf, (i % 16) * 4096).unwrap();
        log.push((t, t.elapsed()));
        i += 1;
    }
    log
}
