//! The check that a VG read from disk prints back unchanged
//! ([`check_printable`](super::check_printable)).

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};

use super::out::{Out, print_header};
use super::print::print_vg;
use super::{DiffKind, PrintError, PrintedVg, TextHeader, disk_text};
use crate::lvm::config::{self, Node, ParseMode, Value};
use crate::lvm::metadata_text::detect_mode;
use crate::lvm::model::{SegmentKind, VolumeGroup};

/// Refuse to write `vg` unless printing it gives back the text it was imported from:
/// `committed` (on-disk or file form) and [`disk_text`] of `vg` are parsed and their VG
/// sections compared key by key, with `contents` and `version`; the other header fields
/// (description, creation host and time) are ignored. The first difference is reported,
/// with its path. Key order is not compared (it is the writer's: lvm2 versions differ),
/// nor the order of flags in `status`/`flags` lists; keys lvm2 adds with the value it
/// assumes when they are absent (`format = "lvm2"`, `flags = []`, `metadata_copies = 0`)
/// are not differences.
///
/// This is how VGs with segment types this crate cannot print (mirror, raid, cache ...),
/// keys the model does not hold, or layouts lvm2 itself would not write are refused before
/// anything is written.
///
/// # Errors
/// [`PrintError`]: which LV or key, and what would change.
pub fn check_printable(vg: &VolumeGroup, committed: &[u8]) -> Result<(), PrintError> {
    check_printable_base(vg, committed).map(drop)
}

/// [`check_printable`], returning the on-disk print of `vg` when the committed text is
/// exactly that print (lvm2's texts and ours are): the base from which the next
/// [`disk_text_from`](super::disk_text_from) copies unchanged LV sections. `None` when the
/// texts are equal only key by key (another writer's order or spacing).
///
/// # Errors
/// As [`check_printable`].
pub fn check_printable_base(
    vg: &VolumeGroup,
    committed: &[u8],
) -> Result<Option<PrintedVg>, PrintError> {
    for lv in &vg.lvs {
        for s in &lv.segments {
            if let SegmentKind::Other { .. } = s.kind {
                return Err(PrintError::UnprintableSegment {
                    vg: vg.name.clone(),
                    lv: lv.name.clone(),
                    segtype: s.type_name.clone(),
                });
            }
        }
    }
    if let Some(printed) = printed_verbatim(vg, committed) {
        return Ok(Some(printed));
    }
    let old =
        config::parse_with(committed, detect_mode(committed)).map_err(PrintError::Committed)?;
    let printed = disk_text(vg, &TextHeader::now(""));
    let new =
        config::parse_with(&printed, ParseMode::Disk).map_err(|source| PrintError::Reparse {
            vg: vg.name.clone(),
            source,
        })?;
    let differs = |path: String, kind| PrintError::Differs {
        vg: vg.name.clone(),
        path,
        kind,
    };
    let old_vg = old
        .nodes()
        .find(|n| n.is_section())
        .ok_or(PrintError::NoVgSection)?;
    let new_vg = new
        .nodes()
        .find(|n| n.is_section())
        .ok_or(PrintError::NoVgSection)?;
    if old_vg.key() != new_vg.key() {
        return Err(differs(
            String::new(),
            DiffKind::Renamed {
                committed: old_vg.key().to_string(),
                printed: new_vg.key().to_string(),
            },
        ));
    }
    for key in ["contents", "version"] {
        if let Some(kind) = value_diff(old.find(key), new.find(key), key) {
            return Err(differs(key.to_string(), kind));
        }
    }
    if let Some((path, kind)) = node_diff(old_vg, new_vg, old_vg.key()) {
        return Err(differs(path, kind));
    }
    Ok(None)
}

/// The fast path of [`check_printable`]: the committed text starts with exactly the VG
/// section [`disk_text`] prints for `vg` (lvm2's on-disk texts and ours do), and what
/// follows is a header block without sections whose `contents` and `version` are the
/// printed ones. Then the trees compared by the slow path are equal: one print instead of
/// two parses, a print and a tree walk. The print is returned; `None` sends the caller to
/// the slow path.
fn printed_verbatim(vg: &VolumeGroup, committed: &[u8]) -> Option<PrintedVg> {
    let mut o = Out::with_capacity(false, committed.len());
    let lvs = print_vg(&mut o, vg, None);
    let rest = committed.strip_prefix(o.buf.as_bytes())?;
    let rest = rest.strip_suffix(b"\0").unwrap_or(rest);
    let mut h = Out::new(false);
    print_header(&mut h, &TextHeader::now(""));
    let (Ok(old), Ok(new)) = (
        config::parse_with(rest, ParseMode::Disk),
        config::parse_with(h.buf.as_bytes(), ParseMode::Disk),
    ) else {
        return None;
    };
    let verbatim = !old.nodes().any(|n| n.is_section())
        && ["contents", "version"]
            .iter()
            .all(|k| value_diff(old.find(k), new.find(k), k).is_none());
    verbatim.then_some(PrintedVg {
        text: o.buf,
        file: false,
        lvs,
    })
}

