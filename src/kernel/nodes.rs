//! `/dev/mapper/<name>` nodes: made by udev where it runs, by us where it does not.
//!
//! [`NodeMode::Auto`] picks udev when `/run/udev/control` exists and nodes otherwise. In
//! [`NodeMode::Udev`] the libdevmapper-compatible cookie handshake waits (with a timeout)
//! for udev's rules to finish; in [`NodeMode::Nodes`] block nodes are created (mode 0600)
//! and removed directly, as libdevmapper's fallback does.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag};

use crate::DevNum;
use crate::kernel::error::{DmUnavailable, Error, Result};

/// Who manages `/dev/mapper/<name>` nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeMode {
    /// udev if it runs (`/run/udev/control` exists), else [`NodeMode::Nodes`].
    #[default]
    Auto,
    /// udev, with the cookie handshake.
    Udev,
    /// This crate creates and removes the nodes itself.
    Nodes,
    /// Nobody: callers use `/dev/dm-N` or manage nodes themselves.
    None,
}

impl NodeMode {
    /// Resolve `Auto` for this machine.
    pub fn resolve(self) -> NodeMode {
        match self {
            NodeMode::Auto if Path::new("/run/udev/control").exists() => NodeMode::Udev,
            NodeMode::Auto => NodeMode::Nodes,
            m => m,
        }
    }
}

/// The node path of a device name under `dev_dir` (normally `/dev`).
pub fn node_path(dev_dir: &Path, name: &str) -> PathBuf {
    dev_dir.join(dm_sys::DM_DIR).join(name)
}

/// Make sure `dev_dir/mapper/<name>` is a block node for `dev` (mode 0600); replace a block
/// node with the wrong number; refuse to touch anything that is not a block node.
pub(crate) fn ensure_node(dev_dir: &Path, name: &str, dev: DevNum) -> Result<()> {
    let dir = dev_dir.join(dm_sys::DM_DIR);
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_block_device() && DevNum::from_dev_t(m.rdev()) == dev => {
            return Ok(());
        }
        Ok(m) if m.file_type().is_block_device() || m.file_type().is_symlink() => {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(_) => {
            return Err(Error::io(
                &path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a block device node; not replacing it",
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    nix::sys::stat::mknod(
        &path,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o600),
        dev.to_dev_t(),
    )
    .map_err(|e| Error::io(&path, io::Error::from_raw_os_error(e as i32)))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(&path, e))
}

/// Remove `dev_dir/mapper/<name>` if it is a block node or symlink (missing is fine).
pub(crate) fn remove_node(dev_dir: &Path, name: &str) -> Result<()> {
    let path = node_path(dev_dir, name);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_block_device() || m.file_type().is_symlink() => {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Whether the running kernel has the device-mapper driver, and its device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// Registered (number from sysfs or `/proc/misc`, when readable).
    Present(Option<DevNum>),
    /// `/proc/misc` is readable and does not list `device-mapper`.
    Absent,
    /// Neither sysfs nor `/proc/misc` says.
    Unknown,
}

/// The misc character devices' major number (`MISC_MAJOR`).
const MISC_MAJOR: u32 = 10;

/// Look for the device-mapper driver: `/sys/class/misc/device-mapper/dev`, else the
/// `device-mapper` line of `/proc/misc` (`<minor> <name>`).
pub(crate) fn dm_driver() -> Driver {
    if let Ok(text) = fs::read_to_string("/sys/class/misc/device-mapper/dev")
        && let Ok(dev) = text.trim().parse::<DevNum>()
    {
        return Driver::Present(Some(dev));
    }
    match fs::read_to_string("/proc/misc") {
        Ok(text) => misc_entry(&text).map_or(Driver::Absent, Driver::Present),
        Err(_) => Driver::Unknown,
    }
}

/// The `device-mapper` entry of `/proc/misc` text: `Some(dev)` when listed (`dev` when
/// its minor parses).
fn misc_entry(text: &str) -> Option<Option<DevNum>> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let minor = f.next()?;
        (f.next()? == "device-mapper" && f.next().is_none())
            .then(|| minor.parse().ok().map(|m| DevNum::new(MISC_MAJOR, m)))
    })
}

/// The error for a control node that is missing or does not open (`problem`).
pub(crate) fn unavailable(control: &Path, problem: String) -> Error {
    let reason = match dm_driver() {
        Driver::Absent => DmUnavailable::NoDriver,
        Driver::Present(dev) => DmUnavailable::ControlNode {
            path: control.to_owned(),
            dev,
            problem,
        },
        Driver::Unknown => DmUnavailable::ControlNode {
            path: control.to_owned(),
            dev: None,
            problem,
        },
    };
    Error::NoDeviceMapper { reason }
}

/// Create the control node if it is missing, from the driver's device number in sysfs
/// (or `/proc/misc`).
pub(crate) fn ensure_control_node(control: &Path) -> Result<()> {
    if control.exists() {
        return Ok(());
    }
    let Driver::Present(Some(dev)) = dm_driver() else {
        return Err(unavailable(control, "is missing".to_owned()));
    };
    let not_created = |e: io::Error| Error::NoDeviceMapper {
        reason: DmUnavailable::ControlNode {
            path: control.to_owned(),
            dev: Some(dev),
            problem: format!("is missing and could not be created ({e})"),
        },
    };
    if let Some(dir) = control.parent() {
        fs::create_dir_all(dir).map_err(not_created)?;
    }
    nix::sys::stat::mknod(
        control,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        dev.to_dev_t(),
    )
    .map_err(|e| not_created(io::Error::from_raw_os_error(e as i32)))
}

/// udev's side of the cookie handshake, as `dmsetup udevcomplete COOKIE` does it: signal
/// the process waiting on `cookie` (the `DM_COOKIE` value of a uevent) that udev's rules
/// for that event have run. For a udev rule written in Rust, or a udev replacement.
///
/// # Errors
/// No semaphore for that cookie (`ENOENT`), or it is already at zero (`EAGAIN`).
pub fn udev_complete(cookie: u32) -> Result<()> {
    crate::kernel::ioctl::sysv::complete(cookie).map_err(|e| Error::Io {
        path: PathBuf::from(format!("udev cookie {cookie:#x}")),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_misc_device_mapper_entry() {
        let with = "234 btrfs-control\n236 device-mapper\n183 hw_random\n";
        assert_eq!(misc_entry(with), Some(Some(DevNum::new(10, 236))));
        assert_eq!(misc_entry("234 btrfs-control\n183 hw_random\n"), None);
        // A name that only starts with it, or a minor that does not parse.
        assert_eq!(misc_entry("236 device-mapper-x\n"), None);
        assert_eq!(misc_entry(" x device-mapper\n"), Some(None));
        assert_eq!(misc_entry(""), None);
    }

    #[test]
    fn messages_say_what_to_do() {
        let no = Error::NoDeviceMapper {
            reason: DmUnavailable::NoDriver,
        }
        .to_string();
        assert!(
            no.contains("no device-mapper") && no.contains("modprobe dm_mod"),
            "{no}"
        );
        let node = DmUnavailable::ControlNode {
            path: "/dev/mapper/control".into(),
            dev: Some(DevNum::new(10, 236)),
            problem: "is missing".into(),
        }
        .to_string();
        assert!(
            node.contains("mknod -m 600 /dev/mapper/control c 10 236"),
            "{node}"
        );
        assert!(!no.contains("dmsnap") && !node.contains("dmsnap"));
    }
}
