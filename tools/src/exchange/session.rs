//! Websocket sessions: the upgrade, the Alpaca and Polygon stream state machines, and the hub
//! the publisher broadcasts batches through.

use super::clock::wall_now_ns;
use super::net::{self, Conn, Request, Response};
use super::server::Shared;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Error as WsError, Message, Utf8Bytes};

/// What a published item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemKind {
    /// A closed minute bar: Alpaca `b` (+ `q`), Polygon `AM`.
    Bar,
    /// An updated minute bar: Alpaca `u`, Polygon `AM` re-sent.
    Updated,
    /// A closed second bar: Polygon `A`.
    Second,
}

/// One published bar, its elements encoded once for every session.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub sym: u32,
    pub end_ns: i64,
    pub kind: ItemKind,
    pub alpaca: String,
    pub quote: String,
    pub polygon: String,
}

/// What the publisher hands every session at once.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub malformed: bool,
    /// Frames built once per filter and shared by every session with that filter (see
    /// [`Subs::shared_key`]): with `"*"` subscriptions a frame is built once for all sessions.
    frames: Mutex<HashMap<u8, Arc<Frames>>>,
}

/// Ready frames with their element counts.
type Frames = Vec<(Utf8Bytes, u64)>;

struct Ctl {
    id: u64,
    kill: AtomicBool,
    stall_until_ns: AtomicI64,
    tx: Sender<Arc<Batch>>,
    tcp: Option<TcpStream>,
}

