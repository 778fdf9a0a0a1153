//! Snapshot-set benchmark (issue 14): the longest write stall on each of four origins
//! while one set snapshot of all four is taken, against one origin alone (a set of one),
//! same VM run. Goal: at most 1.5x.
//!
//! Four wrapped loop devices (raw origins, `Wrapper::wrap`), each with a COW loop device.
//! One writer thread per busy origin does 4 KiB `O_DIRECT | O_DSYNC` writes to it in a
//! loop (a ring of 16 blocks) and records each write's latency; the stall of an origin is
//! the longest single write that overlapped `SnapshotSet::take` (what a user of that
//! origin sees), the figure of a round the largest over its origins. Each round measures,
//! in an order that rotates:
//!
//! - `set of 4`: the four origins busy, one set snapshot of all four;
//! - `set of 1`: origin 0 alone busy, a set of one of it (the issue's anchor);
//! - `1 of 4 busy`: the four origins busy, a set of one of origin 0 (the same load as
//!   `set of 4`, so the ratio to it isolates the cost of the larger set from the cost of
//!   four writers on two CPUs).
//!
//! The snapshots are discarded after each measurement (not measured). The cases run on
//! the raw devices (`raw`: writers on the device nodes), then with ext4 mounted on each
//! origin (`raw+ext4`: writers into a file on each; every origin's filesystem is frozen
//! by its suspend; `DM_BENCH_FS=0` skips these). With `DM_BENCH_LVM=1` the same runs over
//! four LVs of one VG made by lvm2 (one commit for the set; ext4 on them unless
//! `DM_BENCH_FS=0`).
//!
//! Needs root, device-mapper, `losetup` (and lvm2 for the LVM cases): run it in the VM,
//! release build: `cargo build --release --bench snapshot_set`, then
//! `scripts/vm/run.sh --add target/release/deps/snapshot_set-HASH:/b -- '/b --bench'`.
//! `DM_BENCH_ROUNDS` sets the rounds (default 7); medians are reported, with the writers'
//! longest write in a quiet stretch before each take (`quiet max`, the emulated machine's
//! noise floor), the suspend window the library reports (`suspended_for`), and the
//! `window stall`: the longest write overlapping the last `suspended_for` + 100 ms of the
//! take (the freeze itself; a set of four prepares four members first, a longer stretch in
//! which the emulator's noise alone makes long writes).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use devmapper::lvm::write::session::WriteOptions;
use devmapper::lvm::write::snapshot::create::SnapshotRequest;
use devmapper::lvm::write::snapshot::remove::lvremove;
use devmapper::lvm::write::snapshot::size::CowSize;
use devmapper::snapshot::{CowOverwrite, SnapshotOptions, Wrapper};
use devmapper::snapshot_set::{SetOptions, SetSource, SetTaken, SnapshotSet};
use devmapper::{DeviceMapper, DmName};

#[allow(dead_code)]
#[path = "../tests/privileged/common.rs"]
mod common;
mod stall;

/// Origins.
const N: usize = 4;

/// One measured take.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Longest write overlapping the take, over the busy origins.
    stall: Duration,
    /// The same per origin (zero for an idle one).
    per_origin: [Duration; N],
    /// Longest write overlapping the end of the take, the reported suspend window plus
    /// 100 ms before it, over the busy origins: the stall of the freeze itself, without the
    /// emulator's noise during the (longer, for four members) preparation.
    window: Duration,
    /// Wall time of `take`.
    wall: Duration,
    /// The suspend window `take` reported.
    suspended: Duration,
    /// Longest write in the quiet time before the take, over the busy origins.
    quiet: Duration,
}

