//! `ringtape replay` over real run directories (the built-in S&P 500 sample and a copy of it).

use super::{assert_one_line_error, import_sp500, ringtape, s};
use engine::barfile::{BarFile, write_bar_file};
use std::path::{Path, PathBuf};

/// `ringtape backtest --quiet --out dir/name` with extra arguments; asserts success.
fn backtest(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let run = dir.join(name);
    let o = ringtape(&[&["backtest", "--quiet", "--out", &s(&run)], extra].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    run
}

/// The journal's text lines of one kind (`ringtape journal --kind K`).
fn journal_lines(run: &Path, kind: &str) -> Vec<String> {
    let o = ringtape(&["journal", &s(run), "--kind", kind]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    o.stdout.lines().map(str::to_string).collect()
}

#[test]
fn a_backtest_of_the_builtin_data_replays_exactly() {
    let d = tempfile::tempdir().unwrap();
    let run = backtest(d.path(), "run", &[]);
    let before: Vec<(PathBuf, Vec<u8>)> = ["journal.rtj", "fills.csv", "summary.json", "journal.meta.json"]
        .iter()
        .map(|f| (run.join(f), std::fs::read(run.join(f)).unwrap()))
        .collect();
    let o = ringtape(&["replay", &s(&run)]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // 64 fills (the reference result); 192 records = 63 decisions x (decision + accepted + filled)
    // + the end-of-run close-out's fill + the EndOfData and Shutdown inputs.
    assert_eq!(o.stdout, "replay: 192 journal records and 64 fills reproduced exactly\n");
    assert_eq!(o.stderr, "");
    for (p, bytes) in &before {
        assert!(std::fs::read(p).unwrap() == *bytes, "{} untouched", p.display());
    }
}

#[test]
fn a_changed_bar_file_is_named_and_the_first_differing_decision_shown() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    import_sp500(&data, "SP500");
    let run = backtest(d.path(), "run", &["--data", &s(&data)]);
    let recorded_checksum = format!("{:016x}", BarFile::open(&data.join("SP500.1m.rtb")).unwrap().header().data_xxh3);

    // The first decision is sma_cross's first buy: the 10-bar average crossed above the 30-bar one
    // on the bar ending at the decision's time. Closing the 10 bars up to it at their lows pulls
    // the fast average down by 3x as much as the slow one, so that crossing comes later.
    let decisions = journal_lines(&run, "decision");
    let first = &decisions[0];
    assert!(first.contains(" decision SP500 accepted buy 100 market id=SP500-1"), "{first}");
    let seq = first.split(' ').next().unwrap();
    let ts: jiff::Timestamp = first.split(' ').nth(1).unwrap().parse().unwrap();
    let end_ns = i64::try_from(ts.as_nanosecond()).unwrap();
    let path = data.join("SP500.1m.rtb");
    let mut bars = BarFile::open(&path).unwrap().bars().to_vec();
    let k = bars.iter().position(|b| b.ts_event_ns + 60_000_000_000 == end_ns).expect("the decision's bar");
    assert!(k >= 9, "{k}");
    for b in &mut bars[k - 9..=k] {
        b.close_px_e9 = b.low_px_e9;
    }
    let now_checksum = format!("{:016x}", write_bar_file(&path, "SP500", 60, &bars).unwrap().data_xxh3);
    assert_ne!(now_checksum, recorded_checksum);

    let o = ringtape(&["replay", &s(&run)]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert_eq!(o.stderr, "", "a difference is a finding, not an error");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], format!("replay: bar files in {} changed since the run:", data.display()));
    assert_eq!(lines[1], format!("  SP500 1m: checksum {recorded_checksum} in the run, {now_checksum} now"));
    // Nothing before the first decision is journaled in a backtest, so record 0 differs.
    assert_eq!(lines[2], format!("journal.rtj: first difference at record 0 (seq {seq}), after 0 identical records:"));
    assert_eq!(lines[3], format!("  recorded: {first}"));
    let replayed = lines[4].strip_prefix("  replayed: ").expect(lines[4]);
    let replayed_seq: u64 = replayed.split(' ').next().unwrap().parse().unwrap();
    assert!(replayed_seq > seq.parse().unwrap(), "the crossing came later: {replayed}");
    assert!(replayed.contains(" decision SP500 accepted buy 100 market id=SP500-1"), "{replayed}");
    assert_eq!(lines[5], "fills.csv: first difference at line 2:");
    assert_eq!(
        lines.last().copied(),
        Some(format!("replay: not reproduced: {} differs from the replay", run.display()).as_str())
    );
}

#[test]
fn a_run_that_journaled_every_input_replays_from_its_journal() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("all.toml");
    std::fs::write(&cfg, "[journal]\ninputs = \"all\"\n").unwrap();
    let run = backtest(d.path(), "run", &["--config", &s(&cfg)]);
    // The journal alone is the input: the run's bar files are not needed.
    std::fs::remove_dir_all(run.join("data")).unwrap();
    let inputs = journal_lines(&run, "input").len();
    let ticks = journal_lines(&run, "timer").len();
    // 1563 bars plus EndOfData and Shutdown; a tick before every minute bar (timer_ms = 1000).
    assert_eq!((inputs, ticks), (1563 + 2, 1563));
    let o = ringtape(&["replay", &s(&run)]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_eq!(o.stdout, format!("replay: {} journal records and 64 fills reproduced exactly\n", 192 + 1563 + 1563));
}

#[test]
fn a_directory_that_is_not_a_run_is_one_line_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let help = ringtape(&["replay", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("Usage: ringtape replay [OPTIONS] <RUN_DIR>"), "{}", help.stdout);
    let o = ringtape(&["replay", &s(d.path())]);
    assert_one_line_error(&o, &["journal.meta.json: not found", "not a run directory", "ringtape backtest"]);
    assert_eq!(o.stdout, "");
    let o = ringtape(&["replay", &s(&d.path().join("nope"))]);
    assert_one_line_error(&o, &["nope: no such run directory"]);
    std::fs::write(d.path().join("journal.meta.json"), "{not json").unwrap();
    let o = ringtape(&["replay", &s(d.path())]);
    assert_one_line_error(&o, &["journal.meta.json: ", "damaged"]);

    // A backtest stopped early (summary.json says so) is refused: its bar files hold more than it
    // ran on.
    let run = backtest(d.path(), "run", &[]);
    let spath = run.join("summary.json");
    let text = std::fs::read_to_string(&spath).unwrap();
    std::fs::write(&spath, text.replacen("\"complete\": true", "\"complete\": false", 1)).unwrap();
    let o = ringtape(&["replay", &s(&run)]);
    assert_one_line_error(&o, &["summary.json", "stopped early", "replay a complete run"]);
    // A run whose bar files are gone names the data directory.
    std::fs::write(&spath, text).unwrap();
    std::fs::remove_dir_all(run.join("data")).unwrap();
    let o = ringtape(&["replay", &s(&run)]);
    assert_one_line_error(&o, &["journal.meta.json: data_dir", "not found"]);
}
