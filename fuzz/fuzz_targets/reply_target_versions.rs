//! Fuzz the `target_versions` reply decoder with arbitrary kernel replies: it must never panic.
#![no_main]

use devmapper::kernel::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode_target_versions(data);
});
