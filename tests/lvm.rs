//! LVM2 against real lvm2: fixtures made by lvm2 2.03.16 on Linux 6.1 in the test VM
//! (`tests/fixtures/lvm/make.sh`, README there). Offline: our scan, plan and export are
//! compared with what lvm2 loaded into the kernel and with the LV checksums it left.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use devmapper::lvm::config::ParseMode;
use devmapper::lvm::export::{LvReader, export, snapshot_reader};
use devmapper::lvm::mda::MdaContent;
use devmapper::lvm::model::{PhysicalVolume, VolumeGroup};
use devmapper::lvm::plan::{PlanOptions, mapper_name, plan_vg};
use devmapper::lvm::scan::{MdaOutcome, scan};
use devmapper::lvm::{label, mda};
use sha2::{Digest, Sha256};

use common::gunzip;

fn dir(case: &str) -> PathBuf {
    common::fixture("lvm").join(case)
}

fn read(case: &str, name: &str) -> String {
    std::fs::read_to_string(dir(case).join(name)).unwrap()
}

fn multi_pvs() -> Vec<Vec<u8>> {
    (1..=3)
        .map(|i| gunzip(&dir("multi").join(format!("pv{i}.img.gz"))))
        .collect()
}

/// `loops.txt`: device i of the case is `/dev/loopN` with `major:minor`.
fn loop_devnums(case: &str) -> Vec<String> {
    read(case, "loops.txt")
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

struct DmInfo {
    uuid: String,
    read_only: bool,
}

/// `dmsetup info -c -o name,uuid,major,minor,attr`: by name, plus `major:minor` -> name.
fn dm_info(case: &str) -> (BTreeMap<String, DmInfo>, BTreeMap<String, String>) {
    let mut by_name = BTreeMap::new();
    let mut by_dev = BTreeMap::new();
    for l in read(case, "dmsetup-info.txt").lines() {
        let f: Vec<_> = l.split_whitespace().collect();
        by_dev.insert(format!("{}:{}", f[2], f[3]), f[0].to_string());
        by_name.insert(
            f[0].to_string(),
            DmInfo {
                uuid: f[1].to_string(),
                read_only: f[4].as_bytes()[3] == b'r',
            },
        );
    }
    (by_name, by_dev)
}

/// `dmsetup table`, dm device numbers replaced by `/dev/mapper/<name>`.
fn lvm2_tables(case: &str, by_dev: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in read(case, "dmsetup-table.txt").lines() {
        let (name, rest) = l.split_once(": ").unwrap();
        let norm: Vec<String> = rest
            .split_whitespace()
            .map(|w| {
                by_dev
                    .get(w)
                    .map_or_else(|| w.to_string(), |n| format!("/dev/mapper/{n}"))
            })
            .collect();
        out.entry(name.to_string())
            .or_default()
            .push(norm.join(" "));
    }
    out
}

fn scanned_multi(pvs: &[Vec<u8>]) -> (VolumeGroup, Vec<Option<usize>>) {
    let refs: Vec<&[u8]> = pvs.iter().map(|v| &v[..]).collect();
    let r = scan(&refs);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.vgs.len(), 1);
    let s = r.vgs.into_iter().next().unwrap();
    assert!(s.is_complete());
    assert!(!s.inconsistent);
    (s.vg, s.pv_devices)
}

#[test]
fn multi_two_metadata_copies_agree() {
    let pvs = multi_pvs();
    let refs: Vec<&[u8]> = pvs.iter().map(|v| &v[..]).collect();
    let r = scan(&refs);
    let copies: Vec<usize> = r.pvs.iter().map(|p| p.mdas.len()).collect();
    assert_eq!(copies, [2, 2, 1]);
    for p in &r.pvs {
        for m in &p.mdas {
            assert!(
                matches!(m.outcome, MdaOutcome::Text { seqno: 16, .. }),
                "{:?}",
                m.outcome
            );
        }
    }
}

