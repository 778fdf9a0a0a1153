//! Any other target: its type name and params kept as text, unchanged.
//!
//! ```
//! use devmapper::targets::{Opaque, Target};
//! let t = Target::parse("crypt", "aes-xts-plain64 :64:logon:k 0 8:0 0 1 allow_discards").unwrap();
//! let Target::Opaque(o) = &t else { panic!() };
//! assert_eq!(o.target_type(), "crypt");
//! assert_eq!(o.params(), "aes-xts-plain64 :64:logon:k 0 8:0 0 1 allow_discards");
//! assert!(Opaque::new("two words", "").is_err());
//! ```

use std::fmt;

use super::text::{clip, is_space};

/// A target this crate has no typed model for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Opaque {
    target_type: String,
    params: String,
}

/// Status text of a target this crate has no typed model for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpaqueStatus {
    target_type: String,
    status: String,
}

/// A target type name that cannot appear in table text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid target type name {name:?}: {reason}")]
pub struct TargetNameError {
    /// The rejected name (clipped).
    pub name: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Check that `name` is one word of text: non-empty, no whitespace, no control bytes.
///
/// The kernel's 15-byte limit is checked by [`Table::validate`](crate::table::Table::validate),
/// so that over-long names read from text can still be reported with their position.
pub fn check_target_name(name: &str) -> Result<(), TargetNameError> {
    let err = |reason| TargetNameError {
        name: clip(name),
        reason,
    };
    if name.is_empty() {
        return Err(err("empty"));
    }
    if name.bytes().any(|b| is_space(b) || b.is_ascii_control()) {
        return Err(err("contains whitespace or control characters"));
    }
    Ok(())
}

impl Opaque {
    /// A target of type `target_type` with `params` passed through unchanged.
    pub fn new(
        target_type: impl Into<String>,
        params: impl Into<String>,
    ) -> Result<Self, TargetNameError> {
        let target_type = target_type.into();
        check_target_name(&target_type)?;
        Ok(Self {
            target_type,
            params: params.into(),
        })
    }

    /// The target type name.
    pub fn target_type(&self) -> &str {
        &self.target_type
    }

    /// The params, exactly as given.
    pub fn params(&self) -> &str {
        &self.params
    }
}

impl fmt::Display for Opaque {
    /// The params, exactly as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.params)
    }
}

impl OpaqueStatus {
    /// The status text `status` of a target of type `target_type`.
    pub fn new(
        target_type: impl Into<String>,
        status: impl Into<String>,
    ) -> Result<Self, TargetNameError> {
        let target_type = target_type.into();
        check_target_name(&target_type)?;
        Ok(Self {
            target_type,
            status: status.into(),
        })
    }

    /// The target type name.
    pub fn target_type(&self) -> &str {
        &self.target_type
    }

    /// The status text, exactly as the kernel gave it.
    pub fn status(&self) -> &str {
        &self.status
    }
}

impl fmt::Display for OpaqueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status)
    }
}
