//! Synthetic images (a magic written at its offset in a sparse temporary file) for every
//! signature, near misses, short and failing sources, bounded reads, random bytes, and the
//! real tools (mkfs.*, mkswap, sfdisk, sgdisk, cryptsetup) where installed.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use uuid::Uuid;

use super::fs::*;
use super::volume::*;
use super::*;
use crate::cow::Header;
use crate::lvm::crc::{INITIAL_CRC, calc_crc};

const MIB: u64 = 1 << 20;

/// A sparse temporary file of `size` bytes.
fn image(size: u64) -> File {
    let f = tempfile::tempfile().unwrap();
    f.set_len(size).unwrap();
    f
}

fn put(f: &File, offset: u64, data: &[u8]) {
    f.write_all_at(data, offset).unwrap();
}

fn found(f: &File) -> Vec<Found> {
    identify(f).unwrap()
}

const UUID_BYTES: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];

fn ext_image(compat: u32, incompat: u32, ro_compat: u32) -> File {
    let f = image(8 * MIB);
    put(&f, 1024 + 0x18, &2u32.to_le_bytes()); // 4 KiB blocks
    put(&f, 1024 + 0x38, &0xEF53u16.to_le_bytes());
    put(&f, 1024 + 0x5c, &compat.to_le_bytes());
    put(&f, 1024 + 0x60, &incompat.to_le_bytes());
    put(&f, 1024 + 0x64, &ro_compat.to_le_bytes());
    put(&f, 1024 + 0x68, &UUID_BYTES);
    put(&f, 1024 + 0x78, b"root\0");
    f
}

fn fs(kind: FsKind, label: Option<&str>, uuid: Option<Uuid>) -> Found {
    Found::Filesystem {
        kind,
        label: label.map(str::to_owned),
        uuid,
    }
}

#[test]
fn ext_kinds_by_features() {
    let u = Some(Uuid::from_bytes(UUID_BYTES));
    let cases = [
        // sparse_super, large_file; filetype: what mke2fs -t ext2 writes.
        (0x38, 0x2, 0x3, FsKind::Ext2),
        // + has_journal.
        (0x3c, 0x2, 0x3, FsKind::Ext3),
        // + extents, flex_bg, 64bit (mke2fs -t ext4).
        (0x3c, 0x2c2, 0x46b, FsKind::Ext4),
        // ext4 without a journal is still ext4 (extents).
        (0x38, 0x42, 0x3, FsKind::Ext4),
        // ext3 features except one ro_compat beyond them (huge_file).
        (0x3c, 0x2, 0xb, FsKind::Ext4),
        // an external journal device.
        (0x0, 0x8, 0x0, FsKind::ExtJournal),
    ];
    for (compat, incompat, ro, kind) in cases {
        let f = ext_image(compat, incompat, ro);
        assert_eq!(
            found(&f),
            vec![fs(kind, Some("root"), u)],
            "{compat:#x} {incompat:#x} {ro:#x}"
        );
    }
    assert_eq!(
        found(&ext_image(0x3c, 0x2c2, 0x46b))[0].to_string(),
        "an ext4 filesystem (label \"root\", UUID 12345678-9abc-def0-0123-456789abcdef)"
    );
}

#[test]
fn ext_near_misses() {
    // Block size 2^(10+7): no ext filesystem has it.
    let f = ext_image(0x3c, 0x2, 0x3);
    put(&f, 1024 + 0x18, &7u32.to_le_bytes());
    assert_eq!(found(&f), vec![]);
    // The magic one byte off.
    let f = image(MIB);
    put(&f, 1024 + 0x39, &0xEF53u16.to_le_bytes());
    assert_eq!(found(&f), vec![]);
    // Byte-swapped magic.
    let f = image(MIB);
    put(&f, 1024 + 0x38, &0xEF53u16.to_be_bytes());
    assert_eq!(found(&f), vec![]);
}

