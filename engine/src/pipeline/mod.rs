//! The pipeline: the same stage code wired two ways.
//!
//! ```text
//!  sources (bar replay, scripts) --+
//!  ingress (feeds, broker reports, -+-> sequencer: one total order, clock ticks
//!   hotkeys, universe changes)     |          |
//!                                             v
//!                      +-------------- shard 0..N (strategies; symbol -> shard_of)
//!                      |                      | intents, lifecycle   ^ reports (tagged by seq)
//!                      v                      v                      |
//!                    risk: portfolio checks in sequence --> execution (order manager) --> venue
//!                                             |                       (simulated, or a broker)
//!                                             v
//!                                 recorder: positions, journal.rtj, fills.csv
//! ```
//! - **Topologies** ([`config::Topology`]): `inline` calls the stages in order on one thread (no
//!   rings, no threads: backtests, Monte Carlo, sweeps); `threads` runs the sequencer, each shard,
//!   risk (with execution) and the recorder on pinned threads joined by a `disruptor` ring and
//!   `crossbeam` queues (live runs on dedicated cores). Results are identical across topologies
//!   and shard counts: every message carries the sequence number of the event that caused it, and
//!   a shard syncs with risk before handing a symbol an event whenever reports may be in flight.
//! - **The venue seam** ([`crate::venue::Venue`]): execution sends orders risk accepted to a
//!   venue and applies its reports; risk's own flattening orders take the same road.
//! - **Many inputs, one order**: the sequencer merges time-ordered sources, drains the
//!   [`Ingress`] and emits clock ticks ([`Clock`]); a full ingress makes the sender wait or
//!   hands its event back, counted.
//! - **A living universe**: `AddSymbol`/`RemoveSymbol` control events are applied by every stage
//!   at their place in the order; tables grow; an unknown symbol id is counted, never a panic.
//! - **Failing loudly**: a panicking strategy faults only its symbol; a panicking or stuck stage
//!   ends the run with an error naming it; a stop request ends the input and drains.
//! - **Runtime metrics** ([`probes`], off unless [`RunSpec::probes`]): per-stage latency
//!   histograms and queue occupancy, recorded by each stage thread without waiting and read through
//!   [`Counters::probes`]; they never feed a decision.

mod batch;
pub mod config;
mod counters;
mod execution;
mod inline;
mod journal_writer;
pub mod messages;
pub mod probes;
mod recorder;
mod risk_stage;
mod sequencer;
mod shard;
mod source;
mod threads;
pub mod wait;

pub use batch::run_batch;
pub use counters::{CounterSnapshot, Counters, Gauges};
pub use journal_writer::FILLS_HEADER;
pub use sequencer::{Clock, Ingress, IngressFull};
pub use source::{BarReplay, Live, Next, Script, Source};

use crate::records::{Reason, SymbolId};
use crate::risk::Risk;
use crate::stats::{Positions, sharpe_daily};
use crate::strategy::StrategyFactory;
use crate::symbols::SymbolTable;
use crate::venue::{SimVenue, Venue};
use config::{EngineConfig, JournalInputs, Topology};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The one rule that says which shard owns a symbol.
#[inline]
pub fn shard_of(symbol: SymbolId, n_shards: usize) -> usize {
    symbol.0 as usize % n_shards.max(1)
}

/// Everything a run needs besides its primary source.
#[allow(missing_debug_implementations)]
pub struct RunSpec<'a> {
    /// Engine config.
    pub config: &'a EngineConfig,
    /// The universe at the start (ids index every per-symbol table; more can be added).
    pub symbols: &'a SymbolTable,
    /// Builds the strategy of each symbol.
    pub factory: &'a dyn StrategyFactory,
    /// Where the journal and fills.csv go (None: not written).
    pub out_dir: Option<&'a Path>,
    /// The bar set a zero-copy source ([`BarReplay::zero_copy`]) refers to.
    pub bars: Option<&'a crate::merge::BarSet>,
    /// Set from another thread (e.g. a SIGINT handler) to stop early: the sequencer ends the
    /// input, every stage drains, and the output says `interrupted`.
    pub stop: Option<&'a AtomicBool>,
    /// More time-ordered sources merged with the primary one (scripted control, replays).
    pub sources: Vec<Box<dyn Source + 'a>>,
    /// Inputs pushed from other threads (feeds, broker reports, hotkeys, universe changes).
    pub ingress: Option<Ingress>,
    /// Where clock ticks come from (event time unless a live run says otherwise).
    pub clock: Clock<'a>,
    /// The venue (default: the simulated venue from `config.venue`).
    pub venue: Option<Box<dyn Venue>>,
    /// Called once when a stage reported stuck still has not returned after another
    /// `stall_timeout_ms` (threads topology): a thread stuck in an endless loop cannot be unwound,
    /// so a binary would print the error and exit here rather than hang.
    pub on_stuck: Option<&'a (dyn Fn(&PipelineError) + Sync)>,
    /// Sees every step of the decision flow, in order, on the recorder's thread (a live viewer's
    /// tap). Must not block: it runs inside the pipeline. None costs nothing.
    pub observer: Option<&'a (dyn Fn(&messages::Flow) + Sync)>,
    /// Record per-stage latency histograms and queue occupancy ([`probes`]): read live through
    /// [`Counters::probes`] (the monitor gets the counters) and in [`RunOutput::probes`] at the
    /// end. Off by default: paper runs turn them on, backtests only when asked. Decisions are
    /// the same either way.
    pub probes: bool,
}

