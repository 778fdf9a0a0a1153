//! The two-phase commit (`lvm::write::commit`): placement, ring wrap, every area, ignored
//! areas, refusals, and crash consistency at every write (recorded writes replayed up to
//! each point, with torn writes and lost unflushed writes) and with failing writes.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use super::sample::THIN_STRIPED;
use super::writer::{mda_header, pv_image};
use crate::io::{MemDevice, ReadAt, WriteAt};
use crate::lvm::label::DiskLocn;
use crate::lvm::mda::{self, MdaContent, RAW_LOCN_IGNORED, RawLocn};
use crate::lvm::scan::scan;
use crate::lvm::write::commit::{
    self, CommitError, MdaTarget, Phase, PlaceError, Placement, TextProblem, max_text_size, place,
};
use crate::lvm::{Error, MdaErrorKind};

const PV0: &str = "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG";
const PV1: &str = "HHHHHHIIIIJJJJKKKKLLLLMMMMNNNNNN";
const LEN: usize = 4 << 20;
/// lvm2's default area: 4 KiB to 1 MiB.
const MDA1: DiskLocn = DiskLocn {
    offset: 4096,
    size: (1 << 20) - 4096,
};
/// A second area at the end of the device (`--pvmetadatacopies 2`).
const MDA2: DiskLocn = DiskLocn {
    offset: (LEN as u64) - (1 << 20),
    size: 1 << 20,
};

/// The sample VG at `seqno`, with a description of `pad` bytes to vary the size; NUL
/// terminated, as written on disk.
fn text(seqno: u32, pad: usize) -> Vec<u8> {
    let mut t = THIN_STRIPED
        .replacen("seqno = 12", &format!("seqno = {seqno}"), 1)
        .into_bytes();
    t.extend_from_slice(b"description = \"");
    t.extend(std::iter::repeat_n(b'x', pad));
    t.extend_from_slice(b"\"\n\0");
    t
}

fn body(t: &[u8]) -> &[u8] {
    &t[..t.len() - 1]
}

/// One PV with the given areas, each holding `t` (NUL stripped: pv_image adds it).
fn pv(id: &str, areas: &[DiskLocn], t: &[u8]) -> MemDevice {
    let mdas: Vec<_> = areas
        .iter()
        .map(|a| (a.offset, a.size, Some(body(t))))
        .collect();
    MemDevice::from_vec(pv_image(LEN, id, &mdas))
}

fn committed_text<R: ReadAt + ?Sized>(dev: &R, area: DiskLocn) -> Result<Vec<u8>, Error> {
    match mda::read_metadata(dev, area)?.1 {
        MdaContent::Text(t) => Ok(t.text.to_vec()),
        other => panic!("expected text, got {other:?}"),
    }
}

fn targets(list: &[(usize, DiskLocn)]) -> Vec<MdaTarget> {
    list.iter()
        .map(|&(device, area)| MdaTarget { device, area })
        .collect()
}

#[test]
fn placement_follows_lvm2() {
    let size = 65536;
    // Fresh area: right after the header.
    assert_eq!(
        place(size, None, 100),
        Ok(Placement {
            offset: 512,
            size: 100,
            wrap: 0
        })
    );
    // After the old copy, rounded up to 512.
    assert_eq!(place(size, Some((512, 512)), 100).unwrap().offset, 1024);
    assert_eq!(place(size, Some((512, 513)), 100).unwrap().offset, 1536);
    // Old copy ends less than 512 bytes before the end: back to the start.
    assert_eq!(place(size, Some((64512, 600)), 100).unwrap().offset, 512);
    // An old copy that wraps: the new one follows its wrapped part.
    assert_eq!(place(size, Some((65024, 1000)), 100).unwrap().offset, 1024);
    assert_eq!(place(size, Some((65024, 100)), 100).unwrap().offset, 512);
    // The rounded start lands in the last sector: back to the start.
    assert_eq!(place(size, Some((64000, 1025)), 100).unwrap().offset, 512);
    assert_eq!(
        place(size, Some((64000, 500)), 2000),
        Ok(Placement {
            offset: 64512,
            size: 2000,
            wrap: 976
        })
    );
    // A copy crossing the end wraps.
    let p = place(size, Some((40000, 2000)), 30000).unwrap();
    assert_eq!(p.offset, 42496);
    assert_eq!(p.wrap, 42496 + 30000 - 65536);
    // lvm2's limit.
    assert_eq!(max_text_size(size), (65536 - 512) / 2 - 512);
    assert_eq!(
        place(size, None, max_text_size(size) + 1),
        Err(PlaceError::TooLarge {
            max: max_text_size(size)
        })
    );
    // An old copy bigger than the limit (not one lvm2 would write) leaves no room.
    assert_eq!(
        place(size, Some((512, 62000)), 4000),
        Err(PlaceError::Overlap)
    );
}

