//! Device-mapper tables: the `start length target params` text form.
#![forbid(unsafe_code)]
