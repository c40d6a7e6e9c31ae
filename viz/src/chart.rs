//! One panel: title with legend or OHLCV readout, candlesticks, volume, overlays, fill markers,
//! the position, price and time axes, and the crosshair.

use crate::canvas::{Canvas, Rect};
use crate::font::{GLYPH_H, GLYPH_W, text_width};
use crate::model::{FillMark, SymbolChart, View};
use crate::theme::Theme;
use crate::timefmt;
use engine::records::{PX_SCALE, Side};
use engine::strategy::PlotStyle;

/// Width of the price axis on the right.
pub const AXIS_W: i32 = 80;
/// Height of the title row.
pub const TITLE_H: i32 = 12;
/// Height of the time axis.
pub const TIME_H: i32 = 12;

/// How to draw a panel.
#[derive(Clone, Copy, Debug)]
pub struct PanelOpts<'a> {
    /// Colours.
    pub theme: &'a Theme,
    /// Mouse position, when the crosshair is on.
    pub crosshair: Option<(i32, i32)>,
    /// Draw the strategy's overlays (the control panel's toggle).
    pub overlays: bool,
    /// Highlight the border (keyboard focus).
    pub focused: bool,
}

/// Where things are in a drawn panel: maps bars and prices to pixels and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geom {
    /// The title row.
    pub title: Rect,
    /// Candles and overlays.
    pub price: Rect,
    /// Volume bars.
    pub volume: Rect,
    /// Price labels.
    pub axis: Rect,
    /// Time labels.
    pub time: Rect,
    /// The view drawn.
    pub view: View,
    /// Lowest price on the scale, e9.
    pub lo: i64,
    /// Highest price on the scale, e9.
    pub hi: i64,
}

impl Geom {
    /// Pixels per bar.
    pub fn slot_w(&self) -> f64 {
        self.price.w as f64 / self.view.count.max(1) as f64
    }
    /// Centre column of bar `idx`.
    pub fn x_of(&self, idx: usize) -> i32 {
        let k = idx as f64 - self.view.first as f64;
        self.price.x + ((k + 0.5) * self.slot_w()).floor() as i32
    }
    /// Half the candle body width (a body is `2 * half + 1` pixels wide).
    pub fn body_half(&self) -> i32 {
        ((self.slot_w() * 0.7) as i32 - 1).max(0) / 2
    }
    /// Row of price `px_e9`.
    pub fn y_of(&self, px_e9: i64) -> i32 {
        let span = (self.hi - self.lo).max(1) as f64;
        let f = (self.hi - px_e9) as f64 / span;
        self.price.y + (f * (self.price.h - 1) as f64).round() as i32
    }
    /// Price at row `y`, e9.
    pub fn px_at(&self, y: i32) -> i64 {
        let f = (y - self.price.y) as f64 / (self.price.h - 1).max(1) as f64;
        self.hi - (f * (self.hi - self.lo) as f64).round() as i64
    }
    /// Bar under column `x`, if any.
    pub fn idx_at(&self, x: i32) -> Option<usize> {
        if x < self.price.x || x >= self.price.right() {
            return None;
        }
        Some(self.view.first + ((x - self.price.x) as f64 / self.slot_w()) as usize)
    }
}

