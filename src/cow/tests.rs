//! Unit tests: hand-built fixtures for the header, table and usage; writer -> reader round
//! trips; export; merge with crash simulation.

use std::ops::ControlFlow;
use std::os::unix::fs::FileExt as _;

use proptest::prelude::*;

use super::export::{ExportOptions, export};
use super::merge::{MergeOptions, merge};
use super::reader::{OpenOptions, ReadAtCursor, SnapshotReader};
use super::writer::{SparseImage, StoreWriter};
use super::*;
use crate::targets::SnapshotStatus;

//------------------------------------------

/// A device image of `size` bytes with `parts` placed at their byte offsets.
fn image(size: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
    let mut img = vec![0u8; size];
    for &(off, bytes) in parts {
        img[off..off + bytes.len()].copy_from_slice(bytes);
    }
    img
}

#[rustfmt::skip]
const HEADER_4K: [u8; 16] = [
    0x53, 0x6e, 0x41, 0x70, // magic "SnAp" = 0x70416e53
    0x01, 0x00, 0x00, 0x00, // valid = 1
    0x01, 0x00, 0x00, 0x00, // version = 1
    0x08, 0x00, 0x00, 0x00, // chunk_size = 8 sectors (4 KiB)
];

#[rustfmt::skip]
const AREA0_THREE: [u8; 64] = [
    // entry 0: origin chunk 5 -> COW chunk 2
    0x05, 0, 0, 0, 0, 0, 0, 0,    0x02, 0, 0, 0, 0, 0, 0, 0,
    // entry 1: origin chunk 0x100 -> COW chunk 3
    0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0,
    // entry 2: origin chunk 0 -> COW chunk 4
    0x00, 0, 0, 0, 0, 0, 0, 0,    0x04, 0, 0, 0, 0, 0, 0, 0,
    // entry 3: new_chunk 0 = end of table (old_chunk is ignored)
    0x07, 0, 0, 0, 0, 0, 0, 0,    0x00, 0, 0, 0, 0, 0, 0, 0,
];

/// 64 KiB COW (16 chunks of 4 KiB): header, area 0 at byte 0x1000 with three entries.
fn three_entry_store() -> Vec<u8> {
    image(64 << 10, &[(0, &HEADER_4K), (0x1000, &AREA0_THREE)])
}

fn entries<R: ReadAt>(store: &Store<R>) -> Vec<Result<Entry>> {
    store.exceptions(None).collect()
}

fn exc(old_chunk: u64, new_chunk: u64) -> Exception {
    Exception {
        old_chunk,
        new_chunk,
    }
}

//------------------------------------------
// Header

#[test]
fn header_fixture_parses() {
    assert_eq!(
        Header::parse(&HEADER_4K).unwrap(),
        HeaderState::Persistent(Header {
            valid: 1,
            version: 1,
            chunk_sectors: 8
        })
    );
    assert_eq!(Header::new(8).to_bytes(), HEADER_4K);
}

#[test]
fn header_zero_magic_is_fresh() {
    // Only the magic decides: a zero magic with junk after it is still fresh.
    let mut raw = [0u8; 16];
    raw[12] = 0x33;
    assert_eq!(Header::parse(&raw).unwrap(), HeaderState::Fresh);
}

#[test]
fn header_errors() {
    let mut raw = HEADER_4K;
    raw[0] = 0x54;
    assert!(matches!(
        Header::parse(&raw),
        Err(Error::BadMagic { magic: 0x70416e54 })
    ));

    let mut raw = HEADER_4K;
    raw[8] = 2;
    assert!(matches!(
        Header::parse(&raw),
        Err(Error::BadVersion { version: 2 })
    ));

    for bad in [0u32, 3, 24, 1 << 22] {
        let mut raw = HEADER_4K;
        raw[12..16].copy_from_slice(&bad.to_le_bytes());
        match Header::parse(&raw) {
            Err(Error::BadChunkSize { chunk_sectors, .. }) => assert_eq!(chunk_sectors, bad),
            other => panic!("chunk {bad}: {other:?}"),
        }
    }
    for good in [1u32, 8, 1024, 1 << 21] {
        let mut raw = HEADER_4K;
        raw[12..16].copy_from_slice(&good.to_le_bytes());
        assert!(Header::parse(&raw).is_ok(), "chunk {good}");
    }
}

#[test]
fn invalid_header_still_parses() {
    let mut raw = HEADER_4K;
    raw[4] = 0; // valid = 0
    let HeaderState::Persistent(h) = Header::parse(&raw).unwrap() else {
        panic!("not persistent")
    };
    assert!(!h.is_valid());
}

#[test]
fn store_too_small() {
    // 12 bytes: no room for the header.
    assert!(matches!(
        Store::open(&[0u8; 12][..]),
        Err(Error::TooSmall { needed: 16, .. })
    ));
    // A 4 KiB-chunk header on a 6 KiB device: no room for area 0.
    let img = image(6 << 10, &[(0, &HEADER_4K)]);
    assert!(matches!(
        Store::open(&img[..]),
        Err(Error::TooSmall { needed: 8192, .. })
    ));
    // Exactly two chunks is enough.
    let img = image(8 << 10, &[(0, &HEADER_4K)]);
    assert_eq!(
        Store::open(&img[..]).unwrap().scan(None).unwrap(),
        TableEnd::EMPTY
    );
}

#[test]
fn geometry_matches_design_note() {
    let g = Geometry::new(8, 1 << 30).unwrap();
    assert_eq!(g.exceptions_per_area(), 256);
    assert_eq!(g.stride(), 257);
    assert_eq!(g.area_chunk(0), Some(1));
    assert_eq!(g.area_chunk(1).map(|c| c * 4096), Some(0x102000));
    assert_eq!(g.area_chunk(2).map(|c| c * 4096), Some(0x203000));
    let g = Geometry::new(16, 1 << 30).unwrap();
    assert_eq!(g.area_chunk(1).map(|c| c * 8192), Some(0x404000));
    assert_eq!(g.area_chunk(2).map(|c| c * 8192), Some(0x806000));
    assert!(g.is_metadata_chunk(0) && g.is_metadata_chunk(1) && g.is_metadata_chunk(514));
    assert!(!g.is_metadata_chunk(2) && !g.is_metadata_chunk(513));
}

