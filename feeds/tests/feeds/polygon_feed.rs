//! The shared feed loop speaking Polygon end to end: a local websocket server on 127.0.0.1
//! speaking the Polygon stocks protocol (PROTOCOLS.md 2.1), fake `History` sources holding a
//! canned source list of bars, the real feed thread, and a real `pipeline::run` on its ingress.
//! Warm start, gap backfill after a reconnect, a full ingress and universe changes at runtime.
//! The feed's clock is fake and moved by the server thread between phases (see alpaca_feed.rs).

use super::alpaca_feed::{
    MIN, Outcome, SEC, StopOnDrop, W0, Ws, accept, accept_advancing, close_e9, fake_clock, listener, read_text,
    run_pipeline, send, serve_until_gone, sync, test_timers,
};
use engine::pipeline::Ingress;
use engine::records::{Bar, Interval, SymbolId};
use engine::symbols::SymbolTable;
use feeds::credentials::Secret;
use feeds::feed::{
    FatalError, FeedEnd, FeedHandle, POLYGON_THREAD_NAME, PolygonFeedConfig, SessionState, SharedClock,
    spawn_polygon_feed,
};
use feeds::ws::TlsConfig;
use feeds::{FeedCounters, HistBar, History, HistoryError, SymbolMap, polygon};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use tungstenite::WebSocket;

const PKEY: &str = "pg-key-never-printed";

/// The bar [`am`] describes: `px` in cents sets every price (close = `px` + 1 cent).
fn bar_px(start_ns: i64, px: i64) -> Bar {
    let e9 = |c: i64| c * 10_000_000;
    Bar {
        ts_event_ns: start_ns,
        open_px_e9: e9(px),
        high_px_e9: e9(px + 5),
        low_px_e9: e9(px - 5),
        close_px_e9: close_e9(px),
        volume: 100,
    }
}

/// A Polygon aggregate message (`AM` minute, `A` second) for the bar [`bar_px`] describes.
fn agg(ev: &str, sym: &str, start_ns: i64, px: i64) -> String {
    let len_ms = if ev == "A" { 1_000 } else { 60_000 };
    let p = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let s = start_ns / 1_000_000;
    format!(
        r#"{{"ev":"{ev}","sym":"{sym}","v":100,"av":5000,"op":{o},"vw":{o},"o":{o},"c":{c},"h":{h},"l":{l},"a":{o},"z":10,"s":{s},"e":{e}}}"#,
        o = p(px),
        c = p(px + 1),
        h = p(px + 5),
        l = p(px - 5),
        e = s + len_ms,
    )
}

fn am(sym: &str, start_ns: i64, px: i64) -> String {
    agg("AM", sym, start_ns, px)
}

/// The price of the minute bar starting at `start_ns` in the source lists (distinct per minute).
fn px_at(start_ns: i64) -> i64 {
    10_000 + (start_ns - W0) / MIN * 10
}

/// A source list: `sym`'s minute bars from 14:30, `n` of them, priced by [`px_at`].
fn minutes(sym: &str, n: i64) -> Vec<(String, Interval, Bar)> {
    (0..n).map(|i| (sym.to_owned(), Interval::M1, bar_px(W0 + i * MIN, px_at(W0 + i * MIN)))).collect()
}

/// One call a [`FakeHistory`] answered: (symbols, interval secs, from, to).
type Call = (Vec<String>, u32, i64, i64);

/// History from a canned source list: every bar of the asked symbols and interval whose window
/// start is in `[from, to)`; every call recorded; optionally failing every call.
#[derive(Clone, Default)]
struct FakeHistory {
    source: Arc<Vec<(String, Interval, Bar)>>,
    calls: Arc<Mutex<Vec<Call>>>,
    fail: Option<HistoryError>,
}

impl FakeHistory {
    fn new(source: Vec<(String, Interval, Bar)>) -> Self {
        FakeHistory { source: Arc::new(source), ..FakeHistory::default() }
    }
}

