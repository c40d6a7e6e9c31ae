//! The REST history clients against a tiny HTTP/1.1 server on 127.0.0.1 written here (std::net,
//! one thread per connection, Content-Length bodies, keep-alive or `Connection: close`,
//! optionally inside rustls with a certificate rcgen generates at run time). Retry delays are
//! recorded by an injected sleep, never slept, so nothing here waits on a timer.

use engine::records::{Interval, SymbolId};
use feeds::credentials::Secret;
use feeds::rest::{AlpacaFeedName, AlpacaHistory, PolygonHistory, RestClient, RestConfig, RestConfigError};
use feeds::ws::TlsConfig;
use feeds::{FeedCounters, HistBar, History, HistoryError, RejectKind, SymbolMap};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const KEY_ID: &str = "PKTESTKEYID0123456789";
const SECRET: &str = "sEcReT-9f8e7d6c5b4a-never-print-me";
const POLY_KEY: &str = "polyKEY-0a1b2c3d4e5f-never-print-me";

/// 2024-03-01T14:30:00Z.
const T0_S: i64 = 1_709_303_400;
const S: i64 = 1_000_000_000;
const MIN: i64 = 60 * S;

// ---- the test server --------------------------------------------------------------------------

/// One request the server read.
#[derive(Debug, Clone)]
struct Req {
    /// Which connection (0, 1, ... in accept order) carried it.
    conn: usize,
    path: String,
    query: BTreeMap<String, String>,
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn h(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
}

/// What the server answers.
enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        close: bool,
    },
    /// Headers announcing `declared` body bytes, then `body` (shorter), then the connection closes.
    Cut {
        declared: usize,
        body: Vec<u8>,
    },
    /// This reply, sent only after a pause (taken outside the handler: other connections go on).
    Late(Duration, Box<Reply>),
}

impl Reply {
    fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply::Full { status, headers: Vec::new(), body: body.into().into_bytes(), close: false }
    }
    fn ok(body: impl Into<String>) -> Reply {
        Reply::json(200, body)
    }
    fn header(mut self, k: &str, v: &str) -> Reply {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((k.to_owned(), v.to_owned()));
        }
        self
    }
    fn close(mut self) -> Reply {
        if let Reply::Full { close, .. } = &mut self {
            *close = true;
        }
        self
    }
}

type Handler = Box<dyn FnMut(&Req, usize) -> Reply + Send>;

struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serve `handler(request, index of the request)` on 127.0.0.1, plain or over TLS.
    fn start(tls: Option<Arc<ServerConfig>>, handler: impl FnMut(&Req, usize) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let (log2, stop2) = (log.clone(), stop.clone());
        thread::spawn(move || {
            let conns = AtomicUsize::new(0);
            for tcp in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let conn = conns.fetch_add(1, Ordering::SeqCst);
                let (log, handler, tls) = (log2.clone(), handler.clone(), tls.clone());
                thread::spawn(move || serve_conn(conn, tcp, tls, &log, &handler));
            }
        });
        Server { port, log, stop }
    }

    fn plain(handler: impl FnMut(&Req, usize) -> Reply + Send + 'static) -> Server {
        Server::start(None, handler)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

enum SrvStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for SrvStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            SrvStream::Plain(s) => s.read(buf),
            SrvStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for SrvStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SrvStream::Plain(s) => s.write(buf),
            SrvStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SrvStream::Plain(s) => s.flush(),
            SrvStream::Tls(s) => s.flush(),
        }
    }
}

impl SrvStream {
    fn close(self) {
        match self {
            SrvStream::Plain(s) => drop(s.shutdown(std::net::Shutdown::Both)),
            SrvStream::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                drop(s.sock.shutdown(std::net::Shutdown::Both));
            }
        }
    }
}

/// Requests on one connection until the client closes it or a reply closes it.
fn serve_conn(
    conn: usize,
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    log: &Mutex<Vec<Req>>,
    handler: &Mutex<Handler>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut s = match tls {
        Some(cfg) => SrvStream::Tls(Box::new(StreamOwned::new(ServerConnection::new(cfg).expect("tls"), tcp))),
        None => SrvStream::Plain(tcp),
    };
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut s, &mut buf) else { return };
        let Some(req) = parse_head(conn, &head) else { return };
        let n = {
            let mut log = log.lock().expect("log");
            log.push(req.clone());
            log.len() - 1
        };
        let mut reply = (handler.lock().expect("handler"))(&req, n);
        if let Reply::Late(pause, r) = reply {
            thread::sleep(pause);
            reply = *r;
        }
        match reply {
            Reply::Full { status, headers, body, close } => {
                let mut out = format!("HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n", reason(status), body.len());
                out.push_str("Content-Type: application/json\r\n");
                for (k, v) in &headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                if close {
                    out.push_str("Connection: close\r\n");
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                if s.write_all(&bytes).and_then(|()| s.flush()).is_err() {
                    return;
                }
                if close {
                    return s.close();
                }
            }
            Reply::Cut { declared, body } => {
                let head =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/json\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(&body)).and_then(|()| s.flush());
                return s.close();
            }
            Reply::Late(..) => unreachable!("one pause per reply"),
        }
    }
}

