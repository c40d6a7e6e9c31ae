//! `tick-to-trade`: from a bar frame read off a websocket to the order at the venue seam, through
//! the real feed thread and the real pipeline.
//!
//! **Path measured.** A server thread on 127.0.0.1 (plain websocket: tungstenite server over a
//! std `TcpStream`, `TCP_NODELAY`) speaks the Alpaca market data stream protocol (`connected`,
//! auth, subscription replies), then sends one Alpaca bar frame (`[{"T":"b",...}]`) every
//! `1/rate` seconds, rotating over `--symbols` symbols. Each bar's window is long closed: window
//! starts count up one minute per rotation from 2024-01-02T14:30Z. The client is the REAL feed
//! thread (`feeds::feed::spawn_alpaca_feed`: mio, the non-blocking websocket client, the
//! zero-copy parser, the bar gates, the ingress) with **gate `grace_ns: 0`**, so a closed window
//! is final, and released, as soon as its bar is decoded. Its ingress feeds the REAL pipeline
//! (`engine::pipeline::run` with `.ingress(..)`, threads topology) running `latency`'s strategy
//! (a one-share market order on every bar, alternating sides) and `latency`'s timing venue.
//!
//! The feed's clock and the timing venue's clock are the same wall clock
//! (`SystemTime::now()`). The feed stamps each frame's receive time right after tungstenite has
//! read and decoded the frame's last byte (`feeds/src/ws/conn.rs`), the bar event carries that
//! stamp as its `ts_recv_ns`, the shard places the order at it, and the venue records
//! `now - placement time`. So one sample is **frame read off the socket -> parse -> gate ->
//! ingress -> sequencer -> (ring) -> shard -> strategy -> risk -> execution -> venue seam**.
//! Not included: the server's write, the kernel's loopback delivery and the feed thread's wake
//! from `epoll` (before the stamp). The feed's own part (frame stamp -> event in the ingress:
//! parse, gate, push) is [`feeds::feed::FeedReport::latency_ns`], reported beside it.
//!
//! **Fills.** The bars' windows are in the past, so the timing venue hands the simulated venue
//! each order as placed at its bar's start ([`TimingVenue::place_at_bar_start`]): it fills on the
//! symbol's next bar and no book grows.
//!
//! **Variants** (`--variants`): `threads` (the default engine config: unpinned, backoff wait)
//! and `threads-pinned` (`[pipeline.cores]` as in `latency`: sequencer and recorder on core 0,
//! shard and risk on core 1, wait `--pinned-wait`). The feed and server threads are never
//! pinned (the OS places them on whichever core is free).
//!
//! **Checks**: every bar sent produced one venue submit; the feed decoded every bar with no
//! parse error or rejection, released and pushed each once, and never reconnected.
#![allow(clippy::disallowed_methods)] // reading the wall clock is the measurement

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use engine::pipeline::config::{EngineConfig, Topology, WaitKind};
use engine::pipeline::{Ingress, Next, RunSpec, Source};
use engine::symbols::SymbolTable;
use engine::venue::{SimVenue, VenueConfig};
use feeds::credentials::Secret;
use feeds::feed::{AlpacaFeedConfig, FeedHandle, FeedReport, SharedClock, spawn_alpaca_feed};
use feeds::ws::TlsConfig;
use feeds::{GateConfig, SymbolMap};
use hdrhistogram::Histogram;
use tungstenite::{Message, WebSocket};

use crate::common::{build_profile, command_line, fmt_count, fmt_ns, loadavg, machine_info};
use crate::latency::{EveryBarFactory, Shared, Sink, TimingVenue, clock_cost_ns, new_hist, q, wall_ns};

/// 2024-01-02T14:30:00Z, the first window's start.
pub(crate) const T0_NS: i64 = 1_704_205_800_000_000_000;
const MIN_NS: i64 = 60_000_000_000;
const KEY: &str = "RINGTAPE_BENCH_KEY";
const SECRET: &str = "RINGTAPE_BENCH_SECRET";

/// Options of `ringtape-bench tick-to-trade`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bar frames per second, comma-separated
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1000,100000")]
    pub rates: Vec<u64>,
    /// Seconds per run (frames = rate x seconds) [default: 5; 0.25 with --quick]
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Variants, comma-separated: threads, threads-pinned
    #[arg(long, value_name = "V,..", value_delimiter = ',', default_value = "threads,threads-pinned")]
    pub variants: Vec<String>,
    /// Wait strategy of the threads-pinned variant (spin, yield, backoff)
    #[arg(long, default_value = "yield")]
    pub pinned_wait: String,
    /// Symbols the bars rotate over
    #[arg(long, default_value_t = 10)]
    pub symbols: u32,
    /// Samples not recorded at the start of each run [default: 1000; 20 with --quick]
    #[arg(long)]
    pub warmup_events: Option<u64>,
    /// Short runs for smoke tests (0.25 s per run)
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One variant: the engine config.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) cfg: EngineConfig,
}

