use super::sample::{SAMPLE, THIN_STRIPED, plain_lv, snap_section, with_lv};
use crate::lvm::check::{Blocker, activation_blockers};
use crate::lvm::config::ParseMode;
use crate::lvm::model::{PhysicalVolume, VolumeGroup};
use crate::lvm::plan::{Plan, PlanOptions, SkipKind, lvm2_params, plan_lv, plan_vg};
use crate::lvm::{Error, UnmappableKind};
use crate::targets::{DevRef, Target};

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap()
}

fn sdb(_: &PhysicalVolume) -> Option<DevRef> {
    Some(DevRef::num(8, 16))
}

fn loops(pv: &PhysicalVolume) -> Option<DevRef> {
    DevRef::path(format!("/dev/loop{}", &pv.handle[2..])).ok()
}

/// `name uuid-suffix ro : start length target params` per line, for compact comparisons.
fn render(p: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for d in &p.devices {
        for l in &d.table {
            out.push(format!(
                "{}{} {} {} {} {}",
                d.name,
                if d.read_only { " (ro)" } else { "" },
                l.start,
                l.length,
                l.target.target_type(),
                lvm2_params(&l.target)
            ));
        }
    }
    out
}

const V: &str = "kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE";

#[test]
fn sample_origin_snapshot_and_linear() {
    let v = vg(SAMPLE);
    let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(
        render(&p),
        [
            "vg0-root-real 0 10485760 linear 8:16 2048",
            "vg0-root_snap-cow 0 2097152 linear 8:16 31459328",
            "vg0-root_snap 0 10485760 snapshot /dev/mapper/vg0-root-real /dev/mapper/vg0-root_snap-cow P 8",
            // after its snapshots, as lvm2 resumes them
            "vg0-root 0 10485760 snapshot-origin /dev/mapper/vg0-root-real",
            "vg0-home 0 20971520 linear 8:16 10487808",
        ]
    );
    let uuids: Vec<_> = p.devices.iter().map(|d| d.uuid.as_str()).collect();
    // dm references are typed paths, PVs what the caller gave.
    let Target::Snapshot(snap) = &p.devices[2].table.lines()[0].target else {
        panic!("{:?}", p.devices[2]);
    };
    assert_eq!(
        crate::lvm::plan::mapper_name(&snap.cow).as_ref(),
        Some(&p.devices[1].name)
    );
    assert_eq!(
        p.devices[0].table.lines()[0].target.devices(),
        [&DevRef::num(8, 16)]
    );
    assert_eq!(
        uuids,
        [
            format!("LVM-{V}J4A3DdvHyrNktBXtnjfObINf5AjxvUlK-real"),
            format!("LVM-{V}t4R5YhuIG43KIjFAHQsiJoUGm1YtmaD7-cow"),
            format!("LVM-{V}t4R5YhuIG43KIjFAHQsiJoUGm1YtmaD7"),
            format!("LVM-{V}J4A3DdvHyrNktBXtnjfObINf5AjxvUlK"),
            format!("LVM-{V}siC47wqaMl9Xvq2ZG4MzAOUQklImCvBP"),
        ]
    );
    assert!(p.skipped.is_empty());
    assert_eq!(p.devices[0].layer.as_deref(), Some("real"));
    assert!(
        p.to_text()
            .starts_with("vg0-root-real: 0 10485760 linear 8:16 2048\n")
    );
}

#[test]
fn two_snapshots_of_one_origin() {
    // Add a second COW + snapshot1 on the same origin.
    let extra = r#"root_snap2 {
id = "u5S6Zi-vJH5-4LJk-GBIR-tjKp-VHn2-ZunbE8"
status = ["READ"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 16
type = "striped"
stripe_count = 1
stripes = ["pv0", 4096]
}
}
snapshot1 {
id = "w4eOj9-Mgqq-XUw6-btqa-iV9R-sUi2-KrnIVp"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 1280
type = "snapshot"
chunk_size = 128
origin = "root"
cow_store = "root_snap2"
}
}
"#;
    let t = SAMPLE.replacen("snapshot0 {", &format!("{extra}snapshot0 {{"), 1);
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    let r = render(&p);
    assert_eq!(r.len(), 7);
    assert_eq!(r[0], "vg0-root-real 0 10485760 linear 8:16 2048");
    // snapshots in metadata order: snapshot1 (root_snap2) is listed before snapshot0.
    assert_eq!(r[1], "vg0-root_snap2-cow 0 131072 linear 8:16 33556480");
    // A read-only snapshot: the top device is read-only, its COW store is not.
    assert_eq!(
        r[2],
        "vg0-root_snap2 (ro) 0 10485760 snapshot /dev/mapper/vg0-root-real /dev/mapper/vg0-root_snap2-cow P 128"
    );
    assert_eq!(
        r[4],
        "vg0-root_snap 0 10485760 snapshot /dev/mapper/vg0-root-real /dev/mapper/vg0-root_snap-cow P 8"
    );
    // The origin after all its snapshots.
    assert_eq!(
        r[5],
        "vg0-root 0 10485760 snapshot-origin /dev/mapper/vg0-root-real"
    );
    assert_eq!(r[6], "vg0-home 0 20971520 linear 8:16 10487808");
}

