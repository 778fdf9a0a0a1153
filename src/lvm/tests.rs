//! Unit tests of the LVM2 reader, one file per area under `tests/`.

mod activate;
mod alloc;
mod alloc_lvm2;
mod commit;
mod config;
mod crc;
mod export;
mod label;
mod lock;
mod mda;
mod merge;
mod model;
mod plan;
mod print;
mod print_backup;
mod print_props;
mod print_refusals;
mod pv;
mod sample;
mod scale;
mod scan;
mod session;
mod writer;
