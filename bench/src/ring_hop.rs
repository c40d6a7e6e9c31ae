//! `ring-hop`: the cost of one hop producer thread -> consumer thread through a ring.
//!
//! Three rings carry the same 64-byte, cache-line-aligned event (the size of the engine's ring
//! slot), all with the same capacity (`--capacity`, default 1024 slots):
//!
//! * **disruptor** 4.4: `build_single_producer(.., BusySpin)` with an `EventPoller` driven by our
//!   own consumer thread (`poll()` drains every available event; dropping the guard releases the
//!   slots). The producer writes in place with `publish` (or `batch_publish(n)`).
//! * **crossbeam channel**: `crossbeam::channel::bounded`, `try_send` / `try_recv` loops.
//! * **crossbeam ArrayQueue**: `push` / `pop` loops; a flag set when the producer is dropped
//!   plays the role of the other rings' disconnect/shutdown signal.
//!
//! The producer is pinned to one core and the consumer to another (the core list is read once
//! at start, before anything is pinned, because `core_affinity::get_core_ids()` only reports the
//! cores the calling thread may use). With fewer than two cores nothing is pinned, and the report
//! says so. Both threads meet at a barrier before the measured part starts.
//!
//! When a consumer finds its ring empty it waits per `--wait`: `spin` (`std::hint::spin_loop`,
//! the default) or `yield` (`std::thread::yield_now`). A producer that finds the ring full does
//! the same (in `spin` mode the disruptor uses its own `publish`, which busy-spins internally;
//! in `yield` mode it uses `try_publish` + yield).
//!
//! Two modes are measured:
//!
//! 1. **Paced latency.** After `--warmup` unrecorded events, the producer sends `--messages`
//!    events about `--interval-ns` apart (it spins on `Instant` until the next send time). Each
//!    event carries its send time, in ns since a shared `Instant` origin, read just before the
//!    send/publish call; the consumer reads the clock as it sees each event and records
//!    `recv - send` in an `hdrhistogram::Histogram<u64>` (ns, 3 significant figures). The
//!    latency therefore includes one `Instant::now()` (its cost is reported). If the producer
//!    falls more than one interval behind schedule (it was preempted), the schedule restarts
//!    from "now" instead of bursting to catch up; such slips are counted and reported.
//! 2. **Flat-out throughput.** `--events` events are pushed as fast as possible; the rate is
//!    events / (consumer's time of the last event - producer's start time), on the shared clock.
//!    The disruptor is measured with single `publish` and with `batch_publish(--batch)`.
//!
//! Every run checks that the consumer saw exactly the sequence numbers `0..n`, in order.
//! The output is a Markdown report on stdout; `--json FILE` also writes the numbers as JSON.
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here

use std::fmt::Write as _;
use std::hint;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use core_affinity::CoreId;
use crossbeam::channel::{self, TryRecvError, TrySendError};
use crossbeam::queue::ArrayQueue;
use disruptor::{
    BusySpin, EventPoller, Polling, Producer, SingleConsumerBarrier, SingleProducer, SingleProducerBarrier,
};
use hdrhistogram::Histogram;

use crate::common::{MachineInfo, command_line, fmt_count, loadavg, machine_info};

const DEFAULT_MESSAGES: u64 = 1_000_000;
const DEFAULT_EVENTS: u64 = 10_000_000;
const QUICK_MESSAGES: u64 = 100_000;
const QUICK_EVENTS: u64 = 1_000_000;
/// Highest latency the histograms track (larger values are clamped): 60 s in ns.
const HIST_MAX_NS: u64 = 60_000_000_000;
/// Delay between the start barrier and the first paced send, so both threads are running.
const PACED_LEAD_IN_NS: u64 = 100_000;

/// Options of `ringtape-bench ring-hop`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Paced events per ring (recorded in the latency histogram) [default: 1000000; 100000 with --quick]
    #[arg(long)]
    pub messages: Option<u64>,
    /// Events per ring for the flat-out throughput runs [default: 10000000; 1000000 with --quick]
    #[arg(long)]
    pub events: Option<u64>,
    /// Small sizes for CI smoke runs (100k paced, 1M flat-out); explicit sizes still win
    #[arg(long)]
    pub quick: bool,
    /// Target spacing between paced sends, in ns
    #[arg(long, default_value_t = 1_000)]
    pub interval_ns: u64,
    /// Paced events sent before the measured ones and not recorded
    #[arg(long, default_value_t = 10_000)]
    pub warmup: u64,
    /// Ring capacity in events (a power of two; the same for all rings)
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
    /// Batch size for the disruptor batch_publish throughput run
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// How a thread waits when its ring is empty (consumer) or full (producer)
    #[arg(long, value_enum, default_value_t = Wait::Spin)]
    pub wait: Wait,
    /// Do not pin the producer and consumer threads
    #[arg(long)]
    pub no_pin: bool,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// How a thread waits for its ring to become non-empty / non-full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Busy spin with `std::hint::spin_loop()`.
    Spin,
    /// `std::thread::yield_now()` between attempts.
    Yield,
}

