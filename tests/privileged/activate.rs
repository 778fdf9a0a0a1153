//! Persistent snapshots after a (simulated) reboot: the dmsnap record on the COW device,
//! `snapshot::activate`, and the refusals around them. The real reboot (two boots with the
//! same virtio disks in another order) is scripts/vm/reboot-test.sh; crashes inside
//! activate are fault-tests/tests/fault.rs.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command as Proc;

use devmapper::snapshot::activate::{ActivateOptions, Outcome, activate};
use devmapper::snapshot::record::{IdKind, Record, RecordState};
use devmapper::snapshot::{SnapError, SnapshotOptions, Wrapper};
use devmapper::{DeviceMapper, DmName};
use sha2::{Digest, Sha256};

use crate::common::{LoopDev, ext2_superblock, read_at, reboot, unique_name};
use crate::dm_or_skip;

const MIB: u64 = 1 << 20;

fn sha(path: &Path, len: u64) -> Vec<u8> {
    Sha256::digest(read_at(path, 0, len as usize).unwrap()).to_vec()
}

fn write(path: &Path, offset: u64, data: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

struct Guard<'a>(&'a DeviceMapper, Vec<DmName>);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            reboot(self.0, n);
        }
    }
}

#[test]
fn record_activate_refusals_and_drop() {
    let dm = dm_or_skip!("record_activate_refusals_and_drop");
    let lo = LoopDev::new(16 * MIB);
    let twin = LoopDev::new(16 * MIB); // same size, other content uuid
    let cow = LoopDev::new(4 * MIB);
    let spare = LoopDev::new(8 * MIB);
    let name = unique_name("act");
    let other = unique_name("actother");
    let _g = Guard(&dm, vec![name.clone(), other.clone()]);
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    ext2_superblock(&w.node(), 0x11);
    ext2_superblock(&twin.path, 0x22);
    let p0: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let p1: Vec<u8> = (0..256 * 1024).map(|i| (i % 241) as u8).collect();
    write(&w.node(), MIB, &p0);
    let s = w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
    write(&w.node(), MIB, &p1);

    // The record on the COW device, and the status shows the COW device (not the layer).
    let head = read_at(&cow.path, 0, 4096).unwrap();
    let rec = Record::parse(&head).unwrap();
    assert_eq!(rec.wrapper_name, name);
    assert_eq!(rec.snapshot_name.as_str(), format!("{name}-snap"));
    assert_eq!(rec.state, RecordState::Snapshot);
    assert_eq!(rec.chunk_sectors, 8);
    assert_eq!(rec.origin_sectors, 16 * MIB / 512);
    assert_eq!(rec.store_offset.0, 8);
    assert!(
        rec.origin_ids
            .iter()
            .any(|i| i.kind == IdKind::Content && i.value.contains("11111111-1111")),
        "{rec:?}"
    );
    let st = w.status().unwrap();
    assert_eq!(st.snapshots[0].cow, Some(cow.devnum()));
    drop(s);

    // The offline commands find the store after the record.
    if let Ok(bin) = crate::common::bin::find() {
        let out = Proc::new(&bin)
            .args(["cow", "inspect", "--json", cow.path.to_str().unwrap()])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["magic_ok"], true, "{doc}");
        assert_eq!(doc["record"]["wrapper"], name.as_str(), "{doc}");
        assert!(doc["exceptions"].as_u64().unwrap() > 0, "{doc}");
    }

    reboot(&dm, &name);

    // A new wrapper taking a snapshot on the recorded COW: refused, the COW unchanged.
    let ow = Wrapper::wrap(&dm, &other, &spare.path).unwrap();
    let before = sha(&cow.path, 4 * MIB);
    let e = ow
        .take_snapshot(&SnapshotOptions::new(&cow.path))
        .unwrap_err();
    match &e {
        SnapError::CowHoldsRecord { path, record } => {
            assert_eq!(path, &cow.path);
            assert_eq!(record.wrapper_name, name);
        }
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().contains("activate it again"), "{e}");
    assert_eq!(
        sha(&cow.path, 4 * MIB),
        before,
        "the refusal changed the COW"
    );
    ow.unwrap_device().unwrap();

    // Only a same-size device with another content uuid: nothing attached, and why.
    let opts = |devs: Vec<&Path>| ActivateOptions {
        devices: devs.into_iter().map(Path::to_owned).collect(),
        config_dir: None,
    };
    let r = activate(&dm, &opts(vec![&cow.path, &twin.path])).unwrap();
    assert_eq!(r.activations.len(), 1, "{r:?}");
    match &r.activations[0].outcome {
        Outcome::Refused(why) => {
            assert!(
                why.contains(&format!("{} is not it", twin.path.display())),
                "{why}"
            );
        }
        o => panic!("{o:?}"),
    }
    assert!(!dm.exists(&name).unwrap());
    assert!(
        !dm.list()
            .unwrap()
            .iter()
            .any(|d| d.name.starts_with(name.as_str()))
    );
    assert_eq!(sha(&cow.path, 4 * MIB), before);

    // With the origin: back as it was.
    let r = activate(&dm, &opts(vec![&twin.path, &cow.path, &lo.path])).unwrap();
    assert_eq!(r.activations[0].outcome, Outcome::Activated, "{r:?}");
    assert_eq!(r.activations[0].origin.as_deref(), Some(lo.path.as_path()));
    let w = Wrapper::open(&dm, &name).unwrap();
    let s = w.snapshot(None).unwrap();
    assert_eq!(read_at(&s.node(), MIB, p0.len()).unwrap(), p0);
    assert_eq!(read_at(&w.node(), MIB, p1.len()).unwrap(), p1);
    let r = activate(&dm, &opts(vec![&cow.path, &lo.path])).unwrap();
    assert_eq!(r.activations[0].outcome, Outcome::AlreadyActive);

    // Drop after the "reboot": the record goes with the snapshot.
    s.discard().unwrap();
    assert_eq!(read_at(&w.node(), MIB, p1.len()).unwrap(), p1);
    assert!(
        read_at(&cow.path, 0, 4096).unwrap().iter().all(|&b| b == 0),
        "record left after drop"
    );
    assert!(
        !dm.list()
            .unwrap()
            .iter()
            .any(|d| d.name.ends_with("-snap-cow") && d.name.starts_with(name.as_str()))
    );
    let r = activate(&dm, &opts(vec![&cow.path, &lo.path])).unwrap();
    assert!(r.activations.is_empty(), "{r:?}");
    // The COW takes a new snapshot without force.
    w.take_snapshot(&SnapshotOptions::new(&cow.path))
        .unwrap()
        .discard()
        .unwrap();
    w.unwrap_device().unwrap();
}
