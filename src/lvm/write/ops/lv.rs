//! `lvcreate` and `lvremove`: allocation, the commit, activation and zeroing the start of
//! a new LV; removal of an unused one.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{DEFAULT_STRIPE_SIZE, ZERO_BYTES, parse_size};
use crate::io::WriteAt;
use crate::kernel::undo::remove_retrying;
use crate::lvm::activate;
use crate::lvm::id::LvmId;
use crate::lvm::index::VgIndex;
use crate::lvm::lvs::display_size_long;
use crate::lvm::model::{
    AllocPolicy, Area, LogicalVolume, PhysicalVolume, SegmentKind, VolumeGroup,
};
use crate::lvm::names::check_lv_name;
use crate::lvm::plan::{PlanOptions, plan_lv};
use crate::lvm::write::alloc::{AllocRequest, allocate};
use crate::lvm::write::error::{Result, WriteError};
use crate::lvm::write::session::{VgSession, WriteOptions, open_rw};
use crate::lvm::write::snapshot;
use crate::targets::DevRef;
use crate::{DevId, DeviceMapper, DmUuid};

/// What [`lvcreate`] makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvCreate {
    /// The size in sectors (rounded up to whole extents, and to the stripe count).
    pub size_sectors: u64,
    /// Number of stripes (1: linear).
    pub stripes: u32,
    /// Stripe size in sectors (default 64 KiB with several stripes).
    pub stripe_size: Option<u64>,
    /// Activate the new LV (lvm2's default).
    pub activate: bool,
    /// Zero its first 4 KiB (lvm2's default `-Zy`; needs the LV active).
    pub zero: bool,
}

impl LvCreate {
    /// A linear LV of `size` (lvm2's `-L` syntax, MiB by default), activated and zeroed.
    ///
    /// # Errors
    /// [`WriteError::BadSize`].
    pub fn size(size: &str) -> Result<LvCreate> {
        Ok(LvCreate {
            size_sectors: parse_size(size, 2048)?,
            stripes: 1,
            stripe_size: None,
            activate: true,
            zero: true,
        })
    }
}

/// What [`lvcreate`] did.
#[derive(Clone, Debug)]
pub struct LvCreated {
    /// Extents allocated.
    pub extents: u64,
    /// lvm2's notices (`Rounding up size to full physical extent ...`).
    pub notices: Vec<String>,
    /// The dm device, when activated.
    pub device: Option<crate::DeviceInfo>,
    /// Non-fatal problems (a backup file not written, the LV not zeroed).
    pub warnings: Vec<String>,
}

/// The extents for `size` sectors with lvm2's rounding and notices.
fn extents_for(
    vg: &VolumeGroup,
    size: u64,
    stripes: u32,
    notices: &mut Vec<String>,
) -> Result<u64> {
    let es = vg.extent_size.max(1);
    if size == 0 {
        return Err(WriteError::BadSize {
            text: "0".into(),
            reason: "Size may not be zero.",
        });
    }
    let mut extents = size.div_ceil(es);
    if !size.is_multiple_of(es) {
        notices.push(format!(
            "Rounding up size to full physical extent {}",
            display_size_long(extents * es)
        ));
    }
    if extents > u64::from(u32::MAX) {
        return Err(WriteError::BadSize {
            text: display_size_long(size),
            reason: "Volume too large for extent size.",
        });
    }
    let k = u64::from(stripes.max(1));
    if !extents.is_multiple_of(k) {
        let new = extents + (k - extents % k);
        notices.push(format!(
            "Rounding size {} ({extents} extents) up to stripe boundary size {} ({new} extents).",
            display_size_long(extents * es),
            display_size_long(new * es)
        ));
        extents = new;
    }
    Ok(extents)
}

fn nodename() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The dm uuid of an LV's own device.
fn lv_uuid(vg: &VolumeGroup, lv: &LogicalVolume) -> Result<DmUuid> {
    DmUuid::new(&format!("LVM-{}{}", vg.id.as_str(), lv.id.as_str()))
        .map_err(|e| WriteError::BadOption(e.to_string()))
}

