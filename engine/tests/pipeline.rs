//! Whole-pipeline tests: real threads, the real disruptor ring and queues, real bar files.

use engine::barfile::write_bar_file;
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, JournalInputs, Topology};
use engine::pipeline::{BarReplay, RunOutput, RunSpec, run};
use engine::records::{Bar, ExecKind, ExecReport, PX_SCALE, Side};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use std::path::Path;

const D: i64 = PX_SCALE; // one dollar in e9
const MIN: i64 = 60_000_000_000;

fn bar(i: i64, o: i64, h: i64, l: i64, c: i64) -> Bar {
    // 2024-01-02 14:30 UTC + i minutes
    Bar {
        ts_event_ns: 1_704_205_800_000_000_000 + i * MIN,
        open_px_e9: o * D,
        high_px_e9: h * D,
        low_px_e9: l * D,
        close_px_e9: c * D,
        volume: 1000,
    }
}

/// A scripted strategy: on bar `n` (0-based, counted per symbol) it submits the scripted order.
#[derive(Clone)]
struct Script {
    orders: Vec<(usize, OrderRequest)>,
    n: usize,
    reports: std::sync::Arc<std::sync::Mutex<Vec<(ExecKind, u32)>>>,
}

impl Strategy for Script {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _bar: &Bar) {
        for (at, req) in &self.orders {
            if *at == self.n {
                ctx.submit(*req);
            }
        }
        self.n += 1;
    }
    fn on_order(&mut self, _ctx: &mut Ctx<'_>, r: &ExecReport) {
        self.reports.lock().unwrap().push((r.exec_kind().unwrap(), r.fill_qty));
    }
}

struct ScriptFactory(Script);
impl StrategyFactory for ScriptFactory {
    fn name(&self) -> &str {
        "script"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(self.0.clone())
    }
}

use std::sync::atomic::Ordering::Relaxed;

fn run_dir(data: &Path, out: Option<&Path>, cfg: &EngineConfig, f: &dyn StrategyFactory) -> RunOutput {
    run_mode(data, out, cfg, f, true)
}

/// Run through the pipeline with bars by reference (zero-copy) or copied into ring events.
fn run_mode(
    data: &Path,
    out: Option<&Path>,
    cfg: &EngineConfig,
    f: &dyn StrategyFactory,
    zero_copy: bool,
) -> RunOutput {
    let set = BarSet::open_dir(data, 2).unwrap();
    let mut spec = RunSpec::new(cfg, set.symbols(), f).bars(&set);
    if let Some(out) = out {
        spec = spec.out_dir(out);
    }
    let source = if zero_copy { BarReplay::zero_copy(set.merged()) } else { BarReplay::new(set.merged()) };
    let mut gauges = (0, 0, 0);
    let r = run(spec, source, &mut |c| {
        let g = &c.gauges;
        gauges = (g.fills.load(Relaxed), g.orders.load(Relaxed), g.realized_pnl_e9.load(Relaxed));
    })
    .unwrap();
    // The live gauges a status line shows end where the run's output does.
    let realized: i128 = r.positions.symbols.iter().map(|b| b.realized_pnl_e9).sum();
    assert_eq!((gauges.0, gauges.2), (r.positions.totals().0, realized as i64), "gauges: fills, realized PnL");
    // Orders count risk's own flattening orders too (placed only after a daily-loss halt).
    if r.halts == 0 {
        assert_eq!(gauges.1, r.accepted, "gauges: orders");
    } else {
        assert!(gauges.1 > r.accepted, "gauges: orders and risk's flattening orders");
    }
    let want = if cfg.pipeline.topology == Topology::Threads { Topology::Threads } else { Topology::Inline };
    assert_eq!(r.topology, want, "auto picks inline for a replay");
    r
}

/// The configs a determinism test compares: inline, and threads with 1..3 shards.
fn topologies(base: &EngineConfig) -> Vec<(String, EngineConfig)> {
    let mut v = vec![("inline".to_string(), EngineConfig { pipeline: Default::default(), ..base.clone() })];
    v[0].1.pipeline.topology = Topology::Inline;
    for shards in [1, 2, 3] {
        let mut c = base.clone();
        c.pipeline.topology = Topology::Threads;
        c.pipeline.shards = shards;
        v.push((format!("threads/{shards}"), c));
    }
    v
}

fn fills(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("fills.csv")).unwrap().lines().skip(1).map(str::to_string).collect()
}

