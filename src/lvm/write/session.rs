//! One VG opened for writing, as lvm2's `vg_read` for update, `vg_write` and `vg_commit`
//! do it: [`VgSession::open`] takes the VG lock `V_<vg>` exclusively, **then** scans the
//! devices and re-reads every PV of the VG (a commit made by anyone while we waited for
//! the lock is seen), and refuses what is not safe to write (a VG shared through
//! lvmlockd, a foreign system id, missing PVs, metadata the printer cannot write back
//! unchanged, metadata areas that disagree). [`VgSession::precommit`] gives the new VG the
//! next seqno, prints it (copying the sections of unchanged LVs from the print of the VG
//! it started from, [`PrintedVg`]), parses back what was printed anew and compares it with
//! the model, checks the extent layout, and writes it into every metadata area of every PV
//! (precommit slot); [`VgSession::commit`] makes it the committed copy everywhere (and keeps
//! `/etc/lvm/archive` and `/etc/lvm/backup` up to date where they exist; the archive is
//! printed from the moment the session opens, the backup written while the caller goes on);
//! [`VgSession::revert`] (or dropping the session) forgets a precommitted copy. The lock
//! is held until the session is dropped, so across the commit and any device-mapper
//! change that goes with it.
//!
//! ```no_run
//! use devmapper::lvm::write::session::{VgSession, WriteOptions};
//! let opts = WriteOptions::new("example: tag vg0");
//! let mut s = VgSession::open("vg0", &opts)?;
//! let mut vg = s.vg().clone();
//! vg.tags.push("example".into());
//! s.precommit(vg)?;
//! s.commit()?;
//! # Ok::<(), devmapper::lvm::write::error::WriteError>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::alloc::check_layout;
use super::backup::{self, ArchiveText, BackupDirs, BackupError};
use super::commit::{self, MdaTarget, Precommitted};
use super::error::{AreaRef, Result, WriteError};
use super::lock::{FileLock, LockDir, LockMode, lock_vg};
use super::text::{PrintedVg, TextHeader, check_printable_base, disk_text_from};
use crate::DevNum;
use crate::lvm::check::PvRef;
use crate::lvm::config::{self, ParseMode};
use crate::lvm::devices;
use crate::lvm::model::{PhysicalVolume, VolumeGroup};
use crate::lvm::scan::{self, MdaOutcome, ScanReport};

/// How a writing operation finds devices, locks, keeps backups and describes itself.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// The devices to scan; `None`: every block device lvm2 would scan
    /// ([`devices::scan_devices`]).
    pub devices: Option<Vec<PathBuf>>,
    /// lvm2's locking directory.
    pub lock_dir: LockDir,
    /// Where archive and backup files go; `None`: none are written.
    pub backups: Option<BackupDirs>,
    /// This host's lvm system id (`None`: none set; only VGs without one are written).
    pub local_system_id: Option<String>,
    /// The command line, for the metadata's `description` and the backup files.
    pub command: String,
}

impl WriteOptions {
    /// lvm2's defaults: every device, the lock directory `lvm.conf` names
    /// ([`LockDir::system`]; lvm2's default when it cannot be read), `/etc/lvm/backup` and
    /// `/etc/lvm/archive` when both exist, no system id.
    pub fn new(command: impl Into<String>) -> WriteOptions {
        WriteOptions {
            devices: None,
            lock_dir: LockDir::system().unwrap_or_default(),
            backups: BackupDirs::system(),
            local_system_id: None,
            command: command.into(),
        }
    }
}

/// The devices to scan: the ones given, or what sysfs lists.
pub(crate) fn device_paths(opts: &WriteOptions) -> Result<Vec<PathBuf>> {
    match &opts.devices {
        Some(d) => Ok(d.clone()),
        None => Ok(devices::scan_devices()
            .map_err(WriteError::io("/sys/class/block"))?
            .into_iter()
            .map(|d| d.path)
            .collect()),
    }
}

