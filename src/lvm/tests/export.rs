use crate::cow::writer::StoreWriter;
use crate::io::ReadAt;
use crate::lvm::config::ParseMode;
use crate::lvm::export::{LvReader, MAX_STACK, export, snapshot_parts, snapshot_reader};
use crate::lvm::model::{PhysicalVolume, VolumeGroup};
use crate::lvm::{Error, UnmappableKind};
use proptest::prelude::*;

/// extent = 8 sectors (4 KiB), two PVs of 16 PEs after a 2-sector pe_start.
const VG: &str = include_str!("fixtures/export.vg");

const PV_SECTORS: usize = 2 + 16 * 8;

/// Sector `s` of PV `p` is filled with a pattern naming both.
fn pv_image(p: u8) -> Vec<u8> {
    (0..PV_SECTORS)
        .flat_map(|s| {
            (0..512).map(move |i| (s as u8).wrapping_mul(7) ^ p.wrapping_mul(101) ^ (i as u8))
        })
        .collect()
}

fn setup() -> (VolumeGroup, Vec<Vec<u8>>) {
    (
        VolumeGroup::from_text(VG.as_bytes(), ParseMode::Disk).unwrap(),
        vec![pv_image(0), pv_image(1)],
    )
}

fn src<'a>(pvs: &'a [Vec<u8>]) -> impl Fn(&PhysicalVolume) -> Option<&'a [u8]> {
    move |p| {
        pvs.get(p.handle[2..].parse::<usize>().ok()?)
            .map(|v| &v[..])
    }
}

/// Independent sector-by-sector mapping of the `striped` LV (2 stripes of 2 sectors).
fn expected_striped(pvs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in 0..48u64 {
        let chunk = s / 2;
        let (pv, base_pe) = if chunk % 2 == 0 { (0, 0) } else { (1, 6) };
        let sector = 2 + base_pe * 8 + (chunk / 2) * 2 + s % 2;
        out.extend_from_slice(&pvs[pv][sector as usize * 512..][..512]);
    }
    out
}

#[test]
fn multi_segment_with_zero() {
    let (vg, pvs) = setup();
    let r = LvReader::new(&vg, "multi", &src(&pvs)).unwrap();
    assert_eq!(r.len(), 5 * 4096);
    let mut all = Vec::new();
    export(&r, &mut all).unwrap();
    let pv1_pe3 = (2 + 3 * 8) * 512;
    assert_eq!(&all[..8192], &pvs[1][pv1_pe3..pv1_pe3 + 8192]);
    assert!(all[8192..12288].iter().all(|&b| b == 0));
    let pv0_pe10 = (2 + 10 * 8) * 512;
    assert_eq!(&all[12288..], &pvs[0][pv0_pe10..pv0_pe10 + 8192]);
}

#[test]
fn striped_matches_reference() {
    let (vg, pvs) = setup();
    let r = LvReader::new(&vg, "striped", &src(&pvs)).unwrap();
    let mut all = Vec::new();
    assert_eq!(export(&r, &mut all).unwrap(), 6 * 4096);
    assert_eq!(all, expected_striped(&pvs));
}

#[test]
fn lv_on_lv() {
    let (vg, pvs) = setup();
    let r = LvReader::new(&vg, "stacked", &src(&pvs)).unwrap();
    let mut all = Vec::new();
    export(&r, &mut all).unwrap();
    assert_eq!(all, expected_striped(&pvs)[4096..3 * 4096]);
}

#[test]
fn bounds_and_missing_pv() {
    let (vg, pvs) = setup();
    let r = LvReader::new(&vg, "multi", &src(&pvs)).unwrap();
    let mut b = [0u8; 2];
    assert!(r.read_exact_at(&mut b, r.len() - 1).is_err());
    assert!(r.read_exact_at(&mut b, u64::MAX).is_err());
    let only1 = |p: &PhysicalVolume| (p.handle == "pv1").then_some(&pvs[1][..]);
    let e = LvReader::new(&vg, "multi", &only1).unwrap_err();
    assert!(e.to_string().contains("PV pv0"), "{e}");
    assert!(LvReader::new(&vg, "snapshot0", &src(&pvs)).is_err());
}

