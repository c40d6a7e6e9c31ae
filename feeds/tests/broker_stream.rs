//! The trade_updates client over real sockets on 127.0.0.1 against a scripted blocking
//! tungstenite server per test: the authenticate/listen handshake (the exact messages the
//! server receives), every kind of update in text and binary frames, malformed and unknown
//! frames, a dropped connection and the reconnect, refused keys, and no secret anywhere.

use engine::records::{OrderType, Side};
use feeds::broker::{OrderStatus, StreamEvent, TradeEvent, TradeUpdate, TradeUpdatesClient, TradingConfig};
use feeds::credentials::Secret;
use feeds::ws::{TlsConfig, WsConfig};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tungstenite::{Bytes, Message, WebSocket};

const KEY_ID: &str = "PKSTREAMKEY0123456789";
const SECRET: &str = "streamSeCrEt-1f2e3d4c-never-print-me";
const MS: i64 = 1_000_000;

/// The test's clock: ns since the first call.
#[allow(clippy::disallowed_methods)] // reason: tests drive real sockets against wall time
fn now_ns() -> i64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as i64 + 1
}

type SrvWs = WebSocket<TcpStream>;

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn accept(l: &TcpListener) -> SrvWs {
    let (tcp, _) = l.accept().expect("accept");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    tungstenite::accept(tcp).expect("ws handshake")
}

/// The next text or binary message's text (pings are answered by tungstenite).
fn next_text(ws: &mut SrvWs) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).expect("utf8"),
            _ => {}
        }
    }
}

fn send(ws: &mut SrvWs, text: &str) {
    ws.send(Message::text(text)).expect("send");
}

fn send_binary(ws: &mut SrvWs, text: &str) {
    ws.send(Message::Binary(Bytes::from(text.as_bytes().to_vec()))).expect("send");
}

const AUTHORIZED: &str = r#"{"stream":"authorization","data":{"action":"authenticate","status":"authorized"}}"#;
const LISTENING: &str = r#"{"stream":"listening","data":{"streams":["trade_updates"]}}"#;

/// The server's side of the handshake; returns the two messages it received (as JSON).
fn handshake(ws: &mut SrvWs) -> (serde_json::Value, serde_json::Value) {
    let auth: serde_json::Value = serde_json::from_str(&next_text(ws)).expect("auth JSON");
    send_binary(ws, AUTHORIZED);
    let listen: serde_json::Value = serde_json::from_str(&next_text(ws)).expect("listen JSON");
    send(ws, LISTENING);
    (auth, listen)
}

fn cfg(port: u16) -> TradingConfig {
    TradingConfig::new(
        format!("http://127.0.0.1:{port}"),
        format!("ws://127.0.0.1:{port}/stream"),
        KEY_ID,
        Secret::new(SECRET),
        TlsConfig::Plain,
    )
}

fn fast_ws() -> WsConfig {
    WsConfig { backoff_base_ns: 20 * MS, backoff_cap_ns: 100 * MS, ..WsConfig::default() }
}

/// Poll until `done(events)` or fail after `limit_ms`.
fn drive(
    client: &mut TradeUpdatesClient,
    events: &mut Vec<StreamEvent>,
    limit_ms: i64,
    done: impl Fn(&[StreamEvent]) -> bool,
) {
    let end = now_ns() + limit_ms * MS;
    while !done(events) {
        assert!(now_ns() < end, "not done after {limit_ms} ms: {events:#?}");
        client.poll(Duration::from_millis(20), &now_ns, events);
    }
}

fn updates(events: &[StreamEvent]) -> Vec<&TradeUpdate> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// An Alpaca order object as trade_updates carries it.
fn order(id: &str, status: &str, qty: u32, filled: u32, avg: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{id}","client_order_id":"rt-{id}","created_at":"2024-03-01T14:31:00Z","updated_at":"2024-03-01T14:31:02.5Z",
        "submitted_at":"2024-03-01T14:31:00Z","asset_id":"a1","symbol":"AAPL","asset_class":"us_equity","qty":"{qty}",
        "filled_qty":"{filled}","filled_avg_price":{avg},"order_class":"","order_type":"limit","type":"limit","side":"sell",
        "time_in_force":"day","limit_price":"189.1","stop_price":null,"status":"{status}","extended_hours":false,
        "legs":null{extra}}}"#
    )
}

fn update(event: &str, order: &str, fill: &str) -> String {
    format!(
        r#"{{"stream":"trade_updates","data":{{"event":"{event}","timestamp":"2024-03-01T14:31:02.5Z","order":{order}{fill}}}}}"#
    )
}

