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
use std::sync::atomic::Ordering;

#[derive(Default)]
struct Queues {
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

/// The event being handled, for the shard (bars in mapped files by reference, others copied).
enum Cur<'i> {
    Empty,
    Bar(Input<'i>),
    Event(crate::records::Event),
}

struct Links<'s, 'r, 'i> {
    q: Queues,
    shard: Shard<'s>,
    rec: &'r mut Recorder,
    input: Cur<'i>,
    shard_done: bool,
    stage: &'static str,
    err: Option<PipelineError>,
}

impl RiskLink for Links<'_, '_, '_> {
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
            && let Err(e) = self.rec.on_flow(&f)
        {
            self.err = Some(e);
        }
    }
    #[inline]
    fn venue_done(&mut self, seq: u64) {
        let input = match &self.input {
            Cur::Empty => return,
            Cur::Bar(i) => *i,
            Cur::Event(ev) => Input::of(ev),
        };
        self.stage = "shard";
        self.shard_done = self.shard.handle(seq, input, &mut self.q);
        self.stage = "risk";
        self.input = Cur::Empty;
    }
}

/// Run the stages inline until shutdown. Returns (interrupted, ticks).
pub(crate) fn run<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    shard: Shard<'_>,
    risk: &mut RiskStage<'_>,
    rec: &mut Recorder,
    counters: &Counters,
    monitor: &mut dyn FnMut(&Counters),
) -> Result<(), PipelineError> {
    let mut links =
        Links { q: Queues::default(), shard, rec, input: Cur::Empty, shard_done: false, stage: "sequencer", err: None };
    let mut seq = 0u64;
    let mut idle = super::wait::Waiter::new(super::wait::Wait::Backoff);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loop {
            links.stage = "sequencer";
            let held;
            let input = match seqr.next() {
                Next::Event(ev) => {
                    held = ev;
                    links.input = Cur::Event(ev);
                    Input::of(&held)
                }
                Next::BarRef { stream, index, .. } => match Input::of_ref(streams, u64::from(stream) << 48 | index) {
                    Some(i) => {
                        links.input = Cur::Bar(i);
                        i
                    }
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
            links.stage = "risk";
            let done = risk.handle(seq, input, &mut links);
            seq += 1;
            if seq & 0xffff == 0 {
                counters.published.store(seq, Ordering::Relaxed);
                monitor(counters);
            }
            debug_assert_eq!(done, links.shard_done, "risk and the shard end on the same event");
            if done || links.err.is_some() {
                break;
            }
        }
    }));
    counters.published.store(seq, Ordering::Relaxed);
    if r.is_err() {
        return Err(PipelineError::StagePanic(links.stage.to_string()));
    }
    if let Some(e) = links.err {
        return Err(e);
    }
    Ok(())
}
