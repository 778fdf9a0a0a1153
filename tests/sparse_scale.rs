//! Issue 15 on real files: exports skip the holes of sparse inputs and leave holes in the
//! output (same bytes as a full copy, far fewer blocks allocated, far fewer bytes read),
//! and a COW store claiming terabytes with one exception is read in a few MiB.

mod common;

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use devmapper::cow::export::{ExportOptions, export_to as cow_export_to};
use devmapper::cow::reader::SnapshotReader;
use devmapper::cow::writer::StoreWriter;
use devmapper::io::{Input, Output, Overwrite, ReadAt, copy, copy_to};
use devmapper::lvm::export::{LvReader, export_to as lvm_export_to};
use devmapper::lvm::metadata_text::read_vg;

const MIB: u64 = 1 << 20;

/// Bytes allocated to a file (`st_blocks` is in 512-byte units).
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// A sparse file of `len` bytes with `parts` written at their offsets; `None` (with a
/// printed reason) when the file system here does not keep holes.
fn sparse_file(p: &Path, len: u64, parts: &[(u64, Vec<u8>)]) -> Option<()> {
    let f = File::create(p).unwrap();
    f.set_len(len).unwrap();
    for (off, data) in parts {
        f.write_all_at(data, *off).unwrap();
    }
    f.sync_all().unwrap();
    let data: u64 = parts.iter().map(|(_, d)| d.len() as u64).sum();
    if allocated(p) > data + 4 * MIB {
        println!("SKIP: {} does not keep holes here", p.display());
        return None;
    }
    Some(())
}

/// A recognisable, non-zero block.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// A source that counts the bytes read through it (holes are never read).
struct Counting<R> {
    inner: R,
    read: Cell<u64>,
}

impl<R: ReadAt> ReadAt for Counting<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read.set(self.read.get() + buf.len() as u64);
        self.inner.read_exact_at(buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }

    fn next_data(&self, offset: u64) -> std::io::Result<Option<(u64, u64)>> {
        self.inner.next_data(offset)
    }
}

#[test]
fn cow_export_reads_only_data_and_keeps_holes() {
    let dir = tempfile::tempdir().unwrap();
    let origin_path = dir.path().join("origin.img");
    // 256 MiB origin: three 1 MiB data blocks, the rest holes.
    let parts = vec![
        (0, pattern(1, MIB as usize)),
        (100 * MIB, pattern(2, MIB as usize)),
        (255 * MIB, pattern(3, MIB as usize)),
    ];
    let Some(()) = sparse_file(&origin_path, 256 * MIB, &parts) else {
        return;
    };
    // A small COW: exceptions over a hole (data and zeros) and over the origin's data.
    let mut w = StoreWriter::new(8, 8 * MIB).unwrap();
    w.push(50 * MIB / 4096, &pattern(4, 4096)).unwrap();
    w.push(60 * MIB / 4096, &[]).unwrap();
    w.push(100 * MIB / 4096 + 3, &pattern(5, 4096)).unwrap();
    w.push(200 * MIB / 4096, &pattern(6, 4096)).unwrap();
    w.push(200 * MIB / 4096 + 1, &pattern(7, 4096)).unwrap();
    let cow_path = dir.path().join("cow.img");
    w.finish()
        .write_to(&File::create(&cow_path).unwrap())
        .unwrap();

    // Today's bytes: the same snapshot over an in-memory origin (no hole information,
    // every byte read), copied whole.
    let origin_bytes = std::fs::read(&origin_path).unwrap();
    let cow_bytes = std::fs::read(&cow_path).unwrap();
    let full = SnapshotReader::open(&origin_bytes[..], &cow_bytes[..]).unwrap();
    let mut expected = Vec::new();
    copy(&full, &mut expected).unwrap();

    let origin = Input::open(&origin_path).unwrap();
    let cow = Input::open(&cow_path).unwrap();
    let counted = Counting {
        inner: &origin,
        read: Cell::new(0),
    };
    let snap = SnapshotReader::open(&counted, &cow).unwrap();
    let out_path = dir.path().join("snap.img");
    let out = Output::create(&out_path, &[&origin, &cow], Overwrite::Refuse).unwrap();
    let report = cow_export_to(&snap, out, &ExportOptions::default(), |_, _| {}).unwrap();
    assert_eq!(report.bytes, 256 * MIB);
    assert!(
        std::fs::read(&out_path).unwrap() == expected,
        "bytes differ"
    );
    // Read: the origin's 3 MiB of data (and the header), never its 253 MiB of holes.
    assert!(
        counted.read.get() <= 4 * MIB,
        "{} bytes read",
        counted.read.get()
    );
    // Written and allocated: the data, 3 non-zero exception chunks; the zero chunk and
    // every hole stay holes.
    assert!(report.written <= 3 * MIB + 3 * 4096, "{report:?}");
    let alloc = allocated(&out_path);
    assert!(alloc <= 3 * MIB + 64 * 1024, "{alloc} bytes allocated");
    assert!(alloc >= 3 * MIB, "{alloc} bytes allocated");
}

