//! Several snapshots at one instant: wrapped devices and LVM LVs, mixed, taken in one
//! freeze.
//!
//! Taking one snapshot after the other gives each volume its own instant: a database on
//! one volume and the files it points to on another then disagree. A [`SnapshotSet`]
//! prepares every new device first, then suspends every origin (each filesystem frozen),
//! commits each VG's metadata once, resumes the snapshots and then the origins: every
//! snapshot shows the same instant, and the freeze costs about what one costs.
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::kernel::id::DmName;
//! use devmapper::lvm::write::snapshot::create::SnapshotRequest;
//! use devmapper::lvm::write::snapshot::size::CowSize;
//! use devmapper::snapshot::SnapshotOptions;
//! use devmapper::snapshot_set::{SetOptions, SnapshotSet};
//! let dm = DeviceMapper::new()?;
//! let mut set = SnapshotSet::new();
//! set.raw(DmName::new("dat")?, SnapshotOptions::new("/dev/sdc1")) // a wrapped device
//!     .lvm("vg0", "pccehr", Some("pccehr_snap"), SnapshotRequest::new(CowSize::Sectors(1 << 21)));
//! let taken = set.take(&dm, &SetOptions::new("backup"))?;
//! for m in &taken.members {
//!     println!("{} -> {}", m.source, m.snapshot_node.display());
//! }
//! println!("all origins suspended for {:?}", taken.suspended_for);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The sequence
//! 1. **Checks**, before anything changes: the set itself (not empty, no source twice, no
//!    two snapshots of one name or on one COW device); every wrapped device's checks of
//!    [`Wrapper::take_snapshot`] (after its [`Wrapper::recover`]), its COW held open
//!    exclusively; the VGs locked in name order (the order lvm2 takes them, so two writers
//!    never wait on each other crosswise) and every LV's checks of
//!    [`lvcreate_snapshot`](crate::lvm::write::snapshot::create::lvcreate_snapshot), all
//!    LVs of one VG allocated on one new model; the stacking of the origins, from the
//!    kernel's dependencies (`DM_TABLE_DEPS`, followed down): an origin built on another
//!    member's origin is suspended first; a circle is refused ([`SetErrorKind::StackCycle`]),
//!    so is a VG whose metadata lies on a member ([`SetErrorKind::MetadataOnMember`]).
//! 2. **Prepare**: every COW zeroed, every `-real`, COW layer and snapshot device created
//!    and loaded, every origin's new table staged, one precommit per VG; all recorded in
//!    one undo list.
//! 3. **Window**: one guardian with one rule per origin (lower origins first), `sync()`,
//!    the origins suspended top-down (the existing snapshots of an LV with it): level by
//!    level of the stacking, the origins of one level at the same time (one thread each),
//!    so N filesystems freeze in about the time of the slowest; each VG committed once (no
//!    other I/O in the window), the snapshots resumed, the origins resumed bottom-up.
//! 4. **Failure**: anything before the last commit undoes everything: staged tables
//!    cleared, origins resumed on their old tables, new devices removed, precommits
//!    reverted. When VG *k*'s commit fails after VG *j* committed, VG *j*'s old metadata is
//!    committed again (a new seqno) first, so nothing of the set remains.
//! 5. **Bound**: past [`SetOptions::bound`] the guardian resumes every origin, and the set
//!    is abandoned: whatever of it exists is dropped again ([`SetErrorKind::BoundExceeded`]).
//!    Never a stuck freeze.
//!
//! A set of one is exactly the single workflow: [`Wrapper::take_snapshot`] and
//! `lvcreate_snapshot` run the same checks, preparation and window (module `window`).
//! Unlike `take_snapshot`, a set never returns an existing snapshot of the same name as
//! taken: it would show another instant.
//!
//! [`Wrapper::take_snapshot`]: crate::snapshot::Wrapper::take_snapshot
//! [`Wrapper::recover`]: crate::snapshot::Wrapper::recover
#![forbid(unsafe_code)]

mod error;
mod order;
mod taking;
pub(crate) mod window;

pub use error::{SetError, SetErrorKind};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::lvm::write::session::WriteOptions;
use crate::lvm::write::snapshot::create::SnapshotRequest;
use crate::snapshot::SnapshotOptions;
use crate::units::Sectors;
use crate::{DeviceMapper, DmName};
use taking::Taking;

