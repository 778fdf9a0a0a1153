//! The writing operations, as lvm2's tools do them: [`pvcreate`], [`vgcreate`],
//! [`lvcreate`], [`lvremove`], [`vgremove`], [`pvremove`]. Each takes lvm2's locks, reads
//! the devices after locking, refuses what lvm2 refuses (with lvm2's messages), and is
//! all-or-nothing: a failure before the commit reverts the precommitted copy and undoes
//! the device-mapper changes made so far.
//!
//! ```no_run
//! use devmapper::lvm::write::ops::{self, LvCreate};
//! use devmapper::lvm::write::session::WriteOptions;
//! let opts = WriteOptions::new("example");
//! let pvs = [std::path::PathBuf::from("/dev/loop0")];
//! ops::pvcreate(&pvs, false, &opts)?;
//! ops::vgcreate("vg0", &pvs, None, false, &opts)?;
//! let made = ops::lvcreate("vg0", "lv0", &LvCreate::size("12M")?, &opts)?;
//! println!("{} extents", made.extents);
//! ops::lvremove("vg0", "lv0", &opts)?;
//! ops::vgremove("vg0", &opts)?;
//! ops::pvremove(&pvs, false, &opts)?;
//! # Ok::<(), devmapper::lvm::write::error::WriteError>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::alloc::{AllocRequest, allocate};
use super::error::{PvOp, Result, WriteError};
use super::lock::{LockMode, lock_global, lock_vg};
use super::pv::{PvLayout, remove_metadata, set_in_vg, wipe_pv, write_pv};
use super::session::{ScannedDevices, VgSession, WriteOptions, open_rw, scan_devices};
use crate::io::{Input, ReadAt, WriteAt};
use crate::kernel::undo::remove_retrying;
use crate::lvm::activate;
use crate::lvm::id::LvmId;
use crate::lvm::index::VgIndex;
use crate::lvm::label::{DiskLocn, read_label};
use crate::lvm::lvs::display_size_long;
use crate::lvm::model::{
    AllocPolicy, Area, LogicalVolume, PhysicalVolume, SegmentKind, VolumeGroup,
};
use crate::lvm::names::{check_lv_name, check_vg_name};
use crate::lvm::plan::{PlanOptions, plan_lv};
use crate::lvm::scan::{DeviceStatus, MdaOutcome};
use crate::probe::{self, Found};
use crate::targets::DevRef;
use crate::{DevId, DeviceMapper, DmUuid};

/// lvm2's default extent size: 4 MiB, in sectors.
pub const DEFAULT_EXTENT_SIZE: u64 = 8192;
/// lvm2's default stripe size: 64 KiB, in sectors.
pub const DEFAULT_STRIPE_SIZE: u64 = 128;
/// What lvcreate zeroes at the start of a new LV: 4 KiB (lvm2's `wipe_lv`), in bytes.
pub const ZERO_BYTES: u64 = 4096;

/// A size as lvm2's `-L` takes it: a number (fractions allowed) with an optional unit
/// `b`, `s` (sectors), `k`, `m`, `g`, `t`, `p`, `e` (binary, either case); no unit means
/// `default_unit_sectors` (MiB for `-L`). Returns sectors.
///
/// ```
/// use devmapper::lvm::write::ops::parse_size;
/// assert_eq!(parse_size("12M", 2048)?, 24576);
/// assert_eq!(parse_size("12", 2048)?, 24576);
/// assert_eq!(parse_size("1.5g", 2048)?, 3 << 20);
/// assert_eq!(parse_size("4096b", 2048)?, 8);
/// assert!(parse_size("1000b", 2048).is_err()); // not a multiple of 512
/// assert!(parse_size("12Q", 2048).is_err());
/// # Ok::<(), devmapper::lvm::write::error::WriteError>(())
/// ```
pub fn parse_size(text: &str, default_unit_sectors: u64) -> Result<u64> {
    let bad = |reason: &'static str| WriteError::BadSize {
        text: text.to_string(),
        reason,
    };
    let t = text.trim();
    if t.starts_with('-') {
        return Err(bad("Size may not be negative."));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    if num.is_empty() || num == "." {
        return Err(bad("Size requires number argument."));
    }
    let v: f64 = num.parse().map_err(|_| bad("Can't parse size argument."))?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let sectors = match unit {
        "" => v * default_unit_sectors as f64,
        "s" => v,
        "b" => {
            if v.fract() != 0.0 || !(v as u64).is_multiple_of(512) {
                return Err(bad("Size is not a multiple of 512."));
            }
            v / 512.0
        }
        u => {
            let i = ["k", "m", "g", "t", "p", "e"]
                .iter()
                .position(|x| *x == u)
                .ok_or_else(|| bad("Can't parse size argument."))?;
            v * 2.0 * 1024f64.powi(i as i32)
        }
    };
    if sectors >= (u64::MAX >> 9) as f64 {
        return Err(bad("Size is too big (>=16EiB)."));
    }
    Ok(sectors as u64)
}

