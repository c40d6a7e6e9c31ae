//! Strict ordering and dedupe of bars: one [`BarGate`] per (symbol, interval), many in [`BarGates`].
//!
//! **When a window is final.** A bar's window `[start, start + interval)` is *final*, and its
//! latest version is released, as soon as either holds:
//! 1. the feed clock (`ts_recv_ns` of the bar being offered, or the `now` passed to
//!    [`BarGates::flush`]) reaches `start + interval + grace_ns`; or
//! 2. with [`GateConfig::release_on_later`], a bar for a later window of the same gate arrives.
//!
//! Until then a new version of the window replaces the pending one (`updated`), an identical one
//! is a `duplicate`. A new window earlier than one already pending (out of order within the
//! grace) is put back in order and counted in `reordered`. Windows are released in start order
//! and each at most once. A bar for a window
//! at or before the last released one is `late`: counted and reported, never re-released (an exact
//! copy of the last released bar counts as a `duplicate` instead). A released window that does
//! not follow the previous one directly is a gap (`gaps_seen`, `windows_missing`): normal for
//! minute bars, which exist only for minutes with trades.
//!
//! History bars (warm start, gap backfill) are final when they arrive: [`BarGates::offer_final`]
//! releases them at once, so a live bar for the same window later counts as a `duplicate` or
//! `late` and is never released twice.
//!
//! Call [`BarGates::flush`] on every timer tick so the last window of a quiet symbol is released
//! once its grace passes, and [`BarGates::drain`] at the end of a warm start or shutdown.

use crate::counters::FeedCounters;
use crate::msg::BarUpdate;
use engine::records::{Bar, Event, Interval, SymbolId};
use std::collections::BTreeMap;

/// When windows become final (see the [module docs](self) for the exact rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateConfig {
    /// How long after a window's end later versions are still accepted, ns. Longer catches more
    /// updated and out-of-order bars; shorter releases sooner.
    pub grace_ns: i64,
    /// Release every pending window as soon as a later window arrives (lowest latency when the
    /// feed is in order; an out-of-order earlier bar then counts as `late`).
    pub release_on_later: bool,
}

impl Default for GateConfig {
    /// 2 s grace, time-based release only.
    fn default() -> Self {
        GateConfig { grace_ns: 2_000_000_000, release_on_later: false }
    }
}

/// What happened to an offered bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// It opened a window not seen before.
    New,
    /// It replaced the pending version of its window.
    Updated,
    /// It was identical to the pending (or last released) version.
    Duplicate,
    /// Its window was already released (start of the last released window attached).
    Late {
        /// Start of the last released window, ns.
        released_through_ns: i64,
    },
}

/// A bar leaving the gate, final, in window order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasedBar {
    /// Symbol.
    pub symbol: SymbolId,
    /// Interval.
    pub interval: Interval,
    /// The last version received for the window.
    pub bar: Bar,
    /// When that version was received, ns (the event's receive time).
    pub ts_recv_ns: i64,
    /// When the gate released it (feed clock), ns.
    pub ts_release_ns: i64,
}

impl ReleasedBar {
    /// The engine event (receive time = when the released version arrived).
    pub fn event(&self) -> Event {
        Event::bar(self.symbol, &self.bar, self.interval.secs, self.ts_recv_ns)
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    bar: Bar,
    ts_recv_ns: i64,
}

/// Ordering and dedupe for one (symbol, interval).
#[derive(Clone, Debug)]
pub struct BarGate {
    symbol: SymbolId,
    interval: Interval,
    cfg: GateConfig,
    /// Pending windows, sorted by start (a handful at most).
    pending: Vec<Pending>,
    last_released: Option<Bar>,
    /// Waiting for history: nothing is released by time or by a later window.
    held: bool,
}

impl BarGate {
    /// An empty gate.
    pub fn new(symbol: SymbolId, interval: Interval, cfg: GateConfig) -> Self {
        BarGate { symbol, interval, cfg, pending: Vec::with_capacity(4), last_released: None, held: false }
    }

    /// Hold (or stop holding) the gate's releases while history for its symbol is awaited:
    /// while held, [`BarGate::offer`] and [`BarGate::flush`] only collect; [`BarGate::offer_final`]
    /// and [`BarGate::drain`] still release.
    pub fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// Start of the last released window.
    pub fn released_through_ns(&self) -> Option<i64> {
        self.last_released.map(|b| b.ts_event_ns)
    }

    /// Windows waiting to become final.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the earliest pending window becomes final by time (`None`: nothing pending, or held).
    pub fn next_final_ns(&self) -> Option<i64> {
        if self.held {
            return None;
        }
        let iv = self.interval.nanos().max(1);
        self.pending.first().map(|p| p.bar.ts_event_ns.saturating_add(iv).saturating_add(self.cfg.grace_ns))
    }

