//! LVM2 identifiers: the 32-character PV, VG and LV ids.
//!
//! On disk (the PV label) an id is 32 bytes with no dashes; the text metadata writes it in
//! the dashed 6-4-4-4-4-4-6 form. lvm2 accepts the characters `[A-Za-z0-9!#]`
//! (`lib/uuid/uuid.c`, `id_valid`).
//!
//! ```
//! use devmapper::lvm::id::LvmId;
//! let id: LvmId = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse().unwrap();
//! assert_eq!(id.as_str(), "kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE");
//! assert_eq!(id.to_string(), "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE");
//! assert!("short".parse::<LvmId>().is_err());
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// Length of an id without dashes.
pub const ID_LEN: usize = 32;

/// The 62 characters lvm2 generates ids from (`_c` in lvm2's `lib/id/id.c`, without the
/// last two, `!` and `#`, which lvm2 leaves out "for LVM1 backwards compatibility" but
/// still accepts on read).
pub const GENERATE_ALPHABET: &[u8; 62] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A validated 32-character LVM2 id (stored without dashes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LvmId([u8; ID_LEN]);

/// Why a string is not an LVM2 id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not 32 characters once dashes are removed.
    #[error("an id has 32 characters without dashes, this one has {0}")]
    Length(usize),
    /// A character outside `[A-Za-z0-9!#]`.
    #[error("byte {0:#04x} is not allowed in an id")]
    Char(u8),
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'!' || c == b'#'
}

impl LvmId {
    /// An id from its 32 raw bytes (as stored in the PV label).
    pub fn from_raw(raw: &[u8]) -> Result<LvmId, IdError> {
        let arr: [u8; ID_LEN] = raw.try_into().map_err(|_| IdError::Length(raw.len()))?;
        if let Some(&c) = arr.iter().find(|c| !valid_char(**c)) {
            return Err(IdError::Char(c));
        }
        Ok(LvmId(arr))
    }

    /// A new random id, as lvm2's `id_create` makes one: 32 bytes from `/dev/urandom`,
    /// each mapped to `GENERATE_ALPHABET[byte % 62]` (the small modulo bias is lvm2's too).
    ///
    /// ```
    /// use devmapper::lvm::id::{GENERATE_ALPHABET, LvmId};
    /// let a = LvmId::generate()?;
    /// assert!(a.as_bytes().iter().all(|c| GENERATE_ALPHABET.contains(c)));
    /// assert_ne!(a, LvmId::generate()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn generate() -> std::io::Result<LvmId> {
        use std::io::Read;
        let mut raw = [0u8; ID_LEN];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
        Ok(LvmId::from_random_bytes(raw))
    }

    /// The id lvm2 makes from these 32 random bytes (the mapping of [`LvmId::generate`]).
    pub fn from_random_bytes(raw: [u8; ID_LEN]) -> LvmId {
        let len = GENERATE_ALPHABET.len();
        LvmId(raw.map(|b| GENERATE_ALPHABET[usize::from(b) % len]))
    }

    /// The 32 characters without dashes (the form used in dm uuids and the PV label).
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes pass `valid_char`, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl FromStr for LvmId {
    type Err = IdError;

    /// Parse the dashed or undashed form; like lvm2's `id_read_format`, dashes anywhere are
    /// ignored.
    fn from_str(s: &str) -> Result<LvmId, IdError> {
        let mut out = [0u8; ID_LEN];
        let mut n = 0usize;
        for &c in s.as_bytes() {
            if c == b'-' {
                continue;
            }
            if !valid_char(c) {
                return Err(IdError::Char(c));
            }
            if let Some(slot) = out.get_mut(n) {
                *slot = c;
            }
            n += 1;
        }
        if n != ID_LEN {
            return Err(IdError::Length(n));
        }
        Ok(LvmId(out))
    }
}

impl fmt::Display for LvmId {
    /// The dashed 6-4-4-4-4-4-6 form used by the text metadata and `pvs`/`lvs`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let mut start = 0;
        for (i, len) in [6usize, 4, 4, 4, 4, 4, 6].into_iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(s.get(start..start + len).unwrap_or_default())?;
            start += len;
        }
        Ok(())
    }
}

impl fmt::Debug for LvmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LvmId({self})")
    }
}
