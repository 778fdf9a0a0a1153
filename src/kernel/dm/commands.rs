//! One [`Request`] per device-mapper command: what each puts into the request and takes
//! from the reply. The public methods of [`DeviceMapper`](super::DeviceMapper) build these
//! and add what is not the ioctl's (node maintenance, race handling).
#![forbid(unsafe_code)]

use std::borrow::Cow;

use super::request::{Addr, Encoding, Reply, Request};
use super::{
    CreateOptions, DeviceInfo, DmFlags, Geometry, LoadOptions, RemoveMode, SuspendOptions, Which,
};
use crate::DevNum;
use crate::kernel::command::{Command, Version};
use crate::kernel::error::{Error, Result};
use crate::kernel::id::{DevId, DmName, DmUuid};
use crate::kernel::reply::{DeviceEntry, RawTarget, TargetVersion};
use crate::kernel::wire::{self, HEADER_SIZE};
use crate::units::Sectors;

/// A NUL-terminated string payload.
fn c_string(s: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(s.len() + 1);
    payload.extend_from_slice(s.as_bytes());
    payload.push(0);
    payload
}

/// `DM_VERSION`.
pub(super) struct GetVersion;

impl Request for GetVersion {
    const COMMAND: Command = Command::Version;
    type Output = Version;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Control))
    }
    fn decode(&self, reply: &Reply) -> Result<Version> {
        Ok(reply.version())
    }
}

/// `DM_REMOVE_ALL`.
pub(super) struct RemoveAll(pub(super) RemoveMode);

impl Request for RemoveAll {
    const COMMAND: Command = Command::RemoveAll;
    type Output = ();
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Control).flags(self.0.flags()))
    }
    fn decode(&self, _: &Reply) -> Result<()> {
        Ok(())
    }
}

/// `DM_LIST_DEVICES` (with uuids).
pub(super) struct ListDevices;

impl Request for ListDevices {
    const COMMAND: Command = Command::ListDevices;
    type Output = Vec<DeviceEntry>;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Control).flags(DmFlags::UUID))
    }
    fn decode(&self, reply: &Reply) -> Result<Vec<DeviceEntry>> {
        reply.decode(wire::decode_name_list)
    }
}

/// `DM_DEV_CREATE`.
pub(super) struct Create<'a> {
    pub(super) name: &'a DmName,
    pub(super) opts: &'a CreateOptions,
}

impl Request for Create<'_> {
    const COMMAND: Command = Command::DevCreate;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        let mut flags = DmFlags::empty();
        flags.set(DmFlags::READONLY, self.opts.read_only);
        flags.set(DmFlags::PERSISTENT_DEV, self.opts.dev.is_some());
        Ok(Encoding::new(Addr::Named {
            name: self.name.as_str(),
            uuid: self.opts.uuid.as_ref().map_or("", |u| u.as_str()),
            dev: self.opts.dev.map_or(0, DevNum::to_kernel_huge),
        })
        .flags(flags))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
}

/// `DM_DEV_REMOVE`.
pub(super) struct Remove<'a>(pub(super) DevId<'a>, pub(super) RemoveMode);

impl Request for Remove<'_> {
    const COMMAND: Command = Command::DevRemove;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0).flags(self.1.flags()))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
    fn uevent(&self) -> bool {
        true
    }
}

/// What `DM_DEV_RENAME` changes.
pub(super) enum NewId<'a> {
    /// The name.
    Name(&'a DmName),
    /// The uuid (`DM_UUID_FLAG`; only a device without one).
    Uuid(&'a DmUuid),
}

/// `DM_DEV_RENAME`: the reply describes the device under its old name.
pub(super) struct Rename<'a>(pub(super) DevId<'a>, pub(super) NewId<'a>);

impl Request for Rename<'_> {
    const COMMAND: Command = Command::DevRename;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        let (flags, new) = match self.1 {
            NewId::Name(n) => (DmFlags::empty(), n.as_str()),
            NewId::Uuid(u) => (DmFlags::UUID, u.as_str()),
        };
        Ok(Encoding::device(self.0).flags(flags).payload(c_string(new)))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
    fn uevent(&self) -> bool {
        true
    }
}

