//! The live viewer's status bar: two rows at the bottom of the window. The first: run state,
//! speed and progress (a live run: the feed's state and the bars taken), lag, ring and queue pressure, drops, orders and fills, the focused ticker's
//! position and unrealized PnL. The second: the latest message (a manual order sent, a
//! rejection with its reason in red, a confirmation to give).

use crate::canvas::{Canvas, Rect};
use crate::theme::Theme;

/// Height of the status bar.
pub const STATUS_H: i32 = 28;

/// Colour of a rejection's background.
pub const REJECT_BG: u32 = 0x00b0_2020;
/// Colour of a confirmation's background.
pub const CONFIRM_BG: u32 = 0x0090_7000;

/// What the status bar shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// `running`, `paused`, `done`, ...
    pub state: String,
    /// `x10`, `max`.
    pub speed: String,
    /// Inputs the pipeline has taken.
    pub published: u64,
    /// Bars released of the total.
    pub bars: (u64, u64),
    /// Bars released but not yet seen by the strategies.
    pub lag: u64,
    /// Times the main ring was full.
    pub ring_full: u64,
    /// Times a queue between stages was full.
    pub queues_full: u64,
    /// Snapshot messages dropped (window behind).
    pub drops: u64,
    /// Orders accepted.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
    /// Rejections.
    pub rejects: u64,
    /// Focused ticker.
    pub symbol: String,
    /// Its position (shares).
    pub position: i64,
    /// Its average entry price.
    pub avg_px: f64,
    /// Its unrealized PnL, dollars.
    pub upnl: f64,
    /// The latest message: (text, background colour or None).
    pub message: Option<(String, Option<u32>)>,
    /// Frames per second drawn.
    pub fps: f64,
    /// A live run's feed state (None: a replay, with speed and progress).
    pub feed: Option<String>,
}

impl Status {
    /// The first row's text.
    pub fn line(&self) -> String {
        let (done, total) = self.bars;
        let pct = if total > 0 { done as f64 * 100.0 / total as f64 } else { 0.0 };
        let pos = if self.position != 0 {
            format!("{} {:+} @ {:.2} UPNL {:+.2}", self.symbol, self.position, self.avg_px, self.upnl)
        } else {
            format!("{} flat", self.symbol)
        };
        let progress = match &self.feed {
            Some(f) => format!("feed {f} | bars {done}"),
            None => format!("{} | bars {done}/{total} {pct:.0}%", self.speed),
        };
        format!(
            "{} {progress} | lag {} | ring full {} queues full {} | drops {} | orders {} fills {} rej {} | {pos} | {:.0} fps",
            self.state.to_uppercase(),
            self.lag,
            self.ring_full,
            self.queues_full,
            self.drops,
            self.orders,
            self.fills,
            self.rejects,
            self.fps
        )
    }
}

/// Draw the status bar along the bottom of `c`.
pub fn draw(c: &mut Canvas, s: &Status, t: &Theme) {
    let h = c.height() as i32;
    let r = Rect::new(0, h - STATUS_H, c.width() as i32, STATUS_H);
    c.fill_rect(r, r, t.panel);
    c.hline(0, r.right() - 1, r.y, r, t.border);
    c.text(6, r.y + 3, &s.line(), r, t.text);
    let row2 = Rect::new(0, r.y + 14, r.w, 14);
    match &s.message {
        Some((m, Some(bg))) => {
            let w = crate::font::text_width(m) + 12;
            c.fill_rect(Rect::new(0, row2.y, w, row2.h), r, *bg);
            c.text(6, row2.y + 3, m, r, 0x00ff_ffff);
        }
        Some((m, None)) => {
            c.text(6, row2.y + 3, m, r, t.position);
        }
        None if s.feed.is_some() => {
            c.text(6, row2.y + 3, "F1-F11 hotkeys (keymap)  Tab next ticker  Q close (the run goes on)", r, t.dim);
        }
        None => {
            c.text(6, row2.y + 3, "Space pause  . step  1-4 speed  F1-F11 hotkeys (keymap)  Q quit", r, t.dim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_progress_position_and_a_red_rejection() {
        let s = Status {
            state: "running".into(),
            speed: "x10".into(),
            bars: (50, 200),
            symbol: "SPY".into(),
            position: 100,
            avg_px: 10.0,
            upnl: 25.5,
            message: Some(("REJECTED buy 9999 SPY MKT: max_position".into(), Some(REJECT_BG))),
            ..Status::default()
        };
        let line = s.line();
        assert!(line.starts_with("RUNNING x10 | bars 50/200 25%"), "{line}");
        assert!(line.contains("SPY +100 @ 10.00 UPNL +25.50"), "{line}");
        let live = Status { state: "live".into(), feed: Some("live".into()), bars: (7, 0), lag: 1, ..s.clone() };
        assert!(live.line().starts_with("LIVE feed live | bars 7 | lag 1 |"), "{}", live.line());
        let mut c = Canvas::new(400, 100, 0);
        draw(&mut c, &s, &Theme::default());
        let px = c.pixels();
        // The rejection's red box sits in the second row, at the left.
        assert_eq!(px[(100 - 14 + 1) * 400 + 1], REJECT_BG);
        assert!(px[..(100 - STATUS_H as usize) * 400].iter().all(|&p| p == 0), "nothing above the bar");
    }
}
