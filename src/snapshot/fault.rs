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

/// A pause point at step `k` of workflow `op`, inside a guarded suspend window (feature
/// `fault-injection`, test builds only).
///
/// With `DEVMAPPER_FAULT_PAUSE=<op>:<k>` the process prints
/// `fault injection: paused at <op> step <k>` to stderr and sleeps until it is killed; with
/// `DEVMAPPER_FAULT_PAUSE=<op>:<k>:<ms>` it sleeps `ms` milliseconds and goes on. Tests
/// SIGKILL it there, or let a pause outlast the suspend bound. Without the feature this
/// compiles to nothing.
#[inline]
pub(crate) fn pause(op: &str, k: u32) {
    #[cfg(feature = "fault-injection")]
    if let Ok(v) = std::env::var("DEVMAPPER_FAULT_PAUSE") {
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