#[test]
fn snapshot_parts_give_origin_and_cow() {
    let (vg, pvs) = setup();
    let (origin, cow, chunk) = snapshot_parts(&vg, "cow", &src(&pvs)).unwrap();
    assert_eq!((origin.len(), cow.len(), chunk), (5 * 4096, 4096, 8));
    assert!(snapshot_parts(&vg, "multi", &src(&pvs)).is_err());
}

/// The `cow` LV grown to 3 extents (PEs 13-15 of pv0) holding a real store: header,
/// one exception area, and origin chunk 1 remapped to 0xab bytes.
fn with_store(meta_chunk: u32, origin_extents: u32) -> (VolumeGroup, Vec<Vec<u8>>) {
    let text = VG
        .replace(
            "extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 15]",
            "extent_count = 3 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 13]",
        )
        .replace(
            "extent_count = 5 type = \"snapshot\" chunk_size = 8",
            &format!(
                "extent_count = {origin_extents} type = \"snapshot\" chunk_size = {meta_chunk}"
            ),
        );
    let vg = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap();
    assert_eq!(
        vg.lv_size(vg.lv("cow").unwrap()),
        24,
        "fixture edit applied"
    );
    let mut w = StoreWriter::new(8, 3 * 4096).unwrap();
    w.push(1, &[0xab; 4096]).unwrap();
    let store = w.finish().to_vec();
    let (_, mut pvs) = setup();
    let at = (2 + 13 * 8) * 512;
    pvs[0][at..at + store.len()].copy_from_slice(&store);
    (vg, pvs)
}

#[test]
fn snapshot_reader_applies_the_exceptions() {
    let (vg, pvs) = with_store(8, 5);
    let origin = LvReader::new(&vg, "multi", &src(&pvs)).unwrap();
    let mut want = Vec::new();
    export(&origin, &mut want).unwrap();
    want[4096..8192].fill(0xab);
    let r = snapshot_reader(&vg, "cow", &src(&pvs)).unwrap();
    assert_eq!(r.exceptions(), 1);
    let mut got = Vec::new();
    export(&r, &mut got).unwrap();
    assert_eq!(got, want);
}

#[test]
fn snapshot_reader_sees_only_the_origin_size_it_was_taken_with() {
    let (vg, pvs) = with_store(8, 4);
    let r = snapshot_reader(&vg, "cow", &src(&pvs)).unwrap();
    assert_eq!(r.size().unwrap(), 4 * 4096);
    let (vg, pvs) = with_store(8, 6);
    let e = snapshot_reader(&vg, "cow", &src(&pvs)).unwrap_err();
    assert!(e.to_string().contains("exceeds origin"), "{e}");
}

#[test]
fn snapshot_reader_refuses_a_chunk_size_mismatch() {
    let (vg, pvs) = with_store(16, 5);
    let e = snapshot_reader(&vg, "cow", &src(&pvs)).unwrap_err();
    assert!(e.to_string().contains("chunk size"), "{e}");
}

proptest! {
    #[test]
    fn random_reads_match(off in 0u64..(6 * 4096), len in 0usize..9000) {
        let (vg, pvs) = setup();
        let r = LvReader::new(&vg, "striped", &src(&pvs)).unwrap();
        let len = len.min((6 * 4096 - off) as usize);
        let mut b = vec![0u8; len];
        r.read_exact_at(&mut b, off).unwrap();
        prop_assert_eq!(&b[..], &expected_striped(&pvs)[off as usize..off as usize + len]);
    }
}

/// `depth` LVs `l0` .. `l{depth-1}`, each 4 extents striped 4 ways (one extent per stripe,
/// stripe size = one extent) onto the next, the last one linear on a 4-extent PV. Chunk i
/// of each LV is extent i of the next, so every LV reads as the PV.
fn chain(depth: usize) -> String {
    let mut lvs = String::new();
    for k in 0..depth {
        let next = format!("l{}", k + 1);
        lvs += &format!(
            "l{k} {{ id = \"{:0>6}-9999-0000-aaaa-bbbb-cccc-dddddd\" status = [\"READ\", \"VISIBLE\"] \
             segment_count = 1 segment1 {{ start_extent = 0 extent_count = 4 type = \"striped\" \
             stripe_count = 4 stripe_size = 8 stripes = [\"{next}\", 0, \"{next}\", 1, \"{next}\", 2, \"{next}\", 3] }} }}\n",
            k
        );
    }
    lvs += &format!(
        "l{depth} {{ id = \"{depth:0>6}-9999-0000-aaaa-bbbb-cccc-dddddd\" status = [\"READ\"] \
         segment_count = 1 segment1 {{ start_extent = 0 extent_count = 4 type = \"striped\" \
         stripe_count = 1 stripes = [\"pv0\", 0] }} }}\n"
    );
    format!(
        "ch {{ id = \"aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg\" seqno = 1 status = [\"READ\"] \
         extent_size = 8 max_lv = 0 max_pv = 0 physical_volumes {{ pv0 {{ \
         id = \"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG\" status = [\"ALLOCATABLE\"] \
         pe_start = 0 pe_count = 4 }} }} logical_volumes {{ {lvs} }} }}\n\
         contents = \"Text Format Volume Group\" version = 1\n"
    )
}

