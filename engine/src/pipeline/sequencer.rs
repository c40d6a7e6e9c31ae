//! The sequencer: takes every input (a replayed data set, scripted or live sources, the ingress
//! that feeds, the broker gateway, hotkeys and the universe manager push into) and clock ticks,
//! and gives each one place in one total order. The same code runs on the inline topology (one
//! call per input) and on its own thread in the `threads` topology.
//!
//! Order rules: the ingress is drained first (live inputs in arrival order); then time-ordered
//! sources by receive time (on a tie, scripted sources before the primary, so a symbol is added
//! before its first bar); a clock tick comes before the first input at or after its time.
//! After the end of every source (or a stop request) come `EndOfData` and `Shutdown`.

use super::source::{Next, Source};
use crate::records::{ControlKind, Event};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Pushes inputs into the sequencer from other threads: feeds, the broker gateway, hotkeys,
/// the universe manager. Cloning shares the queue. Nothing is ever dropped silently: a full
/// ingress either makes the sender wait ([`Ingress::push`]) or hands the event back with the
/// refusal counted ([`Ingress::try_push`]).
#[derive(Debug, Clone)]
pub struct Ingress {
    inner: Arc<IngressInner>,
}

#[derive(Debug)]
struct IngressInner {
    /// Each event with the time it was pushed ([`super::probes::metrics_clock_ns`]; 0 unless the
    /// run's probes are on). The stamp never reaches the ring or the journal.
    q: ArrayQueue<(Event, u64)>,
    rejected: AtomicU64,
    waits: AtomicU64,
    closed: AtomicBool,
    /// Stamp pushes and keep the high-water mark (probes on).
    stamping: AtomicBool,
    high: AtomicU64,
}

/// The ingress was full (or closed) and the event was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ingress full: the event was not taken (retry, or use Ingress::push to wait)")]
pub struct IngressFull(pub Event);

impl Ingress {
    /// An ingress with room for `cap` pending events.
    pub fn new(cap: usize) -> Self {
        Ingress {
            inner: Arc::new(IngressInner {
                q: ArrayQueue::new(cap.max(1)),
                rejected: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                stamping: AtomicBool::new(false),
                high: AtomicU64::new(0),
            }),
        }
    }

    /// The push stamp of an event (0 unless probes are on).
    #[inline]
    fn stamp(&self) -> u64 {
        if self.inner.stamping.load(Ordering::Relaxed) { super::probes::metrics_clock_ns() } else { 0 }
    }

    /// After a push: raise the high-water mark (probes on).
    #[inline]
    fn pushed(&self, at: u64) {
        if at != 0 {
            let n = self.inner.q.len() as u64;
            if n > self.inner.high.load(Ordering::Relaxed) {
                self.inner.high.fetch_max(n, Ordering::Relaxed);
            }
        }
    }

    /// Queue an event if there is room; when full, or when the run has ended (nothing would read
    /// it), the refusal is counted and the event handed back.
    pub fn try_push(&self, ev: Event) -> Result<(), IngressFull> {
        if self.inner.closed.load(Ordering::Relaxed) {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(IngressFull(ev));
        }
        let at = self.stamp();
        match self.inner.q.push((ev, at)) {
            Ok(()) => {
                self.pushed(at);
                Ok(())
            }
            Err((ev, _)) => {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                Err(IngressFull(ev))
            }
        }
    }

    /// Queue an event, waiting for room (backpressure) unless the run has ended, in which case
    /// the event is handed back (counted).
    pub fn push(&self, ev: Event) -> Result<(), IngressFull> {
        let mut ev = ev;
        let mut waited = false;
        let mut w = super::wait::Waiter::new(super::wait::Wait::Backoff);
        loop {
            if self.inner.closed.load(Ordering::Relaxed) {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(IngressFull(ev));
            }
            let at = self.stamp();
            match self.inner.q.push((ev, at)) {
                Ok(()) => {
                    self.pushed(at);
                    return Ok(());
                }
                Err((back, _)) => ev = back,
            }
            if !waited {
                waited = true;
                self.inner.waits.fetch_add(1, Ordering::Relaxed);
            }
            w.wait();
        }
    }

    /// True when no event fits right now (a sender holding a backlog can skip a `try_push`
    /// that would only be refused and counted).
    pub fn is_full(&self) -> bool {
        self.inner.q.is_full()
    }

    /// True once the run has ended and the sequencer no longer drains the ingress (a sender
    /// holding events back after a refused [`Ingress::try_push`] can stop retrying).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Events refused so far.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Times a sender had to wait for room.
    pub fn waits(&self) -> u64 {
        self.inner.waits.load(Ordering::Relaxed)
    }

