//! Replay feeds: exact pacing on a fake clock, equivalence with the engine's bar replay, the
//! same trades paced or not through `pipeline::run`, and the feed thread under backpressure.

use engine::barfile::write_bar_file;
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{BarReplay, Ingress, Next, RunOutput, RunSpec, Source, run};
use engine::records::{Bar, Event, PX_SCALE, Side};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use feeds::replay::{
    EndReason, PacedReplay, ReplayBar, ReplayEnd, ReplayThread, Series, SeriesSet, SetBars, Speed, Stamp, THREAD_NAME,
    spawn_replay_into,
};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const D: i64 = PX_SCALE; // one dollar in e9
const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
/// 2024-01-02 14:30 UTC.
const T0: i64 = 1_704_205_800 * SEC;

fn bar(i: i64, o: i64, h: i64, l: i64, c: i64) -> Bar {
    Bar {
        ts_event_ns: T0 + i * MIN,
        open_px_e9: o * D,
        high_px_e9: h * D,
        low_px_e9: l * D,
        close_px_e9: c * D,
        volume: 1000,
    }
}

/// Deterministic random-walk 1-minute bars for `n_sym` symbols, gaps on odd symbols.
fn random_series(n_sym: usize, n_bars: i64, seed: u64) -> Vec<Series> {
    (0..n_sym)
        .map(|s| {
            let mut x = seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut rnd = || {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (x >> 33) as i64
            };
            let mut px = 50 * D + s as i64 * D;
            let mut bars = Vec::new();
            for i in 0..n_bars {
                if i % 3 == 2 && s % 2 == 1 {
                    continue;
                }
                let o = px;
                let c = (o + (rnd() % 21 - 10) * D / 100).max(D);
                let mut b = bar(i, 0, 0, 0, 0);
                (b.open_px_e9, b.close_px_e9) = (o, c);
                b.high_px_e9 = o.max(c) + (rnd() % 5) * D / 100;
                b.low_px_e9 = (o.min(c) - (rnd() % 5) * D / 100).max(D / 2);
                b.volume = (rnd() % 1000) as u64;
                px = c;
                bars.push(b);
            }
            Series { symbol: format!("S{s:02}"), interval_s: 60, bars }
        })
        .collect()
}

fn write_series(dir: &Path, series: &[Series]) {
    std::fs::create_dir_all(dir).unwrap();
    for s in series {
        write_bar_file(&dir.join(format!("{}.1m.rtb", s.symbol)), &s.symbol, s.interval_s, &s.bars).unwrap();
    }
}

/// Every event of a source until it ends (it must never be idle).
fn drain(mut src: impl Source) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        match src.next() {
            Next::Event(e) => out.push(e),
            Next::End => return out,
            n => panic!("unexpected {n:?}"),
        }
    }
}

#[test]
fn unpaced_replays_equal_the_engine_bar_replay_event_for_event() {
    let d = tempfile::tempdir().unwrap();
    let series = random_series(5, 400, 11);
    write_series(d.path(), &series);
    let set = BarSet::open_dir(d.path(), 2).unwrap();
    let want = drain(BarReplay::new(set.merged()));
    assert_eq!(want.len() as u64, set.total_bars());
    // Bar files through the paced source at no speed, an owning iterator over a shared set (the
    // feed thread's input), and the same bars as parsed CSV series: identical events.
    assert_eq!(drain(PacedReplay::unpaced(set.merged())), want);
    assert_eq!(drain(PacedReplay::new(set.merged(), "0".parse().unwrap(), &|| panic!("clock read"))), want);
    let shared = Arc::new(BarSet::open_dir(d.path(), 2).unwrap());
    assert_eq!(drain(PacedReplay::unpaced(SetBars::new(shared))), want);
    let csv = SeriesSet::new(series).unwrap();
    assert_eq!(csv.symbols().names(), set.symbols().names());
    assert_eq!(drain(PacedReplay::unpaced(csv.iter())), want);
}

