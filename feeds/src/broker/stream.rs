//! [`TradeUpdatesClient`]: Alpaca's `trade_updates` websocket (PROTOCOLS.md §1.4) over the
//! crate's reconnecting websocket transport ([`crate::ws::WsClient`]: mio, rustls, tungstenite,
//! pings, dead-connection detection, capped jittered backoff).
//!
//! **Session.** On every open connection the client sends
//! `{"action":"authenticate","data":{"key_id":..,"secret_key":..}}`; on
//! `{"stream":"authorization","data":{"status":"authorized"}}` it sends
//! `{"action":"listen","data":{"streams":["trade_updates"]}}`; when the `listening` reply names
//! `trade_updates` it reports [`StreamEvent::Connected`]. `unauthorized` is
//! [`StreamEvent::AuthFailed`] and the client stops for good (reconnecting with refused keys
//! would only hammer the broker). A `listening` reply without `trade_updates` closes the
//! connection (reported as `Disconnected`) and the client reconnects. Every close or failed
//! attempt is [`StreamEvent::Disconnected`]; the transport reconnects after its backoff. Updates
//! sent while disconnected are not replayed by Alpaca: on each `Connected` the owner should
//! reconcile its open orders over REST.
//!
//! **Frames.** Text or binary (Alpaca's paper stream sends binary frames holding JSON text).
//! Decoded with serde_json, prices and quantities read from their text exactly. A frame that is
//! not JSON, or lacks a required field (`event`, `order` with `id`, `symbol`, `side`,
//! `status`), or has an unreadable number, is counted in `malformed_frames` and skipped; an
//! unknown event or order status is delivered as `Unknown(..)` and counted; frames of other
//! streams are counted as unknown and skipped. No frame ever panics or drops the connection.
//!
//! **Threads and clocks.** Owned by one thread (the gateway's), which calls
//! [`TradeUpdatesClient::poll`] in its loop. It owns its `mio::Poll`; it reads no clock of its
//! own (the caller's clock stamps `recv_ns` and drives the transport's timers).

use super::types::{BrokerError, OrderStatus, TradeUpdate};
use super::types::{StreamEvent, StreamStats, TradeEvent, TradingConfig};
use super::wire::WireUpdate;
use crate::credentials::Secret;
use crate::rest::scrub;
use crate::ws::{Connector, Transition, WsClient, WsConfig};
use mio::{Events, Poll, Token};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::Duration;

const TOKEN: Token = Token(0);

/// Where the session is on the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection open.
    Down,
    /// `authenticate` sent, waiting for `authorization`.
    Authenticating,
    /// `listen` sent, waiting for `listening`.
    Listening,
    /// Updates flow.
    Live,
    /// Refused keys or closed by the owner: nothing more happens.
    Stopped,
}

/// What a frame asks the session to do next (sends happen after the transport's poll).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    SendListen,
    Close(String),
    AuthFailed(String),
}

/// The `trade_updates` stream client (see the [module docs](self)).
pub struct TradeUpdatesClient {
    ws: WsClient,
    poll: Poll,
    events: Events,
    key_id: String,
    secret: Secret,
    phase: Phase,
    stats: StreamStats,
    actions: Vec<Action>,
    /// This side closed the connection and already reported why.
    closing: bool,
    /// When the current connection opened (caller's clock).
    opened_ns: i64,
    /// Authorization and listen confirmation must arrive within this after opening.
    session_timeout_ns: i64,
}

/// Default [`TradeUpdatesClient::with_session_timeout`]: 10 s.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for TradeUpdatesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradeUpdatesClient")
            .field("ws", &self.ws)
            .field("key_id", &"***")
            .field("secret", &self.secret)
            .field("phase", &self.phase)
            .field("stats", &self.stats)
            .finish()
    }
}

impl TradeUpdatesClient {
    /// A client for `cfg.stream_url` with the transport's default timers (10 s pings, dead
    /// after 30 s of silence, backoff 0.25 s doubling to 30 s). No I/O yet.
    pub fn new(cfg: &TradingConfig) -> Result<Self, BrokerError> {
        Self::with_ws_config(cfg, WsConfig::default())
    }

