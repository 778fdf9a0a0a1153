//! lvm2's two-phase metadata commit on every metadata area of a VG.
//!
//! Each metadata area is a 512-byte `mda_header` followed by a circular text buffer. The
//! header's slot 0 points at the committed copy of the VG text, slot 1 at the precommitted
//! one. A change goes to disk in the order lvm2 uses (`_vg_write_raw`,
//! `_vg_commit_raw_rlocn` in lvm2's `lib/format_text/format-text.c`; `vg_write`,
//! `vg_commit`, `vg_revert` in `lib/metadata/metadata.c`):
//!
//! 1. [`precommit`], phase 1: on every area the new text goes right after the committed
//!    copy, 512-byte aligned, wrapping to the start of the buffer at its end, the write
//!    padded with zeros to a sector boundary, never overlapping the committed copy. No
//!    header changes, so every reader still sees the old text.
//! 2. [`precommit`], phase 2: slot 1 of every header points at the new copy (the whole
//!    sector is read, changed and written back with a new header CRC). Readers (lvm2's and
//!    this crate's) still read slot 0 only.
//! 3. [`Precommitted::commit`]: slot 0 = the new copy and slot 1 cleared, on every area. This
//!    single-sector write is the switch; a torn one fails its CRC and the area is skipped.
//!    [`Precommitted::revert`] instead clears slot 1 and leaves slot 0 alone.
//!
//! lvm2 issues no cache flush on this path, so a volatile write cache could make a header
//! durable before the text it points to. Here every phase ends with [`WriteAt::sync`] on
//! each device it wrote: the text is durable before any header names it, and the precommit
//! before the commit.
//!
//! Areas whose slot 0 carries `RAW_LOCN_IGNORED` (`pvchange --metadataignore y`) are not in
//! lvm2's list of areas in use, so lvm2 neither writes text into them nor touches their
//! header; neither does this module (they are listed in [`CommitReport::ignored`]). The
//! caller gives the complete text, seqno included (the highest seqno seen + 1); the same
//! bytes go to every area.
//!
//! ```
//! use devmapper::io::{MemDevice, WriteAt};
//! use devmapper::lvm::{label::DiskLocn, mda};
//! use devmapper::lvm::write::commit::{self, MdaTarget};
//! // A blank metadata area at 4 KiB: just the header, slot 0 empty.
//! let dev = MemDevice::new(1 << 20);
//! let area = DiskLocn { offset: 4096, size: 64 << 10 };
//! commit::format_area(&dev, area)?;
//! let text = b"vg0 {\nseqno = 1\n}\n\0";
//! let pre = commit::precommit(&[&dev], &[MdaTarget { device: 0, area }], "vg0", text)?;
//! let report = pre.commit(&[&dev])?;
//! assert_eq!(report.seqno, 1);
//! let (_, content) = mda::read_metadata(&dev, area)?;
//! assert!(matches!(content, mda::MdaContent::Text(t) if *t.text == text[..text.len() - 1]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::io;

use crate::io::WriteAt;
use crate::lvm::config;
use crate::lvm::crc::{INITIAL_CRC, calc_crc};
use crate::lvm::label::DiskLocn;
use crate::lvm::mda::{MAX_METADATA_TEXT, MDA_HEADER_SIZE, RawLocn};

mod error;
mod header;
mod place;

pub use error::{CommitError, Phase, TextProblem};
use header::{committed_copy, fresh_slots, read_header, seal_header, set_slot, write_header};
use place::write_ranges;
pub use place::{PlaceError, Placement, max_text_size, place};

/// Alignment of every copy in the ring (`MDA_ORIGINAL_ALIGNMENT`).
pub const MDA_ALIGNMENT: u64 = 512;
const HDR: u64 = MDA_HEADER_SIZE as u64;
/// Byte offset of slot 0 (`raw_locns[0]`) in the header sector.
const SLOT0: usize = 40;
/// Byte offset of slot 1 (`raw_locns[1]`).
const SLOT1: usize = 64;

