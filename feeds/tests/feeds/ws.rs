//! The websocket transport over real sockets on 127.0.0.1: a tiny blocking test server per
//! test (std::net + tungstenite::accept, optionally inside rustls with a certificate rcgen
//! generates at run time) and the real non-blocking client driven by a `mio::Poll` loop.

use engine::records::SymbolId;
use feeds::ws::{CloseReason, ConnState, Connector, TlsConfig, Transition, WsClient, WsConfig, WsError};
use feeds::{Control, FeedCounters, FeedMsg, SymbolMap, alpaca};
use mio::{Events, Poll, Token};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

const MS: i64 = 1_000_000;
const TOKEN: Token = Token(7);

/// The test's clock: ns since the first call (the transport itself never reads a clock).
#[allow(clippy::disallowed_methods)] // reason: tests drive real sockets against wall time
fn now_ns() -> i64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

/// A self-signed certificate for localhost and 127.0.0.1: its PEM (for the client's extra
/// root) and a rustls server config (ring) serving it.
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

/// The server side's stream: plain TCP or rustls, blocking.
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

type SrvWs = WebSocket<SrvStream>;

/// Accept one connection on `listener` and finish the (TLS and) websocket handshake.
fn accept(listener: &TcpListener, tls: Option<&Arc<ServerConfig>>) -> Result<SrvWs, String> {
    let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let stream = match tls {
        Some(cfg) => {
            let conn = ServerConnection::new(cfg.clone()).map_err(|e| e.to_string())?;
            SrvStream::Tls(Box::new(StreamOwned::new(conn, tcp)))
        }
        None => SrvStream::Plain(tcp),
    };
    tungstenite::accept(stream).map_err(|e| e.to_string())
}

/// Read (answering pings) until the client goes away or the read times out.
fn serve_until_gone(ws: &mut SrvWs) {
    while ws.read().is_ok() {}
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// What one driven run saw.
#[derive(Default)]
struct Seen {
    frames: Vec<(Vec<u8>, i64)>,
    transitions: Vec<(Transition, i64)>,
}

/// The feed thread's loop: wait on the `Poll` until readiness or the client's next deadline,
/// then poll the client (only then: edge-triggered readiness must be drained by the client).
/// `on_change` runs after each transition (to send auth, say); stops when `done` says so or
/// after `limit_ms`.
fn drive(
    client: &mut WsClient,
    poll: &mut Poll,
    seen: &mut Seen,
    limit_ms: i64,
    mut on_change: impl FnMut(&mut WsClient, &Transition),
    mut done: impl FnMut(&Seen) -> bool,
) {
    let mut events = Events::with_capacity(16);
    let end = now_ns() + limit_ms * MS;
    while !done(seen) {
        let now = now_ns();
        assert!(now < end, "not done after {limit_ms} ms: {:?}", seen.transitions);
        let wait = (client.next_deadline_ns().saturating_sub(now)).clamp(0, 50 * MS);
        poll.poll(&mut events, Some(Duration::from_nanos(wait as u64))).expect("poll");
        let ready = events.iter().any(|e| e.token() == TOKEN);
        if !ready && now_ns() < client.next_deadline_ns() {
            continue;
        }
        let frames = &mut seen.frames;
        if let Some(t) = client.poll(&now_ns, &mut |payload: &[u8], recv_ns| frames.push((payload.to_vec(), recv_ns))) {
            on_change(client, &t);
            seen.transitions.push((t, now_ns()));
        }
    }
}

fn test_cfg() -> WsConfig {
    WsConfig {
        ping_interval_ns: 100 * MS,
        dead_after_ns: 400 * MS,
        connect_timeout_ns: 2_000 * MS,
        backoff_base_ns: 20 * MS,
        backoff_cap_ns: 200 * MS,
        jitter_seed: 7,
    }
}

const BAR_1431: &str = r#"{"T":"b","S":"AAPL","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"t":"2024-03-01T14:31:00Z","n":412,"vw":189.08}"#;
const BAR_1432: &str = r#"{"T":"b","S":"AAPL","o":189.12,"h":189.30,"l":189.00,"c":189.25,"v":40000,"t":"2024-03-01T14:32:00Z","n":300,"vw":189.15}"#;

#[test]
fn alpaca_frames_over_tls_with_the_generated_root_decode() {
    let (pem, server_cfg) = cert();
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener, Some(&server_cfg)).expect("server handshake");
        ws.send(Message::text(r#"[{"T":"success","msg":"connected"}]"#)).expect("send");
        // The client's auth goes through the transport's send path.
        let auth = ws.read().expect("auth").into_text().expect("text");
        assert_eq!(auth.as_str(), alpaca::auth_message("K", "S"));
        ws.send(Message::text(r#"[{"T":"success","msg":"authenticated"}]"#)).expect("send");
        ws.send(Message::text(format!("[{BAR_1431}]"))).expect("send");
        ws.send(Message::binary(format!("[{BAR_1432}]").into_bytes())).expect("send"); // JSON in a binary frame
        serve_until_gone(&mut ws);
    });

    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::with_extra_root_pem(pem)).expect("connector");
    let url = format!("wss://127.0.0.1:{port}/v2/iex");
    let mut client = WsClient::new(&url, connector, test_cfg(), poll.registry(), TOKEN).expect("client");
    let mut seen = Seen::default();
    let send_auth = |c: &mut WsClient, t: &Transition| {
        if *t == Transition::Opened {
            c.send_text(&alpaca::auth_message("K", "S")).expect("send auth");
        }
    };
    drive(&mut client, &mut poll, &mut seen, 3_000, send_auth, |s| s.frames.len() == 4);
    assert_eq!(seen.transitions.iter().map(|t| &t.0).collect::<Vec<_>>(), [&Transition::Opened]);
    assert_eq!(client.state(), ConnState::Open);

    let mut symbols = SymbolMap::new();
    symbols.insert("AAPL", SymbolId(0)).expect("symbol");
    let (mut counters, mut msgs) = (FeedCounters::default(), Vec::new());
    let mut last_recv = 0;
    for (payload, recv_ns) in &seen.frames {
        assert!(*recv_ns >= last_recv, "receive times are monotonic");
        last_recv = *recv_ns;
        alpaca::decode_stream(payload, *recv_ns, &symbols, &mut counters, &mut msgs);
    }
    assert!(matches!(msgs[0], FeedMsg::Control(Control::Connected)), "{:?}", msgs[0]);
    assert!(matches!(msgs[1], FeedMsg::Control(Control::Authenticated)), "{:?}", msgs[1]);
    let bars: Vec<_> = msgs[2..]
        .iter()
        .map(|m| match m {
            FeedMsg::Bar(b) => (b.bar.high_px_e9, b.ts_recv_ns),
            other => panic!("a bar, got {other:?}"),
        })
        .collect();
    assert_eq!(bars, [(189_200_000_000, seen.frames[2].1), (189_300_000_000, seen.frames[3].1)]);
    assert_eq!(counters.bars, 2);

    // A live server answers pings: the connection stays open past `dead_after` (400 ms).
    let t0 = now_ns();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |_| now_ns() - t0 > 600 * MS);
    assert_eq!(client.state(), ConnState::Open, "{:?}", seen.transitions);
    let c = client.counters();
    assert!(c.pings_sent >= 4, "{c:?}");
    assert_eq!((c.attempts, c.opens, c.reconnects, c.connect_failures, c.dead_detected, c.frames), (1, 1, 0, 0, 0, 4));
    client.close();
    server.join().expect("server");
}

