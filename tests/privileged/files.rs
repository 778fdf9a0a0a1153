//! Block devices as inputs and outputs of offline commands: identity by device number
//! (any node of the device), block device outputs need `Overwrite::Replace`, a merge of a
//! device into itself is refused before the exclusive open says "busy".

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use devmapper::cow::export::{ExportOptions, export_to};
use devmapper::cow::writer::StoreWriter;
use devmapper::io::{FileKind, Input, InputError, Output, OutputError, OutputKind, Overwrite};

use crate::common::LoopDev;
use crate::dm_or_skip;

/// A second device node for the same device (another name, same `st_rdev`).
fn second_node(dev: &LoopDev, dir: &std::path::Path) -> std::path::PathBuf {
    let meta = std::fs::metadata(&dev.path).unwrap();
    assert!(meta.file_type().is_block_device());
    let node = dir.join("alias");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        meta.rdev(),
    )
    .unwrap();
    node
}

/// Write `data` at the start of the device, through the device.
fn put(dev: &LoopDev, data: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&dev.path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, data, 0).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn block_device_identity_and_overwrite_policy() {
    let _dm = dm_or_skip!("block_device_identity_and_overwrite_policy");
    let dir = tempfile::tempdir().unwrap();
    let a = LoopDev::new(1 << 20);
    let b = LoopDev::new(1 << 20);
    put(&a, &vec![0x11u8; 1 << 20]);
    let alias = second_node(&a, dir.path());
    let input = Input::open(&a.path).unwrap();
    assert_eq!(input.kind(), FileKind::BlockDevice);
    assert_eq!(input.len(), 1 << 20);
    // The input device, by its own node or another one: refused whatever the policy.
    for out in [&a.path, &alias] {
        for policy in [Overwrite::Refuse, Overwrite::Replace] {
            let err = Output::create(out, &[&input], policy).unwrap_err();
            assert!(
                matches!(&err, OutputError::SameAsInput { output, input }
                    if output == out && *input == a.path),
                "{err:?}"
            );
        }
    }
    // Another device holds data: only with Replace.
    let err = Output::create(&b.path, &[&input], Overwrite::Refuse).unwrap_err();
    assert!(
        matches!(
            err,
            OutputError::Exists {
                kind: FileKind::BlockDevice,
                len: 1048576,
                ..
            }
        ),
        "{err:?}"
    );
    let out = Output::create(&b.path, &[&input], Overwrite::Replace).unwrap();
    assert_eq!(out.kind(), OutputKind::BlockDevice);
    let report = export_to(&input, out, &ExportOptions::default(), |_, _| {}).unwrap();
    assert_eq!(report.bytes, 1 << 20);
    let mut got = vec![0u8; 1 << 20];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&b.path).unwrap(), &mut got, 0)
        .unwrap();
    assert!(got.iter().all(|&x| x == 0x11));
}

#[test]
fn merge_of_a_device_into_itself_is_refused_by_identity() {
    let _dm = dm_or_skip!("merge_of_a_device_into_itself_is_refused_by_identity");
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(2, &[9u8; 4096]).unwrap();
    let a = LoopDev::new(1 << 20);
    put(&a, &w.to_vec());
    let before = std::fs::read(&a.path).unwrap();
    let alias = second_node(&a, dir.path());
    let origin = Input::open_rw(&a.path, &[]).unwrap();
    for cow in [&a.path, &alias] {
        // Not "device busy" from the second exclusive open: the same device, by number.
        let err = Input::open_rw(cow, &[&origin]).unwrap_err();
        assert!(
            matches!(&err, InputError::SameFile { path, other, .. } if path == cow && *other == a.path),
            "{err:?}"
        );
        assert!(err.to_string().contains("same device"), "{err}");
    }
    drop(origin);
    assert_eq!(std::fs::read(&a.path).unwrap(), before);
}