/// Read up to the blank line ending a request head (GETs carry no body).
fn read_head(s: &mut SrvStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).ok()?;
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_head(conn: usize, head: &str) -> Option<Req> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?, first.next()?);
    assert_eq!(method, "GET");
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let query = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Req { conn, path: decode(path), query, headers })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("utf8");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// A self-signed certificate for 127.0.0.1: its PEM and a rustls server config serving it.
fn cert() -> (String, Arc<ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("rcgen");
    let der: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server cert");
    (ck.cert.pem(), Arc::new(cfg))
}

// ---- payloads ---------------------------------------------------------------------------------

fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).expect("time").to_string()
}

/// An Alpaca bar starting at `ns` whose close encodes `tag` (to tell bars apart).
fn alpaca_bar(ns: i64, tag: u32) -> String {
    format!(r#"{{"t":"{}","o":100.0,"h":101.0,"l":99.0,"c":100.{tag:03},"v":{tag},"n":3,"vw":100.2}}"#, rfc3339(ns))
}

/// A multi-symbol page: `{"bars":{"AAPL":[...],...},"next_page_token":...}`.
fn alpaca_page(bars: &[(&str, &[(i64, u32)])], next: Option<&str>) -> String {
    let per: Vec<String> = bars
        .iter()
        .map(|(sym, bs)| {
            let list: Vec<String> = bs.iter().map(|&(ns, tag)| alpaca_bar(ns, tag)).collect();
            format!(r#""{sym}":[{}]"#, list.join(","))
        })
        .collect();
    let next = next.map_or("null".to_owned(), |t| format!("{t:?}"));
    format!(r#"{{"bars":{{{}}},"next_page_token":{next}}}"#, per.join(","))
}

/// A single-symbol page: `{"bars":[...],"symbol":"AAPL","next_page_token":...}`.
fn alpaca_single(sym: &str, bars: &[(i64, u32)], next: Option<&str>) -> String {
    let list: Vec<String> = bars.iter().map(|&(ns, tag)| alpaca_bar(ns, tag)).collect();
    let next = next.map_or("null".to_owned(), |t| format!("{t:?}"));
    format!(r#"{{"bars":[{}],"symbol":"{sym}","next_page_token":{next}}}"#, list.join(","))
}

fn polygon_page(ticker: &str, bars: &[(i64, u32)], next_url: Option<&str>) -> String {
    let list: Vec<String> = bars
        .iter()
        .map(|&(ns, tag)| {
            format!(
                r#"{{"t":{},"o":100.0,"h":101.0,"l":99.0,"c":100.{tag:03},"v":{tag},"vw":100.2,"n":3}}"#,
                ns / 1_000_000
            )
        })
        .collect();
    let next = next_url.map(|u| format!(r#","next_url":"{u}""#)).unwrap_or_default();
    format!(
        r#"{{"ticker":"{ticker}","queryCount":{n},"resultsCount":{n},"adjusted":true,"results":[{}],"status":"OK","request_id":"r1"{next}}}"#,
        list.join(","),
        n = bars.len()
    )
}

fn map(names: &[&str]) -> SymbolMap {
    let mut m = SymbolMap::new();
    for (i, n) in names.iter().enumerate() {
        m.insert(n, SymbolId(i as u32)).expect("symbol");
    }
    m
}

/// Fast retries and a sleep that records each delay instead of sleeping.
fn cfg(base: String, tls: TlsConfig) -> RestConfig {
    RestConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        ..RestConfig::new(base, tls)
    }
}

type Delays = Arc<Mutex<Vec<Duration>>>;

fn alpaca_client(base: String, tls: TlsConfig, max_attempts: u32) -> (AlpacaHistory, Delays) {
    let delays: Delays = Arc::default();
    let d = delays.clone();
    let c = RestConfig { max_attempts, ..cfg(base, tls) };
    let h = AlpacaHistory::new(c, Secret::new(KEY_ID), Secret::new(SECRET), AlpacaFeedName::Iex)
        .expect("client")
        .with_sleep(move |t| d.lock().expect("delays").push(t));
    (h, delays)
}

fn polygon_client(base: String, max_attempts: u32) -> (PolygonHistory, Delays) {
    let delays: Delays = Arc::default();
    let d = delays.clone();
    let c = RestConfig { max_attempts, ..cfg(base, TlsConfig::Plain) };
    let h = PolygonHistory::new(c, Secret::new(POLY_KEY))
        .expect("client")
        .with_sleep(move |t| d.lock().expect("delays").push(t));
    (h, delays)
}

/// (symbol id, window start, volume) of each bar, sorted.
fn keys(bars: &[HistBar]) -> Vec<(u32, i64, u64)> {
    let mut k: Vec<_> = bars.iter().map(|h| (h.symbol.0, h.bar.ts_event_ns, h.bar.volume)).collect();
    k.sort_unstable();
    k
}

fn t(min: i64) -> i64 {
    T0_S * S + min * MIN
}

const FROM: i64 = T0_S * S;
const TO: i64 = FROM + 60 * MIN;

// ---- Alpaca -----------------------------------------------------------------------------------

#[test]
fn alpaca_pages_every_bar_once_with_query_and_headers() {
    // Tokens with characters that must be percent-encoded in a query (`+`, `/`, `=`).
    let server = Server::plain(|req, _| match req.q("page_token") {
        None => Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1), (t(1), 2)]), ("MSFT", &[(t(0), 3)])], Some("p+2/x=="))),
        Some("p+2/x==") => Reply::ok(alpaca_page(&[("MSFT", &[(t(1), 4), (t(2), 5)])], Some("p3"))),
        Some("p3") => Reply::ok(alpaca_page(&[("MSFT", &[(t(3), 6)])], None)),
        Some(other) => Reply::json(400, format!(r#"{{"message":"bad token {other}"}}"#)),
    });
    let (mut h, delays) = alpaca_client(server.base(), TlsConfig::Plain, 3);
    let m = map(&["AAPL", "MSFT"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL", "MSFT"], Interval::M1, FROM, TO, &m, &mut c).expect("bars");

    let want = vec![(0, t(0), 1), (0, t(1), 2), (1, t(0), 3), (1, t(1), 4), (1, t(2), 5), (1, t(3), 6)];
    assert_eq!(keys(&bars), want, "every bar exactly once");
    assert!(bars.iter().all(|b| b.interval == Interval::M1));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.path, "/v2/stocks/bars");
        assert_eq!(r.q("symbols"), Some("AAPL,MSFT"));
        assert_eq!(r.q("timeframe"), Some("1Min"));
        assert_eq!(r.q("start"), Some("2024-03-01T14:30:00Z"));
        assert_eq!(r.q("end"), Some("2024-03-01T15:30:00Z"));
        assert_eq!(r.q("limit"), Some("10000"));
        assert_eq!(r.q("feed"), Some("iex"));
        assert_eq!(r.q("adjustment"), Some("raw"));
        assert_eq!(r.q("sort"), Some("asc"));
        assert_eq!(r.q("page_token"), [None, Some("p+2/x=="), Some("p3")][i]);
        assert_eq!(r.h("apca-api-key-id"), Some(KEY_ID));
        assert_eq!(r.h("apca-api-secret-key"), Some(SECRET));
        assert_eq!(r.conn, 0, "keep-alive: every page on the first connection");
    }
    let rc = h.rest_counters();
    assert_eq!((rc.requests, rc.pages, rc.retries, rc.rate_limited, rc.server_errors), (3, 3, 0, 0, 0));
    assert!(rc.bytes > 0);
    assert_eq!((c.frames, c.bars, c.unknown_symbols, c.parse_errors), (3, 6, 0, 0));
    assert!(delays.lock().expect("delays").is_empty());
}

#[test]
fn alpaca_batches_symbols_and_reads_both_page_shapes_over_closed_connections() {
    // Every reply closes its connection: the client must open a fresh one each time.
    let server = Server::plain(|req, _| {
        let body = match req.q("symbols") {
            Some("AAPL,MSFT") => alpaca_page(&[("AAPL", &[(t(0), 1)]), ("MSFT", &[(t(0), 2)])], None),
            Some("TSLA") => match req.q("page_token") {
                None => alpaca_single("TSLA", &[(t(0), 3)], Some("t2")),
                Some(_) => alpaca_single("TSLA", &[(t(1), 4)], None),
            },
            other => panic!("unexpected batch {other:?}"),
        };
        Reply::ok(body).close()
    });
    let (h, _) = alpaca_client(server.base(), TlsConfig::Plain, 1);
    let mut h = h.with_batch(2);
    let m = map(&["AAPL", "MSFT", "TSLA"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL", "MSFT", "TSLA"], Interval::M1, FROM, TO, &m, &mut c).expect("bars");
    assert_eq!(keys(&bars), vec![(0, t(0), 1), (1, t(0), 2), (2, t(0), 3), (2, t(1), 4)]);
    let reqs = server.requests();
    let seen: Vec<_> = reqs.iter().map(|r| (r.q("symbols"), r.q("page_token"), r.conn)).collect();
    assert_eq!(seen, [(Some("AAPL,MSFT"), None, 0), (Some("TSLA"), None, 1), (Some("TSLA"), Some("t2"), 2)]);
    assert_eq!(h.rest_counters().pages, 3);
}

#[test]
fn bars_outside_the_window_are_dropped() {
    // The providers' ends are inclusive: bars at `to` (and before `from`) come back; dropped.
    let from = t(10);
    let to = t(13);
    let edge = [(t(9), 1), (t(10), 2), (t(12), 3), (t(13), 4)];
    let server = Server::plain(move |req, _| {
        if req.path.starts_with("/v2/aggs/") {
            Reply::ok(polygon_page("AAPL", &edge, None))
        } else {
            Reply::ok(alpaca_page(&[("AAPL", &edge)], None))
        }
    });
    let m = map(&["AAPL"]);
    let (mut a, _) = alpaca_client(server.base(), TlsConfig::Plain, 1);
    let (mut p, _) = polygon_client(server.base(), 1);
    let mut c = FeedCounters::default();
    let want = vec![(0, t(10), 2), (0, t(12), 3)];
    assert_eq!(keys(&a.bars(&["AAPL"], Interval::M1, from, to, &m, &mut c).expect("alpaca")), want);
    assert_eq!(keys(&p.bars(&["AAPL"], Interval::M1, from, to, &m, &mut c).expect("polygon")), want);
    assert_eq!(c.parse_errors, 0, "dropped bars are not rejections");
    let reqs = server.requests();
    assert_eq!((reqs[0].q("start"), reqs[0].q("end")), (Some("2024-03-01T14:40:00Z"), Some("2024-03-01T14:43:00Z")));
    assert_eq!(reqs[1].path, format!("/v2/aggs/ticker/AAPL/range/1/minute/{}/{}", from / 1_000_000, to / 1_000_000));
}

#[test]
fn an_unknown_symbol_is_a_counted_rejection() {
    let server = Server::plain(|_, _| {
        // The page also carries bars of a symbol the map does not know.
        Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1)]), ("XXXX", &[(t(0), 2), (t(1), 3)])], None))
    });
    let (mut h, _) = alpaca_client(server.base(), TlsConfig::Plain, 1);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL", "ZZZZ"], Interval::M1, FROM, TO, &m, &mut c).expect("bars");
    assert_eq!(keys(&bars), vec![(0, t(0), 1)]);
    // ZZZZ is refused before the request (never asked for), XXXX's two bars on the page.
    assert_eq!(server.requests()[0].q("symbols"), Some("AAPL"));
    assert_eq!((c.unknown_symbols, c.rejected(RejectKind::UnknownSymbol), c.parse_errors), (3, 3, 0));
    assert_eq!(c.messages, c.bars + c.unknown_symbols, "every message lands in exactly one count");

    // Only unknown symbols: nothing is requested at all.
    let before = server.requests().len();
    let none = h.bars(&["ZZZZ"], Interval::M1, FROM, TO, &m, &mut c).expect("no bars");
    assert!(none.is_empty());
    assert_eq!(server.requests().len(), before);
    assert_eq!(c.unknown_symbols, 4);
}

