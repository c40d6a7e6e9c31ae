//! `ringtape import csv FILE... --out DIR`: vendor CSV files -> bar files.
//!
//! Columns are found by header name (case-insensitive, any order): a timestamp (`datetime`,
//! `timestamp`, `ts`, `date` + `time`, `date` or `time`), `open`, `high`, `low`, `close`, and the
//! optional `volume` (missing -> 0), `symbol` and `interval` (files written by `export csv`: rows are
//! split into one bar file per symbol and interval). Other columns are ignored.
//!
//! Timestamps: `M/D/YYYY H:MM[:SS]`, `YYYY-MM-DD` (daily bars at 00:00 local),
//! `YYYY-MM-DD[ T]HH:MM[:SS[.f]]`, either of those followed by `Z` or `±HH:MM` (the explicit zone wins
//! over `--tz`), and integer epoch seconds / milliseconds / microseconds / nanoseconds (by magnitude).
//! Local times are placed in `--tz` with jiff's "compatible" rule (a repeated DST hour takes the
//! earlier offset, a skipped one is moved forward); such rows are counted in the report.
//!
//! Rows are never dropped silently: each rejected row is counted under a [`Reject`] reason and the
//! first few are listed with `file:line`. Prices are parsed exactly ([`parse_px`]), never as floats.

use crate::exit::bad_input;
use crate::progress;
use anyhow::{Context, Result};
use engine::barfile::{EXTENSION, write_bar_file};
use engine::records::{Bar, BarFault, Interval, parse_px};
use engine::symbols::{MAX_SYMBOL_LEN, check_symbol};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// How many rejected rows are listed by line in a report.
pub const MAX_EXAMPLES: usize = 5;

/// Files larger than this get a progress bar (on a terminal).
const PROGRESS_MIN_BYTES: u64 = 1 << 20;

/// Arguments of `ringtape import csv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV files to import: one bar file each (or one per symbol for files with a `symbol` column)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output directory for `<SYMBOL>.<interval>.rtb` files (created if needed)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Symbol of the bars (one FILE only); default: the file's `symbol` column, else its name
    /// upper-cased (`spy_daily.csv` -> `SPY_DAILY`)
    #[arg(long, value_name = "SYM")]
    pub symbol: Option<String>,
    /// Time zone of timestamps that carry none (IANA name, e.g. America/New_York)
    #[arg(long, value_name = "TZ", default_value = "UTC")]
    pub tz: String,
    /// Bar interval (1s, 1m, 5m, 1h, 1d, ...); default: the most common gap between timestamps
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval_arg)]
    pub interval: Option<Interval>,
    /// Fail (exit 2, nothing written for the file) if any row is rejected
    #[arg(long)]
    pub strict: bool,
}

fn parse_interval_arg(s: &str) -> Result<Interval, String> {
    Interval::parse(s).ok_or_else(|| format!("{s:?} is not an interval (use e.g. 1s, 1m, 5m, 1h, 1d)"))
}

/// Options of [`import_reader`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Symbol for every row (overrides a `symbol` column and the name-derived default).
    pub symbol: Option<String>,
    /// Zone of local timestamps (those without `Z`/offset and not epoch numbers).
    pub tz: TimeZone,
    /// Bar interval for every row (overrides an `interval` column and inference).
    pub interval: Option<Interval>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { symbol: None, tz: TimeZone::UTC, interval: None }
    }
}

/// Why a row was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// The row has fewer fields than the header, or a required field is empty.
    MissingField,
    /// The timestamp matches none of the accepted formats (or is not a valid date/time).
    BadTimestamp,
    /// A price or volume is not a plain decimal number (volume: a non-negative integer).
    BadNumber,
    /// A price or volume is NaN or infinite.
    NanInf,
    /// A price is zero or negative.
    NonPositivePrice,
    /// `high < low`.
    HighBelowLow,
    /// Open or close lies outside `[low, high]`.
    OutsideRange,
    /// Same timestamp as an earlier accepted row of the same symbol (the first row is kept).
    Duplicate,
    /// Earlier than the previous accepted row of the same symbol.
    OutOfOrder,
    /// The `symbol` column holds a name that is not a valid symbol.
    BadSymbol,
    /// The `interval` column holds something that is not an interval.
    BadInterval,
}

