//! Render time of one frame: a 3x3 grid of 500-candle panels with two line overlays each, at
//! 1920x1080, with the crosshair on (median and p99 over the frames).
//!
//! `cargo run --release -p ringtape-viz --example render_bench [-- FRAMES]`
#![allow(clippy::disallowed_methods)] // a benchmark times itself

use engine::records::{Bar, PX_SCALE};
use engine::strategy::PlotStyle;
use std::time::Instant;
use viz::canvas::Canvas;
use viz::layout::Layout;
use viz::model::{Overlay, SymbolChart};
use viz::scene::Scene;

fn chart(k: usize, n: usize) -> SymbolChart {
    // A deterministic random walk (xorshift), one-minute bars.
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ k as u64;
    let mut px = 100 * PX_SCALE;
    let bars: Vec<Bar> = (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let step = (s % 200) as i64 - 100;
            let open = px;
            px += step * PX_SCALE / 100;
            let (hi, lo) = (
                open.max(px) + (s >> 8) as i64 % 30 * PX_SCALE / 100,
                open.min(px) - (s >> 16) as i64 % 30 * PX_SCALE / 100,
            );
            Bar {
                ts_event_ns: i as i64 * 60_000_000_000,
                open_px_e9: open,
                high_px_e9: hi,
                low_px_e9: lo,
                close_px_e9: px,
                volume: 100 + s % 1000,
            }
        })
        .collect();
    let sma = |p: usize| -> Vec<Option<i64>> {
        (0..n)
            .map(|i| (i + 1 >= p).then(|| bars[i + 1 - p..=i].iter().map(|b| b.close_px_e9).sum::<i64>() / p as i64))
            .collect()
    };
    let mut c = SymbolChart::new(format!("SYM{k}"), 60, bars.clone());
    c.overlays = vec![
        Overlay { name: "SMA 10".into(), style: PlotStyle::Line, values: sma(10) },
        Overlay { name: "SMA 30".into(), style: PlotStyle::Line, values: sma(30) },
    ];
    c
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut scene = Scene::new((0..9).map(|k| chart(k, 500)).collect(), 500);
    scene.layout = Layout::Grid3;
    scene.mouse = Some((300, 200));
    let mut canvas = Canvas::new(1920, 1080, 0);
    for _ in 0..10 {
        scene.draw(&mut canvas);
    }
    let mut us: Vec<f64> = (0..frames)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(scene.draw(&mut canvas));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    let q = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
    println!(
        "render 3x3 grid, 9 x 500 candles, 2 overlays each, 1920x1080: {frames} frames, median {:.0} us, p99 {:.0} us, max {:.0} us",
        q(0.5),
        q(0.99),
        q(1.0)
    );
}
