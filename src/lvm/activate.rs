//! Activating and deactivating LVs with the ioctl core: a [`Plan`] applied with
//! [`DeviceMapper`], the one part of [`crate::lvm`] that talks to the kernel.
//!
//! [`check_vg`] refuses what lvm2 refuses (the [`Blocker`]s of [`super::check`]: a PV
//! missing, an exported VG, a foreign system id, a lock manager); [`apply`] creates each
//! planned device (name, uuid, read-only), loads its typed table through the validated
//! [`DeviceMapper::load`] and resumes it, lower layers first, with the `/dev/mapper/<name>`
//! references replaced by the numbers of the devices just created, and removes everything
//! it created if any step fails (one dm transaction, shared with the snapshot workflows);
//! [`deactivate`] removes a VG's devices (found by their `LVM-<vgid>` uuid prefix) upper
//! layers first, refusing while any is in use.
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::lvm::{activate, plan, scan};
//! let pvs = [std::fs::File::open("/dev/loop0")?];
//! let report = scan::scan(&pvs);
//! let s = &report.vgs[0];
//! activate::check_vg(s, None)?;
//! let dev = |_p: &devmapper::lvm::model::PhysicalVolume| Some(devmapper::targets::DevRef::num(7, 0));
//! let p = plan::plan_vg(&s.vg, &dev, &plan::PlanOptions::default())?;
//! let dm = DeviceMapper::new()?;
//! let done = activate::apply(&dm, &p)?;
//! println!("{} devices active", done.len());
//! activate::deactivate(&dm, &s.vg.id)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use super::check::{Blocker, activation_blockers, scanned_blockers};
use super::id::LvmId;
use super::model::VolumeGroup;
use super::plan::{Plan, PlanOptions, PlannedDevice, PvDevice, plan_lv, plan_vg};
use super::scan::ScannedVg;
use crate::kernel::undo::{Undo, UndoAction};
use crate::kernel::{DeviceInfo, DeviceMapper, RemoveMode, SuspendOptions, Which};
use crate::table::Table;
use crate::targets::DevRef;
use crate::{DevNum, Error as DmError};
use crate::{DmName, DmUuid};

/// Why a VG or LV was not activated or deactivated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivateError {
    /// lvm2 would refuse the VG (see [`super::check`]).
    #[error(transparent)]
    Blocked(#[from] Blocker),
    /// The LV asked for carries the activation skip flag.
    #[error("LV {vg}/{lv} is flagged to skip activation (ACTIVATION_SKIP)")]
    SkipFlagged {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] super::Error),
    /// A table refers to a dm device that is neither planned before it nor present.
    #[error("device {device}: its table refers to {reference}, which is not active")]
    UnknownReference {
        /// The device being loaded.
        device: DmName,
        /// The reference (`/dev/mapper/<name>`).
        reference: DevRef,
    },
    /// A device with the planned name exists with another uuid.
    #[error("device {device} exists with uuid {found:?}, not {expected}")]
    NameTaken {
        /// dm name.
        device: DmName,
        /// The uuid it has.
        found: Option<String>,
        /// The uuid the plan gives.
        expected: DmUuid,
    },
    /// A device-mapper step failed (everything created before it was removed again).
    #[error("{step} {device}: {source}")]
    Dm {
        /// `create`, `load`, `resume`, `remove`, `list`, ...
        step: &'static str,
        /// dm name.
        device: String,
        /// The ioctl error.
        #[source]
        source: Box<DmError>,
    },
    /// Deactivation found devices of the VG in use by something outside the VG.
    #[error("VG {vg}: {} in use (close or unmount first): {}", if devices.len() == 1 { "device is" } else { "devices are" }, devices.iter().map(OpenDevice::to_string).collect::<Vec<_>>().join(", "))]
    Busy {
        /// VG name or id.
        vg: String,
        /// The open devices.
        devices: Vec<OpenDevice>,
    },
    /// No VG of that name is active.
    #[error("no active device belongs to VG {vg}")]
    NotActive {
        /// VG name.
        vg: String,
    },
    /// Active devices named after the VG belong to several VG ids.
    #[error("devices named after VG {vg} belong to {count} different VGs; give the PVs")]
    Ambiguous {
        /// VG name.
        vg: String,
        /// How many VG ids.
        count: usize,
    },
}