#[test]
fn xfs_and_near_misses() {
    let mk = |block: u32, sect: u16| {
        let f = image(32 * MIB);
        put(&f, 0, b"XFSB");
        put(&f, 4, &block.to_be_bytes());
        put(&f, 32, &UUID_BYTES);
        put(&f, 102, &sect.to_be_bytes());
        put(&f, 108, b"scratch");
        f
    };
    assert_eq!(
        found(&mk(4096, 512)),
        vec![fs(
            FsKind::Xfs,
            Some("scratch"),
            Some(Uuid::from_bytes(UUID_BYTES))
        )]
    );
    assert_eq!(
        found(&mk(4095, 512)),
        vec![],
        "block size not a power of two"
    );
    assert_eq!(found(&mk(4096, 0)), vec![], "no sector size");
    assert_eq!(found(&mk(1 << 20, 512)), vec![], "block size too large");
}

#[test]
fn btrfs_and_near_misses() {
    let mk = |bytenr: u64| {
        let f = image(128 * MIB);
        let sb = 64 << 10;
        put(&f, sb + 0x20, &UUID_BYTES);
        put(&f, sb + 0x30, &bytenr.to_le_bytes());
        put(&f, sb + 0x40, b"_BHRfS_M");
        put(&f, sb + 0x12b, b"pool");
        f
    };
    assert_eq!(
        found(&mk(65536)),
        vec![fs(
            FsKind::Btrfs,
            Some("pool"),
            Some(Uuid::from_bytes(UUID_BYTES))
        )]
    );
    // A superblock copy (bytenr 64 MiB) placed at 64 KiB is not the primary.
    assert_eq!(found(&mk(64 << 20)), vec![]);
}

#[test]
fn swap_signatures() {
    for ps in SWAP_PAGE_SIZES {
        let f = image(16 * MIB);
        put(&f, 1024, &1u32.to_le_bytes());
        put(&f, 1036, &UUID_BYTES);
        put(&f, 1052, b"swap0");
        put(&f, u64::from(ps) - 10, b"SWAPSPACE2");
        assert_eq!(
            found(&f),
            vec![Found::Swap {
                page_size: ps,
                label: Some("swap0".into()),
                uuid: Some(Uuid::from_bytes(UUID_BYTES)),
                hibernation: false,
            }],
            "page size {ps}"
        );
    }
    let f = image(MIB);
    put(&f, 4086, b"SWAP-SPACE");
    assert_eq!(
        found(&f),
        vec![Found::Swap {
            page_size: 4096,
            label: None,
            uuid: None,
            hibernation: false
        }]
    );
    let f = image(MIB);
    put(&f, 4086, b"S1SUSPEND\0");
    assert!(matches!(
        &found(&f)[..],
        [Found::Swap {
            hibernation: true,
            ..
        }]
    ));
    assert_eq!(
        found(&f)[0].to_string(),
        "Linux swap space holding a hibernation image"
    );
    // Not at a page boundary.
    let f = image(MIB);
    put(&f, 4087, b"SWAPSPACE2");
    assert_eq!(found(&f), vec![]);
}

/// An lvm2 label in `sector` with a valid CRC and a pv_header naming `id`.
fn lvm_label(f: &File, sector: u64, id: &[u8; 32], good_crc: bool) {
    let mut s = vec![0u8; 512];
    s[0..8].copy_from_slice(b"LABELONE");
    s[8..16].copy_from_slice(&sector.to_le_bytes());
    s[20..24].copy_from_slice(&32u32.to_le_bytes());
    s[24..32].copy_from_slice(b"LVM2 001");
    s[32..64].copy_from_slice(id);
    s[64..72].copy_from_slice(&(8 * MIB).to_le_bytes());
    // data area {1 MiB, 0}, terminator, metadata area {4096, 1 MiB - 4096}, terminator.
    s[72..80].copy_from_slice(&MIB.to_le_bytes());
    s[104..112].copy_from_slice(&4096u64.to_le_bytes());
    s[112..120].copy_from_slice(&(MIB - 4096).to_le_bytes());
    let crc = calc_crc(INITIAL_CRC, &s[20..]) ^ u32::from(!good_crc);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    put(f, sector * 512, &s);
}

