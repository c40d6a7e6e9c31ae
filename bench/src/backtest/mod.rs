//! `backtest`: backtest throughput, end to end (the `ringtape` binary) and engine-only (in process),
//! on both topologies (`inline`, `threads`) and each shard count, against single-threaded baselines.
//!
//! **Data.** A directory of bar files (`--bars-dir`, default `target/bench-data/sma{S}x{D}` with
//! `S = --symbols` (10) and `D = --days` (1000), relative to the current directory). When it holds
//! no `.rtb` file it is generated first with `ringtape synth --symbols S --days D --interval 1m
//! --seed 1` (10 x 1000: 3.9M one-minute bars; `--days 100`: 390,000); `--quick` uses 2 symbols x
//! 50 days (39,000 bars) in `target/bench-data/sma2x50` instead. The `ringtape` binary is the one
//! next to this executable (`--ringtape PATH` overrides).
//!
//! **Combinations.** Every mode below except the baselines runs once per (topology, shards) pair
//! of `--topologies` x `--shards` (default `inline,threads` x `1,2`). The topology is set with a
//! one-line config file (`[pipeline] topology = "..."`, everything else default) passed with
//! `--config`, and the shard count with `--shards`. The `inline` topology runs every symbol on
//! the calling thread and ignores `pipeline.shards` (its 2-shard rows measure the same work as its
//! 1-shard rows; they are kept to show that).
//!
//! **Modes.** Every mode processes the whole data set; bars/s = bars in the set / seconds.
//!
//! * **end to end (process)**: `ringtape backtest --data DIR --strategy S --config TOPO.toml
//!   --shards N --out RUN --quiet`, timed with `Instant` around spawn + wait: process start to exit,
//!   after the summary is written. Includes exec and dynamic loading, opening and validating the
//!   data, writing `journal.meta.json`, the pipeline run with its journal (`journal.rtj`,
//!   `fills.csv`) and `summary.json`. Each run gets a fresh run directory in a temporary
//!   directory, deleted after its `summary.json` and `fills.csv` are read. The `perf` section of
//!   that summary (`wall_s`, `open_validate_s`, `engine_s`, counters, placement, topology) gives
//!   the in-process breakdown.
//! * **engine-only**: in this process, `engine::pipeline::run` over `BarReplay` of an already
//!   opened set with `EngineConfig::default()` plus the topology and shard count, and `out_dir:
//!   None` (no journal files); only the `run()` call is timed (for `threads` it includes spawning
//!   and joining the stage threads).
//! * **open+validate**: `BarSet::open_dir(dir, 2)`: map every file, XXH3 the data, check every
//!   record, as `ringtape backtest` does before it runs. Files are in the page cache (the warm-up
//!   round reads them), so this is CPU, not disk.
//! * Single-threaded baselines over the opened set, to put the pipeline in context:
//!   **plain scan** sums the closes of every file's `bars()` slice in turn (the physical ceiling:
//!   reading every bar once); **merge only** sums the closes of `set.merged()` (the k-way merge
//!   the sequencer runs: the ceiling of a single sequencer); **replay only** pulls every event out
//!   of `BarReplay` (merge + building the 64-byte ring event, i.e. the sequencer's work minus
//!   publishing).
//!
//! **Procedure.** `--warmup` unmeasured rounds (default 1), then `--runs` measured rounds (default
//! 5). A round runs every mode once: open+validate, the baselines, engine-only for each
//! combination, then end to end for each combination. Rounds interleave the modes so that the
//! slow drifts of a noisy shared machine hit all modes alike; the combination order alternates
//! between rounds. The report gives median, min and max over the measured rounds, every run's
//! time, how far each median is from the plain scan, and the load average and running compilers
//! at start and end (a busy machine makes the numbers meaningless).
//!
//! **Checks** (a failure exits non-zero after printing the report): every end-to-end run's
//! `results` JSON and `fills.csv` bytes are identical across runs, topologies and shard counts,
//! and its summary names the topology asked for; every engine-only run's totals (bars, fills,
//! trades, wins, net PnL, commissions) are identical and match the end-to-end results; no
//! strategy fault, bad event or unknown-order report; the three baselines see the same bars and
//! close sum.
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{BarReplay, Next, RunOutput, RunSpec, Source};
use engine::records::PX_SCALE;
use engine::strategy::StrategyFactory;