/// A device of the VG held open by something outside the VG ([`ActivateError::Busy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDevice {
    /// dm name.
    pub name: DmName,
    /// Its open count.
    pub open_count: i32,
}

impl fmt::Display for OpenDevice {
    /// `name (open N)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (open {})", self.name, self.open_count)
    }
}

/// Result alias of this module.
pub type Result<T, E = ActivateError> = std::result::Result<T, E>;

/// The [`ActivateError::Dm`] of a failed `step` on `device`.
pub(crate) fn dm_err(step: &'static str, device: &str) -> impl FnOnce(DmError) -> ActivateError {
    let device = device.to_string();
    move |source| ActivateError::Dm {
        step,
        device,
        source: Box::new(source),
    }
}

/// The reasons lvm2 would refuse to activate anything of this scanned VG, as the first
/// error: a PV not found, PVs flagged missing, exported, a foreign system id (compared
/// with `local_system_id`; `None` accepts only VGs without one), a lock type
/// ([`scanned_blockers`]).
pub fn check_vg(s: &ScannedVg, local_system_id: Option<&str>) -> Result<()> {
    first(scanned_blockers(s, local_system_id))
}

/// [`check_vg`] for the metadata alone (no completeness check, [`activation_blockers`]).
pub fn check_metadata(vg: &VolumeGroup, local_system_id: Option<&str>) -> Result<()> {
    first(activation_blockers(vg, local_system_id))
}

fn first(blockers: Vec<Blocker>) -> Result<()> {
    match blockers.into_iter().next() {
        Some(b) => Err(b.into()),
        None => Ok(()),
    }
}

/// Check, plan and apply: every LV `vgchange -ay` would activate (`lv: None`) or one LV
/// and what it needs. LVs flagged `ACTIVATION_SKIP` are left out of a VG activation (see
/// [`Plan::skipped`] of the returned plan) and refused when asked for by name.
pub fn activate_vg(
    dm: &DeviceMapper,
    s: &ScannedVg,
    pv_device: &PvDevice<'_>,
    lv: Option<&str>,
    local_system_id: Option<&str>,
    opts: &PlanOptions,
) -> Result<(Plan, Vec<DeviceInfo>)> {
    check_vg(s, local_system_id)?;
    let vg = &postpone_merges(dm, &s.vg);
    let plan = match lv {
        None => plan_vg(vg, pv_device, opts)?,
        Some(name) => {
            if vg.lv(name).is_some_and(super::plan::skips_activation) {
                return Err(ActivateError::SkipFlagged {
                    vg: vg.name.clone(),
                    lv: name.to_string(),
                });
            }
            plan_lv(vg, name, pv_device, opts)?
        }
    };
    let created = apply(dm, &plan)?;
    Ok((plan, created))
}

