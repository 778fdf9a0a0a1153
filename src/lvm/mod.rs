//! LVM2 volume groups without lvm2: PV label, metadata area, text metadata, typed model,
//! the device-mapper plan lvm2 would load, offline LV export, and (in [`write`](mod@write)) the
//! writing half: metadata text, lvm2's commit protocol and locks, pvcreate ... pvremove.
//!
//! Reading flows one way, bytes to types to plans; only [`activate`] talks to the kernel and
//! only [`write`](mod@write) changes bytes on PVs. PVs are read through [`crate::io::ReadAt`] (and
//! written through [`crate::io::WriteAt`]), so image files, block devices and byte slices
//! all work.
//!
//! | module | what it reads or builds | lvm2 counterpart |
//! |---|---|---|
//! | [`crc`] | lvm2's CRC-32 variant | `lib/misc/crc.c` |
//! | [`label`] | PV label, `pv_header`, area lists, extension | `lib/label`, `text_label.c` |
//! | [`mda`] | metadata area header, committed text (ring wrap, CRC) | `format-text.c` |
//! | [`config`] | the text grammar, parse and print | `libdm/libdm-config.c` |
//! | [`model`] | VG / PV / LV / segment types and validation | `import_vsn1.c`, segtypes |
//! | [`metadata_text`] | on-disk text and backup files told apart | `vgcfgrestore -f` |
//! | [`scan`] | PVs grouped into VGs, newest copy, completeness | `lvmcache`, `vg_read` |
//! | [`devices`] | the block devices lvm2 scans by default (sysfs, lvm2's filters) | `dev-cache.c`, `lib/filters` |
//! | [`lvs`] | `lvs` rows: attr letters, sizes, `Data%` | `lv.c`, `report.c` |
//! | [`report`] | what `vgs`/`pvs`/`lvs` call things, a VG by name | `report.c` |
//! | [`names`] | VG and LV name rules, with lvm2's reasons and wording | `lvm-string.c`, `validate_new_vg_name` |
//! | [`index`] | a VG's LVs, PVs and snapshot relations by name | — |
//! | [`check`] | why lvm2 would refuse to activate a VG | `vg_read`, `_access_vg_*` |
//! | [`plan`] | dm names, uuids, typed tables, creation order | `dev_manager.c`, `libdm-deptree.c` |
//! | [`export`] | LV contents from PV images | — |
//! | [`activate`] | plans applied with the ioctl core (the only kernel user here) | `activate.c` |
//! | [`write`](mod@write) | metadata text, commit, locks, allocation, PV labels, pvcreate ... pvremove | `format-text.c`, `lv_manip.c`, tools |
//!
//! ```
//! use devmapper::lvm::{config, model::VolumeGroup, plan};
//! use devmapper::targets::DevRef;
//! let text = br#"vg0 {
//! id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE"
//! seqno = 1
//! status = ["RESIZEABLE", "READ", "WRITE"]
//! extent_size = 8192
//! max_lv = 0
//! max_pv = 0
//! physical_volumes {
//! pv0 {
//! id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
//! status = ["ALLOCATABLE"]
//! pe_start = 2048
//! pe_count = 100
//! }
//! }
//! logical_volumes {
//! root {
//! id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlK"
//! status = ["READ", "WRITE", "VISIBLE"]
//! segment_count = 1
//! segment1 {
//! start_extent = 0
//! extent_count = 10
//! type = "striped"
//! stripe_count = 1
//! stripes = ["pv0", 0]
//! }
//! }
//! }
//! }
//! contents = "Text Format Volume Group"
//! version = 1
//! "#;
//! let vg = VolumeGroup::from_config(&config::parse(text)?)?;
//! let pv_dev = |_pv: &devmapper::lvm::model::PhysicalVolume| Some(DevRef::num(8, 16));
//! let p = plan::plan_vg(&vg, &pv_dev, &plan::PlanOptions::default())?;
//! assert_eq!(p.devices[0].name.as_str(), "vg0-root");
//! assert_eq!(p.devices[0].table.to_string(), "0 81920 linear 8:16 2048\n");
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod activate;
pub mod check;
pub mod config;
pub mod crc;
pub mod devices;
pub mod error;
pub mod export;
pub mod id;
pub mod index;
pub mod label;
pub mod lvs;
pub mod mda;
pub mod metadata_text;
pub mod model;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod scan;
pub mod write;

pub use error::{
    AreaList, Error, ExportErrorKind, LabelErrorKind, MdaErrorKind, ModelErrorKind, ParseError,
    ParseErrorKind, PlanErrorKind, Result, ScanErrorKind, UnmappableKind, ValueType,
};
pub use id::LvmId;

#[cfg(test)]
mod tests;