#[test]
fn paced_replays_release_each_bar_exactly_at_its_time() {
    // A: 14:30, 14:31, 14:33 (a gap); B: 14:30, 14:31 (ends at the same times as A's first two).
    let series = vec![
        Series {
            symbol: "A".into(),
            interval_s: 60,
            bars: vec![bar(0, 1, 1, 1, 1), bar(1, 1, 1, 1, 1), bar(3, 1, 1, 1, 1)],
        },
        Series { symbol: "B".into(), interval_s: 60, bars: vec![bar(0, 1, 1, 1, 1), bar(1, 1, 1, 1, 1)] },
    ];
    let set = SeriesSet::new(series).unwrap();
    // Wall-clock offsets of each bar from the start: data offsets 0, 0, 60, 60, 180 s.
    for (speed, offsets_ns) in [
        (Speed::REAL_TIME, [0, 0, 60 * SEC, 60 * SEC, 180 * SEC]),
        (Speed::times(60), [0, 0, SEC, SEC, 3 * SEC]), // a minute of data per second
        ("7.5".parse().unwrap(), [0, 0, 8 * SEC, 8 * SEC, 24 * SEC]),
    ] {
        let start = 1_800_000_000 * SEC; // the wall clock's epoch has nothing to do with the data's
        let now = AtomicI64::new(start);
        let clock = || now.load(Ordering::Relaxed);
        let mut src = PacedReplay::new(set.iter(), speed, &clock);
        let mut got = Vec::new();
        let mut prev = 0;
        for (k, off) in offsets_ns.into_iter().enumerate() {
            if k > 0 && off > prev {
                // One nanosecond early: idle (the sequencer backs off; the source never sleeps).
                now.store(start + off - 1, Ordering::Relaxed);
                assert!(matches!(src.next(), Next::Idle), "{speed}: bar {k} released early");
                assert_eq!(src.next_due(), Some(start + off), "{speed}: bar {k}");
            }
            now.store(start + off, Ordering::Relaxed);
            match src.next() {
                Next::Event(e) => got.push((e.symbol.0, e.as_bar().unwrap().ts_event_ns, e.ts_recv_ns)),
                n => panic!("{speed}: bar {k} not released at its time: {n:?}"),
            }
            prev = off;
        }
        assert!(matches!(src.next(), Next::End));
        // Stamped with the wall clock at release, as a live feed would, in merge order.
        let want: Vec<(u32, i64, i64)> = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 3)]
            .iter()
            .zip(offsets_ns)
            .map(|(&(s, i), off)| (s, T0 + i * MIN, start + off))
            .collect();
        assert_eq!(got, want, "{speed}");
        assert_eq!(src.released(), 5);
    }
}

#[test]
fn a_late_poll_stamps_the_poll_time_and_an_explicit_start_is_kept() {
    let set = SeriesSet::new(vec![Series {
        symbol: "T".into(),
        interval_s: 60,
        bars: vec![bar(0, 1, 1, 1, 1), bar(1, 1, 1, 1, 1)],
    }])
    .unwrap();
    let now = AtomicI64::new(0);
    let clock = || now.load(Ordering::Relaxed);
    let mut src = PacedReplay::new(set.iter(), Speed::REAL_TIME, &clock).start_at(10 * SEC);
    assert!(matches!(src.next(), Next::Idle), "before the given start");
    now.store(75 * SEC, Ordering::Relaxed); // both bars are due (10 s and 70 s)
    let stamps: Vec<i64> = (0..2).map(|_| src.next().ts().unwrap()).collect();
    assert_eq!(stamps, vec![75 * SEC, 75 * SEC]);
}

// ------------------------------------------------------------------------------------------------
// Through the pipeline

/// A scripted strategy: on its `n`-th bar (0-based, per symbol) it submits the scripted order;
/// it records every bar it sees.
#[derive(Clone)]
struct Scripted {
    orders: Vec<(usize, OrderRequest)>,
    n: usize,
    seen: Arc<Mutex<Vec<(u32, i64)>>>,
}
impl Strategy for Scripted {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        self.seen.lock().unwrap().push((ctx.symbol().0, b.ts_event_ns));
        for (at, req) in &self.orders {
            if *at == self.n {
                ctx.submit(*req);
            }
        }
        self.n += 1;
    }
}
struct ScriptedFactory(Scripted);
impl StrategyFactory for ScriptedFactory {
    fn name(&self) -> &str {
        "scripted"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(self.0.clone())
    }
}

fn fills(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("fills.csv")).unwrap().lines().skip(1).map(str::to_string).collect()
}