/// The VG to plan from, with lvm2's rules for a pending snapshot merge applied
/// (`_add_new_lv_to_dtree` in `dev_manager.c`): a merge whose origin device already runs
/// `snapshot-merge` stays; one whose origin device or merging snapshot device is open is
/// postponed (planned as a plain snapshot, `snapshot-origin` on the origin) until an
/// activation finds both closed; otherwise the plan starts it.
pub fn postpone_merges(dm: &DeviceMapper, vg: &VolumeGroup) -> VolumeGroup {
    let open = |lv: &str| -> (bool, bool) {
        // (exists with a live table, open count > 0; merging runs)
        let Some(l) = vg.lv(lv) else {
            return (false, false);
        };
        let Ok(uuid) = DmUuid::new(&format!("{}{}", uuid_prefix(&vg.id), l.id.as_str())) else {
            return (false, false);
        };
        match dm.info(crate::DevId::Uuid(&uuid)) {
            Ok(i) if i.has_live_table() => (true, i.open_count > 0),
            _ => (false, false),
        }
    };
    let runs_merge = |lv: &str| -> bool {
        let Some(l) = vg.lv(lv) else { return false };
        let Ok(uuid) = DmUuid::new(&format!("{}{}", uuid_prefix(&vg.id), l.id.as_str())) else {
            return false;
        };
        dm.table(crate::DevId::Uuid(&uuid), Which::Live)
            .map(|t| {
                t.lines()
                    .iter()
                    .any(|x| matches!(x.target, crate::targets::Target::SnapshotMerge(_)))
            })
            .unwrap_or(false)
    };
    let postponed: Vec<String> = vg
        .snapshot_links()
        .filter(|l| l.merging)
        .filter(|l| {
            if runs_merge(l.origin) {
                return false;
            }
            open(l.origin).1 || open(l.cow).1
        })
        .map(|l| l.snapshot_lv.name.clone())
        .collect();
    if postponed.is_empty() {
        return vg.clone();
    }
    let mut out = vg.clone();
    for lv in &mut out.lvs {
        if !postponed.contains(&lv.name) {
            continue;
        }
        for seg in &mut lv.segments {
            if let super::model::SegmentKind::Snapshot { merging, .. } = &mut seg.kind {
                *merging = false;
            }
        }
    }
    out
}

/// The table of `d` with its `/dev/mapper/<name>` references ([`mapper_name`]) replaced
/// by device numbers: of the devices created before it (`known`), or of active devices.
fn resolve(dm: &DeviceMapper, d: &PlannedDevice, known: &HashMap<DmName, DevNum>) -> Result<Table> {
    d.resolved_table(|name, r| match known.get(name) {
        Some(n) => Ok(*n),
        None => dm
            .info(name)
            .map(|i| i.dev)
            .map_err(|_| ActivateError::UnknownReference {
                device: d.name.clone(),
                reference: r.clone(),
            }),
    })
}

/// Apply a plan: for each device in order, create it (or reuse a device that already
/// has the planned name and uuid, e.g. a `-real` layer shared with an active LV), load
/// its table with dm references resolved, and resume it. A device of the plan's name and
/// uuid that has no live table or is suspended (what a command killed between its
/// create and its resume leaves) is finished: loaded and resumed, not created again. On
/// failure every device this call created (or found without a table) is removed again,
/// newest first, and the first error is returned.
///
/// Returns the devices created or finished (running ones reused are not listed).
pub fn apply(dm: &DeviceMapper, plan: &Plan) -> Result<Vec<DeviceInfo>> {
    let mut undo = Undo::new(dm);
    let mut created: Vec<DeviceInfo> = Vec::new();
    let mut known: HashMap<DmName, DevNum> = HashMap::new();
    for d in &plan.devices {
        let name = &d.name;
        let existing = dm.info(name).ok();
        if let Some(info) = &existing {
            if info.uuid.as_deref() != Some(d.uuid.as_str()) {
                return Err(ActivateError::NameTaken {
                    device: name.clone(),
                    found: info.uuid.clone(),
                    expected: d.uuid.clone(),
                });
            }
            if info.has_live_table() && !info.suspended() {
                // Already active (a layer shared with an LV activated before): reuse.
                known.insert(name.clone(), info.dev);
                continue;
            }
        }
        let table = resolve(dm, d, &known)?;
        let info = match existing {
            // Ours, left half made (a command killed between create and resume, or
            // inside a suspend): finished here with the planned table, not created again.
            // One without a live table held nothing, so a failure removes it as well; a
            // suspended one is resumed on failure, never left suspended.
            Some(info) => {
                if !info.has_live_table() {
                    undo.push(UndoAction::Remove(name.clone()));
                } else if info.suspended() {
                    undo.push(UndoAction::Resume(name.clone()));
                }
                info
            }
            None => {
                let opts = d.create_options();
                let info = dm
                    .create(name, opts)
                    .map_err(dm_err("create", name.as_str()))?;
                undo.push(UndoAction::Remove(name.clone()));
                info
            }
        };
        known.insert(name.clone(), info.dev);
        created.push(info);
        let load = d.load_options();
        dm.load(name, &table, load)
            .map_err(dm_err("load", name.as_str()))?;
        dm.resume(name, SuspendOptions::default())
            .map_err(dm_err("resume", name.as_str()))?;
    }
    undo.commit();
    Ok(created)
}

