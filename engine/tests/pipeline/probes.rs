//! Runtime metrics: per-stage latency histograms and queue occupancy on the real threads
//! topology, fed through the ingress in one burst. Counts and orderings only (no timing).

use super::bar;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::probes::{ProbeSnapshot, Queue, STAGES, Stage};
use engine::pipeline::{Ingress, Next, RunOutput, RunSpec, Source, run};
use engine::records::{Bar, Event, Side, SymbolId};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;

/// Buys one share on every 4th bar of its symbol and sells it two bars later.
#[derive(Default)]
struct Flip {
    n: u64,
}
impl Strategy for Flip {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _b: &Bar) {
        match self.n % 4 {
            0 => {
                ctx.submit(OrderRequest::market(Side::Buy, 1));
            }
            2 if ctx.position() > 0 => {
                ctx.submit(OrderRequest::market(Side::Sell, 1));
            }
            _ => {}
        }
        self.n += 1;
    }
}
struct FlipFactory;
impl StrategyFactory for FlipFactory {
    fn name(&self) -> &str {
        "flip"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Flip::default())
    }
}

/// A primary source that pushes its whole burst into the ingress on the sequencer's first call
/// (after the run started, so each push is stamped), then ends; the sequencer drains the ingress
/// before it ends the input.
struct Burst(Ingress, Vec<Event>);
impl Source for Burst {
    fn next(&mut self) -> Next {
        for ev in self.1.drain(..) {
            self.0.try_push(ev).expect("the ingress holds the whole burst");
        }
        Next::End
    }
}

const BARS_PER_SYMBOL: i64 = 40;

fn burst() -> Vec<Event> {
    let mut evs = Vec::new();
    for i in 0..BARS_PER_SYMBOL {
        for s in 0..2u32 {
            let b = bar(i, 10, 11, 9, 10);
            evs.push(Event::bar(SymbolId(s), &b, 60, b.ts_event_ns + 60_000_000_000));
        }
    }
    evs
}

fn run_burst(shards: usize, probes: bool) -> (RunOutput, Option<ProbeSnapshot>) {
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Threads;
    cfg.pipeline.shards = shards;
    let mut symbols = SymbolTable::new();
    symbols.intern("A").unwrap();
    symbols.intern("B").unwrap();
    let ingress = Ingress::new(1024);
    let spec = RunSpec::new(&cfg, &symbols, &FlipFactory).ingress(ingress.clone()).probes(probes);
    let mut live = None;
    let r = run(spec, Burst(ingress, burst()), &mut |c| live = c.probes.snapshot()).unwrap();
    (r, live)
}

#[test]
fn every_stage_counts_the_events_that_passed_it_and_queues_keep_their_high_water() {
    let bars = 2 * BARS_PER_SYMBOL as u64;
    // Per symbol: a buy on bars 0, 4, 8..., a sell two bars after each (the buy filled by then).
    let orders = 2 * (BARS_PER_SYMBOL as u64 / 4) * 2;
    for shards in [1, 2] {
        let (r, live) = run_burst(shards, true);
        assert_eq!(r.topology, Topology::Threads);
        let p = r.probes.clone().expect("probes on: a snapshot at the end");
        assert_eq!(live.as_ref(), Some(&p), "{shards}: the monitor's last look is the end's");
        let count = |s: Stage| p.stage(s).count;
        assert_eq!(count(Stage::IngressWait), bars, "{shards}: every pushed event was published");
        assert_eq!(count(Stage::SequencerToShard), bars, "{shards}: every bar reached its strategy");
        assert_eq!(count(Stage::Strategy), bars, "{shards}: one on_bar per bar");
        assert_eq!(count(Stage::ShardToRisk), orders, "{shards}: every intent was decided");
        assert_eq!(r.accepted, orders, "{shards}: risk accepted them all");
        assert_eq!(count(Stage::RiskToVenue), r.accepted, "{shards}: every accepted order reached the venue");
        assert_eq!(count(Stage::EndToEnd), r.accepted, "{shards}");
        for s in STAGES {
            let st = p.stage(s);
            assert!(st.p50_ns > 0 && st.p50_ns <= st.p99_ns && st.p99_ns <= st.max_ns, "{shards}: {st:?}");
            assert!(st.p90_ns <= st.p99_ns && st.p99_ns <= st.p999_ns && st.sum_ns >= st.max_ns, "{shards}: {st:?}");
        }
        // The burst filled the ingress at once; the ring and the recorder's queue held something.
        assert_eq!(p.queue(Queue::Ingress).high_water, bars, "{shards}: {p:?}");
        assert_eq!(p.queue(Queue::Ingress).current, 0, "{shards}: drained");
        assert!(p.queue(Queue::MainRing).high_water >= 1, "{shards}: {p:?}");
        assert!(p.queue(Queue::RiskToRecorder).high_water >= 1, "{shards}: {p:?}");
        if shards > 1 {
            assert!(p.queue(Queue::ShardToRisk).high_water >= 1, "{shards}: intents queued: {p:?}");
            assert!(p.queue(Queue::RiskToShard).high_water >= 1, "{shards}: reports queued: {p:?}");
        } else {
            assert_eq!(p.queue(Queue::ShardToRisk).high_water, 0, "one shard runs on risk's thread: no queue");
        }
    }
}

#[test]
fn probes_off_record_nothing_and_decide_the_same() {
    let (off, live) = run_burst(2, false);
    assert!(off.probes.is_none() && live.is_none(), "no samples, no snapshot");
    let (on, _) = run_burst(2, true);
    assert_eq!((off.accepted, off.positions.totals()), (on.accepted, on.positions.totals()));
    assert_eq!(off.counters.published, on.counters.published);
}

#[test]
fn an_inline_replay_records_every_stage_but_the_ingress_wait() {
    use engine::barfile::write_bar_file;
    use engine::merge::BarSet;
    use engine::pipeline::BarReplay;
    let d = tempfile::tempdir().unwrap();
    let bars: Vec<Bar> = (0..BARS_PER_SYMBOL).map(|i| bar(i, 10, 11, 9, 10)).collect();
    write_bar_file(&d.path().join("A.1m.rtb"), "A", 60, &bars).unwrap();
    let set = BarSet::open_dir(d.path(), 1).unwrap();
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Inline;
    let spec = RunSpec::new(&cfg, set.symbols(), &FlipFactory).bars(&set).probes(true);
    let r = run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {}).unwrap();
    assert_eq!(r.topology, Topology::Inline);
    let p = r.probes.expect("probes on");
    let n = BARS_PER_SYMBOL as u64;
    assert_eq!(p.stage(Stage::IngressWait).count, 0, "no ingress in a replay");
    assert_eq!((p.stage(Stage::SequencerToShard).count, p.stage(Stage::Strategy).count), (n, n));
    assert_eq!(p.stage(Stage::ShardToRisk).count, n / 2, "a buy and a sell every 4 bars");
    assert_eq!(p.stage(Stage::EndToEnd).count, r.accepted);
    assert_eq!(p.queue(Queue::MainRing).high_water, 0, "no ring inline");
}