#[test]
fn a_paced_run_on_a_fake_clock_trades_exactly_like_an_unpaced_run() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    //            i   open high low close
    let bars = [
        bar(0, 10, 11, 9, 10),  // bar 0: buy 100 at market  -> fills at bar 1's open
        bar(1, 12, 13, 11, 12), // fill buy 100 @ 12.  bar 1: sell limit 100 @ 14
        bar(2, 13, 14, 12, 13), // high 14 touches the limit -> sell 100 @ 14.  bar 2: sell stop 50 @ 11
        bar(3, 12, 12, 10, 11), // low 10 <= stop 11, open 12 > 11 -> sell 50 @ 11.  bar 3: buy limit 50 @ 9
        bar(4, 8, 9, 7, 8),     // open 8 <= limit 9: fills at the open, buy 50 @ 8; flat at the end
    ];
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    // A second symbol that never trades, so bars of two symbols interleave.
    write_bar_file(&data.join("U.1m.rtb"), "U", 60, &bars).unwrap();
    let set = BarSet::open_dir(&data, 1).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let orders = vec![
        (0, OrderRequest::market(Side::Buy, 100)),
        (1, OrderRequest::limit(Side::Sell, 100, 14 * D)),
        (2, OrderRequest::stop(Side::Sell, 50, 11 * D)),
        (3, OrderRequest::limit(Side::Buy, 50, 9 * D)),
    ];
    struct OnlyT(ScriptedFactory);
    impl StrategyFactory for OnlyT {
        fn name(&self) -> &str {
            "only-t"
        }
        fn build(&self, s: &str) -> Box<dyn Strategy> {
            let mut st = self.0.0.clone();
            if s != "T" {
                st.orders.clear();
            }
            Box::new(st)
        }
    }
    let factory = OnlyT(ScriptedFactory(Scripted { orders, n: 0, seen: seen.clone() }));
    let go = |src: &mut dyn FnMut() -> RunOutput| {
        seen.lock().unwrap().clear();
        let r = src();
        (r, seen.lock().unwrap().clone())
    };
    let first_end = T0 + MIN;
    for topo in [Topology::Inline, Topology::Threads] {
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        let base_dir = d.path().join(format!("{topo:?}-unpaced"));
        let (base, base_seen) = go(&mut || {
            let spec = RunSpec::new(&cfg, set.symbols(), &factory).out_dir(&base_dir);
            run(spec, BarReplay::new(set.merged()), &mut |_| {}).unwrap()
        });
        // columns: ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl
        // +100*(14-12) - 1.00 commission = 199.00; then short 50 @ 11, cover @ 8: +150 - 0.50 = 348.50
        assert_eq!(
            fills(&base_dir),
            vec![
                "2024-01-02T14:31:00Z,T,buy,100,12.00,0.50,T-1,none,100,0.00",
                "2024-01-02T14:32:00Z,T,sell,100,14.00,0.50,T-2,none,0,199.00",
                "2024-01-02T14:33:00Z,T,sell,50,11.00,0.25,T-3,none,-50,199.00",
                "2024-01-02T14:34:00Z,T,buy,50,8.00,0.25,T-4,none,0,348.50",
            ],
            "{topo:?}"
        );
        assert_eq!(base_seen.len(), 10);
        for speed in [Speed::REAL_TIME, Speed::times(60)] {
            // The fake wall clock starts at the first bar's end and moves 1 s at every read; only
            // the paced source reads it (event-time ticks), so the run is deterministic. Receive
            // times are wall-clock readings (U's bars, released one read after T's, are stamped
            // a second or more after T's), yet the orders, placed no later than the next bar's
            // start, fill on the same bars at the same prices.
            let now = AtomicI64::new(first_end);
            let clock = || now.fetch_add(SEC, Ordering::Relaxed);
            let dir = d.path().join(format!("{topo:?}-{speed}"));
            let (r, r_seen) = go(&mut || {
                let spec = RunSpec::new(&cfg, set.symbols(), &factory).out_dir(&dir);
                run(spec, PacedReplay::new(set.merged(), speed, &clock), &mut |_| {}).unwrap()
            });
            assert_eq!(r_seen, base_seen, "{topo:?} {speed}: the strategy saw the same bars in the same order");
            assert_eq!(fills(&dir), fills(&base_dir), "{topo:?} {speed}");
            assert_eq!((r.bars, r.positions.totals()), (base.bars, base.positions.totals()), "{topo:?} {speed}");
            // The last bar ends 4 minutes after the first: at 60x that is 4 s of wall time.
            let wall = now.load(Ordering::Relaxed) - first_end;
            let data_span = 4 * MIN;
            assert!(wall >= speed.wall_ns(data_span), "{topo:?} {speed}: waited {wall} ns of fake time");
        }
        // Historical data paced on today's clock: stamped with wall-clock times, every order is
        // placed "after" every bar, and the simulated venue (no look-ahead) never fills one.
        // Stamping the bars' end times keeps the pacing and trades exactly like the unpaced run,
        // journal included.
        for stamp in [Stamp::Wall, Stamp::BarEnd] {
            let now = AtomicI64::new(1_800_000_000 * SEC); // 2027-01-15
            let clock = || now.fetch_add(SEC, Ordering::Relaxed);
            let dir = d.path().join(format!("{topo:?}-today-{stamp:?}"));
            let (r, r_seen) = go(&mut || {
                let spec = RunSpec::new(&cfg, set.symbols(), &factory).out_dir(&dir);
                let src = PacedReplay::new(set.merged(), Speed::times(60), &clock).stamp(stamp);
                run(spec, src, &mut |_| {}).unwrap()
            });
            assert_eq!(r_seen, base_seen, "{topo:?} {stamp:?}");
            assert!(now.load(Ordering::Relaxed) - 1_800_000_000 * SEC >= 4 * SEC, "paced at 60x either way");
            match stamp {
                Stamp::Wall => assert_eq!((fills(&dir).len(), r.positions.totals().0), (0, 0), "{topo:?}"),
                Stamp::BarEnd => {
                    assert_eq!(fills(&dir), fills(&base_dir), "{topo:?}");
                    assert!(
                        std::fs::read(dir.join("journal.rtj")).unwrap()
                            == std::fs::read(base_dir.join("journal.rtj")).unwrap(),
                        "{topo:?}: the journal differs from the unpaced run's"
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The feed thread

/// The run's primary source while a feed thread pushes into the ingress: idle until the thread
/// has finished (its last push is then in the ingress, which the sequencer drains first).
/// (The sequencer asks this source only when the ingress is empty; a thread seen finished gets
/// one more turn so its last pushes, made before it finished, are drained before the end.)
struct UntilFinished<'h>(&'h JoinHandle<ReplayEnd>, bool);
impl Source for UntilFinished<'_> {
    fn next(&mut self) -> Next {
        if self.1 {
            return Next::End;
        }
        self.1 = self.0.is_finished();
        Next::Idle
    }
}

fn frozen_clock(at: i64) -> feeds::replay::SharedClock {
    Arc::new(move || at)
}

#[test]
fn the_feed_thread_delivers_every_bar_once_and_in_order_through_a_4_slot_ingress() {
    let d = tempfile::tempdir().unwrap();
    write_series(d.path(), &random_series(4, 500, 5));
    let set = Arc::new(BarSet::open_dir(d.path(), 2).unwrap());
    let want: Vec<(u32, i64)> = set.merged().map(|it| (it.symbol.0, it.bar.ts_event_ns)).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let factory = ScriptedFactory(Scripted { orders: Vec::new(), n: 0, seen: seen.clone() });
    let mut cfg = EngineConfig::default();
    cfg.pipeline.shards = 1; // one shard thread sees every bar in sequence order
    let ingress = Ingress::new(4);
    let feed = ReplayThread::new(Speed::Unpaced, frozen_clock(0));
    let pushed = feed.pushed.clone();
    let handle = spawn_replay_into(ingress.clone(), SetBars::new(set.clone()), feed).unwrap();
    assert_eq!(handle.thread().name(), Some(THREAD_NAME));
    let spec = RunSpec::new(&cfg, set.symbols(), &factory).ingress(ingress.clone());
    let r = run(spec, UntilFinished(&handle, false), &mut |_| {}).unwrap();
    let end = handle.join().unwrap();
    assert_eq!(r.topology, Topology::Threads, "an ingress means a live run");
    assert_eq!(end, ReplayEnd { pushed: want.len() as u64, reason: EndReason::Done });
    assert_eq!(pushed.load(Ordering::Relaxed), want.len() as u64);
    assert_eq!(r.bars, want.len() as u64);
    assert_eq!(*seen.lock().unwrap(), want, "every bar exactly once, in merge order");
    assert!(ingress.waits() > 0, "a 4-slot ingress made the feed wait (backpressure)");
    assert_eq!(ingress.rejected(), 0, "nothing refused");
}

#[test]
fn a_paced_feed_thread_pushes_on_time_and_a_stop_flag_ends_it_promptly() {
    let set = SeriesSet::new(random_series(2, 50, 9)).unwrap();
    let first: Vec<ReplayBar> = set.iter().take(2).collect();
    let ingress = Ingress::new(4);
    // The wall clock never moves: the two bars ending first are due at once, the next one never.
    let feed = ReplayThread::new(Speed::REAL_TIME, frozen_clock(5 * SEC));
    let (stop, pushed) = (feed.stop.clone(), feed.pushed.clone());
    let handle = spawn_replay_into(ingress.clone(), set, feed).unwrap();
    for _ in 0..5_000 {
        if pushed.load(Ordering::Relaxed) == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(first[0].end_ns(), first[1].end_ns());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(pushed.load(Ordering::Relaxed), 2, "the third bar waits for its time");
    assert!(!handle.is_finished());
    stop.store(true, Ordering::Relaxed);
    // The thread checks the flag between polls and sleeps at most 160 us at a time.
    for _ in 0..2_000 {
        if handle.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(handle.is_finished(), "the feed thread did not stop within 2 s of the stop flag");
    assert_eq!(handle.join().unwrap(), ReplayEnd { pushed: 2, reason: EndReason::Stopped });
}

#[test]
fn a_feed_thread_ends_when_the_run_ends_and_closes_the_ingress() {
    let set = SeriesSet::new(random_series(3, 2_000, 2)).unwrap();
    let total = set.len() as u64;
    let symbols = set.symbols().clone();
    let ingress = Ingress::new(4);
    let handle = spawn_replay_into(ingress.clone(), set, ReplayThread::new(Speed::Unpaced, frozen_clock(0))).unwrap();
    let cfg = EngineConfig::default();
    let factory = ScriptedFactory(Scripted { orders: Vec::new(), n: 0, seen: Arc::default() });
    // A run whose own input ends at once: the sequencer closes the ingress, the feed is refused.
    let spec = RunSpec::new(&cfg, &symbols, &factory).ingress(ingress.clone());
    run(spec, engine::pipeline::Script::new([]), &mut |_| {}).unwrap();
    let end = handle.join().unwrap();
    assert_eq!(end.reason, EndReason::IngressClosed);
    assert!(end.pushed < total);
}

/// Sets the shared stop flag on its 100th bar.
struct StopAt100(Arc<std::sync::atomic::AtomicBool>, Arc<Mutex<Vec<(u32, i64)>>>);
impl Strategy for StopAt100 {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        let mut seen = self.1.lock().unwrap();
        seen.push((ctx.symbol().0, b.ts_event_ns));
        if seen.len() == 100 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}
struct StopAt100Factory(Arc<std::sync::atomic::AtomicBool>, Arc<Mutex<Vec<(u32, i64)>>>);
impl StrategyFactory for StopAt100Factory {
    fn name(&self) -> &str {
        "stop-at-100"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(StopAt100(self.0.clone(), self.1.clone()))
    }
}

#[test]
fn one_stop_flag_ends_the_run_and_a_feed_blocked_on_a_full_ingress() {
    let set = SeriesSet::new(random_series(3, 2_000, 4)).unwrap();
    let want: Vec<(u32, i64)> = set.iter().map(|b| (b.symbol.0, b.bar.ts_event_ns)).collect();
    let symbols = set.symbols().clone();
    let ingress = Ingress::new(4);
    let feed = ReplayThread::new(Speed::Unpaced, frozen_clock(0));
    let stop = feed.stop.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let factory = StopAt100Factory(stop.clone(), seen.clone());
    let mut cfg = EngineConfig::default();
    cfg.pipeline.shards = 1;
    // A small ring keeps the sequencer from draining the whole feed into it before the strategy
    // reaches bar 100: the feed is still pushing (or blocked on the 4-slot ingress) at the stop.
    cfg.pipeline.ring_size = 64;
    let handle = spawn_replay_into(ingress.clone(), set, feed).unwrap();
    let spec = RunSpec::new(&cfg, &symbols, &factory).ingress(ingress).stop(&stop);
    let r = run(spec, UntilFinished(&handle, false), &mut |_| {}).unwrap();
    assert!(r.interrupted);
    // The run ended; the feed sees the flag between bars, or the closed ingress if it was blocked.
    for _ in 0..2_000 {
        if handle.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(handle.is_finished(), "the feed thread did not end within 2 s of the stop");
    let end = handle.join().unwrap();
    assert!(matches!(end.reason, EndReason::Stopped | EndReason::IngressClosed), "{end:?}");
    assert!(end.pushed < want.len() as u64, "{end:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 100 && seen.len() as u64 <= end.pushed, "{} seen, {end:?}", seen.len());
    assert_eq!(seen[..], want[..seen.len()], "what was seen is the replay's prefix, in order");
}
