//! Bringing the kernel's devices of a VG to a [`Plan`]: the crash-safety half of
//! activation.
//!
//! A kill or power cut in the middle of a snapshot create, remove or merge leaves the dm
//! devices of the VG ahead of or behind the committed metadata: a device suspended, a new
//! table loaded but not resumed, a `-cow` layer the metadata does not know, an origin
//! still `snapshot-origin` after its last snapshot went. [`reconcile`] makes the kernel
//! match the plan of the committed metadata, whatever the step that was interrupted:
//!
//! 1. every inactive table of a VG device is cleared (a half-done load is never wanted)
//!    and every suspended VG device resumed, lower layers first;
//! 2. planned devices that are missing are created and loaded; planned devices whose live
//!    table (or read-only flag) differs from the plan are loaded, all suspended together
//!    (upper layers first, the filesystem frozen), then resumed: new snapshot devices and
//!    the merging origin before anything else, a `snapshot-origin` last, as lvm2 orders
//!    them (a snapshot must be live before its origin writes through it; a merge hands
//!    the exceptions over from the suspended snapshot device);
//! 3. devices of the VG (uuid prefix `LVM-<vgid>`) the plan does not have are removed,
//!    upper layers first, retrying while udev or a scanner holds them.
//!
//! Running it again on a reconciled VG changes nothing ([`Reconciled::is_noop`]).
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::lvm::{plan, reconcile, scan};
//! let pvs = [std::fs::File::open("/dev/loop0")?];
//! let report = scan::scan(&pvs);
//! let vg = &report.vgs[0].vg;
//! let dev = |_p: &devmapper::lvm::model::PhysicalVolume| Some(devmapper::targets::DevRef::num(7, 0));
//! let p = plan::plan_vg(vg, &dev, &plan::PlanOptions::default())?;
//! let dm = DeviceMapper::new()?;
//! let done = reconcile::reconcile(&dm, &vg.id, &p, reconcile::Scope::Vg)?;
//! println!("{done}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::activate::{ActivateError, OpenDevice, Result, dm_err, vg_devices};
use super::id::LvmId;
use super::plan::{Plan, PlannedDevice, mapper_name};
use crate::kernel::{DeviceMapper, SuspendOptions, Which};
use crate::table::{Table, TableLine};
use crate::targets::Target;
use crate::{DevNum, DmName};

/// Which devices of the VG [`reconcile`] may remove when the plan lacks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every device of the VG: the plan is the whole VG's.
    Vg,
    /// Only devices of these LVs (by LV id, any layer): the plan covers them.
    Lvs(&'a [LvmId]),
    /// Every device of the VG but those of these LVs (LVs the plan left out).
    Except(&'a [LvmId]),
}

impl Scope<'_> {
    /// A dm uuid `LVM-<vgid><lvid>[-layer]` falls in the scope.
    fn covers(&self, uuid: &str) -> bool {
        match self {
            Scope::Vg => true,
            Scope::Lvs(ids) => uuid
                .get(4 + 32..4 + 64)
                .is_some_and(|lv| ids.iter().any(|i| i.as_str() == lv)),
            Scope::Except(ids) => !uuid
                .get(4 + 32..4 + 64)
                .is_some_and(|lv| ids.iter().any(|i| i.as_str() == lv)),
        }
    }
}

/// What [`reconcile`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Devices whose inactive (loaded, never resumed) table was cleared.
    pub cleared: Vec<DmName>,
    /// Devices that were suspended and were resumed.
    pub resumed: Vec<DmName>,
    /// Planned devices that were missing and were created.
    pub created: Vec<DmName>,
    /// The device numbers of [`created`](Self::created), in the same order.
    pub created_devs: Vec<DevNum>,
    /// Planned devices whose table was replaced by the planned one.
    pub reloaded: Vec<DmName>,
    /// Devices of the VG the plan does not have, removed.
    pub removed: Vec<DmName>,
}

impl Reconciled {
    /// Nothing had to change.
    pub fn is_noop(&self) -> bool {
        self.cleared.is_empty()
            && self.resumed.is_empty()
            && self.created.is_empty()
            && self.reloaded.is_empty()
            && self.removed.is_empty()
    }
}

