//! PV label, `pv_header` and metadata area layout; wiping them.
#![forbid(unsafe_code)]
