//! Power cuts during our commits, rigorously, with lvm2 as the judge.
//!
//! lvm2 makes a PV, a VG and an LV on a loop device. A `log-writes` device over it records
//! every write and flush that reaches it while `lvm::write::commit` makes several commits
//! (each: the committed text with seqno + 1 and more tags, which lvm2 accepts). The log is
//! then parsed here and replayed onto a copy of the original image:
//!
//! * up to every single write, and with every write torn at each sector boundary;
//! * up to every flush, with any subset of the writes between that flush and the next one
//!   (a volatile write cache losing power: the writes after the flush dropped, or only some
//!   of them reaching the platter, in any order).
//!
//! At every point lvm2 (`vgs`, `vgck`, restricted with `--devices` to a loop device holding
//! the replayed image) must read the VG at the last committed seqno or the next one, with no
//! checksum warning, and the crate's scan must read the same seqno.
//!
//! `dm-flakey` failing (or silently dropping) writes in the middle of commits: the commit
//! reports the error, lvm2 still reads the VG, and a later commit works.
//!
//! And lvm2 waits for our lock: while we hold `V_<vg>`, `lvm lvcreate` on the VG blocks
//! until we release it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devmapper::lvm::scan;
use devmapper::lvm::write::commit::{self, CommitError, MdaTarget, Phase};
use devmapper::lvm::write::lock::{self, LockDir, LockMode};
use devmapper::{DeviceMapper, SuspendOptions};

use crate::common::{DevGuard, LoopDev, one, unique_name};

/// lvm2 usable here, and the dm targets this file needs, or why not.
fn ready(dm: &DeviceMapper, targets: &[&str]) -> Result<(), String> {
    match Command::new("lvm").arg("version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "lvm version: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return Err(format!("lvm not found: {e}")),
    }
    for t in targets {
        dm.target_version(t)
            .map_err(|e| format!("dm target {t} unavailable: {e}"))?;
    }
    Ok(())
}

/// Run lvm2: (success, stdout, stderr without the fd-leak chatter).
fn lvm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("lvm")
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run lvm");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("leaked on lvm invocation"))
        .collect::<Vec<_>>()
        .join("\n");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn lvm_ok(args: &[&str]) -> String {
    let (ok, out, err) = lvm(args);
    assert!(ok, "lvm {}: {err}", args.join(" "));
    out
}

/// Removes the VG from `dev` on drop.
struct VgGuard {
    vg: String,
    dev: String,
}

impl Drop for VgGuard {
    fn drop(&mut self) {
        let d = ["--devices", self.dev.as_str()];
        let _ = lvm(&[&["vgremove", "-ff", "-y"][..], &d, &[&self.vg]].concat());
        let _ = lvm(&[&["pvremove", "-ff", "-y"][..], &d, &[&self.dev]].concat());
    }
}

/// lvm2 makes PV + VG + one (inactive) LV on `dev`; `pv_args` go to pvcreate.
fn lvm2_vg(dev: &Path, vg: &str, pv_args: &[&str]) -> VgGuard {
    let d = dev.to_str().unwrap();
    let guard = VgGuard {
        vg: vg.into(),
        dev: d.into(),
    };
    lvm_ok(&[&["pvcreate", "-y", "--devices", d][..], pv_args, &[d]].concat());
    lvm_ok(&["vgcreate", "--devices", d, vg, d]);
    lvm_ok(&[
        "lvcreate",
        "--devices",
        d,
        "-an",
        "-Zn",
        "-L",
        "4M",
        "-n",
        "lv0",
        vg,
    ]);
    guard
}

