//! Linear cost, counted rather than timed: the work the model, the index, the planner, the
//! exporter and the scanner do ([`meter`]: elements visited by linear scans, bytes of
//! metadata text parsed) on a VG of n LVs (or n PVs) and of 4n must grow 4x, not 16x.
//! A lookup that scans the VG once per LV (`vg.lv(name)` in a loop), or a scan that
//! parses every PV's copy of the metadata, makes the 4n run count about 16x and fails.

use crate::lvm::config::ParseMode;
use crate::lvm::export::{LvReader, SnapshotView, open_lv};
use crate::lvm::index::{VgIndex, meter};
use crate::lvm::model::VolumeGroup;
use crate::lvm::plan::{PlanOptions, plan_lv, plan_vg};
use crate::lvm::{report, scan};
use crate::targets::DevRef;

use super::writer::pv_image;

/// 32 id characters from a tag letter and a number, dashed as lvm2 writes ids.
fn id(tag: char, n: usize) -> String {
    let raw = format!("{tag}{n:031}");
    let cut = [6, 4, 4, 4, 4, 4, 6];
    let mut out = Vec::new();
    let mut at = 0;
    for c in cut {
        out.push(&raw[at..at + c]);
        at += c;
    }
    out.join("-")
}

fn linear(name: &str, lv_id: &str, visible: bool, pv: usize, pe: usize, extents: usize) -> String {
    let vis = if visible { ", \"VISIBLE\"" } else { "" };
    format!(
        "{name} {{ id = \"{lv_id}\" status = [\"READ\", \"WRITE\"{vis}] segment_count = 1 \
         segment1 {{ start_extent = 0 extent_count = {extents} type = \"striped\" \
         stripe_count = 1 stripes = [\"pv{pv}\", {pe}] }} }}\n"
    )
}

/// A VG of about `lvs` LVs over `pvs` PVs: linear LVs, every fourth with a snapshot (its
/// COW LV and internal `snapshotN`), a two-way striped LV per PV pair, an LV on an LV,
/// and a thin pool with a thin LV per eight LVs.
fn big_vg(lvs: usize, pvs: usize) -> String {
    let mut t = format!(
        "scale {{ id = \"{}\" seqno = 3 status = [\"READ\", \"WRITE\"] extent_size = 8 \
         max_lv = 0 max_pv = 0\nphysical_volumes {{\n",
        id('V', 0)
    );
    for p in 0..pvs {
        t += &format!(
            "pv{p} {{ id = \"{}\" status = [\"ALLOCATABLE\"] pe_start = 2048 pe_count = 1000000 }}\n",
            id('P', p)
        );
    }
    t += "}\nlogical_volumes {\n";
    let mut next_pe = vec![0usize; pvs];
    let mut take = |pv: usize, n: usize| {
        let pe = next_pe[pv];
        next_pe[pv] += n;
        pe
    };
    for i in 0..lvs {
        let pv = i % pvs;
        t += &linear(&format!("lv{i}"), &id('L', i), true, pv, take(pv, 2), 2);
        if i % 4 == 0 {
            t += &linear(&format!("lv{i}_cow"), &id('C', i), true, pv, take(pv, 1), 1);
            t += &format!(
                "snapshot{i} {{ id = \"{}\" status = [\"READ\"] segment_count = 1 segment1 {{ \
                 start_extent = 0 extent_count = 2 type = \"snapshot\" chunk_size = 8 \
                 origin = \"lv{i}\" cow_store = \"lv{i}_cow\" }} }}\n",
                id('S', i)
            );
        }
    }
    for p in (0..pvs.saturating_sub(1)).step_by(2) {
        let (a, b) = (take(p, 2), take(p + 1, 2));
        t += &format!(
            "stripe{p} {{ id = \"{}\" status = [\"READ\", \"WRITE\", \"VISIBLE\"] segment_count = 1 \
             segment1 {{ start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 2 \
             stripe_size = 8 stripes = [\"pv{p}\", {a}, \"pv{}\", {b}] }} }}\n",
            id('T', p),
            p + 1
        );
    }
    // An LV on an LV: `upper` maps `lower`'s extents.
    t += &linear("lower", &id('W', 0), false, 0, take(0, 2), 2);
    t += &format!(
        "upper {{ id = \"{}\" status = [\"READ\", \"WRITE\", \"VISIBLE\"] segment_count = 1 \
         segment1 {{ start_extent = 0 extent_count = 2 type = \"striped\" stripe_count = 1 \
         stripes = [\"lower\", 0] }} }}\n",
        id('W', 1)
    );
    t += &linear("pool_tmeta", &id('M', 0), false, 0, take(0, 1), 1);
    t += &linear("pool_tdata", &id('D', 0), false, 0, take(0, 8), 8);
    t += &format!(
        "pool {{ id = \"{}\" status = [\"READ\", \"WRITE\", \"VISIBLE\"] segment_count = 1 \
         segment1 {{ start_extent = 0 extent_count = 8 type = \"thin-pool\" \
         metadata = \"pool_tmeta\" pool = \"pool_tdata\" transaction_id = 1 chunk_size = 128 \
         discards = \"passdown\" zero_new_blocks = 1 }} }}\n",
        id('O', 0)
    );
    for k in 0..lvs / 8 {
        t += &format!(
            "thin{k} {{ id = \"{}\" status = [\"READ\", \"WRITE\", \"VISIBLE\"] segment_count = 1 \
             segment1 {{ start_extent = 0 extent_count = 4 type = \"thin\" thin_pool = \"pool\" \
             transaction_id = 0 device_id = {} }} }}\n",
            id('N', k),
            k + 1
        );
    }
    t += "}\n}\ncontents = \"Text Format Volume Group\"\nversion = 1\n";
    t
}