#[test]
fn lvm_pv_label_in_each_of_the_first_four_sectors() {
    let id = b"abcdefghijklmnopqrstuvwxyz012345";
    for sector in 0..4 {
        let f = image(8 * MIB);
        lvm_label(&f, sector, id, true);
        assert_eq!(
            found(&f),
            vec![Found::LvmPv {
                uuid: Some("abcdef-ghij-klmn-opqr-stuv-wxyz-012345".into()),
                sector
            }],
            "sector {sector}"
        );
    }
    // A bad CRC: lvm2 ignores the label, so does the probe.
    let f = image(8 * MIB);
    lvm_label(&f, 1, id, false);
    assert_eq!(found(&f), vec![]);
    // Sector 4 is not scanned by lvm2.
    let f = image(8 * MIB);
    lvm_label(&f, 4, id, true);
    assert_eq!(found(&f), vec![]);
}

fn md1_sb(f: &File, at: u64) {
    let mut sb = vec![0u8; 256];
    sb[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&UUID_BYTES);
    sb[32..40].copy_from_slice(b"host:md0");
    sb[144..152].copy_from_slice(&(at >> 9).to_le_bytes());
    put(f, at, &sb);
}

fn md(version: MdVersion, name: Option<&str>) -> Found {
    Found::MdRaid {
        version,
        uuid: Uuid::from_bytes(UUID_BYTES),
        name: name.map(str::to_owned),
    }
}

#[test]
fn md_1x_superblocks() {
    let size = 100 * MIB + 12345;
    for (at, version) in [
        (0, MdVersion::V1_1),
        (4096, MdVersion::V1_2),
        ((size - 8192) & !4095, MdVersion::V1_0),
    ] {
        let f = image(size);
        md1_sb(&f, at);
        assert_eq!(found(&f), vec![md(version, Some("host:md0"))], "{version}");
    }
    // 1.2 whose super_offset does not point back at it.
    let f = image(size);
    md1_sb(&f, 4096);
    put(&f, 4096 + 144, &0u64.to_le_bytes());
    assert_eq!(found(&f), vec![]);
    // 1.0 one 4 KiB block too early.
    let f = image(size);
    md1_sb(&f, ((size - 8192) & !4095) - 4096);
    assert_eq!(found(&f), vec![]);
}

#[test]
fn md_090_superblock_either_byte_order() {
    let size = 100 * MIB + 12345;
    let at = (size & !0xFFFF) - 0x10000;
    for le in [true, false] {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let f = image(size);
        put(&f, at, &w(MD_MAGIC));
        put(&f, at + 8, &w(90));
        for (i, off) in [20u64, 52, 56, 60].into_iter().enumerate() {
            let word = u32::from_be_bytes(UUID_BYTES[i * 4..i * 4 + 4].try_into().unwrap());
            put(&f, at + off, &w(word));
        }
        assert_eq!(found(&f), vec![md(MdVersion::V0_90, None)], "le={le}");
    }
    // Minor version 91 is no 0.90 superblock.
    let f = image(size);
    put(&f, at, &MD_MAGIC.to_le_bytes());
    put(&f, at + 8, &91u32.to_le_bytes());
    assert_eq!(found(&f), vec![]);
}

