//! The kernel's persistent snapshot exception store (COW device), read offline.
#![forbid(unsafe_code)]