impl Reject {
    /// Every reason, in report order.
    pub const ALL: [Reject; 11] = [
        Reject::MissingField,
        Reject::BadTimestamp,
        Reject::BadNumber,
        Reject::NanInf,
        Reject::NonPositivePrice,
        Reject::HighBelowLow,
        Reject::OutsideRange,
        Reject::Duplicate,
        Reject::OutOfOrder,
        Reject::BadSymbol,
        Reject::BadInterval,
    ];

    /// Stable human-readable name, used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MissingField => "missing field",
            Reject::BadTimestamp => "unparseable timestamp",
            Reject::BadNumber => "bad number",
            Reject::NanInf => "NaN/inf",
            Reject::NonPositivePrice => "non-positive price",
            Reject::HighBelowLow => "high < low",
            Reject::OutsideRange => "open/close outside [low, high]",
            Reject::Duplicate => "duplicate timestamp",
            Reject::OutOfOrder => "out of order",
            Reject::BadSymbol => "bad symbol",
            Reject::BadInterval => "bad interval",
        }
    }

    fn from_fault(f: BarFault) -> Reject {
        match f {
            BarFault::NonPositivePrice => Reject::NonPositivePrice,
            BarFault::HighBelowLow => Reject::HighBelowLow,
            BarFault::OutsideRange => Reject::OutsideRange,
        }
    }
}

/// One listed rejected row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: Reject,
    /// The offending field or value.
    pub detail: String,
}

/// What happened to the rows of one input.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// The input's name (file path) as given.
    pub name: String,
    /// Data rows read (the header and blank lines excluded).
    pub rows_read: u64,
    /// Rows that became bars.
    pub imported: u64,
    /// Rejected rows by reason (reasons with zero rows are absent).
    pub rejected: BTreeMap<Reject, u64>,
    /// The first [`MAX_EXAMPLES`] rejected rows, by line.
    pub examples: Vec<RejectedRow>,
    /// Local times that occur twice (DST fold): the earlier offset was used.
    pub dst_ambiguous: u64,
    /// Local times that do not exist (DST gap): moved forward by the gap.
    pub dst_nonexistent: u64,
}

impl ImportReport {
    /// Total rejected rows.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Rejected rows for one reason.
    pub fn count(&self, reason: Reject) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    fn reject(&mut self, line: u64, reason: Reject, detail: impl FnOnce() -> String) {
        *self.rejected.entry(reason).or_insert(0) += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(RejectedRow { line, reason, detail: detail() });
        }
    }
}

impl std::fmt::Display for ImportReport {
    /// Multi-line summary: counts, then rejects by reason, then the first rejected rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} rows read, {} imported, {} rejected",
            self.name,
            self.rows_read,
            self.imported,
            self.rejected_total()
        )?;
        if !self.rejected.is_empty() {
            let by: Vec<String> = self.rejected.iter().map(|(r, n)| format!("{n} {}", r.as_str())).collect();
            write!(f, "\n  rejected: {}", by.join(", "))?;
            for ex in &self.examples {
                write!(f, "\n  {}:{}: {}: {}", self.name, ex.line, ex.reason.as_str(), ex.detail)?;
            }
            let more = self.rejected_total().saturating_sub(self.examples.len() as u64);
            if more > 0 {
                write!(f, "\n  ... and {more} more rejected rows")?;
            }
        }
        if self.dst_ambiguous > 0 || self.dst_nonexistent > 0 {
            write!(
                f,
                "\n  DST: {} ambiguous local times (earlier offset used), {} nonexistent (moved forward)",
                self.dst_ambiguous, self.dst_nonexistent
            )?;
        }
        Ok(())
    }
}

/// The bars of one symbol at one interval, ready for [`write_bar_file`].
#[derive(Clone, Debug)]
pub struct Series {
    /// Symbol.
    pub symbol: String,
    /// Bar length in seconds (given or inferred).
    pub interval_s: u32,
    /// Bars, strictly increasing in time, all valid.
    pub bars: Vec<Bar>,
    /// True when the input was in descending time order and was reversed.
    pub reversed: bool,
}

impl Series {
    /// The conventional file name, `<SYMBOL>.<interval>.rtb` (`/` in a symbol becomes `_`).
    pub fn file_name(&self) -> String {
        bar_file_name(&self.symbol, self.interval_s)
    }
}

