//! [`DeviceMapper`]: one safe method per device-mapper command.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the handle and its public methods |
//! | `request.rs` | the one request path: the private `Request` trait, the generic call (version check, buffer growth, udev cookie, hints), the reply |
//! | `commands.rs` | one `Request` per command: what it encodes, what its reply decodes to |
//! | `options.rs` | [`CreateOptions`], [`LoadOptions`], [`SuspendOptions`], [`Options`], [`RemoveMode`], [`StatusFlush`], [`Which`], [`Geometry`] |
//! | `info.rs` | [`DeviceInfo`] and [`DmFlags`] |
//! | `hints.rs` | what a failure means: busy hints from mountinfo, holders and sysfs |
//! | `typed.rs` | the typed calls: [`load`](DeviceMapper::load), [`table`](DeviceMapper::table), [`status`](DeviceMapper::status) |
//!
//! `/dev/mapper` node maintenance is in [`nodes`](crate::kernel::nodes).
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::DevNum;
use crate::kernel::command::Version;
use crate::kernel::error::{DmUnavailable, Errno, Error, Result};
use crate::kernel::id::{DevId, DmName, DmUuid};
use crate::kernel::nodes::{self, NodeMode};
use crate::kernel::reply::{DeviceEntry, RawTarget, TargetVersion};
use crate::kernel::wire::HEADER_SIZE;
use crate::table::MAX_TARGET_TYPE_LEN;
use crate::units::Sectors;

mod commands;
mod hints;
mod info;
mod options;
mod request;
mod typed;

pub(crate) use hints::mounts_of;
pub use info::{DeviceInfo, DmFlags};
pub use options::{
    CreateOptions, Geometry, LoadOptions, Options, RemoveMode, StatusFlush, SuspendOptions, Which,
};
/// A handle on the device-mapper control node. `Send + Sync`: share it between threads.
///
/// ```no_run
/// use devmapper::{DeviceMapper, DmName, RawTarget, RemoveMode, units::Sectors};
/// let dm = DeviceMapper::new()?;
/// let name = DmName::new("example-zero")?;
/// dm.create(&name, Default::default())?;
/// dm.load_raw(&name, &[RawTarget {
///     start: Sectors(0), length: Sectors(2048),
///     target_type: "zero".into(), params: String::new(),
/// }], Default::default())?;
/// dm.resume(&name, Default::default())?;
/// println!("{:?}", dm.info(&name)?);
/// dm.remove(&name, RemoveMode::Now)?;
/// # Ok::<(), devmapper::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceMapper {
    control: File,
    kernel: Version,
    nodes: NodeMode,
    opts: Options,
}

