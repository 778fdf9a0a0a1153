//! After a reboot: re-create the wrappers and persistent snapshots described by the dmsnap
//! records on the devices themselves ([`activate`]).
//!
//! ```no_run
//! use devmapper::DeviceMapper;
//! use devmapper::snapshot::activate::{ActivateOptions, Outcome, activate};
//! let dm = DeviceMapper::new()?;
//! // Every block device in sysfs is scanned when no device is given.
//! let report = activate(&dm, &ActivateOptions::default())?;
//! for a in &report.activations {
//!     match &a.outcome {
//!         Outcome::Refused(why) => eprintln!("{}: not activated: {why}", a.wrapper),
//!         o => println!("{} {}: {o:?}", a.wrapper, a.snapshot),
//!     }
//! }
//! # Ok::<(), devmapper::snapshot::SnapError>(())
//! ```
//!
//! What is found where: each COW device of a persistent snapshot starts with a record
//! ([`super::record`]) naming the wrapper (dm name and uuid), the snapshot, the store's
//! place and chunk size, when it was taken, whether a rollback was merging, and the
//! origin's identity ([`super::identity`]). Nothing is read from the root filesystem, which
//! may be the very thing being rolled back.
//!
//! For each wrapper found: its origin is the one device whose identity matches the record
//! (never by size alone; none or several: refused, naming the candidates and why each is
//! not it). Then, with no device in use yet (at boot, before local filesystems are
//! mounted), `NAME-real` (linear over the origin), each snapshot's `SNAP-cow` (linear over
//! its store) and `SNAP` (`snapshot NAME-real SNAP-cow P chunk`) are made, and `NAME` last
//! (`snapshot-origin NAME-real`, or `snapshot-merge NAME-real SNAP-cow P chunk` when a
//! rollback was merging: the kernel resumes the merge from the store). Devices keep their
//! uuids, so [`Wrapper::open`](super::Wrapper::open) and every workflow work as before the
//! reboot.
//!
//! Idempotent and restartable: a wrapper whose `NAME` is live is reported as already
//! active and left alone; the leftovers of an interrupted run (devices with the wrapper's
//! uuid prefix but no live `NAME`) are removed and the wrapper built again. Nothing is ever
//! suspended: every device is new.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod entry;

pub use entry::{DEFAULT_CONFIG_DIR, EntryError, WrapperEntry, read_entries, remove_entry};

use super::blockdev;
use super::error::{BadDeviceKind, SnapResult};
use super::fault::step;
use super::identity::{self, Identity};
use super::record::{Record, RecordError, RecordState};
use super::{COW_SUFFIX, REAL_SUFFIX, UUID_PREFIX, linear_table, persist};
use crate::cow::{Header, HeaderState};
use crate::kernel::id::{DmName, DmUuid};
use crate::kernel::undo::remove_retrying;
use crate::table::{Table, TableLine};
use crate::targets::{DevRef, Linear, Snapshot as SnapTarget, SnapshotOrigin, Target};
use crate::units::{SECTOR_SIZE, Sectors};
use crate::{CreateOptions, DevNum, DeviceMapper, LoadOptions, SuspendOptions};

/// What to scan.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ActivateOptions {
    /// The devices to scan for records and origins; empty: every block device in sysfs.
    pub devices: Vec<PathBuf>,
    /// A directory of plain-wrapper entries ([`WrapperEntry`], `*.conf`) to re-create too
    /// (`dmsnap` uses [`DEFAULT_CONFIG_DIR`]); `None`: records on devices only.
    pub config_dir: Option<PathBuf>,
}

/// What happened to one plain wrapper entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapperActivation {
    /// The wrapper's dm name.
    pub wrapper: String,
    /// The entry file.
    pub entry: PathBuf,
    /// The origin it was put over, when one matched.
    pub origin: Option<PathBuf>,
    /// What was done ([`Outcome::MergeResumed`] never happens here).
    pub outcome: Outcome,
}

/// What happened to one snapshot found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Created now.
    Activated,
    /// Created now with the origin merging it (a rollback was running at the reboot).
    MergeResumed,
    /// Already there (run before): nothing done.
    AlreadyActive,
    /// Not attached; why (naming the devices involved).
    Refused(String),
}

impl Outcome {
    /// The word for the outcome: `activated`, `merge-resumed`, `already-active` or
    /// `refused`.
    ///
    /// ```
    /// use devmapper::snapshot::activate::Outcome;
    /// assert_eq!(Outcome::MergeResumed.as_str(), "merge-resumed");
    /// assert_eq!(Outcome::Refused("no origin".into()).as_str(), "refused");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Activated => "activated",
            Self::MergeResumed => "merge-resumed",
            Self::AlreadyActive => "already-active",
            Self::Refused(_) => "refused",
        }
    }

    /// Why it was refused, when it was.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Self::Refused(why) => Some(why),
            _ => None,
        }
    }
}