/// `<SYMBOL>.<interval>.rtb`, e.g. `AAPL.1m.rtb` (a `/` in the symbol becomes `_`).
pub fn bar_file_name(symbol: &str, interval_s: u32) -> String {
    format!("{}.{}.{EXTENSION}", symbol.replace('/', "_"), Interval { secs: interval_s })
}

/// The result of importing one input.
#[derive(Debug)]
pub struct Imported {
    /// One series per (symbol, interval), sorted by symbol then interval; empty when no row was
    /// accepted.
    pub series: Vec<Series>,
    /// Counts and rejected rows.
    pub report: ImportReport,
}

/// Symbol derived from a file name: the stem upper-cased, characters outside the symbol alphabet
/// replaced by `_`, truncated to 32 bytes (`SP500_NOV2019_IDay.csv` -> `SP500_NOV2019_IDAY`).
pub fn symbol_from_path(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy();
    let mut s: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || "._-/^=".contains(c) { c } else { '_' }
        })
        .collect();
    s.truncate(MAX_SYMBOL_LEN);
    check_symbol(&s).ok().map(|_| s)
}

/// Resolve a `--tz` name (IANA, or `UTC`).
pub fn parse_tz(name: &str) -> Result<TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| {
        bad_input(format!("--tz {name:?}: unknown time zone ({e}); use an IANA name like America/New_York or UTC"))
    })
}

// ---------------------------------------------------------------------------------------------
// Columns

#[derive(Debug, Clone, Copy)]
enum TsCols {
    One(usize),
    DateAndTime(usize, usize),
}

#[derive(Debug)]
struct Columns {
    ts: TsCols,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: Option<usize>,
    symbol: Option<usize>,
    interval: Option<usize>,
}