#[test]
fn hundreds_of_commits_wrap_the_ring() {
    // A small area wraps often; the default one still wraps a few times.
    for (area, pads, rounds) in [
        (
            DiskLocn {
                offset: 4096,
                size: 64 << 10,
            },
            [0usize, 3000, 9000, 20000, 27000],
            400u32,
        ),
        (MDA1, [0, 30000, 90000, 200000, 500000 - 2400], 300),
    ] {
        let dev = pv(PV0, &[area], &text(1, 0));
        let devs = [&dev];
        let t = [MdaTarget { device: 0, area }];
        let (mut wraps, mut wrapped_copies, mut last_offset) = (0, 0, 0);
        for seqno in 2..rounds + 2 {
            let new = text(seqno, pads[seqno as usize % pads.len()]);
            let old = committed_text(&dev, area).unwrap();
            let pre = commit::precommit(&devs, &t, "my-vg", &new).unwrap();
            // Precommitted: readers still see the old copy.
            assert_eq!(committed_text(&dev, area).unwrap(), old);
            let locn = pre.areas()[0].locn;
            if pre.areas()[0].wrapped {
                wrapped_copies += 1;
            }
            if locn.offset < last_offset {
                wraps += 1;
            }
            last_offset = locn.offset;
            assert_eq!(locn.offset % 512, 0);
            let report = pre.commit(&devs).unwrap();
            assert_eq!(report.seqno, seqno);
            assert!(report.failed.is_empty());
            assert_eq!(committed_text(&dev, area).unwrap(), body(&new));
            let (h, _) = mda::read_metadata(&dev, area).unwrap();
            assert_eq!(h.raw_locns.len(), 1, "slot 1 cleared after commit");
            let r = scan(&[&dev]);
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            assert_eq!(r.vgs[0].vg.seqno, u64::from(seqno));
        }
        assert!(wraps >= 5, "{wraps} wraps");
        assert!(
            wrapped_copies >= 2,
            "{wrapped_copies} copies crossed the end"
        );
    }
}

#[test]
fn identical_bytes_on_two_devices_and_two_areas_per_device() {
    let old = text(1, 100);
    // pv0 has two areas (start and end), pv1 one; the areas' old copies sit at different
    // places, so the new copies do too.
    let a = pv(PV0, &[MDA1, MDA2], &old);
    let b = pv(PV1, &[MDA1], &text(1, 100));
    // Move pv1's committed copy elsewhere first (one commit at another size).
    commit::precommit(&[&b], &targets(&[(0, MDA1)]), "my-vg", &text(1, 7000))
        .unwrap()
        .commit(&[&b])
        .unwrap();
    let devs = [&a, &b];
    let t = targets(&[(0, MDA1), (0, MDA2), (1, MDA1)]);
    let new = text(2, 5000);
    let pre = commit::precommit(&devs, &t, "my-vg", &new).unwrap();
    assert_eq!(pre.areas().len(), 3);
    assert_ne!(pre.areas()[0].locn.offset, pre.areas()[2].locn.offset);
    let report = pre.commit(&devs).unwrap();
    assert_eq!(report.committed.len(), 3);
    for (d, area) in [(&a, MDA1), (&a, MDA2), (&b, MDA1)] {
        let (h, c) = mda::read_metadata(d, area).unwrap();
        let MdaContent::Text(t) = c else {
            panic!("{c:?}")
        };
        assert_eq!(&*t.text, body(&new));
        assert_eq!(h.raw_locns[0].checksum, report.committed[0].locn.checksum);
        // The bytes after the text up to the sector end are zero.
        let end = area.offset + t.locn.offset + t.locn.size;
        let mut pad = vec![0xffu8; (end.next_multiple_of(512) - end) as usize];
        d.read_exact_at(&mut pad, end).unwrap();
        assert!(pad.iter().all(|&x| x == 0));
    }
    let r = scan(&[&a, &b]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.vgs[0].vg.seqno, 2);
    assert!(!r.vgs[0].inconsistent);
}