/// `DM_DEV_SUSPEND`: suspend (with `DM_SUSPEND_FLAG`) or resume.
pub(super) struct Suspend<'a> {
    pub(super) id: DevId<'a>,
    pub(super) suspend: bool,
    pub(super) opts: SuspendOptions,
}

impl Request for Suspend<'_> {
    const COMMAND: Command = Command::DevSuspend;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        let mut flags = self.opts.flags();
        flags.set(DmFlags::SUSPEND, self.suspend);
        Ok(Encoding::device(self.id).flags(flags))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
    /// A resume sends a change uevent; a suspend does not.
    fn uevent(&self) -> bool {
        !self.suspend
    }
}

/// `DM_DEV_STATUS`.
pub(super) struct Info<'a>(pub(super) DevId<'a>);

impl Request for Info<'_> {
    const COMMAND: Command = Command::DevStatus;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
}

/// `DM_DEV_WAIT`.
pub(super) struct Wait<'a>(pub(super) DevId<'a>, pub(super) u32);

impl Request for Wait<'_> {
    const COMMAND: Command = Command::DevWait;
    type Output = (DeviceInfo, Vec<RawTarget>);
    fn encode(&self) -> Result<Encoding<'_>> {
        let mut enc = Encoding::device(self.0);
        enc.event_nr = self.1;
        Ok(enc)
    }
    fn decode(&self, reply: &Reply) -> Result<Self::Output> {
        let targets = reply.targets()?;
        Ok((reply.info()?, targets))
    }
}

/// `DM_TABLE_LOAD` of targets already checked by the caller.
pub(super) struct Load<'a> {
    pub(super) id: DevId<'a>,
    pub(super) targets: &'a [RawTarget],
    pub(super) opts: LoadOptions,
}

impl Request for Load<'_> {
    const COMMAND: Command = Command::TableLoad;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        let payload = wire::encode_target_specs(self.targets)
            .map_err(|e| Error::InvalidArgument(format!("target {}: {}", e.offset, e.reason)))?;
        let mut flags = DmFlags::empty();
        flags.set(DmFlags::READONLY, self.opts.read_only);
        flags.set(DmFlags::SECURE_DATA, self.opts.secure);
        let mut enc = Encoding::device(self.id).flags(flags).payload(payload);
        enc.target_count = self.targets.len() as u32;
        Ok(enc)
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
}

/// `DM_TABLE_CLEAR`.
pub(super) struct ClearTable<'a>(pub(super) DevId<'a>);

impl Request for ClearTable<'_> {
    const COMMAND: Command = Command::TableClear;
    type Output = DeviceInfo;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0))
    }
    fn decode(&self, reply: &Reply) -> Result<DeviceInfo> {
        reply.info()
    }
}

/// `DM_TABLE_DEPS`.
pub(super) struct Deps<'a>(pub(super) DevId<'a>, pub(super) Which);

impl Request for Deps<'_> {
    const COMMAND: Command = Command::TableDeps;
    type Output = Vec<DevNum>;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0).flags(self.1.flags()))
    }
    fn decode(&self, reply: &Reply) -> Result<Vec<DevNum>> {
        reply.decode(wire::decode_deps)
    }
}

/// `DM_TABLE_DEPS`, with the device's info from the reply header.
pub(super) struct DepsInfo<'a>(pub(super) DevId<'a>, pub(super) Which);

impl Request for DepsInfo<'_> {
    const COMMAND: Command = Command::TableDeps;
    type Output = (DeviceInfo, Vec<DevNum>);
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0)
            .flags(self.1.flags())
            .reply_hint(TABLE_WITH_INFO_HINT))
    }
    fn decode(&self, reply: &Reply) -> Result<Self::Output> {
        let deps = reply.decode(wire::decode_deps)?;
        Ok((reply.info()?, deps))
    }
}

/// `DM_TABLE_STATUS`: the status lines, or the table with `DM_STATUS_TABLE_FLAG`.
pub(super) struct TableStatus<'a>(pub(super) DevId<'a>, pub(super) DmFlags);

impl Request for TableStatus<'_> {
    const COMMAND: Command = Command::TableStatus;
    type Output = Vec<RawTarget>;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0).flags(self.1))
    }
    fn decode(&self, reply: &Reply) -> Result<Vec<RawTarget>> {
        reply.targets()
    }
}