    /// Events waiting now.
    pub fn len(&self) -> usize {
        self.inner.q.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.inner.q.is_empty()
    }

    /// The most events seen waiting at once (kept while the run's probes are on).
    pub fn high_water(&self) -> u64 {
        self.inner.high.load(Ordering::Relaxed)
    }

    /// Stamp each push with [`super::probes::metrics_clock_ns`] (the run's probes are on).
    pub(crate) fn set_stamping(&self, on: bool) {
        self.inner.stamping.store(on, Ordering::Relaxed);
    }

    /// The next event, if any. An empty `ArrayQueue::pop` issues a sequentially consistent fence
    /// (an `mfence` on x86) before it reads the tail; `is_empty` is two plain loads, and the
    /// sequencer finds the ingress empty before almost every input (`ringtape-bench empty-poll`
    /// measures both). An event pushed while we look is taken at the next call.
    #[inline]
    fn pop(&self) -> Option<(Event, u64)> {
        if self.inner.q.is_empty() {
            return None;
        }
        self.inner.q.pop()
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }
}

/// Where clock ticks come from.
#[derive(Clone, Copy)]
pub enum Clock<'a> {
    /// Event time: ticks at every `timer_ms` boundary that the inputs' receive times cross (one
    /// tick per gap: the last boundary at or before the next input). Backtests; never reads a clock.
    Event,
    /// The wall clock (live and paper runs): ticks as real time crosses each boundary. The
    /// function returns nanoseconds since the Unix epoch.
    Wall(&'a (dyn Fn() -> i64 + Sync)),
}

impl std::fmt::Debug for Clock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Event => "Event",
            Clock::Wall(_) => "Wall",
        })
    }
}

struct Peeked<S> {
    src: S,
    head: Option<Next>,
    done: bool,
}

impl<S: Source> Peeked<S> {
    fn new(src: S) -> Self {
        Peeked { src, head: None, done: false }
    }
    #[inline]
    fn fill(&mut self) {
        if self.head.is_none() && !self.done {
            match self.src.next() {
                Next::End => self.done = true,
                Next::Idle => {}
                n => self.head = Some(n),
            }
        }
    }
}

/// The sequencer's state. [`Sequencer::next`] yields one input at a time in the total order.
pub(crate) struct Sequencer<'a, S: Source> {
    primary: Peeked<S>,
    extra: Vec<Peeked<Box<dyn Source + 'a>>>,
    ingress: Option<Ingress>,
    stop: Option<&'a AtomicBool>,
    clock: Clock<'a>,
    period_ns: i64,
    next_boundary: i64,
    last_ts: i64,
    ended: bool,
    /// Ingress events taken in a row (a due wall tick goes next after [`INGRESS_RUN`]).
    ingress_run: u32,
    tail: u8,
    /// True when the input ended because of a stop request.
    pub interrupted: bool,
    /// Ticks emitted.
    pub ticks: u64,
    /// The push stamp of the last event taken from the ingress (see [`Sequencer::take_pushed`]).
    pushed_ns: u64,
}

/// Most ingress events the sequencer takes in a row while a wall tick is due.
const INGRESS_RUN: u32 = 64;

