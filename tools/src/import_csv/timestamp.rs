//! Timestamp fields: text forms (ISO 8601 with or without an offset, US `M/D/YYYY H:MM`), integer
//! forms recognized by shape and magnitude (`YYYYMMDD`, epoch s/ms/us/ns), and `--time-format`.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use super::report::ImportReport;

/// How the time column is written (`--time-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeFormat {
    /// Recognize the form: text dates and times, or integers by shape and magnitude
    Auto,
    /// `YYYY-MM-DD`, `YYYY-MM-DD[ T]HH:MM[:SS[.f]]`, optionally with `Z` or `±HH:MM`
    Iso,
    /// US `M/D/YYYY[ H:MM[:SS]][ AM|PM]`
    Mdy,
    /// Integer dates `YYYYMMDD` (daily bars), optionally followed by ` HH:MM[:SS]`
    Yyyymmdd,
    /// Integer seconds since 1970-01-01 UTC
    EpochS,
    /// Integer milliseconds since the epoch
    EpochMs,
    /// Integer microseconds since the epoch
    EpochUs,
    /// Integer nanoseconds since the epoch
    EpochNs,
}

impl TimeFormat {
    /// The `--time-format` value.
    pub fn name(self) -> &'static str {
        match self {
            TimeFormat::Auto => "auto",
            TimeFormat::Iso => "iso",
            TimeFormat::Mdy => "mdy",
            TimeFormat::Yyyymmdd => "yyyymmdd",
            TimeFormat::EpochS => "epoch-s",
            TimeFormat::EpochMs => "epoch-ms",
            TimeFormat::EpochUs => "epoch-us",
            TimeFormat::EpochNs => "epoch-ns",
        }
    }

    fn epoch_scale(self) -> Option<i64> {
        match self {
            TimeFormat::EpochS => Some(1_000_000_000),
            TimeFormat::EpochMs => Some(1_000_000),
            TimeFormat::EpochUs => Some(1_000),
            TimeFormat::EpochNs => Some(1),
            _ => None,
        }
    }
}

/// True for an optionally negative run of ASCII digits.
pub(crate) fn is_integer(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// The format of an integer timestamp by shape and magnitude, or `None` when it is ambiguous:
/// 8 digits forming a valid date in 1900..=2199 are `YYYYMMDD`; otherwise epoch seconds for
/// 9-10 digits, milliseconds for 12-13, microseconds for 15-16, nanoseconds for 18-19 (each range
/// covers 1973..2286). Other lengths (11, 14, 17 digits, or under 9) could be two units.
pub(crate) fn classify_integer(s: &str) -> Option<TimeFormat> {
    let d = s.strip_prefix('-').unwrap_or(s);
    if d.len() == 8 && !s.starts_with('-') && parse_yyyymmdd(d.as_bytes()).is_some() {
        return Some(TimeFormat::Yyyymmdd);
    }
    match d.trim_start_matches('0').len() {
        9 | 10 => Some(TimeFormat::EpochS),
        12 | 13 => Some(TimeFormat::EpochMs),
        15 | 16 => Some(TimeFormat::EpochUs),
        18 | 19 => Some(TimeFormat::EpochNs),
        _ => None,
    }
}

/// A parsed timestamp before zone resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RawTs {
    /// Local civil time (no zone in the text); `date_only` for bare dates.
    Local { dt: DateTime, date_only: bool },
    /// Civil time with an explicit UTC offset in seconds.
    Offset(DateTime, i32),
    /// Nanoseconds since the epoch.
    Epoch(i64),
}

impl RawTs {
    pub(crate) fn date_only(&self) -> bool {
        matches!(self, RawTs::Local { date_only: true, .. })
    }
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            v = v * 10 + u32::from(self.b[self.i] - b'0');
            self.i += 1;
        }
        (self.i - start >= min).then_some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn skip_spaces(&mut self) -> bool {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i > start
    }
    /// `H:MM[:SS[.fffffffff]]` -> (hour, minute, second, nanosecond).
    fn time(&mut self) -> Option<(u32, u32, u32, u32)> {
        let h = self.num(1, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.num(2, 2)?;
        let (mut s, mut ns) = (0, 0);
        if self.eat(b':') {
            s = self.num(2, 2)?;
            if self.eat(b'.') || self.eat(b',') {
                let start = self.i;
                let f = self.num(1, 9)?;
                ns = f * 10u32.pow(9 - (self.i - start) as u32);
            }
        }
        Some((h, m, s, ns))
    }
}

fn civil(y: u32, mo: u32, d: u32, (h, mi, s, ns): (u32, u32, u32, u32)) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(s).ok()?,
        i32::try_from(ns).ok()?,
    )
    .ok()
}

/// `YYYYMMDD` with a year in 1900..=2199 -> (year, month, day).
fn parse_yyyymmdd(b: &[u8]) -> Option<(u32, u32, u32)> {
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    ((1900..=2199).contains(&y) && civil(y, m, d, (0, 0, 0, 0)).is_some()).then_some((y, m, d))
}

