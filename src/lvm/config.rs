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

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use nom::IResult;
use nom::Parser as _;
use nom::bytes::complete::{take_till, take_while};

use super::error::{ParseError, ParseErrorKind};

/// Deepest nesting accepted, path keys (`a/b`) counted by their components (lvm2 metadata
/// nests 5 levels).
pub const MAX_DEPTH: usize = 64;
/// Longest array accepted.
pub const MAX_ARRAY: usize = 1 << 20;
/// Longest text accepted.
pub const MAX_TEXT: usize = 64 << 20;

/// How duplicate keys are handled (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// `dm_config_parse_without_dup_node_check`: duplicates stay, lookups see the first.
    #[default]
    Disk,
    /// `dm_config_parse`: duplicate sections merge, a later value replaces an earlier one.
    File,
}

/// How the printer lays the text out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// As lvm2 writes metadata areas: no indentation.
    #[default]
    Disk,
    /// As lvm2 writes backup files: one tab per level.
    File,
}

/// One value item.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// An integer.
    Int(i64),
    /// A float (a number token containing `.`).
    Float(f64),
    /// A string (quoted or bare).
    Str(Cow<'a, str>),
}

/// A node's value, borrowed from its [`Config`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'c, 'a> {
    /// A single item.
    Scalar(&'c Scalar<'a>),
    /// `[ ... ]`, possibly empty.
    Array(&'c [Scalar<'a>]),
}

impl<'c, 'a> Value<'c, 'a> {
    /// The items: one for a scalar, all for an array (libdm does not tell them apart).
    pub fn items(&self) -> &'c [Scalar<'a>] {
        match *self {
            Value::Scalar(s) => std::slice::from_ref(s),
            Value::Array(v) => v,
        }
    }
}

/// A value to add with [`Config::add_value`].
#[derive(Clone, Debug, PartialEq)]
pub enum NewValue<'a> {
    /// A single item.
    Scalar(Scalar<'a>),
    /// An array.
    Array(Vec<Scalar<'a>>),
}

/// Where a node's value is in [`Config`]'s item vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    None,
    Scalar(u32),
    Array(u32, u32),
}

/// Arena slot of one node; children form a first-child / next-sibling list (0 = none;
/// slot 0 is the root, never anyone's child).
#[derive(Clone, Debug)]
struct Slot<'a> {
    key: Cow<'a, str>,
    value: Val,
    first: u32,
    last: u32,
    next: u32,
}

/// Identifies a node of a [`Config`] (for building one with [`Config::add_section`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

/// A parsed text: an arena of nodes (keys with a value or children) in file order.
///
/// Nodes are read through [`Node`] handles: [`Config::nodes`] for the top level,
/// [`Config::find`] for a path. Equality is structural.
#[derive(Clone)]
pub struct Config<'a> {
    slots: Vec<Slot<'a>>,
    items: Vec<Scalar<'a>>,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config::new()
    }
}

impl std::fmt::Debug for Config<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.nodes()).finish()
    }
}

impl PartialEq for Config<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.nodes().eq(other.nodes())
    }
}

/// A node of a [`Config`]: a key with either a value or children (a section). Like libdm's
/// `dm_config_node`, a merged file can give one node both; it then counts as a value.
#[derive(Clone, Copy)]
pub struct Node<'c, 'a> {
    cfg: &'c Config<'a>,
    id: u32,
}

impl std::fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Node");
        d.field("key", &self.key());
        if let Some(v) = self.value() {
            d.field("value", &v);
        }
        if self.children().next().is_some() {
            d.field("children", &self.children().collect::<Vec<_>>());
        }
        d.finish()
    }
}

impl PartialEq for Node<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.value().map(|v| v.items()) == other.value().map(|v| v.items())
            && matches!(self.value(), Some(Value::Array(_)))
                == matches!(other.value(), Some(Value::Array(_)))
            && self.children().eq(other.children())
    }
}

