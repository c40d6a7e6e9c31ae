//! Pixels of known bars: candles, wicks, fill markers, axis labels, crosshair, layouts; a
//! strategy's overlays recorded through the inline pipeline.

use engine::records::{Bar, PX_SCALE, Side};
use viz::canvas::{Canvas, Rect};
use viz::chart::{Geom, PanelOpts, draw_panel, fmt_price, nice_step};
use viz::model::{FillMark, SymbolChart, View};
use viz::scene::{Action, Scene};
use viz::theme::Theme;

const D: i64 = PX_SCALE;
const MIN: i64 = 60_000_000_000;
/// 2019-11-05 14:30 UTC.
const T0: i64 = 1_572_964_200_000_000_000;

fn bar(i: i64, o: i64, h: i64, l: i64, c: i64, v: u64) -> Bar {
    Bar {
        ts_event_ns: T0 + i * MIN,
        open_px_e9: o * D,
        high_px_e9: h * D,
        low_px_e9: l * D,
        close_px_e9: c * D,
        volume: v,
    }
}

/// Bar 0 rises 100 -> 104 (high 106, low 98); bar 1 falls 104 -> 101; bar 2 rises 101 -> 102.
fn chart() -> SymbolChart {
    SymbolChart::new(
        "TEST",
        60,
        vec![bar(0, 100, 106, 98, 104, 500), bar(1, 104, 105, 100, 101, 1000), bar(2, 101, 103, 99, 102, 250)],
    )
}

fn draw(c: &SymbolChart, mouse: Option<(i32, i32)>) -> (Canvas, Geom, Theme) {
    let theme = Theme::default();
    let mut canvas = Canvas::new(480, 320, theme.bg);
    let o = PanelOpts { theme: &theme, crosshair: mouse, overlays: true, focused: false };
    let r = canvas.rect();
    let g = draw_panel(&mut canvas, r, c, View::all(c.bars.len()), &o);
    (canvas, g, theme)
}

fn px(c: &Canvas, x: i32, y: i32) -> u32 {
    c.get(x, y).expect("inside the canvas")
}

/// The panel background or a grid line over it.
fn is_bg(c: &Canvas, x: i32, y: i32, t: &Theme) -> bool {
    let p = px(c, x, y);
    p == t.panel || p == t.grid
}

#[test]
fn a_rising_candle_body_is_the_up_colour_and_a_falling_one_the_down_colour() {
    let (c, g, t) = draw(&chart(), None);
    // Three bars over the plot width: bar 0 is centred in the first third.
    let slot = g.price.w / 3;
    assert!((g.x_of(0) - (g.price.x + slot / 2)).abs() <= 1);
    // Inside bar 0's body (open 100, close 104): up colour, across the body's width.
    let y_mid = g.y_of(102 * D);
    for dx in -g.body_half()..=g.body_half() {
        assert_eq!(px(&c, g.x_of(0) + dx, y_mid), t.up, "bar 0 body at dx {dx}");
    }
    assert!(g.body_half() >= 10, "bodies are wide at 3 bars per panel");
    // Body edges: the open's row is body, two rows under it is wick only (1 px wide).
    assert_eq!(px(&c, g.x_of(0) + 3, g.y_of(100 * D)), t.up);
    assert!(is_bg(&c, g.x_of(0) + 3, g.y_of(100 * D) + 2, &t));
    // Bar 1 (104 -> 101) is down, bar 2 up again.
    assert_eq!(px(&c, g.x_of(1), g.y_of(102 * D)), t.down);
    assert_eq!(px(&c, g.x_of(2), g.y_of(101 * D + D / 2)), t.up);
    // Between the candles: the panel background.
    let gap_x = (g.x_of(0) + g.x_of(1)) / 2;
    assert!(is_bg(&c, gap_x, y_mid, &t));
}

#[test]
fn a_wick_runs_from_the_high_to_the_low_and_no_further() {
    let (c, g, t) = draw(&chart(), None);
    let x = g.x_of(0);
    let lit: Vec<i32> = (g.price.y..g.price.bottom()).filter(|&y| px(&c, x, y) == t.up).collect();
    let (top, bot) = (*lit.first().unwrap(), *lit.last().unwrap());
    assert_eq!((top, bot), (g.y_of(106 * D), g.y_of(98 * D)));
    assert_eq!(lit.len() as i32, bot - top + 1, "one unbroken column");
    // Height in pixels = (high - low) / scale range x plot height: 8 / (hi - lo) x (h - 1).
    let expect = 8.0 * D as f64 / (g.hi - g.lo) as f64 * f64::from(g.price.h - 1);
    assert!((f64::from(bot - top) - expect).abs() <= 1.0, "wick {} px, expected {expect:.1}", bot - top);
    // Beside the wick, above the body: background.
    assert!(is_bg(&c, x + g.body_half() + 1, g.y_of(105 * D), &t));
    assert!(is_bg(&c, x, top - 1, &t));
}

