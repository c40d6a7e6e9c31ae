//! The whole picture: panels in a layout, the side panel listing tickers with toggles, and the
//! state keys and the mouse change (view per chart, focus, crosshair). The window and the PNG
//! renderer both draw through [`Scene::draw`].

use crate::canvas::{Canvas, Rect};
use crate::chart::{Geom, PanelOpts, draw_panel};
use crate::layout::Layout;
use crate::model::{SymbolChart, View};
use crate::theme::Theme;

/// Width of the side panel.
pub const SIDE_W: i32 = 164;
/// Height of one ticker row in the side panel.
pub const ROW_H: i32 = 14;

/// What a key or click asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fewer bars on the focused chart.
    ZoomIn,
    /// More bars.
    ZoomOut,
    /// Pan back (negative) or forward by this fraction of the screen, in percent.
    Pan(i32),
    /// Show the start of the history.
    Home,
    /// Show the end.
    End,
    /// Focus the next shown ticker.
    NextSymbol,
    /// Focus the previous one.
    PrevSymbol,
    /// 1 -> 2x2 -> 3x3 -> 1.
    NextLayout,
    /// Crosshair on or off.
    ToggleCrosshair,
    /// The focused chart's overlays on or off.
    ToggleOverlays,
    /// The side panel on or off.
    ToggleSidePanel,
    /// The mouse moved to (x, y).
    Mouse(i32, i32),
    /// A left click at (x, y).
    Click(i32, i32),
}

/// Charts and their on-screen state.
#[derive(Clone, Debug)]
pub struct Scene {
    /// One chart per ticker.
    pub charts: Vec<SymbolChart>,
    /// The view of each chart.
    pub views: Vec<View>,
    /// Which charts the grid shows (side panel toggles).
    pub shown: Vec<bool>,
    /// Which charts draw their overlays (side panel toggles).
    pub overlays: Vec<bool>,
    /// Panels.
    pub layout: Layout,
    /// The focused chart (keys act on it).
    pub focus: usize,
    /// The first chart in the grid.
    pub start: usize,
    /// Crosshair on.
    pub crosshair_on: bool,
    /// Last mouse position.
    pub mouse: Option<(i32, i32)>,
    /// Side panel on.
    pub side_panel: bool,
    /// Outline the focused panel (the window; a PNG has no focus).
    pub show_focus: bool,
    /// Rows kept free at the bottom (the live viewer's status bar).
    pub status_h: i32,
    /// Colours.
    pub theme: Theme,
}

impl Scene {
    /// A scene over `charts`, each showing its last `bars` bars, laid out to fit them all (up
    /// to 3x3), without the side panel.
    pub fn new(charts: Vec<SymbolChart>, bars: usize) -> Self {
        let n = charts.len();
        Scene {
            views: charts.iter().map(|c| View::last(c.bars.len(), bars)).collect(),
            shown: vec![true; n],
            overlays: vec![true; n],
            layout: Layout::fit(n),
            focus: 0,
            start: 0,
            crosshair_on: true,
            mouse: None,
            side_panel: false,
            show_focus: false,
            status_h: 0,
            theme: Theme::default(),
            charts,
        }
    }

    /// The charts in the grid, in cell order.
    pub fn panels(&self) -> Vec<usize> {
        let n = self.charts.len();
        (0..n).map(|k| (self.start + k) % n.max(1)).filter(|&i| self.shown[i]).take(self.layout.cells()).collect()
    }

    /// The area left for the charts.
    fn chart_area(&self, c: &Canvas) -> Rect {
        let r = c.rect();
        let h = (r.h - self.status_h).max(1);
        if self.side_panel { Rect::new(r.x + SIDE_W, r.y, r.w - SIDE_W, h) } else { Rect::new(r.x, r.y, r.w, h) }
    }

    /// Draw everything; returns each panel's chart index and geometry.
    pub fn draw(&self, c: &mut Canvas) -> Vec<(usize, Geom)> {
        c.clear(self.theme.bg);
        if self.side_panel {
            self.draw_side(c);
        }
        let area = self.chart_area(c);
        let panels = self.panels();
        let cross = if self.crosshair_on { self.mouse } else { None };
        let mut out = Vec::with_capacity(panels.len());
        for (&i, r) in panels.iter().zip(self.layout.rects(area, 2)) {
            let o = PanelOpts {
                theme: &self.theme,
                crosshair: cross,
                overlays: self.overlays[i],
                focused: self.show_focus && i == self.focus && panels.len() > 1,
            };
            out.push((i, draw_panel(c, r, &self.charts[i], self.views[i], &o)));
        }
        if panels.is_empty() {
            c.text(area.x + 8, area.y + 8, "no ticker shown: click one in the side panel (S)", area, self.theme.text);
        }
        out
    }