#[test]
fn luks_headers() {
    let f = image(16 * MIB);
    put(&f, 0, b"LUKS\xba\xbe\x00\x01");
    put(&f, 168, b"0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11\0");
    assert_eq!(
        found(&f),
        vec![Found::Luks {
            version: 1,
            uuid: Some("0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11".into()),
            label: None,
            secondary_at: None,
        }]
    );
    let f = image(16 * MIB);
    put(&f, 0, b"LUKS\xba\xbe\x00\x02");
    put(&f, 24, b"secret");
    put(&f, 168, b"u2");
    assert_eq!(
        found(&f),
        vec![Found::Luks {
            version: 2,
            uuid: Some("u2".into()),
            label: Some("secret".into()),
            secondary_at: None,
        }]
    );
    // The primary wiped, the secondary at 16 KiB (inside the head) and at 4 MiB (beyond it).
    for off in [0x4000u64, 0x400000] {
        let f = image(16 * MIB);
        put(&f, off, b"SKUL\xba\xbe\x00\x02");
        put(&f, off + 256, &off.to_be_bytes());
        put(&f, off + 168, b"u3");
        assert_eq!(
            found(&f),
            vec![Found::Luks {
                version: 2,
                uuid: Some("u3".into()),
                label: None,
                secondary_at: Some(off),
            }],
            "secondary at {off:#x}"
        );
        // ... but not when its hdr_offset names another place.
        put(&f, off + 256, &0u64.to_be_bytes());
        assert_eq!(found(&f), vec![]);
    }
    // Magic without the 0xba 0xbe.
    let f = image(MIB);
    put(&f, 0, b"LUKS\0\0\0\x01");
    assert_eq!(found(&f), vec![]);
}

fn mbr_entry(f: &File, i: u64, boot: u8, kind: u8, start: u32, sectors: u32) {
    let mut e = [0u8; 16];
    e[0] = boot;
    e[4] = kind;
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    put(f, 446 + 16 * i, &e);
    put(f, 510, &[0x55, 0xAA]);
}

#[test]
fn mbr_tables_and_near_misses() {
    let f = image(64 * MIB);
    mbr_entry(&f, 0, 0x80, 0x83, 2048, 4096);
    mbr_entry(&f, 2, 0, 0x82, 8192, 4096);
    assert_eq!(
        found(&f),
        vec![Found::PartitionTable(PartitionTable::Mbr { partitions: 2 })]
    );
    let f = image(64 * MIB);
    mbr_entry(&f, 0, 0, 0xEE, 1, u32::MAX);
    assert_eq!(
        found(&f),
        vec![Found::PartitionTable(PartitionTable::ProtectiveMbr)]
    );
    // 0x55AA alone (a boot sector with no entries), a bad boot flag, an entry at LBA 0.
    let f = image(MIB);
    put(&f, 510, &[0x55, 0xAA]);
    assert_eq!(found(&f), vec![]);
    let f = image(MIB);
    mbr_entry(&f, 0, 0x81, 0x83, 2048, 100);
    assert_eq!(found(&f), vec![]);
    let f = image(MIB);
    mbr_entry(&f, 0, 0, 0x83, 0, 100);
    assert_eq!(found(&f), vec![]);
}

/// A GPT header at `lba` (sector size `ss`) with a valid CRC unless `corrupt`.
fn gpt_header_at(f: &File, ss: u64, lba: u64, corrupt: bool) {
    let mut h = vec![0u8; 92];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&lba.to_le_bytes());
    h[56..72].copy_from_slice(&UUID_BYTES);
    let crc = crc32fast::hash(&h) ^ u32::from(corrupt);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    put(f, lba * ss, &h);
}

#[test]
fn gpt_primary_backup_and_sector_sizes() {
    let guid = Uuid::from_bytes_le(UUID_BYTES);
    let gpt = |ss: u32, primary, backup| {
        Found::PartitionTable(PartitionTable::Gpt {
            disk_guid: guid,
            sector_size: ss,
            primary,
            backup,
        })
    };
    let size = 64 * MIB;
    for ss in [512u64, 4096] {
        let f = image(size);
        mbr_entry(&f, 0, 0, 0xEE, 1, u32::MAX);
        gpt_header_at(&f, ss, 1, false);
        gpt_header_at(&f, ss, size / ss - 1, false);
        assert_eq!(found(&f), vec![gpt(ss as u32, true, true)], "ss {ss}");
    }
    // Primary destroyed (bad CRC): found by its backup.
    let f = image(size);
    gpt_header_at(&f, 512, 1, true);
    gpt_header_at(&f, 512, size / 512 - 1, false);
    assert_eq!(found(&f), vec![gpt(512, false, true)]);
    assert_eq!(
        found(&f)[0].to_string(),
        format!("a GPT partition table (disk GUID {guid}, backup header only)")
    );
    // Only a corrupt primary, with its protective MBR: just the protective MBR.
    let f = image(size);
    mbr_entry(&f, 0, 0, 0xEE, 1, u32::MAX);
    gpt_header_at(&f, 512, 1, true);
    assert_eq!(
        found(&f),
        vec![Found::PartitionTable(PartitionTable::ProtectiveMbr)]
    );
    // A header that says it lives elsewhere.
    let f = image(size);
    gpt_header_at(&f, 512, 1, false);
    put(&f, 512 + 24, &5u64.to_le_bytes());
    assert_eq!(found(&f), vec![]);
}