#[test]
fn too_large_is_refused_with_lvm2s_message_and_writes_nothing() {
    let area = DiskLocn {
        offset: 4096,
        size: 16 << 10,
    };
    let dev = pv(PV0, &[area], &text(1, 0));
    let before = dev.to_vec();
    let max = max_text_size(area.size);
    assert_eq!(max, 7424);
    let big = text(2, 6000);
    let err =
        commit::precommit(&[&dev], &[MdaTarget { device: 0, area }], "my-vg", &big).unwrap_err();
    match &err {
        CommitError::TooLarge {
            vg,
            seqno,
            device,
            size,
            max: m,
            ..
        } => {
            assert_eq!((vg.as_str(), *seqno, *device, *m), ("my-vg", 2, 0, max));
            assert_eq!(*size, big.len() as u64);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "VG my-vg 2 metadata on device 0 ({} bytes) exceeds maximum metadata size (7424 bytes)",
            big.len()
        )
    );
    assert!(dev.to_vec() == before, "nothing written");
    // Exactly the limit fits.
    let fit = text(2, 6000 - (big.len() - 7424));
    assert_eq!(fit.len(), 7424);
    commit::precommit(&[&dev], &[MdaTarget { device: 0, area }], "my-vg", &fit)
        .unwrap()
        .commit(&[&dev])
        .unwrap();
    assert_eq!(committed_text(&dev, area).unwrap(), body(&fit));
}

#[test]
fn too_large_on_one_area_writes_no_area() {
    let small = DiskLocn {
        offset: MDA2.offset,
        size: 8192,
    };
    let dev = pv(PV0, &[MDA1, small], &text(1, 0));
    let before = dev.to_vec();
    let err = commit::precommit(
        &[&dev],
        &targets(&[(0, MDA1), (0, small)]),
        "my-vg",
        &text(2, 4000),
    )
    .unwrap_err();
    assert!(matches!(err, CommitError::TooLarge { area, .. } if area == small.offset));
    assert!(dev.to_vec() == before);
}

#[test]
fn ignored_area_is_left_alone() {
    let old = text(1, 0);
    let dev = pv(PV0, &[MDA1, MDA2], &old);
    // Flag the second area ignored, as `pvchange --metadataignore y` does.
    let (h, _) = mda::read_metadata(&dev, MDA2).unwrap();
    let mut slot = h.raw_locns[0];
    slot.flags |= RAW_LOCN_IGNORED;
    dev.write_all_at(&mda_header(MDA2.offset, MDA2.size, &[slot]), MDA2.offset)
        .unwrap();
    let area2 = |d: &MemDevice| {
        let v = d.to_vec();
        v[MDA2.offset as usize..(MDA2.offset + MDA2.size) as usize].to_vec()
    };
    let before = area2(&dev);
    let t = targets(&[(0, MDA2), (0, MDA1)]);
    let new = text(2, 300);
    let pre = commit::precommit(&[&dev], &t, "my-vg", &new).unwrap();
    assert_eq!(pre.ignored(), &t[..1]);
    let report = pre.commit(&[&dev]).unwrap();
    assert_eq!(report.ignored, &t[..1]);
    assert_eq!(report.committed.len(), 1);
    assert!(area2(&dev) == before, "ignored area untouched");
    assert!(matches!(
        mda::read_metadata(&dev, MDA2).unwrap().1,
        MdaContent::Ignored
    ));
    assert_eq!(committed_text(&dev, MDA1).unwrap(), body(&new));
    // Only ignored areas: nothing to write.
    let err = commit::precommit(&[&dev], &t[..1], "my-vg", &text(3, 0)).unwrap_err();
    assert!(matches!(err, CommitError::NoUsableArea { ref vg } if vg == "my-vg"));
}

