//! `ringtape import dbn FILE... --out DIR`: Databento DBN files (OHLCV bars) -> bar files.
//!
//! Split by idea: [`decode`] (one file: compression, version, schema, symbol mappings, record
//! checks, truncation), [`report`] (what happened, printed per file). This module holds the
//! command: every file is decoded and checked, the series of all files are merged per (symbol,
//! interval), every output name is checked, the bar files are staged and only then moved into
//! `--out`. A bad file (corrupt, truncated, not OHLCV) stops the command with nothing written.
//!
//! Records are never dropped silently: each rejected record is counted under a [`Reject`] reason
//! and the first few are listed by record number. Prices are copied as the 1e-9 fixed-point
//! integers DBN stores; an instrument id without a mapping is rejected, never given a name.

pub mod decode;
pub mod report;

pub use decode::{Decoded, Series, decode_file, decode_file_with_progress, decode_reader};
pub use report::{DbnReport, MAX_EXAMPLES, Reject, RejectedRecord, SeriesSummary};

use crate::exit::{bad_input, interrupted};
use crate::import_csv::bar_file_name;
use anyhow::{Context, Result};
use engine::barfile::write_bar_file;
use engine::records::Bar;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `import dbn --help` says the importer accepts.
const ACCEPTS: &str = "\
What is accepted:
  Databento DBN files, plain (.dbn) or zstd-compressed (.dbn.zst; detected from the first bytes),
  DBN versions 1, 2 and 3, schemas ohlcv-1s, ohlcv-1m, ohlcv-1h and ohlcv-1d (record types
  0x20-0x23). Any other schema or record type refuses the file.
  Symbols: each record's instrument id is named through the file's symbol mappings for the
  record's time; a record whose id has no mapping is rejected and counted, never given a name.
  Records with an undefined price (UNDEF_PRICE), a price <= 0, high < low, open/close outside
  [low, high], a duplicate window or an earlier time than the symbol's previous bar are counted by
  reason and listed by record number; the rest import.
  Several files for the same symbol and interval are merged in time order: identical bars are kept
  once, a bar that differs from an earlier file's bar for the same window is rejected (counted).
  Output: one bar file per (symbol, interval), <SYMBOL>.<interval>.rtb in --out.
  A corrupt or truncated file is an error naming the file and the record: nothing is written.";

/// Arguments of `ringtape import dbn`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = ACCEPTS)]
pub struct Args {
    /// DBN files to import (.dbn or .dbn.zst; OHLCV 1s/1m/1h/1d; DBN versions 1-3)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output directory for `<SYMBOL>.<interval>.rtb` files (created if needed)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Fail (exit 2, nothing written) if any record is rejected
    #[arg(long)]
    pub strict: bool,
}

/// The bars of one output file while files are merged, with the file each bar came from.
#[derive(Debug, Default)]
struct Merged {
    symbol: String,
    interval_s: u32,
    /// Index (into the inputs) of the first file contributing, for messages.
    first_input: usize,
    bars: Vec<Bar>,
}