#[test]
fn snapshot_store_reuses_the_cow_header_parser() {
    for (chunk, valid, entry_new, empty) in [
        (8u32, 1u32, 0u64, true),
        (16, 1, 7, false),
        (8, 0, 3, false),
    ] {
        let f = image(4 * MIB);
        put(
            &f,
            0,
            &Header {
                valid,
                ..Header::new(chunk)
            }
            .to_bytes(),
        );
        put(&f, u64::from(chunk) * 512, &[1u8; 8]);
        put(&f, u64::from(chunk) * 512 + 8, &entry_new.to_le_bytes());
        assert_eq!(
            found(&f),
            vec![Found::SnapshotStore {
                chunk_sectors: chunk,
                valid: valid != 0,
                empty
            }]
        );
    }
    // A store whose area 0 lies past the end of a short image is not called empty.
    let f = image(4096);
    put(&f, 0, &Header::new(16).to_bytes());
    assert!(matches!(
        &found(&f)[..],
        [Found::SnapshotStore { empty: false, .. }]
    ));
    // "SnAp" with version 2, or chunk size 3: the kernel would not load it.
    for (version, chunk) in [(2u32, 8u32), (1, 3)] {
        let f = image(MIB);
        let h = Header {
            valid: 1,
            version,
            chunk_sectors: chunk,
        };
        put(&f, 0, &h.to_bytes());
        assert_eq!(found(&f), vec![], "version {version} chunk {chunk}");
    }
}

