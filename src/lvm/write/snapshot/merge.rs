//! `lvconvert --merge` of a snapshot into its origin (lvm2's rules; see the module table).
#![forbid(unsafe_code)]
