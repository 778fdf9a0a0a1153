//! Shared pieces of the end-to-end benches (`e2e_host`, `e2e_vm`).
#![allow(dead_code)]

pub mod run;
