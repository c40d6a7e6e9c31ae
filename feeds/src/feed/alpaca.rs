//! Alpaca market data v2 as a [`Protocol`]: auth with key and secret, minute bars and updated
//! bars (and optionally quotes and trades) for every symbol, typed errors (PROTOCOLS.md 1.1).

use super::{ControlAction, FatalError, FeedConfig, FeedHandle, Protocol, SharedClock, spawn_feed};
use crate::alpaca::{self, Action};
use crate::credentials::Secret;
use crate::ws::TlsConfig;
use crate::{AlpacaChannels, Control, ErrorAction, FeedCounters, FeedMsg, SymbolMap};
use engine::pipeline::Ingress;
use engine::records::Interval;
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The Alpaca feed thread's name.
pub const ALPACA_THREAD_NAME: &str = "rt-feed-alpaca";

/// What the Alpaca feed connects to and how. `Debug` never shows the key or secret.
#[derive(Debug)]
pub struct AlpacaFeedConfig {
    /// Connection, gates, history.
    pub feed: FeedConfig,
    /// API key id.
    pub key: Secret,
    /// API secret.
    pub secret: Secret,
    /// Also subscribe quotes.
    pub quotes: bool,
    /// Also subscribe trades.
    pub trades: bool,
}

impl AlpacaFeedConfig {
    /// Bars and updated bars from `url` (defaults of [`FeedConfig::new`]).
    pub fn new(url: impl Into<String>, tls: TlsConfig, key: Secret, secret: Secret) -> Self {
        AlpacaFeedConfig { feed: FeedConfig::new(url, tls), key, secret, quotes: false, trades: false }
    }
}

/// The Alpaca session: auth with key and secret, bars and updated bars (and optionally quotes
/// and trades) for every symbol; errors typed by [`crate::AlpacaError::action`].
#[derive(Debug)]
pub struct AlpacaProtocol {
    key: Secret,
    secret: Secret,
    quotes: bool,
    trades: bool,
    confirmed: AlpacaChannels,
}

impl AlpacaProtocol {
    /// A session with these credentials and channels.
    pub fn new(key: Secret, secret: Secret, quotes: bool, trades: bool) -> Self {
        AlpacaProtocol { key, secret, quotes, trades, confirmed: AlpacaChannels::default() }
    }

    /// The channel set the server last confirmed (empty if it never did).
    pub fn confirmed_channels(&self) -> &AlpacaChannels {
        &self.confirmed
    }
}

impl Protocol for AlpacaProtocol {
    fn auth_message(&self) -> String {
        alpaca::auth_message(self.key.expose(), self.secret.expose())
    }

    fn decode(&self, frame: &[u8], recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
        alpaca::decode_stream(frame, recv_ns, symbols, c, out);
    }

    fn control(&mut self, c: &Control) -> ControlAction {
        match c {
            Control::Authenticated => ControlAction::Authenticated,
            Control::Subscription(ch) => {
                self.confirmed = ch.clone();
                ControlAction::Subscribed
            }
            Control::Error(e, _) => match e.action() {
                ErrorAction::Fatal => ControlAction::Fatal(FatalError::Alpaca(*e)),
                ErrorAction::Reconnect => ControlAction::Reconnect,
                ErrorAction::Continue => ControlAction::Continue,
            },
            _ => ControlAction::Ignore,
        }
    }

    fn subscription(&self, action: Action, names: &[&str]) -> Option<String> {
        if names.is_empty() {
            return None;
        }
        let all: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let ch = AlpacaChannels {
            bars: all.clone(),
            updated_bars: all.clone(),
            daily_bars: Vec::new(),
            quotes: if self.quotes { all.clone() } else { Vec::new() },
            trades: if self.trades { all } else { Vec::new() },
        };
        Some(alpaca::subscribe_message(action, &ch))
    }

    fn intervals(&self) -> Vec<Interval> {
        vec![Interval::M1]
    }

    fn reset(&mut self) {
        self.confirmed = AlpacaChannels::default();
    }

    fn confirmed(&self) -> Vec<String> {
        let mut v = self.confirmed.bars.clone();
        v.sort();
        v
    }
}

/// Start the Alpaca feed thread [`ALPACA_THREAD_NAME`] (see [`super`]). Fails at once on a
/// configuration error (URL, TLS roots) or when the thread cannot be spawned; everything later
/// is in the [`super::FeedReport`].
pub fn spawn_alpaca_feed(
    cfg: AlpacaFeedConfig,
    ingress: Ingress,
    symbols: SymbolMap,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
) -> io::Result<FeedHandle> {
    let proto = AlpacaProtocol::new(cfg.key, cfg.secret, cfg.quotes, cfg.trades);
    spawn_feed(ALPACA_THREAD_NAME, cfg.feed, proto, ingress, symbols, clock, stop)
}
