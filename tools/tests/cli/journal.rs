//! `ringtape journal` over real run directories (the built-in S&P 500 sample).

use super::{assert_one_line_error, fills_rows, ringtape, s};
use std::path::{Path, PathBuf};

/// `ringtape backtest` on the built-in data into `dir/name`, with an optional config text.
fn backtest(dir: &Path, name: &str, config: Option<&str>) -> PathBuf {
    let run = dir.join(name);
    let mut args = vec!["backtest".to_string(), "--quiet".into(), "--out".into(), s(&run)];
    if let Some(text) = config {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        args.extend(["--config".into(), s(&cfg)]);
    }
    let o = ringtape(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 0, "{}", o.stderr);
    run
}

fn journal(args: &[&str]) -> Vec<String> {
    let o = ringtape(&[&["journal"], args].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "", "nothing on stderr");
    o.stdout.lines().map(str::to_string).collect()
}

/// The value of `key=value` in a text line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// fills.csv's order id column as the journal prints it (raw integers today; formatted ids are
/// passed through, should fills.csv switch to `fmt_order_id`).
fn csv_order_id(v: &str) -> String {
    v.parse::<u64>().map_or_else(|_| v.to_string(), engine::journal::fmt_order_id)
}

#[test]
fn journal_fill_reports_agree_with_fills_csv() {
    let d = tempfile::tempdir().unwrap();
    let run = backtest(d.path(), "run", None);
    let lines = journal(&[&s(&run)]);
    // Every line: SEQ TIME KIND SYMBOL ..., sequence numbers never go back, times are RFC 3339 UTC.
    let mut last_seq = 0u64;
    for l in &lines {
        let w: Vec<&str> = l.split(' ').collect();
        let seq: u64 = w[0].parse().unwrap();
        assert!(seq >= last_seq, "{l}");
        last_seq = seq;
        assert!(w[1].ends_with('Z') && w[1].parse::<jiff::Timestamp>().is_ok(), "{l}");
        assert!(["input", "decision", "cancel", "report", "lifecycle", "timer"].contains(&w[2]), "{l}");
    }
    // The fill reports, in order, are exactly fills.csv's rows.
    let fills: Vec<&String> =
        lines.iter().filter(|l| l.split(' ').nth(2) == Some("report") && l.contains(" filled ")).collect();
    let csv = fills_rows(&run);
    assert_eq!(csv.len(), 64);
    assert_eq!(fills.len(), csv.len(), "one fill report per fills.csv row");
    for (l, row) in fills.iter().zip(&csv) {
        // ts,symbol,side,qty,price,commission,order_id,reason
        // SEQ TIME report SYMBOL filled SIDE QTY @ PRICE commission=C leaves=L [reason=R] id=ID
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(
            (w[1], w[3], w[5], w[6], w[7]),
            (row[0].as_str(), row[1].as_str(), row[2].as_str(), row[3].as_str(), "@"),
            "{l}"
        );
        assert_eq!(engine::records::parse_px(w[8]), engine::records::parse_px(&row[4]), "{l}");
        assert_eq!(field(l, "commission"), Some(row[5].as_str()), "{l}");
        assert_eq!(field(l, "id").map(str::to_string), Some(csv_order_id(&row[6])), "{l}");
        assert_eq!(field(l, "reason").unwrap_or("none"), row[7], "{l}");
        assert_eq!(field(l, "leaves"), Some("0"), "{l}");
    }
    // Every strategy fill answers an accepted decision for the same order, side and quantity,
    // earlier in the journal; the end-of-run close-out is the engine's, with no decision.
    let decisions: Vec<&String> = lines.iter().filter(|l| l.split(' ').nth(2) == Some("decision")).collect();
    assert_eq!(decisions.len(), 63);
    for (k, l) in fills.iter().enumerate() {
        let id = field(l, "id").unwrap();
        let w: Vec<&str> = l.split(' ').collect();
        let dec = decisions.iter().find(|d| field(d, "id") == Some(id));
        if k == 63 {
            assert!(dec.is_none() && l.contains("reason=end_of_run"), "{l}");
            continue;
        }
        let dec = dec.unwrap_or_else(|| panic!("no decision for {l}"));
        let dw: Vec<&str> = dec.split(' ').collect();
        assert_eq!((dw[4], dw[5], dw[6], dw[7]), ("accepted", w[5], w[6], "market"), "{dec} / {l}");
        assert!(dw[0].parse::<u64>().unwrap() < w[0].parse::<u64>().unwrap(), "decided before filled: {dec} / {l}");
        assert_eq!(dec.contains(" reduce_only "), w[5] == "sell", "sma_cross enters long and exits reduce-only");
    }
    // The run ends with the control inputs: end of data, then shutdown.
    let control: Vec<&String> = lines.iter().filter(|l| l.contains(" input - control ")).collect();
    assert_eq!(control.len(), 2);
    assert!(control[0].contains("end_of_data") && control[1].contains("shutdown"), "{control:?}");
}

