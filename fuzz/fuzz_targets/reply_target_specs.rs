//! Fuzz the `target_specs` reply decoder with arbitrary kernel replies: it must never panic.
#![no_main]

use devmapper::kernel::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((count, rest)) = data.split_first() else {
        return;
    };
    if let Ok(v) = wire::decode_target_specs(rest, u32::from(*count)) {
        assert!(v.len() <= usize::from(*count));
        for t in v {
            // 16 bytes at most; invalid UTF-8 becomes U+FFFD, so count characters.
            assert!(t.target_type.chars().count() <= 16);
        }
    }
    let _ = wire::decode_header(data);
});
