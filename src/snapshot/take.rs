//! Taking a snapshot while the origin stays mounted: checks on the COW device, then the
//! steps and the short suspend window.
#![forbid(unsafe_code)]

use std::path::Path;

use super::blockdev;
use super::error::{BadChunkKind, BadDeviceKind, SnapError, SnapResult, WrongStateKind};
use super::fault::step;
use super::persist;
use super::record::{DeviceId, RECORD_LEN, Record, RecordState};
use super::retry::load_retrying_busy;
use super::state::State;
use super::{COW_SUFFIX, UUID_PREFIX, Wrapper, linear_table};
use super::{CowOverwrite, Snapshot, SnapshotOptions};
use crate::kernel::id::{DmName, DmUuid};
use crate::kernel::undo::{Undo, UndoAction};
use crate::probe::{self, Found};
use crate::snapshot_set::window::{Family, Frozen, WindowError, freeze};
use crate::table::{Table, TableLine};
use crate::targets::{
    DevRef, ExceptionStore, Linear, Snapshot as SnapTarget, SnapshotOrigin, Target,
};
use crate::units::{SECTOR_SIZE, Sectors};
use crate::{CreateOptions, LoadOptions, SuspendOptions};

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
    let bad = |kind| SnapError::BadChunk {
        sectors: chunk.0,
        kind,
    };
    if chunk.0 == 0 || !chunk.0.is_power_of_two() {
        return Err(bad(BadChunkKind::NotPowerOfTwo));
    }
    if chunk.0 > (i32::MAX as u64) >> 9 {
        return Err(bad(BadChunkKind::TooLarge));
    }
    if chunk.0 * SECTOR_SIZE < lbs_bytes {
        return Err(bad(BadChunkKind::BelowBlockSize {
            block_bytes: lbs_bytes,
        }));
    }
    Ok(())
}

/// What [`Wrapper::check_take`] found: the snapshot exists already, or everything the
/// steps need, checked (nothing changed yet; the COW is held open exclusively).
#[derive(Debug)]
pub(crate) enum Checked {
    /// An active snapshot of this name exists.
    Existing(DmName),
    /// A new snapshot can be taken.
    New(Box<TakePlan>),
}

/// A checked snapshot, ready for [`Wrapper::prepare_take`].
#[derive(Debug)]
pub(crate) struct TakePlan {
    st: State,
    cow_path: std::path::PathBuf,
    cow_file: crate::io::Input,
    cow_dev: crate::DevNum,
    backing: crate::DevNum,
    len: Sectors,
    opts: SnapshotOptions,
    /// The new snapshot device's name.
    pub(crate) snap_name: DmName,
    /// The COW device's size.
    pub(crate) cow_sectors: Sectors,
    persist: Option<Persist>,
}

impl TakePlan {
    /// The COW device.
    pub(crate) fn cow_dev(&self) -> crate::DevNum {
        self.cow_dev
    }
    /// The origin's device.
    pub(crate) fn origin_dev(&self) -> crate::DevNum {
        self.st.origin.info.dev
    }
}

