//! The only place in the crate that calls into the kernel with `unsafe`.
//!
//! Three primitives, each a few lines with a `// SAFETY:` comment:
//! - [`Buffer`]: an 8-byte aligned, zero-initialised byte buffer (`Vec<u64>` underneath),
//!   viewed as bytes;
//! - [`dm_ioctl`]: the `ioctl(2)` call of one [`Command`] on the control node with such a
//!   buffer;
//! - [`sysv`]: the SysV semaphore calls of the udev cookie handshake;
//! - [`guardian`]: the forked process that resumes suspended devices when their
//!   suspender dies or a suspend outlasts its bound.
//!
//! Everything above this module (encoding requests, decoding replies) is safe code working
//! on byte slices with bounds checks.
#![allow(unsafe_code)]

pub(crate) mod guardian;
pub(crate) mod sysv;

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::kernel::command::Command;
use crate::kernel::error::Errno;

/// An 8-byte aligned, zero-filled buffer whose length is a multiple of 8 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Buffer {
    words: Vec<u64>,
}

impl Buffer {
    /// A zeroed buffer of at least `len` bytes (rounded up to a multiple of 8).
    pub(crate) fn zeroed(len: usize) -> Self {
        Self {
            words: vec![0u64; len.div_ceil(8)],
        }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.words.len() * 8
    }

    /// The buffer as bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: `words` is a live, initialised allocation of `words.len()` u64s, i.e.
        // exactly `len()` bytes; u8 has alignment 1 and every bit pattern is a valid u8; the
        // returned slice borrows `self`, so the memory outlives it and is not mutated meanwhile.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len()) }
    }

    /// The buffer as mutable bytes.
    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `as_bytes`; the mutable borrow of `self` makes the byte view the
        // only access to the allocation while it lives, and any byte pattern written through
        // it is a valid u64.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// Issue one device-mapper command on the control node.
///
/// The request code comes from `cmd`, so it is always one of the `_IOWR(0xfd, nr, struct
/// dm_ioctl)` codes. The buffer must start with an encoded `struct dm_ioctl` whose
/// `data_size` is at most the buffer's length (the caller sets it to exactly that; this is
/// checked here); the kernel reads at most `data_size` bytes from it and writes at most
/// `data_size` bytes back.
pub(crate) fn dm_ioctl(fd: BorrowedFd<'_>, cmd: Command, buf: &mut Buffer) -> Result<(), Errno> {
    let declared = buf
        .as_bytes()
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0) as usize;
    if buf.len() < std::mem::size_of::<dm_sys::dm_ioctl>() || declared > buf.len() {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: `fd` is a valid open descriptor for the borrow's lifetime. The request code
    // of a `Command` is always one of the `_IOWR(0xfd, nr, struct dm_ioctl)` codes (no
    // caller can pass another number), whose argument is a pointer to a
    // `struct dm_ioctl` followed by payload; the buffer is 8-byte aligned (Vec<u64>), at
    // least 312 bytes, and `data_size` (checked above) does not exceed its length, so the
    // kernel's copy_from_user/copy_to_user stay inside the allocation, which stays borrowed
    // mutably for the whole call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            cmd.request_code() as _,
            buf.as_bytes_mut().as_mut_ptr(),
        )
    };
    if rc < 0 {
        Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_is_aligned_and_zeroed() {
        let mut b = Buffer::zeroed(313);
        assert_eq!(b.len(), 320);
        assert_eq!(b.as_bytes().as_ptr() as usize % 8, 0);
        assert!(b.as_bytes().iter().all(|&x| x == 0));
        b.as_bytes_mut()[319] = 7;
        assert_eq!(b.as_bytes()[319], 7);
    }

    #[test]
    fn refuses_a_lying_data_size() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let mut b = Buffer::zeroed(312);
        b.as_bytes_mut()[12..16].copy_from_slice(&4096u32.to_ne_bytes());
        use std::os::fd::AsFd;
        assert_eq!(
            dm_ioctl(f.as_fd(), Command::Version, &mut b),
            Err(Errno(libc::EINVAL))
        );
    }
}
