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
    #[error(
        "{name} is not a dmsnap-wrapped device (its uuid {uuid:?} does not start with DMSNAP-); use `dmsnap wrap` first"
    )]
    NotWrapped {
        /// Device name.
        name: String,
        /// Its uuid.
        uuid: Option<String>,
    },
    /// No such wrapped device.
    #[error("no device named {name}; create it with `dmsnap wrap {name} DEVICE`")]
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
    #[error("{path}: {reason}")]
    BadDevice {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The COW device is in use (mounted, held by dm/md, or opened exclusively).
    #[error("COW device {path} is in use ({reason}); give an unused device")]
    CowInUse {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
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
    #[error("chunk size of {sectors} sectors is invalid: {reason}")]
    BadChunk {
        /// Chunk size in sectors.
        sectors: u64,
        /// Why.
        reason: String,
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
    /// The operation does not fit the current state.
    #[error("{name}: {reason}")]
    WrongState {
        /// Device name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
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
    #[error("{name} stayed suspended past the {} ms bound; the guardian resumed it{}", bound.as_millis(), if recovery.is_empty() { String::new() } else { format!(", then recovery: {}", recovery.join("; ")) })]
    SuspendBound {
        /// Origin name.
        name: String,
        /// The bound.
        bound: std::time::Duration,
        /// What recovery did afterwards (empty when nothing was needed or it did not run).
        recovery: Vec<String>,
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

fn found_list(found: &[crate::probe::Found]) -> String {
    let names: Vec<String> = found.iter().map(ToString::to_string).collect();
    names.join(" and ")
}

/// Result alias of the snapshot workflows.
pub type SnapResult<T> = Result<T, SnapError>;
