//! `ringtape sweep`: a grid search over strategy parameters, judged out of sample.
//!
//! The grid is the cartesian product of `--set KEY=A,B,C` lists (values read as TOML: `10`,
//! `2.5`, `true`, `"x"`). The data's trading days are cut into `--folds + 1` consecutive blocks;
//! fold *k* fits on block *k* (every combination runs there, the best by `--metric` is chosen) and
//! tests the chosen combination on block *k + 1*, which it never saw. The report gives, per fold,
//! the chosen parameters with their in-sample and out-of-sample results, and the out-of-sample
//! total: the best parameters are never reported on in-sample results alone.
//!
//! Every run is an inline backtest in this process (no files), spread over `--threads` workers;
//! results do not depend on the number of threads.
//!
//! **Scaling out.** `--shard I/N` runs only the fitting runs of the combinations with index % N
//! == I and writes `shard.json` (plain JSON: the study's fingerprint and each (fold, combination)
//! score); `--merge DIR...` reads every shard's `shard.json`, checks they belong to the same study
//! (same grid, folds, metric, strategy, config and data) and together cover every fitting run
//! exactly once, then chooses, runs the out-of-sample tests and writes the usual files. Any job
//! runner can run the shards: `tools/ray/sweep.py` does it with Ray; a Slurm job array or a
//! Kubernetes indexed job runs `--shard $INDEX/$COUNT` the same way (docs/scale-out.md).
#![allow(clippy::disallowed_methods)] // wall-clock timing of the study is reported

use crate::backtest::{RunConfig, check_config, machine_cores, open_data, parse_config};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{BarReplay, Next, RunOutput, RunSpec, Source, run as run_pipeline, run_batch};
use engine::records::PX_SCALE;
use engine::strategy::StrategyFactory;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `ringtape sweep`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: ringtape sweep --strategy sma_cross --set fast=5,10,20 --set slow=30,60 \
--folds 3 --out runs/sweep. Files in --out: grid.csv (every combination on every fold's fitting block), \
folds.csv (per fold: the chosen combination, in-sample and out-of-sample results), sweep.json. Exit 0; \
2 bad usage.")]
pub struct Args {
    /// Bar directory (`*.rtb`); without it, the built-in S&P 500 sample
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Strategy name (built-in: sma_cross, orb)
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// TOML config (the backtest's tables; `[strategy]` holds the parameters not swept)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A parameter and its values, e.g. fast=5,10,20 (repeat for more parameters)
    #[arg(long = "set", value_name = "KEY=A,B,C", required_unless_present = "grid")]
    pub sets: Vec<String>,
    /// A TOML grid: each key of the file (or of its `[grid]` table) lists a parameter's values,
    /// e.g. `fast = [5, 10, 20]`; crossed with any --set
    #[arg(long, value_name = "FILE.toml")]
    pub grid: Option<PathBuf>,
    /// Score each combination as the mean of N Monte Carlo runs, seeded from `[venue.perturb]
    /// seed` (its knobs set in --config), in and out of sample
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub mc_seeds: u32,
    /// Walk-forward folds: the trading days are cut into FOLDS + 1 blocks
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub folds: usize,
    /// What "best" means: net_pnl or sharpe_like (mean / stdev of per-trade PnL)
    #[arg(long, value_name = "M", default_value = "net_pnl")]
    pub metric: String,
    /// Worker threads (default: every core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Directory for the result files (must not exist unless --force)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace an existing --out directory
    #[arg(long)]
    pub force: bool,
    /// Run one shard of the fitting runs, `I/N` (0-based): writes shard.json only
    #[arg(long, value_name = "I/N", conflicts_with = "merge")]
    pub shard: Option<String>,
    /// Merge the shard.json of these shard directories, then finish the study
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// No table
    #[arg(long, short)]
    pub quiet: bool,
}

/// How a sweep runs its fitting runs.
enum Mode {
    /// All of them, here.
    Full,
    /// Only `i` of `n`, then stop.
    Shard(usize, usize),
    /// Read them from shard directories.
    Merge(Vec<PathBuf>),
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || bad_input(format!("--shard {s}: use I/N with 0 <= I < N (e.g. --shard 0/4)"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// One combination's result on one block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    /// Net PnL after commissions, USD.
    pub net_pnl_usd: f64,
    /// Round trips.
    pub trades: u64,
    /// Mean over stdev of per-trade PnL (0 with fewer than 2 trades).
    pub sharpe_like: f64,
}

/// Bars whose receive time is in `[from, to)` only.
struct Window<S> {
    inner: S,
    from: i64,
    to: i64,
}

impl<S: Source> Source for Window<S> {
    fn next(&mut self) -> Next {
        loop {
            match self.inner.next() {
                Next::Event(e) if e.ts_recv_ns < self.from => continue,
                Next::Event(e) if e.ts_recv_ns >= self.to => return Next::End,
                n => return n,
            }
        }
    }
}

/// `KEY=A,B,C` lists from a TOML grid file's keys (or its `[grid]` table), each an array of values,
/// in the file's key order; `what` names the file in errors.
pub fn grid_file_sets(text: &str, what: &str) -> Result<Vec<String>> {
    let mut t: toml::Table = toml::from_str(text).map_err(|e| bad_input(format!("{what}: {e}")))?;
    if let Some(toml::Value::Table(g)) = t.remove("grid") {
        t = g;
    }
    if t.is_empty() {
        return Err(bad_input(format!("{what}: no parameters (write e.g. fast = [5, 10, 20])")));
    }
    t.into_iter()
        .map(|(k, v)| match v {
            toml::Value::Array(vs) if !vs.is_empty() => {
                Ok(format!("{k}={}", vs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")))
            }
            other => Err(bad_input(format!("{what}: {k} = {other}: list the values to try, e.g. {k} = [5, 10, 20]"))),
        })
        .collect()
}

/// A grid from `KEY=A,B,C` lists: every combination as a TOML table, in a fixed order.
pub fn grid(sets: &[String]) -> Result<Vec<toml::Table>> {
    let mut combos = vec![toml::Table::new()];
    for set in sets {
        let (key, values) = set
            .split_once('=')
            .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| bad_input(format!("--set {set}: use KEY=A,B,C (e.g. --set fast=5,10,20)")))?;
        let mut parsed = Vec::new();
        for v in values.split(',') {
            let v = v.trim();
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {v}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(v.to_string()));
            parsed.push(value);
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                parsed.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(key.trim().to_string(), v.clone());
                    c
                })
            })
            .collect();
    }
    Ok(combos)
}

