//! The output of an export: checked against the inputs by identity before anything is
//! opened for writing, never truncating anything on the way, and leaving nothing partial
//! behind.
//!
//! A regular-file output is written to a temporary file in the same directory and renamed
//! over the output path by [`Output::commit`]; dropped without a commit (an error, a
//! panic) the temporary file is removed. So the output path holds either what it held
//! before or the whole result, never a part, and an existing file is replaced only with
//! [`Overwrite::Replace`]. A block device is written in place (exclusively opened), and
//! counts as existing content. A pipe, FIFO or character device (`/dev/null`) is written
//! sequentially.
//!
//! ```
//! use std::io::Write;
//! use devmapper::io::{Input, Output, OutputError, Overwrite};
//! let dir = tempfile::tempdir()?;
//! let img = dir.path().join("disk.img");
//! std::fs::write(&img, b"precious")?;
//! let input = Input::open(&img)?;
//!
//! // The input itself as the output, by any name: refused before anything is opened.
//! let link = dir.path().join("link.img");
//! std::os::unix::fs::symlink(&img, &link)?;
//! let err = Output::create(&link, &[&input], Overwrite::Refuse).unwrap_err();
//! assert!(matches!(err, OutputError::SameAsInput { .. }));
//! let err = Output::create(&link, &[&input], Overwrite::Replace).unwrap_err();
//! assert!(matches!(err, OutputError::SameAsInput { .. }));
//! assert_eq!(std::fs::read(&img)?, b"precious");
//!
//! // A new file appears only when committed.
//! let out_path = dir.path().join("copy.img");
//! let mut out = Output::create(&out_path, &[&input], Overwrite::Refuse)?;
//! out.write_all(b"precious")?;
//! assert!(!out_path.exists());
//! out.commit()?;
//! assert_eq!(std::fs::read(&out_path)?, b"precious");
//!
//! // Now it exists and is not empty: replacing it needs `Overwrite::Replace`.
//! let err = Output::create(&out_path, &[&input], Overwrite::Refuse).unwrap_err();
//! assert!(matches!(err, OutputError::Exists { len: 8, .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::input::{FileId, FileKind, Input, clear_nonblock};

/// What to do when the output already holds something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overwrite {
    /// Refuse a non-empty regular file or a block device ([`OutputError::Exists`]).
    #[default]
    Refuse,
    /// Replace it (a regular file only once the new content is complete).
    Replace,
}

/// How an [`Output`] is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputKind {
    /// A regular file (written under a temporary name, renamed on commit): positioned
    /// writes, holes allowed.
    File,
    /// A block device, written in place: positioned writes, fixed capacity.
    BlockDevice,
    /// A pipe, FIFO or character device: sequential writes only.
    Stream,
}

