//! Property: random valid models print (both forms) and import back to the same model;
//! printing is stable and `check_printable` accepts a model against its own text.

use proptest::prelude::*;

use crate::lvm::config::ParseMode;
use crate::lvm::id::LvmId;
use crate::lvm::model::{
    AllocPolicy, Area, Discards, Flags, LogicalVolume, PersistentReservation, PhysicalVolume,
    Segment, SegmentKind, ThinMessage, VolumeGroup,
};
use crate::lvm::write::text::{
    TextHeader, check_printable, check_printable_base, disk_text, disk_text_from, file_text,
    file_text_from,
};

/// Draws from a pool of random numbers (shrinks toward zeros, i.e. small models).
struct Ent {
    pool: Vec<u64>,
    i: usize,
}

impl Ent {
    fn next(&mut self) -> u64 {
        let i = self.i;
        self.i += 1;
        let v = self
            .pool
            .get(i % self.pool.len().max(1))
            .copied()
            .unwrap_or(0);
        if i < self.pool.len() {
            v
        } else {
            v.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64)
                .rotate_left(17)
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, in_: u64) -> bool {
        self.below(in_) == 0
    }

    fn name(&mut self, prefix: &str) -> String {
        const C: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_+.-";
        let mut s = prefix.to_string();
        for _ in 0..self.below(6) {
            s.push(C[self.below(C.len() as u64) as usize] as char);
        }
        s
    }

    fn id(&mut self) -> LvmId {
        const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let raw: Vec<u8> = (0..32)
            .map(|_| A[(self.next() % A.len() as u64) as usize])
            .collect();
        LvmId::from_raw(&raw).expect("valid id")
    }

    fn tags(&mut self) -> Vec<String> {
        (0..self.below(3))
            .map(|i| self.name(&format!("t{i}")))
            .collect()
    }

    fn opt_str(&mut self, prefix: &str) -> Option<String> {
        // Strings with quotes and backslashes, which the printer escapes.
        (self.chance(3)).then(|| format!("{}\"\\{}", self.name(prefix), self.below(9)))
    }

    fn flags(&mut self, names: &[&str]) -> Flags {
        names
            .iter()
            .filter(|_| self.chance(2))
            .map(|s| s.to_string())
            .collect()
    }
}

fn striped(start: u64, areas: Vec<Area>, per: u64, stripe_size: u64) -> Segment {
    let n = areas.len() as u64;
    Segment {
        start_extent: start,
        extent_count: per * n,
        type_name: "striped".into(),
        kind: SegmentKind::Striped {
            stripe_size: if n > 1 { stripe_size } else { 0 },
            areas,
        },
    }
}

fn lv(e: &mut Ent, name: String, visible: bool, write_locked: bool) -> LogicalVolume {
    let mut status = Flags::new();
    status.insert("READ".into());
    let mut flags = e.flags(&["ACTIVATION_SKIP", "NOAUTOACTIVATE", "ERROR_WHEN_FULL"]);
    if e.chance(4) {
        // read-only
    } else if write_locked {
        flags.insert("WRITE_LOCKED".into());
    } else {
        status.insert("WRITE".into());
    }
    if visible {
        status.insert("VISIBLE".into());
    }
    let fixed = e.chance(5);
    if fixed {
        status.insert("FIXED_MINOR".into());
    }
    let created = e.chance(2);
    LogicalVolume {
        name,
        id: e.id(),
        status,
        flags,
        tags: e.tags(),
        read_ahead: match e.below(4) {
            0 => Some(-1),
            1 => Some(1 + e.below(65_536) as i64),
            _ => None,
        },
        major: (fixed && e.chance(2)).then_some(253),
        minor: fixed.then(|| e.below(1 << 20) as i64),
        creation_time: created.then(|| 1 + e.below(1 << 40) as i64),
        creation_host: created.then(|| e.name("host")),
        lock_args: e.opt_str("1.0.0:"),
        allocation_policy: [
            AllocPolicy::Inherit,
            AllocPolicy::Contiguous,
            AllocPolicy::Cling,
            AllocPolicy::Normal,
            AllocPolicy::Anywhere,
        ][e.below(5) as usize],
        profile: e.opt_str("prof"),
        segments: Vec::new(),
    }
}

