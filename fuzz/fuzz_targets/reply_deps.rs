//! Fuzz the `deps` reply decoder with arbitrary kernel replies: it must never panic.
#![no_main]

use devmapper::kernel::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = wire::decode_deps(data) {
        // Never more entries than the input can hold.
        assert!(v.len() * 8 <= data.len());
    }
});
