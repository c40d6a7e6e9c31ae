//! `ringtape paper`: the demo end to end (the local exchange in the process, the real Alpaca feed
//! over TLS, warm start from REST, the threads pipeline), stopped by SIGINT, replayed; and the
//! ways it refuses to start or fails.

use super::{Out, assert_one_line_error, ringtape, s};
use ringtape_tools::exchange::{DEMO_SECRET, Exchange, ExchangeConfig};
use ringtape_tools::summary::Summary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every file of a run directory, as text (lossy), for secret checks.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn the_demo_trades_stops_cleanly_on_sigint_and_replays_every_decision() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("paper");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["paper", "--demo", "--speed", "3000", "--metrics", "127.0.0.1:0", "--out", &s(&run)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the status lines until the run has filled a few orders (or give up after 60 s).
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let fills = |l: &str| -> u64 {
        l.split(" fills ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let mut traded = false;
    let mut metrics_addr = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(a) = line.strip_prefix("paper: metrics on http://") {
            metrics_addr = Some(a.trim_end_matches("/metrics").to_string());
        }
        if line.starts_with("paper ") && fills(&line) >= 4 {
            traded = true;
            break;
        }
    }
    assert!(traded, "the demo never reached 4 fills");
    // The live metrics endpoint answers in Prometheus text while the run goes.
    let addr = metrics_addr.expect("the metrics address is printed at start");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut conn, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let fills_metric = body.lines().find_map(|l| l.strip_prefix("ringtape_fills_total ")).expect("fills metric");
    assert!(fills_metric.parse::<f64>().unwrap() >= 4.0, "{body}");
    assert!(body.contains("ringtape_feed_live 1"), "{body}");
    // Every pipeline stage's latency summary has samples, and every queue has its two gauges.
    let value = |key: &str| -> f64 {
        let v = body.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')));
        v.unwrap_or_else(|| panic!("no {key} in {body}")).parse().unwrap()
    };
    assert!(body.contains("# TYPE ringtape_stage_latency_seconds summary\n"), "{body}");
    for stage in ["ingress_wait", "sequencer_to_shard", "strategy", "shard_to_risk", "risk_to_venue", "end_to_end"] {
        for q in ["0.5", "0.9", "0.99", "0.999"] {
            let v = value(&format!("ringtape_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{q}\"}}"));
            assert!(v > 0.0 && v < 60.0, "{stage} {q}: {v}");
        }
        assert!(value(&format!("ringtape_stage_latency_seconds_count{{stage=\"{stage}\"}}")) >= 1.0, "{stage}");
        assert!(value(&format!("ringtape_stage_latency_seconds_sum{{stage=\"{stage}\"}}")) > 0.0, "{stage}");
    }
    for queue in ["main_ring", "ingress", "shard_to_risk", "risk_to_shard", "risk_to_recorder"] {
        value(&format!("ringtape_queue_depth{{queue=\"{queue}\"}}"));
        value(&format!("ringtape_queue_depth_high_water{{queue=\"{queue}\"}}"));
    }
    assert!(value("ringtape_queue_depth_high_water{queue=\"main_ring\"}") >= 1.0, "{body}");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a paper run normally: {stderr}");
    assert!(stdout.starts_with("ringtape paper: sma_cross on 1 symbol(s)"), "{stdout}");

    // A complete run directory, like a backtest's.
    for f in [
        "journal.rtj",
        "journal.meta.json",
        "config.toml",
        "fills.csv",
        "summary.json",
        "feed.json",
        "feed.log",
        "metrics.jsonl",
    ] {
        assert!(run.join(f).is_file(), "{f} written");
    }
    let summary = Summary::read(&run.join("summary.json")).unwrap();
    assert!(summary.complete, "{:?}", summary.incomplete_reason);
    assert_eq!((summary.command.as_str(), summary.perf.topology.as_str()), ("paper", "threads"));
    assert!(summary.results.fills >= 4, "{:?}", summary.results);
    let feed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("feed.json")).unwrap()).unwrap();
    assert_eq!(feed["end"], "Stopped", "{feed}");
    // An hour of history precedes the exchange's start; more when the warm start's request ran a
    // little later (at 3000x, 20 ms of wall time is a market minute): the seam then has duplicates.
    let warm = feed["history"]["warm_start_bars"].as_u64().unwrap();
    assert!(warm >= 60, "at least the hour before the exchange's start: {feed}");
    assert_eq!(feed["counters"]["late"], 0);
    assert_eq!(feed["counters"]["parse_errors"], 0);
    // Every bar the feed released reached the engine: warm start, then live, each window once.
    assert_eq!(feed["counters"]["released"].as_u64(), Some(summary.results.bars), "{feed}");

    // Periodic metrics: one JSON object a second, the last one with every fill.
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(m.lines().last().unwrap()).unwrap();
    assert!(last["ringtape_fills_total"].as_f64().unwrap() >= 4.0, "{last}");
    assert!(last["stages"]["end_to_end"]["count"].as_u64().unwrap() >= 1, "{last}");
    assert!(last["queues"]["ingress"]["high_water"].as_u64().unwrap() >= 1, "{last}");

    // The feed's structured log: one JSON object per line, from connected to ended.
    let log = std::fs::read_to_string(run.join("feed.log")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("connected"), "{log}");
    assert_eq!(kinds.last().map(String::as_str), Some("ended"), "{log}");

    // The journal holds every input: history bars, the live start, live bars, wall-clock ticks.
    let j = ringtape(&["journal", &s(&run), "--format", "jsonl"]);
    assert_eq!(j.code, 0, "{}", j.stderr);
    assert!(j.stdout.contains("live_start"), "the feed's LiveStart is journaled");
    let no_trade_on_history = j.stdout.lines().position(|l| l.contains("live_start")).unwrap()
        < j.stdout.lines().position(|l| l.contains("\"kind\":\"decision\"")).expect("the run decided");
    assert!(no_trade_on_history, "no decision before the symbol went live");

    // Replay reproduces every decision from the journal.
    let r: Out = ringtape(&["replay", &s(&run)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("reproduced exactly"), "{}", r.stdout);

    // The demo's secret is nowhere: not in the run directory, not on the terminal.
    assert!(!all_text(&run).contains(DEMO_SECRET));
    assert!(!stderr.contains(DEMO_SECRET) && !stdout.contains(DEMO_SECRET));
}

