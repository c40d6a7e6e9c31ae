//! The local exchange over real loopback sockets: plain websocket clients (tungstenite over std
//! `TcpStream`), raw HTTP/1.1 requests, one TLS client trusting the generated certificate. Frames
//! are decoded with the feeds crate's protocol layer, the code the real clients run. Small data (a
//! few symbols, a few hundred minute bars) at a high market speed; no timed assertions beyond
//! lower bounds the exchange guarantees (a stall or a REST delay cannot end early).

use engine::records::{Bar, Interval, SymbolId};
use feeds::alpaca::decode_bars_page;
use feeds::polygon::decode_aggs_page;
use feeds::{AlpacaError, BarKind, Control, FeedCounters, FeedMsg, RejectKind, SymbolMap};
use ringtape_tools::exchange::{
    DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, ExchangeHandle, Fault, MarketClock, Scenario, Tape,
};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// 2024-03-01T14:30:00Z.
const T0: i64 = 1_709_303_400_000_000_000;
const MIN: i64 = 60_000_000_000;
const SYMS: [&str; 3] = ["AAA", "BBB", "CCC"];

fn bars(sym: usize, n: usize, step_ns: i64) -> Vec<Bar> {
    (0..n as i64)
        .map(|i| {
            let open = 100_000_000_000 + (sym as i64) * 7_000_000_000 + (i % 50) * 10_000_000;
            Bar {
                ts_event_ns: T0 + i * step_ns,
                open_px_e9: open,
                high_px_e9: open + 50_000_000,
                low_px_e9: open - 50_000_000,
                close_px_e9: open + 10_000_000,
                volume: 100 + i as u64,
            }
        })
        .collect()
}

fn minute_tape(n: usize) -> Arc<Tape> {
    let series = SYMS.iter().enumerate().map(|(i, s)| (s.to_string(), 60, bars(i, n, MIN))).collect();
    Arc::new(Tape::from_series(series).unwrap())
}

/// An exchange over 3 symbols x 300 minute bars, starting at T0 + 60 min, 20 market minutes per
/// wall second.
fn start_with(f: impl FnOnce(&mut ExchangeConfig)) -> ExchangeHandle {
    let mut cfg = ExchangeConfig {
        tape: Some(minute_tape(300)),
        speed: 1200.0,
        start_ns: Some(T0 + 60 * MIN),
        plain: true,
        ..ExchangeConfig::default()
    };
    f(&mut cfg);
    Exchange::start(cfg).unwrap()
}

fn start() -> ExchangeHandle {
    start_with(|_| {})
}

fn symbol_map() -> SymbolMap {
    let mut m = SymbolMap::new();
    for (i, s) in SYMS.iter().enumerate() {
        m.insert(s, SymbolId(i as u32)).unwrap();
    }
    m
}

fn source_bar(ex: &ExchangeHandle, sym: SymbolId, ts: i64) -> Bar {
    let s = &ex.tape().symbols[sym.0 as usize];
    *s.minute.iter().find(|b| b.ts_event_ns == ts).expect("bar from the source")
}

/// A wall-clock stopwatch for the lower-bound checks (a stall or delay cannot end early).
#[allow(clippy::disallowed_methods)] // measuring the exchange's wall-clock faults is the point here
fn stopwatch() -> Instant {
    Instant::now()
}

// ---- websocket client ---------------------------------------------------------------------------

type Ws = WebSocket<TcpStream>;

fn ws_connect(ex: &ExchangeHandle, path: &str) -> Result<Ws, u16> {
    let tcp = TcpStream::connect(ex.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    match tungstenite::client(format!("ws://{}{path}", ex.addr()), tcp) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

/// The next data frame; `None` when the connection ended.
fn frame(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.as_bytes().to_vec()),
            Ok(Message::Binary(b)) => return Some(b.to_vec()),
            Ok(Message::Close(_)) => continue,
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

struct Decoder {
    symbols: SymbolMap,
    counters: FeedCounters,
    polygon: bool,
}

impl Decoder {
    fn alpaca() -> Self {
        Decoder { symbols: symbol_map(), counters: FeedCounters::default(), polygon: false }
    }
    fn polygon() -> Self {
        Decoder { symbols: symbol_map(), counters: FeedCounters::default(), polygon: true }
    }
    fn next(&mut self, ws: &mut Ws) -> Vec<FeedMsg> {
        let f = frame(ws).expect("connection open");
        self.decode(&f)
    }
    fn decode(&mut self, f: &[u8]) -> Vec<FeedMsg> {
        let mut out = Vec::new();
        if self.polygon {
            feeds::polygon::decode_stream(f, 0, &self.symbols, &mut self.counters, &mut out);
        } else {
            feeds::alpaca::decode_stream(f, 0, &self.symbols, &mut self.counters, &mut out);
        }
        out
    }
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string())).unwrap();
}