/// `threads` and `threads-pinned` as `latency` builds them.
pub(crate) fn variants(names: &[String], pinned_wait: &str, cores: &[usize]) -> anyhow::Result<Vec<Variant>> {
    let mut base = EngineConfig::default();
    base.pipeline.timer_ms = 0;
    base.pipeline.topology = Topology::Threads;
    let wait = match pinned_wait {
        "spin" => WaitKind::Spin,
        "yield" => WaitKind::Yield,
        "backoff" => WaitKind::Backoff,
        w => bail!("--pinned-wait {w}: use spin, yield or backoff"),
    };
    let mut out = Vec::new();
    for v in names {
        let mut cfg = base.clone();
        match v.as_str() {
            "threads" => {}
            "threads-pinned" => {
                if cores.len() < 2 {
                    eprintln!(
                        "tick-to-trade: skipping threads-pinned: it needs 2 cores, this process may use {}",
                        cores.len()
                    );
                    continue;
                }
                cfg.pipeline.wait = wait;
                cfg.pipeline.cores.sequencer = Some(cores[0]);
                cfg.pipeline.cores.journal = Some(cores[0]);
                cfg.pipeline.cores.shards = vec![cores[1]];
                cfg.pipeline.cores.risk = Some(cores[1]);
            }
            other => bail!("--variants: unknown variant {other:?} (use threads, threads-pinned)"),
        }
        out.push(Variant { name: v.clone(), cfg });
    }
    Ok(out)
}

/// The wall clock as the feed's clock.
pub(crate) fn wall_clock() -> SharedClock {
    Arc::new(wall_ns)
}

/// The Alpaca feed config every benchmark here uses: plain `ws://` to `addr`, default transport
/// timers, gate grace 0 (a closed window is released as soon as its bar is decoded), no
/// history (live only).
pub(crate) fn feed_config(url: String, key: &str, secret: &str) -> AlpacaFeedConfig {
    let mut cfg = AlpacaFeedConfig::new(url, TlsConfig::Plain, Secret::new(key), Secret::new(secret));
    cfg.feed.gate = GateConfig { grace_ns: 0, release_on_later: false };
    cfg
}

/// The run's primary source: idle until the feed thread has finished (then one more turn, so
/// its last pushes are drained first).
pub(crate) struct UntilFinished<'h> {
    pub(crate) feed: &'h FeedHandle,
    pub(crate) seen: bool,
}

impl Source for UntilFinished<'_> {
    fn next(&mut self) -> Next {
        if self.seen {
            return Next::End;
        }
        self.seen = self.feed.is_finished();
        Next::Idle
    }
}

/// An Alpaca bar element for `sym` (its name) and window `start` (RFC 3339 text).
fn bar_frame(out: &mut String, sym: &str, t: &str, k: u64) {
    out.clear();
    // Prices move a little so the bars are not all alike; every field a real bar has.
    let c = 10_000 + (k % 50) as i64;
    let px = |v: i64| format!("{}.{:02}", v / 100, v % 100);
    let _ = write!(
        out,
        r#"[{{"T":"b","S":"{sym}","o":{o},"h":{h},"l":{l},"c":{c},"v":1200,"t":"{t}","n":12,"vw":{o}}}]"#,
        o = px(c),
        h = px(c + 5),
        l = px(c - 5),
        c = px(c + 1),
    );
}

