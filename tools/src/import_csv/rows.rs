//! From lines to series: find the columns, parse and check every row, split rows by symbol and
//! interval, put each series in time order (rejecting duplicates and out-of-order rows) and infer
//! its interval.

use super::lines::{Fields, Lines, QuoteError, detect_delimiter, is_blank, split};
use super::numbers::{parse_price, parse_volume};
use super::report::{ImportReport, MAX_EXAMPLES, MAX_LINES_PER_REASON, Reject, RejectedRow, SeriesSummary};
use super::timestamp::{RawTs, TimeFormat, classify_integer, is_integer, parse_ts, resolve, yyyymmdd_date};
use super::{ImportOptions, Imported, Layout, Series, symbol_from_path};
use crate::exit::{bad_input, interrupted};
use anyhow::{Context, Result};
use engine::records::{Bar, Interval};
use engine::symbols::check_symbol;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Lines between progress updates and interrupt checks.
const POLL_LINES: u64 = 16_384;

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

/// Names of a single time column, in order of preference (matched case-insensitively).
const TIME_NAMES: [&str; 9] =
    ["datetime", "timestamp", "ts_event", "ts_event_ns", "ts", "ts_recv", "ts_recv_ns", "t", "time_stamp"];

impl Columns {
    fn find(headers: &[String], name: &str, time_column: Option<&str>) -> Result<Columns> {
        let norm: Vec<String> =
            headers.iter().map(|h| h.trim().trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
        let pos = |names: &[&str]| names.iter().find_map(|n| norm.iter().position(|h| h == n));
        let shown = headers.join(",");
        let missing = |col: &str| {
            bad_input(format!(
                "{name}: missing column {col}; header found: {shown:?} (columns are matched by name, case-insensitive)"
            ))
        };
        let ts = if let Some(want) = time_column {
            match pos(&[want.trim().to_ascii_lowercase().as_str()]) {
                Some(i) => TsCols::One(i),
                None => {
                    return Err(bad_input(format!(
                        "{name}: --time-column {want:?} is not in the header {shown:?}; give one of its column names"
                    )));
                }
            }
        } else if let Some(i) = pos(&TIME_NAMES) {
            TsCols::One(i)
        } else {
            match (pos(&["date"]), pos(&["time"])) {
                (Some(d), Some(t)) => TsCols::DateAndTime(d, t),
                (Some(i), None) | (None, Some(i)) => TsCols::One(i),
                // pandas `to_csv()` writes the (time) index first with an empty header.
                (None, None) if norm.first().is_some_and(String::is_empty) => TsCols::One(0),
                (None, None) => {
                    return Err(missing(
                        "\"timestamp\" (or datetime/date/time/ts_event/ts_recv/t, or an unnamed first column); \
                         pass --time-column NAME to name it",
                    ));
                }
            }
        };
        let req = |names: &[&str]| pos(names).ok_or_else(|| missing(&format!("{:?}", names[0])));
        Ok(Columns {
            ts,
            open: req(&["open", "o"])?,
            high: req(&["high", "h"])?,
            low: req(&["low", "l"])?,
            close: req(&["close", "c"])?,
            volume: pos(&["volume", "vol", "v"]),
            symbol: pos(&["symbol", "ticker"]),
            interval: pos(&["interval"]),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Time column

/// Decides and applies the time format of a column: integers take their unit from the first one
/// (by shape and magnitude) unless `--time-format` names it.
struct TimeCol {
    given: TimeFormat,
    /// The unit recognized for integers, and the line it was recognized at.
    decided: Option<(TimeFormat, u64)>,
}

enum TsError {
    /// Not a timestamp in this column's format: reject the row.
    Bad,
    /// The first integer is ambiguous: the whole import needs `--time-format`.
    Ambiguous,
}

impl TimeCol {
    fn parse(&mut self, s: &str, line: u64) -> Result<RawTs, TsError> {
        if !is_integer(s) {
            return parse_ts(s, self.given).ok_or(TsError::Bad);
        }
        let fmt = match (self.given, self.decided) {
            (TimeFormat::Auto, Some((f, _))) => {
                if classify_integer(s) != Some(f) {
                    return Err(TsError::Bad);
                }
                f
            }
            (TimeFormat::Auto, None) => {
                let f = classify_integer(s).ok_or(TsError::Ambiguous)?;
                self.decided = Some((f, line));
                f
            }
            (TimeFormat::Iso | TimeFormat::Mdy, _) => return Err(TsError::Bad),
            (f, _) => f,
        };
        if fmt == TimeFormat::Yyyymmdd { yyyymmdd_date(s) } else { parse_ts(s, fmt) }.ok_or(TsError::Bad)
    }
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

pub(crate) fn import_lines<R: BufRead>(
    reader: R,
    name: &str,
    opts: &ImportOptions,
    layout: &Layout,
    pb: &crate::progress::Progress,
) -> Result<Imported> {
    let mut lines = Lines::new(reader);
    let mut report = ImportReport { name: name.to_string(), ..Default::default() };

    // The header: the first non-blank line.
    let header_line = loop {
        match lines.next_line().with_context(|| format!("{name}: reading"))? {
            None => {
                return Err(bad_input(format!("{name}: empty file (expected a header line naming the columns)")));
            }
            Some(l) if is_blank(l) => continue,
            Some(l) => break l.strip_prefix("\u{feff}".as_bytes()).unwrap_or(l).to_vec(),
        }
    };
    let header_shown = String::from_utf8_lossy(&header_line).into_owned();
    let delim = match layout.delimiter {
        Some(d) => d,
        None => detect_delimiter(&header_line).ok_or_else(|| {
            bad_input(format!(
                "{name}:{}: cannot tell the delimiter from the header line {header_shown:?} (no comma, semicolon, \
                 tab or |); pass --delimiter C",
                lines.line
            ))
        })?,
    };
    let mut rec = Fields::default();
    split(&header_line, delim, &mut rec)
        .map_err(|_| bad_input(format!("{name}:{}: unterminated quote in the header {header_shown:?}", lines.line)))?;
    let headers = rec.to_strings();
    let cols = Columns::find(&headers, name, layout.time_column.as_deref())?;
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
    report.no_volume_column = cols.volume.is_none();

    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, Option<u32>), usize> = HashMap::new();
    let mut last_key: Option<(String, Option<u32>, usize)> = None;
    let n_fields = headers.len();
    let mut dt_buf = String::new();
    let mut required = vec![cols.open, cols.high, cols.low, cols.close];
    let ts_header = match cols.ts {
        TsCols::One(i) => {
            required.push(i);
            headers[i].trim().to_string()
        }
        TsCols::DateAndTime(d, t) => {
            required.extend([d, t]);
            format!("{}+{}", headers[d].trim(), headers[t].trim())
        }
    };
    let ts_header = if ts_header.is_empty() { "the unnamed first column".to_string() } else { ts_header };
    if use_symbol_col {
        required.extend(cols.symbol);
    }
    if use_interval_col {
        required.extend(cols.interval);
    }
    let mut time = TimeCol { given: layout.time_format, decided: None };

    loop {
        let line = lines.line + 1;
        if line.is_multiple_of(POLL_LINES) {
            pb.set_position(lines.bytes);
            if crate::interrupt::requested() {
                return Err(interrupted(format!("interrupted while reading {name} at line {line}")));
            }
        }
        let Some(text) = lines.next_line().with_context(|| format!("{name}: reading line {line}"))? else {
            break;
        };
        if is_blank(text) {
            report.blank_lines += 1;
            continue;
        }
        report.rows_read += 1;
        if let Err(QuoteError { field }) = split(text, delim, &mut rec) {
            let col = headers.get(field).map_or("?", |h| h.trim()).to_string();
            report.reject(line, Reject::BadQuote, || {
                format!("a quote opened in field {} ({col}) is not closed on this line", field + 1)
            });
            continue;
        }
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
        let raw = match time.parse(ts_text, line) {
            Ok(raw) => Some(raw),
            Err(TsError::Ambiguous) => {
                return Err(bad_input(format!(
                    "{name}:{line}: time column {ts_header:?} holds the integer {ts_text}, which could be more than \
                     one unit; pass --time-format (yyyymmdd, epoch-s, epoch-ms, epoch-us or epoch-ns)"
                )));
            }
            Err(TsError::Bad) => None,
        };
        let Some(ts_ns) = raw.and_then(|r| resolve(r, &opts.tz, &mut report)) else {
            let decided = time.decided;
            report.reject(line, Reject::BadTimestamp, || match decided {
                Some((f, at)) if is_integer(ts_text) => {
                    format!("{ts_text:?} (not {} like line {at}; pass --time-format if that is wrong)", f.name())
                }
                _ => format!("{ts_text:?}"),
            });
            continue;
        };
        let date_only = raw.is_some_and(|r| r.date_only());

        // Prices and volume.
        let mut px = [0i64; 4];
        let mut bad: Option<(Reject, usize)> = None;
        for (slot, col) in px.iter_mut().zip([cols.open, cols.high, cols.low, cols.close]) {
            match parse_price(get(col)) {
                Ok(v) => *slot = v,
                Err(r) => {
                    bad = Some((r, col));
                    break;
                }
            }
        }
        let mut volume = 0;
        if bad.is_none()
            && let Some(col) = cols.volume
        {
            match field(col).map(parse_volume) {
                None => report.empty_volume_at(line),
                Some(Ok(v)) => volume = v,
                Some(Err(r)) => bad = Some((r, col)),
            }
        }
        if let Some((reason, col)) = bad {
            report.reject(line, reason, || {
                let why = match reason {
                    Reject::OutOfRange if col == cols.volume.unwrap_or(usize::MAX) => " (volumes go up to 2^64-1)",
                    Reject::OutOfRange => " (prices go up to 9223372036.854775807)",
                    Reject::BadNumber if col == cols.volume.unwrap_or(usize::MAX) => " (not a whole number)",
                    _ => "",
                };
                format!("{} {:?}{why}", header_of(col), get(col))
            });
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
            let reason = match fault {
                engine::records::BarFault::NonPositivePrice => Reject::NonPositivePrice,
                engine::records::BarFault::HighBelowLow => Reject::HighBelowLow,
                engine::records::BarFault::OutsideRange => Reject::OutsideRange,
            };
            report.reject(line, reason, || {
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
    pb.set_position(lines.bytes);
    if report.rows_read == 0 {
        return Err(bad_input(format!(
            "{name}: the file has a header but no data rows (header: {header_shown:?}); nothing to import"
        )));
    }
    if let (TimeFormat::Auto, Some((f, at))) = (layout.time_format, time.decided) {
        report.time_format_note =
            Some(format!("integer times read as {} (recognized at line {at}; --time-format overrides)", f.name()));
    }

    let mut series = Vec::new();
    let mut late: Vec<RejectedRow> = Vec::new();
    for group in groups {
        if let Some(s) =
            order_group(group, name, forced_interval.is_some() || use_interval_col, &mut report, &mut late)?
        {
            series.push(s);
        }
    }
    report.examples.extend(late);
    report.examples.sort_by_key(|r| r.line);
    report.examples.truncate(MAX_EXAMPLES);
    for lines in report.reject_lines.values_mut() {
        lines.sort_unstable();
        lines.truncate(MAX_LINES_PER_REASON);
    }
    series.sort_by(|a, b| (&a.symbol, a.interval_s).cmp(&(&b.symbol, b.interval_s)));
    report.series = series
        .iter()
        .map(|s| SeriesSummary {
            symbol: s.symbol.clone(),
            interval_s: s.interval_s,
            inferred: s.inferred,
            bars: s.bars.len() as u64,
            first_ns: s.bars[0].ts_event_ns,
            last_ns: s.bars[s.bars.len() - 1].ts_event_ns,
            reversed: s.reversed,
            data_interval_s: s.data_interval_s,
        })
        .collect();
    Ok(Imported { series, report })
}

/// Reverse a descending group, then reject duplicates and out-of-order rows, then settle the
/// interval. `None` when no row survives.
fn order_group(
    group: Group,
    name: &str,
    interval_given: bool,
    report: &mut ImportReport,
    late: &mut Vec<RejectedRow>,
) -> Result<Option<Series>> {
    let Group { symbol, interval_s, mut rows, all_date_only } = group;
    let descending = rows.len() >= 2
        && rows.windows(2).all(|w| w[1].1.ts_event_ns <= w[0].1.ts_event_ns)
        && rows[0].1.ts_event_ns > rows[rows.len() - 1].1.ts_event_ns;
    if descending {
        // Stable: equal timestamps keep file order, so "the first row wins" still holds.
        rows.sort_by_key(|(_, b)| b.ts_event_ns);
    }
    let mut bars: Vec<Bar> = Vec::with_capacity(rows.len());
    for (k, &(line, bar)) in rows.iter().enumerate() {
        let prev = bars.last().map(|b| b.ts_event_ns);
        let t = bar.ts_event_ns;
        let (reason, detail) = match prev {
            Some(p) if t == p => (Reject::Duplicate, None),
            Some(p) if t < p => (Reject::OutOfOrder, None),
            // Later than the next row while the next row follows the previous one: this row is the
            // odd one out (a mistyped future time), not every row after it.
            _ if rows
                .get(k + 1)
                .is_some_and(|(_, next)| next.ts_event_ns < t && prev.is_none_or(|p| next.ts_event_ns > p)) =>
            {
                (Reject::OutOfOrder, Some(fmt_ns(rows[k + 1].1.ts_event_ns)))
            }
            _ => {
                bars.push(bar);
                continue;
            }
        };
        *report.rejected.entry(reason).or_insert(0) += 1;
        report.reject_lines.entry(reason).or_default().push(line);
        if late.len() < MAX_EXAMPLES {
            let detail = match detail {
                Some(next) => format!("{} (later than the rows around it; next row: {next})", fmt_ns(t)),
                None => format!("{} (previous kept row: {})", fmt_ns(t), fmt_ns(prev.unwrap_or(0))),
            };
            late.push(RejectedRow { line, reason, detail });
        }
    }
    if bars.is_empty() {
        return Ok(None);
    }
    let inferred = infer_interval(&bars, all_date_only);
    let (interval_s, data_interval_s) = match interval_s {
        Some(s) => (s, inferred.ok().filter(|&d| d != s && bars.len() >= 2)),
        None => (inferred.map_err(|why| bad_input(format!("{name}: symbol {symbol}: {why}; pass --interval")))?, None),
    };
    report.imported += bars.len() as u64;
    Ok(Some(Series { symbol, interval_s, bars, reversed: descending, inferred: !interval_given, data_interval_s }))
}

/// The most common positive gap between consecutive bars (ties: the smaller gap), in seconds.
pub(crate) fn infer_interval(bars: &[Bar], all_date_only: bool) -> Result<u32, String> {
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

#[cfg(test)]
mod tests {
    use super::super::{ImportOptions, import_reader};
    use super::*;
    use proptest::prelude::*;

    /// Import daily rows at day offsets `days` (from 2024-01-01); (kept day offsets, rejected lines).
    fn order(days: &[i64]) -> (Vec<i64>, Vec<u64>) {
        let mut text = String::from("ts,open,high,low,close\n");
        for d in days {
            text.push_str(&format!("{},1,1,1,1\n", 1_704_067_200 + d * 86_400));
        }
        let opts = ImportOptions { interval: Interval::parse("1d"), ..Default::default() };
        let im = import_reader(text.as_bytes(), "t.csv", &opts).unwrap();
        let kept = im.series.first().map_or(vec![], |s| {
            s.bars.iter().map(|b| (b.ts_event_ns / 1_000_000_000 - 1_704_067_200) / 86_400).collect()
        });
        let mut lines: Vec<u64> = im.report.examples.iter().map(|r| r.line).collect();
        lines.sort_unstable();
        (kept, lines)
    }

    #[test]
    fn one_odd_row_is_rejected_not_the_rows_after_it() {
        // A mistyped future time (line 4) between rows that are in order with each other.
        assert_eq!(order(&[1, 2, 30, 4, 5]), (vec![1, 2, 4, 5], vec![4]));
        // The first row is the odd one.
        assert_eq!(order(&[50, 1, 2, 3]), (vec![1, 2, 3], vec![2]));
        // A mistyped past time: that row only.
        assert_eq!(order(&[1, 2, 3, 0, 5]), (vec![1, 2, 3, 5], vec![5]));
        // Overlapping ranges (a file concatenated twice in part): the repeated rows go, the rest stay.
        assert_eq!(order(&[1, 2, 3, 2, 3, 4]), (vec![1, 2, 3, 4], vec![5, 6]));
        // The last row has no next row to compare with: kept.
        assert_eq!(order(&[1, 2, 3, 99]), (vec![1, 2, 3, 99], vec![]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every row is either imported or counted as rejected, and what is kept is strictly
        /// increasing in time, whatever the order of the input.
        #[test]
        fn every_row_is_kept_or_counted_and_kept_rows_increase(days in proptest::collection::vec(0i64..40, 1..60)) {
            let mut text = String::from("ts,open,high,low,close\n");
            for d in &days {
                text.push_str(&format!("{},1,1,1,1\n", 1_704_067_200 + d * 86_400));
            }
            let opts = ImportOptions { interval: Interval::parse("1d"), ..Default::default() };
            let im = import_reader(text.as_bytes(), "t.csv", &opts).unwrap();
            prop_assert_eq!(im.report.rows_read, days.len() as u64);
            prop_assert_eq!(im.report.imported + im.report.rejected_total(), days.len() as u64);
            let kept: Vec<i64> = im.series.iter().flat_map(|s| s.bars.iter().map(|b| b.ts_event_ns)).collect();
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(!kept.is_empty());
        }
    }
}
