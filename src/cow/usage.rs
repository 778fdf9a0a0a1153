//! Usage figures exactly as the kernel's snapshot status line reports them.
//!
//! ```
//! use devmapper::cow::{Store, writer::StoreWriter};
//! // 300 exceptions with 4 KiB chunks fill area 0 (256 entries) and spill into area 1.
//! let list: Vec<_> = (0..300).map(|old| (old, None)).collect();
//! let image = StoreWriter::build(8, 64 << 20, &list)?;
//! let usage = Store::open(&image)?.usage()?;
//! // next_free = 303 (chunks 2..=257, area 1 at 258, 259..=302); header + 2 areas.
//! assert_eq!(usage.to_string(), "2424/131072 24");
//! # Ok::<(), devmapper::cow::Error>(())
//! ```
//!
//! For a persistent store the kernel (`persistent_usage`) reports
//! `<allocated>/<total> <metadata>` in sectors, where
//! - allocated = `next_free * chunk`: the allocation high-water mark, header and metadata
//!   chunks included (`next_free` = highest used chunk + 1, at least 2, stepped over a
//!   metadata slot);
//! - total = the COW device size in sectors;
//! - metadata = `(current_area + 2) * chunk`: the header plus areas 0..=current_area.
//!
//! A fresh store reports `2c/total 2c` (c = chunk size).

use std::fmt;

use super::exceptions::TableEnd;
use super::header::Geometry;
use crate::units::Sectors;

/// `<allocated>/<total> <metadata>` of a snapshot's status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Sectors allocated, header and metadata included.
    pub allocated: Sectors,
    /// COW device size.
    pub total: Sectors,
    /// Sectors of header and metadata areas.
    pub metadata: Sectors,
}

impl Usage {
    /// The kernel's figures for a table that ended at `end` on a store with layout `geo`.
    pub fn new(geo: &Geometry, end: &TableEnd) -> Usage {
        let c = u64::from(geo.chunk_sectors());
        Usage {
            allocated: Sectors(end.next_free.saturating_mul(c)),
            total: Sectors(geo.cow_sectors()),
            metadata: Sectors(end.current_area.saturating_add(2).saturating_mul(c)),
        }
    }

    /// Whether a merge has finished: nothing left but the header and area 0.
    pub fn is_merged(&self) -> bool {
        self.allocated == self.metadata
    }

    /// Percent of the COW device in use, as `lvs` shows it (allocated / total).
    pub fn percent(&self) -> f64 {
        if self.total.0 == 0 {
            return 100.0;
        }
        self.allocated.0 as f64 * 100.0 / self.total.0 as f64
    }
}

impl fmt::Display for Usage {
    /// The status line's form: `allocated/total metadata`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}",
            self.allocated.0, self.total.0, self.metadata.0
        )
    }
}