/// Iterator over the children of a node (or the top level of a [`Config`]).
#[derive(Clone, Debug)]
pub struct Children<'c, 'a> {
    cfg: &'c Config<'a>,
    next: u32,
}

impl<'c, 'a> Iterator for Children<'c, 'a> {
    type Item = Node<'c, 'a>;

    fn next(&mut self) -> Option<Node<'c, 'a>> {
        if self.next == 0 {
            return None;
        }
        let id = self.next;
        self.next = self.cfg.slot(id).map_or(0, |s| s.next);
        Some(Node { cfg: self.cfg, id })
    }
}

const ROOT: u32 = 0;

impl<'a> Config<'a> {
    /// An empty config.
    pub fn new() -> Config<'a> {
        Config {
            slots: vec![Slot {
                key: Cow::Borrowed(""),
                value: Val::None,
                first: 0,
                last: 0,
                next: 0,
            }],
            items: Vec::new(),
        }
    }

    fn slot(&self, id: u32) -> Option<&Slot<'a>> {
        self.slots.get(id as usize)
    }

    /// The top-level nodes, in order.
    pub fn nodes(&self) -> Children<'_, 'a> {
        Children {
            cfg: self,
            next: self.slot(ROOT).map_or(0, |s| s.first),
        }
    }

    /// No top-level node.
    pub fn is_empty(&self) -> bool {
        self.nodes().next().is_none()
    }

    /// The first node at `path` (`/`-separated), as libdm's lookups find it.
    pub fn find(&self, path: &str) -> Option<Node<'_, 'a>> {
        find_in(self.nodes(), path)
    }

    /// Append a section under `parent` (`None`: top level).
    pub fn add_section(&mut self, parent: Option<NodeId>, key: impl Into<Cow<'a, str>>) -> NodeId {
        NodeId(self.push(parent.map_or(ROOT, |p| p.0), key.into()))
    }

    /// Append a `key = value` node under `parent` (`None`: top level).
    pub fn add_value(
        &mut self,
        parent: Option<NodeId>,
        key: impl Into<Cow<'a, str>>,
        value: NewValue<'a>,
    ) -> NodeId {
        let id = self.push(parent.map_or(ROOT, |p| p.0), key.into());
        let v = match value {
            NewValue::Scalar(s) => self.push_items(std::iter::once(s), false),
            NewValue::Array(a) => self.push_items(a, true),
        };
        self.set_value(id, v);
        NodeId(id)
    }

    fn push_items(&mut self, items: impl IntoIterator<Item = Scalar<'a>>, array: bool) -> Val {
        let start = self.items.len();
        self.items.extend(items);
        let start32 = u32::try_from(start).unwrap_or(u32::MAX);
        let len32 = u32::try_from(self.items.len() - start).unwrap_or(u32::MAX);
        if array {
            Val::Array(start32, len32)
        } else {
            Val::Scalar(start32)
        }
    }

    fn set_value(&mut self, id: u32, v: Val) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.value = v;
        }
    }

    /// Append a node as the last child of `parent`; returns its id.
    fn push(&mut self, parent: u32, key: Cow<'a, str>) -> u32 {
        let id = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            key,
            value: Val::None,
            first: 0,
            last: 0,
            next: 0,
        });
        let last = match self.slots.get_mut(parent as usize) {
            Some(p) => {
                let last = p.last;
                if p.first == 0 {
                    p.first = id;
                }
                p.last = id;
                last
            }
            None => 0,
        };
        if last != 0
            && let Some(l) = self.slots.get_mut(last as usize)
        {
            l.next = id;
        }
        id
    }

    /// A copy that owns all its strings.
    pub fn into_owned(self) -> Config<'static> {
        Config {
            slots: self
                .slots
                .into_iter()
                .map(|s| Slot {
                    key: Cow::Owned(s.key.into_owned()),
                    value: s.value,
                    first: s.first,
                    last: s.last,
                    next: s.next,
                })
                .collect(),
            items: self.items.into_iter().map(scalar_owned).collect(),
        }
    }

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

