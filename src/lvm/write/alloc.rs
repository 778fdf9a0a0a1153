//! Free space and the normal allocation policy.
#![forbid(unsafe_code)]