// ---- Polygon ----------------------------------------------------------------------------------

#[test]
fn polygon_follows_next_url_with_the_bearer_key() {
    let port = Arc::new(Mutex::new(0u16));
    let p2 = port.clone();
    let server = Server::plain(move |req, _| {
        let base = format!("http://127.0.0.1:{}", p2.lock().expect("port"));
        match (req.path.as_str(), req.q("cursor")) {
            (p, None) if p.contains("/AAPL/") => {
                let next = format!("{base}/v2/aggs/ticker/AAPL/range/1/minute/x/y?cursor=c2");
                Reply::ok(polygon_page("AAPL", &[(t(0), 1), (t(1), 2)], Some(&next)))
            }
            (_, Some("c2")) => {
                let next = format!("{base}/v2/aggs/ticker/AAPL/range/1/minute/x/y?cursor=c3");
                Reply::ok(polygon_page("AAPL", &[(t(2), 3)], Some(&next)))
            }
            (_, Some("c3")) => Reply::ok(polygon_page("AAPL", &[(t(3), 4)], None)),
            (p, None) if p.contains("/MSFT/") => Reply::ok(polygon_page("MSFT", &[(t(0), 5)], None)),
            other => panic!("unexpected {other:?}"),
        }
    });
    *port.lock().expect("port") = server.port;
    let (mut h, _) = polygon_client(server.base(), 1);
    let m = map(&["AAPL", "MSFT"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL", "MSFT"], Interval::M1, FROM, TO, &m, &mut c).expect("bars");
    assert_eq!(keys(&bars), vec![(0, t(0), 1), (0, t(1), 2), (0, t(2), 3), (0, t(3), 4), (1, t(0), 5)]);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    let (from_ms, to_ms) = (FROM / 1_000_000, TO / 1_000_000);
    assert_eq!(reqs[0].path, format!("/v2/aggs/ticker/AAPL/range/1/minute/{from_ms}/{to_ms}"));
    assert_eq!(reqs[3].path, format!("/v2/aggs/ticker/MSFT/range/1/minute/{from_ms}/{to_ms}"));
    for r in [&reqs[0], &reqs[3]] {
        assert_eq!((r.q("adjusted"), r.q("sort"), r.q("limit")), (Some("true"), Some("asc"), Some("50000")));
    }
    assert_eq!((reqs[1].q("cursor"), reqs[2].q("cursor")), (Some("c2"), Some("c3")));
    let bearer = format!("Bearer {POLY_KEY}");
    assert!(reqs.iter().all(|r| r.h("authorization") == Some(&bearer)), "the key on every page: {reqs:?}");
    assert_eq!(h.rest_counters().pages, 4);
}

#[test]
fn polygon_next_url_to_another_origin_is_refused() {
    // A second server stands for the other origin: it must never be asked anything.
    let other = Server::plain(|_, _| Reply::ok(polygon_page("AAPL", &[(t(5), 9)], None)));
    let other_port = other.port;
    let server = Server::plain(move |_, _| {
        let next = format!("http://127.0.0.1:{other_port}/v2/aggs/ticker/AAPL/range/1/minute/a/b?cursor=z");
        Reply::ok(polygon_page("AAPL", &[(t(0), 1)], Some(&next)))
    });
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let (mut h, _) = polygon_client(server.base(), 1);
    let err = h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("other port refused");
    assert!(matches!(&err, HistoryError::Payload(m) if m.contains("next_url")), "{err}");
    assert_eq!(other.requests().len(), 0, "the other origin was never contacted");
    assert!(!err.to_string().contains(POLY_KEY));

    // Same host and port but another scheme is another origin too; and "localhost" is not
    // "127.0.0.1" (origins compare names, not addresses).
    let rc = RestClient::new(RestConfig::new(server.base(), TlsConfig::Plain)).expect("client");
    assert!(rc.same_origin(&format!("http://127.0.0.1:{}/v2/aggs?cursor=1", server.port)));
    assert!(rc.same_origin(&format!("HTTP://127.0.0.1:{}/x", server.port)));
    assert!(!rc.same_origin(&format!("https://127.0.0.1:{}/x", server.port)));
    assert!(!rc.same_origin(&format!("http://localhost:{}/x", server.port)));
    assert!(!rc.same_origin("http://127.0.0.1/x"));
    assert!(!rc.same_origin("/v2/aggs/relative"));
    // The HTTP layer itself never sends headers off its origin.
    let mut rc = rc;
    let e = rc.get(&format!("http://127.0.0.1:{other_port}/x"), &[("Authorization", "Bearer k")], &[]);
    assert!(matches!(e, Err(HistoryError::Transport(m)) if m.contains("refusing")));
    assert_eq!((rc.counters().requests, other.requests().len()), (0, 0));
}

// ---- retries and failures ---------------------------------------------------------------------

#[test]
fn a_429_with_retry_after_then_200_succeeds_and_counts_the_limit() {
    let server = Server::plain(|_, n| match n {
        0 => Reply::json(429, r#"{"message":"too many requests"}"#).header("Retry-After", "7"),
        1 => Reply::json(429, r#"{"message":"too many requests"}"#).header("Retry-After", "3600"),
        // The HTTP-date form is not read: backoff instead.
        2 => Reply::json(429, "{}").header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
        _ => Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1)])], None)),
    });
    let (mut h, delays) = alpaca_client(server.base(), TlsConfig::Plain, 4);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect("bars after the limit");
    assert_eq!(keys(&bars), vec![(0, t(0), 1)]);
    // Retry-After honoured in whole seconds, and capped (60 s by default); then the first
    // backoff step, in [50, 100] ms.
    let d = delays.lock().expect("delays").clone();
    assert_eq!(d[..2], [Duration::from_secs(7), Duration::from_secs(60)]);
    assert!(d.len() == 3 && d[2] >= Duration::from_millis(50) && d[2] <= Duration::from_millis(100), "{d:?}");
    let rc = h.rest_counters();
    assert_eq!((rc.requests, rc.retries, rc.rate_limited, rc.pages), (4, 3, 3, 1));
}

