#![no_main]
//! The PV label scan over arbitrary first sectors; the second half re-seals the CRC so the
//! pv_header parser itself is reached.
use devmapper::lvm::crc::{INITIAL_CRC, calc_crc};
use devmapper::lvm::label::{find_label, parse_label_sector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = find_label(data);
    let mut s = [0u8; 512];
    let n = data.len().min(480);
    s[..8].copy_from_slice(b"LABELONE");
    s[24..32].copy_from_slice(b"LVM2 001");
    s[20..24].copy_from_slice(&32u32.to_le_bytes());
    s[32..32 + n].copy_from_slice(&data[..n]);
    let crc = calc_crc(INITIAL_CRC, &s[20..]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    let _ = parse_label_sector(&s, 0);
});
