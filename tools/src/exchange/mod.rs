//! # The local exchange (`ringtape exchange`)
//!
//! One process on 127.0.0.1, one port, routed by path, that speaks the market data protocols of
//! Alpaca and Polygon closely enough that a client written against the real services works
//! unchanged, replaying bar files (default: the built-in S&P 500 minute bars) on a market clock,
//! with faults injected on command. It is a tool, not the hot path: one thread per connection,
//! one publisher thread.
//!
//! | route | what |
//! |---|---|
//! | `GET /v2/iex`, `/v2/sip`, `/v2/test` (websocket) | Alpaca market data stream v2 (JSON) |
//! | `GET /stocks` (websocket) | Polygon stocks stream (`A`, `AM`) |
//! | `GET /v2/stocks/bars`, `GET /v2/stocks/{sym}/bars` | Alpaca historical bars |
//! | `GET /v2/aggs/ticker/{T}/range/{mult}/{span}/{from}/{to}` | Polygon aggregates |
//! | `POST`/`GET /v0/timeseries.get_range` | Databento historical OHLCV as DBN (see `databento.rs`) |
//! | `GET /control/clock` | `{wall_start_ns, market_start_ns, speed, market_now_ns}` ([`MarketClock`]) |
//! | `POST /control/fault` | inject a [`Fault`] (JSON, e.g. `{"kind":"disconnect"}`) |
//! | `GET /control/stats` | counters ([`Stats`]) |
//! | `/v2/orders*`, `/v2/positions*`, `/v2/account`, `GET /stream` (websocket `trade_updates`) | the paper broker (see [`broker`]) |
//! | `GET /control/broker` | the broker's account, positions and orders ([`BrokerSnapshot`]) |
//!
//! **Market clock.** `market_now = market_start + (wall_now - wall_start) * speed`. A bar exists
//! (on the streams and in REST) only once its window has ended by `market_now`: no look-ahead.
//! Bars whose window ended before the start are history (REST only); later ones are streamed as
//! market time passes each window's end, merged across symbols in time order, many bars per frame.
//!
//! **Credentials.** Alpaca stream and REST check the configured key and secret
//! ([`DEMO_KEY`]/[`DEMO_SECRET`] by default); Polygon checks the key alone (`apiKey` query,
//! `Authorization: Bearer`, or the stream's auth `params`); Databento checks the key too (HTTP
//! basic auth, the key as user name). One Alpaca stream session per key
//! (a second gets `406 connection limit exceeded`).
//!
//! **Synthesized data.** Quotes `q` are made from each closed minute bar: bid = close - 0.01, ask =
//! close + 0.01 (bid at least 0.01), one lot a side, exchange `V`, stamped at the window's end,
//! sent right after the bar. Trade counts `n` are one per 100 shares; `vw` is the typical price
//! (h + l + c) / 3; Polygon's `av`, `op` and `a` run over the UTC day. No trades are streamed
//! (a `trades` subscription is accepted and echoed). Per-second data also streams Polygon `A`.
//!
//! **Sessions.** One thread each; the publisher hands every session each batch through an
//! unbounded channel. A client that does not read for 10 s (a full socket buffer) is dropped, as
//! the real services drop slow consumers.
//!
//! **MessagePack.** An Alpaca stream client that sends the handshake header `Content-Type:
//! application/msgpack` (alpaca-py does) gets binary msgpack frames (`t` as the msgpack
//! timestamp extension, type -1) and may send msgpack messages.
//!
//! **Official clients.** Checked by hand: alpaca-py 0.44.0 (`StockHistoricalDataClient` and
//! `StockDataStream` with `url_override`, msgpack stream: bars and quotes; plain, and TLS with
//! `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` set to the CA file) and polygon-api-client 1.16.3 (`RESTClient(base=...)` `list_aggs` paging through
//! `next_url`, `WebSocketClient(feed="127.0.0.1:PORT", secure=False)` `AM` events).
//!
//! **Paper broker.** Alpaca's trading REST and `trade_updates` stream for one account, filled by
//! the backtest's simulated venue on the bars the clock releases: see [`broker`]. Checked by hand
//! with alpaca-py 0.44.0 (`TradingClient` and `TradingStream` with `url_override`, plain):
//! `tools/scripts/alpaca_py_broker.py`.
//!
//! **Not served.** `sort=desc`, daily bars `d`, snapshots.
//!
//! ```no_run
//! use ringtape_tools::exchange::{Exchange, ExchangeConfig, Fault};
//! let ex = Exchange::start(ExchangeConfig { plain: true, speed: 600.0, ..ExchangeConfig::default() }).unwrap();
//! println!("alpaca stream at ws://{}/v2/iex, market time {}", ex.addr(), ex.clock().now_ns());
//! ex.inject(Fault::Disconnect);
//! ex.stop();
//! ```

pub mod broker;
mod clock;
mod data;
mod databento;
mod fault;
pub mod msgpack;
mod net;
mod publish;
mod rest;
mod server;
mod session;
mod wire;

pub mod cli;

pub use broker::{AccountView, BrokerConfig, BrokerSnapshot, OrderView, PositionView};
pub use clock::MarketClock;
pub use data::{SymbolBars, Tape};
pub use fault::{FAULT_NAMES, Fault, RejectVia, Scenario, When};

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// The default Alpaca key (and Polygon key) when none is configured.
pub const DEMO_KEY: &str = "RINGTAPE_DEMO_KEY";
/// The default Alpaca secret when none is configured.
pub const DEMO_SECRET: &str = "RINGTAPE_DEMO_SECRET";