/// A VG as lvm2's importer would give it: canonical flags (WRITE_LOCKED where lvm2 writes
/// it), visible LVs before hidden ones, segments that lvm2 would not merge.
fn model(pool: Vec<u64>) -> VolumeGroup {
    let mut e = Ent { pool, i: 0 };
    let extent_size = 8u64 << e.below(11);
    let mut vg = VolumeGroup::new(e.name("vg"), e.id(), extent_size);
    vg.seqno = e.below(1 << 32);
    vg.system_id = e.chance(4).then(|| e.name("host"));
    if e.chance(5) {
        vg.lock_type = Some(["sanlock", "dlm"][e.below(2) as usize].into());
        vg.lock_args = e.chance(2).then(|| e.name("1.0.0:"));
    }
    let write_locked = vg.system_id.is_some() || vg.lock_type.is_some();
    vg.status = e.flags(&[
        "EXPORTED",
        "RESIZEABLE",
        "PVMOVE",
        "READ",
        "CLUSTERED",
        "SHARED",
    ]);
    vg.flags = e.flags(&["NOAUTOACTIVATE"]);
    if e.chance(4) {
        // read-only VG
    } else if write_locked {
        vg.flags.insert("WRITE_LOCKED".into());
    } else {
        vg.status.insert("WRITE".into());
    }
    vg.tags = e.tags();
    vg.pr = PersistentReservation {
        require: e.chance(4),
        autostart: e.chance(4),
        ptpl: e.chance(4),
    };
    vg.max_lv = e.below(300);
    vg.max_pv = e.below(300);
    vg.allocation_policy = [
        AllocPolicy::Contiguous,
        AllocPolicy::Cling,
        AllocPolicy::Normal,
        AllocPolicy::Anywhere,
    ][e.below(4) as usize];
    vg.profile = e.opt_str("p");
    vg.metadata_copies = e.below(4);
    for i in 0..1 + e.below(4) {
        let pe_count = 64 + e.below(4096);
        let pe_start = 2048 * (1 + e.below(4));
        let (ba_start, ba_size) = if e.chance(6) {
            (2048 + e.below(100), 1 + e.below(2048))
        } else {
            (0, 0)
        };
        let ids = e.chance(3);
        vg.pvs.push(PhysicalVolume {
            handle: format!("pv{i}"),
            id: e.id(),
            device_hint: Some(format!("/dev/{}", e.name("sd\"\\"))),
            device_id_type: ids.then(|| "sys_wwid".to_string()),
            device_id: ids.then(|| e.name("naa.")),
            status: e.flags(&["ALLOCATABLE", "EXPORTED"]),
            flags: e.flags(&["MISSING"]),
            tags: e.tags(),
            dev_size: Some(pe_start + pe_count * extent_size + e.below(1 << 20)),
            pe_start,
            pe_count,
            ba_start,
            ba_size,
        });
    }
    // Extents handed out in order, with a gap after each area so that no two segments
    // are contiguous (lvm2 would merge them).
    let mut cursor: Vec<u64> = vec![0; vg.pvs.len()];
    let mut alloc = |e: &mut Ent, per: u64, pvs: &[PhysicalVolume]| -> Option<Area> {
        let p = e.below(pvs.len() as u64) as usize;
        let start = cursor[p];
        if start + per > pvs[p].pe_count {
            return None;
        }
        cursor[p] = start + per + 1;
        Some(Area::Pv {
            pv: pvs[p].handle.clone(),
            pe: start,
        })
    };
    let mut visible: Vec<LogicalVolume> = Vec::new();
    let mut hidden: Vec<LogicalVolume> = Vec::new();
    let mut taken = std::collections::HashSet::new();
    // A few random draws, then a counter: a pool of zeros cycles through a handful of
    // names, and drawing until a new one came up never ended.
    let mut fresh = |e: &mut Ent, prefix: &str| {
        let mut n = e.name(prefix);
        let mut k = 0u32;
        while !taken.insert(n.clone()) {
            k += 1;
            n = if k < 8 {
                e.name(prefix)
            } else {
                format!("{prefix}{k}")
            };
        }
        n
    };
    let pvs = vg.pvs.clone();
    for _ in 0..e.below(6) {
        let name = fresh(&mut e, "lv");
        let mut l = lv(&mut e, name, true, write_locked);
        let mut le = 0;
        for _ in 0..1 + e.below(3) {
            let stripes = 1 + e.below(3);
            let per = 1 + e.below(8);
            let areas: Option<Vec<Area>> = (0..stripes).map(|_| alloc(&mut e, per, &pvs)).collect();
            let Some(areas) = areas else { break };
            let ss = 8u64 << e.below(4);
            l.segments
                .push(striped(le, areas, per, ss.min(extent_size)));
            le += per * stripes;
        }
        if l.segments.is_empty() {
            l.segments.push(Segment {
                start_extent: 0,
                extent_count: 1 + e.below(100),
                type_name: ["zero", "error"][e.below(2) as usize].into(),
                kind: if e.chance(2) {
                    SegmentKind::Zero
                } else {
                    SegmentKind::Error
                },
            });
            if let Some(s) = l.segments.last_mut() {
                s.type_name = if s.kind == SegmentKind::Zero {
                    "zero"
                } else {
                    "error"
                }
                .into();
            }
        }
        visible.push(l);
    }
    // A snapshot of the first LV: the COW is visible with its origin (unless merging), the
    // snapshotN LV hidden.
    if let Some(origin) = visible.first().cloned()
        && e.chance(2)
        && let Some(area) = alloc(&mut e, 2, &pvs)
    {
        let merging = e.chance(3);
        let cow_name = fresh(&mut e, "snap");
        let mut cow = lv(&mut e, cow_name.clone(), false, write_locked);
        cow.segments.push(striped(0, vec![area], 2, 0));
        let snap_name = fresh(&mut e, "snapshot");
        let mut snap = lv(&mut e, snap_name, !merging, write_locked);
        snap.segments.push(Segment {
            start_extent: 0,
            extent_count: origin.le_count(),
            type_name: "snapshot".into(),
            kind: SegmentKind::Snapshot {
                chunk_size: 8 << e.below(8),
                origin: origin.name.clone(),
                cow: cow_name,
                merging,
            },
        });
        if merging {
            hidden.push(cow);
        } else {
            visible.push(cow);
        }
        hidden.push(snap);
    }
    // A thin pool with thin LVs.
    if e.chance(2)
        && let (Some(ma), Some(da)) = (alloc(&mut e, 1, &pvs), alloc(&mut e, 4, &pvs))
    {
        let pool = fresh(&mut e, "pool");
        let (tmeta, tdata) = (format!("{pool}_tmeta"), format!("{pool}_tdata"));
        let mut m = lv(&mut e, tmeta.clone(), false, write_locked);
        m.segments.push(striped(0, vec![ma], 1, 0));
        let mut d = lv(&mut e, tdata.clone(), false, write_locked);
        d.segments.push(striped(0, vec![da], 4, 0));
        let mut thins = Vec::new();
        for i in 0..e.below(3) {
            let name = fresh(&mut e, "thin");
            let mut t = lv(&mut e, name, true, write_locked);
            let origin = (i > 0 && e.chance(2))
                .then(|| thins.last().map(|x: &LogicalVolume| x.name.clone()))
                .flatten();
            t.segments.push(Segment {
                start_extent: 0,
                extent_count: 1 + e.below(1000),
                type_name: "thin".into(),
                kind: SegmentKind::Thin {
                    pool: pool.clone(),
                    transaction_id: e.below(1 << 62),
                    device_id: e.below(1 << 24),
                    origin,
                    merge: None,
                    external_origin: None,
                },
            });
            thins.push(t);
        }
        let mut messages: Vec<ThinMessage> = Vec::new();
        for t in &thins {
            if e.chance(2) {
                messages.push(ThinMessage::Create(t.name.clone()));
            }
        }
        for _ in 0..e.below(2) {
            messages.push(ThinMessage::Delete(e.below(1 << 24)));
        }
        let mut p = lv(&mut e, pool.clone(), true, write_locked);
        p.segments.push(Segment {
            start_extent: 0,
            extent_count: 4,
            type_name: if e.chance(3) {
                "thin-pool+CROP_METADATA"
            } else {
                "thin-pool"
            }
            .into(),
            kind: SegmentKind::ThinPool {
                metadata: tmeta,
                data: tdata,
                transaction_id: e.below(1 << 62),
                chunk_size: 128 << e.below(10),
                discards: [Discards::Ignore, Discards::NoPassdown, Discards::Passdown]
                    [e.below(3) as usize],
                zero_new_blocks: e.chance(2),
                messages,
                crop_metadata: [None, Some(false), Some(true)][e.below(3) as usize],
            },
        });
        visible.push(p);
        visible.extend(thins);
        hidden.push(m);
        hidden.push(d);
    }
    vg.lvs = visible.into_iter().chain(hidden).collect();
    vg
}

