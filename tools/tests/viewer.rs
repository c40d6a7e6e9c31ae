//! End to end: `ringtape backtest --view` and `ringtape paper --demo --view` under an X server,
//! driven by `xdotool` like a trader's keyboard. Backtest: hotkeys from a keymap buy through the
//! pipeline (the order reaches the simulated venue and fills), an order beyond
//! `risk.max_position_shares` is confirmed and rejected on screen, and the screenshot shows the
//! position. Paper: a hotkey's order reaches the demo exchange's broker, a limit "from the bid"
//! is priced off the latest quote, the screenshot shows candles from the live bars, and the run
//! replays. Without a reachable X server or without `xdotool` the tests print a note and pass
//! (CI runs Xvfb and installs xdotool: .ci/run).
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

/// One window test at a time: keys go to whichever window has the focus on the shared display.
static X_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// True when an X server and xdotool are there (else a note says why the test is skipped).
fn x_ready() -> bool {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        eprintln!("note: DISPLAY is not set: the viewer's end-to-end test needs an X server (CI runs Xvfb); skipped");
        return false;
    }
    if xdotool(&["getmouselocation"]).is_none() {
        eprintln!(
            "note: xdotool is missing or X server {display} is unreachable; the viewer's end-to-end test is skipped"
        );
        return false;
    }
    true
}