#[test]
fn a_silent_server_is_detected_as_dead_within_the_timeout() {
    let (listener, port) = listener();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        // Handshake, then neither send nor read (so pings go unanswered) until the test ends.
        let _ws = accept(&listener, None).expect("server handshake");
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
    });
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::Plain).expect("connector");
    let cfg = test_cfg();
    let mut client = WsClient::new(&format!("ws://127.0.0.1:{port}/"), connector, cfg.clone(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| s.transitions.len() == 2);
    done_tx.send(()).expect("signal");
    server.join().expect("server");

    let (opened_at, closed_at) = (seen.transitions[0].1, seen.transitions[1].1);
    assert_eq!(seen.transitions[0].0, Transition::Opened);
    let Transition::Closed { reason: CloseReason::Dead { silent_ns }, retry_at_ns } = seen.transitions[1].0.clone()
    else {
        panic!("dead, got {:?}", seen.transitions[1])
    };
    // Declared dead no earlier than `dead_after` and soon after it (generous slack for a busy 2-core box).
    assert!(silent_ns >= cfg.dead_after_ns, "{silent_ns}");
    let took = closed_at - opened_at;
    assert!((cfg.dead_after_ns..cfg.dead_after_ns + 300 * MS).contains(&took), "detected after {} ms", took / MS);
    // The first retry is within [base/2, base] of the close.
    assert!(retry_at_ns - closed_at <= cfg.backoff_base_ns, "{}", retry_at_ns - closed_at);
    let c = client.counters();
    assert!(c.pings_sent >= 3, "a ping every 100 ms over 400 ms: {c:?}");
    assert_eq!((c.opens, c.dead_detected, c.connect_failures, c.frames), (1, 1, 0, 0));
}

