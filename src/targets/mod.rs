//! Typed targets: the parameters and status of each target family, both ways.
//!
//! Every target type the snapshot and LVM workflows touch has a typed model whose
//! `FromStr` reads the kernel's text and whose `Display` writes it back byte for byte as
//! the kernel prints it (the *canonical* form). Anything else is kept as [`Opaque`] text.
//!
//! | target type | params | status |
//! |---|---|---|
//! | `linear` | [`Linear`] | empty |
//! | `striped` | [`Striped`] | [`StripedStatus`] |
//! | `zero` | [`Zero`] | empty |
//! | `error` | [`ErrorTarget`] | empty |
//! | `snapshot`, `snapshot-merge` | [`Snapshot`] | [`SnapshotStatus`] |
//! | `snapshot-origin` | [`SnapshotOrigin`] | empty |
//! | `thin-pool` | [`ThinPool`] | [`ThinPoolStatus`] |
//! | `thin` | [`Thin`] | [`ThinStatus`] |
//! | anything else | [`Opaque`] | [`OpaqueStatus`] |
//!
//! [`Target::parse`] and [`TargetStatus::parse`] take the target type name and the text,
//! which is exactly what the kernel returns per target from `DM_TABLE_STATUS`.
//!
//! ```
//! use devmapper::targets::{DevRef, Linear, Target, TargetStatus};
//! use devmapper::units::Sectors;
//! let t = Target::parse("linear", "253:0 0").unwrap();
//! assert_eq!(t, Target::Linear(Linear::new(DevRef::num(253, 0), Sectors(0))));
//! assert_eq!((t.target_type(), t.params().as_str()), ("linear", "253:0 0"));
//!
//! let unknown = Target::parse("flakey", "8:0 0 5 5 1 drop_writes").unwrap();
//! assert_eq!(unknown.params(), "8:0 0 5 5 1 drop_writes");
//!
//! let st = TargetStatus::parse("striped", "2 8:0 8:16 1 AA").unwrap();
//! assert_eq!(st.to_string(), "2 8:0 8:16 1 AA");
//! assert!(TargetStatus::parse("snapshot", "12/x 8").is_err());
//! ```
#![forbid(unsafe_code)]

use std::fmt;

pub mod devref;
pub mod error_target;
pub mod linear;
pub mod opaque;
pub mod snapshot;
pub mod striped;
pub(crate) mod text;
pub mod thin;
pub mod zero;

#[cfg(test)]
pub(crate) mod tests;

pub use devref::{DevPath, DevPathError, DevRef, ResolveError};
pub use error_target::ErrorTarget;
pub use linear::Linear;
pub use opaque::{Opaque, OpaqueStatus, TargetNameError, check_target_name};
pub use snapshot::{
    ExceptionStore, MergeProgress, Snapshot, SnapshotFeatures, SnapshotOrigin, SnapshotStatus,
    SnapshotUsage, percent,
};
pub use striped::{Stripe, StripeHealth, StripeState, Striped, StripedStatus};
pub use thin::{
    BlockUsage, DiscardMode, NoSpacePolicy, PoolMode, THIN_MAX_DEV_ID, THIN_POOL_MAX_BLOCK_SIZE,
    THIN_POOL_MAX_FEATURES, THIN_POOL_MIN_BLOCK_SIZE, Thin, ThinPool, ThinPoolFeatures,
    ThinPoolStatus, ThinPoolUsage, ThinStatus,
};
pub use zero::Zero;

/// Which text of a target an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// The table parameters.
    Params,
    /// The status string.
    Status,
}

impl fmt::Display for TextKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextKind::Params => "params",
            TextKind::Status => "status",
        })
    }
}

/// A target's params or status text that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{target} {kind}, byte {offset}: {reason}")]
pub struct ParseError {
    /// The target type whose text was parsed.
    pub target: String,
    /// Params or status.
    pub kind: TextKind,
    /// Byte offset of the offending token in the text (its length if a field is missing).
    pub offset: usize,
    /// What is wrong.
    pub reason: ParseErrorReason,
}

