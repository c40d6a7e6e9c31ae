//! What happened to the rows of one input: counts, rejects by reason with their first lines, the
//! volume caveats and, per series, the interval and time range. Printed on stderr by the command.

use std::collections::BTreeMap;

/// How many rejected rows are listed by line in a report.
pub const MAX_EXAMPLES: usize = 5;

/// How many line numbers are kept per reject reason (and for empty volume fields).
pub const MAX_LINES_PER_REASON: usize = 3;

/// Why a row was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// A quote opened in a field is not closed on the same line (or text follows a closing quote).
    BadQuote,
    /// The row has fewer fields than the header, or a required field is empty.
    MissingField,
    /// The timestamp matches none of the accepted formats (or is not a valid date/time).
    BadTimestamp,
    /// A price or volume is not a number (volume: not a whole non-negative number).
    BadNumber,
    /// A price or volume is a number too large for its field.
    OutOfRange,
    /// A price or volume is NaN or infinite.
    NanInf,
    /// A price is zero or negative.
    NonPositivePrice,
    /// A positive price that rounds to zero at the 1e-9 price resolution.
    BelowResolution,
    /// `high < low`.
    HighBelowLow,
    /// Open or close lies outside `[low, high]`.
    OutsideRange,
    /// Same timestamp as an earlier accepted row of the same symbol (the first row is kept).
    Duplicate,
    /// Earlier than the previous accepted row of the same symbol, or later than both neighbours
    /// while they are in order (a mistyped future time).
    OutOfOrder,
    /// The `symbol` column holds a name that is not a valid symbol.
    BadSymbol,
    /// The `interval` column holds something that is not an interval.
    BadInterval,
}

impl Reject {
    /// Every reason, in report order.
    pub const ALL: [Reject; 14] = [
        Reject::BadQuote,
        Reject::MissingField,
        Reject::BadTimestamp,
        Reject::BadNumber,
        Reject::OutOfRange,
        Reject::NanInf,
        Reject::NonPositivePrice,
        Reject::BelowResolution,
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
            Reject::BadQuote => "unterminated quote",
            Reject::MissingField => "missing field",
            Reject::BadTimestamp => "unparseable timestamp",
            Reject::BadNumber => "bad number",
            Reject::OutOfRange => "number out of range",
            Reject::NanInf => "NaN/inf",
            Reject::NonPositivePrice => "non-positive price",
            Reject::BelowResolution => "price below the 1e-9 price resolution",
            Reject::HighBelowLow => "high < low",
            Reject::OutsideRange => "open/close outside [low, high]",
            Reject::Duplicate => "duplicate timestamp",
            Reject::OutOfOrder => "out of order",
            Reject::BadSymbol => "bad symbol",
            Reject::BadInterval => "bad interval",
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

/// One series written from an input, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesSummary {
    /// Symbol.
    pub symbol: String,
    /// Bar length in seconds.
    pub interval_s: u32,
    /// True when the interval was inferred from the data (no `--interval`, no `interval` column).
    pub inferred: bool,
    /// Number of bars.
    pub bars: u64,
    /// First and last bar start, UTC nanoseconds.
    pub first_ns: i64,
    /// Last bar start.
    pub last_ns: i64,
    /// The input was in descending time order and was reversed.
    pub reversed: bool,
    /// `--interval` given but the most common gap in the data is another one (seconds).
    pub data_interval_s: Option<u32>,
}

/// What happened to the rows of one input.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// The input's name (file path) as given.
    pub name: String,
    /// Data rows read: every line after the header except blank lines.
    pub rows_read: u64,
    /// Blank lines (skipped, not rows).
    pub blank_lines: u64,
    /// Rows that became bars.
    pub imported: u64,
    /// Rejected rows by reason (reasons with zero rows are absent).
    pub rejected: BTreeMap<Reject, u64>,
    /// The first [`MAX_LINES_PER_REASON`] lines of each reason.
    pub reject_lines: BTreeMap<Reject, Vec<u64>>,
    /// The first [`MAX_EXAMPLES`] rejected rows, by line.
    pub examples: Vec<RejectedRow>,
    /// The file has no volume column: every bar has volume 0.
    pub no_volume_column: bool,
    /// Rows whose volume field was empty (volume 0).
    pub empty_volume: u64,
    /// The first lines with an empty volume.
    pub empty_volume_lines: Vec<u64>,
    /// Local times that occur twice (DST fold): the earlier offset was used.
    pub dst_ambiguous: u64,
    /// Local times that do not exist (DST gap): moved forward by the gap.
    pub dst_nonexistent: u64,
    /// How integer timestamps were read, when they were recognized rather than given.
    pub time_format_note: Option<String>,
    /// The series produced, in output order.
    pub series: Vec<SeriesSummary>,
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

