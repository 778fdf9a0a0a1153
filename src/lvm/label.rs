//! The PV label: one 512-byte sector among sectors 0-3 (`LABELONE` ... `LVM2 001`), followed
//! in the same sector by the `pv_header` with the PV id, the device size, the data area and
//! metadata area lists and the optional `pv_header_extension`.
//!
//! lvm2 reads sectors 0-3 and takes the first sector that starts with `LABELONE`, names its
//! own index in `sector_xl` and has a good CRC over bytes 20..512; anything else is skipped
//! (`_find_lvm_header` in `lib/label/label.c`, `_text_read` in `lib/format_text/text_label.c`).
//!
//! ```
//! use devmapper::lvm::label::{self, LABEL_SIZE};
//! // A blank device has no label.
//! let blank = vec![0u8; 4 * LABEL_SIZE];
//! assert!(matches!(label::read_label(&blank[..]), Err(devmapper::lvm::Error::NoLabel)));
//! ```
#![forbid(unsafe_code)]

use super::crc::{INITIAL_CRC, calc_crc};
use super::error::{AreaList, Error, LabelErrorKind, Result, io_err};
use super::id::LvmId;
use crate::io::ReadAt;
use crate::io::bytes::{le_u32, le_u64};

/// Size of the label sector.
pub const LABEL_SIZE: usize = 512;
/// Number of sectors scanned for a label.
pub const LABEL_SCAN_SECTORS: usize = 4;
/// `label_header.id`.
pub const LABEL_ID: &[u8; 8] = b"LABELONE";
/// `label_header.type` for the text format.
pub const LVM2_LABEL: &[u8; 8] = b"LVM2 001";
/// Size of `struct label_header`.
pub const LABEL_HEADER_SIZE: usize = 32;
/// Offset of the CRC'd range inside the label (`offset_xl`).
const CRC_START: usize = 20;

/// `struct disk_locn`: a byte range on the PV (absolute offset, size; size 0 = "to the end"
/// for a data area).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiskLocn {
    /// Absolute byte offset.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// `struct pv_header_extension`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvHeaderExtension {
    /// Extension version (lvm2 writes 2).
    pub version: u32,
    /// Flags (`PV_EXT_USED` = 1: the PV belongs to a VG).
    pub flags: u32,
    /// Bootloader areas (`pvcreate --bootloaderareasize`).
    pub bootloader_areas: Vec<DiskLocn>,
}

/// `PV_EXT_USED`: the PV is in use by a VG.
pub const PV_EXT_USED: u32 = 0x1;

/// A decoded PV label with its `pv_header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The sector (0-3) the label was found in.
    pub sector: u64,
    /// `crc_xl`, already verified.
    pub crc: u32,
    /// `offset_xl`: where the `pv_header` starts inside the label sector.
    pub pv_header_offset: u32,
    /// The PV id (`pv_header.pv_uuid`).
    pub pv_id: LvmId,
    /// `device_size_xl` in bytes (the VG metadata's `dev_size` takes precedence).
    pub device_size: u64,
    /// Data areas; lvm2 writes exactly one, `{pe_start, 0}`.
    pub data_areas: Vec<DiskLocn>,
    /// Metadata areas: none, one (default) or two (`--pvmetadatacopies 2`).
    pub metadata_areas: Vec<DiskLocn>,
    /// The extension, when present and its version is not 0.
    pub extension: Option<PvHeaderExtension>,
}

/// Read sectors 0-3 of `dev` and decode the label.
///
/// A device shorter than four sectors is scanned as far as it goes.
pub fn read_label<R: ReadAt + ?Sized>(dev: &R) -> Result<Label> {
    let size = dev.size().map_err(io_err("device size", 0))?;
    let want = (LABEL_SCAN_SECTORS * LABEL_SIZE) as u64;
    let len = usize::try_from(size.min(want)).unwrap_or(0);
    let mut buf = vec![0u8; len];
    dev.read_exact_at(&mut buf, 0)
        .map_err(io_err("label sectors", 0))?;
    find_label(&buf)
}

