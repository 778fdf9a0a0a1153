//! Crash-safety tests of devmapper's snapshot workflows, built with the `fault-injection`
//! feature (`tests/fault.rs`, privileged: run them in the VM with `scripts/vm/test.sh`).
//! This crate exists so that the feature is enabled by this package only, never for the
//! devmapper package's own targets such as the `dmsnap` example.
