use crate::lvm::crc::{INITIAL_CRC, calc_crc};
use proptest::prelude::*;

/// The byte-at-a-time table-free form of lvm2's `calc_crc` (reflected, poly 0xEDB88320,
/// no inversion), as an independent reference.
fn reference(initial: u32, data: &[u8]) -> u32 {
    let mut crc = initial;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn check_value_and_empty() {
    assert_eq!(calc_crc(INITIAL_CRC, b"123456789"), 0x4991_cf02);
    assert_eq!(reference(INITIAL_CRC, b"123456789"), 0x4991_cf02);
    assert_eq!(calc_crc(INITIAL_CRC, b""), INITIAL_CRC);
    assert_eq!(calc_crc(0, b""), 0);
}

proptest! {
    #[test]
    fn matches_reference(init in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(calc_crc(init, &data), reference(init, &data));
    }

    #[test]
    fn chains(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
        let cut = cut.min(data.len());
        let (a, b) = data.split_at(cut);
        prop_assert_eq!(calc_crc(calc_crc(INITIAL_CRC, a), b), calc_crc(INITIAL_CRC, &data));
    }
}
