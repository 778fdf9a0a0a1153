//! Scanning PVs: read each device's label and both metadata copies, group the PVs by VG
//! id, keep the copy with the highest `seqno`, and tell whether the VG is complete (every
//! PV its metadata lists was found, matched by PV id, never by the `device` hint).
//!
//! ```
//! use devmapper::lvm::scan;
//! // A device without a label is reported, not fatal.
//! let blank = vec![0u8; 4096];
//! let report = scan::scan(&[&blank[..]]);
//! assert!(report.vgs.is_empty());
//! assert_eq!(report.errors.len(), 1);
//! ```
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::config::{self, ParseMode};
use super::error::{Error, ModelErrorKind, Result, ScanErrorKind, ValueType};
use super::id::LvmId;
use super::index::{meter, position_in};
use super::label::{DiskLocn, Label, read_label};
use super::mda::{
    CommittedSlot, MdaContent, MetadataText, RawLocn, committed_slot, read_committed,
    read_mda_header,
};
use super::model::{PhysicalVolume, VolumeGroup};
use crate::io::ReadAt;

/// One metadata area of a scanned PV and what it held.
#[derive(Debug)]
pub struct MdaRead {
    /// Where the area is.
    pub area: DiskLocn,
    /// What was found.
    pub outcome: MdaOutcome,
}

/// The result of reading one metadata area.
#[derive(Debug)]
#[non_exhaustive]
pub enum MdaOutcome {
    /// A committed copy of a VG's metadata.
    Text {
        /// VG name (the first section's key).
        vg_name: String,
        /// VG id.
        vg_id: LvmId,
        /// `seqno`.
        seqno: u64,
        /// The text and where it came from.
        text: MetadataText,
    },
    /// The area is flagged ignored.
    Ignored,
    /// The area holds no VG (an orphan PV).
    Empty,
    /// The area could not be read or checked.
    Error(Error),
}

/// A device that carries an LVM2 label.
#[derive(Debug)]
pub struct ScannedPv {
    /// Index of the device in the input list.
    pub device: usize,
    /// The label and PV header.
    pub label: Label,
    /// Each metadata area in label order.
    pub mdas: Vec<MdaRead>,
}

/// A VG assembled from the scanned PVs.
#[derive(Debug)]
pub struct ScannedVg {
    /// The VG from the newest metadata copy.
    pub vg: VolumeGroup,
    /// That copy's text, exactly as stored (up to its NUL).
    pub text: Vec<u8>,
    /// For each PV of the VG (in metadata order): the index of the device holding it.
    pub pv_devices: Vec<Option<usize>>,
    /// Copies with another seqno (or another text at the same seqno) were seen
    /// (lvm2 warns "Inconsistent metadata").
    pub inconsistent: bool,
}

impl ScannedVg {
    /// Every PV the metadata lists was found.
    pub fn is_complete(&self) -> bool {
        self.pv_devices.iter().all(Option::is_some)
    }

    /// PVs listed in the metadata but not found.
    pub fn missing_pvs(&self) -> impl Iterator<Item = &PhysicalVolume> {
        self.vg
            .pvs
            .iter()
            .zip(&self.pv_devices)
            .filter(|(_, d)| d.is_none())
            .map(|(p, _)| p)
    }

    /// The input device index holding `pv`: O(1) for a PV of [`Self::vg`] (a reference
    /// into `vg.pvs`, as plans and reports hand them back), O(number of PVs) for any other
    /// `PhysicalVolume` (looked up by id).
    pub fn device_of(&self, pv: &PhysicalVolume) -> Option<usize> {
        let i = match position_in(&self.vg.pvs, pv) {
            Some(i) => i,
            None => {
                meter::visit(self.vg.pvs.len());
                self.vg.pvs.iter().position(|p| p.id == pv.id)?
            }
        };
        self.pv_devices.get(i).copied().flatten()
    }
}

