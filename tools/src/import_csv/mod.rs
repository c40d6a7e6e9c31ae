//! `ringtape import csv FILE... --out DIR`: vendor CSV files -> bar files.
//!
//! Split by idea: `lines` (physical lines and their fields: a stray quote spoils one row, never
//! the rest of the file), [`timestamp`] (time formats and `--time-format`), `numbers` (prices and
//! volumes), `rows` (columns, row checks, ordering, interval inference), [`report`] (what
//! happened, printed per file). This module holds the options and the command: every file is read
//! and checked, its bar files are staged, every output name is checked, and only then are the
//! files moved into `--out`.
//!
//! Rows are never dropped silently: each rejected row is counted under a [`Reject`] reason and the
//! first few are listed with `file:line`. Prices are parsed exactly, never as floats.

mod lines;
mod numbers;
pub mod report;
mod rows;
pub mod timestamp;

pub use report::{ImportReport, MAX_EXAMPLES, Reject, RejectedRow, SeriesSummary};
pub use timestamp::TimeFormat;

use crate::exit::{bad_input, interrupted};
use crate::progress;
use anyhow::{Context, Result};
use engine::barfile::{EXTENSION, write_bar_file};
use engine::records::{Bar, Interval};
use engine::symbols::{MAX_SYMBOL_LEN, check_symbol};
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files larger than this get a progress bar (on a terminal).
pub(crate) const PROGRESS_MIN_BYTES: u64 = 1 << 20;

/// What `import csv --help` says the importer accepts.
const ACCEPTS: &str = "\
What is accepted:
  Columns are found by header name, case-insensitive, in any order; other columns are ignored.
    time:    datetime, timestamp, ts_event, ts_event_ns, ts, ts_recv, t, Date+Time (two columns),
             Date or Time alone, or an unnamed first column (pandas to_csv); --time-column NAME
             for anything else
    prices:  open/o, high/h, low/l, close/c (exact decimals; at most 9 fractional digits count)
    volume:  volume/vol/v, whole numbers also as 1500.0 or 1.5e3; a missing column or an empty
             field gives volume 0 and the report says so
    symbol/ticker, interval: optional; rows are split into one bar file per symbol and interval
  Delimiter: comma, semicolon, tab or | (detected from the header line, or --delimiter C).
  Times (--time-format auto recognizes all of these):
    ISO 8601  2024-01-02, 2024-01-02 09:30[:00[.123]], 2024-01-02T09:30:00Z, ...+01:00
    US        1/2/2024 9:30 [AM|PM]
    integers  20240102 (YYYYMMDD); epoch seconds (10 digits), ms (13), us (16), ns (19);
              the first integer decides the unit for the column, and one that could be two units
              is an error asking for --time-format
    Times without Z or an offset are local times in --tz.
  Rows: every line after the header is read; bad rows (stray quote, missing field, bad number,
  bad price, duplicate or out-of-order time) are counted by reason and listed by line, the rest
  import. A single mistyped future time rejects that row only. Descending files are reversed.
  Report per file: rows read, imported, rejected by reason with the first lines, the interval
  (inferred or given; a warning when --interval disagrees with the data) and the time range.
  Outputs are checked before any is written: nothing is written on an error or Ctrl-C.";

/// Arguments of `ringtape import csv`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = ACCEPTS)]
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
    /// How the time column is written (auto: recognized; integers by shape and magnitude)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = TimeFormat::Auto)]
    pub time_format: TimeFormat,
    /// The time column's name, when it is not one of the recognized names
    #[arg(long, value_name = "NAME")]
    pub time_column: Option<String>,
    /// Field delimiter (one character, or `tab`); default: detected from the header line
    #[arg(long, value_name = "C", value_parser = parse_delimiter_arg)]
    pub delimiter: Option<u8>,
    /// Fail (exit 2, nothing written) if any row is rejected
    #[arg(long)]
    pub strict: bool,
}

