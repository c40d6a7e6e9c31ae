//! `ringtape paper --view`: the live window over a paper run (charts, status bar, hotkeys).
//!
//! A paper run has no bar files: the window's bars are the live bar buffer
//! ([`viz::livebars`]) built from the inputs the pipeline journals (history, then live bars, and
//! quotes). Three taps, none of which can make the pipeline wait (each pushes into a bounded
//! lock-free queue that drops and counts when full):
//! - the flow observer ([`engine::pipeline::RunSpec::observe`], on the recorder's thread) feeds
//!   two: decisions, cancels and reports for the window's book ([`viz::live::observe`]), bar and
//!   quote inputs for its charts ([`viz::livebars::InputTap`]);
//! - the strategy factory wrapped in [`viz::live::PlotTap`]: the strategy's overlays after each
//!   bar (and the bars the strategies have seen, for the status bar's lag).
//!
//! There is no pacer: the market sets the pace. Hotkeys work as in `backtest --view`: control
//! events pushed into the run's ingress, so risk can refuse them, the journal records them and
//! `ringtape replay RUN_DIR` reproduces the run. Limit offsets "from the bid/ask" use the latest
//! quote; `--view` therefore subscribes quotes (`feed.quotes = true`; Alpaca, and the demo's
//! exchange, send them). The window closes when the run ends (Ctrl-C, `--duration`); closing it
//! first lets the run go on headless. Without a display `--view` says so in one line and the run
//! continues headless.
#![allow(clippy::disallowed_methods)] // DISPLAY is read from the environment like `backtest --view` does

use super::SharedClock;
use super::config::PaperFile;
use super::feed::LiveFeed;
use anyhow::Result;
use engine::pipeline::Ingress;
use engine::pipeline::messages::Flow;
use engine::strategy::StrategyFactory;
use engine::symbols::SymbolTable;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use viz::keymap::Keymap;
use viz::live::{Live, PlotTap, Speed};
use viz::livebars::{InputTap, TAP_CAP};

/// The `--view` flags of `ringtape paper`.
#[derive(Debug, Clone, clap::Args)]
pub struct ViewArgs {
    /// Watch the run live in a window (charts from the live bars, status bar, hotkey trading);
    /// subscribes quotes for the hotkeys' bid/ask; without a display the run continues headless
    #[arg(long)]
    pub view: bool,
    /// Hotkeys (TOML; default: the built-in viz/keymap.default.toml)
    #[arg(long, value_name = "FILE", requires = "view")]
    pub keymap: Option<PathBuf>,
    /// Close the window after this many frames (the run goes on headless)
    #[arg(long, value_name = "N", requires = "view")]
    pub view_frames: Option<u64>,
    /// Write the window's last frame to this PNG when it closes
    #[arg(long, value_name = "FILE.png", requires = "view")]
    pub screenshot: Option<PathBuf>,
    /// Window size
    #[arg(long, value_name = "WxH", default_value = "1280x800", value_parser = crate::viewer::parse_size, requires = "view")]
    pub view_size: (usize, usize),
}

/// Checked before the run starts: the keymap.
#[derive(Debug)]
pub(crate) struct Prepared {
    keymap: Keymap,
}

/// Validate the `--view` flags (None without `--view`, or without a display: then one line says
/// so and the run goes on headless) and subscribe quotes in `file`.
pub(crate) fn prepare(a: &ViewArgs, file: &mut PaperFile) -> Result<Option<Prepared>> {
    if !a.view {
        return Ok(None);
    }
    let keymap = crate::viewer::load_keymap(a.keymap.as_deref())?;
    if let Some(why) = crate::viewer::no_window() {
        eprintln!("paper --view: no display ({why}); continuing headless");
        return Ok(None);
    }
    file.feed.quotes = true;
    Ok(Some(Prepared { keymap }))
}

/// The window's side of a running paper session.
pub(crate) struct View {
    live: Arc<Live>,
    tap: Arc<InputTap>,
    observer: Box<dyn Fn(&Flow) + Send + Sync>,
    window: Option<std::thread::JoinHandle<()>>,
}

/// Open the window over the session when `--view` was prepared (None otherwise).
pub(crate) fn start(
    p: Option<Prepared>,
    a: &ViewArgs,
    symbols: &SymbolTable,
    ingress: &Ingress,
    feed: &Arc<dyn LiveFeed>,
    clock: &SharedClock,
    stop: &'static AtomicBool,
) -> Result<Option<View>> {
    let Some(p) = p else { return Ok(None) };
    View::start(p, a, symbols, ingress.clone(), Arc::clone(feed), Arc::clone(clock), stop).map(Some)
}

