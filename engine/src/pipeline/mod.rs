//! The threaded pipeline: pinned OS threads joined by a `disruptor` ring and `crossbeam` queues.
//!
//! ```text
//!  source --> sequencer ==main ring==> shard 0..N (strategies, simulated books)
//!                             \              | intents, reports (ArrayQueue per shard)
//!                              \=========> risk (in sequence) --> execution --> journal
//!                                            | decisions (portfolio limits only)
//!                                            +--> back to the owning shard
//! ```
//! - The sequencer gives every input one place in one total order (its ring position) and
//!   publishes it on the main ring; shards and risk all read the ring.
//! - Each symbol belongs to one shard (`symbol id % shards`). A shard publishes how far it has
//!   got; risk handles event `seq` only after its owning shard has, so intents reach risk in
//!   sequence order whatever the shard count.
//! - With only per-symbol limits, a shard computes risk's decision itself (the same code on the
//!   same state), so it never waits; with portfolio limits it waits for risk's decision on its
//!   own orders before the symbol's next event. Either way decisions reach the strategy at the
//!   symbol's next event: results are identical across shard counts and runs.
//! - Full rings and queues are never silent: the writer counts the event and waits.
//! - Shutdown is an event: every stage handles it in order, drains, and exits.

pub mod config;
pub mod messages;
pub(crate) mod risk_stage;
pub(crate) mod shard;
pub mod wait;

use crate::merge::Merged;
use crate::records::{ControlKind, Event, EventKind, ExecKind, SymbolId};
use crate::risk::Risk;
use crate::stats::{Positions, sharpe_daily};
use crate::strategy::StrategyFactory;
use crate::symbols::SymbolTable;
use crate::venue::SimBook;
use config::EngineConfig;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use disruptor::{BusySpin, Polling, Producer};
use messages::{Flow, FlowBody, JOURNAL_MAGIC, JOURNAL_RECORD};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wait::{Wait, Waiter};

/// What a source has next.
#[derive(Debug)]
pub enum Next {
    /// An input event.
    Event(Event),
    /// A bar by reference into the run's bar set (zero-copy replay): stream and bar index as in
    /// [`crate::merge::Item`], and the bar's end time.
    BarRef {
        /// Stream index in [`crate::merge::BarSet::streams`].
        stream: u32,
        /// Bar index in the stream.
        index: u64,
        /// The bar's end time (its receive time in a replay).
        ts_recv_ns: i64,
    },
    /// Nothing right now (live sources); try again.
    Idle,
    /// No more input.
    End,
}

/// An input source for the sequencer: bar files, or (later) feeds pushing into an ingress queue.
pub trait Source: Send {
    /// The next input.
    fn next(&mut self) -> Next;
    /// True when the source yields [`Next::BarRef`]s: the run then needs [`RunSpec::bars`].
    fn by_reference(&self) -> bool {
        false
    }
}

/// Replays a bar set at zero delay, in merge order. `ts_recv` is the bar's end time.
#[derive(Debug)]
pub struct BarReplay<'a> {
    merged: Merged<'a>,
    by_ref: bool,
}

impl<'a> BarReplay<'a> {
    /// Replay `merged`, copying each bar into its ring event.
    pub fn new(merged: Merged<'a>) -> Self {
        BarReplay { merged, by_ref: false }
    }

    /// Replay `merged` by reference: the ring carries up to six (stream, index) references per
    /// slot and every stage reads the bars in place in the mapped files. Pass the same bar set as
    /// [`RunSpec::bars`].
    pub fn zero_copy(merged: Merged<'a>) -> Self {
        BarReplay { merged, by_ref: true }
    }
}

impl Source for BarReplay<'_> {
    #[inline]
    fn next(&mut self) -> Next {
        match self.merged.next() {
            Some(it) => {
                let end = it.bar.ts_event_ns.saturating_add(i64::from(it.interval_s) * 1_000_000_000);
                if self.by_ref {
                    Next::BarRef { stream: it.stream, index: it.index, ts_recv_ns: end }
                } else {
                    Next::Event(Event::bar(it.symbol, it.bar, it.interval_s, end))
                }
            }
            None => Next::End,
        }
    }

    fn by_reference(&self) -> bool {
        self.by_ref
    }
}

