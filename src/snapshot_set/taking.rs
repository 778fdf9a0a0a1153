//! A set being taken: every member checked and prepared, the one freeze, the commits, the
//! resumes, and the undo of all of it on failure.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::window::{Frozen, Thawed, WindowError, freeze};
use super::{
    LvmTaken, SetError, SetErrorKind, SetMember, SetOptions, SetSource, SetTaken, SnapshotSet,
    TakenMember, order, validate,
};
use crate::kernel::dm::Which;
use crate::kernel::undo::Undo;
use crate::lvm::write::error::WriteError;
use crate::lvm::write::session::{VgSession, devnum_of};
use crate::lvm::write::snapshot::create::{LvAsk, VgPlan, check_ask, plan_vg, stage_vg, zero_cows};
use crate::snapshot::take::{Checked, TakePlan};
use crate::snapshot::{SnapError, Wrapper, WrongStateKind};
use crate::units::Sectors;
use crate::{DevId, DevNum, DeviceMapper, DmName};

/// One VG's part of a set: its session (locked) and plan.
pub(super) struct VgPart {
    /// The members of the VG, in the plan's order.
    pub(super) members: Vec<usize>,
    pub(super) session: VgSession,
    pub(super) plan: VgPlan,
    pub(super) committed: bool,
}

/// A set being taken: everything checked, nothing changed yet.
pub(super) struct Taking<'s, 'dm> {
    set: &'s SnapshotSet,
    dm: &'dm DeviceMapper,
    opts: &'s SetOptions,
    sources: Vec<SetSource>,
    wrappers: Vec<Option<Wrapper<'dm>>>,
    plans: Vec<Option<Box<TakePlan>>>,
    /// Wrapped devices: the snapshot's name and the COW's size.
    raw_snaps: Vec<Option<(DmName, Sectors)>>,
    vgs: Vec<VgPart>,
    /// Members with an active origin, in suspend order (top-down, level by level), with
    /// their stacking level.
    order: Vec<(usize, usize)>,
}