/// What is wrong with a target's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorReason {
    /// The text ended before this field.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has a bad value.
    #[error("invalid {field} {token:?}, expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The text found (clipped to 64 bytes).
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Text after the last field.
    #[error("unexpected {token:?} after the last field")]
    Trailing {
        /// The first extra token (clipped).
        token: String,
    },
    /// Fields that parse but contradict each other.
    #[error("{0}")]
    Inconsistent(&'static str),
    /// The target type name itself is unusable.
    #[error(transparent)]
    TargetName(#[from] TargetNameError),
}

/// A target type this crate has a typed model for: the one list of known target types.
/// Every other type name is kept as [`Opaque`] text.
///
/// ```
/// use devmapper::targets::TargetKind;
/// assert_eq!(TargetKind::from_name("thin-pool"), Some(TargetKind::ThinPool));
/// assert_eq!(TargetKind::ThinPool.name(), "thin-pool");
/// assert_eq!(TargetKind::from_name("crypt"), None);
/// assert!(TargetKind::ALL.iter().all(|k| TargetKind::from_name(k.name()) == Some(*k)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetKind {
    /// `linear`.
    Linear,
    /// `striped`.
    Striped,
    /// `zero`.
    Zero,
    /// `error`.
    Error,
    /// `snapshot`.
    Snapshot,
    /// `snapshot-origin`.
    SnapshotOrigin,
    /// `snapshot-merge`.
    SnapshotMerge,
    /// `thin-pool`.
    ThinPool,
    /// `thin`.
    Thin,
}

impl TargetKind {
    /// Every typed target type.
    pub const ALL: [TargetKind; 9] = [
        TargetKind::Linear,
        TargetKind::Striped,
        TargetKind::Zero,
        TargetKind::Error,
        TargetKind::Snapshot,
        TargetKind::SnapshotOrigin,
        TargetKind::SnapshotMerge,
        TargetKind::ThinPool,
        TargetKind::Thin,
    ];

    /// The kernel's name of the target type.
    pub const fn name(self) -> &'static str {
        match self {
            TargetKind::Linear => Linear::TARGET_TYPE,
            TargetKind::Striped => Striped::TARGET_TYPE,
            TargetKind::Zero => Zero::TARGET_TYPE,
            TargetKind::Error => ErrorTarget::TARGET_TYPE,
            TargetKind::Snapshot => Snapshot::TARGET_TYPE,
            TargetKind::SnapshotOrigin => SnapshotOrigin::TARGET_TYPE,
            TargetKind::SnapshotMerge => Snapshot::MERGE_TARGET_TYPE,
            TargetKind::ThinPool => ThinPool::TARGET_TYPE,
            TargetKind::Thin => Thin::TARGET_TYPE,
        }
    }

    /// The typed target type of this kernel name, if this crate models it.
    pub fn from_name(name: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One target of a table: its type and typed parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// `linear`.
    Linear(Linear),
    /// `striped`.
    Striped(Striped),
    /// `zero`.
    Zero(Zero),
    /// `error`.
    Error(ErrorTarget),
    /// `snapshot`.
    Snapshot(Snapshot),
    /// `snapshot-origin`.
    SnapshotOrigin(SnapshotOrigin),
    /// `snapshot-merge` (same params as `snapshot`).
    SnapshotMerge(Snapshot),
    /// `thin-pool`.
    ThinPool(ThinPool),
    /// `thin`.
    Thin(Thin),
    /// Any other target type, as text.
    Opaque(Opaque),
}

/// The status of one target, typed by its target type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetStatus {
    /// `linear` (empty status).
    Linear,
    /// `striped`.
    Striped(StripedStatus),
    /// `zero` (empty status).
    Zero,
    /// `error` (empty status).
    Error,
    /// `snapshot`.
    Snapshot(SnapshotStatus),
    /// `snapshot-origin` (empty status).
    SnapshotOrigin,
    /// `snapshot-merge`.
    SnapshotMerge(SnapshotStatus),
    /// `thin-pool`.
    ThinPool(ThinPoolStatus),
    /// `thin`.
    Thin(ThinStatus),
    /// Any other target type, as text.
    Opaque(OpaqueStatus),
}

impl Target {
    /// Parse `params` as a target of type `target_type`.
    ///
    /// Known types must parse; unknown types become [`Target::Opaque`] with the params
    /// unchanged. The only error for an unknown type is an unusable type name.
    pub fn parse(target_type: &str, params: &str) -> Result<Target, ParseError> {
        let Some(kind) = TargetKind::from_name(target_type) else {
            return Ok(Target::Opaque(Opaque::new(target_type, params).map_err(
                |e| ParseError {
                    target: text::clip(target_type),
                    kind: TextKind::Params,
                    offset: 0,
                    reason: e.into(),
                },
            )?));
        };
        Ok(match kind {
            TargetKind::Linear => Target::Linear(params.parse()?),
            TargetKind::Striped => Target::Striped(params.parse()?),
            TargetKind::Zero => Target::Zero(params.parse()?),
            TargetKind::Error => Target::Error(params.parse()?),
            TargetKind::Snapshot => Target::Snapshot(params.parse()?),
            TargetKind::SnapshotOrigin => Target::SnapshotOrigin(params.parse()?),
            TargetKind::SnapshotMerge => {
                Target::SnapshotMerge(Snapshot::parse_as(kind.name(), params)?)
            }
            TargetKind::ThinPool => Target::ThinPool(params.parse()?),
            TargetKind::Thin => Target::Thin(params.parse()?),
        })
    }