//------------------------------------------
// Exception table and usage

#[test]
fn three_entries_and_usage() {
    let img = three_entry_store();
    let store = Store::open(&img[..]).unwrap();
    let got: Vec<Entry> = entries(&store).into_iter().map(Result::unwrap).collect();
    assert_eq!(
        got,
        vec![
            Entry {
                area: 0,
                index: 0,
                exception: exc(5, 2)
            },
            Entry {
                area: 0,
                index: 1,
                exception: exc(0x100, 3)
            },
            Entry {
                area: 0,
                index: 2,
                exception: exc(0, 4)
            },
        ]
    );
    let end = store.scan(None).unwrap();
    assert_eq!(
        end,
        TableEnd {
            current_area: 0,
            committed: 3,
            exceptions: 3,
            next_free: 5
        }
    );
    // next_free 5 * 8 = 40 allocated; 64 KiB = 128 sectors; header + area 0 = 16.
    assert_eq!(store.usage().unwrap().to_string(), "40/128 16");
    let status = store.kernel_status().unwrap();
    assert_eq!(status, SnapshotStatus::Active(store.usage().unwrap()));
    assert_eq!(status.to_string(), "40/128 16");
    // One scan gives the same figures.
    let summary = store.summary().unwrap();
    assert_eq!(summary.kernel_status(), Some(status));
    assert_eq!(summary.metadata_areas(), 1);
    assert_eq!(summary.end.exceptions, 3);
}

#[test]
fn empty_store_usage_is_two_chunks() {
    let img = image(1 << 20, &[(0, &HEADER_4K)]);
    let store = Store::open(&img[..]).unwrap();
    let u = store.usage().unwrap();
    assert_eq!(u.to_string(), "16/2048 16");
    assert!(u.merge_progress().done);
}

#[test]
fn writer_matches_hand_fixture() {
    let mut w = StoreWriter::new(8, 64 << 10).unwrap();
    assert_eq!(w.push(5, &[]).unwrap(), 2);
    assert_eq!(w.push(0x100, &[]).unwrap(), 3);
    assert_eq!(w.push(0, &[]).unwrap(), 4);
    let mut expected = three_entry_store();
    // The fixture's junk old_chunk after the end marker is not something the writer makes.
    expected[0x1000 + 48] = 0;
    assert_eq!(w.to_vec(), expected);
}

/// Area 1 of a 4 KiB-chunk store: 256 entries fill area 0 (data chunks 2..=257), chunk
/// 258 is area 1, and the next data chunks are 259, 260, 261.
#[test]
fn multi_area_store() {
    let mut w = StoreWriter::new(8, 4 << 20).unwrap();
    for old in 0..256 {
        w.push(1000 + old, &[]).unwrap();
    }
    assert_eq!(w.next_free(), 259, "chunk 258 is area 1");
    for old in 0..3 {
        w.push(old, &[]).unwrap();
    }
    let img = w.to_vec();

    // Area 1 is at byte 0x102000; its first entry: old 0 -> new 259.
    #[rustfmt::skip]
    let area1_first: [u8; 16] = [
        0x00, 0, 0, 0, 0, 0, 0, 0, // old_chunk 0
        0x03, 0x01, 0, 0, 0, 0, 0, 0, // new_chunk 259
    ];
    assert_eq!(&img[0x102000..0x102010], &area1_first);
    // The last entry of area 0 (index 255): old 1255 -> new 257.
    let mut last = [0u8; 16];
    last[..8].copy_from_slice(&1255u64.to_le_bytes());
    last[8..].copy_from_slice(&257u64.to_le_bytes());
    assert_eq!(&img[0x1000 + 255 * 16..0x1000 + 256 * 16], &last);

    let store = Store::open(&img[..]).unwrap();
    let all: Vec<Entry> = entries(&store).into_iter().map(Result::unwrap).collect();
    assert_eq!(all.len(), 259);
    assert_eq!(
        all[256],
        Entry {
            area: 1,
            index: 0,
            exception: exc(0, 259)
        }
    );
    let end = store.scan(None).unwrap();
    assert_eq!(
        end,
        TableEnd {
            current_area: 1,
            committed: 3,
            exceptions: 259,
            next_free: 262
        }
    );
    // 262 * 8 allocated; (1 + 2) * 8 metadata; 4 MiB = 8192 sectors.
    assert_eq!(store.usage().unwrap().to_string(), "2096/8192 24");
}

/// Exactly one full area: the kernel reads the zeroed area 1 and stops there.
#[test]
fn exactly_full_area() {
    let mut w = StoreWriter::new(8, 4 << 20).unwrap();
    for old in 0..256 {
        w.push(old, &[]).unwrap();
    }
    let store_img = w.to_vec();
    let store = Store::open(&store_img[..]).unwrap();
    let end = store.scan(None).unwrap();
    // next_free = 257 + 1 = 258, a metadata slot, so 259.
    assert_eq!(
        end,
        TableEnd {
            current_area: 1,
            committed: 0,
            exceptions: 256,
            next_free: 259
        }
    );
    assert_eq!(store.usage().unwrap().to_string(), "2072/8192 24");
}

/// A COW exactly filled with data chunks: the writer then refuses, as the kernel does.
#[test]
fn exactly_full_store() {
    // 10 chunks of 4 KiB: header, area 0, data chunks 2..=9.
    let mut w = StoreWriter::new(8, 40 << 10).unwrap();
    for old in 0..8 {
        w.push(old, &[]).unwrap();
    }
    assert!(matches!(w.push(8, &[]), Err(Error::Writer(_))));
    let img = w.to_vec();
    let store = Store::open(&img[..]).unwrap();
    assert_eq!(store.usage().unwrap().to_string(), "80/80 16");
}

