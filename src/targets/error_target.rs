//! `error`: every I/O fails.
//!
//! Params: none, or `<device> <offset>` like `linear` (used only to inherit the device's
//! limits and zone layout). The kernel prints **empty** params and status for this target
//! whatever was loaded, so a table read back from the kernel never shows the device.
//!
//! ```
//! use devmapper::targets::{DevRef, ErrorTarget, Target};
//! use devmapper::units::Sectors;
//! assert_eq!(Target::parse("error", "").unwrap(), Target::Error(ErrorTarget::default()));
//! let e: ErrorTarget = "8:0 0".parse().unwrap();
//! assert_eq!(e.backing, Some((DevRef::num(8, 0), Sectors(0))));
//! assert!("8:0".parse::<ErrorTarget>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::Tokens;
use super::{DevRef, ParseError, TextKind};
use crate::units::Sectors;

/// Parameters of an `error` target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ErrorTarget {
    /// The optional backing device and start sector.
    pub backing: Option<(DevRef, Sectors)>,
}

impl ErrorTarget {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "error";
}

impl FromStr for ErrorTarget {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        if t.peek().is_none() {
            return Ok(Self::default());
        }
        let device = t.dev_ref("device")?;
        let offset = t.sectors("offset")?;
        t.finish()?;
        Ok(Self {
            backing: Some((device, offset)),
        })
    }
}

impl fmt::Display for ErrorTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backing {
            Some((dev, off)) => write!(f, "{dev} {off}"),
            None => Ok(()),
        }
    }
}