#[test]
fn kernel_made_stores_are_recognised() {
    use std::io::Read;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cow");
    for name in ["c8", "c128", "full", "overflow", "midmerge"] {
        let f = File::open(dir.join(format!("{name}.cow.gz"))).unwrap();
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
        let got = identify(&v).unwrap();
        assert!(
            matches!(&got[..], [Found::SnapshotStore { empty: false, .. }]),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn several_signatures_are_all_reported() {
    // An md 1.0 mirror member shows its filesystem at the start, the superblock at the end.
    let size = 64 * MIB;
    let f = ext_image(0x3c, 0x2c2, 0x46b);
    f.set_len(size).unwrap();
    md1_sb(&f, (size - 8192) & !4095);
    let got = found(&f);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(
        got[0],
        Found::Filesystem {
            kind: FsKind::Ext4,
            ..
        }
    ));
    assert_eq!(got[1], md(MdVersion::V1_0, Some("host:md0")));
}

#[test]
fn zeros_random_and_short_inputs_find_nothing() {
    assert_eq!(found(&image(256 * MIB)), vec![]);
    // Deterministic pseudo-random bytes (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4 * MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_eq!(identify(&noise).unwrap(), vec![]);
    for len in [
        0usize,
        1,
        15,
        16,
        511,
        512,
        1025,
        2047,
        4095,
        65535,
        65536 + 100,
    ] {
        assert_eq!(identify(&vec![0u8; len]).unwrap(), vec![], "len {len}");
        let _ = identify(&noise[..len]).unwrap();
    }
    // Magics cut off by the end of the source.
    let mut v = vec![0u8; 1024 + 0x39];
    v[1024 + 0x38] = 0x53;
    assert_eq!(identify(&v).unwrap(), vec![]);
    assert_eq!(identify(&b"XFSB"[..]).unwrap(), vec![]);
    assert_eq!(identify(&b"LUKS\xba\xbe"[..]).unwrap().len(), 1);
}

/// A source of `size` zero bytes (nothing stored) that counts what it is asked to read.
struct Virtual {
    size: u64,
    bytes_read: Cell<u64>,
    reads: Cell<u32>,
    fail_at: Option<u64>,
}

impl ReadAt for Virtual {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let Some(at) = self.fail_at
            && offset <= at
            && at < offset + buf.len() as u64
        {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if offset + buf.len() as u64 > self.size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.bytes_read
            .set(self.bytes_read.get() + buf.len() as u64);
        self.reads.set(self.reads.get() + 1);
        buf.fill(0);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        if self.fail_at == Some(u64::MAX) {
            return Err(io::Error::from_raw_os_error(libc::ENOTTY));
        }
        Ok(self.size)
    }
}

fn virt(size: u64, fail_at: Option<u64>) -> Virtual {
    Virtual {
        size,
        bytes_read: Cell::new(0),
        reads: Cell::new(0),
        fail_at,
    }
}

#[test]
fn reads_are_bounded_whatever_the_size() {
    for size in [MIB, 1 << 40, (1 << 50) + 4095] {
        let v = virt(size, None);
        assert_eq!(identify(&v).unwrap(), vec![]);
        println!(
            "size {size}: {} bytes in {} reads",
            v.bytes_read.get(),
            v.reads.get()
        );
        assert!(
            v.bytes_read.get() <= 80 << 10 && v.reads.get() <= 16,
            "size {size}: {} bytes in {} reads",
            v.bytes_read.get(),
            v.reads.get()
        );
    }
}

#[test]
fn failing_sources_give_typed_errors() {
    let e = identify(&virt(MIB, Some(u64::MAX))).unwrap_err();
    assert!(matches!(e, ProbeError::Size { .. }), "{e}");
    let e = identify(&virt(MIB, Some(100))).unwrap_err();
    assert!(
        matches!(e, ProbeError::Read { offset: 0, len, .. } if len == HEAD_LEN),
        "{e}"
    );
    // A failure in the last sector (the backup GPT header's read).
    let e = identify(&virt(64 * MIB, Some(64 * MIB - 1))).unwrap_err();
    assert!(
        matches!(e, ProbeError::Read { offset, .. } if offset >= 63 * MIB),
        "{e}"
    );
    // A source that claims more than it holds.
    struct Liar;
    impl ReadAt for Liar {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            b"tiny"[..].read_exact_at(buf, offset)
        }
        fn size(&self) -> io::Result<u64> {
            Ok(1 << 30)
        }
    }
    assert!(matches!(
        identify(&Liar).unwrap_err(),
        ProbeError::Read { offset: 0, .. }
    ));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..140_000)) {
        let _ = identify(&data).unwrap();
    }

    /// Random bytes with one of the magics planted at its offset, so the checks behind the
    /// magic see garbage.
    #[test]
    fn planted_magics_never_panic(
        mut data in proptest::collection::vec(any::<u8>(), 0..140_000),
        which in 0usize..12,
    ) {
        let plants: [(usize, &[u8]); 12] = [
            (0, b"SnAp\x01\0\0\0\x01\0\0\0"),
            (0, b"LUKS\xba\xbe"),
            (0, b"XFSB"),
            (0, &MD_MAGIC.to_le_bytes()),
            (510, &[0x55, 0xAA]),
            (512, b"EFI PART"),
            (512, b"LABELONE"),
            (1024 + 0x38, &[0x53, 0xEF]),
            (4096, &MD_MAGIC.to_le_bytes()),
            (4086, b"SWAPSPACE2"),
            (65536 + 0x40, b"_BHRfS_M"),
            (0x4000, b"SKUL\xba\xbe\0\x02"),
        ];
        let (at, magic) = plants[which];
        if let Some(dst) = data.get_mut(at..at + magic.len()) {
            dst.copy_from_slice(magic);
        }
        let _ = identify(&data).unwrap();
    }
}

