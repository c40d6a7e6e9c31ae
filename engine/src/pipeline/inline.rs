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
    shard_done: bool,
    /// The stage running now (an index into [`STAGES`]), for errors and the watchdog.
    stage: &'w AtomicU8,
    err: Option<PipelineError>,
}

impl<'s, 'w, F: FlowSink> Links<'s, 'w, F> {
    pub fn new(shard: Shard<'s>, sink: F, stage: &'w AtomicU8) -> Self {
        Links { q: Queues::default(), shard, sink, shard_done: false, stage, err: None }
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
    fn venue_done(&mut self, seq: u64, input: Input<'_>) {
        self.stage.store(SHARD, Ordering::Relaxed);
        self.shard_done = self.shard.handle(seq, input, &mut self.q);
        self.stage.store(RISK, Ordering::Relaxed);
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
    let bad = || {
        counters.bad_events.fetch_add(1, Ordering::Relaxed);
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(seqr, streams, stage, bad, |seq, input, pushed| {
            if let Some(p) = probe.as_mut() {
                // No ring here: "published" is when the sequencer handed the input over.
                let now = super::probes::metrics_clock_ns();
                p.record(super::probes::Stage::IngressWait, pushed, now);
                let slot = super::probes::Slot { published: now, origin: if pushed == 0 { now } else { pushed } };
                risk.set_slot(slot);
                links.set_slot(slot);
            }
            links.stage.store(RISK, Ordering::Relaxed);
            let done = risk.handle(seq, input, &mut links);
            if (seq + 1) & 0x3ff == 0 {
                counters.published.store(seq + 1, Ordering::Relaxed);
                if (seq + 1) & 0xffff == 0 {
                    monitor(counters);
                }
            }
            debug_assert_eq!(done, links.shard_done, "risk and the shard end on the same event");
            done || links.err.is_some()
        })
    }));
    match r {
        Ok(seq) => counters.published.store(seq, Ordering::Relaxed),
        Err(_) => {
            return Err(PipelineError::StagePanic(
                STAGES[usize::from(stage.load(Ordering::Relaxed)).min(2)].to_string(),
            ));
        }
    }
    if let Some(e) = links.err {
        return Err(e);
    }
    Ok(())
}

/// Take the sequencer's inputs in order until it ends or `each` returns true, resolving bar
/// references against `streams` (an unresolvable one calls `bad` and is skipped) and waiting
/// while it is idle. `each` gets every input with its sequence number and its ingress push stamp
/// (0 unless probes are on and it came from the ingress); returns the inputs taken.
#[inline]
fn drive<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    stage: &AtomicU8,
    mut bad: impl FnMut(),
    mut each: impl FnMut(u64, Input<'_>, u64) -> bool,
) -> u64 {
    let mut seq = 0u64;
    let mut idle = super::wait::Waiter::new(super::wait::Wait::Backoff);
    loop {
        stage.store(SEQUENCER, Ordering::Relaxed);
        let held;
        let input = match seqr.next() {
            Next::Event(ev) => {
                held = ev;
                Input::of(&held)
            }
            Next::BarRef { stream, index, .. } => match Input::of_ref(streams, u64::from(stream) << 48 | index) {
                Some(i) => i,
                None => {
                    bad();
                    continue;
                }
            },
            Next::Idle => {
                idle.wait();
                continue;
            }
            Next::End => return seq,
        };
        idle.reset();
        let stop = each(seq, input, seqr.take_pushed());
        seq += 1;
        if stop {
            return seq;
        }
    }
}

/// One run of a lock-step batch ([`run_lanes`]): its risk stage (with execution and the venue),
/// its shard and recorder (in the links) and its counters.
pub(crate) struct Lane<'s, 'w> {
    pub risk: RiskStage<'s>,
    pub links: Links<'s, 'w, Recorder<'s>>,
    pub counters: &'s Counters,
    pub done: bool,
}

impl FlowSink for Recorder<'_> {
    #[inline]
    fn flow(&mut self, f: Flow) -> Result<(), PipelineError> {
        self.on_flow(&f)
    }
}

impl<'s, F: FlowSink> Links<'s, '_, F> {
    /// The first error of the run and the sink, after the run.
    pub fn into_sink(self) -> (Option<PipelineError>, F) {
        (self.err, self.sink)
    }
}

/// Run several runs of the same inputs in lock step: each input is taken from the one sequencer
/// once and handled by every lane in turn, exactly as [`run`] would handle it for that lane
/// alone. A lane ends at its shutdown (all at the same input) or at its first error.
pub(crate) fn run_lanes<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    lanes: &mut [Lane<'_, '_>],
    stage: &AtomicU8,
) -> Result<(), PipelineError> {
    let mut live = lanes.len();
    // `bad` and `each` both need the lanes; `bad` only needs their counters (atomics).
    let counters: Vec<&Counters> = lanes.iter().map(|l| l.counters).collect();
    let bad = || {
        for c in &counters {
            c.bad_events.fetch_add(1, Ordering::Relaxed);
        }
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(seqr, streams, stage, bad, |seq, input, _| {
            stage.store(RISK, Ordering::Relaxed);
            for lane in lanes.iter_mut().filter(|l| !l.done) {
                if lane.risk.handle(seq, input, &mut lane.links) || lane.links.err.is_some() {
                    lane.done = true;
                    live -= 1;
                }
            }
            live == 0
        })
    }));
    match r {
        Ok(seq) => {
            for c in &counters {
                c.published.store(seq, Ordering::Relaxed);
            }
            Ok(())
        }
        Err(_) => Err(PipelineError::StagePanic(STAGES[usize::from(stage.load(Ordering::Relaxed)).min(2)].to_string())),
    }
}