impl fmt::Display for Reconciled {
    /// One line per change: `created vg-lv`, `removed vg-snap-cow`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: [(&str, &Vec<DmName>); 5] = [
            ("cleared the inactive table of", &self.cleared),
            ("resumed", &self.resumed),
            ("created", &self.created),
            ("reloaded", &self.reloaded),
            ("removed", &self.removed),
        ];
        let mut first = true;
        for (what, names) in groups {
            for n in names {
                if !first {
                    writeln!(f)?;
                }
                first = false;
                write!(f, "{what} {n}")?;
            }
        }
        Ok(())
    }
}

/// Device-mapper changes made by the running [`reconcile`] (fault injection counts them;
/// with that feature the changes are made on one thread, in a fixed order).
static CHANGES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// One device-mapper change made: fault-injection step `lvm-dm:<n>` (crash-safety tests
/// only; nothing without the test-only feature).
fn tick() {
    let n = CHANGES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    crate::snapshot::fault::step("lvm-dm", n);
}

fn is_merge(d: &PlannedDevice) -> bool {
    d.table
        .lines()
        .iter()
        .any(|l| matches!(l.target, Target::SnapshotMerge(_)))
}

fn is_origin(d: &PlannedDevice) -> bool {
    d.table
        .lines()
        .iter()
        .any(|l| matches!(l.target, Target::SnapshotOrigin(_)))
}

/// Bring the devices of VG `vg_id` to `plan` (see the module documentation). Devices in
/// `scope` that the plan does not list are removed ([`Scope::Vg`]: `plan` is the plan of
/// every LV that is to stay active).
///
/// # Errors
/// [`ActivateError::NameTaken`] (a planned name held by a device of another uuid, nothing
/// changed), [`ActivateError::Busy`] (a device to remove is open: everything else is
/// done), [`ActivateError::Dm`].
pub fn reconcile(
    dm: &DeviceMapper,
    vg_id: &LvmId,
    plan: &Plan,
    scope: Scope<'_>,
) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    // One list for the whole run: which planned names exist, and the VG's devices.
    let listed: HashMap<String, crate::DeviceEntry> = dm
        .list()
        .map_err(dm_err("list", "devices"))?
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect();
    // Refuse before changing anything: a planned name taken by a foreign device.
    for d in &plan.devices {
        if let Some(e) = listed.get(d.name.as_str())
            && e.uuid.as_deref() != Some(d.uuid.as_str())
        {
            return Err(ActivateError::NameTaken {
                device: d.name.clone(),
                found: e.uuid.clone(),
                expected: d.uuid.clone(),
            });
        }
    }
    CHANGES.store(0, std::sync::atomic::Ordering::SeqCst);
    let prefix = super::activate::uuid_prefix(vg_id);
    let of_vg: Vec<&crate::DeviceEntry> = listed
        .values()
        .filter(|e| e.uuid.as_deref().is_some_and(|u| u.starts_with(&prefix)))
        .collect();
    settle(dm, &of_vg, &mut out)?;
    apply_plan(dm, plan, &listed, &mut out)?;
    remove_extra(dm, vg_id, plan, scope, &mut out)?;
    Ok(out)
}

/// Step 1: clear inactive tables, resume suspended devices lower layers first.
fn settle(dm: &DeviceMapper, devs: &[&crate::DeviceEntry], out: &mut Reconciled) -> Result<()> {
    let mut suspended: Vec<(DmName, DevNum)> = Vec::new();
    for e in devs {
        let info = dm
            .info(e.dev)
            .map_err(dm_err("info", &e.name.to_string()))?;
        if info.has_inactive_table() {
            dm.clear_table(e.dev)
                .map_err(dm_err("clear", info.name.as_str()))?;
            tick();
            out.cleared.push(info.name.clone());
        }
        if info.suspended() {
            suspended.push((info.name, e.dev));
        }
    }
    let mut left: HashSet<DevNum> = suspended.iter().map(|(_, d)| *d).collect();
    while !left.is_empty() {
        // A device whose VG dependencies are all running, else any (a cycle cannot be).
        let pick = suspended
            .iter()
            .filter(|(_, d)| left.contains(d))
            .find(|(_, d)| {
                dm.deps(*d, Which::Live)
                    .map(|deps| deps.iter().all(|x| !left.contains(x)))
                    .unwrap_or(true)
            })
            .or_else(|| suspended.iter().find(|(_, d)| left.contains(d)));
        let Some((name, dev)) = pick.cloned() else {
            break;
        };
        dm.resume(dev, SuspendOptions::default())
            .map_err(dm_err("resume", name.as_str()))?;
        tick();
        left.remove(&dev);
        out.resumed.push(name);
    }
    Ok(())
}

