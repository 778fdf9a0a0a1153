//! Snapshot workflows on a raw block device, without LVM: wrap, snapshot, status, drop,
//! rollback by merge, recover.
//!
//! ```no_run
//! use devmapper::{DeviceMapper, DmName};
//! use devmapper::snapshot::{SnapshotOptions, Wrapper};
//! let dm = DeviceMapper::new()?;
//! // Once: put a linear device over the disk and mount /dev/mapper/data from now on.
//! let data = Wrapper::wrap(&dm, &DmName::new("data")?, "/dev/md0".as_ref())?;
//! // Later, while it is mounted and written to: a consistent frozen view.
//! let snap = data.take_snapshot(&SnapshotOptions::new("/dev/sdc1"))?;
//! println!("frozen view at {}", snap.node().display());
//! // ... back up /dev/mapper/data-snap, then discard it:
//! snap.discard()?;
//! # Ok::<(), devmapper::snapshot::SnapError>(())
//! ```
//!
//! # Layout
//! Like LVM: `NAME` is the device the user mounts; with a snapshot its table is
//! `snapshot-origin NAME-real`, where `NAME-real` maps the backing device, and each
//! snapshot is `snapshot NAME-real COW P|N chunk`. Devices carry uuids
//! `DMSNAP-<id>`, `DMSNAP-<id>-real` and `DMSNAP-<id>-snap-<n>`, so the whole state can be
//! read back from the kernel at any time.
//!
//! A persistent snapshot's COW device starts with a dmsnap [`record`] describing it (the
//! wrapper, the snapshot, its origin's identity, whether a rollback was merging); the
//! kernel's store follows, mapped by a linear `SNAP-cow` device (uuid
//! `DMSNAP-<id>-cow-<n>`), and the snapshot is `snapshot NAME-real SNAP-cow P chunk`. After
//! a reboot, [`activate`](activate::activate) rebuilds everything from the records alone,
//! checking each origin's [`identity`].
//!
//! # Safety
//! Every step has its undo, run automatically on error; no error path leaves a device
//! suspended, and neither does a kill: a guardian process resumes what its dead parent
//! left suspended, and no suspend outlasts [`Wrapper::with_suspend_bound`] (see the
//! module docs of `window`, and [`crate::SuspendGuard`]). The state lives only in the kernel, so after a crash
//! [`Wrapper::recover`] (which every workflow runs first) completes or undoes whatever
//! was interrupted.
#![forbid(unsafe_code)]

pub mod activate;
mod blockdev;
mod discard;
mod error;
pub(crate) mod fault;
mod handle;
pub mod identity;
mod options;
mod persist;
pub mod record;
mod recover;
mod retry;
mod rollback;
mod state;
pub(crate) mod take;
mod window;

pub use blockdev::BlockDev;
pub use discard::Dropped;
pub use error::{BadChunkKind, BadDeviceKind, SnapError, SnapResult, WrongStateKind};
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use fault::arm as arm_fault_injection;
pub use handle::{MergeState, Merging, Snapshot};
pub use options::{CowOverwrite, RollbackOptions, SnapshotOptions};
pub use recover::RecoveryAction;
pub use rollback::{MergeProgress, MergeStep, Rollback};
pub use state::{SnapshotReport, SnapshotState, WrapperState, WrapperStatus};

use crate::RemoveMode;
use crate::kernel::id::{DmName, DmUuid};
use crate::table::{Table, TableLine};
use crate::targets::{DevRef, Linear};
use crate::units::{SECTOR_SIZE, Sectors};
use crate::{DevNum, DeviceMapper, LoadOptions, SuspendOptions};

/// Prefix of the uuid of every device these workflows create.
pub const UUID_PREFIX: &str = "DMSNAP-";
/// Suffix of the hidden device that maps the backing device once a snapshot exists.
pub const REAL_SUFFIX: &str = "-real";
/// Suffix of the hidden linear device that maps a persistent snapshot's exception store,
/// after the dmsnap record, on its COW device (see [`record`]).
pub const COW_SUFFIX: &str = "-cow";

/// A device made by [`Wrapper::wrap`]: a linear device over a backing block device, which
/// can hand out snapshots.
#[derive(Debug)]
pub struct Wrapper<'dm> {
    dm: &'dm DeviceMapper,
    name: DmName,
    id: String,
    suspend_bound: std::time::Duration,
}