impl View {
    /// Open the window on its own thread over the session.
    pub(crate) fn start(
        p: Prepared,
        a: &ViewArgs,
        symbols: &SymbolTable,
        ingress: Ingress,
        feed: Arc<dyn LiveFeed>,
        clock: SharedClock,
        stop: &'static AtomicBool,
    ) -> Result<View> {
        let live = Live::new(0, Speed::Max, false);
        let tap = Arc::new(InputTap::new(TAP_CAP));
        let observer: Box<dyn Fn(&Flow) + Send + Sync> = {
            let (live, tap) = (Arc::clone(&live), Arc::clone(&tap));
            Box::new(move |f: &Flow| {
                viz::live::observe(&live, f);
                tap.observe(f);
            })
        };
        let w = Window {
            keymap: p.keymap,
            args: a.clone(),
            names: symbols.names().to_vec(),
            live: Arc::clone(&live),
            tap: Arc::clone(&tap),
            ingress,
            feed,
            clock,
            stop,
        };
        let window = std::thread::Builder::new()
            .name("viewer".into())
            .spawn(move || w.run())
            .map_err(|e| anyhow::anyhow!("starting the viewer thread: {e}"))?;
        Ok(View { live, tap, observer, window: Some(window) })
    }

    /// The flow observer to give the pipeline.
    pub(crate) fn observer(&self) -> &(dyn Fn(&Flow) + Sync) {
        self.observer.as_ref()
    }

    /// The run's strategy factory, wrapped so its strategies publish their plots.
    pub(crate) fn plot_tap<'a>(&self, factory: &'a dyn StrategyFactory) -> PlotTap<'a> {
        PlotTap::new(factory, Arc::clone(&self.live))
    }

    /// Copy the pipeline's counters for the status bar (the run's monitor calls this).
    pub(crate) fn note(&self, c: &engine::pipeline::Counters) {
        self.live.note_counters(c);
    }

    /// The run has ended: the window draws its last state, closes (writing its screenshot) and
    /// reports.
    pub(crate) fn finish(mut self) {
        self.live.done.store(true, Ordering::Relaxed);
        if let Some(w) = self.window.take() {
            let _ = w.join();
        }
        let drops = self.tap.drops.load(Ordering::Relaxed);
        if drops > 0 {
            eprintln!("viewer: {drops} bar and quote inputs dropped (the window was behind)");
        }
    }
}

/// What the window thread owns.
struct Window {
    keymap: Keymap,
    args: ViewArgs,
    names: Vec<String>,
    live: Arc<Live>,
    tap: Arc<InputTap>,
    ingress: Ingress,
    feed: Arc<dyn LiveFeed>,
    clock: SharedClock,
    stop: &'static AtomicBool,
}

impl Window {
    #[cfg(feature = "window")]
    fn run(self) {
        use viz::live_window::{FeedState, FeedView, LiveOpts, LiveStream, run_live};
        let streams: Vec<LiveStream<'_>> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| LiveStream { symbol: n, id: engine::records::SymbolId(i as u32), interval_s: 60, bars: &[] })
            .collect();
        let now = || (self.clock)();
        let state = || {
            let s = self.feed.status();
            FeedState { state: s.state.to_string(), pushed: s.pushed, reconnects: s.reconnects }
        };
        let opts = LiveOpts {
            title: "ringtape paper --view",
            width: self.args.view_size.0,
            height: self.args.view_size.1,
            max_frames: self.args.view_frames,
            screenshot: self.args.screenshot.as_deref(),
            keymap: self.keymap.clone(),
            stop: Some(self.stop),
            close_at_end: true,
            feed: Some(FeedView { tap: &self.tap, now: &now, state: &state }),
            fps: 60,
        };
        let mut log = |m: &viz::book::Message| eprintln!("viewer: {}", m.text);
        let r = run_live(&self.live, &streams, &self.names, &self.ingress, opts, &mut log);
        self.tap.closed.store(true, Ordering::Relaxed);
        match r {
            Ok(r) => eprintln!(
                "viewer: closed after {} frames ({} drawn, the others unchanged); {} hotkey events sent, {} refused, {} manual orders rejected",
                r.frames, r.drawn, r.sent, r.refused, r.manual_rejects
            ),
            Err(viz::window::WindowError::NoDisplay(why)) => {
                eprintln!("paper --view: no display ({why}); continuing headless");
            }
            Err(e) => eprintln!("viewer: {e}"),
        }
    }

    #[cfg(not(feature = "window"))]
    fn run(self) {
        self.tap.closed.store(true, Ordering::Relaxed);
        self.live.release();
    }
}
