//! An LV's contents read offline from its PVs: [`LvReader`] maps LV byte offsets through
//! linear, striped, zero and LV-on-LV segments to the PV devices, and implements
//! [`ReadAt`], so it can be copied to a file ([`export`]) or stacked under another reader.
//!
//! Snapshot LVs are origin + COW store: [`snapshot_reader`] combines the two through the
//! COW store reader ([`snapshot_parts`] gives them apart). Thin LVs need the pool's btrees
//! and are not read here.
//!
//! ```
//! use devmapper::io::ReadAt;
//! use devmapper::lvm::{config::ParseMode, export::LvReader, model::VolumeGroup};
//! let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 1
//!   status = ["READ", "WRITE"] extent_size = 1 max_lv = 0 max_pv = 0
//!   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
//!     status = ["ALLOCATABLE"] pe_start = 1 pe_count = 3 } }
//!   logical_volumes { lv { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlK"
//!     status = ["READ", "WRITE", "VISIBLE"] segment_count = 1
//!     segment1 { start_extent = 0 extent_count = 2 type = "striped"
//!       stripe_count = 1 stripes = ["pv0", 1] } } } }
//!   contents = "Text Format Volume Group" version = 1"#;
//! let vg = VolumeGroup::from_text(text, ParseMode::Disk)?;
//! // A 4-sector PV: pe_start 1, extent size 1 sector; the LV is PEs 1-2 = sectors 2-3.
//! let pv: Vec<u8> = (0..4u8).flat_map(|s| [s; 512]).collect();
//! let r = LvReader::new(&vg, "lv", &|_p| Some(&pv[..]))?;
//! assert_eq!(r.size()?, 1024);
//! let mut b = [0u8; 2];
//! r.read_exact_at(&mut b, 511)?;
//! assert_eq!(b, [2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use super::error::{Error, ExportErrorKind, Result, UnmappableKind};
use super::model::{Area, LogicalVolume, PhysicalVolume, SegmentKind, VolumeGroup};
use crate::cow::reader::SnapshotReader;
use crate::io::ReadAt;
use crate::units::SECTOR_SIZE;

/// Deepest LV-on-LV stacking followed (an LV at depth 0 on one at depth 1 ... on one at
/// depth `MAX_STACK` on PVs).
pub const MAX_STACK: usize = 16;

/// Reads an LV's bytes from its PVs.
pub struct LvReader<'a, R: ReadAt + ?Sized> {
    name: String,
    size: u64,
    segments: Vec<Seg<'a, R>>,
}

impl<R: ReadAt + ?Sized> std::fmt::Debug for LvReader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvReader")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// One segment, in bytes.
struct Seg<'a, R: ReadAt + ?Sized> {
    start: u64,
    len: u64,
    kind: SegMap<'a, R>,
}

enum SegMap<'a, R: ReadAt + ?Sized> {
    /// `stripe` bytes per stripe (ignored with one area); each area: source + byte offset.
    Striped {
        stripe: u64,
        areas: Vec<(Source<'a, R>, u64)>,
    },
    Zero,
    Error,
}

enum Source<'a, R: ReadAt + ?Sized> {
    /// A PV's device and the PV's name in the metadata.
    Pv(&'a R, &'a str),
    /// Shared: an LV used by several areas (or several LVs) is built once.
    Lv(Arc<LvReader<'a, R>>),
}

impl<R: ReadAt + ?Sized> Source<'_, R> {
    fn next_data(&self, off: u64) -> io::Result<Option<(u64, u64)>> {
        match self {
            Source::Pv(r, _) => r.next_data(off),
            Source::Lv(l) => l.next_data(off),
        }
    }

    fn size(&self) -> io::Result<u64> {
        match self {
            Source::Pv(r, _) => r.size(),
            Source::Lv(l) => Ok(l.size),
        }
    }

    fn read(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        match self {
            Source::Pv(r, pv) => r
                .read_exact_at(buf, off)
                .map_err(|e| pv_read_error(*r, pv, off, buf.len() as u64, e)),
            Source::Lv(l) => l.read_exact_at(buf, off),
        }
    }
}