/// One metadata area to write: which device (an index into the caller's device slice) and
/// where the area is (from the PV label's metadata area list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MdaTarget {
    /// Index into the device slice given to [`precommit`], [`Precommitted::commit`] and
    /// [`Precommitted::revert`].
    pub device: usize,
    /// The area: absolute offset of its header and its size, as the PV label lists it.
    pub area: DiskLocn,
}

/// One area written by [`precommit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenArea {
    /// The area.
    pub target: MdaTarget,
    /// Where the new copy is (slot 1 now, slot 0 after commit).
    pub locn: RawLocn,
    /// Whether the copy wraps around the end of the ring.
    pub wrapped: bool,
}

/// The new text is in every area and slot 1 points at it; [`commit`](Self::commit) or
/// [`revert`](Self::revert) next. Dropping it leaves slot 1 set, which no reader uses (lvm2
/// reads slot 0 only and overwrites slot 1 on its next write).
#[derive(Debug)]
#[must_use = "commit or revert the precommitted metadata"]
pub struct Precommitted {
    vg: String,
    seqno: u32,
    areas: Vec<WrittenArea>,
    /// For each of `areas`: the header sector as phase 2 wrote it, and the sector the
    /// commit writes (slot 0 = the new copy, slot 1 cleared, sealed), both made at
    /// precommit time so that the commit (inside a suspend window, for live snapshots)
    /// is one sector read, one sector write and one flush per device.
    sectors: Vec<([u8; MDA_HEADER_SIZE], [u8; MDA_HEADER_SIZE])>,
    ignored: Vec<MdaTarget>,
}

/// What [`Precommitted::commit`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct CommitReport {
    /// The seqno now committed.
    pub seqno: u32,
    /// Areas whose slot 0 now names the new copy.
    pub committed: Vec<WrittenArea>,
    /// Areas skipped because they are ignored.
    pub ignored: Vec<MdaTarget>,
    /// Areas whose commit failed although another one succeeded (lvm2 counts a commit as
    /// done when one area took it; these still hold the old copy in slot 0, and readers
    /// take the highest seqno).
    pub failed: Vec<CommitError>,
}

/// Write an empty metadata area header at `area` (slot 0 empty), as `pvcreate` does, and
/// sync. For tests and PV creation.
pub fn format_area<D: WriteAt + ?Sized>(dev: &D, area: DiskLocn) -> io::Result<()> {
    let mut h = [0u8; MDA_HEADER_SIZE];
    h[32..40].copy_from_slice(&area.size.to_le_bytes());
    seal_header(&mut h, area.offset);
    dev.write_all_at(&h, area.offset)?;
    dev.sync()
}

/// Check the text and read its seqno; `known`: the caller has parsed this very text and
/// read its seqno already (the cheap checks still run, the parse is not repeated).
fn check_text(vg: &str, text: &[u8], known: Option<u32>) -> Result<u32, TextProblem> {
    let Some((&last, body)) = text.split_last() else {
        return Err(TextProblem::Empty);
    };
    if last != 0 {
        return Err(TextProblem::NoTrailingNul);
    }
    if let Some(at) = body.iter().position(|&b| b == 0) {
        return Err(TextProblem::InnerNul { at });
    }
    if text.len() as u64 > MAX_METADATA_TEXT {
        return Err(TextProblem::TooLong {
            len: text.len(),
            max: MAX_METADATA_TEXT,
        });
    }
    let after = body.strip_prefix(vg.as_bytes()).and_then(|r| r.first());
    if vg.is_empty() || !matches!(after, Some(b' ' | b'\t' | b'\n' | b'{')) {
        return Err(TextProblem::WrongName);
    }
    if let Some(seqno) = known {
        return Ok(seqno);
    }
    let cfg = config::parse(body).map_err(TextProblem::Parse)?;
    let seqno = cfg
        .find(vg)
        .filter(|n| n.is_section())
        .and_then(|n| n.get_int("seqno"))
        .and_then(|s| u32::try_from(s).ok())
        .ok_or(TextProblem::NoSeqno)?;
    Ok(seqno)
}

struct Plan {
    target: MdaTarget,
    sector: [u8; MDA_HEADER_SIZE],
    area_size: u64,
    place: Placement,
}