/// [`score`], or with `seeds > 0` the mean of `seeds` perturbed runs whose seeds come from the
/// config's `[venue.perturb] seed` (the same seeds for every combination and block).
fn score_mc(
    cfg: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
    from: i64,
    to: i64,
    seeds: u32,
) -> Result<Score> {
    if seeds == 0 {
        return score(cfg, set, factory, from, to);
    }
    // The seeds' runs replay the same block: one lock-step batch (one pass over the bars).
    let master = cfg.venue.perturb.seed;
    let cfgs: Vec<EngineConfig> = (0..seeds)
        .map(|i| {
            let mut c = cfg.clone();
            c.venue.perturb.seed = crate::mc::run_seed(master, u64::from(i));
            c
        })
        .collect();
    let specs = cfgs.iter().map(|c| RunSpec::new(c, set.symbols(), factory)).collect();
    let outs = run_batch(specs, Window { inner: BarReplay::new(set.merged()), from, to })?;
    let (mut pnl, mut trades, mut sharpe) = (0.0, 0u64, 0.0);
    for s in outs.iter().map(score_of) {
        (pnl, trades, sharpe) = (pnl + s.net_pnl_usd, trades + s.trades, sharpe + s.sharpe_like);
    }
    let n = f64::from(seeds);
    Ok(Score { net_pnl_usd: pnl / n, trades: trades / u64::from(seeds), sharpe_like: sharpe / n })
}

fn score(cfg: &EngineConfig, set: &BarSet, factory: &dyn StrategyFactory, from: i64, to: i64) -> Result<Score> {
    let spec = RunSpec::new(cfg, set.symbols(), factory);
    let out = run_pipeline(spec, Window { inner: BarReplay::new(set.merged()), from, to }, &mut |_| {})?;
    Ok(score_of(&out))
}

/// A run's score: net PnL, round trips, and the mean over the spread of its trades' PnL.
fn score_of(out: &RunOutput) -> Score {
    let (_, trades, _, net, _) = out.positions.totals();
    let pnl: Vec<f64> = out.positions.trade_pnls_e9.iter().map(|&p| p as f64 / PX_SCALE as f64).collect();
    let sharpe_like = if pnl.len() >= 2 {
        let mean = pnl.iter().sum::<f64>() / pnl.len() as f64;
        let var = pnl.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (pnl.len() - 1) as f64;
        if var > 0.0 { mean / var.sqrt() } else { 0.0 }
    } else {
        0.0
    };
    Score { net_pnl_usd: net as f64 / PX_SCALE as f64, trades, sharpe_like }
}

