//! The text format of LVM2 metadata, parsed the way libdevmapper's `libdm-config.c` does it,
//! and printed back in lvm2's layout.
//!
//! The grammar is small but its tokenizer is context-sensitive: a number or bare word is a
//! value only right after `=`, `[` or `,`; elsewhere the same bytes are an identifier. The
//! quirks that follow are kept on purpose, because the aim is to accept exactly what lvm2
//! accepts and to read it the same way:
//!
//! * `#` starts a comment outside quotes; a NUL byte ends the text.
//! * `"..."` unescapes only `\"` and `\\`; `'...'` has no escapes.
//! * arrays are flat; the comma may be left out only before a quoted string (`[1 2]` is an
//!   error, `["a" "b"]` is not);
//! * integers are read with `strtoll(.., 0)`: a leading `0` means octal (`010` is 8), and the
//!   value is read from the token start even past the token's end (`0x10` reads as 16 and
//!   leaves `x10` as the next token, which is almost always a syntax error);
//! * keys with `/` are paths: `a/b = 1` is `a { b = 1 }`;
//! * duplicates: metadata read from disk ([`ParseMode::Disk`]) keeps duplicate keys as
//!   siblings in file order and every lookup returns the first; files ([`ParseMode::File`],
//!   as `vgcfgbackup` output is read) merge duplicate sections and let a later value
//!   replace an earlier one.
//!
//! The tree is an arena ([`Config`]) read through [`Node`] handles; strings borrow from the
//! text unless unescaping or invalid UTF-8 (replaced by U+FFFD) forces a copy.
//!
//! One job per file: `tree` (the arena and its handles), `lexer` (tokens and their
//! positions), `number` (C's `strtoll`/`strtod` as libdm calls them), `parser` (the
//! grammar, duplicate handling) and `printer` (lvm2's layouts).
//!
//! ```
//! use devmapper::lvm::config::{self, Scalar};
//! let text = b"vg0 {\n  id = \"abc\"  # comment\n  seqno = 010\n  status = [\"READ\" \"WRITE\"]\n}\n";
//! let cfg = config::parse(text).unwrap();
//! let vg = cfg.find("vg0").unwrap();
//! assert_eq!(vg.get_str("id"), Some("abc"));
//! assert_eq!(vg.get_int("seqno"), Some(8)); // octal, as libdm reads it
//! assert_eq!(vg.get_list("status").unwrap().len(), 2);
//! // Printing gives lvm2's on-disk layout, and it parses back to the same tree.
//! let printed = cfg.to_text(config::Layout::Disk);
//! assert_eq!(config::parse(printed.as_bytes()).unwrap(), cfg);
//! assert_eq!(vg.get_list("status").unwrap()[0], Scalar::Str("READ".into()));
//! ```
#![forbid(unsafe_code)]

mod lexer;
mod number;
mod parser;
mod printer;
mod tree;

pub use parser::{ParseMode, parse, parse_with};
pub use printer::{Layout, print_scalar};
pub use tree::{Children, Config, NewValue, Node, NodeId, Scalar, Value};

/// Deepest nesting accepted, path keys (`a/b`) counted by their components (lvm2 metadata
/// nests 5 levels).
pub const MAX_DEPTH: usize = 64;
/// Longest array accepted.
pub const MAX_ARRAY: usize = 1 << 20;
/// Longest text accepted.
pub const MAX_TEXT: usize = 64 << 20;
