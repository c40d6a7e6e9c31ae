//! The Alpaca feed thread end to end: a local websocket server on 127.0.0.1 (plain, and TLS
//! with a generated root) speaking the Alpaca stream protocol, the real feed thread, and a real
//! `pipeline::run` fed by its ingress.
//!
//! The feed's clock is a fake one the server thread moves between phases. Each phase ends with
//! a websocket ping the server waits to see answered: the client reads (and the feed decodes,
//! gates and pushes) every frame before the ping, so each frame's receive time is exactly the
//! phase's clock.

use engine::pipeline::config::EngineConfig;
use engine::pipeline::{Ingress, Next, RunOutput, RunSpec, Source, run};
use engine::records::{Bar, Quote, Trade};
use engine::strategy::{Ctx, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use feeds::alpaca_feed::{
    AlpacaFeedConfig, FatalError, FeedEnd, FeedHandle, FeedReport, SharedClock, THREAD_NAME, spawn_alpaca_feed,
};
use feeds::credentials::Secret;
use feeds::feed::FeedConfig;
use feeds::ws::{TlsConfig, WsConfig};
use feeds::{AlpacaError, GateConfig, SymbolMap, alpaca};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

pub(crate) const SEC: i64 = 1_000_000_000;
pub(crate) const MIN: i64 = 60 * SEC;
/// 2024-03-01T14:30:00Z.
pub(crate) const W0: i64 = 1_709_303_400 * SEC;
const QUOTE: &str = r#"{"T":"q","S":"AAPL","bx":"V","bp":100.10,"bs":2,"ax":"V","ap":100.12,"as":3,"t":"2024-03-01T14:31:00.1Z","c":["R"],"z":"C"}"#;
const TRADE: &str =
    r#"{"T":"t","S":"AAPL","i":52983525,"x":"V","p":100.11,"s":100,"t":"2024-03-01T14:31:00.15Z","c":["@"],"z":"C"}"#;
pub(crate) const KEY: &str = "PKTESTKEY";
const SECRET: &str = "s3cr3t-never-printed";

pub(crate) type Ws = WebSocket<std::net::TcpStream>;

pub(crate) fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

pub(crate) fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = listener.accept().expect("accept");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    tungstenite::accept(tcp).expect("server handshake")
}

/// Accept the client's next connection while moving its clock on by 100 ms every 5 ms (of real
/// time): its reconnect is due on its own clock, whenever it noticed the close. Gives up after 5 s.
pub(crate) fn accept_advancing(listener: &TcpListener, now: &AtomicI64) -> Ws {
    listener.set_nonblocking(true).expect("nonblocking");
    for _ in 0..1_000 {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).expect("blocking");
                tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                return tungstenite::accept(tcp).expect("server handshake");
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                now.fetch_add(SEC / 10, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    panic!("the client did not reconnect");
}

/// Sets the feed's stop flag when the server thread ends, even by a failed assertion (the run
/// would otherwise wait for the feed forever).
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The next text message from the client (pings are answered by tungstenite).
pub(crate) fn read_text<S: Read + Write>(ws: &mut WebSocket<S>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).expect("utf8"),
            _ => {}
        }
    }
}

/// Ping and wait for the pong: the client has read every frame sent before.
pub(crate) fn sync<S: Read + Write>(ws: &mut WebSocket<S>) {
    ws.send(Message::Ping(vec![42].into())).expect("ping");
    loop {
        if let Message::Pong(_) = ws.read().expect("read") {
            return;
        }
    }
}

pub(crate) fn send<S: Read + Write>(ws: &mut WebSocket<S>, text: &str) {
    ws.send(Message::text(text)).expect("send");
}

/// Read until the client goes away (or 5 s pass).
pub(crate) fn serve_until_gone<S: Read + Write>(ws: &mut WebSocket<S>) {
    while ws.read().is_ok() {}
}

