//! What a backtest produces: the reference fills on real data, the built-in sample, config and
//! bad input, and identical results on every topology.

use super::*;

/// Parse `M/D/YYYY H:MM` New York local time into an RFC 3339 UTC string like fills.csv uses.
fn ny_local_to_utc(text: &str) -> String {
    let (date, time) = text.split_once(' ').unwrap();
    let d: Vec<i32> = date.split('/').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i32> = time.split(':').map(|x| x.parse().unwrap()).collect();
    let dt = jiff::civil::date(d[2] as i16, d[0] as i8, d[1] as i8).at(t[0] as i8, t[1] as i8, 0, 0);
    let ts = dt.in_tz("America/New_York").unwrap().timestamp();
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn fills_rows(run: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(run.join("fills.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn sma_cross_on_real_sp500_gives_exactly_the_reference_fills() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    import_sp500(&data, "SP500");
    let mut runs = Vec::new();
    // The default (auto: inline for a replay of files), then the threads topology with 2 shards.
    for (name, pipeline) in [("auto", ""), ("threads2", "[pipeline]\ntopology = \"threads\"\nshards = 2\n")] {
        let run = d.path().join(format!("run-{name}"));
        let cfg = d.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, pipeline).unwrap();
        let o = ringtape(&[
            "backtest",
            "--data",
            &s(&data),
            "--strategy",
            "sma_cross",
            "--config",
            &s(&cfg),
            "--out",
            &s(&run),
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains("net PnL"), "{}", o.stdout);
        runs.push(run);
    }
    // The independent reference: bar index, local bar time, side, qty, price.
    let expected_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/expected/sma_cross_SP500_NOV2019_IDay.fills.csv");
    let expected: Vec<Vec<String>> = std::fs::read_to_string(expected_path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(expected.len(), 64);
    let got = fills_rows(&runs[0]);
    assert_eq!(got.len(), 64, "64 fills");
    let bars = BarFile::open(&data.join("SP500.1m.rtb")).unwrap();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        // ts,symbol,side,qty,price,commission,order_id,reason
        assert_eq!(g[0], ny_local_to_utc(&e[1]), "fill {i} time");
        assert_eq!((g[1].as_str(), g[2].as_str(), g[3].as_str()), ("SP500", e[2].as_str(), e[3].as_str()), "fill {i}");
        assert_eq!(engine::records::parse_px(&g[4]), engine::records::parse_px(&e[4]), "fill {i} price");
        assert_eq!(g[5], "0.50", "0.005 USD x 100 shares");
        // The fill is at the open of the bar the reference names, except the final close-out,
        // which is at the last bar's close.
        let bar = bars.bars()[e[0].parse::<usize>().unwrap()];
        let px = engine::records::parse_px(&g[4]).unwrap();
        if i < 63 {
            assert_eq!((px, g[7].as_str()), (bar.open_px_e9, "none"), "fill {i} at the bar's open");
        } else {
            assert_eq!((px, g[7].as_str()), (bar.close_px_e9, "end_of_run"), "close-out at the last close");
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("summary.json")).unwrap()).unwrap();
    let r = &summary["results"];
    assert_eq!(r["fills"], 64);
    assert_eq!(r["trades"], 32);
    assert_eq!(r["net_pnl_usd"], -289.0);
    assert_eq!(r["commission_usd"], 32.0);
    // Identical on the threads topology with 2 shards: fills, journal bytes and results.
    let summary2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[1].join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary2["results"], summary["results"]);
    assert_eq!(fills_rows(&runs[1]), got);
    assert!(std::fs::read(runs[0].join("journal.rtj")).unwrap() == std::fs::read(runs[1].join("journal.rtj")).unwrap());
    assert_eq!(summary["perf"]["topology"], "inline");
    assert_eq!(
        (summary2["perf"]["topology"].as_str(), summary2["perf"]["shards"].as_u64()),
        (Some("threads"), Some(2))
    );
}

#[test]
fn backtest_without_data_uses_the_builtin_sample() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let o = ringtape(&["backtest", "--out", &s(&run), "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["results"]["fills"], 64);
    assert_eq!(v["results"]["net_pnl_usd"], -289.0);
    for f in ["journal.rtj", "fills.csv", "summary.json", "journal.meta.json", "config.toml"] {
        assert!(run.join(f).is_file(), "{f} written");
    }
}

#[test]
fn backtest_bad_input_is_one_line_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let run = s(&d.path().join("run"));
    let o = ringtape(&["backtest", "--data", &s(d.path()), "--out", &run]);
    assert_one_line_error(&o, &["no .rtb bar files", "ringtape synth"]);
    let o = ringtape(&["backtest", "--strategy", "nope", "--out", &run]);
    assert_one_line_error(&o, &["unknown strategy", "sma_cross"]);
    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "[pipeline]\nshardz = 2\n").unwrap();
    let o = ringtape(&["backtest", "--config", &s(&cfg), "--out", &run]);
    assert_one_line_error(&o, &["bad.toml", "shardz"]);
    std::fs::write(&cfg, "[pipeline]\nshards = 0\n").unwrap();
    let o = ringtape(&["backtest", "--config", &s(&cfg), "--out", &run]);
    assert_one_line_error(&o, &["pipeline.shards = 0"]);
    std::fs::write(&cfg, "[strategy]\nname = \"sma_cross\"\nfast = \"ten\"\n").unwrap();
    let o = ringtape(&["backtest", "--config", &s(&cfg), "--out", &run]);
    assert_one_line_error(&o, &["strategy parameters"]);
    // A corrupt bar file names the file and the byte offset.
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("X.1m.rtb"), b"RTBARS\0\x01short").unwrap();
    let o = ringtape(&["backtest", "--data", &s(&data), "--out", &run]);
    assert_one_line_error(&o, &["X.1m.rtb", "byte", "truncated"]);
}

