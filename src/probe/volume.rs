//! Volume and container signatures: md RAID superblocks, LUKS headers, and the
//! dm-snapshot persistent store.

use uuid::Uuid;

use super::{Found, MdVersion, Probe, ProbeError, text};
use crate::cow::{Header, HeaderState};
use crate::io::ReadAt;
use crate::io::bytes::{OutOfBounds, array, be_u16, be_u32, be_u64, field, le_u32, le_u64};

pub(super) const MD_MAGIC: u32 = 0xa92b_4efc;
pub(super) const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
pub(super) const LUKS2_SECONDARY_MAGIC: &[u8; 6] = b"SKUL\xba\xbe";
/// Where cryptsetup may put the LUKS2 secondary header (it equals the primary's size).
pub(super) const LUKS2_SECONDARY_OFFSETS: [u64; 9] = [
    0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
];
impl<R: ReadAt + ?Sized> Probe<'_, R> {
    pub(super) fn snapshot_store(&self) -> Result<Option<Found>, ProbeError> {
        let Some(raw) = array::<16>(&self.head, 0).ok() else {
            return Ok(None);
        };
        let Ok(HeaderState::Persistent(h)) = Header::parse(&raw) else {
            return Ok(None);
        };
        // Area 0 is chunk 1; its first entry's new_chunk of 0 ends the table.
        let area0 = u64::from(h.chunk_sectors) << 9;
        let empty = self
            .read_opt(area0, 16)?
            .is_some_and(|e| le_u64(&e, 8).ok() == Some(0));
        Ok(Some(Found::SnapshotStore {
            chunk_sectors: h.chunk_sectors,
            valid: h.is_valid(),
            empty,
        }))
    }

    pub(super) fn luks(&self) -> Result<Option<Found>, ProbeError> {
        let h = &self.head[..];
        let header = |b: &[u8], secondary_at: Option<u64>| {
            let version = be_u16(b, 6).ok().unwrap_or(0);
            Found::Luks {
                version,
                uuid: text(b, 168, 40),
                label: if version == 2 { text(b, 24, 48) } else { None },
                secondary_at,
            }
        };
        if field(h, 0, 6).ok() == Some(LUKS_MAGIC) {
            return Ok(Some(header(h, None)));
        }
        for off in LUKS2_SECONDARY_OFFSETS {
            if let Some(b) = self.read_opt(off, 512)?
                && field(&b, 0, 6).ok() == Some(LUKS2_SECONDARY_MAGIC)
                && be_u16(&b, 6).ok() == Some(2)
                && be_u64(&b, 256).ok() == Some(off)
            {
                return Ok(Some(header(&b, Some(off))));
            }
        }
        Ok(None)
    }
}

/// An md 1.x superblock at `at` in `b`. For 1.1 and 1.2 (`at` is the byte offset on the
/// device) the recorded `super_offset` must point back at it; 1.0 is checked by the caller.
pub(super) fn md1(b: &[u8], at: usize, version: MdVersion) -> Option<Found> {
    let sb = field(b, at, 256).ok()?;
    if le_u32(sb, 0).ok()? != MD_MAGIC || le_u32(sb, 4).ok()? != 1 {
        return None;
    }
    if version != MdVersion::V1_0 && le_u64(sb, 144).ok()? != (at as u64) >> 9 {
        return None;
    }
    Some(Found::MdRaid {
        version,
        uuid: Uuid::from_slice(field(sb, 16, 16).ok()?).ok()?,
        name: text(sb, 32, 32),
    })
}

/// An md 0.90 superblock (host-endian: either byte order is accepted).
pub(super) fn md090(sb: &[u8]) -> Option<Found> {
    let word: fn(&[u8], usize) -> Result<u32, OutOfBounds> = match le_u32(sb, 0).ok()? {
        MD_MAGIC => le_u32,
        m if m.swap_bytes() == MD_MAGIC => be_u32,
        _ => return None,
    };
    if word(sb, 4).ok()? != 0 || word(sb, 8).ok()? != 90 {
        return None;
    }
    let mut uuid = [0u8; 16];
    for (i, at) in [20usize, 52, 56, 60].into_iter().enumerate() {
        uuid[i * 4..i * 4 + 4].copy_from_slice(&word(sb, at).ok()?.to_be_bytes());
    }
    Some(Found::MdRaid {
        version: MdVersion::V0_90,
        uuid: Uuid::from_bytes(uuid),
        name: None,
    })
}
