//! PVs written by `lvm::write::pv` handed to the real lvm2, and lvm2's name rules against
//! `lvm::names`: root, loop devices and the lvm2 tools (the VM has them).

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;

use devmapper::lvm::id::LvmId;
use devmapper::lvm::label::{self, PV_EXT_USED};
use devmapper::lvm::names;
use devmapper::lvm::write::pv::{self, PvLayout};

use crate::common::LoopDev;

/// `Ok(())` when the test can run: root and lvm2's tools.
fn lvm2_available() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not running as root".into());
    }
    // lvm2's lvcreate checks the kernel's targets even with --test.
    devmapper::availability().map_err(|e| format!("device-mapper unusable: {e}"))?;
    match Command::new("lvm").arg("version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "lvm version failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("lvm2 not installed: {e}")),
    }
}

fn lvm(args: &[&str]) -> (bool, String, String) {
    let o = Command::new("lvm")
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("run lvm");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

#[test]
fn lvm2_accepts_our_pv_and_makes_a_vg_on_it() {
    let test = "lvm2_accepts_our_pv_and_makes_a_vg_on_it";
    crate::ok_or_skip!(test, lvm2_available());
    println!("PRIVILEGED-TEST-RAN {test}");
    let size = 16u64 << 20;
    let lo = LoopDev::new(size);
    let dev_path = lo.path.to_str().unwrap().to_string();
    let id = LvmId::generate().unwrap();
    {
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lo.path)
            .unwrap();
        let layout = PvLayout::lvm2_default(size).unwrap();
        pv::write_pv(&dev, &id, &layout, false).unwrap();
    }
    let (ok, out, err) = lvm(&[
        "pvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "--separator",
        ",",
        "-o",
        "pv_name,pv_uuid,dev_size,pe_start,pv_mda_size,pv_mda_count,pv_ext_vsn,vg_name",
        &dev_path,
    ]);
    assert!(ok, "pvs refused our PV: {err}");
    let fields: Vec<&str> = out.trim().split(',').collect();
    assert_eq!(
        fields,
        vec![
            dev_path.as_str(),
            &id.to_string(),
            "16777216",
            "1048576",
            "1044480",
            "1",
            "2",
            ""
        ],
        "{out}"
    );
    assert!(
        !err.contains("WARNING") && !err.contains("Checksum"),
        "pvs warned: {err}"
    );
    let (ok, _, err) = lvm(&["pvck", &dev_path]);
    assert!(ok, "pvck: {err}");
    // lvm2 makes a VG on it, and sets the "used" flag we leave clear on an orphan.
    let vg = unique("halloc");
    let (ok, _, err) = lvm(&["vgcreate", "-s", "1m", &vg, &dev_path]);
    assert!(ok, "vgcreate on our PV: {err}");
    let dev = OpenOptions::new().read(true).open(&lo.path).unwrap();
    let l = label::read_label(&dev).unwrap();
    assert_eq!(l.pv_id, id);
    assert_eq!(l.extension.unwrap().flags & PV_EXT_USED, PV_EXT_USED);
    let (ok, out, err) = lvm(&[
        "vgs",
        "--noheadings",
        "-o",
        "vg_extent_count",
        "--nosuffix",
        &vg,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "15");
    let (ok, _, err) = lvm(&["vgremove", "-y", &vg]);
    assert!(ok, "{err}");
    // Our wipe makes it an ordinary device for lvm2 again.
    {
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lo.path)
            .unwrap();
        pv::wipe_pv(&dev).unwrap();
    }
    let (ok, _, err) = lvm(&["pvs", &dev_path]);
    assert!(!ok, "pvs still sees a PV after wipe_pv: {err}");
}

