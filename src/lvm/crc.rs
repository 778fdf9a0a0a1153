//! lvm2's CRC-32 (`calc_crc` in lvm2's `lib/misc/crc.c`).
//!
//! It is the reflected CRC-32 of IEEE 802.3 (polynomial `0xEDB88320`) run **without** the
//! usual inversion before and after, and seeded with [`INITIAL_CRC`]. Three things on a PV are
//! checksummed this way: the label sector (bytes 20..512), each metadata area header (bytes
//! 4..512) and the metadata text. The CRC chains: `calc_crc(calc_crc(i, a), b)` equals
//! `calc_crc(i, a ‖ b)`, which is how a copy that wraps around the metadata ring is checked.
//!
//! ```
//! use devmapper::lvm::crc::{calc_crc, INITIAL_CRC};
//! assert_eq!(calc_crc(INITIAL_CRC, b"123456789"), 0x4991_cf02);
//! assert_eq!(calc_crc(INITIAL_CRC, b""), INITIAL_CRC);
//! let whole = calc_crc(INITIAL_CRC, b"abcdef");
//! assert_eq!(calc_crc(calc_crc(INITIAL_CRC, b"abc"), b"def"), whole);
//! ```
#![forbid(unsafe_code)]

/// The seed lvm2 uses for every checksum (`INITIAL_CRC` in `lib/misc/crc.h`).
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

/// lvm2's `calc_crc(initial, buf)`.
///
/// `crc32fast` computes the standard CRC, which inverts the register on entry and on exit;
/// inverting the seed going in and the result coming out cancels both, leaving lvm2's
/// plain table-driven register update (with crc32fast's SIMD speed).
pub fn calc_crc(initial: u32, buf: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!initial);
    h.update(buf);
    !h.finalize()
}