#[test]
fn hand_checked_small_case() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    //            i   open high low close
    let bars = [
        bar(0, 10, 11, 9, 10),  // bar 0: buy 100 at market  -> fills at bar 1's open
        bar(1, 12, 13, 11, 12), // fill buy 100 @ 12.  bar 1: sell limit 100 @ 14 (a take-profit)
        bar(2, 13, 14, 12, 13), // high 14 touches the limit -> sell 100 @ 14.  bar 2: sell stop 50 @ 11 (short entry)
        bar(3, 12, 12, 10, 11), // low 10 <= stop 11 and open 12 > 11 -> sell 50 @ 11.  bar 3: buy limit 50 @ 9
        bar(4, 8, 9, 7, 8),     // open 8 <= limit 9: the gap fills at the open, buy 50 @ 8
        bar(5, 8, 9, 7, 8),     // bar 5: buy 10 at market -> fills at bar 6's open
        bar(6, 9, 9, 9, 9),     // fill buy 10 @ 9; still long 10 after the last bar -> closed at its close, 9
    ];
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Script {
        orders: vec![
            (0, OrderRequest::market(Side::Buy, 100)),
            (1, OrderRequest::limit(Side::Sell, 100, 14 * D)),
            (2, OrderRequest::stop(Side::Sell, 50, 11 * D)),
            (3, OrderRequest::limit(Side::Buy, 50, 9 * D)),
            (5, OrderRequest::market(Side::Buy, 10)),
        ],
        n: 0,
        reports: reports.clone(),
    };
    // The same hand-checked answer on every topology (the last run's result is checked below).
    let mut r = None;
    for (name, cfg) in topologies(&EngineConfig::default()) {
        reports.lock().unwrap().clear();
        let out = d.path().join(&name);
        r = Some(run_dir(&data, Some(&out), &cfg, &ScriptFactory(script.clone())));
        // columns: ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl
        assert_eq!(
            fills(&out),
            vec![
                "2024-01-02T14:31:00Z,T,buy,100,12.00,0.50,T-1,none,100,0.00",
                "2024-01-02T14:32:00Z,T,sell,100,14.00,0.50,T-2,none,0,199.00",
                "2024-01-02T14:33:00Z,T,sell,50,11.00,0.25,T-3,none,-50,199.00",
                "2024-01-02T14:34:00Z,T,buy,50,8.00,0.25,T-4,none,0,348.50",
                "2024-01-02T14:36:00Z,T,buy,10,9.00,0.05,T-5,none,10,348.50",
                "2024-01-02T14:36:00Z,T,sell,10,9.00,0.05,risk-1,end_of_run,0,348.40",
            ],
            "{name}"
        );
    }
    let r = r.unwrap();
    // Round trip 1: -100*12 + 100*14 = +200, commissions 0.50 + 0.50 -> +199.00
    // Round trip 2 (short): +50*11 - 50*8 = +150, commissions 0.25 + 0.25 -> +149.50
    // Round trip 3: -10*9 + 10*9 = 0, commissions 0.05 + 0.05 -> -0.10
    // Net = 199.00 + 149.50 - 0.10 = 348.40; commissions total 1.60
    let (n_fills, trades, wins, net, comm) = r.positions.totals();
    assert_eq!((n_fills, trades, wins), (6, 3, 2));
    assert_eq!(net, 34_840 * D as i128 / 100);
    assert_eq!(comm, 160 * D as i128 / 100);
    assert_eq!(r.equity_e9, net, "risk's cash + marks agree with the position tracker");
    assert_eq!(r.positions.trade_pnls_e9, vec![199 * D as i128, 14_950 * D as i128 / 100, -10 * D as i128 / 100]);
    assert_eq!(r.bars, 7);
    assert_eq!(r.positions.symbols[0].closeouts, 1, "one end-of-run close-out");
    assert_eq!(r.positions.symbols[0].realized_pnl_e9, net);
    // The strategy saw every order accepted, then filled (the liquidation is reported too).
    let seen = reports.lock().unwrap().clone();
    let accepted = seen.iter().filter(|(k, _)| *k == ExecKind::Accepted).count();
    let filled: Vec<u32> = seen.iter().filter(|(k, _)| *k == ExecKind::Filled).map(|&(_, q)| q).collect();
    assert_eq!(accepted, 5);
    assert_eq!(filled, vec![100, 100, 50, 50, 10, 10]);
}

