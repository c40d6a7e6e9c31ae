//! `ringtape fetch`: provider history into bar files, against the local exchange (REST over
//! loopback), resumable.

use super::{assert_one_line_error, import_sp500, s};
use engine::barfile::BarFile;
use ringtape_tools::exchange::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, Fault};
use std::process::Command;

fn fetch(args: &[&str]) -> (i32, String, String) {
    fetch_with(
        args,
        &[("APCA_API_KEY_ID", DEMO_KEY), ("APCA_API_SECRET_KEY", DEMO_SECRET), ("POLYGON_API_KEY", DEMO_KEY)],
    )
}

/// `ringtape fetch ARGS` with exactly `env` as the provider variables (the others removed).
fn fetch_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringtape"));
    c.arg("fetch").args(args);
    for v in ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "POLYGON_API_KEY", "DATABENTO_API_KEY", "XDG_CONFIG_HOME"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    let o = c.output().unwrap();
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

/// The key the Databento tests give the exchange: found nowhere in any output or log.
const DB_KEY: &str = "db-RINGTAPE-TEST-KEY-0123456789ab";

fn databento_exchange(plain: bool, state_dir: &std::path::Path) -> ringtape_tools::exchange::ExchangeHandle {
    let start = 1_573_300_000_000_000_000; // 2019-11-09: all of the built-in data is history
    Exchange::start(ExchangeConfig {
        plain,
        start_ns: Some(start),
        key: DB_KEY.into(),
        state_dir: Some(state_dir.to_path_buf()),
        ..ExchangeConfig::default()
    })
    .unwrap()
}

fn databento(url: &str, out: &std::path::Path, from: &str, to: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> =
        ["--provider", "databento", "--symbols", "SP500", "--from", from, "--to", to, "--rest-url", url]
            .iter()
            .map(|x| x.to_string())
            .collect();
    a.extend(["--out".to_string(), s(out)]);
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn databento_over_tls_gives_the_exchange_bars_exactly_and_resumes_after_a_failure() {
    let d = tempfile::tempdir().unwrap();
    let ex = databento_exchange(false, d.path());
    let url = ex.http_origin();
    assert!(url.starts_with("https://"), "{url}");
    let ca = s(ex.cert_path().unwrap());
    import_sp500(&d.path().join("want"), "SP500");
    let want = BarFile::open(&d.path().join("want/SP500.1m.rtb")).unwrap().bars().to_vec();
    let out = d.path().join("databento");
    let log = d.path().join("fetch.log.jsonl");
    let key = [("DATABENTO_API_KEY", DB_KEY)];
    let with_log = |args: Vec<String>| [vec!["--log".to_string(), s(&log)], vec!["fetch".into()], args].concat();

    // The first two days, over TLS with the exchange's CA, logged.
    let args = with_log(databento(&url, &out, "2019-11-05", "2019-11-07", &["--ca-file", &ca]));
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape")).args(&args).env("DATABENTO_API_KEY", DB_KEY).output().unwrap();
    let (stdout, stderr) = (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap());
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("databento 1m bars") && stdout.contains("0 already there"), "{stdout}");
    let first = BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars().to_vec();
    let day3 = 1_573_084_800_000_000_000; // 2019-11-07T00:00Z
    assert_eq!(first[..], want[..want.iter().position(|b| b.ts_event_ns >= day3).unwrap()], "exact prices and times");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("\"task\":\"fetch\""), "progress is logged: {log_text}");
    for text in [&stdout, &stderr, &log_text] {
        assert!(!text.contains(DB_KEY), "the key leaked: {text}");
    }

    // An interruption: the provider fails the next request (a 400 is not retried). The file keeps
    // every finished day.
    ex.inject(Fault::RestError { status: 400, count: 1, retry_after_s: 0 });
    let (code, _, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-09", &["--ca-file", &ca])), &key);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("HTTP 400") && stderr.contains("run again to resume"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &first[..]);

    // The same command again: only what is missing is asked for, every bar lands once, in order.
    let before = ex.stats().http_requests;
    let (code, stdout, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-09", &["--ca-file", &ca])), &key);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("{} already there", first.len())), "{stdout}");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &want[..], "every bar once, in order");
    assert!(ex.stats().http_requests - before <= 3, "only the missing days were asked for");
    // And once more: nothing is missing, nothing changes.
    let (code, stdout, _) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-09", &["--ca-file", &ca])), &key);
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("{} already there, 0 fetched", want.len())), "{stdout}");
}

