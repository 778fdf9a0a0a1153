//! The one request path of [`DeviceMapper`]: each command is a [`Request`] (which command,
//! what goes into the `dm_ioctl` header and payload, what its reply decodes to), and
//! [`DeviceMapper::run`] sends any of them: version check, buffer sizing and regrowth,
//! the udev cookie handshake, error hints.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::os::fd::AsFd;

use super::{DeviceInfo, DeviceMapper, DmFlags};
use crate::kernel::command::{Command, Version};
use crate::kernel::error::{Error, Result};
use crate::kernel::id::DevId;
use crate::kernel::ioctl::{self, Buffer, sysv::CookieSem};
use crate::kernel::nodes::NodeMode;
use crate::kernel::reply::RawTarget;
use crate::kernel::wire::{self, DecodeError, HEADER_SIZE, Header, RequestHeader};

/// What a request addresses, which fills the header's name, uuid or dev field.
#[derive(Debug, Clone, Copy)]
pub(super) enum Addr<'a> {
    /// The control node itself (version, lists, remove-all, arm-poll): no hint on failure.
    Control,
    /// Something named in the header that is not (yet) a device: the name and uuid to
    /// create, or a target type.
    Named {
        /// `name`.
        name: &'a str,
        /// `uuid`.
        uuid: &'a str,
        /// `dev` (`huge_encode_dev`), 0 for none.
        dev: u64,
    },
    /// An existing device.
    Device(DevId<'a>),
}

/// The header fields and payload of one request.
#[derive(Debug)]
pub(super) struct Encoding<'a> {
    /// What the request addresses.
    pub(super) addr: Addr<'a>,
    /// `flags`.
    pub(super) flags: DmFlags,
    /// `event_nr` (the event to wait for; the cookie handshake sets it otherwise).
    pub(super) event_nr: u32,
    /// `target_count` (table load).
    pub(super) target_count: u32,
    /// What follows the header.
    pub(super) payload: Cow<'a, [u8]>,
    /// The first buffer size to try for a reply that can grow, when smaller than the
    /// handle's [`initial_buffer`](super::Options::initial_buffer) (the kernel copies the
    /// whole buffer in on every call: a small reply is cheaper with a small buffer).
    pub(super) reply_hint: Option<usize>,
}

impl<'a> Encoding<'a> {
    /// A request with no flags and no payload.
    pub(super) fn new(addr: Addr<'a>) -> Self {
        Self {
            addr,
            flags: DmFlags::empty(),
            event_nr: 0,
            target_count: 0,
            payload: Cow::Borrowed(&[]),
            reply_hint: None,
        }
    }

    /// A request on an existing device.
    pub(super) fn device(id: DevId<'a>) -> Self {
        Self::new(Addr::Device(id))
    }

    /// Set the flags.
    pub(super) fn flags(mut self, flags: DmFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Start with a buffer of `bytes` for a reply that is usually small.
    pub(super) fn reply_hint(mut self, bytes: usize) -> Self {
        self.reply_hint = Some(bytes);
        self
    }

    /// Set the payload.
    pub(super) fn payload(mut self, payload: impl Into<Cow<'a, [u8]>>) -> Self {
        self.payload = payload.into();
        self
    }
}

/// One device-mapper command: its number, its encoding and its reply's decoding.
pub(super) trait Request {
    /// The command sent.
    const COMMAND: Command;
    /// What a successful reply decodes to.
    type Output;
    /// The header fields and payload.
    ///
    /// # Errors
    /// An argument the kernel would refuse, caught before the call.
    fn encode(&self) -> Result<Encoding<'_>>;
    /// Decode the kernel's reply.
    ///
    /// # Errors
    /// A malformed reply.
    fn decode(&self, reply: &Reply) -> Result<Self::Output>;
    /// Whether the kernel sends a uevent for it (remove, rename, resume), so that in udev
    /// mode it is wrapped in the cookie handshake.
    fn uevent(&self) -> bool {
        false
    }
}

/// A reply: its decoded header and the whole buffer, knowing which command it answers.
#[derive(Debug)]
pub(super) struct Reply {
    cmd: Command,
    header: Header,
    buf: Buffer,
}

impl Reply {
    /// A malformed-reply error for this reply's command.
    pub(super) fn bad(&self, e: DecodeError) -> Error {
        bad(self.cmd, e)
    }

    /// The flags word.
    pub(super) fn flags(&self) -> DmFlags {
        DmFlags::from_bits_retain(self.header.flags)
    }

    /// The kernel's interface version.
    pub(super) fn version(&self) -> Version {
        self.header.version
    }

    /// The payload, bounds-checked.
    pub(super) fn payload(&self) -> Result<&[u8]> {
        wire::payload(self.buf.as_bytes(), &self.header).map_err(|e| self.bad(e))
    }

    /// Decode the payload with a codec function.
    pub(super) fn decode<T>(
        &self,
        f: impl FnOnce(&[u8]) -> std::result::Result<T, DecodeError>,
    ) -> Result<T> {
        f(self.payload()?).map_err(|e| self.bad(e))
    }

    /// The device the reply describes.
    pub(super) fn info(&self) -> Result<DeviceInfo> {
        DeviceInfo::from_header(&self.header).map_err(|e| Error::BadReply {
            cmd: self.cmd,
            offset: core::mem::offset_of!(dm_sys::dm_ioctl, name),
            reason: format!("device name: {e}"),
        })
    }

