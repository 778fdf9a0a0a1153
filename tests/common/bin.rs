//! Finding the `dmsnap` binary that integration tests run.
//!
//! `DMSNAP_BIN` wins (the VM harness sets it); else the example next to the running test
//! executable (`target/<profile>/examples/dmsnap`). `cargo test --test X` does not rebuild
//! examples, so a binary older than any source it was built from (as listed in cargo's
//! dep-info file `dmsnap.d` beside it) would test old code: [`dmsnap`] refuses it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The dmsnap binary to test, or why there is none to use.
pub fn find() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("DMSNAP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples/dmsnap"))
        .ok_or("the test executable is not in target/<profile>/deps")?;
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .map_err(|_| {
            format!(
                "no dmsnap binary at {} (run `cargo build --example dmsnap`, or set DMSNAP_BIN)",
                bin.display()
            )
        })?;
    if let Some(newer) = newer_dependency(&bin.with_extension("d"), built) {
        return Err(format!(
            "{} is older than {}: run `cargo build --example dmsnap`",
            bin.display(),
            newer.display()
        ));
    }
    Ok(bin)
}

/// The dmsnap binary; panics with the reason when there is none or it is stale.
pub fn dmsnap() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match BIN.get_or_init(find) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The dmsnap binary for `test`, or `None` with a printed `SKIP` when none is built. A
/// stale binary is not a reason to skip: it panics, as does a missing one in the VM
/// (`DEVMAPPER_REQUIRE_PRIVILEGED=1`, where the harness always provides it).
pub fn find_or_skip(test: &str) -> Option<PathBuf> {
    match find() {
        Ok(p) => Some(p),
        Err(e)
            if e.starts_with("no dmsnap binary")
                && std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() != Ok("1") =>
        {
            println!("SKIP {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// Run `bin` with `args`, stdin empty, stdout and stderr captured; panics when it runs
/// longer than `limit` (it hung).
pub fn run_limited<S: AsRef<OsStr>>(bin: &Path, args: &[S], limit: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    // Read both pipes while waiting, so a large output cannot fill a pipe and stall it.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).map(|_| b)
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).map(|_| b)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let argv: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            panic!("dmsnap {argv:?} hung (more than {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// [`dmsnap`] run with `args` (20 s at most: longer counts as a hang).
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_limited(&dmsnap(), args, Duration::from_secs(20))
}

/// The arguments of `dmsnap cow export --origin ORIGIN --cow COW -o OUT EXTRA...`.
pub fn cow_export_args<'a>(
    origin: &'a str,
    cow: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec!["cow", "export", "--origin", origin, "--cow", cow, "-o", out];
    v.extend_from_slice(extra);
    v
}

/// A source listed in the dep-info file `dep_info` that was modified after `built`.
fn newer_dependency(dep_info: &Path, built: SystemTime) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dep_info).ok()?;
    // "target: dep dep ..." on the first line; spaces inside paths are escaped as "\ ".
    let deps = text.lines().next()?.split_once(": ")?.1;
    let mut path = String::new();
    let mut newest = None;
    let mut chars = deps.chars().peekable();
    loop {
        match chars.next() {
            Some('\\') if chars.peek() == Some(&' ') => {
                path.push(' ');
                chars.next();
            }
            Some(' ') | None => {
                if !path.is_empty() {
                    let p = PathBuf::from(std::mem::take(&mut path));
                    if std::fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t > built)
                    {
                        newest = Some(p);
                    }
                }
                if chars.peek().is_none() {
                    return newest;
                }
            }
            Some(c) => path.push(c),
        }
    }
}
