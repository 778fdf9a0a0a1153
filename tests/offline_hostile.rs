//! Hostile input to every offline `dmsnap` command (issue 9, "Done when"): random bytes, and
//! structurally valid LVM2 PV images and COW stores that are then mutated (bit flips,
//! truncation, extreme numbers, duplicate names, stripe chains, snapshot cycles, special
//! files, an output that is an input).
//!
//! Every run of the binary is checked for: no panic (exit 101, "panicked" on stderr, a
//! signal), no hang (killed after [`TIMEOUT`]), bounded memory (run under an address-space
//! limit of [`MEM_LIMIT`]), inputs unchanged (every input compared byte for byte before and after), and
//! an exit status consistent with the output (exit 0: something on stdout where the command
//! prints, `--json` parses; non-zero: a message on stderr, nothing on stdout; a failed
//! export leaves no output file behind).
//!
//! Each test runs all its cases and then fails with the list of every failure class found
//! (command + symptom), one reproduction each, saved under
//! `$CARGO_TARGET_TMPDIR/hostile/<test>/<n>/` (`cmd.txt` holds the command line). Case
//! counts follow `PROPTEST_CASES` when it is set; `HOSTILE_SAVE_ALL=DIR` saves every case.
//!
//! The binary is `DMSNAP_BIN`, else `target/<profile>/examples/dmsnap` next to this test
//! (`cargo test` builds it; after `cargo test --test offline_hostile` alone, run
//! `cargo build --example dmsnap` first).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{LAYOUT, LvSpec, Num, PvSpec, SegKind, SegSpec, VgSpec, make_id};
use devmapper::cow::writer::StoreWriter;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A run still going after this is a hang.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Address-space limit of every run (the binary itself needs a few tens of MiB).
const MEM_LIMIT: u64 = 512 << 20;
/// Runs at once in the random tests (2-core machine).
const PARALLEL: usize = 3;
/// Kept of each of stdout and stderr (the rest is read and dropped).
const KEEP: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Running dmsnap

/// The hostile runs are timed (a run past [`TIMEOUT`] counts as a hang) and need no kernel:
/// they belong to the host run. Under the VM's TCG emulation everything is 10-50x slower
/// and the hang check would misfire, so the VM run (`DEVMAPPER_REQUIRE_PRIVILEGED=1`, see
/// scripts/vm/README.md) skips them with the reason.
fn skip_in_vm(test: &str) -> bool {
    let vm = std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    if vm {
        println!(
            "SKIP {test}: offline hostile runs are timed; they run on the host, not under TCG"
        );
    }
    vm
}

fn dmsnap() -> PathBuf {
    common::bin::dmsnap()
}

/// Where stdout goes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    /// A pipe we read.
    Pipe,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose read end is closed before the command runs (`| head`).
    Closed,
}

/// One command line and what must hold of its run.
#[derive(Clone, Debug)]
struct Inv {
    /// Short class name, e.g. `lvm scan --json`.
    label: String,
    args: Vec<String>,
    /// On success the command prints something on stdout.
    prints: bool,
    /// stdout is one JSON document.
    json: bool,
    stdout: Out,
    /// Files (relative to the case dir, or absolute) that must stay unchanged.
    inputs: Vec<String>,
    /// The command writes its inputs on success (`cow merge`): only sizes are checked then.
    writes_inputs: bool,
    /// An output file that did not exist before: must exist after success, must not after
    /// a failure.
    fresh_output: Option<String>,
    /// The command must refuse (non-zero exit, inputs unchanged).
    must_fail: bool,
    /// The input is valid: the command must succeed.
    must_succeed: bool,
    /// What a successful run must write to `fresh_output`.
    expect: Option<Vec<u8>>,
    /// What a successful run must leave in one of its inputs (`cow merge`: the origin).
    expect_input: Option<(String, Vec<u8>)>,
    /// Words a failure message must not use (a write error called "reading", item 14).
    stderr_lacks: Option<&'static str>,
}

impl Inv {
    fn new(label: &str, args: &[&str], inputs: &[&str]) -> Inv {
        Inv {
            label: label.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            prints: false,
            json: false,
            stdout: Out::Pipe,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            writes_inputs: false,
            fresh_output: None,
            must_fail: false,
            must_succeed: false,
            expect: None,
            expect_input: None,
            stderr_lacks: None,
        }
    }
    fn prints(mut self) -> Inv {
        self.prints = true;
        self.json = self.args.iter().any(|a| a == "--json");
        self
    }
    fn output(mut self, out: &str) -> Inv {
        self.fresh_output = Some(out.to_string());
        self
    }
    fn cmdline(&self) -> String {
        let mut s = String::from("dmsnap");
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        match self.stdout {
            Out::Pipe => {}
            Out::Full => s.push_str(" >/dev/full"),
            Out::Closed => s.push_str(" | true   # stdout closed"),
        }
        s
    }
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

struct Running {
    child: Child,
    start: Instant,
    out: Option<JoinHandle<Vec<u8>>>,
    err: JoinHandle<Vec<u8>>,
}

/// `prlimit` (util-linux) where there is one, else the shell's `ulimit -v` (busybox in the
/// test VM has that).
fn limited(bin: &Path) -> Command {
    static PRLIMIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let have = *PRLIMIT.get_or_init(|| {
        Command::new("prlimit")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if have {
        let mut c = Command::new("prlimit");
        c.arg(format!("--as={MEM_LIMIT}")).arg("--").arg(bin);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "ulimit -v {} && exec \"$0\" \"$@\"",
                MEM_LIMIT >> 10
            ))
            .arg(bin);
        c
    }
}

/// Where reproductions go: `$CARGO_TARGET_TMPDIR/hostile`, else (a test binary run
/// elsewhere, as in the VM) the temp dir.
fn save_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let t = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
        if std::fs::create_dir_all(&t).is_ok() {
            t
        } else {
            std::env::temp_dir().join("devmapper-hostile")
        }
    })
    .clone()
}

fn spawn(bin: &Path, dir: &Path, inv: &Inv) -> Running {
    let mut cmd = limited(bin);
    cmd.args(&inv.args).current_dir(dir);
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    match inv.stdout {
        Out::Pipe => {
            cmd.stdout(Stdio::piped());
        }
        Out::Closed => {
            // The read end is closed before the command starts: its first write fails.
            let (r, w) = nix::unistd::pipe().unwrap();
            drop(r);
            cmd.stdout(Stdio::from(w));
        }
        Out::Full => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            cmd.stdout(Stdio::from(f));
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin:?} under a memory limit: {e}"));
    let out = child.stdout.take().map(reader);
    let err = reader(child.stderr.take().unwrap());
    Running {
        child,
        start: Instant::now(),
        out,
        err,
    }
}

fn finish(mut r: Running, timed_out: bool) -> Outcome {
    if timed_out {
        let _ = r.child.kill();
    }
    let status = r.child.wait().unwrap();
    let elapsed = r.start.elapsed();
    Outcome {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        elapsed,
        stdout: r.out.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: r.err.join().unwrap(),
    }
}

