use super::*;

// Golden values computed from the C header: _IOWR(0xfd, nr, struct dm_ioctl) with
// sizeof(struct dm_ioctl) == 312 == 0x138.
#[test]
fn request_codes_match_the_header() {
    let expected: [(u32, u32); DM_COMMAND_COUNT] = [
        (DM_VERSION, 0xc138_fd00),
        (DM_REMOVE_ALL, 0xc138_fd01),
        (DM_LIST_DEVICES, 0xc138_fd02),
        (DM_DEV_CREATE, 0xc138_fd03),
        (DM_DEV_REMOVE, 0xc138_fd04),
        (DM_DEV_RENAME, 0xc138_fd05),
        (DM_DEV_SUSPEND, 0xc138_fd06),
        (DM_DEV_STATUS, 0xc138_fd07),
        (DM_DEV_WAIT, 0xc138_fd08),
        (DM_TABLE_LOAD, 0xc138_fd09),
        (DM_TABLE_CLEAR, 0xc138_fd0a),
        (DM_TABLE_DEPS, 0xc138_fd0b),
        (DM_TABLE_STATUS, 0xc138_fd0c),
        (DM_LIST_VERSIONS, 0xc138_fd0d),
        (DM_TARGET_MSG, 0xc138_fd0e),
        (DM_DEV_SET_GEOMETRY, 0xc138_fd0f),
        (DM_DEV_ARM_POLL, 0xc138_fd10),
        (DM_GET_TARGET_VERSION, 0xc138_fd11),
    ];
    for (nr, (got, want)) in expected.iter().enumerate() {
        assert_eq!(*got, *want, "command {nr}");
        assert_eq!(request_code(nr as u8), *want, "command {nr}");
    }
}

#[test]
fn layout_offsets() {
    assert_eq!(size_of::<dm_ioctl>(), 312);
    assert_eq!(offset_of!(dm_ioctl, name), 48);
    assert_eq!(offset_of!(dm_ioctl, uuid), 176);
    assert_eq!(offset_of!(dm_ioctl, data), 305);
    assert_eq!(offset_of!(dm_ioctl, dev), 40);
    assert_eq!(size_of::<dm_target_spec>(), 40);
    assert_eq!(size_of::<dm_target_deps>(), DM_TARGET_DEPS_DEV_OFFSET);
    assert_eq!(size_of::<dm_name_list>(), 16);
    assert_eq!(DM_NAME_LIST_NAME_OFFSET, 12);
    assert_eq!(
        size_of::<dm_target_versions>(),
        DM_TARGET_VERSIONS_NAME_OFFSET
    );
    assert_eq!(size_of::<dm_target_msg>(), DM_TARGET_MSG_MESSAGE_OFFSET);
}

#[test]
fn flag_bits_are_distinct() {
    let flags = [
        DM_READONLY_FLAG,
        DM_SUSPEND_FLAG,
        DM_EXISTS_FLAG,
        DM_PERSISTENT_DEV_FLAG,
        DM_STATUS_TABLE_FLAG,
        DM_ACTIVE_PRESENT_FLAG,
        DM_INACTIVE_PRESENT_FLAG,
        DM_BUFFER_FULL_FLAG,
        DM_SKIP_BDGET_FLAG,
        DM_SKIP_LOCKFS_FLAG,
        DM_NOFLUSH_FLAG,
        DM_QUERY_INACTIVE_TABLE_FLAG,
        DM_UEVENT_GENERATED_FLAG,
        DM_UUID_FLAG,
        DM_SECURE_DATA_FLAG,
        DM_DATA_OUT_FLAG,
        DM_DEFERRED_REMOVE,
        DM_INTERNAL_SUSPEND_FLAG,
        DM_IMA_MEASUREMENT_FLAG,
    ];
    let mut seen = 0u32;
    for f in flags {
        assert_eq!(f.count_ones(), 1);
        assert_eq!(seen & f, 0);
        seen |= f;
    }
    assert_eq!(DM_BUFFER_FULL_FLAG, 0x100);
    assert_eq!(DM_DEFERRED_REMOVE, 0x20000);
}
