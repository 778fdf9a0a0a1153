//! Inputs and outputs of offline commands: identity, overwrite policy, file types, caps,
//! bounds, partial outputs (issue 9, items 1, 2, 6, 9, 10, 14).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::cow;
use crate::cow::export::{ExportOptions, export_to};
use crate::cow::merge::{MergeOptions, merge};
use crate::cow::reader::SnapshotReader;
use crate::cow::writer::StoreWriter;

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Names in `dir` (to see that no temporary file is left).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run `f` on another thread; panic if it does not return within 5 s (it blocked).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call blocked (no answer within 5 s)")
}

struct Fixture {
    dir: tempfile::TempDir,
    img: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("in.img");
    write(&img, b"precious input data");
    Fixture { dir, img }
}

#[test]
fn output_same_path_symlink_and_hard_link_refused_whatever_the_policy() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let link = f.dir.path().join("sym.img");
    symlink(&f.img, &link).unwrap();
    let hard = f.dir.path().join("hard.img");
    std::fs::hard_link(&f.img, &hard).unwrap();
    let relative = f.dir.path().join(".").join("in.img");
    for out in [&f.img, &link, &hard, &relative] {
        for policy in [Overwrite::Refuse, Overwrite::Replace] {
            let err = Output::create(out, &[&input], policy).unwrap_err();
            match &err {
                OutputError::SameAsInput { output, input } => {
                    assert_eq!(output, out);
                    assert_eq!(input, &f.img);
                }
                other => panic!("{}: {other:?}", out.display()),
            }
            let msg = err.to_string();
            assert!(msg.contains(&*out.to_string_lossy()) && msg.contains("in.img"));
        }
    }
    assert_eq!(std::fs::read(&f.img).unwrap(), b"precious input data");
    assert_eq!(names(f.dir.path()), ["hard.img", "in.img", "sym.img"]);
}

#[test]
fn output_different_file_is_not_the_input() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    // Same content, different inode: not the input, but it exists and is not empty.
    let other = f.dir.path().join("copy.img");
    std::fs::copy(&f.img, &other).unwrap();
    let err = Output::create(&other, &[&input], Overwrite::Refuse).unwrap_err();
    assert!(
        matches!(
            err,
            OutputError::Exists {
                len: 19,
                kind: FileKind::Regular,
                ..
            }
        ),
        "{err:?}"
    );
    // An empty existing file holds nothing to lose.
    let empty = f.dir.path().join("empty.img");
    write(&empty, b"");
    let mut out = Output::create(&empty, &[&input], Overwrite::Refuse).unwrap();
    out.write_all(b"new").unwrap();
    out.commit().unwrap();
    assert_eq!(std::fs::read(&empty).unwrap(), b"new");
}

#[test]
fn existing_output_needs_replace_and_survives_a_failed_replace() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let out_path = f.dir.path().join("out.img");
    write(&out_path, b"old output");
    assert!(matches!(
        Output::create(&out_path, &[&input], Overwrite::Refuse),
        Err(OutputError::Exists { len: 10, .. })
    ));
    // Replace, but fail before the commit: the old file is kept, no temporary left.
    let mut out = Output::create(&out_path, &[&input], Overwrite::Replace).unwrap();
    out.write_all(b"half").unwrap();
    assert_eq!(std::fs::read(&out_path).unwrap(), b"old output");
    drop(out);
    assert_eq!(std::fs::read(&out_path).unwrap(), b"old output");
    assert_eq!(names(f.dir.path()), ["in.img", "out.img"]);
    // Replace and commit.
    let mut out = Output::create(&out_path, &[&input], Overwrite::Replace).unwrap();
    out.write_all(b"new output").unwrap();
    out.commit().unwrap();
    assert_eq!(std::fs::read(&out_path).unwrap(), b"new output");
    assert_eq!(names(f.dir.path()), ["in.img", "out.img"]);
}

#[test]
fn replace_through_a_symlink_replaces_the_target_not_the_link() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let target = f.dir.path().join("target.img");
    write(&target, b"old");
    let link = f.dir.path().join("link.img");
    symlink(&target, &link).unwrap();
    let mut out = Output::create(&link, &[&input], Overwrite::Replace).unwrap();
    out.write_all(b"new").unwrap();
    out.commit().unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
}

#[test]
fn new_output_appears_only_when_complete() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let out_path = f.dir.path().join("new.img");
    let mut out = Output::create(&out_path, &[&input], Overwrite::Refuse).unwrap();
    out.write_all(b"partial").unwrap();
    assert!(!out_path.exists());
    drop(out); // a failure: nothing is left behind
    assert_eq!(names(f.dir.path()), ["in.img"]);
}

