//! PV label, `pv_header` and metadata area layout as `pvcreate` writes them; the
//! "used by a VG" flag; wiping them as `pvremove` does.
//!
//! lvm2's default PV (`pvcreate` with no options, `lib/metadata/metadata.c` `pv_create`,
//! `lib/format_text/format-text.c` `_text_pv_initialise` and
//! `_text_pv_add_metadata_area`, `lib/format_text/text_label.c` `_text_write`):
//!
//! - the label in sector 1: `LABELONE`, `sector_xl = 1`, CRC of bytes 20..512,
//!   `offset_xl = 32`, `LVM2 001`, then the `pv_header`: PV id, device size in bytes, one
//!   data area `{pe_start, 0}`, one metadata area `{4096, pe_start - 4096}`, and the
//!   extension version 2 with its flags (`PV_EXT_USED` once in a VG) and an empty
//!   bootloader area list;
//! - the metadata area at 4 KiB (the first page after the label sectors), its size the
//!   default 2040 sectors so that it ends at 1 MiB, where the data area starts
//!   (`pe_start = 2048` sectors, the default alignment);
//! - a device smaller than `devices/pv_min_size` (2 MiB) is refused.
//!
//! Before writing, `pvcreate` zeroes the first 2048 bytes (label sectors 0-3, `--zero y`)
//! and the first 4 KiB of the metadata area; then it writes the metadata area header
//! (no metadata yet: both slots zero) and last the label, so a label never points at an
//! area that is not set up. [`write_pv`] does the same, then flushes the device.
//!
//! [`PvLayout::lvm2_aligned`] applies a data alignment and offset as lvm2 does (its
//! `--dataalignment`/`--dataalignmentoffset`; lvm2 also takes them from the device
//! topology, but only when `minimum_io_size`/`optimal_io_size` does not divide 1 MiB, and
//! reading sysfs is the caller's business). Not done: two metadata areas, bootloader
//! areas.
//!
//! ```
//! use devmapper::io::MemDevice;
//! use devmapper::lvm::{id::LvmId, label, mda};
//! use devmapper::lvm::write::pv::{self, PvLayout};
//! let dev = MemDevice::new(8 << 20);
//! let layout = PvLayout::lvm2_default(8 << 20)?;
//! assert_eq!((layout.pe_start, layout.mda.offset, layout.mda.size), (2048, 4096, 1044480));
//! let id = LvmId::generate()?;
//! pv::write_pv(&dev, &id, &layout, false)?;
//! let l = label::read_label(&dev)?;
//! assert_eq!((l.sector, l.pv_id, l.device_size), (1, id, 8 << 20));
//! let h = mda::read_mda_header(&dev, l.metadata_areas[0])?;
//! assert!(matches!(mda::read_committed(&dev, &h)?, mda::MdaContent::Empty));
//! // Too small for lvm2.
//! assert!(matches!(PvLayout::lvm2_default(1 << 20), Err(pv::PvError::TooSmall { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use crate::io::WriteAt;
use crate::lvm::crc::{INITIAL_CRC, calc_crc};
use crate::lvm::id::LvmId;
use crate::lvm::label::{
    self, DiskLocn, LABEL_ID, LABEL_SCAN_SECTORS, LABEL_SIZE, LVM2_LABEL, Label, PV_EXT_USED,
};
use crate::lvm::mda::{FMTT_MAGIC, FMTT_VERSION, MDA_HEADER_SIZE, RAW_LOCN_IGNORED};

