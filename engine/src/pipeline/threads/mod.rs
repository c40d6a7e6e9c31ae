//! The `threads` topology: the sequencer, each shard, risk (with execution) and the recorder on
//! their own threads, spawned here and only here, named `rt-*` and pinned from the config's core
//! map. With one shard, the shard runs on risk's thread between risk's two phases (as inline):
//! a thread of its own would hand every order back and forth. The sequencer publishes on a single-producer `disruptor` ring read by every shard and by
//! risk; shard <-> risk and risk -> recorder messages go through bounded `crossbeam` queues.
//!
//! - Full ring or queue: the writer counts it and waits (nothing is dropped).
//! - Waits: a shard syncs with risk (waits for risk's market-data phase of an event) only for
//!   symbols with reports possibly in flight; risk waits for the owning shard to pass an event
//!   before taking its intents. Every wait also watches the abort flag.
//! - Failure: a stage that panics sets the abort flag with its name; every other stage leaves
//!   its wait and unwinds quietly, and the run returns the error. A stage that makes no progress
//!   for `stall_timeout_ms` while it has work is reported through the monitor the same way.
//! - Probes (when the run records them, see [`super::probes`]): the sequencer stamps each ring
//!   slot it fills (publish time, ingress push time) in a side array while it still owns the slot,
//!   and consumers read the stamps while they hold it; queue writers raise high-water marks; the
//!   watching thread samples every queue's depth each 20 ms.

use super::config::EngineConfig;
use super::inline::Links;
use super::messages::{Flow, RiskMsg, ShardMsg};
use super::probes::{Queue, RingStamps, Stage, metrics_clock_ns};
use super::recorder::Recorder;
use super::risk_stage::RiskStage;
use super::sequencer::Sequencer;
use super::shard::Shard;
use super::source::{Next, Source, StreamRef};
use super::wait::{Wait, Waiter};
use super::{Counters, PipelineError};
use crate::records::{Event, EventKind, MAX_BAR_REFS};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use disruptor::{BusySpin, Producer};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod links;
mod readers;

use links::{Abort, Aborted, NONE, RecQueue, RiskSide, RiskThreadLink, ShardSide};
use readers::{RiskReader, ShardReader, consume, recorder_loop};

const BATCH: u64 = 256;

struct Placement {
    sequencer: Option<core_affinity::CoreId>,
    shards: Vec<Option<core_affinity::CoreId>>,
    risk: Option<core_affinity::CoreId>,
    recorder: Option<core_affinity::CoreId>,
    hot: Wait,
    cold: Wait,
}

fn place(cfg: &EngineConfig) -> Placement {
    // Read the core list once, before anything is pinned: core_affinity only lists the cores the
    // calling thread may use.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let p = &cfg.pipeline;
    let find = |i: usize| cores.iter().copied().find(|c| c.id == i);
    let explicit = p.cores.sequencer.is_some() || !p.cores.shards.is_empty() || p.cores.risk.is_some();
    let hot_needed = 2 + p.shards;
    if p.pin && explicit {
        return Placement {
            sequencer: p.cores.sequencer.and_then(find),
            shards: (0..p.shards)
                .map(|i| p.cores.shards.get(i % p.cores.shards.len().max(1)).copied().and_then(find))
                .collect(),
            risk: p.cores.risk.and_then(find),
            recorder: p.cores.journal.or(p.cores.exec).and_then(find),
            hot: Wait::resolve(p.wait, false),
            cold: Wait::resolve(p.wait, false),
        };
    }
    if p.pin && cores.len() > hot_needed {
        let c = |i: usize| Some(cores[i]);
        return Placement {
            sequencer: c(0),
            shards: (0..p.shards).map(|i| c(1 + i)).collect(),
            risk: c(1 + p.shards),
            recorder: c(2 + p.shards),
            hot: Wait::resolve(p.wait, true),
            cold: Wait::resolve(p.wait, false),
        };
    }
    Placement {
        sequencer: None,
        shards: vec![None; p.shards],
        risk: None,
        recorder: None,
        hot: Wait::resolve(p.wait, false),
        cold: Wait::resolve(p.wait, false),
    }
}

