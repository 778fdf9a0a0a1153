//! Sample metadata texts shared by the model, plan and scan tests.
//!
//! The texts are files in `fixtures/` (`.vg` a whole metadata text, `.lv`/`.pv` one
//! section, `.in` a section template with `@KEY@` placeholders), compiled in with
//! `include_str!`: the unit tests also run in the test VM, whose guest has no source tree
//! to read them from.

/// The on-disk sample of the design note: vg0 on one PV, root + snapshot, home.
pub const SAMPLE: &str = include_str!("fixtures/sample.vg");

/// Two PVs, a hyphenated VG and LV, a striped LV, a two-segment LV and a thin pool with a
/// thin LV, as lvm2 would write them.
pub const THIN_STRIPED: &str = include_str!("fixtures/thin_striped.vg");

/// An extra LV section, inserted before `snapshot0` of [`SAMPLE`].
pub fn with_lv(text: &str, section: &str) -> String {
    text.replacen("snapshot0 {", &format!("{section}\nsnapshot0 {{"), 1)
}

/// A section template with its `@KEY@` placeholders filled, without the final newline.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.trim_end().to_string();
    for (key, value) in vars {
        s = s.replace(&format!("@{key}@"), value);
    }
    assert!(!s.contains('@'), "a placeholder is left in {s}");
    s
}

/// A `snapshotN` section (the id ends with the last 3 characters of `name`).
pub fn snap_section(name: &str, origin: &str, cow: &str, chunk: u32) -> String {
    let tail = &name[name.len() - 3..];
    fill(
        include_str!("fixtures/snapshot_lv.lv.in"),
        &[
            ("NAME", name),
            ("ID_TAIL", tail),
            ("CHUNK", &chunk.to_string()),
            ("ORIGIN", origin),
            ("COW", cow),
        ],
    )
}

/// A visible linear LV of 256 extents on `pv0` from extent `pe`.
pub fn plain_lv(name: &str, id_tail: &str, pe: u32) -> String {
    fill(
        include_str!("fixtures/plain_lv.lv.in"),
        &[
            ("NAME", name),
            ("ID_TAIL", id_tail),
            ("PE", &pe.to_string()),
        ],
    )
}
