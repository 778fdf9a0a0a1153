//! The dmsnap record: what a persistent snapshot's COW device says about itself, so that
//! [`activate`](super::activate) can rebuild the devices after a reboot.
//!
//! ```
//! use devmapper::snapshot::record::{DeviceId, IdKind, Record, RecordState, RECORD_LEN};
//! use devmapper::units::Sectors;
//! use devmapper::{DmName, DmUuid};
//!
//! let r = Record {
//!     state: RecordState::Snapshot,
//!     created: 1_700_000_000,
//!     chunk_sectors: 8,
//!     store_offset: Sectors(8),
//!     store_sectors: Sectors(2040),
//!     origin_sectors: 204_800,
//!     wrapper_name: DmName::new("data")?,
//!     wrapper_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef")?,
//!     snapshot_name: DmName::new("data-snap")?,
//!     snapshot_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef-snap-00c0ffee")?,
//!     origin_ids: vec![DeviceId::new(IdKind::Serial, "QM00002")],
//! };
//! let block = r.encode()?;
//! assert_eq!(block.len(), RECORD_LEN);
//! assert_eq!(Record::parse(&block)?, r);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On-disk layout of a COW device made by [`Wrapper::take_snapshot`](super::Wrapper::take_snapshot)
//!
//! ```text
//! byte 0                 store_offset (= max(4 KiB, chunk), a whole number of chunks)      end
//! | dmsnap record (4 KiB) | kernel persistent exception store (SnAp header, areas, chunks) |
//! ```
//!
//! The kernel never sees the record: the snapshot's COW is a linear device
//! `<snapshot>-cow` over `store_offset..store_offset + store_sectors` of the COW device (lvm2
//! puts a `-cow` layer under every snapshot in the same way), so the store is exactly the
//! kernel's format, readable offline by [`crate::cow`] at that offset.
//!
//! The record, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `DMSNAPRC` |
//! | 8 | 4 | version, 1 |
//! | 12 | 4 | `length`: bytes 0..length are the record (64..=4096) |
//! | 16 | 4 | CRC32 (IEEE, as zlib) of bytes 0..length with this field taken as 0 |
//! | 20 | 4 | state: 1 snapshot, 2 merging (a rollback was started) |
//! | 24 | 8 | creation time, seconds since the Unix epoch |
//! | 32 | 8 | store offset in 512-byte sectors |
//! | 40 | 8 | store length in sectors |
//! | 48 | 4 | chunk size in sectors |
//! | 52 | 4 | reserved, 0 |
//! | 56 | 8 | the origin's exact size in sectors |
//! | 64 | .. | fields up to `length`: `tag u8, len u16, len bytes of UTF-8` |
//!
//! Field tags: 1 wrapper dm name, 2 wrapper dm uuid (`DMSNAP-<32 hex>`), 3 snapshot dm
//! name, 4 snapshot dm uuid (`<wrapper uuid>-snap-<8 hex>`), and the origin's identity
//! ([`IdKind`]): 16 dm uuid, 17 md array uuid, 18 wwid, 19 disk serial, 20 content
//! (filesystem / LUKS / PV / swap) uuid. Tags 1-4 are required, once each; unknown tags from
//! 32 on are skipped (later versions may add fields), unknown tags below 32 are an error.
//! The rest of the 4 KiB block is zero.
//!
//! The record is rewritten in place (one 4 KiB write, then `fsync`) when a rollback starts
//! (state 2) and zeroed when the snapshot is dropped or its merge is finished. The kernel
//! never writes below `store_offset`.
#![forbid(unsafe_code)]

use std::fmt;

use crate::cow::header::MAX_CHUNK_SECTORS;
use crate::io::bytes::{OutOfBounds, le_u16, le_u32, le_u64};
use crate::kernel::id::{DmName, DmUuid};
use crate::units::Sectors;

/// The record's magic, at byte 0 of the COW device.
pub const RECORD_MAGIC: [u8; 8] = *b"DMSNAPRC";
/// The record format version this crate writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The block the record lives in (the store starts at or after it).
pub const RECORD_LEN: usize = 4096;
/// The fixed part of the record, before the tagged fields.
pub const FIXED_LEN: usize = 64;
/// At most this many identity fields are written.
pub const MAX_IDS: usize = 16;
/// Longest identity value written, in bytes (longer ones are left out).
pub const MAX_ID_LEN: usize = 255;

