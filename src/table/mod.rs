//! Device-mapper tables: the `start length target params` text form, both ways.
//!
//! A [`Table`] is a list of [`TableLine`]s, one per target, each mapping `length` sectors
//! from `start` to a typed [`Target`]. The text form is the one `dmsetup table` prints
//! and `dmsetup create`/`load` read: one line per target, fields separated by a single
//! space, the params exactly as the kernel prints them. `dmsetup` writes each line as
//! `printf("%llu %llu %s ", start, length, type)` followed by the params and `\n`, so a
//! target with empty params (`zero`, `error`, ...) ends in a space: `0 2048 zero `.
//! [`Table`]'s `Display` produces exactly those lines (for one device; `dmsetup` prefixes
//! `NAME: ` when listing several and prints an empty line for a device without a table).
//!
//! Reading is close to `dmsetup`'s `_parse_line`: fields separated by any whitespace,
//! blank lines and lines starting with `#` skipped, the params being everything after
//! the target type (leading whitespace dropped), parsed by the target's typed model.
//! Unlike `dmsetup`, trailing whitespace and `#` inside the params are kept, so that
//! opaque params survive the text form byte for byte; an inline `# comment` after typed
//! params is therefore an error rather than ignored.
//!
//! [`Table::validate`] checks what the kernel checks when a table is loaded, so a bad
//! table fails here with a line and column instead of an `EINVAL` from the ioctl.
//!
//! ```
//! use devmapper::table::{Table, TableLine};
//! use devmapper::targets::{DevRef, Linear, Target, Zero};
//! use devmapper::units::Sectors;
//! let text = "0 2048 linear 8:16 0\n2048 1024 zero \n";
//! let table: Table = text.parse().unwrap();
//! assert_eq!(table.lines().len(), 2);
//! assert_eq!(table.lines()[1].target, Target::Zero(Zero));
//! assert_eq!(table.to_string(), text);
//! table.validate().unwrap();
//!
//! let mut built = Table::new();
//! built.append(Sectors(2048), Linear::new(DevRef::num(8, 16), Sectors(0))).unwrap();
//! built.append(Sectors(1024), Zero).unwrap();
//! assert_eq!(built, table);
//!
//! // What a DeviceMapper load needs per target:
//! let (start, length, ty, params) = table.lines()[0].to_raw();
//! assert_eq!((start.0, length.0, ty, params.as_str()), (0, 2048, "linear", "8:16 0"));
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use crate::targets::text::{clip, is_space, parse_dec};
use std::borrow::Cow;

use crate::kernel::reply::RawTarget;
use crate::targets::{
    ParseError, ResolveError, Striped, Target, TargetNameError, ThinPool, check_target_name,
};
use crate::units::Sectors;

mod status;
pub use status::{StatusLine, hide_keys};

#[cfg(test)]
mod tests;

/// Longest target type name the kernel accepts (`DM_MAX_TYPE_NAME` is 16 bytes with NUL).
pub const MAX_TARGET_TYPE_LEN: usize = dm_sys::DM_MAX_TYPE_NAME - 1;

/// Largest end sector of a table: the kernel refuses targets ending beyond
/// `LLONG_MAX >> SECTOR_SHIFT` ("Too large device").
pub const MAX_TABLE_SECTORS: u64 = (i64::MAX as u64) >> 9;

/// One target of a table: `length` sectors from `start`, mapped by `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableLine {
    /// First sector of the mapped device covered by this target.
    pub start: Sectors,
    /// Number of sectors covered.
    pub length: Sectors,
    /// The target and its params.
    pub target: Target,
}

/// A device-mapper table: targets in order, contiguous from sector 0 once validated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Table {
    lines: Vec<TableLine>,
}

/// An error in table text, or a table the kernel would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("table line {line}, column {column}: {kind}")]
pub struct TableError {
    /// 1-based line number (in the text read, or the target's index + 1).
    pub line: usize,
    /// 1-based byte column of the offending field (for a table not read from text,
    /// the column it has in the `Display` form).
    pub column: usize,
    /// What is wrong.
    pub kind: TableErrorKind,
}