/// Everything a scan found.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Number of devices scanned.
    pub device_count: usize,
    /// Labelled devices.
    pub pvs: Vec<ScannedPv>,
    /// VGs, in order of first appearance.
    pub vgs: Vec<ScannedVg>,
    /// VGs whose newest metadata copy does not import.
    pub failed_vgs: Vec<FailedVg>,
    /// Devices without a usable label, or VGs whose newest metadata does not import.
    pub errors: Vec<(Option<usize>, Error)>,
}

/// A VG seen in metadata areas whose newest copy does not import.
#[derive(Debug)]
pub struct FailedVg {
    /// VG name (the first section's key).
    pub name: String,
    /// VG id.
    pub id: LvmId,
    /// The newest `seqno` seen.
    pub seqno: u64,
    /// The devices holding that copy.
    pub devices: Vec<usize>,
    /// Why it does not import.
    pub error: Error,
}

/// What one scanned device turned out to be ([`ScanReport::devices`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceStatus<'r> {
    /// A PV of a VG that imported (`vgs` index).
    InVg {
        /// Index in [`ScanReport::vgs`].
        vg: usize,
    },
    /// A PV whose metadata areas hold no VG (created, never added to one).
    Orphan,
    /// A PV without metadata areas that no VG found lists: its VG is on PVs not given.
    NoMetadataArea,
    /// Another input device carries the same PV id and is the one used (a copy, or the
    /// same PV seen twice; lvm2: "Not using device ... for PV").
    Duplicate {
        /// The device used instead.
        of: usize,
    },
    /// A PV whose metadata names a VG that imported but does not list this PV (left
    /// over from a `vgreduce`, or a copy of another PV).
    NotListed {
        /// Index in [`ScanReport::vgs`].
        vg: usize,
    },
    /// A PV of a VG whose newest metadata does not import.
    VgNotImported {
        /// The VG.
        vg: &'r FailedVg,
    },
    /// A PV whose every metadata area failed to read (see [`DeviceReport::bad_areas`]).
    MetadataUnreadable,
    /// No LVM2 label in sectors 0-3.
    NoLabel,
    /// A label whose PV header does not read.
    BadLabel {
        /// Why.
        error: &'r Error,
    },
}

/// One input device's outcome: its status and every metadata area that failed.
#[derive(Debug)]
pub struct DeviceReport<'r> {
    /// Index of the device in the input list.
    pub device: usize,
    /// Its label and metadata areas, when it carries a label.
    pub pv: Option<&'r ScannedPv>,
    /// What it is.
    pub status: DeviceStatus<'r>,
    /// Metadata areas that could not be read, and why (also when another copy was good).
    pub bad_areas: Vec<(DiskLocn, &'r Error)>,
}

impl DeviceReport<'_> {
    /// The device cannot be read as what it claims to be (or as a PV at all): a scan that
    /// names it must fail.
    pub fn is_error(&self) -> bool {
        matches!(
            self.status,
            DeviceStatus::VgNotImported { .. }
                | DeviceStatus::MetadataUnreadable
                | DeviceStatus::NoLabel
                | DeviceStatus::BadLabel { .. }
        )
    }
}