impl<'a, S: Source> Sequencer<'a, S> {
    pub fn new(
        primary: S,
        extra: Vec<Box<dyn Source + 'a>>,
        ingress: Option<Ingress>,
        stop: Option<&'a AtomicBool>,
        clock: Clock<'a>,
        timer_ms: u64,
    ) -> Self {
        Sequencer {
            primary: Peeked::new(primary),
            extra: extra.into_iter().map(Peeked::new).collect(),
            ingress,
            stop,
            clock,
            period_ns: i64::try_from(timer_ms).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000),
            next_boundary: i64::MIN,
            last_ts: 0,
            ended: false,
            ingress_run: 0,
            tail: 0,
            interrupted: false,
            ticks: 0,
            pushed_ns: 0,
        }
    }

    /// The push stamp of the input [`Sequencer::next`] just returned if it came from the ingress
    /// stamped (probes on), else 0. Only a caller with probes on asks; the replay path never does.
    #[inline]
    pub fn take_pushed(&mut self) -> u64 {
        std::mem::take(&mut self.pushed_ns)
    }

    /// A tick at the last boundary at or before `ts`, if it is past the last tick. One compare
    /// while time stays before the next boundary.
    #[inline]
    fn tick_before(&mut self, ts: i64) -> Option<Event> {
        if self.period_ns <= 0 || ts < self.next_boundary {
            return None;
        }
        let boundary = ts.div_euclid(self.period_ns) * self.period_ns;
        self.next_boundary = boundary.saturating_add(self.period_ns);
        self.ticks += 1;
        Some(Event::timer(boundary, false))
    }

    /// The next input in the total order.
    #[inline]
    pub fn next(&mut self) -> Next {
        if self.ended {
            return self.tail();
        }
        if let Some(stop) = self.stop
            && stop.load(Ordering::Relaxed)
        {
            self.interrupted = true;
            return self.end();
        }
        // Live inputs waiting in the ingress go before a wall tick (what was pushed before the
        // run started, e.g. a broker's reconcile, is in before the first tick), but a due tick
        // gets its turn after at most INGRESS_RUN of them; neither can starve the other, even
        // with a clock that passes a boundary at every call (a market replayed at high speed).
        if self.ingress_run < INGRESS_RUN
            && let Some(ing) = &self.ingress
            && let Some((ev, at)) = ing.pop()
        {
            self.ingress_run += 1;
            self.pushed_ns = at;
            self.note(&Next::Event(ev));
            return Next::Event(ev);
        }
        self.ingress_run = 0;
        if let Clock::Wall(now) = self.clock
            && self.period_ns > 0
        {
            let t = now();
            if let Some(tick) = self.tick_before(t) {
                let mut tick = tick;
                tick.payload[1] = 1;
                return Next::Event(tick);
            }
        }
        if let Some(ing) = &self.ingress
            && let Some((ev, at)) = ing.pop()
        {
            self.ingress_run = 1;
            self.pushed_ns = at;
            self.note(&Next::Event(ev));
            return Next::Event(ev);
        }
        if self.extra.is_empty() {
            return self.next_primary();
        }
        // The earliest head among the time-ordered sources; scripted sources win ties.
        let mut best: Option<(i64, usize)> = None;
        let mut pending = false;
        for (i, p) in self.extra.iter_mut().enumerate() {
            p.fill();
            pending |= !p.done;
            if let Some(ts) = p.head.as_ref().and_then(Next::ts)
                && best.is_none_or(|(b, _)| ts < b)
            {
                best = Some((ts, i));
            }
        }
        self.primary.fill();
        pending |= !self.primary.done;
        let n = self.extra.len();
        if let Some(ts) = self.primary.head.as_ref().and_then(Next::ts)
            && best.is_none_or(|(b, _)| ts < b)
        {
            best = Some((ts, n));
        }
        let Some((ts, i)) = best else {
            if pending {
                return Next::Idle;
            }
            return self.end();
        };
        if matches!(self.clock, Clock::Event)
            && let Some(tick) = self.tick_before(ts)
        {
            return Next::Event(tick);
        }
        let head = if i == n { self.primary.head.take() } else { self.extra[i].head.take() };
        let head = head.unwrap_or(Next::Idle);
        self.note(&head);
        head
    }

    /// The common case, one time-ordered source: no peeking unless a tick comes first.
    #[inline]
    fn next_primary(&mut self) -> Next {
        let n = match self.primary.head.take() {
            Some(n) => n,
            None if self.primary.done => return self.end(),
            None => match self.primary.src.next() {
                Next::End => {
                    self.primary.done = true;
                    return self.end();
                }
                n => n,
            },
        };
        let ts = match &n {
            Next::BarRef { ts_recv_ns, .. } => *ts_recv_ns,
            Next::Event(e) => e.ts_recv_ns,
            Next::Idle | Next::End => return n,
        };
        if matches!(self.clock, Clock::Event)
            && let Some(tick) = self.tick_before(ts)
        {
            self.primary.head = Some(n);
            return Next::Event(tick);
        }
        self.note(&n);
        n
    }

    /// The end of data takes the time of the last input, not of a tick: ticks are either made
    /// here again (event time) or replayed from a journal (wall clock), and the end must be the
    /// same both ways.
    #[inline]
    fn note(&mut self, n: &Next) {
        let ts = match n {
            Next::BarRef { ts_recv_ns, .. } => *ts_recv_ns,
            Next::Event(e) if e.kind != crate::records::EventKind::Timer as u8 => e.ts_recv_ns,
            _ => return,
        };
        if ts > self.last_ts {
            self.last_ts = ts;
        }
    }

    fn end(&mut self) -> Next {
        // A stop may arrive while the last source ends (a feed that saw the same stop flag):
        // the run was still interrupted.
        if self.stop.is_some_and(|f| f.load(Ordering::Relaxed)) {
            self.interrupted = true;
        } else if let Some((ev, at)) = self.ingress.as_ref().and_then(Ingress::pop) {
            // Sources ended: what is still in the ingress (pushed after it was last looked at,
            // before its pushers finished) comes first.
            self.pushed_ns = at;
            self.note(&Next::Event(ev));
            return Next::Event(ev);
        }
        self.ended = true;
        if let Some(ing) = &self.ingress {
            ing.close();
        }
        self.tail()
    }

    fn tail(&mut self) -> Next {
        self.tail = self.tail.saturating_add(1);
        match self.tail {
            1 => Next::Event(Event::control(ControlKind::EndOfData, self.last_ts, [0; 4])),
            2 => Next::Event(Event::control(ControlKind::Shutdown, self.last_ts, [0; 4])),
            _ => Next::End,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::source::Script;
    use crate::records::{Bar, EventKind, SymbolId};

    fn bar_at(s: u32, end_s: i64) -> Event {
        let b = Bar {
            ts_event_ns: (end_s - 60) * 1_000_000_000,
            open_px_e9: 1,
            high_px_e9: 1,
            low_px_e9: 1,
            close_px_e9: 1,
            volume: 0,
        };
        Event::bar(SymbolId(s), &b, 60, end_s * 1_000_000_000)
    }

    fn drain(mut s: Sequencer<'_, Script>) -> Vec<(u8, i64)> {
        let mut out = Vec::new();
        loop {
            match s.next() {
                Next::Event(e) => out.push((e.kind, e.ts_recv_ns / 1_000_000_000)),
                Next::End => return out,
                Next::Idle | Next::BarRef { .. } => unreachable!(),
            }
        }
    }

    #[test]
    fn merges_sources_by_time_with_ticks_and_an_end() {
        let bars = Script::new([bar_at(0, 60), bar_at(1, 60), bar_at(0, 180)]);
        let ctl = Script::new([
            Event::add_symbol(SymbolId(1), "B", 60_000_000_000),
            Event::control(ControlKind::SessionStart, 120_000_000_000, [0; 4]),
        ]);
        let seq = Sequencer::new(bars, vec![Box::new(ctl)], None, None, Clock::Event, 60_000);
        let (t, b, c) = (EventKind::Timer.raw(), EventKind::Bar.raw(), EventKind::Control.raw());
        assert_eq!(
            drain(seq),
            vec![(t, 60), (c, 60), (b, 60), (b, 60), (t, 120), (c, 120), (t, 180), (b, 180), (c, 180), (c, 180)]
        );
    }

    /// A primary source that pushes into the ingress on its last call, as a feed thread does just
    /// before it finishes, then ends.
    struct PushThenEnd(Ingress, Vec<Event>);
    impl Source for PushThenEnd {
        fn next(&mut self) -> Next {
            for ev in self.1.drain(..) {
                self.0.try_push(ev).unwrap();
            }
            Next::End
        }
    }

    #[test]
    fn what_reaches_the_ingress_before_the_sources_end_is_taken_before_the_end() {
        let ing = Ingress::new(8);
        let src = PushThenEnd(ing.clone(), vec![bar_at(0, 60), bar_at(0, 120)]);
        let mut seq = Sequencer::new(src, Vec::new(), Some(ing.clone()), None, Clock::Event, 0);
        let mut kinds = Vec::new();
        while let Next::Event(e) = seq.next() {
            kinds.push((e.kind, e.ts_recv_ns / 1_000_000_000));
        }
        let (b, c) = (EventKind::Bar.raw(), EventKind::Control.raw());
        assert_eq!(kinds, vec![(b, 60), (b, 120), (c, 120), (c, 120)], "both bars, then EndOfData and Shutdown");
        assert_eq!(ing.try_push(bar_at(0, 180)).map_err(|_| ()), Err(()), "closed after the end");
    }

    #[test]
    fn a_stop_request_ends_the_input_and_says_so() {
        let stop = AtomicBool::new(false);
        let mut seq = Sequencer::new(
            Script::new([bar_at(0, 60), bar_at(0, 120)]),
            Vec::new(),
            None,
            Some(&stop),
            Clock::Event,
            0,
        );
        assert!(matches!(seq.next(), Next::Event(e) if e.kind == EventKind::Bar.raw()));
        stop.store(true, Ordering::Relaxed);
        let rest: Vec<u8> = std::iter::from_fn(|| match seq.next() {
            Next::Event(e) => Some(e.kind),
            _ => None,
        })
        .collect();
        assert_eq!(rest, vec![EventKind::Control.raw(), EventKind::Control.raw()]);
        assert!(seq.interrupted);
    }

    #[test]
    fn a_full_ingress_hands_the_event_back_and_counts_it() {
        let ing = Ingress::new(2);
        let ev = Event::control(ControlKind::SessionStart, 1, [0; 4]);
        assert!(ing.try_push(ev).is_ok());
        assert!(ing.try_push(ev).is_ok());
        assert_eq!(ing.try_push(ev), Err(IngressFull(ev)));
        assert_eq!(ing.rejected(), 1);
        ing.close();
        assert!(ing.push(ev).is_err(), "a closed, full ingress refuses instead of waiting forever");
    }
}