#[test]
#[allow(clippy::disallowed_methods)] // reason: checks that a Retry-After second was waited out
fn databento_retries_a_429_after_retry_after_and_a_5xx_and_counts_unmapped_instruments() {
    let d = tempfile::tempdir().unwrap();
    let ex = databento_exchange(true, d.path());
    let url = format!("http://{}", ex.addr());
    import_sp500(&d.path().join("want"), "SP500");
    let want = BarFile::open(&d.path().join("want/SP500.1m.rtb")).unwrap().bars().to_vec();
    let (day, next) = (1_572_912_000_000_000_000, 1_572_998_400_000_000_000); // 2019-11-05, -06
    let want: Vec<_> = want.into_iter().filter(|b| (day..next).contains(&b.ts_event_ns)).collect();
    ex.inject(Fault::RestError { status: 429, count: 1, retry_after_s: 1 });
    ex.inject(Fault::UnmappedRecord);
    let out = d.path().join("o");
    let t0 = std::time::Instant::now();
    let (code, stdout, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &[])), &[("DATABENTO_API_KEY", DB_KEY)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(ex.stats().http_requests, 2, "one 429, then the day");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &want[..]);
    assert!(stdout.contains("refused bars: 1 (unmapped instrument id: 1)"), "{stdout}");
    // A server error is retried after a backoff too.
    ex.inject(Fault::RestError { status: 503, count: 1, retry_after_s: 0 });
    let out = d.path().join("o2");
    let (code, _, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &[])), &[("DATABENTO_API_KEY", DB_KEY)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ex.stats().http_requests, 4, "one 503, then the day");
    assert_eq!(BarFile::open(&out.join("SP500.1m.rtb")).unwrap().bars(), &want[..]);
}

#[test]
fn databento_errors_name_the_variable_and_never_the_key() {
    let d = tempfile::tempdir().unwrap();
    let ex = databento_exchange(true, d.path());
    let url = format!("http://{}", ex.addr());
    let out = d.path().join("o");
    let wrong = "db-WRONG-KEY-not-the-exchanges-000";
    let (code, stdout, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &[])), &[("DATABENTO_API_KEY", wrong)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("HTTP 401") && stderr.contains("set DATABENTO_API_KEY"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(wrong) && !stdout.contains(wrong), "{stderr}");
    // No key anywhere: exit 2, saying where to put one (HOME has no credentials file).
    let (code, _, stderr) =
        fetch_with(&refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &[])), &[("HOME", &s(d.path()))]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no Databento credentials: set DATABENTO_API_KEY"), "{stderr}");
    // The key from a credentials file works too.
    let creds = d.path().join("creds.toml");
    std::fs::write(&creds, format!("DATABENTO_API_KEY = \"{DB_KEY}\"\n")).unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, _, stderr) = fetch_with(
        &refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &["--credentials-file", &s(&creds)])),
        &[("HOME", &s(d.path()))],
    );
    assert_eq!(code, 0, "{stderr}");
    // Intervals Databento has no schema for, and an unknown symbol (Databento's 422).
    let (code, _, stderr) = fetch_with(
        &refs(&databento(&url, &out, "2019-11-05", "2019-11-06", &["--interval", "5m"])),
        &[("DATABENTO_API_KEY", DB_KEY)],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--interval 5m") && stderr.contains("1s, 1m, 1h and 1d"), "{stderr}");
    let mut args = databento(&url, &d.path().join("x"), "2019-11-05", "2019-11-06", &[]);
    args[3] = "NOPE".into();
    let (code, _, stderr) = fetch_with(&refs(&args), &[("DATABENTO_API_KEY", DB_KEY)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("HTTP 422") && stderr.contains("None of the symbols could be resolved"), "{stderr}");
}