impl<'a> RunSpec<'a> {
    /// A spec with no journal, no extra inputs, event-time ticks and the simulated venue.
    pub fn new(config: &'a EngineConfig, symbols: &'a SymbolTable, factory: &'a dyn StrategyFactory) -> Self {
        RunSpec {
            config,
            symbols,
            factory,
            out_dir: None,
            bars: None,
            stop: None,
            sources: Vec::new(),
            ingress: None,
            clock: Clock::Event,
            venue: None,
            on_stuck: None,
            observer: None,
            probes: false,
        }
    }
    /// Record latency histograms and queue occupancy (see [`RunSpec::probes`]).
    pub fn probes(mut self, on: bool) -> Self {
        self.probes = on;
        self
    }
    /// Write the journal and fills.csv into `dir`.
    pub fn out_dir(mut self, dir: &'a Path) -> Self {
        self.out_dir = Some(dir);
        self
    }
    /// The bar set a zero-copy replay reads.
    pub fn bars(mut self, set: &'a crate::merge::BarSet) -> Self {
        self.bars = Some(set);
        self
    }
    /// A stop flag.
    pub fn stop(mut self, flag: &'a AtomicBool) -> Self {
        self.stop = Some(flag);
        self
    }
    /// Merge another time-ordered source.
    pub fn source(mut self, s: impl Source + 'a) -> Self {
        self.sources.push(Box::new(s));
        self
    }
    /// Take inputs from `ingress` too.
    pub fn ingress(mut self, ingress: Ingress) -> Self {
        self.ingress = Some(ingress);
        self
    }
    /// Use `venue` instead of the simulated venue.
    pub fn venue(mut self, venue: Box<dyn Venue>) -> Self {
        self.venue = Some(venue);
        self
    }
    /// What to do when a stuck stage does not return (see [`RunSpec::on_stuck`]).
    pub fn on_stuck(mut self, f: &'a (dyn Fn(&PipelineError) + Sync)) -> Self {
        self.on_stuck = Some(f);
        self
    }
    /// Show every step of the decision flow to `f` (see [`RunSpec::observer`]).
    pub fn observe(mut self, f: &'a (dyn Fn(&messages::Flow) + Sync)) -> Self {
        self.observer = Some(f);
        self
    }
    /// Tick from `clock`.
    pub fn clock(mut self, clock: Clock<'a>) -> Self {
        self.clock = clock;
        self
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
    pub rejects: [u64; 32],
    /// Daily loss halts.
    pub halts: u64,
    /// Orders accepted by risk.
    pub accepted: u64,
    /// Input events (excluding control and ticks).
    pub inputs: u64,
    /// Bars among them.
    pub bars: u64,
    /// Journal records written.
    pub journal_records: u64,
    /// The topology that ran.
    pub topology: Topology,
    /// The venue's name.
    pub venue: &'static str,
    /// How stages were placed: (stage name, core or None, wait). Empty for `inline`.
    pub placement: Vec<(String, Option<usize>, String)>,
    /// True when the run was stopped early through [`RunSpec::stop`].
    pub interrupted: bool,
    /// Latency histograms and queue occupancy at the end (None unless [`RunSpec::probes`]).
    pub probes: Option<probes::ProbeSnapshot>,
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

    /// Rejections of one reason.
    pub fn rejects_for(&self, r: Reason) -> u64 {
        self.rejects[r.raw() as usize]
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
    /// A stage panicked (an engine bug, not a strategy: those fault only their symbol).
    #[error("stage {0} panicked; the run was stopped")]
    StagePanic(String),
    /// A stage made no progress for longer than `pipeline.stall_timeout_ms`.
    #[error("stage {stage} made no progress for {secs:.1} s at event {seq}; the run was stopped")]
    StageStuck {
        /// The stage.
        stage: String,
        /// The last event it finished.
        seq: u64,
        /// How long it was stuck.
        secs: f64,
    },
}

/// The topology a run will use.
///
/// `auto`: live inputs run on threads. A replay of files runs inline, except a large one
/// ([`AUTO_THREADS_MIN_BARS`] bars or more) with one shard on a machine with two cores or more:
/// then the sequencer (the merge of the files) gets one core and the shard with risk another, which
/// measured faster end to end on the 2-core project machine (BENCHMARKS.md). Many small runs in one
/// process (Monte Carlo, sweeps) stay inline, where building a run costs under a microsecond.
pub fn pick_topology(cfg: &EngineConfig, live: bool, bars: u64, cores: usize) -> Topology {
    match cfg.pipeline.topology {
        Topology::Auto if live => Topology::Threads,
        Topology::Auto if bars >= AUTO_THREADS_MIN_BARS && cores >= 2 && cfg.pipeline.shards == 1 => Topology::Threads,
        Topology::Auto => Topology::Inline,
        t => t,
    }
}

/// The replay size from which `auto` runs on threads (see [`pick_topology`]).
pub const AUTO_THREADS_MIN_BARS: u64 = 1_000_000;

/// The whole config is checked before a run builds anything (see [`config::EngineConfig::validate`]);
/// warnings are the caller's to show.
fn check(cfg: &EngineConfig, cores: usize) -> Result<(), PipelineError> {
    cfg.validate(cores).map(drop).map_err(|e| PipelineError::Config(e.to_string()))
}

/// Run the pipeline over `source` (and the spec's other inputs) until they end or a stop is
/// requested. `monitor` is called now and then on the calling thread with the live counters
/// (progress bars, metrics).
pub fn run<S: Source>(
    spec: RunSpec<'_>,
    source: S,
    monitor: &mut dyn FnMut(&Counters),
) -> Result<RunOutput, PipelineError> {
    let cfg = spec.config;
    // Read once, before anything is pinned (core_affinity lists the calling thread's cores).
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len().max(1));
    check(cfg, cores)?;
    let streams = stream_refs(source.by_reference(), spec.bars)?;
    let live = spec.ingress.is_some() || matches!(spec.clock, Clock::Wall(_));
    let bars = spec.bars.map_or(0, crate::merge::BarSet::total_bars);
    let topology = pick_topology(cfg, live, bars, cores);
    let names = spec.symbols.names();
    let counters = Counters { probes: probes::Probes::new(spec.probes), ..Counters::default() };
    if let Some(ing) = &spec.ingress {
        counters.probes.watch_ingress(ing);
    }
    let n_shards = if topology == Topology::Inline { 1 } else { cfg.pipeline.shards };
    let (mut risk, mut rec, venue_name) =
        stages(cfg, names, spec.venue, spec.out_dir, spec.observer, &counters, n_shards)?;
    let mut seqr =
        sequencer::Sequencer::new(source, spec.sources, spec.ingress, spec.stop, spec.clock, cfg.pipeline.timer_ms);
    let risk_flattens = cfg.risk.max_daily_loss_usd > 0;
    let placement = match topology {
        Topology::Threads => {
            let shards = (0..n_shards)
                .map(|k| shard::Shard::new(k, n_shards, names, spec.factory, &counters, risk_flattens))
                .collect();
            threads::run(cfg, &mut seqr, &streams, shards, &mut risk, &mut rec, &counters, monitor, spec.on_stuck)?
        }
        Topology::Inline | Topology::Auto => {
            let shard = shard::Shard::new(0, 1, names, spec.factory, &counters, risk_flattens);
            let watchdog = spec.on_stuck.map(|f| (f, cfg.pipeline.stall_timeout_ms));
            inline::run(&mut seqr, &streams, shard, &mut risk, &mut rec, &counters, monitor, watchdog)?;
            Vec::new()
        }
    };
    risk.finish_probe();
    monitor(&counters);
    let ended = Ended { ticks: seqr.ticks, interrupted: seqr.interrupted, topology, venue: venue_name, placement };
    output(&risk, rec, &counters, ended)
}

/// The bar streams a zero-copy replay (`by_reference`) reads its bars from; none otherwise.
fn stream_refs(
    by_reference: bool,
    bars: Option<&crate::merge::BarSet>,
) -> Result<Vec<source::StreamRef<'_>>, PipelineError> {
    match (by_reference, bars) {
        (false, _) => Ok(Vec::new()),
        (true, None) => {
            Err(PipelineError::Config("a zero-copy replay needs RunSpec::bars (the bar set it reads)".into()))
        }
        (true, Some(set)) if set.streams().len() > source::MAX_STREAMS => Err(PipelineError::Config(format!(
            "{} bar files: a zero-copy replay addresses at most {}",
            set.streams().len(),
            source::MAX_STREAMS
        ))),
        (true, Some(set)) => Ok(source::stream_refs(set)),
    }
}

