//! The block devices lvm2 scans when it is given no device list: every entry of
//! `/sys/class/block` (whole disks, partitions, loop devices, md arrays, dm devices), less
//! what lvm2's default filters drop.
//!
//! With `use_devicesfile = 0` lvm2 looks at every block device and skips (lvm2's filters,
//! `lib/filters/`): devices of size 0 (`filter-usable.c`), loop devices without a backing
//! file, `ram` disks and CD-ROMs (device types lvm2 does not scan, `filter-type.c`,
//! `dev-type.c`), whole disks that carry partitions (`filter-partitioned.c`), md
//! components (`filter-md.c`), LVs themselves (`devices/scan_lvs = 0`: dm devices with an
//! `LVM-` uuid) and suspended dm devices (`ignore_suspended_devices`). The rest is given as
//! `/dev/<kernel name>` (devtmpfs creates those nodes, udev or not).
//!
//! ```no_run
//! use devmapper::lvm::devices;
//! for d in devices::scan_devices()? {
//!     println!("{} {}", d.path.display(), d.dev);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use crate::DevNum;

/// A block device found in sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// `/dev/<kernel name>`.
    pub path: PathBuf,
    /// The kernel name (`sda1`, `loop0`, `dm-3`, `md127`).
    pub name: String,
    /// `major:minor`.
    pub dev: DevNum,
    /// Size in 512-byte sectors.
    pub sectors: u64,
}

/// Why a sysfs block device is not scanned ([`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// Size 0 (an empty drive, an unattached loop device).
    ZeroSize,
    /// A loop device without a backing file.
    LoopUnbound,
    /// A type lvm2 does not scan (`ram`, `sr` CD-ROMs, `fd` floppies, `zram` is scanned).
    Type,
    /// A whole disk with partitions: its partitions are scanned instead.
    Partitioned,
    /// An md component: the array is scanned instead.
    MdComponent,
    /// A dm device that is an LV (`LVM-` uuid; lvm2's `scan_lvs = 0`).
    Lv,
    /// A suspended dm device (reading it would block).
    Suspended,
}

/// The facts about one `/sys/class/block` entry that [`classify`] needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysfsEntry {
    /// The kernel name.
    pub name: String,
    /// Size in sectors.
    pub sectors: u64,
    /// A loop device's `loop/backing_file` exists.
    pub loop_backed: bool,
    /// Partitions of this disk exist (sub-entries with a `partition` file).
    pub has_partitions: bool,
    /// Names in `holders/`.
    pub holders: Vec<String>,
    /// `dm/uuid`, for a dm device.
    pub dm_uuid: Option<String>,
    /// `dm/suspended` is 1.
    pub dm_suspended: bool,
}

