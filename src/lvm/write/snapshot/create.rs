//! `lvcreate -s -L SIZE -n SNAP VG/LV`: a snapshot of an LV, live on an active (mounted,
//! busy) origin, or metadata only on an inactive one.
//!
//! The live sequence (one commit; lvm2 takes two, see the [module doc](super)):
//!
//! 1. under `V_<vg>`, the COW's extents allocated (lvm2's normal policy) and its first
//!    4 KiB zeroed (through the PV, where `VG-SNAP-cow` will map it) before any metadata
//!    names it: the kernel then starts a fresh exception store;
//! 2. `VG-SNAP-cow` created from the planned table (the plan of the new VG:
//!    [`crate::lvm::plan::plan_lv`]), then the new VG precommitted;
//! 3. `VG-LV-real` (the origin's old table) and `VG-SNAP` (`snapshot <real> <cow> P
//!    <chunk>`, the COW LV's uuid) created and loaded, `snapshot-origin <real>` staged in
//!    the origin's inactive slot: all before any suspend;
//! 4. the origin suspended with its filesystem frozen (existing snapshots of the origin
//!    with it, as lvm2 does), a guardian armed that resumes them if this process dies or
//!    stalls;
//! 5. the metadata committed while suspended;
//! 6. the new snapshot resumed, then the other snapshots, then the origin.
//!
//! Every dm step before the commit is recorded in a dm transaction: any failure there
//! reverts the precommitted copy, clears the staged table, resumes what was suspended and
//! removes what was created. The origin is never left suspended.
//!
//! ```no_run
//! use devmapper::lvm::write::session::WriteOptions;
//! use devmapper::lvm::write::snapshot::create::{lvcreate_snapshot, SnapshotRequest};
//! use devmapper::lvm::write::snapshot::size::CowSize;
//! let opts = WriteOptions::new("example");
//! let req = SnapshotRequest::new(CowSize::Sectors(100 << 11));
//! let made = lvcreate_snapshot("vg0", "root", Some("root_snap"), &req, &opts)?;
//! for n in &made.notices { println!("{n}"); }
//! # Ok::<(), devmapper::lvm::write::error::WriteError>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::time::Duration;

use super::meta::{NewSnapshot, add_snapshot, check_origin, snapshots_of};
use super::size::{CowSize, DEFAULT_CHUNK, check_chunk, cow_extents};
use crate::io::WriteAt;
use crate::kernel::undo::{Undo, UndoAction};
use crate::lvm::id::LvmId;
use crate::lvm::model::{Area, SegmentKind, VolumeGroup};
use crate::lvm::names::check_lv_name;
use crate::lvm::plan::{PlanOptions, PlannedDevice, plan_lv};
use crate::lvm::write::alloc::{AllocRequest, allocate};
use crate::lvm::write::backup;
use crate::lvm::write::error::{Result, WriteError};
use crate::lvm::write::ops::ZERO_BYTES;
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::snapshot_set::window::{Family, Frozen, WindowError, freeze};
use crate::table::Table;
use crate::targets::DevRef;
use crate::{CreateOptions, DevId, DevNum, DeviceMapper, DmName, LoadOptions, SuspendOptions};

/// What to create: the COW's size, chunk size, permission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// `-L` / `-l`.
    pub size: CowSize,
    /// Chunk size in sectors (`-c`; default 4 KiB).
    pub chunk: u64,
    /// `-pr`: a read-only snapshot.
    pub read_only: bool,
}

impl SnapshotRequest {
    /// A read-write snapshot of this size with lvm2's default chunk (4 KiB).
    pub fn new(size: CowSize) -> SnapshotRequest {
        SnapshotRequest {
            size,
            chunk: DEFAULT_CHUNK,
            read_only: false,
        }
    }
}

/// What [`lvcreate_snapshot`] did.
#[derive(Clone, Debug)]
pub struct SnapshotCreated {
    /// The snapshot's (COW LV's) name.
    pub name: String,
    /// The internal `snapshotN` LV.
    pub internal: String,
    /// COW extents.
    pub extents: u64,
    /// What lvm2 would have printed on the way (`Rounding up ...`, `Reducing COW size ...`).
    pub notices: Vec<String>,
    /// The origin was active: the snapshot is active too.
    pub live: bool,
    /// How long the origin was suspended (live creation only).
    pub suspended_for: Option<Duration>,
    /// Non-fatal problems (a backup file not written).
    pub warnings: Vec<String>,
}