impl<'dm> Wrapper<'dm> {
    /// Take a snapshot while the origin stays mounted and in use.
    ///
    /// Everything that can be prepared is prepared first (the `-real` device, the zeroed
    /// COW header, the snapshot device and both new tables); then the origin is frozen
    /// (filesystem sync and freeze, never `noflush`), the snapshot is resumed before the
    /// origin, and the origin is resumed. The origin is suspended for three ioctls.
    /// This is a [`SnapshotSet`](crate::snapshot_set::SnapshotSet) of one: the same
    /// checks, steps and window.
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
        let plan = match self.check_take(opts)? {
            Checked::Existing(name) => {
                return Ok(Snapshot {
                    wrapper: self,
                    name,
                });
            }
            Checked::New(plan) => plan,
        };
        let snap_name = plan.snap_name.clone();
        let mut undo = Undo::new(self.dm);
        let result = (|| -> SnapResult<()> {
            let frozen = self.prepare_take(*plan, &mut undo)?;
            let thawed = freeze::<std::convert::Infallible>(
                self.dm,
                &mut undo,
                &[frozen],
                self.suspend_bound,
                None,
            )
            .map_err(|e| match e {
                WindowError::Guard(e)
                | WindowError::Suspend(_, e)
                | WindowError::Resume { source: e, .. } => SnapError::from(*e),
                WindowError::FiredBeforeCommit => self.bound_error(),
                WindowError::Commit(never) => match never {},
            })?;
            if thawed.fired {
                return Err(self.bound_error());
            }
            Ok(())
        })();
        if result.is_ok() {
            undo.commit();
        }
        self.guarded(result, undo).map(|()| Snapshot {
            wrapper: self,
            name: snap_name,
        })
    }

    /// Everything [`Wrapper::take_snapshot`] checks before it changes anything (after
    /// [`Wrapper::recover`], which completes or undoes an interrupted workflow).
    pub(crate) fn check_take(&self, opts: &SnapshotOptions) -> SnapResult<Checked> {
        self.recover()?;
        let st = self.state()?;
        let snap_name = match &opts.name {
            Some(n) => n.clone(),
            None => DmName::new(&format!("{}-snap", self.name))?,
        };
        if let Some(existing) = st.snapshots.iter().find(|s| s.name == snap_name)
            && matches!(existing.live, Some(Target::Snapshot(_)))
        {
            return Ok(Checked::Existing(snap_name));
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
                    kind: WrongStateKind::MergeRunning,
                });
            }
            _ => {
                return Err(SnapError::WrongState {
                    name: self.name.to_string(),
                    kind: WrongStateKind::ForeignTable,
                });
            }
        }
        let backing = st.backing().ok_or_else(|| SnapError::WrongState {
            name: self.name.to_string(),
            kind: WrongStateKind::NoBacking,
        })?;
        let len = st.origin.length;

        // Checks on the COW, before anything changes.
        let cow = blockdev::probe(&opts.cow)?;
        if cow.dev == backing {
            return Err(SnapError::BadDevice {
                path: opts.cow.clone(),
                kind: BadDeviceKind::CowIsOrigin,
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
            record_check(cow_file.file(), &opts.cow)?;
        }
        cow_content_check(cow_file.file(), &opts.cow, opts.overwrite)?;
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
        Ok(Checked::New(Box::new(TakePlan {
            st,
            cow_path: opts.cow.clone(),
            cow_file,
            cow_dev: cow.dev,
            backing,
            len,
            opts: opts.clone(),
            snap_name,
            cow_sectors: Sectors(cow.size / SECTOR_SIZE),
            persist,
        })))
    }

    /// Steps 1-5 of a checked snapshot: everything before the window, recorded in `undo`;
    /// what the window then suspends and resumes.
    pub(crate) fn prepare_take(&self, plan: TakePlan, undo: &mut Undo<'_>) -> SnapResult<Frozen> {
        let TakePlan {
            st,
            cow_path,
            cow_file,
            cow_dev,
            backing,
            len,
            opts,
            snap_name,
            persist,
            ..
        } = plan;
        let cow_path = cow_path.as_path();
        let persist = persist.as_ref();
        let opts = &opts;
        let snap_name = &snap_name;
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
            None => blockdev::zero_start(cow_file.file(), cow_path, opts.chunk.0 * SECTOR_SIZE)?,
            Some(p) => {
                let zeros = vec![0u8; usize::try_from(opts.chunk.0 * SECTOR_SIZE).unwrap_or(4096)];
                persist::write_durable(cow_file.file(), &[0u8; RECORD_LEN], 0).map_err(io)?;
                persist::write_durable(cow_file.file(), &zeros, p.offset.0 * SECTOR_SIZE)
                    .map_err(io)?;
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
                kind: e.into(),
            })?;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(cow_path)
                .map_err(io)?;
            persist::write_durable(&f, &block, 0).map_err(io)?;
        }
        step("snapshot", 5);
        Ok(Frozen {
            family: Family::Raw,
            origin: self.name.clone(),
            snapshot: snap_name.clone(),
            others: Vec::new(),
            level: 0,
        })
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
