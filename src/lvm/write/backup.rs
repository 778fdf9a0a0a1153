//! `/etc/lvm/backup` and `/etc/lvm/archive` files.
#![forbid(unsafe_code)]