/// One source of a set: a wrapped device or an LV.
///
/// ```
/// use devmapper::snapshot_set::SetSource;
/// let s = SetSource::Lvm { vg: "vg0".into(), lv: "pccehr".into() };
/// assert_eq!(s.to_string(), "vg0/pccehr");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetSource {
    /// A device made by [`Wrapper::wrap`](crate::snapshot::Wrapper::wrap), by name (`NAME`).
    Raw(DmName),
    /// An LVM LV (`VG/LV`).
    Lvm {
        /// The volume group.
        vg: String,
        /// The origin LV.
        lv: String,
    },
}

impl fmt::Display for SetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetSource::Raw(n) => write!(f, "{n}"),
            SetSource::Lvm { vg, lv } => write!(f, "{vg}/{lv}"),
        }
    }
}

/// One member of a [`SnapshotSet`]: what to snapshot and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SetMember {
    /// A wrapped device, with the options of
    /// [`Wrapper::take_snapshot`](crate::snapshot::Wrapper::take_snapshot).
    Raw {
        /// The wrapped device.
        name: DmName,
        /// Its snapshot's COW device, name, chunk, store.
        options: SnapshotOptions,
    },
    /// An LV, with the request of
    /// [`lvcreate_snapshot`](crate::lvm::write::snapshot::create::lvcreate_snapshot).
    Lvm {
        /// The volume group.
        vg: String,
        /// The origin LV.
        lv: String,
        /// The snapshot's name (default `<lv>_snap`).
        name: Option<String>,
        /// COW size, chunk, permission.
        request: SnapshotRequest,
    },
}

impl SetMember {
    /// The source this member snapshots.
    pub fn source(&self) -> SetSource {
        match self {
            SetMember::Raw { name, .. } => SetSource::Raw(name.clone()),
            SetMember::Lvm { vg, lv, .. } => SetSource::Lvm {
                vg: vg.clone(),
                lv: lv.clone(),
            },
        }
    }
}

/// Several volumes to snapshot at one instant (see the [module docs](self)).
///
/// ```
/// use devmapper::kernel::id::DmName;
/// use devmapper::snapshot::SnapshotOptions;
/// use devmapper::snapshot_set::{SetSource, SnapshotSet};
/// let mut set = SnapshotSet::new();
/// set.raw(DmName::new("a")?, SnapshotOptions::new("/dev/sdb"))
///     .raw(DmName::new("b")?, SnapshotOptions::new("/dev/sdc"));
/// assert_eq!(set.len(), 2);
/// assert_eq!(set.members()[1].source(), SetSource::Raw(DmName::new("b")?));
/// # Ok::<(), devmapper::kernel::id::IdError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SnapshotSet {
    members: Vec<SetMember>,
}

/// How a set is taken: the freeze's bound and the LVM write options.
///
/// ```
/// use std::time::Duration;
/// use devmapper::snapshot_set::SetOptions;
/// let o = SetOptions::new("dmsnap lvm snapshot").bound(Duration::from_secs(2));
/// assert_eq!(o.bound, Duration::from_secs(2));
/// assert_eq!(o.write.command, "dmsnap lvm snapshot");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SetOptions {
    /// The longest the origins may stay suspended (default
    /// [`crate::DEFAULT_SUSPEND_BOUND`]); past it the set is abandoned.
    pub bound: Duration,
    /// Devices to scan, lock and backup directories, the command line (LVM members).
    pub write: WriteOptions,
}

impl SetOptions {
    /// Default bound, default write options for `command` (recorded in LVM metadata).
    pub fn new(command: impl Into<String>) -> SetOptions {
        SetOptions {
            bound: crate::DEFAULT_SUSPEND_BOUND,
            write: WriteOptions::new(command),
        }
    }

    /// Set the bound.
    pub fn bound(mut self, bound: Duration) -> SetOptions {
        self.bound = bound;
        self
    }

    /// Set the LVM write options.
    pub fn write(mut self, write: WriteOptions) -> SetOptions {
        self.write = write;
        self
    }
}

/// What [`SnapshotSet::take`] made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SetTaken {
    /// One per member, in the set's order.
    pub members: Vec<TakenMember>,
    /// How long the origins were suspended (zero when no origin was active).
    pub suspended_for: Duration,
    /// What lvm2 would have printed on the way (`Rounding up ...`), member by member.
    pub notices: Vec<String>,
    /// Non-fatal problems (a backup file not written).
    pub warnings: Vec<String>,
}

