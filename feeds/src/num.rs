//! Numbers and times from JSON text: exact fixed point (1e-9) from a number's digits, counts,
//! RFC 3339 timestamps and Unix milliseconds to UTC nanoseconds. Nothing here goes through `f64`.

use crate::msg::RejectKind;

/// Most significant digits kept exactly (beyond them a number is refused as out of range).
const MAX_DIGITS: u32 = 36;

/// Parse a JSON number's text into `round(value * 10^scale)`, exactly, rounding half away from
/// zero. Accepts the JSON grammar (`-?int(.frac)?([eE][+-]?exp)?`); also a leading `+`.
/// Returns the value and whether rounding dropped non-zero digits.
fn scaled(text: &str, scale: i32) -> Result<(i128, bool), RejectKind> {
    let b = text.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        Some(c) if c.is_ascii_digit() || *c == b'.' => false,
        _ => return Err(RejectKind::NotANumber),
    };
    let mut mant: u128 = 0;
    let mut sig = 0u32; // significant digits held in `mant`
    let mut frac_len: i32 = 0;
    let mut digits = 0u32;
    let mut seen_dot = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            digits += 1;
            if mant != 0 || c != b'0' {
                sig += 1;
                if sig > MAX_DIGITS {
                    return Err(RejectKind::OutOfRange);
                }
            }
            mant = mant * 10 + u128::from(c - b'0');
            if seen_dot {
                frac_len += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return Err(RejectKind::NotANumber);
    }
    let mut exp: i32 = 0;
    if i < b.len() {
        if b[i] != b'e' && b[i] != b'E' {
            return Err(RejectKind::NotANumber);
        }
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: anything past 10^4 is out of range or rounds to zero below.
            exp = (exp * 10 + i32::from(b[i] - b'0')).min(10_000);
            i += 1;
        }
        if i == start || i != b.len() {
            return Err(RejectKind::NotANumber);
        }
        if eneg {
            exp = -exp;
        }
    }
    let k = exp - frac_len + scale;
    let (v, inexact) = if mant == 0 {
        (0u128, false)
    } else if k >= 0 {
        if k > 38 {
            return Err(RejectKind::OutOfRange);
        }
        (mant.checked_mul(10u128.pow(k as u32)).ok_or(RejectKind::OutOfRange)?, false)
    } else if -k > 38 {
        (0, true) // mant < 10^36, so it rounds to zero
    } else {
        let d = 10u128.pow((-k) as u32);
        let (q, r) = (mant / d, mant % d);
        (if r * 2 >= d { q + 1 } else { q }, r != 0)
    };
    let v = i128::try_from(v).map_err(|_| RejectKind::OutOfRange)?;
    Ok((if neg { -v } else { v }, inexact))
}

/// A price (or any decimal) from a JSON number's text to 1e-9 fixed point, exactly: `189.01`,
/// `1.8901e2`, `189`, `-0.5`. More than 9 fractional digits round half away from zero. A JSON
/// string, `null`, `true`, an object or `NaN` is [`RejectKind::NotANumber`]; a value that does not
/// fit `i64` is [`RejectKind::OutOfRange`]. The sign is kept: callers check positivity.
pub fn px_e9(text: &str) -> Result<i64, RejectKind> {
    if let Some(v) = px_e9_plain(text.as_bytes()) {
        return Ok(v);
    }
    let (v, _) = scaled(text, 9)?;
    i64::try_from(v).map_err(|_| RejectKind::OutOfRange)
}

/// The common case in 64-bit arithmetic: `[-]int[.frac]` with at most 9 integer and 9 fraction
/// digits (no exponent). `None` sends anything else to the general path.
#[inline]
fn px_e9_plain(b: &[u8]) -> Option<i64> {
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let mut i = 0;
    let mut int: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        int = int * 10 + i64::from(b[i] - b'0');
        i += 1;
        if i > 9 {
            return None;
        }
    }
    if i == 0 {
        return None;
    }
    let mut frac: i64 = 0;
    let mut scale: i64 = 1_000_000_000;
    if i < b.len() {
        if b[i] != b'.' || i + 1 == b.len() || b.len() - i - 1 > 9 {
            return None;
        }
        for &c in &b[i + 1..] {
            if !c.is_ascii_digit() {
                return None;
            }
            frac = frac * 10 + i64::from(c - b'0');
            scale /= 10;
        }
    }
    let v = int * 1_000_000_000 + frac * scale;
    Some(if neg { -v } else { v })
}