/// Place the parts of a panel in `r` and compute the price scale of the bars in `view`.
pub fn geometry(r: Rect, chart: &SymbolChart, view: View) -> Geom {
    let n = chart.bars.len();
    let view = view.clamped(n);
    let inner = Rect::new(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
    let title = Rect::new(inner.x, inner.y, inner.w, TITLE_H);
    let body_h = (inner.h - TITLE_H - TIME_H).max(2);
    let has_vol = chart.bars[view.first.min(n)..view.end(n)].iter().any(|b| b.volume > 0);
    let vol_h = if has_vol { body_h / 5 } else { 0 };
    let plot_w = (inner.w - AXIS_W).max(1);
    let price = Rect::new(inner.x, title.bottom() + 2, plot_w, body_h - vol_h - 4);
    let volume = Rect::new(inner.x, price.bottom() + 2, plot_w, vol_h);
    let axis = Rect::new(price.right(), title.bottom(), AXIS_W, body_h);
    let time = Rect::new(inner.x, title.bottom() + body_h, plot_w, TIME_H);
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for i in view.first..view.end(n) {
        let b = &chart.bars[i];
        lo = lo.min(b.low_px_e9);
        hi = hi.max(b.high_px_e9);
        for o in &chart.overlays {
            if let Some(Some(v)) = o.values.get(i) {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
        }
    }
    if lo > hi {
        (lo, hi) = (0, PX_SCALE);
    }
    let pad = ((hi - lo) / 20).max(PX_SCALE / 100);
    Geom { title, price, volume, axis, time, view, lo: lo - pad, hi: hi + pad }
}

/// A "nice" tick step (1, 2 or 5 x 10^k, in e9 units) giving about `target` ticks over `span`.
pub fn nice_step(span: i64, target: i32) -> i64 {
    let raw = span.max(1) as f64 / f64::from(target.max(1));
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    (step.round() as i64).max(1)
}

/// Decimals needed to tell ticks `step` (e9) apart, at least 2 below 1000.
fn decimals(step: i64, hi: i64) -> usize {
    let mut d = 0;
    let mut s = step;
    while d < 9 && s % PX_SCALE != 0 {
        s *= 10;
        d += 1;
    }
    if hi < 1000 * PX_SCALE { d.max(2) } else { d }
}

/// Format a price with `d` decimals.
pub fn fmt_price(px_e9: i64, d: usize) -> String {
    format!("{:.*}", d, px_e9 as f64 / PX_SCALE as f64)
}

/// Draw one panel for `chart` in `r`; returns its geometry.
pub fn draw_panel(c: &mut Canvas, r: Rect, chart: &SymbolChart, view: View, o: &PanelOpts<'_>) -> Geom {
    let t = o.theme;
    c.fill_rect(r, r, if o.focused { t.focus } else { t.border });
    c.fill_rect(Rect::new(r.x + 1, r.y + 1, r.w - 2, r.h - 2), r, t.panel);
    if chart.bars.is_empty() {
        c.text(r.x + 4, r.y + 3, &format!("{}: no bars", chart.symbol), r, t.text);
        return geometry(r, chart, View::all(1));
    }
    let g = geometry(r, chart, view);
    let n = chart.bars.len();
    let (first, end) = (g.view.first, g.view.end(n));
    let step = nice_step(g.hi - g.lo, (g.price.h / 40).max(2));
    let dec = decimals(step, g.hi);

    // Grid and price labels.
    let mut tick = (g.lo + step - 1).div_euclid(step) * step;
    while tick <= g.hi {
        let y = g.y_of(tick);
        c.hline(g.price.x, g.price.right() - 1, y, g.price, t.grid);
        c.text(g.axis.x + 4, y - GLYPH_H / 2, &fmt_price(tick, dec), g.axis, t.text);
        tick += step;
    }

    // Time labels: every k-th bar (stable while panning), the date when the day changes.
    let k = ((f64::from(text_width("00:00") + 12) / g.slot_w()).ceil() as usize).max(1);
    let mut prev_day = None;
    for i in (first.div_ceil(k) * k..end).step_by(k) {
        let ts = chart.bars[i].ts_event_ns;
        let x = g.x_of(i);
        c.vline(x, g.price.y, g.price.bottom() - 1, g.price, t.grid);
        let day = timefmt::day(ts);
        let label = if chart.interval_s >= 86_400 || prev_day.is_some_and(|d| d != day) {
            timefmt::mmdd(ts)
        } else {
            timefmt::hhmm(ts)
        };
        prev_day = Some(day);
        let lx = x - text_width(&label) / 2;
        if lx >= g.time.x && lx + text_width(&label) <= g.time.right() {
            c.text(lx, g.time.y + 2, &label, g.time, t.dim);
        }
    }
    c.text(g.axis.x + 4, g.time.y + 2, "UTC", Rect::new(g.axis.x, g.time.y, AXIS_W, TIME_H), t.dim);

    // Volume.
    let max_vol = chart.bars[first..end].iter().map(|b| b.volume).max().unwrap_or(0);
    if g.volume.h > 0 && max_vol > 0 {
        for i in first..end {
            let b = &chart.bars[i];
            let h = (b.volume as f64 / max_vol as f64 * f64::from(g.volume.h)).round() as i32;
            let col = if b.close_px_e9 >= b.open_px_e9 { t.up_vol } else { t.down_vol };
            let (x, hw) = (g.x_of(i), g.body_half());
            c.fill_rect(Rect::new(x - hw, g.volume.bottom() - h, 2 * hw + 1, h), g.volume, col);
        }
    }

    // Candles: wick, then body over it.
    let hw = g.body_half();
    for i in first..end {
        let b = &chart.bars[i];
        let col = if b.close_px_e9 >= b.open_px_e9 { t.up } else { t.down };
        let x = g.x_of(i);
        c.vline(x, g.y_of(b.high_px_e9), g.y_of(b.low_px_e9), g.price, col);
        let (top, bot) = (g.y_of(b.open_px_e9.max(b.close_px_e9)), g.y_of(b.open_px_e9.min(b.close_px_e9)));
        c.fill_rect(Rect::new(x - hw, top, 2 * hw + 1, bot - top + 1), g.price, col);
    }

    // Overlays.
    if o.overlays {
        for (k, ov) in chart.overlays.iter().enumerate() {
            let col = t.series[k % t.series.len()];
            let mut prev: Option<(i32, i32)> = None;
            for i in first..end {
                let Some(Some(v)) = ov.values.get(i) else {
                    prev = None;
                    continue;
                };
                let (x, y) = (g.x_of(i), g.y_of(*v));
                match ov.style {
                    PlotStyle::Line => {
                        c.line(prev.unwrap_or((x, y)), (x, y), g.price, col);
                    }
                    PlotStyle::Level => {
                        let half = (g.slot_w() / 2.0).ceil() as i32;
                        c.hline(x - half, x + half, y, g.price, col);
                    }
                }
                prev = Some((x, y));
            }
        }
    }

    // Fill markers: a triangle whose apex sits at the fill price (buys point up from below,
    // sells point down from above).
    for f in visible_fills(chart, first, end) {
        let Some(i) = chart.bar_at(f.ts_ns).filter(|i| (first..end).contains(i)) else { continue };
        let (x, y) = (g.x_of(i), g.y_of(f.px_e9));
        let (col, dir) = if f.side == Side::Buy { (t.buy, 1) } else { (t.sell, -1) };
        for row in 0..6 {
            c.hline(x - row / 2, x + row / 2, y + dir * row, g.price, col);
        }
    }

    // Working limit and stop orders: a dotted line at the price, side and size on the axis.
    for w in &chart.working {
        let y = g.y_of(w.px_e9);
        if y < g.price.y || y >= g.price.bottom() {
            continue;
        }
        let col = if w.side == Side::Buy { t.buy } else { t.sell };
        c.dashed_hline(g.price.x, g.price.right() - 1, y, g.price, col, (2, 3));
        let lbl =
            format!("{}{} {}", if w.side == Side::Buy { "B" } else { "S" }, if w.stop { "STP" } else { "LMT" }, w.qty);
        c.fill_rect(Rect::new(g.axis.x, y - 5, AXIS_W, 11), g.axis, col);
        c.text(g.axis.x + 4, y - GLYPH_H / 2, &lbl, g.axis, t.panel);
    }

    // Position as of the last bar on screen.
    let pos = chart.position_at(end - 1);
    let mut right_text = String::new();
    if pos.qty != 0 {
        let y = g.y_of(pos.avg_px_e9);
        c.dashed_hline(g.price.x, g.price.right() - 1, y, g.price, t.position, (6, 4));
        let lbl = format!("{:+}", pos.qty);
        c.fill_rect(Rect::new(g.axis.x, y - 5, AXIS_W, 11), g.axis, t.position);
        c.text(g.axis.x + 4, y - GLYPH_H / 2, &lbl, g.axis, t.panel);
        let last = chart.bars[end - 1].close_px_e9;
        let upnl = (last - pos.avg_px_e9) as f64 / PX_SCALE as f64 * pos.qty as f64;
        right_text = format!("POS {:+} @ {} UPNL {:+.2}", pos.qty, fmt_price(pos.avg_px_e9, dec.max(2)), upnl);
    }

    // Title: symbol, then the crosshair's OHLCV readout or the legend; the position on the right.
    let mut x = c.text(g.title.x + 4, g.title.y + 2, &chart.symbol, g.title, t.text) + GLYPH_W;
    let cross = o.crosshair.filter(|&(cx, cy)| g.price.contains(cx, cy) || g.volume.contains(cx, cy));
    let cross_idx = cross.and_then(|(cx, _)| g.idx_at(cx)).filter(|i| *i < end);
    if let Some(i) = cross_idx {
        let b = &chart.bars[i];
        let ohlcv = format!(
            "O {} H {} L {} C {} V {}",
            fmt_price(b.open_px_e9, dec),
            fmt_price(b.high_px_e9, dec),
            fmt_price(b.low_px_e9, dec),
            fmt_price(b.close_px_e9, dec),
            b.volume
        );
        let when = format!("{} {}", timefmt::date(b.ts_event_ns), timefmt::hhmm(b.ts_event_ns));
        let mut s = format!("{when}  {ohlcv}");
        if x + text_width(&s) > g.title.right() {
            // A narrow panel: the time without the date.
            s = format!("{} {ohlcv}", timefmt::hhmm(b.ts_event_ns));
        }
        c.text(x, g.title.y + 2, &s, g.title, t.text);
    } else {
        let iv = interval_label(chart.interval_s);
        x = c.text(x, g.title.y + 2, &iv, g.title, t.dim) + GLYPH_W;
        if o.overlays {
            for (k, ov) in chart.overlays.iter().enumerate() {
                x = c.text(x, g.title.y + 2, &ov.name, g.title, t.series[k % t.series.len()]) + GLYPH_W;
            }
        }
    }
    if !right_text.is_empty() {
        let w = text_width(&right_text);
        c.fill_rect(Rect::new(g.title.right() - w - 6, g.title.y, w + 6, TITLE_H), g.title, t.panel);
        c.text(g.title.right() - w - 4, g.title.y + 2, &right_text, g.title, t.position);
    }

    // Crosshair.
    if let (Some((_, cy)), Some(i)) = (cross, cross_idx) {
        let x = g.x_of(i);
        c.vline(x, g.price.y, g.volume.bottom().max(g.price.bottom()) - 1, r, t.cross);
        if g.price.contains(x, cy) {
            c.dashed_hline(g.price.x, g.price.right() - 1, cy, g.price, t.cross, (3, 3));
            c.fill_rect(Rect::new(g.axis.x, cy - 5, AXIS_W, 11), g.axis, t.cross);
            c.text(g.axis.x + 4, cy - GLYPH_H / 2, &fmt_price(g.px_at(cy), dec), g.axis, t.panel);
        }
    }
    g
}

/// `1m`, `5m`, `1h`, `1d`, `30s`.
pub fn interval_label(s: u32) -> String {
    match s {
        0 => String::new(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The fills that can fall on bars `first..end`: when the fills are in time order (a run's
/// always are) only those from the first bar's start to the end's, found by a binary search on
/// the fills, instead of a search over every bar for every fill (a long replay has tens of
/// thousands of fills and a bar array far larger than the cache: 100 ms a frame).
fn visible_fills(chart: &SymbolChart, first: usize, end: usize) -> &[FillMark] {
    let f = &chart.fills;
    if first >= end || first >= chart.bars.len() || !f.is_sorted_by_key(|m| m.ts_ns) {
        return f;
    }
    let t0 = chart.bars[first].ts_event_ns;
    let t1 = chart.bars.get(end).map_or(i64::MAX, |b| b.ts_event_ns);
    &f[f.partition_point(|m| m.ts_ns < t0)..f.partition_point(|m| m.ts_ns < t1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_decimals_fit_them() {
        assert_eq!(nice_step(10 * PX_SCALE, 5), 2 * PX_SCALE);
        assert_eq!(nice_step(PX_SCALE, 4), PX_SCALE / 2);
        assert_eq!(nice_step(3 * PX_SCALE, 10), PX_SCALE / 2);
        assert_eq!(decimals(PX_SCALE / 2, 3000 * PX_SCALE), 1);
        assert_eq!(decimals(5 * PX_SCALE, 3000 * PX_SCALE), 0);
        assert_eq!(decimals(5 * PX_SCALE, 30 * PX_SCALE), 2);
        assert_eq!(fmt_price(3_080_800_000_000, 2), "3080.80");
        assert_eq!(interval_label(60), "1m");
        assert_eq!(interval_label(86_400), "1d");
    }

    #[test]
    fn the_visible_fills_are_those_a_full_scan_finds() {
        use crate::model::FillMark;
        let bars: Vec<engine::records::Bar> = (0..50)
            .map(|i| engine::records::Bar { ts_event_ns: i * 60, close_px_e9: 1, ..Default::default() })
            .collect();
        let mut c = SymbolChart::new("X", 60, bars);
        c.fills = (0..40).map(|i| FillMark { ts_ns: i * 77 + 5, side: Side::Buy, qty: 1, px_e9: 1 }).collect();
        let scan = |first: usize, end: usize| -> Vec<i64> {
            c.fills
                .iter()
                .filter(|f| c.bar_at(f.ts_ns).is_some_and(|i| (first..end).contains(&i)))
                .map(|f| f.ts_ns)
                .collect()
        };
        for (first, end) in [(0, 50), (3, 9), (10, 11), (49, 50), (20, 20)] {
            let fast: Vec<i64> = visible_fills(&c, first, end)
                .iter()
                .filter(|f| c.bar_at(f.ts_ns).is_some_and(|i| (first..end).contains(&i)))
                .map(|f| f.ts_ns)
                .collect();
            assert_eq!(fast, scan(first, end), "{first}..{end}");
        }
        assert_eq!(visible_fills(&c, 3, 9).len(), scan(3, 9).len(), "only the visible ones");
    }
}
