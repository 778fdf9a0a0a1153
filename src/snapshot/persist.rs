//! Keeping the dmsnap record on a COW device in step with the kernel: written when a
//! snapshot is taken, marked merging when a rollback starts, zeroed (with the store's
//! header) when the snapshot's `-cow` layer goes away.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::blockdev;
use super::error::{SnapError, SnapResult};
use super::record::{RECORD_LEN, Record, RecordError, RecordState, has_magic};
use super::recover::RecoveryAction;
use super::state::cow_of;
use super::state::{Dev, State};
use super::{UUID_PREFIX, Wrapper, devnum};
use crate::DevNum;
use crate::kernel::undo::remove_retrying;
use crate::targets::Target;
use crate::units::{SECTOR_SIZE, Sectors};

/// The first [`RECORD_LEN`] bytes of `f` (fewer on a shorter device), uncached.
pub(crate) fn read_block(f: &File) -> std::io::Result<Vec<u8>> {
    blockdev::drop_cached(f);
    let size = crate::io::ReadAt::size(f)?;
    let n = usize::try_from(size.min(RECORD_LEN as u64)).unwrap_or(RECORD_LEN);
    let mut b = vec![0u8; n];
    FileExt::read_exact_at(f, &mut b, 0)?;
    Ok(b)
}

/// The record on `f`: `None` when there is no magic, else the parse result.
pub(crate) fn read_record(f: &File) -> std::io::Result<Option<Result<Record, RecordError>>> {
    let b = read_block(f)?;
    Ok(has_magic(&b).then(|| Record::parse(&b)))
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Write `block` at byte `at` of `f` and make it durable.
pub(crate) fn write_durable(f: &File, block: &[u8], at: u64) -> std::io::Result<()> {
    f.write_all_at(block, at)?;
    f.sync_all()?;
    blockdev::drop_cached(f);
    Ok(())
}

/// The COW device and store offset under a `-cow` layer.
pub(crate) fn layer_target(layer: &Dev) -> Option<(DevNum, Sectors)> {
    match &layer.live {
        Some(Target::Linear(l)) => Some((devnum(&l.device)?, l.offset)),
        _ => None,
    }
}

/// The snapshot uuid a `-cow` layer belongs to: `DMSNAP-<id>-cow-<n>` -> `DMSNAP-<id>-snap-<n>`.
fn snapshot_uuid_of_layer(layer: &Dev) -> Option<String> {
    let u = layer.info.uuid.as_deref()?;
    let rest = u.strip_prefix(UUID_PREFIX)?;
    let (id, n) = rest.split_once("-cow-")?;
    Some(format!("{UUID_PREFIX}{id}-snap-{n}"))
}

/// Set the state of the record naming `snapshot_uuid` on the COW device `raw`. Nothing
/// happens when the device holds no such record (a snapshot made before records existed).
pub(crate) fn set_state(raw: DevNum, snapshot_uuid: &str, state: RecordState) -> SnapResult<()> {
    let Some(path) = blockdev::node_of(raw) else {
        return Ok(());
    };
    let io = |source| SnapError::Io {
        path: path.clone(),
        source,
    };
    let f = open_rw(&path).map_err(io)?;
    let Some(Ok(mut rec)) = read_record(&f).map_err(io)? else {
        return Ok(());
    };
    if rec.snapshot_uuid.as_str() != snapshot_uuid || rec.state == state {
        return Ok(());
    }
    rec.state = state;
    let block = rec.encode().map_err(|e| SnapError::BadDevice {
        path: path.clone(),
        kind: e.into(),
    })?;
    write_durable(&f, &block, 0).map_err(io)
}

/// After a `-cow` layer was removed: zero the record naming `snapshot_uuid` and the store
/// header at `offset`, so that the device reads as unused again (best effort).
pub(crate) fn forget(raw: DevNum, offset: Sectors, snapshot_uuid: &str) {
    let Some(path) = blockdev::node_of(raw) else {
        return;
    };
    let Ok(f) = open_rw(&path) else {
        return;
    };
    match read_record(&f) {
        Ok(Some(Ok(rec))) if rec.snapshot_uuid.as_str() == snapshot_uuid => {}
        _ => return,
    }
    let _ = write_durable(&f, &[0u8; RECORD_LEN], 0);
    let mut head = [0u8; 16];
    let at = offset.0.saturating_mul(SECTOR_SIZE);
    if FileExt::read_exact_at(&f, &mut head, at).is_ok() && head.starts_with(b"SnAp") {
        let _ = write_durable(&f, &[0u8; 16], at);
    }
}

/// Remove the `-cow` layers no snapshot and no merge uses any more (a snapshot dropped,
/// a merge finished, a take interrupted), forgetting their records.
pub(crate) fn remove_stale_layers(w: &Wrapper<'_>, st: &State) -> SnapResult<Vec<RecoveryAction>> {
    let mut used: Vec<DevNum> = Vec::new();
    let all = std::iter::once(&st.origin).chain(st.snapshots.iter());
    for d in all {
        for t in [&d.live, &d.inactive].into_iter().flatten() {
            used.extend(cow_of(t));
        }
    }
    let mut done = Vec::new();
    for layer in &st.cows {
        if used.contains(&layer.info.dev) {
            continue;
        }
        if layer.info.suspended() {
            let _ = w.dm.clear_table(&layer.name);
            let _ = w.dm.resume(&layer.name, crate::SuspendOptions::default());
        }
        remove_retrying(w.dm, &layer.name)?;
        if let (Some((raw, offset)), Some(su)) =
            (layer_target(layer), snapshot_uuid_of_layer(layer))
        {
            forget(raw, offset, &su);
        }
        done.push(RecoveryAction::RemovedCowLayer {
            layer: layer.name.clone(),
        });
    }
    Ok(done)
}
