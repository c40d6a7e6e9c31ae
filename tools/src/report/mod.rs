//! `ringtape report DIR... --out FILE.html`: the results dashboard. One self-contained HTML file
//! (no scripts, no external files, no network: every chart is an inline `<svg>` drawn with
//! plotters) over any mix of
//!
//! - run directories of `ringtape backtest` and `ringtape paper` (`summary.json`, `fills.csv`,
//!   `journal.rtj` + `journal.meta.json`, `config.toml`; paper runs add `feed.json` and
//!   `metrics.jsonl`): the metrics table with the runs side by side ([`metrics`]), equity and
//!   drawdown overlaid, per strategy, and per run daily PnL, per-ticker PnL, the trade PnL (or
//!   R-multiple) and holding-time distributions, exposure, what the journal holds ([`journal`]),
//!   and for paper runs the operational panel (latency percentiles, drops, rejects, reconnects);
//! - Monte Carlo study directories of `ringtape mc` (`mc.json`, `runs.csv`): the distributions of
//!   net PnL and max drawdown;
//! - sweep directories of `ringtape sweep` (`sweep.json`, `folds.csv`): the folds with their
//!   in-sample and out-of-sample results.
//!
//! Every metric's definition is printed in the report. A run without fills says "no trades"; a
//! directory that is none of these is a one-line error naming it and what to give instead.

pub mod charts;
pub mod journal;
pub mod metrics;

use crate::exit::bad_input;
use crate::summary::Summary;
use anyhow::{Context, Result};
use journal::JournalStats;
use metrics::{DEFINITIONS, MIN_RATIO_DAYS, Metrics};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `ringtape report`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Give run directories of backtest or paper, Monte Carlo directories of mc, sweep \
directories of sweep, in any mix; runs are shown side by side in the order given. The HTML needs no \
network and no scripts to view. Exit 0; 2 when a directory is none of these or a file in it is damaged.")]
pub struct Args {
    /// Directories: runs (backtest, paper), Monte Carlo studies (mc) or sweeps (sweep)
    #[arg(value_name = "DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// The HTML file to write
    #[arg(long, value_name = "FILE.html")]
    pub out: PathBuf,
}

/// A run directory, read.
#[derive(Debug)]
pub struct RunData {
    /// The directory as given.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// The metrics from `fills.csv` (and the journal's days and stops).
    pub metrics: Metrics,
    /// Whether `fills.csv` was there.
    pub has_fills_file: bool,
    /// The journal's aggregates, or why there are none.
    pub journal: std::result::Result<JournalStats, String>,
    /// `feed.json` of a paper run.
    pub feed: Option<serde_json::Value>,
    /// `metrics.jsonl` of a paper run, one object per sample.
    pub samples: Vec<serde_json::Value>,
}

/// What one directory given to the report holds.
#[derive(Debug)]
pub enum Source {
    /// A backtest or paper run.
    Run(Box<RunData>),
    /// A Monte Carlo study: its directory, `mc.json`, and the `runs.csv` columns by name.
    Mc(PathBuf, serde_json::Value, BTreeMap<String, Vec<f64>>),
    /// A sweep: its directory, `sweep.json`, and `folds.csv` as rows of fields (header first).
    Sweep(PathBuf, serde_json::Value, Vec<Vec<String>>),
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A chart name safe inside the SVG plotters writes.
fn plain(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '<' | '>' | '&' | '"')).collect()
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        bad_input(format!(
            "{}: not valid JSON ({e}): the file is damaged (re-run the command that wrote it)",
            path.display()
        ))
    })
}