impl<'s, 'dm> Taking<'s, 'dm> {
    fn at(&self, i: usize) -> impl Fn(SetErrorKind) -> SetError + '_ {
        move |kind| SetError::new(self.sources.get(i).cloned(), kind)
    }

    /// Step 1: every check.
    pub(super) fn check(
        set: &'s SnapshotSet,
        dm: &'dm DeviceMapper,
        opts: &'s SetOptions,
    ) -> Result<Self, SetError> {
        validate(set)?;
        let sources: Vec<SetSource> = set.members.iter().map(SetMember::source).collect();
        let mut t = Taking {
            set,
            dm,
            opts,
            wrappers: (0..sources.len()).map(|_| None).collect(),
            plans: (0..sources.len()).map(|_| None).collect(),
            raw_snaps: vec![None; sources.len()],
            sources,
            vgs: Vec::new(),
            order: Vec::new(),
        };
        // The requests alone (names, chunks).
        let mut lvm_names: Vec<Option<String>> = vec![None; set.members.len()];
        for (i, m) in set.members.iter().enumerate() {
            if let SetMember::Lvm {
                vg,
                lv,
                name,
                request,
            } = m
            {
                lvm_names[i] = Some(
                    check_ask(vg, lv, name.as_deref(), request).map_err(|e| t.at(i)(e.into()))?,
                );
            }
        }
        // Wrapped devices: their own checks; the COW stays open exclusively.
        for (i, m) in set.members.iter().enumerate() {
            let SetMember::Raw { name, options } = m else {
                continue;
            };
            let w = Wrapper::open(dm, name)
                .map_err(|e| t.at(i)(e.into()))?
                .with_suspend_bound(opts.bound);
            match w.check_take(options).map_err(|e| t.at(i)(e.into()))? {
                Checked::Existing(name) => {
                    return Err(t.at(i)(
                        SnapError::NameTaken {
                            name: name.to_string(),
                        }
                        .into(),
                    ));
                }
                Checked::New(p) => {
                    t.raw_snaps[i] = Some((p.snap_name.clone(), p.cow_sectors));
                    t.plans[i] = Some(p);
                }
            }
            t.wrappers[i] = Some(w);
        }
        let cows = t
            .plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p.cow_dev())));
        if let Some((first, second)) = order::first_shared(cows) {
            let path = match &set.members[second] {
                SetMember::Raw { options, .. } => options.cow.clone(),
                SetMember::Lvm { .. } => PathBuf::new(),
            };
            return Err(t.at(second)(SetErrorKind::SameCow {
                path,
                other: t.sources[first].to_string(),
            }));
        }
        // LVM: the VGs locked in name order, each planned on one new model.
        let mut quiet = opts.write.clone();
        quiet.backups = None;
        let groups = order::group_by_vg(&t.sources);
        for (vg, members) in groups {
            let first = members.first().copied().unwrap_or(0);
            let session = VgSession::open(vg, &quiet).map_err(|e| t.at(first)(e.into()))?;
            let mut asks = Vec::with_capacity(members.len());
            for &i in &members {
                if let (SetMember::Lvm { lv, request, .. }, Some(name)) =
                    (&set.members[i], &lvm_names[i])
                {
                    asks.push(LvAsk {
                        origin: lv,
                        name: name.clone(),
                        req: request,
                    });
                }
            }
            let plan = plan_vg(Some(dm), &session, &asks)
                .map_err(|(k, e)| t.at(members.get(k).copied().unwrap_or(first))(e.into()))?;
            t.vgs.push(VgPart {
                members,
                session,
                plan,
                committed: false,
            });
        }
        t.order = t.stacking()?;
        Ok(t)
    }

    /// The live origins' devices, by member.
    fn live_origins(&self) -> Vec<(usize, DevNum)> {
        let mut live = Vec::new();
        for (i, p) in self.plans.iter().enumerate() {
            if let Some(p) = p {
                live.push((i, p.origin_dev()));
            }
        }
        for v in &self.vgs {
            for (k, lv) in v.plan.lvs.iter().enumerate() {
                if let (Some(a), Some(&i)) = (&lv.active, v.members.get(k)) {
                    live.push((i, a.dev));
                }
            }
        }
        live.sort_by_key(|(i, _)| *i);
        live
    }

    /// The dm devices a device is built on (none for a device that is not a dm device).
    fn deps(&self, dm_major: u32, d: DevNum) -> Result<Vec<DevNum>, SetError> {
        if d.major != dm_major {
            return Ok(Vec::new());
        }
        match self.dm.deps(DevId::Dev(d), Which::Live) {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(source) => Err(SetError::new(
                None,
                SetErrorKind::Dm {
                    step: "read the dependencies of",
                    device: d.to_string(),
                    source: Box::new(source),
                },
            )),
        }
    }

    /// The suspend order of the live origins (top-down), and the check that no VG's
    /// metadata lies on one of them.
    fn stacking(&self) -> Result<Vec<(usize, usize)>, SetError> {
        let live = self.live_origins();
        let Some(dm_major) = live.first().map(|(_, d)| d.major) else {
            return Ok(Vec::new());
        };
        let origins: Vec<DevNum> = live.iter().map(|(_, d)| *d).collect();
        let mut below = Vec::with_capacity(live.len());
        for (_, d) in &live {
            below.push(order::reachable(*d, |x| self.deps(dm_major, x))?);
        }
        let pairs = order::stacked_pairs(&origins, &below);
        let levels = order::levels(live.len(), &pairs).map_err(|cycle| {
            SetError::new(
                None,
                SetErrorKind::StackCycle {
                    members: cycle
                        .iter()
                        .filter_map(|&k| live.get(k).map(|(i, _)| self.sources[*i].clone()))
                        .collect(),
                },
            )
        })?;
        for v in &self.vgs {
            for f in v.session.pv_files() {
                let Some(pv) = devnum_of(f) else { continue };
                let mut under: HashSet<DevNum> = order::reachable(pv, |x| self.deps(dm_major, x))?;
                under.insert(pv);
                if let Some((i, _)) = live.iter().find(|(_, o)| under.contains(o)) {
                    return Err(SetError::new(
                        Some(self.sources[*i].clone()),
                        SetErrorKind::MetadataOnMember {
                            vg: v.plan.old.name.clone(),
                        },
                    ));
                }
            }
        }
        let mut order: Vec<(usize, usize)> =
            live.iter().zip(levels).map(|((i, _), l)| (*i, l)).collect();
        order.sort_by_key(|&(i, l)| (l, i));
        Ok(order)
    }

    /// Steps 2-5.
    pub(super) fn run(mut self) -> Result<SetTaken, SetError> {
        let dm = self.dm;
        // The COWs start as fresh stores: zeroed before the metadata names them; the
        // archives written outside the window.
        for v in &self.vgs {
            let first = v.members.first().copied().unwrap_or(0);
            zero_cows(&v.session, &v.plan).map_err(|e| self.at(first)(e.into()))?;
            if let Some(dirs) = &self.opts.write.backups {
                crate::lvm::write::backup::archive(dirs, &v.plan.old, &self.opts.write.command)
                    .map_err(|e| self.at(first)(WriteError::from(e).into()))?;
            }
        }
        let mut undo = Undo::new(dm);
        let staged = self.prepare(&mut undo);
        let result = staged.and_then(|frozen| self.window(&mut undo, &frozen).map(|t| (t, frozen)));
        match result {
            // The window ran to its end: the new devices stay (a set without LVM members
            // has no commit that would have kept them already).
            Ok((thawed, _)) if thawed.fired => {
                undo.commit();
                drop(undo);
                Err(self.abandon(true))
            }
            Ok((thawed, _)) => {
                undo.commit();
                drop(undo);
                Ok(self.taken(thawed.suspended_for))
            }
            Err((e, after_commit)) if after_commit => {
                // The undo was committed with the metadata: resume failures are left to
                // activation, which reconciles.
                drop(undo);
                Err(SetError::new(
                    None,
                    SetErrorKind::AfterCommit {
                        what: "the set's LVM metadata is committed but not every device resumed"
                            .into(),
                        source: Box::new(e),
                    },
                ))
            }
            Err((e, _)) => {
                // Before the last commit: undo everything. When the guardian fired, the
                // undo list no longer describes the state: the workflows' recovery does.
                let fired = undo.check_fired();
                if fired {
                    undo.commit();
                }
                let fired = undo.finish() || fired;
                for v in &mut self.vgs {
                    let _ = v.session.revert();
                }
                if fired
                    || matches!(&e.kind, SetErrorKind::Snap(s) if matches!(**s, SnapError::SuspendBound { .. }))
                {
                    return Err(self.abandon(false));
                }
                Err(e)
            }
        }
    }

    /// Step 2: every new device prepared, one precommit per VG; what the window freezes.
    fn prepare(&mut self, undo: &mut Undo<'_>) -> Result<Vec<(usize, Frozen)>, (SetError, bool)> {
        let mut frozen = Vec::new();
        for i in 0..self.plans.len() {
            let (Some(plan), Some(w)) = (self.plans[i].take(), self.wrappers[i].as_ref()) else {
                continue;
            };
            let f = w
                .prepare_take(*plan, undo)
                .map_err(|e| (self.at(i)(e.into()), false))?;
            frozen.push((i, f));
        }
        for v in &mut self.vgs {
            let first = v.members.first().copied().unwrap_or(0);
            let src = self.sources.get(first).cloned();
            let err = |e: WriteError| (SetError::new(src.clone(), e.into()), false);
            if v.plan.lvs.iter().any(|l| l.active.is_some()) {
                let fs = stage_vg(self.dm, undo, &mut v.session, &v.plan).map_err(err)?;
                let live = v
                    .plan
                    .lvs
                    .iter()
                    .zip(&v.members)
                    .filter(|(l, _)| l.active.is_some())
                    .map(|(_, i)| *i);
                frozen.extend(live.zip(fs));
            } else {
                v.session.precommit(v.plan.new.clone()).map_err(err)?;
            }
        }
        Ok(frozen)
    }

    /// Steps 3-4: the window over `frozen` (in suspend order), the commits in it. The
    /// error's flag: the metadata was committed (nothing is undone).
    fn window(
        &mut self,
        undo: &mut Undo<'_>,
        frozen: &[(usize, Frozen)],
    ) -> Result<Thawed, (SetError, bool)> {
        let members: Vec<Frozen> = self
            .order
            .iter()
            .filter_map(|&(i, level)| {
                frozen
                    .iter()
                    .find(|(k, _)| *k == i)
                    .map(|(_, f)| Frozen { level, ..f.clone() })
            })
            .collect();
        let member_of = |n: &DmName| {
            frozen
                .iter()
                .find(|(_, f)| &f.origin == n || &f.snapshot == n || f.others.contains(n))
                .and_then(|(i, _)| self.sources.get(*i).cloned())
        };
        let sources = self.sources.clone();
        let vgs = &mut self.vgs;
        let mut commit = || commit_all(vgs, &sources);
        let with_commit = !vgs_is_empty(&sources);
        let commit: Option<&mut dyn FnMut() -> Result<(), SetError>> =
            with_commit.then_some(&mut commit as _);
        if members.is_empty() {
            // No active origin: the metadata alone, no freeze.
            if let Some(c) = commit {
                c().map_err(|e| (e, false))?;
            }
            return Ok(Thawed {
                suspended_for: Duration::ZERO,
                fired: false,
            });
        }
        let bound = self.opts.bound;
        freeze(self.dm, undo, &members, bound, commit).map_err(|e| match e {
            WindowError::Guard(source) => (
                SetError::new(
                    None,
                    SetErrorKind::Dm {
                        step: "start the guardian for",
                        device: "the set".into(),
                        source,
                    },
                ),
                false,
            ),
            WindowError::Suspend(n, source) => (
                SetError::new(
                    member_of(&n),
                    SetErrorKind::Dm {
                        step: "suspend",
                        device: n.to_string(),
                        source,
                    },
                ),
                false,
            ),
            WindowError::FiredBeforeCommit => (
                SetError::new(
                    None,
                    SetErrorKind::BoundExceeded {
                        bound,
                        left: Vec::new(),
                    },
                ),
                false,
            ),
            WindowError::Commit(e) => (e, false),
            WindowError::Resume {
                device,
                source,
                committed,
            } => (
                SetError::new(
                    member_of(&device),
                    SetErrorKind::Dm {
                        step: "resume",
                        device: device.to_string(),
                        source,
                    },
                ),
                committed,
            ),
        })
    }

    /// After the guardian fired: whatever of the set exists is dropped again (the
    /// origins are running: the guardian resumed them). `committed`: the LVM metadata
    /// names the snapshots.
    fn abandon(&mut self, committed: bool) -> SetError {
        let mut left = Vec::new();
        // The clean-up has windows of its own: not under a bound the set just outlasted.
        let bound = self.opts.bound.max(crate::DEFAULT_SUSPEND_BOUND);
        for (i, w) in self.wrappers.iter().enumerate() {
            let Some(w) = w else { continue };
            let w = match Wrapper::open(self.dm, w.name()) {
                Ok(w) => w.with_suspend_bound(bound),
                Err(e) => {
                    left.push(format!("{}: {e}", self.sources[i]));
                    continue;
                }
            };
            if let Err(e) = w.recover() {
                left.push(format!("{}: {e}", self.sources[i]));
                continue;
            }
            let Some((name, _)) = &self.raw_snaps[i] else {
                continue;
            };
            match w.snapshot(Some(name)) {
                Ok(s) => {
                    if let Err(e) = s.discard() {
                        left.push(format!("{}: snapshot {name}: {e}", self.sources[i]));
                    }
                }
                Err(SnapError::WrongState {
                    kind: WrongStateKind::NotASnapshot { .. },
                    ..
                }) => {}
                Err(e) => left.push(format!("{}: snapshot {name}: {e}", self.sources[i])),
            }
        }
        if !committed {
            // The metadata is the old one; a guardian that fired resumed the new snapshot
            // devices and made the staged origin tables live: bring each origin back to
            // the old metadata's plan (its new devices removed).
            for v in &self.vgs {
                for lv in v.plan.lvs.iter().filter(|l| l.active.is_some()) {
                    if let Err(e) =
                        reconcile_origin(self.dm, &v.session, &v.plan, &lv.origin, &lv.name)
                    {
                        left.push(format!("{}/{}: {e}", v.plan.old.name, lv.origin));
                    }
                }
            }
        } else {
            for v in &mut self.vgs {
                for lv in &v.plan.lvs {
                    let r = crate::lvm::write::snapshot::remove::remove_in_session(
                        Some(self.dm),
                        &mut v.session,
                        &lv.name,
                        false,
                    );
                    if let Err(e) = r {
                        left.push(format!("{}/{}: {e}", v.plan.old.name, lv.name));
                    }
                }
            }
        }
        SetError::new(
            None,
            SetErrorKind::BoundExceeded {
                bound: self.opts.bound,
                left,
            },
        )
    }

    /// The result, and the LVM backup files (outside the window).
    fn taken(&mut self, suspended_for: Duration) -> SetTaken {
        let mut members = Vec::with_capacity(self.sources.len());
        let mut notices = Vec::new();
        let mut warnings = Vec::new();
        for (i, m) in self.set.members.iter().enumerate() {
            if let (SetMember::Raw { .. }, Some((snapshot, cow_sectors))) =
                (m, self.raw_snaps[i].clone())
            {
                members.push((
                    i,
                    TakenMember {
                        source: self.sources[i].clone(),
                        snapshot_node: self.dm.node_path(&snapshot),
                        snapshot,
                        cow_sectors,
                        live: true,
                        lvm: None,
                    },
                ));
            }
        }
        for v in &mut self.vgs {
            let vg = v.plan.old.name.clone();
            for (lv, &i) in v.plan.lvs.iter().zip(&v.members) {
                notices.extend(lv.notices.iter().cloned());
                let Ok(snapshot) = DmName::new(&crate::lvm::plan::dm_name(&vg, &lv.name, None))
                else {
                    continue;
                };
                members.push((
                    i,
                    TakenMember {
                        source: self.sources[i].clone(),
                        snapshot_node: self.dm.node_path(&snapshot),
                        snapshot,
                        cow_sectors: Sectors(lv.extents * v.plan.old.extent_size),
                        live: lv.active.is_some(),
                        lvm: Some(LvmTaken {
                            name: lv.name.clone(),
                            internal: lv.internal.clone(),
                            extents: lv.extents,
                            notices: lv.notices.clone(),
                        }),
                    },
                ));
            }
            warnings.extend(v.session.warnings().iter().cloned());
            if let Some(dirs) = &self.opts.write.backups
                && let Err(e) = crate::lvm::write::backup::backup(
                    dirs,
                    v.session.vg(),
                    &self.opts.write.command,
                )
            {
                warnings.push(format!(
                    "WARNING: Backup of volume group {vg} metadata failed: {e}"
                ));
            }
        }
        members.sort_by_key(|(i, _)| *i);
        SetTaken {
            members: members.into_iter().map(|(_, m)| m).collect(),
            suspended_for,
            notices,
            warnings,
        }
    }
}

