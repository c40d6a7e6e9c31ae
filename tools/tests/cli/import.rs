//! `ringtape import csv` on the file shapes of issue 11 ("Data you can trust"), closed pipes and
//! Ctrl-C. Each test runs the real binary.

use super::{Out, assert_one_line_error, files_in, ringtape, s, utc_ns};
use engine::barfile::BarFile;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Write `text` to `dir/name` and return its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Import `files` into `dir/out` with `extra` arguments.
fn import(dir: &Path, files: &[&Path], extra: &[&str]) -> (Out, PathBuf) {
    let out = dir.join("out");
    let mut args: Vec<String> = vec!["import".into(), "csv".into()];
    args.extend(files.iter().map(|p| s(p)));
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(["--out".into(), s(&out)]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    (ringtape(&refs), out)
}

fn bars(path: &Path) -> Vec<engine::records::Bar> {
    BarFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).bars().to_vec()
}

/// `n` one-minute rows from 2024-01-02 14:30 UTC: `ts,open,high,low,close,volume`.
fn minute_rows(n: usize) -> Vec<String> {
    let t0 = utc_ns("2024-01-02T14:30:00Z") / 1_000_000_000;
    (0..n).map(|i| format!("{},10,11,9,10.5,{}", t0 + 60 * i as i64, 100 + i)).collect()
}