/// Run `take` while a writer hammers each of `busy` (origin index, node).
fn measure(busy: &[(usize, PathBuf)], take: impl FnOnce() -> SetTaken) -> (SetTaken, Sample) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = busy
            .iter()
            .map(|(i, dev)| (*i, s.spawn(|| stall::write_loop(dev, &stop))))
            .collect();
        let _stop = stall::StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let taken = take();
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let mut sample = Sample {
            wall: t1 - t0,
            suspended: taken.suspended_for,
            ..Sample::default()
        };
        let w0 = t1
            .checked_sub(taken.suspended_for + Duration::from_millis(100))
            .unwrap_or(t0)
            .max(t0);
        for (i, w) in writers {
            let log = w.join().unwrap();
            let window = log
                .iter()
                .filter(|(t, d)| *t < t1 && *t + *d > w0)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default();
            sample.window = sample.window.max(window);
            let stall = log
                .iter()
                .filter(|(t, d)| *t < t1 && *t + *d > t0)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default();
            let quiet = log
                .iter()
                .filter(|(t, d)| *t + *d <= t0)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default();
            sample.per_origin[i] = stall;
            sample.stall = sample.stall.max(stall);
            sample.quiet = sample.quiet.max(quiet);
        }
        (taken, sample)
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What the bench snapshots: four raw wrapped origins, or four LVs of one VG.
trait Origins {
    /// The origins' device nodes.
    fn nodes(&self) -> Vec<PathBuf>;
    /// A set of the origins `which`.
    fn set(&self, which: &[usize]) -> SnapshotSet;
    /// Set options.
    fn options(&self) -> SetOptions;
    /// Drop the snapshots of `taken`.
    fn drop_all(&self, which: &[usize], taken: SetTaken);
}

struct Raw<'a> {
    dm: &'a DeviceMapper,
    names: Vec<DmName>,
    cows: Vec<common::LoopDev>,
}

impl Origins for Raw<'_> {
    fn nodes(&self) -> Vec<PathBuf> {
        self.names.iter().map(|n| dm_node(self.dm, n)).collect()
    }
    fn set(&self, which: &[usize]) -> SnapshotSet {
        let mut set = SnapshotSet::new();
        for &i in which {
            set.raw(
                self.names[i].clone(),
                SnapshotOptions::new(&self.cows[i].path).overwrite(CowOverwrite::Force),
            );
        }
        set
    }
    fn options(&self) -> SetOptions {
        SetOptions::new("bench snapshot_set")
    }
    fn drop_all(&self, which: &[usize], taken: SetTaken) {
        for &i in which {
            let source = SetSource::Raw(self.names[i].clone());
            let m = taken.members.iter().find(|m| m.source == source).unwrap();
            let w = Wrapper::open(self.dm, &self.names[i]).unwrap();
            w.snapshot(Some(&m.snapshot)).unwrap().discard().unwrap();
        }
    }
}

struct Lvm<'a> {
    dm: &'a DeviceMapper,
    vg: String,
    devs: String,
}

impl Lvm<'_> {
    fn lv(i: usize) -> String {
        format!("o{i}")
    }
    fn write_options(&self) -> WriteOptions {
        let mut o = WriteOptions::new("bench snapshot_set");
        o.devices = Some(vec![PathBuf::from(&self.devs)]);
        o.backups = None;
        o
    }
}

impl Origins for Lvm<'_> {
    fn nodes(&self) -> Vec<PathBuf> {
        (0..N)
            .map(|i| {
                let n = devmapper::lvm::plan::dm_name(&self.vg, &Self::lv(i), None);
                dm_node(self.dm, &DmName::new(&n).unwrap())
            })
            .collect()
    }
    fn set(&self, which: &[usize]) -> SnapshotSet {
        let mut set = SnapshotSet::new();
        for &i in which {
            set.lvm(
                &self.vg,
                Self::lv(i),
                Some(&format!("s{i}")),
                SnapshotRequest::new(CowSize::Sectors(8 << 11)),
            );
        }
        set
    }
    fn options(&self) -> SetOptions {
        SetOptions::new("bench snapshot_set").write(self.write_options())
    }
    fn drop_all(&self, which: &[usize], _taken: SetTaken) {
        for &i in which {
            lvremove(&self.vg, &format!("s{i}"), false, &self.write_options())
                .unwrap_or_else(|e| panic!("lvremove s{i}: {e}"));
        }
    }
}

