//! # devmapper: Linux device-mapper in pure Rust
//!
//! LVM-style snapshots, rollback and consistent backups without libdevmapper or lvm2.
//!
//! Layers, data flowing one way (bytes → parsed types → plans → ioctl calls):
//!
//! | module | what it is | unsafe |
//! |---|---|---|
//! | [`dm_sys`] (crate) | raw `<linux/dm-ioctl.h>` ABI | layout only |
//! | `ioctl` (private) | aligned request buffer, bounds-checked reply decoding | the only unsafe here |
//! | [`DeviceMapper`] | one safe method per device-mapper command | none |
//! | [`units`], [`DevNum`], [`DmName`], [`DmUuid`] | validated values | none |
//! | [`io`] | positioned reads over images and block devices | none |
//! | [`probe`] | what a device holds (filesystem, PV, md, LUKS, ...), from a few sectors | none |
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

pub mod devnum;
pub mod io;
pub mod units;

pub use devnum::DevNum;
pub mod command;
pub mod cow;
pub mod error;
pub mod id;
mod ioctl;
pub mod lvm;
pub mod probe;
pub mod reply;
pub mod table;
pub mod target;

pub use command::{Command, Version};
pub use error::{Errno, Error, Result};
pub use id::{DevId, DmName, DmUuid};
mod dm;
mod dm_typed;
pub mod guard;
pub mod nodes;

pub use dm::{
    CreateOptions, DeviceEntry, DeviceInfo, DeviceMapper, DmFlags, Geometry, LoadOptions, Options,
    SuspendOptions, Which, availability,
};
pub use guard::{DEFAULT_SUSPEND_BOUND, GuardOutcome, GuardPlan, SuspendGuard};
pub use nodes::NodeMode;
pub use reply::{RawTarget, TargetVersion};
pub mod snapshot;