#[test]
fn a_server_close_is_seen_and_the_client_reconnects() {
    let (listener, port) = listener();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut first = accept(&listener, None).expect("first handshake");
        first.send(Message::text("one")).expect("send");
        first.close(None).expect("close");
        serve_until_gone(&mut first); // until the client's close reply
        drop(first);
        let mut second = accept(&listener, None).expect("second handshake");
        second.send(Message::text("two")).expect("send");
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        let _ = second.close(None);
    });
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::Plain).expect("connector");
    let mut client = WsClient::new(&format!("ws://127.0.0.1:{port}/"), connector, test_cfg(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| s.frames.len() == 2 && s.transitions.len() == 3);
    done_tx.send(()).expect("signal");
    server.join().expect("server");

    let ts: Vec<_> = seen.transitions.iter().map(|t| t.0.clone()).collect();
    assert_eq!(ts[0], Transition::Opened);
    assert!(matches!(ts[1], Transition::Closed { reason: CloseReason::PeerClosed(_), .. }), "{ts:?}");
    assert_eq!(ts[2], Transition::Opened);
    let payloads: Vec<&[u8]> = seen.frames.iter().map(|f| f.0.as_slice()).collect();
    assert_eq!(payloads, [b"one".as_slice(), b"two".as_slice()]);
    let c = client.counters();
    assert_eq!((c.attempts, c.opens, c.reconnects, c.connect_failures, c.dead_detected, c.frames), (2, 2, 1, 0, 0, 2));
}

#[test]
fn a_certificate_from_an_unknown_root_fails_the_tls_handshake() {
    let (_pem, server_cfg) = cert();
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        // The handshake must fail on the server side too (the client rejects the certificate).
        accept(&listener, Some(&server_cfg)).err().expect("the server handshake fails")
    });
    let mut poll = Poll::new().expect("poll");
    // Bundled roots only: the generated certificate is not trusted.
    let connector = Connector::new(&TlsConfig::webpki()).expect("connector");
    let mut client = WsClient::new(&format!("wss://127.0.0.1:{port}/"), connector, test_cfg(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| !s.transitions.is_empty());
    let server_err = server.join().expect("server");

    let Transition::Closed { reason, .. } = seen.transitions[0].0.clone() else { panic!("{:?}", seen.transitions) };
    let CloseReason::Tls(why) = &reason else { panic!("a TLS failure, got {reason:?}") };
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(reason.to_string().starts_with("TLS handshake failed: invalid peer certificate"), "{reason}");
    assert!(server_err.contains("alert") || server_err.contains("Certificate"), "{server_err}");
    assert!(seen.frames.is_empty());
    let c = client.counters();
    assert_eq!((c.attempts, c.opens, c.connect_failures), (1, 0, 1));
}

#[test]
fn refused_connects_back_off_and_configuration_mistakes_are_errors() {
    // A port nobody listens on: bind, note the port, close.
    let port = listener().1;
    let mut poll = Poll::new().expect("poll");
    let plain = Connector::new(&TlsConfig::Plain).expect("connector");
    let mut client =
        WsClient::new(&format!("ws://127.0.0.1:{port}/"), plain.clone(), test_cfg(), poll.registry(), TOKEN)
            .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| s.transitions.len() == 3);
    let mut last_gap = 0;
    for (t, at) in &seen.transitions {
        let Transition::Closed { reason: CloseReason::ConnectFailed(_), retry_at_ns } = t else { panic!("{t:?}") };
        last_gap = retry_at_ns - at;
    }
    // Third delay: d = 20 ms * 4 = 80 ms, jittered into [40, 80] ms.
    assert!((40 * MS..=80 * MS).contains(&last_gap), "{last_gap}");
    assert_eq!((client.counters().attempts, client.counters().connect_failures), (3, 3));

    // Plain text to a TLS URL, or TLS to a plain URL, is refused up front; so is a bad PEM.
    let tls = Connector::new(&TlsConfig::webpki()).expect("connector");
    let reg = poll.registry();
    let cfg = test_cfg();
    assert!(matches!(
        feeds::ws::Conn::connect("wss://127.0.0.1:1/", &plain, &cfg, reg, TOKEN, 0),
        Err(WsError::Scheme { .. })
    ));
    assert!(matches!(
        feeds::ws::Conn::connect("ws://127.0.0.1:1/", &tls, &cfg, reg, TOKEN, 0),
        Err(WsError::Scheme { .. })
    ));
    assert!(matches!(Connector::new(&TlsConfig::with_extra_root_pem("not a pem")), Err(WsError::Pem(_))));
}