/// The node devtmpfs makes for a dm device (no udev in the VM).
fn dm_node(dm: &DeviceMapper, name: &DmName) -> PathBuf {
    PathBuf::from(format!("/dev/dm-{}", dm.info(name).unwrap().dev.minor))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Case {
    /// All four busy, all four in the set.
    SetOfFour,
    /// Origin 0 alone busy and in the set.
    SetOfOne,
    /// All four busy, origin 0 alone in the set.
    OneOfFourBusy,
}

impl Case {
    const ALL: [Case; 3] = [Case::SetOfFour, Case::SetOfOne, Case::OneOfFourBusy];
    fn label(self) -> &'static str {
        match self {
            Case::SetOfFour => "set of 4",
            Case::SetOfOne => "set of 1",
            Case::OneOfFourBusy => "1 of 4 busy",
        }
    }
    fn members(self) -> Vec<usize> {
        match self {
            Case::SetOfFour => (0..N).collect(),
            _ => vec![0],
        }
    }
    fn busy(self) -> Vec<usize> {
        match self {
            Case::SetOfOne => vec![0],
            _ => (0..N).collect(),
        }
    }
}

/// Run the three cases `rounds` times; the writers write to `targets` (one per origin:
/// its device node, or a file on its mounted filesystem).
fn bench(kind: &str, dm: &DeviceMapper, o: &dyn Origins, targets: &[PathBuf], rounds: usize) {
    let nodes = targets;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); Case::ALL.len()];
    for r in 0..rounds {
        for k in 0..Case::ALL.len() {
            let ci = (k + r) % Case::ALL.len();
            let case = Case::ALL[ci];
            let members = case.members();
            let busy: Vec<(usize, PathBuf)> = case
                .busy()
                .into_iter()
                .map(|i| (i, nodes[i].clone()))
                .collect();
            let set = o.set(&members);
            let opts = o.options();
            let (taken, s) = measure(&busy, || {
                set.take(dm, &opts)
                    .unwrap_or_else(|e| panic!("{kind} {}: {e}", case.label()))
            });
            o.drop_all(&members, taken);
            samples[ci].push(s);
        }
    }
    let mut stall = Vec::new();
    let mut window = Vec::new();
    for (ci, case) in Case::ALL.iter().enumerate() {
        let v = &samples[ci];
        let st = median(v.iter().map(|s| s.stall).collect());
        let per: Vec<String> = case
            .busy()
            .into_iter()
            .map(|i| ms(median(v.iter().map(|s| s.per_origin[i]).collect())))
            .collect();
        let wi = median(v.iter().map(|s| s.window).collect());
        println!(
            "snapshot_set {kind}: {:<12} stall median {} (worst {}), per origin [{}], window stall median {}, suspended_for median {}, take wall median {}, quiet max {}",
            case.label(),
            ms(st),
            ms(v.iter().map(|s| s.stall).max().unwrap_or_default()),
            per.join(", "),
            ms(wi),
            ms(median(v.iter().map(|s| s.suspended).collect())),
            ms(median(v.iter().map(|s| s.wall).collect())),
            ms(median(v.iter().map(|s| s.quiet).collect())),
        );
        stall.push(st);
        window.push(wi);
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "snapshot_set {kind}: {rounds} rounds; stall set of 4 / set of 1 = {:.2} (goal <= 1.5); set of 4 / 1 of 4 busy = {:.2}; window stall set of 4 / set of 1 = {:.2}, set of 4 / 1 of 4 busy = {:.2}",
        ratio(stall[0], stall[1]),
        ratio(stall[0], stall[2]),
        ratio(window[0], window[1]),
        ratio(window[0], window[2]),
    );
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ext4 on each of `nodes`, mounted under /tmp; a 64 KiB file on each for the writers.
/// Unmounted on drop.
struct Mounted {
    dirs: Vec<PathBuf>,
}