/// No temporary file or staging directory is left, and every bar file present opens (header,
/// checksum and bar checks).
fn assert_clean(out: &Path) {
    if !out.exists() {
        return;
    }
    for name in files_in(out) {
        assert!(!name.ends_with(".tmp"), "temporary {name} left in {}", out.display());
        assert!(name.ends_with(".rtb"), "unexpected {name}");
        BarFile::open(&out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Case 1: a stray quote

#[test]
fn a_stray_quote_rejects_its_row_and_keeps_every_row_after_it() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = vec!["timestamp,open,high,low,close,volume".to_string()];
    lines.extend(minute_rows(1000));
    // Row 101 is line 102: an opening quote that never closes.
    lines[101] = lines[101].replacen(",10,", ",\"10,", 1);
    let csv = write(d.path(), "quote.csv", &(lines.join("\n") + "\n"));
    let (o, out) = import(d.path(), &[&csv], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("1000 rows read, 999 imported, 1 rejected"), "{}", o.stderr);
    assert!(o.stderr.contains("1 unterminated quote (line 102)"), "{}", o.stderr);
    assert!(o.stderr.contains("quote.csv:102: unterminated quote: a quote opened in field 2 (open)"), "{}", o.stderr);
    let b = bars(&out.join("QUOTE.1m.rtb"));
    assert_eq!(b.len(), 999);
    assert_eq!(b[998].ts_event_ns, utc_ns("2024-01-02T14:30:00Z") + 999 * 60_000_000_000);
}

// ---------------------------------------------------------------------------------------------
// Case 2: integer times

#[test]
fn yyyymmdd_integers_are_dates_not_epoch_seconds() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(
        d.path(),
        "ints.csv",
        "Date,Open,High,Low,Close,Volume\n20240102,10,11,9,10.5,100\n20240103,10,11,9,10.5,100\n20240104,10,11,9,10.5,100\n",
    );
    let (o, out) = import(d.path(), &[&csv], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("integer times read as yyyymmdd"), "{}", o.stderr);
    let b = bars(&out.join("INTS.1d.rtb"));
    assert_eq!(b[0].ts_event_ns, utc_ns("2024-01-02T00:00:00Z"));
    assert_eq!(b[2].ts_event_ns, utc_ns("2024-01-04T00:00:00Z"));
}

#[test]
fn ambiguous_integer_times_name_the_column_and_the_option() {
    let d = tempfile::tempdir().unwrap();
    // 11 digits: epoch seconds in the 2280s, or milliseconds in 1970.
    let csv = write(d.path(), "amb.csv", "Epoch,Open,High,Low,Close\n17092836000,1,1,1,1\n17092896000,1,1,1,1\n");
    let (o, _) = import(d.path(), &[&csv], &["--time-column", "epoch"]);
    assert_one_line_error(&o, &["amb.csv:2", "\"Epoch\"", "17092836000", "--time-format"]);
    // Named, it imports.
    let (o, out) = import(d.path(), &[&csv], &["--time-column", "epoch", "--time-format", "epoch-ms"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let b = bars(&out.join("AMB.1m.rtb"));
    assert_eq!(b[0].ts_event_ns, 17_092_836_000 * 1_000_000);
    // --time-format also overrides a recognizable shape: 20240102 as epoch seconds.
    let csv = write(d.path(), "forced.csv", "t,o,h,l,c\n20240102,1,1,1,1\n20240103,1,1,1,1\n");
    let (o, out) = import(d.path(), &[&csv], &["--time-format", "epoch-s"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(bars(&out.join("FORCED.1s.rtb"))[0].ts_event_ns, 20_240_102 * 1_000_000_000);
}

#[test]
fn epoch_units_are_recognized_by_magnitude() {
    let d = tempfile::tempdir().unwrap();
    let t = utc_ns("2024-03-01T14:30:00Z");
    let mut files = Vec::new();
    for (name, col, div) in [
        ("s.csv", "timestamp", 1_000_000_000i64),
        ("ms.csv", "t", 1_000_000),
        ("us.csv", "ts_recv", 1_000),
        ("ns.csv", "ts_event_ns", 1),
    ] {
        let rows: Vec<String> = (0..3).map(|i| format!("{},1,1,1,1,5", (t + i * 60_000_000_000) / div)).collect();
        files.push(write(d.path(), name, &format!("{col},open,high,low,close,volume\n{}\n", rows.join("\n"))));
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (o, out) = import(d.path(), &refs, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for (sym, unit) in [("S", "epoch-s"), ("MS", "epoch-ms"), ("US", "epoch-us"), ("NS", "epoch-ns")] {
        let b = bars(&out.join(format!("{sym}.1m.rtb")));
        assert_eq!((b[0].ts_event_ns, b.len()), (t, 3), "{sym}");
        assert!(o.stderr.contains(&format!("integer times read as {unit}")), "{unit}: {}", o.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Case 3: closed pipes

fn big_inputs(dir: &Path, files: usize, rows: usize) -> Vec<PathBuf> {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for r in minute_rows(rows) {
        text.push_str(&r);
        text.push('\n');
    }
    (0..files).map(|i| write(dir, &format!("f{i}.csv"), &text)).collect()
}

#[test]
fn a_closed_stderr_ends_import_quietly_without_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let inputs = big_inputs(d.path(), 10, 20_000);
    let out = d.path().join("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringtape"));
    cmd.args(["import", "csv"]).args(&inputs).arg("--out").arg(&out);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Like `2>&1 | grep -m1 rows`: read the first report line, then close the pipe.
    let mut first = String::new();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut first).unwrap();
    assert!(first.contains("20000 rows read"), "{first}");
    drop(err);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "quiet stop with 128+SIGPIPE, not a panic (101)");
    assert_clean(&out);
}

#[test]
fn a_closed_stdout_ends_export_quietly_with_exit_0() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = ringtape(&["synth", "--symbols", "2", "--days", "10", "--out", &s(&data)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["export", "csv", &s(&data), "--out", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 100`: 7800 rows are far more than a pipe buffer.
    let mut head = [0u8; 100];
    child.stdout.as_mut().unwrap().read_exact(&mut head).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "no \"Broken pipe\" message");
    assert!(head.starts_with(b"symbol,interval,ts,"));
}

#[test]
fn a_closed_stdout_ends_synth_quietly() {
    // synth still prints with println!: the panic hook in exit.rs turns the broken pipe into exit 0.
    let d = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["synth", "--symbols", "2", "--days", "2", "--out", &s(d.path())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

// ---------------------------------------------------------------------------------------------
// Case 4: real file shapes

#[test]
fn pandas_files_with_an_unnamed_time_column_and_float_volumes_import() {
    let d = tempfile::tempdir().unwrap();
    let daily = write(
        d.path(),
        "daily.csv",
        ",Open,High,Low,Close,Volume\n2024-01-02,10.0,11.0,9.0,10.5,1500.0\n2024-01-03,10.5,11.0,10.0,10.75,1.5e3\n",
    );
    let minute = write(
        d.path(),
        "minute.csv",
        ",Open,High,Low,Close,Volume\n2024-01-02 09:30:00,10.0,11.0,9.0,10.5,2.0E+3\n2024-01-02 09:31:00,10.5,11.0,10.0,10.75,0.0\n",
    );
    let (o, out) = import(d.path(), &[&daily, &minute], &["--tz", "America/New_York"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let b = bars(&out.join("DAILY.1d.rtb"));
    assert_eq!(b.iter().map(|b| b.volume).collect::<Vec<_>>(), [1500, 1500]);
    assert_eq!(b[0].ts_event_ns, utc_ns("2024-01-02T05:00:00Z"));
    let b = bars(&out.join("MINUTE.1m.rtb"));
    assert_eq!(b.iter().map(|b| b.volume).collect::<Vec<_>>(), [2000, 0]);
    assert_eq!(b[0].ts_event_ns, utc_ns("2024-01-02T14:30:00Z"));
}

#[test]
fn time_columns_are_found_by_any_known_name_in_any_case() {
    let d = tempfile::tempdir().unwrap();
    let iso = ["2024-03-01T14:30:00Z", "2024-03-01T14:31:00Z"];
    for (i, col) in ["TS_EVENT", "ts_recv", "T", "date", "DateTime", "Timestamp", "when"].iter().enumerate() {
        let csv = write(
            d.path(),
            &format!("n{i}.csv"),
            &format!("{col},Open,High,Low,Close\n{},1,1,1,1\n{},1,1,1,1\n", iso[0], iso[1]),
        );
        let extra: &[&str] = if *col == "when" { &["--time-column", "WHEN"] } else { &[] };
        let (o, out) = import(d.path(), &[&csv], extra);
        assert_eq!(o.code, 0, "{col}: {}", o.stderr);
        assert_eq!(bars(&out.join(format!("N{i}.1m.rtb")))[0].ts_event_ns, utc_ns(iso[0]), "{col}");
    }
    // Date + Time columns, and an unknown --time-column.
    let csv =
        write(d.path(), "dt.csv", "DATE,TIME,open,high,low,close\n20240301,14:30,1,1,1,1\n20240301,14:31,1,1,1,1\n");
    let (o, out) = import(d.path(), &[&csv], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(bars(&out.join("DT.1m.rtb"))[0].ts_event_ns, utc_ns(iso[0]));
    let (o, _) = import(d.path(), &[&csv], &["--time-column", "nope"]);
    assert_one_line_error(&o, &["dt.csv", "--time-column \"nope\"", "DATE,TIME,open,high,low,close"]);
}

#[test]
fn semicolon_and_tab_delimiters_are_detected_or_given() {
    let d = tempfile::tempdir().unwrap();
    let semi = write(d.path(), "semi.csv", "Date;Open;High;Low;Close;Volume\n2024-01-02;1;2;0.5;1.5;10\n");
    let tab = write(d.path(), "tab.csv", "Date\tOpen\tHigh\tLow\tClose\tVolume\n2024-01-02\t1\t2\t0.5\t1.5\t10\n");
    let (o, out) = import(d.path(), &[&semi, &tab], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for f in ["SEMI.1d.rtb", "TAB.1d.rtb"] {
        assert_eq!(bars(&out.join(f))[0].close_px_e9, 1_500_000_000, "{f}");
    }
    let pipe = write(d.path(), "pipe.txt", "Date|Open|High|Low|Close\n2024-01-02|1|2|0.5|1.5\n");
    let (o, out) = import(d.path(), &[&pipe], &["--delimiter", "|"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(out.join("PIPE.1d.rtb").exists());
    // No delimiter in the header: the error names the header line.
    let spaces = write(d.path(), "spaces.csv", "Date Open High Low Close\n2024-01-02 1 2 0.5 1.5\n");
    let (o, _) = import(d.path(), &[&spaces], &[]);
    assert_one_line_error(&o, &["spaces.csv:1", "\"Date Open High Low Close\"", "--delimiter"]);
}

#[test]
fn missing_and_empty_volumes_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let novol = write(d.path(), "novol.csv", "date,open,high,low,close\n2024-01-02,1,1,1,1\n2024-01-03,1,1,1,1\n");
    let empty = write(
        d.path(),
        "empty.csv",
        "date,open,high,low,close,volume\n2024-01-02,1,1,1,1,\n2024-01-03,1,1,1,1,7\n2024-01-04,1,1,1,1,\n",
    );
    let (o, out) = import(d.path(), &[&novol, &empty], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("novol.csv: 2 rows read, 2 imported, 0 rejected"), "{}", o.stderr);
    assert!(o.stderr.contains("no volume column: every bar has volume 0"), "{}", o.stderr);
    assert!(o.stderr.contains("2 rows with an empty volume field imported with volume 0 (lines 2, 4)"), "{}", o.stderr);
    assert_eq!(bars(&out.join("EMPTY.1d.rtb")).iter().map(|b| b.volume).collect::<Vec<_>>(), [0, 7, 0]);
}

#[test]
fn iso_offsets_and_us_dates_import() {
    let d = tempfile::tempdir().unwrap();
    let iso = write(
        d.path(),
        "iso.csv",
        "Datetime,Open,High,Low,Close\n2024-03-01 09:30:00-05:00,1,1,1,1\n2024-03-01T09:31:00.000-05:00,1,1,1,1\n2024-03-01T14:32:00+00:00,1,1,1,1\n",
    );
    let us = write(d.path(), "us.csv", "Date,Open,High,Low,Close\n3/1/2024 9:30,1,1,1,1\n3/1/2024 9:31,1,1,1,1\n");
    let (o, out) = import(d.path(), &[&iso, &us], &["--tz", "America/New_York"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let t = utc_ns("2024-03-01T14:30:00Z");
    let b = bars(&out.join("ISO.1m.rtb"));
    assert_eq!(b.iter().map(|b| (b.ts_event_ns - t) / 60_000_000_000).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(bars(&out.join("US.1m.rtb"))[0].ts_event_ns, t);
    assert!(
        o.stderr
            .contains("US 1m (interval inferred from the data): 2 bars, 2024-03-01T14:30:00Z .. 2024-03-01T14:31:00Z"),
        "{}",
        o.stderr
    );
}

#[test]
fn one_mistyped_future_time_rejects_only_that_row() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = vec!["timestamp,open,high,low,close,volume".to_string()];
    lines.extend(minute_rows(201));
    // Row 3 (line 4) typed with 2034 instead of 2024.
    let future = (utc_ns("2034-01-02T14:32:00Z") / 1_000_000_000).to_string();
    let fields: Vec<&str> = lines[3].splitn(2, ',').collect();
    lines[3] = format!("{future},{}", fields[1]);
    let csv = write(d.path(), "typo.csv", &(lines.join("\n") + "\n"));
    let (o, out) = import(d.path(), &[&csv], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("201 rows read, 200 imported, 1 rejected"), "{}", o.stderr);
    assert!(o.stderr.contains("1 out of order (line 4)"), "{}", o.stderr);
    assert!(
        o.stderr.contains("typo.csv:4: out of order: 2034-01-02T14:32:00Z (later than the rows around it"),
        "{}",
        o.stderr
    );
    assert_eq!(bars(&out.join("TYPO.1m.rtb")).len(), 200);
}

#[test]
fn the_report_warns_when_interval_disagrees_with_the_data() {
    let d = tempfile::tempdir().unwrap();
    let mut text = String::from("timestamp,open,high,low,close\n");
    for m in [0, 5, 10, 15] {
        text.push_str(&format!("2024-03-01T14:{:02}:00Z,1,1,1,1\n", 30 + m));
    }
    let csv = write(d.path(), "five.csv", &text);
    let (o, out) = import(d.path(), &[&csv], &["--interval", "1m"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("FIVE 1m: 4 bars, 2024-03-01T14:30:00Z .. 2024-03-01T14:45:00Z"), "{}", o.stderr);
    assert!(
        o.stderr.contains("warning: FIVE 1m: --interval is 1m but the most common gap between bars is 5m"),
        "{}",
        o.stderr
    );
    assert!(out.join("FIVE.1m.rtb").exists());
}

// ---------------------------------------------------------------------------------------------
// Case 5: messages that misled

#[test]
fn tiny_and_huge_prices_say_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(
        d.path(),
        "px.csv",
        "date,open,high,low,close\n2024-01-02,1,1,1,1\n2024-01-03,0.0000000001,1,1,1\n2024-01-04,99999999999,1,1,1\n2024-01-05,1,1,1,1\n",
    );
    let (o, _) = import(d.path(), &[&csv], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("px.csv:3: price below the 1e-9 price resolution: open \"0.0000000001\""),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("px.csv:4: number out of range: open \"99999999999\""), "{}", o.stderr);
    assert!(!o.stderr.contains("non-positive") && !o.stderr.contains("bad number"), "{}", o.stderr);
}

#[test]
fn two_symbols_mapping_to_one_file_name_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let first = write(d.path(), "first.csv", "date,open,high,low,close\n2024-01-02,1,1,1,1\n");
    let csv = write(
        d.path(),
        "both.csv",
        "symbol,date,open,high,low,close\nBRK/B,2024-01-02,1,1,1,1\nBRK_B,2024-01-02,1,1,1,1\n",
    );
    let (o, out) = import(d.path(), &[&first, &csv], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let last = o.stderr.lines().last().unwrap();
    assert!(last.contains("both.csv: symbols BRK/B and BRK_B would both be written to"), "{last}");
    assert!(last.contains("BRK_B.1d.rtb") && last.contains("rename one of them in the file"), "{last}");
    assert!(files_in(&out).is_empty(), "nothing written, not even first.csv: {:?}", files_in(&out));
}

#[test]
fn out_that_is_a_file_and_header_only_files_are_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(d.path(), "ok.csv", "date,open,high,low,close\n2024-01-02,1,1,1,1\n");
    let file = write(d.path(), "afile", "");
    let o = ringtape(&["import", "csv", &s(&csv), "--out", &s(&file)]);
    assert_one_line_error(&o, &[&s(&file), "is a file, not a directory"]);
    let header = write(d.path(), "header.csv", "date,open,high,low,close\n\n");
    let (o, _) = import(d.path(), &[&header], &[]);
    assert_one_line_error(&o, &["header.csv", "has a header but no data rows"]);
}

#[test]
fn import_help_lists_what_is_accepted() {
    let o = ringtape(&["import", "csv", "--help"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for needle in
        ["--time-format", "epoch-ms", "yyyymmdd", "--time-column", "--delimiter", "ts_event", "unnamed first column"]
    {
        assert!(o.stdout.contains(needle), "{needle:?} not in --help:\n{}", o.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// Case 6: Ctrl-C

#[test]
fn ctrl_c_during_import_leaves_no_temporary_files_and_exits_130() {
    let d = tempfile::tempdir().unwrap();
    let inputs = big_inputs(d.path(), 4, 200_000);
    let out = d.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["import", "csv"])
        .args(&inputs)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first file is reported (its bar file is staged), then interrupt.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("200000 rows read"), "{first}");
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    let last = rest.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: interrupted") && last.contains("nothing written"), "{rest}");
    assert_clean(&out);
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
}

#[test]
fn ctrl_c_during_export_removes_the_temporary_file_and_exits_130() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = ringtape(&["synth", "--symbols", "40", "--days", "60", "--out", &s(&data)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out_dir = d.path().join("csv");
    std::fs::create_dir(&out_dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["export", "csv", &s(&data), "--out", &s(&out_dir.join("all.csv"))])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 936,000 rows take seconds in a debug build: interrupt once the temporary file exists (the
    // handler is installed before it is created).
    let mut polls = 0;
    while files_in(&out_dir).is_empty() {
        polls += 1;
        assert!(polls < 4_000, "export never started writing (20 s)");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.trim_end().ends_with("not written") && err.lines().count() == 1, "{err}");
    assert!(files_in(&out_dir).is_empty(), "{:?}", files_in(&out_dir));
}
