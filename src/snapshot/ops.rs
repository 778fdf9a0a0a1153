//! Take, discard and roll back snapshots; follow a merge to its end.
//!
//! # Never left suspended
//! Every suspend happens inside a window guarded by a [`SuspendGuard`]: armed just before
//! the window's first suspend (after the `sync()` that keeps the freeze short), disarmed
//! after its last resume. The guard lives in the step's [`Undo`], so on an error path it
//! stays armed until the undo actions have run. If the process dies anywhere in the window
//! (SIGKILL, the OOM killer, a crash) the guardian resumes within milliseconds. If the window
//! outlasts the wrapper's bound ([`Wrapper::with_suspend_bound`], default
//! [`crate::DEFAULT_SUSPEND_BOUND`] = 10 s) it resumes anyway, and goes on ending any later
//! suspend of its plan until the workflow disarms; the workflow then leaves the state to
//! [`Wrapper::recover`] and fails with [`SnapError::SuspendBound`]. The guardian only acts
//! on a device that is suspended when it looks, in the plan's order.
//!
//! What a resume at each point of each window leaves, and how `recover` (which every
//! workflow runs first) ends it. The numbers are the fault-injection points.
//!
//! **take** (plan: while the origin is suspended, resume the snapshot, then the origin):
//! - 5, armed, origin not suspended yet: nothing is done. Resuming the staged snapshot now
//!   would activate it while the origin's writes bypass it. `recover` drops the staged
//!   tables and removes the half-built devices (undone).
//! - 6, origin frozen: the snapshot is resumed while the origin is frozen, then the origin
//!   swaps `snapshot-origin` in. That is the workflow's own order (completed).
//! - 7, snapshot resumed: resuming it again changes nothing; the origin resume completes.
//! - 8, both resumed: nothing is suspended. Inside the suspend ioctl itself nothing can
//!   happen: the kernel finishes or aborts the call before a dead process's socket closes,
//!   so the guardian sees one of the states above.
//!
//! **drop while other snapshots stay** (plan: resume the origin):
//! - 1, suspended: resumed; the snapshot still exists and is tracked (undone).
//! - 2, snapshot removed: the resume recomputes the chunk split (completed).
//! - 3, resumed: nothing.
//!
//! **drop of the last snapshot, finish of a merge** (plan: resume the origin):
//! - 1, plain table staged, not suspended: nothing; `recover` drops the staged table.
//! - 2, suspended: the resume makes the linear table live (completed). The snapshot and
//!   `-real` no longer back the origin, and `recover` removes them.
//! - 3, resumed: nothing; `recover` removes what is left.
//!
//! **rollback** (plan: [`GuardPlan::when_suspended_handover`]):
//! - 1, merge table staged: nothing is suspended; `recover` drops the staged table.
//! - 2, snapshot suspended, origin not: the kernel refuses to resume a handover source
//!   while a merge table is staged. So the guardian clears the staged table and resumes the
//!   snapshot (undone: it is intact and the rollback can run again).
//! - 3, both suspended: the origin's resume makes the handover and starts the merge, then
//!   the snapshot is resumed (completed; `recover` removes the emptied snapshot device).
//! - 4, origin resumed: the snapshot is still suspended until the workflow has checked
//!   the handover; the guardian resumes it (completed).
//! - A slow workflow can race the guardian between 2 and 3. If the guardian resumed the
//!   snapshot first, the kernel refuses the handover, and that refused resume has already
//!   made the merge table live on a still-suspended origin. The guardian then suspends the
//!   snapshot and resumes the origin again, which completes the handover. The workflow never
//!   removes the snapshot before it has seen the merge table live.
//!
//! **recover** guards its own window (finishing a suspended origin) with the same plans.
//! LVM activation (`lvm::activate`) never suspends a device that is in use: it creates,
//! loads and resumes new devices, so it needs no guard.
#![forbid(unsafe_code)]

use crate::RemoveMode;
use crate::StatusFlush;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::blockdev;
use super::error::{SnapError, SnapResult};
use super::fault::{pause, step};
use super::persist;
use super::record::{DeviceId, RECORD_LEN, Record, RecordState};
use super::state::State;
use super::{COW_SUFFIX, UUID_PREFIX, Wrapper, devnum, linear_table};
use crate::kernel::id::{DmName, DmUuid};
use crate::kernel::undo::{Undo, UndoAction, remove_retrying};
use crate::probe::{self, Found};
use crate::table::{Table, TableLine};
use crate::targets::{
    DevRef, ExceptionStore, Linear, Snapshot as SnapTarget, SnapshotOrigin, SnapshotStatus,
    SnapshotUsage, Target, TargetStatus,
};
use crate::units::{SECTOR_SIZE, Sectors};
use crate::{CreateOptions, DevId, DeviceMapper, GuardPlan, LoadOptions, SuspendOptions, Which};

/// What [`Wrapper::take_snapshot`] does when the COW device already holds something
/// recognisable (see [`crate::probe::identify`]): a filesystem, a partition table, an LVM2
/// PV, an md member, LUKS, swap, or a dm-snapshot store with exceptions.
///
/// ```
/// use devmapper::snapshot::{CowOverwrite, SnapshotOptions};
/// let opts = SnapshotOptions::new("/dev/sdc1");
/// assert_eq!(opts.overwrite, CowOverwrite::Refuse);
/// let opts = opts.overwrite(CowOverwrite::Force);
/// assert_eq!(opts.overwrite, CowOverwrite::Force);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CowOverwrite {
    /// Refuse with [`SnapError::CowHoldsData`] or [`SnapError::CowHoldsSnapshot`] before
    /// anything is written or suspended. An all-zero device, one with nothing recognisable,
    /// and a dm-snapshot store without exceptions (freshly initialised, or fully merged) are
    /// used.
    #[default]
    Refuse,
    /// Overwrite the device's start whatever it holds.
    Force,
}