/// Whether `d` is an LV's own `snapshot` device: made live inside the suspend window of
/// its origin, not at once.
fn is_top_snapshot(d: &PlannedDevice) -> bool {
    d.layer.is_none()
        && d.table
            .lines()
            .iter()
            .any(|l| matches!(l.target, Target::Snapshot(_)))
}

/// The planned devices that can be made on their own, in parallel: those of connected
/// groups (devices joined by the references of their tables) that are wholly new, hold no
/// snapshot device and refer only to planned devices before them. For each such device,
/// the planned devices its table refers to; `None` for the others.
pub(crate) fn independent(
    plan: &Plan,
    listed: &HashMap<String, crate::DeviceEntry>,
) -> Vec<Option<Vec<usize>>> {
    let n = plan.devices.len();
    let index: HashMap<&str, usize> = plan
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while let Some(&p) = parent.get(i) {
            if p == i {
                break;
            }
            let gp = parent.get(p).copied().unwrap_or(p);
            if let Some(x) = parent.get_mut(i) {
                *x = gp;
            }
            i = gp;
        }
        i
    }
    let mut refs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut alone = vec![true; n];
    for (i, d) in plan.devices.iter().enumerate() {
        if listed.contains_key(d.name.as_str()) || is_top_snapshot(d) {
            alone[i] = false;
        }
        for r in d.table.lines().iter().flat_map(|l| l.target.devices()) {
            let Some(name) = mapper_name(r) else { continue };
            match index.get(name.as_str()) {
                Some(&j) if j < i => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if let Some(x) = parent.get_mut(a) {
                        *x = b;
                    }
                    if let Some(v) = refs.get_mut(i) {
                        v.push(j);
                    }
                }
                _ => alone[i] = false,
            }
        }
    }
    let mut bad: HashSet<usize> = HashSet::new();
    for (i, ok) in alone.iter().enumerate() {
        if !ok {
            bad.insert(root(&mut parent, i));
        }
    }
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| (!bad.contains(&root(&mut parent, i))).then_some(r))
        .collect()
}

/// Step 2: create what is missing, reload what differs (one suspend window).
///
/// Groups of new devices that touch nothing else ([`independent`]: the common case of a
/// VG activated from nothing) are created, loaded and resumed by the ordered runner (on
/// `ACTIVATE_THREADS` threads: eight by default), each device after the devices its table
/// refers to; the rest, one at a time in plan order.
fn apply_plan(
    dm: &DeviceMapper,
    plan: &Plan,
    listed: &HashMap<String, crate::DeviceEntry>,
    out: &mut Reconciled,
) -> Result<()> {
    let alone = independent(plan, listed);
    let jobs: Vec<usize> = (0..plan.devices.len())
        .filter(|&i| alone.get(i).is_some_and(Option::is_some))
        .collect();
    let job_of: HashMap<usize, usize> = jobs.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    // A device can be made once the devices its table refers to are running.
    let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (k, &i) in jobs.iter().enumerate() {
        for j in alone.get(i).and_then(Option::as_ref).into_iter().flatten() {
            if let Some(u) = job_of.get(j).and_then(|&kj| unblocks.get_mut(kj)) {
                u.push(k);
            }
        }
    }
    let index: HashMap<&DmName, usize> = plan
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (&d.name, i))
        .collect();
    let numbers: Vec<std::sync::OnceLock<DevNum>> = (0..plan.devices.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    let made = super::activate::run_ordered(
        &unblocks,
        super::activate::dm_threads(jobs.len(), super::activate::ACTIVATE_THREADS),
        |k| -> Result<()> {
            let Some((&i, d)) = jobs.get(k).and_then(|i| Some((i, plan.devices.get(*i)?))) else {
                return Ok(());
            };
            let table = d.resolved_table(|name, r| {
                index
                    .get(name)
                    .and_then(|&j| numbers.get(j)?.get().copied())
                    .ok_or_else(|| ActivateError::UnknownReference {
                        device: d.name.clone(),
                        reference: r.clone(),
                    })
            })?;
            let opts = d.create_options();
            let info = dm
                .create(&d.name, opts)
                .map_err(dm_err("create", d.name.as_str()))?;
            tick();
            if let Some(slot) = numbers.get(i) {
                let _ = slot.set(info.dev);
            }
            let load = d.load_options();
            dm.load(&d.name, &table, load)
                .map_err(dm_err("load", d.name.as_str()))?;
            tick();
            dm.resume(&d.name, SuspendOptions::default())
                .map_err(dm_err("resume", d.name.as_str()))?;
            tick();
            Ok(())
        },
    );
    // What was made, in plan order, whether or not a job failed.
    let mut created: Vec<(usize, DmName, DevNum)> = numbers
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((i, plan.devices.get(i)?.name.clone(), *n.get()?)))
        .collect();
    let r = made.and_then(|_| apply_rest(dm, plan, &alone, listed, &mut created, out));
    created.sort_by_key(|c| c.0);
    for (_, name, dev) in created {
        out.created.push(name);
        out.created_devs.push(dev);
    }
    r
}

