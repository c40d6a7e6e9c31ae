//! `trade_updates` sessions on `/stream`: auth (both of Alpaca's forms), listen, then every event
//! of the account as a binary frame holding JSON text (what the real server sends).

use super::lock;
use crate::exchange::clock::wall_now_ns;
use crate::exchange::net::{self, Conn, Request, Response};
use crate::exchange::server::Shared;
use serde_json::Value;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Error as WsError, Message};

struct Ctl {
    id: u64,
    kill: AtomicBool,
    listening: AtomicBool,
    tx: Sender<Arc<str>>,
    tcp: Option<TcpStream>,
}

/// The live `trade_updates` sessions.
#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<Vec<Arc<Ctl>>>,
    next: AtomicU64,
}

impl Hub {
    /// Hand an event to every listening session; returns how many got it.
    pub fn broadcast(&self, text: &str) -> u64 {
        let mut n = 0;
        let mut shared: Option<Arc<str>> = None;
        for c in lock(&self.sessions).iter() {
            if c.listening.load(Ordering::SeqCst) && !c.kill.load(Ordering::SeqCst) {
                let t = shared.get_or_insert_with(|| Arc::from(text));
                if c.tx.send(Arc::clone(t)).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Drop every session abruptly (TCP shutdown, no close frame).
    pub fn disconnect_all(&self) {
        for c in lock(&self.sessions).iter() {
            c.kill.store(true, Ordering::SeqCst);
            c.listening.store(false, Ordering::SeqCst);
            if let Some(t) = &c.tcp {
                let _ = t.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Serve a websocket upgrade on `/stream`.
pub(crate) fn upgrade(shared: &Arc<Shared>, mut conn: Conn, req: &Request, leftover: Vec<u8>) {
    let broker = &shared.broker;
    if broker.in_outage() {
        let resp = Response::json(503, "{\"code\":50300000,\"message\":\"trade_updates unavailable (outage)\"}".into());
        let _ = net::write_response(&mut conn, &resp, true);
        return;
    }
    let Some(key) = req.header("sec-websocket-key") else {
        let resp = Response::json(400, "{\"message\":\"not a websocket handshake\"}".into());
        let _ = net::write_response(&mut conn, &resp, true);
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
    let _ = conn.tcp().set_write_timeout(Some(Duration::from_secs(10)));
    let (tx, rx) = channel();
    let ctl = Arc::new(Ctl {
        id: broker.streams.next.fetch_add(1, Ordering::Relaxed),
        kill: AtomicBool::new(false),
        listening: AtomicBool::new(false),
        tx,
        tcp: conn.tcp().try_clone().ok(),
    });
    lock(&broker.streams.sessions).push(Arc::clone(&ctl));
    shared.counters.ws_sessions.fetch_add(1, Ordering::Relaxed);
    broker.counters.sessions.fetch_add(1, Ordering::Relaxed);
    let ws = WebSocket::from_partially_read(conn, leftover, Role::Server, None);
    run(shared, ws, &ctl, &rx);
    lock(&broker.streams.sessions).retain(|c| c.id != ctl.id);
}

fn send(shared: &Shared, ws: &mut WebSocket<Conn>, text: &str) -> Result<(), WsError> {
    shared.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
    ws.send(Message::Binary(text.as_bytes().to_vec().into()))
}

fn run(shared: &Shared, mut ws: WebSocket<Conn>, ctl: &Ctl, rx: &Receiver<Arc<str>>) {
    let opened = wall_now_ns();
    let mut authed = false;
    loop {
        if ctl.kill.load(Ordering::Relaxed) || shared.stopping() {
            return;
        }
        if !authed && wall_now_ns() - opened > shared.auth_timeout.as_nanos() as i64 {
            let _ = ws.close(None);
            let _ = ws.flush();
            return;
        }
        let msg = match ws.read() {
            Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
            Ok(Message::Binary(b)) => Some(b.to_vec()),
            Ok(_) => None,
            Err(WsError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(_) => return,
        };
        if let Some(m) = msg {
            let reply = on_message(shared, ctl, &mut authed, &m);
            let close = reply.as_ref().is_some_and(|(_, c)| *c);
            if let Some((text, _)) = reply
                && send(shared, &mut ws, &text).is_err()
            {
                return;
            }
            if close {
                let _ = ws.close(None);
                let _ = ws.flush();
                return;
            }
        }
        while let Ok(ev) = rx.try_recv() {
            if send(shared, &mut ws, &ev).is_err() {
                return;
            }
        }
        match ws.flush() {
            Ok(()) => {}
            Err(WsError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn auth_reply(ok: bool) -> String {
    format!(
        "{{\"stream\":\"authorization\",\"data\":{{\"action\":\"authenticate\",\"status\":\"{}\"}}}}",
        if ok { "authorized" } else { "unauthorized" }
    )
}

/// The reply to a client message, and whether to close after it.
fn on_message(shared: &Shared, ctl: &Ctl, authed: &mut bool, m: &[u8]) -> Option<(String, bool)> {
    let Ok(v) = serde_json::from_slice::<Value>(m) else {
        return Some(("{\"stream\":\"error\",\"data\":{\"error_message\":\"invalid syntax\"}}".into(), false));
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match v.get("action").and_then(Value::as_str).unwrap_or("") {
        "authenticate" | "auth" => {
            let (key, secret) = match v.get("data") {
                Some(d) => (s(d.get("key_id")), s(d.get("secret_key"))),
                None => (s(v.get("key")), s(v.get("secret"))),
            };
            let forced = shared.faults.take_auth_fail();
            let ok = !forced && key == shared.key && secret == shared.secret;
            let c = &shared.counters;
            if ok {
                c.auth_ok.fetch_add(1, Ordering::Relaxed);
                *authed = true;
            } else {
                c.auth_failed.fetch_add(1, Ordering::Relaxed);
            }
            Some((auth_reply(ok), !ok))
        }
        "listen" if !*authed => {
            Some(("{\"stream\":\"listening\",\"data\":{\"streams\":[],\"error\":\"not authenticated\"}}".into(), false))
        }
        "listen" => {
            let streams: Vec<&str> = v
                .pointer("/data/streams")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|s| *s == "trade_updates")
                .collect();
            ctl.listening.store(!streams.is_empty(), Ordering::SeqCst);
            Some((
                format!("{{\"stream\":\"listening\",\"data\":{{\"streams\":{}}}}}", serde_json::json!(streams)),
                false,
            ))
        }
        _ => Some(("{\"stream\":\"error\",\"data\":{\"error_message\":\"unknown action\"}}".into(), false)),
    }
}
