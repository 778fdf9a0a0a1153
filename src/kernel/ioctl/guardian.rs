//! The suspend guardian: a forked child process that resumes devices when the process that
//! suspended them dies, or when a suspend lasts longer than a bound.
//!
//! A device-mapper suspend is kernel state, not process state: when the suspending process
//! is SIGKILLed or OOM-killed between suspend and resume, the device stays suspended and
//! every writer on it blocks in D state until someone resumes it. The guardian closes that
//! hole. Before the first suspend of a workflow step the parent
//!
//! 1. encodes every ioctl the child may need (`DM_DEV_STATUS`, `DM_DEV_SUSPEND` without
//!    `DM_SUSPEND_FLAG`, i.e. resume, and `DM_TABLE_CLEAR`) into buffers it owns,
//! 2. creates a `socketpair` (close-on-exec) and `fork()`s.
//!
//! The child keeps only the control node's descriptor and its end of the socket (every
//! other descriptor is closed, so it holds no exclusive block-device claim or output pipe of
//! the parent), leaves the parent's session (`setsid`, so a Ctrl-C or a process-group
//! kill of the parent does not reach it), ignores the termination signals a service manager
//! sends to the whole group, sets its OOM score to the minimum (best effort), and `poll`s the
//! socket:
//!
//! - a `D` byte (disarm) from the parent: `_exit(0)`, nothing done;
//! - an `R` byte (the parent's step failed and was undone): run the rules once, so whatever
//!   the undo could not resume gets the guardian's retries too, then `_exit`;
//! - end of file: the parent has died (its end was closed by the kernel when its last thread
//!   exited, after any ioctl it was in finished or aborted): run the rules once, `_exit`;
//! - the bound passes: send `F` (fired) to the parent, run the rules, and from then on run
//!   them again every [`ENFORCE_PERIOD_MS`] until the parent disarms or dies, so a suspend
//!   the slow parent makes after the bound is ended at once too.
//!
//! A rule is "if device W is suspended (per `DM_DEV_STATUS`), resume devices R1, R2, ... in
//! this order"; a resume that fails is retried once after `DM_TABLE_CLEAR`, so the device
//! ends up running on its old table rather than staying suspended. A device that is not
//! suspended is never touched, so a guardian that fires before the parent's suspend, or
//! after its resume, changes nothing.
//!
//! The child is always reaped: [`Guardian::disarm`] (and `Drop`) send `D` and `waitpid`;
//! when the parent dies first the child is reparented and reaped by init. It always
//! exits: on `D`, on end of file, or on any socket error; it never outlives its parent by
//! more than one pass over the rules.
//!
//! # Why `fork` is sound here
//! The parent may be multi-threaded; after `fork` only async-signal-safe operations are
//! allowed in the child, because another thread may have held a lock (the allocator's,
//! stdio's) at the moment of the fork. The child therefore only makes raw system calls
//! (`setsid`, `sigaction`, `open`/`write`/`close`, `close_range`, `poll`, `recv`, `send`,
//! `ioctl`, `clock_gettime`, `_exit`) and copies bytes between buffers that were allocated
//! before the fork. It never allocates, frees, locks, panics or unwinds, and it leaves
//! through `_exit`, so no destructor (which would free) and no `atexit` handler runs.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::Buffer;
use crate::kernel::command::Command;
use crate::kernel::error::Errno;

/// After the bound passed, how often the child re-checks the rules (milliseconds).
pub(crate) const ENFORCE_PERIOD_MS: i32 = 20;

/// Byte the parent sends to disarm.
const DISARM: u8 = b'D';
/// Byte the parent sends on an error path: run the rules once now, then exit.
const RUN_AND_EXIT: u8 = b'R';
/// Byte the child sends when the bound passed.
const FIRED: u8 = b'F';

/// Child exit status: disarmed before the bound.
const EXIT_QUIET: i32 = 0;
/// Child exit status: disarmed after the bound passed.
const EXIT_FIRED: i32 = 1;
/// Child exit status: the parent went away (end of file or socket error).
const EXIT_ORPHANED: i32 = 2;

fn last_errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// One pre-encoded device-mapper ioctl: a pristine copy and a scratch copy the kernel may
/// overwrite, so the child can issue it any number of times without allocating.
#[derive(Debug)]
pub(crate) struct Request {
    cmd: Command,
    template: Buffer,
    scratch: Buffer,
}