/// Whether lvm2's default filters would scan this device, and if not why.
///
/// ```
/// use devmapper::lvm::devices::{classify, Skip, SysfsEntry};
/// let e = |name: &str| SysfsEntry { name: name.into(), sectors: 2048, ..SysfsEntry::default() };
/// assert_eq!(classify(&e("sda1")), None);
/// assert_eq!(classify(&e("ram0")), Some(Skip::Type));
/// assert_eq!(classify(&e("loop3")), Some(Skip::LoopUnbound));
/// let lv = SysfsEntry { dm_uuid: Some("LVM-abc".into()), ..e("dm-0") };
/// assert_eq!(classify(&lv), Some(Skip::Lv));
/// ```
pub fn classify(e: &SysfsEntry) -> Option<Skip> {
    let n = e.name.as_str();
    let starts = |p: &str| {
        n.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.bytes().all(|c| c.is_ascii_digit()))
    };
    if starts("ram") || starts("sr") || starts("fd") {
        return Some(Skip::Type);
    }
    if e.sectors == 0 {
        return Some(Skip::ZeroSize);
    }
    if starts("loop") && !e.loop_backed {
        return Some(Skip::LoopUnbound);
    }
    if e.has_partitions {
        return Some(Skip::Partitioned);
    }
    if e.holders.iter().any(|h| h.starts_with("md")) {
        return Some(Skip::MdComponent);
    }
    if let Some(u) = &e.dm_uuid {
        if u.starts_with("LVM-") {
            return Some(Skip::Lv);
        }
        if e.dm_suspended {
            return Some(Skip::Suspended);
        }
    }
    None
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Read the facts of one `/sys/class/block/<name>` directory.
fn entry(dir: &Path, name: &str) -> Option<(SysfsEntry, DevNum)> {
    let dev: DevNum = read_trim(&dir.join("dev"))?.parse().ok()?;
    let sectors = read_trim(&dir.join("size"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let has_partitions = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|c| {
            c.file_name().to_string_lossy().starts_with(name) && c.path().join("partition").exists()
        });
    let holders = std::fs::read_dir(dir.join("holders"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.file_name().to_string_lossy().into_owned())
        .collect();
    let dm_uuid = read_trim(&dir.join("dm/uuid"));
    let dm_suspended = read_trim(&dir.join("dm/suspended")).as_deref() == Some("1");
    Some((
        SysfsEntry {
            name: name.to_string(),
            sectors,
            loop_backed: dir.join("loop/backing_file").exists(),
            has_partitions,
            holders,
            dm_uuid,
            dm_suspended,
        },
        dev,
    ))
}

/// The node of a kernel name: `/dev/<name>` with `!` as `/` (`cciss!c0d0`).
fn node(name: &str) -> PathBuf {
    Path::new("/dev").join(name.replace('!', "/"))
}

/// Every block device lvm2 would scan with its default filters, sorted by path; only
/// those whose `/dev` node exists and is that device.
///
/// # Errors
/// `/sys/class/block` cannot be read.
pub fn scan_devices() -> std::io::Result<Vec<BlockDevice>> {
    scan_devices_in(Path::new("/sys/class/block"))
}

/// [`scan_devices`] over another sysfs directory (tests).
///
/// # Errors
/// `sys_class_block` cannot be read.
pub fn scan_devices_in(sys_class_block: &Path) -> std::io::Result<Vec<BlockDevice>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    for e in std::fs::read_dir(sys_class_block)? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        // An LV's own device is skipped ([`Skip::Lv`]) whatever else sysfs says: one
        // read instead of the whole directory (a VG of 1,000 active LVs has as many).
        if name.starts_with("dm-")
            && read_trim(&e.path().join("dm/uuid")).is_some_and(|u| u.starts_with("LVM-"))
        {
            continue;
        }
        let Some((facts, dev)) = entry(&e.path(), &name) else {
            continue;
        };
        if classify(&facts).is_some() {
            continue;
        }
        let path = node(&name);
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if !md.file_type().is_block_device() || DevNum::from_dev_t(md.rdev()) != dev {
            continue;
        }
        out.push(BlockDevice {
            path,
            name,
            dev,
            sectors: facts.sectors,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> SysfsEntry {
        SysfsEntry {
            name: name.into(),
            sectors: 8,
            ..SysfsEntry::default()
        }
    }

    #[test]
    fn filters_like_lvm2() {
        assert_eq!(classify(&e("sda")), None);
        assert_eq!(classify(&e("nvme0n1p2")), None);
        assert_eq!(classify(&e("md127")), None);
        assert_eq!(classify(&e("sr0")), Some(Skip::Type));
        // A name that only starts like a skipped type is scanned.
        assert_eq!(classify(&e("sram")), None);
        assert_eq!(classify(&e("ramdisk")), None);
        let zero = SysfsEntry {
            sectors: 0,
            ..e("vdb")
        };
        assert_eq!(classify(&zero), Some(Skip::ZeroSize));
        let bound = SysfsEntry {
            loop_backed: true,
            ..e("loop0")
        };
        assert_eq!(classify(&bound), None);
        let disk = SysfsEntry {
            has_partitions: true,
            ..e("sda")
        };
        assert_eq!(classify(&disk), Some(Skip::Partitioned));
        let md = SysfsEntry {
            holders: vec!["md0".into()],
            ..e("sdb")
        };
        assert_eq!(classify(&md), Some(Skip::MdComponent));
        // A PV under an active LV is held by a dm device: still scanned.
        let pv = SysfsEntry {
            holders: vec!["dm-0".into()],
            ..e("sdc")
        };
        assert_eq!(classify(&pv), None);
        let susp = SysfsEntry {
            dm_uuid: Some("CRYPT-LUKS2-x".into()),
            dm_suspended: true,
            ..e("dm-1")
        };
        assert_eq!(classify(&susp), Some(Skip::Suspended));
        let crypt = SysfsEntry {
            dm_uuid: Some("CRYPT-LUKS2-x".into()),
            ..e("dm-1")
        };
        assert_eq!(classify(&crypt), None);
    }

    #[test]
    fn fake_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, dev: &str, size: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
            d
        };
        mk("ram0", "1:0", "8192");
        mk("loop7", "7:7", "0");
        // Entries whose /dev node does not match are dropped, so nothing of this fake
        // tree survives, but reading it must not fail.
        mk("zz9", "250:9", "100");
        let found = scan_devices_in(dir.path()).unwrap();
        assert!(found.iter().all(|d| d.name != "ram0" && d.name != "loop7"));
        assert!(scan_devices_in(&dir.path().join("missing")).is_err());
    }
}