/// Sector size.
const SECTOR: u64 = 512;
/// `devices/pv_min_size` default: 2048 KiB, in sectors.
pub const PV_MIN_SIZE_SECTORS: u64 = 4096;
/// Default data alignment: the first PE at 1 MiB (in sectors).
pub const DEFAULT_PE_ALIGN: u64 = 2048;
/// Default metadata area size for 4 KiB pages, in sectors (`_get_default_pvmetadatasize_sectors`).
pub const DEFAULT_MDA_SECTORS: u64 = 2040;
/// `MDA_SIZE_MIN`: 8 pages.
pub const MDA_SIZE_MIN: u64 = 8 * 4096;
/// The metadata area starts at the first page after the label sectors.
pub const MDA_START: u64 = 4096;
/// `PV_HEADER_EXTENSION_VSN`.
pub const PV_HEADER_EXTENSION_VSN: u32 = 2;
/// Bytes `pvcreate --zero y` clears at the start of the device (the four label sectors).
pub const ZERO_START_BYTES: usize = 2048;
/// Bytes lvm2 clears at the start of a new metadata area.
pub const MDA_WIPE_BYTES: u64 = 4096;

/// Where a PV's label, metadata area and data area go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvLayout {
    /// The sector (0-3) of the label; lvm2 writes 1.
    pub label_sector: u64,
    /// The metadata area (absolute byte offset and size).
    pub mda: DiskLocn,
    /// First PE, in sectors.
    pub pe_start: u64,
    /// Device size in bytes, as recorded in the label (whole sectors).
    pub dev_size: u64,
}

impl PvLayout {
    /// lvm2's default layout for a device of `dev_size_bytes` (4 KiB pages, no topology
    /// hints): label in sector 1, metadata area `[4096, 1 MiB)`, `pe_start` 2048 sectors.
    pub fn lvm2_default(dev_size_bytes: u64) -> Result<PvLayout, PvError> {
        PvLayout::lvm2_aligned(dev_size_bytes, DEFAULT_PE_ALIGN, 0)
    }

    /// lvm2's layout with a data alignment and alignment offset in sectors (what
    /// `pvcreate --dataalignment A --dataalignmentoffset O` or the device topology give):
    /// the default-sized metadata area at 4 KiB, grown so that it ends on a multiple of
    /// `align`, then by `offset`, where that fits; shrunk (to end two alignments before
    /// the end of the device, aligned) where the default does not fit; `pe_start` where
    /// it ends (`_text_pv_initialise`, `_text_pv_add_metadata_area`).
    pub fn lvm2_aligned(dev_size_bytes: u64, align: u64, offset: u64) -> Result<PvLayout, PvError> {
        let sectors = dev_size_bytes / SECTOR;
        if sectors < PV_MIN_SIZE_SECTORS {
            return Err(PvError::TooSmall {
                sectors,
                min_sectors: PV_MIN_SIZE_SECTORS,
            });
        }
        // lvm2 never aligns to less than a page.
        let align = align.max(MDA_START / SECTOR);
        if align < offset {
            return Err(PvError::BadLayout {
                reason: format!(
                    "pe_align ({align} sectors) must not be less than pe_align_offset ({offset} sectors)"
                ),
            });
        }
        if sectors < align.saturating_add(offset) {
            return Err(PvError::BadLayout {
                reason: "Data alignment must not exceed device size.".into(),
            });
        }
        let disk = sectors * SECTOR;
        let (align, offset) = (align * SECTOR, offset * SECTOR);
        let start = MDA_START;
        let mut size = DEFAULT_MDA_SECTORS * SECTOR;
        let rem = (start + size) % align;
        if rem != 0 && start + size + align - rem <= disk {
            size += align - rem;
        }
        if offset != 0 && (start + size).is_multiple_of(align) && start + size + offset <= disk {
            size += offset;
        }
        if start + size > disk {
            if disk - start > align * 2 {
                size = disk - start - align * 2;
                let rem = (start + size) % align;
                if rem != 0 {
                    size += align - rem;
                }
            } else {
                size = disk - start;
            }
        }
        if size < MDA_SIZE_MIN || start + size > disk {
            return Err(PvError::BadLayout {
                reason: format!(
                    "Metadata area size too small: {size} bytes. It must be at least {MDA_SIZE_MIN} bytes."
                ),
            });
        }
        Ok(PvLayout {
            label_sector: 1,
            mda: DiskLocn {
                offset: start,
                size,
            },
            pe_start: (start + size) / SECTOR,
            dev_size: disk,
        })
    }

