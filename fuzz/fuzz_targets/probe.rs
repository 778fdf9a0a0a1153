//! Arbitrary bytes as a device or image: `probe::identify` must not panic, must read only
//! inside the input, and must allocate no more than its fixed head buffer (checked with a
//! counting allocator), whatever the input's size.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use devmapper::probe::{self, HEAD_LEN};
use libfuzzer_sys::fuzz_target;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The head buffer, a few sector-sized reads, and the findings' strings.
const BUDGET: usize = HEAD_LEN + 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    if let Ok(found) = probe::identify(data) {
        for f in &found {
            let _ = f.to_string();
        }
    }
    let used = PEAK.load(Relaxed).saturating_sub(base);
    assert!(
        used <= BUDGET,
        "allocated {used} bytes for a {} byte input",
        data.len()
    );
});