impl History for FakeHistory {
    fn bars(
        &mut self,
        symbols: &[&str],
        interval: Interval,
        from_ns: i64,
        to_ns: i64,
        map: &SymbolMap,
        _counters: &mut FeedCounters,
    ) -> Result<Vec<HistBar>, HistoryError> {
        let names = symbols.iter().map(|s| (*s).to_owned()).collect();
        self.calls.lock().unwrap().push((names, interval.secs, from_ns, to_ns));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        // Newest first, like a page that runs backwards: the feed must order them.
        Ok(self
            .source
            .iter()
            .rev()
            .filter(|(s, iv, b)| {
                symbols.contains(&s.as_str()) && *iv == interval && (from_ns..to_ns).contains(&b.ts_event_ns)
            })
            .filter_map(|(s, iv, b)| map.get(s).map(|symbol| HistBar { symbol, interval: *iv, bar: *b }))
            .collect())
    }
}

/// Wait (at most 5 s) until `cond` holds.
fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..5_000 {
        if cond() {
            return;
        }
        thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("condition not reached in 5 s");
}

fn feed_cfg(port: u16, grace_ns: i64) -> PolygonFeedConfig {
    let mut cfg = PolygonFeedConfig::new(format!("ws://127.0.0.1:{port}/stocks"), TlsConfig::Plain, Secret::new(PKEY));
    test_timers(&mut cfg.feed, grace_ns);
    cfg
}

fn spawn(cfg: PolygonFeedConfig, ingress: &Ingress, symbols: SymbolMap, clock: SharedClock) -> FeedHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let h = spawn_polygon_feed(cfg, ingress.clone(), symbols, clock, stop).expect("spawn");
    assert_eq!(h.thread().name(), Some(POLYGON_THREAD_NAME));
    h
}

