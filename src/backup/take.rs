//! Taking the backup's snapshots, reading their state, dropping them.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::{BackupError, SnapshotErrorKind};
use super::state::PlannedSnapshot;
use super::{BACKUP_TAG, BackupOptions, Source};
use crate::lvm::write::error::WriteError;
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::snapshot::{SnapError, SnapshotOptions, Wrapper, WrongStateKind};
use crate::targets::{DevRef, ExceptionStore, SnapshotStatus, Target, TargetStatus};
use crate::{DevNum, DeviceMapper, DmName, StatusFlush, Which};

/// A snapshot that exists.
#[derive(Clone, Debug)]
pub(crate) struct Taken {
    pub planned: PlannedSnapshot,
    /// The snapshot's dm device.
    pub dm_name: DmName,
    pub node: PathBuf,
    pub dev: DevNum,
}

/// The dm device of a planned snapshot.
pub(crate) fn dm_name_of(p: &PlannedSnapshot) -> Result<DmName, crate::kernel::id::IdError> {
    match p {
        PlannedSnapshot::Raw { snapshot, .. } => Ok(snapshot.clone()),
        PlannedSnapshot::Lvm { vg, snapshot, .. } => {
            DmName::new(&crate::lvm::plan::dm_name(vg, snapshot, None))
        }
    }
}

fn member_err(s: &Source, kind: impl Into<SnapshotErrorKind>) -> BackupError {
    BackupError::Snapshot {
        member: s.to_string(),
        kind: Box::new(kind.into()),
    }
}

/// Take every snapshot; returns them with how long the origins were suspended. On an
/// error the ones taken are dropped again.
pub(crate) fn take_all(
    dm: &DeviceMapper,
    sources: &[Source],
    planned: &[PlannedSnapshot],
    opts: &BackupOptions,
) -> Result<(Vec<Taken>, Duration), BackupError> {
    let mut taken = Vec::new();
    let mut frozen = Duration::ZERO;
    for (s, p) in sources.iter().zip(planned) {
        let t0 = Instant::now();
        let r = match (s, p) {
            (Source::Raw { name, cow }, PlannedSnapshot::Raw { snapshot, .. }) => {
                let w = Wrapper::open(dm, name)
                    .map_err(|e| member_err(s, e))?
                    .with_suspend_bound(opts.bound);
                w.take_snapshot(
                    &SnapshotOptions::new(cow.clone())
                        .transient(true)
                        .name(snapshot.clone()),
                )
                .map(|_| t0.elapsed())
                .map_err(|e| member_err(s, e))
            }
            (Source::Lvm { vg, lv, size }, PlannedSnapshot::Lvm { snapshot, .. }) => {
                let req = crate::lvm::write::snapshot::create::SnapshotRequest::new(*size);
                crate::lvm::write::snapshot::create::lvcreate_snapshot(
                    vg,
                    lv,
                    Some(snapshot),
                    &req,
                    &opts.write,
                )
                .map_err(|e| member_err(s, e))
                .and_then(|made| {
                    if !made.live {
                        // Not active: nothing to mount; undo.
                        let _ = drop_planned(dm, p, &opts.write);
                        return Err(member_err(
                            s,
                            WriteError::BadOption(format!(
                                "{vg}/{lv} is not active: a backup needs an active origin"
                            )),
                        ));
                    }
                    tag_lv(vg, snapshot, &opts.write).map_err(|e| member_err(s, e))?;
                    Ok(made.suspended_for.unwrap_or_default())
                })
            }
            _ => unreachable_pair(),
        };
        match r.and_then(|d| {
            let name = dm_name_of(p).map_err(|e| BackupError::Dm(e.into()))?;
            let info = dm.info(&name)?;
            Ok((d, name, info.dev))
        }) {
            Ok((d, dm_name, dev)) => {
                frozen += d;
                taken.push(Taken {
                    planned: p.clone(),
                    node: dm.node_path(&dm_name),
                    dm_name,
                    dev,
                });
            }
            Err(e) => {
                for t in taken.iter().rev() {
                    let _ = drop_planned(dm, &t.planned, &opts.write);
                }
                return Err(e);
            }
        }
    }
    Ok((taken, frozen))
}

fn unreachable_pair() -> Result<Duration, BackupError> {
    Err(BackupError::Snapshot {
        member: String::new(),
        kind: Box::new(SnapshotErrorKind::Lvm(WriteError::Internal(
            "source and plan do not match",
        ))),
    })
}

/// Add [`BACKUP_TAG`] to `vg/lv` (one metadata commit, outside any suspend).
fn tag_lv(vg: &str, lv: &str, opts: &WriteOptions) -> Result<(), WriteError> {
    let mut s = VgSession::open(vg, opts)?;
    let mut new = s.vg().clone();
    let Some(l) = new.lvs.iter_mut().find(|l| l.name == lv) else {
        return Err(WriteError::LvNotFound {
            vg: vg.into(),
            lv: lv.into(),
        });
    };
    if l.tags.iter().any(|t| t == BACKUP_TAG) {
        return Ok(());
    }
    l.tags.push(BACKUP_TAG.into());
    s.precommit(new)?;
    s.commit()
}