const TAG_WRAPPER_NAME: u8 = 1;
const TAG_WRAPPER_UUID: u8 = 2;
const TAG_SNAPSHOT_NAME: u8 = 3;
const TAG_SNAPSHOT_UUID: u8 = 4;
const TAG_FIRST_OPTIONAL: u8 = 32;

/// What the snapshot was doing when the record was last written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordState {
    /// An active snapshot.
    Snapshot,
    /// A rollback was started: the store is being merged into the origin.
    Merging,
}

/// A kind of device identity. The first four name the device itself and never change;
/// [`IdKind::Content`] names what is written on it (a new `mkfs` changes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum IdKind {
    /// The device-mapper uuid of a dm device (an LVM LV: `LVM-...`).
    DmUuid,
    /// The md array uuid (from its members' superblocks).
    MdUuid,
    /// The disk's WWID from sysfs (`device/wwid`), with ` part <start>` for a partition.
    Wwid,
    /// The disk's serial number from sysfs, with ` part <start>` for a partition.
    Serial,
    /// The uuid of the filesystem, LUKS header, LVM PV or swap found on the device.
    Content,
}

impl IdKind {
    const fn tag(self) -> u8 {
        match self {
            IdKind::DmUuid => 16,
            IdKind::MdUuid => 17,
            IdKind::Wwid => 18,
            IdKind::Serial => 19,
            IdKind::Content => 20,
        }
    }

    const fn from_tag(tag: u8) -> Option<IdKind> {
        Some(match tag {
            16 => IdKind::DmUuid,
            17 => IdKind::MdUuid,
            18 => IdKind::Wwid,
            19 => IdKind::Serial,
            20 => IdKind::Content,
            _ => return None,
        })
    }

    /// Whether the id names the device itself (true) or its content (false).
    pub const fn is_hardware(self) -> bool {
        !matches!(self, IdKind::Content)
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            IdKind::DmUuid => "dm uuid",
            IdKind::MdUuid => "md array uuid",
            IdKind::Wwid => "wwid",
            IdKind::Serial => "serial",
            IdKind::Content => "content uuid",
        }
    }
}

/// One identity of a device: a kind and its text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    /// Which kind.
    pub kind: IdKind,
    /// The value, as sysfs or the on-disk header gives it.
    pub value: String,
}

impl DeviceId {
    /// An id of `kind` with `value`.
    ///
    /// ```
    /// use devmapper::snapshot::record::{DeviceId, IdKind};
    /// assert_eq!(DeviceId::new(IdKind::Serial, "S1").to_string(), "serial S1");
    /// ```
    pub fn new(kind: IdKind, value: impl Into<String>) -> DeviceId {
        DeviceId {
            kind,
            value: value.into(),
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.value)
    }
}

/// A parsed, checked dmsnap record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Snapshot or merging.
    pub state: RecordState,
    /// When the snapshot was taken, seconds since the Unix epoch.
    pub created: u64,
    /// Chunk size in sectors (a power of two the kernel accepts).
    pub chunk_sectors: u32,
    /// Where the kernel's store starts on the COW device.
    pub store_offset: Sectors,
    /// The store's length.
    pub store_sectors: Sectors,
    /// The origin's exact size in sectors.
    pub origin_sectors: u64,
    /// The wrapper's dm name.
    pub wrapper_name: DmName,
    /// The wrapper's dm uuid (`DMSNAP-<id>`).
    pub wrapper_uuid: DmUuid,
    /// The snapshot's dm name.
    pub snapshot_name: DmName,
    /// The snapshot's dm uuid (`DMSNAP-<id>-snap-<n>`).
    pub snapshot_uuid: DmUuid,
    /// The origin's identities when the snapshot was taken.
    pub origin_ids: Vec<DeviceId>,
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than the fixed part, or than the record's own length.
    #[error("dmsnap record truncated: {len} bytes, {needed} needed")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// No `DMSNAPRC` magic: not a dmsnap record at all.
    #[error("no dmsnap record (magic missing)")]
    BadMagic,
    /// A version this crate does not read.
    #[error("dmsnap record version {0} is not supported (only {RECORD_VERSION})")]
    BadVersion(u32),
    /// The length field is out of range.
    #[error("dmsnap record length {0} is out of range ({FIXED_LEN}..={RECORD_LEN})")]
    BadLength(u32),
    /// The CRC does not match: the record is damaged.
    #[error("dmsnap record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc {
        /// CRC stored.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A field holds a value that cannot be right.
    #[error("dmsnap record field {field}: {reason}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A required field is missing.
    #[error("dmsnap record lacks the {0}")]
    Missing(&'static str),
    /// Encoding: the fields do not fit in one record block.
    #[error("dmsnap record too long: {0} bytes (at most {RECORD_LEN})")]
    TooLong(usize),
}

