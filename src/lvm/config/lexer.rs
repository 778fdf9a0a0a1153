//! The tokenizer: libdm's context-sensitive `_get_token`, with token positions for errors.

use std::borrow::Cow;

use crate::lvm::error::{ParseError, ParseErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
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

/// The offset of the first byte at or after `at` that is neither whitespace nor inside a
/// `#` comment (a comment runs to the end of its line).
fn skip_blank(text: &[u8], mut at: usize) -> usize {
    loop {
        at += text
            .get(at..)
            .unwrap_or_default()
            .iter()
            .position(|&c| !is_space(c))
            .unwrap_or(text.len().saturating_sub(at));
        if text.get(at) != Some(&b'#') {
            return at;
        }
        let comment = text.get(at..).unwrap_or_default();
        at += comment
            .iter()
            .position(|&c| c == b'\n')
            .unwrap_or(comment.len());
    }
}

pub(super) struct Lexer<'a> {
    text: &'a [u8],
    /// The same text when it is valid UTF-8.
    utf8: Option<&'a str>,
    /// The current token (line and column are computed only for errors).
    pub(super) tok: Token,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a [u8]) -> Lexer<'a> {
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

    pub(super) fn rest(&self, at: usize) -> &'a [u8] {
        self.text.get(at..).unwrap_or_default()
    }

    /// `_get_token`: lex the token after the current one; `prev` is the kind just matched.
    pub(super) fn advance(&mut self, prev: Kind) {
        let start = skip_blank(self.text, self.tok.end.min(self.text.len()));
        let after_blank = self.rest(start);
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

    pub(super) fn error(&self, at: usize, kind: ParseErrorKind) -> ParseError {
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
    pub(super) fn expect(&mut self, kind: Kind, expected: &'static str) -> Result<(), ParseError> {
        if self.tok.kind != kind {
            return Err(self.error(self.tok.start, ParseErrorKind::Unexpected { expected }));
        }
        self.advance(kind);
        Ok(())
    }

    /// `_dup_string_tok`: the body of a quoted token, libdm's way: drop the first and the
    /// last byte (so an unterminated string at the end loses its last byte, as in libdm).
    pub(super) fn string_body(&self, t: Token) -> Result<(usize, usize), ParseError> {
        if t.end < t.start + 2 {
            return Err(self.error(t.start, ParseErrorKind::ExpectedValue));
        }
        Ok((t.start + 1, t.end - 1))
    }

    /// `text[a..b]` as a string: borrowed from the text when it is valid UTF-8 (checked
    /// once for the whole text), otherwise converted with U+FFFD replacements.
    pub(super) fn text(&self, (a, b): (usize, usize)) -> Cow<'a, str> {
        if let Some(s) = self.utf8
            && let Some(sub) = s.get(a..b)
        {
            return Cow::Borrowed(sub);
        }
        text_of(self.text.get(a..b).unwrap_or_default())
    }

    /// A double-quoted body, unescaped like `dm_unescape_double_quotes`.
    pub(super) fn unescaped(&self, (a, b): (usize, usize)) -> Cow<'a, str> {
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