fn find_in<'c, 'a>(mut nodes: Children<'c, 'a>, path: &str) -> Option<Node<'c, 'a>> {
    let mut rest = path;
    loop {
        rest = rest.trim_start_matches('/');
        let (seg, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let n = nodes.find(|n| n.key() == seg)?;
        if tail.is_empty() {
            return Some(n);
        }
        nodes = n.children();
        rest = tail;
    }
}

impl<'c, 'a> Node<'c, 'a> {
    fn slot(&self) -> Option<&'c Slot<'a>> {
        self.cfg.slot(self.id)
    }

    /// This node's id (to add children with [`Config::add_section`]).
    pub fn id(&self) -> NodeId {
        NodeId(self.id)
    }

    /// The key (one path component).
    pub fn key(&self) -> &'c str {
        self.slot().map_or("", |s| &s.key)
    }

    /// The value, `None` for a section.
    pub fn value(&self) -> Option<Value<'c, 'a>> {
        match self.slot()?.value {
            Val::None => None,
            Val::Scalar(i) => self.cfg.items.get(i as usize).map(Value::Scalar),
            Val::Array(start, len) => {
                let (start, len) = (start as usize, len as usize);
                self.cfg.items.get(start..start + len).map(Value::Array)
            }
        }
    }

    /// The children, in order.
    pub fn children(&self) -> Children<'c, 'a> {
        Children {
            cfg: self.cfg,
            next: self.slot().map_or(0, |s| s.first),
        }
    }

    /// Is this a section (no value)?
    pub fn is_section(&self) -> bool {
        self.slot().is_some_and(|s| s.value == Val::None)
    }

    /// The first descendant at `path`.
    pub fn find(&self, path: &str) -> Option<Node<'c, 'a>> {
        find_in(self.children(), path)
    }

    /// The value items at `path` (a scalar counts as a one-item list).
    pub fn get_list(&self, path: &str) -> Option<&'c [Scalar<'a>]> {
        self.find(path)?.value().map(|v| v.items())
    }

    /// The string at `path` (the first item when it is an array, like `dm_config_get_str`).
    pub fn get_str(&self, path: &str) -> Option<&'c str> {
        match self.get_list(path)?.first()? {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer at `path` (the first item when it is an array).
    pub fn get_int(&self, path: &str) -> Option<i64> {
        match self.get_list(path)?.first()? {
            Scalar::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The child sections, in order.
    pub fn sections(&self) -> impl Iterator<Item = Node<'c, 'a>> + use<'c, 'a> {
        self.children().filter(|n| n.is_section())
    }
}

fn scalar_owned(s: Scalar<'_>) -> Scalar<'static> {
    match s {
        Scalar::Int(i) => Scalar::Int(i),
        Scalar::Float(f) => Scalar::Float(f),
        Scalar::Str(s) => Scalar::Str(Cow::Owned(s.into_owned())),
    }
}

//------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    /// Single-quoted.
    Str,
    /// Double-quoted.
    StrEscaped,
    Bare,
    Eq,
    SectionB,
    SectionE,
    ArrayB,
    ArrayE,
    Ident,
    Comma,
    Eof,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// C's `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    CLASS[c as usize] & SPACE != 0
}

/// Bytes that may continue an identifier or bare word.
fn ident_char(c: u8) -> bool {
    CLASS[c as usize] & STOP == 0
}

const SPACE: u8 = 1;
/// Ends an identifier: space, `#`, `=`, `{`, `}`.
const STOP: u8 = 2;

/// Byte classes, one table lookup per byte in the hot loops.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let spaces = [b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r'];
    let mut i = 0;
    while i < spaces.len() {
        t[spaces[i] as usize] = SPACE | STOP;
        i += 1;
    }
    t[b'#' as usize] = STOP;
    t[b'=' as usize] = STOP;
    t[b'{' as usize] = STOP;
    t[b'}' as usize] = STOP;
    t
};

/// Whitespace and `#` comments (nom: alternating `take_while`/`take_till`).
fn blank(i: &[u8]) -> IResult<&[u8], ()> {
    let mut i = i;
    loop {
        let (r, _) = take_while(is_space).parse(i)?;
        i = r;
        if i.first() == Some(&b'#') {
            let (r, _) = take_till(|c| c == b'\n').parse(i)?;
            i = r;
        } else {
            return Ok((i, ()));
        }
    }
}

struct Lexer<'a> {
    text: &'a [u8],
    /// The same text when it is valid UTF-8.
    utf8: Option<&'a str>,
    /// The current token (line and column are computed only for errors).
    tok: Token,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a [u8]) -> Lexer<'a> {
        let mut lx = Lexer {
            text,
            utf8: std::str::from_utf8(text).ok(),
            tok: Token {
                kind: Kind::Eof,
                start: 0,
                end: 0,
            },
        };
        lx.advance(Kind::SectionE);
        lx
    }

    fn rest(&self, at: usize) -> &'a [u8] {
        self.text.get(at..).unwrap_or_default()
    }

    /// `_get_token`: lex the token after the current one; `prev` is the kind just matched.
    fn advance(&mut self, prev: Kind) {
        let from = self.tok.end;
        let after_blank = match blank(self.rest(from)) {
            Ok((r, ())) => r,
            Err(_) => &[],
        };
        let start = self.text.len() - after_blank.len();
        let Some(&c) = after_blank.first() else {
            self.tok = Token {
                kind: Kind::Eof,
                start,
                end: start,
            };
            return;
        };
        let values_allowed = matches!(prev, Kind::Eq | Kind::ArrayB | Kind::Comma);
        let len = after_blank.len();
        let (kind, n) = match c {
            b'{' => (Kind::SectionB, 1),
            b'}' => (Kind::SectionE, 1),
            b'[' => (Kind::ArrayB, 1),
            b']' => (Kind::ArrayE, 1),
            b',' => (Kind::Comma, 1),
            b'=' => (Kind::Eq, 1),
            b'"' => {
                // Jump from one `"` or `\\` to the next; a backslash skips the byte after it.
                let mut te = 1;
                loop {
                    let rest = after_blank.get(te..).unwrap_or_default();
                    match rest.iter().position(|&b| b == b'"' || b == b'\\') {
                        None => {
                            te = len;
                            break;
                        }
                        Some(i) => {
                            te += i;
                            if rest.get(i) == Some(&b'"') {
                                break;
                            }
                            // A backslash: skip it and the escaped byte (if any).
                            te = (te + 2).min(len);
                        }
                    }
                }
                (Kind::StrEscaped, (te + 1).min(len))
            }
            b'\'' => {
                let body = after_blank.get(1..).unwrap_or_default();
                let te = 1 + body.iter().position(|&b| b == b'\'').unwrap_or(body.len());
                (Kind::Str, (te + 1).min(len))
            }
            b'.' | b'0'..=b'9' | b'+' | b'-' if values_allowed => {
                let mut kind = if c == b'.' { Kind::Float } else { Kind::Int };
                let mut te = 1;
                while let Some(&b) = after_blank.get(te) {
                    if !b.is_ascii_digit() {
                        if b == b'.' && kind != Kind::Float {
                            kind = Kind::Float;
                            te += 1;
                            continue;
                        }
                        break;
                    }
                    te += 1;
                }
                (kind, te)
            }
            _ => {
                let n = after_blank
                    .iter()
                    .position(|&b| !ident_char(b))
                    .unwrap_or(len);
                (
                    if values_allowed {
                        Kind::Bare
                    } else {
                        Kind::Ident
                    },
                    n,
                )
            }
        };
        self.tok = Token {
            kind,
            start,
            end: start + n,
        };
    }

    fn error(&self, at: usize, kind: ParseErrorKind) -> ParseError {
        let upto = self.text.get(..at).unwrap_or(self.text);
        let line = 1 + upto.iter().filter(|&&c| c == b'\n').count();
        let line_start = upto.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        ParseError {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(at - line_start + 1).unwrap_or(u32::MAX),
            offset: at,
            kind,
        }
    }

    /// `match(kind)`.
    fn expect(&mut self, kind: Kind, expected: &'static str) -> Result<(), ParseError> {
        if self.tok.kind != kind {
            return Err(self.error(self.tok.start, ParseErrorKind::Unexpected { expected }));
        }
        self.advance(kind);
        Ok(())
    }

    /// `_dup_string_tok`: the body of a quoted token, libdm's way: drop the first and the
    /// last byte (so an unterminated string at the end loses its last byte, as in libdm).
    fn string_body(&self, t: Token) -> Result<(usize, usize), ParseError> {
        if t.end < t.start + 2 {
            return Err(self.error(t.start, ParseErrorKind::ExpectedValue));
        }
        Ok((t.start + 1, t.end - 1))
    }

    /// `text[a..b]` as a string: borrowed from the text when it is valid UTF-8 (checked
    /// once for the whole text), otherwise converted with U+FFFD replacements.
    fn text(&self, (a, b): (usize, usize)) -> Cow<'a, str> {
        if let Some(s) = self.utf8
            && let Some(sub) = s.get(a..b)
        {
            return Cow::Borrowed(sub);
        }
        text_of(self.text.get(a..b).unwrap_or_default())
    }

    /// A double-quoted body, unescaped like `dm_unescape_double_quotes`.
    fn unescaped(&self, (a, b): (usize, usize)) -> Cow<'a, str> {
        let bytes = self.text.get(a..b).unwrap_or_default();
        if !bytes.contains(&b'\\') {
            return self.text((a, b));
        }
        unescape(bytes)
    }
}