/// Phases 1 and 2: the new `text` (NUL-terminated, seqno included) after the committed copy
/// in every area of `mdas`, synced, then slot 1 of every header naming it, synced.
///
/// Every header is read and checked and every placement computed before the first byte is
/// written, so a refusal (bad header, [`CommitError::TooLarge`], ...) writes nothing. A
/// failure while writing slot 1 clears slot 1 again where it was set. Readers see the old
/// text throughout.
///
/// ```
/// use devmapper::io::MemDevice;
/// use devmapper::lvm::{label::DiskLocn, mda};
/// use devmapper::lvm::write::commit::{self, MdaTarget};
/// let dev = MemDevice::new(1 << 20);
/// let area = DiskLocn { offset: 4096, size: 64 << 10 };
/// commit::format_area(&dev, area)?;
/// let t = [MdaTarget { device: 0, area }];
/// commit::precommit(&[&dev], &t, "vg0", b"vg0 {\nseqno = 1\n}\n\0")?.commit(&[&dev])?;
/// // A precommit that is reverted leaves the committed text as it was.
/// let pre = commit::precommit(&[&dev], &t, "vg0", b"vg0 {\nseqno = 2\n}\n\0")?;
/// assert_eq!(pre.areas()[0].locn.offset, 1024);
/// pre.revert(&[&dev])?;
/// let (h, content) = mda::read_metadata(&dev, area)?;
/// assert_eq!(h.raw_locns.len(), 1); // slot 1 cleared
/// assert!(matches!(content, mda::MdaContent::Text(t) if t.text.ends_with(b"seqno = 1\n}\n")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn precommit<D: WriteAt>(
    devs: &[D],
    mdas: &[MdaTarget],
    vg_name: &str,
    text: &[u8],
) -> Result<Precommitted, CommitError> {
    precommit_parsed(devs, mdas, vg_name, text, None)
}