use crate::common::{self, MachineInfo, command_line, fmt_count, machine_info, median};

mod report;

use report::*;
pub(crate) use report::{fmt_ms, load_now, timed};

/// Data set with `--quick` (2 symbols x 50 days).
const QUICK_SIZE: DataSize = DataSize { symbols: 2, days: 50 };
const SYNTH_SEED: u64 = 1;
/// Validation threads of `BarSet::open_dir`, as in `ringtape backtest`.
const OPEN_THREADS: usize = 2;

/// Options of `ringtape-bench backtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bar directory (*.rtb); generated with `ringtape synth` when it holds no .rtb file
    /// [default: target/bench-data/sma{SYMBOLS}x{DAYS}; target/bench-data/sma2x50 with --quick]
    #[arg(long, value_name = "DIR")]
    pub bars_dir: Option<PathBuf>,
    /// Symbols of the generated data set
    #[arg(long, default_value_t = 10)]
    pub symbols: u32,
    /// Days (390 one-minute bars each) of the generated data set (1000: 3.9M bars; 100: 390,000)
    #[arg(long, default_value_t = 1000)]
    pub days: u32,
    /// Small data set (2 symbols x 50 days of 1-minute bars) for smoke runs
    #[arg(long)]
    pub quick: bool,
    /// Topologies to measure, comma-separated (inline, threads)
    #[arg(long, value_name = "T,..", value_delimiter = ',', default_value = "inline,threads", value_parser = parse_topology)]
    pub topologies: Vec<Topology>,
    /// Shard counts to measure, comma-separated
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1,2")]
    pub shards: Vec<usize>,
    /// Measured rounds (each runs every mode once)
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Unmeasured warm-up rounds before the measured ones (results are still checked)
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Strategy (built-in name, default parameters)
    #[arg(long, default_value = "sma_cross")]
    pub strategy: String,
    /// The `ringtape` binary [default: `ringtape` next to this executable]
    #[arg(long, value_name = "PATH")]
    pub ringtape: Option<PathBuf>,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also run every engine-only combination with the engine's latency probes on
    /// (`RunSpec::probes`), right after the same combination with them off, and report the
    /// on/off ratio of the medians
    #[arg(long)]
    pub probes: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DataSize {
    pub(crate) symbols: u32,
    pub(crate) days: u32,
}

fn parse_topology(s: &str) -> Result<Topology, String> {
    match s {
        "inline" => Ok(Topology::Inline),
        "threads" => Ok(Topology::Threads),
        _ => Err(format!("{s:?}: use inline or threads")),
    }
}

/// One measured combination: a topology and a shard count (and, engine-only with `--probes`,
/// the latency probes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Combo {
    topology: Topology,
    shards: usize,
    probes: bool,
}

impl Combo {
    fn text(self) -> String {
        format!("{} {}{}", self.topology.as_str(), self.shards, if self.probes { " probes" } else { "" })
    }
    /// The same combination with the probes on.
    fn probed(self) -> Self {
        Combo { probes: true, ..self }
    }
}

/// The config file that selects `topology` (everything else default).
fn topology_config(tmp: &Path, topology: Topology) -> anyhow::Result<PathBuf> {
    let path = tmp.join(format!("{}.toml", topology.as_str()));
    std::fs::write(&path, format!("[pipeline]\ntopology = \"{}\"\n", topology.as_str()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Data set.
// ---------------------------------------------------------------------------------------------

pub(crate) fn has_bar_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == engine::barfile::EXTENSION))
    })
}