/// Start `ringtape paper` with `args`, wait until its status line shows `min_fills` fills,
/// interrupt it; returns (exit code, stdout, stderr).
fn paper_until_fills(args: &[&str], min_fills: u64) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let fills = |l: &str| -> u64 {
        l.split(" fills ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let mut traded = false;
    // Status lines come once a second: give up after a few hundred lines of no trading.
    let mut lines = 0;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if line.starts_with("paper ") && fills(&line) >= min_fills {
            traded = true;
            break;
        }
        lines += 1;
        if lines > 300 {
            break;
        }
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let stderr = reader.join().unwrap();
    assert!(traded, "the run never reached {min_fills} fills: {stderr}");
    (status.code(), stdout, stderr)
}

#[test]
fn the_demo_trades_the_exchanges_paper_broker_through_the_gateway_and_leaves_nothing_working() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("paper");
    let cfg = d.path().join("p.toml");
    // Flatten at the end: the shutdown cancels and closes everything at the broker.
    std::fs::write(&cfg, "[risk]\nflatten_at_end = true\n").unwrap();
    let (code, stdout, stderr) = paper_until_fills(
        &["paper", "--demo", "--broker", "alpaca", "--speed", "3000", "--config", &s(&cfg), "--out", &s(&run)],
        4,
    );
    assert_eq!(code, Some(0), "Ctrl-C ends a paper run normally: {stderr}");
    assert!(stderr.contains("broker: alpaca paper at https://127.0.0.1:"), "{stderr}");
    for f in ["broker.json", "broker.log", "exchange.json", "journal.rtj", "fills.csv", "summary.json"] {
        assert!(run.join(f).is_file(), "{f} written");
    }
    let summary = Summary::read(&run.join("summary.json")).unwrap();
    assert_eq!(summary.perf.venue, "alpaca");
    assert!(summary.results.fills >= 4, "{:?}", summary.results);
    // The shutdown left nothing: no working order and no position, on either side.
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("broker.json")).unwrap()).unwrap();
    assert_eq!(b["shutdown"]["open_orders_left"], 0, "{b}");
    assert_eq!(b["shutdown"]["positions_left"], 0, "{b}");
    assert_eq!(b["shutdown"]["reconciled"], true, "{b}");
    assert_eq!(b["gateway"]["mismatches"], 0, "{b}");
    let ex: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("exchange.json")).unwrap()).unwrap();
    let orders = ex["orders"].as_array().unwrap();
    assert!(orders.len() >= 4, "{ex}");
    let working: Vec<&serde_json::Value> = orders
        .iter()
        .filter(|o| !["filled", "canceled", "expired", "rejected", "replaced"].contains(&o["status"].as_str().unwrap()))
        .collect();
    assert!(working.is_empty(), "no working order left at the exchange: {working:?}");
    assert_eq!(ex["positions"].as_array().unwrap().len(), 0, "flat at the exchange: {ex}");
    // Every fill the engine recorded is one the exchange made.
    let filled_at_exchange: u64 =
        orders.iter().map(|o| o["filled_qty"].as_str().unwrap().parse::<u64>().unwrap()).sum();
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    let filled_here: u64 = fills.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(filled_here, filled_at_exchange, "{fills}");
    // Replay feeds the journaled broker reports back and reproduces every decision.
    let r: Out = ringtape(&["replay", &s(&run)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("reproduced exactly"), "{}", r.stdout);
    assert!(!all_text(&run).contains(DEMO_SECRET));
    assert!(!stderr.contains(DEMO_SECRET) && !stdout.contains(DEMO_SECRET));
}

