//! `latency`: per-event latency from sequencer intake to the venue, through the real pipeline.
//!
//! **Path measured.** A paced source emits one bar every `1/rate` seconds. When the sequencer
//! takes a bar (the source's `next()` call that returns it) the bar's `ts_recv_ns` is stamped with
//! the wall clock (`SystemTime::now()`, ns since the epoch). A strategy submits a market order for
//! one share on every bar (alternating buy and sell, so the position stays 0 or 1); the shard
//! places it at the bar's `ts_recv_ns`. Risk accepts it (default limits: none), execution sends
//! it to the venue: a timing venue wrapping `SimVenue` behind `engine::venue::Venue`, whose
//! `submit` records `SystemTime::now() - placement time` in an HdrHistogram (ns, 3 significant
//! figures) and then hands the order to the simulated venue. So one sample is
//! sequencer intake -> (ring) -> shard -> strategy -> (queue) -> risk -> execution -> venue,
//! including one clock read (its cost is reported).
//!
//! **Bars.** Each bar starts at its receive time (`ts_event_ns = ts_recv_ns`, 1-minute interval
//! field, flat price), so a market order placed on bar *i* fills on the symbol's next bar (the
//! venue's no-look-ahead rule) and no order stays working. `pipeline.timer_ms = 0` (no clock
//! ticks). The source does not busy-wait: before a bar is due it returns `Idle` and the
//! sequencer waits with its own wait strategy; a bar taken late is stamped when taken (the
//! lateness is reported apart and is not part of the latency).
//!
//! **Variants** (`--variants`): `inline` (every stage on one thread, pinned to the last core:
//! the no-hand-off baseline), `threads` (the default config: on a machine with fewer cores than
//! stages, unpinned with the backoff wait), `threads-pinned` (`[pipeline.cores]` sequencer and
//! recorder on core 0, shard and risk on core 1, wait `--pinned-wait`, default `yield`).
//! Each variant runs at every rate of `--rates` for `--seconds`; the first `--warmup-events`
//! samples of each run are not recorded.
//!
//! **Checks**: every bar produced exactly one venue submit (no order rejected or lost).
#![allow(clippy::disallowed_methods)] // reading the wall clock is the measurement

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use engine::pipeline::config::{EngineConfig, Topology, WaitKind};
use engine::pipeline::{Next, RunOutput, RunSpec, Source};
use engine::records::{Bar, Event, ExecReport, Order, OrderId, PX_SCALE, Reason, Side, SymbolId};
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use engine::venue::{SimVenue, Venue, VenueConfig};
use hdrhistogram::Histogram;

use crate::common::{build_profile, command_line, fmt_count, fmt_ns, loadavg, machine_info};

/// Largest latency the histograms hold (60 s).
pub(crate) const HIST_MAX_NS: u64 = 60_000_000_000;

/// Options of `ringtape-bench latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bars per second, comma-separated
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1000,100000")]
    pub rates: Vec<u64>,
    /// Seconds per run (events = rate x seconds) [default: 10; 0.2 with --quick]
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Variants, comma-separated: inline, threads, threads-pinned
    #[arg(long, value_name = "V,..", value_delimiter = ',', default_value = "inline,threads,threads-pinned")]
    pub variants: Vec<String>,
    /// Wait strategy of the threads-pinned variant (spin, yield, backoff)
    #[arg(long, default_value = "yield")]
    pub pinned_wait: String,
    /// Symbols the bars rotate over
    #[arg(long, default_value_t = 1)]
    pub symbols: u32,
    /// Samples not recorded at the start of each run [default: 1000; 20 with --quick]
    #[arg(long)]
    pub warmup_events: Option<u64>,
    /// Short runs for smoke tests (0.2 s per run)
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Wall clock, ns since the Unix epoch.
#[inline]
pub(crate) fn wall_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// What a run hands back from inside the pipeline (filled when the venue and source drop).
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) latency: Option<Histogram<u64>>,
    pub(crate) submits: u64,
    pub(crate) last_submit_ns: i64,
    lateness: Option<Histogram<u64>>,
    emitted: u64,
    first_ns: i64,
    last_ns: i64,
}

pub(crate) type Shared = Arc<Mutex<Sink>>;

pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// Emits `n` bars paced at a fixed rate, stamped with the wall clock when taken.
#[derive(Debug)]
struct PacedBars {
    n: u64,
    emitted: u64,
    period_ns: f64,
    start_ns: i64,
    last_ns: i64,
    symbols: u32,
    lateness: Histogram<u64>,
    sink: Shared,
}