/// 1 to 18 plain digits (the common case of counts and Unix ms); `None` sends anything else to
/// the general path.
#[inline]
fn plain_uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// A non-negative whole count (volume, size, trade count, id) from a JSON number's text:
/// `51234`, `5.1234e4` and `51234.0` are accepted; a fraction is [`RejectKind::FractionalCount`],
/// a negative value [`RejectKind::NegativeCount`].
pub fn count(text: &str) -> Result<u64, RejectKind> {
    if let Some(v) = plain_uint(text.as_bytes()) {
        return Ok(v);
    }
    let (v, inexact) = scaled(text, 0)?;
    if inexact {
        return Err(RejectKind::FractionalCount);
    }
    if v < 0 {
        return Err(RejectKind::NegativeCount);
    }
    u64::try_from(v).map_err(|_| RejectKind::OutOfRange)
}

/// Unix milliseconds (a JSON integer) to nanoseconds.
pub fn ms_to_ns(text: &str) -> Result<i64, RejectKind> {
    if let Some(v) = plain_uint(text.as_bytes()).filter(|&v| v < 1 << 42) {
        return Ok(v as i64 * 1_000_000);
    }
    let (v, inexact) = scaled(text, 6).map_err(|_| RejectKind::BadTimestamp)?;
    if inexact || v < 0 {
        return Err(RejectKind::BadTimestamp);
    }
    i64::try_from(v).map_err(|_| RejectKind::BadTimestamp)
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The common form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, without allocation; `None` for anything else.
fn rfc3339_fast(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (h, mi, se) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let rest = &s[19..];
    let (frac, z) = match rest.first()? {
        b'.' if rest.len() >= 3 => {
            let f = &rest[1..rest.len() - 1];
            if f.is_empty() || f.len() > 9 {
                return None;
            }
            (digits(f)? * 10i64.pow(9 - f.len() as u32), rest[rest.len() - 1])
        }
        _ if rest.len() == 1 => (0, rest[0]),
        _ => return None,
    };
    if z != b'Z' {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    // Past 2262-04-11 the nanosecond count leaves i64: jiff then refuses it too.
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// An RFC 3339 timestamp (`2024-03-01T14:31:02.123456789Z`, or any offset such as `+00:00` or
/// `-05:00`) to nanoseconds since the epoch, UTC. The `...Z` form is parsed inline; other forms go
/// through `jiff`. Anything else is [`RejectKind::BadTimestamp`].
pub fn rfc3339_ns(s: &str) -> Result<i64, RejectKind> {
    if let Some(ns) = rfc3339_fast(s.as_bytes()) {
        return Ok(ns);
    }
    let ts: jiff::Timestamp = s.parse().map_err(|_| RejectKind::BadTimestamp)?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| RejectKind::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prices_are_exact() {
        assert_eq!(px_e9("189.01"), Ok(189_010_000_000));
        assert_eq!(px_e9("189.0801"), Ok(189_080_100_000));
        assert_eq!(px_e9("189"), Ok(189_000_000_000));
        assert_eq!(px_e9("1.8901e2"), Ok(189_010_000_000));
        assert_eq!(px_e9("18901E-2"), Ok(189_010_000_000));
        assert_eq!(px_e9("1e-9"), Ok(1));
        assert_eq!(px_e9("4e-10"), Ok(0));
        assert_eq!(px_e9("5e-10"), Ok(1), "half away from zero");
        assert_eq!(px_e9("-5e-10"), Ok(-1));
        assert_eq!(px_e9("0.0000000015"), Ok(2));
        assert_eq!(px_e9("-0.5"), Ok(-500_000_000));
        assert_eq!(px_e9("0"), Ok(0));
        assert_eq!(px_e9("1e300"), Err(RejectKind::OutOfRange));
        assert_eq!(px_e9("9300000000"), Err(RejectKind::OutOfRange), "past i64 at 1e-9");
        assert_eq!(px_e9("1e-300"), Ok(0));
        for bad in ["", "\"189.01\"", "null", "true", "NaN", "-", "1e", "1.2.3", "{}", "1x", "e5", "[1]"] {
            assert_eq!(px_e9(bad), Err(RejectKind::NotANumber), "{bad}");
        }
    }

    #[test]
    fn counts_are_whole_and_non_negative() {
        assert_eq!(count("51234"), Ok(51234));
        assert_eq!(count("51234.0"), Ok(51234));
        assert_eq!(count("5.1234e4"), Ok(51234));
        assert_eq!(count("0"), Ok(0));
        assert_eq!(count("1.5"), Err(RejectKind::FractionalCount));
        assert_eq!(count("-3"), Err(RejectKind::NegativeCount));
        assert_eq!(count("1e30"), Err(RejectKind::OutOfRange));
        assert_eq!(count("\"7\""), Err(RejectKind::NotANumber));
    }

    #[test]
    fn unix_ms() {
        assert_eq!(ms_to_ns("1709303460000"), Ok(1_709_303_460_000_000_000));
        assert_eq!(ms_to_ns("-1"), Err(RejectKind::BadTimestamp));
        assert_eq!(ms_to_ns("1.5"), Ok(1_500_000), "sub-ms is still whole ns");
        assert_eq!(ms_to_ns("1.0000005"), Err(RejectKind::BadTimestamp));
        assert_eq!(ms_to_ns("\"1709303460000\""), Err(RejectKind::BadTimestamp));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ns("2024-03-01T14:31:00Z"), Ok(1_709_303_460_000_000_000));
        assert_eq!(rfc3339_ns("2024-03-01T14:31:02.123456789Z"), Ok(1_709_303_462_123_456_789));
        assert_eq!(rfc3339_ns("2024-03-01T14:31:02.5Z"), Ok(1_709_303_462_500_000_000));
        assert_eq!(rfc3339_ns("2024-03-01T09:31:00-05:00"), Ok(1_709_303_460_000_000_000));
        assert_eq!(rfc3339_ns("2024-03-01T14:31:00+00:00"), Ok(1_709_303_460_000_000_000));
        assert_eq!(rfc3339_ns("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000_000_000));
        assert_eq!(rfc3339_ns("9999-03-01T14:31:00Z"), Err(RejectKind::BadTimestamp), "past i64 ns");
        assert_eq!(rfc3339_ns("2024-03-01T14:31:00."), Err(RejectKind::BadTimestamp));
        for bad in [
            "",
            "2024-03-01",
            "2024-03-01T14:31:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "yesterday",
            "2024-03-01T14:31:00.Z",
        ] {
            assert_eq!(rfc3339_ns(bad), Err(RejectKind::BadTimestamp), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn fast_rfc3339_agrees_with_jiff(secs in 0i64..4_102_444_800, nanos in 0i64..1_000_000_000, digits in 0usize..=9) {
            let ns = secs * 1_000_000_000 + nanos;
            let ts = jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap();
            let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            let frac = format!("{nanos:09}");
            let text = if digits == 0 { format!("{base}Z") } else { format!("{base}.{}Z", &frac[..digits]) };
            let want: jiff::Timestamp = text.parse().unwrap();
            prop_assert_eq!(rfc3339_fast(text.as_bytes()), Some(want.as_nanosecond() as i64));
        }

        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,40}", t in "[0-9TZ:.+-]{0,32}") {
            let _ = (px_e9(&s), count(&s), ms_to_ns(&s), rfc3339_ns(&s));
            let _ = (px_e9(&t), count(&t), ms_to_ns(&t), rfc3339_ns(&t));
        }

        #[test]
        fn fast_path_agrees_with_general(int in 0u64..1_000_000_000, frac in 0u64..1_000_000_000, fd in 0usize..=9, neg in any::<bool>()) {
            let f = format!("{frac:09}");
            let text = format!("{}{int}{}{}", if neg { "-" } else { "" }, if fd > 0 { "." } else { "" }, &f[..fd]);
            let general = scaled(&text, 9).map(|(v, _)| v as i64);
            prop_assert_eq!(px_e9_plain(text.as_bytes()).ok_or(RejectKind::NotANumber), general);
        }

        #[test]
        fn decimal_text_round_trips(v in 1i64..1_000_000_000_000_000) {
            let text = engine::records::fmt_px(v, 0);
            prop_assert_eq!(px_e9(&text), Ok(v));
            prop_assert_eq!(px_e9(&format!("{text}e0")), Ok(v));
        }
    }
}
