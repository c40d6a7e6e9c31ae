//! The live side of the viewer: what a running pipeline publishes for the window, and how the
//! window steers a replay. Nothing here ever makes the pipeline wait.
//!
//! - [`Live`]: the one shared state (an `Arc`): pacing controls the window sets (pause, steps,
//!   speed) and the pipeline reads with relaxed atomic loads; per-stream progress the pacer
//!   stores; two bounded lock-free queues ([`crossbeam_queue::ArrayQueue`]) the pipeline pushes
//!   into with `push` that fails instead of waiting (a full queue drops the message and counts
//!   it: [`Live::flow_drops`], [`Live::plot_drops`]).
//! - [`Paced`]: wraps a replay source; at `max` speed it only stores the progress of each bar,
//!   otherwise it holds the next bar back (returning [`Next::Idle`]) until its time at the
//!   chosen speed, or until a step when paused.
//! - [`PlotTap`]: a [`StrategyFactory`] around the run's own whose strategies forward every
//!   callback and, after each bar, publish what [`Strategy::plot`] draws.
//! - [`observe`]: the pipeline's flow observer ([`engine::pipeline::RunSpec::observe`]):
//!   decisions, cancels and reports, on the recorder's thread.
//!
//! The window's side of the flow (fills, working orders, manual orders and their rejections) is
//! [`crate::book`].
#![allow(clippy::disallowed_methods)] // pacing a replay at a chosen speed needs the wall clock

use crate::model::Overlay;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use engine::pipeline::messages::{Flow, FlowBody};
use engine::pipeline::{Next, Source};
use engine::records::{Bar, ExecReport, Quote, SymbolId, Trade};
use engine::strategy::{Ctx, Plot, PlotItem, PlotStyle, Strategy, StrategyFactory};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Replay speed of a backtest with a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// One bar time per second.
    X1,
    /// Ten bar times per second.
    X10,
    /// A hundred bar times per second.
    X100,
    /// As fast as the pipeline goes.
    Max,
}

impl Speed {
    /// Bar times per second (None: unpaced).
    pub fn bars_per_s(self) -> Option<f64> {
        match self {
            Speed::X1 => Some(1.0),
            Speed::X10 => Some(10.0),
            Speed::X100 => Some(100.0),
            Speed::Max => None,
        }
    }
    /// `x1`, `x10`, `x100`, `max`.
    pub fn as_str(self) -> &'static str {
        match self {
            Speed::X1 => "x1",
            Speed::X10 => "x10",
            Speed::X100 => "x100",
            Speed::Max => "max",
        }
    }
    /// Parse `x1`, `x10`, `x100`, `max` (also without the `x`).
    pub fn parse(s: &str) -> Option<Speed> {
        match s.trim_start_matches('x') {
            "1" => Some(Speed::X1),
            "10" => Some(Speed::X10),
            "100" => Some(Speed::X100),
            "max" => Some(Speed::Max),
            _ => None,
        }
    }
    fn raw(self) -> u8 {
        self as u8
    }
    fn from_raw(r: u8) -> Speed {
        match r {
            0 => Speed::X1,
            1 => Speed::X10,
            2 => Speed::X100,
            _ => Speed::Max,
        }
    }
}

/// What a strategy plotted after one bar: symbol, the bar's index in its stream, up to
/// [`PLOT_ITEMS`] items.
#[derive(Clone, Copy, Debug)]
pub struct PlotMsg {
    /// Symbol.
    pub symbol: SymbolId,
    /// Index of the bar (the strategy's n-th bar).
    pub idx: u32,
    /// The bar's time, ns (a live run's charts place the plot by it).
    pub ts_ns: i64,
    /// Items used.
    pub n: u8,
    /// The items.
    pub items: [PlotItem; PLOT_ITEMS],
}

/// Most plot items published per bar.
pub const PLOT_ITEMS: usize = 4;

/// Counters the window shows, copied from the pipeline's [`engine::pipeline::Counters`] by the
/// run's monitor.
#[derive(Debug, Default)]
pub struct RunGauges {
    /// Inputs the sequencer published.
    pub published: AtomicU64,
    /// Times the main ring was full.
    pub ring_full: AtomicU64,
    /// Times a queue between stages was full.
    pub queues_full: AtomicU64,
    /// Control events refused by a full ingress.
    pub control_rejected: AtomicU64,
}

