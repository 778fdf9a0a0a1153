//! Reading the fields of one metadata section as lvm2's importer reads them: required
//! keys, integer widths, strings, ids and flag lists.

use super::types::{FLAGS_ONLY, Flags};
use super::warning::{Warn, WarningKind};
use crate::lvm::config::{Node, Scalar};
use crate::lvm::error::{Error, ModelErrorKind, Result, ValueType};
use crate::lvm::id::LvmId;

pub(super) fn err(path: &str, kind: ModelErrorKind) -> Error {
    Error::Model {
        path: path.to_string(),
        kind,
    }
}

/// [`ModelErrorKind::WrongType`] at `path`.
pub(super) fn wrong_type(path: &str, key: &str, expected: ValueType) -> Error {
    err(
        path,
        ModelErrorKind::WrongType {
            key: key.to_string(),
            expected,
        },
    )
}

pub(super) fn req<'c, 'a>(node: &Node<'c, 'a>, key: &str, path: &str) -> Result<Node<'c, 'a>> {
    node.find(key).ok_or_else(|| {
        err(
            path,
            ModelErrorKind::MissingKey {
                key: key.to_string(),
            },
        )
    })
}

pub(super) fn get_int(node: &Node<'_, '_>, key: &str, path: &str) -> Result<i64> {
    let n = req(node, key, path)?;
    match n.value().and_then(|v| v.items().first()) {
        Some(Scalar::Int(i)) => Ok(*i),
        _ => Err(wrong_type(path, key, ValueType::Integer)),
    }
}

/// A 32-bit field read as lvm2 reads it (`dm_config_get_uint32`: the low 32 bits).
pub(super) fn get_u32(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<u64> {
    let i = get_int(node, key, path)?;
    let v = u64::from(i as u32);
    if u64::try_from(i) != Ok(v) {
        w.push(
            path,
            WarningKind::Truncated {
                key: key.to_string(),
                value: i,
                read_as: v,
            },
        );
    }
    Ok(v)
}

pub(super) fn opt_u32(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<Option<u64>> {
    if node.find(key).is_none() {
        return Ok(None);
    }
    get_u32(node, key, path, w).map(Some)
}

/// A 64-bit field read as lvm2 reads it (`dm_config_get_uint64`: negative numbers wrap).
pub(super) fn get_u64w(node: &Node<'_, '_>, key: &str, path: &str, w: &Warn) -> Result<u64> {
    let i = get_int(node, key, path)?;
    let v = i as u64;
    if i < 0 {
        w.push(
            path,
            WarningKind::Truncated {
                key: key.to_string(),
                value: i,
                read_as: v,
            },
        );
    }
    Ok(v)
}

/// An optional integer that lvm2 reads with a fallback of 0 when absent or not an integer.
pub(super) fn lenient_u64(node: &Node<'_, '_>, key: &str) -> u64 {
    match node
        .find(key)
        .and_then(|n| n.value())
        .and_then(|v| v.items().first().cloned())
    {
        Some(Scalar::Int(i)) => i as u64,
        _ => 0,
    }
}

/// A string lvm2 reads with `dm_config_get_str` and ignores when it is not one.
pub(super) fn lenient_str(node: &Node<'_, '_>, key: &str) -> Option<String> {
    match node.get_list(key)?.first()? {
        Scalar::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(super) fn get_str<'c>(node: &Node<'c, '_>, key: &str, path: &str) -> Result<&'c str> {
    let n = req(node, key, path)?;
    match n.value().and_then(|v| v.items().first()) {
        Some(Scalar::Str(s)) => Ok(s),
        _ => Err(wrong_type(path, key, ValueType::String)),
    }
}

pub(super) fn opt_str(node: &Node<'_, '_>, key: &str, path: &str) -> Result<Option<String>> {
    if node.find(key).is_none() {
        return Ok(None);
    }
    get_str(node, key, path).map(|s| Some(s.to_string()))
}

pub(super) fn get_id(node: &Node<'_, '_>, path: &str) -> Result<LvmId> {
    let s = get_str(node, "id", path)?;
    s.parse().map_err(|source| {
        err(
            path,
            ModelErrorKind::BadId {
                id: s.to_string(),
                source,
            },
        )
    })
}

pub(super) fn str_list(node: &Node<'_, '_>, key: &str, path: &str) -> Result<Vec<String>> {
    let Some(n) = node.find(key) else {
        return Ok(Vec::new());
    };
    let items = n.value().map(|v| v.items()).unwrap_or_default();
    items
        .iter()
        .map(|s| match s {
            Scalar::Str(s) => Ok(s.to_string()),
            _ => Err(err(
                path,
                ModelErrorKind::NotStrings {
                    key: key.to_string(),
                },
            )),
        })
        .collect()
}

/// `read_flags`: unknown entries are an error for `status` and ignored for `flags`.
pub(super) fn read_flags(
    node: &Node<'_, '_>,
    key: &str,
    known: &[&str],
    strict: bool,
    path: &str,
) -> Result<Flags> {
    let mut out = Flags::new();
    for f in str_list(node, key, path)? {
        if strict && FLAGS_ONLY.contains(&f.as_str()) {
            return Err(err(path, ModelErrorKind::UnknownStatusFlag { flag: f }));
        }
        if known.contains(&f.as_str()) {
            out.insert(f);
        } else if strict {
            return Err(err(path, ModelErrorKind::UnknownStatusFlag { flag: f }));
        }
    }
    Ok(out)
}
