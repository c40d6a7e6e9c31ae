//! The websocket transport: one non-blocking connection ([`Conn`]) over mio, rustls and
//! tungstenite, and a reconnecting client ([`WsClient`]) with capped exponential backoff and
//! seeded jitter. No async runtime: a feed thread owns one `mio::Poll`, registers its
//! connections under tokens, and calls `poll` when a token is ready or a deadline passes.
//!
//! **TLS.** `wss://` verifies the server against the bundled webpki roots; a custom root
//! certificate (PEM) is added only when configured, for a local exchange
//! ([`TlsConfig::with_extra_root_pem`]). `ws://` needs an explicitly plain connector
//! ([`TlsConfig::Plain`], loopback tests and `--plain`). The crypto provider is ring, passed to
//! the config builder (no process-wide default needed).
//!
//! **Liveness.** Every `ping_interval_ns` the client pings; when no frame at all (data, ping,
//! pong or close) arrives for `dead_after_ns`, the connection is closed as
//! [`CloseReason::Dead`]. Server pings are answered by tungstenite.
//!
//! **Clock.** No clock is read here: `poll` takes the caller's clock (`&dyn Fn() -> i64`, ns),
//! which also stamps each frame's receive time.
//!
//! A feed thread's loop (wait for readiness or the next deadline, then poll; send auth and
//! subscriptions on every `Opened`, since a reconnect starts a fresh session):
//!
//! ```no_run
//! use feeds::ws::{Connector, TlsConfig, Transition, WsClient, WsConfig};
//! use mio::{Events, Poll, Token};
//! # fn clock() -> i64 { 0 }
//! let mut poll = Poll::new()?;
//! let connector = Connector::new(&TlsConfig::webpki())?;
//! let url = "wss://stream.data.alpaca.markets/v2/iex";
//! let mut client = WsClient::new(url, connector, WsConfig::default(), poll.registry(), Token(0))?;
//! let mut events = Events::with_capacity(64);
//! for _ in 0..1_000 {
//!     let wait_ns = (client.next_deadline_ns().saturating_sub(clock())).clamp(0, 1_000_000_000);
//!     poll.poll(&mut events, Some(std::time::Duration::from_nanos(wait_ns as u64)))?;
//!     let mut on_frame = |_frame: &[u8], _recv_ns: i64| { /* decode, push into the ingress */ };
//!     match client.poll(&clock, &mut on_frame) {
//!         Some(Transition::Opened) => client.send_text(&feeds::alpaca::auth_message("K", "S"))?,
//!         Some(Transition::Closed { reason, retry_at_ns }) => eprintln!("{reason}; retry at {retry_at_ns}"),
//!         None => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod conn;

pub use backoff::Backoff;
pub use conn::{Conn, ConnStats};

use mio::{Registry, Token};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

/// How to secure connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfig {
    /// `ws://` only, no TLS (loopback tests, a local exchange started with `--plain`).
    Plain,
    /// `wss://` verified against the bundled webpki roots, plus the given PEM root
    /// certificates (the local exchange's generated certificate) when not empty.
    Verified {
        /// Extra trusted roots, PEM text (one or more `CERTIFICATE` blocks).
        extra_roots_pem: Vec<String>,
    },
}

impl TlsConfig {
    /// Verified against the bundled roots only (real exchanges).
    pub fn webpki() -> Self {
        TlsConfig::Verified { extra_roots_pem: Vec::new() }
    }

    /// Verified against the bundled roots and one extra root (a local exchange).
    pub fn with_extra_root_pem(pem: impl Into<String>) -> Self {
        TlsConfig::Verified { extra_roots_pem: vec![pem.into()] }
    }
}

/// A built TLS setup, shared by every connection of a feed (building the root store once).
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<Arc<ClientConfig>>,
}

