//! The options types of the [`DeviceMapper`] calls.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use super::{DeviceMapper, DmFlags};
use crate::DevNum;
use crate::kernel::error::Result;
use crate::kernel::id::DmUuid;
use crate::kernel::nodes::NodeMode;

/// How [`DeviceMapper::remove`] and [`DeviceMapper::remove_all`] treat an open device.
///
/// ```no_run
/// use devmapper::{DeviceMapper, DmName, RemoveMode};
/// let dm = DeviceMapper::new()?;
/// dm.remove(&DmName::new("scratch")?, RemoveMode::Deferred)?;
/// # Ok::<(), devmapper::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RemoveMode {
    /// Remove now; an open device fails with `EBUSY`.
    #[default]
    Now,
    /// An open device is removed on its last close (`DM_DEFERRED_REMOVE`).
    Deferred,
}

impl RemoveMode {
    pub(super) fn flags(self) -> DmFlags {
        match self {
            RemoveMode::Now => DmFlags::empty(),
            RemoveMode::Deferred => DmFlags::DEFERRED_REMOVE,
        }
    }
}

/// Whether a status query may flush pending I/O first (`DM_NOFLUSH_FLAG` when not).
///
/// ```no_run
/// use devmapper::{DeviceMapper, DmName, StatusFlush, Which};
/// let dm = DeviceMapper::new()?;
/// let status = dm.status(&DmName::new("pool")?, Which::Live, StatusFlush::NoFlush)?;
/// # Ok::<(), devmapper::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusFlush {
    /// The target may flush before reporting (the kernel's default).
    #[default]
    Flush,
    /// Report without flushing (thin pools: no commit of pending metadata).
    NoFlush,
}

/// Options of [`DeviceMapper::create`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CreateOptions {
    /// Uuid to give the device.
    pub uuid: Option<DmUuid>,
    /// Create the device read-only.
    pub read_only: bool,
    /// Ask for this device number (the kernel honours the minor).
    pub dev: Option<DevNum>,
}

impl CreateOptions {
    /// Set the uuid.
    pub fn uuid(mut self, uuid: DmUuid) -> Self {
        self.uuid = Some(uuid);
        self
    }
    /// Make the device read-only.
    pub fn read_only(mut self, ro: bool) -> Self {
        self.read_only = ro;
        self
    }
    /// Ask for a fixed device number.
    pub fn dev(mut self, dev: DevNum) -> Self {
        self.dev = Some(dev);
        self
    }
}

/// Options of [`DeviceMapper::suspend`] and [`DeviceMapper::resume`].
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct SuspendOptions {
    /// Requeue in-flight I/O instead of flushing it (also skips the filesystem freeze).
    /// Never use it to take a snapshot.
    pub noflush: bool,
    /// Do not freeze the filesystem (crash-consistent only).
    pub skip_lockfs: bool,
}

impl SuspendOptions {
    pub(super) fn flags(self) -> DmFlags {
        let mut flags = DmFlags::empty();
        flags.set(DmFlags::NOFLUSH, self.noflush);
        flags.set(DmFlags::SKIP_LOCKFS, self.skip_lockfs);
        flags
    }
}

/// Options of [`DeviceMapper::load_raw`].
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct LoadOptions {
    /// Open the table's devices read-only and make the device read-only on resume.
    pub read_only: bool,
    /// Ask the kernel to wipe its copies of the table (for key material).
    pub secure: bool,
}

/// Which table a query reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Which {
    /// The live table.
    #[default]
    Live,
    /// The inactive (loaded, not yet resumed) table.
    Inactive,
}

impl Which {
    /// `DM_QUERY_INACTIVE_TABLE_FLAG` for the inactive table.
    pub(super) fn flags(self) -> DmFlags {
        match self {
            Which::Live => DmFlags::empty(),
            Which::Inactive => DmFlags::QUERY_INACTIVE_TABLE,
        }
    }
}

/// Disk geometry for [`DeviceMapper::set_geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Cylinders.
    pub cylinders: u64,
    /// Heads.
    pub heads: u64,
    /// Sectors per track.
    pub sectors: u64,
    /// Start sector.
    pub start: u64,
}

/// How a [`DeviceMapper`] handle is set up.
#[derive(Debug, Clone)]
#[must_use]
pub struct Options {
    /// Path of the control node.
    pub control: PathBuf,
    /// Directory holding `mapper/` (`/dev`).
    pub dev_dir: PathBuf,
    /// Who manages `/dev/mapper/<name>` nodes.
    pub nodes: NodeMode,
    /// How long to wait for udev in [`NodeMode::Udev`].
    pub udev_timeout: Duration,
    /// First buffer size for replies that can grow (16 KiB, as libdevmapper).
    pub initial_buffer: usize,
    /// Largest buffer a reply may grow to.
    pub max_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            control: PathBuf::from("/dev/mapper/control"),
            dev_dir: PathBuf::from("/dev"),
            nodes: NodeMode::Auto,
            udev_timeout: Duration::from_secs(30),
            initial_buffer: 16 * 1024,
            max_buffer: 64 * 1024 * 1024,
        }
    }
}

impl Options {
    /// Set the node mode.
    pub fn nodes(mut self, mode: NodeMode) -> Self {
        self.nodes = mode;
        self
    }
    /// Set the udev timeout.
    pub fn udev_timeout(mut self, t: Duration) -> Self {
        self.udev_timeout = t;
        self
    }
    /// Set the initial reply buffer size (at least the 312-byte header).
    pub fn initial_buffer(mut self, bytes: usize) -> Self {
        self.initial_buffer = bytes;
        self
    }
    /// Open the handle.
    ///
    /// # Errors
    /// See [`DeviceMapper::with_options`].
    pub fn open(self) -> Result<DeviceMapper> {
        DeviceMapper::with_options(self)
    }
}
