//! The broker gateway end to end: the real pipeline (threads, rings, journal) trading the local
//! exchange's paper broker over real sockets through the gateway (Alpaca trading REST +
//! trade_updates), with the exchange's faults. Each test drives a strategy by commands (it
//! submits, cancels and replaces on its clock ticks, as a strategy does) and checks both sides:
//! what the strategy heard and what the exchange holds.
#![allow(clippy::disallowed_methods)] // waiting for sockets and the exchange's market clock is wall time

use engine::pipeline::config::{EngineConfig, JournalInputs, Topology};
use engine::pipeline::{Clock, Ingress, Live, RunOutput, RunSpec, run};
use engine::records::{Bar, ExecKind, ExecReport, OrderId, Reason, ReconcilePolicy, Side, SymbolId};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use engine::venue::remote_venue;
use feeds::broker::{Tif, TradeUpdatesClient, TradingConfig, TradingRest};
use feeds::credentials::Secret;
use feeds::gateway::{self, GatewayConfig, GatewayHandle, GatewayStatus};
use feeds::ws::TlsConfig;
use ringtape_tools::exchange::{
    BrokerSnapshot, DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, ExchangeHandle, Fault, Tape,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests run one at a time: each runs an exchange, a gateway and a pipeline on threads, and
/// nine of them at once on two cores starve the market clock's timing.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 2024-03-01T14:30:00Z.
const T0: i64 = 1_709_303_400_000_000_000;
const MIN: i64 = 60_000_000_000;
const D: i64 = 1_000_000_000;
const SYMS: [&str; 2] = ["AAA", "BBB"];

/// Bars around 100.00 (AAA) and 107.00 (BBB), volume 100 + i.
fn bars(sym: usize, n: usize) -> Vec<Bar> {
    (0..n as i64)
        .map(|i| {
            let open = 100 * D + (sym as i64) * 7 * D + (i % 50) * 10_000_000;
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

/// An exchange over 2 symbols x 600 minute bars from T0 + 60 min, 10 market minutes per wall
/// second (a bar every 100 ms), TLS with its generated certificate unless `plain`.
fn exchange(f: impl FnOnce(&mut ExchangeConfig)) -> ExchangeHandle {
    let series = SYMS.iter().enumerate().map(|(i, s)| (s.to_string(), 60, bars(i, 600))).collect();
    let mut cfg = ExchangeConfig {
        tape: Some(Arc::new(Tape::from_series(series).unwrap())),
        speed: 600.0,
        start_ns: Some(T0 + 60 * MIN),
        ..ExchangeConfig::default()
    };
    cfg.broker.ack_latency_ms = 1;
    f(&mut cfg);
    Exchange::start(cfg).unwrap()
}

/// What the test asks a symbol's strategy to do on its next clock tick.
#[derive(Debug, Clone, Copy)]
enum Cmd {
    Submit(OrderRequest),
    /// Cancel the strategy's last order.
    CancelLast,
    /// Change the last order: new total quantity and limit price.
    ReplaceLast(u32, i64),
}

type Heard = Arc<Mutex<Vec<(SymbolId, ExecReport, i64)>>>;

#[derive(Clone, Default)]
struct Shared {
    cmds: Arc<Mutex<VecDeque<(SymbolId, Cmd)>>>,
    heard: Heard,
}

struct Driven {
    s: Shared,
    last: Option<OrderId>,
}

impl Strategy for Driven {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, _bar: &Bar) {}
    fn wants_timer(&self) -> bool {
        true
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        let me = ctx.symbol();
        let mine: Vec<Cmd> = {
            let mut q = self.s.cmds.lock().unwrap();
            let (m, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|(s, _)| *s == me);
            q.extend(rest);
            m.into_iter().map(|(_, c)| c).collect()
        };
        for c in mine {
            match c {
                Cmd::Submit(r) => self.last = Some(ctx.submit(r)),
                Cmd::CancelLast => {
                    if let Some(id) = self.last {
                        ctx.cancel(id);
                    }
                }
                Cmd::ReplaceLast(q, px) => {
                    if let Some(id) = self.last {
                        ctx.replace(id, q, px, 0);
                    }
                }
            }
        }
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        self.s.heard.lock().unwrap().push((ctx.symbol(), *r, ctx.position()));
    }
}

struct DrivenFactory(Shared);
impl StrategyFactory for DrivenFactory {
    fn name(&self) -> &str {
        "driven"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(Driven { s: self.0.clone(), last: None })
    }
}

/// How a session is set up.
#[derive(Clone)]
struct Setup {
    session: String,
    policy: ReconcilePolicy,
    cancel_on_disconnect: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { session: "pp-00000001".into(), policy: ReconcilePolicy::Adopt, cancel_on_disconnect: true }
    }
}

/// A running session: the gateway and the pipeline trading `ex`.
struct Ctl<'a> {
    ex: &'a ExchangeHandle,
    shared: Shared,
    gw: &'a GatewayHandle,
    ingress: Ingress,
}

impl Ctl<'_> {
    fn sym(&self, name: &str) -> SymbolId {
        SymbolId(SYMS.iter().position(|s| *s == name).unwrap() as u32)
    }
    fn send(&self, name: &str, c: Cmd) {
        let s = self.sym(name);
        self.shared.cmds.lock().unwrap().push_back((s, c));
    }
    fn heard(&self) -> Vec<(SymbolId, ExecReport, i64)> {
        self.shared.heard.lock().unwrap().clone()
    }
    /// Wait (up to 15 s) until `f` holds for what the strategies heard.
    fn wait(&self, what: &str, f: impl Fn(&[(SymbolId, ExecReport, i64)]) -> bool) {
        let t0 = Instant::now();
        while !f(&self.heard()) {
            assert!(t0.elapsed() < Duration::from_secs(15), "timed out waiting for {what}; heard {:#?}", self.heard());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Wait (up to 15 s) until `f` holds for the exchange's side.
    fn wait_broker(&self, what: &str, f: impl Fn(&BrokerSnapshot) -> bool) {
        let t0 = Instant::now();
        while !f(&self.ex.broker()) {
            assert!(t0.elapsed() < Duration::from_secs(15), "timed out waiting for {what}: {:#?}", self.ex.broker());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn trading_config(ex: &ExchangeHandle) -> TradingConfig {
    TradingConfig {
        base_url: ex.http_origin(),
        stream_url: format!("{}://{}/stream", ex.ws_scheme(), ex.addr()),
        key_id: DEMO_KEY.into(),
        secret: Secret::new(DEMO_SECRET),
        tls: ex.cert_pem().map_or(TlsConfig::Plain, |p| TlsConfig::with_extra_root_pem(p.to_string())),
        timeout: Duration::from_secs(5),
        max_retries: 6,
    }
}

/// Run one session against `ex`: start the gateway (it reconciles), run the pipeline on threads
/// with the market clock ticking every market second, run `script`, then stop the gateway and end.
fn session(ex: &ExchangeHandle, setup: &Setup, script: impl FnOnce(&Ctl)) -> (RunOutput, GatewayStatus, Shared) {
    let mut symbols = SymbolTable::new();
    for s in SYMS {
        symbols.intern(s).unwrap();
    }
    let mut cfg = EngineConfig::default();
    cfg.journal.inputs = JournalInputs::All;
    cfg.pipeline.topology = Topology::Threads;
    cfg.pipeline.timer_ms = 1_000;
    cfg.risk.flatten_at_end = false;
    cfg.risk.max_gross_notional_usd = 0;
    cfg.risk.max_position_shares = 0;
    let ingress = Ingress::new(4096);
    let (venue, port) = remote_venue("alpaca", 256, ingress.clone());
    let tc = trading_config(ex);
    let clock = ex.clock();
    let gw = gateway::spawn(
        GatewayConfig {
            session: setup.session.clone(),
            own_prefix: "pp-".into(),
            policy: setup.policy,
            cancel_on_disconnect: setup.cancel_on_disconnect,
            tif: Tif::Day,
            symbols: symbols.names().to_vec(),
            hooks: Default::default(),
        },
        Arc::new(TradingRest::new(&tc).unwrap()),
        TradeUpdatesClient::new(&tc).unwrap(),
        port,
        Arc::new(move || clock.now_ns()),
        None,
    )
    .unwrap();
    assert!(gw.wait_ready(Duration::from_secs(10)), "the gateway connects and reconciles: {:?}", gw.status());
    let shared = Shared::default();
    let f = DrivenFactory(shared.clone());
    let done = AtomicBool::new(false);
    let out_dir = tempfile::tempdir().unwrap();
    let tick = move || clock.now_ns();
    let out = std::thread::scope(|sc| {
        let pipeline = sc.spawn(|| {
            let spec = RunSpec::new(&cfg, &symbols, &f)
                .out_dir(out_dir.path())
                .ingress(ingress.clone())
                .venue(Box::new(venue))
                .clock(Clock::Wall(&tick));
            run(spec, Live::until(&done), &mut |_| {}).unwrap()
        });
        // A failed check must still end the session, or the pipeline never ends.
        let ctl = Ctl { ex, shared: shared.clone(), gw: &gw, ingress: ingress.clone() };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| script(&ctl)));
        gw.stop();
        done.store(true, Ordering::Release);
        let out = pipeline.join().unwrap();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
        out
    });
    (out, gw.status(), shared)
}

fn kinds(h: &[(SymbolId, ExecReport, i64)]) -> Vec<ExecKind> {
    h.iter().map(|(_, r, _)| r.exec_kind().unwrap()).collect()
}

fn filled(h: &[(SymbolId, ExecReport, i64)]) -> u32 {
    h.iter().map(|(_, r, _)| r.fill_qty).sum()
}

fn px(s: &str) -> i64 {
    feeds::num::px_e9(s).unwrap_or_else(|_| panic!("price {s:?}"))
}

#[test]
fn an_order_is_acknowledged_partially_filled_filled_and_both_sides_agree_on_position_and_cash() {
    let _one_at_a_time = serial();
    // A participation cap of 40% of each bar's volume (about 100 shares) fills 100 shares in parts.
    let ex = exchange(|c| {
        c.broker.venue.max_volume_ppm = 400_000;
        c.broker.venue.commission_per_share_e9 = 5_000_000;
    });
    let (out, st, sh) = session(&ex, &Setup::default(), |c| {
        c.send("AAA", Cmd::Submit(OrderRequest::market(Side::Buy, 100)));
        c.wait("the fill", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Filled)));
        c.wait_broker("the position", |b| b.positions.iter().any(|p| p.symbol == "AAA" && p.qty == "100"));
    });
    let h = sh.heard.lock().unwrap().clone();
    let k = kinds(&h);
    assert_eq!(k[0], ExecKind::Accepted, "{h:?}");
    assert!(k.contains(&ExecKind::PartiallyFilled), "the cap splits the order: {k:?}");
    assert_eq!(*k.last().unwrap(), ExecKind::Filled);
    assert_eq!(filled(&h), 100);
    assert_eq!(h.last().unwrap().2, 100, "the strategy's position");
    assert_eq!(out.positions.symbols[0].position, 100, "the engine's position");
    // The exchange's side: the order filled at the average of the engine's fills; cash paid.
    let b = ex.broker();
    let o = b.orders.iter().find(|o| o.symbol == "AAA").unwrap();
    assert_eq!((o.status.as_str(), o.filled_qty.as_str()), ("filled", "100"));
    let notional: i128 = h.iter().map(|(_, r, _)| i128::from(r.fill_qty) * i128::from(r.fill_px_e9)).sum();
    let avg = px(o.filled_avg_price.as_deref().unwrap());
    assert!((notional / 100 - i128::from(avg)).abs() <= 1, "avg {avg} vs the engine's {}", notional / 100);
    let cash = px(&b.account.cash);
    let expect = 100_000 * i128::from(D) - notional - 100 * 5_000_000;
    assert!((i128::from(cash) - expect).abs() <= i128::from(D) / 100, "cash {cash} vs {expect}");
    assert_eq!(o.client_order_id, "pp-00000001-AAA-1", "the engine's order id is the client order id");
    assert_eq!((st.refused, st.mismatches), (0, 0));
    assert_eq!(out.counters.unknown_order_reports, 0);
}

#[test]
fn an_order_past_its_timeout_is_canceled_at_the_broker_with_the_reason_timeout() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    let (_, st, sh) = session(&ex, &Setup::default(), |c| {
        // A buy far below the market, for two market minutes (about 200 ms here).
        c.send("BBB", Cmd::Submit(OrderRequest::limit(Side::Buy, 10, 50 * D).timeout_ns(2 * MIN)));
        c.wait("the cancel", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Canceled)));
    });
    let h = sh.heard.lock().unwrap().clone();
    assert_eq!(kinds(&h), vec![ExecKind::Accepted, ExecKind::Canceled], "{h:?}");
    assert_eq!(h[1].1.exec_reason(), Some(Reason::Timeout));
    let b = ex.broker();
    assert_eq!(b.orders.len(), 1);
    assert_eq!(b.orders[0].status, "canceled");
    assert_eq!(st.cancels, 1);
}

