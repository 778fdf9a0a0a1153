//! Suspend-window benchmark: how long writes to a live origin stall while a snapshot is
//! taken, through the crate (`Wrapper::take_snapshot`) against the `dmsetup` sequence an
//! administrator types, in the same run.
//!
//! The stall is measured the same way for every side: a writer thread does 4 KiB
//! `O_DIRECT | O_DSYNC` writes to the origin in a loop and records each write's latency;
//! the stall of one operation is the longest single write that overlapped it (what a user
//! of the device sees). The wall time of the whole operation is reported too.
//!
//! The sides:
//! - `crate`: `Wrapper::take_snapshot` (prepares `-real`, the COW header, the snapshot and
//!   the origin's new table, then suspend, resume snapshot, resume origin: three ioctls).
//! - `dmsetup`: the seed walkthrough as typed, one `dmsetup` process per step:
//!   `dd` (zero the COW header), then `dmsetup suspend ORIG`, `dmsetup create ORIG-real`,
//!   `dmsetup create ORIG-snap --table 'snapshot ...'`, `dmsetup load ORIG --table
//!   'snapshot-origin ...'`, `dmsetup resume ORIG`.
//! - `dmsetup-prepared`: the same, but `ORIG-real` created before the suspend (the best
//!   one can do with `dmsetup` alone).
//!
//! Without udev (the VM) `dmsetup` runs with `DM_DISABLE_UDEV=1`, so it makes the
//! `/dev/mapper` nodes itself, as udev would; the writer uses `/dev/dm-N`.
//!
//! Needs root, device-mapper, `losetup`, `dmsetup` and `dd`: run it in the VM with
//! `scripts/vm/bench.sh snapshot_window`; elsewhere it prints why it skipped.
//! `DM_BENCH_ROUNDS` sets the number of rounds (default 9; the order of the sides rotates
//! each round; medians are reported). The emulated machine's own noise (the longest write
//! in a quiet stretch, reported as `quiet max`) bounds how small a stall can be measured.

use devmapper::RemoveMode;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use devmapper::snapshot::{CowOverwrite, SnapshotOptions, Wrapper};
use devmapper::units::Sectors;
use devmapper::{DevNum, DeviceMapper, DmName, RawTarget, SuspendOptions};

const ORIGIN_BYTES: u64 = 64 << 20;
const COW_BYTES: u64 = 32 << 20;

// The privileged tests' helpers: loop devices (LoopDev).
#[allow(dead_code)]
#[path = "../tests/privileged/common.rs"]
mod common;
mod stall;

use common::LoopDev as Loop;

/// The node devtmpfs makes for a dm device (no udev needed).
fn dm_node(dm: &DeviceMapper, name: &DmName) -> PathBuf {
    PathBuf::from(format!("/dev/dm-{}", dm.info(name).unwrap().dev.minor))
}

/// One `dmsetup` step. Without udev (the VM) `DM_DISABLE_UDEV=1` makes dmsetup create the
/// `/dev/mapper` nodes itself, as udev would on a normal system.
fn dmsetup(args: &[&str]) {
    let out = Command::new("dmsetup")
        .env("DM_DISABLE_UDEV", "1")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dmsetup {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One measured operation.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Longest write that overlapped the operation.
    stall: Duration,
    /// Wall time of the operation.
    wall: Duration,
    /// Longest write in the quiet time before it (noise floor).
    quiet: Duration,
    /// Writes that overlapped the operation.
    writes: usize,
}

/// Run `op` while a writer hammers `dev`; return its result and the sample.
fn measure<T>(dev: &Path, op: impl FnOnce() -> T) -> (T, Sample) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let w = s.spawn(|| stall::write_loop(dev, &stop));
        // Stop the writer even if `op` panics (the scope joins it).
        let _stop = stall::StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let r = op();
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let log = w.join().unwrap();
        let overlapping = log.iter().filter(|(t, d)| *t < t1 && *t + *d > t0);
        let stall = overlapping
            .clone()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        let writes = overlapping.count();
        let quiet = log
            .iter()
            .filter(|(t, d)| *t + *d <= t0)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        (
            r,
            Sample {
                stall,
                wall: t1 - t0,
                quiet,
                writes,
            },
        )
    })
}

fn crate_round(dm: &DeviceMapper, w: &Wrapper<'_>, cow: &Path) -> Sample {
    let dev = dm_node(dm, w.name());
    let (snap, s) = measure(&dev, || {
        // The dmsetup rounds leave their store on the same COW device: overwrite it.
        w.take_snapshot(
            &SnapshotOptions::new(cow)
                .chunk(Sectors(8))
                .overwrite(CowOverwrite::Force),
        )
        .unwrap()
    });
    snap.discard().unwrap();
    s
}

