//! [`reidentify`] against btrfs-progs: images made by `mkfs.btrfs`, read back by
//! `btrfs inspect-internal dump-super` and checked whole by `btrfs check --readonly`
//! (which verifies every tree block's fsid against the metadata uuid).

use super::*;
use std::process::Command;

const MIB: u64 = 1 << 20;

/// A `size` image made by `mkfs.btrfs ARGS`, or `None` (with the reason printed) when
/// btrfs-progs is not installed.
fn mkfs(test: &str, size: u64, args: &[&str]) -> Option<tempfile::NamedTempFile> {
    let img = tempfile::NamedTempFile::new().unwrap();
    img.as_file().set_len(size).unwrap();
    match Command::new("mkfs.btrfs")
        .args(["-q", "-f"])
        .args(args)
        .arg(img.path())
        .output()
    {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            Some(img)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIP {test}: mkfs.btrfs is not installed");
            None
        }
        Err(e) => panic!("{test}: mkfs.btrfs: {e}"),
    }
}

/// `dump-super` of superblock copy `n`: field name -> value.
fn dump_super(img: &std::path::Path, n: u32) -> std::collections::HashMap<String, String> {
    let out = Command::new("btrfs")
        .args(["inspect-internal", "dump-super", "-s", &n.to_string()])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut w = l.splitn(2, char::is_whitespace);
            Some((w.next()?.to_string(), w.next()?.trim().to_string()))
        })
        .collect()
}

fn check_clean(img: &std::path::Path) {
    let out = Command::new("btrfs")
        .args(["check", "--readonly"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "btrfs check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

#[test]
fn new_fsid_old_one_kept_as_metadata_uuid_and_btrfs_check_agrees() {
    let test = "new_fsid_old_one_kept_as_metadata_uuid_and_btrfs_check_agrees";
    // 300 MiB: the primary and the mirror at 64 MiB.
    let Some(img) = mkfs(test, 300 * MIB, &[]) else {
        return;
    };
    let old = dump_super(img.path(), 0)["fsid"].clone();
    let new = uuid::Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img.path())
        .unwrap();
    let r = reidentify(&mut f, new).unwrap();
    assert_eq!(r.old_fsid.to_string(), old);
    assert_eq!(r.copies, 2);
    for n in [0, 1] {
        let sb = dump_super(img.path(), n);
        assert_eq!(sb["fsid"], new.to_string(), "copy {n}");
        assert_eq!(sb["metadata_uuid"], old, "copy {n}");
        assert!(sb["csum"].ends_with("[match]"), "copy {n}: {}", sb["csum"]);
        assert!(sb["incompat_flags"].len() > 2, "copy {n}");
    }
    check_clean(img.path());
    // Again: the metadata uuid stays the first fsid.
    let newer = uuid::Uuid::from_u128(0x0fed_cba9_8765_4321_8000_0000_0000_0001);
    let r = reidentify(&mut f, newer).unwrap();
    assert_eq!(r.old_fsid, new);
    let sb = dump_super(img.path(), 0);
    assert_eq!(
        (sb["fsid"].as_str(), sb["metadata_uuid"].as_str()),
        (newer.to_string().as_str(), old.as_str())
    );
    check_clean(img.path());
}

#[test]
fn refusals_write_nothing() {
    let test = "refusals_write_nothing";
    let Some(img) = mkfs(test, 128 * MIB, &[]) else {
        return;
    };
    let path = img.path();
    let read = || std::fs::read(path).unwrap();
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    };
    let good = read();
    let new = uuid::Uuid::from_u128(7);
    let with = |patch: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        patch(&mut b);
        std::fs::write(path, &b).unwrap();
        let r = reidentify(&mut open(), new);
        assert_eq!(read(), b, "written despite {r:?}");
        r.unwrap_err()
    };
    let sb = 64 * 1024;
    assert!(matches!(
        with(&|b| b[sb + MAGIC] ^= 1),
        FsidError::NoSuperblock { .. }
    ));
    assert!(matches!(
        with(&|b| b[sb + BYTENR] ^= 1),
        FsidError::NoSuperblock { .. }
    ));
    assert!(matches!(
        with(&|b| b[sb + 0x100] ^= 1),
        FsidError::NoSuperblock { why: "checksum" }
    ));
    assert!(matches!(
        with(&|b| b[sb + CSUM_TYPE] = 1),
        FsidError::ChecksumType { csum_type: 1 }
    ));
    assert!(matches!(
        with(&|b| {
            b[sb + NUM_DEVICES] = 2;
            let c = crc32c(&b[sb + CSUM_LEN..sb + SB_LEN]);
            b[sb..sb + 4].copy_from_slice(&c.to_le_bytes());
        }),
        FsidError::MultiDevice { devices: 2 }
    ));
    // Too short for a superblock at all.
    let tiny = tempfile::NamedTempFile::new().unwrap();
    tiny.as_file().set_len(4096).unwrap();
    let mut t = tiny.reopen().unwrap();
    assert!(matches!(
        reidentify(&mut t, new),
        Err(FsidError::NoSuperblock { .. })
    ));
}
