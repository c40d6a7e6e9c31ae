//! `order-path`: the broker side of tick-to-trade. The real pipeline (threads) trades the local
//! exchange's paper broker over TLS through the real broker gateway (Alpaca trading REST +
//! trade_updates), one order in flight at a time, and two paths are timed on the wall clock:
//!
//! - **out**: a strategy's intent (`ctx.submit` or `ctx.cancel`, stamped in the strategy) ->
//!   shard -> risk -> execution -> `RemoteVenue` queue -> the gateway's order thread, stamped
//!   right before the request is handed to the HTTP client (`GatewayHooks::on_send`). Not
//!   included: the HTTP client's serialization and write up to the socket (ureq).
//! - **in**: a trade_updates frame's last byte read off the socket (the stream client's receive
//!   stamp) -> decode -> the gateway's book -> ingress -> sequencer -> risk -> shard -> the
//!   strategy's `on_order`, stamped there. Measured on `canceled` frames (the only report here
//!   that comes from the stream alone: an order's acceptance comes back in the REST answer).
//!
//! Each order is a one-share buy far below the market (it rests), canceled as soon as it is
//! accepted; the next one goes on the next clock tick after the cancel came back.
//!
//! **Checks**: every order was accepted and canceled, nothing refused, no duplicate.
#![allow(clippy::disallowed_methods)] // reading the wall clock is the measurement

use crate::common::{build_profile, command_line, fmt_ns, loadavg, machine_info};
use crate::latency::{new_hist, q, wall_ns};
use anyhow::{Context, ensure};
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{Clock, Ingress, Live, RunSpec};
use engine::records::{Bar, ExecKind, ExecReport, OrderId, ReconcilePolicy, Side};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use engine::venue::remote_venue;
use feeds::broker::{Tif, TradeUpdatesClient, TradingConfig, TradingRest};
use feeds::credentials::Secret;
use feeds::gateway::{self, GatewayConfig, GatewayHooks};
use feeds::ws::TlsConfig;
use hdrhistogram::Histogram;
use ringtape_tools::exchange::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, Tape};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `ringtape-bench order-path`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Orders to send (each is canceled once accepted)
    #[arg(long, default_value_t = 2_000)]
    pub orders: u64,
    /// A short smoke run (50 orders)
    #[arg(long)]
    pub quick: bool,
    /// Plain http/ws instead of TLS
    #[arg(long)]
    pub plain: bool,
}

#[derive(Default)]
struct Stamps {
    /// (order, wall ns) of each intent: the first is the submit, the second the cancel.
    intents: Vec<(OrderId, i64)>,
    sends: Vec<(OrderId, i64)>,
    /// Canceled frames' receive times and the strategy's `on_order` for them.
    canceled_recv: HashMap<OrderId, i64>,
    canceled_seen: HashMap<OrderId, i64>,
    accepted: u64,
    other: u64,
}

#[derive(Clone)]
struct Ctl {
    stamps: Arc<Mutex<Stamps>>,
    left: Arc<AtomicU64>,
    busy: Arc<AtomicBool>,
}

struct Pinger(Ctl);

impl Strategy for Pinger {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, _bar: &Bar) {}
    fn wants_timer(&self) -> bool {
        true
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        let c = &self.0;
        if c.busy.load(Ordering::Acquire) || c.left.load(Ordering::Acquire) == 0 {
            return;
        }
        c.busy.store(true, Ordering::Release);
        c.left.fetch_sub(1, Ordering::AcqRel);
        let t = wall_ns();
        let id = ctx.submit(OrderRequest::limit(Side::Buy, 1, 1_000_000_000));
        c.stamps.lock().unwrap().intents.push((id, t));
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        let now = wall_ns();
        let c = &self.0;
        match r.exec_kind() {
            Some(ExecKind::Accepted) => {
                let t = wall_ns();
                ctx.cancel(r.order_id);
                let mut s = c.stamps.lock().unwrap();
                s.accepted += 1;
                s.intents.push((r.order_id, t));
            }
            Some(ExecKind::Canceled) => {
                c.stamps.lock().unwrap().canceled_seen.insert(r.order_id, now);
                c.busy.store(false, Ordering::Release);
            }
            _ => {
                c.stamps.lock().unwrap().other += 1;
                c.busy.store(false, Ordering::Release);
            }
        }
    }
}