/// The device holds nothing recognisable (an orphan PV of ours or lvm2's is fine: it is
/// what the operation turns into a PV again), unless `force`.
fn probe_refusal(f: &File, path: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let found = probe::identify(f).map_err(|source| WriteError::Probe {
        path: path.to_owned(),
        source,
    })?;
    let found: Vec<Found> = found
        .into_iter()
        .filter(|f| !matches!(f, Found::LvmPv { .. }))
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(WriteError::HoldsData {
            path: path.to_owned(),
            found,
        })
    }
}

/// Open a device read-write and exclusively (refused while mounted or held). A device
/// scanner holding it for a moment (`blkid`, lvm2's own exclusive opens) is waited for,
/// up to 2 s.
fn open_excl(path: &Path) -> Result<Input> {
    let mut tries = 0;
    loop {
        match Input::open_rw(path, &[]) {
            Ok(i) => return Ok(i),
            Err(crate::io::InputError::InUse { .. }) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(WriteError::Io {
                    path: path.to_owned(),
                    source: e.into(),
                });
            }
        }
    }
}

/// The VG named in a PV's metadata areas, if any.
fn vg_of_pv(dev: &impl ReadAt) -> Option<String> {
    let pv = crate::lvm::scan::scan_pv(dev, 0).ok()?;
    pv.mdas.iter().find_map(|m| match &m.outcome {
        MdaOutcome::Text { vg_name, .. } => Some(vg_name.clone()),
        _ => None,
    })
}

/// A PV written by [`pvcreate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvCreated {
    /// The device.
    pub path: PathBuf,
    /// The new PV id.
    pub id: LvmId,
    /// Where its data area starts, in sectors.
    pub pe_start: u64,
}

fn pvcreate_one(path: &Path, force: bool) -> Result<(PvCreated, Input)> {
    let dev = open_excl(path)?;
    if let Some(vg) = vg_of_pv(&dev) {
        return Err(WriteError::PvInVg {
            path: path.to_owned(),
            vg,
            op: PvOp::Create,
        });
    }
    probe_refusal(dev.file(), path, force)?;
    let size = dev.len();
    let layout = PvLayout::lvm2_default(size)?;
    let id = LvmId::generate().map_err(WriteError::io("/dev/urandom"))?;
    write_pv(&dev, &id, &layout, false)?;
    Ok((
        PvCreated {
            path: path.to_owned(),
            id,
            pe_start: layout.pe_start,
        },
        dev,
    ))
}

