//! `ringtape backtest`: data sets, config checks, run directories and the typed summary
//! (issue 11 "Data you can trust" and the summary of issue 10).

use super::{Out, assert_one_line_error, ringtape, s, synth};
use ringtape_tools::summary::Summary;
use std::path::Path;
use std::process::Command;

/// Run in `cwd` (for the default `runs/` directory).
fn ringtape_in(cwd: &Path, args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape")).current_dir(cwd).args(args).output().expect("run ringtape");
    Out {
        code: o.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

/// Entries of `dir` (hidden ones included), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn config(dir: &Path, text: &str) -> String {
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    s(&p)
}

#[test]
fn one_symbol_at_two_intervals_is_refused_until_one_is_chosen() {
    let d = tempfile::tempdir().unwrap();
    let mix = d.path().join("mix");
    synth(&mix, &["--symbols", "1", "--days", "5", "--interval", "1m"]);
    synth(&mix, &["--symbols", "1", "--days", "5", "--interval", "5m", "--seed", "2"]);
    let run = d.path().join("run");
    // Before: "1 symbol(s), 2340 bars", both intervals fed to one strategy as one stream.
    let o = ringtape(&["backtest", "--data", &s(&mix), "--out", &s(&run)]);
    assert_one_line_error(
        &o,
        &[
            "SYM000 has bars at more than one interval",
            "SYM000 1m 1950 bars in SYM000.1m.rtb",
            "SYM000 5m 390 bars in SYM000.5m.rtb",
            "choose one of 1m, 5m with --interval",
        ],
    );
    assert!(!run.exists(), "nothing written");
    for (iv, bars) in [("5m", 390), ("1m", 1950)] {
        let out = d.path().join(format!("run{iv}"));
        let o = ringtape(&["backtest", "--data", &s(&mix), "--interval", iv, "--out", &s(&out), "--json"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["results"]["bars"], bars);
        assert_eq!(v["results"]["intervals"], serde_json::json!([iv]));
    }
    let o = ringtape(&["backtest", "--data", &s(&mix), "--interval", "1h", "--out", &s(&run)]);
    assert_one_line_error(&o, &["no bar files at interval 1h", "choose one of 1m, 5m"]);
    let o = ringtape(&["backtest", "--data", &s(&mix), "--interval", "fortnight", "--out", &s(&run)]);
    assert_one_line_error(&o, &["\"fortnight\" is not an interval"]);
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_in_the_data_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, &["--symbols", "1", "--days", "1"]);
    std::os::unix::fs::symlink(d.path().join("moved.rtb"), data.join("SYM001.1m.rtb")).unwrap();
    let o = ringtape(&["backtest", "--data", &s(&data), "--out", &s(&d.path().join("run"))]);
    assert_one_line_error(&o, &["SYM001.1m.rtb", "No such file"]);
    std::fs::remove_file(data.join("SYM001.1m.rtb")).unwrap();
    std::os::unix::fs::symlink(data.join("SYM002.1m.rtb"), data.join("SYM002.1m.rtb")).unwrap();
    let o = ringtape(&["backtest", "--data", &s(&data), "--out", &s(&d.path().join("run"))]);
    assert_one_line_error(&o, &["SYM002.1m.rtb"]);
}

#[test]
fn unbounded_sizes_and_bad_values_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let cases: &[(&str, &[&str])] = &[
        ("[pipeline]\nring_size = 1099511627776\n", &["pipeline.ring_size = 1099511627776", "64..=4194304"]),
        (
            "[pipeline]\nring_size = 4611686018427387904\n",
            &["pipeline.ring_size = 4611686018427387904", "64..=4194304"],
        ),
        ("[pipeline]\nqueue_size = 16777216\n", &["pipeline.queue_size = 16777216", "64..=262144"]),
        ("[pipeline.cores]\nrisk = 4096\n", &["pipeline.cores.risk = 4096", "core(s)"]),
        ("[venue]\ncommission_per_share_e9 = -5000000\n", &["venue.commission_per_share_e9 = -5000000", ">= 0"]),
        ("[account]\nstarting_capital_usd = 0\n", &["account.starting_capital_usd = 0", "positive"]),
        ("[account]\nstarting_capitl_usd = 5\n", &["starting_capitl_usd"]),
        ("[strategy]\nname = \"sma_cross\"\nfast = 30\nslow = 10\n", &["fast = 30 must be less than slow = 10"]),
        ("[strategy]\nname = \"sma_cross\"\nfast = 20\nslow = 20\n", &["fast = 20 must be less than slow = 20"]),
    ];
    for (text, needles) in cases {
        let cfg = config(d.path(), text);
        let o = ringtape(&["backtest", "--config", &cfg, "--out", &s(&run)]);
        assert_one_line_error(&o, needles);
        assert!(o.stderr.contains("c.toml"), "names the file: {}", o.stderr);
        assert_eq!(entries(d.path()), ["c.toml"], "{text}: nothing written");
    }
}

