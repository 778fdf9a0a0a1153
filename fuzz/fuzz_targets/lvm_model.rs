#![no_main]
//! The VG importer and the activation plan over arbitrary text.
use devmapper::lvm::config::ParseMode;
use devmapper::lvm::model::{PhysicalVolume, VolumeGroup};
use devmapper::lvm::plan::{PlanOptions, plan_vg};
use devmapper::targets::DevRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for mode in [ParseMode::Disk, ParseMode::File] {
        if let Ok(vg) = VolumeGroup::from_text(data, mode) {
            let dev = |p: &PhysicalVolume| DevRef::path(format!("/dev/{}", p.handle)).ok();
            let _ = plan_vg(&vg, &dev, &PlanOptions::default());
        }
    }
});