/// `pvcreate DEVICE...`: a PV label, `pv_header` and one metadata area in lvm2's default
/// layout on each device, under the global lock. A device that holds something
/// recognisable ([`crate::probe::identify`]) is refused unless `force`; a PV of a VG is
/// always refused. Every device is checked before any is written.
///
/// # Errors
/// [`WriteError::HoldsData`], [`WriteError::PvInVg`], [`WriteError::Io`] (a device in
/// use: opened exclusively), [`WriteError::Pv`], [`WriteError::Lock`].
pub fn pvcreate(paths: &[PathBuf], force: bool, opts: &WriteOptions) -> Result<Vec<PvCreated>> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    check_distinct(paths)?;
    // Every device first: nothing is written when one of them is refused.
    for p in paths {
        // (`Input`, not a bare `File`: a block device's size comes from the kernel, and
        // the scan needs it.)
        let ro = Input::open(p).map_err(|e| WriteError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        if let Some(vg) = vg_of_pv(&ro) {
            return Err(WriteError::PvInVg {
                path: p.clone(),
                vg,
                op: PvOp::Create,
            });
        }
        let dev = open_excl(p)?;
        probe_refusal(dev.file(), p, force)?;
        PvLayout::lvm2_default(dev.len())?;
    }
    paths
        .iter()
        .map(|p| pvcreate_one(p, force).map(|(c, _)| c))
        .collect()
}

fn check_distinct(paths: &[PathBuf]) -> Result<()> {
    let mut seen = Vec::new();
    for p in paths {
        let id = crate::io::FileId::of_path(p).map_err(WriteError::io(p))?;
        if seen.contains(&id) {
            return Err(WriteError::DuplicateDevice { path: p.clone() });
        }
        seen.push(id);
    }
    Ok(())
}

/// The VG created by [`vgcreate`].
#[derive(Clone, Debug)]
pub struct VgCreated {
    /// The VG as committed.
    pub vg: VolumeGroup,
    /// Devices that were not PVs yet and were made PVs first (as lvm2's vgcreate does).
    pub pvcreated: Vec<PathBuf>,
}