#[test]
fn without_flatten_at_end_positions_stay_open_and_working_orders_are_canceled() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars = [bar(0, 10, 11, 9, 10), bar(1, 12, 13, 11, 12), bar(2, 12, 13, 11, 12)];
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Script {
        // A market buy (fills at bar 1's open), then a take-profit far away that never fills.
        orders: vec![(0, OrderRequest::market(Side::Buy, 100)), (1, OrderRequest::limit(Side::Sell, 100, 50 * D))],
        n: 0,
        reports: reports.clone(),
    };
    let mut base = EngineConfig::default();
    base.risk.flatten_at_end = false;
    for (name, cfg) in topologies(&base) {
        reports.lock().unwrap().clear();
        let out = d.path().join(&name);
        let r = run_dir(&data, Some(&out), &cfg, &ScriptFactory(script.clone()));
        assert_eq!(
            fills(&out),
            vec!["2024-01-02T14:31:00Z,T,buy,100,12.00,0.50,T-1,none,100,0.00"],
            "{name}: no close-out"
        );
        assert_eq!(r.positions.symbols[0].closeouts, 0, "{name}");
        let seen = reports.lock().unwrap().clone();
        assert_eq!(
            seen.iter().filter(|(k, _)| *k == ExecKind::Canceled).count(),
            1,
            "{name}: the take-profit was canceled"
        );
    }
}

/// Places buy limits far below the market and changes them: the first to a marketable price,
/// the second to a size past the position limit; then tries to change the filled first one.
#[derive(Clone, Default)]
struct Replacer {
    n: usize,
    ids: Vec<engine::records::OrderId>,
    seen: Seen,
}
/// Reports a strategy saw: kind, filled, leaves, reason.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(ExecKind, u32, u32, String)>>>;
impl Strategy for Replacer {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _b: &Bar) {
        match self.n {
            0 => self.ids.push(ctx.submit(OrderRequest::limit(Side::Buy, 100, 5 * D))),
            1 => ctx.replace(self.ids[0], 100, 13 * D, 0), // bar 2 trades down to 12: fills at its open, 13
            2 => {
                self.ids.push(ctx.submit(OrderRequest::limit(Side::Buy, 10, 5 * D)));
            }
            3 => {
                ctx.replace(self.ids[1], 10_000, 0, 0); // past max_position: refused by risk
                ctx.replace(self.ids[0], 50, 0, 0); // filled and done: refused
                ctx.replace(self.ids[1], 20, 6 * D, 0); // allowed: 20 @ 6, fills on bar 4 (low 5)
            }
            _ => {}
        }
        self.n += 1;
    }
    fn on_order(&mut self, _ctx: &mut Ctx<'_>, r: &ExecReport) {
        let reason = r.exec_reason().map_or("?", |x| x.as_str()).to_string();
        self.seen.lock().unwrap().push((r.exec_kind().unwrap(), r.fill_qty, r.leaves_qty, reason));
    }
}

#[test]
fn a_strategy_changes_working_orders_through_risk_and_the_venue() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars = [
        bar(0, 10, 11, 9, 10),
        bar(1, 12, 13, 11, 12),
        bar(2, 13, 14, 12, 13),
        bar(3, 12, 12, 10, 11),
        bar(4, 8, 9, 5, 6),
        bar(5, 7, 8, 6, 7),
    ];
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let mut base = EngineConfig::default();
    base.risk.max_position_shares = 500;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let f = ScriptFactory2(Replacer { seen: seen.clone(), ..Default::default() });
    let mut first: Option<Vec<(ExecKind, u32, u32, String)>> = None;
    for (name, cfg) in topologies(&base) {
        seen.lock().unwrap().clear();
        let out = d.path().join(&name);
        let r = run_dir(&data, Some(&out), &cfg, &f);
        // columns: ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl
        let got = fills(&out);
        assert_eq!(
            got[0], "2024-01-02T14:32:00Z,T,buy,100,13.00,0.50,T-1,none,100,0.00",
            "{name}: the changed limit filled"
        );
        assert_eq!(
            got[1], "2024-01-02T14:34:00Z,T,buy,20,6.00,0.10,T-2,none,120,0.00",
            "{name}: 20 @ 6 after the change"
        );
        assert_eq!(r.rejects_for(engine::records::Reason::MaxPosition), 1, "{name}");
        let s = seen.lock().unwrap().clone();
        let kinds: Vec<(ExecKind, &str)> = s.iter().map(|(k, _, _, why)| (*k, why.as_str())).collect();
        assert!(kinds.contains(&(ExecKind::Replaced, "none")), "{name}: {kinds:?}");
        assert!(
            kinds.contains(&(ExecKind::ReplaceRejected, "max_position")),
            "{name}: risk's reason reaches the strategy: {kinds:?}"
        );
        assert!(
            kinds.contains(&(ExecKind::ReplaceRejected, "invalid_order")),
            "{name}: a done order cannot change: {kinds:?}"
        );
        // The replace decisions are journaled (decision records with sub = 1).
        let replaces = std::fs::read(out.join("journal.rtj")).unwrap()[16..]
            .chunks(72)
            .filter(|rec| rec[16] == 2 && rec[17] == 1)
            .count();
        assert_eq!(replaces, 4, "{name}: four replace decisions");
        match &first {
            None => first = Some(s),
            Some(f0) => assert_eq!(&s, f0, "{name}: the same reports on every topology"),
        }
    }
}