fn control(msgs: &[FeedMsg]) -> Vec<Control> {
    msgs.iter()
        .filter_map(|m| match m {
            FeedMsg::Control(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn alpaca_error(msgs: &[FeedMsg]) -> Option<AlpacaError> {
    control(msgs).into_iter().find_map(|c| match c {
        Control::Error(e, _) => Some(e),
        _ => None,
    })
}

/// Connect to the Alpaca stream and authenticate with the demo credentials.
fn alpaca_session(ex: &ExchangeHandle, d: &mut Decoder) -> Ws {
    let mut ws = ws_connect(ex, "/v2/iex").unwrap();
    assert_eq!(control(&d.next(&mut ws)), vec![Control::Connected]);
    send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET));
    assert_eq!(control(&d.next(&mut ws)), vec![Control::Authenticated]);
    ws
}

fn subscribe_all(ws: &mut Ws, d: &mut Decoder) {
    send(ws, r#"{"action":"subscribe","bars":["*"],"updatedBars":["*"]}"#);
    let msgs = d.next(ws);
    assert!(matches!(&control(&msgs)[..], [Control::Subscription(_)]), "{msgs:?}");
}

/// Bars (with their kind) until `stop` says enough.
fn read_bars(
    ws: &mut Ws,
    d: &mut Decoder,
    mut stop: impl FnMut(&[(BarKind, SymbolId, Bar)]) -> bool,
) -> Vec<(BarKind, SymbolId, Bar)> {
    let mut seen = Vec::new();
    for _ in 0..2000 {
        for m in d.next(ws) {
            if let FeedMsg::Bar(b) = m {
                seen.push((b.kind, b.symbol, b.bar));
            }
        }
        if stop(&seen) {
            return seen;
        }
    }
    panic!("condition not reached in 2000 frames");
}

// ---- HTTP client ---------------------------------------------------------------------------------

/// A keep-alive HTTP/1.1 connection (reads Content-Length bodies).
struct Http<S> {
    s: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Http<S> {
    fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        self.request("GET", target, headers, b"")
    }

    fn request(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.s.write_all(req.as_bytes()).unwrap();
        self.s.write_all(body).unwrap();
        self.s.flush().unwrap();
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                    })
                    .expect("Content-Length");
                while self.buf.len() < end + 4 + len {
                    let n = self.s.read(&mut chunk).unwrap();
                    assert!(n > 0, "connection closed mid-body");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = self.buf[end + 4..end + 4 + len].to_vec();
                self.buf.drain(..end + 4 + len);
                return (status, body);
            }
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before the response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn http(ex: &ExchangeHandle) -> Http<TcpStream> {
    let s = TcpStream::connect(ex.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Http { s, buf: Vec::new() }
}

const ALPACA_AUTH: [(&str, &str); 2] = [("APCA-API-KEY-ID", DEMO_KEY), ("APCA-API-SECRET-KEY", DEMO_SECRET)];

fn clock_of(h: &mut Http<impl Read + Write>) -> MarketClock {
    let (st, body) = h.get("/control/clock", &[]);
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["market_now_ns"].as_i64().unwrap() >= v["market_start_ns"].as_i64().unwrap());
    serde_json::from_slice(&body).unwrap()
}

// ---- Alpaca stream ------------------------------------------------------------------------------

#[test]
fn alpaca_stream_bars_and_quotes_decode_and_match_the_source() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    send(&mut ws, r#"{"action":"subscribe","bars":["AAA","BBB"],"quotes":["AAA"],"trades":["AAA"]}"#);
    let msgs = d.next(&mut ws);
    let Some(Control::Subscription(ch)) = control(&msgs).pop() else { panic!("{msgs:?}") };
    assert_eq!(
        (ch.bars, ch.quotes, ch.trades),
        (vec!["AAA".to_string(), "BBB".into()], vec!["AAA".to_string()], vec!["AAA".to_string()])
    );
    let mut quotes = 0;
    let mut got: Vec<(SymbolId, Bar)> = Vec::new();
    while got.len() < 8 {
        let msgs = d.next(&mut ws);
        let now = ex.clock().now_ns();
        for m in msgs {
            match m {
                FeedMsg::Bar(b) => {
                    assert_eq!(b.kind, BarKind::Closed);
                    assert!(b.bar.ts_event_ns + MIN <= now, "a bar from the market future");
                    assert!(b.bar.ts_event_ns + MIN > T0 + 60 * MIN, "history is not streamed");
                    assert_eq!(b.bar, source_bar(&ex, b.symbol, b.bar.ts_event_ns));
                    assert_ne!(b.symbol, SymbolId(2), "CCC was not subscribed");
                    got.push((b.symbol, b.bar));
                }
                FeedMsg::Quote { symbol, quote, .. } => {
                    assert_eq!(symbol, SymbolId(0));
                    let src = source_bar(&ex, symbol, quote.ts_event_ns - MIN);
                    assert_eq!(
                        (quote.bid_px_e9, quote.ask_px_e9),
                        (src.close_px_e9 - 10_000_000, src.close_px_e9 + 10_000_000)
                    );
                    quotes += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(quotes > 0);
    // In time order, each (symbol, window) once.
    let keys: Vec<(i64, u32)> = got.iter().map(|(s, b)| (b.ts_event_ns, s.0)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted);
    assert_eq!(d.counters.parse_errors, 0);
    // Unsubscribe echoes the full remaining set.
    send(&mut ws, r#"{"action":"unsubscribe","bars":["BBB"]}"#);
    let sub = loop {
        if let Some(Control::Subscription(ch)) = control(&d.next(&mut ws)).pop() {
            break ch;
        }
    };
    assert_eq!(sub.bars, vec!["AAA".to_string()]);
}

#[test]
fn alpaca_wrong_key_gets_402_and_close() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = ws_connect(&ex, "/v2/sip").unwrap();
    d.next(&mut ws);
    send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, "wrong"));
    assert_eq!(alpaca_error(&d.next(&mut ws)), Some(AlpacaError::AuthFailed));
    assert!(frame(&mut ws).is_none(), "closed after 402");
    assert_eq!(ex.stats().auth_failed, 1);
}

#[test]
fn alpaca_second_connection_gets_406() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let _first = alpaca_session(&ex, &mut d);
    let mut ws = ws_connect(&ex, "/v2/test").unwrap();
    d.next(&mut ws);
    send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET));
    let msgs = d.next(&mut ws);
    assert_eq!(alpaca_error(&msgs), Some(AlpacaError::ConnectionLimitExceeded));
    assert!(matches!(&control(&msgs)[0], Control::Error(_, m) if m == "connection limit exceeded"));
    assert!(frame(&mut ws).is_none(), "closed after 406");
    assert_eq!(ex.stats().rejected_406, 1);
}

#[test]
fn alpaca_protocol_errors_401_403_404() {
    let ex = start_with(|c| c.auth_timeout_s = 0.3);
    let mut d = Decoder::alpaca();
    let mut ws = ws_connect(&ex, "/v2/iex").unwrap();
    d.next(&mut ws);
    send(&mut ws, r#"{"action":"subscribe","bars":["AAA"]}"#);
    assert_eq!(alpaca_error(&d.next(&mut ws)), Some(AlpacaError::NotAuthenticated));
    send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET));
    d.next(&mut ws);
    send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET));
    assert_eq!(alpaca_error(&d.next(&mut ws)), Some(AlpacaError::AlreadyAuthenticated));
    send(&mut ws, "not json");
    assert_eq!(alpaca_error(&d.next(&mut ws)), Some(AlpacaError::InvalidSyntax));
    // A client that never authenticates is dropped with 404.
    let mut idle = ws_connect(&ex, "/v2/iex").unwrap();
    d.next(&mut idle);
    assert_eq!(alpaca_error(&d.next(&mut idle)), Some(AlpacaError::AuthTimeout));
}