#[test]
fn a_refused_order_reaches_the_strategy_with_the_brokers_reason() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    let (out, st, sh) = session(&ex, &Setup::default(), |c| {
        // 10,000 shares of a 100 USD stock with 100,000 USD: insufficient buying power (403).
        c.send("AAA", Cmd::Submit(OrderRequest::limit(Side::Buy, 10_000, 100 * D)));
        c.wait("the refusal", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Rejected)));
        // The broker accepts one, then rejects it on the stream.
        c.ex.inject(Fault::OrderReject { count: 1, via: ringtape_tools::exchange::RejectVia::Stream });
        c.send("BBB", Cmd::Submit(OrderRequest::limit(Side::Buy, 1, 50 * D)));
        c.wait("the stream's rejection", |h| {
            h.iter().filter(|(_, r, _)| r.exec_kind() == Some(ExecKind::Rejected)).count() == 2
        });
    });
    let h = sh.heard.lock().unwrap().clone();
    let rejects: Vec<Option<Reason>> = h
        .iter()
        .filter(|(_, r, _)| r.exec_kind() == Some(ExecKind::Rejected))
        .map(|(_, r, _)| r.exec_reason())
        .collect();
    assert_eq!(rejects, vec![Some(Reason::BuyingPower), Some(Reason::BrokerRejected)], "{h:?}");
    assert_eq!(st.refusals.get("buying_power"), Some(&1));
    assert_eq!(out.counters.venue_rejects, 2, "both counted as the venue's refusals");
}

