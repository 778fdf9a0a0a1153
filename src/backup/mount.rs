//! Read-only mounts of snapshots: the options each filesystem needs (from
//! [`crate::probe`]), by device node, never by UUID (a snapshot carries its origin's UUID).
#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::error::MountErrorKind;
use crate::DevNum;
use crate::probe::{Found, FsKind};

/// How a snapshot's filesystem is mounted: the filesystem type given to `mount(2)`, the
/// filesystem-specific options, and the flags (always read-only, `noatime`, `nosuid`,
/// `nodev`).
///
/// ```
/// use devmapper::backup::MountPlan;
/// use devmapper::probe::{Found, FsKind};
/// let xfs = [Found::Filesystem { kind: FsKind::Xfs, label: None, uuid: None }];
/// let plan = MountPlan::for_found(&xfs)?;
/// assert_eq!((plan.fstype, plan.options), ("xfs", "nouuid,norecovery"));
/// assert_eq!(plan.to_string(), "xfs ro,noatime,nosuid,nodev,nouuid,norecovery");
/// # Ok::<(), devmapper::backup::MountErrorKind>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountPlan {
    /// The filesystem found.
    pub fs: FsKind,
    /// The type given to `mount(2)`.
    pub fstype: &'static str,
    /// Filesystem-specific options.
    pub options: &'static str,
    /// For btrfs: the fsid (checked against the mounted btrfs filesystems).
    pub btrfs_fsid: Option<uuid::Uuid>,
    /// For btrfs whose fsid a mounted filesystem (the origin) has: the snapshot was given
    /// a new fsid before the mount ([`super::btrfs_fsid::reidentify`]).
    pub reidentified: Option<super::btrfs_fsid::Reidentified>,
}

/// Read-only, no atime updates, no set-uid programs or device nodes.
pub const FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV);

impl MountPlan {
    /// The plan for what [`crate::probe::identify`] found on a snapshot: ext2/3/4 through
    /// the ext4 driver with `noload` (no journal replay: the frozen filesystem needs none,
    /// and a replay would write), XFS with `nouuid,norecovery` (the origin with the same
    /// UUID is mounted; no log recovery), btrfs with `rescue=nologreplay`.
    ///
    /// # Errors
    /// [`MountErrorKind::NoFilesystem`] when nothing was found,
    /// [`MountErrorKind::Unsupported`] for anything else first (an external ext journal, a
    /// partition table, swap, LUKS, ...).
    pub fn for_found(found: &[Found]) -> Result<MountPlan, MountErrorKind> {
        let first = found.first().ok_or(MountErrorKind::NoFilesystem)?;
        let unsupported = || MountErrorKind::Unsupported {
            found: first.to_string(),
        };
        let Found::Filesystem { kind, uuid, .. } = first else {
            return Err(unsupported());
        };
        let (fstype, options) = match kind {
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => ("ext4", "noload"),
            FsKind::Xfs => ("xfs", "nouuid,norecovery"),
            FsKind::Btrfs => ("btrfs", "rescue=nologreplay"),
            _ => return Err(unsupported()),
        };
        Ok(MountPlan {
            fs: *kind,
            fstype,
            options,
            btrfs_fsid: if *kind == FsKind::Btrfs { *uuid } else { None },
            reidentified: None,
        })
    }
}

impl std::fmt::Display for MountPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ro,noatime,nosuid,nodev,{}",
            self.fstype, self.options
        )
    }
}

/// Probe `node` (which must be device `dev`) and mount it read-only on `target`.
pub(crate) fn mount_snapshot(
    node: &Path,
    dev: DevNum,
    target: &Path,
) -> Result<MountPlan, MountErrorKind> {
    let f = std::fs::File::open(node).map_err(MountErrorKind::Io)?;
    let meta = f.metadata().map_err(MountErrorKind::Io)?;
    if DevNum::from_dev_t(meta.rdev()) != dev
        || !std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type())
    {
        return Err(MountErrorKind::NodeMismatch {
            node: node.to_owned(),
            expected: dev,
        });
    }
    let found = crate::probe::identify(&f).map_err(MountErrorKind::Probe)?;
    drop(f);
    let mut plan = MountPlan::for_found(&found)?;
    if let Some(fsid) = plan.btrfs_fsid
        && Path::new("/sys/fs/btrfs")
            .join(fsid.hyphenated().to_string())
            .exists()
    {
        // The kernel will not mount a second device of a mounted btrfs: the snapshot's
        // own copy gets a new fsid (the origin is not touched).
        let mut rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(node)
            .map_err(MountErrorKind::Io)?;
        let r = super::btrfs_fsid::reidentify(&mut rw, uuid::Uuid::new_v4())
            .map_err(|why| MountErrorKind::BtrfsFsidInUse { fsid, why })?;
        plan.reidentified = Some(r);
    }
    nix::mount::mount(
        Some(node),
        target,
        Some(plan.fstype),
        FLAGS,
        Some(plan.options),
    )
    .map_err(|errno| MountErrorKind::Syscall {
        options: plan.options.to_owned(),
        errno,
    })?;
    Ok(plan)
}

/// What [`unmount`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unmounted {
    /// Unmounted at once.
    Now,
    /// Detached (lazy unmount): gone from the tree, released when its last user lets go.
    Detached,
    /// Nothing was mounted there.
    NotMounted,
}

/// Unmount `target`: at once (retrying while busy for about a second unless `lazy`), else
/// detached.
pub(crate) fn unmount(target: &Path, lazy: bool) -> Result<Unmounted, Errno> {
    let tries = if lazy { 0 } else { 10 };
    for i in 0..=tries {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => return Ok(Unmounted::Now),
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(Unmounted::NotMounted),
            Err(Errno::EBUSY) if i < tries => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(Errno::EBUSY) => break,
            Err(e) => return Err(e),
        }
    }
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(Unmounted::Detached),
        Err(Errno::EINVAL | Errno::ENOENT) => Ok(Unmounted::NotMounted),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(kind: FsKind) -> Found {
        Found::Filesystem {
            kind,
            label: None,
            uuid: Some(uuid::Uuid::from_bytes([7; 16])),
        }
    }

    #[test]
    fn options_by_filesystem() {
        for (k, t, o) in [
            (FsKind::Ext2, "ext4", "noload"),
            (FsKind::Ext3, "ext4", "noload"),
            (FsKind::Ext4, "ext4", "noload"),
            (FsKind::Xfs, "xfs", "nouuid,norecovery"),
            (FsKind::Btrfs, "btrfs", "rescue=nologreplay"),
        ] {
            let p = MountPlan::for_found(&[fs(k)]).unwrap();
            assert_eq!((p.fs, p.fstype, p.options), (k, t, o));
            assert_eq!(p.btrfs_fsid.is_some(), k == FsKind::Btrfs);
        }
        assert!(FLAGS.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOATIME));
    }

    #[test]
    fn nothing_or_something_else_is_refused() {
        assert!(matches!(
            MountPlan::for_found(&[]),
            Err(MountErrorKind::NoFilesystem)
        ));
        match MountPlan::for_found(&[fs(FsKind::ExtJournal)]) {
            Err(MountErrorKind::Unsupported { found }) => {
                assert!(
                    found.contains("jbd") || found.contains("journal"),
                    "{found}"
                );
            }
            other => panic!("{other:?}"),
        }
        let swap = Found::Swap {
            page_size: 4096,
            label: None,
            uuid: None,
            hibernation: false,
        };
        assert!(matches!(
            MountPlan::for_found(&[swap]),
            Err(MountErrorKind::Unsupported { .. })
        ));
    }
}