/// Plan the VG found on `pvs` and compare with what lvm2 loaded: same devices, same
/// tables (dm device numbers mapped to names), same uuids and read-only flags, and every
/// dm device a table uses is created before it. Returns the skipped LVs.
fn plan_matches_lvm2(case: &str, pvs: &[Vec<u8>]) -> Vec<String> {
    let refs: Vec<&[u8]> = pvs.iter().map(|v| &v[..]).collect();
    let r = scan(&refs);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let s = &r.vgs[0];
    assert!(s.is_complete());
    let vg = &s.vg;
    let devnums = loop_devnums(case);
    let pv_dev = |p: &PhysicalVolume| devnums.get(s.device_of(p)?)?.parse().ok();
    let plan = plan_vg(vg, &pv_dev, &PlanOptions::default()).unwrap();
    let (info, by_dev) = dm_info(case);
    let expected = lvm2_tables(case, &by_dev);
    let ours: BTreeMap<String, Vec<String>> = plan
        .devices
        .iter()
        .map(|d| {
            let lines = d
                .table
                .lines()
                .iter()
                .map(|l| l.to_string().trim().to_string());
            (d.name.to_string(), lines.collect())
        })
        .collect();
    assert_eq!(ours, expected);
    for d in &plan.devices {
        let i = &info[d.name.as_str()];
        assert_eq!(d.uuid.as_str(), i.uuid, "{}", d.name);
        assert_eq!(d.read_only, i.read_only, "read-only flag of {}", d.name);
    }
    for (n, d) in plan.devices.iter().enumerate() {
        for l in &d.table {
            for dep in l.target.devices().into_iter().filter_map(mapper_name) {
                let at = plan.devices.iter().position(|x| x.name == dep).unwrap();
                assert!(at < n, "{} needs {dep} first", d.name);
            }
        }
    }
    plan.skipped.iter().map(|s| s.lv.clone()).collect()
}

#[test]
fn multi_plan_equals_lvm2_tables() {
    let skipped = plan_matches_lvm2("multi", &multi_pvs());
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn merge_unused_pool_and_skip_flag_plan_equals_lvm2_tables() {
    let pv = gunzip(&dir("more").join("pv5.img.gz"));
    let skipped = plan_matches_lvm2("more", &[pv]);
    assert_eq!(skipped, ["skipme"]);
}

/// `sha256.txt` of `multi`: dm device name -> the sha256 of its content, as lvm2 left it.
fn multi_sums() -> BTreeMap<String, String> {
    read("multi", "sha256.txt")
        .lines()
        .map(|l| {
            let (h, n) = l.split_once(' ').unwrap();
            (n.to_string(), h.to_string())
        })
        .collect()
}

#[test]
fn multi_exports_equal_lvm2_checksums() {
    let pvs = multi_pvs();
    let (vg, pv_devices) = scanned_multi(&pvs);
    let sums = multi_sums();
    let src = |p: &PhysicalVolume| {
        let i = vg.pvs.iter().position(|x| x.id == p.id)?;
        pvs.get(pv_devices[i]?).map(|v| &v[..])
    };
    // LV name -> the dm device whose content is exactly that LV's own segments.
    for (lv, dm) in [
        ("lin-ear", "fx--vg-lin--ear"),
        ("multi", "fx--vg-multi"),
        ("stripe", "fx--vg-stripe"),
        ("origin", "fx--vg-origin-real"),
        ("snap-1", "fx--vg-snap--1-cow"),
        ("snap2", "fx--vg-snap2-cow"),
        ("pool_tdata", "fx--vg-pool_tdata"),
        ("pool_tmeta", "fx--vg-pool_tmeta"),
    ] {
        let r = LvReader::new(&vg, lv, &src).unwrap();
        let mut h = HashWriter(Sha256::new());
        export(&r, &mut h).unwrap();
        let h = h.0;
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, sums[dm], "{lv}");
    }
}

