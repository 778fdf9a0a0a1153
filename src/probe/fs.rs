//! Filesystem signatures: ext2/3/4 (and external ext journals), XFS, btrfs, Linux swap.

use super::{Found, FsKind, raw_uuid, text};
use crate::io::bytes::{be_u16, be_u32, field, le_u16, le_u32, le_u64};

pub(super) const EXT_MAGIC: u16 = 0xEF53;
pub(super) const EXT_SB: usize = 1024;
pub(super) const EXT_COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub(super) const EXT_INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// Incompatible features an ext3 kernel driver knows: filetype, recover, meta_bg.
pub(super) const EXT3_INCOMPAT: u32 = 0x0002 | 0x0004 | 0x0010;
/// ... and ext2: filetype, meta_bg.
pub(super) const EXT2_INCOMPAT: u32 = 0x0002 | 0x0010;
/// Read-only-compatible features both know: sparse_super, large_file, btree_dir.
pub(super) const EXT23_RO_COMPAT: u32 = 0x0001 | 0x0002 | 0x0004;

pub(super) const BTRFS_SB: usize = 64 << 10;
pub(super) const SWAP_PAGE_SIZES: [u32; 5] = [4096, 8192, 16384, 32768, 65536];
/// An XFS superblock at the start of `h` (magic, plausible block and sector sizes).
pub(super) fn xfs(h: &[u8]) -> Option<Found> {
    if field(h, 0, 4).ok() != Some(b"XFSB") {
        return None;
    }
    let plausible_block = be_u32(h, 4)
        .ok()
        .is_some_and(|b| b.is_power_of_two() && (512..=65536).contains(&b));
    let plausible_sect = be_u16(h, 102)
        .ok()
        .is_some_and(|s| s.is_power_of_two() && (512..=32768).contains(&s));
    (plausible_block && plausible_sect).then(|| Found::Filesystem {
        kind: FsKind::Xfs,
        label: text(h, 108, 12),
        uuid: raw_uuid(h, 32),
    })
}

/// A btrfs superblock at 64 KiB that says it is there.
pub(super) fn btrfs(h: &[u8]) -> Option<Found> {
    let sb = field(h, BTRFS_SB, 0x12b + 256).ok()?;
    if field(sb, 0x40, 8).ok() != Some(b"_BHRfS_M")
        || le_u64(sb, 0x30).ok() != Some(BTRFS_SB as u64)
    {
        return None;
    }
    Some(Found::Filesystem {
        kind: FsKind::Btrfs,
        label: text(sb, 0x12b, 256),
        uuid: raw_uuid(sb, 0x20),
    })
}

pub(super) fn ext(h: &[u8]) -> Option<Found> {
    let sb = field(h, EXT_SB, 1024).ok()?;
    if le_u16(sb, 0x38).ok()? != EXT_MAGIC || le_u32(sb, 0x18).ok()? > 6 {
        return None;
    }
    let compat = le_u32(sb, 0x5c).ok()?;
    let incompat = le_u32(sb, 0x60).ok()?;
    let ro_compat = le_u32(sb, 0x64).ok()?;
    let ext23_ro = ro_compat & !EXT23_RO_COMPAT == 0;
    let kind = if incompat & EXT_INCOMPAT_JOURNAL_DEV != 0 {
        FsKind::ExtJournal
    } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        if ext23_ro && incompat & !EXT3_INCOMPAT == 0 {
            FsKind::Ext3
        } else {
            FsKind::Ext4
        }
    } else if ext23_ro && incompat & !EXT2_INCOMPAT == 0 {
        FsKind::Ext2
    } else {
        FsKind::Ext4
    };
    Some(Found::Filesystem {
        kind,
        label: text(sb, 0x78, 16),
        uuid: raw_uuid(sb, 0x68),
    })
}

pub(super) fn swap(h: &[u8]) -> Option<Found> {
    for ps in SWAP_PAGE_SIZES {
        let Some(sig) = field(h, ps as usize - 10, 10).ok() else {
            break;
        };
        let hibernation = if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
            false
        } else if sig.starts_with(b"S1SUSPEND")
            || sig.starts_with(b"S2SUSPEND")
            || sig.starts_with(b"ULSUSPEND")
            || sig == b"LINHIB0001"
        {
            true
        } else {
            continue;
        };
        // The v1 header (version 1 after 1024 boot bytes) carries a UUID and label.
        let v1 = sig != b"SWAP-SPACE" && le_u32(h, 1024).ok() == Some(1);
        return Some(Found::Swap {
            page_size: ps,
            label: if v1 { text(h, 1052, 16) } else { None },
            uuid: if v1 { raw_uuid(h, 1036) } else { None },
            hibernation,
        });
    }
    None
}
