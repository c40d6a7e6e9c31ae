//! `ringtape backtest`: a strategy over a bar directory, through the real threaded pipeline.
//!
//! Writes a run directory: `journal.rtj` (every decision and report, binary), `fills.csv`,
//! `summary.json` (deterministic results plus a separate `perf` section), `journal.meta.json`
//! (the data set's file checksums and the effective config, so the journal identifies its
//! inputs) and `config.toml`. Without `--data` it runs on built-in data: the real S&P 500
//! one-minute bars of 2019-11-05..08 shipped inside the binary.
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here

use crate::exit::bad_input;
use anyhow::{Context, Result};
use engine::merge::BarSet;
use engine::pipeline::config::EngineConfig;
use engine::pipeline::{BarReplay, RunOutput, RunSpec};
use engine::records::{PX_SCALE, Reason};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The real file `data/real/SP500_NOV2019_IDay.csv` (source and licence in data/real/SOURCES.md).
pub const BUILTIN_CSV: &str = include_str!("../../data/real/SP500_NOV2019_IDay.csv");
/// Symbol of the built-in data.
pub const BUILTIN_SYMBOL: &str = "SP500";

/// Arguments of `ringtape backtest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bar directory (`*.rtb`); without it, the built-in S&P 500 sample (2019-11-05..08, 1 min)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Strategy name (built-in: sma_cross, orb); overrides the config's `strategy.name`
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// TOML config with tables pipeline, risk, venue, journal, strategy (see ringtape.example.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy shard threads (overrides pipeline.shards)
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Run directory to write
    #[arg(long, value_name = "RUN_DIR", default_value = "runs/latest")]
    pub out: PathBuf,
    /// Print the summary as JSON on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no table
    #[arg(long, short)]
    pub quiet: bool,
}

/// The config file: the engine's tables plus `strategy` (`name` and the strategy's parameters).
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Strategy name from the file, if any.
    pub strategy_name: Option<String>,
    /// The `strategy` table without `name`.
    pub strategy_params: Option<toml::Table>,
}

/// Parse a config file's text (`what` names it in errors).
pub fn parse_config(text: &str, what: &str) -> Result<RunConfig> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| bad_input(format!("{what}: {e}")))?;
    let strategy = table.remove("strategy");
    let engine: EngineConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| bad_input(format!("{what}: {e} (see README.md, Configuration)")))?;
    let (mut name, mut params) = (None, None);
    if let Some(v) = strategy {
        let toml::Value::Table(mut t) = v else {
            return Err(bad_input(format!("{what}: [strategy] must be a table")));
        };
        if let Some(n) = t.remove("name") {
            name = Some(n.as_str().ok_or_else(|| bad_input(format!("{what}: strategy.name must be a string")))?.into());
        }
        params = Some(t);
    }
    Ok(RunConfig { engine, strategy_name: name, strategy_params: params })
}

/// Results in the form written to `summary.json`.
pub fn summary_json(out: &RunOutput, symbols: &engine::symbols::SymbolTable, strategy: &str) -> serde_json::Value {
    let usd = |v: i128| v as f64 / PX_SCALE as f64;
    let (fills, trades, wins, net, comm) = out.positions.totals();
    let rejects: serde_json::Map<String, serde_json::Value> = Reason::ALL
        .iter()
        .filter(|r| out.rejects[r.raw() as usize] > 0)
        .map(|r| (r.as_str().to_string(), out.rejects[r.raw() as usize].into()))
        .collect();
    let per_symbol: Vec<serde_json::Value> = symbols
        .names()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let b = &out.positions.symbols[i];
            serde_json::json!({
                "symbol": name, "fills": b.fills, "trades": b.trades, "wins": b.wins,
                "net_pnl_usd": usd(b.net_pnl_e9), "commission_usd": usd(b.commission_e9),
                "final_position": b.position,
            })
        })
        .collect();
    serde_json::json!({
        "strategy": strategy,
        "bars": out.bars,
        "inputs": out.inputs,
        "fills": fills,
        "orders_accepted": out.accepted,
        "trades": trades,
        "wins": wins,
        "win_rate": if trades > 0 { wins as f64 / trades as f64 } else { 0.0 },
        "net_pnl_usd": usd(net),
        "equity_change_usd": usd(out.equity_e9),
        "commission_usd": usd(comm),
        "max_drawdown_usd": usd(out.max_drawdown_e9),
        "sharpe_daily_annualized": out.sharpe(),
        "days": out.daily_equity.len(),
        "rejects": rejects,
        "daily_loss_halts": out.halts,
        "strategy_faults": out.counters.strategy_faults,
        "per_symbol": per_symbol,
    })
}