/// Run `tool args... IMAGE` on a fresh sparse image; `None` (with a printed reason) when the
/// tool is not installed.
fn with_tool(test: &str, size: u64, tool: &str, args: &[&str]) -> Option<tempfile::NamedTempFile> {
    if is_busybox_applet(tool) {
        println!("SKIP {test}: {tool} is busybox's applet, not the real tool");
        return None;
    }
    let img = tempfile::NamedTempFile::new().unwrap();
    img.as_file().set_len(size).unwrap();
    let out = match Command::new(tool).args(args).arg(img.path()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("SKIP {test}: {tool} is not installed");
            return None;
        }
        Err(e) => panic!("{test}: running {tool}: {e}"),
    };
    assert!(
        out.status.success(),
        "{test}: {tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(img)
}

/// Whether `tool`, as found in `PATH`, is a link to busybox (whose applets take other
/// options than the real tools: the VM guest has busybox's `mkswap`).
fn is_busybox_applet(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("busybox"))
        })
}

fn real(test: &str, size: u64, tool: &str, args: &[&str]) -> Option<Vec<Found>> {
    with_tool(test, size, tool, args).map(|img| identify(img.as_file()).unwrap())
}

#[test]
fn real_mke2fs_agrees() {
    for (t, kind) in [
        ("ext2", FsKind::Ext2),
        ("ext3", FsKind::Ext3),
        ("ext4", FsKind::Ext4),
    ] {
        let Some(got) = real(
            "real_mke2fs_agrees",
            32 * MIB,
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                t,
                "-L",
                "lbl",
                "-U",
                "0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11",
            ],
        ) else {
            return;
        };
        assert_eq!(
            got,
            vec![fs(
                kind,
                Some("lbl"),
                Some("0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11".parse().unwrap())
            )],
            "mke2fs -t {t}"
        );
    }
    let Some(got) = real(
        "real_mke2fs_agrees",
        8 * MIB,
        "mke2fs",
        &["-q", "-F", "-O", "journal_dev"],
    ) else {
        return;
    };
    assert!(
        matches!(
            &got[..],
            [Found::Filesystem {
                kind: FsKind::ExtJournal,
                ..
            }]
        ),
        "{got:?}"
    );
}

#[test]
fn real_mkswap_agrees() {
    let Some(got) = real(
        "real_mkswap_agrees",
        16 * MIB,
        "mkswap",
        &["-L", "sw", "-U", "0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11"],
    ) else {
        return;
    };
    assert_eq!(
        got,
        vec![Found::Swap {
            page_size: 4096,
            label: Some("sw".into()),
            uuid: Some("0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11".parse().unwrap()),
            hibernation: false
        }]
    );
}

#[test]
fn real_mkfs_xfs_and_btrfs_agree() {
    if let Some(got) = real(
        "real_mkfs_xfs_and_btrfs_agree",
        300 * MIB,
        "mkfs.xfs",
        &["-q", "-f", "-L", "x"],
    ) {
        assert!(
            matches!(&got[..], [Found::Filesystem { kind: FsKind::Xfs, label: Some(l), uuid: Some(_) }] if l == "x"),
            "{got:?}"
        );
    }
    if let Some(got) = real(
        "real_mkfs_xfs_and_btrfs_agree",
        128 * MIB,
        "mkfs.btrfs",
        &["-q", "-f", "-L", "b"],
    ) {
        assert!(
            matches!(&got[..], [Found::Filesystem { kind: FsKind::Btrfs, label: Some(l), uuid: Some(_) }] if l == "b"),
            "{got:?}"
        );
    }
}

