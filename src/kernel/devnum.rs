//! [`DevNum`]: a block device number (`major:minor`) with the kernel's full encodings.
//!
//! ```
//! use devmapper::DevNum;
//! let d: DevNum = "253:300".parse().unwrap();
//! assert_eq!(d.to_string(), "253:300");
//! assert_eq!(DevNum::from_kernel_huge(d.to_kernel_huge()), d);
//! assert_eq!(DevNum::from_dev_t(d.to_dev_t()), d);
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// A device number as the kernel prints it: `major:minor`.
///
/// Majors are 12 bits and minors 20 bits in the kernel; the full 32-bit ranges of the
/// userspace `dev_t` encoding are kept, so no value is silently truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// A device number from its parts.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Decode the kernel's `huge_encode_dev` layout used in `dm_ioctl::dev`, name lists and
    /// deps: `(minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)`, which is also glibc's
    /// `makedev` layout for 32-bit majors below 4096.
    pub const fn from_kernel_huge(v: u64) -> Self {
        Self::from_dev_t(v)
    }

    /// Encode for `dm_ioctl::dev`.
    pub const fn to_kernel_huge(self) -> u64 {
        self.to_dev_t()
    }

    /// Decode a userspace `dev_t` (glibc `gnu_dev_major`/`gnu_dev_minor`).
    pub const fn from_dev_t(v: u64) -> Self {
        let major = ((v >> 8) & 0xfff) | ((v >> 32) & !0xfff);
        let minor = (v & 0xff) | ((v >> 12) & !0xff);
        Self {
            major: major as u32,
            minor: minor as u32,
        }
    }

    /// Encode as a userspace `dev_t` (glibc `gnu_dev_makedev`).
    pub const fn to_dev_t(self) -> u64 {
        let major = self.major as u64;
        let minor = self.minor as u64;
        ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Error parsing a `major:minor` string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device number {input:?}: expected MAJOR:MINOR with decimal numbers")]
pub struct ParseDevNumError {
    /// The text that failed to parse.
    pub input: String,
}

impl FromStr for DevNum {
    type Err = ParseDevNumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDevNumError {
            input: s.to_owned(),
        };
        let (maj, min) = s.split_once(':').ok_or_else(err)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(maj) || !digits(min) {
            return Err(err());
        }
        Ok(DevNum {
            major: maj.parse().map_err(|_| err())?,
            minor: min.parse().map_err(|_| err())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // makedev(253, 0) == 0xfd00; makedev(8, 16) == 0x810; minor 256 sets bit 20.
        assert_eq!(DevNum::new(253, 0).to_dev_t(), 0xfd00);
        assert_eq!(DevNum::new(8, 16).to_dev_t(), 0x810);
        assert_eq!(DevNum::new(253, 256).to_dev_t(), 0x10_fd00);
        assert_eq!(DevNum::from_dev_t(0x10_fd00), DevNum::new(253, 256));
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            ":",
            "1:",
            ":1",
            "a:b",
            "1:2:3",
            "-1:2",
            "1: 2",
            "99999999999:1",
        ] {
            assert!(bad.parse::<DevNum>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn dev_t_round_trip(major in any::<u32>(), minor in any::<u32>()) {
            let d = DevNum::new(major, minor);
            prop_assert_eq!(DevNum::from_dev_t(d.to_dev_t()), d);
            prop_assert_eq!(d.to_string().parse::<DevNum>().unwrap(), d);
        }
    }
}
