//! The exchange's data: every symbol's bars, sorted by time, loaded from a bar directory (or the
//! built-in S&P 500 minute bars). Per-second data also gets minute bars aggregated from it, so the
//! Alpaca stream and the `AM` channel always have minute bars.

use engine::barfile::{BarFile, EXTENSION};
use engine::records::Bar;
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// Nanoseconds in a minute.
pub const MINUTE_NS: i64 = 60_000_000_000;
/// Nanoseconds in a second.
pub const SECOND_NS: i64 = 1_000_000_000;

/// One symbol's bars.
#[derive(Clone, Debug)]
pub struct SymbolBars {
    /// The symbol.
    pub name: String,
    /// Minute bars, strictly increasing in time.
    pub minute: Vec<Bar>,
    /// Second bars when the source data is per-second (else empty).
    pub second: Vec<Bar>,
}

/// Every symbol's bars, sorted by symbol name.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    /// Symbols in name order.
    pub symbols: Vec<SymbolBars>,
    index: HashMap<String, usize>,
}

impl Tape {
    /// A tape from `(symbol, interval_s, bars)` series. Series of 1 s bars keep their second bars
    /// and get minute bars aggregated from them; 60 s series are used as they are; other
    /// intervals are refused.
    pub fn from_series(series: Vec<(String, u32, Vec<Bar>)>) -> io::Result<Tape> {
        let mut by_name: HashMap<String, SymbolBars> = HashMap::new();
        for (name, interval_s, bars) in series {
            let e = by_name.entry(name.clone()).or_insert_with(|| SymbolBars {
                name,
                minute: Vec::new(),
                second: Vec::new(),
            });
            match interval_s {
                1 => {
                    e.minute = aggregate(&bars, MINUTE_NS, i64::MAX);
                    e.second = bars;
                }
                60 if e.second.is_empty() => e.minute = bars,
                60 => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {other} s bars; the exchange serves 1 s and 1 min bars", e.name),
                    ));
                }
            }
        }
        let mut symbols: Vec<SymbolBars> = by_name.into_values().collect();
        symbols.sort_by(|a, b| a.name.cmp(&b.name));
        let index = symbols.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Ok(Tape { symbols, index })
    }

    /// Every `*.rtb` bar file in `dir`.
    pub fn open_dir(dir: &Path) -> io::Result<Tape> {
        let mut series = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let f = BarFile::open(&path).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            series.push((f.header().symbol.clone(), f.header().interval_s, f.bars().to_vec()));
        }
        if series.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no .{EXTENSION} bar files", dir.display()),
            ));
        }
        Tape::from_series(series)
    }

    /// The built-in data: one day of real S&P 500 index minute bars (symbol `SP500`).
    pub fn builtin() -> io::Result<Tape> {
        let bad = |e: anyhow::Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        let opts = crate::import_csv::ImportOptions {
            symbol: Some(crate::backtest::BUILTIN_SYMBOL.into()),
            tz: crate::import_csv::parse_tz("America/New_York").map_err(bad)?,
            interval: None,
        };
        let imported =
            crate::import_csv::import_reader(crate::backtest::BUILTIN_CSV.as_bytes(), "built-in data", &opts)
                .map_err(bad)?;
        Tape::from_series(imported.series.into_iter().map(|s| (s.symbol, s.interval_s, s.bars)).collect())
    }

    /// The index of `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// True when any symbol has per-second bars.
    pub fn has_seconds(&self) -> bool {
        self.symbols.iter().any(|s| !s.second.is_empty())
    }

    /// The first minute bar's start over all symbols (`None` when there is no bar).
    pub fn first_ns(&self) -> Option<i64> {
        self.symbols.iter().filter_map(|s| s.minute.first().map(|b| b.ts_event_ns)).min()
    }

    /// The last minute bar's end over all symbols.
    pub fn last_end_ns(&self) -> Option<i64> {
        self.symbols.iter().filter_map(|s| s.minute.last().map(|b| b.ts_event_ns + MINUTE_NS)).max()
    }
}

/// Aggregate sorted `bars` into windows of `len_ns` (aligned on multiples of `len_ns` since the
/// epoch), keeping only windows that have ended by `now_ns`: no look-ahead.
pub fn aggregate(bars: &[Bar], len_ns: i64, now_ns: i64) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        let start = b.ts_event_ns.div_euclid(len_ns) * len_ns;
        if start.saturating_add(len_ns) > now_ns {
            break;
        }
        match out.last_mut() {
            Some(last) if last.ts_event_ns == start => {
                last.high_px_e9 = last.high_px_e9.max(b.high_px_e9);
                last.low_px_e9 = last.low_px_e9.min(b.low_px_e9);
                last.close_px_e9 = b.close_px_e9;
                last.volume += b.volume;
            }
            _ => out.push(Bar { ts_event_ns: start, ..*b }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64, px: i64) -> Bar {
        Bar { ts_event_ns: ts, open_px_e9: px, high_px_e9: px + 5, low_px_e9: px - 5, close_px_e9: px + 1, volume: 10 }
    }

    #[test]
    fn aggregates_whole_windows_only() {
        let bars: Vec<Bar> = (0..150).map(|i| bar(i * SECOND_NS, 100 + i)).collect();
        let m = aggregate(&bars, MINUTE_NS, 150 * SECOND_NS);
        assert_eq!(m.len(), 2, "the third minute has not ended");
        assert_eq!((m[0].ts_event_ns, m[0].open_px_e9, m[0].close_px_e9, m[0].volume), (0, 100, 160, 600));
        assert_eq!((m[1].high_px_e9, m[1].low_px_e9), (100 + 119 + 5, 100 + 60 - 5));
    }
}