// ---- Polygon stream ------------------------------------------------------------------------------

fn polygon_session(ex: &ExchangeHandle, d: &mut Decoder, params: &str) -> Ws {
    let mut ws = ws_connect(ex, "/stocks").unwrap();
    assert_eq!(control(&d.next(&mut ws)), vec![Control::Connected]);
    send(&mut ws, &feeds::polygon::auth_message(DEMO_KEY));
    assert_eq!(control(&d.next(&mut ws)), vec![Control::Authenticated]);
    send(&mut ws, &feeds::polygon::subscribe_message(feeds::alpaca::Action::Subscribe, params));
    let statuses = control(&d.next(&mut ws));
    let want: Vec<Control> = params
        .split(',')
        .map(|p| Control::Status { status: "success".into(), message: format!("subscribed to: {p}") })
        .collect();
    assert_eq!(statuses, want);
    ws
}

#[test]
fn polygon_stream_am_aggregates_decode_and_match_the_source() {
    let ex = start();
    let mut d = Decoder::polygon();
    let mut ws = polygon_session(&ex, &mut d, "AM.AAA,AM.CCC");
    let mut n = 0;
    while n < 6 {
        for m in d.next(&mut ws) {
            let FeedMsg::Bar(b) = m else { panic!("{m:?}") };
            assert_eq!(b.interval, Interval::M1);
            assert!(b.bar.ts_event_ns + MIN <= ex.clock().now_ns());
            assert_eq!(b.bar, source_bar(&ex, b.symbol, b.bar.ts_event_ns));
            assert_ne!(b.symbol, SymbolId(1));
            n += 1;
        }
    }
    // AM.* adds every symbol.
    send(&mut ws, r#"{"action":"subscribe","params":"AM.*"}"#);
    let bars = read_bars(&mut ws, &mut d, |s| s.iter().any(|(_, sym, _)| *sym == SymbolId(1)));
    assert!(!bars.is_empty());
}

#[test]
fn polygon_wrong_key_gets_auth_failed() {
    let ex = start();
    let mut d = Decoder::polygon();
    let mut ws = ws_connect(&ex, "/stocks").unwrap();
    d.next(&mut ws);
    send(&mut ws, &feeds::polygon::auth_message("nope"));
    assert!(matches!(&control(&d.next(&mut ws))[..], [Control::AuthFailed(_)]));
    assert!(frame(&mut ws).is_none());
}

#[test]
fn polygon_per_second_data_streams_a_and_am() {
    let series = vec![("AAA".to_string(), 1, bars(0, 4 * 3600, 1_000_000_000))];
    let tape = Arc::new(Tape::from_series(series).unwrap());
    assert_eq!(tape.symbols[0].minute.len(), 240);
    let ex = start_with(|c| {
        c.tape = Some(tape);
        c.speed = 120.0;
    });
    let mut d = Decoder::polygon();
    let mut ws = polygon_session(&ex, &mut d, "A.AAA,AM.AAA");
    let s = &ex.tape().symbols[0];
    let (mut seconds, mut minutes) = (0, 0);
    while seconds < 70 || minutes < 1 {
        for m in d.next(&mut ws) {
            let FeedMsg::Bar(b) = m else { panic!("{m:?}") };
            assert!(b.bar.ts_event_ns + i64::from(b.interval.secs) * 1_000_000_000 <= ex.clock().now_ns());
            if b.interval == Interval::S1 {
                assert!(s.second.contains(&b.bar), "{b:?} from the source");
                seconds += 1;
            } else {
                assert_eq!(b.interval, Interval::M1);
                assert!(s.minute.contains(&b.bar), "{b:?} aggregated from the source");
                minutes += 1;
            }
        }
    }
}

// ---- REST ---------------------------------------------------------------------------------------

#[test]
fn alpaca_rest_pages_return_every_bar_once_and_nothing_from_the_future() {
    let ex = start();
    let mut h = http(&ex);
    let symbols = symbol_map();
    let mut c = FeedCounters::default();
    // A fixed past range: exactly the source bars.
    let end = "2024-03-01T15:00:00Z";
    let mut token: Option<String> = None;
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let mut q = format!(
            "/v2/stocks/bars?symbols=CCC,AAA,BBB&timeframe=1Min&start=2024-03-01T14%3A30%3A00Z&end={end}&limit=7&feed=iex"
        );
        if let Some(t) = &token {
            q.push_str(&format!("&page_token={t}"));
        }
        let (st, body) = h.get(&q, &ALPACA_AUTH);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let page = decode_bars_page(&body, Interval::M1, &symbols, &mut c).unwrap();
        assert!(page.bars.len() <= 7);
        got.extend(page.bars.iter().map(|b| (b.symbol, b.bar)));
        pages += 1;
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut want = Vec::new();
    for (i, _) in SYMS.iter().enumerate() {
        for b in &ex.tape().symbols[i].minute {
            if b.ts_event_ns <= T0 + 30 * MIN {
                want.push((SymbolId(i as u32), *b));
            }
        }
    }
    assert_eq!(got, want, "symbol by symbol, in time order, each bar once");
    assert_eq!(pages, want.len().div_ceil(7));

    // No end: never a bar whose window has not ended by the clock.
    let mut token: Option<String> = None;
    let mut seen = HashSet::new();
    let first_now = ex.clock().now_ns();
    loop {
        let mut q = "/v2/stocks/bars?symbols=AAA,BBB&timeframe=1Min&limit=50".to_string();
        if let Some(t) = &token {
            q.push_str(&format!("&page_token={t}"));
        }
        let (st, body) = h.get(&q, &ALPACA_AUTH);
        assert_eq!(st, 200);
        let now = ex.clock().now_ns();
        let page = decode_bars_page(&body, Interval::M1, &symbols, &mut c).unwrap();
        for b in &page.bars {
            assert!(b.bar.ts_event_ns + MIN <= now, "a bar from the market future");
            assert!(seen.insert((b.symbol, b.bar.ts_event_ns)), "a bar twice");
        }
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let existing = ex.tape().symbols[..2]
        .iter()
        .map(|s| s.minute.iter().filter(|b| b.ts_event_ns + MIN <= first_now).count())
        .sum::<usize>();
    assert!(seen.len() >= existing);

    // Single symbol, and a 5Min timeframe aggregated from minutes.
    let (st, body) = h.get(&format!("/v2/stocks/AAA/bars?timeframe=5Min&end={end}"), &ALPACA_AUTH);
    assert_eq!(st, 200);
    let page = decode_bars_page(&body, Interval { secs: 300 }, &symbols, &mut c).unwrap();
    assert_eq!(page.bars.len(), 7, "14:30 to 15:00, both ends included");
    let src = &ex.tape().symbols[0].minute;
    assert_eq!(page.bars[1].bar.open_px_e9, src[5].open_px_e9);
    assert_eq!(page.bars[1].bar.close_px_e9, src[9].close_px_e9);
    assert_eq!(page.bars[1].bar.volume, src[5..10].iter().map(|b| b.volume).sum::<u64>());
}

#[test]
fn rest_auth_failures_are_401_and_403_json() {
    let ex = start();
    let mut h = http(&ex);
    let (st, body) = h.get("/v2/stocks/bars?symbols=AAA&timeframe=1Min", &[]);
    assert_eq!(st, 401);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["message"].is_string());
    let (st, _) = h.get(
        "/v2/stocks/bars?symbols=AAA&timeframe=1Min",
        &[("APCA-API-KEY-ID", DEMO_KEY), ("APCA-API-SECRET-KEY", "x")],
    );
    assert_eq!(st, 403);
    let (st, body) = h.get("/v2/aggs/ticker/AAA/range/1/minute/2024-03-01/2024-03-01?apiKey=bad", &[]);
    assert_eq!(st, 401);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["status"], "ERROR");
    let (st, _) = h.get("/v2/stocks/bars?symbols=AAA&timeframe=7Weeks", &ALPACA_AUTH);
    assert_eq!(st, 422);
}

