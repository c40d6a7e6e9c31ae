//! `ringtape mc`: a Monte Carlo robustness study. N runs of one backtest in this process on the
//! inline topology, each with the simulated venue perturbed by its own seed (`[venue.perturb]`:
//! slippage drawn per fill, spread, order latency, missed entries, partial fills), spread over
//! every core. Each run is deterministic from its seed and the seeds come from one master seed,
//! so the whole study is reproducible. One unperturbed run is the baseline.
//!
//! Output (`--out DIR`): `runs.csv` (one line per run: seed, net PnL, max drawdown, Sharpe, win
//! rate, trades, fills, missed entries), `mc.json` (the config, the knobs, the baseline, and per
//! metric the mean and percentiles, plus the probability of a loss), histograms of net PnL and max
//! drawdown with the baseline marked (`net_pnl.png`, `max_drawdown.png`), and the table on stdout.
#![allow(clippy::disallowed_methods)] // wall-clock timing of the study is reported

use crate::backtest::{self, RunConfig, check_config, machine_cores, open_data, parse_config};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{BarReplay, RunOutput, RunSpec, run as run_pipeline, run_batch};
use engine::records::PX_SCALE;
use engine::strategy::StrategyFactory;
use engine::venue::PerturbConfig;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `ringtape mc`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The knobs are the config's [venue.perturb] table (see ringtape.example.toml): \
slippage_sd_bps, spread_bps, latency_bars, miss_entry_ppm, partial_fill_ppm; without that table, mc \
uses slippage_sd_bps = 2, spread_bps = 2, latency_bars = 0, miss_entry_ppm = 50000 (5 %), \
partial_fill_ppm = 100000 (10 %). Run i uses seed splitmix(--seed + i). Exit 0; 2 bad usage.")]
pub struct Args {
    /// Bar directory (`*.rtb`); without it, the built-in S&P 500 sample
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Strategy name (built-in: sma_cross, orb); overrides the config's `strategy.name`
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// TOML config (the backtest's tables; the knobs in [venue.perturb])
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Perturbed runs
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub runs: usize,
    /// Master seed
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: every core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Directory for runs.csv and mc.json (created; must not exist unless --force)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace an existing --out directory
    #[arg(long)]
    pub force: bool,
    /// Runs per lock-step batch on a worker: one pass over the data serves the batch (default:
    /// 16, fewer when a small study would leave a worker idle; results never depend on it)
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Also run the study once per knob with only that knob on, to show what each one costs
    #[arg(long)]
    pub by_knob: bool,
    /// No table, no progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

/// One run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// The run's seed (0 for the baseline).
    pub seed: u64,
    /// Net PnL after commissions, USD.
    pub net_pnl_usd: f64,
    /// Largest peak-to-trough fall of equity, USD.
    pub max_drawdown_usd: f64,
    /// Annualized Sharpe of daily PnL (`None` below 20 trading days, as in summary.json).
    pub sharpe: Option<f64>,
    /// Winning round trips, percent of trades.
    pub win_rate_pct: f64,
    /// Round trips.
    pub trades: u64,
    /// Fills.
    pub fills: u64,
    /// Entries the venue missed (`venue_rejected`).
    pub missed: u64,
}

