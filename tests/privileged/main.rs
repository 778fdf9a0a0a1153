//! Privileged integration tests: real device-mapper, real loop devices.
//!
//! They run as root on any Linux host with device-mapper, and in the project's VM
//! (`scripts/vm/test.sh`). Elsewhere each prints `SKIP <test>: <reason>` and returns.

mod activate;
mod backup;
mod cli;
mod common;
mod cow_kernel;
mod cow_probe;
mod files;
mod ioctl;
mod lvm_activate;
mod lvm_merge;
mod lvm_powercut;
mod lvm_print;
mod lvm_pv;
mod lvm_snapshot;
mod lvm_write;
mod snapshot;
mod snapshot_set;
mod snapshot_walkthrough;
mod targets;