/// The snapshot's status now (`None`: no such device).
pub(crate) fn status_of(
    dm: &DeviceMapper,
    name: &DmName,
) -> Result<Option<SnapshotStatus>, crate::Error> {
    match dm.status(name, Which::Live, StatusFlush::NoFlush) {
        Ok(s) => Ok(Some(match s.first().map(|l| &l.status) {
            Some(TargetStatus::Snapshot(x)) => *x,
            _ => SnapshotStatus::Unknown,
        })),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drop a planned snapshot if it exists (after completing or undoing an interrupted
/// creation); retries for about 5 s while it is still open (a detached mount being
/// released). `Ok(false)`: there was none.
pub(crate) fn drop_planned(
    dm: &DeviceMapper,
    p: &PlannedSnapshot,
    write: &WriteOptions,
) -> Result<bool, BackupError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = drop_once(dm, p, write);
        match &r {
            Err(e) if is_busy(e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => return r,
        }
    }
}

fn is_busy(e: &BackupError) -> bool {
    match e {
        BackupError::Snapshot { kind, .. } => match &**kind {
            SnapshotErrorKind::Raw(SnapError::Dm(d)) => d.is_busy(),
            SnapshotErrorKind::Lvm(WriteError::LvOpen { .. }) => true,
            _ => false,
        },
        _ => false,
    }
}

fn drop_once(
    dm: &DeviceMapper,
    p: &PlannedSnapshot,
    write: &WriteOptions,
) -> Result<bool, BackupError> {
    let err = |member: String, kind: SnapshotErrorKind| BackupError::Snapshot {
        member,
        kind: Box::new(kind),
    };
    match p {
        PlannedSnapshot::Raw {
            origin,
            snapshot,
            cow,
        } => {
            let e = |k: SnapError| err(origin.to_string(), k.into());
            let w = match Wrapper::open(dm, origin) {
                Ok(w) => w,
                Err(SnapError::NoSuchDevice { .. }) => return Ok(false),
                Err(k) => return Err(e(k)),
            };
            w.recover().map_err(e)?;
            match w.snapshot(Some(snapshot)) {
                Ok(s) => {
                    let transient_cow = transient_cow_of(dm, snapshot);
                    s.discard().map_err(e)?;
                    if let Some(dev) = transient_cow {
                        wipe_cow(cow, dev);
                    }
                    Ok(true)
                }
                Err(SnapError::NoSnapshot { .. })
                | Err(SnapError::WrongState {
                    kind: WrongStateKind::NotASnapshot { .. },
                    ..
                }) => Ok(false),
                Err(k) => Err(e(k)),
            }
        }
        PlannedSnapshot::Lvm { vg, lv, snapshot } => {
            match crate::lvm::write::snapshot::remove::lvremove(vg, snapshot, false, write) {
                Ok(_) => Ok(true),
                Err(WriteError::LvNotFound { .. }) => Ok(false),
                Err(k) => Err(err(format!("{vg}/{lv}"), k.into())),
            }
        }
    }
}

/// The COW device of a live snapshot with a transient store.
fn transient_cow_of(dm: &DeviceMapper, snapshot: &DmName) -> Option<DevNum> {
    let t = dm.table(snapshot, Which::Live).ok()?;
    match t.into_lines().into_iter().next().map(|l| l.target) {
        Some(Target::Snapshot(s)) if s.store == ExceptionStore::Transient => match s.cow {
            DevRef::Num(n) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

/// Bytes wiped at the start of a transient COW after its snapshot is dropped: the
/// region [`crate::probe::identify`] reads (68 KiB) and the LUKS2 secondary-header
/// offsets (up to 4 MiB), so the copied origin chunks there (a filesystem superblock,
/// most often) do not make the device look like it holds data at the next backup.
const WIPE_HEAD: u64 = (4 << 20) + (64 << 10);
/// ... and at its end (md 0.90/1.0 superblocks, the backup GPT header).
const WIPE_TAIL: u64 = 128 << 10;

/// Zero the start and the end of the COW device `path`, if it is still device `dev`
/// (best effort: the snapshot is gone already).
fn wipe_cow(path: &std::path::Path, dev: DevNum) {
    use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return;
    };
    let Ok(meta) = f.metadata() else { return };
    if !meta.file_type().is_block_device() || DevNum::from_dev_t(meta.rdev()) != dev {
        return;
    }
    let Ok(size) = crate::io::ReadAt::size(&f) else {
        return;
    };
    let zeros = vec![0u8; 1 << 20];
    let zero = |from: u64, to: u64| {
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            if f.write_all_at(&zeros[..n], at).is_err() {
                return;
            }
            at += n as u64;
        }
    };
    zero(0, size.min(WIPE_HEAD));
    zero(
        size.saturating_sub(WIPE_TAIL).max(size.min(WIPE_HEAD)),
        size,
    );
    let _ = f.sync_all();
}
