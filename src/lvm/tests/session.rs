//! The writing session and operations on PV image files (no kernel): `VgSession`'s
//! refusals, lvcreate/lvremove without activation, seqno and identical text on every
//! area, nothing written when refused, a precommit dropped without commit.

use std::path::PathBuf;

use super::writer::pv_image;
use crate::lvm::label::DiskLocn;
use crate::lvm::model::{PhysicalVolume, VolumeGroup};
use crate::lvm::scan::{MdaOutcome, scan};
use crate::lvm::write::alloc::AllocError;
use crate::lvm::write::error::WriteError;
use crate::lvm::write::lock::LockDir;
use crate::lvm::write::ops::{self, LvCreate};
use crate::lvm::write::session::{VgSession, WriteOptions};
use crate::lvm::write::text::{TextHeader, disk_text};

const PV_IDS: [&str; 2] = [
    "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG",
    "HHHHHHIIIIJJJJKKKKLLLLMMMMNNNNNN",
];
const VG_ID: &str = "kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE";
const LEN: usize = 16 << 20;
const MDA: (u64, u64) = (4096, (1 << 20) - 4096);

/// A VG over `n` PVs of 16 MiB, 1 MiB extents (15 per PV), seqno 1, no LVs.
fn vg(n: usize) -> VolumeGroup {
    let mut vg = VolumeGroup::new("vg0", VG_ID.parse().unwrap(), 2048);
    vg.seqno = 1;
    for (i, id) in PV_IDS.iter().take(n).enumerate() {
        vg.pvs.push(PhysicalVolume {
            handle: format!("pv{i}"),
            id: id.parse().unwrap(),
            device_hint: Some(format!("/dev/loop{i}")),
            device_id_type: None,
            device_id: None,
            status: ["ALLOCATABLE".to_string()].into_iter().collect(),
            flags: Default::default(),
            tags: Vec::new(),
            dev_size: Some(LEN as u64 / 512),
            pe_start: 2048,
            pe_count: 15,
            ba_start: 0,
            ba_size: 0,
        });
    }
    vg
}

struct Images {
    dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
}

impl Images {
    /// One image per PV of `v`, each holding `texts[i]` (default: `v` printed).
    fn new(v: &VolumeGroup, texts: &[Option<Vec<u8>>]) -> Images {
        let dir = tempfile::tempdir().unwrap();
        let own = disk_text(v, &TextHeader::now("test"));
        let mut paths = Vec::new();
        for (i, id) in PV_IDS.iter().take(v.pvs.len()).enumerate() {
            let t = texts
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| own.clone());
            let img = pv_image(LEN, id, &[(MDA.0, MDA.1, Some(&t))]);
            let p = dir.path().join(format!("pv{i}.img"));
            std::fs::write(&p, img).unwrap();
            paths.push(p);
        }
        Images { dir, paths }
    }

    fn opts(&self) -> WriteOptions {
        let mut o = WriteOptions::new("test");
        o.devices = Some(self.paths.clone());
        o.lock_dir = LockDir::new(self.dir.path().join("lock"));
        o.backups = None;
        o
    }

    fn bytes(&self) -> Vec<Vec<u8>> {
        self.paths
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    /// The VG as scanned now, and every area's (seqno, text).
    fn read(&self) -> (VolumeGroup, Vec<(u64, Vec<u8>)>) {
        let files: Vec<std::fs::File> = self
            .paths
            .iter()
            .map(|p| std::fs::File::open(p).unwrap())
            .collect();
        let r = scan(&files);
        let areas = r
            .pvs
            .iter()
            .flat_map(|p| &p.mdas)
            .filter_map(|m| match &m.outcome {
                MdaOutcome::Text { seqno, text, .. } => Some((*seqno, text.text.to_vec())),
                _ => None,
            })
            .collect();
        (r.vgs[0].vg.clone(), areas)
    }
}

fn no_activate(size: &str) -> LvCreate {
    LvCreate {
        activate: false,
        zero: false,
        ..LvCreate::size(size).unwrap()
    }
}

