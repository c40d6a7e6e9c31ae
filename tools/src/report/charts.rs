//! The report's charts, drawn with plotters' SVG backend into strings that the HTML inlines (no
//! files, no fonts to load: the browser lays out the `<text>`).

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// Chart size, px.
pub const SIZE: (u32, u32) = (860, 280);

/// Series colours (run 1, run 2, ...).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];
const GAIN: RGBColor = RGBColor(0, 136, 0);
const LOSS: RGBColor = RGBColor(204, 0, 0);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

fn range(vals: impl Iterator<Item = f64>, with_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = if with_zero { (0.0f64, 0.0f64) } else { (f64::INFINITY, f64::NEG_INFINITY) };
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// A time axis label: the date, and the time of day when the span is under three days.
fn time_label(secs: f64, span_s: f64) -> String {
    let Ok(t) = jiff::Timestamp::from_second(secs as i64) else { return String::new() };
    if span_s < 3.0 * 86_400.0 { t.strftime("%m-%d %H:%M").to_string() } else { t.strftime("%Y-%m-%d").to_string() }
}

/// What the x values of [`lines`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds since the epoch, UTC: labelled as dates (and times under three days).
    Time,
    /// Days since each series' start (runs of different dates side by side).
    Elapsed,
}

/// Lines: one per `(name, points)` series, a legend when there are several, the area to zero
/// filled when `fill` and there is one series.
pub fn lines(title: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)], fill: bool, x: XAxis) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
        let (x0, x1) = range(xs, false);
        let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)), fill);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let span = x1 - x0;
        let fmt_x = |v: &f64| match x {
            XAxis::Time => time_label(*v, span),
            XAxis::Elapsed => format!("{v:.1}"),
        };
        let fmt_y = |y: &f64| format!("{y:.0}");
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .y_desc(y_desc)
            .x_desc(if x == XAxis::Elapsed { "days since the run's first fill" } else { "" })
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            if fill && series.len() == 1 {
                chart
                    .draw_series(AreaSeries::new(pts.iter().copied(), 0.0, c.mix(0.25)).border_style(c))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Bars at 0..n labelled by `labels` (every k-th label when they would crowd), green up, red down.
pub fn bars(title: &str, y_desc: &str, labels: &[String], values: &[f64]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = values.len().max(1);
        let (y0, y1) = range(values.iter().copied(), true);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y0..y1)
            .map_err(err)?;
        let fmt_x = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let fmt_y = |y: &f64| format!("{y:.0}");
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .y_labels(6)
            .disable_x_mesh()
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let w = if n > 200 { 0.5 } else { 0.4 };
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let x = i as f64;
                Rectangle::new([(x - w, 0.0), (x + w, v)], if v >= 0.0 { GAIN.filled() } else { LOSS.filled() })
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Equal-width bin counts of `values` over [lo, hi]: (lo, width, counts).
pub fn bin(values: &[f64], bins: usize) -> (f64, f64, Vec<u64>) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0, vec![0; bins]);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let w = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
    }
    (lo, w, counts)
}

/// A histogram of `values` in `bins` equal bins; bars left of zero red, the rest blue.
pub fn histogram(title: &str, x_desc: &str, values: &[f64], bins: usize) -> Result<String> {
    let (lo, w, counts) = bin(values, bins);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..lo + w * bins as f64, 0.0..top)
            .map_err(err)?;
        let fmt = |v: &f64| if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let fmt_y = |y: &f64| format!("{y:.0}");
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(5)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt_y)
            .x_desc(x_desc)
            .y_desc("count")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let a = lo + w * i as f64;
                let color = if a + w <= 0.0 { LOSS } else { PALETTE[0] };
                Rectangle::new([(a, 0.0), (a + w, c as f64)], color.mix(0.8).filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_count_every_value_once() {
        let (lo, w, c) = bin(&[0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN], 4);
        assert_eq!((lo, w), (0.0, 1.0));
        assert_eq!(c, vec![1, 1, 1, 2]);
        assert_eq!(bin(&[], 3).2, vec![0, 0, 0]);
        assert_eq!(bin(&[5.0, 5.0], 2).2, vec![2, 0]);
    }

    #[test]
    fn charts_are_svg_with_their_title_and_shapes() {
        let s = lines("equity", "USD", &[("a".into(), vec![(0.0, 1.0), (86_400.0, 2.0)])], true, XAxis::Time).unwrap();
        assert!(s.starts_with("<svg") && s.contains("equity") && s.contains("<polygon"), "{s}");
        let two =
            [("run a".to_string(), vec![(0.0, 1.0), (60.0, 2.0)]), ("run b".into(), vec![(0.0, 2.0), (60.0, 1.0)])];
        let s = lines("equity", "USD", &two, false, XAxis::Elapsed).unwrap();
        for colour in ["#1F77B4", "#FF7F0E"] {
            assert_eq!(
                s.matches(&format!("<polyline fill=\"none\" opacity=\"1\" stroke=\"{colour}\"")).count(),
                2,
                "a line and its legend mark: {s}"
            );
        }
        assert!(s.contains("run b"));
        let s = bars("daily", "USD", &["d1".into(), "d2".into()], &[5.0, -3.0]).unwrap();
        assert!(s.contains("d2") && s.contains("fill=\"#CC0000\"") && s.contains("fill=\"#008800\""), "{s}");
        let s = histogram("pnl", "USD", &[-1.0, 1.0, 2.0], 3).unwrap();
        assert!(s.contains("<rect"), "{s}");
    }
}
