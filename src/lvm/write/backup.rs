//! lvm2's metadata history files: `/etc/lvm/archive/<vg>_<NNNNN>-<rand>.vg` (the metadata
//! as it was before a command changed it) and `/etc/lvm/backup/<vg>` (as it is after),
//! written as lvm2 writes them (`lib/format_text/archiver.c`, `archive.c`,
//! `format-text.c`), so that `vgcfgrestore` history stays complete when this crate
//! changes a VG.
//!
//! Both are the backup-file form of [`text::file_text`](super::text::file_text), written
//! to a temporary file in the same directory (`.devmapper_<host>_<pid>_<n>`, mode 0600 as
//! with lvm2's default umask), synced, then moved into place and the directory synced.
//! Archive names take the next index after the highest one of the VG's existing archives;
//! an archive is never overwritten (it is linked into place, trying up to 10 indexes as
//! lvm2 does). Nothing is ever deleted: lvm2 prunes old archives itself (it keeps at least
//! 10, and all from the last 30 days), this crate leaves them all.
//!
//! ```
//! use devmapper::lvm::model::VolumeGroup;
//! use devmapper::lvm::write::backup::{BackupDirs, archive, backup};
//! let dir = std::env::temp_dir().join(format!("devmapper-doc-backup-{}", std::process::id()));
//! let dirs = BackupDirs { backup: dir.join("backup"), archive: dir.join("archive") };
//! std::fs::create_dir_all(&dirs.backup)?;
//! std::fs::create_dir_all(&dirs.archive)?;
//! let vg = VolumeGroup::new("vg0", "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse()?, 8192);
//! let a = archive(&dirs, &vg, "lvcreate -L 12M vg0")?;
//! assert!(a.file_name().unwrap().to_str().unwrap().starts_with("vg0_00000-"));
//! let b = backup(&dirs, &vg, "lvcreate -L 12M vg0")?;
//! assert_eq!(b, dirs.backup.join("vg0"));
//! let text = std::fs::read_to_string(&b)?;
//! assert!(text.contains("description = \"Created *after* executing 'lvcreate -L 12M vg0'\""));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::text::{PrintedVg, TextHeader, file_text_from};
use crate::lvm::config::{self, ParseMode, Scalar};
use crate::lvm::model::{VolumeGroup, valid_name};

/// Where backup and archive files go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupDirs {
    /// Newest metadata of each VG (lvm2: `backup/backup_dir`, `/etc/lvm/backup`).
    pub backup: PathBuf,
    /// Older metadata (lvm2: `backup/archive_dir`, `/etc/lvm/archive`).
    pub archive: PathBuf,
}

/// lvm2's default configuration directory (`LVM_SYSTEM_DIR` overrides it).
const DEFAULT_SYSTEM_DIR: &str = "/etc/lvm";

impl BackupDirs {
    /// The directories lvm2 on this host uses, if they exist: `backup/backup_dir` and
    /// `backup/archive_dir` of `lvm.conf` (in `$LVM_SYSTEM_DIR`, default `/etc/lvm`), or
    /// `<system dir>/backup` and `<system dir>/archive`. `None` when either directory is
    /// missing or `lvm.conf` turns backups or archives off (`backup/backup = 0`,
    /// `backup/archive = 0`): then lvm2 keeps no history either.
    pub fn system() -> Option<BackupDirs> {
        let sys = std::env::var_os("LVM_SYSTEM_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_SYSTEM_DIR), PathBuf::from);
        BackupDirs::from_system_dir(&sys)
    }

    /// [`BackupDirs::system`] for the lvm2 configuration directory `sys`.
    pub fn from_system_dir(sys: &Path) -> Option<BackupDirs> {
        let conf = std::fs::read(sys.join("lvm.conf")).unwrap_or_default();
        let cfg = config::parse_with(&conf, ParseMode::File).ok();
        let get = |key: &str| {
            cfg.as_ref()
                .and_then(|c| c.find(key))
                .and_then(|n| n.value())
                .and_then(|v| v.items().first().cloned())
        };
        for key in ["backup/backup", "backup/archive"] {
            if matches!(get(key), Some(Scalar::Int(0))) {
                return None;
            }
        }
        let dir = |key: &str, default: &str| match get(key) {
            Some(Scalar::Str(s)) if !s.is_empty() => PathBuf::from(s.as_ref()),
            _ => sys.join(default),
        };
        let dirs = BackupDirs {
            backup: dir("backup/backup_dir", "backup"),
            archive: dir("backup/archive_dir", "archive"),
        };
        (dirs.backup.is_dir() && dirs.archive.is_dir()).then_some(dirs)
    }
}

/// What went wrong writing a backup or archive file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The call (`create`, `write`, `fsync`, `rename`, `link`, `read_dir` ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The VG name is not a valid LVM name, so it cannot name a file in the directory.
    #[error("volume group name {name:?} is not a valid LVM name")]
    InvalidVgName {
        /// The name.
        name: String,
    },
    /// No free archive name among 10 indexes (lvm2: "Archive rename failed").
    #[error("archive rename failed for {}: archive names taken", temp.display())]
    ArchiveNamesTaken {
        /// The temporary file, left behind as lvm2 leaves it.
        temp: PathBuf,
    },
    /// No temporary file could be created.
    #[error("couldn't create a temporary file in {}", dir.display())]
    NoTempFile {
        /// The directory.
        dir: PathBuf,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { op, path, source }
}

/// lvm2's `_build_desc`.
fn description(command: &str, before: bool) -> String {
    let when = if before { "*before*" } else { "*after*" };
    format!("Created {when} executing '{command}'")
}

/// A pseudo-random number in lvm2's `rand_r` range (0 ..= 2^31 - 1).
fn random() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() & 0x7fff_ffff) as u32
}

