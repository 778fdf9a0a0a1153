//! What a device or image holds, recognised from a few bounded reads of its first and last
//! sectors: [`identify`].
//!
//! Before a tool overwrites a device (a COW store, a new PV) it should know whether the
//! device holds something a user would miss. `identify` looks for the signatures of
//! ext2/3/4, XFS, btrfs, Linux swap, LVM2 physical volumes, md RAID members (0.90 and 1.x
//! superblocks), LUKS1/LUKS2, MBR and GPT partition tables and dm-snapshot persistent
//! stores, and returns everything it found (the signatures near the start first, then those
//! at the end). An empty list means nothing recognisable (all zeros, random data, or a
//! format this module does not know): it is not a promise that the device holds nothing.
//!
//! At most about 70 KiB are read, whatever the device's size: the first 68 KiB in one read,
//! then a handful of sector-sized reads near the end (md 0.90 and 1.0, the backup GPT
//! header) and at the LUKS2 secondary-header offsets. Any input — a short file, garbage,
//! a source that fails — gives a list or a typed [`ProbeError`], never a panic.
//!
//! ```
//! use devmapper::probe::{self, FsKind, Found};
//! // A 1 MiB image with an ext2 superblock: the magic 0xEF53 at 1024 + 0x38.
//! let mut img = vec![0u8; 1 << 20];
//! img[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
//! img[1024 + 0x78..1024 + 0x7c].copy_from_slice(b"data"); // the volume label
//! let found = probe::identify(&img)?;
//! assert!(matches!(&found[..], [Found::Filesystem { kind: FsKind::Ext2, .. }]));
//! assert_eq!(found[0].to_string(), "an ext2 filesystem (label \"data\")");
//! assert!(probe::identify(&vec![0u8; 1 << 20])?.is_empty());
//! # Ok::<(), devmapper::probe::ProbeError>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use uuid::Uuid;

use crate::io::ReadAt;
use crate::io::bytes::{field, le_u64};
use crate::lvm::label::{LABEL_SCAN_SECTORS, LABEL_SIZE, parse_label_sector};
use volume::{md1, md090};

mod fs;
mod part;
mod volume;

#[cfg(test)]
mod tests;

/// Bytes read from the start in one go: the btrfs superblock at 64 KiB is the farthest
/// signature from the start, then the 64 KiB-page swap signature.
pub const HEAD_LEN: usize = 68 << 10;

/// A filesystem type [`identify`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsKind {
    /// ext2: no journal, only the features ext2 has.
    Ext2,
    /// ext3: a journal, only the features ext3 has.
    Ext3,
    /// ext4: any feature beyond ext3's (extents, 64bit, flex_bg, metadata checksums, ...).
    Ext4,
    /// An external ext3/ext4 journal device.
    ExtJournal,
    /// XFS.
    Xfs,
    /// btrfs (a member device; a multi-device filesystem has one on each).
    Btrfs,
}

impl FsKind {
    /// The name `blkid` uses for `TYPE=`.
    pub const fn name(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::ExtJournal => "jbd",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
        }
    }
}

/// A partition table [`identify`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PartitionTable {
    /// A DOS/MBR table: the 0x55AA signature and plausible entries.
    Mbr {
        /// Non-empty primary entries (1-4).
        partitions: u8,
    },
    /// An MBR whose only purpose is to protect a GPT (an entry of type 0xEE), with no
    /// valid GPT header found behind it.
    ProtectiveMbr,
    /// A GPT: a header with a valid CRC at LBA 1 and/or in the last sector.
    Gpt {
        /// The disk GUID.
        disk_guid: Uuid,
        /// The sector size the headers were found with (512 or 4096).
        sector_size: u32,
        /// The primary header (LBA 1) is valid.
        primary: bool,
        /// The backup header (last LBA) is valid.
        backup: bool,
    },
}

/// The md superblock format of a RAID member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MdVersion {
    /// 0.90: at the end, in the last 64 KiB-aligned 64 KiB.
    V0_90,
    /// 1.0: 8 KiB before the end, 4 KiB aligned.
    V1_0,
    /// 1.1: at the start.
    V1_1,
    /// 1.2: 4 KiB from the start.
    V1_2,
}