#[test]
fn thousands_of_frames_over_tls_arrive_complete_and_in_order() {
    // Many small frames written back to back coalesce into TLS records and socket reads of
    // any size; every one must come out, in order, with edge-triggered readiness.
    const N: usize = 5_000;
    let (pem, server_cfg) = cert();
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener, Some(&server_cfg)).expect("server handshake");
        for i in 0..N {
            ws.write(Message::text(format!(r#"[{{"T":"n","i":{i}}}]"#))).expect("write");
        }
        ws.flush().expect("flush");
        serve_until_gone(&mut ws);
    });
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::with_extra_root_pem(pem)).expect("connector");
    let mut client = WsClient::new(&format!("wss://localhost:{port}/"), connector, test_cfg(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 5_000, |_, _| {}, |s| s.frames.len() == N);
    for (i, (payload, _)) in seen.frames.iter().enumerate() {
        assert_eq!(payload, format!(r#"[{{"T":"n","i":{i}}}]"#).as_bytes());
    }
    assert_eq!(seen.transitions.len(), 1, "{:?}", seen.transitions);
    client.close();
    server.join().expect("server");
}

#[test]
fn an_http_429_on_the_upgrade_and_a_dropped_socket_are_named() {
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        // First: a reconnect storm's answer to the upgrade. Second: accept, then drop the TCP
        // connection without a websocket close.
        let (mut tcp, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).expect("request");
        tcp.write_all(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n").expect("429");
        drop(tcp);
        let ws = accept(&listener, None).expect("second handshake");
        drop(ws);
    });
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::Plain).expect("connector");
    let mut client = WsClient::new(&format!("ws://127.0.0.1:{port}/"), connector, test_cfg(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| s.transitions.len() == 3);
    server.join().expect("server");
    let ts: Vec<_> = seen.transitions.iter().map(|t| t.0.clone()).collect();
    assert!(matches!(ts[0], Transition::Closed { reason: CloseReason::HttpStatus(429), .. }), "{ts:?}");
    assert_eq!(ts[1], Transition::Opened);
    assert!(matches!(ts[2], Transition::Closed { reason: CloseReason::Eof, .. }), "{ts:?}");
    assert_eq!(client.state(), ConnState::Closed(CloseReason::Eof));
    let c = client.counters();
    assert_eq!((c.attempts, c.opens, c.reconnects, c.connect_failures), (2, 1, 0, 1));
}

#[test]
fn a_handshake_that_never_finishes_times_out() {
    // The kernel completes the TCP handshake into the backlog, but nobody accepts: the TLS
    // ClientHello goes unanswered.
    let (listener, port) = listener();
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::webpki()).expect("connector");
    let cfg = WsConfig { connect_timeout_ns: 300 * MS, ..test_cfg() };
    let mut client =
        WsClient::new(&format!("wss://127.0.0.1:{port}/"), connector, cfg, poll.registry(), TOKEN).expect("client");
    let mut seen = Seen::default();
    let t0 = now_ns();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |s| !s.transitions.is_empty());
    let took = seen.transitions[0].1 - t0;
    assert!(matches!(seen.transitions[0].0, Transition::Closed { reason: CloseReason::ConnectTimeout, .. }));
    assert!((300 * MS..600 * MS).contains(&took), "{} ms", took / MS);
    drop(listener);
}

#[test]
fn the_client_checks_its_url_up_front() {
    let poll = Poll::new().expect("poll");
    let plain = Connector::new(&TlsConfig::Plain).expect("connector");
    let cfg = test_cfg();
    let new = |url: &str, c: &Connector| WsClient::new(url, c.clone(), cfg.clone(), poll.registry(), TOKEN);
    assert!(matches!(new("wss://127.0.0.1:1/", &plain), Err(WsError::Scheme { .. })));
    assert!(matches!(new("http://127.0.0.1:1/", &plain), Err(WsError::Scheme { .. })));
    assert!(matches!(new("not a url", &plain), Err(WsError::BadUrl(_))));
    assert!(new("ws://127.0.0.1:1/", &plain).is_ok());
}

#[test]
fn server_pings_are_answered_with_their_payload() {
    // Alpaca drops clients that fall behind on its keepalive pings: the client's poll answers
    // them (tungstenite queues the pong, the poll flushes it).
    let (listener, port) = listener();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener, None).expect("server handshake");
        ws.send(Message::Ping(b"hb-1".to_vec().into())).expect("ping");
        loop {
            match ws.read().expect("read") {
                Message::Pong(p) => break p.to_vec(),
                Message::Ping(_) => {} // the client's own keepalive
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let mut poll = Poll::new().expect("poll");
    let connector = Connector::new(&TlsConfig::Plain).expect("connector");
    let mut client = WsClient::new(&format!("ws://127.0.0.1:{port}/"), connector, test_cfg(), poll.registry(), TOKEN)
        .expect("client");
    let mut seen = Seen::default();
    drive(&mut client, &mut poll, &mut seen, 3_000, |_, _| {}, |_| server.is_finished());
    assert_eq!(server.join().expect("server"), b"hb-1");
    assert!(seen.frames.is_empty(), "control frames are not handed to the caller");
}