/// Day boundaries (ns) cutting the data's trading days into `blocks` consecutive blocks.
fn blocks(set: &BarSet, day_offset_s: i64, blocks: usize) -> Vec<(i64, i64)> {
    let day_ns = 86_400_000_000_000i64;
    let off = day_offset_s * 1_000_000_000;
    let mut days: Vec<i64> = Vec::new();
    let mut src = BarReplay::new(set.merged());
    while let Next::Event(e) = src.next() {
        let d = (e.ts_recv_ns + off).div_euclid(day_ns);
        if days.last() != Some(&d) && !days.contains(&d) {
            days.push(d);
        }
    }
    days.sort_unstable();
    let n = days.len();
    (0..blocks)
        .map(|b| {
            let (i, j) = (b * n / blocks, (b + 1) * n / blocks);
            let start = days.get(i).map_or(i64::MAX, |d| d * day_ns - off);
            let end = if j >= n { i64::MAX } else { days[j] * day_ns - off };
            (start, end)
        })
        .collect()
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let (rc, what) = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --config path)", p.display())))?;
            (parse_config(&text, &p.display().to_string())?, p.display().to_string())
        }
        None => (RunConfig::default(), "config".to_string()),
    };
    if args.folds == 0 {
        return Err(bad_input("--folds 0: use at least 1 (the data is cut into FOLDS + 1 blocks)"));
    }
    let by_sharpe = match args.metric.as_str() {
        "net_pnl" => false,
        "sharpe_like" => true,
        m => return Err(bad_input(format!("--metric {m}: use net_pnl or sharpe_like"))),
    };
    let checked = check_config(rc.clone(), args.strategy.as_deref(), &what, machine_cores())?;
    let mut sets = Vec::new();
    if let Some(p) = &args.grid {
        let text = std::fs::read_to_string(p)
            .map_err(|e| bad_input(format!("{}: {e} (check the --grid path)", p.display())))?;
        sets = grid_file_sets(&text, &p.display().to_string())?;
    }
    sets.extend(args.sets.iter().cloned());
    if args.mc_seeds > 0 && !checked.rc.engine.venue.perturb.any() {
        return Err(bad_input(format!(
            "--mc-seeds {}: {what} sets no [venue.perturb] knob, so every seed gives the same run (set e.g. slippage_sd_bps)",
            args.mc_seeds
        )));
    }
    let combos = grid(&sets)?;
    // Every combination must be valid parameters (checked up front: one bad value is one error).
    let mut factories: Vec<Box<dyn StrategyFactory>> = Vec::new();
    for c in &combos {
        let mut t = rc.strategy_params.clone().unwrap_or_default();
        t.extend(c.clone());
        let p = strategies::params(&checked.strategy, Some(toml::Value::Table(t)))
            .map_err(|e| bad_input(format!("--set {}: {e}", toml::to_string(c).unwrap_or_default().trim())))?;
        factories.push(p.factory());
    }
    if args.out.exists() {
        if !args.force {
            return Err(bad_input(format!("{} already exists; pass --force to replace it", args.out.display())));
        }
        std::fs::remove_dir_all(&args.out).with_context(|| format!("removing {}", args.out.display()))?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mode = match (&args.shard, args.merge.is_empty()) {
        (Some(s), _) => {
            let (i, n) = parse_shard(s)?;
            Mode::Shard(i, n)
        }
        (None, false) => Mode::Merge(args.merge.clone()),
        (None, true) => Mode::Full,
    };
    let res = study(&args, &checked, &combos, &factories, by_sharpe, mode);
    if res.is_err() {
        // Nothing half-written is left behind.
        let _ = std::fs::remove_dir_all(&args.out);
    }
    res
}

