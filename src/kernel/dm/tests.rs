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