/// A full last area whose successor lies past the device end ends the table.
#[test]
fn next_area_past_device_end_ends_table() {
    // 512-byte chunks: 32 entries per area, stride 33. 34 chunks: area 1 (chunk 34) is
    // past the end.
    let mut w = StoreWriter::new(1, 34 * 512).unwrap();
    for old in 0..32 {
        w.push(old, &[]).unwrap();
    }
    let img = w.to_vec();
    let store = Store::open(&img[..]).unwrap();
    let end = store.scan(None).unwrap();
    assert_eq!(end.exceptions, 32);
    assert_eq!(end.current_area, 1);
    assert_eq!(end.committed, 0);
}

fn corrupt_at(img: &[u8], origin: Option<u64>) -> Error {
    let store = Store::open(img).unwrap();
    let mut it = store.exceptions(origin);
    let err = loop {
        match it.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("no error"),
        }
    };
    // The iterator is fused after an error and has no end.
    assert!(it.next().is_none());
    assert!(it.end().is_none());
    err
}

/// Overwrite entry `index` of area 0 of the three-entry store.
fn with_entry(index: usize, old: u64, new: u64) -> Vec<u8> {
    let mut img = three_entry_store();
    let at = 0x1000 + index * 16;
    img[at..at + 8].copy_from_slice(&old.to_le_bytes());
    img[at + 8..at + 16].copy_from_slice(&new.to_le_bytes());
    img
}

#[test]
fn corrupt_new_chunk_beyond_cow() {
    let err = corrupt_at(&with_entry(1, 9, 16), None);
    assert!(
        matches!(
            err,
            Error::Corrupt {
                area: 0,
                entry: 1,
                offset: 0x1010,
                kind: CorruptKind::NewChunkBeyondCow {
                    new_chunk: 16,
                    cow_chunks: 16
                }
            }
        ),
        "{err:?}"
    );
    // The last whole chunk is fine.
    assert!(
        Store::open(&with_entry(1, 9, 15)[..])
            .unwrap()
            .scan(None)
            .is_ok()
    );
}

#[test]
fn corrupt_new_chunk_is_metadata() {
    let err = corrupt_at(&with_entry(2, 9, 1), None);
    assert!(
        matches!(
            err,
            Error::Corrupt {
                entry: 2,
                offset: 0x1020,
                kind: CorruptKind::NewChunkIsMetadata { new_chunk: 1 },
                ..
            }
        ),
        "{err:?}"
    );
    // Area 1's chunk (258) on a store large enough to have it.
    let mut img = StoreWriter::build(8, 2 << 20, &[(1, None)])
        .unwrap()
        .to_vec();
    img[0x1000 + 8..0x1000 + 16].copy_from_slice(&258u64.to_le_bytes());
    let err = corrupt_at(&img, None);
    assert!(matches!(
        err,
        Error::Corrupt {
            kind: CorruptKind::NewChunkIsMetadata { new_chunk: 258 },
            ..
        }
    ));
}

#[test]
fn corrupt_new_chunk_reused() {
    let err = corrupt_at(&with_entry(2, 9, 2), None);
    assert!(
        matches!(
            err,
            Error::Corrupt {
                area: 0,
                entry: 2,
                offset: 0x1020,
                kind: CorruptKind::NewChunkReused { new_chunk: 2 }
            }
        ),
        "{err:?}"
    );
}

#[test]
fn corrupt_old_chunk_beyond_origin() {
    let img = three_entry_store();
    // Origin of 0x100 chunks of 4 KiB: old chunk 0x100 (entry 1) is one past its end.
    let err = corrupt_at(&img, Some(0x100 * 4096));
    assert!(
        matches!(
            err,
            Error::Corrupt {
                entry: 1,
                kind: CorruptKind::OldChunkBeyondOrigin {
                    old_chunk: 0x100,
                    origin_chunks: 0x100
                },
                ..
            }
        ),
        "{err:?}"
    );
    // One more byte of origin makes a partial chunk 0x100, which is fine.
    let store = Store::open(&img[..]).unwrap();
    assert!(store.scan(Some(0x100 * 4096 + 1)).is_ok());
    // Without an origin size nothing is checked.
    assert!(store.scan(None).is_ok());
}

#[test]
fn holes_in_allocation_are_accepted() {
    // After a crash the kernel may leave unused chunks; new chunks need not increase.
    let img = StoreWriter::build(8, 1 << 20, &[(1, Some(7)), (2, Some(3)), (3, None)])
        .unwrap()
        .to_vec();
    let store = Store::open(&img[..]).unwrap();
    let end = store.scan(None).unwrap();
    assert_eq!(end.exceptions, 3);
    assert_eq!(end.next_free, 9); // max new chunk (8) + 1
}

#[test]
fn io_error_carries_offset() {
    /// A source that fails every read past `limit`.
    struct Failing(Vec<u8>, u64);
    impl ReadAt for Failing {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            if offset + buf.len() as u64 > self.1 {
                return Err(std::io::Error::other("injected"));
            }
            self.0.read_exact_at(buf, offset)
        }
        fn size(&self) -> std::io::Result<u64> {
            self.0.size()
        }
    }
    let src = Failing(three_entry_store(), 4096);
    let store = Store::open(src).unwrap();
    let err = store.scan(None).unwrap_err();
    assert!(matches!(err, Error::Io { offset: 4096, .. }), "{err:?}");
}

//------------------------------------------
// Reader

fn origin_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 1).collect()
}

#[test]
fn fresh_store_reads_as_origin() {
    let cow = vec![0u8; 1 << 20];
    let origin = origin_pattern(100_000);
    let snap = SnapshotReader::open(&origin[..], &cow[..]).unwrap();
    assert_eq!(snap.state(), HeaderState::Fresh);
    let mut all = vec![0u8; origin.len()];
    snap.read_at(&mut all, 0).unwrap();
    assert_eq!(all, origin);
    let store = Store::open(&cow[..]).unwrap();
    assert!(matches!(store.usage(), Err(Error::Fresh)));
    assert_eq!(store.usage_fresh(8).unwrap().to_string(), "16/2048 16");
}

