//! The live window (feature `window`): a running pipeline's charts, status bar and hotkeys.
//!
//! Each frame (up to 60 a second) it takes what the pipeline published since the last one
//! ([`crate::live::Live`]: bars released per stream, plots, the decision flow), draws the latest
//! state and handles keys. Over a backtest the bars are the mapped bar files up to what the
//! pacer released; over a live run ([`LiveOpts::feed`]) there are no files: the bars and quotes
//! come from the inputs the observer taps ([`crate::livebars`]), there is no pacer (the market
//! sets the pace; Space, Period and 1-4 say so), and limit offsets from the bid or ask use the
//! latest quote. The pipeline never waits for it: when the window falls behind, the
//! queues drop messages and the status bar counts them. Hotkeys become control events pushed
//! into the pipeline's [`Ingress`] with `try_push` (a refusal is shown, never waited on).
//!
//! Keys besides the view's (see [`crate::window`]) and the keymap's: Space pause/run, Period
//! step one bar (pauses), Key1..Key4 speed x1/x10/x100/max, Enter confirm, Escape cancel a
//! confirmation (else quit), Q quit. Closing the window lets the run go on to its end at full
//! speed (the window is an observer: the backtest's results do not depend on it).
#![allow(clippy::disallowed_methods)] // frames per second are measured on the wall clock

use crate::book::{Attach, Book, Message};
use crate::canvas::Canvas;
use crate::keymap::{KeyAction, Keymap, Planned, plan};
use crate::live::{Live, PlotMsg, Speed, apply_plot};
use crate::livebars::{InputTap, LiveBars, place_plot};
use crate::model::{SymbolChart, View};
use crate::scene::{Action, Scene};
use crate::status::{CONFIRM_BG, REJECT_BG, STATUS_H, Status};
use crate::window::WindowError;
use engine::pipeline::Ingress;
use engine::records::{Bar, Event, PX_SCALE, SymbolId};
use minifb::{Key, KeyRepeat, MouseButton, MouseMode, Window, WindowOptions};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// One stream of the run's bar set, as the window reads it (the mapped bars).
#[derive(Clone, Copy, Debug)]
pub struct LiveStream<'a> {
    /// Ticker.
    pub symbol: &'a str,
    /// Its id in the run.
    pub id: SymbolId,
    /// Bar interval, seconds.
    pub interval_s: u32,
    /// Every bar of the stream (the window shows those released so far).
    pub bars: &'a [Bar],
}

/// How the live window runs.
#[derive(Debug)]
pub struct LiveOpts<'a> {
    /// Window title.
    pub title: &'a str,
    /// Size.
    pub width: usize,
    /// Size.
    pub height: usize,
    /// Close after this many frames.
    pub max_frames: Option<u64>,
    /// Write the last frame to this PNG when the window closes.
    pub screenshot: Option<&'a std::path::Path>,
    /// Hotkeys.
    pub keymap: Keymap,
    /// Close when this is set (Ctrl-C).
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// Close once the run is done (its last state drawn): benchmarks, screenshots.
    pub close_at_end: bool,
    /// A live run's feed (None: a backtest's bar files).
    pub feed: Option<FeedView<'a>>,
    /// Most frames a second (60 unless a run wants the window to take less of the machine).
    pub fps: usize,
}

/// A live run's market data as the window reads it.
pub struct FeedView<'a> {
    /// The bar and quote inputs the flow observer hands over.
    pub tap: &'a InputTap,
    /// The run's clock, ns (stamps the hotkeys' control events).
    pub now: &'a dyn Fn() -> i64,
    /// The feed's state for the status bar.
    pub state: &'a dyn Fn() -> FeedState,
}

impl std::fmt::Debug for FeedView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedView").field("tap", &self.tap).finish_non_exhaustive()
    }
}