/// 16 LVs each striped 4 ways onto the next: one shared reader per LV (16), not 4^16; the
/// export reads the PV through all 16 levels.
#[test]
fn deep_four_way_chain_builds_one_reader_per_lv() {
    let v = VolumeGroup::from_text(chain(16).as_bytes(), ParseMode::Disk).unwrap();
    let pv: Vec<u8> = (0..4 * 8 * 512).map(|i| (i / 512 % 251) as u8).collect();
    let t = std::time::Instant::now();
    let r = LvReader::new(&v, "l0", &|_p| Some(&pv[..])).unwrap();
    assert_eq!(r.sub_readers(), 16);
    let mut out = Vec::new();
    assert_eq!(export(&r, &mut out).unwrap(), pv.len() as u64);
    assert_eq!(out, pv);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    // One more level is past the limit: a typed error, not a deeper recursion.
    let v = VolumeGroup::from_text(chain(MAX_STACK + 1).as_bytes(), ParseMode::Disk).unwrap();
    match LvReader::new(&v, "l0", &|_p| Some(&pv[..])) {
        Err(Error::Unmappable {
            lv,
            kind: UnmappableKind::TooDeep { limit: MAX_STACK },
        }) => assert_eq!(lv, "ch/l0"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lv_cycles_and_unmappable_segments_are_typed_errors() {
    let pv = vec![0u8; 4 * 8 * 512];
    // l0 -> l1 -> l0.
    let text = chain(2).replacen("stripes = [\"pv0\", 0]", "stripes = [\"l0\", 0]", 1);
    let v = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap();
    assert!(matches!(
        LvReader::new(&v, "l0", &|_p| Some(&pv[..])),
        Err(Error::Unmappable {
            kind: UnmappableKind::ReferenceCycle { .. },
            ..
        })
    ));
    // stripe_size 12 does not divide the 8-sector stripes: reading it would run into the
    // next extents.
    let text = chain(1).replacen("stripe_size = 8", "stripe_size = 12", 1);
    let v = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap();
    assert!(matches!(
        LvReader::new(&v, "l0", &|_p| Some(&pv[..])),
        Err(Error::Unmappable {
            kind: UnmappableKind::StripeSizeNotDividing {
                stripe_size: 12,
                per_stripe: 8,
                ..
            },
            ..
        })
    ));
    // An area past the end of the LV below.
    let text = chain(1).replacen("\"l1\", 3]", "\"l1\", 4]", 1);
    let v = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap();
    assert!(matches!(
        LvReader::new(&v, "l0", &|_p| Some(&pv[..])),
        Err(Error::Unmappable {
            kind: UnmappableKind::AreaBeyondLv {
                end: 5,
                size: 4,
                ..
            },
            ..
        })
    ));
}

/// A COW store shared by two snapshots: lvm2 never writes it; export refuses by name.
#[test]
fn shared_cow_snapshot_is_refused() {
    let text = VG.replacen(
        "snapshot0 {",
        &format!(
            "{}\nsnapshot0 {{",
            include_str!("fixtures/export_snapshot1_shared_cow.lv").trim_end()
        ),
        1,
    );
    let v = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap();
    let pv = vec![0u8; PV_SECTORS * 512];
    match snapshot_reader(&v, "cow", &|_p| Some(&pv[..])) {
        Err(Error::Unmappable {
            lv,
            kind: UnmappableKind::SharedCow { .. },
        }) => assert_eq!(lv, "ex/cow"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
