//! `dmsnap backup` and `dmsnap recover` end to end on the real kernel, lvm2 as the oracle:
//!
//! - an ext4 wrapped device and an XFS LV backed up at once: the command sees the files of
//!   before the snapshot and not a file written to the origin after it, through read-only
//!   `noatime` mounts (XFS with `nouuid,norecovery`), the LV snapshot carries the
//!   `dmsnap_backup` tag; afterwards nothing is left (no snapshot device, no mount, no
//!   state file, the wrapper plain again, no snapshot LV in lvm2's `lvs`);
//! - the exit status is the command's (`false`: 1, `exit 7`: 7), cleaned up all the same;
//! - SIGKILL of `dmsnap backup` while its command runs: nothing suspended at that moment,
//!   and `dmsnap recover` terminates the orphaned command, detaches the mount, drops the
//!   snapshot and removes the state file;
//! - a COW too small for what is written to the origin during the command: the snapshot
//!   becomes invalid, the backup says so and exits non-zero although the command succeeded;
//! - `--pre` and `--post` run in order around the freeze: no snapshot during `pre`, the
//!   snapshot (not yet mounted) during `post`, the mount during the command; a failing
//!   `--pre` cancels the backup before any snapshot;
//! - btrfs beside its mounted origin (which the kernel refuses for a second device with the
//!   same fsid): the snapshot gets a new fsid, the command sees the frozen files, the
//!   origin keeps its fsid;
//! - SIGTERM while the command runs: passed on to it (exit 143), cleanup follows;
//! - `backup::recover` on hand-made state files: dead owner (exited pid, reused pid) vs
//!   live one, a malformed file left alone.
//!
//! Each test uses its own state directory (`DMSNAP_BACKUP_DIR`), so that recovery at the
//! start of another test's backup does not take its leftovers.

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, LoopDev, lvm, lvm_try};
use devmapper::DeviceMapper;

/// A wrapped device over a loop device, with a filesystem, mounted; a COW loop device.
struct Raw {
    name: String,
    mnt: PathBuf,
    cow: LoopDev,
    _origin: LoopDev,
}

/// Everything a test made: removed on drop, whatever happened.
struct Fixture {
    dm: DeviceMapper,
    bin: PathBuf,
    tag: String,
    state_dir: PathBuf,
    raws: Vec<Raw>,
    /// VG, PV path, the LV's mount point.
    vg: Option<(String, String, PathBuf, LoopDev)>,
}

