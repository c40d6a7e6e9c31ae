//! Runtime metrics of the pipeline: per-stage latency histograms and queue occupancy gauges.
//!
//! **Off by default** ([`super::RunSpec::probes`]): a run without probes allocates nothing here,
//! and every probe point is one predictable branch on an `Option` a stage holds itself.
//!
//! **Stages** ([`Stage`]), each its own histogram of wall-clock nanoseconds:
//! - `ingress_wait`: an event pushed into the [`super::Ingress`] -> the sequencer publishing it;
//! - `sequencer_to_shard`: published -> a strategy's market-data callback starting (`on_bar`,
//!   `on_quote`, `on_trade`);
//! - `strategy`: that callback's duration;
//! - `shard_to_risk`: an order intent emitted -> risk's decision on it;
//! - `risk_to_venue`: risk's decision (accepted) -> execution handing the order to the venue seam;
//! - `end_to_end`: ingress push (or sequencer publish for replayed inputs) -> the venue seam, for
//!   events whose callback produced an order risk accepted.
//!
//! **Recording never waits.** Each stage thread records into histograms of its own (`Probe`) and
//! merges them into the shared one with `try_lock` every [`FLUSH_NS`] (or [`FLUSH_EVERY`]
//! samples), and when idle; a busy lock keeps the samples local until the next try. A
//! stage's last samples are merged (waiting for the lock) when it ends.
//!
//! **Queues** ([`Queue`]): current depth and high-water mark of the main ring (published slots
//! minus the slowest consumer's, in ring slots: a zero-copy replay packs up to six bars in one),
//! the ingress, and the shard -> risk, risk -> shard and risk -> recorder queues (threads
//! topology; with one shard, the shard runs on risk's thread and its two queues stay empty).
//!
//! **Determinism.** The stamps come from [`metrics_clock_ns`], the one wall clock of the engine's
//! logic; they feed these histograms and nothing else, so decisions, the journal and replays are
//! exactly the same with probes on or off.

use super::Ingress;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Monotonic wall-clock nanoseconds since the first call in this process; never 0 (0 means "not
/// stamped" everywhere in this module).
///
/// The engine's logic takes time from events (see `clippy.toml`); this clock is the documented
/// exception for metrics: its values only ever reach the latency histograms, never a decision.
#[allow(clippy::disallowed_methods)] // metrics only: stamps feed histograms, never decisions
#[inline]
pub fn metrics_clock_ns() -> u64 {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// A measured stage of the pipeline (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ingress push -> sequencer publish.
    IngressWait,
    /// Sequencer publish -> strategy callback start.
    SequencerToShard,
    /// Strategy market-data callback duration.
    Strategy,
    /// Intent emitted -> risk's decision.
    ShardToRisk,
    /// Risk's decision -> the venue seam's submit.
    RiskToVenue,
    /// Ingress push (or publish) -> the venue seam's submit.
    EndToEnd,
}

/// Every stage, in pipeline order.
pub const STAGES: [Stage; 6] = [
    Stage::IngressWait,
    Stage::SequencerToShard,
    Stage::Strategy,
    Stage::ShardToRisk,
    Stage::RiskToVenue,
    Stage::EndToEnd,
];

impl Stage {
    /// The `stage` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stage::IngressWait => "ingress_wait",
            Stage::SequencerToShard => "sequencer_to_shard",
            Stage::Strategy => "strategy",
            Stage::ShardToRisk => "shard_to_risk",
            Stage::RiskToVenue => "risk_to_venue",
            Stage::EndToEnd => "end_to_end",
        }
    }
}

/// A ring or queue whose occupancy is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The main ring: published slots minus the slowest consumer's.
    MainRing,
    /// The ingress (events pushed, not yet taken by the sequencer).
    Ingress,
    /// Shards -> risk (the deepest shard's queue).
    ShardToRisk,
    /// Risk -> shards (the deepest).
    RiskToShard,
    /// Risk -> the recorder.
    RiskToRecorder,
}

