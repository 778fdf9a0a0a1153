//! The parser: libdm's recursive descent over the token stream, building the tree in
//! [`ParseMode::Disk`] or [`ParseMode::File`].

use std::borrow::Cow;
use std::collections::HashMap;

use super::lexer::{Kind, Lexer};
use super::number::{strtod, strtoll};
use super::tree::{Children, Config, ROOT, Scalar, Val};
use super::{MAX_ARRAY, MAX_DEPTH, MAX_TEXT};
use crate::lvm::error::{ParseError, ParseErrorKind};

/// How duplicate keys are handled (see the [`config`](super) module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// `dm_config_parse_without_dup_node_check`: duplicates stay, lookups see the first.
    #[default]
    Disk,
    /// `dm_config_parse`: duplicate sections merge, a later value replaces an earlier one.
    File,
}

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