struct ScriptFactory2(Replacer);
impl StrategyFactory for ScriptFactory2 {
    fn name(&self) -> &str {
        "replacer"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(self.0.clone())
    }
}

/// A broker-like venue: acknowledges every order, fills nothing, confirms cancels with the
/// reason asked (its fills would come back through the sequencer, as a real broker's do).
#[derive(Debug, Default)]
struct Holding;
impl engine::venue::Venue for Holding {
    fn name(&self) -> &'static str {
        "holding"
    }
    fn simulated(&self) -> bool {
        false
    }
    fn ensure_symbols(&mut self, _n: usize) {}
    fn submit(&mut self, o: &engine::records::Order, ts: i64, out: &mut Vec<ExecReport>) {
        let kind = ExecKind::Accepted.raw();
        out.push(ExecReport {
            ts_event_ns: ts,
            order_id: o.order_id,
            symbol: o.symbol,
            leaves_qty: o.qty,
            kind,
            side: o.side,
            ..Default::default()
        });
    }
    fn cancel(
        &mut self,
        id: engine::records::OrderId,
        symbol: engine::records::SymbolId,
        ts: i64,
        why: engine::records::Reason,
        out: &mut Vec<ExecReport>,
    ) {
        out.push(ExecReport {
            ts_event_ns: ts,
            order_id: id,
            symbol,
            kind: ExecKind::Canceled.raw(),
            reason: why.raw(),
            ..Default::default()
        });
    }
    fn replace(
        &mut self,
        _: engine::records::OrderId,
        _: engine::records::SymbolId,
        _: u32,
        _: i64,
        _: i64,
        _: i64,
        _: &mut Vec<ExecReport>,
    ) {
    }
    fn on_bar(&mut self, _: engine::records::SymbolId, _: &Bar, _: &mut Vec<ExecReport>) {}
    fn on_timer(&mut self, _: i64, _: &mut Vec<ExecReport>) {}
    fn has_working(&self, _: engine::records::SymbolId) -> bool {
        false
    }
    fn close_out(&mut self, o: &engine::records::Order, ts: i64, out: &mut Vec<ExecReport>) {
        self.submit(o, ts, out);
    }
}

#[test]
fn at_a_broker_execution_cancels_orders_past_their_timeout_on_clock_ticks() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars: Vec<Bar> = (0..8).map(|i| bar(i, 10, 11, 9, 10)).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Two limits on the first bar (placed at 14:31, its end): one times out after 150 s, one never.
    let script = Script {
        orders: vec![
            (0, OrderRequest::limit(Side::Buy, 10, 5 * D).timeout_ns(150_000_000_000)),
            (0, OrderRequest::limit(Side::Buy, 10, 4 * D)),
        ],
        n: 0,
        reports: reports.clone(),
    };
    for (name, cfg) in topologies(&EngineConfig::default()) {
        reports.lock().unwrap().clear();
        let set = BarSet::open_dir(&data, 1).unwrap();
        let out = d.path().join(&name);
        let f = ScriptFactory(script.clone());
        let spec = RunSpec::new(&cfg, set.symbols(), &f).bars(&set).out_dir(&out).venue(Box::new(Holding));
        let r = run(spec, BarReplay::new(set.merged()), &mut |_| {}).unwrap();
        assert_eq!(r.venue, "holding");
        let seen = reports.lock().unwrap().clone();
        assert_eq!(seen.iter().filter(|(k, _)| *k == ExecKind::Accepted).count(), 2, "{name}");
        // Canceled: the first by its timeout, then the second at the end of data.
        let canceled: Vec<_> = seen.iter().filter(|(k, _)| *k == ExecKind::Canceled).collect();
        assert_eq!(canceled.len(), 2, "{name}: {seen:?}");
        let j = std::fs::read(out.join("journal.rtj")).unwrap();
        let cancel_reports: Vec<(i64, u16)> = j[16..]
            .chunks(72)
            .filter(|rec| rec[16] == 4 && rec[17] == ExecKind::Canceled.raw())
            .map(|rec| {
                (
                    i64::from_le_bytes(rec[8..16].try_into().unwrap()),
                    u16::from_le_bytes(rec[18..20].try_into().unwrap()),
                )
            })
            .collect();
        let t0 = bar(1, 0, 0, 0, 0).ts_event_ns; // placed at the first bar's end
        assert_eq!(
            cancel_reports[0],
            (t0 + 3 * MIN, engine::records::Reason::Timeout.raw()),
            "{name}: due at 14:33:30, canceled on the first tick after it: event-time ticks come at the last boundary before each input, 14:34:00"
        );
        assert_eq!(cancel_reports[1].1, engine::records::Reason::EndOfRun.raw(), "{name}");
    }
}