#[test]
fn a_429_forever_ends_rate_limited_after_the_attempts() {
    let server = Server::plain(|_, _| Reply::json(429, r#"{"message":"slow down"}"#));
    let (mut p, delays) = polygon_client(server.base(), 4);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let err = p.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("limited");
    assert_eq!(err, HistoryError::RateLimited { attempts: 4 });
    assert_eq!(server.requests().len(), 4);
    // No Retry-After: exponential backoff with jitter, each delay in [d/2, d] for d = 100, 200, 400 ms.
    let d = delays.lock().expect("delays").clone();
    assert_eq!(d.len(), 3, "no sleep after the last attempt");
    for (i, got) in d.iter().enumerate() {
        let full = Duration::from_millis(100 << i);
        assert!(*got >= full / 2 && *got <= full, "delay {i}: {got:?} not in [{:?}, {full:?}]", full / 2);
    }
    let rc = p.rest_counters();
    assert_eq!((rc.requests, rc.retries, rc.rate_limited, rc.pages), (4, 3, 4, 0));
}

#[test]
fn server_errors_are_retried_then_reported() {
    let server = Server::plain(|req, n| match (req.q("symbols"), n) {
        (Some("AAPL"), 0) => Reply::json(503, "upstream busy"),
        (Some("AAPL"), _) => Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1)])], None)),
        _ => Reply::json(500, "always broken"),
    });
    let m = map(&["AAPL", "MSFT"]);
    let mut c = FeedCounters::default();
    let (mut h, delays) = alpaca_client(server.base(), TlsConfig::Plain, 2);
    assert_eq!(h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect("recovered").len(), 1);
    let err = h.bars(&["MSFT"], Interval::M1, FROM, TO, &m, &mut c).expect_err("still broken");
    assert_eq!(err, HistoryError::Status { status: 500, body: "always broken".into() });
    let rc = h.rest_counters();
    assert_eq!((rc.requests, rc.retries, rc.server_errors, rc.rate_limited), (4, 2, 3, 0));
    assert_eq!(delays.lock().expect("delays").len(), 2);
}

