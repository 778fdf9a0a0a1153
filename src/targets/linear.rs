//! `linear`: map a range of another device.
//!
//! Params `<device> <offset>` (offset in sectors). The status is empty.
//!
//! ```
//! use devmapper::targets::{DevRef, Linear, Target};
//! use devmapper::units::Sectors;
//! let l: Linear = "8:16 2048".parse().unwrap();
//! assert_eq!(l, Linear { device: DevRef::num(8, 16), offset: Sectors(2048) });
//! assert_eq!(l.to_string(), "8:16 2048");
//! let t = Target::parse("linear", "8:16 2048").unwrap();
//! assert_eq!(t, Target::Linear(l));
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::Tokens;
use super::{DevRef, ParseError, TextKind};
use crate::units::Sectors;

/// Parameters of a `linear` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Linear {
    /// The device mapped to.
    pub device: DevRef,
    /// First sector on `device`.
    pub offset: Sectors,
}

impl Linear {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "linear";

    /// Map to `device` starting at `offset`.
    pub fn new(device: impl Into<DevRef>, offset: Sectors) -> Self {
        Self {
            device: device.into(),
            offset,
        }
    }
}

impl FromStr for Linear {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        let device = t.dev_ref("device")?;
        let offset = t.sectors("offset")?;
        t.finish()?;
        Ok(Self { device, offset })
    }
}

impl fmt::Display for Linear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.device, self.offset)
    }
}
