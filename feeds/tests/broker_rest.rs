//! The trading REST client against a scripted HTTP/1.1 server on 127.0.0.1 written here
//! (std::net, one thread per connection, Content-Length bodies, keep-alive; one case inside
//! rustls with a certificate rcgen generates at run time). Retry delays are recorded by an
//! injected sleep, never slept; the one timeout case waits for a real (short) client timeout.

use engine::records::{OrderType, Side};
use feeds::broker::{BrokerError, BrokerOrder, NewOrder, OrderStatus, Tif, TradingConfig, TradingRest};
use feeds::credentials::Secret;
use feeds::ws::TlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const KEY_ID: &str = "PKBROKERKEY0123456789";
const SECRET: &str = "brokerSeCrEt-7a6b5c4d-never-print-me";

// ---- the test server ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Req {
    fn h(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, answer nothing for this long, then close the connection.
    Hang(Duration),
}

impl Reply {
    fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply::Full { status, headers: Vec::new(), body: body.into() }
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
}

type Handler = Box<dyn FnMut(&Req, usize) -> Reply + Send>;

struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    tls: bool,
}

impl Server {
    fn start(tls: Option<Arc<ServerConfig>>, handler: impl FnMut(&Req, usize) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let (log2, stop2, is_tls) = (log.clone(), stop.clone(), tls.is_some());
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let (log, handler, tls) = (log2.clone(), handler.clone(), tls.clone());
                thread::spawn(move || serve_conn(tcp, tls, &log, &handler));
            }
        });
        Server { port, log, stop, tls: is_tls }
    }

    fn plain(handler: impl FnMut(&Req, usize) -> Reply + Send + 'static) -> Server {
        Server::start(None, handler)
    }

    fn cfg(&self) -> TradingConfig {
        let (scheme, tls) = if self.tls { ("https", TlsConfig::webpki()) } else { ("http", TlsConfig::Plain) };
        let mut c = TradingConfig::new(
            format!("{scheme}://127.0.0.1:{}", self.port),
            format!("ws://127.0.0.1:{}/stream", self.port),
            KEY_ID,
            Secret::new(SECRET),
            tls,
        );
        c.timeout = Duration::from_secs(5);
        c
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().expect("log").clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.is(method, path)).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

fn serve_conn(tcp: TcpStream, tls: Option<Arc<ServerConfig>>, log: &Mutex<Vec<Req>>, handler: &Mutex<Handler>) {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut s: Box<dyn Io> = match tls {
        Some(cfg) => Box::new(StreamOwned::new(ServerConnection::new(cfg).expect("tls"), tcp)),
        None => Box::new(tcp),
    };
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_req(&mut s, &mut buf) else { return };
        let n = {
            let mut log = log.lock().expect("log");
            log.push(req.clone());
            log.len() - 1
        };
        let reply = (handler.lock().expect("handler"))(&req, n);
        match reply {
            Reply::Hang(d) => {
                thread::sleep(d);
                return;
            }
            Reply::Full { status, headers, body } => {
                let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                if status != 204 {
                    out.push_str(&format!("Content-Length: {}\r\nContent-Type: application/json\r\n", body.len()));
                }
                for (k, v) in &headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                if status != 204 {
                    out.push_str(&body);
                }
                if s.write_all(out.as_bytes()).and_then(|()| s.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

fn read_req(s: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> Option<Req> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buf[..end].to_vec()).ok()?;
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?);
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let query = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8(buf.drain(..len).collect()).ok()?;
    Some(Req { method, path: decode(path), query, headers, body })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).expect("utf8"), 16).expect("hex"));
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
        204 => "No Content",
        207 => "Multi-Status",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

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

// ---- helpers ------------------------------------------------------------------------------------

/// An Alpaca order object (numbers as strings, nulls where absent, like the real API).
fn order_json(id: &str, cid: &str, status: &str, qty: u32, filled: u32) -> String {
    let avg = if filled > 0 { r#""189.105""# } else { "null" };
    format!(
        r#"{{"id":"{id}","client_order_id":"{cid}","created_at":"2024-03-01T14:31:00.1Z","updated_at":"2024-03-01T14:31:02.123456789Z",
        "submitted_at":"2024-03-01T14:31:00.1Z","filled_at":null,"asset_id":"b0b6dd9d","symbol":"AAPL","asset_class":"us_equity",
        "notional":null,"qty":"{qty}","filled_qty":"{filled}","filled_avg_price":{avg},"order_class":"","order_type":"limit",
        "type":"limit","side":"buy","time_in_force":"day","limit_price":"189.1","stop_price":null,"status":"{status}",
        "extended_hours":false,"legs":null,"replaced_by":null,"replaces":null}}"#
    )
}

