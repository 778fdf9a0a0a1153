//! A printed VG kept as the base of the next print of the same VG: the sections of LVs a
//! command did not change are copied from it instead of printed again
//! ([`disk_text_from`](super::disk_text_from), [`file_text_from`](super::file_text_from)).
//!
//! A write command changes one or two LVs of a VG that may hold thousands; printing the
//! whole VG again for every copy (the metadata areas, the archive, the backup file) and
//! parsing all of it back for the self-check is what a command spent most of its time on.
//! With a base, an unchanged LV costs a comparison and a copy, and the self-check reads
//! back only the sections that were printed anew.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ops::Range;

use super::print::write_locked;
use crate::lvm::model::{LogicalVolume, VolumeGroup};

/// A VG printed in one form (on-disk or file), with where each LV's section lies in the
/// text. Made by [`disk_text_from`](super::disk_text_from),
/// [`file_text_from`](super::file_text_from) and
/// [`check_printable_base`](super::check_printable_base); used as the base of the next
/// print of the same VG after a change.
///
/// ```
/// use devmapper::lvm::{config::ParseMode, model::VolumeGroup};
/// use devmapper::lvm::write::text::{TextHeader, disk_text, disk_text_from};
/// let text = b"vg0 {\nid = \"kY9pF3-4Qy6-nB3W-wd25-rq4f-5zr3-QA7YeE\"\nseqno = 3\n\
///     status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nextent_size = 8192\nmax_lv = 0\n\
///     max_pv = 0\nphysical_volumes {\npv0 {\nid = \"EBY3AB-p3e2-zS8i-q9y7-AjzQ-Hb6B-AEcn6z\"\n\
///     device = \"/dev/sdb\"\nstatus = [\"ALLOCATABLE\"]\ndev_size = 20480\npe_start = 2048\n\
///     pe_count = 2\n}\n}\nlogical_volumes {\nlv0 {\nid = \"Xs3Dbk-3n4B-0Tqs-uE3M-ZaNX-xv2o-Pt2yzr\"\n\
///     status = [\"READ\", \"WRITE\", \"VISIBLE\"]\nsegment_count = 1\nsegment1 {\n\
///     start_extent = 0\nextent_count = 1\ntype = \"striped\"\nstripe_count = 1\n\
///     stripes = [\"pv0\", 0]\n}\n}\n}\n}\ncontents = \"Text Format Volume Group\"\nversion = 1\n";
/// let old = VolumeGroup::from_text(text, ParseMode::Disk)?;
/// let h = TextHeader::now("Write from test.");
/// let (_, base) = disk_text_from(&old, &h, None);
/// let mut new = old.clone();
/// new.seqno += 1;
/// let (bytes, printed) = disk_text_from(&new, &h, Some((&old, &base)));
/// // The same bytes as a print from scratch; lv0's section was copied, not printed.
/// assert_eq!(bytes, disk_text(&new, &h));
/// assert!(printed.copied("lv0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PrintedVg {
    pub(super) text: String,
    pub(super) file: bool,
    /// By position in the printed VG's `lvs`.
    pub(super) lvs: Vec<LvSection>,
}

/// Where one LV's section lies in a [`PrintedVg`], and what its print depended on besides
/// the LV itself.
#[derive(Clone, Debug, Default)]
pub(super) struct LvSection {
    pub(super) name: String,
    pub(super) range: Range<usize>,
    /// Printed without `VISIBLE` because another LV makes it hidden (a COW, a pool's
    /// sub-LV, a merging snapshot).
    pub(super) hidden: bool,
    /// Copied from the base rather than printed.
    pub(super) copied: bool,
}

impl PrintedVg {
    /// The printed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the section of the LV named `lv` was copied from the base rather than
    /// printed (`false` for an LV the VG does not have).
    pub fn copied(&self, lv: &str) -> bool {
        self.lvs.iter().any(|s| s.copied && s.name == lv)
    }

    /// The LVs whose sections were copied from the base, with where each lies in the
    /// text, in text order: what a read-back check can leave out.
    pub fn copied_lvs(&self) -> Vec<(&str, Range<usize>)> {
        let mut v: Vec<(&str, Range<usize>)> = self
            .lvs
            .iter()
            .filter(|s| s.copied)
            .map(|s| (s.name.as_str(), s.range.clone()))
            .collect();
        v.sort_unstable_by_key(|(_, r)| r.start);
        v
    }
}

/// The base of one print: the VG it was printed from, its print, and its LVs by name.
pub(super) struct Base<'a> {
    vg: &'a VolumeGroup,
    printed: &'a PrintedVg,
    by_name: HashMap<&'a str, usize>,
}

impl<'a> Base<'a> {
    /// A base for printing `new` in the form of `printed` (`file`), or `None` when nothing
    /// can be copied: another form, or a change to what every LV section depends on (the
    /// PVs, whose position names them in areas; the extent size, in file comments; the
    /// write lock that turns `WRITE` into `WRITE_LOCKED`), or a print that does not match
    /// its VG.
    pub(super) fn new(
        old: &'a VolumeGroup,
        printed: &'a PrintedVg,
        new: &VolumeGroup,
        file: bool,
    ) -> Option<Base<'a>> {
        let usable = printed.file == file
            && printed.lvs.len() == old.lvs.len()
            && old.extent_size == new.extent_size
            && old.pvs == new.pvs
            && write_locked(old) == write_locked(new)
            && printed
                .lvs
                .iter()
                .zip(&old.lvs)
                .all(|(s, l)| s.name == l.name && printed.text.get(s.range.clone()).is_some());
        usable.then(|| Base {
            vg: old,
            printed,
            by_name: old
                .lvs
                .iter()
                .enumerate()
                .map(|(i, l)| (l.name.as_str(), i))
                .collect(),
        })
    }

    /// The section to copy for `lv` (printed with or without `VISIBLE` as `hidden` says),
    /// if the base printed an equal LV in the same context.
    pub(super) fn section(&self, lv: &LogicalVolume, hidden: bool) -> Option<&'a str> {
        let &i = self.by_name.get(lv.name.as_str())?;
        let s = &self.printed.lvs[i];
        (s.hidden == hidden && self.vg.lvs[i] == *lv).then(|| &self.printed.text[s.range.clone()])
    }
}
