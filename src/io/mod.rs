//! Files and devices for offline commands: positioned reads ([`ReadAt`]) and writes
//! ([`WriteAt`], [`MemDevice`]), inputs opened
//! safely ([`Input`]), outputs that can never overwrite an input or leave a partial file
//! behind ([`Output`]), and a copy loop whose errors say whether reading or writing failed
//! ([`copy`]), and the bounds-checked reader of on-disk integers ([`bytes`]).
//!
//! Offline parsers (`cow`, `lvm`) never open paths themselves; they read through `ReadAt`,
//! which is implemented for byte slices (tests, fuzzing), for [`std::fs::File`] (regular
//! files and block devices alike) and for [`Input`]. Commands open every input with
//! [`Input::open`] (regular files and block devices only, never blocking on a FIFO) and
//! every output with [`Output::create`].
//!
//! ```
//! use devmapper::io::ReadAt;
//! let data: &[u8] = b"hello world";
//! let mut buf = [0u8; 5];
//! data.read_exact_at(&mut buf, 6).unwrap();
//! assert_eq!(&buf, b"world");
//! assert_eq!(data.size().unwrap(), 11);
//! ```
//!
//! An export from an input to an output, end to end:
//!
//! ```
//! use devmapper::io::{copy, Input, Output, Overwrite};
//! let dir = tempfile::tempdir()?;
//! let src = dir.path().join("lv.img");
//! std::fs::write(&src, vec![7u8; 3 << 20])?;
//! let input = Input::open(&src)?;
//! let dst = dir.path().join("copy.img");
//! let mut out = Output::create(&dst, &[&input], Overwrite::Refuse)?;
//! assert_eq!(copy(&input, &mut out)?, 3 << 20);
//! out.commit()?;
//! assert_eq!(std::fs::read(&dst)?, std::fs::read(&src)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub mod bytes;
mod input;
mod output;
mod sparse;

pub use input::{FileId, FileKind, Input, InputError, input_error, read_capped, read_file_capped};
pub use output::{Output, OutputError, OutputKind, Overwrite};
pub use sparse::copy_to;
pub(crate) use sparse::data_ranges;

/// Read-only positioned access to a fixed-size byte source.
pub trait ReadAt {
    /// Fill `buf` from `offset`; an attempt to read past the end is an
    /// [`io::ErrorKind::UnexpectedEof`] error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The size of the source in bytes.
    fn size(&self) -> io::Result<u64>;

    /// The first range at or after `offset` that may hold data, as `(start, end)` with
    /// `offset <= start < end <= size`: the bytes from `offset` to `start` are a hole
    /// (they read as zeros) and need not be read. `None`: only zeros from `offset` to the
    /// end. Files answer from the file system (`SEEK_DATA`/`SEEK_HOLE`), LV and snapshot
    /// readers from their sources; the default says everything is data.
    ///
    /// ```
    /// use devmapper::io::ReadAt;
    /// let bytes: &[u8] = &[1, 2, 3];
    /// assert_eq!(bytes.next_data(1)?, Some((1, 3)));
    /// assert_eq!(bytes.next_data(3)?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let size = self.size()?;
        Ok((offset < size).then_some((offset, size)))
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for File {
    /// Offsets past 2^63 - 1 (where `pread` says only "Invalid argument") are an
    /// [`OffsetOutOfRange`] error of kind [`io::ErrorKind::InvalidInput`].
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        if offset
            .checked_add(len)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                OffsetOutOfRange { offset, len },
            ));
        }
        FileExt::read_exact_at(self, buf, offset)
    }

    /// Regular files report their length; block devices their capacity (`lseek(SEEK_END)`
    /// works for both on Linux).
    fn size(&self) -> io::Result<u64> {
        let meta = self.metadata()?;
        if meta.is_file() {
            return Ok(meta.len());
        }
        let mut f: &File = self;
        let pos = f.stream_position()?;
        let end = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(pos))?;
        Ok(end)
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        sparse::file_next_data(self, offset, ReadAt::size(self)?)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).next_data(offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).next_data(offset)
    }
}