#[test]
fn polygon_rest_follows_next_url_with_bearer_auth() {
    let ex = start();
    let mut h = http(&ex);
    let symbols = symbol_map();
    let mut c = FeedCounters::default();
    let from = T0 / 1_000_000;
    let to = (T0 + 40 * MIN) / 1_000_000;
    let mut target =
        format!("/v2/aggs/ticker/BBB/range/1/minute/{from}/{to}?adjusted=true&sort=asc&limit=9&apiKey={DEMO_KEY}");
    let mut got = Vec::new();
    let bearer = format!("Bearer {DEMO_KEY}");
    loop {
        let (st, body) = h.get(&target, &[("Authorization", &bearer)]);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let page = decode_aggs_page(&body, Interval::M1, &symbols, &mut c).unwrap();
        got.extend(page.bars.iter().map(|b| b.bar));
        match page.next {
            Some(url) => {
                let origin = ex.http_origin();
                assert!(url.starts_with(&origin), "absolute next_url on the same origin: {url}");
                target = url[origin.len()..].to_string();
            }
            None => break,
        }
    }
    let want: Vec<Bar> =
        ex.tape().symbols[1].minute.iter().filter(|b| b.ts_event_ns <= T0 + 40 * MIN).copied().collect();
    assert_eq!(got, want);
    // Dates work too; a date `to` covers the whole day, cut at the market clock.
    let (st, body) =
        h.get(&format!("/v2/aggs/ticker/AAA/range/1/minute/2024-03-01/2024-03-01?limit=50000&apiKey={DEMO_KEY}"), &[]);
    assert_eq!(st, 200);
    let now = ex.clock().now_ns();
    let page = decode_aggs_page(&body, Interval::M1, &symbols, &mut c).unwrap();
    assert!(page.bars.len() >= 60);
    assert!(page.bars.iter().all(|b| b.bar.ts_event_ns + MIN <= now));
    assert!(page.next.is_none());
}

