//! `zero`: reads return zeros, writes are discarded.
//!
//! No params and an empty status.
//!
//! ```
//! use devmapper::targets::{Target, Zero};
//! assert_eq!(Target::parse("zero", "").unwrap(), Target::Zero(Zero));
//! assert!(Target::parse("zero", "8:0 0").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::expect_empty;
use super::{ParseError, TextKind};

/// Parameters of a `zero` target (there are none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Zero;

impl Zero {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "zero";
}

impl FromStr for Zero {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        expect_empty(Self::TARGET_TYPE, TextKind::Params, params).map(|()| Zero)
    }
}

impl fmt::Display for Zero {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}
