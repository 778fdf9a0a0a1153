//! The values the kernel's replies carry, as the [`DeviceMapper`](crate::DeviceMapper) calls
//! return them: a device of the device list, a target line, a target type's version.
#![forbid(unsafe_code)]

use crate::DevNum;
use crate::kernel::command::Version;
use crate::units::Sectors;

/// One device of a `DM_LIST_DEVICES` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    /// Device name.
    pub name: String,
    /// Device number.
    pub dev: DevNum,
    /// Event number (kernels since about 4.14 report it).
    pub event_nr: Option<u32>,
    /// Uuid: `Some("")`-free; `None` when the device has none or the kernel did not say.
    pub uuid: Option<String>,
}

/// One target type of a `DM_LIST_VERSIONS` / `DM_GET_TARGET_VERSION` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVersion {
    /// Target type name.
    pub name: String,
    /// Its version.
    pub version: Version,
}

/// One target line as the kernel exchanges it: sectors, type name and parameter (or
/// status) text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawTarget {
    /// First sector.
    pub start: Sectors,
    /// Length in sectors.
    pub length: Sectors,
    /// Target type name (at most [`MAX_TARGET_TYPE_LEN`](crate::table::MAX_TARGET_TYPE_LEN) bytes).
    pub target_type: String,
    /// Parameters (table) or status text.
    pub params: String,
}