/// One snapshot found on a COW device and what was done with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// The wrapper's dm name.
    pub wrapper: String,
    /// The snapshot's dm name.
    pub snapshot: String,
    /// The COW device it was found on.
    pub cow: PathBuf,
    /// The origin it was attached to (or is attached to), when one matched.
    pub origin: Option<PathBuf>,
    /// The record found.
    pub record: Record,
    /// What was done.
    pub outcome: Outcome,
}

/// Everything [`activate`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivateReport {
    /// One entry per record found.
    pub activations: Vec<Activation>,
    /// Devices starting with a record that does not check out: left alone.
    pub damaged: Vec<(PathBuf, RecordError)>,
    /// One entry per plain-wrapper entry whose wrapper has no snapshot record.
    pub wrappers: Vec<WrapperActivation>,
    /// Entry files that cannot be read: left alone.
    pub bad_entries: Vec<(PathBuf, String)>,
}

impl ActivateReport {
    /// Some snapshot or plain wrapper found was refused (the rest was done).
    pub fn any_refused(&self) -> bool {
        self.activations
            .iter()
            .map(|a| &a.outcome)
            .chain(self.wrappers.iter().map(|w| &w.outcome))
            .any(|o| matches!(o, Outcome::Refused(_)))
    }
}

#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    dev: DevNum,
    sectors: u64,
}

fn sysfs(dev: DevNum, rel: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/sys/dev/block/{dev}/{rel}")).ok()?;
    Some(s.trim().to_owned())
}

/// A device that this crate made (a wrapper, `-real`, `-cow`, a snapshot).
fn is_ours(dev: DevNum) -> bool {
    sysfs(dev, "dm/uuid").is_some_and(|u| u.starts_with(UUID_PREFIX))
}

