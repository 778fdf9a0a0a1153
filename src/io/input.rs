//! Opening the inputs of offline commands: regular files and block devices only, opened
//! without ever blocking, identified by device and inode, read with bounds and caps.
//!
//! ```
//! use devmapper::io::{FileKind, Input, InputError, ReadAt};
//! let dir = tempfile::tempdir()?;
//! let img = dir.path().join("origin.img");
//! std::fs::write(&img, b"snapshot")?;
//! let input = Input::open(&img)?;
//! assert_eq!(input.kind(), FileKind::Regular);
//! assert_eq!(input.size()?, 8);
//! // A directory (or a FIFO, a character device, a socket) is refused by type, naming it.
//! let err = Input::open(dir.path()).unwrap_err();
//! assert!(matches!(err, InputError::Kind { kind: FileKind::Directory, .. }));
//! // A read past the end says so, with the sizes, instead of "failed to fill whole buffer".
//! let e = input.read_exact_at(&mut [0u8; 4], 6).unwrap_err();
//! let inner = e.get_ref().and_then(|e| e.downcast_ref::<InputError>());
//! assert!(matches!(inner, Some(InputError::PastEnd { offset: 6, len: 4, size: 8, .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{ReadAt, WriteAt};

/// What a path names, as `stat` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file (an image).
    Regular,
    /// A block device.
    BlockDevice,
    /// A character device (`/dev/zero`, a tty).
    CharDevice,
    /// A FIFO (named pipe) or a pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A directory.
    Directory,
    /// A symbolic link (only seen when links are not followed).
    Symlink,
}

impl FileKind {
    /// The kind of a file from its metadata.
    pub fn of(meta: &Metadata) -> FileKind {
        let ft = meta.file_type();
        if ft.is_file() {
            FileKind::Regular
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else if ft.is_char_device() {
            FileKind::CharDevice
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else if ft.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Symlink
        }
    }

    /// Whether offline commands read this kind: regular files and block devices, which
    /// have a size and positioned reads.
    pub fn is_image(self) -> bool {
        matches!(self, FileKind::Regular | FileKind::BlockDevice)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::BlockDevice => "a block device",
            FileKind::CharDevice => "a character device",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
        })
    }
}

/// Which file a path or descriptor is, independent of its name: a block device by its
/// device number (any node of it, under any name), anything else by device and inode
/// (symlinks followed, hard links equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileId {
    /// A block device, by `st_rdev`.
    Block {
        /// The device number.
        rdev: u64,
    },
    /// Any other file, by `st_dev` and `st_ino`.
    Inode {
        /// The filesystem's device.
        dev: u64,
        /// The inode number.
        ino: u64,
    },
}

