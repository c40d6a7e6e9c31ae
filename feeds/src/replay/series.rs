//! Where replayed bars come from: a shared bar set in merge order ([`SetBars`]), or already-parsed
//! series such as an imported CSV ([`Series`], [`SeriesSet`]).

use super::*;

/// The bars of a shared [`BarSet`] in merge order (end time, then stream), owning the set so a
/// feed thread can hold it. Yields exactly what [`BarSet::merged`] yields.
#[derive(Debug)]
pub struct SetBars {
    set: Arc<BarSet>,
    pos: Vec<usize>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>>,
}

impl SetBars {
    /// Iterate `set` from its first bar.
    pub fn new(set: Arc<BarSet>) -> Self {
        let mut s = SetBars { pos: vec![0; set.streams().len()], heap: Default::default(), set };
        for i in 0..s.pos.len() {
            if let Some(k) = s.key(i) {
                s.heap.push(std::cmp::Reverse((k, i)));
            }
        }
        s
    }

    fn key(&self, i: usize) -> Option<i64> {
        let st = &self.set.streams()[i];
        let b = st.file.bars().get(self.pos[i])?;
        Some(b.ts_event_ns.saturating_add(i64::from(st.file.header().interval_s) * 1_000_000_000))
    }
}

impl Iterator for SetBars {
    type Item = ReplayBar;

    fn next(&mut self) -> Option<ReplayBar> {
        let std::cmp::Reverse((_, i)) = self.heap.pop()?;
        let st = &self.set.streams()[i];
        let bar = *st.file.bars().get(self.pos[i])?;
        let out = ReplayBar { symbol: st.symbol, interval_s: st.file.header().interval_s, bar };
        self.pos[i] += 1;
        if let Some(k) = self.key(i) {
            self.heap.push(std::cmp::Reverse((k, i)));
        }
        Some(out)
    }
}

/// The bars of one symbol at one interval, already parsed (e.g. by the CSV importer in the
/// binary: feeds does not depend on tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Symbol name.
    pub symbol: String,
    /// Bar length in seconds.
    pub interval_s: u32,
    /// Bars in increasing start time.
    pub bars: Vec<Bar>,
}

/// Why a set of series cannot be replayed. Names the series, never prints prices.
#[derive(Debug, PartialEq, Eq)]
pub enum SeriesError {
    /// A symbol name is refused by the symbol table.
    Symbol(SymbolError),
    /// An interval of 0 seconds.
    ZeroInterval {
        /// The symbol.
        symbol: String,
    },
    /// Two series for the same symbol and interval.
    Duplicate {
        /// The symbol.
        symbol: String,
        /// The interval, seconds.
        interval_s: u32,
    },
    /// Bars not in strictly increasing start time.
    Unordered {
        /// The symbol.
        symbol: String,
        /// The interval, seconds.
        interval_s: u32,
        /// Index of the first bar that does not start after the one before it.
        index: usize,
    },
}

impl std::fmt::Display for SeriesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeriesError::Symbol(e) => write!(f, "replay series: {e}"),
            SeriesError::ZeroInterval { symbol } => write!(f, "replay series {symbol}: interval of 0 seconds"),
            SeriesError::Duplicate { symbol, interval_s } => {
                write!(f, "replay series {symbol} at {interval_s} s given twice; keep one")
            }
            SeriesError::Unordered { symbol, interval_s, index } => write!(
                f,
                "replay series {symbol} at {interval_s} s: bar {index} does not start after bar {} (sort and \
                 dedupe the bars)",
                index - 1
            ),
        }
    }
}

impl std::error::Error for SeriesError {}

/// Parsed series (e.g. from CSV) ready to replay: symbols get ids in name order and bars come in
/// the same order as a [`BarSet`] of the same data (end time, then symbol, then interval), so a
/// CSV replay and a bar-file replay of the same bars yield the same events.
#[derive(Debug, Clone)]
pub struct SeriesSet {
    symbols: SymbolTable,
    bars: Vec<ReplayBar>,
}

impl SeriesSet {
    /// Check and merge `series`.
    pub fn new(mut series: Vec<Series>) -> Result<SeriesSet, SeriesError> {
        series.sort_by(|a, b| (&a.symbol, a.interval_s).cmp(&(&b.symbol, b.interval_s)));
        let mut symbols = SymbolTable::new();
        let mut keyed = Vec::with_capacity(series.iter().map(|s| s.bars.len()).sum());
        for (k, s) in series.iter().enumerate() {
            if s.interval_s == 0 {
                return Err(SeriesError::ZeroInterval { symbol: s.symbol.clone() });
            }
            if k > 0 && series[k - 1].symbol == s.symbol && series[k - 1].interval_s == s.interval_s {
                return Err(SeriesError::Duplicate { symbol: s.symbol.clone(), interval_s: s.interval_s });
            }
            let symbol = symbols.intern(&s.symbol).map_err(SeriesError::Symbol)?;
            if let Some(i) = s.bars.windows(2).position(|w| w[1].ts_event_ns <= w[0].ts_event_ns) {
                return Err(SeriesError::Unordered {
                    symbol: s.symbol.clone(),
                    interval_s: s.interval_s,
                    index: i + 1,
                });
            }
            for &bar in &s.bars {
                let rb = ReplayBar { symbol, interval_s: s.interval_s, bar };
                keyed.push((rb.end_ns(), k, rb));
            }
        }
        // Stable on (end, stream): within a stream bars are already in time order.
        keyed.sort_by_key(|&(end, k, _)| (end, k));
        Ok(SeriesSet { symbols, bars: keyed.into_iter().map(|(_, _, b)| b).collect() })
    }

    /// The symbol table (ids in name order): pass it to the run.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// Bars in replay order.
    pub fn bars(&self) -> &[ReplayBar] {
        &self.bars
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.bars.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// Iterate the bars in replay order (copies; the set stays usable).
    pub fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, ReplayBar>> {
        self.bars.iter().copied()
    }
}

impl IntoIterator for SeriesSet {
    type Item = ReplayBar;
    type IntoIter = std::vec::IntoIter<ReplayBar>;

    fn into_iter(self) -> Self::IntoIter {
        self.bars.into_iter()
    }
}

// -------------------------------------------------------------------------------------------------
// The paced source
