//! Every target's params and status parser: the first byte picks the target type, the
//! rest is the text. Parsing never panics; whatever parses survives its own text.
#![no_main]

use devmapper::targets::{Target, TargetStatus};
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &[
    "linear",
    "striped",
    "zero",
    "error",
    "snapshot",
    "snapshot-origin",
    "snapshot-merge",
    "thin-pool",
    "thin",
    "flakey",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let ty = TYPES[usize::from(which) % TYPES.len()];
    if let Ok(status) = TargetStatus::parse(ty, text) {
        let again = TargetStatus::parse(ty, &status.to_string()).expect("status re-parses");
        assert_eq!(again, status);
    }
    if let Ok(target) = Target::parse(ty, text) {
        let again = Target::parse(ty, &target.params()).expect("params re-parse");
        assert_eq!(again, target);
    }
});