impl ScanReport {
    /// Every input device's outcome, in input order.
    ///
    /// ```
    /// use devmapper::lvm::scan::{self, DeviceStatus};
    /// let blank = vec![0u8; 4096];
    /// let report = scan::scan(&[&blank[..]]);
    /// let d = report.devices();
    /// assert!(matches!(d[0].status, DeviceStatus::NoLabel) && d[0].is_error());
    /// ```
    pub fn devices(&self) -> Vec<DeviceReport<'_>> {
        let lookup = Lookup::new(self);
        (0..self.device_count)
            .map(|i| self.device(i, &lookup))
            .collect()
    }

    fn device<'r>(&'r self, device: usize, ix: &Lookup<'r>) -> DeviceReport<'r> {
        let Some(pv) = ix.pv_of.get(&device).copied() else {
            let status = match ix.error_of.get(&device).copied() {
                Some(Error::NoLabel) | None => DeviceStatus::NoLabel,
                Some(e) => DeviceStatus::BadLabel { error: e },
            };
            return DeviceReport {
                device,
                pv: None,
                status,
                bad_areas: Vec::new(),
            };
        };
        let bad_areas: Vec<(DiskLocn, &Error)> = pv
            .mdas
            .iter()
            .filter_map(|m| match &m.outcome {
                MdaOutcome::Error(e) => Some((m.area, e)),
                _ => None,
            })
            .collect();
        let texts: Vec<LvmId> = pv
            .mdas
            .iter()
            .filter_map(|m| match &m.outcome {
                MdaOutcome::Text { vg_id, .. } => Some(*vg_id),
                _ => None,
            })
            .collect();
        // The first of `ids`' entries in `by`, by position (the first match in list order).
        let first =
            |by: &HashMap<LvmId, usize>| texts.iter().filter_map(|t| by.get(t)).min().copied();
        // The first other device with this PV id (in scan order), when it is the one used.
        let duplicate_of = ix
            .devices_of_id
            .get(&pv.label.pv_id)
            .and_then(|ds| ds.iter().copied().find(|&o| o != device))
            .filter(|&of| of < device || ix.vg_of.contains_key(&of));
        let failed = [
            ix.failed_of_device.get(&device).copied(),
            first(&ix.failed_of_id),
        ]
        .into_iter()
        .flatten()
        .min()
        .and_then(|i| self.failed_vgs.get(i));
        let status = if let Some(&i) = ix.vg_of.get(&device) {
            DeviceStatus::InVg { vg: i }
        } else if let Some(of) = duplicate_of {
            DeviceStatus::Duplicate { of }
        } else if let Some(f) = failed {
            DeviceStatus::VgNotImported { vg: f }
        } else if let Some(i) = first(&ix.vg_of_id) {
            DeviceStatus::NotListed { vg: i }
        } else if pv.mdas.is_empty() {
            DeviceStatus::NoMetadataArea
        } else if texts.is_empty() && !bad_areas.is_empty() {
            DeviceStatus::MetadataUnreadable
        } else {
            DeviceStatus::Orphan
        };
        DeviceReport {
            device,
            pv: Some(pv),
            status,
            bad_areas,
        }
    }
}

/// What [`ScanReport::devices`] looks up per device, built once (linear in the report).
struct Lookup<'r> {
    /// Device -> its labelled PV (the first one scanned for it).
    pv_of: HashMap<usize, &'r ScannedPv>,
    /// Device -> the first error recorded for it.
    error_of: HashMap<usize, &'r Error>,
    /// Device -> the first VG (index in `vgs`) that uses it.
    vg_of: HashMap<usize, usize>,
    /// VG id -> the first VG with that id.
    vg_of_id: HashMap<LvmId, usize>,
    /// PV id -> the devices carrying it, in scan order.
    devices_of_id: HashMap<LvmId, Vec<usize>>,
    /// Device -> the first failed VG naming it; VG id -> the first failed VG with it.
    failed_of_device: HashMap<usize, usize>,
    failed_of_id: HashMap<LvmId, usize>,
}