impl fmt::Display for MdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MdVersion::V0_90 => "0.90",
            MdVersion::V1_0 => "1.0",
            MdVersion::V1_1 => "1.1",
            MdVersion::V1_2 => "1.2",
        })
    }
}

/// Something recognisable on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// A filesystem.
    Filesystem {
        /// Which one.
        kind: FsKind,
        /// Its label, when set.
        label: Option<String>,
        /// Its UUID, when set (not all zero).
        uuid: Option<Uuid>,
    },
    /// A partition table.
    PartitionTable(PartitionTable),
    /// An LVM2 physical volume label (`LABELONE` / `LVM2 001` with a valid CRC).
    LvmPv {
        /// The PV UUID in lvm2's dashed form; `None` when the label's `pv_header` is
        /// malformed.
        uuid: Option<String>,
        /// The sector (0-3) holding the label.
        sector: u64,
    },
    /// An md RAID member.
    MdRaid {
        /// The superblock format.
        version: MdVersion,
        /// The array UUID.
        uuid: Uuid,
        /// The array name (1.x superblocks; empty names are `None`).
        name: Option<String>,
    },
    /// A LUKS encrypted volume.
    Luks {
        /// The header version (1 or 2; anything else as found).
        version: u16,
        /// The UUID text of the header.
        uuid: Option<String>,
        /// The LUKS2 label, when set.
        label: Option<String>,
        /// Only a LUKS2 secondary header was found, at this byte offset.
        secondary_at: Option<u64>,
    },
    /// Linux swap space (or a hibernation image written into it).
    Swap {
        /// The page size the signature was found at.
        page_size: u32,
        /// The swap label, when set.
        label: Option<String>,
        /// The swap UUID, when set.
        uuid: Option<Uuid>,
        /// The signature is a suspend-to-disk one: the swap holds a hibernated system.
        hibernation: bool,
    },
    /// A dmsnap record (see [`crate::snapshot::record`]): a persistent snapshot's COW
    /// device, its store after the record.
    DmsnapRecord {
        /// What the record describes (`snapshot S of W (taken ...)`); `None` when the
        /// record is damaged (bad CRC, unknown version).
        snapshot: Option<String>,
    },
    /// A dm-snapshot persistent exception store (a `SnAp` header the kernel would load).
    SnapshotStore {
        /// Chunk size in 512-byte sectors.
        chunk_sectors: u32,
        /// The kernel's `valid` flag: 0 once it invalidated the snapshot (overflow, I/O error).
        valid: bool,
        /// The first metadata area's first entry is the end marker: the store holds no
        /// exception (freshly initialised, or fully merged). False when that area cannot be
        /// read.
        empty: bool,
    },
}

impl Found {
    /// Whether this is a dm-snapshot store (a bare one, or dmsnap's record in front of one).
    pub const fn is_snapshot_store(&self) -> bool {
        matches!(
            self,
            Found::SnapshotStore { .. } | Found::DmsnapRecord { .. }
        )
    }
}

fn extras(f: &mut fmt::Formatter<'_>, parts: &[Option<String>]) -> fmt::Result {
    let parts: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    if parts.is_empty() {
        Ok(())
    } else {
        write!(f, " ({})", parts.join(", "))
    }
}

