//! lvm2's lock files: `V_<vg>` for a VG and `P_global` for the global lock, taken with
//! `flock(2)` in lvm2's locking directory, so that this crate and a running lvm2 exclude
//! each other (lvm2's `lib/locking/file_locking.c` and `lib/misc/lvm-flock.c`).
//!
//! The directory is `global/locking_dir` from `lvm.conf` when set, else `/run/lock/lvm`;
//! it is created (mode 0700, lvm2's 0777 under its umask 077) when missing. A lock is taken
//! as lvm2 takes it: open `O_CREAT|O_APPEND|O_RDWR`, `flock` shared or exclusive (blocking
//! or `LOCK_NB`), then check that the path still names the inode that is locked, and start
//! again if not (an unlocking lvm2 may unlink the file and another process recreate it).
//! With `global/prioritise_write_locks` (lvm2's default), a writer first takes `<file>:aux`
//! exclusively, then the lock, then drops `:aux`; a reader takes and drops `:aux` before its
//! shared lock, so a stream of readers cannot starve a writer.
//!
//! Unlike lvm2, nothing is ever unlinked: lvm2 unlinks a lock file it holds alone, but a
//! process that is still waiting on that inode without lvm2's re-check (util-linux `flock`,
//! say) would then hold a lock nobody else sees. lvm2 is fine with files that exist.
//!
//! ```
//! use devmapper::lvm::write::lock::{self, LockDir, LockError, LockMode};
//! let tmp = tempfile::tempdir()?;
//! let dir = LockDir::new(tmp.path().join("lvm"));
//! let held = lock::lock_vg(&dir, "vg0", LockMode::Exclusive, false)?;
//! assert!(tmp.path().join("lvm/V_vg0").exists());
//! // A second exclusive lock (another open file, as another process would have) conflicts.
//! let err = lock::lock_vg(&dir, "vg0", LockMode::Exclusive, false).unwrap_err();
//! assert!(matches!(err, LockError::WouldBlock { .. }));
//! drop(held);
//! let _again = lock::lock_vg(&dir, "vg0", LockMode::Shared, false)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::lvm::config::{self, ParseMode};
use crate::lvm::error::ParseError;

/// lvm2's default locking directory (`DEFAULT_LOCK_DIR`).
pub const DEFAULT_LOCK_DIR: &str = "/run/lock/lvm";
/// lvm2's default configuration directory (overridden by `LVM_SYSTEM_DIR`).
pub const DEFAULT_SYSTEM_DIR: &str = "/etc/lvm";
/// Suffix of the write-priority file.
const AUX_SUFFIX: &str = ":aux";
/// Give up when the lock file is replaced this many times in a row while locking.
const MAX_RETRIES: u32 = 10_000;

/// Where lvm2 keeps its lock files, and how it takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockDir {
    path: PathBuf,
    prioritise_write_locks: bool,
}

impl Default for LockDir {
    /// `/run/lock/lvm`, with write priority: lvm2's defaults.
    fn default() -> LockDir {
        LockDir::new(DEFAULT_LOCK_DIR)
    }
}

impl LockDir {
    /// The directory `path`, with write priority (lvm2's default).
    pub fn new(path: impl Into<PathBuf>) -> LockDir {
        LockDir {
            path: path.into(),
            prioritise_write_locks: true,
        }
    }

