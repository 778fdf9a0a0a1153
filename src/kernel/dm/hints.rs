//! Hints on failed calls: why a device is busy (open count, mounts from
//! `/proc/self/mountinfo`, holders from other tables and sysfs), what a permission or
//! "no such device" error means.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use super::{DeviceMapper, Which};
use crate::DevNum;
use crate::kernel::command::Command;
use crate::kernel::error::{Errno, Error};
use crate::kernel::id::DevId;

impl DeviceMapper {
    pub(super) fn with_hint(&self, e: Error, id: Option<DevId<'_>>) -> Error {
        let Error::Ioctl {
            cmd,
            device,
            errno,
            hint: None,
        } = e
        else {
            return e;
        };
        let hint = match errno {
            Errno::EACCES | Errno::EPERM => {
                Some("device-mapper needs root (CAP_SYS_ADMIN)".to_owned())
            }
            Errno::EBUSY | Errno::ENXIO if cmd == Command::DevCreate => Some(
                "a device with this name or uuid, or the requested minor, already exists"
                    .to_owned(),
            ),
            Errno::EBUSY if cmd == Command::DevRename => {
                Some("a device with the new name or uuid already exists".to_owned())
            }
            Errno::ENXIO => Some("no such device".to_owned()),
            Errno::EBUSY => id.map(|id| self.busy_hint(id)),
            _ => None,
        };
        Error::Ioctl {
            cmd,
            device,
            errno,
            hint,
        }
    }

    /// Explain why a device is busy: open count, mounts, holders.
    fn busy_hint(&self, id: DevId<'_>) -> String {
        let Ok(info) = self.info(id) else {
            return "the device is in use".to_owned();
        };
        let mut parts = vec![format!("the device is open {} time(s)", info.open_count)];
        let mounts = mounts_of(info.dev);
        if !mounts.is_empty() {
            parts.push(format!("mounted at {}", mounts.join(", ")));
        }
        let mut holders = Vec::new();
        if let Ok(list) = self.list() {
            for d in list {
                if d.dev == info.dev {
                    continue;
                }
                let other = DevId::Dev(d.dev);
                if self
                    .deps(other, Which::Live)
                    .is_ok_and(|deps| deps.contains(&info.dev))
                {
                    holders.push(d.name);
                }
            }
        }
        let sys = PathBuf::from(format!("/sys/dev/block/{}/holders", info.dev));
        if let Ok(rd) = std::fs::read_dir(&sys) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with("dm-") {
                    holders.push(n);
                }
            }
        }
        if !holders.is_empty() {
            parts.push(format!("held by {}", holders.join(", ")));
        }
        parts.push("unmount or close it first, or remove with deferred remove".to_owned());
        parts.join("; ")
    }
}

/// Mount points of a block device, from `/proc/self/mountinfo`.
pub(crate) fn mounts_of(dev: DevNum) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let want = dev.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let num = f.nth(2)?;
            let mnt = f.nth(1)?;
            (num == want).then(|| mnt.to_owned())
        })
        .collect()
}
