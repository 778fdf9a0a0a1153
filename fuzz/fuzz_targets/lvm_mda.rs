#![no_main]
//! A metadata area at offset 0 of the input: the header is sealed (magic, version, start,
//! CRC) so that the location checks, the wrap read and the text CRC are what gets fuzzed.
use devmapper::lvm::crc::{INITIAL_CRC, calc_crc};
use devmapper::lvm::label::DiskLocn;
use devmapper::lvm::mda::{FMTT_MAGIC, read_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let area = DiskLocn {
        offset: 0,
        size: data.len() as u64,
    };
    let _ = read_metadata(data, area);
    if data.len() < 512 {
        return;
    }
    let mut img = data.to_vec();
    img[4..20].copy_from_slice(FMTT_MAGIC);
    img[20..24].copy_from_slice(&1u32.to_le_bytes());
    img[24..32].copy_from_slice(&0u64.to_le_bytes());
    // Seal the text CRC too when the first slot points inside the image (with wrap).
    let size = u64::from_le_bytes(img[32..40].try_into().unwrap_or_default());
    let off = u64::from_le_bytes(img[40..48].try_into().unwrap_or_default());
    let len = u64::from_le_bytes(img[48..56].try_into().unwrap_or_default());
    if size >= 512
        && size <= img.len() as u64
        && off >= 512
        && off < size
        && len <= size - 512
        && len < 1 << 20
    {
        let text: Vec<u8> = (0..len)
            .map(|i| {
                let mut p = off + i;
                if p >= size {
                    p = p - size + 512;
                }
                img[p as usize]
            })
            .collect();
        img[56..60].copy_from_slice(&calc_crc(INITIAL_CRC, &text).to_le_bytes());
    }
    let crc = calc_crc(INITIAL_CRC, &img[4..512]);
    img[0..4].copy_from_slice(&crc.to_le_bytes());
    let _ = read_metadata(&img[..], area);
});
