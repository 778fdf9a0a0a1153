//! `dmsnap` against the real kernel, compared byte for byte with `dmsetup` (the oracle).

use std::path::PathBuf;
use std::process::Command as Proc;

use crate::common::{DevGuard, LoopDev, one, unique_name};
use crate::dm_or_skip;
use devmapper::RawTarget;
use devmapper::units::Sectors;

/// The dmsnap binary: `DMSNAP_BIN` (set by the VM harness), else the one cargo built.
fn dmsnap() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DMSNAP_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples/dmsnap");
    p.exists().then_some(p)
}

fn run(bin: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Proc::new(bin).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    let dmsetup = Proc::new("dmsetup")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(bin) = dmsnap() else {
        assert!(
            !required,
            "{test}: DMSNAP_BIN not set and no built dmsnap example"
        );
        println!("SKIP {test}: no dmsnap binary (build the examples)");
        return None;
    };
    if dmsetup.is_none() {
        assert!(!required, "{test}: dmsetup (the oracle) is missing");
        println!("SKIP {test}: dmsetup not installed");
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
    for g in &devices {
        let name = g.name.as_str();
        for cmd in ["table", "status"] {
            let (ok, ours, err) = run(&bin, &[cmd, name]);
            assert!(ok, "dmsnap {cmd} {name}: {err}");
            let theirs = Proc::new(&dmsetup).args([cmd, name]).output().unwrap();
            assert!(theirs.status.success());
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            assert_eq!(ours, theirs, "dmsnap {cmd} {name} differs from dmsetup");
            assert!(!ours.is_empty());
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
    let (ok, _, err) = run(&bin, &["table", "no-such-device-here"]);
    assert!(!ok);
    assert!(err.contains("ENXIO"), "{err}");
}