impl PacedBars {
    fn new(rate: u64, n: u64, symbols: u32, sink: Shared) -> Self {
        PacedBars {
            n,
            emitted: 0,
            period_ns: 1e9 / rate as f64,
            start_ns: 0,
            last_ns: 0,
            symbols: symbols.max(1),
            lateness: new_hist(),
            sink,
        }
    }
}

impl Source for PacedBars {
    #[inline]
    fn next(&mut self) -> Next {
        if self.emitted == self.n {
            return Next::End;
        }
        let now = wall_ns();
        if self.start_ns == 0 {
            self.start_ns = now;
        }
        let due = self.start_ns + (self.emitted as f64 * self.period_ns) as i64;
        if now < due {
            return Next::Idle;
        }
        // Stamped now, when the sequencer takes it; never earlier than the previous bar.
        let ts = now.max(self.last_ns);
        self.last_ns = ts;
        self.lateness.saturating_record((ts - due).max(1) as u64);
        let px = 100 * PX_SCALE;
        let bar =
            Bar { ts_event_ns: ts, open_px_e9: px, high_px_e9: px, low_px_e9: px, close_px_e9: px, volume: 1_000_000 };
        let sym = SymbolId((self.emitted % u64::from(self.symbols)) as u32);
        self.emitted += 1;
        Next::Event(Event::bar(sym, &bar, 60, ts))
    }
}

impl Drop for PacedBars {
    fn drop(&mut self) {
        let mut s = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        s.lateness = Some(std::mem::replace(&mut self.lateness, new_hist()));
        s.emitted = self.emitted;
        s.first_ns = self.start_ns;
        s.last_ns = self.last_ns;
    }
}

/// A market order for one share on every bar, alternating buy and sell.
#[derive(Debug, Default)]
pub(crate) struct EveryBar {
    buy: bool,
}

impl Strategy for EveryBar {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _bar: &Bar) {
        self.buy = !self.buy;
        ctx.submit(OrderRequest::market(if self.buy { Side::Buy } else { Side::Sell }, 1));
    }
}

#[derive(Debug)]
pub(crate) struct EveryBarFactory;

impl StrategyFactory for EveryBarFactory {
    fn name(&self) -> &str {
        "every_bar"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(EveryBar::default())
    }
}

/// `SimVenue` that records `now - placement time` on every submit.
#[derive(Debug)]
pub(crate) struct TimingVenue {
    inner: SimVenue,
    hist: Histogram<u64>,
    skip: u64,
    submits: u64,
    last_submit_ns: i64,
    sink: Shared,
    /// Submits so far, readable from other threads while the run goes on (tick-to-trade's
    /// server waits on it).
    live: Option<Arc<AtomicU64>>,
    /// Each symbol's last bar start, when orders are handed to `SimVenue` as placed at the start
    /// of the bar that triggered them (see [`TimingVenue::place_at_bar_start`]).
    bar_start: Option<Vec<i64>>,
}

impl TimingVenue {
    /// A timing wrapper around `inner`: the first `skip` submits are not recorded.
    pub(crate) fn new(inner: SimVenue, skip: u64, sink: Shared) -> Self {
        TimingVenue { inner, hist: new_hist(), skip, submits: 0, last_submit_ns: 0, sink, live: None, bar_start: None }
    }

    /// Count submits into `counter` as they happen.
    pub(crate) fn live_counter(mut self, counter: Arc<AtomicU64>) -> Self {
        self.live = Some(counter);
        self
    }

    /// Hand orders to the simulated venue as placed at the start of their symbol's last bar (the
    /// bar that triggered them) instead of at their real placement time. For bars whose windows
    /// are long past (a feed replaying old minutes): placed "now", a market order would never
    /// fill (the venue fills only on bars starting at or after the placement) and every symbol's
    /// book would grow by one working order per bar. The latency sample still uses the real
    /// placement time.
    pub(crate) fn place_at_bar_start(mut self) -> Self {
        self.bar_start = Some(Vec::new());
        self
    }
}

impl Drop for TimingVenue {
    fn drop(&mut self) {
        let mut s = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        s.latency = Some(std::mem::replace(&mut self.hist, new_hist()));
        s.submits = self.submits;
        s.last_submit_ns = self.last_submit_ns;
    }
}

