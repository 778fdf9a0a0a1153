//! Golden tests of the offline commands' output: `dmsnap cow ...` and `dmsnap lvm ...` run
//! on images built here (tests/common builders, the library's `StoreWriter`) and on the
//! committed lvm2 and kernel fixtures, their stdout compared byte for byte with
//! `tests/golden/<case>`. A command that writes a file (`export`, `merge`) also has the
//! length and SHA-256 of what it wrote recorded in `tests/golden/<case>.sha256`. The exit
//! status and stderr of every run (the summaries of `export` and `merge`, and the messages
//! of a set of failing commands, which must exit 1 with nothing on stdout) are recorded
//! together in `tests/golden/stderr.txt`.
//!
//! The goldens hold what the binary printed when they were blessed: a restructuring that
//! changes a word, a field, the order of the JSON keys or a number fails here. Paths of
//! the temporary folder and of the fixtures are replaced by `$TMP` and `$FIXTURES` (the
//! only volatile parts: the commands print no times). To rewrite the goldens after an
//! intended change: `DMSNAP_BLESS=1 cargo test --test cli_golden` and review the diff.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::bin::cow_export_args;
use common::{LAYOUT, LvSpec, Num, PvSpec, SegKind, SegSpec, VgSpec, make_id, pv_image};
use devmapper::cow::writer::StoreWriter;
use sha2::{Digest, Sha256};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn blessing() -> bool {
    std::env::var("DMSNAP_BLESS").as_deref() == Ok("1")
}

/// Compares outputs with the goldens; collects every difference before failing, so one
/// run shows them all.
struct Goldens {
    tmp: String,
    fixtures: String,
    failures: Vec<String>,
    seen: Vec<String>,
    /// Every run's exit status and stderr, for `tests/golden/stderr.txt`.
    stderr: String,
}

impl Goldens {
    fn new(tmp: &Path) -> Goldens {
        Goldens {
            tmp: tmp.display().to_string(),
            fixtures: common::fixture("").display().to_string(),
            failures: Vec::new(),
            seen: Vec::new(),
            stderr: String::new(),
        }
    }

    /// Paths made stable: the temporary folder and the fixture folder by name.
    fn normalise(&self, text: &str) -> String {
        text.replace(&self.tmp, "$TMP")
            .replace(self.fixtures.trim_end_matches('/'), "$FIXTURES")
    }