#[test]
fn invalid_store_refused_unless_forced() {
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(1, &[0xee; 4096]).unwrap();
    w.set_invalid();
    let cow = w.to_vec();
    let origin = origin_pattern(16 << 10);
    assert!(matches!(
        SnapshotReader::open(&origin[..], &cow[..]),
        Err(Error::Invalidated)
    ));
    let snap = SnapshotReader::open_with(
        &origin[..],
        &cow[..],
        OpenOptions {
            force_invalid: true,
        },
    )
    .unwrap();
    let mut b = [0u8; 1];
    snap.read_at(&mut b, 4096).unwrap();
    assert_eq!(b[0], 0xee);
    let store = Store::open(&cow[..]).unwrap();
    assert_eq!(store.kernel_status().unwrap(), SnapshotStatus::Invalid);
    assert_eq!(store.kernel_status().unwrap().to_string(), "Invalid");
    // The summary still reads the table, and says the same.
    let summary = store.summary().unwrap();
    assert_eq!(summary.kernel_status(), Some(SnapshotStatus::Invalid));
    assert!(summary.usage.is_some());
}

#[test]
fn duplicate_old_chunk_refused() {
    let cow = StoreWriter::build(8, 1 << 20, &[(3, None), (4, None), (3, None)])
        .unwrap()
        .to_vec();
    let origin = vec![0u8; 64 << 10];
    assert!(matches!(
        SnapshotReader::open(&origin[..], &cow[..]),
        Err(Error::DuplicateOldChunk {
            old_chunk: 3,
            first_new: 2,
            second_new: 4
        })
    ));
}

#[test]
fn reader_out_of_range_and_cursor() {
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(1, &[5u8; 4096]).unwrap();
    let cow = w.finish();
    let origin = origin_pattern(3 * 4096 + 100); // partial last chunk
    let snap = SnapshotReader::open(&origin[..], &cow).unwrap();
    let mut b = [0u8; 2];
    assert!(matches!(
        snap.read_at(&mut b, 3 * 4096 + 99),
        Err(Error::OutOfRange { .. })
    ));
    let mut cur = ReadAtCursor::new(snap);
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut cur, &mut all).unwrap();
    let mut expected = origin.clone();
    expected[4096..8192].fill(5);
    assert_eq!(all, expected);
    std::io::Seek::seek(&mut cur, std::io::SeekFrom::End(-101)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut cur, &mut b).unwrap();
    assert_eq!(b[0], origin[3 * 4096 - 1]);
    assert!(std::io::Seek::seek(&mut cur, std::io::SeekFrom::Current(-100_000)).is_err());
}

/// Model: the origin with every exception's chunk replaced by its data (clipped).
fn model(origin: &[u8], cb: usize, data: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = origin.to_vec();
    for (old, bytes) in data {
        let start = *old as usize * cb;
        let end = (start + cb).min(out.len());
        out[start..end].copy_from_slice(&bytes[..end - start]);
    }
    out
}

/// A store for `olds` with chunk-sized data derived from each old chunk and a seed.
fn build_store(
    chunk_sectors: u32,
    olds: &[u64],
    seed: u8,
    slack: u64,
) -> (SparseImage, Vec<(u64, Vec<u8>)>) {
    let cb = u64::from(chunk_sectors) * 512;
    let epa = cb / 16;
    let n = olds.len() as u64;
    let chunks = 2 + n + n / epa + 1 + slack;
    let mut w = StoreWriter::new(chunk_sectors, chunks * cb).unwrap();
    let mut data = Vec::new();
    for &old in olds {
        let bytes: Vec<u8> = (0..cb)
            .map(|i| (old as u8).wrapping_mul(7) ^ (i as u8) ^ seed | 0x80)
            .collect();
        w.push(old, &bytes).unwrap();
        data.push((old, bytes));
    }
    (w.finish(), data)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writer_reader_round_trip(
        chunk_shift in 0u32..7,
        origin_chunks in 1u64..80,
        tail in 0u64..4096,
        picks in proptest::collection::vec(any::<u64>(), 0..80),
        seed in any::<u8>(),
        slack in 0u64..5,
        reads in proptest::collection::vec((any::<u64>(), 0usize..20000), 0..8),
    ) {
        let chunk_sectors = 1u32 << chunk_shift;
        let cb = u64::from(chunk_sectors) * 512;
        let origin_len = (origin_chunks - 1) * cb + 1 + tail % cb;
        let mut olds: Vec<u64> = picks.iter().map(|p| p % origin_chunks).collect();
        let mut seen = std::collections::HashSet::new();
        olds.retain(|o| seen.insert(*o));
        let (cow, data) = build_store(chunk_sectors, &olds, seed, slack);
        let origin = origin_pattern(origin_len as usize);
        let expected = model(&origin, cb as usize, &data);

        let snap = SnapshotReader::open(&origin[..], &cow).unwrap();
        prop_assert_eq!(snap.exceptions(), olds.len());
        let mut all = vec![0u8; origin.len()];
        snap.read_at(&mut all, 0).unwrap();
        prop_assert_eq!(&all, &expected);
        for (off, len) in reads {
            let off = off % origin_len;
            let len = len.min((origin_len - off) as usize);
            let mut part = vec![0u8; len];
            snap.read_at(&mut part, off).unwrap();
            prop_assert_eq!(&part[..], &expected[off as usize..off as usize + len]);
        }
        // Usage: next_free is one past the last allocated chunk.
        let store = Store::open(&cow).unwrap();
        let end = store.scan(Some(origin_len)).unwrap();
        prop_assert_eq!(end.exceptions, olds.len() as u64);
    }

    /// The per-entry metadata check (with its cached data run) agrees with the definition.
    #[test]
    fn metadata_check_matches_definition(news in proptest::collection::vec(2u64..400, 1..40)) {
        // 512-byte chunks: stride 33, metadata chunks 1, 34, 67, ...
        let mut seen = std::collections::HashSet::new();
        let news: Vec<u64> = news.into_iter().filter(|n| seen.insert(*n)).collect();
        let list: Vec<(u64, Option<u64>)> = news.iter().enumerate().map(|(i, &n)| (i as u64, Some(n))).collect();
        let img = StoreWriter::build(1, 400 * 512, &list).unwrap().to_vec();
        let store = Store::open(&img[..]).unwrap();
        let geo = store.geometry().unwrap();
        let first_meta = news.iter().position(|&n| geo.is_metadata_chunk(n));
        // Entries past the first area are only read if area 0 is full; keep to area 0.
        let first_meta = first_meta.filter(|&i| i < 32);
        let got: Vec<_> = store.exceptions(None).take(32).collect();
        match first_meta {
            Some(i) => {
                prop_assert!(got[..i].iter().all(Result::is_ok));
                let is_meta_err = matches!(
                    got[i],
                    Err(Error::Corrupt { kind: CorruptKind::NewChunkIsMetadata { .. }, .. })
                );
                prop_assert!(is_meta_err);
            }
            None => prop_assert!(got.iter().all(Result::is_ok)),
        }
    }

    /// `finish()` (a buffer at a time) and `next()` (an entry at a time) agree on every
    /// table, valid or corrupt: same end, or the same first error.
    #[test]
    fn finish_agrees_with_next(
        entries in proptest::collection::vec((0u64..90, 0u64..100), 0..80),
        origin in proptest::option::of(1u64..90 * 512),
    ) {
        // 512-byte chunks (32 entries per area), 90 chunks: area 2 (chunk 67) exists.
        let list: Vec<(u64, Option<u64>)> = entries.iter().map(|&(o, n)| (o, Some(n))).collect();
        let img = StoreWriter::build(1, 90 * 512, &list).unwrap().to_vec();
        let store = Store::open(&img[..]).unwrap();
        let mut walked = Vec::new();
        let by_finish = format!("{:?}", store.exceptions(origin).walk(|e| walked.push(e)));
        let mut it = store.exceptions(origin);
        let mut nexted = Vec::new();
        let by_next = loop {
            match it.next() {
                Some(Ok(e)) => nexted.push(e.exception),
                Some(Err(e)) => break format!("{:?}", Err::<TableEnd, _>(e)),
                None => break format!("{:?}", it.end().ok_or(Error::Fresh)),
            }
        };
        prop_assert_eq!(by_finish, by_next);
        prop_assert_eq!(walked, nexted);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 0u32..4) {
        let mut img = bytes;
        // Give half the cases a real header so the table walk runs on garbage entries.
        if chunk > 0 && img.len() >= 16 {
            img[..16].copy_from_slice(&Header::new(1 << (chunk - 1)).to_bytes());
        }
        if let Ok(store) = Store::open(&img[..]) {
            let _ = store.usage();
            let _ = store.scan(Some(1 << 20));
            let _ = SnapshotReader::open(&[0u8; 8192][..], &img[..]);
        }
    }
}