impl DeviceMapper {
    /// [`DeviceMapper::new`], or `None` when this kernel has no device-mapper driver (then
    /// nothing can be active, and callers that only look at active devices have nothing to
    /// do).
    ///
    /// ```no_run
    /// use devmapper::DeviceMapper;
    /// match DeviceMapper::new_if_present()? {
    ///     Some(dm) => println!("{} devices", dm.list()?.len()),
    ///     None => println!("no device-mapper in this kernel"),
    /// }
    /// # Ok::<(), devmapper::Error>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`DeviceMapper::new`] when the driver is present (or may be).
    pub fn new_if_present() -> Result<Option<Self>> {
        match Self::new() {
            Ok(dm) => Ok(Some(dm)),
            Err(Error::NoDeviceMapper {
                reason: DmUnavailable::NoDriver,
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Open `/dev/mapper/control` with default [`Options`], creating the node from sysfs if
    /// it is missing.
    ///
    /// # Errors
    /// [`Error::NoDeviceMapper`] when the kernel has no device-mapper or the control node
    /// is missing and cannot be created, or does not open; [`Error::Io`] when the
    /// node cannot be opened (not root?); [`Error::Ioctl`] when `DM_VERSION` fails.
    pub fn new() -> Result<Self> {
        Self::with_options(Options::default())
    }

    /// Open with explicit options.
    ///
    /// # Errors
    /// As [`DeviceMapper::new`].
    pub fn with_options(opts: Options) -> Result<Self> {
        nodes::ensure_control_node(&opts.control)?;
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&opts.control)
            .map_err(|e| match e.raw_os_error() {
                // A node without a driver behind it (a stale /dev, a container's).
                Some(libc::ENODEV | libc::ENXIO) => {
                    nodes::unavailable(&opts.control, format!("does not open ({e})"))
                }
                _ => Error::io(&opts.control, e),
            })?;
        let mut dm = DeviceMapper {
            control,
            kernel: Version::new(4, 0, 0),
            nodes: opts.nodes.resolve(),
            opts,
        };
        dm.opts.initial_buffer = dm.opts.initial_buffer.max(HEADER_SIZE + 8);
        let version = dm.run(&commands::GetVersion)?;
        if version.major != dm_sys::DM_VERSION_MAJOR {
            return Err(Error::NoDeviceMapper {
                reason: DmUnavailable::Interface(version),
            });
        }
        dm.kernel = version;
        Ok(dm)
    }

    /// `DM_VERSION`—the kernel's device-mapper interface version.
    ///
    /// # Errors
    /// The ioctl fails.
    #[doc(alias = "DM_VERSION")]
    pub fn version(&self) -> Result<Version> {
        self.run(&commands::GetVersion)
    }

    /// The kernel interface version seen when the handle was opened.
    pub fn kernel_version(&self) -> Version {
        self.kernel
    }

    /// The node mode in effect (`Auto` resolved).
    pub fn node_mode(&self) -> NodeMode {
        self.nodes
    }

    /// `/dev/mapper/<name>` for this handle's device directory.
    pub fn node_path(&self, name: &DmName) -> PathBuf {
        nodes::node_path(&self.opts.dev_dir, name.as_str())
    }

    /// `DM_REMOVE_ALL`—remove every device that is not open (with `deferred`, mark open
    /// ones for removal on last close).
    ///
    /// # Errors
    /// The ioctl fails.
    #[doc(alias = "DM_REMOVE_ALL")]
    pub fn remove_all(&self, mode: RemoveMode) -> Result<()> {
        self.run(&commands::RemoveAll(mode))?;
        if self.nodes == NodeMode::Nodes {
            self.mknodes()?;
        }
        Ok(())
    }

    /// `DM_LIST_DEVICES`—every device with name, uuid, device number and event number.
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    #[doc(alias = "DM_LIST_DEVICES")]
    pub fn list(&self) -> Result<Vec<DeviceEntry>> {
        self.run(&commands::ListDevices)
    }

    /// `DM_DEV_CREATE`—create a device (suspended, with no table).
    ///
    /// In [`NodeMode::Nodes`] `/dev/mapper/<name>` is created at once.
    ///
    /// # Errors
    /// `EBUSY` when the name, uuid or requested minor is taken.
    #[doc(alias = "DM_DEV_CREATE")]
    pub fn create(&self, name: &DmName, opts: CreateOptions) -> Result<DeviceInfo> {
        let info = self.run(&commands::Create { name, opts: &opts })?;
        if self.nodes == NodeMode::Nodes {
            nodes::ensure_node(&self.opts.dev_dir, name.as_str(), info.dev)?;
        }
        Ok(info)
    }

    /// `DM_DEV_REMOVE`—remove a device; with `deferred`, an open device is removed on its
    /// last close instead of failing with `EBUSY`.
    ///
    /// # Errors
    /// `EBUSY` (with a hint naming mounts and holders) when the device is open.
    #[doc(alias = "DM_DEV_REMOVE")]
    pub fn remove<'a>(&self, id: impl Into<DevId<'a>>, mode: RemoveMode) -> Result<DeviceInfo> {
        let id = id.into();
        let info = self.run(&commands::Remove(id, mode))?;
        if self.nodes == NodeMode::Nodes && !info.deferred_remove() {
            nodes::remove_node(&self.opts.dev_dir, info.name.as_str())?;
        }
        Ok(info)
    }

    /// `DM_DEV_RENAME`—give a device a new name.
    ///
    /// # Errors
    /// `EBUSY` when the new name is taken, `ENXIO` when the device does not exist.
    #[doc(alias = "DM_DEV_RENAME")]
    pub fn rename<'a>(&self, id: impl Into<DevId<'a>>, new_name: &DmName) -> Result<DeviceInfo> {
        let id = id.into();
        let old = self.run(&commands::Rename(id, commands::NewId::Name(new_name)))?;
        let info = self.info(new_name)?;
        if self.nodes == NodeMode::Nodes {
            if old.name != *new_name {
                nodes::remove_node(&self.opts.dev_dir, old.name.as_str())?;
            }
            nodes::ensure_node(&self.opts.dev_dir, new_name.as_str(), info.dev)?;
        }
        Ok(info)
    }

    /// `DM_DEV_RENAME` with `DM_UUID_FLAG`—set the uuid of a device that has none (the
    /// kernel allows this once).
    ///
    /// # Errors
    /// `EINVAL` when the device already has a uuid, `EBUSY` when the uuid is taken.
    #[doc(alias = "DM_UUID_FLAG")]
    pub fn set_uuid<'a>(&self, id: impl Into<DevId<'a>>, uuid: &DmUuid) -> Result<DeviceInfo> {
        let id = id.into();
        self.run(&commands::Rename(id, commands::NewId::Uuid(uuid)))?;
        self.info(uuid)
    }