#[test]
fn a_remote_venue_sends_orders_to_a_gateway_thread_whose_reports_come_back_through_the_sequencer() {
    use engine::pipeline::{Ingress, Live};
    use engine::venue::{VenueCommand, remote_venue};
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars: Vec<Bar> = (0..4).map(|i| bar(i, 10, 11, 9, 10)).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let set = BarSet::open_dir(&data, 1).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Script {
        orders: vec![(0, OrderRequest::market(Side::Buy, 10)), (2, OrderRequest::market(Side::Sell, 10))],
        n: 0,
        reports: reports.clone(),
    };
    let mut cfg = EngineConfig::default();
    cfg.journal.inputs = JournalInputs::All;
    let ingress = Ingress::new(64);
    let (venue, port) = remote_venue("gateway", 16, ingress.clone());
    let done = AtomicBool::new(false);
    let out = d.path().join("run");
    let f = ScriptFactory(script);
    let r = std::thread::scope(|sc| {
        // The gateway: acknowledge and fill each order at 100.00, one ns after it was placed.
        let gw = sc.spawn(|| {
            let mut filled = 0;
            while filled < 2 {
                let Some(VenueCommand::Submit { order, ts_ns }) = port.next() else {
                    std::thread::yield_now();
                    continue;
                };
                let base = ExecReport {
                    order_id: order.order_id,
                    symbol: order.symbol,
                    side: order.side,
                    ..Default::default()
                };
                let acc = ExecReport {
                    ts_event_ns: ts_ns + 1,
                    kind: ExecKind::Accepted.raw(),
                    leaves_qty: order.qty,
                    ..base
                };
                let fill = ExecReport {
                    ts_event_ns: ts_ns + 1,
                    kind: ExecKind::Filled.raw(),
                    fill_qty: order.qty,
                    fill_px_e9: 100 * D,
                    ..base
                };
                port.report(&acc, ts_ns + 1).unwrap();
                port.report(&fill, ts_ns + 1).unwrap();
                filled += 1;
            }
            done.store(true, Ordering::Release);
        });
        let spec = RunSpec::new(&cfg, set.symbols(), &f)
            .bars(&set)
            .out_dir(&out)
            .ingress(ingress.clone())
            .venue(Box::new(venue))
            .source(BarReplay::new(set.merged()));
        let r = run(spec, Live::until(&done), &mut |_| {}).unwrap();
        gw.join().unwrap();
        r
    });
    assert_eq!((r.venue, r.accepted), ("gateway", 2));
    let got = fills(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains(",T,buy,10,100.00,") && got[1].contains(",T,sell,10,100.00,"), "{got:?}");
    assert!(got[1].ends_with(",0,0.00"), "flat, no PnL at one price: {got:?}");
    let seen = reports.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(ExecKind::Accepted, 0), (ExecKind::Filled, 10), (ExecKind::Accepted, 0), (ExecKind::Filled, 10)]
    );
    // The broker's reports are journaled as inputs (exec events), so the session replays.
    let exec_inputs = std::fs::read(out.join("journal.rtj")).unwrap()[16..]
        .chunks(72)
        .filter(|rec| rec[16] == 1 && rec[17] == engine::records::EventKind::Exec.raw())
        .count();
    assert_eq!(exec_inputs, 4);
    assert_eq!(r.counters.unknown_order_reports, 0);
}