/// Spawn a stage thread: named, pinned, and fenced so that a panic sets the abort flag with the
/// stage's name instead of hanging the others.
fn spawn<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    name: String,
    core: Option<core_affinity::CoreId>,
    abort: &'scope Abort,
    done: std::sync::mpsc::Sender<()>,
    f: impl FnOnce() + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, ()> {
    std::thread::Builder::new()
        .name(format!("rt-{name}"))
        .spawn_scoped(s, move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                && !payload.is::<Aborted>()
            {
                abort.set(PipelineError::StagePanic(name));
            }
            // Wake the watching thread: it returns as soon as every stage has.
            let _ = done.send(());
        })
        .expect("spawn stage thread")
}

/// Publishes a batch on the main ring if there is room for all of it (the producer's type
/// depends on how many consumers the ring has, so the sequencer sees it through this). With
/// probes on, it stamps the slots it fills (the publish time, and each event's ingress push
/// stamp from `origins`) and returns the publish time; `Some(0)` when off, `None` when full.
type Publish<'a> = Box<dyn FnMut(&[Event], &[u64]) -> Option<u64> + Send + 'a>;

/// The main ring's probe side: slot stamps, and slot counts published and consumed (written
/// only with probes on) for its occupancy.
struct RingProbe {
    stamps: RingStamps,
    published: CachePadded<AtomicU64>,
    /// Slots each consumer (shards, then risk) has finished.
    consumed: Vec<CachePadded<AtomicU64>>,
}

impl RingProbe {
    /// Published slots minus the slowest consumer's.
    fn occupancy(&self) -> u64 {
        let done = self.consumed.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
        self.published.load(Ordering::Relaxed).saturating_sub(done)
    }
}

