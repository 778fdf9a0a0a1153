//! Typed targets: parameters and status of each target family.
#![forbid(unsafe_code)]