fn candidate(path: &Path) -> SnapResult<Candidate> {
    let dev = blockdev::block_dev_num(path)?;
    let sectors = sysfs(dev, "size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| blockdev::bad(path, BadDeviceKind::NoSysfsSize))?;
    Ok(Candidate {
        path: path.to_owned(),
        dev,
        sectors,
    })
}

/// Every block device in sysfs with a node in /dev and a non-zero size, but our own.
fn all_devices() -> Vec<Candidate> {
    let mut v: Vec<Candidate> = std::fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dev: DevNum = std::fs::read_to_string(e.path().join("dev"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let path = super::blockdev::node_of(dev)?;
            let c = candidate(&path).ok()?;
            (c.dev == dev && c.sectors > 0).then_some(c)
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Re-create every wrapper and persistent snapshot described by the records on the
/// scanned devices.
///
/// # Errors
/// A given device is not a block device, or a device-mapper call fails outside the
/// building of one wrapper (a failure while building is undone and reported as
/// [`Outcome::Refused`] for that wrapper's snapshots).
pub fn activate(dm: &DeviceMapper, opts: &ActivateOptions) -> SnapResult<ActivateReport> {
    let cands = if opts.devices.is_empty() {
        all_devices()
    } else {
        opts.devices
            .iter()
            .map(|p| candidate(p))
            .collect::<SnapResult<Vec<_>>>()?
    };
    let cands: Vec<Candidate> = cands.into_iter().filter(|c| !is_ours(c.dev)).collect();
    let mut report = ActivateReport::default();
    // Records, by wrapper uuid.
    let mut groups: BTreeMap<String, Vec<(usize, Record)>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        let Ok(f) = std::fs::File::open(&c.path) else {
            continue;
        };
        match persist::read_record(&f) {
            Ok(Some(Ok(r))) => groups
                .entry(r.wrapper_uuid.to_string())
                .or_default()
                .push((i, r)),
            Ok(Some(Err(e))) => report.damaged.push((c.path.clone(), e)),
            _ => {}
        }
    }
    let cow_devs: Vec<DevNum> = groups
        .values()
        .flatten()
        .map(|(i, _)| cands[*i].dev)
        .collect();
    let recorded: Vec<String> = groups.keys().cloned().collect();
    for (_, mut recs) in groups {
        recs.sort_by(|a, b| {
            (a.1.created, &a.1.snapshot_name).cmp(&(b.1.created, &b.1.snapshot_name))
        });
        let outcomes = activate_wrapper(dm, &cands, &cow_devs, &recs)?;
        for ((i, record), (origin, outcome)) in recs.into_iter().zip(outcomes) {
            report.activations.push(Activation {
                wrapper: record.wrapper_name.to_string(),
                snapshot: record.snapshot_name.to_string(),
                cow: cands[i].path.clone(),
                origin,
                record,
                outcome,
            });
        }
    }
    if let Some(dir) = &opts.config_dir {
        for (path, entry) in read_entries(dir) {
            match entry {
                Err(e) => report.bad_entries.push((path, e)),
                Ok(e) if recorded.contains(&e.uuid.to_string()) => {}
                Ok(e) => {
                    let (origin, outcome) = activate_plain(dm, &cands, &cow_devs, &e)?;
                    report.wrappers.push(WrapperActivation {
                        wrapper: e.name.to_string(),
                        entry: path,
                        origin,
                        outcome,
                    });
                }
            }
        }
    }
    Ok(report)
}

/// A plain wrapper from its entry: `NAME` linear over the one matching device.
fn activate_plain(
    dm: &DeviceMapper,
    cands: &[Candidate],
    cow_devs: &[DevNum],
    e: &WrapperEntry,
) -> SnapResult<(Option<PathBuf>, Outcome)> {
    if let Ok(info) = dm.info(&e.uuid) {
        if info.has_live_table() {
            return Ok((
                active_origin(dm, cands, e.uuid.as_str()),
                Outcome::AlreadyActive,
            ));
        }
        // Left by an interrupted run.
        let _ = dm.clear_table(&e.uuid);
        remove_retrying(dm, &info.name)?;
    }
    if let Ok(info) = dm.info(&e.name) {
        return Ok((
            None,
            Outcome::Refused(format!(
                "a device named {} exists that is not this wrapper (uuid {:?})",
                e.name, info.uuid
            )),
        ));
    }
    let origin = match find_origin(cands, cow_devs, e.sectors, &e.ids, &e.name) {
        Ok(o) => o,
        Err(why) => return Ok((None, Outcome::Refused(why))),
    };
    let built = (|| -> SnapResult<()> {
        dm.create(&e.name, CreateOptions::default().uuid(e.uuid.clone()))?;
        dm.load(
            &e.name,
            &linear_table(origin.dev, Sectors(e.sectors)),
            LoadOptions::default(),
        )?;
        dm.resume(&e.name, SuspendOptions::default())?;
        Ok(())
    })();
    Ok(match built {
        Ok(()) => (Some(origin.path.clone()), Outcome::Activated),
        Err(err) => {
            let _ = remove_retrying(dm, &e.name);
            (
                Some(origin.path.clone()),
                Outcome::Refused(format!(
                    "creating {} over {} failed (undone): {err}",
                    e.name,
                    origin.path.display()
                )),
            )
        }
    })
}

type Outcomes = Vec<(Option<PathBuf>, Outcome)>;

/// The device the linear table of the dm device with `uuid` maps: a scanned path, else its
/// /dev node.
fn active_origin(dm: &DeviceMapper, cands: &[Candidate], uuid: &str) -> Option<PathBuf> {
    let uuid = DmUuid::new(uuid).ok()?;
    let t = dm.table(&uuid, crate::Which::Live).ok()?;
    let dev = match &t.into_lines().first()?.target {
        Target::Linear(l) => super::devnum(&l.device)?,
        _ => return None,
    };
    cands
        .iter()
        .find(|c| c.dev == dev)
        .map(|c| c.path.clone())
        .or_else(|| super::blockdev::node_of(dev))
}

fn refuse_all(n: usize, origin: Option<&Path>, why: &str) -> Outcomes {
    (0..n)
        .map(|_| (origin.map(Path::to_owned), Outcome::Refused(why.to_owned())))
        .collect()
}

/// The one candidate that is the recorded origin, or why there is none.
fn find_origin<'c>(
    cands: &'c [Candidate],
    cow_devs: &[DevNum],
    sectors: u64,
    ids: &[super::record::DeviceId],
    wrapper: &DmName,
) -> Result<&'c Candidate, String> {
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    for c in cands
        .iter()
        .filter(|c| c.sectors == sectors && !cow_devs.contains(&c.dev))
    {
        let Some(id) = identity::identify(c.dev, Some(&c.path)) else {
            continue;
        };
        match id.matches(sectors, ids) {
            Ok(()) => hits.push(c),
            Err(m) => misses.push(format!("{} is not it: {m}", c.path.display())),
        }
    }
    if ids.is_empty() {
        return Err(format!(
            "no identity was recorded for the origin of {wrapper} (its device had no serial, wwid, dm/md uuid or filesystem uuid), so no device can be proven to be it"
        ));
    }
    let recorded = Identity {
        sectors,
        ids: ids.to_vec(),
    };
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "the origin of {wrapper} is not among the devices scanned (it had {recorded}){}",
            if misses.is_empty() {
                "; no device has its size".to_owned()
            } else {
                format!("; {}", misses.join("; "))
            }
        )),
        many => Err(format!(
            "several devices match the origin of {wrapper} ({recorded}): {}; give the right one on the command line",
            many.iter()
                .map(|c| c.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether the COW device still holds the store the record describes.
fn check_store(cow: &Candidate, rec: &Record) -> Result<(), String> {
    let end = rec.store_offset.0.saturating_add(rec.store_sectors.0);
    if cow.sectors < end {
        return Err(format!(
            "{} has {} sectors, its record says the store ends at sector {end}",
            cow.path.display(),
            cow.sectors
        ));
    }
    let f = std::fs::File::open(&cow.path).map_err(|e| format!("{}: {e}", cow.path.display()))?;
    let mut raw = [0u8; 16];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut raw, rec.store_offset.0 * SECTOR_SIZE)
        .map_err(|e| format!("{}: {e}", cow.path.display()))?;
    match Header::parse(&raw) {
        Ok(HeaderState::Fresh) => Ok(()),
        Ok(HeaderState::Persistent(h)) if h.chunk_sectors == rec.chunk_sectors => Ok(()),
        Ok(HeaderState::Persistent(h)) => Err(format!(
            "the store on {} has {}-sector chunks, its record says {}",
            cow.path.display(),
            h.chunk_sectors,
            rec.chunk_sectors
        )),
        Err(e) => Err(format!(
            "no snapshot store at sector {} of {}: {e}",
            rec.store_offset,
            cow.path.display()
        )),
    }
}

fn activate_wrapper(
    dm: &DeviceMapper,
    cands: &[Candidate],
    cow_devs: &[DevNum],
    recs: &[(usize, Record)],
) -> SnapResult<Outcomes> {
    let first = &recs[0].1;
    let wname = &first.wrapper_name;
    let wuuid = &first.wrapper_uuid;
    let n = recs.len();

    // Already active (a live NAME with our uuid): report, change nothing.
    if let Ok(info) = dm.info(wuuid)
        && info.has_live_table()
    {
        let origin = active_origin(dm, cands, &format!("{wuuid}{REAL_SUFFIX}"));
        let live = dm.list()?;
        return Ok(recs
            .iter()
            .map(|(_, r)| {
                let there = live
                    .iter()
                    .any(|d| d.uuid.as_deref() == Some(r.snapshot_uuid.as_str()));
                let layer = format!("{}{COW_SUFFIX}", r.snapshot_name);
                let merging = r.state == RecordState::Merging && live.iter().any(|d| d.name == layer);
                let outcome = if there || merging {
                    Outcome::AlreadyActive
                } else {
                    Outcome::Refused(format!(
                        "{} is already active without this snapshot; drop it or activate before using {}",
                        info.name, info.name
                    ))
                };
                (origin.clone(), outcome)
            })
            .collect());
    }
    if let Ok(info) = dm.info(wname)
        && info.uuid.as_deref() != Some(wuuid.as_str())
    {
        return Ok(refuse_all(
            n,
            None,
            &format!(
                "a device named {wname} exists that is not this wrapper (uuid {:?})",
                info.uuid
            ),
        ));
    }
    let origin = match find_origin(
        cands,
        cow_devs,
        first.origin_sectors,
        &first.origin_ids,
        wname,
    ) {
        Ok(o) => o,
        Err(why) => return Ok(refuse_all(n, None, &why)),
    };

    // Leftovers of an interrupted run: snapshots first, then the rest, NAME last.
    let prefix = format!("{wuuid}-");
    let mut left: Vec<(u8, DmName)> = dm
        .list()?
        .into_iter()
        .filter_map(|d| {
            let u = d.uuid.as_deref()?;
            let rank = if u.starts_with(&format!("{prefix}snap-")) {
                0
            } else if u.starts_with(&prefix) {
                1
            } else {
                return None;
            };
            Some((rank, DmName::new(&d.name).ok()?))
        })
        .collect();
    left.sort();
    for (_, name) in &left {
        let _ = dm.clear_table(name);
        remove_retrying(dm, name)?;
    }
    if dm.exists(wuuid)? {
        remove_retrying(dm, wname)?;
    }

    // Which snapshots can go on.
    let merging = recs
        .iter()
        .position(|(_, r)| r.state == RecordState::Merging);
    let mut plan: Outcomes = Vec::with_capacity(n);
    for (k, (i, r)) in recs.iter().enumerate() {
        let cow = &cands[*i];
        let o = Some(origin.path.clone());
        if r.origin_sectors != first.origin_sectors || r.origin_ids != first.origin_ids {
            plan.push((
                o,
                Outcome::Refused(format!(
                    "{} and {} disagree about the origin of {wname}",
                    cow.path.display(),
                    cands[recs[0].0].path.display()
                )),
            ));
        } else if let Some(m) = merging.filter(|&m| m != k) {
            plan.push((o, Outcome::Refused(format!(
                "a rollback of {wname} to {} was merging; this snapshot cannot be kept beside it",
                recs[m].1.snapshot_name
            ))));
        } else if let Err(why) = check_store(cow, r) {
            plan.push((o, Outcome::Refused(why)));
        } else {
            plan.push((
                o,
                if r.state == RecordState::Merging {
                    Outcome::MergeResumed
                } else {
                    Outcome::Activated
                },
            ));
        }
    }
    let chosen: Vec<usize> = (0..n)
        .filter(|&k| !matches!(plan[k].1, Outcome::Refused(_)))
        .collect();
    if chosen.is_empty() {
        return Ok(plan);
    }
    if let Err(e) = build(dm, origin, cands, recs, &chosen) {
        for k in chosen {
            plan[k].1 = Outcome::Refused(format!(
                "building the devices over {} failed (undone): {e}",
                origin.path.display()
            ));
        }
    }
    Ok(plan)
}

/// Create `-real`, the chosen snapshots' `-cow` layers and snapshots, and `NAME` last.
fn build(
    dm: &DeviceMapper,
    origin: &Candidate,
    cands: &[Candidate],
    recs: &[(usize, Record)],
    chosen: &[usize],
) -> SnapResult<()> {
    let first = &recs[0].1;
    let len = Sectors(first.origin_sectors);
    let mut made: Vec<DmName> = Vec::new();
    let r = (|| -> SnapResult<()> {
        let mk = |made: &mut Vec<DmName>, name: DmName, uuid: DmUuid, t: &Table| {
            let info = dm.create(&name, CreateOptions::default().uuid(uuid))?;
            made.push(name.clone());
            dm.load(&name, t, LoadOptions::default())?;
            dm.resume(&name, SuspendOptions::default())?;
            SnapResult::Ok(info.dev)
        };
        let real = mk(
            &mut made,
            DmName::new(&format!("{}{REAL_SUFFIX}", first.wrapper_name))?,
            DmUuid::new(&format!("{}{REAL_SUFFIX}", first.wrapper_uuid))?,
            &linear_table(origin.dev, len),
        )?;
        step("activate", 1);
        let mut origin_target = Target::SnapshotOrigin(SnapshotOrigin::new(DevRef::Num(real)));
        for &k in chosen {
            let (i, r) = &recs[k];
            let n = r
                .snapshot_uuid
                .as_str()
                .rsplit_once("-snap-")
                .map(|(_, n)| n.to_owned())
                .unwrap_or_default();
            let layer = mk(
                &mut made,
                DmName::new(&format!("{}{COW_SUFFIX}", r.snapshot_name))?,
                DmUuid::new(&format!("{}-cow-{n}", r.wrapper_uuid))?,
                &Table::from_lines(vec![TableLine::new(
                    Sectors(0),
                    r.store_sectors,
                    Linear::new(DevRef::Num(cands[*i].dev), r.store_offset),
                )]),
            )?;
            step("activate", 2);
            let t = SnapTarget::persistent(
                DevRef::Num(real),
                DevRef::Num(layer),
                Sectors(u64::from(r.chunk_sectors)),
            );
            if r.state == RecordState::Merging {
                origin_target = Target::SnapshotMerge(t);
            } else {
                mk(
                    &mut made,
                    r.snapshot_name.clone(),
                    r.snapshot_uuid.clone(),
                    &Table::from_lines(vec![TableLine::new(Sectors(0), len, Target::Snapshot(t))]),
                )?;
                step("activate", 3);
            }
        }
        let name = first.wrapper_name.clone();
        dm.create(
            &name,
            CreateOptions::default().uuid(first.wrapper_uuid.clone()),
        )?;
        made.push(name.clone());
        step("activate", 4);
        dm.load(
            &name,
            &Table::from_lines(vec![TableLine::new(Sectors(0), len, origin_target)]),
            LoadOptions::default(),
        )?;
        dm.resume(&name, SuspendOptions::default())?;
        step("activate", 5);
        Ok(())
    })();
    if r.is_err() {
        for name in made.iter().rev() {
            let _ = dm.clear_table(name);
            let _ = remove_retrying(dm, name);
        }
    }
    r
}