/// What lvm2 says about `vg` on `dev`: the seqno from `vgs`, `vgck` clean; panics with
/// the output otherwise. Returns (seqno, warnings).
fn lvm2_reads(dev: &Path, vg: &str) -> (u64, Vec<String>) {
    let d = dev.to_str().unwrap();
    let cfg = "devices { hints = \"none\" }";
    let (ok, out, err) = lvm(&[
        "vgs",
        "--devices",
        d,
        "--config",
        cfg,
        "--noheadings",
        "-o",
        "vg_seqno",
        vg,
    ]);
    assert!(ok, "vgs failed: {err}");
    let seqno: u64 = out
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("vgs printed {out:?}: {e}"));
    let (ok, _, err2) = lvm(&["vgck", "--devices", d, "--config", cfg, vg]);
    assert!(ok, "vgck failed: {err2}");
    let warnings: Vec<String> = err
        .lines()
        .chain(err2.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for w in &warnings {
        assert!(
            !w.to_ascii_lowercase().contains("checksum") && !w.contains("rror"),
            "lvm2: {w}"
        );
    }
    (seqno, warnings)
}

/// The crate's view of `img`: the VG's seqno and text (without NUL).
fn crate_reads(img: &[u8]) -> (u64, Vec<u8>) {
    let r = scan::scan(&[img]);
    assert!(r.errors.is_empty(), "scan: {:?}", r.errors);
    assert_eq!(r.vgs.len(), 1);
    (r.vgs[0].vg.seqno, r.vgs[0].text.clone())
}

/// The metadata areas of the PV on `dev`, as targets for device 0.
fn targets_of(dev: &File) -> Vec<MdaTarget> {
    let l = devmapper::lvm::label::read_label(dev).expect("label");
    l.metadata_areas
        .iter()
        .map(|&area| MdaTarget { device: 0, area })
        .collect()
}

/// `text` (no NUL) with seqno + 1 and `tags` more tags on the VG, NUL-terminated.
fn next_text(text: &[u8], seqno: u64, tags: &[String]) -> Vec<u8> {
    let s = String::from_utf8(text.to_vec()).unwrap();
    let from = format!("\nseqno = {seqno}\n");
    assert!(s.contains(&from), "no {from:?}");
    let s = s.replacen(&from, &format!("\nseqno = {}\n", seqno + 1), 1);
    let list = tags
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let flags = s.find("\nflags = [").expect("VG flags line") + 1;
    let eol = flags + s[flags..].find('\n').unwrap() + 1;
    let mut out = s[..eol].to_string();
    let rest = &s[eol..];
    if let Some(after) = rest.strip_prefix("tags = [") {
        out.push_str("tags = [");
        out.push_str(&list);
        out.push_str(", ");
        out.push_str(after);
    } else {
        out.push_str(&format!("tags = [{list}]\n"));
        out.push_str(rest);
    }
    let mut v = out.into_bytes();
    v.push(0);
    v
}

/// One commit through the crate on `file` (device 0): read, bump, precommit, commit.
/// Returns the new seqno.
fn commit_once(file: &File, vg: &str, round: usize, ntags: usize) -> Result<u64, CommitError> {
    commit_once_wrap(file, vg, round, ntags).map(|(s, _)| s)
}

/// [`commit_once`], also saying whether a copy crossed the end of its ring.
fn commit_once_wrap(
    file: &File,
    vg: &str,
    round: usize,
    ntags: usize,
) -> Result<(u64, bool), CommitError> {
    let targets = targets_of(file);
    let (seqno, text) = crate_reads_dev(file);
    let tags: Vec<String> = (0..ntags)
        .map(|i| format!("r{round}_{i}_{}", "t".repeat(96)))
        .collect();
    let new = next_text(&text, seqno, &tags);
    let pre = commit::precommit(&[file], &targets, vg, &new)?;
    let wrapped = pre.areas().iter().any(|a| a.wrapped);
    let report = pre.commit(&[file])?;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Ok((seqno + 1, wrapped))
}

fn crate_reads_dev(file: &File) -> (u64, Vec<u8>) {
    let r = scan::scan(&[file]);
    assert!(r.errors.is_empty(), "scan: {:?}", r.errors);
    (r.vgs[0].vg.seqno, r.vgs[0].text.clone())
}

