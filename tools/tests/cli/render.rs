//! `ringtape render` and `ringtape view` end to end.

use super::{Out, ringtape, s};
use std::process::{Command, Stdio};
use std::time::Duration;
use viz::theme::Theme;

/// A backtest of the built-in S&P 500 minute bars (data/real/SP500_NOV2019_IDay.csv) into `dir/run`.
fn sp500_run(dir: &std::path::Path) -> std::path::PathBuf {
    let run = dir.join("run");
    let o = ringtape(&["backtest", "--out", &s(&run), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    run
}

fn decode(path: &std::path::Path) -> (u32, u32, Vec<u32>) {
    viz::png::decode(&std::fs::read(path).unwrap()).unwrap()
}

fn count(px: &[u32], c: u32) -> usize {
    px.iter().filter(|p| **p == c).count()
}

#[test]
fn render_a_backtest_run_of_the_real_sp500_data_to_png() {
    let d = tempfile::tempdir().unwrap();
    let run = sp500_run(d.path());
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    assert!(fills.lines().count() > 10, "sma_cross trades the real data");
    let png = d.path().join("sp500.png");
    let o = ringtape(&["render", "--data", &s(&run), "--out", &s(&png)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("1600x900, 1 panel(s): SP500"), "{}", o.stdout);
    // Re-running the run's strategy for its overlays reproduced its fills.csv: no warning.
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() < 400_000, "compressed: {} bytes", bytes.len());
    let (w, h, px) = decode(&png);
    assert_eq!((w, h), (1600, 900));
    let t = Theme::default();
    // 1563 one-minute bars: rising and falling candles, buy and sell markers from fills.csv,
    // the two SMAs the run's strategy plots, axis text.
    for (what, colour, at_least) in [
        ("up candles", t.up, 2000),
        ("down candles", t.down, 2000),
        ("buy markers", t.buy, 20),
        ("sell markers", t.sell, 20),
        ("SMA fast", t.series[0], 500),
        ("SMA slow", t.series[1], 500),
        ("labels", t.text, 300),
    ] {
        assert!(count(&px, colour) >= at_least, "{what}: {} pixels", count(&px, colour));
    }
}

#[test]
fn render_a_data_dir_with_a_strategy_a_day_and_a_size() {
    let d = tempfile::tempdir().unwrap();
    let run = sp500_run(d.path());
    let png = d.path().join("day.png");
    let data = run.join("data");
    let args = [
        "render",
        "--data",
        &s(&data),
        "--out",
        &s(&png),
        "--strategy",
        "orb",
        "--symbol",
        "SP500",
        "--from",
        "2019-11-06",
        "--to",
        "2019-11-06",
    ];
    let o = ringtape(&[&args[..], &["--width", "800", "--height", "400"]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (w, h, px) = decode(&png);
    assert_eq!((w, h), (800, 400));
    // orb plots its range edges (index data has no volume, so no VWAP).
    let t = Theme::default();
    assert!(count(&px, t.series[0]) > 100 && count(&px, t.series[1]) > 100);
    // Without a strategy a data directory has bars only.
    let o = ringtape(&["render", "--data", &s(&data), "--out", &s(&png), "--layout", "2x2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (_, _, px) = decode(&png);
    assert_eq!(count(&px, t.series[0]), 0);
    assert!(count(&px, t.up) > 1000);
}

#[test]
fn render_a_paper_run_from_its_journal() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("paper");
    let o = ringtape(&["paper", "--demo", "--speed", "3000", "--duration", "4", "--out", &s(&run)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    let png = d.path().join("paper.png");
    let o = ringtape(&["render", "--data", &s(&run), "--out", &s(&png), "--width", "1000", "--height", "500"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // The strategy re-run over the journal's inputs (LiveStart, ticks and all) gives the run's fills.
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    let (w, h, px) = decode(&png);
    assert_eq!((w, h), (1000, 500));
    let t = Theme::default();
    assert!(count(&px, t.up) > 500 && count(&px, t.series[0]) > 100);
    if fills.lines().any(|l| l.contains(",buy,")) {
        assert!(count(&px, t.buy) >= 6, "buy markers");
    }
}

#[test]
fn render_refuses_unknown_symbols_and_missing_dirs_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let run = sp500_run(d.path());
    let png = d.path().join("x.png");
    let o = ringtape(&["render", "--data", &s(&run), "--out", &s(&png), "--symbol", "NOPE"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("--symbol NOPE: not in") && o.stderr.contains("SP500"), "{}", o.stderr);
    let o = ringtape(&["render", "--data", &s(&d.path().join("missing")), "--out", &s(&png)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = ringtape(&["render", "--data", &s(&run), "--out", &s(&png), "--from", "yesterday"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(!png.exists());
}

#[test]
fn view_without_a_display_says_so_in_one_line_and_with_one_runs_until_killed() {
    let d = tempfile::tempdir().unwrap();
    let run = sp500_run(d.path());
    let o =
        Command::new(env!("CARGO_BIN_EXE_ringtape")).args(["view", &s(&run)]).env_remove("DISPLAY").output().unwrap();
    let out = Out {
        code: o.status.code().unwrap(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    };
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: no display") && out.stderr.contains("use ringtape render"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    // A display that cannot be reached: the same one line.
    let o =
        Command::new(env!("CARGO_BIN_EXE_ringtape")).args(["view", &s(&run)]).env("DISPLAY", ":731").output().unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: no display") && err.lines().count() == 1, "{err}");

    // Under a display (CI runs Xvfb on :99): the window runs and does not crash.
    if std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty()) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
            .args(["view", &s(&run)])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // About 1.5 s of frames (30 x 50 ms).
        for _ in 0..30 {
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("view exited early with {st}: {err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // A bounded run draws its frames, writes its last one and exits 0.
        let shot = d.path().join("view.png");
        let o = ringtape(&[
            "view",
            &s(&run),
            "--frames",
            "5",
            "--screenshot",
            &s(&shot),
            "--width",
            "900",
            "--height",
            "500",
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let (w, h, px) = decode(&shot);
        assert_eq!((w, h), (900, 500));
        let t = Theme::default();
        assert!(count(&px, t.up) > 500, "candles on screen");
        // The side panel's ticker list: "SP500" in the focus colour on its first row.
        let mut want = viz::canvas::Canvas::new(900, 500, 0);
        let r = want.rect();
        want.text(6, 4 + 14, "SP500", r, 1);
        let glyphs: Vec<usize> = (0..px.len()).filter(|&i| want.pixels()[i] == 1).collect();
        assert!(glyphs.len() > 30 && glyphs.iter().all(|&i| px[i] == t.focus));
    }
}