    /// Extents of `extent_size` sectors that fit after `pe_start` (what `vgcreate`
    /// records as `pe_count`).
    pub fn pe_count(&self, extent_size: u64) -> u64 {
        if extent_size == 0 {
            return 0;
        }
        (self.dev_size / SECTOR).saturating_sub(self.pe_start) / extent_size
    }
}

/// What writing or wiping a PV refuses or fails at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PvError {
    /// Smaller than `devices/pv_min_size`.
    #[error("device is too small (pv_min_size): {sectors} sectors, at least {min_sectors} needed")]
    TooSmall {
        /// Device size in sectors.
        sectors: u64,
        /// lvm2's minimum.
        min_sectors: u64,
    },
    /// The layout does not fit the device (or is not one lvm2 can read).
    #[error("PV layout does not fit: {reason}")]
    BadLayout {
        /// What is wrong.
        reason: String,
    },
    /// The device has no LVM2 label.
    #[error("No PV label found.")]
    NoLabel,
    /// The existing label could not be read.
    #[error("reading the PV label: {0}")]
    Label(crate::lvm::Error),
    /// A read, write or flush failed.
    #[error("{what} at byte {offset}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        offset: u64,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str, offset: u64) -> impl FnOnce(std::io::Error) -> PvError {
    move |source| PvError::Io {
        what,
        offset,
        source,
    }
}