/// What [`scan_devices`] found: the paths scanned (the scan's device indexes) and the
/// report.
#[derive(Debug)]
pub struct ScannedDevices {
    /// The devices scanned, in the report's device order.
    pub paths: Vec<PathBuf>,
    /// What they hold.
    pub report: ScanReport,
}

/// Scan the devices of `opts` (given, or every block device lvm2 would scan), opened
/// read-only. Devices given must open; devices found in sysfs that do not (gone, no
/// permission) are left out.
///
/// # Errors
/// [`WriteError::DuplicateDevice`], [`WriteError::Io`].
pub fn scan_devices(opts: &WriteOptions) -> Result<ScannedDevices> {
    let given = opts.devices.is_some();
    let mut paths = Vec::new();
    let mut files = Vec::new();
    for p in device_paths(opts)? {
        if paths.contains(&p) {
            if given {
                return Err(WriteError::DuplicateDevice { path: p });
            }
            continue;
        }
        match File::open(&p) {
            Ok(f) => {
                files.push(f);
                paths.push(p);
            }
            Err(e) if given => return Err(WriteError::io(&p)(e)),
            Err(_) => {}
        }
    }
    let report = scan::scan(&files);
    Ok(ScannedDevices { paths, report })
}

/// Open a device read-write for metadata writes (no `O_EXCL`: the PVs of active LVs are
/// held by their dm devices, as under lvm2).
pub(crate) fn open_rw(path: &Path) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(WriteError::io(path))?;
    Ok(f)
}

/// The `major:minor` of a block device (`None` for an image file).
pub(crate) fn devnum_of(f: &File) -> Option<DevNum> {
    let md = f.metadata().ok()?;
    md.file_type()
        .is_block_device()
        .then(|| DevNum::from_dev_t(md.rdev()))
}

struct Pending {
    pre: Precommitted,
    vg: VolumeGroup,
    /// The on-disk print of `vg`.
    printed: PrintedVg,
}