/// lvm2's `create_temp_name`: a new file in `dir`, opened exclusively.
fn temp_file(dir: &Path) -> Result<(PathBuf, File), BackupError> {
    let host = nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().replace('/', "?"))
        .unwrap_or_else(|_| "nohostname".into());
    let pid = std::process::id();
    let mut n = random();
    for _ in 0..20 {
        let path = dir.join(format!(".devmapper_{host}_{pid}_{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n = n.wrapping_add(1),
            Err(e) => return Err(io("create", &path)(e)),
        }
    }
    Err(BackupError::NoTempFile {
        dir: dir.to_path_buf(),
    })
}

/// The VG's file text, copying unchanged LV sections from `base`.
fn print_file(
    vg: &VolumeGroup,
    desc: String,
    base: Option<(&VolumeGroup, &PrintedVg)>,
) -> Result<PrintedVg, BackupError> {
    if !valid_name(&vg.name) {
        return Err(BackupError::InvalidVgName {
            name: vg.name.clone(),
        });
    }
    Ok(file_text_from(vg, &TextHeader::now(desc), base))
}

/// `printed` in a synced temporary file in `dir`.
fn write_temp(dir: &Path, printed: &PrintedVg) -> Result<PathBuf, BackupError> {
    let (path, mut f) = temp_file(dir)?;
    let r = f
        .write_all(printed.text().as_bytes())
        .map_err(io("write", &path))
        .and_then(|()| f.sync_all().map_err(io("fsync", &path)));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

/// lvm2's `_split_vg`: `<vg>_<index>...vg` -> (vg, index).
fn split_archive_name(name: &str) -> Option<(&str, u32)> {
    if name.len() < 7 || !name.ends_with(".vg") {
        return None;
    }
    let (vg, rest) = name.rsplit_once('_')?;
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    Some((vg, digits.parse().ok()?))
}

/// The index the next archive of `vg` gets in `dir`: one after the highest.
fn next_index(dir: &Path, vg: &str) -> Result<u32, BackupError> {
    let mut next = 0u32;
    for e in std::fs::read_dir(dir).map_err(io("read_dir", dir))? {
        let e = e.map_err(io("read_dir", dir))?;
        if let Some(name) = e.file_name().to_str()
            && let Some((v, ix)) = split_archive_name(name)
            && v == vg
        {
            next = next.max(ix.saturating_add(1));
        }
    }
    Ok(next)
}

/// Write the metadata `old` had before `command` changed it to
/// `<archive>/<vg>_<NNNNN>-<rand>.vg`, as lvm2's `archive_vg` does at the first change of
/// a VG in a command. Returns the file's path.
///
/// # Errors
/// [`BackupError`]; the VG on disk is not affected (lvm2 refuses to write a VG whose
/// archive fails; the caller decides).
pub fn archive(
    dirs: &BackupDirs,
    old: &VolumeGroup,
    command: &str,
) -> Result<PathBuf, BackupError> {
    archive_printed(dirs, old, command).map(|(path, _)| path)
}

/// [`archive`], also returning the file print of `old`: the base from which
/// [`backup_from`] copies the LVs the command did not change.
///
/// # Errors
/// As [`archive`].
pub fn archive_printed(
    dirs: &BackupDirs,
    old: &VolumeGroup,
    command: &str,
) -> Result<(PathBuf, PrintedVg), BackupError> {
    ArchiveText::print(old, command)?.write(dirs)
}

/// The archive of a VG, printed and not yet written: printing (the CPU-bound part) can
/// start as soon as the VG is read, on another thread, and the file is written only if
/// the command goes on to change the VG.
///
/// ```
/// use devmapper::lvm::model::VolumeGroup;
/// use devmapper::lvm::write::backup::{ArchiveText, BackupDirs};
/// let dir = std::env::temp_dir().join(format!("devmapper-doc-archive-{}", std::process::id()));
/// let dirs = BackupDirs { backup: dir.join("backup"), archive: dir.join("archive") };
/// std::fs::create_dir_all(&dirs.archive)?;
/// let vg = VolumeGroup::new("vg0", "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE".parse()?, 8192);
/// let printed = std::thread::spawn(move || ArchiveText::print(&vg, "lvremove vg0/lv0"));
/// // ... the command checks and prepares its change meanwhile ...
/// let (path, _print) = printed.join().unwrap()?.write(&dirs)?;
/// assert!(std::fs::read_to_string(&path)?.contains("Created *before* executing 'lvremove vg0/lv0'"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ArchiveText {
    vg: String,
    printed: PrintedVg,
}