impl Connector {
    /// Build the rustls client config (ring provider, safe default protocol versions).
    pub fn new(cfg: &TlsConfig) -> Result<Self, WsError> {
        let TlsConfig::Verified { extra_roots_pem } = cfg else { return Ok(Connector { tls: None }) };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in extra_roots_pem {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| WsError::Pem(e.to_string()))?;
                roots.add(cert).map_err(|e| WsError::Pem(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(WsError::Pem("no CERTIFICATE block in the extra root".to_owned()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WsError::Pem(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector { tls: Some(Arc::new(config)) })
    }

    /// The rustls config, `None` for a plain connector.
    pub fn tls_config(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref()
    }
}

/// Timers and backoff of the transport (all in nanoseconds of the caller's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// Send a ping this long after the previous one.
    pub ping_interval_ns: i64,
    /// No frame at all for this long: the connection is dead.
    pub dead_after_ns: i64,
    /// TCP + TLS + websocket handshake must finish within this.
    pub connect_timeout_ns: i64,
    /// First reconnect delay (before jitter).
    pub backoff_base_ns: i64,
    /// Largest reconnect delay.
    pub backoff_cap_ns: i64,
    /// Seed of the jitter generator (deterministic delays for a seed).
    pub jitter_seed: u64,
}

impl Default for WsConfig {
    fn default() -> Self {
        const S: i64 = 1_000_000_000;
        WsConfig {
            ping_interval_ns: 10 * S,
            dead_after_ns: 30 * S,
            connect_timeout_ns: 10 * S,
            backoff_base_ns: S / 4,
            backoff_cap_ns: 30 * S,
            jitter_seed: 0x5EED,
        }
    }
}

/// Where a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// TCP connect, TLS or websocket handshake in flight.
    Connecting,
    /// Frames flow.
    Open,
    /// Gone, and why.
    Closed(CloseReason),
}

/// Why a connection ended (or never opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Resolve or TCP connect failed (refused, unreachable).
    ConnectFailed(String),
    /// The handshakes did not finish within `connect_timeout_ns`.
    ConnectTimeout,
    /// TLS failed: certificate verification (e.g. an unknown issuer) or a TLS alert.
    Tls(String),
    /// The websocket upgrade was answered with this HTTP status instead of 101 (e.g. 429 in a
    /// reconnect storm).
    HttpStatus(u16),
    /// Another websocket handshake failure.
    Handshake(String),
    /// The server sent a close frame (with its code, if any).
    PeerClosed(Option<u16>),
    /// The TCP or TLS stream ended without a websocket close.
    Eof,
    /// No frame for `silent_ns` (at least `dead_after_ns`): a silent dead connection.
    Dead {
        /// How long nothing arrived.
        silent_ns: i64,
    },
    /// A websocket protocol violation.
    Protocol(String),
    /// Another socket error.
    Io(String),
    /// Closed by this side.
    Local,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::ConnectTimeout => write!(f, "connect timed out"),
            CloseReason::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            CloseReason::HttpStatus(s) => write!(f, "websocket upgrade refused with HTTP {s}"),
            CloseReason::Handshake(e) => write!(f, "websocket handshake failed: {e}"),
            CloseReason::PeerClosed(Some(c)) => write!(f, "closed by the server (code {c})"),
            CloseReason::PeerClosed(None) => write!(f, "closed by the server"),
            CloseReason::Eof => write!(f, "connection ended without a websocket close"),
            CloseReason::Dead { silent_ns } => write!(f, "dead: no frame for {} ms", silent_ns / 1_000_000),
            CloseReason::Protocol(e) => write!(f, "websocket protocol error: {e}"),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::Local => write!(f, "closed locally"),
        }
    }
}

/// Configuration and API misuse errors (runtime failures are [`CloseReason`]s).
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The URL does not parse or has no host.
    #[error("bad websocket URL {0:?}")]
    BadUrl(String),
    /// The scheme does not match the connector.
    #[error("websocket URL {url:?}: {why}")]
    Scheme {
        /// The URL.
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The extra root certificate could not be read.
    #[error("extra root certificate: {0}")]
    Pem(String),
    /// The `mio` registry could not be cloned.
    #[error("mio registry: {0}")]
    Poll(String),
    /// Sending while not open.
    #[error("the connection is not open")]
    NotOpen,
    /// tungstenite's write buffer is full (the server does not read).
    #[error("write buffer full")]
    WriteBufferFull,
    /// The send found the connection gone.
    #[error("connection closed: {0}")]
    Closed(CloseReason),
}

/// Per-client transport counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WsCounters {
    /// Connection attempts (the first one included).
    pub attempts: u64,
    /// Connections that opened.
    pub opens: u64,
    /// Connections that opened after an earlier one closed.
    pub reconnects: u64,
    /// Attempts that closed before opening (refused, TLS, HTTP status, timeout).
    pub connect_failures: u64,
    /// Open connections declared dead (no frame within `dead_after_ns`).
    pub dead_detected: u64,
    /// Pings sent, over all connections.
    pub pings_sent: u64,
    /// Text and binary frames received, over all connections.
    pub frames: u64,
}

/// What changed during one [`WsClient::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A connection opened: send auth and subscriptions now.
    Opened,
    /// The connection closed (or an attempt failed); a reconnect is scheduled at `retry_at_ns`.
    Closed {
        /// Why.
        reason: CloseReason,
        /// When the next attempt starts.
        retry_at_ns: i64,
    },
}

/// A websocket client that keeps one connection to `url` alive: reconnects with capped
/// exponential backoff and jitter after any close, and counts what happened.
#[derive(Debug)]
pub struct WsClient {
    url: String,
    connector: Connector,
    cfg: WsConfig,
    registry: Registry,
    token: Token,
    conn: Option<Conn>,
    backoff: Backoff,
    retry_at_ns: i64,
    counters: WsCounters,
    closed_stats: ConnStats,
    pending: Option<Transition>,
    last_close: Option<CloseReason>,
}

