//! `ringtape report RUN_DIR... --out FILE.html`: the results dashboard. One self-contained HTML
//! file (no scripts, no external files: charts are PNG data URIs) with a row per run from its
//! `summary.json` (backtest or paper), each run's realized-PnL curve over its fills from
//! `fills.csv`, rejections by reason, and for paper runs the feed's runtime metrics from
//! `feed.json` (bars released, duplicates, late and updated bars, gaps filled, reconnects,
//! receive-to-publish latency).

pub mod charts;
pub mod journal;
pub mod metrics;

use crate::exit::bad_input;
use crate::summary::Summary;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use viz::canvas::{Canvas, Rect};

/// Arguments of `ringtape report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories (written by `ringtape backtest` or `ringtape paper`)
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// The HTML file to write
    #[arg(long, value_name = "FILE.html")]
    pub out: PathBuf,
}

/// Realized PnL of the whole run after each fill, from `fills.csv` (its last column is the
/// symbol's realized PnL so far).
fn realized_curve(fills: &str) -> Vec<f64> {
    let mut per_symbol: BTreeMap<String, f64> = BTreeMap::new();
    let mut curve = Vec::new();
    for line in fills.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        if let (Some(sym), Some(r)) = (cols.get(1), cols.last().and_then(|v| v.parse::<f64>().ok())) {
            per_symbol.insert((*sym).to_string(), r);
            curve.push(per_symbol.values().sum());
        }
    }
    curve
}

/// A line chart of `ys` (800x220, zero line, min/max labels) as PNG bytes.
fn chart(ys: &[f64]) -> Result<Vec<u8>> {
    let (w, h) = (800usize, 220usize);
    let mut c = Canvas::new(w, h, 0x00FF_FFFF);
    let clip = c.rect();
    let plot = Rect { x: 70, y: 10, w: w as i32 - 80, h: h as i32 - 30 };
    let (lo, hi) = ys.iter().fold((0.0f64, 0.0f64), |(a, b), &y| (a.min(y), b.max(y)));
    let span = (hi - lo).max(1e-9);
    let y_of = |v: f64| plot.y + plot.h - ((v - lo) / span * f64::from(plot.h)).round() as i32;
    c.hline(plot.x, plot.right(), y_of(0.0), clip, 0x00AA_AAAA);
    c.vline(plot.x, plot.y, plot.bottom(), clip, 0x0000_0000);
    c.text(2, plot.y, &format!("{hi:.0}"), clip, 0x0000_0000);
    c.text(2, plot.bottom() - 8, &format!("{lo:.0}"), clip, 0x0000_0000);
    c.text(plot.x, h as i32 - 12, &format!("realized PnL (USD) over {} fills", ys.len()), clip, 0x0044_4444);
    let n = ys.len().max(2) - 1;
    let mut prev: Option<(i32, i32)> = None;
    for (i, &y) in ys.iter().enumerate() {
        let p = (plot.x + (i as f64 / n as f64 * f64::from(plot.w)).round() as i32, y_of(y));
        if let Some(q) = prev {
            c.line(q, p, clip, if y >= 0.0 { 0x0000_8800 } else { 0x00CC_0000 });
        }
        prev = Some(p);
    }
    Ok(viz::png::encode(&c)?)
}

/// Standard base64 (RFC 4648, padded) for the data URIs.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn read_run(dir: &Path) -> Result<(Summary, String, Option<serde_json::Value>)> {
    let spath = dir.join("summary.json");
    if !spath.is_file() {
        return Err(bad_input(format!(
            "{}: no summary.json: not a run directory (give directories written by backtest or paper)",
            dir.display()
        )));
    }
    let summary = Summary::read(&spath).map_err(|e| bad_input(format!("{}: {e}", spath.display())))?;
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap_or_default();
    let feed = std::fs::read_to_string(dir.join("feed.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    Ok((summary, fills, feed))
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let runs: Vec<(PathBuf, Summary, String, Option<serde_json::Value>)> =
        args.runs.iter().map(|d| read_run(d).map(|(s, f, j)| (d.clone(), s, f, j))).collect::<Result<_>>()?;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ringtape report</title><style>\
body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;\
padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l{text-align:left}.neg{color:#c00}.pos{color:#080}\
</style></head><body><h1>ringtape report</h1>",
    );
    let _ = write!(
        h,
        "<table><tr><th>run</th><th>command</th><th>strategy</th><th>complete</th><th>bars</th><th>days</th>\
<th>fills</th><th>trades</th><th>win rate %</th><th>net PnL USD</th><th>return %</th><th>max DD USD</th>\
<th>Sharpe</th></tr>"
    );
    for (dir, s, _, _) in &runs {
        let r = &s.results;
        let cls = if r.net_pnl_usd < 0.0 { "neg" } else { "pos" };
        let _ = write!(
            h,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td>{}</td><td>{:.1}</td><td class={cls}>{:.2}</td><td>{:.3}</td><td>{:.2}</td><td>{}</td></tr>",
            esc(&dir.display().to_string()),
            esc(&s.command),
            esc(&r.strategy),
            if s.complete { "yes" } else { "no" },
            r.bars,
            r.days,
            r.fills,
            r.trades,
            r.win_rate_pct,
            r.net_pnl_usd,
            r.return_pct,
            r.max_drawdown_usd,
            r.sharpe_daily_annualized.map_or("n/a".into(), |x| format!("{x:.2}")),
        );
    }
    h.push_str("</table>");
    for (dir, s, fills, feed) in &runs {
        let _ = write!(h, "<h2>{}</h2>", esc(&dir.display().to_string()));
        if let Some(why) = &s.incomplete_reason {
            let _ = write!(h, "<p><b>incomplete:</b> {}</p>", esc(why));
        }
        let curve = realized_curve(fills);
        if curve.is_empty() {
            h.push_str("<p>no fills</p>");
        } else {
            let png = chart(&curve).with_context(|| format!("drawing the chart of {}", dir.display()))?;
            let _ = write!(h, "<img alt=\"realized PnL\" src=\"data:image/png;base64,{}\">", base64(&png));
        }
        if !s.results.rejects.is_empty() {
            h.push_str("<p>rejections: ");
            for (k, v) in &s.results.rejects {
                let _ = write!(h, "{} {v}; ", esc(k));
            }
            h.push_str("</p>");
        }
        if let Some(f) = feed {
            let c = &f["counters"];
            let _ = write!(
                h,
                "<p>feed: end {}, bars released {}, duplicates {}, late {}, updated {}, gaps filled {}, reconnects {}, \
parse errors {}, receive-to-publish p50 {} ns p99 {} ns (session clock x{})</p>",
                esc(&f["end"].to_string()),
                c["released"],
                c["duplicates"],
                c["late"],
                c["updated"],
                c["gaps_filled"],
                f["reconnects"],
                c["parse_errors"],
                f["receive_to_publish_ns"]["p50"],
                f["receive_to_publish_ns"]["p99"],
                f["session_clock_speed"],
            );
        }
    }
    h.push_str("</body></html>\n");
    std::fs::write(&args.out, h).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn the_curve_sums_each_symbols_latest_realized_pnl() {
        let fills = "ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl\n\
a,A,buy,1,1,0,A-1,none,1,0.00\na,B,buy,1,1,0,B-1,none,1,0.00\na,A,sell,1,2,0,A-2,none,0,1.00\n\
a,B,sell,1,0.5,0,B-2,none,0,-0.50\n";
        assert_eq!(realized_curve(fills), vec![0.0, 0.0, 1.0, 0.5]);
    }
}
