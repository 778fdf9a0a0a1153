//! Raw Linux device-mapper ioctl ABI: the equivalent of `<linux/dm-ioctl.h>` and nothing more.
//!
//! Hand-written `#[repr(C)]` structures, command numbers, request codes and flag bits, with
//! compile-time layout assertions (no bindgen, no libdevmapper, no C toolchain). Field names
//! follow the C header exactly. There is no logic here beyond `const fn` request-code
//! arithmetic; the safe interface lives in the `devmapper` crate.
//!
//! ```
//! use dm_sys::{dm_ioctl, DM_VERSION_CMD, request_code};
//! assert_eq!(core::mem::size_of::<dm_ioctl>(), 312);
//! assert_eq!(request_code(DM_VERSION_CMD), dm_sys::DM_VERSION);
//! ```
//!
//! # References
//! - `include/uapi/linux/dm-ioctl.h` in the Linux kernel (interface 4.x).
//! - `Documentation/admin-guide/device-mapper/` in the Linux kernel.
#![no_std]
#![allow(
    non_camel_case_types,
    reason = "type names mirror the C header exactly"
)]

use core::mem::{offset_of, size_of};

/// `DM_DIR`: the directory under `/dev` that holds device-mapper nodes.
pub const DM_DIR: &str = "mapper";
/// `DM_CONTROL_NODE`: the control node's name inside [`DM_DIR`].
pub const DM_CONTROL_NODE: &str = "control";
/// `DM_MAX_TYPE_NAME`: size of `dm_target_spec::target_type`, NUL included.
pub const DM_MAX_TYPE_NAME: usize = 16;
/// `DM_NAME_LEN`: size of `dm_ioctl::name`, NUL included (so names are at most 127 bytes).
pub const DM_NAME_LEN: usize = 128;
/// `DM_UUID_LEN`: size of `dm_ioctl::uuid`, NUL included (so uuids are at most 128 bytes).
pub const DM_UUID_LEN: usize = 129;
/// `MAPPER_CTRL_MINOR`: the misc-device minor of `/dev/mapper/control` (major 10).
pub const MAPPER_CTRL_MINOR: u32 = 236;
/// The misc character-device major (`MISC_MAJOR`).
pub const MISC_MAJOR: u32 = 10;

/// `DM_IOCTL`: the ioctl type byte of every device-mapper command.
pub const DM_IOCTL: u8 = 0xfd;

/// `DM_VERSION_MAJOR`: the interface major version this ABI describes.
pub const DM_VERSION_MAJOR: u32 = 4;
/// `DM_VERSION_MINOR`: the newest interface minor version this ABI describes.
pub const DM_VERSION_MINOR: u32 = 50;
/// `DM_VERSION_PATCHLEVEL`.
pub const DM_VERSION_PATCHLEVEL: u32 = 0;

/// `struct dm_ioctl`: the header of every device-mapper ioctl buffer.
///
/// All ioctls take a buffer that starts with this header; `data_size` is the size of the
/// whole buffer and `data_start` the offset of the payload from the header's start.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_ioctl {
    /// `version[3]`: in, the interface version the caller speaks; out, the kernel's.
    pub version: [u32; 3],
    /// `data_size`: total size of the buffer, this header included.
    pub data_size: u32,
    /// `data_start`: offset of the payload from the start of this header.
    pub data_start: u32,
    /// `target_count`: in (table load) the number of targets; out the number returned.
    pub target_count: u32,
    /// `open_count`: out, how many openers the device has.
    pub open_count: i32,
    /// `flags`: `DM_*_FLAG` bits, in and out.
    pub flags: u32,
    /// `event_nr`: in, the event number to wait on or the udev cookie; out, the event number.
    pub event_nr: u32,
    /// `padding`.
    pub padding: u32,
    /// `dev`: device number in the kernel's `huge_encode_dev` layout.
    pub dev: u64,
    /// `name`: device name, NUL-terminated.
    pub name: [u8; DM_NAME_LEN],
    /// `uuid`: device uuid, NUL-terminated.
    pub uuid: [u8; DM_UUID_LEN],
    /// `data[7]`: padding up to 8-byte alignment; its offset is the kernel's minimum data size.
    pub data: [u8; 7],
}

