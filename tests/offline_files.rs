//! `dmsnap cow ...` / `dmsnap lvm ...` and the files they are given (issue 9, items 1, 2,
//! 6, 9, 10, 14): an output that is an input (same path, symlink, hard link) is refused
//! with exit status 1 and the input is left byte for byte as it was; an existing output
//! needs `--force`; a failed export leaves nothing behind; a FIFO never blocks a command;
//! whole-file reads are capped; short origins and PV images are named as such.
//!
//! The binary is `DMSNAP_BIN`, else `target/<profile>/examples/dmsnap` next to this test
//! (`cargo build --example dmsnap`; `cargo test` builds it).

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use devmapper::cow::writer::StoreWriter;

// dmsnap with `args` (stdin closed); a panic if it takes more than 20 s (it hung).
use common::bin::run;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 1, and stderr mentions every one of `words`.
fn assert_fails(o: &Output, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
}

/// Length and content of a file (compared whole: stronger than a hash, and fast in a
/// debug build under the VM's emulation).
fn fingerprint(p: &Path) -> (u64, Vec<u8>) {
    let bytes = std::fs::read(p).unwrap();
    (bytes.len() as u64, bytes)
}

/// `dmsnap cow export --origin ORIGIN --cow COW -o OUT [--force]`.
fn cow_export<'a>(origin: &'a str, cow: &'a str, out: &'a str, force: bool) -> Vec<&'a str> {
    let force: &[&str] = if force { &["--force"] } else { &[] };
    common::bin::cow_export_args(origin, cow, out, force)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An origin image (64 KiB of a pattern) and a store remapping chunks 1 and 3 (4 KiB).
fn cow_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let origin = dir.join("origin.img");
    let data: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(&origin, data).unwrap();
    let mut w = StoreWriter::new(8, 256 << 10).unwrap();
    w.push(1, &[0xaa; 4096]).unwrap();
    w.push(3, &[0xbb; 4096]).unwrap();
    let cow = dir.join("cow.img");
    std::fs::write(&cow, w.to_vec()).unwrap();
    (origin, cow)
}

#[test]
fn cow_export_refuses_an_input_as_output_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = cow_pair(dir.path());
    let sym = dir.path().join("sym.img");
    symlink(&cow, &sym).unwrap();
    let hard = dir.path().join("hard.img");
    std::fs::hard_link(&origin, &hard).unwrap();
    let before = (fingerprint(&origin), fingerprint(&cow));
    for (out, input, force) in [
        (&origin, &origin, false),
        (&cow, &cow, true),
        (&sym, &cow, true),
        (&hard, &origin, false),
        (&hard, &origin, true),
    ] {
        let args = cow_export(s(&origin), s(&cow), s(out), force);
        let o = run(&args);
        assert_fails(&o, &[s(out), s(input), "is the input"]);
        assert_eq!(
            (fingerprint(&origin), fingerprint(&cow)),
            before,
            "{args:?}"
        );
    }
    assert_eq!(
        names(dir.path()),
        ["cow.img", "hard.img", "origin.img", "sym.img"]
    );
}

#[test]
fn cow_export_needs_force_for_an_existing_file_and_keeps_it_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = cow_pair(dir.path());
    let out = dir.path().join("out.img");
    std::fs::write(&out, b"an older export").unwrap();
    let args = cow_export(s(&origin), s(&cow), s(&out), false);
    let o = run(&args);
    assert_fails(&o, &[s(&out), "not empty", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"an older export");
    // With --force, but the export fails (the origin is too short for the store): the old
    // file stays, no temporary is left.
    let short = dir.path().join("short.img");
    std::fs::write(&short, [0u8; 8192]).unwrap();
    let o = run(&cow_export(s(&short), s(&cow), s(&out), true));
    assert_fails(&o, &["origin is 8192 bytes, smaller than"]);
    assert!(!stderr(&o).contains("corrupt"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"an older export");
    assert_eq!(
        names(dir.path()),
        ["cow.img", "origin.img", "out.img", "short.img"]
    );
    // With --force: replaced by the snapshot's content.
    let o = run(&cow_export(s(&origin), s(&cow), s(&out), true));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), 64 << 10);
    assert_eq!(&got[4096..8192], &[0xaa; 4096][..]);
    assert_eq!(got[8192], (8192 % 251) as u8);
}

#[test]
fn cow_export_to_a_pipe_writes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = cow_pair(dir.path());
    let file = dir.path().join("snap.img");
    let o = run(&cow_export(s(&origin), s(&cow), s(&file), false));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // stdout is a pipe here: `-o /dev/stdout` gets the same bytes, no "Illegal seek".
    let o = run(&cow_export(s(&origin), s(&cow), "/dev/stdout", false));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
}