impl<'r> Lookup<'r> {
    fn new(r: &'r ScanReport) -> Lookup<'r> {
        meter::visit(r.device_count + r.pvs.len() + r.vgs.len() + r.failed_vgs.len());
        let mut ix = Lookup {
            pv_of: HashMap::new(),
            error_of: HashMap::new(),
            vg_of: HashMap::new(),
            vg_of_id: HashMap::new(),
            devices_of_id: HashMap::new(),
            failed_of_device: HashMap::new(),
            failed_of_id: HashMap::new(),
        };
        for pv in &r.pvs {
            ix.pv_of.entry(pv.device).or_insert(pv);
            ix.devices_of_id
                .entry(pv.label.pv_id)
                .or_default()
                .push(pv.device);
        }
        for (d, e) in &r.errors {
            if let Some(d) = d {
                ix.error_of.entry(*d).or_insert(e);
            }
        }
        for (i, v) in r.vgs.iter().enumerate() {
            ix.vg_of_id.entry(v.vg.id).or_insert(i);
            for d in v.pv_devices.iter().flatten() {
                ix.vg_of.entry(*d).or_insert(i);
            }
        }
        for (i, f) in r.failed_vgs.iter().enumerate() {
            ix.failed_of_id.entry(f.id).or_insert(i);
            for d in &f.devices {
                ix.failed_of_device.entry(*d).or_insert(i);
            }
        }
        ix
    }
}

/// Read one device: its label and every metadata area (a bad area is recorded, not fatal).
pub fn scan_pv<R: ReadAt + ?Sized>(dev: &R, device: usize) -> Result<ScannedPv> {
    scan_pv_with(dev, device, &mut Summaries::default())
}

/// VG name, id and seqno of a metadata text ([`summary`]).
type Summary = (String, LvmId, u64);

/// A verified text and its summary.
type Verified = (Arc<[u8]>, Summary);

/// The metadata texts read and verified so far in one scan, by the checksum and size their
/// slot in the area header gives.
///
/// Every PV of a VG holds a copy of the same text, so a scan of n PVs would read,
/// CRC-check, parse and keep n copies (input growing as n², 74 MB at 200 PVs of a real
/// layout). Like lvm2 (which skips reading a copy whose `mda_header` checksum and size match
/// one already read for the VG: `lvmcache_lookup_mda`), a PV whose committed slot names a
/// `(checksum, size)` already read and verified in this scan is not read again: it gets the
/// same text (shared, one allocation) and summary.
///
/// What is still read and checked on every PV: the label and PV header, the mda header
/// (its own checksum) and the slot's bounds ([`committed_slot`]): a bad slot is an error on
/// that PV as before. What is trusted: that a slot claiming the checksum and size of a
/// verified text holds that text. A hostile PV can claim so while holding other bytes
/// (CRC-32 is not a MAC), but that gains it nothing it could not get by writing the genuine
/// copy, which it can read from any other PV of the VG: the scan then reports exactly what
/// it would for a PV holding the genuine text, and that is what every later step uses (the
/// planner maps LVs from the chosen VG text; the PV's own bytes are never used). What is
/// lost is the detection of a corrupt copy whose CRC and size collide with a good one
/// (`inconsistent` would have been set): lvm2's trade-off, accepted here. The first text
/// read under a key is the one shared, so the result does not depend on later PVs.
///
/// Each text is parsed once: its summary and its import come from the same parse, and the
/// import is handed to [`assemble`] for the copy that wins (lvm2 parses each copy once as
/// well).
#[derive(Default)]
struct Summaries {
    /// `(checksum, slot size)` -> the first text verified with that key, and its summary.
    seen: HashMap<(u32, u64), Verified>,
    /// The address of a text in `seen` -> its import.
    imported: Imported,
}

/// Imports made while summarising, by the address of their shared text (held here, so
/// that no other text can take that address while the entry lives).
type Imported = HashMap<usize, (Arc<[u8]>, Result<VolumeGroup>)>;

/// The key of a shared text in [`Imported`].
fn text_key(text: &Arc<[u8]>) -> usize {
    Arc::as_ptr(text).cast::<u8>() as usize
}

impl Summaries {
    /// The text and summary already read under the slot's key, if any.
    fn shared(&self, locn: &RawLocn) -> Option<Verified> {
        self.seen.get(&(locn.checksum, locn.size)).cloned()
    }

