//! Allocation-free text output for the hot-ish paths (journal CSV, exports): integers, fixed-point
//! prices and RFC 3339 timestamps appended to a reusable byte buffer.

use crate::records::PX_SCALE;

/// Append the decimal digits of `v`.
#[inline]
pub fn write_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Append a signed integer.
#[inline]
pub fn write_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    write_u64(buf, v.unsigned_abs());
}

/// Append a fixed-point price exactly, trimming trailing zeros but keeping at least `min_frac`
/// fractional digits (`3075210000000` -> `3075.21` with `min_frac = 2`).
#[inline]
pub fn write_px(buf: &mut Vec<u8>, px_e9: i64, min_frac: usize) {
    if px_e9 < 0 {
        buf.push(b'-');
    }
    let abs = px_e9.unsigned_abs();
    write_u64(buf, abs / PX_SCALE as u64);
    let mut frac = abs % PX_SCALE as u64;
    let mut digits = [0u8; 9];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let mut n = 9;
    while n > min_frac.min(9) && digits[n - 1] == b'0' {
        n -= 1;
    }
    if n > 0 {
        buf.push(b'.');
        buf.extend_from_slice(&digits[..n]);
    }
}

fn two(buf: &mut Vec<u8>, v: i64) {
    buf.push(b'0' + (v / 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

/// Append ns since the epoch as RFC 3339 UTC (`2019-11-05T16:04:00Z`; nanoseconds only when
/// non-zero). Civil-from-days after Howard Hinnant's algorithm.
pub fn write_ts(buf: &mut Vec<u8>, ts_ns: i64) {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let nanos = ts_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if (0..10_000).contains(&y) {
        two(buf, y / 100);
        two(buf, y % 100);
    } else {
        write_i64(buf, y);
    }
    buf.push(b'-');
    two(buf, m);
    buf.push(b'-');
    two(buf, d);
    buf.push(b'T');
    two(buf, sod / 3600);
    buf.push(b':');
    two(buf, sod % 3600 / 60);
    buf.push(b':');
    two(buf, sod % 60);
    if nanos != 0 {
        buf.push(b'.');
        let mut digits = [0u8; 9];
        let mut f = nanos;
        for dg in digits.iter_mut().rev() {
            *dg = b'0' + (f % 10) as u8;
            f /= 10;
        }
        buf.extend_from_slice(&digits);
    }
    buf.push(b'Z');
}

/// [`write_ts`] into a new `String`.
pub fn fmt_ts(ts_ns: i64) -> String {
    let mut b = Vec::with_capacity(32);
    write_ts(&mut b, ts_ns);
    String::from_utf8(b).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prices_trim_to_min_frac() {
        let px = |v, f| {
            let mut b = Vec::new();
            write_px(&mut b, v, f);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(px(3_075_210_000_000, 2), "3075.21");
        assert_eq!(px(3_075_000_000_000, 2), "3075.00");
        assert_eq!(px(3_075_000_000_000, 0), "3075");
        assert_eq!(px(-500_000_000, 2), "-0.50");
        assert_eq!(px(1, 0), "0.000000001");
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(fmt_ts(0), "1970-01-01T00:00:00Z");
        // 2019-11-05 14:30 UTC = 1572964200 s
        assert_eq!(fmt_ts(1_572_964_200_000_000_000), "2019-11-05T14:30:00Z");
        assert_eq!(fmt_ts(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(fmt_ts(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    proptest! {
        #[test]
        fn prices_round_trip_with_at_least_min_frac_digits(v in any::<i64>(), frac in 0usize..10) {
            let mut b = Vec::new();
            write_px(&mut b, v, frac);
            let text = String::from_utf8(b).unwrap();
            prop_assert_eq!(crate::records::parse_px(&text), Some(v));
            let digits = text.split_once('.').map_or(0, |(_, f)| f.len());
            prop_assert!(digits >= frac.min(9) && digits <= 9, "{}", text);
        }

        #[test]
        fn integers_match_display(v in any::<i64>()) {
            let mut b = Vec::new();
            write_i64(&mut b, v);
            prop_assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }
}
