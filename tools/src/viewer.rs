//! `ringtape backtest --view`: the backtest's real pipeline, watched and steered live in a window.
//!
//! The run is the same as without `--view` (same stages, same journal and fills) with three
//! additions, none of which can make the pipeline wait:
//! - the bar replay is wrapped in [`viz::live::Paced`]: the window pauses it, steps it one bar
//!   time at a time and sets its speed (x1, x10, x100 bar times per second, or max);
//! - the strategy factory is wrapped in [`viz::live::PlotTap`] (the strategy's plots after each
//!   bar) and the recorder's flow is observed ([`engine::pipeline::RunSpec::observe`]); both
//!   publish into bounded lock-free queues with a push that drops (counted) when full;
//! - hotkeys ([`viz::keymap`], `--keymap FILE`, default `viz/keymap.default.toml`) become
//!   manual-order, flatten and cancel-all control events pushed into the pipeline's ingress, so
//!   risk checks them and the journal records them (`ringtape replay` reproduces the run).
//!
//! With an ingress the pipeline runs on its live topology (threads, unless the config says
//! otherwise), except on a machine of two cores or fewer with `topology = "auto"`: there it runs
//! inline, leaving a core to the window. The window's bars come from the run's mapped bar files up to what the pacer has
//! released; fills, working orders and rejections from the observed flow. Closing the window
//! lets the backtest go on to its end at full speed and write its run directory as usual.
//! Without a display, `--view` says so in one line and the backtest runs headless.
#![allow(clippy::disallowed_methods)] // DISPLAY is read from the environment like `ringtape view` does

use crate::exit::bad_input;
use anyhow::Result;
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::messages::Flow;
use engine::pipeline::{BarReplay, Ingress, PipelineError, RunOutput, RunSpec};
use engine::strategy::StrategyFactory;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use viz::keymap::Keymap;
use viz::live::{Live, Paced, PlotTap, Speed};

/// The `--view` flags of `ringtape backtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct ViewArgs {
    /// Watch the run live in a window (charts, status bar, hotkey trading); without a display
    /// the backtest runs headless
    #[arg(long)]
    pub view: bool,
    /// Hotkeys (TOML; default: the built-in viz/keymap.default.toml)
    #[arg(long, value_name = "FILE", requires = "view")]
    pub keymap: Option<PathBuf>,
    /// Replay speed with --view: x1, x10, x100 (bar times per second) or max; keys 1-4 change it
    #[arg(long, value_name = "SPEED", default_value = "x100", value_parser = parse_speed, requires = "view")]
    pub view_speed: Speed,
    /// Start paused (Space runs, Period steps one bar)
    #[arg(long, requires = "view")]
    pub view_paused: bool,
    /// Run to this time (e.g. 2019-11-06T16:00Z), then pause
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "view")]
    pub view_pause_at: Option<jiff::Timestamp>,
    /// Close the window after this many frames (the run then goes on to its end)
    #[arg(long, value_name = "N", requires = "view")]
    pub view_frames: Option<u64>,
    /// Write the window's last frame to this PNG when it closes
    #[arg(long, value_name = "FILE.png", requires = "view")]
    pub screenshot: Option<PathBuf>,
    /// Close the window when the run ends (its last state drawn), e.g. for a screenshot
    #[arg(long, requires = "view")]
    pub view_close_at_end: bool,
    /// Window size
    #[arg(long, value_name = "WxH", default_value = "1280x800", value_parser = parse_size, requires = "view")]
    pub view_size: (usize, usize),
    /// Most frames a second the window draws (fewer leave more of the machine to the pipeline)
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=240), requires = "view")]
    pub view_fps: u16,
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    Speed::parse(s).ok_or_else(|| format!("{s:?} is not a speed (use x1, x10, x100 or max)"))
}

fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse::<jiff::Timestamp>().map_err(|e| format!("{s:?}: {e} (use e.g. 2019-11-06T16:00Z)"))
}

pub(crate) fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a window size (use e.g. 1280x800)");
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    let (w, h) = (w.parse::<usize>().map_err(|_| bad())?, h.parse::<usize>().map_err(|_| bad())?);
    if w < 320 || h < 200 || w > 10_000 || h > 10_000 {
        return Err(format!("{s}: the window must be 320x200 to 10000x10000"));
    }
    Ok((w, h))
}

/// Checked before the run writes anything: the keymap.
#[derive(Debug)]
pub struct Prepared {
    keymap: Keymap,
}

/// Validate the `--view` flags (None without `--view`) and set what a viewed run needs in its
/// config: hotkeys arrive at moments no data file records, so the journal keeps every input
/// (`journal.inputs = "all"`) and `ringtape replay` re-runs exactly those inputs in that order.
pub fn prepare(a: &ViewArgs, cfg: &mut EngineConfig) -> Result<Option<Prepared>> {
    if !a.view {
        return Ok(None);
    }
    cfg.journal.inputs = engine::pipeline::config::JournalInputs::All;
    // On two cores or fewer, one pipeline thread (inline) leaves a core to the window: 40-50
    // frames a second against 25-32 on threads at max speed (BENCHMARKS.md section 6). Results
    // are the same on either topology; a config that names one keeps it.
    if cfg.pipeline.topology == Topology::Auto && crate::backtest::machine_cores() <= 2 {
        cfg.pipeline.topology = Topology::Inline;
    }
    Ok(Some(Prepared { keymap: load_keymap(a.keymap.as_deref())? }))
}

