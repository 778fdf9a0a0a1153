//! [`SnapError`]: why a snapshot workflow refused or failed.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// What can go wrong in a snapshot workflow. Refusals (bad input, wrong state) are checked
/// before anything changes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapError {
    /// A device-mapper call failed.
    #[error(transparent)]
    Dm(#[from] crate::Error),
    /// An invalid name.
    #[error(transparent)]
    Id(#[from] crate::kernel::id::IdError),
    /// The named device exists but was not made by `wrap`.
    #[error("{name} is not a wrapped device (its uuid {uuid:?} does not start with DMSNAP-)")]
    NotWrapped {
        /// Device name.
        name: String,
        /// Its uuid.
        uuid: Option<String>,
    },
    /// No such wrapped device.
    #[error("no device named {name}")]
    NoSuchDevice {
        /// Device name.
        name: String,
    },
    /// The name is taken.
    #[error("a device named {name} already exists")]
    NameTaken {
        /// Device name.
        name: String,
    },
    /// A name would be too long once the workflow's suffix is added.
    #[error("name {name:?} is too long: at most {max} bytes so that derived names fit")]
    NameTooLong {
        /// Name.
        name: String,
        /// Longest allowed.
        max: usize,
    },
    /// A path is not a usable block device.
    #[error("{path}: {kind}")]
    BadDevice {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        kind: BadDeviceKind,
    },
    /// The COW device is in use (mounted, held by dm/md, or opened exclusively).
    #[error(
        "COW device {path} is in use ({}); give an unused device",
        if holders.is_empty() { "mounted or opened exclusively".to_owned() }
        else { format!("held by {}", holders.join(", ")) }
    )]
    CowInUse {
        /// The path.
        path: PathBuf,
        /// The devices holding it (sysfs `holders`), empty when it is mounted or opened
        /// exclusively by a process.
        holders: Vec<String>,
    },
    /// The COW device is too small for even one chunk of data.
    #[error(
        "COW device {path} has {size} bytes; with {chunk}-byte chunks it needs at least {min} bytes"
    )]
    CowTooSmall {
        /// The path.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// Chunk size in bytes.
        chunk: u64,
        /// Minimum size in bytes.
        min: u64,
    },
    /// The COW device holds something recognisable (a filesystem, partition table, PV,
    /// md member, LUKS, swap, ...); nothing was written. [`CowOverwrite::Force`] overrides.
    ///
    /// [`CowOverwrite::Force`]: super::CowOverwrite::Force
    #[error(
        "COW device {path} holds {}: refusing to overwrite it unless forced",
        found_list(found)
    )]
    CowHoldsData {
        /// The path.
        path: PathBuf,
        /// What was found (see [`crate::probe::identify`]).
        found: Vec<crate::probe::Found>,
    },
    /// The COW device holds a dm-snapshot store with exceptions: using it discards that
    /// snapshot. Nothing was written. [`CowOverwrite::Force`] overrides.
    ///
    /// [`CowOverwrite::Force`]: super::CowOverwrite::Force
    #[error(
        "COW device {path} holds the store of an earlier snapshot ({}chunk size {chunk_sectors} sectors): a new snapshot on it discards that snapshot; refusing unless forced",
        if *valid { "" } else { "invalidated, " }
    )]
    CowHoldsSnapshot {
        /// The path.
        path: PathBuf,
        /// The store's chunk size in sectors.
        chunk_sectors: u32,
        /// The store's `valid` flag.
        valid: bool,
    },
    /// The COW device holds a dmsnap record: a persistent snapshot that can be activated
    /// again (after a reboot). Nothing was written. [`CowOverwrite::Force`] overrides.
    ///
    /// [`CowOverwrite::Force`]: super::CowOverwrite::Force
    #[error(
        "COW device {path} holds {record}, whose origin is the device of {}; activate it again instead (it is found from the devices themselves); a new snapshot on it discards that one; refusing unless forced",
        record.origin_text()
    )]
    CowHoldsRecord {
        /// The path.
        path: PathBuf,
        /// The record found.
        record: Box<super::record::Record>,
    },
    /// The COW device starts with a dmsnap record that does not check out (damaged, or a
    /// later version). Nothing was written. [`CowOverwrite::Force`] overrides.
    ///
    /// [`CowOverwrite::Force`]: super::CowOverwrite::Force
    #[error(
        "COW device {path} starts with a dmsnap record that cannot be read ({source}); refusing unless forced"
    )]
    CowRecordDamaged {
        /// The path.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: super::record::RecordError,
    },
    /// The COW device's content could not be read to check what it holds.
    #[error("COW device {path}: cannot check what it holds: {source}")]
    CowProbe {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::probe::ProbeError,
    },
    /// An unusable chunk size.
    #[error("chunk size of {sectors} sectors is invalid: {kind}")]
    BadChunk {
        /// Chunk size in sectors.
        sectors: u64,
        /// Why.
        kind: BadChunkKind,
    },
    /// No snapshot to act on.
    #[error("{name} has no snapshot")]
    NoSnapshot {
        /// Origin name.
        name: String,
    },
    /// Several snapshots and none named.
    #[error("{name} has several snapshots ({}); name one", snaps.join(", "))]
    Ambiguous {
        /// Origin name.
        name: String,
        /// The snapshots.
        snaps: Vec<String>,
    },
    /// The operation does not fit the current state: `kind` says which state and what to
    /// do.
    #[error("{name}: {kind}")]
    WrongState {
        /// The device concerned (the wrapper, or the snapshot for snapshot-level states).
        name: String,
        /// What is wrong.
        kind: WrongStateKind,
    },
    /// The origin is open (mounted) and the operation would change its data underneath.
    #[error("{name} is open {open_count} time(s){}: unmount it first (or force, if you know the data may change under the user)", if mounts.is_empty() { String::new() } else { format!(" (mounted at {})", mounts.join(", ")) })]
    OriginOpen {
        /// Origin name.
        name: String,
        /// Open count.
        open_count: i32,
        /// Mount points.
        mounts: Vec<String>,
    },
    /// A suspend window outlasted its bound (see [`crate::snapshot::Wrapper::with_suspend_bound`]):
    /// the guardian resumed what was suspended, and [`crate::snapshot::Wrapper::recover`]
    /// then completed or undid the step.
    #[error("{name} stayed suspended past the {} ms bound; the guardian resumed it{}", bound.as_millis(), recovery_text(recovery, recovery_failed.as_deref()))]
    SuspendBound {
        /// Origin name.
        name: String,
        /// The bound.
        bound: std::time::Duration,
        /// What recovery did afterwards (empty when nothing was needed, or it failed or did
        /// not run).
        recovery: Vec<super::RecoveryAction>,
        /// Why recovery failed, when it did (the state is then as
        /// [`Wrapper::status`](super::Wrapper::status) reports it; call
        /// [`Wrapper::recover`](super::Wrapper::recover) again).
        recovery_failed: Option<Box<SnapError>>,
    },
    /// A plain wrapper's boot entry could not be written (see
    /// [`activate::WrapperEntry::write_to`](super::activate::WrapperEntry::write_to)).
    #[error("writing {}: {source}", path.display())]
    EntryWrite {
        /// The entry file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// [`Wrapper::wrap_for_boot`](super::Wrapper::wrap_for_boot) made the wrapper but could
    /// not keep it for the next boot, so it removed it again.
    #[error("{source}; {name} was not kept")]
    NotKept {
        /// The wrapper's name.
        name: String,
        /// Why its entry could not be made.
        #[source]
        source: Box<SnapError>,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Which state an operation does not fit ([`SnapError::WrongState`]); its `Display` says
/// what is wrong and what to do, in library terms.
///
/// ```
/// use devmapper::snapshot::{SnapError, WrongStateKind};
/// let e = SnapError::WrongState {
///     name: "data".into(),
///     kind: WrongStateKind::OtherSnapshots { snapshots: vec!["data-b".into()] },
/// };
/// assert_eq!(e.to_string(), "data: other snapshots exist (data-b); drop them before a rollback");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WrongStateKind {
    /// A snapshot was named that is not one of this wrapper's.
    #[error("{snapshot} is not a snapshot of {wrapper}")]
    NotASnapshot {
        /// The name given.
        snapshot: String,
        /// The wrapper.
        wrapper: String,
    },
    /// A rollback is merging; a new snapshot has to wait for it.
    #[error("a rollback is merging; wait for it to finish")]
    MergeRunning,
    /// The origin's live table is not one the snapshot workflows made (changed by hand?).
    #[error("its table is not one the snapshot workflows made")]
    ForeignTable,
    /// The backing device cannot be found in the origin's or `-real`'s table.
    #[error("cannot find the backing device in its tables")]
    NoBacking,
    /// A rollback needs the snapshot to be the origin's only one.
    #[error("other snapshots exist ({}); drop them before a rollback", snapshots.join(", "))]
    OtherSnapshots {
        /// The other snapshots.
        snapshots: Vec<String>,
    },
    /// A transient snapshot has no store the kernel could merge.
    #[error("a transient snapshot cannot be merged (the kernel keeps no store to merge)")]
    Transient,
    /// The snapshot is invalid or overflowed (or its state is unknown): it cannot be merged.
    #[error("the snapshot is {status:?} and cannot be merged; drop it")]
    NotMergeable {
        /// What the kernel reports.
        status: crate::targets::SnapshotStatus,
    },
    /// The handover did not happen: the origin kept its table and the snapshot is intact.
    #[error("the merge did not start (the origin kept its table)")]
    MergeNotStarted,
    /// The origin is not merging.
    #[error("not merging")]
    NotMerging,
    /// The kernel reports `Merge failed` (an I/O error); the origin keeps working.
    #[error("the kernel reports Merge failed (I/O error); the origin keeps working")]
    MergeFailed,
    /// [`Merging::wait`](super::Merging::wait) timed out; the merge goes on in the kernel.
    #[error("timed out waiting for the merge; it goes on in the kernel")]
    MergeTimeout,
    /// [`Merging::finish`](super::Merging::finish) before the merge is done.
    #[error("the merge is still running")]
    MergeNotDone,
    /// The snapshot device is open (mounted, or held by a process).
    #[error(
        "the snapshot is open {open_count} time(s){}; unmount it first",
        mounted_at(mounts)
    )]
    SnapshotOpen {
        /// Its open count.
        open_count: i32,
        /// Where it is mounted (empty when it is held otherwise).
        mounts: Vec<String>,
    },
    /// A snapshot or a merge exists, so the wrapper cannot be removed.
    #[error("a snapshot or merge exists; drop it or wait for the merge first")]
    HasSnapshots,
    /// The backing device has nothing that would recognise it after a reboot.
    #[error(
        "its device ({backing}) has no serial, wwid, dm or md uuid and no filesystem uuid: it could not be recognised after a reboot"
    )]
    NoStrongId {
        /// The backing device.
        backing: crate::DevNum,
    },
}