/// A stream of bars as consumers resolve [`EventKind::BarRefs`] slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamRef<'a> {
    symbol: SymbolId,
    interval_s: u32,
    interval_ns: i64,
    bars: &'a [crate::records::Bar],
}

/// Most streams a zero-copy replay can address (16 bits of the reference).
const MAX_STREAMS: usize = 1 << 16;

/// Call `bar` for every bar reference in a `BarRefs` slot (sequence numbers `seq..`), or `other`
/// for any other event; returns the number of logical events in the slot.
#[inline(always)]
fn expand<'a, S>(
    state: &mut S,
    ev: &Event,
    seq: u64,
    streams: &[StreamRef<'a>],
    bar: impl Fn(&mut S, u64, &StreamRef<'a>, &'a crate::records::Bar),
    other: impl Fn(&mut S, u64, &Event),
) -> u64 {
    if ev.kind != EventKind::BarRefs as u8 {
        other(state, seq, ev);
        return 1;
    }
    let n = usize::from(ev._pad).min(crate::records::MAX_BAR_REFS);
    for (j, &r) in ev.payload[..n].iter().enumerate() {
        let sr = &streams[(r >> 48) as usize];
        bar(state, seq + j as u64, sr, &sr.bars[(r & 0xffff_ffff_ffff) as usize]);
    }
    n as u64
}

/// Counters shared by all stages (updated on rare events only; the hot path stays local).
#[derive(Debug, Default)]
pub struct Counters {
    /// Events published on the main ring.
    pub published: AtomicU64,
    /// Times the sequencer found the main ring full.
    pub ring_full: AtomicU64,
    /// Times a shard found its queue to risk full.
    pub full_shard_to_risk: AtomicU64,
    /// Times risk found a queue to a shard full.
    pub full_risk_to_shard: AtomicU64,
    /// Times risk found its queue to execution full.
    pub full_to_exec: AtomicU64,
    /// Times execution found its queue to the journal full.
    pub full_to_journal: AtomicU64,
    /// Times a shard waited for a risk decision.
    pub shard_waits: AtomicU64,
    /// Times risk waited for a shard.
    pub risk_waits: AtomicU64,
    /// Strategies that panicked (their symbol is faulted).
    pub strategy_faults: AtomicU64,
    /// Events with an unknown kind (rejected).
    pub bad_events: AtomicU64,
    /// Intents emitted after the end of data (ignored).
    pub intents_after_end: AtomicU64,
    /// A shard's own per-symbol risk decision differed from risk's (must stay 0).
    pub prediction_mismatch: AtomicU64,
    /// Strategy report cascades cut at the depth limit.
    pub cascade_limit: AtomicU64,
    /// Control events refused because the control ingress was full.
    pub control_rejected: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Default, serde::Serialize)]
#[allow(missing_docs)] // field names mirror Counters
pub struct CounterSnapshot {
    pub published: u64,
    pub ring_full: u64,
    pub full_shard_to_risk: u64,
    pub full_risk_to_shard: u64,
    pub full_to_exec: u64,
    pub full_to_journal: u64,
    pub shard_waits: u64,
    pub risk_waits: u64,
    pub strategy_faults: u64,
    pub bad_events: u64,
    pub intents_after_end: u64,
    pub prediction_mismatch: u64,
    pub cascade_limit: u64,
    pub control_rejected: u64,
}

impl Counters {
    /// Copy the counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            published: g(&self.published),
            ring_full: g(&self.ring_full),
            full_shard_to_risk: g(&self.full_shard_to_risk),
            full_risk_to_shard: g(&self.full_risk_to_shard),
            full_to_exec: g(&self.full_to_exec),
            full_to_journal: g(&self.full_to_journal),
            shard_waits: g(&self.shard_waits),
            risk_waits: g(&self.risk_waits),
            strategy_faults: g(&self.strategy_faults),
            bad_events: g(&self.bad_events),
            intents_after_end: g(&self.intents_after_end),
            prediction_mismatch: g(&self.prediction_mismatch),
            cascade_limit: g(&self.cascade_limit),
            control_rejected: g(&self.control_rejected),
        }
    }
}