/// The dm uuid of an LV's own device (`LVM-` + VG id + LV id).
pub(crate) fn lv_dm_uuid(vg: &VolumeGroup, id: &LvmId) -> Result<crate::DmUuid> {
    crate::DmUuid::new(&format!("LVM-{}{}", vg.id.as_str(), id.as_str()))
        .map_err(|e| WriteError::BadOption(e.to_string()))
}

/// The live device of an LV (by its uuid), if active.
pub(crate) fn active_device(
    dm: &DeviceMapper,
    vg: &VolumeGroup,
    lv: &str,
) -> Result<Option<crate::DeviceInfo>> {
    let Some(l) = vg.lv(lv) else { return Ok(None) };
    let uuid = lv_dm_uuid(vg, &l.id)?;
    match dm.info(DevId::Uuid(&uuid)) {
        Ok(i) if i.has_live_table() => Ok(Some(i)),
        Ok(_) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(WriteError::dm("info", lv)(e)),
    }
}

pub(crate) fn nodename() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A planned table with its `/dev/mapper/<name>` references replaced by the numbers of
/// the devices created so far (`known`) or of active devices.
pub(crate) fn resolve(
    dm: &DeviceMapper,
    d: &PlannedDevice,
    known: &HashMap<DmName, DevNum>,
) -> Result<Table> {
    d.resolved_table(|name, _| match known.get(name) {
        Some(n) => Ok(*n),
        None => dm
            .info(name)
            .map(|i| i.dev)
            .map_err(WriteError::dm("info", name.as_str())),
    })
}

/// Create a planned device, load its table (recording its removal) and optionally
/// resume it.
pub(crate) fn create_planned(
    dm: &DeviceMapper,
    undo: &mut Undo<'_>,
    d: &PlannedDevice,
    known: &mut HashMap<DmName, DevNum>,
    resume: bool,
) -> Result<()> {
    let table = resolve(dm, d, known)?;
    if dm
        .exists(&d.name)
        .map_err(WriteError::dm("info", d.name.as_str()))?
    {
        return Err(WriteError::BadOption(format!(
            "device-mapper device {} already exists (run activation of the VG to reconcile it)",
            d.name
        )));
    }
    let info = dm
        .create(
            &d.name,
            CreateOptions::default()
                .uuid(d.uuid.clone())
                .read_only(d.read_only),
        )
        .map_err(WriteError::dm("create", d.name.as_str()))?;
    undo.push(UndoAction::Remove(d.name.clone()));
    known.insert(d.name.clone(), info.dev);
    let load = LoadOptions {
        read_only: d.read_only,
        ..LoadOptions::default()
    };
    dm.load(&d.name, &table, load)
        .map_err(WriteError::dm("load", d.name.as_str()))?;
    if resume {
        dm.resume(&d.name, SuspendOptions::default())
            .map_err(WriteError::dm("resume", d.name.as_str()))?;
    }
    Ok(())
}

/// Zero the first [`ZERO_BYTES`] of the COW's extents (capped at its size) through the
/// PV holding LE 0, durable before the metadata names it.
fn zero_cow(s: &VgSession, vg: &VolumeGroup, segs: &[crate::lvm::model::Segment]) -> Result<()> {
    let first = segs
        .first()
        .ok_or(WriteError::Internal("COW without extents"))?;
    let SegmentKind::Striped { areas, .. } = &first.kind else {
        return Err(WriteError::Internal("COW not striped"));
    };
    let Some(Area::Pv { pv, pe }) = areas.first() else {
        return Err(WriteError::Internal("COW not on a PV"));
    };
    let i = vg
        .pvs
        .iter()
        .position(|p| &p.handle == pv)
        .ok_or(WriteError::Internal("COW on an unknown PV"))?;
    let (Some(p), Some(f)) = (vg.pvs.get(i), s.pv_files().get(i)) else {
        return Err(WriteError::Internal("COW PV not open"));
    };
    let path = s.pv_paths().get(i).cloned().unwrap_or_default();
    let offset = (p.pe_start + pe * vg.extent_size) * 512;
    let n = ZERO_BYTES.min(first.extent_count * vg.extent_size * 512) as usize;
    f.write_all_at(&vec![0u8; n], offset)
        .map_err(WriteError::io(&path))?;
    // The precommit, which always follows before any metadata names the COW, flushes
    // every PV holding a metadata area in use after writing its text: on such a PV that
    // flush makes these zeros durable in time, and a flush of our own would only lengthen
    // the command. Elsewhere, flush here.
    if !s.precommit_flushes(p) {
        WriteAt::sync(f).map_err(WriteError::io(path))?;
    }
    Ok(())
}

