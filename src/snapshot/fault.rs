//! Fault injection for crash-safety tests (feature `fault-injection`, test builds only).
//!
//! With the feature on, `DEVMAPPER_FAULT_STEP=<op>:<k>` makes the process abort right
//! after step `k` of workflow `op` (`snapshot`, `drop`, `rollback`, `finish`), as a
//! `kill -9` would. Without the feature, [`step`] compiles to nothing.
#![forbid(unsafe_code)]

/// Mark the end of step `k` of workflow `op`.
#[inline]
pub(crate) fn step(op: &str, k: u32) {
    #[cfg(feature = "fault-injection")]
    if let Ok(v) = std::env::var("DEVMAPPER_FAULT_STEP")
        && v == format!("{op}:{k}")
    {
        eprintln!("fault injection: aborting after {op} step {k}");
        std::process::abort();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (op, k);
}