/// Push to a bounded queue; when full, count it, publish our progress (so the stage we wait on
/// can advance), and retry until there is room. Nothing is ever dropped.
#[inline]
pub(crate) fn push_wait<T>(q: &ArrayQueue<T>, v: T, full: &AtomicU64, progress: &AtomicU64, at: u64) {
    let Err(mut v) = q.push(v) else { return };
    full.fetch_add(1, Ordering::Relaxed);
    let cur = progress.load(Ordering::Relaxed);
    if at > cur {
        progress.store(at, Ordering::Release);
    }
    let mut w = Waiter::new(Wait::Backoff);
    loop {
        w.wait();
        match q.push(v) {
            Ok(()) => return,
            Err(back) => v = back,
        }
    }
}

/// A handle to push control events (hotkeys, universe changes, shutdown requests) into the
/// sequencer from other threads. They take their place in the total order like any input.
#[derive(Debug, Clone)]
pub struct ControlIngress {
    q: std::sync::Arc<ArrayQueue<Event>>,
}

impl ControlIngress {
    /// A new ingress with room for `cap` pending events.
    pub fn new(cap: usize) -> Self {
        ControlIngress { q: std::sync::Arc::new(ArrayQueue::new(cap.max(1))) }
    }
    /// Queue an event; `false` when the ingress is full (the caller must report it).
    pub fn push(&self, ev: Event) -> bool {
        self.q.push(ev).is_ok()
    }
}

/// Result of a pipeline run.
#[derive(Debug)]
pub struct RunOutput {
    /// Counters at the end.
    pub counters: CounterSnapshot,
    /// Positions, PnL and round trips.
    pub positions: Positions,
    /// Risk's equity curve facts.
    pub max_drawdown_e9: i128,
    /// Equity at each day's end (day number, e9).
    pub daily_equity: Vec<(i64, i128)>,
    /// Final equity change (cash + marks), e9.
    pub equity_e9: i128,
    /// Rejections per reason (raw reason index).
    pub rejects: [u64; 16],
    /// Daily loss halts.
    pub halts: u64,
    /// Orders accepted by risk.
    pub accepted: u64,
    /// Input events (excluding control).
    pub inputs: u64,
    /// Bars among them.
    pub bars: u64,
    /// Journal records written.
    pub journal_records: u64,
    /// How stages were placed: (stage name, core or None, wait).
    pub placement: Vec<(String, Option<usize>, String)>,
    /// True when the run was stopped early through [`RunSpec::stop`].
    pub interrupted: bool,
}

impl RunOutput {
    /// Sharpe of daily PnL (from the daily equity curve).
    pub fn sharpe(&self) -> f64 {
        let mut prev = 0i128;
        let pnl: Vec<i128> = self
            .daily_equity
            .iter()
            .map(|&(_, eq)| {
                let d = eq - prev;
                prev = eq;
                d
            })
            .collect();
        sharpe_daily(&pnl)
    }
}

/// Pipeline errors.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// Writing the journal failed.
    #[error("{}: {err}", path.display())]
    Journal {
        /// File.
        path: PathBuf,
        /// Error.
        err: std::io::Error,
    },
    /// A stage thread panicked (engine bug).
    #[error("stage {0} panicked")]
    StagePanic(String),
}

/// Everything a run needs besides its source.
#[allow(missing_debug_implementations)]
pub struct RunSpec<'a> {
    /// Engine config.
    pub config: &'a EngineConfig,
    /// Symbols (ids index every per-symbol table).
    pub symbols: &'a SymbolTable,
    /// Builds the strategy of each symbol.
    pub factory: &'a dyn StrategyFactory,
    /// Where the journal and fills.csv go (None: not written).
    pub out_dir: Option<&'a Path>,
    /// Control ingress drained by the sequencer between inputs.
    pub control: Option<ControlIngress>,
    /// The bar set a zero-copy source ([`BarReplay::zero_copy`]) refers to.
    pub bars: Option<&'a crate::merge::BarSet>,
    /// Set from another thread (e.g. a SIGINT handler) to stop early: the sequencer ends the
    /// input, every stage drains, and the output says `interrupted`.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