#[allow(clippy::too_many_arguments)] // the trait's replace
impl Venue for TimingVenue {
    fn name(&self) -> &'static str {
        "sim+timing"
    }
    fn simulated(&self) -> bool {
        self.inner.simulated()
    }
    fn ensure_symbols(&mut self, n: usize) {
        self.inner.ensure_symbols(n);
    }
    #[inline]
    fn submit(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        let now = wall_ns();
        self.submits += 1;
        self.last_submit_ns = now;
        if self.submits > self.skip {
            self.hist.saturating_record((now - ts_ns).max(1) as u64);
        }
        if let Some(c) = &self.live {
            c.store(self.submits, Ordering::Release);
        }
        let placed = match &self.bar_start {
            Some(starts) => starts.get(order.symbol.0 as usize).copied().unwrap_or(ts_ns),
            None => ts_ns,
        };
        self.inner.submit(order, placed, out);
    }
    fn cancel(&mut self, id: OrderId, symbol: SymbolId, ts_ns: i64, reason: Reason, out: &mut Vec<ExecReport>) {
        self.inner.cancel(id, symbol, ts_ns, reason, out);
    }
    fn replace(
        &mut self,
        id: OrderId,
        symbol: SymbolId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
        out: &mut Vec<ExecReport>,
    ) {
        self.inner.replace(id, symbol, qty, limit_px_e9, stop_px_e9, ts_ns, out);
    }
    fn on_bar(&mut self, symbol: SymbolId, bar: &Bar, out: &mut Vec<ExecReport>) {
        if let Some(starts) = &mut self.bar_start {
            let i = symbol.0 as usize;
            if starts.len() <= i {
                starts.resize(i + 1, i64::MIN);
            }
            starts[i] = bar.ts_event_ns;
        }
        self.inner.on_bar(symbol, bar, out);
    }
    fn on_timer(&mut self, ts_ns: i64, out: &mut Vec<ExecReport>) {
        self.inner.on_timer(ts_ns, out);
    }
    fn has_working(&self, symbol: SymbolId) -> bool {
        self.inner.has_working(symbol)
    }
    fn close_out(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        self.inner.close_out(order, ts_ns, out);
    }
}

/// One variant: how the pipeline is configured, and where the calling thread runs.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    cfg: EngineConfig,
    /// Core for the thread that calls `run` (inline: it runs every stage).
    caller_core: Option<usize>,
}

fn variants(args: &Args, cores: &[usize]) -> anyhow::Result<Vec<Variant>> {
    let mut base = EngineConfig::default();
    base.pipeline.timer_ms = 0;
    let pinned_wait = match args.pinned_wait.as_str() {
        "spin" => WaitKind::Spin,
        "yield" => WaitKind::Yield,
        "backoff" => WaitKind::Backoff,
        w => bail!("--pinned-wait {w}: use spin, yield or backoff"),
    };
    let mut out = Vec::new();
    for v in &args.variants {
        let mut cfg = base.clone();
        let mut caller_core = None;
        match v.as_str() {
            "inline" => {
                cfg.pipeline.topology = Topology::Inline;
                caller_core = cores.last().copied();
            }
            "threads" => cfg.pipeline.topology = Topology::Threads,
            "threads-pinned" => {
                if cores.len() < 2 {
                    eprintln!(
                        "latency: skipping threads-pinned: it needs 2 cores, this process may use {}",
                        cores.len()
                    );
                    continue;
                }
                cfg.pipeline.topology = Topology::Threads;
                cfg.pipeline.wait = pinned_wait;
                let (a, b) = (cores[0], cores[1]);
                cfg.pipeline.cores.sequencer = Some(a);
                cfg.pipeline.cores.journal = Some(a);
                cfg.pipeline.cores.shards = vec![b];
                cfg.pipeline.cores.risk = Some(b);
            }
            other => bail!("--variants: unknown variant {other:?} (use inline, threads, threads-pinned)"),
        }
        out.push(Variant { name: v.clone(), cfg, caller_core });
    }
    Ok(out)
}

/// The outcome of one (variant, rate) run.
#[derive(Debug)]
struct Measured {
    variant: String,
    rate: u64,
    events: u64,
    latency: Histogram<u64>,
    lateness: Histogram<u64>,
    submits: u64,
    achieved_rate: f64,
    /// Submits / (last submit - first intake): what the pipeline kept up with.
    served_rate: f64,
    accepted: u64,
    bars: u64,
    placement: String,
}

