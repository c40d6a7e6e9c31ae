//! `many`: many small backtests back to back in one process (parameter sweeps, Monte Carlo), and
//! the fixed cost of building and tearing down one run.
//!
//! **Data.** One bar directory opened once (`--bars-dir`, default `target/bench-data/many1x250`:
//! `ringtape synth --symbols 1 --days 250 --interval 1m --seed 1`, 97,500 one-minute bars,
//! generated on first use; `--quick`: 1 symbol x 20 days in `target/bench-data/many1x20`).
//!
//! **What is timed.**
//! * **many**: `--runs` (default 1,000) calls of `engine::pipeline::run` over
//!   `BarReplay::zero_copy(set.merged())` of the whole set, back to back, on the `inline`
//!   topology (`EngineConfig::default()` with `pipeline.topology = "inline"`, no journal files,
//!   strategy `--strategy`, default parameters). Each call is timed with `Instant` (it includes
//!   building the stages, strategies, venue and recorder, and dropping them); the total is the
//!   time of the whole loop. Aggregate bars/s = runs x bars / total.
//! * **1-bar runs**: the same call with a source that stops after the first bar, `--tiny-runs`
//!   times (default 10,000) on `inline`: the per-run build/teardown cost. `--tiny-threads-runs`
//!   (default 100) more on the `threads` topology (default placement) show the cost of spawning
//!   and joining the stage threads.
//! * **baseline**: the plain scan of the same bars (sum of closes, one thread), `--runs` times:
//!   the physical ceiling of one core reading the bars.
//!
//! Per-run times go into HdrHistograms (ns, 3 significant figures). `--warmup` runs of each kind
//! (default 10) come first and are not recorded. With `--pin CORE` the calling thread (which runs
//! the whole inline pipeline) is pinned to that core; the threads-topology runs start from an
//! unpinned thread (threads inherit their creator's affinity).
//!
//! **Checks**: every recorded run gives the same totals (bars, fills, trades, wins, net PnL,
//! commissions) as the first; every run saw every bar (1-bar runs: exactly one); no
//! strategy fault, bad event or unknown-order report.
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs is the point here

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{BarReplay, Next, RunOutput, RunSpec, Source};
use engine::strategy::StrategyFactory;
use hdrhistogram::Histogram;

use crate::backtest::{DataSize, ScanSum, fmt_ms, has_bar_files, load_now, plain_scan, ringtape_binary, synth};
use crate::common::{build_profile, command_line, fmt_count, fmt_ns, machine_info};

const FULL_SIZE: DataSize = DataSize { symbols: 1, days: 250 };
const QUICK_SIZE: DataSize = DataSize { symbols: 1, days: 20 };
/// Largest per-run time the histograms hold (100 s).
const HIST_MAX_NS: u64 = 100_000_000_000;

/// Options of `ringtape-bench many`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bar directory (*.rtb), generated with `ringtape synth` when it holds no .rtb file
    /// [default: target/bench-data/many1x250; target/bench-data/many1x20 with --quick]
    #[arg(long, value_name = "DIR")]
    pub bars_dir: Option<PathBuf>,
    /// Small sizes for smoke runs: 1 symbol x 20 days, 20 runs, 1,000 1-bar runs, 10 on threads
    #[arg(long)]
    pub quick: bool,
    /// Full backtests of the set, back to back [default: 1000; 20 with --quick]
    #[arg(long)]
    pub runs: Option<usize>,
    /// 1-bar backtests on the inline topology [default: 10000; 1000 with --quick]
    #[arg(long)]
    pub tiny_runs: Option<usize>,
    /// 1-bar backtests on the threads topology [default: 100; 10 with --quick]
    #[arg(long)]
    pub tiny_threads_runs: Option<usize>,
    /// Unrecorded runs of each kind first
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Strategy (built-in name, default parameters)
    #[arg(long, default_value = "sma_cross")]
    pub strategy: String,
    /// Pin the calling thread (which runs the inline pipeline) to this core
    #[arg(long, value_name = "CORE")]
    pub pin: Option<usize>,
    /// The `ringtape` binary, for generating the data [default: `ringtape` next to this executable]
    #[arg(long, value_name = "PATH")]
    pub ringtape: Option<PathBuf>,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A source that ends after `left` inputs of `inner`.
#[derive(Debug)]
struct Take<S> {
    inner: S,
    left: u64,
}

