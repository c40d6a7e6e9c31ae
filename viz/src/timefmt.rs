//! Time labels (UTC) without a time-zone library.

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const DAY_NS: i64 = 86_400_000_000_000;

/// Day number of `ts_ns`.
pub fn day(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(DAY_NS)
}

/// `HH:MM`.
pub fn hhmm(ts_ns: i64) -> String {
    let s = ts_ns.rem_euclid(DAY_NS) / 1_000_000_000;
    format!("{:02}:{:02}", s / 3600, s / 60 % 60)
}

/// `MM-DD`.
pub fn mmdd(ts_ns: i64) -> String {
    let (_, m, d) = civil(day(ts_ns));
    format!("{m:02}-{d:02}")
}

/// `YYYY-MM-DD`.
pub fn date(ts_ns: i64) -> String {
    let (y, m, d) = civil(day(ts_ns));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2019-11-05 14:30 UTC
        let t = 1_572_964_200_000_000_000;
        assert_eq!((date(t), mmdd(t), hhmm(t)), ("2019-11-05".into(), "11-05".into(), "14:30".into()));
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(date(951_782_400_000_000_000), "2000-02-29");
    }
}