#[test]
fn a_cancel_that_loses_to_a_fill_is_refused_and_the_fill_is_kept() {
    let _one_at_a_time = serial();
    // The fill happens while the order stream is down (so the engine cannot know), then the
    // strategy cancels: the broker refuses (already filled), and the reconcile after the
    // reconnect brings the fill.
    let ex = exchange(|_| {});
    let setup = Setup { cancel_on_disconnect: false, ..Setup::default() };
    let (out, st, sh) = session(&ex, &setup, |c| {
        c.ex.inject(Fault::TradeUpdatesOutage { ms: 1_500 });
        c.send("AAA", Cmd::Submit(OrderRequest::limit(Side::Buy, 20, 200 * D)));
        c.wait_broker("the fill at the exchange", |b| b.orders.iter().any(|o| o.status == "filled"));
        c.send("AAA", Cmd::CancelLast);
        c.wait("the fill, recovered", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Filled)));
    });
    let h = sh.heard.lock().unwrap().clone();
    let k = kinds(&h);
    assert!(!k.contains(&ExecKind::Canceled), "the fill wins: {k:?}");
    assert_eq!(filled(&h), 20);
    assert_eq!(out.positions.symbols[0].position, 20);
    assert!(st.book.fills_recovered >= 1 || st.disconnects >= 1, "{st:?}");
    assert!(st.reconciles >= 2, "start and after the reconnect: {st:?}");
}

