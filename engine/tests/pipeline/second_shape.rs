//! The engine's second shape, end to end: a living universe, many inputs, clock ticks, the venue
//! seam, and stages that fail loudly. Real threads, rings and files on small data.

use super::{D, MIN, bar, fills, journal_bytes};
use engine::barfile::write_bar_file;
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, JournalInputs, Topology};
use engine::pipeline::{BarReplay, Ingress, Next, PipelineError, RunOutput, RunSpec, Script as Events, Source, run};
use engine::records::{
    Bar, ControlKind, Event, ExecKind, ExecReport, Lifecycle, Order, OrderId, Reason, RemovalPolicy, Side, SymbolId,
};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use engine::venue::{SimVenue, Venue, VenueConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One journal record, decoded just enough for the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    seq: u64,
    ts: i64,
    kind: u8,
    sub: u8,
    aux: u16,
    symbol: u32,
}

fn journal(dir: &Path) -> Vec<Rec> {
    let b = std::fs::read(dir.join("journal.rtj")).unwrap();
    assert_eq!(&b[..8], b"RTJRNL\0\x01");
    assert_eq!((b.len() - 16) % 72, 0, "whole records only");
    b[16..]
        .chunks(72)
        .map(|r| Rec {
            seq: u64::from_le_bytes(r[0..8].try_into().unwrap()),
            ts: i64::from_le_bytes(r[8..16].try_into().unwrap()),
            kind: r[16],
            sub: r[17],
            aux: u16::from_le_bytes(r[18..20].try_into().unwrap()),
            symbol: u32::from_le_bytes(r[20..24].try_into().unwrap()),
        })
        .collect()
}

const LIFECYCLE: u8 = 5;
const REPORT: u8 = 4;
const INPUT: u8 = 1;

fn minute(i: i64) -> i64 {
    bar(i, 1, 1, 1, 1).ts_event_ns
}

fn flat_bars(n: i64, px: i64) -> Vec<Bar> {
    (0..n).map(|i| bar(i, px + i % 3, px + 3, px - 1, px + (i + 1) % 3)).collect()
}

/// Buys 10 on its first bar; on bar `exit_at` (counted per symbol) sells what it holds; on bar
/// `retry_at` tries to buy again (refused while the symbol is being removed).
#[derive(Clone)]
struct Holder {
    n: usize,
    exit_at: usize,
    retry_at: usize,
    seen: Arc<Mutex<Vec<(u32, ExecKind, u16)>>>,
}
impl Strategy for Holder {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _b: &Bar) {
        if self.n == 0 {
            ctx.submit(OrderRequest::market(Side::Buy, 10));
        }
        if self.n == self.retry_at {
            ctx.submit(OrderRequest::market(Side::Buy, 5));
        }
        if self.n == self.exit_at && ctx.position() > 0 {
            ctx.submit(OrderRequest::market(Side::Sell, ctx.position() as u32).reduce_only());
        }
        self.n += 1;
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        self.seen.lock().unwrap().push((ctx.symbol().0, r.exec_kind().unwrap(), r.reason));
    }
}
struct HolderFactory(Holder);
impl StrategyFactory for HolderFactory {
    fn name(&self) -> &str {
        "holder"
    }
    fn build(&self, symbol: &str) -> Box<dyn Strategy> {
        let mut h = self.0.clone();
        if symbol == "B" {
            (h.exit_at, h.retry_at) = (65, 62);
        }
        Box::new(h)
    }
}

