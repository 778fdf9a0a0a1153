//! Status lines: one target's status as `dmsetup status` prints it, and the hiding of
//! secrets in table text.

use std::borrow::Cow;
use std::fmt;

use super::{TableError, TableErrorKind, display_columns};
use crate::targets::TargetStatus;
use crate::units::Sectors;

/// One target's status: `length` sectors from `start`, and the typed status.
///
/// `Display` gives the line `dmsetup status` prints for the target (without the
/// newline): `start length type status`, with a space before an empty status.
///
/// ```
/// use devmapper::table::StatusLine;
/// use devmapper::units::Sectors;
/// let s = StatusLine::from_raw(Sectors(0), Sectors(2097152), "snapshot", "16/2097152 16").unwrap();
/// assert_eq!(s.to_string(), "0 2097152 snapshot 16/2097152 16");
/// let l = StatusLine::from_raw(Sectors(0), Sectors(8), "linear", "").unwrap();
/// assert_eq!(l.to_string(), "0 8 linear ");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusLine {
    /// First sector covered by the target.
    pub start: Sectors,
    /// Number of sectors covered.
    pub length: Sectors,
    /// The status.
    pub status: TargetStatus,
}

impl StatusLine {
    /// Build from the four values the kernel returns per target from `DM_TABLE_STATUS`.
    pub fn from_raw(
        start: Sectors,
        length: Sectors,
        target_type: &str,
        status: &str,
    ) -> Result<Self, TableError> {
        let (_, _, c_status) = display_columns(start, length, target_type);
        let status = TargetStatus::parse(target_type, status).map_err(|e| TableError {
            line: 1,
            column: c_status + e.offset,
            kind: TableErrorKind::Target(e),
        })?;
        Ok(Self {
            start,
            length,
            status,
        })
    }
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start,
            self.length,
            self.status.target_type(),
            self.status
        )
    }
}

/// Replace every byte from `from` up to the next space with `0`.
fn zero_word(bytes: &mut [u8], from: usize) {
    for b in bytes.iter_mut().skip(from).take_while(|b| **b != b' ') {
        *b = b'0';
    }
}

/// The params as `dmsetup table` shows them without `--showkeys`: the key of a `crypt`
/// target (its second word, unless it is a `:`-prefixed kernel keyring reference) and
/// the keys of an `integrity` target's `internal_hash:`, `journal_crypt:` and
/// `journal_mac:` options are overwritten with `0`s, byte for byte. Other params are
/// returned unchanged.
///
/// ```
/// use devmapper::table::hide_keys;
/// assert_eq!(hide_keys("crypt", "aes-xts-plain64 abcd12 0 8:0 0"), "aes-xts-plain64 000000 0 8:0 0");
/// assert_eq!(hide_keys("crypt", "aes-xts-plain64 :64:logon:k 0 8:0 0"), "aes-xts-plain64 :64:logon:k 0 8:0 0");
/// assert_eq!(hide_keys("integrity", "8:0 0 - J 1 internal_hash:hmac(sha256):beef"), "8:0 0 - J 1 internal_hash:hmac(sha256):0000");
/// assert_eq!(hide_keys("linear", "8:0 0"), "8:0 0");
/// ```
pub fn hide_keys<'a>(target_type: &str, params: &'a str) -> Cow<'a, str> {
    let mut bytes = params.as_bytes().to_vec();
    match target_type {
        "crypt" => {
            // The key is the word after the first space.
            if let Some(sp) = bytes.iter().position(|&b| b == b' ') {
                let key = sp + 1;
                if bytes.get(key).is_some_and(|&b| b != b':') {
                    zero_word(&mut bytes, key);
                }
            }
        }
        "integrity" => {
            for name in ["internal_hash:", "journal_crypt:", "journal_mac:"] {
                // strstr on the text as rewritten so far, like dmsetup.
                let Some(at) = bytes.windows(name.len()).position(|w| w == name.as_bytes()) else {
                    continue;
                };
                // After the algorithm, an optional ":key" runs to the next space.
                let after = at + name.len();
                let sep = bytes
                    .iter()
                    .skip(after)
                    .position(|&b| b == b' ' || b == b':')
                    .map(|p| after + p);
                if let Some(sep) = sep
                    && bytes.get(sep) == Some(&b':')
                {
                    zero_word(&mut bytes, sep + 1);
                }
            }
        }
        _ => return Cow::Borrowed(params),
    }
    // Only whole runs of bytes up to an ASCII space were replaced, so this is UTF-8.
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(params),
    }
}