/// Risk (with execution and its venue) and the recorder of one run, before a topology wires
/// them: the venue is the spec's or a simulated one built from the config.
#[allow(clippy::type_complexity)]
fn stages<'c>(
    cfg: &EngineConfig,
    names: &[String],
    venue: Option<Box<dyn Venue>>,
    out_dir: Option<&Path>,
    observer: Option<&'c (dyn Fn(&messages::Flow) + Sync)>,
    counters: &'c Counters,
    n_shards: usize,
) -> Result<(risk_stage::RiskStage<'c>, recorder::Recorder<'c>, &'static str), PipelineError> {
    let n_sym = names.len();
    let venue = venue.unwrap_or_else(|| Box::new(SimVenue::new(&cfg.venue, n_sym)));
    let venue_name = venue.name();
    let exec = execution::Execution::new(venue, n_sym);
    let risk = risk_stage::RiskStage::new(
        Risk::new(cfg.risk.clone(), n_sym),
        exec,
        n_sym,
        n_shards,
        cfg.journal.inputs == JournalInputs::All,
        counters,
    );
    let journal = match out_dir {
        Some(dir) => Some(journal_writer::JournalWriter::create(dir)?),
        None => None,
    };
    Ok((risk, recorder::Recorder::new(names, journal, &counters.gauges, observer), venue_name))
}