/// How many threads issue the device-mapper changes of an activation (`default`
/// [`ACTIVATE_THREADS`]) or deactivation ([`REMOVE_THREADS`]), for `jobs` changes.
///
/// A removal mostly waits in the kernel (RCU grace periods while the device's queue is
/// torn down), so removals of devices that do not hold each other overlap their waits, as
/// `vgchange -an` does not. Creating and loading keep the CPU busy in the kernel instead,
/// but they too overlap where CPUs are free: in the VM bench on an idle host (2 vCPUs,
/// 1,000 LVs) 1 thread took 2.5 s, 2 threads 1.7 s, 4 1.5 s, 8 1.4 s, 16 1.4 s (on a host
/// loaded five times over, 2-8 threads were 2-30% slower than one), so activation uses 8.
/// `DEVMAPPER_DM_THREADS` overrides both defaults; with
/// the crash-test feature the changes are always made one at a time, in a fixed order.
pub(crate) fn dm_threads(jobs: usize, default: usize) -> usize {
    if cfg!(feature = "fault-injection") {
        return 1;
    }
    let n = std::env::var("DEVMAPPER_DM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(default);
    n.clamp(1, 64).min(jobs.max(1))
}

/// Threads of an activation ([`dm_threads`]).
pub(crate) const ACTIVATE_THREADS: usize = 8;
/// Threads of a deactivation ([`dm_threads`]).
pub(crate) const REMOVE_THREADS: usize = 16;

/// Run jobs `0..unblocks.len()` on up to `threads` threads: a job starts once every job
/// naming it in `unblocks` has finished, the lowest-numbered ready job first. After the
/// first error no job starts, the running ones finish, and that error is returned.
/// Returns the jobs in the order they finished; a job left out was never ready (a cycle).
pub(crate) fn run_ordered<E: Send>(
    unblocks: &[Vec<usize>],
    threads: usize,
    work: impl Fn(usize) -> std::result::Result<(), E> + Sync,
) -> std::result::Result<Vec<usize>, E> {
    use std::sync::{Condvar, Mutex, PoisonError};
    struct State<E> {
        ready: BinaryHeap<Reverse<usize>>,
        waits: Vec<usize>,
        running: usize,
        done: Vec<usize>,
        err: Option<E>,
    }
    let n = unblocks.len();
    let mut waits = vec![0usize; n];
    for js in unblocks {
        for &j in js {
            if let Some(w) = waits.get_mut(j) {
                *w += 1;
            }
        }
    }
    let ready = (0..n)
        .filter(|&i| waits.get(i) == Some(&0))
        .map(Reverse)
        .collect();
    let state = Mutex::new(State {
        ready,
        waits,
        running: 0,
        done: Vec::with_capacity(n),
        err: None,
    });
    let cv = Condvar::new();
    let worker = || {
        let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut st = lock();
        loop {
            if st.err.is_some() {
                break;
            }
            if let Some(Reverse(i)) = st.ready.pop() {
                st.running += 1;
                drop(st);
                let r = work(i);
                st = lock();
                st.running -= 1;
                match r {
                    Ok(()) => {
                        st.done.push(i);
                        for &j in unblocks.get(i).map(Vec::as_slice).unwrap_or_default() {
                            if let Some(w) = st.waits.get_mut(j) {
                                *w = w.saturating_sub(1);
                                if *w == 0 {
                                    st.ready.push(Reverse(j));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if st.err.is_none() {
                            st.err = Some(e);
                        }
                    }
                }
                cv.notify_all();
                continue;
            }
            if st.running == 0 {
                break;
            }
            st = cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        cv.notify_all();
    };
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(worker);
            }
        });
    }
    let st = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    match st.err {
        Some(e) => Err(e),
        None => Ok(st.done),
    }
}

/// The uuid prefix of every dm device of a VG: `LVM-` + the VG id.
pub fn uuid_prefix(vg_id: &LvmId) -> String {
    format!("LVM-{}", vg_id.as_str())
}

/// The active devices of a VG, by uuid prefix.
pub fn vg_devices(dm: &DeviceMapper, vg_id: &LvmId) -> Result<Vec<crate::DeviceEntry>> {
    let prefix = uuid_prefix(vg_id);
    Ok(dm
        .list()
        .map_err(dm_err("list", "devices"))?
        .into_iter()
        .filter(|e| e.uuid.as_deref().is_some_and(|u| u.starts_with(&prefix)))
        .collect())
}

/// The VG id of the active devices named after VG `vg_name` (`LVM-` uuids whose name
/// starts with the VG name, dashes doubled, and `-`).
pub fn active_vg_id(dm: &DeviceMapper, vg_name: &str) -> Result<LvmId> {
    let mut name_prefix = super::plan::dm_name(vg_name, "", None);
    // dm_name(vg, "") ends with the separating `-` already.
    if !name_prefix.ends_with('-') {
        name_prefix.push('-');
    }
    let mut ids: HashSet<String> = HashSet::new();
    for e in dm.list().map_err(dm_err("list", "devices"))? {
        let Some(u) = e.uuid.as_deref() else { continue };
        let Some(rest) = u.strip_prefix("LVM-") else {
            continue;
        };
        // The name must split as <vg>-<lv>: the VG part has no single dash.
        if !e.name.starts_with(&name_prefix) || !vg_part_is(&e.name, vg_name) {
            continue;
        }
        if let Some(id) = rest.get(..32) {
            ids.insert(id.to_string());
        }
    }
    let mut it = ids.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Err(ActivateError::NotActive {
            vg: vg_name.to_string(),
        }),
        (Some(id), None) => LvmId::from_raw(id.as_bytes()).map_err(|_| ActivateError::NotActive {
            vg: vg_name.to_string(),
        }),
        (Some(_), Some(_)) => Err(ActivateError::Ambiguous {
            vg: vg_name.to_string(),
            count: 2 + it.count(),
        }),
    }
}