/// The `ringtape` binary: `--ringtape`, or `ringtape` next to the current executable.
pub(crate) fn ringtape_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().context("locating the current executable")?.with_file_name("ringtape"),
    };
    if !path.is_file() {
        bail!(
            "the ringtape binary is missing at {}: build it with cargo build --release -p ringtape-tools \
             (with the same target dir as ringtape-bench), or pass --ringtape PATH",
            path.display()
        );
    }
    Ok(path)
}

/// Generate the data set with `ringtape synth`; returns the seconds it took.
pub(crate) fn synth(ringtape: &Path, dir: &Path, size: DataSize) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Command::new(ringtape);
    cmd.arg("synth")
        .args(["--symbols", &size.symbols.to_string(), "--days", &size.days.to_string()])
        .args(["--interval", "1m", "--seed", &SYNTH_SEED.to_string(), "--out"])
        .arg(dir);
    eprintln!("backtest: generating {} ({} symbols x {} days of 1m bars) ...", dir.display(), size.symbols, size.days);
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {}", ringtape.display()))?;
    if !out.status.success() {
        bail!("{} synth failed ({}): {}", ringtape.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(t.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// The measured operations.
// ---------------------------------------------------------------------------------------------

/// What a single-threaded pass over the bars saw: bar count and wrapping sum of the closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanSum {
    pub(crate) bars: u64,
    pub(crate) close_sum: i64,
}

/// Every file's bars in turn (no merge).
pub(crate) fn plain_scan(set: &BarSet) -> ScanSum {
    let mut s = ScanSum { bars: 0, close_sum: 0 };
    for stream in set.streams() {
        let bars = black_box(stream.file.bars());
        s.bars += bars.len() as u64;
        for b in bars {
            s.close_sum = s.close_sum.wrapping_add(b.close_px_e9);
        }
    }
    black_box(s)
}

/// The k-way merge in (end time, symbol, interval) order.
fn merge_only(set: &BarSet) -> ScanSum {
    let mut s = ScanSum { bars: 0, close_sum: 0 };
    for it in set.merged() {
        s.bars += 1;
        s.close_sum = s.close_sum.wrapping_add(black_box(it.bar).close_px_e9);
    }
    black_box(s)
}

/// The sequencer's source: merge plus building each ring event.
fn replay_only(set: &BarSet) -> ScanSum {
    let mut s = ScanSum { bars: 0, close_sum: 0 };
    let mut src = BarReplay::new(set.merged());
    loop {
        match src.next() {
            Next::Event(ev) => {
                let ev = black_box(ev);
                s.bars += 1;
                if let Some(b) = ev.as_bar() {
                    s.close_sum = s.close_sum.wrapping_add(b.close_px_e9);
                }
            }
            Next::BarRef { .. } | Next::Idle => {}
            Next::End => break,
        }
    }
    black_box(s)
}

/// Run the pipeline over the whole set in process, without journal files.
fn engine_run(set: &BarSet, factory: &dyn StrategyFactory, combo: Combo) -> anyhow::Result<RunOutput> {
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = combo.topology;
    cfg.pipeline.shards = combo.shards;
    let spec = RunSpec::new(&cfg, set.symbols(), factory).bars(set).probes(combo.probes);
    Ok(engine::pipeline::run(spec, BarReplay::zero_copy(set.merged()), &mut |_| {})?)
}

/// The deterministic outcome of an engine-only run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EngineTotals {
    bars: u64,
    fills: u64,
    trades: u64,
    wins: u64,
    net_e9: i128,
    commission_e9: i128,
}

impl EngineTotals {
    fn of(out: &RunOutput) -> Self {
        let (fills, trades, wins, net_e9, commission_e9) = out.positions.totals();
        EngineTotals { bars: out.bars, fills, trades, wins, net_e9, commission_e9 }
    }

    /// Compare with the `results` of a `summary.json` (same fields, USD as `ringtape` computes it).
    fn matches_summary(&self, r: &serde_json::Value) -> bool {
        let usd = |v: i128| serde_json::json!(v as f64 / PX_SCALE as f64);
        r["bars"].as_u64() == Some(self.bars)
            && r["fills"].as_u64() == Some(self.fills)
            && r["trades"].as_u64() == Some(self.trades)
            && r["wins"].as_u64() == Some(self.wins)
            && r["net_pnl_usd"] == usd(self.net_e9)
            && r["commission_usd"] == usd(self.commission_e9)
    }
}

/// Stage placement: (stage, core, wait).
type Placement = Vec<(String, Option<u64>, String)>;

fn placement_of_output(out: &RunOutput) -> Placement {
    out.placement.iter().map(|(s, c, w)| (s.clone(), c.map(|c| c as u64), w.clone())).collect()
}

fn placement_of_summary(perf: &serde_json::Value) -> Placement {
    perf["placement"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["stage"].as_str().unwrap_or("?").to_owned(),
                        p["core"].as_u64(),
                        p["wait"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `all 5 stages unpinned, wait Backoff`, or `sequencer core 0 Spin, shard-0 core 1 Spin, ...`.
fn placement_text(p: &Placement) -> String {
    if p.is_empty() {
        return "not reported".into();
    }
    let core = |c: Option<u64>| c.map_or_else(|| "unpinned".to_owned(), |c| format!("core {c}"));
    if p.iter().all(|x| x.1 == p[0].1 && x.2 == p[0].2) {
        return format!("all {} stages {}, wait {}", p.len(), core(p[0].1), p[0].2);
    }
    p.iter().map(|(s, c, w)| format!("{s} {} {w}", core(*c))).collect::<Vec<_>>().join(", ")
}

/// One end-to-end run of the `ringtape` binary.
#[derive(Debug, Clone)]
struct E2eRun {
    combo: Combo,
    /// `perf.topology` of the summary (what actually ran).
    topology_ran: String,
    /// Length and hash (std `DefaultHasher`) of `fills.csv`.
    fills_len: usize,
    fills_hash: u64,
    /// `fills.csv` is byte-identical to the first run's.
    fills_same: bool,
    round: usize,
    measured: bool,
    /// Spawn to exit.
    process_s: f64,
    /// `perf.wall_s` (ringtape's own start to summary).
    wall_s: f64,
    open_validate_s: f64,
    engine_s: f64,
    counters: serde_json::Value,
    placement: Placement,
    results: serde_json::Value,
}

/// The `ringtape backtest` invocation of one end-to-end run.
struct E2eCall<'a> {
    ringtape: &'a Path,
    data: &'a Path,
    strategy: &'a str,
    config: &'a Path,
    combo: Combo,
}

/// Run `ringtape backtest` once; `reference_fills` is the first run's `fills.csv` (set by the
/// first call).
fn run_e2e(
    call: &E2eCall<'_>,
    run_dir: &Path,
    round: usize,
    measured: bool,
    reference_fills: &mut Option<Vec<u8>>,
) -> anyhow::Result<E2eRun> {
    let E2eCall { ringtape, data, strategy, config, combo } = *call;
    let shards = combo.shards;
    let mut cmd = Command::new(ringtape);
    cmd.arg("backtest")
        .arg("--data")
        .arg(data)
        .args(["--strategy", strategy, "--config"])
        .arg(config)
        .args(["--shards", &shards.to_string(), "--out"])
        .arg(run_dir)
        .arg("--quiet");
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {}", ringtape.display()))?;
    let process_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{} backtest ({}) --shards {shards} failed ({}): {}",
            ringtape.display(),
            combo.topology.as_str(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let spath = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&spath).with_context(|| format!("reading {}", spath.display()))?;
    let mut summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", spath.display()))?;
    let fpath = run_dir.join("fills.csv");
    let fills = std::fs::read(&fpath).with_context(|| format!("reading {}", fpath.display()))?;
    let fills_hash = {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        fills.hash(&mut h);
        h.finish()
    };
    let fills_len = fills.len();
    let fills_same = match reference_fills {
        Some(r) => *r == fills,
        None => {
            *reference_fills = Some(fills);
            true
        }
    };
    std::fs::remove_dir_all(run_dir).with_context(|| format!("removing {}", run_dir.display()))?;
    let perf = summary["perf"].take();
    let f = |k: &str| perf[k].as_f64().unwrap_or(f64::NAN);
    Ok(E2eRun {
        combo,
        topology_ran: perf["topology"].as_str().unwrap_or("?").to_owned(),
        fills_len,
        fills_hash,
        fills_same,
        round,
        measured,
        process_s,
        wall_s: f("wall_s"),
        open_validate_s: f("open_validate_s"),
        engine_s: f("engine_s"),
        counters: perf["counters"].clone(),
        placement: placement_of_summary(&perf),
        results: summary["results"].take(),
    })
}

/// One engine-only run.
#[derive(Debug, Clone)]
struct EngineRun {
    combo: Combo,
    /// `RunOutput::topology` (what actually ran).
    topology_ran: Topology,
    round: usize,
    measured: bool,
    secs: f64,
    totals: EngineTotals,
    counters: serde_json::Value,
    placement: Placement,
}

// ---------------------------------------------------------------------------------------------
// Statistics and report.
// ---------------------------------------------------------------------------------------------

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn median_u64(v: &[u64]) -> f64 {
    median(&v.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// Entry point of `ringtape-bench backtest`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.runs > 0, "--runs must be > 0");
    ensure!(!args.shards.is_empty(), "--shards needs at least one shard count");
    ensure!(!args.topologies.is_empty(), "--topologies needs at least one topology");
    for &n in &args.shards {
        ensure!((1..=256).contains(&n), "--shards: {n} is out of range (use 1..=256)");
    }
    let factory =
        strategies::factory(&args.strategy).map_err(|e| anyhow::anyhow!("--strategy {}: {e}", args.strategy))?;
    let ringtape = ringtape_binary(args.ringtape.as_deref())?;
    let size = if args.quick { QUICK_SIZE } else { DataSize { symbols: args.symbols, days: args.days } };
    ensure!(size.symbols > 0 && size.days > 0, "--symbols and --days must be > 0");
    let dir = args
        .bars_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/bench-data/sma{}x{}", size.symbols, size.days)));
    let generated_s = if has_bar_files(&dir) { None } else { Some(synth(&ringtape, &dir, size)?) };

    let command = command_line();
    let machine = machine_info();
    let load_start = load_now();
    let tmp = std::env::temp_dir().join(format!("ringtape-bench-backtest.{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let combos: Vec<Combo> = args
        .topologies
        .iter()
        .flat_map(|&topology| args.shards.iter().map(move |&shards| Combo { topology, shards, probes: false }))
        .collect();
    let result = measure(args, &combos, &dir, &ringtape, factory.as_ref(), &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let m = result?;
    let load_end = load_now();
    let checks = checks(&m);

    let data = DataInfo {
        dir: dir.clone(),
        files: m.files,
        symbols: m.symbols,
        bars: m.bars,
        bytes: m.bytes,
        intervals: m.intervals,
        generated_s,
    };
    let report = Report {
        args,
        command,
        machine,
        load_start,
        load_end,
        data,
        rows: m.rows,
        combos: &combos,
        e2e: &m.e2e,
        engine: &m.engine,
        checks: &checks,
    };
    print!("{}", markdown(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json(&report))?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing JSON to {}", path.display()))?;
        eprintln!("backtest: wrote {}", path.display());
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    if !failed.is_empty() {
        bail!("{} check(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}

/// Everything the rounds measured.
#[derive(Debug)]
struct Measured {
    files: usize,
    symbols: usize,
    bars: u64,
    bytes: u64,
    intervals: Vec<u32>,
    rows: Vec<Row>,
    scans: Vec<(&'static str, ScanSum)>,
    e2e: Vec<E2eRun>,
    engine: Vec<EngineRun>,
}

fn measure(
    args: &Args,
    combos: &[Combo],
    dir: &Path,
    ringtape: &Path,
    factory: &dyn StrategyFactory,
    tmp: &Path,
) -> anyhow::Result<Measured> {
    let mut open = Row::baseline("open_validate", "open+validate (BarSet::open_dir, 2 threads)");
    let mut plain = Row::baseline("plain_scan", "plain scan (each file's bars, 1 thread)");
    let mut merge = Row::baseline("merge_only", "merge only (set.merged(), 1 thread)");
    let mut replay = Row::baseline("replay_only", "replay only (BarReplay events, 1 thread)");
    let mut configs = Vec::new();
    for t in &args.topologies {
        if !configs.iter().any(|(x, _)| x == t) {
            configs.push((*t, topology_config(tmp, *t)?));
        }
    }
    let config_of = |t: Topology| configs.iter().find(|(x, _)| *x == t).map(|(_, p)| p.as_path());
    let mut scans = Vec::new();
    let mut e2e = Vec::new();
    let mut engine = Vec::new();
    let mut reference_fills = None;
    let mut info = None;
    let rounds = args.warmup + args.runs;
    for round in 0..rounds {
        let measured = round >= args.warmup;
        let mut order = combos.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        eprintln!("backtest: round {}/{}{} ...", round + 1, rounds, if measured { "" } else { " (warm-up)" });

        let (open_s, set) = timed(|| BarSet::open_dir(dir, OPEN_THREADS));
        let set = set.with_context(|| format!("opening {}", dir.display()))?;
        if info.is_none() {
            let mut intervals: Vec<u32> = set.streams().iter().map(|s| s.file.header().interval_s).collect();
            intervals.sort_unstable();
            intervals.dedup();
            let bytes = set
                .streams()
                .iter()
                .map(|s| std::fs::metadata(s.file.path()).map(|m| m.len()).unwrap_or(0))
                .sum::<u64>();
            info = Some((set.streams().len(), set.symbols().len(), set.total_bars(), bytes, intervals));
        }
        let (plain_s, p) = timed(|| plain_scan(&set));
        let (merge_s, mg) = timed(|| merge_only(&set));
        let (replay_s, rp) = timed(|| replay_only(&set));
        scans.extend([("plain scan", p), ("merge only", mg), ("replay only", rp)]);
        if measured {
            open.secs.push(open_s);
            plain.secs.push(plain_s);
            merge.secs.push(merge_s);
            replay.secs.push(replay_s);
        }
        // With --probes each combination runs off then on, back to back (the same drift for both).
        let engine_order: Vec<Combo> =
            order.iter().flat_map(|&c| if args.probes { vec![c, c.probed()] } else { vec![c] }).collect();
        for &c in &engine_order {
            let (secs, out) = timed(|| engine_run(&set, factory, c));
            let out = out.with_context(|| format!("engine-only run, {}", c.text()))?;
            engine.push(EngineRun {
                combo: c,
                topology_ran: out.topology,
                round,
                measured,
                secs,
                totals: EngineTotals::of(&out),
                counters: serde_json::to_value(&out.counters)?,
                placement: placement_of_output(&out),
            });
        }
        drop(set);
        for &c in &order {
            let run_dir = tmp.join(format!("run-r{round}-{}-s{}", c.topology.as_str(), c.shards));
            let config = config_of(c.topology).context("no config file for a topology")?;
            let call = E2eCall { ringtape, data: dir, strategy: &args.strategy, config, combo: c };
            e2e.push(run_e2e(&call, &run_dir, round, measured, &mut reference_fills)?);
        }
    }
    let (files, symbols, bars, bytes, intervals) = info.context("no round ran")?;
    let mut rows = vec![plain, merge, replay, open];
    let modes: [(&'static str, &'static str); 4] = [
        ("engine_only", "engine-only run() (no journal)"),
        ("engine_probes", "engine-only run() with latency probes on"),
        ("e2e_engine", "end to end: engine phase (perf.engine_s, journal on)"),
        ("e2e_process", "end to end: process start to summary"),
    ];
    for (key, label) in modes {
        if key == "engine_probes" && !args.probes {
            continue;
        }
        for &c in combos {
            let secs = match key {
                "engine_only" => engine.iter().filter(|e| e.measured && e.combo == c).map(|e| e.secs).collect(),
                "engine_probes" => {
                    engine.iter().filter(|e| e.measured && e.combo == c.probed()).map(|e| e.secs).collect()
                }
                "e2e_engine" => e2e.iter().filter(|e| e.measured && e.combo == c).map(|e| e.engine_s).collect(),
                _ => e2e.iter().filter(|e| e.measured && e.combo == c).map(|e| e.process_s).collect(),
            };
            let combo = Some(if key == "engine_probes" { c.probed() } else { c });
            rows.push(Row { key, label, combo, secs });
        }
    }
    Ok(Measured { files, symbols, bars, bytes, intervals, rows, scans, e2e, engine })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::barfile::write_bar_file;
    use engine::records::Bar;

    /// A small random walk: `symbols` files of `days` x 390 one-minute bars.
    fn write_data(dir: &Path, symbols: u32, days: i64) {
        const D: i64 = PX_SCALE;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as i64
        };
        std::fs::create_dir_all(dir).unwrap();
        // 2024-01-02 14:30 UTC
        let start = 1_704_205_800_000_000_000i64;
        for s in 0..symbols {
            let mut px = (50 + 10 * i64::from(s)) * D;
            let mut bars = Vec::new();
            for day in 0..days {
                for i in 0..390 {
                    let o = px;
                    let c = (o + (rnd() % 21 - 10) * D / 100).max(D);
                    let h = o.max(c) + (rnd() % 5) * D / 100;
                    let l = (o.min(c) - (rnd() % 5) * D / 100).max(D / 2);
                    px = c;
                    bars.push(Bar {
                        ts_event_ns: start + day * 86_400_000_000_000 + i * 60_000_000_000,
                        open_px_e9: o,
                        high_px_e9: h,
                        low_px_e9: l,
                        close_px_e9: c,
                        volume: rnd() as u64,
                    });
                }
            }
            let name = format!("T{s:02}");
            write_bar_file(&dir.join(format!("{name}.1m.rtb")), &name, 60, &bars).unwrap();
        }
    }

    #[test]
    fn engine_only_gives_the_same_totals_on_both_topologies_and_shard_counts() {
        let dir = std::env::temp_dir().join(format!("ringtape-bench-test.{}", std::process::id()));
        write_data(&dir, 3, 3);
        let set = BarSet::open_dir(&dir, 2).unwrap();
        let factory = strategies::factory("sma_cross").unwrap();
        let combo = |topology, shards| Combo { topology, shards, probes: false };
        let one = engine_run(&set, factory.as_ref(), combo(Topology::Threads, 1)).unwrap();
        let two = engine_run(&set, factory.as_ref(), combo(Topology::Threads, 2)).unwrap();
        let inline = engine_run(&set, factory.as_ref(), combo(Topology::Inline, 1)).unwrap();
        assert_eq!((one.topology, inline.topology), (Topology::Threads, Topology::Inline));
        assert_eq!(EngineTotals::of(&one), EngineTotals::of(&inline));
        assert_eq!(one.bars, 3 * 3 * 390);
        assert!(one.positions.totals().0 > 10, "the strategy trades: {:?}", one.positions.totals());
        assert_eq!(one.positions.totals(), two.positions.totals());
        assert_eq!(EngineTotals::of(&one), EngineTotals::of(&two));
        // Probes on: the same decisions, and a snapshot at the end.
        let probed = engine_run(&set, factory.as_ref(), combo(Topology::Threads, 2).probed()).unwrap();
        assert_eq!(EngineTotals::of(&probed), EngineTotals::of(&two));
        assert!(probed.probes.is_some() && two.probes.is_none());

        // The baselines see the same bars.
        let p = plain_scan(&set);
        assert_eq!(p.bars, one.bars);
        assert_eq!(merge_only(&set), p);
        assert_eq!(replay_only(&set), p);
        drop(set);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