#[test]
fn hotkey_orders_flatten_and_cancel_travel_through_the_sequencer_and_risk() {
    use engine::pipeline::Script as Scripted;
    use engine::records::{Event, MANUAL_TAG, OrderType, SymbolId};
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars: Vec<Bar> = (0..6).map(|i| bar(i, 10 + i, 11 + i, 9 + i, 10 + i)).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // The strategy itself does nothing; it sees the manual orders' reports.
    let script = Script { orders: vec![], n: 0, reports: reports.clone() };
    let at = |i: i64| bar(i, 0, 0, 0, 0).ts_event_ns + MIN; // bar i's end, when it is delivered
    let t = SymbolId(0);
    let hotkeys = vec![
        // After bar 0: buy 100 at market (fills at bar 1's open, 11), a limit far below, and a
        // buy of 1,000 past the position limit (refused by risk).
        Event::manual_order(t, Side::Buy, OrderType::Market, 100, 0, 0, at(0)),
        Event::manual_order(t, Side::Buy, OrderType::Limit, 5, 2 * D, 0, at(0)),
        Event::manual_order(t, Side::Buy, OrderType::Market, 1_000, 0, 0, at(0)),
        // After bar 2: flatten: the limit is canceled, 100 sold at bar 3's open, 13.
        Event::flatten(t, at(2)),
        // After bar 4: a limit far below, then a cancel-all that takes it away.
        Event::manual_order(t, Side::Buy, OrderType::Limit, 7, 3 * D, 0, at(4)),
        Event::cancel_all(t, at(4)),
    ];
    let mut base = EngineConfig::default();
    base.risk.max_position_shares = 500;
    for (name, cfg) in topologies(&base) {
        reports.lock().unwrap().clear();
        let set = BarSet::open_dir(&data, 1).unwrap();
        let out = d.path().join(&name);
        let f = ScriptFactory(script.clone());
        let spec =
            RunSpec::new(&cfg, set.symbols(), &f).bars(&set).out_dir(&out).source(Scripted::new(hotkeys.clone()));
        let r = run(spec, BarReplay::new(set.merged()), &mut |_| {}).unwrap();
        assert_eq!(
            fills(&out),
            vec![
                "2024-01-02T14:31:00Z,T,buy,100,11.00,0.50,T-1,none,100,0.00",
                "2024-01-02T14:33:00Z,T,sell,100,13.00,0.50,T-4,none,0,199.00",
            ],
            "{name}"
        );
        assert_eq!(r.rejects_for(engine::records::Reason::MaxPosition), 1, "{name}");
        let seen = reports.lock().unwrap().clone();
        assert_eq!(seen.iter().filter(|(k, _)| *k == ExecKind::Canceled).count(), 2, "{name}: both limits");
        assert_eq!(seen.iter().filter(|(k, _)| *k == ExecKind::Rejected).count(), 1, "{name}: the 1,000");
        // Every decision on a manual order carries the manual tag; the hotkeys are journaled inputs.
        let j = std::fs::read(out.join("journal.rtj")).unwrap();
        let recs: Vec<&[u8]> = j[16..].chunks(72).collect();
        let decisions: Vec<u32> = recs
            .iter()
            .filter(|r| r[16] == 2)
            .map(|r| bytemuck::cast::<[u8; 48], engine::records::Order>(r[24..72].try_into().unwrap()).tag)
            .collect();
        assert_eq!(decisions, vec![MANUAL_TAG; 5], "{name}");
        let controls = recs.iter().filter(|r| r[16] == 1 && r[17] == engine::records::EventKind::Control.raw()).count();
        assert!(controls >= 6, "{name}: {controls}");
    }
}

/// A busy strategy for determinism checks: trades on price patterns with all order types.
#[derive(Clone, Default)]
struct Busy {
    n: u64,
    last: i64,
}
impl Strategy for Busy {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        self.n += 1;
        let up = b.close_px_e9 > self.last;
        self.last = b.close_px_e9;
        let pos = ctx.position();
        if ctx.open_orders() > 3 {
            return;
        }
        match self.n % 7 {
            0 if pos <= 0 && up => {
                ctx.submit(OrderRequest::market(Side::Buy, 10 + (self.n % 5) as u32));
            }
            3 if pos > 0 => {
                ctx.submit(OrderRequest::limit(Side::Sell, pos as u32, b.close_px_e9 + D / 10).timeout_ns(5 * MIN));
            }
            5 if pos == 0 && !up => {
                ctx.submit(OrderRequest::stop(Side::Sell, 7, b.low_px_e9 - D / 20).timeout_ns(3 * MIN));
            }
            6 if pos < 0 => {
                ctx.submit(OrderRequest::market(Side::Buy, (-pos) as u32));
            }
            _ => {}
        }
    }
}
struct BusyFactory;
impl StrategyFactory for BusyFactory {
    fn name(&self) -> &str {
        "busy"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Busy::default())
    }
}

