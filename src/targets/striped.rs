//! `striped`: spread chunks round-robin over several devices (RAID 0).
//!
//! Params `<#stripes> <chunk size> (<device> <offset>)...`; the kernel requires
//! `#stripes >= 1`, a non-zero chunk size (sectors, 32-bit) and exactly one device/offset
//! pair per stripe. Status (from `stripe_status`):
//! `<#stripes> <device>... 1 <health letters>`, one letter per stripe, `A` alive or `D`
//! when I/O errors were seen on that device. The `1` is the count of health words.
//!
//! ```
//! use devmapper::targets::{StripeHealth, Striped, StripedStatus};
//! let s: Striped = "2 128 8:16 0 8:32 0".parse().unwrap();
//! assert_eq!(s.stripes.len(), 2);
//! assert_eq!(s.to_string(), "2 128 8:16 0 8:32 0");
//! let st: StripedStatus = "2 8:16 8:32 1 AD".parse().unwrap();
//! assert_eq!(st.stripes[1].health, StripeHealth::Dead);
//! assert!(!st.all_alive());
//! assert_eq!(st.to_string(), "2 8:16 8:32 1 AD");
//! ```

use std::fmt;
use std::str::FromStr;

use super::text::Tokens;
use super::{DevRef, ParseError, ParseErrorReason, TextKind};
use crate::DevNum;
use crate::units::Sectors;

/// One leg of a striped target: a device and the first sector used on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stripe {
    /// The device.
    pub device: DevRef,
    /// First sector on `device`.
    pub offset: Sectors,
}

/// Parameters of a `striped` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Striped {
    /// Chunk size in sectors (non-zero, fits in 32 bits).
    pub chunk_size: Sectors,
    /// The legs, in order; their number is the stripe count written into the table.
    pub stripes: Vec<Stripe>,
}

/// Health of one stripe as reported in the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StripeHealth {
    /// `A`: no I/O errors seen.
    Alive,
    /// `D`: I/O errors were seen on this device.
    Dead,
}

/// One stripe in a status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StripeState {
    /// The device, as the kernel prints it.
    pub device: DevNum,
    /// Its health.
    pub health: StripeHealth,
}

/// Status of a `striped` target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StripedStatus {
    /// Every stripe in table order (never empty when parsed).
    pub stripes: Vec<StripeState>,
}

impl Striped {
    /// The kernel's name for this target type.
    pub const TARGET_TYPE: &'static str = "striped";
}

impl StripedStatus {
    /// True if no stripe reported errors.
    pub fn all_alive(&self) -> bool {
        self.stripes.iter().all(|s| s.health == StripeHealth::Alive)
    }
}

impl StripeHealth {
    /// The kernel's letter.
    pub const fn letter(self) -> char {
        match self {
            StripeHealth::Alive => 'A',
            StripeHealth::Dead => 'D',
        }
    }
}

impl FromStr for Striped {
    type Err = ParseError;

    fn from_str(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Self::TARGET_TYPE, TextKind::Params, params);
        let (count_off, count_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let count = t.u32("stripe count")?;
        if count == 0 {
            return Err(t.invalid(count_off, "stripe count", count_tok, "at least 1"));
        }
        let (chunk_off, chunk_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let chunk = t.u32("chunk size")?;
        if chunk == 0 {
            return Err(t.invalid(chunk_off, "chunk size", chunk_tok, "a non-zero chunk size"));
        }
        // Grow with the input, not with the claimed count.
        let mut stripes = Vec::new();
        for _ in 0..count {
            let device = t.dev_ref("stripe device")?;
            let offset = t.sectors("stripe offset")?;
            stripes.push(Stripe { device, offset });
        }
        t.finish()?;
        Ok(Self {
            chunk_size: Sectors(u64::from(chunk)),
            stripes,
        })
    }
}

impl fmt::Display for Striped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.stripes.len(), self.chunk_size)?;
        for s in &self.stripes {
            write!(f, " {} {}", s.device, s.offset)?;
        }
        Ok(())
    }
}

impl FromStr for StripedStatus {
    type Err = ParseError;

    fn from_str(status: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(Striped::TARGET_TYPE, TextKind::Status, status);
        let (count_off, count_tok) = t.peek().unwrap_or((t.end_offset(), ""));
        let count = t.u32("stripe count")?;
        if count == 0 {
            return Err(t.invalid(count_off, "stripe count", count_tok, "at least 1"));
        }
        let mut devices = Vec::new();
        for _ in 0..count {
            devices.push(t.dev_num("stripe device")?);
        }
        t.literal("health word count", "1")?;
        let (off, letters) = t.field("health letters")?;
        if letters.len() != devices.len() {
            return Err(t.error(
                off,
                ParseErrorReason::Invalid {
                    field: "health letters",
                    token: super::text::clip(letters),
                    expected: "one letter per stripe",
                },
            ));
        }
        let mut stripes = Vec::with_capacity(devices.len());
        for (device, b) in devices.into_iter().zip(letters.bytes()) {
            let health = match b {
                b'A' => StripeHealth::Alive,
                b'D' => StripeHealth::Dead,
                _ => return Err(t.invalid(off, "health letters", letters, "only A or D")),
            };
            stripes.push(StripeState { device, health });
        }
        t.finish()?;
        Ok(Self { stripes })
    }
}

impl fmt::Display for StripedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.stripes.len())?;
        for s in &self.stripes {
            write!(f, "{} ", s.device)?;
        }
        f.write_str("1 ")?;
        for s in &self.stripes {
            write!(f, "{}", s.health.letter())?;
        }
        Ok(())
    }
}