/// `[risk] day_utc_offset_s` of a run's `config.toml` (0: UTC days, also without the file).
fn day_offset(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("config.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("risk")?.get("day_utc_offset_s")?.as_integer())
        .unwrap_or(0)
}

/// Read one run directory.
pub fn read_run(dir: &Path) -> Result<RunData> {
    let spath = dir.join("summary.json");
    let summary = Summary::read(&spath).map_err(|e| bad_input(format!("{e:#} (re-run the backtest or paper run)")))?;
    let offset = day_offset(dir);
    let jpath = dir.join("journal.rtj");
    let journal = if jpath.is_file() {
        crate::journal::Names::from_meta(&dir.join("journal.meta.json"))
            .and_then(|names| JournalStats::read(&jpath, &names, offset))
            .map_err(|e| format!("{e:#}"))
    } else {
        Err(format!("{}: no journal in this run", jpath.display()))
    };
    let fpath = dir.join("fills.csv");
    let (fills, has_fills_file) = match std::fs::read_to_string(&fpath) {
        Ok(t) => {
            (metrics::parse_fills(&t, &fpath.display().to_string()).map_err(|e| bad_input(format!("{e:#}")))?, true)
        }
        Err(_) => (Vec::new(), false),
    };
    let (days, stops): (Vec<i64>, &[journal::Stop]) = match &journal {
        Ok(j) => (j.days.iter().copied().collect(), &j.stops),
        Err(_) => (Vec::new(), &[]),
    };
    let metrics = metrics::compute(&fills, summary.results.starting_capital_usd, &days, offset, stops);
    let feed = std::fs::read_to_string(dir.join("feed.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let samples = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default();
    Ok(RunData { dir: dir.to_path_buf(), summary, metrics, has_fills_file, journal, feed, samples })
}

/// Read any directory the report takes.
pub fn read_source(dir: &Path) -> Result<Source> {
    if dir.join("summary.json").is_file() {
        return Ok(Source::Run(Box::new(read_run(dir)?)));
    }
    if dir.join("mc.json").is_file() {
        let j = read_json(&dir.join("mc.json"))?;
        let mut cols: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(dir.join("runs.csv")) {
            let mut lines = t.lines();
            let head: Vec<String> = lines.next().unwrap_or("").split(',').map(str::to_string).collect();
            for l in lines {
                for (k, v) in head.iter().zip(l.split(',')) {
                    cols.entry(k.clone()).or_default().push(v.parse().unwrap_or(f64::NAN));
                }
            }
        }
        return Ok(Source::Mc(dir.to_path_buf(), j, cols));
    }
    if dir.join("sweep.json").is_file() {
        let j = read_json(&dir.join("sweep.json"))?;
        let rows = std::fs::read_to_string(dir.join("folds.csv"))
            .map(|t| t.lines().map(split_csv).collect())
            .unwrap_or_default();
        return Ok(Source::Sweep(dir.to_path_buf(), j, rows));
    }
    Err(bad_input(format!(
        "{}: no summary.json, mc.json or sweep.json: not a run directory (give directories written by backtest, paper, mc or sweep)",
        dir.display()
    )))
}

/// Split a CSV line with double-quoted fields (as sweep writes them).
fn split_csv(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn money(v: f64) -> String {
    let cls = if v < 0.0 { "neg" } else { "pos" };
    format!("<td class={cls}>{v:.2}</td>")
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

fn fmt_duration(ns: f64) -> String {
    let s = ns / 1e9;
    if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.2} h", s / 3600.0)
    } else {
        format!("{:.2} d", s / 86_400.0)
    }
}

fn date_of_day(day: i64) -> String {
    jiff::Timestamp::from_second(day * 86_400).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn label(i: usize, dir: &Path) -> String {
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    plain(&format!("{}: {name}", i + 1))
}

fn svg(h: &mut String, chart: Result<String>) -> Result<()> {
    // HTML5 puts an inline <svg> in the SVG namespace itself: the attribute (a URL) is left out so
    // the file references nothing.
    let s = chart?.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "");
    h.push_str("<div class=chart>");
    h.push_str(&s);
    h.push_str("</div>");
    Ok(())
}

fn ratio_cell(v: Option<f64>, days: usize) -> String {
    if days < MIN_RATIO_DAYS {
        format!("<td>n/a ({days} days &lt; {MIN_RATIO_DAYS})</td>")
    } else {
        format!("<td>{}</td>", opt(v, |x| format!("{x:.2}")))
    }
}

/// The side-by-side table: a row per metric, a column per run.
fn metrics_table(h: &mut String, runs: &[(usize, &RunData)]) {
    h.push_str("<table class=metrics><tr><th class=l>metric</th>");
    for (i, r) in runs {
        let _ = write!(h, "<th><a href=\"#run-{i}\">{}</a></th>", esc(&label(*i, &r.dir)));
    }
    h.push_str("</tr>");
    type Cell = fn(&RunData) -> String;
    let rows: [(&str, &str, Cell); 21] = [
        ("strategy", "", |r| format!("<td>{}</td>", esc(&r.summary.results.strategy))),
        ("command", "", |r| format!("<td>{}</td>", esc(&r.summary.command))),
        ("net PnL (USD)", "net PnL", |r| money(r.metrics.net_pnl)),
        ("return (%)", "return", |r| {
            format!("<td>{:.3}</td>", r.metrics.net_pnl / r.metrics.capital.max(f64::MIN_POSITIVE) * 100.0)
        }),
        ("CAGR (%)", "CAGR", |r| format!("<td>{}</td>", opt(r.metrics.cagr, |x| format!("{:.2}", x * 100.0)))),
        ("Sharpe", "Sharpe", |r| ratio_cell(r.metrics.sharpe, r.metrics.days())),
        ("Sortino", "Sortino", |r| ratio_cell(r.metrics.sortino, r.metrics.days())),
        ("max drawdown (USD)", "max drawdown", |r| format!("<td>{:.2}</td>", r.metrics.max_dd)),
        ("max drawdown (%)", "max drawdown", |r| format!("<td>{:.3}</td>", r.metrics.max_dd_pct)),
        ("profit factor", "profit factor", |r| {
            format!("<td>{}</td>", opt(r.metrics.profit_factor, |x| format!("{x:.3}")))
        }),
        ("win rate (%)", "win rate", |r| {
            format!("<td>{}</td>", opt(r.metrics.win_rate, |x| format!("{:.1}", x * 100.0)))
        }),
        ("expectancy (USD/trade)", "expectancy", |r| r.metrics.expectancy.map_or_else(|| "<td>n/a</td>".into(), money)),
        ("trades", "trades", |r| format!("<td>{}</td>", r.metrics.trades.len())),
        ("fees (USD)", "fees", |r| format!("<td>{:.2}</td>", r.metrics.fees)),
        ("fills", "", |r| format!("<td>{}</td>", r.metrics.fills)),
        ("days", "", |r| format!("<td>{}</td>", r.metrics.days())),
        ("time in market (%)", "time in market", |r| {
            format!("<td>{}</td>", opt(r.metrics.time_in_market, |x| format!("{:.1}", x * 100.0)))
        }),
        ("mean holding time", "holding time", |r| {
            let t = &r.metrics.trades;
            if t.is_empty() {
                "<td>n/a</td>".into()
            } else {
                let mean = t.iter().map(|t| (t.close_ns - t.open_ns) as f64).sum::<f64>() / t.len() as f64;
                format!("<td>{}</td>", fmt_duration(mean))
            }
        }),
        ("summary: net PnL (USD)", "", |r| money(r.summary.results.net_pnl_usd)),
        ("summary: max drawdown, every bar (USD)", "", |r| {
            format!("<td>{:.2}</td>", r.summary.results.max_drawdown_usd)
        }),
        ("complete", "", |r| format!("<td>{}</td>", if r.summary.complete { "yes" } else { "no" })),
    ];
    for (name, def, cell) in rows {
        if def.is_empty() {
            let _ = write!(h, "<tr><td class=l>{name}</td>");
        } else {
            let _ = write!(h, "<tr><td class=l><a href=\"#def-{}\">{name}</a></td>", anchor(def));
        }
        for (_, r) in runs {
            h.push_str(&cell(r));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn anchor(name: &str) -> String {
    name.replace(' ', "-").to_lowercase()
}

fn equity_series(m: &Metrics) -> Vec<(f64, f64)> {
    let mut v = Vec::with_capacity(m.curve.len() + 1);
    if let Some(p) = m.curve.first() {
        v.push((p.ts_ns as f64 / 1e9, m.capital));
    }
    v.extend(m.curve.iter().map(|p| (p.ts_ns as f64 / 1e9, p.equity)));
    v
}

fn drawdown_series(m: &Metrics) -> Vec<(f64, f64)> {
    let mut peak = m.capital;
    equity_series(m)
        .into_iter()
        .map(|(t, e)| {
            peak = peak.max(e);
            (t, e - peak)
        })
        .collect()
}

/// Series against days since their first point.
fn elapsed(series: Vec<(String, Vec<(f64, f64)>)>) -> Vec<(String, Vec<(f64, f64)>)> {
    series
        .into_iter()
        .map(|(n, pts)| {
            let t0 = pts.first().map_or(0.0, |p| p.0);
            (n, pts.into_iter().map(|(t, y)| ((t - t0) / 86_400.0, y)).collect())
        })
        .collect()
}

fn counts_table(h: &mut String, title: &str, rows: &BTreeMap<&str, u64>) {
    if rows.is_empty() {
        let _ = write!(h, "<p>{title}: none</p>");
        return;
    }
    let _ = write!(h, "<table><tr><th class=l>{title}</th><th>count</th></tr>");
    for (k, v) in rows {
        let _ = write!(h, "<tr><td class=l>{}</td><td>{v}</td></tr>", esc(k));
    }
    h.push_str("</table>");
}

fn run_section(h: &mut String, i: usize, r: &RunData) -> Result<()> {
    let m = &r.metrics;
    let name = label(i, &r.dir);
    let _ = write!(
        h,
        "<section class=run id=\"run-{i}\"><h2>{}</h2><p class=src>{} &middot; {} &middot; {} on {} symbol(s), {} bars</p>",
        esc(&name),
        esc(&r.dir.display().to_string()),
        esc(&r.summary.command),
        esc(&r.summary.results.strategy),
        r.summary.results.symbols,
        r.summary.results.bars
    );
    if let Some(why) = &r.summary.incomplete_reason {
        let _ = write!(h, "<p class=warn><b>incomplete:</b> {}</p>", esc(why));
    }
    if m.trades.is_empty() {
        let why = if !r.has_fills_file {
            "no fills.csv in this run"
        } else if m.fills == 0 {
            "the run made no fills"
        } else {
            "no position went back to flat"
        };
        let _ = write!(h, "<p class=notrades><b>no trades</b> ({why}).</p>");
    }
    if !m.open_positions.is_empty() {
        h.push_str("<p class=warn>open at the end (marked at their last fill, not counted as trades): ");
        for (s, q) in &m.open_positions {
            let _ = write!(h, "{} {q} shares; ", esc(s));
        }
        h.push_str("</p>");
    }
    if !m.daily_equity.is_empty() {
        let daily = m.daily_pnl();
        let labels: Vec<String> = daily.iter().map(|d| date_of_day(d.0)).collect();
        let vals: Vec<f64> = daily.iter().map(|d| d.1).collect();
        h.push_str("<h3 id=\"daily-pnl\">daily PnL</h3>");
        svg(h, charts::bars(&format!("{name}: daily PnL"), "USD", &labels, &vals))?;
    }
    if !m.per_symbol.is_empty() {
        h.push_str("<h3>per ticker</h3><table><tr><th class=l>symbol</th><th>trades</th><th>win rate %</th><th>net PnL USD</th><th>fees USD</th></tr>");
        for (s, st) in &m.per_symbol {
            let wr =
                if st.trades > 0 { format!("{:.1}", st.wins as f64 / st.trades as f64 * 100.0) } else { "n/a".into() };
            let _ = write!(
                h,
                "<tr><td class=l>{}</td><td>{}</td><td>{wr}</td>{}<td>{:.2}</td></tr>",
                esc(s),
                st.trades,
                money(st.net_pnl),
                st.fees
            );
        }
        h.push_str("</table>");
        let labels: Vec<String> = m.per_symbol.keys().map(|s| plain(s)).collect();
        let vals: Vec<f64> = m.per_symbol.values().map(|s| s.net_pnl).collect();
        svg(h, charts::bars(&format!("{name}: net PnL per ticker"), "USD", &labels, &vals))?;
    }
    if !m.trades.is_empty() {
        h.push_str("<h3>trade distribution</h3>");
        let rs: Vec<f64> = m.trades.iter().filter_map(|t| t.r_multiple).collect();
        if rs.len() == m.trades.len() {
            svg(h, charts::histogram(&format!("{name}: R-multiple per trade"), "R", &rs, 20))?;
        } else {
            if !rs.is_empty() {
                svg(h, charts::histogram(&format!("{name}: R-multiple (trades with a stop)"), "R", &rs, 20))?;
            }
            let _ = write!(
                h,
                "<p>R-multiples: {} of {} trades had a protective stop; the PnL per trade is shown{}.</p>",
                rs.len(),
                m.trades.len(),
                if rs.is_empty() { " instead" } else { " for all" }
            );
            let pnl: Vec<f64> = m.trades.iter().map(|t| t.pnl).collect();
            svg(h, charts::histogram(&format!("{name}: PnL per trade"), "USD", &pnl, 20))?;
        }
        let hold: Vec<f64> = m.trades.iter().map(|t| (t.close_ns - t.open_ns) as f64 / 60e9).collect();
        svg(h, charts::histogram(&format!("{name}: holding time"), "minutes", &hold, 20))?;
        let exp: Vec<(f64, f64)> = m
            .curve
            .iter()
            .scan(0.0, |prev, p| {
                let step = [(p.ts_ns as f64 / 1e9, *prev), (p.ts_ns as f64 / 1e9, p.exposure)];
                *prev = p.exposure;
                Some(step)
            })
            .flatten()
            .collect();
        h.push_str("<h3 id=\"exposure\">exposure</h3>");
        svg(
            h,
            charts::lines(&format!("{name}: gross exposure"), "USD", &[(name.clone(), exp)], true, charts::XAxis::Time),
        )?;
    }
    h.push_str("<h3>journal</h3>");
    match &r.journal {
        Ok(j) => {
            let _ = write!(
                h,
                "<p>{} records, {:.2} MB; decisions: {} accepted, {} rejected.</p>",
                j.records,
                j.bytes as f64 / 1e6,
                j.accepted,
                j.rejected.values().sum::<u64>()
            );
            if let Some(d) = &j.damaged {
                let _ = write!(h, "<p class=warn>journal damaged: {}</p>", esc(d));
            }
            h.push_str("<div class=row>");
            counts_table(h, "records by kind", &j.by_kind);
            counts_table(h, "inputs by event", &j.inputs);
            counts_table(h, "rejects by reason", &j.rejected);
            counts_table(h, "decisions by origin", &j.by_origin);
            counts_table(h, "execution reports", &j.reports);
            h.push_str("</div>");
        }
        Err(e) => {
            let _ = write!(h, "<p>journal: not read ({}).</p>", esc(e));
        }
    }
    operational(h, &name, r)?;
    h.push_str("</section>");
    Ok(())
}

/// The operational panel of a paper (or live) run: `feed.json` and `metrics.jsonl`.
fn operational(h: &mut String, name: &str, r: &RunData) -> Result<()> {
    if r.feed.is_none() && r.samples.is_empty() {
        return Ok(());
    }
    h.push_str("<h3 id=\"operations\">operations</h3>");
    if let Some(f) = &r.feed {
        let lat = &f["receive_to_publish_ns"];
        let us = |k: &str| lat[k].as_f64().map_or("n/a".to_string(), |v| format!("{:.1}", v / 1e3));
        let _ = write!(
            h,
            "<table class=latency><tr><th class=l>stage latency (&micro;s)</th><th>samples</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>\
<tr><td class=l>feed: receive to publish</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            lat["samples"],
            us("p50"),
            us("p99"),
            us("p999"),
            us("max")
        );
        let c = &f["counters"];
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let feed_rejects: u64 = c["rejects"].as_object().map_or(0, |o| o.values().map(n).sum());
        let last = r.samples.last();
        let g = |k: &str| last.and_then(|s| s[k].as_f64()).map_or("n/a".to_string(), |v| format!("{v}"));
        let _ = write!(
            h,
            "<table class=ops><tr><th class=l>operations</th><th>count</th></tr>\
<tr><td class=l>feed end</td><td>{}</td></tr><tr><td class=l>bars released</td><td>{}</td></tr>\
<tr><td class=l>drops: duplicate bars</td><td>{}</td></tr><tr><td class=l>drops: late bars</td><td>{}</td></tr>\
<tr><td class=l>drops: parse errors</td><td>{}</td></tr><tr><td class=l>drops: unknown symbols</td><td>{}</td></tr>\
<tr><td class=l>feed rejects</td><td>{feed_rejects}</td></tr><tr><td class=l>updated bars</td><td>{}</td></tr>\
<tr><td class=l>gaps filled</td><td>{}</td></tr><tr><td class=l>reconnects</td><td>{}</td></tr>\
<tr><td class=l>risk rejects</td><td>{}</td></tr><tr><td class=l>venue rejects (last sample)</td><td>{}</td></tr>\
<tr><td class=l>main ring full (last sample)</td><td>{}</td></tr></table>",
            esc(&f["end"].to_string()),
            n(&c["released"]),
            n(&c["duplicates"]),
            n(&c["late"]),
            n(&c["parse_errors"]),
            n(&c["unknown_symbols"]),
            n(&c["updated"]),
            n(&c["gaps_filled"]),
            n(&f["reconnects"]),
            r.summary.results.rejects.values().sum::<u64>(),
            g("ringtape_venue_rejects_total"),
            g("ringtape_ring_full_total"),
        );
    }
    if let Some(last) = r.samples.last() {
        stage_tables(h, last);
    }
    let pts = |k: &str| -> Vec<(f64, f64)> {
        r.samples.iter().filter_map(|s| Some((s["ringtape_session_time_seconds"].as_f64()?, s[k].as_f64()?))).collect()
    };
    let pnl = pts("ringtape_realized_pnl_usd");
    if !pnl.is_empty() {
        let _ = write!(h, "<p>{} runtime samples in metrics.jsonl.</p>", r.samples.len());
        svg(
            h,
            charts::lines(
                &format!("{name}: realized PnL while live"),
                "USD",
                &[(name.to_string(), pnl)],
                true,
                charts::XAxis::Time,
            ),
        )?;
        let backlog = pts("ringtape_feed_backlog");
        svg(
            h,
            charts::lines(
                &format!("{name}: feed backlog (events waiting)"),
                "events",
                &[(name.to_string(), backlog)],
                true,
                charts::XAxis::Time,
            ),
        )?;
    }
    Ok(())
}

/// The entries of a `metrics.jsonl` object in pipeline order (`order`), then any others by name.
fn in_order<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    order: &[&str],
) -> Vec<(&'a String, &'a serde_json::Value)> {
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
    let mut v: Vec<_> = obj.iter().collect();
    v.sort_by_key(|(k, _)| rank(k));
    v
}

/// The pipeline's stage latencies and queue depths from the last `metrics.jsonl` sample (its
/// `stages` and `queues` objects, written when the run recorded probes; whole-run figures).
fn stage_tables(h: &mut String, last: &serde_json::Value) {
    use engine::pipeline::probes::{QUEUES, STAGES};
    let stage_order: Vec<&str> = STAGES.iter().map(|s| s.name()).collect();
    let queue_order: Vec<&str> = QUEUES.iter().map(|q| q.name()).collect();
    if let Some(stages) = last["stages"].as_object() {
        h.push_str(
            "<table class=latency><tr><th class=l>pipeline stage latency (&micro;s, whole run)</th><th>samples</th>\
<th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>",
        );
        for (name, st) in in_order(stages, &stage_order) {
            let us = |k: &str| match (st["count"].as_u64(), st[k].as_f64()) {
                (Some(n), Some(v)) if n > 0 => format!("{:.1}", v * 1e6),
                _ => "n/a".to_string(),
            };
            let _ = write!(
                h,
                "<tr><td class=l>pipeline: {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                st["count"].as_u64().unwrap_or(0),
                us("p50_s"),
                us("p90_s"),
                us("p99_s"),
                us("p999_s"),
                us("max_s")
            );
        }
        h.push_str("</table>");
    }
    if let Some(queues) = last["queues"].as_object() {
        h.push_str("<table class=ops><tr><th class=l>queue (events)</th><th>depth</th><th>high water</th></tr>");
        for (name, q) in in_order(queues, &queue_order) {
            let _ = write!(
                h,
                "<tr><td class=l>queue: {}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                q["current"].as_u64().unwrap_or(0),
                q["high_water"].as_u64().unwrap_or(0)
            );
        }
        h.push_str("</table>");
    }
}

fn mc_section(
    h: &mut String,
    i: usize,
    dir: &Path,
    j: &serde_json::Value,
    cols: &BTreeMap<String, Vec<f64>>,
) -> Result<()> {
    let name = label(i, dir);
    let _ = write!(
        h,
        "<section class=mc id=\"run-{i}\"><h2>{} (Monte Carlo)</h2><p class=src>{} &middot; {} &middot; {} runs, master seed {} &middot; knobs {}</p>",
        esc(&name),
        esc(&dir.display().to_string()),
        esc(j["strategy"].as_str().unwrap_or("?")),
        j["runs"],
        j["master_seed"],
        esc(&j["knobs"].to_string())
    );
    let _ = write!(
        h,
        "<p>probability of loss: {}; baseline (unperturbed) net PnL {} USD.</p>",
        j["probability_of_loss"].as_f64().map_or("n/a".into(), |p| format!("{:.1} %", p * 100.0)),
        j["baseline"]["net_pnl_usd"].as_f64().map_or("n/a".into(), |v| format!("{v:.2}"))
    );
    let keys = ["mean", "min", "p5", "p25", "p50", "p75", "p95", "max"];
    h.push_str("<table><tr><th class=l>distribution</th>");
    for k in keys {
        let _ = write!(h, "<th>{k}</th>");
    }
    h.push_str("</tr>");
    for m in ["net_pnl_usd", "max_drawdown_usd", "sharpe", "win_rate_pct"] {
        let _ = write!(h, "<tr><td class=l>{m}</td>");
        for k in keys {
            let _ = write!(h, "<td>{}</td>", j[m][k].as_f64().map_or("n/a".into(), |v| format!("{v:.2}")));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    for (col, title) in [("net_pnl_usd", "net PnL per run"), ("max_drawdown_usd", "max drawdown per run")] {
        if let Some(v) = cols.get(col).filter(|v| !v.is_empty()) {
            svg(h, charts::histogram(&format!("{name}: {title}"), "USD", v, 30))?;
        }
    }
    if cols.is_empty() {
        let _ =
            write!(h, "<p class=warn>no runs.csv in {}: no distribution charts.</p>", esc(&dir.display().to_string()));
    }
    h.push_str("</section>");
    Ok(())
}

fn sweep_section(h: &mut String, i: usize, dir: &Path, j: &serde_json::Value, rows: &[Vec<String>]) -> Result<()> {
    let name = label(i, dir);
    let _ = write!(
        h,
        "<section class=sweep id=\"run-{i}\"><h2>{} (sweep)</h2><p class=src>{} &middot; {} &middot; {} combinations, chosen by {} &middot; out-of-sample net PnL, all folds: {} USD</p>",
        esc(&name),
        esc(&dir.display().to_string()),
        esc(j["strategy"].as_str().unwrap_or("?")),
        j["combinations"],
        esc(j["metric"].as_str().unwrap_or("?")),
        j["out_of_sample_net_pnl_usd"].as_f64().map_or("n/a".into(), |v| format!("{v:.2}"))
    );
    let Some((head, body)) = rows.split_first() else {
        let _ = write!(h, "<p class=warn>no folds.csv in {}.</p></section>", esc(&dir.display().to_string()));
        return Ok(());
    };
    h.push_str("<table class=folds><tr>");
    for c in head {
        let _ = write!(h, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    h.push_str("</tr>");
    for r in body {
        h.push_str("<tr>");
        for c in r {
            let _ = write!(h, "<td class=l>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let at = |k: &str| head.iter().position(|c| c == k);
    if let (Some(f), Some(o)) = (at("fold"), at("out_of_sample_net_pnl_usd")) {
        let labels: Vec<String> =
            body.iter().map(|r| format!("fold {}", r.get(f).map_or("", |s| s.as_str()))).collect();
        let vals: Vec<f64> = body.iter().map(|r| r.get(o).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)).collect();
        svg(h, charts::bars(&format!("{name}: out-of-sample net PnL per fold"), "USD", &labels, &vals))?;
    }
    h.push_str("</section>");
    Ok(())
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:0.5em 1em 0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f4f4f4}td.l,th.l{text-align:left}.neg{color:#c00}.pos{color:#080}.warn{color:#a60}\
.src{color:#666}.row{display:flex;flex-wrap:wrap;align-items:flex-start}.chart{margin:0.5em 0}\
section{border-top:2px solid #ddd;margin-top:2em}dt{font-weight:bold;margin-top:0.4em}";

/// The report's HTML over `sources`.
pub fn html(sources: &[Source]) -> Result<String> {
    let mut h = format!(
        "<!doctype html><html lang=en><head><meta charset=\"utf-8\"><title>ringtape report</title><style>{STYLE}</style></head><body><h1>ringtape report</h1>"
    );
    let runs: Vec<(usize, &RunData)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| if let Source::Run(r) = s { Some((i, r.as_ref())) } else { None })
        .collect();
    h.push_str("<p>Sources: ");
    for (i, s) in sources.iter().enumerate() {
        let (dir, kind) = match s {
            Source::Run(r) => (&r.dir, r.summary.command.as_str()),
            Source::Mc(d, ..) => (d, "mc"),
            Source::Sweep(d, ..) => (d, "sweep"),
        };
        let _ = write!(h, "<a href=\"#run-{i}\">{}</a> ({kind}); ", esc(&label(i, dir)));
    }
    h.push_str("metrics are defined <a href=\"#definitions\">at the end</a>.</p>");
    if !runs.is_empty() {
        h.push_str("<h2 id=\"runs\">runs side by side</h2>");
        metrics_table(&mut h, &runs);
        let eq: Vec<(String, Vec<(f64, f64)>)> = runs
            .iter()
            .filter(|r| !r.1.metrics.curve.is_empty())
            .map(|(i, r)| (label(*i, &r.dir), equity_series(&r.metrics)))
            .collect();
        if eq.is_empty() {
            h.push_str("<p class=notrades>no fills in any run: no equity curve.</p>");
        } else {
            let dd: Vec<(String, Vec<(f64, f64)>)> = runs
                .iter()
                .filter(|r| !r.1.metrics.curve.is_empty())
                .map(|(i, r)| (label(*i, &r.dir), drawdown_series(&r.metrics)))
                .collect();
            // One run: on its dates; several: side by side from each one's start.
            let (eq, dd, x) = if eq.len() == 1 {
                (eq, dd, charts::XAxis::Time)
            } else {
                (elapsed(eq), elapsed(dd), charts::XAxis::Elapsed)
            };
            h.push_str("<h3 id=\"equity\">equity</h3>");
            svg(&mut h, charts::lines("equity (USD, after every fill)", "USD", &eq, false, x))?;
            h.push_str("<h3 id=\"drawdown\">drawdown</h3>");
            svg(&mut h, charts::lines("drawdown from the running peak (USD)", "USD", &dd, dd.len() == 1, x))?;
        }
        // Per strategy: the runs of each strategy together.
        let mut by: BTreeMap<&str, (usize, usize, usize, f64, f64)> = BTreeMap::new();
        for (_, r) in &runs {
            let e = by.entry(r.summary.results.strategy.as_str()).or_default();
            e.0 += 1;
            e.1 += r.metrics.trades.len();
            e.2 += r.metrics.trades.iter().filter(|t| t.pnl > 0.0).count();
            e.3 += r.metrics.net_pnl;
            e.4 += r.metrics.fees;
        }
        h.push_str("<h3 id=\"per-strategy\">per strategy</h3><table><tr><th class=l>strategy</th><th>runs</th><th>trades</th><th>win rate %</th><th>net PnL USD</th><th>fees USD</th></tr>");
        for (s, (n, t, w, pnl, fees)) in &by {
            let wr = if *t > 0 { format!("{:.1}", *w as f64 / *t as f64 * 100.0) } else { "n/a".into() };
            let _ = write!(
                h,
                "<tr><td class=l>{}</td><td>{n}</td><td>{t}</td><td>{wr}</td>{}<td>{fees:.2}</td></tr>",
                esc(s),
                money(*pnl)
            );
        }
        h.push_str("</table>");
    }
    for (i, s) in sources.iter().enumerate() {
        match s {
            Source::Run(r) => run_section(&mut h, i, r)?,
            Source::Mc(d, j, c) => mc_section(&mut h, i, d, j, c)?,
            Source::Sweep(d, j, rows) => sweep_section(&mut h, i, d, j, rows)?,
        }
    }
    h.push_str("<section id=\"definitions\"><h2>definitions</h2><dl>");
    for (name, def) in DEFINITIONS {
        let _ = write!(h, "<dt id=\"def-{}\">{name}</dt><dd>{}</dd>", anchor(name), esc(def));
    }
    for (name, def) in [
        (
            "summary: net PnL, max drawdown",
            "the engine's own figures from summary.json: its drawdown marks positions at every bar, so it can be deeper than the drawdown at fills",
        ),
        (
            "Monte Carlo distributions",
            "over the study's perturbed runs (runs.csv): mean, min, percentiles p5..p95 and max; probability of loss = runs with net PnL < 0 / runs",
        ),
        (
            "sweep folds",
            "walk-forward: each fold's parameters are chosen on its fitting block (in-sample) and scored on the next block (out-of-sample)",
        ),
        (
            "stage latency",
            "per recorded stage, percentiles of its latency; today a paper run records the feed's receive-to-publish time (feed.json)",
        ),
        (
            "drops",
            "bars the feed did not pass on: duplicates, late bars, unparseable messages, unknown symbols (feed.json counters)",
        ),
    ] {
        let _ = write!(h, "<dt id=\"def-{}\">{name}</dt><dd>{}</dd>", anchor(name), esc(def));
    }
    h.push_str("</dl></section></body></html>\n");
    Ok(h)
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let sources: Vec<Source> = args.runs.iter().map(|d| read_source(d)).collect::<Result<_>>()?;
    let page = html(&sources)?;
    let tmp = args.out.with_extension("html.tmp");
    std::fs::write(&tmp, page).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes() {
        assert_eq!(split_csv("0,\"fast = 5 slow = 20\",1.5"), vec!["0", "fast = 5 slow = 20", "1.5"]);
        assert_eq!(split_csv("\"a,\"\"b\"\"\",c"), vec!["a,\"b\"", "c"]);
    }
}