/// What is wrong with a table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableErrorKind {
    /// The line ended before this field.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A start or length that is not a decimal number.
    #[error("invalid {field} {token:?}, expected a decimal number of sectors")]
    InvalidNumber {
        /// `start` or `length`.
        field: &'static str,
        /// The text found (clipped).
        token: String,
    },
    /// A single table line contains a line break.
    #[error("a table line cannot contain a line break")]
    LineBreak,
    /// The target's params do not parse.
    #[error(transparent)]
    Target(ParseError),
    /// The target type name is unusable in table text.
    #[error(transparent)]
    TargetName(TargetNameError),
    /// The table has no targets.
    #[error("the table has no targets")]
    Empty,
    /// A target does not start where the previous one ended (or at 0).
    #[error(
        "target starts at sector {found}, expected {expected}: targets must be contiguous from sector 0"
    )]
    NotContiguous {
        /// Where it should start.
        expected: Sectors,
        /// Where it starts.
        found: Sectors,
    },
    /// A target of length 0.
    #[error("zero-length target")]
    ZeroLength,
    /// `start + length` overflows or passes [`MAX_TABLE_SECTORS`].
    #[error("target ends beyond sector {max}", max = MAX_TABLE_SECTORS)]
    TooLarge,
    /// A target type name longer than [`MAX_TARGET_TYPE_LEN`] bytes.
    #[error("target type {name:?} is {len} bytes long, the kernel allows at most {max}", max = MAX_TARGET_TYPE_LEN)]
    TargetTypeTooLong {
        /// The name (clipped).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Params with a NUL byte (the ioctl passes them as a C string).
    #[error("params contain a NUL byte at byte {offset}")]
    ParamsNul {
        /// Byte offset in the params.
        offset: usize,
    },
    /// Params with a line break (they would not survive the text form).
    #[error("params contain a line break at byte {offset}")]
    ParamsLineBreak {
        /// Byte offset in the params.
        offset: usize,
    },
    /// A striped target whose length does not split into whole chunks per stripe.
    #[error("striped length {length} is not a multiple of {stripes} stripes x chunk size {chunk}")]
    StripedLength {
        /// Target length.
        length: Sectors,
        /// Stripe count.
        stripes: usize,
        /// Chunk size.
        chunk: Sectors,
    },
    /// A `thin-pool` that is not the only target of its table.
    #[error("a thin-pool target must be the only target of its table")]
    NotAlone,
}

/// 1-based columns of the length, target type and params fields in the `Display` form.
fn display_columns(start: Sectors, length: Sectors, target_type: &str) -> (usize, usize, usize) {
    let c_len = start.to_string().len() + 2;
    let c_type = c_len + length.to_string().len() + 1;
    (c_len, c_type, c_type + target_type.len() + 1)
}

impl TableLine {
    /// A line mapping `length` sectors from `start` to `target`.
    pub fn new(start: Sectors, length: Sectors, target: impl Into<Target>) -> Self {
        Self {
            start,
            length,
            target: target.into(),
        }
    }

    /// Build a line from the four values the kernel returns per target (`DM_TABLE_STATUS`
    /// with the table flag). Known target types must parse; see
    /// [`TableLine::from_raw_lenient`] for tables read back from the kernel.
    pub fn from_raw(
        start: Sectors,
        length: Sectors,
        target_type: &str,
        params: &str,
    ) -> Result<Self, TableError> {
        let (_, c_type, c_params) = display_columns(start, length, target_type);
        check_target_name(target_type).map_err(|e| TableError {
            line: 1,
            column: c_type,
            kind: TableErrorKind::TargetName(e),
        })?;
        let target = Target::parse(target_type, params).map_err(|e| TableError {
            line: 1,
            column: c_params + e.offset,
            kind: TableErrorKind::Target(e),
        })?;
        Ok(Self {
            start,
            length,
            target,
        })
    }

