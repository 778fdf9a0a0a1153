//! lvm2's rules for VG and LV names, with the reason a name is refused.
//!
//! The rules are lvm2's (`lib/misc/lvm-string.c` `_validate_name` and
//! `apply_lvname_restrictions`, `lib/metadata/metadata.c` `validate_new_vg_name` and
//! `vg_validate`, `tools/toollib.c` `validate_restricted_lvname_param`):
//!
//! - every name: not empty, not starting with `-`, not `.` or `..`, only `[A-Za-z0-9+_.-]`,
//!   at most 127 bytes;
//! - a new VG: also no `/dev/<name>` already in the filesystem
//!   ([`check_new_vg_name`]);
//! - a new LV: also not starting `snapshot` or `pvmove`, not containing one of
//!   [`RESERVED_LV_STRINGS`], and `len(vg) + len(lv) + 3 < 128` (the dm name
//!   `vg-lv` with room for escaping and the NUL, as `vg_validate` checks).
//!
//! ```
//! use devmapper::lvm::names::{self, NameReason};
//! assert!(names::check_vg_name("vg0").is_ok());
//! assert!(names::check_lv_name("vg0", "root").is_ok());
//! let e = names::check_lv_name("vg0", "snapshot0").unwrap_err();
//! assert_eq!(e.reason, NameReason::ReservedPrefix { prefix: "snapshot" });
//! assert_eq!(
//!     e.to_string(),
//!     "Names starting \"snapshot\" are reserved. Please choose a different LV name."
//! );
//! assert!(matches!(
//!     names::check_vg_name("-vg").unwrap_err().reason,
//!     NameReason::LeadingHyphen
//! ));
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::MAX_NAME_LEN;

/// `NAME_LEN` of lvm2: a name buffer, NUL included.
pub const NAME_LEN: usize = MAX_NAME_LEN + 1;

/// Prefixes lvm2 keeps for its own LVs (`_lvname_has_reserved_prefix`).
pub const RESERVED_LV_PREFIXES: &[&str] = &["pvmove", "snapshot"];

/// Substrings lvm2 keeps for component and internal LVs
/// (`_lvname_has_reserved_component_string`, then `_lvname_has_reserved_string`), in
/// the order lvm2 checks them.
pub const RESERVED_LV_STRINGS: &[&str] = &[
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog", "_rimage",
    "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare", "_vorigin",
];

/// Which kind of name was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameOf {
    /// A volume group name.
    Vg,
    /// A logical volume name.
    Lv,
}

/// Why lvm2 refuses a name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameReason {
    /// The empty string.
    Empty,
    /// Starts with `-` (the VG-LV separator of dm names).
    LeadingHyphen,
    /// `.` or `..`.
    Dots,
    /// A character outside `[A-Za-z0-9+_.-]`.
    Charset {
        /// The first offending character.
        ch: char,
    },
    /// Longer than 127 bytes.
    TooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// An LV name starting with a prefix lvm2 keeps for itself.
    ReservedPrefix {
        /// `snapshot` or `pvmove`.
        prefix: &'static str,
    },
    /// An LV name containing a component suffix lvm2 keeps for itself.
    ReservedString {
        /// One of [`RESERVED_LV_STRINGS`].
        string: &'static str,
    },
    /// `len(vg) + len(lv) + 3` is 128 or more.
    DevNameTooLong {
        /// The VG name.
        vg: String,
        /// `len(vg) + len(lv) + 3`.
        len: usize,
    },
    /// A new VG whose `/dev/<name>` already exists.
    ExistsInDevDir {
        /// The existing path.
        path: PathBuf,
    },
    /// A new LV whose name is taken in its VG.
    LvExists {
        /// The VG name.
        vg: String,
    },
    /// A new VG whose name another VG already has.
    VgExists,
}

/// A name lvm2 would refuse, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameError {
    /// VG or LV.
    pub of: NameOf,
    /// The refused name.
    pub name: String,
    /// Why.
    pub reason: NameReason,
}

