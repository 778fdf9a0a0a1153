//! Plain wrappers to re-create at boot: entry files ([`WrapperEntry`]) in a config directory.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::super::UUID_PREFIX;
use super::super::error::{SnapError, SnapResult, WrongStateKind};
use super::super::identity::{self, Identity};
use crate::kernel::id::{DmName, DmUuid};

/// Where `dmsnap wrap --boot` keeps the description of plain wrappers (no snapshot, so no
/// COW device to hold a record): one `NAME.conf` file per wrapper.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/dmsnap/wrap";

/// A plain wrapper to re-create at boot: its name, uuid and origin identity, as a small
/// text file (`key=value` lines, `#` comments).
///
/// ```
/// use devmapper::snapshot::activate::WrapperEntry;
/// let text = "name=data\nuuid=DMSNAP-0123456789abcdef0123456789abcdef\nsectors=2048\nid=serial QM00002\n";
/// let e = WrapperEntry::parse(text)?;
/// assert_eq!(e.name.as_str(), "data");
/// assert_eq!(WrapperEntry::parse(&e.to_text())?, e);
/// # Ok::<(), devmapper::snapshot::activate::EntryError>(())
/// ```
///
/// Such a file lives on the root filesystem, which a rollback may take back in time; that
/// is harmless here, because a plain wrapper's description does not change (it is written
/// once, at `wrap`). Everything about a snapshot is on its COW device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapperEntry {
    /// The wrapper's dm name.
    pub name: DmName,
    /// Its dm uuid (`DMSNAP-<id>`).
    pub uuid: DmUuid,
    /// The origin's exact size.
    pub sectors: u64,
    /// The origin's ids.
    pub ids: Vec<super::super::record::DeviceId>,
}

/// Why a wrapper entry file cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// A line is not `key=value` with a known key, or a value is wrong.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A required key is missing.
    #[error("no {0}= line")]
    Missing(&'static str),
}

impl WrapperEntry {
    /// Parse an entry file's text (at most 64 KiB are looked at).
    ///
    /// # Errors
    /// [`EntryError`].
    pub fn parse(text: &str) -> Result<WrapperEntry, EntryError> {
        use super::super::record::{DeviceId, IdKind};
        let (mut name, mut uuid, mut sectors, mut ids) = (None, None, None, Vec::new());
        for (i, line) in text.lines().take(1024).enumerate() {
            let bad = |reason: String| EntryError::Line {
                line: i + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad("not key=value".to_owned()))?;
            match k {
                "name" => name = Some(DmName::new(v).map_err(|e| bad(e.to_string()))?),
                "uuid" => uuid = Some(DmUuid::new(v).map_err(|e| bad(e.to_string()))?),
                "sectors" => {
                    sectors = Some(
                        v.parse::<u64>()
                            .ok()
                            .filter(|&s| s > 0)
                            .ok_or_else(|| bad(format!("bad size {v:?}")))?,
                    )
                }
                "id" => {
                    let kinds = [
                        IdKind::DmUuid,
                        IdKind::MdUuid,
                        IdKind::Wwid,
                        IdKind::Serial,
                        IdKind::Content,
                    ];
                    let (kind, value) = kinds
                        .iter()
                        .find_map(|k| Some((*k, v.strip_prefix(k.name())?.strip_prefix(' ')?)))
                        .ok_or_else(|| bad(format!("unknown id {v:?}")))?;
                    if value.is_empty() || value.len() > super::super::record::MAX_ID_LEN {
                        return Err(bad(format!("bad id {v:?}")));
                    }
                    ids.push(DeviceId::new(kind, value));
                }
                k => return Err(bad(format!("unknown key {k:?}"))),
            }
        }
        let uuid: DmUuid = uuid.ok_or(EntryError::Missing("uuid"))?;
        let ok = uuid
            .as_str()
            .strip_prefix(UUID_PREFIX)
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(EntryError::Line {
                line: 0,
                reason: format!("uuid {uuid} is not DMSNAP-<32 hex digits>"),
            });
        }
        Ok(WrapperEntry {
            name: name.ok_or(EntryError::Missing("name"))?,
            uuid,
            sectors: sectors.ok_or(EntryError::Missing("sectors"))?,
            ids,
        })
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "# A plain wrapper to re-create at boot (read by devmapper's snapshot::activate).\nname={}\nuuid={}\nsectors={}\n",
            self.name, self.uuid, self.sectors
        );
        for id in &self.ids {
            s.push_str(&format!("id={id}\n"));
        }
        s
    }
}

impl WrapperEntry {
    /// The file of the wrapper `name` in `dir`: `dir/NAME.conf`.
    pub fn path_in(dir: &Path, name: &DmName) -> PathBuf {
        dir.join(format!("{name}.conf"))
    }