/// How to take a snapshot.
#[derive(Debug, Clone)]
#[must_use]
pub struct SnapshotOptions {
    /// The COW device (its start is overwritten).
    pub cow: PathBuf,
    /// What to do when the COW device holds something recognisable (default: refuse).
    pub overwrite: CowOverwrite,
    /// Chunk size (default 8 sectors = 4 KiB, as LVM).
    pub chunk: Sectors,
    /// A transient store (nothing kept on the COW across a reboot; cannot be rolled back).
    pub transient: bool,
    /// Name of the snapshot device (default `<origin>-snap`).
    pub name: Option<DmName>,
}

impl SnapshotOptions {
    /// A persistent snapshot on `cow` with 4 KiB chunks.
    pub fn new(cow: impl Into<PathBuf>) -> Self {
        Self {
            cow: cow.into(),
            overwrite: CowOverwrite::Refuse,
            chunk: Sectors(8),
            transient: false,
            name: None,
        }
    }
    /// Set the policy for a COW device that holds something recognisable.
    pub fn overwrite(mut self, policy: CowOverwrite) -> Self {
        self.overwrite = policy;
        self
    }
    /// Set the chunk size.
    pub fn chunk(mut self, chunk: Sectors) -> Self {
        self.chunk = chunk;
        self
    }
    /// Use a transient store.
    pub fn transient(mut self, t: bool) -> Self {
        self.transient = t;
        self
    }
    /// Name the snapshot device.
    pub fn name(mut self, name: DmName) -> Self {
        self.name = Some(name);
        self
    }
}

/// Options of [`Snapshot::rollback`].
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct RollbackOptions {
    /// Merge even though the origin is open (mounted): its data changes underneath.
    pub force: bool,
}

/// An active snapshot of a [`Wrapper`]: discard it, or roll the origin back to it.
#[derive(Debug)]
pub struct Snapshot<'w, 'dm> {
    wrapper: &'w Wrapper<'dm>,
    name: DmName,
}

/// A rollback in progress: the origin is usable while the kernel merges.
#[derive(Debug)]
pub struct Merging<'w, 'dm> {
    wrapper: &'w Wrapper<'dm>,
}

/// Where a merge stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MergeState {
    /// Still copying: the usage of the merging store.
    Running(SnapshotUsage),
    /// All exceptions are merged; [`Merging::finish`] restores the plain table.
    Done,
    /// The kernel reported `Merge failed` (I/O error); the origin keeps working.
    Failed,
}

/// Refuse a COW device that holds something recognisable, unless `policy` forces it.
fn cow_content_check(f: &std::fs::File, path: &Path, policy: CowOverwrite) -> SnapResult<()> {
    if policy == CowOverwrite::Force {
        return Ok(());
    }
    blockdev::drop_cached(f);
    let found = probe::identify(f).map_err(|source| SnapError::CowProbe {
        path: path.to_owned(),
        source,
    })?;
    // A store without exceptions holds nothing beyond the origin: a crashed and undone
    // snapshot leaves one behind (the kernel initialises the store at load), so does a
    // finished rollback.
    let found: Vec<Found> = found
        .into_iter()
        .filter(|f| !matches!(f, Found::SnapshotStore { empty: true, .. }))
        .collect();
    match found.as_slice() {
        [] => Ok(()),
        [
            Found::SnapshotStore {
                chunk_sectors,
                valid,
                ..
            },
        ] => Err(SnapError::CowHoldsSnapshot {
            path: path.to_owned(),
            chunk_sectors: *chunk_sectors,
            valid: *valid,
        }),
        _ => Err(SnapError::CowHoldsData {
            path: path.to_owned(),
            found,
        }),
    }
}

/// What a persistent snapshot keeps on its COW device besides the store.
#[derive(Debug)]
struct Persist {
    /// Where the store starts.
    offset: Sectors,
    /// The store's length (whole chunks).
    sectors: Sectors,
    /// The origin's identity.
    ids: Vec<DeviceId>,
}

