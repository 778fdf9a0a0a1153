#![no_main]
//! LV export over arbitrary metadata text: every LV (and every snapshot) is opened against
//! small in-memory PVs and read at its start and end. Reader construction must stay
//! bounded however the LVs stack (shared sub-readers, a depth limit), and no input may
//! panic.
use devmapper::io::ReadAt;
use devmapper::lvm::config::ParseMode;
use devmapper::lvm::export::{LvReader, snapshot_reader};
use devmapper::lvm::model::{PhysicalVolume, VolumeGroup};
use libfuzzer_sys::fuzz_target;

/// Each PV: 64 KiB of a pattern derived from its position in the metadata.
fn pvs(vg: &VolumeGroup) -> Vec<Vec<u8>> {
    (0..vg.pvs.len())
        .map(|i| (0..64 * 1024).map(|b| (b / 512 + i) as u8).collect())
        .collect()
}

fn probe<R: ReadAt + ?Sized>(r: &R) {
    let Ok(size) = r.size() else { return };
    let mut buf = [0u8; 4096];
    let n = size.min(buf.len() as u64) as usize;
    let _ = r.read_exact_at(&mut buf[..n], 0);
    let _ = r.read_exact_at(&mut buf[..n], size - n as u64);
    // A read across the end must fail, not panic.
    let _ = r.read_exact_at(&mut buf, size.saturating_sub(1));
}

fuzz_target!(|data: &[u8]| {
    for mode in [ParseMode::Disk, ParseMode::File] {
        let Ok(vg) = VolumeGroup::from_text(data, mode) else {
            continue;
        };
        let images = pvs(&vg);
        let src = |p: &PhysicalVolume| {
            let i = vg.pvs.iter().position(|q| std::ptr::eq(q, p))?;
            images.get(i).map(|v| &v[..])
        };
        for lv in vg.lvs.iter().take(64) {
            if let Ok(r) = LvReader::new(&vg, &lv.name, &src) {
                probe(&r);
            }
            if vg.cow_link(&lv.name).is_some()
                && let Ok(r) = snapshot_reader(&vg, &lv.name, &src)
            {
                probe(&r);
            }
        }
    }
});