/// Split a dm name at its first single `-` (lvm2's `dm_split_lvm_name`) and compare the
/// VG part.
pub(crate) fn vg_part_is(dm_name: &str, vg: &str) -> bool {
    let b = dm_name.as_bytes();
    let mut i = 0;
    let mut out = String::new();
    while let Some(&c) = b.get(i) {
        if c == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                out.push('-');
                i += 2;
                continue;
            }
            return out == vg;
        }
        out.push(char::from(c));
        i += 1;
    }
    false
}

/// Remove every active device of the VG, devices nobody in the VG depends on first.
/// Refuses, removing nothing, when a device is held open by anything but another
/// device of the VG. Returns the names removed, in removal order.
///
/// One list ioctl finds the devices and one `DM_TABLE_DEPS` per device gives both its
/// dependencies and its open count (a second one only for a device with an inactive
/// table); removals of devices that do not hold each other run on several threads
/// (`REMOVE_THREADS`, see `dm_threads`), each only after every device of the VG holding
/// it is gone.
pub fn deactivate(dm: &DeviceMapper, vg_id: &LvmId) -> Result<Vec<DmName>> {
    let devs = vg_devices(dm, vg_id)?;
    let names = devs
        .iter()
        .map(|e| {
            DmName::new(e.name.as_ref()).map_err(|err| ActivateError::Dm {
                step: "name",
                device: e.name.to_string(),
                source: Box::new(DmError::InvalidArgument(err.to_string())),
            })
        })
        .collect::<Result<Vec<DmName>>>()?;
    let by_dev: HashMap<DevNum, usize> = devs.iter().enumerate().map(|(i, e)| (e.dev, i)).collect();
    // Each device's info and the VG devices its tables use, on the worker threads.
    let probed: Vec<std::sync::OnceLock<(i32, Vec<usize>)>> = (0..devs.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    let none: Vec<Vec<usize>> = vec![Vec::new(); devs.len()];
    run_ordered(
        &none,
        dm_threads(devs.len(), REMOVE_THREADS),
        |i| -> Result<()> {
            let (Some(e), Some(name), Some(slot)) = (devs.get(i), names.get(i), probed.get(i))
            else {
                return Ok(());
            };
            let (info, live) = dm
                .deps_with_info(e.dev, Which::Live)
                .map_err(dm_err("info", name.as_str()))?;
            let mut mine: Vec<usize> = live.iter().filter_map(|d| by_dev.get(d).copied()).collect();
            if info.has_inactive_table() {
                // A device without that table answers with no deps or an error: both mean none.
                if let Ok(d) = dm.deps(e.dev, Which::Inactive) {
                    mine.extend(d.iter().filter_map(|d| by_dev.get(d).copied()));
                }
            }
            mine.sort_unstable();
            mine.dedup();
            let _ = slot.set((info.open_count, mine));
            Ok(())
        },
    )?;
    let probed: Vec<(i32, Vec<usize>)> = probed
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_default())
        .collect();
    let mut holders = vec![0i32; devs.len()];
    for (_, deps) in &probed {
        for &j in deps {
            if let Some(h) = holders.get_mut(j) {
                *h += 1;
            }
        }
    }
    let busy: Vec<OpenDevice> = probed
        .iter()
        .zip(&names)
        .zip(&holders)
        .filter(|(((open, _), _), held)| *open - **held > 0)
        .map(|(((open, _), name), _)| OpenDevice {
            name: name.clone(),
            open_count: *open,
        })
        .collect();
    if !busy.is_empty() {
        return Err(ActivateError::Busy {
            vg: vg_id.to_string(),
            devices: busy,
        });
    }
    // Removing device i frees the devices it uses.
    let unblocks: Vec<Vec<usize>> = probed.into_iter().map(|(_, d)| d).collect();
    let order = run_ordered(
        &unblocks,
        dm_threads(devs.len(), REMOVE_THREADS),
        |i| -> Result<()> {
            let (Some(e), Some(name)) = (devs.get(i), names.get(i)) else {
                return Ok(());
            };
            dm.remove(e.dev, RemoveMode::Now)
                .map(|_| ())
                .map_err(dm_err("remove", name.as_str()))
        },
    )?;
    // A dependency cycle (impossible for dm) would leave devices: say so.
    if order.len() < devs.len() {
        let mut removed = vec![false; devs.len()];
        for &i in &order {
            if let Some(r) = removed.get_mut(i) {
                *r = true;
            }
        }
        if let Some((e, name)) = devs
            .iter()
            .zip(&names)
            .zip(&removed)
            .find_map(|(e, r)| (!r).then_some(e))
        {
            let open_count = dm.info(e.dev).map_or(0, |i| i.open_count);
            return Err(ActivateError::Busy {
                vg: vg_id.to_string(),
                devices: vec![OpenDevice {
                    name: name.clone(),
                    open_count,
                }],
            });
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|i| names.get(i).cloned())
        .collect())
}
