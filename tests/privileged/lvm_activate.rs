//! LVM2 activation without lvm2, checked against lvm2 itself: lvm2 builds a VG on loop
//! devices (linear, striped over two PVs, a snapshot, a thin pool with a thin LV), its
//! tables, uuids and LV checksums are recorded, lvm2 deactivates it, then
//! `devmapper::lvm::activate` brings it up again from the loop devices and must load the
//! same devices with the same uuids and tables and expose the same contents; `lvs` must
//! see the LVs active, and our deactivation must leave nothing of the VG behind.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::Command as Proc;

use devmapper::lvm::activate::{self, uuid_prefix};
use devmapper::lvm::model::PhysicalVolume;
use devmapper::lvm::plan::{Plan, PlanOptions, PlannedDevice, plan_vg};
use devmapper::lvm::scan;
use devmapper::table::{Table, TableLine};
use devmapper::targets::{DevRef, Snapshot, Zero};
use devmapper::units::Sectors;
use devmapper::{DeviceMapper, Which};

use crate::common::LoopDev;
use crate::common::files::{fixture, gunzip};

use crate::common::run_tool as run;

/// A dmsetup command that walks every device: another test removing its device between
/// dmsetup's list and its query makes it fail with "Device does not exist"; try again.
fn run_listing(args: &[&str]) -> String {
    for _ in 0..20 {
        let out = Proc::new(args[0]).args(&args[1..]).output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if !String::from_utf8_lossy(&out.stderr).contains("Device does not exist") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run(args)
}

/// lvm2 usable here, or why not.
fn lvm_available() -> Result<(), String> {
    match Proc::new("lvm").arg("version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "lvm version: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return Err(format!("lvm not found: {e}")),
    }
    match Proc::new("dmsetup").arg("version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("dmsetup not usable".into()),
    }
}

/// Removes the VG and its devices on drop, whatever state the test left.
struct VgGuard {
    vg: String,
    pvs: Vec<String>,
}

impl Drop for VgGuard {
    fn drop(&mut self) {
        let _ = Proc::new("lvm")
            .args(["vgchange", "-an", &self.vg])
            .output();
        let _ = Proc::new("lvm")
            .args(["vgremove", "-ff", "-y", &self.vg])
            .output();
        for pv in &self.pvs {
            let _ = Proc::new("lvm")
                .args(["pvremove", "-ff", "-y", pv])
                .output();
        }
    }
}

/// `dmsetup table` lines of the VG's devices, grouped by device name.
fn dmsetup_tables(name_prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in run_listing(&["dmsetup", "table"]).lines() {
        if let Some((name, table)) = line.split_once(": ")
            && name.starts_with(name_prefix)
        {
            out.entry(name.to_string())
                .or_default()
                .push(table.trim_end().to_string());
        }
    }
    out
}

/// Table lines with dm device references (`major:minor`, numbers differ between
/// activations) replaced by `<name>`.
fn normalise(
    dm: &DeviceMapper,
    tables: BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let names: BTreeMap<String, String> = dm
        .list()
        .unwrap()
        .into_iter()
        .map(|d| (d.dev.to_string(), format!("<{}>", d.name)))
        .collect();
    tables
        .into_iter()
        .map(|(n, lines)| {
            let lines = lines
                .iter()
                .map(|l| {
                    l.split(' ')
                        .map(|w| names.get(w).map_or(w, String::as_str))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            (n, lines)
        })
        .collect()
}

/// name → uuid of the VG's devices, from `dmsetup info`.
fn dmsetup_uuids(name_prefix: &str) -> BTreeMap<String, String> {
    run_listing(&[
        "dmsetup",
        "info",
        "-c",
        "--noheadings",
        "-o",
        "name,uuid",
        "--separator",
        " ",
    ])
    .lines()
    .filter_map(|l| l.trim().split_once(' '))
    .filter(|(n, _)| n.starts_with(name_prefix))
    .map(|(n, u)| (n.to_string(), u.to_string()))
    .collect()
}

fn sha256(path: &str) -> String {
    run(&["sha256sum", path])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Fill `len` bytes at `offset` of a device with a pattern seeded by `seed`.
fn write_pattern(path: &str, offset: u64, len: usize, seed: u8) {
    crate::common::write(
        std::path::Path::new(path),
        offset,
        &crate::common::pattern(seed.into(), len),
    );
}

#[test]
fn lvm2_vg_activated_by_us_matches_lvm2() {
    let dm: DeviceMapper = crate::dm_or_skip!("lvm2_vg_activated_by_us_matches_lvm2");
    crate::ok_or_skip!("lvm2_vg_activated_by_us_matches_lvm2", lvm_available());
    let a = LoopDev::new(96 << 20);
    let b = LoopDev::new(96 << 20);
    let pa = a.path.display().to_string();
    let pb = b.path.display().to_string();
    // Dashes in VG and LV names exercise lvm2's name doubling.
    let vg = format!("dmt-{}-vg", std::process::id());
    let _guard = VgGuard {
        vg: vg.clone(),
        pvs: vec![pa.clone(), pb.clone()],
    };
    let name_prefix = format!("{}-", vg.replace('-', "--"));
    let mapper = |lv: &str| format!("/dev/mapper/{name_prefix}{}", lv.replace('-', "--"));

    run(&["lvm", "pvcreate", "-y", "-ff", &pa, &pb]);
    run(&["lvm", "vgcreate", "-y", "-s", "1m", &vg, &pa, &pb]);
    run(&[
        "lvm", "lvcreate", "-y", "-Zn", "-L", "12m", "-n", "lin", &vg, &pa,
    ]);
    run(&[
        "lvm", "lvcreate", "-y", "-Zn", "-i", "2", "-I", "64k", "-L", "16m", "-n", "str-ipe", &vg,
    ]);
    write_pattern(&mapper("lin"), 0, 12 << 20, 1);
    write_pattern(&mapper("str-ipe"), 0, 16 << 20, 2);
    run(&[
        "lvm",
        "lvcreate",
        "-y",
        "-s",
        "-c",
        "8k",
        "-L",
        "4m",
        "-n",
        "snap",
        &format!("{vg}/lin"),
    ]);
    // Writes after the snapshot: the origin and the snapshot now differ.
    write_pattern(&mapper("lin"), 1 << 20, 256 << 10, 3);
    write_pattern(&mapper("snap"), 5 << 20, 64 << 10, 4);
    let thin = Proc::new("lvm")
        .args([
            "lvcreate",
            "-y",
            "-Zn",
            "-T",
            "-L",
            "8m",
            &format!("{vg}/pool"),
        ])
        .output()
        .unwrap();
    let with_thin = thin.status.success()
        && Proc::new("lvm")
            .args([
                "lvcreate",
                "-y",
                "-V",
                "16m",
                "-T",
                &format!("{vg}/pool"),
                "-n",
                "thin",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    if with_thin {
        write_pattern(&mapper("thin"), 3 << 20, 1 << 20, 5);
    } else {
        println!(
            "note: no thin pool in this run: {}",
            String::from_utf8_lossy(&thin.stderr)
        );
    }
    run(&["sync"]);

    let mut lvs = vec!["lin", "str-ipe", "snap"];
    if with_thin {
        lvs.push("thin");
    }
    let want_tables = normalise(&dm, dmsetup_tables(&name_prefix));
    let want_uuids = dmsetup_uuids(&name_prefix);
    let want_sums: Vec<(String, String)> = lvs
        .iter()
        .map(|lv| (lv.to_string(), sha256(&mapper(lv))))
        .collect();
    assert!(want_tables.len() >= 6, "lvm2 made {want_tables:?}");
    assert_eq!(
        want_tables.keys().collect::<Vec<_>>(),
        want_uuids.keys().collect::<Vec<_>>()
    );

    run(&["lvm", "vgchange", "-an", &vg]);
    assert!(
        dmsetup_uuids(&name_prefix).is_empty(),
        "lvm2 left devices active"
    );

    // Our activation, from the loop devices.
    let files = [File::open(&a.path).unwrap(), File::open(&b.path).unwrap()];
    let refs: Vec<DevRef> = [a.devnum(), b.devnum()]
        .into_iter()
        .map(DevRef::from)
        .collect();
    let report = scan::scan(&files);
    let s = report
        .vgs
        .iter()
        .find(|s| s.vg.name == vg)
        .unwrap_or_else(|| panic!("VG {vg} not found: {:?}", report.errors));
    activate::check_vg(s, None).unwrap();
    let pv_dev = |p: &PhysicalVolume| s.device_of(p).and_then(|i| refs.get(i)).cloned();
    let plan = plan_vg(&s.vg, &pv_dev, &PlanOptions::default()).unwrap();
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    let created = activate::apply(&dm, &plan).unwrap();
    assert_eq!(created.len(), want_tables.len());

    let got_uuids = dmsetup_uuids(&name_prefix);
    assert_eq!(got_uuids, want_uuids, "names and uuids differ from lvm2's");
    let mut ours = BTreeMap::new();
    for name in want_tables.keys() {
        let got: Vec<String> = dm
            .table_raw(&devmapper::DmName::new(name).unwrap(), Which::Live)
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}",
                    t.start.0, t.length.0, t.target_type, t.params
                )
                .trim_end()
                .to_string()
            })
            .collect();
        ours.insert(name.clone(), got);
    }
    let ours = normalise(&dm, ours);
    for (name, want) in &want_tables {
        assert_eq!(&ours[name], want, "table of {name}");
    }
    // The normalisation had dm references to replace (snapshot-origin over -real).
    let real = format!("<{name_prefix}lin-real>");
    assert!(
        ours.values().flatten().any(|l| l.contains(&real)),
        "{ours:?}"
    );
    for (lv, want) in &want_sums {
        assert_eq!(&sha256(&mapper(lv)), want, "content of {vg}/{lv}");
    }
    let lvs_out = run(&["lvm", "lvs", "--noheadings", "-o", "lv_name,lv_active", &vg]);
    for lv in &lvs {
        let line = lvs_out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(lv))
            .unwrap_or_else(|| panic!("lvs does not list {lv}: {lvs_out}"));
        assert!(line.contains("active"), "lvs: {line}");
    }

    // In use: deactivation refuses and removes nothing.
    let held = File::open(mapper("lin")).unwrap();
    let e = activate::deactivate(&dm, &s.vg.id).unwrap_err();
    let lin = format!("{name_prefix}lin");
    assert!(
        matches!(&e, activate::ActivateError::Busy { devices, .. }
            if devices.iter().any(|d| d.name.as_str() == lin && d.open_count >= 1)),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("{name_prefix}lin")), "{e}");
    assert_eq!(dmsetup_uuids(&name_prefix).len(), want_uuids.len());
    drop(held);

    let removed = activate::deactivate(&dm, &s.vg.id).unwrap();
    let mut removed: Vec<String> = removed.iter().map(|n| n.to_string()).collect();
    removed.sort();
    assert_eq!(removed, want_uuids.keys().cloned().collect::<Vec<_>>());
    let prefix = uuid_prefix(&s.vg.id);
    let left: Vec<String> = dm
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| d.uuid.as_deref().is_some_and(|u| u.starts_with(&prefix)))
        .map(|d| d.name)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let lvs_out = run(&["lvm", "lvs", "--noheadings", "-o", "lv_name,lv_active", &vg]);
    assert!(
        !lvs_out.contains("active"),
        "lvs after deactivate: {lvs_out}"
    );
}