    /// Offer a version of a bar received at `ts_recv_ns`, then release what became final.
    /// A new window earlier than one already pending arrived out of order: it is put back in
    /// order and counted in `reordered`.
    pub fn offer(&mut self, bar: &Bar, ts_recv_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) -> Offer {
        let later_pending = self.pending.last().is_some_and(|p| p.bar.ts_event_ns > bar.ts_event_ns);
        let res = self.place(bar, ts_recv_ns, c);
        if res == Offer::New && later_pending {
            c.reordered += 1;
        }
        if self.held {
            return res;
        }
        if self.cfg.release_on_later {
            let n = self.pending.partition_point(|p| p.bar.ts_event_ns < bar.ts_event_ns);
            self.release(n, ts_recv_ns, c, out);
        }
        self.flush(ts_recv_ns, c, out);
        res
    }

    /// Offer a bar known to be final (history: warm start, gap backfill) received at
    /// `ts_recv_ns`: counted like [`BarGate::offer`] (`duplicate` or `late` at or before the last
    /// released window; else `updated`, `duplicate` or `new_windows` against the pending
    /// version), and unless behind the last release, released at once with every earlier
    /// pending window (in window order).
    pub fn offer_final(
        &mut self,
        bar: &Bar,
        ts_recv_ns: i64,
        c: &mut FeedCounters,
        out: &mut Vec<ReleasedBar>,
    ) -> Offer {
        let res = self.place(bar, ts_recv_ns, c);
        if !matches!(res, Offer::Late { .. }) {
            let n = self.pending.partition_point(|p| p.bar.ts_event_ns <= bar.ts_event_ns);
            self.release(n, ts_recv_ns, c, out);
        }
        res
    }

    /// Count a bar and keep it pending unless its window was already released.
    fn place(&mut self, bar: &Bar, ts_recv_ns: i64, c: &mut FeedCounters) -> Offer {
        let start = bar.ts_event_ns;
        match self.last_released {
            Some(last) if start <= last.ts_event_ns => {
                if last == *bar {
                    c.duplicates += 1;
                    Offer::Duplicate
                } else {
                    c.late += 1;
                    Offer::Late { released_through_ns: last.ts_event_ns }
                }
            }
            _ => match self.pending.binary_search_by_key(&start, |p| p.bar.ts_event_ns) {
                Ok(i) if self.pending[i].bar == *bar => {
                    c.duplicates += 1;
                    Offer::Duplicate
                }
                Ok(i) => {
                    self.pending[i] = Pending { bar: *bar, ts_recv_ns };
                    c.updated += 1;
                    Offer::Updated
                }
                Err(i) => {
                    self.pending.insert(i, Pending { bar: *bar, ts_recv_ns });
                    c.new_windows += 1;
                    Offer::New
                }
            },
        }
    }

    /// Release every window final at `now_ns`.
    pub fn flush(&mut self, now_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) {
        if self.held {
            return;
        }
        let iv = self.interval.nanos().max(1); // a zero interval must not divide by zero
        let grace = self.cfg.grace_ns;
        let n = self.pending.partition_point(|p| p.bar.ts_event_ns.saturating_add(iv).saturating_add(grace) <= now_ns);
        self.release(n, now_ns, c, out);
    }

    /// Release every pending window (end of a warm start, shutdown).
    pub fn drain(&mut self, now_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) {
        self.release(self.pending.len(), now_ns, c, out);
    }

    fn release(&mut self, n: usize, now_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) {
        if n == 0 {
            return;
        }
        let iv = self.interval.nanos().max(1); // a zero interval must not divide by zero
        for p in self.pending.drain(..n) {
            if let Some(last) = self.last_released {
                let step = p.bar.ts_event_ns - last.ts_event_ns;
                debug_assert!(step > 0, "windows are released in order");
                if step > iv {
                    c.gaps_seen += 1;
                    c.windows_missing += ((step - 1) / iv) as u64;
                }
            }
            c.released += 1;
            self.last_released = Some(p.bar);
            out.push(ReleasedBar {
                symbol: self.symbol,
                interval: self.interval,
                bar: p.bar,
                ts_recv_ns: p.ts_recv_ns,
                ts_release_ns: now_ns,
            });
        }
    }
}

/// One [`BarGate`] per (symbol, interval), created on first use, iterated in (symbol, interval)
/// order so flushes are deterministic.
///
/// **Order across symbols.** An offer whose receive time reaches the earliest time a pending
/// window of *any* gate becomes final first flushes every gate at that time, so windows final by
/// time leave in (window start, symbol, interval) order across symbols, not in the order their
/// gates happened to see a later bar. The earliest due time is kept, so this costs one compare
/// per offer until something is due.
#[derive(Clone, Debug, Default)]
pub struct BarGates {
    cfg: GateConfig,
    gates: BTreeMap<(SymbolId, u32), BarGate>,
    /// Symbols whose gates hold their releases (history awaited), also for gates made later.
    held: std::collections::BTreeSet<SymbolId>,
    /// No pending window is final by time before this (may be early: a flush recomputes it).
    due_ns: i64,
}

impl BarGates {
    /// Gates sharing one config.
    pub fn new(cfg: GateConfig) -> Self {
        BarGates { cfg, gates: BTreeMap::new(), held: Default::default(), due_ns: i64::MAX }
    }

