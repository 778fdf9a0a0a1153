//! Holes: where a source's data is ([`ReadAt::next_data`], from `SEEK_DATA`/`SEEK_HOLE`
//! for files), and a copy into an [`Output`] that reads only the data and leaves the
//! holes as holes in a regular-file output ([`copy_to`]).
//!
//! ```
//! use std::os::unix::fs::FileExt;
//! use devmapper::io::{copy_to, Input, Output, Overwrite, ReadAt};
//! let dir = tempfile::tempdir()?;
//! let src = dir.path().join("sparse.img");
//! let f = std::fs::File::create(&src)?;
//! f.set_len(64 << 20)?; // 64 MiB, all hole...
//! f.write_all_at(b"data", 32 << 20)?; // ...but for one block in the middle
//! let input = Input::open(&src)?;
//! // The first data at or after byte 0 is in the middle (where the file system says).
//! let (start, end) = input.next_data(0)?.expect("some data");
//! assert!(start <= 32 << 20 && end > 32 << 20);
//! let dst = dir.path().join("copy.img");
//! let out = Output::create(&dst, &[&input], Overwrite::Refuse)?;
//! assert_eq!(copy_to(&input, &out)?, 64 << 20);
//! out.commit()?;
//! assert_eq!(std::fs::read(&dst)?, std::fs::read(&src)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{self, Write};

use nix::errno::Errno;
use nix::unistd::{Whence, lseek};

use super::output::{Output, OutputKind};
use super::{CopyError, ReadAt};

/// Bytes read or written per call of the copies.
pub(crate) const PIECE: u64 = 1 << 20;

/// [`ReadAt::next_data`] of an open file: `SEEK_DATA` then `SEEK_HOLE` from `offset`,
/// within `size`. A file system or device without hole support (block devices, `EINVAL`)
/// answers "data to the end"; `ENXIO` means no data at or after `offset`. The file's
/// position is restored.
pub(crate) fn file_next_data(
    file: &File,
    offset: u64,
    size: u64,
) -> io::Result<Option<(u64, u64)>> {
    if offset >= size {
        return Ok(None);
    }
    let Ok(at) = i64::try_from(offset) else {
        return Ok(Some((offset, size)));
    };
    let saved = lseek(file, 0, Whence::SeekCur).ok();
    let found = match lseek(file, at, Whence::SeekData) {
        Ok(start) => {
            let start = u64::try_from(start).unwrap_or(offset).max(offset);
            if start >= size {
                None
            } else {
                let end = i64::try_from(start)
                    .ok()
                    .and_then(|s| lseek(file, s, Whence::SeekHole).ok())
                    .and_then(|e| u64::try_from(e).ok())
                    .map_or(size, |e| e.min(size));
                Some((start, end.max(start + 1).min(size)))
            }
        }
        Err(Errno::ENXIO) => None,
        Err(_) => Some((offset, size)),
    };
    if let Some(pos) = saved {
        let _ = lseek(file, pos, Whence::SeekSet);
    }
    Ok(found)
}

/// The data ranges of `src` in `[from, to)`, in order, clamped to it: `(start, end)` pairs
/// from [`ReadAt::next_data`]; what lies between them reads as zeros.
pub(crate) fn data_ranges<R: ReadAt + ?Sized>(
    src: &R,
    from: u64,
    to: u64,
) -> impl Iterator<Item = io::Result<(u64, u64)>> + '_ {
    let mut pos = from;
    std::iter::from_fn(move || {
        if pos >= to {
            return None;
        }
        match src.next_data(pos) {
            Err(e) => {
                pos = to;
                Some(Err(e))
            }
            Ok(None) => {
                pos = to;
                None
            }
            Ok(Some((s, e))) => {
                // Guard against a source answering out of order: never go backwards.
                let s = s.max(pos);
                if s >= to {
                    pos = to;
                    return None;
                }
                let e = e.clamp(s + 1, to);
                pos = e;
                Some(Ok((s, e)))
            }
        }
    })
}

/// A zero-filled buffer for writing holes where the output cannot keep them.
fn zeros() -> &'static [u8] {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    &ZEROS
}

/// Write `len` zero bytes at `at` (`at` is `None` for a stream).
fn write_zeros(out: &Output, at: Option<u64>, len: u64) -> Result<(), CopyError> {
    let z = zeros();
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(z.len() as u64) as usize;
        let piece = z.get(..n).unwrap_or_default();
        let offset = at.unwrap_or(0) + done;
        let r = match at {
            Some(a) => out.write_all_at(piece, a + done).map_err(io::Error::from),
            None => (&*out).write_all(piece),
        };
        r.map_err(|source| CopyError::Write { offset, source })?;
        done += n as u64;
    }
    Ok(())
}

/// Copy all of `src` into `out`, reading only its data ([`ReadAt::next_data`]): in a
/// regular-file output the holes stay holes (never written; the length is set at the
/// end), a block device gets zeros written over them (its old content must not show
/// through), a stream gets zeros in order. The bytes are the same as [`super::copy`]'s.
/// Returns the bytes copied (the source's size).
///
/// # Errors
/// [`CopyError::Read`] or [`CopyError::Write`], with the offset.
pub fn copy_to<R: ReadAt + ?Sized>(src: &R, out: &Output) -> Result<u64, CopyError> {
    let size = src
        .size()
        .map_err(|source| CopyError::Read { offset: 0, source })?;
    let kind = out.kind();
    let mut buf = vec![0u8; usize::try_from(size.min(PIECE)).unwrap_or(0)];
    let mut pos = 0u64;
    for range in data_ranges(src, 0, size) {
        let (start, end) = range.map_err(|source| CopyError::Read {
            offset: pos,
            source,
        })?;
        if start > pos && kind != OutputKind::File {
            let at = (kind == OutputKind::BlockDevice).then_some(pos);
            write_zeros(out, at, start - pos)?;
        }
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            src.read_exact_at(chunk, at)
                .map_err(|source| CopyError::Read { offset: at, source })?;
            let r = if kind == OutputKind::Stream {
                (&*out).write_all(chunk)
            } else {
                out.write_all_at(chunk, at).map_err(io::Error::from)
            };
            r.map_err(|source| CopyError::Write { offset: at, source })?;
            at += n as u64;
        }
        pos = end;
    }
    if pos < size && kind != OutputKind::File {
        let at = (kind == OutputKind::BlockDevice).then_some(pos);
        write_zeros(out, at, size - pos)?;
    }
    if kind == OutputKind::File {
        out.set_len(size).map_err(|e| CopyError::Write {
            offset: size,
            source: e.into(),
        })?;
    }
    Ok(size)
}
