//! `ringtape export csv DIR --out FILE [--symbol SYM]`: bar files -> CSV.
//!
//! Output: a header `symbol,interval,ts,open,high,low,close,volume`, then one row per bar in the
//! data set's merged (time, symbol) order. `ts` is the bar start in RFC 3339 UTC (`2024-01-02T14:30:00Z`,
//! with 9 fractional digits only when the nanoseconds are not zero); prices are exact decimals with
//! at least 2 fractional digits. `ringtape import csv` reads this format back into identical bar
//! files (one per symbol and interval).

use crate::exit::bad_input;
use crate::progress;
use anyhow::{Context, Result};
use engine::merge::BarSet;
use engine::records::{Bar, Interval};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The CSV header line (without the newline).
pub const HEADER: &str = "symbol,interval,ts,open,high,low,close,volume";

/// Data sets with more bars than this get a progress bar (on a terminal).
const PROGRESS_MIN_BARS: u64 = 1_000_000;

/// Arguments of `ringtape export csv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of bar files (`*.rtb`)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Output CSV file (`-` for stdout)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Export only this symbol (all its intervals)
    #[arg(long, value_name = "SYM")]
    pub symbol: Option<String>,
}

/// RFC 3339 UTC text of a timestamp (the engine's allocation-free formatter).
pub use engine::text::fmt_ts;

/// Write one CSV row (with its newline). Symbols never need quoting (their alphabet has no comma
/// or quote).
pub fn write_row<W: Write>(w: &mut W, symbol: &str, interval_s: u32, bar: &Bar) -> std::io::Result<()> {
    use engine::text::{write_px, write_ts, write_u64};
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(symbol.as_bytes());
    b.push(b',');
    b.extend_from_slice(Interval { secs: interval_s }.to_string().as_bytes());
    b.push(b',');
    write_ts(&mut b, bar.ts_event_ns);
    for px in [bar.open_px_e9, bar.high_px_e9, bar.low_px_e9, bar.close_px_e9] {
        b.push(b',');
        write_px(&mut b, px, 2);
    }
    b.push(b',');
    write_u64(&mut b, bar.volume);
    b.push(b'\n');
    w.write_all(&b)
}

/// Write the header and every bar of `set` (only `symbol`'s, when given) in merged order.
/// Returns the number of rows written.
pub fn write_csv<W: Write>(set: &BarSet, symbol: Option<&str>, mut w: W) -> std::io::Result<u64> {
    write_csv_with_progress(set, symbol, &mut w, &crate::progress::Progress::hidden())
}

fn write_csv_with_progress<W: Write>(
    set: &BarSet,
    symbol: Option<&str>,
    w: &mut W,
    pb: &crate::progress::Progress,
) -> std::io::Result<u64> {
    writeln!(w, "{HEADER}")?;
    let only = symbol.map(|s| set.symbols().get(s));
    let mut n = 0u64;
    for item in set.merged() {
        if only.is_some_and(|id| id != Some(item.symbol)) {
            continue;
        }
        write_row(w, set.symbols().name(item.symbol), item.interval_s, item.bar)?;
        n += 1;
        if n.is_multiple_of(65_536) {
            pb.set_position(n);
            if crate::interrupt::requested() {
                return Err(std::io::Error::other("interrupted"));
            }
        }
    }
    w.flush()?;
    Ok(n)
}

/// Open a bar directory for export (errors are the user's to fix: exit 2).
pub fn open_set(dir: &Path) -> Result<BarSet> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    BarSet::open_dir_all_intervals(dir, threads).map_err(|e| bad_input(e.to_string()))
}

