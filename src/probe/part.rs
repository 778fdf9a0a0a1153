//! Partition tables: MBR (and the protective MBR of GPT) and GPT, primary and backup.

use uuid::Uuid;

use super::{Found, PartitionTable, Probe, ProbeError};
use crate::io::ReadAt;
use crate::io::bytes::{array, field, le_u32, le_u64};

const GPT_SECTOR_SIZES: [u32; 2] = [512, 4096];

impl<R: ReadAt + ?Sized> Probe<'_, R> {
    /// A GPT (primary or backup, 512- or 4096-byte sectors), else an MBR.
    pub(super) fn partition_table(&self) -> Result<Option<Found>, ProbeError> {
        let mbr = mbr(&self.head);
        for ss in GPT_SECTOR_SIZES {
            let lba = self.size / u64::from(ss);
            let primary = self
                .read_opt(u64::from(ss), ss as usize)?
                .and_then(|b| gpt_header(&b, 1));
            let backup = match lba.checked_sub(1) {
                Some(last) if last > 1 => self
                    .read_opt(last * u64::from(ss), ss as usize)?
                    .and_then(|b| gpt_header(&b, last)),
                _ => None,
            };
            if let Some(disk_guid) = primary.or(backup) {
                return Ok(Some(Found::PartitionTable(PartitionTable::Gpt {
                    disk_guid,
                    sector_size: ss,
                    primary: primary.is_some(),
                    backup: backup.is_some(),
                })));
            }
        }
        Ok(mbr.map(Found::PartitionTable))
    }
}

fn mbr(h: &[u8]) -> Option<PartitionTable> {
    if field(h, 510, 2).ok()? != [0x55, 0xAA] {
        return None;
    }
    let mut partitions = 0u8;
    let mut protective = false;
    for i in 0..4 {
        let e = field(h, 446 + 16 * i, 16).ok()?;
        if e[0] != 0 && e[0] != 0x80 {
            return None;
        }
        let (kind, start, sectors) = (e[4], le_u32(e, 8).ok()?, le_u32(e, 12).ok()?);
        if kind == 0 && sectors == 0 {
            continue;
        }
        if kind == 0 || sectors == 0 || start == 0 {
            return None;
        }
        partitions += 1;
        protective |= kind == 0xEE;
    }
    match (partitions, protective) {
        (0, _) => None,
        (_, true) => Some(PartitionTable::ProtectiveMbr),
        (n, false) => Some(PartitionTable::Mbr { partitions: n }),
    }
}

/// A GPT header in `sector` that says it lives at `lba`, with a valid CRC: its disk GUID.
fn gpt_header(sector: &[u8], lba: u64) -> Option<Uuid> {
    if field(sector, 0, 8).ok()? != b"EFI PART" || le_u64(sector, 24).ok()? != lba {
        return None;
    }
    let len = le_u32(sector, 12).ok()? as usize;
    if len < 92 {
        return None;
    }
    let mut hdr = field(sector, 0, len).ok()?.to_vec();
    let crc = le_u32(&hdr, 16).ok()?;
    hdr[16..20].fill(0);
    if crc32fast::hash(&hdr) != crc {
        return None;
    }
    Some(Uuid::from_bytes_le(array(sector, 56).ok()?))
}