    /// Summarise a text just read and verified, and remember it.
    fn add(&mut self, text: &MetadataText) -> Result<Summary> {
        meter::parsed(text.text.len());
        let cfg = config::parse(&text.text)?;
        let s = summary_of(&cfg)?;
        self.imported.insert(
            text_key(&text.text),
            (text.text.clone(), VolumeGroup::from_config(&cfg)),
        );
        self.seen.insert(
            (text.locn.checksum, text.locn.size),
            (text.text.clone(), s.clone()),
        );
        Ok(s)
    }
}

fn scan_pv_with<R: ReadAt + ?Sized>(
    dev: &R,
    device: usize,
    cache: &mut Summaries,
) -> Result<ScannedPv> {
    let label = read_label(dev)?;
    let mdas = label
        .metadata_areas
        .iter()
        .map(|&area| MdaRead {
            area,
            outcome: read_area(dev, area, cache),
        })
        .collect();
    Ok(ScannedPv {
        device,
        label,
        mdas,
    })
}

fn read_area<R: ReadAt + ?Sized>(dev: &R, area: DiskLocn, cache: &mut Summaries) -> MdaOutcome {
    let header = match read_mda_header(dev, area) {
        Ok(h) => h,
        Err(e) => return MdaOutcome::Error(e),
    };
    // A copy already read in this scan is shared, not read again (see `Summaries`).
    if let Ok(CommittedSlot::Text { locn, wrapped }) = committed_slot(&header)
        && let Some((text, (vg_name, vg_id, seqno))) = cache.shared(&locn)
    {
        return MdaOutcome::Text {
            vg_name,
            vg_id,
            seqno,
            text: MetadataText {
                locn,
                wrapped,
                text,
            },
        };
    }
    match read_committed(dev, &header) {
        Err(e) => MdaOutcome::Error(e),
        Ok(MdaContent::Ignored) => MdaOutcome::Ignored,
        Ok(MdaContent::Empty) => MdaOutcome::Empty,
        Ok(MdaContent::Text(text)) => match cache.add(&text) {
            Ok((vg_name, vg_id, seqno)) => MdaOutcome::Text {
                vg_name,
                vg_id,
                seqno,
                text,
            },
            Err(e) => MdaOutcome::Error(e),
        },
    }
}

/// VG name, id and seqno of a metadata text (lvm2's `text_read_metadata_summary`).
pub fn summary(text: &[u8]) -> Result<(String, LvmId, u64)> {
    summary_of(&config::parse(text)?)
}

/// [`summary`] of a parsed text.
fn summary_of(cfg: &config::Config<'_>) -> Result<Summary> {
    let vgn = cfg
        .nodes()
        .find(|n| n.is_section())
        .ok_or_else(|| Error::Model {
            path: String::new(),
            kind: ModelErrorKind::NoVgSection,
        })?;
    let bad = |kind: ModelErrorKind| Error::Model {
        path: vgn.key().to_string(),
        kind,
    };
    let missing = |key: &str| {
        bad(ModelErrorKind::MissingKey {
            key: key.to_string(),
        })
    };
    let id_text = vgn.get_str("id").ok_or_else(|| missing("id"))?;
    let id = id_text.parse().map_err(|source| {
        bad(ModelErrorKind::BadId {
            id: id_text.to_string(),
            source,
        })
    })?;
    // The low 32 bits, as lvm2 (and the importer) read it.
    vgn.find("seqno").ok_or_else(|| missing("seqno"))?;
    let seqno = vgn
        .get_int("seqno")
        .map(|s| u64::from(s as u32))
        .ok_or_else(|| {
            bad(ModelErrorKind::WrongType {
                key: "seqno".into(),
                expected: ValueType::Integer,
            })
        })?;
    Ok((vgn.key().to_string(), id, seqno))
}

/// Scan devices and assemble their VGs.
pub fn scan<R: ReadAt>(devices: &[R]) -> ScanReport {
    let mut report = ScanReport {
        device_count: devices.len(),
        ..ScanReport::default()
    };
    let mut cache = Summaries::default();
    for (i, dev) in devices.iter().enumerate() {
        match scan_pv_with(dev, i, &mut cache) {
            Ok(pv) => report.pvs.push(pv),
            Err(e) => report.errors.push((Some(i), e)),
        }
    }
    let (vgs, errors) = assemble_imported(&report.pvs, &mut cache.imported);
    report.vgs = vgs;
    report.errors.extend(errors.into_iter().map(|e| (None, e)));
    report.failed_vgs = failed_vgs(&report.pvs, &report.vgs);
    report
}

/// The VGs of `pvs` whose newest copy does not import (those not among `vgs`).
fn failed_vgs(pvs: &[ScannedPv], vgs: &[ScannedVg]) -> Vec<FailedVg> {
    let mut out: Vec<FailedVg> = Vec::new();
    let imported: HashSet<LvmId> = vgs.iter().map(|v| v.vg.id).collect();
    // VG id -> its entry in `out`.
    let mut at: HashMap<LvmId, usize> = HashMap::new();
    for pv in pvs {
        for m in &pv.mdas {
            let MdaOutcome::Text {
                vg_name,
                vg_id,
                seqno,
                text,
            } = &m.outcome
            else {
                continue;
            };
            if imported.contains(vg_id) {
                continue;
            }
            let found = at.get(vg_id).copied();
            match found.and_then(|i| out.get_mut(i)) {
                Some(f) if *seqno < f.seqno => {}
                Some(f) if *seqno == f.seqno => {
                    // Devices come in scan order: a device's second area comes right
                    // after its first.
                    if f.devices.last() != Some(&pv.device) {
                        f.devices.push(pv.device);
                    }
                }
                other => {
                    meter::parsed(text.text.len());
                    let error = match VolumeGroup::from_text(&text.text, ParseMode::Disk) {
                        Err(e) => e,
                        Ok(_) => continue, // imported after all: not a failure
                    };
                    let f = FailedVg {
                        name: vg_name.clone(),
                        id: *vg_id,
                        seqno: *seqno,
                        devices: vec![pv.device],
                        error,
                    };
                    match other {
                        Some(old) => *old = f,
                        None => {
                            at.insert(*vg_id, out.len());
                            out.push(f);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Group scanned PVs into VGs (newest seqno per VG id wins).
pub fn assemble(pvs: &[ScannedPv]) -> (Vec<ScannedVg>, Vec<Error>) {
    assemble_imported(pvs, &mut Imported::new())
}

/// [`assemble`], taking the import of a winning text from `imported` when the scan made
/// it already.
fn assemble_imported(pvs: &[ScannedPv], imported: &mut Imported) -> (Vec<ScannedVg>, Vec<Error>) {
    struct Best<'a> {
        order: usize,
        seqno: u64,
        text: &'a Arc<[u8]>,
        inconsistent: bool,
    }
    let mut best: BTreeMap<LvmId, Best<'_>> = BTreeMap::new();
    for pv in pvs {
        for m in &pv.mdas {
            let MdaOutcome::Text {
                vg_id, seqno, text, ..
            } = &m.outcome
            else {
                continue;
            };
            let order = best.len();
            let e = best.entry(*vg_id).or_insert(Best {
                order,
                seqno: *seqno,
                text: &text.text,
                inconsistent: false,
            });
            if *seqno > e.seqno {
                e.seqno = *seqno;
                e.text = &text.text;
                e.inconsistent = true;
            } else if *seqno < e.seqno || *text.text != **e.text {
                e.inconsistent = true;
            }
        }
    }
    let mut ordered: Vec<_> = best.into_iter().collect();
    ordered.sort_by_key(|(_, b)| b.order);
    let mut vgs = Vec::new();
    let mut errors = Vec::new();
    // PV id -> the first device carrying it.
    let mut device_of: HashMap<LvmId, usize> = HashMap::new();
    for s in pvs {
        device_of.entry(s.label.pv_id).or_insert(s.device);
    }
    meter::visit(pvs.len());
    for (id, b) in ordered {
        let vg = imported
            .remove(&text_key(b.text))
            .map(|(_, vg)| vg)
            .unwrap_or_else(|| {
                meter::parsed(b.text.len());
                VolumeGroup::from_text(b.text, ParseMode::Disk)
            });
        match vg {
            Ok(vg) => {
                let pv_devices = vg
                    .pvs
                    .iter()
                    .map(|p| device_of.get(&p.id).copied())
                    .collect();
                vgs.push(ScannedVg {
                    vg,
                    text: b.text.to_vec(),
                    pv_devices,
                    inconsistent: b.inconsistent,
                });
            }
            Err(e) => errors.push(Error::Scan {
                vg: id.to_string(),
                kind: ScanErrorKind::NewestDoesNotImport {
                    seqno: b.seqno,
                    error: Box::new(e),
                },
            }),
        }
    }
    (vgs, errors)
}