/// `vgcreate VG DEVICE...`: a new VG over orphan PVs (devices that are no PV yet are made
/// PVs first, refused like [`pvcreate`] when they hold something recognisable, unless
/// `force`), extent size `extent_size` sectors (default 4 MiB), first commit on every PV,
/// then each PV's label marked in use. Under the global lock and the new VG's lock.
///
/// # Errors
/// [`WriteError::Name`], [`WriteError::VgExists`], [`WriteError::PvInVg`],
/// [`WriteError::BadOption`] (extent size), the errors of [`pvcreate`] and of the commit.
pub fn vgcreate(
    name: &str,
    paths: &[PathBuf],
    extent_size: Option<u64>,
    force: bool,
    opts: &WriteOptions,
) -> Result<VgCreated> {
    check_vg_name(name)?;
    let extent_size = extent_size.unwrap_or(DEFAULT_EXTENT_SIZE);
    if extent_size < 8 || !extent_size.is_power_of_two() {
        return Err(WriteError::BadOption(format!(
            "Physical extent size {} must be a power of 2 of at least 4.00 KiB.",
            display_size_long(extent_size)
        )));
    }
    if paths.is_empty() {
        return Err(WriteError::BadOption(
            "Please enter physical volume name(s)".into(),
        ));
    }
    check_distinct(paths)?;
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    let vg_lock = lock_vg(&opts.lock_dir, name, LockMode::Exclusive, true)?;
    // Scan everything (names are unique across what lvm2 sees) plus the PVs given.
    let mut scan_opts = opts.clone();
    let mut all = super::session::device_paths(opts)?;
    for p in paths {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    scan_opts.devices = Some(all);
    let scanned = scan_devices(&scan_opts)?;
    if scanned.report.vgs.iter().any(|v| v.vg.name == name)
        || scanned.report.failed_vgs.iter().any(|f| f.name == name)
    {
        return Err(WriteError::VgExists {
            vg: name.to_string(),
        });
    }
    // Each device: an orphan PV, or no PV at all (made one, after the same checks as
    // pvcreate). Checked for all before anything is written.
    let devices = scanned.report.devices();
    let mut to_create = Vec::new();
    for p in paths {
        let i = index_of(&scanned, p)?;
        match devices.get(i).map(|d| &d.status) {
            Some(DeviceStatus::Orphan) => {}
            Some(DeviceStatus::NoLabel) => {
                let dev = open_excl(p)?;
                probe_refusal(dev.file(), p, force)?;
                PvLayout::lvm2_default(dev.len())?;
                to_create.push(p.clone());
            }
            Some(DeviceStatus::InVg { vg }) | Some(DeviceStatus::NotListed { vg }) => {
                return Err(WriteError::PvInVg {
                    path: p.clone(),
                    vg: scanned
                        .report
                        .vgs
                        .get(*vg)
                        .map(|v| v.vg.name.clone())
                        .unwrap_or_default(),
                    op: PvOp::AddToVg,
                });
            }
            Some(DeviceStatus::VgNotImported { vg }) => {
                return Err(WriteError::PvInVg {
                    path: p.clone(),
                    vg: vg.name.clone(),
                    op: PvOp::AddToVg,
                });
            }
            _ => return Err(WriteError::NotAPv { path: p.clone() }),
        }
    }
    for p in &to_create {
        pvcreate_one(p, true)?;
    }
    let id = LvmId::generate().map_err(WriteError::io("/dev/urandom"))?;
    let mut vg = VolumeGroup::new(name, id, extent_size);
    let mut pvs = Vec::new();
    for (n, p) in paths.iter().enumerate() {
        let f = open_rw(p)?;
        let label = read_label(&f)?;
        let size_bytes = ReadAt::size(&f).map_err(WriteError::io(p))?;
        let dev_size = if label.device_size > 0 {
            label.device_size / 512
        } else {
            size_bytes / 512
        };
        let pe_start = label
            .data_areas
            .first()
            .map_or(2048, |d: &DiskLocn| d.offset / 512);
        let pe_count = dev_size.saturating_sub(pe_start) / extent_size;
        if pe_count == 0 {
            return Err(WriteError::BadOption(format!(
                "{}: too small for one extent of {}",
                p.display(),
                display_size_long(extent_size)
            )));
        }
        vg.pvs.push(PhysicalVolume {
            handle: format!("pv{n}"),
            id: label.pv_id,
            device_hint: Some(p.display().to_string()),
            status: ["ALLOCATABLE".to_string()].into_iter().collect(),
            flags: BTreeSet::new(),
            tags: Vec::new(),
            dev_size: Some(dev_size),
            pe_start,
            pe_count,
            device_id_type: None,
            device_id: None,
            ba_start: 0,
            ba_size: 0,
        });
        pvs.push((p.clone(), f, label.metadata_areas.clone()));
    }
    let mut s = VgSession::new_vg(vg.clone(), pvs, opts, vg_lock);
    s.precommit(vg)?;
    s.commit()?;
    for f in s.pv_files() {
        set_in_vg(f, true)?;
    }
    Ok(VgCreated {
        vg: s.vg().clone(),
        pvcreated: to_create,
    })
}

fn index_of(scanned: &ScannedDevices, p: &Path) -> Result<usize> {
    let want = crate::io::FileId::of_path(p).map_err(WriteError::io(p))?;
    scanned
        .paths
        .iter()
        .position(|q| crate::io::FileId::of_path(q).is_ok_and(|id| id == want))
        .ok_or_else(|| WriteError::NotAPv { path: p.to_owned() })
}

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

/// Device-mapper, or `None` when this kernel has none (`/proc/misc` lists no
/// `device-mapper`): then no LV can be active.
fn dm_if_present() -> Result<Option<DeviceMapper>> {
    match DeviceMapper::new() {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
            if misc
                .lines()
                .any(|l| l.trim_end().ends_with(" device-mapper"))
            {
                Err(WriteError::dm("open", "/dev/mapper/control")(e))
            } else {
                Ok(None)
            }
        }
    }
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
    let dm = dm_if_present()?;
    let mut s = VgSession::open(vg_name, opts)?;
    // Borrowed from the session: one copy of the VG (the new one) is made.
    let old = s.vg();
    let lv = old.lv(lv_name).ok_or_else(|| WriteError::LvNotFound {
        vg: vg_name.into(),
        lv: lv_name.into(),
    })?;
    if super::snapshot::remove::is_snapshot_related(old, lv) {
        // Snapshots, their internal LVs and origins: lvm::write::snapshot (no force:
        // an origin with snapshots is refused).
        return super::snapshot::remove::remove_in_session(dm.as_ref(), &mut s, lv_name, false);
    }
    removable(old, lv)?;
    let mut out = LvRemoved::default();
    let active = match &dm {
        Some(dm) => lv_device(dm, old, lv)?,
        None => None,
    };
    if let (Some(dm), Some(info)) = (&dm, active) {
        if info.open_count > 0 {
            return Err(WriteError::LvOpen {
                vg: vg_name.into(),
                lv: lv_name.into(),
                open_count: info.open_count,
                holders: has_holders(info.dev),
            });
        }
        remove_retrying(dm, &info.name).map_err(WriteError::dm("remove", info.name.as_str()))?;
        out.deactivated = true;
    }
    let mut new = old.clone();
    new.lvs.retain(|l| l.name != lv_name);
    let done = s.precommit(new).and_then(|()| s.commit());
    if let Err(e) = done {
        if let (true, Some(dm)) = (out.deactivated, &dm) {
            let _ = activate_lv(&s, dm, lv_name);
        }
        return Err(e);
    }
    out.warnings.extend(s.warnings().iter().cloned());
    Ok(out)
}