fn study(
    args: &Args,
    checked: &crate::backtest::Checked,
    combos: &[toml::Table],
    factories: &[Box<dyn StrategyFactory>],
    by_sharpe: bool,
    mode: Mode,
) -> Result<()> {
    let set = match &args.data {
        Some(d) => open_data(d, None)?,
        None => {
            let d = args.out.join("data");
            crate::backtest::write_builtin(&d)?;
            open_data(&d, None)?
        }
    };
    let mut cfg = checked.rc.engine.clone();
    cfg.pipeline.topology = Topology::Inline;
    let bl = blocks(&set, cfg.risk.day_utc_offset_s, args.folds + 1);
    if bl.iter().any(|&(a, b)| a >= b) {
        return Err(bad_input(format!(
            "--folds {}: the data has too few trading days for {} blocks",
            args.folds,
            args.folds + 1
        )));
    }
    let threads = args.threads.unwrap_or_else(machine_cores).max(1);
    // Every (fold, combination) on the fold's fitting block, then each fold's choice on its test block.
    let jobs: Vec<(usize, usize)> = (0..args.folds).flat_map(|f| (0..combos.len()).map(move |c| (f, c))).collect();
    // The study's fingerprint: shards of one study agree on it.
    let fingerprint = engine::records::session_id(
        "sweep",
        format!(
            "{}|{}|{}|{}|{:?}|{}|mc{}",
            checked.strategy,
            args.metric,
            args.folds,
            combos.iter().map(|c| toml::to_string(c).unwrap_or_default()).collect::<Vec<_>>().join(";"),
            set.fingerprint(),
            toml::to_string(&checked.rc.engine).unwrap_or_default(),
            args.mc_seeds
        )
        .as_bytes(),
    );
    // Progress in runs: the fitting runs made here, then one test run per fold.
    let runs_here = match &mode {
        Mode::Full => jobs.len() + args.folds,
        Mode::Shard(i, n) => jobs.iter().filter(|&&(_, c)| c % n == *i).count(),
        Mode::Merge(_) => args.folds,
    };
    let pb = crate::progress::bar("sweep", runs_here as u64, "runs", !args.quiet);
    let run_one = |c: usize, block: (i64, i64)| {
        let s = score_mc(&cfg, &set, factories[c].as_ref(), block.0, block.1, args.mc_seeds);
        pb.inc(1);
        s
    };
    let fit: Vec<Score> = match mode {
        Mode::Full => crate::parallel::map(&jobs, threads, |&(f, c)| run_one(c, bl[f]))?,
        Mode::Shard(i, n) => {
            let mine: Vec<(usize, usize)> = jobs.iter().copied().filter(|&(_, c)| c % n == i).collect();
            let got = crate::parallel::map(&mine, threads, |&(f, c)| run_one(c, bl[f]))?;
            pb.finish_and_clear();
            let scores: Vec<serde_json::Value> = mine
                .iter()
                .zip(&got)
                // The exact bits too: a merged study must equal one run in one process.
                .map(|(&(f, c), s)| {
                    serde_json::json!({"fold": f, "combination": c, "score": s,
                        "bits": [s.net_pnl_usd.to_bits(), s.sharpe_like.to_bits()]})
                })
                .collect();
            let j = serde_json::json!({"study": fingerprint, "shard": [i, n], "scores": scores});
            std::fs::write(args.out.join("shard.json"), serde_json::to_string_pretty(&j)?)?;
            if !args.quiet {
                println!(
                    "ringtape sweep: shard {i}/{n}: {} of {} fitting runs in {}",
                    mine.len(),
                    jobs.len(),
                    args.out.display()
                );
            }
            return Ok(());
        }
        Mode::Merge(dirs) => merge(&dirs, &fingerprint, args.folds, combos.len())?,
    };
    let key = |s: &Score| if by_sharpe { s.sharpe_like } else { s.net_pnl_usd };
    let chosen: Vec<usize> = (0..args.folds)
        .map(|f| {
            let scores = &fit[f * combos.len()..(f + 1) * combos.len()];
            // The best; on a tie, the first in grid order.
            (0..combos.len()).fold(0, |best, c| if key(&scores[c]) > key(&scores[best]) { c } else { best })
        })
        .collect();
    let tests: Vec<(usize, usize)> = chosen.iter().enumerate().map(|(f, &c)| (f, c)).collect();
    let oos: Vec<Score> = crate::parallel::map(&tests, threads, |&(f, c)| run_one(c, bl[f + 1]))?;
    pb.finish_and_clear();

    let label = |c: usize| toml::to_string(&combos[c]).unwrap_or_default().trim().replace('\n', " ");
    let mut g = String::from("fold,combination,net_pnl_usd,trades,sharpe_like\n");
    for (i, &(f, c)) in jobs.iter().enumerate() {
        let s = fit[i];
        let _ = writeln!(g, "{f},\"{}\",{:.4},{},{:.4}", label(c), s.net_pnl_usd, s.trades, s.sharpe_like);
    }
    std::fs::write(args.out.join("grid.csv"), g)?;
    let mut fc = String::from("fold,chosen,in_sample_net_pnl_usd,out_of_sample_net_pnl_usd,out_of_sample_trades\n");
    let mut folds_json = Vec::new();
    for f in 0..args.folds {
        let c = chosen[f];
        let ins = fit[f * combos.len() + c];
        let _ = writeln!(fc, "{f},\"{}\",{:.4},{:.4},{}", label(c), ins.net_pnl_usd, oos[f].net_pnl_usd, oos[f].trades);
        folds_json.push(serde_json::json!({"fold": f, "fit_block": bl[f], "test_block": bl[f + 1],
            "chosen": combos[c], "in_sample": ins, "out_of_sample": oos[f]}));
    }
    std::fs::write(args.out.join("folds.csv"), fc)?;
    let oos_total: f64 = oos.iter().map(|s| s.net_pnl_usd).sum();
    let j = serde_json::json!({"strategy": checked.strategy, "metric": args.metric, "combinations": combos.len(),
        "folds": folds_json, "out_of_sample_net_pnl_usd": oos_total});
    std::fs::write(args.out.join("sweep.json"), serde_json::to_string_pretty(&j)?)?;
    if !args.quiet {
        println!(
            "ringtape sweep: {} x {} combinations, {} walk-forward fold(s), best by {}",
            checked.strategy,
            combos.len(),
            args.folds,
            args.metric
        );
        for f in 0..args.folds {
            let ins = fit[f * combos.len() + chosen[f]];
            println!(
                "  fold {f}: chose {{{}}}: in sample {:+.2} USD, out of sample {:+.2} USD ({} trades)",
                label(chosen[f]),
                ins.net_pnl_usd,
                oos[f].net_pnl_usd,
                oos[f].trades
            );
        }
        println!("  out of sample, all folds: {oos_total:+.2} USD");
    }
    Ok(())
}