/// A VG locked for writing, re-read after locking, checked safe to write.
pub struct VgSession {
    lock: Option<FileLock>,
    /// Shared with the thread printing its archive.
    vg: Arc<VolumeGroup>,
    /// The VG's PVs, opened read-write, in `vg.pvs` order.
    pv_files: Vec<File>,
    pv_paths: Vec<PathBuf>,
    /// For each PV (in `pv_files` order): it holds a metadata area in use, so the
    /// precommit writes and flushes it.
    flushed: Vec<bool>,
    targets: Vec<MdaTarget>,
    max_seqno: u64,
    backups: Option<BackupDirs>,
    command: String,
    writes: u32,
    archived: bool,
    /// The archive of `vg`, printed on a second thread from the moment the session opened
    /// (while the command plans its change; printed at once when no thread could be
    /// started); the first precommit writes it. `None` where no archive is kept, or once
    /// written.
    archive_job: Option<Background<std::result::Result<ArchiveText, BackupError>>>,
    /// The on-disk print of `vg`, when it is the committed text byte for byte: the base
    /// the next print copies unchanged LV sections from.
    disk_base: Option<PrintedVg>,
    /// The file print of `vg` (its archive or backup file), the base of the next backup.
    file_base: Option<PrintedVg>,
    /// The backup file of the last commit, being written on a second thread (while the
    /// caller activates what it committed); waited for by the next write,
    /// [`VgSession::warnings`], [`VgSession::close`] and drop.
    backup_job: Option<Background<BackupDone>>,
    pending: Option<Pending>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for VgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VgSession")
            .field("vg", &self.vg.name)
            .field("seqno", &self.vg.seqno)
            .field("pvs", &self.pv_paths)
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl VgSession {
    /// Lock `V_<vg>` exclusively (waiting for lvm2 or another writer), then scan the
    /// devices, find the VG and re-read its PVs, and refuse what is unsafe to write.
    ///
    /// # Errors
    /// [`WriteError::Lock`], [`WriteError::VgNotFound`], [`WriteError::VgAmbiguous`],
    /// [`WriteError::Unreadable`], [`WriteError::LockType`],
    /// [`WriteError::ForeignSystemId`], [`WriteError::Exported`], [`WriteError::Partial`],
    /// [`WriteError::AreasDisagree`], [`WriteError::AreaUnreadable`],
    /// [`WriteError::Unprintable`], [`WriteError::Io`].
    pub fn open(vg_name: &str, opts: &WriteOptions) -> Result<VgSession> {
        let lock = lock_vg(&opts.lock_dir, vg_name, LockMode::Exclusive, true)?;
        let scanned = scan_devices(opts)?;
        let mut s = VgSession::from_scan(vg_name, scanned, opts)?;
        s.lock = Some(lock);
        Ok(s)
    }

    /// Checks and opens of [`VgSession::open`] on a scan made under the VG lock (the
    /// VG is moved out of the scan, not copied).
    pub(crate) fn from_scan(
        vg_name: &str,
        mut scanned: ScannedDevices,
        opts: &WriteOptions,
    ) -> Result<VgSession> {
        let report = &scanned.report;
        let matching: Vec<usize> = (0..report.vgs.len())
            .filter(|&i| report.vgs[i].vg.name == vg_name)
            .collect();
        let vi = match matching.as_slice() {
            [] => {
                if let Some(f) = report.failed_vgs.iter().find(|f| f.name == vg_name) {
                    return Err(WriteError::Unreadable {
                        vg: vg_name.to_string(),
                        seqno: f.seqno,
                        reason: f.error.to_string(),
                    });
                }
                return Err(WriteError::VgNotFound {
                    vg: vg_name.to_string(),
                });
            }
            [one] => *one,
            many => {
                return Err(WriteError::VgAmbiguous {
                    vg: vg_name.to_string(),
                    count: many.len(),
                });
            }
        };
        let s = &report.vgs[vi];
        let vg = &s.vg;
        if let Some(lt) = &vg.lock_type
            && lt != "none"
        {
            return Err(WriteError::LockType {
                vg: vg.name.clone(),
                lock_type: lt.clone(),
            });
        }
        if let Some(sid) = &vg.system_id
            && !sid.is_empty()
            && Some(sid.as_str()) != opts.local_system_id.as_deref()
        {
            return Err(WriteError::ForeignSystemId {
                vg: vg.name.clone(),
                system_id: sid.clone(),
                local: opts.local_system_id.clone(),
            });
        }
        if vg.status.contains("EXPORTED") {
            return Err(WriteError::Exported {
                vg: vg.name.clone(),
            });
        }
        let missing: Vec<PvRef> = vg
            .pvs
            .iter()
            .zip(&s.pv_devices)
            .filter(|(p, d)| d.is_none() || p.is_missing())
            .map(|(p, _)| PvRef::from(p))
            .collect();
        if !missing.is_empty() {
            return Err(WriteError::Partial {
                vg: vg.name.clone(),
                missing,
            });
        }
        // Every metadata area of every PV of the VG: readable, and never another text
        // under the newest seqno.
        let mut max_seqno = vg.seqno;
        let mut disagree = Vec::new();
        let mut pv_paths = Vec::with_capacity(vg.pvs.len());
        let mut flushed = Vec::with_capacity(vg.pvs.len());
        let mut targets = Vec::new();
        for (i, dev) in s.pv_devices.iter().enumerate() {
            let Some(dev) = *dev else { continue };
            let path = scanned.paths.get(dev).cloned().unwrap_or_default();
            let Some(pv) = report.pvs.iter().find(|p| p.device == dev) else {
                continue;
            };
            for m in &pv.mdas {
                let area = AreaRef {
                    path: path.clone(),
                    offset: m.area.offset,
                };
                match &m.outcome {
                    MdaOutcome::Text {
                        vg_id, seqno, text, ..
                    } if *vg_id == vg.id => {
                        max_seqno = max_seqno.max(*seqno);
                        if *seqno == vg.seqno && *text.text != *s.text {
                            disagree.push(area);
                        }
                    }
                    MdaOutcome::Error(e) => {
                        return Err(WriteError::AreaUnreadable {
                            vg: vg.name.clone(),
                            area,
                            reason: e.to_string(),
                        });
                    }
                    _ => {}
                }
                targets.push(MdaTarget {
                    device: i,
                    area: m.area,
                });
            }
            pv_paths.push(path);
            flushed.push(
                pv.mdas
                    .iter()
                    .any(|m| !matches!(m.outcome, MdaOutcome::Ignored)),
            );
        }
        if !disagree.is_empty() {
            return Err(WriteError::AreasDisagree {
                vg: vg.name.clone(),
                seqno: vg.seqno,
                areas: disagree,
            });
        }
        let found = scanned.report.vgs.swap_remove(vi);
        let vg = Arc::new(found.vg);
        // Where archives are kept the first write archives the VG as read: its print
        // starts now, beside the print-back check and the command's planning.
        let archive_job = opts.backups.as_ref().map(|_| {
            let (vg, command) = (Arc::clone(&vg), opts.command.clone());
            Background::start("lvm-archive", move || ArchiveText::print(&vg, &command))
        });
        let disk_base =
            check_printable_base(&vg, &found.text).map_err(|e| WriteError::Unprintable {
                vg: vg.name.clone(),
                reason: e.to_string(),
            })?;
        let pv_files = pv_paths
            .iter()
            .map(|p| open_rw(p))
            .collect::<Result<Vec<File>>>()?;
        Ok(VgSession {
            lock: None,
            vg,
            pv_files,
            pv_paths,
            flushed,
            targets,
            max_seqno,
            backups: opts.backups.clone(),
            command: opts.command.clone(),
            writes: 0,
            archived: false,
            archive_job,
            disk_base,
            file_base: None,
            backup_job: None,
            pending: None,
            warnings: Vec::new(),
        })
    }

    /// A session for a VG that is being created (`vgcreate`): the PVs given, opened
    /// read-write, with their metadata areas; nothing committed yet (seqno 0), the
    /// caller holding the locks.
    pub(crate) fn new_vg(
        vg: VolumeGroup,
        pvs: Vec<(PathBuf, File, Vec<crate::lvm::label::DiskLocn>)>,
        opts: &WriteOptions,
        lock: FileLock,
    ) -> VgSession {
        let mut targets = Vec::new();
        let mut pv_paths = Vec::new();
        let mut pv_files = Vec::new();
        let mut flushed = Vec::new();
        for (i, (path, file, areas)) in pvs.into_iter().enumerate() {
            flushed.push(!areas.is_empty());
            targets.extend(areas.into_iter().map(|area| MdaTarget { device: i, area }));
            pv_paths.push(path);
            pv_files.push(file);
        }
        VgSession {
            lock: Some(lock),
            vg: Arc::new(vg),
            pv_files,
            pv_paths,
            flushed,
            targets,
            max_seqno: 0,
            backups: opts.backups.clone(),
            command: opts.command.clone(),
            writes: 0,
            // Nothing to archive before the first commit.
            archived: true,
            archive_job: None,
            disk_base: None,
            file_base: None,
            backup_job: None,
            pending: None,
            warnings: Vec::new(),
        }
    }

    /// The VG as committed now.
    pub fn vg(&self) -> &VolumeGroup {
        &self.vg
    }

    /// The VG's PV devices, in the metadata's PV order.
    pub fn pv_paths(&self) -> &[PathBuf] {
        &self.pv_paths
    }

    /// The device of a PV of the VG (by id).
    pub fn pv_path(&self, pv: &PhysicalVolume) -> Option<&Path> {
        let i = self.vg.pvs.iter().position(|p| p.id == pv.id)?;
        self.pv_paths.get(i).map(PathBuf::as_path)
    }

    /// The `major:minor` of a PV of the VG, for device-mapper tables.
    pub fn pv_devnum(&self, pv: &PhysicalVolume) -> Option<DevNum> {
        let i = self.vg.pvs.iter().position(|p| p.id == pv.id)?;
        self.pv_files.get(i).and_then(devnum_of)
    }

    /// Whether [`VgSession::precommit`] flushes this PV's device (it holds a metadata area
    /// in use): then a write made to the PV before the precommit (the zeroed start of a
    /// new COW store) is durable before the commit names it, without a flush of its own.
    /// `false` for a PV without metadata areas in use (`--metadatacopies 0`, ignored
    /// areas), and for a PV not in the VG.
    pub fn precommit_flushes(&self, pv: &PhysicalVolume) -> bool {
        self.vg
            .pvs
            .iter()
            .position(|p| p.id == pv.id)
            .and_then(|i| self.flushed.get(i).copied())
            .unwrap_or(false)
    }

    /// The open PV devices (read-write), in the metadata's PV order.
    pub(crate) fn pv_files(&self) -> &[File] {
        &self.pv_files
    }

    /// Non-fatal problems met so far (a backup file that could not be written); waits
    /// for the backup file of the last commit first.
    pub fn warnings(&mut self) -> &[String] {
        self.finish_backup();
        &self.warnings
    }

    /// Wait for the backup file of the last commit: its print becomes the base of the
    /// next backup, its failure a warning.
    fn finish_backup(&mut self) {
        let Some(job) = self.backup_job.take() else {
            return;
        };
        let failed = match job.wait() {
            Some(Ok((_, printed))) => {
                self.file_base = Some(printed);
                return;
            }
            Some(Err(e)) => e.to_string(),
            None => "it was not written".into(),
        };
        self.warnings.push(format!(
            "WARNING: Backup of volume group {} metadata failed: {failed}",
            self.vg.name
        ));
    }

    /// A precommitted copy waits for [`VgSession::commit`].
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Give `new` the next seqno (the highest seen on any area + 1), print it, parse the
    /// text back and compare it with `new`, check the extent layout, archive the old
    /// metadata (the first write of the session, where archives are kept), and write the
    /// text into every metadata area of every PV with the precommit slot pointing at it.
    ///
    /// # Errors
    /// [`WriteError::Internal`] when a copy is already pending; [`WriteError::SelfCheck`],
    /// [`WriteError::Alloc`], [`WriteError::Backup`], [`WriteError::Commit`] or [`WriteError::CommitOn`] (the size
    /// limit, an I/O error: every area already written is reverted).
    pub fn precommit(&mut self, new: VolumeGroup) -> Result<()> {
        self.precommit_inner(new, None::<fn() -> Result<()>>)
    }

    /// [`VgSession::precommit`], with `change` run on a second thread while `new` is
    /// printed and checked: a device-mapper change the new metadata needs made first (the
    /// device of an LV being removed). Nothing is written unless `change` succeeds; when
    /// the change succeeded and the precommit then failed, undoing the change is the
    /// caller's.
    ///
    /// # Errors
    /// `change`'s error, or those of [`VgSession::precommit`].
    pub fn precommit_with(
        &mut self,
        new: VolumeGroup,
        change: impl FnOnce() -> Result<()> + Send,
    ) -> Result<()> {
        self.precommit_inner(new, Some(change))
    }

    fn precommit_inner<F: FnOnce() -> Result<()> + Send>(
        &mut self,
        mut new: VolumeGroup,
        change: Option<F>,
    ) -> Result<()> {
        if self.pending.is_some() {
            return Err(WriteError::Internal(
                "precommit with a copy already pending",
            ));
        }
        self.finish_backup();
        new.seqno = self.max_seqno + 1;
        let description = if self.writes == 0 {
            format!("Write from {}.", self.command)
        } else {
            format!("Write[{}] from {}.", self.writes, self.command)
        };
        let header = TextHeader::now(description);
        // The archive of the old metadata (printed since the session opened) is written on
        // a second thread, and the caller's change made on another, while the new text is
        // printed and checked; all must be done before the precommit.
        let archive = (!self.archived).then_some(self.backups.as_ref()).flatten();
        let job = self.archive_job.take();
        let (vg, command) = (&*self.vg, &self.command);
        let base = self.disk_base.as_ref().map(|p| (vg, p));
        let (changed, checked, archived) = std::thread::scope(|sc| {
            let change = change.map(|f| Scoped::start(sc, f));
            let handle = archive.map(|dirs| {
                Scoped::start(sc, move || {
                    let text = match job.and_then(Background::wait) {
                        Some(t) => t,
                        None => ArchiveText::print(vg, command),
                    }?;
                    text.write(dirs)
                })
            });
            let (text, printed) = disk_text_from(&new, &header, base);
            let checked = self_check(&new, &text, &printed)
                .and_then(|()| Ok(check_layout(&new)?))
                .map(|()| (text, printed));
            let archived = handle.map(Scoped::wait);
            let changed = change.map(Scoped::wait);
            (changed, checked, archived)
        });
        // An archive written is recorded even when the write goes no further: the next
        // write of the session must not archive the same metadata again.
        let archived = match archived {
            None => Ok(()),
            Some(r) => r
                .ok_or(WriteError::Internal("the archive was not written"))
                .and_then(|r| Ok(r?))
                .map(|(_, print)| self.file_base = Some(print)),
        };
        self.archived |= archived.is_ok();
        changed
            .unwrap_or(Some(Ok(())))
            .unwrap_or(Err(WriteError::Internal("the device change was not made")))?;
        let (text, printed) = checked?;
        archived?;
        // `self_check` parsed this text back to `new`: its seqno is `new.seqno`.
        let seqno = u32::try_from(new.seqno).ok();
        let pre = commit::precommit_parsed(&self.pv_files, &self.targets, &new.name, &text, seqno)
            .map_err(|e| self.commit_error(e))?;
        self.writes += 1;
        self.pending = Some(Pending {
            pre,
            vg: new,
            printed,
        });
        Ok(())
    }

    /// Commit the precommitted copy on every area; then write the backup file, on a second
    /// thread: it is in place once [`VgSession::warnings`], the next precommit,
    /// [`VgSession::close`] or dropping the session returns (a failure there is a warning,
    /// as in lvm2).
    ///
    /// # Errors
    /// [`WriteError::Internal`] without a pending copy; [`WriteError::Commit`],
    /// [`WriteError::CommitOn`] (naming the device). Areas that kept the old copy while
    /// another took the new one are warnings naming their devices.
    pub fn commit(&mut self) -> Result<()> {
        let p = self
            .pending
            .take()
            .ok_or(WriteError::Internal("commit without precommit"))?;
        let report = match p.pre.commit(&self.pv_files) {
            Ok(r) => r,
            Err(e) => return Err(self.commit_error(e)),
        };
        for f in &report.failed {
            let at = f
                .device()
                .and_then(|i| self.pv_paths.get(i))
                .map_or_else(String::new, |p| format!(" on {}", p.display()));
            self.warnings.push(format!(
                "WARNING: the metadata area{at} kept the old copy (seqno {} is in the others): {f}",
                report.seqno
            ));
        }
        self.max_seqno = p.vg.seqno;
        let new = Arc::new(p.vg);
        let old = std::mem::replace(&mut self.vg, Arc::clone(&new));
        self.disk_base = Some(p.printed);
        // The backup file (copying unchanged LV sections from the old VG's file print) is
        // written on a second thread, which also frees the old VG.
        if let Some(dirs) = self.backups.clone() {
            let file_base = self.file_base.take();
            let command = self.command.clone();
            self.backup_job = Some(Background::start("lvm-backup", move || {
                let base = file_base.as_ref().map(|f| (&*old, f));
                backup::backup_from(&dirs, &new, &command, base)
            }));
        }
        Ok(())
    }

    /// Forget the precommitted copy (slot 1 cleared everywhere); nothing pending is not
    /// an error.
    ///
    /// # Errors
    /// [`WriteError::Commit`].
    pub fn revert(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(p) => p
                .pre
                .revert(&self.pv_files)
                .map_err(|e| self.commit_error(e)),
            None => Ok(()),
        }
    }

