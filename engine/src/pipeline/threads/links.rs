//! How the threads topology's stages reach each other: the abort flag every wait watches, the
//! bounded-queue push that waits (never drops), a shard's side (its queues to and from risk and the
//! sync with risk's progress), risk's side (its queues to and from the shards, the wait for a
//! shard's progress, the recorder's queue), and the case where one shard runs on risk's thread.

use super::super::inline::{FlowSink, Links};
use super::super::messages::{Flow, RiskMsg, ShardMsg};
use super::super::probes::Occupancy;
use super::super::risk_stage::RiskLink;
use super::super::shard::ShardLink;
use super::super::source::Input;
use super::super::wait::{Wait, Waiter};
use super::super::{Counters, PipelineError};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Unwinds a stage out of a wait after another stage failed (not a panic of its own).
pub(super) struct Aborted;

/// The run-wide abort flag and the first error.
pub(super) struct Abort {
    pub(super) flag: AtomicBool,
    pub(super) error: Mutex<Option<PipelineError>>,
}

impl Abort {
    pub(super) fn set(&self, e: PipelineError) {
        let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
        self.flag.store(true, Ordering::Release);
    }
    #[inline]
    pub(super) fn check(&self) {
        if self.flag.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(Aborted));
        }
    }
}

/// Push to a bounded queue; when full, count it and wait for room (watching `abort`; `waiting`
/// tells the watchdog this stage is blocked by another, not stuck itself). With probes on, `occ`
/// keeps the queue's high-water mark.
#[inline]
pub(super) fn push_wait<T>(
    q: &ArrayQueue<T>,
    v: T,
    full: &AtomicU64,
    abort: &Abort,
    waiting: &AtomicBool,
    occ: Option<&Occupancy>,
) {
    if let Some(o) = occ {
        o.high(q.len() as u64 + 1);
    }
    let Err(mut v) = q.push(v) else { return };
    full.fetch_add(1, Ordering::Relaxed);
    waiting.store(true, Ordering::Relaxed);
    let mut w = Waiter::new(Wait::Backoff);
    loop {
        abort.check();
        w.wait();
        match q.push(v) {
            Ok(()) => break,
            Err(back) => v = back,
        }
    }
    waiting.store(false, Ordering::Relaxed);
}

pub(super) struct ShardSide<'a> {
    pub(super) to_risk: &'a ArrayQueue<RiskMsg>,
    pub(super) from_risk: &'a ArrayQueue<ShardMsg>,
    pub(super) held: VecDeque<ShardMsg>,
    pub(super) progress: &'a CachePadded<AtomicU64>,
    pub(super) venue_done: &'a CachePadded<AtomicU64>,
    pub(super) waiting: &'a AtomicBool,
    pub(super) counters: &'a Counters,
    /// The shard -> risk gauge (probes on).
    pub(super) occ: Option<&'a Occupancy>,
    pub(super) abort: &'a Abort,
    pub(super) waiter: Waiter,
    /// This event made the shard sync with risk (risk will wait for its intents next).
    pub(super) synced: bool,
}

impl ShardSide<'_> {
    /// Move arrived reports aside (keeps risk's queue to us moving while we wait or idle).
    pub(super) fn pump(&mut self) {
        while let Some(m) = self.from_risk.pop() {
            self.held.push_back(m);
        }
    }
}

impl ShardLink for ShardSide<'_> {
    #[inline]
    fn send(&mut self, m: RiskMsg) {
        push_wait(self.to_risk, m, &self.counters.full_shard_to_risk, self.abort, self.waiting, self.occ);
    }
    #[inline]
    fn recv(&mut self) -> Option<ShardMsg> {
        self.held.pop_front().or_else(|| self.from_risk.pop())
    }
    fn sync(&mut self, seq: u64) {
        self.synced = true;
        if self.venue_done.load(Ordering::Acquire) > seq {
            return;
        }
        // Risk needs our progress up to `seq` to get there.
        self.progress.store(seq, Ordering::Release);
        self.counters.shard_waits.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
        self.waiter.reset();
        while self.venue_done.load(Ordering::Acquire) <= seq {
            self.pump();
            self.abort.check();
            self.waiter.wait();
        }
        self.waiting.store(false, Ordering::Relaxed);
    }
}

/// Sentinel for "nothing held aside".
pub(super) const NONE: u64 = u64::MAX;

/// The recorder's queue as the place risk's decision flow goes (the shard-on-risk's-thread case).
pub(super) struct RecQueue<'a> {
    pub(super) q: &'a ArrayQueue<Flow>,
    pub(super) counters: &'a Counters,
    pub(super) occ: Option<&'a Occupancy>,
    pub(super) abort: &'a Abort,
    pub(super) waiting: &'a AtomicBool,
}