#[test]
fn fresh_area_gets_its_first_copy() {
    let dev = MemDevice::new(LEN);
    commit::format_area(&dev, MDA1).unwrap();
    assert!(matches!(
        mda::read_metadata(&dev, MDA1).unwrap().1,
        MdaContent::Empty
    ));
    let new = text(1, 10);
    let pre = commit::precommit(&[&dev], &targets(&[(0, MDA1)]), "my-vg", &new).unwrap();
    assert_eq!(pre.areas()[0].locn.offset, 512);
    // Precommitted on a fresh area: still empty for readers.
    assert!(matches!(
        mda::read_metadata(&dev, MDA1).unwrap().1,
        MdaContent::Empty
    ));
    pre.commit(&[&dev]).unwrap();
    assert_eq!(committed_text(&dev, MDA1).unwrap(), body(&new));
}

#[test]
fn revert_clears_slot1_and_keeps_the_committed_copy() {
    let old = text(1, 0);
    let dev = pv(PV0, &[MDA1], &old);
    let hdr_before = {
        let mut b = [0u8; 512];
        dev.read_exact_at(&mut b, MDA1.offset).unwrap();
        b
    };
    let pre = commit::precommit(&[&dev], &targets(&[(0, MDA1)]), "my-vg", &text(2, 0)).unwrap();
    let (h, _) = mda::read_metadata(&dev, MDA1).unwrap();
    assert_eq!(h.raw_locns.len(), 2, "slot 1 set");
    assert_eq!(h.raw_locns[1], pre.areas()[0].locn);
    pre.revert(&[&dev]).unwrap();
    let mut after = [0u8; 512];
    dev.read_exact_at(&mut after, MDA1.offset).unwrap();
    assert_eq!(after, hdr_before, "header back to the committed state");
    assert_eq!(committed_text(&dev, MDA1).unwrap(), body(&old));
}

#[test]
fn refusals_are_typed_and_write_nothing() {
    let dev = pv(PV0, &[MDA1], &text(1, 0));
    let before = dev.to_vec();
    let t = targets(&[(0, MDA1)]);
    let bad_text = |t_: &[u8]| match commit::precommit(&[&dev], &t, "my-vg", t_) {
        Err(CommitError::BadText { problem, .. }) => problem,
        other => panic!("{other:?}"),
    };
    assert!(matches!(bad_text(b""), TextProblem::Empty));
    assert!(matches!(
        bad_text(body(&text(2, 0))),
        TextProblem::NoTrailingNul
    ));
    assert!(matches!(
        bad_text(b"my-vg {\0seqno = 2\n}\n\0"),
        TextProblem::InnerNul { at: 7 }
    ));
    assert!(matches!(
        bad_text(b"other {\nseqno = 2\n}\n\0"),
        TextProblem::WrongName
    ));
    assert!(matches!(
        bad_text(b"my-vgx {\nseqno = 2\n}\n\0"),
        TextProblem::WrongName
    ));
    assert!(matches!(
        bad_text(b"my-vg {\nseqno = \n}\n\0"),
        TextProblem::Parse(_)
    ));
    assert!(matches!(
        bad_text(b"my-vg {\nid = \"x\"\n}\n\0"),
        TextProblem::NoSeqno
    ));
    assert!(matches!(
        bad_text(b"my-vg {\nseqno = -1\n}\n\0"),
        TextProblem::NoSeqno
    ));
    // Device index out of range, duplicate area.
    let err = commit::precommit(&[&dev], &targets(&[(1, MDA1)]), "my-vg", &text(2, 0));
    assert!(matches!(
        err,
        Err(CommitError::NoSuchDevice {
            device: 1,
            devices: 1,
            ..
        })
    ));
    let err = commit::precommit(
        &[&dev],
        &targets(&[(0, MDA1), (0, MDA1)]),
        "my-vg",
        &text(2, 0),
    );
    assert!(matches!(
        err,
        Err(CommitError::DuplicateArea {
            device: 0,
            area: 4096
        })
    ));
    // The label lists a smaller area than the header claims.
    let small = DiskLocn {
        offset: MDA1.offset,
        size: 4096,
    };
    let err = commit::precommit(&[&dev], &targets(&[(0, small)]), "my-vg", &text(2, 0));
    assert!(matches!(
        err,
        Err(CommitError::AreaSize {
            header_size: 1_044_480,
            label_size: 4096,
            ..
        })
    ));
    assert!(dev.to_vec() == before);
    // A header with a bad CRC.
    let mut img = before.clone();
    img[MDA1.offset as usize + 100] ^= 1;
    let dev = MemDevice::from_vec(img.clone());
    let err = commit::precommit(&[&dev], &t, "my-vg", &text(2, 0));
    assert!(matches!(
        err,
        Err(CommitError::BadArea {
            source: Error::Mda {
                kind: MdaErrorKind::HeaderChecksum { .. },
                ..
            },
            ..
        })
    ));
    assert!(dev.to_vec() == img);
    // A committed slot pointing outside the ring.
    let locn = RawLocn {
        offset: MDA1.size + 512,
        size: 100,
        checksum: 0,
        flags: 0,
    };
    let dev = MemDevice::from_vec(before.clone());
    dev.write_all_at(&mda_header(MDA1.offset, MDA1.size, &[locn]), MDA1.offset)
        .unwrap();
    let err = commit::precommit(&[&dev], &t, "my-vg", &text(2, 0));
    assert!(matches!(
        err,
        Err(CommitError::BadArea {
            source: Error::Mda {
                kind: MdaErrorKind::TextOutsideBuffer { .. },
                ..
            },
            ..
        })
    ));
    // An area running past the end of the device.
    let dev = MemDevice::new(8192);
    let area = DiskLocn {
        offset: 4096,
        size: 1 << 20,
    };
    dev.write_all_at(&mda_header(area.offset, area.size, &[]), area.offset)
        .unwrap();
    let err = commit::precommit(&[&dev], &targets(&[(0, area)]), "my-vg", &text(2, 0));
    assert!(matches!(
        err,
        Err(CommitError::AreaPastEnd {
            size: 1_048_576,
            device_size: 8192,
            ..
        })
    ));
}