impl Wait {
    #[inline]
    fn idle(self) {
        match self {
            Wait::Spin => hint::spin_loop(),
            Wait::Yield => thread::yield_now(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Yield => "yield",
        }
    }
}

/// The event carried by every ring: one 64-byte cache line, like the engine's ring slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(64))]
struct HopEvent {
    /// Sequence number, 0-based, in send order.
    seq: u64,
    /// Send time in ns since the run's clock origin (0 in throughput runs).
    send_ns: u64,
    /// Filler so the event is a full cache line, as real events are.
    payload: [u64; 6],
}
const _: () = assert!(std::mem::size_of::<HopEvent>() == 64);

impl HopEvent {
    #[inline]
    fn new(seq: u64, send_ns: u64) -> Self {
        HopEvent { seq, send_ns, payload: [seq; 6] }
    }
}

/// Nanoseconds since `origin` (a shared `Instant`, so comparable across threads).
#[inline]
fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// The three rings behind one producer / consumer interface.
// ---------------------------------------------------------------------------------------------

/// Producer half of a ring. Dropping it tells the consumer that nothing more will come.
trait Tx: Send {
    /// Send one event, waiting (per the ring's wait policy) while the ring is full.
    fn send(&mut self, ev: HopEvent);
    /// Send events `first_seq .. first_seq + n`, all stamped `send_ns`.
    fn send_batch(&mut self, first_seq: u64, n: usize, send_ns: u64) {
        for k in 0..n as u64 {
            self.send(HopEvent::new(first_seq + k, send_ns));
        }
    }
}

/// Result of one non-blocking attempt to read from a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// At least one event was handed to the callback.
    Got,
    /// Nothing available right now.
    Empty,
    /// The producer is gone and every event has been read.
    Closed,
}

/// Consumer half of a ring.
trait Rx: Send {
    /// Hand one or more available events to `f`, in order (none if `Empty`/`Closed`).
    fn drain<F: FnMut(&HopEvent)>(&mut self, f: &mut F) -> Drain;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingKind {
    Disruptor,
    Crossbeam,
    ArrayQueue,
}

impl RingKind {
    const ALL: [RingKind; 3] = [RingKind::Disruptor, RingKind::Crossbeam, RingKind::ArrayQueue];

    fn label(self) -> &'static str {
        match self {
            RingKind::Disruptor => "disruptor 4.4 (SP, EventPoller)",
            RingKind::Crossbeam => "crossbeam channel::bounded",
            RingKind::ArrayQueue => "crossbeam ArrayQueue",
        }
    }

    fn key(self) -> &'static str {
        match self {
            RingKind::Disruptor => "disruptor",
            RingKind::Crossbeam => "crossbeam_channel",
            RingKind::ArrayQueue => "array_queue",
        }
    }
}

struct DisruptorTx {
    producer: SingleProducer<HopEvent, SingleConsumerBarrier>,
    wait: Wait,
}

struct DisruptorRx {
    poller: EventPoller<HopEvent, SingleProducerBarrier>,
}

fn disruptor_ring(capacity: usize, wait: Wait) -> (DisruptorTx, DisruptorRx) {
    let builder = disruptor::build_single_producer(capacity, HopEvent::default, BusySpin);
    let (poller, builder) = builder.new_event_poller();
    (DisruptorTx { producer: builder.build(), wait }, DisruptorRx { poller })
}

impl Tx for DisruptorTx {
    #[inline]
    fn send(&mut self, ev: HopEvent) {
        match self.wait {
            Wait::Spin => self.producer.publish(|slot| *slot = ev),
            Wait::Yield => {
                while self.producer.try_publish(|slot| *slot = ev).is_err() {
                    thread::yield_now();
                }
            }
        }
    }