fn text_of(b: &[u8]) -> Cow<'_, str> {
    // `from_utf8` has an ASCII fast path; only invalid text pays for the lossy copy.
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// `dm_unescape_double_quotes`: `\"` -> `"`, `\\` -> `\`, any other backslash stays.
fn unescape(b: &[u8]) -> Cow<'_, str> {
    if !b.contains(&b'\\') {
        return text_of(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' && matches!(b.get(i + 1), Some(b'"' | b'\\')) {
            i += 1;
            if let Some(&n) = b.get(i) {
                out.push(n);
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `strtoll(s, NULL, 0)`: `None` on overflow (ERANGE). No digits at all reads as 0.
fn strtoll(s: &[u8]) -> Option<i64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', h, ..] if h.is_ascii_hexdigit() => {
            (16u32, s.get(2..).unwrap_or_default())
        }
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    // Accumulate negatively so that i64::MIN is representable.
    let mut acc: i64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        acc = acc
            .checked_mul(i64::from(radix))?
            .checked_sub(i64::from(d))?;
    }
    if neg { Some(acc) } else { acc.checked_neg() }
}

/// `strtod(s, NULL)` for the shapes a float token can start: `[+-]digits[.digits][e[+-]digits]`.
fn strtod(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        mantissa_digits += i - frac_start;
    }
    if mantissa_digits == 0 {
        return Some(0.0);
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if s.get(j).is_some_and(u8::is_ascii_digit) {
            while s.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            i = j;
        }
    }
    let text = std::str::from_utf8(s.get(..i)?).ok()?;
    let v: f64 = text.parse().ok()?;
    let nonzero_digits = s
        .get(..i)?
        .iter()
        .take_while(|c| !matches!(c, b'e' | b'E'))
        .any(|c| (b'1'..=b'9').contains(c));
    if v.is_infinite() || (v == 0.0 && nonzero_digits) {
        return None; // ERANGE
    }
    Some(v)
}