/// The state shared by a running pipeline and its window.
#[derive(Debug)]
pub struct Live {
    /// Hold the replay (steps still go through).
    pub paused: AtomicBool,
    /// Time slots to release while paused.
    pub steps: AtomicU64,
    speed: AtomicU8,
    /// Bars released so far, per stream of the bar set.
    progress: Vec<AtomicU64>,
    /// Receive time of the last input released, ns.
    pub last_ts: AtomicI64,
    /// Pause before the first input after this time, ns (`i64::MAX`: never).
    pub pause_at: AtomicI64,
    /// Bars the strategies have seen (the lag is bars released minus these). On its own cache
    /// line: the shards write it, the sequencer writes the fields around it.
    pub strategy_bars: CachePadded<AtomicU64>,
    flows: ArrayQueue<Flow>,
    plots: ArrayQueue<PlotMsg>,
    /// Flow messages dropped because the window was behind (the queue was full).
    pub flow_drops: AtomicU64,
    /// Plot messages dropped.
    pub plot_drops: AtomicU64,
    /// Set when the pipeline has returned.
    pub done: AtomicBool,
    /// Set when the window has closed.
    pub closed: AtomicBool,
    /// Pipeline counters.
    pub gauges: RunGauges,
}

/// Room in each queue: a few frames of a full-speed replay.
pub const QUEUE_CAP: usize = 1 << 15;

impl Live {
    /// Shared state for a bar set of `streams` streams, starting at `speed`, paused or not.
    pub fn new(streams: usize, speed: Speed, paused: bool) -> Arc<Live> {
        Arc::new(Live {
            paused: AtomicBool::new(paused),
            steps: AtomicU64::new(0),
            speed: AtomicU8::new(speed.raw()),
            progress: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            last_ts: AtomicI64::new(0),
            pause_at: AtomicI64::new(i64::MAX),
            strategy_bars: CachePadded::new(AtomicU64::new(0)),
            flows: ArrayQueue::new(QUEUE_CAP),
            plots: ArrayQueue::new(QUEUE_CAP),
            flow_drops: AtomicU64::new(0),
            plot_drops: AtomicU64::new(0),
            done: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            gauges: RunGauges::default(),
        })
    }
    /// The replay speed.
    pub fn speed(&self) -> Speed {
        Speed::from_raw(self.speed.load(Relaxed))
    }
    /// Set the replay speed.
    pub fn set_speed(&self, s: Speed) {
        self.speed.store(s.raw(), Relaxed);
    }
    /// Bars released so far of stream `i`.
    pub fn progress(&self, i: usize) -> usize {
        self.progress.get(i).map_or(0, |p| p.load(Relaxed) as usize)
    }
    /// Let the replay run to its end unpaced (the window closed).
    pub fn release(&self) {
        self.set_speed(Speed::Max);
        self.paused.store(false, Relaxed);
        self.closed.store(true, Relaxed);
    }
    /// The next flow message, if any (the window's side).
    pub fn pop_flow(&self) -> Option<Flow> {
        self.flows.pop()
    }
    /// The next plot message, if any.
    pub fn pop_plot(&self) -> Option<PlotMsg> {
        self.plots.pop()
    }
    /// Copy the pipeline's counters (the run's monitor calls this).
    pub fn note_counters(&self, c: &engine::pipeline::Counters) {
        let g = &self.gauges;
        g.published.store(c.published.load(Relaxed), Relaxed);
        g.ring_full.store(c.ring_full.load(Relaxed), Relaxed);
        let q =
            c.full_shard_to_risk.load(Relaxed) + c.full_risk_to_shard.load(Relaxed) + c.full_to_recorder.load(Relaxed);
        g.queues_full.store(q, Relaxed);
        g.control_rejected.store(c.control_rejected.load(Relaxed), Relaxed);
    }
}

/// The flow observer: decisions, cancels and reports go to the window's queue (inputs do not);
/// never waits, a full queue drops the message and counts it. Once the window has closed it
/// takes nothing (the run goes on without it).
pub fn observe(live: &Live, f: &Flow) {
    if matches!(f.body, FlowBody::Input(_)) || live.closed.load(Relaxed) {
        return;
    }
    if live.flows.push(*f).is_err() {
        live.flow_drops.fetch_add(1, Relaxed);
    }
}

