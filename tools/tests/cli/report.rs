//! `ringtape report`: the HTML dashboard over run, Monte Carlo and sweep directories.

use super::{assert_one_line_error, ringtape, s};
use std::path::Path;

/// The text of a table row's cells: `<tr><td class=l>NAME...</td><td>A</td><td>B</td></tr>` ->
/// ["A", "B"] (the cells' text without tags).
fn row(html: &str, name: &str) -> Vec<String> {
    let at = html.find(&format!("{name}</")).unwrap_or_else(|| panic!("no row {name:?}"));
    let tr = &html[at..html[at..].find("</tr>").unwrap() + at];
    tr.split("<td").skip(1).map(|c| c.split_once('>').unwrap().1.split("</td>").next().unwrap().to_string()).collect()
}

/// Independent figures from a run's fills.csv: its `position` and `realized_pnl` columns (the
/// engine's own cumulative realized PnL per symbol, after commissions). Returns (net, fees,
/// trade PnLs, max drawdown of capital + realized).
fn from_fills_csv(path: &Path, capital: f64) -> (f64, f64, Vec<f64>, f64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut realized: std::collections::BTreeMap<String, f64> = Default::default();
    let mut at_open: std::collections::BTreeMap<String, f64> = Default::default();
    let (mut fees, mut trades, mut peak, mut dd) = (0.0, Vec::new(), capital, 0.0f64);
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let (sym, pos, r): (&str, i64, f64) = (c[1], c[8].parse().unwrap(), c[9].parse().unwrap());
        fees += c[5].parse::<f64>().unwrap();
        realized.insert(sym.into(), r);
        if pos == 0 {
            trades.push(r - at_open.get(sym).copied().unwrap_or(0.0));
            at_open.insert(sym.into(), r);
        }
        let eq = capital + realized.values().sum::<f64>();
        peak = f64::max(peak, eq);
        dd = dd.max(peak - eq);
    }
    (realized.values().sum(), fees, trades, dd)
}

#[test]
fn the_reference_run_numbers_match_an_independent_computation_from_fills_csv() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("bt");
    assert_eq!(ringtape(&["backtest", "--out", &s(&run), "--quiet"]).code, 0);
    let html = d.path().join("r.html");
    let o = ringtape(&["report", &s(&run), &s(&run), "--out", &s(&html)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&html).unwrap();

    let (net, fees, trades, dd) = from_fills_csv(&run.join("fills.csv"), 100_000.0);
    assert_eq!(format!("{net:.2}"), "-289.00", "the reference result");
    assert_eq!(trades.len(), 32);
    let wins: Vec<f64> = trades.iter().copied().filter(|&p| p > 0.0).collect();
    let gross_loss: f64 = -trades.iter().filter(|&&p| p < 0.0).sum::<f64>();
    let cell = |name: &str| {
        let r = row(&text, name);
        assert_eq!(r.len(), 2, "one column per run: {r:?}");
        assert_eq!(r[0], r[1], "the same run twice side by side");
        r[0].clone()
    };
    assert_eq!(cell("net PnL (USD)"), format!("{net:.2}"));
    assert_eq!(cell("fees (USD)"), format!("{fees:.2}"));
    assert_eq!(cell("trades"), trades.len().to_string());
    assert_eq!(cell("fills"), "64");
    assert_eq!(cell("win rate (%)"), format!("{:.1}", wins.len() as f64 / trades.len() as f64 * 100.0));
    assert_eq!(cell("profit factor"), format!("{:.3}", wins.iter().sum::<f64>() / gross_loss));
    assert_eq!(cell("expectancy (USD/trade)"), format!("{:.2}", net / trades.len() as f64));
    assert_eq!(cell("max drawdown (USD)"), format!("{dd:.2}"));
    assert_eq!(cell("days"), "4");
    assert_eq!(cell("Sharpe"), "n/a (4 days &lt; 20)");
    // CAGR over 4 calendar days (Nov 5..8).
    assert_eq!(
        cell("CAGR (%)"),
        format!("{:.2}", ((100_000.0 + net) / 100_000.0f64).powf(365.25 / 4.0) * 100.0 - 100.0)
    );
    // The journal was read: 63 accepted decisions (64 fills, one an end-of-run close-out by risk).
    assert!(text.contains("decisions: 63 accepted, 0 rejected"), "journal panel");
    assert!(text.contains("<td class=l>filled</td><td>64</td>"), "execution reports by kind");
    // Charts: equity and drawdown overlaid, then per run daily PnL, per ticker, trade PnL,
    // holding time, exposure.
    assert_eq!(text.matches("<svg").count(), 2 + 2 * 5);
    assert!(text.contains("<polyline fill=\"none\" opacity=\"1\" stroke=\"#FF7F0E\""), "the second run overlaid");
    assert!(!text.contains("http://") && !text.contains("https://"), "self-contained");
    assert!(!text.contains("<script"), "no scripts");
    for def in ["profit factor", "Sortino", "CAGR", "expectancy", "R-multiple", "holding time", "exposure"] {
        assert!(text.contains(&format!("<dt id=\"def-{}\">{def}</dt>", def.replace(' ', "-").to_lowercase())), "{def}");
    }
}