fn open_rw(p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_all(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------
// The dm-log-writes log (Documentation/admin-guide/device-mapper/log-writes.rst).

const LOG_FLUSH: u64 = 1 << 0;
const LOG_FUA: u64 = 1 << 1;
const LOG_DISCARD: u64 = 1 << 2;
const LOG_MARK: u64 = 1 << 3;
const LOG_MAGIC: u64 = 0x006a_7366_7773_6872;

#[derive(Debug)]
enum Entry {
    /// Data written at a byte offset.
    Write { at: u64, data: Vec<u8>, fua: bool },
    /// A cache flush (an empty `REQ_PREFLUSH` bio).
    Flush,
    /// A mark sent with `dmsetup message ... mark`.
    Mark(String),
    /// A discard (none expected here).
    Discard,
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Parse the log: the super block in sector 0 (magic, version, entry count, sector size),
/// then per entry one sector with `{sector, nr_sectors, flags, data_len}` (a mark's text
/// right after it) followed by `nr_sectors` sectors of data for a write.
fn parse_log(log: &[u8]) -> Vec<Entry> {
    assert_eq!(le64(log, 0), LOG_MAGIC, "log-writes super magic");
    assert_eq!(le64(log, 8), 1, "log-writes version");
    let n = le64(log, 16);
    let ss = u32::from_le_bytes(log[24..28].try_into().unwrap()) as usize;
    assert!(ss >= 512 && ss.is_power_of_two(), "sector size {ss}");
    let mut pos = ss;
    let mut out = Vec::new();
    for _ in 0..n {
        let e = &log[pos..pos + ss];
        let (sector, nr, flags, len) = (le64(e, 0), le64(e, 8), le64(e, 16), le64(e, 24));
        pos += ss;
        if flags & LOG_MARK != 0 {
            out.push(Entry::Mark(
                String::from_utf8_lossy(&e[32..32 + len as usize]).into_owned(),
            ));
            continue;
        }
        if flags & LOG_DISCARD != 0 {
            out.push(Entry::Discard);
            continue;
        }
        if nr > 0 {
            let bytes = nr as usize * ss;
            out.push(Entry::Write {
                at: sector * ss as u64,
                data: log[pos..pos + bytes].to_vec(),
                fua: flags & LOG_FUA != 0,
            });
            pos += bytes;
        }
        if flags & LOG_FLUSH != 0 {
            out.push(Entry::Flush);
        }
    }
    out
}

/// Judges one replayed state: lvm2 on the replay device (once per distinct state) and the
/// crate's scan (always).
struct Judge<'a> {
    replay: &'a LoopDev,
    replay_file: File,
    vg: &'a str,
    region: usize,
    seen: HashMap<u64, (u64, u64)>,
    lvm2_runs: usize,
    points: usize,
    lvm2_time: Duration,
    crate_time: Duration,
    warnings: Vec<String>,
}

impl Judge<'_> {
    /// `img` must read at `committed` or `committed + 1`; returns the seqno read. Each
    /// distinct [`lvm2_key`] is read once by the crate and once by lvm2 (both read only
    /// the bytes the key covers); every point is held to its own `committed`.
    fn check(&mut self, img: &[u8], committed: u64, what: &str) -> u64 {
        self.points += 1;
        let key = lvm2_key(img);
        let (ours, theirs) = match self.seen.get(&key) {
            Some(&s) => s,
            None => {
                let t = Instant::now();
                let (ours, _) = crate_reads(img);
                self.crate_time += t.elapsed();
                self.replay_file
                    .write_all_at(&img[..self.region], 0)
                    .unwrap();
                self.replay_file.sync_data().unwrap();
                let t = Instant::now();
                let (s, w) = lvm2_reads(&self.replay.path, self.vg);
                self.lvm2_time += t.elapsed();
                self.lvm2_runs += 1;
                for l in w {
                    if !self.warnings.contains(&l) {
                        self.warnings.push(l);
                    }
                }
                self.seen.insert(key, (ours, s));
                (ours, s)
            }
        };
        assert_eq!(ours, theirs, "{what}: crate and lvm2 disagree");
        assert!(
            ours == committed || ours == committed + 1,
            "{what}: seqno {ours}, committed {committed}"
        );
        ours
    }
}

/// A digest of everything lvm2's read path looks at: the label sectors, each metadata area
/// header, and the text slot 0 of each header points at (wrap included). Images with the
/// same digest are the same to lvm2, so lvm2 judges each digest once (every image is still
/// read by the crate); ring bytes no slot names are left out.
fn lvm2_key(img: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    img[..2048].hash(&mut h);
    if let Ok(label) = devmapper::lvm::label::read_label(img) {
        for area in &label.metadata_areas {
            let at = area.offset as usize;
            img[at..at + 512].hash(&mut h);
            if let Ok(hdr) = devmapper::lvm::mda::parse_mda_header(&img[at..at + 512], area.offset)
                && let Some(l) = hdr.committed()
                && l.offset >= 512
                && l.offset < hdr.size
                && l.size <= hdr.size - 512
            {
                let (from, len) = (at + l.offset as usize, l.size as usize);
                let end = at + hdr.size as usize;
                let first = len.min(end - from);
                img[from..from + first].hash(&mut h);
                img[at + 512..at + 512 + (len - first)].hash(&mut h);
            }
        }
    }
    h.finish()
}

fn apply(img: &mut [u8], at: u64, data: &[u8]) {
    img[at as usize..at as usize + data.len()].copy_from_slice(data);
}

/// Record `commits` commits on a fresh lvm2 PV made with `pv_args`, replay, judge.
fn record_and_replay(
    test: &str,
    pv_args: &[&str],
    commits: usize,
    ntags: usize,
    expect_wrap: bool,
) {
    let dm = crate::dm_or_skip!(test);
    crate::ok_or_skip!(test, ready(&dm, &["log-writes"]));
    const PV_BYTES: u64 = 16 << 20;
    let pv = LoopDev::new(PV_BYTES);
    let log = LoopDev::new(64 << 20);
    let replay = LoopDev::new(PV_BYTES);
    let vg = format!("pc{}{}", std::process::id(), test.len());
    let _vg = lvm2_vg(&pv.path, &vg, pv_args);
    let base = read_all(pv.file.path());
    let (s0, _) = crate_reads(&base);
    std::fs::write(replay.file.path(), &base).unwrap();

    // Record.
    let lw_name = unique_name("lw");
    let table = one(
        "log-writes",
        &format!("{} {}", pv.devnum(), log.devnum()),
        PV_BYTES / 512,
    );
    let lw = DevGuard::active(&dm, lw_name.clone(), &table);
    let dev = open_rw(&lw.node());
    let dir = LockDir::system().unwrap();
    let t0 = Instant::now();
    let mut wraps = 0;
    for round in 0..commits {
        let _held = lock::lock_vg(&dir, &vg, LockMode::Exclusive, true).unwrap();
        let (seqno, wrapped) = commit_once_wrap(&dev, &vg, round, ntags).unwrap();
        wraps += usize::from(wrapped);
        dm.message(
            &lw_name,
            devmapper::units::Sectors(0),
            &format!("mark c{seqno}"),
        )
        .unwrap();
    }
    let commit_time = t0.elapsed();
    assert_eq!(
        wraps > 0,
        expect_wrap,
        "{wraps} commits crossed the end of the ring"
    );
    drop(dev);
    drop(lw); // the destructor logs the end mark and updates the super block
    let entries = parse_log(&read_all(log.file.path()));
    let final_img = read_all(pv.file.path());
    let writes = entries
        .iter()
        .filter(|e| matches!(e, Entry::Write { .. }))
        .count();
    let flushes = entries.iter().filter(|e| matches!(e, Entry::Flush)).count();
    assert!(
        flushes >= 3 * commits,
        "{flushes} flushes for {commits} commits"
    );
    assert!(
        entries.iter().all(|e| !matches!(e, Entry::Discard)),
        "a discard"
    );
    let region = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Write { at, data, .. } => Some(*at as usize + data.len()),
            _ => None,
        })
        .max()
        .unwrap();

    // Replay.
    let mut judge = Judge {
        replay: &replay,
        replay_file: open_rw(replay.file.path()),
        vg: &vg,
        region,
        seen: HashMap::new(),
        lvm2_runs: 0,
        points: 0,
        lvm2_time: Duration::ZERO,
        crate_time: Duration::ZERO,
        warnings: Vec::new(),
    };
    let mut img = base.clone();
    let mut committed = s0;
    assert_eq!(judge.check(&img, committed, "the original image"), s0);
    let mut last = s0;
    let mut group_base = img.clone();
    let mut group: Vec<(u64, &[u8])> = Vec::new();
    let (mut torn_points, mut subset_points, mut flush_points) = (0, 0, 0);
    for (i, e) in entries.iter().enumerate() {
        match e {
            Entry::Mark(m) => {
                if let Some(n) = m.strip_prefix('c') {
                    committed = n.parse().unwrap();
                    assert_eq!(last, committed, "entry {i}: commit {m} not visible");
                }
            }
            Entry::Write { at, data, fua } => {
                // Torn at each sector boundary.
                let saved = img[*at as usize..*at as usize + data.len()].to_vec();
                for s in 1..data.len() / 512 {
                    apply(&mut img, *at, &data[..s * 512]);
                    judge.check(&img, committed, &format!("entry {i} torn at {s}"));
                    apply(&mut img, *at, &saved);
                    torn_points += 1;
                }
                apply(&mut img, *at, data);
                let s = judge.check(&img, committed, &format!("after entry {i}"));
                assert!(s >= last, "entry {i}: seqno went back from {last} to {s}");
                last = s;
                if *fua {
                    group_base = img.clone();
                    group.clear();
                } else {
                    group.push((*at, data));
                }
            }
            Entry::Flush | Entry::Discard => {
                // Any subset of the writes since the previous flush on top of that state
                // (`scratch` is reset to that state only where the group writes).
                let n = group.len().min(10);
                if n >= 2 {
                    let mut scratch = group_base.clone();
                    for mask in 1..(1u32 << n) - 1 {
                        for (at, data) in &group[..n] {
                            let r = *at as usize..*at as usize + data.len();
                            scratch[r.clone()].copy_from_slice(&group_base[r]);
                        }
                        for (b, (at, data)) in group.iter().enumerate().take(n) {
                            if mask & (1 << b) != 0 {
                                apply(&mut scratch, *at, data);
                            }
                        }
                        judge.check(&scratch, committed, &format!("flush {i}, subset {mask:b}"));
                        subset_points += 1;
                    }
                }
                flush_points += 1;
                group_base = img.clone();
                group.clear();
            }
        }
    }
    assert!(
        img == final_img,
        "the replayed log is not the device's content"
    );
    assert_eq!(last, s0 + commits as u64);
    println!(
        "{test}: {commits} commits ({wraps} wrapping) in {commit_time:?}; log: {} entries, {writes} writes, {flushes} flushes; \
         states checked: {} ({writes} after a write, {torn_points} torn writes, {flush_points} flush points, \
         {subset_points} subsets of unflushed writes), {} distinct states (by label, headers and referenced texts) read by the crate in {:?} and judged by lvm2 in {:?}; \
         lvm2 warnings seen: {:?}",
        entries.len(),
        judge.points,
        judge.lvm2_runs,
        judge.crate_time,
        judge.lvm2_time,
        judge.warnings
    );
}