/// [`precommit`] of a text the caller has parsed back already (the session's self-check
/// reads the printed text into a VG and compares it with the model): `seqno` is the seqno
/// it read, and the text is not parsed a second time here.
pub(crate) fn precommit_parsed<D: WriteAt>(
    devs: &[D],
    mdas: &[MdaTarget],
    vg_name: &str,
    text: &[u8],
    seqno: Option<u32>,
) -> Result<Precommitted, CommitError> {
    let seqno = check_text(vg_name, text, seqno).map_err(|problem| CommitError::BadText {
        vg: vg_name.to_owned(),
        problem,
    })?;
    let size = text.len() as u64;
    let crc = calc_crc(INITIAL_CRC, text);

    // Check everything first.
    let mut plans: Vec<Plan> = Vec::with_capacity(mdas.len());
    let mut ignored = Vec::new();
    for (i, t) in mdas.iter().enumerate() {
        let dev = devs.get(t.device).ok_or(CommitError::NoSuchDevice {
            device: t.device,
            area: t.area.offset,
            devices: devs.len(),
        })?;
        if mdas[..i]
            .iter()
            .any(|o| o.device == t.device && o.area.offset == t.area.offset)
        {
            return Err(CommitError::DuplicateArea {
                device: t.device,
                area: t.area.offset,
            });
        }
        let (sector, header) = read_header(dev, t, Phase::ReadHeader)?;
        if header.committed().is_some_and(RawLocn::is_ignored) {
            ignored.push(*t);
            continue;
        }
        let old = committed_copy(&header, t)?;
        let place = place(header.size, old, size).map_err(|e| match e {
            PlaceError::TooLarge { max } => CommitError::TooLarge {
                vg: vg_name.to_owned(),
                seqno,
                device: t.device,
                area: t.area.offset,
                size,
                max,
            },
            PlaceError::Overlap => CommitError::NoRoom {
                vg: vg_name.to_owned(),
                seqno,
                device: t.device,
                area: t.area.offset,
                size,
                buffer: header.size - HDR,
                used: old.map_or(0, |o| o.1),
            },
        })?;
        plans.push(Plan {
            target: *t,
            sector,
            area_size: header.size,
            place,
        });
    }
    if plans.is_empty() {
        return Err(CommitError::NoUsableArea {
            vg: vg_name.to_owned(),
        });
    }

    // Phase 1: the text, padded with zeros to the next sector boundary.
    for p in &plans {
        let dev = &devs[p.target.device];
        let start = p.target.area.offset;
        let mut rest = text;
        for (from, to) in write_ranges(p.area_size, &p.place).into_iter().flatten() {
            let len = (to - from) as usize;
            let (part, tail) = rest.split_at(rest.len().min(len));
            rest = tail;
            let mut buf = part.to_vec();
            buf.resize(len, 0);
            dev.write_all_at(&buf, start + from)
                .map_err(|source| CommitError::Io {
                    phase: Phase::WriteText,
                    device: p.target.device,
                    area: start,
                    source,
                })?;
        }
    }
    sync_all(devs, plans.iter().map(|p| &p.target), Phase::SyncText)?;

    // Phase 2: slot 1 in every header.
    let new_locn = |p: &Plan| RawLocn {
        offset: p.place.offset,
        size,
        checksum: crc,
        flags: 0,
    };
    let mut done = 0;
    let mut sectors = Vec::with_capacity(plans.len());
    let result = (|| {
        for p in &plans {
            let dev = &devs[p.target.device];
            let (now, _) = read_header(dev, &p.target, Phase::Precommit)?;
            if now != p.sector {
                return Err(CommitError::HeaderChanged {
                    device: p.target.device,
                    area: p.target.area.offset,
                    phase: Phase::Precommit,
                });
            }
            let mut h = now;
            fresh_slots(&mut h);
            set_slot(&mut h, SLOT1, Some(&new_locn(p)));
            seal_header(&mut h, p.target.area.offset);
            let mut c = h;
            fresh_slots(&mut c);
            set_slot(&mut c, SLOT0, Some(&new_locn(p)));
            set_slot(&mut c, SLOT1, None);
            seal_header(&mut c, p.target.area.offset);
            sectors.push((h, c));
            done += 1;
            write_header(dev, &p.target, &h, Phase::Precommit)?;
        }
        sync_all(devs, plans.iter().map(|p| &p.target), Phase::SyncPrecommit)
    })();
    let areas: Vec<WrittenArea> = plans
        .iter()
        .map(|p| WrittenArea {
            target: p.target,
            locn: new_locn(p),
            wrapped: p.place.wrap > 0,
        })
        .collect();
    let pre = Precommitted {
        vg: vg_name.to_owned(),
        seqno,
        areas,
        sectors,
        ignored,
    };
    match result {
        Ok(()) => Ok(pre),
        Err(first) => {
            let touched = Precommitted {
                areas: pre.areas[..done].to_vec(),
                sectors: Vec::new(),
                ..pre
            };
            match touched.revert(devs) {
                Ok(()) => Err(first),
                Err(revert) => Err(CommitError::RevertFailed {
                    first: Box::new(first),
                    revert: Box::new(revert),
                }),
            }
        }
    }
}

/// Sync each device among `targets` once, in order of first appearance.
fn sync_all<'a, D: WriteAt>(
    devs: &[D],
    targets: impl Iterator<Item = &'a MdaTarget>,
    phase: Phase,
) -> Result<(), CommitError> {
    let mut seen: Vec<usize> = Vec::new();
    for t in targets {
        if seen.contains(&t.device) {
            continue;
        }
        seen.push(t.device);
        devs[t.device].sync().map_err(|source| CommitError::Io {
            phase,
            device: t.device,
            area: t.area.offset,
            source,
        })?;
    }
    Ok(())
}

impl Precommitted {
    /// The seqno of the precommitted text.
    pub fn seqno(&self) -> u32 {
        self.seqno
    }

    /// The VG name.
    pub fn vg_name(&self) -> &str {
        &self.vg
    }

    /// The areas holding the new copy.
    pub fn areas(&self) -> &[WrittenArea] {
        &self.areas
    }

    /// Areas skipped because they are ignored.
    pub fn ignored(&self) -> &[MdaTarget] {
        &self.ignored
    }