/// The keymap at `path` (`--keymap`), or the built-in one; errors name the file.
pub(crate) fn load_keymap(path: Option<&Path>) -> Result<Keymap> {
    Ok(match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e} (check the --keymap path)", p.display())))?;
            Keymap::parse(&text, &p.display().to_string()).map_err(bad_input)?
        }
        None => Keymap::default_keys(),
    })
}

/// Why there is no window, if there is none.
pub(crate) fn no_window() -> Option<String> {
    if !cfg!(feature = "window") {
        return Some("this ringtape was built without the window feature".into());
    }
    match std::env::var_os("DISPLAY") {
        Some(d) if !d.is_empty() => None,
        _ => Some("DISPLAY is not set".into()),
    }
}

/// Run the backtest's engine with the window (or headless, saying why, when there is no display).
#[allow(clippy::too_many_arguments)] // backtest::run_engine's inputs plus the view's
pub fn run_engine(
    p: Prepared,
    a: &ViewArgs,
    cfg: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
    out_dir: &Path,
    stop: &'static AtomicBool,
    pb: &crate::progress::Progress,
) -> Result<RunOutput> {
    if let Some(why) = no_window() {
        eprintln!("backtest --view: no display ({why}); running headless");
        return crate::backtest::run_engine(cfg, set, factory, out_dir, stop, pb);
    }
    let live = Live::new(set.streams().len(), a.view_speed, a.view_paused);
    if let Some(t) = a.view_pause_at {
        let ns = i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX);
        live.pause_at.store(ns, Ordering::Relaxed);
    }
    let ingress = Ingress::new(1024);
    let tap = PlotTap::new(factory, live.clone());
    let obs_live = live.clone();
    let observer = move |f: &Flow| viz::live::observe(&obs_live, f);
    let min_iv = set.streams().iter().map(|s| s.file.header().interval_s).min().unwrap_or(60);
    let source = Paced::new(BarReplay::zero_copy(set.merged()), live.clone(), min_iv);
    let on_stuck = |e: &PipelineError| {
        eprintln!("error: {e}; it does not return, so ringtape exits");
        std::process::exit(1);
    };
    let total = set.total_bars();
    std::thread::scope(|sc| {
        let viewer = std::thread::Builder::new()
            .name("viewer".into())
            .spawn_scoped(sc, || window(&p, a, set, &live, &ingress, stop))
            .map_err(|e| anyhow::anyhow!("starting the viewer thread: {e}"))?;
        let spec = RunSpec::new(cfg, set.symbols(), &tap)
            .out_dir(out_dir)
            .stop(stop)
            .on_stuck(&on_stuck)
            .bars(set)
            .ingress(ingress.clone())
            .observe(&observer);
        let t0 = std::time::Instant::now();
        let out = engine::pipeline::run(spec, source, &mut |c| {
            live.note_counters(c);
            pb.set_position(c.published.load(Ordering::Relaxed).min(total));
        });
        let secs = t0.elapsed().as_secs_f64();
        live.done.store(true, Ordering::Relaxed);
        if let Ok(o) = &out {
            eprintln!(
                "viewer: the pipeline ran {} bars in {secs:.3} s ({:.0} bars/s) with --view (pacer, plot and flow taps, window)",
                o.bars,
                o.bars as f64 / secs.max(1e-9)
            );
        }
        // The window stays up on the finished run until it is closed.
        let _ = viewer.join();
        out.map_err(|e| match e {
            PipelineError::Config(m) => bad_input(m),
            other => anyhow::Error::new(other),
        })
    })
}

#[cfg(feature = "window")]
fn window(p: &Prepared, a: &ViewArgs, set: &BarSet, live: &Live, ingress: &Ingress, stop: &AtomicBool) {
    use viz::live_window::{LiveOpts, LiveStream, run_live};
    let names: Vec<String> = set.symbols().names().to_vec();
    let streams: Vec<LiveStream<'_>> = set
        .streams()
        .iter()
        .map(|s| LiveStream {
            symbol: set.symbols().name(s.symbol),
            id: s.symbol,
            interval_s: s.file.header().interval_s,
            bars: s.file.bars(),
        })
        .collect();
    let opts = LiveOpts {
        title: "ringtape backtest --view",
        width: a.view_size.0,
        height: a.view_size.1,
        max_frames: a.view_frames,
        screenshot: a.screenshot.as_deref(),
        keymap: p.keymap.clone(),
        stop: Some(stop),
        close_at_end: a.view_close_at_end,
        feed: None,
        fps: usize::from(a.view_fps),
    };
    let mut log = |m: &viz::book::Message| eprintln!("viewer: {}", m.text);
    match run_live(live, &streams, &names, ingress, opts, &mut log) {
        Ok(r) => {
            let fps = r.frames_running as f64 / r.running_s.max(1e-9);
            let drawn_fps = r.drawn_running as f64 / r.running_s.max(1e-9);
            eprintln!(
                "viewer: closed after {} frames ({} while the run went, {fps:.1} fps; {} drawn, {drawn_fps:.1} drawn a second, the others unchanged); {} hotkey events sent, {} refused, {} manual orders rejected; {} flow and {} plot messages dropped",
                r.frames,
                r.frames_running,
                r.drawn_running,
                r.sent,
                r.refused,
                r.manual_rejects,
                live.flow_drops.load(Ordering::Relaxed),
                live.plot_drops.load(Ordering::Relaxed)
            );
        }
        Err(viz::window::WindowError::NoDisplay(why)) => {
            eprintln!("backtest --view: no display ({why}); running headless");
        }
        Err(e) => eprintln!("viewer: {e}"),
    }
}

#[cfg(not(feature = "window"))]
fn window(_: &Prepared, _: &ViewArgs, _: &BarSet, live: &Live, _: &Ingress, _: &AtomicBool) {
    live.release();
}