#[test]
fn control_clock_and_fault_endpoints() {
    let ex = start();
    let mut h = http(&ex);
    let c = clock_of(&mut h);
    assert_eq!(c, ex.clock());
    assert!(c.now_ns() >= T0 + 60 * MIN);
    let (st, _) = h.request("POST", "/control/fault", &[], br#"{"kind":"http429","count":1}"#);
    assert_eq!(st, 200);
    let (st, _) = h.request("POST", "/control/fault", &[], br#"{"kind":"no_such_fault"}"#);
    assert_eq!(st, 400);
    assert_eq!(ws_connect(&ex, "/v2/iex").err(), Some(429));
    let (st, body) = h.get("/control/stats", &[]);
    assert_eq!(st, 200);
    let stats: ringtape_tools::exchange::Stats = serde_json::from_slice(&body).unwrap();
    assert_eq!((stats.faults["http429"], stats.rejected_429), (1, 1));
}

// ---- TLS ----------------------------------------------------------------------------------------

#[test]
fn tls_with_the_generated_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = tempfile::tempdir().unwrap();
    let ex = start_with(|c| {
        c.plain = false;
        c.state_dir = Some(dir.path().to_path_buf());
    });
    let pem = ex.cert_pem().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(ex.cert_path().unwrap()).unwrap(), pem);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
    let cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tls = |name: ServerName<'static>| {
        let tcp = TcpStream::connect(ex.addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        rustls::StreamOwned::new(rustls::ClientConnection::new(Arc::clone(&cfg), name).unwrap(), tcp)
    };
    // HTTPS to the IP address.
    let mut h = Http {
        s: tls(ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())),
        buf: Vec::new(),
    };
    clock_of(&mut h);
    // WSS to localhost.
    let (mut ws, _) = tungstenite::client(
        format!("wss://localhost:{}/v2/iex", ex.addr().port()),
        tls(ServerName::try_from("localhost").unwrap()),
    )
    .unwrap();
    let mut d = Decoder::alpaca();
    let Message::Text(t) = ws.read().unwrap() else { panic!() };
    assert_eq!(control(&d.decode(t.as_bytes())), vec![Control::Connected]);
    ws.send(Message::text(feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET))).unwrap();
    let Message::Text(t) = ws.read().unwrap() else { panic!() };
    assert_eq!(control(&d.decode(t.as_bytes())), vec![Control::Authenticated]);
    ws.send(Message::text(r#"{"action":"subscribe","bars":["AAA"]}"#)).unwrap();
    let mut bars = 0;
    while bars < 2 {
        if let Message::Text(t) = ws.read().unwrap() {
            bars += d.decode(t.as_bytes()).iter().filter(|m| matches!(m, FeedMsg::Bar(_))).count();
        }
    }
    drop(ws);
    let path = ex.cert_path().unwrap().to_path_buf();
    ex.stop();
    assert!(!path.exists(), "the run's certificate is removed at stop");
}

// ---- faults -------------------------------------------------------------------------------------

#[test]
fn fault_disconnect_drops_sessions_without_a_close_frame() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    ex.inject(Fault::Disconnect);
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => panic!("a close frame: the drop must be abrupt"),
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    // The key is free again at once.
    let _again = alpaca_session(&ex, &mut d);
    assert_eq!(ex.stats().faults["disconnect"], 1);
}

