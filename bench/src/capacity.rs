//! `capacity`: how many bar messages per second the real Alpaca feed thread and pipeline sustain
//! with 10,000 symbols subscribed on one connection, and what a symbol costs in memory.
//!
//! **Setup, per step.** The local exchange (`ringtape_tools::exchange`, plain `ws://`) serves a
//! synthetic tape: `--symbols` symbols (`S00000`...) with one minute bar each for `--minutes`
//! consecutive minutes from 2024-01-02T14:30Z. By default it runs in a child process (this
//! binary's hidden `capacity-exchange` subcommand), so this process holds only the feed and the
//! pipeline; `--in-process` runs it on threads here. The exchange's market clock runs at
//! `speed = rate * 60 / symbols` (so the **message rate**, bars per wall second averaged over a
//! minute, is `rate`) and starts `--lead-ms` of wall time before the first window ends, which
//! leaves the feed time to connect, authenticate and subscribe. As the real service does, the
//! exchange releases every symbol's bar of a minute when the minute ends (a burst of `symbols`
//! bars, sent 1,000 per frame), so the stream is bursts of `symbols` bars every `60 / speed`
//! wall seconds.
//!
//! The REAL Alpaca feed thread (`spawn_alpaca_feed`, one connection, every symbol in one
//! subscribe message; wall clock; gate grace 0; no history) pushes into an ingress (65,536
//! slots, `ringtape paper`'s default) read by the REAL pipeline (threads topology, default
//! config, `timer_ms = 0`) running a strategy that places no order and records, for each bar:
//! - **receive lag** = the bar event's `ts_recv_ns` (the feed's stamp when it read the frame)
//!   minus the wall time at which the exchange's market clock reached the bar's window end
//!   (`wall_start + (window_end - market_start) / speed`, from the exchange's `MarketClock`):
//!   exchange publish wake-up and encoding, the socket, the feed's read;
//! - **pipeline lag** = the wall time the strategy sees the bar minus the same reference: the
//!   receive lag plus parse, gate, backlog, ingress, sequencer and shard.
//!
//! **Sustained** (per step) means all of: every bar the exchange published reached the strategy
//! exactly once (strategy bars = feed bars released = pushed = symbols x minutes = the exchange's
//! `bars_published`), no parse error, no reconnect (the exchange drops a client that does not
//! read for 10 s), and **no growth in lag**: the median over the last third of the minutes of
//! each minute's largest pipeline lag exceeds the median over the first third by less than one
//! minute's period (`60 / speed` wall seconds). A consumer slower than the stream falls further
//! behind with each burst, so its lag grows by a period or more over the run; one that keeps up
//! starts each burst idle. The highest sustained message rate is the largest `--rates` step that
//! passes.
//!
//! **CPU** (per step): user + system time of every thread of this process and of the exchange
//! child (`/proc/<pid>/task/*/stat`) from the first burst's arrival to the last bar, as a share of
//! one core, to tell which side falls behind first.
//!
//! **Memory per symbol** (first step only, a fresh process): VmRSS from /proc/self/status before
//! building the symbol table, then (a) once the feed is live and subscribed (symbol table, feed
//! symbol map, the pipeline's per-symbol tables and strategy instances, the subscribe message)
//! and (b) once every symbol's first bar has reached the strategy (plus each symbol's bar gate
//! and whatever the first bar allocates), each delta divided by the number of symbols.
//! Includes allocator slack and touched thread-stack pages; with `--in-process` it also includes
//! the exchange's per-session subscription sets.
#![allow(clippy::disallowed_methods)] // reading the wall clock is the measurement

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{Ingress, RunSpec};
use engine::records::{Bar, PX_SCALE};
use engine::strategy::{Ctx, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use feeds::SymbolMap;
use feeds::feed::{FeedReport, SessionState, spawn_alpaca_feed};
use hdrhistogram::Histogram;
use ringtape_tools::exchange::{
    DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, ExchangeHandle, MarketClock, Stats, Tape,
};

use crate::common::{build_profile, command_line, fmt_count, fmt_ns, loadavg, machine_info, median};
use crate::latency::{new_hist, q, wall_ns};
use crate::tick_to_trade::{T0_NS, UntilFinished, feed_config, wall_clock};

const MIN_NS: i64 = 60_000_000_000;

/// Options of `ringtape-bench capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Symbols on the exchange, all subscribed [default: 10000; 200 with --quick]
    #[arg(long)]
    pub symbols: Option<u32>,
    /// Message rates to try (bars per wall second), comma-separated, in rising order
    /// [default: 20000,50000,100000,200000,400000; 5000,20000 with --quick]
    #[arg(long, value_name = "N,..", value_delimiter = ',')]
    pub rates: Vec<u64>,
    /// Wall seconds of streaming per step (minutes = seconds x speed / 60, at least 9)
    /// [default: 6; 0.5 with --quick]
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Wall time between the exchange's start and the first window's end (connect, auth,
    /// subscribe), ms [default: 3000; 500 with --quick]
    #[arg(long)]
    pub lead_ms: Option<u64>,
    /// Run the exchange on threads of this process (default: a child process, so the memory
    /// figure holds only the feed and the pipeline)
    #[arg(long)]
    pub in_process: bool,
    /// Small sizes for smoke tests
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Options of the hidden `capacity-exchange` subcommand (the exchange in a child process).
#[derive(Debug, Clone, clap::Args)]
pub struct ExchangeArgs {
    /// Symbols
    #[arg(long)]
    pub symbols: u32,
    /// Minutes of bars per symbol
    #[arg(long)]
    pub minutes: u32,
    /// Market seconds per wall second
    #[arg(long)]
    pub speed: f64,
    /// Wall ms from the start to the first window's end
    #[arg(long)]
    pub lead_ms: u64,
}

/// The synthetic tape: `symbols` x `minutes` minute bars from [`T0_NS`].
pub(crate) fn synth_tape(symbols: u32, minutes: u32) -> anyhow::Result<Tape> {
    let series = (0..symbols)
        .map(|s| {
            let bars = (0..minutes)
                .map(|m| {
                    let px = (100 + i64::from(s % 400)) * PX_SCALE + i64::from((m * 7 + s) % 50) * PX_SCALE / 100;
                    Bar {
                        ts_event_ns: T0_NS + i64::from(m) * MIN_NS,
                        open_px_e9: px,
                        high_px_e9: px + PX_SCALE / 20,
                        low_px_e9: px - PX_SCALE / 20,
                        close_px_e9: px + PX_SCALE / 100,
                        volume: 1_000 + u64::from(m % 10) * 100,
                    }
                })
                .collect();
            (symbol_name(s), 60, bars)
        })
        .collect();
    Ok(Tape::from_series(series)?)
}

fn symbol_name(i: u32) -> String {
    format!("S{i:05}")
}

fn exchange_config(tape: Tape, speed: f64, lead_ms: u64) -> ExchangeConfig {
    let lead_market_ns = (lead_ms as f64 * 1e6 * speed) as i64;
    ExchangeConfig {
        tape: Some(Arc::new(tape)),
        speed,
        start_ns: Some(T0_NS + MIN_NS - lead_market_ns),
        plain: true,
        ..ExchangeConfig::default()
    }
}

/// The hidden subcommand: start the exchange, print `READY <addr> <clock JSON>`, answer each
/// `stats` line on stdin with `STATS <JSON>`, stop at end of input.
pub fn serve_exchange(a: &ExchangeArgs) -> anyhow::Result<()> {
    let tape = synth_tape(a.symbols, a.minutes)?;
    let ex = Exchange::start(exchange_config(tape, a.speed, a.lead_ms)).context("starting the exchange")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {} {}", ex.addr(), serde_json::to_string(&ex.clock())?)?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "stats" {
            writeln!(out, "STATS {}", serde_json::to_string(&ex.stats())?)?;
            out.flush()?;
        }
    }
    ex.stop();
    Ok(())
}