//------------------------------------------
// Export

#[test]
fn export_keeps_holes_and_content() {
    // 8 MiB origin, zero except one region; two exceptions, one of them all zeros.
    let mut origin = vec![0u8; 8 << 20];
    origin[3 << 20..(3 << 20) + 5000].fill(0x42);
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(10, &[0x17; 4096]).unwrap();
    w.push(768, &[0u8; 4096]).unwrap(); // overwrites the start of the 0x42 region with zeros
    let cow = w.finish();
    let snap = SnapshotReader::open(&origin[..], &cow).unwrap();
    let out = tempfile::tempfile().unwrap();
    out.write_all_at(&[0xff; 100], 7 << 20).unwrap(); // stale content must not survive
    let mut calls = 0u64;
    let mut last = 0;
    let report = export(&snap, &out, &ExportOptions::default(), |done, total| {
        calls += 1;
        last = done;
        assert_eq!(total, 8 << 20);
    })
    .unwrap();
    assert_eq!(report.bytes, 8 << 20);
    assert_eq!(last, 8 << 20);
    assert_eq!(calls, 8);
    // Only the non-zero pages are written: chunk 10, and the 0x42 region minus the page
    // that exception 768 zeroed (5000 bytes from 3 MiB span pages 768 and 769).
    assert_eq!(report.written, 2 * 4096);
    let mut got = vec![0u8; 8 << 20];
    std::os::unix::fs::FileExt::read_exact_at(&out, &mut got, 0).unwrap();
    let mut expected = origin.clone();
    expected[10 * 4096..11 * 4096].fill(0x17);
    expected[768 * 4096..769 * 4096].fill(0);
    assert_eq!(got, expected);
    assert_eq!(out.metadata().unwrap().len(), 8 << 20);
    // The file is sparse: far fewer 512-byte blocks than its size.
    use std::os::unix::fs::MetadataExt;
    assert!(out.metadata().unwrap().blocks() * 512 < 4 << 20);
}

#[test]
fn export_without_sparse_writes_everything() {
    let src = vec![0u8; 3 << 20];
    let out = tempfile::tempfile().unwrap();
    let opts = ExportOptions {
        sparse: false,
        ..ExportOptions::default()
    };
    let report = export(&src[..], &out, &opts, |_, _| {}).unwrap();
    assert_eq!(report.written, 3 << 20);
}

//------------------------------------------
// Merge

fn temp_with(bytes: &[u8]) -> std::fs::File {
    let f = tempfile::tempfile().unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
    f
}

fn read_all(f: &std::fs::File) -> Vec<u8> {
    let len = f.metadata().unwrap().len() as usize;
    let mut v = vec![0u8; len];
    std::os::unix::fs::FileExt::read_exact_at(f, &mut v, 0).unwrap();
    v
}

fn snapshot_bytes(origin: &[u8], cow: &[u8]) -> Vec<u8> {
    let snap = SnapshotReader::open(origin, cow).unwrap();
    let mut v = vec![0u8; origin.len()];
    snap.read_at(&mut v, 0).unwrap();
    v
}

/// 512-byte chunks (32 entries per area), 100 exceptions over 4 areas, odd origin tail.
fn merge_case() -> (Vec<u8>, Vec<u8>) {
    let origin = origin_pattern(300 * 512 + 77);
    let olds: Vec<u64> = (0..100).map(|i| (i * 37 + 5) % 301).collect();
    let (cow, _) = build_store(1, &olds, 3, 2);
    (origin, cow.to_vec())
}

