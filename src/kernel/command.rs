//! [`Command`]: the device-mapper control commands, with what each needs from the kernel.
//!
//! ```
//! use devmapper::Command;
//! assert_eq!(Command::TargetMsg.name(), "DM_TARGET_MSG");
//! assert_eq!(Command::TargetMsg.min_version().to_string(), "4.2.0");
//! assert_eq!(Command::ALL.len(), 18);
//! ```
#![forbid(unsafe_code)]

use std::fmt;

/// An interface version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Major (always 4 for the current interface).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One device-mapper control-node command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// `DM_VERSION`.
    Version,
    /// `DM_REMOVE_ALL`.
    RemoveAll,
    /// `DM_LIST_DEVICES`.
    ListDevices,
    /// `DM_DEV_CREATE`.
    DevCreate,
    /// `DM_DEV_REMOVE`.
    DevRemove,
    /// `DM_DEV_RENAME`.
    DevRename,
    /// `DM_DEV_SUSPEND` (suspend and resume).
    DevSuspend,
    /// `DM_DEV_STATUS` (device info).
    DevStatus,
    /// `DM_DEV_WAIT`.
    DevWait,
    /// `DM_TABLE_LOAD`.
    TableLoad,
    /// `DM_TABLE_CLEAR`.
    TableClear,
    /// `DM_TABLE_DEPS`.
    TableDeps,
    /// `DM_TABLE_STATUS` (status, or table with `DM_STATUS_TABLE_FLAG`).
    TableStatus,
    /// `DM_LIST_VERSIONS`.
    ListVersions,
    /// `DM_TARGET_MSG`.
    TargetMsg,
    /// `DM_DEV_SET_GEOMETRY`.
    DevSetGeometry,
    /// `DM_DEV_ARM_POLL`.
    DevArmPoll,
    /// `DM_GET_TARGET_VERSION`.
    GetTargetVersion,
}

impl Command {
    /// Every command, in command-number order.
    pub const ALL: [Command; dm_sys::DM_COMMAND_COUNT] = [
        Command::Version,
        Command::RemoveAll,
        Command::ListDevices,
        Command::DevCreate,
        Command::DevRemove,
        Command::DevRename,
        Command::DevSuspend,
        Command::DevStatus,
        Command::DevWait,
        Command::TableLoad,
        Command::TableClear,
        Command::TableDeps,
        Command::TableStatus,
        Command::ListVersions,
        Command::TargetMsg,
        Command::DevSetGeometry,
        Command::DevArmPoll,
        Command::GetTargetVersion,
    ];

    /// The command number (`DM_*_CMD`).
    pub const fn nr(self) -> u8 {
        self as u8
    }

    /// The ioctl request code.
    pub const fn request_code(self) -> u32 {
        dm_sys::request_code(self.nr())
    }

    /// The C name of the command, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Version => "DM_VERSION",
            Command::RemoveAll => "DM_REMOVE_ALL",
            Command::ListDevices => "DM_LIST_DEVICES",
            Command::DevCreate => "DM_DEV_CREATE",
            Command::DevRemove => "DM_DEV_REMOVE",
            Command::DevRename => "DM_DEV_RENAME",
            Command::DevSuspend => "DM_DEV_SUSPEND",
            Command::DevStatus => "DM_DEV_STATUS",
            Command::DevWait => "DM_DEV_WAIT",
            Command::TableLoad => "DM_TABLE_LOAD",
            Command::TableClear => "DM_TABLE_CLEAR",
            Command::TableDeps => "DM_TABLE_DEPS",
            Command::TableStatus => "DM_TABLE_STATUS",
            Command::ListVersions => "DM_LIST_VERSIONS",
            Command::TargetMsg => "DM_TARGET_MSG",
            Command::DevSetGeometry => "DM_DEV_SET_GEOMETRY",
            Command::DevArmPoll => "DM_DEV_ARM_POLL",
            Command::GetTargetVersion => "DM_GET_TARGET_VERSION",
        }
    }

    /// The oldest interface version that has this command; it is what we send, as
    /// libdevmapper does, so that old kernels accept the call.
    pub const fn min_version(self) -> Version {
        match self {
            Command::ListVersions => Version::new(4, 1, 0),
            Command::TargetMsg => Version::new(4, 2, 0),
            Command::DevSetGeometry => Version::new(4, 6, 0),
            Command::DevArmPoll => Version::new(4, 36, 0),
            Command::GetTargetVersion => Version::new(4, 41, 0),
            _ => Version::new(4, 0, 0),
        }
    }

    /// Whether a reply can be larger than the request, so that `DM_BUFFER_FULL_FLAG` means
    /// "retry with a larger buffer".
    pub const fn reply_can_grow(self) -> bool {
        matches!(
            self,
            Command::ListDevices
                | Command::ListVersions
                | Command::TableDeps
                | Command::TableStatus
                | Command::DevWait
                | Command::TargetMsg
                | Command::GetTargetVersion
        )
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_header() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.nr()), i);
            assert_eq!(c.request_code(), 0xc138_fd00 | i as u32);
        }
        assert_eq!(
            Command::GetTargetVersion.nr(),
            dm_sys::DM_GET_TARGET_VERSION_CMD
        );
        assert_eq!(Command::DevArmPoll.nr(), dm_sys::DM_DEV_ARM_POLL_CMD);
    }
}