    /// The same with the transport's timers and backoff given.
    pub fn with_ws_config(cfg: &TradingConfig, ws_cfg: WsConfig) -> Result<Self, BrokerError> {
        let config = |e: &dyn std::fmt::Display| BrokerError::Config { detail: e.to_string() };
        if cfg.key_id.is_empty() || cfg.secret.expose().is_empty() {
            return Err(BrokerError::Config {
                detail: "empty API key id or secret: set APCA_API_KEY_ID and APCA_API_SECRET_KEY".into(),
            });
        }
        let connector = Connector::new(&cfg.tls).map_err(|e| config(&e))?;
        let poll = Poll::new().map_err(|e| config(&format!("mio poll: {e}")))?;
        let ws = WsClient::new(&cfg.stream_url, connector, ws_cfg, poll.registry(), TOKEN).map_err(|e| config(&e))?;
        Ok(TradeUpdatesClient {
            ws,
            poll,
            events: Events::with_capacity(16),
            key_id: cfg.key_id.clone(),
            secret: cfg.secret.clone(),
            phase: Phase::Down,
            stats: StreamStats::default(),
            actions: Vec::new(),
            closing: false,
            opened_ns: 0,
            session_timeout_ns: SESSION_TIMEOUT.as_nanos() as i64,
        })
    }

    /// How long an open connection may wait for `authorized` and `listening` before it is
    /// closed and tried again (default [`SESSION_TIMEOUT`]).
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout_ns = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        self
    }

    /// When the session must be confirmed by, while it is not yet (else `i64::MAX`).
    fn session_deadline_ns(&self) -> i64 {
        match self.phase {
            Phase::Authenticating | Phase::Listening => self.opened_ns.saturating_add(self.session_timeout_ns),
            _ => i64::MAX,
        }
    }

    /// Wait up to `timeout` for socket activity (less when a transport timer is due sooner),
    /// then append what happened, in order, to `out`. `clock` (ns) stamps `recv_ns` and drives
    /// the timers. After `AuthFailed` or [`TradeUpdatesClient::close`] it only waits.
    pub fn poll(&mut self, timeout: Duration, clock: &dyn Fn() -> i64, out: &mut Vec<StreamEvent>) {
        if self.phase == Phase::Stopped {
            let _ = self.poll.poll(&mut self.events, Some(timeout));
            return;
        }
        // Work already due (first connect, a reconnect whose backoff passed, queued frames).
        self.drive(clock, out);
        if self.phase == Phase::Stopped {
            return;
        }
        let now = clock();
        let deadline = self.ws.next_deadline_ns().min(self.session_deadline_ns());
        let until_deadline = deadline.saturating_sub(now).max(0);
        let wait = timeout.min(Duration::from_nanos(until_deadline as u64));
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            out.push(StreamEvent::Disconnected { reason: format!("mio poll failed: {e}") });
        }
        self.drive(clock, out);
        if clock() >= self.session_deadline_ns() {
            let what = if self.phase == Phase::Authenticating { "authorization" } else { "listen confirmation" };
            let ms = self.session_timeout_ns / 1_000_000;
            self.actions.push(Action::Close(format!("no trade_updates {what} within {ms} ms of connecting")));
            self.act(out);
            self.drive(clock, out);
        }
    }

    /// Close the connection (a close frame, best effort) and stop for good.
    pub fn close(&mut self) {
        self.ws.close();
        self.phase = Phase::Stopped;
    }

    /// What the client did so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats { frames: self.ws.counters().frames, ..self.stats }
    }

    /// Poll the transport until it has nothing more to report, handling frames and sending
    /// what the session needs.
    fn drive(&mut self, clock: &dyn Fn() -> i64, out: &mut Vec<StreamEvent>) {
        // Bounded: each round either reports a transition or drains the socket.
        for _ in 0..64 {
            let (stats, actions, phase) = (&mut self.stats, &mut self.actions, &mut self.phase);
            let secrets = [self.key_id.as_str(), self.secret.expose()];
            let transition = self.ws.poll(clock, &mut |frame: &[u8], recv_ns| {
                on_frame(frame, recv_ns, phase, stats, actions, &secrets, out)
            });
            let acted = self.act(out);
            match transition {
                Some(Transition::Opened) => {
                    self.stats.connects += 1;
                    self.phase = Phase::Authenticating;
                    self.opened_ns = clock();
                    let auth = auth_message(&self.key_id, self.secret.expose());
                    // On failure the transport has closed the connection; its Closed comes next.
                    let _ = self.ws.send_text(&auth);
                }
                Some(Transition::Closed { reason, .. }) => {
                    self.stats.disconnects += 1;
                    self.phase = Phase::Down;
                    if !std::mem::take(&mut self.closing) {
                        out.push(StreamEvent::Disconnected { reason: reason.to_string() });
                    }
                }
                None if !acted => return,
                None => {}
            }
            if self.phase == Phase::Stopped {
                return;
            }
        }
    }

    /// Carry out what frames asked for; whether anything was done.
    fn act(&mut self, out: &mut Vec<StreamEvent>) -> bool {
        let acted = !self.actions.is_empty();
        for a in std::mem::take(&mut self.actions) {
            match a {
                Action::SendListen => {
                    let _ = self.ws.send_text(LISTEN);
                }
                Action::Close(reason) => {
                    // Reported here with its reason; the transport's `Local` close is not.
                    self.ws.close();
                    self.phase = Phase::Down;
                    self.closing = true;
                    out.push(StreamEvent::Disconnected { reason });
                }
                Action::AuthFailed(message) => {
                    self.ws.close();
                    self.phase = Phase::Stopped;
                    self.stats.disconnects += 1;
                    out.push(StreamEvent::AuthFailed { message });
                }
            }
        }
        acted
    }
}