#[test]
fn merging_snapshot() {
    let t = SAMPLE.replace("cow_store = \"root_snap\"", "merging_store = \"root_snap\"");
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(
        render(&p)[..4],
        [
            "vg0-root-real 0 10485760 linear 8:16 2048",
            "vg0-root_snap-cow 0 2097152 linear 8:16 31459328",
            "vg0-root 0 10485760 snapshot-merge /dev/mapper/vg0-root-real /dev/mapper/vg0-root_snap-cow P 8",
            "vg0-root_snap 0 10485760 error ",
        ]
    );
}

#[test]
fn thin_pool_thin_striped_multisegment_hyphens() {
    let v = vg(THIN_STRIPED);
    let p = plan_vg(&v, &loops, &PlanOptions::default()).unwrap();
    assert_eq!(
        render(&p),
        [
            "my--vg-lv--1 0 16384 linear /dev/loop0 2048",
            "my--vg-lv--1 16384 8192 linear /dev/loop1 43008",
            "my--vg-stripey (ro) 0 32768 striped 2 128 /dev/loop0 18432 /dev/loop1 2048",
            "my--vg-pool_tmeta 0 8192 linear /dev/loop1 51200",
            "my--vg-pool_tdata 0 32768 linear /dev/loop0 59392",
            "my--vg-pool-tpool 0 32768 thin-pool /dev/mapper/my--vg-pool_tmeta /dev/mapper/my--vg-pool_tdata 128 0 0",
            "my--vg-pool (ro) 0 32768 linear /dev/mapper/my--vg-pool-tpool 0",
            "my--vg-thin1 0 65536 thin /dev/mapper/my--vg-pool-tpool 1",
        ]
    );
    let suffix: Vec<_> = p
        .devices
        .iter()
        .map(|d| d.uuid.as_str().rsplit_once('-').map(|x| x.1).unwrap_or(""))
        .collect();
    assert_eq!(&suffix[2..6], ["tmeta", "tdata", "tpool", "pool"]);
    assert_eq!(
        p.devices[1].uuid.as_str(),
        format!(
            "LVM-{}{}",
            v.id.as_str(),
            v.lv("stripey").unwrap().id.as_str()
        )
    );
}

#[test]
fn thin_pool_features() {
    let t = THIN_STRIPED.replace("discards = \"passdown\"\nzero_new_blocks = 1\n", "");
    let t = t.replacen("id = \"pppppp-pppp-pppp-pppp-pppp-pppp-pppppp\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []", "id = \"pppppp-pppp-pppp-pppp-pppp-pppp-pppppp\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = [\"ERROR_WHEN_FULL\"]", 1);
    let opts = PlanOptions {
        thin_pool_autoextend_threshold: 80,
        ..PlanOptions::default()
    };
    let p = plan_vg(&vg(&t), &loops, &opts).unwrap();
    let tp = p
        .devices
        .iter()
        .find(|d| d.name.as_str() == "my--vg-pool-tpool")
        .unwrap();
    // 32768 sectors / 128 = 256 blocks; 20% = 51.
    assert_eq!(
        lvm2_params(&tp.table.lines()[0].target),
        "/dev/mapper/my--vg-pool_tmeta /dev/mapper/my--vg-pool_tdata 128 51 3 skip_block_zeroing ignore_discard error_if_no_space"
    );
    let t = THIN_STRIPED.replace("\"passdown\"", "\"nopassdown\"");
    let p = plan_vg(&vg(&t), &loops, &PlanOptions::default()).unwrap();
    let tp = p
        .devices
        .iter()
        .find(|d| d.name.as_str() == "my--vg-pool-tpool")
        .unwrap();
    assert!(lvm2_params(&tp.table.lines()[0].target).ends_with(" 128 0 1 no_discard_passdown"));
}