    /// `got` against `tests/golden/<name>` (rewritten when blessing).
    fn check(&mut self, name: &str, got: &[u8]) {
        assert!(
            !self.seen.iter().any(|s| s == name),
            "two cases named {name}"
        );
        self.seen.push(name.to_owned());
        let got = self.normalise(&String::from_utf8_lossy(got));
        let path = golden_dir().join(name);
        if blessing() {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &got).unwrap();
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(want) => self.failures.push(format!(
                "{name}: output differs from {}\n{}",
                path.display(),
                first_difference(&want, &got)
            )),
            Err(e) => self.failures.push(format!(
                "{name}: {}: {e} (DMSNAP_BLESS=1 writes it)",
                path.display()
            )),
        }
    }

    /// Run `dmsnap args`; its exit status and stderr go to `stderr.txt`.
    fn run(&mut self, name: &str, args: &[&str]) -> std::process::Output {
        // Not a hang test: generous for the VM's emulation.
        let limit = Duration::from_secs(300);
        let out = common::bin::run_limited(&common::bin::dmsnap(), args, limit);
        let err = self.normalise(&String::from_utf8_lossy(&out.stderr));
        let _ = write!(
            self.stderr,
            "== {name}: exit {:?}\n{err}",
            out.status.code()
        );
        out
    }

    /// Run `dmsnap args`, which must fail (exit 1, nothing on stdout): its message is
    /// checked with the others in `stderr.txt`.
    fn fails(&mut self, name: &str, args: &[&str]) {
        let out = self.run(name, args);
        if out.status.code() != Some(1) || !out.stdout.is_empty() {
            self.failures.push(format!(
                "{name}: dmsnap {args:?} exited {:?} (1 expected), stdout {:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }

    /// Run `dmsnap args` (exit 0 expected) and check its stdout against `<name>`.
    fn stdout(&mut self, name: &str, args: &[&str]) {
        let out = self.run(name, args);
        if !out.status.success() {
            self.failures.push(format!(
                "{name}: dmsnap {args:?} exited {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        }
        self.check(name, &out.stdout);
    }

    /// `cow inspect COW` as text and as JSON: `<name>.txt` and `<name>.json`.
    fn inspect(&mut self, name: &str, cow: &Path) {
        self.stdout(&format!("{name}.txt"), &["cow", "inspect", s(cow)]);
        self.stdout(
            &format!("{name}.json"),
            &["cow", "inspect", s(cow), "--json"],
        );
    }

    /// Run `dmsnap args` writing `file`: stdout against `<name>`, the file's length and
    /// SHA-256 against `<name>.sha256`.
    fn writes(&mut self, name: &str, args: &[&str], file: &Path) {
        self.stdout(name, args);
        let bytes = std::fs::read(file).unwrap_or_default();
        self.check(&format!("{name}.sha256"), digest_line(&bytes).as_bytes());
    }

    /// Fail with every difference; when blessing, also drop goldens no case wrote.
    fn finish(mut self) {
        let stderr = std::mem::take(&mut self.stderr);
        self.check("stderr.txt", stderr.as_bytes());
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n\n"));
        if blessing() {
            for e in std::fs::read_dir(golden_dir()).unwrap() {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                if !self.seen.contains(&n) {
                    std::fs::remove_file(golden_dir().join(&n)).unwrap();
                }
            }
            return;
        }
        for e in std::fs::read_dir(golden_dir()).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                self.seen.contains(&n),
                "tests/golden/{n} belongs to no case (DMSNAP_BLESS=1 removes it)"
            );
        }
    }
}

fn digest_line(bytes: &[u8]) -> String {
    let h: String = Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    format!("{} bytes sha256 {h}\n", bytes.len())
}

/// The first differing line, with its number, of two texts.
fn first_difference(want: &str, got: &str) -> String {
    let (mut w, mut g) = (want.lines(), got.lines());
    for n in 1.. {
        match (w.next(), g.next()) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return "(the same lines; the line ends differ)".into(),
            (a, b) => return format!("line {n}:\n  golden: {a:?}\n  now:    {b:?}"),
        }
    }
    unreachable!()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes of a pattern that differs from chunk to chunk.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 512) as u8).wrapping_mul(37) ^ (i as u8) ^ seed)
        .collect()
}

/// Origin (256 KiB of a pattern) and three stores: one remapping chunks 1, 3 and 40 (4 KiB
/// chunks), a fresh all-zero one, and an invalidated one.
fn cow_inputs(dir: &Path) {
    std::fs::write(dir.join("origin.img"), pattern(1, 256 << 10)).unwrap();
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    for (old, seed) in [(1, 0xa1), (3, 0xb3), (40, 0xc4)] {
        w.push(old, &pattern(seed, 4096)).unwrap();
    }
    std::fs::write(dir.join("store.cow"), w.to_vec()).unwrap();
    std::fs::write(dir.join("fresh.cow"), vec![0u8; 1 << 20]).unwrap();
    let mut w = StoreWriter::new(16, 1 << 20).unwrap();
    w.push(0, &pattern(9, 8192)).unwrap();
    w.set_invalid();
    std::fs::write(dir.join("invalid.cow"), w.to_vec()).unwrap();
}

const EXTENT_SECTORS: u64 = 16; // 8 KiB
const EXTENT: usize = EXTENT_SECTORS as usize * 512;

fn seg(start: u64, count: u64, stripes: &[(&str, u64)], stripe_size: Option<Num>) -> SegSpec {
    SegSpec {
        start_extent: start as Num,
        extent_count: count as Num,
        kind: SegKind::Striped {
            stripe_count: stripes.len() as Num,
            stripe_size,
            stripes: stripes
                .iter()
                .map(|&(pv, pe)| (pv.to_owned(), pe as Num))
                .collect(),
        },
    }
}

fn lv(name: &str, tag: u64, visible: bool, segments: Vec<SegSpec>) -> LvSpec {
    LvSpec {
        name: name.to_owned(),
        id: make_id(tag),
        visible,
        segment_count: None,
        segments,
    }
}