/// Bring the devices of `origin` (and of the snapshot `snap` the set planned for it) to
/// the plan of the VG's old metadata.
fn reconcile_origin(
    dm: &DeviceMapper,
    s: &VgSession,
    plan: &VgPlan,
    origin: &str,
    snap: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use crate::lvm::plan::{PlanOptions, plan_lv};
    use crate::lvm::reconcile::{Scope, reconcile};
    let devnum =
        |p: &crate::lvm::model::PhysicalVolume| s.pv_devnum(p).map(crate::targets::DevRef::from);
    let p = plan_lv(&plan.old, origin, &devnum, &PlanOptions::default())?;
    let mut ids = Vec::new();
    if let Some(l) = plan.old.lv(origin) {
        ids.push(l.id);
    }
    if let Some(l) = plan.new.lv(snap) {
        ids.push(l.id);
    }
    reconcile(dm, &plan.old.id, &p, Scope::Lvs(&ids))?;
    Ok(())
}

fn vgs_is_empty(sources: &[SetSource]) -> bool {
    !sources.iter().any(|s| matches!(s, SetSource::Lvm { .. }))
}

/// Commit every VG in name order; when VG k fails, commit the old metadata of every VG
/// before it again, so that no VG keeps a snapshot of the set.
pub(super) fn commit_all(vgs: &mut [VgPart], sources: &[SetSource]) -> Result<(), SetError> {
    for k in 0..vgs.len() {
        let Err(e) = vgs[k].session.commit() else {
            vgs[k].committed = true;
            continue;
        };
        let src = vgs[k]
            .members
            .first()
            .and_then(|i| sources.get(*i))
            .cloned();
        let mut kept = Vec::new();
        for v in vgs.iter_mut().take(k) {
            let old = v.plan.old.clone();
            match v.session.precommit(old).and_then(|()| v.session.commit()) {
                Ok(()) => v.committed = false,
                Err(e2) => kept.push(format!("{}: {e2}", v.plan.old.name)),
            }
        }
        let err = SetError::new(src, e.into());
        if kept.is_empty() {
            return Err(err);
        }
        return Err(SetError::new(
            None,
            SetErrorKind::AfterCommit {
                what: format!(
                    "a commit failed and the old metadata could not be committed again ({}): those VGs keep the set's snapshots",
                    kept.join("; ")
                ),
                source: Box::new(err),
            },
        ));
    }
    Ok(())
}
