//! LVM2 volume groups read without lvm2: PV label, metadata area, text metadata, plan.
#![forbid(unsafe_code)]