/// Every queue, in pipeline order.
pub const QUEUES: [Queue; 5] =
    [Queue::MainRing, Queue::Ingress, Queue::ShardToRisk, Queue::RiskToShard, Queue::RiskToRecorder];

impl Queue {
    /// The `queue` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Queue::MainRing => "main_ring",
            Queue::Ingress => "ingress",
            Queue::ShardToRisk => "shard_to_risk",
            Queue::RiskToShard => "risk_to_shard",
            Queue::RiskToRecorder => "risk_to_recorder",
        }
    }
}

/// Merge local samples when this long (ns) has passed since the last merge (checked at each
/// sample: a merge walks the whole histogram, a few microseconds, so at most 200 a second)...
pub const FLUSH_NS: u64 = 5_000_000;
/// ... or after this many samples (a clock that stood still).
pub const FLUSH_EVERY: u32 = 1 << 16;
/// Largest latency recorded (an hour); longer ones are clamped to it.
const MAX_NS: u64 = 3_600_000_000_000;

fn histogram() -> Histogram<u64> {
    // Two significant digits (1%): small enough that a merge costs a few microseconds.
    Histogram::new_with_bounds(1, MAX_NS, 2).expect("valid histogram bounds")
}

/// A histogram with the exact sum of what it holds (Prometheus `_sum`).
struct Hist {
    h: Histogram<u64>,
    sum_ns: u64,
}

impl Hist {
    fn new() -> Self {
        Hist { h: histogram(), sum_ns: 0 }
    }
}

/// A gauge's current value and high-water mark.
#[derive(Debug, Default)]
pub(crate) struct Occupancy {
    cur: AtomicU64,
    high: AtomicU64,
}

impl Occupancy {
    /// The depth now (the watching thread samples it).
    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.cur.store(n, Ordering::Relaxed);
        self.high(n);
    }
    /// A depth seen by a writer: raises the high-water mark only.
    #[inline]
    pub(crate) fn high(&self, n: u64) {
        if n > self.high.load(Ordering::Relaxed) {
            self.high.fetch_max(n, Ordering::Relaxed);
        }
    }
}

struct Inner {
    hists: [Mutex<Hist>; 6],
    queues: [Occupancy; 5],
    ingress: OnceLock<Ingress>,
}

/// The run's probes, shared by every stage (in [`super::Counters`]); empty when off.
#[derive(Default)]
pub struct Probes {
    inner: Option<Box<Inner>>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").field("on", &self.on()).finish()
    }
}

/// One stage's latency over the run so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageStats {
    /// The stage's name ([`Stage::name`]).
    pub stage: String,
    /// Samples.
    pub count: u64,
    /// Sum of all samples, ns.
    pub sum_ns: u64,
    /// Median, ns (0 without samples).
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// One queue's occupancy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    /// The queue's name ([`Queue::name`]).
    pub queue: String,
    /// Depth when last looked at.
    pub current: u64,
    /// Deepest seen.
    pub high_water: u64,
}

/// What the probes hold at one moment: every stage and every queue, in pipeline order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeSnapshot {
    /// Per stage.
    pub stages: Vec<StageStats>,
    /// Per queue.
    pub queues: Vec<QueueStats>,
}

impl ProbeSnapshot {
    /// The stats of one stage.
    pub fn stage(&self, s: Stage) -> &StageStats {
        &self.stages[STAGES.iter().position(|&x| x == s).unwrap_or(0)]
    }
    /// The stats of one queue.
    pub fn queue(&self, q: Queue) -> &QueueStats {
        &self.queues[QUEUES.iter().position(|&x| x == q).unwrap_or(0)]
    }
}

impl Probes {
    /// Probes that record (`on`) or cost nothing.
    pub fn new(on: bool) -> Self {
        let inner = on.then(|| {
            Box::new(Inner {
                hists: std::array::from_fn(|_| Mutex::new(Hist::new())),
                queues: Default::default(),
                ingress: OnceLock::new(),
            })
        });
        Probes { inner }
    }

    /// True when the run records.
    #[inline]
    pub fn on(&self) -> bool {
        self.inner.is_some()
    }

