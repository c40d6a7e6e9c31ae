//! The local exchange's paper broker over real loopback sockets: raw HTTP/1.1 for the trading
//! REST, a tungstenite client on `/stream` for `trade_updates`, one TLS run. Small data (two
//! symbols, 300 minute bars) at 20 market minutes per wall second, so a bar closes every 50 ms.
//! Waits have generous deadlines that only fail a stuck test; nothing asserts on speed.

use engine::records::Bar;
use ringtape_tools::exchange::{
    DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, ExchangeHandle, Fault, RejectVia, Tape,
};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

/// 2024-03-01T14:30:00Z.
const T0: i64 = 1_709_303_400_000_000_000;
const MIN: i64 = 60_000_000_000;
const E9: i128 = 1_000_000_000;

fn bars(sym: usize, n: usize) -> Vec<Bar> {
    (0..n as i64)
        .map(|i| {
            let open = 100_000_000_000 + (sym as i64) * 7_000_000_000 + (i % 50) * 10_000_000;
            Bar {
                ts_event_ns: T0 + i * MIN,
                open_px_e9: open,
                high_px_e9: open + 50_000_000,
                low_px_e9: open - 50_000_000,
                close_px_e9: open + 10_000_000,
                volume: 100 + i as u64,
            }
        })
        .collect()
}

fn tape() -> Arc<Tape> {
    Arc::new(Tape::from_series(vec![("AAA".into(), 60, bars(0, 300)), ("BBB".into(), 60, bars(1, 300))]).unwrap())
}

fn start_with(f: impl FnOnce(&mut ExchangeConfig)) -> ExchangeHandle {
    let mut cfg = ExchangeConfig {
        tape: Some(tape()),
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

// ---- HTTP ---------------------------------------------------------------------------------------

struct Http<S> {
    s: S,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        let p = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix(&p).map(|v| v.trim().to_string()))
    }
    fn message(&self) -> String {
        self.body["message"].as_str().unwrap_or("").to_string()
    }
}

const AUTH: [(&str, &str); 2] = [("APCA-API-KEY-ID", DEMO_KEY), ("APCA-API-SECRET-KEY", DEMO_SECRET)];

impl<S: Read + Write> Http<S> {
    fn raw(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
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
                let body =
                    if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON body") };
                return Answer { status, head, body };
            }
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before the response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
    fn get(&mut self, target: &str) -> Answer {
        self.raw("GET", target, &AUTH, b"")
    }
    fn delete(&mut self, target: &str) -> Answer {
        self.raw("DELETE", target, &AUTH, b"")
    }
    fn post(&mut self, target: &str, body: &Value) -> Answer {
        self.raw("POST", target, &AUTH, body.to_string().as_bytes())
    }
    fn patch(&mut self, target: &str, body: &Value) -> Answer {
        self.raw("PATCH", target, &AUTH, body.to_string().as_bytes())
    }
    fn order(&mut self, id: &str) -> Value {
        let a = self.get(&format!("/v2/orders/{id}"));
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }
}

fn http(ex: &ExchangeHandle) -> Http<TcpStream> {
    let s = TcpStream::connect(ex.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Http { s, buf: Vec::new() }
}

/// Poll until `f` gives a value (fails the test after 20 s of trying).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..2000 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting for {what}");
}

fn px(v: &Value) -> i128 {
    let s = v.as_str().unwrap_or_else(|| panic!("a number as a string, got {v}"));
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let neg = i.starts_with('-');
    let i: i128 = i.trim_start_matches('-').parse().unwrap();
    let f: i128 = if f.is_empty() { 0 } else { format!("{f:0<9}").parse().unwrap() };
    let v = i * E9 + f;
    if neg { -v } else { v }
}

fn ts_of(s: &Value) -> i64 {
    let t: jiff::Timestamp = s.as_str().unwrap().parse().unwrap();
    i64::try_from(t.as_nanosecond()).unwrap()
}