fn publisher<'a, P: Producer<Event> + Send + 'a>(mut producer: P, ring: &'a RingProbe) -> Publish<'a> {
    let mut next = 0u64;
    Box::new(move |evs: &[Event], origins: &[u64]| {
        let mut at = 0;
        producer
            .try_batch_publish(evs.len(), |iter| {
                for (slot, ev) in iter.zip(evs) {
                    *slot = *ev;
                }
                // The slots are ours until published: stamp them now.
                if ring.stamps.on() {
                    at = metrics_clock_ns();
                    for (j, &o) in origins.iter().enumerate() {
                        ring.stamps.write(next + j as u64, at, o);
                    }
                }
            })
            .ok()?;
        next += evs.len() as u64;
        if ring.stamps.on() {
            ring.published.store(next, Ordering::Relaxed);
        }
        Some(at)
    })
}

fn publish_all(publish: &mut Publish<'_>, evs: &[Event], origins: &[u64], counters: &Counters, abort: &Abort) -> u64 {
    // A full ring means the consumers are a whole ring behind: sleep rather than take their core.
    let mut waiter = Waiter::new(Wait::Sleep);
    let mut counted = false;
    loop {
        if let Some(at) = publish(evs, origins) {
            return at;
        }
        if !counted {
            counters.ring_full.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        abort.check();
        waiter.wait();
    }
}

fn sequencer_loop<S: Source>(
    seqr: &mut Sequencer<'_, S>,
    mut producer: Publish<'_>,
    counters: &Counters,
    ring: &RingProbe,
    abort: &Abort,
    wait: Wait,
    batch: usize,
) {
    // A batch must fit in the ring: try_batch_publish needs that many free slots at once.
    let mut buf: Vec<Event> = Vec::with_capacity(batch);
    // Probes on: each slot's ingress push stamp (0 for other inputs).
    let mut probe = counters.probes.local();
    let mut origins: Vec<u64> = Vec::with_capacity(if probe.is_some() { batch } else { 0 });
    let mut waiter = Waiter::new(wait);
    let mut logical = 0u64;
    let mut ended = false;
    while !ended {
        buf.clear();
        origins.clear();
        let mut open_refs = false;
        while buf.len() < batch {
            match seqr.next() {
                Next::Event(ev) => {
                    buf.push(ev);
                    if probe.is_some() {
                        origins.push(seqr.take_pushed());
                    }
                    open_refs = false;
                    logical += 1;
                }
                Next::BarRef { stream, index, ts_recv_ns } => {
                    logical += 1;
                    let r = u64::from(stream) << 48 | index;
                    match buf.last_mut() {
                        Some(slot) if open_refs && usize::from(slot._pad) < MAX_BAR_REFS => {
                            slot.payload[usize::from(slot._pad)] = r;
                            slot._pad += 1;
                        }
                        _ => {
                            let mut slot =
                                Event { kind: EventKind::BarRefs.raw(), _pad: 1, ts_recv_ns, ..Event::default() };
                            slot.payload[0] = r;
                            buf.push(slot);
                            if probe.is_some() {
                                origins.push(0);
                            }
                            open_refs = true;
                        }
                    }
                }
                Next::Idle => break,
                Next::End => {
                    ended = true;
                    break;
                }
            }
        }
        if buf.is_empty() {
            if !ended {
                if let Some(p) = probe.as_mut() {
                    p.idle();
                }
                abort.check();
                waiter.wait();
            }
            continue;
        }
        waiter.reset();
        let at = publish_all(&mut producer, &buf, &origins, counters, abort);
        counters.published.store(logical, Ordering::Relaxed);
        if let Some(p) = probe.as_mut() {
            for &o in &origins {
                p.record(Stage::IngressWait, o, at);
            }
            if let Some(g) = counters.probes.queue(Queue::MainRing) {
                g.high(ring.occupancy());
            }
        }
    }
}

/// The queues' depths now, for the gauges (probes on; the watching thread, every 20 ms).
fn sample_queues(
    c: &Counters,
    ring: &RingProbe,
    from_shards: &[ArrayQueue<RiskMsg>],
    to_shards: &[ArrayQueue<ShardMsg>],
    to_rec: &ArrayQueue<Flow>,
) {
    let deepest = |lens: &mut dyn Iterator<Item = usize>| lens.max().unwrap_or(0) as u64;
    let depths = [
        (Queue::MainRing, ring.occupancy()),
        (Queue::ShardToRisk, deepest(&mut from_shards.iter().map(ArrayQueue::len))),
        (Queue::RiskToShard, deepest(&mut to_shards.iter().map(ArrayQueue::len))),
        (Queue::RiskToRecorder, to_rec.len() as u64),
    ];
    for (q, d) in depths {
        if let Some(g) = c.probes.queue(q) {
            g.set(d);
        }
    }
}

/// Each stage's progress and since when it has not moved.
struct StallWatch {
    stall: Duration,
    last: Vec<(u64, std::time::Instant)>,
}

impl StallWatch {
    #[allow(clippy::disallowed_methods)] // watchdog time, not strategy time
    fn now() -> std::time::Instant {
        std::time::Instant::now()
    }

    /// The first stage that is stuck: it has work (its progress is behind what was published),
    /// its progress has not moved for the timeout, and it is not blocked by another stage.
    /// `stages` are (name, progress), shards then risk, as `waiting` is.
    fn stuck(
        &mut self,
        stages: &[(String, u64)],
        published: u64,
        waiting: &[CachePadded<AtomicBool>],
    ) -> Option<PipelineError> {
        if self.last.len() != stages.len() {
            self.last = stages.iter().map(|(_, p)| (*p, Self::now())).collect();
        }
        for (i, (name, p)) in stages.iter().enumerate() {
            if *p != self.last[i].0 || *p >= published || waiting[i].load(Ordering::Relaxed) {
                self.last[i] = (*p, Self::now());
            } else if self.last[i].1.elapsed() > self.stall {
                let secs = self.last[i].1.elapsed().as_secs_f64();
                return Some(PipelineError::StageStuck { stage: name.clone(), seq: *p, secs });
            }
        }
        None
    }
}

/// Run the stages on threads until shutdown; returns how they were placed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<S: Source>(
    cfg: &EngineConfig,
    seqr: &mut Sequencer<'_, S>,
    streams: &[StreamRef<'_>],
    shards: Vec<Shard<'_>>,
    risk: &mut RiskStage<'_>,
    rec: &mut Recorder<'_>,
    counters: &Counters,
    monitor: &mut dyn FnMut(&Counters),
    on_stuck: Option<&(dyn Fn(&PipelineError) + Sync)>,
) -> Result<Vec<(String, Option<usize>, String)>, PipelineError> {
    let pc = &cfg.pipeline;
    // One shard runs on risk's thread; more get threads of their own.
    let fused = shards.len() == 1;
    let n = if fused { 0 } else { shards.len() };
    let placement = place(cfg);
    let abort = Abort { flag: AtomicBool::new(false), error: Mutex::new(None) };
    let from_shards: Vec<ArrayQueue<RiskMsg>> = (0..n).map(|_| ArrayQueue::new(pc.queue_size)).collect();
    let to_shards: Vec<ArrayQueue<ShardMsg>> = (0..n).map(|_| ArrayQueue::new(pc.queue_size)).collect();
    let progress: Vec<CachePadded<AtomicU64>> = (0..n).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
    let venue_done = CachePadded::new(AtomicU64::new(0));
    let risk_done = CachePadded::new(AtomicU64::new(0));
    // Per stage (shards, then risk): blocked by another stage right now.
    let waiting: Vec<CachePadded<AtomicBool>> = (0..=n).map(|_| CachePadded::new(AtomicBool::new(false))).collect();
    let to_rec: ArrayQueue<Flow> = ArrayQueue::new(pc.queue_size);
    let risk_finished = AtomicBool::new(false);
    let fused_stage = std::sync::atomic::AtomicU8::new(0);
    let recorded = AtomicU64::new(0);

    let ring = RingProbe {
        stamps: RingStamps::new(counters.probes.on(), pc.ring_size),
        published: CachePadded::new(AtomicU64::new(0)),
        consumed: (0..=n).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
    };
    let occ = |q: Queue| counters.probes.queue(q);
    let builder = disruptor::build_single_producer(pc.ring_size, Event::default, BusySpin);
    let (risk_poller, builder) = builder.new_event_poller();
    let mut pollers = Vec::with_capacity(n);
    let producer = if n == 0 {
        publisher(builder.build(), &ring)
    } else {
        let (first, mut builder) = builder.new_event_poller();
        pollers.push(first);
        for _ in 1..n {
            let (p, b) = builder.new_event_poller();
            pollers.push(p);
            builder = b;
        }
        publisher(builder.build(), &ring)
    };

    let mut report = vec![("sequencer".to_string(), placement.sequencer.map(|c| c.id), format!("{:?}", placement.hot))];
    for (k, c) in placement.shards.iter().enumerate().take(n) {
        report.push((format!("shard-{k}"), c.map(|c| c.id), format!("{:?}", placement.hot)));
    }
    let risk_name = if fused { "risk+shard-0" } else { "risk" };
    report.push((risk_name.into(), placement.risk.map(|c| c.id), format!("{:?}", placement.hot)));
    report.push(("recorder".into(), placement.recorder.map(|c| c.id), format!("{:?}", placement.cold)));

    std::thread::scope(|s| {
        let (abort, c) = (&abort, counters);
        let hot = placement.hot;
        // A shard waiting for risk (or risk for a shard) waits for a stage that is working right
        // now: yield the core to it rather than sleep (sleeping costs tens of microseconds a wait
        // where stages share cores).
        let lockstep = if hot == Wait::Spin { Wait::Spin } else { Wait::Yield };
        let batch = (pc.ring_size / 4).clamp(1, BATCH as usize);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let ring = &ring;
        let mut handles = vec![spawn(s, "sequencer".into(), placement.sequencer, abort, done_tx.clone(), move || {
            sequencer_loop(seqr, producer, c, ring, abort, hot, batch)
        })];
        let mut shards = shards.into_iter();
        let fused_shard = if fused { shards.next() } else { None };
        for (k, (sh, mut poller)) in shards.zip(pollers).enumerate() {
            let side = ShardSide {
                to_risk: &from_shards[k],
                from_risk: &to_shards[k],
                held: VecDeque::new(),
                progress: &progress[k],
                venue_done: &venue_done,
                waiting: &waiting[k],
                counters: c,
                occ: occ(Queue::ShardToRisk),
                abort,
                waiter: Waiter::new(lockstep),
                synced: false,
            };
            handles.push(spawn(s, format!("shard-{k}"), placement.shards[k], abort, done_tx.clone(), move || {
                consume(&mut ShardReader { sh, side }, &mut poller, streams, ring, k, hot, abort);
            }));
        }
        let rside = match fused_shard {
            Some(sh) => {
                let sink =
                    RecQueue { q: &to_rec, counters: c, occ: occ(Queue::RiskToRecorder), abort, waiting: &waiting[n] };
                RiskThreadLink::Fused(Links::new(sh, sink, &fused_stage))
            }
            None => RiskThreadLink::Split(RiskSide {
                from_shards: &from_shards,
                to_shards: &to_shards,
                progress: &progress,
                venue_done: &venue_done,
                to_rec: &to_rec,
                waiting: &waiting[n],
                counters: c,
                occ_to_shard: occ(Queue::RiskToShard),
                occ_to_rec: occ(Queue::RiskToRecorder),
                abort,
                waiter: Waiter::new(lockstep),
                seen: vec![0; n],
                look: vec![None; n],
                look_seq: vec![NONE; n],
            }),
        };
        let (risk_finished, risk_done) = (&risk_finished, &risk_done);
        handles.push(spawn(s, risk_name.into(), placement.risk, abort, done_tx.clone(), {
            let mut poller = risk_poller;
            let mut reader = RiskReader { risk, link: rside, counters: c, finished: risk_finished, done: risk_done };
            move || consume(&mut reader, &mut poller, streams, ring, n, hot, abort)
        }));
        let (to_rec, recorded) = (&to_rec, &recorded);
        handles.push(spawn(s, "recorder".into(), placement.recorder, abort, done_tx, {
            // The recorder only observes and its queue is deep: it sleeps when idle instead of
            // taking a core from the hot stages (unless stages have cores of their own).
            let cold = if placement.cold == Wait::Spin { Wait::Spin } else { Wait::Sleep };
            move || recorder_loop(rec, to_rec, recorded, risk_finished, cold, abort)
        }));
        // The calling thread watches: progress for the monitor, and stages that stop moving.
        let stall = Duration::from_millis(pc.stall_timeout_ms);
        let mut watch = StallWatch { stall, last: Vec::new() };
        let mut stuck_at: Option<std::time::Instant> = None;
        let mut alive = handles.len();
        while alive > 0 {
            match done_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(()) => alive -= 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if c.probes.on() {
                sample_queues(c, ring, &from_shards, &to_shards, to_rec);
            }
            monitor(c);
            if let Some(t) = stuck_at
                && t.elapsed() > stall
            {
                // The stuck stage did not return after being told to stop.
                stuck_at = None;
                if let (Some(f), Some(e)) = (on_stuck, abort.error.lock().unwrap_or_else(|p| p.into_inner()).as_ref()) {
                    f(e);
                }
            }
            if pc.stall_timeout_ms == 0 || abort.flag.load(Ordering::Relaxed) {
                continue;
            }
            let mut stages: Vec<(String, u64)> =
                progress.iter().enumerate().map(|(k, p)| (format!("shard-{k}"), p.load(Ordering::Relaxed))).collect();
            stages.push((risk_name.into(), risk_done.load(Ordering::Relaxed)));
            if let Some(e) = watch.stuck(&stages, c.published.load(Ordering::Relaxed), &waiting) {
                abort.set(e);
                stuck_at = Some(StallWatch::now());
            }
        }
    });
    match abort.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