#[test]
fn fault_duplicate_bar_sends_a_bar_twice() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    ex.inject(Fault::DuplicateBar);
    read_bars(&mut ws, &mut d, |s| {
        let keys: HashSet<(u32, i64)> = s.iter().map(|(_, sym, b)| (sym.0, b.ts_event_ns)).collect();
        keys.len() < s.len()
    });
    // The stream goes on.
    read_bars(&mut ws, &mut d, |s| !s.is_empty());
}

#[test]
fn fault_out_of_order_swaps_two_windows() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    ex.inject(Fault::OutOfOrder);
    let seen = read_bars(&mut ws, &mut d, |s| s.windows(2).any(|w| w[1].2.ts_event_ns < w[0].2.ts_event_ns));
    let keys: HashSet<(u32, i64)> = seen.iter().map(|(_, sym, b)| (sym.0, b.ts_event_ns)).collect();
    assert_eq!(keys.len(), seen.len(), "reordered, not duplicated");
}

#[test]
fn fault_updated_bar_sends_u_with_a_changed_close() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    ex.inject(Fault::UpdatedBar);
    let seen = read_bars(&mut ws, &mut d, |s| s.iter().any(|(k, ..)| *k == BarKind::Updated));
    let (_, sym, u) = *seen.iter().find(|(k, ..)| *k == BarKind::Updated).unwrap();
    let orig = source_bar(&ex, sym, u.ts_event_ns);
    assert!(seen.iter().any(|(k, s, b)| *k == BarKind::Closed && *s == sym && *b == orig), "the b came first");
    assert_ne!(u.close_px_e9, orig.close_px_e9);
    assert_eq!(u.volume, orig.volume + 100);
    assert_eq!(d.counters.updated_bars, 1);
}

#[test]
fn fault_malformed_frame_is_refused_and_the_stream_goes_on() {
    let ex = start();
    let mut d = Decoder::polygon();
    let mut ws = polygon_session(&ex, &mut d, "AM.*");
    ex.inject(Fault::MalformedFrame);
    loop {
        let msgs = d.next(&mut ws);
        if msgs.iter().any(|m| matches!(m, FeedMsg::Rejected(r) if r.kind == RejectKind::BadJson)) {
            break;
        }
    }
    read_bars(&mut ws, &mut d, |s| !s.is_empty());
}

#[test]
fn fault_auth_failure_and_connection_limit_apply_once() {
    let ex = start();
    let mut d = Decoder::alpaca();
    for (fault, want) in
        [(Fault::AuthFailure, AlpacaError::AuthFailed), (Fault::ConnectionLimit, AlpacaError::ConnectionLimitExceeded)]
    {
        ex.inject(fault);
        let mut ws = ws_connect(&ex, "/v2/iex").unwrap();
        d.next(&mut ws);
        send(&mut ws, &feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET));
        assert_eq!(alpaca_error(&d.next(&mut ws)), Some(want));
        assert!(frame(&mut ws).is_none());
    }
    let _ok = alpaca_session(&ex, &mut d);
    // Polygon auth failure too.
    ex.inject(Fault::AuthFailure);
    let mut p = Decoder::polygon();
    let mut ws = ws_connect(&ex, "/stocks").unwrap();
    p.next(&mut ws);
    send(&mut ws, &feeds::polygon::auth_message(DEMO_KEY));
    assert!(matches!(&control(&p.next(&mut ws))[..], [Control::AuthFailed(_)]));
}

#[test]
fn fault_http429_refuses_the_next_upgrades() {
    let ex = start();
    ex.inject(Fault::Http429 { count: 2 });
    assert_eq!(ws_connect(&ex, "/v2/iex").err(), Some(429));
    assert_eq!(ws_connect(&ex, "/stocks").err(), Some(429));
    let mut d = Decoder::alpaca();
    let _ok = alpaca_session(&ex, &mut d);
    assert_eq!(ex.stats().rejected_429, 2);
}

#[test]
fn fault_slow_rest_delays_the_next_response() {
    let ex = start();
    let mut h = http(&ex);
    ex.inject(Fault::SlowRest { delay_ms: 300, count: 1 });
    let t = stopwatch();
    let (st, _) = h.get("/v2/stocks/bars?symbols=AAA&timeframe=1Min&limit=5", &ALPACA_AUTH);
    assert_eq!(st, 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "the delay cannot end early");
    assert_eq!(ex.stats().faults["slow_rest"], 1);
}

#[test]
fn fault_stall_stops_pongs_then_recovers() {
    let ex = start();
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    let t = stopwatch();
    ex.inject(Fault::Stall { ms: 1000 });
    // Let the session enter the stall before pinging.
    std::thread::sleep(Duration::from_millis(200));
    ws.send(Message::Ping(b"hb".to_vec().into())).unwrap();
    loop {
        match ws.read().expect("the session survives a stall") {
            Message::Pong(p) if &p[..] == b"hb" => break,
            _ => continue,
        }
    }
    assert!(t.elapsed() >= Duration::from_millis(1000), "no pong during the stall");
    read_bars(&mut ws, &mut d, |s| !s.is_empty());
}