/// `sfdisk IMAGE` with a script on stdin; `None` when sfdisk is missing.
fn sfdisk(test: &str, script: &str) -> Option<Vec<Found>> {
    use std::io::Write;
    let img = tempfile::NamedTempFile::new().unwrap();
    img.as_file().set_len(64 * MIB).unwrap();
    let mut child = match Command::new("sfdisk")
        .arg("-q")
        .arg(img.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("SKIP {test}: sfdisk is not installed");
            return None;
        }
        Err(e) => panic!("{test}: sfdisk: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "{test}: sfdisk failed");
    Some(identify(img.as_file()).unwrap())
}

#[test]
fn real_partition_tools_agree() {
    let t = "real_partition_tools_agree";
    if let Some(got) = sfdisk(t, "label: dos\n,8M,L\n,8M,S\n,,L\n") {
        assert_eq!(
            got,
            vec![Found::PartitionTable(PartitionTable::Mbr { partitions: 3 })]
        );
    }
    if let Some(got) = sfdisk(
        t,
        "label: gpt\nlabel-id: 0B6E7E4A-6E43-4BCB-A1B0-7A7F3F1E3F11\n,8M\n,,\n",
    ) {
        assert_eq!(
            got,
            vec![Found::PartitionTable(PartitionTable::Gpt {
                disk_guid: "0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11".parse().unwrap(),
                sector_size: 512,
                primary: true,
                backup: true
            })]
        );
    }
    if let Some(img) = with_tool(t, 64 * MIB, "sgdisk", &["-o", "-n", "1:2048:+8M"]) {
        // Zap the primary header (LBA 1): the backup still names the table.
        put(img.as_file(), 512, &[0u8; 512]);
        let got = identify(img.as_file()).unwrap();
        assert!(
            matches!(
                &got[..],
                [Found::PartitionTable(PartitionTable::Gpt {
                    primary: false,
                    backup: true,
                    ..
                })]
            ),
            "{got:?}"
        );
    }
}

#[test]
fn real_cryptsetup_agrees() {
    let t = "real_cryptsetup_agrees";
    for (ty, version) in [("luks1", 1u16), ("luks2", 2)] {
        let img = tempfile::NamedTempFile::new().unwrap();
        img.as_file().set_len(32 * MIB).unwrap();
        let mut cmd = Command::new("cryptsetup");
        cmd.args([
            "luksFormat",
            "-q",
            "--type",
            ty,
            "--pbkdf-force-iterations",
            "1000",
        ])
        .args([
            "--uuid",
            "0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11",
            "--key-file",
            "-",
        ]);
        if ty == "luks2" {
            cmd.args(["--pbkdf", "pbkdf2", "--label", "vault"]);
        }
        let mut child = match cmd
            .arg(img.path())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("SKIP {t}: cryptsetup is not installed");
                return;
            }
            Err(e) => panic!("{t}: {e}"),
        };
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"passphrase")
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            // luksFormat can need kernel crypto (AF_ALG) or locking a host may not offer.
            println!(
                "SKIP {t}: cryptsetup luksFormat --type {ty} failed here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        let got = identify(img.as_file()).unwrap();
        assert_eq!(
            got,
            vec![Found::Luks {
                version,
                uuid: Some("0b6e7e4a-6e43-4bcb-a1b0-7a7f3f1e3f11".into()),
                label: (version == 2).then(|| "vault".into()),
                secondary_at: None,
            }],
            "{ty}"
        );
        if version == 2 {
            // Wipe the primary binary header: the secondary (at its hdr_size) is found.
            put(img.as_file(), 0, &[0u8; 4096]);
            let got = identify(img.as_file()).unwrap();
            assert!(
                matches!(
                    &got[..],
                    [Found::Luks {
                        version: 2,
                        secondary_at: Some(_),
                        ..
                    }]
                ),
                "{got:?}"
            );
        }
    }
}

#[test]
fn real_wipefs_leaves_nothing() {
    let t = "real_wipefs_leaves_nothing";
    let Some(img) = with_tool(t, 32 * MIB, "mke2fs", &["-q", "-F", "-t", "ext4"]) else {
        return;
    };
    assert_eq!(found(img.as_file()).len(), 1);
    let st = match Command::new("wipefs")
        .args(["-a", "-q"])
        .arg(img.path())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("SKIP {t}: wipefs is not installed");
            return;
        }
        Err(e) => panic!("{t}: {e}"),
    };
    assert!(
        st.status.success(),
        "wipefs: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(found(img.as_file()), vec![]);
}