/// A minute bar message; `px` in cents sets every price (close = `px` + 1 cent).
fn bar(ty: &str, sym: &str, start_ns: i64, px: i64) -> String {
    let t = jiff::Timestamp::from_nanosecond(i128::from(start_ns)).expect("ts");
    let p = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    format!(
        r#"{{"T":"{ty}","S":"{sym}","o":{o},"h":{h},"l":{l},"c":{c},"v":100,"t":"{t}","n":10,"vw":{o}}}"#,
        o = p(px),
        h = p(px + 5),
        l = p(px - 5),
        c = p(px + 1),
    )
}

/// Close price in e9 of [`bar`]'s `px`.
pub(crate) fn close_e9(px: i64) -> i64 {
    (px + 1) * 10_000_000
}

/// Records (symbol, window start, close) of every bar it is given, and counts quotes and trades.
#[derive(Clone)]
pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<(u32, i64, i64)>>>, pub(crate) Arc<Mutex<(u32, u32)>>);
impl Strategy for Recorder {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, b: &Bar) {
        self.0.lock().unwrap().push((ctx.symbol().0, b.ts_event_ns, b.close_px_e9));
    }
    fn on_quote(&mut self, _ctx: &mut Ctx<'_>, _q: &Quote) {
        self.1.lock().unwrap().0 += 1;
    }
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _t: &Trade) {
        self.1.lock().unwrap().1 += 1;
    }
}
impl StrategyFactory for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn build(&self, _s: &str) -> Box<dyn Strategy> {
        Box::new(self.clone())
    }
}

/// The run's primary source: idle until the feed thread has finished (its last push is then in
/// the ingress, which the sequencer drains first).
/// (The sequencer asks this source only when the ingress is empty; a thread seen finished gets
/// one more turn so its last pushes, made before it finished, are drained before the end.)
pub(crate) struct UntilFinished<'h>(pub(crate) &'h FeedHandle, pub(crate) bool);
impl Source for UntilFinished<'_> {
    fn next(&mut self) -> Next {
        if self.1 {
            return Next::End;
        }
        self.1 = self.0.is_finished();
        Next::Idle
    }
}

fn feed_cfg(port: u16, secret: &str, grace_ns: i64) -> AlpacaFeedConfig {
    let mut cfg = AlpacaFeedConfig::new(
        format!("ws://127.0.0.1:{port}/v2/iex"),
        TlsConfig::Plain,
        Secret::new(KEY),
        Secret::new(secret),
    );
    test_timers(&mut cfg.feed, grace_ns);
    cfg
}

/// Transport timers for a fake clock that jumps by minutes (no pings, no dead-connection or
/// connect timeouts, a 1 s backoff), the gate's grace, a 5 ms loop bound.
pub(crate) fn test_timers(cfg: &mut FeedConfig, grace_ns: i64) {
    const HOUR: i64 = 60 * MIN;
    cfg.ws = WsConfig {
        ping_interval_ns: HOUR,
        dead_after_ns: 2 * HOUR,
        connect_timeout_ns: 2 * HOUR,
        backoff_base_ns: SEC,
        backoff_cap_ns: SEC,
        jitter_seed: 3,
    };
    cfg.gate = GateConfig { grace_ns, release_on_later: false };
    cfg.max_wait_ns = 5_000_000;
}

pub(crate) fn fake_clock(at: i64) -> (Arc<AtomicI64>, SharedClock) {
    let now = Arc::new(AtomicI64::new(at));
    let n = now.clone();
    (now, Arc::new(move || n.load(Ordering::Relaxed)))
}

/// Seen bars (symbol, start, close), quotes and trades seen, the run's output and the feed's report.
pub(crate) type Outcome = (Vec<(u32, i64, i64)>, (u32, u32), RunOutput, FeedReport);

/// Spawn the feed into an 8-slot ingress and run the pipeline (one shard, a recording strategy)
/// until the feed thread ends.
fn run_feed(table: &SymbolTable, cfg: AlpacaFeedConfig, clock: SharedClock, stop: Arc<AtomicBool>) -> Outcome {
    let ingress = Ingress::new(8);
    let handle = spawn_alpaca_feed(cfg, ingress.clone(), SymbolMap::from_table(table), clock, stop).expect("spawn");
    assert_eq!(handle.thread().name(), Some(THREAD_NAME));
    run_pipeline(table, &ingress, handle)
}