/// Decode the label from the first sectors of a PV (`buf` holds up to four sectors).
pub fn find_label(buf: &[u8]) -> Result<Label> {
    for (index, sector) in buf
        .chunks_exact(LABEL_SIZE)
        .take(LABEL_SCAN_SECTORS)
        .enumerate()
    {
        if let Some(label) = parse_label_sector(sector, index as u64)? {
            return Ok(label);
        }
    }
    Err(Error::NoLabel)
}

/// Decode one sector: `Ok(None)` when it is not a label lvm2 would accept (no `LABELONE`,
/// wrong `sector_xl`, bad CRC or another label type), an error when it is accepted but its
/// `pv_header` is malformed.
pub fn parse_label_sector(sector: &[u8], index: u64) -> Result<Option<Label>> {
    if sector.len() < LABEL_SIZE || sector.get(..8) != Some(&LABEL_ID[..]) {
        return Ok(None);
    }
    if le_u64(sector, 8).ok() != Some(index) {
        return Ok(None);
    }
    let crc = le_u32(sector, 16).unwrap_or(0);
    let covered = sector.get(CRC_START..LABEL_SIZE).unwrap_or_default();
    if calc_crc(INITIAL_CRC, covered) != crc {
        return Ok(None);
    }
    if sector.get(24..32) != Some(&LVM2_LABEL[..]) {
        return Ok(None);
    }
    let bad = |kind: LabelErrorKind| Error::Label {
        sector: index,
        kind,
    };
    let unterminated = |list| bad(LabelErrorKind::UnterminatedList { list });
    let pv_header_offset = le_u32(sector, 20).unwrap_or(0);
    let base = usize::try_from(pv_header_offset).unwrap_or(usize::MAX);
    if base < LABEL_HEADER_SIZE || base.saturating_add(40) > LABEL_SIZE {
        return Err(bad(LabelErrorKind::PvHeaderOutside {
            offset: pv_header_offset,
        }));
    }
    let sector = sector.get(..LABEL_SIZE).unwrap_or_default();
    let raw_id = sector.get(base..base + 32).unwrap_or_default();
    let pv_id = LvmId::from_raw(raw_id).map_err(|e| bad(LabelErrorKind::PvId(e)))?;
    let device_size = le_u64(sector, base + 32).unwrap_or(0);
    let mut at = base + 40;
    let data_areas = read_locn_list(sector, &mut at).ok_or_else(|| unterminated(AreaList::Data))?;
    let metadata_areas =
        read_locn_list(sector, &mut at).ok_or_else(|| unterminated(AreaList::Metadata))?;
    let mut extension = None;
    if let (Some(version), Some(flags)) = (le_u32(sector, at).ok(), le_u32(sector, at + 4).ok())
        && version != 0
    {
        at += 8;
        let bootloader_areas =
            read_locn_list(sector, &mut at).ok_or_else(|| unterminated(AreaList::Bootloader))?;
        extension = Some(PvHeaderExtension {
            version,
            flags,
            bootloader_areas,
        });
    }
    Ok(Some(Label {
        sector: index,
        crc,
        pv_header_offset,
        pv_id,
        device_size,
        data_areas,
        metadata_areas,
        extension,
    }))
}

/// Read `disk_locn` entries up to and including the terminator (`offset == 0`); `None` if
/// the sector ends first.
fn read_locn_list(sector: &[u8], at: &mut usize) -> Option<Vec<DiskLocn>> {
    let mut out = Vec::new();
    loop {
        let offset = le_u64(sector, *at).ok()?;
        let size = le_u64(sector, *at + 8).ok()?;
        *at += 16;
        if offset == 0 {
            return Some(out);
        }
        out.push(DiskLocn { offset, size });
    }
}