fn builtin_data(dir: &Path) -> Result<()> {
    let opts = crate::import_csv::ImportOptions {
        symbol: Some(BUILTIN_SYMBOL.into()),
        tz: crate::import_csv::parse_tz("America/New_York")?,
        interval: None,
    };
    let imported = crate::import_csv::import_reader(BUILTIN_CSV.as_bytes(), "built-in SP500_NOV2019_IDay.csv", &opts)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for s in &imported.series {
        engine::barfile::write_bar_file(&dir.join(s.file_name()), &s.symbol, s.interval_s, &s.bars)?;
    }
    Ok(())
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let mut rc = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --config path)", p.display())))?;
            parse_config(&text, &p.display().to_string())?
        }
        None => RunConfig::default(),
    };
    if let Some(n) = args.shards {
        rc.engine.pipeline.shards = n;
    }
    let strategy = args.strategy.clone().or(rc.strategy_name.clone()).unwrap_or_else(|| "sma_cross".into());
    let factory = match rc.strategy_params.clone() {
        Some(t) => strategies::factory_with(&strategy, toml::Value::Table(t)),
        None => strategies::factory(&strategy),
    }
    .map_err(|e| bad_input(e.to_string()))?;

    let data_dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            let d = args.out.join("data");
            builtin_data(&d)?;
            d
        }
    };
    let set = BarSet::open_dir(&data_dir, 2).map_err(|e| bad_input(e.to_string()))?;
    let t_open = t0.elapsed();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let meta = serde_json::json!({
        "format": "ringtape journal v1: 16-byte header (magic RTJRNL\\0\\x01, version u16, record size u16), then 72-byte records",
        "data_dir": data_dir.display().to_string(),
        "files": set.fingerprint().iter().map(|(s, i, n, h)| serde_json::json!({"symbol": s, "interval_s": i, "bars": n, "xxh3": format!("{h:016x}")})).collect::<Vec<_>>(),
        "symbols": set.symbols().names(),
        "strategy": strategy,
        "strategy_params": rc.strategy_params.as_ref().map(|t| t.to_string()),
        "config": toml::to_string(&rc.engine).unwrap_or_default(),
    });
    std::fs::write(args.out.join("journal.meta.json"), serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("writing {}", args.out.join("journal.meta.json").display()))?;
    std::fs::write(args.out.join("config.toml"), toml::to_string(&rc.engine).unwrap_or_default())?;

    let total = set.total_bars();
    let show = !args.quiet && total > 500_000 && std::io::stderr().is_terminal();
    let pb = crate::progress::bar(total, "bars", show);
    pb.set_message("backtest");
    let spec = RunSpec {
        config: &rc.engine,
        symbols: set.symbols(),
        factory: factory.as_ref(),
        out_dir: Some(&args.out),
        control: None,
        bars: Some(&set),
        stop: None,
    };
    let t_run = Instant::now();
    let out = engine::pipeline::run(&spec, BarReplay::zero_copy(set.merged()), &mut |c| {
        pb.set_position(c.published.load(std::sync::atomic::Ordering::Relaxed).min(total));
    })
    .map_err(|e| match e {
        engine::pipeline::PipelineError::Config(m) => bad_input(m),
        other => anyhow::Error::new(other),
    })?;
    let engine_s = t_run.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let results = summary_json(&out, set.symbols(), &strategy);
    let wall_s = t0.elapsed().as_secs_f64();
    let perf = serde_json::json!({
        "wall_s": wall_s,
        "open_validate_s": t_open.as_secs_f64(),
        "engine_s": engine_s,
        "bars_per_s_engine": out.bars as f64 / engine_s.max(1e-9),
        "bars_per_s_wall": out.bars as f64 / wall_s.max(1e-9),
        "shards": rc.engine.pipeline.shards,
        "placement": out.placement.iter().map(|(n, c, w)| serde_json::json!({"stage": n, "core": c, "wait": w})).collect::<Vec<_>>(),
        "counters": out.counters,
    });
    let summary = serde_json::json!({ "results": results, "perf": perf });
    let spath = args.out.join("summary.json");
    std::fs::write(&spath, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("writing {}", spath.display()))?;
    if out.counters.prediction_mismatch > 0 {
        anyhow::bail!(
            "internal error: {} shard risk decisions differed from risk's; results in {} are not trustworthy",
            out.counters.prediction_mismatch,
            args.out.display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        print_table(&results, &perf, set.symbols().len(), &args.out);
    }
    Ok(())
}

fn print_table(r: &serde_json::Value, p: &serde_json::Value, n_symbols: usize, out: &Path) {
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    let rejects: u64 = r["rejects"].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    println!(
        "ringtape backtest: {} on {} symbol(s), {} bars, {} shard(s)",
        r["strategy"].as_str().unwrap_or("?"),
        n_symbols,
        u("bars"),
        p["shards"]
    );
    println!("  {:<16}{:>16}", "trades", u("trades"));
    println!("  {:<16}{:>15.1}%", "win rate", f("win_rate") * 100.0);
    println!("  {:<16}{:>16.4}", "net PnL (USD)", f("net_pnl_usd"));
    println!("  {:<16}{:>16.4}", "max drawdown", f("max_drawdown_usd"));
    println!("  {:<16}{:>16.3}", "Sharpe (daily)", f("sharpe_daily_annualized"));
    println!("  {:<16}{:>16}", "fills", u("fills"));
    println!("  {:<16}{:>16.4}", "commission", f("commission_usd"));
    println!("  {:<16}{:>16}", "risk rejects", rejects);
    let bps = p["bars_per_s_wall"].as_f64().unwrap_or(0.0);
    println!(
        "  {:<16}{:>14.1} M  (engine {:.3} s, total {:.3} s)",
        "bars/s",
        bps / 1e6,
        p["engine_s"].as_f64().unwrap_or(0.0),
        p["wall_s"].as_f64().unwrap_or(0.0)
    );
    println!("  {:<16}{}", "run dir", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let text = include_str!("../../ringtape.example.toml");
        let rc = parse_config(text, "ringtape.example.toml").unwrap();
        assert_eq!(rc.engine, EngineConfig::default(), "the example documents the defaults");
        assert_eq!(rc.strategy_name.as_deref(), Some("sma_cross"));
        let f = strategies::factory_with("sma_cross", toml::Value::Table(rc.strategy_params.unwrap())).unwrap();
        assert_eq!(f.name(), "sma_cross");
        // The commented ORB block is valid too.
        let orb: String = text
            .split("# Opening-range breakout instead:")
            .nth(1)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        let rc = parse_config(&orb, "orb").unwrap();
        strategies::factory_with("orb", toml::Value::Table(rc.strategy_params.unwrap())).unwrap();
    }
}