/// A failed read of a PV while reading an LV (inside the [`io::Error`] that [`LvReader`]'s
/// [`ReadAt`] methods return; [`io::Error::get_ref`] + `downcast_ref` to match on it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PvReadError {
    /// The LV's extents reach past the end of the PV's device or image (a truncated image,
    /// or the wrong device).
    #[error(
        "PV {pv} is {size} bytes, but the LV's extents need it to reach byte {needed} \
         (truncated image, or the wrong device?)"
    )]
    PastEnd {
        /// The PV's name in the metadata (`pv0`).
        pv: String,
        /// The device's size.
        size: u64,
        /// The end of the read that did not fit.
        needed: u64,
    },
    /// Reading the PV failed otherwise.
    #[error("reading PV {pv} at byte {offset}: {source}")]
    Read {
        /// The PV's name in the metadata.
        pv: String,
        /// Byte offset on the PV.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn pv_read_error<R: ReadAt + ?Sized>(
    dev: &R,
    pv: &str,
    off: u64,
    len: u64,
    e: io::Error,
) -> io::Error {
    let needed = off.saturating_add(len);
    let size = dev.size().ok();
    match size {
        Some(size) if needed > size => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            PvReadError::PastEnd {
                pv: pv.to_owned(),
                size,
                needed,
            },
        ),
        _ => io::Error::new(
            e.kind(),
            PvReadError::Read {
                pv: pv.to_owned(),
                offset: off,
                source: e,
            },
        ),
    }
}

fn fail(vg: &VolumeGroup, lv: &str, kind: ExportErrorKind) -> Error {
    Error::Export {
        lv: format!("{}/{lv}", vg.name),
        kind,
    }
}

fn unmappable(vg: &VolumeGroup, lv: &str, kind: UnmappableKind) -> Error {
    Error::Unmappable {
        lv: format!("{}/{lv}", vg.name),
        kind,
    }
}

/// One reader construction: every LV below the top one is built once and shared, so a
/// stack of LVs each striped onto the next costs one reader per LV, not one per path.
struct Builder<'a, 'f, R: ReadAt + ?Sized> {
    vg: &'a VolumeGroup,
    pv_source: &'f dyn Fn(&PhysicalVolume) -> Option<&'a R>,
    /// Lookups, built once (the model's own are linear).
    lvs: HashMap<&'a str, &'a LogicalVolume>,
    pvs: HashMap<&'a str, &'a PhysicalVolume>,
    built: HashMap<&'a str, Arc<LvReader<'a, R>>>,
    /// LVs being built, outermost first (a name met again is a cycle).
    stack: Vec<&'a str>,
}

impl<'a, R: ReadAt + ?Sized> LvReader<'a, R> {
    /// A reader for `lv_name`; `pv_source` gives the device of each PV (`None`: missing,
    /// which fails only if the LV uses that PV).
    pub fn new(
        vg: &'a VolumeGroup,
        lv_name: &str,
        pv_source: &dyn Fn(&PhysicalVolume) -> Option<&'a R>,
    ) -> Result<LvReader<'a, R>> {
        let lv: &'a LogicalVolume = vg
            .lv(lv_name)
            .ok_or_else(|| fail(vg, lv_name, ExportErrorKind::NoSuchLv))?;
        let mut b = Builder {
            vg,
            pv_source,
            lvs: vg.lvs.iter().map(|l| (l.name.as_str(), l)).collect(),
            // The later of two PV sections with one name, as `VolumeGroup::pv`.
            pvs: vg.pvs.iter().map(|p| (p.handle.as_str(), p)).collect(),
            built: HashMap::new(),
            stack: Vec::new(),
        };
        b.build(lv)
    }
}

