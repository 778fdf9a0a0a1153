//! PV writing against lvm2's own bytes: the fixtures are the first 8 KiB of a 4 MiB loop
//! device filled with 0xAA, captured in the VM after lvm2 2.03.16's `pvcreate`, then
//! `vgcreate vgt`, `vgremove`, `pvremove` (the rest of the device stayed 0xAA).

use crate::io::{MemDevice, ReadAt, WriteAt};
use crate::lvm::id::LvmId;
use crate::lvm::label::{self, DiskLocn, PV_EXT_USED};
use crate::lvm::mda::{self, MdaContent};
use crate::lvm::write::pv::{self, PvError, PvLayout};

const SIZE: usize = 4 << 20;
const PVCREATE: &[u8] = include_bytes!("fixtures/pvcreate_4m.head");
const VGCREATE: &[u8] = include_bytes!("fixtures/vgcreate_4m.head");
const VGREMOVE: &[u8] = include_bytes!("fixtures/vgremove_4m.head");
const PVREMOVE: &[u8] = include_bytes!("fixtures/pvremove_4m.head");

fn image(head: &[u8]) -> MemDevice {
    let mut v = vec![0xAAu8; SIZE];
    v[..head.len()].copy_from_slice(head);
    MemDevice::from_vec(v)
}

fn lvm2_uuid() -> LvmId {
    label::find_label(&PVCREATE[..2048]).unwrap().pv_id
}

#[test]
fn default_layout_is_lvm2s() {
    let l = PvLayout::lvm2_default(SIZE as u64).unwrap();
    assert_eq!(l.label_sector, 1);
    assert_eq!(
        l.mda,
        DiskLocn {
            offset: 4096,
            size: 1_044_480
        }
    );
    assert_eq!(l.pe_start, 2048);
    assert_eq!(l.dev_size, SIZE as u64);
    // The 2 MiB minimum is accepted (lvm2: pe_start 1 MiB), one sector less is not.
    assert_eq!(PvLayout::lvm2_default(2 << 20).unwrap().pe_start, 2048);
    assert!(matches!(
        PvLayout::lvm2_default((2 << 20) - 512),
        Err(PvError::TooSmall {
            sectors: 4095,
            min_sectors: 4096
        })
    ));
    // A partial last sector does not count.
    assert_eq!(
        PvLayout::lvm2_default((8 << 20) + 100).unwrap().dev_size,
        8 << 20
    );
    assert_eq!(l.pe_count(8192), 0);
    assert_eq!(
        PvLayout::lvm2_default(100 << 20).unwrap().pe_count(8192),
        24
    );
}

#[test]
fn aligned_layouts_follow_lvm2s_rules() {
    // 4 MiB alignment: the metadata area grows to end at 4 MiB.
    let l = PvLayout::lvm2_aligned(64 << 20, 8192, 0).unwrap();
    assert_eq!((l.pe_start, l.mda.size), (8192, (4 << 20) - 4096));
    // An offset moves the end past the aligned point.
    let l = PvLayout::lvm2_aligned(64 << 20, 2048, 7).unwrap();
    assert_eq!((l.pe_start, l.mda.size), (2055, (1 << 20) - 4096 + 7 * 512));
    // Alignment smaller than the default area: the area keeps its size, already aligned.
    assert_eq!(
        PvLayout::lvm2_aligned(64 << 20, 128, 0).unwrap().pe_start,
        2048
    );
    // An alignment that does not divide 1 MiB rounds the end up to its next multiple.
    assert_eq!(
        PvLayout::lvm2_aligned(64 << 20, 768, 0).unwrap().pe_start,
        2304
    );
    // The alignment must fit the device; the offset may not exceed the alignment.
    assert!(matches!(
        PvLayout::lvm2_aligned(4 << 20, 16384, 0),
        Err(PvError::BadLayout { .. })
    ));
    assert!(matches!(
        PvLayout::lvm2_aligned(64 << 20, 2048, 4096),
        Err(PvError::BadLayout { .. })
    ));
    // An alignment as large as the device puts pe_start at its end (no room for extents).
    let l = PvLayout::lvm2_aligned(3 << 20, 6144, 0).unwrap();
    assert_eq!((l.pe_start, l.pe_count(2048)), (6144, 0));
}

#[test]
fn write_pv_matches_lvm2_pvcreate_byte_for_byte() {
    let dev = MemDevice::from_vec(vec![0xAAu8; SIZE]);
    let layout = PvLayout::lvm2_default(SIZE as u64).unwrap();
    pv::write_pv(&dev, &lvm2_uuid(), &layout, false).unwrap();
    let ours = dev.into_inner();
    let theirs = image(PVCREATE).into_inner();
    let diff: Vec<usize> = (0..SIZE).filter(|&i| ours[i] != theirs[i]).collect();
    assert!(
        diff.is_empty(),
        "differs at {:?}",
        &diff[..diff.len().min(10)]
    );
}