impl Request {
    /// A request of `cmd` whose encoded buffer (header with `data_size` set) is `template`.
    ///
    /// # Errors
    /// `EINVAL` when the buffer is shorter than the header or declares more than its length.
    pub(crate) fn new(cmd: Command, template: Buffer) -> Result<Self, Errno> {
        let declared = template
            .as_bytes()
            .get(12..16)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .unwrap_or(0) as usize;
        if template.len() < std::mem::size_of::<dm_sys::dm_ioctl>() || declared > template.len() {
            return Err(Errno(libc::EINVAL));
        }
        Ok(Self {
            cmd,
            scratch: template.clone(),
            template,
        })
    }

    /// Issue the request (async-signal-safe): the reply's flags word, or `None` when the
    /// ioctl failed.
    fn issue(&mut self, fd: RawFd) -> Option<u32> {
        // Same lengths by construction (`scratch` is a clone of `template`), so this is a
        // plain memcpy: no allocation, no panic.
        self.scratch
            .as_bytes_mut()
            .copy_from_slice(self.template.as_bytes());
        // Plain arithmetic on the command number: async-signal-safe.
        let code = self.cmd.request_code();
        // SAFETY: `fd` is the control node's descriptor, open in this process. The request
        // code of a `Command` is always an `_IOWR(0xfd, nr, struct dm_ioctl)` request (no
        // caller can pass another number), whose argument points to a dm_ioctl header plus
        // payload; `scratch` is 8-byte aligned, at least 312 bytes, and its
        // declared `data_size` is at most its length (checked in `new`), so the kernel's
        // copies stay inside the allocation, which nothing else touches during the call.
        let rc = unsafe { libc::ioctl(fd, code as _, self.scratch.as_bytes_mut().as_mut_ptr()) };
        if rc < 0 {
            return None;
        }
        let b = self.scratch.as_bytes();
        Some(u32::from_ne_bytes([b[28], b[29], b[30], b[31]]))
    }
}

/// Resume one device; on failure issue `retry_after` (e.g. `DM_TABLE_CLEAR` of it, the
/// suspend of a handover source) and resume again.
#[derive(Debug)]
pub(crate) struct Action {
    /// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`.
    pub(crate) resume: Request,
    /// Issued in order before the one retry.
    pub(crate) retry_after: Vec<Request>,
}

/// When the device `status` asks about is suspended, run `actions` in order.
#[derive(Debug)]
pub(crate) struct Rule {
    /// `DM_DEV_STATUS` of the watched device.
    pub(crate) status: Request,
    /// What to do when it is suspended.
    pub(crate) actions: Vec<Action>,
}

fn run_rules(rules: &mut [Rule], fd: RawFd) {
    for r in rules.iter_mut() {
        let Some(flags) = r.status.issue(fd) else {
            // Gone (or the call failed): nothing to resume.
            continue;
        };
        if flags & dm_sys::DM_SUSPEND_FLAG == 0 {
            continue;
        }
        for a in r.actions.iter_mut() {
            if a.resume.issue(fd).is_none() {
                for p in a.retry_after.iter_mut() {
                    let _ = p.issue(fd);
                }
                let _ = a.resume.issue(fd);
            }
        }
    }
}

/// A live guardian child. Disarm it after the last resume; dropping it disarms too.
#[derive(Debug)]
pub(crate) struct Guardian {
    pid: libc::pid_t,
    sock: Option<OwnedFd>,
    fired: bool,
    reaped: bool,
}