/// A replay source paced by the window (see the module docs).
#[derive(Debug)]
pub struct Paced<S> {
    inner: S,
    live: Arc<Live>,
    head: Option<Next>,
    released_ts: i64,
    interval_ns: i64,
    /// (wall time, event-time clock) when pacing (re)started.
    anchor: Option<(Instant, i64)>,
    /// Event time released so far with gaps cut to one bar.
    vclock: i64,
    speed_seen: Speed,
}

impl<S: Source> Paced<S> {
    /// Pace `inner` (bars of `interval_s` seconds, the shortest in the set) by `live`.
    pub fn new(inner: S, live: Arc<Live>, interval_s: u32) -> Self {
        let speed_seen = live.speed();
        Paced {
            inner,
            live,
            head: None,
            released_ts: i64::MIN,
            interval_ns: i64::from(interval_s.max(1)) * 1_000_000_000,
            anchor: None,
            vclock: 0,
            speed_seen,
        }
    }

    /// Hold `n` back for now.
    fn hold(&mut self, n: Next, wait: Duration) -> Next {
        self.head = Some(n);
        // A short nap: the sequencer comes back at once, and the ingress (hotkeys) is drained
        // between naps, so a held replay costs no core and delays a hotkey by at most this.
        std::thread::sleep(wait.min(Duration::from_millis(1)));
        Next::Idle
    }
}

impl<S: Source> Source for Paced<S> {
    #[inline]
    fn next(&mut self) -> Next {
        let n = match self.head.take() {
            Some(n) => n,
            None => self.inner.next(),
        };
        let Some(ts) = n.ts() else { return n };
        if ts > self.released_ts {
            let speed = self.live.speed();
            if speed != self.speed_seen {
                self.speed_seen = speed;
                self.anchor = None;
            }
            if ts > self.live.pause_at.load(Relaxed) {
                self.live.pause_at.store(i64::MAX, Relaxed);
                self.live.paused.store(true, Relaxed);
            }
            if self.live.paused.load(Relaxed) {
                self.anchor = None;
                if self.live.steps.load(Relaxed) == 0 {
                    return self.hold(n, Duration::from_millis(1));
                }
                self.live.steps.fetch_sub(1, Relaxed);
            } else if let Some(rate) = speed.bars_per_s() {
                let gap = if self.released_ts == i64::MIN { 0 } else { (ts - self.released_ts).min(self.interval_ns) };
                let now = Instant::now();
                let (t0, v0) = *self.anchor.get_or_insert((now, self.vclock));
                let due_v = self.vclock + gap;
                let secs = (due_v - v0) as f64 / (self.interval_ns as f64 * rate);
                let due = t0 + Duration::from_secs_f64(secs.max(0.0));
                if now < due {
                    return self.hold(n, due - now);
                }
                self.vclock = due_v;
            }
            self.released_ts = ts;
        }
        if let Next::BarRef { stream, index, .. } = n
            && let Some(p) = self.live.progress.get(stream as usize)
        {
            p.store(index + 1, Relaxed);
        }
        self.live.last_ts.store(ts, Relaxed);
        n
    }

    fn by_reference(&self) -> bool {
        self.inner.by_reference()
    }
}

/// A factory whose strategies publish their plots (see the module docs).
#[allow(missing_debug_implementations)] // holds the run's factory, which has no Debug
pub struct PlotTap<'a> {
    inner: &'a dyn StrategyFactory,
    live: Arc<Live>,
}

impl<'a> PlotTap<'a> {
    /// Wrap `inner`.
    pub fn new(inner: &'a dyn StrategyFactory, live: Arc<Live>) -> Self {
        PlotTap { inner, live }
    }
}

struct Tapped {
    inner: Box<dyn Strategy>,
    live: Arc<Live>,
    plot: Plot,
    bars: u32,
    /// The strategy has plotted something (its plots are worth counting when dropped).
    plots: bool,
}

const BLANK: PlotItem = PlotItem { name: "", style: PlotStyle::Line, px_e9: 0 };

