//! Whitespace tokenizer and field parsers shared by every target's params and status parser.
//!
//! The kernel splits target arguments with `dm_split_args`, which treats C `isspace`
//! characters as separators. Every token keeps its byte offset so errors can point at it.

use super::{DevRef, ParseError, ParseErrorReason, TextKind};
use crate::DevNum;
use crate::units::Sectors;

/// C `isspace` in the "C" locale: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub(crate) const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parse an unsigned decimal made of ASCII digits only (no sign, no spaces), as the kernel
/// prints numbers. Leading zeros are accepted; overflow is rejected.
pub(crate) fn parse_dec(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Longest token text copied into an error, so hostile input cannot blow up error sizes.
const MAX_ERROR_TOKEN: usize = 64;

/// A copy of `token` short enough to keep in an error.
pub(crate) fn clip(token: &str) -> String {
    if token.len() <= MAX_ERROR_TOKEN {
        return token.to_owned();
    }
    let mut end = MAX_ERROR_TOKEN;
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &token[..end])
}

/// Tokens of one params or status string, with offsets, and the context for errors.
#[derive(Debug, Clone)]
pub(crate) struct Tokens<'a> {
    text: &'a str,
    pos: usize,
    target: &'a str,
    kind: TextKind,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(target: &'a str, kind: TextKind, text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            target,
            kind,
        }
    }

    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !is_space(b) {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next token and its byte offset, without consuming it.
    pub(crate) fn peek(&self) -> Option<(usize, &'a str)> {
        self.clone().next()
    }

    /// Consume and return the next token and its byte offset.
    #[allow(clippy::should_implement_trait)] // Not an Iterator: errors need `self` afterwards.
    pub(crate) fn next(&mut self) -> Option<(usize, &'a str)> {
        self.skip_space();
        let start = self.pos;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if is_space(b) {
                break;
            }
            self.pos += 1;
        }
        // Separators are ASCII, so both ends are char boundaries.
        let tok = self.text.get(start..self.pos)?;
        (!tok.is_empty()).then_some((start, tok))
    }

    /// Offset one past the last consumed token (where a missing field would start).
    pub(crate) fn end_offset(&self) -> usize {
        self.text.len()
    }

    pub(crate) fn error(&self, offset: usize, reason: ParseErrorReason) -> ParseError {
        ParseError {
            target: self.target.to_owned(),
            kind: self.kind,
            offset,
            reason,
        }
    }

    pub(crate) fn invalid(
        &self,
        offset: usize,
        field: &'static str,
        token: &str,
        expected: &'static str,
    ) -> ParseError {
        self.error(
            offset,
            ParseErrorReason::Invalid {
                field,
                token: clip(token),
                expected,
            },
        )
    }

    /// The next token, or a `Missing(field)` error.
    pub(crate) fn field(&mut self, field: &'static str) -> Result<(usize, &'a str), ParseError> {
        match self.next() {
            Some(t) => Ok(t),
            None => Err(self.error(self.end_offset(), ParseErrorReason::Missing(field))),
        }
    }

    /// The next token as a decimal `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        let (off, tok) = self.field(field)?;
        parse_dec(tok).ok_or_else(|| self.invalid(off, field, tok, "a decimal number"))
    }

    /// The next token as a decimal `u32`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        let (off, tok) = self.field(field)?;
        parse_dec(tok)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| self.invalid(off, field, tok, "a decimal number below 2^32"))
    }

    /// The next token as a count of sectors.
    pub(crate) fn sectors(&mut self, field: &'static str) -> Result<Sectors, ParseError> {
        self.u64(field).map(Sectors)
    }

    /// The next token as a device given by `major:minor` or by path.
    pub(crate) fn dev_ref(&mut self, field: &'static str) -> Result<DevRef, ParseError> {
        let (off, tok) = self.field(field)?;
        tok.parse::<DevRef>()
            .map_err(|_| self.invalid(off, field, tok, "MAJOR:MINOR or a device path"))
    }

    /// The next token as `major:minor` (status text always names devices by number).
    pub(crate) fn dev_num(&mut self, field: &'static str) -> Result<DevNum, ParseError> {
        let (off, tok) = self.field(field)?;
        tok.parse::<DevNum>()
            .map_err(|_| self.invalid(off, field, tok, "MAJOR:MINOR"))
    }

    /// The next token, which must be exactly `word`.
    pub(crate) fn literal(
        &mut self,
        field: &'static str,
        word: &'static str,
    ) -> Result<(), ParseError> {
        let (off, tok) = self.field(field)?;
        if tok == word {
            Ok(())
        } else {
            Err(self.invalid(off, field, tok, word))
        }
    }

    /// Succeed only if every token was consumed.
    pub(crate) fn finish(mut self) -> Result<(), ParseError> {
        match self.next() {
            None => Ok(()),
            Some((off, tok)) => {
                Err(self.error(off, ParseErrorReason::Trailing { token: clip(tok) }))
            }
        }
    }
}

/// `Ok` if `text` is empty or only whitespace: the status of targets that report nothing.
pub(crate) fn expect_empty(target: &str, kind: TextKind, text: &str) -> Result<(), ParseError> {
    Tokens::new(target, kind, text).finish()
}