impl Guardian {
    /// Fork a guardian that runs `rules` when this process dies or `bound` passes.
    ///
    /// # Errors
    /// `socketpair` or `fork` fails.
    pub(crate) fn arm(
        control: BorrowedFd<'_>,
        mut rules: Vec<Rule>,
        bound: Duration,
    ) -> Result<Guardian, Errno> {
        let bound_ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX);
        let mut sv: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `sv` is a valid, writable array of two ints for the call to fill.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(last_errno());
        }
        // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody
        // else; each OwnedFd takes sole ownership of one.
        let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let ctl = control.as_raw_fd();
        let child_sock = theirs.as_raw_fd();
        // SAFETY: fork has no memory-safety preconditions of its own; what makes it sound
        // in a possibly multi-threaded process is what the child does afterwards:
        // `child_main` only makes async-signal-safe system calls on memory allocated
        // before this point and leaves through `_exit` (see the module docs).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(last_errno());
        }
        if pid == 0 {
            child_main(ctl, child_sock, &mut rules, bound_ms);
        }
        drop(theirs);
        Ok(Guardian {
            pid,
            sock: Some(mine),
            fired: false,
            reaped: false,
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Whether the bound has passed (the child said so). Does not block.
    pub(crate) fn fired(&mut self) -> bool {
        if !self.fired
            && let Some(s) = &self.sock
        {
            let mut b = [0u8; 1];
            // SAFETY: `b` is a writable one-byte buffer living across the call; `s` is our
            // open end of the socket. MSG_PEEK leaves the byte for later checks.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n == 1 && b[0] == FIRED {
                self.fired = true;
            }
        }
        self.fired
    }

    /// Tell the child to exit without acting and reap it; `true` when it had fired.
    pub(crate) fn disarm(mut self) -> bool {
        self.finish(DISARM)
    }

    /// Tell the child to run its rules once now, then exit; reap it. `true` when it had
    /// fired before.
    pub(crate) fn run_and_disarm(mut self) -> bool {
        self.finish(RUN_AND_EXIT)
    }

    /// Close our end without disarming (as our death would) and reap: test only.
    #[cfg(test)]
    fn abandon(mut self) -> i32 {
        self.sock = None;
        let st = self.reap();
        self.reaped = true;
        st
    }

    fn finish(&mut self, byte: u8) -> bool {
        if self.reaped {
            return self.fired;
        }
        let _ = self.fired();
        if let Some(s) = self.sock.take() {
            // SAFETY: a one-byte buffer that lives across the call; MSG_NOSIGNAL turns a
            // dead peer into EPIPE instead of SIGPIPE. A failure (the child already exited)
            // is harmless: the reap below still happens.
            unsafe {
                libc::send(
                    s.as_raw_fd(),
                    (&byte as *const u8).cast(),
                    1,
                    libc::MSG_NOSIGNAL,
                );
            }
            drop(s);
        }
        let status = self.reap();
        self.reaped = true;
        if status == EXIT_FIRED {
            self.fired = true;
        }
        self.fired
    }

    /// `waitpid` the child; its exit status (-1 when unknown, e.g. SIGCHLD is ignored and
    /// the kernel reaped it).
    fn reap(&mut self) -> i32 {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: `status` is a valid out pointer; `pid` is our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -1
                };
            }
            if r < 0 && last_errno().0 == libc::EINTR {
                continue;
            }
            return -1;
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.finish(DISARM);
    }
}

/// Monotonic milliseconds (async-signal-safe).
fn now_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    #[allow(
        clippy::useless_conversion,
        reason = "time_t and c_long are i32 on 32-bit targets"
    )]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec.saturating_mul(1000).saturating_add(nsec / 1_000_000)
}

/// Close every descriptor except `keep` (sorted, distinct); async-signal-safe.
fn close_all_but(keep: [RawFd; 2]) {
    let mut from: libc::c_uint = 0;
    for k in keep {
        let k = k as libc::c_uint;
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, libc::c_uint::MAX);
}

fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: close_range takes plain integers. Closing descriptors the child does not
    // use is the point (they are the child's copies; the parent's stay open).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close one by one, up to a generous limit.
    let last = last.min(65_535);
    let mut fd = first;
    while fd <= last {
        // SAFETY: close takes an integer; closing an unused number fails with EBADF.
        unsafe {
            libc::close(fd as RawFd);
        }
        fd += 1;
    }
}