struct PingerFactory(Ctl);
impl StrategyFactory for PingerFactory {
    fn name(&self) -> &str {
        "pinger"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(Pinger(self.0.clone()))
    }
}

fn tape() -> anyhow::Result<Arc<Tape>> {
    let t0 = 1_709_303_400_000_000_000i64;
    let bars: Vec<Bar> = (0..600)
        .map(|i| Bar {
            ts_event_ns: t0 + i * 60_000_000_000,
            open_px_e9: 100_000_000_000,
            high_px_e9: 100_050_000_000,
            low_px_e9: 99_950_000_000,
            close_px_e9: 100_010_000_000,
            volume: 1_000,
        })
        .collect();
    Ok(Arc::new(Tape::from_series(vec![("PING".to_string(), 60, bars)])?))
}

/// Entry point of `ringtape-bench order-path`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let n = if args.quick { 50 } else { args.orders };
    let mut ex_cfg = ExchangeConfig { tape: Some(tape()?), speed: 1.0, plain: args.plain, ..Default::default() };
    ex_cfg.broker.rate_limit_per_min = 0;
    ex_cfg.broker.ack_latency_ms = 0;
    let ex = Exchange::start(ex_cfg).context("starting the local exchange")?;
    let tc = TradingConfig {
        base_url: ex.http_origin(),
        stream_url: format!("{}://{}/stream", ex.ws_scheme(), ex.addr()),
        key_id: DEMO_KEY.into(),
        secret: Secret::new(DEMO_SECRET),
        tls: ex.cert_pem().map_or(TlsConfig::Plain, |p| TlsConfig::with_extra_root_pem(p.to_string())),
        timeout: Duration::from_secs(5),
        max_retries: 2,
    };
    let ctl = Ctl { stamps: Arc::default(), left: Arc::new(AtomicU64::new(n)), busy: Arc::default() };
    let hooks = {
        let (a, b) = (Arc::clone(&ctl.stamps), Arc::clone(&ctl.stamps));
        GatewayHooks {
            on_send: Some(Arc::new(move |id| {
                let t = wall_ns();
                a.lock().unwrap().sends.push((id, t));
            })),
            on_report: Some(Arc::new(move |r: &ExecReport, recv_ns| {
                if r.exec_kind() == Some(ExecKind::Canceled) {
                    b.lock().unwrap().canceled_recv.insert(r.order_id, recv_ns);
                }
            })),
        }
    };
    let mut symbols = SymbolTable::new();
    symbols.intern("PING")?;
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Threads;
    cfg.pipeline.timer_ms = 1;
    cfg.risk.max_gross_notional_usd = 0;
    cfg.risk.max_orders_per_sec = 0;
    let ingress = Ingress::new(4096);
    let (venue, port) = remote_venue("alpaca", 1024, ingress.clone());
    let gw = gateway::spawn(
        GatewayConfig {
            session: "pp-bench001".into(),
            own_prefix: "pp-bench".into(),
            policy: ReconcilePolicy::Adopt,
            cancel_on_disconnect: false,
            tif: Tif::Day,
            symbols: symbols.names().to_vec(),
            hooks,
        },
        Arc::new(TradingRest::new(&tc)?),
        TradeUpdatesClient::new(&tc)?,
        port,
        Arc::new(wall_ns),
        None,
    )?;
    ensure!(gw.wait_ready(Duration::from_secs(10)), "the gateway did not come up: {:?}", gw.status());
    let f = PingerFactory(ctl.clone());
    let done = AtomicBool::new(false);
    let t_run = Instant::now();
    let tick = wall_ns;
    std::thread::scope(|sc| -> anyhow::Result<()> {
        let p = sc.spawn(|| {
            let spec = RunSpec::new(&cfg, &symbols, &f)
                .ingress(ingress.clone())
                .venue(Box::new(venue))
                .clock(Clock::Wall(&tick));
            engine::pipeline::run(spec, Live::until(&done), &mut |_| {})
        });
        let deadline = Instant::now() + Duration::from_secs(30 + n / 20);
        while (ctl.left.load(Ordering::Acquire) > 0 || ctl.busy.load(Ordering::Acquire)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        gw.stop();
        done.store(true, Ordering::Release);
        p.join().map_err(|_| anyhow::anyhow!("the pipeline panicked"))??;
        Ok(())
    })?;
    let secs = t_run.elapsed().as_secs_f64();
    let st = gw.status();
    let s = ctl.stamps.lock().unwrap();
    let (mut out, mut inb) = (new_hist(), new_hist());
    let mut first: HashMap<OrderId, i64> = HashMap::new();
    let mut intents_by: HashMap<OrderId, Vec<i64>> = HashMap::new();
    for (id, t) in &s.intents {
        intents_by.entry(*id).or_default().push(*t);
    }
    let mut sends_by: HashMap<OrderId, Vec<i64>> = HashMap::new();
    for (id, t) in &s.sends {
        sends_by.entry(*id).or_default().push(*t);
    }
    for (id, sends) in &sends_by {
        if let Some(intents) = intents_by.get(id) {
            for (i, send) in sends.iter().enumerate() {
                if let Some(intent) = intents.get(i) {
                    let _ = out.record((send - intent).max(1) as u64);
                }
            }
        }
        first.insert(*id, sends[0]);
    }
    for (id, seen) in &s.canceled_seen {
        if let Some(recv) = s.canceled_recv.get(id) {
            let _ = inb.record((seen - recv).max(1) as u64);
        }
    }
    let checks = vec![
        (s.accepted == n, format!("{} of {n} orders accepted", s.accepted)),
        (s.canceled_seen.len() as u64 == n, format!("{} of {n} canceled", s.canceled_seen.len())),
        (s.other == 0 && st.refused == 0, format!("{} other reports, {} refused", s.other, st.refused)),
        (st.book.duplicate_fills == 0, format!("{} duplicate reports", st.book.duplicate_fills)),
        (out.len() == 2 * n, format!("{} of {} requests timed", out.len(), 2 * n)),
    ];
    print!("{}", report(n, secs, args.plain, &out, &inb, &checks));
    ensure!(checks.iter().all(|(ok, _)| *ok), "a check failed");
    Ok(())
}

