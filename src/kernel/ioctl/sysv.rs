//! SysV semaphores for the libdevmapper-compatible udev cookie handshake.
//!
//! The semaphore starts at 1 (our own reference); one is added per uevent-generating ioctl
//! and udev's `dmsetup udevcomplete <cookie>` takes it away again. We drop our reference and
//! wait (polling with a deadline, so it can never hang) for zero.

use std::time::{Duration, Instant};

use crate::kernel::error::Errno;

/// `DM_COOKIE_MAGIC << 16`: high half of every cookie semaphore key.
const KEY_BASE: i32 = (dm_sys::DM_COOKIE_MAGIC as i32) << 16;

fn last_errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// udev's side of the handshake (`dmsetup udevcomplete`): take one away from the
/// semaphore of `cookie` (its low 16 bits name the semaphore).
pub(crate) fn complete(cookie: u32) -> Result<(), Errno> {
    let key = KEY_BASE | (cookie & 0xffff) as i32;
    // SAFETY: semget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::semget(key, 1, 0) };
    if id < 0 {
        return Err(last_errno());
    }
    let mut op = libc::sembuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: libc::IPC_NOWAIT as libc::c_short,
    };
    // SAFETY: `op` is a valid sembuf living across the call and nsops is 1.
    let rc = unsafe { libc::semop(id, &mut op, 1) };
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

/// A cookie semaphore owned by this process; removed on drop.
#[derive(Debug)]
pub(crate) struct CookieSem {
    id: i32,
    base: u16,
}

impl CookieSem {
    /// Create a fresh semaphore with value 1 under an unused `0x0D4Dxxxx` key.
    pub(crate) fn create() -> Result<Self, Errno> {
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        for attempt in 0u64..1024 {
            let base = ((seed.wrapping_add(attempt.wrapping_mul(0x9e37_79b9))) & 0xffff) as u16;
            if base == 0 {
                continue;
            }
            // SAFETY: semget takes plain integers and touches no memory of ours.
            let id = unsafe {
                libc::semget(
                    KEY_BASE | i32::from(base),
                    1,
                    libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
                )
            };
            if id < 0 {
                let e = last_errno();
                if e.0 == libc::EEXIST {
                    continue;
                }
                return Err(e);
            }
            let sem = CookieSem { id, base };
            // SAFETY: SETVAL's variadic argument is an `int` value (the `val` member of
            // `union semun`); `id` is the semaphore set just created with one semaphore.
            let rc = unsafe { libc::semctl(id, 0, libc::SETVAL, 1 as libc::c_int) };
            if rc < 0 {
                return Err(last_errno());
            }
            return Ok(sem);
        }
        Err(Errno(libc::EEXIST))
    }

    /// The 16-bit cookie base (low half of the key).
    pub(crate) fn base(&self) -> u16 {
        self.base
    }

    /// Add `delta` to the semaphore without blocking.
    pub(crate) fn add(&self, delta: i16) -> Result<(), Errno> {
        let mut op = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            sem_flg: libc::IPC_NOWAIT as libc::c_short,
        };
        // SAFETY: `op` is a valid sembuf living across the call and nsops is 1.
        let rc = unsafe { libc::semop(self.id, &mut op, 1) };
        if rc < 0 { Err(last_errno()) } else { Ok(()) }
    }

    /// The current value.
    pub(crate) fn value(&self) -> Result<i32, Errno> {
        // SAFETY: GETVAL takes no variadic argument and reads no memory of ours.
        let v = unsafe { libc::semctl(self.id, 0, libc::GETVAL) };
        if v < 0 { Err(last_errno()) } else { Ok(v) }
    }

    /// Wait until the value reaches zero or `timeout` passes; `Ok(false)` on timeout.
    pub(crate) fn wait_zero(&self, timeout: Duration) -> Result<bool, Errno> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.value()? == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for CookieSem {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no variadic argument; `id` is our own semaphore set. An
        // error (already removed) is harmless and ignored.
        unsafe {
            libc::semctl(self.id, 0, libc::IPC_RMID);
        }
    }
}