    /// A commit error, with the path of the device it names by index
    /// ([`WriteError::CommitOn`]).
    fn commit_error(&self, e: commit::CommitError) -> WriteError {
        match e.device().and_then(|i| self.pv_paths.get(i)) {
            Some(p) => WriteError::CommitOn {
                device: p.clone(),
                source: Box::new(e),
            },
            None => WriteError::Commit(e),
        }
    }

    /// Give up the lock now (dropping the session does the same).
    pub fn close(mut self) -> Result<()> {
        self.finish_backup();
        self.revert()?;
        self.lock = None;
        Ok(())
    }
}

impl Drop for VgSession {
    fn drop(&mut self) {
        // An error path that did not revert: the committed copy stays what it was.
        if let Some(p) = self.pending.take() {
            let _ = p.pre.revert(&self.pv_files);
        }
        // The backup file is complete before the lock is given up.
        self.finish_backup();
    }
}

type BackupDone = std::result::Result<(PathBuf, PrintedVg), BackupError>;

/// Work started on a second thread, or done at once when no thread could be started.
enum Background<T> {
    Thread(JoinHandle<Option<T>>),
    Done(Option<T>),
}

impl<T: Send + 'static> Background<T> {
    fn start(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Background<T> {
        let (work, theirs) = shared(f);
        match std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run_taken(&theirs))
        {
            Ok(h) => Background::Thread(h),
            Err(_) => Background::Done(run_taken(&work)),
        }
    }

    /// The work's result (`None` only if it was never run).
    fn wait(self) -> Option<T> {
        match self {
            Background::Done(t) => t,
            Background::Thread(h) => joined(h.join()),
        }
    }
}