    /// The same directory, with `global/prioritise_write_locks` set to `on`.
    pub fn with_write_priority(mut self, on: bool) -> LockDir {
        self.prioritise_write_locks = on;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writers take the `:aux` file first.
    pub fn prioritises_write_locks(&self) -> bool {
        self.prioritise_write_locks
    }

    /// The system's: `lvm.conf` in `$LVM_SYSTEM_DIR` (default `/etc/lvm`), its
    /// `global/locking_dir` and `global/prioritise_write_locks`; lvm2's defaults where
    /// the file or the settings are missing.
    pub fn system() -> Result<LockDir, LockError> {
        let dir = std::env::var_os("LVM_SYSTEM_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_SYSTEM_DIR), PathBuf::from);
        LockDir::from_config_file(&dir.join("lvm.conf"))
    }

    /// From the `lvm.conf` at `path` (lvm2's defaults when it does not exist).
    pub fn from_config_file(path: &Path) -> Result<LockDir, LockError> {
        use std::io::Read;
        let io = |source| LockError::Io {
            what: "reading",
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockDir::default()),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        file.take(config::MAX_TEXT as u64 + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() > config::MAX_TEXT {
            return Err(io(io::Error::new(
                io::ErrorKind::InvalidData,
                "larger than any configuration file read here",
            )));
        }
        LockDir::from_config_text(&text).map_err(|source| LockError::Config {
            path: path.to_owned(),
            source,
        })
    }

    /// From the text of an `lvm.conf`.
    ///
    /// ```
    /// use devmapper::lvm::write::lock::LockDir;
    /// let d = LockDir::from_config_text(b"global {\n locking_dir = \"/tmp/l\"\n}\n").unwrap();
    /// assert_eq!(d.path(), std::path::Path::new("/tmp/l"));
    /// let d = LockDir::from_config_text(b"global/prioritise_write_locks = 0\n").unwrap();
    /// assert_eq!(d.path(), std::path::Path::new("/run/lock/lvm"));
    /// assert!(!d.prioritises_write_locks());
    /// ```
    pub fn from_config_text(text: &[u8]) -> Result<LockDir, ParseError> {
        let cfg = config::parse_with(text, ParseMode::File)?;
        let path = cfg
            .find("global/locking_dir")
            .and_then(|n| n.value())
            .and_then(|v| match v.items().first() {
                Some(config::Scalar::Str(s)) if !s.is_empty() => Some(PathBuf::from(&**s)),
                _ => None,
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR));
        let prioritise = cfg
            .find("global/prioritise_write_locks")
            .and_then(|n| n.value())
            .and_then(|v| match v.items().first() {
                Some(config::Scalar::Int(i)) => Some(*i != 0),
                _ => None,
            })
            .unwrap_or(true);
        Ok(LockDir::new(path).with_write_priority(prioritise))
    }

    /// The lock file of VG `vg`: `<dir>/V_<vg>`.
    pub fn vg_file(&self, vg: &str) -> Result<PathBuf, LockError> {
        if vg.is_empty() || vg == "." || vg == ".." || vg.contains(['/', '\0']) {
            return Err(LockError::BadName { name: vg.into() });
        }
        Ok(self.path.join(format!("V_{vg}")))
    }

    /// The global lock file: `<dir>/P_global`.
    pub fn global_file(&self) -> PathBuf {
        self.path.join("P_global")
    }
}

/// Shared (readers) or exclusive (writers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// `LOCK_SH`, as lvm2's reporting commands take it.
    Shared,
    /// `LOCK_EX`, as lvm2's writing commands take it.
    Exclusive,
}

/// A failure to lock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone else holds the lock and waiting was not asked for.
    #[error("can't get lock for {resource}: {path} is held by another process")]
    WouldBlock {
        /// The VG name, or `global`.
        resource: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The name cannot be a lock file name.
    #[error("invalid VG name {name:?} for a lock file")]
    BadName {
        /// The name.
        name: String,
    },
    /// `lvm.conf` does not parse.
    #[error("{}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: ParseError,
    },
    /// A system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done: `creating`, `opening`, `locking`, `checking`, `reading`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A held lock; dropping it unlocks (`LOCK_UN`) and closes the file, which stays.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    mode: LockMode,
    lock: Flock<File>,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How it is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The locked file's `(st_dev, st_ino)`.
    pub fn file_id(&self) -> io::Result<(u64, u64)> {
        let m = self.lock.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    /// Unlock now, reporting a failure (dropping unlocks too, silently).
    pub fn unlock(self) -> Result<(), LockError> {
        let path = self.path;
        self.lock
            .unlock()
            .map(drop)
            .map_err(|(_, errno)| LockError::Io {
                what: "unlocking",
                path,
                source: errno.into(),
            })
    }
}

/// Lock VG `vg` (`<dir>/V_<vg>`); `wait`: block until it is free, else
/// [`LockError::WouldBlock`].
pub fn lock_vg(dir: &LockDir, vg: &str, mode: LockMode, wait: bool) -> Result<FileLock, LockError> {
    let path = dir.vg_file(vg)?;
    lock_file(dir, vg, path, mode, wait)
}

/// The global lock (`<dir>/P_global`), which lvm2 takes exclusively to create or remove PVs
/// and VGs.
///
/// ```
/// use devmapper::lvm::write::lock::{self, LockDir, LockMode};
/// let tmp = tempfile::tempdir()?;
/// let dir = LockDir::new(tmp.path());
/// let a = lock::lock_global(&dir, LockMode::Shared, false)?;
/// let b = lock::lock_global(&dir, LockMode::Shared, false)?; // readers share
/// assert!(lock::lock_global(&dir, LockMode::Exclusive, false).is_err());
/// # drop((a, b));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lock_global(dir: &LockDir, mode: LockMode, wait: bool) -> Result<FileLock, LockError> {
    lock_file(dir, "global", dir.global_file(), mode, wait)
}

fn lock_file(
    dir: &LockDir,
    resource: &str,
    path: PathBuf,
    mode: LockMode,
    wait: bool,
) -> Result<FileLock, LockError> {
    create_dir(dir.path())?;
    if !dir.prioritise_write_locks {
        return do_flock(resource, path, mode, wait);
    }
    let mut aux = path.clone().into_os_string();
    aux.push(AUX_SUFFIX);
    let aux = do_flock(resource, PathBuf::from(aux), LockMode::Exclusive, wait)?;
    match mode {
        LockMode::Exclusive => {
            let held = do_flock(resource, path, mode, wait);
            drop(aux);
            held
        }
        LockMode::Shared => {
            drop(aux);
            do_flock(resource, path, mode, wait)
        }
    }
}

/// `dm_create_dir`: the directory and its parents, when missing.
fn create_dir(path: &Path) -> Result<(), LockError> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| LockError::Io {
            what: "creating",
            path: path.to_owned(),
            source,
        })
}