fn header(e: u64) -> TextHeader {
    TextHeader {
        description: format!("Write from \"test\" \\ {e}."),
        creation_host: "host".into(),
        host_comment: "Linux host 6.1 #1 x86_64".into(),
        creation_time: e % (1 << 40),
        generator: "devmapper test".into(),
        system_id: e.is_multiple_of(3).then(|| "sys".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_models_print_and_import_back(pool in prop::collection::vec(any::<u64>(), 0..200), h in any::<u64>()) {
        let vg = model(pool);
        let h = header(h);
        let disk = disk_text(&vg, &h);
        prop_assert_eq!(disk.last(), Some(&0u8));
        let mut back = VolumeGroup::from_text(&disk, ParseMode::Disk)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&disk))))?;
        back.take_warnings();
        prop_assert_eq!(&back, &vg);
        prop_assert_eq!(disk_text(&back, &h), disk.clone());
        let file = file_text(&vg, &h);
        let mut back = VolumeGroup::from_text(file.as_bytes(), ParseMode::File)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{file}")))?;
        back.take_warnings();
        prop_assert_eq!(&back, &vg);
        check_printable(&vg, &disk).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_printable(&vg, file.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn prints_from_a_base_equal_prints_from_scratch(
        pool in prop::collection::vec(any::<u64>(), 0..200),
        edits in prop::collection::vec(any::<u64>(), 1..6),
        h in any::<u64>(),
    ) {
        let mut old = model(pool);
        let h = header(h);
        let disk = disk_text(&old, &h);
        let mut disk_base = check_printable_base(&old, &disk)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("our own text is not verbatim"))?;
        let mut file_base = file_text_from(&old, &h, None);
        for e in edits {
            let (new, touched) = edit(&old, e);
            let (bytes, printed) = disk_text_from(&new, &h, Some((&old, &disk_base)));
            let scratch = disk_text(&new, &h);
            prop_assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&scratch));
            let file = file_text_from(&new, &h, Some((&old, &file_base)));
            let scratch = file_text(&new, &h);
            prop_assert_eq!(file.text(), scratch.as_str());
            // An LV the edit changed is never copied.
            if let Some(t) = &touched {
                prop_assert!(!printed.copied(t));
                prop_assert!(!file.copied(t));
            }
            old = new;
            disk_base = printed;
            file_base = file;
        }
    }
}

