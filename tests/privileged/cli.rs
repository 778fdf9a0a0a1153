//! `dmsnap` against the real kernel, compared byte for byte with `dmsetup` (the oracle).

use std::path::PathBuf;
use std::process::Command as Proc;

use crate::common::{DevGuard, LoopDev, one, unique_name};
use crate::dm_or_skip;
use devmapper::RawTarget;
use devmapper::units::Sectors;

use crate::common::output as run;

fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let dmsetup = Proc::new("dmsetup")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let bin = crate::common::dmsnap_or_skip(test)?;
    if dmsetup.is_none() {
        crate::common::skip(test, "dmsetup (the oracle) is not installed");
        return None;
    }
    Some((bin, PathBuf::from("dmsetup")))
}

#[test]
fn table_and_status_match_dmsetup() {
    let dm = dm_or_skip!("table_and_status_match_dmsetup");
    let Some((bin, dmsetup)) = tools("table_and_status_match_dmsetup") else {
        return;
    };
    let a = LoopDev::new(4 << 20);
    let b = LoopDev::new(4 << 20);
    let cow = LoopDev::new(2 << 20);
    let (a_n, b_n) = (a.devnum(), b.devnum());
    let mut devices = Vec::new();
    devices.push(DevGuard::active(
        &dm,
        unique_name("cli-zero"),
        &one("zero", "", 2048),
    ));
    devices.push(DevGuard::active(
        &dm,
        unique_name("cli-err"),
        &one("error", "", 16),
    ));
    devices.push(DevGuard::active(
        &dm,
        unique_name("cli-striped"),
        &one("striped", &format!("2 128 {a_n} 0 {b_n} 0"), 4096),
    ));
    let multi = vec![
        RawTarget {
            start: Sectors(0),
            length: Sectors(100),
            target_type: "linear".into(),
            params: format!("{a_n} 10"),
        },
        RawTarget {
            start: Sectors(100),
            length: Sectors(50),
            target_type: "zero".into(),
            params: String::new(),
        },
        RawTarget {
            start: Sectors(150),
            length: Sectors(200),
            target_type: "linear".into(),
            params: format!("{} 7", b.path.display()),
        },
    ];
    devices.push(DevGuard::active(&dm, unique_name("cli-multi"), &multi));
    let origin = DevGuard::active(
        &dm,
        unique_name("cli-real"),
        &one("linear", &format!("{a_n} 0"), 4096),
    );
    let real = dm.info(&origin.name).unwrap().dev;
    let snap = DevGuard::active(
        &dm,
        unique_name("cli-snap"),
        &one("snapshot", &format!("{real} {} P 8", cow.devnum()), 4096),
    );
    let so = DevGuard::active(
        &dm,
        unique_name("cli-origin"),
        &one("snapshot-origin", &format!("{real}"), 4096),
    );
    devices.push(snap);
    devices.push(so);
    devices.push(origin);
    // No table at all (dmsetup create --notable), and a live table with another one
    // loaded but not resumed.
    devices.push(DevGuard::create(&dm, unique_name("cli-notable")));
    let pending = DevGuard::active(&dm, unique_name("cli-pending"), &one("zero", "", 64));
    dm.load_raw(&pending.name, &one("error", "", 32), Default::default())
        .unwrap();
    devices.push(pending);
    for g in &devices {
        let name = g.name.as_str();
        for args in [
            &["table", name][..],
            &["status", name],
            &["table", "--inactive", name],
            &["status", "--inactive", name],
        ] {
            let (ok, ours, err) = run(&bin, args);
            assert!(ok, "dmsnap {args:?}: {err}");
            let theirs = Proc::new(&dmsetup).args(args).output().unwrap();
            assert!(theirs.status.success(), "dmsetup {args:?}");
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            assert_eq!(ours, theirs, "dmsnap {args:?} differs from dmsetup");
            // Never nothing: a device without a table is one empty line.
            assert!(ours.ends_with('\n'), "dmsnap {args:?}: {ours:?}");
        }
    }
    let (_, notable, _) = run(&bin, &["table", devices[devices.len() - 2].name.as_str()]);
    assert_eq!(notable, "\n");
}