fn go_on(_: &merge::MergeProgress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn merge_round_trip() {
    let (origin, cow) = merge_case();
    let expected = snapshot_bytes(&origin, &cow);
    assert_ne!(expected, origin);
    let (o, c) = (temp_with(&origin), temp_with(&cow));
    let opts = MergeOptions {
        batch_bytes: 7 * 512,
        ..MergeOptions::default()
    };
    let report = merge(&o, &c, &opts, go_on).unwrap();
    assert!(report.completed);
    assert_eq!(report.merged, 100);
    // 4 areas of 32, 32, 32, 4 entries, batches of at most 7 within an area.
    assert_eq!(report.batches, 1 + 3 * 5);
    assert_eq!(read_all(&o), expected);
    // The store is left empty and valid, as after a kernel merge: usage 2c/total 2c.
    let cow_after = read_all(&c);
    let store = Store::open(&cow_after[..]).unwrap();
    assert!(store.header().unwrap().is_valid());
    assert_eq!(
        store.usage().unwrap().to_string(),
        format!("2/{} 2", cow.len() / 512)
    );
    // Merging again is a no-op.
    let again = merge(&o, &c, &opts, go_on).unwrap();
    assert_eq!(again.merged, 0);
    assert_eq!(read_all(&o), expected);
}

#[test]
fn merge_stopped_midway_then_rerun() {
    let (origin, cow) = merge_case();
    let expected = snapshot_bytes(&origin, &cow);
    for stop_after in [1u64, 2, 5, 9] {
        let (o, c) = (temp_with(&origin), temp_with(&cow));
        let opts = MergeOptions {
            batch_bytes: 7 * 512,
            ..MergeOptions::default()
        };
        let first = merge(&o, &c, &opts, |p| {
            if p.batches == stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert!(!first.completed);
        assert_eq!(first.batches, stop_after);
        // Between runs the remaining table is a prefix and the snapshot view is unchanged.
        let mid = snapshot_bytes(&read_all(&o), &read_all(&c));
        assert_eq!(mid, expected, "stop after {stop_after}");
        assert_eq!(
            Store::open(&read_all(&c)[..])
                .unwrap()
                .scan(None)
                .unwrap()
                .exceptions,
            100 - first.merged
        );
        let second = merge(&o, &c, &opts, go_on).unwrap();
        assert!(second.completed);
        assert_eq!(first.merged + second.merged, 100);
        assert_eq!(read_all(&o), expected);
    }
}

/// A crash after the origin writes but before the table was zeroed: the rerun copies the
/// same chunks again and gets the same result.
#[test]
fn merge_crash_before_zeroing_is_idempotent() {
    let (origin, cow) = merge_case();
    let expected = snapshot_bytes(&origin, &cow);
    let (o, c) = (temp_with(&origin), temp_with(&cow));
    merge(&o, &c, &MergeOptions::default(), go_on).unwrap();
    // Put the untouched table back: as if no zeroing write ever reached the disk.
    c.write_all_at(&cow, 0).unwrap();
    let report = merge(&o, &c, &MergeOptions::default(), go_on).unwrap();
    assert_eq!(report.merged, 100);
    assert_eq!(read_all(&o), expected);
}

/// A COW file that counts the reads of metadata areas (512-byte chunks: area k is chunk
/// 1 + 33k).
struct CountingCow {
    f: std::fs::File,
    area_reads: std::cell::Cell<u32>,
}

impl ReadAt for CountingCow {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if (offset / 512) % 33 == 1 {
            self.area_reads.set(self.area_reads.get() + 1);
        }
        ReadAt::read_exact_at(&self.f, buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        ReadAt::size(&self.f)
    }
}

impl merge::WriteAt for CountingCow {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        merge::WriteAt::write_all_at(&self.f, buf, offset)
    }

    fn sync(&self) -> std::io::Result<()> {
        merge::WriteAt::sync(&self.f)
    }
}

#[test]
fn merge_plan_reads_the_table_once_and_writes_nothing_until_run() {
    let (origin, cow) = merge_case();
    let expected = snapshot_bytes(&origin, &cow);
    let o = temp_with(&origin);
    let c = CountingCow {
        f: temp_with(&cow),
        area_reads: std::cell::Cell::new(0),
    };
    let opts = MergeOptions {
        batch_bytes: 7 * 512,
        ..MergeOptions::default()
    };
    let plan = merge::MergePlan::new(&o, &c, &opts).unwrap();
    assert_eq!(plan.exceptions(), 100);
    assert_eq!(plan.chunk_bytes(), 512);
    assert_eq!(plan.bytes(), 100 * 512);
    assert!(plan.is_valid());
    // 100 entries in areas 0..=3, one read each; nothing written yet.
    assert_eq!(c.area_reads.get(), 4);
    assert_eq!(read_all(&o), origin);
    assert_eq!(read_all(&c.f), cow);
    let mut seen = Vec::new();
    let report = plan
        .run(|p| {
            seen.push((p.merged_bytes(), p.total_bytes(), p.percent()));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(report.merged, 100);
    assert_eq!(read_all(&o), expected);
    // The run reused the plan's table: no metadata area was read again.
    assert_eq!(c.area_reads.get(), 4);
    assert_eq!(seen.first(), Some(&(4 * 512, 100 * 512, 4.0)));
    assert_eq!(seen.last(), Some(&(100 * 512, 100 * 512, 100.0)));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn merge_plan_of_a_fresh_store_is_empty_and_of_an_invalid_one_refused() {
    let origin = vec![0u8; 64 << 10];
    let o = temp_with(&origin);
    let fresh = temp_with(&vec![0u8; 1 << 20]);
    let plan = merge::MergePlan::new(&o, &fresh, &MergeOptions::default()).unwrap();
    assert_eq!(
        (plan.exceptions(), plan.bytes(), plan.is_valid()),
        (0, 0, true)
    );
    let report = plan.run(go_on).unwrap();
    assert_eq!((report.merged, report.completed), (0, true));

    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(1, &[1; 4096]).unwrap();
    w.set_invalid();
    let c = temp_with(&w.to_vec());
    assert!(matches!(
        merge::MergePlan::new(&o, &c, &MergeOptions::default()),
        Err(Error::Invalidated)
    ));
    let forced = MergeOptions {
        force_invalid: true,
        ..MergeOptions::default()
    };
    let plan = merge::MergePlan::new(&o, &c, &forced).unwrap();
    assert!(!plan.is_valid());
    assert_eq!(plan.bytes(), 4096);
    assert_eq!(read_all(&o), origin, "nothing written by a plan");
}

#[test]
fn summary_of_a_fresh_store() {
    let img = vec![0u8; 1 << 20];
    let store = Store::open(&img[..]).unwrap();
    let s = store.summary().unwrap();
    assert_eq!(
        (s.size, s.header, s.geometry, s.usage),
        (1 << 20, None, None, None)
    );
    assert_eq!(s.end, TableEnd::EMPTY);
    assert_eq!(s.kernel_status(), None);
    assert!(matches!(store.kernel_status(), Err(Error::Fresh)));
}

#[test]
fn merge_refuses_invalid_store() {
    let mut w = StoreWriter::new(8, 1 << 20).unwrap();
    w.push(1, &[1; 4096]).unwrap();
    w.set_invalid();
    let cow = w.to_vec();
    let origin = vec![0u8; 64 << 10];
    let (o, c) = (temp_with(&origin), temp_with(&cow));
    assert!(matches!(
        merge(&o, &c, &MergeOptions::default(), go_on),
        Err(Error::Invalidated)
    ));
    assert_eq!(read_all(&o), origin, "nothing written");
}

#[test]
fn merge_refuses_old_chunk_past_origin() {
    let cow = StoreWriter::build(8, 1 << 20, &[(100, None)])
        .unwrap()
        .to_vec();
    let origin = vec![0u8; 64 << 10];
    let (o, c) = (temp_with(&origin), temp_with(&cow));
    // The store is fine: the origin is smaller than the snapshot's (chunk 100 of 4 KiB).
    let err = merge(&o, &c, &MergeOptions::default(), go_on).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OriginTooSmall {
                origin_size: 65536,
                needed: 410112,
                old_chunk: 100
            }
        ),
        "{err:?}"
    );
    assert_eq!(read_all(&o), origin);
}

//------------------------------------------
// Fixtures made by the kernel (tests/fixtures/cow, see make.sh there)

struct Fixture {
    name: &'static str,
    origin: Vec<u8>,
    cow: Vec<u8>,
    /// key=value lines of NAME.txt.
    meta: std::collections::HashMap<String, String>,
}

impl Fixture {
    fn load(name: &'static str) -> Fixture {
        use std::io::Read as _;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cow");
        let gunzip = |file: String| {
            let f = std::fs::File::open(dir.join(&file)).unwrap();
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
            v
        };
        let text = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
        let meta = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Fixture {
            name,
            origin: gunzip(format!("{name}.origin.gz")),
            cow: gunzip(format!("{name}.cow.gz")),
            meta,
        }
    }

    fn get(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    /// The info part of a recorded `dmsetup status` line (`0 LEN snapshot INFO`).
    fn status(&self, key: &str) -> String {
        self.get(key).splitn(4, ' ').nth(3).unwrap().to_owned()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Export through a real file, as `dmsnap cow export` does, and return the bytes.
fn export_file(origin: &[u8], cow: &[u8]) -> Vec<u8> {
    let snap = SnapshotReader::open(origin, cow).unwrap();
    let out = tempfile::tempfile().unwrap();
    export(&snap, &out, &ExportOptions::default(), |_, _| {}).unwrap();
    read_all(&out)
}

const VALID_FIXTURES: [&str; 7] = [
    "c8",
    "c16",
    "c128",
    "c1024",
    "multiarea",
    "full",
    "midmerge",
];

#[test]
fn fixtures_inspect_matches_kernel_status() {
    for name in VALID_FIXTURES.into_iter().chain(["overflow"]) {
        let fx = Fixture::load(name);
        assert_eq!(fx.cow.len().to_string(), fx.get("cow_bytes"), "{name}");
        let store = Store::open(&fx.cow[..]).unwrap();
        assert_eq!(
            u64::from(store.header().unwrap().chunk_sectors).to_string(),
            fx.get("chunk"),
            "{name}"
        );
        // Offline figures equal what the kernel computed when it loaded this COW...
        assert_eq!(
            store.kernel_status().unwrap().to_string(),
            fx.status("status_reload"),
            "{name}"
        );
        // ...and, except while merging, what it showed live.
        if name != "midmerge" {
            assert_eq!(
                store.kernel_status().unwrap(),
                fx.status("status_live").parse::<SnapshotStatus>().unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn fixtures_export_reproduces_kernel_snapshot() {
    for name in VALID_FIXTURES {
        let fx = Fixture::load(name);
        assert_eq!(
            fx.origin.len().to_string(),
            fx.get("origin_bytes"),
            "{name}"
        );
        let bytes = export_file(&fx.origin, &fx.cow);
        assert_eq!(sha256_hex(&bytes), fx.get("snapshot_sha256"), "{name}");
        // The snapshot differs from the origin (the test wrote to both).
        assert_ne!(bytes, fx.origin, "{name}");
    }
}

#[test]
fn fixture_shapes() {
    let areas = |name| {
        let fx = Fixture::load(name);
        let store = Store::open(&fx.cow[..]).unwrap();
        store.scan(Some(fx.origin.len() as u64)).unwrap()
    };
    // 500 + 23 origin writes, and 89 of the 177 snapshot writes hit chunks without an
    // exception yet: 612 exceptions, areas 0 and 1 full (256 each), 100 in area 2.
    let m = areas("multiarea");
    assert_eq!((m.exceptions, m.current_area, m.committed), (612, 2, 100));
    let f = areas("full");
    assert_eq!((f.exceptions, f.next_free), (8, 10));
    // The kernel merged from the tail: what is left is a prefix of area 0.
    let mm = areas("midmerge");
    assert_eq!(mm.current_area, 0);
    assert!(mm.exceptions > 0 && mm.exceptions < 1000, "{mm:?}");
}

#[test]
fn fixture_overflow_is_refused_unless_forced() {
    let fx = Fixture::load("overflow");
    assert!(matches!(
        SnapshotReader::open(&fx.origin[..], &fx.cow[..]),
        Err(Error::Invalidated)
    ));
    let forced = SnapshotReader::open_with(
        &fx.origin[..],
        &fx.cow[..],
        OpenOptions {
            force_invalid: true,
        },
    )
    .unwrap();
    // The 8 chunks that fitted are there; the 9th never reached the COW.
    assert_eq!(forced.exceptions(), 8);
    let mut all = vec![0u8; fx.origin.len()];
    forced.read_at(&mut all, 0).unwrap();
    assert_ne!(sha256_hex(&all), fx.get("snapshot_sha256"));
}

#[test]
fn fixtures_offline_merge_gives_the_snapshot() {
    for name in ["c8", "c1024", "multiarea", "midmerge"] {
        let fx = Fixture::load(name);
        let (o, c) = (temp_with(&fx.origin), temp_with(&fx.cow));
        let report = merge(&o, &c, &MergeOptions::default(), go_on).unwrap();
        assert!(report.completed, "{name}");
        assert_eq!(
            sha256_hex(&read_all(&o)),
            fx.get("snapshot_sha256"),
            "{name}"
        );
        // Empty afterwards, as the kernel leaves a merged store: 2c/total 2c.
        let store_after = read_all(&c);
        let store = Store::open(&store_after[..]).unwrap();
        let c2 = 2 * u64::from(store.header().unwrap().chunk_sectors);
        assert_eq!(
            store.kernel_status().unwrap().to_string(),
            format!("{c2}/{} {c2}", fx.cow.len() / 512),
            "{name}"
        );
    }
}

#[test]
fn one_usage_model_for_the_offline_and_the_kernel_figures() {
    let image = StoreWriter::build(8, 1 << 20, &[(3, None), (4, None), (9, None)]).unwrap();
    let store = Store::open(&image).unwrap();
    let offline = store.usage().unwrap();
    // What the kernel's status line would say parses back to the very same value.
    let parsed: SnapshotStatus = store.kernel_status().unwrap().to_string().parse().unwrap();
    assert_eq!(parsed, SnapshotStatus::Active(offline));
    assert_eq!(offline.to_string(), "40/2048 16");
    assert_eq!(offline.data(), crate::units::Sectors(24));
    // One percent rule: exact, None for nothing to be a share of.
    assert_eq!(offline.used_percent(), Some(40.0 * 100.0 / 2048.0));
    assert_eq!(crate::targets::percent(0, 0), None);
    assert_eq!(crate::targets::percent(5, 5), Some(100.0));
    let zero = crate::targets::SnapshotUsage {
        total: crate::units::Sectors(0),
        ..offline
    };
    assert_eq!(zero.used_percent(), None);
    // Merge progress in percent agrees with the fraction, and an empty start is done.
    let mid = crate::targets::SnapshotUsage {
        allocated: crate::units::Sectors(28),
        ..offline
    };
    let p = mid.merge_progress();
    assert_eq!(p.fraction_done(&offline), 0.5);
    assert_eq!(p.percent_done(&offline), 50.0);
    let empty = store.usage_fresh(8).unwrap();
    assert_eq!(empty.merge_progress().percent_done(&empty), 100.0);
    assert_eq!(p.percent_done(&empty), 100.0);
}

//------------------------------------------
// Memory bounded by the exceptions present (issue 15).

/// 4 KiB chunks of a store claiming `bytes`.
fn chunks_of(bytes: u64) -> u64 {
    bytes / 4096
}

#[test]
fn chunk_set_memory_follows_the_chunks_inserted_not_the_device_size() {
    use super::exceptions::ChunkSet;
    // 15 TiB of COW claimed, one chunk near its end: one page, not a 500 MB bitmap.
    let cap = chunks_of(15 << 40);
    let mut set = ChunkSet::new(cap);
    assert!(set.insert(cap - 3));
    assert!(!set.insert(cap - 3), "the second insert is a reuse");
    assert!(!set.insert(cap), "beyond the capacity");
    assert!(set.heap_bytes() <= 1024, "{} bytes", set.heap_bytes());
    // 16 TiB (2^32 chunks) and more: no overflow, no abort.
    let mut huge = ChunkSet::new(u64::MAX / 2);
    assert!(huge.insert(u64::MAX / 2 - 1));
    assert!(huge.heap_bytes() <= 1024);
    // A kernel-made store: chunks in order, one bit each in the dense part (a chunk first
    // put in a page is still found once the bitmap has grown over it).
    let mut dense = ChunkSet::new(cap);
    assert!(dense.insert(600_000));
    for c in 2..1_000_000u64 {
        assert_eq!(dense.insert(c), c != 600_000, "chunk {c}");
    }
    assert!(!dense.insert(600_000));
    let bitmap = 1_000_000 / 8;
    assert!(
        dense.heap_bytes() <= 2 * bitmap + 1024,
        "{} bytes",
        dense.heap_bytes()
    );
}

#[test]
fn one_exception_on_a_huge_sparse_store_reads_without_a_huge_allocation() {
    // 15 and 16 TiB stores, each with one exception in its last data chunk (a hostile but
    // well-formed table): scanned and read like any other, the reused-chunk check intact.
    for tib in [15u64, 16] {
        let size = tib << 40;
        let last = chunks_of(size) - 1;
        let image = StoreWriter::build(8, size, &[(5, Some(last))]).expect("store");
        let store = Store::open(&image).expect("opens");
        assert_eq!(store.scan(None).expect("scans").exceptions, 1, "{tib} TiB");
        let origin = vec![1u8; 64 << 10];
        let snap = SnapshotReader::open(&origin[..], &image).expect("reader");
        assert_eq!(snap.table(), &[(5, last)]);
        let reused =
            StoreWriter::build(8, size, &[(5, Some(last)), (6, Some(last))]).expect("store");
        let err = Store::open(&reused).expect("opens").scan(None).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { kind: CorruptKind::NewChunkReused { new_chunk }, .. } if new_chunk == last),
            "{err:?}"
        );
    }
}
