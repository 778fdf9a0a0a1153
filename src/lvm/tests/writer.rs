//! A test-only PV writer: label, `pv_header`, metadata area headers and text copies placed
//! in the circular buffer the way lvm2 places them (wrapping when they cross the end).

use crate::lvm::crc::{INITIAL_CRC, calc_crc};
use crate::lvm::mda::{FMTT_MAGIC, MDA_HEADER_SIZE, RawLocn};

/// What to put in the label sector.
pub struct LabelSpec<'a> {
    pub sector: u64,
    pub pv_id: &'a str,
    pub device_size: u64,
    pub data_areas: Vec<(u64, u64)>,
    pub metadata_areas: Vec<(u64, u64)>,
    /// `(version, flags)`; `None` writes version 0 (no extension).
    pub extension: Option<(u32, u32)>,
}

pub fn label_sector(spec: &LabelSpec<'_>) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..8].copy_from_slice(b"LABELONE");
    s[8..16].copy_from_slice(&spec.sector.to_le_bytes());
    s[20..24].copy_from_slice(&32u32.to_le_bytes());
    s[24..32].copy_from_slice(b"LVM2 001");
    s[32..64].copy_from_slice(spec.pv_id.as_bytes());
    s[64..72].copy_from_slice(&spec.device_size.to_le_bytes());
    let mut at = 72;
    for list in [&spec.data_areas, &spec.metadata_areas] {
        for &(o, l) in list.iter().chain(std::iter::once(&(0, 0))) {
            s[at..at + 8].copy_from_slice(&o.to_le_bytes());
            s[at + 8..at + 16].copy_from_slice(&l.to_le_bytes());
            at += 16;
        }
    }
    if let Some((v, f)) = spec.extension {
        s[at..at + 4].copy_from_slice(&v.to_le_bytes());
        s[at + 4..at + 8].copy_from_slice(&f.to_le_bytes());
        // bootloader list: just the terminator (already zero).
    }
    seal_label(&mut s);
    s
}

pub fn seal_label(s: &mut [u8; 512]) {
    let crc = calc_crc(INITIAL_CRC, &s[20..]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
}

pub fn mda_header(start: u64, size: u64, locns: &[RawLocn]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[4..20].copy_from_slice(FMTT_MAGIC);
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&start.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    let mut at = 40;
    for l in locns {
        h[at..at + 8].copy_from_slice(&l.offset.to_le_bytes());
        h[at + 8..at + 16].copy_from_slice(&l.size.to_le_bytes());
        h[at + 16..at + 20].copy_from_slice(&l.checksum.to_le_bytes());
        h[at + 20..at + 24].copy_from_slice(&l.flags.to_le_bytes());
        at += 24;
    }
    seal_mda(&mut h);
    h
}

pub fn seal_mda(h: &mut [u8; 512]) {
    let crc = calc_crc(INITIAL_CRC, &h[4..]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Write `text` plus a NUL at `offset` inside the area `[start, start+size)`, wrapping to
/// just after the header; returns the `raw_locn` describing it.
pub fn put_text(img: &mut [u8], start: u64, size: u64, offset: u64, text: &[u8]) -> RawLocn {
    let mut body = text.to_vec();
    body.push(0);
    let hdr = MDA_HEADER_SIZE as u64;
    for (i, &b) in body.iter().enumerate() {
        let mut rel = offset + i as u64;
        if rel >= size {
            rel = rel - size + hdr;
        }
        img[(start + rel) as usize] = b;
    }
    RawLocn {
        offset,
        size: body.len() as u64,
        checksum: calc_crc(INITIAL_CRC, &body),
        flags: 0,
    }
}

pub const PV_ID: &str = "EBY3ABp3e2zS8iq9y7AjzQHb6BAEcn6z";

/// A 1 MiB-data-offset PV image of `len` bytes with one metadata area at 4096 holding
/// `text` at offset 512 (unless `text` is empty), label in sector 1.
pub fn simple_pv(len: usize, text: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; len];
    let (start, size) = (4096u64, 1_048_576 - 4096);
    let spec = LabelSpec {
        sector: 1,
        pv_id: PV_ID,
        device_size: len as u64,
        data_areas: vec![(1 << 20, 0)],
        metadata_areas: vec![(start, size)],
        extension: Some((2, 1)),
    };
    img[512..1024].copy_from_slice(&label_sector(&spec));
    let locns = if text.is_empty() {
        vec![]
    } else {
        vec![put_text(&mut img, start, size, 512, text)]
    };
    img[start as usize..start as usize + 512].copy_from_slice(&mda_header(start, size, &locns));
    img
}

/// A PV image with the given id and metadata areas `(start, size, text)`.
pub fn pv_image(len: usize, pv_id: &str, mdas: &[(u64, u64, Option<&[u8]>)]) -> Vec<u8> {
    let mut img = vec![0u8; len];
    let spec = LabelSpec {
        sector: 1,
        pv_id,
        device_size: len as u64,
        data_areas: vec![(1 << 20, 0)],
        metadata_areas: mdas.iter().map(|&(s, l, _)| (s, l)).collect(),
        extension: Some((2, 1)),
    };
    img[512..1024].copy_from_slice(&label_sector(&spec));
    for &(start, size, text) in mdas {
        let locns = match text {
            Some(t) => vec![put_text(&mut img, start, size, 512, t)],
            None => vec![],
        };
        img[start as usize..start as usize + 512].copy_from_slice(&mda_header(start, size, &locns));
    }
    img
}
