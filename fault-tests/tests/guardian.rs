//! The suspend guardian against real kills: a workflow child is stopped at each point of
//! each suspend window (the `fault-injection` pause hook), SIGKILLed there, and a writer on
//! the origin must complete within a few seconds with nobody running any command; then
//! `recover` completes or undoes the step. Also: a window outlasting its bound is ended by
//! the guardian while the workflow process is still alive.
//!
//! In this package because the pause hook needs the `fault-injection` feature, which must
//! never reach the dmsnap example. Privileged (root and device-mapper; run in the VM with
//! scripts/vm/test.sh).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devmapper::snapshot::{MergeState, RollbackOptions, SnapError, SnapshotOptions, Wrapper};
use devmapper::{DeviceMapper, DmName, GuardOutcome, GuardPlan, SuspendGuard, SuspendOptions};

#[allow(dead_code)]
#[path = "../../tests/privileged/common.rs"]
mod common;

use common::{DevGuard, LoopDev, WrapGuard, one, pattern, read, suspended, unique_name, write};

const MIB: u64 = 1 << 20;
const LEN: usize = 256 * 1024;
/// Where the test writer writes on the origin (outside the checked first 256 KiB).
const WRITE_AT: u64 = 4 * MIB;
/// How long the origin may stay suspended after the kill.
const LIMIT: Duration = Duration::from_secs(3);

/// One O_DIRECT 4 KiB write to `node` at [`WRITE_AT`], in a thread: the channel gets the
/// moment it completed (it blocks while the device is suspended).
fn writer(node: PathBuf, seed: u8) -> mpsc::Receiver<Instant> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // An aligned 4 KiB block without unsafe: find the aligned window of a larger Vec.
        let mut raw = vec![0u8; 8192];
        let off = raw.as_ptr().align_offset(4096);
        let block = &mut raw[off..off + 4096];
        block.copy_from_slice(&pattern(seed.into(), 4096));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&node)
            .unwrap();
        f.write_all_at(block, WRITE_AT).unwrap();
        let _ = tx.send(Instant::now());
    });
    rx
}

/// Processes whose environment carries `marker` (the workflow child and its guardian).
fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(env) = std::fs::read(e.path().join("environ"))
            && env.split(|&b| b == 0).any(|v| v == marker.as_bytes())
        {
            // A zombie still has no environ to read; anything readable is alive.
            out.push(pid);
        }
    }
    out
}

/// Poll `f` every 2 ms until it is true or `limit` passes; the time it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if f() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Child half: runs one workflow with the pause hook armed by the parent.
#[test]
#[ignore = "run by the guardian tests in a child process"]
fn guard_child() {
    let Ok(op) = std::env::var("DMSNAP_GUARD_CHILD") else {
        return;
    };
    let name = DmName::new(&std::env::var("DMSNAP_GUARD_NAME").unwrap()).unwrap();
    let cow = std::env::var("DMSNAP_GUARD_COW").unwrap();
    devmapper::snapshot::arm_fault_injection();
    let dm = DeviceMapper::new().unwrap();
    let mut w = Wrapper::open(&dm, &name).unwrap();
    if let Ok(ms) = std::env::var("DMSNAP_GUARD_BOUND_MS") {
        w = w.with_suspend_bound(Duration::from_millis(ms.parse().unwrap()));
    }
    let r: Result<(), SnapError> = match op.as_str() {
        "snapshot" => w.take_snapshot(&SnapshotOptions::new(cow)).map(|_| ()),
        "drop" => w.snapshot(None).unwrap().discard(),
        "drop-other" => {
            let n = DmName::new(&format!("{name}-b")).unwrap();
            w.snapshot(Some(&n)).unwrap().discard()
        }
        "rollback" => w
            .snapshot(None)
            .unwrap()
            .rollback(RollbackOptions::default())
            .map(|_| ()),
        "finish" => w.merging().unwrap().unwrap().finish(),
        _ => panic!("unknown op {op}"),
    };
    match r {
        Ok(()) => println!("GUARD-CHILD-RESULT ok"),
        Err(SnapError::SuspendBound { recovery, .. }) => {
            println!("GUARD-CHILD-RESULT SuspendBound {recovery:?}")
        }
        Err(e) => println!("GUARD-CHILD-RESULT other {e:?}"),
    }
}