fn activate_lv(s: &VgSession, dm: &DeviceMapper, name: &str) -> Result<crate::DeviceInfo> {
    let vg = s.vg();
    let dev = |p: &PhysicalVolume| s.pv_devnum(p).map(DevRef::from);
    let plan = plan_lv(vg, name, &dev, &PlanOptions::default())?;
    activate::apply(dm, &plan)?;
    let lv = vg.lv(name).ok_or(WriteError::Internal("LV gone"))?;
    let uuid = lv_uuid(vg, lv)?;
    dm.info(DevId::Uuid(&uuid))
        .map_err(WriteError::dm("info", name))
}

/// The `/dev` node of a block device (sysfs `uevent` `DEVNAME`: devtmpfs makes it,
/// udev or not).
fn dev_node(dev: crate::DevNum) -> PathBuf {
    std::fs::read_to_string(format!("/sys/dev/block/{dev}/uevent"))
        .ok()
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))
                .map(|n| n.trim().to_string())
        })
        .filter(|n| !n.is_empty() && !n.contains(".."))
        .map_or_else(
            || PathBuf::from(format!("/dev/block/{dev}")),
            |n| Path::new("/dev").join(n),
        )
}

/// A page-aligned block of zeroes, for an `O_DIRECT` write.
#[repr(C, align(4096))]
struct ZeroPage([u8; 4096]);

/// Zero the first `ZERO_BYTES` of the device (capped at its size), as lvm2's `wipe_lv`:
/// one `O_DIRECT` write through the new device's node, which reaches the device without
/// the page cache and without a flush of the whole device (a flush of a loop device
/// syncs its whole backing file). Where `O_DIRECT` is refused, a buffered write and
/// `fsync`.
fn zero_start(info: &crate::DeviceInfo, sectors: u64) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    const _: () = assert!(ZERO_BYTES as usize <= std::mem::size_of::<ZeroPage>());
    let path = dev_node(info.dev);
    let n = ZERO_BYTES.min(sectors * 512) as usize;
    let zeroes = Box::new(ZeroPage([0u8; 4096]));
    // O_DIRECT needs whole logical blocks: 4 KiB is one for any device here.
    if n == zeroes.0.len() {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        {
            Ok(f) => {
                return f
                    .write_all_at(&zeroes.0[..n], 0)
                    .map_err(WriteError::io(&path));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(WriteError::io(&path)(e)),
        }
    }
    let f = open_rw(&path)?;
    f.write_all_at(&zeroes.0[..n], 0)
        .and_then(|()| WriteAt::sync(&f))
        .map_err(WriteError::io(&path))
}