fn row(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        h.len(),
        fmt_ns(q(h, 0.5)),
        fmt_ns(q(h, 0.99)),
        fmt_ns(q(h, 0.999)),
        fmt_ns(h.max() as f64)
    )
}

fn report(
    n: u64,
    secs: f64,
    plain: bool,
    out: &Histogram<u64>,
    inb: &Histogram<u64>,
    checks: &[(bool, String)],
) -> String {
    let m = machine_info();
    let mut s = String::new();
    let _ = writeln!(s, "## order-path: strategy <-> broker through the gateway\n");
    let _ = writeln!(s, "- command: `{}` ({} build)", command_line(), build_profile());
    let _ = writeln!(s, "- machine: {} cores, {}; load average {}", m.nproc, m.cpu_model, loadavg());
    let _ = writeln!(
        s,
        "- {n} orders, each accepted then canceled, one in flight, over {} to the local exchange's paper broker; {:.1} s, {:.0} round trips/s\n",
        if plain { "plain http/ws" } else { "TLS" },
        secs,
        n as f64 / secs.max(1e-9)
    );
    let _ = writeln!(s, "| path | samples | p50 | p99 | p99.9 | max |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let _ = writeln!(s, "{}", row("out: intent -> request handed to the HTTP client", out));
    let _ = writeln!(s, "{}", row("in: trade_updates frame read -> strategy on_order", inb));
    let _ = writeln!(s, "\n### Checks\n");
    for (ok, line) in checks {
        let _ = writeln!(s, "- {} {line}", if *ok { "OK" } else { "FAIL" });
    }
    s
}