/// The live sessions.
#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<Vec<Arc<Ctl>>>,
    /// Alpaca key -> the session holding it.
    keys: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    fn add(&self, tcp: Option<TcpStream>) -> (Arc<Ctl>, Receiver<Arc<Batch>>) {
        let (tx, rx) = channel();
        let ctl = Arc::new(Ctl {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            kill: AtomicBool::new(false),
            stall_until_ns: AtomicI64::new(0),
            tx,
            tcp,
        });
        lock(&self.sessions).push(Arc::clone(&ctl));
        (ctl, rx)
    }

    fn remove(&self, id: u64) {
        lock(&self.sessions).retain(|c| c.id != id);
        lock(&self.keys).retain(|_, s| *s != id);
    }

    fn claim(&self, key: &str, id: u64) -> bool {
        let mut keys = lock(&self.keys);
        if keys.contains_key(key) {
            return false;
        }
        keys.insert(key.to_string(), id);
        true
    }

    /// Hand a batch to every session.
    pub fn broadcast(&self, b: &Arc<Batch>) {
        for c in lock(&self.sessions).iter() {
            let _ = c.tx.send(Arc::clone(b));
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Drop every session abruptly (TCP shutdown, no close frame). Their keys are free at once.
    pub fn disconnect_all(&self) {
        for c in lock(&self.sessions).iter() {
            c.kill.store(true, Ordering::SeqCst);
            if let Some(t) = &c.tcp {
                let _ = t.shutdown(std::net::Shutdown::Both);
            }
        }
        lock(&self.keys).clear();
    }

    /// Every current session stops sending and reading for `ms`.
    pub fn stall_all(&self, ms: u64) {
        let until = wall_now_ns() + (ms as i64) * 1_000_000;
        for c in lock(&self.sessions).iter() {
            c.stall_until_ns.store(until, Ordering::SeqCst);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Alpaca,
    Polygon,
}

/// Handle a websocket upgrade request (the HTTP head is already read; `leftover` holds bytes
/// read past it).
pub(crate) fn upgrade(shared: &Arc<Shared>, mut conn: Conn, req: &Request, leftover: Vec<u8>) {
    let proto = match req.path.as_str() {
        "/v2/iex" | "/v2/sip" | "/v2/test" => Proto::Alpaca,
        "/stocks" => Proto::Polygon,
        _ => {
            let _ = net::write_response(&mut conn, &Response::json(404, "{\"message\":\"not found\"}".into()), true);
            return;
        }
    };
    if shared.faults.take_http429() {
        shared.counters.rejected_429.fetch_add(1, Ordering::Relaxed);
        eprintln!("exchange: websocket upgrade refused with 429 (fault)");
        let resp = Response::json(429, "{\"message\":\"too many requests\"}".into());
        let _ = net::write_response(&mut conn, &resp, true);
        return;
    }
    let Some(key) = req.header("sec-websocket-key") else {
        let _ = net::write_response(
            &mut conn,
            &Response::json(400, "{\"message\":\"not a websocket handshake\"}".into()),
            true,
        );
        return;
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if conn.write_all(head.as_bytes()).and_then(|()| conn.flush()).is_err() {
        return;
    }
    let _ = conn.tcp().set_read_timeout(Some(Duration::from_millis(5)));
    // A client that reads nothing for this long is dropped, as the real services drop slow consumers.
    let _ = conn.tcp().set_write_timeout(Some(SLOW_CONSUMER));
    // alpaca-py asks for MessagePack with this handshake header.
    let msgpack = proto == Proto::Alpaca && req.header("content-type").is_some_and(|c| c.contains("msgpack"));
    let tcp = conn.tcp().try_clone().ok();
    shared.counters.ws_sessions.fetch_add(1, Ordering::Relaxed);
    let (ctl, rx) = shared.hub.add(tcp);
    let ws = WebSocket::from_partially_read(conn, leftover, Role::Server, None);
    let mut s = Session {
        shared,
        ws,
        proto,
        ctl: Arc::clone(&ctl),
        rx,
        authed: false,
        msgpack,
        opened_ns: wall_now_ns(),
        subs: Subs::default(),
    };
    s.run();
    shared.hub.remove(ctl.id);
}

/// A set of symbols (`*` = all).
#[derive(Default)]
struct SymSet {
    all: bool,
    names: Vec<String>,
    idx: HashSet<u32>,
}

impl SymSet {
    fn contains(&self, sym: u32) -> bool {
        self.all || self.idx.contains(&sym)
    }

    fn add(&mut self, name: &str, shared: &Shared) {
        if name == "*" {
            self.all = true;
        } else if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
            if let Some(i) = shared.tape.find(name) {
                self.idx.insert(i as u32);
            }
        }
    }

    fn remove(&mut self, name: &str, shared: &Shared) {
        if name == "*" {
            self.all = false;
        } else {
            self.names.retain(|n| n != name);
            if let Some(i) = shared.tape.find(name) {
                self.idx.remove(&(i as u32));
            }
        }
    }

    fn json(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        if self.all {
            v.push("*");
        }
        v.extend(self.names.iter().map(String::as_str));
        serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
    }
}

#[derive(Default)]
struct Subs {
    bars: SymSet,
    updated: SymSet,
    daily: SymSet,
    quotes: SymSet,
    trades: SymSet,
    minute: SymSet,
    second: SymSet,
}

impl SymSet {
    /// `Some(all)` when the set is `*` or empty (no named symbols).
    fn uniform(&self) -> Option<bool> {
        self.names.is_empty().then_some(self.all)
    }
}

impl Subs {
    /// A key for filters that name no symbol (each channel `*` or nothing): sessions with the same
    /// key get the same frames, built once per batch.
    fn shared_key(&self, proto: Proto) -> Option<u8> {
        let sets = match proto {
            Proto::Alpaca => [&self.bars, &self.updated, &self.quotes],
            Proto::Polygon => [&self.minute, &self.second, &self.second],
        };
        let mut key = u8::from(proto == Proto::Polygon);
        for (i, set) in sets.iter().enumerate() {
            key |= u8::from(set.uniform()?) << (i + 1);
        }
        Some(key)
    }
}

struct Session<'a> {
    shared: &'a Shared,
    ws: WebSocket<Conn>,
    proto: Proto,
    ctl: Arc<Ctl>,
    rx: Receiver<Arc<Batch>>,
    authed: bool,
    /// Frames go out as msgpack (binary); client messages may be msgpack.
    msgpack: bool,
    opened_ns: i64,
    subs: Subs,
}

/// How long a frame may wait for a client that does not read before the session is dropped.
const SLOW_CONSUMER: Duration = Duration::from_secs(10);

/// Elements per frame and bytes per frame: the real services batch many bars per frame.
const FRAME_ELEMENTS: usize = 1000;
const FRAME_BYTES: usize = 256 * 1024;

enum Next {
    Go,
    Close,
}

impl Session<'_> {
    fn run(&mut self) {
        let hello = match self.proto {
            Proto::Alpaca => "[{\"T\":\"success\",\"msg\":\"connected\"}]",
            Proto::Polygon => "[{\"ev\":\"status\",\"status\":\"connected\",\"message\":\"Connected Successfully\"}]",
        };
        if self.send(hello.to_string(), 1).is_err() {
            return;
        }
        loop {
            if self.ctl.kill.load(Ordering::Relaxed) || self.shared.stopping() {
                return;
            }
            if wall_now_ns() < self.ctl.stall_until_ns.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            if !self.authed && wall_now_ns() - self.opened_ns > self.shared.auth_timeout.as_nanos() as i64 {
                if self.proto == Proto::Alpaca {
                    let _ = self.send(error(404, "auth timeout"), 1);
                }
                return self.close();
            }
            let next = match self.ws.read() {
                Ok(Message::Text(t)) => self.on_message(t.as_bytes()),
                Ok(Message::Binary(b)) => self.on_message(&b),
                Ok(_) => Next::Go,
                Err(WsError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Next::Go,
                Err(_) => return,
            };
            if let Next::Close = next {
                return self.close();
            }
            while let Ok(batch) = self.rx.try_recv() {
                if self.authed && self.deliver(&batch).is_err() {
                    return;
                }
            }
            match self.ws.flush() {
                Ok(()) => {}
                Err(WsError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }

    fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }

    fn send(&mut self, text: String, messages: u64) -> Result<(), WsError> {
        self.send_frame(Utf8Bytes::from(text), messages)
    }

    fn send_frame(&mut self, text: Utf8Bytes, messages: u64) -> Result<(), WsError> {
        let c = &self.shared.counters;
        c.frames_sent.fetch_add(1, Ordering::Relaxed);
        c.messages_sent.fetch_add(messages, Ordering::Relaxed);
        if self.msgpack {
            let bin = super::msgpack::encode_frame(&text).unwrap_or_else(|| text.as_bytes().to_vec());
            return self.ws.send(Message::Binary(bin.into()));
        }
        self.ws.send(Message::Text(text))
    }

    fn on_message(&mut self, msg: &[u8]) -> Next {
        let v =
            serde_json::from_slice(msg).ok().or_else(|| if self.msgpack { super::msgpack::decode(msg) } else { None });
        let v: Value = match v {
            Some(v) => v,
            None => {
                return match self.proto {
                    Proto::Alpaca => self.reply(error(400, "invalid syntax")),
                    Proto::Polygon => self.reply(status("error", "invalid json")),
                };
            }
        };
        match self.proto {
            Proto::Alpaca => self.alpaca(&v),
            Proto::Polygon => self.polygon(&v),
        }
    }

    fn reply(&mut self, text: String) -> Next {
        if self.send(text, 1).is_err() { Next::Close } else { Next::Go }
    }

    fn alpaca(&mut self, v: &Value) -> Next {
        let action = v.get("action").and_then(Value::as_str).unwrap_or("");
        match action {
            "auth" | "authenticate" => {
                if self.authed {
                    return self.reply(error(403, "already authenticated"));
                }
                let key = v.get("key").and_then(Value::as_str).unwrap_or("");
                let secret = v.get("secret").and_then(Value::as_str).unwrap_or("");
                let forced = self.shared.faults.take_auth_fail();
                let c = &self.shared.counters;
                if forced || key != self.shared.key || secret != self.shared.secret {
                    c.auth_failed.fetch_add(1, Ordering::Relaxed);
                    let _ = self.send(error(402, "auth failed"), 1);
                    return Next::Close;
                }
                if self.shared.faults.take_conn_limit() || !self.shared.hub.claim(key, self.ctl.id) {
                    c.rejected_406.fetch_add(1, Ordering::Relaxed);
                    let _ = self.send(error(406, "connection limit exceeded"), 1);
                    return Next::Close;
                }
                c.auth_ok.fetch_add(1, Ordering::Relaxed);
                self.authed = true;
                self.reply("[{\"T\":\"success\",\"msg\":\"authenticated\"}]".into())
            }
            _ if !self.authed => self.reply(error(401, "not authenticated")),
            "subscribe" | "unsubscribe" => {
                let add = action == "subscribe";
                let shared = self.shared;
                let s = &mut self.subs;
                for (field, set) in [
                    ("bars", &mut s.bars),
                    ("updatedBars", &mut s.updated),
                    ("dailyBars", &mut s.daily),
                    ("quotes", &mut s.quotes),
                    ("trades", &mut s.trades),
                ] {
                    for name in v.get(field).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                        if add { set.add(name, shared) } else { set.remove(name, shared) }
                    }
                }
                let r = format!(
                    "[{{\"T\":\"subscription\",\"trades\":{},\"quotes\":{},\"bars\":{},\"updatedBars\":{},\"dailyBars\":{},\"statuses\":[],\"lulds\":[],\"corrections\":[],\"cancelErrors\":[]}}]",
                    s.trades.json(),
                    s.quotes.json(),
                    s.bars.json(),
                    s.updated.json(),
                    s.daily.json()
                );
                self.reply(r)
            }
            _ => self.reply(error(400, "invalid syntax")),
        }
    }

    fn polygon(&mut self, v: &Value) -> Next {
        let action = v.get("action").and_then(Value::as_str).unwrap_or("");
        let params = v.get("params").and_then(Value::as_str).unwrap_or("");
        match action {
            "auth" => {
                let forced = self.shared.faults.take_auth_fail();
                let c = &self.shared.counters;
                if forced || params != self.shared.key {
                    c.auth_failed.fetch_add(1, Ordering::Relaxed);
                    let _ = self.send(status("auth_failed", "authentication failed"), 1);
                    return Next::Close;
                }
                c.auth_ok.fetch_add(1, Ordering::Relaxed);
                self.authed = true;
                self.reply(status("auth_success", "authenticated"))
            }
            _ if !self.authed => self.reply(status("error", "not authorized")),
            "subscribe" | "unsubscribe" => {
                let add = action == "subscribe";
                let mut out = String::from("[");
                for p in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (ch, sym) = p.split_once('.').unwrap_or((p, ""));
                    let set = match ch {
                        "AM" => Some(&mut self.subs.minute),
                        "A" => Some(&mut self.subs.second),
                        _ => None,
                    };
                    if let Some(set) = set {
                        if add { set.add(sym, self.shared) } else { set.remove(sym, self.shared) }
                    }
                    if out.len() > 1 {
                        out.push(',');
                    }
                    let verb = if add { "subscribed to" } else { "unsubscribed to" };
                    out.push_str(&status_obj("success", &format!("{verb}: {p}")));
                }
                out.push(']');
                if out.len() == 2 {
                    return self.reply(status("error", "no params"));
                }
                self.reply(out)
            }
            _ => self.reply(status("error", "unknown action")),
        }
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), WsError> {
        if batch.malformed {
            let bad = match self.proto {
                Proto::Alpaca => "[{\"T\":\"b\",\"S\":\"",
                Proto::Polygon => "[{\"ev\":\"AM\",\"sym\":",
            };
            self.send(bad.to_string(), 1)?;
        }
        let frames = match self.subs.shared_key(self.proto) {
            Some(key) => {
                let mut cache = lock(&batch.frames);
                Arc::clone(cache.entry(key).or_insert_with(|| Arc::new(self.frames(batch))))
            }
            None => Arc::new(self.frames(batch)),
        };
        for (text, n) in frames.iter() {
            self.send_frame(text.clone(), *n)?;
        }
        Ok(())
    }

    /// This session's frames for a batch: every element it subscribed to, many per frame.
    fn frames(&self, batch: &Batch) -> Frames {
        let mut out = Vec::new();
        let mut frame = String::new();
        let mut n = 0u64;
        let s = &self.subs;
        for it in &batch.items {
            let parts: [&str; 2] = match (self.proto, it.kind) {
                (Proto::Alpaca, ItemKind::Bar) => [
                    if s.bars.contains(it.sym) { &it.alpaca } else { "" },
                    if s.quotes.contains(it.sym) { &it.quote } else { "" },
                ],
                (Proto::Alpaca, ItemKind::Updated) => [if s.updated.contains(it.sym) { &it.alpaca } else { "" }, ""],
                (Proto::Polygon, ItemKind::Bar | ItemKind::Updated) => {
                    [if s.minute.contains(it.sym) { &it.polygon } else { "" }, ""]
                }
                (Proto::Polygon, ItemKind::Second) => [if s.second.contains(it.sym) { &it.polygon } else { "" }, ""],
                (Proto::Alpaca, ItemKind::Second) => ["", ""],
            };
            for p in parts.iter().filter(|p| !p.is_empty()) {
                frame.push(if frame.is_empty() { '[' } else { ',' });
                frame.push_str(p);
                n += 1;
            }
            if n as usize >= FRAME_ELEMENTS || frame.len() >= FRAME_BYTES {
                frame.push(']');
                out.push((Utf8Bytes::from(std::mem::take(&mut frame)), n));
                n = 0;
            }
        }
        if n > 0 {
            frame.push(']');
            out.push((Utf8Bytes::from(frame), n));
        }
        out
    }
}

fn error(code: u16, msg: &str) -> String {
    format!("[{{\"T\":\"error\",\"code\":{code},\"msg\":\"{msg}\"}}]")
}

fn status_obj(status: &str, message: &str) -> String {
    format!("{{\"ev\":\"status\",\"status\":\"{status}\",\"message\":{}}}", super::wire::string(message))
}

fn status(status: &str, message: &str) -> String {
    format!("[{}]", status_obj(status, message))
}