impl Columns {
    fn find(headers: &[String], name: &str) -> Result<Columns> {
        let norm: Vec<String> =
            headers.iter().map(|h| h.trim().trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
        let pos = |names: &[&str]| names.iter().find_map(|n| norm.iter().position(|h| h == n));
        let shown = headers.join(",");
        let missing = |col: &str| {
            bad_input(format!(
                "{name}: missing column {col}; header found: {shown:?} (columns are matched by name, case-insensitive)"
            ))
        };
        let ts = if let Some(i) = pos(&["datetime", "timestamp", "ts"]) {
            TsCols::One(i)
        } else {
            match (pos(&["date"]), pos(&["time"])) {
                (Some(d), Some(t)) => TsCols::DateAndTime(d, t),
                (Some(i), None) | (None, Some(i)) => TsCols::One(i),
                (None, None) => return Err(missing("\"timestamp\" (or date/time/datetime/ts)")),
            }
        };
        let req = |n: &str| pos(&[n]).ok_or_else(|| missing(&format!("{n:?}")));
        Ok(Columns {
            ts,
            open: req("open")?,
            high: req("high")?,
            low: req("low")?,
            close: req("close")?,
            volume: pos(&["volume", "vol"]),
            symbol: pos(&["symbol", "ticker"]),
            interval: pos(&["interval"]),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// A parsed timestamp before zone resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RawTs {
    /// Local civil time (no zone in the text); `date_only` for bare dates.
    Local { dt: DateTime, date_only: bool },
    /// Civil time with an explicit UTC offset in seconds.
    Offset(DateTime, i32),
    /// Nanoseconds since the epoch.
    Epoch(i64),
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

/// Parse one timestamp field (already trimmed).
fn parse_ts(s: &str) -> Option<RawTs> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        let n: i64 = s.parse().ok()?;
        let a = n.unsigned_abs();
        let ns = if a < 100_000_000_000 {
            n.checked_mul(1_000_000_000)?
        } else if a < 100_000_000_000_000 {
            n.checked_mul(1_000_000)?
        } else if a < 100_000_000_000_000_000 {
            n.checked_mul(1_000)?
        } else {
            n
        };
        return Some(RawTs::Epoch(ns));
    }
    let mut c = Cur { b, i: 0 };
    let (y, mo, d, mdy) = if b.contains(&b'/') {
        let mo = c.num(1, 2)?;
        c.eat(b'/').then_some(())?;
        let d = c.num(1, 2)?;
        c.eat(b'/').then_some(())?;
        (c.num(4, 4)?, mo, d, true)
    } else {
        let y = c.num(4, 4)?;
        c.eat(b'-').then_some(())?;
        let mo = c.num(1, 2)?;
        c.eat(b'-').then_some(())?;
        (y, mo, c.num(1, 2)?, false)
    };
    if c.done() {
        let dt = civil(y, mo, d, (0, 0, 0, 0))?;
        return Some(RawTs::Local { dt, date_only: true });
    }
    if !(c.skip_spaces() || (!mdy && (c.eat(b'T') || c.eat(b't')))) {
        return None;
    }
    let mut t = c.time()?;
    if mdy {
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
    if mdy {
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

fn ts_to_ns(ts: jiff::Timestamp) -> Option<i64> {
    i64::try_from(ts.as_nanosecond()).ok()
}

/// Resolve a parsed timestamp to UTC nanoseconds, counting DST folds and gaps.
fn resolve(raw: RawTs, tz: &TimeZone, report: &mut ImportReport) -> Option<i64> {
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

// ---------------------------------------------------------------------------------------------
// Numbers

fn is_nan_or_inf(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    ["nan", "inf", "infinity"].iter().any(|w| t.eq_ignore_ascii_case(w))
}

/// Integer volume, or a decimal whose fraction is all zeros (`1200`, `1200.0`).
fn parse_volume(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    int.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Rows

#[derive(Debug)]
struct Group {
    symbol: String,
    interval_s: Option<u32>,
    /// (line, bar) of rows that passed the per-row checks, in file order.
    rows: Vec<(u64, Bar)>,
    all_date_only: bool,
}

/// Import CSV text from `reader`. `name` is used in messages and, without a `symbol` column or
/// [`ImportOptions::symbol`], to derive the symbol ([`symbol_from_path`]).
///
/// Rejected rows are counted in the report, not errors. Errors: a missing required column, an
/// unreadable input, an interval that cannot be inferred, no usable symbol (all [`crate::exit::BadInput`]
/// except I/O).
pub fn import_reader<R: Read>(reader: R, name: &str, opts: &ImportOptions) -> Result<Imported> {
    import_with_progress(reader, name, opts, &indicatif::ProgressBar::hidden())
}

fn import_with_progress<R: Read>(
    reader: R,
    name: &str,
    opts: &ImportOptions,
    pb: &indicatif::ProgressBar,
) -> Result<Imported> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).has_headers(true).from_reader(reader);
    let headers: Vec<String> = rdr
        .byte_headers()
        .with_context(|| format!("{name}: reading the header"))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(bad_input(format!("{name}: empty file (expected a header line naming the columns)")));
    }
    let cols = Columns::find(&headers, name)?;
    if let Some(s) = &opts.symbol {
        check_symbol(s).map_err(|e| bad_input(format!("--symbol: {e}")))?;
    }
    let use_symbol_col = opts.symbol.is_none() && cols.symbol.is_some();
    let fixed_symbol = match (&opts.symbol, use_symbol_col) {
        (Some(s), _) => s.clone(),
        (None, true) => String::new(),
        (None, false) => symbol_from_path(Path::new(name))
            .ok_or_else(|| bad_input(format!("{name}: cannot derive a symbol from the file name; pass --symbol")))?,
    };
    let use_interval_col = opts.interval.is_none() && cols.interval.is_some();
    let forced_interval = opts.interval.map(|i| i.secs);

    let mut report = ImportReport { name: name.to_string(), ..Default::default() };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, Option<u32>), usize> = HashMap::new();
    let mut last_key: Option<(String, Option<u32>, usize)> = None;
    let mut rec = csv::ByteRecord::new();
    let n_fields = headers.len();
    let mut dt_buf = String::new();
    let mut required = vec![cols.open, cols.high, cols.low, cols.close];
    match cols.ts {
        TsCols::One(i) => required.push(i),
        TsCols::DateAndTime(d, t) => required.extend([d, t]),
    }
    if use_symbol_col {
        required.extend(cols.symbol);
    }
    if use_interval_col {
        required.extend(cols.interval);
    }

    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("{name}: reading CSV"))),
        }
        report.rows_read += 1;
        if report.rows_read.is_multiple_of(16_384) {
            pb.set_position(rdr.position().byte());
        }
        let line = rec.position().map_or(0, |p| p.line());
        // Field text; invalid UTF-8 becomes a marker that no parser accepts.
        let field = |i: usize| -> Option<&str> {
            rec.get(i).map(|b| std::str::from_utf8(b).unwrap_or("\u{fffd}")).filter(|s| !s.is_empty())
        };
        let header_of = |i: usize| headers.get(i).map_or("?", String::as_str).trim();

        // Required fields.
        if let Some(&i) = required.iter().find(|&&i| field(i).is_none()) {
            let got = rec.len();
            report.reject(line, Reject::MissingField, || {
                if got < n_fields {
                    format!("{got} fields, header has {n_fields} (no {})", header_of(i))
                } else {
                    format!("{} is empty", header_of(i))
                }
            });
            continue;
        }
        let get = |i: usize| field(i).unwrap_or_default();

        // Symbol and interval columns.
        let symbol = if use_symbol_col { cols.symbol.map(get).unwrap_or_default() } else { "" };
        if use_symbol_col && check_symbol(symbol).is_err() {
            report.reject(line, Reject::BadSymbol, || format!("{symbol:?}"));
            continue;
        }
        let interval_s = match (forced_interval, cols.interval.filter(|_| use_interval_col)) {
            (Some(s), _) => Some(s),
            (None, Some(i)) => match Interval::parse(get(i)) {
                Some(iv) => Some(iv.secs),
                None => {
                    report.reject(line, Reject::BadInterval, || format!("{:?}", get(i)));
                    continue;
                }
            },
            (None, None) => None,
        };

        // Timestamp.
        let ts_text = match cols.ts {
            TsCols::One(i) => get(i),
            TsCols::DateAndTime(d, t) => {
                dt_buf.clear();
                dt_buf.push_str(get(d));
                dt_buf.push(' ');
                dt_buf.push_str(get(t));
                dt_buf.as_str()
            }
        };
        let raw = parse_ts(ts_text);
        let Some(ts_ns) = raw.and_then(|r| resolve(r, &opts.tz, &mut report)) else {
            report.reject(line, Reject::BadTimestamp, || format!("{ts_text:?}"));
            continue;
        };
        let date_only = matches!(raw, Some(RawTs::Local { date_only: true, .. }));

        // Prices and volume.
        let mut px = [0i64; 4];
        let mut bad: Option<(Reject, usize)> = None;
        for (slot, col) in px.iter_mut().zip([cols.open, cols.high, cols.low, cols.close]) {
            let s = get(col);
            if is_nan_or_inf(s) {
                bad = Some((Reject::NanInf, col));
                break;
            }
            match parse_px(s) {
                Some(v) => *slot = v,
                None => {
                    bad = Some((Reject::BadNumber, col));
                    break;
                }
            }
        }
        let mut volume = 0;
        if bad.is_none()
            && let Some(col) = cols.volume
            && let Some(s) = field(col)
        {
            if is_nan_or_inf(s) {
                bad = Some((Reject::NanInf, col));
            } else {
                match parse_volume(s) {
                    Some(v) => volume = v,
                    None => bad = Some((Reject::BadNumber, col)),
                }
            }
        }
        if let Some((reason, col)) = bad {
            report.reject(line, reason, || format!("{} {:?}", header_of(col), get(col)));
            continue;
        }
        let bar = Bar {
            ts_event_ns: ts_ns,
            open_px_e9: px[0],
            high_px_e9: px[1],
            low_px_e9: px[2],
            close_px_e9: px[3],
            volume,
        };
        if let Err(fault) = bar.validate() {
            report.reject(line, Reject::from_fault(fault), || {
                format!(
                    "open {} high {} low {} close {}",
                    get(cols.open),
                    get(cols.high),
                    get(cols.low),
                    get(cols.close)
                )
            });
            continue;
        }

        // Group (one group unless the file has a symbol or interval column).
        let g = match &last_key {
            Some((s, iv, g)) if s == symbol && *iv == interval_s => *g,
            _ => {
                let key = (if use_symbol_col { symbol.to_string() } else { fixed_symbol.clone() }, interval_s);
                let g = *index.entry(key.clone()).or_insert_with(|| {
                    groups.push(Group { symbol: key.0.clone(), interval_s, rows: Vec::new(), all_date_only: true });
                    groups.len() - 1
                });
                last_key = Some((symbol.to_string(), interval_s, g));
                g
            }
        };
        let group = &mut groups[g];
        group.all_date_only &= date_only;
        group.rows.push((line, bar));
    }
    pb.set_position(rdr.position().byte());

