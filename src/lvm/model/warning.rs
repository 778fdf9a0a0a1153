//! What lvm2's importer accepts although it looks wrong: [`ImportWarning`]s and the
//! collector the importer fills.

use std::cell::RefCell;

use crate::lvm::error::UnmappableKind;
use crate::lvm::id::LvmId;

/// Something odd in metadata that lvm2's importer accepts, and so does this one: the
/// caller decides whether to show it (the CLI prints each on stderr).
///
/// ```
/// use devmapper::lvm::{config::ParseMode, model::{VolumeGroup, WarningKind}};
/// // pvresize backups record a dev_size short of the PE area's end; lvm2 reads them.
/// let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 3
///   status = ["READ", "WRITE"] extent_size = 8 max_lv = 0 max_pv = 0
///   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
///     status = ["ALLOCATABLE"] dev_size = 64 pe_start = 8 pe_count = 10 } } }
///   contents = "Text Format Volume Group" version = 1"#;
/// let vg = VolumeGroup::from_text(text, ParseMode::Disk)?;
/// let w = &vg.warnings()[0];
/// assert_eq!(w.path, "vg0/physical_volumes/pv0");
/// assert!(matches!(w.kind, WarningKind::DevSizeShort { pe_end: 88, dev_size: 64 }));
/// # Ok::<(), devmapper::lvm::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
#[non_exhaustive]
pub struct ImportWarning {
    /// Where in the metadata.
    pub path: String,
    /// What.
    pub kind: WarningKind,
}

/// The kinds of [`ImportWarning`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarningKind {
    /// The PE area ends past `dev_size` (as `pvresize` backups record it).
    #[error("the PE area ends at sector {pe_end}, past dev_size {dev_size}")]
    DevSizeShort {
        /// `pe_start + pe_count * extent_size`.
        pe_end: u64,
        /// `dev_size`.
        dev_size: u64,
    },
    /// `pe_start + pe_count * extent_size` does not fit in 64 bits.
    #[error("the PE area's end overflows")]
    PeAreaOverflows,
    /// Two PV sections with the same name: as in lvm2, segments use the later one.
    #[error("PV section name appears twice; areas use the later one")]
    DuplicatePvHandle,
    /// Two PV sections with the same id.
    #[error("PV id {id} is also the id of PV {first}")]
    DuplicatePvId {
        /// The id.
        id: LvmId,
        /// The first PV with it.
        first: String,
    },
    /// An integer outside its field's range, read the way lvm2 reads it (the low 32 bits
    /// of 32-bit fields, negative numbers as unsigned 64-bit values).
    #[error("`{key}` = {value} is read as {read_as}, as lvm2 reads it")]
    Truncated {
        /// The key.
        key: String,
        /// The value in the text.
        value: i64,
        /// The value used.
        read_as: u64,
    },
    /// Two LVs map the same physical extents (lvm2 never allocates them twice): writing
    /// one changes the other.
    #[error("extents {start}..{end} are used by both {first} and {second}")]
    PeOverlap {
        /// First overlapping extent.
        start: u64,
        /// End of the overlap (exclusive).
        end: u64,
        /// One LV.
        first: String,
        /// The other.
        second: String,
    },
    /// A VG or LV name lvm2 would not create.
    #[error("name {name:?} is not a valid LVM name")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A segment type lvm2 does not know either (lvm2: "Unrecognised segment type").
    #[error("unrecognised segment type {segtype:?}")]
    UnknownSegmentType {
        /// The type as written.
        segtype: String,
    },
    /// An `allocation_policy` lvm2 does not recognise (lvm2: "Ignoring unrecognised
    /// allocation policy"); the default is used instead.
    #[error("unrecognised allocation policy {value:?} ignored")]
    UnknownAllocationPolicy {
        /// The policy as written.
        value: String,
    },
    /// The LV imports but cannot be activated or read; plan and export refuse it.
    #[error("{0}")]
    Unmappable(UnmappableKind),
}

/// Collects [`ImportWarning`]s during one import.
#[derive(Default)]
pub(super) struct Warn(pub(super) RefCell<Vec<ImportWarning>>);

impl Warn {
    pub(super) fn push(&self, path: &str, kind: WarningKind) {
        self.0.borrow_mut().push(ImportWarning {
            path: path.to_string(),
            kind,
        });
    }
}