fn new_order(cid: &str) -> NewOrder {
    NewOrder {
        symbol: "AAPL".into(),
        qty: 100,
        side: Side::Buy,
        order_type: OrderType::Limit,
        tif: Tif::Day,
        limit_px_e9: Some(189_100_000_000),
        stop_px_e9: None,
        client_order_id: cid.into(),
        extended_hours: false,
    }
}

/// A client whose retry delays are recorded instead of slept.
fn client(cfg: &TradingConfig) -> (TradingRest, Arc<Mutex<Vec<Duration>>>) {
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let s2 = sleeps.clone();
    let rest = TradingRest::new(cfg).expect("client").with_sleep(move |d| s2.lock().expect("sleeps").push(d));
    (rest, sleeps)
}

fn assert_clean(text: &str) {
    for secret in [KEY_ID, SECRET] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
}

// ---- tests --------------------------------------------------------------------------------------

#[test]
fn submit_sends_alpacas_order_and_reads_the_answer() {
    let srv = Server::plain(|req, _| {
        assert!(req.is("POST", "/v2/orders"), "{req:?}");
        Reply::ok(order_json("ord-1", "rt-42", "accepted", 100, 0))
    });
    let (rest, sleeps) = client(&srv.cfg());
    let o = rest.submit(&new_order("rt-42")).expect("submit");
    let want = BrokerOrder {
        id: "ord-1".into(),
        client_order_id: "rt-42".into(),
        symbol: "AAPL".into(),
        side: Side::Buy,
        order_type: Some(OrderType::Limit),
        qty: 100,
        filled_qty: 0,
        filled_avg_px_e9: None,
        limit_px_e9: Some(189_100_000_000),
        stop_px_e9: None,
        status: OrderStatus::Accepted,
        replaces: None,
        replaced_by: None,
        updated_at_ns: Some(1_709_303_462_123_456_789),
    };
    assert_eq!(o, want);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.h("apca-api-key-id"), r.h("apca-api-secret-key")), (Some(KEY_ID), Some(SECRET)));
    assert_eq!(r.h("content-type"), Some("application/json"));
    let want_body = serde_json::json!({"symbol":"AAPL","qty":"100","side":"buy","type":"limit","time_in_force":"day",
        "limit_price":"189.1","client_order_id":"rt-42","extended_hours":false});
    assert_eq!(r.json(), want_body);
    assert!(sleeps.lock().unwrap().is_empty());
    assert_eq!(rest.stats().requests, 1);
}