/// A source that fails after `ok` bytes, as a truncated PV or a bad sector would.
struct FailingAfter {
    size: u64,
    ok: u64,
}

impl ReadAt for FailingAfter {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset + buf.len() as u64 > self.ok {
            return Err(io::Error::other("bad sector"));
        }
        buf.fill(0x5a);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

#[test]
fn failed_export_leaves_no_partial_output() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let src = FailingAfter {
        size: 8 << 20,
        ok: 3 << 20,
    };
    // cow export: a new file is not left behind.
    let out_path = f.dir.path().join("snap.img");
    let out = Output::create(&out_path, &[&input], Overwrite::Refuse).unwrap();
    let opts = ExportOptions {
        block_size: 1 << 20,
        sparse: true,
    };
    let err = export_to(&src, out, &opts, |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            cow::Error::Io {
                what: "snapshot",
                offset: 3145728,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(names(f.dir.path()), ["in.img"]);
    // The sequential copy (lvm export): a replaced file keeps its old content.
    write(&out_path, b"keep me");
    let mut out = Output::create(&out_path, &[&input], Overwrite::Replace).unwrap();
    let err = copy(&src, &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            CopyError::Read {
                offset: 3145728,
                ..
            }
        ),
        "{err:?}"
    );
    drop(out);
    assert_eq!(std::fs::read(&out_path).unwrap(), b"keep me");
    assert_eq!(names(f.dir.path()), ["in.img", "snap.img"]);
}

#[test]
fn write_errors_are_labelled_writing_with_the_path() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        println!("SKIP write_errors_are_labelled_writing_with_the_path: no /dev/full");
        return;
    };
    drop(full);
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let mut out = Output::create(Path::new("/dev/full"), &[&input], Overwrite::Refuse).unwrap();
    assert_eq!(out.kind(), OutputKind::Stream);
    let err = copy(&input, &mut out).unwrap_err();
    let CopyError::Write { offset: 0, source } = &err else {
        panic!("{err:?}");
    };
    let inner = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<OutputError>());
    assert!(
        matches!(inner, Some(OutputError::Write { path, .. }) if path == Path::new("/dev/full")),
        "{err:?}"
    );
    assert!(err.to_string().contains("writing /dev/full"), "{err}");
    // The cow export says "writing" too.
    let out = Output::create(Path::new("/dev/full"), &[&input], Overwrite::Refuse).unwrap();
    let err = export_to(&input, out, &ExportOptions::default(), |_, _| {}).unwrap_err();
    assert!(
        matches!(err, cow::Error::Write { offset: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("writing the output"), "{err}");
}

#[test]
fn fifo_input_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let p = fifo.clone();
    let err = promptly(move || Input::open(&p).map(|_| ())).unwrap_err();
    assert!(
        matches!(&err, InputError::Kind { kind: FileKind::Fifo, path } if *path == fifo),
        "{err:?}"
    );
    assert!(err.to_string().contains("FIFO"), "{err}");
    let p = fifo.clone();
    let err = promptly(move || Input::open_rw(&p, &[]).map(|_| ())).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::Fifo,
                ..
            }
        ),
        "{err:?}"
    );
    let p = fifo.clone();
    let err = promptly(move || read_file_capped(&p, 1 << 20).map(|_| ())).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::Fifo,
                ..
            }
        ),
        "{err:?}"
    );
    // As an output, a FIFO nobody reads fails at once instead of blocking in open().
    let p = fifo.clone();
    let err = promptly(move || Output::create(&p, &[], Overwrite::Refuse).map(|_| ())).unwrap_err();
    assert!(matches!(err, OutputError::NoReader { .. }), "{err:?}");
}

