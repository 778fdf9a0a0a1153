//! Builders shared by integration tests: LVM2 PV images (label, `pv_header`, metadata area
//! header, committed text in the ring) and a metadata-text model whose numbers can be set to
//! anything, in or out of range, so hostile tests get past the first checks.
//!
//! The library's own test writer (`src/lvm/tests/writer.rs`) is `#[cfg(test)]` and not
//! reachable from `tests/`; this is the minimal equivalent, built on the public CRC.
#![allow(dead_code)]

pub mod bin;
pub mod files;

#[allow(unused_imports)] // each test file uses some
pub use files::{corpus_or_skip, fixture, gunzip, gunzip_to};

use std::fmt::Write as _;

use devmapper::lvm::crc::{INITIAL_CRC, calc_crc};
use devmapper::lvm::mda::FMTT_MAGIC;

/// `(offset, size, checksum, flags)` of a metadata copy in the ring (`raw_locn`).
pub type Locn = (u64, u64, u32, u32);

/// The label sector: `LABELONE` header at `sector`, `pv_header` with the given areas,
/// extension version 2. CRC sealed.
pub fn label_sector(
    sector: u64,
    pv_id: &[u8; 32],
    device_size: u64,
    data_areas: &[(u64, u64)],
    metadata_areas: &[(u64, u64)],
) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..8].copy_from_slice(b"LABELONE");
    s[8..16].copy_from_slice(&sector.to_le_bytes());
    s[20..24].copy_from_slice(&32u32.to_le_bytes());
    s[24..32].copy_from_slice(b"LVM2 001");
    s[32..64].copy_from_slice(pv_id);
    s[64..72].copy_from_slice(&device_size.to_le_bytes());
    let mut at = 72;
    for list in [data_areas, metadata_areas] {
        for &(o, l) in list.iter().chain(std::iter::once(&(0, 0))) {
            if at + 16 > 504 {
                break;
            }
            s[at..at + 8].copy_from_slice(&o.to_le_bytes());
            s[at + 8..at + 16].copy_from_slice(&l.to_le_bytes());
            at += 16;
        }
    }
    if at + 8 <= 512 {
        s[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
        s[at + 4..at + 8].copy_from_slice(&1u32.to_le_bytes());
    }
    seal_label(&mut s);
    s
}

