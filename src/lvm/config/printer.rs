//! The printer: lvm2's layout of metadata areas ([`Layout::Disk`]) and backup files
//! ([`Layout::File`]).

use std::fmt::Write as _;

use super::tree::{Config, Node, Scalar, Value};

/// How the printer lays the text out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// As lvm2 writes metadata areas: no indentation.
    #[default]
    Disk,
    /// As lvm2 writes backup files: one tab per level.
    File,
}

impl Config<'_> {
    /// Print in lvm2's layout; the text parses back to an equal tree (keys must be
    /// non-empty and free of `/`; see also [`print_scalar`]).
    pub fn to_text(&self, layout: Layout) -> String {
        let mut out = String::with_capacity(self.items.len() * 16 + self.slots.len() * 24);
        for n in self.nodes() {
            print_node(&mut out, n, layout, 0);
        }
        out
    }
}

/// Keys whose arrays lvm2 writes one area (name, offset pair) per line.
const AREA_KEYS: &[&str] = &["stripes", "mirrors", "raids", "raid0_lvs", "areas"];

fn is_bare_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-'))
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Print one item. Strings are always double-quoted with `"` and `\` escaped (so they read
/// back unchanged unless they contain NUL, which ends lvm2 text). Floats are printed in
/// full with a `.` so that they lex as floats again; non-finite floats, which the text
/// cannot express, print as `0.0`.
pub fn print_scalar(out: &mut String, s: &Scalar<'_>) {
    match s {
        Scalar::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Scalar::Float(f) => {
            if f.is_finite() {
                let start = out.len();
                let _ = write!(out, "{f}");
                if !out.get(start..).unwrap_or_default().contains('.') {
                    out.push_str(".0");
                }
            } else {
                out.push_str("0.0");
            }
        }
        Scalar::Str(s) => push_quoted(out, s),
    }
}

fn indent(out: &mut String, layout: Layout, level: usize) {
    if layout == Layout::File {
        for _ in 0..level {
            out.push('\t');
        }
    }
}

fn print_node(out: &mut String, n: Node<'_, '_>, layout: Layout, level: usize) {
    indent(out, layout, level);
    let key = n.key();
    if is_bare_key(key) {
        out.push_str(key);
    } else {
        push_quoted(out, key);
    }
    match n.value() {
        None => {
            out.push_str(" {\n");
            for c in n.children() {
                print_node(out, c, layout, level + 1);
            }
            indent(out, layout, level);
            out.push_str("}\n");
        }
        Some(Value::Scalar(s)) => {
            out.push_str(" = ");
            print_scalar(out, s);
            out.push('\n');
        }
        Some(Value::Array(items)) => {
            out.push_str(" = [");
            if AREA_KEYS.contains(&key) && !items.is_empty() {
                // lvm2's `_out_areas`: one (name, offset) pair per line.
                out.push('\n');
                for (i, pair) in items.chunks(2).enumerate() {
                    indent(out, layout, level + 1);
                    for (j, s) in pair.iter().enumerate() {
                        if j > 0 {
                            out.push_str(", ");
                        }
                        print_scalar(out, s);
                    }
                    if (i + 1) * 2 < items.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                indent(out, layout, level);
            } else {
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    print_scalar(out, s);
                }
            }
            out.push_str("]\n");
        }
    }
}