#[test]
fn a_dropped_order_stream_with_cancel_on_disconnect_cancels_at_the_broker_and_refuses_new_orders() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    let (_, st, sh) = session(&ex, &Setup::default(), |c| {
        c.send("BBB", Cmd::Submit(OrderRequest::limit(Side::Buy, 5, 50 * D)));
        c.wait("the ack", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Accepted)));
        c.ex.inject(Fault::TradeUpdatesOutage { ms: 1_000 });
        c.wait_broker("the cancel-all", |b| b.orders.iter().all(|o| o.status == "canceled"));
        c.send("AAA", Cmd::Submit(OrderRequest::limit(Side::Buy, 5, 50 * D)));
        c.wait("the cancel reported after the reconnect", |h| {
            h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Canceled))
        });
    });
    let h = sh.heard.lock().unwrap().clone();
    let canceled = h.iter().find(|(_, r, _)| r.exec_kind() == Some(ExecKind::Canceled)).unwrap();
    assert_eq!(canceled.1.exec_reason(), Some(Reason::Disconnected));
    assert!(st.cancel_all_on_disconnect >= 1);
    // The order sent while the stream was down was refused or went out after it came back; it
    // is never lost: every order the strategy sent has an answer.
    let answered: std::collections::BTreeSet<u64> = h.iter().map(|(_, r, _)| r.order_id.0).collect();
    assert_eq!(answered.len(), 2, "{h:?}");
}