/// Deterministic random-walk bars for `n_sym` symbols (a small LCG; no dependencies).
fn write_random(dir: &Path, n_sym: usize, n_bars: i64, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for s in 0..n_sym {
        let mut x = seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rnd = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as i64
        };
        let mut px = 50 * D + (s as i64) * D;
        let mut bars = Vec::new();
        for i in 0..n_bars {
            if i % 3 == 2 && s % 2 == 1 {
                continue; // gaps on odd symbols
            }
            let o = px;
            let c = (o + (rnd() % 21 - 10) * D / 100).max(D);
            let h = o.max(c) + (rnd() % 5) * D / 100;
            let l = (o.min(c) - (rnd() % 5) * D / 100).max(D / 2);
            px = c;
            let mut b = bar(i, 0, 0, 0, 0);
            b.open_px_e9 = o;
            b.high_px_e9 = h;
            b.low_px_e9 = l;
            b.close_px_e9 = c;
            b.volume = (rnd() % 1000) as u64;
            bars.push(b);
        }
        let name = format!("S{s:02}");
        write_bar_file(&dir.join(format!("{name}.1m.rtb")), &name, 60, &bars).unwrap();
    }
}

fn journal_bytes(dir: &Path) -> (Vec<u8>, Vec<String>) {
    (std::fs::read(dir.join("journal.rtj")).unwrap(), fills(dir))
}

#[test]
fn identical_across_shard_counts_runs_and_ring_sizes() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_random(&data, 7, 2_000, 42);
    let mut base: Option<(Vec<u8>, Vec<String>)> = None;
    for (i, (topo, shards, ring, queue)) in [
        (Topology::Inline, 1, 1 << 16, 1 << 16),
        (Topology::Threads, 1, 1 << 16, 1 << 16),
        (Topology::Threads, 2, 1 << 16, 1 << 16),
        (Topology::Threads, 3, 64, 64),
        (Topology::Threads, 2, 64, 64),
        (Topology::Inline, 1, 1 << 16, 1 << 16),
        (Topology::Auto, 3, 1 << 16, 1 << 16),
    ]
    .into_iter()
    .enumerate()
    {
        let mut cfg = EngineConfig::default();
        cfg.pipeline.topology = topo;
        cfg.pipeline.shards = shards;
        cfg.pipeline.ring_size = ring;
        cfg.pipeline.queue_size = queue;
        let out = d.path().join(format!("run{i}"));
        // Alternate zero-copy (bar references in the ring) and copied bar events: same results.
        let r = run_mode(&data, Some(&out), &cfg, &BusyFactory, i % 2 == 0);
        assert_eq!(r.bars, r.inputs);
        assert!(r.bars > 10_000);
        assert!(r.positions.totals().0 > 500, "the strategy trades: {:?}", r.positions.totals());
        if ring == 64 {
            assert!(r.counters.ring_full > 0, "a 64-slot ring fills up, and that is counted");
        }
        let got = journal_bytes(&out);
        match &base {
            None => base = Some(got),
            Some(b) => {
                assert_eq!(b.1, got.1, "fills differ with {topo:?} {shards} shards, ring {ring}");
                assert!(b.0 == got.0, "journal differs with {topo:?} {shards} shards, ring {ring}");
            }
        }
    }
}

#[test]
fn portfolio_limits_are_deterministic_and_enforced() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_random(&data, 6, 1_500, 7);
    let mut base = None;
    let mut limits = EngineConfig::default();
    limits.risk.one_active_trade = true;
    limits.risk.max_open_orders = 5;
    limits.risk.max_daily_loss_usd = 3;
    limits.journal.inputs = JournalInputs::All;
    for (name, cfg) in topologies(&limits) {
        let shards = &name;
        let out = d.path().join(name.replace('/', "-"));
        let r = run_dir(&data, Some(&out), &cfg, &BusyFactory);
        assert!(r.rejects[engine::records::Reason::OneActiveTrade.raw() as usize] > 0);
        assert!(r.halts > 0, "the daily loss limit is hit at least once");
        assert!(r.rejects[engine::records::Reason::DailyLossHalt.raw() as usize] > 0);
        let got = (journal_bytes(&out), r.halts, r.rejects);
        match &base {
            None => base = Some(got),
            Some(b) => assert!(b == &got, "portfolio-mode results differ with {shards} shards"),
        }
    }
}

