//! Timing whole commands for the end-to-end benches: each run goes through a wrapper (this
//! bench executable again, with `E2E_WRAP=1`) that spawns the command, waits for it and
//! reports its wall time and, from `getrusage(RUSAGE_CHILDREN)`, its peak resident memory
//! (the wrapper has that one child, so the figure is the command's alone).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One command's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_kib: u64,
}

/// Call first in `main`: in the wrapper, run the command and exit.
pub fn wrapper_main() {
    if std::env::var_os("E2E_WRAP").is_none() {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == "--").expect("-- CMD");
    let cmd = &args[at + 1..];
    let t = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("E2E_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .status()
        .expect("spawn");
    let wall = t.elapsed();
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    let cpu = tv(u.user_time()) + tv(u.system_time());
    println!(
        "{} {} {} {}",
        wall.as_nanos(),
        cpu.as_nanos(),
        u.max_rss(),
        status.code().unwrap_or(-1)
    );
    std::process::exit(0);
}

/// Run `cmd` once through the wrapper; panics if it fails (unless `may_fail`).
pub fn measure(cmd: &[String], may_fail: bool) -> Sample {
    let me = std::env::current_exe().expect("current_exe");
    let out = Command::new(me)
        .env("E2E_WRAP", "1")
        .arg("--")
        .args(cmd)
        .stderr(Stdio::inherit())
        .output()
        .expect("wrapper");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<u128> = text
        .split_whitespace()
        .map(|w| w.parse::<i128>().unwrap_or(-1) as u128)
        .collect();
    assert!(f.len() == 4, "wrapper said {text:?}");
    if !may_fail {
        assert!(f[3] == 0, "{cmd:?} failed (status {})", f[3] as i128);
    }
    Sample {
        wall: Duration::from_nanos(f[0] as u64),
        cpu: Duration::from_nanos(f[1] as u64),
        peak_kib: f[2] as u64,
    }
}

/// Medians of `rounds` runs of each command, the commands alternating which goes first.
pub fn compare(cmds: &[&[String]], rounds: usize) -> Vec<Sample> {
    let mut all: Vec<Vec<Sample>> = vec![Vec::new(); cmds.len()];
    for r in 0..rounds {
        for k in 0..cmds.len() {
            let i = (k + r) % cmds.len();
            all[i].push(measure(cmds[i], false));
        }
    }
    all.into_iter().map(|s| median(&s)).collect()
}

fn median(s: &[Sample]) -> Sample {
    let mid = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut peaks: Vec<u64> = s.iter().map(|x| x.peak_kib).collect();
    peaks.sort();
    Sample {
        wall: mid(s.iter().map(|x| x.wall).collect()),
        cpu: mid(s.iter().map(|x| x.cpu).collect()),
        peak_kib: peaks[peaks.len() / 2],
    }
}

/// The dmsnap binary: `DMSNAP_BIN`, else the release example next to this bench
/// (`cargo build --release --example dmsnap` first).
pub fn dmsnap() -> String {
    if let Some(p) = std::env::var_os("DMSNAP_BIN") {
        return p.to_string_lossy().into_owned();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let p: PathBuf = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples/dmsnap"))
        .expect("target/release/deps");
    assert!(
        p.exists(),
        "{}: run `cargo build --release --example dmsnap` (or set DMSNAP_BIN)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// `label: ours (peak) vs anchor (peak) = ratio`.
pub fn report(label: &str, ours: Sample, anchor_label: &str, anchor: Sample) {
    println!(
        "{label}: {:.3} s wall, {:.3} s cpu, {} MiB peak | {anchor_label}: {:.3} s wall, {:.3} s cpu, {} MiB peak | wall ratio anchor/ours {:.1}x, cpu ratio {:.1}x",
        ours.wall.as_secs_f64(),
        ours.cpu.as_secs_f64(),
        ours.peak_kib / 1024,
        anchor.wall.as_secs_f64(),
        anchor.cpu.as_secs_f64(),
        anchor.peak_kib / 1024,
        anchor.wall.as_secs_f64() / ours.wall.as_secs_f64(),
        anchor.cpu.as_secs_f64() / ours.cpu.as_secs_f64().max(1e-6),
    );
}

pub fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}