/// The exchange of one step, here or in a child process.
enum ExchangeSide {
    Here(ExchangeHandle),
    Child { child: Child, stdin: ChildStdin, stdout: BufReader<ChildStdout> },
}

impl ExchangeSide {
    fn start(
        in_process: bool,
        symbols: u32,
        minutes: u32,
        speed: f64,
        lead_ms: u64,
    ) -> anyhow::Result<(Self, String, MarketClock)> {
        if in_process {
            let tape = synth_tape(symbols, minutes)?;
            let ex = Exchange::start(exchange_config(tape, speed, lead_ms)).context("starting the exchange")?;
            let (addr, clock) = (ex.addr().to_string(), ex.clock());
            return Ok((ExchangeSide::Here(ex), addr, clock));
        }
        let exe = std::env::current_exe().context("this executable's path")?;
        let mut child = Command::new(exe)
            .args(["capacity-exchange", "--symbols", &symbols.to_string(), "--minutes", &minutes.to_string()])
            .args(["--speed", &speed.to_string(), "--lead-ms", &lead_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the exchange child process")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            bail!("the exchange child has no pipes");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the exchange child's READY line")?;
        let mut parts = line.trim().splitn(3, ' ');
        let (Some("READY"), Some(addr), Some(clock)) = (parts.next(), parts.next(), parts.next()) else {
            let _ = child.kill();
            bail!("the exchange child said {line:?}, not READY");
        };
        let clock: MarketClock = serde_json::from_str(clock).context("the exchange child's clock")?;
        let addr = addr.to_owned();
        Ok((ExchangeSide::Child { child, stdin, stdout }, addr, clock))
    }

    /// `/proc/<pid>` of the exchange's process.
    fn proc_path(&self) -> String {
        match self {
            ExchangeSide::Here(_) => "/proc/self".into(),
            ExchangeSide::Child { child, .. } => format!("/proc/{}", child.id()),
        }
    }

    fn stats(&mut self) -> anyhow::Result<Stats> {
        match self {
            ExchangeSide::Here(ex) => Ok(ex.stats()),
            ExchangeSide::Child { stdin, stdout, .. } => {
                writeln!(stdin, "stats")?;
                stdin.flush()?;
                let mut line = String::new();
                stdout.read_line(&mut line)?;
                let json = line.trim().strip_prefix("STATS ").context("the exchange child's STATS line")?;
                Ok(serde_json::from_str(json)?)
            }
        }
    }

    fn stop(self) {
        match self {
            ExchangeSide::Here(ex) => ex.stop(),
            ExchangeSide::Child { mut child, stdin, .. } => {
                drop(stdin); // end of input: the child stops its exchange and exits
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(10) {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// VmRSS of this process, bytes (0 if unknown).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds (user + system) of each thread under `/proc/<proc>/task`, summed by thread name
/// (clock ticks of 10 ms, the Linux default `CLK_TCK` of 100).
pub(crate) fn thread_cpu(proc: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("{proc}/task")) else { return out };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_owned();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3, utime 14 and stime 15.
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += secs,
            None => out.push((name, secs)),
        }
    }
    out
}

/// CPU use between two [`thread_cpu`] samples over `wall_s`, as `name NN%` for threads above 2 %.
fn cpu_share(a: &[(String, f64)], b: &[(String, f64)], wall_s: f64) -> String {
    let mut v: Vec<(String, f64)> = b
        .iter()
        .map(|(n, t)| (n.clone(), t - a.iter().find(|(m, _)| m == n).map_or(0.0, |x| x.1)))
        .filter(|(_, d)| *d / wall_s.max(1e-9) >= 0.02)
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(|(n, d)| format!("{n} {:.0}%", 100.0 * d / wall_s.max(1e-9))).collect::<Vec<_>>().join(", ")
}

/// What the strategies of a run record (shared by every symbol's instance).
struct LagState {
    clock: MarketClock,
    bars: AtomicU64,
    recv: Mutex<Histogram<u64>>,
    pipe: Mutex<Histogram<u64>>,
    /// Feed receive stamp -> strategy (ringtape's own part of the pipeline lag).
    inner: Mutex<Histogram<u64>>,
    /// Per minute: the largest receive and pipeline lag, ns.
    recv_max: Vec<AtomicI64>,
    pipe_max: Vec<AtomicI64>,
    /// Bars before the window's end (would mean a clock mix-up).
    negative: AtomicU64,
}

impl LagState {
    fn window_end_wall_ns(&self, start: i64) -> i64 {
        let market = start + MIN_NS - self.clock.market_start_ns;
        self.clock.wall_start_ns + (market as f64 / self.clock.speed) as i64
    }
}

struct LagStrategy(Arc<LagState>);

impl Strategy for LagStrategy {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar) {
        let now = wall_ns();
        let st = &*self.0;
        let end = st.window_end_wall_ns(bar.ts_event_ns);
        let (recv, pipe) = (ctx.ts_ns() - end, now - end);
        if recv < 0 {
            st.negative.fetch_add(1, Ordering::Relaxed);
        }
        st.recv.lock().unwrap_or_else(|p| p.into_inner()).saturating_record(recv.max(1) as u64);
        st.pipe.lock().unwrap_or_else(|p| p.into_inner()).saturating_record(pipe.max(1) as u64);
        st.inner.lock().unwrap_or_else(|p| p.into_inner()).saturating_record((now - ctx.ts_ns()).max(1) as u64);
        let m = ((bar.ts_event_ns - T0_NS) / MIN_NS) as usize;
        if let (Some(r), Some(p)) = (st.recv_max.get(m), st.pipe_max.get(m)) {
            r.fetch_max(recv, Ordering::Relaxed);
            p.fetch_max(pipe, Ordering::Relaxed);
        }
        st.bars.fetch_add(1, Ordering::Release);
    }
}

struct LagFactory(Arc<LagState>);

impl StrategyFactory for LagFactory {
    fn name(&self) -> &str {
        "lag_probe"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(LagStrategy(self.0.clone()))
    }
}

/// Memory figures of a step (bytes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    before: u64,
    live: u64,
    first_bars: u64,
    /// CPU use of this process's and the exchange child's threads from the first burst's
    /// arrival to the last bar (or the deadline).
    cpu_here: String,
    cpu_exchange: String,
}

/// One step's outcome.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) rate: u64,
    pub(crate) speed: f64,
    pub(crate) symbols: u32,
    pub(crate) minutes: u32,
    pub(crate) expected: u64,
    pub(crate) strategy_bars: u64,
    pub(crate) feed: FeedReport,
    pub(crate) exchange: Stats,
    pub(crate) recv: Histogram<u64>,
    pub(crate) pipe: Histogram<u64>,
    pub(crate) inner: Histogram<u64>,
    pub(crate) recv_max: Vec<i64>,
    pub(crate) pipe_max: Vec<i64>,
    pub(crate) negative: u64,
    pub(crate) memory: Memory,
    pub(crate) stream_s: f64,
    pub(crate) error: Option<String>,
}