impl Mounted {
    fn new(tag: &str, nodes: &[PathBuf]) -> Mounted {
        let mut m = Mounted { dirs: Vec::new() };
        for (i, n) in nodes.iter().enumerate() {
            let dir = PathBuf::from(format!("/tmp/bss{}-{tag}{i}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            run(&["mkfs.ext4", "-q", "-F", n.to_str().unwrap()]);
            run(&["mount", n.to_str().unwrap(), dir.to_str().unwrap()]);
            m.dirs.push(dir.clone());
            std::fs::write(dir.join("w"), vec![0u8; 64 << 10]).unwrap();
        }
        run(&["sync"]);
        m
    }
    fn files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("w")).collect()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = Command::new("umount").arg(d).status();
        }
    }
}

/// The raw cases, then (with `fs`) the same with ext4 mounted on each origin.
fn raw_benches(dm: &DeviceMapper, rounds: usize, fs: bool) {
    let origins: Vec<_> = (0..N).map(|_| common::LoopDev::new(64 << 20)).collect();
    let cows: Vec<_> = (0..N).map(|_| common::LoopDev::new(16 << 20)).collect();
    let names: Vec<DmName> = (0..N)
        .map(|i| common::unique_name(&format!("bs{i}")))
        .collect();
    let _guards: Vec<_> = names
        .iter()
        .zip(&origins)
        .map(|(n, d)| {
            Wrapper::wrap(dm, n, &d.path).unwrap();
            common::WrapGuard {
                dm,
                name: n.clone(),
            }
        })
        .collect();
    let raw = Raw { dm, names, cows };
    let nodes = raw.nodes();
    bench("raw", dm, &raw, &nodes, rounds);
    if fs {
        let m = Mounted::new("r", &nodes);
        bench("raw+ext4", dm, &raw, &m.files(), rounds);
    }
}

/// The same over four LVs of one VG made by lvm2 (with `fs`: ext4 mounted on each).
fn lvm_benches(dm: &DeviceMapper, rounds: usize, fs: bool) {
    if Command::new("lvm").arg("version").output().is_err() {
        println!("SKIP snapshot_set lvm: lvm2 is not installed");
        return;
    }
    let pv = common::LoopDev::new(512 << 20);
    let devs = pv.path.display().to_string();
    let vg = format!("bss{}", std::process::id());
    common::lvm(&["pvcreate", "-q", "--devices", &devs, &devs]);
    common::lvm(&["vgcreate", "-q", "--devices", &devs, &vg, &devs]);
    for i in 0..N {
        common::lvm(&[
            "lvcreate",
            "-q",
            "-L",
            "64M",
            "-n",
            &Lvm::lv(i),
            "--devices",
            &devs,
            &vg,
        ]);
    }
    let l = Lvm {
        dm,
        vg: vg.clone(),
        devs: devs.clone(),
    };
    let nodes = l.nodes();
    if fs {
        let m = Mounted::new("l", &nodes);
        bench("lvm+ext4", dm, &l, &m.files(), rounds);
    } else {
        bench("lvm", dm, &l, &nodes, rounds);
    }
    let _ = common::lvm_try(&["vgremove", "-q", "-ff", "-y", "--devices", &devs, &vg]);
    let _ = common::lvm_try(&["pvremove", "-ff", "-y", "--devices", &devs, &devs]);
}

fn main() {
    if let Err(why) = devmapper::availability() {
        println!("SKIP snapshot_set: {why}");
        return;
    }
    let rounds = std::env::var("DM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let fs = std::env::var("DM_BENCH_FS").as_deref() != Ok("0");
    let dm = DeviceMapper::new().unwrap();
    raw_benches(&dm, rounds, fs);
    if std::env::var("DM_BENCH_LVM").as_deref() == Ok("1") {
        lvm_benches(&dm, rounds, fs);
    }
}
