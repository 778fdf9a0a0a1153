//! The wire codec: encoding of device-mapper ioctl requests and bounds-checked decoding of
//! the kernel's replies, on plain byte slices (no unsafe, no kernel access; fuzzed).
//!
//! Not public API: the module is public only with the `fuzzing` feature, for the fuzz
//! targets in `fuzz/`. The types the decoders produce are public in [`reply`](super::reply).
//!
//! Every `next` offset, count and string the kernel returns is checked against the reply's
//! length; records must move strictly forward; allocations are bounded by the input size. A
//! malformed reply is a [`DecodeError`] with the byte offset, never a panic.
#![forbid(unsafe_code)]

use std::mem::size_of;

use crate::DevNum;
use crate::kernel::command::Version;
use crate::kernel::id::{MAX_NAME_LEN, MAX_UUID_LEN};
use crate::kernel::reply::{DeviceEntry, RawTarget, TargetVersion};
use crate::table::MAX_TARGET_TYPE_LEN;
use crate::units::Sectors;

// The messages below state the limits in words.
const _: () = assert!(MAX_TARGET_TYPE_LEN == 15);

/// Size of the `dm_ioctl` header.
pub const HEADER_SIZE: usize = size_of::<dm_sys::dm_ioctl>();

/// A malformed reply: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct DecodeError {
    /// Byte offset inside the payload (or header) where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

fn err<T>(offset: usize, reason: &'static str) -> Result<T, DecodeError> {
    Err(DecodeError { offset, reason })
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, DecodeError> {
    off.checked_add(4)
        .and_then(|end| b.get(off..end))
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or(DecodeError {
            offset: off,
            reason: "u32 field past the end of the reply",
        })
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, DecodeError> {
    off.checked_add(8)
        .and_then(|end| b.get(off..end))
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
        .ok_or(DecodeError {
            offset: off,
            reason: "u64 field past the end of the reply",
        })
}

/// A NUL-terminated string starting at `off` that must end before `limit`; returns the
/// string and the offset just past its NUL.
fn cstr_at(b: &[u8], off: usize, limit: usize) -> Result<(String, usize), DecodeError> {
    let limit = limit.min(b.len());
    let region = b.get(off..limit).ok_or(DecodeError {
        offset: off,
        reason: "string starts past the end of its record",
    })?;
    let nul = region.iter().position(|&c| c == 0).ok_or(DecodeError {
        offset: off,
        reason: "string is not NUL-terminated inside its record",
    })?;
    let s = String::from_utf8_lossy(&region[..nul]).into_owned();
    Ok((s, off + nul + 1))
}

/// The string in a fixed-size, NUL-padded field (no NUL: the whole field).
pub fn fixed_cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

const fn align8(x: usize) -> usize {
    (x + 7) & !7
}

/// The decoded fields of a `struct dm_ioctl` reply header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The kernel's interface version.
    pub version: Version,
    /// `data_size` as returned.
    pub data_size: u32,
    /// `data_start` as returned.
    pub data_start: u32,
    /// `target_count`.
    pub target_count: u32,
    /// `open_count`.
    pub open_count: i32,
    /// `flags`.
    pub flags: u32,
    /// `event_nr`.
    pub event_nr: u32,
    /// `dev` (`huge_encode_dev`).
    pub dev: u64,
    /// `name`.
    pub name: String,
    /// `uuid`.
    pub uuid: String,
}

/// What a request header carries, before encoding.
#[derive(Debug, Clone, Default)]
pub struct RequestHeader<'a> {
    /// Interface version to send (the command's minimum).
    pub version: Version,
    /// `target_count` (table load).
    pub target_count: u32,
    /// `flags`.
    pub flags: u32,
    /// `event_nr` (event to wait on, or udev cookie).
    pub event_nr: u32,
    /// `dev` (`huge_encode_dev`), 0 for none.
    pub dev: u64,
    /// Name (at most [`MAX_NAME_LEN`] bytes).
    pub name: &'a str,
    /// Uuid (at most [`MAX_UUID_LEN`] bytes).
    pub uuid: &'a str,
}