//------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    lx: Lexer<'a>,
    mode: ParseMode,
    cfg: Config<'a>,
}

/// Parse on-disk metadata text ([`ParseMode::Disk`]).
pub fn parse(text: &[u8]) -> Result<Config<'_>, ParseError> {
    parse_with(text, ParseMode::Disk)
}

/// Parse with an explicit duplicate-key mode. The text ends at its first NUL.
pub fn parse_with(text: &[u8], mode: ParseMode) -> Result<Config<'_>, ParseError> {
    let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
    let text = text.get(..end).unwrap_or_default();
    if text.len() > MAX_TEXT {
        return Err(ParseError {
            line: 1,
            col: 1,
            offset: 0,
            kind: ParseErrorKind::TooLarge { limit: MAX_TEXT },
        });
    }
    let mut cfg = Config::new();
    // About one node per 16 bytes and one item per 24 in lvm2's layout; capped so that a
    // large text of comments does not reserve much.
    cfg.slots.reserve((text.len() / 16).min(1 << 18));
    cfg.items.reserve((text.len() / 24).min(1 << 18));
    let mut p = Parser {
        lx: Lexer::new(text),
        mode,
        cfg,
    };
    let mut index: SiblingIndex<'_> = None;
    while p.lx.tok.kind != Kind::Eof {
        p.section(ROOT, &mut index, 0)?;
    }
    Ok(p.cfg)
}