    // Per group: reverse a descending file, then reject duplicates and out-of-order rows.
    let mut late: Vec<RejectedRow> = Vec::new();
    let mut series = Vec::new();
    for group in groups {
        let Group { symbol, interval_s, mut rows, all_date_only } = group;
        let descending = rows.len() >= 2
            && rows.windows(2).all(|w| w[1].1.ts_event_ns <= w[0].1.ts_event_ns)
            && rows[0].1.ts_event_ns > rows[rows.len() - 1].1.ts_event_ns;
        if descending {
            // Stable: equal timestamps keep file order, so "the first row wins" still holds.
            rows.sort_by_key(|(_, b)| b.ts_event_ns);
        }
        let mut bars: Vec<Bar> = Vec::with_capacity(rows.len());
        for (line, bar) in rows {
            let reason = match bars.last() {
                Some(prev) if bar.ts_event_ns == prev.ts_event_ns => Reject::Duplicate,
                Some(prev) if bar.ts_event_ns < prev.ts_event_ns => Reject::OutOfOrder,
                _ => {
                    bars.push(bar);
                    continue;
                }
            };
            *report.rejected.entry(reason).or_insert(0) += 1;
            if late.len() < MAX_EXAMPLES {
                let prev = bars.last().map_or(0, |b| b.ts_event_ns);
                late.push(RejectedRow {
                    line,
                    reason,
                    detail: format!("{} (previous kept row: {})", fmt_ns(bar.ts_event_ns), fmt_ns(prev)),
                });
            }
        }
        if bars.is_empty() {
            continue;
        }
        let interval_s = match interval_s {
            Some(s) => s,
            None => infer_interval(&bars, all_date_only)
                .map_err(|why| bad_input(format!("{name}: symbol {symbol}: {why}; pass --interval")))?,
        };
        report.imported += bars.len() as u64;
        series.push(Series { symbol, interval_s, bars, reversed: descending });
    }
    report.examples.extend(late);
    report.examples.sort_by_key(|r| r.line);
    report.examples.truncate(MAX_EXAMPLES);
    series.sort_by(|a, b| (&a.symbol, a.interval_s).cmp(&(&b.symbol, b.interval_s)));
    Ok(Imported { series, report })
}