    /// `DM_DEV_SUSPEND` with `DM_SUSPEND_FLAG`—suspend a device. By default the filesystem
    /// on it is frozen (lockfs) and in-flight I/O is flushed.
    ///
    /// # Errors
    /// The ioctl fails (`EINTR` when interrupted).
    #[doc(alias = "DM_DEV_SUSPEND")]
    pub fn suspend<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        opts: SuspendOptions,
    ) -> Result<DeviceInfo> {
        let id = id.into();
        self.run(&commands::Suspend {
            id,
            suspend: true,
            opts,
        })
    }

    /// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`—resume a device, making its inactive
    /// table (if any) live. In [`NodeMode::Nodes`] the node is checked afterwards.
    ///
    /// Losing a race to another resumer (the kernel answers `EINVAL` to the second of two
    /// concurrent resumes) counts as success when the device ends up running with nothing
    /// staged.
    ///
    /// # Errors
    /// The ioctl fails (for example a table whose devices vanished).
    #[doc(alias = "DM_DEV_SUSPEND")]
    pub fn resume<'a>(&self, id: impl Into<DevId<'a>>, opts: SuspendOptions) -> Result<DeviceInfo> {
        let id = id.into();
        let r = self.run(&commands::Suspend {
            id,
            suspend: false,
            opts,
        });
        let info = match r {
            Ok(info) => info,
            // Two resumes racing (a suspend guardian and its parent, or `recover`): the
            // kernel's dm_resume answers EINVAL to the one that finds the device already
            // resumed. Running with nothing left staged is what a resume is for.
            Err(e) if e.errno() == Some(Errno::EINVAL) => match self.info(id) {
                Ok(i) if i.has_live_table() && !i.suspended() && !i.has_inactive_table() => i,
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if self.nodes == NodeMode::Nodes {
            nodes::ensure_node(&self.opts.dev_dir, info.name.as_str(), info.dev)?;
        }
        Ok(info)
    }

    /// `DM_DEV_STATUS`—information about one device.
    ///
    /// # Errors
    /// `ENXIO` when it does not exist.
    #[doc(alias = "DM_DEV_STATUS")]
    pub fn info<'a>(&self, id: impl Into<DevId<'a>>) -> Result<DeviceInfo> {
        let id = id.into();
        self.run(&commands::Info(id))
    }

    /// Whether a device with this name exists.
    ///
    /// # Errors
    /// Any failure other than "no such device".
    pub fn exists<'a>(&self, id: impl Into<DevId<'a>>) -> Result<bool> {
        match self.info(id) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DM_DEV_WAIT`—block until the device's event number differs from `event_nr`, then
    /// return its info and status lines.
    ///
    /// # Errors
    /// `EINTR` when interrupted by a signal.
    #[doc(alias = "DM_DEV_WAIT")]
    pub fn wait_event<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        event_nr: u32,
    ) -> Result<(DeviceInfo, Vec<RawTarget>)> {
        let id = id.into();
        self.run(&commands::Wait(id, event_nr))
    }

    /// `DM_TABLE_LOAD`—load the inactive table; it becomes live on [`resume`](Self::resume).
    /// The targets' constructors run now (devices are opened, COW headers written).
    ///
    /// The lines are checked first by the table validator ([`validate_raw`](crate::table::validate_raw),
    /// the rules of [`Table::validate`](crate::table::Table::validate)): contiguous from sector 0, non-empty,
    /// no NUL or line break in the params, and so on.
    ///
    /// # Errors
    /// [`Error::Table`] for a table the kernel would refuse; `EINVAL` from the kernel when a
    /// target refuses its parameters (the kernel log says why).
    #[doc(alias = "DM_TABLE_LOAD")]
    pub fn load_raw<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        targets: &[RawTarget],
        opts: LoadOptions,
    ) -> Result<DeviceInfo> {
        crate::table::validate_raw(targets)?;
        self.run(&commands::Load {
            id: id.into(),
            targets,
            opts,
        })
    }

    /// `DM_TABLE_CLEAR`—drop the inactive table.
    ///
    /// # Errors
    /// The ioctl fails.
    #[doc(alias = "DM_TABLE_CLEAR")]
    pub fn clear_table<'a>(&self, id: impl Into<DevId<'a>>) -> Result<DeviceInfo> {
        let id = id.into();
        self.run(&commands::ClearTable(id))
    }

    /// `DM_TABLE_DEPS`—the devices a table uses.
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    #[doc(alias = "DM_TABLE_DEPS")]
    pub fn deps<'a>(&self, id: impl Into<DevId<'a>>, which: Which) -> Result<Vec<DevNum>> {
        let id = id.into();
        self.run(&commands::Deps(id, which))
    }

    /// [`Self::deps`] and [`Self::info`] in one ioctl: the reply header of
    /// `DM_TABLE_DEPS` carries the device's info (open count, flags) along with the
    /// devices its table uses. A device without that table has no deps.
    ///
    /// ```no_run
    /// use devmapper::{DeviceMapper, DmName, Which};
    /// let dm = DeviceMapper::new()?;
    /// let (info, deps) = dm.deps_with_info(&DmName::new("vg-lv")?, Which::Live)?;
    /// println!("open {}, uses {deps:?}", info.open_count);
    /// # Ok::<(), devmapper::Error>(())
    /// ```
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    pub fn deps_with_info<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        which: Which,
    ) -> Result<(DeviceInfo, Vec<DevNum>)> {
        self.run(&commands::DepsInfo(id.into(), which))
    }

    /// `DM_TABLE_STATUS` with `DM_STATUS_TABLE_FLAG`—the table, as `dmsetup table` shows it
    /// (devices as `major:minor`).
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    #[doc(alias = "DM_STATUS_TABLE_FLAG")]
    pub fn table_raw<'a>(&self, id: impl Into<DevId<'a>>, which: Which) -> Result<Vec<RawTarget>> {
        let flags = DmFlags::STATUS_TABLE | which.flags();
        self.run(&commands::TableStatus(id.into(), flags))
    }

    /// [`Self::table_raw`] and [`Self::info`] in one ioctl: the reply header of
    /// `DM_TABLE_STATUS` carries the device's info (open count, flags, event number)
    /// along with the table.
    ///
    /// ```no_run
    /// use devmapper::{DeviceMapper, DmName, Which};
    /// let dm = DeviceMapper::new()?;
    /// let (info, table) = dm.table_with_info(&DmName::new("vg-lv")?, Which::Live)?;
    /// println!("{} open, {} targets", info.open_count, table.len());
    /// # Ok::<(), devmapper::Error>(())
    /// ```
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    pub fn table_with_info<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        which: Which,
    ) -> Result<(DeviceInfo, Vec<RawTarget>)> {
        let flags = DmFlags::STATUS_TABLE | which.flags();
        self.run(&commands::TableStatusInfo(id.into(), flags))
    }

    /// `DM_TABLE_STATUS`—each target's status, as `dmsetup status` shows it. With `noflush`
    /// targets that would flush to compute their status do not.
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    #[doc(alias = "DM_TABLE_STATUS")]
    pub fn status_raw<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        which: Which,
        flush: StatusFlush,
    ) -> Result<Vec<RawTarget>> {
        let mut flags = which.flags();
        flags.set(DmFlags::NOFLUSH, flush == StatusFlush::NoFlush);
        self.run(&commands::TableStatus(id.into(), flags))
    }

    /// `DM_LIST_VERSIONS`—every loaded target type with its version.
    ///
    /// # Errors
    /// The ioctl fails or the reply is malformed.
    #[doc(alias = "DM_LIST_VERSIONS")]
    pub fn target_versions(&self) -> Result<Vec<TargetVersion>> {
        self.run(&commands::ListVersions)
    }

    /// `DM_GET_TARGET_VERSION`—the version of one target type (the kernel loads its module
    /// on demand).
    ///
    /// # Errors
    /// `EINVAL` when there is no such target type.
    #[doc(alias = "DM_GET_TARGET_VERSION")]
    pub fn target_version(&self, target_type: &str) -> Result<TargetVersion> {
        if target_type.is_empty()
            || target_type.len() > MAX_TARGET_TYPE_LEN
            || target_type.chars().any(|c| c.is_control() || c == '/')
        {
            return Err(Error::InvalidArgument(format!(
                "target type {target_type:?} must be 1 to {MAX_TARGET_TYPE_LEN} printable bytes"
            )));
        }
        self.run(&commands::GetTargetVersion(target_type))
    }

    /// `DM_TARGET_MSG`—send a message to the target at `sector` (or to the device-mapper
    /// core for messages starting with `@`); returns the reply text, if any.
    ///
    /// # Errors
    /// `EINVAL` when the target takes no messages or refuses this one.
    #[doc(alias = "DM_TARGET_MSG")]
    pub fn message<'a>(
        &self,
        id: impl Into<DevId<'a>>,
        sector: Sectors,
        message: &str,
    ) -> Result<Option<String>> {
        self.run(&commands::Message {
            id: id.into(),
            sector,
            message,
        })
    }

    /// `DM_DEV_SET_GEOMETRY`—set the geometry `HDIO_GETGEO` reports.
    ///
    /// # Errors
    /// The ioctl fails.
    #[doc(alias = "DM_DEV_SET_GEOMETRY")]
    pub fn set_geometry<'a>(&self, id: impl Into<DevId<'a>>, g: Geometry) -> Result<()> {
        self.run(&commands::SetGeometry(id.into(), g))
    }

    /// `DM_DEV_ARM_POLL`—arm the control fd: it polls readable once a device-mapper event
    /// (create, remove, rename, table event) happens after this call. See
    /// [`wait_poll`](Self::wait_poll).
    ///
    /// # Errors
    /// The ioctl fails.
    #[doc(alias = "DM_DEV_ARM_POLL")]
    pub fn arm_poll(&self) -> Result<()> {
        self.run(&commands::ArmPoll)
    }

    /// Wait up to `timeout` for the armed control fd to become readable; `true` if an event
    /// arrived.
    ///
    /// # Errors
    /// `poll(2)` fails.
    pub fn wait_poll(&self, timeout: Duration) -> Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(self.control.as_fd(), PollFlags::POLLIN)];
        let n = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .map_err(|e| {
            Error::io(
                &self.opts.control,
                std::io::Error::from_raw_os_error(e as i32),
            )
        })?;
        Ok(n > 0)
    }

    /// Make `/dev/mapper` agree with the kernel, as `dmsetup mknodes` does: remove nodes of
    /// devices that are gone, create or fix nodes of every device.
    ///
    /// # Errors
    /// Listing fails or a node cannot be written.
    pub fn mknodes(&self) -> Result<()> {
        let devs = self.list()?;
        let dir = self.opts.dev_dir.join(dm_sys::DM_DIR);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == dm_sys::DM_CONTROL_NODE || devs.iter().any(|d| d.name == n) {
                    continue;
                }
                nodes::remove_node(&self.opts.dev_dir, &n)?;
            }
        }
        for d in &devs {
            nodes::ensure_node(&self.opts.dev_dir, &d.name, d.dev)?;
        }
        Ok(())
    }
}

impl AsFd for DeviceMapper {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }
}

/// Whether device-mapper looks usable here; `Err` says why not (for skipping tests).
pub fn availability() -> std::result::Result<(), String> {
    if !Path::new("/sys/class/misc/device-mapper").exists()
        && !Path::new("/dev/mapper/control").exists()
    {
        return Err(
            "this kernel has no device-mapper (no /sys/class/misc/device-mapper)".to_owned(),
        );
    }
    match DeviceMapper::new() {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