/// Median of the first and last thirds of `v` (ns).
fn thirds(v: &[i64]) -> (f64, f64) {
    let k = (v.len() / 3).max(1);
    let f: Vec<f64> = v[..k.min(v.len())].iter().map(|&x| x as f64).collect();
    let l: Vec<f64> = v[v.len().saturating_sub(k)..].iter().map(|&x| x as f64).collect();
    (median(&f), median(&l))
}

impl Step {
    fn period_ns(&self) -> f64 {
        60e9 / self.speed
    }

    /// Growth of the per-minute maximum pipeline (and receive) lag, last third - first third.
    pub(crate) fn growth_ns(&self) -> (f64, f64) {
        let (a, b) = thirds(&self.pipe_max);
        let (c, d) = thirds(&self.recv_max);
        (b - a, d - c)
    }

    pub(crate) fn delivered(&self) -> bool {
        let c = &self.feed.counters;
        self.error.is_none()
            && self.strategy_bars == self.expected
            && c.bars == self.expected
            && c.released == self.expected
            && self.feed.pushed == self.expected
            && self.exchange.bars_published == self.expected
            && c.parse_errors == 0
            && c.duplicates == 0
            && c.late == 0
            && self.feed.reconnects == 0
    }

    pub(crate) fn no_growth(&self) -> bool {
        self.growth_ns().0 < self.period_ns()
    }

