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

/// A metadata text template of `tests/fixtures/lvm/template/` (read once).
fn template(name: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache.entry(name.to_owned()).or_insert_with(|| {
        let path = fixture(&format!("lvm/template/{name}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Box::leak(text.into_boxed_str())
    })
}

/// `template` with each `{key}` replaced by its value, in one pass (values are not
/// searched for keys again). A line holding a key whose value is `None` is left out: the
/// optional fields. Braces that name no key stay as they are.
pub fn fill(template: &str, values: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    for line in template.split_inclusive('\n') {
        let mut filled = String::new();
        let mut rest = line;
        let mut keep = true;
        while let Some(at) = rest.find('{') {
            filled.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let key = after.find('}').map(|end| &after[..end]).filter(|k| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            match key.and_then(|k| values.iter().find(|(n, _)| *n == k)) {
                Some((k, v)) => {
                    match v {
                        Some(v) => filled.push_str(v),
                        None => keep = false,
                    }
                    rest = &after[k.len() + 1..];
                }
                None => {
                    filled.push('{');
                    rest = after;
                }
            }
        }
        filled.push_str(rest);
        if keep {
            out.push_str(&filled);
        }
    }
    out
}

impl VgSpec {
    /// The text as lvm2 writes it on disk (the VG section, then the file keys), from the
    /// templates in `tests/fixtures/lvm/template/`.
    pub fn render(&self) -> String {
        let pvs: String = self.pvs.iter().map(PvSpec::render).collect();
        let lvs: String = self.lvs.iter().map(LvSpec::render).collect();
        fill(
            template("vg"),
            &[
                ("name", Some(&self.name)),
                ("id", Some(&dashed(&self.id))),
                ("seqno", Some(&self.seqno.to_string())),
                ("extent_size", Some(&self.extent_size.to_string())),
                ("pvs", Some(&pvs)),
                ("lvs", Some(&lvs)),
            ],
        )
    }
}

impl PvSpec {
    fn render(&self) -> String {
        fill(
            template("pv"),
            &[
                ("name", Some(&self.name)),
                ("id", Some(&dashed(&self.id))),
                ("dev_size", self.dev_size.map(|d| d.to_string()).as_deref()),
                ("pe_start", Some(&self.pe_start.to_string())),
                ("pe_count", Some(&self.pe_count.to_string())),
            ],
        )
    }
}

impl LvSpec {
    fn render(&self) -> String {
        let n = self.segment_count.unwrap_or(self.segments.len() as Num);
        let segments: String = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| s.render(i + 1))
            .collect();
        fill(
            template("lv"),
            &[
                ("name", Some(&self.name)),
                ("id", Some(&dashed(&self.id))),
                (
                    "visible",
                    Some(if self.visible { ", \"VISIBLE\"" } else { "" }),
                ),
                ("segment_count", Some(&n.to_string())),
                ("segments", Some(&segments)),
            ],
        )
    }
}

impl SegSpec {
    fn render(&self, index: usize) -> String {
        let kind = match &self.kind {
            SegKind::Striped {
                stripe_count,
                stripe_size,
                stripes,
            } => {
                let items: Vec<String> = stripes
                    .iter()
                    .map(|(n, e)| format!("\"{n}\", {e}"))
                    .collect();
                fill(
                    template("striped"),
                    &[
                        ("stripe_count", Some(&stripe_count.to_string())),
                        ("stripe_size", stripe_size.map(|s| s.to_string()).as_deref()),
                        ("stripes", Some(&items.join(",\n"))),
                    ],
                )
            }
            SegKind::Snapshot {
                chunk_size,
                origin,
                cow,
                merging,
            } => fill(
                template("snapshot"),
                &[
                    ("chunk_size", Some(&chunk_size.to_string())),
                    ("origin", Some(origin)),
                    (
                        "store",
                        Some(if *merging {
                            "merging_store"
                        } else {
                            "cow_store"
                        }),
                    ),
                    ("cow", Some(cow)),
                ],
            ),
            SegKind::Other(ty) => fill(template("other"), &[("type", Some(ty))]),
        };
        fill(
            template("segment"),
            &[
                ("index", Some(&index.to_string())),
                ("start_extent", Some(&self.start_extent.to_string())),
                ("extent_count", Some(&self.extent_count.to_string())),
                ("kind", Some(&kind)),
            ],
        )
    }
}