fn rfc3339(ns: i64) -> String {
    // RFC 3339 UTC, whole seconds: the form Alpaca sends.
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What the server thread did.
#[derive(Debug, Default)]
struct Served {
    sent: u64,
    first_ns: i64,
    last_ns: i64,
    lateness: Option<Histogram<u64>>,
    /// All submits arrived before the server gave up waiting.
    complete: bool,
    error: Option<String>,
}

fn read_text(ws: &mut WebSocket<TcpStream>) -> anyhow::Result<String> {
    loop {
        match ws.read().context("reading the client's message")? {
            Message::Text(t) => return Ok(t.as_str().to_owned()),
            Message::Binary(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => {}
        }
    }
}

/// The Alpaca session up to the subscription reply.
fn handshake(listener: &TcpListener) -> anyhow::Result<WebSocket<TcpStream>> {
    let (tcp, _) = listener.accept().context("accept")?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut ws = tungstenite::accept(tcp).map_err(|e| anyhow::anyhow!("websocket handshake: {e}"))?;
    ws.send(Message::text(r#"[{"T":"success","msg":"connected"}]"#))?;
    let auth = read_text(&mut ws)?;
    ensure!(auth.contains("\"auth\"") && auth.contains(KEY), "expected the auth message, got {auth:.80}");
    ws.send(Message::text(r#"[{"T":"success","msg":"authenticated"}]"#))?;
    let sub = read_text(&mut ws)?;
    ensure!(sub.contains("\"subscribe\""), "expected a subscribe message, got {sub:.80}");
    let v: serde_json::Value = serde_json::from_str(&sub).context("the subscribe message")?;
    let list = |k: &str| v.get(k).cloned().unwrap_or_else(|| serde_json::json!([]));
    let reply = serde_json::json!([{"T":"subscription","trades":[],"quotes":list("quotes"),"bars":list("bars"),
        "updatedBars":list("updatedBars"),"dailyBars":[],"statuses":[],"lulds":[],"corrections":[],"cancelErrors":[]}]);
    ws.send(Message::text(reply.to_string()))?;
    Ok(ws)
}

/// Serve one session: handshake, `n` paced bar frames, then wait for `n` submits (or give up
/// after `patience`) and set `stop`, then read until the client leaves.
#[allow(clippy::too_many_arguments)] // reason: private, one caller
fn serve(
    listener: &TcpListener,
    names: &[String],
    rate: u64,
    n: u64,
    submits: &AtomicU64,
    stop: &AtomicBool,
    patience: Duration,
    out: &Mutex<Served>,
) {
    let mut served = Served::default();
    let res = (|| -> anyhow::Result<()> {
        let mut ws = handshake(listener)?;
        let period = 1e9 / rate as f64;
        let mut lateness = new_hist();
        let mut frame = String::with_capacity(256);
        let mut t = String::new();
        let n_sym = names.len() as u64;
        let start = wall_ns() + 1_000_000; // 1 ms to settle
        served.first_ns = start;
        for k in 0..n {
            let sym = (k % n_sym) as usize;
            if sym == 0 {
                t = rfc3339(T0_NS + (k / n_sym) as i64 * MIN_NS);
            }
            bar_frame(&mut frame, &names[sym], &t, k);
            let due = start + (k as f64 * period) as i64;
            loop {
                let now = wall_ns();
                let ahead = due - now;
                if ahead <= 0 {
                    break;
                }
                if ahead > 300_000 {
                    std::thread::sleep(Duration::from_nanos((ahead - 200_000) as u64));
                } else {
                    std::thread::yield_now();
                }
            }
            let now = wall_ns();
            lateness.saturating_record((now - due).max(1) as u64);
            ws.send(Message::text(frame.as_str()))?;
            served.sent = k + 1;
            served.last_ns = now;
        }
        served.lateness = Some(lateness);
        let t0 = Instant::now();
        while submits.load(Ordering::Acquire) < n && t0.elapsed() < patience {
            std::thread::sleep(Duration::from_millis(1));
        }
        served.complete = submits.load(Ordering::Acquire) >= n;
        stop.store(true, Ordering::Relaxed);
        // The feed closes the connection when it stops.
        let _ = ws.get_mut().set_read_timeout(Some(Duration::from_millis(100)));
        let t1 = Instant::now();
        while t1.elapsed() < Duration::from_secs(5) {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        Ok(())
    })();
    if let Err(e) = res {
        served.error = Some(format!("{e:#}"));
    }
    stop.store(true, Ordering::Relaxed);
    *out.lock().unwrap_or_else(|p| p.into_inner()) = served;
}

/// The outcome of one (variant, rate) run.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) variant: String,
    pub(crate) rate: u64,
    pub(crate) sent: u64,
    pub(crate) complete: bool,
    pub(crate) server_error: Option<String>,
    pub(crate) sent_rate: f64,
    pub(crate) served_rate: f64,
    pub(crate) send_lateness: Histogram<u64>,
    pub(crate) latency: Histogram<u64>,
    pub(crate) submits: u64,
    pub(crate) accepted: u64,
    pub(crate) bars: u64,
    pub(crate) feed: FeedReport,
    pub(crate) ingress_rejected: u64,
    pub(crate) placement: String,
}

impl Measured {
    /// The checks, as (ok, text) lines.
    pub(crate) fn checks(&self) -> Vec<(bool, String)> {
        let c = &self.feed.counters;
        let rejects: u64 = c.rejects.iter().sum();
        let name = format!("{} at {}/s", self.variant, fmt_count(self.rate));
        vec![
            (
                self.server_error.is_none() && self.complete,
                format!(
                    "{name}: server sent {} bar frames{}{}",
                    fmt_count(self.sent),
                    if self.complete { "" } else { "; not every submit arrived in time" },
                    self.server_error.as_ref().map(|e| format!("; server error: {e}")).unwrap_or_default()
                ),
            ),
            (
                self.submits == self.sent && self.accepted == self.sent && self.bars == self.sent,
                format!(
                    "{name}: {} bars into the pipeline, {} orders accepted by risk, {} venue submits (one per bar sent)",
                    fmt_count(self.bars),
                    fmt_count(self.accepted),
                    fmt_count(self.submits)
                ),
            ),
            (
                c.bars == self.sent
                    && c.parse_errors == 0
                    && rejects == 0
                    && c.unknown_symbols == 0
                    && c.released == self.sent
                    && self.feed.pushed == self.sent
                    && self.feed.reconnects == 0,
                format!(
                    "{name}: feed decoded {} bars, released {}, pushed {}; parse errors {}, rejected {}, unknown symbols {}, reconnects {}",
                    fmt_count(c.bars),
                    fmt_count(c.released),
                    fmt_count(self.feed.pushed),
                    c.parse_errors,
                    rejects,
                    c.unknown_symbols,
                    self.feed.reconnects
                ),
            ),
        ]
    }
}

/// One run: server, feed, pipeline.
pub(crate) fn run_one(v: &Variant, rate: u64, n: u64, symbols: u32, skip: u64) -> anyhow::Result<Measured> {
    ensure!(rate > 0 && n > 0, "rate and events must be > 0");
    let mut table = SymbolTable::new();
    let names: Vec<String> = (0..symbols.max(1)).map(|i| format!("TT{i:03}")).collect();
    for s in &names {
        table.intern(s).context("symbol name")?;
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1")?;
    let url = format!("ws://{}/v2/iex", listener.local_addr()?);
    let sink: Shared = Arc::new(Mutex::new(Sink::default()));
    let submits = Arc::new(AtomicU64::new(0));
    let venue = TimingVenue::new(SimVenue::new(&VenueConfig::default(), table.len()), skip, sink.clone())
        .live_counter(submits.clone())
        .place_at_bar_start();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Mutex::new(Served::default());
    // Patience: the whole run's length again, at least 10 s.
    let patience = Duration::from_secs_f64((n as f64 / rate as f64).max(10.0));
    let cfg = v.cfg.clone();
    let ingress = Ingress::new(65_536);
    let (out, feed) = std::thread::scope(|s| -> anyhow::Result<_> {
        let server = std::thread::Builder::new()
            .name("rt-bench-server".into())
            .spawn_scoped(s, || serve(&listener, &names, rate, n, &submits, &stop, patience, &served))?;
        let run = std::thread::Builder::new().name("rt-tick-to-trade".into()).spawn_scoped(s, || {
            let feed = spawn_alpaca_feed(
                feed_config(url, KEY, SECRET),
                ingress.clone(),
                SymbolMap::from_table(&table),
                wall_clock(),
                stop.clone(),
            )
            .context("spawning the feed thread")?;
            let spec = RunSpec::new(&cfg, &table, &EveryBarFactory).venue(Box::new(venue)).ingress(ingress.clone());
            let out = engine::pipeline::run(spec, UntilFinished { feed: &feed, seen: false }, &mut |_| {});
            stop.store(true, Ordering::Relaxed);
            let report = feed.join().map_err(|_| anyhow::anyhow!("the feed thread panicked"))?;
            Ok((out?, report))
        })?;
        let r = run.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        server.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        r
    })?;
    let served = std::mem::take(&mut *served.lock().unwrap_or_else(|p| p.into_inner()));
    let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
    let latency = sink.latency.take().context("the timing venue did not report")?;
    let span = |a: i64, b: i64, k: u64| {
        let t = (b - a) as f64 / 1e9;
        if t > 0.0 { k.saturating_sub(1) as f64 / t } else { f64::NAN }
    };
    let placement = out
        .placement
        .iter()
        .map(|(n, c, w)| format!("{n} {} {w}", c.map_or_else(|| "unpinned".into(), |c| format!("core {c}"))))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Measured {
        variant: v.name.clone(),
        rate,
        sent: served.sent,
        complete: served.complete,
        server_error: served.error,
        sent_rate: span(served.first_ns, served.last_ns, served.sent),
        served_rate: span(served.first_ns, sink.last_submit_ns, sink.submits),
        send_lateness: served.lateness.unwrap_or_else(new_hist),
        latency,
        submits: sink.submits,
        accepted: out.accepted,
        bars: out.bars,
        feed,
        ingress_rejected: ingress.rejected(),
        placement: format!("{placement}; feed and server threads unpinned"),
    })
}

/// Entry point of `ringtape-bench tick-to-trade`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(if args.quick { 0.25 } else { 5.0 });
    ensure!(seconds > 0.0, "--seconds must be > 0");
    ensure!(!args.rates.is_empty() && args.rates.iter().all(|&r| r > 0), "--rates: give rates > 0");
    let skip = args.warmup_events.unwrap_or(if args.quick { 20 } else { 1000 });
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let vars = variants(&args.variants, &args.pinned_wait, &cores)?;
    let command = command_line();
    let machine = machine_info();
    let load_start = loadavg();
    let clock_ns = clock_cost_ns();
    let mut results = Vec::new();
    for v in &vars {
        for &rate in &args.rates {
            let n = ((rate as f64 * seconds).round() as u64).max(skip + 1);
            eprintln!("tick-to-trade: {} at {} frames/s, {} frames ...", v.name, fmt_count(rate), fmt_count(n));
            results.push(run_one(v, rate, n, args.symbols, skip)?);
        }
    }
    let load_end = loadavg();
    let s = report(args, &results, &vars, &cores, seconds, skip, clock_ns, &command, &machine, &load_start, &load_end);
    print!("{s}");
    if let Some(path) = &args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|m| {
                let h = &m.latency;
                let f = &m.feed.latency_ns;
                serde_json::json!({
                    "variant": m.variant, "rate": m.rate, "sent": m.sent, "sent_rate": m.sent_rate,
                    "served_rate": m.served_rate, "samples": h.len(), "placement": m.placement,
                    "tick_to_trade_ns": {"p50": q(h, 0.5), "p90": q(h, 0.9), "p99": q(h, 0.99), "p999": q(h, 0.999),
                        "max": h.max(), "min": h.min(), "mean": h.mean()},
                    "feed_recv_to_publish_ns": {"p50": q(f, 0.5), "p90": q(f, 0.9), "p99": q(f, 0.99), "p999": q(f, 0.999),
                        "max": f.max(), "min": f.min(), "mean": f.mean(), "samples": f.len()},
                    "send_lateness_ns": {"p50": q(&m.send_lateness, 0.5), "p99": q(&m.send_lateness, 0.99), "max": m.send_lateness.max()},
                    "submits": m.submits, "accepted": m.accepted, "bars": m.bars,
                    "feed": {"bars": m.feed.counters.bars, "released": m.feed.counters.released, "pushed": m.feed.pushed,
                        "parse_errors": m.feed.counters.parse_errors, "reconnects": m.feed.reconnects,
                        "backlog_max": m.feed.backlog_max, "frames": m.feed.counters.frames},
                    "ingress_rejected": m.ingress_rejected,
                    "checks_ok": m.checks().iter().all(|(ok, _)| *ok),
                })
            })
            .collect();
        let j = serde_json::json!({
            "benchmark": "tick-to-trade", "command": command,
            "machine": {"cpu_model": machine.cpu_model, "nproc": machine.nproc, "online_cpus": machine.online_cpus,
                "kernel": machine.kernel, "clocksource": machine.clocksource, "build": build_profile(),
                "loadavg_start": load_start, "loadavg_end": load_end},
            "clock_read_ns": clock_ns, "seconds": seconds, "warmup_events": skip, "symbols": args.symbols,
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")
            .with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("tick-to-trade: wrote {}", path.display());
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|m| !m.checks().iter().all(|(ok, _)| *ok))
        .map(|m| format!("{} {}", m.variant, m.rate))
        .collect();
    if !failed.is_empty() {
        bail!("check(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // reason: private, one caller
fn report(
    args: &Args,
    results: &[Measured],
    vars: &[Variant],
    cores: &[usize],
    seconds: f64,
    skip: u64,
    clock_ns: f64,
    command: &str,
    machine: &crate::common::MachineInfo,
    load_start: &str,
    load_end: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## tick-to-trade: websocket frame read -> feed -> pipeline -> venue seam\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Command | `{command}` |");
    let _ = writeln!(
        s,
        "| Machine | {} (nproc {}, {} online CPUs in /proc/cpuinfo; this process may use cores {:?}), kernel {}, clocksource {} |",
        machine.cpu_model, machine.nproc, machine.online_cpus, cores, machine.kernel, machine.clocksource
    );
    let _ = writeln!(s, "| Build | {} |", build_profile());
    let _ = writeln!(s, "| Load average (1/5/15 min) | start {load_start}; end {load_end} |");
    let _ = writeln!(
        s,
        "| Input | a websocket server thread on 127.0.0.1 (plain ws, TCP_NODELAY) sends one Alpaca bar frame `[{{\"T\":\"b\",...}}]` per 1/rate s, rotating over {} symbols, windows long closed; {} s per run; first {} samples of each run not recorded |",
        args.symbols, seconds, skip
    );
    let _ = writeln!(
        s,
        "| Feed | the real Alpaca feed thread (`spawn_alpaca_feed`), wall clock, gate grace_ns = 0 (a closed window is released as soon as it is decoded), no history, ingress capacity 65,536 |"
    );
    let _ = writeln!(
        s,
        "| Strategy / venue | market order (1 share, alternating side) on every bar; SimVenue behind `latency`'s timing wrapper; default risk limits (none); timer_ms = 0 |"
    );
    let _ =
        writeln!(s, "| Clock | SystemTime::now() costs {clock_ns:.1} ns per read (one read per sample is included) |");
    for v in vars {
        if let Some(m) = results.iter().find(|m| m.variant == v.name) {
            let _ = writeln!(s, "| Placement, {} | {} |", v.name, m.placement);
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Variant | Target frames/s | Sent frames/s | Served orders/s | Samples | p50 | p90 | p99 | p99.9 | max | mean | feed recv->publish p50 / p99 / p99.9 / max | server send lateness p50 / p99 |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for m in results {
        let h = &m.latency;
        let f = &m.feed.latency_ns;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} / {} |",
            m.variant,
            fmt_count(m.rate),
            fmt_count(m.sent_rate.round() as u64),
            fmt_count(m.served_rate.round() as u64),
            fmt_count(h.len()),
            fmt_ns(q(h, 0.5)),
            fmt_ns(q(h, 0.9)),
            fmt_ns(q(h, 0.99)),
            fmt_ns(q(h, 0.999)),
            fmt_ns(h.max() as f64),
            fmt_ns(h.mean()),
            fmt_ns(q(f, 0.5)),
            fmt_ns(q(f, 0.99)),
            fmt_ns(q(f, 0.999)),
            fmt_ns(f.max() as f64),
            fmt_ns(q(&m.send_lateness, 0.5)),
            fmt_ns(q(&m.send_lateness, 0.99)),
        );
    }
    let _ = writeln!(
        s,
        "\nTick-to-trade = venue submit time - the frame's receive stamp (both SystemTime::now()), HdrHistogram \
         with 3 significant figures: parse, gate, ingress, sequencer, shard, strategy, risk, execution. Feed \
         recv->publish = the feed's own `FeedReport::latency_ns` (frame stamp -> event in the ingress; every \
         sample, no warm-up skipped). Sent frames/s: frames / (last send - first due); served orders/s: venue \
         submits / (last submit - first due): below the target, the path did not keep up and the latency is \
         mostly queueing. Server send lateness: how late the server thread sent a frame against its schedule \
         (the server shares the 2 cores)."
    );
    let _ = writeln!(s, "\n### Checks\n");
    for m in results {
        for (ok, line) in m.checks() {
            let _ = writeln!(s, "- {} {line}", if ok { "OK" } else { "FAIL" });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_the_calendar() {
        assert_eq!(rfc3339(T0_NS), "2024-01-02T14:30:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(T0_NS + 60 * 86_400 * 1_000_000_000), "2024-03-02T14:30:00Z");
    }

    #[test]
    fn every_frame_reaches_the_venue_through_the_real_feed() {
        let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        for v in variants(&["threads".into()], "yield", &cores).unwrap() {
            let m = run_one(&v, 5_000, 300, 3, 10).unwrap();
            for (ok, line) in m.checks() {
                assert!(ok, "{line}");
            }
            assert_eq!(m.latency.len(), 290, "{}", v.name);
            assert!(m.feed.latency_ns.len() >= 300);
        }
    }
}