#[test]
fn a_symbol_added_and_two_removed_mid_run_under_both_policies() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (name, px) in [("A", 10), ("B", 20), ("C", 30)] {
        write_bar_file(&data.join(format!("{name}.1m.rtb")), name, 60, &flat_bars(100, px)).unwrap();
    }
    let set = BarSet::open_dir(&data, 1).unwrap();
    // The run starts with A and B; C (id 2, its bars are in the data set) joins at 15:00.
    let mut start = SymbolTable::new();
    start.intern("A").unwrap();
    start.intern("B").unwrap();
    let control = || {
        Events::new([
            Event::add_symbol(SymbolId(2), "C", minute(30)),
            Event::remove_symbol(SymbolId(0), RemovalPolicy::Flatten, minute(50)),
            Event::remove_symbol(SymbolId(1), RemovalPolicy::ManageUntilFlat, minute(60)),
        ])
    };
    let mut base: Option<(Vec<u8>, Vec<String>)> = None;
    for (topo, shards) in [(Topology::Inline, 1), (Topology::Threads, 2), (Topology::Threads, 1)] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let f = HolderFactory(Holder { n: 0, exit_at: usize::MAX, retry_at: usize::MAX, seen: seen.clone() });
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        cfg.pipeline.shards = shards;
        let out = d.path().join(format!("{topo:?}{shards}"));
        let spec = RunSpec::new(&cfg, &start, &f).bars(&set).out_dir(&out).source(control());
        let r = run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {}).unwrap();

        // C's bars before it joined (ends 14:31..14:59: 29 bars; at 15:00 the control event comes
        // first) are refused and counted; A's after it was removed too.
        assert_eq!(r.counters.unknown_symbol, 29, "{topo:?}");
        assert!(r.counters.removed_symbol_inputs > 0);
        assert_eq!((r.counters.symbols_added, r.counters.symbols_removed), (1, 2));
        let life: Vec<(u32, u8, u16)> =
            journal(&out).iter().filter(|x| x.kind == LIFECYCLE).map(|x| (x.symbol, x.sub, x.aux)).collect();
        assert_eq!(
            life,
            vec![
                (2, Lifecycle::Added.raw(), 0),
                (0, Lifecycle::Removing.raw(), u16::from(RemovalPolicy::Flatten.raw())),
                (0, Lifecycle::Removed.raw(), 0),
                (1, Lifecycle::Removing.raw(), u16::from(RemovalPolicy::ManageUntilFlat.raw())),
                (1, Lifecycle::Removed.raw(), 0),
            ],
            "{topo:?}"
        );
        let rows = fills(&out);
        let of = |sym: &str| rows.iter().filter(|l| l.split(',').nth(1) == Some(sym)).cloned().collect::<Vec<_>>();
        // A: bought at bar 1's open; the removal at 15:20 sells it with the shard's own
        // reduce-only market order A-2 at the open of the bar that starts then.
        let a = of("A");
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(a[1].contains(",sell,10,") && a[1].contains(",A-2,none,0,"), "{}", a[1]);
        assert!(a[1].starts_with(&engine::text::fmt_ts(minute(50))), "{}", a[1]);
        // B: managed until flat by its strategy (exit on its 66th bar), its retry refused.
        let b = of("B");
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(b[1].starts_with(&engine::text::fmt_ts(minute(66))), "{}", b[1]);
        assert_eq!(r.rejects[Reason::SymbolRemoving.raw() as usize], 1);
        assert!(
            seen.lock().unwrap().contains(&(1, ExecKind::Rejected, Reason::SymbolRemoving.raw())),
            "the strategy is told why"
        );
        // C: traded from its first bar after joining, closed out at the end.
        let c = of("C");
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with(&engine::text::fmt_ts(minute(30))), "{}", c[0]);
        assert!(c[1].ends_with(",end_of_run,0,") || c[1].contains(",end_of_run,0,"), "{}", c[1]);
        let got = journal_bytes(&out);
        match &base {
            None => base = Some(got),
            Some(b) => assert!(b == &got, "{topo:?}/{shards}: the journal differs from inline"),
        }
    }
}

/// Replays a bar set, then waits (idle) until `done` is set: a live-like primary source.
struct ThenWait<'a> {
    inner: BarReplay<'a>,
    done: &'a AtomicBool,
    drained: bool,
}
impl Source for ThenWait<'_> {
    fn next(&mut self) -> Next {
        if !self.drained {
            match self.inner.next() {
                Next::End => self.drained = true,
                n => return n,
            }
        }
        if self.done.load(Ordering::Acquire) { Next::End } else { Next::Idle }
    }
}