impl ArchiveText {
    /// The file print of `old` as lvm2 archives it before `command` changes it.
    ///
    /// # Errors
    /// [`BackupError::InvalidVgName`].
    pub fn print(old: &VolumeGroup, command: &str) -> Result<ArchiveText, BackupError> {
        Ok(ArchiveText {
            vg: old.name.clone(),
            printed: print_file(old, description(command, true), None)?,
        })
    }

    /// Write the print to `<archive>/<vg>_<NNNNN>-<rand>.vg` (the next index, never
    /// replacing an archive); returns the file's path and the print (the base of the
    /// backup).
    ///
    /// # Errors
    /// [`BackupError`]; the VG on disk is not affected.
    pub fn write(self, dirs: &BackupDirs) -> Result<(PathBuf, PrintedVg), BackupError> {
        let dir = &dirs.archive;
        let temp = write_temp(dir, &self.printed)?;
        let mut ix = next_index(dir, &self.vg)?;
        let rnum = random();
        for _ in 0..10 {
            let target = dir.join(format!("{}_{ix:05}-{rnum}.vg", self.vg));
            // lvm_rename: link, never replacing an existing archive.
            match std::fs::hard_link(&temp, &target) {
                Ok(()) => {
                    std::fs::remove_file(&temp).map_err(io("unlink", &temp))?;
                    sync_dir(dir)?;
                    return Ok((target, self.printed));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    ix = ix.saturating_add(1);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(io("link", &target)(e));
                }
            }
        }
        Err(BackupError::ArchiveNamesTaken { temp })
    }
}

/// Write the metadata `new` has after `command` to `<backup>/<vg>`, replacing the previous
/// backup, as lvm2's `backup_to_file` does when a command that changed the VG ends.
/// Returns the file's path.
///
/// # Errors
/// [`BackupError`].
pub fn backup(dirs: &BackupDirs, new: &VolumeGroup, command: &str) -> Result<PathBuf, BackupError> {
    backup_from(dirs, new, command, None).map(|(path, _)| path)
}

/// [`backup`], copying the sections of LVs equal in `base` (the VG before the change and
/// its file print, from [`archive_printed`] or an earlier backup) from that print: the
/// same file. Also returns the print, the base for the next backup.
///
/// # Errors
/// As [`backup`].
pub fn backup_from(
    dirs: &BackupDirs,
    new: &VolumeGroup,
    command: &str,
    base: Option<(&VolumeGroup, &PrintedVg)>,
) -> Result<(PathBuf, PrintedVg), BackupError> {
    let dir = &dirs.backup;
    let printed = print_file(new, description(command, false), base)?;
    let temp = write_temp(dir, &printed)?;
    let target = dir.join(&new.name);
    if let Err(e) = std::fs::rename(&temp, &target) {
        let _ = std::fs::remove_file(&temp);
        return Err(io("rename", &target)(e));
    }
    sync_dir(dir)?;
    Ok((target, printed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_split_as_lvm2_splits_them() {
        assert_eq!(split_archive_name("vg0_00012-1234.vg"), Some(("vg0", 12)));
        assert_eq!(split_archive_name("my_vg_00003-99.vg"), Some(("my_vg", 3)));
        assert_eq!(
            split_archive_name("vg0_123456-1.vg"),
            Some(("vg0", 123_456))
        );
        assert_eq!(split_archive_name("vg0_x.vg"), None);
        assert_eq!(split_archive_name("vg0_00001-1.vgx"), None);
        assert_eq!(split_archive_name(".devmapper_h_1_2"), None);
    }
}