    /// Write the entry to `dir/NAME.conf` durably (a temporary file, `fsync`, rename), making
    /// `dir` if needed; returns the file's path.
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName, snapshot::Wrapper};
    /// # use devmapper::snapshot::activate::DEFAULT_CONFIG_DIR;
    /// # let dm = DeviceMapper::new()?;
    /// let w = Wrapper::open(&dm, &DmName::new("data")?)?;
    /// let path = w.boot_entry()?.write_to(DEFAULT_CONFIG_DIR.as_ref())?;
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    ///
    /// # Errors
    /// [`SnapError::EntryWrite`].
    pub fn write_to(&self, dir: &Path) -> SnapResult<PathBuf> {
        let path = Self::path_in(dir, &self.name);
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                let tmp = dir.join(format!(".{}.conf.tmp", self.name));
                std::fs::write(&tmp, self.to_text())?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)
            })
            .map_err(|source| SnapError::EntryWrite {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}

/// Remove the entry of the wrapper `name` from `dir`, if there is one; returns its path
/// when it was there.
///
/// # Errors
/// The file exists but cannot be removed.
pub fn remove_entry(dir: &Path, name: &DmName) -> std::io::Result<Option<PathBuf>> {
    let path = WrapperEntry::path_in(dir, name);
    if !path.exists() {
        return Ok(None);
    }
    std::fs::remove_file(&path)?;
    Ok(Some(path))
}

/// The entries in `dir` (`*.conf`); unreadable or malformed files are returned as errors
/// beside them, a missing directory is no entry.
pub fn read_entries(dir: &Path) -> Vec<(PathBuf, Result<WrapperEntry, String>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .map(|p| {
            let r = std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| {
                let b = &b[..b.len().min(64 << 10)];
                let t = std::str::from_utf8(b).map_err(|_| "not UTF-8".to_owned())?;
                WrapperEntry::parse(t).map_err(|e| e.to_string())
            });
            (p, r)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl<'dm> super::super::Wrapper<'dm> {
    /// [`Wrapper::wrap`](super::super::Wrapper::wrap), then keep the wrapper for the next
    /// boot: its [`boot_entry`](Self::boot_entry) is written to `dir` (where
    /// [`activate`](super::activate) finds it with
    /// [`ActivateOptions::config_dir`](super::ActivateOptions::config_dir)). Returns the
    /// wrapper and the entry's path.
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName, snapshot::Wrapper};
    /// # let dm = DeviceMapper::new()?;
    /// let (w, entry) = Wrapper::wrap_for_boot(
    ///     &dm,
    ///     &DmName::new("data")?,
    ///     "/dev/md0".as_ref(),
    ///     "/etc/dmsnap/wrap".as_ref(),
    /// )?;
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    ///
    /// # Errors
    /// Those of `wrap`; [`SnapError::NotKept`] when the entry cannot be made (the device
    /// has no strong id, or the file cannot be written): the wrapper is then removed again,
    /// since it would not come back at boot.
    pub fn wrap_for_boot(
        dm: &'dm crate::DeviceMapper,
        name: &DmName,
        device: &Path,
        dir: &Path,
    ) -> SnapResult<(Self, PathBuf)> {
        let w = Self::wrap(dm, name, device)?;
        match w.boot_entry().and_then(|e| e.write_to(dir)) {
            Ok(path) => Ok((w, path)),
            Err(e) => {
                let _ = w.unwrap_device();
                Err(SnapError::NotKept {
                    name: name.to_string(),
                    source: Box::new(e),
                })
            }
        }
    }

    /// The entry that lets [`activate`](super::activate) re-create this (plain) wrapper at boot: its name,
    /// uuid and the backing device's identity.
    ///
    /// # Errors
    /// [`SnapError::WrongState`] when the backing device has no strong id (no serial,
    /// wwid, dm/md uuid, nor a filesystem/LUKS/PV uuid): it could not be recognised after
    /// a reboot.
    pub fn boot_entry(&self) -> SnapResult<WrapperEntry> {
        let st = self.state()?;
        let backing = st.backing().ok_or_else(|| SnapError::WrongState {
            name: self.name.to_string(),
            kind: WrongStateKind::NoBacking,
        })?;
        let content = super::super::blockdev::node_of(st.origin.info.dev);
        let id = identity::identify(backing, content.as_deref()).unwrap_or(Identity {
            sectors: st.origin.length.0,
            ids: Vec::new(),
        });
        if id.ids.is_empty() {
            return Err(SnapError::WrongState {
                name: self.name.to_string(),
                kind: WrongStateKind::NoStrongId { backing },
            });
        }
        Ok(WrapperEntry {
            name: self.name.clone(),
            uuid: self.uuid()?,
            sectors: st.origin.length.0,
            ids: id.ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::record::{DeviceId, IdKind};

    fn entry() -> WrapperEntry {
        WrapperEntry {
            name: DmName::new("data").unwrap(),
            uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef").unwrap(),
            sectors: 2048,
            ids: vec![DeviceId::new(IdKind::Serial, "QM00002")],
        }
    }

    /// An entry written is read back as it was, no temporary file is left, and removing it
    /// twice removes it once.
    #[test]
    fn write_read_remove() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("wrap");
        let e = entry();
        let path = e.write_to(&dir).unwrap();
        assert_eq!(path, dir.join("data.conf"));
        let read = read_entries(&dir);
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read[0].0, path);
        assert_eq!(read[0].1.as_ref().unwrap(), &e);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(remove_entry(&dir, &e.name).unwrap(), Some(path));
        assert_eq!(remove_entry(&dir, &e.name).unwrap(), None);
    }

    #[test]
    fn unwritable_dir_is_entry_write() {
        let t = tempfile::NamedTempFile::new().unwrap();
        match entry().write_to(t.path()) {
            Err(SnapError::EntryWrite { path, .. }) => {
                assert_eq!(path, t.path().join("data.conf"));
            }
            other => panic!("{other:?}"),
        }
    }
}