#[test]
fn powercut_replay_every_write_and_flush_small_ring() {
    // A 124 KiB metadata area (lvm2's own layout with --metadatasize 64k): the copies
    // grow by ~4.2 KB per commit and wrap around the ring.
    record_and_replay(
        "powercut_replay_every_write_and_flush_small_ring",
        &["--metadatasize", "64k", "--dataalignment", "128k"],
        8,
        40,
        true,
    );
}

#[test]
fn powercut_replay_every_write_and_flush_two_areas() {
    // lvm2's default layout with a second metadata area at the end of the PV.
    record_and_replay(
        "powercut_replay_every_write_and_flush_two_areas",
        &["--pvmetadatacopies", "2"],
        3,
        2,
        false,
    );
}

// ---------------------------------------------------------------------------------------
// dm-flakey: failing and dropped writes in the middle of commits.

/// A linear device over `pv` (through which the crate writes), switchable to flakey.
struct Switch<'a> {
    dm: &'a DeviceMapper,
    guard: DevGuard<'a>,
    pv: String,
    sectors: u64,
}

impl<'a> Switch<'a> {
    fn new(dm: &'a DeviceMapper, pv: &LoopDev, sectors: u64) -> Switch<'a> {
        let pv = pv.devnum().to_string();
        let guard = DevGuard::active(
            dm,
            unique_name("fk"),
            &one("linear", &format!("{pv} 0"), sectors),
        );
        Switch {
            dm,
            guard,
            pv,
            sectors,
        }
    }

    /// Reload with `tail_feature` (`error_writes` or `drop_writes`) from byte `from` to
    /// the end; linear before.
    fn fail_from(&self, from_sector: u64, feature: &str) {
        let mut table = Vec::new();
        if from_sector > 0 {
            table.extend(one("linear", &format!("{} 0", self.pv), from_sector));
        }
        let mut tail = one(
            "flakey",
            &format!("{} {from_sector} 0 3600 1 {feature}", self.pv),
            self.sectors - from_sector,
        );
        tail[0].start = devmapper::units::Sectors(from_sector);
        table.extend(tail);
        self.reload(&table);
    }

    fn healthy(&self) {
        self.reload(&one("linear", &format!("{} 0", self.pv), self.sectors));
    }

    fn reload(&self, table: &[devmapper::RawTarget]) {
        let n = &self.guard.name;
        self.dm.suspend(n, SuspendOptions::default()).unwrap();
        self.dm.load_raw(n, table, Default::default()).unwrap();
        self.dm.resume(n, SuspendOptions::default()).unwrap();
    }
}

#[test]
fn flakey_writes_fail_mid_commit_and_lvm2_still_reads_the_vg() {
    const TEST: &str = "flakey_writes_fail_mid_commit_and_lvm2_still_reads_the_vg";
    let dm = crate::dm_or_skip!(TEST);
    crate::ok_or_skip!(TEST, ready(&dm, &["flakey"]));
    const PV_BYTES: u64 = 16 << 20;
    let sectors = PV_BYTES / 512;
    let pv = LoopDev::new(PV_BYTES);
    let vg = format!("fk{}", std::process::id());
    let _vg = lvm2_vg(&pv.path, &vg, &["--pvmetadatacopies", "2"]);
    let (s0, _) = lvm2_reads(&pv.path, &vg);
    let sw = Switch::new(&dm, &pv, sectors);
    // Each case opens the device anew: after a failed write the page cache holds data
    // the disk does not, and closing the last opener drops it.
    let open = || open_rw(&sw.guard.node());

    // 1. Writes fail from the start: the text never reaches the disk.
    sw.fail_from(0, "error_writes");
    let err = commit_once(&open(), &vg, 1, 2).unwrap_err();
    assert_eq!(err.phase(), Some(Phase::SyncText), "{err}");
    assert!(err.to_string().contains("flushing metadata text"), "{err}");
    sw.healthy();
    assert_eq!(lvm2_reads(&pv.path, &vg).0, s0);

    // 2. Precommit fine, then the disk fails: the commit reports it, nothing changed.
    let f = open();
    let targets = targets_of(&f);
    let (seqno, text) = crate_reads_dev(&f);
    assert_eq!(seqno, s0);
    let new = next_text(&text, seqno, &["case2".into()]);
    let pre = commit::precommit(&[&f], &targets, &vg, &new).unwrap();
    sw.fail_from(0, "error_writes");
    let err = pre.commit(&[&f]).unwrap_err();
    assert_eq!(err.phase(), Some(Phase::SyncCommit), "{err}");
    drop(f);
    sw.healthy();
    let (s, w) = lvm2_reads(&pv.path, &vg);
    assert_eq!(s, s0, "{w:?}");

    // 3. Writes silently dropped during the commit (a cache that lies): "success", and
    // lvm2 still reads the old VG; so does the crate, once the cache is gone.
    let f = open();
    let (seqno, text) = crate_reads_dev(&f);
    let pre = commit::precommit(
        &[&f],
        &targets,
        &vg,
        &next_text(&text, seqno, &["case3".into()]),
    )
    .unwrap();
    sw.fail_from(0, "drop_writes");
    pre.commit(&[&f]).unwrap();
    drop(f);
    sw.healthy();
    assert_eq!(lvm2_reads(&pv.path, &vg).0, s0);
    assert_eq!(crate_reads_dev(&open()).0, s0);

    // 4. Only the second metadata area (the last MiB) fails, after the precommit: the
    // first area takes the commit, the flush of the device fails, the commit is
    // reported failed; lvm2 reads the new seqno from the first area (an outdated second
    // copy is what it repairs), and a repair plus vgck is clean.
    let f = open();
    let (seqno, text) = crate_reads_dev(&f);
    let pre = commit::precommit(
        &[&f],
        &targets,
        &vg,
        &next_text(&text, seqno, &["case4".into()]),
    )
    .unwrap();
    let mda2 = targets[1].area;
    assert!(mda2.offset > targets[0].area.offset);
    sw.fail_from(mda2.offset / 512, "error_writes");
    let err = pre.commit(&[&f]).unwrap_err();
    assert_eq!(err.phase(), Some(Phase::SyncCommit), "{err}");
    drop(f);
    sw.healthy();
    let (s, w) = lvm2_reads(&pv.path, &vg);
    assert!(s == s0 || s == s0 + 1, "{s} {w:?}");
    println!(
        "{TEST}: after a commit that failed on area 2: lvm2 reads seqno {s} (from {s0}), warnings {w:?}"
    );
    let d = pv.path.to_str().unwrap();
    lvm_ok(&["vgck", "--devices", d, "--updatemetadata", &vg]);
    let (s, w) = lvm2_reads(&pv.path, &vg);
    assert!(w.is_empty(), "{w:?}");

    // 5. Healthy again: the crate commits on top of whatever lvm2 repaired.
    let got = commit_once(&open(), &vg, 5, 1).unwrap();
    assert_eq!(got, s + 1);
    assert_eq!(lvm2_reads(&pv.path, &vg).0, s + 1);
    drop(_vg);
    drop(sw);
}

// ---------------------------------------------------------------------------------------
// lvm2 waits for our lock.

#[test]
fn lvm2_lvcreate_waits_while_we_hold_the_vg_lock() {
    const TEST: &str = "lvm2_lvcreate_waits_while_we_hold_the_vg_lock";
    let dm = crate::dm_or_skip!(TEST);
    crate::ok_or_skip!(TEST, ready(&dm, &[]));
    let pv = LoopDev::new(16 << 20);
    let vg = format!("lk{}", std::process::id());
    let _vg = lvm2_vg(&pv.path, &vg, &[]);
    let dir = LockDir::system().unwrap();
    let held = lock::lock_vg(&dir, &vg, LockMode::Exclusive, false).unwrap();
    let d = pv.path.to_str().unwrap();
    let start = Instant::now();
    let mut child = Command::new("lvm")
        .args([
            "lvcreate",
            "--devices",
            d,
            "-an",
            "-Zn",
            "-L",
            "4M",
            "-n",
            "lv1",
            &vg,
        ])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hold = Duration::from_secs(3);
    while start.elapsed() < hold {
        assert!(
            child.try_wait().unwrap().is_none(),
            "lvcreate finished while we held {}",
            held.path().display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let released = Instant::now();
    drop(held);
    let out = child.wait_with_output().unwrap();
    let after = released.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lvs = lvm_ok(&["lvs", "--devices", d, "--noheadings", "-o", "lv_name", &vg]);
    assert!(lvs.contains("lv1"), "{lvs}");
    println!(
        "{TEST}: lvcreate blocked for {:?} while we held {}/V_{vg}, finished {after:?} after release",
        released - start,
        dir.path().display()
    );
    // A shared lock of ours does not block lvm2's readers (`vgs` takes V_<vg> shared).
    let sh = lock::lock_vg(&dir, &vg, LockMode::Shared, false).unwrap();
    let (ok, _, err) = lvm(&["vgs", "--devices", d, &vg]);
    assert!(ok, "vgs blocked or failed under our shared lock: {err}");
    drop(sh);
}
