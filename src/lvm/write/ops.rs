//! Pvcreate, vgcreate, lvcreate, lvremove, vgremove, pvremove.
#![forbid(unsafe_code)]
