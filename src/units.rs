//! Units of size and position: [`Sectors`] (512-byte sectors) and [`Bytes`].
//!
//! The kernel speaks sectors; files and block devices speak bytes. Keeping them apart in
//! the type system means a byte count can never be loaded as a table length by accident.
//! Conversions are explicit and checked.
//!
//! ```
//! use devmapper::units::{Bytes, Sectors};
//! let len = Sectors(2048);
//! assert_eq!(len.to_bytes(), Some(Bytes(1 << 20)));
//! assert_eq!(Bytes(1 << 20).to_sectors_exact(), Some(Sectors(2048)));
//! assert_eq!(Bytes(1000).to_sectors_exact(), None);
//! ```
#![forbid(unsafe_code)]

use std::fmt;

/// Size of a device-mapper sector in bytes.
pub const SECTOR_SIZE: u64 = 512;

/// A count or position in 512-byte sectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sectors(pub u64);

/// A count or position in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl Sectors {
    /// Zero sectors.
    pub const ZERO: Sectors = Sectors(0);

    /// The same amount in bytes, or `None` on overflow.
    pub const fn to_bytes(self) -> Option<Bytes> {
        match self.0.checked_mul(SECTOR_SIZE) {
            Some(b) => Some(Bytes(b)),
            None => None,
        }
    }

    /// Checked addition.
    pub const fn checked_add(self, other: Sectors) -> Option<Sectors> {
        match self.0.checked_add(other.0) {
            Some(s) => Some(Sectors(s)),
            None => None,
        }
    }

    /// Checked subtraction.
    pub const fn checked_sub(self, other: Sectors) -> Option<Sectors> {
        match self.0.checked_sub(other.0) {
            Some(s) => Some(Sectors(s)),
            None => None,
        }
    }
}

impl Bytes {
    /// The number of whole sectors, or `None` if this is not a multiple of 512.
    pub const fn to_sectors_exact(self) -> Option<Sectors> {
        if self.0.is_multiple_of(SECTOR_SIZE) {
            Some(Sectors(self.0 / SECTOR_SIZE))
        } else {
            None
        }
    }

    /// The number of whole sectors, rounding down.
    pub const fn to_sectors_floor(self) -> Sectors {
        Sectors(self.0 / SECTOR_SIZE)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parse a human size such as `4k`, `64K`, `512KiB`, `1M`, `8s` (sectors) or `4096` (bytes).
///
/// Suffixes are binary (`k` = 1024). A trailing `s` means 512-byte sectors.
///
/// ```
/// use devmapper::units::{parse_size, Bytes};
/// assert_eq!(parse_size("4k"), Some(Bytes(4096)));
/// assert_eq!(parse_size("8s"), Some(Bytes(4096)));
/// assert_eq!(parse_size("1MiB"), Some(Bytes(1 << 20)));
/// assert_eq!(parse_size("x"), None);
/// ```
pub fn parse_size(s: &str) -> Option<Bytes> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "s" => SECTOR_SIZE,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).map(Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Sectors(u64::MAX).to_bytes(), None);
        assert_eq!(Sectors(3).to_bytes(), Some(Bytes(1536)));
        assert_eq!(Bytes(1537).to_sectors_floor(), Sectors(3));
        assert_eq!(Bytes(1537).to_sectors_exact(), None);
        assert_eq!(Sectors(1).checked_sub(Sectors(2)), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Some(Bytes(512 << 10)));
        assert_eq!(parse_size("18446744073709551615t"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("k"), None);
    }
}
