//! `broker-load`: how many orders a second the local exchange's paper broker sustains, and whether
//! every order's trade updates arrive.
//!
//! **Setup.** The local exchange runs in process (plain `http://`/`ws://`, rate limit off, the
//! default 5 ms ack latency, the backtest's default venue: no slippage, 0.005 USD a share) on a
//! synthetic tape of `--symbols` symbols (opens cycling 100.00..100.49, volume 1,000 a bar) at
//! `--speed` market seconds per wall second. One `trade_updates` session (auth + listen) records
//! every event. `--clients` threads, each on its own keep-alive HTTP connection, loop for
//! `--seconds`: a resting limit buy at 1.00 (`gtc`), its cancel (`DELETE`), and a marketable
//! market order of 1 share, round-robin over the symbols (a symbol's market orders alternate buy
//! and sell from one round to the next, so positions stay small and buying power lasts).
//!
//! **Checks** once the clients stop and every order is done (none open): no event lost
//! (`events_lost == 0`); every order's last event matches its final status (`canceled` for the
//! limits, `fill` for the market orders) and its fill events add up to its `filled_qty`; every
//! fill is at the open of the bar its timestamp names; each position equals the signed sum of the
//! fills and the cash equals the start minus the fills' value and commissions.
//!
//! **Reports** orders/s (accepted orders over the load window), REST requests/s, and the REST
//! round trip (submit, cancel) in HdrHistogram quantiles.
#![allow(clippy::disallowed_methods)] // reading the wall clock is the measurement

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use engine::records::Bar;
use hdrhistogram::Histogram;
use ringtape_tools::exchange::{BrokerConfig, DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, Tape};
use serde_json::Value;
use tungstenite::Message;

use crate::common::{build_profile, command_line, fmt_count, loadavg, machine_info};

const T0: i64 = 1_704_205_800_000_000_000; // 2024-01-02T14:30:00Z
const MIN: i64 = 60_000_000_000;
const E9: i128 = 1_000_000_000;

/// Options of `ringtape-bench broker-load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Client threads, one keep-alive connection each
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Load duration, wall seconds
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Symbols on the tape
    #[arg(long, default_value_t = 20)]
    pub symbols: usize,
    /// Market seconds per wall second (a bar closes every 60 / speed wall seconds)
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
}

fn tape(symbols: usize, minutes: usize) -> anyhow::Result<Tape> {
    let series = (0..symbols)
        .map(|s| {
            let bars = (0..minutes as i64)
                .map(|i| {
                    let open = 100_000_000_000 + ((i + s as i64) % 50) * 10_000_000;
                    Bar {
                        ts_event_ns: T0 + i * MIN,
                        open_px_e9: open,
                        high_px_e9: open + 50_000_000,
                        low_px_e9: open - 50_000_000,
                        close_px_e9: open + 10_000_000,
                        volume: 1_000,
                    }
                })
                .collect();
            (format!("S{s:03}"), 60, bars)
        })
        .collect();
    Ok(Tape::from_series(series)?)
}

