//! [`DevRef`]: a device named in a table, by number or by path.

use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::text::is_space;
use crate::DevNum;

/// A device argument in a table: `major:minor`, or a path the kernel resolves itself.
///
/// The kernel accepts both when a table is loaded, but always prints `major:minor` back.
/// To compare a table you built with the one the kernel returns, resolve paths first with
/// [`DevRef::resolve`] (or [`Target::resolve_devices`](super::Target::resolve_devices)).
/// Resolution is never done implicitly, in particular not by `Display`.
///
/// ```
/// use devmapper::targets::DevRef;
/// use devmapper::DevNum;
/// let by_num: DevRef = "253:4".parse().unwrap();
/// assert_eq!(by_num, DevRef::Num(DevNum::new(253, 4)));
/// let by_path: DevRef = "/dev/loop0".parse().unwrap();
/// assert_eq!(by_path.to_string(), "/dev/loop0");
/// assert!(DevRef::path("/dev/with space").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DevRef {
    /// A device number, as the kernel prints it.
    Num(DevNum),
    /// A path to a block device node.
    Path(DevPath),
}

/// A path usable as a device argument in table text.
///
/// It is valid UTF-8, not empty, and contains no whitespace, NUL or backslash (the kernel
/// splits arguments on whitespace and treats `\` as an escape). It must not read as
/// `major:minor`, which the kernel would take as a device number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DevPath(String);

/// A path that cannot be written into a table as a device argument.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("device path {path:?} cannot be used in a table: {reason}")]
pub struct DevPathError {
    /// The rejected path (lossily converted to text).
    pub path: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Failure to turn a device path into the number the kernel would use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The path could not be inspected.
    #[error("cannot stat device {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is not a block device.
    #[error("{path} is not a block device")]
    NotBlockDevice {
        /// The path.
        path: PathBuf,
    },
}

impl DevPath {
    /// Validate `path` for use in table text.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, DevPathError> {
        let path = path.as_ref();
        let err = |reason| DevPathError {
            path: path.to_string_lossy().into_owned(),
            reason,
        };
        let s = path.to_str().ok_or_else(|| err("not valid UTF-8"))?;
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.bytes().any(|b| is_space(b) || b == 0 || b == b'\\') {
            return Err(err("contains whitespace, NUL or a backslash"));
        }
        if s.parse::<DevNum>().is_ok() {
            return Err(err("reads as MAJOR:MINOR"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The path as text, exactly as written into tables.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DevRef {
    /// A device by path; see [`DevPath`] for what is accepted.
    pub fn path(path: impl AsRef<Path>) -> Result<Self, DevPathError> {
        DevPath::new(path).map(DevRef::Path)
    }

    /// A device by number.
    pub const fn num(major: u32, minor: u32) -> Self {
        DevRef::Num(DevNum::new(major, minor))
    }

    /// The device number if this is already one.
    pub const fn as_num(&self) -> Option<DevNum> {
        match self {
            DevRef::Num(n) => Some(*n),
            DevRef::Path(_) => None,
        }
    }

    /// The device number the kernel would print for this device.
    ///
    /// A path is resolved by `stat` (following symlinks such as `/dev/mapper/NAME`): it
    /// must be a block device, and its `st_rdev` is the number.
    pub fn resolve(&self) -> Result<DevNum, ResolveError> {
        match self {
            DevRef::Num(n) => Ok(*n),
            DevRef::Path(p) => {
                let path = p.as_path();
                let meta = std::fs::metadata(path).map_err(|source| ResolveError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                if !meta.file_type().is_block_device() {
                    return Err(ResolveError::NotBlockDevice {
                        path: path.to_owned(),
                    });
                }
                Ok(DevNum::from_dev_t(meta.rdev()))
            }
        }
    }

    /// This device with a path replaced by its number (see [`DevRef::resolve`]).
    pub fn resolved(&self) -> Result<DevRef, ResolveError> {
        self.resolve().map(DevRef::Num)
    }
}

impl From<DevNum> for DevRef {
    fn from(n: DevNum) -> Self {
        DevRef::Num(n)
    }
}

impl FromStr for DevRef {
    type Err = DevPathError;

    /// `major:minor` if the text reads as one, otherwise a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<DevNum>() {
            Ok(n) => Ok(DevRef::Num(n)),
            Err(_) => DevRef::path(s),
        }
    }
}

impl fmt::Display for DevRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevRef::Num(n) => n.fmt(f),
            DevRef::Path(p) => f.write_str(p.as_str()),
        }
    }
}

impl fmt::Display for DevPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