#[test]
fn a_position_found_at_start_is_adopted_or_halts_new_entries() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    // Session 1 buys 30 and ends without flattening.
    let (_, _, _) = session(&ex, &Setup::default(), |c| {
        c.send("AAA", Cmd::Submit(OrderRequest::market(Side::Buy, 30)));
        c.wait("the fill", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Filled)));
    });
    // Session 2 adopts it.
    let s2 = Setup { session: "pp-00000002".into(), ..Setup::default() };
    let (out, st, _) = session(&ex, &s2, |_| {});
    assert_eq!((st.mismatches, out.counters.reconcile_mismatches), (1, 1));
    assert_eq!(out.positions.symbols[0].position, 30, "the broker's 30 shares are the run's");
    // Session 3 halts instead: entries are refused, with the reason.
    let s3 = Setup { session: "pp-00000003".into(), policy: ReconcilePolicy::Halt, ..Setup::default() };
    let (out, st3, sh) = session(&ex, &s3, |c| {
        c.send("BBB", Cmd::Submit(OrderRequest::limit(Side::Buy, 1, 50 * D)));
        c.wait("an answer", |h| !h.is_empty());
    });
    let h = sh.heard.lock().unwrap().clone();
    // Under halt the run keeps its own view, so every reconcile finds the difference again.
    assert!(st3.mismatches >= 1);
    assert_eq!(out.counters.reconcile_mismatches, st3.mismatches, "each one the gateway saw, the engine applied");
    assert_eq!(h[0].1.exec_reason(), Some(Reason::Halted));
    assert_eq!(out.positions.symbols[0].position, 0, "halt keeps the run's own view");
    assert_eq!(ex.broker().orders.len(), 1, "the refused entry never reached the broker");
}

#[test]
fn rate_limited_requests_are_retried_and_never_lose_or_double_an_order() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    let (_, st, sh) = session(&ex, &Setup::default(), |c| {
        c.ex.inject(Fault::RateLimit { count: 3 });
        c.send("AAA", Cmd::Submit(OrderRequest::limit(Side::Buy, 3, 50 * D)));
        c.wait("the ack", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Accepted)));
    });
    assert_eq!(kinds(&sh.heard.lock().unwrap()), vec![ExecKind::Accepted]);
    let b = ex.broker();
    assert_eq!(b.orders.len(), 1, "one order for one intent: {:?}", b.orders);
    assert_eq!(st.refused, 0);
    assert!(ex.stats().faults.get("rate_limit").is_some_and(|&n| n >= 1));
}