#[test]
fn lvcreate_and_lvremove_commit_once_each_on_every_area() {
    let v = vg(2);
    let im = Images::new(&v, &[]);
    let o = im.opts();
    let made = ops::lvcreate("vg0", "a", &no_activate("3M"), &o).unwrap();
    assert_eq!((made.extents, made.notices.len()), (3, 0));
    let (got, areas) = im.read();
    assert_eq!(got.seqno, 2);
    assert_eq!(areas.len(), 2);
    assert!(areas.iter().all(|a| *a == areas[0]), "areas differ");
    let a = got.lv("a").unwrap();
    assert_eq!(a.le_count(), 3);
    assert!(a.creation_time.is_some() && a.creation_host.is_some());
    assert!(
        ["READ", "WRITE", "VISIBLE"]
            .iter()
            .all(|f| a.status.contains(*f))
    );
    // Rounded up to whole extents, with lvm2's notice.
    let made = ops::lvcreate("vg0", "b", &no_activate("2.5M"), &o).unwrap();
    assert_eq!(made.extents, 3);
    assert_eq!(
        made.notices,
        ["Rounding up size to full physical extent 3.00 MiB"]
    );
    // Striped over both PVs, rounded to the stripe count.
    let mut req = no_activate("3M");
    req.stripes = 2;
    let made = ops::lvcreate("vg0", "c", &req, &o).unwrap();
    assert_eq!(made.extents, 4);
    assert!(made.notices[0].contains("up to stripe boundary size 4.00 MiB (4 extents)"));
    let (got, _) = im.read();
    assert_eq!(got.seqno, 4);
    let c = got.lv("c").unwrap();
    assert!(matches!(
        &c.segments[0].kind,
        crate::lvm::model::SegmentKind::Striped { areas, stripe_size: 128 } if areas.len() == 2
    ));
    crate::lvm::write::alloc::check_layout(&got).unwrap();
    ops::lvremove("vg0", "a", &o).unwrap();
    let (got, areas) = im.read();
    assert_eq!(got.seqno, 5);
    assert!(got.lv("a").is_none() && got.lv("b").is_some());
    assert!(areas.iter().all(|a| a.0 == 5 && *a == areas[0]));
    // lvm2's lock file was used.
    assert!(im.dir.path().join("lock/V_vg0").exists());
}

