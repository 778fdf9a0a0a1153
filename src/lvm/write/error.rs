//! What can go wrong while writing.
#![forbid(unsafe_code)]