#[test]
fn fill_markers_point_at_their_price_on_their_bar() {
    let mut ch = chart();
    ch.fills = vec![
        FillMark { ts_ns: T0 + MIN + 1, side: Side::Buy, qty: 10, px_e9: 104 * D },
        FillMark { ts_ns: T0 + 2 * MIN, side: Side::Sell, qty: 10, px_e9: 99 * D + D / 2 },
    ];
    let (c, g, t) = draw(&ch, None);
    // The buy on bar 1 at 104: apex at the price, the triangle below it.
    let (x, y) = (g.x_of(1), g.y_of(104 * D));
    assert_eq!(px(&c, x, y), t.buy);
    assert_eq!(px(&c, x - 2, y + 5), t.buy);
    assert_ne!(px(&c, x, y - 1), t.buy);
    // The sell on bar 2 at 99.5: apex at the price, the triangle above it.
    let (x, y) = (g.x_of(2), g.y_of(99 * D + D / 2));
    assert_eq!(px(&c, x, y), t.sell);
    assert_eq!(px(&c, x + 2, y - 5), t.sell);
    // Flat at the end: no position label.
    assert!(!(g.axis.y..g.axis.bottom()).any(|yy| px(&c, g.axis.x + 1, yy) == t.position));
}

/// Pixels of `s` drawn alone at (x, y) on a blank canvas of the same size.
fn glyph_pixels(w: usize, h: usize, x: i32, y: i32, s: &str) -> Vec<(i32, i32)> {
    let mut blank = Canvas::new(w, h, 0);
    let r = blank.rect();
    blank.text(x, y, s, r, 1);
    (0..h as i32)
        .flat_map(|yy| (0..w as i32).map(move |xx| (xx, yy)))
        .filter(|&(xx, yy)| blank.get(xx, yy) == Some(1))
        .collect()
}

#[test]
fn the_price_axis_carries_readable_tick_labels() {
    let (c, g, t) = draw(&chart(), None);
    let step = nice_step(g.hi - g.lo, (g.price.h / 40).max(2));
    // About 8.8 of range over 6 ticks: 1.47 a tick rounds up to a 2.00 step (98, 100, ...).
    assert_eq!(step, 2 * D);
    // The label "100.00" at its tick row, glyph for glyph in the text colour.
    let want = glyph_pixels(c.width(), c.height(), g.axis.x + 4, g.y_of(100 * D) - 4, &fmt_price(100 * D, 2));
    assert!(want.len() > 60, "six characters of glyphs");
    for (x, y) in &want {
        assert!(g.axis.contains(*x, *y));
        assert_eq!(px(&c, *x, *y), t.text, "label pixel ({x}, {y})");
    }
    // The time axis labels the first bar 14:30 (UTC).
    let want = glyph_pixels(c.width(), c.height(), g.x_of(0) - 20, g.time.y + 2, "14:30");
    assert!(want.iter().all(|&(x, y)| px(&c, x, y) == t.dim));
}

#[test]
fn the_crosshair_draws_lines_and_the_ohlcv_readout() {
    let ch = chart();
    let (plain, g, t) = draw(&ch, None);
    let mouse = (g.x_of(1) + 2, g.y_of(99 * D));
    let (c, _, _) = draw(&ch, Some(mouse));
    // The vertical line snaps to bar 1's centre, below its low (nothing else drawn there).
    assert_eq!(px(&c, g.x_of(1), g.y_of(99 * D) + 8), t.cross);
    assert!(is_bg(&plain, g.x_of(1), g.y_of(99 * D) + 8, &t));
    // The title reads bar 1 glyph for glyph (a 480-pixel panel is too narrow for the date).
    let title = "TEST 14:31 O 104.00 H 105.00 L 100.00 C 101.00 V 1000";
    let want = glyph_pixels(c.width(), c.height(), g.title.x + 4, g.title.y + 2, title);
    let inside: Vec<_> = want.into_iter().filter(|&(x, y)| g.title.contains(x, y)).collect();
    assert!(inside.len() > 300);
    assert!(inside.iter().all(|&(x, y)| px(&c, x, y) == t.text));
}

#[test]
fn a_held_position_shows_its_line_and_label() {
    let mut ch = chart();
    ch.fills = vec![FillMark { ts_ns: T0, side: Side::Buy, qty: 7, px_e9: 101 * D }];
    let (c, g, t) = draw(&ch, None);
    // The dashed line at the average price, the axis label box in the position colour.
    let y = g.y_of(101 * D);
    let on = (g.price.x..g.price.right()).filter(|&x| px(&c, x, y) == t.position).count() as i32;
    assert!(on > g.price.w / 4, "dashed line: {on} px");
    assert_eq!(px(&c, g.axis.x + 1, y), t.position);
}