/// Encode a header plus `payload` into `out` (zeroed, at least `HEADER_SIZE + payload.len()`
/// bytes). `data_size` is set to `out.len()`, `data_start` to [`HEADER_SIZE`].
///
/// # Errors
/// The buffer is too small, or a name/uuid does not fit (callers validate before this).
pub fn encode_request(
    out: &mut [u8],
    h: &RequestHeader<'_>,
    payload: &[u8],
) -> Result<(), DecodeError> {
    use core::mem::offset_of;
    use dm_sys::dm_ioctl as D;
    let total = HEADER_SIZE.checked_add(payload.len()).ok_or(DecodeError {
        offset: 0,
        reason: "payload too large",
    })?;
    if out.len() < total || u32::try_from(out.len()).is_err() {
        return err(0, "request buffer too small or too large");
    }
    if h.name.len() > MAX_NAME_LEN || h.uuid.len() > MAX_UUID_LEN {
        return err(offset_of!(D, name), "name or uuid too long for the header");
    }
    let put32 =
        |out: &mut [u8], off: usize, v: u32| out[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    put32(out, offset_of!(D, version), h.version.major);
    put32(out, offset_of!(D, version) + 4, h.version.minor);
    put32(out, offset_of!(D, version) + 8, h.version.patch);
    put32(out, offset_of!(D, data_size), out.len() as u32);
    put32(out, offset_of!(D, data_start), HEADER_SIZE as u32);
    put32(out, offset_of!(D, target_count), h.target_count);
    put32(out, offset_of!(D, flags), h.flags);
    put32(out, offset_of!(D, event_nr), h.event_nr);
    out[offset_of!(D, dev)..offset_of!(D, dev) + 8].copy_from_slice(&h.dev.to_ne_bytes());
    let n = offset_of!(D, name);
    out[n..n + h.name.len()].copy_from_slice(h.name.as_bytes());
    let u = offset_of!(D, uuid);
    out[u..u + h.uuid.len()].copy_from_slice(h.uuid.as_bytes());
    out[HEADER_SIZE..total].copy_from_slice(payload);
    Ok(())
}

/// Decode the reply header from the start of the buffer.
///
/// # Errors
/// The buffer is shorter than the kernel's minimum (305 bytes).
pub fn decode_header(b: &[u8]) -> Result<Header, DecodeError> {
    use core::mem::offset_of;
    use dm_sys::dm_ioctl as D;
    if b.len() < offset_of!(D, data) {
        return err(b.len(), "reply shorter than the dm_ioctl header");
    }
    Ok(Header {
        version: Version::new(u32_at(b, 0)?, u32_at(b, 4)?, u32_at(b, 8)?),
        data_size: u32_at(b, offset_of!(D, data_size))?,
        data_start: u32_at(b, offset_of!(D, data_start))?,
        target_count: u32_at(b, offset_of!(D, target_count))?,
        open_count: u32_at(b, offset_of!(D, open_count))? as i32,
        flags: u32_at(b, offset_of!(D, flags))?,
        event_nr: u32_at(b, offset_of!(D, event_nr))?,
        dev: u64_at(b, offset_of!(D, dev))?,
        name: fixed_cstr(&b[offset_of!(D, name)..offset_of!(D, uuid)]),
        uuid: fixed_cstr(&b[offset_of!(D, uuid)..offset_of!(D, data)]),
    })
}

/// The payload of a reply: `buf[data_start .. data_size]`, bounds-checked (empty when the
/// kernel wrote no payload).
///
/// # Errors
/// `data_size` larger than the buffer.
pub fn payload<'b>(buf: &'b [u8], h: &Header) -> Result<&'b [u8], DecodeError> {
    let start = h.data_start as usize;
    let end = h.data_size as usize;
    if end > buf.len() {
        return err(12, "data_size larger than the buffer");
    }
    if end <= start {
        return Ok(&[]);
    }
    Ok(&buf[start..end])
}

/// Decode a `DM_LIST_DEVICES` payload.
///
/// # Errors
/// Any record or string outside the payload, or a `next` that does not move forward.
pub fn decode_name_list(data: &[u8]) -> Result<Vec<DeviceEntry>, DecodeError> {
    let mut out = Vec::new();
    if data.is_empty() {
        return Ok(out);
    }
    let mut pos = 0usize;
    loop {
        let dev = u64_at(data, pos)?;
        let next = u32_at(data, pos + 8)? as usize;
        if pos == 0 && dev == 0 {
            // The kernel's "no devices" record.
            return Ok(out);
        }
        let end = if next == 0 {
            data.len()
        } else {
            match pos.checked_add(next) {
                Some(e) if e <= data.len() && next >= 16 => e,
                _ => return err(pos + 8, "name-list next offset out of range"),
            }
        };
        let (name, after) = cstr_at(data, pos + dm_sys::DM_NAME_LIST_NAME_OFFSET, end)?;
        let ev_off = align8(after);
        let mut event_nr = None;
        let mut uuid = None;
        if ev_off + 8 <= end {
            event_nr = Some(u32_at(data, ev_off)?);
            let flags = u32_at(data, ev_off + 4)?;
            if flags & dm_sys::DM_NAME_LIST_FLAG_HAS_UUID != 0 {
                let (u, _) = cstr_at(data, ev_off + 8, end)?;
                uuid = Some(u);
            }
        }
        out.push(DeviceEntry {
            name,
            dev: DevNum::from_kernel_huge(dev),
            event_nr,
            uuid,
        });
        if next == 0 {
            return Ok(out);
        }
        pos = end;
    }
}