fn mounted_at(mounts: &[String]) -> String {
    if mounts.is_empty() {
        String::new()
    } else {
        format!(" (mounted at {})", mounts.join(", "))
    }
}

fn recovery_text(done: &[super::RecoveryAction], failed: Option<&SnapError>) -> String {
    let mut parts: Vec<String> = done.iter().map(ToString::to_string).collect();
    if let Some(e) = failed {
        parts.push(format!("recovery failed: {e}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(", then recovery: {}", parts.join("; "))
    }
}

fn found_list(found: &[crate::probe::Found]) -> String {
    let names: Vec<String> = found.iter().map(ToString::to_string).collect();
    names.join(" and ")
}

/// Result alias of the snapshot workflows.
pub type SnapResult<T> = Result<T, SnapError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::RecoveryAction;
    use crate::{DevNum, DmName};

    fn wrong(kind: WrongStateKind) -> String {
        SnapError::WrongState {
            name: "data".into(),
            kind,
        }
        .to_string()
    }

    /// Each kind says what the prose `reason` of the untyped variant said.
    #[test]
    fn wrong_state_text_is_unchanged() {
        use WrongStateKind::*;
        let cases = [
            (
                NotASnapshot {
                    snapshot: "x".into(),
                    wrapper: "data".into(),
                },
                "data: x is not a snapshot of data",
            ),
            (
                MergeRunning,
                "data: a rollback is merging; wait for it to finish",
            ),
            (
                NoBacking,
                "data: cannot find the backing device in its tables",
            ),
            (
                OtherSnapshots {
                    snapshots: vec!["a".into(), "b".into()],
                },
                "data: other snapshots exist (a, b); drop them before a rollback",
            ),
            (
                NotMergeable {
                    status: crate::targets::SnapshotStatus::Invalid,
                },
                "data: the snapshot is Invalid and cannot be merged; drop it",
            ),
            (
                SnapshotOpen {
                    open_count: 2,
                    mounts: vec!["/mnt".into()],
                },
                "data: the snapshot is open 2 time(s) (mounted at /mnt); unmount it first",
            ),
            (
                SnapshotOpen {
                    open_count: 1,
                    mounts: vec![],
                },
                "data: the snapshot is open 1 time(s); unmount it first",
            ),
            (
                NoStrongId {
                    backing: DevNum::new(8, 16),
                },
                "data: its device (8:16) has no serial, wwid, dm or md uuid and no filesystem uuid: it could not be recognised after a reboot",
            ),
            (MergeNotDone, "data: the merge is still running"),
        ];
        for (kind, text) in cases {
            assert_eq!(wrong(kind), text);
        }
    }

    #[test]
    fn suspend_bound_lists_recovery_and_its_failure() {
        let e = |recovery, recovery_failed| SnapError::SuspendBound {
            name: "data".into(),
            bound: std::time::Duration::from_millis(300),
            recovery,
            recovery_failed,
        };
        let base = "data stayed suspended past the 300 ms bound; the guardian resumed it";
        assert_eq!(e(Vec::new(), None).to_string(), base);
        let n = |s| DmName::new(s).unwrap();
        let done = vec![
            RecoveryAction::ResumedOrigin { origin: n("data") },
            RecoveryAction::RemovedSnapshot {
                snapshot: n("data-snap"),
            },
        ];
        assert_eq!(
            e(done, None).to_string(),
            format!("{base}, then recovery: resumed data; removed snapshot device data-snap")
        );
        let failed = SnapError::NoSuchDevice {
            name: "data".into(),
        };
        assert_eq!(
            e(Vec::new(), Some(Box::new(failed))).to_string(),
            format!("{base}, then recovery: recovery failed: no device named data")
        );
    }

    /// A library user has no dmsnap: no message tells them to run it.
    #[test]
    fn messages_name_no_command() {
        let msgs = [
            SnapError::NotWrapped {
                name: "data".into(),
                uuid: None,
            }
            .to_string(),
            SnapError::NoSuchDevice {
                name: "data".into(),
            }
            .to_string(),
            wrong(WrongStateKind::ForeignTable),
        ];
        for m in msgs {
            assert!(!m.contains("dmsnap"), "{m}");
        }
    }
}

/// The kinds of [`SnapError::BadDevice`].
///
/// ```
/// use devmapper::snapshot::{BadDeviceKind, SnapError};
/// let e = SnapError::BadDevice { path: "/tmp".into(), kind: BadDeviceKind::NotBlockDevice };
/// assert_eq!(e.to_string(), "/tmp: not a block device");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadDeviceKind {
    /// `stat` failed.
    #[error("cannot stat: {0}")]
    Stat(#[source] std::io::Error),
    /// Not a block device.
    #[error("not a block device")]
    NotBlockDevice,
    /// Opening it for reading failed.
    #[error("cannot open: {0}")]
    Open(#[source] std::io::Error),
    /// Its size does not read.
    #[error("cannot read its size: {0}")]
    Size(#[source] std::io::Error),
    /// sysfs has no size for it.
    #[error("no size in sysfs")]
    NoSysfsSize,
    /// Its size is zero.
    #[error("size is zero")]
    ZeroSize,
    /// The COW device is the origin's own device.
    #[error("the COW device cannot be the origin's own device")]
    CowIsOrigin,
    /// The dmsnap record for it does not encode.
    #[error("{0}")]
    Record(#[from] super::record::RecordError),
}

/// The kinds of [`SnapError::BadChunk`].
///
/// ```
/// use devmapper::snapshot::{BadChunkKind, SnapError};
/// let e = SnapError::BadChunk { sectors: 12, kind: BadChunkKind::NotPowerOfTwo };
/// assert_eq!(e.to_string(), "chunk size of 12 sectors is invalid: must be a power of two");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadChunkKind {
    /// Zero or not a power of two.
    #[error("must be a power of two")]
    NotPowerOfTwo,
    /// Smaller than a device's logical block size.
    #[error("smaller than the devices' logical block size of {block_bytes} bytes")]
    BelowBlockSize {
        /// The larger logical block size of origin and COW, bytes.
        block_bytes: u64,
    },
    /// Larger than the kernel takes (its chunk size is an `int` of bytes).
    #[error("larger than the kernel allows")]
    TooLarge,
}
