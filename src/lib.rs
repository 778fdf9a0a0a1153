//! # devmapper: Linux device-mapper in pure Rust
//!
//! LVM-style snapshots, rollback and consistent backups without libdevmapper or lvm2.
//!
//! Layers, data flowing one way (bytes → parsed types → plans → ioctl calls):
//!
//! | module | layer | what it holds | unsafe |
//! |---|---|---|---|
//! | [`dm_sys`] (crate) | kernel ABI | raw `<linux/dm-ioctl.h>` layout | layout only |
//! | [`kernel`] | kernel | the [`DeviceMapper`] handle, commands, replies, ids, the suspend guardian | only in `kernel::ioctl` |
//! | [`units`] | values | sectors and bytes | none |
//! | [`table`] | table model | a validated table: lines of typed targets | none |
//! | [`targets`] | table model | one typed module per target type (linear, snapshot, thin, ...) | none |
//! | [`io`] | on-disk formats | bounded reads of images and block devices, safe outputs | none |
//! | [`probe`] | on-disk formats | what a device holds (filesystem, PV, md, LUKS, ...) | none |
//! | [`cow`] | on-disk formats | the dm-snapshot COW store: read, write, export, merge offline | none |
//! | [`lvm`] | on-disk formats + workflow | LVM2 metadata: scan, model, plan, activate, export | none |
//! | [`snapshot`] | workflows | wrap, snapshot, drop, rollback, recover, activate at boot | none |
//! | [`snapshot_set`] | workflows | several snapshots (wrapped devices and LVs) in one freeze | none |
//! | [`backup`] | workflows | snapshot, mount read-only, run a command, clean up; recover after a kill | none |
//!
//! ```no_run
//! use devmapper::{DeviceMapper, DmName};
//! let dm = DeviceMapper::new()?;
//! let v = dm.version()?;
//! println!("device-mapper interface {v}");
//! for dev in dm.list()? {
//!     println!("{} {}", dev.name, dev.dev);
//! }
//! # Ok::<(), devmapper::Error>(())
//! ```
#![deny(unsafe_code)]

// Kernel layer.
pub mod kernel;
// Values.
pub mod units;
// Table model.
pub mod table;
pub mod targets;
// On-disk formats.
pub mod cow;
pub mod io;
pub mod lvm;
pub mod probe;
// Workflows.
pub mod backup;
pub mod snapshot;
pub mod snapshot_set;

pub use kernel::command::{Command, Version};
pub use kernel::devnum::DevNum;
pub use kernel::error::{Errno, Error, Result};
pub use kernel::guard::{DEFAULT_SUSPEND_BOUND, GuardOutcome, GuardPlan, SuspendGuard};
pub use kernel::id::{DevId, DmName, DmUuid};
pub use kernel::nodes::NodeMode;
pub use kernel::reply::{DeviceEntry, RawTarget, TargetVersion};
pub use kernel::{
    CreateOptions, DeviceInfo, DeviceMapper, DmFlags, Geometry, LoadOptions, Options, RemoveMode,
    StatusFlush, SuspendOptions, Which, availability,
};
