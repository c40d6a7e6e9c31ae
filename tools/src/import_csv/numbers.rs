//! Price and volume fields: prices exactly in 1e-9 units (never through floats), volumes as whole
//! numbers however pandas wrote them; each failure names its [`Reject`] reason.

use super::report::Reject;
use super::timestamp::is_integer;
use engine::records::parse_px;

pub(crate) fn is_nan_or_inf(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    ["nan", "inf", "infinity"].iter().any(|w| t.eq_ignore_ascii_case(w))
}

/// `[+-]digits[.digits]` (what [`parse_px`] accepts when in range).
fn is_plain_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (i, f) = body.split_once('.').unwrap_or((body, ""));
    !(i.is_empty() && f.is_empty()) && i.bytes().all(|b| b.is_ascii_digit()) && f.bytes().all(|b| b.is_ascii_digit())
}

/// A price in 1e-9 units, or why not.
pub(crate) fn parse_price(s: &str) -> Result<i64, Reject> {
    if is_nan_or_inf(s) {
        return Err(Reject::NanInf);
    }
    match parse_px(s) {
        Some(0) if !s.starts_with('-') && s.bytes().any(|b| (b'1'..=b'9').contains(&b)) => Err(Reject::BelowResolution),
        Some(v) => Ok(v),
        None if is_plain_decimal(s) => Err(Reject::OutOfRange),
        None => Err(Reject::BadNumber),
    }
}

/// A volume: a whole non-negative number, written as an integer, a decimal with a zero fraction
/// (`1500.0`) or in scientific notation (`1.5e3`), as pandas writes float columns.
pub(crate) fn parse_volume(s: &str) -> Result<u64, Reject> {
    if is_nan_or_inf(s) {
        return Err(Reject::NanInf);
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(k) => (&body[..k], Some(&body[k + 1..])),
        None => (body, None),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Reject::BadNumber);
    }
    let exp: i64 = match exp {
        None => 0,
        Some(e) if is_integer(e.strip_prefix('+').unwrap_or(e)) && e.len() <= 4 => {
            e.strip_prefix('+').unwrap_or(e).parse().map_err(|_| Reject::BadNumber)?
        }
        Some(_) => return Err(Reject::BadNumber),
    };
    // digits * 10^(exp - frac.len())
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let point = int.len() as i64 + exp; // digits before the decimal point
    let split = point.clamp(0, digits.len() as i64) as usize;
    if digits[split..].iter().any(|&d| d != b'0') {
        return Err(Reject::BadNumber); // not a whole number
    }
    let mut v: u64 = 0;
    for &d in &digits[..split] {
        v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))).ok_or(Reject::OutOfRange)?;
    }
    for _ in digits.len() as i64..point {
        if v != 0 {
            v = v.checked_mul(10).ok_or(Reject::OutOfRange)?;
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_volumes() {
        assert_eq!(parse_price("10.5"), Ok(10_500_000_000));
        assert_eq!(parse_price("0.0000000001"), Err(Reject::BelowResolution));
        assert_eq!(parse_price("0"), Ok(0)); // rejected later as non-positive
        assert_eq!(parse_price("99999999999"), Err(Reject::OutOfRange));
        assert_eq!(parse_price("1e3"), Err(Reject::BadNumber));
        assert_eq!(parse_price("NaN"), Err(Reject::NanInf));
        assert_eq!(parse_volume("1200"), Ok(1200));
        assert_eq!(parse_volume("1200.000"), Ok(1200));
        assert_eq!(parse_volume("1500.0"), Ok(1500));
        assert_eq!(parse_volume("1.5e3"), Ok(1500));
        assert_eq!(parse_volume("1.5E+3"), Ok(1500));
        assert_eq!(parse_volume("2e0"), Ok(2));
        assert_eq!(parse_volume("0e5"), Ok(0));
        assert_eq!(parse_volume("100e-2"), Ok(1));
        assert_eq!(parse_volume("99999999999999999999"), Err(Reject::OutOfRange));
        assert_eq!(parse_volume("1e30"), Err(Reject::OutOfRange));
        for bad in ["1200.5", "-1", "1.5e0", ".", "x", "1e", "1e3.5"] {
            assert_eq!(parse_volume(bad), Err(Reject::BadNumber), "{bad}");
        }
        assert!(is_nan_or_inf("NaN") && is_nan_or_inf("-inf") && is_nan_or_inf("Infinity"));
    }
}