#[test]
fn refusals_come_back_as_rejected_with_alpacas_code_and_message() {
    let srv = Server::plain(|req, _| match req.json()["client_order_id"].as_str() {
        Some("bp") => Reply::json(403, r#"{"code":40310000,"message":"insufficient buying power"}"#),
        Some("bad") => Reply::json(422, r#"{"code":42210000,"message":"qty must be > 0"}"#),
        _ => Reply::json(403, r#"{"message":"forbidden."}"#),
    });
    let (rest, sleeps) = client(&srv.cfg());
    assert_eq!(
        rest.submit(&new_order("bp")),
        Err(BrokerError::Rejected { status: 403, code: Some(40310000), message: "insufficient buying power".into() })
    );
    let e = rest.submit_idempotent(&new_order("bad")).unwrap_err();
    assert_eq!(e, BrokerError::Rejected { status: 422, code: Some(42210000), message: "qty must be > 0".into() });
    assert_eq!(e.to_string(), "broker refused the request (HTTP 422, code 42210000): qty must be > 0");
    // A 403 with no Alpaca code is the keys being refused.
    assert_eq!(rest.submit(&new_order("x")), Err(BrokerError::Auth { status: 403 }));
    assert_eq!(srv.requests().len(), 3, "no refusal is retried");
    assert!(sleeps.lock().unwrap().is_empty());
    assert_eq!(rest.stats().rejected, 2);
}

#[test]
fn a_429_is_retried_after_retry_after_and_creates_one_order() {
    let created = Arc::new(Mutex::new(0u32));
    let c2 = created.clone();
    let srv = Server::plain(move |req, n| {
        assert!(req.is("POST", "/v2/orders"));
        if n == 0 {
            return Reply::json(429, r#"{"code":42910000,"message":"rate limit exceeded"}"#).header("Retry-After", "2");
        }
        *c2.lock().unwrap() += 1;
        Reply::ok(order_json("ord-1", "rt-1", "new", 100, 0))
    });
    let (rest, sleeps) = client(&srv.cfg());
    let o = rest.submit(&new_order("rt-1")).expect("submit after 429");
    assert_eq!(o.id, "ord-1");
    assert_eq!(*created.lock().unwrap(), 1);
    assert_eq!(srv.count("POST", "/v2/orders"), 2);
    assert_eq!(*sleeps.lock().unwrap(), vec![Duration::from_secs(2)]);
    let st = rest.stats();
    assert_eq!((st.requests, st.retried_429, st.unknown_outcomes), (2, 1, 0));
}

#[test]
fn x_ratelimit_reset_is_read_against_the_wall_clock_and_429s_give_up_bounded() {
    const NOW_S: i64 = 1_709_303_400;
    let srv = Server::plain(|_, _| {
        Reply::json(429, r#"{"message":"rate limit exceeded"}"#).header("X-RateLimit-Reset", &(NOW_S + 3).to_string())
    });
    let mut cfg = srv.cfg();
    cfg.max_retries = 2;
    let (rest, sleeps) = client(&cfg);
    let rest = rest.with_wall_clock(|| NOW_S * 1_000_000_000 + 500_000_000);
    assert_eq!(rest.account(), Err(BrokerError::RateLimited { attempts: 3 }));
    assert_eq!(*sleeps.lock().unwrap(), vec![Duration::from_millis(2500); 2]);
    assert_eq!(rest.stats().retried_429, 2);
}

#[test]
fn a_timeout_after_the_request_was_read_is_resolved_by_client_id_without_resubmitting() {
    let srv = Server::plain(|req, _| {
        if req.is("POST", "/v2/orders") {
            // The broker took the order, but its answer never arrives in time.
            return Reply::Hang(Duration::from_millis(1500));
        }
        assert!(req.is("GET", "/v2/orders:by_client_order_id"), "{req:?}");
        assert_eq!(req.query.get("client_order_id").map(String::as_str), Some("rt-7"));
        Reply::ok(order_json("ord-7", "rt-7", "new", 100, 0))
    });
    let mut cfg = srv.cfg();
    cfg.timeout = Duration::from_millis(300);
    let (rest, _) = client(&cfg);
    let o = rest.submit_idempotent(&new_order("rt-7")).expect("found by client id");
    assert_eq!((o.id.as_str(), o.client_order_id.as_str()), ("ord-7", "rt-7"));
    assert_eq!(srv.count("POST", "/v2/orders"), 1, "exactly one POST");
    assert_eq!(srv.count("GET", "/v2/orders:by_client_order_id"), 1);
    let st = rest.stats();
    assert_eq!((st.unknown_outcomes, st.lookups, st.resubmits), (1, 1, 0));

    // The plain submit reports the unknown outcome instead of guessing.
    let e = rest.submit(&new_order("rt-8")).unwrap_err();
    assert!(matches!(e, BrokerError::Unknown { .. }), "{e:?}");
    assert_eq!(srv.count("POST", "/v2/orders"), 2);
}

#[test]
fn a_5xx_on_submit_is_looked_up_then_sent_again_and_5xx_on_reads_are_retried() {
    // (POSTs seen, orders created)
    let posts = Arc::new(Mutex::new((0u32, 0u32)));
    let p2 = posts.clone();
    let srv = Server::plain(move |req, _| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/v2/orders") => {
                let mut p = p2.lock().unwrap();
                p.0 += 1;
                if p.0 == 1 {
                    // The first POST fails without creating anything.
                    return Reply::json(500, r#"{"message":"internal server error"}"#);
                }
                p.1 += 1;
                Reply::ok(order_json("ord-9", "rt-9", "new", 100, 0))
            }
            ("GET", "/v2/orders:by_client_order_id") => {
                Reply::json(404, r#"{"code":40410000,"message":"order not found"}"#)
            }
            ("GET", "/v2/account") => Reply::json(503, "<html>upstream down</html>"),
            other => panic!("unexpected {other:?}"),
        }
    });
    let (rest, sleeps) = client(&srv.cfg());
    let o = rest.submit_idempotent(&new_order("rt-9")).expect("second try");
    assert_eq!(o.id, "ord-9");
    assert_eq!(srv.count("POST", "/v2/orders"), 2);
    assert_eq!(srv.count("GET", "/v2/orders:by_client_order_id"), 1, "looked up before sending again");
    assert_eq!(*posts.lock().unwrap(), (2, 1), "one failed POST, one order");
    let st = rest.stats();
    assert_eq!((st.unknown_outcomes, st.lookups, st.resubmits), (1, 1, 1));

    // Reads are retried on 5xx (max_retries = 3: four requests), then Unavailable.
    let e = rest.account().unwrap_err();
    assert!(matches!(&e, BrokerError::Unavailable { detail } if detail.contains("HTTP 503")), "{e:?}");
    assert_eq!(srv.count("GET", "/v2/account"), 4);
    assert_eq!(rest.stats().retried_5xx, 3);
    assert_eq!(sleeps.lock().unwrap().len(), 1 + 3, "one backoff before the resubmit, three for the reads");
}

#[test]
fn a_5xx_then_ok_on_a_read_succeeds() {
    let srv = Server::plain(|req, n| {
        assert!(req.is("GET", "/v2/orders"));
        assert_eq!(req.query.get("status").map(String::as_str), Some("open"));
        if n < 2 {
            Reply::json(502, "bad gateway")
        } else {
            Reply::ok(format!(
                "[{},{}]",
                order_json("a", "c-a", "new", 10, 0),
                order_json("b", "c-b", "partially_filled", 10, 4)
            ))
        }
    });
    let (rest, sleeps) = client(&srv.cfg());
    let open = rest.open_orders().expect("open orders");
    assert_eq!(open.iter().map(|o| (o.id.as_str(), o.filled_qty)).collect::<Vec<_>>(), vec![("a", 0), ("b", 4)]);
    assert_eq!(open[1].filled_avg_px_e9, Some(189_105_000_000));
    assert!(open.iter().all(|o| o.status.is_open()));
    assert_eq!((rest.stats().retried_5xx, sleeps.lock().unwrap().len()), (2, 2));
}

#[test]
fn a_401_fails_at_once() {
    let srv = Server::plain(|_, _| Reply::json(401, r#"{"message":"unauthorized."}"#));
    let (rest, sleeps) = client(&srv.cfg());
    assert_eq!(rest.account(), Err(BrokerError::Auth { status: 401 }));
    assert_eq!(rest.submit_idempotent(&new_order("x")), Err(BrokerError::Auth { status: 401 }));
    assert_eq!(srv.requests().len(), 2);
    assert!(sleeps.lock().unwrap().is_empty());
}

#[test]
fn nothing_listening_is_unavailable_even_for_a_submit() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = TradingConfig::new(
        format!("http://127.0.0.1:{port}"),
        "ws://127.0.0.1:1/stream",
        KEY_ID,
        Secret::new(SECRET),
        TlsConfig::Plain,
    );
    cfg.max_retries = 2;
    let (rest, sleeps) = client(&cfg);
    // Connection refused: the order never left, so it is not an unknown outcome.
    let e = rest.submit(&new_order("rt-x")).unwrap_err();
    assert!(matches!(e, BrokerError::Unavailable { .. }), "{e:?}");
    let st = rest.stats();
    assert_eq!((st.requests, st.retried_transport, st.unknown_outcomes), (3, 2, 0));
    assert_eq!(sleeps.lock().unwrap().len(), 2);
}

#[test]
fn cancel_204_422_404_and_cancel_all_207() {
    let srv = Server::plain(|req, _| match (req.method.as_str(), req.path.as_str()) {
        ("DELETE", "/v2/orders/ok") => Reply::json(204, ""),
        ("DELETE", "/v2/orders/filled") => Reply::json(422, r#"{"code":42210000,"message":"order is not cancelable"}"#),
        ("DELETE", "/v2/orders/nope") => Reply::json(404, r#"{"code":40410000,"message":"order not found"}"#),
        ("DELETE", "/v2/orders") => Reply::json(
            207,
            format!(
                r#"[{{"id":"a","status":200,"body":{}}},{{"id":"b","status":500,"body":{{"code":50010000,"message":"internal"}}}}]"#,
                order_json("a", "c-a", "pending_cancel", 10, 0)
            ),
        ),
        other => panic!("unexpected {other:?}"),
    });
    let (rest, _) = client(&srv.cfg());
    assert_eq!(rest.cancel("ok"), Ok(()));
    assert_eq!(
        rest.cancel("filled"),
        Err(BrokerError::Rejected { status: 422, code: Some(42210000), message: "order is not cancelable".into() })
    );
    assert_eq!(rest.cancel("nope"), Err(BrokerError::NotFound));
    assert_eq!(rest.cancel_all(), Ok(vec![("a".to_owned(), 200), ("b".to_owned(), 500)]));
    assert_eq!(srv.requests().len(), 4);
}

#[test]
fn replace_sends_only_the_changes_and_returns_the_new_order() {
    let srv = Server::plain(|req, _| {
        assert!(req.is("PATCH", "/v2/orders/old-1"), "{req:?}");
        assert_eq!(req.json(), serde_json::json!({"qty":"50","limit_price":"190.5","client_order_id":"rt-42-r1"}));
        let new = order_json("new-1", "rt-42-r1", "pending_new", 50, 0)
            .replace(r#""replaces":null"#, r#""replaces":"old-1""#)
            .replace(r#""limit_price":"189.1""#, r#""limit_price":"190.5""#);
        Reply::ok(new)
    });
    let (rest, _) = client(&srv.cfg());
    let o = rest.replace("old-1", Some(50), Some(190_500_000_000), None, Some("rt-42-r1")).expect("replace");
    assert_eq!((o.id.as_str(), o.replaces.as_deref(), o.qty), ("new-1", Some("old-1"), 50));
    assert_eq!((o.limit_px_e9, o.status), (Some(190_500_000_000), OrderStatus::PendingNew));
    assert!(matches!(rest.replace("old-1", None, None, None, None), Err(BrokerError::Invalid { .. })));
    assert_eq!(srv.requests().len(), 1, "an empty replace is refused before sending");
}

#[test]
fn positions_with_a_short_account_lookups_and_close_position() {
    let srv = Server::plain(|req, _| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/positions") => Reply::ok(
            r#"[{"asset_id":"x","symbol":"AAPL","exchange":"NASDAQ","asset_class":"us_equity","qty":"100","side":"long",
                "avg_entry_price":"189.105","market_value":"18950","cost_basis":"18910.5","unrealized_pl":"39.5","current_price":"189.5"},
               {"symbol":"TSLA","qty":"-20","side":"short","avg_entry_price":"201.3"},
               {"symbol":"MSFT","qty":5,"side":"short","avg_entry_price":400}]"#,
        ),
        ("GET", "/v2/account") => Reply::ok(
            r#"{"id":"acc","status":"ACTIVE","currency":"USD","cash":"100000.25","buying_power":"400001.000000001",
                "equity":"99876.5","last_equity":"100000","portfolio_value":"99876.5","pattern_day_trader":false,
                "trading_blocked":false,"daytrade_count":0}"#,
        ),
        ("GET", "/v2/orders/ord-1") => Reply::ok(order_json("ord-1", "rt-1", "filled", 100, 100)),
        ("GET", "/v2/orders/gone") => Reply::json(404, r#"{"code":40410000,"message":"order not found"}"#),
        ("DELETE", "/v2/positions/TSLA") => Reply::ok(order_json("close-1", "auto", "pending_new", 20, 0)),
        other => panic!("unexpected {other:?}"),
    });
    let (rest, _) = client(&srv.cfg());
    let p = rest.positions().expect("positions");
    assert_eq!(
        p.iter().map(|p| (p.symbol.as_str(), p.qty, p.avg_entry_px_e9)).collect::<Vec<_>>(),
        vec![("AAPL", 100, 189_105_000_000), ("TSLA", -20, 201_300_000_000), ("MSFT", -5, 400_000_000_000)]
    );
    let a = rest.account().expect("account");
    assert_eq!(
        (a.cash_e9, a.buying_power_e9, a.equity_e9),
        (100_000_250_000_000, 400_001_000_000_001, 99_876_500_000_000)
    );
    assert_eq!((a.status.as_str(), a.trading_blocked), ("ACTIVE", false));
    let o = rest.order("ord-1").expect("order").expect("found");
    assert_eq!((o.status, o.filled_qty, o.filled_avg_px_e9), (OrderStatus::Filled, 100, Some(189_105_000_000)));
    assert_eq!(rest.order("gone"), Ok(None));
    let c = rest.close_position("TSLA").expect("close");
    assert_eq!((c.id.as_str(), c.qty), ("close-1", 20));
}

#[test]
fn an_unreadable_answer_is_a_decode_error() {
    let srv = Server::plain(|_, _| Reply::ok(r#"{"id":"o","symbol":"AAPL","side":"buy","qty":"1.5","status":"new"}"#));
    let (rest, _) = client(&srv.cfg());
    let e = rest.order("o").unwrap_err();
    assert!(matches!(&e, BrokerError::Decode { detail } if detail.contains("qty")), "{e:?}");
}

#[test]
fn no_error_or_debug_output_contains_a_secret() {
    let srv = Server::plain(|req, _| {
        let echo = format!(
            "key {} secret {}",
            req.h("apca-api-key-id").unwrap_or(""),
            req.h("apca-api-secret-key").unwrap_or("")
        );
        match req.path.as_str() {
            "/v2/account" => Reply::json(500, format!(r#"{{"message":"{echo}"}}"#)),
            _ => Reply::json(422, format!(r#"{{"code":42210000,"message":"{echo}"}}"#)),
        }
    });
    let mut cfg = srv.cfg();
    cfg.max_retries = 0;
    let (rest, _) = client(&cfg);
    let rejected = rest.submit(&new_order("rt-s")).unwrap_err();
    assert!(
        matches!(&rejected, BrokerError::Rejected { message, .. } if message == "key *** secret ***"),
        "{rejected:?}"
    );
    let unavailable = rest.account().unwrap_err();
    for text in [
        format!("{rejected} {rejected:?}"),
        format!("{unavailable} {unavailable:?}"),
        format!("{rest:?}"),
        format!("{cfg:?}"),
        format!("{:?}", TradingRest::new(&cfg).unwrap()),
    ] {
        assert_clean(&text);
    }
    let bad_url = TradingConfig { base_url: "ftp://x".into(), ..cfg.clone() };
    let e = TradingRest::new(&bad_url).unwrap_err();
    assert!(matches!(e, BrokerError::Config { .. }), "{e:?}");
    assert_clean(&format!("{e} {e:?}"));
}

#[test]
fn https_with_a_generated_certificate_trusted_as_the_extra_root() {
    let (pem, server_cfg) = cert();
    let srv = Server::start(Some(server_cfg), |req, _| {
        assert!(req.is("GET", "/v2/account"));
        Reply::ok(r#"{"status":"ACTIVE","cash":"1","buying_power":"2","equity":"3","trading_blocked":true}"#)
    });
    let mut cfg = srv.cfg();
    cfg.tls = TlsConfig::with_extra_root_pem(pem);
    let (rest, _) = client(&cfg);
    let a = rest.account().expect("account over TLS");
    assert_eq!((a.cash_e9, a.equity_e9, a.trading_blocked), (1_000_000_000, 3_000_000_000, true));

    // Without the extra root the certificate is refused, at once (not retried, nothing sent).
    let (untrusting, sleeps) = client(&srv.cfg());
    let e = untrusting.account().unwrap_err();
    assert!(matches!(e, BrokerError::Unavailable { .. }), "{e:?}");
    assert!(sleeps.lock().unwrap().is_empty(), "{e:?}");
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn a_late_first_copy_refused_as_a_duplicate_is_found_not_doubled() {
    // The first POST times out; the lookup does not see the order yet; the second POST is
    // refused because the first copy landed meanwhile (Alpaca's unique client order id); the
    // second lookup finds it.
    let front = Server::plain(|req, n| match (n, req.method.as_str(), req.path.as_str()) {
        (0, "POST", "/v2/orders") => Reply::Hang(Duration::from_millis(1500)),
        (1, "GET", "/v2/orders:by_client_order_id") => {
            Reply::json(404, r#"{"code":40410000,"message":"order not found"}"#)
        }
        (2, "POST", "/v2/orders") => {
            Reply::json(422, r#"{"code":40010001,"message":"client_order_id must be unique"}"#)
        }
        (3, "GET", "/v2/orders:by_client_order_id") => Reply::ok(order_json("ord-d", "rt-d", "new", 100, 0)),
        other => panic!("unexpected {other:?}"),
    });
    let mut cfg = front.cfg();
    cfg.timeout = Duration::from_millis(300);
    let (rest, _) = client(&cfg);
    let o = rest.submit_idempotent(&new_order("rt-d")).expect("found after the duplicate refusal");
    assert_eq!(o.id, "ord-d");
    let methods: Vec<String> = front.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        methods,
        vec![
            "POST /v2/orders",
            "GET /v2/orders:by_client_order_id",
            "POST /v2/orders",
            "GET /v2/orders:by_client_order_id"
        ]
    );
    let st = rest.stats();
    assert_eq!((st.unknown_outcomes, st.lookups, st.resubmits), (1, 2, 1));
}

#[test]
fn the_clients_are_thread_safe_where_the_gateway_needs_it() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TradingRest>();
    send::<feeds::broker::TradeUpdatesClient>();
}
