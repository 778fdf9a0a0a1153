//! A COW device made by dmsnap starts with a dmsnap record and holds the kernel's store at
//! an offset ([`crate::snapshot::record`]); [`locate`] finds the store either way.
//!
//! ```
//! use devmapper::cow::region::locate;
//! use devmapper::cow::{Store, writer::StoreWriter};
//! // A bare store (as lvm2 or `dmsetup` make them): the store is the whole device.
//! let cow = StoreWriter::new(8, 1 << 20)?.to_vec();
//! let found = locate(&cow[..])?;
//! assert!(found.record.is_none());
//! assert_eq!(found.store.offset(), 0);
//! assert!(Store::open(&found.store)?.header().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::io;

use super::merge::WriteAt;
use crate::io::ReadAt;
use crate::snapshot::record::{RECORD_LEN, Record, RecordError, has_magic};

/// A window `offset..offset + len` of a device, itself a device.
#[derive(Debug)]
pub struct Region<R> {
    inner: R,
    offset: u64,
    len: u64,
}

impl<R: ReadAt> Region<R> {
    /// The window `offset..offset + len` of `inner` (not checked against its size).
    pub fn new(inner: R, offset: u64, len: u64) -> Self {
        Region { inner, offset, len }
    }

    /// Where the window starts on the device, in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The device under the window.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn map(&self, buf_len: usize, offset: u64) -> io::Result<u64> {
        match offset.checked_add(buf_len as u64) {
            Some(end) if end <= self.len => self.offset.checked_add(offset).ok_or_else(eof),
            _ => Err(eof()),
        }
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the store",
    )
}

impl<R: ReadAt> ReadAt for Region<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = self.map(buf.len(), offset)?;
        self.inner.read_exact_at(buf, at)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

impl<R: WriteAt> WriteAt for Region<R> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let at = self.map(buf.len(), offset)?;
        self.inner.write_all_at(buf, at)
    }

    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// A COW device's store, and the dmsnap record in front of it if there is one.
#[derive(Debug)]
pub struct Located<R> {
    /// The record, when the device starts with one.
    pub record: Option<Record>,
    /// The store: the record's range, or the whole device.
    pub store: Region<R>,
}

/// Why [`locate`] could not find the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// Reading the device failed.
    #[error("COW device: {0}")]
    Io(#[from] io::Error),
    /// The device starts with a dmsnap record that does not check out.
    #[error("COW device: {0}")]
    Record(#[from] RecordError),
    /// The record's store runs past the end of the device.
    #[error("COW device has {size} bytes, but its dmsnap record puts the store at {start}..{end}")]
    Truncated {
        /// The device's size.
        size: u64,
        /// Where the store starts.
        start: u64,
        /// Where it ends.
        end: u64,
    },
}

/// Remove the record in front of a store: zero the record block at the start of `dev` and
/// make it durable. After an offline merge emptied the store, nothing is left to
/// activate; the device then reads as a bare store.
///
/// ```
/// use devmapper::cow::region::{clear_record, locate};
/// let dev = tempfile::tempfile()?;
/// dev.set_len(1 << 20)?;
/// clear_record(&dev)?;
/// assert!(locate(&dev)?.record.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The write's or the sync's I/O error.
pub fn clear_record<W: WriteAt + ?Sized>(dev: &W) -> io::Result<()> {
    dev.write_all_at(&[0u8; RECORD_LEN], 0)?;
    dev.sync()
}

/// Find the store on a COW device: after a dmsnap record, or the whole device.
///
/// # Errors
/// [`LocateError`]: I/O, a damaged record, a record whose store does not fit.
pub fn locate<R: ReadAt>(src: R) -> Result<Located<R>, LocateError> {
    let size = src.size()?;
    let n = usize::try_from(size.min(RECORD_LEN as u64)).unwrap_or(RECORD_LEN);
    let mut head = vec![0u8; n];
    src.read_exact_at(&mut head, 0)?;
    if !has_magic(&head) {
        return Ok(Located {
            record: None,
            store: Region::new(src, 0, size),
        });
    }
    let record = Record::parse(&head)?;
    let range = record.store_range();
    if range.end > size {
        return Err(LocateError::Truncated {
            size,
            start: range.start,
            end: range.end,
        });
    }
    Ok(Located {
        store: Region::new(src, range.start, range.end - range.start),
        record: Some(record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cow::Store;
    use crate::cow::reader::SnapshotReader;
    use crate::cow::writer::StoreWriter;
    use crate::kernel::id::{DmName, DmUuid};
    use crate::snapshot::record::RecordState;
    use crate::units::Sectors;

    fn record(offset: u64, sectors: u64) -> Record {
        Record {
            state: RecordState::Snapshot,
            created: 1,
            chunk_sectors: 8,
            store_offset: Sectors(offset),
            store_sectors: Sectors(sectors),
            origin_sectors: 128,
            wrapper_name: DmName::new("w").unwrap(),
            wrapper_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef").unwrap(),
            snapshot_name: DmName::new("w-snap").unwrap(),
            snapshot_uuid: DmUuid::new("DMSNAP-0123456789abcdef0123456789abcdef-snap-1").unwrap(),
            origin_ids: vec![],
        }
    }

    #[test]
    fn store_after_a_record() {
        let mut w = StoreWriter::new(8, 256 << 10).unwrap();
        w.push(3, &[0xaa; 4096]).unwrap();
        let store = w.to_vec();
        let mut dev = record(8, (256 << 10) / 512).encode().unwrap();
        dev.extend_from_slice(&store);
        let found = locate(&dev[..]).unwrap();
        assert_eq!(found.record.as_ref().unwrap().wrapper_name.as_str(), "w");
        assert_eq!(found.store.offset(), 4096);
        assert_eq!(
            Store::open(&found.store)
                .unwrap()
                .usage()
                .unwrap()
                .to_string(),
            Store::open(&store[..])
                .unwrap()
                .usage()
                .unwrap()
                .to_string()
        );
        let origin = vec![0u8; 64 << 10];
        let snap = SnapshotReader::open(&origin[..], &found.store).unwrap();
        let mut b = [0u8; 2];
        snap.read_exact_at(&mut b, 3 * 4096).unwrap();
        assert_eq!(b, [0xaa; 2]);
        // Reads past the window fail, never reach past it.
        let mut b = [0u8; 8];
        assert!(found.store.read_exact_at(&mut b, (256 << 10) - 4).is_err());
        assert!(found.store.read_exact_at(&mut b, u64::MAX - 2).is_err());
    }

    #[test]
    fn damaged_or_truncated_record() {
        let mut dev = record(8, 2048).encode().unwrap();
        dev.resize(4096 + 1024 * 512, 0);
        assert!(matches!(
            locate(&dev[..]),
            Err(LocateError::Truncated { start: 4096, .. })
        ));
        dev[30] ^= 1;
        assert!(matches!(
            locate(&dev[..]),
            Err(LocateError::Record(RecordError::Crc { .. }))
        ));
        // A short device with the magic only.
        assert!(matches!(
            locate(&b"DMSNAPRC"[..]),
            Err(LocateError::Record(RecordError::Truncated { .. }))
        ));
    }
}