#[test]
fn spinning_or_sharding_past_the_cores_warns() {
    let d = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let run = d.path().join("run");
    // sequencer + `cores` shards + risk spin on `cores` cores. The warning comes with the config
    // check; the empty data directory then stops the run before a spinning pipeline starts.
    let cfg = config(d.path(), &format!("[pipeline]\nwait = \"spin\"\nshards = {cores}\n"));
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = ringtape(&["backtest", "--config", &cfg, "--data", &s(&empty), "--out", &s(&run)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert!(lines[0].starts_with("warning: pipeline.wait = \"spin\" with"), "{lines:?}");
    assert!(lines[0].contains(&format!("{} spinning stages", cores + 2)), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("error: ") && lines.last().unwrap().contains("no .rtb"), "{lines:?}");
    // More shards than cores runs, with a warning line.
    let shards = (cores + 1).to_string();
    let o = ringtape(&["backtest", "--shards", &shards, "--out", &s(&run), "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.starts_with(&format!("warning: pipeline.shards = {shards} is more than")), "{}", o.stderr);
    // The defaults warn about nothing.
    let o = ringtape(&["backtest", "--out", &s(&d.path().join("run2")), "--quiet"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""));
}

#[test]
fn an_existing_run_directory_is_replaced_only_with_force() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let o = ringtape(&["backtest", "--out", &s(&run), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    std::fs::write(run.join("marker"), "old").unwrap();
    let o = ringtape(&["backtest", "--out", &s(&run), "--quiet"]);
    assert_one_line_error(&o, &[&s(&run), "already exists", "--force"]);
    assert!(run.join("marker").exists(), "untouched");
    let o = ringtape(&["backtest", "--out", &s(&run), "--quiet", "--force"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!run.join("marker").exists(), "replaced by a whole new run");
    assert!(run.join("summary.json").is_file());
    assert_eq!(entries(d.path()), ["run"], "no temporary or old directory left");
    // --force never deletes a directory that is not a run.
    let mine = d.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let o = ringtape(&["backtest", "--out", &s(&mine), "--force"]);
    assert_one_line_error(&o, &["not a run directory"]);
    assert!(mine.join("notes.txt").exists());
}

#[test]
fn default_runs_are_timestamped_and_runs_latest_links_the_newest() {
    let d = tempfile::tempdir().unwrap();
    let o = ringtape_in(d.path(), &["backtest", "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let runs = d.path().join("runs");
    let first = std::fs::read_link(runs.join("latest")).unwrap();
    assert!(runs.join(&first).join("summary.json").is_file());
    let o = ringtape_in(d.path(), &["backtest", "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let second = std::fs::read_link(runs.join("latest")).unwrap();
    assert_ne!(first, second, "a new directory per run");
    assert_eq!(entries(&runs).len(), 3, "two runs and latest: {:?}", entries(&runs));
    // runs/latest works wherever a run directory is expected.
    assert!(Summary::read(&runs.join("latest/summary.json")).unwrap().complete);
}

#[test]
fn an_interrupted_run_is_kept_marked_incomplete_and_exits_130() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, &["--symbols", "20", "--days", "250"]); // 1.95 M bars: seconds in a debug build
    let run = d.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["backtest", "--data", &s(&data), "--out", &s(&run), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run directory is being written (signal handlers are in place before it is created).
    let started = || entries(d.path()).iter().any(|n| n.starts_with(".run.partial-"));
    let mut waited = 0;
    while !started() {
        assert!(waited < 30_000, "run never started"); // 60 s
        std::thread::sleep(std::time::Duration::from_millis(2));
        waited += 1;
    }
    assert!(!run.exists(), "not in place while running");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: stopped after"), "{stderr}");
    let summary = Summary::read(&run.join("summary.json")).unwrap();
    assert!(!summary.complete);
    let why = summary.incomplete_reason.unwrap();
    assert!(why.starts_with("interrupted by a signal after") && why.ends_with("of 1950000 bars"), "{why}");
    assert!(summary.results.bars < 1_950_000, "stopped early");
    for f in ["journal.rtj", "fills.csv", "journal.meta.json", "config.toml"] {
        assert!(run.join(f).is_file(), "{f} kept");
    }
    assert_eq!(entries(d.path()), ["data", "run"], "no temporary left");
}

#[test]
fn the_summary_is_typed_with_units_capital_and_effective_params() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let o = ringtape(&["backtest", "--out", &s(&run)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Read back through the same type the CLI writes and prints from.
    let sm = Summary::read(&run.join("summary.json")).unwrap();
    let r = &sm.results;
    assert!(sm.complete && sm.incomplete_reason.is_none());
    assert_eq!((r.fills, r.trades, r.net_pnl_usd, r.commission_usd), (64, 32, -289.0, 32.0));
    assert_eq!(r.starting_capital_usd, 100_000.0);
    assert_eq!(r.ending_equity_usd, 99_711.0);
    assert!((r.return_pct - -0.289).abs() < 1e-12, "{}", r.return_pct); // -289 / 100000
    // 4 trading days: no Sharpe, and the file says why.
    assert_eq!((r.sharpe_daily_annualized, r.days, r.sharpe_min_days), (None, 4, 20));
    // The reference's 64th fill closes the last position at the last bar's close.
    assert_eq!(r.end_of_run_closeouts, Some(1));
    assert_eq!(r.strategy_params, serde_json::json!({"fast": 10, "slow": 30, "qty": 100}), "defaults included");
    assert_eq!(sm.perf.shards, 1);
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(text.find("\"results\"").unwrap() < text.find("\"perf\"").unwrap(), "results before perf");
    // The table is made from that file and shows units.
    assert_eq!(o.stdout, sm.table(&run));
    for needle in ["100000.00 USD", "-289.0000 USD", "-0.289 %", "n/a (4 days < 20)", "32.0000 USD"] {
        assert!(o.stdout.contains(needle), "{needle:?} not in {}", o.stdout);
    }

    // Capital from the config; the run's config.toml is the effective config and runs as-is.
    let cfg =
        config(d.path(), "[account]\nstarting_capital_usd = 50000\n[strategy]\nname = \"sma_cross\"\nqty = 100\n");
    let run2 = d.path().join("run2");
    let o = ringtape(&["backtest", "--config", &cfg, "--out", &s(&run2), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r2 = Summary::read(&run2.join("summary.json")).unwrap().results;
    assert!((r2.return_pct - -0.578).abs() < 1e-12, "{}", r2.return_pct); // -289 / 50000
    assert_eq!(r2.strategy_params["fast"], 10, "defaults filled in");
    let written = std::fs::read_to_string(run2.join("config.toml")).unwrap();
    assert!(written.contains("starting_capital_usd = 50000") && written.contains("slow = 30"), "{written}");
    let run3 = d.path().join("run3");
    let o = ringtape(&["backtest", "--config", &s(&run2.join("config.toml")), "--out", &s(&run3), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(Summary::read(&run3.join("summary.json")).unwrap().results, r2);
}

#[test]
fn metrics_record_the_pipelines_stages_and_write_the_last_sample() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let cfg = config(d.path(), "[pipeline]\ntopology = \"threads\"\n");
    let o = ringtape(&["backtest", "--config", &cfg, "--metrics", "127.0.0.1:0", "--quiet", "--out", &s(&run)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("backtest: metrics on http://127.0.0.1:"), "{}", o.stderr);
    let summary = Summary::read(&run.join("summary.json")).unwrap();
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1, "one sample, taken after every stage ended");
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let count = |stage: &str| j["stages"][stage]["count"].as_u64().unwrap();
    assert_eq!(count("strategy"), summary.results.bars, "every bar reached its strategy: {j}");
    assert_eq!(count("sequencer_to_shard"), summary.results.bars);
    assert_eq!(count("ingress_wait"), 0, "a replay has no ingress");
    assert!(count("end_to_end") >= 1 && count("end_to_end") == count("risk_to_venue"), "{j}");
    assert!(j["queues"]["main_ring"]["high_water"].as_u64().unwrap() >= 1, "{j}");
    assert!(j["ringtape_inputs_total"].as_f64().unwrap() > 0.0, "{j}");
    // Not with the viewer (refused before anything is written).
    let o = ringtape(&["backtest", "--metrics", "127.0.0.1:0", "--view", "--out", &s(&d.path().join("v"))]);
    assert_one_line_error(&o, &["--metrics with --view"]);
    assert!(!d.path().join("v").exists());
}