/// Positioned writes to a fixed-size device, and a barrier that makes them durable.
///
/// Writers of on-disk formats (the LVM metadata commit, PV labels) go through this trait so
/// that image files, block devices and in-memory devices ([`MemDevice`]) behave alike.
///
/// ```
/// use devmapper::io::{MemDevice, ReadAt, WriteAt};
/// let dev = MemDevice::new(1024);
/// dev.write_all_at(b"LABELONE", 512)?;
/// dev.sync()?;
/// let mut buf = [0u8; 8];
/// dev.read_exact_at(&mut buf, 512)?;
/// assert_eq!(&buf, b"LABELONE");
/// // Writes never grow a device.
/// assert!(dev.write_all_at(b"x", 1024).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait WriteAt: ReadAt {
    /// Write all of `buf` at `offset`; a write past the end of the device is an
    /// [`io::ErrorKind::UnexpectedEof`] error and writes nothing.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Make every completed write durable (for a block device: flush its volatile write
    /// cache; for a file: `fdatasync`).
    fn sync(&self) -> io::Result<()>;
}

impl WriteAt for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).ok_or_else(eof)?;
        if end > i64::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                OffsetOutOfRange {
                    offset,
                    len: buf.len() as u64,
                },
            ));
        }
        if end > ReadAt::size(self)? {
            return Err(eof());
        }
        FileExt::write_all_at(self, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
}

/// A fixed-size device in memory (tests, fuzzing, building images before writing them).
#[derive(Debug, Default)]
pub struct MemDevice(std::cell::RefCell<Vec<u8>>);

impl MemDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: usize) -> MemDevice {
        MemDevice(std::cell::RefCell::new(vec![0; len]))
    }

    /// A device holding `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> MemDevice {
        MemDevice(std::cell::RefCell::new(bytes))
    }

    /// The device's bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0.into_inner()
    }

    /// A copy of the device's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }
}

impl ReadAt for MemDevice {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.borrow().as_slice().read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.borrow().len() as u64)
    }
}

impl WriteAt for MemDevice {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut dev = self.0.borrow_mut();
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        dev.get_mut(start..end)
            .ok_or_else(eof)?
            .copy_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Open a file or block device read-only (plain `open`; commands use [`Input::open`]).
pub fn open_read_only(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// A read at an offset no file or device can have (past 2^63 - 1 bytes), e.g. from a
/// corrupt `pe_start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "offset {offset} (reading {len} bytes) is out of range: files and devices end before \
     byte 2^63"
)]
#[non_exhaustive]
pub struct OffsetOutOfRange {
    /// The offset asked for.
    pub offset: u64,
    /// The length of the read.
    pub len: u64,
}

/// A [`copy`] that failed: while reading the source or while writing the output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// Reading the source at `offset` failed.
    #[error("reading the source at byte {offset}: {source}")]
    Read {
        /// Byte offset in the source.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the output (the piece from source byte `offset`) failed.
    #[error("writing the output at byte {offset}: {source}")]
    Write {
        /// Byte offset in the output.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<CopyError> for io::Error {
    fn from(e: CopyError) -> io::Error {
        let kind = match &e {
            CopyError::Read { source, .. } | CopyError::Write { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// Copy all of `src` to `out`, in order, in 1 MiB pieces; returns the bytes copied.
///
/// # Errors
/// [`CopyError::Read`] or [`CopyError::Write`], with the offset.
pub fn copy<R: ReadAt + ?Sized, W: Write + ?Sized>(src: &R, out: &mut W) -> Result<u64, CopyError> {
    let size = src
        .size()
        .map_err(|source| CopyError::Read { offset: 0, source })?;
    let mut buf = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).min(1 << 20)];
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        src.read_exact_at(chunk, pos)
            .map_err(|source| CopyError::Read {
                offset: pos,
                source,
            })?;
        out.write_all(chunk).map_err(|source| CopyError::Write {
            offset: pos,
            source,
        })?;
        pos += n as u64;
    }
    Ok(pos)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the source",
    )
}

#[cfg(test)]
mod tests;