/// The server's side of a session up to the subscription reply: checks the auth message and
/// that the subscribe asks for `params`, then syncs.
fn open_session<S: Read + Write>(ws: &mut WebSocket<S>, params: &str) {
    send(ws, r#"[{"ev":"status","status":"connected","message":"Connected Successfully"}]"#);
    assert_eq!(read_text(ws), polygon::auth_message(PKEY));
    send(ws, r#"[{"ev":"status","status":"auth_success","message":"authenticated"}]"#);
    assert_eq!(read_text(ws), format!(r#"{{"action":"subscribe","params":"{params}"}}"#));
    for p in params.split(',') {
        send(ws, &format!(r#"[{{"ev":"status","status":"success","message":"subscribed to: {p}"}}]"#));
    }
    // The feed asks history right after it subscribes, in the loop turn before it reads this
    // ping: the clock must not move before.
    sync(ws);
}

/// A Polygon server thread for one feed: it accepts, opens a session subscribing `params`,
/// runs `script` (which may move the feed's clock, starting at `start_ns`, and accept again;
/// it returns the connection to end on), then sets the feed's stop flag and serves until the
/// client is gone. Returns the feed's clock and stop flag, and the thread.
fn serve(
    listener: TcpListener,
    params: &'static str,
    start_ns: i64,
    script: impl FnOnce(Ws, &TcpListener, &AtomicI64) -> Ws + Send + 'static,
) -> (SharedClock, Arc<AtomicBool>, JoinHandle<()>) {
    let (now, clock) = fake_clock(start_ns);
    let stop = Arc::new(AtomicBool::new(false));
    let srv_stop = stop.clone();
    let server = thread::spawn(move || {
        let _stop = StopOnDrop(srv_stop.clone());
        let mut ws = accept(&listener);
        open_session(&mut ws, params);
        let mut ws = script(ws, &listener, &now);
        srv_stop.store(true, Ordering::Relaxed);
        serve_until_gone(&mut ws);
    });
    (clock, stop, server)
}

/// Spawn a feed, run the pipeline on an 8-slot ingress until the feed ends.
fn run_polygon(table: &SymbolTable, cfg: PolygonFeedConfig, clock: SharedClock, stop: Arc<AtomicBool>) -> Outcome {
    let ingress = Ingress::new(8);
    let h = spawn_polygon_feed(cfg, ingress.clone(), SymbolMap::from_table(table), clock, stop).expect("spawn");
    run_pipeline(table, &ingress, h)
}

#[test]
fn polygon_auth_then_minute_aggregates_flow_into_a_pipeline_run_in_order() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let (aapl, msft) = (table.intern("AAPL").unwrap(), table.intern("MSFT").unwrap());
    let (clock, stop, server) = serve(listener, "AM.AAPL,AM.MSFT", W0 + 30 * SEC, |mut ws, _, srv_now| {
        // 14:31:00.2: both 14:30 bars (MSFT first, AAPL twice: a duplicate), pending in the grace.
        srv_now.store(W0 + MIN + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{},{},{}]", am("MSFT", W0, 20_000), am("AAPL", W0, 10_000), am("AAPL", W0, 10_000)));
        sync(&mut ws);
        // 14:32:00.2: 14:30 is final (released by the loop's flush, in (window, symbol) order,
        // before the next frames are read); 14:31 arrives out of order across symbols.
        srv_now.store(W0 + 2 * MIN + SEC / 5, Ordering::Relaxed);
        sync(&mut ws);
        send(&mut ws, &format!("[{}]", am("MSFT", W0 + MIN, 20_100)));
        send(&mut ws, &format!("[{}]", am("AAPL", W0 + MIN, 10_100)));
        sync(&mut ws);
        ws
    });
    let (seen, _, r, report) = run_polygon(&table, feed_cfg(port, SEC), clock, stop);
    server.join().expect("server");
    let want = vec![
        (aapl.0, W0, close_e9(10_000)),
        (msft.0, W0, close_e9(20_000)),
        (aapl.0, W0 + MIN, close_e9(10_100)),
        (msft.0, W0 + MIN, close_e9(20_100)),
    ];
    assert_eq!(seen, want, "every bar once, ordered by (window, symbol)");
    assert_eq!(r.bars, 4);
    assert_eq!((report.end.clone(), report.pushed, report.pending_at_end), (FeedEnd::Stopped, 4, 0), "{report:?}");
    let c = report.counters;
    assert_eq!((c.bars, c.new_windows, c.duplicates, c.released, c.parse_errors), (5, 4, 1, 4, 0), "{c:?}");
    assert_eq!(report.subscribed, ["AAPL", "MSFT"], "the server's confirmations are kept");
    assert_eq!(report.latency_ns.len(), 4, "a latency sample per published bar");
    let debug = format!("{report:?}");
    assert!(!debug.contains(PKEY), "{debug}");
}

#[test]
fn polygon_auth_failed_ends_the_feed_with_the_server_message_and_no_retry() {
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        send(&mut ws, r#"[{"ev":"status","status":"connected","message":"Connected Successfully"}]"#);
        assert_eq!(read_text(&mut ws), polygon::auth_message(PKEY));
        send(&mut ws, r#"[{"ev":"status","status":"auth_failed","message":"authentication failed"}]"#);
        serve_until_gone(&mut ws);
    });
    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", SymbolId(0)).unwrap();
    let (_now, clock) = fake_clock(W0);
    let cfg = feed_cfg(port, SEC);
    assert!(!format!("{cfg:?}").contains(PKEY));
    let h = spawn(cfg, &Ingress::new(8), symbols, clock);
    let status = h.status().clone();
    let report = h.join().expect("feed thread");
    server.join().expect("server");
    assert_eq!(report.end, FeedEnd::Fatal(FatalError::AuthFailed("authentication failed".into())), "{report:?}");
    assert_eq!((report.pushed, report.reconnects, report.ws.attempts), (0, 0, 1), "{report:?}");
    assert_eq!(status.snapshot().state, SessionState::Authenticating, "never went live");
    assert!(!format!("{report:?}").contains(PKEY));
}

#[test]
fn warm_start_then_live_bars_make_one_ordered_stream_with_the_overlapping_window_once() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    // History holds 14:30..14:33; the feed starts at 14:34:00.2 with a 10 min warm start, so it
    // asks for [14:24:00.2, 14:34) and gets the four bars.
    let source = minutes("AAPL", 4);
    let history = FakeHistory::new(source);
    let calls = history.calls.clone();
    let start = W0 + 4 * MIN + SEC / 5;
    let (clock, stop, server) = serve(listener, "AM.AAPL", start, |mut ws, _, srv_now| {
        // The live stream re-sends 14:33 (the seam: same bar as history), a different version
        // of 14:32 (late: already released from history), then 14:34.
        srv_now.store(W0 + 5 * MIN + SEC / 5, Ordering::Relaxed);
        let w3 = W0 + 3 * MIN;
        let frame =
            [am("AAPL", w3, px_at(w3)), am("AAPL", W0 + 2 * MIN, 9_999), am("AAPL", W0 + 4 * MIN, px_at(W0 + 4 * MIN))];
        send(&mut ws, &format!("[{}]", frame.join(",")));
        sync(&mut ws);
        ws
    });
    let mut cfg = feed_cfg(port, SEC);
    cfg.feed.history = Some(Box::new(history));
    cfg.feed.warm_start_ns = 10 * MIN;
    let (seen, _, _, report) = run_polygon(&table, cfg, clock, stop);
    server.join().expect("server");
    let want: Vec<_> = (0..5).map(|i| (aapl.0, W0 + i * MIN, close_e9(px_at(W0 + i * MIN)))).collect();
    assert_eq!(seen, want, "history then live, in order, 14:33 once");
    assert_eq!(*calls.lock().unwrap(), [(vec!["AAPL".to_owned()], 60, start - 10 * MIN, W0 + 4 * MIN)]);
    assert_eq!((report.history_requests, report.history_bars, report.warm_start_bars), (1, 4, 4), "{report:?}");
    let c = report.counters;
    assert_eq!((c.new_windows, c.duplicates, c.late, c.released, c.gaps_filled), (5, 1, 1, 5, 0), "{c:?}");
    assert_eq!(report.latency_ns.len(), 1, "only the live bar has a frame receive time");
}

#[test]
fn after_a_reconnect_the_bars_sent_while_away_are_backfilled_exactly_once() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    // The source: AAPL minute bars 14:30..14:39. History has them all; the live server sends
    // 14:33 in the first session, skips 14:34..14:37 (the client was away), sends 14:38, 14:39.
    let source = minutes("AAPL", 10);
    let history = FakeHistory::new(source.clone());
    let calls = history.calls.clone();
    let live = |i: i64| am("AAPL", W0 + i * MIN, px_at(W0 + i * MIN));
    let (clock, stop, server) = serve(listener, "AM.AAPL", W0 + 3 * MIN + SEC / 5, move |mut ws, listener, srv_now| {
        send(&mut ws, &format!("[{}]", live(3)));
        sync(&mut ws);
        // The server drops the client; four minutes pass before it is back.
        ws.close(None).expect("close");
        serve_until_gone(&mut ws);
        drop(ws);
        srv_now.store(W0 + 8 * MIN + SEC / 5, Ordering::Relaxed);
        let mut ws = accept_advancing(listener, srv_now);
        open_session(&mut ws, "AM.AAPL"); // backfill: 14:34..14:37 from history
        srv_now.store(W0 + 9 * MIN + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{}]", live(8)));
        sync(&mut ws);
        srv_now.store(W0 + 10 * MIN + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{}]", live(9)));
        sync(&mut ws);
        ws
    });
    let mut cfg = feed_cfg(port, SEC);
    cfg.feed.history = Some(Box::new(history));
    cfg.feed.warm_start_ns = 3 * MIN + SEC; // [14:29:59.2, 14:33)
    let (seen, _, _, report) = run_polygon(&table, cfg, clock, stop);
    server.join().expect("server");
    let want: Vec<_> = source.iter().map(|(_, _, b)| (aapl.0, b.ts_event_ns, b.close_px_e9)).collect();
    assert_eq!(seen, want, "every bar of the source once, in order");
    assert_eq!((report.reconnects, report.end.clone()), (1, FeedEnd::Stopped), "{report:?}");
    let c = report.counters;
    assert_eq!(c.gaps_filled, 4, "14:34..14:37 came from the backfill: {c:?}");
    assert_eq!((c.released, c.late, c.gaps_seen), (10, 0, 0), "{c:?}");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    // The backfill starts after the last released (or pending) window and ends at the minute.
    let (_, iv, from, to) = &calls[1];
    assert_eq!((*iv, *to), (60, W0 + 8 * MIN), "{calls:?}");
    assert!(*from == W0 + 3 * MIN || *from == W0 + 4 * MIN, "{calls:?}");
}

#[test]
fn a_full_ingress_never_stops_the_socket_reader_and_nothing_is_lost_or_reordered() {
    const N: i64 = 300;
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    // Every window is long closed: each bar is final (released) the moment it arrives.
    let (_now, clock) = fake_clock(W0 + (N + 10) * MIN);
    let ingress = Ingress::new(2);
    let h = spawn(feed_cfg(port, 0), &ingress, SymbolMap::from_table(&table), clock);
    let status = h.status().clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        open_session(&mut ws, "AM.AAPL");
        // Nobody drains the 2-slot ingress yet: 300 frames, then a ping the client must answer.
        for i in 0..N {
            send(&mut ws, &format!("[{}]", am("AAPL", W0 + i * MIN, px_at(W0 + i * MIN))));
        }
        sync(&mut ws); // answered: the reader kept reading with the ingress full
        ready_tx.send(()).expect("ready");
        serve_until_gone(&mut ws);
    });
    ready_rx.recv().expect("server ready");
    // The status is stored at the end of the loop turn that read the ping.
    wait_for(|| status.snapshot().messages == N as u64 + 3);
    let s = status.snapshot();
    assert_eq!(s.state, SessionState::Live);
    assert!(s.backlog > 0, "events wait in the backlog: {s:?}");
    assert_eq!(s.messages, N as u64 + 3, "every frame was read (3 status messages): {s:?}");
    assert_eq!(ingress.rejected(), 1, "one refusal sent events to the backlog; a full ingress is not asked again");
    h.stop(); // the stop publishes the whole backlog while the run drains it
    let (seen, _, _, report) = run_pipeline(&table, &ingress, h);
    server.join().expect("server");
    let want: Vec<_> = (0..N).map(|i| (aapl.0, W0 + i * MIN, close_e9(px_at(W0 + i * MIN)))).collect();
    assert_eq!(seen, want, "nothing lost, order kept");
    assert_eq!((report.pushed, report.backlog_at_end), (N as u64, 0), "{report:?}");
    assert!(report.backlog_max >= (N - 2) as usize, "backlog_max {}", report.backlog_max);
    let s = status.snapshot();
    assert_eq!((s.bars_pushed, s.backlog, s.last_recv_ns), (N as u64, 0, W0 + (N + 10) * MIN), "{s:?}");
}

#[test]
fn subscribe_and_unsubscribe_at_runtime_send_the_documented_messages_and_warm_start_the_new_symbol() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let (aapl, msft) = (table.intern("AAPL").unwrap(), table.intern("MSFT").unwrap());
    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", aapl).unwrap(); // MSFT joins later
    let source = vec![
        ("MSFT".to_owned(), Interval::M1, bar_px(W0, 20_000)),
        ("MSFT".to_owned(), Interval::S1, bar_px(W0 + MIN, 20_010)),
    ];
    let history = FakeHistory::new(source);
    let calls = history.calls.clone();
    let (_now, clock) = fake_clock(W0 + 2 * MIN);
    let mut cfg = feed_cfg(port, SEC);
    cfg.seconds = true;
    cfg.feed.history = Some(Box::new(history));
    cfg.feed.warm_start_ns = 5 * MIN;
    let ingress = Ingress::new(64);
    let h = spawn(cfg, &ingress, symbols, clock);
    let (to_main, from_server) = mpsc::channel::<String>();
    let (to_server, from_main) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        open_session(&mut ws, "AM.AAPL,A.AAPL");
        to_main.send(String::new()).expect("live");
        from_main.recv().expect("subscribed MSFT");
        to_main.send(read_text(&mut ws)).expect("msg");
        send(&mut ws, r#"[{"ev":"status","status":"success","message":"subscribed to: AM.MSFT"}]"#);
        from_main.recv().expect("unsubscribed AAPL");
        to_main.send(read_text(&mut ws)).expect("msg");
        send(&mut ws, r#"[{"ev":"status","status":"success","message":"unsubscribed to: AM.AAPL"}]"#);
        // AAPL is no longer known; MSFT is.
        send(&mut ws, &format!("[{},{}]", am("AAPL", W0 + MIN, 10_000), am("MSFT", W0 + MIN, 20_100)));
        sync(&mut ws);
        to_main.send(String::new()).expect("done");
        serve_until_gone(&mut ws);
    });
    from_server.recv().expect("live");
    assert!(h.subscribe("MSFT", msft));
    to_server.send(()).unwrap();
    assert_eq!(from_server.recv().unwrap(), r#"{"action":"subscribe","params":"AM.MSFT,A.MSFT"}"#);
    assert!(h.unsubscribe("AAPL"));
    to_server.send(()).unwrap();
    assert_eq!(from_server.recv().unwrap(), r#"{"action":"unsubscribe","params":"AM.AAPL,A.AAPL"}"#);
    from_server.recv().expect("done");
    h.stop();
    let report = h.join().expect("feed thread");
    server.join().expect("server");
    let calls = calls.lock().unwrap();
    let msft_calls: Vec<_> = calls.iter().filter(|c| c.0 == ["MSFT"]).map(|c| (c.1, c.2, c.3)).collect();
    let from = W0 + 2 * MIN - 5 * MIN;
    assert_eq!(msft_calls, [(60, from, W0 + 2 * MIN), (1, from, W0 + 2 * MIN)], "MSFT warm started: {calls:?}");
    assert_eq!((report.commands, report.command_errors, report.warm_start_bars), (2, 0, 2), "{report:?}");
    assert_eq!(report.subscribed, ["MSFT"], "{report:?}");
    let c = report.counters;
    assert_eq!(c.unknown_symbols, 1, "the AAPL bar after the unsubscribe: {c:?}");
    // MSFT: two history bars and the live minute bar (drained on stop).
    assert_eq!((report.pushed, report.end.clone()), (3, FeedEnd::Stopped), "{report:?}");
}

#[test]
fn a_failed_history_request_is_counted_and_logged_and_the_feed_goes_on_live() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    let history = FakeHistory {
        fail: Some(HistoryError::Status { status: 500, body: "upstream timeout".into() }),
        ..FakeHistory::default()
    };
    let (clock, stop, server) = serve(listener, "AM.AAPL", W0 + MIN + SEC / 5, |mut ws, _, srv_now| {
        srv_now.store(W0 + 2 * MIN + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{}]", am("AAPL", W0 + MIN, 10_100)));
        sync(&mut ws);
        ws
    });
    let mut cfg = feed_cfg(port, SEC);
    cfg.feed.history = Some(Box::new(history));
    cfg.feed.warm_start_ns = 5 * MIN;
    let (seen, _, _, report) = run_polygon(&table, cfg, clock, stop);
    server.join().expect("server");
    assert_eq!(seen, [(aapl.0, W0 + MIN, close_e9(10_100))], "live bars still flow");
    assert_eq!((report.end.clone(), report.history_requests, report.history_errors), (FeedEnd::Stopped, 1, 1));
    assert_eq!(report.history_log, ["history request failed: HTTP 500: upstream timeout"]);
}

#[test]
fn history_refusing_the_credentials_ends_the_feed() {
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        send(&mut ws, r#"[{"ev":"status","status":"connected","message":"Connected Successfully"}]"#);
        assert_eq!(read_text(&mut ws), polygon::auth_message(PKEY));
        send(&mut ws, r#"[{"ev":"status","status":"auth_success","message":"authenticated"}]"#);
        assert_eq!(read_text(&mut ws), r#"{"action":"subscribe","params":"AM.AAPL"}"#);
        // History is asked once the server confirmed the subscription.
        send(&mut ws, r#"[{"ev":"status","status":"success","message":"subscribed to: AM.AAPL"}]"#);
        serve_until_gone(&mut ws);
    });
    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", SymbolId(0)).unwrap();
    let (_now, clock) = fake_clock(W0 + MIN);
    let mut cfg = feed_cfg(port, SEC);
    cfg.feed.history =
        Some(Box::new(FakeHistory { fail: Some(HistoryError::Auth { status: 401 }), ..FakeHistory::default() }));
    cfg.feed.warm_start_ns = 5 * MIN;
    let report = spawn(cfg, &Ingress::new(8), symbols, clock).join().expect("feed thread");
    server.join().expect("server");
    assert_eq!(report.end, FeedEnd::Fatal(FatalError::History(HistoryError::Auth { status: 401 })), "{report:?}");
    assert_eq!((report.pushed, report.reconnects), (0, 0));
}

#[test]
fn history_in_batches_of_one_symbol_keeps_each_symbols_stream_in_order() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let (aapl, msft) = (table.intern("AAPL").unwrap(), table.intern("MSFT").unwrap());
    let history = FakeHistory::new([minutes("AAPL", 3), minutes("MSFT", 3)].concat());
    let calls = history.calls.clone();
    let w3 = W0 + 3 * MIN;
    let (clock, stop, server) = serve(listener, "AM.AAPL,AM.MSFT", w3 + SEC / 5, move |mut ws, _, srv_now| {
        srv_now.store(w3 + MIN + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{},{}]", am("MSFT", w3, px_at(w3)), am("AAPL", w3, px_at(w3))));
        sync(&mut ws);
        ws
    });
    let mut cfg = feed_cfg(port, SEC);
    cfg.feed.history = Some(Box::new(history));
    cfg.feed.warm_start_ns = 4 * MIN;
    cfg.feed.history_chunk = 1;
    let (seen, _, _, report) = run_polygon(&table, cfg, clock, stop);
    server.join().expect("server");
    let names: Vec<_> = calls.lock().unwrap().iter().map(|c| c.0.clone()).collect();
    assert_eq!(names, [["AAPL"], ["MSFT"]], "one request per batch");
    let bars = |s: SymbolId| (0..4).map(move |i| (s.0, W0 + i * MIN, close_e9(px_at(W0 + i * MIN))));
    let mut want: Vec<_> = bars(aapl).take(3).chain(bars(msft).take(3)).collect();
    want.extend([(aapl.0, w3, close_e9(px_at(w3))), (msft.0, w3, close_e9(px_at(w3)))]);
    assert_eq!(seen, want, "AAPL's history, MSFT's history, then the live windows (drained on stop)");
    assert_eq!((report.warm_start_bars, report.counters.released), (6, 8), "{report:?}");
}