#[test]
fn journal_jsonl_is_one_object_per_record() {
    let d = tempfile::tempdir().unwrap();
    let run = backtest(d.path(), "run", None);
    let text = journal(&[&s(&run)]);
    let json = journal(&[&s(&run), "--format", "jsonl"]);
    assert_eq!(json.len(), text.len());
    let csv = fills_rows(&run);
    let mut fills = 0;
    for (j, t) in json.iter().zip(&text) {
        let v: serde_json::Value = serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}"));
        assert_eq!(v["seq"].as_u64().unwrap().to_string(), t.split(' ').next().unwrap());
        assert_eq!(v["ts"].as_str().unwrap(), t.split(' ').nth(1).unwrap());
        let ts: jiff::Timestamp = v["ts"].as_str().unwrap().parse().unwrap();
        assert_eq!(i128::from(v["ts_ns"].as_i64().unwrap()), ts.as_nanosecond());
        assert_eq!(v["kind"].as_str().unwrap(), t.split(' ').nth(2).unwrap());
        if v["kind"] == "report" && v["status"] == "filled" {
            // Prices are exact decimal strings.
            let row = &csv[fills];
            assert_eq!(
                (v["symbol"].as_str().unwrap(), v["side"].as_str().unwrap()),
                (row[1].as_str(), row[2].as_str())
            );
            assert_eq!(v["qty"].as_u64().unwrap().to_string(), row[3]);
            assert_eq!(engine::records::parse_px(v["price"].as_str().unwrap()), engine::records::parse_px(&row[4]));
            fills += 1;
        }
        if v["kind"] == "input" {
            assert!(v["symbol"].is_null() && v["symbol_id"].is_null(), "control inputs have no symbol: {j}");
        }
    }
    assert_eq!(fills, csv.len());
}

#[test]
fn journal_filters_by_symbol_and_kind() {
    let d = tempfile::tempdir().unwrap();
    // max_position 50 rejects every 100-share entry of sma_cross (fast 5 / slow 20 trades often).
    let run = backtest(
        d.path(),
        "limited",
        Some("[risk]\nmax_position_shares = 50\n[strategy]\nname = \"sma_cross\"\nfast = 5\nslow = 20\n"),
    );
    let all = journal(&[&s(&run)]);
    let kind = |l: &String| l.split(' ').nth(2).unwrap().to_string();
    let rejects = journal(&[&s(&run), "--kind", "reject"]);
    assert!(rejects.len() > 10, "{}", rejects.len());
    for l in &rejects {
        assert!(l.contains(" decision SP500 rejected reason=max_position buy 100 market "), "{l}");
    }
    assert!(journal(&[&s(&run), "--kind", "fill"]).is_empty(), "nothing filled");
    // Kinds combine (repeated or comma-separated) as a union, in journal order.
    let inputs_and_decisions: Vec<String> =
        all.iter().filter(|l| ["input", "decision"].contains(&kind(l).as_str())).cloned().collect();
    assert_eq!(journal(&[&s(&run), "--kind", "input", "--kind", "decision"]), inputs_and_decisions);
    assert_eq!(journal(&[&s(&run), "--kind", "decision,input"]), inputs_and_decisions);
    // --symbol keeps the symbol's records (case-insensitive) and drops records of no symbol.
    let sym = journal(&[&s(&run), "--symbol", "sp500"]);
    assert_eq!(sym, all.iter().filter(|l| l.split(' ').nth(3) == Some("SP500")).cloned().collect::<Vec<_>>());
    assert_eq!(sym.len(), all.len() - 2, "all but the two control inputs");
    assert_eq!(journal(&[&s(&run), "--symbol", "SP500", "--kind", "input"]), Vec::<String>::new());
    // The journal file itself works as the argument.
    assert_eq!(journal(&[&s(&run.join("journal.rtj")), "--kind", "reject"]), rejects);
}