    /// Like [`Target::parse`], but params of a known type that do not parse are kept as
    /// [`Target::Opaque`] instead of failing.
    ///
    /// Meant for tables read back from the kernel, which are valid by construction but
    /// may use forms this crate does not model (e.g. `Fail` as the table of a thin device
    /// in a failed pool, or options of a newer kernel).
    pub fn parse_or_opaque(target_type: &str, params: &str) -> Result<Target, TargetNameError> {
        match Target::parse(target_type, params) {
            Ok(t) => Ok(t),
            Err(_) => Opaque::new(target_type, params).map(Target::Opaque),
        }
    }

    /// The typed target type, or `None` for [`Target::Opaque`].
    pub fn kind(&self) -> Option<TargetKind> {
        Some(match self {
            Target::Linear(_) => TargetKind::Linear,
            Target::Striped(_) => TargetKind::Striped,
            Target::Zero(_) => TargetKind::Zero,
            Target::Error(_) => TargetKind::Error,
            Target::Snapshot(_) => TargetKind::Snapshot,
            Target::SnapshotOrigin(_) => TargetKind::SnapshotOrigin,
            Target::SnapshotMerge(_) => TargetKind::SnapshotMerge,
            Target::ThinPool(_) => TargetKind::ThinPool,
            Target::Thin(_) => TargetKind::Thin,
            Target::Opaque(_) => return None,
        })
    }

    /// The kernel's name of this target type.
    pub fn target_type(&self) -> &str {
        match self {
            Target::Opaque(o) => o.target_type(),
            // `kind` is `Some` for every variant but `Opaque`.
            _ => self.kind().map_or("", TargetKind::name),
        }
    }

    /// The params text, as the kernel prints it for typed targets and unchanged for
    /// opaque ones.
    pub fn params(&self) -> String {
        self.params_display().to_string()
    }

    /// The params text as a `Display` value (no allocation).
    pub fn params_display(&self) -> &dyn fmt::Display {
        match self {
            Target::Linear(t) => t,
            Target::Striped(t) => t,
            Target::Zero(t) => t,
            Target::Error(t) => t,
            Target::Snapshot(t) | Target::SnapshotMerge(t) => t,
            Target::SnapshotOrigin(t) => t,
            Target::ThinPool(t) => t,
            Target::Thin(t) => t,
            Target::Opaque(t) => t,
        }
    }

    /// Every device the params name, in order.
    pub fn devices(&self) -> Vec<&DevRef> {
        match self {
            Target::Linear(t) => vec![&t.device],
            Target::Striped(t) => t.stripes.iter().map(|s| &s.device).collect(),
            Target::Zero(_) | Target::Opaque(_) => Vec::new(),
            Target::Error(t) => t.backing.iter().map(|(d, _)| d).collect(),
            Target::Snapshot(t) | Target::SnapshotMerge(t) => vec![&t.origin, &t.cow],
            Target::SnapshotOrigin(t) => vec![&t.device],
            Target::ThinPool(t) => vec![&t.metadata, &t.data],
            Target::Thin(t) => std::iter::once(&t.pool)
                .chain(t.external_origin.as_ref())
                .collect(),
        }
    }

    /// Every device the params name, in order, to change in place (see
    /// [`Target::devices`]).
    pub fn devices_mut(&mut self) -> Vec<&mut DevRef> {
        match self {
            Target::Linear(t) => vec![&mut t.device],
            Target::Striped(t) => t.stripes.iter_mut().map(|s| &mut s.device).collect(),
            Target::Zero(_) | Target::Opaque(_) => Vec::new(),
            Target::Error(t) => t.backing.iter_mut().map(|(d, _)| d).collect(),
            Target::Snapshot(t) | Target::SnapshotMerge(t) => vec![&mut t.origin, &mut t.cow],
            Target::SnapshotOrigin(t) => vec![&mut t.device],
            Target::ThinPool(t) => vec![&mut t.metadata, &mut t.data],
            Target::Thin(t) => std::iter::once(&mut t.pool)
                .chain(t.external_origin.as_mut())
                .collect(),
        }
    }