    /// The target specs of a table-status or wait reply.
    pub(super) fn targets(&self) -> Result<Vec<RawTarget>> {
        let count = self.header.target_count;
        self.decode(|p| wire::decode_target_specs(p, count))
    }
}

fn bad(cmd: Command, e: DecodeError) -> Error {
    Error::BadReply {
        cmd,
        offset: e.offset,
        reason: e.reason.to_owned(),
    }
}

impl DeviceMapper {
    /// Send a request and decode its reply; a failure on a device gets a hint.
    pub(super) fn run<R: Request>(&self, req: &R) -> Result<R::Output> {
        let enc = req.encode()?;
        let addr = enc.addr;
        let sent = if req.uevent() {
            self.send_with_cookie(R::COMMAND, enc)
        } else {
            self.send(R::COMMAND, &enc)
        };
        let reply = sent.map_err(|e| match addr {
            Addr::Control => e,
            Addr::Named { .. } => self.with_hint(e, None),
            Addr::Device(id) => self.with_hint(e, Some(id)),
        })?;
        req.decode(&reply)
    }

    /// Send a request that generates a uevent: in udev mode, wrap it in the cookie
    /// handshake.
    fn send_with_cookie(&self, cmd: Command, mut enc: Encoding<'_>) -> Result<Reply> {
        if self.nodes != NodeMode::Udev {
            return self.send(cmd, &enc);
        }
        let sem = match CookieSem::create() {
            Ok(s) => s,
            // No SysV IPC: go on without synchronisation, as libdevmapper does.
            Err(_) => return self.send(cmd, &enc),
        };
        let flags = u32::from(dm_sys::DM_UDEV_PRIMARY_SOURCE_FLAG) << dm_sys::DM_UDEV_FLAGS_SHIFT;
        enc.event_nr = flags | u32::from(sem.base());
        let _ = sem.add(1);
        let r = self.send(cmd, &enc);
        let generated = matches!(&r, Ok(rep) if rep.flags().contains(DmFlags::UEVENT_GENERATED));
        if !generated {
            let _ = sem.add(-1);
        }
        let _ = sem.add(-1);
        let _ = sem.wait_zero(self.opts.udev_timeout);
        r
    }

    /// Encode, issue (growing the buffer while the kernel says it is full) and decode the
    /// header.
    fn send(&self, cmd: Command, enc: &Encoding<'_>) -> Result<Reply> {
        let needed = cmd.min_version();
        if cmd != Command::Version && needed > self.kernel {
            return Err(Error::Unsupported {
                cmd,
                needed,
                kernel: self.kernel,
            });
        }
        let (mut name, mut uuid, mut dev) = ("", "", 0);
        let device = match enc.addr {
            Addr::Control => None,
            Addr::Named {
                name: n,
                uuid: u,
                dev: d,
            } => {
                (name, uuid, dev) = (n, u, d);
                (!name.is_empty()).then(|| name.to_owned())
            }
            Addr::Device(id) => {
                match id {
                    DevId::Name(n) => name = n.as_str(),
                    DevId::Uuid(u) => uuid = u.as_str(),
                    DevId::Dev(d) => dev = d.to_kernel_huge(),
                }
                Some(id.to_string())
            }
        };
        let header = RequestHeader {
            version: needed,
            target_count: enc.target_count,
            flags: enc.flags.bits(),
            event_nr: enc.event_nr,
            dev,
            name,
            uuid,
        };
        let min = HEADER_SIZE + enc.payload.len();
        let mut size = if cmd.reply_can_grow() {
            let first = enc.reply_hint.map_or(self.opts.initial_buffer, |h| {
                h.min(self.opts.initial_buffer)
            });
            min.max(first).max(HEADER_SIZE + 8)
        } else {
            min
        };
        loop {
            let mut buf = Buffer::zeroed(size);
            wire::encode_request(buf.as_bytes_mut(), &header, &enc.payload)
                .map_err(|e| bad(cmd, e))?;
            let t0 = std::time::Instant::now();
            let rc = ioctl::dm_ioctl(self.control.as_fd(), cmd, &mut buf);
            crate::kernel::stats::record(cmd, t0.elapsed(), rc.is_ok());
            if let Err(errno) = rc {
                return Err(Error::Ioctl {
                    cmd,
                    device,
                    errno,
                    hint: None,
                });
            }
            let header = wire::decode_header(buf.as_bytes()).map_err(|e| bad(cmd, e))?;
            let reply = Reply { cmd, header, buf };
            if reply.flags().contains(DmFlags::BUFFER_FULL) && cmd.reply_can_grow() {
                // Four times larger each time, up to the cap: a retry costs the kernel a
                // whole walk (all devices for a list), so 5,000 devices take three calls
                // from 16 KiB, not five.
                let len = reply.buf.len();
                if len >= self.opts.max_buffer {
                    return Err(Error::ReplyTooLarge {
                        cmd,
                        cap: self.opts.max_buffer,
                    });
                }
                size = len.saturating_mul(4).min(self.opts.max_buffer);
                continue;
            }
            return Ok(reply);
        }
    }
}
