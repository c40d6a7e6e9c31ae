//! `ringtape render`: charts of a run or a data directory to a PNG, without a display.
//!
//! With a run directory (it has `journal.meta.json`), the bars come from the meta's `data_dir`,
//! the fills from its `fills.csv`, and the overlays from re-running the run's strategy (with its
//! recorded parameters and config) through the inline pipeline ([`viz::record::run_strategy`]).
//! A paper run has no data directory: its bars come from the inputs its journal recorded. With a
//! data directory there are no fills unless `--strategy` names one to run. `ringtape view`
//! loads through here too.

use crate::exit::bad_input;
use anyhow::{Context, Result};
use engine::journal::{Body, ControlKind, Input, JournalReader};
use engine::merge::BarSet;
use engine::pipeline::config::EngineConfig;
use engine::pipeline::messages::InputRec;
use engine::records::{Event, EventKind, Interval, Side, parse_px};
use engine::strategy::StrategyFactory;
use engine::symbols::SymbolTable;
use std::path::{Path, PathBuf};
use viz::canvas::Canvas;
use viz::layout::Layout;
use viz::model::{FillMark, SymbolChart, View};
use viz::scene::Scene;

/// `ringtape render` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run directory (from `ringtape backtest` or `paper`) or a directory of bar files
    #[arg(long, value_name = "DIR|RUN_DIR")]
    pub data: PathBuf,
    /// The PNG to write
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub pick: Pick,
    /// Image width, pixels
    #[arg(long, default_value_t = 1600, value_parser = clap::value_parser!(u32).range(200..=8192))]
    pub width: u32,
    /// Image height, pixels
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u32).range(150..=8192))]
    pub height: u32,
    /// Panels: 1, 2x2 or 3x3 (default: the smallest that fits the tickers)
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<Layout>,
}

/// What to load and show (shared with `ringtape view`).
#[derive(Debug, Clone, clap::Args)]
pub struct Pick {
    /// Only this ticker
    #[arg(long, value_name = "SYM")]
    pub symbol: Option<String>,
    /// First bar shown: RFC 3339 time or a UTC date (2019-11-05)
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Last bar shown: RFC 3339 time or a UTC date (the whole day)
    #[arg(long, value_name = "T", value_parser = parse_time_end)]
    pub to: Option<i64>,
    /// Show only the last N bars of the range
    #[arg(long, value_name = "N")]
    pub bars: Option<usize>,
    /// The bar interval to show where a directory holds several (1m, 5m, 1d, ...)
    #[arg(long, value_parser = parse_interval)]
    pub interval: Option<Interval>,
    /// Run this strategy for its overlays and fills (default: a run's own strategy; none for a
    /// data directory)
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
}

fn parse_interval(s: &str) -> Result<Interval, String> {
    Interval::parse(s).ok_or_else(|| format!("{s:?}: expected an interval such as 1s, 1m, 5m, 1h, 1d"))
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("{s:?}: expected 1, 2x2 or 3x3"))
}

fn parse_ts(s: &str, end_of_day: bool) -> Result<i64, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).map_err(|e| e.to_string());
    }
    let d: jiff::civil::Date = s
        .parse()
        .map_err(|_| format!("{s:?}: expected an RFC 3339 time (2019-11-05T14:30:00Z) or a date (2019-11-05)"))?;
    let z = d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| e.to_string())?;
    let ns = i64::try_from(z.timestamp().as_nanosecond()).map_err(|e| e.to_string())?;
    Ok(if end_of_day { ns + 86_400_000_000_000 - 1 } else { ns })
}

fn parse_time(s: &str) -> Result<i64, String> {
    parse_ts(s, false)
}

fn parse_time_end(s: &str) -> Result<i64, String> {
    parse_ts(s, true)
}

/// Charts loaded from a run or data directory, with the views `pick` asks for.
#[derive(Debug)]
pub struct Loaded {
    /// One per ticker.
    pub charts: Vec<SymbolChart>,
    /// Each chart's view.
    pub views: Vec<View>,
}