/// Decode a `DM_LIST_VERSIONS` or `DM_GET_TARGET_VERSION` payload.
///
/// # Errors
/// Any record or string outside the payload, or a `next` that does not move forward.
pub fn decode_target_versions(data: &[u8]) -> Result<Vec<TargetVersion>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let next = u32_at(data, pos)? as usize;
        let version = Version::new(
            u32_at(data, pos + 4)?,
            u32_at(data, pos + 8)?,
            u32_at(data, pos + 12)?,
        );
        let end = if next == 0 {
            data.len()
        } else {
            match pos.checked_add(next) {
                Some(e) if e <= data.len() && next > dm_sys::DM_TARGET_VERSIONS_NAME_OFFSET => e,
                _ => return err(pos, "target-versions next offset out of range"),
            }
        };
        let (name, _) = cstr_at(data, pos + dm_sys::DM_TARGET_VERSIONS_NAME_OFFSET, end)?;
        out.push(TargetVersion { name, version });
        if next == 0 {
            break;
        }
        pos = end;
    }
    Ok(out)
}

/// Decode a `DM_TABLE_DEPS` payload into device numbers.
///
/// # Errors
/// A count that does not fit the payload.
pub fn decode_deps(data: &[u8]) -> Result<Vec<DevNum>, DecodeError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let count = u32_at(data, 0)? as usize;
    let room = data.len().saturating_sub(dm_sys::DM_TARGET_DEPS_DEV_OFFSET) / 8;
    if count > room {
        return err(0, "deps count larger than the reply");
    }
    (0..count)
        .map(|i| {
            u64_at(data, dm_sys::DM_TARGET_DEPS_DEV_OFFSET + 8 * i).map(DevNum::from_kernel_huge)
        })
        .collect()
}

const SPEC_SIZE: usize = size_of::<dm_sys::dm_target_spec>();

/// Decode the `count` target specs of a `DM_TABLE_STATUS` / `DM_DEV_WAIT` payload (`next` is
/// relative to the payload's start). Stops early, without error, when `truncated` (the
/// kernel set `DM_BUFFER_FULL_FLAG`) and the next record is missing.
///
/// # Errors
/// A record or string outside the payload, or a `next` that does not move forward.
pub fn decode_target_specs(data: &[u8], count: u32) -> Result<Vec<RawTarget>, DecodeError> {
    let mut out = Vec::with_capacity((count as usize).min(data.len() / SPEC_SIZE));
    let mut pos = 0usize;
    for i in 0..count {
        if pos.checked_add(SPEC_SIZE).is_none_or(|e| e > data.len()) {
            return err(pos, "target spec past the end of the reply");
        }
        let start = u64_at(data, pos)?;
        let length = u64_at(data, pos + 8)?;
        let next = u32_at(data, pos + 20)? as usize;
        let target_type = fixed_cstr(&data[pos + 24..pos + SPEC_SIZE]);
        let (params, after) = cstr_at(data, pos + SPEC_SIZE, data.len())?;
        out.push(RawTarget {
            start: Sectors(start),
            length: Sectors(length),
            target_type,
            params,
        });
        if i + 1 < count {
            if next < after || next > data.len() {
                return err(pos + 20, "target spec next offset out of range");
            }
            pos = next;
        }
    }
    Ok(out)
}

/// Encode targets for `DM_TABLE_LOAD` (`next` relative to each spec), padded to 8 bytes.
///
/// # Errors
/// A target type longer than [`MAX_TARGET_TYPE_LEN`] bytes, or a NUL inside a type or params.
pub fn encode_target_specs(targets: &[RawTarget]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if t.target_type.is_empty() || t.target_type.len() > MAX_TARGET_TYPE_LEN {
            return err(i, "target type must be 1 to 15 bytes");
        }
        if t.target_type.contains('\0') || t.params.contains('\0') {
            return err(i, "NUL inside a target type or parameters");
        }
        let base = out.len();
        let rec = align8(SPEC_SIZE + t.params.len() + 1);
        out.resize(base + rec, 0);
        out[base..base + 8].copy_from_slice(&t.start.0.to_ne_bytes());
        out[base + 8..base + 16].copy_from_slice(&t.length.0.to_ne_bytes());
        let next = if i + 1 < targets.len() { rec as u32 } else { 0 };
        out[base + 20..base + 24].copy_from_slice(&next.to_ne_bytes());
        out[base + 24..base + 24 + t.target_type.len()].copy_from_slice(t.target_type.as_bytes());
        out[base + SPEC_SIZE..base + SPEC_SIZE + t.params.len()]
            .copy_from_slice(t.params.as_bytes());
    }
    Ok(out)
}

/// Decode a NUL-terminated string payload (message reply).
pub fn decode_string(data: &[u8]) -> String {
    fixed_cstr(data)
}

#[cfg(test)]
mod tests;