/// Refuse a COW device holding a dmsnap record (a snapshot that can be activated again)
/// or a damaged one.
fn record_check(f: &std::fs::File, path: &Path) -> SnapResult<()> {
    match persist::read_record(f) {
        Ok(None) => Ok(()),
        Ok(Some(Ok(record))) => Err(SnapError::CowHoldsRecord {
            path: path.to_owned(),
            record: Box::new(record),
        }),
        Ok(Some(Err(source))) => Err(SnapError::CowRecordDamaged {
            path: path.to_owned(),
            source,
        }),
        Err(source) => Err(SnapError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn chunk_check(chunk: Sectors, lbs_bytes: u64) -> SnapResult<()> {
    let bad = |reason: String| SnapError::BadChunk {
        sectors: chunk.0,
        reason,
    };
    if chunk.0 == 0 || !chunk.0.is_power_of_two() {
        return Err(bad("must be a power of two".to_owned()));
    }
    if chunk.0 * SECTOR_SIZE < lbs_bytes {
        return Err(bad(format!(
            "smaller than the devices' logical block size of {lbs_bytes} bytes"
        )));
    }
    if chunk.0 > (i32::MAX as u64) >> 9 {
        return Err(bad("larger than the kernel allows".to_owned()));
    }
    Ok(())
}

impl<'dm> Wrapper<'dm> {
    /// The snapshots that exist now.
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn snapshots(&self) -> SnapResult<Vec<Snapshot<'_, 'dm>>> {
        Ok(self
            .state()?
            .snapshots
            .into_iter()
            .filter(|s| matches!(s.live, Some(Target::Snapshot(_))))
            .map(|s| Snapshot {
                wrapper: self,
                name: s.name,
            })
            .collect())
    }

    /// The snapshot named `name`, or the only one when `name` is `None`.
    ///
    /// # Errors
    /// No snapshot, several and none named, or no snapshot of that name.
    pub fn snapshot(&self, name: Option<&DmName>) -> SnapResult<Snapshot<'_, 'dm>> {
        let mut snaps = self.snapshots()?;
        match name {
            Some(n) => {
                snaps
                    .into_iter()
                    .find(|s| &s.name == n)
                    .ok_or_else(|| SnapError::WrongState {
                        name: self.name.to_string(),
                        reason: format!("{n} is not a snapshot of {}", self.name),
                    })
            }
            None if snaps.len() == 1 => Ok(snaps.remove(0)),
            None if snaps.is_empty() => Err(SnapError::NoSnapshot {
                name: self.name.to_string(),
            }),
            None => Err(SnapError::Ambiguous {
                name: self.name.to_string(),
                snaps: snaps.iter().map(|s| s.name.to_string()).collect(),
            }),
        }
    }

    /// The merge in progress, if a rollback is running (or done but not finished).
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn merging(&self) -> SnapResult<Option<Merging<'_, 'dm>>> {
        let st = self.state()?;
        Ok(matches!(st.origin.live, Some(Target::SnapshotMerge(_)))
            .then_some(Merging { wrapper: self }))
    }

    /// Take a snapshot while the origin stays mounted and in use.
    ///
    /// Everything that can be prepared is prepared first (the `-real` device, the zeroed
    /// COW header, the snapshot device and both new tables); then the origin is frozen
    /// (filesystem sync and freeze, never `noflush`), the snapshot is resumed before the
    /// origin, and the origin is resumed. The origin is suspended for three ioctls.
    ///
    /// Taking a snapshot whose name already exists as an active snapshot of this origin
    /// returns it (so re-running after a crash completes).
    ///
    /// # Errors
    /// Refusals before any change: a merge is running, bad chunk size, COW missing, too
    /// small, in use, the same as the backing device, or holding something recognisable
    /// ([`SnapError::CowHoldsData`], [`SnapError::CowHoldsSnapshot`], unless
    /// [`CowOverwrite::Force`]), name taken. Failures during the
    /// sequence are undone.
    pub fn take_snapshot(&self, opts: &SnapshotOptions) -> SnapResult<Snapshot<'_, 'dm>> {
        self.recover()?;
        let st = self.state()?;
        let snap_name = match &opts.name {
            Some(n) => n.clone(),
            None => DmName::new(&format!("{}-snap", self.name))?,
        };
        if let Some(existing) = st.snapshots.iter().find(|s| s.name == snap_name)
            && matches!(existing.live, Some(Target::Snapshot(_)))
        {
            return Ok(Snapshot {
                wrapper: self,
                name: snap_name,
            });
        }
        if self.dm.exists(&snap_name)? {
            return Err(SnapError::NameTaken {
                name: snap_name.to_string(),
            });
        }
        match &st.origin.live {
            Some(Target::Linear(_)) | Some(Target::SnapshotOrigin(_)) => {}
            Some(Target::SnapshotMerge(_)) => {
                return Err(SnapError::WrongState {
                    name: self.name.to_string(),
                    reason: "a rollback is merging; wait for it to finish".to_owned(),
                });
            }
            _ => {
                return Err(SnapError::WrongState {
                    name: self.name.to_string(),
                    reason: "its table is not one dmsnap made".to_owned(),
                });
            }
        }
        let backing = st.backing().ok_or_else(|| SnapError::WrongState {
            name: self.name.to_string(),
            reason: "cannot find the backing device in its tables".to_owned(),
        })?;
        let len = st.origin.length;

        // Checks on the COW, before anything changes.
        let cow = blockdev::probe(&opts.cow)?;
        if cow.dev == backing {
            return Err(SnapError::BadDevice {
                path: opts.cow.clone(),
                reason: "the COW device cannot be the origin's own device".to_owned(),
            });
        }
        let lbs = blockdev::logical_block_size(cow.dev).max(blockdev::logical_block_size(backing));
        chunk_check(opts.chunk, lbs)?;
        let chunk_bytes = opts.chunk.0 * SECTOR_SIZE;
        // A persistent store goes after the dmsnap record, a whole number of chunks in.
        let store_offset = if opts.transient {
            Sectors(0)
        } else {
            Sectors(opts.chunk.0.max(RECORD_LEN as u64 / SECTOR_SIZE))
        };
        let min = store_offset.0 * SECTOR_SIZE
            + if opts.transient {
                chunk_bytes
            } else {
                3 * chunk_bytes
            };
        if cow.size < min {
            return Err(SnapError::CowTooSmall {
                path: opts.cow.clone(),
                size: cow.size,
                chunk: chunk_bytes,
                min,
            });
        }
        if !opts.transient {
            let max = crate::kernel::id::MAX_NAME_LEN - COW_SUFFIX.len();
            if snap_name.as_str().len() > max {
                return Err(SnapError::NameTooLong {
                    name: snap_name.to_string(),
                    max,
                });
            }
        }
        let cow_file = blockdev::open_exclusive(&opts.cow)?;
        // Nothing is written or suspended yet; the exclusive open keeps others off meanwhile.
        if opts.overwrite != CowOverwrite::Force {
            record_check(&cow_file, &opts.cow)?;
        }
        cow_content_check(&cow_file, &opts.cow, opts.overwrite)?;
        let persist = (!opts.transient).then(|| {
            let sectors = cow.size / SECTOR_SIZE - store_offset.0;
            // What identifies the origin after a reboot: the backing device's ids and the
            // uuids of what the origin holds (read through the origin itself, which has
            // the current content, not through a possibly stale cache of the backing device).
            let content = blockdev::node_of(st.origin.info.dev);
            Persist {
                offset: store_offset,
                sectors: Sectors(sectors / opts.chunk.0 * opts.chunk.0),
                ids: super::identity::identify(backing, content.as_deref())
                    .map(|i| i.ids)
                    .unwrap_or_default(),
            }
        });

        let mut undo = Undo::new(self.dm);
        let result = self.take_steps(
            &st,
            &opts.cow,
            cow_file,
            cow.dev,
            backing,
            len,
            opts,
            &snap_name,
            persist.as_ref(),
            &mut undo,
        );
        if result.is_ok() {
            undo.commit();
        }
        self.guarded(result, undo).map(|()| Snapshot {
            wrapper: self,
            name: snap_name,
        })
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; the steps share these facts"
    )]
    fn take_steps(
        &self,
        st: &State,
        cow_path: &Path,
        cow_file: std::fs::File,
        cow_dev: crate::DevNum,
        backing: crate::DevNum,
        len: Sectors,
        opts: &SnapshotOptions,
        snap_name: &DmName,
        persist: Option<&Persist>,
        undo: &mut Undo<'_>,
    ) -> SnapResult<()> {
        let dm = self.dm;
        // 1. The -real device: the backing device's mapping under a private name.
        let real_name = self.real_name()?;
        let real_dev = match &st.real {
            Some(r) => r.info.dev,
            None => {
                if dm.exists(&real_name)? {
                    return Err(SnapError::NameTaken {
                        name: real_name.to_string(),
                    });
                }
                let info =
                    dm.create(&real_name, CreateOptions::default().uuid(self.real_uuid()?))?;
                undo.push(UndoAction::Remove(real_name.clone()));
                dm.load(
                    &real_name,
                    &linear_table(backing, len),
                    LoadOptions::default(),
                )?;
                dm.resume(&real_name, SuspendOptions::default())?;
                info.dev
            }
        };
        step("snapshot", 1);
        // 2. A fresh exception store: zero the COW's first chunk (with a record: the
        // record block and the store's first chunk).
        let io = |source| SnapError::Io {
            path: cow_path.to_owned(),
            source,
        };
        match persist {
            None => blockdev::zero_start(&cow_file, cow_path, opts.chunk.0 * SECTOR_SIZE)?,
            Some(p) => {
                let zeros = vec![0u8; usize::try_from(opts.chunk.0 * SECTOR_SIZE).unwrap_or(4096)];
                persist::write_durable(&cow_file, &[0u8; RECORD_LEN], 0).map_err(io)?;
                persist::write_durable(&cow_file, &zeros, p.offset.0 * SECTOR_SIZE).map_err(io)?;
            }
        }
        // The COW must be closed before the kernel claims it exclusively at load.
        drop(cow_file);
        step("snapshot", 2);
        // 3. The snapshot device (with a record: over a `-cow` layer mapping the store),
        // and its table (the constructor writes the header).
        let n = uuid::Uuid::new_v4().simple().to_string();
        let n = &n[..8];
        let snap_uuid = DmUuid::new(&format!("{UUID_PREFIX}{}-snap-{n}", self.id))?;
        let store_dev = match persist {
            None => cow_dev,
            Some(p) => {
                let layer = DmName::new(&format!("{snap_name}{COW_SUFFIX}"))?;
                if dm.exists(&layer)? {
                    return Err(SnapError::NameTaken {
                        name: layer.to_string(),
                    });
                }
                let layer_uuid = DmUuid::new(&format!("{}{n}", self.cow_uuid_prefix()))?;
                let info = dm.create(&layer, CreateOptions::default().uuid(layer_uuid))?;
                undo.push(UndoAction::Remove(layer.clone()));
                let t = Table::from_lines(vec![TableLine::new(
                    Sectors(0),
                    p.sectors,
                    Linear::new(DevRef::Num(cow_dev), p.offset),
                )]);
                load_retrying_busy(dm, &layer, &t)?;
                dm.resume(&layer, SuspendOptions::default())?;
                info.dev
            }
        };
        dm.create(snap_name, CreateOptions::default().uuid(snap_uuid.clone()))?;
        undo.push(UndoAction::Remove(snap_name.clone()));
        step("snapshot", 3);
        let mut target =
            SnapTarget::persistent(DevRef::Num(real_dev), DevRef::Num(store_dev), opts.chunk);
        if opts.transient {
            target.store = ExceptionStore::Transient;
        }
        let snap_table = Table::from_lines(vec![TableLine::new(
            Sectors(0),
            len,
            Target::Snapshot(target),
        )]);
        load_retrying_busy(dm, snap_name, &snap_table)?;
        step("snapshot", 4);
        // 4. The origin's new table, staged in its inactive slot.
        if matches!(st.origin.live, Some(Target::Linear(_))) {
            let t = Table::from_lines(vec![TableLine::new(
                Sectors(0),
                len,
                SnapshotOrigin::new(DevRef::Num(real_dev)),
            )]);
            dm.load(&self.name, &t, LoadOptions::default())?;
            undo.push(UndoAction::ClearInactive(self.name.clone()));
        }
        // The record, last before the window: should anything below fail, recover()
        // removes the `-cow` layer and zeroes the record with it.
        if let Some(p) = persist {
            let rec = Record {
                state: RecordState::Snapshot,
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                chunk_sectors: u32::try_from(opts.chunk.0).unwrap_or(u32::MAX),
                store_offset: p.offset,
                store_sectors: p.sectors,
                origin_sectors: len.0,
                wrapper_name: self.name.clone(),
                wrapper_uuid: self.uuid()?,
                snapshot_name: snap_name.clone(),
                snapshot_uuid: snap_uuid,
                origin_ids: p.ids.clone(),
            };
            let block = rec.encode().map_err(|e| SnapError::BadDevice {
                path: cow_path.to_owned(),
                reason: e.to_string(),
            })?;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(cow_path)
                .map_err(io)?;
            persist::write_durable(&f, &block, 0).map_err(io)?;
        }
        step("snapshot", 5);
        // 5. The short window: freeze, activate the snapshot, then the origin. Guarded: if
        // we die or stall, the guardian does the same two resumes, in the same order, and
        // only while the origin is frozen.
        nix::unistd::sync();
        undo.arm(
            &GuardPlan::new()
                .when_suspended(&self.name, [DevId::from(snap_name), (&self.name).into()]),
            self.suspend_bound,
        )?;
        pause("snapshot", 5);
        dm.suspend(&self.name, SuspendOptions::default())?;
        undo.push(UndoAction::Resume(self.name.clone()));
        step("snapshot", 6);
        pause("snapshot", 6);
        dm.resume(snap_name, SuspendOptions::default())?;
        step("snapshot", 7);
        pause("snapshot", 7);
        dm.resume(&self.name, SuspendOptions::default())?;
        step("snapshot", 8);
        pause("snapshot", 8);
        if undo.disarm() {
            return Err(self.bound_error());
        }
        Ok(())
    }
}

impl<'w, 'dm> Snapshot<'w, 'dm> {
    /// The snapshot device's name.
    pub fn name(&self) -> &DmName {
        &self.name
    }

    /// `/dev/mapper/<snapshot>`: the frozen view (mount it read-only for a backup).
    pub fn node(&self) -> PathBuf {
        self.wrapper.dm.node_path(&self.name)
    }

    /// Usage and state as the kernel reports it.
    ///
    /// # Errors
    /// A device-mapper call fails.
    pub fn status(&self) -> SnapResult<SnapshotStatus> {
        let s = self
            .wrapper
            .dm
            .status(&self.name, Which::Live, StatusFlush::NoFlush)?;
        Ok(match s.first().map(|l| &l.status) {
            Some(TargetStatus::Snapshot(x)) => *x,
            _ => SnapshotStatus::Unknown,
        })
    }

    /// Discard the snapshot: the origin goes back to its plain table (when this was the
    /// last snapshot) and keeps all its data. The store's header on the COW device is then
    /// cleared (best effort), so the device can take a new snapshot without
    /// [`CowOverwrite::Force`].
    ///
    /// # Errors
    /// `EBUSY` while the snapshot is open (mounted); nothing changes then.
    pub fn discard(self) -> SnapResult<()> {
        let w = self.wrapper;
        let dm = w.dm;
        let snap_info = dm.info(&self.name)?;
        snapshot_not_open(dm, &self.name, &snap_info)?;
        let st = w.state()?;
        let others = st.snapshots.iter().filter(|s| s.name != self.name).count();
        let cow = st
            .snapshots
            .iter()
            .find(|s| s.name == self.name)
            .and_then(|s| s.live.as_ref())
            .and_then(cow_of);
        let mut undo = Undo::new(dm);
        let r = (|| -> SnapResult<()> {
            if others == 0 {
                restore_plain(w, "drop", Some(&self.name))?;
            } else {
                // Other snapshots stay: remove this one with the origin suspended, so the
                // origin's chunk split is recomputed on resume. Guarded: a resume at any
                // point leaves either both snapshots (remove not done) or the others.
                undo.arm(
                    &GuardPlan::new().when_suspended(&w.name, [(&w.name).into()]),
                    w.suspend_bound,
                )?;
                dm.suspend(
                    &w.name,
                    SuspendOptions {
                        noflush: false,
                        skip_lockfs: true,
                    },
                )?;
                undo.push(UndoAction::Resume(w.name.clone()));
                step("drop", 1);
                pause("drop", 1);
                dm.remove(&self.name, RemoveMode::Now)?;
                step("drop", 2);
                pause("drop", 2);
                dm.resume(&w.name, SuspendOptions::default())?;
                pause("drop", 3);
                let fired = undo.disarm();
                undo.commit();
                step("drop", 3);
                if fired {
                    return Err(w.bound_error());
                }
                persist::remove_stale_layers(w, &w.state()?)?;
            }
            Ok(())
        })();
        let r = w.guarded(r, undo);
        if r.is_ok()
            && let Some(cow) = cow
        {
            blockdev::forget_store(cow);
        }
        r
    }

    /// Roll the origin back to this snapshot: merge the snapshot into it. The origin is
    /// usable at once (reads see the snapshot's content) while the kernel copies in the
    /// background; follow it with [`Merging::wait`].
    ///
    /// # Errors
    /// Refused while the origin is open (unless forced), while the snapshot is open, when
    /// other snapshots exist, or when the snapshot is invalid, overflowed or transient.
    pub fn rollback(self, opts: RollbackOptions) -> SnapResult<Merging<'w, 'dm>> {
        let w = self.wrapper;
        let dm = w.dm;
        let st = w.state()?;
        if st.origin.info.open_count > 0 && !opts.force {
            let mounts = blockdev::mounts_of(st.origin.info.dev);
            // A transient opener (a udev/blkid probe, a just-forked child that has not
            // exec'd yet) goes away by itself; a mount does not.
            let open_count = if mounts.is_empty() {
                wait_closed(dm, &w.name, Duration::from_secs(5))?
            } else {
                st.origin.info.open_count
            };
            if open_count > 0 {
                return Err(SnapError::OriginOpen {
                    name: w.name.to_string(),
                    open_count,
                    mounts,
                });
            }
        }
        let others: Vec<String> = st
            .snapshots
            .iter()
            .filter(|s| s.name != self.name)
            .map(|s| s.name.to_string())
            .collect();
        if !others.is_empty() {
            return Err(SnapError::WrongState {
                name: w.name.to_string(),
                reason: format!(
                    "other snapshots exist ({}); drop them before a rollback",
                    others.join(", ")
                ),
            });
        }
        let me = st
            .snapshots
            .iter()
            .find(|s| s.name == self.name)
            .ok_or_else(|| SnapError::NoSnapshot {
                name: w.name.to_string(),
            })?;
        snapshot_not_open(dm, &self.name, &me.info)?;
        let Some(Target::Snapshot(t)) = &me.live else {
            return Err(SnapError::NoSnapshot {
                name: w.name.to_string(),
            });
        };
        if t.store == ExceptionStore::Transient {
            return Err(SnapError::WrongState {
                name: self.name.to_string(),
                reason:
                    "a transient snapshot cannot be merged (the kernel keeps no store to merge)"
                        .to_owned(),
            });
        }
        match self.status()? {
            SnapshotStatus::Active(_) => {}
            other => {
                return Err(SnapError::WrongState {
                    name: self.name.to_string(),
                    reason: format!("the snapshot is {other:?} and cannot be merged; drop it"),
                });
            }
        }
        // A snapshot with a record: mark it merging first, so that a reboot resumes it.
        let recorded = devnum(&t.cow)
            .and_then(|c| st.cow_layer(c))
            .and_then(persist::layer_target)
            .zip(me.info.uuid.clone());
        if let Some(((raw, _), u)) = &recorded {
            persist::set_state(*raw, u, RecordState::Merging)?;
        }
        let mut started = false;
        let mut merge = t.clone();
        merge.store = ExceptionStore::Persistent;
        let table = Table::from_lines(vec![TableLine::new(
            Sectors(0),
            st.origin.length,
            Target::SnapshotMerge(merge),
        )]);
        let mut undo = Undo::new(dm);
        let r = (|| -> SnapResult<()> {
            dm.load(&w.name, &table, LoadOptions::default())?;
            undo.push(UndoAction::ClearInactive(w.name.clone()));
            step("rollback", 1);
            // Guarded (see `GuardPlan::when_suspended_handover`): with the origin suspended
            // the guardian completes the handover (the rollback goes on) and resumes the
            // snapshot; with only the snapshot suspended it drops the staged merge table
            // and resumes the snapshot (the rollback is undone).
            undo.arm(
                &GuardPlan::new().when_suspended_handover(&w.name, &self.name),
                w.suspend_bound,
            )?;
            pause("rollback", 1);
            dm.suspend(&self.name, SuspendOptions::default())?;
            undo.push(UndoAction::Resume(self.name.clone()));
            step("rollback", 2);
            pause("rollback", 2);
            dm.suspend(&w.name, SuspendOptions::default())?;
            undo.push(UndoAction::Resume(w.name.clone()));
            step("rollback", 3);
            pause("rollback", 3);
            // Resuming the origin hands the exceptions over and starts the merge.
            dm.resume(&w.name, SuspendOptions::default())?;
            pause("rollback", 4);
            // Only a live merge table proves the handover: a guardian that fired early may
            // have resumed the snapshot first, so the kernel refused the handover and the
            // staged table was cleared. Removing the snapshot then would lose it.
            if !matches!(
                dm.table(&w.name, Which::Live)?
                    .lines()
                    .first()
                    .map(|l| &l.target),
                Some(Target::SnapshotMerge(_))
            ) {
                return Err(SnapError::WrongState {
                    name: w.name.to_string(),
                    reason: "the merge did not start (the origin kept its table)".to_owned(),
                });
            }
            // Suspended for the handover and now unused: resume it so nothing that opens
            // it blocks (it answers with I/O errors until it is removed).
            let _ = dm.resume(&self.name, SuspendOptions::default());
            let fired = undo.disarm();
            undo.commit();
            started = true;
            step("rollback", 4);
            if fired {
                return Err(w.bound_error());
            }
            remove_retrying(dm, &self.name)?;
            step("rollback", 5);
            Ok(())
        })();
        let r = w.guarded(r, undo);
        if r.is_err()
            && !started
            && let Some(((raw, _), u)) = &recorded
        {
            let _ = persist::set_state(*raw, u, RecordState::Snapshot);
        }
        r.map(|()| Merging { wrapper: w })
    }
}

impl Merging<'_, '_> {
    /// Where the merge stands.
    ///
    /// # Errors
    /// A device-mapper call fails, or the origin is no longer merging.
    pub fn state(&self) -> SnapResult<MergeState> {
        let w = self.wrapper;
        let s = w.dm.status(&w.name, Which::Live, StatusFlush::NoFlush)?;
        match s.first().map(|l| &l.status) {
            Some(TargetStatus::SnapshotMerge(SnapshotStatus::Active(u))) => {
                Ok(if u.allocated == u.metadata {
                    MergeState::Done
                } else {
                    MergeState::Running(*u)
                })
            }
            Some(TargetStatus::SnapshotMerge(SnapshotStatus::MergeFailed)) => {
                Ok(MergeState::Failed)
            }
            _ => Err(SnapError::WrongState {
                name: w.name.to_string(),
                reason: "not merging".to_owned(),
            }),
        }
    }

    /// Poll until the merge is done (calling `progress` with the usage each time), then
    /// [`finish`](Self::finish). `timeout` bounds the wait.
    ///
    /// # Errors
    /// The merge failed, the timeout passed (the merge goes on), or a call fails.
    pub fn wait(
        self,
        timeout: Option<Duration>,
        mut progress: impl FnMut(&SnapshotUsage),
    ) -> SnapResult<()> {
        let start = Instant::now();
        loop {
            match self.state()? {
                MergeState::Done => return self.finish(),
                MergeState::Running(u) => progress(&u),
                MergeState::Failed => {
                    return Err(SnapError::WrongState {
                        name: self.wrapper.name.to_string(),
                        reason:
                            "the kernel reports Merge failed (I/O error); the origin keeps working"
                                .to_owned(),
                    });
                }
            }
            if timeout.is_some_and(|t| start.elapsed() > t) {
                return Err(SnapError::WrongState {
                    name: self.wrapper.name.to_string(),
                    reason: "timed out waiting for the merge; it goes on in the kernel".to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After the merge is done: put the plain linear table back and remove `-real`.
    ///
    /// # Errors
    /// The merge is not done yet, or a call fails (undone).
    pub fn finish(self) -> SnapResult<()> {
        let w = self.wrapper;
        if self.state()? != MergeState::Done {
            return Err(SnapError::WrongState {
                name: w.name.to_string(),
                reason: "the merge is still running".to_owned(),
            });
        }
        w.guarded(finish_merge(w), Undo::new(w.dm))
    }
}

pub(crate) fn finish_merge(w: &Wrapper<'_>) -> SnapResult<()> {
    restore_plain(w, "finish", None)
}

/// Put the origin's plain linear table back (staged, then a short suspend/resume), then
/// remove `also_remove` (the snapshot being dropped) and `-real`. Steps 1-3 are the table
/// swap, then one step per removal, for fault injection under `op`.
fn restore_plain(w: &Wrapper<'_>, op: &str, also_remove: Option<&DmName>) -> SnapResult<()> {
    let dm = w.dm;
    let st = w.state()?;
    let backing = st.backing().ok_or_else(|| SnapError::WrongState {
        name: w.name.to_string(),
        reason: "cannot find the backing device".to_owned(),
    })?;
    let mut undo = Undo::new(dm);
    dm.load(
        &w.name,
        &linear_table(backing, st.origin.length),
        LoadOptions::default(),
    )?;
    undo.push(UndoAction::ClearInactive(w.name.clone()));
    step(op, 1);
    // Guarded: a resume at any point swaps the plain table in (the step completes; the
    // snapshots left behind are no longer tracked, and recover removes them).
    undo.arm(
        &GuardPlan::new().when_suspended(&w.name, [(&w.name).into()]),
        w.suspend_bound,
    )?;
    pause(op, 1);
    dm.suspend(
        &w.name,
        SuspendOptions {
            noflush: false,
            skip_lockfs: true,
        },
    )?;
    undo.push(UndoAction::Resume(w.name.clone()));
    step(op, 2);
    pause(op, 2);
    dm.resume(&w.name, SuspendOptions::default())?;
    pause(op, 3);
    let fired = undo.disarm();
    undo.commit();
    step(op, 3);
    if fired {
        return Err(w.bound_error());
    }
    let mut k = 4;
    if let Some(n) = also_remove {
        remove_retrying(dm, n)?;
        step(op, k);
        k += 1;
    }
    remove_retrying(dm, &w.real_name()?)?;
    step(op, k);
    persist::remove_stale_layers(w, &w.state()?)?;
    Ok(())
}

fn mounts_suffix(dev: crate::DevNum) -> String {
    let m = blockdev::mounts_of(dev);
    if m.is_empty() {
        String::new()
    } else {
        format!(" (mounted at {})", m.join(", "))
    }
}

/// Refuse when the snapshot device is open: at once when it is mounted; otherwise after
/// giving a transient opener (a probe, a forked child that has not exec'd) five seconds.
fn snapshot_not_open(dm: &DeviceMapper, name: &DmName, info: &crate::DeviceInfo) -> SnapResult<()> {
    if info.open_count == 0 {
        return Ok(());
    }
    let mounted = !blockdev::mounts_of(info.dev).is_empty();
    let n = if mounted {
        info.open_count
    } else {
        wait_closed(dm, name, Duration::from_secs(5))?
    };
    if n == 0 {
        return Ok(());
    }
    Err(SnapError::WrongState {
        name: name.to_string(),
        reason: format!(
            "the snapshot is open {n} time(s){}; unmount it first",
            mounts_suffix(info.dev)
        ),
    })
}

/// Poll a device's open count for up to `limit`; the last count seen.
fn wait_closed(dm: &DeviceMapper, name: &DmName, limit: Duration) -> SnapResult<i32> {
    let start = Instant::now();
    loop {
        let n = dm.info(name)?.open_count;
        if n == 0 || start.elapsed() >= limit {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Load a table whose devices we just released: a process forked by another thread of
/// this program can hold a copy of our exclusive descriptor until it execs, so the kernel's
/// exclusive claim may fail with `EBUSY` for a moment. Retry briefly.
fn load_retrying_busy(dm: &DeviceMapper, name: &DmName, table: &Table) -> SnapResult<()> {
    let mut tries = 0;
    loop {
        match dm.load(name, table, LoadOptions::default()) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_busy() && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Wrapper<'_> {
    /// The error of a workflow whose guardian fired (recovery not run yet).
    pub(crate) fn bound_error(&self) -> SnapError {
        SnapError::SuspendBound {
            name: self.name.to_string(),
            bound: self.suspend_bound,
            recovery: Vec::new(),
        }
    }

    /// End a guarded workflow: run `undo` (guardian still armed), disarm. When the
    /// guardian fired (here or in a nested window), the state is no longer what the
    /// workflow planned: hand it to [`Wrapper::recover`], which completes or undoes the
    /// step from the kernel's state, and report [`SnapError::SuspendBound`].
    pub(crate) fn guarded<T>(&self, r: SnapResult<T>, mut undo: Undo<'_>) -> SnapResult<T> {
        if undo.check_fired() {
            // The guardian acted: our undo list no longer describes the state.
            undo.commit();
        }
        let fired = undo.finish();
        if !fired && !matches!(r, Err(SnapError::SuspendBound { .. })) {
            return r;
        }
        let recovery = match self.recover() {
            Ok(done) => done,
            Err(e) => vec![format!("recovery failed: {e}")],
        };
        Err(SnapError::SuspendBound {
            name: self.name.to_string(),
            bound: self.suspend_bound,
            recovery,
        })
    }
}

/// The COW device of a snapshot or snapshot-merge target.
pub(crate) fn cow_of(t: &Target) -> Option<crate::DevNum> {
    match t {
        Target::Snapshot(s) | Target::SnapshotMerge(s) => devnum(&s.cow),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::cow::Header;

    fn cow(writes: &[(u64, &[u8])]) -> (tempfile::NamedTempFile, std::fs::File) {
        let t = tempfile::NamedTempFile::new().unwrap();
        t.as_file().set_len(4 << 20).unwrap();
        for (at, data) in writes {
            t.as_file().write_all_at(data, *at).unwrap();
        }
        let f = t.reopen().unwrap();
        (t, f)
    }

    #[test]
    fn cow_content_policy() {
        let check = |writes: &[(u64, &[u8])], policy| {
            let (t, f) = cow(writes);
            cow_content_check(&f, t.path(), policy)
                .err()
                .map(|e| (e.to_string(), e))
        };
        // Zeros and unrecognised bytes are used.
        assert!(check(&[], CowOverwrite::Refuse).is_none());
        assert!(check(&[(0, b"just some bytes")], CowOverwrite::Refuse).is_none());
        // A filesystem is refused, naming it and the device; forced, it is not.
        let ext4: &[(u64, &[u8])] = &[(1024 + 0x38, &[0x53, 0xEF]), (1024 + 0x60, &[0x40])];
        match check(ext4, CowOverwrite::Refuse) {
            Some((msg, SnapError::CowHoldsData { path, found })) => {
                assert!(matches!(
                    &found[..],
                    [Found::Filesystem {
                        kind: probe::FsKind::Ext4,
                        ..
                    }]
                ));
                assert!(msg.contains(path.to_str().unwrap()), "{msg}");
                assert!(msg.contains("holds an ext4 filesystem"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(check(ext4, CowOverwrite::Force).is_none());
        // A store with an exception: its own error; an empty store is used.
        let header = Header::new(8).to_bytes();
        let entry = [[5u8; 8], 2u64.to_le_bytes()].concat();
        match check(&[(0, &header), (4096, &entry)], CowOverwrite::Refuse) {
            Some((
                msg,
                SnapError::CowHoldsSnapshot {
                    chunk_sectors: 8,
                    valid: true,
                    ..
                },
            )) => {
                assert!(msg.contains("discards that snapshot"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(check(&[(0, &header)], CowOverwrite::Refuse).is_none());
        // A store and something else: everything is named.
        match check(
            &[(0, &header), (4096, &entry), (4086, b"SWAPSPACE2")],
            CowOverwrite::Refuse,
        ) {
            Some((msg, SnapError::CowHoldsData { found, .. })) => {
                assert_eq!(found.len(), 2, "{found:?}");
                assert!(msg.contains("dm-snapshot") && msg.contains("swap"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}