    #[inline]
    fn send_batch(&mut self, first_seq: u64, n: usize, send_ns: u64) {
        match self.wait {
            Wait::Spin => self.producer.batch_publish(n, |iter| {
                for (k, slot) in iter.enumerate() {
                    *slot = HopEvent::new(first_seq + k as u64, send_ns);
                }
            }),
            Wait::Yield => {
                // The batch is rewritten from scratch on each attempt; only a successful one
                // publishes.
                while self
                    .producer
                    .try_batch_publish(n, |iter| {
                        for (k, slot) in iter.enumerate() {
                            *slot = HopEvent::new(first_seq + k as u64, send_ns);
                        }
                    })
                    .is_err()
                {
                    thread::yield_now();
                }
            }
        }
    }
}

impl Rx for DisruptorRx {
    #[inline]
    fn drain<F: FnMut(&HopEvent)>(&mut self, f: &mut F) -> Drain {
        match self.poller.poll() {
            Ok(mut guard) => {
                for ev in &mut guard {
                    f(ev);
                }
                Drain::Got
            }
            Err(Polling::NoEvents) => Drain::Empty,
            Err(Polling::Shutdown) => Drain::Closed,
        }
    }
}

struct CrossbeamTx {
    tx: channel::Sender<HopEvent>,
    wait: Wait,
}

struct CrossbeamRx {
    rx: channel::Receiver<HopEvent>,
}

fn crossbeam_ring(capacity: usize, wait: Wait) -> (CrossbeamTx, CrossbeamRx) {
    let (tx, rx) = channel::bounded(capacity);
    (CrossbeamTx { tx, wait }, CrossbeamRx { rx })
}