#[test]
fn scenario_faults_fire_on_market_time() {
    let scenario = Scenario::parse("[[fault]]\nevery_min = 2\nkind = \"duplicate_bar\"\n\n[[fault]]\nat = \"2024-03-01T15:33:00Z\"\nkind = \"malformed_frame\"\n").unwrap();
    let ex = start_with(|c| c.scenario = scenario);
    let mut d = Decoder::alpaca();
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    let mut malformed = false;
    let mut dups = 0;
    let mut keys = HashSet::new();
    while !(malformed && dups >= 2) {
        for m in d.next(&mut ws) {
            match m {
                FeedMsg::Rejected(r) if r.kind == RejectKind::BadJson => malformed = true,
                FeedMsg::Bar(b) if !keys.insert((b.symbol, b.bar.ts_event_ns)) => dups += 1,
                _ => {}
            }
        }
    }
    let f = ex.stats().faults;
    assert!(f["duplicate_bar"] >= 2 && f["malformed_frame"] == 1, "{f:?}");
}

#[test]
fn http_keep_alive_serves_many_requests_on_one_connection() {
    let ex = start();
    let mut h = http(&ex);
    for _ in 0..20 {
        assert_eq!(h.get("/control/clock", &[]).0, 200);
    }
    assert_eq!(h.get("/nowhere", &[]).0, 404);
    assert_eq!(ex.stats().connections, 1);
}

// ---- scale and the command ----------------------------------------------------------------------

#[test]
fn ten_thousand_symbols_stream_every_bar_once_in_batched_frames() {
    const N: usize = 10_000;
    let names: Vec<String> = (0..N).map(|i| format!("S{i:05}")).collect();
    let series = names.iter().enumerate().map(|(i, s)| (s.clone(), 60, bars(i % 7, 5, MIN))).collect();
    let ex = start_with(|c| {
        c.tape = Some(Arc::new(Tape::from_series(series).unwrap()));
        c.start_ns = Some(T0 + 2 * MIN);
        c.speed = 120.0;
    });
    let mut symbols = SymbolMap::new();
    for (i, s) in names.iter().enumerate() {
        symbols.insert(s, SymbolId(i as u32)).unwrap();
    }
    let mut d = Decoder { symbols, counters: FeedCounters::default(), polygon: false };
    let mut ws = alpaca_session(&ex, &mut d);
    subscribe_all(&mut ws, &mut d);
    let frames_before = ex.stats().frames_sent;
    // Windows ending after the start: bars 2, 3 and 4 of every symbol.
    let mut seen = HashSet::new();
    while seen.len() < 3 * N {
        for m in d.next(&mut ws) {
            let FeedMsg::Bar(b) = m else { panic!("{m:?}") };
            assert!(seen.insert((b.symbol, b.bar.ts_event_ns)), "a bar twice");
            assert!(b.bar.ts_event_ns >= T0 + MIN);
        }
    }
    let frames = ex.stats().frames_sent - frames_before;
    assert!(frames <= 3 * (N as u64 / 1000 + 1), "{frames} frames for {} bars: batched", 3 * N);
}