#[test]
fn cow_merge_refuses_the_store_as_its_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (_origin, cow) = cow_pair(dir.path());
    let hard = dir.path().join("hard.img");
    std::fs::hard_link(&cow, &hard).unwrap();
    let sym = dir.path().join("sym.img");
    symlink(&cow, &sym).unwrap();
    let before = fingerprint(&cow);
    for other in [&cow, &hard, &sym] {
        let o = run(&[
            "cow",
            "merge",
            "--origin",
            s(&cow),
            "--cow",
            s(other),
            "--yes",
        ]);
        assert_fails(&o, &[s(&cow), s(other), "the same file"]);
        assert!(!stderr(&o).contains("merged"), "{}", stderr(&o));
        assert_eq!(fingerprint(&cow), before);
    }
}

#[test]
fn fifo_inputs_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = cow_pair(dir.path());
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let f = s(&fifo);
    let out = dir.path().join("out.img");
    let o_ = s(&out);
    for args in [
        vec!["cow", "inspect", f],
        vec!["cow", "export", "--origin", f, "--cow", s(&cow), "-o", o_],
        cow_export(s(&origin), f, o_, false),
        vec!["cow", "merge", "--origin", f, "--cow", s(&cow), "--yes"],
        vec!["cow", "merge", "--origin", s(&origin), "--cow", f, "--yes"],
        vec!["lvm", "scan", f],
        vec!["lvm", "scan", "--metadata", f],
        vec!["lvm", "metadata", f],
        vec!["lvm", "plan", f],
        vec!["lvm", "export", "vg/lv", "-o", o_, f],
    ] {
        let o = run(&args);
        assert_fails(&o, &[f, "FIFO"]);
    }
    // A FIFO as the output, with nobody reading it: refused at once.
    let o = run(&cow_export(s(&origin), s(&cow), f, false));
    assert_fails(&o, &[f, "no reader"]);
    assert!(!out.exists());
}

#[test]
fn scan_metadata_is_capped_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["lvm", "scan", "--metadata", "/dev/zero"]);
    assert_fails(&o, &["/dev/zero", "character device"]);
    let huge = dir.path().join("huge.vg");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(100 << 30)
        .unwrap();
    let start = Instant::now();
    let o = run(&["lvm", "scan", "--metadata", s(&huge)]);
    assert_fails(&o, &[s(&huge), "too large", "67108864"]);
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// PV 1 of the `multi` fixture (VG fx-vg, made by lvm2), which holds all of LV lin-ear:
/// the VG is incomplete without PVs 2 and 3, but lin-ear can be exported.
fn multi_pv1(dir: &Path) -> PathBuf {
    let to = dir.join("pv1.img");
    common::gunzip_to(&common::fixture("lvm/multi/pv1.img.gz"), &to);
    to
}

#[test]
fn lvm_export_refuses_a_pv_as_output_and_names_a_short_pv() {
    let dir = tempfile::tempdir().unwrap();
    let pv = multi_pv1(dir.path());
    let sym = dir.path().join("sym.img");
    symlink(&pv, &sym).unwrap();
    let before = fingerprint(&pv);
    for out in [&pv, &sym] {
        for force in [false, true] {
            let mut args = vec!["lvm", "export", "fx-vg/lin-ear", "-o", s(out), s(&pv)];
            if force {
                args.push("--force");
            }
            let o = run(&args);
            assert_fails(&o, &[s(out), s(&pv), "is the input"]);
            assert_eq!(fingerprint(&pv), before, "{args:?}");
        }
    }
    // An existing file needs --force.
    let out = dir.path().join("lv.img");
    std::fs::write(&out, b"keep").unwrap();
    let args = ["lvm", "export", "fx-vg/lin-ear", "-o", s(&out), s(&pv)];
    assert_fails(&run(&args), &[s(&out), "not empty", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    std::fs::remove_file(&out).unwrap();
    // lin-ear is PEs 0-3 of pv1 (sector 2048 on, 64 KiB extents): cut the image inside it.
    let short = dir.path().join("short.img");
    std::fs::copy(&pv, &short).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(1_200_000)
        .unwrap();
    let o = run(&["lvm", "export", "fx-vg/lin-ear", "-o", s(&out), s(&short)]);
    assert_fails(&o, &["PV pv0 is 1200000 bytes", "1310720"]);
    assert!(!stderr(&o).contains("fill whole buffer"), "{}", stderr(&o));
    assert!(!out.exists(), "partial output left behind");
    assert_eq!(names(dir.path()), ["pv1.img", "short.img", "sym.img"]);
}