#[test]
fn one_active_trade_never_holds_two_positions() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_random(&data, 4, 800, 3);
    let mut cfg = EngineConfig::default();
    cfg.pipeline.shards = 2;
    cfg.risk.one_active_trade = true;
    let out = d.path().join("r");
    run_dir(&data, Some(&out), &cfg, &BusyFactory);
    // Replay fills.csv in order: at most one symbol may hold a position at any time.
    let mut pos = std::collections::BTreeMap::<String, i64>::new();
    for line in fills(&out) {
        let f: Vec<&str> = line.split(',').collect();
        let q: i64 = f[3].parse().unwrap();
        *pos.entry(f[1].to_string()).or_default() += if f[2] == "buy" { q } else { -q };
        let open = pos.values().filter(|&&p| p != 0).count();
        assert!(open <= 1, "two positions at once after {line}");
    }
}

#[derive(Clone)]
struct Panicky;
impl Strategy for Panicky {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        if ctx.symbol().0 == 1 && b.ts_event_ns >= bar(50, 1, 1, 1, 1).ts_event_ns {
            panic!("strategy bug on purpose");
        }
        if ctx.position() == 0 && ctx.open_orders() == 0 {
            ctx.submit(OrderRequest::market(Side::Buy, 1));
        } else if ctx.position() > 0 && ctx.open_orders() == 0 {
            ctx.submit(OrderRequest::market(Side::Sell, 1));
        }
    }
}
struct PanickyFactory;
impl StrategyFactory for PanickyFactory {
    fn name(&self) -> &str {
        "panicky"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(Panicky)
    }
}

#[test]
fn a_panicking_strategy_faults_only_its_symbol() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_random(&data, 3, 200, 1);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Threads;
    cfg.pipeline.shards = 2;
    let r = run_dir(&data, None, &cfg, &PanickyFactory);
    cfg.pipeline.topology = Topology::Inline;
    let r2 = run_dir(&data, None, &cfg, &PanickyFactory);
    std::panic::set_hook(prev);
    assert_eq!(r.counters.strategy_faults, 1);
    assert_eq!(r2.counters.strategy_faults, 1);
    assert_eq!(r.positions.trade_pnls_e9, r2.positions.trade_pnls_e9);
    let s0 = &r.positions.symbols[0];
    let s1 = &r.positions.symbols[1];
    let s2 = &r.positions.symbols[2];
    // Symbols 0 and 2 trade on every other bar until the end; symbol 1 stopped at bar 50.
    assert!(s0.fills > 150 && s2.fills > 60, "{} {}", s0.fills, s2.fills);
    assert!(s1.fills <= 51, "{}", s1.fills);
    assert!(r.positions.symbols.iter().all(|s| s.position == 0), "everything closed at the end");
}

#[test]
fn risk_rejections_carry_reasons_and_reach_the_strategy() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars: Vec<Bar> = (0..6).map(|i| bar(i, 10, 11, 9, 10)).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Script {
        orders: vec![
            (0, OrderRequest::market(Side::Buy, 100)),
            (1, OrderRequest::market(Side::Buy, 1)), // 101 > max 100: rejected
            (2, OrderRequest::market(Side::Sell, 50).reduce_only()), // fine
            (3, OrderRequest::limit(Side::Buy, 5, 0)), // no limit price: invalid
        ],
        n: 0,
        reports: reports.clone(),
    };
    let mut cfg = EngineConfig::default();
    cfg.risk.max_position_shares = 100;
    let r = run_dir(&data, None, &cfg, &ScriptFactory(script));
    assert_eq!(r.rejects[engine::records::Reason::MaxPosition.raw() as usize], 1);
    assert_eq!(r.rejects[engine::records::Reason::InvalidOrder.raw() as usize], 1);
    let rejected = reports.lock().unwrap().iter().filter(|(k, _)| *k == ExecKind::Rejected).count();
    assert_eq!(rejected, 2);
}

#[path = "pipeline/second_shape.rs"]
mod second_shape;

#[path = "pipeline/broker_seam.rs"]
mod broker_seam;

#[path = "pipeline/batch.rs"]
mod batch;

#[path = "pipeline/probes.rs"]
mod probes;