/// Everything a command does with a VG of about `n` LVs: import, index, every LV's report
/// fields, the whole plan, single-LV plans and readers. Returns the metered work.
fn vg_work(n: usize) -> (u64, u64) {
    let text = big_vg(n, 8);
    meter::take();
    let vg = VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).expect("imports");
    assert!(vg.warnings().is_empty(), "{:?}", vg.warnings());
    let ix = VgIndex::new(&vg);
    let mut visible = 0;
    let mut snapshots = 0;
    for lv in &vg.lvs {
        visible += usize::from(ix.is_visible(lv));
        snapshots += ix.snapshots_of(&lv.name).len();
        let _ = ix.cow(&lv.name);
        let _ = report::lvs_segtype(lv);
    }
    assert!(
        visible > n && snapshots == n.div_ceil(4),
        "{visible} {snapshots}"
    );
    assert!(vg.snapshot_faults().is_empty());
    let dev = |_p: &crate::lvm::model::PhysicalVolume| Some(DevRef::num(7, 0));
    let plan = plan_vg(&vg, &dev, &PlanOptions::default()).expect("plans");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    assert!(plan.devices.len() > n, "{}", plan.devices.len());
    for name in ["lv0", "lv0_cow", "upper", "thin0"] {
        assert!(
            !plan_lv(&vg, name, &dev, &PlanOptions::default())
                .expect("plans")
                .devices
                .is_empty()
        );
    }
    let zeros = vec![0u8; 4 << 20];
    let pv = |_p: &crate::lvm::model::PhysicalVolume| Some(&zeros[..]);
    let snap = open_lv(&vg, "lv0_cow", &pv, SnapshotView::Content).expect("snapshot reader");
    assert_eq!(snap.size().expect("size"), 2 * 8 * 512);
    let upper = LvReader::new(&vg, "upper", &pv).expect("reader");
    assert_eq!(upper.len(), 2 * 8 * 512);
    meter::take()
}

/// `4n` costs at most `slack` times `n`'s (4 for linear work, with room for fixed costs
/// not quite proportional), and something was counted at all.
fn assert_linear(what: &str, small: u64, large: u64, slack: f64) {
    assert!(small > 0, "{what}: nothing was counted");
    let ratio = large as f64 / small as f64;
    assert!(
        ratio <= slack,
        "{what}: 4x the input cost {ratio:.1}x the work ({small} -> {large}): not linear"
    );
}