/// The dmsetup side over origin `name` (a plain linear device over `base`).
fn dmsetup_round(
    dm: &DeviceMapper,
    name: &DmName,
    base: &Loop,
    cow: &Loop,
    prepared: bool,
) -> Sample {
    let len = ORIGIN_BYTES / 512;
    let real = format!("{name}-real");
    let snap = format!("{name}-snap");
    let real_node = format!("/dev/mapper/{real}");
    let real_table = format!("0 {len} linear {} 0", base.devnum());
    let snap_table = format!("0 {len} snapshot {real_node} {} P 8", cow.path.display());
    let origin_table = format!("0 {len} snapshot-origin {real_node}");
    let dev = dm_node(dm, name);
    let zero = format!("of={}", cow.path.display());
    if prepared {
        dmsetup(&["create", &real, "--table", &real_table]);
    }
    let ((), s) = measure(&dev, || {
        // Should a step fail, the origin must not stay suspended (the writer would block).
        let _resume = ResumeOnDrop(dm, name);
        let out = Command::new("dd")
            .args(["if=/dev/zero", &zero, "bs=4096", "count=1", "conv=fsync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "dd failed");
        dmsetup(&["suspend", name.as_str()]);
        if !prepared {
            dmsetup(&["create", &real, "--table", &real_table]);
        }
        dmsetup(&["create", &snap, "--table", &snap_table]);
        dmsetup(&["load", name.as_str(), "--table", &origin_table]);
        dmsetup(&["resume", name.as_str()]);
    });
    // Tear down (not measured): snapshot out with the origin suspended, linear back.
    let snap = DmName::new(&snap).unwrap();
    let real = DmName::new(&real).unwrap();
    let skip = SuspendOptions {
        noflush: false,
        skip_lockfs: true,
    };
    dm.suspend(name, skip).unwrap();
    dm.remove(&snap, RemoveMode::Now).unwrap();
    dm.load_raw(name, &linear(base.devnum(), len), Default::default())
        .unwrap();
    dm.resume(name, SuspendOptions::default()).unwrap();
    for _ in 0..50 {
        match dm.remove(&real, RemoveMode::Now) {
            Ok(_) => break,
            Err(e) if e.is_busy() => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("remove {real}: {e}"),
        }
    }
    s
}

/// Resumes a device when dropped (a no-op when it is running).
struct ResumeOnDrop<'a>(&'a DeviceMapper, &'a DmName);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.info(self.1).is_ok_and(|i| i.suspended()) {
            let _ = self.0.clear_table(self.1);
            let _ = self.0.resume(self.1, SuspendOptions::default());
        }
    }
}

fn linear(dev: DevNum, len: u64) -> Vec<RawTarget> {
    vec![RawTarget {
        start: Sectors(0),
        length: Sectors(len),
        target_type: "linear".into(),
        params: format!("{dev} 0"),
    }]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes --bench; arguments are ignored.
    if let Err(why) = devmapper::availability() {
        println!("SKIP snapshot_window: {why}");
        return;
    }
    for tool in ["dmsetup", "losetup", "dd"] {
        let ok = Command::new(tool)
            .arg("--help")
            .output()
            .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty());
        if !ok {
            println!("SKIP snapshot_window: {tool} is not installed");
            return;
        }
    }
    let rounds: usize = std::env::var("DM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
        .max(1);
    let dm = DeviceMapper::new().unwrap();
    let pid = std::process::id();

    // Crate side: a wrapped loop device.
    let c_base = Loop::new(ORIGIN_BYTES);
    let c_cow = Loop::new(COW_BYTES);
    let c_name = DmName::new(&format!("bsw{pid}-crate")).unwrap();
    let w = Wrapper::wrap(&dm, &c_name, &c_base.path).unwrap();
    // dmsetup side: a plain linear device made with dmsetup.
    let d_base = Loop::new(ORIGIN_BYTES);
    let d_cow = Loop::new(COW_BYTES);
    let d_name = DmName::new(&format!("bsw{pid}-dms")).unwrap();
    dmsetup(&[
        "create",
        d_name.as_str(),
        "--table",
        &format!("0 {} linear {} 0", ORIGIN_BYTES / 512, d_base.devnum()),
    ]);

    const SIDES: [&str; 3] = ["crate", "dmsetup", "dmsetup-prepared"];
    let mut samples: [Vec<Sample>; 3] = Default::default();
    for r in 0..rounds {
        let mut line = format!("round {r}:");
        for k in 0..SIDES.len() {
            let side = (r + k) % SIDES.len();
            let s = match side {
                0 => crate_round(&dm, &w, &c_cow.path),
                1 => dmsetup_round(&dm, &d_name, &d_base, &d_cow, false),
                _ => dmsetup_round(&dm, &d_name, &d_base, &d_cow, true),
            };
            line += &format!(
                " {} stall {:.2} ms (wall {:.2} ms, {} writes, quiet max {:.2} ms);",
                SIDES[side],
                ms(s.stall),
                ms(s.wall),
                s.writes,
                ms(s.quiet)
            );
            samples[side].push(s);
        }
        println!("{line}");
    }

    w.unwrap_device().unwrap();
    dmsetup(&["remove", d_name.as_str()]);

    let med = |i: usize, f: fn(&Sample) -> Duration| median(samples[i].iter().map(f).collect());
    println!("snapshot_window rounds={rounds} (medians):");
    for (i, side) in SIDES.iter().enumerate() {
        println!(
            "  {side:<17} stall {:>8.2} ms   wall {:>8.2} ms   quiet max write {:>6.2} ms",
            ms(med(i, |s| s.stall)),
            ms(med(i, |s| s.wall)),
            ms(med(i, |s| s.quiet))
        );
    }
    let c = med(0, |s| s.stall).as_secs_f64();
    println!(
        "ratio stall crate/dmsetup = {:.3}, crate/dmsetup-prepared = {:.3} (goal <= 0.1)",
        c / med(1, |s| s.stall).as_secs_f64(),
        c / med(2, |s| s.stall).as_secs_f64()
    );
    println!(
        "ratio wall crate/dmsetup = {:.3}, crate/dmsetup-prepared = {:.3}",
        med(0, |s| s.wall).as_secs_f64() / med(1, |s| s.wall).as_secs_f64(),
        med(0, |s| s.wall).as_secs_f64() / med(2, |s| s.wall).as_secs_f64()
    );
}