/// [`Background`] on a thread of a scope (the work may borrow from outside it).
enum Scoped<'scope, T> {
    Thread(std::thread::ScopedJoinHandle<'scope, Option<T>>),
    Done(Option<T>),
}

impl<'scope, T: Send + 'scope> Scoped<'scope, T> {
    fn start<'env>(
        sc: &'scope std::thread::Scope<'scope, 'env>,
        f: impl FnOnce() -> T + Send + 'scope,
    ) -> Scoped<'scope, T> {
        let (work, theirs) = shared(f);
        match std::thread::Builder::new().spawn_scoped(sc, move || run_taken(&theirs)) {
            Ok(h) => Scoped::Thread(h),
            Err(_) => Scoped::Done(run_taken(&work)),
        }
    }

    /// The work's result (`None` only if it was never run).
    fn wait(self) -> Option<T> {
        match self {
            Scoped::Done(t) => t,
            Scoped::Thread(h) => joined(h.join()),
        }
    }
}

/// Work and a second handle on it for a thread that may not start: it stays here to do
/// when the spawn fails (the spawn drops the closure it was given).
type Shared<F> = Arc<std::sync::Mutex<Option<F>>>;

fn shared<F>(f: F) -> (Shared<F>, Shared<F>) {
    let work = Arc::new(std::sync::Mutex::new(Some(f)));
    (Arc::clone(&work), work)
}

