//! Kernel-side benchmark: N create + load + resume + remove cycles through the crate,
//! against libdevmapper doing the same work in one process (`dmsetup create --concise`
//! with N devices, then one `dmsetup remove` of all of them), in the same run.
//!
//! Needs root and device-mapper (run it in the VM: `scripts/vm/bench.sh`); elsewhere it
//! prints why it skipped. Prints the ratio crate/dmsetup (lower is better; goal <= 1.0).
//!
//! `DM_BENCH_N` sets N (default 500); `DM_BENCH_ROUNDS` the number of alternating rounds
//! (default 4, alternating which side goes first; the median of each side is reported).

use devmapper::RemoveMode;
use std::process::Command;
use std::time::{Duration, Instant};

use devmapper::{DeviceMapper, DmName, RawTarget, SuspendOptions, units::Sectors};

fn crate_cycles(dm: &DeviceMapper, n: usize) -> Duration {
    let table = [RawTarget {
        start: Sectors(0),
        length: Sectors(8),
        target_type: "zero".into(),
        params: String::new(),
    }];
    let names: Vec<DmName> = (0..n)
        .map(|i| DmName::new(&format!("bench-crate-{i}")).unwrap())
        .collect();
    let t = Instant::now();
    for name in &names {
        dm.create(name, Default::default()).unwrap();
        dm.load_raw(name, &table, Default::default()).unwrap();
        dm.resume(name, SuspendOptions::default()).unwrap();
    }
    for name in &names {
        dm.remove(name, RemoveMode::Now).unwrap();
    }
    t.elapsed()
}

fn dmsetup_cycles(n: usize) -> Duration {
    let concise: Vec<String> = (0..n)
        .map(|i| format!("bench-dms-{i},,,rw,0 8 zero"))
        .collect();
    let concise = concise.join(";");
    let names: Vec<String> = (0..n).map(|i| format!("bench-dms-{i}")).collect();
    let t = Instant::now();
    // Without udev, DM_DISABLE_UDEV=1 makes dmsetup create and remove /dev/mapper nodes
    // itself, as the crate does: the same work on both sides.
    let st = Command::new("dmsetup")
        .env("DM_DISABLE_UDEV", "1")
        .args(["create", "--concise", &concise])
        .status()
        .unwrap();
    assert!(st.success(), "dmsetup create --concise failed");
    let st = Command::new("dmsetup")
        .arg("remove")
        .args(&names)
        .status()
        .unwrap();
    assert!(st.success(), "dmsetup remove failed");
    t.elapsed()
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    if let Err(why) = devmapper::availability() {
        println!("SKIP dm_cycles: {why}");
        return;
    }
    if Command::new("dmsetup").arg("version").output().is_err() {
        println!("SKIP dm_cycles: dmsetup (the anchor) is not installed");
        return;
    }
    let n: usize = std::env::var("DM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let rounds: usize = std::env::var("DM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dm = DeviceMapper::new().unwrap();
    // Alternate which side goes first (ABBA) so drift in the emulated machine cancels out;
    // report the median of each side.
    let mut cs = Vec::new();
    let mut ds = Vec::new();
    for r in 0..rounds {
        let (c, d) = if r % 2 == 0 {
            let c = crate_cycles(&dm, n);
            (c, dmsetup_cycles(n))
        } else {
            let d = dmsetup_cycles(n);
            (crate_cycles(&dm, n), d)
        };
        println!(
            "round {r}: crate {:.1} ms, dmsetup {:.1} ms",
            c.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3
        );
        cs.push(c);
        ds.push(d);
    }
    cs.sort();
    ds.sort();
    let (c, d) = (cs[cs.len() / 2], ds[ds.len() / 2]);
    println!(
        "dm_cycles N={n} rounds={rounds}: crate median {:.1} ms ({:.0} us/cycle), dmsetup --concise median {:.1} ms; ratio crate/dmsetup = {:.2}",
        c.as_secs_f64() * 1e3,
        c.as_secs_f64() * 1e6 / n as f64,
        d.as_secs_f64() * 1e3,
        c.as_secs_f64() / d.as_secs_f64()
    );
}