/// The `listen` message.
pub const LISTEN: &str = r#"{"action":"listen","data":{"streams":["trade_updates"]}}"#;

/// The `authenticate` message (the form alpaca-py sends). Holds the secret: send it, never log it.
pub fn auth_message(key_id: &str, secret: &str) -> String {
    serde_json::json!({"action":"authenticate","data":{"key_id":key_id,"secret_key":secret}}).to_string()
}

#[derive(Deserialize)]
struct WireFrame<'a> {
    #[serde(default, borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// A frame whose `data` is read as a trade update directly.
#[derive(Deserialize)]
struct FastFrame<'a> {
    #[serde(default, borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<WireUpdate<'a>>,
}

#[derive(Deserialize)]
struct WireAuth<'a> {
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireListening<'a> {
    #[serde(default, borrow)]
    streams: Vec<Cow<'a, str>>,
}

/// Decode one frame: updates go to `out`, session replies become actions.
fn on_frame(
    frame: &[u8],
    recv_ns: i64,
    phase: &mut Phase,
    stats: &mut StreamStats,
    actions: &mut Vec<Action>,
    secrets: &[&str],
    out: &mut Vec<StreamEvent>,
) {
    if *phase == Phase::Stopped {
        return;
    }
    match decode_frame(frame, recv_ns) {
        Ok(Decoded::Update(u)) => {
            stats.updates += 1;
            if matches!(u.event, TradeEvent::Unknown(_)) || matches!(u.order.status, OrderStatus::Unknown(_)) {
                stats.unknown_events += 1;
            }
            out.push(StreamEvent::Update(u));
        }
        Ok(Decoded::Authorized) => {
            *phase = Phase::Listening;
            actions.push(Action::SendListen);
        }
        Ok(Decoded::Unauthorized(msg)) => {
            let msg = scrub(msg, secrets.iter().copied());
            actions.push(Action::AuthFailed(msg));
        }
        Ok(Decoded::Listening(true)) => {
            *phase = Phase::Live;
            out.push(StreamEvent::Connected);
        }
        Ok(Decoded::Listening(false)) => {
            actions.push(Action::Close("the server did not confirm listening to trade_updates".into()));
        }
        Ok(Decoded::Other) => stats.unknown_events += 1,
        Err(_) => stats.malformed_frames += 1,
    }
}

/// What one frame says.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // reason: updates are the common case; boxing would allocate per frame
pub(crate) enum Decoded {
    /// A trade update.
    Update(TradeUpdate),
    /// `authorization` with status `authorized`.
    Authorized,
    /// `authorization` with any other status (the server's words).
    Unauthorized(String),
    /// `listening`: whether its streams include `trade_updates`.
    Listening(bool),
    /// Another stream.
    Other,
}

