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

/// A pause point at step `k` of workflow `op`, inside a guarded suspend window (feature
/// `fault-injection`, and only after [`arm`], like [`step`]).
///
/// With `DEVMAPPER_FAULT_PAUSE=<op>:<k>` the process prints
/// `fault injection: paused at <op> step <k>` to stderr and sleeps until it is killed; with
/// `DEVMAPPER_FAULT_PAUSE=<op>:<k>:<ms>` it sleeps `ms` milliseconds and goes on. Tests
/// SIGKILL it there, or let a pause outlast the suspend bound. Without the feature this
/// compiles to nothing.
#[inline]
pub(crate) fn pause(op: &str, k: u32) {
    #[cfg(feature = "fault-injection")]
    if ARMED.load(std::sync::atomic::Ordering::SeqCst)
        && let Ok(v) = std::env::var("DEVMAPPER_FAULT_PAUSE")
    {
        let mut parts = v.splitn(3, ':');
        if parts.next() == Some(op) && parts.next().and_then(|s| s.parse().ok()) == Some(k) {
            eprintln!("fault injection: paused at {op} step {k}");
            match parts.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                None => loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                },
            }
            eprintln!("fault injection: going on after {op} step {k}");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (op, k);
}