/// A pipe whose read end is already closed: every write to it fails with `EPIPE`.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// The kernel commands with stdout a closed pipe (quietly, status 141) or a full disk
/// (status 1, one line): never a panic (101). tests/cli_output.rs does the offline ones.
#[test]
fn kernel_commands_closed_stdout_and_full_disk() {
    let dm = dm_or_skip!("kernel_commands_closed_stdout_and_full_disk");
    let Some((bin, _)) = tools("kernel_commands_closed_stdout_and_full_disk") else {
        return;
    };
    let g = DevGuard::active(&dm, unique_name("cli-pipe"), &one("zero", "", 8));
    let name = g.name.as_str();
    for args in [
        &["version"][..],
        &["ls"],
        &["ls", "--json"],
        &["targets"],
        &["table", name],
        &["status", name],
        &["status", "--raw", name],
    ] {
        let ok = Proc::new(&bin).args(args).output().unwrap();
        assert!(
            ok.status.success() && !ok.stdout.is_empty(),
            "dmsnap {args:?}"
        );
        let closed = Proc::new(&bin)
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&closed.stderr);
        assert_eq!(
            closed.status.code(),
            Some(141),
            "dmsnap {args:?} | (closed): {err}"
        );
        assert_eq!(err, "", "dmsnap {args:?} | (closed)");
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let full = Proc::new(&bin).args(args).stdout(full).output().unwrap();
        let err = String::from_utf8_lossy(&full.stderr);
        assert_eq!(
            full.status.code(),
            Some(1),
            "dmsnap {args:?} > /dev/full: {err}"
        );
        assert_eq!(
            err, "dmsnap: cannot write standard output: No space left on device (os error 28)\n",
            "dmsnap {args:?} > /dev/full"
        );
    }
}

/// `DEVMAPPER_FAULT_STEP` (the crash tests' hook, fault-tests/) does nothing to dmsnap:
/// every snapshot and drop step completes.
#[test]
fn fault_step_variable_does_not_abort_dmsnap() {
    let dm = dm_or_skip!("fault_step_variable_does_not_abort_dmsnap");
    let Some((bin, _)) = tools("fault_step_variable_does_not_abort_dmsnap") else {
        return;
    };
    let lo = LoopDev::new(4 << 20);
    let name = unique_name("cli-fault");
    let n = name.as_str();
    let _g = WrapperCleanup { dm: &dm, prefix: n };
    let lo_path = lo.path.display().to_string();
    let (ok, _, err) = run(&bin, &["wrap", n, &lo_path]);
    assert!(ok, "wrap: {err}");
    for k in 1..=8 {
        // A fresh COW each time: a used one holds a snapshot store.
        let cow = LoopDev::new(1 << 20);
        let step = |op: &str, args: &[&str]| {
            let out = Proc::new(&bin)
                .args(args)
                .env("DEVMAPPER_FAULT_STEP", format!("{op}:{k}"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !err.contains("fault injection"),
                "dmsnap {args:?} with DEVMAPPER_FAULT_STEP={op}:{k}: {:?}\n{err}",
                out.status
            );
        };
        step(
            "snapshot",
            &["snapshot", n, "--cow", &cow.path.display().to_string()],
        );
        step("drop", &["drop", n]);
    }
    let (ok, _, err) = run(&bin, &["unwrap", n]);
    assert!(ok, "unwrap: {err}");
}

/// Removes what a test left of a wrapper `prefix` (snapshots, origin, -real).
struct WrapperCleanup<'a> {
    dm: &'a devmapper::DeviceMapper,
    prefix: &'a str,
}

impl Drop for WrapperCleanup<'_> {
    fn drop(&mut self) {
        let Ok(list) = self.dm.list() else { return };
        let mut names: Vec<String> = list
            .into_iter()
            .map(|d| d.name)
            .filter(|n| n.starts_with(self.prefix))
            .collect();
        names.sort_by_key(|n| {
            (
                n.ends_with("-real") || n.ends_with("-cow"),
                n == self.prefix,
            )
        });
        for n in names {
            crate::common::remove_quietly(self.dm, &devmapper::DmName::new(&n).unwrap());
        }
    }
}

#[test]
fn version_ls_targets() {
    let dm = dm_or_skip!("version_ls_targets");
    let Some((bin, _)) = tools("version_ls_targets") else {
        return;
    };
    let g = DevGuard::active(&dm, unique_name("cli-ls"), &one("zero", "", 8));
    let (ok, out, err) = run(&bin, &["version"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("Driver version:    {}", dm.version().unwrap())),
        "{out}"
    );
    let (ok, out, _) = run(&bin, &["ls"]);
    assert!(ok);
    let line = out
        .lines()
        .find(|l| l.starts_with(g.name.as_str()))
        .expect("device in ls");
    assert!(line.contains("zero") && line.contains("active"), "{line}");
    let (ok, out, _) = run(&bin, &["ls", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == g.name.as_str())
        .unwrap();
    assert_eq!(d["targets"][0], "zero");
    assert_eq!(d["suspended"], false);
    let (ok, out, _) = run(&bin, &["targets"]);
    assert!(ok && out.lines().any(|l| l.starts_with("zero ")), "{out}");
    // Errors go to stderr with a non-zero exit code.
    let err = crate::common::fails(&bin, &["table", "no-such-device-here"]);
    assert!(err.contains("ENXIO"), "{err}");
}