impl Strategy for Tapped {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar) {
        self.inner.on_bar(ctx, bar);
        let idx = self.bars;
        self.bars += 1;
        self.live.strategy_bars.fetch_add(1, Relaxed);
        if self.live.plots.is_full() {
            // The window is behind: drop this bar's plots without computing them.
            if self.plots {
                self.live.plot_drops.fetch_add(1, Relaxed);
            }
            return;
        }
        self.plot.clear();
        self.inner.plot(&mut self.plot);
        let items = self.plot.items();
        if items.is_empty() {
            return;
        }
        self.plots = true;
        let mut m = PlotMsg { symbol: ctx.symbol(), idx, ts_ns: bar.ts_event_ns, n: 0, items: [BLANK; PLOT_ITEMS] };
        for (slot, it) in m.items.iter_mut().zip(items) {
            *slot = *it;
            m.n += 1;
        }
        if self.live.plots.push(m).is_err() {
            self.live.plot_drops.fetch_add(1, Relaxed);
        }
    }
    fn on_quote(&mut self, ctx: &mut Ctx<'_>, q: &Quote) {
        self.inner.on_quote(ctx, q);
    }
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        self.inner.on_trade(ctx, t);
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        self.inner.on_order(ctx, r);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        self.inner.on_timer(ctx);
    }
    fn wants_timer(&self) -> bool {
        self.inner.wants_timer()
    }
    fn plot(&self, out: &mut Plot) {
        self.inner.plot(out);
    }
}

impl StrategyFactory for PlotTap<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn build(&self, symbol: &str) -> Box<dyn Strategy> {
        Box::new(Tapped {
            inner: self.inner.build(symbol),
            live: self.live.clone(),
            plot: Plot::new(),
            bars: 0,
            plots: false,
        })
    }
}

/// Put plot message `m` into `overlays` (aligned with the chart's bars; grows as needed).
pub fn apply_plot(overlays: &mut Vec<Overlay>, m: &PlotMsg) {
    apply_plot_at(overlays, m, m.idx as usize);
}

/// Put plot message `m` into `overlays` at bar index `i`.
pub fn apply_plot_at(overlays: &mut Vec<Overlay>, m: &PlotMsg, i: usize) {
    for item in &m.items[..usize::from(m.n)] {
        let k = match overlays.iter().position(|o| o.name == item.name) {
            Some(k) => k,
            None => {
                overlays.push(Overlay { name: item.name.to_string(), style: item.style, values: Vec::new() });
                overlays.len() - 1
            }
        };
        let v = &mut overlays[k].values;
        if v.len() <= i {
            v.resize(i + 1, None);
        }
        v[i] = Some(item.px_e9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::pipeline::Script;
    use engine::records::{Event, EventKind};

    fn bar_ev(i: i64) -> Event {
        let b = Bar {
            ts_event_ns: i * 60_000_000_000,
            open_px_e9: 1,
            high_px_e9: 1,
            low_px_e9: 1,
            close_px_e9: 1,
            volume: 1,
        };
        Event::bar(SymbolId(0), &b, 60, (i + 1) * 60_000_000_000)
    }

    fn drain<S: Source>(p: &mut Paced<S>, tries: usize) -> usize {
        let mut got = 0;
        for _ in 0..tries {
            match p.next() {
                Next::Event(e) if e.kind == EventKind::Bar.raw() => got += 1,
                Next::End => break,
                _ => {}
            }
        }
        got
    }

    #[test]
    fn a_paused_replay_releases_one_bar_per_step_and_all_at_max() {
        let live = Live::new(1, Speed::Max, true);
        let mut p = Paced::new(Script::new((0..10).map(bar_ev)), live.clone(), 60);
        assert_eq!(drain(&mut p, 3), 0, "paused: nothing");
        live.steps.store(2, Relaxed);
        assert_eq!(drain(&mut p, 5), 2, "two steps: two bars");
        assert_eq!(live.steps.load(Relaxed), 0);
        assert_eq!(live.last_ts.load(Relaxed), 2 * 60_000_000_000);
        // Run until the bar ending at 5 minutes, then pause by itself.
        live.pause_at.store(5 * 60_000_000_000, Relaxed);
        live.paused.store(false, Relaxed);
        assert_eq!(drain(&mut p, 10), 3, "bars ending at 3, 4 and 5 minutes");
        assert!(live.paused.load(Relaxed));
        live.release();
        assert_eq!(drain(&mut p, 100), 5, "released: the rest at once");
    }

    #[test]
    fn plots_line_up_with_bars() {
        let mut ov = Vec::new();
        let mut m = PlotMsg { symbol: SymbolId(0), idx: 2, ts_ns: 0, n: 1, items: [BLANK; PLOT_ITEMS] };
        m.items[0] = PlotItem { name: "sma", style: PlotStyle::Line, px_e9: 5 };
        apply_plot(&mut ov, &m);
        assert_eq!(ov[0].values, vec![None, None, Some(5)]);
    }
}