#[test]
fn sharpe_and_sortino_from_daily_returns_of_a_month_of_synthetic_bars() {
    let d = tempfile::tempdir().unwrap();
    let (data, run) = (d.path().join("syn"), d.path().join("bt"));
    let o =
        ringtape(&["synth", "--symbols", "1", "--days", "25", "--interval", "1m", "--seed", "3", "--out", &s(&data)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(ringtape(&["backtest", "--data", &s(&data), "--out", &s(&run), "--quiet"]).code, 0);
    let html = d.path().join("r.html");
    assert_eq!(ringtape(&["report", &s(&run), "--out", &s(&html)]).code, 0);
    let text = std::fs::read_to_string(&html).unwrap();
    // Daily closed-trade equity from fills.csv: the risk day is New York's (UTC-5 in config).
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let offset: i64 = config.lines().find_map(|l| l.strip_prefix("day_utc_offset_s = ")).unwrap().parse().unwrap();
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    let mut by_day = std::collections::BTreeMap::new();
    for line in fills.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let ts: jiff::Timestamp = c[0].parse().unwrap();
        by_day.insert((ts.as_second() + offset).div_euclid(86_400), 100_000.0 + c[9].parse::<f64>().unwrap());
    }
    assert!(by_day.len() >= 20, "{} days", by_day.len());
    let mut prev = 100_000.0;
    let rets: Vec<f64> = by_day
        .values()
        .map(|&e| {
            let r = e / prev - 1.0;
            prev = e;
            r
        })
        .collect();
    let n = rets.len() as f64;
    let mean = rets.iter().sum::<f64>() / n;
    let sd = (rets.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let down = (rets.iter().map(|r| r.min(0.0) * r.min(0.0)).sum::<f64>() / n).sqrt();
    assert_eq!(row(&text, "Sharpe")[0], format!("{:.2}", mean / sd * 252f64.sqrt()));
    assert_eq!(row(&text, "Sortino")[0], format!("{:.2}", mean / down * 252f64.sqrt()));
    assert_eq!(row(&text, "days")[0], by_day.len().to_string());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn runs_paper_runs_monte_carlo_and_sweeps_in_one_page_and_a_run_without_trades() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    assert_eq!(ringtape(&["backtest", "--out", &s(&p("bt")), "--quiet"]).code, 0);
    assert_eq!(ringtape(&["mc", "--runs", "8", "--threads", "1", "--out", &s(&p("mc")), "--quiet"]).code, 0);
    let o =
        ringtape(&["sweep", "--set", "fast=5,10", "--folds", "2", "--threads", "1", "--out", &s(&p("sw")), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // A paper run's files: the backtest's plus feed.json and metrics.jsonl as paper writes them.
    copy_dir(&p("bt"), &p("paper"));
    let summary = std::fs::read_to_string(p("bt/summary.json")).unwrap();
    std::fs::write(p("paper/summary.json"), summary.replacen("\"command\": \"backtest\"", "\"command\": \"paper\"", 1))
        .unwrap();
    std::fs::write(
        p("paper/feed.json"),
        r#"{"end": "Stopped", "reconnects": 3, "counters": {"released": 1500, "duplicates": 7, "late": 2,
        "parse_errors": 1, "unknown_symbols": 4, "updated": 5, "gaps_filled": 6, "rejects": {"BadPrice": 9}},
        "receive_to_publish_ns": {"samples": 1500, "p50": 12000, "p99": 48000, "p999": 91000, "max": 250000}}"#,
    )
    .unwrap();
    let mut jsonl = String::new();
    for k in 0..5 {
        jsonl.push_str(&format!(
            "{{\"ringtape_session_time_seconds\": {}, \"ringtape_realized_pnl_usd\": {}, \"ringtape_feed_backlog\": 0, \"ringtape_ring_full_total\": 11, \"ringtape_venue_rejects_total\": 0}}\n",
            1_573_000_000 + k * 60,
            k * 10
        ));
    }
    // The last sample carries the pipeline's probes, as a paper run writes them.
    jsonl.push_str(concat!(
        r#"{"ringtape_session_time_seconds": 1573000300, "ringtape_realized_pnl_usd": 50, "ringtape_feed_backlog": 0, "#,
        r#""ringtape_ring_full_total": 11, "ringtape_venue_rejects_total": 0, "stages": {"#,
        r#""ingress_wait": {"count": 40, "sum_s": 0.0004, "p50_s": 8e-6, "p90_s": 1.2e-5, "p99_s": 2.5e-5, "p999_s": 3e-5, "max_s": 3.1e-5}, "#,
        r#""end_to_end": {"count": 0, "sum_s": 0, "p50_s": 0, "p90_s": 0, "p99_s": 0, "p999_s": 0, "max_s": 0}}, "#,
        r#""queues": {"main_ring": {"current": 0, "high_water": 17}}}"#,
        "\n"
    ));
    std::fs::write(p("paper/metrics.jsonl"), jsonl).unwrap();
    // A run with no fills and no journal.
    copy_dir(&p("bt"), &p("none"));
    std::fs::write(p("none/fills.csv"), "ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl\n")
        .unwrap();
    std::fs::remove_file(p("none/journal.rtj")).unwrap();

    let html = p("r.html");
    let dirs = [p("bt"), p("paper"), p("none"), p("mc"), p("sw")];
    let mut args: Vec<String> = vec!["report".into()];
    args.extend(dirs.iter().map(|d| s(d)));
    args.extend(["--out".into(), s(&html)]);
    let o = ringtape(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&html).unwrap();
    // Three runs side by side, the empty one honest.
    assert_eq!(row(&text, "trades"), vec!["32", "32", "0"]);
    assert_eq!(row(&text, "profit factor")[2], "n/a");
    assert!(text.contains("<b>no trades</b> (the run made no fills)"));
    assert!(text.contains("journal: not read"), "the missing journal said");
    // The operational panel of the paper run.
    assert_eq!(row(&text, "feed: receive to publish"), vec!["1500", "12.0", "48.0", "91.0", "250.0"]);
    assert_eq!(row(&text, "reconnects"), vec!["3"]);
    assert_eq!(row(&text, "drops: duplicate bars"), vec!["7"]);
    assert_eq!(row(&text, "feed rejects"), vec!["9"]);
    assert_eq!(row(&text, "main ring full (last sample)"), vec!["11"]);
    assert!(text.contains("6 runtime samples in metrics.jsonl"));
    // The pipeline's stage latencies and queues from the last sample.
    assert_eq!(row(&text, "pipeline: ingress_wait"), vec!["40", "8.0", "12.0", "25.0", "30.0", "31.0"]);
    assert_eq!(row(&text, "pipeline: end_to_end"), vec!["0", "n/a", "n/a", "n/a", "n/a", "n/a"]);
    assert_eq!(row(&text, "queue: main_ring"), vec!["0", "17"]);
    let (first, last) = (text.find("pipeline: ingress_wait<").unwrap(), text.find("pipeline: end_to_end<").unwrap());
    assert!(first < last, "stages in pipeline order, not by name");
    // Monte Carlo: the table from mc.json and both distributions from runs.csv.
    let mc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("mc/mc.json")).unwrap()).unwrap();
    let mc_row = row(&text, "net_pnl_usd");
    assert_eq!(mc_row[0], format!("{:.2}", mc["net_pnl_usd"]["mean"].as_f64().unwrap()));
    assert!(text.contains("net PnL per run") && text.contains("max drawdown per run"));
    // Sweep: every fold with in-sample and out-of-sample columns.
    assert!(text.contains("<th>in sample net pnl usd</th><th>out of sample net pnl usd</th>"));
    let folds = std::fs::read_to_string(p("sw/folds.csv")).unwrap();
    assert_eq!(folds.lines().count(), 3);
    let fold0 = folds.lines().nth(1).unwrap().rsplit(',').nth(1).unwrap();
    assert!(text.contains(&format!("<td class=l>{fold0}</td>")), "fold 0's out-of-sample PnL {fold0}");
    // Charts: 2 overlays; bt and paper 5 each, paper +2 live; none 0; mc 2; sweep 1.
    assert_eq!(text.matches("<svg").count(), 2 + 5 + 7 + 2 + 1);
    assert!(!text.contains("http://") && !text.contains("https://"), "self-contained");
    for id in ["runs", "equity", "drawdown", "per-strategy", "daily-pnl", "exposure", "operations", "definitions"] {
        assert!(text.contains(&format!("id=\"{id}\"")), "section {id}");
    }
}