#[test]
fn unused_thin_pool_is_its_own_tpool() {
    let t = THIN_STRIPED.replacen("transaction_id = 1", "transaction_id = 0", 1);
    // Drop the thin LV (a pool with transaction 0 has none).
    let start = t.find("thin1 {").unwrap();
    let end = t.find("lvol0_pmspare {").unwrap();
    let t = format!("{}{}", &t[..start], &t[end..]);
    let p = plan_vg(&vg(&t), &loops, &PlanOptions::default()).unwrap();
    let pool = p
        .devices
        .iter()
        .find(|d| d.lv == "pool" && d.layer.as_deref() == Some("tpool"))
        .unwrap();
    assert_eq!(pool.name.as_str(), "my--vg-pool");
    assert!(pool.uuid.as_str().ends_with("-tpool"));
    assert!(matches!(pool.table.lines()[0].target, Target::ThinPool(_)));
    assert!(
        !p.devices
            .iter()
            .any(|d| d.name.as_str() == "my--vg-pool-tpool")
    );
}

#[test]
fn thin_lv_alone_brings_its_pool_layer_only() {
    let p = plan_lv(&vg(THIN_STRIPED), "thin1", &loops, &PlanOptions::default()).unwrap();
    let names: Vec<_> = p.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "my--vg-pool_tmeta",
            "my--vg-pool_tdata",
            "my--vg-pool-tpool",
            "my--vg-thin1"
        ]
    );
}

#[test]
fn snapshot_alone_brings_its_origin() {
    let p = plan_lv(&vg(SAMPLE), "root_snap", &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(p.devices.len(), 4);
    assert_eq!(p.devices[2].name.as_str(), "vg0-root_snap");
    assert_eq!(p.devices[3].name.as_str(), "vg0-root");
}

#[test]
fn missing_pv_and_skip_flag_and_unsupported() {
    let v = vg(THIN_STRIPED);
    let only0 = |pv: &PhysicalVolume| (pv.handle == "pv0").then(|| "/dev/loop0".parse().unwrap());
    let p = plan_vg(&v, &only0, &PlanOptions::default()).unwrap();
    let skipped: Vec<_> = p.skipped.iter().map(|s| s.lv.as_str()).collect();
    assert_eq!(skipped, ["lv-1", "stripey", "pool", "thin1"]);
    assert!(
        p.skipped[0].reason.contains("PV pv1"),
        "{}",
        p.skipped[0].reason
    );
    assert!(
        p.skipped
            .iter()
            .all(|s| s.kind == SkipKind::PvUnavailable && s.is_error())
    );
    assert!(
        p.devices.is_empty(),
        "partial LVs must leave nothing behind: {:?}",
        p.devices
    );

    let t = SAMPLE.replacen(
        "flags = []\ncreation_time = 1718000100",
        "flags = [\"ACTIVATION_SKIP\"]\ncreation_time = 1718000100",
        1,
    );
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].lv, "home");
    assert_eq!(p.skipped[0].kind, SkipKind::ActivationSkip);
    assert!(!p.skipped[0].is_error());

    let t = SAMPLE.replacen(
        "type = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", 1280\n]",
        "type = \"raid1\"",
        1,
    );
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(p.skipped[0].lv, "home");
    assert!(p.skipped[0].reason.contains("raid1"));
    assert_eq!(p.skipped[0].kind, SkipKind::Unsupported);
    assert_eq!(p.devices.len(), 4);
}

#[test]
fn read_only_option_and_fixed_minor() {
    let opts = PlanOptions {
        read_only: true,
        ..PlanOptions::default()
    };
    let p = plan_vg(&vg(SAMPLE), &sdb, &opts).unwrap();
    for d in &p.devices {
        assert_eq!(d.read_only, d.layer.as_deref() != Some("cow"), "{}", d.name);
    }
    let t = SAMPLE.replacen(
        "status = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\ncreation_time = 1718000100",
        "status = [\"READ\", \"WRITE\", \"VISIBLE\", \"FIXED_MINOR\"]\nflags = []\nmajor = 253\nminor = 7\ncreation_time = 1718000100",
        1,
    );
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    assert_eq!(
        p.devices.last().unwrap().dev,
        Some(crate::DevNum::new(253, 7))
    );
}