/// Run every invocation in `dir`, at most `parallel` at a time, each killed after
/// [`TIMEOUT`].
fn run_all(dirs: &[PathBuf], invs: &[Inv], parallel: usize) -> Vec<Outcome> {
    let bin = dmsnap();
    let mut results: Vec<Option<Outcome>> = (0..invs.len()).map(|_| None).collect();
    let mut running: Vec<(usize, Running)> = Vec::new();
    let mut next = 0;
    while next < invs.len() || !running.is_empty() {
        while running.len() < parallel && next < invs.len() {
            running.push((next, spawn(&bin, &dirs[next], &invs[next])));
            next += 1;
        }
        let mut i = 0;
        let mut progressed = false;
        while i < running.len() {
            let done = running[i].1.child.try_wait().unwrap().is_some();
            let late = running[i].1.start.elapsed() > TIMEOUT;
            if done || late {
                let (k, r) = running.swap_remove(i);
                results[k] = Some(finish(r, !done));
                progressed = true;
            } else {
                i += 1;
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    results.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------------------------------
// Checking a run

/// What a file is, for "inputs unchanged".
#[derive(Clone, Debug, PartialEq)]
enum Snap {
    /// The whole content (compared byte for byte: cheaper than hashing in a debug build).
    File {
        len: u64,
        bytes: Vec<u8>,
    },
    Other(String),
}

fn snap(dir: &Path, name: &str) -> Snap {
    let p = dir.join(name);
    match std::fs::symlink_metadata(&p) {
        Err(e) => Snap::Other(format!("missing ({})", e.kind())),
        Ok(m) if m.file_type().is_symlink() => {
            // Follow: the target is what must not change.
            match std::fs::metadata(&p) {
                Ok(t) if t.is_file() => file_snap(&p),
                Ok(t) => Snap::Other(format!("link to {:?}", t.file_type())),
                Err(e) => Snap::Other(format!("dangling ({})", e.kind())),
            }
        }
        Ok(m) if m.is_file() => file_snap(&p),
        Ok(m) if m.file_type().is_fifo() => Snap::Other("fifo".into()),
        Ok(m) => Snap::Other(format!("{:?}", m.file_type())),
    }
}

fn file_snap(p: &Path) -> Snap {
    let bytes = std::fs::read(p).unwrap();
    Snap::File {
        len: bytes.len() as u64,
        bytes,
    }
}

/// Where the panic happened: `src/x.rs:1:2`, or the first line of the message.
fn panic_site(stderr: &str) -> String {
    for l in stderr.lines() {
        if let Some(at) = l.find("panicked at ") {
            let rest = &l[at + "panicked at ".len()..];
            return rest.trim_end_matches(':').to_string();
        }
    }
    stderr
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}

/// The violated properties of one run (empty: all hold).
fn check(
    dir: &Path,
    inv: &Inv,
    o: &Outcome,
    before: &[Snap],
    after: &[Snap],
    out_existed: bool,
) -> Vec<String> {
    let mut v = Vec::new();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.timed_out {
        v.push(format!("hang (killed after {} s)", TIMEOUT.as_secs()));
    } else if let Some(sig) = o.signal {
        let pipe = sig == libc::SIGPIPE && inv.stdout == Out::Closed;
        if !pipe {
            if stderr.contains("memory allocation of") {
                v.push("out of memory (allocation failed, abort)".into());
            } else if stderr.contains("has overflowed its stack") {
                v.push("stack overflow".into());
            } else if stderr.contains("panicked") {
                v.push(format!(
                    "panic (then signal {sig}) at {}",
                    panic_site(&stderr)
                ));
            } else {
                v.push(format!("killed by signal {sig}"));
            }
        }
    } else if o.code == Some(101) || stderr.contains("panicked") {
        v.push(format!("panic at {}", panic_site(&stderr)));
    } else if stderr.contains("out of memory") || stderr.contains("memory allocation") {
        // A clean exit, but only because the limit stopped an unbounded allocation.
        v.push(format!("ran into the {} MiB memory limit", MEM_LIMIT >> 20));
    }
    let failed = !o.timed_out && o.code != Some(0);
    let ok = o.code == Some(0);
    if v.is_empty() {
        if inv.must_fail && ok {
            v.push("exit 0 where it must refuse".into());
        }
        if inv.must_succeed && failed {
            v.push("error on valid input".into());
        }
        match inv.stdout {
            Out::Pipe => {
                if ok && inv.prints && o.stdout.is_empty() {
                    v.push("exit 0 with nothing on stdout".into());
                }
                if ok && inv.json && serde_json::from_slice::<serde_json::Value>(&o.stdout).is_err()
                {
                    v.push("exit 0 but --json stdout is not one JSON document".into());
                }
                if failed && !o.stdout.is_empty() {
                    v.push("error exit with output on stdout".into());
                }
                if failed && o.stderr.is_empty() {
                    v.push("error exit with nothing on stderr".into());
                }
                // Messages that do not say what is wrong (item 14).
                for raw in ["failed to fill whole buffer", "Illegal seek"] {
                    if failed && stderr.contains(raw) {
                        v.push(format!("error message says only {raw:?}"));
                    }
                }
                if let Some(w) = inv.stderr_lacks
                    && failed
                    && stderr.contains(w)
                {
                    v.push(format!("error message says {w:?}"));
                }
            }
            Out::Full | Out::Closed => {
                if ok && inv.prints {
                    v.push(format!("exit 0 although stdout is {:?}", inv.stdout));
                }
            }
        }
        if let Some(out) = &inv.fresh_output {
            let exists = dir.join(out).exists();
            if failed && exists && !out_existed {
                v.push("failed export left an output file behind".into());
            }
            if ok && !exists {
                v.push("exit 0 but no output file".into());
            }
            if ok
                && exists
                && let Some(want) = &inv.expect
                && std::fs::read(dir.join(out)).ok().as_ref() != Some(want)
            {
                v.push(
                    "exit 0 but the output is not the expected content (silent wrong answer)"
                        .into(),
                );
            }
        }
    }
    if ok
        && let Some((name, want)) = &inv.expect_input
        && std::fs::read(dir.join(name)).ok().as_ref() != Some(want)
    {
        v.push(format!(
            "exit 0 but {} is not the snapshot's content",
            role(name)
        ));
    }
    for ((name, b), a) in inv.inputs.iter().zip(before).zip(after) {
        if b == a {
            continue;
        }
        let resized = match (b, a) {
            (Snap::File { len: x, .. }, Snap::File { len: y, .. }) => x != y,
            _ => true,
        };
        if resized {
            v.push(format!("input {} resized or replaced", role(name)));
        } else if !(inv.writes_inputs && ok) {
            v.push(format!("input {} changed", role(name)));
        }
    }
    v
}

/// Properties across the runs of one case: a command and its `--json` variant agree on
/// success; `lvm plan` does not succeed where `lvm scan` of the same PVs fails.
fn cross_check(invs: &[Inv], outs: &[Outcome], found: &mut [Vec<String>]) {
    let key =
        |i: &Inv| -> Vec<String> { i.args.iter().filter(|a| *a != "--json").cloned().collect() };
    let done = |o: &Outcome| !o.timed_out && o.signal.is_none() && o.code != Some(101);
    for (a, ia) in invs.iter().enumerate() {
        if !ia.json || ia.stdout != Out::Pipe || !done(&outs[a]) {
            continue;
        }
        for (b, ib) in invs.iter().enumerate() {
            if a != b && !ib.json && ib.stdout == Out::Pipe && key(ib) == key(ia) && done(&outs[b])
            {
                let (oa, ob) = (outs[a].code == Some(0), outs[b].code == Some(0));
                if oa != ob {
                    found[a].push(format!(
                        "exit {} but the text variant exits {}",
                        outs[a].code.unwrap_or(-1),
                        outs[b].code.unwrap_or(-1)
                    ));
                }
            }
        }
    }
    for (a, ia) in invs.iter().enumerate() {
        if ia.args.get(1).map(String::as_str) != Some("plan") || outs[a].code != Some(0) {
            continue;
        }
        let pvs: Vec<&String> = ia.args[2..].iter().filter(|x| *x != "--json").collect();
        for (b, ib) in invs.iter().enumerate() {
            let scan_pvs: Vec<&String> =
                ib.args.iter().skip(2).filter(|x| *x != "--json").collect();
            if ib.args.get(1).map(String::as_str) == Some("scan")
                && scan_pvs == pvs
                && done(&outs[b])
                && outs[b].code != Some(0)
            {
                found[a].push("exit 0 although lvm scan of the same PVs fails".into());
                break;
            }
        }
    }
}

/// `lvm plan --json` that succeeds accounts for every visible LV `lvm scan --json` of the
/// same PVs lists: as a device or as skipped with a reason ("plan never silently leaves a
/// device out", item 5).
fn plan_covers_scan(invs: &[Inv], outs: &[Outcome], found: &mut [Vec<String>]) {
    use serde_json::Value;
    let parsed = |k: usize| -> Option<Value> {
        (outs[k].code == Some(0) && invs[k].json && invs[k].stdout == Out::Pipe)
            .then(|| serde_json::from_slice(&outs[k].stdout).ok())
            .flatten()
    };
    let sub = |i: &Inv| i.args.get(1).cloned().unwrap_or_default();
    let pvs = |i: &Inv| -> Vec<String> {
        i.args
            .iter()
            .skip(2)
            .filter(|x| *x != "--json")
            .cloned()
            .collect()
    };
    for (a, ia) in invs.iter().enumerate() {
        let Some(plan) = (sub(ia) == "plan").then(|| parsed(a)).flatten() else {
            continue;
        };
        let Some(scan) = invs
            .iter()
            .enumerate()
            .find(|(_, ib)| sub(ib) == "scan" && ib.json && pvs(ib) == pvs(ia))
            .and_then(|(b, _)| parsed(b))
        else {
            continue;
        };
        let mut planned = std::collections::BTreeSet::new();
        for key in ["devices", "skipped"] {
            for d in plan[key].as_array().into_iter().flatten() {
                if let Some(lv) = d["lv"].as_str() {
                    planned.insert(lv.to_string());
                }
            }
        }
        let left_out = scan["vgs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|vg| vg["lvs"].as_array().into_iter().flatten())
            .filter(|lv| lv["visible"] == Value::Bool(true))
            .filter_map(|lv| lv["name"].as_str())
            .any(|n| !planned.contains(n));
        if left_out {
            found[a].push("exit 0 but leaves out an LV that lvm scan lists".into());
        }
    }
}

/// A file name without the case-specific parts, for class names.
fn role(name: &str) -> String {
    name.trim_start_matches("m1-")
        .trim_start_matches("m2-")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Collecting failure classes

struct Example {
    count: usize,
    recipe: String,
}

/// Every failure class seen by one test, with the first example of each.
struct Survey {
    test: &'static str,
    classes: BTreeMap<String, Example>,
    cases: usize,
    runs: usize,
    slowest: Duration,
    /// Per command: (runs, exit 0): shows how far the inputs get past the first checks.
    ok: BTreeMap<String, (usize, usize)>,
}

impl Survey {
    fn new(test: &'static str) -> Survey {
        let _ = std::fs::remove_dir_all(save_root().join(test));
        Survey {
            test,
            classes: BTreeMap::new(),
            cases: 0,
            runs: 0,
            slowest: Duration::ZERO,
            ok: BTreeMap::new(),
        }
    }

    fn save_dir(&self) -> PathBuf {
        save_root()
            .join(self.test)
            .join(self.classes.len().to_string())
    }

    /// Write `files`, run `invs`, record every violation.
    fn case(&mut self, case: &Case, invs: &[Inv], parallel: usize) {
        self.run_case(case, invs, parallel, false);
    }

    /// As [`Survey::case`], each run in a directory of its own (runs that may damage the
    /// files, or FIFOs that one run's open would unblock for another).
    fn case_isolated(&mut self, case: &Case, invs: &[Inv], parallel: usize) {
        self.run_case(case, invs, parallel, true);
    }

    fn run_case(&mut self, case: &Case, invs: &[Inv], parallel: usize, isolated: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..invs.len())
            .map(|k| {
                let d = if isolated {
                    tmp.path().join(k.to_string())
                } else {
                    tmp.path().to_path_buf()
                };
                if isolated || k == 0 {
                    case.write(&d);
                }
                d
            })
            .collect();
        // One read per distinct file (the runs of a shared directory share their inputs).
        let mut cache: BTreeMap<PathBuf, Snap> = BTreeMap::new();
        let snap_all = |cache: &mut BTreeMap<PathBuf, Snap>, d: &Path, names: &[String]| {
            names
                .iter()
                .map(|n| cache.entry(d.join(n)).or_insert_with(|| snap(d, n)).clone())
                .collect::<Vec<Snap>>()
        };
        let before: Vec<Vec<Snap>> = invs
            .iter()
            .zip(&dirs)
            .map(|(i, d)| snap_all(&mut cache, d, &i.inputs))
            .collect();
        let existed: Vec<bool> = invs
            .iter()
            .zip(&dirs)
            .map(|(i, d)| i.fresh_output.as_ref().is_some_and(|o| d.join(o).exists()))
            .collect();
        let outcomes = run_all(&dirs, invs, parallel);
        cache.clear();
        self.cases += 1;
        let mut found: Vec<Vec<String>> = Vec::new();
        for (k, (inv, o)) in invs.iter().zip(&outcomes).enumerate() {
            self.runs += 1;
            self.slowest = self.slowest.max(o.elapsed);
            let e = self.ok.entry(inv.label.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(o.code == Some(0));
            let dir = &dirs[k];
            let after = snap_all(&mut cache, dir, &inv.inputs);
            found.push(check(dir, inv, o, &before[k], &after, existed[k]));
        }
        if let Some(all) = std::env::var_os("HOSTILE_SAVE_ALL") {
            // Every case, failing or not, for looking at by hand.
            let d = Path::new(&all).join(self.test).join(self.cases.to_string());
            case.write(&d);
            let lines: Vec<String> = invs.iter().map(Inv::cmdline).collect();
            let _ = std::fs::write(d.join("cmds.txt"), lines.join("\n") + "\n");
        }
        cross_check(invs, &outcomes, &mut found);
        plan_covers_scan(invs, &outcomes, &mut found);
        for ((inv, o), symptoms) in invs.iter().zip(&outcomes).zip(found) {
            for symptom in symptoms {
                let class = format!("{}: {symptom}", inv.label);
                if let Some(e) = self.classes.get_mut(&class) {
                    e.count += 1;
                    continue;
                }
                let save = self.save_dir();
                case.write(&save);
                let recipe = format!(
                    "cd {} && {}\n    ({}) stderr: {}\n    case: {}",
                    save.display(),
                    inv.cmdline(),
                    match (o.code, o.signal, o.timed_out) {
                        (_, _, true) => "killed".to_string(),
                        (Some(c), _, _) => format!("exit {c}"),
                        (_, Some(s), _) => format!("signal {s}"),
                        _ => "?".into(),
                    },
                    String::from_utf8_lossy(&o.stderr)
                        .chars()
                        .take(240)
                        .collect::<String>()
                        .replace('\n', "\\n"),
                    case.what,
                );
                let _ = std::fs::write(save.join("cmd.txt"), format!("{recipe}\n"));
                self.classes.insert(class, Example { count: 1, recipe });
            }
        }
    }

    fn finish(self) {
        let mut report = format!(
            "{}: {} cases, {} runs, slowest run {:?}, {} failure class(es)\n",
            self.test,
            self.cases,
            self.runs,
            self.slowest,
            self.classes.len()
        );
        let ok: Vec<String> = self
            .ok
            .iter()
            .map(|(l, (n, k))| format!("{l} {k}/{n}"))
            .collect();
        let _ = writeln!(report, "exit 0 per command: {}", ok.join(", "));
        for (class, e) in &self.classes {
            let _ = writeln!(report, "- {class} (x{})\n    {}", e.count, e.recipe);
        }
        let root = save_root().join(self.test);
        let _ = std::fs::create_dir_all(&root);
        let _ = std::fs::write(root.join("summary.txt"), &report);
        eprintln!("{report}");
        assert!(self.classes.is_empty(), "{report}");
    }
}

/// The files of one case, in memory (written into a fresh directory per run, and again
/// for a reproduction).
#[derive(Clone, Debug, Default)]
struct Case {
    files: Vec<(String, Vec<u8>)>,
    /// Symlinks and hard links `(name, target)` made after the files.
    symlinks: Vec<(String, String)>,
    hardlinks: Vec<(String, String)>,
    fifos: Vec<String>,
    dirs: Vec<String>,
    /// How the case was made (for the recipe).
    what: String,
}

impl Case {
    fn add(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.push((name.to_string(), bytes));
    }

    fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for (n, b) in &self.files {
            std::fs::write(dir.join(n), b).unwrap();
        }
        for (n, t) in &self.symlinks {
            let _ = std::fs::remove_file(dir.join(n));
            std::os::unix::fs::symlink(t, dir.join(n)).unwrap();
        }
        for (n, t) in &self.hardlinks {
            let _ = std::fs::remove_file(dir.join(n));
            std::fs::hard_link(dir.join(t), dir.join(n)).unwrap();
        }
        for n in &self.fifos {
            let p = dir.join(n);
            if !p.exists() {
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            }
        }
        for n in &self.dirs {
            std::fs::create_dir_all(dir.join(n)).unwrap();
        }
    }
}

/// Cases per random test: `PROPTEST_CASES` if set, else `default`.
fn config(default: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    // Every case is recorded by the survey; nothing to shrink or persist.
    c.failure_persistence = None;
    c.max_shrink_iters = 0;
    c
}

fn run_random<S: Strategy>(
    test: &'static str,
    cases: u32,
    strategy: S,
    f: impl Fn(S::Value, &mut Survey),
) where
    S::Value: std::fmt::Debug,
{
    let survey = Mutex::new(Survey::new(test));
    let mut runner = TestRunner::new(config(cases));
    runner
        .run(&strategy, |v| {
            f(v, &mut survey.lock().unwrap());
            Ok(())
        })
        .unwrap();
    survey.into_inner().unwrap().finish();
}

// ---------------------------------------------------------------------------------------
// The commands

/// Every offline `lvm` command over `pvs` (metadata text file `meta`), exporting `lvs`.
fn lvm_invocations(pvs: &[&str], meta: &str, vg: &str, lvs: &[(String, bool)]) -> Vec<Inv> {
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .map(|s| s.to_string())
            .chain(pvs.iter().map(|s| s.to_string()))
            .collect()
    };
    let mk = |label: &str, args: Vec<String>, inputs: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        Inv::new(label, &a, inputs)
    };
    let mut v = vec![
        mk("lvm scan", with(&["lvm", "scan"]), pvs).prints(),
        mk("lvm scan --json", with(&["lvm", "scan", "--json"]), pvs).prints(),
        Inv::new(
            "lvm scan --metadata",
            &["lvm", "scan", "--metadata", meta],
            &[meta],
        )
        .prints(),
        Inv::new(
            "lvm scan --metadata --json",
            &["lvm", "scan", "--metadata", meta, "--json"],
            &[meta],
        )
        .prints(),
        mk("lvm plan", with(&["lvm", "plan"]), pvs).prints(),
        mk("lvm plan --json", with(&["lvm", "plan", "--json"]), pvs).prints(),
    ];
    for pv in pvs {
        v.push(Inv::new("lvm metadata", &["lvm", "metadata", pv], &[pv]).prints());
    }
    for (i, (lv, snapshot)) in lvs.iter().enumerate() {
        let out = format!("lv-out{i}.img");
        let target = format!("{vg}/{lv}");
        let mut args = vec!["lvm", "export", &target, "-o", &out];
        args.extend_from_slice(pvs);
        v.push(Inv::new("lvm export", &args, pvs).output(&out));
        if *snapshot {
            let out = format!("lv-raw{i}.img");
            let mut args = vec!["lvm", "export", "--raw", &target, "-o", &out];
            args.extend_from_slice(pvs);
            v.push(Inv::new("lvm export --raw", &args, pvs).output(&out));
        }
    }
    v
}

/// Every offline `cow` command over `origin` and `cow`; the merges work on copies (made by
/// [`merge_copies`]).
fn cow_invocations(origin: &str, cow: &str) -> Vec<Inv> {
    let m = |p: &str, n: &str| format!("{p}-{n}");
    let (o1, c1, o2, c2) = (m("m1", origin), m("m1", cow), m("m2", origin), m("m2", cow));
    let mut merge1 = Inv::new(
        "cow merge",
        &["cow", "merge", "--yes", "--origin", &o1, "--cow", &c1],
        &[&o1, &c1],
    );
    merge1.writes_inputs = true;
    let mut merge2 = Inv::new(
        "cow merge --force",
        &[
            "cow", "merge", "--yes", "--force", "--origin", &o2, "--cow", &c2,
        ],
        &[&o2, &c2],
    );
    merge2.writes_inputs = true;
    vec![
        Inv::new("cow inspect", &["cow", "inspect", cow], &[cow]).prints(),
        Inv::new(
            "cow inspect --json",
            &["cow", "inspect", "--json", cow],
            &[cow],
        )
        .prints(),
        Inv::new(
            "cow export",
            &[
                "cow",
                "export",
                "--origin",
                origin,
                "--cow",
                cow,
                "-o",
                "cow-out.img",
            ],
            &[origin, cow],
        )
        .output("cow-out.img"),
        Inv::new(
            "cow export --force",
            &[
                "cow",
                "export",
                "--force",
                "--origin",
                origin,
                "--cow",
                cow,
                "-o",
                "cow-out2.img",
            ],
            &[origin, cow],
        )
        .output("cow-out2.img"),
        merge1,
        merge2,
    ]
}

/// The copies [`cow_invocations`]' merges write to.
fn merge_copies(case: &mut Case, origin: &str, cow: &str) {
    for p in ["m1", "m2"] {
        for n in [origin, cow] {
            let bytes = case
                .files
                .iter()
                .find(|(f, _)| f == n)
                .map(|(_, b)| b.clone())
                .unwrap();
            case.add(&format!("{p}-{n}"), bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// A small deterministic generator for the base structures (proptest picks the seed and
/// the mutations).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
    }
}

const EXTREMES: &[Num] = &[
    0,
    1,
    -1,
    2,
    3,
    7,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    1 << 53,
    1 << 55,
    (1 << 55) + 1,
    1 << 62,
    i64::MAX as Num,
    1 << 63,
    u64::MAX as Num,
    1 << 64,
    i64::MIN as Num,
    -(1 << 64),
    1_000_000_000_000_000_000_000_000_000_000,
];

const EXTREMES_U64: &[u64] = &[
    0,
    1,
    511,
    512,
    4096,
    65536,
    1 << 32,
    1 << 55,
    1 << 63,
    u64::MAX - 511,
    u64::MAX,
];

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        3 => proptest::sample::select(EXTREMES),
        1 => 0..64i128,
        1 => any::<u64>().prop_map(Num::from),
    ]
}

/// A change to a valid VG model.
#[derive(Clone, Debug)]
enum VgMut {
    /// Set a number: `field` picks which (of which PV/LV/segment/stripe: `a`, `b`, `c`).
    Num {
        field: u8,
        a: u8,
        b: u8,
        c: u8,
        value: Num,
    },
    DupPvName(u8, u8),
    DupPvId(u8, u8),
    DupLvName(u8, u8),
    /// A stripe of LV `lv` names LV `target` instead of a PV.
    StripeOntoLv {
        lv: u8,
        target: u8,
    },
    /// LVs striped `width` ways onto the next, `depth` deep (item 8).
    StripeChain {
        depth: u8,
        width: u8,
    },
    SnapCycle,
    OriginIsSnapshot,
    SnapshotOfCow,
    SharedCow,
    /// A `stripe_size` that does not divide the per-stripe length (item 5).
    OddStripeSize(u8),
    SegType(u8, &'static str),
    NoStripes(u8),
}

fn vg_mut() -> impl Strategy<Value = VgMut> {
    let idx = || any::<u8>();
    prop_oneof![
        6 => (0u8..12, idx(), idx(), idx(), num())
            .prop_map(|(field, a, b, c, value)| VgMut::Num { field, a, b, c, value }),
        1 => (idx(), idx()).prop_map(|(a, b)| VgMut::DupPvName(a, b)),
        1 => (idx(), idx()).prop_map(|(a, b)| VgMut::DupPvId(a, b)),
        1 => (idx(), idx()).prop_map(|(a, b)| VgMut::DupLvName(a, b)),
        1 => (idx(), idx()).prop_map(|(lv, target)| VgMut::StripeOntoLv { lv, target }),
        1 => (1u8..=18, 2u8..=4).prop_map(|(depth, width)| VgMut::StripeChain { depth, width }),
        1 => Just(VgMut::SnapCycle),
        1 => Just(VgMut::OriginIsSnapshot),
        1 => Just(VgMut::SnapshotOfCow),
        1 => Just(VgMut::SharedCow),
        1 => idx().prop_map(VgMut::OddStripeSize),
        1 => (idx(), proptest::sample::select(&[
            "thin", "mirror", "raid1", "", "striped+foo", "snapshot", "zero", "error", "thin-pool",
            "cache", "linear",
        ][..])).prop_map(|(a, t)| VgMut::SegType(a, t)),
        1 => idx().prop_map(VgMut::NoStripes),
    ]
}

/// A change to the rendered text.
#[derive(Clone, Debug)]
enum TextMut {
    Flip {
        pos: u32,
        bit: u8,
    },
    Truncate(u16),
    DeleteLine(u16),
    DupLine(u16),
    /// `n` nested sections / lists at the top.
    DeepSections(u32),
    DeepLists(u32),
    LongString(u32),
    ManyKeys(u32),
}

fn text_mut() -> impl Strategy<Value = TextMut> {
    prop_oneof![
        3 => (any::<u32>(), 0u8..8).prop_map(|(pos, bit)| TextMut::Flip { pos, bit }),
        1 => any::<u16>().prop_map(TextMut::Truncate),
        1 => any::<u16>().prop_map(TextMut::DeleteLine),
        1 => any::<u16>().prop_map(TextMut::DupLine),
        1 => (1u32..50_000).prop_map(TextMut::DeepSections),
        1 => (1u32..50_000).prop_map(TextMut::DeepLists),
        1 => (1u32..1_000_000).prop_map(TextMut::LongString),
        1 => (1u32..30_000).prop_map(TextMut::ManyKeys),
    ]
}

/// A change to a PV image.
#[derive(Clone, Debug)]
enum ImgMut {
    /// Flip a bit in the first 64 KiB (label, mda header, text), CRCs left stale.
    Flip {
        pos: u16,
        bit: u8,
    },
    /// Set a label field and reseal: 0 sector, 1 offset_xl, 2 device_size, 3 data area
    /// offset, 4 data size, 5 mda offset, 6 mda size.
    Label {
        field: u8,
        value: u64,
    },
    /// Set an mda header field and reseal: 0 version, 1 start, 2 size, 3 text offset,
    /// 4 text size, 5 flags, 6 a second copy's offset, 7 its size.
    Mda {
        field: u8,
        value: u64,
    },
    Truncate(u16),
}

fn u64_extreme() -> impl Strategy<Value = u64> {
    prop_oneof![3 => proptest::sample::select(EXTREMES_U64), 1 => any::<u64>(), 1 => 0u64..70_000]
}

fn img_mut() -> impl Strategy<Value = ImgMut> {
    prop_oneof![
        2 => (any::<u16>(), 0u8..8).prop_map(|(pos, bit)| ImgMut::Flip { pos, bit }),
        2 => (0u8..7, u64_extreme()).prop_map(|(field, value)| ImgMut::Label { field, value }),
        2 => (0u8..8, u64_extreme()).prop_map(|(field, value)| ImgMut::Mda { field, value }),
        1 => any::<u16>().prop_map(ImgMut::Truncate),
    ]
}

/// A valid VG on 1-3 PVs, its PV images' data (PE areas) and the LVs to export.
struct World {
    vg: VgSpec,
    /// Per PV: PE area bytes.
    pe_data: Vec<Vec<u8>>,
    /// The snapshot, if any.
    snap: Option<SnapTruth>,
}

/// What the snapshot of a [`World`] holds.
struct SnapTruth {
    cow_lv: String,
    origin_lv: String,
    merging: bool,
    /// `(origin chunk, 4 KiB of data)`.
    exceptions: Vec<(u64, Vec<u8>)>,
    /// The COW LV's own content.
    store: Vec<u8>,
}

impl World {
    /// The content of a linear or striped LV of the unmutated VG, from the PE data.
    fn lv_content(&self, name: &str) -> Option<Vec<u8>> {
        let lv = self.vg.lvs.iter().find(|l| l.name == name)?;
        let es = self.vg.extent_size as usize * 512;
        let mut out = Vec::new();
        for seg in &lv.segments {
            let SegKind::Striped {
                stripe_size,
                stripes,
                ..
            } = &seg.kind
            else {
                return None;
            };
            let w = stripes.len();
            let per = seg.extent_count as usize / w * es;
            let ss = stripe_size.map_or(per, |s| s as usize * 512);
            let src: Vec<&[u8]> = stripes
                .iter()
                .map(|(pv, pe)| {
                    let i = self.vg.pvs.iter().position(|p| &p.name == pv)?;
                    let at = *pe as usize * es;
                    self.pe_data[i].get(at..at + per)
                })
                .collect::<Option<_>>()?;
            for o in (0..per * w).step_by(ss.min(per)) {
                let chunk = o / ss;
                let (stripe, row) = (chunk % w, chunk / w);
                let at = row * ss;
                out.extend_from_slice(&src[stripe][at..at + ss.min(per)]);
            }
        }
        Some(out)
    }

    /// What `lvm export VG/LV` must write for the unmutated VG (`None`: no expectation).
    fn expected_export(&self, name: &str, raw: bool) -> Option<Vec<u8>> {
        match &self.snap {
            Some(s) if s.cow_lv == name => {
                if raw {
                    Some(s.store.clone())
                } else if s.merging {
                    None
                } else {
                    let mut o = self.lv_content(&s.origin_lv)?;
                    for (old, data) in &s.exceptions {
                        let at = *old as usize * 4096;
                        o[at..at + 4096].copy_from_slice(data);
                    }
                    Some(o)
                }
            }
            _ if raw => None,
            _ => self.lv_content(name),
        }
    }
}

fn pick<T>(v: &[T], i: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i as usize % v.len()])
}

fn pick_mut<T>(v: &mut [T], i: u8) -> Option<&mut T> {
    let n = v.len();
    (n != 0).then(|| &mut v[i as usize % n])
}

fn linear(start: u64, count: u64, pv: &str, pe: u64) -> SegSpec {
    SegSpec {
        start_extent: start as Num,
        extent_count: count as Num,
        kind: SegKind::Striped {
            stripe_count: 1,
            stripe_size: None,
            stripes: vec![(pv.to_string(), pe as Num)],
        },
    }
}

fn base_world(seed: u64) -> World {
    let mut r = Rng(seed);
    let es = 8u64 << r.below(2); // 8 or 16 sectors
    let ext_bytes = es * 512;
    let npv = r.range(1, 3) as usize;
    let mut pvs = Vec::new();
    let mut free = Vec::new();
    for i in 0..npv {
        let pe_count = r.range(16, 28);
        let len = LAYOUT.pe_start + pe_count * ext_bytes;
        pvs.push(PvSpec {
            name: format!("pv{i}"),
            id: make_id(seed ^ (i as u64 + 1)),
            pe_start: (LAYOUT.pe_start / 512) as Num,
            pe_count: pe_count as Num,
            dev_size: (r.below(4) != 0).then_some((len / 512) as Num),
        });
        free.push((0u64, pe_count));
    }
    let mut alloc = |r: &mut Rng, n: u64, avoid: &[usize]| -> Option<(usize, u64)> {
        let start = r.below(npv as u64) as usize;
        for k in 0..npv {
            let i = (start + k) % npv;
            if avoid.contains(&i) {
                continue;
            }
            if free[i].1 - free[i].0 >= n {
                let at = free[i].0;
                free[i].0 += n;
                return Some((i, at));
            }
        }
        None
    };
    let mut lvs = Vec::new();
    let nlv = r.range(1, 4);
    for k in 0..nlv {
        let name = format!("lv{k}");
        let mut segs = Vec::new();
        match r.below(3) {
            2 if npv >= 2 => {
                let w = r.range(2, npv as u64);
                let per = r.range(1, 2);
                let mut stripes = Vec::new();
                let mut used = Vec::new();
                for _ in 0..w {
                    if let Some((i, at)) = alloc(&mut r, per, &used) {
                        used.push(i);
                        stripes.push((pvs[i].name.clone(), at as Num));
                    }
                }
                if stripes.len() as u64 == w {
                    segs.push(SegSpec {
                        start_extent: 0,
                        extent_count: (w * per) as Num,
                        kind: SegKind::Striped {
                            stripe_count: w as Num,
                            stripe_size: Some(8),
                            stripes,
                        },
                    });
                }
            }
            1 => {
                let mut at_le = 0;
                for _ in 0..2 {
                    let n = r.range(1, 2);
                    if let Some((i, at)) = alloc(&mut r, n, &[]) {
                        segs.push(linear(at_le, n, &pvs[i].name, at));
                        at_le += n;
                    }
                }
            }
            _ => {
                let n = r.range(1, 3);
                if let Some((i, at)) = alloc(&mut r, n, &[]) {
                    segs.push(linear(0, n, &pvs[i].name, at));
                }
            }
        }
        if !segs.is_empty() {
            lvs.push(LvSpec {
                name,
                id: make_id(seed ^ (0x100 + k)),
                visible: true,
                segment_count: None,
                segments: segs,
            });
        }
    }
    // PE data: a pattern.
    let mut pe_data: Vec<Vec<u8>> = pvs
        .iter()
        .map(|p| {
            // Every 8 bytes say which PV and sector they are in: a read from the wrong
            // place shows, and reproductions compress well.
            let mut d = vec![0u8; p.pe_count as usize * ext_bytes as usize];
            let tag = (p.name.len() as u64) << 56 | (r.below(256) << 48);
            for (i, w) in d.chunks_mut(8).enumerate() {
                w.copy_from_slice(&(tag | (i as u64 / 64)).to_le_bytes());
            }
            d
        })
        .collect();
    // A snapshot of the first LV with a real COW store in its COW LV.
    let mut snap = None;
    if !lvs.is_empty() && r.below(2) == 0 {
        let n = r.range(2, 4);
        if let Some((i, at)) = alloc(&mut r, n, &[]) {
            let origin = lvs[0].name.clone();
            let origin_le: Num = lvs[0].segments.iter().map(|s| s.extent_count).sum();
            let origin_chunks = origin_le as u64 * ext_bytes / 4096;
            let cow_bytes = n * ext_bytes;
            let mut w = StoreWriter::new(8, cow_bytes).unwrap();
            let mut exceptions: Vec<(u64, Vec<u8>)> = Vec::new();
            for _ in 0..r.below(6) {
                let mut data = vec![0u8; 4096];
                r.fill(&mut data);
                let old = r.below(origin_chunks.max(1));
                if exceptions.iter().any(|e| e.0 == old) {
                    continue;
                }
                if w.push(old, &data).is_err() {
                    break;
                }
                exceptions.push((old, data));
            }
            let store = w.to_vec();
            let merging = r.below(4) == 0;
            snap = Some(SnapTruth {
                cow_lv: format!("{origin}_snap"),
                origin_lv: origin.clone(),
                merging,
                exceptions,
                store: store.clone(),
            });
            let off = (at * ext_bytes) as usize;
            pe_data[i][off..off + store.len()].copy_from_slice(&store);
            let cow = format!("{origin}_snap");
            lvs.push(LvSpec {
                name: cow.clone(),
                id: make_id(seed ^ 0x200),
                visible: true,
                segment_count: None,
                segments: vec![linear(0, n, &pvs[i].name, at)],
            });
            lvs.push(LvSpec {
                name: "snapshot0".into(),
                id: make_id(seed ^ 0x201),
                visible: false,
                segment_count: None,
                segments: vec![SegSpec {
                    start_extent: 0,
                    extent_count: origin_le,
                    kind: SegKind::Snapshot {
                        chunk_size: 8,
                        origin,
                        cow,
                        merging,
                    },
                }],
            });
        }
    }
    let vg = VgSpec {
        name: ["vg0", "my-vg", "v"][r.below(3) as usize].to_string(),
        id: make_id(seed ^ 0x300),
        seqno: r.range(1, 40) as Num,
        extent_size: es as Num,
        pvs,
        lvs,
    };
    World { vg, pe_data, snap }
}

fn snap_lv(name: &str, origin: &str, cow: &str, le: Num) -> LvSpec {
    LvSpec {
        name: name.to_string(),
        id: make_id(name.len() as u64 * 31 + origin.len() as u64),
        visible: false,
        segment_count: None,
        segments: vec![SegSpec {
            start_extent: 0,
            extent_count: le,
            kind: SegKind::Snapshot {
                chunk_size: 8,
                origin: origin.to_string(),
                cow: cow.to_string(),
                merging: false,
            },
        }],
    }
}

fn lv_name(vg: &VgSpec, i: usize) -> String {
    vg.lvs
        .get(i % vg.lvs.len().max(1))
        .map_or_else(|| "lv0".to_string(), |l| l.name.clone())
}

fn apply_vg_mut(vg: &mut VgSpec, m: &VgMut) {
    match m {
        VgMut::Num {
            field,
            a,
            b,
            c,
            value,
        } => {
            let v = *value;
            match field {
                0 => vg.extent_size = v,
                1 => vg.seqno = v,
                2..=4 => {
                    if let Some(pv) = pick_mut(&mut vg.pvs, *a) {
                        match field {
                            2 => pv.pe_start = v,
                            3 => pv.pe_count = v,
                            _ => pv.dev_size = Some(v),
                        }
                    }
                }
                11 => {
                    if let Some(lv) = pick_mut(&mut vg.lvs, *a) {
                        lv.segment_count = Some(v);
                    }
                }
                _ => {
                    let Some(lv) = pick_mut(&mut vg.lvs, *a) else {
                        return;
                    };
                    let Some(seg) = pick_mut(&mut lv.segments, *b) else {
                        return;
                    };
                    match (field, &mut seg.kind) {
                        (5, _) => seg.start_extent = v,
                        (6, _) => seg.extent_count = v,
                        (7, SegKind::Striped { stripe_count, .. }) => *stripe_count = v,
                        (8, SegKind::Striped { stripe_size, .. }) => *stripe_size = Some(v),
                        (9, SegKind::Striped { stripes, .. }) => {
                            if let Some(s) = pick_mut(stripes, *c) {
                                s.1 = v;
                            }
                        }
                        (10, SegKind::Snapshot { chunk_size, .. }) => *chunk_size = v,
                        _ => seg.extent_count = v,
                    }
                }
            }
        }
        VgMut::DupPvName(a, b) => {
            if let Some(name) = pick(&vg.pvs, *a).map(|p| p.name.clone())
                && let Some(pv) = pick_mut(&mut vg.pvs, *b)
            {
                pv.name = name;
            }
        }
        VgMut::DupPvId(a, b) => {
            if let Some(id) = pick(&vg.pvs, *a).map(|p| p.id)
                && let Some(pv) = pick_mut(&mut vg.pvs, *b)
            {
                pv.id = id;
            }
        }
        VgMut::DupLvName(a, b) => {
            if let Some(name) = pick(&vg.lvs, *a).map(|l| l.name.clone())
                && let Some(lv) = pick_mut(&mut vg.lvs, *b)
            {
                lv.name = name;
            }
        }
        VgMut::StripeOntoLv { lv, target } => {
            let t = lv_name(vg, *target as usize);
            if let Some(l) = pick_mut(&mut vg.lvs, *lv) {
                for s in &mut l.segments {
                    if let SegKind::Striped { stripes, .. } = &mut s.kind
                        && let Some(st) = stripes.first_mut()
                    {
                        *st = (t.clone(), 0);
                    }
                }
            }
        }
        VgMut::StripeChain { depth, width } => {
            let w = Num::from(*width);
            let pv = vg
                .pvs
                .first()
                .map_or_else(|| "pv0".into(), |p| p.name.clone());
            let d = *depth as usize;
            for k in 0..=d {
                let name = format!("chain{k}");
                let segments = if k == d {
                    vec![linear(0, w as u64, &pv, 0)]
                } else {
                    vec![SegSpec {
                        start_extent: 0,
                        extent_count: w,
                        kind: SegKind::Striped {
                            stripe_count: w,
                            stripe_size: Some(8),
                            stripes: (0..w).map(|_| (format!("chain{}", k + 1), 0)).collect(),
                        },
                    }]
                };
                vg.lvs.push(LvSpec {
                    name,
                    id: make_id(0x400 + k as u64),
                    visible: k == 0,
                    segment_count: None,
                    segments,
                });
            }
        }
        VgMut::SnapCycle => {
            let cow = lv_name(vg, 0);
            vg.lvs.push(snap_lv("snapA", "snapB", &cow, 1));
            vg.lvs.push(snap_lv("snapB", "snapA", &cow, 1));
        }
        VgMut::OriginIsSnapshot => {
            let cow = lv_name(vg, 1);
            let origin = if vg.lvs.iter().any(|l| l.name == "snapshot0") {
                "snapshot0".to_string()
            } else {
                "snapshot7".to_string()
            };
            vg.lvs.push(snap_lv("snapshot7", &origin, &cow, 1));
        }
        VgMut::SnapshotOfCow => {
            let (a, b, c) = (lv_name(vg, 0), lv_name(vg, 1), lv_name(vg, 2));
            vg.lvs.push(snap_lv("snapX", &a, &b, 1));
            vg.lvs.push(snap_lv("snapY", &b, &c, 1));
        }
        VgMut::SharedCow => {
            let (a, b, c) = (lv_name(vg, 0), lv_name(vg, 1), lv_name(vg, 2));
            vg.lvs.push(snap_lv("snapX", &a, &c, 1));
            vg.lvs.push(snap_lv("snapY", &b, &c, 1));
        }
        VgMut::OddStripeSize(a) => {
            let es = vg.extent_size;
            if let Some(l) = pick_mut(&mut vg.lvs, *a) {
                for s in &mut l.segments {
                    if let SegKind::Striped { stripe_size, .. } = &mut s.kind {
                        *stripe_size = Some(es * 3);
                    }
                }
            }
        }
        VgMut::SegType(a, t) => {
            if let Some(l) = pick_mut(&mut vg.lvs, *a)
                && let Some(s) = l.segments.first_mut()
            {
                s.kind = SegKind::Other(t.to_string());
            }
        }
        VgMut::NoStripes(a) => {
            if let Some(l) = pick_mut(&mut vg.lvs, *a) {
                for s in &mut l.segments {
                    if let SegKind::Striped { stripes, .. } = &mut s.kind {
                        stripes.clear();
                    }
                }
            }
        }
    }
}

fn apply_text_mut(t: &mut Vec<u8>, m: &TextMut) {
    let line_starts = |t: &[u8]| -> Vec<usize> {
        std::iter::once(0)
            .chain(
                t.iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect()
    };
    match m {
        TextMut::Flip { pos, bit } => {
            if !t.is_empty() {
                let n = t.len();
                t[*pos as usize % n] ^= 1 << bit;
            }
        }
        TextMut::Truncate(f) => {
            let n = t.len() * *f as usize / 65536;
            t.truncate(n);
        }
        TextMut::DeleteLine(i) | TextMut::DupLine(i) => {
            let ls = line_starts(t);
            let k = *i as usize % ls.len();
            let s = ls[k];
            let e = ls.get(k + 1).copied().unwrap_or(t.len());
            let line = t[s..e].to_vec();
            if matches!(m, TextMut::DeleteLine(_)) {
                t.drain(s..e);
            } else {
                t.splice(s..s, line);
            }
        }
        TextMut::DeepSections(n) => {
            let n = *n as usize;
            let mut p = b"x {\n".repeat(n);
            p.extend(b"}\n".repeat(n));
            t.splice(0..0, p);
        }
        TextMut::DeepLists(n) => {
            let n = *n as usize;
            let mut p = b"x = ".to_vec();
            p.extend(b"[".repeat(n));
            p.extend(b"]".repeat(n));
            p.push(b'\n');
            t.splice(0..0, p);
        }
        TextMut::LongString(n) => {
            let mut p = b"x = \"".to_vec();
            p.extend(b"\\a".repeat(*n as usize / 2));
            p.extend(b"\"\n");
            t.splice(0..0, p);
        }
        TextMut::ManyKeys(n) => {
            let mut p = Vec::new();
            for i in 0..*n {
                p.extend(format!("k{i} = {i}\n").as_bytes());
            }
            t.splice(0..0, p);
        }
    }
}

fn apply_img_mut(img: &mut Vec<u8>, m: &ImgMut) {
    let set = |img: &mut Vec<u8>, at: usize, v: &[u8]| {
        if img.len() >= at + v.len() {
            img[at..at + v.len()].copy_from_slice(v);
        }
    };
    match m {
        ImgMut::Flip { pos, bit } => {
            let n = img.len().min(65536);
            if n > 0 {
                img[*pos as usize % n] ^= 1 << bit;
            }
        }
        ImgMut::Label { field, value } => {
            let at = 512 + [8usize, 20, 64, 72, 80, 104, 112][*field as usize % 7];
            if *field == 1 {
                set(img, at, &(*value as u32).to_le_bytes());
            } else {
                set(img, at, &value.to_le_bytes());
            }
            if img.len() >= 1024 {
                common::seal_label(&mut img[512..1024]);
            }
        }
        ImgMut::Mda { field, value } => {
            let h = LAYOUT.mda_start as usize;
            let at = h + [20usize, 24, 32, 40, 48, 60, 64, 72][*field as usize % 8];
            if matches!(field % 8, 0 | 5) {
                set(img, at, &(*value as u32).to_le_bytes());
            } else {
                set(img, at, &value.to_le_bytes());
            }
            if img.len() >= h + 512 {
                common::seal_mda(&mut img[h..h + 512]);
            }
        }
        ImgMut::Truncate(f) => {
            let n = img.len() * *f as usize / 65536;
            img.truncate(n);
        }
    }
}

/// Generated LVM case: seed of the valid VG, mutations of the model, the text, the images.
#[derive(Clone, Debug)]
struct LvmCase {
    seed: u64,
    vg_muts: Vec<VgMut>,
    text_muts: Vec<TextMut>,
    img_muts: Vec<(u8, ImgMut)>,
    /// Write the text near the end of the ring so that it wraps.
    wrap: bool,
}

fn lvm_case() -> impl Strategy<Value = LvmCase> {
    (
        any::<u64>(),
        proptest::collection::vec(vg_mut(), 0..3),
        prop_oneof![3 => Just(vec![]), 1 => proptest::collection::vec(text_mut(), 1..3)],
        prop_oneof![3 => Just(vec![]), 1 => proptest::collection::vec((any::<u8>(), img_mut()), 1..3)],
        any::<bool>(),
    )
        .prop_map(|(seed, vg_muts, text_muts, img_muts, wrap)| LvmCase {
            seed,
            vg_muts,
            text_muts,
            img_muts,
            wrap,
        })
}

fn build_lvm(c: &LvmCase) -> (Case, Vec<Inv>) {
    let world = base_world(c.seed);
    let mut vg = world.vg.clone();
    for m in &c.vg_muts {
        apply_vg_mut(&mut vg, m);
    }
    let mut text = vg.render().into_bytes();
    for m in &c.text_muts {
        apply_text_mut(&mut text, m);
    }
    let mut case = Case {
        what: format!("{c:?}"),
        ..Case::default()
    };
    let mut names = Vec::new();
    for (i, pv) in world.vg.pvs.iter().enumerate() {
        let data = &world.pe_data[i];
        let len = LAYOUT.pe_start as usize + data.len();
        let ring_room = LAYOUT.mda_size - 512;
        let off = if c.wrap && (text.len() as u64) < ring_room {
            // Start the copy so that about half of it wraps (512-aligned like lvm2).
            let o = LAYOUT.mda_size - (text.len() as u64 / 2).max(1);
            (o / 512 * 512).max(512)
        } else {
            512
        };
        let mut img = common::pv_image(len, &pv.id, &text, off);
        img[LAYOUT.pe_start as usize..].copy_from_slice(data);
        for (which, m) in &c.img_muts {
            if *which as usize % world.vg.pvs.len() == i {
                apply_img_mut(&mut img, m);
            }
        }
        let name = format!("pv{i}.img");
        case.add(&name, img);
        names.push(name);
    }
    case.add("meta.vg", text);
    let mut lvs = export_targets(&vg, true);
    lvs.dedup();
    // The first chain LV is the one whose export builds the whole tree; drop the rest.
    lvs.retain(|(n, _)| !n.starts_with("chain") || n == "chain0");
    lvs.truncate(6);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut invs = lvm_invocations(&refs, "meta.vg", &vg.name, &lvs);
    if c.vg_muts.is_empty() && c.text_muts.is_empty() && c.img_muts.is_empty() {
        expect_exports(&world, &mut invs);
    }
    (case, invs)
}

/// The LVs to export, each with whether it is a snapshot's COW LV (also exported
/// `--raw`); `hidden` includes the internal `snapshotN` LVs.
fn export_targets(vg: &VgSpec, hidden: bool) -> Vec<(String, bool)> {
    let cows: Vec<&str> = vg
        .lvs
        .iter()
        .flat_map(|l| &l.segments)
        .filter_map(|s| match &s.kind {
            SegKind::Snapshot { cow, .. } => Some(cow.as_str()),
            _ => None,
        })
        .collect();
    vg.lvs
        .iter()
        .filter(|l| hidden || l.visible)
        .map(|l| (l.name.clone(), cows.contains(&l.name.as_str())))
        .collect()
}

/// For an unmutated world: every `lvm export` must write exactly the LV's content.
fn expect_exports(world: &World, invs: &mut [Inv]) {
    for inv in invs
        .iter_mut()
        .filter(|i| i.args.get(1).is_some_and(|a| a == "export"))
    {
        let raw = inv.args.iter().any(|a| a == "--raw");
        let target = if raw { &inv.args[3] } else { &inv.args[2] };
        let lv = target.split_once('/').map_or("", |(_, l)| l).to_string();
        inv.expect = world.expected_export(&lv, raw);
    }
}

/// Generated COW case.
#[derive(Clone, Debug)]
struct CowCase {
    seed: u64,
    chunk_sectors: u32,
    cow_chunks: u64,
    origin_chunks: u64,
    /// Exceptions written (over 256 with 4 KiB chunks: a second metadata area).
    exceptions: u16,
    muts: Vec<CowMut>,
}

#[derive(Clone, Debug)]
enum CowMut {
    /// Flip a bit in the header chunk or the first metadata area.
    Flip {
        pos: u32,
        bit: u8,
    },
    /// Header word: 0 magic, 1 valid, 2 version, 3 chunk size.
    Header {
        field: u8,
        value: u32,
    },
    /// Exception `index` of metadata area `area` (0 or 1): `which` 0 old, 1 new, 2 both.
    Entry {
        area: u8,
        index: u8,
        which: u8,
        value: u64,
    },
    /// Copy entry `a` over entry `b` (duplicates).
    DupEntry(u8, u8),
    TruncateCow(u16),
    TruncateOrigin(u16),
    Invalidate,
    ZeroFirstWord,
}

fn cow_mut() -> impl Strategy<Value = CowMut> {
    let word = prop_oneof![
        3 => proptest::sample::select(&[
            0u32, 1, 2, 3, 7, 8, 9, 16, 1 << 21, (1 << 21) + 1, 1 << 31, u32::MAX, 0x7041_6e53,
        ][..]),
        1 => any::<u32>(),
    ];
    let big = prop_oneof![
        3 => proptest::sample::select(&[
            0u64, 1, 2, 3, 47, 48, 63, 64, 65, 1 << 32, 1 << 55, 1 << 63, u64::MAX - 1, u64::MAX,
        ][..]),
        1 => any::<u64>(),
    ];
    prop_oneof![
        3 => (any::<u32>(), 0u8..8).prop_map(|(pos, bit)| CowMut::Flip { pos, bit }),
        2 => (0u8..4, word).prop_map(|(field, value)| CowMut::Header { field, value }),
        3 => (0u8..2, 0u8..8, 0u8..3, big)
            .prop_map(|(area, index, which, value)| CowMut::Entry { area, index, which, value }),
        1 => (0u8..8, 0u8..8).prop_map(|(a, b)| CowMut::DupEntry(a, b)),
        1 => any::<u16>().prop_map(CowMut::TruncateCow),
        1 => any::<u16>().prop_map(CowMut::TruncateOrigin),
        1 => Just(CowMut::Invalidate),
        1 => Just(CowMut::ZeroFirstWord),
    ]
}

fn cow_case() -> impl Strategy<Value = CowCase> {
    (
        any::<u64>(),
        proptest::sample::select(&[8u32, 16, 32][..]),
        2u64..=48,
        1u64..=64,
        prop_oneof![3 => 0u16..12, 1 => 250u16..300],
        prop_oneof![1 => Just(vec![]), 3 => proptest::collection::vec(cow_mut(), 1..4)],
    )
        .prop_map(
            |(seed, chunk_sectors, cow_chunks, origin_chunks, exceptions, muts)| CowCase {
                seed,
                chunk_sectors,
                cow_chunks,
                origin_chunks,
                exceptions,
                muts,
            },
        )
}

fn build_cow(c: &CowCase) -> (Case, Vec<Inv>) {
    let mut r = Rng(c.seed);
    let cb = u64::from(c.chunk_sectors) * 512;
    // Room for the exceptions (and their metadata areas), an origin that has their chunks.
    let cow_chunks = c.cow_chunks.max(u64::from(c.exceptions) + 8);
    let origin_chunks = c.origin_chunks.max(u64::from(c.exceptions) * 2);
    let mut w = StoreWriter::new(c.chunk_sectors, cow_chunks * cb).unwrap();
    let mut written: Vec<(u64, Vec<u8>)> = Vec::new();
    for _ in 0..c.exceptions {
        let mut data = vec![0u8; cb as usize];
        r.fill(&mut data);
        // Mostly inside the origin, sometimes just past its end; never twice (the kernel
        // does not write duplicates: the mutations do).
        let old = r.below(origin_chunks + 2);
        if written.iter().any(|e| e.0 == old) {
            continue;
        }
        if w.push(old, &data).is_err() {
            break;
        }
        written.push((old, data));
    }
    let mut cow = w.to_vec();
    let mut origin = vec![0u8; (origin_chunks * cb) as usize];
    r.fill(&mut origin);
    // Area a's metadata chunk: 1 + a * (entries per chunk + 1).
    let entry =
        |a: u8, i: u8| ((1 + u64::from(a) * (cb / 16 + 1)) * cb + 16 * u64::from(i)) as usize;
    for m in &c.muts {
        match m {
            CowMut::Flip { pos, bit } => {
                let n = cow.len().min(2 * cb as usize);
                if n > 0 {
                    cow[*pos as usize % n] ^= 1 << bit;
                }
            }
            CowMut::Header { field, value } => {
                let at = 4 * (*field as usize % 4);
                if cow.len() >= at + 4 {
                    cow[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            CowMut::Entry {
                area,
                index,
                which,
                value,
            } => {
                let at = entry(*area, *index);
                for (k, off) in [0usize, 8].iter().enumerate() {
                    if (*which == 2 || *which as usize == k) && cow.len() >= at + off + 8 {
                        cow[at + off..at + off + 8].copy_from_slice(&value.to_le_bytes());
                    }
                }
            }
            CowMut::DupEntry(a, b) => {
                let (a, b) = (entry(0, *a), entry(0, *b));
                if cow.len() >= a.max(b) + 16 {
                    let e = cow[a..a + 16].to_vec();
                    cow[b..b + 16].copy_from_slice(&e);
                }
            }
            CowMut::TruncateCow(f) => {
                let n = cow.len() * *f as usize / 65536;
                cow.truncate(n);
            }
            CowMut::TruncateOrigin(f) => {
                let n = origin.len() * *f as usize / 65536;
                origin.truncate(n);
            }
            CowMut::Invalidate => {
                if cow.len() >= 8 {
                    cow[4..8].copy_from_slice(&0u32.to_le_bytes());
                }
            }
            CowMut::ZeroFirstWord => {
                if cow.len() >= 4 {
                    cow[..4].fill(0);
                }
            }
        }
    }
    let mut case = Case {
        what: format!("{c:?}"),
        ..Case::default()
    };
    case.add("origin.img", origin.clone());
    case.add("cow.img", cow);
    merge_copies(&mut case, "origin.img", "cow.img");
    let mut invs = cow_invocations("origin.img", "cow.img");
    if c.muts.is_empty() {
        // An intact store: the snapshot is the origin with the saved chunks put back. If a
        // saved chunk lies past the origin's end, the origin is short: every export and
        // merge must refuse (item 6).
        let short = written.iter().any(|e| e.0 >= origin_chunks);
        let mut snap = origin.clone();
        for (old, data) in written.iter().filter(|e| e.0 < origin_chunks) {
            let at = (*old * cb) as usize;
            snap[at..at + cb as usize].copy_from_slice(data);
        }
        for inv in &mut invs {
            let sub = inv.args[1].as_str();
            if sub == "inspect" {
                inv.must_succeed = true;
            } else if short {
                inv.must_fail = true;
            } else if sub == "export" {
                inv.must_succeed = true;
                inv.expect = Some(snap.clone());
            } else {
                inv.must_succeed = true;
                let origin = inv.args[inv.args.len() - 3].clone();
                inv.expect_input = Some((origin, snap.clone()));
            }
        }
    }
    (case, invs)
}

// ---------------------------------------------------------------------------------------
// The tests

/// Structurally valid VGs on PV images, mutated at the model, text and image level, fed to
/// every `lvm` command.
#[test]
fn lvm_commands_on_mutated_metadata() {
    if skip_in_vm("lvm_commands_on_mutated_metadata") {
        return;
    }
    run_random("lvm_mutated", 24, lvm_case(), |c, s| {
        let (case, invs) = build_lvm(&c);
        s.case(&case, &invs, PARALLEL);
    });
}

/// Valid COW stores (made by the library's writer) with origins, mutated, fed to every
/// `cow` command.
#[test]
fn cow_commands_on_mutated_stores() {
    if skip_in_vm("cow_commands_on_mutated_stores") {
        return;
    }
    run_random("cow_mutated", 24, cow_case(), |c, s| {
        let (case, invs) = build_cow(&c);
        s.case(&case, &invs, PARALLEL);
    });
}

/// Random bytes (sometimes behind a PV label or a COW magic) as every input of every
/// command.
#[test]
fn every_command_on_random_bytes() {
    if skip_in_vm("every_command_on_random_bytes") {
        return;
    }
    let file = (
        0usize..3,
        proptest::collection::vec(any::<u8>(), 0..6000),
        0usize..300_000,
    );
    run_random(
        "random_bytes",
        12,
        proptest::collection::vec(file, 1..3),
        |files, s| {
            let mut case = Case {
                what: format!("{} file(s) of random bytes", files.len()),
                ..Case::default()
            };
            let mut names = Vec::new();
            for (i, (magic, head, len)) in files.iter().enumerate() {
                let mut b = head.clone();
                b.resize((*len).max(head.len()), 0);
                match magic {
                    1 if b.len() >= 1024 => {
                        b[512..520].copy_from_slice(b"LABELONE");
                        b[536..544].copy_from_slice(b"LVM2 001");
                        common::seal_label(&mut b[512..1024]);
                    }
                    2 if b.len() >= 4 => b[..4].copy_from_slice(b"SnAp"),
                    _ => {}
                }
                let name = format!("f{i}.bin");
                case.add(&name, b);
                names.push(name);
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut invs = lvm_invocations(&refs, refs[0], "vg0", &[("lv0".into(), true)]);
            // No random file is a PV (or metadata text): every lvm command must say so
            // (item 4), none may answer "no VG" with exit 0.
            for inv in &mut invs {
                inv.must_fail = true;
            }
            let origin = refs.get(1).copied().unwrap_or(refs[0]);
            merge_copies(&mut case, origin, refs[0]);
            if origin == refs[0] {
                // merge_copies made m1-f0.bin twice; keep one copy per role.
                case.files.dedup_by(|a, b| a.0 == b.0);
            }
            let mut cow = cow_invocations(origin, refs[0]);
            if origin == refs[0] {
                // The same file as origin and store: that merge must refuse (item 2).
                for inv in cow.iter_mut().filter(|i| i.writes_inputs) {
                    inv.writes_inputs = false;
                    inv.must_fail = true;
                }
            }
            invs.extend(cow);
            s.case(&case, &invs, PARALLEL);
        },
    );
}

/// A valid case for the deterministic tests: 2 PVs, every kind of LV, a snapshot; a COW
/// store with exceptions and its origin.
fn valid_case(seed_from: u64) -> (Case, World) {
    // A seed whose world has 2+ PVs and a snapshot.
    let mut seed = seed_from;
    let world = loop {
        let w = base_world(seed);
        if w.vg.pvs.len() >= 2 && w.snap.as_ref().is_some_and(|s| !s.merging) {
            break w;
        }
        seed += 1;
    };
    let text = world.vg.render().into_bytes();
    let mut case = Case {
        what: format!("valid: base_world({seed})"),
        ..Case::default()
    };
    for (i, pv) in world.vg.pvs.iter().enumerate() {
        let data = &world.pe_data[i];
        let mut img = common::pv_image(LAYOUT.pe_start as usize + data.len(), &pv.id, &text, 512);
        img[LAYOUT.pe_start as usize..].copy_from_slice(data);
        case.add(&format!("pv{i}.img"), img);
    }
    case.add("meta.vg", text);
    let mut w = StoreWriter::new(8, 64 << 10).unwrap();
    w.push(1, &[0xaa; 4096]).unwrap();
    w.push(3, &[0xbb; 4096]).unwrap();
    case.add("cow.img", w.to_vec());
    case.add("origin.img", vec![0x11; 32 << 10]);
    (case, world)
}

/// Sanity of the generator and the harness: the unmutated inputs succeed everywhere (so
/// the random tests start from inputs that get past the first checks).
#[test]
fn valid_inputs_succeed() {
    if skip_in_vm("valid_inputs_succeed") {
        return;
    }
    let (mut case, world) = valid_case(1);
    let vg = world.vg.clone();
    let pvs: Vec<String> = (0..vg.pvs.len()).map(|i| format!("pv{i}.img")).collect();
    let refs: Vec<&str> = pvs.iter().map(String::as_str).collect();
    let lvs = export_targets(&vg, false);
    let mut invs = lvm_invocations(&refs, "meta.vg", &vg.name, &lvs);
    expect_exports(&world, &mut invs);
    assert!(invs.iter().filter(|i| i.expect.is_some()).count() >= 3);
    merge_copies(&mut case, "origin.img", "cow.img");
    invs.extend(cow_invocations("origin.img", "cow.img"));
    for inv in &mut invs {
        inv.must_succeed = true;
    }
    let mut s = Survey::new("valid");
    s.case(&case, &invs, PARALLEL);
    s.finish();
}

/// FIFOs, character devices, directories, missing and empty files in every input role of
/// every command (items 9, 10): no hang, no unbounded read, a clear error.
#[test]
fn special_files_as_inputs() {
    if skip_in_vm("special_files_as_inputs") {
        return;
    }
    let (mut base, world) = valid_case(7);
    let vg = world.vg.clone();
    base.fifos.push("fifo".into());
    base.dirs.push("dir".into());
    base.add("empty", Vec::new());
    base.add("m-origin.img", vec![0x11; 32 << 10]);
    let cow_bytes = base
        .files
        .iter()
        .find(|f| f.0 == "cow.img")
        .unwrap()
        .1
        .clone();
    base.add("m-cow.img", cow_bytes);
    let lv = vg.lvs[0].name.clone();
    let mut invs = Vec::new();
    for (k, special) in ["fifo", "/dev/zero", "/dev/null", "dir", "missing", "empty"]
        .into_iter()
        .enumerate()
    {
        let pvs = [special, "pv1.img"];
        let mut v = lvm_invocations(&pvs, special, &vg.name, &[(lv.clone(), false)]);
        v.retain(|i| i.args.iter().any(|a| a == special));
        let c = |label: &str, args: &[&str], inputs: &[&str]| Inv::new(label, args, inputs);
        v.extend([
            c("cow inspect", &["cow", "inspect", special], &[]).prints(),
            c(
                "cow inspect --json",
                &["cow", "inspect", "--json", special],
                &[],
            )
            .prints(),
            c(
                "cow export (store)",
                &[
                    "cow",
                    "export",
                    "--origin",
                    "origin.img",
                    "--cow",
                    special,
                    "-o",
                    "o1",
                ],
                &["origin.img"],
            )
            .output("o1"),
            c(
                "cow export (origin)",
                &[
                    "cow", "export", "--origin", special, "--cow", "cow.img", "-o", "o2",
                ],
                &["cow.img"],
            )
            .output("o2"),
            c(
                "cow merge (store)",
                &[
                    "cow",
                    "merge",
                    "--yes",
                    "--origin",
                    "m-origin.img",
                    "--cow",
                    special,
                ],
                &["m-origin.img"],
            ),
            c(
                "cow merge (origin)",
                &[
                    "cow",
                    "merge",
                    "--yes",
                    "--origin",
                    special,
                    "--cow",
                    "m-cow.img",
                ],
                &["m-cow.img"],
            ),
        ]);
        for inv in &mut v {
            inv.label = format!("{} (input {special})", inv.label);
            inv.inputs.retain(|f| f != special);
            inv.must_fail = true;
            // Outputs of their own: the runs go at once in one directory.
            if let Some(out) = inv.fresh_output.take() {
                let mine = format!("{k}-{out}");
                for a in &mut inv.args {
                    if *a == out {
                        a.clone_from(&mine);
                    }
                }
                inv.fresh_output = Some(mine);
            }
        }
        invs.extend(v);
    }
    let mut s = Survey::new("special_files");
    // Many at once: the FIFO runs (first in the list) that hang cost one timeout together,
    // the others go on through the remaining slots.
    s.case_isolated(&base, &invs, 16);
    s.finish();
}

/// An output that is one of the inputs (same path, symlink, hard link), a merge whose
/// origin is its store, and an existing output file (items 1, 2): refused, inputs intact.
#[test]
fn output_is_an_input() {
    if skip_in_vm("output_is_an_input") {
        return;
    }
    let (mut case, world) = valid_case(3);
    let vg = world.vg.clone();
    case.symlinks
        .push(("sym-origin".into(), "origin.img".into()));
    case.symlinks.push(("sym-pv0".into(), "pv0.img".into()));
    case.hardlinks.push(("hard-cow".into(), "cow.img".into()));
    case.hardlinks.push(("hard-pv1".into(), "pv1.img".into()));
    case.add("existing.img", b"precious".to_vec());
    let lv = format!("{}/{}", vg.name, vg.lvs[0].name);
    let cow_export = |out: &str| {
        let mut i = Inv::new(
            &format!("cow export -o {out}"),
            &[
                "cow",
                "export",
                "--origin",
                "origin.img",
                "--cow",
                "cow.img",
                "-o",
                out,
            ],
            &["origin.img", "cow.img", "existing.img"],
        );
        i.must_fail = true;
        i
    };
    let lvm_export = |out: &str| {
        let mut i = Inv::new(
            &format!("lvm export -o {out}"),
            &["lvm", "export", &lv, "-o", out, "pv0.img", "pv1.img"],
            &["pv0.img", "pv1.img", "existing.img"],
        );
        i.must_fail = true;
        i
    };
    let merge = |o: &str, c: &str| {
        let mut i = Inv::new(
            &format!("cow merge --origin {o} --cow {c}"),
            &["cow", "merge", "--yes", "--origin", o, "--cow", c],
            &["cow.img"],
        );
        i.must_fail = true;
        i
    };
    let invs = vec![
        cow_export("origin.img"),
        cow_export("cow.img"),
        cow_export("sym-origin"),
        cow_export("hard-cow"),
        cow_export("existing.img"),
        lvm_export("pv0.img"),
        lvm_export("sym-pv0"),
        lvm_export("hard-pv1"),
        lvm_export("existing.img"),
        merge("cow.img", "cow.img"),
        merge("hard-cow", "cow.img"),
        merge("cow.img", "hard-cow"),
    ];
    let mut s = Survey::new("output_is_input");
    s.case_isolated(&case, &invs, PARALLEL);
    s.finish();
}

/// Every printing command on valid input with stdout a closed pipe or `/dev/full`
/// (item 11): a non-zero exit, no panic.
#[test]
fn closed_and_full_stdout() {
    if skip_in_vm("closed_and_full_stdout") {
        return;
    }
    let (case, world) = valid_case(5);
    let vg = world.vg.clone();
    let mut invs = Vec::new();
    let full = Path::new("/dev/full").exists();
    if !full {
        println!("SKIP the full-disk half of closed_and_full_stdout: no /dev/full here");
    }
    for mode in [Out::Full, Out::Closed] {
        if mode == Out::Full && !full {
            continue;
        }
        let mut v = lvm_invocations(&["pv0.img", "pv1.img"], "meta.vg", &vg.name, &[]);
        v.extend(cow_invocations("origin.img", "cow.img"));
        v.retain(|i| i.prints);
        for inv in &mut v {
            inv.stdout = mode;
            inv.label = format!("{} (stdout {mode:?})", inv.label);
        }
        invs.extend(v);
    }
    // An export whose output fails to write: an error that says writing, not reading.
    let lv = format!("{}/{}", vg.name, vg.lvs[0].name);
    for args in [
        vec![
            "lvm",
            "export",
            &lv,
            "-o",
            "/dev/full",
            "pv0.img",
            "pv1.img",
        ],
        vec![
            "cow",
            "export",
            "--origin",
            "origin.img",
            "--cow",
            "cow.img",
            "-o",
            "/dev/full",
        ],
    ] {
        if !full {
            break;
        }
        let mut i = Inv::new(&format!("{} {} -o /dev/full", args[0], args[1]), &args, &[]);
        i.must_fail = true;
        i.stderr_lacks = Some("reading");
        invs.push(i);
    }
    let mut s = Survey::new("closed_stdout");
    s.case(&case, &invs, PARALLEL);
    s.finish();
}

/// The first seed from `from` whose valid world satisfies `want`.
fn seed_where(from: u64, want: impl Fn(&World) -> bool) -> u64 {
    (from..from + 10_000)
        .find(|&s| want(&base_world(s)))
        .expect("no such world in 10000 seeds")
}

fn has_snapshot(w: &World) -> bool {
    w.vg.lvs.iter().any(|l| l.name == "snapshot0")
}

fn striped_lv(w: &World) -> Option<usize> {
    w.vg.lvs.iter().position(|l| {
        l.segments
            .iter()
            .any(|s| matches!(&s.kind, SegKind::Striped { stripe_count, .. } if *stripe_count > 1))
    })
}

/// The classes of the issue and of the survey, one fixed case each (so that every class
/// shows by name, whatever the random tests draw): stripe chains (item 8), metadata lvm2
/// does not write (item 5: duplicate PV names, a stripe size that does not divide the
/// stripe, snapshot cycles, a snapshot as its own origin, of a COW, two sharing a COW),
/// numbers near 2^55 and 2^64 (item 14), a VG that does not import (item 4).
#[test]
fn known_metadata_classes() {
    if skip_in_vm("known_metadata_classes") {
        return;
    }
    let plain = |seed: u64, vg_muts: Vec<VgMut>| LvmCase {
        seed,
        vg_muts,
        text_muts: vec![],
        img_muts: vec![],
        wrap: false,
    };
    let many = seed_where(100, |w| w.vg.lvs.len() >= 3 && w.vg.pvs.len() >= 2);
    let no_snap = seed_where(200, |w| !has_snapshot(w) && w.vg.lvs.len() >= 2);
    let striped = seed_where(300, |w| striped_lv(w).is_some());
    let stripe_idx = striped_lv(&base_world(striped)).unwrap() as u8;
    let num = |field: u8, value: Num| VgMut::Num {
        field,
        a: 0,
        b: 0,
        c: 0,
        value,
    };
    let cases: Vec<(&str, LvmCase)> = vec![
        ("[import fails]", plain(many, vec![VgMut::DupLvName(0, 1)])),
        ("[dup PV name]", plain(many, vec![VgMut::DupPvName(0, 1)])),
        ("[dup PV id]", plain(many, vec![VgMut::DupPvId(0, 1)])),
        (
            "[self origin]",
            plain(no_snap, vec![VgMut::OriginIsSnapshot]),
        ),
        ("[snapshot cycle]", plain(many, vec![VgMut::SnapCycle])),
        ("[snapshot of COW]", plain(many, vec![VgMut::SnapshotOfCow])),
        ("[shared COW]", plain(many, vec![VgMut::SharedCow])),
        (
            "[odd stripe size]",
            plain(striped, vec![VgMut::OddStripeSize(stripe_idx)]),
        ),
        (
            "[stripe chain 4^16]",
            plain(
                many,
                vec![VgMut::StripeChain {
                    depth: 16,
                    width: 4,
                }],
            ),
        ),
        ("[pe_start 2^55]", plain(many, vec![num(2, 1 << 55)])),
        (
            "[pe_count 2^64-1]",
            plain(many, vec![num(3, u64::MAX as Num)]),
        ),
        (
            "[extent_size 2^32-1]",
            plain(many, vec![num(0, (1 << 32) - 1)]),
        ),
        ("[extent_count 2^32]", plain(many, vec![num(6, 1 << 32)])),
        ("[stripe extent -1]", plain(many, vec![num(9, -1)])),
        ("[seqno 2^64]", plain(many, vec![num(1, 1 << 64)])),
    ];
    // Metadata lvm2 never writes and would not activate (item 5): `plan` must refuse it
    // (with an error naming the LV), not drop or mis-build devices; so must the export of
    // an LV whose stripe size does not divide its stripes.
    let odd_lv = format!("{}/lv{stripe_idx}", base_world(striped).vg.name);
    let refuse = |name: &str, inv: &Inv| -> bool {
        let plan = inv.args.get(1).is_some_and(|a| a == "plan");
        match name {
            "[self origin]" | "[snapshot cycle]" | "[snapshot of COW]" | "[shared COW]" => plan,
            "[odd stripe size]" => plan || inv.args.contains(&odd_lv),
            _ => false,
        }
    };
    let mut s = Survey::new("known_metadata");
    for (name, c) in cases {
        let (case, mut invs) = build_lvm(&c);
        for inv in &mut invs {
            inv.must_fail = refuse(name, inv);
            inv.label = format!("{name} {}", inv.label);
        }
        s.case(&case, &invs, PARALLEL);
    }
    s.finish();
}

/// The real-world metadata texts of the shared corpus (`../shared/corpus/lvm-wild`), or
/// `None` (with the reason printed) when the corpus is not there.
fn corpus() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = common::corpus_or_skip("corpus", "lvm-wild")?;
    let rd = std::fs::read_dir(&dir).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "vg"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    (!v.is_empty()).then_some(v)
}

/// The first `id = "..."` after `physical_volumes {`, without dashes (a PV id to give the
/// label, so the text's VG finds its PV); the VG name; the first LV names.
fn corpus_facts(text: &[u8]) -> ([u8; 32], String, Vec<String>) {
    let t = String::from_utf8_lossy(text);
    let mut id = make_id(t.len() as u64);
    if let Some(at) = t.find("physical_volumes {")
        && let Some(i) = t[at..].find("id = \"")
    {
        let raw: Vec<u8> = t[at + i + 6..]
            .bytes()
            .take_while(|b| *b != b'"')
            .filter(|b| *b != b'-')
            .collect();
        if raw.len() == 32 {
            id.copy_from_slice(&raw);
        }
    }
    let vg = t
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(" {") && !l.starts_with('#'))
        .map_or("vg", |l| l.trim_end_matches(" {"))
        .to_string();
    let mut lvs = Vec::new();
    if let Some(at) = t.find("logical_volumes {") {
        let mut depth = 0;
        for l in t[at + "logical_volumes {".len()..].lines().map(str::trim) {
            if l.ends_with('{') {
                if depth == 0 {
                    lvs.push(l.trim_end_matches('{').trim().to_string());
                }
                depth += 1;
            } else if l.starts_with('}') {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
        }
    }
    lvs.truncate(2);
    (id, vg, lvs)
}

/// Real-world metadata texts (the 51 of the corpus), mutated, as `--metadata` files and as
/// the committed text of a PV whose label carries the text's first PV id.
#[test]
fn corpus_texts_mutated() {
    if skip_in_vm("corpus_texts_mutated") {
        return;
    }
    let Some(texts) = corpus() else {
        return;
    };
    let strategy = (
        0..texts.len(),
        proptest::collection::vec(text_mut(), 0..3),
        any::<bool>(),
    );
    run_random("corpus", 16, strategy, |(k, muts, wrap), s| {
        let (name, orig) = &texts[k];
        let mut text = orig.clone();
        for m in &muts {
            apply_text_mut(&mut text, m);
        }
        let (id, vg, lvs) = corpus_facts(orig);
        let off = if wrap && (text.len() as u64) < LAYOUT.mda_size - 1024 {
            ((LAYOUT.mda_size - text.len() as u64 / 2) / 512 * 512).max(512)
        } else {
            512
        };
        let mut case = Case {
            what: format!("{name} {muts:?} wrap={wrap}"),
            ..Case::default()
        };
        case.add("pv0.img", common::pv_image(1 << 20, &id, &text, off));
        case.add("meta.vg", text);
        let lvs: Vec<(String, bool)> = lvs.into_iter().map(|l| (l, false)).collect();
        let invs = lvm_invocations(&["pv0.img"], "meta.vg", &vg, &lvs);
        s.case(&case, &invs, PARALLEL);
    });
}

/// The checker itself: every kind of violation is reported, a clean run is not.
#[test]
fn checker_flags_each_violation() {
    if skip_in_vm("checker_flags_each_violation") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = |code: Option<i32>, signal: Option<i32>, stdout: &str, stderr: &str| Outcome {
        code,
        signal,
        timed_out: false,
        elapsed: Duration::ZERO,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    };
    let json = Inv::new("scan --json", &["lvm", "scan", "--json", "x"], &[]).prints();
    let file = [Snap::File {
        len: 1,
        bytes: vec![1],
    }];
    let changed = [Snap::File {
        len: 1,
        bytes: vec![2],
    }];
    let one = |inv: &Inv, o: &Outcome| check(d, inv, o, &[], &[], false);
    assert_eq!(
        one(&json, &out(Some(0), None, "{}", "")),
        Vec::<String>::new()
    );
    assert_eq!(
        one(&json, &out(Some(1), None, "", "bad")),
        Vec::<String>::new()
    );
    let cases: Vec<(Outcome, &str)> = vec![
        (
            out(
                Some(101),
                None,
                "",
                "thread 'main' panicked at src/a.rs:1:2:\nboom",
            ),
            "panic at src/a.rs:1:2",
        ),
        (
            out(None, Some(6), "", "memory allocation of 8 bytes failed"),
            "out of memory (allocation failed, abort)",
        ),
        (out(None, Some(11), "", ""), "killed by signal 11"),
        (
            out(Some(1), None, "", "x: out of memory"),
            "ran into the 512 MiB memory limit",
        ),
        (out(Some(0), None, "", ""), "exit 0 with nothing on stdout"),
        (
            out(Some(0), None, "{", ""),
            "exit 0 but --json stdout is not one JSON document",
        ),
        (
            out(Some(1), None, "{}", "bad"),
            "error exit with output on stdout",
        ),
        (
            out(Some(1), None, "", ""),
            "error exit with nothing on stderr",
        ),
        (
            out(Some(1), None, "", "failed to fill whole buffer"),
            "error message says only \"failed to fill whole buffer\"",
        ),
    ];
    for (o, want) in cases {
        let got = one(&json, &o);
        assert!(got.iter().any(|g| g == want), "{want:?} not in {got:?}");
    }
    let mut hung = out(None, Some(9), "", "");
    hung.timed_out = true;
    assert_eq!(one(&json, &hung), ["hang (killed after 10 s)"]);
    // Inputs: a change, a resize; a merge may change (not resize) its inputs on success.
    let mut merge = Inv::new("merge", &["cow", "merge"], &["o"]);
    let ok = out(Some(0), None, "", "");
    let resized = Snap::File {
        len: 0,
        bytes: vec![],
    };
    let mut ro = Inv::new("inspect", &["cow", "inspect", "o"], &["o"]);
    assert_eq!(
        check(d, &ro, &ok, &file, &changed, false),
        ["input o changed"]
    );
    merge.writes_inputs = true;
    assert!(check(d, &merge, &ok, &file, &changed, false).is_empty());
    assert_eq!(
        check(d, &merge, &ok, &file, &[resized], false),
        ["input o resized or replaced"]
    );
    ro.must_fail = true;
    assert_eq!(
        check(d, &ro, &ok, &[], &[], false),
        ["exit 0 where it must refuse"]
    );
    // A failed export that leaves its output; a successful one with the wrong content.
    std::fs::write(d.join("out"), b"partial").unwrap();
    let mut export = Inv::new("export", &["lvm", "export"], &[]).output("out");
    assert_eq!(
        check(d, &export, &out(Some(1), None, "", "bad"), &[], &[], false),
        ["failed export left an output file behind"]
    );
    export.expect = Some(b"right".to_vec());
    assert_eq!(
        check(d, &export, &ok, &[], &[], false),
        ["exit 0 but the output is not the expected content (silent wrong answer)"]
    );
}

/// In process and fast (no binary): the label, metadata area and text layers the commands
/// sit on, over the same mutated PVs and real-world texts, never panic (proptest reports a
/// panic as a failure with the input). Many more cases than the process-level tests.
#[test]
fn text_label_mda_layers_never_panic() {
    if skip_in_vm("text_label_mda_layers_never_panic") {
        return;
    }
    use devmapper::lvm::config::{self, ParseMode};
    use devmapper::lvm::mda::MdaContent;
    use devmapper::lvm::model::VolumeGroup;
    use devmapper::lvm::{label, mda};
    let texts = corpus().unwrap_or_default();
    let n = texts.len().max(1);
    let strategy = (
        lvm_case(),
        0..n,
        proptest::collection::vec(text_mut(), 0..3),
    );
    let mut runner = TestRunner::new(config(48));
    runner
        .run(&strategy, |(c, k, muts)| {
            let (case, _) = build_lvm(&c);
            for (name, bytes) in &case.files {
                if name.ends_with(".img")
                    && let Ok(l) = label::read_label(&bytes[..])
                {
                    for area in &l.metadata_areas {
                        if let Ok((_, MdaContent::Text(t))) = mda::read_metadata(&bytes[..], *area)
                        {
                            let _ = VolumeGroup::from_text(&t.text, ParseMode::Disk);
                        }
                    }
                } else {
                    let _ = config::parse(bytes);
                    let _ = VolumeGroup::from_text(bytes, ParseMode::File);
                }
            }
            if let Some((_, t)) = texts.get(k) {
                let mut t = t.clone();
                for m in &muts {
                    apply_text_mut(&mut t, m);
                }
                let _ = VolumeGroup::from_text(&t, ParseMode::File);
                let _ = VolumeGroup::from_text(&t, ParseMode::Disk);
            }
            Ok(())
        })
        .unwrap();
}