struct Placement {
    sequencer: Option<core_affinity::CoreId>,
    shards: Vec<Option<core_affinity::CoreId>>,
    risk: Option<core_affinity::CoreId>,
    exec: Option<core_affinity::CoreId>,
    journal: Option<core_affinity::CoreId>,
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
            exec: p.cores.exec.and_then(find),
            journal: p.cores.journal.and_then(find),
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
            exec: c(2 + p.shards),
            journal: c(2 + p.shards),
            hot: Wait::resolve(p.wait, true),
            cold: Wait::resolve(p.wait, false),
        };
    }
    Placement {
        sequencer: None,
        shards: vec![None; p.shards],
        risk: None,
        exec: None,
        journal: None,
        hot: Wait::resolve(p.wait, false),
        cold: Wait::resolve(p.wait, false),
    }
}

fn spawn<'scope, 'env, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    core: Option<core_affinity::CoreId>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(s, move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            f()
        })
        .expect("spawn stage thread")
}

const BATCH: u64 = 256;

/// Run the pipeline over `source` until it ends. `monitor` is called about every 50 ms on the
/// calling thread with the live counters (progress bars, metrics).
pub fn run<S: Source>(
    spec: &RunSpec<'_>,
    source: S,
    monitor: &mut dyn FnMut(&Counters),
) -> Result<RunOutput, PipelineError> {
    let cfg = spec.config;
    let pc = &cfg.pipeline;
    if pc.shards == 0 || pc.shards > 256 {
        return Err(PipelineError::Config(format!("pipeline.shards = {} (use 1..=256)", pc.shards)));
    }
    if !pc.ring_size.is_power_of_two() || pc.ring_size < 64 {
        return Err(PipelineError::Config(format!("pipeline.ring_size = {} (use a power of two >= 64)", pc.ring_size)));
    }
    if pc.queue_size < 64 {
        return Err(PipelineError::Config(format!("pipeline.queue_size = {} (use >= 64)", pc.queue_size)));
    }
    let n_sym = spec.symbols.len();
    let n_shards = pc.shards;
    let streams: Vec<StreamRef<'_>> = match (source.by_reference(), spec.bars) {
        (false, _) => Vec::new(),
        (true, None) => {
            return Err(PipelineError::Config("a zero-copy replay needs RunSpec::bars (the bar set it reads)".into()));
        }
        (true, Some(set)) => {
            if set.streams().len() > MAX_STREAMS {
                return Err(PipelineError::Config(format!(
                    "{} bar files: a zero-copy replay addresses at most {MAX_STREAMS}",
                    set.streams().len()
                )));
            }
            set.streams()
                .iter()
                .map(|st| StreamRef {
                    symbol: st.symbol,
                    interval_s: st.file.header().interval_s,
                    interval_ns: i64::from(st.file.header().interval_s) * 1_000_000_000,
                    bars: st.file.bars(),
                })
                .collect()
        }
    };
    let streams = &streams[..];
    let placement = place(cfg);
    let counters = Counters::default();
    let portfolio = cfg.risk.is_portfolio_level();

    let from_shards: Vec<ArrayQueue<messages::RiskMsg>> =
        (0..n_shards).map(|_| ArrayQueue::new(pc.queue_size)).collect();
    let to_shards: Vec<ArrayQueue<messages::ShardMsg>> =
        (0..n_shards).map(|_| ArrayQueue::new(pc.queue_size)).collect();
    let progress: Vec<CachePadded<AtomicU64>> = (0..n_shards).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
    let pushed: Vec<CachePadded<AtomicU64>> = (0..n_shards).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
    let risk_done = CachePadded::new(AtomicU64::new(0));
    let to_exec: ArrayQueue<Flow> = ArrayQueue::new(pc.queue_size);
    let to_journal: ArrayQueue<Flow> = ArrayQueue::new(pc.queue_size);

    let mut journal = match spec.out_dir {
        Some(dir) => Some(JournalWriter::create(dir, spec.symbols)?),
        None => None,
    };

    // The main ring: one producer (the sequencer), one poller per shard and one for risk.
    let builder = disruptor::build_single_producer(pc.ring_size, Event::default, BusySpin);
    let (risk_poller, builder) = builder.new_event_poller();
    let (first_shard, mut builder) = builder.new_event_poller();
    let mut shard_pollers = vec![first_shard];
    for _ in 1..n_shards {
        let (p, b) = builder.new_event_poller();
        shard_pollers.push(p);
        builder = b;
    }
    let producer = builder.build();

    let mut shards: Vec<shard::Shard<'_>> = Vec::with_capacity(n_shards);
    for k in 0..n_shards {
        let mut syms: Vec<Option<shard::SymState>> = (0..n_sym).map(|_| None).collect();
        for (i, slot) in syms.iter_mut().enumerate() {
            if i % n_shards == k {
                *slot = Some(shard::SymState {
                    strategy: spec.factory.build(spec.symbols.name(SymbolId(i as u32))),
                    book: SimBook::new(&cfg.venue),
                    position: 0,
                    open_orders: 0,
                    next_order_no: 1,
                    pending_seq: None,
                    inbox: std::collections::VecDeque::with_capacity(16),
                    cancel_on_accept: Vec::new(),
                    last_close: 0,
                    last_ts: 0,
                    faulted: false,
                });
            }
        }
        shards.push(shard::Shard {
            syms,
            local_risk: (!portfolio).then(|| Risk::new(cfg.risk.clone(), cfg.venue.clone(), n_sym)),
            to_risk: &from_shards[k],
            from_risk: &to_shards[k],
            progress: &progress[k],
            pushed: &pushed[k],
            risk_done: &risk_done,
            counters: &counters,
            waiter: Waiter::new(placement.hot),
            intents: Vec::with_capacity(16),
            work: Vec::with_capacity(16),
            eod: false,
            depth: 0,
        });
    }
    let mut risk_stage = risk_stage::RiskStage {
        risk: Risk::new(cfg.risk.clone(), cfg.venue.clone(), n_sym),
        n_shards,
        portfolio,
        inputs: cfg.journal.inputs,
        from_shards: &from_shards,
        to_shards: &to_shards,
        progress: &progress,
        pushed: &pushed,
        done: &risk_done,
        to_exec: &to_exec,
        counters: &counters,
        waiter: Waiter::new(placement.hot),
        seen: vec![0; n_shards],
        avail: vec![0; n_shards],
        popped: vec![0; n_shards],
        look: vec![None; n_shards],
        look_seq: vec![risk_stage::NONE; n_shards],
        notices: vec![Vec::new(); n_sym],
        own: Vec::with_capacity(16),
        end: Vec::new(),
    };

    let mut placement_report =
        vec![("sequencer".to_string(), placement.sequencer.map(|c| c.id), format!("{:?}", placement.hot))];
    for (k, c) in placement.shards.iter().enumerate() {
        placement_report.push((format!("shard-{k}"), c.map(|c| c.id), format!("{:?}", placement.hot)));
    }
    placement_report.push(("risk".into(), placement.risk.map(|c| c.id), format!("{:?}", placement.hot)));
    placement_report.push(("exec".into(), placement.exec.map(|c| c.id), format!("{:?}", placement.cold)));
    placement_report.push(("journal".into(), placement.journal.map(|c| c.id), format!("{:?}", placement.cold)));

    let control = spec.control.clone();
    let stop = spec.stop;
    let result = std::thread::scope(|s| {
        let c = &counters;
        let seq_h = spawn(s, "rt-sequencer", placement.sequencer, {
            let hot = placement.hot;
            let batch = (pc.ring_size / 4).clamp(1, BATCH as usize);
            move || sequencer(source, producer, control, stop, c, hot, batch)
        });
        let mut shard_hs = Vec::new();
        for (k, (mut sh, mut poller)) in shards.drain(..).zip(shard_pollers).enumerate() {
            shard_hs.push(spawn(s, &format!("rt-shard-{k}"), placement.shards[k], move || {
                let mut seq = 0u64;
                loop {
                    match poller.take(BATCH) {
                        Ok(mut guard) => {
                            sh.waiter.reset();
                            let mut done = false;
                            for ev in &mut guard {
                                let mut st = (&mut sh, false);
                                seq += expand(
                                    &mut st,
                                    ev,
                                    seq,
                                    streams,
                                    |(sh, _), q, sr, bar| {
                                        sh.handle_bar(q, sr.symbol, bar, bar.ts_event_ns + sr.interval_ns)
                                    },
                                    |(sh, done), q, ev| *done = sh.handle(q, ev),
                                );
                                done = st.1;
                                if done {
                                    break;
                                }
                            }
                            if done {
                                return;
                            }
                            sh.progress.store(seq, Ordering::Release);
                            if !sh.from_risk.is_empty() {
                                sh.drain_from_risk();
                            }
                        }
                        Err(Polling::NoEvents) => sh.waiter.wait(),
                        Err(Polling::Shutdown) => return,
                    }
                }
            }));
        }
        let risk_h = spawn(s, "rt-risk", placement.risk, {
            let mut poller = risk_poller;
            let rs = &mut risk_stage;
            move || {
                let mut seq = 0u64;
                let (mut inputs, mut bars) = (0u64, 0u64);
                loop {
                    match poller.take(BATCH) {
                        Ok(mut guard) => {
                            rs.waiter.reset();
                            for ev in &mut guard {
                                let mut st = (&mut *rs, &mut inputs, &mut bars, false);
                                seq += expand(
                                    &mut st,
                                    ev,
                                    seq,
                                    streams,
                                    |(rs, inputs, bars, _), q, sr, bar| {
                                        **inputs += 1;
                                        **bars += 1;
                                        rs.handle_bar_ref(
                                            q,
                                            sr.symbol,
                                            bar,
                                            sr.interval_s,
                                            bar.ts_event_ns + sr.interval_ns,
                                        );
                                    },
                                    |(rs, inputs, bars, done), q, ev| {
                                        match ev.event_kind() {
                                            Some(EventKind::Control) | None => {}
                                            Some(EventKind::Bar) => {
                                                **inputs += 1;
                                                **bars += 1;
                                            }
                                            Some(_) => **inputs += 1,
                                        }
                                        *done = rs.handle(q, ev);
                                    },
                                );
                                if st.3 {
                                    return (inputs, bars);
                                }
                            }
                            rs.done.store(seq, Ordering::Release);
                        }
                        Err(Polling::NoEvents) => rs.waiter.wait(),
                        Err(Polling::Shutdown) => return (inputs, bars),
                    }
                }
            }
        });
        let exec_h = spawn(s, "rt-exec", placement.exec, {
            let cold = placement.cold;
            let (to_exec, to_journal) = (&to_exec, &to_journal);
            move || exec_stage(to_exec, to_journal, c, n_sym, cold)
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let journal_h = spawn(s, "rt-journal", placement.journal, {
            let cold = placement.cold;
            let to_journal = &to_journal;
            let j = journal.as_mut();
            move || {
                let r = journal_stage(to_journal, j, cold);
                let _ = done_tx.send(());
                r
            }
        });

        // The calling thread only watches: it wakes when the journal (the last stage) is done,
        // or every 50 ms to report progress.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(Duration::from_millis(50)) {
            monitor(c);
        }
        monitor(c);
        fn join<T>(name: &str, r: std::thread::Result<T>) -> Result<T, PipelineError> {
            r.map_err(|_| PipelineError::StagePanic(name.into()))
        }
        let interrupted = join("sequencer", seq_h.join())?;
        for h in shard_hs {
            join("shard", h.join())?;
        }
        let (inputs, bars) = join("risk", risk_h.join())?;
        let (positions, accepted) = join("exec", exec_h.join())?;
        let records = join("journal", journal_h.join())??;
        Ok::<_, PipelineError>((inputs, bars, positions, accepted, records, interrupted))
    });
    let (inputs, bars, positions, accepted, journal_records, interrupted) = result?;
    if let Some(j) = journal {
        j.finish()?;
    }
    let risk = &risk_stage.risk;
    Ok(RunOutput {
        counters: counters.snapshot(),
        positions,
        max_drawdown_e9: risk.max_drawdown_e9(),
        daily_equity: risk.daily_equity().to_vec(),
        equity_e9: risk.equity_e9(),
        rejects: risk.rejects,
        halts: risk.halts,
        accepted,
        inputs,
        bars,
        journal_records,
        placement: placement_report,
        interrupted,
    })
}

