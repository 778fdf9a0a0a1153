//! A COW device that holds something recognisable is refused before anything is written or
//! suspended (library and CLI), `Force` overrides, and the probe agrees with the real
//! tools on real block devices (mke2fs, pvcreate, mdadm).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command as Proc;

use devmapper::probe::{self, Found, FsKind, MdVersion};
use devmapper::snapshot::{CowOverwrite, SnapError, SnapshotOptions, Wrapper};
use devmapper::{DeviceMapper, DmName};
use sha2::{Digest, Sha256};

use crate::common::{LoopDev, remove_quietly, unique_name};
use crate::dm_or_skip;

const MIB: u64 = 1 << 20;

fn sha(path: &Path, len: u64) -> Vec<u8> {
    Sha256::digest(crate::common::read_at(path, 0, len as usize).unwrap()).to_vec()
}

fn run_ok(cmd: &str, args: &[&str]) {
    let argv: Vec<&str> = std::iter::once(cmd).chain(args.iter().copied()).collect();
    crate::common::run_tool(&argv);
}

fn identify(path: &Path) -> Vec<Found> {
    probe::identify(&std::fs::File::open(path).unwrap()).unwrap()
}

/// Removes a wrapper's devices when dropped.
struct Cleanup<'a> {
    dm: &'a DeviceMapper,
    name: DmName,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(w) = Wrapper::open(self.dm, &self.name) {
            let _ = w.recover();
            for s in w.snapshots().unwrap_or_default() {
                let _ = s.discard();
            }
        }
        let prefix = self.name.as_str().to_owned();
        let mut names: Vec<String> = self
            .dm
            .list()
            .map(|l| l.into_iter().map(|d| d.name).collect())
            .unwrap_or_default();
        names.retain(|n| n.starts_with(&prefix));
        names.sort_by_key(|n| (n.ends_with("-real") || n.ends_with("-cow"), n == &prefix));
        for n in names {
            remove_quietly(self.dm, &DmName::new(&n).unwrap());
        }
    }
}