/// A feed's state, as the status bar shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedState {
    /// `down`, `auth`, `live`, `ended`.
    pub state: String,
    /// Bars the feed pushed into the pipeline.
    pub pushed: u64,
    /// Reconnects so far.
    pub reconnects: u64,
}

/// What the window did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveReport {
    /// Frames (window updates, at up to 60 a second).
    pub frames: u64,
    /// Frames drawn (the others only took events: nothing shown had changed).
    pub drawn: u64,
    /// Control events pushed into the ingress.
    pub sent: u64,
    /// Control events the ingress refused.
    pub refused: u64,
    /// Manual orders risk or the venue rejected.
    pub manual_rejects: u64,
    /// Frames while the pipeline was running.
    pub frames_running: u64,
    /// Frames drawn while the pipeline was running.
    pub drawn_running: u64,
    /// Seconds from the first frame to the end of the run (or the window's close).
    pub running_s: f64,
}

/// Lets the run go on at full speed however the window ends.
struct Release<'a>(&'a Live);
impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Plots of a live run held until their bar arrives (the oldest go beyond this).
const WAITING_PLOTS: usize = 4096;

/// Bars shown per chart until the user zooms.
const START_BARS: usize = 120;

struct State<'a> {
    live: &'a Live,
    ingress: &'a Ingress,
    names: &'a [String],
    ids: Vec<SymbolId>,
    book: Book,
    keymap: Keymap,
    confirm: Option<(String, Planned)>,
    message: Option<(String, Option<u32>)>,
    report: LiveReport,
    log: &'a mut dyn FnMut(&Message),
    /// The run's clock of a live run (None: the pacer's last released time).
    now: Option<&'a dyn Fn() -> i64>,
}

impl State<'_> {
    /// Time stamp of a hotkey's control event.
    fn now(&self) -> i64 {
        self.now.map_or_else(|| self.live.last_ts.load(Relaxed), |f| f())
    }

    fn say(&mut self, text: String, error: bool) {
        (self.log)(&Message { text: text.clone(), error });
        self.message = Some((text, error.then_some(REJECT_BG)));
    }

    fn send(&mut self, ev: Event) -> bool {
        match self.ingress.try_push(ev) {
            Ok(()) => {
                self.report.sent += 1;
                true
            }
            Err(_) => {
                self.report.refused += 1;
                let why = if self.ingress.is_closed() { "the run has ended" } else { "the ingress is full" };
                self.say(format!("hotkey not sent: {why}"), true);
                false
            }
        }
    }

    fn send_order(&mut self, p: Planned) {
        let ts = self.now();
        if self.send(p.event(ts)) {
            if p.stop_px_e9 != 0 {
                // The stop goes out when the entry fills (the book matches the entry's decision).
                self.book.pending.push(Attach {
                    symbol: p.symbol,
                    side: p.side,
                    order_type: p.order_type,
                    qty: p.qty,
                    limit_px_e9: p.limit_px_e9,
                    stop_px_e9: p.stop_px_e9,
                });
            }
            let name = self.names.get(p.symbol.0 as usize).map_or("?", String::as_str);
            let text = format!("hotkey: {}", p.describe(name));
            (self.log)(&Message { text: text.clone(), error: false });
            self.message = Some((text, None));
        }
    }
}

/// The window's side of a live run between frames: the scene and canvas, the bars each chart
/// asked for, a live run's bar buffer and the plots waiting for their bar.
struct Frame<'a> {
    streams: &'a [LiveStream<'a>],
    by_id: HashMap<u32, usize>,
    total: u64,
    scene: Scene,
    canvas: Canvas,
    /// Bars each chart shows when it follows the newest (changed by zooming).
    want: Vec<usize>,
    feed_bars: LiveBars,
    waiting: std::collections::VecDeque<PlotMsg>,
}