/// Decode one `trade_updates` stream frame (text, or binary holding JSON text).
pub(crate) fn decode_frame(frame: &[u8], recv_ns: i64) -> Result<Decoded, String> {
    // The common case in one pass: a well-formed trade update. Anything else (session replies,
    // other streams, malformed updates) takes the general path below, which says what it is.
    if let Ok(FastFrame { stream: Some(s), data: Some(w) }) = serde_json::from_slice::<FastFrame<'_>>(frame)
        && s == "trade_updates"
    {
        return w.decode(recv_ns).map(Decoded::Update);
    }
    let f: WireFrame<'_> = serde_json::from_slice(frame).map_err(|e| format!("frame: {e}"))?;
    let data = f.data.map(RawValue::get).unwrap_or("null");
    match f.stream.as_deref() {
        Some("trade_updates") => {
            let w: WireUpdate<'_> = serde_json::from_str(data).map_err(|e| format!("trade update: {e}"))?;
            w.decode(recv_ns).map(Decoded::Update)
        }
        Some("authorization") => {
            let a: WireAuth<'_> = serde_json::from_str(data).map_err(|e| format!("authorization: {e}"))?;
            match a.status.as_deref() {
                Some("authorized") => Ok(Decoded::Authorized),
                other => {
                    let words = a.message.as_deref().or(a.error.as_deref()).unwrap_or("");
                    let sep = if words.is_empty() { "" } else { ": " };
                    Ok(Decoded::Unauthorized(format!(
                        "trade_updates authorization {}{sep}{words}; check APCA_API_KEY_ID/APCA_API_SECRET_KEY and the paper/live URL",
                        other.unwrap_or("missing")
                    )))
                }
            }
        }
        Some("listening") => {
            let l: WireListening<'_> = serde_json::from_str(data).map_err(|e| format!("listening: {e}"))?;
            Ok(Decoded::Listening(l.streams.iter().any(|s| s == "trade_updates")))
        }
        _ => Ok(Decoded::Other),
    }
}

/// Decode one `trade_updates` frame (text, or binary holding JSON text) the way the client
/// does: `Ok(Some(update))` for a trade update, `Ok(None)` for session replies and other
/// streams, `Err` (what is wrong) for a malformed frame. For tools and the parse benchmark.
pub fn decode_update(frame: &[u8], recv_ns: i64) -> Result<Option<TradeUpdate>, String> {
    match decode_frame(frame, recv_ns)? {
        Decoded::Update(u) => Ok(Some(u)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_message_escapes_and_matches_alpaca_py() {
        let v: serde_json::Value = serde_json::from_str(&auth_message("K", "S\"x")).unwrap();
        assert_eq!(v, serde_json::json!({"action":"authenticate","data":{"key_id":"K","secret_key":"S\"x"}}));
        let l: serde_json::Value = serde_json::from_str(LISTEN).unwrap();
        assert_eq!(l, serde_json::json!({"action":"listen","data":{"streams":["trade_updates"]}}));
    }

    #[test]
    fn session_frames() {
        let d = |s: &str| decode_frame(s.as_bytes(), 0).unwrap();
        assert!(matches!(
            d(r#"{"stream":"authorization","data":{"action":"authenticate","status":"authorized"}}"#),
            Decoded::Authorized
        ));
        let Decoded::Unauthorized(m) =
            d(r#"{"stream":"authorization","data":{"action":"authenticate","status":"unauthorized"}}"#)
        else {
            panic!("unauthorized")
        };
        assert!(m.contains("unauthorized"), "{m}");
        assert!(matches!(
            d(r#"{"stream":"listening","data":{"streams":["trade_updates"]}}"#),
            Decoded::Listening(true)
        ));
        assert!(matches!(d(r#"{"stream":"listening","data":{"streams":[]}}"#), Decoded::Listening(false)));
        assert!(matches!(d(r#"{"stream":"account_updates","data":{}}"#), Decoded::Other));
        assert!(decode_frame(b"{nope", 0).is_err());
        assert!(decode_frame(br#"{"stream":"trade_updates","data":{"event":"fill"}}"#, 0).is_err());
    }
}