#[test]
fn auth_refusal_is_immediate_and_never_shows_the_secret() {
    let server = Server::plain(|req, _| {
        // A hostile server echoing the credentials back in its body.
        let echo = format!(
            r#"{{"message":"refused key {} secret {} bearer {}"}}"#,
            req.h("apca-api-key-id").unwrap_or(""),
            req.h("apca-api-secret-key").unwrap_or(""),
            req.h("authorization").unwrap_or("")
        );
        if req.path.starts_with("/v2/aggs/") { Reply::json(403, echo) } else { Reply::json(401, echo) }
    });
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let (mut a, delays) = alpaca_client(server.base(), TlsConfig::Plain, 5);
    let (mut p, _) = polygon_client(server.base(), 5);
    let ea = a.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("refused");
    let ep = p.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("refused");
    assert_eq!(ea, HistoryError::Auth { status: 401 });
    assert_eq!(ep, HistoryError::Auth { status: 403 });
    assert_eq!(server.requests().len(), 2, "no retry on 401/403");
    assert!(delays.lock().expect("delays").is_empty());
    let texts =
        [ea.to_string(), format!("{ea:?}"), ep.to_string(), format!("{ep:?}"), format!("{a:?}"), format!("{p:?}")];
    for text in &texts {
        for secret in [KEY_ID, SECRET, POLY_KEY] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[test]
fn no_error_or_debug_output_contains_a_secret() {
    // Every kind of failure, with a server that echoes the credentials wherever it can.
    let server = Server::plain(|req, _| {
        let echo = format!(
            "key {} secret {} auth {}",
            req.h("apca-api-key-id").unwrap_or(""),
            req.h("apca-api-secret-key").unwrap_or(""),
            req.h("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("")
        );
        let polygon = req.path.starts_with("/v2/aggs/");
        match req.q("symbols").or(req.path.split('/').nth(4)) {
            Some("NF") => Reply::json(404, format!(r#"{{"message":"{echo}"}}"#)),
            Some("RL") => Reply::json(429, echo),
            Some("SE") => Reply::json(503, echo),
            Some("BAD") => Reply::ok(format!("not json {echo}")),
            Some("SVC") if polygon => Reply::ok(format!(r#"{{"status":"ERROR","error":"{echo}"}}"#)),
            Some("SVC") => Reply::json(422, format!(r#"{{"message":"{echo}"}}"#)),
            _ => Reply::Cut { declared: 4096, body: echo.into_bytes() },
        }
    });
    let m = map(&["NF", "RL", "SE", "BAD", "SVC", "CUT"]);
    let mut c = FeedCounters::default();
    let (mut a, _) = alpaca_client(server.base(), TlsConfig::Plain, 2);
    let (mut p, _) = polygon_client(server.base(), 2);
    let mut texts = vec![format!("{a:?}"), format!("{p:?}")];
    for sym in ["NF", "RL", "SE", "BAD", "SVC", "CUT"] {
        for res in
            [a.bars(&[sym], Interval::M1, FROM, TO, &m, &mut c), p.bars(&[sym], Interval::M1, FROM, TO, &m, &mut c)]
        {
            let e = res.expect_err("fails");
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
        }
    }
    // And a connection refused (a port nobody listens on any more).
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (mut gone, _) = alpaca_client(format!("http://127.0.0.1:{closed}"), TlsConfig::Plain, 2);
    let e = gone.bars(&["NF"], Interval::M1, FROM, TO, &m, &mut c).expect_err("refused");
    assert!(matches!(e, HistoryError::Transport(_)), "{e:?}");
    texts.push(e.to_string());
    texts.push(format!("{e:?}"));

    // The 404's body is kept (scrubbed), cut to 200 bytes at most.
    let nf = texts.iter().find(|t| t.contains("HTTP 404")).expect("a 404");
    assert!(nf.contains("key *** secret *** auth"), "{nf}");
    for text in &texts {
        for secret in [KEY_ID, SECRET, POLY_KEY] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[test]
fn a_malformed_body_is_a_payload_error_not_retried() {
    let server = Server::plain(|_, _| Reply::ok(r#"{"bars":{"AAPL":[{"t":"2024-03-01T14:30:00Z","o":1"#));
    let (mut h, _) = alpaca_client(server.base(), TlsConfig::Plain, 3);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let err = h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("malformed");
    assert!(matches!(&err, HistoryError::Payload(m) if m.contains("malformed history payload")), "{err}");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(c.rejected(RejectKind::BadJson), 1);
    let status = Server::plain(|_, _| Reply::ok(r#"{"status":"ERROR","error":"bad range"}"#));
    let (mut p, _) = polygon_client(status.base(), 3);
    let err = p.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("service error");
    assert!(matches!(&err, HistoryError::Payload(m) if m.contains("bad range")), "{err}");
}

#[test]
fn a_connection_dropped_mid_body_is_a_transport_error_then_a_retry_recovers() {
    let page = alpaca_page(&[("AAPL", &[(t(0), 1), (t(1), 2)])], None);
    let page2 = page.clone();
    let server = Server::plain(move |_, n| match n {
        // The first two responses promise the whole page and stop half way.
        0 | 1 => Reply::Cut { declared: page2.len(), body: page2.as_bytes()[..page2.len() / 2].to_vec() },
        _ => Reply::ok(page2.clone()),
    });
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let (mut once, _) = alpaca_client(server.base(), TlsConfig::Plain, 1);
    let err = once.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("cut");
    assert!(matches!(err, HistoryError::Transport(_)), "{err:?}");
    assert_eq!(c.frames, 0, "a cut body is never decoded");

    let (mut retrying, delays) = alpaca_client(server.base(), TlsConfig::Plain, 3);
    let bars = retrying.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect("recovered");
    assert_eq!(keys(&bars), vec![(0, t(0), 1), (0, t(1), 2)]);
    let rc = retrying.rest_counters();
    assert_eq!((rc.requests, rc.retries, rc.pages, rc.bytes), (2, 1, 1, page.len() as u64));
    assert_eq!(delays.lock().expect("delays").len(), 1);
}

#[test]
fn a_stalled_response_times_out_then_a_retry_recovers() {
    let server = Server::plain(|_, n| {
        let page = Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1)])], None));
        // The first reply comes well after the client's 150 ms read timeout.
        if n == 0 { Reply::Late(Duration::from_millis(1_000), Box::new(page)) } else { page }
    });
    let c = RestConfig {
        read_timeout: Duration::from_millis(150),
        max_attempts: 2,
        ..cfg(server.base(), TlsConfig::Plain)
    };
    let mut h = AlpacaHistory::new(c, Secret::new(KEY_ID), Secret::new(SECRET), AlpacaFeedName::Sip)
        .expect("client")
        .with_sleep(|_| {});
    let m = map(&["AAPL"]);
    let mut fc = FeedCounters::default();
    let bars = h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut fc).expect("recovered after a timeout");
    assert_eq!(keys(&bars), vec![(0, t(0), 1)]);
    let rc = h.rest_counters();
    assert_eq!((rc.requests, rc.retries), (2, 1));
    assert_eq!(server.requests()[1].q("feed"), Some("sip"));
}

#[test]
fn paging_guards_redirects_and_body_limits() {
    let server = Server::plain(|req, _| match req.q("symbols") {
        // A server that hands back the same token forever.
        Some("LOOP") => Reply::ok(alpaca_page(&[("LOOP", &[(t(0), 1)])], Some("same"))),
        // A redirect (elsewhere on this host): not followed, so the keys go nowhere else.
        Some("MOVED") => Reply::json(302, "").header("Location", "/v2/stocks/bars?symbols=ELSEWHERE"),
        _ => Reply::ok(alpaca_page(&[("BIG", &[(t(0), 1), (t(1), 2), (t(2), 3)])], None)),
    });
    let m = map(&["LOOP", "MOVED", "BIG"]);
    let mut c = FeedCounters::default();
    let (mut h, _) = alpaca_client(server.base(), TlsConfig::Plain, 1);
    let e = h.bars(&["LOOP"], Interval::M1, FROM, TO, &m, &mut c).expect_err("endless paging");
    assert!(matches!(&e, HistoryError::Payload(m) if m.contains("repeated")), "{e}");
    assert_eq!(server.requests().len(), 2);

    let e = h.bars(&["MOVED"], Interval::M1, FROM, TO, &m, &mut c).expect_err("redirect");
    assert!(matches!(e, HistoryError::Status { status: 302, .. }), "{e:?}");
    assert_eq!(server.requests().len(), 3, "the redirect was not followed");

    let small = RestConfig { max_body_bytes: 64, max_attempts: 3, ..cfg(server.base(), TlsConfig::Plain) };
    let mut tiny = AlpacaHistory::new(small, Secret::new(KEY_ID), Secret::new(SECRET), AlpacaFeedName::Iex)
        .expect("client")
        .with_sleep(|_| {});
    let e = tiny.bars(&["BIG"], Interval::M1, FROM, TO, &m, &mut c).expect_err("too big");
    assert!(matches!(&e, HistoryError::Payload(m) if m.contains("larger than 64 bytes")), "{e}");
    assert_eq!(server.requests().len(), 4, "a too-large body is not retried");

    // Intervals a provider cannot express are refused before any request.
    let e = tiny.bars(&["BIG"], Interval { secs: 5 }, FROM, TO, &m, &mut c).expect_err("no 5 s timeframe");
    assert!(matches!(&e, HistoryError::Payload(m) if m.contains("no timeframe")), "{e}");
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn polygon_ranges_follow_the_interval() {
    let server = Server::plain(|req, _| Reply::ok(polygon_page(req.path.split('/').nth(4).unwrap_or(""), &[], None)));
    let (mut p, _) = polygon_client(server.base(), 1);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    for secs in [1, 5, 60, 300, 3_600, 7_200, 86_400, 90] {
        assert!(p.bars(&["AAPL"], Interval { secs }, FROM, TO, &m, &mut c).expect("empty page").is_empty());
    }
    let ranges: Vec<String> =
        server.requests().iter().map(|r| r.path.split('/').skip(6).take(2).collect::<Vec<_>>().join("/")).collect();
    assert_eq!(ranges, ["1/second", "5/second", "1/minute", "5/minute", "1/hour", "2/hour", "1/day", "90/second"]);
    // Sub-millisecond bounds round outwards (from down, to up); the filter keeps [from, to).
    p.bars(&["AAPL"], Interval::M1, FROM + 1, TO + 1, &m, &mut c).expect("empty page");
    let last = server.requests().pop().expect("a request");
    let (from_ms, to_ms) = (FROM / 1_000_000, TO / 1_000_000 + 1);
    assert!(last.path.ends_with(&format!("/{from_ms}/{to_ms}")), "{}", last.path);
}

// ---- TLS and configuration --------------------------------------------------------------------

#[test]
fn history_over_tls_with_the_generated_root() {
    let (pem, server_cfg) = cert();
    let server = Server::start(Some(server_cfg), |req, _| match req.q("page_token") {
        None => Reply::ok(alpaca_page(&[("AAPL", &[(t(0), 1)])], Some("n2"))),
        Some(_) => Reply::ok(alpaca_page(&[("AAPL", &[(t(1), 2)])], None)),
    });
    let base = format!("https://127.0.0.1:{}", server.port);
    let (mut h, _) = alpaca_client(base.clone(), TlsConfig::with_extra_root_pem(pem), 1);
    let m = map(&["AAPL"]);
    let mut c = FeedCounters::default();
    let bars = h.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect("bars over TLS");
    assert_eq!(keys(&bars), vec![(0, t(0), 1), (0, t(1), 2)]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.conn == 0 && r.h("apca-api-secret-key") == Some(SECRET)));

    // Without the generated root (public roots only) the certificate is refused.
    let (mut untrusting, _) = alpaca_client(base, TlsConfig::webpki(), 1);
    let err = untrusting.bars(&["AAPL"], Interval::M1, FROM, TO, &m, &mut c).expect_err("unknown issuer");
    assert!(matches!(err, HistoryError::Transport(_)), "{err:?}");
    assert_eq!(server.requests().len(), 2, "no request went out without a verified server");
}

#[test]
fn the_base_url_must_match_the_tls_setting() {
    let plain = RestConfig::new("https://127.0.0.1:1", TlsConfig::Plain);
    assert!(matches!(RestClient::new(plain), Err(RestConfigError::SchemeMismatch { tls: "plain", .. })));
    let verified = RestConfig::new("http://127.0.0.1:1", TlsConfig::webpki());
    assert!(matches!(RestClient::new(verified), Err(RestConfigError::SchemeMismatch { tls: "verified", .. })));
    let path = RestConfig::new("http://127.0.0.1:1/v2", TlsConfig::Plain);
    assert!(matches!(RestClient::new(path), Err(RestConfigError::BadUrl { .. })));
    let junk = RestConfig::new("ftp://127.0.0.1", TlsConfig::Plain);
    assert!(matches!(RestClient::new(junk), Err(RestConfigError::BadUrl { .. })));
    let pem = RestConfig::new("https://127.0.0.1:1", TlsConfig::with_extra_root_pem("not a pem"));
    assert!(matches!(RestClient::new(pem), Err(RestConfigError::Pem(_))));
    let ok = RestClient::new(RestConfig::new("http://127.0.0.1:1/", TlsConfig::Plain)).expect("trailing / is fine");
    assert_eq!(ok.base_url(), "http://127.0.0.1:1");
}