/// One snapshot of a [`SetTaken`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TakenMember {
    /// What was snapshotted.
    pub source: SetSource,
    /// The snapshot's device-mapper name.
    pub snapshot: DmName,
    /// `/dev/mapper/<snapshot>` (present when [`TakenMember::live`]).
    pub snapshot_node: PathBuf,
    /// The COW's size (the device, or the COW LV).
    pub cow_sectors: Sectors,
    /// The snapshot is active (always for a wrapped device; for an LV when its origin
    /// was: an inactive origin gets its snapshot in the metadata only).
    pub live: bool,
    /// LVM members: the LVs made.
    pub lvm: Option<LvmTaken>,
}

/// The LVs an LVM member made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LvmTaken {
    /// The snapshot's (COW LV's) name.
    pub name: String,
    /// The internal `snapshotN` LV.
    pub internal: String,
    /// COW extents.
    pub extents: u64,
    /// What lvm2 would have printed for it.
    pub notices: Vec<String>,
}

impl SnapshotSet {
    /// An empty set.
    pub fn new() -> SnapshotSet {
        SnapshotSet::default()
    }

    /// Add a wrapped device.
    pub fn raw(&mut self, name: DmName, options: SnapshotOptions) -> &mut SnapshotSet {
        self.push(SetMember::Raw { name, options })
    }

    /// Add an LV (`name`: the snapshot's, default `<lv>_snap`).
    pub fn lvm(
        &mut self,
        vg: impl Into<String>,
        lv: impl Into<String>,
        name: Option<&str>,
        request: SnapshotRequest,
    ) -> &mut SnapshotSet {
        self.push(SetMember::Lvm {
            vg: vg.into(),
            lv: lv.into(),
            name: name.map(str::to_string),
            request,
        })
    }

    /// Add a member.
    pub fn push(&mut self, member: SetMember) -> &mut SnapshotSet {
        self.members.push(member);
        self
    }