/// Parse one timestamp field (already trimmed) in `fmt`. With [`TimeFormat::Auto`] integers are
/// not accepted here: the caller decides their unit once per column ([`classify_integer`]).
pub(crate) fn parse_ts(s: &str, fmt: TimeFormat) -> Option<RawTs> {
    if let Some(scale) = fmt.epoch_scale() {
        if !is_integer(s) {
            return None;
        }
        return Some(RawTs::Epoch(s.parse::<i64>().ok()?.checked_mul(scale)?));
    }
    match fmt {
        TimeFormat::Auto => parse_text(s, None),
        TimeFormat::Iso => parse_text(s, Some(false)),
        TimeFormat::Mdy => parse_text(s, Some(true)),
        _ => parse_text(s, None).filter(|_| s.len() >= 8 && parse_yyyymmdd(&s.as_bytes()[..8]).is_some()),
    }
}

/// Text timestamps; `mdy`: `Some(true)` only US dates, `Some(false)` never, `None` by the `/`.
fn parse_text(s: &str, mdy: Option<bool>) -> Option<RawTs> {
    let b = s.as_bytes();
    let mut c = Cur { b, i: 0 };
    let is_mdy = mdy.unwrap_or_else(|| b.contains(&b'/'));
    let (y, mo, d) = if is_mdy {
        let mo = c.num(1, 2)?;
        c.eat(b'/').then_some(())?;
        let d = c.num(1, 2)?;
        c.eat(b'/').then_some(())?;
        (c.num(4, 4)?, mo, d)
    } else if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) {
        // `YYYYMMDD HH:MM` (an integer date column joined with a time column).
        let ymd = parse_yyyymmdd(&b[..8])?;
        c.i = 8;
        if c.done() {
            return None; // a bare integer: decided per column by the caller
        }
        ymd
    } else {
        let y = c.num(4, 4)?;
        c.eat(b'-').then_some(())?;
        let mo = c.num(1, 2)?;
        c.eat(b'-').then_some(())?;
        (y, mo, c.num(1, 2)?)
    };
    if c.done() {
        let dt = civil(y, mo, d, (0, 0, 0, 0))?;
        return Some(RawTs::Local { dt, date_only: true });
    }
    if !(c.skip_spaces() || (!is_mdy && (c.eat(b'T') || c.eat(b't')))) {
        return None;
    }
    let mut t = c.time()?;
    if is_mdy {
        // Optional AM/PM on US-style timestamps.
        c.skip_spaces();
        let rest = &b[c.i..];
        if rest.eq_ignore_ascii_case(b"am") || rest.eq_ignore_ascii_case(b"pm") {
            if !(1..=12).contains(&t.0) {
                return None;
            }
            t.0 = t.0 % 12 + if rest.eq_ignore_ascii_case(b"pm") { 12 } else { 0 };
            c.i = b.len();
        }
    } else {
        c.skip_spaces();
    }
    let dt = civil(y, mo, d, t)?;
    if c.done() {
        return Some(RawTs::Local { dt, date_only: false });
    }
    if is_mdy {
        return None;
    }
    let off = match c.peek()? {
        b'Z' | b'z' => {
            c.i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            c.i += 1;
            let h = c.num(2, 2)?;
            let had_colon = c.eat(b':');
            let m = if had_colon || !c.done() { c.num(2, 2)? } else { 0 };
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    c.done().then_some(RawTs::Offset(dt, off))
}

/// A bare `YYYYMMDD` integer as a date-only local time.
pub(crate) fn yyyymmdd_date(s: &str) -> Option<RawTs> {
    let (y, m, d) = parse_yyyymmdd(s.as_bytes())?;
    Some(RawTs::Local { dt: civil(y, m, d, (0, 0, 0, 0))?, date_only: true })
}

pub(crate) fn ts_to_ns(ts: jiff::Timestamp) -> Option<i64> {
    i64::try_from(ts.as_nanosecond()).ok()
}

/// Resolve a parsed timestamp to UTC nanoseconds, counting DST folds and gaps.
pub(crate) fn resolve(raw: RawTs, tz: &TimeZone, report: &mut ImportReport) -> Option<i64> {
    match raw {
        RawTs::Epoch(ns) => Some(ns),
        RawTs::Offset(dt, secs) => ts_to_ns(Offset::from_seconds(secs).ok()?.to_timestamp(dt).ok()?),
        RawTs::Local { dt, .. } => {
            let amb = tz.to_ambiguous_timestamp(dt);
            let ns = ts_to_ns(amb.compatible().ok()?)?;
            match amb.offset() {
                AmbiguousOffset::Unambiguous { .. } => {}
                AmbiguousOffset::Fold { .. } => report.dst_ambiguous += 1,
                AmbiguousOffset::Gap { .. } => report.dst_nonexistent += 1,
            }
            Some(ns)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn utc_ns(s: &str) -> i64 {
        let ts: jiff::Timestamp = s.parse().unwrap();
        ts_to_ns(ts).unwrap()
    }

    fn ts_in(s: &str, fmt: TimeFormat, tz: &TimeZone) -> Option<i64> {
        let raw = if fmt == TimeFormat::Auto && is_integer(s) {
            match classify_integer(s)? {
                TimeFormat::Yyyymmdd => yyyymmdd_date(s)?,
                f => parse_ts(s, f)?,
            }
        } else if fmt == TimeFormat::Yyyymmdd && is_integer(s) {
            yyyymmdd_date(s)?
        } else {
            parse_ts(s, fmt)?
        };
        resolve(raw, tz, &mut ImportReport::default())
    }

    fn ts(s: &str, tz: &TimeZone) -> Option<i64> {
        ts_in(s, TimeFormat::Auto, tz)
    }

    #[test]
    fn timestamp_formats() {
        let utc = TimeZone::UTC;
        let ny = ny();
        assert_eq!(ts("11/5/2019 9:30", &ny), Some(utc_ns("2019-11-05T14:30:00Z")));
        assert_eq!(ts("11/05/2019 09:30:15", &ny), Some(utc_ns("2019-11-05T14:30:15Z")));
        assert_eq!(ts("7/1/2019 1:05 PM", &ny), Some(utc_ns("2019-07-01T17:05:00Z")));
        assert_eq!(ts("7/1/2019 12:05 am", &utc), Some(utc_ns("2019-07-01T00:05:00Z")));
        assert_eq!(ts("2024-03-01", &utc), Some(utc_ns("2024-03-01T00:00:00Z")));
        assert_eq!(ts("2024-07-01", &ny), Some(utc_ns("2024-07-01T04:00:00Z")));
        assert_eq!(ts("2024-03-01 09:00", &utc), Some(utc_ns("2024-03-01T09:00:00Z")));
        assert_eq!(ts("2024-03-01 09:00:00.5", &utc), Some(utc_ns("2024-03-01T09:00:00.5Z")));
        assert_eq!(ts("2024-03-01T09:00:00.123456789", &utc), Some(utc_ns("2024-03-01T09:00:00.123456789Z")));
        // An explicit zone wins over --tz.
        assert_eq!(ts("2024-03-01T09:00:00Z", &ny), Some(utc_ns("2024-03-01T09:00:00Z")));
        assert_eq!(ts("2024-03-01T09:00:00-05:00", &utc), Some(utc_ns("2024-03-01T14:00:00Z")));
        assert_eq!(ts("2024-03-01 09:00:00+00:00", &ny), Some(utc_ns("2024-03-01T09:00:00Z")));
        assert_eq!(ts("2024-03-01T09:00:00.25+0130", &utc), Some(utc_ns("2024-03-01T07:30:00.25Z")));
        // Integers by shape and magnitude.
        let t = utc_ns("2024-03-01T09:00:00Z");
        assert_eq!(ts("1709283600", &ny), Some(t));
        assert_eq!(ts("1709283600000", &ny), Some(t));
        assert_eq!(ts("1709283600000000", &ny), Some(t));
        assert_eq!(ts("1709283600000000000", &ny), Some(t));
        assert_eq!(ts("20240102", &utc), Some(utc_ns("2024-01-02T00:00:00Z")));
        assert_eq!(ts("20240102 09:30", &utc), Some(utc_ns("2024-01-02T09:30:00Z")));
        // Ambiguous integers need --time-format.
        for amb in ["0", "20241302", "17092836000", "12345"] {
            assert_eq!(classify_integer(amb), None, "{amb}");
        }
        assert_eq!(ts_in("0", TimeFormat::EpochS, &ny), Some(0));
        assert_eq!(ts_in("20240102", TimeFormat::EpochS, &utc), Some(20_240_102_000_000_000));
        assert_eq!(ts_in("1/2/2024", TimeFormat::Iso, &utc), None);
        assert_eq!(ts_in("2024-01-02", TimeFormat::Mdy, &utc), None);
        for bad in
            ["", "garbage", "2024-02-30", "2024-03-01 25:00", "13/1/2024 9:30", "2024-03-01T09:00:00+5", "9:30", "1.5"]
        {
            assert_eq!(ts(bad, &utc), None, "{bad:?}");
        }
    }

    #[test]
    fn dst_fold_and_gap_are_counted() {
        let ny = ny();
        let mut r = ImportReport::default();
        // 2024-11-03 01:30 happens twice in New York: the earlier (EDT, -04:00) is used.
        let fold = resolve(parse_ts("2024-11-03 01:30", TimeFormat::Auto).unwrap(), &ny, &mut r);
        assert_eq!(fold, Some(utc_ns("2024-11-03T05:30:00Z")));
        // 2024-03-10 02:30 does not exist: moved forward to 03:30 EDT.
        let gap = resolve(parse_ts("2024-03-10 02:30", TimeFormat::Auto).unwrap(), &ny, &mut r);
        assert_eq!(gap, Some(utc_ns("2024-03-10T07:30:00Z")));
        assert_eq!((r.dst_ambiguous, r.dst_nonexistent), (1, 1));
    }
}
