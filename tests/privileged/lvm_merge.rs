//! `dmsnap lvm merge` and the merge half of `dmsnap lvm activate` against lvm2 as the
//! oracle, on loop devices, with the real kernel:
//!
//! - merge requested with the origin mounted: delayed (lvm2's message), the origin keeps
//!   `snapshot-origin`; after the unmount `dmsnap lvm activate` starts and finishes it:
//!   the origin holds the snapshot's content (checksums), lvm2 shows no snapshot, its
//!   table is lvm2's linear one again, no `-real`/`-cow`/snapshot device left, `vgck` clean;
//! - immediate merge of an unmounted origin: `snapshot-merge` loaded at once, the origin
//!   shows the snapshot's content before the merge finishes; `--wait` finishes it;
//! - interop: a merge started by lvm2 (`lvconvert --merge`, delayed) is started and
//!   finished by `dmsnap lvm activate`; a merge delayed by dmsnap is started by lvm2's
//!   `vgchange -ay`;
//! - lvm2's snapshot-merge.sh rules: a read-only origin refused (nothing written), a
//!   merge with another snapshot present leaves that snapshot intact;
//! - reconcile: states left by an interrupted operation, made by hand (a device the
//!   metadata does not know, a suspended origin, an origin with a half-loaded table)
//!   are repaired by `dmsnap lvm activate`.
//!
//! Snapshots are made with lvm2 here (the oracle); dmsnap-made snapshots come with
//! `dmsnap lvm snapshot` (issue 12 item 3).

use crate::common::{lvm, lvm_try};
use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::PathBuf;
use std::process::Command as Proc;

use devmapper::{DeviceMapper, DmName, Which};

use crate::common::{self, LoopDev, assert_nothing_suspended, output};

const MIB: u64 = 1 << 20;

fn tools() -> Result<(), String> {
    for t in ["lvm", "dmsetup", "mkfs.ext4"] {
        Proc::new(t)
            .arg(if t == "mkfs.ext4" { "-V" } else { "version" })
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
            .map_err(|e| format!("{t} not found: {e}"))?;
    }
    Ok(())
}

fn sh(cmd: &str) {
    let st = Proc::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(st.success(), "{cmd} failed");
}

/// One VG on one loop device, made by lvm2; removed (with lvm2) on drop.
struct Vg {
    dm: DeviceMapper,
    bin: PathBuf,
    name: String,
    devs: String,
    _lo: LoopDev,
    mnt: tempfile::TempDir,
}

impl Drop for Vg {
    fn drop(&mut self) {
        let _ = Proc::new("umount").arg(self.mnt.path()).output();
        let d = self.devs.as_str();
        let _ = lvm_try(&["vgchange", "-an", "--devices", d, &self.name]);
        let _ = lvm_try(&["vgremove", "-ff", "-y", "--devices", d, &self.name]);
        let _ = lvm_try(&["pvremove", "-ff", "-y", "--devices", d, d]);
    }
}

impl Vg {
    fn new(test: &str, tag: &str) -> Option<Vg> {
        let dm = common::dm_or_skip(test)?;
        if let Err(why) = tools() {
            common::skip(test, &why);
            return None;
        }
        let bin = common::dmsnap_or_skip(test)?;
        let lo = LoopDev::new(96 * MIB);
        let devs = lo.path.display().to_string();
        let name = format!("dmm{}{tag}", std::process::id());
        lvm(&["pvcreate", "-y", "--devices", &devs, &devs]);
        lvm(&["vgcreate", "-s", "1M", "--devices", &devs, &name, &devs]);
        Some(Vg {
            dm,
            bin,
            name,
            devs,
            _lo: lo,
            mnt: tempfile::tempdir().unwrap(),
        })
    }

    fn lvm(&self, args: &[&str]) -> String {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--devices", self.devs.as_str()]);
        lvm(&a)
    }