fn parse_interval_arg(s: &str) -> Result<Interval, String> {
    Interval::parse(s).ok_or_else(|| format!("{s:?} is not an interval (use e.g. 1s, 1m, 5m, 1h, 1d)"))
}

fn parse_delimiter_arg(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s != "\"" && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!("{s:?} is not a delimiter (give one character such as , ; | or the word tab)")),
    }
}

/// Options of [`import_reader`]: what the rows mean.
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

/// How a file is written, for [`import_reader_with`]; the default recognizes everything.
#[derive(Debug, Clone)]
pub struct Layout {
    /// How the time column is written.
    pub time_format: TimeFormat,
    /// The time column's name (default: recognized by name).
    pub time_column: Option<String>,
    /// Field delimiter (default: detected from the header line).
    pub delimiter: Option<u8>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { time_format: TimeFormat::Auto, time_column: None, delimiter: None }
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
    /// True when the interval was inferred from the data.
    pub inferred: bool,
    /// The most common gap in the data when it differs from the given interval (seconds).
    pub data_interval_s: Option<u32>,
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
    /// One series per (symbol, interval), sorted by symbol then interval.
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

/// Import CSV text from `reader`. `name` is used in messages and, without a `symbol` column or
/// [`ImportOptions::symbol`], to derive the symbol ([`symbol_from_path`]).
///
/// Rejected rows are counted in the report, not errors. Errors ([`crate::exit::BadInput`] except
/// I/O): a missing required column, an undetectable delimiter, an ambiguous integer time column,
/// a header without data rows, an interval that cannot be inferred, no usable symbol.
pub fn import_reader<R: Read>(reader: R, name: &str, opts: &ImportOptions) -> Result<Imported> {
    import_reader_with(reader, name, opts, &Layout::default())
}

/// [`import_reader`] for a file whose layout (delimiter, time column or format) is given.
pub fn import_reader_with<R: Read>(reader: R, name: &str, opts: &ImportOptions, layout: &Layout) -> Result<Imported> {
    rows::import_lines(std::io::BufReader::new(reader), name, opts, layout, &crate::progress::Progress::hidden())
}

// ---------------------------------------------------------------------------------------------
// The command

/// A directory inside `--out` that holds this run's bar files until every input is done; removed
/// (with whatever is in it) when dropped, so an error or Ctrl-C leaves nothing behind.
/// A hidden directory inside `--out` where an import writes its files before moving them into
/// place; removed when dropped (an error or Ctrl-C leaves `--out` as it was). Shared by the CSV
/// and DBN importers.
#[derive(Debug)]
pub(crate) struct Staging {
    pub(crate) dir: PathBuf,
}

impl Staging {
    /// `out/.<prefix>-<pid>.tmp`, created.
    pub(crate) fn new(out: &Path, prefix: &str) -> Result<Staging> {
        let dir = out.join(format!(".{prefix}-{}.tmp", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Staging { dir })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `ringtape import csv`.
pub fn run(args: Args) -> Result<()> {
    // Install the Ctrl-C handler now: the first signal only sets the flag polled below.
    let _ = crate::interrupt::flag();
    if args.symbol.is_some() && args.files.len() > 1 {
        return Err(bad_input(format!(
            "--symbol names one symbol but {} files were given; import them one at a time or drop --symbol \
             (each file then gets a symbol from its name)",
            args.files.len()
        )));
    }
    if args.out.exists() && !args.out.is_dir() {
        return Err(bad_input(format!(
            "--out {}: is a file, not a directory; give a directory for the bar files (it is created if needed)",
            args.out.display()
        )));
    }
    let opts = ImportOptions { symbol: args.symbol.clone(), tz: parse_tz(&args.tz)?, interval: args.interval };
    let layout =
        Layout { time_format: args.time_format, time_column: args.time_column.clone(), delimiter: args.delimiter };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating output directory {}", args.out.display()))?;
    let staging = Staging::new(&args.out, "import")?;
    let stopped = |what: &str| {
        interrupted(format!("interrupted {what}; nothing written to {} (run it again)", args.out.display()))
    };
    // Output file name -> (input, symbol) that produces it: checked before anything is moved in.
    let mut planned: BTreeMap<String, (String, String)> = BTreeMap::new();
    for path in &args.files {
        if crate::interrupt::requested() {
            return Err(stopped("before reading the next file"));
        }
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| bad_input(format!("{name}: cannot open: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pb = progress::bytes("import csv", len, len > PROGRESS_MIN_BYTES);
        pb.set_message(format!(
            "importing {}",
            path.file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned())
        ));
        let imported = rows::import_lines(std::io::BufReader::with_capacity(1 << 16, file), &name, &opts, &layout, &pb);
        pb.finish_and_clear();
        let Imported { series, report } = match imported {
            Err(e) if e.chain().any(|c| c.is::<crate::exit::Interrupted>()) => {
                return Err(stopped(&format!("while reading {name}")));
            }
            r => r?,
        };
        crate::exit::report(format_args!("{report}"))?;
        if series.is_empty() {
            return Err(bad_input(format!(
                "{name}: no bars imported ({} rows read, all rejected; see the reasons above); nothing written",
                report.rows_read
            )));
        }
        if args.strict && report.rejected_total() > 0 {
            return Err(bad_input(format!(
                "{name}: {} rows rejected and --strict is set; nothing written",
                report.rejected_total()
            )));
        }
        for s in &series {
            let file_name = s.file_name();
            if let Some((prev_input, prev_symbol)) = planned.get(&file_name) {
                let to = args.out.join(&file_name);
                return Err(bad_input(if *prev_input == name {
                    format!(
                        "{name}: symbols {prev_symbol} and {} would both be written to {} (a '/' in a symbol is \
                         written as '_'); nothing written; rename one of them in the file",
                        s.symbol,
                        to.display()
                    )
                } else {
                    format!(
                        "{prev_input} (symbol {prev_symbol}) and {name} (symbol {}) would both be written to {}; \
                         nothing written; import one of them on its own with --symbol, or into another --out directory",
                        s.symbol,
                        to.display()
                    )
                }));
            }
            write_bar_file(&staging.dir.join(&file_name), &s.symbol, s.interval_s, &s.bars)
                .with_context(|| format!("writing {name}"))?;
            planned.insert(file_name, (name.clone(), s.symbol.clone()));
        }
    }
    if crate::interrupt::requested() {
        return Err(stopped("before moving the bar files into place"));
    }
    for file_name in planned.keys() {
        let to = args.out.join(file_name);
        std::fs::rename(staging.dir.join(file_name), &to).with_context(|| format!("moving into {}", to.display()))?;
    }
    drop(staging);
    crate::exit::report(format_args!("wrote {} bar files to {}", planned.len(), args.out.display()))?;
    for (file_name, (input, symbol)) in &planned {
        crate::exit::report(format_args!("  {symbol} <- {input}: {}", args.out.join(file_name).display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_ns(s: &str) -> i64 {
        let ts: jiff::Timestamp = s.parse().unwrap();
        i64::try_from(ts.as_nanosecond()).unwrap()
    }

    #[test]
    fn symbols_and_file_names() {
        assert_eq!(symbol_from_path(Path::new("../x/SP500_NOV2019_IDay.csv")).unwrap(), "SP500_NOV2019_IDAY");
        assert_eq!(symbol_from_path(Path::new("my file (1).csv")).unwrap(), "MY_FILE__1_");
        assert_eq!(symbol_from_path(Path::new(&format!("{}.csv", "a".repeat(40)))).unwrap(), "A".repeat(32));
        assert_eq!(bar_file_name("BRK/B", 60), "BRK_B.1m.rtb");
        assert_eq!(parse_delimiter_arg("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter_arg(";"), Ok(b';'));
        assert!(parse_delimiter_arg(";;").is_err());
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
