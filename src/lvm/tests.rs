//! Unit tests of the LVM2 reader, one file per area under `tests/`.

mod activate;
mod config;
mod crc;
mod export;
mod label;
mod mda;
mod model;
mod plan;
mod sample;
mod scale;
mod scan;
mod writer;