#[test]
fn refusals_write_nothing() {
    let v = vg(2);
    let im = Images::new(&v, &[]);
    let o = im.opts();
    ops::lvcreate("vg0", "keep", &no_activate("4M"), &o).unwrap();
    let before = im.bytes();
    let err = ops::lvcreate("vg0", "keep", &no_activate("1M"), &o).unwrap_err();
    assert!(
        matches!(&err, WriteError::LvExists { lv, .. } if lv == "keep"),
        "{err}"
    );
    let err = ops::lvcreate("vg0", "big", &no_activate("100M"), &o).unwrap_err();
    assert!(
        matches!(
            &err,
            WriteError::Alloc(AllocError::VgFull {
                free: 26,
                required: 100,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("insufficient free space"), "{err}");
    for bad in ["snapshot0", "pvmove1", "x_tdata", "-a", "a b", ".."] {
        let err = ops::lvcreate("vg0", bad, &no_activate("1M"), &o).unwrap_err();
        assert!(matches!(err, WriteError::Name(_)), "{bad}: {err}");
    }
    let err = ops::lvremove("vg0", "nope", &o).unwrap_err();
    assert!(
        matches!(&err, WriteError::LvNotFound { lv, .. } if lv == "nope"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Failed to find logical volume \"vg0/nope\""
    );
    let err = ops::lvcreate("other", "x", &no_activate("1M"), &o).unwrap_err();
    assert!(
        matches!(&err, WriteError::VgNotFound { vg } if vg == "other"),
        "{err}"
    );
    let err = ops::vgremove("vg0", &o).unwrap_err();
    assert!(
        matches!(err, WriteError::VgNotEmpty { count: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("still contains 1 logical volume(s)")
    );
    let err = ops::lvcreate("vg0", "z", &no_activate("0"), &o).unwrap_err();
    assert!(matches!(err, WriteError::BadSize { .. }), "{err}");
    assert_eq!(im.bytes(), before, "a refused operation wrote");
}

fn open_err(v: &VolumeGroup, texts: &[Option<Vec<u8>>], devices: Option<usize>) -> WriteError {
    let im = Images::new(v, texts);
    let mut o = im.opts();
    if let Some(n) = devices {
        o.devices = Some(im.paths[..n].to_vec());
    }
    let before = im.bytes();
    let err = VgSession::open("vg0", &o).unwrap_err();
    assert_eq!(im.bytes(), before);
    err
}

#[test]
fn unsafe_vgs_are_refused() {
    let mut shared = vg(1);
    shared.lock_type = Some("sanlock".into());
    shared.lock_args = Some("1.0.0:lvmlock".into());
    let err = open_err(&shared, &[], None);
    assert!(
        matches!(&err, WriteError::LockType { lock_type, .. } if lock_type == "sanlock"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Cannot access VG vg0 with lock type sanlock that requires lvmlockd."
    );
    let mut foreign = vg(1);
    foreign.system_id = Some("otherhost".into());
    let err = open_err(&foreign, &[], None);
    assert!(
        matches!(&err, WriteError::ForeignSystemId { system_id, local: None, .. } if system_id == "otherhost"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Cannot access VG vg0 with system ID otherhost with unknown local system ID."
    );
    // One PV of two not given.
    let err = open_err(&vg(2), &[], Some(1));
    assert!(
        matches!(&err, WriteError::Partial { missing, .. } if missing.len() == 1 && missing[0].handle == "pv1"),
        "{err}"
    );
    // Same seqno, different text on the second PV.
    let v = vg(2);
    let mut other = v.clone();
    other.tags.push("different".into());
    let t = disk_text(&other, &TextHeader::now("other"));
    let err = open_err(&v, &[None, Some(t)], None);
    assert!(
        matches!(&err, WriteError::AreasDisagree { seqno: 1, areas, .. } if areas.len() == 1),
        "{err}"
    );
}

#[test]
fn a_precommit_without_commit_changes_nothing_readers_see() {
    let v = vg(2);
    let im = Images::new(&v, &[]);
    let o = im.opts();
    let (old, _) = im.read();
    {
        let mut s = VgSession::open("vg0", &o).unwrap();
        let mut new = s.vg().clone();
        new.tags.push("pending".into());
        s.precommit(new).unwrap();
        assert!(s.is_pending());
        // Dropped here: reverted.
    }
    let (got, areas) = im.read();
    assert_eq!(got, old);
    assert!(areas.iter().all(|a| a.0 == 1));
    // Slot 1 is clear again on every area.
    for p in &im.paths {
        let f = std::fs::File::open(p).unwrap();
        let h = crate::lvm::mda::read_mda_header(
            &f,
            DiskLocn {
                offset: MDA.0,
                size: MDA.1,
            },
        )
        .unwrap();
        assert_eq!(h.raw_locns.len(), 1, "{}", p.display());
    }
    // The next commit takes seqno 2.
    let mut s = VgSession::open("vg0", &o).unwrap();
    let mut new = s.vg().clone();
    new.tags.push("done".into());
    s.precommit(new).unwrap();
    s.commit().unwrap();
    drop(s);
    let (got, _) = im.read();
    assert_eq!(
        (got.seqno, got.tags.as_slice()),
        (2, &["done".to_string()][..])
    );
}

#[test]
fn pvcreate_to_pvremove_on_images() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("d{i}.img"));
            std::fs::write(&p, vec![0u8; 32 << 20]).unwrap();
            p
        })
        .collect();
    let mut o = WriteOptions::new("test");
    o.devices = Some(paths.clone());
    o.lock_dir = LockDir::new(dir.path().join("lock"));
    o.backups = None;
    let made = ops::pvcreate(&paths, false, &o).unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].pe_start, 2048);
    // A PV twice, or a PV already made: refused / fine.
    let err = ops::pvcreate(&[paths[0].clone(), paths[0].clone()], false, &o).unwrap_err();
    assert!(matches!(err, WriteError::DuplicateDevice { .. }), "{err}");
    let made = ops::vgcreate("vg1", &paths, None, false, &o).unwrap();
    assert_eq!(made.vg.seqno, 1);
    assert_eq!(
        made.vg.pvs.iter().map(|p| p.pe_count).collect::<Vec<_>>(),
        [7, 7]
    );
    let err = ops::vgcreate("vg1", &paths, None, false, &o).unwrap_err();
    assert!(matches!(err, WriteError::VgExists { .. }), "{err}");
    // Labels now say "in use".
    for p in &paths {
        let l = crate::lvm::label::read_label(&std::fs::File::open(p).unwrap()).unwrap();
        assert_eq!(
            l.extension.unwrap().flags & crate::lvm::label::PV_EXT_USED,
            1
        );
    }
    let err = ops::pvcreate(&paths[..1], true, &o).unwrap_err();
    assert!(
        matches!(&err, WriteError::PvInVg { vg, .. } if vg == "vg1"),
        "{err}"
    );
    let err = ops::pvremove(&paths[..1], false, &o).unwrap_err();
    assert!(
        err.to_string().contains("so please use vgreduce first"),
        "{err}"
    );
    ops::lvcreate("vg1", "l", &no_activate("8M"), &o).unwrap();
    let err = ops::vgremove("vg1", &o).unwrap_err();
    assert!(matches!(err, WriteError::VgNotEmpty { .. }), "{err}");
    ops::lvremove("vg1", "l", &o).unwrap();
    ops::vgremove("vg1", &o).unwrap();
    let files: Vec<std::fs::File> = paths
        .iter()
        .map(|p| std::fs::File::open(p).unwrap())
        .collect();
    let r = scan(&files);
    assert!(r.vgs.is_empty() && r.pvs.len() == 2, "{r:?}");
    for p in &paths {
        let l = crate::lvm::label::read_label(&std::fs::File::open(p).unwrap()).unwrap();
        assert_eq!(
            l.extension.unwrap().flags & crate::lvm::label::PV_EXT_USED,
            0
        );
    }
    // An orphan PV again: vgcreate takes it back.
    ops::vgcreate("vg2", &paths[..1], Some(4096), false, &o).unwrap();
    ops::vgremove("vg2", &o).unwrap();
    ops::pvremove(&paths, false, &o).unwrap();
    let r = scan(&files);
    assert!(r.pvs.is_empty());
    let err = ops::pvremove(&paths[..1], false, &o).unwrap_err();
    assert!(matches!(err, WriteError::NotAPv { .. }), "{err}");
    // A device holding ext2 is refused unless forced.
    let mut img = vec![0u8; 32 << 20];
    img[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
    std::fs::write(&paths[0], &img).unwrap();
    let err = ops::pvcreate(&paths[..1], false, &o).unwrap_err();
    assert!(
        matches!(&err, WriteError::HoldsData { found, .. } if found.len() == 1),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("refusing to overwrite it unless forced")
    );
    assert_eq!(std::fs::read(&paths[0]).unwrap(), img);
    ops::pvcreate(&paths[..1], true, &o).unwrap();
}

/// A commit error about one device names its path, not just the index in the session's
/// device list.
#[test]
fn a_commit_error_names_the_device_path() {
    use crate::lvm::write::commit::CommitError;
    use std::os::unix::fs::FileExt;
    let v = vg(2);
    let im = Images::new(&v, &[]);
    let o = im.opts();
    let mut s = VgSession::open("vg0", &o).unwrap();
    // The second PV's metadata area header goes bad after the scan (its checksum).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&im.paths[1])
        .unwrap();
    f.write_all_at(&[0xde, 0xad, 0xbe, 0xef], MDA.0).unwrap();
    let mut new = s.vg().clone();
    new.tags.push("x".into());
    let e = s.precommit(new).unwrap_err();
    match &e {
        WriteError::CommitOn { device, source } => {
            assert_eq!(device, &im.paths[1]);
            assert_eq!(source.device(), Some(1));
            assert!(
                matches!(
                    **source,
                    CommitError::BadArea { device: 1, .. }
                        | CommitError::HeaderChanged { device: 1, .. }
                ),
                "{source:?}"
            );
        }
        other => panic!("not CommitOn: {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with(&im.paths[1].display().to_string()),
        "{e}"
    );
    drop(s);
    // The first PV still holds seqno 1, untouched.
    let (got, _) = {
        let f = std::fs::File::open(&im.paths[0]).unwrap();
        let h = crate::lvm::mda::read_mda_header(
            &f,
            DiskLocn {
                offset: MDA.0,
                size: MDA.1,
            },
        )
        .unwrap();
        (h.raw_locns.len(), ())
    };
    assert_eq!(got, 1);
}

/// `precommit_flushes` tells which PVs the precommit flushes: a PV with a metadata area
/// yes, a PV without one (`--metadatacopies 0`) no, a PV of another VG no.
#[test]
fn precommit_flushes_only_pvs_with_metadata_areas() {
    let v = vg(2);
    let own = disk_text(&v, &TextHeader::now("test"));
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, id) in PV_IDS.iter().enumerate() {
        let areas: Vec<(u64, u64, Option<&[u8]>)> = if i == 0 {
            vec![(MDA.0, MDA.1, Some(&own[..]))]
        } else {
            Vec::new()
        };
        let p = dir.path().join(format!("pv{i}.img"));
        std::fs::write(&p, pv_image(LEN, id, &areas)).unwrap();
        paths.push(p);
    }
    let mut o = WriteOptions::new("test");
    o.devices = Some(paths);
    o.lock_dir = LockDir::new(dir.path().join("lock"));
    o.backups = None;
    let s = VgSession::open("vg0", &o).unwrap();
    assert!(s.precommit_flushes(&s.vg().pvs[0]));
    assert!(!s.precommit_flushes(&s.vg().pvs[1]));
    let mut stranger = s.vg().pvs[0].clone();
    stranger.id = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ".parse().unwrap();
    assert!(!s.precommit_flushes(&stranger));
}

/// The on-disk texts and backup files of writes that copy unchanged LV sections from the
/// print they started from (across commands and across writes of one session) are what a
/// print from scratch gives; the archive holds the VG as it was before the last write.
#[test]
fn texts_and_backups_printed_from_a_base_are_prints_from_scratch() {
    use crate::lvm::config::ParseMode;
    use crate::lvm::write::backup::BackupDirs;
    use crate::lvm::write::text::file_text;
    let v = vg(2);
    let im = Images::new(&v, &[]);
    let mut o = im.opts();
    let root = im.dir.path().join("etc");
    let dirs = BackupDirs {
        backup: root.join("backup"),
        archive: root.join("archive"),
    };
    std::fs::create_dir_all(&dirs.backup).unwrap();
    std::fs::create_dir_all(&dirs.archive).unwrap();
    o.backups = Some(dirs.clone());
    for name in ["a", "b", "c"] {
        ops::lvcreate("vg0", name, &no_activate("1M"), &o).unwrap();
    }
    let mut s = VgSession::open("vg0", &o).unwrap();
    let mut n = s.vg().clone();
    let b = n.lvs.iter_mut().find(|l| l.name == "b").unwrap();
    b.tags.push("tagged".into());
    s.precommit(n).unwrap();
    s.commit().unwrap();
    let mut n = s.vg().clone();
    n.lvs.retain(|l| l.name != "a");
    s.precommit(n).unwrap();
    s.commit().unwrap();
    drop(s);
    let (got, areas) = im.read();
    assert_eq!(got.seqno, 6);
    assert!(got.lv("a").is_none());
    assert_eq!(got.lv("b").unwrap().tags, ["tagged"]);
    let h = TextHeader::now("scratch");
    // On disk: the VG section, then the header block.
    let vg_part = |t: &[u8]| -> Vec<u8> {
        let end = t.windows(10).position(|w| w == b"\ncontents ").unwrap();
        t[..end].to_vec()
    };
    for (_, text) in &areas {
        assert_eq!(
            String::from_utf8_lossy(&vg_part(text)),
            String::from_utf8_lossy(&vg_part(&disk_text(&got, &h)))
        );
    }
    // In files: the header block, then the VG section.
    let from = |t: &str| t[t.find("\nvg0 {").unwrap()..].to_string();
    let file = std::fs::read_to_string(dirs.backup.join("vg0")).unwrap();
    assert_eq!(from(&file), from(&file_text(&got, &h)));
    // The newest archive is the VG before the last write (the first write of the session
    // archived it before the first change; later writes of a session archive nothing).
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dirs.archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    archives.sort();
    assert_eq!(archives.len(), 4, "three lvcreates and one session");
    let last = std::fs::read(archives.last().unwrap()).unwrap();
    let mut old = VolumeGroup::from_text(&last, ParseMode::File).unwrap();
    old.take_warnings();
    assert_eq!(old.seqno, 4);
    assert!(old.lv("a").is_some() && old.lv("b").unwrap().tags.is_empty());
}