/// Run `i`'s seed from the master seed (SplitMix64 of `master + i`).
pub fn run_seed(master: u64, i: u64) -> u64 {
    let mut z = master.wrapping_add(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

/// One backtest on the inline topology with the given config, no files written.
pub fn one_run(cfg: &EngineConfig, set: &BarSet, factory: &dyn StrategyFactory) -> Result<Outcome> {
    let spec = RunSpec::new(cfg, set.symbols(), factory).bars(set);
    let out = run_pipeline(spec, BarReplay::zero_copy(set.merged()), &mut |_| {})?;
    Ok(outcome(cfg, &out))
}

/// Backtests of the same data with the given configs, in one lock-step batch
/// ([`engine::pipeline::run_batch`]: one pass of the merge and sequencer for them all); each
/// outcome equals [`one_run`]'s for its config.
pub fn batch_runs(cfgs: &[EngineConfig], set: &BarSet, factory: &dyn StrategyFactory) -> Result<Vec<Outcome>> {
    let specs = cfgs.iter().map(|c| RunSpec::new(c, set.symbols(), factory).bars(set)).collect();
    let outs = run_batch(specs, BarReplay::zero_copy(set.merged()))?;
    Ok(cfgs.iter().zip(&outs).map(|(c, o)| outcome(c, o)).collect())
}

/// A run's outcome from its output.
fn outcome(cfg: &EngineConfig, out: &RunOutput) -> Outcome {
    let (fills, trades, wins, net, _) = out.positions.totals();
    let usd = |v: i128| v as f64 / PX_SCALE as f64;
    Outcome {
        seed: cfg.venue.perturb.seed,
        net_pnl_usd: usd(net),
        max_drawdown_usd: usd(out.max_drawdown_e9),
        sharpe: (out.daily_equity.len() >= crate::summary::SHARPE_MIN_DAYS).then(|| out.sharpe()),
        win_rate_pct: if trades > 0 { 100.0 * wins as f64 / trades as f64 } else { 0.0 },
        trades,
        fills,
        missed: out.counters.venue_rejects,
    }
}

/// The value at quantile `q` (0..=1) of sorted `v` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[k]
}

/// Mean and percentiles of one metric over the runs.
fn stats(values: impl Iterator<Item = f64>) -> serde_json::Value {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    serde_json::json!({"mean": mean, "p5": quantile(&v, 0.05), "p25": quantile(&v, 0.25), "p50": quantile(&v, 0.5),
        "p75": quantile(&v, 0.75), "p95": quantile(&v, 0.95), "min": v.first(), "max": v.last()})
}

/// Runs per lock-step batch: enough to spread the merge and sequencer over many runs, few enough
/// that the runs' state stays in the core's cache (BENCHMARKS.md section 7 has the measurements).
pub const BATCH: usize = 16;

/// Run the study: `runs` perturbed runs on `threads` workers, `batch` runs at a time in lock step;
/// results in run order (the same for any thread count or batch size).
#[allow(clippy::too_many_arguments)]
pub fn study(
    base: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
    runs: usize,
    master: u64,
    threads: usize,
    batch: usize,
    on_done: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Outcome>> {
    let indices: Vec<u64> = (0..runs as u64).collect();
    let chunks: Vec<&[u64]> = indices.chunks(batch.max(1)).collect();
    let per_chunk = crate::parallel::map(&chunks, threads, |chunk| {
        let cfgs: Vec<EngineConfig> = chunk
            .iter()
            .map(|&i| {
                let mut cfg = base.clone();
                cfg.venue.perturb.seed = run_seed(master, i);
                cfg
            })
            .collect();
        let r = batch_runs(&cfgs, set, factory);
        on_done(chunk.len() as u64);
        r
    })?;
    Ok(per_chunk.into_iter().flatten().collect())
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.runs == 0 {
        return Err(bad_input("--runs 0: give at least one run"));
    }
    if args.batch == Some(0) {
        return Err(bad_input("--batch 0: give at least one run per batch"));
    }
    let (rc, what, knobs_given) = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --config path)", p.display())))?;
            let given = toml::from_str::<toml::Table>(&text)
                .ok()
                .and_then(|t| t.get("venue").and_then(|v| v.get("perturb")).map(|_| ()))
                .is_some();
            (parse_config(&text, &p.display().to_string())?, p.display().to_string(), given)
        }
        None => (RunConfig::default(), "config".to_string(), false),
    };
    let checked = check_config(rc, args.strategy.as_deref(), &what, machine_cores())?;
    let mut base = checked.rc.engine.clone();
    base.pipeline.topology = Topology::Inline;
    // Without a [venue.perturb] table, the default knobs; a table (even all zeros) is used as is.
    if !knobs_given {
        let p = &mut base.venue.perturb;
        (p.slippage_sd_bps, p.spread_bps, p.miss_entry_ppm, p.partial_fill_ppm) = (2, 2, 50_000, 100_000);
    }
    if args.out.exists() {
        if !args.force {
            return Err(bad_input(format!("{} already exists; pass --force to replace it", args.out.display())));
        }
        std::fs::remove_dir_all(&args.out).with_context(|| format!("removing {}", args.out.display()))?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let set = match &args.data {
        Some(d) => open_data(d, None)?,
        None => {
            let d = args.out.join("data");
            backtest::write_builtin(&d)?;
            open_data(&d, None)?
        }
    };
    let factory = checked.params.factory();
    let threads = args.threads.unwrap_or_else(machine_cores).max(1);
    // At least four batches per worker, so the last ones leave no worker idle for long.
    let batch = args.batch.unwrap_or_else(|| BATCH.min((args.runs / (threads * 4)).max(1)));

    let mut unperturbed = base.clone();
    unperturbed.venue.perturb = Default::default();
    let baseline = one_run(&unperturbed, &set, factory.as_ref())?;
    let pb = crate::progress::bar("mc", args.runs as u64, "runs", !args.quiet);
    let outcomes = study(&base, &set, factory.as_ref(), args.runs, args.seed, threads, batch, &|n| pb.inc(n))?;
    pb.finish_and_clear();
    // Each knob alone: what it costs by itself.
    let mut by_knob = serde_json::Map::new();
    if args.by_knob {
        let p = base.venue.perturb;
        let alone: [(&str, PerturbConfig); 5] = [
            ("slippage_sd_bps", PerturbConfig { slippage_sd_bps: p.slippage_sd_bps, ..Default::default() }),
            ("spread_bps", PerturbConfig { spread_bps: p.spread_bps, ..Default::default() }),
            ("latency_bars", PerturbConfig { latency_bars: p.latency_bars, ..Default::default() }),
            ("miss_entry_ppm", PerturbConfig { miss_entry_ppm: p.miss_entry_ppm, ..Default::default() }),
            ("partial_fill_ppm", PerturbConfig { partial_fill_ppm: p.partial_fill_ppm, ..Default::default() }),
        ];
        for (name, knob) in alone.into_iter().filter(|(_, k)| k.any()) {
            let mut cfg = base.clone();
            cfg.venue.perturb = knob;
            let o = study(&cfg, &set, factory.as_ref(), args.runs, args.seed, threads, batch, &|_| {})?;
            let losses = o.iter().filter(|o| o.net_pnl_usd < 0.0).count();
            by_knob.insert(
                name.into(),
                serde_json::json!({"net_pnl_usd": stats(o.iter().map(|o| o.net_pnl_usd)),
                    "max_drawdown_usd": stats(o.iter().map(|o| o.max_drawdown_usd)),
                    "probability_of_loss": losses as f64 / o.len() as f64}),
            );
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();

    let mut csv = String::from("run,seed,net_pnl_usd,max_drawdown_usd,sharpe,win_rate_pct,trades,fills,missed\n");
    for (i, o) in outcomes.iter().enumerate() {
        let _ = writeln!(
            csv,
            "{i},{},{:.4},{:.4},{},{:.2},{},{},{}",
            o.seed,
            o.net_pnl_usd,
            o.max_drawdown_usd,
            o.sharpe.map_or(String::new(), |x| format!("{x:.4}")),
            o.win_rate_pct,
            o.trades,
            o.fills,
            o.missed
        );
    }
    std::fs::write(args.out.join("runs.csv"), csv)
        .with_context(|| format!("writing {}/runs.csv", args.out.display()))?;
    let losses = outcomes.iter().filter(|o| o.net_pnl_usd < 0.0).count();
    let p = base.venue.perturb;
    let json = serde_json::json!({
        "strategy": checked.strategy,
        "strategy_params": serde_json::to_value(&checked.params)?,
        "runs": args.runs, "master_seed": args.seed, "threads": threads, "batch": batch,
        "knobs": {"slippage_sd_bps": p.slippage_sd_bps, "spread_bps": p.spread_bps, "latency_bars": p.latency_bars,
            "miss_entry_ppm": p.miss_entry_ppm, "partial_fill_ppm": p.partial_fill_ppm},
        "baseline": baseline,
        "probability_of_loss": losses as f64 / outcomes.len() as f64,
        "net_pnl_usd": stats(outcomes.iter().map(|o| o.net_pnl_usd)),
        "max_drawdown_usd": stats(outcomes.iter().map(|o| o.max_drawdown_usd)),
        "sharpe": stats(outcomes.iter().filter_map(|o| o.sharpe)),
        "missed_entries": stats(outcomes.iter().map(|o| o.missed as f64)),
        "win_rate_pct": stats(outcomes.iter().map(|o| o.win_rate_pct)),
        "by_knob": by_knob,
        "wall_s": wall_s,
    });
    std::fs::write(args.out.join("mc.json"), serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}/mc.json", args.out.display()))?;
    for (file, title, values, base) in [
        (
            "net_pnl.png",
            "net PnL (USD) over the runs",
            outcomes.iter().map(|o| o.net_pnl_usd).collect::<Vec<_>>(),
            baseline.net_pnl_usd,
        ),
        (
            "max_drawdown.png",
            "max drawdown (USD) over the runs",
            outcomes.iter().map(|o| o.max_drawdown_usd).collect(),
            baseline.max_drawdown_usd,
        ),
    ] {
        let png = histogram_png(&values, base, title)?;
        std::fs::write(args.out.join(file), png).with_context(|| format!("writing {}/{file}", args.out.display()))?;
    }
    if !args.quiet {
        print!("{}", table(&json, &baseline));
    }
    Ok(())
}

/// A histogram of `values` (30 bins) with the baseline marked, as PNG bytes (800x300).
pub fn histogram_png(values: &[f64], baseline: f64, title: &str) -> Result<Vec<u8>> {
    use viz::canvas::{Canvas, Rect};
    let (w, h) = (800usize, 300usize);
    let mut c = Canvas::new(w, h, 0x00FF_FFFF);
    let clip = c.rect();
    let plot = Rect { x: 50, y: 24, w: w as i32 - 70, h: h as i32 - 60 };
    let lo = values.iter().copied().fold(baseline, f64::min);
    let hi = values.iter().copied().fold(baseline, f64::max);
    let span = (hi - lo).max(1e-9);
    const BINS: usize = 30;
    let mut counts = [0u32; BINS];
    for &v in values {
        counts[(((v - lo) / span * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let bw = plot.w / BINS as i32;
    for (i, &n) in counts.iter().enumerate() {
        let bh = (f64::from(n) / f64::from(top) * f64::from(plot.h)).round() as i32;
        let r = Rect { x: plot.x + i as i32 * bw + 1, y: plot.bottom() - bh, w: bw - 2, h: bh };
        c.fill_rect(r, clip, 0x0044_77AA);
    }
    let x_of = |v: f64| plot.x + ((v - lo) / span * f64::from(bw * BINS as i32)).round() as i32;
    c.vline(x_of(baseline), plot.y, plot.bottom(), clip, 0x00CC_0000);
    if lo < 0.0 && hi > 0.0 {
        c.vline(x_of(0.0), plot.y, plot.bottom(), clip, 0x0000_0000);
    }
    c.hline(plot.x, plot.right(), plot.bottom(), clip, 0x0000_0000);
    c.text(plot.x, 6, title, clip, 0x0000_0000);
    c.text(plot.x, plot.bottom() + 8, &format!("{lo:.0}"), clip, 0x0000_0000);
    let hi_label = format!("{hi:.0}");
    c.text(plot.right() - viz::font::text_width(&hi_label), plot.bottom() + 8, &hi_label, clip, 0x0000_0000);
    c.text(plot.x, plot.bottom() + 22, "red: unperturbed baseline; black: zero", clip, 0x0044_4444);
    Ok(viz::png::encode(&c)?)
}

/// The printed table.
fn table(j: &serde_json::Value, base: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringtape mc: {} x {} runs (seed {}), knobs {}, {:.1} s",
        j["strategy"].as_str().unwrap_or("?"),
        j["runs"],
        j["master_seed"],
        j["knobs"],
        j["wall_s"].as_f64().unwrap_or(0.0)
    );
    let _ =
        writeln!(s, "  {:<18}{:>12}{:>12}{:>12}{:>12}{:>12}{:>12}", "", "baseline", "p5", "p25", "p50", "p75", "p95");
    let row = |s: &mut String, name: &str, key: &str, b: f64| {
        let m = &j[key];
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "  {name:<18}{b:>12.2}{:>12.2}{:>12.2}{:>12.2}{:>12.2}{:>12.2}",
            f("p5"),
            f("p25"),
            f("p50"),
            f("p75"),
            f("p95")
        );
    };
    row(&mut s, "net PnL USD", "net_pnl_usd", base.net_pnl_usd);
    row(&mut s, "max drawdown USD", "max_drawdown_usd", base.max_drawdown_usd);
    if let Some(sh) = base.sharpe {
        row(&mut s, "Sharpe", "sharpe", sh);
    } else {
        let _ = writeln!(s, "  {:<18}{:>12}", "Sharpe", "n/a (< 20 days)");
    }
    row(&mut s, "win rate %", "win_rate_pct", base.win_rate_pct);
    row(&mut s, "missed entries", "missed_entries", base.missed as f64);
    let _ = writeln!(s, "  probability of a loss: {:.1} %", 100.0 * j["probability_of_loss"].as_f64().unwrap_or(0.0));
    if let Some(m) = j["by_knob"].as_object().filter(|m| !m.is_empty()) {
        let _ = writeln!(s, "  each knob alone:   {:>12}{:>12}{:>12}{:>10}", "net p5", "net p50", "net p95", "P(loss)");
        for (name, k) in m {
            let f = |q: &str| k["net_pnl_usd"][q].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "    {name:<16}{:>12.2}{:>12.2}{:>12.2}{:>9.1}%",
                f("p5"),
                f("p50"),
                f("p95"),
                100.0 * k["probability_of_loss"].as_f64().unwrap_or(0.0)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_seeds_differ_and_never_are_zero() {
        let seeds: std::collections::BTreeSet<u64> = (0..1000).map(|i| run_seed(1, i)).collect();
        assert_eq!(seeds.len(), 1000);
        assert!(!seeds.contains(&0));
        assert_ne!(run_seed(1, 0), run_seed(2, 0));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!((quantile(&v, 0.0), quantile(&v, 0.5), quantile(&v, 1.0)), (1.0, 3.0, 5.0));
        assert!(quantile(&[], 0.5).is_nan());
    }
}