/// In [`ParseMode::File`], a name -> node map of one section's children, built once the
/// section is large enough for linear lookups to matter (so that a merged file with
/// thousands of LVs does not parse in quadratic time, as libdm's does).
type SiblingIndex<'a> = Option<HashMap<Cow<'a, str>, u32>>;

/// Children count from which [`SiblingIndex`] is built.
const INDEX_FROM: usize = 16;

/// libdm's path walk: strip leading `/`s, cut at the next `/`; a trailing `/` yields a
/// final empty component.
fn split_path<'s>(s: &'s str, mut push: impl FnMut(&'s str)) {
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches('/');
        match rest.split_once('/') {
            Some((seg, _)) => {
                push(seg);
                rest = &rest[seg.len()..];
            }
            None => {
                push(rest);
                return;
            }
        }
    }
}

impl<'a> Parser<'a> {
    /// `_find_or_make_node` with a pool: walk `key` component by component, creating
    /// nodes; in `File` mode reuse the first existing node of each name.
    fn find_or_make(
        &mut self,
        parent: u32,
        key: Cow<'a, str>,
        index: &mut SiblingIndex<'a>,
    ) -> u32 {
        // Fast path: no '/' (every key lvm2 writes).
        if !key.as_bytes().contains(&b'/') {
            return self.make_one(parent, key, Some(index));
        }
        let mut comps: Vec<Cow<'a, str>> = Vec::new();
        match &key {
            Cow::Borrowed(s) => split_path(s, |c| comps.push(Cow::Borrowed(c))),
            Cow::Owned(s) => split_path(s, |c| comps.push(Cow::Owned(c.to_owned()))),
        }
        let last = comps.pop().unwrap_or_default();
        let mut parent = parent;
        let mut first = Some(index);
        for c in comps {
            parent = self.make_one(parent, c, first.take());
        }
        self.make_one(parent, last, first)
    }

    fn make_one(
        &mut self,
        parent: u32,
        key: Cow<'a, str>,
        mut index: Option<&mut SiblingIndex<'a>>,
    ) -> u32 {
        if self.mode == ParseMode::File {
            let siblings = Children {
                cfg: &self.cfg,
                next: self.cfg.slot(parent).map_or(0, |s| s.first),
            };
            if let Some(ix) = index.as_deref_mut()
                && ix.is_none()
                && siblings.clone().nth(INDEX_FROM).is_some()
            {
                let mut m = HashMap::new();
                for n in siblings.clone() {
                    if let Some(slot) = self.cfg.slot(n.id) {
                        m.entry(slot.key.clone()).or_insert(n.id);
                    }
                }
                *ix = Some(m);
            }
            let found = match index.as_deref() {
                Some(Some(m)) => m.get(&key).copied(),
                _ => siblings.clone().find(|n| n.key() == key).map(|n| n.id),
            };
            if let Some(id) = found {
                return id;
            }
        }
        let insert_key = match &index {
            Some(Some(_)) => Some(key.clone()),
            _ => None,
        };
        let id = self.cfg.push(parent, key);
        if let (Some(Some(m)), Some(k)) = (index, insert_key) {
            m.insert(k, id);
        }
        id
    }