#[test]
fn failed_activation_rolls_back() {
    let dm: DeviceMapper = crate::dm_or_skip!("failed_activation_rolls_back");
    // A plan whose second device's table the kernel refuses: the first device is
    // created, the second fails to load, and both must go again.
    let tag = crate::common::unique_name("rb");
    let base = tag.as_str().to_string();
    // The upper table is valid (it passes Table::validate) but the kernel refuses it: a
    // snapshot whose COW device is its origin.
    let lower = devmapper::DmName::new(&format!("{base}-lower")).unwrap();
    let lower_ref = devmapper::lvm::plan::mapper_ref(&lower).unwrap();
    let device = |name: &devmapper::DmName, table: Table| PlannedDevice {
        name: name.clone(),
        uuid: devmapper::DmUuid::new(&format!("LVM-{name}")).unwrap(),
        read_only: false,
        lv: name.to_string(),
        layer: None,
        dev: None,
        table,
    };
    let upper = devmapper::DmName::new(&format!("{base}-upper")).unwrap();
    let snap = Snapshot::persistent(lower_ref.clone(), lower_ref, Sectors(8));
    let plan = Plan {
        devices: vec![
            device(
                &lower,
                Table::from_lines(vec![TableLine::new(Sectors(0), Sectors(8), Zero)]),
            ),
            device(
                &upper,
                Table::from_lines(vec![TableLine::new(Sectors(0), Sectors(8), snap)]),
            ),
        ],
        skipped: Vec::new(),
    };
    let e = activate::apply(&dm, &plan).unwrap_err();
    assert!(
        matches!(&e, activate::ActivateError::Dm { step: "load", device, source }
            if *device == upper.as_str() && matches!(**source, devmapper::Error::Ioctl { .. })),
        "{e:?}"
    );
    crate::common::assert_none_left(&dm, &base);

    // A table the kernel must never see (a zero-length target): refused by the validated
    // load path with the table error, and rolled back the same way.
    let mut plan = plan;
    plan.devices[1].table = Table::from_lines(vec![TableLine::new(Sectors(0), Sectors(0), Zero)]);
    let e = activate::apply(&dm, &plan).unwrap_err();
    assert!(
        matches!(&e, activate::ActivateError::Dm { step: "load", source, .. }
            if matches!(&**source, devmapper::Error::Table(t)
                if t.kind == devmapper::table::TableErrorKind::ZeroLength)),
        "{e:?}"
    );
    crate::common::assert_none_left(&dm, &base);
}