    fn draw_side(&self, c: &mut Canvas) {
        let t = &self.theme;
        let r = Rect::new(0, 0, SIDE_W - 2, (c.height() as i32 - self.status_h).max(1));
        c.fill_rect(r, r, t.panel);
        c.text(6, 4, "TICKERS  SHOW PLOT", r, t.dim);
        for (i, ch) in self.charts.iter().enumerate() {
            let y = 4 + ROW_H * (i as i32 + 1);
            let col = if i == self.focus { t.focus } else { t.text };
            c.text(6, y, &ch.symbol, r, col);
            c.text(6 + 9 * 8, y, if self.shown[i] { "[x]" } else { "[ ]" }, r, t.text);
            c.text(6 + 13 * 8, y, if self.overlays[i] { "[x]" } else { "[ ]" }, r, t.text);
        }
        let help = [
            "KEYS",
            "+/- zoom",
            "<-/-> pan",
            "Home/End",
            "Tab next",
            "L layout",
            "C cross",
            "O plots",
            "S panel",
            "Esc quit",
        ];
        let base = r.bottom() - ROW_H * help.len() as i32 - 4;
        for (k, h) in help.iter().enumerate() {
            c.text(6, base + ROW_H * k as i32, h, r, t.dim);
        }
    }

    /// Apply a key or mouse action; `canvas` gives the current size (for clicks and anchors).
    pub fn apply(&mut self, a: Action, canvas: &Canvas) {
        let n = self.charts.len();
        if n == 0 {
            return;
        }
        let f = self.focus;
        let bars = self.charts[f].bars.len();
        let v = self.views[f];
        match a {
            Action::ZoomIn | Action::ZoomOut => {
                let factor = if a == Action::ZoomIn { 0.8 } else { 1.25 };
                let anchor = self.mouse_bar(canvas).unwrap_or(v.first + v.count.saturating_sub(1));
                self.views[f] = v.zoom(factor, anchor, bars);
            }
            Action::Pan(pct) => {
                let d = (v.count as isize * pct as isize / 100).signum()
                    * (v.count as isize * (pct as isize).abs() / 100).max(1);
                self.views[f] = v.pan(d, bars);
            }
            Action::Home => self.views[f] = v.pan(-(bars as isize), bars),
            Action::End => self.views[f] = v.pan(bars as isize, bars),
            Action::NextSymbol | Action::PrevSymbol => {
                let step = if a == Action::NextSymbol { 1 } else { n - 1 };
                let mut i = f;
                for _ in 0..n {
                    i = (i + step) % n;
                    if self.shown[i] {
                        break;
                    }
                }
                self.focus = i;
                if !self.panels().contains(&i) {
                    self.start = i;
                }
            }
            Action::NextLayout => self.layout = self.layout.next(),
            Action::ToggleCrosshair => self.crosshair_on = !self.crosshair_on,
            Action::ToggleOverlays => self.overlays[f] = !self.overlays[f],
            Action::ToggleSidePanel => self.side_panel = !self.side_panel,
            Action::Mouse(x, y) => self.mouse = Some((x, y)),
            Action::Click(x, y) => self.click(x, y, canvas),
        }
    }

    fn click(&mut self, x: i32, y: i32, canvas: &Canvas) {
        if self.side_panel && x < SIDE_W {
            let row = (y - 4) / ROW_H - 1;
            if let Some(i) = usize::try_from(row).ok().filter(|&i| i < self.charts.len()) {
                if x >= 6 + 13 * 8 {
                    self.overlays[i] = !self.overlays[i];
                } else if x >= 6 + 9 * 8 {
                    self.shown[i] = !self.shown[i];
                } else {
                    self.focus = i;
                    self.shown[i] = true;
                    if !self.panels().contains(&i) {
                        self.start = i;
                    }
                }
            }
            return;
        }
        let area = self.chart_area(canvas);
        for (&i, r) in self.panels().iter().zip(self.layout.rects(area, 2)) {
            if r.contains(x, y) {
                self.focus = i;
            }
        }
    }

    /// The bar under the mouse in the focused chart's panel.
    fn mouse_bar(&self, canvas: &Canvas) -> Option<usize> {
        let (mx, my) = self.mouse?;
        let area = self.chart_area(canvas);
        let panels = self.panels();
        let k = panels.iter().position(|&i| i == self.focus)?;
        let r = self.layout.rects(area, 2)[k];
        if !r.contains(mx, my) {
            return None;
        }
        let g = crate::chart::geometry(r, &self.charts[self.focus], self.views[self.focus]);
        g.idx_at(mx)
    }
}