// ---------------------------------------------------------------------------------------
// Comparing trees.

fn show_value(v: Option<Value<'_, '_>>) -> String {
    let mut s = String::new();
    match v {
        None => s.push_str("(none)"),
        Some(Value::Scalar(x)) => config::print_scalar(&mut s, x),
        Some(Value::Array(items)) => {
            s.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                config::print_scalar(&mut s, x);
            }
            s.push(']');
        }
    }
    s
}

fn value_diff(old: Option<Node<'_, '_>>, new: Option<Node<'_, '_>>, key: &str) -> Option<DiffKind> {
    match (old, new) {
        (None, None) => None,
        (Some(_), None) => Some(DiffKind::Dropped { key: key.into() }),
        (None, Some(_)) => Some(DiffKind::Added { key: key.into() }),
        (Some(o), Some(n)) => {
            let (ov, nv) = (o.value(), n.value());
            let (oi, ni) = (ov.map(|v| v.items()), nv.map(|v| v.items()));
            // Flag lists are sets to lvm2 (printed in its table order); everything else
            // is compared item by item (a scalar and a one-item list read the same).
            let same = if key == "status" || key == "flags" {
                let set = |i: Option<&[config::Scalar<'_>]>| {
                    i.unwrap_or_default()
                        .iter()
                        .map(|x| format!("{x:?}"))
                        .collect::<BTreeSet<_>>()
                };
                set(oi) == set(ni)
            } else {
                oi == ni
            };
            (!same).then(|| DiffKind::Value {
                committed: show_value(ov),
                printed: show_value(nv),
            })
        }
    }
}

/// Keys lvm2 writes whatever the text it read said, with the value it assumes when they
/// are absent: printing them adds nothing.
fn default_addition(n: &Node<'_, '_>) -> bool {
    let items = n.value().map(|v| v.items()).unwrap_or_default();
    match n.key() {
        "format" => matches!(items, [config::Scalar::Str(s)] if s == "lvm2"),
        "flags" => items.is_empty(),
        "metadata_copies" => matches!(items, [config::Scalar::Int(0)]),
        _ => false,
    }
}

/// The first difference below two nodes with the same key, as (path, kind). Siblings are
/// matched by key (the n-th `k` with the n-th `k`): the order of keys is the writer's
/// (lvm2 versions differ), not data.
fn node_diff(old: Node<'_, '_>, new: Node<'_, '_>, path: &str) -> Option<(String, DiffKind)> {
    let shape = |n: &Node<'_, '_>| if n.is_section() { "section" } else { "value" };
    if old.is_section() != new.is_section() {
        return Some((
            path.to_string(),
            DiffKind::Shape {
                committed: shape(&old),
                printed: shape(&new),
            },
        ));
    }
    if !old.is_section() {
        return value_diff(Some(old), Some(new), old.key()).map(|k| (path.to_string(), k));
    }
    let group = |n: Node<'_, '_>| {
        let mut m: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in n.children().enumerate() {
            m.entry(c.key().to_string()).or_default().push(i);
        }
        m
    };
    let news: Vec<Node<'_, '_>> = new.children().collect();
    let (og, ng) = (group(old), group(new));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for o in old.children() {
        let k = seen.entry(o.key()).or_default();
        let nth = *k;
        *k += 1;
        let Some(n) = ng
            .get(o.key())
            .and_then(|v| v.get(nth))
            .and_then(|&i| news.get(i))
        else {
            return Some((
                path.to_string(),
                DiffKind::Dropped {
                    key: o.key().to_string(),
                },
            ));
        };
        if let Some(d) = node_diff(o, *n, &format!("{path}/{}", o.key())) {
            return Some(d);
        }
    }
    for (k, idx) in &ng {
        let have = og.get(k).map_or(0, Vec::len);
        for &i in idx.iter().skip(have) {
            if let Some(n) = news.get(i)
                && !default_addition(n)
            {
                return Some((path.to_string(), DiffKind::Added { key: k.clone() }));
            }
        }
    }
    None
}
