use super::*;

#[test]
fn handle_is_send_and_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<DeviceMapper>();
}

/// A control node that cannot be created: on a kernel with device-mapper the error
/// gives the `mknod` line with the driver's number; without, it says to load dm_mod.
#[test]
fn uncreatable_control_node_says_how_to_make_it() {
    let path = std::path::Path::new("/proc/devmapper-no-such-dir/control");
    let opts = Options {
        control: path.into(),
        ..Options::default()
    };
    let e = DeviceMapper::with_options(opts).unwrap_err();
    let text = e.to_string();
    match nodes::dm_driver() {
        nodes::Driver::Absent => assert!(
            matches!(
                e,
                Error::NoDeviceMapper {
                    reason: DmUnavailable::NoDriver
                }
            ),
            "{e}"
        ),
        nodes::Driver::Present(Some(dev)) => {
            assert!(
                matches!(&e, Error::NoDeviceMapper {
                    reason: DmUnavailable::ControlNode { dev: Some(d), path: p, .. }
                } if *d == dev && p == path),
                "{e}"
            );
            let mknod = format!(
                "mknod -m 600 {} c {} {}",
                path.display(),
                dev.major,
                dev.minor
            );
            assert!(text.contains(&mknod), "{text}");
        }
        other => println!("SKIP uncreatable_control_node_says_how_to_make_it: {other:?}"),
    }
    assert!(!text.contains("dmsnap"), "{text}");
}

#[test]
fn missing_control_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        control: dir.path().join("mapper/control"),
        ..Options::default()
    };
    if nodes::dm_driver() != nodes::Driver::Absent {
        println!("SKIP missing_control_node_is_a_clear_error: the kernel has device-mapper");
        return; // the node would be created
    }
    let e = DeviceMapper::with_options(opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NoDeviceMapper {
                reason: DmUnavailable::NoDriver
            }
        ),
        "{e}"
    );
}

mod requests {
    use super::super::commands::*;
    use super::super::request::{Addr, Encoding, Request};
    use super::*;

    fn enc<R: Request>(r: &R) -> Encoding<'_> {
        r.encode().unwrap()
    }

    fn device_of(e: &Encoding<'_>) -> Option<String> {
        match e.addr {
            Addr::Device(id) => Some(id.to_string()),
            _ => None,
        }
    }

    /// What each command puts in the header: the flags the old hand-built calls set.
    #[test]
    fn flags_and_addresses_per_command() {
        let n = DmName::new("dev").unwrap();
        let id = DevId::Name(&n);
        assert_eq!(
            enc(&RemoveAll(RemoveMode::Deferred)).flags,
            DmFlags::DEFERRED_REMOVE
        );
        assert!(matches!(
            enc(&RemoveAll(RemoveMode::Now)).addr,
            Addr::Control
        ));
        assert_eq!(enc(&ListDevices).flags, DmFlags::UUID);

        let opts = CreateOptions::default()
            .read_only(true)
            .dev(DevNum::new(253, 7))
            .uuid(DmUuid::new("u-1").unwrap());
        let c = Create {
            name: &n,
            opts: &opts,
        };
        let e = enc(&c);
        assert_eq!(e.flags, DmFlags::READONLY | DmFlags::PERSISTENT_DEV);
        assert!(matches!(
            e.addr,
            Addr::Named { name: "dev", uuid: "u-1", dev } if dev == DevNum::new(253, 7).to_kernel_huge()
        ));

        let suspend = Suspend {
            id,
            suspend: true,
            opts: SuspendOptions {
                noflush: true,
                skip_lockfs: true,
            },
        };
        assert_eq!(
            enc(&suspend).flags,
            DmFlags::SUSPEND | DmFlags::NOFLUSH | DmFlags::SKIP_LOCKFS
        );
        let resume = Suspend {
            id,
            suspend: false,
            opts: SuspendOptions::default(),
        };
        assert_eq!(enc(&resume).flags, DmFlags::empty());
        // Only the calls that send a uevent take the udev cookie.
        assert!(resume.uevent() && !suspend.uevent());
        assert!(Remove(id, RemoveMode::Now).uevent());
        assert!(!Info(id).uevent());

        let u = DmUuid::new("u-2").unwrap();
        let r = Rename(id, NewId::Uuid(&u));
        let e = enc(&r);
        assert_eq!((e.flags, &e.payload[..]), (DmFlags::UUID, &b"u-2\0"[..]));
        let r = Rename(id, NewId::Name(&n));
        let e = enc(&r);
        assert_eq!((e.flags, &e.payload[..]), (DmFlags::empty(), &b"dev\0"[..]));
        assert_eq!(device_of(&e).as_deref(), Some("dev"));

        assert_eq!(
            enc(&Deps(id, Which::Inactive)).flags,
            DmFlags::QUERY_INACTIVE_TABLE
        );
        let w = Wait(DevId::Dev(DevNum::new(253, 1)), 42);
        let e = enc(&w);
        assert_eq!(e.event_nr, 42);
        assert_eq!(device_of(&e).as_deref(), Some("device 253:1"));

        let load = Load {
            id,
            targets: &[RawTarget {
                start: Sectors(0),
                length: Sectors(8),
                target_type: "zero".into(),
                params: String::new(),
            }],
            opts: LoadOptions {
                read_only: true,
                secure: true,
            },
        };
        let e = enc(&load);
        assert_eq!(e.flags, DmFlags::READONLY | DmFlags::SECURE_DATA);
        assert_eq!(e.target_count, 1);
    }

    #[test]
    fn message_payload_and_refusal() {
        let n = DmName::new("pool").unwrap();
        let m = Message {
            id: DevId::Name(&n),
            sector: Sectors(3),
            message: "create_thin 0",
        };
        let e = enc(&m);
        assert_eq!(&e.payload[..8], &3u64.to_ne_bytes());
        assert_eq!(&e.payload[8..], b"create_thin 0\0");
        let bad = Message {
            message: "a\0b",
            ..m
        };
        assert!(matches!(bad.encode(), Err(Error::InvalidArgument(_))));
        let g = SetGeometry(
            DevId::Name(&n),
            Geometry {
                cylinders: 1,
                heads: 2,
                sectors: 3,
                start: 4,
            },
        );
        assert_eq!(&enc(&g).payload[..], b"1 2 3 4\0");
    }
}