/// Run the pipeline (one shard, a recording strategy) on `ingress` until the feed thread ends.
pub(crate) fn run_pipeline(table: &SymbolTable, ingress: &Ingress, handle: FeedHandle) -> Outcome {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ticks = Arc::new(Mutex::new((0, 0)));
    let factory = Recorder(seen.clone(), ticks.clone());
    let mut engine_cfg = EngineConfig::default();
    engine_cfg.pipeline.shards = 1; // one shard thread sees every bar in sequence order
    let spec = RunSpec::new(&engine_cfg, table, &factory).ingress(ingress.clone());
    let r = run(spec, UntilFinished(&handle, false), &mut |_| {}).expect("run");
    let report = handle.join().expect("feed thread");
    // Refused `try_push`es are retried from the feed's backlog, never lost.
    assert_eq!(report.backlog_at_end, 0, "{report:?}");
    let (seen, ticks) = (seen.lock().unwrap().clone(), *ticks.lock().unwrap());
    (seen, ticks, r, report)
}

/// The server's side of a session up to the subscription reply (AAPL bars only).
fn open_session<S: Read + Write>(ws: &mut WebSocket<S>) {
    send(ws, r#"[{"T":"success","msg":"connected"}]"#);
    assert_eq!(read_text(ws), alpaca::auth_message(KEY, SECRET));
    send(ws, r#"[{"T":"success","msg":"authenticated"}]"#);
    let sub: serde_json::Value = serde_json::from_str(&read_text(ws)).expect("subscribe JSON");
    assert_eq!(
        (&sub["action"], &sub["bars"], &sub["updatedBars"]),
        (&"subscribe".into(), &serde_json::json!(["AAPL"]), &serde_json::json!(["AAPL"]))
    );
    send(ws, r#"[{"T":"subscription","trades":[],"quotes":[],"bars":["AAPL"],"updatedBars":["AAPL"],"dailyBars":[]}]"#);
}

#[test]
fn after_a_reconnect_the_feed_authenticates_and_subscribes_again_and_a_resent_bar_is_a_duplicate() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    let (now, clock) = fake_clock(W0 + MIN + SEC / 5);
    let stop = Arc::new(AtomicBool::new(false));
    let (srv_now, srv_stop) = (now.clone(), stop.clone());
    let server = thread::spawn(move || {
        let _stop = StopOnDrop(srv_stop.clone());
        let mut ws = accept(&listener);
        open_session(&mut ws);
        send(&mut ws, &format!("[{}]", bar("b", "AAPL", W0, 10_000)));
        sync(&mut ws);
        // The server goes away; the client backs off (at most 1 s of its clock), then reconnects.
        // Its clock moves on, but by less than the 30 s grace.
        ws.close(None).expect("close");
        serve_until_gone(&mut ws);
        drop(ws); // the TCP close: the client sees the connection end now
        let mut ws = accept_advancing(&listener, &srv_now);
        open_session(&mut ws);
        // The new session resends the 14:30 bar (a duplicate) and then 14:31.
        send(&mut ws, &format!("[{},{}]", bar("b", "AAPL", W0, 10_000), bar("b", "AAPL", W0 + MIN, 10_100)));
        sync(&mut ws);
        srv_stop.store(true, Ordering::Relaxed);
        serve_until_gone(&mut ws);
    });
    // A 30 s grace: nothing is final before the stop drains the gates.
    let (seen, _, _, report) = run_feed(&table, feed_cfg(port, SECRET, 30 * SEC), clock, stop);
    server.join().expect("server");
    assert_eq!(seen, [(aapl.0, W0, close_e9(10_000)), (aapl.0, W0 + MIN, close_e9(10_100))]);
    assert_eq!((report.end.clone(), report.reconnects, report.ws.opens), (FeedEnd::Stopped, 1, 2), "{report:?}");
    let c = report.counters;
    assert_eq!((c.new_windows, c.duplicates, c.late, c.released), (2, 1, 0, 2), "{c:?}");
    assert_eq!(report.subscribed, ["AAPL"]);
}

#[test]
fn bars_flow_from_the_stream_through_the_gates_into_a_pipeline_run_exactly_once_in_order() {
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let (aapl, msft) = (table.intern("AAPL").unwrap(), table.intern("MSFT").unwrap());
    let (now, clock) = fake_clock(W0 + 30 * SEC);
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2, w3) = (W0 + MIN, W0 + 2 * MIN, W0 + 3 * MIN);

    let (srv_now, srv_stop) = (now.clone(), stop.clone());
    let server = thread::spawn(move || {
        let _stop = StopOnDrop(srv_stop.clone());
        let mut ws = accept(&listener);
        send(&mut ws, r#"[{"T":"success","msg":"connected"}]"#);
        assert_eq!(read_text(&mut ws), alpaca::auth_message(KEY, SECRET));
        send(&mut ws, r#"[{"T":"success","msg":"authenticated"}]"#);
        let sub: serde_json::Value = serde_json::from_str(&read_text(&mut ws)).expect("subscribe JSON");
        assert_eq!(sub["action"], "subscribe");
        for ch in ["bars", "updatedBars", "quotes", "trades"] {
            let mut got: Vec<&str> = sub[ch].as_array().expect(ch).iter().map(|v| v.as_str().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, ["AAPL", "MSFT"], "{ch}");
        }
        let reply = r#"[{"T":"subscription","trades":[],"quotes":[],"bars":["AAPL","MSFT"],"updatedBars":["AAPL","MSFT"],"dailyBars":[]}]"#;
        send(&mut ws, reply);

        // 14:31:00.2: window 14:30 closed, inside its 1 s grace. Both symbols' 14:30 bars, an
        // exact duplicate, then an updated bar `u` for AAPL 14:30: all pending, nothing released.
        srv_now.store(w1 + SEC / 5, Ordering::Relaxed);
        let frame = [bar("b", "AAPL", W0, 10_000), bar("b", "MSFT", W0, 20_000), bar("b", "AAPL", W0, 10_000)];
        send(&mut ws, &format!("[{}]", frame.join(",")));
        send(&mut ws, &format!("[{}]", bar("u", "AAPL", W0, 10_050)));
        // A quote and a trade go straight through (no gate).
        send(&mut ws, &format!("[{QUOTE},{TRADE}]"));
        sync(&mut ws);

        // 14:32:00.2: 14:30 is final (released in order, AAPL with the updated values); the
        // 14:31 bars are pending; a 14:29 MSFT bar arrives out of order after 14:30: late.
        srv_now.store(w2 + SEC / 5, Ordering::Relaxed);
        let frame = [bar("b", "AAPL", w1, 10_100), bar("b", "MSFT", w1, 20_100), bar("b", "MSFT", W0 - MIN, 19_900)];
        send(&mut ws, &format!("[{}]", frame.join(",")));
        sync(&mut ws);

        // 14:33:00.5: 14:31 is final; AAPL 14:32 stays pending until the stop drains it.
        srv_now.store(w3 + SEC / 2, Ordering::Relaxed);
        send(&mut ws, &format!("[{}]", bar("b", "AAPL", w2, 10_200)));
        sync(&mut ws);
        srv_stop.store(true, Ordering::Relaxed);
        serve_until_gone(&mut ws);
    });

    let mut cfg = feed_cfg(port, SECRET, SEC);
    (cfg.quotes, cfg.trades) = (true, true);
    let (seen, ticks, r, report) = run_feed(&table, cfg, clock, stop);
    server.join().expect("server");

    let want = vec![
        (aapl.0, W0, close_e9(10_050)), // the updated bar's values, not the first version's
        (msft.0, W0, close_e9(20_000)),
        (aapl.0, w1, close_e9(10_100)),
        (msft.0, w1, close_e9(20_100)),
        (aapl.0, w2, close_e9(10_200)), // released by the drain on stop
    ];
    assert_eq!(seen, want, "every bar exactly once, in time order, updated");
    assert_eq!(r.bars, want.len() as u64);
    assert_eq!((report.end.clone(), report.pending_at_end), (FeedEnd::Stopped, 0), "{report:?}");
    assert_eq!(report.pushed, want.len() as u64 + 2, "five bars, a quote and a trade");
    assert_eq!(ticks, (1, 1), "the strategy saw the quote and the trade");
    assert_eq!((report.counters.quotes, report.counters.trades), (1, 1));
    let c = report.counters;
    assert_eq!((c.bars, c.updated_bars), (8, 1), "{c:?}");
    assert_eq!((c.new_windows, c.duplicates, c.updated, c.late, c.released), (5, 1, 1, 1, 5), "{c:?}");
    assert_eq!((c.parse_errors, c.unknown_symbols), (0, 0), "{c:?}");
    assert_eq!((report.reconnects, report.ws.opens, report.server_errors), (0, 1, 0));
    assert_eq!(report.subscribed, ["AAPL", "MSFT"], "the server's confirmation is kept");
    assert_eq!(report.latency_ns.len(), report.pushed, "one latency sample per live event");
}

#[test]
fn wrong_credentials_end_the_feed_with_the_typed_error_and_push_nothing() {
    let (listener, port) = listener();
    let bad_secret = "wrong-secret-4f1c";
    let stop = Arc::new(AtomicBool::new(false));
    let srv_stop = stop.clone();
    let server = thread::spawn(move || {
        let _stop = StopOnDrop(srv_stop); // a failed assertion must not leave the feed retrying
        let mut ws = accept(&listener);
        send(&mut ws, r#"[{"T":"success","msg":"connected"}]"#);
        assert_eq!(read_text(&mut ws), alpaca::auth_message(KEY, bad_secret));
        send(&mut ws, r#"[{"T":"error","code":402,"msg":"auth failed"}]"#);
        // A bar the server should never have sent: it must not reach the ingress either way.
        send(&mut ws, &format!("[{}]", bar("b", "AAPL", W0, 10_000)));
        serve_until_gone(&mut ws);
    });
    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", engine::records::SymbolId(0)).unwrap();
    let (_now, clock) = fake_clock(W0 + 30 * SEC);
    let cfg = feed_cfg(port, bad_secret, SEC);
    let cfg_debug = format!("{cfg:?}");
    assert!(!cfg_debug.contains(bad_secret), "{cfg_debug}");
    let ingress = Ingress::new(8);
    let handle = spawn_alpaca_feed(cfg, ingress, symbols, clock, stop).expect("spawn");
    let report = handle.join().expect("feed thread");
    server.join().expect("server");
    assert_eq!(report.end, FeedEnd::Fatal(FatalError::Alpaca(AlpacaError::AuthFailed)), "{report:?}");
    assert_eq!(report.pushed, 0, "{report:?}");
    assert_eq!(report.counters.released, 0, "{report:?}");
    assert!(report.pending_at_end <= 1, "at most the bar sent after the error, never pushed: {report:?}");
    assert_eq!(report.reconnects, 0, "402 is fatal: no retry");
    let debug = format!("{report:?}");
    assert!(!debug.contains(bad_secret) && !debug.contains(KEY), "{debug}");
}

/// A self-signed certificate for 127.0.0.1: its PEM (the client's extra root) and a rustls
/// server config (ring) serving it.
fn cert() -> (String, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("rcgen");
    let der: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server cert");
    (ck.cert.pem(), Arc::new(cfg))
}

#[test]
fn the_feed_speaks_tls_to_a_local_exchange_with_its_generated_root() {
    let (pem, server_cfg) = cert();
    let (listener, port) = listener();
    let mut table = SymbolTable::new();
    let aapl = table.intern("AAPL").unwrap();
    let (now, clock) = fake_clock(W0 + MIN + SEC / 5);
    let stop = Arc::new(AtomicBool::new(false));
    let (srv_now, srv_stop) = (now.clone(), stop.clone());
    let server = thread::spawn(move || {
        let _stop = StopOnDrop(srv_stop.clone());
        let (tcp, _) = listener.accept().expect("accept");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let tls = rustls::StreamOwned::new(rustls::ServerConnection::new(server_cfg).expect("tls"), tcp);
        let mut ws = tungstenite::accept(tls).expect("server handshake");
        open_session(&mut ws);
        send(&mut ws, &format!("[{}]", bar("b", "AAPL", W0, 10_000)));
        sync(&mut ws);
        // 14:31:01.2: the 14:30 window is final, released by the loop's flush.
        srv_now.store(W0 + MIN + SEC + SEC / 5, Ordering::Relaxed);
        send(&mut ws, &format!("[{}]", bar("b", "AAPL", W0 + MIN, 10_100)));
        sync(&mut ws);
        srv_stop.store(true, Ordering::Relaxed);
        serve_until_gone(&mut ws);
    });
    let mut cfg = feed_cfg(port, SECRET, SEC);
    cfg.feed.url = format!("wss://127.0.0.1:{port}/v2/iex");
    cfg.feed.tls = TlsConfig::with_extra_root_pem(pem);
    let (seen, _, _, report) = run_feed(&table, cfg, clock, stop);
    server.join().expect("server");
    assert_eq!(seen, [(aapl.0, W0, close_e9(10_000)), (aapl.0, W0 + MIN, close_e9(10_100))]);
    assert_eq!((report.end.clone(), report.ws.opens, report.pushed), (FeedEnd::Stopped, 1, 2), "{report:?}");
}

#[test]
fn a_symbol_added_and_one_removed_at_runtime_send_alpaca_subscribe_and_unsubscribe_messages() {
    let (listener, port) = listener();
    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", engine::records::SymbolId(0)).unwrap();
    let (_now, clock) = fake_clock(W0 + 30 * SEC);
    let stop = Arc::new(AtomicBool::new(false));
    let h = spawn_alpaca_feed(feed_cfg(port, SECRET, SEC), Ingress::new(8), symbols, clock, stop).expect("spawn");
    let (to_main, from_server) = std::sync::mpsc::channel::<String>();
    let (to_server, from_main) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        open_session(&mut ws);
        sync(&mut ws);
        for _ in 0..2 {
            to_main.send(String::new()).expect("ready");
            from_main.recv().expect("command sent");
            to_main.send(read_text(&mut ws)).expect("message");
        }
        let reply =
            r#"[{"T":"subscription","trades":[],"quotes":[],"bars":["MSFT"],"updatedBars":["MSFT"],"dailyBars":[]}]"#;
        send(&mut ws, reply);
        sync(&mut ws);
        to_main.send(String::new()).expect("done");
        serve_until_gone(&mut ws);
    });
    let only = |s: &str| vec![s.to_owned()];
    let ch = |s: &str| feeds::AlpacaChannels { bars: only(s), updated_bars: only(s), ..Default::default() };
    from_server.recv().expect("live");
    assert!(h.subscribe("MSFT", engine::records::SymbolId(1)));
    to_server.send(()).unwrap();
    assert_eq!(from_server.recv().unwrap(), alpaca::subscribe_message(alpaca::Action::Subscribe, &ch("MSFT")));
    from_server.recv().expect("ready");
    assert!(h.unsubscribe("AAPL"));
    to_server.send(()).unwrap();
    assert_eq!(from_server.recv().unwrap(), alpaca::subscribe_message(alpaca::Action::Unsubscribe, &ch("AAPL")));
    from_server.recv().expect("done");
    h.stop();
    let report = h.join().expect("feed thread");
    server.join().expect("server");
    assert_eq!((report.commands, report.command_errors, report.end.clone()), (2, 0, FeedEnd::Stopped), "{report:?}");
    assert_eq!(report.subscribed, ["MSFT"], "the server's last confirmation");
}