    /// A recorder for one stage thread (None when off).
    pub(crate) fn local(&self) -> Option<Probe<'_>> {
        self.inner.as_deref().map(|inner| Probe { inner, local: Default::default() })
    }

    /// The gauge of `q` (None when off).
    #[inline]
    pub(crate) fn queue(&self, q: Queue) -> Option<&Occupancy> {
        self.inner.as_deref().map(|i| &i.queues[q as usize])
    }

    /// Watch `ingress`: it stamps each push and keeps its high-water mark.
    pub(crate) fn watch_ingress(&self, ingress: &Ingress) {
        if let Some(i) = &self.inner {
            ingress.set_stamping(true);
            let _ = i.ingress.set(ingress.clone());
        }
    }

    /// Every stage's histogram and every gauge now (None when off). Takes each histogram's lock
    /// briefly; stages never wait for it.
    pub fn snapshot(&self) -> Option<ProbeSnapshot> {
        let inner = self.inner.as_deref()?;
        let stages = STAGES
            .iter()
            .zip(&inner.hists)
            .map(|(s, m)| {
                let g = m.lock().unwrap_or_else(|p| p.into_inner());
                let (h, n) = (&g.h, g.h.len());
                let q = |x: f64| if n == 0 { 0 } else { h.value_at_quantile(x) };
                StageStats {
                    stage: s.name().to_string(),
                    count: n,
                    sum_ns: g.sum_ns,
                    p50_ns: q(0.5),
                    p90_ns: q(0.9),
                    p99_ns: q(0.99),
                    p999_ns: q(0.999),
                    max_ns: if n == 0 { 0 } else { h.max() },
                }
            })
            .collect();
        let queues = QUEUES
            .iter()
            .zip(&inner.queues)
            .map(|(q, o)| {
                let (mut current, mut high_water) = (o.cur.load(Ordering::Relaxed), o.high.load(Ordering::Relaxed));
                if let (Queue::Ingress, Some(ing)) = (q, inner.ingress.get()) {
                    current = ing.len() as u64;
                    high_water = high_water.max(ing.high_water()).max(current);
                }
                QueueStats { queue: q.name().to_string(), current, high_water }
            })
            .collect();
        Some(ProbeSnapshot { stages, queues })
    }
}

/// Samples of one stage not yet merged into the shared histogram.
struct Local {
    hist: Hist,
    pending: u32,
    last_flush: u64,
}

/// One stage thread's recorder: local histograms merged into the run's without waiting.
pub(crate) struct Probe<'a> {
    inner: &'a Inner,
    local: [Option<Local>; 6],
}