#[test]
fn vg_import_index_plan_and_export_are_linear_in_lvs() {
    let (v1, b1) = vg_work(500);
    let (v4, b4) = vg_work(2000);
    assert_linear("LV visits", v1, v4, 4.5);
    // from_text parses outside the scanner's meter: nothing counted there.
    assert_eq!((b1, b4), (0, 0));
}

/// A VG of `pvs` PVs (two LVs each) on as many in-memory PV images, each holding the
/// same committed metadata text, as lvm2 writes it to every PV.
fn pv_set(pvs: usize) -> Vec<Vec<u8>> {
    let text = big_vg(2 * pvs, pvs);
    let mda = 4096u64;
    let size = (text.len() as u64 + 4096).next_multiple_of(4096);
    (0..pvs)
        .map(|p| {
            let raw: String = id('P', p).chars().filter(|c| *c != '-').collect();
            pv_image(
                (mda + size) as usize,
                &raw,
                &[(mda, size, Some(text.as_bytes()))],
            )
        })
        .collect()
}

/// A device that counts the bytes read from it.
struct Counting<'a>(&'a [u8], &'a std::cell::Cell<u64>);

impl crate::io::ReadAt for Counting<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.1.set(self.1.get() + buf.len() as u64);
        self.0.read_exact_at(buf, offset)
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

/// A scan of `pvs` PVs and what `lvm scan` / `lvm plan` do with it: (visits, bytes parsed,
/// bytes read from the devices).
fn scan_work(pvs: usize) -> (u64, u64, u64) {
    let images = pv_set(pvs);
    let read = std::cell::Cell::new(0);
    let devices: Vec<Counting<'_>> = images.iter().map(|i| Counting(i, &read)).collect();
    meter::take();
    let report = scan::scan(&devices);
    // One text in memory for all the PVs holding it, not a copy per PV.
    let shared = |p: &scan::ScannedPv| match &p.mdas[0].outcome {
        scan::MdaOutcome::Text { text, .. } => Some(text.text.clone()),
        _ => None,
    };
    let first = shared(&report.pvs[0]).expect("a text");
    assert!(
        report
            .pvs
            .iter()
            .all(|p| shared(p).is_some_and(|t| std::sync::Arc::ptr_eq(&t, &first)))
    );
    assert_eq!(report.vgs.len(), 1, "{:?}", report.errors);
    let s = &report.vgs[0];
    assert!(s.is_complete() && !s.inconsistent);
    let d = report.devices();
    assert!(
        d.iter()
            .all(|d| matches!(d.status, scan::DeviceStatus::InVg { vg: 0 }))
    );
    for (i, p) in s.vg.pvs.iter().enumerate() {
        assert_eq!(s.device_of(p), Some(i));
    }
    let dev =
        |p: &crate::lvm::model::PhysicalVolume| s.device_of(p).map(|i| DevRef::num(7, i as u32));
    let plan = plan_vg(&s.vg, &dev, &PlanOptions::default()).expect("plans");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    let (v, b) = meter::take();
    (v, b, read.get())
}

#[test]
fn scan_and_plan_are_linear_in_pvs() {
    let (v1, b1, r1) = scan_work(25);
    let (v4, b4, r4) = scan_work(100);
    assert_linear("PV and LV visits", v1, v4, 4.5);
    // Every PV holds the VG's text: it is parsed once for the summary and once for the
    // import, whatever the number of PVs holding it (the text itself grows 4x).
    assert_linear("bytes parsed", b1, b4, 4.5);
    // Each PV holds a full copy of that text (n PVs: n copies of a text growing with n), but
    // a copy whose slot matches one already read is not read again: the bytes read are
    // the labels and headers of each PV plus one text (16x the copies at 4x the PVs).
    assert_linear("bytes read", r1, r4, 4.5);
}