/// The wrapper's devices (names, suspended flags) for before/after comparisons.
fn devices(dm: &DeviceMapper, prefix: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = dm
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| d.name.starts_with(prefix))
        .map(|d| {
            let i = dm.info(&DmName::new(&d.name).unwrap()).unwrap();
            (d.name, i.suspended())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cow_with_ext4_is_refused_until_forced() {
    let dm = dm_or_skip!("cow_with_ext4_is_refused_until_forced");
    let lo = LoopDev::new(16 * MIB);
    let cow = LoopDev::new(8 * MIB);
    let name = unique_name("cowfs");
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = Cleanup {
        dm: &dm,
        name: name.clone(),
    };
    let origin = w.node();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&origin)
        .unwrap()
        .write_all_at(b"origin data", 0)
        .unwrap();
    run_ok(
        "mkfs.ext4",
        &["-q", "-F", "-L", "precious", cow.path.to_str().unwrap()],
    );
    let before = sha(&cow.path, 8 * MIB);
    let devs_before = devices(&dm, name.as_str());

    let e = w
        .take_snapshot(&SnapshotOptions::new(&cow.path))
        .unwrap_err();
    match &e {
        SnapError::CowHoldsData { path, found } => {
            assert_eq!(path, &cow.path);
            assert!(
                matches!(&found[..], [Found::Filesystem { kind: FsKind::Ext4, label: Some(l), .. }] if l == "precious"),
                "{found:?}"
            );
        }
        other => panic!("wrong error: {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(cow.path.to_str().unwrap())
            && msg.contains("ext4")
            && msg.contains("precious"),
        "{msg}"
    );
    assert_eq!(sha(&cow.path, 8 * MIB), before, "the refused COW changed");
    assert_eq!(
        devices(&dm, name.as_str()),
        devs_before,
        "the refusal changed the devices"
    );
    assert!(
        !dm.info(&name).unwrap().suspended(),
        "origin left suspended"
    );

    // Forced: the snapshot is taken over the filesystem.
    let s = w
        .take_snapshot(&SnapshotOptions::new(&cow.path).overwrite(CowOverwrite::Force))
        .unwrap();
    assert_eq!(
        crate::common::read_at(&s.node(), 0, 11).unwrap(),
        b"origin data"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&origin)
        .unwrap()
        .write_all_at(&[7u8; 65536], 0)
        .unwrap();
    s.discard().unwrap();
    // The discarded store's header is cleared: the COW is usable again without force.
    assert_eq!(identify(&cow.path), vec![], "discard left a store behind");
    let s = w.take_snapshot(&SnapshotOptions::new(&cow.path)).unwrap();
    s.discard().unwrap();
}

#[test]
fn cow_with_an_earlier_snapshots_store_gets_its_own_refusal() {
    let dm = dm_or_skip!("cow_with_an_earlier_snapshots_store_gets_its_own_refusal");
    let lo = LoopDev::new(16 * MIB);
    let cow = LoopDev::new(4 * MIB);
    let orphan = LoopDev::new(4 * MIB);
    let name = unique_name("cowstore");
    let w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = Cleanup {
        dm: &dm,
        name: name.clone(),
    };
    let s = w
        .take_snapshot(&SnapshotOptions::new(&cow.path).chunk(devmapper::units::Sectors(16)))
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(w.node())
        .unwrap();
    f.write_all_at(&[9u8; 1 << 20], 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    // The kernel's store, as a reboot would leave it: copy it (through the loop's backing
    // file, which the kernel wrote) onto a device no snapshot uses. The COW device starts
    // with dmsnap's record (refused as CowHoldsRecord, see tests/privileged/activate.rs);
    // the store proper, after it, is what lvm2 or any bare `snapshot` target leaves.
    let device = std::fs::read(cow.file.path()).unwrap();
    let offset = 16 * 512; // the store offset: one 16-sector chunk
    assert_eq!(&device[..8], b"DMSNAPRC");
    let store = &device[offset..];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&orphan.path)
        .unwrap()
        .write_all_at(store, 0)
        .unwrap();
    s.discard().unwrap();
    let before = sha(&orphan.path, 4 * MIB);
    let e = w
        .take_snapshot(&SnapshotOptions::new(&orphan.path))
        .unwrap_err();
    assert!(
        matches!(
            &e,
            SnapError::CowHoldsSnapshot { path, chunk_sectors: 16, valid: true } if path == &orphan.path
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("discards that snapshot"), "{e}");
    assert_eq!(sha(&orphan.path, 4 * MIB), before);
    assert!(!dm.info(&name).unwrap().suspended());
    let s = w
        .take_snapshot(&SnapshotOptions::new(&orphan.path).overwrite(CowOverwrite::Force))
        .unwrap();
    s.discard().unwrap();
}

use crate::common::dmsnap_or_skip as dmsnap;

#[test]
fn cli_snapshot_refuses_a_cow_with_a_filesystem() {
    let dm = dm_or_skip!("cli_snapshot_refuses_a_cow_with_a_filesystem");
    let Some(bin) = dmsnap("cli_snapshot_refuses_a_cow_with_a_filesystem") else {
        return;
    };
    let lo = LoopDev::new(16 * MIB);
    let cow = LoopDev::new(8 * MIB);
    let name = unique_name("clicow");
    let _w = Wrapper::wrap(&dm, &name, &lo.path).unwrap();
    let _g = Cleanup {
        dm: &dm,
        name: name.clone(),
    };
    let cow_s = cow.path.to_str().unwrap();
    run_ok("mkfs.ext4", &["-q", "-F", cow_s]);
    let before = sha(&cow.path, 8 * MIB);
    let out = Proc::new(&bin)
        .args(["snapshot", name.as_str(), "--cow", cow_s])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(cow_s) && stderr.contains("ext4 filesystem"),
        "{stderr}"
    );
    assert_eq!(sha(&cow.path, 8 * MIB), before);
    assert!(!dm.info(&name).unwrap().suspended());
    assert_eq!(devices(&dm, name.as_str()).len(), 1, "devices were made");
    let help = Proc::new(&bin)
        .args(["snapshot", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--force"));
    let out = Proc::new(&bin)
        .args(["snapshot", name.as_str(), "--cow", cow_s, "--force"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--force: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Proc::new(&bin)
        .args(["drop", name.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn probe_agrees_with_pvcreate_and_mdadm() {
    let _dm = dm_or_skip!("probe_agrees_with_pvcreate_and_mdadm");
    let pv = LoopDev::new(16 * MIB);
    let pv_s = pv.path.to_str().unwrap();
    run_ok("lvm", &["pvcreate", "-q", "-y", "-ff", pv_s]);
    let out = Proc::new("lvm")
        .args(["pvs", "--noheadings", "-o", "pv_uuid", pv_s])
        .output()
        .unwrap();
    let uuid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        identify(&pv.path),
        vec![Found::LvmPv {
            uuid: Some(uuid),
            sector: 1
        }]
    );
    run_ok("lvm", &["pvremove", "-q", "-y", "-ff", pv_s]);
    assert_eq!(identify(&pv.path), vec![], "pvremove left a label");

    for (meta, version) in [
        ("0.90", MdVersion::V0_90),
        ("1.0", MdVersion::V1_0),
        ("1.1", MdVersion::V1_1),
        ("1.2", MdVersion::V1_2),
    ] {
        let a = LoopDev::new(20 * MIB + 12288);
        let b = LoopDev::new(20 * MIB + 12288);
        let md = format!("/dev/md{}", 100 + (std::process::id() % 100));
        let out = Proc::new("mdadm")
            .args([
                "--create",
                &md,
                "--run",
                "--quiet",
                "--level=1",
                "--raid-devices=2",
            ])
            .arg(format!("--metadata={meta}"))
            .args([&a.path, &b.path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mdadm --metadata={meta}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        run_ok("mdadm", &["--stop", &md]);
        let got = identify(&a.path);
        assert!(
            matches!(&got[..], [Found::MdRaid { version: v, .. }] if *v == version),
            "metadata {meta}: {got:?}"
        );
        assert_eq!(got, identify(&b.path), "both members, metadata {meta}");
    }
}
