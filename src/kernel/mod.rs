//! The kernel layer: everything that talks to device-mapper through its ioctl interface.
//!
//! ```no_run
//! use devmapper::kernel::DeviceMapper;
//! let dm = DeviceMapper::new()?;
//! println!("device-mapper interface {}", dm.version()?);
//! # Ok::<(), devmapper::Error>(())
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | `ioctl` (private) | aligned request buffer, bounds-checked reply decoding: the crate's only unsafe |
//! | [`command`] | the 18 commands and the interface version |
//! | [`reply`] | the values the kernel's replies carry (device list entries, target lines, target versions) |
//! | `wire` (private; public with the `fuzzing` feature) | the request encoder and bounds-checked reply decoders |
//! | [`id`], [`devnum`] | validated names, uuids and device numbers |
//! | [`error`] | the kernel layer's error type |
//! | [`DeviceMapper`] (`dm/`) | the handle: one safe method per command, one request path |
//! | [`guard`] | the suspend guardian: nothing stays suspended past a bound |
//! | [`nodes`] | `/dev/mapper` node maintenance |
//! | [`listing`] | every device with its state, as `ls` shows it |
//! | [`stats`] | counts and times of the ioctls made, per command (profiling) |
//! | `undo` (private) | the one dm transaction: undo steps run on drop unless committed |

pub mod command;
pub mod devnum;
pub mod error;
pub mod id;
mod ioctl;
pub mod reply;
#[cfg(feature = "fuzzing")]
pub mod wire;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod wire;

pub(crate) mod dm;
pub mod guard;
pub mod listing;
pub mod nodes;
pub mod stats;
pub(crate) mod undo;

pub use dm::{
    CreateOptions, DeviceInfo, DeviceMapper, DmFlags, Geometry, LoadOptions, Options, RemoveMode,
    StatusFlush, SuspendOptions, Which, availability,
};
