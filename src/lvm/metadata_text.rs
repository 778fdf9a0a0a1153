//! Metadata text of unknown origin: the committed text of a metadata area (as stored on
//! disk) or a `vgcfgbackup` / archive file, told apart and read with the [`ParseMode`]
//! each needs.
//!
//! ```
//! use devmapper::lvm::config::ParseMode;
//! use devmapper::lvm::metadata_text::{detect_mode, read_vg};
//! # let backup = include_bytes!("../../tests/fixtures/lvm/multi/backup.vg");
//! // A backup file starts with comments and header values.
//! assert_eq!(detect_mode(backup), ParseMode::File);
//! assert_eq!(read_vg(backup)?.name, "fx-vg");
//! // Text as stored on disk starts with the VG section.
//! assert_eq!(detect_mode(b"vg0 {\nseqno = 1\n}\n"), ParseMode::Disk);
//! # Ok::<(), devmapper::lvm::Error>(())
//! ```
#![forbid(unsafe_code)]

use super::config::{self, ParseMode};
use super::error::Result;
use super::mda::MetadataText;
use super::model::VolumeGroup;
use super::scan::{MdaOutcome, ScannedPv};

/// [`ParseMode::Disk`] for text that starts with a section (the VG's, as a metadata area
/// stores it: read without merging duplicates), [`ParseMode::File`] for anything else
/// (backup files start with comments or header values; text that does not parse is read
/// as a file, whose parse error is then the one reported).
pub fn detect_mode(text: &[u8]) -> ParseMode {
    let on_disk = config::parse(text)
        .map(|c| c.nodes().next().is_some_and(|n| n.is_section()))
        .unwrap_or(false);
    if on_disk {
        ParseMode::Disk
    } else {
        ParseMode::File
    }
}

/// The VG of metadata text of either kind ([`detect_mode`]).
///
/// # Errors
/// As [`VolumeGroup::from_text`].
pub fn read_vg(text: &[u8]) -> Result<VolumeGroup> {
    // `detect_mode` and the import in one parse when the text is as stored on disk.
    if let Ok(cfg) = config::parse(text)
        && cfg.nodes().next().is_some_and(|n| n.is_section())
    {
        return VolumeGroup::from_config(&cfg);
    }
    VolumeGroup::from_text(text, ParseMode::File)
}

/// The committed text of the newest copy (highest `seqno`; the later area on a tie) among
/// the PV's metadata areas; `None` when no area holds a readable VG.
///
/// ```
/// use devmapper::lvm::{metadata_text, scan};
/// # let pv: Vec<u8> = {
/// #     use std::io::Read;
/// #     let f = std::fs::File::open("tests/fixtures/lvm/more/pv5.img.gz").unwrap();
/// #     let mut v = Vec::new();
/// #     flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
/// #     v
/// # };
/// let scanned = scan::scan_pv(&pv[..], 0)?;
/// let text = metadata_text::newest_text(&scanned).expect("a VG");
/// assert_eq!(metadata_text::read_vg(&text.text)?.name, "more");
/// # Ok::<(), devmapper::lvm::Error>(())
/// ```
pub fn newest_text(pv: &ScannedPv) -> Option<&MetadataText> {
    pv.mdas
        .iter()
        .filter_map(|m| match &m.outcome {
            MdaOutcome::Text { seqno, text, .. } => Some((*seqno, text)),
            _ => None,
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, t)| t)
}
