//! Validated device identifiers: [`DmName`], [`DmUuid`] and [`DevId`].
//!
//! The kernel silently truncates names longer than 127 bytes and uuids longer than 128;
//! these types refuse them instead, along with everything the kernel rejects at create or
//! rename time (`/`, `control`, `.`, `..`) and characters that break `/dev/mapper` nodes or
//! log output (NUL and control characters).
//!
//! ```
//! use devmapper::{DmName, DmUuid};
//! assert!(DmName::new("vg0-root").is_ok());
//! assert!(DmName::new("a/b").is_err());
//! assert!(DmName::new("control").is_err());
//! assert!(DmName::new(&"x".repeat(128)).is_err());
//! assert!(DmUuid::new("LVM-abc").is_ok());
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use crate::DevNum;

/// Longest device name the kernel keeps (`DM_NAME_LEN - 1`).
pub const MAX_NAME_LEN: usize = dm_sys::DM_NAME_LEN - 1;
/// Longest uuid the kernel keeps (`DM_UUID_LEN - 1`).
pub const MAX_UUID_LEN: usize = dm_sys::DM_UUID_LEN - 1;

// The refusal messages below state the limits in words.
const _: () = assert!(MAX_NAME_LEN == 127 && MAX_UUID_LEN == 128);

/// Why a name or uuid was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device-mapper {kind} {value:?}: {reason}")]
pub struct IdError {
    /// `"name"` or `"uuid"`.
    pub kind: &'static str,
    /// The refused value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn check_common(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    let err = |reason| {
        Err(IdError {
            kind,
            value: s.to_owned(),
            reason,
        })
    };
    if s.is_empty() {
        return err("must not be empty");
    }
    if s.len() > max {
        return err(if kind == "name" {
            "longer than 127 bytes (the kernel would truncate it)"
        } else {
            "longer than 128 bytes (the kernel would truncate it)"
        });
    }
    if s.chars().any(|c| c.is_control()) {
        return err("contains NUL or a control character");
    }
    Ok(())
}

/// A device-mapper device name, valid for the kernel and for `/dev/mapper/<name>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmName(String);

impl DmName {
    /// Validate a name.
    ///
    /// # Errors
    /// Empty, longer than 127 bytes, containing `/`, NUL or a control character, or equal to
    /// `control`, `.` or `..`.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_common("name", s, MAX_NAME_LEN)?;
        let err = |reason| IdError {
            kind: "name",
            value: s.to_owned(),
            reason,
        };
        if s.contains('/') {
            return Err(err("contains '/'"));
        }
        if matches!(s, "control" | "." | "..") {
            return Err(err(
                "is reserved ('control', '.' and '..' are refused by the kernel)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A device-mapper uuid (any printable text up to 128 bytes; LVM uses `LVM-<vg><lv>`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmUuid(String);

impl DmUuid {
    /// Validate a uuid.
    ///
    /// # Errors
    /// Empty, longer than 128 bytes, or containing NUL or a control character.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_common("uuid", s, MAX_UUID_LEN)?;
        Ok(Self(s.to_owned()))
    }

    /// The uuid as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! str_like {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl TryFrom<&str> for $t {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}
str_like!(DmName);
str_like!(DmUuid);

/// How a command names an existing device: by name, by uuid or by device number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevId<'a> {
    /// By name.
    Name(&'a DmName),
    /// By uuid.
    Uuid(&'a DmUuid),
    /// By `major:minor`.
    Dev(DevNum),
}

impl<'a> From<&'a DmName> for DevId<'a> {
    fn from(n: &'a DmName) -> Self {
        DevId::Name(n)
    }
}

impl<'a> From<&'a DmUuid> for DevId<'a> {
    fn from(u: &'a DmUuid) -> Self {
        DevId::Uuid(u)
    }
}

impl From<DevNum> for DevId<'_> {
    fn from(d: DevNum) -> Self {
        DevId::Dev(d)
    }
}

impl fmt::Display for DevId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevId::Name(n) => write!(f, "{n}"),
            DevId::Uuid(u) => write!(f, "uuid {u}"),
            DevId::Dev(d) => write!(f, "device {d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(DmName::new(&"a".repeat(127)).is_ok());
        for bad in ["", ".", "..", "control", "a/b", "a\0b", "a\nb", "\u{7f}"] {
            assert!(DmName::new(bad).is_err(), "{bad:?}");
        }
        // Multi-byte characters count in bytes.
        assert!(DmName::new(&"é".repeat(64)).is_err());
        assert!(DmName::new("controller").is_ok());
    }

    #[test]
    fn uuids() {
        assert!(DmUuid::new(&"u".repeat(128)).is_ok());
        assert!(DmUuid::new(&"u".repeat(129)).is_err());
        assert!(DmUuid::new("a/b").is_ok());
        assert!(DmUuid::new("").is_err());
    }

    proptest! {
        #[test]
        fn accepted_names_fit_the_kernel(s in "\\PC{0,140}") {
            if let Ok(n) = DmName::new(&s) {
                prop_assert!(n.as_str().len() <= 127);
                prop_assert!(!n.as_str().contains('/'));
                prop_assert!(!n.as_str().bytes().any(|b| b == 0));
            }
        }
    }
}
