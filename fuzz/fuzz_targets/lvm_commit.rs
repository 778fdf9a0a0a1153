#![no_main]
//! The commit path's inputs: a metadata area whose header (sealed: magic, version, start,
//! CRC, so that its slots and size are what gets fuzzed) and ring come from the input, and a
//! text that is either built from the input (a valid VG section of varying size) or raw input
//! bytes. precommit + commit (or revert) must not panic; when they succeed the reader must
//! read exactly the new text (after commit) or what it read before (after revert).
use devmapper::io::MemDevice;
use devmapper::lvm::crc::{INITIAL_CRC, calc_crc};
use devmapper::lvm::label::DiskLocn;
use devmapper::lvm::mda::{FMTT_MAGIC, MdaContent, read_metadata};
use devmapper::lvm::write::commit::{self, MdaTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Some((&len_byte, rest)) = rest.split_first() else {
        return;
    };
    // The image: the rest of the input, at least one header, at most 256 KiB.
    let mut img = rest[..rest.len().min(256 << 10)].to_vec();
    if img.len() < 512 {
        img.resize(512, 0);
    }
    if ctl & 1 != 0 {
        img[4..20].copy_from_slice(FMTT_MAGIC);
        img[20..24].copy_from_slice(&1u32.to_le_bytes());
        img[24..32].copy_from_slice(&0u64.to_le_bytes());
        if ctl & 2 != 0 {
            // An area exactly as large as the image.
            let n = img.len() as u64;
            img[32..40].copy_from_slice(&n.to_le_bytes());
        }
        let crc = calc_crc(INITIAL_CRC, &img[4..512]);
        img[0..4].copy_from_slice(&crc.to_le_bytes());
    }
    let label_size = if ctl & 4 != 0 {
        img.len() as u64
    } else {
        u64::from_le_bytes(img[32..40].try_into().unwrap_or_default())
    };
    let area = DiskLocn {
        offset: 0,
        size: label_size,
    };
    let text: Vec<u8> = if ctl & 8 != 0 {
        let mut t = rest
            .iter()
            .take(usize::from(len_byte) * 4)
            .copied()
            .collect::<Vec<u8>>();
        t.push(0);
        t
    } else {
        let mut t = format!("vg0 {{\nseqno = {}\ndescription = \"", u32::from(ctl)).into_bytes();
        t.extend(std::iter::repeat_n(b'x', usize::from(len_byte) * 64));
        t.extend_from_slice(b"\"\n}\n\0");
        t
    };
    let dev = MemDevice::from_vec(img);
    let before = read_metadata(&dev, area).ok().map(|(_, c)| c);
    let t = [MdaTarget { device: 0, area }];
    let Ok(pre) = commit::precommit(&[&dev], &t, "vg0", &text) else {
        return;
    };
    if ctl & 16 != 0 {
        if pre.revert(&[&dev]).is_ok() {
            let after = read_metadata(&dev, area).ok().map(|(_, c)| c);
            assert_eq!(after, before, "revert changed what readers see");
        }
        return;
    }
    if pre.commit(&[&dev]).is_ok() {
        match read_metadata(&dev, area) {
            Ok((_, MdaContent::Text(t))) => assert_eq!(&t.text[..], &text[..text.len() - 1]),
            other => panic!("committed text not read back: {other:?}"),
        }
    }
});
