//! The 512-byte `mda_header` sector: its slots, its CRC, reading and writing it.

#![forbid(unsafe_code)]

use super::{CommitError, HDR, MdaTarget, Phase, SLOT0, SLOT1};
use crate::io::WriteAt;
use crate::lvm::crc::{INITIAL_CRC, calc_crc};
use crate::lvm::mda::{self, FMTT_MAGIC, FMTT_VERSION, MDA_HEADER_SIZE, RAW_LOCN_IGNORED, RawLocn};

/// Set magic, version, start and the CRC, as `_raw_write_mda_header` does.
pub(super) fn seal_header(h: &mut [u8; MDA_HEADER_SIZE], start: u64) {
    h[4..20].copy_from_slice(FMTT_MAGIC);
    h[20..24].copy_from_slice(&FMTT_VERSION.to_le_bytes());
    h[24..32].copy_from_slice(&start.to_le_bytes());
    let crc = calc_crc(INITIAL_CRC, &h[4..]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Set `offset`, `size`, `checksum` of the slot at `at`; its flags stay.
pub(super) fn set_slot(h: &mut [u8; MDA_HEADER_SIZE], at: usize, l: Option<&RawLocn>) {
    let (o, s, c) = l.map_or((0, 0, 0), |l| (l.offset, l.size, l.checksum));
    h[at..at + 8].copy_from_slice(&o.to_le_bytes());
    h[at + 8..at + 16].copy_from_slice(&s.to_le_bytes());
    h[at + 16..at + 20].copy_from_slice(&c.to_le_bytes());
}

pub(super) fn slot_offset(h: &[u8; MDA_HEADER_SIZE], at: usize) -> u64 {
    u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or_default())
}

pub(super) fn slot_flags(h: &[u8; MDA_HEADER_SIZE], at: usize) -> u32 {
    u32::from_le_bytes(h[at + 20..at + 24].try_into().unwrap_or_default())
}

/// What `_vg_commit_raw_rlocn` does to the sector before setting a slot: an area with an
/// ignored or empty slot 0 starts fresh (both slots zeroed), and slot 0's ignored bit is
/// cleared (areas written here are in use).
pub(super) fn fresh_slots(h: &mut [u8; MDA_HEADER_SIZE]) {
    if slot_flags(h, SLOT0) & RAW_LOCN_IGNORED != 0 || slot_offset(h, SLOT0) == 0 {
        set_slot(h, SLOT0, None);
        set_slot(h, SLOT1, None);
    }
    let flags = slot_flags(h, SLOT0) & !RAW_LOCN_IGNORED;
    h[SLOT0 + 20..SLOT0 + 24].copy_from_slice(&flags.to_le_bytes());
}

/// Read and check the header of `t`, and the area size against the label.
pub(super) fn read_header<D: WriteAt + ?Sized>(
    dev: &D,
    t: &MdaTarget,
    phase: Phase,
) -> Result<([u8; MDA_HEADER_SIZE], mda::MdaHeader), CommitError> {
    let mut buf = [0u8; MDA_HEADER_SIZE];
    dev.read_exact_at(&mut buf, t.area.offset)
        .map_err(|source| CommitError::Io {
            phase,
            device: t.device,
            area: t.area.offset,
            source,
        })?;
    let header =
        mda::parse_mda_header(&buf, t.area.offset).map_err(|source| CommitError::BadArea {
            device: t.device,
            area: t.area.offset,
            source,
        })?;
    if header.size > t.area.size {
        return Err(CommitError::AreaSize {
            device: t.device,
            area: t.area.offset,
            header_size: header.size,
            label_size: t.area.size,
        });
    }
    let io = |source| CommitError::Io {
        phase,
        device: t.device,
        area: t.area.offset,
        source,
    };
    let device_size = dev.size().map_err(io)?;
    if t.area
        .offset
        .checked_add(header.size)
        .is_none_or(|end| end > device_size)
    {
        return Err(CommitError::AreaPastEnd {
            device: t.device,
            area: t.area.offset,
            size: header.size,
            device_size,
        });
    }
    Ok((buf, header))
}

/// The committed copy as `(offset, size)` when the area has one; it must lie in the ring.
pub(super) fn committed_copy(
    header: &mda::MdaHeader,
    t: &MdaTarget,
) -> Result<Option<(u64, u64)>, CommitError> {
    let Some(&old) = header.committed() else {
        return Ok(None);
    };
    if old.offset == 0 {
        return Ok(None);
    }
    let bad = |kind| CommitError::BadArea {
        device: t.device,
        area: t.area.offset,
        source: crate::lvm::Error::Mda {
            offset: t.area.offset,
            kind,
        },
    };
    if old.offset < HDR || old.offset >= header.size {
        return Err(bad(crate::lvm::MdaErrorKind::TextOutsideBuffer {
            offset: old.offset,
            area_size: header.size,
        }));
    }
    if old.size == 0 || old.size > header.size - HDR {
        return Err(bad(crate::lvm::MdaErrorKind::TextSizeUnfit {
            size: old.size,
        }));
    }
    Ok(Some((old.offset, old.size)))
}

pub(super) fn write_header<D: WriteAt + ?Sized>(
    dev: &D,
    t: &MdaTarget,
    h: &[u8; MDA_HEADER_SIZE],
    phase: Phase,
) -> Result<(), CommitError> {
    dev.write_all_at(h, t.area.offset)
        .map_err(|source| CommitError::Io {
            phase,
            device: t.device,
            area: t.area.offset,
            source,
        })
}