impl<S: Source> Source for Take<S> {
    #[inline]
    fn next(&mut self) -> Next {
        if self.left == 0 {
            return Next::End;
        }
        let n = self.inner.next();
        if matches!(n, Next::Event(_) | Next::BarRef { .. }) {
            self.left -= 1;
        }
        n
    }
    fn by_reference(&self) -> bool {
        self.inner.by_reference()
    }
}

/// The deterministic outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Totals {
    bars: u64,
    fills: u64,
    trades: u64,
    wins: u64,
    net_e9: i128,
    commission_e9: i128,
}

impl Totals {
    fn of(out: &RunOutput) -> Self {
        let (fills, trades, wins, net_e9, commission_e9) = out.positions.totals();
        Totals { bars: out.bars, fills, trades, wins, net_e9, commission_e9 }
    }
}

fn run_once(
    set: &BarSet,
    cfg: &EngineConfig,
    factory: &dyn StrategyFactory,
    limit: Option<u64>,
) -> anyhow::Result<RunOutput> {
    let spec = RunSpec::new(cfg, set.symbols(), factory).bars(set);
    let src = BarReplay::zero_copy(set.merged());
    let out = match limit {
        Some(n) => engine::pipeline::run(spec, Take { inner: src, left: n }, &mut |_| {}),
        None => engine::pipeline::run(spec, src, &mut |_| {}),
    };
    Ok(out?)
}

/// One kind of repeated run and what it measured.
#[derive(Debug)]
struct Series {
    key: &'static str,
    label: String,
    topology: Option<Topology>,
    /// Bars per run.
    bars: u64,
    runs: usize,
    /// The whole loop of recorded runs.
    total_s: f64,
    hist: Histogram<u64>,
    totals: Option<Totals>,
    /// Runs whose totals differ from the first.
    differing: usize,
    /// Runs that saw a different number of bars than expected.
    short: usize,
    /// strategy_faults + bad_events + unknown_order_reports over all runs.
    bad_counters: u64,
    placement: String,
}

/// One kind of repeated run.
#[derive(Debug)]
struct Kind {
    key: &'static str,
    label: String,
    topology: Topology,
    /// Stop after this many bars (None: the whole set).
    limit: Option<u64>,
    runs: usize,
    warmup: usize,
}

