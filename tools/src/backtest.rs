//! `ringtape backtest`: a strategy over a bar directory, through the real threaded pipeline.
//!
//! Writes a run directory (see [`crate::rundir`]: written beside its target and moved into place
//! when finished; never overwritten without `--force`): `journal.rtj` (every decision and report,
//! binary), `fills.csv`, `summary.json` (the typed [`crate::summary::Summary`]: deterministic
//! results, then `perf`), `journal.meta.json` (the data set's file checksums and the effective
//! config, so the journal identifies its inputs), `config.toml` (the effective config, strategy
//! parameters included, usable as `--config`) and, without `--data`, `data/` (the built-in real
//! S&P 500 one-minute bars of 2019-11-05..08 shipped inside the binary).
//!
//! Everything the run depends on (config, strategy parameters, data set, run directory) is
//! validated before anything is written. Ctrl-C or SIGTERM stops the run early: every stage
//! drains, the run is kept with `"complete": false` in its summary, and the exit code is 130.
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here

use crate::exit::bad_input;
use crate::summary::{Perf, Results, RunFacts, StagePlacement, Summary};
use anyhow::{Context, Result};
use engine::merge::{BarSet, BarSetError};
use engine::pipeline::config::EngineConfig;
use engine::pipeline::{BarReplay, RunOutput, RunSpec, Source};
use engine::records::Interval;
use engine::strategy::StrategyFactory;
use engine::symbols::SymbolTable;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The real file `data/real/SP500_NOV2019_IDay.csv` (source and licence in data/real/SOURCES.md).
pub const BUILTIN_CSV: &str = include_str!("../../data/real/SP500_NOV2019_IDay.csv");
/// Symbol of the built-in data.
pub const BUILTIN_SYMBOL: &str = "SP500";

/// Arguments of `ringtape backtest`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Run directory: without --out, each run goes to runs/<UTC time> (e.g. \
runs/2026-11-27T17-05-09Z) and runs/latest is a symlink to the newest. A run is written beside \
its target and moved into place when finished; a failed run leaves nothing, an interrupted one \
(Ctrl-C, SIGTERM) is kept with \"complete\": false in summary.json and exits 130. An existing \
run directory is replaced only with --force.")]
pub struct Args {
    /// Bar directory (`*.rtb`); without it, the built-in S&P 500 sample (2019-11-05..08, 1 min)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Use only the bar files at this interval (1s, 1m, 5m, 1h, 1d, ...); needed when a symbol
    /// has files at several intervals
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    pub interval: Option<Interval>,
    /// Strategy name (built-in: sma_cross, orb); overrides the config's `strategy.name`
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// TOML config with tables pipeline, risk, venue, journal, account, strategy (see
    /// ringtape.example.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy shard threads (overrides pipeline.shards)
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Run directory to write; must not exist unless --force (default: a new `runs/<UTC time>`,
    /// with `runs/latest` linking to the newest run)
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing run directory at --out
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no table
    #[arg(long, short)]
    pub quiet: bool,
    /// Record the pipeline's latency probes: serve them with the engine's counters as Prometheus
    /// text on http://ADDR/metrics while the run goes (e.g. 127.0.0.1:9464; port 0 picks a free
    /// one, printed at start) and write the last sample to metrics.jsonl in the run directory
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub view: crate::viewer::ViewArgs,
}

fn parse_interval(s: &str) -> Result<Interval, String> {
    Interval::parse(s).ok_or_else(|| format!("{s:?} is not an interval (use e.g. 1s, 1m, 5m, 1h, 1d)"))
}

/// The `[account]` table.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// Capital at the start of the run, USD: the base of return and drawdown percentages.
    pub starting_capital_usd: f64,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig { starting_capital_usd: 100_000.0 }
    }
}

/// The config file: the engine's tables plus `account` and `strategy` (`name` and the strategy's
/// parameters).
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Account settings.
    pub account: AccountConfig,
    /// Strategy name from the file, if any.
    pub strategy_name: Option<String>,
    /// The `strategy` table without `name`.
    pub strategy_params: Option<toml::Table>,
}