#[test]
fn multi_snapshot_exports_equal_lvm2_checksums() {
    let pvs = multi_pvs();
    let (vg, pv_devices) = scanned_multi(&pvs);
    let sums = multi_sums();
    let src = |p: &PhysicalVolume| {
        let i = vg.pvs.iter().position(|x| x.id == p.id)?;
        pvs.get(pv_devices[i]?).map(|v| &v[..])
    };
    // The origin was rewritten after both snapshots: they must differ from it.
    assert_ne!(sums["fx--vg-snap--1"], sums["fx--vg-origin"]);
    for (lv, dm, chunk) in [
        ("snap-1", "fx--vg-snap--1", 4096),
        ("snap2", "fx--vg-snap2", 65536),
    ] {
        let r = snapshot_reader(&vg, lv, &src).unwrap();
        assert_eq!(r.chunk_bytes(), chunk, "{lv}");
        assert!(r.exceptions() > 0, "{lv}: no exceptions");
        let mut h = HashWriter(Sha256::new());
        export(&r, &mut h).unwrap();
        let got: String = h.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, sums[dm], "{lv}");
    }
    // Not snapshots.
    for lv in ["origin", "lin-ear"] {
        let e = snapshot_reader(&vg, lv, &src).err().unwrap();
        assert!(
            matches!(&e, devmapper::lvm::Error::Export { lv: at, .. } if *at == format!("fx-vg/{lv}")),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("export of fx-vg/{lv}: not a snapshot")
        );
    }
}

#[test]
fn backup_file_and_disk_metadata_agree() {
    let pvs = multi_pvs();
    let (vg, _) = scanned_multi(&pvs);
    let backup =
        VolumeGroup::from_text(read("multi", "backup.vg").as_bytes(), ParseMode::File).unwrap();
    assert_eq!(backup, vg);
    let wrap_backup =
        VolumeGroup::from_text(read("wrap", "backup.vg").as_bytes(), ParseMode::File).unwrap();
    assert_eq!(wrap_backup.name, "wrap");
}

#[test]
fn wrapped_metadata_ring() {
    let head = gunzip(&dir("wrap").join("pv4-head.img.gz"));
    let l = label::read_label(&head[..]).unwrap();
    assert_eq!(l.metadata_areas.len(), 1);
    let (hdr, content) = mda::read_metadata(&head[..], l.metadata_areas[0]).unwrap();
    let MdaContent::Text(t) = content else {
        panic!("no text")
    };
    assert!(
        t.wrapped,
        "the committed copy should wrap (offset {} size {} area {})",
        t.locn.offset, t.locn.size, hdr.size
    );
    let info = read("wrap", "wrap.txt");
    assert!(
        info.contains(&format!("offset={} size={}", t.locn.offset, t.locn.size)),
        "{info}"
    );
    let vg = VolumeGroup::from_text(&t.text, ParseMode::Disk).unwrap();
    let updates: usize = info.split_whitespace().next().unwrap()["updates=".len()..]
        .parse()
        .unwrap();
    assert_eq!(vg.lv("lv").unwrap().tags.len(), updates);
    let backup =
        VolumeGroup::from_text(read("wrap", "backup.vg").as_bytes(), ParseMode::File).unwrap();
    assert_eq!(backup, vg);
}

/// `io::Write` into a SHA-256 (sha2 0.11 no longer implements `Write` itself).
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A VG scanned without one of its PVs: activation is refused as partial before anything
/// else, naming the missing PV (typed), by the one check both callers use.
#[test]
fn partial_vg_is_blocked_naming_the_missing_pv() {
    use devmapper::lvm::activate::{ActivateError, check_vg};
    use devmapper::lvm::check::{Blocker, scanned_blockers};
    let pvs = multi_pvs();
    let r = scan(&[&pvs[0][..], &pvs[2][..]]);
    let s = &r.vgs[0];
    assert!(!s.is_complete());
    let gone: Vec<_> = s.missing_pvs().map(|p| p.id).collect();
    assert_eq!(gone.len(), 1);
    let b = scanned_blockers(s, None);
    match &b[..] {
        [Blocker::Partial { vg, missing }] => {
            assert_eq!(vg, &s.vg.name);
            assert_eq!(missing.iter().map(|p| p.id).collect::<Vec<_>>(), gone);
        }
        other => panic!("{other:?}"),
    }
    let e = check_vg(s, None).unwrap_err();
    assert!(
        matches!(&e, ActivateError::Blocked(Blocker::Partial { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(&gone[0].to_string()), "{e}");
    // The complete VG passes.
    let all: Vec<&[u8]> = pvs.iter().map(|v| &v[..]).collect();
    check_vg(&scan(&all).vgs[0], None).unwrap();
}
