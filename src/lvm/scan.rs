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

use std::collections::BTreeMap;

use super::config::{self, ParseMode};
use super::error::{Error, ModelErrorKind, Result, ScanErrorKind, ValueType};
use super::id::LvmId;
use super::label::{DiskLocn, Label, read_label};
use super::mda::{MdaContent, MetadataText, read_metadata};
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

    /// The input device index holding `pv`.
    pub fn device_of(&self, pv: &PhysicalVolume) -> Option<usize> {
        let i = self.vg.pvs.iter().position(|p| p.id == pv.id)?;
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
        (0..self.device_count).map(|i| self.device(i)).collect()
    }

    fn device(&self, device: usize) -> DeviceReport<'_> {
        let Some(pv) = self.pvs.iter().find(|p| p.device == device) else {
            let error = self
                .errors
                .iter()
                .find(|(d, _)| *d == Some(device))
                .map(|(_, e)| e);
            let status = match error {
                Some(Error::NoLabel) | None => DeviceStatus::NoLabel,
                Some(e) => DeviceStatus::BadLabel { error: e },
            };
            return DeviceReport {
                device,
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
        let status = if let Some(i) = self
            .vgs
            .iter()
            .position(|v| v.pv_devices.contains(&Some(device)))
        {
            DeviceStatus::InVg { vg: i }
        } else if let Some(of) = self
            .pvs
            .iter()
            .find(|o| o.device != device && o.label.pv_id == pv.label.pv_id)
            .map(|o| o.device)
            .filter(|&of| of < device || self.vgs.iter().any(|v| v.pv_devices.contains(&Some(of))))
        {
            DeviceStatus::Duplicate { of }
        } else if let Some(f) = self
            .failed_vgs
            .iter()
            .find(|f| f.devices.contains(&device) || texts.contains(&f.id))
        {
            DeviceStatus::VgNotImported { vg: f }
        } else if let Some(i) = self.vgs.iter().position(|v| texts.contains(&v.vg.id)) {
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
            status,
            bad_areas,
        }
    }
}

/// Read one device: its label and every metadata area (a bad area is recorded, not fatal).
pub fn scan_pv<R: ReadAt + ?Sized>(dev: &R, device: usize) -> Result<ScannedPv> {
    let label = read_label(dev)?;
    let mdas = label
        .metadata_areas
        .iter()
        .map(|&area| MdaRead {
            area,
            outcome: read_area(dev, area),
        })
        .collect();
    Ok(ScannedPv {
        device,
        label,
        mdas,
    })
}

fn read_area<R: ReadAt + ?Sized>(dev: &R, area: DiskLocn) -> MdaOutcome {
    match read_metadata(dev, area) {
        Err(e) => MdaOutcome::Error(e),
        Ok((_, MdaContent::Ignored)) => MdaOutcome::Ignored,
        Ok((_, MdaContent::Empty)) => MdaOutcome::Empty,
        Ok((_, MdaContent::Text(text))) => match summary(&text.text) {
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
    let cfg = config::parse(text)?;
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
    for (i, dev) in devices.iter().enumerate() {
        match scan_pv(dev, i) {
            Ok(pv) => report.pvs.push(pv),
            Err(e) => report.errors.push((Some(i), e)),
        }
    }
    let (vgs, errors) = assemble(&report.pvs);
    report.vgs = vgs;
    report.errors.extend(errors.into_iter().map(|e| (None, e)));
    report.failed_vgs = failed_vgs(&report.pvs, &report.vgs);
    report
}

/// The VGs of `pvs` whose newest copy does not import (those not among `vgs`).
fn failed_vgs(pvs: &[ScannedPv], vgs: &[ScannedVg]) -> Vec<FailedVg> {
    let mut out: Vec<FailedVg> = Vec::new();
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
            if vgs.iter().any(|v| v.vg.id == *vg_id) {
                continue;
            }
            match out.iter_mut().find(|f| f.id == *vg_id) {
                Some(f) if *seqno < f.seqno => {}
                Some(f) if *seqno == f.seqno => {
                    if !f.devices.contains(&pv.device) {
                        f.devices.push(pv.device);
                    }
                }
                found => {
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
                    match found {
                        Some(old) => *old = f,
                        None => out.push(f),
                    }
                }
            }
        }
    }
    out
}

/// Group scanned PVs into VGs (newest seqno per VG id wins).
pub fn assemble(pvs: &[ScannedPv]) -> (Vec<ScannedVg>, Vec<Error>) {
    struct Best<'a> {
        order: usize,
        seqno: u64,
        text: &'a [u8],
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
            } else if *seqno < e.seqno || text.text != e.text {
                e.inconsistent = true;
            }
        }
    }
    let mut ordered: Vec<_> = best.into_iter().collect();
    ordered.sort_by_key(|(_, b)| b.order);
    let mut vgs = Vec::new();
    let mut errors = Vec::new();
    for (id, b) in ordered {
        match VolumeGroup::from_text(b.text, ParseMode::Disk) {
            Ok(vg) => {
                let pv_devices = vg
                    .pvs
                    .iter()
                    .map(|p| pvs.iter().find(|s| s.label.pv_id == p.id).map(|s| s.device))
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