impl dm_ioctl {
    /// An all-zero header.
    pub const ZEROED: Self = Self {
        version: [0; 3],
        data_size: 0,
        data_start: 0,
        target_count: 0,
        open_count: 0,
        flags: 0,
        event_nr: 0,
        padding: 0,
        dev: 0,
        name: [0; DM_NAME_LEN],
        uuid: [0; DM_UUID_LEN],
        data: [0; 7],
    };
}

/// `struct dm_target_spec`: one target of a table; its NUL-terminated parameter string follows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_target_spec {
    /// `sector_start`: first sector the target covers.
    pub sector_start: u64,
    /// `length`: number of sectors the target covers.
    pub length: u64,
    /// `status`: used when reading from the kernel only.
    pub status: i32,
    /// `next`: on table load, the distance from this spec to the next; on status/table/wait
    /// replies, the offset from the first spec (`data_start`) to the next.
    pub next: u32,
    /// `target_type`: NUL-terminated target type name.
    pub target_type: [u8; DM_MAX_TYPE_NAME],
}

/// `struct dm_target_deps`: reply of `DM_TABLE_DEPS`; `count` device numbers follow.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_target_deps {
    /// `count`: number of device numbers in the array that follows.
    pub count: u32,
    /// `padding`.
    pub padding: u32,
    // `__u64 dev[]` follows at offset 8.
}

/// Offset of the flexible `dev[]` array inside [`dm_target_deps`].
pub const DM_TARGET_DEPS_DEV_OFFSET: usize = 8;

/// `struct dm_name_list`: one record of the `DM_LIST_DEVICES` reply.
///
/// The NUL-terminated name starts at offset 12 ([`DM_NAME_LIST_NAME_OFFSET`]); after it,
/// aligned to 8, come `u32 event_nr` and `u32 flags`, then, if `flags` has
/// [`DM_NAME_LIST_FLAG_HAS_UUID`], a NUL-terminated uuid.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_name_list {
    /// `dev`: the device number (`huge_encode_dev`); 0 in the first record means no devices.
    pub dev: u64,
    /// `next`: distance from the start of this record to the next; 0 on the last record.
    pub next: u32,
    // `char name[]` follows at offset 12.
}

/// Offset of the flexible `name[]` inside [`dm_name_list`] (not `size_of`, which is 16).
pub const DM_NAME_LIST_NAME_OFFSET: usize = 12;
/// `DM_NAME_LIST_FLAG_HAS_UUID`: a uuid follows `event_nr`/`flags` in a name-list record.
pub const DM_NAME_LIST_FLAG_HAS_UUID: u32 = 1;
/// `DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID`: the device has no uuid.
pub const DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID: u32 = 2;

/// `struct dm_target_versions`: one record of the `DM_LIST_VERSIONS` and
/// `DM_GET_TARGET_VERSION` replies; the NUL-terminated name follows at offset 16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_target_versions {
    /// `next`: distance from the start of this record to the next; 0 on the last record.
    pub next: u32,
    /// `version[3]`: the target's version.
    pub version: [u32; 3],
    // `char name[]` follows at offset 16.
}

/// Offset of the flexible `name[]` inside [`dm_target_versions`].
pub const DM_TARGET_VERSIONS_NAME_OFFSET: usize = 16;

/// `struct dm_target_msg`: payload of `DM_TARGET_MSG`; the NUL-terminated message follows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dm_target_msg {
    /// `sector`: a sector inside the target that should receive the message.
    pub sector: u64,
    // `char message[]` follows at offset 8.
}

/// Offset of the flexible `message[]` inside [`dm_target_msg`].
pub const DM_TARGET_MSG_MESSAGE_OFFSET: usize = 8;

// ---------------------------------------------------------------------------------------------
// Command numbers (`enum { DM_VERSION_CMD = 0, ... }`).