impl<'a> Frame<'a> {
    fn new(streams: &'a [LiveStream<'a>], width: usize, height: usize) -> Self {
        let charts: Vec<SymbolChart> =
            streams.iter().map(|s| SymbolChart::new(s.symbol, s.interval_s, Vec::new())).collect();
        let mut scene = Scene::new(charts, START_BARS);
        scene.side_panel = true;
        scene.show_focus = true;
        scene.status_h = STATUS_H;
        let canvas = Canvas::new(width, height, scene.theme.bg);
        Frame {
            streams,
            by_id: streams.iter().enumerate().map(|(i, s)| (s.id.0, i)).collect(),
            total: streams.iter().map(|s| s.bars.len() as u64).sum(),
            scene,
            canvas,
            want: vec![START_BARS; streams.len()],
            feed_bars: LiveBars::new(),
            waiting: std::collections::VecDeque::new(),
        }
    }

    /// Take what the pipeline published since the last frame: bars, plots, the decision flow.
    /// True when anything shown changed.
    fn intake(&mut self, st: &mut State<'_>, feed: Option<&FeedView<'_>>) -> bool {
        let live = st.live;
        let mut dirty = false;
        if let Some(feed) = feed {
            while let Some(r) = feed.tap.pop() {
                self.feed_bars.apply(&r);
            }
        }
        for (i, s) in self.streams.iter().enumerate() {
            let bars = if feed.is_some() { self.feed_bars.bars(s.id) } else { s.bars };
            let n = if feed.is_some() { bars.len() } else { live.progress(i).min(bars.len()) };
            let old = self.scene.charts[i].bars.len();
            if n > old {
                dirty = true;
                let follow = self.scene.views[i].end(old) >= old;
                self.scene.charts[i].bars.extend_from_slice(&bars[old..n]);
                if follow {
                    self.scene.views[i] = View::last(n, self.want[i]);
                }
            }
        }
        if feed.is_some() {
            // A live run's plots go on the bar of their time (the strategies' n-th bar need not
            // be the window's: a dropped or refused input); a plot can come before its bar.
            self.waiting.extend(std::iter::from_fn(|| live.pop_plot()));
            let before = self.waiting.len();
            let (by_id, charts) = (&self.by_id, &mut self.scene.charts);
            self.waiting.retain(|m| by_id.get(&m.symbol.0).is_some_and(|&ci| !place_plot(&mut charts[ci], m)));
            dirty |= self.waiting.len() != before;
            while self.waiting.len() > WAITING_PLOTS {
                self.waiting.pop_front();
            }
        }
        while let Some(m) = live.pop_plot() {
            dirty = true;
            if let Some(&ci) = self.by_id.get(&m.symbol.0) {
                apply_plot(&mut self.scene.charts[ci].overlays, &m);
            }
        }
        let mut changed = false;
        while let Some(f) = live.pop_flow() {
            for ev in st.book.apply(&f, st.names) {
                st.send(ev);
            }
            changed = true;
        }
        while let Some(m) = st.book.messages.pop_front() {
            st.say(m.text, m.error);
        }
        if changed {
            dirty = true;
            for (i, s) in self.streams.iter().enumerate() {
                let c = &mut self.scene.charts[i];
                if let Some(f) = st.book.fills.get(s.id.0 as usize)
                    && f.len() > c.fills.len()
                {
                    c.fills.extend_from_slice(&f[c.fills.len()..]);
                }
                c.working = st.book.working_of(s.id);
            }
        }
        dirty
    }

    /// The mouse: crosshair, clicks, the wheel. True when it moved, clicked or scrolled.
    fn mouse(&mut self, win: &Window, seen: &mut (Option<(f32, f32, bool)>, bool)) -> bool {
        let mut dirty = false;
        if let Some((mx, my)) = win.get_mouse_pos(MouseMode::Discard) {
            let down = win.get_mouse_down(MouseButton::Left);
            if seen.0 != Some((mx, my, down)) {
                seen.0 = Some((mx, my, down));
                dirty = true;
            }
            self.scene.apply(Action::Mouse(mx as i32, my as i32), &self.canvas);
            if down && !seen.1 {
                self.scene.apply(Action::Click(mx as i32, my as i32), &self.canvas);
            }
            seen.1 = down;
        }
        if let Some((_, dy)) = win.get_scroll_wheel() {
            dirty = true;
            let a = if dy > 0.0 { Action::ZoomIn } else { Action::ZoomOut };
            self.scene.apply(a, &self.canvas);
            self.want[self.scene.focus] = self.scene.views[self.scene.focus].count;
        }
        dirty
    }

    /// A key pressed (once per press): a confirmation, a hotkey, or run control. True to quit.
    fn press(&mut self, st: &mut State<'_>, k: Key, live_run: bool) -> bool {
        let live = st.live;
        let name = format!("{k:?}");
        if let Some((ckey, p)) = st.confirm.take() {
            if name == ckey || k == Key::Enter || k == Key::NumPadEnter {
                st.send_order(p);
            } else {
                st.message = Some(("order canceled".into(), None));
            }
            return false;
        }
        if let Some(b) = st.keymap.keys.get(&name).copied() {
            self.hotkey(st, name, b);
            return false;
        }
        if live_run && matches!(k, Key::Space | Key::Period | Key::Key1 | Key::Key2 | Key::Key3 | Key::Key4) {
            st.message = Some(("a live run has no pacer: the market sets the pace".into(), None));
            return false;
        }
        match k {
            Key::Space => {
                let p = !live.paused.load(Relaxed);
                live.paused.store(p, Relaxed);
            }
            Key::Period => {
                live.paused.store(true, Relaxed);
                live.steps.fetch_add(1, Relaxed);
            }
            Key::Key1 => live.set_speed(Speed::X1),
            Key::Key2 => live.set_speed(Speed::X10),
            Key::Key3 => live.set_speed(Speed::X100),
            Key::Key4 => live.set_speed(Speed::Max),
            Key::Escape | Key::Q => return true,
            _ => {}
        }
        false
    }

    /// The keymap's binding `b` of key `name` on the focused ticker.
    fn hotkey(&mut self, st: &mut State<'_>, name: String, b: crate::keymap::Binding) {
        let f = self.scene.focus.min(st.ids.len().saturating_sub(1));
        let Some(&id) = st.ids.get(f) else { return };
        let ts = st.now();
        match b.action {
            KeyAction::Buy | KeyAction::Sell => {
                let prices = crate::livebars::prices(self.scene.charts[f].bars.last(), self.feed_bars.quote(id));
                match plan(&b, id, prices) {
                    Ok(p) if p.needs_confirm(&st.keymap) => {
                        let name_s = st.names.get(id.0 as usize).map_or("?", String::as_str);
                        let text = format!(
                            "CONFIRM {}: press {name} again or Enter; any other key cancels",
                            p.describe(name_s)
                        );
                        (st.log)(&Message { text: text.clone(), error: false });
                        st.message = Some((text, Some(CONFIRM_BG)));
                        st.confirm = Some((name, p));
                    }
                    Ok(p) => st.send_order(p),
                    Err(e) => st.say(format!("hotkey {name}: {e}"), true),
                }
            }
            KeyAction::Flatten => {
                if st.send(Event::flatten(id, ts)) {
                    st.say(format!("hotkey: flatten {}", self.scene.charts[f].symbol), false);
                }
            }
            KeyAction::CancelAll => {
                if st.send(Event::cancel_all(id, ts)) {
                    st.say(format!("hotkey: cancel all {}", self.scene.charts[f].symbol), false);
                }
            }
            KeyAction::FlattenAll | KeyAction::CancelAllSymbols => {
                let flat = b.action == KeyAction::FlattenAll;
                let ids = st.ids.clone();
                let ok =
                    ids.iter().all(|&s| st.send(if flat { Event::flatten(s, ts) } else { Event::cancel_all(s, ts) }));
                if ok {
                    st.say(format!("hotkey: {} every ticker", if flat { "flatten" } else { "cancel all" }), false);
                }
            }
            KeyAction::FocusNext => self.scene.apply(Action::NextSymbol, &self.canvas),
            KeyAction::FocusPrev => self.scene.apply(Action::PrevSymbol, &self.canvas),
        }
    }

    /// A view key (with repeat): zoom, pan, focus, layout, toggles. Keys the keymap binds are
    /// its, not the view's.
    fn view_key(&mut self, st: &State<'_>, k: Key, shift: bool) {
        if st.keymap.keys.contains_key(&format!("{k:?}")) {
            return;
        }
        let Some(a) = crate::window::view_action(k, shift) else { return };
        self.scene.apply(a, &self.canvas);
        if matches!(a, Action::ZoomIn | Action::ZoomOut) {
            self.want[self.scene.focus] = self.scene.views[self.scene.focus].count;
        }
    }

    /// The status bar's contents.
    fn status(&self, st: &State<'_>, feed: Option<&FeedView<'_>>, fps: f64) -> Status {
        let live = st.live;
        let f = self.scene.focus.min(self.scene.charts.len().saturating_sub(1));
        let released: u64 = (0..self.streams.len()).map(|i| live.progress(i) as u64).sum();
        let mut status = Status {
            state: if live.done.load(Relaxed) {
                "done".into()
            } else if live.paused.load(Relaxed) {
                "paused".into()
            } else {
                "running".into()
            },
            speed: live.speed().as_str().into(),
            published: live.gauges.published.load(Relaxed),
            bars: (released, self.total),
            lag: released.saturating_sub(live.strategy_bars.load(Relaxed)),
            ring_full: live.gauges.ring_full.load(Relaxed),
            queues_full: live.gauges.queues_full.load(Relaxed),
            drops: live.flow_drops.load(Relaxed)
                + live.plot_drops.load(Relaxed)
                + feed.map_or(0, |f| f.tap.drops.load(Relaxed)),
            orders: st.book.orders,
            fills: st.book.fill_count,
            rejects: st.book.rejects,
            message: st.message.clone(),
            fps,
            ..Status::default()
        };
        if let Some(feed) = feed {
            let fs = (feed.state)();
            status.state = if live.done.load(Relaxed) { "done".into() } else { "live".into() };
            status.speed = String::new();
            status.bars = (self.feed_bars.bars, 0);
            status.lag = fs.pushed.saturating_sub(live.strategy_bars.load(Relaxed));
            status.feed =
                Some(format!("{} ({} reconnects, {} dup/late bars)", fs.state, fs.reconnects, self.feed_bars.refused));
        }
        if let Some(c) = self.scene.charts.get(f) {
            status.symbol = c.symbol.clone();
            if let Some(last) = c.bars.last() {
                let p = c.position_at(c.bars.len() - 1);
                status.position = p.qty;
                status.avg_px = p.avg_px_e9 as f64 / PX_SCALE as f64;
                status.upnl = (last.close_px_e9 - p.avg_px_e9) as f64 / PX_SCALE as f64 * p.qty as f64;
            }
        }
        status
    }
}

