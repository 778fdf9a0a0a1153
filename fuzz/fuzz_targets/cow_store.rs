//! Arbitrary bytes as a COW device: header, exception table and usage must not panic, and
//! must not allocate more than the input's size (checked with a counting allocator).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use devmapper::cow::{Header, Store};
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

/// Small fixed allocations (an `io::Error`'s message) are allowed on top of the input size.
const SLACK: usize = 1024;

fn check(cow: &[u8]) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    if let Ok(store) = Store::open(cow) {
        let _ = store.usage();
        let _ = store.kernel_status();
        let origin = cow.len() as u64 * 4;
        for e in store.exceptions(Some(origin)) {
            if e.is_err() {
                break;
            }
        }
    }
    let used = PEAK.load(Relaxed).saturating_sub(base);
    assert!(
        used <= cow.len() + SLACK,
        "allocated {used} bytes for a {} byte input",
        cow.len()
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // Also with a valid header forced in, so the table walk sees garbage entries more often.
    if let [sel, rest @ ..] = data
        && rest.len() >= 16
    {
        let mut cow = rest.to_vec();
        let header = Header::new(1 << (sel % 8));
        cow[..16].copy_from_slice(&header.to_bytes());
        check(&cow);
    }
});
