//! Fault injection for crash-safety tests (feature `fault-injection`, enabled only by the
//! unpublished `fault-tests` workspace member, never by this package's own targets).
//!
//! With the feature on *and* after the process called [`arm`],
//! `DEVMAPPER_FAULT_STEP=<op>:<k>` makes the process abort right after step `k` of
//! workflow `op` (`snapshot`, `drop`, `rollback`, `finish`), as a `kill -9` would. A
//! program that never calls [`arm`] (the dmsnap example, even when some workspace build
//! unifies the feature in) ignores the variable. Without the feature, [`step`] compiles
//! to nothing and [`arm`] does not exist.
#![forbid(unsafe_code)]

#[cfg(feature = "fault-injection")]
static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Let `DEVMAPPER_FAULT_STEP` abort this process (crash-safety tests only).
///
/// ```no_run
/// // In a test's child process, before running the workflow under test:
/// devmapper::snapshot::arm_fault_injection();
/// ```
#[cfg(feature = "fault-injection")]
pub fn arm() {
    ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Mark the end of step `k` of workflow `op`.
#[inline]
pub(crate) fn step(op: &str, k: u32) {
    #[cfg(feature = "fault-injection")]
    if ARMED.load(std::sync::atomic::Ordering::SeqCst)
        && let Ok(v) = std::env::var("DEVMAPPER_FAULT_STEP")
        && v == format!("{op}:{k}")
    {
        eprintln!("fault injection: aborting after {op} step {k}");
        std::process::abort();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (op, k);
}