    fn section(
        &mut self,
        parent: u32,
        index: &mut SiblingIndex<'a>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let t = self.lx.tok;
        let key = match t.kind {
            Kind::StrEscaped => {
                let body = self.lx.string_body(t)?;
                self.lx.advance(Kind::StrEscaped);
                self.lx.unescaped(body)
            }
            Kind::Str => {
                let body = self.lx.string_body(t)?;
                self.lx.advance(Kind::Str);
                self.lx.text(body)
            }
            _ => {
                let body = (t.start, t.end);
                self.lx.expect(Kind::Ident, "a key")?;
                self.lx.text(body)
            }
        };
        if key.is_empty() {
            return Err(self.lx.error(t.start, ParseErrorKind::EmptyKey));
        }
        // A path key (`a/b/c`) nests as deep as its components.
        let mut comps = 1usize;
        if key.as_bytes().contains(&b'/') {
            comps = 0;
            split_path(&key, |_| comps += 1);
        }
        let level = depth + comps;
        if level > MAX_DEPTH {
            return Err(self
                .lx
                .error(t.start, ParseErrorKind::TooDeep { limit: MAX_DEPTH }));
        }
        let node = self.find_or_make(parent, key, index);
        if self.lx.tok.kind == Kind::SectionB {
            self.lx.advance(Kind::SectionB);
            let mut child_index: SiblingIndex<'a> = None;
            while self.lx.tok.kind != Kind::SectionE {
                self.section(node, &mut child_index, level)?;
            }
            self.lx.advance(Kind::SectionE);
        } else {
            self.lx.expect(Kind::Eq, "'=' or '{'")?;
            let v = self.value()?;
            self.cfg.set_value(node, v);
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Val, ParseError> {
        if self.lx.tok.kind != Kind::ArrayB {
            let s = self.scalar()?;
            return Ok(self.cfg.push_items(std::iter::once(s), false));
        }
        self.lx.advance(Kind::ArrayB);
        let start = self.cfg.items.len();
        while self.lx.tok.kind != Kind::ArrayE {
            if self.cfg.items.len() - start >= MAX_ARRAY {
                return Err(self.lx.error(
                    self.lx.tok.start,
                    ParseErrorKind::ArrayTooLong { limit: MAX_ARRAY },
                ));
            }
            let s = self.scalar()?;
            self.cfg.items.push(s);
            if self.lx.tok.kind == Kind::Comma {
                self.lx.advance(Kind::Comma);
            }
        }
        self.lx.advance(Kind::ArrayE);
        let start32 = u32::try_from(start).unwrap_or(u32::MAX);
        let len32 = u32::try_from(self.cfg.items.len() - start).unwrap_or(u32::MAX);
        Ok(Val::Array(start32, len32))
    }

    /// `_type`.
    fn scalar(&mut self) -> Result<Scalar<'a>, ParseError> {
        let t = self.lx.tok;
        let v = match t.kind {
            Kind::Int => {
                let v = strtoll(self.lx.rest(t.start))
                    .ok_or_else(|| self.lx.error(t.start, ParseErrorKind::IntRange))?;
                Scalar::Int(v)
            }
            Kind::Float => {
                let v = strtod(self.lx.rest(t.start))
                    .ok_or_else(|| self.lx.error(t.start, ParseErrorKind::FloatRange))?;
                Scalar::Float(v)
            }
            Kind::Str => Scalar::Str(self.lx.text(self.lx.string_body(t)?)),
            Kind::StrEscaped => Scalar::Str(self.lx.unescaped(self.lx.string_body(t)?)),
            Kind::Bare => Scalar::Str(self.lx.text((t.start, t.end))),
            _ => return Err(self.lx.error(t.start, ParseErrorKind::ExpectedValue)),
        };
        self.lx.advance(t.kind);
        Ok(v)
    }
}

//------------------------------------------------------------------------------------------
// Printer

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