#[test]
fn backtest_config_file_sets_risk_and_strategy() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    // fast 5 / slow 20 trades more often; max_position 50 rejects every 100-share entry.
    std::fs::write(&cfg, "[risk]\nmax_position_shares = 50\n[strategy]\nname = \"sma_cross\"\nfast = 5\nslow = 20\n")
        .unwrap();
    let run = d.path().join("run");
    let o = ringtape(&["backtest", "--config", &s(&cfg), "--out", &s(&run), "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["results"]["fills"], 0);
    assert!(v["results"]["rejects"]["max_position"].as_u64().unwrap() > 10);
}

#[test]
fn orb_trades_synthetic_days_identically_on_every_topology_with_and_without_portfolio_limits() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = ringtape(&["synth", "--symbols", "4", "--days", "10", "--seed", "7", "--out", &s(&data)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let topologies =
        ["topology = \"inline\"", "topology = \"threads\"\nshards = 1", "topology = \"threads\"\nshards = 3"];
    for limits in ["", "[risk]\none_active_trade = true\nmax_open_orders = 3\n"] {
        let mut results = Vec::new();
        for (i, topo) in topologies.iter().enumerate() {
            let run = d.path().join(format!("orb{i}-{}", limits.len()));
            let cfg = d.path().join(format!("orb{i}-{}.toml", limits.len()));
            std::fs::write(&cfg, format!("[pipeline]\n{topo}\n{limits}")).unwrap();
            let o = ringtape(&[
                "backtest",
                "--data",
                &s(&data),
                "--strategy",
                "orb",
                "--config",
                &s(&cfg),
                "--out",
                &s(&run),
                "--json",
            ]);
            assert_eq!(o.code, 0, "{}", o.stderr);
            let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
            results.push((v["results"].clone(), std::fs::read(run.join("journal.rtj")).unwrap()));
        }
        let r = &results[0].0;
        // At most one entry per symbol and day: 4 symbols x 10 days; each entry ends with a stop,
        // a target or the end-of-day exit, so every trade is closed the same day.
        let trades = r["trades"].as_u64().unwrap();
        assert!(trades > 0 && trades <= 40, "{r}");
        assert_eq!(r["fills"].as_u64().unwrap(), 2 * trades, "entry + exit per trade");
        if !limits.is_empty() {
            assert!(r["rejects"]["one_active_trade"].as_u64().unwrap_or(0) > 0, "the limits bite: {r}");
        }
        for (i, other) in results.iter().enumerate().skip(1) {
            assert!(
                &results[0] == other,
                "{}: results or journal differ from inline with limits {limits:?}",
                topologies[i]
            );
        }
    }
}