/// One snapshot asked of a VG: its origin, its name, its request.
#[derive(Debug, Clone)]
pub(crate) struct LvAsk<'a> {
    pub(crate) origin: &'a str,
    pub(crate) name: String,
    pub(crate) req: &'a SnapshotRequest,
}

/// One planned snapshot of a [`VgPlan`].
#[derive(Debug, Clone)]
pub(crate) struct LvPlanned {
    pub(crate) origin: String,
    pub(crate) name: String,
    pub(crate) internal: String,
    pub(crate) extents: u64,
    pub(crate) notices: Vec<String>,
    segments: Vec<crate::lvm::model::Segment>,
    /// The origin's live device (the snapshot is created live).
    pub(crate) active: Option<crate::DeviceInfo>,
}

/// The snapshots of one VG, checked and allocated on one new model (each on the model
/// updated by the ones before it).
#[derive(Debug, Clone)]
pub(crate) struct VgPlan {
    pub(crate) old: VolumeGroup,
    pub(crate) new: VolumeGroup,
    pub(crate) lvs: Vec<LvPlanned>,
}

/// The checks of the request alone (name, chunk): the snapshot's name.
pub(crate) fn check_ask(
    vg_name: &str,
    origin: &str,
    name: Option<&str>,
    req: &SnapshotRequest,
) -> Result<String> {
    let name = name.map_or_else(|| format!("{origin}_snap"), str::to_string);
    check_lv_name(vg_name, &name)?;
    check_chunk(req.chunk)?;
    Ok(name)
}