#[test]
fn other_input_kinds_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = Input::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::Directory,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Input::open(Path::new("/dev/null")).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::CharDevice,
                ..
            }
        ),
        "{err:?}"
    );
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = Input::open(&sock).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::Socket,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Input::open(&dir.path().join("missing")).unwrap_err();
    assert!(
        matches!(&err, InputError::Stat { source, .. } if source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
    // A directory cannot be an output either.
    let err = Output::create(dir.path(), &[], Overwrite::Replace).unwrap_err();
    assert!(
        matches!(
            err,
            OutputError::Kind {
                kind: FileKind::Directory,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn whole_file_reads_are_capped_while_reading() {
    // /dev/zero never ends: the read stops after cap + 1 bytes.
    let zero = File::open("/dev/zero").unwrap();
    let err = promptly(move || read_capped(zero, 1 << 20, Path::new("/dev/zero"))).unwrap_err();
    assert!(
        matches!(err, InputError::TooLarge { cap: 1048576, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    // As a command input it is refused by type before any read.
    let err = read_file_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Kind {
                kind: FileKind::CharDevice,
                ..
            }
        ),
        "{err:?}"
    );
    // A sparse 1 TiB file: refused by its size, nothing read.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.txt");
    File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let p = huge.clone();
    let err = promptly(move || read_file_capped(&p, 64 << 20)).unwrap_err();
    assert!(
        matches!(err, InputError::TooLarge { cap: 67108864, .. }),
        "{err:?}"
    );
    // At the cap exactly: read.
    write(&huge, &[b'x'; 100]);
    assert_eq!(read_file_capped(&huge, 100).unwrap().len(), 100);
    assert!(matches!(
        read_file_capped(&huge, 99),
        Err(InputError::TooLarge { cap: 99, .. })
    ));
}

#[test]
fn reads_past_the_end_or_out_of_range_say_so() {
    let f = fixture();
    let input = Input::open(&f.img).unwrap();
    let e = input.read_exact_at(&mut [0u8; 8], 16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(
        matches!(
            input_error(&e),
            Some(InputError::PastEnd {
                offset: 16,
                len: 8,
                size: 19,
                ..
            })
        ),
        "{e:?}"
    );
    // A pe_start near 2^55 sectors: no "Invalid argument" from pread.
    let huge = (1u64 << 54) * 512;
    let e = input.read_exact_at(&mut [0u8; 512], huge).unwrap_err();
    assert!(
        matches!(input_error(&e), Some(InputError::PastEnd { .. })),
        "{e:?}"
    );
    let plain = File::open(&f.img).unwrap();
    let e = ReadAt::read_exact_at(&plain, &mut [0u8; 512], huge).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let inner = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<OffsetOutOfRange>());
    assert_eq!(inner.map(|o| o.offset), Some(huge), "{e:?}");
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn merge_refuses_origin_that_is_the_cow_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(2, &[9u8; 4096]).unwrap();
    let store = dir.path().join("cow.img");
    write(&store, &w.to_vec());
    let before = std::fs::read(&store).unwrap();
    let hard = dir.path().join("hard.img");
    std::fs::hard_link(&store, &hard).unwrap();
    let sym = dir.path().join("sym.img");
    symlink(&store, &sym).unwrap();
    let origin = Input::open_rw(&store, &[]).unwrap();
    for other in [&store, &hard, &sym] {
        let err = Input::open_rw(other, &[&origin]).unwrap_err();
        match &err {
            InputError::SameFile {
                path, other: first, ..
            } => {
                assert_eq!(path, other);
                assert_eq!(first, &store);
            }
            e => panic!("{e:?}"),
        }
    }
    // The library refuses even when handed the same file twice.
    let a = File::options().read(true).write(true).open(&store).unwrap();
    let b = File::options().read(true).write(true).open(&hard).unwrap();
    let err = merge(&a, &b, &MergeOptions::default(), |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(matches!(err, cow::Error::OriginIsCow), "{err:?}");
    assert_eq!(std::fs::read(&store).unwrap(), before, "nothing written");
}

#[test]
fn short_origin_is_named_not_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB chunks; the snapshot saved chunks 1 and 40 of its origin (>= 160 KiB).
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(1, &[1u8; 4096]).unwrap();
    w.push(40, &[2u8; 4096]).unwrap();
    let cow_path = dir.path().join("cow.img");
    write(&cow_path, &w.to_vec());
    let origin_path = dir.path().join("origin.img");
    File::create(&origin_path)
        .unwrap()
        .set_len(64 << 10)
        .unwrap();
    let (o, c) = (
        Input::open(&origin_path).unwrap(),
        Input::open(&cow_path).unwrap(),
    );
    let err = SnapshotReader::open(&o, &c).unwrap_err();
    assert!(
        matches!(
            err,
            cow::Error::OriginTooSmall {
                origin_size: 65536,
                needed: 164352,
                old_chunk: 40
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("origin is 65536 bytes, smaller than"), "{msg}");
    assert!(!msg.contains("corrupt"), "{msg}");
    // Big enough (40 chunks and a sector of the 41st): fine.
    File::options()
        .write(true)
        .open(&origin_path)
        .unwrap()
        .set_len(164352)
        .unwrap();
    let o = Input::open(&origin_path).unwrap();
    assert_eq!(SnapshotReader::open(&o, &c).unwrap().exceptions(), 2);
}

/// One PV (pe_start 1 sector, extents of 1 sector), LV `lv` on PEs 1-2 (sectors 2-3).
const ONE_PV_VG: &[u8] = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 1
  status = ["READ", "WRITE"] extent_size = 1 max_lv = 0 max_pv = 0
  physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
    status = ["ALLOCATABLE"] pe_start = 1 pe_count = 3 } }
  logical_volumes { lv { id = "J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlK"
    status = ["READ", "WRITE", "VISIBLE"] segment_count = 1
    segment1 { start_extent = 0 extent_count = 2 type = "striped"
      stripe_count = 1 stripes = ["pv0", 1] } } } }
  contents = "Text Format Volume Group" version = 1"#;

#[test]
fn lv_past_the_end_of_a_pv_image_names_the_pv_its_size_and_the_offset() {
    use crate::lvm::config::ParseMode;
    use crate::lvm::export::{LvReader, PvReadError, export};
    use crate::lvm::model::VolumeGroup;
    let vg = VolumeGroup::from_text(ONE_PV_VG, ParseMode::Disk).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pv_path = dir.path().join("pv.img");
    write(&pv_path, &[7u8; 1536]); // three sectors: the LV needs four
    let pv = Input::open(&pv_path).unwrap();
    let r = LvReader::new(&vg, "lv", &|_p| Some(&pv)).unwrap();
    let out_path = dir.path().join("lv.img");
    let mut out = Output::create(&out_path, &[&pv], Overwrite::Refuse).unwrap();
    let err = export(&r, &mut out).unwrap_err();
    let CopyError::Read { offset: 0, source } = &err else {
        panic!("{err:?}");
    };
    let inner = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<PvReadError>());
    assert!(
        matches!(inner, Some(PvReadError::PastEnd { pv, size: 1536, needed: 2048 }) if pv == "pv0"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(!msg.contains("fill whole buffer"), "{msg}");
    assert!(
        msg.contains("PV pv0 is 1536 bytes") && msg.contains("2048"),
        "{msg}"
    );
    drop(out);
    assert_eq!(names(dir.path()), ["pv.img"], "no partial output");
}

#[test]
fn slice_bounds() {
    let data: &[u8] = &[1, 2, 3];
    let mut b = [0u8; 2];
    assert!(data.read_exact_at(&mut b, 1).is_ok());
    assert_eq!(b, [2, 3]);
    assert_eq!(
        data.read_exact_at(&mut b, 2).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    assert!(data.read_exact_at(&mut b, u64::MAX).is_err());
}

#[test]
fn file_size_and_read() {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, b"abcdef").unwrap();
    assert_eq!(ReadAt::size(&f).unwrap(), 6);
    let mut b = [0u8; 3];
    ReadAt::read_exact_at(&f, &mut b, 3).unwrap();
    assert_eq!(&b, b"def");
}

#[test]
fn huge_pe_start_is_out_of_range_not_invalid_argument() {
    use crate::lvm::config::ParseMode;
    use crate::lvm::export::{LvReader, PvReadError, export};
    use crate::lvm::model::VolumeGroup;
    let dir = tempfile::tempdir().unwrap();
    let pv_path = dir.path().join("pv.img");
    write(&pv_path, &[0u8; 4096]);
    let pv = Input::open(&pv_path).unwrap();
    let text = |pe_start: u64| {
        String::from_utf8_lossy(ONE_PV_VG)
            .replace("pe_start = 1", &format!("pe_start = {pe_start}"))
    };
    // 2^54 sectors: the byte offset (2^63) fits in u64 but not in off_t.
    let vg = VolumeGroup::from_text(text(1 << 54).as_bytes(), ParseMode::Disk).unwrap();
    let r = LvReader::new(&vg, "lv", &|_p| Some(&pv)).unwrap();
    let err = export(&r, &mut io::sink()).unwrap_err();
    let CopyError::Read { source, .. } = &err else {
        panic!("{err:?}");
    };
    let inner = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<PvReadError>());
    assert!(
        matches!(inner, Some(PvReadError::PastEnd { size: 4096, needed, .. }) if *needed > 1 << 63),
        "{err:?}"
    );
    assert!(!err.to_string().contains("Invalid argument"), "{err}");
    // The largest pe_start the model takes (2^55 - 1 sectors): with PE 1 the byte offset
    // does not fit in u64 at all.
    let vg = VolumeGroup::from_text(text((1 << 55) - 1).as_bytes(), ParseMode::Disk).unwrap();
    let err = LvReader::new(&vg, "lv", &|_p| Some(&pv)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pe_start 36028797018963967") && msg.contains("out of range"),
        "{msg}"
    );
}