/// The planned devices [`independent`] left out, one at a time in plan order.
fn apply_rest(
    dm: &DeviceMapper,
    plan: &Plan,
    alone: &[Option<Vec<usize>>],
    listed: &HashMap<String, crate::DeviceEntry>,
    created: &mut Vec<(usize, DmName, DevNum)>,
    out: &mut Reconciled,
) -> Result<()> {
    let mut known: HashMap<DmName, DevNum> = HashMap::new();
    // Devices loaded but not resumed yet (new snapshot devices and reloads), plan order.
    let mut pending: Vec<(usize, bool)> = Vec::new();
    // Planned devices that stay suspended until the window closes.
    let mut reload: HashSet<String> = HashSet::new();
    for (i, d) in plan.devices.iter().enumerate() {
        if alone.get(i).is_some_and(Option::is_some) {
            continue;
        }
        // One ioctl for an existing device: its info and live table together.
        let existing = if listed.contains_key(d.name.as_str()) {
            dm.table_with_info(&d.name, Which::Live).ok()
        } else {
            None
        };
        let table = d.resolved_table(|name, r| {
            known
                .get(name)
                .copied()
                .ok_or_else(|| ActivateError::UnknownReference {
                    device: d.name.clone(),
                    reference: r.clone(),
                })
        })?;
        let load = d.load_options();
        match existing {
            None => {
                let opts = d.create_options();
                let info = dm
                    .create(&d.name, opts)
                    .map_err(dm_err("create", d.name.as_str()))?;
                tick();
                known.insert(d.name.clone(), info.dev);
                created.push((i, d.name.clone(), info.dev));
                dm.load(&d.name, &table, load)
                    .map_err(dm_err("load", d.name.as_str()))?;
                tick();
                // A new snapshot goes live inside the suspend window, before its origin
                // is resumed (on a `snapshot-origin` table it may be switched to).
                if is_top_snapshot(d) {
                    pending.push((i, false));
                } else {
                    dm.resume(&d.name, SuspendOptions::default())
                        .map_err(dm_err("resume", d.name.as_str()))?;
                    tick();
                }
            }
            Some((info, raw)) => {
                known.insert(d.name.clone(), info.dev);
                let live = raw
                    .iter()
                    .map(|r| {
                        TableLine::from_raw_lenient(r.start, r.length, &r.target_type, &r.params)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .ok()
                    .map(Table::from_lines);
                let same = info.has_live_table()
                    && live.as_ref() == Some(&table)
                    && info.read_only() == d.read_only;
                if !same {
                    dm.load(info.dev, &table, load)
                        .map_err(dm_err("load", d.name.as_str()))?;
                    tick();
                    reload.insert(d.name.to_string());
                    pending.push((i, true));
                }
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    // Suspend the reloaded devices, upper layers first (the filesystem is frozen).
    for &(i, existed) in pending.iter().rev() {
        let Some(d) = plan.devices.get(i) else {
            continue;
        };
        if existed {
            dm.suspend(&d.name, SuspendOptions::default())
                .map_err(dm_err("suspend", d.name.as_str()))?;
            tick();
        }
    }
    // Resume: a merging origin first (it takes the exceptions over from the suspended
    // snapshot device), `snapshot-origin` devices last (their snapshots must be live
    // first), everything else in plan order.
    let mut order: Vec<usize> = pending.iter().map(|&(i, _)| i).collect();
    order.sort_by_key(|&i| {
        let rank = match plan.devices.get(i) {
            Some(d) if is_merge(d) => 0,
            Some(d) if is_origin(d) => 2,
            _ => 1,
        };
        (rank, i)
    });
    for i in order {
        let Some(d) = plan.devices.get(i) else {
            continue;
        };
        dm.resume(&d.name, SuspendOptions::default())
            .map_err(dm_err("resume", d.name.as_str()))?;
        tick();
        if reload.contains(d.name.as_str()) {
            out.reloaded.push(d.name.clone());
        }
    }
    Ok(())
}

/// Step 3: remove the devices of the VG the plan lacks, devices nothing holds first.
fn remove_extra(
    dm: &DeviceMapper,
    vg_id: &LvmId,
    plan: &Plan,
    scope: Scope<'_>,
    out: &mut Reconciled,
) -> Result<()> {
    let planned: HashSet<&str> = plan.devices.iter().map(|d| d.uuid.as_str()).collect();
    let mut extra: Vec<(DmName, DevNum)> = vg_devices(dm, vg_id)?
        .into_iter()
        .filter(|e| {
            e.uuid
                .as_deref()
                .is_some_and(|u| !planned.contains(u) && scope.covers(u))
        })
        .filter_map(|e| DmName::new(e.name.as_ref()).ok().map(|n| (n, e.dev)))
        .collect();
    while !extra.is_empty() {
        // Held by another extra device: later.
        let held: HashSet<DevNum> = extra
            .iter()
            .flat_map(|(_, d)| dm.deps(*d, Which::Live).unwrap_or_default())
            .collect();
        let Some(pos) = extra.iter().position(|(_, d)| !held.contains(d)) else {
            break;
        };
        let (name, dev) = extra.remove(pos);
        let info = dm.info(dev).map_err(dm_err("info", name.as_str()))?;
        if info.open_count > 0 && !has_only_transient_holders(&info) {
            return Err(ActivateError::Busy {
                vg: vg_id.to_string(),
                devices: vec![OpenDevice {
                    name,
                    open_count: info.open_count,
                }],
            });
        }
        crate::kernel::undo::remove_retrying(dm, &name).map_err(dm_err("remove", name.as_str()))?;
        tick();
        out.removed.push(name);
    }
    if let Some((name, dev)) = extra.first() {
        let open_count = dm.info(*dev).map_or(0, |i| i.open_count);
        return Err(ActivateError::Busy {
            vg: vg_id.to_string(),
            devices: vec![OpenDevice {
                name: name.clone(),
                open_count,
            }],
        });
    }
    Ok(())
}

/// An open device with no holder in sysfs (udev, blkid or a scanner for a moment) is
/// removed by retrying; one with holders (a dm device, md, a mount) is in use.
fn has_only_transient_holders(info: &crate::DeviceInfo) -> bool {
    let holders = std::fs::read_dir(format!("/sys/dev/block/{}/holders", info.dev))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    !holders && !is_mounted(info.dev)
}

fn is_mounted(dev: DevNum) -> bool {
    let want = dev.to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// `vgchange -ay` that also repairs: lvm2's refusals ([`super::activate::check_vg`]), the
/// plan of every LV it would activate with lvm2's merge postponing
/// ([`super::activate::postpone_merges`]), and [`reconcile`] to it; devices of LVs the plan
/// leaves out (skipped) are not touched, devices of LVs the metadata no longer has are
/// removed.
///
/// # Errors
/// As [`super::activate::check_vg`], [`super::plan::plan_vg`] and [`reconcile`].
pub fn activate_vg(
    dm: &DeviceMapper,
    s: &super::scan::ScannedVg,
    pv_device: &super::plan::PvDevice<'_>,
    local_system_id: Option<&str>,
    opts: &super::plan::PlanOptions,
) -> Result<(Plan, Reconciled)> {
    super::activate::check_vg(s, local_system_id)?;
    let vg = super::activate::postpone_merges(dm, &s.vg);
    let plan = super::plan::plan_vg(&vg, pv_device, opts)?;
    let skipped: Vec<LvmId> = plan
        .skipped
        .iter()
        .filter_map(|k| vg.lv(&k.lv).map(|l| l.id))
        .collect();
    let done = reconcile(dm, &vg.id, &plan, Scope::Except(&skipped))?;
    Ok((plan, done))
}
