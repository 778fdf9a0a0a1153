//! Positioned, read-only access to images and block devices: the [`ReadAt`] trait.
//!
//! Offline parsers (`cow`, `lvm`) never open paths themselves; they read through `ReadAt`,
//! which is implemented for byte slices (tests, fuzzing) and for [`std::fs::File`]
//! (regular files and block devices alike).
//!
//! ```
//! use devmapper::io::ReadAt;
//! let data: &[u8] = b"hello world";
//! let mut buf = [0u8; 5];
//! data.read_exact_at(&mut buf, 6).unwrap();
//! assert_eq!(&buf, b"world");
//! assert_eq!(data.size().unwrap(), 11);
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Read-only positioned access to a fixed-size byte source.
pub trait ReadAt {
    /// Fill `buf` from `offset`; an attempt to read past the end is an
    /// [`io::ErrorKind::UnexpectedEof`] error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The size of the source in bytes.
    fn size(&self) -> io::Result<u64>;
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
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
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
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

/// Open a file or block device read-only.
pub fn open_read_only(path: &Path) -> io::Result<File> {
    File::open(path)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the source",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_bounds() {
        let data: &[u8] = &[1, 2, 3];
        let mut b = [0u8; 2];
        assert!(data.read_exact_at(&mut b, 1).is_ok());
        assert_eq!(b, [2, 3]);
        assert_eq!(
            data.read_exact_at(&mut b, 2).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(data.read_exact_at(&mut b, u64::MAX).is_err());
    }

    #[test]
    fn file_size_and_read() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"abcdef").unwrap();
        assert_eq!(ReadAt::size(&f).unwrap(), 6);
        let mut b = [0u8; 3];
        ReadAt::read_exact_at(&f, &mut b, 3).unwrap();
        assert_eq!(&b, b"def");
    }
}