#[test]
fn the_exchange_command_prints_its_urls_and_exits_0_on_sigint() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_ringtape");
    let help = Command::new(exe).args(["exchange", "--help"]).output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for opt in ["--data", "--speed", "--start", "--port", "--plain", "--scenario", "--key", "--secret"] {
        assert!(help.contains(opt), "{opt} in --help");
    }
    let mut child = Command::new(exe)
        .args(["exchange", "--plain", "--port", "0", "--speed", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("http://").nth(1).filter(|_| line.contains("Alpaca REST")) {
            addr = Some(rest.split('/').next().unwrap().to_string());
        }
        let done = line.contains("control");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    for want in ["ws://", "/v2/iex", "/v2/stocks/bars", "/stocks", "/v2/aggs/ticker", "/control/clock"] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    let tcp = TcpStream::connect(addr.expect("the REST URL")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut h = Http { s: tcp, buf: Vec::new() };
    clock_of(&mut h);
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success(), "exit 0 on SIGINT");
    assert!(lines.any(|l| l.unwrap().contains("stopped")));
}

#[test]
fn alpaca_stream_speaks_msgpack_when_asked() {
    use ringtape_tools::exchange::msgpack;
    use tungstenite::client::IntoClientRequest;
    let ex = start();
    let mut req = format!("ws://{}/v2/iex", ex.addr()).into_client_request().unwrap();
    req.headers_mut().insert("Content-Type", "application/msgpack".parse().unwrap());
    let tcp = TcpStream::connect(ex.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut ws, _) = tungstenite::client(req, tcp).unwrap();
    let mut d = Decoder::alpaca();
    // Binary msgpack frames, turned back into JSON for the feeds decoder.
    let mut next = |ws: &mut Ws| loop {
        match ws.read().unwrap() {
            Message::Binary(b) => {
                let json = msgpack::decode(&b).expect("a msgpack frame").to_string();
                return d.decode(json.as_bytes());
            }
            Message::Text(t) => panic!("a text frame in msgpack mode: {t}"),
            _ => continue,
        }
    };
    assert_eq!(control(&next(&mut ws)), vec![Control::Connected]);
    let auth = msgpack::encode_frame(&feeds::alpaca::auth_message(DEMO_KEY, DEMO_SECRET)).unwrap();
    ws.send(Message::Binary(auth.into())).unwrap();
    assert_eq!(control(&next(&mut ws)), vec![Control::Authenticated]);
    let sub = msgpack::encode_frame(r#"{"action":"subscribe","bars":["AAA"]}"#).unwrap();
    ws.send(Message::Binary(sub.into())).unwrap();
    assert!(matches!(&control(&next(&mut ws))[..], [Control::Subscription(_)]));
    let mut n = 0;
    while n < 3 {
        for m in next(&mut ws) {
            let FeedMsg::Bar(b) = m else { panic!("{m:?}") };
            assert_eq!(b.bar, source_bar(&ex, b.symbol, b.bar.ts_event_ns), "t survives as a msgpack timestamp");
            n += 1;
        }
    }
}

// ---- Databento historical ---------------------------------------------------------------------

/// A DBN body (plain or zstd) as its metadata and OHLCV records.
fn dbn_body(body: &[u8]) -> (dbn::Metadata, Vec<dbn::OhlcvMsg>) {
    use dbn::decode::{DbnMetadata, DecodeRecord};
    let reader = dbn::decode::DynReader::inferred_with_buffer(body).unwrap();
    let mut d = dbn::decode::dbn::Decoder::new(reader).unwrap();
    let meta = d.metadata().clone();
    let mut recs = Vec::new();
    while let Some(r) = d.decode_record::<dbn::OhlcvMsg>().unwrap() {
        recs.push(r.clone());
    }
    (meta, recs)
}

#[test]
fn databento_get_range_serves_dbn_plain_and_zstd_and_refuses_as_databento_does() {
    let ex = start();
    let mut h = http(&ex);
    let key = ringtape_tools::fetch::databento::base64(format!("{DEMO_KEY}:").as_bytes());
    let auth = format!("Basic {key}");
    let (from, to) = (T0, T0 + 30 * MIN);
    // GET with a query, no compression: every symbol asked for that exists, merged in time order.
    let target = format!(
        "/v0/timeseries.get_range?dataset=XNAS.ITCH&symbols=AAA,CCC,ZZZ&schema=ohlcv-1m&start={from}&end={to}\
         &stype_in=raw_symbol&stype_out=instrument_id&encoding=dbn&compression=none"
    );
    let (st, body) = h.get(&target, &[("Authorization", &auth)]);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..3], b"DBN", "plain DBN");
    let (meta, recs) = dbn_body(&body);
    assert_eq!(
        (meta.dataset.as_str(), meta.schema, meta.not_found.clone()),
        ("XNAS.ITCH", Some(dbn::Schema::Ohlcv1M), vec!["ZZZ".to_string()])
    );
    let symbols = meta.symbol_map().unwrap();
    assert_eq!(recs.len(), 60);
    assert!(recs.windows(2).all(|w| w[0].hd.ts_event <= w[1].hd.ts_event), "time order");
    for r in &recs {
        let sym = symbols.get_for_ts(r.hd.ts_event, r.hd.instrument_id).expect("every record is mapped");
        let id = SymbolId(SYMS.iter().position(|s| s == sym).unwrap() as u32);
        let b = source_bar(&ex, id, r.hd.ts_event as i64);
        assert_eq!(
            (r.open, r.high, r.low, r.close, r.volume),
            (b.open_px_e9, b.high_px_e9, b.low_px_e9, b.close_px_e9, b.volume)
        );
    }
    // POST with a form, zstd (as the official clients ask), ISO 8601 times, one hour bars.
    let form = "dataset=XNAS.ITCH&symbols=BBB&schema=ohlcv-1h&start=2024-03-01T14%3A00%3A00Z&end=2024-03-01T17%3A00%3A00Z\
                &encoding=dbn&compression=zstd";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let (st, body) = h.request("POST", "/v0/timeseries.get_range", &headers, form.as_bytes());
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body[..4], [0x28, 0xB5, 0x2F, 0xFD], "a zstd frame");
    let (_, recs) = dbn_body(&body);
    assert!(!recs.is_empty() && recs.iter().all(|r| r.hd.rtype == dbn::rtype::OHLCV_1H), "{}", recs.len());
    // Refusals: Databento's statuses with {"detail": ...}.
    let detail =
        |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap()["detail"].as_str().unwrap().to_string();
    let (st, body) = h.get(&target, &[]);
    assert_eq!(st, 401);
    assert!(detail(&body).contains("Authorization failed"));
    let wrong = format!("Basic {}", ringtape_tools::fetch::databento::base64(b"nope:"));
    assert_eq!(h.get(&target, &[("Authorization", &wrong)]).0, 401);
    let (st, body) = h.get(&target.replace("ohlcv-1m", "trades"), &[("Authorization", &auth)]);
    assert_eq!(st, 422);
    assert!(detail(&body).contains("schema"));
    let (st, body) = h.get(&target.replace("dataset=XNAS.ITCH&", ""), &[("Authorization", &auth)]);
    assert_eq!((st, detail(&body).contains("dataset")), (400, true));
    // A 429 fault carries Retry-After in Databento's error shape.
    ex.inject(Fault::RestError { status: 429, count: 1, retry_after_s: 2 });
    let (st, body) = h.get(&target, &[("Authorization", &auth)]);
    assert_eq!(st, 429);
    assert!(detail(&body).contains("too many requests"));
    assert_eq!(h.get(&target, &[("Authorization", &auth)]).0, 200, "one request only");
}