    fn dmsnap(&self, args: &[&str]) -> (bool, String, String) {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--devices", self.devs.as_str()]);
        output(&self.bin, &a)
    }

    fn dmsnap_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.dmsnap(args);
        assert!(ok, "dmsnap {} failed: {err}{out}", args.join(" "));
        out
    }

    /// `dmsnap lvm activate VG DEVICE`.
    fn activate(&self) -> String {
        let (ok, out, err) = output(&self.bin, &["lvm", "activate", &self.name, &self.devs]);
        assert!(ok, "dmsnap lvm activate failed: {err}{out}");
        out
    }

    fn dm_name(&self, lv: &str, layer: Option<&str>) -> DmName {
        DmName::new(&devmapper::lvm::plan::dm_name(&self.name, lv, layer)).unwrap()
    }

    /// The `/dev/dm-N` node of an LV's device (devtmpfs: no udev in the VM).
    fn node(&self, lv: &str) -> PathBuf {
        let i = self.dm.info(&self.dm_name(lv, None)).unwrap();
        PathBuf::from(format!("/dev/dm-{}", i.dev.minor))
    }

    fn target(&self, lv: &str) -> String {
        let t = self
            .dm
            .table_raw(&self.dm_name(lv, None), Which::Live)
            .unwrap();
        t.first().map(|r| r.target_type.clone()).unwrap_or_default()
    }

    fn exists(&self, lv: &str, layer: Option<&str>) -> bool {
        self.dm.info(&self.dm_name(lv, layer)).is_ok()
    }

    fn hash(&self, lv: &str) -> u64 {
        let data = std::fs::read(self.node(lv)).unwrap();
        let mut h = DefaultHasher::new();
        h.write(&data);
        h.finish()
    }

    fn lvs(&self) -> Vec<(String, String)> {
        let out = self.lvm(&[
            "lvs",
            "-a",
            "--noheadings",
            "--separator",
            "|",
            "-o",
            "lv_name,lv_attr",
            &self.name,
        ]);
        let mut v: Vec<(String, String)> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (a, b) = l.trim().split_once('|').unwrap();
                (a.trim_matches(['[', ']']).to_string(), b.to_string())
            })
            .collect();
        v.sort();
        v
    }

    fn vgck_clean(&self) {
        let (ok, out, err) = lvm_try(&["vgck", "--devices", &self.devs, &self.name]);
        assert!(
            ok && !err.contains("WARNING") && !out.contains("WARNING"),
            "vgck {}: {err}{out}",
            self.name
        );
    }

    fn seqno(&self) -> u64 {
        self.lvm(&["vgs", "--noheadings", "-o", "vg_seqno", &self.name])
            .trim()
            .parse()
            .unwrap()
    }

    /// The names of the VG's dm devices.
    fn devices(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        let mut v: Vec<String> = self
            .dm
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name.to_string())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        v.sort();
        v
    }

    /// lv (16M, ext4 with a file `a`), mounted; a snapshot `snap` by lvm2; then the
    /// origin changed (file `b`, `a` rewritten). Returns the snapshot's checksum.
    fn origin_with_snapshot(&self, snap: &str) -> u64 {
        self.lvm(&["lvcreate", "-y", "-L", "16M", "-n", "lv", &self.name]);
        let node = self.node("lv");
        sh(&format!(
            "mkfs.ext4 -q -F {} >/dev/null 2>&1",
            node.display()
        ));
        let m = self.mnt.path().display().to_string();
        sh(&format!(
            "mount {} {m} && echo before > {m}/a && sync",
            node.display()
        ));
        self.lvm(&[
            "lvcreate",
            "-y",
            "-s",
            "-L",
            "8M",
            "-n",
            snap,
            &format!("{}/lv", self.name),
        ]);
        sh(&format!("echo after > {m}/a && echo new > {m}/b && sync"));
        self.hash(snap)
    }

    fn umount(&self) {
        sh(&format!("umount {}", self.mnt.path().display()));
    }

    /// After a finished merge: lvm2 sees lv alone, linear, no layer left, vgck clean.
    fn assert_merged(&self, expected: u64) {
        assert_eq!(
            self.hash("lv"),
            expected,
            "the origin holds the snapshot's content"
        );
        let lvs = self.lvs();
        assert_eq!(lvs.len(), 1, "{lvs:?}");
        assert_eq!(lvs[0].0, "lv");
        assert!(lvs[0].1.starts_with("-wi-a"), "{lvs:?}");
        assert_eq!(self.target("lv"), "linear");
        assert_eq!(self.devices(), [format!("{}-lv", self.name)]);
        self.vgck_clean();
        assert_nothing_suspended(&self.dm, &self.name);
        // The filesystem is the snapshot's.
        let m = self.mnt.path().display().to_string();
        sh(&format!(
            "mount {} {m} && grep -qx before {m}/a && test ! -e {m}/b && umount {m}",
            self.node("lv").display()
        ));
    }
}