    /// Like [`TableLine::from_raw`], but keep params of a known type that do not parse as
    /// [`Target::Opaque`] (see [`Target::parse_or_opaque`]).
    pub fn from_raw_lenient(
        start: Sectors,
        length: Sectors,
        target_type: &str,
        params: &str,
    ) -> Result<Self, TableError> {
        let (_, c_type, _) = display_columns(start, length, target_type);
        let target = Target::parse_or_opaque(target_type, params).map_err(|e| TableError {
            line: 1,
            column: c_type,
            kind: TableErrorKind::TargetName(e),
        })?;
        Ok(Self {
            start,
            length,
            target,
        })
    }

    /// The four values a table load passes per target: start, length, target type,
    /// params.
    pub fn to_raw(&self) -> (Sectors, Sectors, &str, String) {
        (
            self.start,
            self.length,
            self.target.target_type(),
            self.target.params(),
        )
    }

    /// The first sector after this target, or `None` on overflow.
    pub fn end(&self) -> Option<Sectors> {
        self.start.checked_add(self.length)
    }

    /// Parse one line, reporting errors as line `line`.
    fn parse_line(text: &str, line: usize) -> Result<Self, TableError> {
        let err = |column: usize, kind| TableError { line, column, kind };
        if let Some(pos) = text.find('\n') {
            return Err(err(pos + 1, TableErrorKind::LineBreak));
        }
        let bytes = text.as_bytes();
        let mut pos = 0;
        // Next whitespace-separated field: (column, text).
        let mut field = |name: &'static str| {
            while bytes.get(pos).is_some_and(|&b| is_space(b)) {
                pos += 1;
            }
            let begin = pos;
            while bytes.get(pos).is_some_and(|&b| !is_space(b)) {
                pos += 1;
            }
            match text.get(begin..pos) {
                Some(tok) if !tok.is_empty() => Ok((begin + 1, tok)),
                _ => Err(err(text.len() + 1, TableErrorKind::Missing(name))),
            }
        };
        let number = |(col, tok): (usize, &str), name| {
            parse_dec(tok).map(Sectors).ok_or_else(|| {
                err(
                    col,
                    TableErrorKind::InvalidNumber {
                        field: name,
                        token: clip(tok),
                    },
                )
            })
        };
        let start = number(field("start")?, "start")?;
        let length = number(field("length")?, "length")?;
        let (c_type, target_type) = field("target type")?;
        while bytes.get(pos).is_some_and(|&b| is_space(b)) {
            pos += 1;
        }
        let params = text.get(pos..).unwrap_or("");
        check_target_name(target_type).map_err(|e| err(c_type, TableErrorKind::TargetName(e)))?;
        let target = Target::parse(target_type, params)
            .map_err(|e| err(pos + 1 + e.offset, TableErrorKind::Target(e)))?;
        Ok(Self {
            start,
            length,
            target,
        })
    }
}

/// One target as the validator sees it: the four values a load passes, and the typed
/// target when there is one (always for a [`Table`], when the params parse for raw lines).
struct Check<'a> {
    start: Sectors,
    length: Sectors,
    target_type: &'a str,
    params: Cow<'a, str>,
    typed: Option<Cow<'a, Target>>,
}

impl<'a> Check<'a> {
    fn typed(l: &'a TableLine) -> Self {
        Self {
            start: l.start,
            length: l.length,
            target_type: l.target.target_type(),
            params: Cow::Owned(l.target.params()),
            typed: Some(Cow::Borrowed(&l.target)),
        }
    }

    fn raw(start: Sectors, length: Sectors, target_type: &'a str, params: &'a str) -> Self {
        Self {
            start,
            length,
            target_type,
            params: Cow::Borrowed(params),
            typed: Target::parse(target_type, params).ok().map(Cow::Owned),
        }
    }