/// A two-PV VG `gvg`: a linear LV, a striped one over both PVs, a two-segment one, and
/// an origin with a snapshot (its COW LV holds a store made by `StoreWriter`).
fn lvm_inputs(dir: &Path) -> String {
    const PES: u64 = 32;
    let pv_len = LAYOUT.pe_start as usize + PES as usize * EXTENT;
    let pv = |name: &str, tag| PvSpec {
        name: name.to_owned(),
        id: make_id(tag),
        pe_start: (LAYOUT.pe_start / 512) as Num,
        pe_count: PES as Num,
        dev_size: Some((pv_len / 512) as Num),
    };
    let vg = VgSpec {
        name: "gvg".into(),
        id: make_id(100),
        seqno: 7,
        extent_size: EXTENT_SECTORS as Num,
        pvs: vec![pv("pv0", 1), pv("pv1", 2)],
        lvs: vec![
            lv("lin", 10, true, vec![seg(0, 4, &[("pv0", 0)], None)]),
            lv(
                "stripe",
                11,
                true,
                vec![seg(0, 4, &[("pv0", 4), ("pv1", 0)], Some(8))],
            ),
            lv(
                "two",
                12,
                true,
                vec![
                    seg(0, 2, &[("pv0", 6)], None),
                    seg(2, 3, &[("pv1", 2)], None),
                ],
            ),
            lv("origin", 13, true, vec![seg(0, 4, &[("pv0", 8)], None)]),
            lv(
                "origin_snap",
                14,
                true,
                vec![seg(0, 4, &[("pv1", 5)], None)],
            ),
            LvSpec {
                segments: vec![SegSpec {
                    start_extent: 0,
                    extent_count: 4,
                    kind: SegKind::Snapshot {
                        chunk_size: 8,
                        origin: "origin".into(),
                        cow: "origin_snap".into(),
                        merging: false,
                    },
                }],
                ..lv("snapshot0", 15, false, Vec::new())
            },
        ],
    };
    let text = vg.render();
    let mut pvs = [
        pv_image(pv_len, &vg.pvs[0].id, text.as_bytes(), 512),
        pv_image(pv_len, &vg.pvs[1].id, text.as_bytes(), 512),
    ];
    // Data: every extent of each PV its own pattern; the COW LV (pv1, PEs 5-8) a store
    // remapping chunks 0 and 5 of the origin.
    for (i, img) in pvs.iter_mut().enumerate() {
        for pe in 0..PES as usize {
            let at = LAYOUT.pe_start as usize + pe * EXTENT;
            img[at..at + EXTENT].copy_from_slice(&pattern((i * 64 + pe) as u8, EXTENT));
        }
    }
    let mut w = StoreWriter::new(8, 4 * EXTENT as u64).unwrap();
    w.push(0, &pattern(0xee, 4096)).unwrap();
    w.push(5, &pattern(0xdd, 4096)).unwrap();
    let store = w.to_vec();
    let at = LAYOUT.pe_start as usize + 5 * EXTENT;
    pvs[1][at..at + store.len()].copy_from_slice(&store);
    for (i, img) in pvs.iter().enumerate() {
        std::fs::write(dir.join(format!("pv{i}.img")), img).unwrap();
    }
    std::fs::write(dir.join("meta.vg"), &text).unwrap();
    text
}