#[test]
fn a_header_changed_behind_our_back_stops_the_commit() {
    let dev = pv(PV0, &[MDA1], &text(1, 0));
    let pre = commit::precommit(&[&dev], &targets(&[(0, MDA1)]), "my-vg", &text(2, 0)).unwrap();
    // Someone else commits seqno 5 in between (slot 1 cleared by their commit).
    let other = commit::precommit(&[&dev], &targets(&[(0, MDA1)]), "my-vg", &text(5, 0)).unwrap();
    other.commit(&[&dev]).unwrap();
    let err = pre.commit(&[&dev]).unwrap_err();
    assert!(matches!(
        err,
        CommitError::HeaderChanged {
            phase: Phase::Commit,
            ..
        }
    ));
    assert!(
        committed_text(&dev, MDA1)
            .unwrap()
            .windows(9)
            .any(|w| w == b"seqno = 5")
    );
}

// ---------------------------------------------------------------------------------------
// Crash consistency.

/// A write or a flush, as a device saw it.
#[derive(Clone, Debug)]
enum Op {
    Write { dev: usize, at: u64, data: Vec<u8> },
    Sync { dev: usize },
}

/// A device that records every write and flush into a shared log.
struct Recorder {
    dev: MemDevice,
    idx: usize,
    log: Rc<RefCell<Vec<Op>>>,
}

impl ReadAt for Recorder {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.dev.read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.dev.size()
    }
}

impl WriteAt for Recorder {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.dev.write_all_at(buf, offset)?;
        self.log.borrow_mut().push(Op::Write {
            dev: self.idx,
            at: offset,
            data: buf.to_vec(),
        });
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.log.borrow_mut().push(Op::Sync { dev: self.idx });
        Ok(())
    }
}

