//! Who a block device is, beyond its path: the identity recorded for a snapshot's origin,
//! so that [`activate`](super::activate::activate) attaches a snapshot to the very device it was
//! taken of, whatever name the device has after a reboot.
//!
//! An identity is the exact size in sectors plus every strong id found
//! ([`super::record::IdKind`]): the dm uuid of a dm device, the md array uuid of an
//! md device (from its members' superblocks), the disk's WWID and serial number from sysfs
//! (with the partition's start sector for a partition), and the uuid of the filesystem,
//! LUKS header, LVM PV or swap on it (from [`crate::probe`]).
//!
//! A device [`matches`](Identity::matches) a recorded identity when the sizes are equal, at
//! least one recorded id is among the device's ids, and no id that names the device itself
//! (all but the content uuid) disagrees: a disk with another serial is another disk, even
//! with the same filesystem uuid (a `dd` copy). Never by size alone: an origin recorded
//! without any strong id (a bare loop device over a file with nothing recognisable on it)
//! matches nothing, and its snapshot is not activated automatically.
//!
//! ```
//! use devmapper::snapshot::identity::Identity;
//! use devmapper::snapshot::record::{DeviceId, IdKind};
//! let disk = Identity {
//!     sectors: 2048,
//!     ids: vec![DeviceId::new(IdKind::Serial, "A1"), DeviceId::new(IdKind::Content, "ext4:u")],
//! };
//! assert!(disk.matches(2048, &[DeviceId::new(IdKind::Serial, "A1")]).is_ok());
//! // Same filesystem uuid, other serial: a copy on another disk.
//! let copy = Identity {
//!     sectors: 2048,
//!     ids: vec![DeviceId::new(IdKind::Serial, "B2"), DeviceId::new(IdKind::Content, "ext4:u")],
//! };
//! let recorded = [DeviceId::new(IdKind::Serial, "A1"), DeviceId::new(IdKind::Content, "ext4:u")];
//! assert!(copy.matches(2048, &recorded).is_err());
//! assert!(disk.matches(2048, &[]).is_err()); // nothing recorded: never by size alone
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use super::blockdev;
use super::record::{DeviceId, IdKind};
use crate::DevNum;
use crate::io::ReadAt;
use crate::probe::{self, Found};

/// A device's size and strong ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Exact size in 512-byte sectors.
    pub sectors: u64,
    /// Every strong id found, sorted.
    pub ids: Vec<DeviceId>,
}

/// Why a device is not the recorded one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Nothing was recorded to recognise the origin by.
    #[error(
        "no identity was recorded for the origin (no serial, wwid, dm/md uuid or filesystem uuid)"
    )]
    NothingRecorded,
    /// The sizes differ.
    #[error("its size is {found} sectors, the origin had {recorded}")]
    Size {
        /// The device's size.
        found: u64,
        /// The recorded size.
        recorded: u64,
    },
    /// An id naming the device itself differs.
    #[error("its {} is {found}, the origin's was {recorded}", kind.name())]
    Conflict {
        /// Which kind.
        kind: IdKind,
        /// The device's value(s).
        found: String,
        /// The recorded value(s).
        recorded: String,
    },
    /// No recorded id is among the device's.
    #[error("none of the origin's ids ({recorded}) is on it (it has {})", if found.is_empty() { "none" } else { found })]
    NoCommonId {
        /// The device's ids.
        found: String,
        /// The recorded ids.
        recorded: String,
    },
}