/// Recompute the label CRC (over bytes 20..512).
pub fn seal_label(s: &mut [u8]) {
    let crc = calc_crc(INITIAL_CRC, &s[20..512]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// A metadata area header for the area `[start, start + size)` with the given copies.
pub fn mda_header(start: u64, size: u64, locns: &[Locn]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[4..20].copy_from_slice(FMTT_MAGIC);
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&start.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    let mut at = 40;
    for &(o, l, c, f) in locns {
        h[at..at + 8].copy_from_slice(&o.to_le_bytes());
        h[at + 8..at + 16].copy_from_slice(&l.to_le_bytes());
        h[at + 16..at + 20].copy_from_slice(&c.to_le_bytes());
        h[at + 20..at + 24].copy_from_slice(&f.to_le_bytes());
        at += 24;
    }
    seal_mda(&mut h);
    h
}

/// Recompute the metadata area header CRC (over bytes 4..512).
pub fn seal_mda(h: &mut [u8]) {
    let crc = calc_crc(INITIAL_CRC, &h[4..512]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Write `text` and a NUL at `offset` of the ring `[start, start + size)` of `img`,
/// wrapping to just after the 512-byte header as lvm2 does. Returns its `raw_locn`.
pub fn put_text(img: &mut [u8], start: u64, size: u64, offset: u64, text: &[u8]) -> Locn {
    let mut body = text.to_vec();
    body.push(0);
    for (i, &b) in body.iter().enumerate() {
        let mut rel = offset + i as u64;
        while rel >= size {
            rel = rel - size + 512;
        }
        if let Some(x) = img.get_mut((start + rel) as usize) {
            *x = b;
        }
    }
    (offset, body.len() as u64, calc_crc(INITIAL_CRC, &body), 0)
}

/// Where things are in a PV image made by [`pv_image`].
#[derive(Clone, Copy, Debug)]
pub struct PvLayout {
    /// Byte offset of the metadata area (its header).
    pub mda_start: u64,
    /// Size of the metadata area in bytes.
    pub mda_size: u64,
    /// Byte offset of the first PE.
    pub pe_start: u64,
}

/// The layout used by [`pv_image`]: label in sector 1, one 60 KiB metadata area at 4 KiB,
/// PEs from 64 KiB (sector 128).
pub const LAYOUT: PvLayout = PvLayout {
    mda_start: 4096,
    mda_size: 65536 - 4096,
    pe_start: 65536,
};

/// A PV image of `len` bytes whose metadata area holds `text` (committed) at `text_offset`
/// of the ring (512 = right after the header; near the end to make it wrap).
pub fn pv_image(len: usize, pv_id: &[u8; 32], text: &[u8], text_offset: u64) -> Vec<u8> {
    let mut img = vec![0u8; len.max(LAYOUT.pe_start as usize)];
    let l = LAYOUT;
    img[512..1024].copy_from_slice(&label_sector(
        1,
        pv_id,
        len as u64,
        &[(l.pe_start, 0)],
        &[(l.mda_start, l.mda_size)],
    ));
    let locn = put_text(&mut img, l.mda_start, l.mda_size, text_offset, text);
    let s = l.mda_start as usize;
    img[s..s + 512].copy_from_slice(&mda_header(l.mda_start, l.mda_size, &[locn]));
    img.truncate(len);
    img
}

/// A number as written in metadata text: any integer, also out of `u64` range.
pub type Num = i128;

/// A PV section.
#[derive(Clone, Debug)]
pub struct PvSpec {
    pub name: String,
    /// 32 id characters (dashes are added when rendered).
    pub id: [u8; 32],
    pub pe_start: Num,
    pub pe_count: Num,
    pub dev_size: Option<Num>,
}

/// What a segment maps to.
#[derive(Clone, Debug)]
pub enum SegKind {
    /// `striped` with `(volume, extent)` pairs; `stripe_count` as written.
    Striped {
        stripe_count: Num,
        stripe_size: Option<Num>,
        stripes: Vec<(String, Num)>,
    },
    /// `snapshot`.
    Snapshot {
        chunk_size: Num,
        origin: String,
        cow: String,
        merging: bool,
    },
    /// Any other segment type, no fields.
    Other(String),
}

/// A segment.
#[derive(Clone, Debug)]
pub struct SegSpec {
    pub start_extent: Num,
    pub extent_count: Num,
    pub kind: SegKind,
}

/// An LV section.
#[derive(Clone, Debug)]
pub struct LvSpec {
    pub name: String,
    pub id: [u8; 32],
    pub visible: bool,
    /// `segment_count` as written (`None`: the number of segments).
    pub segment_count: Option<Num>,
    pub segments: Vec<SegSpec>,
}

/// A VG as metadata text.
#[derive(Clone, Debug)]
pub struct VgSpec {
    pub name: String,
    pub id: [u8; 32],
    pub seqno: Num,
    pub extent_size: Num,
    pub pvs: Vec<PvSpec>,
    pub lvs: Vec<LvSpec>,
}

/// `xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`.
pub fn dashed(id: &[u8; 32]) -> String {
    let s = String::from_utf8_lossy(id);
    let cuts = [6, 10, 14, 18, 22, 26];
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if cuts.contains(&i) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// An id from a small number (valid characters only).
pub fn make_id(tag: u64) -> [u8; 32] {
    const CH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = [0u8; 32];
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
    for b in &mut id {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = CH[(x % CH.len() as u64) as usize];
    }
    id
}

impl VgSpec {
    /// The text as lvm2 writes it on disk (the VG section, then the file keys).
    pub fn render(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{} {{", self.name);
        let _ = writeln!(t, "id = \"{}\"", dashed(&self.id));
        let _ = writeln!(t, "seqno = {}", self.seqno);
        t.push_str(
            "format = \"lvm2\"\nstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nflags = []\n",
        );
        let _ = writeln!(t, "extent_size = {}", self.extent_size);
        t.push_str("max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {\n");
        for pv in &self.pvs {
            let _ = writeln!(t, "\n{} {{", pv.name);
            let _ = writeln!(t, "id = \"{}\"", dashed(&pv.id));
            t.push_str("device = \"/dev/loop0\"\nstatus = [\"ALLOCATABLE\"]\nflags = []\n");
            if let Some(d) = pv.dev_size {
                let _ = writeln!(t, "dev_size = {d}");
            }
            let _ = writeln!(
                t,
                "pe_start = {}\npe_count = {}\n}}",
                pv.pe_start, pv.pe_count
            );
        }
        t.push_str("}\n\nlogical_volumes {\n");
        for lv in &self.lvs {
            let _ = writeln!(t, "\n{} {{", lv.name);
            let _ = writeln!(t, "id = \"{}\"", dashed(&lv.id));
            let vis = if lv.visible { ", \"VISIBLE\"" } else { "" };
            let _ = writeln!(t, "status = [\"READ\", \"WRITE\"{vis}]\nflags = []");
            t.push_str("creation_time = 1718000000\ncreation_host = \"box\"\n");
            let n = lv.segment_count.unwrap_or(lv.segments.len() as Num);
            let _ = writeln!(t, "segment_count = {n}");
            for (i, s) in lv.segments.iter().enumerate() {
                let _ = writeln!(t, "\nsegment{} {{", i + 1);
                let _ = writeln!(
                    t,
                    "start_extent = {}\nextent_count = {}\n",
                    s.start_extent, s.extent_count
                );
                match &s.kind {
                    SegKind::Striped {
                        stripe_count,
                        stripe_size,
                        stripes,
                    } => {
                        let _ = writeln!(t, "type = \"striped\"\nstripe_count = {stripe_count}");
                        if let Some(ss) = stripe_size {
                            let _ = writeln!(t, "stripe_size = {ss}");
                        }
                        t.push_str("\nstripes = [\n");
                        let items: Vec<String> = stripes
                            .iter()
                            .map(|(n, e)| format!("\"{n}\", {e}"))
                            .collect();
                        t.push_str(&items.join(",\n"));
                        t.push_str("\n]\n");
                    }
                    SegKind::Snapshot {
                        chunk_size,
                        origin,
                        cow,
                        merging,
                    } => {
                        let store = if *merging {
                            "merging_store"
                        } else {
                            "cow_store"
                        };
                        let _ = writeln!(
                            t,
                            "type = \"snapshot\"\nchunk_size = {chunk_size}\norigin = \"{origin}\"\n{store} = \"{cow}\""
                        );
                    }
                    SegKind::Other(ty) => {
                        let _ = writeln!(t, "type = \"{ty}\"");
                    }
                }
                t.push_str("}\n");
            }
            t.push_str("}\n");
        }
        t.push_str("}\n\n}\n# Generated by LVM2 version 2.03.16(2) (2022-05-18)\n\n");
        t.push_str("contents = \"Text Format Volume Group\"\nversion = 1\n\n");
        t.push_str("description = \"\"\n\ncreation_host = \"box\"\ncreation_time = 1718000000\n");
        t
    }
}