#[test]
fn lvm_merge_delayed_while_mounted_then_activation_merges() {
    let Some(v) = Vg::new(
        "lvm_merge_delayed_while_mounted_then_activation_merges",
        "d",
    ) else {
        return;
    };
    println!("PRIVILEGED-TEST-RAN lvm_merge_delayed_while_mounted_then_activation_merges");
    let h = v.origin_with_snapshot("snap");
    let snap = format!("{}/snap", v.name);
    let out = v.dmsnap_ok(&["lvm", "merge", &snap]);
    assert!(
        out.contains("Delaying merge since origin is open."),
        "{out}"
    );
    assert!(out.contains("will occur on next activation"), "{out}");
    // Recorded for lvm2: the origin is merging ('O'), the snapshot too ('S').
    let lvs = v.lvs();
    assert!(
        lvs.iter().any(|(n, a)| n == "lv" && a.starts_with('O')),
        "{lvs:?}"
    );
    assert!(
        lvs.iter().any(|(n, a)| n == "snap" && a.starts_with('S')),
        "{lvs:?}"
    );
    v.vgck_clean();
    assert_eq!(
        v.target("lv"),
        "snapshot-origin",
        "nothing changed while mounted"
    );
    // Activation while still mounted postpones it (lvm2's rule) and changes nothing.
    v.activate();
    assert_eq!(v.target("lv"), "snapshot-origin");
    assert_eq!(v.hash("snap"), h);
    // A second merge request is refused as lvm2 refuses it.
    let (ok, _, err) = v.dmsnap(&["lvm", "merge", &snap]);
    assert!(!ok && err.contains("with merging snapshot"), "{err}");
    v.umount();
    let out = v.activate();
    assert!(out.contains("has finished"), "{out}");
    v.assert_merged(h);
}

