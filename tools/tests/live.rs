//! The real feed clients (`feeds::feed`) against the real local exchange (`ringtape_tools::exchange`)
//! over loopback sockets: TLS with the certificate the exchange generates, or plain. The feed's
//! clock is the exchange's market clock (as `ringtape paper --demo` runs it), and its transport
//! timers are given in wall milliseconds scaled to market time by the speed. Every test compares
//! what the engine received (a real `pipeline::run` with a recording strategy) with the tape the
//! exchange replays: per symbol, every bar exactly once, in window order.
//!
//! Small tapes (3 symbols, a few hundred minute bars) at a high speed; no timed assertions: the
//! controller thread waits for conditions (market time reached, bars pushed) with a generous wall
//! bound, then stops the feed, which drains what it holds.

use engine::pipeline::config::EngineConfig;
use engine::pipeline::{Ingress, Next, RunSpec, Source, run};
use engine::records::{Bar, Quote};
use engine::strategy::{Ctx, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use feeds::credentials::Secret;
use feeds::feed::{
    AlpacaFeedConfig, FatalError, FeedConfig, FeedEnd, FeedHandle, FeedLogLine, FeedReport, LogLevel,
    PolygonFeedConfig, SharedClock, spawn_alpaca_feed, spawn_polygon_feed,
};
use feeds::rest::{AlpacaFeedName, AlpacaHistory, PolygonHistory, RestConfig};
use feeds::ws::{TlsConfig, WsConfig};
use feeds::{AlpacaError, GateConfig, History, RejectKind, SymbolMap};
use ringtape_tools::exchange::{
    DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, ExchangeHandle, Fault, Scenario, Stats, Tape, When,
};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 2024-03-01T14:30:00Z (09:30 New York: the session's first minute).
const T0: i64 = 1_709_303_400_000_000_000;
const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const SYMS: [&str; 3] = ["AAA", "BBB", "CCC"];

// ---- the tape -----------------------------------------------------------------------------------

/// `n` minute bars from T0 for symbol number `sym`, prices on whole cents (exact in JSON), every
/// bar different from its neighbours.
fn bars(sym: usize, n: usize) -> Vec<Bar> {
    (0..n as i64)
        .map(|i| {
            let open = 100_000_000_000 + (sym as i64) * 7_000_000_000 + (i % 50) * 10_000_000;
            Bar {
                ts_event_ns: T0 + i * MIN,
                open_px_e9: open,
                high_px_e9: open + 50_000_000,
                low_px_e9: open - 50_000_000,
                close_px_e9: open + 10_000_000,
                volume: 100 + i as u64,
            }
        })
        .collect()
}

fn tape(n: usize) -> Arc<Tape> {
    let series = SYMS.iter().enumerate().map(|(i, s)| (s.to_string(), 60, bars(i, n))).collect();
    Arc::new(Tape::from_series(series).expect("tape"))
}

// ---- the run ------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Alpaca,
    Polygon,
}

/// One test's exchange and feed.
struct Setup {
    provider: Provider,
    /// TLS with the generated certificate (else plain ws/http).
    tls: bool,
    /// Minute bars per symbol in the tape (from T0).
    bars: usize,
    /// The exchange's market start, minutes after T0 (earlier bars are REST history only).
    start_min: i64,
    /// Market seconds per wall second.
    speed: f64,
    /// Alpaca quotes.
    quotes: bool,
    /// Faults at market times.
    scenario: Scenario,
    /// Gate grace, market minutes.
    grace_min: i64,
    /// Reconnect backoff base, wall ms (the cap is 4x).
    backoff_ms: i64,
    /// No frame for this long (wall ms): dead.
    dead_ms: i64,
}

impl Setup {
    fn new(provider: Provider) -> Self {
        Setup {
            provider,
            tls: false,
            bars: 200,
            start_min: 120,
            speed: 1800.0,
            quotes: false,
            scenario: Scenario::default(),
            grace_min: 2,
            backoff_ms: 20,
            dead_ms: 1500,
        }
    }

    /// Wall milliseconds as market nanoseconds.
    fn wall_ms(&self, ms: i64) -> i64 {
        (ms as f64 * 1e6 * self.speed) as i64
    }

    /// The last window's end.
    fn tape_end(&self) -> i64 {
        T0 + self.bars as i64 * MIN
    }
}

/// What the engine saw and what the feed and the exchange counted.
struct Outcome {
    /// Bars in the order the strategy saw them: (symbol, bar).
    bars: Vec<(u32, Bar)>,
    /// Quotes in the order the strategy saw them.
    quotes: Vec<(u32, Quote)>,
    report: FeedReport,
    stats: Stats,
    tape: Arc<Tape>,
    /// The feed's log lines, in order.
    log: Vec<FeedLogLine>,
}

impl Outcome {
    /// The log lines of one kind.
    fn lines(&self, kind: &str) -> Vec<&FeedLogLine> {
        self.log.iter().filter(|l| l.kind == kind).collect()
    }

    /// The log lines of one kind whose detail contains `text`.
    fn lines_with(&self, kind: &str, text: &str) -> Vec<&FeedLogLine> {
        self.log.iter().filter(|l| l.kind == kind && l.detail.contains(text)).collect()
    }
}

/// Records every bar and quote it is given, in order.
#[derive(Clone, Default)]
struct Recorder {
    bars: Arc<Mutex<Vec<(u32, Bar)>>>,
    quotes: Arc<Mutex<Vec<(u32, Quote)>>>,
}
impl Strategy for Recorder {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        self.bars.lock().unwrap().push((ctx.symbol().0, *b));
    }
    fn on_quote(&mut self, ctx: &mut Ctx<'_>, q: &Quote) {
        self.quotes.lock().unwrap().push((ctx.symbol().0, *q));
    }
}
impl StrategyFactory for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(self.clone())
    }
}