#[test]
fn a_directory_that_is_not_a_run_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let o = ringtape(&["report", &s(d.path()), "--out", &s(&d.path().join("r.html"))]);
    assert_one_line_error(&o, &["no summary.json", "not a run directory"]);
    assert!(!d.path().join("r.html").exists());
    // A damaged fills.csv names the file and the line.
    std::fs::write(d.path().join("summary.json"), "{}").unwrap();
    let o = ringtape(&["report", &s(d.path()), "--out", &s(&d.path().join("r.html"))]);
    assert_one_line_error(&o, &["summary.json", "not a ringtape summary"]);
}

#[test]
fn a_damaged_fills_file_is_one_line_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("bt");
    assert_eq!(ringtape(&["backtest", "--out", &s(&run), "--quiet"]).code, 0);
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    std::fs::write(run.join("fills.csv"), fills.replacen(",buy,", ",hold,", 1)).unwrap();
    let o = ringtape(&["report", &s(&run), "--out", &s(&d.path().join("r.html"))]);
    assert_one_line_error(&o, &["fills.csv: line 2: bad side"]);
}

/// A headless Chromium on PATH (Debian's `chromium-headless-shell` or `chromium`), if any.
fn browser() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|b| std::env::split_paths(&path).map(move |d| d.join(b)))
        .find(|p| p.is_file())
}

/// Opens the page in a real headless browser: every chart is in the parsed DOM as an SVG element
/// and the browser logs no console error. Skipped (with a note) on a machine without Chromium
/// (`apt-get install chromium-headless-shell`).
#[test]
fn a_headless_browser_renders_every_chart_without_console_errors() {
    let Some(chromium) = browser() else {
        eprintln!("skipped: no chromium on PATH (apt-get install chromium-headless-shell)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("bt");
    assert_eq!(ringtape(&["backtest", "--out", &s(&run), "--quiet"]).code, 0);
    let html = d.path().join("r.html");
    assert_eq!(ringtape(&["report", &s(&run), "--out", &s(&html)]).code, 0);
    let text = std::fs::read_to_string(&html).unwrap();
    let charts = text.matches("<svg").count();
    assert_eq!(charts, 2 + 5);
    let o = std::process::Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", d.path().join("profile").display()))
        .args(["--dump-dom", &format!("file://{}", s(&html))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    assert_eq!(dom.matches("<svg").count(), charts, "every chart parsed as an SVG element");
    assert_eq!(dom.matches("<polyline").count(), text.matches("<polyline").count());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(!log.lines().any(|l| l.contains("CONSOLE") || l.contains("Uncaught")), "console errors: {log}");
}