impl FileId {
    /// The identity of a file from its (followed) metadata.
    pub fn of(meta: &Metadata) -> FileId {
        if meta.file_type().is_block_device() {
            FileId::Block { rdev: meta.rdev() }
        } else {
            FileId::Inode {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
    }

    /// The identity of what `path` names (symlinks followed).
    ///
    /// # Errors
    /// The `stat` error.
    pub fn of_path(path: &Path) -> io::Result<FileId> {
        Ok(FileId::of(&std::fs::metadata(path)?))
    }
}

/// An error opening or reading an input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// `stat` of the path failed (it does not exist, or is not reachable).
    #[error("{path}: {source}", path = path.display())]
    Stat {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path is neither a regular file nor a block device.
    #[error(
        "{path} is {kind}: only regular files (images) and block devices can be read",
        path = path.display()
    )]
    Kind {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// `open` failed.
    #[error("cannot open {path}{mode}: {source}", path = path.display(),
        mode = if *write { " read-write" } else { "" })]
    Open {
        /// The path.
        path: PathBuf,
        /// Whether it was opened for writing.
        write: bool,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A block device to be written is held by someone else (mounted, or opened
    /// exclusively by another program): the kernel refused the exclusive open.
    #[error(
        "{path} is in use (mounted, or held by another program): unmount it and stop \
         anything holding it first",
        path = path.display()
    )]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// Two inputs of one command are the same file or device (by identity, not name).
    #[error(
        "{path} and {other} are the same {what}",
        path = path.display(), other = other.display(),
        what = if matches!(id, FileId::Block { .. }) { "device" } else { "file" }
    )]
    SameFile {
        /// The input being opened.
        path: PathBuf,
        /// The input it is identical to.
        other: PathBuf,
        /// Their common identity.
        id: FileId,
    },
    /// A whole-file read stopped at the cap.
    #[error("{path} is too large: more than {cap} bytes", path = path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },
    /// A read beyond the end of the input.
    #[error(
        "{path} is {size} bytes, too small: a read of {len} bytes at byte {offset} needs \
         {needed} bytes",
        path = path.display(), needed = offset.saturating_add(*len)
    )]
    PastEnd {
        /// The path.
        path: PathBuf,
        /// Offset of the read.
        offset: u64,
        /// Length of the read.
        len: u64,
        /// Size of the input.
        size: u64,
    },
    /// A read failed.
    #[error("reading {path} at byte {offset}: {source}", path = path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Offset of the read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A write to an input opened read-write ([`Input::open_rw`]) failed.
    #[error("writing {path} at byte {offset}: {source}", path = path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Offset of the write.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<InputError> for io::Error {
    fn from(e: InputError) -> io::Error {
        let kind = match &e {
            InputError::Stat { source, .. }
            | InputError::Open { source, .. }
            | InputError::Read { source, .. }
            | InputError::Write { source, .. } => source.kind(),
            InputError::PastEnd { .. } => io::ErrorKind::UnexpectedEof,
            InputError::TooLarge { .. } => io::ErrorKind::FileTooLarge,
            InputError::InUse { .. } => io::ErrorKind::ResourceBusy,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// An open input: a regular file or a block device, with its path, kind, identity and
/// size (taken when it was opened). Implements [`ReadAt`]: reads are bounds-checked
/// against the size, and their errors name the path.
#[derive(Debug)]
pub struct Input {
    file: File,
    path: PathBuf,
    kind: FileKind,
    id: FileId,
    size: u64,
}

/// How an input is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    /// Read-write; a block device exclusively (`O_EXCL`), so a mounted one is refused.
    ReadWrite,
}

impl Input {
    /// Open `path` read-only: refuse anything but a regular file or a block device (by
    /// `stat` before opening, and `fstat` after), open it non-blocking, so a FIFO swapped
    /// in between cannot block, then clear `O_NONBLOCK`.
    ///
    /// # Errors
    /// [`InputError::Stat`], [`InputError::Kind`], [`InputError::Open`].
    pub fn open(path: &Path) -> Result<Input, InputError> {
        Self::open_with(path, Access::Read, &[])
    }

    /// Open `path` read-write (a block device exclusively), refusing it when it is the
    /// same file or device as one of `others`, before it is opened.
    ///
    /// ```
    /// use devmapper::io::{Input, InputError};
    /// let dir = tempfile::tempdir()?;
    /// let a = dir.path().join("a.img");
    /// std::fs::write(&a, [0u8; 512])?;
    /// std::fs::hard_link(&a, dir.path().join("b.img"))?;
    /// let origin = Input::open_rw(&a, &[])?;
    /// let err = Input::open_rw(&dir.path().join("b.img"), &[&origin]).unwrap_err();
    /// assert!(matches!(err, InputError::SameFile { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Input::open`]; [`InputError::SameFile`]; [`InputError::InUse`] for a block
    /// device held by someone else.
    pub fn open_rw(path: &Path, others: &[&Input]) -> Result<Input, InputError> {
        Self::open_with(path, Access::ReadWrite, others)
    }

    fn open_with(path: &Path, access: Access, others: &[&Input]) -> Result<Input, InputError> {
        let stat_err = |source| InputError::Stat {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(stat_err)?;
        let check = |meta: &Metadata| -> Result<(FileKind, FileId), InputError> {
            let kind = FileKind::of(meta);
            if !kind.is_image() {
                return Err(InputError::Kind {
                    path: path.to_owned(),
                    kind,
                });
            }
            let id = FileId::of(meta);
            if let Some(o) = others.iter().find(|o| o.id == id) {
                return Err(InputError::SameFile {
                    path: path.to_owned(),
                    other: o.path.clone(),
                    id,
                });
            }
            Ok((kind, id))
        };
        let (kind, _) = check(&meta)?;
        let write = access == Access::ReadWrite;
        let mut opts = OpenOptions::new();
        opts.read(true).write(write);
        let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
        if write && kind == FileKind::BlockDevice {
            flags |= libc::O_EXCL;
        }
        opts.custom_flags(flags);
        let file = opts.open(path).map_err(|source| {
            if write && source.raw_os_error() == Some(libc::EBUSY) {
                InputError::InUse {
                    path: path.to_owned(),
                }
            } else {
                InputError::Open {
                    path: path.to_owned(),
                    write,
                    source,
                }
            }
        })?;
        // What was opened is what counts (the path may have changed since the stat).
        let meta = file.metadata().map_err(stat_err)?;
        let (kind, id) = check(&meta)?;
        clear_nonblock(&file).map_err(|source| InputError::Open {
            path: path.to_owned(),
            write,
            source,
        })?;
        let size = match kind {
            FileKind::Regular => meta.len(),
            _ => (&file)
                .seek(SeekFrom::End(0))
                .and_then(|end| (&file).seek(SeekFrom::Start(0)).map(|_| end))
                .map_err(stat_err)?,
        };
        Ok(Input {
            file,
            path: path.to_owned(),
            kind,
            id,
            size,
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Regular file or block device.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Its identity (see [`FileId`]).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Size in bytes when it was opened.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Drop the clean cached pages of the input (best effort). A COW device is written by
    /// the kernel behind the page cache, so cached pages of it may be stale.
    pub fn drop_cache(&self) {
        let _ = nix::fcntl::posix_fadvise(
            &self.file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    /// Refuse `other` when it is the same file or device as this input.
    ///
    /// # Errors
    /// [`InputError::SameFile`] naming both paths.
    pub fn ensure_distinct(&self, other: &Input) -> Result<(), InputError> {
        if self.id == other.id {
            return Err(InputError::SameFile {
                path: other.path.clone(),
                other: self.path.clone(),
                id: self.id,
            });
        }
        Ok(())
    }

    /// Read the whole input, at most `cap` bytes: a larger one is refused without being
    /// read whole (a regular file by its size; a device after `cap + 1` bytes).
    ///
    /// # Errors
    /// [`InputError::TooLarge`], [`InputError::Read`].
    pub fn read_all(&self, cap: u64) -> Result<Vec<u8>, InputError> {
        if self.size > cap {
            return Err(InputError::TooLarge {
                path: self.path.clone(),
                cap,
            });
        }
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))
            .map_err(|source| InputError::Read {
                path: self.path.clone(),
                offset: 0,
                source,
            })?;
        read_capped(f, cap, &self.path)
    }
}

/// Read `r` to its end, at most `cap` bytes: reading stops after `cap + 1` bytes, so an
/// endless source (`/dev/zero`) or a huge file costs at most that much.
///
/// ```
/// use devmapper::io::{read_capped, InputError};
/// let err = read_capped(std::io::repeat(0), 1000, "zeros".as_ref()).unwrap_err();
/// assert!(matches!(err, InputError::TooLarge { cap: 1000, .. }));
/// assert_eq!(read_capped(&b"abc"[..], 3, "abc".as_ref()).unwrap(), b"abc");
/// ```
///
/// # Errors
/// [`InputError::TooLarge`] (naming `path`); [`InputError::Read`].
pub fn read_capped<R: Read>(r: R, cap: u64, path: &Path) -> Result<Vec<u8>, InputError> {
    let mut out = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| InputError::Read {
            path: path.to_owned(),
            offset: out.len() as u64,
            source,
        })?;
    if out.len() as u64 > cap {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            cap,
        });
    }
    Ok(out)
}

/// Open `path` as an input ([`Input::open`]) and read all of it, at most `cap` bytes
/// ([`Input::read_all`]).
///
/// # Errors
/// As those two.
pub fn read_file_capped(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    Input::open(path)?.read_all(cap)
}

pub(crate) fn clear_nonblock(file: &File) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(file, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
    fcntl(file, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

impl ReadAt for Input {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(InputError::PastEnd {
                path: self.path.clone(),
                offset,
                len,
                size: self.size,
            }
            .into());
        }
        FileExt::read_exact_at(&self.file, buf, offset).map_err(|source| {
            InputError::Read {
                path: self.path.clone(),
                offset,
                source,
            }
            .into()
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        super::sparse::file_next_data(&self.file, offset, self.size)
    }
}

/// Writes need an input opened with [`Input::open_rw`]; one opened with [`Input::open`]
/// refuses them (the descriptor is read-only).
impl WriteAt for Input {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(InputError::PastEnd {
                path: self.path.clone(),
                offset,
                len,
                size: self.size,
            }
            .into());
        }
        FileExt::write_all_at(&self.file, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Whether `err` (as returned by [`ReadAt`] methods) carries an [`InputError`], and which.
pub fn input_error(err: &io::Error) -> Option<&InputError> {
    err.get_ref().and_then(|e| e.downcast_ref::<InputError>())
}
