//! End to end: `ringtape backtest --view` under an X server, driven by `xdotool` like a trader's
//! keyboard. Hotkeys from a keymap buy through the pipeline (the order reaches the simulated
//! venue and fills), an order beyond `risk.max_position_shares` is confirmed and rejected on
//! screen, and the screenshot shows the position. Without a reachable X server or without
//! `xdotool` the test prints a note and passes (CI runs Xvfb and installs xdotool: .ci/run).
#![allow(clippy::disallowed_methods)] // deadlines for a child process and an X server; nothing is timed

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn xdotool(args: &[&str]) -> Option<String> {
    let o = Command::new("xdotool").args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Hold a key for a few frames (minifb samples key state once per frame: a press and release
/// within one frame would be missed), then let go.
fn key(k: &str) {
    xdotool(&["keydown", k]);
    std::thread::sleep(Duration::from_millis(80));
    xdotool(&["keyup", k]);
    std::thread::sleep(Duration::from_millis(80));
}

/// Wait for a stderr line containing `what` (the viewer logs every message it shows).
fn wait_line(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    if seen.iter().any(|l| l.contains(what)) {
        return;
    }
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let hit = l.contains(what);
        seen.push(l);
        if hit {
            return;
        }
    }
    panic!("no line with {what:?} from the viewer; stderr so far:\n{}", seen.join("\n"));
}

fn decode(path: &Path) -> (usize, usize, Vec<u32>) {
    let (w, h, px) = viz::png::decode(&std::fs::read(path).unwrap()).unwrap();
    (w as usize, h as usize, px)
}

#[test]
fn hotkeys_reach_the_venue_a_rejection_shows_and_the_position_is_on_screen() {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        eprintln!("note: DISPLAY is not set: the viewer's end-to-end test needs an X server (CI runs Xvfb); skipped");
        return;
    }
    if xdotool(&["getmouselocation"]).is_none() {
        eprintln!(
            "note: xdotool is missing or X server {display} is unreachable; the viewer's end-to-end test is skipped"
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (km, cfg, run, shot) =
        (d.path().join("keys.toml"), d.path().join("cfg.toml"), d.path().join("run"), d.path().join("shot.png"));
    std::fs::write(
        &km,
        "confirm_above_shares = 1000\n[keys]\nB = { action = \"buy\", shares = 10 }\nX = { action = \"buy\", shares = 5000 }\n\
         R = { action = \"buy\", risk = 50.0, stop = 1.0 }\n",
    )
    .unwrap();
    std::fs::write(&cfg, "[risk]\nmax_position_shares = 1000\n").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["backtest", "--view", "--view-paused", "--view-size", "1000x600", "--quiet"])
        .args(["--keymap", &s(&km), "--config", &s(&cfg), "--screenshot", &s(&shot), "--out", &s(&run)])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // The window, then the pointer into it (without a window manager the focus follows it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let win = loop {
        if let Some(w) = xdotool(&["search", "--name", "ringtape backtest --view"])
            && let Some(id) = w.lines().next()
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no viewer window after 30 s");
        assert!(child.try_wait().unwrap().is_none(), "backtest --view exited before its window showed");
        std::thread::sleep(Duration::from_millis(100));
    };
    xdotool(&["mousemove", "--window", &win, "500", "300"]);
    xdotool(&["windowfocus", &win]);
    let mut seen = Vec::new();

    // Paused: step 20 bars, buy 10 at the market, step so it fills at the next bar's open.
    for _ in 0..20 {
        key("period");
    }
    key("b");
    wait_line(&rx, &mut seen, "sent buy 10 SP500 MKT");
    key("period");
    wait_line(&rx, &mut seen, "filled buy 10 SP500 @");
    // Sized by risk: $50 to a stop $1 under the entry is 50 shares; the stop goes out once the
    // entry fills.
    key("r");
    wait_line(&rx, &mut seen, "sent buy 50 SP500 MKT");
    key("period");
    wait_line(&rx, &mut seen, "filled buy 50 SP500 @");
    wait_line(&rx, &mut seen, "sent sell 50 SP500 STP");
    // 5000 shares is above the confirmation size: asked, confirmed with Enter, then rejected
    // by risk (max_position_shares = 1000) with the reason on screen.
    key("x");
    wait_line(&rx, &mut seen, "CONFIRM buy 5000 SP500 MKT");
    key("Return");
    wait_line(&rx, &mut seen, "REJECTED buy 5000 SP500 MKT: max_position");
    key("q");
    // Closing the window lets the backtest finish at full speed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "backtest did not finish after the window closed");
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.extend(rx.try_iter());
    assert!(status.success(), "{status}: {}", seen.join("\n"));

    // The venue got the manual order: risk accepted it (tag MANU) and the venue filled it; the
    // 5000-share order was rejected with max_position.
    let o =
        Command::new(env!("CARGO_BIN_EXE_ringtape")).args(["journal", &s(&run), "--format", "jsonl"]).output().unwrap();
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let manual = u64::from(engine::records::MANUAL_TAG);
    let decisions: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["kind"] == "decision" && v["tag"].as_u64() == Some(manual)).collect();
    assert_eq!(decisions.len(), 4, "four manual orders: {decisions:?}");
    assert_eq!((decisions[0]["qty"].as_u64(), decisions[0]["status"].as_str()), (Some(10), Some("accepted")));
    assert_eq!((decisions[1]["qty"].as_u64(), decisions[1]["status"].as_str()), (Some(50), Some("accepted")));
    // The attached stop: sell 50, a stop order, accepted, $1 under the last price when the key
    // went down (so a little away from the entry's fill at the next bar's open).
    let stop = decisions[2];
    assert_eq!(
        (stop["side"].as_str(), stop["type"].as_str(), stop["qty"].as_u64()),
        (Some("sell"), Some("stop"), Some(50))
    );
    assert_eq!(stop["status"], "accepted");
    let px = |v: &serde_json::Value| v.as_str().and_then(|p| p.parse::<f64>().ok()).unwrap();
    let entry_id = decisions[1]["id"].as_str().unwrap();
    let entry_fill =
        lines.iter().find(|v| v["kind"] == "report" && v["id"] == entry_id && v["status"] == "filled").unwrap();
    let gap = px(&entry_fill["price"]) - px(&stop["stop"]);
    assert!(gap > 0.0 && gap < 3.0, "stop {} vs entry fill {}", stop["stop"], entry_fill["price"]);
    assert_eq!(decisions[3]["qty"].as_u64(), Some(5000));
    assert_eq!(decisions[3]["reason"], "max_position");
    let id = decisions[0]["id"].as_str().unwrap();
    assert!(
        lines.iter().any(|v| v["kind"] == "report" && v["id"] == id && v["status"] == "filled" && v["qty"] == 10),
        "the manual buy filled at the venue"
    );
    // A run with hotkeys replays exactly from its journal.
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape")).args(["replay", &s(&run)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // The last frame: the rejection in its red box on the status bar, the position (+10) in
    // the position colour (its line, axis label and title).
    let (w, h, px) = decode(&shot);
    assert_eq!((w, h), (1000, 600));
    let count = |col: u32, rows: std::ops::Range<usize>| {
        rows.flat_map(|y| (0..w).map(move |x| y * w + x)).filter(|&i| px[i] == col).count()
    };
    assert!(count(viz::status::REJECT_BG, h - 14..h) > 1000, "the rejection's red box on the status bar");
    let t = viz::theme::Theme::default();
    assert!(count(t.position, 0..h - viz::status::STATUS_H as usize) > 200, "the position on the chart");
}

#[test]
fn without_a_display_view_says_so_in_one_line_and_the_backtest_runs_headless() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["backtest", "--view", "--quiet", "--out", run.to_str().unwrap()])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert_eq!(err, "backtest --view: no display (DISPLAY is not set); running headless\n");
    let fills = std::fs::read_to_string(run.join("fills.csv")).unwrap();
    assert_eq!(fills.lines().count(), 65, "the usual 64 fills of the quick start");

    // A bad keymap is refused before anything is written (exit 2, one line naming the file).
    let km = d.path().join("bad.toml");
    std::fs::write(&km, "[keys]\nB = { action = \"buy\" }\n").unwrap();
    let run2 = d.path().join("run2");
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["backtest", "--view", "--keymap", km.to_str().unwrap(), "--out", run2.to_str().unwrap()])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml: key B: give exactly one of shares, dollars, risk"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!run2.exists());
}