/// An error preparing, writing or committing an output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output is one of the inputs (same inode, or the same block device), under
    /// whatever name.
    #[error(
        "the output {output} is the input {input}: refusing to overwrite an input",
        output = output.display(), input = input.display()
    )]
    SameAsInput {
        /// The output path.
        output: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// The output holds data and overwriting was not allowed.
    #[error(
        "{path} {what} ({kind} of {len} bytes)",
        path = path.display(),
        what = if *kind == FileKind::BlockDevice {
            "holds data: writing it would overwrite the device"
        } else {
            "already exists and is not empty"
        }
    )]
    Exists {
        /// The output path.
        path: PathBuf,
        /// Regular file or block device.
        kind: FileKind,
        /// Its size in bytes.
        len: u64,
    },
    /// The output is something that cannot be written to (a directory, a socket).
    #[error("{path} is {kind}: cannot write the output there", path = path.display())]
    Kind {
        /// The output path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// The output is a symbolic link to nothing: refused rather than guessing where to
    /// create the file.
    #[error("{path} is a dangling symbolic link", path = path.display())]
    DanglingSymlink {
        /// The output path.
        path: PathBuf,
    },
    /// The output is a FIFO that nobody reads.
    #[error("{path} is a FIFO (named pipe) with no reader", path = path.display())]
    NoReader {
        /// The output path.
        path: PathBuf,
    },
    /// A block device output is held by someone else (mounted, or opened exclusively).
    #[error(
        "{path} is in use (mounted, or held by another program)",
        path = path.display()
    )]
    InUse {
        /// The output path.
        path: PathBuf,
    },
    /// A block device output is smaller than the data.
    #[error("{path} is {size} bytes, {needed} are needed", path = path.display())]
    TooSmall {
        /// The output path.
        path: PathBuf,
        /// Its capacity.
        size: u64,
        /// The data's size.
        needed: u64,
    },
    /// `stat` or `open` of the output (or of its temporary file) failed.
    #[error("cannot open {path} for writing: {source}", path = path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A positioned write to a stream output.
    #[error("{path} is not seekable: it can only be written in order", path = path.display())]
    NotSeekable {
        /// The output path.
        path: PathBuf,
    },
    /// A write failed.
    #[error("writing {path}{at}: {source}", path = path.display(),
        at = offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Write {
        /// The output path.
        path: PathBuf,
        /// Where, for positioned writes.
        offset: Option<u64>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Syncing the output or renaming it into place failed.
    #[error("finishing {path}: {source}", path = path.display())]
    Commit {
        /// The output path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<OutputError> for io::Error {
    fn from(e: OutputError) -> io::Error {
        let kind = match &e {
            OutputError::Open { source, .. }
            | OutputError::Write { source, .. }
            | OutputError::Commit { source, .. } => source.kind(),
            OutputError::Exists { .. } => io::ErrorKind::AlreadyExists,
            OutputError::NotSeekable { .. } => io::ErrorKind::NotSeekable,
            OutputError::InUse { .. } => io::ErrorKind::ResourceBusy,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// Where an [`Output`] goes.
#[derive(Debug)]
enum Target {
    /// Written to `tmp`, renamed to `dest` on commit (`replace`: `dest` existed).
    Temp {
        tmp: PathBuf,
        dest: PathBuf,
        replace: bool,
    },
    Block {
        size: u64,
    },
    Stream,
}

/// An output checked against the inputs; see the [module documentation](crate::io).
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    file: File,
    target: Target,
    inputs: Vec<(FileId, PathBuf)>,
    done: bool,
}

impl Output {
    /// Check `path` against `inputs` and `policy`, then open it for writing (a regular
    /// file: a new temporary file next to it).
    ///
    /// # Errors
    /// [`OutputError::SameAsInput`] when `path` (followed through symlinks) is one of the
    /// inputs, whatever the policy; [`OutputError::Exists`] for a non-empty regular file or
    /// a block device under [`Overwrite::Refuse`]; [`OutputError::Kind`],
    /// [`OutputError::DanglingSymlink`], [`OutputError::NoReader`],
    /// [`OutputError::InUse`], [`OutputError::Open`].
    pub fn create(
        path: &Path,
        inputs: &[&Input],
        policy: Overwrite,
    ) -> Result<Output, OutputError> {
        let inputs: Vec<(FileId, PathBuf)> = inputs
            .iter()
            .map(|i| (i.id(), i.path().to_owned()))
            .collect();
        let open_err = |source| OutputError::Open {
            path: path.to_owned(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(OutputError::DanglingSymlink {
                        path: path.to_owned(),
                    });
                }
                None
            }
            Err(e) => return Err(open_err(e)),
        };
        let Some(meta) = meta else {
            let (file, tmp) = create_temp(path, None)?;
            return Ok(Output {
                path: path.to_owned(),
                file,
                target: Target::Temp {
                    tmp,
                    dest: path.to_owned(),
                    replace: false,
                },
                inputs,
                done: false,
            });
        };
        check_not_input(path, &FileId::of(&meta), &inputs)?;
        let kind = FileKind::of(&meta);
        match kind {
            FileKind::Regular => {
                if meta.len() > 0 && policy == Overwrite::Refuse {
                    return Err(OutputError::Exists {
                        path: path.to_owned(),
                        kind,
                        len: meta.len(),
                    });
                }
                // Replace the file the path leads to, not a symlink on the way.
                let dest = std::fs::canonicalize(path).map_err(open_err)?;
                // Only who may write the file may replace it.
                nix::unistd::access(&dest, nix::unistd::AccessFlags::W_OK)
                    .map_err(|e| open_err(e.into()))?;
                let (file, tmp) = create_temp(&dest, Some(meta.permissions().mode()))?;
                Ok(Output {
                    path: path.to_owned(),
                    file,
                    target: Target::Temp {
                        tmp,
                        dest,
                        replace: true,
                    },
                    inputs,
                    done: false,
                })
            }
            FileKind::BlockDevice => {
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_EXCL | libc::O_NONBLOCK)
                    .open(path)
                    .map_err(|e| {
                        if e.raw_os_error() == Some(libc::EBUSY) {
                            OutputError::InUse {
                                path: path.to_owned(),
                            }
                        } else {
                            open_err(e)
                        }
                    })?;
                let m = file.metadata().map_err(open_err)?;
                check_not_input(path, &FileId::of(&m), &inputs)?;
                let size = super::ReadAt::size(&file).map_err(open_err)?;
                if size > 0 && policy == Overwrite::Refuse {
                    return Err(OutputError::Exists {
                        path: path.to_owned(),
                        kind,
                        len: size,
                    });
                }
                clear_nonblock(&file).map_err(open_err)?;
                Ok(Output {
                    path: path.to_owned(),
                    file,
                    target: Target::Block { size },
                    inputs,
                    done: false,
                })
            }
            FileKind::Fifo | FileKind::CharDevice => {
                // Non-blocking: a FIFO without a reader fails (ENXIO) instead of blocking.
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(path)
                    .map_err(|e| {
                        if e.raw_os_error() == Some(libc::ENXIO) && kind == FileKind::Fifo {
                            OutputError::NoReader {
                                path: path.to_owned(),
                            }
                        } else {
                            open_err(e)
                        }
                    })?;
                let m = file.metadata().map_err(open_err)?;
                check_not_input(path, &FileId::of(&m), &inputs)?;
                clear_nonblock(&file).map_err(open_err)?;
                Ok(Output {
                    path: path.to_owned(),
                    file,
                    target: Target::Stream,
                    inputs,
                    done: false,
                })
            }
            _ => Err(OutputError::Kind {
                path: path.to_owned(),
                kind,
            }),
        }
    }

    /// The output path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How it is written.
    pub fn kind(&self) -> OutputKind {
        match self.target {
            Target::Temp { .. } => OutputKind::File,
            Target::Block { .. } => OutputKind::BlockDevice,
            Target::Stream => OutputKind::Stream,
        }
    }

    /// The open file (for a regular file: the temporary file, new and empty).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The capacity of a block device output.
    pub fn capacity(&self) -> Option<u64> {
        match self.target {
            Target::Block { size } => Some(size),
            _ => None,
        }
    }

    /// Refuse a block device output smaller than `needed` bytes.
    ///
    /// # Errors
    /// [`OutputError::TooSmall`].
    pub fn ensure_capacity(&self, needed: u64) -> Result<(), OutputError> {
        match self.capacity() {
            Some(size) if size < needed => Err(OutputError::TooSmall {
                path: self.path.clone(),
                size,
                needed,
            }),
            _ => Ok(()),
        }
    }

    /// Write all of `buf` at `offset` (regular files and block devices).
    ///
    /// # Errors
    /// [`OutputError::NotSeekable`] for a stream; [`OutputError::Write`].
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), OutputError> {
        if matches!(self.target, Target::Stream) {
            return Err(OutputError::NotSeekable {
                path: self.path.clone(),
            });
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|source| OutputError::Write {
                path: self.path.clone(),
                offset: Some(offset),
                source,
            })
    }

    /// Set the length of a regular-file output (holes at the end are kept).
    ///
    /// # Errors
    /// [`OutputError::Write`].
    pub fn set_len(&self, len: u64) -> Result<(), OutputError> {
        if !matches!(self.target, Target::Temp { .. }) {
            return Ok(());
        }
        self.file.set_len(len).map_err(|source| OutputError::Write {
            path: self.path.clone(),
            offset: Some(len),
            source,
        })
    }

    /// Finish: sync the data and, for a regular file, rename it into place (after checking
    /// again that the output path did not become an input meanwhile). Without a commit the
    /// output is discarded when dropped.
    ///
    /// # Errors
    /// [`OutputError::Commit`]; [`OutputError::SameAsInput`] / [`OutputError::Exists`]
    /// when the output path changed since [`Output::create`].
    pub fn commit(mut self) -> Result<(), OutputError> {
        let commit_err = |path: &Path| {
            let path = path.to_owned();
            move |source| OutputError::Commit { path, source }
        };
        match &self.target {
            Target::Stream => {}
            Target::Block { .. } => self.file.sync_all().map_err(commit_err(&self.path))?,
            Target::Temp { tmp, dest, replace } => {
                self.file.sync_all().map_err(commit_err(&self.path))?;
                match std::fs::metadata(dest) {
                    Ok(m) => {
                        check_not_input(&self.path, &FileId::of(&m), &self.inputs)?;
                        if !replace && m.len() > 0 {
                            return Err(OutputError::Exists {
                                path: self.path.clone(),
                                kind: FileKind::of(&m),
                                len: m.len(),
                            });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(commit_err(&self.path)(e)),
                }
                std::fs::rename(tmp, dest).map_err(commit_err(&self.path))?;
                if let Some(dir) = dest
                    .parent()
                    .and_then(|d| File::open(parent_or_dot(d)).ok())
                {
                    let _ = dir.sync_all();
                }
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let (false, Target::Temp { tmp, .. }) = (self.done, &self.target) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.file).write(buf).map_err(|source| {
            OutputError::Write {
                path: self.path.clone(),
                offset: None,
                source,
            }
            .into()
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&self.file).write_all(buf).map_err(|source| {
            OutputError::Write {
                path: self.path.clone(),
                offset: None,
                source,
            }
            .into()
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn check_not_input(
    path: &Path,
    id: &FileId,
    inputs: &[(FileId, PathBuf)],
) -> Result<(), OutputError> {
    match inputs.iter().find(|(i, _)| i == id) {
        Some((_, input)) => Err(OutputError::SameAsInput {
            output: path.to_owned(),
            input: input.clone(),
        }),
        None => Ok(()),
    }
}

fn parent_or_dot(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// A new file next to `dest`: `.NAME.PID-N.partial`, created exclusively.
fn create_temp(dest: &Path, mode: Option<u32>) -> Result<(File, PathBuf), OutputError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent_or_dot(dest.parent().unwrap_or(Path::new(".")));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_owned());
    let mut last = None;
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.partial", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(m) = mode {
            opts.mode(m & 0o7777);
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            // Name the output, not the temporary file nobody asked for.
            Err(source) => {
                return Err(OutputError::Open {
                    path: dest.to_owned(),
                    source,
                });
            }
        }
    }
    Err(OutputError::Open {
        path: dest.to_owned(),
        source: last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    })
}
