//! Taking the backup's snapshots, reading their state, dropping them.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::{BackupError, SnapshotErrorKind};
use super::state::PlannedSnapshot;
use super::{BACKUP_TAG, BackupOptions, Source};
use crate::lvm::write::error::WriteError;
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::lvm::write::snapshot::create::SnapshotRequest;
use crate::snapshot::{SnapError, SnapshotOptions, Wrapper, WrongStateKind};
use crate::snapshot_set::{SetOptions, SnapshotSet};
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

/// What [`take_all`] made.
pub(crate) struct TakenAll {
    pub taken: Vec<Taken>,
    pub suspended_for: Duration,
    pub notices: Vec<String>,
    pub warnings: Vec<String>,
}

/// Take every snapshot in one freeze ([`SnapshotSet::take`]), then tag the LVM ones
/// (one commit per VG, after the freeze); returns them in the order of `sources`, how
/// long the origins were suspended, and the set's notices and warnings. On an error the
/// caller drops whatever of `planned` exists.
pub(crate) fn take_all(
    dm: &DeviceMapper,
    sources: &[Source],
    planned: &[PlannedSnapshot],
    opts: &BackupOptions,
) -> Result<TakenAll, BackupError> {
    let mut set = SnapshotSet::new();
    for (s, p) in sources.iter().zip(planned) {
        match (s, p) {
            (Source::Raw { name, cow }, PlannedSnapshot::Raw { snapshot, .. }) => {
                set.raw(
                    name.clone(),
                    SnapshotOptions::new(cow.clone())
                        .transient(true)
                        .name(snapshot.clone()),
                );
            }
            (Source::Lvm { vg, lv, size }, PlannedSnapshot::Lvm { snapshot, .. }) => {
                set.lvm(vg, lv, Some(snapshot), SnapshotRequest::new(*size));
            }
            _ => {
                return Err(BackupError::Snapshot {
                    member: s.to_string(),
                    kind: Box::new(SnapshotErrorKind::Lvm(WriteError::Internal(
                        "source and plan do not match",
                    ))),
                });
            }
        }
    }
    let set_opts = SetOptions::new(opts.write.command.clone())
        .bound(opts.bound)
        .write(opts.write.clone());
    let made = set.take(dm, &set_opts).map_err(|e| BackupError::Snapshot {
        member: e
            .member
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        kind: Box::new(SnapshotErrorKind::Set(e)),
    })?;
    let mut taken = Vec::new();
    let mut tags: Vec<(&str, Vec<&str>)> = Vec::new();
    for (s, p) in sources.iter().zip(planned) {
        let m = made
            .members
            .iter()
            .find(|m| m.source.to_string() == s.to_string())
            .ok_or_else(|| BackupError::Snapshot {
                member: s.to_string(),
                kind: Box::new(SnapshotErrorKind::Lvm(WriteError::Internal(
                    "the set did not report this member",
                ))),
            })?;
        if let PlannedSnapshot::Lvm { vg, lv, snapshot } = p {
            if !m.live {
                return Err(BackupError::Snapshot {
                    member: s.to_string(),
                    kind: Box::new(SnapshotErrorKind::Lvm(WriteError::BadOption(format!(
                        "{vg}/{lv} is not active: a backup needs an active origin"
                    )))),
                });
            }
            match tags.iter_mut().find(|(v, _)| v == vg) {
                Some((_, lvs)) => lvs.push(snapshot),
                None => tags.push((vg, vec![snapshot])),
            }
        }
        let info = dm.info(&m.snapshot)?;
        taken.push(Taken {
            planned: p.clone(),
            dm_name: m.snapshot.clone(),
            node: m.snapshot_node.clone(),
            dev: info.dev,
        });
    }
    for (vg, lvs) in tags {
        tag_lvs(vg, &lvs, &opts.write).map_err(|e| BackupError::Snapshot {
            member: vg.to_owned(),
            kind: Box::new(SnapshotErrorKind::Lvm(e)),
        })?;
    }
    Ok(TakenAll {
        taken,
        suspended_for: made.suspended_for,
        notices: made.notices,
        warnings: made.warnings,
    })
}

/// Add [`BACKUP_TAG`] to the LVs `lvs` of `vg` (one metadata commit, outside any
/// suspend).
fn tag_lvs(vg: &str, lvs: &[&str], opts: &WriteOptions) -> Result<(), WriteError> {
    let mut s = VgSession::open(vg, opts)?;
    let mut new = s.vg().clone();
    for lv in lvs {
        let Some(l) = new.lvs.iter_mut().find(|l| l.name == *lv) else {
            return Err(WriteError::LvNotFound {
                vg: vg.into(),
                lv: (*lv).into(),
            });
        };
        if !l.tags.iter().any(|t| t == BACKUP_TAG) {
            l.tags.push(BACKUP_TAG.into());
        }
    }
    if new == *s.vg() {
        return Ok(());
    }
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