#[test]
fn blockers() {
    let v = vg(SAMPLE);
    assert_eq!(activation_blockers(&v, None), []);
    let t = SAMPLE
        .replacen(
            "[\"RESIZEABLE\", \"READ\", \"WRITE\"]",
            "[\"RESIZEABLE\", \"READ\", \"WRITE\", \"EXPORTED\"]",
            1,
        )
        .replacen(
            "extent_size = 8192",
            "system_id = \"otherhost\"\nextent_size = 8192",
            1,
        );
    let b = activation_blockers(&vg(&t), Some("thishost"));
    assert!(
        matches!(
            &b[..],
            [Blocker::Exported { vg }, Blocker::ForeignSystemId { system_id, local, .. }]
                if vg == "vg0" && system_id == "otherhost" && local.as_deref() == Some("thishost")
        ),
        "{b:?}"
    );
    let b = activation_blockers(
        &vg(&t.replace("\"otherhost\"", "\"thishost\"")),
        Some("thishost"),
    );
    assert!(matches!(&b[..], [Blocker::Exported { .. }]), "{b:?}");
    // An empty system id is none (lvm2's reading): not foreign to a host with one. The
    // activation check says the same, being this very check.
    let empty = vg(&t.replace("\"otherhost\"", "\"\""));
    let b = activation_blockers(&empty, Some("thishost"));
    assert!(matches!(&b[..], [Blocker::Exported { .. }]), "{b:?}");
    assert!(matches!(
        crate::lvm::activate::check_metadata(&empty, Some("thishost")),
        Err(crate::lvm::activate::ActivateError::Blocked(
            Blocker::Exported { .. }
        ))
    ));
}

/// Every LV `vgchange -ay` would activate is either a top device of the plan or listed in
/// `skipped`: nothing is left out silently.
fn assert_accounted(v: &VolumeGroup, p: &Plan) {
    for lv in &v.lvs {
        if !v.is_visible(lv) {
            continue;
        }
        let planned = p
            .devices
            .iter()
            .any(|d| d.lv == lv.name && d.layer.is_none());
        let skipped = p.skipped.iter().any(|s| s.lv == lv.name);
        assert!(
            planned ^ skipped,
            "{}: planned {planned}, skipped {skipped}: {p:?}",
            lv.name
        );
    }
}

fn invalid_skip<'p>(p: &'p Plan, lv: &str) -> &'p str {
    let s = p
        .skipped
        .iter()
        .find(|s| s.lv == lv)
        .unwrap_or_else(|| panic!("{lv} not skipped: {p:?}"));
    assert_eq!(s.kind, SkipKind::Invalid, "{s:?}");
    assert!(s.is_error());
    &s.reason
}

