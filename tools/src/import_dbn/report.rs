//! What happened to the records of one DBN file (and to the bars of several files merged into one
//! bar file): counts, rejects by reason with their first records, and per series the interval and
//! time range. Printed on stderr by the command, one block per file.

use std::collections::BTreeMap;

/// How many rejected records are listed by record number in a report.
pub const MAX_EXAMPLES: usize = 5;

/// How many record numbers are kept per reject reason.
pub const MAX_RECORDS_PER_REASON: usize = 3;

/// Why a record was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// No symbol mapping covers the record's instrument id at its time (never a made-up name).
    UnmappedInstrument,
    /// The mapped symbol is not a valid symbol name (1..=32 bytes of `A-Z a-z 0-9 . _ - / ^ =`).
    BadSymbol,
    /// A price is `UNDEF_PRICE` (`i64::MAX`), Databento's "no value" sentinel.
    UndefPrice,
    /// A price is zero or negative.
    NonPositivePrice,
    /// `high < low`.
    HighBelowLow,
    /// Open or close lies outside `[low, high]`.
    OutsideRange,
    /// Same window (symbol, interval, start) as an earlier record of the file (the first is kept).
    DuplicateWindow,
    /// Earlier than the previous accepted record of the same symbol and interval.
    OutOfOrder,
    /// Same window as a bar of an earlier file, with different values (the earlier file's is kept).
    ConflictingDuplicate,
}

impl Reject {
    /// Stable human-readable name, used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::UnmappedInstrument => "unmapped instrument id",
            Reject::BadSymbol => "bad symbol",
            Reject::UndefPrice => "undefined price (UNDEF_PRICE)",
            Reject::NonPositivePrice => "non-positive price",
            Reject::HighBelowLow => "high < low",
            Reject::OutsideRange => "open/close outside [low, high]",
            Reject::DuplicateWindow => "duplicate window",
            Reject::OutOfOrder => "out of order",
            Reject::ConflictingDuplicate => "conflicting duplicate of an earlier file",
        }
    }
}

/// One listed rejected record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecord {
    /// 1-based record number in the file (the metadata is not a record); 0 for a bar rejected
    /// while merging files.
    pub record: u64,
    /// Why.
    pub reason: Reject,
    /// The offending values.
    pub detail: String,
}

/// One series (symbol, interval) found in a file, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesSummary {
    /// Symbol.
    pub symbol: String,
    /// Bar length in seconds.
    pub interval_s: u32,
    /// Bars accepted from this file.
    pub bars: u64,
    /// First bar start, UTC nanoseconds.
    pub first_ns: i64,
    /// Last bar start, UTC nanoseconds.
    pub last_ns: i64,
}

/// What happened to the records of one DBN file.
#[derive(Clone, Debug, Default)]
pub struct DbnReport {
    /// The file's path as given.
    pub name: String,
    /// DBN version from the file's header (1, 2 or 3).
    pub version: u8,
    /// True for a zstd-compressed file.
    pub zstd: bool,
    /// The metadata's dataset (e.g. `XNAS.ITCH`).
    pub dataset: String,
    /// The metadata's schema (`ohlcv-1m`, ...), or `mixed` when the file has none.
    pub schema: String,
    /// Records read.
    pub records_read: u64,
    /// Records that became bars (before merging with other files).
    pub imported: u64,
    /// Rejected records by reason (reasons with zero records are absent).
    pub rejected: BTreeMap<Reject, u64>,
    /// The first [`MAX_RECORDS_PER_REASON`] record numbers of each reason.
    pub reject_records: BTreeMap<Reject, Vec<u64>>,
    /// The first [`MAX_EXAMPLES`] rejected records.
    pub examples: Vec<RejectedRecord>,
    /// Instrument ids that had no mapping, with their record counts (at most 8 listed).
    pub unmapped_ids: BTreeMap<u32, u64>,
    /// Bars identical to a bar of an earlier file (same window, same values): merged as one.
    pub identical_duplicates: u64,
    /// The series of this file, sorted by symbol then interval.
    pub series: Vec<SeriesSummary>,
}

impl DbnReport {
    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Rejected records for one reason.
    pub fn count(&self, reason: Reject) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    pub(crate) fn reject(&mut self, record: u64, reason: Reject, detail: impl FnOnce() -> String) {
        *self.rejected.entry(reason).or_insert(0) += 1;
        let list = self.reject_records.entry(reason).or_default();
        if record > 0 && list.len() < MAX_RECORDS_PER_REASON {
            list.push(record);
        }
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(RejectedRecord { record, reason, detail: detail() });
        }
    }
}

/// `(record 4)`, `(records 4, 9, 12, ...)`.
fn records_note(records: &[u64], total: u64) -> String {
    let list: Vec<String> = records.iter().map(u64::to_string).collect();
    let more = if total > records.len() as u64 { ", ..." } else { "" };
    let word = if total == 1 { "record" } else { "records" };
    format!("({word} {}{more})", list.join(", "))
}

impl std::fmt::Display for DbnReport {
    /// Multi-line summary: format, counts, rejects by reason, the first rejected records, then one
    /// line per series with its interval and time range.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::export::fmt_ts;
        use engine::records::Interval;
        write!(
            f,
            "{}: DBN v{}{}, {} {}: {} records read, {} imported, {} rejected",
            self.name,
            self.version,
            if self.zstd { " zstd" } else { "" },
            if self.dataset.is_empty() { "(no dataset)" } else { &self.dataset },
            self.schema,
            self.records_read,
            self.imported,
            self.rejected_total()
        )?;
        if !self.rejected.is_empty() {
            let by: Vec<String> = self
                .rejected
                .iter()
                .map(|(r, n)| match self.reject_records.get(r).filter(|v| !v.is_empty()) {
                    Some(recs) => format!("{n} {} {}", r.as_str(), records_note(recs, *n)),
                    None => format!("{n} {}", r.as_str()),
                })
                .collect();
            write!(f, "\n  rejected: {}", by.join(", "))?;
            for ex in &self.examples {
                if ex.record > 0 {
                    write!(f, "\n  {}: record {}: {}: {}", self.name, ex.record, ex.reason.as_str(), ex.detail)?;
                } else {
                    write!(f, "\n  {}: {}: {}", self.name, ex.reason.as_str(), ex.detail)?;
                }
            }
            let more = self.rejected_total().saturating_sub(self.examples.len() as u64);
            if more > 0 {
                write!(f, "\n  ... and {more} more rejected records")?;
            }
        }
        if !self.unmapped_ids.is_empty() {
            let ids: Vec<String> =
                self.unmapped_ids.iter().take(8).map(|(id, n)| format!("{id} ({n} records)")).collect();
            let more = if self.unmapped_ids.len() > 8 { ", ..." } else { "" };
            write!(
                f,
                "\n  note: instrument ids with no symbol mapping in the file's metadata: {}{more}",
                ids.join(", ")
            )?;
        }
        if self.identical_duplicates > 0 {
            write!(
                f,
                "\n  note: {} bars identical to bars of an earlier file merged as one",
                self.identical_duplicates
            )?;
        }
        for s in &self.series {
            write!(
                f,
                "\n  {} {}: {} bars, {} .. {}",
                s.symbol,
                Interval { secs: s.interval_s },
                s.bars,
                fmt_ts(s.first_ns),
                fmt_ts(s.last_ns)
            )?;
        }
        Ok(())
    }
}
