//! A new fsid for a btrfs snapshot, so that it can be mounted beside its origin.
//!
//! The kernel identifies a btrfs filesystem by the fsid in its superblock and refuses (or
//! confuses) a second device with the fsid of a mounted one, which every block-level
//! snapshot of a mounted btrfs is. btrfs's own answer is the `METADATA_UUID` feature
//! (`btrfstune -M`): the superblock's fsid changes, and the old one is kept as the
//! metadata uuid that every tree block header still carries, so nothing but the
//! superblock (and its mirrors) is rewritten. [`reidentify`] does that on the snapshot's
//! own copy of the filesystem; the origin is not touched.
//!
//! ```no_run
//! use devmapper::backup::btrfs_fsid::reidentify;
//! let mut f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/mapper/data-snap")?;
//! let r = reidentify(&mut f, uuid::Uuid::new_v4())?;
//! println!("fsid {} -> {} ({} superblock copies)", r.old_fsid, r.new_fsid, r.copies);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The primary superblock's byte offset; the mirrors are at 64 MiB and 256 GiB.
const OFFSETS: [u64; 3] = [64 << 10, 64 << 20, 256 << 30];
/// Bytes of a superblock; the checksum covers all but its first [`CSUM_LEN`].
const SB_LEN: usize = 4096;
const CSUM_LEN: usize = 32;
const FSID: usize = 0x20;
const BYTENR: usize = 0x30;
const MAGIC: usize = 0x40;
const NUM_DEVICES: usize = 0x88;
const INCOMPAT: usize = 0xbc;
const CSUM_TYPE: usize = 0xc4;
const METADATA_UUID: usize = 0x23b;
/// `BTRFS_FEATURE_INCOMPAT_METADATA_UUID`.
const INCOMPAT_METADATA_UUID: u64 = 1 << 10;
/// `BTRFS_CSUM_TYPE_CRC32`: crc32c, the default.
const CSUM_CRC32C: u16 = 0;

/// What [`reidentify`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reidentified {
    /// The fsid before (the origin's).
    pub old_fsid: uuid::Uuid,
    /// The fsid now.
    pub new_fsid: uuid::Uuid,
    /// Superblock copies rewritten (the primary and the mirrors the device holds).
    pub copies: usize,
}

/// Why [`reidentify`] refused; nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsidError {
    /// No valid primary btrfs superblock (magic, location or checksum wrong).
    #[error("no valid btrfs superblock at 64 KiB ({why})")]
    NoSuperblock {
        /// What is wrong.
        why: &'static str,
    },
    /// A checksum type other than crc32c (xxhash64, sha256, blake2b).
    #[error("the btrfs checksum type is {csum_type}, only crc32c (0) is supported here")]
    ChecksumType {
        /// `csum_type` of the superblock.
        csum_type: u16,
    },
    /// A member of a multi-device filesystem: one device cannot be mounted alone.
    #[error("it is one of {devices} devices of a btrfs filesystem")]
    MultiDevice {
        /// `num_devices` of the superblock.
        devices: u64,
    },
    /// Reading or writing the device failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Give the btrfs filesystem on `dev` the fsid `new_fsid`, keeping the old one as its
/// metadata uuid (setting the `METADATA_UUID` feature if it is not set yet): every valid
/// superblock copy is rewritten with its checksum, the primary last, and the device is
/// synced. A filesystem that already has a metadata uuid keeps it.
///
/// # Errors
/// [`FsidError`]: nothing is written unless the primary superblock is valid, crc32c
/// checksummed and of a single-device filesystem.
pub fn reidentify(dev: &mut File, new_fsid: uuid::Uuid) -> Result<Reidentified, FsidError> {
    let primary = read_sb(dev, OFFSETS[0])?.ok_or(FsidError::NoSuperblock {
        why: "magic or location",
    })?;
    let csum_type = u16::from_le_bytes([primary[CSUM_TYPE], primary[CSUM_TYPE + 1]]);
    if csum_type != CSUM_CRC32C {
        return Err(FsidError::ChecksumType { csum_type });
    }
    if !csum_ok(&primary) {
        return Err(FsidError::NoSuperblock { why: "checksum" });
    }
    let devices = le_u64(&primary, NUM_DEVICES);
    if devices != 1 {
        return Err(FsidError::MultiDevice { devices });
    }
    let old_fsid = uuid_at(&primary, FSID);
    // Mirrors first, the primary last: a crash in between leaves a primary that still
    // names the old fsid, which is what the kernel reads.
    let mut copies = 0;
    for &off in OFFSETS.iter().rev() {
        let sb = if off == OFFSETS[0] {
            Some(primary)
        } else {
            read_sb(dev, off)?.filter(csum_ok)
        };
        let Some(mut sb) = sb else { continue };
        rewrite(&mut sb, new_fsid);
        dev.write_all_at(&sb, off)?;
        copies += 1;
    }
    dev.sync_all()?;
    Ok(Reidentified {
        old_fsid,
        new_fsid,
        copies,
    })
}

/// The superblock at `off` if the device holds one there (magic, and its own offset).
fn read_sb(dev: &File, off: u64) -> Result<Option<[u8; SB_LEN]>, FsidError> {
    let mut sb = [0u8; SB_LEN];
    match dev.read_exact_at(&mut sb, off) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let here = &sb[MAGIC..MAGIC + 8] == b"_BHRfS_M" && le_u64(&sb, BYTENR) == off;
    Ok(here.then_some(sb))
}

/// The new fsid in, the metadata uuid kept (or set to the old fsid), checksum updated.
fn rewrite(sb: &mut [u8; SB_LEN], new_fsid: uuid::Uuid) {
    let incompat = le_u64(sb, INCOMPAT);
    if incompat & INCOMPAT_METADATA_UUID == 0 {
        let (fsid, rest) = sb.split_at_mut(METADATA_UUID);
        rest[..16].copy_from_slice(&fsid[FSID..FSID + 16]);
        sb[INCOMPAT..INCOMPAT + 8]
            .copy_from_slice(&(incompat | INCOMPAT_METADATA_UUID).to_le_bytes());
    }
    sb[FSID..FSID + 16].copy_from_slice(new_fsid.as_bytes());
    let c = crc32c(&sb[CSUM_LEN..]);
    sb[..CSUM_LEN].fill(0);
    sb[..4].copy_from_slice(&c.to_le_bytes());
}

fn csum_ok(sb: &[u8; SB_LEN]) -> bool {
    sb[..4] == crc32c(&sb[CSUM_LEN..]).to_le_bytes()
}

fn le_u64(b: &[u8; SB_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn uuid_at(b: &[u8; SB_LEN], at: usize) -> uuid::Uuid {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    uuid::Uuid::from_bytes(x)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as btrfs checksums with:
/// initial value and final xor all ones.
fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data
        .iter()
        .fold(!0u32, |c, &b| TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

#[cfg(test)]
mod tests;