impl<'a, R: ReadAt + ?Sized> Builder<'a, '_, R> {
    /// The shared reader of a sub-LV, built on first use.
    fn shared(&mut self, from: &str, name: &str) -> Result<Arc<LvReader<'a, R>>> {
        let vg = self.vg;
        let lv: &'a LogicalVolume = self
            .lvs
            .get(name)
            .copied()
            .ok_or_else(|| fail(vg, from, ExportErrorKind::UnknownLv { name: name.into() }))?;
        if let Some(r) = self.built.get(lv.name.as_str()) {
            return Ok(Arc::clone(r));
        }
        let r = Arc::new(self.build(lv)?);
        self.built.insert(lv.name.as_str(), Arc::clone(&r));
        Ok(r)
    }

    fn build(&mut self, lv: &'a LogicalVolume) -> Result<LvReader<'a, R>> {
        let vg = self.vg;
        let lv_name = lv.name.as_str();
        if self.stack.contains(&lv_name) {
            return Err(unmappable(
                vg,
                self.stack.first().copied().unwrap_or(lv_name),
                UnmappableKind::ReferenceCycle {
                    via: lv_name.to_string(),
                },
            ));
        }
        if self.stack.len() > MAX_STACK {
            return Err(unmappable(
                vg,
                self.stack.first().copied().unwrap_or(lv_name),
                UnmappableKind::TooDeep { limit: MAX_STACK },
            ));
        }
        if vg.extent_size == 0 {
            return Err(unmappable(vg, lv_name, UnmappableKind::ExtentSizeZero));
        }
        let lvs = &self.lvs;
        if let Some(kind) = vg.lv_fault_with(lv, &|n| lvs.get(n).map(|l| l.le_count())) {
            return Err(unmappable(vg, lv_name, kind));
        }
        self.stack.push(lv_name);
        let r = self.build_segments(lv);
        self.stack.pop();
        r
    }

    fn build_segments(&mut self, lv: &'a LogicalVolume) -> Result<LvReader<'a, R>> {
        let vg = self.vg;
        let pv_source = self.pv_source;
        let lv_name = lv.name.as_str();
        let ext = vg.extent_size.checked_mul(SECTOR_SIZE).ok_or_else(|| {
            fail(
                vg,
                lv_name,
                ExportErrorKind::Overflow {
                    what: "extent size",
                },
            )
        })?;
        let mut segments = Vec::with_capacity(lv.segments.len());
        for s in &lv.segments {
            let start = s.start_extent.checked_mul(ext);
            let len = s.extent_count.checked_mul(ext);
            let (Some(start), Some(len)) = (start, len) else {
                return Err(fail(
                    vg,
                    lv_name,
                    ExportErrorKind::Overflow { what: "segment" },
                ));
            };
            if start.checked_add(len).is_none() {
                return Err(fail(
                    vg,
                    lv_name,
                    ExportErrorKind::Overflow { what: "segment" },
                ));
            }
            let kind = match &s.kind {
                SegmentKind::Striped { stripe_size, areas } => {
                    let mut out = Vec::with_capacity(areas.len());
                    for a in areas {
                        out.push(match a {
                            Area::Pv { pv, pe } => {
                                let p = self.pvs.get(pv.as_str()).copied().ok_or_else(|| {
                                    fail(vg, lv_name, ExportErrorKind::UnknownPv { pv: pv.clone() })
                                })?;
                                let dev = pv_source(p).ok_or_else(|| {
                                    fail(
                                        vg,
                                        lv_name,
                                        ExportErrorKind::PvUnavailable {
                                            pv: pv.clone(),
                                            id: p.id.to_string(),
                                        },
                                    )
                                })?;
                                let off = pe
                                    .checked_mul(vg.extent_size)
                                    .and_then(|x| x.checked_add(p.pe_start))
                                    .and_then(|x| x.checked_mul(SECTOR_SIZE))
                                    .ok_or_else(|| {
                                        fail(
                                            vg,
                                            lv_name,
                                            ExportErrorKind::PvOffsetOverflow {
                                                pv: pv.clone(),
                                                pe_start: p.pe_start,
                                                pe: *pe,
                                                extent_size: vg.extent_size,
                                            },
                                        )
                                    })?;
                                (Source::Pv(dev, &p.handle), off)
                            }
                            Area::Lv { lv: sub, le } => {
                                let r = self.shared(lv_name, sub)?;
                                let off = le.checked_mul(ext).ok_or_else(|| {
                                    fail(vg, lv_name, ExportErrorKind::Overflow { what: "offset" })
                                })?;
                                (Source::Lv(r), off)
                            }
                        });
                    }
                    let stripe = stripe_size.checked_mul(SECTOR_SIZE).ok_or_else(|| {
                        fail(
                            vg,
                            lv_name,
                            ExportErrorKind::Overflow {
                                what: "stripe size",
                            },
                        )
                    })?;
                    if out.len() > 1 && stripe == 0 {
                        return Err(fail(vg, lv_name, ExportErrorKind::NoStripeSize));
                    }
                    SegMap::Striped { stripe, areas: out }
                }
                SegmentKind::Zero => SegMap::Zero,
                SegmentKind::Error => SegMap::Error,
                SegmentKind::Snapshot { .. } => {
                    return Err(fail(vg, lv_name, ExportErrorKind::InternalSnapshot));
                }
                SegmentKind::Thin { .. } | SegmentKind::ThinPool { .. } => {
                    return Err(fail(vg, lv_name, ExportErrorKind::Thin));
                }
                SegmentKind::Other { segtype, .. } => {
                    return Err(fail(
                        vg,
                        lv_name,
                        ExportErrorKind::SegmentType {
                            segtype: segtype.clone(),
                        },
                    ));
                }
            };
            segments.push(Seg { start, len, kind });
        }
        let size = segments.last().map_or(0, |s| s.start + s.len);
        Ok(LvReader {
            name: lv.name.clone(),
            size,
            segments,
        })
    }
}

impl<R: ReadAt + ?Sized> LvReader<'_, R> {
    /// Distinct sub-LV readers below this one (each built once, however many areas use it).
    #[cfg(test)]
    pub(crate) fn sub_readers(&self) -> usize {
        fn walk<R: ReadAt + ?Sized>(r: &LvReader<'_, R>, seen: &mut Vec<*const ()>) {
            for s in &r.segments {
                if let SegMap::Striped { areas, .. } = &s.kind {
                    for (src, _) in areas {
                        if let Source::Lv(l) = src {
                            let p = Arc::as_ptr(l).cast::<()>();
                            if !seen.contains(&p) {
                                seen.push(p);
                                walk(l, seen);
                            }
                        }
                    }
                }
            }
        }
        let mut seen = Vec::new();
        walk(self, &mut seen);
        seen.len()
    }

    /// The LV's size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Zero-length LV.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

impl<R: ReadAt + ?Sized> ReadAt for LvReader<'_, R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the LV")
            })?;
        let mut pos = offset;
        let mut done = 0usize;
        while pos < end {
            // Segments are contiguous from 0: find the one holding `pos`.
            let i = self.segments.partition_point(|s| s.start + s.len <= pos);
            let seg = self
                .segments
                .get(i)
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no segment"))?;
            let in_seg = pos - seg.start;
            let mut n = (seg.start + seg.len - pos).min(end - pos);
            match &seg.kind {
                SegMap::Zero => {
                    let chunk = buf.get_mut(done..done + n as usize).unwrap_or_default();
                    chunk.fill(0);
                }
                SegMap::Error => {
                    return Err(io::Error::other(format!(
                        "{}: read of an error segment",
                        self.name
                    )));
                }
                SegMap::Striped { stripe, areas } => {
                    let (src, base, within) = if areas.len() == 1 {
                        let (src, base) =
                            areas.first().ok_or_else(|| io::Error::other("no area"))?;
                        (src, *base, in_seg)
                    } else {
                        let k = areas.len() as u64;
                        let chunk = in_seg / stripe;
                        let off_in_chunk = in_seg % stripe;
                        n = n.min(stripe - off_in_chunk);
                        let (src, base) = areas
                            .get((chunk % k) as usize)
                            .ok_or_else(|| io::Error::other("no area"))?;
                        (src, *base, (chunk / k) * stripe + off_in_chunk)
                    };
                    let dst = buf
                        .get_mut(done..done + n as usize)
                        .ok_or_else(|| io::Error::other("buffer bounds"))?;
                    let at = base
                        .checked_add(within)
                        .ok_or_else(|| io::Error::other("device offset overflows"))?;
                    src.read(dst, at)?;
                }
            }
            pos += n;
            done += n as usize;
        }
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    /// Zero segments are holes; a linear segment (or a one-area striped one) has the holes
    /// of its PV or LV; other segments are data.
    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let first = self.segments.partition_point(|s| s.start + s.len <= offset);
        for seg in self.segments.get(first..).unwrap_or_default() {
            let from = offset.max(seg.start);
            let seg_end = seg.start + seg.len;
            match &seg.kind {
                SegMap::Zero => continue,
                SegMap::Error => return Ok(Some((from, seg_end))),
                SegMap::Striped { areas, .. } => {
                    let [(src, base)] = areas.as_slice() else {
                        return Ok(Some((from, seg_end)));
                    };
                    let Some(at) = base.checked_add(from - seg.start) else {
                        return Ok(Some((from, seg_end)));
                    };
                    // Source offsets back to LV offsets, within this segment.
                    let to_lv = |o: u64| seg.start + (o - base);
                    let area_end = base.saturating_add(seg.len);
                    if let Some((s, e)) = src.next_data(at)?
                        && s < area_end
                    {
                        let s = s.max(at);
                        return Ok(Some((to_lv(s), to_lv(e.clamp(s + 1, area_end)))));
                    }
                    // A source shorter than the segment: the part past its end is not a
                    // hole but an error when read, as without hole skipping.
                    let src_end = src.size()?;
                    if src_end < area_end {
                        return Ok(Some((to_lv(src_end.max(at)), seg_end)));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Copy all of `src` into a checked [`crate::io::Output`], reading only the data of
/// sparse PVs and images and keeping their holes as holes in a regular-file output
/// ([`crate::io::copy_to`]); returns the bytes written.
///
/// # Errors
/// [`crate::io::CopyError`]: reading (with [`PvReadError`] inside for a PV) or writing.
pub fn export_to<R: ReadAt + ?Sized>(
    src: &R,
    out: &crate::io::Output,
) -> Result<u64, crate::io::CopyError> {
    crate::io::copy_to(src, out)
}

/// Copy all of `src` to `out` in 1 MiB pieces; returns the bytes written.
///
/// # Errors
/// [`crate::io::CopyError`]: reading (with [`PvReadError`] inside for a PV) or writing.
pub fn export<R: ReadAt + ?Sized, W: Write>(
    src: &R,
    out: &mut W,
) -> Result<u64, crate::io::CopyError> {
    crate::io::copy(src, out)
}

/// The pieces of a snapshot LV (named by its COW LV, as `lvs` shows it): a reader for the
/// origin, a reader for the COW store, and the chunk size in sectors. Combine them with
/// the COW store reader to read the snapshot's contents.
pub fn snapshot_parts<'a, R: ReadAt + ?Sized>(
    vg: &'a VolumeGroup,
    snapshot: &str,
    pv_source: &dyn Fn(&PhysicalVolume) -> Option<&'a R>,
) -> Result<(LvReader<'a, R>, LvReader<'a, R>, u64)> {
    let link = vg
        .cow_link(snapshot)
        .ok_or_else(|| fail(vg, snapshot, ExportErrorKind::NotSnapshot))?;
    // Relations lvm2 would not activate (shared COW, snapshot of a snapshot, ...).
    if let Some((_, kind)) = vg
        .snapshot_faults()
        .into_iter()
        .find(|(cow, _)| *cow == link.cow)
    {
        return Err(unmappable(vg, snapshot, kind));
    }
    if link.merging {
        return Err(fail(vg, snapshot, ExportErrorKind::Merging));
    }
    let origin = LvReader::new(vg, link.origin, pv_source)?;
    let cow = LvReader::new(vg, link.cow, pv_source)?;
    Ok((origin, cow, link.chunk_size))
}

/// The first `len` bytes of an LV: a snapshot sees only the origin extents it was taken
/// with, even after the origin grew.
pub struct OriginView<'a, R: ReadAt + ?Sized> {
    inner: LvReader<'a, R>,
    len: u64,
}

impl<R: ReadAt + ?Sized> std::fmt::Debug for OriginView<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginView")
            .field("origin", &self.inner)
            .field("len", &self.len)
            .finish()
    }
}