    pub(crate) fn reject(&mut self, line: u64, reason: Reject, detail: impl FnOnce() -> String) {
        *self.rejected.entry(reason).or_insert(0) += 1;
        let lines = self.reject_lines.entry(reason).or_default();
        if lines.len() < MAX_LINES_PER_REASON {
            lines.push(line);
        }
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(RejectedRow { line, reason, detail: detail() });
        }
    }

    pub(crate) fn empty_volume_at(&mut self, line: u64) {
        self.empty_volume += 1;
        if self.empty_volume_lines.len() < MAX_LINES_PER_REASON {
            self.empty_volume_lines.push(line);
        }
    }
}

/// `(line 4)`, `(lines 4, 9, 12, ...)`.
fn lines_note(lines: &[u64], total: u64) -> String {
    let list: Vec<String> = lines.iter().map(u64::to_string).collect();
    let more = if total > lines.len() as u64 { ", ..." } else { "" };
    let word = if total == 1 { "line" } else { "lines" };
    format!("({word} {}{more})", list.join(", "))
}

impl std::fmt::Display for ImportReport {
    /// Multi-line summary: counts, rejects by reason, the first rejected rows, volume caveats, then
    /// one line per series with its interval and time range.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::export::fmt_ts;
        use engine::records::Interval;
        write!(
            f,
            "{}: {} rows read, {} imported, {} rejected",
            self.name,
            self.rows_read,
            self.imported,
            self.rejected_total()
        )?;
        if self.blank_lines > 0 {
            write!(f, " ({} blank lines skipped)", self.blank_lines)?;
        }
        if !self.rejected.is_empty() {
            let by: Vec<String> = self
                .rejected
                .iter()
                .map(|(r, n)| {
                    let lines = self.reject_lines.get(r).map_or(&[][..], Vec::as_slice);
                    format!("{n} {} {}", r.as_str(), lines_note(lines, *n))
                })
                .collect();
            write!(f, "\n  rejected: {}", by.join(", "))?;
            for ex in &self.examples {
                write!(f, "\n  {}:{}: {}: {}", self.name, ex.line, ex.reason.as_str(), ex.detail)?;
            }
            let more = self.rejected_total().saturating_sub(self.examples.len() as u64);
            if more > 0 {
                write!(f, "\n  ... and {more} more rejected rows")?;
            }
        }
        if self.no_volume_column {
            write!(f, "\n  note: no volume column: every bar has volume 0")?;
        }
        if self.empty_volume > 0 {
            write!(
                f,
                "\n  note: {} rows with an empty volume field imported with volume 0 {}",
                self.empty_volume,
                lines_note(&self.empty_volume_lines, self.empty_volume)
            )?;
        }
        if let Some(note) = &self.time_format_note {
            write!(f, "\n  note: {note}")?;
        }
        if self.dst_ambiguous > 0 || self.dst_nonexistent > 0 {
            write!(
                f,
                "\n  DST: {} ambiguous local times (earlier offset used), {} nonexistent (moved forward)",
                self.dst_ambiguous, self.dst_nonexistent
            )?;
        }
        for s in &self.series {
            write!(
                f,
                "\n  {} {}{}: {} bars, {} .. {}{}",
                s.symbol,
                Interval { secs: s.interval_s },
                if s.inferred { " (interval inferred from the data)" } else { "" },
                s.bars,
                fmt_ts(s.first_ns),
                fmt_ts(s.last_ns),
                if s.reversed { " (input was in descending time order: reversed)" } else { "" },
            )?;
            if let Some(d) = s.data_interval_s {
                write!(
                    f,
                    "\n  warning: {} {}: --interval is {} but the most common gap between bars is {}",
                    s.symbol,
                    Interval { secs: s.interval_s },
                    Interval { secs: s.interval_s },
                    Interval { secs: d }
                )?;
            }
        }
        Ok(())
    }
}