/// How to start an exchange.
#[derive(Clone, Debug)]
pub struct ExchangeConfig {
    /// Bar directory (`None`: the built-in data).
    pub data: Option<PathBuf>,
    /// Preloaded data (wins over `data`; for tests and in-process use).
    pub tape: Option<Arc<Tape>>,
    /// Market seconds per wall second.
    pub speed: f64,
    /// Market start, ns UTC (`None`: one hour after the first bar's start).
    pub start_ns: Option<i64>,
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Serve plain `http://`/`ws://` instead of TLS.
    pub plain: bool,
    /// Alpaca key (also the Polygon key).
    pub key: String,
    /// Alpaca secret.
    pub secret: String,
    /// Where to write the CA certificate (`None`: next to the data, or the system temp dir for
    /// built-in data). The file is `ringtape-exchange-<port>.ca.pem`, removed when the exchange
    /// stops (a new certificate is generated at every start).
    pub state_dir: Option<PathBuf>,
    /// Faults at market times.
    pub scenario: Scenario,
    /// Wall seconds a stream client has to authenticate (then `404 auth timeout`).
    pub auth_timeout_s: f64,
    /// The paper broker's settings.
    pub broker: BrokerConfig,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            data: None,
            tape: None,
            speed: 1.0,
            start_ns: None,
            port: 0,
            plain: false,
            key: DEMO_KEY.into(),
            secret: DEMO_SECRET.into(),
            state_dir: None,
            scenario: Scenario::default(),
            auth_timeout_s: 10.0,
            broker: BrokerConfig::default(),
        }
    }
}

/// Counters, live.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub http_requests: AtomicU64,
    pub ws_sessions: AtomicU64,
    pub auth_ok: AtomicU64,
    pub auth_failed: AtomicU64,
    pub rejected_406: AtomicU64,
    pub rejected_429: AtomicU64,
    pub bars_published: AtomicU64,
    pub frames_sent: AtomicU64,
    pub messages_sent: AtomicU64,
}

/// A snapshot of the exchange's counters (also `GET /control/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests answered (REST and control).
    pub http_requests: u64,
    /// Websocket sessions opened.
    pub ws_sessions: u64,
    /// Websocket sessions live now.
    pub live_sessions: u64,
    /// Stream auths accepted.
    pub auth_ok: u64,
    /// Stream auths refused.
    pub auth_failed: u64,
    /// `406 connection limit exceeded` sent.
    pub rejected_406: u64,
    /// Websocket upgrades refused with 429.
    pub rejected_429: u64,
    /// Bars released by the market clock (each once, before faults).
    pub bars_published: u64,
    /// Websocket frames sent.
    pub frames_sent: u64,
    /// Messages (array elements) sent on the streams.
    pub messages_sent: u64,
    /// Injected faults by kind.
    pub faults: std::collections::BTreeMap<String, u64>,
    /// Broker: orders taken (REST `accepted`).
    pub broker_orders: u64,
    /// Broker: fill events (partial and full).
    pub broker_fills: u64,
    /// Broker: orders canceled (including ioc/fok remainders).
    pub broker_cancels: u64,
    /// Broker: orders refused (REST 4xx on submit, stream `rejected`).
    pub broker_rejects: u64,
    /// Broker: trading requests answered 429.
    pub broker_rate_limited: u64,
    /// Broker: `trade_updates` sessions opened.
    pub trade_update_sessions: u64,
    /// Broker: events delivered (one per listening session).
    pub events_sent: u64,
    /// Broker: events produced while no session listened (lost, as at the real broker).
    pub events_lost: u64,
}

/// The exchange.
#[derive(Debug)]
pub struct Exchange;

impl Exchange {
    /// Load the data, generate the certificate (unless plain), bind 127.0.0.1:`port` and start
    /// serving. Returns once the port accepts connections.
    pub fn start(cfg: ExchangeConfig) -> io::Result<ExchangeHandle> {
        server::start(cfg)
    }
}

/// A running exchange. Dropping it stops it.
pub struct ExchangeHandle {
    shared: Arc<server::Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ExchangeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeHandle").field("addr", &self.shared.addr).field("origin", &self.shared.origin).finish()
    }
}

impl ExchangeHandle {
    /// The bound address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The CA certificate clients trust as an extra root (PEM); `None` with `plain`.
    pub fn cert_pem(&self) -> Option<&str> {
        self.shared.ca_pem.as_deref()
    }

    /// Where the CA certificate was written; `None` with `plain`.
    pub fn cert_path(&self) -> Option<&std::path::Path> {
        self.shared.cert_path.as_deref()
    }

    /// `https` or `http`.
    pub fn http_scheme(&self) -> &'static str {
        if self.shared.ca_pem.is_some() { "https" } else { "http" }
    }

    /// `wss` or `ws`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.shared.ca_pem.is_some() { "wss" } else { "ws" }
    }

    /// `scheme://127.0.0.1:port`.
    pub fn http_origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// The market clock.
    pub fn clock(&self) -> MarketClock {
        self.shared.clock
    }

    /// The data being served.
    pub fn tape(&self) -> &Tape {
        &self.shared.tape
    }

    /// Inject a fault now.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The paper broker's account, positions and every order (what `GET /control/broker` serves).
    pub fn broker(&self) -> BrokerSnapshot {
        self.shared.broker.snapshot(self.shared.clock.now_ns())
    }

    /// Stop serving: close every connection, join the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ExchangeHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
