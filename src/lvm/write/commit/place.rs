//! Where a new copy goes in a metadata area's ring: after the committed copy, aligned,
//! wrapping at the end of the ring.

#![forbid(unsafe_code)]

use super::{HDR, MDA_ALIGNMENT};

/// The largest text (trailing NUL included) an area of `area_size` bytes takes: two copies
/// must fit the ring, each rounded to a sector (lvm2's `max_size`).
///
/// ```
/// use devmapper::lvm::write::commit::max_text_size;
/// // lvm2's default area: 4 KiB to 1 MiB.
/// assert_eq!(max_text_size(1_048_576 - 4096), 521_472);
/// assert_eq!(max_text_size(1024), 0);
/// ```
pub fn max_text_size(area_size: u64) -> u64 {
    (area_size.saturating_sub(HDR) / 2).saturating_sub(MDA_ALIGNMENT)
}

/// Where a new copy goes in a ring (offsets relative to the area start, like `raw_locn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Offset of the new copy (`raw_locn.offset`), 512-aligned.
    pub offset: u64,
    /// Its size, trailing NUL included.
    pub size: u64,
    /// Bytes that continue at offset 512 because the copy crosses the end of the area.
    pub wrap: u64,
}

/// Why a copy does not fit (see [`place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// Larger than [`max_text_size`].
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// It would overlap the committed copy (lvm2's second check, "too large for circular
    /// buffer"); unreachable for sane committed copies below the size limit.
    Overlap,
}

/// lvm2's placement (`_next_rlocn_offset` and the checks of `_vg_write_raw`): a copy of
/// `size` bytes after the committed copy `old` (`(offset, size)`, `None` when the area holds
/// none) in an area of `area_size` bytes. `old` must lie in the ring (`offset >= 512`,
/// `offset < area_size`, `size <= area_size - 512`).
///
/// ```
/// use devmapper::lvm::write::commit::{place, Placement};
/// let p = place(65536, Some((512, 1000)), 1000).unwrap();
/// assert_eq!(p, Placement { offset: 1536, size: 1000, wrap: 0 });
/// // Near the end of the ring the copy wraps to just after the header.
/// let p = place(65536, Some((60000, 1000)), 9000).unwrap();
/// assert_eq!((p.offset, p.wrap), (61440, 61440 + 9000 - 65536));
/// ```
pub fn place(area_size: u64, old: Option<(u64, u64)>, size: u64) -> Result<Placement, PlaceError> {
    let max = max_text_size(area_size);
    if size > max {
        return Err(PlaceError::TooLarge { max });
    }
    let offset = match old {
        None => HDR,
        Some((o_start, o_size)) => {
            let o_end = o_start + o_size;
            // Inclusive last byte of the old copy (in the wrapped part if it wraps).
            let old_last = if o_end > area_size {
                o_end - area_size + HDR - 1
            } else {
                o_end - 1
            };
            if area_size - old_last < MDA_ALIGNMENT {
                HDR
            } else {
                let next = (old_last + 1).next_multiple_of(MDA_ALIGNMENT);
                if next > area_size - MDA_ALIGNMENT {
                    HDR
                } else {
                    next
                }
            }
        }
    };
    let wrap = (offset + size).saturating_sub(area_size);
    let new = Placement { offset, size, wrap };
    if let Some((o_start, o_size)) = old {
        let old_ranges = copy_ranges(area_size, o_start, o_size);
        // The whole write must stay clear, zero padding included.
        let hit = old_ranges.iter().flatten().any(|&(s1, e1)| {
            write_ranges(area_size, &new)
                .iter()
                .flatten()
                .any(|&(s2, e2)| s1 < e2 && s2 < e1)
        });
        if hit {
            return Err(PlaceError::Overlap);
        }
    }
    Ok(new)
}

/// The (up to two) half-open ranges, relative to the area, a copy at `offset` of `size`
/// bytes occupies in a ring of `area_size` bytes.
pub(super) fn copy_ranges(area_size: u64, offset: u64, size: u64) -> [Option<(u64, u64)>; 2] {
    let end = offset + size;
    if end <= area_size {
        [Some((offset, end)), None]
    } else {
        [
            Some((offset, area_size)),
            Some((HDR, HDR + (end - area_size))),
        ]
    }
}

/// The ranges the writes of `p` cover: the text, and zeros up to the next 512-byte boundary
/// (but not past the area); the first part of a wrapped copy runs to the end of the area.
pub(super) fn write_ranges(area_size: u64, p: &Placement) -> [Option<(u64, u64)>; 2] {
    let pad = |end: u64| end.next_multiple_of(MDA_ALIGNMENT).min(area_size);
    if p.wrap == 0 {
        [Some((p.offset, pad(p.offset + p.size))), None]
    } else {
        [Some((p.offset, area_size)), Some((HDR, pad(HDR + p.wrap)))]
    }
}
