//! Writing LVM2 volume groups without lvm2: metadata text as lvm2 prints it, lvm2's
//! two-phase commit on every metadata area, lvm2's lock files, extent allocation, PV
//! labels, and the operations built from them (`pvcreate` ... `pvremove`).
//!
//! Everything here is written so that a running lvm2 and this crate can share a VG: the
//! same locks, the same commit protocol, text that lvm2 reads, writes back and `vgck`s.
//!
//! | module | what it does | lvm2 counterpart |
//! |---|---|---|
//! | [`text`] | typed model to metadata text, on-disk and backup-file forms | `export.c`, `flags.c` |
//! | [`backup`] | `/etc/lvm/backup` and `/etc/lvm/archive` files | `archiver.c`, `archive.c` |
//! | [`commit`] | new copy in the ring, precommit slot, commit slot, revert | `format-text.c` `_vg_write_raw` |
//! | [`lock`] | `V_<vg>` and `P_global` lock files (flock, inode re-check) | `file_locking.c` |
//! | [`alloc`] | free space and the normal allocation policy | `lv_manip.c`, `pv_map.c` |
//! | [`pv`] | PV label, `pv_header` and metadata area layout; wiping them | `pvcreate`, `text_label.c` |
//! | [`session`] | lock, re-read, refuse what is unsafe, commit, keep backups | `vg_read`/`vg_write`/`vg_commit` |
//! | [`ops`] | pvcreate, vgcreate, lvcreate, lvremove, vgremove, pvremove | `tools/*.c` |
//! | [`snapshot`] | snapshot metadata, COW sizes, live creation, removal, merge | `snapshot_manip.c`, `lvcreate.c` |
//! | [`error`] | what can go wrong while writing | — |
#![forbid(unsafe_code)]

pub mod alloc;
pub mod backup;
pub mod commit;
pub mod error;
pub mod lock;
pub mod ops;
pub mod pv;
pub mod session;
pub mod snapshot;
pub mod text;
