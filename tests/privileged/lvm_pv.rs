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
        // On disk before lvm2 reads it (lvm2 reads with O_DIRECT; seen once in the VM:
        // "Failed to find physical volume" right after the buffered write).
        dev.sync_all().unwrap();
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
fn data_alignment_gives_lvm2s_pe_start() {
    let test = "data_alignment_gives_lvm2s_pe_start";
    crate::ok_or_skip!(test, lvm2_available());
    println!("PRIVILEGED-TEST-RAN {test}");
    let size = 64u64 << 20;
    let lo = LoopDev::new(size);
    let dev_path = lo.path.to_str().unwrap().to_string();
    for (align, offset) in [(8192u64, 0u64), (2048, 7), (768, 0), (128, 0), (4096, 100)] {
        let (ok, _, err) = lvm(&[
            "pvcreate",
            "-y",
            "--dataalignment",
            &format!("{align}s"),
            "--dataalignmentoffset",
            &format!("{offset}s"),
            &dev_path,
        ]);
        assert!(ok, "{err}");
        let (ok, out, err) = lvm(&[
            "pvs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ",",
            "-o",
            "pe_start,pv_mda_size",
            &dev_path,
        ]);
        assert!(ok, "{err}");
        let ours = PvLayout::lvm2_aligned(size, align, offset).unwrap();
        assert_eq!(
            out.trim(),
            format!("{},{}", ours.pe_start * 512, ours.mda.size),
            "alignment {align}s offset {offset}s"
        );
        let (ok, _, err) = lvm(&["pvremove", "-y", &dev_path]);
        assert!(ok, "{err}");
    }
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

/// A tiny deterministic generator (no seeds to keep in sync with proptest).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn lvm2_validates_layouts_from_random_create_remove_sequences() {
    use devmapper::lvm::config;
    use devmapper::lvm::model::{AllocPolicy, LogicalVolume, VolumeGroup};
    use devmapper::lvm::write::alloc::{self, AllocRequest};
    use devmapper::lvm::write::text::{TextHeader, file_text};

    let test = "lvm2_validates_layouts_from_random_create_remove_sequences";
    crate::ok_or_skip!(test, lvm2_available());
    println!("PRIVILEGED-TEST-RAN {test}");
    let mut rng = Lcg(11);
    let (mut checked, mut lvs_checked) = (0, 0);
    for round in 0..4 {
        let npv = 1 + rng.below(3) as usize;
        let sizes: Vec<u64> = (0..npv).map(|_| 9 + rng.below(24)).collect(); // MiB
        let loops: Vec<LoopDev> = sizes.iter().map(|s| LoopDev::new(s << 20)).collect();
        let ids: Vec<LvmId> = (0..npv).map(|_| LvmId::generate().unwrap()).collect();
        for (lo, id) in loops.iter().zip(&ids) {
            let (ok, _, err) = lvm(&[
                "pvcreate",
                "-y",
                "--norestorefile",
                "--uuid",
                &id.to_string(),
                lo.path.to_str().unwrap(),
            ]);
            assert!(ok, "pvcreate --uuid: {err}");
        }
        let name = unique(&format!("hv{round}x"));
        let mut t = format!(
            "{name} {{\nid = \"{}\"\nseqno = 1\nformat = \"lvm2\"\n\
             status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nextent_size = 2048\n\
             max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\nphysical_volumes {{\n",
            LvmId::generate().unwrap()
        );
        for (i, (size, id)) in sizes.iter().zip(&ids).enumerate() {
            t.push_str(&format!(
                "pv{i} {{\nid = \"{id}\"\nstatus = [\"ALLOCATABLE\"]\ndev_size = {}\n\
                 pe_start = 2048\npe_count = {}\n}}\n",
                size * 2048,
                size - 1
            ));
        }
        t.push_str("}\n}\ncontents = \"Text Format Volume Group\"\nversion = 1\n");
        let mut vg = VolumeGroup::from_config(&config::parse(t.as_bytes()).unwrap()).unwrap();
        let mut k = 0;
        for step in 0..24 {
            if !vg.lvs.is_empty() && rng.below(3) == 0 {
                let i = rng.below(vg.lvs.len() as u64) as usize;
                vg.lvs.remove(i);
            } else {
                let stripes = if npv > 1 && rng.below(3) == 0 { 2 } else { 1 };
                let req = AllocRequest::striped(
                    format!("l{k}"),
                    1 + rng.below(12),
                    stripes,
                    if stripes > 1 { 128 } else { 0 },
                );
                if let Ok(segments) = alloc::allocate(&vg, &req) {
                    vg.lvs.push(LogicalVolume {
                        name: req.name.clone(),
                        id: LvmId::generate().unwrap(),
                        status: ["READ", "WRITE", "VISIBLE"].map(String::from).into(),
                        flags: Default::default(),
                        tags: vec![],
                        read_ahead: None,
                        major: None,
                        minor: None,
                        creation_time: Some(1),
                        creation_host: Some("h".into()),
                        lock_args: None,
                        allocation_policy: AllocPolicy::Inherit,
                        profile: None,
                        segments,
                    });
                    k += 1;
                }
            }
            alloc::check_layout(&vg).unwrap();
            if step % 6 != 5 {
                continue;
            }
            // lvm2 validates the VG (vg_validate, check_pv_segments) before writing it,
            // then vgck checks what it wrote, then a no-op change writes it once more.
            vg.seqno += 1;
            let file = std::env::temp_dir().join(format!("{name}.vg"));
            std::fs::write(&file, file_text(&vg, &TextHeader::now("test"))).unwrap();
            let (ok, _, err) = lvm(&["vgcfgrestore", "-f", file.to_str().unwrap(), &name]);
            assert!(
                ok,
                "vgcfgrestore refused our layout: {err}\n{}",
                std::fs::read_to_string(&file).unwrap()
            );
            let (ok, _, err) = lvm(&["vgck", &name]);
            assert!(ok && !err.contains("WARNING"), "vgck: {err}");
            let (ok, out, err) = lvm(&["vgs", "--noheadings", "-o", "vg_free_count", &name]);
            assert!(ok, "{err}");
            assert_eq!(out.trim(), alloc::free_extents(&vg).unwrap().to_string());
            if !vg.lvs.is_empty() {
                let (ok, _, err) = lvm(&[
                    "lvchange",
                    "--addtag",
                    "t",
                    &format!("{name}/{}", vg.lvs[0].name),
                ]);
                assert!(ok, "lvm2's own write after ours: {err}");
                vg.seqno += 1;
                vg.lvs[0].tags = vec!["t".into()];
            }
            checked += 1;
            lvs_checked += vg.lvs.len();
            std::fs::remove_file(&file).unwrap();
        }
        let (ok, _, err) = lvm(&["vgremove", "-y", "-f", &name]);
        assert!(ok, "{err}");
        drop(loops);
    }
    println!("lvm2 validated {checked} VG states ({lvs_checked} LVs) made by our allocator");
    assert!(checked >= 12);
}
