//! Polygon/Massive stocks as a [`Protocol`]: `{"action":"auth","params":K}`, `auth_success` ->
//! subscribe `AM.SYM` (and `A.SYM` with per-second bars), `auth_failed` is fatal (PROTOCOLS.md 2.1).

use super::{ControlAction, FatalError, FeedConfig, FeedHandle, Protocol, SharedClock, spawn_feed};
use crate::alpaca::Action;
use crate::credentials::Secret;
use crate::polygon::{self, Channel};
use crate::ws::TlsConfig;
use crate::{Control, FeedCounters, FeedMsg, SymbolMap};
use engine::pipeline::Ingress;
use engine::records::Interval;
use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The Polygon feed thread's name.
pub const POLYGON_THREAD_NAME: &str = "rt-feed-polygon";

/// What the Polygon feed connects to and how. `Debug` never shows the key.
#[derive(Debug)]
pub struct PolygonFeedConfig {
    /// Connection, gates, history.
    pub feed: FeedConfig,
    /// API key.
    pub key: Secret,
    /// Also subscribe per-second aggregates `A` (minute aggregates `AM` always).
    pub seconds: bool,
}

impl PolygonFeedConfig {
    /// Minute aggregates from `url` (defaults of [`FeedConfig::new`]).
    pub fn new(url: impl Into<String>, tls: TlsConfig, key: Secret) -> Self {
        PolygonFeedConfig { feed: FeedConfig::new(url, tls), key, seconds: false }
    }
}

/// The Polygon session: auth with the key, `AM` (and `A`) aggregates for every symbol,
/// `auth_failed` fatal, `max_connections` reconnects.
#[derive(Debug)]
pub struct PolygonProtocol {
    key: Secret,
    channels: Vec<Channel>,
    /// Symbols whose `AM` channel the server confirmed.
    confirmed: BTreeSet<String>,
}

impl PolygonProtocol {
    /// A session with this key, minute aggregates and, with `seconds`, per-second ones.
    pub fn new(key: Secret, seconds: bool) -> Self {
        let mut channels = vec![Channel::Minute];
        if seconds {
            channels.push(Channel::Second);
        }
        PolygonProtocol { key, channels, confirmed: BTreeSet::new() }
    }

    /// Note a `success` status: `subscribed to: AM.AAPL` / `unsubscribed to: AM.AAPL` (a list
    /// separated by commas is read too). True for a subscription (not an unsubscription).
    fn note(&mut self, message: &str) -> bool {
        let (add, list) = if let Some(l) = message.strip_prefix("subscribed to: ") {
            (true, l)
        } else if let Some(l) = message.strip_prefix("unsubscribed to: ") {
            (false, l)
        } else {
            return false;
        };
        for p in list.split(',').map(str::trim) {
            if let Some(sym) = p.strip_prefix("AM.") {
                if add {
                    self.confirmed.insert(sym.to_owned());
                } else {
                    self.confirmed.remove(sym);
                }
            }
        }
        add
    }
}

impl Protocol for PolygonProtocol {
    fn auth_message(&self) -> String {
        polygon::auth_message(self.key.expose())
    }

    fn decode(&self, frame: &[u8], recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
        polygon::decode_stream(frame, recv_ns, symbols, c, out);
    }

    fn control(&mut self, c: &Control) -> ControlAction {
        match c {
            Control::Authenticated => ControlAction::Authenticated,
            Control::AuthFailed(msg) => ControlAction::Fatal(FatalError::AuthFailed(msg.clone())),
            Control::Status { status, message } => match status.as_str() {
                "success" => {
                    if self.note(message) {
                        ControlAction::Subscribed
                    } else {
                        ControlAction::Ignore
                    }
                }
                // Another connection of this key is open (or still lingers): retry later.
                "max_connections" => ControlAction::Reconnect,
                "error" => ControlAction::Continue,
                _ => ControlAction::Ignore,
            },
            _ => ControlAction::Ignore,
        }
    }

    fn subscription(&self, action: Action, names: &[&str]) -> Option<String> {
        if names.is_empty() {
            return None;
        }
        Some(polygon::subscribe_message(action, &polygon::params(&self.channels, names.iter().copied())))
    }

    fn intervals(&self) -> Vec<Interval> {
        self.channels
            .iter()
            .map(|c| match c {
                Channel::Minute => Interval::M1,
                Channel::Second => Interval::S1,
            })
            .collect()
    }

    fn reset(&mut self) {
        self.confirmed.clear();
    }

    fn confirmed(&self) -> Vec<String> {
        self.confirmed.iter().cloned().collect()
    }
}

/// Start the Polygon feed thread [`POLYGON_THREAD_NAME`] (see [`super`]). Fails at once on a
/// configuration error (URL, TLS roots) or when the thread cannot be spawned; everything later
/// is in the [`super::FeedReport`].
pub fn spawn_polygon_feed(
    cfg: PolygonFeedConfig,
    ingress: Ingress,
    symbols: SymbolMap,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
) -> io::Result<FeedHandle> {
    let proto = PolygonProtocol::new(cfg.key, cfg.seconds);
    spawn_feed(POLYGON_THREAD_NAME, cfg.feed, proto, ingress, symbols, clock, stop)
}