#[test]
fn lvm_merge_immediate_and_with_another_snapshot() {
    let Some(v) = Vg::new("lvm_merge_immediate_and_with_another_snapshot", "i") else {
        return;
    };
    println!("PRIVILEGED-TEST-RAN lvm_merge_immediate_and_with_another_snapshot");
    let h = v.origin_with_snapshot("snap");
    // A second snapshot, of the changed origin: it must survive the merge of the first.
    v.lvm(&[
        "lvcreate",
        "-y",
        "-s",
        "-L",
        "8M",
        "-n",
        "other",
        &format!("{}/lv", v.name),
    ]);
    let h_other = v.hash("other");
    v.umount();
    // Read-only origin: refused with lvm2's words, nothing written.
    v.lvm(&["lvchange", "-p", "r", &format!("{}/lv", v.name)]);
    let seq = v.seqno();
    let (ok, _, err) = v.dmsnap(&["lvm", "merge", &format!("{}/snap", v.name)]);
    assert!(
        !ok && err.contains("read-only origin") && err.contains("Use lvchange -p rw"),
        "{err}"
    );
    assert_eq!(v.seqno(), seq);
    v.lvm(&["lvchange", "-p", "rw", &format!("{}/lv", v.name)]);
    // Immediate: snapshot-merge at once; the origin shows the snapshot's content already.
    let out = v.dmsnap_ok(&["lvm", "merge", &format!("{}/snap", v.name)]);
    assert!(out.contains("Merging of volume"), "{out}");
    let t = v.target("lv");
    assert!(t == "snapshot-merge", "{t}");
    assert_eq!(
        v.hash("lv"),
        h,
        "usable at once with the snapshot's content"
    );
    assert_eq!(
        v.target("snap"),
        "error",
        "the merging snapshot's device, as lvm2 loads it"
    );
    v.vgck_clean();
    // Finish through activation (no one polled).
    let out = v.activate();
    assert!(out.contains("has finished"), "{out}");
    assert_eq!(v.hash("lv"), h);
    assert_eq!(
        v.target("lv"),
        "snapshot-origin",
        "the other snapshot stays"
    );
    assert_eq!(
        v.hash("other"),
        h_other,
        "the other snapshot's content is intact"
    );
    let lvs = v.lvs();
    assert_eq!(
        lvs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["lv", "other"]
    );
    assert!(!v.exists("snap", None) && !v.exists("snap", Some("cow")));
    v.vgck_clean();
    assert_nothing_suspended(&v.dm, &v.name);
}

#[test]
fn lvm_merge_interop_with_lvm2() {
    let Some(v) = Vg::new("lvm_merge_interop_with_lvm2", "x") else {
        return;
    };
    println!("PRIVILEGED-TEST-RAN lvm_merge_interop_with_lvm2");
    // lvm2 requests, dmsnap starts and finishes.
    let h = v.origin_with_snapshot("snap");
    let out = v.lvm(&["lvconvert", "--merge", "-y", &format!("{}/snap", v.name)]);
    assert!(
        out.contains("Delaying merge since origin is open."),
        "{out}"
    );
    v.umount();
    let out = v.activate();
    assert!(out.contains("has finished"), "{out}");
    v.assert_merged(h);
    // dmsnap requests, lvm2's activation starts it.
    let m = v.mnt.path().display().to_string();
    sh(&format!(
        "mount {} {m} && echo before > {m}/a && sync",
        v.node("lv").display()
    ));
    v.lvm(&[
        "lvcreate",
        "-y",
        "-s",
        "-L",
        "8M",
        "-n",
        "snap2",
        &format!("{}/lv", v.name),
    ]);
    sh(&format!("echo after > {m}/a && echo new > {m}/b && sync"));
    let h2 = v.hash("snap2");
    let out = v.dmsnap_ok(&["lvm", "merge", &format!("{}/snap2", v.name)]);
    assert!(
        out.contains("Delaying merge since origin is open."),
        "{out}"
    );
    v.umount();
    v.lvm(&["vgchange", "-an", &v.name]);
    v.lvm(&["vgchange", "-ay", "--poll", "n", &v.name]);
    let t = v.target("lv");
    assert!(
        t == "snapshot-merge" || t == "linear",
        "lvm2 started our merge: {t}"
    );
    assert_eq!(v.hash("lv"), h2);
    // dmsnap finishes what lvm2 started and nobody polls.
    v.activate();
    v.assert_merged(h2);
}

