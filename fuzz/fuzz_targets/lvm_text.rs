#![no_main]
//! The libdm-compatible text parser, both duplicate modes; whatever parses on-disk style
//! must print and parse back to the same tree.
use devmapper::lvm::config::{Children, Config, Layout, ParseMode, parse, parse_with};
use libfuzzer_sys::fuzz_target;

fn printable(mut nodes: Children<'_, '_>) -> bool {
    nodes.all(|n| !n.key().is_empty() && printable(n.children()))
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_with(data, ParseMode::File);
    if let Ok(c) = parse(data) {
        // Keys made empty by a trailing '/' cannot be written back.
        if printable(c.nodes()) {
            for layout in [Layout::Disk, Layout::File] {
                let text = c.to_text(layout);
                let back: Config<'_> = parse(text.as_bytes()).expect("printed text parses");
                assert_eq!(back, c, "round trip\n{text}");
            }
        }
    }
});