fn series(kind: &Kind, set: &BarSet, factory: &dyn StrategyFactory) -> anyhow::Result<Series> {
    let Kind { key, ref label, topology, limit, runs, warmup } = *kind;
    let label = label.clone();
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = topology;
    let expect_bars = limit.unwrap_or(set.total_bars()).min(set.total_bars());
    let mut s = Series {
        key,
        label,
        topology: Some(topology),
        bars: expect_bars,
        runs,
        total_s: 0.0,
        hist: Histogram::new_with_bounds(1, HIST_MAX_NS, 3)?,
        totals: None,
        differing: 0,
        short: 0,
        bad_counters: 0,
        placement: String::new(),
    };
    for _ in 0..warmup {
        run_once(set, &cfg, factory, limit)?;
    }
    eprintln!("many: {key}: {runs} runs ...");
    let t_all = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let out = run_once(set, &cfg, factory, limit)?;
        let ns = t.elapsed().as_nanos() as u64;
        s.hist.saturating_record(ns.max(1));
        let tot = Totals::of(&out);
        match s.totals {
            None => {
                s.totals = Some(tot);
                s.placement = if out.placement.is_empty() {
                    format!("{} (calling thread)", out.topology.as_str())
                } else {
                    out.placement
                        .iter()
                        .map(|(n, c, w)| {
                            format!("{n} {} {w}", c.map_or_else(|| "unpinned".into(), |c| format!("core {c}")))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
            }
            Some(first) if first != tot => s.differing += 1,
            Some(_) => {}
        }
        if out.bars != expect_bars {
            s.short += 1;
        }
        let c = &out.counters;
        s.bad_counters += c.strategy_faults + c.bad_events + c.unknown_order_reports;
    }
    s.total_s = t_all.elapsed().as_secs_f64();
    Ok(s)
}

fn scan_series(set: &BarSet, runs: usize, warmup: usize) -> anyhow::Result<(Series, ScanSum)> {
    let mut hist = Histogram::new_with_bounds(1, HIST_MAX_NS, 3)?;
    let mut last = plain_scan(set);
    for _ in 0..warmup {
        last = plain_scan(set);
    }
    let t_all = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        last = plain_scan(set);
        hist.saturating_record((t.elapsed().as_nanos() as u64).max(1));
    }
    let total_s = t_all.elapsed().as_secs_f64();
    let s = Series {
        key: "plain_scan",
        label: "baseline: plain scan of the same bars (1 thread)".into(),
        topology: None,
        bars: set.total_bars(),
        runs,
        total_s,
        hist,
        totals: None,
        differing: 0,
        short: usize::from(last.bars != set.total_bars()),
        bad_counters: 0,
        placement: "calling thread".into(),
    };
    Ok((s, last))
}

/// Entry point of `ringtape-bench many`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let size = if args.quick { QUICK_SIZE } else { FULL_SIZE };
    let runs = args.runs.unwrap_or(if args.quick { 20 } else { 1000 });
    let tiny = args.tiny_runs.unwrap_or(if args.quick { 1000 } else { 10_000 });
    let tiny_threads = args.tiny_threads_runs.unwrap_or(if args.quick { 10 } else { 100 });
    ensure!(runs > 0, "--runs must be > 0");
    let factory =
        strategies::factory(&args.strategy).map_err(|e| anyhow::anyhow!("--strategy {}: {e}", args.strategy))?;
    let dir = args
        .bars_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/bench-data/many{}x{}", size.symbols, size.days)));
    let generated_s = if has_bar_files(&dir) {
        None
    } else {
        let ringtape = ringtape_binary(args.ringtape.as_deref())?;
        Some(synth(&ringtape, &dir, size)?)
    };
    let command = command_line();
    let machine = machine_info();
    let pin = match args.pin {
        Some(core) => {
            let ids = core_affinity::get_core_ids().unwrap_or_default();
            let Some(id) = ids.into_iter().find(|c| c.id == core) else { bail!("--pin {core}: no such core here") };
            Some(id)
        }
        None => None,
    };
    let load_start = load_now();
    let (open_s, set) = crate::backtest::timed(|| BarSet::open_dir(&dir, 2));
    let set = set.with_context(|| format!("opening {}", dir.display()))?;
    let bars = set.total_bars();

    // The single-threaded work runs on a thread of its own, pinned with --pin; the threads
    // topology runs from this (unpinned) thread, so its stage threads do not inherit the pin.
    let factory = factory.as_ref();
    let set = &set;
    let inline =
        |key, label, limit, runs| Kind { key, label, topology: Topology::Inline, limit, runs, warmup: args.warmup };
    let (scan, scan_sum, full, one) = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<_> {
            if let Some(id) = pin {
                ensure!(core_affinity::set_for_current(id), "--pin {}: pinning failed", id.id);
            }
            let (scan, scan_sum) = scan_series(set, runs, args.warmup)?;
            let label = format!("full backtest ({} bars), inline", fmt_count(bars));
            let full = series(&inline("many", label, None, runs), set, factory)?;
            let one = series(&inline("tiny_inline", "1-bar backtest, inline".into(), Some(1), tiny), set, factory)?;
            Ok((scan, scan_sum, full, one))
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })?;
    let mut all = vec![scan, full, one];
    if tiny_threads > 0 {
        let kind = Kind {
            key: "tiny_threads",
            label: "1-bar backtest, threads (default placement)".into(),
            topology: Topology::Threads,
            limit: Some(1),
            runs: tiny_threads,
            warmup: args.warmup.min(3),
        };
        all.push(series(&kind, set, factory)?);
    }
    let load_end = load_now();

    // Report.
    let mut s = String::new();
    let _ = writeln!(s, "## many: back-to-back backtests in one process\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Command | `{command}` |");
    let _ = writeln!(
        s,
        "| Machine | {} (nproc {}, {} online CPUs in /proc/cpuinfo), kernel {} |",
        machine.cpu_model, machine.nproc, machine.online_cpus, machine.kernel
    );
    let _ = writeln!(s, "| Build | {} |", build_profile());
    let _ = writeln!(s, "| Load average (1/5/15 min) | start {}; end {} |", load_start.text(), load_end.text());
    let _ = writeln!(
        s,
        "| Data | `{}`: {} symbol(s), {} bars{}; opened once (open+validate {} ms) |",
        dir.display(),
        set.symbols().len(),
        fmt_count(bars),
        generated_s.map_or_else(|| " (existing)".to_owned(), |t| format!(" (generated now in {t:.1} s)")),
        fmt_ms(open_s)
    );
    let _ = writeln!(
        s,
        "| Runs | strategy {} (default parameters), EngineConfig::default() + topology, no journal; {} warm-up runs of each kind not recorded; the thread running the baseline and the inline runs: {}; threads-topology runs start from an unpinned thread |",
        args.strategy,
        args.warmup,
        args.pin.map_or_else(|| "unpinned".to_owned(), |c| format!("pinned to core {c}"))
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| What | Runs | Bars/run | Total s | Aggregate Mbars/s | Per run p50 | p99 | p99.9 | max | mean | vs plain scan |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let scan_rate = all[0].bars as f64 * all[0].runs as f64 / all[0].total_s;
    for x in &all {
        let rate = x.bars as f64 * x.runs as f64 / x.total_s;
        let h = &x.hist;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {:.2} | {} | {} | {} | {} | {} | {:.3}x |",
            x.label,
            fmt_count(x.runs as u64),
            fmt_count(x.bars),
            x.total_s,
            rate / 1e6,
            fmt_ns(h.value_at_quantile(0.5) as f64),
            fmt_ns(h.value_at_quantile(0.99) as f64),
            fmt_ns(h.value_at_quantile(0.999) as f64),
            fmt_ns(h.max() as f64),
            fmt_ns(h.mean()),
            rate / scan_rate
        );
    }
    let (f, t) = (&all[1], &all[2]);
    let fixed = t.hist.value_at_quantile(0.5) as f64;
    let per_run = f.hist.value_at_quantile(0.5) as f64;
    let _ = writeln!(
        s,
        "\nPer-run times from HdrHistogram (3 significant figures). The 1-bar inline run's median ({}) \
         is the fixed cost of building and dropping one run; it is {:.3}% of a full run's median ({}). \
         Without it, the full runs would go at {:.2} Mbars/s.",
        fmt_ns(fixed),
        100.0 * fixed / per_run,
        fmt_ns(per_run),
        f.bars as f64 / ((per_run - fixed).max(1.0) * 1e-9) / 1e6
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "### Checks\n");
    let mut failed = Vec::new();
    for x in &all {
        let ok = x.differing == 0 && x.short == 0 && x.bad_counters == 0;
        if !ok {
            failed.push(x.key);
        }
        let detail = match x.totals {
            Some(tt) => format!(
                "{} runs ({}): each {} bars, {} fills, {} trades, net {} e-9 USD; {} differing, {} with other bar counts, {} bad counters",
                fmt_count(x.runs as u64),
                x.placement,
                fmt_count(tt.bars),
                fmt_count(tt.fills),
                fmt_count(tt.trades),
                tt.net_e9,
                x.differing,
                x.short,
                x.bad_counters
            ),
            None => format!(
                "{} scans, each {} bars (close sum {}); {} with other bar counts",
                fmt_count(x.runs as u64),
                fmt_count(scan_sum.bars),
                scan_sum.close_sum,
                x.short
            ),
        };
        let _ = writeln!(s, "- {} {}: {detail}", if ok { "OK" } else { "FAIL" }, x.label);
    }
    print!("{s}");

    if let Some(path) = &args.json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|x| {
                let h = &x.hist;
                serde_json::json!({
                    "key": x.key, "label": x.label, "topology": x.topology.map(|t| t.as_str()),
                    "runs": x.runs, "bars_per_run": x.bars, "total_s": x.total_s,
                    "bars_per_s": x.bars as f64 * x.runs as f64 / x.total_s,
                    "per_run_ns": {"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99),
                        "p999": h.value_at_quantile(0.999), "max": h.max(), "mean": h.mean(), "min": h.min()},
                    "differing": x.differing, "short": x.short, "bad_counters": x.bad_counters,
                    "placement": x.placement,
                })
            })
            .collect();
        let j = serde_json::json!({
            "benchmark": "many",
            "command": command,
            "machine": {"cpu_model": machine.cpu_model, "nproc": machine.nproc, "online_cpus": machine.online_cpus,
                "kernel": machine.kernel, "build": build_profile()},
            "data": {"dir": dir.display().to_string(), "bars": bars, "open_validate_s": open_s},
            "strategy": args.strategy,
            "pin": args.pin,
            "series": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")
            .with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("many: wrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!("check(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::pipeline::Script;

    #[test]
    fn take_stops_after_n_inputs() {
        let ev = engine::records::Event::control(engine::records::ControlKind::SessionStart, 1, [0; 4]);
        let mut t = Take { inner: Script::new([ev, ev, ev]), left: 2 };
        assert!(matches!(t.next(), Next::Event(_)));
        assert!(matches!(t.next(), Next::Event(_)));
        assert!(matches!(t.next(), Next::End));
    }
}
