//! Fixed-width integers out of on-disk byte buffers: the one bounds-checked reader every
//! on-disk format of the crate uses (COW header and table, dmsnap records, LVM labels and
//! metadata-area headers, the [`crate::probe`] signatures).
//!
//! Each function reads the field at byte `at` of `b` and fails with [`OutOfBounds`], which
//! says where the field was, when the buffer is too short: never a panic, never a silent 0.
//! A caller for which a short buffer means "not this format" turns the error into `None`
//! with `.ok()`; one for which it means corruption maps it into its own error with the
//! offset.
//!
//! ```
//! use devmapper::io::bytes::{self, OutOfBounds};
//! let b = [0x53, 0x6e, 0x41, 0x70, 0x00, 0x01];
//! assert_eq!(bytes::le_u32(&b, 0)?, 0x7041_6e53);
//! assert_eq!(bytes::be_u16(&b, 4)?, 1);
//! let err = bytes::le_u32(&b, 4).unwrap_err();
//! assert_eq!((err.offset, err.len, err.available), (4, 4, 6));
//! assert_eq!(err.to_string(), "a 4-byte field at byte 4 runs past the end of the data (6 bytes)");
//! # Ok::<(), OutOfBounds>(())
//! ```
//!
//! Byte order comes from `u*::from_le_bytes` / `from_be_bytes` of the standard library,
//! which compile to single loads.
#![forbid(unsafe_code)]

/// A field that does not fit in the buffer it is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {len}-byte field at byte {offset} runs past the end of the data ({available} bytes)")]
#[non_exhaustive]
pub struct OutOfBounds {
    /// Where the field starts, in bytes from the start of the buffer.
    pub offset: usize,
    /// The field's size in bytes.
    pub len: usize,
    /// The buffer's size in bytes.
    pub available: usize,
}

/// The `len` bytes at `at`.
///
/// # Errors
/// [`OutOfBounds`] when `at + len` is past the end of `b` (or overflows).
#[inline]
pub fn field(b: &[u8], at: usize, len: usize) -> Result<&[u8], OutOfBounds> {
    at.checked_add(len)
        .and_then(|end| b.get(at..end))
        .ok_or(OutOfBounds {
            offset: at,
            len,
            available: b.len(),
        })
}

/// The `N` bytes at `at`, as an array.
///
/// # Errors
/// [`OutOfBounds`] when they do not fit in `b`.
#[inline]
pub fn array<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], OutOfBounds> {
    let s = field(b, at, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

macro_rules! readers {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $conv:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// # Errors
        /// [`OutOfBounds`] when the field does not fit in `b`.
        #[inline]
        pub fn $name(b: &[u8], at: usize) -> Result<$ty, OutOfBounds> {
            array(b, at).map(<$ty>::$conv)
        }
    )*};
}

readers! {
    /// A little-endian `u16` at byte `at`.
    le_u16: u16 = from_le_bytes;
    /// A big-endian `u16` at byte `at`.
    be_u16: u16 = from_be_bytes;
    /// A little-endian `u32` at byte `at`.
    le_u32: u32 = from_le_bytes;
    /// A big-endian `u32` at byte `at`.
    be_u32: u32 = from_be_bytes;
    /// A little-endian `u64` at byte `at`.
    le_u64: u64 = from_le_bytes;
    /// A big-endian `u64` at byte `at`.
    be_u64: u64 = from_be_bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders() {
        let b: Vec<u8> = (1..=8).collect();
        assert_eq!(le_u16(&b, 0), Ok(0x0201));
        assert_eq!(be_u16(&b, 6), Ok(0x0708));
        assert_eq!(le_u32(&b, 4), Ok(0x0807_0605));
        assert_eq!(be_u32(&b, 0), Ok(0x0102_0304));
        assert_eq!(le_u64(&b, 0), Ok(0x0807_0605_0403_0201));
        assert_eq!(be_u64(&b, 0), Ok(0x0102_0304_0506_0708));
        assert_eq!(field(&b, 8, 0), Ok(&[][..]));
        assert_eq!(array::<3>(&b, 5), Ok([6, 7, 8]));
    }

    #[test]
    fn short_buffers_say_where() {
        let b = [0u8; 7];
        assert_eq!(
            le_u64(&b, 0),
            Err(OutOfBounds {
                offset: 0,
                len: 8,
                available: 7
            })
        );
        assert_eq!(
            be_u16(&b, 6),
            Err(OutOfBounds {
                offset: 6,
                len: 2,
                available: 7
            })
        );
        assert_eq!(le_u32(&[], 0).unwrap_err().available, 0);
        // An offset whose end overflows is out of bounds, not a panic.
        assert_eq!(
            field(&b, usize::MAX, 2),
            Err(OutOfBounds {
                offset: usize::MAX,
                len: 2,
                available: 7
            })
        );
        assert!(le_u32(&b, usize::MAX - 1).is_err_and(|e| e.offset == usize::MAX - 1));
    }
}
