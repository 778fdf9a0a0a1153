//! `V_<vg>` and `P_global` lock files (flock, inode re-check).
#![forbid(unsafe_code)]
