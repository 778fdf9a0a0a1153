//! LVM2 volume groups read without lvm2: PV label, metadata area, text metadata, typed
//! model, the device-mapper plan lvm2 would load, and offline LV export.
//!
//! Data flows one way, bytes to types to plans; nothing here opens a path or talks to the
//! kernel. PVs are read through [`crate::io::ReadAt`], so image files, block devices and
//! byte slices all work.
//!
//! | module | what it reads or builds | lvm2 counterpart |
//! |---|---|---|
//! | [`crc`] | lvm2's CRC-32 variant | `lib/misc/crc.c` |
//! | [`label`] | PV label, `pv_header`, area lists, extension | `lib/label`, `text_label.c` |
//! | [`mda`] | metadata area header, committed text (ring wrap, CRC) | `format-text.c` |
//! | [`config`] | the text grammar, parse and print | `libdm/libdm-config.c` |
//! | [`model`] | VG / PV / LV / segment types and validation | `import_vsn1.c`, segtypes |
//! | [`scan`] | PVs grouped into VGs, newest copy, completeness | `lvmcache`, `vg_read` |
//! | [`plan`] | dm names, uuids, tables, creation order | `dev_manager.c`, `libdm-deptree.c` |
//! | [`export`] | LV contents from PV images | — |
//!
//! ```
//! use devmapper::lvm::config;
//! let cfg = config::parse(b"vg0 { seqno = 3 }")?;
//! assert_eq!(cfg.find("vg0/seqno").and_then(|n| n.value.as_ref()).map(|v| v.items().len()), Some(1));
//! # Ok::<(), devmapper::lvm::ParseError>(())
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod crc;
pub mod error;
pub mod id;
pub mod label;
pub mod mda;
pub mod model;

pub use error::{Error, ParseError, ParseErrorKind, Result};
pub use id::LvmId;

#[cfg(test)]
mod tests;
