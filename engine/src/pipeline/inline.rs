//! The `inline` topology: the same stage code (sequencer, shard, risk with execution, recorder)
//! called in order on the calling thread. No rings, no threads, no per-run buffers beyond what
//! the stages keep: right for backtests, Monte Carlo and sweeps, where one run per core beats one
//! run spread over cores that time-share.
//!
//! Risk calls [`RiskLink::venue_done`] once per event, between its market-data phase and the
//! intents phase; here that call runs the shard on the event, which is exactly the order the
//! threads topology enforces with its waits.

use super::messages::{Flow, RiskMsg, ShardMsg};
use super::recorder::Recorder;
use super::risk_stage::{RiskLink, RiskStage};
use super::sequencer::Sequencer;
use super::shard::{Shard, ShardLink};
use super::source::{Input, Next, Source, StreamRef};
use super::{Counters, PipelineError};
use crate::records::{Bar, Event, SymbolId};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[derive(Default)]
pub(crate) struct Queues {
    to_risk: VecDeque<RiskMsg>,
    to_shard: VecDeque<ShardMsg>,
}

impl ShardLink for Queues {
    #[inline]
    fn send(&mut self, m: RiskMsg) {
        self.to_risk.push_back(m);
    }
    #[inline]
    fn recv(&mut self) -> Option<ShardMsg> {
        self.to_shard.pop_front()
    }
    #[inline]
    fn sync(&mut self, _seq: u64) {}
}

/// The event being handled, kept for the shard (a 48-byte copy of a bar, or the event).
enum Cur {
    Empty,
    Bar { symbol: SymbolId, bar: Bar, interval_s: u32, ts_recv: i64 },
    Event(Event),
}

/// Where risk's decision flow goes: the recorder itself (inline), or its queue (threads).
pub(crate) trait FlowSink {
    fn flow(&mut self, f: Flow) -> Result<(), PipelineError>;
}

impl FlowSink for &mut Recorder<'_> {
    #[inline]
    fn flow(&mut self, f: Flow) -> Result<(), PipelineError> {
        self.on_flow(&f)
    }
}

/// Risk's links when the shard runs on risk's own thread: messages are plain queues, and
/// [`RiskLink::venue_done`] runs the shard on the event in between risk's two phases.
pub(crate) struct Links<'s, 'w, F: FlowSink> {
    q: Queues,
    shard: Shard<'s>,
    sink: F,
    input: Cur,
    shard_done: bool,
    /// The stage running now (an index into [`STAGES`]), for errors and the watchdog.
    stage: &'w AtomicU8,
    err: Option<PipelineError>,
}

impl<'s, 'w, F: FlowSink> Links<'s, 'w, F> {
    pub fn new(shard: Shard<'s>, sink: F, stage: &'w AtomicU8) -> Self {
        Links { q: Queues::default(), shard, sink, input: Cur::Empty, shard_done: false, stage, err: None }
    }

    /// The stamps of the event handled next, for the shard's probes (probes on).
    #[inline]
    pub fn set_slot(&mut self, slot: super::probes::Slot) {
        self.shard.set_slot(slot);
    }

    /// Nothing to do: the shard merges pending latency samples without waiting.
    #[inline]
    pub fn probe_idle(&mut self) {
        self.shard.probe_idle();
    }

    /// The event risk is about to handle (the shard gets it at `venue_done`).
    #[inline]
    pub fn set_input(&mut self, input: Input<'_>) {
        self.input = match input {
            Input::Bar { symbol, bar, interval_s, ts_recv } => Cur::Bar { symbol, bar: *bar, interval_s, ts_recv },
            Input::Event(ev) => Cur::Event(*ev),
        };
    }
}

/// What the watchdog calls when the run stops moving.
type OnStuck<'a> = dyn Fn(&PipelineError) + Sync + 'a;

/// Stage names by [`Links::stage`] code.
const STAGES: [&str; 3] = ["sequencer", "risk", "shard"];
const SEQUENCER: u8 = 0;
const RISK: u8 = 1;
const SHARD: u8 = 2;

impl<F: FlowSink> RiskLink for Links<'_, '_, F> {
    #[inline]
    fn to_shard(&mut self, _k: usize, m: ShardMsg) {
        self.q.to_shard.push_back(m);
    }
    #[inline]
    fn take_from_shard(&mut self, _k: usize, seq: u64) -> Option<RiskMsg> {
        if self.q.to_risk.front().is_some_and(|m| m.seq <= seq) { self.q.to_risk.pop_front() } else { None }
    }
    #[inline]
    fn flow(&mut self, f: Flow) {
        if self.err.is_none()
            && let Err(e) = self.sink.flow(f)
        {
            self.err = Some(e);
        }
    }
    #[inline]
    fn venue_done(&mut self, seq: u64) {
        let input = match &self.input {
            Cur::Empty => return,
            &Cur::Bar { symbol, ref bar, interval_s, ts_recv } => Input::Bar { symbol, bar, interval_s, ts_recv },
            Cur::Event(ev) => Input::of(ev),
        };
        self.stage.store(SHARD, Ordering::Relaxed);
        self.shard_done = self.shard.handle(seq, input, &mut self.q);
        self.stage.store(RISK, Ordering::Relaxed);
        self.input = Cur::Empty;
    }
}

