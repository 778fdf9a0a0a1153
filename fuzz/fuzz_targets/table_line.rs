//! Table text: parsing never panics, and whatever parses survives its own text.
#![no_main]

use devmapper::table::{Table, TableLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = text.parse::<Table>() {
        let _ = table.validate();
        let again: Table = table
            .to_string()
            .parse()
            .expect("formatted table re-parses");
        assert_eq!(again, table);
    }
    if let Ok(line) = text.parse::<TableLine>() {
        let (start, length, ty, params) = line.to_raw();
        let raw = TableLine::from_raw(start, length, ty, &params).expect("raw parts re-parse");
        assert_eq!(raw, line);
    }
});
