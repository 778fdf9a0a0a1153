//! The dmsnap record parser on arbitrary bytes: a typed error or a record that encodes back
//! to bytes parsing to the same record; never a panic.
#![no_main]

use devmapper::snapshot::record::{RECORD_MAGIC, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most inputs fail at the magic: also try them behind it.
    let mut with_magic = RECORD_MAGIC.to_vec();
    with_magic.extend_from_slice(data);
    check(&with_magic);
});

fn check(data: &[u8]) {
    if let Ok(r) = Record::parse(data) {
        let again = r.encode().expect("a parsed record encodes");
        assert_eq!(Record::parse(&again).expect("re-parse"), r);
    }
}