#[test]
fn lvm2_pvcreate_output_is_read_and_updated_by_us() {
    let test = "lvm2_pvcreate_output_is_read_and_updated_by_us";
    crate::ok_or_skip!(test, lvm2_available());
    println!("PRIVILEGED-TEST-RAN {test}");
    let lo = LoopDev::new(8 << 20);
    let dev_path = lo.path.to_str().unwrap().to_string();
    let (ok, _, err) = lvm(&["pvcreate", "-y", &dev_path]);
    assert!(ok, "{err}");
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lo.path)
        .unwrap();
    let l = label::read_label(&dev).unwrap();
    assert_eq!(l.metadata_areas[0].offset, 4096);
    // Setting the flag on an orphan makes lvm2 report it as used by an unknown VG.
    pv::set_in_vg(&dev, true).unwrap();
    let (_, out, err) = lvm(&["pvs", "--noheadings", "-o", "pv_in_use", &dev_path]);
    assert!(
        out.contains("used") || err.contains("used"),
        "lvm2 did not see PV_EXT_USED: {out} {err}"
    );
    pv::set_in_vg(&dev, false).unwrap();
    let (ok, _, err) = lvm(&["pvremove", "-y", &dev_path]);
    assert!(ok, "pvremove after our flag round trip: {err}");
}

#[test]
fn lvm2_refuses_the_names_we_refuse() {
    let test = "lvm2_refuses_the_names_we_refuse";
    crate::ok_or_skip!(test, lvm2_available());
    println!("PRIVILEGED-TEST-RAN {test}");
    let lo = LoopDev::new(16 << 20);
    let dev_path = lo.path.to_str().unwrap().to_string();
    let vg = unique("hn");
    let (ok, _, err) = lvm(&["vgcreate", "-s", "1m", &vg, &dev_path]);
    assert!(ok, "{err}");
    let long = "l".repeat(128 - vg.len() - 3);
    let lv_names: Vec<String> = [
        "ok",
        "a.b+c_d-e",
        "-x",
        ".",
        "..",
        "..x",
        "a b",
        "a:b",
        "a%b",
        "snapshot",
        "snapshot7",
        "pvmove0",
        "mysnapshot",
        "x_tdata",
        "x_tmeta",
        "x_rimage_0",
        "x_mlog",
        "x_pmspare",
        "x_vorigin",
        "x_cvol",
        "x_imeta",
        "tdata",
        "lvol0",
        "Snapshot",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([long.clone(), long[1..].to_string()])
    .collect();
    let mut agree = 0;
    for n in &lv_names {
        // --test: lvm2 runs its checks and the allocation, then writes nothing.
        let (ok, _, err) = lvm(&["lvcreate", "--test", "-an", "-Zn", "-l", "1", "-n", n, &vg]);
        let ours = names::check_lv_name(&vg, n);
        assert_eq!(
            ok,
            ours.is_ok(),
            "LV name {n:?}: lvm2 said {err:?}, we said {ours:?}"
        );
        if let Err(e) = &ours
            && !matches!(e.reason, names::NameReason::DevNameTooLong { .. })
        {
            // lvm2 prints one of our sentences (the length rule is an internal error in
            // lvm2, worded differently).
            let ours = e.to_string();
            assert!(
                ours.split(". ")
                    .any(|s| err.contains(s.trim_end_matches('.'))),
                "LV {n:?}: lvm2 said {err:?}, we say {ours:?}"
            );
        }
        agree += 1;
    }
    let mut vg_names: Vec<String> = ["vgok", "a b", "mapper", "disk", "zero", "..", "x_tdata"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vg_names.push("v".repeat(128));
    for n in &vg_names {
        let (ok, _, err) = lvm(&["vgcreate", "--test", n, &dev_path]);
        let ours = names::check_new_vg_name(n, Path::new("/dev"));
        // The device is in a VG already: lvm2 refuses every name after checking it, so
        // compare the name refusal itself.
        let lvm2_refused_name =
            err.contains("is invalid") || err.contains("already exists in filesystem");
        assert_eq!(
            lvm2_refused_name,
            ours.is_err(),
            "VG name {n:?}: lvm2 said {ok} {err:?}, we said {ours:?}"
        );
        agree += 1;
    }
    println!(
        "names: {agree} of {} agree with lvm2",
        lv_names.len() + vg_names.len()
    );
    let (ok, _, err) = lvm(&["vgremove", "-y", &vg]);
    assert!(ok, "{err}");
    drop(lo);
}