impl fmt::Display for Found {
    /// A phrase naming what was found, for messages ("an ext4 filesystem (label ...)").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Filesystem { kind, label, uuid } => {
                let article = if matches!(kind, FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4) {
                    "an"
                } else {
                    "a"
                };
                match kind {
                    FsKind::ExtJournal => f.write_str("an external ext3/ext4 journal")?,
                    k => write!(f, "{article} {} filesystem", k.name())?,
                }
                extras(
                    f,
                    &[
                        label.as_ref().map(|l| format!("label {l:?}")),
                        uuid.map(|u| format!("UUID {u}")),
                    ],
                )
            }
            Found::PartitionTable(PartitionTable::Mbr { partitions }) => write!(
                f,
                "an MBR partition table ({partitions} partition{})",
                if *partitions == 1 { "" } else { "s" }
            ),
            Found::PartitionTable(PartitionTable::ProtectiveMbr) => {
                f.write_str("a GPT protective MBR (no valid GPT header behind it)")
            }
            Found::PartitionTable(PartitionTable::Gpt {
                disk_guid,
                primary,
                backup,
                ..
            }) => {
                write!(f, "a GPT partition table (disk GUID {disk_guid}")?;
                match (primary, backup) {
                    (true, false) => f.write_str(", no valid backup header")?,
                    (false, true) => f.write_str(", backup header only")?,
                    _ => {}
                }
                f.write_str(")")
            }
            Found::LvmPv { uuid, .. } => {
                f.write_str("an LVM2 physical volume")?;
                extras(f, &[uuid.as_ref().map(|u| format!("PV UUID {u}"))])
            }
            Found::MdRaid {
                version,
                uuid,
                name,
            } => {
                write!(
                    f,
                    "an md RAID member (metadata {version}, array UUID {uuid}"
                )?;
                if let Some(n) = name {
                    write!(f, ", name {n:?}")?;
                }
                f.write_str(")")
            }
            Found::Luks {
                version,
                uuid,
                label,
                secondary_at,
            } => {
                match version {
                    1 | 2 => write!(f, "a LUKS{version} encrypted volume")?,
                    v => write!(f, "a LUKS encrypted volume (header version {v})")?,
                }
                extras(
                    f,
                    &[
                        label.as_ref().map(|l| format!("label {l:?}")),
                        uuid.as_ref().map(|u| format!("UUID {u}")),
                        secondary_at.map(|o| format!("only its secondary header, at {o}")),
                    ],
                )
            }
            Found::Swap {
                label,
                uuid,
                hibernation,
                ..
            } => {
                f.write_str(if *hibernation {
                    "Linux swap space holding a hibernation image"
                } else {
                    "Linux swap space"
                })?;
                extras(
                    f,
                    &[
                        label.as_ref().map(|l| format!("label {l:?}")),
                        uuid.map(|u| format!("UUID {u}")),
                    ],
                )
            }
            Found::DmsnapRecord { snapshot } => match snapshot {
                Some(s) => write!(f, "a dmsnap {s}"),
                None => f.write_str("a damaged dmsnap snapshot record"),
            },
            Found::SnapshotStore {
                chunk_sectors,
                valid,
                empty,
            } => {
                write!(
                    f,
                    "a dm-snapshot persistent store ({}chunk size {} sectors{})",
                    if *valid { "" } else { "invalidated, " },
                    chunk_sectors,
                    if *empty { ", no exceptions" } else { "" }
                )
            }
        }
    }
}