impl fmt::Display for NameError {
    /// lvm2's messages (`display_name_error` followed by the caller's line, and the
    /// reserved-name, length and existence messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.name;
        let detail = match &self.reason {
            NameReason::Empty => Some("Name is zero length.".to_string()),
            NameReason::LeadingHyphen => Some("Name cannot start with hyphen.".to_string()),
            NameReason::Dots => {
                Some("Name starts with . or .. and has no following character(s).".to_string())
            }
            NameReason::Charset { .. } => Some(
                "Name contains invalid character, valid set includes: [a-zA-Z0-9.-_+].".to_string(),
            ),
            NameReason::TooLong { .. } => Some(format!(
                "Name length exceeds maximum limit of {MAX_NAME_LEN}."
            )),
            NameReason::ReservedPrefix { prefix } => {
                return write!(
                    f,
                    "Names starting \"{prefix}\" are reserved. Please choose a different LV name."
                );
            }
            NameReason::ReservedString { string } => {
                return write!(
                    f,
                    "Names including \"{string}\" are reserved. Please choose a different LV name."
                );
            }
            NameReason::DevNameTooLong { vg, len } => {
                return write!(f, "LV name \"{vg}/{n}\" length {len} is not supported.");
            }
            NameReason::ExistsInDevDir { path } => {
                return write!(f, "{}: already exists in filesystem", path.display());
            }
            NameReason::LvExists { vg } => {
                return write!(
                    f,
                    "Logical Volume \"{n}\" already exists in volume group \"{vg}\""
                );
            }
            NameReason::VgExists => {
                return write!(f, "A volume group called {n} already exists.");
            }
        };
        let detail = detail.unwrap_or_default();
        match self.of {
            NameOf::Vg => write!(f, "{detail} New volume group name \"{n}\" is invalid."),
            NameOf::Lv => write!(f, "{detail} Logical volume name \"{n}\" is invalid."),
        }
    }
}

impl std::error::Error for NameError {}

/// lvm2's `_validate_name`, the rule every VG and LV name follows.
pub fn validate_name(name: &str) -> Result<(), NameReason> {
    if name.is_empty() {
        return Err(NameReason::Empty);
    }
    if name.starts_with('-') {
        return Err(NameReason::LeadingHyphen);
    }
    if name == "." || name == ".." {
        return Err(NameReason::Dots);
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
    {
        return Err(NameReason::Charset { ch });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameReason::TooLong { len: name.len() });
    }
    Ok(())
}

/// The rules of a VG name that do not depend on the system (see [`check_new_vg_name`]).
pub fn check_vg_name(name: &str) -> Result<(), NameError> {
    validate_name(name).map_err(|reason| NameError {
        of: NameOf::Vg,
        name: name.to_string(),
        reason,
    })
}

/// A name for a new VG, as `vgcreate` checks it: [`check_vg_name`], then no
/// `<dev_dir>/<name>` in the filesystem (lvm2's `dev_dir` is `/dev/`: a VG called `disk`,
/// `mapper` or `zero` would collide with what is there).
pub fn check_new_vg_name(name: &str, dev_dir: &Path) -> Result<(), NameError> {
    check_vg_name(name)?;
    let path = dev_dir.join(name);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(NameError {
            of: NameOf::Vg,
            name: name.to_string(),
            reason: NameReason::ExistsInDevDir { path },
        });
    }
    Ok(())
}

/// The reserved prefix or substring `name` uses, if any (`apply_lvname_restrictions`).
pub fn lv_name_restriction(name: &str) -> Option<NameReason> {
    if let Some(prefix) = RESERVED_LV_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Some(NameReason::ReservedPrefix { prefix });
    }
    RESERVED_LV_STRINGS
        .iter()
        .find(|s| name.contains(**s))
        .map(|string| NameReason::ReservedString { string })
}

/// A name for a new LV in VG `vg`, as `lvcreate -n` checks it: the name rule, the
/// reserved prefixes and substrings, and the dm-name length rule of `vg_validate`.
pub fn check_lv_name(vg: &str, name: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        of: NameOf::Lv,
        name: name.to_string(),
        reason,
    };
    validate_name(name).map_err(err)?;
    if let Some(reason) = lv_name_restriction(name) {
        return Err(err(reason));
    }
    check_dev_name_len(vg, name).map_err(err)
}

/// `vg_validate`'s rule: `len(vg) + len(lv) + 3 < NAME_LEN`.
pub fn check_dev_name_len(vg: &str, lv: &str) -> Result<(), NameReason> {
    let len = vg.len() + lv.len() + 3;
    if len >= NAME_LEN {
        return Err(NameReason::DevNameTooLong {
            vg: vg.to_string(),
            len,
        });
    }
    Ok(())
}