fn run_one(v: &Variant, rate: u64, events: u64, symbols: u32, skip: u64) -> anyhow::Result<Measured> {
    let mut table = SymbolTable::new();
    for i in 0..symbols.max(1) {
        table.intern(&format!("LAT{i:03}")).context("symbol name")?;
    }
    let sink: Shared = Arc::new(Mutex::new(Sink::default()));
    let venue = TimingVenue::new(SimVenue::new(&VenueConfig::default(), table.len()), skip, sink.clone());
    let source = PacedBars::new(rate, events, symbols, sink.clone());
    let cfg = v.cfg.clone();
    let caller_core = v.caller_core;
    // A fresh thread per run: pinning it for `inline` must not leak into later runs' threads
    // (threads inherit their creator's affinity).
    let out: RunOutput = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("rt-latency".into())
            .spawn_scoped(s, || {
                if let Some(c) = caller_core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                let spec = RunSpec::new(&cfg, &table, &EveryBarFactory).venue(Box::new(venue));
                engine::pipeline::run(spec, source, &mut |_| {})
            })
            .expect("spawn the latency run thread")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })?;
    let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
    let latency = sink.latency.take().context("the timing venue did not report")?;
    let lateness = sink.lateness.take().context("the source did not report")?;
    let span_s = (sink.last_ns - sink.first_ns) as f64 / 1e9;
    let placement = if out.placement.is_empty() {
        format!(
            "all stages on the calling thread, {}",
            caller_core.map_or_else(|| "unpinned".to_owned(), |c| format!("pinned to core {c}"))
        )
    } else {
        out.placement
            .iter()
            .map(|(n, c, w)| format!("{n} {} {w}", c.map_or_else(|| "unpinned".into(), |c| format!("core {c}"))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(Measured {
        variant: v.name.clone(),
        rate,
        events: sink.emitted,
        latency,
        lateness,
        submits: sink.submits,
        achieved_rate: if span_s > 0.0 { (sink.emitted.saturating_sub(1)) as f64 / span_s } else { f64::NAN },
        served_rate: {
            let t = (sink.last_submit_ns - sink.first_ns) as f64 / 1e9;
            if t > 0.0 { (sink.submits.saturating_sub(1)) as f64 / t } else { f64::NAN }
        },
        accepted: out.accepted,
        bars: out.bars,
        placement,
    })
}

/// Mean cost of one `wall_ns()` call (each sample pays one).
pub(crate) fn clock_cost_ns() -> f64 {
    const CALLS: u32 = 1_000_000;
    let t = Instant::now();
    let mut acc = 0i64;
    for _ in 0..CALLS {
        acc = acc.wrapping_add(wall_ns());
    }
    std::hint::black_box(acc);
    t.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

pub(crate) fn q(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_quantile(p) as f64
}

/// Entry point of `ringtape-bench latency`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(if args.quick { 0.2 } else { 10.0 });
    ensure!(seconds > 0.0, "--seconds must be > 0");
    ensure!(!args.rates.is_empty() && args.rates.iter().all(|&r| r > 0), "--rates: give rates > 0");
    let skip = args.warmup_events.unwrap_or(if args.quick { 20 } else { 1000 });
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let vars = variants(args, &cores)?;
    let command = command_line();
    let machine = machine_info();
    let load_start = loadavg();
    let clock_ns = clock_cost_ns();
    let mut results = Vec::new();
    for v in &vars {
        for &rate in &args.rates {
            let events = ((rate as f64 * seconds).round() as u64).max(skip + 1);
            eprintln!("latency: {} at {} events/s, {} events ...", v.name, fmt_count(rate), fmt_count(events));
            results.push(run_one(v, rate, events, args.symbols, skip)?);
        }
    }
    let load_end = loadavg();

    let mut s = String::new();
    let _ = writeln!(s, "## latency: sequencer intake -> shard -> risk -> execution -> venue\n");
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
        "| Input | paced bars, {} symbol(s), {} s per run, ts_recv = wall clock at intake; first {} samples of each run not recorded; timer_ms = 0 |",
        args.symbols, seconds, skip
    );
    let _ = writeln!(
        s,
        "| Strategy / venue | market order (1 share, alternating side) on every bar; SimVenue behind a timing wrapper; default risk limits (none) |"
    );
    let _ =
        writeln!(s, "| Clock | SystemTime::now() costs {clock_ns:.1} ns per read (one read per sample is included) |");
    for v in &vars {
        if let Some(m) = results.iter().find(|m| m.variant == v.name) {
            let _ = writeln!(s, "| Placement, {} | {} |", v.name, m.placement);
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Variant | Target events/s | Intake events/s | Served events/s | Samples | p50 | p90 | p99 | p99.9 | p99.99 | max | mean | p50 / inline | p99 / inline | intake lateness p50 / p99 |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for m in &results {
        let base = results.iter().find(|b| b.variant == "inline" && b.rate == m.rate);
        let rel = |p: f64| {
            base.map_or_else(
                || "-".to_owned(),
                |b| match q(&m.latency, p) / q(&b.latency, p).max(1.0) {
                    r if r >= 100.0 => format!("{r:.0}x"),
                    r => format!("{r:.1}x"),
                },
            )
        };
        let h = &m.latency;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            m.variant,
            fmt_count(m.rate),
            fmt_count(m.achieved_rate.round() as u64),
            fmt_count(m.served_rate.round() as u64),
            fmt_count(h.len()),
            fmt_ns(q(h, 0.5)),
            fmt_ns(q(h, 0.9)),
            fmt_ns(q(h, 0.99)),
            fmt_ns(q(h, 0.999)),
            fmt_ns(q(h, 0.9999)),
            fmt_ns(h.max() as f64),
            fmt_ns(h.mean()),
            rel(0.5),
            rel(0.99),
            fmt_ns(q(&m.lateness, 0.5)),
            fmt_ns(q(&m.lateness, 0.99)),
        );
    }
    let _ = writeln!(
        s,
        "\nLatency = venue submit time - bar intake time (both SystemTime::now()), HdrHistogram with 3 \
         significant figures. Intake lateness = when the sequencer took a bar - when it was due (the \
         sequencer's own waiting; not part of the latency). Intake events/s: bars taken / (last intake - \
         first intake); served events/s: venue submits / (last submit - first intake): below the \
         intake rate, the pipeline did not keep up and the latency is mostly queueing. \"/ inline\": \
         ratio to the inline run at the same rate."
    );
    let _ = writeln!(s, "\n### Checks\n");
    let mut failed = Vec::new();
    for m in &results {
        let ok = m.submits == m.events && m.accepted == m.events && m.bars == m.events;
        if !ok {
            failed.push(format!("{} {}", m.variant, m.rate));
        }
        let _ = writeln!(
            s,
            "- {} {} at {}/s: {} bars in, {} accepted by risk, {} venue submits",
            if ok { "OK" } else { "FAIL" },
            m.variant,
            fmt_count(m.rate),
            fmt_count(m.events),
            fmt_count(m.accepted),
            fmt_count(m.submits)
        );
    }
    print!("{s}");

    if let Some(path) = &args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|m| {
                let h = &m.latency;
                serde_json::json!({
                    "variant": m.variant, "rate": m.rate, "achieved_rate": m.achieved_rate, "events": m.events,
                    "samples": h.len(), "placement": m.placement,
                    "latency_ns": {"p50": q(h, 0.5), "p90": q(h, 0.9), "p99": q(h, 0.99), "p999": q(h, 0.999),
                        "p9999": q(h, 0.9999), "max": h.max(), "min": h.min(), "mean": h.mean()},
                    "served_rate": m.served_rate, "intake_lateness_ns": {"p50": q(&m.lateness, 0.5), "p99": q(&m.lateness, 0.99), "max": m.lateness.max()},
                    "submits": m.submits, "accepted": m.accepted,
                })
            })
            .collect();
        let j = serde_json::json!({
            "benchmark": "latency",
            "command": command,
            "machine": {"cpu_model": machine.cpu_model, "nproc": machine.nproc, "online_cpus": machine.online_cpus,
                "kernel": machine.kernel, "clocksource": machine.clocksource, "build": build_profile(),
                "loadavg_start": load_start, "loadavg_end": load_end},
            "clock_read_ns": clock_ns,
            "seconds": seconds, "warmup_events": skip, "symbols": args.symbols,
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")
            .with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("latency: wrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!("check(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_reaches_the_venue_on_both_topologies() {
        let args = Args {
            rates: vec![20_000],
            seconds: Some(0.01),
            variants: vec!["inline".into(), "threads".into()],
            pinned_wait: "yield".into(),
            symbols: 2,
            warmup_events: Some(10),
            quick: true,
            json: None,
        };
        for v in variants(&args, &[0]).unwrap() {
            let m = run_one(&v, 20_000, 200, 2, 10).unwrap();
            assert_eq!((m.events, m.submits, m.accepted, m.bars), (200, 200, 200, 200), "{}", v.name);
            assert_eq!(m.latency.len(), 190, "{}", v.name);
        }
    }
}