/// Open the window over a running pipeline and run until it is closed or `o.max_frames` frames
/// were drawn. `names` are the run's symbol names by id; `log` sees every message shown.
pub fn run_live(
    live: &Live,
    streams: &[LiveStream<'_>],
    names: &[String],
    ingress: &Ingress,
    o: LiveOpts<'_>,
    log: &mut dyn FnMut(&Message),
) -> Result<LiveReport, WindowError> {
    let _release = Release(live);
    match std::env::var_os("DISPLAY") {
        Some(d) if !d.is_empty() => {}
        _ => return Err(WindowError::NoDisplay("DISPLAY is not set".into())),
    }
    let opts = WindowOptions { resize: true, ..WindowOptions::default() };
    let mut win = Window::new(o.title, o.width, o.height, opts).map_err(|e| WindowError::NoDisplay(e.to_string()))?;
    win.set_target_fps(o.fps.clamp(1, 240));
    let mut fr = Frame::new(streams, o.width, o.height);
    let mut st = State {
        live,
        ingress,
        names,
        ids: streams.iter().map(|s| s.id).collect(),
        book: Book::default(),
        keymap: o.keymap,
        confirm: None,
        message: None,
        report: LiveReport::default(),
        log,
        now: o.feed.as_ref().map(|f| f.now),
    };
    let feed = o.feed.as_ref();
    let mut fps = 0.0;
    let mut t_frame = Instant::now();
    let mut quit = false;
    let t_open = Instant::now();
    let mut done_drawn = false;
    // Drawing only on change: what the last drawn frame showed, and frames since.
    let (mut last_status, mut mouse_seen, mut since_draw) = (None::<Status>, (None, false), 0u32);
    while win.is_open()
        && !quit
        && !o.stop.is_some_and(|s| s.load(Relaxed))
        && o.max_frames.is_none_or(|m| st.report.frames < m)
    {
        let (cw, ch) = win.get_size();
        let mut dirty = false;
        if (cw, ch) != (fr.canvas.width(), fr.canvas.height()) && cw > 0 && ch > 0 {
            fr.canvas.resize(cw, ch, fr.scene.theme.bg);
            dirty = true;
        }
        dirty |= fr.intake(&mut st, feed);
        dirty |= fr.mouse(&win, &mut mouse_seen);
        // Keys: hotkeys and run control once per press, view keys with repeat.
        for k in win.get_keys_pressed(KeyRepeat::No) {
            dirty = true;
            quit |= fr.press(&mut st, k, feed.is_some());
        }
        let shift = win.is_key_down(Key::LeftShift) || win.is_key_down(Key::RightShift);
        for k in win.get_keys_pressed(KeyRepeat::Yes) {
            dirty = true;
            fr.view_key(&st, k, shift);
        }

        let status = fr.status(&st, feed, fps);
        // Draw when anything shown changed (the frame rate aside), and twice a second anyway (a
        // window uncovered on a real X server gets its picture back); else only take events.
        let shown = Status { fps: 0.0, published: 0, ..status.clone() };
        since_draw += 1;
        if dirty || last_status.as_ref() != Some(&shown) || since_draw >= 30 {
            fr.scene.draw(&mut fr.canvas);
            crate::status::draw(&mut fr.canvas, &status, &fr.scene.theme);
            win.update_with_buffer(fr.canvas.pixels(), fr.canvas.width(), fr.canvas.height())
                .map_err(|e| WindowError::NoDisplay(e.to_string()))?;
            st.report.drawn += 1;
            st.report.drawn_running += u64::from(!live.done.load(Relaxed));
            last_status = Some(shown);
            since_draw = 0;
        } else {
            win.update();
        }
        st.report.frames += 1;
        if !live.done.load(Relaxed) {
            st.report.frames_running += 1;
            st.report.running_s = t_open.elapsed().as_secs_f64();
        } else if o.close_at_end {
            // One more frame after the end so the last state is the one drawn.
            quit = done_drawn;
            done_drawn = true;
        }
        let dt = t_frame.elapsed().as_secs_f64();
        t_frame = Instant::now();
        if dt > 0.0 {
            fps = if fps == 0.0 { 1.0 / dt } else { fps * 0.9 + 0.1 / dt };
        }
    }
    st.report.manual_rejects = st.book.manual_rejects;
    if let Some(p) = o.screenshot {
        crate::png::write(&fr.canvas, p).map_err(|e| WindowError::Screenshot(format!("{}: {e}", p.display())))?;
    }
    Ok(st.report)
}