/// [`check_lv_name`] plus "not already an LV of `vg`".
pub fn check_new_lv_name(vg: &super::model::VolumeGroup, name: &str) -> Result<(), NameError> {
    check_lv_name(&vg.name, name)?;
    if vg.lvs.iter().any(|lv| lv.name == name) {
        return Err(NameError {
            of: NameOf::Lv,
            name: name.to_string(),
            reason: NameReason::LvExists {
                vg: vg.name.clone(),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vg_reason(n: &str) -> NameReason {
        check_vg_name(n).unwrap_err().reason
    }
    fn lv_reason(vg: &str, n: &str) -> NameReason {
        check_lv_name(vg, n).unwrap_err().reason
    }

    #[test]
    fn accepted_names() {
        for n in ["vg0", "a", "A-b_c.d+e", "..a", ".a", "a-", "_x", "+"] {
            assert_eq!(check_vg_name(n), Ok(()), "{n}");
            assert_eq!(check_lv_name("vg", n), Ok(()), "{n}");
        }
        assert_eq!(check_vg_name(&"v".repeat(127)), Ok(()));
        // A component string without the underscore is a plain name.
        assert_eq!(check_lv_name("vg", "tdata"), Ok(()));
        assert_eq!(check_lv_name("vg", "my-snapshot"), Ok(()));
        assert_eq!(check_lv_name("vg", "Snapshot0"), Ok(()));
    }

    #[test]
    fn basic_rule_reasons() {
        assert_eq!(vg_reason(""), NameReason::Empty);
        assert_eq!(vg_reason("-a"), NameReason::LeadingHyphen);
        assert_eq!(vg_reason("."), NameReason::Dots);
        assert_eq!(vg_reason(".."), NameReason::Dots);
        assert_eq!(vg_reason("a/b"), NameReason::Charset { ch: '/' });
        assert_eq!(vg_reason("a b"), NameReason::Charset { ch: ' ' });
        assert_eq!(vg_reason("é"), NameReason::Charset { ch: 'é' });
        assert_eq!(vg_reason("a#"), NameReason::Charset { ch: '#' });
        assert_eq!(
            vg_reason(&"v".repeat(128)),
            NameReason::TooLong { len: 128 }
        );
        // lvm2 checks the charset before the length.
        assert_eq!(
            vg_reason(&format!("{}/", "v".repeat(200))),
            NameReason::Charset { ch: '/' }
        );
        assert_eq!(lv_reason("vg", "-lv"), NameReason::LeadingHyphen);
    }

    #[test]
    fn reserved_lv_names() {
        assert_eq!(
            lv_reason("vg", "snapshot"),
            NameReason::ReservedPrefix { prefix: "snapshot" }
        );
        assert_eq!(
            lv_reason("vg", "pvmove0"),
            NameReason::ReservedPrefix { prefix: "pvmove" }
        );
        for s in RESERVED_LV_STRINGS {
            assert_eq!(
                lv_reason("vg", &format!("lv{s}")),
                NameReason::ReservedString { string: s }
            );
            assert_eq!(
                lv_reason("vg", &format!("a{s}b")),
                NameReason::ReservedString { string: s }
            );
        }
        // The reserved names are fine for a VG.
        assert_eq!(check_vg_name("snapshot0"), Ok(()));
        assert_eq!(check_vg_name("x_tdata"), Ok(()));
    }

    #[test]
    fn dev_name_length() {
        let vg = "v".repeat(60);
        assert_eq!(check_lv_name(&vg, &"l".repeat(64)), Ok(()));
        assert_eq!(
            lv_reason(&vg, &"l".repeat(65)),
            NameReason::DevNameTooLong {
                vg: vg.clone(),
                len: 128
            }
        );
    }

    #[test]
    fn new_vg_collides_with_dev_entries() {
        let dir = std::env::temp_dir().join(format!("names-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mapper")).unwrap();
        let e = check_new_vg_name("mapper", &dir).unwrap_err();
        assert_eq!(
            e.reason,
            NameReason::ExistsInDevDir {
                path: dir.join("mapper")
            }
        );
        assert_eq!(check_new_vg_name("vgnew", &dir), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_are_lvm2s() {
        assert_eq!(
            check_vg_name("a b").unwrap_err().to_string(),
            "Name contains invalid character, valid set includes: [a-zA-Z0-9.-_+]. \
             New volume group name \"a b\" is invalid."
        );
        assert_eq!(
            check_lv_name("vg", "x_tmeta").unwrap_err().to_string(),
            "Names including \"_tmeta\" are reserved. Please choose a different LV name."
        );
        assert_eq!(
            check_lv_name("vg", "").unwrap_err().to_string(),
            "Name is zero length. Logical volume name \"\" is invalid."
        );
    }
}