    /// Check this line on its own: what the kernel checks per target when loading.
    fn alone(&self, line: usize) -> Result<(), TableError> {
        let ty = self.target_type;
        let (c_len, c_type, c_params) = display_columns(self.start, self.length, ty);
        let err = |column, kind| TableError { line, column, kind };
        if self.length.0 == 0 {
            return Err(err(c_len, TableErrorKind::ZeroLength));
        }
        match self.start.checked_add(self.length) {
            Some(end) if end.0 <= MAX_TABLE_SECTORS => {}
            _ => return Err(err(c_len, TableErrorKind::TooLarge)),
        }
        check_target_name(ty).map_err(|e| err(c_type, TableErrorKind::TargetName(e)))?;
        if ty.len() > MAX_TARGET_TYPE_LEN {
            return Err(err(
                c_type,
                TableErrorKind::TargetTypeTooLong {
                    name: clip(ty),
                    len: ty.len(),
                },
            ));
        }
        if let Some(offset) = self.params.bytes().position(|b| b == 0) {
            return Err(err(c_params + offset, TableErrorKind::ParamsNul { offset }));
        }
        if let Some(offset) = self.params.bytes().position(|b| b == b'\n') {
            return Err(err(
                c_params + offset,
                TableErrorKind::ParamsLineBreak { offset },
            ));
        }
        if let Some(Target::Striped(s)) = self.typed.as_deref() {
            check_striped_length(s, self.length).map_err(|kind| err(c_len, kind))?;
        }
        Ok(())
    }
}

/// The one table validator, behind [`Table::validate`] and [`validate_raw`].
fn validate_lines<'a>(lines: impl ExactSizeIterator<Item = Check<'a>>) -> Result<(), TableError> {
    let count = lines.len();
    if count == 0 {
        return Err(TableError {
            line: 1,
            column: 1,
            kind: TableErrorKind::Empty,
        });
    }
    let mut expected = Sectors::ZERO;
    for (i, l) in lines.enumerate() {
        let line = i + 1;
        if l.start != expected {
            return Err(TableError {
                line,
                column: 1,
                kind: TableErrorKind::NotContiguous {
                    expected,
                    found: l.start,
                },
            });
        }
        l.alone(line)?;
        if l.target_type == ThinPool::TARGET_TYPE && count != 1 {
            let (_, c_type, _) = display_columns(l.start, l.length, l.target_type);
            return Err(TableError {
                line,
                column: c_type,
                kind: TableErrorKind::NotAlone,
            });
        }
        // `alone` checked the end.
        expected = l.start.checked_add(l.length).unwrap_or(Sectors(u64::MAX));
    }
    Ok(())
}

/// [`Table::validate`] for the raw lines of [`DeviceMapper::load_raw`](crate::DeviceMapper::load_raw):
/// the same rules, with the typed checks (striped lengths) applied when the params parse.
///
/// ```
/// use devmapper::RawTarget;
/// use devmapper::table::{TableErrorKind, validate_raw};
/// use devmapper::units::Sectors;
/// let zero = |start, length| RawTarget {
///     start: Sectors(start), length: Sectors(length),
///     target_type: "zero".into(), params: String::new(),
/// };
/// validate_raw(&[zero(0, 8), zero(8, 8)]).unwrap();
/// let e = validate_raw(&[zero(0, 8), zero(9, 8)]).unwrap_err();
/// assert_eq!((e.line, &e.kind), (2, &TableErrorKind::NotContiguous { expected: Sectors(8), found: Sectors(9) }));
/// ```
///
/// # Errors
/// As [`Table::validate`].
pub fn validate_raw(targets: &[RawTarget]) -> Result<(), TableError> {
    validate_lines(
        targets
            .iter()
            .map(|t| Check::raw(t.start, t.length, &t.target_type, &t.params)),
    )
}

/// The kernel's `stripe_ctr` checks: length splits evenly over the stripes, and each
/// stripe's share into whole chunks.
fn check_striped_length(s: &Striped, length: Sectors) -> Result<(), TableErrorKind> {
    let bad = || TableErrorKind::StripedLength {
        length,
        stripes: s.stripes.len(),
        chunk: s.chunk_size,
    };
    let n = u64::try_from(s.stripes.len()).map_err(|_| bad())?;
    if n == 0
        || s.chunk_size.0 == 0
        || !length.0.is_multiple_of(n)
        || !(length.0 / n).is_multiple_of(s.chunk_size.0)
    {
        return Err(bad());
    }
    Ok(())
}

impl FromStr for TableLine {
    type Err = TableError;

    /// One `start length target params` line (without a line break).
    fn from_str(s: &str) -> Result<Self, TableError> {
        Self::parse_line(s, 1)
    }
}