/// A child process killed when the test ends, passing or not (a paper run would go on forever,
/// its window taking the next test's keys).
struct Kid(std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Kid {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Kid {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Start `cmd` with its stderr lines sent to the returned channel.
fn spawn_logged(cmd: &mut Command) -> (Kid, mpsc::Receiver<String>) {
    let mut child = Kid(cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap());
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, rx)
}

/// The window named `title`, then the pointer into it (without a window manager the focus
/// follows it).
fn find_window(title: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let win = loop {
        if let Some(w) = xdotool(&["search", "--name", title])
            && let Some(id) = w.lines().next()
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no {title} window after 30 s");
        assert!(child.try_wait().unwrap().is_none(), "{title} exited before its window showed");
        std::thread::sleep(Duration::from_millis(100));
    };
    xdotool(&["mousemove", "--window", &win, "500", "300"]);
    xdotool(&["windowfocus", &win]);
}

/// Wait for `child` to exit (up to `secs`).
fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "the run did not finish after {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The run's journal, one JSON value per record.
fn journal(run: &Path) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["journal", run.to_str().unwrap(), "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn decode(path: &Path) -> (usize, usize, Vec<u32>) {
    let (w, h, px) = viz::png::decode(&std::fs::read(path).unwrap()).unwrap();
    (w as usize, h as usize, px)
}

#[test]
fn hotkeys_reach_the_venue_a_rejection_shows_and_the_position_is_on_screen() {
    if !x_ready() {
        return;
    }
    let _x = X_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    let (mut child, rx) = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_ringtape"))
            .args(["backtest", "--view", "--view-paused", "--view-size", "1000x600", "--quiet"])
            .args(["--keymap", &s(&km), "--config", &s(&cfg), "--screenshot", &s(&shot), "--out", &s(&run)]),
    );
    find_window("ringtape backtest --view", &mut child);
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
    let status = wait_exit(&mut child, 120);
    seen.extend(rx.try_iter());
    assert!(status.success(), "{status}: {}", seen.join("\n"));

    // The venue got the manual order: risk accepted it (tag MANU) and the venue filled it; the
    // 5000-share order was rejected with max_position.
    let lines = journal(&run);
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
fn paper_demo_view_sends_a_hotkey_order_to_the_exchange_prices_off_the_bid_and_draws_live_candles() {
    if !x_ready() {
        return;
    }
    let _x = X_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = tempfile::tempdir().unwrap();
    let (km, run, shot) = (d.path().join("keys.toml"), d.path().join("run"), d.path().join("shot.png"));
    std::fs::write(
        &km,
        "[keys]\nB = { action = \"buy\", shares = 10 }\n\
         L = { action = \"buy\", type = \"limit\", from = \"bid\", offset = -0.05, shares = 3 }\n",
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // Orders go to the demo exchange's paper broker (exchange.json shows its side at the end).
    let (mut child, rx) = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_ringtape"))
            .args(["paper", "--demo", "--broker", "alpaca", "--speed", "120", "--view", "--view-size", "1000x600"])
            .args(["--keymap", &s(&km), "--screenshot", &s(&shot), "--out", &s(&run)]),
    );
    find_window("ringtape paper --view", &mut child);
    let mut seen = Vec::new();
    // The status line once the feed is live (its warm start is in: the charts have bars).
    wait_line(&rx, &mut seen, "| feed live");
    key("b");
    wait_line(&rx, &mut seen, "sent buy 10 SP500 MKT");
    wait_line(&rx, &mut seen, "filled buy 10 SP500 @");
    key("l");
    wait_line(&rx, &mut seen, "sent buy 3 SP500 LMT");
    // Ctrl-C: the window closes (writing its screenshot), the run winds down as usual.
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = wait_exit(&mut child, 120);
    seen.extend(rx.try_iter());
    assert!(status.success(), "{status}: {}", seen.join("\n"));

    // The exchange's broker got both orders; the market one filled there.
    let ex: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("exchange.json")).unwrap()).unwrap();
    let orders = ex["orders"].as_array().unwrap();
    let at_exchange = |qty: &str, typ: &str| {
        orders.iter().find(|o| o["qty"] == qty && o["side"] == "buy" && o["type"] == typ).cloned()
    };
    let mkt = at_exchange("10", "market").unwrap_or_else(|| panic!("the hotkey's buy 10 at the exchange: {ex}"));
    assert_eq!((mkt["status"].as_str(), mkt["filled_qty"].as_str()), (Some("filled"), Some("10")), "{mkt}");
    let lmt = at_exchange("3", "limit").unwrap_or_else(|| panic!("the hotkey's limit buy 3 at the exchange: {ex}"));

    // The journal: both manual orders accepted by risk; the limit is 5 cents under the bid of
    // a quote the run had seen just before (not the last price: the demo's bid is a cent under
    // the close), and the exchange got that price.
    let lines = journal(&run);
    let manual = u64::from(engine::records::MANUAL_TAG);
    // (The wind-down's close-out of the position is tagged manual too: reduce-only.)
    let decisions: Vec<(usize, &serde_json::Value)> = lines
        .iter()
        .enumerate()
        .filter(|(_, v)| v["kind"] == "decision" && v["tag"].as_u64() == Some(manual) && v["reduce_only"].is_null())
        .collect();
    assert_eq!(decisions.len(), 2, "two manual orders: {decisions:?}");
    assert!(decisions.iter().all(|(_, v)| v["status"] == "accepted"), "{decisions:?}");
    let (at, limit) = decisions[1];
    let px = |v: &serde_json::Value| (v.as_str().unwrap().parse::<f64>().unwrap() * 100.0).round() as i64;
    let limit_c = px(&limit["limit"]);
    assert_eq!(limit_c, px(&lmt["limit_price"]), "{limit} vs {lmt}");
    let bids: Vec<i64> = lines[..at].iter().filter(|v| v["event"] == "quote").map(|v| px(&v["bid"])).collect();
    assert!(!bids.is_empty(), "the run subscribed quotes");
    let recent = &bids[bids.len().saturating_sub(3)..];
    assert!(recent.contains(&(limit_c + 5)), "limit {limit_c} is 5 cents under one of the latest bids {recent:?}");

    // The paper run with hotkeys replays exactly from its journal.
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape")).args(["replay", &s(&run)]).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    // The last frame: candles (up and down bodies) drawn from the live bars above the status bar.
    let (w, h, px) = decode(&shot);
    assert_eq!((w, h), (1000, 600));
    let t = viz::theme::Theme::default();
    let chart = &px[..(h - viz::status::STATUS_H as usize) * w];
    let (up, down) = (chart.iter().filter(|&&p| p == t.up).count(), chart.iter().filter(|&&p| p == t.down).count());
    assert!(up > 500 && down > 500, "candles on the chart: {up} up and {down} down pixels");
}

#[test]
fn without_a_display_view_says_so_in_one_line_and_the_run_goes_on_headless() {
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

    // `paper --view` without a display: one line, then the run goes on headless to its end.
    let run3 = d.path().join("paper");
    let o = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["paper", "--demo", "--view", "--quiet", "--speed", "600", "--duration", "2", "--out"])
        .arg(&run3)
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert_eq!(err, "paper --view: no display (DISPLAY is not set); continuing headless\n");
    assert!(run3.join("journal.rtj").is_file() && run3.join("summary.json").is_file());
}