/// Parse a config file's text (`what` names it in errors).
pub fn parse_config(text: &str, what: &str) -> Result<RunConfig> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| bad_input(format!("{what}: {e}")))?;
    let strategy = table.remove("strategy");
    let account: AccountConfig = match table.remove("account") {
        Some(v) => {
            v.try_into().map_err(|e| bad_input(format!("{what}: [account]: {e} (see README.md, Configuration)")))?
        }
        None => AccountConfig::default(),
    };
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
    Ok(RunConfig { engine, account, strategy_name: name, strategy_params: params })
}

/// Cores of this machine as the core map numbers them (highest id + 1).
pub(crate) fn machine_cores() -> usize {
    let by_id = core_affinity::get_core_ids().and_then(|ids| ids.iter().map(|c| c.id + 1).max());
    by_id.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Everything a run needs, validated; nothing written yet.
pub(crate) struct Checked {
    pub(crate) rc: RunConfig,
    pub(crate) strategy: String,
    pub(crate) params: strategies::Params,
    pub(crate) warnings: Vec<String>,
}

/// Validate the whole config: engine tables, account and strategy parameters. `what` names the
/// config in errors.
pub(crate) fn check_config(rc: RunConfig, strategy_flag: Option<&str>, what: &str, cores: usize) -> Result<Checked> {
    let warnings = rc.engine.validate(cores).map_err(|e| bad_input(format!("{what}: {e}")))?;
    let cap = rc.account.starting_capital_usd;
    if !(cap.is_finite() && cap > 0.0) {
        return Err(bad_input(format!(
            "{what}: account.starting_capital_usd = {cap} (use a positive amount in USD, e.g. 100000)"
        )));
    }
    let strategy = strategy_flag.map(str::to_string).or(rc.strategy_name.clone()).unwrap_or_else(|| "sma_cross".into());
    let params = match rc.strategy_params.clone() {
        Some(t) => strategies::params(&strategy, Some(toml::Value::Table(t))),
        None => strategies::params(&strategy, None::<toml::Value>),
    }
    .map_err(|e| bad_input(format!("{what}: {e}")))?;
    Ok(Checked { rc, strategy, params, warnings })
}

/// The effective config as TOML: engine tables, `[account]` and `[strategy]` with every parameter.
pub(crate) fn effective_config_toml(c: &Checked) -> Result<String> {
    let mut t = match toml::Value::try_from(&c.rc.engine)? {
        toml::Value::Table(t) => t,
        _ => anyhow::bail!("engine config is not a table"),
    };
    t.insert("account".into(), toml::Value::try_from(&c.rc.account)?);
    let mut s = match toml::Value::try_from(&c.params)? {
        toml::Value::Table(s) => s,
        _ => toml::Table::new(),
    };
    s.insert("name".into(), c.strategy.clone().into());
    t.insert("strategy".into(), toml::Value::Table(s));
    Ok(toml::to_string(&t)?)
}

fn builtin_data() -> Result<crate::import_csv::Imported> {
    let opts = crate::import_csv::ImportOptions {
        symbol: Some(BUILTIN_SYMBOL.into()),
        tz: crate::import_csv::parse_tz("America/New_York")?,
        interval: None,
    };
    crate::import_csv::import_reader(BUILTIN_CSV.as_bytes(), "built-in SP500_NOV2019_IDay.csv", &opts)
}

/// Write the built-in S&P 500 sample as bar files into `dir` (created).
pub(crate) fn write_builtin(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for s in &builtin_data()?.series {
        engine::barfile::write_bar_file(&dir.join(s.file_name()), &s.symbol, s.interval_s, &s.bars)?;
    }
    Ok(())
}

pub(crate) fn open_data(dir: &Path, interval: Option<Interval>) -> Result<BarSet> {
    BarSet::open_dir_filtered(dir, 2, interval).map_err(|e| match &e {
        BarSetError::MixedIntervals { .. } | BarSetError::NoSuchInterval { .. } => {
            bad_input(format!("{e} with --interval"))
        }
        _ => bad_input(e.to_string()),
    })
}

/// A backtest's call into the engine: the bar set, replayed zero-copy.
pub(crate) fn run_engine(
    cfg: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
    out_dir: &Path,
    stop: &'static AtomicBool,
    pb: &crate::progress::Progress,
) -> Result<RunOutput> {
    let total = set.total_bars();
    run_source(
        cfg,
        set.symbols(),
        Some(set),
        BarReplay::zero_copy(set.merged()),
        factory,
        out_dir,
        stop,
        None,
        &mut |n| {
            pb.set_position(n.min(total));
        },
    )
}

/// [`run_engine`] with the pipeline's probes on: the latest sample served on `addr` while the run
/// goes (refreshed at most once a second), and the last one, taken after every stage ended,
/// written to `metrics.jsonl` in `out_dir` (one line, as a paper run writes them).
pub(crate) fn run_engine_metrics(
    cfg: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
    out_dir: &Path,
    stop: &'static AtomicBool,
    pb: &crate::progress::Progress,
    addr: std::net::SocketAddr,
) -> Result<RunOutput> {
    use crate::paper::metrics;
    let latest: metrics::Latest = std::sync::Arc::default();
    let bound = metrics::serve(addr, std::sync::Arc::clone(&latest))?;
    eprintln!("backtest: metrics on http://{bound}/metrics");
    let on_stuck = |e: &engine::pipeline::PipelineError| {
        let _ = writeln!(std::io::stderr().lock(), "error: {e}; it does not return, so ringtape exits");
        std::process::exit(1);
    };
    let spec = RunSpec::new(cfg, set.symbols(), factory)
        .out_dir(out_dir)
        .stop(stop)
        .on_stuck(&on_stuck)
        .bars(set)
        .probes(true);
    let total = set.total_bars();
    let mut served: Option<Instant> = None;
    let mut last = None;
    let out = engine::pipeline::run(spec, BarReplay::zero_copy(set.merged()), &mut |c| {
        pb.set_position(c.published.load(std::sync::atomic::Ordering::Relaxed).min(total));
        let sample = metrics::Sample::engine(c);
        if served.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            served = Some(Instant::now());
            *latest.lock().unwrap_or_else(|p| p.into_inner()) = sample.prometheus();
        }
        last = Some(sample);
    })
    .map_err(|e| match e {
        engine::pipeline::PipelineError::Config(m) => bad_input(m),
        other => anyhow::Error::new(other),
    })?;
    if let Some(sample) = last {
        *latest.lock().unwrap_or_else(|p| p.into_inner()) = sample.prometheus();
        let path = out_dir.join("metrics.jsonl");
        std::fs::write(&path, format!("{}\n", sample.json())).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(out)
}

/// The one call into the engine: `source` over the universe `symbols` (`bars`: the bar set a
/// zero-copy source reads), journal and fills into `out_dir`. `progress` gets the inputs
/// published so far. `ringtape replay` runs through here too.
#[allow(clippy::too_many_arguments)] // each is one distinct input of a run; a struct would only rename them
pub(crate) fn run_source<S: Source>(
    cfg: &EngineConfig,
    symbols: &SymbolTable,
    bars: Option<&BarSet>,
    source: S,
    factory: &dyn StrategyFactory,
    out_dir: &Path,
    stop: &'static AtomicBool,
    venue: Option<Box<dyn engine::venue::Venue>>,
    progress: &mut dyn FnMut(u64),
) -> Result<RunOutput> {
    // A stage stuck in an endless loop cannot be unwound: say which one and exit (1), never hang.
    let on_stuck = |e: &engine::pipeline::PipelineError| {
        let _ = writeln!(std::io::stderr().lock(), "error: {e}; it does not return, so ringtape exits");
        std::process::exit(1);
    };
    let mut spec = RunSpec::new(cfg, symbols, factory).out_dir(out_dir).stop(stop).on_stuck(&on_stuck);
    if let Some(set) = bars {
        spec = spec.bars(set);
    }
    if let Some(v) = venue {
        spec = spec.venue(v);
    }
    engine::pipeline::run(spec, source, &mut |c| {
        progress(c.published.load(std::sync::atomic::Ordering::Relaxed));
    })
    .map_err(|e| match e {
        engine::pipeline::PipelineError::Config(m) => bad_input(m),
        other => anyhow::Error::new(other),
    })
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    // Handlers first: a signal from here on stops the run cleanly instead of killing it.
    let stop = crate::interrupt::flag();

    // 1. Validate everything before writing anything.
    let (rc, what) = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --config path)", p.display())))?;
            (parse_config(&text, &p.display().to_string())?, p.display().to_string())
        }
        None => (RunConfig::default(), "config".to_string()),
    };
    let mut rc = rc;
    if let Some(n) = args.shards {
        rc.engine.pipeline.shards = n;
    }
    let mut checked = check_config(rc, args.strategy.as_deref(), &what, machine_cores())?;
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    let factory = checked.params.factory();
    let view = crate::viewer::prepare(&args.view, &mut checked.rc.engine)?;
    if view.is_some() && args.metrics.is_some() {
        return Err(bad_input("--metrics with --view: use one at a time (the viewer runs the engine its own way)"));
    }
    let user_set = match &args.data {
        Some(d) => Some(open_data(d, args.interval)?),
        None => None,
    };
    let builtin = match &args.data {
        None => Some(builtin_data()?),
        Some(_) => None,
    };
    let plan = crate::rundir::Plan::new(args.out.as_deref(), args.force)?;
    if crate::interrupt::requested() {
        // Stopped while checking: there is no run to keep.
        return Err(crate::exit::interrupted("interrupted before the run started; nothing written"));
    }

    // 2. Write the run beside its target.
    let rd = plan.start()?;
    let (set, data_dir) = match (user_set, builtin) {
        (Some(set), _) => (set, args.data.clone().unwrap_or_default()),
        (None, Some(imported)) => {
            let d = rd.path().join("data");
            std::fs::create_dir(&d).with_context(|| format!("creating {}", d.display()))?;
            for s in &imported.series {
                engine::barfile::write_bar_file(&d.join(s.file_name()), &s.symbol, s.interval_s, &s.bars)?;
            }
            (open_data(&d, args.interval)?, rd.target().join("data"))
        }
        (None, None) => unreachable!("either --data or the built-in data"),
    };
    let t_open = t0.elapsed();
    let config_toml = effective_config_toml(&checked)?;
    let mut intervals: Vec<Interval> =
        set.streams().iter().map(|s| Interval { secs: s.file.header().interval_s }).collect();
    intervals.sort();
    intervals.dedup();
    let fingerprint = set.fingerprint();
    let session = engine::records::session_id(
        "bt",
        format!("{config_toml}{fingerprint:?}{}{:?}", checked.strategy, serde_json::to_string(&checked.params)?)
            .as_bytes(),
    );
    let meta = serde_json::json!({
        "format": "ringtape journal v2: 16-byte header (magic RTJRNL\\0\\x01, version u16, record size u16), then 72-byte records",
        "session": session,
        // Absolute, so `ringtape replay` finds the data from any directory.
        "data_dir": std::path::absolute(&data_dir).unwrap_or_else(|_| data_dir.clone()).display().to_string(),
        "files": fingerprint.iter().map(|(s, i, n, h)| serde_json::json!({"symbol": s, "interval_s": i, "bars": n, "xxh3": format!("{h:016x}")})).collect::<Vec<_>>(),
        "symbols": set.symbols().names(),
        "strategy": checked.strategy,
        "strategy_params": serde_json::to_value(&checked.params)?,
        "config": config_toml,
    });
    let mpath = rd.path().join("journal.meta.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("writing {}", mpath.display()))?;
    std::fs::write(rd.path().join("config.toml"), &config_toml)
        .with_context(|| format!("writing {}", rd.path().join("config.toml").display()))?;

    let total = set.total_bars();
    let show = !args.quiet && total > 500_000;
    let pb = crate::progress::bar("backtest", total, "bars", show);
    let t_run = Instant::now();
    let out = match (view, args.metrics) {
        (None, Some(addr)) => {
            run_engine_metrics(&checked.rc.engine, &set, factory.as_ref(), rd.path(), stop, &pb, addr)?
        }
        (Some(v), _) => {
            crate::viewer::run_engine(v, &args.view, &checked.rc.engine, &set, factory.as_ref(), rd.path(), stop, &pb)?
        }
        (None, None) => run_engine(&checked.rc.engine, &set, factory.as_ref(), rd.path(), stop, &pb)?,
    };
    let engine_s = t_run.elapsed().as_secs_f64();
    pb.finish_and_clear();

    // 3. The summary, then the run into place.
    let facts = RunFacts {
        strategy: &checked.strategy,
        strategy_params: serde_json::to_value(&checked.params)?,
        intervals: intervals.iter().map(ToString::to_string).collect(),
        starting_capital_usd: checked.rc.account.starting_capital_usd,
        end_of_run_closeouts: Some(out.positions.symbols.iter().map(|b| b.closeouts).sum()),
    };
    let results = Results::new(&out, set.symbols(), facts);
    let wall_s = t0.elapsed().as_secs_f64();
    let perf = Perf {
        wall_s,
        open_validate_s: t_open.as_secs_f64(),
        engine_s,
        bars_per_s_engine: out.bars as f64 / engine_s.max(1e-9),
        bars_per_s_wall: out.bars as f64 / wall_s.max(1e-9),
        topology: out.topology.as_str().to_string(),
        venue: out.venue.to_string(),
        // Inline runs every symbol on the calling thread: `pipeline.shards` applies to threads.
        shards: if out.topology == engine::pipeline::config::Topology::Threads {
            checked.rc.engine.pipeline.shards
        } else {
            1
        },
        placement: out
            .placement
            .iter()
            .map(|(n, c, w)| StagePlacement { stage: n.clone(), core: *c, wait: w.clone() })
            .collect(),
        counters: serde_json::to_value(&out.counters)?,
    };
    let incomplete_reason =
        out.interrupted.then(|| format!("interrupted by a signal after {} of {total} bars", out.bars));
    let summary =
        Summary { command: "backtest".into(), complete: incomplete_reason.is_none(), incomplete_reason, results, perf };
    summary.write(&rd.path().join("summary.json"))?;
    drop(set); // unmap the data before the directory holding built-in data moves
    let run_dir = rd.finish()?;

    // 4. Report from the file as written.
    let summary = Summary::read(&run_dir.join("summary.json"))?;
    summary.log(&run_dir);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        print!("{}", summary.table(&run_dir));
    }
    if out.interrupted {
        let _ = std::io::stdout().flush();
        return Err(crate::exit::interrupted(format!(
            "interrupted: stopped after {} of {total} bars; the partial run is in {} (summary.json: \"complete\": false)",
            out.bars,
            run_dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let text = include_str!("../../ringtape.example.toml");
        let rc = parse_config(text, "ringtape.example.toml").unwrap();
        assert_eq!(rc.engine, EngineConfig::default(), "the example documents the defaults");
        assert_eq!(rc.account, AccountConfig::default(), "the example documents the defaults");
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

    #[test]
    fn the_written_config_is_the_effective_one_and_parses_back() {
        for name in strategies::NAMES {
            let mut rc = RunConfig::default();
            rc.account.starting_capital_usd = 25_000.0;
            rc.engine.pipeline.shards = 2;
            let c = check_config(rc, Some(name), "test", 4).unwrap();
            let text = effective_config_toml(&c).unwrap();
            let back = parse_config(&text, "written").unwrap();
            assert_eq!(back.engine, c.rc.engine, "{text}");
            assert_eq!(back.account.starting_capital_usd, 25_000.0);
            assert_eq!(back.strategy_name.as_deref(), Some(*name));
            // Every parameter is written, defaults included, and reads back to the same values.
            let again = strategies::params(name, back.strategy_params.map(toml::Value::Table)).unwrap();
            assert_eq!(again, c.params, "{text}");
            let defaults = strategies::params(name, None::<toml::Value>).unwrap();
            let n_keys = match toml::Value::try_from(&defaults).unwrap() {
                toml::Value::Table(t) => t.len(),
                _ => 0,
            };
            assert!(n_keys >= 3, "{name}: {n_keys} parameters");
        }
    }
}