/// Run the work if nobody took it yet.
fn run_taken<T, F: FnOnce() -> T>(work: &std::sync::Mutex<Option<F>>) -> Option<T> {
    work.lock().ok().and_then(|mut w| w.take()).map(|f| f())
}

/// A thread's result, its panic resumed here.
fn joined<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The printed text parses back to `new` (LV order aside: lvm2 prints visible LVs first).
/// The LV sections `printed` copied from the base are left out of what is parsed back:
/// they are bytes read from disk and imported into the base's LVs, which are equal to
/// `new`'s (the property tests hold prints from a base to prints from scratch). What was
/// printed anew (the VG's settings, its PVs, new and changed LVs) is parsed and imported,
/// and the text must hold exactly `new`'s LV names.
fn self_check(new: &VolumeGroup, text: &[u8], printed: &PrintedVg) -> Result<()> {
    let body = text.split(|&c| c == 0).next().unwrap_or_default();
    let bad = |reason: String| WriteError::SelfCheck {
        vg: new.name.clone(),
        seqno: new.seqno,
        reason,
    };
    let copied = printed.copied_lvs();
    let (parsed, mut in_text) = if copied.is_empty() {
        let vg = VolumeGroup::from_text(body, ParseMode::Disk).map_err(|e| bad(e.to_string()))?;
        let names = vg.lvs.iter().map(|l| l.name.clone()).collect();
        (vg, names)
    } else {
        let mut rest = Vec::with_capacity(body.len());
        let mut at = 0;
        for (_, r) in &copied {
            rest.extend_from_slice(body.get(at..r.start).unwrap_or_default());
            at = r.end;
        }
        rest.extend_from_slice(body.get(at..).unwrap_or_default());
        let cfg = config::parse_with(&rest, ParseMode::Disk).map_err(|e| bad(e.to_string()))?;
        let names: Vec<&str> = copied.iter().map(|(n, _)| *n).collect();
        VolumeGroup::from_config_partial(&cfg, &names).map_err(|e| bad(e.to_string()))?
    };
    in_text.extend(copied.iter().map(|(n, _)| n.to_string()));
    in_text.sort_unstable();
    let mut in_model: Vec<&str> = new.lvs.iter().map(|l| l.name.as_str()).collect();
    in_model.sort_unstable();
    if !in_text
        .iter()
        .map(String::as_str)
        .eq(in_model.iter().copied())
    {
        return Err(bad(format!(
            "the text holds {} LVs, the model {}, or other names",
            in_text.len(),
            in_model.len()
        )));
    }
    let fresh: HashSet<&str> = parsed.lvs.iter().map(|l| l.name.as_str()).collect();
    let mut a: Vec<&crate::lvm::model::LogicalVolume> = parsed.lvs.iter().collect();
    let mut b: Vec<&crate::lvm::model::LogicalVolume> = new
        .lvs
        .iter()
        .filter(|l| fresh.contains(l.name.as_str()))
        .collect();
    a.sort_unstable_by(|x, y| x.name.cmp(&y.name));
    b.sort_unstable_by(|x, y| x.name.cmp(&y.name));
    if parsed.pvs != new.pvs {
        return Err(bad("the PVs differ".into()));
    }
    if a.len() != b.len() {
        return Err(bad(format!(
            "{} LVs printed, {} read back",
            b.len(),
            a.len()
        )));
    }
    if let Some((x, _)) = b.iter().zip(&a).find(|(x, y)| x != y) {
        return Err(bad(format!("LV {} differs", x.name)));
    }
    if !same_vg_fields(&parsed, new) {
        return Err(bad("VG settings differ".into()));
    }
    Ok(())
}

/// The VG-level fields of two VGs agree.
fn same_vg_fields(a: &VolumeGroup, b: &VolumeGroup) -> bool {
    a.name == b.name
        && a.id == b.id
        && a.seqno == b.seqno
        && a.status == b.status
        && a.flags == b.flags
        && a.tags == b.tags
        && a.system_id == b.system_id
        && a.lock_type == b.lock_type
        && a.extent_size == b.extent_size
        && a.max_lv == b.max_lv
        && a.max_pv == b.max_pv
}
