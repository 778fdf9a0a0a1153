//! Usage figures exactly as the kernel's snapshot status line reports them, in the
//! crate's one usage model, [`SnapshotUsage`].
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

use super::exceptions::TableEnd;
use super::header::Geometry;
use crate::targets::SnapshotUsage;
use crate::units::Sectors;

impl TableEnd {
    /// The kernel's usage figures for a table that ended here on a store with layout `geo`.
    ///
    /// ```
    /// use devmapper::cow::{Geometry, TableEnd};
    /// let geo = Geometry::new(8, 1 << 20)?;
    /// assert_eq!(TableEnd::EMPTY.usage(&geo).to_string(), "16/2048 16");
    /// # Ok::<(), devmapper::cow::Error>(())
    /// ```
    pub fn usage(&self, geo: &Geometry) -> SnapshotUsage {
        let c = u64::from(geo.chunk_sectors());
        SnapshotUsage {
            allocated: Sectors(self.next_free.saturating_mul(c)),
            total: Sectors(geo.cow_sectors()),
            metadata: Sectors(self.current_area.saturating_add(2).saturating_mul(c)),
        }
    }
}