    pub(crate) fn sustained(&self) -> bool {
        self.delivered() && self.no_growth()
    }

    /// The check lines of this step: delivery is a check; lag growth is the measurement
    /// (reported, not a failure).
    pub(crate) fn checks(&self) -> Vec<(bool, String)> {
        let c = &self.feed.counters;
        vec![(
            self.delivered(),
            format!(
                "{}/s ({} symbols x {} minutes): exchange published {} bars; feed decoded {}, released {}, pushed {}; strategy saw {}; parse errors {}, duplicates {}, late {}, reconnects {}{}",
                fmt_count(self.rate),
                fmt_count(u64::from(self.symbols)),
                self.minutes,
                fmt_count(self.exchange.bars_published),
                fmt_count(c.bars),
                fmt_count(c.released),
                fmt_count(self.feed.pushed),
                fmt_count(self.strategy_bars),
                c.parse_errors,
                c.duplicates,
                c.late,
                self.feed.reconnects,
                self.error.as_ref().map(|e| format!("; error: {e}")).unwrap_or_default()
            ),
        )]
    }
}

/// One step: exchange, feed, pipeline (memory is measured in every step; the report shows the first).
pub(crate) fn run_step(symbols: u32, rate: u64, seconds: f64, lead_ms: u64, in_process: bool) -> anyhow::Result<Step> {
    let speed = rate as f64 * 60.0 / f64::from(symbols);
    let minutes = ((seconds * speed / 60.0).ceil() as u32).max(9);
    let expected = u64::from(symbols) * u64::from(minutes);
    let (mut ex, addr, clock) = ExchangeSide::start(in_process, symbols, minutes, speed, lead_ms)?;
    // The ingress is a fixed cost (65,536 slots), not a per-symbol one: made before the figure.
    let ingress = Ingress::new(65_536);
    let mut memory = Memory { before: rss_bytes(), ..Memory::default() };
    let mut table = SymbolTable::new();
    for i in 0..symbols {
        table.intern(&symbol_name(i)).context("symbol name")?;
    }
    let state = Arc::new(LagState {
        clock,
        bars: AtomicU64::new(0),
        recv: Mutex::new(new_hist()),
        pipe: Mutex::new(new_hist()),
        inner: Mutex::new(new_hist()),
        recv_max: (0..minutes).map(|_| AtomicI64::new(i64::MIN)).collect(),
        pipe_max: (0..minutes).map(|_| AtomicI64::new(i64::MIN)).collect(),
        negative: AtomicU64::new(0),
    });
    let factory = LagFactory(state.clone());
    let mut cfg = EngineConfig::default();
    cfg.pipeline.timer_ms = 0;
    cfg.pipeline.topology = Topology::Threads;
    let stop = Arc::new(AtomicBool::new(false));
    // When the last window ends on the exchange's clock; then 10 s of slack (and more while bars
    // still arrive).
    let deadline_ns = state.window_end_wall_ns(T0_NS + i64::from(minutes - 1) * MIN_NS) + 10_000_000_000;
    let first_end_wall = state.window_end_wall_ns(T0_NS);
    let url = format!("ws://{addr}/v2/iex");
    let ex_proc = if in_process { None } else { Some(ex.proc_path()) };
    let result = std::thread::scope(|s| -> anyhow::Result<(FeedReport, Memory)> {
        let feed = spawn_alpaca_feed(
            feed_config(url, DEMO_KEY, DEMO_SECRET),
            ingress.clone(),
            SymbolMap::from_table(&table),
            wall_clock(),
            stop.clone(),
        )
        .context("spawning the feed thread")?;
        let status = feed.status().clone();
        let (state, stop, ex_proc) = (&state, &stop, &ex_proc);
        let watcher = s.spawn(move || {
            // (a) live and subscribed: Live, then a moment for the subscribe to go out and the
            // pipeline to build its tables; before the first window ends.
            let mut mem = Memory::default();
            while status.snapshot().state != SessionState::Live && wall_ns() < first_end_wall {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(
                Duration::from_millis(200).min(Duration::from_nanos((first_end_wall - wall_ns()).max(0) as u64 / 2)),
            );
            mem.live = rss_bytes();
            // (b) every symbol's first bar at the strategy.
            while state.bars.load(Ordering::Acquire) < u64::from(symbols) && wall_ns() < deadline_ns {
                std::thread::sleep(Duration::from_millis(1));
            }
            mem.first_bars = rss_bytes();
            let t0 = Instant::now();
            let here0 = thread_cpu("/proc/self");
            let ex0 = ex_proc.as_deref().map(thread_cpu);
            // Past the deadline, keep waiting while bars still arrive (a step that fell behind
            // is slow, not lossy), up to 60 s more.
            let (mut seen, mut seen_at) = (0, wall_ns());
            loop {
                let (n, now) = (state.bars.load(Ordering::Acquire), wall_ns());
                if n >= expected || now >= deadline_ns + 60_000_000_000 {
                    break;
                }
                if n != seen {
                    (seen, seen_at) = (n, now);
                }
                if now >= deadline_ns && now - seen_at > 1_000_000_000 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let wall_s = t0.elapsed().as_secs_f64();
            mem.cpu_here = cpu_share(&here0, &thread_cpu("/proc/self"), wall_s);
            if let (Some(p), Some(a)) = (ex_proc.as_deref(), ex0) {
                mem.cpu_exchange = cpu_share(&a, &thread_cpu(p), wall_s);
            }
            stop.store(true, Ordering::Relaxed);
            mem
        });
        let spec = RunSpec::new(&cfg, &table, &factory).ingress(ingress.clone());
        let out = engine::pipeline::run(spec, UntilFinished { feed: &feed, seen: false }, &mut |_| {});
        stop.store(true, Ordering::Relaxed);
        let report = feed.join().map_err(|_| anyhow::anyhow!("the feed thread panicked"))?;
        let mem = watcher.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        out?;
        Ok((report, mem))
    });
    let stats = ex.stats();
    ex.stop();
    let (feed, m) = result?;
    memory.live = m.live;
    memory.first_bars = m.first_bars;
    memory.cpu_here = m.cpu_here;
    memory.cpu_exchange = m.cpu_exchange;
    let stats = stats.context("the exchange's counters")?;
    let load = |v: &[AtomicI64]| v.iter().map(|a| a.load(Ordering::Relaxed)).filter(|&x| x != i64::MIN).collect();
    let recv = std::mem::replace(&mut *state.recv.lock().unwrap_or_else(|p| p.into_inner()), new_hist());
    let pipe = std::mem::replace(&mut *state.pipe.lock().unwrap_or_else(|p| p.into_inner()), new_hist());
    let inner = std::mem::replace(&mut *state.inner.lock().unwrap_or_else(|p| p.into_inner()), new_hist());
    Ok(Step {
        rate,
        speed,
        symbols,
        minutes,
        expected,
        strategy_bars: state.bars.load(Ordering::Acquire),
        feed,
        exchange: stats,
        recv,
        pipe,
        inner,
        recv_max: load(&state.recv_max),
        pipe_max: load(&state.pipe_max),
        negative: state.negative.load(Ordering::Relaxed),
        memory,
        stream_s: f64::from(minutes) * 60.0 / speed,
        error: None,
    })
}

fn per_symbol(after: u64, before: u64, n: u32) -> String {
    let d = after as f64 - before as f64;
    format!("{:.0} B ({:.1} MiB total)", d / f64::from(n.max(1)), d / 1048576.0)
}

/// Entry point of `ringtape-bench capacity`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let symbols = args.symbols.unwrap_or(if args.quick { 200 } else { 10_000 });
    ensure!(symbols > 0, "--symbols must be > 0");
    let rates = if args.rates.is_empty() {
        if args.quick { vec![5_000, 20_000] } else { vec![20_000, 50_000, 100_000, 200_000, 400_000] }
    } else {
        args.rates.clone()
    };
    ensure!(rates.iter().all(|&r| r > 0), "--rates: give rates > 0");
    let seconds = args.seconds.unwrap_or(if args.quick { 0.5 } else { 6.0 });
    let lead_ms = args.lead_ms.unwrap_or(if args.quick { 500 } else { 3_000 });
    let command = command_line();
    let machine = machine_info();
    let load_start = loadavg();
    let mut steps = Vec::new();
    for &rate in &rates {
        eprintln!("capacity: {} symbols at {} bars/s ...", fmt_count(u64::from(symbols)), fmt_count(rate));
        let step = run_step(symbols, rate, seconds, lead_ms, args.in_process)?;
        eprintln!(
            "capacity:   {} (pipeline lag p99 {}, growth {})",
            if step.sustained() { "sustained" } else { "NOT sustained" },
            fmt_ns(q(&step.pipe, 0.99)),
            fmt_ns(step.growth_ns().0)
        );
        steps.push(step);
    }
    let load_end = loadavg();
    let best = steps.iter().filter(|s| s.sustained()).map(|s| s.rate).max();

    let mut s = String::new();
    let _ = writeln!(
        s,
        "## capacity: {} symbols on one Alpaca connection, local exchange -> feed -> pipeline\n",
        fmt_count(u64::from(symbols))
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Command | `{command}` |");
    let _ = writeln!(
        s,
        "| Machine | {} (nproc {}, {} online CPUs), kernel {}, clocksource {} |",
        machine.cpu_model, machine.nproc, machine.online_cpus, machine.kernel, machine.clocksource
    );
    let _ = writeln!(s, "| Build | {} |", build_profile());
    let _ = writeln!(s, "| Load average (1/5/15 min) | start {load_start}; end {load_end} |");
    let _ = writeln!(
        s,
        "| Exchange | `ringtape_tools::exchange`, plain ws, {}; synthetic minute bars from 2024-01-02T14:30Z; each minute's bars of every symbol released together when the minute ends (1,000 per frame); speed = rate x 60 / symbols; ~{} s of streaming per step |",
        if args.in_process { "on threads of this process (--in-process)" } else { "in a child process" },
        seconds
    );
    let _ = writeln!(
        s,
        "| Feed / pipeline | the real Alpaca feed thread, all symbols in one subscribe, wall clock, gate grace 0, no history, ingress 65,536; pipeline threads topology (default placement), a strategy that places no order and records lags |"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| bars/s (target) | speed | burst every | bars | receive lag p50 / p99 / max | pipeline lag p50 / p99 / max | feed stamp -> strategy p50 / p99 / max | per-minute max pipeline lag, first third / last third (median) | feed backlog max | sustained |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for st in &steps {
        let (a, b) = thirds(&st.pipe_max);
        let why = if !st.delivered() {
            "no: bars lost or errors (see checks)".to_owned()
        } else if !st.no_growth() {
            let (pipe, recv) = st.growth_ns();
            let side = if recv >= st.period_ns() {
                "the receive lag grew too: the exchange, the socket or the feed's read fell behind"
            } else {
                "the receive lag did not: the feed -> strategy part fell behind"
            };
            format!("no: lag grew by {} (> one period; {side})", fmt_ns(pipe))
        } else {
            "yes".to_owned()
        };
        let _ = writeln!(
            s,
            "| {} | {:.0}x | {} | {} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {} / {} | {} | {} |",
            fmt_count(st.rate),
            st.speed,
            fmt_ns(st.period_ns()),
            fmt_count(st.expected),
            fmt_ns(q(&st.recv, 0.5)),
            fmt_ns(q(&st.recv, 0.99)),
            fmt_ns(st.recv.max() as f64),
            fmt_ns(q(&st.pipe, 0.5)),
            fmt_ns(q(&st.pipe, 0.99)),
            fmt_ns(st.pipe.max() as f64),
            fmt_ns(q(&st.inner, 0.5)),
            fmt_ns(q(&st.inner, 0.99)),
            fmt_ns(st.inner.max() as f64),
            fmt_ns(a),
            fmt_ns(b),
            fmt_count(st.feed.backlog_max as u64),
            why
        );
    }
    let _ = writeln!(
        s,
        "\n**Highest sustained message rate: {}** (of the rates tried).",
        best.map_or_else(|| "none of the rates tried".to_owned(), |b| format!("{} bars/s", fmt_count(b)))
    );
    if let Some(first) = steps.first() {
        let m = &first.memory;
        let _ = writeln!(
            s,
            "\nMemory per symbol ({} symbols, VmRSS deltas in the first step): feed live and subscribed {}; after every symbol's first bar reached the strategy {}.",
            fmt_count(u64::from(symbols)),
            per_symbol(m.live, m.before, symbols),
            per_symbol(m.first_bars, m.before, symbols),
        );
    }
    let _ = writeln!(
        s,
        "\nCPU use from the first burst's arrival to the last bar (threads above 2 %; 100 % = one core):\n"
    );
    for st in &steps {
        let _ = writeln!(
            s,
            "- {}/s: this process: {}; exchange: {}",
            fmt_count(st.rate),
            st.memory.cpu_here,
            if st.memory.cpu_exchange.is_empty() { "(in this process)" } else { &st.memory.cpu_exchange }
        );
    }
    let _ = writeln!(
        s,
        "\nReceive lag = the feed's receive stamp of the bar's frame - when the exchange's market clock reached \
         the bar's window end (wall time); pipeline lag = when the strategy saw the bar - the same reference; feed stamp -> strategy = the \
         difference, ringtape's own part (parse, gate, backlog, ingress, sequencer, shard). \
         Sustained = every bar delivered once, no parse error, no reconnect, and the per-minute maximum \
         pipeline lag of the last third of the minutes exceeds the first third's by less than one burst period."
    );
    let _ = writeln!(s, "\n### Checks\n");
    for st in &steps {
        for (ok, line) in st.checks() {
            let _ = writeln!(s, "- {} {line}", if ok { "OK" } else { "FAIL" });
        }
        if st.negative > 0 {
            let _ = writeln!(
                s,
                "- FAIL {}/s: {} bars seen before their window ended (clock mix-up)",
                fmt_count(st.rate),
                st.negative
            );
        }
    }
    print!("{s}");
    if let Some(path) = &args.json {
        let rows: Vec<serde_json::Value> = steps
            .iter()
            .map(|st| {
                let h = |h: &Histogram<u64>| serde_json::json!({"p50": q(h, 0.5), "p90": q(h, 0.9), "p99": q(h, 0.99), "p999": q(h, 0.999), "max": h.max(), "mean": h.mean()});
                serde_json::json!({
                    "rate": st.rate, "speed": st.speed, "symbols": st.symbols, "minutes": st.minutes, "expected": st.expected,
                    "strategy_bars": st.strategy_bars, "stream_s": st.stream_s,
                    "receive_lag_ns": h(&st.recv), "pipeline_lag_ns": h(&st.pipe), "feed_stamp_to_strategy_ns": h(&st.inner),
                    "per_minute_max_pipeline_lag_ns": st.pipe_max, "per_minute_max_receive_lag_ns": st.recv_max,
                    "growth_ns": st.growth_ns().0, "period_ns": st.period_ns(),
                    "feed": {"bars": st.feed.counters.bars, "released": st.feed.counters.released, "pushed": st.feed.pushed,
                        "frames": st.feed.counters.frames, "parse_errors": st.feed.counters.parse_errors,
                        "reconnects": st.feed.reconnects, "backlog_max": st.feed.backlog_max,
                        "recv_to_publish_ns": h(&st.feed.latency_ns)},
                    "exchange": serde_json::to_value(&st.exchange).unwrap_or_default(),
                    "memory": {"before": st.memory.before, "live": st.memory.live, "first_bars": st.memory.first_bars},
                    "cpu": {"here": st.memory.cpu_here, "exchange": st.memory.cpu_exchange},
                    "delivered": st.delivered(), "sustained": st.sustained(),
                })
            })
            .collect();
        let j = serde_json::json!({
            "benchmark": "capacity", "command": command,
            "machine": {"cpu_model": machine.cpu_model, "nproc": machine.nproc, "kernel": machine.kernel,
                "build": build_profile(), "loadavg_start": load_start, "loadavg_end": load_end},
            "symbols": symbols, "in_process": args.in_process, "highest_sustained_rate": best, "steps": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")
            .with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("capacity: wrote {}", path.display());
    }
    let failed: Vec<String> =
        steps.iter().filter(|st| !st.delivered() || st.negative > 0).map(|st| format!("{}/s", st.rate)).collect();
    if !failed.is_empty() {
        bail!("check(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_of_every_symbol_arrives_once_through_the_real_feed() {
        // A 2 s lead: the feed must be subscribed before the first window ends, even on a busy machine.
        let st = run_step(50, 2_000, 0.3, 2_000, true).unwrap();
        for (ok, line) in st.checks() {
            assert!(ok, "{line}");
        }
        assert_eq!(st.negative, 0);
        assert_eq!(st.recv.len(), st.expected);
        assert!(st.memory.before > 0 && st.memory.first_bars > 0);
    }

    #[test]
    fn synth_tape_has_every_minute_of_every_symbol() {
        let t = synth_tape(3, 4).unwrap();
        assert_eq!(t.symbols.len(), 3);
        assert!(t.symbols.iter().all(|s| s.minute.len() == 4));
        assert_eq!(t.first_ns(), Some(T0_NS));
    }
}