/// Load `path` (run or data directory) as `pick` says.
pub fn load(path: &Path, pick: &Pick) -> Result<Loaded> {
    let meta_path = path.join("journal.meta.json");
    let mut charts = if meta_path.is_file() { load_run(path, &meta_path, pick)? } else { load_data(path, pick)? };
    if let Some(sym) = &pick.symbol {
        let names: Vec<String> = charts.iter().map(|c| c.symbol.clone()).collect();
        charts.retain(|c| &c.symbol == sym);
        if charts.is_empty() {
            return Err(bad_input(format!("--symbol {sym}: not in {} (it has {})", path.display(), names.join(", "))));
        }
    }
    let views = charts
        .iter()
        .map(|c| {
            let first = pick.from.map_or(0, |t| c.bars.partition_point(|b| b.ts_event_ns < t));
            let end = pick.to.map_or(c.bars.len(), |t| c.bars.partition_point(|b| b.ts_event_ns <= t));
            let first = pick.bars.map_or(first, |n| end.saturating_sub(n).max(first));
            View { first, count: end.saturating_sub(first).max(1) }.clamped(c.bars.len())
        })
        .collect();
    Ok(Loaded { charts, views })
}

fn open(dir: &Path, interval: Option<Interval>) -> Result<BarSet> {
    crate::backtest::open_data(dir, interval)
}

fn factory(name: &str) -> Result<Box<dyn StrategyFactory>> {
    strategies::factory(name).map_err(|e| bad_input(format!("--strategy: {e}")))
}

fn load_data(dir: &Path, pick: &Pick) -> Result<Vec<SymbolChart>> {
    if !dir.is_dir() {
        return Err(bad_input(format!(
            "{}: not a directory (give a run directory or a directory of bar files)",
            dir.display()
        )));
    }
    let set = open(dir, pick.interval)?;
    match &pick.strategy {
        None => Ok(viz::record::charts_of(&set)),
        Some(name) => Ok(viz::record::run_strategy(&EngineConfig::default(), &set, factory(name)?.as_ref())?),
    }
}

fn load_run(run: &Path, meta_path: &Path, pick: &Pick) -> Result<Vec<SymbolChart>> {
    let text = std::fs::read_to_string(meta_path).with_context(|| format!("reading {}", meta_path.display()))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad_input(format!("{}: {e}", meta_path.display())))?;
    // A backtest names its data directory; a paper run holds its bars in its journal.
    let (symbols, charts, inputs) = match meta["data_dir"].as_str() {
        Some(d) => {
            let set =
                open_run_data(Path::new(d), &meta).with_context(|| format!("the data of run {}", run.display()))?;
            (set.symbols().clone(), viz::record::charts_of(&set), None)
        }
        None => {
            let (symbols, charts, inputs) = journal_bars(run, &meta)?;
            (symbols, charts, Some(inputs))
        }
    };
    let mut cfg = match std::fs::read_to_string(run.join("config.toml")) {
        Ok(t) => crate::backtest::parse_config(&t, &run.join("config.toml").display().to_string())?.engine,
        Err(_) => EngineConfig::default(),
    };
    let factory = match (&pick.strategy, meta["strategy"].as_str()) {
        (Some(name), _) => Some(factory(name)?),
        (None, Some(name)) => {
            let params = meta.get("strategy_params").cloned().unwrap_or(serde_json::Value::Null);
            let p = if params.is_null() {
                strategies::params(name, None::<serde_json::Value>)
            } else {
                strategies::params(name, Some(params))
            };
            Some(p.map_err(|e| bad_input(format!("{}: {e}", meta_path.display())))?.factory())
        }
        (None, None) => None,
    };
    let rerun = factory.is_some();
    let mut charts = match (factory, inputs) {
        (Some(f), Some(events)) => {
            // Every input of the run, its ticks included (as `ringtape replay` does).
            cfg.pipeline.timer_ms = 0;
            viz::record::run_events(&cfg, &symbols, charts, f.as_ref(), events)?
        }
        (Some(f), None) => viz::record::run_strategy_on(&cfg, &symbols, charts, f.as_ref())?,
        (None, _) => charts,
    };
    // The run's own fills are the record: they replace the re-run's (which should be the same
    // when the strategy is the run's own; say so when they are not).
    let fills = read_fills(&run.join("fills.csv"))?;
    for c in &mut charts {
        let recorded: Vec<FillMark> = fills.iter().filter(|(s, _)| *s == c.symbol).map(|(_, f)| *f).collect();
        if rerun && pick.strategy.is_none() && c.fills != recorded {
            eprintln!(
                "warning: {}: re-running the strategy gave {} fills where fills.csv has {}; the chart shows fills.csv and the re-run's overlays",
                c.symbol,
                c.fills.len(),
                recorded.len()
            );
        }
        c.fills = recorded;
    }
    Ok(charts)
}

/// A backtest's data directory, at the one interval the run used.
fn open_run_data(dir: &Path, meta: &serde_json::Value) -> Result<BarSet> {
    let mut secs: Vec<u64> =
        meta["files"].as_array().into_iter().flatten().filter_map(|f| f["interval_s"].as_u64()).collect();
    secs.sort_unstable();
    secs.dedup();
    let interval = match secs.as_slice() {
        [s] => u32::try_from(*s).ok().map(|secs| Interval { secs }),
        _ => None,
    };
    open(dir, interval)
}