fn is_uuid(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

// ---- trade_updates ------------------------------------------------------------------------------

struct Stream<S: Read + Write> {
    ws: WebSocket<S>,
    /// Trade updates read while waiting for another order's.
    backlog: Vec<Value>,
}

impl<S: Read + Write> Stream<S> {
    fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// The next JSON message; `None` when the connection ended.
    fn next(&mut self) -> Option<Value> {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(b)) => return Some(serde_json::from_slice(&b).unwrap()),
                Ok(Message::Text(t)) => panic!("trade_updates frames are binary, got text {t}"),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next trade update's `data`.
    fn event(&mut self) -> Value {
        loop {
            let m = self.next().expect("stream open");
            if m["stream"] == "trade_updates" {
                return m["data"].clone();
            }
        }
    }

    /// Trade updates until one of `order` has event `kind`; returns all of that order's events
    /// (other orders' events wait in the backlog).
    fn until(&mut self, order: &str, kind: &str) -> Vec<Value> {
        let mut got = Vec::new();
        let mut i = 0;
        while i < self.backlog.len() {
            if self.backlog[i]["order"]["id"] == order {
                let e = self.backlog.remove(i);
                let done = e["event"] == kind;
                got.push(e);
                if done {
                    return got;
                }
            } else {
                i += 1;
            }
        }
        loop {
            let e = self.event();
            if e["order"]["id"] != order {
                self.backlog.push(e);
            } else {
                got.push(e.clone());
                if e["event"] == kind {
                    return got;
                }
            }
        }
    }
}

fn ws_plain(ex: &ExchangeHandle) -> Result<WebSocket<TcpStream>, u16> {
    let tcp = TcpStream::connect(ex.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    match tungstenite::client(format!("ws://{}/stream", ex.addr()), tcp) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

/// Authenticate (alpaca-py's form) and listen to trade_updates.
fn listen<S: Read + Write>(ws: WebSocket<S>) -> Stream<S> {
    let mut s = Stream { ws, backlog: Vec::new() };
    s.send(json!({"action":"authenticate","data":{"key_id":DEMO_KEY,"secret_key":DEMO_SECRET}}));
    let m = s.next().unwrap();
    assert_eq!(m, json!({"stream":"authorization","data":{"action":"authenticate","status":"authorized"}}));
    s.send(json!({"action":"listen","data":{"streams":["trade_updates"]}}));
    assert_eq!(s.next().unwrap(), json!({"stream":"listening","data":{"streams":["trade_updates"]}}));
    s
}

fn stream(ex: &ExchangeHandle) -> Stream<TcpStream> {
    listen(ws_plain(ex).unwrap())
}

fn market(sym: &str, qty: u32, side: &str) -> Value {
    json!({"symbol": sym, "qty": qty.to_string(), "side": side, "type": "market", "time_in_force": "day"})
}

fn limit(sym: &str, qty: u32, side: &str, price: &str) -> Value {
    json!({"symbol": sym, "qty": qty, "side": side, "type": "limit", "time_in_force": "gtc", "limit_price": price})
}

fn source_bar(ex: &ExchangeHandle, sym: usize, ts: i64) -> Bar {
    *ex.tape().symbols[sym].minute.iter().find(|b| b.ts_event_ns == ts).expect("a bar of the tape")
}

// ---- tests --------------------------------------------------------------------------------------

#[test]
fn market_order_partial_fills_then_fill_moves_position_and_cash() {
    // A 10% participation cap: bars of ~160 shares fill at most ~16 a bar, so 40 shares take
    // several bars (partial_fill, ..., fill), each at that bar's open (market, no slippage).
    let ex = start_with(|c| c.broker.venue.max_volume_ppm = 100_000);
    let mut h = http(&ex);
    let mut s = stream(&ex);
    let a = h.post("/v2/orders", &market("AAA", 40, "buy"));
    assert_eq!(a.status, 200, "{}", a.body);
    let o = &a.body;
    assert_eq!(o["status"], "accepted");
    assert!(is_uuid(&o["id"]) && is_uuid(&o["client_order_id"]) && is_uuid(&o["asset_id"]), "{o}");
    assert_eq!((o["qty"].as_str(), o["filled_qty"].as_str()), (Some("40"), Some("0")));
    assert_eq!(
        (o["type"].as_str(), o["order_type"].as_str(), o["side"].as_str()),
        (Some("market"), Some("market"), Some("buy"))
    );
    assert!(o["filled_avg_price"].is_null() && o["limit_price"].is_null() && o["filled_at"].is_null());
    assert_eq!(o["created_at"].as_str().unwrap().len(), "2024-03-01T15:30:00.000000000Z".len());
    let id = o["id"].as_str().unwrap().to_string();
    let evs = s.until(&id, "fill");
    assert_eq!(evs[0]["event"], "new");
    assert_eq!(evs[0]["order"]["status"], "new");
    let fills = &evs[1..];
    assert!(fills.len() >= 3, "40 shares at ~16 a bar: {fills:?}");
    let (mut q, mut value, mut prev_ts) = (0i128, 0i128, 0i64);
    for f in fills {
        assert!(is_uuid(&f["execution_id"]));
        let (fq, fp, ts) = (px(&f["qty"]) / E9, px(&f["price"]), ts_of(&f["timestamp"]));
        let bar = source_bar(&ex, 0, ts);
        assert_eq!(fp, i128::from(bar.open_px_e9), "market fills at the bar's open");
        assert!(fq <= i128::from(bar.volume / 10).max(1), "participation cap");
        assert!(ts > prev_ts && ts >= ts_of(&o["created_at"]), "no look-ahead, one fill a bar");
        prev_ts = ts;
        q += fq;
        value += fq * fp;
        assert_eq!(px(&f["position_qty"]) / E9, q);
        let want = if q == 40 { "filled" } else { "partially_filled" };
        assert_eq!(f["order"]["status"], want);
    }
    assert_eq!(fills.last().unwrap()["event"], "fill");
    assert_eq!(q, 40);
    let o = h.order(&id);
    assert_eq!((o["status"].as_str(), o["filled_qty"].as_str()), (Some("filled"), Some("40")));
    assert_eq!(px(&o["filled_avg_price"]), value / 40);
    // Position and cash on both sides (REST and the control snapshot).
    let p = h.get("/v2/positions/AAA");
    assert_eq!(p.status, 200);
    assert_eq!((p.body["qty"].as_str(), p.body["side"].as_str()), (Some("40"), Some("long")));
    assert_eq!(px(&p.body["avg_entry_price"]), value / 40);
    assert_eq!(px(&p.body["cost_basis"]), 40 * (value / 40));
    assert_eq!(px(&p.body["market_value"]), 40 * px(&p.body["current_price"]));
    let acct = h.get("/v2/account").body;
    let commission = 40 * 5_000_000; // 0.005 USD a share
    assert_eq!(px(&acct["cash"]), 100_000 * E9 - value - commission);
    assert_eq!(px(&acct["equity"]), px(&acct["cash"]) + px(&acct["long_market_value"]));
    assert_eq!(acct["status"], "ACTIVE");
    let snap = ex.broker();
    assert_eq!(snap.account.cash, acct["cash"].as_str().unwrap());
    assert_eq!(snap.positions.len(), 1);
    assert_eq!(snap.positions[0].qty, "40");
    assert_eq!(snap.orders[0].status, "filled");
    // A filled order is not cancelable.
    let c = h.delete(&format!("/v2/orders/{id}"));
    assert_eq!((c.status, c.message()), (422, "order is not cancelable".to_string()));
    assert_eq!(c.body["code"], 42210000);
    // Close the position: a market sell of 40.
    let c = h.delete("/v2/positions/AAA");
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!((c.body["side"].as_str(), c.body["qty"].as_str()), (Some("sell"), Some("40")));
    let cid = c.body["id"].as_str().unwrap().to_string();
    let evs = s.until(&cid, "fill");
    assert_eq!(evs.last().unwrap()["position_qty"], "0");
    assert_eq!(h.get("/v2/positions/AAA").status, 404);
    assert_eq!(h.get("/v2/positions").body, json!([]));
    let st = ex.stats();
    assert_eq!(st.broker_orders, 2);
    assert!(st.broker_fills >= 4 && st.events_sent >= 6 && st.trade_update_sessions == 1);
}

#[test]
fn limit_rests_then_cancel_and_cancel_all() {
    let ex = start();
    let mut h = http(&ex);
    let mut s = stream(&ex);
    let a = h.post("/v2/orders", &json!({"symbol":"BBB","qty":5,"side":"buy","type":"limit","time_in_force":"gtc","limit_price":"1.00","client_order_id":"rt-1"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!((a.body["limit_price"].as_str(), a.body["client_order_id"].as_str()), (Some("1"), Some("rt-1")));
    let id = a.body["id"].as_str().unwrap().to_string();
    s.until(&id, "new");
    // The client id is unique among all orders.
    let dup = h.post("/v2/orders", &json!({"symbol":"BBB","qty":5,"side":"buy","type":"limit","time_in_force":"gtc","limit_price":"1.00","client_order_id":"rt-1"}));
    assert_eq!((dup.status, dup.message()), (422, "client_order_id must be unique".to_string()));
    let by = h.get("/v2/orders:by_client_order_id?client_order_id=rt-1");
    assert_eq!((by.status, by.body["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(h.get("/v2/orders:by_client_order_id?client_order_id=nope").status, 404);
    // It rests: a few bars later it is still new, and listed as open.
    let bars = ex.stats().bars_published;
    eventually("three more bars", || (ex.stats().bars_published >= bars + 6).then_some(()));
    assert_eq!(h.order(&id)["status"], "new");
    let open = h.get("/v2/orders");
    assert_eq!(open.body.as_array().unwrap().len(), 1);
    let c = h.delete(&format!("/v2/orders/{id}"));
    assert_eq!((c.status, c.body.clone()), (204, Value::Null));
    let e = s.until(&id, "canceled");
    assert_eq!(e[0]["event"], "pending_cancel");
    assert_eq!(e.last().unwrap()["order"]["status"], "canceled");
    let o = h.order(&id);
    assert_eq!(o["status"], "canceled");
    assert!(!o["canceled_at"].is_null());
    assert_eq!(h.delete(&format!("/v2/orders/{id}")).status, 422);
    assert_eq!(h.delete("/v2/orders/00000000-0000-4000-8000-000000000000").status, 404);
    assert_eq!(h.get("/v2/orders").body, json!([]));
    assert_eq!(h.get("/v2/orders?status=closed").body.as_array().unwrap().len(), 1);
    // Cancel all: 207 with one entry per open order.
    let ids: Vec<String> = (0..2)
        .map(|_| h.post("/v2/orders", &limit("AAA", 1, "sell", "500")).body["id"].as_str().unwrap().to_string())
        .collect();
    for i in &ids {
        s.until(i, "new");
    }
    let all = h.delete("/v2/orders");
    assert_eq!(all.status, 207);
    let mut got: Vec<String> =
        all.body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    // With a cancel latency (the ack latency, 5 ms by default) the bodies say pending_cancel.
    assert!(all.body.as_array().unwrap().iter().all(|e| e["status"] == 200 && e["body"]["status"] == "pending_cancel"));
    for i in &ids {
        let e = s.until(i, "canceled");
        assert_eq!(e[0]["event"], "pending_cancel");
    }
    assert_eq!(h.get("/v2/orders?status=all&limit=2&direction=asc").body[0]["id"].as_str(), Some(id.as_str()));
    assert_eq!(ex.stats().broker_cancels, 3);
}

#[test]
fn replace_makes_a_new_order_that_replaces_the_old() {
    let ex = start();
    let mut h = http(&ex);
    let mut s = stream(&ex);
    let a = h.post("/v2/orders", &limit("AAA", 10, "buy", "2.50"));
    let old = a.body["id"].as_str().unwrap().to_string();
    // Not replaceable while accepted (Alpaca's rule) -- unless the ack already came.
    s.until(&old, "new");
    let r = h.patch(&format!("/v2/orders/{old}"), &json!({"qty":"12","limit_price":"2.75"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.body["id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r.body["replaces"].as_str(), Some(old.as_str()));
    assert_eq!((r.body["qty"].as_str(), r.body["limit_price"].as_str()), (Some("12"), Some("2.75")));
    let e = s.until(&old, "replaced");
    assert_eq!(e.last().unwrap()["order"]["status"], "replaced");
    assert_eq!(e.last().unwrap()["order"]["replaced_by"].as_str(), Some(new.as_str()));
    s.until(&new, "new");
    let o = h.order(&old);
    assert_eq!((o["status"].as_str(), o["replaced_by"].as_str()), (Some("replaced"), Some(new.as_str())));
    // A replaced order is done: neither replaceable nor cancelable.
    assert_eq!(h.patch(&format!("/v2/orders/{old}"), &json!({"qty":"1"})).status, 422);
    assert_eq!(h.delete(&format!("/v2/orders/{old}")).status, 422);
    // A market order that filled is not replaceable either.
    let m = h.post("/v2/orders", &market("AAA", 1, "buy")).body["id"].as_str().unwrap().to_string();
    s.until(&m, "fill");
    let r = h.patch(&format!("/v2/orders/{m}"), &json!({"qty":"2"}));
    assert_eq!(r.status, 422);
    assert!(r.message().contains("not replaceable"), "{}", r.message());
}

#[test]
fn rejections_rest_stream_and_buying_power() {
    let ex = start();
    let mut h = http(&ex);
    let mut s = stream(&ex);
    let big = h.post("/v2/orders", &market("AAA", 10_000, "buy"));
    assert_eq!((big.status, big.body.clone()), (403, json!({"code":40310000,"message":"insufficient buying power"})));
    ex.inject(Fault::OrderReject { count: 1, via: RejectVia::Rest });
    let r = h.post("/v2/orders", &market("AAA", 1, "buy"));
    assert_eq!(r.status, 403);
    assert!(r.message().contains("order_reject"), "{}", r.message());
    let r = h.raw("POST", "/control/fault", &[], br#"{"kind":"order_reject","via":"stream"}"#);
    assert_eq!(r.status, 200);
    let a = h.post("/v2/orders", &market("AAA", 1, "buy"));
    assert_eq!((a.status, a.body["status"].as_str()), (200, Some("accepted")));
    let id = a.body["id"].as_str().unwrap().to_string();
    let e = s.until(&id, "rejected");
    assert_eq!(e.len(), 1, "rejected instead of new");
    let o = h.order(&id);
    assert_eq!(o["status"], "rejected");
    assert!(!o["failed_at"].is_null());
    // The next order goes through.
    let ok = h.post("/v2/orders", &market("AAA", 1, "buy")).body["id"].as_str().unwrap().to_string();
    s.until(&ok, "fill");
    let st = ex.stats();
    assert_eq!((st.faults["order_reject"], st.broker_rejects), (2, 3));
}

#[test]
fn rate_limit_fault_and_configured_limit_answer_429() {
    let ex = start_with(|c| c.broker.rate_limit_per_min = 5);
    let mut h = http(&ex);
    ex.inject(Fault::RateLimit { count: 2 });
    for _ in 0..2 {
        let a = h.get("/v2/account");
        assert_eq!((a.status, a.body["code"].as_i64()), (429, Some(42910000)));
        assert!(a.header("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(a.header("X-RateLimit-Remaining").as_deref(), Some("0"));
    }
    for left in (0..5).rev() {
        let a = h.get("/v2/account");
        assert_eq!(a.status, 200);
        assert_eq!(a.header("X-RateLimit-Limit").as_deref(), Some("5"));
        assert_eq!(a.header("X-RateLimit-Remaining"), Some(left.to_string()));
    }
    let a = h.get("/v2/orders");
    assert_eq!(a.status, 429, "the sixth request of the minute");
    // Market data and control are not trading requests.
    assert_eq!(h.raw("GET", "/control/broker", &[], b"").status, 200);
    assert_eq!(ex.stats().broker_rate_limited, 3);
}

#[test]
fn outage_loses_events_and_rest_shows_the_fill_after() {
    let ex = start();
    let mut h = http(&ex);
    let mut s = stream(&ex);
    // drop_trade_updates: closed now, a reconnect works at once.
    ex.inject(Fault::DropTradeUpdates);
    assert!(s.next().is_none(), "dropped");
    let mut s = stream(&ex);
    ex.inject(Fault::TradeUpdatesOutage { ms: 2000 });
    assert!(s.next().is_none(), "closed by the outage");
    assert_eq!(ws_plain(&ex).err(), Some(503), "refused during the outage");
    let lost_before = ex.stats().events_lost;
    let id = h.post("/v2/orders", &market("BBB", 3, "sell")).body["id"].as_str().unwrap().to_string();
    // The fill happens with nobody listening; REST shows it.
    let o = eventually("the fill by REST", || {
        let o = h.order(&id);
        (o["status"] == "filled").then_some(o)
    });
    let p = h.get("/v2/positions/BBB").body;
    assert_eq!((p["qty"].as_str(), p["side"].as_str()), (Some("-3"), Some("short")));
    assert_eq!(px(&p["avg_entry_price"]), px(&o["filled_avg_price"]));
    assert_eq!(px(&p["cost_basis"]), -3 * px(&o["filled_avg_price"]));
    assert!(ex.stats().events_lost >= lost_before + 2, "new and fill were lost");
    // After the outage a client reconnects and sees new events.
    let mut s = eventually("the outage to end", || ws_plain(&ex).ok().map(listen));
    let id2 = h.post("/v2/orders", &market("BBB", 3, "buy")).body["id"].as_str().unwrap().to_string();
    let e = s.until(&id2, "fill");
    assert_eq!(e.last().unwrap()["position_qty"], "0");
    assert_eq!(ex.stats().faults["trade_updates_outage"], 1);
}

#[test]
fn slow_cancel_loses_to_a_fill() {
    let ex = start();
    let mut h = http(&ex);
    let mut s = stream(&ex);
    ex.inject(Fault::SlowAck { ms: 400, for_ms: 60_000 });
    let id = h.post("/v2/orders", &market("AAA", 7, "buy")).body["id"].as_str().unwrap().to_string();
    s.until(&id, "new");
    // The cancel waits 400 ms; the next bar (50 ms) fills the order first. If this thread was
    // slow and the fill already happened, the cancel is refused: either way the fill wins.
    let c = h.delete(&format!("/v2/orders/{id}"));
    assert!(c.status == 204 || c.status == 422, "{}", c.status);
    let evs = s.until(&id, "fill");
    assert!(evs.iter().all(|e| e["event"] != "canceled"));
    std::thread::sleep(Duration::from_millis(600)); // past the cancel's due time
    let o = h.order(&id);
    assert_eq!((o["status"].as_str(), o["filled_qty"].as_str()), (Some("filled"), Some("7")));
    assert_eq!(h.get("/v2/positions/AAA").body["qty"], "7");
    assert_eq!(ex.stats().broker_cancels, 0);
}

#[test]
fn bad_requests_are_clear_errors_not_crashes() {
    let ex = start();
    let mut h = http(&ex);
    let r = h.raw("POST", "/v2/orders", &AUTH, b"{not json");
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(40010000)));
    assert_eq!(h.raw("POST", "/v2/orders", &AUTH, b"[1,2]").status, 400);
    let cases = [
        (json!({"symbol":"ZZZ","qty":"1","side":"buy","type":"market","time_in_force":"day"}), "not found"),
        (json!({"symbol":"AAA","notional":"100","side":"buy","type":"market","time_in_force":"day"}), "notional"),
        (json!({"symbol":"AAA","qty":"1.5","side":"buy","type":"market","time_in_force":"day"}), "whole number"),
        (json!({"symbol":"AAA","qty":"0","side":"buy","type":"market","time_in_force":"day"}), "whole number"),
        (json!({"symbol":"AAA","qty":"1","side":"hold","type":"market","time_in_force":"day"}), "buy or sell"),
        (
            json!({"symbol":"AAA","qty":"1","side":"buy","type":"trailing_stop","time_in_force":"day","trail_percent":"1"}),
            "trailing_stop",
        ),
        (json!({"symbol":"AAA","qty":"1","side":"buy","type":"market","time_in_force":"opg"}), "opg"),
        (
            json!({"symbol":"AAA","qty":"1","side":"buy","type":"market","time_in_force":"day","order_class":"bracket"}),
            "bracket",
        ),
        (
            json!({"symbol":"AAA","qty":"1","side":"buy","type":"limit","time_in_force":"day"}),
            "limit_price is required",
        ),
        (
            json!({"symbol":"AAA","qty":"1","side":"buy","type":"limit","time_in_force":"day","limit_price":"10.001"}),
            "sub-penny",
        ),
        (
            json!({"symbol":"AAA","qty":"1","side":"buy","type":"stop_limit","time_in_force":"day","limit_price":"10"}),
            "stop_price is required",
        ),
        (json!({"symbol":"AAA","qty":[1],"side":"buy","type":"market","time_in_force":"day"}), "qty must be"),
    ];
    for (body, want) in cases {
        let r = h.post("/v2/orders", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.message().contains(want), "{body}: {} lacks {want}", r.message());
        assert!(r.body["code"].is_u64());
    }
    // Unknown fields are ignored (as at Alpaca); numbers may be JSON numbers.
    let ok = h.post("/v2/orders", &json!({"symbol":"AAA","qty":2.0,"side":"buy","type":"limit","time_in_force":"day","limit_price":1.5,"position_intent":"buy_to_open","foo":{"bar":1}}));
    assert_eq!((ok.status, ok.body["limit_price"].as_str()), (200, Some("1.5")), "{}", ok.body);
    assert_eq!(h.raw("PATCH", "/v2/orders/x", &AUTH, b"garbage").status, 400);
    assert_eq!(h.raw("PUT", "/v2/account", &AUTH, b"").status, 405);
    assert_eq!(h.get("/v2/account").status, 200, "still serving");
    assert_eq!(ex.stats().broker_orders, 1);
}

#[test]
fn wrong_credentials_get_401_and_unauthorized() {
    let ex = start();
    let mut h = http(&ex);
    let r = h.raw("GET", "/v2/account", &[("APCA-API-KEY-ID", DEMO_KEY), ("APCA-API-SECRET-KEY", "wrong")], b"");
    assert_eq!((r.status, r.body["code"].as_i64()), (401, Some(40110000)));
    assert!(!r.message().contains("wrong"), "no secret in errors");
    assert_eq!(h.raw("POST", "/v2/orders", &[], b"{}").status, 401);
    let mut s = Stream { ws: ws_plain(&ex).unwrap(), backlog: Vec::new() };
    s.send(json!({"action":"authenticate","data":{"key_id":DEMO_KEY,"secret_key":"wrong"}}));
    assert_eq!(s.next().unwrap()["data"]["status"], "unauthorized");
    assert!(s.next().is_none(), "closed after unauthorized");
    // The newer form, as a binary frame.
    let mut s = Stream { ws: ws_plain(&ex).unwrap(), backlog: Vec::new() };
    let auth = json!({"action":"auth","key":DEMO_KEY,"secret":DEMO_SECRET}).to_string();
    s.ws.send(Message::Binary(auth.into_bytes().into())).unwrap();
    assert_eq!(s.next().unwrap()["data"]["status"], "authorized");
    let st = ex.stats();
    assert_eq!((st.auth_ok, st.auth_failed), (1, 1));
}

#[test]
fn tls_rest_and_wss_stream() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = tempfile::tempdir().unwrap();
    let ex = start_with(|c| {
        c.plain = false;
        c.state_dir = Some(dir.path().to_path_buf());
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ex.cert_pem().unwrap().as_bytes()).unwrap()).unwrap();
    let cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tls = || {
        let tcp = TcpStream::connect(ex.addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        rustls::StreamOwned::new(rustls::ClientConnection::new(Arc::clone(&cfg), name).unwrap(), tcp)
    };
    let (ws, _) = tungstenite::client(format!("wss://localhost:{}/stream", ex.addr().port()), tls()).unwrap();
    let mut s = listen(ws);
    let mut h = Http { s: tls(), buf: Vec::new() };
    let a = h.post("/v2/orders", &json!({"symbol":"AAA","qty":"2","side":"buy","type":"stop_limit","time_in_force":"gtc","stop_price":"100.10","limit_price":"100.30"}));
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    // Opens cycle 100.00..100.49 (+0.05 highs): the stop trades within a few bars, then the limit
    // fills at the next bar's open (at or below 100.30) or at the limit.
    let e = s.until(&id, "fill");
    let f = e.last().unwrap();
    assert!(px(&f["price"]) <= 100_300_000_000, "{f}");
    assert_eq!(h.get("/v2/positions/AAA").body["qty"], "2");
}

#[test]
fn day_orders_expire_at_the_close_and_ioc_remainders_cancel() {
    // 2024-03-01 is EST: 16:00 New York is 21:00Z, 390 minutes after T0. Start 10 minutes before.
    let tape = Arc::new(Tape::from_series(vec![("AAA".into(), 60, bars(0, 420))]).unwrap());
    let ex = start_with(|c| {
        c.tape = Some(tape);
        c.start_ns = Some(T0 + 380 * MIN);
    });
    let mut h = http(&ex);
    let mut s = stream(&ex);
    let day = h.post(
        "/v2/orders",
        &json!({"symbol":"AAA","qty":"1","side":"buy","type":"limit","time_in_force":"day","limit_price":"1.00"}),
    );
    let day = day.body["id"].as_str().unwrap().to_string();
    let ioc = h.post(
        "/v2/orders",
        &json!({"symbol":"AAA","qty":"1","side":"buy","type":"limit","time_in_force":"ioc","limit_price":"1.00"}),
    );
    let ioc = ioc.body["id"].as_str().unwrap().to_string();
    let gtc = h.post("/v2/orders", &limit("AAA", 1, "buy", "1.00")).body["id"].as_str().unwrap().to_string();
    let e = s.until(&ioc, "canceled");
    assert_eq!(e[0]["event"], "new");
    let e = s.until(&day, "expired");
    let exp = ts_of(&e.last().unwrap()["order"]["expired_at"]);
    assert!((T0 + 390 * MIN..T0 + 391 * MIN).contains(&exp), "expires at 16:00 New York: {exp}");
    assert_eq!(h.order(&day)["status"], "expired");
    assert_eq!(h.order(&gtc)["status"], "new", "gtc outlives the day");
}