impl WsClient {
    /// A client for `url`, registering its sockets with `registry` under `token`. The first
    /// attempt starts on the first [`WsClient::poll`]. Fails only on configuration errors
    /// (the URL and the connector are checked here, so `poll` never meets one).
    pub fn new(
        url: &str,
        connector: Connector,
        cfg: WsConfig,
        registry: &Registry,
        token: Token,
    ) -> Result<Self, WsError> {
        conn::Target::parse(url, &connector)?;
        let registry = registry.try_clone().map_err(|e| WsError::Poll(e.to_string()))?;
        let backoff = Backoff::new(cfg.backoff_base_ns, cfg.backoff_cap_ns, cfg.jitter_seed);
        Ok(WsClient {
            url: url.to_owned(),
            connector,
            cfg,
            registry,
            token,
            conn: None,
            backoff,
            retry_at_ns: i64::MIN,
            counters: WsCounters::default(),
            closed_stats: ConnStats::default(),
            pending: None,
            last_close: None,
        })
    }

    /// Connect when due, read every frame into `out` (payload, receive ns), keep the
    /// connection alive, and report at most one state change. Frames read in the same call
    /// that completed the handshake are delivered before `Opened` is returned. When a
    /// connection opened and closed within one call, `Opened` comes first and `Closed` on the
    /// next call ([`WsClient::next_deadline_ns`] is then already due).
    pub fn poll(&mut self, clock: &dyn Fn() -> i64, out: &mut impl FnMut(&[u8], i64)) -> Option<Transition> {
        if let Some(t) = self.pending.take() {
            return Some(t);
        }
        if self.conn.is_none() {
            let now = clock();
            if now < self.retry_at_ns {
                return None;
            }
            self.counters.attempts += 1;
            let conn = Conn::connect(&self.url, &self.connector, &self.cfg, &self.registry, self.token, now);
            match conn {
                Ok(c) => self.conn = Some(c),
                // Unreachable in practice: `new` checked the URL against the connector.
                Err(e) => return Some(self.closed(CloseReason::Handshake(e.to_string()), false, now)),
            }
        }
        let conn = self.conn.as_mut()?;
        let was_open = conn.was_opened();
        conn.poll_read(clock, out);
        let opened_now = !was_open && conn.was_opened();
        if opened_now {
            self.counters.opens += 1;
            if self.counters.opens > 1 {
                self.counters.reconnects += 1;
            }
            self.backoff.reset();
        }
        match conn.state().clone() {
            ConnState::Closed(reason) => {
                let (stats, ever_open) = (conn.stats(), conn.was_opened());
                self.closed_stats.frames += stats.frames;
                self.closed_stats.pings_sent += stats.pings_sent;
                self.conn = None;
                let closed = self.closed(reason, ever_open, clock());
                if opened_now {
                    self.pending = Some(closed);
                    Some(Transition::Opened)
                } else {
                    Some(closed)
                }
            }
            _ if opened_now => Some(Transition::Opened),
            _ => None,
        }
    }

    fn closed(&mut self, reason: CloseReason, was_open: bool, now: i64) -> Transition {
        if !was_open {
            self.counters.connect_failures += 1;
        }
        if matches!(reason, CloseReason::Dead { .. }) {
            self.counters.dead_detected += 1;
        }
        self.retry_at_ns = now.saturating_add(self.backoff.next_delay_ns());
        self.last_close = Some(reason.clone());
        Transition::Closed { reason, retry_at_ns: self.retry_at_ns }
    }

    /// Send a text message on the open connection.
    pub fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.conn.as_mut().ok_or(WsError::NotOpen)?.send_text(text)
    }

    /// The current connection's state: `Closed` with the last reason while waiting to retry,
    /// `Connecting` before the first attempt.
    pub fn state(&self) -> ConnState {
        match (&self.conn, &self.last_close) {
            (Some(c), _) => c.state().clone(),
            (None, Some(r)) => ConnState::Closed(r.clone()),
            (None, None) => ConnState::Connecting,
        }
    }

    /// Counters over every connection so far.
    pub fn counters(&self) -> WsCounters {
        let live = self.conn.as_ref().map(Conn::stats).unwrap_or_default();
        WsCounters {
            pings_sent: self.closed_stats.pings_sent + live.pings_sent,
            frames: self.closed_stats.frames + live.frames,
            ..self.counters
        }
    }

    /// When `poll` must run next even without readiness: the connection's timers, or the
    /// scheduled reconnect.
    pub fn next_deadline_ns(&self) -> i64 {
        if self.pending.is_some() {
            return i64::MIN;
        }
        match &self.conn {
            Some(c) => c.next_deadline_ns().unwrap_or(i64::MIN),
            None => self.retry_at_ns,
        }
    }

    /// Close the connection (a close frame, best effort) and stop: no reconnect until
    /// `poll` is called again after the backoff.
    pub fn close(&mut self) {
        if let Some(c) = &mut self.conn {
            c.close();
        }
    }
}