/// The run's primary source: idle until the feed thread has finished (its last pushes are then in
/// the ingress, which the sequencer drains first); one more turn after it is seen finished.
struct UntilFinished<'h>(&'h FeedHandle, bool);
impl Source for UntilFinished<'_> {
    fn next(&mut self) -> Next {
        if self.1 {
            return Next::End;
        }
        self.1 = self.0.is_finished();
        Next::Idle
    }
}

/// The controller thread's view: the exchange, the feed, waits bounded in wall time.
struct Ctl<'a> {
    ex: &'a ExchangeHandle,
    feed: &'a FeedHandle,
}

/// The longest any wait may take (wall): a liveness bound, not a timing assertion.
const WAIT_BOUND: Duration = Duration::from_secs(30);

impl Ctl<'_> {
    /// Wait (2 ms steps, at most [`WAIT_BOUND`]) until `cond` holds or the feed ended; false if
    /// it never held.
    fn wait(&self, mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..WAIT_BOUND.as_millis() / 2 {
            if cond() {
                return true;
            }
            if self.feed.is_finished() {
                return cond();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    fn market_now(&self) -> i64 {
        self.ex.clock().now_ns()
    }

    /// Wait until market time reaches `t`.
    fn until_market(&self, t: i64) {
        let ex = self.ex;
        assert!(self.wait(|| ex.clock().now_ns() >= t), "market time never reached {t}");
    }

    fn bars_pushed(&self) -> u64 {
        self.feed.status().snapshot().bars_pushed
    }
}

/// Sets the feed's stop flag when the controller ends, even by a failed assertion (the run would
/// otherwise wait for the feed forever).
struct StopOnDrop<'a>(&'a FeedHandle);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn symbol_table() -> SymbolTable {
    let mut t = SymbolTable::new();
    for s in SYMS {
        t.intern(s).unwrap();
    }
    t
}

/// Start the exchange and the feed, run `script` on a controller thread while a pipeline run
/// records what the feed publishes; after the script, wait until the whole tape is out and
/// pushed (or the feed ended), stop the feed and collect everything.
fn run_live(setup: Setup, script: impl FnOnce(&Ctl<'_>) + Send) -> Outcome {
    let tape = tape(setup.bars);
    let ex = Exchange::start(ExchangeConfig {
        tape: Some(Arc::clone(&tape)),
        speed: setup.speed,
        start_ns: Some(T0 + setup.start_min * MIN),
        plain: !setup.tls,
        scenario: setup.scenario.clone(),
        state_dir: Some(std::env::temp_dir()),
        ..ExchangeConfig::default()
    })
    .expect("exchange");
    let tls = match ex.cert_pem() {
        Some(pem) => TlsConfig::with_extra_root_pem(pem),
        None => TlsConfig::Plain,
    };
    let market = ex.clock();
    let clock: SharedClock = Arc::new(move || market.now_ns());
    let table = symbol_table();
    let symbols = SymbolMap::from_table(&table);

    let rest = RestConfig::new(ex.http_origin(), tls.clone());
    let (url, history): (String, Box<dyn History>) = match setup.provider {
        Provider::Alpaca => (
            format!("{}://{}/v2/iex", ex.ws_scheme(), ex.addr()),
            Box::new(
                AlpacaHistory::new(rest, Secret::new(DEMO_KEY), Secret::new(DEMO_SECRET), AlpacaFeedName::Iex)
                    .expect("alpaca history"),
            ),
        ),
        Provider::Polygon => (
            format!("{}://{}/stocks", ex.ws_scheme(), ex.addr()),
            Box::new(PolygonHistory::new(rest, Secret::new(DEMO_KEY)).expect("polygon history")),
        ),
    };
    let mut fc = FeedConfig::new(url.clone(), tls.clone());
    fc.ws = WsConfig {
        ping_interval_ns: setup.wall_ms(100),
        dead_after_ns: setup.wall_ms(setup.dead_ms),
        connect_timeout_ns: setup.wall_ms(5_000),
        backoff_base_ns: setup.wall_ms(setup.backoff_ms),
        backoff_cap_ns: setup.wall_ms(4 * setup.backoff_ms),
        jitter_seed: 7,
    };
    fc.max_wait_ns = setup.wall_ms(5);
    fc.clock_speed = setup.speed;
    fc.gate = GateConfig { grace_ns: setup.grace_min * MIN, release_on_later: false };
    fc.history = Some(history);
    // Reaches back past the tape's first bar: the warm start is the whole history.
    fc.warm_start_ns = 24 * 60 * MIN;
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    fc.log = Some(Arc::new(move |l: &FeedLogLine| sink.lock().unwrap().push(l.clone())));

    let ingress = Ingress::new(64);
    let stop = Arc::new(AtomicBool::new(false));
    let feed = match setup.provider {
        Provider::Alpaca => {
            let mut cfg = AlpacaFeedConfig::new(url, tls, Secret::new(DEMO_KEY), Secret::new(DEMO_SECRET));
            cfg.feed = fc;
            cfg.quotes = setup.quotes;
            spawn_alpaca_feed(cfg, ingress.clone(), symbols, clock, stop)
        }
        Provider::Polygon => {
            let mut cfg = PolygonFeedConfig::new(url, tls, Secret::new(DEMO_KEY));
            cfg.feed = fc;
            spawn_polygon_feed(cfg, ingress.clone(), symbols, clock, stop)
        }
    }
    .expect("spawn feed");

    let rec = Recorder::default();
    let mut engine_cfg = EngineConfig::default();
    engine_cfg.pipeline.shards = 1; // one shard thread sees every event in sequence order
    let expected = (SYMS.len() * setup.bars) as u64;
    let tape_end = setup.tape_end();
    let grace = setup.grace_min * MIN;
    std::thread::scope(|s| {
        let ctl = Ctl { ex: &ex, feed: &feed };
        s.spawn(move || {
            let _stop = StopOnDrop(ctl.feed);
            script(&ctl);
            // The whole tape is out (and final), and every bar of it pushed (or the feed ended).
            // (No assertion: a feed that ended by itself makes these return at once.)
            ctl.wait(|| ctl.market_now() >= tape_end + grace + MIN);
            ctl.wait(|| ctl.bars_pushed() >= expected);
        });
        let spec = RunSpec::new(&engine_cfg, &table, &rec).ingress(ingress.clone());
        run(spec, UntilFinished(&feed, false), &mut |_| {}).expect("run");
    });
    let report = feed.join().expect("feed thread");
    let stats = ex.stats();
    ex.stop();
    let bars = rec.bars.lock().unwrap().clone();
    let quotes = rec.quotes.lock().unwrap().clone();
    let log = log.lock().unwrap().clone();
    for l in &log {
        let text = format!("{l} {:?}", l.symbol);
        assert!(!text.contains(DEMO_SECRET) && !text.contains(DEMO_KEY), "a secret in the log: {text}");
    }
    let o = Outcome { bars, quotes, report, stats, tape, log };
    // Every run logs its first connection and how it ended.
    assert!(o.lines_with("connected", "connection 1 opened").len() == 1, "{:#?}", o.log);
    assert_eq!(o.lines("ended").len(), 1, "{:#?}", o.log);
    o
}

// ---- checks -------------------------------------------------------------------------------------

/// Per symbol, the bars in the order the engine saw them.
fn per_symbol(bars: &[(u32, Bar)]) -> BTreeMap<u32, Vec<Bar>> {
    let mut m: BTreeMap<u32, Vec<Bar>> = BTreeMap::new();
    for (s, b) in bars {
        m.entry(*s).or_default().push(*b);
    }
    m
}

/// Every bar of the tape exactly once per symbol, in window order, nothing else; across symbols
/// the stream never goes back in time by more than `slack` (history batches and live windows
/// interleave by window).
fn assert_whole_tape(o: &Outcome) {
    let got = per_symbol(&o.bars);
    for (i, s) in o.tape.symbols.iter().enumerate() {
        let sym = SYMS.iter().position(|n| *n == s.name).unwrap() as u32;
        let g = got.get(&sym).map(Vec::as_slice).unwrap_or_default();
        if g != s.minute.as_slice() {
            let first_diff = g.iter().zip(&s.minute).position(|(a, b)| a != b);
            panic!(
                "{} (tape #{i}): {} bars seen, {} on the tape; first difference at {first_diff:?}: seen {:?}, tape {:?}\nreport: {:?}",
                s.name,
                g.len(),
                s.minute.len(),
                first_diff.map(|p| g[p].ts_event_ns),
                first_diff.map(|p| s.minute[p].ts_event_ns),
                o.report
            );
        }
    }
    assert_eq!(o.bars.len(), SYMS.len() * o.tape.symbols[0].minute.len());
}

/// The report's invariants after a stop: nothing left behind, the bar counts add up.
fn assert_clean_stop(o: &Outcome) {
    let r = &o.report;
    assert_eq!(r.end, FeedEnd::Stopped, "{r:?}");
    assert_eq!((r.pending_at_end, r.backlog_at_end), (0, 0), "{r:?}");
    assert_eq!(r.counters.released as usize, o.bars.len(), "every released bar reached the engine");
}

/// A feed on the exchange's clock: warm start from REST, then live bars (Alpaca, TLS)
#[test]
fn alpaca_over_tls_warm_starts_from_rest_then_streams_every_bar_once_with_quotes() {
    let mut setup = Setup::new(Provider::Alpaca);
    setup.tls = true;
    setup.quotes = true;
    let start = T0 + setup.start_min * MIN;
    let o = run_live(setup, |_| {});
    assert_whole_tape(&o);
    assert_clean_stop(&o);
    let r = &o.report;
    // History: every bar before the subscription (at least the 120 minutes before the start).
    assert!(r.warm_start_bars >= 3 * 120, "{r:?}");
    assert_eq!(r.history_errors, 0, "{:?}", r.history_log);
    // Live: the rest; a live bar for a window history already gave is a duplicate, never a second
    // release (the seam).
    let live = o.report.counters.released - r.warm_start_bars;
    assert!(live > 0, "{r:?}");
    assert_eq!(r.counters.released, 600);
    assert_eq!((r.counters.late, r.counters.updated, r.counters.parse_errors), (0, 0, 0), "{r:?}");
    assert_eq!((r.reconnects, r.server_errors), (0, 0), "{r:?}");
    assert_eq!(r.subscribed, SYMS);
    // Quotes: made by the exchange from each live bar (bid = close - 0.01, ask = close + 0.01,
    // stamped at the window's end), in order per symbol, none doubled, only for live windows.
    assert!(!o.quotes.is_empty());
    assert_eq!(o.quotes.len() as u64, r.counters.quotes);
    let mut last: BTreeMap<u32, i64> = BTreeMap::new();
    for (sym, q) in &o.quotes {
        let bar = o.tape.symbols[*sym as usize]
            .minute
            .iter()
            .find(|b| b.ts_event_ns + MIN == q.ts_event_ns)
            .expect("a quote at a bar's window end");
        assert!(q.ts_event_ns > start, "no quote for a history window");
        assert_eq!((q.bid_px_e9, q.ask_px_e9), (bar.close_px_e9 - 10_000_000, bar.close_px_e9 + 10_000_000));
        let prev = last.insert(*sym, q.ts_event_ns);
        assert!(prev.is_none_or(|p| p < q.ts_event_ns), "quotes in order, none doubled");
    }
    // Every live window after the first few (the connection opens after the start) has its quote.
    for (sym, _) in SYMS.iter().enumerate() {
        let n = o.quotes.iter().filter(|(s, _)| *s == sym as u32).count();
        assert!(n >= 40, "{n} quotes for symbol {sym}");
    }
    // The log: one connection, no trouble, a clean end.
    assert!(o.lines("disconnected").is_empty() && o.lines("reconnected").is_empty(), "{:#?}", o.log);
    assert!(o.lines("rejected").is_empty() && o.lines("late").is_empty(), "{:#?}", o.log);
    assert_eq!(o.lines("ended")[0].detail, "stopped");
    assert_eq!(o.lines("ended")[0].level, LogLevel::Info);
}

#[test]
fn polygon_warm_starts_from_rest_then_streams_every_minute_aggregate_once() {
    let o = run_live(Setup::new(Provider::Polygon), |_| {});
    assert_whole_tape(&o);
    assert_clean_stop(&o);
    let r = &o.report;
    assert!(r.warm_start_bars >= 3 * 120, "{r:?}");
    assert!(r.counters.released > r.warm_start_bars, "live AM bars too: {r:?}");
    assert_eq!(r.history_errors, 0, "{:?}", r.history_log);
    assert_eq!((r.counters.late, r.counters.updated, r.counters.parse_errors), (0, 0, 0), "{r:?}");
    assert_eq!((r.reconnects, r.server_errors), (0, 0), "{r:?}");
    assert_eq!(r.subscribed, SYMS);
}

#[test]
fn a_disconnect_mid_stream_is_backfilled_from_rest_with_no_bar_lost_or_doubled() {
    let mut setup = Setup::new(Provider::Alpaca);
    // At least 100 ms of wall time down (3 market minutes at 1800x): windows are missed.
    setup.backoff_ms = 200;
    let o = run_live(setup, |ctl| {
        ctl.until_market(T0 + 150 * MIN);
        ctl.ex.inject(Fault::Disconnect);
    });
    assert_whole_tape(&o);
    assert_clean_stop(&o);
    let r = &o.report;
    assert!(r.reconnects >= 1, "{r:?}");
    assert!(r.counters.gaps_filled >= 3, "the missed windows came from REST: {r:?}");
    assert!(r.history_requests >= 2, "warm start and backfill: {r:?}");
    assert_eq!(r.counters.late, 0, "{r:?}");
    assert_eq!(o.stats.faults["disconnect"], 1);
    // Logged: the close (the exchange drops the TCP connection), the reconnect, and each
    // symbol's backfilled windows, which add up to the counter.
    let closed = o.lines_with("disconnected", "without a websocket close");
    assert!(!closed.is_empty() && closed[0].level == LogLevel::Warn, "{:#?}", o.log);
    assert!(!o.lines_with("reconnected", "reconnect 1").is_empty(), "{:#?}", o.log);
    assert_gap_lines(&o);
}

/// `gap_filled` lines name a symbol and count windows that add up to `gaps_filled`.
fn assert_gap_lines(o: &Outcome) {
    let gaps = o.lines("gap_filled");
    assert!(!gaps.is_empty(), "{:#?}", o.log);
    let mut total = 0;
    for l in gaps {
        assert!(SYMS.contains(&l.symbol.as_deref().unwrap_or("")), "{l}");
        total += l.detail.split(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(total, o.report.counters.gaps_filled);
}

#[test]
fn a_session_day_with_disconnects_every_20_minutes_a_406_and_429s_delivers_every_bar_once() {
    let mut setup = Setup::new(Provider::Alpaca);
    // 09:30-16:00 New York: 390 minute bars; live from 10:00 at 2 market hours per wall second.
    setup.bars = 390;
    setup.start_min = 30;
    setup.speed = 7200.0;
    setup.tls = true;
    setup.scenario = Scenario {
        faults: vec![
            (When::Every(20), Fault::Disconnect),
            // Queued at 11:10 for the reconnect after the 11:10 disconnect: two refused upgrades,
            // then a 406 (a lingering old session) on the auth that follows.
            (When::At(T0 + 100 * MIN), Fault::Http429 { count: 2 }),
            (When::At(T0 + 100 * MIN), Fault::ConnectionLimit),
        ],
    };
    let o = run_live(setup, |_| {});
    assert_whole_tape(&o);
    assert_clean_stop(&o);
    let r = &o.report;
    let disconnects = o.stats.faults["disconnect"];
    assert!(disconnects >= 17, "{:?}", o.stats);
    assert!(r.reconnects + 1 >= disconnects, "{r:?}");
    assert_eq!((o.stats.rejected_429, o.stats.rejected_406), (2, 1), "{:?}", o.stats);
    assert!(r.ws.connect_failures >= 2, "the 429s: {r:?}");
    assert!(r.server_errors >= 1, "the 406: {r:?}");
    assert!(r.counters.gaps_filled > 0, "{r:?}");
    assert_eq!(r.counters.late, 0, "{r:?}");
    // Logged: the refused upgrades, the 406 and what the feed did about it, the backfills.
    assert_eq!(o.lines_with("disconnected", "refused with HTTP 429").len(), 2, "{:#?}", o.log);
    let e406 = o.lines_with("server_error", "406 connection limit exceeded");
    assert_eq!(e406.len(), 1, "{:#?}", o.log);
    assert!(e406[0].detail.ends_with("; reconnect"), "{}", e406[0]);
    assert!(o.lines("reconnected").len() as u64 >= r.reconnects.min(disconnects - 1));
    assert_gap_lines(&o);
}

/// What the exchange sends for an `UpdatedBar` fault (close moved to the high, or the low when
/// the close is the high; 100 more shares).
fn updated(b: &Bar) -> Bar {
    let mut u = *b;
    u.close_px_e9 = if b.close_px_e9 != b.high_px_e9 { b.high_px_e9 } else { b.low_px_e9 };
    u.volume += 100;
    u
}

/// The tape with `n` bars replaced by their updated version: every window once, in order.
fn assert_tape_with_updates(o: &Outcome, n: usize) {
    let got = per_symbol(&o.bars);
    let mut changed = 0;
    for (sym, s) in o.tape.symbols.iter().enumerate() {
        let g = got.get(&(sym as u32)).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(g.len(), s.minute.len(), "{}: {:?}", s.name, o.report);
        for (a, b) in g.iter().zip(&s.minute) {
            if a != b {
                assert_eq!(*a, updated(b), "{}: only updated bars differ from the tape", s.name);
                changed += 1;
            }
        }
    }
    assert_eq!(changed, n, "updated bars released");
}

/// A 10 market minute grace (333 ms of wall time at 1800x): the updated bar, sent right after
/// its window's bar, still finds it pending on a loaded machine (else it is `late`: counted,
/// not released).
fn fault_setup(p: Provider) -> Setup {
    let mut s = Setup::new(p);
    s.grace_min = 10;
    s
}

fn stream_fault_script(ctl: &Ctl<'_>) {
    ctl.until_market(T0 + 130 * MIN);
    ctl.ex.inject(Fault::MalformedFrame);
    ctl.until_market(T0 + 140 * MIN);
    ctl.ex.inject(Fault::DuplicateBar);
    ctl.until_market(T0 + 150 * MIN);
    ctl.ex.inject(Fault::OutOfOrder);
    ctl.until_market(T0 + 160 * MIN);
    ctl.ex.inject(Fault::UpdatedBar);
}

fn assert_stream_faults_survived(o: &Outcome) {
    // The updated bar replaced its window (released once, with the new values).
    assert_tape_with_updates(o, 1);
    assert_clean_stop(o);
    let r = &o.report;
    let c = &r.counters;
    // The malformed frame: one refused frame, the connection kept.
    assert_eq!((c.rejected(RejectKind::BadJson), c.parse_errors), (1, 1), "{c:?}");
    assert_eq!(r.reconnects, 0, "{r:?}");
    // The duplicate and the update.
    assert!(c.duplicates >= 1, "{c:?}");
    assert_eq!(c.updated, 1, "{c:?}");
    // The out-of-order window (sent after the next one, in the same frame) was put back in order
    // by the gate within its grace: counted, nothing late, the stream in order (checked above).
    assert_eq!(c.late, 0, "{c:?}");
    assert_eq!(c.reordered, 3, "one window of each symbol: {c:?}");
    let re = o.lines("reordered");
    assert_eq!(re.len(), 3, "{:#?}", o.log);
    assert!(re.iter().all(|l| l.symbol.is_some() && l.detail.contains("put back in order")), "{re:#?}");
    for k in ["malformed_frame", "duplicate_bar", "out_of_order", "updated_bar"] {
        assert_eq!(o.stats.faults[k], 1, "{k}");
    }
    // Each has its log line: the refused frame, the duplicate and the update with their symbol
    // and window (the update's is the window whose released bar changed).
    let rej = o.lines("rejected");
    assert_eq!(rej.len(), 1, "{:#?}", o.log);
    assert!(rej[0].detail.starts_with("BadJson") && rej[0].level == LogLevel::Warn, "{}", rej[0]);
    let dups = o.lines("duplicate");
    assert_eq!(dups.len() as u64, c.duplicates, "{:#?}", o.log);
    assert!(dups.iter().all(|l| l.symbol.is_some() && l.detail.starts_with("window 2024-03-01T")), "{dups:#?}");
    let upd = o.lines("updated");
    assert_eq!(upd.len(), 1, "{:#?}", o.log);
    let changed =
        o.bars.iter().find(|(s, b)| *b != o.tape.symbols[*s as usize].minute[((b.ts_event_ns - T0) / MIN) as usize]);
    let (sym, bar) = changed.expect("the updated bar");
    assert_eq!(upd[0].symbol.as_deref(), Some(SYMS[*sym as usize]));
    let window = jiff::Timestamp::from_nanosecond(i128::from(bar.ts_event_ns)).unwrap().to_string();
    assert!(upd[0].detail.contains(&window), "{} vs {window}", upd[0]);
    assert!(o.lines("late").is_empty(), "{:#?}", o.log);
}

#[test]
fn alpaca_survives_malformed_frames_duplicate_out_of_order_and_updated_bars() {
    let o = run_live(fault_setup(Provider::Alpaca), stream_fault_script);
    assert_stream_faults_survived(&o);
    assert_eq!(o.report.counters.updated_bars, 1, "one `u` message");
}

#[test]
fn polygon_survives_malformed_frames_duplicate_out_of_order_and_updated_bars() {
    let o = run_live(fault_setup(Provider::Polygon), stream_fault_script);
    assert_stream_faults_survived(&o);
}

/// The bars seen are, per symbol, the tape's first bars (none missing, none doubled), through at
/// least `through` (window start).
fn assert_tape_prefix(o: &Outcome, through: i64) {
    let got = per_symbol(&o.bars);
    for (sym, s) in o.tape.symbols.iter().enumerate() {
        let g = got.get(&(sym as u32)).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(g, &s.minute[..g.len()], "{}", s.name);
        assert!(g.last().is_some_and(|b| b.ts_event_ns >= through), "{}: {} bars", s.name, g.len());
    }
}

#[test]
fn alpaca_402_on_a_reconnect_ends_the_feed_with_the_typed_error() {
    // Alpaca 402 is fatal by design (PROTOCOLS.md: the key is wrong; retrying cannot help),
    // even after an earlier session of the same key was accepted.
    let o = run_live(Setup::new(Provider::Alpaca), |ctl| {
        ctl.until_market(T0 + 140 * MIN);
        ctl.ex.inject(Fault::AuthFailure);
        ctl.ex.inject(Fault::Disconnect);
    });
    let r = &o.report;
    assert_eq!(r.end, FeedEnd::Fatal(FatalError::Alpaca(AlpacaError::AuthFailed)), "{r:?}");
    assert_eq!(o.stats.auth_failed, 1);
    assert_eq!(r.ws.opens, 2, "{r:?}");
    // What was released before is the tape's beginning, exactly.
    assert_tape_prefix(&o, T0 + 135 * MIN);
    let e = o.lines_with("server_error", "402 auth failed");
    assert_eq!(e.len(), 1, "{:#?}", o.log);
    assert!(e[0].detail.ends_with("; fatal") && e[0].level == LogLevel::Error, "{}", e[0]);
    let end = o.lines("ended");
    assert!(end[0].level == LogLevel::Error && end[0].detail.contains("402"), "{}", end[0]);
}

#[test]
fn polygon_auth_failed_on_a_reconnect_ends_the_feed_with_the_servers_message() {
    let o = run_live(Setup::new(Provider::Polygon), |ctl| {
        ctl.until_market(T0 + 140 * MIN);
        ctl.ex.inject(Fault::AuthFailure);
        ctl.ex.inject(Fault::Disconnect);
    });
    let r = &o.report;
    assert_eq!(r.end, FeedEnd::Fatal(FatalError::AuthFailed("authentication failed".into())), "{r:?}");
    assert_eq!(o.stats.auth_failed, 1);
    assert_tape_prefix(&o, T0 + 135 * MIN);
    let e = o.lines_with("server_error", "auth_failed (authentication failed); fatal");
    assert_eq!(e.len(), 1, "{:#?}", o.log);
    assert_eq!(o.lines("ended")[0].level, LogLevel::Error);
}

#[test]
fn a_silent_stall_is_detected_as_a_dead_connection_and_recovered_with_backfill() {
    let mut setup = Setup::new(Provider::Alpaca);
    // Dead after 300 ms of silence (pings every 100 ms); the stall lasts 1 s of wall time
    // (30 market minutes at 1800x).
    setup.dead_ms = 300;
    let o = run_live(setup, |ctl| {
        ctl.until_market(T0 + 140 * MIN);
        ctl.ex.inject(Fault::Stall { ms: 1000 });
    });
    assert_whole_tape(&o);
    assert_clean_stop(&o);
    let r = &o.report;
    assert!(r.ws.dead_detected >= 1, "{r:?}");
    assert!(r.reconnects >= 1, "{r:?}");
    assert!(r.counters.gaps_filled >= 3, "{r:?}");
    assert_eq!(r.counters.late, 0, "{r:?}");
    // Logged: the dead connection (no frame for at least 300 ms of wall time), the backfill.
    assert!(!o.lines_with("disconnected", "dead: no frame").is_empty(), "{:#?}", o.log);
    assert_gap_lines(&o);
}
