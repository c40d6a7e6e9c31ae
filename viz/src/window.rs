//! The on-screen window (feature `window`): minifb over X11 drawing a [`Scene`].
//!
//! Keys: `+`/`-` (or the wheel) zoom around the mouse, Left/Right pan (Shift: a whole screen),
//! Home/End, Tab/Shift-Tab next/previous ticker, `L` layout, `C` crosshair, `O` the focused
//! chart's overlays, `S` the side panel (click its boxes to show a ticker or its overlays),
//! Esc or `Q` quits.

use crate::canvas::Canvas;
use crate::scene::{Action, Scene};
use minifb::{Key, KeyRepeat, MouseButton, MouseMode, Window, WindowOptions};

/// Why the window could not run.
#[derive(Debug)]
pub enum WindowError {
    /// No X display (DISPLAY unset, or the connection failed).
    NoDisplay(String),
    /// The screenshot could not be written.
    Screenshot(String),
}

impl std::fmt::Display for WindowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowError::NoDisplay(why) => write!(f, "no display ({why})"),
            WindowError::Screenshot(why) => write!(f, "screenshot: {why}"),
        }
    }
}

impl std::error::Error for WindowError {}

/// How the window runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOpts<'a> {
    /// Close after this many frames (tests, screenshots).
    pub max_frames: Option<u64>,
    /// Write the last frame drawn to this PNG when the window closes.
    pub screenshot: Option<&'a std::path::Path>,
}

/// Open a `w` x `h` window titled `title` and run until it is closed (Esc, Q, the window
/// manager) or `opts.max_frames` frames were drawn.
pub fn run(mut scene: Scene, title: &str, w: usize, h: usize, run: RunOpts<'_>) -> Result<(), WindowError> {
    match std::env::var_os("DISPLAY") {
        Some(d) if !d.is_empty() => {}
        _ => return Err(WindowError::NoDisplay("DISPLAY is not set".into())),
    }
    let opts = WindowOptions { resize: true, ..WindowOptions::default() };
    let mut win = Window::new(title, w, h, opts).map_err(|e| WindowError::NoDisplay(e.to_string()))?;
    win.set_target_fps(60);
    scene.side_panel = true;
    scene.show_focus = true;
    let mut canvas = Canvas::new(w, h, scene.theme.bg);
    let mut frames = 0u64;
    let mut was_down = false;
    let max_frames = run.max_frames;
    while win.is_open() && max_frames.is_none_or(|m| frames < m) {
        let (cw, ch) = win.get_size();
        if (cw, ch) != (canvas.width(), canvas.height()) && cw > 0 && ch > 0 {
            canvas.resize(cw, ch, scene.theme.bg);
        }
        if let Some((mx, my)) = win.get_mouse_pos(MouseMode::Discard) {
            scene.apply(Action::Mouse(mx as i32, my as i32), &canvas);
            let down = win.get_mouse_down(MouseButton::Left);
            if down && !was_down {
                scene.apply(Action::Click(mx as i32, my as i32), &canvas);
            }
            was_down = down;
        }
        if let Some((_, dy)) = win.get_scroll_wheel() {
            let a = if dy > 0.0 { Action::ZoomIn } else { Action::ZoomOut };
            scene.apply(a, &canvas);
        }
        let shift = win.is_key_down(Key::LeftShift) || win.is_key_down(Key::RightShift);
        for k in win.get_keys_pressed(KeyRepeat::Yes) {
            if matches!(k, Key::Escape | Key::Q) {
                return save(&canvas, run.screenshot);
            }
            let Some(a) = view_action(k, shift) else { continue };
            scene.apply(a, &canvas);
        }
        scene.draw(&mut canvas);
        win.update_with_buffer(canvas.pixels(), canvas.width(), canvas.height())
            .map_err(|e| WindowError::NoDisplay(e.to_string()))?;
        frames += 1;
    }
    save(&canvas, run.screenshot)
}

fn save(canvas: &Canvas, path: Option<&std::path::Path>) -> Result<(), WindowError> {
    match path {
        Some(p) => crate::png::write(canvas, p).map_err(|e| WindowError::Screenshot(format!("{}: {e}", p.display()))),
        None => Ok(()),
    }
}

/// The view's key map, shared by `ringtape view` and the live window: zoom, pan (Shift pans 10x
/// further), first/last bar, focus, layout and the toggles. `None` for any other key.
pub(crate) fn view_action(k: Key, shift: bool) -> Option<Action> {
    Some(match k {
        Key::Equal | Key::NumPadPlus | Key::Up => Action::ZoomIn,
        Key::Minus | Key::NumPadMinus | Key::Down => Action::ZoomOut,
        Key::Left => Action::Pan(if shift { -100 } else { -10 }),
        Key::Right => Action::Pan(if shift { 100 } else { 10 }),
        Key::Home => Action::Home,
        Key::End => Action::End,
        Key::Tab if shift => Action::PrevSymbol,
        Key::Tab | Key::N => Action::NextSymbol,
        Key::P => Action::PrevSymbol,
        Key::L => Action::NextLayout,
        Key::C => Action::ToggleCrosshair,
        Key::O => Action::ToggleOverlays,
        Key::S => Action::ToggleSidePanel,
        _ => return None,
    })
}
