//! Errors of the LVM2 reader, each with the context needed to find the fault: the byte
//! offset on the device, the line and column in the text, or the metadata path.
//!
//! ```
//! use devmapper::lvm::config;
//! let err = config::parse(b"vg {\n  id = }\n").unwrap_err();
//! assert_eq!((err.line, err.col), (2, 8));
//! assert!(err.to_string().contains("line 2, column 8"));
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

/// Any failure while reading LVM2 structures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the device or image failed.
    #[error("reading {what} at byte {offset}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Absolute byte offset of the read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No sector among 0-3 holds a valid LVM2 label.
    #[error("no LVM2 label in sectors 0-3")]
    NoLabel,
    /// A label was found (`LABELONE`, right sector, good CRC) but its PV header is malformed.
    #[error("PV label in sector {sector}: {reason}")]
    Label {
        /// The sector holding the label.
        sector: u64,
        /// What is wrong.
        reason: String,
    },
    /// A metadata area header or its text location is invalid.
    #[error("metadata area at byte {offset}: {reason}")]
    Mda {
        /// Absolute byte offset of the metadata area.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The metadata text does not parse.
    #[error("metadata text: {0}")]
    Parse(#[from] ParseError),
    /// The text parses but does not describe a valid VG (as lvm2's importer judges it).
    #[error("metadata {path}: {reason}")]
    Model {
        /// Where in the metadata, e.g. `vg0/logical_volumes/root/segment1`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Several PVs do not make a usable VG.
    #[error("VG {vg}: {reason}")]
    Scan {
        /// VG name (or id when the name is unknown).
        vg: String,
        /// What is wrong.
        reason: String,
    },
    /// An LV cannot be turned into device-mapper tables.
    #[error("LV {lv}: {reason}")]
    Plan {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        reason: String,
    },
    /// An LV cannot be exported.
    #[error("export of {lv}: {reason}")]
    Export {
        /// `vg/lv`.
        lv: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A text metadata syntax error, positioned like an editor would show it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col} (byte {offset}): {kind}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in bytes.
    pub col: u32,
    /// 0-based byte offset in the text.
    pub offset: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// The kinds of [`ParseError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A token other than the one the grammar needs here (libdm: "unexpected token").
    Unexpected {
        /// What the grammar needed.
        expected: &'static str,
    },
    /// `=` or `[` or `,` followed by something that is not a value.
    ExpectedValue,
    /// A key that is empty (`""`).
    EmptyKey,
    /// An integer outside the int64 range.
    IntRange,
    /// A float outside the double range.
    FloatRange,
    /// Sections nested deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An array longer than the limit.
    ArrayTooLong {
        /// The limit.
        limit: usize,
    },
    /// More text than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Unexpected { expected } => {
                write!(f, "unexpected token, expected {expected}")
            }
            ParseErrorKind::ExpectedValue => f.write_str("expected a value"),
            ParseErrorKind::EmptyKey => f.write_str("empty section identifier"),
            ParseErrorKind::IntRange => f.write_str("integer out of the int64 range"),
            ParseErrorKind::FloatRange => f.write_str("float out of range"),
            ParseErrorKind::TooDeep { limit } => write!(f, "sections nested deeper than {limit}"),
            ParseErrorKind::ArrayTooLong { limit } => write!(f, "array longer than {limit} items"),
            ParseErrorKind::TooLarge { limit } => write!(f, "text longer than {limit} bytes"),
        }
    }
}

/// Shorthand for a [`Error::Io`] mapper.
pub(crate) fn io_err(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        what,
        offset,
        source,
    }
}