fn sequencer<S: Source, P: Producer<Event>>(
    mut source: S,
    mut producer: P,
    control: Option<ControlIngress>,
    stop: Option<&std::sync::atomic::AtomicBool>,
    counters: &Counters,
    wait: Wait,
    batch: usize,
) -> bool {
    // A batch must fit in the ring: try_batch_publish needs that many free slots at once.
    let mut buf: Vec<Event> = Vec::with_capacity(batch);
    let mut waiter = Waiter::new(wait);
    let mut last_ts = 0i64;
    let mut ended = false;
    let mut interrupted = false;
    let mut logical = 0u64;
    loop {
        buf.clear();
        if let Some(c) = &control {
            while buf.len() < batch / 2 {
                match c.q.pop() {
                    Some(ev) => buf.push(ev),
                    None => break,
                }
            }
        }
        let mut open_refs = false;
        while !ended && buf.len() < batch {
            match source.next() {
                Next::Event(ev) => {
                    last_ts = ev.ts_recv_ns;
                    buf.push(ev);
                    open_refs = false;
                    logical += 1;
                }
                Next::BarRef { stream, index, ts_recv_ns } => {
                    last_ts = ts_recv_ns;
                    logical += 1;
                    let r = u64::from(stream) << 48 | index;
                    match buf.last_mut() {
                        Some(slot) if open_refs && usize::from(slot._pad) < crate::records::MAX_BAR_REFS => {
                            slot.payload[usize::from(slot._pad)] = r;
                            slot._pad += 1;
                        }
                        _ => {
                            let mut slot =
                                Event { kind: EventKind::BarRefs.raw(), _pad: 1, ts_recv_ns, ..Event::default() };
                            slot.payload[0] = r;
                            buf.push(slot);
                            open_refs = true;
                        }
                    }
                }
                Next::Idle => break,
                Next::End => ended = true,
            }
        }
        if stop.is_some_and(|f| f.load(Ordering::Relaxed)) && !ended {
            ended = true;
            interrupted = true;
        }
        if ended && buf.is_empty() {
            break;
        }
        if buf.is_empty() {
            waiter.wait();
            continue;
        }
        waiter.reset();
        publish_all(&mut producer, &buf, counters);
        counters.published.store(logical, Ordering::Relaxed);
    }
    let end = [
        Event::control(ControlKind::EndOfData, last_ts, [0; 4]),
        Event::control(ControlKind::Shutdown, last_ts, [0; 4]),
    ];
    publish_all(&mut producer, &end, counters);
    counters.published.store(logical + 2, Ordering::Relaxed);
    interrupted
}