/// `DM_VERSION_CMD`: get the interface version.
pub const DM_VERSION_CMD: u8 = 0;
/// `DM_REMOVE_ALL_CMD`: remove every device that is not open.
pub const DM_REMOVE_ALL_CMD: u8 = 1;
/// `DM_LIST_DEVICES_CMD`: list devices.
pub const DM_LIST_DEVICES_CMD: u8 = 2;
/// `DM_DEV_CREATE_CMD`: create a device.
pub const DM_DEV_CREATE_CMD: u8 = 3;
/// `DM_DEV_REMOVE_CMD`: remove a device.
pub const DM_DEV_REMOVE_CMD: u8 = 4;
/// `DM_DEV_RENAME_CMD`: rename a device or set its uuid.
pub const DM_DEV_RENAME_CMD: u8 = 5;
/// `DM_DEV_SUSPEND_CMD`: suspend or resume a device.
pub const DM_DEV_SUSPEND_CMD: u8 = 6;
/// `DM_DEV_STATUS_CMD`: device information.
pub const DM_DEV_STATUS_CMD: u8 = 7;
/// `DM_DEV_WAIT_CMD`: wait for an event.
pub const DM_DEV_WAIT_CMD: u8 = 8;
/// `DM_TABLE_LOAD_CMD`: load the inactive table.
pub const DM_TABLE_LOAD_CMD: u8 = 9;
/// `DM_TABLE_CLEAR_CMD`: clear the inactive table.
pub const DM_TABLE_CLEAR_CMD: u8 = 10;
/// `DM_TABLE_DEPS_CMD`: devices a table depends on.
pub const DM_TABLE_DEPS_CMD: u8 = 11;
/// `DM_TABLE_STATUS_CMD`: table or status of each target.
pub const DM_TABLE_STATUS_CMD: u8 = 12;
/// `DM_LIST_VERSIONS_CMD`: loaded target types and their versions.
pub const DM_LIST_VERSIONS_CMD: u8 = 13;
/// `DM_TARGET_MSG_CMD`: send a message to a target.
pub const DM_TARGET_MSG_CMD: u8 = 14;
/// `DM_DEV_SET_GEOMETRY_CMD`: set the device geometry.
pub const DM_DEV_SET_GEOMETRY_CMD: u8 = 15;
/// `DM_DEV_ARM_POLL_CMD`: arm the control fd for `poll`.
pub const DM_DEV_ARM_POLL_CMD: u8 = 16;
/// `DM_GET_TARGET_VERSION_CMD`: version of one target type.
pub const DM_GET_TARGET_VERSION_CMD: u8 = 17;

/// Number of control-node commands (`DM_VERSION_CMD` ..= `DM_GET_TARGET_VERSION_CMD`).
pub const DM_COMMAND_COUNT: usize = 18;

// ---------------------------------------------------------------------------------------------
// Request codes: `_IOWR(DM_IOCTL, nr, struct dm_ioctl)`.

#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
mod ioc {
    pub const SIZEBITS: u32 = 13;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
}
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const SIZEBITS: u32 = 14;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 1;
}

const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + ioc::SIZEBITS;

/// `_IOWR(ty, nr, size)`: a read-write ioctl request code.
#[doc(alias = "_IOWR")]
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ((ioc::READ | ioc::WRITE) << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
}

/// The request code of device-mapper command `nr`: `_IOWR(0xfd, nr, struct dm_ioctl)`.
pub const fn request_code(nr: u8) -> u32 {
    iowr(DM_IOCTL, nr, size_of::<dm_ioctl>())
}

/// `DM_VERSION`.
pub const DM_VERSION: u32 = request_code(DM_VERSION_CMD);
/// `DM_REMOVE_ALL`.
pub const DM_REMOVE_ALL: u32 = request_code(DM_REMOVE_ALL_CMD);
/// `DM_LIST_DEVICES`.
pub const DM_LIST_DEVICES: u32 = request_code(DM_LIST_DEVICES_CMD);
/// `DM_DEV_CREATE`.
pub const DM_DEV_CREATE: u32 = request_code(DM_DEV_CREATE_CMD);
/// `DM_DEV_REMOVE`.
pub const DM_DEV_REMOVE: u32 = request_code(DM_DEV_REMOVE_CMD);
/// `DM_DEV_RENAME`.
pub const DM_DEV_RENAME: u32 = request_code(DM_DEV_RENAME_CMD);
/// `DM_DEV_SUSPEND`.
pub const DM_DEV_SUSPEND: u32 = request_code(DM_DEV_SUSPEND_CMD);
/// `DM_DEV_STATUS`.
pub const DM_DEV_STATUS: u32 = request_code(DM_DEV_STATUS_CMD);
/// `DM_DEV_WAIT`.
pub const DM_DEV_WAIT: u32 = request_code(DM_DEV_WAIT_CMD);
/// `DM_TABLE_LOAD`.
pub const DM_TABLE_LOAD: u32 = request_code(DM_TABLE_LOAD_CMD);
/// `DM_TABLE_CLEAR`.
pub const DM_TABLE_CLEAR: u32 = request_code(DM_TABLE_CLEAR_CMD);
/// `DM_TABLE_DEPS`.
pub const DM_TABLE_DEPS: u32 = request_code(DM_TABLE_DEPS_CMD);
/// `DM_TABLE_STATUS`.
pub const DM_TABLE_STATUS: u32 = request_code(DM_TABLE_STATUS_CMD);
/// `DM_LIST_VERSIONS`.
pub const DM_LIST_VERSIONS: u32 = request_code(DM_LIST_VERSIONS_CMD);
/// `DM_TARGET_MSG`.
pub const DM_TARGET_MSG: u32 = request_code(DM_TARGET_MSG_CMD);
/// `DM_DEV_SET_GEOMETRY`.
pub const DM_DEV_SET_GEOMETRY: u32 = request_code(DM_DEV_SET_GEOMETRY_CMD);
/// `DM_DEV_ARM_POLL`.
pub const DM_DEV_ARM_POLL: u32 = request_code(DM_DEV_ARM_POLL_CMD);
/// `DM_GET_TARGET_VERSION`.
pub const DM_GET_TARGET_VERSION: u32 = request_code(DM_GET_TARGET_VERSION_CMD);