/// The fixture VGs have fixed names: one test at a time may activate them.
static FIXTURE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The fixture's PV images on loop devices.
fn fixture_loops(case: &str, pvs: &[&str]) -> Vec<LoopDev> {
    pvs.iter()
        .map(|p| {
            let img = gunzip(&fixture(&format!("lvm/{case}/{p}.img.gz")));
            let l = LoopDev::new(img.len() as u64);
            let f = File::options().write(true).open(&l.path).unwrap();
            f.write_all_at(&img, 0).unwrap();
            f.sync_all().unwrap();
            l
        })
        .collect()
}

/// Removes the devices of a VG (by uuid prefix) on drop.
struct ActiveGuard<'a> {
    dm: &'a DeviceMapper,
    vg_id: devmapper::lvm::LvmId,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if activate::deactivate(self.dm, &self.vg_id).is_err()
            && let Ok(devs) = activate::vg_devices(self.dm, &self.vg_id)
        {
            for d in devs.iter().rev() {
                crate::common::remove_quietly(self.dm, &devmapper::DmName::new(&d.name).unwrap());
            }
        }
    }
}

/// The committed lvm2 fixture's PVs (`tests/fixtures/lvm/<case>`) copied onto loop devices
/// and activated by us: the same devices, uuids, read-only flags and tables as lvm2
/// recorded, and (where recorded) the same device contents.
fn activate_fixture(dm: &DeviceMapper, case: &str, pvs: &[&str]) -> Vec<String> {
    let _one_at_a_time = FIXTURE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = fixture("lvm").join(case);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let loops = fixture_loops(case, pvs);
    // lvm2's numbers: loop i (loops.txt) -> <pvI>, dm major:minor -> <name>.
    let mut theirs_dev: BTreeMap<String, String> = BTreeMap::new();
    for (i, l) in read("loops.txt").lines().enumerate() {
        let n = l.split_whitespace().nth(1).unwrap();
        theirs_dev.insert(n.to_string(), format!("<pv{i}>"));
    }
    let mut want_info: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for l in read("dmsetup-info.txt").lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        theirs_dev.insert(format!("{}:{}", f[2], f[3]), format!("<{}>", f[0]));
        want_info.insert(f[0].to_string(), (f[1].to_string(), f[4].ends_with('r')));
    }
    let norm = |words: &str, map: &BTreeMap<String, String>| -> String {
        words
            .split_whitespace()
            .map(|w| map.get(w).map_or(w, String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut want_tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in read("dmsetup-table.txt").lines() {
        let (name, t) = l.split_once(": ").unwrap();
        want_tables
            .entry(name.to_string())
            .or_default()
            .push(norm(t, &theirs_dev));
    }

    let files: Vec<File> = loops.iter().map(|l| File::open(&l.path).unwrap()).collect();
    let nums: Vec<String> = loops.iter().map(|l| l.devnum().to_string()).collect();
    let refs: Vec<DevRef> = loops.iter().map(|l| l.devnum().into()).collect();
    let report = scan::scan(&files);
    assert_eq!(report.vgs.len(), 1, "{:?}", report.errors);
    let s = &report.vgs[0];
    activate::check_vg(s, None).unwrap();
    let pv_dev = |p: &PhysicalVolume| s.device_of(p).and_then(|i| refs.get(i)).cloned();
    let plan = plan_vg(&s.vg, &pv_dev, &PlanOptions::default()).unwrap();
    let _guard = ActiveGuard { dm, vg_id: s.vg.id };
    let created = activate::apply(dm, &plan).unwrap();
    assert_eq!(created.len(), want_info.len());

    let mut ours_dev: BTreeMap<String, String> = nums
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), format!("<pv{i}>")))
        .collect();
    for d in dm.list().unwrap() {
        ours_dev.insert(d.dev.to_string(), format!("<{}>", d.name));
    }
    for (name, (uuid, ro)) in &want_info {
        let n = devmapper::DmName::new(name).unwrap();
        let info = dm.info(&n).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.uuid.as_deref(), Some(uuid.as_str()), "uuid of {name}");
        assert_eq!(info.read_only(), *ro, "read-only flag of {name}");
        let got: Vec<String> = dm
            .table_raw(&n, Which::Live)
            .unwrap()
            .iter()
            .map(|t| {
                let line = format!(
                    "{} {} {} {}",
                    t.start.0, t.length.0, t.target_type, t.params
                );
                norm(&line, &ours_dev)
            })
            .collect();
        assert_eq!(&got, &want_tables[name], "table of {name}");
    }
    if let Ok(sums) = std::fs::read_to_string(dir.join("sha256.txt")) {
        for l in sums.lines() {
            let (h, name) = l.split_once(' ').unwrap();
            assert_eq!(
                sha256(&format!("/dev/mapper/{name}")),
                h,
                "content of {name}"
            );
        }
    }
    let removed = activate::deactivate(dm, &s.vg.id).unwrap();
    assert_eq!(removed.len(), want_info.len());
    assert!(activate::vg_devices(dm, &s.vg.id).unwrap().is_empty());
    plan.skipped.into_iter().map(|s| s.lv).collect()
}

