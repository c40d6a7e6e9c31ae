//! `ringtape paper`: the whole pipeline live. Market data from a feed (Alpaca or Polygon, over
//! real websockets and TLS, warm-started from REST history) goes through the sequencer's ingress
//! into the same strategies, risk and execution as a backtest; orders go to the simulated venue.
//! `--demo` starts the local exchange in this process and trades its data with no credentials
//! and no network.
//!
//! **One time base.** The pipeline's clock ticks and the feed's receive stamps come from one
//! clock: the wall clock live, the local exchange's market clock in a demo (the exchange replays
//! recorded days at `--speed`, and the run lives on its market time).
//!
//! **Shutdown.** Ctrl-C (or `--duration`, or `[paper] max_runtime_s`) stops the feed: it releases
//! every bar window it still holds and ends; then the sequencer drains the ingress and ends the
//! input; working orders are canceled and positions closed (`risk.flatten_at_end`); the journal,
//! fills and summary are written and the run directory moved into place. Exit 0. A second Ctrl-C
//! exits at once (130). A feed that ends on its own (refused credentials) ends the run the same
//! way, marked incomplete, exit 1.
//!
//! **Replay.** The journal records every input (`journal.inputs = "all"`), so `ringtape replay
//! RUN_DIR` re-runs the session and checks every decision.

#![allow(clippy::disallowed_methods)] // a live run's clock is the wall (its one time base); its timings are wall time

mod broker;
pub mod config;
mod demo;
mod feed;
pub mod metrics;
pub mod status;
pub mod view;

use crate::backtest::{self, check_config, machine_cores};
use crate::exit::bad_input;
use crate::summary::{Perf, Results, RunFacts, StagePlacement, Summary};
use anyhow::{Context, Result};
use engine::pipeline::{Clock, Ingress, Live, RunOutput, RunSpec, run as run_pipeline};
use engine::symbols::SymbolTable;
use feed::LiveFeed;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use feeds::replay::SharedClock;

/// Arguments of `ringtape paper`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Stops on Ctrl-C (or SIGTERM, or --duration): the feed releases what it \
holds, the pipeline drains, working orders are canceled and positions closed (risk.flatten_at_end), \
and the run directory is written like a backtest's (journal.rtj with every input, fills.csv, \
summary.json, feed.json). Exit 0; 1 when the feed failed (e.g. refused credentials); 2 bad usage. \
`ringtape replay RUN_DIR` re-runs a paper session from its journal.")]
pub struct Args {
    /// Start the local exchange in this process and trade its built-in data (no credentials, no
    /// network)
    #[arg(long)]
    pub demo: bool,
    /// Where orders go: `sim` (the simulated venue) or `alpaca` (Alpaca's trading API; with
    /// --demo the local exchange's paper broker). Default: the config's `broker.kind`, else sim
    #[arg(long, value_name = "KIND")]
    pub broker: Option<String>,
    /// Required with `[broker] live = true`: this run trades real money
    #[arg(long)]
    pub confirm_live: bool,
    /// TOML config: the backtest's tables plus `[feed]` and `[paper]` (see ringtape.paper.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy name (built-in: sma_cross, orb); overrides the config's `strategy.name`
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// Demo: market minutes per wall minute of the local exchange's replay
    #[arg(long, value_name = "X", default_value_t = 60.0)]
    pub speed: f64,
    /// Stop after this many seconds of wall time (default: run until Ctrl-C)
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Run directory to write; must not exist unless --force (default: a new `runs/<UTC time>`)
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing run directory at --out
    #[arg(long)]
    pub force: bool,
    /// Serve runtime metrics as Prometheus text on http://ADDR/metrics while the run is live
    /// (e.g. 127.0.0.1:9464; port 0 picks a free one, printed at start)
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// No status line and no table
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub view: view::ViewArgs,
}

