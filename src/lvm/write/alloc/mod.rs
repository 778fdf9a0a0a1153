//! Free space and lvm2's normal allocation policy for a new LV; the layout invariants
//! lvm2 checks before it writes a VG.
//!
//! [`allocate`] places a new linear or striped LV the way `lvcreate` does with the default
//! policy (`normal`, `maximise_cling = 1`, no tags): lvm2 builds a map of the free ranges
//! of every ALLOCATABLE PV (largest first, equal sizes in PE order, `pv_map.c`) and then
//! tries the policies `contiguous`, `cling` and `normal` in turn (`_allocate` in
//! `lv_manip.c`). Each round of a policy picks one free range per PV, sorts the picks by
//! how much they can give, takes as many as there are stripes, and allocates the same
//! number of extents from the start of each. This module replays those rounds on the
//! same data structures (free ranges in lvm2's list order, the reservation and
//! reinsertion of ranges while they are considered, the rounds of each policy), so the
//! layout matches the one lvm2 would choose, not just a valid one.
//!
//! [`check_layout`] is what `vg_validate`/`check_pv_segments`/`check_lv_segments` would
//! refuse: areas outside their PV, areas that overlap, segments that are not contiguous
//! from extent 0, stripe counts that do not divide, references to PVs or LVs that do not
//! exist, duplicate names and ids.
//!
//! ```
//! use devmapper::lvm::{config, model::VolumeGroup};
//! use devmapper::lvm::write::alloc::{self, AllocRequest};
//! let text = br#"vg0 { id = "kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE" seqno = 1
//!   status = ["RESIZEABLE", "READ", "WRITE"] extent_size = 8192 max_lv = 0 max_pv = 0
//!   physical_volumes { pv0 { id = "EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z"
//!     status = ["ALLOCATABLE"] pe_start = 2048 pe_count = 100 } } }
//!   contents = "Text Format Volume Group" version = 1"#;
//! let vg = VolumeGroup::from_config(&config::parse(text)?)?;
//! assert_eq!(alloc::free_extents(&vg)?, 100);
//! let segs = alloc::allocate(&vg, &AllocRequest::linear("lv0", 10))?;
//! assert_eq!((segs.len(), segs[0].extent_count), (1, 10));
//! let e = alloc::allocate(&vg, &AllocRequest::linear("big", 101)).unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     "Volume group \"vg0\" has insufficient free space (100 extents): 101 required."
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod free;
mod layout;
mod policy;

pub use error::AllocError;
pub use free::{free_extents, free_space};
pub use layout::check_layout;
pub use policy::allocate;

type Result<T> = std::result::Result<T, AllocError>;

/// Most stripes lvm2 allows (`MAX_STRIPES`).
pub const MAX_STRIPES: u32 = 128;
/// Smallest stripe size in sectors (`STRIPE_SIZE_MIN`, a 4 KiB page).
pub const STRIPE_SIZE_MIN: u64 = 8;
/// lvm2's default stripe size in sectors (`metadata/stripesize` = 64 KiB).
pub const DEFAULT_STRIPE_SIZE: u64 = 128;
/// Most extents an LV can have (`MAX_EXTENT_COUNT`).
pub const MAX_EXTENT_COUNT: u64 = u32::MAX as u64;

/// A new LV to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRequest {
    /// The LV's name (for lvm2's messages only).
    pub name: String,
    /// Size in extents; with several stripes rounded up to a multiple of the stripe count,
    /// as lvm2 does ([`stripe_rounded`]).
    pub extents: u64,
    /// Number of stripes (1 = linear).
    pub stripes: u32,
    /// Stripe size in sectors (ignored with one stripe; reduced to the extent size when
    /// larger, as lvm2 does).
    pub stripe_size: u64,
    /// PV handles (`pv0`, ...) allowed, in the order given; `None` = every PV of the VG.
    pub pvs: Option<Vec<String>>,
}

impl AllocRequest {
    /// A linear LV of `extents` extents on any PV.
    pub fn linear(name: impl Into<String>, extents: u64) -> AllocRequest {
        AllocRequest {
            name: name.into(),
            extents,
            stripes: 1,
            stripe_size: 0,
            pvs: None,
        }
    }

    /// A striped LV.
    pub fn striped(
        name: impl Into<String>,
        extents: u64,
        stripes: u32,
        stripe_size: u64,
    ) -> AllocRequest {
        AllocRequest {
            name: name.into(),
            extents,
            stripes,
            stripe_size,
            pvs: None,
        }
    }

    /// Only on these PVs (handles), in this order.
    pub fn on_pvs(mut self, pvs: Vec<String>) -> AllocRequest {
        self.pvs = Some(pvs);
        self
    }
}

/// `extents` rounded up to a multiple of `stripes` (lvm2's `_round_to_stripe_boundary`;
/// lvm2 prints "Rounding size ... up to stripe boundary size ..." when it changes).
pub fn stripe_rounded(extents: u64, stripes: u32) -> u64 {
    let s = u64::from(stripes.max(1));
    extents.div_ceil(s).saturating_mul(s)
}