/// `lvcreate -n LV -L SIZE VG` (linear, or striped with `stripes > 1`): lvm2's name
/// rules, the size rounded up to whole extents (and to the stripe count) with lvm2's
/// notices, extents by lvm2's normal policy, `creation_time`/`creation_host`, one commit;
/// then, unless told not to, the LV activated through [`crate::lvm::activate`] and its
/// first 4 KiB zeroed, as lvm2 does. A failure after the commit removes the LV again (a
/// second commit, as lvm2's `revert_new_lv`).
///
/// # Errors
/// [`WriteError::Name`], [`WriteError::LvExists`], [`WriteError::Alloc`] (not enough free
/// space: lvm2's message), [`WriteError::BadSize`], the errors of [`VgSession::open`] and
/// of the commit, [`WriteError::Activate`], [`WriteError::Dm`].
pub fn lvcreate(
    vg_name: &str,
    lv_name: &str,
    req: &LvCreate,
    opts: &WriteOptions,
) -> Result<LvCreated> {
    check_lv_name(vg_name, lv_name)?;
    if req.stripes == 0 {
        return Err(WriteError::BadOption(
            "Number of stripes must be at least 1.".into(),
        ));
    }
    let stripe_size = if req.stripes > 1 {
        let ss = req.stripe_size.unwrap_or(DEFAULT_STRIPE_SIZE);
        if ss < 8 || !ss.is_power_of_two() {
            return Err(WriteError::BadOption(format!(
                "Invalid stripe size {}.",
                display_size_long(ss)
            )));
        }
        ss
    } else {
        0
    };
    // Device-mapper first: a new LV that cannot be activated is refused before writing.
    let dm = if req.activate {
        Some(DeviceMapper::new().map_err(WriteError::dm("open", "/dev/mapper/control"))?)
    } else {
        None
    };
    let mut s = VgSession::open(vg_name, opts)?;
    // Borrowed from the session: one copy of the VG (the new one) is made, not two.
    let old = s.vg();
    let extent_size = old.extent_size;
    if old.lv(lv_name).is_some() {
        return Err(WriteError::LvExists {
            vg: vg_name.into(),
            lv: lv_name.into(),
        });
    }
    let ix = VgIndex::new(old);
    if old.max_lv != 0 {
        let visible = old.lvs.iter().filter(|l| ix.is_visible(l)).count() as u64;
        if visible >= old.max_lv {
            return Err(WriteError::BadOption(format!(
                "Maximum number of logical volumes ({}) reached in volume group {vg_name}",
                old.max_lv
            )));
        }
    }
    let mut notices = Vec::new();
    let extents = extents_for(old, req.size_sectors, req.stripes, &mut notices)?;
    let stripe_size = stripe_size.min(old.extent_size);
    let segments = allocate(
        old,
        &AllocRequest::striped(lv_name, extents, req.stripes, stripe_size),
    )?;
    let lv = LogicalVolume {
        name: lv_name.to_string(),
        id: LvmId::generate().map_err(WriteError::io("/dev/urandom"))?,
        status: ["READ", "WRITE", "VISIBLE"]
            .into_iter()
            .map(String::from)
            .collect(),
        flags: BTreeSet::new(),
        tags: Vec::new(),
        read_ahead: None,
        major: None,
        minor: None,
        creation_time: Some(now()),
        creation_host: Some(nodename()),
        lock_args: None,
        allocation_policy: AllocPolicy::Inherit,
        profile: None,
        segments,
    };
    let mut new = old.clone();
    // Visible LVs come first in lvm2's order.
    let at = new
        .lvs
        .iter()
        .position(|l| !ix.is_visible(l))
        .unwrap_or(new.lvs.len());
    new.lvs.insert(at, lv);
    s.precommit(new)?;
    s.commit()?;
    let mut out = LvCreated {
        extents,
        notices,
        device: None,
        warnings: Vec::new(),
    };
    if let Some(dm) = &dm {
        let size = extents * extent_size;
        let done = activate_lv(&s, dm, lv_name).and_then(|info| {
            if req.zero {
                zero_start(&info, size)?;
            }
            Ok(info)
        });
        match done {
            Ok(info) => out.device = Some(info),
            Err(e) => {
                // lvm2's revert_new_lv: deactivate and remove the LV again.
                let name = crate::lvm::plan::dm_name(vg_name, lv_name, None);
                if let Ok(n) = crate::DmName::new(&name) {
                    let _ = remove_retrying(dm, &n);
                }
                let mut back = s.vg().clone();
                back.lvs.retain(|l| l.name != lv_name);
                let undone = s.precommit(back).and_then(|()| s.commit());
                return Err(match undone {
                    Ok(()) => e,
                    Err(u) => WriteError::AfterCommit {
                        what: format!(
                            "LV {vg_name}/{lv_name} created but not activated ({e}), and not removed again"
                        ),
                        source: Box::new(u),
                    },
                });
            }
        }
    } else if req.zero {
        out.warnings.push(format!(
            "WARNING: Logical volume {vg_name}/{lv_name} not zeroed."
        ));
    }
    out.warnings.extend(s.warnings().iter().cloned());
    Ok(out)
}

/// The LV's dm device: open count and holders, if it exists.
fn lv_device(
    dm: &DeviceMapper,
    vg: &VolumeGroup,
    lv: &LogicalVolume,
) -> Result<Option<crate::DeviceInfo>> {
    let uuid = lv_uuid(vg, lv)?;
    match dm.info(DevId::Uuid(&uuid)) {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(WriteError::dm("info", &lv.name)(e)),
    }
}