// ---------------------------------------------------------------------------------------------
// Flags (`dm_ioctl::flags`).

/// `DM_READONLY_FLAG` (in/out): the device or table is read-only.
pub const DM_READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG` (in/out): suspend (in) / the device is suspended (out).
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
/// `DM_EXISTS_FLAG`: libdevmapper-private bit 2; the kernel ignores it.
pub const DM_EXISTS_FLAG: u32 = 1 << 2;
/// `DM_PERSISTENT_DEV_FLAG` (in): use the minor in `dev` on create.
pub const DM_PERSISTENT_DEV_FLAG: u32 = 1 << 3;
/// `DM_STATUS_TABLE_FLAG` (in): `DM_TABLE_STATUS` returns the table instead of the status.
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
/// `DM_ACTIVE_PRESENT_FLAG` (out): the device has an active table.
pub const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
/// `DM_INACTIVE_PRESENT_FLAG` (out): the device has an inactive table.
pub const DM_INACTIVE_PRESENT_FLAG: u32 = 1 << 6;
/// `DM_BUFFER_FULL_FLAG` (out): the reply did not fit the buffer.
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
/// `DM_SKIP_BDGET_FLAG` (in): obsolete, ignored.
pub const DM_SKIP_BDGET_FLAG: u32 = 1 << 9;
/// `DM_SKIP_LOCKFS_FLAG` (in): do not freeze the filesystem when suspending.
pub const DM_SKIP_LOCKFS_FLAG: u32 = 1 << 10;
/// `DM_NOFLUSH_FLAG` (in): requeue in-flight I/O instead of flushing it when suspending.
pub const DM_NOFLUSH_FLAG: u32 = 1 << 11;
/// `DM_QUERY_INACTIVE_TABLE_FLAG` (in): status/table/deps of the inactive table.
pub const DM_QUERY_INACTIVE_TABLE_FLAG: u32 = 1 << 12;
/// `DM_UEVENT_GENERATED_FLAG` (out): a uevent was generated (udev cookie protocol).
pub const DM_UEVENT_GENERATED_FLAG: u32 = 1 << 13;
/// `DM_UUID_FLAG` (in): rename sets the uuid; list devices returns uuids.
pub const DM_UUID_FLAG: u32 = 1 << 14;
/// `DM_SECURE_DATA_FLAG` (in): wipe kernel buffers that held the ioctl data.
pub const DM_SECURE_DATA_FLAG: u32 = 1 << 15;
/// `DM_DATA_OUT_FLAG` (out): a message reply is present.
pub const DM_DATA_OUT_FLAG: u32 = 1 << 16;
/// `DM_DEFERRED_REMOVE` (in/out): remove on last close / a deferred remove is pending.
pub const DM_DEFERRED_REMOVE: u32 = 1 << 17;
/// `DM_INTERNAL_SUSPEND_FLAG` (out): the device is suspended internally.
pub const DM_INTERNAL_SUSPEND_FLAG: u32 = 1 << 18;
/// `DM_IMA_MEASUREMENT_FLAG` (in): return the IMA measurement instead of the table.
pub const DM_IMA_MEASUREMENT_FLAG: u32 = 1 << 19;

// ---------------------------------------------------------------------------------------------
// udev cookie protocol (libdevmapper's, carried in `event_nr`).

/// `DM_COOKIE_MAGIC`: high half of the SysV semaphore key of a udev cookie.
pub const DM_COOKIE_MAGIC: u32 = 0x0D4D;
/// `DM_UDEV_FLAGS_MASK`: the udev flags live in the high 16 bits of a cookie.
pub const DM_UDEV_FLAGS_MASK: u32 = 0xFFFF_0000;
/// `DM_UDEV_FLAGS_SHIFT`.
pub const DM_UDEV_FLAGS_SHIFT: u32 = 16;
/// `DM_UDEV_DISABLE_DM_RULES_FLAG`.
pub const DM_UDEV_DISABLE_DM_RULES_FLAG: u16 = 0x0001;
/// `DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG`.
pub const DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG: u16 = 0x0002;
/// `DM_UDEV_DISABLE_DISK_RULES_FLAG`.
pub const DM_UDEV_DISABLE_DISK_RULES_FLAG: u16 = 0x0004;
/// `DM_UDEV_DISABLE_OTHER_RULES_FLAG`.
pub const DM_UDEV_DISABLE_OTHER_RULES_FLAG: u16 = 0x0008;
/// `DM_UDEV_LOW_PRIORITY_FLAG`.
pub const DM_UDEV_LOW_PRIORITY_FLAG: u16 = 0x0010;
/// `DM_UDEV_DISABLE_LIBRARY_FALLBACK`.
pub const DM_UDEV_DISABLE_LIBRARY_FALLBACK: u16 = 0x0020;
/// `DM_UDEV_PRIMARY_SOURCE_FLAG`.
pub const DM_UDEV_PRIMARY_SOURCE_FLAG: u16 = 0x0040;
/// `DM_SUBSYSTEM_UDEV_FLAG0`; flags 1..7 are the next bits up to 0x8000.
pub const DM_SUBSYSTEM_UDEV_FLAG0: u16 = 0x0100;

// ---------------------------------------------------------------------------------------------
// Layout assertions: a wrong layout fails the build.

const _: () = {
    assert!(size_of::<dm_ioctl>() == 312);
    assert!(core::mem::align_of::<dm_ioctl>() == 8);
    assert!(offset_of!(dm_ioctl, version) == 0);
    assert!(offset_of!(dm_ioctl, data_size) == 12);
    assert!(offset_of!(dm_ioctl, data_start) == 16);
    assert!(offset_of!(dm_ioctl, target_count) == 20);
    assert!(offset_of!(dm_ioctl, open_count) == 24);
    assert!(offset_of!(dm_ioctl, flags) == 28);
    assert!(offset_of!(dm_ioctl, event_nr) == 32);
    assert!(offset_of!(dm_ioctl, padding) == 36);
    assert!(offset_of!(dm_ioctl, dev) == 40);
    assert!(offset_of!(dm_ioctl, name) == 48);
    assert!(offset_of!(dm_ioctl, uuid) == 176);
    assert!(offset_of!(dm_ioctl, data) == 305);

    assert!(size_of::<dm_target_spec>() == 40);
    assert!(offset_of!(dm_target_spec, sector_start) == 0);
    assert!(offset_of!(dm_target_spec, length) == 8);
    assert!(offset_of!(dm_target_spec, status) == 16);
    assert!(offset_of!(dm_target_spec, next) == 20);
    assert!(offset_of!(dm_target_spec, target_type) == 24);

    assert!(size_of::<dm_target_deps>() == 8);
    assert!(offset_of!(dm_target_deps, count) == 0);

    assert!(size_of::<dm_name_list>() == 16);
    assert!(offset_of!(dm_name_list, dev) == 0);
    assert!(offset_of!(dm_name_list, next) == 8);

    assert!(size_of::<dm_target_versions>() == 16);
    assert!(offset_of!(dm_target_versions, next) == 0);
    assert!(offset_of!(dm_target_versions, version) == 4);

    assert!(size_of::<dm_target_msg>() == 8);
    assert!(offset_of!(dm_target_msg, sector) == 0);
};

#[cfg(test)]
mod tests;