/// What a reader may see at a crash point: per area, the old or the new text; the scan
/// gives the VG at the old or the new seqno.
fn check_state(
    imgs: &[Vec<u8>],
    areas: &[(usize, DiskLocn)],
    old: &[u8],
    new: &[u8],
    what: &str,
) -> bool {
    let mut saw_new = false;
    for &(d, area) in areas {
        let got = committed_text(&imgs[d][..], area)
            .unwrap_or_else(|e| panic!("{what}: area {area:?} of device {d} unreadable: {e}"));
        assert!(
            got == body(old) || got == body(new),
            "{what}: area {area:?} of device {d} holds neither text"
        );
        saw_new |= got == body(new);
    }
    let devs: Vec<&[u8]> = imgs.iter().map(|i| &i[..]).collect();
    let r = scan(&devs);
    assert!(r.errors.is_empty(), "{what}: {:?}", r.errors);
    let seqno = r.vgs[0].vg.seqno;
    let want = if saw_new { 2 } else { 1 };
    assert_eq!(seqno, want, "{what}");
    saw_new
}

fn apply(imgs: &mut [Vec<u8>], op: &Op, sectors: Option<usize>) {
    if let Op::Write { dev, at, data } = op {
        let n = sectors.map_or(data.len(), |s| (s * 512).min(data.len()));
        imgs[*dev][*at as usize..*at as usize + n].copy_from_slice(&data[..n]);
    }
}

/// Record a precommit + commit of seqno 2 over seqno 1 on `areas`, then check every crash
/// point: after each op; each write torn at every sector boundary; and with any subset of
/// the writes since each device's last flush lost. Returns the number of states checked.
fn replay_every_point(areas: &[(usize, DiskLocn)], old_pad: usize, new_pad: usize) -> usize {
    let old = text(1, old_pad);
    let ndev = areas.iter().map(|a| a.0).max().unwrap() + 1;
    let ids = [PV0, PV1];
    let base: Vec<Vec<u8>> = (0..ndev)
        .map(|d| {
            let mine: Vec<DiskLocn> = areas.iter().filter(|a| a.0 == d).map(|a| a.1).collect();
            pv(ids[d], &mine, &old).into_inner()
        })
        .collect();
    // Move each copy near the end of its ring, so the new copy wraps.
    let log = Rc::new(RefCell::new(Vec::new()));
    let devs: Vec<Recorder> = base
        .iter()
        .enumerate()
        .map(|(idx, b)| Recorder {
            dev: MemDevice::from_vec(b.clone()),
            idx,
            log: log.clone(),
        })
        .collect();
    let new = text(2, new_pad);
    let t = targets(areas);
    let pre = commit::precommit(&devs, &t, "my-vg", &new).unwrap();
    pre.commit(&devs).unwrap();
    let ops = log.borrow().clone();
    let writes = ops.iter().filter(|o| matches!(o, Op::Write { .. })).count();
    let syncs = ops.len() - writes;
    assert!(syncs >= 3 * ndev, "a flush after each phase on each device");

    let mut checked = 0;
    let mut saw_new_at = None;
    for k in 0..=ops.len() {
        // Crash after op k-1: everything before is on disk.
        let mut imgs = base.clone();
        for op in &ops[..k] {
            apply(&mut imgs, op, None);
        }
        if check_state(&imgs, areas, &old, &new, &format!("after {k} ops")) {
            saw_new_at.get_or_insert(k);
        }
        checked += 1;
        // The next write torn at each sector boundary.
        if let Some(op @ Op::Write { data, .. }) = ops.get(k) {
            for s in 1..data.len().div_ceil(512) {
                let mut torn = imgs.clone();
                apply(&mut torn, op, Some(s));
                check_state(
                    &torn,
                    areas,
                    &old,
                    &new,
                    &format!("op {k} torn at sector {s}"),
                );
                checked += 1;
            }
        }
        // A volatile cache: any subset of the writes after each device's last flush lost.
        let mut last_sync = vec![0usize; ndev];
        for (i, op) in ops[..k].iter().enumerate() {
            if let Op::Sync { dev } = op {
                last_sync[*dev] = i + 1;
            }
        }
        let pending: Vec<usize> = (0..k)
            .filter(|&i| match &ops[i] {
                Op::Write { dev, .. } => i >= last_sync[*dev],
                Op::Sync { .. } => false,
            })
            .collect();
        assert!(pending.len() <= 10, "{} unflushed writes", pending.len());
        for mask in 0..(1u32 << pending.len()) {
            let mut imgs = base.clone();
            for (i, op) in ops[..k].iter().enumerate() {
                let lost = pending
                    .iter()
                    .position(|&p| p == i)
                    .is_some_and(|bit| mask & (1 << bit) != 0);
                if !lost {
                    apply(&mut imgs, op, None);
                }
            }
            check_state(
                &imgs,
                areas,
                &old,
                &new,
                &format!("after {k} ops, lost {mask:b}"),
            );
            checked += 1;
        }
    }
    // The switch is the last header writes, nothing earlier.
    let first_commit_write = ops.len() - (areas.len() + ndev);
    assert_eq!(saw_new_at, Some(first_commit_write + 1));
    checked
}

