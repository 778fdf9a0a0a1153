//! C's number readers as libdm calls them: `strtoll(.., 0)` for integers (octal after a
//! leading `0`, hex after `0x`, `None` on ERANGE) and `strtod` for floats.

/// `strtoll(s, NULL, 0)`: `None` on overflow (ERANGE). No digits at all reads as 0.
pub(super) fn strtoll(s: &[u8]) -> Option<i64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', h, ..] if h.is_ascii_hexdigit() => {
            (16u32, s.get(2..).unwrap_or_default())
        }
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    // Accumulate negatively so that i64::MIN is representable.
    let mut acc: i64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        acc = acc
            .checked_mul(i64::from(radix))?
            .checked_sub(i64::from(d))?;
    }
    if neg { Some(acc) } else { acc.checked_neg() }
}

/// `strtod(s, NULL)` for the shapes a float token can start: `[+-]digits[.digits][e[+-]digits]`.
pub(super) fn strtod(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        mantissa_digits += i - frac_start;
    }
    if mantissa_digits == 0 {
        return Some(0.0);
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if s.get(j).is_some_and(u8::is_ascii_digit) {
            while s.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            i = j;
        }
    }
    let text = std::str::from_utf8(s.get(..i)?).ok()?;
    let v: f64 = text.parse().ok()?;
    let nonzero_digits = s
        .get(..i)?
        .iter()
        .take_while(|c| !matches!(c, b'e' | b'E'))
        .any(|c| (b'1'..=b'9').contains(c));
    if v.is_infinite() || (v == 0.0 && nonzero_digits) {
        return None; // ERANGE
    }
    Some(v)
}