/// Run `ringtape export csv`.
pub fn run(args: Args) -> Result<()> {
    // Ctrl-C sets a flag polled while writing: the temporary file is removed, nothing replaces --out.
    let _ = crate::interrupt::flag();
    if args.out.is_dir() {
        return Err(bad_input(format!(
            "--out {}: is a directory; give a CSV file path (or - for stdout)",
            args.out.display()
        )));
    }
    let set = open_set(&args.dir)?;
    if let Some(s) = &args.symbol
        && set.symbols().get(s).is_none()
    {
        return Err(bad_input(format!(
            "--symbol {s}: not in {} (it has: {})",
            args.dir.display(),
            set.symbols().names().join(", ")
        )));
    }
    let total: u64 = set
        .streams()
        .iter()
        .filter(|st| args.symbol.as_deref().is_none_or(|s| st.file.header().symbol == s))
        .map(|st| st.file.header().count)
        .sum();
    let pb = progress::bar("export", total, "bars", total > PROGRESS_MIN_BARS);
    let symbol = args.symbol.as_deref();
    let rows = if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout().lock();
        write_csv_with_progress(&set, symbol, &mut std::io::BufWriter::new(stdout), &pb).context("writing stdout")
    } else {
        write_atomically(&args.out, |w| write_csv_with_progress(&set, symbol, w, &pb))
    };
    pb.finish_and_clear();
    if crate::interrupt::requested() {
        return Err(crate::exit::interrupted(format!("interrupted; {} not written", args.out.display())));
    }
    let rows = rows?;
    if args.out.as_os_str() != "-" {
        crate::exit::report(format_args!(
            "exported {rows} bars of {} symbols from {} -> {}",
            symbol.map_or(set.symbols().len(), |_| 1),
            args.dir.display(),
            args.out.display()
        ))?;
    }
    Ok(())
}

/// Write `path` through a temporary file in the same directory, renamed into place on success.
fn write_atomically<T>(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<T>,
) -> Result<T> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| bad_input(format!("--out {}: not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let v = f(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok::<T, std::io::Error>(v)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_csv::{ImportOptions, import_reader};
    use engine::barfile::write_bar_file;
    use proptest::prelude::*;

    #[test]
    fn timestamps_match_jiff() {
        for ns in
            [0i64, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_001, 951_782_400_000_000_000, i64::MAX, i64::MIN]
        {
            let want = jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap();
            let got: jiff::Timestamp = fmt_ts(ns).parse().unwrap();
            assert_eq!(got, want, "{ns}");
        }
        assert_eq!(fmt_ts(1_704_205_800_000_000_000), "2024-01-02T14:30:00Z");
        assert_eq!(fmt_ts(1_704_205_800_000_000_001), "2024-01-02T14:30:00.000000001Z");
    }

    fn arb_bars() -> impl Strategy<Value = Vec<Bar>> {
        proptest::collection::btree_set(-2_000_000_000_000_000_000i64..4_000_000_000_000_000_000, 1..40).prop_flat_map(
            |ts| {
                let n = ts.len();
                (
                    Just(ts.into_iter().collect::<Vec<_>>()),
                    proptest::collection::vec(
                        (1i64..1_000_000_000_000_000, 0i64..1_000_000_000_000, 0u8..4, any::<u64>()),
                        n,
                    ),
                )
                    .prop_map(|(ts, px)| {
                        ts.into_iter()
                            .zip(px)
                            .map(|(t, (low, range, k, volume))| {
                                let high = low + range;
                                let mid = low + range / 2;
                                let (open, close) = match k {
                                    0 => (low, high),
                                    1 => (high, low),
                                    2 => (mid, mid),
                                    _ => (low, mid),
                                };
                                Bar {
                                    ts_event_ns: t,
                                    open_px_e9: open,
                                    high_px_e9: high,
                                    low_px_e9: low,
                                    close_px_e9: close,
                                    volume,
                                }
                            })
                            .collect()
                    })
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// export -> import reproduces every bar exactly (prices, nanosecond times, volumes).
        #[test]
        fn csv_round_trip_is_exact(a in arb_bars(), b in arb_bars(), interval in 1u32..200_000) {
            let dir = tempfile::tempdir().unwrap();
            write_bar_file(&dir.path().join("A.rtb"), "A", interval, &a).unwrap();
            write_bar_file(&dir.path().join("B-2.rtb"), "B-2", 60, &b).unwrap();
            let set = open_set(dir.path()).unwrap();
            let mut out = Vec::new();
            let rows = write_csv(&set, None, &mut out).unwrap();
            prop_assert_eq!(rows as usize, a.len() + b.len());
            let im = import_reader(out.as_slice(), "x.csv", &ImportOptions::default()).unwrap();
            prop_assert_eq!(im.report.rejected_total(), 0);
            let mut want = vec![("A".to_string(), interval, a), ("B-2".to_string(), 60, b)];
            want.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
            let got: Vec<(String, u32, Vec<Bar>)> =
                im.series.into_iter().map(|s| (s.symbol, s.interval_s, s.bars)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
