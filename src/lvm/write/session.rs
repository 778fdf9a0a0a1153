//! Lock, re-read, refuse what is unsafe, commit, keep backups.
#![forbid(unsafe_code)]