/// The most common positive gap between consecutive bars (ties: the smaller gap), in seconds.
fn infer_interval(bars: &[Bar], all_date_only: bool) -> Result<u32, String> {
    if bars.len() < 2 {
        return if all_date_only {
            Ok(86_400)
        } else {
            Err("cannot infer the bar interval from a single bar".to_string())
        };
    }
    let mut counts: HashMap<i64, u64> = HashMap::new();
    for w in bars.windows(2) {
        *counts.entry(w[1].ts_event_ns - w[0].ts_event_ns).or_insert(0) += 1;
    }
    let (gap, _) = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).ok_or("no gaps between bars")?;
    if gap % 1_000_000_000 != 0 {
        return Err(format!("the most common gap between bars ({gap} ns) is not a whole number of seconds"));
    }
    u32::try_from(gap / 1_000_000_000).map_err(|_| format!("the most common gap between bars ({gap} ns) is too long"))
}

/// RFC 3339 UTC rendering of a timestamp for messages.
fn fmt_ns(ns: i64) -> String {
    crate::export::fmt_ts(ns)
}

// ---------------------------------------------------------------------------------------------
// The command

/// Run `ringtape import csv`.
pub fn run(args: Args) -> Result<()> {
    if args.symbol.is_some() && args.files.len() > 1 {
        return Err(bad_input(format!(
            "--symbol names one symbol but {} files were given; import them one at a time or drop --symbol \
             (each file then gets a symbol from its name)",
            args.files.len()
        )));
    }
    let opts = ImportOptions { symbol: args.symbol.clone(), tz: parse_tz(&args.tz)?, interval: args.interval };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating output directory {}", args.out.display()))?;
    // Output file -> input that produced it, to refuse two inputs overwriting each other.
    let mut written: HashMap<PathBuf, String> = HashMap::new();
    for path in &args.files {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| bad_input(format!("{name}: cannot open: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pb = progress::bytes(len, len > PROGRESS_MIN_BYTES);
        pb.set_message(format!(
            "importing {}",
            path.file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned())
        ));
        let imported = import_with_progress(std::io::BufReader::with_capacity(1 << 16, file), &name, &opts, &pb);
        pb.finish_and_clear();
        let Imported { series, report } = imported?;
        eprintln!("{report}");
        if series.is_empty() {
            return Err(bad_input(format!("{name}: no bars imported ({} rows read, all rejected)", report.rows_read)));
        }
        if args.strict && report.rejected_total() > 0 {
            return Err(bad_input(format!(
                "{name}: {} rows rejected and --strict is set; nothing written for this file",
                report.rejected_total()
            )));
        }
        for s in &series {
            let out = args.out.join(s.file_name());
            if let Some(prev) = written.get(&out) {
                return Err(bad_input(format!(
                    "{name} and {prev} both produce {}; give them different names or import them separately",
                    out.display()
                )));
            }
            write_bar_file(&out, &s.symbol, s.interval_s, &s.bars).with_context(|| format!("writing {name}"))?;
            written.insert(out.clone(), name.clone());
            let (first, last) = (s.bars[0].ts_event_ns, s.bars[s.bars.len() - 1].ts_event_ns);
            eprintln!(
                "  {} {}: {} bars, {} .. {}{} -> {}",
                s.symbol,
                Interval { secs: s.interval_s },
                s.bars.len(),
                fmt_ns(first),
                fmt_ns(last),
                if s.reversed { " (input was in descending time order: reversed)" } else { "" },
                out.display()
            );
        }
    }
    Ok(())
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

    fn ts(s: &str, tz: &TimeZone) -> Option<i64> {
        resolve(parse_ts(s)?, tz, &mut ImportReport::default())
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
        assert_eq!(ts("2024-03-01T09:00:00.25+0130", &utc), Some(utc_ns("2024-03-01T07:30:00.25Z")));
        // Epochs by magnitude.
        let t = utc_ns("2024-03-01T09:00:00Z");
        assert_eq!(ts("1709283600", &ny), Some(t));
        assert_eq!(ts("1709283600000", &ny), Some(t));
        assert_eq!(ts("1709283600000000", &ny), Some(t));
        assert_eq!(ts("1709283600000000000", &ny), Some(t));
        assert_eq!(ts("0", &ny), Some(0));
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
        let fold = resolve(parse_ts("2024-11-03 01:30").unwrap(), &ny, &mut r);
        assert_eq!(fold, Some(utc_ns("2024-11-03T05:30:00Z")));
        // 2024-03-10 02:30 does not exist: moved forward to 03:30 EDT.
        let gap = resolve(parse_ts("2024-03-10 02:30").unwrap(), &ny, &mut r);
        assert_eq!(gap, Some(utc_ns("2024-03-10T07:30:00Z")));
        assert_eq!((r.dst_ambiguous, r.dst_nonexistent), (1, 1));
    }

    #[test]
    fn volumes_and_symbols() {
        assert_eq!(parse_volume("1200"), Some(1200));
        assert_eq!(parse_volume("1200.000"), Some(1200));
        for bad in ["1200.5", "-1", "1e3", ".0", "x"] {
            assert_eq!(parse_volume(bad), None, "{bad}");
        }
        assert!(is_nan_or_inf("NaN") && is_nan_or_inf("-inf") && is_nan_or_inf("Infinity"));
        assert_eq!(symbol_from_path(Path::new("../x/SP500_NOV2019_IDay.csv")).unwrap(), "SP500_NOV2019_IDAY");
        assert_eq!(symbol_from_path(Path::new("my file (1).csv")).unwrap(), "MY_FILE__1_");
        assert_eq!(symbol_from_path(Path::new(&format!("{}.csv", "a".repeat(40)))).unwrap(), "A".repeat(32));
        assert_eq!(bar_file_name("BRK/B", 60), "BRK_B.1m.rtb");
    }

    fn import(text: &str) -> Imported {
        import_reader(text.as_bytes(), "t.csv", &ImportOptions::default()).unwrap()
    }

    #[test]
    fn separate_date_and_time_columns_and_extra_columns() {
        let im = import(
            "Time,Date,Open,High,Low,Close,Adj Close\n09:30,2024-01-02,10,11,9,10.5,99\n09:31,2024-01-02,10.5,11,10,10.75,99\n",
        );
        let s = &im.series[0];
        assert_eq!((s.symbol.as_str(), s.interval_s, s.bars.len()), ("T", 60, 2));
        assert_eq!(s.bars[0].ts_event_ns, utc_ns("2024-01-02T09:30:00Z"));
        assert_eq!(s.bars[1].close_px_e9, 10_750_000_000);
        assert_eq!(s.bars[1].volume, 0);
    }

    #[test]
    fn descending_files_are_reversed_and_duplicates_keep_the_first_row() {
        let im = import(
            "date,open,high,low,close,volume\n2024-01-04,3,3,3,3,3\n2024-01-03,2,2,2,2,2\n2024-01-03,9,9,9,9,9\n2024-01-02,1,1,1,1,1\n",
        );
        let s = &im.series[0];
        assert!(s.reversed);
        assert_eq!(s.interval_s, 86_400);
        assert_eq!(s.bars.iter().map(|b| b.volume).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(im.report.count(Reject::Duplicate), 1);
        assert_eq!(im.report.examples[0].line, 4);
    }

    #[test]
    fn interval_inference_and_single_rows() {
        // A gap (lunch) does not change the mode.
        let im = import(
            "ts,open,high,low,close\n2024-01-02 09:00,1,1,1,1\n2024-01-02 09:05,1,1,1,1\n2024-01-02 09:10,1,1,1,1\n2024-01-02 13:00,1,1,1,1\n",
        );
        assert_eq!(im.series[0].interval_s, 300);
        // One daily row: 1d; one intraday row: needs --interval.
        assert_eq!(import("date,open,high,low,close\n2024-01-02,1,1,1,1\n").series[0].interval_s, 86_400);
        let e = import_reader(
            b"ts,open,high,low,close\n2024-01-02 09:00,1,1,1,1\n".as_slice(),
            "t.csv",
            &ImportOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pass --interval"), "{e}");
        let opts = ImportOptions { interval: Interval::parse("1m"), ..Default::default() };
        let im =
            import_reader(b"ts,open,high,low,close\n2024-01-02 09:00,1,1,1,1\n".as_slice(), "t.csv", &opts).unwrap();
        assert_eq!(im.series[0].interval_s, 60);
    }

    #[test]
    fn symbol_column_splits_series() {
        let im = import(
            "symbol,interval,ts,open,high,low,close,volume\nB,1m,2024-01-02T14:30:00Z,1,1,1,1,1\nA,1m,2024-01-02T14:30:00Z,2,2,2,2,2\nB,1m,2024-01-02T14:31:00Z,1,1,1,1,1\nbad sym,1m,2024-01-02T14:31:00Z,1,1,1,1,1\nA,1d,2024-01-02T00:00:00Z,2,2,2,2,2\nA,xx,2024-01-02T00:00:00Z,2,2,2,2,2\n",
        );
        let got: Vec<(&str, u32, usize)> =
            im.series.iter().map(|s| (s.symbol.as_str(), s.interval_s, s.bars.len())).collect();
        assert_eq!(got, [("A", 60, 1), ("A", 86_400, 1), ("B", 60, 2)]);
        assert_eq!((im.report.count(Reject::BadSymbol), im.report.count(Reject::BadInterval)), (1, 1));
        // --symbol overrides the column: all rows are one symbol.
        let opts = ImportOptions { symbol: Some("Z".into()), interval: Interval::parse("1m"), ..Default::default() };
        let im = import_reader(
            b"symbol,ts,open,high,low,close\nA,2024-01-02T14:30:00Z,1,1,1,1\nB,2024-01-02T14:31:00Z,1,1,1,1\n"
                .as_slice(),
            "t.csv",
            &opts,
        )
        .unwrap();
        assert_eq!((im.series.len(), im.series[0].symbol.as_str(), im.series[0].bars.len()), (1, "Z", 2));
    }

    #[test]
    fn missing_columns_are_named() {
        let e = import_reader(b"Date,Open,Close,Low\n".as_slice(), "x.csv", &ImportOptions::default()).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("x.csv") && msg.contains("\"high\"") && msg.contains("Date,Open,Close,Low"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), 2);
        let e =
            import_reader(b"when,open,high,low,close\n".as_slice(), "x.csv", &ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("timestamp"), "{e}");
    }
}