impl FlowSink for RecQueue<'_> {
    #[inline]
    fn flow(&mut self, f: Flow) -> Result<(), PipelineError> {
        push_wait(self.q, f, &self.counters.full_to_recorder, self.abort, self.waiting, self.occ);
        Ok(())
    }
}

/// Risk's links on its thread: to shard threads through queues, or to the one shard it runs
/// itself between its two phases (with one shard, a thread of its own would only hand every
/// order back and forth).
#[allow(clippy::large_enum_variant)] // one per run, matched on every call: no box to chase
pub(super) enum RiskThreadLink<'a, 's> {
    Split(RiskSide<'a>),
    Fused(Links<'s, 'a, RecQueue<'a>>),
}

impl RiskLink for RiskThreadLink<'_, '_> {
    #[inline]
    fn to_shard(&mut self, k: usize, m: ShardMsg) {
        match self {
            RiskThreadLink::Split(l) => l.to_shard(k, m),
            RiskThreadLink::Fused(l) => l.to_shard(k, m),
        }
    }
    #[inline]
    fn take_from_shard(&mut self, k: usize, seq: u64) -> Option<RiskMsg> {
        match self {
            RiskThreadLink::Split(l) => l.take_from_shard(k, seq),
            RiskThreadLink::Fused(l) => l.take_from_shard(k, seq),
        }
    }
    #[inline]
    fn flow(&mut self, f: Flow) {
        match self {
            RiskThreadLink::Split(l) => l.flow(f),
            RiskThreadLink::Fused(l) => l.flow(f),
        }
    }
    #[inline]
    fn venue_done(&mut self, seq: u64, input: Input<'_>) {
        match self {
            RiskThreadLink::Split(l) => l.venue_done(seq, input),
            RiskThreadLink::Fused(l) => l.venue_done(seq, input),
        }
    }
}

pub(super) struct RiskSide<'a> {
    pub(super) from_shards: &'a [ArrayQueue<RiskMsg>],
    pub(super) to_shards: &'a [ArrayQueue<ShardMsg>],
    pub(super) progress: &'a [CachePadded<AtomicU64>],
    pub(super) venue_done: &'a CachePadded<AtomicU64>,
    pub(super) to_rec: &'a ArrayQueue<Flow>,
    pub(super) waiting: &'a AtomicBool,
    pub(super) counters: &'a Counters,
    /// The risk -> shard and risk -> recorder gauges (probes on).
    pub(super) occ_to_shard: Option<&'a Occupancy>,
    pub(super) occ_to_rec: Option<&'a Occupancy>,
    pub(super) abort: &'a Abort,
    pub(super) waiter: Waiter,
    pub(super) seen: Vec<u64>,
    pub(super) look: Vec<Option<RiskMsg>>,
    pub(super) look_seq: Vec<u64>,
}

impl RiskSide<'_> {
    /// Wait until shard `k` has handled `seq` (events below its progress are done).
    #[inline]
    pub(super) fn wait_shard(&mut self, k: usize, seq: u64) {
        if self.seen[k] > seq {
            return;
        }
        self.seen[k] = self.progress[k].load(Ordering::Acquire);
        if self.seen[k] > seq {
            return;
        }
        self.counters.risk_waits.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
        self.waiter.reset();
        loop {
            self.seen[k] = self.progress[k].load(Ordering::Acquire);
            if self.seen[k] > seq {
                self.waiting.store(false, Ordering::Relaxed);
                return;
            }
            self.abort.check();
            self.waiter.wait();
        }
    }
}

impl RiskLink for RiskSide<'_> {
    #[inline]
    fn to_shard(&mut self, k: usize, m: ShardMsg) {
        push_wait(
            &self.to_shards[k],
            m,
            &self.counters.full_risk_to_shard,
            self.abort,
            self.waiting,
            self.occ_to_shard,
        );
    }
    #[inline]
    fn take_from_shard(&mut self, k: usize, seq: u64) -> Option<RiskMsg> {
        let held = self.look_seq[k];
        if held != NONE {
            if held > seq {
                return None;
            }
            self.look_seq[k] = NONE;
            return self.look[k].take();
        }
        self.wait_shard(k, seq);
        let m = self.from_shards[k].pop()?;
        if m.seq <= seq {
            Some(m)
        } else {
            self.look[k] = Some(m);
            self.look_seq[k] = m.seq;
            None
        }
    }
    #[inline]
    fn flow(&mut self, f: Flow) {
        push_wait(self.to_rec, f, &self.counters.full_to_recorder, self.abort, self.waiting, self.occ_to_rec);
    }
    #[inline]
    fn venue_done(&mut self, seq: u64, _input: Input<'_>) {
        self.venue_done.store(seq + 1, Ordering::Release);
    }
}
