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
use crate::error::{Error, Result};

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

/// Create the control node from sysfs (`/sys/class/misc/device-mapper/dev`) if it is missing.
pub(crate) fn ensure_control_node(control: &Path) -> Result<()> {
    if control.exists() {
        return Ok(());
    }
    let sys = Path::new("/sys/class/misc/device-mapper/dev");
    let text = fs::read_to_string(sys).map_err(|e| Error::NotAvailable {
        reason: format!(
            "{} is missing and {} cannot be read ({e}): is the dm-mod module loaded?",
            control.display(),
            sys.display()
        ),
    })?;
    let dev: DevNum = text.trim().parse().map_err(|_| Error::NotAvailable {
        reason: format!("{} holds {:?}, not MAJOR:MINOR", sys.display(), text.trim()),
    })?;
    if let Some(dir) = control.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    nix::sys::stat::mknod(
        control,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        dev.to_dev_t(),
    )
    .map_err(|e| Error::io(control, io::Error::from_raw_os_error(e as i32)))
}

/// udev's side of the cookie handshake, as `dmsetup udevcomplete COOKIE` does it: signal
/// the process waiting on `cookie` (the `DM_COOKIE` value of a uevent) that udev's rules
/// for that event have run. For a udev rule written in Rust, or a udev replacement.
///
/// # Errors
/// No semaphore for that cookie (`ENOENT`), or it is already at zero (`EAGAIN`).
pub fn udev_complete(cookie: u32) -> Result<()> {
    crate::ioctl::sysv::complete(cookie).map_err(|e| Error::Io {
        path: PathBuf::from(format!("udev cookie {cookie:#x}")),
        source: e.into(),
    })
}