/// One random change to `vg`, as commands make them; the LV it changed, if one.
fn edit(vg: &VolumeGroup, e: u64) -> (VolumeGroup, Option<String>) {
    let mut new = vg.clone();
    new.seqno += 1;
    let n = new.lvs.len() as u64;
    let pick = ((e >> 8) % n.max(1)) as usize;
    let touched = match e % 10 {
        0 | 1 if n > 0 => {
            new.lvs.remove(pick);
            None
        }
        2 | 3 if n > 0 => {
            let mut lv = new.lvs[pick].clone();
            lv.name = format!("{}_new{e}", lv.name);
            lv.id = LvmId::from_raw(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345").expect("id");
            let at = ((e >> 20) % (n + 1)) as usize;
            let name = lv.name.clone();
            new.lvs.insert(at, lv);
            Some(name)
        }
        4 if n > 0 => {
            new.lvs[pick].tags.push(format!("t{e}"));
            Some(new.lvs[pick].name.clone())
        }
        5 if n > 1 => {
            new.lvs.swap(pick, ((e >> 20) % n) as usize);
            None
        }
        // lvconvert -s: an existing LV becomes the COW of a new snapshot of another, which
        // hides it (its section changes although the LV does not).
        7 if n > 1 => {
            let origin = new.lvs[((e >> 20) % n) as usize].clone();
            let mut snap = new.lvs[pick].clone();
            let cow = std::mem::replace(&mut snap.name, format!("snapshot{e}"));
            snap.segments = vec![Segment {
                start_extent: 0,
                extent_count: origin.le_count(),
                type_name: "snapshot".into(),
                kind: SegmentKind::Snapshot {
                    chunk_size: 8,
                    origin: origin.name.clone(),
                    cow,
                    merging: false,
                },
            }];
            let name = snap.name.clone();
            new.lvs.push(snap);
            Some(name)
        }
        6 => {
            new.system_id = match new.system_id {
                Some(_) => None,
                None => Some("other".into()),
            };
            None
        }
        // The PVs' order names them in areas (pv0, pv1 ...).
        8 if new.pvs.len() > 1 => {
            new.pvs.swap(0, 1);
            None
        }
        8 => {
            new.extent_size *= 2;
            None
        }
        _ => {
            if let Some(pv) = new.pvs.first_mut() {
                pv.pe_count += 1;
            }
            None
        }
    };
    (new, touched)
}