#[test]
fn a_control_ingress_that_fills_up_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &flat_bars(50, 10)).unwrap();
    let set = BarSet::open_dir(&data, 1).unwrap();
    let cfg = EngineConfig::default();
    let ingress = Ingress::new(4);
    let done = AtomicBool::new(false);
    let out = d.path().join("run");
    const N: usize = 3_000;
    let f = super::BusyFactory;
    let r = std::thread::scope(|s| {
        let producer = {
            let (ingress, done) = (ingress.clone(), &done);
            s.spawn(move || {
                for i in 0..N {
                    let ev = Event::control(ControlKind::SessionStart, minute(0) + i as i64, [i as i64, 0, 0, 0]);
                    ingress.push(ev).expect("the run is still going");
                }
                done.store(true, Ordering::Release);
            })
        };
        let spec = RunSpec::new(&cfg, set.symbols(), &f).bars(&set).out_dir(&out).ingress(ingress.clone());
        let r =
            run(spec, ThenWait { inner: BarReplay::zero_copy(set.merged()), done: &done, drained: false }, &mut |_| {});
        producer.join().unwrap();
        r.unwrap()
    });
    assert_eq!(r.topology, Topology::Threads, "an ingress means a live run");
    let recs = journal(&out);
    // Every pushed event is in the journal, in push order (args[0] counts 0..N).
    let got: Vec<u64> = std::fs::read(out.join("journal.rtj")).unwrap()[16..]
        .chunks(72)
        .filter(|r| {
            r[16] == INPUT
                && r[17] == engine::records::EventKind::Control.raw()
                && r[24 + 8] == ControlKind::SessionStart.raw()
        })
        .map(|r| u64::from_le_bytes(r[24 + 16..24 + 24].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..N as u64).collect::<Vec<_>>());
    assert!(ingress.waits() > 0, "a 4-slot ingress made the producer wait");
    assert_eq!(ingress.rejected(), 0);
    assert!(recs.iter().any(|x| x.kind == INPUT), "inputs journaled");
    // After the run, the ingress refuses instead of blocking forever, and counts it.
    for _ in 0..5 {
        let _ = ingress.try_push(Event::control(ControlKind::SessionStart, 0, [0; 4]));
    }
    assert!(ingress.push(Event::control(ControlKind::SessionStart, 0, [0; 4])).is_err());
    assert!(ingress.rejected() >= 2);
}

/// Places a buy limit far below the market with a 2-minute timeout on its second bar, and
/// records every report with the time it arrived.
#[derive(Clone)]
struct Patient {
    n: usize,
    seen: Arc<Mutex<Vec<(String, i64)>>>,
}
impl Strategy for Patient {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _b: &Bar) {
        if ctx.symbol().0 == 0 {
            self.seen.lock().unwrap().push(("bar".into(), ctx.ts_ns()));
            if self.n == 1 {
                ctx.submit(OrderRequest::limit(Side::Buy, 5, D).timeout_ns(2 * MIN));
            }
        }
        self.n += 1;
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        self.seen.lock().unwrap().push((r.exec_kind().unwrap().as_str().into(), ctx.ts_ns()));
    }
}
struct PatientFactory(Arc<Mutex<Vec<(String, i64)>>>);
impl StrategyFactory for PatientFactory {
    fn name(&self) -> &str {
        "patient"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Patient { n: 0, seen: self.0.clone() })
    }
}

#[test]
fn an_order_timeout_fires_on_a_clock_tick_with_no_bar_of_its_symbol() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // T trades on bars 0, 1 and then not until bar 10; U trades every minute (time goes on).
    let t: Vec<Bar> =
        flat_bars(20, 10).into_iter().enumerate().filter(|(i, _)| *i < 2 || *i >= 10).map(|(_, b)| b).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &t).unwrap();
    write_bar_file(&data.join("U.1m.rtb"), "U", 60, &flat_bars(20, 50)).unwrap();
    for topo in [Topology::Inline, Topology::Threads] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        let out = d.path().join(format!("{topo:?}"));
        super::run_dir(&data, Some(&out), &cfg, &PatientFactory(seen.clone()));
        let seen = seen.lock().unwrap().clone();
        // Placed at the end of T's bar 1 (14:32), deadline 14:34: the 14:34 tick expires it,
        // long before T's next bar (ends 14:41).
        assert_eq!(
            seen,
            vec![
                ("bar".into(), minute(1)),
                ("bar".into(), minute(2)),
                ("accepted".into(), minute(2)),
                ("expired".into(), minute(4)),
                ("bar".into(), minute(11)),
            ]
            .into_iter()
            .chain((11..20).map(|i| ("bar".to_string(), minute(i + 1))))
            .collect::<Vec<_>>(),
            "{topo:?}"
        );
        let expired: Vec<Rec> =
            journal(&out).into_iter().filter(|x| x.kind == REPORT && x.sub == ExecKind::Expired.raw()).collect();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].ts, minute(4), "stamped with the tick that expired it");
    }
}