/// Every fitting score from shard directories, checked: one study, each run exactly once.
fn merge(dirs: &[PathBuf], fingerprint: &str, folds: usize, n_combos: usize) -> Result<Vec<Score>> {
    let mut fit: Vec<Option<Score>> = vec![None; folds * n_combos];
    for d in dirs {
        let p = d.join("shard.json");
        let text = std::fs::read_to_string(&p).map_err(|e| {
            bad_input(format!("{}: {e} (give directories written by `ringtape sweep --shard`)", p.display()))
        })?;
        let j: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_input(format!("{}: {e} (a damaged shard)", p.display())))?;
        if j["study"].as_str() != Some(fingerprint) {
            return Err(bad_input(format!(
                "{}: a shard of another study (different grid, folds, metric, strategy, config or data): run every shard with the same arguments",
                p.display()
            )));
        }
        for s in j["scores"].as_array().into_iter().flatten() {
            let (f, c) = (
                s["fold"].as_u64().unwrap_or(u64::MAX) as usize,
                s["combination"].as_u64().unwrap_or(u64::MAX) as usize,
            );
            let bits = |k: usize| s["bits"][k].as_u64().map_or(f64::NAN, f64::from_bits);
            let score = Score {
                net_pnl_usd: bits(0),
                trades: s["score"]["trades"].as_u64().unwrap_or(0),
                sharpe_like: bits(1),
            };
            let slot = fit
                .get_mut(f * n_combos + c)
                .filter(|_| f < folds && c < n_combos)
                .ok_or_else(|| bad_input(format!("{}: fold {f} combination {c} is outside the study", p.display())))?;
            if slot.replace(score).is_some() {
                return Err(bad_input(format!("{}: fold {f} combination {c} is in two shards", p.display())));
            }
        }
    }
    let missing = fit.iter().filter(|s| s.is_none()).count();
    if missing > 0 {
        return Err(bad_input(format!(
            "--merge: {missing} fitting runs are in no shard (a shard is missing or failed)"
        )));
    }
    Ok(fit.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_the_product_in_order_with_toml_values() {
        let g = grid(&["fast=5,10".into(), "slow=30,60,90".into(), "name=x".into()]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[0]["fast"], toml::Value::Integer(5));
        assert_eq!(g[1]["slow"], toml::Value::Integer(60));
        assert_eq!(g[5]["fast"], toml::Value::Integer(10));
        assert_eq!(g[0]["name"], toml::Value::String("x".into()));
        assert!(grid(&["fast".into()]).is_err());
        assert!(grid(&["=1".into()]).is_err());
    }
}
