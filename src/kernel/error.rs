//! [`Error`]: what can go wrong talking to the kernel, with enough context to act on.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::DevNum;
use crate::kernel::command::{Command, Version};
use crate::kernel::id::IdError;

/// A raw `errno` value. A newtype rather than an enum, so values this crate does not know
/// stay representable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `EBUSY`.
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    /// `ENXIO`: no such device.
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    /// `EINVAL`.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// `EACCES`.
    pub const EACCES: Errno = Errno(libc::EACCES);
    /// `EPERM`.
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// `ENOENT`.
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// `EINTR`.
    pub const EINTR: Errno = Errno(libc::EINTR);
    /// `ENOTTY`: the control node does not know the command.
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);

    /// The symbolic name (`EBUSY`), or the number.
    pub fn name(self) -> String {
        let n = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ENOTTY => "ENOTTY",
            libc::ENOSPC => "ENOSPC",
            libc::EROFS => "EROFS",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            _ => return format!("errno {}", self.0),
        };
        n.to_owned()
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            io::Error::from_raw_os_error(self.0),
            self.name()
        )
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

/// Everything the kernel-facing part of the crate can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused a command.
    #[error("{cmd} on {} failed: {errno}{}", device.as_deref().unwrap_or("the control node"), hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Ioctl {
        /// The command.
        cmd: Command,
        /// The device it addressed, if any.
        device: Option<String>,
        /// The kernel's error.
        errno: Errno,
        /// What a person can do about it, when known.
        hint: Option<String>,
    },
    /// A name or uuid was refused before any call was made.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// An argument was refused before any call was made.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The kernel's reply did not make sense; nothing was trusted from it.
    #[error("{cmd}: malformed kernel reply at byte {offset}: {reason}")]
    BadReply {
        /// The command.
        cmd: Command,
        /// Byte offset in the reply buffer.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The reply would need a buffer larger than the cap.
    #[error("{cmd}: reply larger than the {cap}-byte buffer cap")]
    ReplyTooLarge {
        /// The command.
        cmd: Command,
        /// The cap in bytes.
        cap: usize,
    },
    /// The running kernel's interface is too old for the command.
    #[error("{cmd} needs device-mapper interface {needed} but the kernel has {kernel}")]
    Unsupported {
        /// The command.
        cmd: Command,
        /// The version the command needs.
        needed: Version,
        /// The kernel's version.
        kernel: Version,
    },
    /// Device-mapper cannot be used on this machine: the kernel has no driver, or its
    /// control node is missing or unusable. The message says what to do.
    ///
    /// ```no_run
    /// use devmapper::{DeviceMapper, Error, kernel::error::DmUnavailable};
    /// match DeviceMapper::new() {
    ///     Ok(dm) => println!("device-mapper interface {}", dm.kernel_version()),
    ///     Err(Error::NoDeviceMapper { reason: DmUnavailable::NoDriver }) => {
    ///         println!("no device-mapper in this kernel; snapshots are unavailable");
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    #[error("{reason}")]
    NoDeviceMapper {
        /// Why, and so what to do.
        reason: DmUnavailable,
    },
    /// A table that is malformed or that the kernel would refuse, or kernel text that
    /// does not parse as the typed target.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// An I/O error on a path (control node, `/dev/mapper` nodes, sysfs).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The suspend guardian (see [`crate::SuspendGuard`]) could not be started.
    #[error("could not {what}: {errno}")]
    Guardian {
        /// What failed.
        what: &'static str,
        /// The system error.
        errno: Errno,
    },
}

/// Why device-mapper cannot be used here (in [`Error::NoDeviceMapper`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DmUnavailable {
    /// The running kernel has no device-mapper driver: the `dm_mod` module is not loaded
    /// (or the kernel was built without `CONFIG_BLK_DEV_DM`).
    NoDriver,
    /// The control node is missing or does not open, and was not (re)created.
    ControlNode {
        /// The control node's path (normally `/dev/mapper/control`).
        path: PathBuf,
        /// The driver's device number, when the kernel says it (for `mknod`).
        dev: Option<DevNum>,
        /// What is wrong with the node.
        problem: String,
    },
    /// The kernel's device-mapper ioctl interface is not major version 4.
    Interface(Version),
}

impl fmt::Display for DmUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmUnavailable::NoDriver => write!(
                f,
                "this kernel has no device-mapper: load it with `modprobe dm_mod` (or boot a \
                 kernel built with CONFIG_BLK_DEV_DM)"
            ),
            DmUnavailable::ControlNode {
                path,
                dev: Some(dev),
                problem,
            } => write!(
                f,
                "the kernel has device-mapper but its control node {} {problem}: create it \
                 with `mknod -m 600 {} c {} {}` (or `dmsetup mknodes`)",
                path.display(),
                path.display(),
                dev.major,
                dev.minor
            ),
            DmUnavailable::ControlNode {
                path,
                dev: None,
                problem,
            } => write!(
                f,
                "the device-mapper control node {} {problem}: load device-mapper with \
                 `modprobe dm_mod`, then create the node with `dmsetup mknodes`",
                path.display()
            ),
            DmUnavailable::Interface(v) => write!(
                f,
                "the kernel's device-mapper ioctl interface is version {v}; only version 4 \
                 is supported"
            ),
        }
    }
}

impl Error {
    /// The kernel's errno, when the kernel refused a command.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Ioctl { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// `true` when the device does not exist (`ENXIO`).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::ENXIO)
    }

    /// `true` when the device is busy (`EBUSY`).
    pub fn is_busy(&self) -> bool {
        self.errno() == Some(Errno::EBUSY)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate's kernel-facing calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