#[test]
fn a_restart_takes_over_its_own_open_orders_instead_of_doubling_them_and_cancels_them_at_the_end() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    // Session 1 leaves a resting buy (a crash: no wind-down).
    let (_, _, _) = session(&ex, &Setup::default(), |c| {
        c.send("BBB", Cmd::Submit(OrderRequest::limit(Side::Buy, 7, 50 * D)));
        c.wait("the ack", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Accepted)));
    });
    // A foreign order (placed by hand, not ringtape's) is left alone.
    let rest = TradingRest::new(&trading_config(&ex)).unwrap();
    rest.submit(&feeds::broker::NewOrder {
        symbol: "AAA".into(),
        qty: 1,
        side: Side::Buy,
        order_type: engine::records::OrderType::Limit,
        tif: Tif::Day,
        limit_px_e9: Some(40 * D),
        stop_px_e9: None,
        client_order_id: "by-hand-1".into(),
        extended_hours: false,
    })
    .unwrap();
    let s2 = Setup { session: "pp-00000002".into(), ..Setup::default() };
    let (out, st, sh) = session(&ex, &s2, |c| {
        c.wait_broker("still one ringtape order", |b| {
            b.orders.iter().filter(|o| o.client_order_id.starts_with("pp-")).count() == 1
        });
        assert_eq!(c.gw.status().open_orders, 1, "the earlier session's order is tracked");
        // A shutdown's cancel-all for the symbol takes the adopted order away too.
        c.ingress.push(engine::records::Event::cancel_all(c.sym("BBB"), c.ex.clock().now_ns())).unwrap();
        c.wait("the cancel", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Canceled)));
    });
    assert_eq!((st.adopted, out.counters.adopted_orders), (1, 1));
    assert_eq!(st.foreign_orders, 1, "the order placed by hand is left alone");
    let h = sh.heard.lock().unwrap().clone();
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].1.order_id.is_adopted());
    let b = ex.broker();
    let ours: Vec<_> = b.orders.iter().filter(|o| o.client_order_id.starts_with("pp-")).collect();
    assert_eq!(ours.len(), 1, "not doubled: {ours:?}");
    assert_eq!(ours[0].status, "canceled");
    assert!(b.orders.iter().any(|o| o.client_order_id == "by-hand-1" && o.status != "canceled"));
}

#[test]
fn a_replace_moves_the_order_to_a_new_broker_order_that_cancels_like_the_old_one() {
    let _one_at_a_time = serial();
    let ex = exchange(|_| {});
    let (_, st, sh) = session(&ex, &Setup::default(), |c| {
        c.send("AAA", Cmd::Submit(OrderRequest::limit(Side::Buy, 10, 50 * D)));
        c.wait("the ack", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Accepted)));
        c.send("AAA", Cmd::ReplaceLast(20, 60 * D));
        c.wait("the replace", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Replaced)));
        c.send("AAA", Cmd::CancelLast);
        c.wait("the cancel", |h| h.iter().any(|(_, r, _)| r.exec_kind() == Some(ExecKind::Canceled)));
    });
    let h = sh.heard.lock().unwrap().clone();
    assert_eq!(kinds(&h), vec![ExecKind::Accepted, ExecKind::Replaced, ExecKind::Canceled], "{h:?}");
    assert_eq!(h[1].1.leaves_qty, 20);
    let b = ex.broker();
    let statuses: Vec<(&str, &str, Option<&str>, Option<&str>)> = b
        .orders
        .iter()
        .map(|o| (o.client_order_id.as_str(), o.status.as_str(), o.qty.as_deref(), o.limit_price.as_deref()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("pp-00000001-AAA-1", "replaced", Some("10"), Some("50")),
            ("pp-00000001-AAA-1.r1", "canceled", Some("20"), Some("60")),
        ]
    );
    assert_eq!((st.replaces, st.cancels), (1, 1));
}