#[test]
fn written_pv_reads_back_with_the_crates_reader() {
    let dev = MemDevice::new(16 << 20);
    let layout = PvLayout::lvm2_default(16 << 20).unwrap();
    let id = LvmId::generate().unwrap();
    pv::write_pv(&dev, &id, &layout, true).unwrap();
    let l = label::read_label(&dev).unwrap();
    assert_eq!(l.sector, 1);
    assert_eq!(l.pv_id, id);
    assert_eq!(l.device_size, 16 << 20);
    assert_eq!(
        l.data_areas,
        vec![DiskLocn {
            offset: 1 << 20,
            size: 0
        }]
    );
    assert_eq!(l.metadata_areas, vec![layout.mda]);
    let ext = l.extension.unwrap();
    assert_eq!((ext.version, ext.flags), (2, PV_EXT_USED));
    assert!(ext.bootloader_areas.is_empty());
    let h = mda::read_mda_header(&dev, layout.mda).unwrap();
    assert_eq!((h.start, h.size), (4096, 1_044_480));
    assert_eq!(mda::read_committed(&dev, &h).unwrap(), MdaContent::Empty);
}

#[test]
fn set_in_vg_matches_lvm2s_vgcreate_label() {
    let dev = image(PVCREATE);
    pv::set_in_vg(&dev, true).unwrap();
    let ours = dev.into_inner();
    // The label sector is what vgcreate wrote (the metadata area is the commit's job).
    assert_eq!(&ours[512..1024], &VGCREATE[512..1024]);
    assert_eq!(&ours[4096..4608], &PVCREATE[4096..4608]);
}

#[test]
fn leaving_the_vg_matches_lvm2s_vgremove() {
    let dev = image(VGCREATE);
    pv::remove_metadata(&dev).unwrap();
    pv::set_in_vg(&dev, false).unwrap();
    let ours = dev.into_inner();
    assert_eq!(&ours[..8192], VGREMOVE);
}

#[test]
fn wipe_pv_matches_lvm2s_pvremove() {
    let dev = image(VGREMOVE);
    pv::wipe_pv(&dev).unwrap();
    assert_eq!(&dev.to_vec()[..8192], PVREMOVE);
    // Nothing left to wipe.
    assert!(matches!(pv::wipe_pv(&dev), Err(PvError::NoLabel)));
    assert!(matches!(pv::set_in_vg(&dev, true), Err(PvError::NoLabel)));
    assert!(matches!(pv::remove_metadata(&dev), Err(PvError::NoLabel)));
}

#[test]
fn wipe_pv_wipes_every_label_sector_and_only_those() {
    let dev = MemDevice::new(4 << 20);
    let layout = PvLayout::lvm2_default(4 << 20).unwrap();
    pv::write_pv(&dev, &LvmId::generate().unwrap(), &layout, false).unwrap();
    // A second, stale label in sector 3 (it names its own sector), and a LABELONE in
    // sector 2 that names another sector (lvm2 leaves it).
    let mut s3 = [0u8; 512];
    dev.read_exact_at(&mut s3, 512).unwrap();
    s3[8..16].copy_from_slice(&3u64.to_le_bytes());
    dev.write_all_at(&s3, 3 * 512).unwrap();
    let mut s2 = s3;
    s2[8..16].copy_from_slice(&0u64.to_le_bytes());
    dev.write_all_at(&s2, 2 * 512).unwrap();
    pv::wipe_pv(&dev).unwrap();
    let b = dev.to_vec();
    assert!(b[512..1024].iter().all(|&x| x == 0));
    assert!(b[1536..2048].iter().all(|&x| x == 0));
    assert_eq!(&b[1024..1536], &s2[..]);
    // The metadata area header is untouched.
    assert!(mda::read_mda_header(&dev, layout.mda).is_ok());
}

#[test]
fn hostile_layouts_and_devices_are_typed_errors() {
    let id = LvmId::generate().unwrap();
    let good = PvLayout::lvm2_default(4 << 20).unwrap();
    // The device is smaller than the layout.
    let small = MemDevice::new(2 << 20);
    assert!(matches!(
        pv::write_pv(&small, &id, &good, false),
        Err(PvError::BadLayout { .. })
    ));
    assert!(small.to_vec().iter().all(|&b| b == 0), "nothing written");
    let dev = MemDevice::new(4 << 20);
    for bad in [
        PvLayout {
            label_sector: 4,
            ..good
        },
        PvLayout {
            mda: DiskLocn {
                offset: 1024,
                size: 1 << 20,
            },
            ..good
        },
        PvLayout {
            mda: DiskLocn {
                offset: 4096,
                size: 4096,
            },
            ..good
        },
        PvLayout {
            pe_start: 16,
            ..good
        },
        PvLayout {
            pe_start: 1 << 40,
            ..good
        },
        PvLayout {
            mda: DiskLocn {
                offset: u64::MAX - 10,
                size: 1 << 20,
            },
            ..good
        },
    ] {
        assert!(
            matches!(
                pv::write_pv(&dev, &id, &bad, false),
                Err(PvError::BadLayout { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(dev.to_vec().iter().all(|&b| b == 0), "nothing written");
    // A label that lies about its pv_header offset is a label error, not a panic.
    let dev = image(PVCREATE);
    let mut s = [0u8; 512];
    dev.read_exact_at(&mut s, 512).unwrap();
    s[20..24].copy_from_slice(&600u32.to_le_bytes());
    let crc = crate::lvm::crc::calc_crc(crate::lvm::crc::INITIAL_CRC, &s[20..]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    dev.write_all_at(&s, 512).unwrap();
    assert!(matches!(pv::set_in_vg(&dev, true), Err(PvError::Label(_))));
}