struct Http {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    fn request(&mut self, method: &str, target: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAPCA-API-KEY-ID: {DEMO_KEY}\r\nAPCA-API-SECRET-KEY: {DEMO_SECRET}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.s.write_all(req.as_bytes())?;
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head.split(' ').nth(1).context("status line")?.parse()?;
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse()))
                    .context("Content-Length")??;
                while self.buf.len() < end + 4 + len {
                    let n = self.s.read(&mut chunk)?;
                    ensure!(n > 0, "connection closed mid-body");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = self.buf[end + 4..end + 4 + len].to_vec();
                self.buf.drain(..end + 4 + len);
                return Ok((status, body));
            }
            let n = self.s.read(&mut chunk)?;
            ensure!(n > 0, "connection closed before the response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Default)]
struct ClientResult {
    orders: u64,
    requests: u64,
    failures: Vec<String>,
}

fn client(
    addr: std::net::SocketAddr,
    k: usize,
    symbols: usize,
    stop: &AtomicBool,
    hist: &Mutex<Histogram<u64>>,
) -> ClientResult {
    let mut r = ClientResult::default();
    let mut h = match TcpStream::connect(addr) {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            Http { s, buf: Vec::new() }
        }
        Err(e) => {
            r.failures.push(format!("connect: {e}"));
            return r;
        }
    };
    let mut local = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds");
    let mut i = 0usize;
    let mut timed = |h: &mut Http, m: &str, t: &str, b: &str| {
        let t0 = Instant::now();
        let out = h.request(m, t, b);
        let _ = local.record((t0.elapsed().as_nanos() as u64).max(1_000));
        out
    };
    while !stop.load(Ordering::Relaxed) {
        let sym = format!("S{:03}", (k * 7 + i) % symbols);
        // Each symbol's market orders alternate buy, sell from one round over the symbols to the
        // next, so positions stay within a share or two and buying power never runs out.
        let side = if (i / symbols).is_multiple_of(2) { "buy" } else { "sell" };
        i += 1;
        let lim = format!(
            r#"{{"symbol":"{sym}","qty":"1","side":"buy","type":"limit","time_in_force":"gtc","limit_price":"1.00"}}"#
        );
        let id = match timed(&mut h, "POST", "/v2/orders", &lim) {
            Ok((200, body)) => {
                serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_str().map(String::from))
            }
            Ok((st, body)) => {
                r.failures.push(format!("limit: {st} {}", String::from_utf8_lossy(&body)));
                None
            }
            Err(e) => {
                r.failures.push(format!("limit: {e}"));
                return r;
            }
        };
        r.requests += 1;
        let Some(id) = id else { continue };
        r.orders += 1;
        match timed(&mut h, "DELETE", &format!("/v2/orders/{id}"), "") {
            Ok((204, _)) => {}
            Ok((st, body)) => r.failures.push(format!("cancel: {st} {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                r.failures.push(format!("cancel: {e}"));
                return r;
            }
        }
        r.requests += 1;
        let mkt = format!(r#"{{"symbol":"{sym}","qty":"1","side":"{side}","type":"market","time_in_force":"day"}}"#);
        match timed(&mut h, "POST", "/v2/orders", &mkt) {
            Ok((200, _)) => r.orders += 1,
            Ok((st, body)) => r.failures.push(format!("market: {st} {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                r.failures.push(format!("market: {e}"));
                return r;
            }
        }
        r.requests += 1;
    }
    if let Ok(mut g) = hist.lock() {
        let _ = g.add(&local);
    }
    r
}

/// Run the benchmark.
pub fn run(a: &Args) -> anyhow::Result<()> {
    ensure!(
        a.clients > 0 && a.symbols > 0 && a.seconds > 0.0 && a.speed > 0.0,
        "give positive --clients, --symbols, --seconds, --speed"
    );
    // Enough bars for the load plus the drain, at one bar a market minute.
    let minutes = ((a.seconds + 60.0) * a.speed / 60.0) as usize + 120;
    let start_ns = T0 + 60 * MIN;
    let broker = BrokerConfig { rate_limit_per_min: 0, ..BrokerConfig::default() };
    let start_cash = broker.starting_cash_e9;
    let ex = Exchange::start(ExchangeConfig {
        tape: Some(Arc::new(tape(a.symbols, minutes)?)),
        speed: a.speed,
        start_ns: Some(start_ns),
        plain: true,
        broker,
        ..ExchangeConfig::default()
    })
    .context("starting the exchange")?;
    let addr = ex.addr();

    // The trade_updates listener.
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/stream"), tcp).context("trade_updates handshake")?;
    ws.send(Message::text(format!(
        r#"{{"action":"authenticate","data":{{"key_id":"{DEMO_KEY}","secret_key":"{DEMO_SECRET}"}}}}"#
    )))?;
    ws.send(Message::text(r#"{"action":"listen","data":{"streams":["trade_updates"]}}"#))?;
    let events: Arc<Mutex<HashMap<String, Vec<Value>>>> = Arc::default();
    let listening = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let listener = {
        let (events, listening, done) = (Arc::clone(&events), Arc::clone(&listening), Arc::clone(&done));
        std::thread::Builder::new().name("bench-trade-updates".into()).spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let b = match ws.read() {
                    Ok(Message::Binary(b)) => b.to_vec(),
                    Ok(Message::Text(t)) => t.as_bytes().to_vec(),
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                    {
                        continue;
                    }
                    Err(_) => return,
                };
                let Ok(v) = serde_json::from_slice::<Value>(&b) else { continue };
                if v["stream"] == "listening" {
                    listening.store(true, Ordering::SeqCst);
                } else if v["stream"] == "trade_updates" {
                    let id = v["data"]["order"]["id"].as_str().unwrap_or("").to_string();
                    if let Ok(mut m) = events.lock() {
                        m.entry(id).or_default().push(v["data"].clone());
                    }
                }
            }
        })?
    };
    let t = Instant::now();
    while !listening.load(Ordering::SeqCst) {
        ensure!(t.elapsed() < Duration::from_secs(10), "trade_updates never confirmed listening");
        std::thread::sleep(Duration::from_millis(5));
    }

    let machine = machine_info();
    eprintln!("broker-load: {} clients for {} s on {} symbols at x{} ...", a.clients, a.seconds, a.symbols, a.speed);
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3)?));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..a.clients)
        .map(|k| {
            let (stop, hist, symbols) = (Arc::clone(&stop), Arc::clone(&hist), a.symbols);
            std::thread::Builder::new()
                .name(format!("bench-client-{k}"))
                .spawn(move || client(addr, k, symbols, &stop, &hist))
        })
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    stop.store(true, Ordering::SeqCst);
    let results: Vec<ClientResult> = clients.into_iter().map(|c| c.join().unwrap_or_default()).collect();
    let elapsed = t0.elapsed().as_secs_f64();
    let orders: u64 = results.iter().map(|r| r.orders).sum();
    let requests: u64 = results.iter().map(|r| r.requests).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.failures).collect();

    // Drain: every order done, then every event in.
    let t = Instant::now();
    let snap = loop {
        let s = ex.broker();
        if s.orders.iter().all(|o| matches!(o.status.as_str(), "filled" | "canceled" | "rejected" | "expired")) {
            break s;
        }
        ensure!(t.elapsed() < Duration::from_secs(60), "orders still open 60 s after the load");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stats = loop {
        let s1 = ex.stats();
        std::thread::sleep(Duration::from_millis(300));
        let s2 = ex.stats();
        if s1.events_sent == s2.events_sent {
            break s2;
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::SeqCst);
    let _ = listener.join();
    let events = events.lock().map_err(|_| anyhow::anyhow!("listener panicked"))?;

    // Checks.
    let mut problems: Vec<String> = failures.iter().take(5).map(|s| s.to_string()).collect();
    if stats.events_lost != 0 {
        problems.push(format!("{} events lost", stats.events_lost));
    }
    let mut pos: HashMap<String, i128> = HashMap::new();
    let mut cash = i128::from(start_cash);
    let (mut fills, mut missing) = (0u64, 0u64);
    for o in &snap.orders {
        let ev = events.get(&o.id).map(Vec::as_slice).unwrap_or(&[]);
        let want = match o.status.as_str() {
            "filled" => "fill",
            "canceled" => "canceled",
            other => other,
        };
        if ev.last().and_then(|e| e["event"].as_str()) != Some(want) {
            missing += 1;
            continue;
        }
        let mut q = 0i128;
        for e in ev.iter().filter(|e| e["event"] == "fill" || e["event"] == "partial_fill") {
            let fq: i128 = e["qty"].as_str().unwrap_or("0").parse().unwrap_or(0);
            let fp = parse_px(e["price"].as_str().unwrap_or("0"));
            let ts = e["timestamp"].as_str().and_then(parse_time).unwrap_or(0);
            let sym = ex.tape().find(&o.symbol).context("symbol")?;
            let bar = ex.tape().symbols[sym].minute.iter().find(|b| b.ts_event_ns == ts);
            if bar.map(|b| i128::from(b.open_px_e9)) != Some(fp) {
                problems.push(format!("order {} filled at {fp} not at the open of the bar at {ts}", o.id));
            }
            let sign = if o.side == "buy" { 1 } else { -1 };
            *pos.entry(o.symbol.clone()).or_default() += sign * fq;
            cash -= sign * fq * fp + fq * 5_000_000;
            q += fq;
            fills += 1;
        }
        if q.to_string() != o.filled_qty {
            problems.push(format!("order {}: fills add up to {q}, filled_qty {}", o.id, o.filled_qty));
        }
    }
    if missing > 0 {
        problems.push(format!("{missing} orders lack their final event"));
    }
    for p in &snap.positions {
        let want = pos.get(&p.symbol).copied().unwrap_or(0);
        if p.qty != want.to_string() {
            problems.push(format!("{} position {} but fills say {want}", p.symbol, p.qty));
        }
    }
    let held = snap.positions.len();
    let nonzero = pos.values().filter(|q| **q != 0).count();
    if held != nonzero {
        problems.push(format!("{held} positions held, fills say {nonzero}"));
    }
    if snap.account.cash != dec(cash) {
        problems.push(format!("cash {} but fills say {}", snap.account.cash, dec(cash)));
    }

    let h = hist.lock().map_err(|_| anyhow::anyhow!("histogram poisoned"))?;
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    println!("## broker-load: the paper broker under order load\n");
    println!(
        "`{}` ({} build), {} clients x keep-alive HTTP, {} symbols, x{} market speed, {} s",
        command_line(),
        build_profile(),
        a.clients,
        a.symbols,
        a.speed,
        a.seconds
    );
    println!("machine: {} ({} CPUs), load average {}\n", machine.cpu_model, machine.nproc, loadavg());
    println!(
        "| orders | orders/s | REST requests/s | REST p50 | p99 | p99.9 | max | fills | events sent | events lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.0} us | {:.0} us | {:.0} us | {:.0} us | {} | {} | {} |",
        fmt_count(orders),
        fmt_count((orders as f64 / elapsed) as u64),
        fmt_count((requests as f64 / elapsed) as u64),
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1_000.0,
        fmt_count(fills),
        fmt_count(stats.events_sent),
        stats.events_lost
    );
    if problems.is_empty() {
        println!(
            "\ncheck: every order got its events (none lost), fills at the bar opens, positions and cash match the fills: OK"
        );
        Ok(())
    } else {
        for p in &problems {
            println!("check FAILED: {p}");
        }
        bail!("{} check(s) failed", problems.len())
    }
}

fn parse_px(s: &str) -> i128 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let neg = i.starts_with('-');
    let i: i128 = i.trim_start_matches('-').parse().unwrap_or(0);
    let f: i128 = if f.is_empty() { 0 } else { format!("{f:0<9}").parse().unwrap_or(0) };
    let v = i * E9 + f;
    if neg { -v } else { v }
}

fn dec(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (i, f) = (a / 1_000_000_000, a % 1_000_000_000);
    if f == 0 {
        return format!("{sign}{i}");
    }
    let f = format!("{f:09}");
    format!("{sign}{i}.{}", f.trim_end_matches('0'))
}

/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ` (the broker's format) to ns UTC.
fn parse_time(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let frac = s.get(20..s.len().checked_sub(1)?).map_or(Some(0), |f| format!("{f:0<9}").parse::<i64>().ok())?;
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_broker_time_format() {
        assert_eq!(parse_time("2024-01-02T14:30:00.000000000Z"), Some(T0));
        assert_eq!(parse_time("2024-03-01T14:31:00.000000001Z"), Some(1_709_303_460_000_000_001));
        assert_eq!(dec(parse_px("-12.50")), "-12.5");
    }
}