/// `DM_TABLE_STATUS`, keeping the device info of the reply header as well.
pub(super) struct TableStatusInfo<'a>(pub(super) DevId<'a>, pub(super) DmFlags);

/// The first reply buffer of [`TableStatusInfo`]: the header and a few table lines (a
/// larger table costs one more call per fourfold growth).
const TABLE_WITH_INFO_HINT: usize = 2048;

impl Request for TableStatusInfo<'_> {
    const COMMAND: Command = Command::TableStatus;
    type Output = (DeviceInfo, Vec<RawTarget>);
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::device(self.0)
            .flags(self.1)
            .reply_hint(TABLE_WITH_INFO_HINT))
    }
    fn decode(&self, reply: &Reply) -> Result<Self::Output> {
        let targets = reply.targets()?;
        Ok((reply.info()?, targets))
    }
}

/// `DM_LIST_VERSIONS`.
pub(super) struct ListVersions;

impl Request for ListVersions {
    const COMMAND: Command = Command::ListVersions;
    type Output = Vec<TargetVersion>;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Control))
    }
    fn decode(&self, reply: &Reply) -> Result<Vec<TargetVersion>> {
        reply.decode(wire::decode_target_versions)
    }
}

/// `DM_GET_TARGET_VERSION` of a target type name checked by the caller.
pub(super) struct GetTargetVersion<'a>(pub(super) &'a str);

impl Request for GetTargetVersion<'_> {
    const COMMAND: Command = Command::GetTargetVersion;
    type Output = TargetVersion;
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Named {
            name: self.0,
            uuid: "",
            dev: 0,
        }))
    }
    fn decode(&self, reply: &Reply) -> Result<TargetVersion> {
        let mut v = reply.decode(wire::decode_target_versions)?;
        v.pop().ok_or_else(|| {
            reply.bad(wire::DecodeError {
                offset: HEADER_SIZE,
                reason: "no version record in the reply",
            })
        })
    }
}

/// `DM_TARGET_MSG`: the reply text, when the kernel set `DM_DATA_OUT_FLAG`.
pub(super) struct Message<'a> {
    pub(super) id: DevId<'a>,
    pub(super) sector: Sectors,
    pub(super) message: &'a str,
}

impl Request for Message<'_> {
    const COMMAND: Command = Command::TargetMsg;
    type Output = Option<String>;
    fn encode(&self) -> Result<Encoding<'_>> {
        if self.message.contains('\0') {
            return Err(Error::InvalidArgument("message contains NUL".to_owned()));
        }
        let mut payload = self.sector.0.to_ne_bytes().to_vec();
        payload.extend_from_slice(&c_string(self.message));
        Ok(Encoding::device(self.id).payload(payload))
    }
    fn decode(&self, reply: &Reply) -> Result<Option<String>> {
        if !reply.flags().contains(DmFlags::DATA_OUT) {
            return Ok(None);
        }
        Ok(Some(wire::decode_string(reply.payload()?)))
    }
}

/// `DM_DEV_SET_GEOMETRY`.
pub(super) struct SetGeometry<'a>(pub(super) DevId<'a>, pub(super) Geometry);

impl Request for SetGeometry<'_> {
    const COMMAND: Command = Command::DevSetGeometry;
    type Output = ();
    fn encode(&self) -> Result<Encoding<'_>> {
        let g = self.1;
        let text = format!("{} {} {} {}", g.cylinders, g.heads, g.sectors, g.start);
        Ok(Encoding::device(self.0).payload(Cow::Owned(c_string(&text))))
    }
    fn decode(&self, _: &Reply) -> Result<()> {
        Ok(())
    }
}

/// `DM_DEV_ARM_POLL`.
pub(super) struct ArmPoll;

impl Request for ArmPoll {
    const COMMAND: Command = Command::DevArmPoll;
    type Output = ();
    fn encode(&self) -> Result<Encoding<'_>> {
        Ok(Encoding::new(Addr::Control))
    }
    fn decode(&self, _: &Reply) -> Result<()> {
        Ok(())
    }
}