/// A wrapper set up for `op`: origin written with p0 and, for all but `snapshot`, a
/// snapshot showing p0 while the origin holds p1 (`drop-other`: a second snapshot showing
/// p1; `finish`: the rollback merged, origin back at p0).
struct Setup {
    lo: LoopDev,
    cow: LoopDev,
    cow2: LoopDev,
    name: DmName,
}

fn setup(dm: &DeviceMapper, op: &str, tag: &str) -> Setup {
    let s = Setup {
        lo: LoopDev::new(8 * MIB),
        cow: LoopDev::new(4 * MIB),
        cow2: LoopDev::new(4 * MIB),
        name: unique_name(tag),
    };
    let w = Wrapper::wrap(dm, &s.name, &s.lo.path).unwrap();
    write(&w.node(), 0, &pattern(10, LEN));
    if op != "snapshot" {
        w.take_snapshot(&SnapshotOptions::new(&s.cow.path)).unwrap();
        write(&w.node(), 0, &pattern(11, LEN));
    }
    if op == "drop-other" {
        let n = DmName::new(&format!("{}-b", s.name)).unwrap();
        w.take_snapshot(&SnapshotOptions::new(&s.cow2.path).name(n))
            .unwrap();
    }
    if op == "finish" {
        let m = w
            .snapshot(None)
            .unwrap()
            .rollback(RollbackOptions::default())
            .unwrap();
        while m.state().unwrap() != MergeState::Done {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    s
}

/// Spawn the workflow child for `op` with `DEVMAPPER_FAULT_PAUSE=pause`; return it once
/// it printed that it paused.
fn spawn_paused(s: &Setup, op: &str, pause: &str, bound_ms: Option<u64>) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Proc::new(exe);
    cmd.args([
        "--exact",
        "guard_child",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DMSNAP_GUARD_CHILD", op)
    .env("DMSNAP_GUARD_NAME", s.name.as_str())
    .env("DMSNAP_GUARD_COW", &s.cow.path)
    .env("DEVMAPPER_FAULT_PAUSE", pause)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(ms) = bound_ms {
        cmd.env("DMSNAP_GUARD_BOUND_MS", ms.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (pop, k) = pause.split_once(':').unwrap();
    let k = k.split(':').next().unwrap();
    let want = format!("fault injection: paused at {pop} step {k}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) if l == want => break,
            Ok(l) => seen.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = child.wait().unwrap();
                panic!("{op} {pause}: child exited ({st:?}) before pausing: {seen:#?}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{op} {pause}: no pause: {seen:#?}"
        );
    }
    child
}

/// Check the state `recover` leaves after an interrupted `op`, and run the workflow to its
/// end so nothing is left.
fn check_recovered(dm: &DeviceMapper, s: &Setup, op: &str, at: &str) {
    let (p0, p1) = (pattern(10, LEN), pattern(11, LEN));
    let w = Wrapper::open(dm, &s.name).unwrap();
    let actions = w.recover().unwrap();
    assert!(
        w.recover().unwrap().is_empty(),
        "{at}: second recover did more"
    );
    assert!(suspended(dm, s.name.as_str()).is_empty(), "{at}");
    let st = w.status().unwrap();
    let origin = read(&w.node(), LEN);
    use devmapper::snapshot::WrapperState::Plain;
    match op {
        "snapshot" => {
            assert_eq!(origin, p0, "{at}");
            match st.snapshots.first() {
                Some(x) => {
                    assert_eq!(
                        x.state,
                        devmapper::snapshot::SnapshotState::Active,
                        "{at} {actions:?}"
                    );
                    assert_eq!(read(&w.snapshot(None).unwrap().node(), LEN), p0, "{at}");
                    w.snapshot(None).unwrap().discard().unwrap();
                }
                None => assert_eq!(st.state, Plain, "{at} {actions:?}"),
            }
        }
        "drop" => {
            assert_eq!(origin, p1, "{at}");
            if let Ok(x) = w.snapshot(None) {
                assert_eq!(
                    read(&x.node(), LEN),
                    p0,
                    "{at}: undone drop lost the snapshot"
                );
                x.discard().unwrap();
            }
        }
        "drop-other" => {
            assert_eq!(origin, p1, "{at}");
            let a = w
                .snapshot(Some(&DmName::new(&format!("{}-snap", s.name)).unwrap()))
                .unwrap();
            assert_eq!(read(&a.node(), LEN), p0, "{at}: the other snapshot changed");
            if let Ok(b) = w.snapshot(Some(&DmName::new(&format!("{}-b", s.name)).unwrap())) {
                assert_eq!(read(&b.node(), LEN), p1, "{at}: undone drop lost it");
                b.discard().unwrap();
            }
            w.snapshot(None).unwrap().discard().unwrap();
        }
        "rollback" => {
            if origin == p1 {
                let x = w.snapshot(None).unwrap();
                assert_eq!(read(&x.node(), LEN), p0, "{at}: snapshot lost");
                x.discard().unwrap();
            } else {
                assert_eq!(origin, p0, "{at}: origin is neither state");
                if let Some(m) = w.merging().unwrap() {
                    m.wait(Some(Duration::from_secs(120)), |_| {}).unwrap();
                }
                assert_eq!(read(&w.node(), LEN), p0, "{at}");
            }
        }
        "finish" => assert_eq!(origin, p0, "{at}"),
        _ => unreachable!(),
    }
    assert_eq!(w.status().unwrap().state, Plain, "{at}");
    assert!(suspended(dm, s.name.as_str()).is_empty(), "{at}");
}

/// Every pause point inside a guarded window: `(workflow, pause op, points)`.
const WINDOWS: [(&str, &str, &[u32]); 5] = [
    ("snapshot", "snapshot", &[5, 6, 7, 8]),
    ("drop", "drop", &[1, 2, 3]),
    ("drop-other", "drop", &[1, 2, 3]),
    ("rollback", "rollback", &[1, 2, 3, 4]),
    ("finish", "finish", &[1, 2, 3]),
];

#[test]
fn sigkill_inside_every_suspend_window_resumes_at_once() {
    let dm = dm_or_skip!("sigkill_inside_every_suspend_window_resumes_at_once");
    let mut report = Vec::new();
    for (op, pop, points) in WINDOWS {
        for &k in points {
            let at = format!("{op} step {k}");
            let s = setup(&dm, op, &format!("kill-{op}{k}"));
            let _g = WrapGuard {
                dm: &dm,
                name: s.name.clone(),
            };
            let node = dm.node_path(&s.name);
            let mut child = spawn_paused(&s, op, &format!("{pop}:{k}"), None);
            let frozen = suspended(&dm, s.name.as_str());
            let origin_frozen = frozen.iter().any(|n| n == s.name.as_str());
            let done = writer(node, k as u8);
            if origin_frozen {
                // The writer really is stuck behind the suspend.
                assert!(
                    done.recv_timeout(Duration::from_millis(200))
                        == Err(mpsc::RecvTimeoutError::Timeout),
                    "{at}: a write went through a suspended origin"
                );
            }
            let killed = Instant::now();
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            // Nobody runs any command now: the guardian alone must end the suspend.
            let resumed = within(LIMIT, || suspended(&dm, s.name.as_str()).is_empty());
            let resumed = resumed.unwrap_or_else(|| {
                panic!(
                    "{at}: still suspended {LIMIT:?} after the kill: {:?}",
                    suspended(&dm, s.name.as_str())
                )
            });
            let wrote = done
                .recv_timeout(LIMIT)
                .unwrap_or_else(|_| panic!("{at}: the writer did not finish"))
                .duration_since(killed);
            let marker = format!("DMSNAP_GUARD_NAME={}", s.name);
            assert!(
                within(LIMIT, || processes_with(&marker).is_empty()).is_some(),
                "{at}: processes left behind: {:?}",
                processes_with(&marker)
            );
            report.push(format!(
                "{at}: suspended at kill {frozen:?}; resumed after {} ms, write done after {} ms",
                resumed.as_millis(),
                wrote.as_millis()
            ));
            check_recovered(&dm, &s, op, &at);
        }
    }
    for l in &report {
        println!("GUARDIAN-KILL {l}");
    }
}

#[test]
fn a_window_past_its_bound_is_ended_while_the_workflow_still_runs() {
    let dm = dm_or_skip!("a_window_past_its_bound_is_ended_while_the_workflow_still_runs");
    // (workflow, pause point: the child sleeps 6 s there, far past its 1 s bound)
    for (op, pause) in [
        ("snapshot", "snapshot:6:6000"),
        ("rollback", "rollback:2:6000"),
    ] {
        let s = setup(&dm, op, &format!("bound-{op}"));
        let _g = WrapGuard {
            dm: &dm,
            name: s.name.clone(),
        };
        let mut child = spawn_paused(&s, op, pause, Some(1000));
        let paused = Instant::now();
        // Usually still suspended here; on a slow machine the bound may already have passed
        // (the child's SuspendBound result below proves the guardian fired).
        let seen = suspended(&dm, s.name.as_str());
        let done = writer(dm.node_path(&s.name), 7);
        within(Duration::from_secs(3), || {
            suspended(&dm, s.name.as_str()).is_empty()
        })
        .unwrap_or_else(|| panic!("{op}: the guardian did not end the suspend"));
        let resumed = paused.elapsed();
        // The workflow process is still asleep in its window: the guardian did this.
        assert!(
            child.try_wait().unwrap().is_none(),
            "{op}: the child exited"
        );
        assert!(done.recv_timeout(Duration::from_secs(3)).is_ok(), "{op}");
        println!(
            "GUARDIAN-BOUND {op}: resumed {} ms after the pause (bound 1000 ms; suspended at the pause: {seen:?})",
            resumed.as_millis()
        );
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{op}: {stdout}");
        assert!(
            stdout.contains("GUARD-CHILD-RESULT SuspendBound"),
            "{op}: the workflow did not report the bound: {stdout}"
        );
        // The workflow recovered on its own; the state is whole.
        check_recovered(&dm, &s, op, &format!("{op} past the bound"));
    }
}

#[test]
fn guard_api_fires_past_the_bound_and_stays_quiet_within() {
    let dm = dm_or_skip!("guard_api_fires_past_the_bound_and_stays_quiet_within");
    let d = DevGuard::active(&dm, unique_name("guard"), &one("zero", "", 8));
    let plan = GuardPlan::new().when_suspended(&d.name, [(&d.name).into()]);
    // Within the bound: nothing happens.
    let g = SuspendGuard::arm(&dm, &plan, Duration::from_secs(30)).unwrap();
    dm.suspend(&d.name, SuspendOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(dm.info(&d.name).unwrap().suspended());
    dm.resume(&d.name, SuspendOptions::default()).unwrap();
    assert_eq!(g.disarm(), GuardOutcome::Quiet);
    // Past it: resumed by the guardian, and it says so.
    let mut g = SuspendGuard::arm(&dm, &plan, Duration::from_millis(300)).unwrap();
    let pid = g.pid();
    dm.suspend(&d.name, SuspendOptions::default()).unwrap();
    let t = within(Duration::from_secs(3), || {
        !dm.info(&d.name).unwrap().suspended()
    })
    .expect("not resumed past the bound");
    assert!(g.fired());
    // A suspend made after the bound is ended too (the guardian keeps watching).
    dm.suspend(&d.name, SuspendOptions::default()).unwrap();
    assert!(
        within(Duration::from_secs(1), || !dm
            .info(&d.name)
            .unwrap()
            .suspended())
        .is_some(),
        "a late suspend stayed"
    );
    assert_eq!(g.disarm(), GuardOutcome::Fired);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "guardian {pid} not reaped"
    );
    println!(
        "GUARDIAN-API resumed {} ms after suspend (bound 300 ms)",
        t.as_millis()
    );

    // The cost of arming and disarming a guardian.
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        let g = SuspendGuard::arm(&dm, &plan, Duration::from_secs(10)).unwrap();
        assert_eq!(g.disarm(), GuardOutcome::Quiet);
    }
    let cost = t.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    // For scale: a whole snapshot take (which includes one arm+disarm).
    let s = setup(&dm, "snapshot", "cost");
    let _g = WrapGuard {
        dm: &dm,
        name: s.name.clone(),
    };
    let w = Wrapper::open(&dm, &s.name).unwrap();
    let mut takes = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let snap = w.take_snapshot(&SnapshotOptions::new(&s.cow.path)).unwrap();
        takes.push(t.elapsed().as_secs_f64() * 1000.0);
        snap.discard().unwrap();
    }
    println!(
        "GUARDIAN-COST arm+disarm {cost:.2} ms each; snapshot take {:.2} ms on average ({takes:.1?})",
        takes.iter().sum::<f64>() / takes.len() as f64
    );
}

/// Unmounts (lazily as a last resort) on drop.
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..50 {
            match nix::mount::umount(self.0.path()) {
                Err(nix::Error::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
                _ => return,
            }
        }
        let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_frozen_ext4_thaws_when_the_snapshotting_process_is_killed() {
    let dm = dm_or_skip!("a_frozen_ext4_thaws_when_the_snapshotting_process_is_killed");
    let s = Setup {
        lo: LoopDev::new(32 * MIB),
        cow: LoopDev::new(8 * MIB),
        cow2: LoopDev::new(4096),
        name: unique_name("ext4kill"),
    };
    let w = Wrapper::wrap(&dm, &s.name, &s.lo.path).unwrap();
    let _g = WrapGuard {
        dm: &dm,
        name: s.name.clone(),
    };
    let out = Proc::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096"])
        .arg(w.node())
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs: {out:?}");
    let dir = tempfile::tempdir().unwrap();
    nix::mount::mount(
        Some(&w.node()),
        dir.path(),
        Some("ext4"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let mnt = Mounted(dir);
    std::fs::write(mnt.0.path().join("before"), b"taken").unwrap();

    // Killed with the origin suspended and its filesystem frozen.
    let mut child = spawn_paused(&s, "snapshot", "snapshot:6", None);
    assert_eq!(suspended(&dm, s.name.as_str()), vec![s.name.to_string()]);
    let (tx, done) = mpsc::channel();
    let file = mnt.0.path().join("during");
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(&pattern(3, 65536)).unwrap();
        f.sync_all().unwrap();
        let _ = tx.send(Instant::now());
    });
    assert!(
        done.recv_timeout(Duration::from_millis(300)) == Err(mpsc::RecvTimeoutError::Timeout),
        "a write went through a frozen filesystem"
    );
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let wrote = done
        .recv_timeout(LIMIT)
        .expect("the ext4 writer did not finish after the kill")
        .duration_since(killed);
    assert!(suspended(&dm, s.name.as_str()).is_empty());
    println!(
        "GUARDIAN-EXT4 kill at snapshot step 6: write+fsync done {} ms after the kill",
        wrote.as_millis()
    );
    assert_eq!(
        std::fs::read(mnt.0.path().join("during")).unwrap(),
        pattern(3, 65536)
    );
    // The guardian completed the snapshot while the filesystem was frozen: it is clean.
    assert!(w.recover().unwrap().is_empty(), "the guardian left work");
    let snap = w
        .snapshot(None)
        .expect("the guardian completed the snapshot");
    let fsck = Proc::new("e2fsck")
        .args(["-f", "-n"])
        .arg(snap.node())
        .output()
        .unwrap();
    assert!(fsck.status.success(), "snapshot not clean: {fsck:?}");
    drop(mnt);
    snap.discard().unwrap();
}