impl Probe<'_> {
    /// Record `to - from` for `stage`; nothing when `from` is 0 (not stamped).
    #[inline]
    pub(crate) fn record(&mut self, stage: Stage, from: u64, to: u64) {
        if from == 0 {
            return;
        }
        let ns = to.saturating_sub(from).clamp(1, MAX_NS);
        let l =
            self.local[stage as usize].get_or_insert_with(|| Local { hist: Hist::new(), pending: 0, last_flush: 0 });
        l.hist.h.saturating_record(ns);
        l.hist.sum_ns = l.hist.sum_ns.saturating_add(ns);
        l.pending += 1;
        if l.pending >= FLUSH_EVERY || to.saturating_sub(l.last_flush) >= FLUSH_NS {
            l.last_flush = to;
            Self::merge(&self.inner.hists[stage as usize], l, false);
        }
    }

    /// Merge what is pending (a stage with nothing to do calls this; never waits).
    #[inline]
    pub(crate) fn idle(&mut self) {
        for (l, m) in self.local.iter_mut().zip(&self.inner.hists) {
            if let Some(l) = l.as_mut().filter(|l| l.pending > 0) {
                Self::merge(m, l, false);
            }
        }
    }

    /// Merge everything, waiting for the locks (at the end of a stage).
    pub(crate) fn finish(&mut self) {
        for (l, m) in self.local.iter_mut().zip(&self.inner.hists) {
            if let Some(l) = l.as_mut().filter(|l| l.pending > 0) {
                Self::merge(m, l, true);
            }
        }
    }

    fn merge(shared: &Mutex<Hist>, l: &mut Local, wait: bool) {
        let mut g = match shared.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if wait => shared.lock().unwrap_or_else(|p| p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        // Same bounds on both sides: adding cannot fail.
        let _ = g.h.add(&l.hist.h);
        g.sum_ns = g.sum_ns.saturating_add(l.hist.sum_ns);
        drop(g);
        l.hist.h.reset();
        l.hist.sum_ns = 0;
        l.pending = 0;
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The stamps of the event being handled: when the sequencer published it, and where its
/// end-to-end time starts (its ingress push, else the publish). Zero when not stamped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub published: u64,
    pub origin: u64,
}

/// Stamps per main-ring slot, written by the sequencer inside the publish (when it owns the
/// slots) and read by consumers while they hold the slot; empty when probes are off.
pub(crate) struct RingStamps {
    published: Box<[AtomicU64]>,
    origin: Box<[AtomicU64]>,
}

impl RingStamps {
    pub(crate) fn new(on: bool, ring_size: usize) -> Self {
        let n = if on { ring_size } else { 0 };
        let mk = || (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[AtomicU64]>>();
        RingStamps { published: mk(), origin: mk() }
    }

    #[inline]
    pub(crate) fn on(&self) -> bool {
        !self.published.is_empty()
    }

    /// Stamp ring slot `pos` (a running count of slots). The ring publish that follows (a
    /// release store) orders this before a consumer reads it.
    #[inline]
    pub(crate) fn write(&self, pos: u64, published: u64, origin: u64) {
        let i = (pos % self.published.len() as u64) as usize;
        self.published[i].store(published, Ordering::Relaxed);
        self.origin[i].store(if origin == 0 { published } else { origin }, Ordering::Relaxed);
    }

    /// The stamps of ring slot `pos` (zero when off).
    #[inline]
    pub(crate) fn read(&self, pos: u64) -> Slot {
        if !self.on() {
            return Slot::default();
        }
        let i = (pos % self.published.len() as u64) as usize;
        Slot { published: self.published[i].load(Ordering::Relaxed), origin: self.origin[i].load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_allocates_nothing_and_snapshots_none() {
        let p = Probes::new(false);
        assert!(!p.on() && p.local().is_none() && p.snapshot().is_none());
    }

    #[test]
    fn local_samples_reach_the_snapshot_by_the_end_at_the_latest() {
        let p = Probes::new(true);
        {
            let mut l = p.local().unwrap();
            for k in 1..=10u64 {
                l.record(Stage::Strategy, 1_000, 1_000 + k * 100);
            }
            l.record(Stage::ShardToRisk, 0, 5_000); // not stamped: not recorded
        }
        let s = p.snapshot().unwrap();
        let st = s.stage(Stage::Strategy);
        assert_eq!((st.count, st.sum_ns), (10, 5_500));
        assert!(st.p50_ns <= st.p99_ns && st.p99_ns <= st.max_ns && st.p50_ns > 0, "{st:?}");
        assert_eq!(s.stage(Stage::ShardToRisk).count, 0);
        p.queue(Queue::RiskToRecorder).unwrap().high(3);
        p.queue(Queue::RiskToRecorder).unwrap().set(1);
        let q = p.snapshot().unwrap().queue(Queue::RiskToRecorder).clone();
        assert_eq!((q.current, q.high_water), (1, 3));
    }

    #[test]
    fn a_busy_lock_keeps_samples_local_until_the_next_try() {
        let p = Probes::new(true);
        let mut l = p.local().unwrap();
        let inner = p.inner.as_deref().unwrap();
        let held = inner.hists[Stage::EndToEnd as usize].lock().unwrap();
        l.record(Stage::EndToEnd, 1, FLUSH_NS * 2);
        assert_eq!(l.local[Stage::EndToEnd as usize].as_ref().unwrap().pending, 1, "kept");
        drop(held);
        l.idle();
        assert_eq!(p.snapshot().unwrap().stage(Stage::EndToEnd).count, 1);
    }
}
