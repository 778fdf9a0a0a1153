//! The LVM writing commands (`dmsnap lvm pvcreate ... pvremove`, `lvs`) against lvm2 as
//! the oracle, on loop devices, with the real kernel:
//!
//! - the seed walkthrough "upgrade safety net with the logical volume manager" done with
//!   dmsnap alone (pvcreate, vgcreate, lvcreate 12M, mkfs.ext4, mount, files, umount,
//!   lvremove, vgremove, pvremove) while lvm2's `pvs`, `vgs`, `lvs`, `vgck` and
//!   `dmsetup table` agree after every step;
//! - interop both ways (lvm2 creates and dmsnap removes, and the reverse, lvm2 writing
//!   over metadata dmsnap wrote);
//! - hundreds of commits, so the metadata ring wraps several times, lvm2 reading every
//!   one of them;
//! - lvm2's `lvcreate`/`lvremove` in a loop beside dmsnap's on the same VG: no update
//!   lost, seqno = number of commits, `vgck` clean;
//! - SIGKILL of dmsnap at random moments: all-or-nothing, `vgck` clean, nothing
//!   suspended;
//! - bad input changes nothing (too large, duplicate, invalid and reserved names, an open
//!   LV, a device holding a filesystem, a VG that is not empty).

use crate::common::{lvm, lvm_try};
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use devmapper::DeviceMapper;
use devmapper::lvm::label::read_label;
use devmapper::lvm::mda::read_mda_header;

use crate::common::{self, LoopDev, assert_nothing_suspended, output, pattern};

/// lvm2 and dmsetup usable here, or why not.
fn tools() -> Result<(), String> {
    for t in ["lvm", "dmsetup", "mkfs.ext4"] {
        match Proc::new(t)
            .arg(if t == "mkfs.ext4" { "-V" } else { "version" })
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
        {
            Ok(_) => {}
            Err(e) => return Err(format!("{t} not found: {e}")),
        }
    }
    Ok(())
}

/// A test's context: dm handle, dmsnap binary, its devices.
struct Ctx {
    dm: DeviceMapper,
    bin: PathBuf,
}

fn setup(test: &str) -> Option<Ctx> {
    let dm = common::dm_or_skip(test)?;
    if let Err(why) = tools() {
        common::skip(test, &why);
        return None;
    }
    let bin = common::dmsnap_or_skip(test)?;
    Some(Ctx { dm, bin })
}

/// The `--devices` list for lvm2 and dmsnap.
fn devlist(devs: &[&LoopDev]) -> String {
    devs.iter()
        .map(|d| d.path.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Ctx {
    /// dmsnap, which must succeed; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = output(&self.bin, args);
        assert!(ok, "dmsnap {} failed: {err}", args.join(" "));
        out
    }

    /// dmsnap, which must fail as dmsnap fails (exit 1, nothing on stdout); stderr.
    fn fails(&self, args: &[&str]) -> String {
        common::fails(&self.bin, args)
    }
}

/// A VG name unique to this process.
fn vg_name(tag: &str) -> String {
    format!("dmt{}{tag}", std::process::id())
}

/// Removes whatever is left of a VG (with lvm2) and the PV labels when dropped.
struct VgGuard {
    vg: String,
    devs: String,
}

impl Drop for VgGuard {
    fn drop(&mut self) {
        let d = self.devs.as_str();
        let _ = lvm_try(&["vgchange", "-an", "--devices", d, &self.vg]);
        let _ = lvm_try(&["vgremove", "-ff", "-y", "--devices", d, &self.vg]);
        for p in d.split(',') {
            let _ = lvm_try(&["pvremove", "-ff", "-y", "--devices", d, p]);
        }
    }
}

/// `vgck` finds nothing: exit 0 and no warning.
fn vgck_clean(vg: &str, devs: &str) {
    let (ok, out, err) = lvm_try(&["vgck", "--devices", devs, vg]);
    assert!(
        ok && !err.contains("WARNING") && !out.contains("WARNING"),
        "vgck {vg}: {err}{out}"
    );
}

/// lvm2's seqno of the VG.
fn seqno(vg: &str, devs: &str) -> u64 {
    let (ok, out, err) = lvm_try(&[
        "vgs",
        "--noheadings",
        "-o",
        "vg_seqno",
        "--devices",
        devs,
        vg,
    ]);
    assert!(ok, "vgs {vg}: {err}");
    assert!(!err.contains("WARNING"), "vgs {vg} warns: {err}");
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("seqno of {vg}: {out:?}"))
}

/// lvm2's LVs of the VG: name -> (attr, size in sectors).
fn lvm2_lvs(vg: &str, devs: &str) -> Vec<(String, String, u64)> {
    let out = lvm(&[
        "lvs",
        "--noheadings",
        "--nosuffix",
        "--units",
        "s",
        "--separator",
        "|",
        "-o",
        "lv_name,lv_attr,lv_size",
        "--devices",
        devs,
        vg,
    ]);
    let mut v: Vec<(String, String, u64)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].trim().parse().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// dmsnap's `lvs --json` of the VG, in the same form.
