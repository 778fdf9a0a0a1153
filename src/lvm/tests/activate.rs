use super::sample::SAMPLE;
use crate::lvm::activate::{ActivateError, check_metadata, uuid_prefix, vg_part_is};
use crate::lvm::check::Blocker;
use crate::lvm::config::ParseMode;
use crate::lvm::model::VolumeGroup;

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_text(text.as_bytes(), ParseMode::Disk).unwrap()
}

const STATUS: &str = "[\"RESIZEABLE\", \"READ\", \"WRITE\"]";

#[test]
fn plain_vg_passes() {
    check_metadata(&vg(SAMPLE), None).unwrap();
}

#[test]
fn exported_is_refused() {
    let t = SAMPLE.replacen(
        STATUS,
        "[\"RESIZEABLE\", \"READ\", \"WRITE\", \"EXPORTED\"]",
        1,
    );
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::Exported { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("vg0 is exported"), "{e}");
}

#[test]
fn foreign_system_id_is_refused() {
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "system_id = \"otherhost\"\nextent_size = 8192",
        1,
    );
    let e = check_metadata(&vg(&t), Some("thishost")).unwrap_err();
    assert!(
        matches!(&e, ActivateError::Blocked(Blocker::ForeignSystemId { system_id, .. }) if system_id == "otherhost"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"thishost\""), "{e}");
    // No local system id: a VG with one is foreign too.
    assert!(check_metadata(&vg(&t), None).is_err());
    check_metadata(&vg(&t), Some("otherhost")).unwrap();
}

#[test]
fn lock_type_is_refused() {
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "lock_type = \"sanlock\"\nextent_size = 8192",
        1,
    );
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::LockType { .. })),
        "{e:?}"
    );
    let t = SAMPLE.replacen(
        "extent_size = 8192",
        "lock_type = \"none\"\nextent_size = 8192",
        1,
    );
    check_metadata(&vg(&t), None).unwrap();
}

#[test]
fn missing_pv_is_refused() {
    let v = vg(SAMPLE);
    let pv0 = v.pvs.first().unwrap();
    let handle = pv0.handle.clone();
    // Flag the first PV MISSING.
    let needle = format!("{handle} {{\nid = \"{}\"", pv0.id);
    let at = SAMPLE.find(&needle).expect("sample PV layout");
    let status_at = at + SAMPLE[at..].find("status = [").unwrap() + "status = [".len();
    let mut t = SAMPLE.to_string();
    t.insert_str(status_at, "\"MISSING\", ");
    let e = check_metadata(&vg(&t), None).unwrap_err();
    assert!(
        matches!(e, ActivateError::Blocked(Blocker::MissingPvs { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(&handle), "{e}");
}

#[test]
fn dm_name_split() {
    assert!(vg_part_is("vg0-root", "vg0"));
    assert!(vg_part_is("my--vg-lv--1-real", "my-vg"));
    assert!(!vg_part_is("my--vg-lv", "my"));
    assert!(!vg_part_is("vg0x-root", "vg0"));
    assert!(!vg_part_is("vg0", "vg0"));
}

#[test]
fn prefix() {
    let v = vg(SAMPLE);
    assert_eq!(uuid_prefix(&v.id), "LVM-kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeE");
}
