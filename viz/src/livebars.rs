//! The live bar buffer: a live run's charts, built from the inputs the pipeline journals.
//!
//! A paper run has no bar files: its bars (warm start from history, then live) and quotes
//! arrive through the ingress and are journaled as inputs (`journal.inputs = "all"`). The flow
//! observer, on the recorder's thread, hands the bar and quote inputs to the window through an
//! [`InputTap`]: a bounded lock-free queue whose push never waits (a full queue drops the input
//! and counts it). On the window's thread, [`LiveBars`] keeps per symbol the bars in time order
//! (a bar at or before the last one kept is refused and counted: a duplicate or out of order)
//! and the latest quote, which the hotkeys' limit offsets "from the bid/ask" use
//! ([`LiveBars::prices`]). A strategy's plots go on the chart's bar of their time
//! ([`place_plot`]), which a plot can reach before its bar.

use crate::keymap::Prices;
use crate::live::{PlotMsg, apply_plot_at};
use crate::model::SymbolChart;
use engine::pipeline::messages::{Flow, FlowBody, InputRec};
use engine::records::{Bar, EventKind, Quote, SymbolId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Room in the tap's queue: minutes of a live feed's bars and quotes between two frames.
pub const TAP_CAP: usize = 1 << 14;

/// The observer's side: bar and quote inputs for the window (see the module docs).
#[derive(Debug)]
pub struct InputTap {
    queue: crossbeam_queue::ArrayQueue<InputRec>,
    /// Inputs dropped because the window was behind (the queue was full).
    pub drops: AtomicU64,
    /// Set when the window has closed: the tap then ignores everything.
    pub closed: AtomicBool,
}

impl InputTap {
    /// A tap holding up to `cap` inputs between two frames.
    pub fn new(cap: usize) -> InputTap {
        InputTap {
            queue: crossbeam_queue::ArrayQueue::new(cap.max(1)),
            drops: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The flow observer's part: bar and quote inputs go to the queue, nothing else; never
    /// waits (a full queue drops the input and counts it).
    #[inline]
    pub fn observe(&self, f: &Flow) {
        let FlowBody::Input(rec) = &f.body else { return };
        if rec.kind != EventKind::Bar.raw() && rec.kind != EventKind::Quote.raw() {
            return;
        }
        if self.closed.load(Relaxed) {
            return;
        }
        if self.queue.push(*rec).is_err() {
            self.drops.fetch_add(1, Relaxed);
        }
    }

    /// The next input, if any (the window's side).
    pub fn pop(&self) -> Option<InputRec> {
        self.queue.pop()
    }
}

/// One symbol's bars and latest quote.
#[derive(Clone, Debug, Default)]
struct Series {
    bars: Vec<Bar>,
    interval_s: u32,
    quote: Option<Quote>,
}

/// The window's side: bars in time order and the latest quote, per symbol id.
#[derive(Clone, Debug, Default)]
pub struct LiveBars {
    series: Vec<Series>,
    /// Bars kept.
    pub bars: u64,
    /// Bars refused: at or before the symbol's last bar (a duplicate or out of order).
    pub refused: u64,
    /// Quotes taken.
    pub quotes: u64,
    /// Receive time of the latest input taken, ns.
    pub last_recv_ns: i64,
}

impl LiveBars {
    /// An empty buffer.
    pub fn new() -> LiveBars {
        LiveBars::default()
    }

    fn series(&mut self, s: SymbolId) -> &mut Series {
        let i = s.0 as usize;
        if self.series.len() <= i {
            self.series.resize_with(i + 1, Series::default);
        }
        &mut self.series[i]
    }

    /// Take one journaled input (bars and quotes; anything else is ignored).
    pub fn apply(&mut self, rec: &InputRec) {
        let ev = rec.to_event();
        if let Some(b) = ev.as_bar() {
            self.push_bar(ev.symbol, u32::from(ev.interval_s), *b);
        } else if let Some(q) = ev.as_quote() {
            self.push_quote(ev.symbol, *q);
        } else {
            return;
        }
        self.last_recv_ns = self.last_recv_ns.max(rec.ts_recv_ns);
    }

    /// Keep `bar` of `symbol` if it is later than the symbol's last bar; otherwise refuse it
    /// (counted) and return false.
    pub fn push_bar(&mut self, symbol: SymbolId, interval_s: u32, bar: Bar) -> bool {
        let s = self.series(symbol);
        if s.bars.last().is_some_and(|l| bar.ts_event_ns <= l.ts_event_ns) {
            self.refused += 1;
            return false;
        }
        if s.interval_s == 0 {
            s.interval_s = interval_s;
        }
        s.bars.push(bar);
        self.bars += 1;
        true
    }

    /// Take `q` as `symbol`'s latest quote unless it is older than the one held.
    pub fn push_quote(&mut self, symbol: SymbolId, q: Quote) {
        let s = self.series(symbol);
        if s.quote.is_some_and(|old| q.ts_event_ns < old.ts_event_ns) {
            return;
        }
        s.quote = Some(q);
        self.quotes += 1;
    }

    /// `symbol`'s bars, in time order.
    pub fn bars(&self, symbol: SymbolId) -> &[Bar] {
        self.series.get(symbol.0 as usize).map_or(&[], |s| s.bars.as_slice())
    }

    /// `symbol`'s bar interval, seconds (0 before its first bar).
    pub fn interval_s(&self, symbol: SymbolId) -> u32 {
        self.series.get(symbol.0 as usize).map_or(0, |s| s.interval_s)
    }

    /// `symbol`'s latest quote.
    pub fn quote(&self, symbol: SymbolId) -> Option<Quote> {
        self.series.get(symbol.0 as usize).and_then(|s| s.quote)
    }

    /// The prices a hotkey's order for `symbol` is made from: the last bar's close, and the
    /// latest quote's bid and ask (0 when there is no quote or that side is empty, so the keymap
    /// falls back to the last price).
    pub fn prices(&self, symbol: SymbolId) -> Prices {
        prices(self.bars(symbol).last(), self.quote(symbol))
    }
}

/// The prices a hotkey uses: `last` bar's close and `quote`'s sides (0: unknown).
pub fn prices(last: Option<&Bar>, quote: Option<Quote>) -> Prices {
    let q = quote.unwrap_or_default();
    Prices { last: last.map_or(0, |b| b.close_px_e9), bid: q.bid_px_e9.max(0), ask: q.ask_px_e9.max(0) }
}

/// Put `m` on `chart`'s bar of its time; false while that bar has not arrived (true once placed,
/// or once a later bar shows it never will).
pub fn place_plot(chart: &mut SymbolChart, m: &PlotMsg) -> bool {
    match chart.bars.binary_search_by_key(&m.ts_ns, |b| b.ts_event_ns) {
        Ok(i) => {
            apply_plot_at(&mut chart.overlays, m, i);
            true
        }
        Err(i) => i < chart.bars.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keymap::{Keymap, plan};
    use engine::records::{Event, PX_SCALE};

    fn bar(min: i64, close: i64) -> Bar {
        let px = close * PX_SCALE;
        Bar {
            ts_event_ns: min * 60_000_000_000,
            open_px_e9: px,
            high_px_e9: px,
            low_px_e9: px,
            close_px_e9: px,
            volume: 1,
        }
    }

    fn quote(ts: i64, bid: i64, ask: i64) -> Quote {
        Quote { ts_event_ns: ts, bid_px_e9: bid * PX_SCALE, ask_px_e9: ask * PX_SCALE, bid_size: 1, ask_size: 1 }
    }

    fn input(e: &Event) -> Flow {
        Flow { seq: 1, body: FlowBody::Input(InputRec::from(e)) }
    }

    #[test]
    fn bars_stay_in_order_and_a_duplicate_or_late_bar_is_refused_and_counted() {
        let (a, b) = (SymbolId(0), SymbolId(2));
        let mut lb = LiveBars::new();
        assert!(lb.push_bar(a, 60, bar(1, 10)));
        assert!(lb.push_bar(a, 60, bar(2, 11)));
        assert!(lb.push_bar(b, 60, bar(1, 50)), "another symbol has its own order");
        assert!(!lb.push_bar(a, 60, bar(2, 99)), "a duplicate");
        assert!(!lb.push_bar(a, 60, bar(1, 99)), "out of order");
        assert!(lb.push_bar(a, 60, bar(3, 12)));
        let closes: Vec<i64> = lb.bars(a).iter().map(|b| b.close_px_e9 / PX_SCALE).collect();
        assert_eq!(closes, vec![10, 11, 12]);
        assert_eq!((lb.bars, lb.refused), (4, 2));
        assert_eq!(lb.bars(b).len(), 1);
        assert!(lb.bars(SymbolId(9)).is_empty());
        assert_eq!(lb.interval_s(a), 60);
    }

    #[test]
    fn the_tap_passes_bars_and_quotes_only_and_drops_counted_when_full() {
        let tap = InputTap::new(2);
        let s = SymbolId(0);
        tap.observe(&input(&Event::bar(s, &bar(1, 10), 60, 5)));
        tap.observe(&input(&Event::manual_order(
            s,
            engine::records::Side::Buy,
            engine::records::OrderType::Market,
            1,
            0,
            0,
            6,
        )));
        tap.observe(&input(&Event::quote(s, &quote(7, 9, 11), 7)));
        tap.observe(&input(&Event::bar(s, &bar(2, 10), 60, 8)));
        assert_eq!(tap.drops.load(Relaxed), 1, "the third market input found the queue full");
        let mut lb = LiveBars::new();
        while let Some(r) = tap.pop() {
            lb.apply(&r);
        }
        assert_eq!((lb.bars, lb.quotes, lb.last_recv_ns), (1, 1, 7));
        tap.closed.store(true, Relaxed);
        tap.observe(&input(&Event::bar(s, &bar(3, 10), 60, 9)));
        assert!(tap.pop().is_none(), "a closed window takes nothing");
    }

    #[test]
    fn quotes_update_the_bid_and_ask_the_hotkeys_use() {
        let s = SymbolId(1);
        let mut lb = LiveBars::new();
        assert_eq!(lb.prices(s), Prices::default(), "nothing yet");
        lb.push_bar(s, 60, bar(1, 100));
        assert_eq!(lb.prices(s), Prices { last: 100 * PX_SCALE, bid: 0, ask: 0 }, "no quote: the last price only");
        lb.push_quote(s, quote(10, 99, 101));
        lb.push_quote(s, quote(20, 98, 102));
        lb.push_quote(s, quote(15, 1, 500));
        assert_eq!(lb.quote(s).map(|q| q.ts_event_ns), Some(20), "an older quote does not replace a newer one");
        assert_eq!(lb.prices(s), Prices { last: 100 * PX_SCALE, bid: 98 * PX_SCALE, ask: 102 * PX_SCALE });

        // The keymap's limits: 5 cents under the bid, 5 cents over the ask, and from the last.
        let km = Keymap::parse(
            "[keys]\nA = { action = \"buy\", type = \"limit\", from = \"bid\", offset = -0.05, shares = 1 }\n\
             B = { action = \"sell\", type = \"limit\", from = \"ask\", offset = 0.05, shares = 1 }\n\
             C = { action = \"buy\", type = \"limit\", from = \"last\", shares = 1 }\n",
            "t",
        )
        .unwrap();
        let limit = |k: &str, p: Prices| plan(&km.keys[k], s, p).unwrap().limit_px_e9;
        let cents = PX_SCALE / 100;
        assert_eq!(limit("A", lb.prices(s)), 98 * PX_SCALE - 5 * cents);
        assert_eq!(limit("B", lb.prices(s)), 102 * PX_SCALE + 5 * cents);
        assert_eq!(limit("C", lb.prices(s)), 100 * PX_SCALE);
        // A symbol with bars and no quote: bid and ask fall back to the last price.
        let t = SymbolId(0);
        lb.push_bar(t, 60, bar(1, 40));
        assert_eq!(limit("A", lb.prices(t)), 40 * PX_SCALE - 5 * cents);
        assert_eq!(limit("B", lb.prices(t)), 40 * PX_SCALE + 5 * cents);
        // An empty side (bid 0) falls back too.
        lb.push_quote(t, Quote { ask_px_e9: 41 * PX_SCALE, ..quote(5, 0, 0) });
        assert_eq!(limit("A", lb.prices(t)), 40 * PX_SCALE - 5 * cents);
        assert_eq!(limit("B", lb.prices(t)), 41 * PX_SCALE + 5 * cents);
    }

    #[test]
    fn a_plot_goes_on_the_bar_of_its_time_waits_for_it_or_is_dropped_when_it_never_came() {
        use engine::strategy::{PlotItem, PlotStyle};
        let mut c = SymbolChart::new("X", 60, vec![bar(1, 10), bar(2, 11), bar(4, 12)]);
        let item = PlotItem { name: "sma", style: PlotStyle::Line, px_e9: 7 };
        let blank = PlotItem { name: "", style: PlotStyle::Line, px_e9: 0 };
        let msg = |min: i64| PlotMsg {
            symbol: SymbolId(0),
            idx: 99,
            ts_ns: min * 60_000_000_000,
            n: 1,
            items: [item, blank, blank, blank],
        };
        assert!(place_plot(&mut c, &msg(2)), "its bar is there: placed by time, not by index 99");
        assert_eq!(c.overlays[0].values, vec![None, Some(7)]);
        assert!(!place_plot(&mut c, &msg(5)), "its bar has not arrived: wait");
        assert!(place_plot(&mut c, &msg(3)), "a later bar is there: this one never came, dropped");
        assert_eq!(c.overlays[0].values, vec![None, Some(7)]);
        c.bars.push(bar(5, 13));
        assert!(place_plot(&mut c, &msg(5)));
        assert_eq!(c.overlays[0].values, vec![None, Some(7), None, Some(7)]);
    }
}
