//! Plain wrappers to re-create at boot: entry files ([`WrapperEntry`]) in a config directory.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::super::UUID_PREFIX;
use super::super::error::{SnapError, SnapResult};
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

impl super::super::Wrapper<'_> {
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
            reason: "cannot find the backing device".to_owned(),
        })?;
        let content = super::super::blockdev::node_of(st.origin.info.dev);
        let id = identity::identify(backing, content.as_deref()).unwrap_or(Identity {
            sectors: st.origin.length.0,
            ids: Vec::new(),
        });
        if id.ids.is_empty() {
            return Err(SnapError::WrongState {
                name: self.name.to_string(),
                reason: format!(
                    "its device ({backing}) has no serial, wwid, dm or md uuid and no filesystem uuid: it could not be recognised after a reboot"
                ),
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
