//! New copy in the ring, precommit slot, commit slot, revert.
#![forbid(unsafe_code)]