/// The simulated venue, with a fault injected at the `at`-th bar it sees.
#[derive(Debug)]
struct Faulty {
    sim: SimVenue,
    bars: Arc<AtomicUsize>,
    at: usize,
    hang_ms: u64,
}
impl Venue for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn simulated(&self) -> bool {
        true
    }
    fn ensure_symbols(&mut self, n: usize) {
        self.sim.ensure_symbols(n)
    }
    fn submit(&mut self, o: &Order, ts: i64, out: &mut Vec<ExecReport>) {
        self.sim.submit(o, ts, out)
    }
    fn cancel(&mut self, id: OrderId, s: SymbolId, ts: i64, r: Reason, out: &mut Vec<ExecReport>) {
        self.sim.cancel(id, s, ts, r, out)
    }
    fn replace(&mut self, id: OrderId, s: SymbolId, q: u32, l: i64, st: i64, ts: i64, out: &mut Vec<ExecReport>) {
        self.sim.replace(id, s, q, l, st, ts, out)
    }
    fn on_bar(&mut self, s: SymbolId, bar: &Bar, out: &mut Vec<ExecReport>) {
        if self.bars.fetch_add(1, Ordering::Relaxed) + 1 == self.at {
            if self.hang_ms == 0 {
                panic!("venue bug on purpose");
            }
            std::thread::sleep(std::time::Duration::from_millis(self.hang_ms));
        }
        self.sim.on_bar(s, bar, out)
    }
    fn on_timer(&mut self, ts: i64, out: &mut Vec<ExecReport>) {
        self.sim.on_timer(ts, out)
    }
    fn has_working(&self, s: SymbolId) -> bool {
        self.sim.has_working(s)
    }
    fn close_out(&mut self, o: &Order, ts: i64, out: &mut Vec<ExecReport>) {
        self.sim.close_out(o, ts, out)
    }
}

fn run_with_venue(data: &Path, cfg: &EngineConfig, venue: Faulty) -> Result<RunOutput, PipelineError> {
    let set = BarSet::open_dir(data, 1).unwrap();
    let spec = RunSpec::new(cfg, set.symbols(), &super::BusyFactory).bars(&set).venue(Box::new(venue));
    run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {})
}

#[test]
fn a_panicking_stage_ends_the_run_with_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    super::write_random(&data, 3, 3_000, 5);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (topo, shards) in [(Topology::Inline, 1), (Topology::Threads, 1), (Topology::Threads, 3)] {
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        cfg.pipeline.shards = shards;
        cfg.pipeline.ring_size = 64; // the sequencer is blocked on a full ring when risk dies
        let venue =
            Faulty { sim: SimVenue::new(&VenueConfig::default(), 3), bars: Arc::default(), at: 500, hang_ms: 0 };
        let err = run_with_venue(&data, &cfg, venue).expect_err("a dead stage is an error, not a hang");
        // With one shard, the shard runs on risk's thread, and the stage is named for both.
        let stage = if topo == Topology::Threads && shards == 1 { "risk+shard-0" } else { "risk" };
        assert!(matches!(&err, PipelineError::StagePanic(s) if s == stage), "{topo:?}: {err}");
        assert_eq!(err.to_string(), format!("stage {stage} panicked; the run was stopped"));
    }
    std::panic::set_hook(prev);
}