impl Tx for CrossbeamTx {
    #[inline]
    fn send(&mut self, ev: HopEvent) {
        let mut ev = ev;
        loop {
            match self.tx.try_send(ev) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    ev = back;
                    self.wait.idle();
                }
                // The consumer is gone (it panicked); its thread's panic is reported on join.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

impl Rx for CrossbeamRx {
    #[inline]
    fn drain<F: FnMut(&HopEvent)>(&mut self, f: &mut F) -> Drain {
        match self.rx.try_recv() {
            Ok(ev) => {
                f(&ev);
                Drain::Got
            }
            Err(TryRecvError::Empty) => Drain::Empty,
            Err(TryRecvError::Disconnected) => Drain::Closed,
        }
    }
}

struct ArrayQueueTx {
    queue: Arc<ArrayQueue<HopEvent>>,
    done: Arc<AtomicBool>,
    wait: Wait,
}

struct ArrayQueueRx {
    queue: Arc<ArrayQueue<HopEvent>>,
    done: Arc<AtomicBool>,
}

fn array_queue_ring(capacity: usize, wait: Wait) -> (ArrayQueueTx, ArrayQueueRx) {
    let queue = Arc::new(ArrayQueue::new(capacity));
    let done = Arc::new(AtomicBool::new(false));
    (ArrayQueueTx { queue: Arc::clone(&queue), done: Arc::clone(&done), wait }, ArrayQueueRx { queue, done })
}

impl Tx for ArrayQueueTx {
    #[inline]
    fn send(&mut self, ev: HopEvent) {
        let mut ev = ev;
        while let Err(back) = self.queue.push(ev) {
            ev = back;
            self.wait.idle();
        }
    }
}

impl Drop for ArrayQueueTx {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

impl Rx for ArrayQueueRx {
    #[inline]
    fn drain<F: FnMut(&HopEvent)>(&mut self, f: &mut F) -> Drain {
        if let Some(ev) = self.queue.pop() {
            f(&ev);
            return Drain::Got;
        }
        if !self.done.load(Ordering::Acquire) {
            return Drain::Empty;
        }
        // The producer is done; everything it pushed is visible now. Drain before closing.
        match self.queue.pop() {
            Some(ev) => {
                f(&ev);
                Drain::Got
            }
            None => Drain::Closed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Threads and pinning.
// ---------------------------------------------------------------------------------------------

/// Which cores the producer and consumer run on.
#[derive(Debug, Clone)]
struct Pinning {
    producer: Option<CoreId>,
    consumer: Option<CoreId>,
    description: String,
}

impl Pinning {
    /// No pinning (tests, `--no-pin`).
    fn none(description: &str) -> Self {
        Pinning { producer: None, consumer: None, description: description.to_owned() }
    }

    /// Read the usable cores once (before any thread is pinned) and pick two: the last two,
    /// which keeps the threads off CPU 0 (where most interrupts land) on bigger machines.
    fn plan(no_pin: bool) -> Self {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let ids: Vec<usize> = cores.iter().map(|c| c.id).collect();
        if no_pin {
            return Pinning::none(&format!("none (--no-pin); usable cores {ids:?}"));
        }
        match cores.len() {
            0 | 1 => {
                eprintln!(
                    "ring-hop: only {} usable core(s) {ids:?}: producer and consumer are NOT \
                     pinned and share a core; latencies will reflect time slicing \
                     (consider --wait yield)",
                    cores.len()
                );
                Pinning::none(&format!(
                    "none: only {} usable core(s) {ids:?}, producer and consumer share it",
                    cores.len()
                ))
            }
            n => {
                let (p, c) = (cores[n - 2], cores[n - 1]);
                Pinning {
                    producer: Some(p),
                    consumer: Some(c),
                    description: format!("producer -> core {}, consumer -> core {} (usable cores {ids:?})", p.id, c.id),
                }
            }
        }
    }
}

fn pin(core: Option<CoreId>, who: &str) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        eprintln!("ring-hop: could not pin the {who} thread to core {}", core.id);
    }
}

/// Involuntary context switches of the calling thread so far (Linux; `None` elsewhere).
fn involuntary_switches() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:")?.trim().parse().ok())
}

/// How often each thread was preempted during its measured part.
#[derive(Debug, Clone, Copy, Default)]
struct Preemptions {
    producer: Option<u64>,
    consumer: Option<u64>,
}

impl Preemptions {
    fn show(self) -> String {
        let f = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!("{} / {}", f(self.producer), f(self.consumer))
    }
}

/// Run `f` after the start line, returning its output and this thread's preemptions meanwhile.
fn measured<X, O>(start_line: &Barrier, x: X, f: impl FnOnce(X) -> O) -> (O, Option<u64>) {
    let before = involuntary_switches();
    start_line.wait();
    let out = f(x);
    let after = involuntary_switches();
    (out, after.zip(before).map(|(a, b)| a.saturating_sub(b)))
}

/// Run `producer(tx)` and `consumer(rx)` on two (pinned) threads that start together.
fn run_pair<T, R, PO, CO>(
    tx: T,
    rx: R,
    pins: &Pinning,
    producer: impl FnOnce(T) -> PO + Send,
    consumer: impl FnOnce(R) -> CO + Send,
) -> anyhow::Result<(PO, CO, Preemptions)>
where
    T: Tx,
    R: Rx,
    PO: Send,
    CO: Send,
{
    let start_line = Barrier::new(2);
    thread::scope(|s| {
        let start_line = &start_line;
        let consumer = thread::Builder::new()
            .name("hop-consumer".into())
            .spawn_scoped(s, move || {
                pin(pins.consumer, "consumer");
                measured(start_line, rx, consumer)
            })
            .context("spawning the consumer thread")?;
        let producer = thread::Builder::new()
            .name("hop-producer".into())
            .spawn_scoped(s, move || {
                pin(pins.producer, "producer");
                // `tx` is moved into `producer` and dropped when it returns: that closes the ring.
                measured(start_line, tx, producer)
            })
            .context("spawning the producer thread")?;
        let (produced, p) = producer.join().map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
        let (consumed, c) = consumer.join().map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
        Ok((produced, consumed, Preemptions { producer: p, consumer: c }))
    })
}

/// Consume until the ring closes, calling `on_event` for each event; returns `on_event`'s state
/// through the closure's captures.
#[inline]
fn consume_all<R: Rx, F: FnMut(&HopEvent)>(rx: &mut R, wait: Wait, mut on_event: F) {
    loop {
        match rx.drain(&mut on_event) {
            Drain::Got => {}
            Drain::Empty => wait.idle(),
            Drain::Closed => return,
        }
    }
}

/// Sequence check done by every consumer: counts events and those out of order.
#[derive(Debug, Clone, Copy, Default)]
struct SeqCheck {
    received: u64,
    next_expected: u64,
    out_of_order: u64,
}

impl SeqCheck {
    #[inline]
    fn see(&mut self, seq: u64) {
        if seq != self.next_expected {
            self.out_of_order += 1;
        }
        self.next_expected = seq.wrapping_add(1);
        self.received += 1;
    }

    fn verify(&self, ring: &str, sent: u64) -> anyhow::Result<()> {
        ensure!(
            self.received == sent && self.out_of_order == 0 && self.next_expected == sent,
            "{ring}: sent {sent} events, received {} ({} out of order, last seq {})",
            self.received,
            self.out_of_order,
            self.next_expected.wrapping_sub(1)
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Paced latency.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct LatencyResult {
    ring: RingKind,
    hist: Histogram<u64>,
    /// Times the producer fell more than one interval behind and restarted its schedule.
    slips: u64,
    /// Achieved send rate over the measured part, events/s.
    send_rate: f64,
    /// Involuntary context switches of each thread during the run.
    preemptions: Preemptions,
}

#[derive(Debug, Clone, Copy)]
struct PacedConfig {
    messages: u64,
    warmup: u64,
    interval_ns: u64,
    capacity: usize,
    wait: Wait,
}

fn paced<T: Tx, R: Rx>(
    ring: RingKind,
    tx: T,
    rx: R,
    cfg: PacedConfig,
    pins: &Pinning,
) -> anyhow::Result<LatencyResult> {
    let origin = Instant::now();
    let total = cfg.warmup + cfg.messages;
    let warmup = cfg.warmup;
    let interval = cfg.interval_ns;
    let hist = Histogram::<u64>::new_with_bounds(1, HIST_MAX_NS, 3)?;

    let producer = move |mut tx: T| {
        let mut slips = 0u64;
        let mut measured_start = 0u64;
        let mut next = now_ns(origin) + PACED_LEAD_IN_NS;
        for seq in 0..total {
            let mut now = now_ns(origin);
            while now < next {
                hint::spin_loop();
                now = now_ns(origin);
            }
            if seq == warmup {
                measured_start = now;
            }
            tx.send(HopEvent::new(seq, now));
            next += interval;
            if next <= now {
                // Preempted for more than one interval: restart the schedule, no burst.
                slips += u64::from(seq >= warmup);
                next = now + interval;
            }
        }
        let measured_ns = now_ns(origin).saturating_sub(measured_start).max(1);
        (slips, measured_ns)
    };

    let wait = cfg.wait;
    let consumer = move |mut rx: R| {
        let mut hist = hist;
        let mut check = SeqCheck::default();
        consume_all(&mut rx, wait, |ev| {
            let recv = now_ns(origin);
            if ev.seq >= warmup {
                hist.saturating_record(recv.saturating_sub(ev.send_ns));
            }
            check.see(ev.seq);
        });
        (hist, check)
    };

    let ((slips, measured_ns), (hist, check), preemptions) = run_pair(tx, rx, pins, producer, consumer)?;
    check.verify(ring.label(), total)?;
    ensure!(hist.len() == cfg.messages, "{}: histogram holds {} values", ring.label(), hist.len());
    Ok(LatencyResult { ring, hist, slips, send_rate: cfg.messages as f64 * 1e9 / measured_ns as f64, preemptions })
}

fn paced_ring(ring: RingKind, cfg: PacedConfig, pins: &Pinning) -> anyhow::Result<LatencyResult> {
    match ring {
        RingKind::Disruptor => {
            let (tx, rx) = disruptor_ring(cfg.capacity, cfg.wait);
            paced(ring, tx, rx, cfg, pins)
        }
        RingKind::Crossbeam => {
            let (tx, rx) = crossbeam_ring(cfg.capacity, cfg.wait);
            paced(ring, tx, rx, cfg, pins)
        }
        RingKind::ArrayQueue => {
            let (tx, rx) = array_queue_ring(cfg.capacity, cfg.wait);
            paced(ring, tx, rx, cfg, pins)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flat-out throughput.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ThroughputResult {
    label: String,
    key: String,
    events: u64,
    elapsed_ns: u64,
    /// Involuntary context switches of each thread during the run.
    preemptions: Preemptions,
}

impl ThroughputResult {
    fn mevents_per_s(&self) -> f64 {
        self.events as f64 * 1e3 / self.elapsed_ns.max(1) as f64
    }
}

/// Push `events` events through the ring as fast as possible (`batch` > 1: `send_batch`).
fn flat_out<T: Tx, R: Rx>(
    label: &str,
    tx: T,
    rx: R,
    events: u64,
    batch: usize,
    wait: Wait,
    pins: &Pinning,
) -> anyhow::Result<(u64, Preemptions)> {
    let origin = Instant::now();
    let producer = move |mut tx: T| {
        let t0 = now_ns(origin);
        if batch > 1 {
            let mut seq = 0;
            while seq < events {
                let n = (events - seq).min(batch as u64);
                tx.send_batch(seq, n as usize, 0);
                seq += n;
            }
        } else {
            for seq in 0..events {
                tx.send(HopEvent::new(seq, 0));
            }
        }
        t0
    };
    let consumer = move |mut rx: R| {
        let mut check = SeqCheck::default();
        // Time of the last event, read when it is seen (the ring only closes after the
        // producer thread has returned, which would add thread-exit time).
        let mut last_ns = 0;
        consume_all(&mut rx, wait, |ev| {
            check.see(ev.seq);
            if ev.seq + 1 == events {
                last_ns = now_ns(origin);
            }
        });
        (check, last_ns)
    };
    let (t0, (check, last_ns), preemptions) = run_pair(tx, rx, pins, producer, consumer)?;
    check.verify(label, events)?;
    Ok((last_ns.saturating_sub(t0), preemptions))
}

#[derive(Debug, Clone, Copy)]
struct FlatConfig {
    events: u64,
    capacity: usize,
    batch: usize,
    wait: Wait,
}

fn throughput_all(cfg: FlatConfig, pins: &Pinning) -> anyhow::Result<Vec<ThroughputResult>> {
    let mut out = Vec::new();
    let mut push = |label: String, key: &str, (elapsed_ns, preemptions): (u64, Preemptions)| {
        out.push(ThroughputResult { label, key: key.to_owned(), events: cfg.events, elapsed_ns, preemptions });
    };

    let label = "disruptor publish".to_owned();
    let (tx, rx) = disruptor_ring(cfg.capacity, cfg.wait);
    let ns = flat_out(&label, tx, rx, cfg.events, 1, cfg.wait, pins)?;
    push(label, "disruptor_publish", ns);

    let label = format!("disruptor batch_publish({})", cfg.batch);
    let (tx, rx) = disruptor_ring(cfg.capacity, cfg.wait);
    let ns = flat_out(&label, tx, rx, cfg.events, cfg.batch, cfg.wait, pins)?;
    push(label, "disruptor_batch_publish", ns);

    let label = "crossbeam channel try_send/try_recv".to_owned();
    let (tx, rx) = crossbeam_ring(cfg.capacity, cfg.wait);
    let ns = flat_out(&label, tx, rx, cfg.events, 1, cfg.wait, pins)?;
    push(label, "crossbeam_channel", ns);

    let label = "crossbeam ArrayQueue push/pop".to_owned();
    let (tx, rx) = array_queue_ring(cfg.capacity, cfg.wait);
    let ns = flat_out(&label, tx, rx, cfg.events, 1, cfg.wait, pins)?;
    push(label, "array_queue", ns);

    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Machine info and report.
// ---------------------------------------------------------------------------------------------

/// Mean cost of one `now_ns` call (what each latency sample pays once on the consumer side).
fn clock_cost_ns() -> f64 {
    const CALLS: u32 = 1_000_000;
    let origin = Instant::now();
    let mut acc = 0u64;
    for _ in 0..CALLS {
        acc = acc.wrapping_add(now_ns(origin));
    }
    hint::black_box(acc);
    origin.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

struct Percentiles {
    p50: u64,
    p99: u64,
    p999: u64,
    p9999: u64,
    max: u64,
    mean: f64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        p50: h.value_at_quantile(0.50),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        p9999: h.value_at_quantile(0.9999),
        max: h.max(),
        mean: h.mean(),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / (b.max(1)) as f64
}

struct Report<'a> {
    args: &'a Args,
    machine: &'a MachineInfo,
    /// Load average when the run started.
    loadavg_at_start: String,
    /// Mean cost of one clock read, see [`clock_cost_ns`].
    instant_now_ns: f64,
    pins: &'a Pinning,
    command: String,
    paced: &'a PacedConfig,
    flat: &'a FlatConfig,
    latency: &'a [LatencyResult],
    throughput: &'a [ThroughputResult],
}

fn find(latency: &[LatencyResult], ring: RingKind) -> Option<Percentiles> {
    latency.iter().find(|r| r.ring == ring).map(|r| percentiles(&r.hist))
}

fn markdown(r: &Report<'_>) -> String {
    let m = r.machine;
    let mut s = String::new();
    // `write!` to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(s, "## ring-hop: one producer -> consumer hop\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Command | `{}` |", r.command);
    let _ = writeln!(s, "| CPU | {} ({} online CPUs, nproc {}) |", m.cpu_model, m.online_cpus, m.nproc);
    let _ = writeln!(s, "| Kernel / clocksource | {} / {} |", m.kernel, m.clocksource);
    let _ = writeln!(s, "| Load average at start | {} |", r.loadavg_at_start);
    let _ = writeln!(s, "| Pinning | {} |", r.pins.description);
    let _ = writeln!(s, "| Wait (empty/full ring) | {} |", r.args.wait.name());
    let _ = writeln!(s, "| Ring | {} slots x 64-byte events (same for all rings) |", r.paced.capacity);
    let _ = writeln!(
        s,
        "| Clock | `std::time::Instant`, ~{:.1} ns per read (one read is inside every sample) |",
        r.instant_now_ns
    );
    let _ = writeln!(s);

    let _ = writeln!(
        s,
        "### Paced latency: {} events per ring, one every {} ns ({} warmup events not recorded)\n",
        fmt_count(r.paced.messages),
        r.paced.interval_ns,
        fmt_count(r.paced.warmup)
    );
    let _ = writeln!(
        s,
        "| Ring | p50 ns | p99 ns | p99.9 ns | p99.99 ns | max ns | mean ns | p50 / crossbeam | p99 / crossbeam | send rate /s | slips | preempted P / C |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let base = find(r.latency, RingKind::Crossbeam);
    for res in r.latency {
        let p = percentiles(&res.hist);
        let (r50, r99) = match &base {
            Some(b) => (format!("{:.2}x", ratio(p.p50, b.p50)), format!("{:.2}x", ratio(p.p99, b.p99))),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            res.ring.label(),
            p.p50,
            p.p99,
            p.p999,
            p.p9999,
            fmt_count(p.max),
            p.mean,
            r50,
            r99,
            fmt_count(res.send_rate.round() as u64),
            res.slips,
            res.preemptions.show()
        );
    }
    if let (Some(d), Some(c)) = (find(r.latency, RingKind::Disruptor), &base) {
        let _ = writeln!(
            s,
            "\ndisruptor / crossbeam channel: p50 {:.2}x, p99 {:.2}x (below 1 = disruptor faster)",
            ratio(d.p50, c.p50),
            ratio(d.p99, c.p99)
        );
    }
    let _ = writeln!(
        s,
        "\nslips: times the producer fell more than one interval behind schedule (restarted, no \
         burst). preempted P / C: involuntary context switches of the producer / consumer thread \
         during the run; anything above 0 means another task took the core and the tail is \
         scheduler noise, not the ring."
    );
    let _ = writeln!(s);

    let _ = writeln!(s, "### Flat-out throughput: {} events per ring\n", fmt_count(r.flat.events));
    let _ = writeln!(s, "| Ring | Mevents/s | ns/event | elapsed ms | preempted P / C |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|");
    for t in r.throughput {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.2} | {:.1} | {} |",
            t.label,
            t.mevents_per_s(),
            t.elapsed_ns as f64 / t.events.max(1) as f64,
            t.elapsed_ns as f64 / 1e6,
            t.preemptions.show()
        );
    }
    s
}

fn json(r: &Report<'_>) -> serde_json::Value {
    let latency: Vec<serde_json::Value> = r
        .latency
        .iter()
        .map(|res| {
            let p = percentiles(&res.hist);
            serde_json::json!({
                "ring": res.ring.key(),
                "label": res.ring.label(),
                "count": res.hist.len(),
                "p50_ns": p.p50,
                "p99_ns": p.p99,
                "p999_ns": p.p999,
                "p9999_ns": p.p9999,
                "max_ns": p.max,
                "mean_ns": p.mean,
                "min_ns": res.hist.min(),
                "send_rate_per_s": res.send_rate,
                "slips": res.slips,
                "preemptions_producer": res.preemptions.producer,
                "preemptions_consumer": res.preemptions.consumer,
            })
        })
        .collect();
    let throughput: Vec<serde_json::Value> = r
        .throughput
        .iter()
        .map(|t| {
            serde_json::json!({
                "ring": t.key,
                "label": t.label,
                "events": t.events,
                "elapsed_ns": t.elapsed_ns,
                "preemptions_producer": t.preemptions.producer,
                "preemptions_consumer": t.preemptions.consumer,
                "mevents_per_s": t.mevents_per_s(),
            })
        })
        .collect();
    let ratios = match (find(r.latency, RingKind::Disruptor), find(r.latency, RingKind::Crossbeam)) {
        (Some(d), Some(c)) => serde_json::json!({
            "p50": ratio(d.p50, c.p50),
            "p99": ratio(d.p99, c.p99),
        }),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "benchmark": "ring-hop",
        "command": r.command,
        "machine": {
            "cpu_model": r.machine.cpu_model,
            "nproc": r.machine.nproc,
            "online_cpus": r.machine.online_cpus,
            "kernel": r.machine.kernel,
            "clocksource": r.machine.clocksource,
            "loadavg_at_start": r.loadavg_at_start,
            "instant_now_ns": r.instant_now_ns,
        },
        "pinning": r.pins.description,
        "wait": r.args.wait.name(),
        "capacity": r.paced.capacity,
        "paced": {
            "messages": r.paced.messages,
            "warmup": r.paced.warmup,
            "interval_ns": r.paced.interval_ns,
            "results": latency,
            "disruptor_over_crossbeam": ratios,
        },
        "flat_out": {
            "events": r.flat.events,
            "batch": r.flat.batch,
            "results": throughput,
        },
    })
}

/// Entry point of `ringtape-bench ring-hop`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (default_messages, default_events) =
        if args.quick { (QUICK_MESSAGES, QUICK_EVENTS) } else { (DEFAULT_MESSAGES, DEFAULT_EVENTS) };
    let messages = args.messages.unwrap_or(default_messages);
    let events = args.events.unwrap_or(default_events);
    if !args.capacity.is_power_of_two() || args.capacity < 2 {
        bail!("--capacity must be a power of two >= 2 (got {})", args.capacity);
    }
    if args.batch == 0 || args.batch > args.capacity {
        bail!("--batch must be in 1..=capacity ({}), got {}", args.capacity, args.batch);
    }
    ensure!(messages > 0 && events > 0, "--messages and --events must be > 0");

    // Read the core list before anything is pinned.
    let pins = Pinning::plan(args.no_pin);
    let machine = machine_info();
    let loadavg_at_start = loadavg();
    let instant_now_ns = clock_cost_ns();
    let command = command_line();

    let paced_cfg = PacedConfig {
        messages,
        warmup: args.warmup,
        interval_ns: args.interval_ns,
        capacity: args.capacity,
        wait: args.wait,
    };
    let flat_cfg = FlatConfig { events, capacity: args.capacity, batch: args.batch, wait: args.wait };

    let mut latency = Vec::new();
    for ring in RingKind::ALL {
        eprintln!("ring-hop: paced latency, {} ...", ring.label());
        latency.push(paced_ring(ring, paced_cfg, &pins)?);
    }
    eprintln!("ring-hop: flat-out throughput ...");
    let throughput = throughput_all(flat_cfg, &pins)?;

    let report = Report {
        args,
        machine: &machine,
        loadavg_at_start,
        instant_now_ns,
        pins: &pins,
        command,
        paced: &paced_cfg,
        flat: &flat_cfg,
        latency: &latency,
        throughput: &throughput,
    };
    print!("{}", markdown(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json(&report))?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("ring-hop: wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `n` events through a ring (in batches of `batch` if > 1) and return the received
    /// sequence numbers in arrival order.
    fn hop<T: Tx, R: Rx>(tx: T, rx: R, n: u64, batch: usize) -> Vec<u64> {
        let pins = Pinning::none("test");
        let producer = move |mut tx: T| {
            if batch > 1 {
                let mut seq = 0;
                while seq < n {
                    let k = (n - seq).min(batch as u64);
                    tx.send_batch(seq, k as usize, 0);
                    seq += k;
                }
            } else {
                for seq in 0..n {
                    tx.send(HopEvent::new(seq, 0));
                }
            }
        };
        let consumer = |mut rx: R| {
            let mut seen = Vec::new();
            consume_all(&mut rx, Wait::Yield, |ev| {
                assert_eq!(ev.payload, [ev.seq; 6], "payload of event {}", ev.seq);
                seen.push(ev.seq);
            });
            seen
        };
        run_pair(tx, rx, &pins, producer, consumer).expect("hop threads").1
    }

    #[test]
    fn every_ring_delivers_each_event_once_in_order() {
        const N: u64 = 1000;
        // A small ring so that the producer also hits the "ring full" path.
        const CAP: usize = 64;
        let expected: Vec<u64> = (0..N).collect();

        let (tx, rx) = disruptor_ring(CAP, Wait::Yield);
        assert_eq!(hop(tx, rx, N, 1), expected, "disruptor publish");
        // 1000 = 15 * 64 + 40: also exercises a short final batch.
        let (tx, rx) = disruptor_ring(CAP, Wait::Yield);
        assert_eq!(hop(tx, rx, N, 64), expected, "disruptor batch_publish");
        let (tx, rx) = crossbeam_ring(CAP, Wait::Yield);
        assert_eq!(hop(tx, rx, N, 1), expected, "crossbeam channel");
        let (tx, rx) = array_queue_ring(CAP, Wait::Yield);
        assert_eq!(hop(tx, rx, N, 1), expected, "ArrayQueue");
    }

    #[test]
    fn paced_run_records_every_message() {
        let cfg = PacedConfig { messages: 1000, warmup: 10, interval_ns: 1_000, capacity: 64, wait: Wait::Yield };
        let pins = Pinning::none("test");
        for ring in RingKind::ALL {
            let res = paced_ring(ring, cfg, &pins).expect("paced run");
            assert_eq!(res.hist.len(), 1000, "{}", ring.label());
        }
    }
}
