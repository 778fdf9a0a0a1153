//! Every device with its state and target types, read in one call ([`list_devices`]).
#![forbid(unsafe_code)]

use std::fmt;

use super::error::Result;
use super::id::DmName;
use crate::{DeviceInfo, DeviceMapper, Which};

/// A device's state in a listing: suspended, active, or without a live table.
///
/// ```
/// use devmapper::kernel::listing::DeviceState;
/// assert_eq!(DeviceState::NoTable.to_string(), "no-table");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceState {
    /// A live table, not suspended.
    Active,
    /// Suspended (I/O is queued).
    Suspended,
    /// No live table (created, or loaded but never resumed).
    NoTable,
}

impl DeviceState {
    /// The state of the device `info` describes (no live table wins over suspended).
    pub fn of(info: &DeviceInfo) -> Self {
        if !info.has_live_table() {
            Self::NoTable
        } else if info.suspended() {
            Self::Suspended
        } else {
            Self::Active
        }
    }

    /// The word for the state: `active`, `suspended` or `no-table`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::NoTable => "no-table",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device of [`list_devices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevice {
    /// What the kernel reports about it.
    pub info: DeviceInfo,
    /// The target type of each line of its live table, in order (empty without one).
    pub targets: Vec<String>,
}

impl ListedDevice {
    /// Its state.
    pub fn state(&self) -> DeviceState {
        DeviceState::of(&self.info)
    }

    /// Its target types, each once, in the order of first use.
    pub fn target_types(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for t in &self.targets {
            if !v.contains(&t.as_str()) {
                v.push(t);
            }
        }
        v
    }
}

/// Every device, sorted by name, with its info and live table's target types. A device
/// that vanishes between the list and its query is left out. Costs the list ioctl and one
/// `DM_TABLE_STATUS` per device (its reply header is the device's info, and its first
/// buffer is small), spread over a few threads when there are many devices.
///
/// ```no_run
/// use devmapper::DeviceMapper;
/// use devmapper::kernel::listing::list_devices;
/// let dm = DeviceMapper::new()?;
/// for d in list_devices(&dm)? {
///     println!("{} {} {}", d.info.name, d.state(), d.target_types().join(","));
/// }
/// # Ok::<(), devmapper::Error>(())
/// ```
///
/// # Errors
/// The list call fails, or the kernel reports an invalid name.
pub fn list_devices(dm: &DeviceMapper) -> Result<Vec<ListedDevice>> {
    let names = dm
        .list()?
        .into_iter()
        .map(|d| DmName::new(d.name.as_str()))
        .collect::<Result<Vec<DmName>, _>>()?;
    let one = |name: &DmName| -> Option<ListedDevice> {
        // One ioctl per device: the table-status reply carries the info header too.
        let (info, table) = dm.table_with_info(name, Which::Live).ok()?;
        let targets = table.into_iter().map(|t| t.target_type).collect();
        Some(ListedDevice { info, targets })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
        .min(names.len() / DEVICES_PER_THREAD)
        .max(1);
    let mut rows: Vec<ListedDevice> = if threads == 1 {
        names.iter().filter_map(one).collect()
    } else {
        let chunk = names.len().div_ceil(threads);
        std::thread::scope(|sc| {
            let parts: Vec<_> = names
                .chunks(chunk)
                .map(|part| sc.spawn(move || part.iter().filter_map(one).collect::<Vec<_>>()))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    rows.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    Ok(rows)
}

/// At most this many threads query devices for [`list_devices`].
const MAX_THREADS: usize = 4;
/// [`list_devices`] starts a thread for at least this many devices.
const DEVICES_PER_THREAD: usize = 256;