#[test]
fn lvm_activate_reconciles_interrupted_states() {
    let Some(v) = Vg::new("lvm_activate_reconciles_interrupted_states", "r") else {
        return;
    };
    println!("PRIVILEGED-TEST-RAN lvm_activate_reconciles_interrupted_states");
    v.origin_with_snapshot("snap");
    v.umount();
    let lvm2_tables = |v: &Vg| {
        let out = Proc::new("dmsetup").args(["table"]).output().unwrap();
        let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&format!("{}-", v.name)))
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    let want = lvm2_tables(&v);
    let vgid: String = {
        let u = v.dm.info(&v.dm_name("lv", None)).unwrap().uuid.unwrap();
        u[4..36].to_string()
    };
    // 1. A device of the VG the metadata does not know (a COW LV whose commit was lost).
    let orphan = format!("{}-gone-cow", v.name);
    sh(&format!(
        "dmsetup create {orphan} --uuid LVM-{vgid}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-cow --table '0 2048 zero'"
    ));
    // 2. The origin suspended with a new table loaded (a half-done switch).
    let origin = v.dm_name("lv", None);
    sh(&format!("dmsetup load {origin} --table '0 32768 zero'"));
    sh(&format!("dmsetup suspend {origin}"));
    // 3. The snapshot suspended.
    sh(&format!("dmsetup suspend {}", v.dm_name("snap", None)));
    let out = v.activate();
    assert!(out.contains("removed"), "{out}");
    assert!(
        v.dm.info(&DmName::new(&orphan).unwrap()).is_err(),
        "orphan removed"
    );
    assert_nothing_suspended(&v.dm, &v.name);
    assert_eq!(lvm2_tables(&v), want, "the tables lvm2 loaded");
    let i = v.dm.info(&origin).unwrap();
    assert!(!i.has_inactive_table());
    // 4. The origin back to plain linear under a snapshot stack (a remove half-done the
    //    other way): reloaded to snapshot-origin.
    let real =
        v.dm.table_raw(&v.dm_name("lv", Some("real")), Which::Live)
            .unwrap();
    let line = &real[0];
    sh(&format!(
        "dmsetup load {origin} --table '{} {} {} {}' && dmsetup suspend {origin} && dmsetup resume {origin}",
        line.start.0, line.length.0, line.target_type, line.params
    ));
    assert_eq!(v.target("lv"), "linear");
    let out = v.activate();
    assert!(out.contains("reloaded"), "{out}");
    assert_eq!(lvm2_tables(&v), want);
    // Idempotent.
    let out = v.activate();
    assert!(
        !out.contains("reloaded") && !out.contains("removed"),
        "{out}"
    );
    v.vgck_clean();
}

#[test]
fn lvm_merge_of_dmsnap_snapshots_by_lvm2_and_dmsnap() {
    let Some(v) = Vg::new("lvm_merge_of_dmsnap_snapshots_by_lvm2_and_dmsnap", "s") else {
        return;
    };
    println!("PRIVILEGED-TEST-RAN lvm_merge_of_dmsnap_snapshots_by_lvm2_and_dmsnap");
    v.lvm(&["lvcreate", "-y", "-L", "16M", "-n", "lv", &v.name]);
    let m = v.mnt.path().display().to_string();
    let lv = format!("{}/lv", v.name);
    sh(&format!(
        "mkfs.ext4 -q -F {} >/dev/null 2>&1",
        v.node("lv").display()
    ));
    for (round, merger) in ["lvm2", "dmsnap"].into_iter().enumerate() {
        // A snapshot taken by dmsnap of the mounted origin, then the origin changed.
        sh(&format!(
            "mount {} {m} && echo before > {m}/a && rm -f {m}/b && sync",
            v.node("lv").display()
        ));
        let snap = format!("snap{round}");
        v.dmsnap_ok(&["lvm", "snapshot", &lv, "--size", "8M", "--name", &snap]);
        sh(&format!("echo after > {m}/a && echo new > {m}/b && sync"));
        let h = v.hash(&snap);
        v.umount();
        if merger == "lvm2" {
            // lvm2 merges it in the foreground and removes it.
            v.lvm(&[
                "lvconvert",
                "--merge",
                "-y",
                "-i",
                "1",
                &format!("{}/{snap}", v.name),
            ]);
        } else {
            let out = v.dmsnap_ok(&["lvm", "merge", &format!("{}/{snap}", v.name), "--wait"]);
            assert!(out.contains("has finished"), "{out}");
        }
        v.assert_merged(h);
    }
}