/// `vgremove VG` of an empty VG: under the global lock and the VG lock, the metadata
/// areas of every PV emptied (both slots zeroed, as lvm2's `_vg_remove_raw`), then each
/// PV's label marked unused; the old metadata archived and the backup file removed where
/// lvm2's directories exist.
///
/// # Errors
/// [`WriteError::VgNotEmpty`], the errors of [`VgSession::open`], [`WriteError::Io`],
/// [`WriteError::Pv`].
pub fn vgremove(vg_name: &str, opts: &WriteOptions) -> Result<Vec<String>> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    let s = VgSession::open(vg_name, opts)?;
    let vg = s.vg();
    let count = vg.lvs.iter().filter(|l| vg.is_visible(l)).count();
    if !vg.lvs.is_empty() {
        return Err(WriteError::VgNotEmpty {
            vg: vg_name.into(),
            count: count.max(1),
        });
    }
    let mut warnings = Vec::new();
    if let Some(dirs) = &opts.backups
        && let Err(e) = super::backup::archive(dirs, vg, &opts.command)
    {
        warnings.push(format!(
            "WARNING: archiving volume group {vg_name} failed: {e}"
        ));
    }
    for f in s.pv_files() {
        remove_metadata(f)?;
    }
    for f in s.pv_files() {
        set_in_vg(f, false)?;
    }
    if let Some(dirs) = &opts.backups {
        let _ = std::fs::remove_file(dirs.backup.join(vg_name));
    }
    Ok(warnings)
}

/// `pvremove DEVICE...`: the PV labels wiped, under the global lock. A PV of a VG is
/// refused (lvm2's `PV ... is used by VG ... so please use vgreduce first.`) unless
/// `force`; a device that is no PV is refused. Every device is checked before any is
/// wiped.
///
/// # Errors
/// [`WriteError::NotAPv`], [`WriteError::PvInVg`], [`WriteError::Io`], [`WriteError::Pv`].
pub fn pvremove(paths: &[PathBuf], force: bool, opts: &WriteOptions) -> Result<()> {
    let _g = lock_global(&opts.lock_dir, LockMode::Exclusive, true)?;
    check_distinct(paths)?;
    let mut devs = Vec::new();
    for p in paths {
        // Read first (a PV under an active LV is held by it: no exclusive open), as lvm2
        // names the VG before it tries to open the device exclusively.
        // (`Input`, not a bare `File`: a block device's size comes from the kernel, and
        // the scan needs it.)
        let ro = Input::open(p).map_err(|e| WriteError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        if read_label(&ro).is_err() {
            return Err(WriteError::NotAPv { path: p.clone() });
        }
        if let Some(vg) = vg_of_pv(&ro)
            && !force
        {
            return Err(WriteError::PvInVg {
                path: p.clone(),
                vg,
                op: PvOp::Remove,
            });
        }
        devs.push(open_excl(p)?);
    }
    for d in &devs {
        wipe_pv(d)?;
    }
    Ok(())
}