impl<R: ReadAt + ?Sized> ReadAt for OriginView<'_, R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => self.inner.read_exact_at(buf, offset),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the snapshot",
            )),
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(self
            .inner
            .next_data(offset)?
            .filter(|&(s, _)| s < self.len)
            .map(|(s, e)| (s, e.min(self.len))))
    }
}

/// A snapshot LV's content: its origin with the COW store's exceptions applied (what the
/// kernel's `snapshot` target shows), read through [`crate::cow::reader::SnapshotReader`].
pub type SnapshotLvReader<'a, R> = SnapshotReader<OriginView<'a, R>, LvReader<'a, R>>;

/// Open a snapshot LV (named by its COW LV, as `lvs` shows it) for reading offline. The
/// store's chunk size must match the metadata's, and an invalidated (overflowed) store is
/// refused, as the kernel refuses to load it.
pub fn snapshot_reader<'a, R: ReadAt + ?Sized>(
    vg: &'a VolumeGroup,
    snapshot: &str,
    pv_source: &dyn Fn(&PhysicalVolume) -> Option<&'a R>,
) -> Result<SnapshotLvReader<'a, R>> {
    let link = vg
        .cow_link(snapshot)
        .ok_or_else(|| fail(vg, snapshot, ExportErrorKind::NotSnapshot))?;
    let (origin, cow, chunk) = snapshot_parts(vg, snapshot, pv_source)?;
    let len = link
        .origin_extents
        .checked_mul(vg.extent_size)
        .and_then(|s| s.checked_mul(SECTOR_SIZE))
        .filter(|&l| l <= origin.len())
        .ok_or_else(|| {
            fail(
                vg,
                snapshot,
                ExportErrorKind::OriginSize {
                    extents: link.origin_extents,
                    origin: link.origin.to_string(),
                },
            )
        })?;
    let r = SnapshotReader::open(OriginView { inner: origin, len }, cow)
        .map_err(|e| fail(vg, snapshot, ExportErrorKind::CowStore(e)))?;
    let want = chunk.saturating_mul(SECTOR_SIZE);
    if r.chunk_bytes() != 0 && r.chunk_bytes() != want {
        return Err(fail(
            vg,
            snapshot,
            ExportErrorKind::ChunkSize {
                store: r.chunk_bytes(),
                metadata: want,
            },
        ));
    }
    Ok(r)
}