    /// The members, in the order given.
    pub fn members(&self) -> &[SetMember] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Snapshot every member at one instant (see the [module docs](self) for the
    /// sequence).
    ///
    /// # Errors
    /// Refusals before any change: [`SetErrorKind::Empty`], [`SetErrorKind::Duplicate`],
    /// [`SetErrorKind::SnapshotNameTwice`], [`SetErrorKind::SameCow`],
    /// [`SetErrorKind::StackCycle`], [`SetErrorKind::MetadataOnMember`], and a member's own
    /// refusals ([`SetErrorKind::Snap`], [`SetErrorKind::Write`], naming the member).
    /// Failures later are undone entirely (the same kinds, [`SetErrorKind::Dm`]);
    /// [`SetErrorKind::BoundExceeded`] (abandoned); [`SetErrorKind::AfterCommit`] (the
    /// metadata names the snapshots, a resume failed).
    pub fn take(&self, dm: &DeviceMapper, opts: &SetOptions) -> Result<SetTaken, SetError> {
        Taking::check(self, dm, opts)?.run()
    }
}

/// The checks of the member list alone: not empty, no source twice, no two wrapped
/// devices' snapshots of one name.
fn validate(set: &SnapshotSet) -> Result<(), SetError> {
    let sources: Vec<SetSource> = set.members.iter().map(SetMember::source).collect();
    let whole = |kind| SetError::new(None, kind);
    if sources.is_empty() {
        return Err(whole(SetErrorKind::Empty));
    }
    if let Some(d) = order::first_duplicate(&sources) {
        return Err(whole(SetErrorKind::Duplicate(d.clone())));
    }
    let raw_names = set.members.iter().enumerate().filter_map(|(i, m)| match m {
        SetMember::Raw { name, options } => Some((
            i,
            options
                .name
                .as_ref()
                .map_or_else(|| format!("{name}-snap"), ToString::to_string),
        )),
        SetMember::Lvm { .. } => None,
    });
    let raw_names: Vec<(usize, String)> = raw_names.collect();
    if let Some((_, j)) = order::first_shared(raw_names.iter().map(|(i, n)| (*i, n))) {
        let name = raw_names
            .iter()
            .find(|(i, _)| *i == j)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        return Err(whole(SetErrorKind::SnapshotNameTwice { name }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::taking::{VgPart, commit_all};
    use super::*;
    use crate::lvm::write::error::WriteError;
    use crate::lvm::write::session::VgSession;
    use crate::lvm::write::snapshot::create::{LvAsk, plan_vg};
    use crate::lvm::write::snapshot::size::CowSize;

    fn name(n: &str) -> DmName {
        DmName::new(n).unwrap()
    }

    fn kind(set: &SnapshotSet) -> Option<SetErrorKind> {
        validate(set).err().map(|e| {
            assert!(e.member.is_none(), "{e:?}");
            e.kind
        })
    }

    #[test]
    fn the_member_list_is_checked_first() {
        assert!(matches!(
            kind(&SnapshotSet::new()),
            Some(SetErrorKind::Empty)
        ));
        let req = SnapshotRequest::new(CowSize::Sectors(8192));
        let mut set = SnapshotSet::new();
        set.raw(name("a"), SnapshotOptions::new("/dev/sdb"))
            .lvm("vg0", "a", None, req.clone())
            .raw(name("b"), SnapshotOptions::new("/dev/sdc"));
        assert!(kind(&set).is_none());
        // The same LV twice.
        let mut twice = set.clone();
        twice.lvm("vg0", "a", Some("other"), req.clone());
        match kind(&twice) {
            Some(SetErrorKind::Duplicate(s)) => assert_eq!(s.to_string(), "vg0/a"),
            other => panic!("{other:?}"),
        }
        // The same wrapped device twice, even with other options.
        let mut twice = set.clone();
        twice.raw(name("b"), SnapshotOptions::new("/dev/sdd"));
        assert!(
            matches!(kind(&twice), Some(SetErrorKind::Duplicate(SetSource::Raw(n))) if n.as_str() == "b")
        );
        // Two snapshots of one name: an explicit name against a default one.
        let mut clash = set.clone();
        clash.raw(
            name("c"),
            SnapshotOptions::new("/dev/sde").name(name("a-snap")),
        );
        match kind(&clash) {
            Some(e @ SetErrorKind::SnapshotNameTwice { .. }) => {
                assert_eq!(e.to_string(), "two snapshots would be named a-snap");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_their_member() {
        let e = SetError::new(
            Some(SetSource::Lvm {
                vg: "vg0".into(),
                lv: "pccehr".into(),
            }),
            SetErrorKind::MetadataOnMember { vg: "vg1".into() },
        );
        assert!(
            e.to_string()
                .starts_with("vg0/pccehr: the metadata of volume group vg1"),
            "{e}"
        );
        let e = SetError::new(
            None,
            SetErrorKind::BoundExceeded {
                bound: Duration::from_secs(2),
                left: vec!["x: busy".into()],
            },
        );
        assert_eq!(
            e.to_string(),
            "the freeze outlasted 2s: every origin was resumed and the set abandoned; left behind: x: busy"
        );
    }

    /// A VG on a fresh PV image with one inactive LV `lv0` (no device-mapper needed).
    fn image_vg(dir: &std::path::Path, vg: &str) -> crate::lvm::write::session::WriteOptions {
        use crate::lvm::write::lock::LockDir;
        use crate::lvm::write::ops::{self, LvCreate};
        let path = dir.join(format!("{vg}.img"));
        std::fs::write(&path, vec![0u8; 32 << 20]).unwrap();
        let mut o = WriteOptions::new("test");
        o.devices = Some(vec![path.clone()]);
        o.lock_dir = LockDir::new(dir.join("lock"));
        o.backups = None;
        ops::pvcreate(std::slice::from_ref(&path), true, &o).unwrap();
        ops::vgcreate(vg, std::slice::from_ref(&path), None, false, &o).unwrap();
        let mut req = LvCreate::size("8M").unwrap();
        req.activate = false;
        req.zero = false;
        ops::lvcreate(vg, "lv0", &req, &o).unwrap();
        o
    }

    #[test]
    fn a_failed_commit_commits_the_old_metadata_of_the_vgs_before_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let (oa, ob) = (image_vg(dir.path(), "vga"), image_vg(dir.path(), "vgb"));
        let req = SnapshotRequest::new(CowSize::Sectors(8 << 11));
        let sources = [
            SetSource::Lvm {
                vg: "vga".into(),
                lv: "lv0".into(),
            },
            SetSource::Lvm {
                vg: "vgb".into(),
                lv: "lv0".into(),
            },
        ];
        let mut parts = Vec::new();
        for (i, (vg, o)) in [("vga", &oa), ("vgb", &ob)].into_iter().enumerate() {
            let session = VgSession::open(vg, o).unwrap();
            let ask = LvAsk {
                origin: "lv0",
                name: "lv0_snap".into(),
                req: &req,
            };
            let plan = plan_vg(None, &session, &[ask]).unwrap();
            parts.push(VgPart {
                members: vec![i],
                session,
                plan,
                committed: false,
            });
        }
        let seq_a = parts[0].plan.old.seqno;
        let seq_b = parts[1].plan.old.seqno;
        // VG a is precommitted, VG b is not: b's commit fails after a's.
        let new_a = parts[0].plan.new.clone();
        parts[0].session.precommit(new_a).unwrap();
        let e = commit_all(&mut parts, &sources).unwrap_err();
        assert_eq!(e.member, Some(sources[1].clone()), "{e}");
        assert!(
            matches!(&e.kind, SetErrorKind::Write(w) if matches!(**w, WriteError::Internal(_))),
            "{e:?}"
        );
        assert!(!parts[0].committed);
        drop(parts);
        // VG a: committed twice (the snapshot, then the old metadata again): no snapshot.
        let a = VgSession::open("vga", &oa).unwrap().vg().clone();
        assert_eq!(a.seqno, seq_a + 2);
        assert!(a.lv("lv0_snap").is_none() && a.snapshot_links().next().is_none());
        let b = VgSession::open("vgb", &ob).unwrap().vg().clone();
        assert_eq!(b.seqno, seq_b);
        assert!(b.lv("lv0_snap").is_none());
    }

    #[test]
    fn commits_of_every_vg_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (oa, ob) = (image_vg(dir.path(), "vga"), image_vg(dir.path(), "vgb"));
        let req = SnapshotRequest::new(CowSize::Sectors(4 << 11));
        let sources: Vec<SetSource> = ["vga", "vgb"]
            .iter()
            .map(|v| SetSource::Lvm {
                vg: (*v).into(),
                lv: "lv0".into(),
            })
            .collect();
        let mut parts = Vec::new();
        for (i, (vg, o)) in [("vga", &oa), ("vgb", &ob)].into_iter().enumerate() {
            let mut session = VgSession::open(vg, o).unwrap();
            let asks = [LvAsk {
                origin: "lv0",
                name: "s1".into(),
                req: &req,
            }];
            let plan = plan_vg(None, &session, &asks).unwrap();
            session.precommit(plan.new.clone()).unwrap();
            parts.push(VgPart {
                members: vec![i],
                session,
                plan,
                committed: false,
            });
        }
        commit_all(&mut parts, &sources).unwrap();
        assert!(parts.iter().all(|p| p.committed));
        drop(parts);
        for (vg, o) in [("vga", &oa), ("vgb", &ob)] {
            let v = VgSession::open(vg, o).unwrap().vg().clone();
            assert_eq!(
                v.cow_link("s1").map(|l| l.origin.to_string()),
                Some("lv0".into())
            );
        }
    }

    #[test]
    fn several_lvs_of_one_vg_are_planned_on_one_model() {
        use crate::lvm::write::ops::{self, LvCreate};
        let dir = tempfile::tempdir().unwrap();
        let o = image_vg(dir.path(), "vgm");
        let mut lv = LvCreate::size("8M").unwrap();
        lv.activate = false;
        lv.zero = false;
        ops::lvcreate("vgm", "lv1", &lv, &o).unwrap();
        let session = VgSession::open("vgm", &o).unwrap();
        let req = SnapshotRequest::new(CowSize::Sectors(4 << 11));
        let asks = [
            LvAsk {
                origin: "lv0",
                name: "lv0_snap".into(),
                req: &req,
            },
            LvAsk {
                origin: "lv1",
                name: "lv1_snap".into(),
                req: &req,
            },
        ];
        let plan = plan_vg(None, &session, &asks).unwrap();
        // Both in the one new model, on different extents, internal LVs numbered on.
        let internals: Vec<&str> = plan.lvs.iter().map(|l| l.internal.as_str()).collect();
        assert_eq!(internals, ["snapshot0", "snapshot1"]);
        assert_eq!(plan.new.cow_link("lv0_snap").unwrap().origin, "lv0");
        assert_eq!(plan.new.cow_link("lv1_snap").unwrap().origin, "lv1");
        let extents = |n: &str| match &plan.new.lv(n).unwrap().segments[0].kind {
            crate::lvm::model::SegmentKind::Striped { areas, .. } => areas[0].clone(),
            _ => panic!(),
        };
        assert_ne!(extents("lv0_snap"), extents("lv1_snap"));
        // A name twice in one VG: the second ask is refused, naming its index.
        let twice = [
            LvAsk {
                origin: "lv0",
                name: "s".into(),
                req: &req,
            },
            LvAsk {
                origin: "lv1",
                name: "s".into(),
                req: &req,
            },
        ];
        match plan_vg(None, &session, &twice) {
            Err((1, WriteError::LvExists { lv, .. })) => assert_eq!(lv, "s"),
            other => panic!("{other:?}"),
        }
    }
}