#[inline]
fn publish_all<P: Producer<Event>>(producer: &mut P, evs: &[Event], counters: &Counters) {
    let mut waiter = Waiter::new(Wait::Backoff);
    let mut counted = false;
    loop {
        let r = producer.try_batch_publish(evs.len(), |iter| {
            for (slot, ev) in iter.zip(evs) {
                *slot = *ev;
            }
        });
        match r {
            Ok(_) => return,
            Err(_) => {
                if !counted {
                    counters.ring_full.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                }
                waiter.wait();
            }
        }
    }
}

fn pop_wait<T>(q: &ArrayQueue<T>, waiter: &mut Waiter) -> T {
    loop {
        if let Some(v) = q.pop() {
            waiter.reset();
            return v;
        }
        waiter.wait();
    }
}

fn is_shutdown(f: &Flow) -> bool {
    matches!(&f.body, FlowBody::Input(ev) if ev.as_control().is_some_and(|c| c.kind == ControlKind::Shutdown.raw()))
}

/// Execution: the order manager and position tracker. In simulation the venue's reports arrive
/// from the shards through risk; it tracks positions and round trips and passes everything to
/// the journal.
fn exec_stage(
    input: &ArrayQueue<Flow>,
    journal: &ArrayQueue<Flow>,
    counters: &Counters,
    n_sym: usize,
    wait: Wait,
) -> (Positions, u64) {
    let mut positions = Positions::new(n_sym);
    let mut accepted = 0u64;
    let mut waiter = Waiter::new(wait);
    let dummy = AtomicU64::new(0);
    loop {
        let f = pop_wait(input, &mut waiter);
        match &f.body {
            FlowBody::Report(r) => positions.on_report(r),
            FlowBody::Decision { reason, .. } if *reason == crate::records::Reason::None => accepted += 1,
            _ => {}
        }
        let stop = is_shutdown(&f);
        push_wait(journal, f, &counters.full_to_journal, &dummy, 0);
        if stop {
            return (positions, accepted);
        }
    }
}