/// Snapshot relations lvm2 would not activate: the snapshot is refused by name (typed), its
/// origin planned without it, and plan_lv of it is an `Unmappable` error.
#[test]
fn bad_snapshot_relations_are_refused_by_name() {
    type Case = (String, &'static str, fn(&UnmappableKind) -> bool);
    let cases: Vec<Case> = vec![
        (
            with_lv(SAMPLE, &snap_section("snapshot1", "home", "root_snap", 8)),
            "root_snap",
            |k| matches!(k, UnmappableKind::SharedCow { .. }),
        ),
        (
            with_lv(
                &with_lv(SAMPLE, &plain_lv("s2", "SSB", 4300)),
                &snap_section("snapshot1", "root_snap", "s2", 8),
            ),
            "s2",
            |k| matches!(k, UnmappableKind::OriginIsCow { .. }),
        ),
        (
            with_lv(
                &with_lv(SAMPLE, &plain_lv("s2", "SSB", 4300)),
                &snap_section("snapshot1", "snapshot0", "s2", 8),
            ),
            "s2",
            |k| matches!(k, UnmappableKind::OriginIsSnapshot { .. }),
        ),
        (
            with_lv(SAMPLE, &snap_section("snapshot1", "root_snap", "root", 8)),
            "root",
            |k| matches!(k, UnmappableKind::SnapshotCycle { .. }),
        ),
        (
            SAMPLE.replacen("chunk_size = 8", "chunk_size = 0", 1),
            "root_snap",
            |k| matches!(k, UnmappableKind::SnapshotChunkZero),
        ),
    ];
    for (text, bad, want) in cases {
        let v = vg(&text);
        let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
        assert_accounted(&v, &p);
        invalid_skip(&p, bad);
        // The COW store is never mapped as a plain LV, nor twice.
        assert!(!p.devices.iter().any(|d| d.lv == bad && d.layer.is_none()));
        let mut uuids: Vec<_> = p.devices.iter().map(|d| &d.uuid).collect();
        uuids.sort();
        uuids.dedup();
        assert_eq!(uuids.len(), p.devices.len(), "a device planned twice");
        match plan_lv(&v, bad, &sdb, &PlanOptions::default()) {
            Err(Error::Unmappable { lv, kind }) => {
                assert_eq!(lv, format!("vg0/{bad}"));
                assert!(want(&kind), "{kind:?}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // A snapshot of a COW: root and its good snapshot are still planned as before.
    let v = vg(&with_lv(
        &with_lv(SAMPLE, &plain_lv("s2", "SSB", 4300)),
        &snap_section("snapshot1", "root_snap", "s2", 8),
    ));
    let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
    let good = plan_vg(&vg(SAMPLE), &sdb, &PlanOptions::default()).unwrap();
    for d in &good.devices {
        assert!(p.devices.contains(d), "{} missing", d.name);
    }
}

/// Striped segments the kernel refuses, LV areas past the end, extent_size 0: refused with
/// the typed reason, never planned.
#[test]
fn unmappable_segments_are_refused() {
    let v = vg(&THIN_STRIPED.replacen("stripe_size = 128", "stripe_size = 3000", 1));
    let p = plan_vg(&v, &loops, &PlanOptions::default()).unwrap();
    assert_accounted(&v, &p);
    assert!(invalid_skip(&p, "stripey").contains("does not divide"));
    assert!(matches!(
        plan_lv(&v, "stripey", &loops, &PlanOptions::default()),
        Err(Error::Unmappable {
            kind: UnmappableKind::StripeSizeNotDividing {
                stripe_size: 3000,
                ..
            },
            ..
        })
    ));
    let v = vg(&THIN_STRIPED.replacen("stripe_size = 128", "stripe_size = 0", 1));
    assert!(matches!(
        plan_lv(&v, "stripey", &loops, &PlanOptions::default()),
        Err(Error::Unmappable {
            kind: UnmappableKind::StripeSizeZero { .. },
            ..
        })
    ));
    let v = vg(&SAMPLE.replacen("extent_size = 8192", "extent_size = 0", 1));
    let p = plan_vg(&v, &sdb, &PlanOptions::default()).unwrap();
    assert!(p.devices.is_empty());
    assert_accounted(&v, &p);
    assert!(p.skipped.iter().all(|s| s.kind == SkipKind::Invalid));
}

/// Every planned table is one the validated load path (`DeviceMapper::load`) accepts.
#[test]
fn planned_tables_validate() {
    let merging = SAMPLE.replace("cow_store = \"root_snap\"", "merging_store = \"root_snap\"");
    for (text, dev) in [
        (SAMPLE, sdb as fn(&PhysicalVolume) -> Option<DevRef>),
        (merging.as_str(), sdb),
        (THIN_STRIPED, loops),
    ] {
        let p = plan_vg(&vg(text), &dev, &PlanOptions::default()).unwrap();
        assert!(p.skipped.is_empty() && !p.devices.is_empty(), "{p:?}");
        for d in &p.devices {
            d.table
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.table));
        }
    }
}

/// VG and LV names lvm2 accepts one by one but too long together for a dm name: the LV is
/// refused with the reason, never planned under a name the kernel would refuse.
#[test]
fn dm_name_too_long_is_refused() {
    let long = "l".repeat(125);
    let t = SAMPLE.replacen("\nhome {", &format!("\n{long} {{"), 1);
    let p = plan_vg(&vg(&t), &sdb, &PlanOptions::default()).unwrap();
    let s = p.skipped.iter().find(|s| s.lv == long).expect("skipped");
    assert_eq!(s.kind, SkipKind::Invalid, "{s:?}");
    assert!(s.reason.contains("longer than 127 bytes"), "{}", s.reason);
    assert!(!p.devices.iter().any(|d| d.lv == long));
    assert_eq!(
        p.devices.len(),
        4,
        "root and its snapshot are still planned"
    );
    match plan_lv(&vg(&t), &long, &sdb, &PlanOptions::default()) {
        Err(Error::Plan { lv, .. }) => assert_eq!(lv, format!("vg0/{long}")),
        other => panic!("{other:?}"),
    }
}