#[test]
fn handshake_then_every_kind_of_update_in_order() {
    let (l, port) = listener();
    let (tx, rx) = mpsc::channel();
    let srv = thread::spawn(move || {
        let mut ws = accept(&l);
        let auth: serde_json::Value = serde_json::from_str(&next_text(&mut ws)).expect("auth JSON");
        // The client must wait for `authorized` before it sends `listen`.
        ws.get_mut().set_read_timeout(Some(Duration::from_millis(150))).unwrap();
        let early = ws.read();
        assert!(early.is_err(), "the client sent {early:?} before it was authorized");
        ws.get_mut().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_binary(&mut ws, AUTHORIZED);
        let listen: serde_json::Value = serde_json::from_str(&next_text(&mut ws)).expect("listen JSON");
        send(&mut ws, LISTENING);
        tx.send((auth, listen)).unwrap();

        let partial = order("o1", "partially_filled", 100, 40, r#""189.11""#, "");
        send(
            &mut ws,
            &update(
                "partial_fill",
                &partial,
                r#","execution_id":"e1","price":"189.11","qty":"40","position_qty":"-40""#,
            ),
        );
        let filled = order("o1", "filled", 100, 100, r#""189.116""#, "");
        // Binary frame, and numbers as JSON numbers.
        send_binary(
            &mut ws,
            &update("fill", &filled, r#","execution_id":"e2","price":189.12,"qty":60,"position_qty":-100"#),
        );
        send(&mut ws, "{not json");
        send(&mut ws, r#"{"stream":"trade_updates","data":{"event":"fill"}}"#); // no order
        send(&mut ws, &update("canceled", &order("o2", "canceled", 10, 0, "null", ""), ""));
        let old = order("o3", "replaced", 10, 0, "null", r#","replaced_by":"o4","replaces":null"#);
        send(&mut ws, &update("replaced", &old, ""));
        send(&mut ws, &update("rejected", &order("o5", "rejected", 10, 0, "null", ""), ""));
        send(&mut ws, &update("trade_bust", &order("o6", "zombie", 10, 0, "null", ""), ""));
        send(&mut ws, r#"{"stream":"account_updates","data":{}}"#);
        send(&mut ws, &update("order_cancel_rejected", &order("o7", "new", 10, 0, "null", ""), ""));
        while ws.read().is_ok() {}
    });

    let mut client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| updates(ev).len() >= 7);

    let (auth, listen) = rx.recv().unwrap();
    assert_eq!(auth, serde_json::json!({"action":"authenticate","data":{"key_id":KEY_ID,"secret_key":SECRET}}));
    assert_eq!(listen, serde_json::json!({"action":"listen","data":{"streams":["trade_updates"]}}));

    assert_eq!(events[0], StreamEvent::Connected);
    assert_eq!(events.len(), 8, "{events:#?}");
    let u = updates(&events);
    let kinds: Vec<&TradeEvent> = u.iter().map(|u| &u.event).collect();
    assert_eq!(
        kinds,
        vec![
            &TradeEvent::PartialFill,
            &TradeEvent::Fill,
            &TradeEvent::Canceled,
            &TradeEvent::Replaced,
            &TradeEvent::Rejected,
            &TradeEvent::Unknown("trade_bust".into()),
            &TradeEvent::OrderCancelRejected,
        ]
    );
    let p = u[0];
    assert_eq!((p.price_e9, p.qty, p.position_qty), (Some(189_110_000_000), Some(40), Some(-40)));
    assert_eq!((p.execution_id.as_deref(), p.timestamp_ns), (Some("e1"), Some(1_709_303_462_500_000_000)));
    assert_eq!((p.order.id.as_str(), p.order.client_order_id.as_str()), ("o1", "rt-o1"));
    assert_eq!(
        (p.order.side, p.order.order_type, p.order.status.clone()),
        (Side::Sell, Some(OrderType::Limit), OrderStatus::PartiallyFilled)
    );
    assert_eq!((p.order.filled_qty, p.order.filled_avg_px_e9), (40, Some(189_110_000_000)));
    let f = u[1];
    assert_eq!((f.price_e9, f.qty, f.position_qty), (Some(189_120_000_000), Some(60), Some(-100)));
    assert_eq!(
        (f.order.status.clone(), f.order.filled_qty, f.order.filled_avg_px_e9),
        (OrderStatus::Filled, 100, Some(189_116_000_000))
    );
    assert_eq!((u[2].order.status.clone(), u[2].price_e9), (OrderStatus::Canceled, None));
    assert_eq!((u[3].order.id.as_str(), u[3].order.replaced_by.as_deref()), ("o3", Some("o4")));
    assert_eq!(u[5].order.status, OrderStatus::Unknown("zombie".into()));
    assert!(u.windows(2).all(|w| 0 < w[0].recv_ns && w[0].recv_ns <= w[1].recv_ns));

    // Malformed and other-stream frames were skipped, not fatal.
    let st = client.stats();
    // 2 session replies + 10 frames after them.
    assert_eq!((st.connects, st.disconnects, st.frames), (1, 0, 12));
    assert_eq!((st.updates, st.unknown_events, st.malformed_frames), (7, 2, 2));
    client.close();
    srv.join().unwrap();
}

#[test]
fn a_dropped_connection_is_reported_and_the_client_reconnects() {
    let (l, port) = listener();
    let srv = thread::spawn(move || {
        for (i, id) in ["first", "second"].into_iter().enumerate() {
            let mut ws = accept(&l);
            handshake(&mut ws);
            send(&mut ws, &update("new", &order(id, "new", 10, 0, "null", ""), ""));
            if i == 0 {
                // Drop the TCP connection without a websocket close.
                ws.get_mut().shutdown(std::net::Shutdown::Both).unwrap();
                drop(ws);
            } else {
                while ws.read().is_ok() {}
            }
        }
    });
    let mut client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| updates(ev).len() >= 2);
    let shape: Vec<&str> = events
        .iter()
        .map(|e| match e {
            StreamEvent::Connected => "connected",
            StreamEvent::Update(_) => "update",
            StreamEvent::Disconnected { .. } => "disconnected",
            StreamEvent::AuthFailed { .. } => "auth_failed",
        })
        .collect();
    assert_eq!(shape, vec!["connected", "update", "disconnected", "connected", "update"], "{events:#?}");
    assert_eq!(updates(&events).iter().map(|u| u.order.id.as_str()).collect::<Vec<_>>(), vec!["first", "second"]);
    let st = client.stats();
    assert_eq!((st.connects, st.disconnects, st.updates), (2, 1, 2));
    client.close();
    srv.join().unwrap();
}

#[test]
fn a_listen_reply_without_trade_updates_closes_and_retries() {
    let (l, port) = listener();
    let srv = thread::spawn(move || {
        let mut ws = accept(&l);
        next_text(&mut ws);
        send(&mut ws, AUTHORIZED);
        next_text(&mut ws);
        send(&mut ws, r#"{"stream":"listening","data":{"streams":[]}}"#);
        while ws.read().is_ok() {}
        let mut ws = accept(&l);
        handshake(&mut ws);
        while ws.read().is_ok() {}
    });
    let mut client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| ev.contains(&StreamEvent::Connected));
    assert!(
        matches!(&events[0], StreamEvent::Disconnected { reason } if reason.contains("trade_updates")),
        "{events:#?}"
    );
    assert_eq!(events.len(), 2, "{events:#?}");
    client.close();
    srv.join().unwrap();
}

#[test]
fn refused_keys_are_fatal_never_retried_and_never_show_the_secret() {
    let (l, port) = listener();
    let srv = thread::spawn(move || {
        let mut ws = accept(&l);
        let auth = next_text(&mut ws);
        assert!(auth.contains(SECRET));
        // A server that echoes what it got.
        let reply = format!(
            r#"{{"stream":"authorization","data":{{"action":"authenticate","status":"unauthorized","message":"bad key {KEY_ID} / {SECRET}"}}}}"#
        );
        send(&mut ws, &reply);
        while ws.read().is_ok() {}
        l
    });
    let mut client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| !ev.is_empty());
    let [StreamEvent::AuthFailed { message }] = events.as_slice() else { panic!("{events:#?}") };
    assert!(message.contains("unauthorized") && message.contains("APCA_API_KEY_ID"), "{message}");
    // Keep polling well past the reconnect backoff: nothing happens.
    for _ in 0..10 {
        client.poll(Duration::from_millis(20), &now_ns, &mut events);
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    let l = srv.join().unwrap();
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_err(), "the client connected again after refused keys");
    assert_eq!((client.stats().connects, client.stats().disconnects), (1, 1));
    for text in [format!("{events:?}"), format!("{client:?}"), format!("{:?}", cfg(port))] {
        for secret in [KEY_ID, SECRET] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[test]
fn nothing_listening_is_reported_as_disconnected_and_retried() {
    let (l, port) = listener();
    drop(l);
    let mut client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| ev.len() >= 2);
    assert!(events.iter().all(|e| matches!(e, StreamEvent::Disconnected { .. })), "{events:#?}");
    assert_eq!(client.stats().connects, 0);
}

#[test]
fn a_server_that_never_authorizes_is_dropped_after_the_session_timeout() {
    let (l, port) = listener();
    let srv = thread::spawn(move || {
        let mut first = accept(&l);
        next_text(&mut first); // the auth message, never answered
        let mut second = accept(&l);
        handshake(&mut second);
        while second.read().is_ok() {}
        drop(first);
    });
    let client = TradeUpdatesClient::with_ws_config(&cfg(port), fast_ws()).expect("client");
    let mut client = client.with_session_timeout(Duration::from_millis(200));
    let mut events = Vec::new();
    drive(&mut client, &mut events, 5_000, |ev| ev.contains(&StreamEvent::Connected));
    assert!(
        matches!(&events[0], StreamEvent::Disconnected { reason } if reason.contains("no trade_updates authorization within 200 ms")),
        "{events:#?}"
    );
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(client.stats().connects, 2);
    client.close();
    srv.join().unwrap();
}