/// Why [`identify`] could not look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The source's size could not be determined.
    #[error("cannot determine the size: {source}")]
    Size {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A read failed (an I/O error, or the source is shorter than it said).
    #[error("cannot read {len} bytes at offset {offset}: {source}")]
    Read {
        /// Byte offset of the read.
        offset: u64,
        /// Its length.
        len: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Look at the first and last sectors of `src` and return everything recognisable: the
/// signatures near the start first, then those at the end.
///
/// ```
/// use devmapper::probe::{identify, Found, PartitionTable};
/// let mut img = vec![0u8; 64 << 10];
/// img[510] = 0x55;
/// img[511] = 0xAA;
/// // One Linux partition (type 0x83) from LBA 2048, 100 sectors.
/// img[446 + 4] = 0x83;
/// img[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
/// img[446 + 12..446 + 16].copy_from_slice(&100u32.to_le_bytes());
/// assert_eq!(
///     identify(&img)?,
///     vec![Found::PartitionTable(PartitionTable::Mbr { partitions: 1 })]
/// );
/// # Ok::<(), devmapper::probe::ProbeError>(())
/// ```
///
/// # Errors
/// [`ProbeError::Size`] or [`ProbeError::Read`] when the source fails; a short source
/// is not an error (only what fits is looked for).
pub fn identify<R: ReadAt + ?Sized>(src: &R) -> Result<Vec<Found>, ProbeError> {
    let size = src.size().map_err(|source| ProbeError::Size { source })?;
    let head_len = usize::try_from(size.min(HEAD_LEN as u64)).unwrap_or(HEAD_LEN);
    let mut head = vec![0u8; head_len];
    read(src, &mut head, 0)?;
    let p = Probe { src, size, head };
    let mut found = Vec::new();
    p.start(&mut found)?;
    p.end(&mut found)?;
    Ok(found)
}

struct Probe<'a, R: ?Sized> {
    src: &'a R,
    size: u64,
    head: Vec<u8>,
}

fn read<R: ReadAt + ?Sized>(src: &R, buf: &mut [u8], offset: u64) -> Result<(), ProbeError> {
    src.read_exact_at(buf, offset)
        .map_err(|source| ProbeError::Read {
            offset,
            len: buf.len(),
            source,
        })
}

/// A UUID stored as 16 raw bytes, `None` when all zero.
fn raw_uuid(b: &[u8], at: usize) -> Option<Uuid> {
    let u = Uuid::from_slice(field(b, at, 16).ok()?).ok()?;
    (!u.is_nil()).then_some(u)
}

/// A NUL-padded text field, `None` when empty; invalid UTF-8 is replaced.
fn text(b: &[u8], at: usize, len: usize) -> Option<String> {
    let raw = field(b, at, len).ok()?;
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let s = String::from_utf8_lossy(&raw[..end]).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

impl<R: ReadAt + ?Sized> Probe<'_, R> {
    /// Read `len` bytes at `offset` when they lie inside the source (`None` otherwise).
    fn read_opt(&self, offset: u64, len: usize) -> Result<Option<Vec<u8>>, ProbeError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => {
                if let Some(b) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| field(&self.head, o, len).ok())
                {
                    return Ok(Some(b.to_vec()));
                }
                let mut buf = vec![0u8; len];
                read(self.src, &mut buf, offset)?;
                Ok(Some(buf))
            }
            _ => Ok(None),
        }
    }

    /// Signatures in the first 68 KiB (plus the LUKS2 secondary headers).
    fn start(&self, found: &mut Vec<Found>) -> Result<(), ProbeError> {
        let h = &self.head[..];
        if crate::snapshot::record::has_magic(h) {
            let r = crate::snapshot::record::Record::parse(h);
            found.push(Found::DmsnapRecord {
                snapshot: r.as_ref().ok().map(|r| r.to_string()),
            });
        }
        if let Some(f) = self.snapshot_store()? {
            found.push(f);
        }
        if let Some(f) = self.luks()? {
            found.push(f);
        }
        if let Some(f) = fs::xfs(h) {
            found.push(f);
        }
        if let Some(f) = md1(h, 0, MdVersion::V1_1) {
            found.push(f);
        }
        if let Some(f) = self.partition_table()? {
            found.push(f);
        }
        for i in 0..LABEL_SCAN_SECTORS {
            let Some(sector) = field(h, i * LABEL_SIZE, LABEL_SIZE).ok() else {
                break;
            };
            match parse_label_sector(sector, i as u64) {
                Ok(Some(l)) => found.push(Found::LvmPv {
                    uuid: Some(l.pv_id.to_string()),
                    sector: i as u64,
                }),
                // A label lvm2 accepts (magic, sector number, CRC, type) with a bad pv_header.
                Err(_) => found.push(Found::LvmPv {
                    uuid: None,
                    sector: i as u64,
                }),
                Ok(None) => continue,
            }
            break;
        }
        if let Some(f) = fs::ext(h) {
            found.push(f);
        }
        if let Some(f) = fs::swap(h) {
            found.push(f);
        }
        if let Some(f) = md1(h, 4096, MdVersion::V1_2) {
            found.push(f);
        }
        if let Some(f) = fs::btrfs(h) {
            found.push(f);
        }
        Ok(())
    }

    /// Signatures near the end: md 0.90 and 1.0 superblocks.
    fn end(&self, found: &mut Vec<Found>) -> Result<(), ProbeError> {
        // 1.0: 8 KiB before the end, rounded down to 4 KiB.
        if let Some(off) = self.size.checked_sub(8 << 10).map(|o| o & !4095)
            && off > 4096
            && let Some(b) = self.read_opt(off, 256)?
            && let Some(f) =
                md1(&b, 0, MdVersion::V1_0).filter(|_| le_u64(&b, 144).ok() == Some(off >> 9))
        {
            found.push(f);
        }
        // 0.90: the last 64 KiB-aligned 64 KiB block.
        if let Some(off) = (self.size & !0xFFFF).checked_sub(0x10000)
            && let Some(b) = self.read_opt(off, 64)?
            && let Some(f) = md090(&b)
        {
            found.push(f);
        }
        Ok(())
    }
}