/// The child: see the module docs. Never returns.
fn child_main(ctl: RawFd, sock: RawFd, rules: &mut [Rule], bound_ms: i64) -> ! {
    // Every unsafe block in this function is one raw system call with integer arguments or
    // pointers to memory that lives on this stack or was allocated before the fork; all are
    // async-signal-safe and none allocates.
    // SAFETY: setsid takes no arguments (it fails harmlessly if we already lead a group).
    unsafe {
        libc::setsid();
    }
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGPIPE,
    ] {
        // SAFETY: see the comment at the top of this function; SIG_IGN installs no handler
        // code.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    // Best effort: the guardian is what un-freezes the machine after an OOM kill, so the
    // OOM killer must not pick it (it shares the parent's pages and so its score).
    // SAFETY: see the comment at the top of this function; the path is a static C string.
    let f = unsafe {
        libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if f >= 0 {
        let v = b"-1000";
        // SAFETY: see the comment at the top of this function; `v` is a static buffer.
        unsafe {
            libc::write(f, v.as_ptr().cast(), v.len());
            libc::close(f);
        }
    }
    let keep = if ctl < sock { [ctl, sock] } else { [sock, ctl] };
    close_all_but(keep);

    let deadline = now_ms().saturating_add(bound_ms);
    let mut fired = false;
    loop {
        let timeout = if fired {
            ENFORCE_PERIOD_MS
        } else {
            deadline
                .saturating_sub(now_ms())
                .clamp(0, i64::from(i32::MAX)) as i32
        };
        let mut pfd = libc::pollfd {
            fd: sock,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: see the comment at the top of this function; one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if n < 0 {
            if last_errno_raw() == libc::EINTR {
                continue;
            }
            run_rules(rules, ctl);
            exit(EXIT_ORPHANED);
        }
        if n == 0 {
            if !fired {
                fired = true;
                // SAFETY: see the comment at the top of this function; a static byte.
                unsafe {
                    libc::send(
                        sock,
                        (&FIRED as *const u8).cast(),
                        1,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    );
                }
            }
            run_rules(rules, ctl);
            continue;
        }
        let mut b = [0u8; 1];
        // SAFETY: see the comment at the top of this function; `b` is on this stack.
        let r = unsafe { libc::recv(sock, b.as_mut_ptr().cast(), 1, 0) };
        if r == 1 && (b[0] == DISARM || b[0] == RUN_AND_EXIT) {
            if b[0] == RUN_AND_EXIT {
                run_rules(rules, ctl);
            }
            exit(if fired { EXIT_FIRED } else { EXIT_QUIET });
        }
        if r < 0 && last_errno_raw() == libc::EINTR {
            continue;
        }
        if r == 1 {
            // Unknown byte: ignore.
            continue;
        }
        // End of file or an error: the parent is gone.
        run_rules(rules, ctl);
        exit(EXIT_ORPHANED);
    }
}

/// errno without touching `std::io::Error` (async-signal-safe).
fn last_errno_raw() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid to read.
    unsafe { *libc::__errno_location() }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once, running no destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Instant;

    fn gone(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    }

    /// A request that fails on /dev/null (ENOTTY): exercises the child's paths without
    /// device-mapper.
    fn null_rule() -> Rule {
        let req = || {
            let mut b = Buffer::zeroed(312);
            b.as_bytes_mut()[12..16].copy_from_slice(&312u32.to_ne_bytes());
            Request::new(Command::DevStatus, b).unwrap()
        };
        Rule {
            status: req(),
            actions: vec![Action {
                resume: req(),
                retry_after: vec![req()],
            }],
        }
    }

    #[test]
    fn disarmed_before_the_bound_is_quiet_and_reaped() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut g =
            Guardian::arm(null.as_fd(), vec![null_rule()], Duration::from_secs(30)).unwrap();
        let pid = g.pid();
        assert!(!gone(pid));
        assert!(!g.fired());
        let t = Instant::now();
        assert!(!g.disarm(), "reported fired");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(gone(pid), "child {pid} not reaped");
    }

    #[test]
    fn past_the_bound_it_fires_and_keeps_going_until_disarmed() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut g =
            Guardian::arm(null.as_fd(), vec![null_rule()], Duration::from_millis(50)).unwrap();
        let pid = g.pid();
        let t = Instant::now();
        while !g.fired() {
            assert!(t.elapsed() < Duration::from_secs(5), "never fired");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Still alive (enforcing) after firing, until disarmed.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!gone(pid));
        assert!(g.disarm());
        assert!(gone(pid));
    }

    #[test]
    fn run_and_disarm_reaps() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let g = Guardian::arm(null.as_fd(), vec![null_rule()], Duration::from_secs(30)).unwrap();
        let pid = g.pid();
        assert!(!g.run_and_disarm());
        assert!(gone(pid));
    }

    #[test]
    fn drop_disarms_and_reaps() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let g = Guardian::arm(null.as_fd(), vec![], Duration::from_secs(30)).unwrap();
        let pid = g.pid();
        drop(g);
        assert!(gone(pid));
    }

    #[test]
    fn parent_end_closed_means_orphaned() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let g = Guardian::arm(null.as_fd(), vec![null_rule()], Duration::from_secs(30)).unwrap();
        let t = Instant::now();
        assert_eq!(g.abandon(), EXIT_ORPHANED);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn refuses_a_lying_data_size() {
        let mut b = Buffer::zeroed(312);
        b.as_bytes_mut()[12..16].copy_from_slice(&4096u32.to_ne_bytes());
        assert_eq!(
            Request::new(Command::DevStatus, b).unwrap_err(),
            Errno(libc::EINVAL)
        );
    }
}