/// The bars a run journaled as inputs (paper runs record every input), one chart per symbol of
/// the meta's `symbols`, each bar once (by start time); and every input as an event, to re-run
/// the strategy over exactly what it saw.
fn journal_bars(run: &Path, meta: &serde_json::Value) -> Result<(SymbolTable, Vec<SymbolChart>, Vec<Event>)> {
    let jpath = run.join("journal.rtj");
    let names: Vec<&str> = meta["symbols"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    let mut symbols = SymbolTable::new();
    for n in &names {
        symbols.intern(n).map_err(|e| bad_input(format!("{}: symbol {n:?}: {e}", run.display())))?;
    }
    let mut charts: Vec<SymbolChart> = names.iter().map(|n| SymbolChart::new(*n, 0, Vec::new())).collect();
    let mut reader = JournalReader::open(&jpath)
        .map_err(|e| bad_input(format!("{e} (a run without data_dir is read from its journal)")))?;
    let mut events = Vec::new();
    while let Some(r) = reader.next_record().map_err(|e| bad_input(e.to_string()))? {
        let rec = |kind: u8, interval_s: u16| InputRec {
            ts_recv_ns: r.ts_ns,
            symbol: r.symbol,
            kind,
            interval_s,
            payload: r.payload,
        };
        match &r.body {
            Body::Input(Input::Control(c))
                if matches!(c.kind, Some(ControlKind::EndOfData | ControlKind::Shutdown)) => {}
            Body::Input(Input::Unknown(_) | Input::BarRefs(_)) => {}
            Body::Input(i) => {
                if let Input::Bar { bar, interval_s } = i
                    && let Some(c) = charts.get_mut(r.symbol.0 as usize)
                {
                    c.interval_s = u32::from(*interval_s);
                    c.bars.push(*bar);
                }
                events.push(rec(r.sub, r.aux).to_event());
            }
            Body::Timer { .. } => events.push(rec(EventKind::Timer.raw(), 0).to_event()),
            _ => {}
        }
    }
    for c in &mut charts {
        c.bars.sort_by_key(|b| b.ts_event_ns);
        c.bars.dedup_by_key(|b| b.ts_event_ns);
    }
    charts.retain(|c| !c.bars.is_empty());
    if charts.is_empty() {
        return Err(bad_input(format!("{}: the journal has no bars to draw", jpath.display())));
    }
    Ok((symbols, charts, events))
}

/// `fills.csv` of a run: (symbol, fill) in file order. A missing file is no fills.
pub fn read_fills(path: &Path) -> Result<Vec<(String, FillMark)>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let h = rdr.headers()?.clone();
    let col =
        |n: &str| h.iter().position(|c| c == n).ok_or_else(|| bad_input(format!("{}: no {n} column", path.display())));
    let (ts, sym, side, qty, px) = (col("ts")?, col("symbol")?, col("side")?, col("qty")?, col("price")?);
    let mut out = Vec::new();
    for (k, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{} line {}", path.display(), k + 2))?;
        let bad =
            || bad_input(format!("{} line {}: bad fill {:?}", path.display(), k + 2, rec.iter().collect::<Vec<_>>()));
        let ts_ns = rec[ts]
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
            .ok_or_else(bad)?;
        let side = match &rec[side] {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err(bad()),
        };
        let qty = rec[qty].parse().map_err(|_| bad())?;
        let px_e9 = parse_px(&rec[px]).ok_or_else(bad)?;
        out.push((rec[sym].to_string(), FillMark { ts_ns, side, qty, px_e9 }));
    }
    Ok(out)
}

/// A scene over what was loaded.
pub fn scene(l: Loaded) -> Scene {
    let mut s = Scene::new(l.charts, 1);
    s.views = l.views;
    s
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let loaded = load(&args.data, &args.pick)?;
    let mut scene = scene(loaded);
    if let Some(l) = args.layout {
        scene.layout = l;
    }
    let mut canvas = Canvas::new(args.width as usize, args.height as usize, scene.theme.bg);
    let panels = scene.draw(&mut canvas);
    viz::png::write(&canvas, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let names: Vec<&str> = panels.iter().map(|(i, _)| scene.charts[*i].symbol.as_str()).collect();
    println!("{}: {}x{}, {} panel(s): {}", args.out.display(), args.width, args.height, panels.len(), names.join(", "));
    Ok(())
}