    /// This target with every device path replaced by its `major:minor` number, which
    /// is how the kernel prints it back (see [`DevRef::resolve`]). Opaque params are not
    /// touched.
    pub fn resolve_devices(&self) -> Result<Target, ResolveError> {
        let mut t = self.clone();
        for d in t.devices_mut() {
            *d = d.resolved()?;
        }
        Ok(t)
    }
}

macro_rules! into_target {
    ($($ty:ty => $var:ident),* $(,)?) => {$(
        impl From<$ty> for Target {
            fn from(t: $ty) -> Self {
                Target::$var(t)
            }
        }
    )*};
}

into_target!(
    Linear => Linear,
    Striped => Striped,
    Zero => Zero,
    ErrorTarget => Error,
    Snapshot => Snapshot,
    SnapshotOrigin => SnapshotOrigin,
    ThinPool => ThinPool,
    Thin => Thin,
    Opaque => Opaque,
);

impl TargetStatus {
    /// Parse the status text `status` of a target of type `target_type`.
    ///
    /// Known types must parse (targets with an empty status accept only whitespace);
    /// unknown types become [`TargetStatus::Opaque`].
    pub fn parse(target_type: &str, status: &str) -> Result<TargetStatus, ParseError> {
        use text::expect_empty;
        let kind = TextKind::Status;
        let Some(target) = TargetKind::from_name(target_type) else {
            return Ok(TargetStatus::Opaque(
                OpaqueStatus::new(target_type, status).map_err(|e| ParseError {
                    target: text::clip(target_type),
                    kind,
                    offset: 0,
                    reason: e.into(),
                })?,
            ));
        };
        Ok(match target {
            TargetKind::Linear => {
                expect_empty(target_type, kind, status)?;
                TargetStatus::Linear
            }
            TargetKind::Striped => TargetStatus::Striped(status.parse()?),
            TargetKind::Zero => {
                expect_empty(target_type, kind, status)?;
                TargetStatus::Zero
            }
            TargetKind::Error => {
                expect_empty(target_type, kind, status)?;
                TargetStatus::Error
            }
            TargetKind::Snapshot => {
                TargetStatus::Snapshot(SnapshotStatus::parse_as(target_type, status)?)
            }
            TargetKind::SnapshotOrigin => {
                snapshot::parse_origin_status(status)?;
                TargetStatus::SnapshotOrigin
            }
            TargetKind::SnapshotMerge => {
                TargetStatus::SnapshotMerge(SnapshotStatus::parse_as(target_type, status)?)
            }
            TargetKind::ThinPool => TargetStatus::ThinPool(status.parse()?),
            TargetKind::Thin => TargetStatus::Thin(status.parse()?),
        })
    }

    /// The typed target type, or `None` for [`TargetStatus::Opaque`].
    pub fn kind(&self) -> Option<TargetKind> {
        Some(match self {
            TargetStatus::Linear => TargetKind::Linear,
            TargetStatus::Striped(_) => TargetKind::Striped,
            TargetStatus::Zero => TargetKind::Zero,
            TargetStatus::Error => TargetKind::Error,
            TargetStatus::Snapshot(_) => TargetKind::Snapshot,
            TargetStatus::SnapshotOrigin => TargetKind::SnapshotOrigin,
            TargetStatus::SnapshotMerge(_) => TargetKind::SnapshotMerge,
            TargetStatus::ThinPool(_) => TargetKind::ThinPool,
            TargetStatus::Thin(_) => TargetKind::Thin,
            TargetStatus::Opaque(_) => return None,
        })
    }

    /// The kernel's name of the target type this status belongs to.
    pub fn target_type(&self) -> &str {
        match self {
            TargetStatus::Opaque(o) => o.target_type(),
            // `kind` is `Some` for every variant but `Opaque`.
            _ => self.kind().map_or("", TargetKind::name),
        }
    }

    /// The snapshot status of a `snapshot` or `snapshot-merge` target.
    pub fn snapshot(&self) -> Option<&SnapshotStatus> {
        match self {
            TargetStatus::Snapshot(s) | TargetStatus::SnapshotMerge(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for TargetStatus {
    /// The status text as the kernel prints it (opaque text unchanged).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetStatus::Linear
            | TargetStatus::Zero
            | TargetStatus::Error
            | TargetStatus::SnapshotOrigin => Ok(()),
            TargetStatus::Striped(s) => s.fmt(f),
            TargetStatus::Snapshot(s) | TargetStatus::SnapshotMerge(s) => s.fmt(f),
            TargetStatus::ThinPool(s) => s.fmt(f),
            TargetStatus::Thin(s) => s.fmt(f),
            TargetStatus::Opaque(s) => s.fmt(f),
        }
    }
}