#[test]
fn offline_commands_match_their_goldens() {
    const TEST: &str = "offline_commands_match_their_goldens";
    // The VM harness copies tests/fixtures but not tests/golden, and the commands are
    // offline: the goldens are checked by the host run.
    if std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        println!(
            "SKIP {TEST}: offline goldens are checked on the host (the VM has no tests/golden)"
        );
        return;
    }
    if common::bin::find_or_skip(TEST).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut g = Goldens::new(d);
    let p = |n: &str| d.join(n);

    // cow inspect / export / merge.
    cow_inputs(d);
    for store in ["store", "fresh", "invalid"] {
        g.inspect(&format!("cow-inspect-{store}"), &p(&format!("{store}.cow")));
    }
    let (origin, store) = (p("origin.img"), p("store.cow"));
    let out = p("export.img");
    g.writes(
        "cow-export.txt",
        &cow_export_args(s(&origin), s(&store), s(&out), &[]),
        &out,
    );
    let out = p("export-invalid.img");
    g.writes(
        "cow-export-force-invalid.txt",
        &cow_export_args(
            s(&origin),
            s(&p("invalid.cow")),
            s(&out),
            &["--force-invalid"],
        ),
        &out,
    );
    g.writes(
        "cow-merge.txt",
        &[
            "cow",
            "merge",
            "--origin",
            s(&origin),
            "--cow",
            s(&store),
            "--yes",
        ],
        &origin,
    );
    g.stdout("cow-inspect-merged.txt", &["cow", "inspect", s(&store)]);

    // Kernel-made stores (tests/fixtures/cow): inspect, and export of the snapshot.
    for case in ["c8", "c1024", "multiarea", "full", "midmerge", "overflow"] {
        let cow = p(&format!("k-{case}.cow"));
        common::gunzip_to(&common::fixture(&format!("cow/{case}.cow.gz")), &cow);
        g.inspect(&format!("cow-inspect-kernel-{case}"), &cow);
    }
    let (korigin, kcow) = (p("k-c16.origin"), p("k-c16.cow"));
    common::gunzip_to(&common::fixture("cow/c16.origin.gz"), &korigin);
    common::gunzip_to(&common::fixture("cow/c16.cow.gz"), &kcow);
    let out = p("k-c16.snap");
    g.writes(
        "cow-export-kernel-c16.txt",
        &cow_export_args(s(&korigin), s(&kcow), s(&out), &[]),
        &out,
    );

    // lvm on images built here.
    lvm_inputs(d);
    let (pv0, pv1) = (p("pv0.img"), p("pv1.img"));
    let both = [s(&pv0), s(&pv1)];
    let with = |pre: &[&'static str], post: &[&'static str]| -> Vec<String> {
        pre.iter()
            .copied()
            .chain(both)
            .chain(post.iter().copied())
            .map(str::to_owned)
            .collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("lvm-scan.txt", with(&["lvm", "scan"], &[])),
        ("lvm-scan.json", with(&["lvm", "scan"], &["--json"])),
        (
            "lvm-scan-one-pv.txt",
            vec!["lvm".into(), "scan".into(), s(&pv1).into()],
        ),
        ("lvm-plan.txt", with(&["lvm", "plan"], &[])),
        ("lvm-plan.json", with(&["lvm", "plan"], &["--json"])),
        (
            "lvm-metadata.txt",
            vec!["lvm".into(), "metadata".into(), s(&pv0).into()],
        ),
    ];
    for (name, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        g.stdout(name, &args);
    }
    let meta = p("meta.vg");
    g.stdout(
        "lvm-scan-metadata.txt",
        &["lvm", "scan", "--metadata", s(&meta)],
    );
    g.stdout(
        "lvm-scan-metadata.json",
        &["lvm", "scan", "--metadata", s(&meta), "--json"],
    );
    for (lv, raw) in [
        ("lin", false),
        ("stripe", false),
        ("two", false),
        ("origin", false),
        ("origin_snap", false),
        ("origin_snap", true),
    ] {
        let out = p(&format!("lv-{lv}-{raw}.img"));
        let vg_lv = format!("gvg/{lv}");
        let mut args = vec!["lvm", "export", &vg_lv, "-o", s(&out), s(&pv0), s(&pv1)];
        if raw {
            args.push("--raw");
        }
        let name = format!("lvm-export-{lv}{}.txt", if raw { "-raw" } else { "" });
        g.writes(&name, &args, &out);
    }

    // lvm on the lvm2-made fixtures: three PVs, and metadata backup files.
    let mut multi = Vec::new();
    for i in 1..=3 {
        let to = p(&format!("multi-pv{i}.img"));
        common::gunzip_to(&common::fixture(&format!("lvm/multi/pv{i}.img.gz")), &to);
        multi.push(to.display().to_string());
    }
    let multi: Vec<&str> = multi.iter().map(String::as_str).collect();
    for (name, pre, post) in [
        ("lvm2-multi-scan.txt", &["lvm", "scan"][..], &[][..]),
        ("lvm2-multi-scan.json", &["lvm", "scan"], &["--json"]),
        ("lvm2-multi-plan.txt", &["lvm", "plan"], &[]),
        ("lvm2-multi-plan.json", &["lvm", "plan"], &["--json"]),
    ] {
        let args: Vec<&str> = pre.iter().chain(&multi).chain(post).copied().collect();
        g.stdout(name, &args);
    }
    g.stdout("lvm2-multi-metadata.txt", &["lvm", "metadata", multi[0]]);
    let out = p("multi-snap2.img");
    let mut args = vec!["lvm", "export", "fx-vg/snap2", "-o", s(&out)];
    args.extend(&multi);
    g.writes("lvm2-multi-export-snap2.txt", &args, &out);
    for case in ["multi", "more", "wrap"] {
        let f = common::fixture(&format!("lvm/{case}/backup.vg"));
        g.stdout(
            &format!("lvm2-{case}-scan-backup.txt"),
            &["lvm", "scan", "--metadata", s(&f)],
        );
        g.stdout(
            &format!("lvm2-{case}-scan-backup.json"),
            &["lvm", "scan", "--metadata", s(&f), "--json"],
        );
    }
    let pv5 = p("more-pv5.img");
    common::gunzip_to(&common::fixture("lvm/more/pv5.img.gz"), &pv5);
    g.stdout("lvm2-more-plan.txt", &["lvm", "plan", s(&pv5)]);
    g.stdout("lvm2-more-plan.json", &["lvm", "plan", s(&pv5), "--json"]);

    // Errors: exit status 1, the message (in stderr.txt), nothing on stdout.
    let short = p("short.img");
    std::fs::write(&short, [0u8; 8192]).unwrap();
    let truncated = common::fixture("lvm/truncated.vg");
    let missing = p("missing.img");
    for (name, args) in [
        (
            "err-cow-inspect-not-a-store",
            vec!["cow", "inspect", s(&origin)],
        ),
        (
            "err-cow-inspect-missing",
            vec!["cow", "inspect", s(&missing)],
        ),
        (
            "err-cow-export-short-origin",
            cow_export_args(s(&short), s(&p("k-c16.cow")), s(&p("x.img")), &[]),
        ),
        (
            "err-cow-export-invalid",
            cow_export_args(s(&origin), s(&p("invalid.cow")), s(&p("y.img")), &[]),
        ),
        ("err-lvm-scan-not-a-pv", vec!["lvm", "scan", s(&short)]),
        ("err-lvm-plan-not-a-pv", vec!["lvm", "plan", s(&short)]),
        (
            "err-lvm-metadata-not-a-pv",
            vec!["lvm", "metadata", s(&store)],
        ),
        (
            "err-lvm-scan-truncated-metadata",
            vec!["lvm", "scan", "--metadata", s(&truncated)],
        ),
        (
            "err-lvm-export-no-such-lv",
            vec![
                "lvm",
                "export",
                "gvg/nosuch",
                "-o",
                s(&p("z.img")),
                s(&pv0),
                s(&pv1),
            ],
        ),
        (
            "err-lvm-export-missing-pv",
            vec!["lvm", "export", "gvg/stripe", "-o", s(&p("z.img")), s(&pv0)],
        ),
    ] {
        g.fails(name, &args);
    }

    // Usage errors clap cannot see alone (counts that must match): exit 2, clap's format
    // with the subcommand's usage line, nothing done (no device-mapper needed).
    for (name, args) in [
        (
            "usage-snapshot-cow-count",
            vec!["snapshot", "a", "b", "--cow", "/dev/null"],
        ),
        (
            "usage-snapshot-snap-count",
            vec![
                "snapshot", "a", "b", "--cow", "/dev/x", "--cow", "/dev/y", "--snap", "s",
            ],
        ),
        (
            "usage-lvm-snapshot-size-count",
            vec![
                "lvm", "snapshot", "vg/a", "vg/b", "vg/c", "--size", "8M", "--size", "4M",
            ],
        ),
        (
            "usage-lvm-snapshot-name-count",
            vec![
                "lvm", "snapshot", "vg/a", "--size", "8M", "-n", "x", "-n", "y",
            ],
        ),
    ] {
        let out = g.run(name, &args);
        if out.status.code() != Some(2) || !out.stdout.is_empty() {
            g.failures.push(format!(
                "{name}: dmsnap {args:?} exited {:?} (2 expected), stdout {:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    g.finish();
}