fn sh_ok(line: &str) -> String {
    let out = Proc::new("sh").args(["-c", line]).output().unwrap();
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mkfs(fs: &str, dev: &str) {
    match fs {
        "ext4" => sh_ok(&format!("mkfs.ext4 -q -F {dev}")),
        "xfs" => sh_ok(&format!("mkfs.xfs -q -f {dev}")),
        "btrfs" => sh_ok(&format!("mkfs.btrfs -q -f {dev}")),
        _ => unreachable!(),
    };
}

impl Fixture {
    fn new(test: &str, tag: &str) -> Option<Fixture> {
        let dm = common::dm_or_skip(test)?;
        let bin = common::dmsnap_or_skip(test)?;
        let tag = format!("bk{}{tag}", std::process::id());
        let state_dir = PathBuf::from(format!("/run/dmsnap-test/{tag}"));
        let _ = std::fs::remove_dir_all(&state_dir);
        Some(Fixture {
            dm,
            bin,
            tag,
            state_dir,
            raws: Vec::new(),
            vg: None,
        })
    }

    /// A wrapped device of `mib` MiB with filesystem `fs`, mounted, with a `before.txt`,
    /// and a COW of `cow_mib` MiB.
    fn raw(&mut self, fs: &str, mib: u64, cow_mib: u64) -> usize {
        let name = format!("{}r{}", self.tag, self.raws.len());
        let origin = LoopDev::new(mib << 20);
        let cow = LoopDev::new(cow_mib << 20);
        let (ok, _, err) = common::output(
            &self.bin,
            &["wrap", &name, &origin.path.display().to_string()],
        );
        assert!(ok, "wrap: {err}");
        let node = format!("/dev/mapper/{name}");
        mkfs(fs, &node);
        let mnt = PathBuf::from(format!("/tmp/{name}-o"));
        std::fs::create_dir_all(&mnt).unwrap();
        sh_ok(&format!("mount {node} {}", mnt.display()));
        std::fs::write(mnt.join("before.txt"), format!("{name} before\n")).unwrap();
        sh_ok("sync");
        self.raws.push(Raw {
            name,
            mnt,
            cow,
            _origin: origin,
        });
        self.raws.len() - 1
    }

    /// A VG made by lvm2 on one loop PV with an LV `data` of `lv_mib` MiB holding `fs`,
    /// mounted, with a `before.txt`.
    fn lv(&mut self, fs: &str, pv_mib: u64, lv_mib: u64) {
        let pv = LoopDev::new(pv_mib << 20);
        let devs = pv.path.display().to_string();
        let vg = format!("{}vg", self.tag);
        lvm(&["pvcreate", "-q", "--devices", &devs, &devs]);
        lvm(&["vgcreate", "-q", "--devices", &devs, &vg, &devs]);
        lvm(&[
            "lvcreate",
            "-q",
            "-n",
            "data",
            "-L",
            &format!("{lv_mib}m"),
            "--devices",
            &devs,
            &vg,
        ]);
        let node = format!("/dev/mapper/{vg}-data");
        mkfs(fs, &node);
        let mnt = PathBuf::from(format!("/tmp/{vg}-o"));
        std::fs::create_dir_all(&mnt).unwrap();
        sh_ok(&format!("mount {node} {}", mnt.display()));
        std::fs::write(mnt.join("before.txt"), "lv before\n").unwrap();
        sh_ok("sync");
        self.vg = Some((vg, devs, mnt, pv));
    }

    /// `dmsnap backup ARGS` with this test's state directory (and `--devices` when there is
    /// a VG): (exit code, stdout, stderr).
    fn backup(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.backup_cmd(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn backup_cmd(&self, args: &[&str]) -> Proc {
        let mut c = Proc::new(&self.bin);
        c.env("DMSNAP_BACKUP_DIR", &self.state_dir).arg("backup");
        let dd = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        c.args(&args[..dd]);
        if let Some((_, devs, _, _)) = &self.vg {
            c.args(["--devices", devs]);
        }
        c.args(&args[dd..]);
        c
    }

    fn recover(&self) -> (bool, String, String) {
        let out = Proc::new(&self.bin)
            .env("DMSNAP_BACKUP_DIR", &self.state_dir)
            .arg("recover")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Nothing of any backup is left: no snapshot device of ours, no mount under the state
    /// directory, no state file or directory, every wrapper plain, no snapshot LV.
    fn assert_nothing_left(&self) {
        let devs: Vec<String> = self
            .dm
            .list()
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .filter(|n| n.starts_with(&self.tag) && (n.contains("-bk") || n.contains("_bk")))
            .collect();
        assert!(devs.is_empty(), "snapshot devices left: {devs:?}");
        common::assert_nothing_suspended(&self.dm, &self.tag);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let dir = self.state_dir.display().to_string();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&dir)).collect();
        assert!(left.is_empty(), "mounts left: {left:?}");
        if let Ok(entries) = std::fs::read_dir(&self.state_dir) {
            let names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".recover.lock")
                .collect();
            assert!(names.is_empty(), "left in the state directory: {names:?}");
        }
        for r in &self.raws {
            let t = sh_ok(&format!("dmsetup table {}", r.name));
            assert!(t.contains(" linear "), "{} not plain: {t}", r.name);
            assert!(
                !self
                    .dm
                    .list()
                    .unwrap()
                    .iter()
                    .any(|d| d.name == format!("{}-real", r.name)),
                "{}-real left",
                r.name
            );
        }
        if let Some((vg, devs, _, _)) = &self.vg {
            let lvs = lvm(&[
                "lvs",
                "--noheadings",
                "-o",
                "lv_name",
                "--devices",
                devs,
                vg,
            ]);
            let names: Vec<&str> = lvs.split_whitespace().collect();
            assert_eq!(names, ["data"], "LVs of {vg}");
            let (ok, out, err) = lvm_try(&["vgck", "--devices", devs, vg]);
            assert!(ok && !err.contains("WARNING"), "vgck: {err}{out}");
        }
    }

    fn state_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.state_dir)
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "state"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.recover();
        for r in &self.raws {
            let _ = Proc::new("umount").arg(&r.mnt).status();
            let _ = Proc::new(&self.bin).args(["drop", &r.name]).output();
            let _ = Proc::new(&self.bin).args(["unwrap", &r.name]).output();
        }
        if let Some((vg, devs, mnt, _)) = &self.vg {
            let _ = Proc::new("umount").arg(mnt).status();
            let _ = lvm_try(&["vgchange", "-an", "--devices", devs, vg]);
            let _ = lvm_try(&["vgremove", "-ff", "-y", "--devices", devs, vg]);
            let _ = lvm_try(&["pvremove", "-ff", "-y", "--devices", devs, devs]);
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn has_tools(test: &str, tools: &[&str]) -> bool {
    for t in tools {
        if Proc::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            common::skip(test, &format!("{t} not installed"));
            return false;
        }
    }
    true
}

#[test]
fn backup_of_ext4_and_xfs_sees_the_frozen_files_and_leaves_nothing() {
    let test = "backup_of_ext4_and_xfs_sees_the_frozen_files_and_leaves_nothing";
    if !has_tools(test, &["mkfs.ext4", "mkfs.xfs", "lvm"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "a") else {
        return;
    };
    let t0 = Instant::now();
    let r = f.raw("ext4", 64, 32);
    f.lv("xfs", 400, 320);
    let raw = &f.raws[r];
    let (vg, devs, lv_mnt, _) = f.vg.as_ref().unwrap();
    let out = PathBuf::from(format!("/tmp/{}-out", f.tag));
    std::fs::create_dir_all(&out).unwrap();
    // The command writes to both origins first (after the snapshot), then reads the
    // snapshots.
    let script = format!(
        "set -e; echo late > {o1}/after.txt; echo late > {o2}/after.txt; sync; \
         ls \"$DMSNAP_MOUNT_DIR/{n}\" > {out}/raw.ls; ls \"$DMSNAP_MOUNT_DIR/{vg}/data\" > {out}/lv.ls; \
         cat \"$DMSNAP_MOUNT_DIR/{n}/before.txt\" \"$DMSNAP_MOUNT_DIR/{vg}/data/before.txt\" > {out}/cat; \
         cat /proc/mounts > {out}/mounts; \
         lvm lvs --noheadings -o lv_name,lv_tags --devices {devs} {vg} > {out}/tags 2>/dev/null; \
         echo \"$DMSNAP_MOUNT_DIR\" > {out}/dir",
        o1 = raw.mnt.display(),
        o2 = lv_mnt.display(),
        n = raw.name,
        out = out.display(),
    );
    let vg_lv = format!("{vg}/data");
    let cow = raw.cow.path.display().to_string();
    let (code, stdout, stderr) = f.backup(&[
        &raw.name, &vg_lv, "--cow", &cow, "--size", "40m", "--json", "--", "sh", "-c", &script,
    ]);
    assert_eq!(code, Some(0), "backup failed: {stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(j["outcome"], "success");
    assert_eq!(j["exit_code"], 0);
    let srcs = j["sources"].as_array().unwrap();
    assert_eq!(srcs.len(), 2);
    assert_eq!(srcs[0]["source"], raw.name.as_str());
    assert_eq!(srcs[0]["fs"], "ext4");
    assert_eq!(srcs[1]["source"], vg_lv.as_str());
    assert_eq!(srcs[1]["fs"], "xfs");
    for s in srcs {
        assert_eq!(s["state_at_end"], "active", "{s}");
        assert!(s["cow_sectors"].as_u64().unwrap() > 0, "{s}");
        // Both origins were written after the snapshot: their COWs hold chunks.
        assert!(s["allocated_sectors"].as_u64().unwrap() > 0, "{s}");
    }
    let frozen = j["suspended_ms"].as_f64().unwrap();
    assert!(frozen > 0.0, "{j}");
    // What the command saw.
    let raw_ls = std::fs::read_to_string(out.join("raw.ls")).unwrap();
    let lv_ls = std::fs::read_to_string(out.join("lv.ls")).unwrap();
    for ls in [&raw_ls, &lv_ls] {
        assert!(ls.lines().any(|l| l == "before.txt"), "{ls}");
        assert!(
            !ls.lines().any(|l| l == "after.txt"),
            "a later file is in the snapshot: {ls}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("cat")).unwrap(),
        format!("{} before\nlv before\n", raw.name)
    );
    let dir = std::fs::read_to_string(out.join("dir")).unwrap();
    let dir = dir.trim();
    assert!(dir.starts_with(&f.state_dir.display().to_string()), "{dir}");
    let mounts = std::fs::read_to_string(out.join("mounts")).unwrap();
    let line = |p: String| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(p.as_str()))
            .unwrap_or_else(|| panic!("{p} not mounted: {mounts}"))
            .to_owned()
    };
    let raw_line = line(format!("{dir}/{}", raw.name));
    let lv_line = line(format!("{dir}/{vg}/data"));
    for l in [&raw_line, &lv_line] {
        let opts = l.split(' ').nth(3).unwrap();
        assert!(opts.starts_with("ro,"), "{l}");
        assert!(opts.contains("noatime"), "{l}");
        // By device node: /dev/mapper/<snapshot>, never a UUID.
        assert!(l.starts_with("/dev/mapper/") && l.contains("bk"), "{l}");
    }
    assert!(raw_line.contains(" ext4 "), "{raw_line}");
    assert!(
        lv_line.contains(" xfs ") && lv_line.contains("nouuid") && lv_line.contains("norecovery"),
        "{lv_line}"
    );
    let tags = std::fs::read_to_string(out.join("tags")).unwrap();
    assert!(
        tags.lines()
            .any(|l| l.contains("_bk") && l.contains("dmsnap_backup")),
        "the snapshot LV is not tagged: {tags}"
    );
    // The origins kept their later files.
    assert!(raw.mnt.join("after.txt").exists() && lv_mnt.join("after.txt").exists());
    f.assert_nothing_left();
    assert!(!Path::new(dir).exists(), "the mount directory is left");
    println!(
        "backup of ext4 + xfs: frozen {frozen:.1} ms, backup {:.0} ms, test {:.1} s",
        j["total_ms"].as_f64().unwrap(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn backup_exit_status_is_the_commands() {
    let test = "backup_exit_status_is_the_commands";
    if !has_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "b") else {
        return;
    };
    let r = f.raw("ext4", 32, 8);
    let (name, cow) = (
        f.raws[r].name.clone(),
        f.raws[r].cow.path.display().to_string(),
    );
    let (code, stdout, stderr) = f.backup(&[&name, "--cow", &cow, "--", "false"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("the command failed"), "{stderr}");
    f.assert_nothing_left();
    let (code, _, stderr) = f.backup(&[&name, "--cow", &cow, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7), "{stderr}");
    f.assert_nothing_left();
    // A --mount-dir that does not exist yet is made, used and removed again.
    let given = PathBuf::from(format!("/tmp/{}-mnt", f.tag));
    let _ = std::fs::remove_dir_all(&given);
    let probe = format!("test -f {}/{name}/before.txt", given.display());
    let given_s = given.display().to_string();
    let (code, _, stderr) = f.backup(&[
        &name,
        "--cow",
        &cow,
        "--mount-dir",
        &given_s,
        "--",
        "sh",
        "-c",
        &probe,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !given.exists(),
        "the mount directory made for the backup is left"
    );
    // One that holds something is refused before anything is made.
    std::fs::create_dir_all(given.join("x")).unwrap();
    let (code, _, stderr) =
        f.backup(&[&name, "--cow", &cow, "--mount-dir", &given_s, "--", "true"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is not an empty directory"), "{stderr}");
    assert!(given.join("x").exists());
    std::fs::remove_dir_all(&given).unwrap();
    f.assert_nothing_left();
    // Usage errors: 2, nothing made.
    let (code, _, stderr) = f.backup(&[&name, "--", "true"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--cow"), "{stderr}");
    // An unwrapped name: 1, nothing made.
    let (code, _, stderr) = f.backup(&["nosuchdev", "--cow", &cow, "--", "true"]);
    assert_eq!(code, Some(1), "{stderr}");
    f.assert_nothing_left();
}

#[test]
fn sigkill_of_backup_then_recover_leaves_nothing() {
    let test = "sigkill_of_backup_then_recover_leaves_nothing";
    if !has_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "k") else {
        return;
    };
    let r = f.raw("ext4", 32, 8);
    let (name, cow) = (
        f.raws[r].name.clone(),
        f.raws[r].cow.path.display().to_string(),
    );
    // And an LV: recovery removes its snapshot LV from the metadata too.
    f.lv("ext4", 128, 48);
    let vg_lv = format!("{}/data", f.vg.as_ref().unwrap().0);
    let mut child = f
        .backup_cmd(&[
            &name, &vg_lv, "--cow", &cow, "--size", "16m", "--", "sleep", "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the command runs (the state file names it).
    let t0 = Instant::now();
    let state = loop {
        let found = f.state_files().into_iter().find(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("command\t")))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the command never started"
        );
        assert!(child.try_wait().unwrap().is_none(), "backup exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&state).unwrap();
    let cmd_pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("command\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .parse()
        .unwrap();
    // The state file names what recovery must undo.
    assert!(
        text.lines()
            .any(|l| l.starts_with("snapshot\traw\t") && l.contains(&name)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("snapshot\tlvm\t") && l.contains("\tdata\t")),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("mount\t")).count(),
        2,
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("owner\t")), "{text}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Right after the kill: nothing suspended (ours and dmsetup's view).
    common::assert_nothing_suspended(&f.dm, &f.tag);
    let info = sh_ok("dmsetup info -c --noheadings -o name,suspended --separator ' '");
    for l in info.lines().filter(|l| l.trim_start().starts_with(&f.tag)) {
        assert!(l.trim_end().ends_with("Active"), "suspended: {l}");
    }
    // The backup's things are still there: the snapshot, the mount, the command.
    assert!(
        f.dm.list()
            .unwrap()
            .iter()
            .any(|d| d.name.starts_with(&format!("{name}-bk")))
    );
    let (vg, devs, _, _) = f.vg.as_ref().unwrap();
    let lvs = lvm(&[
        "lvs",
        "--noheadings",
        "-o",
        "lv_name,lv_tags",
        "--devices",
        devs,
        vg,
    ]);
    assert!(
        lvs.lines()
            .any(|l| l.contains("data_bk") && l.contains("dmsnap_backup")),
        "{lvs}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        mounts.contains(&f.state_dir.display().to_string()),
        "{mounts}"
    );
    assert!(Path::new(&format!("/proc/{cmd_pid}")).exists());
    let (ok, stdout, stderr) = f.recover();
    assert!(ok, "recover: {stderr}{stdout}");
    assert!(stdout.contains("cleaned up"), "{stdout}");
    assert!(stdout.contains("terminated the backup command"), "{stdout}");
    assert!(
        stdout.contains("detached") || stdout.contains("unmounted"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped snapshot"), "{stdout}");
    assert!(stdout.contains("removed state file"), "{stdout}");
    // The orphaned `sleep` is gone (or a zombie of init's).
    let stat = std::fs::read_to_string(format!("/proc/{cmd_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "command still runs: {stat}"
    );
    f.assert_nothing_left();
    // A second recover has nothing to do.
    let (ok, stdout, _) = f.recover();
    assert!(ok && stdout.contains("no interrupted backup"), "{stdout}");
}

#[test]
fn a_cow_that_overflows_during_the_command_fails_the_backup() {
    let test = "a_cow_that_overflows_during_the_command_fails_the_backup";
    if !has_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "o") else {
        return;
    };
    let r = f.raw("ext4", 64, 1);
    let (name, cow) = (
        f.raws[r].name.clone(),
        f.raws[r].cow.path.display().to_string(),
    );
    // The command writes 8 MiB to the origin: more than the 1 MiB COW can take.
    let script = format!(
        "dd if=/dev/zero of={}/big bs=1M count=8 conv=fsync 2>/dev/null; sync; true",
        f.raws[r].mnt.display()
    );
    let (code, stdout, stderr) =
        f.backup(&[&name, "--cow", &cow, "--json", "--", "sh", "-c", &script]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("became invalid"), "{stderr}");
    assert!(stderr.contains("broken view"), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["outcome"], "broken-view");
    assert_eq!(j["exit_code"], 0, "the command itself succeeded");
    assert_eq!(j["invalid"][0], name.as_str());
    assert_eq!(j["sources"][0]["state_at_end"], "invalid");
    f.assert_nothing_left();
}

#[test]
fn pre_and_post_run_in_order_around_the_freeze() {
    let test = "pre_and_post_run_in_order_around_the_freeze";
    if !has_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "p") else {
        return;
    };
    let r = f.raw("ext4", 32, 8);
    let (name, cow) = (
        f.raws[r].name.clone(),
        f.raws[r].cow.path.display().to_string(),
    );
    let log = PathBuf::from(format!("/tmp/{}-seq", f.tag));
    let _ = std::fs::remove_file(&log);
    // Each step records: its name, whether the snapshot device exists, whether the
    // snapshot is mounted, and whether the origin is suspended.
    let probe = |step: &str| {
        format!(
            "echo {step} $(ls /dev/mapper | grep -c '^{name}-bk') \
             $(grep -c '{dir}' /proc/mounts) \
             $(dmsetup info -c --noheadings -o suspended {name}) >> {log}",
            dir = f.state_dir.display(),
            log = log.display()
        )
    };
    let (pre, post, cmd) = (probe("pre"), probe("post"), probe("command"));
    let (code, _, stderr) = f.backup(&[
        &name, "--cow", &cow, "--pre", &pre, "--post", &post, "--", "sh", "-c", &cmd,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let seq = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        seq, "pre 0 0 Active\npost 1 0 Active\ncommand 1 1 Active\n",
        "pre before the snapshot, post after it and before the mount, then the command"
    );
    f.assert_nothing_left();

    // A failing pre hook: no snapshot, post runs (it releases what pre may hold), the
    // command does not.
    std::fs::remove_file(&log).unwrap();
    let (code, _, stderr) = f.backup(&[
        &name,
        "--cow",
        &cow,
        "--pre",
        &format!("{pre}; exit 3"),
        "--post",
        &post,
        "--",
        "sh",
        "-c",
        &cmd,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pre hook failed"), "{stderr}");
    let seq = std::fs::read_to_string(&log).unwrap();
    assert_eq!(seq, "pre 0 0 Active\npost 0 0 Active\n");
    f.assert_nothing_left();
}

/// The btrfs fsid of `dev` as blkid reads it.
fn btrfs_fsid(dev: &str) -> String {
    sh_ok(&format!("blkid -p -s UUID -o value {dev}"))
        .trim()
        .to_owned()
}

#[test]
fn btrfs_backup_beside_its_mounted_origin() {
    let test = "btrfs_backup_beside_its_mounted_origin";
    if !has_tools(test, &["mkfs.btrfs", "btrfs"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "f") else {
        return;
    };
    let r = f.raw("btrfs", 160, 8);
    let raw = &f.raws[r];
    let node = format!("/dev/mapper/{}", raw.name);
    let fsid = btrfs_fsid(&node);
    assert!(!fsid.is_empty());
    let out = PathBuf::from(format!("/tmp/{}-out", f.tag));
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        "set -e; echo late > {o}/after.txt; sync; \
         ls \"$DMSNAP_MOUNT_DIR/{n}\" > {out}/ls; cat \"$DMSNAP_MOUNT_DIR/{n}/before.txt\" > {out}/cat; \
         grep \" $DMSNAP_MOUNT_DIR/{n} \" /proc/mounts > {out}/mount; \
         btrfs filesystem show \"$DMSNAP_MOUNT_DIR/{n}\" > {out}/show",
        o = raw.mnt.display(),
        n = raw.name,
        out = out.display(),
    );
    let cow = raw.cow.path.display().to_string();
    let (code, stdout, stderr) = f.backup(&[
        &raw.name, "--cow", &cow, "--json", "--", "sh", "-c", &script,
    ]);
    assert_eq!(code, Some(0), "backup failed: {stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(j["outcome"], "success", "{j}");
    assert_eq!(j["sources"][0]["fs"], "btrfs", "{j}");
    let new_fsid = j["sources"][0]["new_fsid"].as_str().expect("a new fsid");
    assert_ne!(new_fsid, fsid);
    let ls = std::fs::read_to_string(out.join("ls")).unwrap();
    assert!(ls.lines().any(|l| l == "before.txt"), "{ls}");
    assert!(!ls.lines().any(|l| l == "after.txt"), "a later file: {ls}");
    assert_eq!(
        std::fs::read_to_string(out.join("cat")).unwrap(),
        format!("{} before\n", raw.name)
    );
    let mount = std::fs::read_to_string(out.join("mount")).unwrap();
    assert!(
        mount.starts_with("/dev/mapper/") && mount.contains(" btrfs ro,"),
        "{mount}"
    );
    // The snapshot had its own fsid, not the origin's; the origin kept its fsid and its
    // later file.
    let show = std::fs::read_to_string(out.join("show")).unwrap();
    assert!(
        show.contains(&format!("uuid: {new_fsid}")) && !show.contains(&fsid),
        "{show}"
    );
    assert_eq!(btrfs_fsid(&node), fsid);
    assert!(raw.mnt.join("after.txt").exists());
    f.assert_nothing_left();
}

#[test]
fn sigterm_is_passed_to_the_command_and_cleanup_follows() {
    let test = "sigterm_is_passed_to_the_command_and_cleanup_follows";
    if !has_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let Some(mut f) = Fixture::new(test, "t") else {
        return;
    };
    let r = f.raw("ext4", 32, 8);
    let (name, cow) = (
        f.raws[r].name.clone(),
        f.raws[r].cow.path.display().to_string(),
    );
    let child = f
        .backup_cmd(&[&name, "--cow", &cow, "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !f.state_files().into_iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("command\t")))
    }) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t1 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = t1.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `sleep` died of the forwarded SIGTERM: 128 + 15, long before its 30 s.
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(stderr.contains("SIGTERM was passed on"), "{stderr}");
    f.assert_nothing_left();
    println!(
        "SIGTERM to cleanup done: {:.0} ms",
        took.as_secs_f64() * 1e3
    );
}

/// `backup::recover` on hand-made state files: a dead owner's (a pid that exited) is
/// cleaned up (its directories, then the file; a planned snapshot that was never made is
/// not an error), a running owner's (this process) and a reused pid's differ by start
/// time only, a malformed file is left alone and reported.
#[test]
fn recover_tells_dead_owners_from_live_ones_and_leaves_bad_files() {
    use devmapper::backup::state::{state_path, write_state};
    use devmapper::backup::{
        self, BackupError, BackupOptions, BackupState, BadStateKind, CleanupAction,
        PlannedSnapshot, ProcessId,
    };
    let test = "recover_tells_dead_owners_from_live_ones_and_leaves_bad_files";
    let Some(dm) = common::dm_or_skip(test) else {
        return;
    };
    let dir = PathBuf::from(format!("/run/dmsnap-test/rc{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = BackupOptions::new("test").state_dir(&dir);
    // A process that has exited: its pid names nothing (or something started later).
    let mut gone = Proc::new("true").spawn().unwrap();
    let gone_id = ProcessId {
        pid: gone.id(),
        start: 1,
    };
    gone.wait().unwrap();
    let me = ProcessId::current().unwrap();
    let mut dead = BackupState::new("dead1", gone_id);
    let mnt = dir.join("dead1");
    std::fs::create_dir_all(mnt.join("sub")).unwrap();
    dead.dirs = vec![mnt.clone(), mnt.join("sub")];
    dead.mounts = vec![mnt.join("sub")];
    // Planned, never made (the kill came before the snapshot): nothing to drop.
    dead.snapshots = vec![PlannedSnapshot::Raw {
        origin: devmapper::DmName::new(&format!("norig{}", std::process::id())).unwrap(),
        snapshot: devmapper::DmName::new(&format!("norig{}-bknever", std::process::id())).unwrap(),
        cow: "/dev/null".into(),
    }];
    write_state(&dir, &dead).unwrap();
    // This process: alive. The same pid with another start time: a reused pid, dead.
    write_state(&dir, &BackupState::new("live1", me)).unwrap();
    let reused = ProcessId {
        pid: me.pid,
        start: me.start + 7,
    };
    write_state(&dir, &BackupState::new("reused1", reused)).unwrap();
    std::fs::write(dir.join("bad1.state"), "not a state file\n").unwrap();

    let report = backup::recover(&dm, &opts).unwrap();
    let ids: Vec<&str> = report
        .recovered
        .iter()
        .map(|b| b.state.id.as_str())
        .collect();
    assert_eq!(ids, ["dead1", "reused1"]);
    let d = &report.recovered[0];
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(
        d.actions,
        [
            CleanupAction::RemovedDir(mnt.join("sub")),
            CleanupAction::RemovedDir(mnt.clone()),
            CleanupAction::RemovedStateFile(state_path(&dir, "dead1")),
        ]
    );
    assert!(!mnt.exists());
    assert_eq!(report.running, [state_path(&dir, "live1")]);
    assert!(state_path(&dir, "live1").exists());
    assert!(!state_path(&dir, "reused1").exists());
    match &report.unreadable[..] {
        [(p, BackupError::BadState { kind, .. })] => {
            assert_eq!(p, &dir.join("bad1.state"));
            assert_eq!(*kind, BadStateKind::Magic);
        }
        other => panic!("{other:?}"),
    }
    assert!(dir.join("bad1.state").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