/// Which bytes of a snapshot LV [`open_lv`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotView {
    /// The snapshot's content: its origin with the COW store's exceptions applied.
    #[default]
    Content,
    /// The COW store itself: the LV's own segments.
    CowStore,
}

/// Open any LV for reading offline: a snapshot LV (named by its COW LV, as `lvs` shows
/// it) through [`snapshot_reader`], or its COW store with [`SnapshotView::CowStore`];
/// any other LV through [`LvReader`] (`view` does not matter for it).
///
/// ```
/// use devmapper::io::ReadAt;
/// use devmapper::lvm::export::{SnapshotView, open_lv};
/// use devmapper::lvm::metadata_text::read_vg;
/// # let text = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
/// let vg = read_vg(text)?;
/// let zeros = vec![0u8; 16 << 20];
/// // snap2: a snapshot of the 512-sector origin, on a 384-sector COW store.
/// let store = open_lv(&vg, "snap2", &|_p| Some(&zeros[..]), SnapshotView::CowStore)?;
/// assert_eq!(store.size()?, 384 * 512);
/// // An all-zero store is a fresh one: the content is the origin's.
/// let content = open_lv(&vg, "snap2", &|_p| Some(&zeros[..]), SnapshotView::Content)?;
/// assert_eq!(content.size()?, 512 * 512);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`snapshot_reader`] and [`LvReader::new`].
pub fn open_lv<'a, R: ReadAt + ?Sized + 'a>(
    vg: &'a VolumeGroup,
    lv: &str,
    pv_source: &dyn Fn(&PhysicalVolume) -> Option<&'a R>,
    view: SnapshotView,
) -> Result<Box<dyn ReadAt + 'a>> {
    Ok(
        if vg.cow_link(lv).is_some() && view == SnapshotView::Content {
            Box::new(snapshot_reader(vg, lv, pv_source)?)
        } else {
            Box::new(LvReader::new(vg, lv, pv_source)?)
        },
    )
}