/// How a run ended, for [`RunOutput`].
struct Ended {
    ticks: u64,
    interrupted: bool,
    topology: Topology,
    venue: &'static str,
    placement: Vec<(String, Option<usize>, String)>,
}

/// A finished run's output: the recorder is closed (its journal flushed) and risk's books read.
fn output(
    risk: &risk_stage::RiskStage<'_>,
    rec: recorder::Recorder<'_>,
    counters: &Counters,
    ended: Ended,
) -> Result<RunOutput, PipelineError> {
    counters.timer_ticks.store(ended.ticks, std::sync::atomic::Ordering::Relaxed);
    let journal_records = rec.records;
    let positions = rec.finish()?;
    let r = &risk.risk;
    Ok(RunOutput {
        counters: counters.snapshot(),
        positions,
        max_drawdown_e9: r.max_drawdown_e9(),
        daily_equity: r.daily_equity().to_vec(),
        equity_e9: r.equity_e9(),
        rejects: r.rejects,
        halts: r.halts,
        accepted: risk.accepted,
        inputs: risk.inputs,
        bars: risk.bars,
        journal_records,
        topology: ended.topology,
        venue: ended.venue,
        placement: ended.placement,
        interrupted: ended.interrupted,
        probes: counters.probes.snapshot(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_threads_for_live_and_large_replays_on_two_cores() {
        let mut cfg = EngineConfig::default();
        let big = AUTO_THREADS_MIN_BARS;
        assert_eq!(pick_topology(&cfg, true, 0, 1), Topology::Threads, "live inputs");
        assert_eq!(pick_topology(&cfg, false, 1_563, 2), Topology::Inline, "a small replay");
        assert_eq!(pick_topology(&cfg, false, big, 2), Topology::Threads, "a large replay on 2 cores");
        assert_eq!(pick_topology(&cfg, false, big, 1), Topology::Inline, "one core");
        cfg.pipeline.shards = 2;
        assert_eq!(pick_topology(&cfg, false, big, 2), Topology::Inline, "several shards time-share");
        cfg.pipeline.topology = Topology::Threads;
        assert_eq!(pick_topology(&cfg, false, 10, 1), Topology::Threads, "asked for");
    }
}