/// `_do_flock`: open, flock, and check the path still names the locked inode.
fn do_flock(
    resource: &str,
    path: PathBuf,
    mode: LockMode,
    wait: bool,
) -> Result<FileLock, LockError> {
    let arg = match (mode, wait) {
        (LockMode::Shared, true) => FlockArg::LockShared,
        (LockMode::Shared, false) => FlockArg::LockSharedNonblock,
        (LockMode::Exclusive, true) => FlockArg::LockExclusive,
        (LockMode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
    };
    let io = |what, source| LockError::Io {
        what,
        path: path.clone(),
        source,
    };
    for _ in 0..MAX_RETRIES {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o700)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        let mut file = file;
        let lock = loop {
            match Flock::lock(file, arg) {
                Ok(l) => break l,
                Err((f, Errno::EINTR)) => file = f,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(LockError::WouldBlock {
                        resource: resource.into(),
                        path,
                    });
                }
                Err((_, errno)) => return Err(io("locking", errno.into())),
            }
        };
        let held = lock.metadata().map_err(|e| io("checking", e))?;
        match std::fs::metadata(&path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                return Ok(FileLock { path, mode, lock });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("checking", e)),
        }
        // Replaced or removed while we waited: the lock we hold protects nothing.
    }
    Err(io(
        "locking",
        io::Error::other("the lock file keeps being replaced"),
    ))
}