/// A one-PV VG image on `dir`: a 64 MiB PE area holding two 1 MiB data blocks, an LV of
/// 40 MiB on it followed by an 8 MiB `zero` segment. Returns the PV path and the text.
fn lvm_image(dir: &Path) -> Option<(std::path::PathBuf, String)> {
    let text = "vg0 { id = \"kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE\" seqno = 1\n\
         status = [\"READ\", \"WRITE\"] extent_size = 2048 max_lv = 0 max_pv = 0\n\
         physical_volumes { pv0 { id = \"EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z\"\n\
         status = [\"ALLOCATABLE\"] pe_start = 128 pe_count = 64 } }\n\
         logical_volumes { lv { id = \"J4A3Dd-vHyr-NktB-Xtnj-fObI-Nf5A-jxvUlK\"\n\
         status = [\"READ\", \"WRITE\", \"VISIBLE\"] segment_count = 2\n\
         segment1 { start_extent = 0 extent_count = 40 type = \"striped\" stripe_count = 1\n\
         stripes = [\"pv0\", 4] }\n\
         segment2 { start_extent = 40 extent_count = 8 type = \"zero\" } } } }\n\
         contents = \"Text Format Volume Group\" version = 1\n"
        .to_string();
    let head = common::pv_image(
        common::LAYOUT.pe_start as usize,
        b"EBY3ABp3e2zS8iq9y7AjzQHb6BAEcn6z",
        text.as_bytes(),
        512,
    );
    let pv = dir.join("pv.img");
    let pe0 = common::LAYOUT.pe_start;
    let parts = vec![
        (0, head),
        (pe0 + 4 * MIB + 5 * MIB, pattern(8, MIB as usize)),
        (pe0 + 4 * MIB + 39 * MIB, pattern(9, MIB as usize)),
    ];
    sparse_file(&pv, pe0 + 64 * MIB, &parts)?;
    Some((pv, text))
}

#[test]
fn lvm_export_reads_only_data_and_keeps_holes() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pv_path, text)) = lvm_image(dir.path()) else {
        return;
    };
    let vg = read_vg(text.as_bytes()).unwrap();
    let pv_bytes = std::fs::read(&pv_path).unwrap();
    let full = LvReader::new(&vg, "lv", &|_p| Some(&pv_bytes[..])).unwrap();
    let mut expected = Vec::new();
    copy(&full, &mut expected).unwrap();
    assert_eq!(expected.len() as u64, 48 * MIB);

    let pv = Input::open(&pv_path).unwrap();
    let counted = Counting {
        inner: &pv,
        read: Cell::new(0),
    };
    let reader = LvReader::new(&vg, "lv", &|_p| Some(&counted)).unwrap();
    // The LV's data: its 2 MiB; the zero segment and the holes are holes.
    assert_eq!(reader.next_data(0).unwrap().map(|(s, _)| s), Some(5 * MIB));
    let out_path = dir.path().join("lv.img");
    let out = Output::create(&out_path, &[&pv], Overwrite::Refuse).unwrap();
    assert_eq!(lvm_export_to(&reader, &out).unwrap(), 48 * MIB);
    out.commit().unwrap();
    assert!(
        std::fs::read(&out_path).unwrap() == expected,
        "bytes differ"
    );
    assert!(
        counted.read.get() <= 2 * MIB,
        "{} bytes read",
        counted.read.get()
    );
    let alloc = allocated(&out_path);
    assert!(
        (2 * MIB..=2 * MIB + 64 * 1024).contains(&alloc),
        "{alloc} bytes allocated"
    );

    // A stream gets every byte, the holes as zeros, in order.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let reader_thread = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            File::open(&fifo).unwrap().read_to_end(&mut got).unwrap();
            got
        })
    };
    // Opening the FIFO for writing needs its reader: wait until it is there.
    let out = loop {
        match Output::create(&fifo, &[&pv], Overwrite::Refuse) {
            Ok(o) => break o,
            Err(devmapper::io::OutputError::NoReader { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(copy_to(&reader, &out).unwrap(), 48 * MIB);
    out.commit().unwrap();
    drop(reader);
    assert!(
        reader_thread.join().unwrap() == expected,
        "stream bytes differ"
    );
}

#[test]
fn a_huge_sparse_cow_store_with_one_exception_is_inspected_in_little_memory() {
    let Some(bin) = common::bin::find_or_skip("huge_sparse_cow_store") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    // 15 TiB claimed (ext4 files stop just short of 16 TiB), one exception in the last
    // data chunk: header and area 0 are the only blocks written.
    let size = 15u64 << 40;
    let f = File::create(&path).unwrap();
    if let Err(e) = f.set_len(size) {
        println!("SKIP huge_sparse_cow_store: a {size}-byte sparse file: {e}");
        return;
    }
    let image = StoreWriter::build(8, 4 * MIB, &[(5, Some(size / 4096 - 1))]).unwrap();
    for (off, bytes) in image.pages() {
        f.write_all_at(bytes, off).unwrap();
    }
    drop(f);
    let o = common::bin::run_limited(
        &bin,
        &["cow", "inspect", path.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    // ru_maxrss is in KiB: the largest child of this process (this test's only one).
    let peak = usage.max_rss() as u64 * 1024;
    assert!(peak < 64 * MIB, "peak resident memory {peak} bytes");
}
