//! What a panel shows: one symbol's bars, the overlays its strategy plotted, its fills; and the
//! view window (which bars are on screen).

use engine::records::{Bar, Side};
use engine::strategy::PlotStyle;

/// One overlay series, aligned with the chart's bars (`None`: nothing drawn at that bar).
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    /// Legend name (from [`engine::strategy::PlotItem::name`]).
    pub name: String,
    /// Line or level.
    pub style: PlotStyle,
    /// One value per bar, 1e-9 units.
    pub values: Vec<Option<i64>>,
}

/// A fill to mark on the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillMark {
    /// Fill time, ns UTC.
    pub ts_ns: i64,
    /// Buy or sell.
    pub side: Side,
    /// Shares.
    pub qty: u32,
    /// Fill price, 1e-9 units.
    pub px_e9: i64,
}

/// A working order to mark on the chart: a price line at its limit or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkingMark {
    /// Buy or sell.
    pub side: Side,
    /// True for a stop order (else a limit).
    pub stop: bool,
    /// Shares still working.
    pub qty: u32,
    /// Limit or stop price, 1e-9 units.
    pub px_e9: i64,
}

/// Everything one panel draws for one symbol.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SymbolChart {
    /// Ticker.
    pub symbol: String,
    /// Bar interval, seconds.
    pub interval_s: u32,
    /// Bars in time order.
    pub bars: Vec<Bar>,
    /// Strategy overlays.
    pub overlays: Vec<Overlay>,
    /// Fills in time order.
    pub fills: Vec<FillMark>,
    /// Working limit and stop orders (a live run).
    pub working: Vec<WorkingMark>,
}

/// A position at some point of the chart.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Position {
    /// Shares (+ long, - short).
    pub qty: i64,
    /// Average entry price of the open shares, 1e-9 units (0 when flat).
    pub avg_px_e9: i64,
}

impl SymbolChart {
    /// A chart of `bars` with no overlays or fills.
    pub fn new(symbol: impl Into<String>, interval_s: u32, bars: Vec<Bar>) -> Self {
        SymbolChart {
            symbol: symbol.into(),
            interval_s,
            bars,
            overlays: Vec::new(),
            fills: Vec::new(),
            working: Vec::new(),
        }
    }

    /// Index of the bar whose window holds `ts_ns` (the last bar starting at or before it);
    /// None before the first bar.
    pub fn bar_at(&self, ts_ns: i64) -> Option<usize> {
        self.bars.partition_point(|b| b.ts_event_ns <= ts_ns).checked_sub(1)
    }

    /// The position after every fill up to the end of bar `idx` (average price of the open
    /// shares; a fill crossing zero starts a new average at its price).
    pub fn position_at(&self, idx: usize) -> Position {
        let end = self.bars.get(idx + 1).map_or(i64::MAX, |b| b.ts_event_ns);
        let mut p = Position::default();
        for f in self.fills.iter().take_while(|f| f.ts_ns < end) {
            let q = f.side.sign() * i64::from(f.qty);
            let new = p.qty + q;
            if p.qty == 0 || (p.qty > 0) == (q > 0) {
                // Opening or adding: weighted average.
                let tot = p.avg_px_e9 as i128 * p.qty.abs() as i128 + f.px_e9 as i128 * q.abs() as i128;
                p.avg_px_e9 = (tot / new.abs().max(1) as i128) as i64;
            } else if new == 0 {
                p.avg_px_e9 = 0;
            } else if (new > 0) != (p.qty > 0) {
                p.avg_px_e9 = f.px_e9;
            }
            p.qty = new;
        }
        p
    }
}

/// Which bars are on screen: `count` bars from index `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// First bar shown.
    pub first: usize,
    /// Bars shown.
    pub count: usize,
}

/// The fewest bars a view shows when zoomed in.
pub const MIN_BARS: usize = 10;

impl View {
    /// The last `count` of `n` bars.
    pub fn last(n: usize, count: usize) -> Self {
        let count = count.clamp(1, n.max(1));
        View { first: n.saturating_sub(count), count }
    }
    /// Every one of `n` bars.
    pub fn all(n: usize) -> Self {
        View { first: 0, count: n.max(1) }
    }
    /// One past the last bar shown, for a chart of `n` bars.
    pub fn end(&self, n: usize) -> usize {
        (self.first + self.count).min(n)
    }
    /// Kept inside `n` bars.
    pub fn clamped(self, n: usize) -> Self {
        let count = self.count.clamp(MIN_BARS.min(n.max(1)), n.max(1));
        View { first: self.first.min(n.saturating_sub(count)), count }
    }
    /// Move by `delta` bars (negative: back in time), inside `n` bars.
    pub fn pan(self, delta: isize, n: usize) -> Self {
        let first = (self.first as isize + delta).max(0) as usize;
        View { first, ..self }.clamped(n)
    }
    /// Zoom by `factor` (< 1: in, fewer bars) keeping bar `anchor` at the same place on screen.
    pub fn zoom(self, factor: f64, anchor: usize, n: usize) -> Self {
        let count = ((self.count as f64 * factor).round() as usize).max(1);
        let anchor = anchor.clamp(self.first, self.first + self.count.saturating_sub(1));
        let frac = (anchor - self.first) as f64 / self.count.max(1) as f64;
        let first = (anchor as f64 - frac * count as f64).round().max(0.0) as usize;
        View { first, count }.clamped(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64) -> Bar {
        Bar { ts_event_ns: ts, open_px_e9: 1, high_px_e9: 1, low_px_e9: 1, close_px_e9: 1, volume: 0 }
    }

    #[test]
    fn views_zoom_and_pan_inside_the_history() {
        let v = View::last(1000, 100);
        assert_eq!(v, View { first: 900, count: 100 });
        assert_eq!(v.pan(50, 1000), v, "cannot pan past the end");
        assert_eq!(v.pan(-950, 1000), View { first: 0, count: 100 });
        // Zoom in 2x around the middle bar 950: 50 bars, 950 stays in the middle.
        assert_eq!(v.zoom(0.5, 950, 1000), View { first: 925, count: 50 });
        // Zoom out past everything: the whole history.
        assert_eq!(v.zoom(100.0, 950, 1000), View { first: 0, count: 1000 });
        assert_eq!(v.zoom(0.01, 950, 1000).count, MIN_BARS);
    }

    #[test]
    fn bars_are_found_by_time_and_positions_follow_fills() {
        let mut c = SymbolChart::new("X", 60, (0..5).map(|i| bar(i * 60)).collect());
        assert_eq!(
            (c.bar_at(-1), c.bar_at(0), c.bar_at(59), c.bar_at(60), c.bar_at(10_000)),
            (None, Some(0), Some(0), Some(1), Some(4))
        );
        c.fills = vec![
            FillMark { ts_ns: 60, side: Side::Buy, qty: 10, px_e9: 100 },
            FillMark { ts_ns: 120, side: Side::Buy, qty: 30, px_e9: 200 },
            FillMark { ts_ns: 180, side: Side::Sell, qty: 40, px_e9: 300 },
        ];
        assert_eq!(c.position_at(0), Position::default());
        assert_eq!(c.position_at(1), Position { qty: 10, avg_px_e9: 100 });
        // (10 x 100 + 30 x 200) / 40 = 175
        assert_eq!(c.position_at(2), Position { qty: 40, avg_px_e9: 175 });
        assert_eq!(c.position_at(3), Position::default());
    }
}