impl fmt::Display for TableLine {
    /// `start length target params`, as `dmsetup table` prints one target (no newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start,
            self.length,
            self.target.target_type(),
            self.target.params_display()
        )
    }
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table of these lines, in order (not validated).
    pub fn from_lines(lines: Vec<TableLine>) -> Self {
        Self { lines }
    }

    /// The lines in order.
    pub fn lines(&self) -> &[TableLine] {
        &self.lines
    }

    /// The lines, by value.
    pub fn into_lines(self) -> Vec<TableLine> {
        self.lines
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True if the table has no targets.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Add a line as is.
    pub fn push(&mut self, line: TableLine) -> &mut Self {
        self.lines.push(line);
        self
    }

    /// Add a target of `length` sectors right after the last one.
    pub fn append(
        &mut self,
        length: Sectors,
        target: impl Into<Target>,
    ) -> Result<&mut Self, TableError> {
        let start = self
            .size()
            .ok_or_else(|| self.too_large(self.lines.len()))?;
        if start.checked_add(length).is_none() {
            return Err(self.too_large(self.lines.len() + 1));
        }
        self.lines.push(TableLine::new(start, length, target));
        Ok(self)
    }

    fn too_large(&self, line: usize) -> TableError {
        TableError {
            line,
            column: 1,
            kind: TableErrorKind::TooLarge,
        }
    }

    /// The end of the last target (the device size of a valid table), or `None` on
    /// overflow.
    pub fn size(&self) -> Option<Sectors> {
        match self.lines.last() {
            None => Some(Sectors::ZERO),
            Some(l) => l.end(),
        }
    }

    /// Check the table as the kernel will when it is loaded: at least one target,
    /// targets contiguous from sector 0, non-zero lengths, no end past
    /// [`MAX_TABLE_SECTORS`], target type names of 1 to 15 bytes, params without NUL or
    /// line breaks, striped lengths that divide into chunks, and a `thin-pool` alone in
    /// its table. Errors name the 1-based line (target index + 1) and the column of the
    /// field in the `Display` form.
    pub fn validate(&self) -> Result<(), TableError> {
        validate_lines(self.lines.iter().map(Check::typed))
    }

    /// The table as `dmsetup table NAME` prints it without `--showkeys`: like `Display`,
    /// with keys in the params blanked by [`hide_keys`].
    pub fn to_string_hiding_keys(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let ty = l.target.target_type();
            let params = l.target.params();
            out += &format!("{} {} {ty} {}\n", l.start, l.length, hide_keys(ty, &params));
        }
        out
    }

    /// This table with every device path replaced by `major:minor`, as the kernel will
    /// print it back (see [`Target::resolve_devices`]).
    pub fn resolve_devices(&self) -> Result<Table, ResolveError> {
        let lines = self
            .lines
            .iter()
            .map(|l| {
                Ok(TableLine {
                    start: l.start,
                    length: l.length,
                    target: l.target.resolve_devices()?,
                })
            })
            .collect::<Result<_, ResolveError>>()?;
        Ok(Table { lines })
    }
}

impl FromIterator<TableLine> for Table {
    fn from_iter<I: IntoIterator<Item = TableLine>>(iter: I) -> Self {
        Self {
            lines: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = &'a TableLine;
    type IntoIter = std::slice::Iter<'a, TableLine>;

    fn into_iter(self) -> Self::IntoIter {
        self.lines.iter()
    }
}

impl FromStr for Table {
    type Err = TableError;

    /// Lines separated by `\n`; blank lines and lines starting with `#` are skipped.
    /// The table is not validated.
    fn from_str(s: &str) -> Result<Self, TableError> {
        let mut lines = Vec::new();
        for (i, text) in s.split('\n').enumerate() {
            let first = text.bytes().find(|&b| !is_space(b));
            if matches!(first, None | Some(b'#')) {
                continue;
            }
            lines.push(TableLine::parse_line(text, i + 1)?);
        }
        Ok(Self { lines })
    }
}

impl fmt::Display for Table {
    /// Each line followed by `\n`, as `dmsetup table NAME` prints the table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}