/// The label sector lvm2 writes for this PV (`label_write` + `_text_write`), CRC set.
pub fn label_bytes(
    id: &LvmId,
    sector: u64,
    device_size: u64,
    data_areas: &[DiskLocn],
    metadata_areas: &[DiskLocn],
    ext_flags: u32,
    bootloader_areas: &[DiskLocn],
) -> Result<[u8; LABEL_SIZE], PvError> {
    let mut s = [0u8; LABEL_SIZE];
    let too_many = || PvError::BadLayout {
        reason: "too many areas for one label sector".into(),
    };
    let mut put = |at: usize, bytes: &[u8]| -> Result<(), PvError> {
        s.get_mut(at..at + bytes.len())
            .ok_or_else(too_many)?
            .copy_from_slice(bytes);
        Ok(())
    };
    put(0, LABEL_ID)?;
    put(8, &sector.to_le_bytes())?;
    put(20, &32u32.to_le_bytes())?;
    put(24, LVM2_LABEL)?;
    put(32, id.as_bytes())?;
    put(64, &device_size.to_le_bytes())?;
    let mut at = 72;
    for list in [data_areas, metadata_areas] {
        for l in list {
            put(at, &l.offset.to_le_bytes())?;
            put(at + 8, &l.size.to_le_bytes())?;
            at += 16;
        }
        put(at, &[0u8; 16])?;
        at += 16;
    }
    put(at, &PV_HEADER_EXTENSION_VSN.to_le_bytes())?;
    put(at + 4, &ext_flags.to_le_bytes())?;
    at += 8;
    for l in bootloader_areas {
        put(at, &l.offset.to_le_bytes())?;
        put(at + 8, &l.size.to_le_bytes())?;
        at += 16;
    }
    put(at, &[0u8; 16])?;
    let crc = calc_crc(INITIAL_CRC, &s[20..]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    Ok(s)
}

/// An `mda_header` with no metadata (both slots zero, `RAW_LOCN_IGNORED` if asked), as
/// `pvcreate` writes it (`_write_single_mda`).
pub fn empty_mda_header(area: DiskLocn, ignored: bool) -> [u8; MDA_HEADER_SIZE] {
    let mut h = [0u8; MDA_HEADER_SIZE];
    h[4..20].copy_from_slice(FMTT_MAGIC);
    h[20..24].copy_from_slice(&FMTT_VERSION.to_le_bytes());
    h[24..32].copy_from_slice(&area.offset.to_le_bytes());
    h[32..40].copy_from_slice(&area.size.to_le_bytes());
    if ignored {
        h[60..64].copy_from_slice(&RAW_LOCN_IGNORED.to_le_bytes());
    }
    seal_mda_header(&mut h);
    h
}

fn seal_mda_header(h: &mut [u8; MDA_HEADER_SIZE]) {
    let crc = calc_crc(INITIAL_CRC, &h[4..]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
}

fn check_layout(layout: &PvLayout, size: u64) -> Result<(), PvError> {
    let bad = |reason: String| Err(PvError::BadLayout { reason });
    if layout.label_sector >= LABEL_SCAN_SECTORS as u64 {
        return bad(format!("label sector {} is not 0-3", layout.label_sector));
    }
    if layout.dev_size > size {
        return bad(format!(
            "label size {} beyond the device's {size} bytes",
            layout.dev_size
        ));
    }
    let mda_end = layout.mda.offset.checked_add(layout.mda.size);
    if layout.mda.offset < (LABEL_SCAN_SECTORS * LABEL_SIZE) as u64
        || layout.mda.size < MDA_SIZE_MIN
        || mda_end.is_none_or(|e| e > layout.pe_start.saturating_mul(SECTOR))
    {
        return bad(format!(
            "metadata area {}+{} must be after the label sectors, at least {MDA_SIZE_MIN} bytes and end by pe_start",
            layout.mda.offset, layout.mda.size
        ));
    }
    if layout.pe_start == 0 || layout.pe_start.saturating_mul(SECTOR) > layout.dev_size {
        return bad(format!("pe_start {} outside the device", layout.pe_start));
    }
    Ok(())
}

/// Make `dev` a PV as `pvcreate` does: zero the label sectors and the start of the
/// metadata area, write the empty metadata area header, then the label (with
/// `PV_EXT_USED` when `in_vg`), then flush.
///
/// This writes unconditionally: the caller decides whether the device may be written
/// (lvm2 refuses a device holding anything recognisable unless forced).
pub fn write_pv<D: WriteAt + ?Sized>(
    dev: &D,
    id: &LvmId,
    layout: &PvLayout,
    in_vg: bool,
) -> Result<(), PvError> {
    let size = dev.size().map_err(io("device size", 0))?;
    check_layout(layout, size)?;
    let label = label_bytes(
        id,
        layout.label_sector,
        layout.dev_size,
        &[DiskLocn {
            offset: layout.pe_start * SECTOR,
            size: 0,
        }],
        &[layout.mda],
        if in_vg { PV_EXT_USED } else { 0 },
        &[],
    )?;
    let wipe = layout.mda.size.min(MDA_WIPE_BYTES) as usize;
    dev.write_all_at(&vec![0u8; wipe], layout.mda.offset)
        .map_err(io("zeroing the metadata area", layout.mda.offset))?;
    dev.write_all_at(&[0u8; ZERO_START_BYTES], 0)
        .map_err(io("zeroing the label sectors", 0))?;
    dev.write_all_at(&empty_mda_header(layout.mda, false), layout.mda.offset)
        .map_err(io("writing the metadata area header", layout.mda.offset))?;
    dev.sync().map_err(io("flushing", 0))?;
    let at = layout.label_sector * LABEL_SIZE as u64;
    dev.write_all_at(&label, at)
        .map_err(io("writing the label", at))?;
    dev.sync().map_err(io("flushing", 0))
}

fn read_label<D: WriteAt + ?Sized>(dev: &D) -> Result<Label, PvError> {
    match label::read_label(dev) {
        Ok(l) => Ok(l),
        Err(crate::lvm::Error::NoLabel) => Err(PvError::NoLabel),
        Err(e) => Err(PvError::Label(e)),
    }
}

/// Set or clear `PV_EXT_USED` in the label, as lvm2 does when a PV joins a VG
/// (`vgcreate`/`vgextend`: the label is rewritten in `vg_write`, before the metadata) and
/// when it leaves one (`vgremove`/`vgreduce`: after the metadata areas were emptied).
/// The label is rewritten in place with extension version 2; everything else in it is
/// kept. Unlike lvm2's `pv_write`, the metadata area header is not touched (lvm2 rewrites
/// it empty, which is the same bytes on a new PV; emptying the slots of a PV that leaves
/// a VG is [`remove_metadata`]).
pub fn set_in_vg<D: WriteAt + ?Sized>(dev: &D, in_vg: bool) -> Result<(), PvError> {
    let l = read_label(dev)?;
    let (mut flags, bas) = l
        .extension
        .as_ref()
        .map_or((0, Vec::new()), |e| (e.flags, e.bootloader_areas.clone()));
    if in_vg {
        flags |= PV_EXT_USED;
    } else {
        flags &= !PV_EXT_USED;
    }
    let bytes = label_bytes(
        &l.pv_id,
        l.sector,
        l.device_size,
        &l.data_areas,
        &l.metadata_areas,
        flags,
        &bas,
    )?;
    let at = l.sector * LABEL_SIZE as u64;
    dev.write_all_at(&bytes, at)
        .map_err(io("writing the label", at))?;
    dev.sync().map_err(io("flushing", 0))
}

/// Empty both slots of every metadata area header on the PV, keeping each area's
/// "ignored" flag, as `vgremove` does before the PV becomes an orphan
/// (`_vg_remove_raw`). The old text stays in the ring, unreferenced.
pub fn remove_metadata<D: WriteAt + ?Sized>(dev: &D) -> Result<(), PvError> {
    let l = read_label(dev)?;
    for area in &l.metadata_areas {
        let mut h = [0u8; MDA_HEADER_SIZE];
        dev.read_exact_at(&mut h, area.offset)
            .map_err(io("reading the metadata area header", area.offset))?;
        // lvm2 rewrites the header whether or not it read well.
        let ignored = u32::from_le_bytes([h[60], h[61], h[62], h[63]]) & RAW_LOCN_IGNORED != 0;
        let fresh = empty_mda_header(*area, ignored);
        let mut out = h;
        out[4..40].copy_from_slice(&fresh[4..40]);
        out[40..88].copy_from_slice(&fresh[40..88]);
        seal_mda_header(&mut out);
        dev.write_all_at(&out, area.offset)
            .map_err(io("writing the metadata area header", area.offset))?;
    }
    dev.sync().map_err(io("flushing", 0))
}

/// Wipe the PV label as `pvremove` does (`label_remove`): every sector 0-3 that starts
/// with `LABELONE` and names its own index is zeroed; the metadata area is left alone.
/// [`PvError::NoLabel`] when there is no such sector.
pub fn wipe_pv<D: WriteAt + ?Sized>(dev: &D) -> Result<(), PvError> {
    let size = dev.size().map_err(io("device size", 0))?;
    let mut wiped = 0;
    for sector in 0..LABEL_SCAN_SECTORS as u64 {
        let at = sector * LABEL_SIZE as u64;
        if at + LABEL_SIZE as u64 > size {
            break;
        }
        let mut buf = [0u8; LABEL_SIZE];
        dev.read_exact_at(&mut buf, at)
            .map_err(io("reading a label sector", at))?;
        if &buf[..8] == LABEL_ID && buf[8..16] == sector.to_le_bytes() {
            dev.write_all_at(&[0u8; LABEL_SIZE], at)
                .map_err(io("wiping a label sector", at))?;
            wiped += 1;
        }
    }
    if wiped == 0 {
        return Err(PvError::NoLabel);
    }
    dev.sync().map_err(io("flushing", 0))
}