fn dmsnap_lvs(c: &Ctx, vg: &str, devs: &str) -> Vec<(String, String, u64)> {
    let out = c.ok(&["lvm", "lvs", "--json", "--devices", devs, vg]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut v: Vec<(String, String, u64)> = j["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["attr"].as_str().unwrap().to_string(),
                r["size_sectors"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// lvm2 and dmsnap agree on the VG: seqno, LVs with attrs and sizes; vgck clean.
fn agree(c: &Ctx, vg: &str, devs: &str, want_seqno: u64, want_lvs: &[&str]) {
    assert_eq!(seqno(vg, devs), want_seqno, "seqno of {vg}");
    vgck_clean(vg, devs);
    let theirs = lvm2_lvs(vg, devs);
    let ours = dmsnap_lvs(c, vg, devs);
    assert_eq!(ours, theirs, "dmsnap lvs vs lvm2 lvs of {vg}");
    let names: BTreeSet<&str> = theirs.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, want_lvs.iter().copied().collect(), "LVs of {vg}");
}

/// `dmsetup table NAME` (None when there is no such device).
fn dm_table(name: &str) -> Option<String> {
    let out = Proc::new("dmsetup").args(["table", name]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The dm name of VG/LV (dashes doubled).
fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The `/dev/dm-N` node of a dm device.
fn dm_node(c: &Ctx, name: &str) -> PathBuf {
    let n = devmapper::DmName::new(name).unwrap();
    PathBuf::from(format!("/dev/dm-{}", c.dm.info(&n).unwrap().dev.minor))
}

fn major_minor(d: &LoopDev) -> String {
    d.devnum().to_string()
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Proc::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device of `mib` MiB filled with a pattern at the start (so "zeroed" means
/// something).
fn junk_loop(mib: u64, seed: u64) -> LoopDev {
    let d = LoopDev::new(mib << 20);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&d.path)
        .unwrap();
    let junk = pattern(seed, 8 << 20);
    f.write_all_at(&junk, 0).unwrap();
    f.sync_all().unwrap();
    // The pattern holds no signature the probe knows (checked by pvcreate below).
    d
}

#[test]
fn lvm_write_seed_walkthrough() {
    let test = "lvm_write_seed_walkthrough";
    let Some(c) = setup(test) else { return };
    let pv = junk_loop(64, 11);
    let p = pv.path.to_str().unwrap();
    let devs = devlist(&[&pv]);
    let vg = vg_name("seed");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    // pvcreate: lvm2 sees an orphan PV with our uuid and lvm2's default layout.
    let out = c.ok(&["lvm", "pvcreate", p]);
    assert!(
        out.contains(&format!("Physical volume \"{p}\" successfully created.")),
        "{out}"
    );
    let pvs = lvm(&[
        "pvs",
        "--noheadings",
        "--units",
        "s",
        "--nosuffix",
        "--separator",
        "|",
        "-o",
        "pv_name,vg_name,pe_start,pv_mda_count,pv_mda_size",
        "--devices",
        &devs,
    ]);
    let f: Vec<&str> = pvs.trim().split('|').collect();
    assert_eq!(f[0], p, "{pvs}");
    assert_eq!(f[1], "", "an orphan: {pvs}");
    assert_eq!(f[2].trim(), "2048", "pe_start 1 MiB: {pvs}");
    assert_eq!(f[3].trim(), "1", "one metadata area: {pvs}");
    let label = read_label(&File::open(&pv.path).unwrap()).unwrap();
    assert_eq!(
        label.metadata_areas[0].offset, 4096,
        "metadata area at 4 KiB"
    );
    // vgcreate: seqno 1, 4 MiB extents, 15 extents on 64 MiB - 1 MiB.
    let out = c.ok(&["lvm", "vgcreate", &vg, p]);
    assert!(
        out.contains(&format!("Volume group \"{vg}\" successfully created")),
        "{out}"
    );
    let vgs = lvm(&[
        "vgs",
        "--noheadings",
        "--units",
        "s",
        "--nosuffix",
        "--separator",
        "|",
        "-o",
        "vg_name,pv_count,lv_count,vg_extent_size,vg_extent_count,vg_free_count",
        "--devices",
        &devs,
        &vg,
    ]);
    let f: Vec<&str> = vgs.trim().split('|').collect();
    assert_eq!(
        &f[..],
        &[vg.as_str(), "1", "0", "8192", "15", "15"],
        "{vgs}"
    );
    agree(&c, &vg, &devs, 1, &[]);
    // lvcreate 12M, with the default device scan (sysfs, as lvm2 does).
    let out = c.ok(&["lvm", "lvcreate", &format!("{vg}/lv0"), "--size", "12M"]);
    assert!(out.contains("Logical volume \"lv0\" created."), "{out}");
    agree(&c, &vg, &devs, 2, &["lv0"]);
    let theirs = lvm2_lvs(&vg, &devs);
    assert_eq!(theirs[0].1, "-wi-a-----", "{theirs:?}");
    assert_eq!(theirs[0].2, 24576);
    let name = dm_name(&vg, "lv0");
    assert_eq!(
        dm_table(&name).as_deref(),
        Some(format!("0 24576 linear {} 2048", major_minor(&pv)).as_str()),
        "dmsetup table {name}"
    );
    let node = dm_node(&c, &name);
    // lvm2 zeroes the first 4 KiB of a new LV: so do we (the PV held a pattern there).
    let head = common::read(&node, 8192);
    assert!(
        head[..4096].iter().all(|&b| b == 0),
        "first 4 KiB of the new LV not zeroed"
    );
    assert_ne!(
        &head[4096..],
        &vec![0u8; 4096][..],
        "more than 4 KiB zeroed"
    );
    // mkfs, mount, files.
    run_ok(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            node.to_str().unwrap(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    nix::mount::mount(
        Some(&node),
        dir.path(),
        Some("ext4"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let data = pattern(5, 1 << 20);
    std::fs::write(dir.path().join("file"), &data).unwrap();
    nix::unistd::sync();
    // Mounted: lvs says open, lvremove refuses and changes nothing.
    assert_eq!(dmsnap_lvs(&c, &vg, &devs)[0].1, "-wi-ao----");
    let err = c.fails(&["lvm", "lvremove", &format!("{vg}/lv0"), "--devices", &devs]);
    assert!(
        err.contains(&format!("Logical volume {vg}/lv0 in use.")),
        "{err}"
    );
    agree(&c, &vg, &devs, 2, &["lv0"]);
    assert!(dm_table(&name).is_some());
    let mut umounted = false;
    for _ in 0..50 {
        if nix::mount::umount(dir.path()).is_ok() {
            umounted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(umounted, "umount");
    // The file is there on the LV, read through a fresh mount by e2fsck-clean ext4.
    run_ok("e2fsck", &["-fn", node.to_str().unwrap()]);
    // lvremove: the device goes, seqno 3.
    let out = c.ok(&["lvm", "lvremove", &format!("{vg}/lv0"), "--devices", &devs]);
    assert!(
        out.contains("Logical volume \"lv0\" successfully removed."),
        "{out}"
    );
    assert_eq!(dm_table(&name), None, "{name} still there");
    agree(&c, &vg, &devs, 3, &[]);
    // vgremove: lvm2 no longer finds the VG; the PV is an orphan again.
    let out = c.ok(&["lvm", "vgremove", &vg, "--devices", &devs]);
    assert!(
        out.contains(&format!("Volume group \"{vg}\" successfully removed")),
        "{out}"
    );
    let (ok, _, err) = lvm_try(&["vgs", "--devices", &devs, &vg]);
    assert!(!ok && err.contains("not found"), "{err}");
    let pvs = lvm(&[
        "pvs",
        "--noheadings",
        "-o",
        "pv_name,vg_name",
        "--devices",
        &devs,
    ]);
    assert_eq!(pvs.split_whitespace().collect::<Vec<_>>(), [p], "{pvs}");
    let (_, _, err) = lvm_try(&["pvs", "--devices", &devs, p]);
    assert!(!err.contains("WARNING"), "{err}");
    // pvremove: no PV left.
    let out = c.ok(&["lvm", "pvremove", p]);
    assert!(out.contains("successfully wiped"), "{out}");
    let (ok, _, _) = lvm_try(&["pvs", "--devices", &devs, p]);
    assert!(!ok, "lvm2 still sees a PV on {p}");
    assert!(read_label(&File::open(&pv.path).unwrap()).is_err());
}

#[test]
fn lvm_write_interop_lvm2_creates_dmsnap_removes() {
    let test = "lvm_write_interop_lvm2_creates_dmsnap_removes";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(64 << 20);
    let b = LoopDev::new(64 << 20);
    let (pa, pb) = (a.path.to_str().unwrap(), b.path.to_str().unwrap());
    let devs = devlist(&[&a, &b]);
    let vg = vg_name("l2d");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    lvm(&["pvcreate", "-y", "--devices", &devs, pa, pb]);
    lvm(&["vgcreate", "--devices", &devs, &vg, pa, pb]);
    lvm(&[
        "lvcreate",
        "-y",
        "--devices",
        &devs,
        "-n",
        "lin",
        "-L",
        "8M",
        &vg,
    ]);
    lvm(&[
        "lvcreate",
        "-y",
        "--devices",
        &devs,
        "-n",
        "str",
        "-i",
        "2",
        "-I",
        "64k",
        "-L",
        "16M",
        &vg,
    ]);
    let s0 = seqno(&vg, &devs);
    agree(&c, &vg, &devs, s0, &["lin", "str"]);
    // dmsnap removes lvm2's active LVs and adds its own.
    c.ok(&["lvm", "lvremove", &format!("{vg}/lin"), "--devices", &devs]);
    assert_eq!(dm_table(&dm_name(&vg, "lin")), None);
    agree(&c, &vg, &devs, s0 + 1, &["str"]);
    c.ok(&[
        "lvm",
        "lvcreate",
        &format!("{vg}/ours"),
        "-L",
        "8M",
        "--devices",
        &devs,
    ]);
    agree(&c, &vg, &devs, s0 + 2, &["ours", "str"]);
    // lvm2 writes over metadata dmsnap wrote (a no-op change, then a removal).
    lvm(&[
        "lvchange",
        "--devices",
        &devs,
        "--addtag",
        "t1",
        &format!("{vg}/ours"),
    ]);
    lvm(&["lvremove", "-y", "--devices", &devs, &format!("{vg}/str")]);
    agree(&c, &vg, &devs, s0 + 4, &["ours"]);
    c.ok(&["lvm", "lvremove", &format!("{vg}/ours"), "--devices", &devs]);
    c.ok(&["lvm", "vgremove", &vg, "--devices", &devs]);
    c.ok(&["lvm", "pvremove", pa, pb]);
    let (ok, _, _) = lvm_try(&["pvs", "--devices", &devs, pa]);
    assert!(!ok);
    assert_nothing_suspended(&c.dm, &vg);
}

#[test]
fn lvm_write_interop_dmsnap_creates_lvm2_removes() {
    let test = "lvm_write_interop_dmsnap_creates_lvm2_removes";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(64 << 20);
    let b = LoopDev::new(64 << 20);
    let (pa, pb) = (a.path.to_str().unwrap(), b.path.to_str().unwrap());
    let devs = devlist(&[&a, &b]);
    let vg = vg_name("d2l");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    c.ok(&["lvm", "pvcreate", pa, pb]);
    c.ok(&["lvm", "vgcreate", &vg, pa, pb, "--devices", &devs]);
    c.ok(&[
        "lvm",
        "lvcreate",
        &format!("{vg}/lin"),
        "-L",
        "10M",
        "--devices",
        &devs,
    ]);
    let out = c.ok(&[
        "lvm",
        "lvcreate",
        &format!("{vg}/str"),
        "-L",
        "16M",
        "--stripes",
        "2",
        "--stripe-size",
        "64k",
        "--devices",
        &devs,
    ]);
    assert!(!out.contains("Rounding"), "{out}");
    // 10M rounds up to 12M, with lvm2's notice.
    agree(&c, &vg, &devs, 3, &["lin", "str"]);
    let segs = lvm(&[
        "lvs",
        "--noheadings",
        "--separator",
        "|",
        "-o",
        "lv_name,segtype,stripes,stripe_size",
        "--devices",
        &devs,
        &vg,
    ]);
    assert!(segs.contains("str|striped|2|64.00k"), "{segs}");
    assert!(segs.contains("lin|linear|1|0"), "{segs}");
    // The tables lvm2 would load are the ones we loaded.
    let t = dm_table(&dm_name(&vg, "str")).unwrap();
    assert!(t.starts_with("0 32768 striped 2 128 "), "{t}");
    lvm(&[
        "lvchange",
        "--devices",
        &devs,
        "--addtag",
        "x",
        &format!("{vg}/lin"),
    ]);
    lvm(&[
        "lvremove",
        "-y",
        "--devices",
        &devs,
        &format!("{vg}/lin"),
        &format!("{vg}/str"),
    ]);
    vgck_clean(&vg, &devs);
    lvm(&["vgremove", "--devices", &devs, &vg]);
    lvm(&["pvremove", "--devices", &devs, pa, pb]);
    assert_nothing_suspended(&c.dm, &vg);
}

/// slot 0's offset in the PV's metadata area.
fn committed_offset(dev: &Path) -> u64 {
    let f = File::open(dev).unwrap();
    let label = read_label(&f).unwrap();
    let h = read_mda_header(&f, label.metadata_areas[0]).unwrap();
    h.committed().unwrap().offset
}

/// A VG change through the library (the commit path the commands use, without a
/// process start per commit): add or remove LV `name`.
fn library_commit(vg: &str, dev: &Path, add: Option<&str>, remove: Option<&str>) {
    use devmapper::lvm::write::ops::{self, LvCreate};
    use devmapper::lvm::write::session::WriteOptions;
    let mut o = WriteOptions::new("lvm_write test");
    o.devices = Some(vec![dev.to_path_buf()]);
    if let Some(n) = add {
        let req = LvCreate {
            activate: false,
            zero: false,
            ..LvCreate::size("1M").unwrap()
        };
        ops::lvcreate(vg, n, &req, &o).unwrap();
    }
    if let Some(n) = remove {
        ops::lvremove(vg, n, &o).unwrap();
    }
}

#[test]
fn lvm_write_ring_wraps() {
    let test = "lvm_write_ring_wraps";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(256 << 20);
    let pa = a.path.to_str().unwrap();
    let devs = devlist(&[&a]);
    let vg = vg_name("ring");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    // A small metadata ring (lvm2's own pvcreate: about 60 KiB) so that a few commits
    // go round it.
    lvm(&[
        "pvcreate",
        "-y",
        "--devices",
        &devs,
        "--metadatasize",
        "32k",
        "--dataalignment",
        "64k",
        pa,
    ]);
    c.ok(&[
        "lvm",
        "vgcreate",
        &vg,
        pa,
        "--devices",
        &devs,
        "--extent-size",
        "1M",
    ]);
    {
        let f = File::open(&a.path).unwrap();
        let mda = read_label(&f).unwrap().metadata_areas[0];
        assert!(mda.size < 128 << 10, "metadata area of {} bytes", mda.size);
    }
    // Each copy about 4 KiB with 10 LVs: some 7 commits per turn of the ring.
    let mut n = 1;
    for i in 0..10 {
        library_commit(&vg, &a.path, Some(&format!("base{i:03}")), None);
        n += 1;
    }
    assert_eq!(seqno(&vg, &devs), n);
    let mut wraps = 0;
    let mut last = committed_offset(&a.path);
    let mut i = 0;
    while wraps < 3 {
        let lv = format!("spin{i}");
        library_commit(&vg, &a.path, Some(&lv), None);
        library_commit(&vg, &a.path, None, Some(&lv));
        n += 2;
        let off = committed_offset(&a.path);
        if off < last {
            wraps += 1;
            // lvm2 reads the copy just past the wrap, and writes one itself.
            assert_eq!(seqno(&vg, &devs), n, "after wrap {wraps}");
            vgck_clean(&vg, &devs);
            lvm(&[
                "lvcreate",
                "-an",
                "-Zn",
                "-y",
                "--devices",
                &devs,
                "-n",
                &format!("l2w{wraps}"),
                "-L",
                "1M",
                &vg,
            ]);
            n += 1;
            // The dmsnap CLI writes on after lvm2.
            c.ok(&[
                "lvm",
                "lvremove",
                &format!("{vg}/l2w{wraps}"),
                "--devices",
                &devs,
            ]);
            n += 1;
            assert_eq!(seqno(&vg, &devs), n);
        }
        last = committed_offset(&a.path);
        i += 1;
        assert!(i < 200, "the ring did not wrap");
    }
    println!("{test}: {n} commits, the ring wrapped {wraps} times");
    assert_eq!(seqno(&vg, &devs), n);
    vgck_clean(&vg, &devs);
    assert_eq!(lvm2_lvs(&vg, &devs).len(), 10);
}

#[test]
fn lvm_write_beside_lvm2() {
    let test = "lvm_write_beside_lvm2";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(512 << 20);
    let pa = a.path.to_str().unwrap().to_string();
    let devs = devlist(&[&a]);
    let vg = vg_name("race");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    c.ok(&["lvm", "vgcreate", &vg, &pa, "--devices", &devs]);
    // lvm2's commits per command, measured alone first.
    let s = seqno(&vg, &devs);
    lvm(&[
        "lvcreate",
        "-an",
        "-Zn",
        "-y",
        "--devices",
        &devs,
        "-n",
        "cal",
        "-L",
        "4M",
        &vg,
    ]);
    let per_create = seqno(&vg, &devs) - s;
    lvm(&["lvremove", "-y", "--devices", &devs, &format!("{vg}/cal")]);
    let per_remove = seqno(&vg, &devs) - s - per_create;
    let start = seqno(&vg, &devs);
    let n = 15;
    let (vg2, devs2) = (vg.clone(), devs.clone());
    let theirs = std::thread::spawn(move || {
        for i in 0..n {
            let lv = format!("l{i}");
            lvm(&[
                "lvcreate",
                "-an",
                "-Zn",
                "-y",
                "--devices",
                &devs2,
                "-n",
                &lv,
                "-L",
                "4M",
                &vg2,
            ]);
            if i % 2 == 0 {
                lvm(&[
                    "lvremove",
                    "-y",
                    "--devices",
                    &devs2,
                    &format!("{vg2}/{lv}"),
                ]);
            }
        }
    });
    let mut ours_commits = 0;
    for i in 0..n {
        let lv = format!("{vg}/d{i}");
        c.ok(&["lvm", "lvcreate", &lv, "-L", "4M", "--devices", &devs]);
        ours_commits += 1;
        if i % 3 == 0 {
            c.ok(&["lvm", "lvremove", &lv, "--devices", &devs]);
            ours_commits += 1;
        }
    }
    theirs.join().unwrap();
    let lvm2_removed = (0..n).filter(|i| i % 2 == 0).count() as u64;
    let lvm2_commits = n as u64 * per_create + lvm2_removed * per_remove;
    assert_eq!(
        seqno(&vg, &devs),
        start + lvm2_commits + ours_commits,
        "every commit counted once (lvm2: {per_create} per lvcreate, {per_remove} per lvremove)"
    );
    let mut want: Vec<String> = Vec::new();
    for i in 0..n {
        if i % 2 != 0 {
            want.push(format!("l{i}"));
        }
        if i % 3 != 0 {
            want.push(format!("d{i}"));
        }
    }
    let want_ref: Vec<&str> = want.iter().map(String::as_str).collect();
    agree(&c, &vg, &devs, seqno(&vg, &devs), &want_ref);
    assert_nothing_suspended(&c.dm, &vg);
}

/// Run dmsnap and SIGKILL it after `delay`: `true` when it was killed, `false` when it
/// finished first (it must have succeeded then).
fn kill_after(c: &Ctx, args: &[&str], delay: Duration) -> bool {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Proc::new(&c.bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < delay {
        if let Some(st) = child.try_wait().unwrap() {
            let msg = std::fs::read_to_string(err.path()).unwrap_or_default();
            assert!(st.success(), "dmsnap {args:?} failed: {msg}");
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    let st = child.wait().unwrap();
    if st.code() == Some(0) {
        return false;
    }
    let msg = std::fs::read_to_string(err.path()).unwrap_or_default();
    assert!(st.code().is_none(), "dmsnap {args:?} failed: {msg}");
    true
}

#[test]
fn lvm_write_sigkill_all_or_nothing() {
    let test = "lvm_write_sigkill_all_or_nothing";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(256 << 20);
    let pa = a.path.to_str().unwrap().to_string();
    let devs = devlist(&[&a]);
    let vg = vg_name("kill");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    c.ok(&["lvm", "vgcreate", &vg, &pa, "--devices", &devs]);
    // How long an lvcreate takes here: kills land from 0 to 1.5 times that.
    let t = Instant::now();
    c.ok(&[
        "lvm",
        "lvcreate",
        &format!("{vg}/probe"),
        "-L",
        "4M",
        "--devices",
        &devs,
    ]);
    let full = t.elapsed();
    c.ok(&[
        "lvm",
        "lvremove",
        &format!("{vg}/probe"),
        "--devices",
        &devs,
    ]);
    let mut seed = 0x5eed_u64;
    let mut rnd = |max: Duration| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        max.mul_f64((seed % 1000) as f64 / 1000.0)
    };
    let mut outcomes = [0usize; 2];
    let mut killed = 0;
    let mut killed_after_commit = 0;
    for i in 0..10 {
        let lv = format!("k{i}");
        let before = seqno(&vg, &devs);
        let create = [
            "lvm",
            "lvcreate",
            &format!("{vg}/{lv}"),
            "-L",
            "4M",
            "--devices",
            &devs,
        ];
        // Kills from half a run to 1.5 runs: the commit comes late in a run.
        let k = kill_after(&c, &create, full.mul_f64(0.5) + rnd(full));
        if k {
            killed += 1;
        }
        let after = seqno(&vg, &devs);
        vgck_clean(&vg, &devs);
        assert_nothing_suspended(&c.dm, &vg);
        let present = lvm2_lvs(&vg, &devs).iter().any(|(n, _, _)| *n == lv);
        match after - before {
            0 => {
                assert!(!present, "{lv} listed at the old seqno");
                assert_eq!(
                    dm_table(&dm_name(&vg, &lv)),
                    None,
                    "a device for {lv}, not in the metadata"
                );
                outcomes[0] += 1;
            }
            1 => {
                assert!(present, "{lv} missing at the new seqno");
                outcomes[1] += 1;
                if k {
                    killed_after_commit += 1;
                }
                // Finish what the kill interrupted: `dmsnap lvm activate` brings the LV
                // up with the table lvm2 would load.
                if k {
                    c.ok(&["lvm", "activate", &vg, "--lv", &lv, pa.as_str()]);
                }
                let want = format!("0 8192 linear {} ", major_minor(&a));
                let got = dm_table(&dm_name(&vg, &lv)).unwrap_or_default();
                assert!(got.starts_with(&want), "{lv}: table {got:?}");
                assert_nothing_suspended(&c.dm, &vg);
                // Then remove it, killed at random too.
                let before = seqno(&vg, &devs);
                let remove = ["lvm", "lvremove", &format!("{vg}/{lv}"), "--devices", &devs];
                kill_after(&c, &remove, full.mul_f64(0.3) + rnd(full));
                let after = seqno(&vg, &devs);
                vgck_clean(&vg, &devs);
                assert_nothing_suspended(&c.dm, &vg);
                let present = lvm2_lvs(&vg, &devs).iter().any(|(n, _, _)| *n == lv);
                assert_eq!(present, after == before, "{lv}: seqno {before} -> {after}");
                if present {
                    lvm(&["lvremove", "-y", "--devices", &devs, &format!("{vg}/{lv}")]);
                } else {
                    assert_eq!(
                        dm_table(&dm_name(&vg, &lv)),
                        None,
                        "{lv} removed from the metadata, device left"
                    );
                }
            }
            d => panic!("one lvcreate made {d} commits"),
        }
    }
    println!(
        "{test}: {killed} lvcreate runs killed at random moments (a full run took {full:?}): \
         {} before the commit, {killed_after_commit} after it; {} at the new seqno in all",
        outcomes[0], outcomes[1]
    );
    vgck_clean(&vg, &devs);
}

/// Each state a command killed between its create and its resume can leave (the LV's
/// device made with no table; made and loaded, not resumed; suspended): `dmsnap lvm
/// activate --lv` finishes it with the planned table instead of creating it again.
#[test]
fn lvm_activate_lv_finishes_half_made_device() {
    use devmapper::{CreateOptions, DmName, DmUuid, LoadOptions, SuspendOptions, Which};
    let test = "lvm_activate_lv_finishes_half_made_device";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(64 << 20);
    let pa = a.path.to_str().unwrap().to_string();
    let devs = devlist(&[&a]);
    let vg = vg_name("half");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    c.ok(&["lvm", "vgcreate", &vg, &pa, "--devices", &devs]);
    let lv = format!("{vg}/h");
    c.ok(&["lvm", "lvcreate", &lv, "-L", "4M", "--devices", &devs]);
    let name = DmName::new(&dm_name(&vg, "h")).unwrap();
    let want = dm_table(name.as_str()).expect("the LV's table");
    let info = c.dm.info(&name).unwrap();
    let uuid = DmUuid::new(info.uuid.as_deref().unwrap()).unwrap();
    let live: devmapper::table::Table = c.dm.table(&name, Which::Live).unwrap();
    for state in ["no table", "inactive table only", "suspended"] {
        match state {
            "suspended" => {
                c.dm.suspend(&name, SuspendOptions::default()).unwrap();
            }
            _ => {
                c.dm.remove(&name, devmapper::RemoveMode::Now).unwrap();
                c.dm.create(&name, CreateOptions::default().uuid(uuid.clone()))
                    .unwrap();
                if state == "inactive table only" {
                    c.dm.load(&name, &live, LoadOptions::default()).unwrap();
                }
            }
        }
        let out = c.ok(&["lvm", "activate", &vg, "--lv", "h", pa.as_str()]);
        assert_eq!(
            dm_table(name.as_str()).as_deref(),
            Some(want.as_str()),
            "{state}: {out}"
        );
        let after = c.dm.info(&name).unwrap();
        assert!(
            after.has_live_table() && !after.suspended() && !after.has_inactive_table(),
            "{state}: {after:?}"
        );
        assert_eq!(after.uuid.as_deref(), Some(uuid.as_str()), "{state}");
        assert_nothing_suspended(&c.dm, &vg);
    }
    vgck_clean(&vg, &devs);
}

#[test]
fn lvm_write_bad_input_changes_nothing() {
    let test = "lvm_write_bad_input_changes_nothing";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(64 << 20);
    let fsdev = LoopDev::new(16 << 20);
    let pa = a.path.to_str().unwrap().to_string();
    let devs = devlist(&[&a]);
    let vg = vg_name("bad");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    // A device holding ext4 is refused, and untouched.
    run_ok("mkfs.ext4", &["-q", "-F", fsdev.path.to_str().unwrap()]);
    let before = common::read(&fsdev.path, 1 << 20);
    let err = c.fails(&["lvm", "pvcreate", fsdev.path.to_str().unwrap()]);
    assert!(
        err.contains("holds an ext4 filesystem") && err.contains("unless forced"),
        "{err}"
    );
    assert_eq!(
        common::read(&fsdev.path, 1 << 20),
        before,
        "refused pvcreate wrote"
    );
    c.ok(&["lvm", "vgcreate", &vg, &pa, "--devices", &devs]);
    c.ok(&[
        "lvm",
        "lvcreate",
        &format!("{vg}/keep"),
        "-L",
        "8M",
        "--devices",
        &devs,
    ]);
    let meta = c.ok(&["lvm", "metadata", &pa]);
    let s = seqno(&vg, &devs);
    let unchanged = |what: &str| {
        assert_eq!(seqno(&vg, &devs), s, "{what} committed");
        assert_eq!(
            c.ok(&["lvm", "metadata", &pa]),
            meta,
            "{what} changed the metadata"
        );
        vgck_clean(&vg, &devs);
        assert_nothing_suspended(&c.dm, &vg);
    };
    let lvc = |lv: &str, size: &str| {
        c.fails(&[
            "lvm",
            "lvcreate",
            &format!("{vg}/{lv}"),
            "-L",
            size,
            "--devices",
            &devs,
        ])
    };
    let err = lvc("big", "1G");
    assert!(err.contains("insufficient free space"), "{err}");
    assert_eq!(dm_table(&dm_name(&vg, "big")), None);
    unchanged("too large");
    let err = lvc("keep", "4M");
    assert!(err.contains("already exists in volume group"), "{err}");
    unchanged("duplicate");
    for bad in [
        "-lead",
        "a b",
        "x/y",
        ".",
        "snapshot0",
        "pvmove3",
        "data_tdata",
        "m_rimage_1",
        "v_vorigin",
    ] {
        let err = c.fails(&[
            "lvm",
            "lvcreate",
            &format!("{vg}/{bad}"),
            "-L",
            "4M",
            "--devices",
            &devs,
        ]);
        assert!(!err.is_empty(), "{bad}");
        unchanged(bad);
    }
    let err = lvc("zero", "0");
    assert!(
        err.contains("invalid size") || err.contains("zero"),
        "{err}"
    );
    unchanged("zero size");
    let err = lvc("unit", "12Q");
    assert!(err.contains("invalid size"), "{err}");
    unchanged("bad unit");
    // An open LV (a process holds its device).
    let node = dm_node(&c, &dm_name(&vg, "keep"));
    let holder = File::open(&node).unwrap();
    let err = c.fails(&["lvm", "lvremove", &format!("{vg}/keep"), "--devices", &devs]);
    assert!(err.contains("in use"), "{err}");
    assert!(dm_table(&dm_name(&vg, "keep")).is_some());
    unchanged("open LV");
    drop(holder);
    let err = c.fails(&["lvm", "vgremove", &vg, "--devices", &devs]);
    assert!(err.contains("still contains 1 logical volume(s)"), "{err}");
    unchanged("vgremove of a VG with an LV");
    let err = c.fails(&["lvm", "pvremove", &pa]);
    assert!(err.contains("so please use vgreduce first"), "{err}");
    unchanged("pvremove of a PV in a VG");
    let err = c.fails(&[
        "lvm",
        "vgcreate",
        &vg,
        fsdev.path.to_str().unwrap(),
        "--devices",
        &devs,
    ]);
    assert!(err.contains("already exists"), "{err}");
    unchanged("vgcreate of a name that exists");
    let err = c.fails(&["lvm", "lvremove", &format!("{vg}/nope"), "--devices", &devs]);
    assert!(
        err.contains(&format!("Failed to find logical volume \"{vg}/nope\"")),
        "{err}"
    );
    unchanged("lvremove of an LV that does not exist");
}

/// `dmsnap lvm lvs` against lvm2's `lvs` for linear and striped LVs, active and not:
/// the text columns (LV, VG, Attr, LSize, Origin, Data%, Move, Convert) row by row, and
/// every `--json` field of ../shared/design/CLI.md.
#[test]
fn lvm_write_lvs_matches_lvm2() {
    let test = "lvm_write_lvs_matches_lvm2";
    let Some(c) = setup(test) else { return };
    let a = LoopDev::new(64 << 20);
    let b = LoopDev::new(64 << 20);
    let (pa, pb) = (a.path.to_str().unwrap(), b.path.to_str().unwrap());
    let devs = devlist(&[&a, &b]);
    let vg = vg_name("lvs");
    let _g = VgGuard {
        vg: vg.clone(),
        devs: devs.clone(),
    };
    lvm(&["pvcreate", "-y", "--devices", &devs, pa, pb]);
    lvm(&["vgcreate", "--devices", &devs, &vg, pa, pb]);
    let lvc = |extra: &[&str]| {
        let mut args = vec!["lvcreate", "-y", "-Zn", "--devices", devs.as_str()];
        args.extend_from_slice(extra);
        args.push(vg.as_str());
        lvm(&args);
    };
    lvc(&["-n", "lin", "-L", "8M"]);
    lvc(&["-an", "-n", "lin_off", "-L", "12M"]);
    lvc(&["-n", "str", "-i", "2", "-I", "64k", "-L", "16M"]);
    lvc(&["-an", "-n", "str_off", "-i", "2", "-I", "128k", "-L", "24M"]);
    // Text: lvm2 with dmsnap's columns, compared field by field (column widths may
    // differ; the values may not).
    let theirs = lvm(&[
        "lvs",
        "--devices",
        &devs,
        "-o",
        "lv_name,vg_name,lv_attr,lv_size,origin,data_percent,move_pv,convert_lv",
        &vg,
    ]);
    let ours = c.ok(&["lvm", "lvs", "--devices", &devs, &vg]);
    let rows = |t: &str| {
        let mut v: Vec<Vec<String>> = t
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ours.lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "LV", "VG", "Attr", "LSize", "Origin", "Data%", "Move", "Convert"
        ]),
        "header: {ours}"
    );
    assert_eq!(
        rows(&ours),
        rows(&theirs),
        "dmsnap:\n{ours}\nlvm2:\n{theirs}"
    );
    assert_eq!(rows(&ours).len(), 4);
    // JSON: every field.
    let out = c.ok(&["lvm", "lvs", "--json", "--devices", &devs, &vg]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let got = j["lvs"].as_array().unwrap();
    let want = lvm2_lvs(&vg, &devs);
    assert_eq!(got.len(), want.len());
    for (name, attr, size) in &want {
        let r = got
            .iter()
            .find(|r| r["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        assert_eq!(r["vg"], vg.as_str(), "{name}");
        assert_eq!(r["attr"], attr.as_str(), "{name}");
        assert_eq!(r["size_sectors"].as_u64(), Some(*size), "{name}");
        for k in ["origin", "data_percent", "move", "convert"] {
            assert!(r[k].is_null(), "{name}: {k} = {}", r[k]);
        }
    }
    let active: Vec<&str> = want
        .iter()
        .filter(|(_, a, _)| a.as_bytes()[4] == b'a')
        .map(|(n, _, _)| n.as_str())
        .collect();
    assert_eq!(active, ["lin", "str"]);
}