fn many(n: usize, bars: usize) -> Vec<SymbolChart> {
    (0..n)
        .map(|k| {
            let b =
                (0..bars as i64).map(|i| bar(i, 100 + i % 9, 110 + i % 9, 95, 101 + (i + k as i64) % 9, 100)).collect();
            SymbolChart::new(format!("S{k}"), 60, b)
        })
        .collect()
}

#[test]
fn a_3x3_grid_draws_nine_panels_and_keys_move_focus_zoom_and_pan() {
    let mut scene = Scene::new(many(11, 500), 500);
    let mut c = Canvas::new(900, 600, 0);
    let panels = scene.draw(&mut c);
    assert_eq!(panels.iter().map(|p| p.0).collect::<Vec<_>>(), (0..9).collect::<Vec<_>>());
    // Each panel sits in its third of the width and height.
    assert!(panels[4].1.price.x > 300 && panels[4].1.price.right() < 600);
    scene.apply(Action::ZoomIn, &c);
    assert_eq!(scene.views[0], View { first: 100, count: 400 });
    scene.apply(Action::Pan(-10), &c);
    assert_eq!(scene.views[0], View { first: 60, count: 400 });
    scene.apply(Action::Home, &c);
    assert_eq!(scene.views[0].first, 0);
    // Tab past the ninth ticker pages the grid.
    for _ in 0..9 {
        scene.apply(Action::NextSymbol, &c);
    }
    assert_eq!(scene.focus, 9);
    assert_eq!(scene.panels()[0], 9);
    // The side panel lists the tickers: "S10" in the text colour on the 11th row.
    scene.apply(Action::ToggleSidePanel, &c);
    scene.draw(&mut c);
    let want = glyph_pixels(c.width(), c.height(), 6, 4 + 14 * 11, "S10");
    assert!(want.len() > 20 && want.iter().all(|&(x, y)| px(&c, x, y) == scene.theme.text));
    // Clicking ticker 0's SHOW box hides it.
    scene.apply(Action::Click(6 + 9 * 8 + 4, 4 + 14 + 3), &c);
    assert!(!scene.shown[0]);
    assert!(!scene.panels().contains(&0));
}

#[test]
fn a_strategy_draws_its_overlays_through_the_inline_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    // A rise then a fall: sma_cross(2, 4) buys on the way up and sells on the way down.
    let closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9, 8];
    let bars: Vec<Bar> = closes.iter().enumerate().map(|(i, &c)| bar(i as i64, c, c, c, c, 100)).collect();
    engine::barfile::write_bar_file(&dir.path().join("AAA.60s.rtb"), "AAA", 60, &bars).unwrap();
    let set = engine::merge::BarSet::open_dir(dir.path(), 1).unwrap();
    let p = strategies::sma_cross::SmaCrossParams { fast: 2, slow: 4, qty: 5 };
    let f = strategies::sma_cross::SmaCrossFactory(p);
    let charts = viz::record::run_strategy(&Default::default(), &set, &f).unwrap();
    assert_eq!(charts.len(), 1);
    let ch = &charts[0];
    let names: Vec<_> = ch.overlays.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["SMA fast", "SMA slow"]);
    let fast = &ch.overlays[0].values;
    assert_eq!(fast.len(), closes.len());
    // Fast SMA(2): none on bar 0, (10 + 11) / 2 = 10.5 on bar 4.
    assert_eq!((fast[0], fast[4]), (None, Some(10 * D + D / 2)));
    assert_eq!(ch.overlays[1].values[2], None);
    // One buy then one sell of 5 shares, on bars after the signal (filled at the next open).
    let sides: Vec<_> = ch.fills.iter().map(|f| (f.side, f.qty)).collect();
    assert_eq!(sides, [(Side::Buy, 5), (Side::Sell, 5)]);
    assert!(ch.fills.iter().all(|f| ch.bar_at(f.ts_ns).is_some()));
}

#[test]
fn text_stays_inside_a_small_panel() {
    // A tiny panel must not draw outside its rectangle.
    let theme = Theme::default();
    let mut c = Canvas::new(300, 200, 0);
    let r = Rect::new(50, 50, 120, 80);
    let o = PanelOpts { theme: &theme, crosshair: Some((60, 90)), overlays: true, focused: true };
    draw_panel(&mut c, r, &chart(), View::all(3), &o);
    for y in 0..200 {
        for x in 0..300 {
            if !r.contains(x, y) {
                assert_eq!(c.get(x, y), Some(0), "({x}, {y}) outside the panel");
            }
        }
    }
}
