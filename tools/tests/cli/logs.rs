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
    // Progress events aside (see the next test).
    let v: Vec<_> = lines(&log).into_iter().filter(|x| x["fields"]["event"] != "progress").collect();
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

/// The progress events of `task` in a log: (done, total, elapsed_s, eta_s).
fn progress(v: &[serde_json::Value], task: &str) -> Vec<(u64, u64, f64, f64)> {
    v.iter()
        .filter(|x| x["fields"]["event"] == "progress" && x["fields"]["task"] == task)
        .map(|x| {
            let f = &x["fields"];
            assert_eq!((x["level"].as_str(), f["message"].as_str()), (Some("INFO"), Some("progress")), "{x}");
            (
                f["done"].as_u64().unwrap(),
                f["total"].as_u64().unwrap(),
                f["elapsed_s"].as_f64().unwrap(),
                f["eta_s"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Progress events are ordered (done and elapsed never go down), at most about one per tenth of
/// the work, and end with the completion: done == total, nothing left.
fn assert_progress(events: &[(u64, u64, f64, f64)], total: u64, what: &str) {
    assert!(!events.is_empty(), "{what}: no progress events");
    assert!(events.len() <= 12, "{what}: too many events: {events:?}");
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0 && w[0].2 <= w[1].2), "{what}: not ordered: {events:?}");
    assert!(events.iter().all(|e| e.1 == total && e.3 >= 0.0), "{what}: {events:?}");
    let last = events.last().unwrap();
    assert_eq!((last.0, last.3), (total, 0.0), "{what}: ends at the total: {events:?}");
}

#[test]
fn long_commands_log_ordered_progress_events_that_end_at_the_total() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("progress.jsonl");
    let p = |n: &str| s(&d.path().join(n));
    // Monte Carlo: one unit per run.
    let o = ringtape(&["--log", &s(&log), "mc", "--runs", "30", "--threads", "2", "--out", &p("mc"), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_progress(&progress(&lines(&log), "mc"), 30, "mc");
    // A sweep: 2 combinations x 2 folds fitted, then one test run per fold.
    let o = ringtape(&[
        "--log",
        &s(&log),
        "sweep",
        "--strategy",
        "sma_cross",
        "--set",
        "fast=5,10",
        "--folds",
        "2",
        "--out",
        &p("sw"),
        "--quiet",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_progress(&progress(&lines(&log), "sweep"), 6, "sweep");
    // An import: bytes of the file.
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/real/SP500_NOV2019_IDay.csv");
    let len = std::fs::metadata(&csv).unwrap().len();
    let o = ringtape(&[
        "--log",
        &s(&log),
        "import",
        "csv",
        &s(&csv),
        "--tz",
        "America/New_York",
        "--symbol",
        "SP500",
        "--out",
        &p("imp"),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_progress(&progress(&lines(&log), "import csv"), len, "import csv");
    // A DBN import: bytes of the files, written here with the dbn crate's encoder.
    let dbn_file = d.path().join("bars.dbn");
    write_dbn(&dbn_file, 5_000);
    let len = std::fs::metadata(&dbn_file).unwrap().len();
    let o = ringtape(&["--log", &s(&log), "import", "dbn", &s(&dbn_file), "--out", &p("dbn")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_progress(&progress(&lines(&log), "import dbn"), len, "import dbn");
    // A backtest: bars replayed.
    let o = ringtape(&["--log", &s(&log), "backtest", "--out", &p("bt")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = lines(&log);
    let bt = progress(&v, "backtest");
    assert_progress(&bt, bt.last().map_or(0, |e| e.1), "backtest");
    // Without --log nothing is written anywhere, and the commands still work.
    let o = ringtape(&["mc", "--runs", "2", "--out", &p("mc2"), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

/// A DBN file of `n` one-minute bars of AAPL (instrument 7) from 2024-01-02.
fn write_dbn(path: &std::path::Path, n: u64) {
    use dbn::encode::EncodeRecord;
    let day = |d| time::Date::from_calendar_date(2024, time::Month::January, d).unwrap();
    let meta = dbn::Metadata::builder()
        .dataset("XNAS.ITCH")
        .schema(Some(dbn::Schema::Ohlcv1M))
        .start(1_704_153_600_000_000_000)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .symbols(vec!["AAPL".into()])
        .mappings(vec![dbn::SymbolMapping {
            raw_symbol: "AAPL".into(),
            intervals: vec![dbn::MappingInterval { start_date: day(2), end_date: day(31), symbol: "7".into() }],
        }])
        .build();
    let mut enc = dbn::encode::dbn::Encoder::new(std::fs::File::create(path).unwrap(), &meta).unwrap();
    for i in 0..n {
        let ts = 1_704_205_800_000_000_000 + i * 60_000_000_000;
        let px = 185_000_000_000 + (i as i64 % 100) * 10_000_000;
        let rec = dbn::OhlcvMsg {
            hd: dbn::RecordHeader::new::<dbn::OhlcvMsg>(dbn::rtype::OHLCV_1M, 2, 7, ts),
            open: px,
            high: px + 20_000_000,
            low: px - 20_000_000,
            close: px,
            volume: 100 + i,
        };
        enc.encode_record(&rec).unwrap();
    }
    enc.flush().unwrap();
}