    fn gate_mut(&mut self, symbol: SymbolId, interval: Interval) -> &mut BarGate {
        let (cfg, held) = (self.cfg, self.held.contains(&symbol));
        self.gates.entry((symbol, interval.secs)).or_insert_with(|| {
            let mut g = BarGate::new(symbol, interval, cfg);
            g.set_held(held);
            g
        })
    }

    /// Hold every gate of `symbol` (see [`BarGate::set_held`]) until [`BarGates::unhold`].
    pub fn hold(&mut self, symbol: SymbolId) {
        self.held.insert(symbol);
        for g in self.gates.range_mut((symbol, 0)..=(symbol, u32::MAX)).map(|(_, g)| g) {
            g.set_held(true);
        }
    }

    /// Stop holding `symbol`'s gates: windows already final leave at the next flush or offer.
    pub fn unhold(&mut self, symbol: SymbolId) {
        self.held.remove(&symbol);
        for g in self.gates.range_mut((symbol, 0)..=(symbol, u32::MAX)).map(|(_, g)| g) {
            g.set_held(false);
            if let Some(due) = g.next_final_ns() {
                self.due_ns = self.due_ns.min(due);
            }
        }
    }

    /// Offer a decoded bar (its receive time is the clock); released bars are appended to `out`.
    pub fn offer(&mut self, u: &BarUpdate, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) -> Offer {
        if u.ts_recv_ns >= self.due_ns {
            self.flush(u.ts_recv_ns, c, out);
        }
        let g = self.gate_mut(u.symbol, u.interval);
        let res = g.offer(&u.bar, u.ts_recv_ns, c, out);
        if let Some(due) = g.next_final_ns() {
            self.due_ns = self.due_ns.min(due);
        }
        res
    }

    fn recompute_due(&mut self) {
        self.due_ns = self.gates.values().filter_map(BarGate::next_final_ns).min().unwrap_or(i64::MAX);
    }

    /// Offer a final (history) bar received at `ts_recv_ns` to its gate: see
    /// [`BarGate::offer_final`]. Released bars are appended to `out` in window order.
    pub fn offer_final(
        &mut self,
        symbol: SymbolId,
        interval: Interval,
        bar: &Bar,
        ts_recv_ns: i64,
        c: &mut FeedCounters,
        out: &mut Vec<ReleasedBar>,
    ) -> Offer {
        self.gate_mut(symbol, interval).offer_final(bar, ts_recv_ns, c, out)
    }

    /// Release every window of every gate final at `now_ns`; what this call releases is appended
    /// to `out` ordered by (window start, symbol, interval).
    pub fn flush(&mut self, now_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) {
        let from = out.len();
        for g in self.gates.values_mut() {
            g.flush(now_ns, c, out);
        }
        out[from..].sort_by_key(|r| (r.bar.ts_event_ns, r.symbol, r.interval.secs));
        self.recompute_due();
    }

    /// Release everything pending, ordered like [`BarGates::flush`].
    pub fn drain(&mut self, now_ns: i64, c: &mut FeedCounters, out: &mut Vec<ReleasedBar>) {
        let from = out.len();
        for g in self.gates.values_mut() {
            g.drain(now_ns, c, out);
        }
        out[from..].sort_by_key(|r| (r.bar.ts_event_ns, r.symbol, r.interval.secs));
        self.due_ns = i64::MAX;
    }

    /// Forget a symbol's gates (it left the universe); its pending bars are dropped and returned
    /// as a count.
    pub fn remove_symbol(&mut self, symbol: SymbolId) -> usize {
        self.held.remove(&symbol);
        let keys: Vec<_> = self.gates.range((symbol, 0)..=(symbol, u32::MAX)).map(|(k, _)| *k).collect();
        keys.iter().filter_map(|k| self.gates.remove(k)).map(|g| g.pending()).sum()
    }

    /// The gate of (symbol, interval), if any bar created it.
    pub fn gate(&self, symbol: SymbolId, interval: Interval) -> Option<&BarGate> {
        self.gates.get(&(symbol, interval.secs))
    }

    /// Windows pending across all gates.
    pub fn pending(&self) -> usize {
        self.gates.values().map(BarGate::pending).sum()
    }
}
