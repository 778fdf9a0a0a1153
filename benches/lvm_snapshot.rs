//! LVM snapshot benchmark: `dmsnap lvm snapshot` against lvm2's `lvcreate -s`, same VM
//! run, same mounted origin.
//!
//! An ext4 filesystem on an LV is mounted; a writer thread does 4 KiB `O_DIRECT |
//! O_DSYNC` writes into a file on it in a loop and records each write's latency. For each
//! side the stall is the longest single write that overlapped the command (what a user of
//! the filesystem sees while the origin is suspended and frozen), and the wall time is
//! the whole command's, process start to exit. Each round takes one snapshot with each
//! side (the order alternates) and removes it again (not measured).
//!
//! Needs root, device-mapper, lvm2, `mkfs.ext4` and the dmsnap binary (`DMSNAP_BIN`,
//! default `/usr/local/bin/dmsnap`): run it in the VM. `DM_BENCH_ROUNDS` sets the rounds
//! (default 7); medians are reported, with the writer's longest write in a quiet stretch
//! before each command (`quiet max`, the emulated machine's noise floor). Each round also
//! measures the floor any tool that snapshots a mounted origin has: the stall of a bare
//! suspend (filesystem frozen) and resume of the origin, with nothing in between.
//! `DM_BENCH_HOOK`, a shell command, runs once after the setup and before the rounds,
//! while the writer runs, with `VG`, `DEV` and `MNT` in its environment (for profiling one
//! command, e.g. under `strace -f -tt -T`); the stall of that run is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/privileged/common.rs"]
mod common;
mod stall;

fn run(bin: &str, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    stall: Duration,
    wall: Duration,
    quiet: Duration,
    writes: usize,
}

/// Run `op` while a writer does 4 KiB O_DIRECT|O_DSYNC writes into `file`.
fn measure(file: &Path, op: impl FnOnce()) -> Sample {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let w = s.spawn(|| stall::write_loop(file, &stop));
        let _stop = stall::StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        op();
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let log = w.join().unwrap();
        let overlapping = log.iter().filter(|(t, d)| *t < t1 && *t + *d > t0);
        Sample {
            stall: overlapping
                .clone()
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default(),
            writes: overlapping.count(),
            wall: t1 - t0,
            quiet: log
                .iter()
                .filter(|(t, d)| *t + *d <= t0)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default(),
        }
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if let Err(why) = devmapper::availability() {
        println!("SKIP lvm_snapshot: {why}");
        return;
    }
    let bin = std::env::var("DMSNAP_BIN").unwrap_or_else(|_| "/usr/local/bin/dmsnap".into());
    if !PathBuf::from(&bin).exists() {
        println!("SKIP lvm_snapshot: no dmsnap binary at {bin} (set DMSNAP_BIN)");
        return;
    }
    if Command::new("lvm").arg("version").output().is_err() {
        println!("SKIP lvm_snapshot: lvm2 is not installed");
        return;
    }
    let rounds = std::env::var("DM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let dev = common::LoopDev::new(256 << 20);
    let p = dev.path.to_str().unwrap().to_string();
    let vg = format!("bsn{}", std::process::id());
    run("lvm", &["pvcreate", "-q", "--devices", &p, &p]);
    run("lvm", &["vgcreate", "-q", "--devices", &p, &vg, &p]);
    run(
        "lvm",
        &[
            "lvcreate",
            "-q",
            "-n",
            "o",
            "-L",
            "64M",
            "--devices",
            &p,
            &vg,
        ],
    );
    let node = format!("/dev/mapper/{vg}-o");
    run("mkfs.ext4", &["-q", "-F", &node]);
    let mnt = format!("/tmp/{vg}-m");
    std::fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&node, &mnt]);
    let file = Path::new(&mnt).join("w");
    std::fs::write(&file, vec![0u8; 64 << 10]).unwrap();
    run("sync", &[]);
    let origin = format!("{vg}/o");
    let snap = format!("{vg}/s");
    if let Ok(hook) = std::env::var("DM_BENCH_HOOK") {
        let s = measure(&file, || {
            let st = Command::new("sh")
                .args(["-c", &hook])
                .env("VG", &vg)
                .env("DEV", &p)
                .env("MNT", &mnt)
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .status()
                .expect("run DM_BENCH_HOOK");
            println!("lvm_snapshot: DM_BENCH_HOOK exited with {st}");
        });
        println!(
            "lvm_snapshot: hook stall {}, wall {}, quiet max {}",
            ms(s.stall),
            ms(s.wall),
            ms(s.quiet)
        );
    }
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // The floor: the stall of the origin's bare suspend (filesystem frozen, as both
    // tools suspend it) and resume, with nothing in between.
    let dm = devmapper::DeviceMapper::new().expect("device-mapper");
    let origin_dm = devmapper::DmName::new(&format!("{vg}-o")).expect("dm name");
    let mut floor = Vec::new();
    for r in 0..rounds {
        let mut sides: Vec<bool> = vec![true, false];
        if r % 2 == 1 {
            sides.reverse();
        }
        for dmsnap in sides {
            let s = if dmsnap {
                measure(&file, || {
                    run(
                        &bin,
                        &[
                            "lvm",
                            "snapshot",
                            &origin,
                            "-L",
                            "16M",
                            "--name",
                            "s",
                            "--devices",
                            &p,
                        ],
                    )
                })
            } else {
                measure(&file, || {
                    run(
                        "lvm",
                        &[
                            "lvcreate",
                            "-q",
                            "-s",
                            "-L",
                            "16M",
                            "-n",
                            "s",
                            "--devices",
                            &p,
                            &origin,
                        ],
                    )
                })
            };
            run("lvm", &["lvremove", "-q", "-f", "--devices", &p, &snap]);
            if dmsnap { &mut ours } else { &mut theirs }.push(s);
        }
        floor.push(measure(&file, || {
            let opts = devmapper::SuspendOptions::default();
            let suspended = dm.suspend(&origin_dm, opts);
            let resumed = dm.resume(&origin_dm, opts);
            suspended
                .and(resumed)
                .expect("suspend and resume the origin");
        }));
    }
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = Command::new("lvm")
        .args(["vgremove", "-q", "-ff", "-y", "--devices", &p, &vg])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .status();
    let report = |name: &str, v: &[Sample]| {
        let stall = median(v.iter().map(|s| s.stall).collect());
        let wall = median(v.iter().map(|s| s.wall).collect());
        let quiet = median(v.iter().map(|s| s.quiet).collect());
        let worst = v.iter().map(|s| s.stall).max().unwrap_or_default();
        println!(
            "lvm_snapshot: {name:<18} stall median {} (worst {}), wall median {}, quiet max {}, writes during {}",
            ms(stall),
            ms(worst),
            ms(wall),
            ms(quiet),
            v.iter().map(|s| s.writes).sum::<usize>() / v.len().max(1)
        );
        (stall, wall)
    };
    let (os, ow) = report("dmsnap lvm snapshot", &ours);
    let (ts, tw) = report("lvm2 lvcreate -s", &theirs);
    let (fs, _) = report("suspend+resume only", &floor);
    println!(
        "lvm_snapshot: {rounds} rounds; stall dmsnap/lvm2 = {:.3}, wall dmsnap/lvm2 = {:.3}; \
         floor (a bare suspend and resume of the origin)/lvm2 stall = {:.3}",
        os.as_secs_f64() / ts.as_secs_f64().max(1e-9),
        ow.as_secs_f64() / tw.as_secs_f64().max(1e-9),
        fs.as_secs_f64() / ts.as_secs_f64().max(1e-9)
    );
}
