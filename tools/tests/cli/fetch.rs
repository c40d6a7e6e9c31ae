//! `ringtape fetch`: provider history into bar files, against the local exchange (REST over
//! loopback), resumable.

use super::{assert_one_line_error, import_sp500, s};
use engine::barfile::BarFile;
use ringtape_tools::exchange::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig};
use std::process::Command;

fn fetch(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .arg("fetch")
        .args(args)
        .env("APCA_API_KEY_ID", DEMO_KEY)
        .env("APCA_API_SECRET_KEY", DEMO_SECRET)
        .env("POLYGON_API_KEY", DEMO_KEY)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    (o.status.code().unwrap(), String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

#[test]
fn alpaca_and_polygon_history_land_in_bar_files_and_a_second_run_resumes() {
    // The exchange's market clock starts after the last built-in bar: all of it is history.
    let start = 1_573_300_000_000_000_000; // 2019-11-09
    let ex =
        Exchange::start(ExchangeConfig { plain: true, start_ns: Some(start), ..ExchangeConfig::default() }).unwrap();
    let url = format!("http://{}", ex.addr());
    let d = tempfile::tempdir().unwrap();
    import_sp500(&d.path().join("want"), "SP500");
    let want = BarFile::open(&d.path().join("want/SP500.1m.rtb")).unwrap().bars().to_vec();
    assert_eq!(want.len(), 1563);

    // Alpaca: the first two days, then all four: the second run fetches only what is missing.
    let out = d.path().join("alpaca");
    let (code, stdout, stderr) = fetch(&[
        "--symbols",
        "SP500",
        "--from",
        "2019-11-05",
        "--to",
        "2019-11-07",
        "--rest-url",
        &url,
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 already there"), "{stdout}");
    let first = BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars().to_vec();
    let day3 = 1_573_084_800_000_000_000; // 2019-11-07T00:00Z
    assert_eq!(first[..], want[..want.iter().position(|b| b.ts_event_ns >= day3).unwrap()]);
    let requests_before = ex.stats().http_requests;
    let (code, stdout, stderr) = fetch(&[
        "--symbols",
        "SP500",
        "--from",
        "2019-11-05",
        "--to",
        "2019-11-09",
        "--rest-url",
        &url,
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("{} already there", first.len())), "{stdout}");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &want[..], "every bar once, in order");
    assert!(ex.stats().http_requests - requests_before <= 3, "only the missing days were asked for");

    // Polygon aggregates give the same bars.
    let out = d.path().join("polygon");
    let (code, _, stderr) = fetch(&[
        "--provider",
        "polygon",
        "--symbols",
        "SP500",
        "--from",
        "2019-11-05",
        "--to",
        "2019-11-09",
        "--rest-url",
        &url,
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &want[..]);
}

#[test]
fn fetch_errors_name_the_fix_and_never_the_secret() {
    let ex =
        Exchange::start(ExchangeConfig { plain: true, secret: "other".into(), ..ExchangeConfig::default() }).unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = s(&d.path().join("o"));
    let url = format!("http://{}", ex.addr());
    let (code, _, stderr) =
        fetch(&["--symbols", "SP500", "--from", "2019-11-05", "--to", "2019-11-06", "--rest-url", &url, "--out", &out]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused the credentials") && !stderr.contains(DEMO_SECRET), "{stderr}");
    let o = super::ringtape(&["fetch", "--symbols", "A", "--from", "2019-11-06", "--to", "2019-11-05", "--out", &out]);
    assert_one_line_error(&o, &["--from 2019-11-06 is not before --to 2019-11-05"]);
    let o = super::ringtape(&[
        "fetch",
        "--provider",
        "x",
        "--symbols",
        "A",
        "--from",
        "2019-11-05",
        "--to",
        "2019-11-06",
        "--out",
        &out,
    ]);
    assert_one_line_error(&o, &["--provider x"]);
}
