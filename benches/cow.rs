//! Inner-function benches (not whole commands; see e2e_host/e2e_vm for those): COW store
//! benchmarks, each next to a same-run anchor:
//! - `scan`: walk a table of 1 million exceptions (4 KiB chunks, 16 MB of metadata) from
//!   memory and from a file in the page cache (tmpfs when there is one), against a plain
//!   copy + checksum of the same metadata bytes;
//! - `export`: export a snapshot (origin + COW, a quarter of the chunks remapped) to a file,
//!   against a plain copy of the same number of bytes into a file; `ours_output_rename`
//!   is the command's way (a checked `io::Output`: temporary file, renamed when complete).
//!
//! Run with `cargo bench --bench cow`; compare the `*/ours` and `*/anchor` throughputs.

use std::hint::black_box;
use std::os::unix::fs::FileExt;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devmapper::cow::Store;
use devmapper::cow::export::{ExportOptions, export, export_to};
use devmapper::cow::reader::SnapshotReader;
use devmapper::cow::writer::{SparseImage, StoreWriter};
use devmapper::io::{Output, Overwrite, ReadAt};

const EXCEPTIONS: u64 = 1_000_000;

fn million_store() -> SparseImage {
    let chunks = 2 + EXCEPTIONS + EXCEPTIONS / 256 + 1;
    let mut w = StoreWriter::new(8, chunks * 4096).expect("writer");
    for i in 0..EXCEPTIONS {
        // Scattered origin chunks, as random writes make them.
        w.push(i.wrapping_mul(2_654_435_761) % (EXCEPTIONS * 4), &[])
            .expect("push");
    }
    w.finish()
}

fn bench_scan(c: &mut Criterion) {
    let img = million_store();
    let store = Store::open(&img).expect("open");
    assert_eq!(store.scan(None).expect("scan").exceptions, EXCEPTIONS);
    // The anchor's input: the same metadata areas, copied out of the same image.
    let areas: Vec<(u64, usize)> = img
        .pages()
        .skip(1) // the header
        .map(|(off, b)| (off, b.len()))
        .collect();
    let meta_bytes: u64 = areas.iter().map(|a| a.1 as u64).sum();

    let mut g = c.benchmark_group("scan_1m");
    g.throughput(Throughput::Bytes(meta_bytes));
    g.sample_size(20);
    g.bench_function("ours", |b| {
        b.iter(|| black_box(&store).scan(None).expect("scan"))
    });
    // The same store in a (sparse) file: page-cache reads, one pread per area.
    let file = out_file();
    img.write_to(&file).expect("write image");
    let file_store = Store::open(&file).expect("open file");
    g.bench_function("ours_from_file", |b| {
        b.iter(|| black_box(&file_store).scan(None).expect("scan"))
    });
    g.bench_function("anchor_copy_checksum", |b| {
        let mut buf = vec![0u8; 4096];
        b.iter(|| {
            let mut sum = 0u64;
            for &(off, len) in &areas {
                let piece = &mut buf[..len];
                img.read_exact_at(piece, off).expect("read");
                for w in piece.chunks_exact(8) {
                    sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().expect("8")));
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn out_file() -> std::fs::File {
    // tmpfs when there is one, so the comparison is about CPU and copies, not the disk.
    tempfile::tempfile_in("/dev/shm")
        .or_else(|_| tempfile::tempfile())
        .expect("tempfile")
}

fn bench_export(c: &mut Criterion) {
    const ORIGIN: usize = 64 << 20;
    let origin: Vec<u8> = (0..ORIGIN).map(|i| (i % 251) as u8 | 1).collect();
    let chunks = (ORIGIN / 4096) as u64;
    let mut w = StoreWriter::new(8, (chunks / 4 + 64) * 4096).expect("writer");
    let data = vec![0x5au8; 4096];
    for i in 0..chunks / 4 {
        w.push((i * 4 + 1) % chunks, &data).expect("push");
    }
    let cow = w.finish();
    let snap = SnapshotReader::open(&origin[..], &cow).expect("open");
    let out = out_file();
    let anchor_out = out_file();

    let mut g = c.benchmark_group("export_64m");
    g.throughput(Throughput::Bytes(ORIGIN as u64));
    g.sample_size(10);
    g.bench_function("ours", |b| {
        b.iter(|| export(&snap, &out, &ExportOptions::default(), |_, _| {}).expect("export"))
    });
    // What `dmsnap cow export -o OUT --force` does: a temporary file next to OUT, renamed
    // over it when complete.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let out_path = dir.path().join("out.img");
    g.bench_function("ours_output_rename", |b| {
        b.iter(|| {
            let out = Output::create(&out_path, &[], Overwrite::Replace).expect("output");
            export_to(&snap, out, &ExportOptions::default(), |_, _| {}).expect("export")
        })
    });
    g.bench_function("anchor_plain_copy", |b| {
        let mut buf = vec![0u8; 1 << 20];
        b.iter(|| {
            anchor_out.set_len(0).expect("truncate");
            for off in (0..ORIGIN).step_by(1 << 20) {
                origin.read_exact_at(&mut buf, off as u64).expect("read");
                anchor_out.write_all_at(&buf, off as u64).expect("write");
            }
            anchor_out.sync_all().expect("sync");
        })
    });
    g.finish();
}

criterion_group!(benches, bench_scan, bench_export);
criterion_main!(benches);