#[test]
fn lvm2_fixture_multi_activates_as_lvm2_did() {
    let dm: DeviceMapper = crate::dm_or_skip!("lvm2_fixture_multi_activates_as_lvm2_did");
    let skipped = activate_fixture(&dm, "multi", &["pv1", "pv2", "pv3"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn lvm2_fixture_merge_unused_pool_and_skip_flag_activate_as_lvm2_did() {
    let dm: DeviceMapper =
        crate::dm_or_skip!("lvm2_fixture_merge_unused_pool_and_skip_flag_activate_as_lvm2_did");
    let skipped = activate_fixture(&dm, "more", &["pv5"]);
    assert_eq!(skipped, ["skipme"]);
}

use crate::common::output as dmsnap_run;

#[test]
fn dmsnap_lvm_activate_and_deactivate() {
    let dm: DeviceMapper = crate::dm_or_skip!("dmsnap_lvm_activate_and_deactivate");
    let Some(bin) = crate::common::dmsnap_or_skip("dmsnap_lvm_activate_and_deactivate") else {
        return;
    };
    let _one_at_a_time = FIXTURE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let loops = fixture_loops("more", &["pv5"]);
    let dev = loops[0].path.display().to_string();
    let report = scan::scan(&[File::open(&loops[0].path).unwrap()]);
    let _guard = ActiveGuard {
        dm: &dm,
        vg_id: report.vgs[0].vg.id,
    };
    let active = |dm: &DeviceMapper| -> Vec<String> {
        let mut v: Vec<String> = activate::vg_devices(dm, &report.vgs[0].vg.id)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        v.sort();
        v
    };

    // One LV and what it needs.
    let (ok, out, err) = dmsnap_run(&bin, &["lvm", "activate", "more", "--lv", "pool2", &dev]);
    assert!(ok, "{err}");
    assert!(out.contains("more-pool2 "), "{out}");
    assert_eq!(
        active(&dm),
        ["more-pool2", "more-pool2_tdata", "more-pool2_tmeta"]
    );
    // A flagged LV asked for by name is refused, with the reason.
    let err = crate::common::fails(&bin, &["lvm", "activate", "more", "--lv", "skipme", &dev]);
    assert!(err.contains("ACTIVATION_SKIP"), "{err}");
    // The whole VG: the active pool is reused, skipme is reported.
    let (ok, out, err) = dmsnap_run(&bin, &["lvm", "activate", "more", &dev]);
    assert!(ok, "{err}");
    assert!(out.contains("3 device(s) were already active"), "{out}");
    assert!(err.contains("skipme") && err.contains("skip"), "{err}");
    // The fixture's pending merge of msnap into morigin starts at this activation and, as
    // lvm2's polling would, is finished by it (waited for, then the snapshot removed from
    // the metadata): morigin is a plain LV again, without -real, -cow or the snapshot.
    assert!(
        out.contains("Merge of snapshot into logical volume more/morigin has finished."),
        "{out}"
    );
    assert_eq!(
        active(&dm),
        [
            "more-morigin",
            "more-pool2",
            "more-pool2_tdata",
            "more-pool2_tmeta"
        ]
    );
    // Deactivate by VG name alone (found from the active devices).
    let (ok, out, err) = dmsnap_run(&bin, &["lvm", "deactivate", "more"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(active(&dm).is_empty());
    let err = crate::common::fails(&bin, &["lvm", "deactivate", "more"]);
    assert!(err.contains("no active device belongs to VG more"), "{err}");
    // An image file is not a block device: refused before anything is created.
    let img = loops[0].file.path().display().to_string();
    let err = crate::common::fails(&bin, &["lvm", "activate", "more", &img]);
    assert!(err.contains("not a block device"), "{err}");
    assert!(active(&dm).is_empty());
}
