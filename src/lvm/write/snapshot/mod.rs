//! LVM snapshots written without lvm2 (issue 12): metadata transforms on a
//! [`VolumeGroup`](crate::lvm::model::VolumeGroup) and the live operations.
//!
//! | module | what it does | lvm2 counterpart |
//! |---|---|---|
//! | [`merge`] | `lvconvert --merge`: refusals, immediate or delayed start, poll, finish | `lvconvert.c`, `lvconvert_poll.c`, `snapshot_manip.c` |
#![forbid(unsafe_code)]

pub mod merge;
