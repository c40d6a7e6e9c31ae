//! The threads that read what others publish: every shard and risk read the sequencer's ring
//! through one loop ([`consume`], with a [`RingReader`] per kind of stage), and the recorder reads
//! risk's queue.

use super::super::Counters;
use super::super::messages::Flow;
use super::super::probes::Slot;
use super::super::recorder::Recorder;
use super::super::risk_stage::RiskStage;
use super::super::shard::Shard;
use super::super::source::{Input, StreamRef, expand};
use super::super::wait::{Wait, Waiter};
use super::links::{Abort, RiskThreadLink, ShardSide};
use super::{BATCH, RingProbe};
use crate::records::Event;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use disruptor::Polling;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The ring type every consumer polls (the pollers all depend on the single producer).
pub(super) type Poller = disruptor::EventPoller<Event, disruptor::SingleProducerBarrier>;

/// What a thread reading the ring does with what it takes ([`consume`] runs the loop).
pub(super) trait RingReader {
    /// The probes' stamps of the slot about to be handled (probes on).
    fn slot(&mut self, slot: Slot);
    /// Handle input `q`; true after shutdown.
    fn input(&mut self, q: u64, input: Input<'_>) -> bool;
    /// Every input before `seq` is handled (after each batch).
    fn progress(&mut self, seq: u64);
    /// Shutdown was handled at `seq`, with `bad` unresolvable bar references on the way.
    fn finished(&mut self, seq: u64, bad: u64);
    /// Nothing to take: pump queues, merge probes (the loop then checks the abort flag and waits).
    fn idle(&mut self);
}

/// Read the ring until shutdown: every slot's inputs in sequence to `r`. `consumer` is the
/// reader's index in the probes' consumed counters (shards, then risk).
#[allow(clippy::too_many_arguments)]
pub(super) fn consume(
    r: &mut impl RingReader,
    poller: &mut Poller,
    streams: &[StreamRef<'_>],
    ring: &RingProbe,
    consumer: usize,
    hot: Wait,
    abort: &Abort,
) {
    let mut seq = 0u64;
    let mut idle = Waiter::new(hot);
    let mut bad = 0u64;
    // Ring slots taken (probes on: each slot's stamps are read while it is held).
    let mut pos = 0u64;
    loop {
        match poller.take(BATCH) {
            Ok(mut guard) => {
                idle.reset();
                for ev in &mut guard {
                    let mut done = false;
                    if ring.stamps.on() {
                        r.slot(ring.stamps.read(pos));
                        pos += 1;
                    }
                    seq += expand(ev, seq, streams, &mut bad, |q, input| done |= r.input(q, input));
                    if done {
                        r.finished(seq, bad);
                        return;
                    }
                }
                r.progress(seq);
                if ring.stamps.on() {
                    ring.consumed[consumer].store(pos, Ordering::Relaxed);
                }
            }
            Err(Polling::NoEvents) => {
                r.idle();
                abort.check();
                idle.wait();
            }
            Err(Polling::Shutdown) => return,
        }
    }
}

/// A shard's thread: its strategies, and how far it got for risk.
pub(super) struct ShardReader<'s, 'a> {
    pub(super) sh: Shard<'s>,
    pub(super) side: ShardSide<'a>,
}

impl RingReader for ShardReader<'_, '_> {
    fn slot(&mut self, slot: Slot) {
        self.sh.set_slot(slot);
    }
    #[inline]
    fn input(&mut self, q: u64, input: Input<'_>) -> bool {
        let done = self.sh.handle(q, input, &mut self.side);
        if self.side.synced {
            // Risk is waiting for this event's intents: say at once that they are all sent, not
            // at the end of the batch.
            self.side.synced = false;
            self.side.progress.store(q + 1, Ordering::Release);
        }
        done
    }
    fn progress(&mut self, seq: u64) {
        self.side.progress.store(seq, Ordering::Release);
    }
    fn finished(&mut self, seq: u64, _bad: u64) {
        self.side.progress.store(seq, Ordering::Release);
    }
    fn idle(&mut self) {
        self.side.pump();
        self.sh.probe_idle();
    }
}

/// Risk's thread (with the only shard, when there is one).
pub(super) struct RiskReader<'r, 'rs, 'a, 'sh> {
    pub(super) risk: &'r mut RiskStage<'rs>,
    pub(super) link: RiskThreadLink<'a, 'sh>,
    pub(super) counters: &'a Counters,
    /// Set once risk has handled shutdown (the recorder stops after it).
    pub(super) finished: &'a AtomicBool,
    /// How far risk got (the watchdog reads it).
    pub(super) done: &'a CachePadded<AtomicU64>,
}

impl RingReader for RiskReader<'_, '_, '_, '_> {
    fn slot(&mut self, slot: Slot) {
        self.risk.set_slot(slot);
        if let RiskThreadLink::Fused(l) = &mut self.link {
            l.set_slot(slot);
        }
    }
    #[inline]
    fn input(&mut self, q: u64, input: Input<'_>) -> bool {
        self.risk.handle(q, input, &mut self.link)
    }
    fn progress(&mut self, seq: u64) {
        self.done.store(seq, Ordering::Relaxed);
    }
    fn finished(&mut self, _seq: u64, bad: u64) {
        self.counters.bad_events.fetch_add(bad, Ordering::Relaxed);
        self.finished.store(true, Ordering::Release);
    }
    fn idle(&mut self) {
        self.risk.probe_idle();
        if let RiskThreadLink::Fused(l) = &mut self.link {
            l.probe_idle();
        }
    }
}

/// The recorder's thread: the decision flow into positions and the journal, until risk has
/// finished and the queue is empty.
pub(super) fn recorder_loop(
    rec: &mut Recorder<'_>,
    to_rec: &ArrayQueue<Flow>,
    recorded: &AtomicU64,
    risk_finished: &AtomicBool,
    cold: Wait,
    abort: &Abort,
) {
    let mut w = Waiter::new(cold);
    loop {
        match to_rec.pop() {
            Some(f) => {
                w.reset();
                if let Err(e) = rec.on_flow(&f) {
                    abort.set(e);
                    return;
                }
                recorded.fetch_add(1, Ordering::Relaxed);
            }
            None if risk_finished.load(Ordering::Acquire) && to_rec.is_empty() => return,
            None => {
                abort.check();
                w.wait();
            }
        }
    }
}