#[test]
fn a_stuck_stage_is_reported_by_name() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    super::write_random(&data, 2, 2_000, 9);
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Threads;
    cfg.pipeline.shards = 2; // risk on a thread of its own (one shard runs on risk's thread)
    cfg.pipeline.stall_timeout_ms = 200;
    let venue =
        Faulty { sim: SimVenue::new(&VenueConfig::default(), 2), bars: Arc::default(), at: 300, hang_ms: 1_500 };
    let err = run_with_venue(&data, &cfg, venue).expect_err("a stuck stage is reported");
    assert!(matches!(&err, PipelineError::StageStuck { stage, .. } if stage == "risk"), "{err}");
}

/// Asks the run to stop (as a SIGINT handler would) at its 100th bar.
struct Stopper(Arc<AtomicBool>, usize);
impl Strategy for Stopper {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, _b: &Bar) {
        self.1 += 1;
        if self.1 == 100 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}
struct StopperFactory(Arc<AtomicBool>);
impl StrategyFactory for StopperFactory {
    fn name(&self) -> &str {
        "stopper"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Stopper(self.0.clone(), 0))
    }
}

#[test]
fn a_stop_request_drains_and_marks_the_run_interrupted() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    super::write_random(&data, 1, 5_000, 3);
    for topo in [Topology::Inline, Topology::Threads] {
        let flag = Arc::new(AtomicBool::new(false));
        let f = StopperFactory(flag.clone());
        let set = BarSet::open_dir(&data, 1).unwrap();
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        cfg.pipeline.ring_size = 64;
        cfg.journal.inputs = JournalInputs::All;
        let out = d.path().join(format!("{topo:?}"));
        let spec = RunSpec::new(&cfg, set.symbols(), &f).bars(&set).out_dir(&out).stop(&flag);
        let r = run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {}).unwrap();
        assert!(r.interrupted, "{topo:?}");
        assert!(r.bars >= 100 && r.bars < 1_000, "{topo:?}: stopped promptly after bar 100, got {}", r.bars);
        // The journal is complete: it ends with the end of data and the shutdown.
        let recs = journal(&out);
        let tail: Vec<u8> = recs.iter().rev().take(2).map(|x| x.kind).collect();
        assert_eq!(tail, vec![INPUT, INPUT]);
        assert!(recs.iter().all(|x| x.seq <= recs.last().unwrap().seq));
    }
}

/// Loops forever on its 300th bar until `release` is set (a strategy stuck in an endless loop).
struct Looper(Arc<AtomicBool>, usize);
impl Strategy for Looper {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, _b: &Bar) {
        self.1 += 1;
        if self.1 == 300 {
            while !self.0.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
    }
}
struct LooperFactory(Arc<AtomicBool>);
impl StrategyFactory for LooperFactory {
    fn name(&self) -> &str {
        "looper"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Looper(self.0.clone(), 0))
    }
}

#[test]
fn a_stage_that_never_returns_is_handed_to_on_stuck() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    super::write_random(&data, 1, 1_000, 4);
    let set = BarSet::open_dir(&data, 1).unwrap();
    for topo in [Topology::Threads, Topology::Inline] {
        let release = Arc::new(AtomicBool::new(false));
        let told = Mutex::new(Vec::new());
        // A binary prints the error and exits here; the test records it and lets the loop end.
        let on_stuck = |e: &PipelineError| {
            told.lock().unwrap().push(e.to_string());
            release.store(true, Ordering::Release);
        };
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        cfg.pipeline.shards = 2; // the shard on a thread of its own
        cfg.pipeline.stall_timeout_ms = 200;
        let f = LooperFactory(release.clone());
        let spec = RunSpec::new(&cfg, set.symbols(), &f).bars(&set).on_stuck(&on_stuck);
        let r = run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {});
        let told = told.lock().unwrap();
        assert_eq!(told.len(), 1, "{topo:?}");
        match topo {
            Topology::Threads => {
                let err = r.expect_err("stuck");
                assert!(matches!(&err, PipelineError::StageStuck { stage, .. } if stage == "shard-0"), "{err}");
                assert!(told[0].starts_with("stage shard-0 made no progress"), "{}", told[0]);
            }
            _ => {
                // Inline, the watchdog thread is the only one that can notice: it names the stage.
                assert!(r.is_ok());
                assert!(told[0].starts_with("stage shard made no progress"), "{}", told[0]);
            }
        }
    }
}