#[test]
fn paper_refuses_what_it_cannot_do_in_one_line() {
    let o = ringtape(&["paper", "--broker", "ib", "--demo"]);
    assert_one_line_error(&o, &["--broker ib", "`sim`", "`alpaca`"]);
    let d = tempfile::tempdir().unwrap();
    // Real money needs two yeses: `live = true` in the file and --confirm-live.
    let live = d.path().join("live.toml");
    std::fs::write(&live, "[feed]\nsymbols = [\"AAPL\"]\n[broker]\nkind = \"alpaca\"\nlive = true\n").unwrap();
    let o = ringtape(&["paper", "--config", &s(&live)]);
    assert_one_line_error(&o, &["broker.live = true", "--confirm-live"]);
    std::fs::write(
        &live,
        "[feed]\nsymbols = [\"AAPL\"]\n[broker]\nkind = \"alpaca\"\ntrading_url = \"https://api.alpaca.markets\"\n",
    )
    .unwrap();
    let o = ringtape(&["paper", "--config", &s(&live), "--confirm-live"]);
    assert_one_line_error(&o, &["live (real money)", "broker.live = false"]);
    let cfg = d.path().join("p.toml");
    std::fs::write(&cfg, "[feed]\nprovider = \"alpaca\"\n").unwrap();
    let o = ringtape(&["paper", "--config", &s(&cfg)]);
    assert_one_line_error(&o, &["[feed] symbols is empty", "--demo"]);
    let o = ringtape(&["paper", "--demo", "--speed", "0"]);
    assert_one_line_error(&o, &["--speed 0"]);
}

#[test]
fn refused_credentials_end_the_run_with_exit_1_a_kept_incomplete_run_and_no_secret() {
    // A local exchange (plain, on loopback) that knows other credentials than the file gives.
    let ex = Exchange::start(ExchangeConfig { plain: true, speed: 60.0, ..ExchangeConfig::default() }).unwrap();
    let d = tempfile::tempdir().unwrap();
    let creds = d.path().join("creds.toml");
    let secret = "wrong-secret-value-never-printed";
    std::fs::write(&creds, format!("APCA_API_KEY_ID = \"PKWRONG\"\nAPCA_API_SECRET_KEY = \"{secret}\"\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = d.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "[feed]\nprovider = \"alpaca\"\nsymbols = [\"SP500\"]\nstream_url = \"ws://{0}/v2/iex\"\nrest_url = \"http://{0}\"\nwarm_start_min = 0\ncredentials_file = \"{1}\"\n[paper]\nstatus_ms = 0\n",
            ex.addr(),
            s(&creds)
        ),
    )
    .unwrap();
    let run = d.path().join("run");
    let o = ringtape(&["paper", "--config", &s(&cfg), "--out", &s(&run), "--quiet"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("the feed failed") && o.stderr.contains("402"), "{}", o.stderr);
    let summary = Summary::read(&run.join("summary.json")).unwrap();
    assert!(!summary.complete);
    assert!(summary.incomplete_reason.unwrap().contains("auth failed"));
    assert!(!all_text(&run).contains(secret) && !o.stderr.contains(secret) && !o.stdout.contains(secret));
}
