//! [`DeviceInfo`], what the kernel reports about one device, and [`DmFlags`], the flags
//! word of every request and reply.
#![forbid(unsafe_code)]

use bitflags::bitflags;

use crate::DevNum;
use crate::kernel::id::{DmName, IdError};
use crate::kernel::wire::Header;

bitflags! {
    /// The `flags` word of a device-mapper ioctl (`DM_*_FLAG`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct DmFlags: u32 {
        /// `DM_READONLY_FLAG`.
        const READONLY = dm_sys::DM_READONLY_FLAG;
        /// `DM_SUSPEND_FLAG`.
        const SUSPEND = dm_sys::DM_SUSPEND_FLAG;
        /// `DM_PERSISTENT_DEV_FLAG`.
        const PERSISTENT_DEV = dm_sys::DM_PERSISTENT_DEV_FLAG;
        /// `DM_STATUS_TABLE_FLAG`.
        const STATUS_TABLE = dm_sys::DM_STATUS_TABLE_FLAG;
        /// `DM_ACTIVE_PRESENT_FLAG`.
        const ACTIVE_PRESENT = dm_sys::DM_ACTIVE_PRESENT_FLAG;
        /// `DM_INACTIVE_PRESENT_FLAG`.
        const INACTIVE_PRESENT = dm_sys::DM_INACTIVE_PRESENT_FLAG;
        /// `DM_BUFFER_FULL_FLAG`.
        const BUFFER_FULL = dm_sys::DM_BUFFER_FULL_FLAG;
        /// `DM_SKIP_BDGET_FLAG`.
        const SKIP_BDGET = dm_sys::DM_SKIP_BDGET_FLAG;
        /// `DM_SKIP_LOCKFS_FLAG`.
        const SKIP_LOCKFS = dm_sys::DM_SKIP_LOCKFS_FLAG;
        /// `DM_NOFLUSH_FLAG`.
        const NOFLUSH = dm_sys::DM_NOFLUSH_FLAG;
        /// `DM_QUERY_INACTIVE_TABLE_FLAG`.
        const QUERY_INACTIVE_TABLE = dm_sys::DM_QUERY_INACTIVE_TABLE_FLAG;
        /// `DM_UEVENT_GENERATED_FLAG`.
        const UEVENT_GENERATED = dm_sys::DM_UEVENT_GENERATED_FLAG;
        /// `DM_UUID_FLAG`.
        const UUID = dm_sys::DM_UUID_FLAG;
        /// `DM_SECURE_DATA_FLAG`.
        const SECURE_DATA = dm_sys::DM_SECURE_DATA_FLAG;
        /// `DM_DATA_OUT_FLAG`.
        const DATA_OUT = dm_sys::DM_DATA_OUT_FLAG;
        /// `DM_DEFERRED_REMOVE`.
        const DEFERRED_REMOVE = dm_sys::DM_DEFERRED_REMOVE;
        /// `DM_INTERNAL_SUSPEND_FLAG`.
        const INTERNAL_SUSPEND = dm_sys::DM_INTERNAL_SUSPEND_FLAG;
        /// `DM_IMA_MEASUREMENT_FLAG`.
        const IMA_MEASUREMENT = dm_sys::DM_IMA_MEASUREMENT_FLAG;
        // Bits this crate does not know stay representable.
        const _ = !0;
    }
}

/// What the kernel reports about one device.
///
/// ```no_run
/// use devmapper::{DeviceMapper, DmName};
/// let dm = DeviceMapper::new()?;
/// let info = dm.info(&DmName::new("vg0-root")?)?;
/// println!("{} is {} (open {} times)", info.name, info.dev, info.open_count);
/// # Ok::<(), devmapper::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name. Every command on a device answers with its name (the kernel copies it
    /// from the device it found, or echoes the name it was given), so it is never empty; a
    /// reply whose name is not a valid [`DmName`] is refused as malformed.
    pub name: DmName,
    /// Device uuid, if it has one.
    pub uuid: Option<String>,
    /// Device number.
    pub dev: DevNum,
    /// Number of openers (mounts, other dm tables, processes).
    pub open_count: i32,
    /// Event number.
    pub event_nr: u32,
    /// Number of targets in the table the reply describes.
    pub target_count: u32,
    /// Flags as returned.
    pub flags: DmFlags,
}

impl DeviceInfo {
    /// The device a reply header describes; `Err` when its name is not a [`DmName`].
    pub(super) fn from_header(h: &Header) -> Result<Self, IdError> {
        Ok(Self {
            name: DmName::new(&h.name)?,
            uuid: (!h.uuid.is_empty()).then(|| h.uuid.clone()),
            dev: DevNum::from_kernel_huge(h.dev),
            open_count: h.open_count,
            event_nr: h.event_nr,
            target_count: h.target_count,
            flags: DmFlags::from_bits_retain(h.flags),
        })
    }

    /// The device is suspended.
    pub fn suspended(&self) -> bool {
        self.flags.contains(DmFlags::SUSPEND)
    }
    /// The device (its live table) is read-only.
    pub fn read_only(&self) -> bool {
        self.flags.contains(DmFlags::READONLY)
    }
    /// The device has a live table.
    pub fn has_live_table(&self) -> bool {
        self.flags.contains(DmFlags::ACTIVE_PRESENT)
    }
    /// The device has an inactive (loaded, not yet resumed) table.
    pub fn has_inactive_table(&self) -> bool {
        self.flags.contains(DmFlags::INACTIVE_PRESENT)
    }
    /// A deferred remove is pending.
    pub fn deferred_remove(&self) -> bool {
        self.flags.contains(DmFlags::DEFERRED_REMOVE)
    }
}