/// A field past the end of the bytes given: the record is shorter than its layout.
fn truncated(e: OutOfBounds) -> RecordError {
    RecordError::Truncated {
        len: e.available,
        needed: e.offset.saturating_add(e.len),
    }
}

fn crc_of(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..16]);
    h.update(&[0; 4]);
    h.update(&b[20..]);
    h.finalize()
}

/// Whether `bytes` start with the record's magic (a record, valid or damaged).
///
/// ```
/// use devmapper::snapshot::record::has_magic;
/// assert!(has_magic(b"DMSNAPRC\x01\x00\x00\x00"));
/// assert!(!has_magic(&[0; 16]));
/// ```
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&RECORD_MAGIC)
}

impl Record {
    /// Parse and check a record from the first bytes of a COW device (at least its
    /// `length`; usually the whole [`RECORD_LEN`] block).
    ///
    /// # Errors
    /// Every [`RecordError`] but `TooLong`; never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() < FIXED_LEN {
            if !has_magic(bytes) && !RECORD_MAGIC.starts_with(bytes) {
                return Err(RecordError::BadMagic);
            }
            return Err(RecordError::Truncated {
                len: bytes.len(),
                needed: FIXED_LEN,
            });
        }
        if !has_magic(bytes) {
            return Err(RecordError::BadMagic);
        }
        let version = le_u32(bytes, 8).map_err(truncated)?;
        if version != RECORD_VERSION {
            return Err(RecordError::BadVersion(version));
        }
        let length = le_u32(bytes, 12).map_err(truncated)?;
        let len = length as usize;
        if !(FIXED_LEN..=RECORD_LEN).contains(&len) {
            return Err(RecordError::BadLength(length));
        }
        if bytes.len() < len {
            return Err(RecordError::Truncated {
                len: bytes.len(),
                needed: len,
            });
        }
        let b = &bytes[..len];
        let stored = le_u32(b, 16).map_err(truncated)?;
        let computed = crc_of(b);
        if stored != computed {
            return Err(RecordError::Crc { stored, computed });
        }
        let bad = |field: &'static str, reason: String| RecordError::BadField { field, reason };
        let state = match le_u32(b, 20).map_err(truncated)? {
            1 => RecordState::Snapshot,
            2 => RecordState::Merging,
            s => return Err(bad("state", format!("unknown state {s}"))),
        };
        let created = le_u64(b, 24).map_err(truncated)?;
        let store_offset = le_u64(b, 32).map_err(truncated)?;
        let store_sectors = le_u64(b, 40).map_err(truncated)?;
        let chunk = le_u32(b, 48).map_err(truncated)?;
        let origin_sectors = le_u64(b, 56).map_err(truncated)?;
        if chunk == 0 || !chunk.is_power_of_two() || chunk > MAX_CHUNK_SECTORS {
            return Err(bad(
                "chunk size",
                format!("{chunk} sectors is not a power of two up to {MAX_CHUNK_SECTORS}"),
            ));
        }
        if store_offset < (RECORD_LEN as u64 >> 9) || !store_offset.is_multiple_of(u64::from(chunk))
        {
            return Err(bad(
                "store offset",
                format!(
                    "{store_offset} sectors is below the record or not a whole number of chunks"
                ),
            ));
        }
        let fits = store_offset
            .checked_add(store_sectors)
            .and_then(|end| end.checked_mul(512))
            .is_some();
        if store_sectors < 3 * u64::from(chunk) || !fits {
            return Err(bad(
                "store length",
                format!("{store_sectors} sectors cannot hold a store of {chunk}-sector chunks"),
            ));
        }
        if origin_sectors == 0 {
            return Err(bad("origin size", "zero".to_owned()));
        }

        let mut wrapper_name = None;
        let mut wrapper_uuid = None;
        let mut snapshot_name = None;
        let mut snapshot_uuid = None;
        let mut origin_ids = Vec::new();
        let mut at = FIXED_LEN;
        while at < len {
            let tag = b[at];
            if tag == 0 {
                // Zero padding up to `length`.
                if b[at..].iter().all(|&x| x == 0) {
                    break;
                }
                return Err(bad("fields", format!("tag 0 at byte {at}")));
            }
            if at + 3 > len {
                return Err(RecordError::Truncated {
                    len: at + 3,
                    needed: len + 1,
                });
            }
            let flen = usize::from(le_u16(b, at + 1).map_err(truncated)?);
            let start = at + 3;
            let end = start + flen;
            if end > len {
                return Err(bad(
                    "fields",
                    format!("field of tag {tag} at byte {at} runs past the record's end"),
                ));
            }
            let text = std::str::from_utf8(&b[start..end])
                .map_err(|_| bad("fields", format!("tag {tag}: not UTF-8")))?;
            fn once<T>(slot: &Option<T>, field: &'static str) -> Result<(), RecordError> {
                match slot {
                    Some(_) => Err(RecordError::BadField {
                        field,
                        reason: "given twice".to_owned(),
                    }),
                    None => Ok(()),
                }
            }
            let name =
                |field: &'static str| DmName::new(text).map_err(|e| bad(field, e.to_string()));
            let uuid =
                |field: &'static str| DmUuid::new(text).map_err(|e| bad(field, e.to_string()));
            match tag {
                TAG_WRAPPER_NAME => {
                    once(&wrapper_name, "wrapper name")?;
                    wrapper_name = Some(name("wrapper name")?);
                }
                TAG_WRAPPER_UUID => {
                    once(&wrapper_uuid, "wrapper uuid")?;
                    wrapper_uuid = Some(uuid("wrapper uuid")?);
                }
                TAG_SNAPSHOT_NAME => {
                    once(&snapshot_name, "snapshot name")?;
                    snapshot_name = Some(name("snapshot name")?);
                }
                TAG_SNAPSHOT_UUID => {
                    once(&snapshot_uuid, "snapshot uuid")?;
                    snapshot_uuid = Some(uuid("snapshot uuid")?);
                }
                t => match IdKind::from_tag(t) {
                    Some(kind) => {
                        if text.is_empty() || text.len() > MAX_ID_LEN {
                            return Err(bad(
                                "origin identity",
                                format!("{} of {} bytes", kind.name(), text.len()),
                            ));
                        }
                        if origin_ids.len() < MAX_IDS {
                            origin_ids.push(DeviceId::new(kind, text));
                        }
                    }
                    None if t >= TAG_FIRST_OPTIONAL => {}
                    None => return Err(bad("fields", format!("unknown tag {t}"))),
                },
            }
            at = end;
        }
        let wrapper_name = wrapper_name.ok_or(RecordError::Missing("wrapper name"))?;
        let wrapper_uuid = wrapper_uuid.ok_or(RecordError::Missing("wrapper uuid"))?;
        let snapshot_name = snapshot_name.ok_or(RecordError::Missing("snapshot name"))?;
        let snapshot_uuid = snapshot_uuid.ok_or(RecordError::Missing("snapshot uuid"))?;
        let id = wrapper_uuid
            .as_str()
            .strip_prefix(super::UUID_PREFIX)
            .filter(|id| id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()));
        let Some(id) = id else {
            return Err(bad(
                "wrapper uuid",
                format!("{wrapper_uuid} is not DMSNAP-<32 hex digits>"),
            ));
        };
        let snap_ok = snapshot_uuid
            .as_str()
            .strip_prefix(&format!("{}{id}-snap-", super::UUID_PREFIX))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_alphanumeric()));
        if !snap_ok {
            return Err(bad(
                "snapshot uuid",
                format!("{snapshot_uuid} is not {wrapper_uuid}-snap-<n>"),
            ));
        }
        if wrapper_name == snapshot_name {
            return Err(bad("snapshot name", "the same as the wrapper's".to_owned()));
        }
        Ok(Record {
            state,
            created,
            chunk_sectors: chunk,
            store_offset: Sectors(store_offset),
            store_sectors: Sectors(store_sectors),
            origin_sectors,
            wrapper_name,
            wrapper_uuid,
            snapshot_name,
            snapshot_uuid,
            origin_ids,
        })
    }

    /// The record as a [`RECORD_LEN`]-byte block (zero-padded). Identity values longer
    /// than [`MAX_ID_LEN`] bytes and ids beyond [`MAX_IDS`] are left out.
    ///
    /// # Errors
    /// [`RecordError::TooLong`] when the fields do not fit (they always do with dm names
    /// and uuids of legal lengths).
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut b = Vec::with_capacity(RECORD_LEN);
        b.extend_from_slice(&RECORD_MAGIC);
        b.extend_from_slice(&RECORD_VERSION.to_le_bytes());
        b.extend_from_slice(&[0; 4]); // length, below
        b.extend_from_slice(&[0; 4]); // crc, below
        let state: u32 = match self.state {
            RecordState::Snapshot => 1,
            RecordState::Merging => 2,
        };
        b.extend_from_slice(&state.to_le_bytes());
        b.extend_from_slice(&self.created.to_le_bytes());
        b.extend_from_slice(&self.store_offset.0.to_le_bytes());
        b.extend_from_slice(&self.store_sectors.0.to_le_bytes());
        b.extend_from_slice(&self.chunk_sectors.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.origin_sectors.to_le_bytes());
        let mut field = |tag: u8, text: &str| {
            b.push(tag);
            // dm names/uuids are < 129 bytes; ids are capped below.
            b.extend_from_slice(&(text.len() as u16).to_le_bytes());
            b.extend_from_slice(text.as_bytes());
        };
        field(TAG_WRAPPER_NAME, self.wrapper_name.as_str());
        field(TAG_WRAPPER_UUID, self.wrapper_uuid.as_str());
        field(TAG_SNAPSHOT_NAME, self.snapshot_name.as_str());
        field(TAG_SNAPSHOT_UUID, self.snapshot_uuid.as_str());
        for id in self
            .origin_ids
            .iter()
            .filter(|i| !i.value.is_empty() && i.value.len() <= MAX_ID_LEN)
            .take(MAX_IDS)
        {
            field(id.kind.tag(), &id.value);
        }
        let len = b.len();
        if len > RECORD_LEN {
            return Err(RecordError::TooLong(len));
        }
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        let crc = crc_of(&b);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        b.resize(RECORD_LEN, 0);
        Ok(b)
    }

    /// The origin's identity, for messages: `131072 sectors, serial SA, ...`.
    pub fn origin_text(&self) -> String {
        let mut s = format!("{} sectors", self.origin_sectors);
        for i in &self.origin_ids {
            s.push_str(&format!(", {i}"));
        }
        s
    }

    /// The store's byte range on the COW device.
    pub fn store_range(&self) -> std::ops::Range<u64> {
        let start = self.store_offset.0.saturating_mul(512);
        start..start.saturating_add(self.store_sectors.0.saturating_mul(512))
    }
}

impl fmt::Display for Record {
    /// `snapshot data-snap of data (4 KiB chunks, taken 2026-12-01 21:00:00 UTC)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} of {} (taken {}{})",
            match self.state {
                RecordState::Snapshot => "snapshot",
                RecordState::Merging => "merging snapshot",
            },
            self.snapshot_name,
            self.wrapper_name,
            utc(self.created),
            if self.origin_ids.is_empty() {
                ", origin without a recorded identity".to_owned()
            } else {
                String::new()
            }
        )
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (no time-zone database needed).
///
/// ```
/// assert_eq!(devmapper::snapshot::record::utc(0), "1970-01-01 00:00:00 UTC");
/// assert_eq!(devmapper::snapshot::record::utc(951_782_400), "2000-02-29 00:00:00 UTC");
/// ```
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