fn has_holders(dev: crate::DevNum) -> bool {
    std::fs::read_dir(format!("/sys/dev/block/{dev}/holders"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

/// An LV [`lvremove`] can remove: every segment striped on PVs, in no snapshot relation,
/// not used by another LV.
fn removable(vg: &VolumeGroup, lv: &LogicalVolume) -> Result<()> {
    let unsupported = |why: &str| {
        Err(WriteError::Unsupported(format!(
            "Logical volume {}/{}: {why}",
            vg.name, lv.name
        )))
    };
    if vg.is_snapshot_internal(lv) || vg.cow_link(&lv.name).is_some() {
        return unsupported("snapshot LVs are not removed by this lvremove yet");
    }
    if vg.snapshot_links().any(|l| l.origin == lv.name) {
        return unsupported("an origin with snapshots is not removed by this lvremove yet");
    }
    if !lv.segments.iter().all(|s| {
        matches!(&s.kind, SegmentKind::Striped { areas, .. } if areas.iter().all(|a| matches!(a, Area::Pv { .. })))
    }) {
        return unsupported("only linear and striped LVs are removed by this lvremove");
    }
    let used = vg.lvs.iter().any(|o| {
        o.segments.iter().any(|s| match &s.kind {
            SegmentKind::Striped { areas, .. } => areas
                .iter()
                .any(|a| matches!(a, Area::Lv { lv: n, .. } if *n == lv.name)),
            SegmentKind::Other { lv_refs, .. } => lv_refs.contains(&lv.name),
            SegmentKind::ThinPool { metadata, data, .. } => {
                *metadata == lv.name || *data == lv.name
            }
            SegmentKind::Thin { pool, .. } => *pool == lv.name,
            _ => false,
        })
    });
    if used {
        return unsupported("the LV is used by another LV");
    }
    Ok(())
}

/// What [`lvremove`] did.
#[derive(Clone, Debug, Default)]
pub struct LvRemoved {
    /// The LV's dm device was active and was removed.
    pub deactivated: bool,
    /// Non-fatal problems (a backup file not written).
    pub warnings: Vec<String>,
}

/// `lvremove VG/LV` of a linear or striped LV: refused while its dm device is open
/// (lvm2's `Logical volume VG/LV in use.`); its device removed, then one commit without
/// it. If the commit fails the LV is activated again.
///
/// # Errors
/// [`WriteError::LvNotFound`], [`WriteError::LvOpen`], [`WriteError::Unsupported`] (a
/// snapshot, an origin, a thin or RAID LV), the errors of [`VgSession::open`] and of the
/// commit, [`WriteError::Dm`].
pub fn lvremove(vg_name: &str, lv_name: &str, opts: &WriteOptions) -> Result<LvRemoved> {
    let dm =
        DeviceMapper::new_if_present().map_err(WriteError::dm("open", "/dev/mapper/control"))?;
    let mut s = VgSession::open(vg_name, opts)?;
    // Borrowed from the session: one copy of the VG (the new one) is made.
    let old = s.vg();
    let lv = old.lv(lv_name).ok_or_else(|| WriteError::LvNotFound {
        vg: vg_name.into(),
        lv: lv_name.into(),
    })?;
    if snapshot::remove::is_snapshot_related(old, lv) {
        // Snapshots, their internal LVs and origins: lvm::write::snapshot (no force:
        // an origin with snapshots is refused).
        return snapshot::remove::remove_in_session(dm.as_ref(), &mut s, lv_name, false);
    }
    removable(old, lv)?;
    let mut out = LvRemoved::default();
    let active = match &dm {
        Some(dm) => lv_device(dm, old, lv)?,
        None => None,
    };
    if let Some(info) = &active
        && info.open_count > 0
    {
        return Err(WriteError::LvOpen {
            vg: vg_name.into(),
            lv: lv_name.into(),
            open_count: info.open_count,
            holders: has_holders(info.dev),
        });
    }
    let mut new = old.clone();
    new.lvs.retain(|l| l.name != lv_name);
    let precommitted = match (&dm, active) {
        (Some(dm), Some(info)) => {
            // The device goes first (as in lvm2), removed while the new metadata is
            // printed and checked.
            let deactivated = &mut out.deactivated;
            s.precommit_with(new, || {
                remove_retrying(dm, &info.name)
                    .map_err(WriteError::dm("remove", info.name.as_str()))?;
                *deactivated = true;
                Ok(())
            })
        }
        _ => s.precommit(new),
    };
    let done = precommitted.and_then(|()| s.commit());
    if let Err(e) = done {
        if let (true, Some(dm)) = (out.deactivated, &dm) {
            let _ = activate_lv(&s, dm, lv_name);
        }
        return Err(e);
    }
    out.warnings.extend(s.warnings().iter().cloned());
    Ok(out)
}