fn journal_stage(
    input: &ArrayQueue<Flow>,
    mut j: Option<&mut JournalWriter>,
    wait: Wait,
) -> Result<u64, PipelineError> {
    let mut waiter = Waiter::new(wait);
    let mut n = 0u64;
    loop {
        let f = pop_wait(input, &mut waiter);
        if let Some(j) = j.as_deref_mut() {
            j.write(&f)?;
        }
        n += 1;
        if is_shutdown(&f) {
            return Ok(n);
        }
    }
}

/// Writes `journal.rtj` (binary records) and `fills.csv` into the run directory.
struct JournalWriter {
    dir: PathBuf,
    journal: std::io::BufWriter<std::fs::File>,
    fills: std::io::BufWriter<std::fs::File>,
    names: Vec<String>,
    line: Vec<u8>,
}

impl JournalWriter {
    fn create(dir: &Path, symbols: &SymbolTable) -> Result<Self, PipelineError> {
        let jpath = dir.join("journal.rtj");
        let e = |path: &Path| {
            let path = path.to_path_buf();
            move |err| PipelineError::Journal { path, err }
        };
        std::fs::create_dir_all(dir).map_err(e(dir))?;
        let mut journal = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&jpath).map_err(e(&jpath))?);
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&JOURNAL_MAGIC);
        header[8..10].copy_from_slice(&1u16.to_le_bytes());
        header[10..12].copy_from_slice(&(JOURNAL_RECORD as u16).to_le_bytes());
        journal.write_all(&header).map_err(e(&jpath))?;
        let fpath = dir.join("fills.csv");
        let mut fills = std::io::BufWriter::with_capacity(1 << 18, std::fs::File::create(&fpath).map_err(e(&fpath))?);
        writeln!(fills, "ts,symbol,side,qty,price,commission,order_id,reason").map_err(e(&fpath))?;
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            journal,
            fills,
            names: symbols.names().to_vec(),
            line: Vec::with_capacity(128),
        })
    }

    fn write(&mut self, f: &Flow) -> Result<(), PipelineError> {
        let jerr = |err| PipelineError::Journal { path: self.dir.join("journal.rtj"), err };
        self.journal.write_all(&f.encode()).map_err(jerr)?;
        if let FlowBody::Report(r) = &f.body
            && r.exec_kind().is_some_and(ExecKind::is_fill)
        {
            use crate::text::{write_px, write_ts, write_u64};
            let name = self.names.get(r.symbol.0 as usize).map_or("?", String::as_str);
            let side = r.exec_side().map_or("?", |s| s.as_str());
            let reason = r.exec_reason().map_or("?", |r| r.as_str());
            let b = &mut self.line;
            b.clear();
            write_ts(b, r.ts_event_ns);
            b.push(b',');
            b.extend_from_slice(name.as_bytes());
            b.push(b',');
            b.extend_from_slice(side.as_bytes());
            b.push(b',');
            write_u64(b, u64::from(r.fill_qty));
            b.push(b',');
            write_px(b, r.fill_px_e9, 2);
            b.push(b',');
            write_px(b, r.commission_e9, 2);
            b.push(b',');
            write_u64(b, r.order_id.0);
            b.push(b',');
            b.extend_from_slice(reason.as_bytes());
            b.push(b'\n');
            self.fills.write_all(b).map_err(|err| PipelineError::Journal { path: self.dir.join("fills.csv"), err })?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), PipelineError> {
        let jerr = |p: &str| {
            let path = self.dir.join(p);
            move |err| PipelineError::Journal { path, err }
        };
        self.journal.flush().map_err(jerr("journal.rtj"))?;
        self.fills.flush().map_err(jerr("fills.csv"))?;
        Ok(())
    }
}