impl<'dm> Wrapper<'dm> {
    /// Put a linear device `name` over the whole of `device` (mount `/dev/mapper/<name>`
    /// from now on).
    ///
    /// # Errors
    /// The name is taken or too long, `device` is not a block device (or is empty), or a
    /// device-mapper call fails (nothing is left behind).
    pub fn wrap(
        dm: &'dm DeviceMapper,
        name: &DmName,
        device: &std::path::Path,
    ) -> SnapResult<Self> {
        let max = crate::kernel::id::MAX_NAME_LEN - REAL_SUFFIX.len();
        if name.as_str().len() > max {
            return Err(SnapError::NameTooLong {
                name: name.to_string(),
                max,
            });
        }
        if dm.exists(name)? {
            return Err(SnapError::NameTaken {
                name: name.to_string(),
            });
        }
        let bd = blockdev::probe(device)?;
        let len = bd.size / SECTOR_SIZE;
        if len == 0 {
            return Err(SnapError::BadDevice {
                path: device.to_owned(),
                kind: BadDeviceKind::ZeroSize,
            });
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let uuid = DmUuid::new(&format!("{UUID_PREFIX}{id}"))?;
        dm.create(name, crate::CreateOptions::default().uuid(uuid))?;
        let w = Wrapper {
            dm,
            name: name.clone(),
            id,
            suspend_bound: crate::DEFAULT_SUSPEND_BOUND,
        };
        let built = (|| -> SnapResult<()> {
            dm.load(
                name,
                &linear_table(bd.dev, Sectors(len)),
                LoadOptions::default(),
            )?;
            dm.resume(name, SuspendOptions::default())?;
            Ok(())
        })();
        if let Err(e) = built {
            let _ = dm.remove(name, RemoveMode::Now);
            return Err(e);
        }
        Ok(w)
    }

    /// A handle on an existing wrapped device.
    ///
    /// # Errors
    /// No such device, or it was not made by [`Wrapper::wrap`].
    pub fn open(dm: &'dm DeviceMapper, name: &DmName) -> SnapResult<Self> {
        let info = match dm.info(name) {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                return Err(SnapError::NoSuchDevice {
                    name: name.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let id = info
            .uuid
            .as_deref()
            .and_then(|u| u.strip_prefix(UUID_PREFIX))
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        match id {
            Some(id) => Ok(Wrapper {
                dm,
                name: name.clone(),
                id,
                suspend_bound: crate::DEFAULT_SUSPEND_BOUND,
            }),
            None => Err(SnapError::NotWrapped {
                name: name.to_string(),
                uuid: info.uuid,
            }),
        }
    }

    /// Set how long any suspend of this wrapper's workflows may last (default
    /// [`crate::DEFAULT_SUSPEND_BOUND`], 10 s). Past it the guardian resumes the devices,
    /// the step is completed or undone by [`Wrapper::recover`], and the workflow fails with
    /// [`SnapError::SuspendBound`].
    ///
    /// ```no_run
    /// # use devmapper::{DeviceMapper, DmName, snapshot::Wrapper};
    /// # let dm = DeviceMapper::new()?;
    /// let w = Wrapper::open(&dm, &DmName::new("data")?)?
    ///     .with_suspend_bound(std::time::Duration::from_secs(2));
    /// assert_eq!(w.suspend_bound().as_secs(), 2);
    /// # Ok::<(), devmapper::snapshot::SnapError>(())
    /// ```
    pub fn with_suspend_bound(mut self, bound: std::time::Duration) -> Self {
        self.suspend_bound = bound;
        self
    }

    /// The suspend bound in effect.
    pub fn suspend_bound(&self) -> std::time::Duration {
        self.suspend_bound
    }

    /// The device name.
    pub fn name(&self) -> &DmName {
        &self.name
    }

    /// `/dev/mapper/<name>`.
    pub fn node(&self) -> std::path::PathBuf {
        self.dm.node_path(&self.name)
    }

    /// Remove the wrapper, leaving the backing device as it is.
    ///
    /// # Errors
    /// [`SnapError::WrongState`] while a snapshot or merge exists; `EBUSY` (with who holds
    /// it) while the device is open.
    pub fn unwrap_device(self) -> SnapResult<()> {
        self.recover()?;
        let st = self.state()?;
        if !st.snapshots.is_empty() || st.real.is_some() {
            return Err(SnapError::WrongState {
                name: self.name.to_string(),
                kind: WrongStateKind::HasSnapshots,
            });
        }
        self.dm.remove(&self.name, RemoveMode::Now)?;
        Ok(())
    }

    fn real_name(&self) -> SnapResult<DmName> {
        Ok(DmName::new(&format!("{}{REAL_SUFFIX}", self.name))?)
    }

    fn real_uuid(&self) -> SnapResult<DmUuid> {
        Ok(DmUuid::new(&format!(
            "{UUID_PREFIX}{}{REAL_SUFFIX}",
            self.id
        ))?)
    }

    fn snap_uuid_prefix(&self) -> String {
        format!("{UUID_PREFIX}{}-snap-", self.id)
    }

    fn cow_uuid_prefix(&self) -> String {
        format!("{UUID_PREFIX}{}-cow-", self.id)
    }

    /// `DMSNAP-<id>`: the wrapper's dm uuid.
    fn uuid(&self) -> SnapResult<DmUuid> {
        Ok(DmUuid::new(&format!("{UUID_PREFIX}{}", self.id))?)
    }
}

/// `0 len linear dev 0`.
pub(crate) fn linear_table(dev: DevNum, len: Sectors) -> Table {
    Table::from_lines(vec![TableLine::new(
        Sectors(0),
        len,
        Linear::new(DevRef::Num(dev), Sectors(0)),
    )])
}

pub(crate) fn devnum(r: &DevRef) -> Option<DevNum> {
    match r {
        DevRef::Num(d) => Some(*d),
        _ => None,
    }
}
