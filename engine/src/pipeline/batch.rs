//! Lock-step batches: many runs of the same inputs on one thread, over one sequencer pass.
//!
//! A Monte Carlo study replays the same bars N times, each time with a differently seeded venue.
//! The merge of the bar files and the sequencer's total order (bars, clock ticks, end of data,
//! shutdown) are the same in every one of those runs; only the stages' state differs. A batch
//! takes each input from one sequencer once and hands it to every run's own stages in turn (risk
//! with execution and its venue, the shard with the strategies, the recorder), on the inline
//! topology. Nothing is shared between the runs but the input, so each run's output is exactly
//! what [`super::run`] gives for its spec alone (a test checks it); the batch saves N-1 merges
//! and sequencer passes and reads each bar once while it is hot in the cache.
//!
//! What a batch takes: specs over the same bar set and symbols, with the same clock period
//! (`pipeline.timer_ms`), event-time clocks, and no other inputs (no scripted sources, ingress,
//! stop flag, watchdog or latency probes: those belong to live runs). Journals (`out_dir`), venues, strategies
//! and configs may differ. The pipeline's topology setting is not used: a batch is inline.

use super::config::Topology;
use super::inline::{Lane, Links, run_lanes};
use super::source::Source;
use super::{Clock, Counters, Ended, PipelineError, RunOutput, RunSpec, output, sequencer, shard, stages, stream_refs};
use std::sync::atomic::AtomicU8;

/// What a batch refuses, checked before anything is built.
fn check(specs: &[RunSpec<'_>]) -> Result<(), PipelineError> {
    let refuse = |why: &str| Err(PipelineError::Config(format!("a lock-step batch {why}")));
    let Some(first) = specs.first() else { return refuse("needs at least one run") };
    for (i, s) in specs.iter().enumerate() {
        if !s.sources.is_empty() || s.ingress.is_some() || s.stop.is_some() || s.on_stuck.is_some() {
            return refuse(&format!("takes replays only: run {i} has live inputs, a stop flag or a watchdog"));
        }
        if s.probes {
            return refuse(&format!("records no latency probes (run {i} asks for them): run it alone"));
        }
        if !matches!(s.clock, Clock::Event) {
            return refuse(&format!("runs on event time: run {i} has a wall clock"));
        }
        if s.config.pipeline.timer_ms != first.config.pipeline.timer_ms {
            return refuse(&format!("needs one clock period: run {i} has a different pipeline.timer_ms"));
        }
        let same_bars = match (s.bars, first.bars) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same_bars || s.symbols.names() != first.symbols.names() {
            return refuse(&format!("replays one data set: run {i} has other bars or symbols"));
        }
    }
    Ok(())
}

/// Run `specs` in lock step over `source` on the calling thread; one output per spec, in order.
/// Fails as a whole when a spec is refused (see the module docs), when any run's config is
/// invalid, or at the first run that fails (a journal that cannot be written, a stage panic).
pub fn run_batch<S: Source>(specs: Vec<RunSpec<'_>>, source: S) -> Result<Vec<RunOutput>, PipelineError> {
    check(&specs)?;
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len().max(1));
    for s in &specs {
        super::check(s.config, cores)?;
    }
    let streams = stream_refs(source.by_reference(), specs[0].bars)?;
    let names = specs[0].symbols.names();
    let timer_ms = specs[0].config.pipeline.timer_ms;
    let counters: Vec<Counters> = specs.iter().map(|_| Counters::default()).collect();
    let stage = AtomicU8::new(0);
    let mut lanes = Vec::with_capacity(specs.len());
    let mut venues = Vec::with_capacity(specs.len());
    for (spec, c) in specs.into_iter().zip(&counters) {
        let cfg = spec.config;
        let (risk, rec, venue) = stages(cfg, names, spec.venue, spec.out_dir, spec.observer, c, 1)?;
        let shard = shard::Shard::new(0, 1, names, spec.factory, c, cfg.risk.max_daily_loss_usd > 0);
        lanes.push(Lane { risk, links: Links::new(shard, rec, &stage), counters: c, done: false });
        venues.push(venue);
    }
    let mut seqr = sequencer::Sequencer::new(source, Vec::new(), None, None, Clock::Event, timer_ms);
    run_lanes(&mut seqr, &streams, &mut lanes, &stage)?;
    let mut outs = Vec::with_capacity(lanes.len());
    for (lane, venue) in lanes.into_iter().zip(venues) {
        let (err, rec) = lane.links.into_sink();
        if let Some(e) = err {
            return Err(e);
        }
        let ended =
            Ended { ticks: seqr.ticks, interrupted: false, topology: Topology::Inline, venue, placement: Vec::new() };
        outs.push(output(&lane.risk, rec, lane.counters, ended)?);
    }
    Ok(outs)
}
