//! End-to-end tests of the `ringtape` binary (the only integration test binary of the crate, to
//! keep link time low). Real data: `../data/real/*.csv` (see `data/real/SOURCES.md` for their source
//! and licence).

use engine::barfile::BarFile;
use engine::records::Bar;
use std::path::Path;
use std::process::Command;

#[path = "cli/backtest.rs"]
mod backtest_cases;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ringtape(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape")).args(args).output().expect("run ringtape");
    Out {
        code: o.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn real(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/real").join(name).display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn utc_ns(text: &str) -> i64 {
    let ts: jiff::Timestamp = text.parse().unwrap();
    i64::try_from(ts.as_nanosecond()).unwrap()
}

/// Assert an error run: exit 2 and exactly one stderr line, `error: ...`, containing `needles`.
fn assert_one_line_error(o: &Out, needles: &[&str]) {
    assert_eq!(o.code, 2, "stderr: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
}

/// Import the real S&P 500 minute file (New York local times) as `symbol` into `out`.
fn import_sp500(out: &Path, symbol: &str) {
    let o = ringtape(&[
        "import",
        "csv",
        &real("SP500_NOV2019_IDay.csv"),
        "--tz",
        "America/New_York",
        "--symbol",
        symbol,
        "--out",
        &s(out),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn imports_the_sp500_minute_file() {
    let d = tempfile::tempdir().unwrap();
    let o = ringtape(&[
        "import",
        "csv",
        &real("SP500_NOV2019_IDay.csv"),
        "--tz",
        "America/New_York",
        "--out",
        &s(d.path()),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("1563 rows read, 1563 imported, 0 rejected"), "{}", o.stderr);
    let f = BarFile::open(&d.path().join("SP500_NOV2019_IDAY.1m.rtb")).unwrap();
    let h = f.header();
    assert_eq!((h.symbol.as_str(), h.interval_s, h.count), ("SP500_NOV2019_IDAY", 60, 1563));
    let first = f.bars()[0];
    // 11/5/2019 9:30 in New York (EST, -05:00) is 14:30 UTC; the row is 3080.8,3080.49,3081.47,3080.3,0
    // in the file's Open,Close,High,Low,Volume order.
    assert_eq!(
        first,
        Bar {
            ts_event_ns: utc_ns("2019-11-05T14:30:00Z"),
            open_px_e9: 3_080_800_000_000,
            high_px_e9: 3_081_470_000_000,
            low_px_e9: 3_080_300_000_000,
            close_px_e9: 3_080_490_000_000,
            volume: 0,
        }
    );
    assert_eq!(f.bars()[1562].ts_event_ns, utc_ns("2019-11-08T20:59:00Z")); // 15:59 New York
    assert!(f.bars().iter().all(|b| b.volume == 0));
}

#[test]
fn imports_the_yahoo_daily_files() {
    let d = tempfile::tempdir().unwrap();
    let out = s(d.path());
    let o = ringtape(&[
        "import",
        "csv",
        &real("yahoofinance-AAPL-20040819-20180120.csv"),
        "--symbol",
        "AAPL",
        "--out",
        &out,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("3379 rows read, 3379 imported, 0 rejected"), "{}", o.stderr);
    let f = BarFile::open(&d.path().join("AAPL.1d.rtb")).unwrap();
    assert_eq!((f.header().interval_s, f.header().count), (86_400, 3379));
    assert_eq!(f.bars()[0].ts_event_ns, utc_ns("2004-08-19T00:00:00Z")); // bare date, --tz UTC default
    assert_eq!(f.bars()[0].open_px_e9, 2_250_714_000); // 2.250714 exactly
    assert_eq!(f.bars()[0].volume, 97_230_000);

    // SPY has 2519 rows, 2 of which are invalid in the source data itself: on 2015-03-05 (line 1808)
    // the open 209.419998 is below the low 209.850006, and on 2015-03-30 (line 1825) the open
    // 205.740005 is below the low 206.960007. They are rejected and reported; the rest import.
    let o = ringtape(&["import", "csv", &real("yahoofinance-SPY-20080101-20180101.csv"), "--out", &out]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("2519 rows read, 2517 imported, 2 rejected"), "{}", o.stderr);
    assert!(o.stderr.contains("rejected: 2 open/close outside [low, high]"), "{}", o.stderr);
    assert!(o.stderr.contains("yahoofinance-SPY-20080101-20180101.csv:1808: open/close outside"), "{}", o.stderr);
    assert!(o.stderr.contains("yahoofinance-SPY-20080101-20180101.csv:1825: open/close outside"), "{}", o.stderr);
    // The symbol comes from the file name: upper-cased, truncated to 32 bytes.
    let f = BarFile::open(&d.path().join("YAHOOFINANCE-SPY-20080101-201801.1d.rtb")).unwrap();
    assert_eq!(
        (f.header().symbol.as_str(), f.header().interval_s, f.header().count),
        ("YAHOOFINANCE-SPY-20080101-201801", 86_400, 2517)
    );

    // With --strict the two bad rows fail the import.
    let o = ringtape(&[
        "import",
        "csv",
        &real("yahoofinance-SPY-20080101-20180101.csv"),
        "--symbol",
        "SPY",
        "--strict",
        "--out",
        &out,
    ]);
    assert_eq!(o.code, 2);
    assert!(!d.path().join("SPY.1d.rtb").exists());
}

#[test]
fn hourly_file_with_seconds_and_any_column_order() {
    let d = tempfile::tempdir().unwrap();
    let hourly = d.path().join("hourly.csv");
    let mut text = String::from("Timestamp,Open,High,Low,Close,Volume\n");
    for h in 9..16 {
        text.push_str(&format!("2024-03-01 {h:02}:00:00,100.{h},101,99.5,100.5,{}\n", h * 1000));
    }
    std::fs::write(&hourly, text).unwrap();
    let reordered = d.path().join("reordered.csv");
    std::fs::write(
        &reordered,
        "close,volume,timestamp,high,low,open\n\
         10.5,1200.0,2024-03-01T14:30:00Z,11,9.75,10\n\
         10.25,800,2024-03-01T14:31:00Z,10.5,10,10.5\n\
         10.3,,2024-03-01T14:32:00Z,10.4,10.2,10.25\n",
    )
    .unwrap();
    let out = d.path().join("bars");
    let o = ringtape(&["import", "csv", &s(&hourly), &s(&reordered), "--tz", "America/New_York", "--out", &s(&out)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(files_in(&out), ["HOURLY.1h.rtb", "REORDERED.1m.rtb"]);

    let f = BarFile::open(&out.join("HOURLY.1h.rtb")).unwrap();
    assert_eq!((f.header().interval_s, f.header().count), (3600, 7));
    assert_eq!(f.bars()[0].ts_event_ns, utc_ns("2024-03-01T14:00:00Z")); // 09:00 EST
    assert_eq!(f.bars()[0].open_px_e9, 100_900_000_000); // "100.9"
    assert_eq!(f.bars()[6].volume, 15_000);

    // The explicit Z wins over --tz; a volume of "1200.0" is 1200, an empty one 0.
    let f = BarFile::open(&out.join("REORDERED.1m.rtb")).unwrap();
    let b = f.bars();
    assert_eq!(b[0].ts_event_ns, utc_ns("2024-03-01T14:30:00Z"));
    assert_eq!(
        (b[0].open_px_e9, b[0].high_px_e9, b[0].low_px_e9, b[0].close_px_e9),
        (10_000_000_000, 11_000_000_000, 9_750_000_000, 10_500_000_000)
    );
    assert_eq!(b.iter().map(|b| b.volume).collect::<Vec<_>>(), [1200, 800, 0]);
}

const BAD_ROWS: &str = "\
timestamp,open,high,low,close,volume
2024-03-01 09:00:00,10,11,9,10.5,100
2024-03-01 10:00:00,NaN,11,9,10.5,100
2024-03-01 11:00:00,-10,11,9,10.5,100
2024-03-01 12:00:00,10,9,11,10,100
2024-03-01 13:00:00,10,11,9,10.5,100
2024-03-01 13:00:00,10,11,9,10.7,100
2024-03-01 11:30:00,10,11,9,10.5,100
yesterday,10,11,9,10.5,100
2024-03-01 14:00:00,10,11,9
2024-03-01 15:00:00,10,11,9,12,100
2024-03-01 16:00:00,10,11,9,10.5,1500.5
2024-03-01 17:00:00,10,11,9,10.5,100
";

#[test]
fn bad_rows_are_counted_by_reason_and_good_rows_kept() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("bad.csv");
    std::fs::write(&csv, BAD_ROWS).unwrap();
    let out = d.path().join("bars");
    let o = ringtape(&["import", "csv", &s(&csv), "--interval", "1h", "--out", &s(&out)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let e = &o.stderr;
    assert!(e.contains("12 rows read, 3 imported, 9 rejected"), "{e}");
    for reason in [
        "1 unparseable timestamp",
        "1 missing field",
        "1 bad number",
        "1 NaN/inf",
        "1 non-positive price",
        "1 high < low",
        "1 open/close outside [low, high]",
        "1 duplicate timestamp",
        "1 out of order",
    ] {
        assert!(e.contains(reason), "{reason:?} missing in {e}");
    }
    // The first five rejected rows are listed by line.
    assert!(e.contains("bad.csv:3: NaN/inf: open \"NaN\""), "{e}");
    assert!(e.contains("bad.csv:4: non-positive price"), "{e}");
    assert!(e.contains("bad.csv:5: high < low"), "{e}");
    assert!(e.contains("bad.csv:7: duplicate timestamp"), "{e}");
    assert!(e.contains("bad.csv:8: out of order"), "{e}");
    assert!(e.contains("... and 4 more rejected rows"), "{e}");

    let f = BarFile::open(&out.join("BAD.1h.rtb")).unwrap();
    let got: Vec<(i64, i64)> = f.bars().iter().map(|b| (b.ts_event_ns, b.close_px_e9)).collect();
    // Line 6 (13:00, close 10.5) is kept; its duplicate on line 7 (close 10.7) is not.
    assert_eq!(
        got,
        [
            (utc_ns("2024-03-01T09:00:00Z"), 10_500_000_000),
            (utc_ns("2024-03-01T13:00:00Z"), 10_500_000_000),
            (utc_ns("2024-03-01T17:00:00Z"), 10_500_000_000),
        ]
    );

    // --strict: exit 2 and nothing written.
    let strict_out = d.path().join("strict");
    let o = ringtape(&["import", "csv", &s(&csv), "--interval", "1h", "--strict", "--out", &s(&strict_out)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.lines().last().unwrap().starts_with("error: "), "{}", o.stderr);
    assert!(o.stderr.contains("--strict"), "{}", o.stderr);
    assert!(files_in(&strict_out).is_empty());

    // A file whose every row is rejected imports nothing: exit 2.
    let all_bad = d.path().join("allbad.csv");
    std::fs::write(&all_bad, "date,open,high,low,close\n2024-01-02,x,1,1,1\n").unwrap();
    let o = ringtape(&["import", "csv", &s(&all_bad), "--out", &s(&out)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("no bars imported"), "{}", o.stderr);
}

#[test]
fn descending_files_are_reversed() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("desc.csv");
    std::fs::write(&csv, "Date,Open,High,Low,Close\n2024-01-05,3,3,3,3\n2024-01-04,2,2,2,2\n2024-01-03,1,1,1,1\n")
        .unwrap();
    let o = ringtape(&["import", "csv", &s(&csv), "--out", &s(d.path())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("0 rejected") && o.stderr.contains("reversed"), "{}", o.stderr);
    let f = BarFile::open(&d.path().join("DESC.1d.rtb")).unwrap();
    assert_eq!(f.bars().iter().map(|b| b.close_px_e9 / 1_000_000_000).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn usage_and_input_errors_are_one_line_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = s(d.path());
    let csv = d.path().join("nohigh.csv");
    std::fs::write(&csv, "Date,Open,Close,Low,Volume\n11/5/2019 9:30,1,1,1,0\n").unwrap();
    let o = ringtape(&["import", "csv", &s(&csv), "--out", &out]);
    assert_one_line_error(&o, &["nohigh.csv", "missing column \"high\"", "Date,Open,Close,Low,Volume"]);

    assert_one_line_error(&ringtape(&["import", "csv", "--bogus", "x.csv", "--out", &out]), &["--bogus"]);
    assert_one_line_error(&ringtape(&["synth", "--symbols", "1", "--days", "1", "--out", &out, "--nope"]), &["--nope"]);
    assert_one_line_error(&ringtape(&["import", "csv", "x.csv"]), &["--out"]);
    assert_one_line_error(&ringtape(&["import", "csv", "/nonexistent/x.csv", "--out", &out]), &["/nonexistent/x.csv"]);
    assert_one_line_error(
        &ringtape(&["import", "csv", &s(&csv), "--tz", "Mars/Olympus", "--out", &out]),
        &["Mars/Olympus"],
    );
    assert_one_line_error(&ringtape(&["import", "csv", &s(&csv), "--interval", "soon", "--out", &out]), &["soon"]);
    assert_one_line_error(
        &ringtape(&["import", "csv", "a.csv", "b.csv", "--symbol", "X", "--out", &out]),
        &["--symbol"],
    );
    assert_one_line_error(
        &ringtape(&["synth", "--symbols", "1", "--days", "1", "--interval", "7m", "--out", &out]),
        &["7m"],
    );
    assert_one_line_error(
        &ringtape(&["export", "csv", &out, "--out", &s(&d.path().join("x.csv"))]),
        &["no .rtb bar files"],
    );
    // No subcommand: the help, on stderr, exit 2.
    let o = ringtape(&[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("Usage"), "{}", o.stderr);
}

#[test]
fn help_works_for_every_command() {
    for args in [
        &["--help"][..],
        &["import", "--help"],
        &["import", "csv", "--help"],
        &["synth", "--help"],
        &["export", "--help"],
        &["export", "csv", "--help"],
    ] {
        let o = ringtape(args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        assert!(o.stdout.contains("Usage: ringtape"), "{args:?}: {}", o.stdout);
    }
    assert!(ringtape(&["import", "csv", "--help"]).stdout.contains("--tz"));
    assert!(ringtape(&["--version"]).stdout.starts_with("ringtape "));
}

fn synth(dir: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["synth", "--out"];
    let d = s(dir);
    args.push(&d);
    args.extend_from_slice(extra);
    let o = ringtape(&args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    o
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(n)).unwrap())).collect()
}

#[test]
fn synth_is_deterministic_and_shaped() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    let args = ["--symbols", "3", "--days", "6", "--seed", "42", "--start", "2024-03-07"];
    let o = synth(&a, &args);
    assert!(o.stdout.contains("3 symbols x 6 days x 390 bars (1m) = 7020 bars"), "{}", o.stdout);
    synth(&b, &[&args[..], &["--threads", "1"]].concat());
    synth(&c, &["--symbols", "3", "--days", "6", "--seed", "43", "--start", "2024-03-07"]);
    assert_eq!(files_in(&a), ["SYM000.1m.rtb", "SYM001.1m.rtb", "SYM002.1m.rtb"]);
    // Same seed: byte-identical files (whatever the thread count); another seed: different.
    assert_eq!(read_all(&a), read_all(&b));
    for ((_, x), (_, y)) in read_all(&a).iter().zip(read_all(&c).iter()) {
        assert_ne!(x, y);
    }

    let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let mut closes = Vec::new();
    for name in files_in(&a) {
        let f = BarFile::open(&a.join(&name)).unwrap();
        assert_eq!((f.header().interval_s, f.header().count), (60, 6 * 390));
        let mut days = std::collections::BTreeMap::<jiff::civil::Date, Vec<&Bar>>::new();
        for bar in f.bars() {
            bar.validate().unwrap();
            let z = jiff::Timestamp::from_nanosecond(i128::from(bar.ts_event_ns)).unwrap().to_zoned(ny.clone());
            days.entry(z.date()).or_default().push(bar);
        }
        // Thu 7, Fri 8, Mon 11 (after the DST change of Sunday the 10th), Tue 12, Wed 13, Thu 14.
        let dates: Vec<String> = days.keys().map(|d| d.to_string()).collect();
        assert_eq!(dates, ["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"]);
        for bars in days.values() {
            assert_eq!(bars.len(), 390);
            let local = |b: &Bar| {
                let z = jiff::Timestamp::from_nanosecond(i128::from(b.ts_event_ns)).unwrap().to_zoned(ny.clone());
                (z.hour(), z.minute())
            };
            assert_eq!((local(bars[0]), local(bars[389])), ((9, 30), (15, 59)));
        }
        closes.push(f.bars()[0].close_px_e9);
    }
    // Symbols are independent walks with their own prices.
    assert!(closes[0] != closes[1] && closes[1] != closes[2]);

    // One-second bars: 23,400 a day.
    let s1 = d.path().join("s1");
    synth(&s1, &["--symbols", "1", "--days", "1", "--interval", "1s"]);
    let f = BarFile::open(&s1.join("SYM000.1s.rtb")).unwrap();
    assert_eq!((f.header().interval_s, f.header().count), (1, 23_400));
    assert_eq!(f.bars()[0].ts_event_ns, utc_ns("2024-01-02T14:30:00Z"));
}

#[test]
fn export_then_import_reproduces_the_bar_files() {
    let d = tempfile::tempdir().unwrap();
    let orig = d.path().join("orig");
    import_sp500(&orig, "SPX");
    let o = ringtape(&[
        "import",
        "csv",
        &real("yahoofinance-AAPL-20040819-20180120.csv"),
        "--symbol",
        "AAPL",
        "--out",
        &s(&orig),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    synth(&orig, &["--symbols", "2", "--days", "3", "--seed", "9"]);

    let csv = d.path().join("all.csv");
    let o = ringtape(&["export", "csv", &s(&orig), "--out", &s(&csv)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "symbol,interval,ts,open,high,low,close,volume");
    assert_eq!(lines.len(), 1 + 1563 + 3379 + 2 * 3 * 390);
    assert!(lines.contains(&"SPX,1m,2019-11-05T14:30:00Z,3080.80,3081.47,3080.30,3080.49,0"));
    assert!(lines.contains(&"AAPL,1d,2004-08-19T00:00:00Z,2.250714,2.275714,2.168571,2.193571,97230000"));
    // Merged order: non-decreasing bar end time.
    let end = |l: &str| {
        let f: Vec<&str> = l.split(',').collect();
        let iv = engine::records::Interval::parse(f[1]).unwrap();
        utc_ns(f[2]) + iv.nanos()
    };
    assert!(lines[1..].windows(2).all(|w| end(w[0]) <= end(w[1])));

    let again = d.path().join("again");
    let o = ringtape(&["import", "csv", &s(&csv), "--out", &s(&again)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains(" 0 rejected"), "{}", o.stderr);
    assert_eq!(files_in(&orig), ["AAPL.1d.rtb", "SPX.1m.rtb", "SYM000.1m.rtb", "SYM001.1m.rtb"]);
    assert_eq!(read_all(&orig), read_all(&again), "export -> import must reproduce the files byte for byte");

    // --symbol exports one symbol; an unknown one is an error naming the choices.
    let one = d.path().join("one.csv");
    let o = ringtape(&["export", "csv", &s(&orig), "--symbol", "SPX", "--out", &s(&one)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&one).unwrap().lines().count(), 1 + 1563);
    assert_one_line_error(
        &ringtape(&["export", "csv", &s(&orig), "--symbol", "NOPE", "--out", &s(&one)]),
        &["NOPE", "AAPL, SPX"],
    );
}

#[test]
fn two_inputs_writing_the_same_file_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("x"), d.path().join("y"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let row = "date,open,high,low,close\n2024-01-02,1,1,1,1\n";
    std::fs::write(a.join("same.csv"), row).unwrap();
    std::fs::write(b.join("same.csv"), row).unwrap();
    let out = d.path().join("out");
    let o = ringtape(&["import", "csv", &s(&a.join("same.csv")), &s(&b.join("same.csv")), "--out", &s(&out)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.lines().last().unwrap().contains("would both be written to"), "{}", o.stderr);
    assert!(files_in(&out).is_empty(), "nothing written: {:?}", files_in(&out));
}

#[path = "cli/results.rs"]
mod results;
use results::fills_rows;

#[path = "cli/import.rs"]
mod import;

#[path = "cli/journal.rs"]
mod journal_cases;

#[path = "cli/replay.rs"]
mod replay_cases;

#[path = "cli/paper.rs"]
mod paper_cases;

#[path = "cli/mc.rs"]
mod mc_cases;

#[path = "cli/sweep.rs"]
mod sweep_cases;

#[path = "cli/report.rs"]
mod report_cases;

#[path = "cli/fetch.rs"]
mod fetch_cases;

#[path = "cli/render.rs"]
mod render_cases;

#[path = "cli/import_dbn.rs"]
mod import_dbn;

#[path = "cli/logs.rs"]
mod logs_cases;