#[test]
fn every_crash_point_reads_old_or_new_one_area() {
    let n = replay_every_point(&[(0, MDA1)], 0, 3000);
    println!("one area: {n} crash states read");
    assert!(n > 20, "{n}");
}

#[test]
fn every_crash_point_reads_old_or_new_two_devices_three_areas() {
    let n = replay_every_point(&[(0, MDA1), (0, MDA2), (1, MDA1)], 1000, 20000);
    println!("three areas on two devices: {n} crash states read");
    assert!(n > 100, "{n}");
}

#[test]
fn every_crash_point_with_a_wrapping_copy() {
    // A small ring where the second copy crosses the end.
    let area = DiskLocn {
        offset: 4096,
        size: 12 << 10,
    };
    // The old copy at 512, then one after it, so that the next one crosses the end.
    let old = text(1, 2500);
    let new = text(2, 2000);
    let dev = pv(PV0, &[area], &old);
    let t = targets(&[(0, area)]);
    let mid = text(1, 2000);
    commit::precommit(&[&dev], &t, "my-vg", &mid)
        .unwrap()
        .commit(&[&dev])
        .unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let base = dev.into_inner();
    let rec = Recorder {
        dev: MemDevice::from_vec(base.clone()),
        idx: 0,
        log: log.clone(),
    };
    let pre = commit::precommit(&[&rec], &t, "my-vg", &new).unwrap();
    assert!(pre.areas()[0].wrapped, "{:?}", pre.areas());
    pre.commit(&[&rec]).unwrap();
    let ops = log.borrow().clone();
    for k in 0..=ops.len() {
        let mut img = vec![base.clone()];
        for op in &ops[..k] {
            apply(&mut img, op, None);
        }
        check_state(&img, &[(0, area)], &mid, &new, &format!("after {k} ops"));
    }
}

/// A device that fails its `k`-th write (optionally after writing its first `tear` sectors)
/// or its `k`-th flush.
struct Failing<'a> {
    dev: &'a MemDevice,
    writes: &'a Cell<usize>,
    syncs: &'a Cell<usize>,
    fail_write: Option<usize>,
    tear: usize,
    fail_sync: Option<usize>,
}

impl ReadAt for Failing<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.dev.read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.dev.size()
    }
}

impl WriteAt for Failing<'_> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.writes.get();
        self.writes.set(n + 1);
        if self.fail_write == Some(n) {
            let part = (self.tear * 512).min(buf.len());
            self.dev.write_all_at(&buf[..part], offset)?;
            return Err(io::Error::other("injected write failure"));
        }
        self.dev.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        let n = self.syncs.get();
        self.syncs.set(n + 1);
        if self.fail_sync == Some(n) {
            return Err(io::Error::other("injected flush failure"));
        }
        Ok(())
    }
}