/// The wall clock, ns UTC.
pub fn wall_clock() -> SharedClock {
    Arc::new(|| {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
    })
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let interrupt = crate::interrupt::flag();
    let (mut file, what) = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --config path)", p.display())))?;
            (config::parse(&text, &p.display().to_string())?, p.display().to_string())
        }
        None => (config::parse("", "config")?, "config".to_string()),
    };
    let duration = match (args.duration, file.paper.max_runtime_s) {
        (Some(d), _) if !(d.is_finite() && d > 0.0) => {
            return Err(bad_input(format!("--duration {d}: use a positive number of seconds")));
        }
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, 0) => None,
        (None, s) => Some(Duration::from_secs(s)),
    };
    let view_plan = view::prepare(&args.view, &mut file)?;
    // The exchange (demo) or the configured provider; symbols, credentials and the clock.
    // Real money is refused before anything connects unless the file and the flag both say so.
    let wants_alpaca = match args.broker.as_deref() {
        Some(b) => b == "alpaca",
        None => file.broker.kind == config::BrokerKind::Alpaca,
    };
    if wants_alpaca && !args.demo {
        file.broker.check_live(&what, args.confirm_live)?;
    }
    let session = if args.demo { demo::start(&file, args.speed)? } else { feed::configured(&file, &what)? };
    let broker_plan = broker::plan(&file, &session, args.broker.as_deref(), args.demo, args.confirm_live, &what)?;
    let checked = check_config(file.run.clone(), args.strategy.as_deref(), &what, machine_cores())?;
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    let plan = crate::rundir::Plan::new(args.out.as_deref(), args.force)?;
    let rd = plan.start()?;
    let config_toml = backtest::effective_config_toml(&checked)?;
    let session_id = write_meta(rd.path(), &session, &checked, &config_toml, broker_plan.as_ref())?;

    let mut symbols = SymbolTable::new();
    for s in &session.symbols {
        symbols.intern(s).map_err(|e| bad_input(format!("{what}: symbol {s:?}: {e}")))?;
    }
    let ingress = Ingress::new(file.feed.ingress_capacity);
    // The broker first: its start reconcile is done before any market data arrives.
    let gateway = match &broker_plan {
        Some(p) => {
            if !args.quiet {
                eprintln!("{}", p.banner());
            }
            let log = feed_log(&rd.path().join("broker.log"), !args.quiet, "broker")?;
            let clock = Arc::clone(&session.clock);
            let (venue, gw) = broker::start(p, &session_id, &symbols, ingress.clone(), clock, log)?;
            Some((venue, Arc::new(gw)))
        }
        None => None,
    };
    let log = feed_log(&rd.path().join("feed.log"), !args.quiet, "feed")?;
    let feed: Arc<dyn LiveFeed> = feed::start(&session, &symbols, ingress.clone(), log)?;
    if !args.quiet {
        eprintln!("{}", session.banner);
    }
    let view = view::start(view_plan, &args.view, &symbols, &ingress, &feed, &session.clock, interrupt)?;
    let latest: metrics::Latest = Arc::default();
    if let Some(addr) = args.metrics {
        let bound = metrics::serve(addr, Arc::clone(&latest))?;
        eprintln!("paper: metrics on http://{bound}/metrics");
    }
    let mut metrics_file = std::io::LineWriter::new(
        std::fs::File::create(rd.path().join("metrics.jsonl"))
            .with_context(|| format!("creating {}", rd.path().join("metrics.jsonl").display()))?,
    );

    // The stopper: on Ctrl-C, the time limit, or a feed that ended by itself, stop the feed and
    // wait for it (it pushes what it holds); at a broker, wind down there; then let the input end.
    let done = Arc::new(AtomicBool::new(false));
    let wound: Arc<std::sync::Mutex<Option<broker::WindDown>>> = Arc::default();
    let stopper = {
        let (feed, done) = (Arc::clone(&feed), Arc::clone(&done));
        let gw = gateway.as_ref().map(|(_, g)| Arc::clone(g));
        let (ingress, syms, clock, wound) =
            (ingress.clone(), symbols.clone(), Arc::clone(&session.clock), Arc::clone(&wound));
        let flatten = checked.rc.engine.risk.flatten_at_end;
        let wait = broker_plan.as_ref().map_or(Duration::ZERO, |p| p.shutdown_wait);
        std::thread::Builder::new().name("rt-paper-stop".into()).spawn(move || {
            let started = Instant::now();
            while !interrupt.load(Ordering::Relaxed)
                && !feed.finished()
                && duration.is_none_or(|d| started.elapsed() < d)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let report = feed.stop_and_join();
            if let Some(gw) = gw {
                let w = broker::wind_down(&gw, &ingress, &syms, flatten, wait, clock());
                *wound.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
                // Nothing more goes to the broker: the end of the input's own cancels and
                // close-outs stay in the gateway's queue (their answers could not come back).
                gw.stop();
            }
            done.store(true, Ordering::Release);
            report
        })?
    };

    let factory = checked.params.factory();
    let plot_tap = view.as_ref().map(|v| v.plot_tap(factory.as_ref()));
    let factory: &dyn engine::strategy::StrategyFactory = plot_tap.as_ref().map_or(factory.as_ref(), |t| t);
    let clock = Arc::clone(&session.clock);
    let tick = move || clock();
    let mut spec = RunSpec::new(&checked.rc.engine, &symbols, factory)
        .out_dir(rd.path())
        .ingress(ingress)
        .clock(Clock::Wall(&tick))
        .probes(true);
    if let Some(v) = &view {
        spec = spec.observe(v.observer());
    }
    let gw = match gateway {
        Some((venue, gw)) => {
            spec = spec.venue(Box::new(venue));
            Some(gw)
        }
        None => None,
    };
    let t_run = Instant::now();
    // Metrics are sampled with the status line (once a second when the line is off).
    let status_every =
        Duration::from_millis(if file.paper.status_ms == 0 { 1_000 } else { file.paper.status_ms.max(100) });
    let mut last_status = Instant::now();
    let show = !args.quiet && file.paper.status_ms > 0;
    let out = run_pipeline(spec, Live::until(&done), &mut |c| {
        if let Some(v) = &view {
            v.note(c);
        }
        if last_status.elapsed() >= status_every {
            last_status = Instant::now();
            let (now, fs) = ((session.clock)(), feed.status());
            // Metrics first, then the line: whoever reads the line finds the endpoint at least as new.
            let sample = metrics::Sample::take(c, &fs, now);
            let _ = writeln!(metrics_file, "{}", sample.json());
            *latest.lock().unwrap_or_else(|p| p.into_inner()) = sample.prometheus();
            if show {
                let _ = writeln!(std::io::stderr().lock(), "{}", status::line(now, symbols.len(), &fs, c));
            }
        }
    })?;
    let engine_s = t_run.elapsed().as_secs_f64();
    if let Some(v) = view {
        v.finish();
    }
    let mut report = stopper.join().map_err(|_| anyhow::anyhow!("the paper run's stop thread panicked"))?;
    // Feed times are on the session's clock: the market clock of a demo runs `speed` times the wall.
    report.json["session_clock_speed"] = serde_json::json!(session.timer_scale);
    std::fs::write(rd.path().join("feed.json"), serde_json::to_string_pretty(&report.json)?)
        .with_context(|| format!("writing {}", rd.path().join("feed.json").display()))?;
    if let Some(state) = &session.exchange_state {
        let path = rd.path().join("exchange.json");
        std::fs::write(&path, serde_json::to_string_pretty(&state())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let (Some(gw), Some(p)) = (gw, &broker_plan) {
        let status = gw.stop();
        let w = wound.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let json = serde_json::json!({"broker": p.meta(), "gateway": status, "shutdown": w});
        let path = rd.path().join("broker.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(w) = w
            && !args.quiet
            && (w.open_orders_left > 0 || w.positions_left > 0)
        {
            eprintln!(
                "paper: warning: {} orders still open and {} positions at the broker after {:.1} s (see broker.json)",
                w.open_orders_left, w.positions_left, w.waited_s
            );
        }
    }

    let summary = summary(&out, &symbols, &checked, t0, engine_s, report.failure.clone())?;
    summary.write(&rd.path().join("summary.json"))?;
    let run_dir = rd.finish()?;
    let summary = Summary::read(&run_dir.join("summary.json"))?;
    summary.log(&run_dir);
    if !args.quiet {
        print!("{}", summary.table(&run_dir));
    }
    match report.failure {
        Some(why) => Err(anyhow::anyhow!("the feed failed: {why}; the run is in {}", run_dir.display())),
        None => Ok(()),
    }
}

/// A feed's or the broker gateway's log: every line as a JSON object in `feed.log` /
/// `broker.log` (structured, one per line), and warnings and errors on stderr too (unless quiet),
/// prefixed with `who`.
fn feed_log(path: &std::path::Path, echo: bool, who: &'static str) -> Result<feeds::feed::FeedLog> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let out = std::sync::Mutex::new(std::io::LineWriter::new(file));
    Ok(Arc::new(move |l: &feeds::feed::FeedLogLine| {
        let ts = jiff::Timestamp::from_nanosecond(i128::from(l.ts_ns))
            .map_or_else(|_| l.ts_ns.to_string(), |t| t.to_string());
        let j = serde_json::json!({"ts": ts, "level": l.level.as_str(), "kind": l.kind, "symbol": l.symbol, "detail": l.detail});
        let _ = writeln!(out.lock().unwrap_or_else(|p| p.into_inner()), "{j}");
        match l.level {
            feeds::feed::LogLevel::Info => {
                tracing::info!(source = who, kind = l.kind, symbol = ?l.symbol, detail = %l.detail, ts_ns = l.ts_ns);
            }
            feeds::feed::LogLevel::Warn => {
                tracing::warn!(source = who, kind = l.kind, symbol = ?l.symbol, detail = %l.detail, ts_ns = l.ts_ns);
            }
            feeds::feed::LogLevel::Error => {
                tracing::error!(source = who, kind = l.kind, symbol = ?l.symbol, detail = %l.detail, ts_ns = l.ts_ns);
            }
        }
        if echo && l.level != feeds::feed::LogLevel::Info {
            let _ = writeln!(std::io::stderr().lock(), "{who}: {l}");
        }
    }))
}

/// `journal.meta.json` and `config.toml`: what `ringtape replay` reads (no secret: the feed is
/// named by provider and URL only).
fn write_meta(
    dir: &std::path::Path,
    s: &feed::Session,
    c: &backtest::Checked,
    config_toml: &str,
    broker: Option<&broker::Plan>,
) -> Result<String> {
    let session_id = engine::records::session_id(
        "pp",
        format!("{config_toml}{:?}{}{}", s.symbols, c.strategy, jiff::Timestamp::now()).as_bytes(),
    );
    let meta = serde_json::json!({
        "format": "ringtape journal v2: 16-byte header (magic RTJRNL\\0\\x01, version u16, record size u16), then 72-byte records",
        "session": session_id,
        "kind": "paper",
        "feed": {"provider": s.provider, "stream_url": s.stream_url, "rest_url": s.rest_url},
        "broker": broker.map_or_else(|| serde_json::json!({"kind": "sim"}), broker::Plan::meta),
        "symbols": s.symbols,
        "strategy": c.strategy,
        "strategy_params": serde_json::to_value(&c.params)?,
        "config": config_toml,
    });
    let mpath = dir.join("journal.meta.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("writing {}", mpath.display()))?;
    let cpath = dir.join("config.toml");
    std::fs::write(&cpath, config_toml).with_context(|| format!("writing {}", cpath.display()))?;
    Ok(session_id)
}

fn summary(
    out: &RunOutput,
    symbols: &SymbolTable,
    checked: &backtest::Checked,
    t0: Instant,
    engine_s: f64,
    failure: Option<String>,
) -> Result<Summary> {
    let facts = RunFacts {
        strategy: &checked.strategy,
        strategy_params: serde_json::to_value(&checked.params)?,
        intervals: vec!["1m".into()],
        starting_capital_usd: checked.rc.account.starting_capital_usd,
        end_of_run_closeouts: Some(out.positions.symbols.iter().map(|b| b.closeouts).sum()),
    };
    let results = Results::new(out, symbols, facts);
    let wall_s = t0.elapsed().as_secs_f64();
    let perf = Perf {
        wall_s,
        open_validate_s: 0.0,
        engine_s,
        bars_per_s_engine: out.bars as f64 / engine_s.max(1e-9),
        bars_per_s_wall: out.bars as f64 / wall_s.max(1e-9),
        topology: out.topology.as_str().to_string(),
        venue: out.venue.to_string(),
        shards: checked.rc.engine.pipeline.shards,
        placement: out
            .placement
            .iter()
            .map(|(n, c, w)| StagePlacement { stage: n.clone(), core: *c, wait: w.clone() })
            .collect(),
        counters: serde_json::to_value(&out.counters)?,
    };
    let incomplete_reason = failure.map(|f| format!("the feed failed: {f}"));
    Ok(Summary { command: "paper".into(), complete: incomplete_reason.is_none(), incomplete_reason, results, perf })
}