#[test]
fn journal_errors_are_one_line_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let o = ringtape(&["journal", &s(&d.path().join("nope"))]);
    assert_one_line_error(&o, &["nope/journal.rtj", "byte 0", "ringtape backtest"]);
    let run = backtest(d.path(), "run", None);
    // Unknown symbol: names the run's symbols.
    let o = ringtape(&["journal", &s(&run), "--symbol", "XYZ"]);
    assert_one_line_error(&o, &["no symbol \"XYZ\"", "SP500"]);
    // A truncated last record: the records before it print, then the error names its offset.
    let j = run.join("journal.rtj");
    let bytes = std::fs::read(&j).unwrap();
    assert_eq!((bytes.len() - 16) % 72, 0);
    std::fs::write(&j, &bytes[..16 + 2 * 72 + 10]).unwrap();
    let o = ringtape(&["journal", &s(&run)]);
    assert_one_line_error(&o, &["journal.rtj", "byte 160", "truncated record 2 (10 of 72 bytes)"]);
    assert_eq!(o.stdout.lines().count(), 2);
    // Not a journal.
    let o = ringtape(&["journal", &s(&run.join("fills.csv"))]);
    assert_one_line_error(&o, &["fills.csv", "byte 0", "bad magic", "not a ringtape journal"]);
    // A damaged meta file is named.
    std::fs::write(&j, &bytes).unwrap();
    std::fs::write(run.join("journal.meta.json"), "{").unwrap();
    let o = ringtape(&["journal", &s(&run)]);
    assert_one_line_error(&o, &["journal.meta.json"]);
}

#[test]
fn journal_of_all_inputs_shows_bars_and_ends_quietly_into_a_closed_pipe() {
    let d = tempfile::tempdir().unwrap();
    // Journaling every input: 1563 bars, far more output than a pipe buffer holds.
    let run = backtest(d.path(), "all", Some("[journal]\ninputs = \"all\"\n"));
    let bars = journal(&[&s(&run), "--kind", "input", "--symbol", "SP500"]);
    assert_eq!(bars.len(), 1563);
    // The first bar of the file (09:30 New York = 14:30 UTC), received at its end.
    assert!(
        bars[0].ends_with(
            " 2019-11-05T14:31:00Z input SP500 bar 1m bar_ts=2019-11-05T14:30:00Z open=3080.80 high=3081.47 \
             low=3080.30 close=3080.49 volume=0"
        ),
        "{}",
        bars[0]
    );
    for format in ["text", "jsonl"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringtape"))
            .args(["journal", &s(&run), "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close our end, like `| head -c 1`.
        let mut stdout = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut stdout, &mut one).unwrap();
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{format}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{format}");
    }
}

#[test]
fn journal_prints_unknown_records_raw_and_counts_them() {
    let d = tempfile::tempdir().unwrap();
    let run = backtest(d.path(), "run", None);
    let j = run.join("journal.rtj");
    let before = journal(&[&s(&run)]);
    // Append a record of a kind this build does not know (9), as a newer writer might.
    let mut rec = [0u8; 72];
    rec[0..8].copy_from_slice(&4242u64.to_le_bytes());
    rec[16] = 9;
    rec[17] = 1;
    rec[18..20].copy_from_slice(&2u16.to_le_bytes());
    rec[24..32].copy_from_slice(&0xdead_beefu64.to_le_bytes());
    let mut bytes = std::fs::read(&j).unwrap();
    bytes.extend_from_slice(&rec);
    std::fs::write(&j, &bytes).unwrap();
    let o = ringtape(&["journal", &s(&run)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), before.len() + 1);
    assert_eq!(
        lines.last().unwrap(),
        &"4242 1970-01-01T00:00:00Z unknown(9) SP500 sub=1 aux=2 payload=0x00000000deadbeef,0x0000000000000000,\
          0x0000000000000000,0x0000000000000000,0x0000000000000000,0x0000000000000000"
    );
    assert!(
        o.stderr.starts_with(&format!("note: 1 of {} records held unknown kinds", before.len() + 1)),
        "{}",
        o.stderr
    );
    let unknown = journal_with_stderr(&[&s(&run), "--kind", "unknown", "--format", "jsonl"]);
    assert_eq!(unknown.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&unknown[0]).unwrap();
    assert_eq!((v["kind"].as_str(), v["kind_raw"].as_u64()), (Some("unknown"), Some(9)));
    assert_eq!((v["sub"].as_u64(), v["aux"].as_u64(), v["payload"][0].as_u64()), (Some(1), Some(2), Some(0xdead_beef)));
}

/// Like [`journal`], allowing notes on stderr.
fn journal_with_stderr(args: &[&str]) -> Vec<String> {
    let o = ringtape(&[&["journal"], args].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    o.stdout.lines().map(str::to_string).collect()
}