fn list(ids: &[&DeviceId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Identity {
    /// Whether this device is the origin recorded as `sectors` and `recorded`.
    ///
    /// # Errors
    /// The first reason it is not, as a [`Mismatch`].
    pub fn matches(&self, sectors: u64, recorded: &[DeviceId]) -> Result<(), Mismatch> {
        if recorded.is_empty() {
            return Err(Mismatch::NothingRecorded);
        }
        if self.sectors != sectors {
            return Err(Mismatch::Size {
                found: self.sectors,
                recorded: sectors,
            });
        }
        for r in recorded.iter().filter(|r| r.kind.is_hardware()) {
            let mine: Vec<&DeviceId> = self.ids.iter().filter(|i| i.kind == r.kind).collect();
            let theirs: Vec<&DeviceId> = recorded.iter().filter(|i| i.kind == r.kind).collect();
            if !mine.is_empty() && !mine.iter().any(|m| theirs.contains(m)) {
                return Err(Mismatch::Conflict {
                    kind: r.kind,
                    found: mine
                        .iter()
                        .map(|i| i.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    recorded: theirs
                        .iter()
                        .map(|i| i.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        if recorded.iter().any(|r| self.ids.contains(r)) {
            Ok(())
        } else {
            Err(Mismatch::NoCommonId {
                found: list(&self.ids.iter().collect::<Vec<_>>()),
                recorded: list(&recorded.iter().collect::<Vec<_>>()),
            })
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sectors", self.sectors)?;
        for i in &self.ids {
            write!(f, ", {i}")?;
        }
        Ok(())
    }
}

fn sysfs_text(p: &Path) -> Option<String> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    (!s.is_empty() && s.len() <= super::record::MAX_ID_LEN).then(|| s.to_owned())
}

/// The content uuids [`probe::identify`] finds on `src`.
pub(crate) fn content_ids<R: ReadAt + ?Sized>(src: &R) -> Vec<DeviceId> {
    let Ok(found) = probe::identify(src) else {
        return Vec::new();
    };
    found
        .iter()
        .filter_map(|f| match f {
            Found::Filesystem {
                kind,
                uuid: Some(u),
                ..
            } => Some(format!("{}:{u}", kind.name())),
            Found::Luks { uuid: Some(u), .. } => Some(format!("luks:{u}")),
            Found::LvmPv { uuid: Some(u), .. } => Some(format!("lvm2pv:{u}")),
            Found::Swap { uuid: Some(u), .. } => Some(format!("swap:{u}")),
            _ => None,
        })
        .map(|v| DeviceId::new(IdKind::Content, v))
        .collect()
}

/// The sysfs directory of a block device (`/sys/dev/block/M:m`, resolved).
fn sysfs_dir(dev: DevNum) -> Option<PathBuf> {
    std::fs::canonicalize(format!("/sys/dev/block/{dev}")).ok()
}

/// The ids sysfs gives for `dev` (everything but the content uuid).
pub(crate) fn hardware_ids(dev: DevNum) -> Vec<DeviceId> {
    let mut ids = Vec::new();
    let Some(dir) = sysfs_dir(dev) else {
        return ids;
    };
    if let Some(u) = sysfs_text(&dir.join("dm/uuid")) {
        ids.push(DeviceId::new(IdKind::DmUuid, u));
    }
    if dir.join("md").is_dir() {
        let mut uuids: Vec<String> = std::fs::read_dir(dir.join("slaves"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let f = std::fs::File::open(Path::new("/dev").join(e.file_name())).ok()?;
                blockdev::drop_cached(&f);
                probe::identify(&f).ok()?.into_iter().find_map(|x| match x {
                    Found::MdRaid { uuid, .. } => Some(uuid.to_string()),
                    _ => None,
                })
            })
            .collect();
        uuids.sort();
        uuids.dedup();
        ids.extend(uuids.into_iter().map(|u| DeviceId::new(IdKind::MdUuid, u)));
    }
    // A partition: the disk's ids with the partition's start.
    let (disk, suffix) = match sysfs_text(&dir.join("start")) {
        Some(start) if dir.join("partition").exists() => match dir.parent() {
            Some(p) => (p.to_owned(), format!(" part {start}")),
            None => return ids,
        },
        _ => (dir.clone(), String::new()),
    };
    for (kind, rel) in [
        (IdKind::Wwid, "wwid"),
        (IdKind::Wwid, "device/wwid"),
        (IdKind::Serial, "serial"),
        (IdKind::Serial, "device/serial"),
    ] {
        if let Some(v) = sysfs_text(&disk.join(rel)) {
            let id = DeviceId::new(kind, format!("{v}{suffix}"));
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// The identity of block device `dev`: its size from sysfs, its sysfs ids, and the content
/// uuids read from `content` (the device itself, or a device mapping it whole).
pub(crate) fn identify(dev: DevNum, content: Option<&Path>) -> Option<Identity> {
    let dir = sysfs_dir(dev)?;
    let sectors = sysfs_text(&dir.join("size"))?.parse().ok()?;
    let mut ids = hardware_ids(dev);
    let path = content
        .map(Path::to_owned)
        .or_else(|| blockdev::node_of(dev));
    if let Some(f) = path.and_then(|p| std::fs::File::open(p).ok()) {
        blockdev::drop_cached(&f);
        ids.extend(content_ids(&f));
    }
    ids.sort();
    ids.dedup();
    Some(Identity { sectors, ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: IdKind, v: &str) -> DeviceId {
        DeviceId::new(kind, v)
    }

    #[test]
    fn match_rules() {
        let dev = Identity {
            sectors: 100,
            ids: vec![id(IdKind::Serial, "S1"), id(IdKind::Content, "ext4:a")],
        };
        assert_eq!(dev.matches(100, &[id(IdKind::Content, "ext4:a")]), Ok(()));
        assert_eq!(
            dev.matches(
                100,
                &[id(IdKind::Serial, "S1"), id(IdKind::Content, "ext4:b")]
            ),
            Ok(()),
            "a new mkfs on the same disk is the same disk"
        );
        assert!(matches!(
            dev.matches(101, &[id(IdKind::Serial, "S1")]),
            Err(Mismatch::Size {
                found: 100,
                recorded: 101
            })
        ));
        assert!(matches!(
            dev.matches(
                100,
                &[id(IdKind::Serial, "S2"), id(IdKind::Content, "ext4:a")]
            ),
            Err(Mismatch::Conflict {
                kind: IdKind::Serial,
                ..
            })
        ));
        assert!(matches!(
            dev.matches(100, &[id(IdKind::Wwid, "naa.1")]),
            Err(Mismatch::NoCommonId { .. })
        ));
        assert_eq!(dev.matches(100, &[]), Err(Mismatch::NothingRecorded));
        let bare = Identity {
            sectors: 100,
            ids: vec![],
        };
        assert!(matches!(
            bare.matches(100, &[id(IdKind::Content, "ext4:a")]),
            Err(Mismatch::NoCommonId { .. })
        ));
    }

    #[test]
    fn content_ids_of_an_ext_image() {
        let mut img = vec![0u8; 1 << 20];
        img[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        img[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0x11; 16]);
        let ids = content_ids(&img[..]);
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert!(
            ids[0]
                .value
                .ends_with("11111111-1111-1111-1111-111111111111"),
            "{ids:?}"
        );
        assert!(content_ids(&vec![0u8; 1 << 20][..]).is_empty());
    }
}