/// Run the stages inline until shutdown. With `on_stuck` and a stall timeout, a watchdog thread
/// hands a run that stops moving (a strategy in an endless loop) to `on_stuck`; otherwise no
/// thread is started.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    shard: Shard<'_>,
    risk: &mut RiskStage<'_>,
    rec: &mut Recorder<'_>,
    counters: &Counters,
    monitor: &mut dyn FnMut(&Counters),
    watchdog: Option<(&OnStuck<'_>, u64)>,
) -> Result<(), PipelineError> {
    let stage = AtomicU8::new(SEQUENCER);
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some((on_stuck, stall_ms)) = watchdog.filter(|(_, ms)| *ms > 0) {
            let (stage, finished) = (&stage, &finished);
            std::thread::Builder::new()
                .name("rt-watchdog".into())
                .spawn_scoped(s, move || watch(counters, stage, finished, on_stuck, stall_ms))
                .expect("spawn the watchdog thread");
        }
        let r = run_loop(seqr, streams, shard, risk, rec, counters, monitor, &stage);
        finished.store(true, Ordering::Release);
        r
    })
}

/// Reports a run whose progress has not moved for `stall_ms`, once.
fn watch(counters: &Counters, stage: &AtomicU8, finished: &AtomicBool, on_stuck: &OnStuck, stall_ms: u64) {
    #[allow(clippy::disallowed_methods)] // watchdog time, not strategy time
    let now = std::time::Instant::now;
    let mut last = (counters.published.load(Ordering::Relaxed), now());
    while !finished.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let p = counters.published.load(Ordering::Relaxed);
        if p != last.0 {
            last = (p, now());
        } else if last.1.elapsed().as_millis() > u128::from(stall_ms) {
            let name = STAGES[usize::from(stage.load(Ordering::Relaxed)).min(2)];
            on_stuck(&PipelineError::StageStuck { stage: name.into(), seq: p, secs: last.1.elapsed().as_secs_f64() });
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_loop<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    shard: Shard<'_>,
    risk: &mut RiskStage<'_>,
    rec: &mut Recorder<'_>,
    counters: &Counters,
    monitor: &mut dyn FnMut(&Counters),
    stage: &AtomicU8,
) -> Result<(), PipelineError> {
    let mut links = Links::new(shard, rec, stage);
    let mut probe = counters.probes.local();
    let mut seq = 0u64;
    let mut idle = super::wait::Waiter::new(super::wait::Wait::Backoff);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loop {
            links.stage.store(SEQUENCER, Ordering::Relaxed);
            let held;
            let input = match seqr.next() {
                Next::Event(ev) => {
                    held = ev;
                    Input::of(&held)
                }
                Next::BarRef { stream, index, .. } => match Input::of_ref(streams, u64::from(stream) << 48 | index) {
                    Some(i) => i,
                    None => {
                        counters.bad_events.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
                Next::Idle => {
                    idle.wait();
                    continue;
                }
                Next::End => break,
            };
            idle.reset();
            if let Some(p) = probe.as_mut() {
                // No ring here: "published" is when the sequencer handed the input over.
                let now = super::probes::metrics_clock_ns();
                let pushed = seqr.take_pushed();
                p.record(super::probes::Stage::IngressWait, pushed, now);
                let slot = super::probes::Slot { published: now, origin: if pushed == 0 { now } else { pushed } };
                risk.set_slot(slot);
                links.set_slot(slot);
            }
            links.set_input(input);
            links.stage.store(RISK, Ordering::Relaxed);
            let done = risk.handle(seq, input, &mut links);
            seq += 1;
            if seq & 0x3ff == 0 {
                counters.published.store(seq, Ordering::Relaxed);
                if seq & 0xffff == 0 {
                    monitor(counters);
                }
            }
            debug_assert_eq!(done, links.shard_done, "risk and the shard end on the same event");
            if done || links.err.is_some() {
                break;
            }
        }
    }));
    counters.published.store(seq, Ordering::Relaxed);
    if r.is_err() {
        return Err(PipelineError::StagePanic(STAGES[usize::from(stage.load(Ordering::Relaxed)).min(2)].to_string()));
    }
    if let Some(e) = links.err {
        return Err(e);
    }
    Ok(())
}