#[test]
fn a_failing_write_or_flush_anywhere_leaves_old_or_new() {
    let old = text(1, 0);
    let new = text(2, 4000);
    let areas = [(0, MDA1), (0, MDA2)];
    let t = targets(&areas);
    // Writes: 2 texts, 2 precommit headers, 2 commit headers; flushes: 3.
    let mut cases = 0;
    for (fail_write, tear, fail_sync) in (0..6)
        .flat_map(|k| [(Some(k), 0), (Some(k), 1), (Some(k), 5)])
        .map(|(k, tear)| (k, tear, None))
        .chain((0..3).map(|k| (None, 0, Some(k))))
    {
        let dev = pv(PV0, &[MDA1, MDA2], &old);
        let (writes, syncs) = (Cell::new(0), Cell::new(0));
        let f = Failing {
            dev: &dev,
            writes: &writes,
            syncs: &syncs,
            fail_write,
            tear,
            fail_sync,
        };
        let devs = [&f];
        let outcome = commit::precommit(&devs, &t, "my-vg", &new).and_then(|p| p.commit(&devs));
        let what = format!("write {fail_write:?} tear {tear} sync {fail_sync:?}");
        let phase = match &outcome {
            Ok(report) => {
                // A commit header write failed on one area only: the other took it.
                assert_eq!(report.failed.len(), 1, "{what}");
                assert_eq!(report.failed[0].phase(), Some(Phase::Commit), "{what}");
                Phase::Commit
            }
            Err(e) => e.phase().unwrap_or_else(|| panic!("{what}: {e:?}")),
        };
        let expected = match (fail_write, fail_sync) {
            (Some(0 | 1), _) => Phase::WriteText,
            (Some(2 | 3), _) => Phase::Precommit,
            (Some(_), _) => Phase::Commit,
            (None, Some(0)) => Phase::SyncText,
            (None, Some(1)) => Phase::SyncPrecommit,
            (None, _) => Phase::SyncCommit,
        };
        assert_eq!(phase, expected, "{what}: {outcome:?}");
        let saw_new = check_state(&[dev.to_vec()], &areas, &old, &new, &what);
        // Before the commit phase nothing may be visible, and slot 1 is cleared again.
        if !matches!(expected, Phase::Commit | Phase::SyncCommit) {
            assert!(!saw_new, "{what}");
            for (_, a) in areas {
                let (h, _) = mda::read_metadata(&dev, a).unwrap();
                assert_eq!(h.raw_locns.len(), 1, "{what}: slot 1 reverted");
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 21);
}

/// A device that counts what is asked of it (reads with their sizes, size queries,
/// writes with their sizes, flushes).
struct Counting {
    dev: MemDevice,
    reads: RefCell<Vec<usize>>,
    sizes: Cell<usize>,
    writes: RefCell<Vec<usize>>,
    syncs: Cell<usize>,
}

impl Counting {
    fn new(dev: MemDevice) -> Counting {
        Counting {
            dev,
            reads: RefCell::new(Vec::new()),
            sizes: Cell::new(0),
            writes: RefCell::new(Vec::new()),
            syncs: Cell::new(0),
        }
    }

    fn reset(&self) {
        self.reads.borrow_mut().clear();
        self.sizes.set(0);
        self.writes.borrow_mut().clear();
        self.syncs.set(0);
    }
}

impl ReadAt for Counting {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.borrow_mut().push(buf.len());
        self.dev.read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.sizes.set(self.sizes.get() + 1);
        self.dev.size()
    }
}

impl WriteAt for Counting {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writes.borrow_mut().push(buf.len());
        self.dev.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.set(self.syncs.get() + 1);
        Ok(())
    }
}

/// The commit (what a live snapshot does with the origin suspended) is minimal: per area
/// one 512-byte read (the header compared with what the precommit wrote) and one 512-byte
/// write, no size query, one flush per device; and it still commits everywhere.
#[test]
fn the_commit_is_one_sector_read_and_write_per_area_and_one_flush_per_device() {
    let old = text(1, 100);
    let a = Counting::new(pv(PV0, &[MDA1, MDA2], &old));
    let b = Counting::new(pv(PV1, &[MDA1], &old));
    let devs = [&a, &b];
    let t = targets(&[(0, MDA1), (0, MDA2), (1, MDA1)]);
    let pre = commit::precommit(&devs, &t, "my-vg", &text(2, 3000)).unwrap();
    a.reset();
    b.reset();
    let report = pre.commit(&devs).unwrap();
    assert_eq!(report.committed.len(), 3);
    assert!(report.failed.is_empty());
    assert_eq!(*a.reads.borrow(), [512, 512]);
    assert_eq!(*a.writes.borrow(), [512, 512]);
    assert_eq!(*b.reads.borrow(), [512]);
    assert_eq!(*b.writes.borrow(), [512]);
    assert_eq!((a.sizes.get(), b.sizes.get()), (0, 0));
    assert_eq!((a.syncs.get(), b.syncs.get()), (1, 1));
    let r = scan(&[&a.dev, &b.dev]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.vgs[0].vg.seqno, 2);
    assert!(!r.vgs[0].inconsistent);
}
