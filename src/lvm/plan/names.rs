//! dm names, uuids and `/dev/mapper` references of planned devices.
#![forbid(unsafe_code)]

use crate::DmName;
use crate::lvm::id::LvmId;
use crate::targets::{DevPathError, DevRef};

/// Where udev (and this crate's node maintenance) put a dm device's node.
const MAPPER_DIR: &str = "/dev/mapper/";

/// `dm_build_dm_name`: every `-` in VG and LV doubled, joined by `-`, plus `-layer`
/// (a layer starting with `_` is appended as is).
pub fn dm_name(vg: &str, lv: &str, layer: Option<&str>) -> String {
    let mut out = String::with_capacity(vg.len() + lv.len() + 8);
    let dbl = |out: &mut String, s: &str| {
        for c in s.chars() {
            out.push(c);
            if c == '-' {
                out.push('-');
            }
        }
    };
    dbl(&mut out, vg);
    out.push('-');
    dbl(&mut out, lv);
    if let Some(l) = layer {
        if !l.starts_with('_') {
            out.push('-');
        }
        dbl(&mut out, l);
    }
    out
}

/// `build_dm_uuid`: `LVM-` + VG id + LV id, plus `-layer`.
pub fn dm_uuid(vg: &LvmId, lv: &LvmId, layer: Option<&str>) -> String {
    let mut s = format!("LVM-{}{}", vg.as_str(), lv.as_str());
    if let Some(l) = layer {
        s.push('-');
        s.push_str(l);
    }
    s
}

/// The table reference to dm device `name`: `/dev/mapper/<name>`, as lvm2 writes it
/// before libdm resolves it (see [`mapper_name`] for the way back).
///
/// ```
/// use devmapper::DmName;
/// use devmapper::lvm::plan::{mapper_name, mapper_ref};
/// let n = DmName::new("vg0-root-real").unwrap();
/// let r = mapper_ref(&n).unwrap();
/// assert_eq!(r.to_string(), "/dev/mapper/vg0-root-real");
/// assert_eq!(mapper_name(&r), Some(n));
/// assert_eq!(mapper_name(&"8:16".parse().unwrap()), None);
/// // A dm name may hold a space, a table argument cannot.
/// assert!(mapper_ref(&DmName::new("a b").unwrap()).is_err());
/// ```
///
/// # Errors
/// A name with whitespace or a backslash, which no table argument can hold.
pub fn mapper_ref(name: &DmName) -> Result<DevRef, DevPathError> {
    DevRef::path(format!("{MAPPER_DIR}{name}"))
}

/// The dm device a `/dev/mapper/<name>` reference names.
pub fn mapper_name(r: &DevRef) -> Option<DmName> {
    match r {
        DevRef::Path(p) => DmName::new(p.as_str().strip_prefix(MAPPER_DIR)?).ok(),
        DevRef::Num(_) => None,
    }
}