    /// Phase 3: slot 0 = the new copy, slot 1 cleared, on every area, then sync each device.
    /// `devs` must be the slice given to [`precommit`].
    ///
    /// As in lvm2, the commit is done when one area took it: failures on other areas are
    /// listed in [`CommitReport::failed`] (those areas keep the old copy, and readers take
    /// the highest seqno). When no area took it, the first failure is returned: the old text
    /// is what readers see, unless the failed write or flush reached the disk after all.
    pub fn commit<D: WriteAt>(self, devs: &[D]) -> Result<CommitReport, CommitError> {
        let mut committed = Vec::new();
        let mut failed = Vec::new();
        for (i, a) in self.areas.iter().enumerate() {
            match self.commit_one(devs, i, a) {
                Ok(()) => committed.push(*a),
                Err(e) => failed.push(e),
            }
        }
        // One flush per device; a failed flush fails every area on that device.
        let mut devices: Vec<usize> = committed.iter().map(|a| a.target.device).collect();
        devices.dedup();
        devices.sort_unstable();
        devices.dedup();
        for d in devices {
            if let Err(source) = devs[d].sync() {
                let mut source = Some(source);
                let (bad, good): (Vec<_>, Vec<_>) =
                    committed.into_iter().partition(|a| a.target.device == d);
                committed = good;
                for a in bad {
                    let e = source.take().unwrap_or_else(|| {
                        io::Error::other("flush failed (reported for another area)")
                    });
                    failed.push(CommitError::Io {
                        phase: Phase::SyncCommit,
                        device: d,
                        area: a.target.area.offset,
                        source: e,
                    });
                }
            }
        }
        if committed.is_empty() {
            return Err(failed
                .into_iter()
                .next()
                .unwrap_or(CommitError::NoUsableArea {
                    vg: self.vg.clone(),
                }));
        }
        Ok(CommitReport {
            seqno: self.seqno,
            committed,
            ignored: self.ignored,
            failed,
        })
    }

    /// One area's switch: its header sector read back and compared byte for byte with
    /// what the precommit wrote (another writer, which would have changed it, stops the
    /// commit there), then the commit sector prepared at precommit time written. No
    /// parsing and no size queries: the checks were made before the precommit.
    fn commit_one<D: WriteAt>(
        &self,
        devs: &[D],
        i: usize,
        a: &WrittenArea,
    ) -> Result<(), CommitError> {
        let dev = devs.get(a.target.device).ok_or(CommitError::NoSuchDevice {
            device: a.target.device,
            area: a.target.area.offset,
            devices: devs.len(),
        })?;
        let Some((precommitted, commit)) = self.sectors.get(i) else {
            return Err(CommitError::HeaderChanged {
                device: a.target.device,
                area: a.target.area.offset,
                phase: Phase::Commit,
            });
        };
        let mut now = [0u8; MDA_HEADER_SIZE];
        dev.read_exact_at(&mut now, a.target.area.offset)
            .map_err(|source| CommitError::Io {
                phase: Phase::Commit,
                device: a.target.device,
                area: a.target.area.offset,
                source,
            })?;
        if now != *precommitted {
            return Err(CommitError::HeaderChanged {
                device: a.target.device,
                area: a.target.area.offset,
                phase: Phase::Commit,
            });
        }
        write_header(dev, &a.target, commit, Phase::Commit)
    }

    /// Slot 1 cleared on every area, then sync; the committed copy is untouched. `devs` must
    /// be the slice given to [`precommit`]. Every area is tried; the first failure is
    /// returned.
    pub fn revert<D: WriteAt>(self, devs: &[D]) -> Result<(), CommitError> {
        let mut first = None;
        let mut written = Vec::new();
        for a in &self.areas {
            let r = (|| {
                let dev = devs.get(a.target.device).ok_or(CommitError::NoSuchDevice {
                    device: a.target.device,
                    area: a.target.area.offset,
                    devices: devs.len(),
                })?;
                let (mut h, _) = read_header(dev, &a.target, Phase::Revert)?;
                fresh_slots(&mut h);
                set_slot(&mut h, SLOT1, None);
                seal_header(&mut h, a.target.area.offset);
                write_header(dev, &a.target, &h, Phase::Revert)
            })();
            match r {
                Ok(()) => written.push(a.target),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if let Err(e) = sync_all(devs, written.iter(), Phase::SyncRevert) {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}