/// Every check of `lvcreate -s` on the locked VG, for each ask, and the new model with all
/// of them; nothing is written.
pub(crate) fn plan_vg(
    dm: Option<&DeviceMapper>,
    s: &VgSession,
    asks: &[LvAsk<'_>],
) -> std::result::Result<VgPlan, (usize, WriteError)> {
    let old = s.vg().clone();
    let vg_name = old.name.clone();
    let mut cur = old.clone();
    let mut lvs = Vec::with_capacity(asks.len());
    for (i, ask) in asks.iter().enumerate() {
        let one = |cur: &VolumeGroup| -> Result<(LvPlanned, VolumeGroup)> {
            let name = &ask.name;
            check_origin(cur, ask.origin)?;
            if cur.lv(name).is_some() {
                return Err(WriteError::LvExists {
                    vg: vg_name.clone(),
                    lv: name.clone(),
                });
            }
            if old.max_lv != 0 {
                let visible = old.lvs.iter().filter(|l| old.is_visible(l)).count() as u64;
                if visible + i as u64 >= old.max_lv {
                    return Err(WriteError::BadOption(format!(
                        "Maximum number of logical volumes ({}) reached in volume group {vg_name}",
                        old.max_lv
                    )));
                }
            }
            let origin_lv = cur
                .lv(ask.origin)
                .ok_or(WriteError::Internal("origin gone"))?;
            let sized = cow_extents(cur, origin_lv, &ask.req.size, ask.req.chunk)?;
            let segments = allocate(cur, &AllocRequest::linear(name, sized.extents))?;
            let mut snap = NewSnapshot::new(
                ask.origin,
                name,
                segments,
                ask.req.chunk,
                now(),
                &nodename(),
            )
            .map_err(WriteError::io("/dev/urandom"))?;
            snap.read_only = ask.req.read_only;
            let next = add_snapshot(cur, &snap)?;
            let internal = next
                .cow_link(name)
                .map(|l| l.snapshot_lv.name.clone())
                .ok_or(WriteError::Internal("snapshot not linked"))?;
            let active = match dm {
                Some(dm) => active_device(dm, &old, ask.origin)?,
                None => None,
            };
            let planned = LvPlanned {
                origin: ask.origin.to_string(),
                name: name.clone(),
                internal,
                extents: sized.extents,
                notices: sized.notices,
                segments: snap.segments,
                active,
            };
            Ok((planned, next))
        };
        let (planned, next) = one(&cur).map_err(|e| (i, e))?;
        lvs.push(planned);
        cur = next;
    }
    Ok(VgPlan { old, new: cur, lvs })
}

/// Zero the start of every planned COW: the kernel then starts a fresh exception store.
pub(crate) fn zero_cows(s: &VgSession, plan: &VgPlan) -> Result<()> {
    for lv in &plan.lvs {
        zero_cow(s, &plan.old, &lv.segments)?;
    }
    Ok(())
}

/// Steps 2-3 of the module doc for every live snapshot of `plan`: the COW layers, the one
/// precommit of the VG, the `-real` devices, the snapshot devices and the staged origin
/// tables, recorded in `undo`. What the window suspends, one per live origin.
pub(crate) fn stage_vg(
    dm: &DeviceMapper,
    undo: &mut Undo<'_>,
    s: &mut VgSession,
    plan: &VgPlan,
) -> Result<Vec<Frozen>> {
    struct Devs {
        cow: PlannedDevice,
        snap: PlannedDevice,
        real: PlannedDevice,
        origin: PlannedDevice,
        first: bool,
        others: Vec<DmName>,
    }
    let mut staged = Vec::new();
    for lv in plan.lvs.iter().filter(|l| l.active.is_some()) {
        let devnum = |p: &crate::lvm::model::PhysicalVolume| s.pv_devnum(p).map(DevRef::from);
        let planned = plan_lv(&plan.new, &lv.origin, &devnum, &PlanOptions::default())?;
        let find = |name: &str, layer: Option<&str>| {
            planned
                .devices
                .iter()
                .find(|d| d.lv == name && d.layer.as_deref() == layer)
                .cloned()
                .ok_or(WriteError::Internal("planned device missing"))
        };
        // Existing snapshot devices of the origin (suspended with it, as lvm2 does).
        let mut others = Vec::new();
        for cow in snapshots_of(&plan.old, &lv.origin) {
            if let Some(i) = active_device(dm, &plan.old, &cow)? {
                others.push(i.name);
            }
        }
        staged.push(Devs {
            cow: find(&lv.name, Some("cow"))?,
            snap: find(&lv.name, None)?,
            real: find(&lv.origin, Some("real"))?,
            origin: find(&lv.origin, None)?,
            first: snapshots_of(&plan.old, &lv.origin).is_empty(),
            others,
        });
    }
    let mut known = HashMap::new();
    // 2. The COW layers, then the precommit.
    for d in &staged {
        create_planned(dm, undo, &d.cow, &mut known, true)?;
    }
    crate::snapshot::fault::step("lvm-snapshot", 1);
    s.precommit(plan.new.clone())?;
    crate::snapshot::fault::step("lvm-snapshot", 2);
    // 3. Everything else before the suspend.
    let mut frozen = Vec::with_capacity(staged.len());
    for d in staged {
        if d.first {
            create_planned(dm, undo, &d.real, &mut known, true)?;
            crate::snapshot::fault::step("lvm-snapshot", 3);
        }
        create_planned(dm, undo, &d.snap, &mut known, false)?;
        crate::snapshot::fault::step("lvm-snapshot", 4);
        if d.first {
            let t = resolve(dm, &d.origin, &known)?;
            dm.load(&d.origin.name, &t, LoadOptions::default())
                .map_err(WriteError::dm("load", d.origin.name.as_str()))?;
            undo.push(UndoAction::ClearInactive(d.origin.name.clone()));
            crate::snapshot::fault::step("lvm-snapshot", 5);
        }
        frozen.push(Frozen {
            family: Family::Lvm,
            origin: d.origin.name,
            snapshot: d.snap.name,
            others: d.others,
            level: 0,
        });
    }
    Ok(frozen)
}

/// `lvcreate -s` of `origin` in `vg_name`: a snapshot named `name` (default
/// `<origin>_snap`, as dmsnap's CLI names it; lvm2 would pick `lvolN`), sized and
/// checked as lvm2 does ([`cow_extents`]). Live when the origin is active (see the module
/// doc), metadata only otherwise (activation, ours or lvm2's, then builds the stack).
/// This is a [`SnapshotSet`](crate::snapshot_set::SnapshotSet) of one: the same checks,
/// steps and window.
///
/// # Errors
/// [`WriteError::Name`], [`WriteError::LvExists`], [`WriteError::Snapshot`] (chunk, size,
/// origin refusals: nothing was written or suspended), [`WriteError::Alloc`], the errors
/// of [`VgSession::open`] and of the commit, [`WriteError::Dm`] (everything undone),
/// [`WriteError::AfterCommit`] (committed, a resume failed: the devices are resumed as
/// far as possible; activation reconciles).
pub fn lvcreate_snapshot(
    vg_name: &str,
    origin: &str,
    name: Option<&str>,
    req: &SnapshotRequest,
    opts: &WriteOptions,
) -> Result<SnapshotCreated> {
    let name = check_ask(vg_name, origin, name, req)?;
    let dm =
        DeviceMapper::new_if_present().map_err(WriteError::dm("open", "/dev/mapper/control"))?;
    // The archive and backup files are written here, outside the suspend window (the
    // session would write the backup inside it, at the commit).
    let mut quiet = opts.clone();
    quiet.backups = None;
    let mut s = VgSession::open(vg_name, &quiet)?;
    let plan = plan_vg(dm.as_ref(), &s, &[LvAsk { origin, name, req }]).map_err(|(_, e)| e)?;
    // The COW starts as a fresh store: zeroed before the metadata names it.
    zero_cows(&s, &plan)?;
    // The archive's print of the old VG is the base the backup copies unchanged LVs from.
    let archived = match &opts.backups {
        Some(dirs) => Some(backup::archive_printed(dirs, &plan.old, &opts.command)?.1),
        None => None,
    };
    let lv = plan
        .lvs
        .first()
        .ok_or(WriteError::Internal("nothing planned"))?;
    let mut out = SnapshotCreated {
        name: lv.name.clone(),
        internal: lv.internal.clone(),
        extents: lv.extents,
        notices: lv.notices.clone(),
        live: false,
        suspended_for: None,
        warnings: Vec::new(),
    };
    match (&dm, lv.active.is_some()) {
        (Some(dm), true) => {
            out.suspended_for = Some(create_live(dm, &mut s, &plan)?);
            out.live = true;
        }
        _ => {
            s.precommit(plan.new)?;
            s.commit()?;
        }
    }
    out.warnings.extend(s.warnings().iter().cloned());
    if let Some(dirs) = &opts.backups
        && let Err(e) = backup::backup_from(
            dirs,
            s.vg(),
            &opts.command,
            archived.as_ref().map(|p| (&plan.old, p)),
        )
    {
        out.warnings.push(format!(
            "WARNING: Backup of volume group {vg_name} metadata failed: {e}"
        ));
    }
    Ok(out)
}

/// Steps 2-6 of the module doc for the one snapshot of `plan`; returns how long the
/// origin was suspended.
fn create_live(dm: &DeviceMapper, s: &mut VgSession, plan: &VgPlan) -> Result<Duration> {
    let (name, origin) = match plan.lvs.first() {
        Some(l) => (l.name.as_str(), l.origin.as_str()),
        None => return Err(WriteError::Internal("nothing planned")),
    };
    let mut undo = Undo::new(dm);
    let frozen = match stage_vg(dm, &mut undo, s, plan) {
        Ok(f) => f,
        Err(e) => {
            // Undo (drop) first: the origin is resumed on its old table, then the
            // precommitted copy is forgotten.
            drop(undo);
            let _ = s.revert();
            return Err(e);
        }
    };
    let mut commit = || s.commit();
    let result = freeze(
        dm,
        &mut undo,
        &frozen,
        crate::DEFAULT_SUSPEND_BOUND,
        Some(&mut commit),
    );
    let origin_dev = frozen
        .first()
        .map_or_else(String::new, |f| f.origin.to_string());
    let window_error = |e: WindowError<WriteError>| match e {
        WindowError::Guard(e) => WriteError::dm("guard", &origin_dev)(*e),
        WindowError::Suspend(n, e) => WriteError::dm("suspend", n.as_str())(*e),
        WindowError::FiredBeforeCommit => WriteError::BadOption(format!(
            "the suspend of {origin_dev} outlasted {:?}: undone",
            crate::DEFAULT_SUSPEND_BOUND
        )),
        WindowError::Commit(e) => e,
        WindowError::Resume { device, source, .. } => WriteError::AfterCommit {
            what: format!("snapshot {name} of {origin} committed but not resumed"),
            source: Box::new(WriteError::dm("resume", device.as_str())(*source)),
        },
    };
    match result {
        Ok(thawed) if thawed.fired => Err(WriteError::AfterCommit {
            what: format!(
                "snapshot {name} of {origin} committed; the suspend outlasted its bound and the guardian resumed"
            ),
            source: Box::new(WriteError::Internal("suspend bound")),
        }),
        Ok(thawed) => Ok(thawed.suspended_for),
        Err(
            e @ WindowError::Resume {
                committed: true, ..
            },
        ) => Err(window_error(e)),
        Err(e) => {
            drop(undo);
            let _ = s.revert();
            Err(window_error(e))
        }
    }
}
