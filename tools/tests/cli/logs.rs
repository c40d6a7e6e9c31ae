//! `ringtape --log FILE`: every command's structured log, one JSON object per line.

use super::{ringtape, s};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn every_command_logs_its_start_its_results_and_its_end_as_json_lines() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("ringtape.log.jsonl");
    let run = d.path().join("run");
    let o = ringtape(&["--log", &s(&log), "backtest", "--out", &s(&run)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = lines(&log);
    let msg = |x: &serde_json::Value| x["fields"]["message"].as_str().unwrap_or("").to_string();
    assert_eq!(v.iter().map(msg).collect::<Vec<_>>(), vec!["started", "run written", "finished"], "{v:?}");
    assert_eq!(v[0]["fields"]["command"], "backtest");
    assert!(v[0]["fields"]["argv"].as_str().unwrap().contains("backtest"));
    // The run's results, as summary.json has them: the sma_cross reference.
    assert_eq!(v[1]["fields"]["fills"], 64);
    assert_eq!(v[1]["fields"]["net_pnl_usd"], -289.0);
    assert_eq!((v[2]["fields"]["code"].as_i64(), v[2]["level"].as_str()), (Some(0), Some("INFO")));
    assert!(v.iter().all(|x| x["timestamp"].is_string()));

    // A failing command: its end says the exit code and the one-line error; appended.
    let o = ringtape(&["--log", &s(&log), "backtest", "--data", &s(&d.path().join("nowhere")), "--out", &s(&run)]);
    assert_eq!(o.code, 2);
    let v = lines(&log);
    let last = v.last().unwrap();
    assert_eq!(
        (msg(last).as_str(), last["level"].as_str(), last["fields"]["code"].as_i64()),
        ("failed", Some("ERROR"), Some(2))
    );
    assert!(last["fields"]["error"].as_str().unwrap().contains("nowhere"), "{last}");

    // RINGTAPE_LOG_FILE does the same without the flag; a log file that cannot be opened is a
    // one-line error naming it.
    let log2 = d.path().join("env.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["synth", "--symbols", "1", "--days", "1", "--out", &s(&d.path().join("syn"))])
        .env("RINGTAPE_LOG_FILE", &log2)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(lines(&log2).first().unwrap()["fields"]["command"], "synth");
    let o = ringtape(&[
        "--log",
        &s(&d.path().join("no/such/dir/x.jsonl")),
        "synth",
        "--symbols",
        "1",
        "--days",
        "1",
        "--out",
        &s(&d.path().join("s2")),
    ]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("cannot open the log file"), "{}", o.stderr);
}