/// Merge `incoming` (strictly increasing) into `into` (strictly increasing): the result is sorted
/// by time; a bar equal to one already there is dropped (`identical`), a different bar for the same
/// window is rejected (`conflicts`, the earlier bar is kept). Returns (identical, conflicts) with
/// the conflicting windows' start times.
fn merge_bars(into: &mut Vec<Bar>, incoming: Vec<Bar>) -> (u64, Vec<i64>) {
    if into.is_empty() {
        // The first file of this series: its bars move in, no copy.
        *into = incoming;
        return (0, Vec::new());
    }
    if into.last().is_none_or(|l| incoming.first().is_none_or(|f| l.ts_event_ns < f.ts_event_ns)) {
        into.extend_from_slice(&incoming);
        return (0, Vec::new());
    }
    let old = std::mem::take(into);
    into.reserve(old.len() + incoming.len());
    let (mut i, mut j, mut identical, mut conflicts) = (0, 0, 0u64, Vec::new());
    while i < old.len() || j < incoming.len() {
        match (old.get(i), incoming.get(j)) {
            (Some(a), Some(b)) if a.ts_event_ns == b.ts_event_ns => {
                if a == b {
                    identical += 1;
                } else {
                    conflicts.push(b.ts_event_ns);
                }
                into.push(*a);
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.ts_event_ns < b.ts_event_ns => {
                into.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                into.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                into.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (identical, conflicts)
}

/// A directory inside `--out` that holds this run's bar files until every one is written; removed
/// (with whatever is in it) when dropped, so an error or Ctrl-C leaves nothing behind.
/// Run `ringtape import dbn`.
pub fn run(args: Args) -> Result<()> {
    // Install the Ctrl-C handler now: the first signal only sets the flag polled while decoding.
    let _ = crate::interrupt::flag();
    if args.out.exists() && !args.out.is_dir() {
        return Err(bad_input(format!(
            "--out {}: is a file, not a directory; give a directory for the bar files (it is created if needed)",
            args.out.display()
        )));
    }
    let stopped = |what: &str| {
        interrupted(format!("interrupted {what}; nothing written to {} (run it again)", args.out.display()))
    };
    let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
    // Output file name -> merged bars.
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    // Progress in bytes of the input files, as read (compressed bytes for zstd files).
    let total: u64 = args.files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let pb = crate::progress::bytes("import dbn", total, total > crate::import_csv::PROGRESS_MIN_BYTES);
    for (k, path) in args.files.iter().enumerate() {
        if crate::interrupt::requested() {
            return Err(stopped("before reading the next file"));
        }
        let name = &names[k];
        let Decoded { series, mut report } = match decode_file_with_progress(path, name, &pb) {
            Err(e) if e.chain().any(|c| c.is::<crate::exit::Interrupted>()) => {
                return Err(stopped(&format!("while reading {name}")));
            }
            r => r?,
        };
        let no_series = series.is_empty();
        for s in series {
            let file_name = bar_file_name(&s.symbol, s.interval_s);
            let m = merged.entry(file_name.clone()).or_insert_with(|| Merged {
                symbol: s.symbol.clone(),
                interval_s: s.interval_s,
                first_input: k,
                bars: Vec::new(),
            });
            if m.symbol != s.symbol {
                let to = args.out.join(&file_name);
                return Err(bad_input(if m.first_input == k {
                    format!(
                        "{name}: symbols {} and {} would both be written to {} (a '/' in a symbol is written as \
                         '_'); nothing written; request one of them in a separate file and import it into another \
                         --out directory",
                        m.symbol,
                        s.symbol,
                        to.display()
                    )
                } else {
                    format!(
                        "{} (symbol {}) and {name} (symbol {}) would both be written to {} (a '/' in a symbol is \
                         written as '_'); nothing written; import them into different --out directories",
                        names[m.first_input],
                        m.symbol,
                        s.symbol,
                        to.display()
                    )
                }));
            }
            let (identical, conflicts) = merge_bars(&mut m.bars, s.bars);
            report.identical_duplicates += identical;
            if !conflicts.is_empty() {
                // The conflicting bars were accepted from this file, then dropped in the merge.
                report.imported -= conflicts.len() as u64;
                for ts in conflicts {
                    report.reject(0, Reject::ConflictingDuplicate, || {
                        format!(
                            "{} {} {} differs from the bar in an earlier file (kept)",
                            s.symbol,
                            engine::records::Interval { secs: s.interval_s },
                            crate::export::fmt_ts(ts)
                        )
                    });
                }
            }
        }
        pb.suspend(|| crate::exit::report(format_args!("{report}")))?;
        if args.strict && report.rejected_total() > 0 {
            return Err(bad_input(format!(
                "{name}: {} records rejected and --strict is set; nothing written",
                report.rejected_total()
            )));
        }
        if no_series {
            return Err(bad_input(format!(
                "{name}: no bars imported ({} records read, all rejected; see the reasons above); nothing written",
                report.records_read
            )));
        }
    }
    pb.finish_and_clear();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating output directory {}", args.out.display()))?;
    let staging = crate::import_csv::Staging::new(&args.out, "import-dbn")?;
    for (file_name, m) in &merged {
        if crate::interrupt::requested() {
            return Err(stopped("while writing the bar files"));
        }
        write_bar_file(&staging.dir.join(file_name), &m.symbol, m.interval_s, &m.bars)
            .with_context(|| format!("writing {}", args.out.join(file_name).display()))?;
    }
    if crate::interrupt::requested() {
        return Err(stopped("before moving the bar files into place"));
    }
    for file_name in merged.keys() {
        let to = args.out.join(file_name);
        std::fs::rename(staging.dir.join(file_name), &to).with_context(|| format!("moving into {}", to.display()))?;
    }
    drop(staging);
    crate::exit::report(format_args!("wrote {} bar files to {}", merged.len(), args.out.display()))?;
    for (file_name, m) in &merged {
        crate::exit::report(format_args!(
            "  {} {}: {} bars: {}",
            m.symbol,
            engine::records::Interval { secs: m.interval_s },
            m.bars.len(),
            args.out.join(file_name).display()
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64, close: i64) -> Bar {
        Bar { ts_event_ns: ts, open_px_e9: 10, high_px_e9: 20, low_px_e9: 5, close_px_e9: close, volume: 1 }
    }

    #[test]
    fn merging_sorts_keeps_identical_bars_once_and_rejects_conflicts() {
        let mut into = vec![bar(1, 10), bar(3, 10), bar(5, 10)];
        let (identical, conflicts) = merge_bars(&mut into, vec![bar(2, 10), bar(3, 10), bar(5, 11), bar(6, 10)]);
        assert_eq!((identical, conflicts), (1, vec![5]));
        assert_eq!(into, [bar(1, 10), bar(2, 10), bar(3, 10), bar(5, 10), bar(6, 10)]);
        // Appending after the end takes the fast path.
        let (identical, conflicts) = merge_bars(&mut into, vec![bar(7, 10)]);
        // The first file of a series moves in whole.
        let mut empty = Vec::new();
        assert_eq!(merge_bars(&mut empty, vec![bar(1, 10), bar(2, 10)]), (0, vec![]));
        assert_eq!(empty.len(), 2);
        assert_eq!((identical, conflicts.len(), into.len()), (0, 0, 6));
        assert!(into.windows(2).all(|w| w[0].ts_event_ns < w[1].ts_event_ns));
    }
}
