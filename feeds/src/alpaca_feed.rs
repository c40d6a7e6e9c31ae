//! The Alpaca market-data feed thread ([`spawn_alpaca_feed`]): one websocket connection to the
//! stream (v2), authenticated and subscribed to minute bars and updated bars (and optionally
//! quotes and trades) for a symbol map, decoded, ordered and deduped by [`BarGates`], and pushed
//! into the engine's [`Ingress`].
//!
//! **Session.** On every `Opened` (the first connection and each reconnect, which starts a fresh
//! server session) the thread sends auth, waits for `authenticated`, then subscribes the full
//! channel set. A fatal [`AlpacaError`] ([`ErrorAction::Fatal`]: 402 auth failed, 405, 409) ends
//! the thread with the typed error in its [`FeedReport`]; a `Reconnect` error closes the
//! connection and the [`WsClient`] reconnects with backoff; a `Continue` error is counted.
//!
//! **Bars.** Bars and updated bars are offered to [`BarGates`] with the frame's receive time;
//! released bars become [`Event::bar`]s (receive time of the released version). The gates are
//! flushed with the injected clock on every loop turn (the poll wait is bounded by
//! [`AlpacaFeedConfig::max_wait_ns`]) so a quiet symbol's last window is released once its
//! grace has passed. Quotes and trades are pushed as they come.
//!
//! **Backpressure.** [`Ingress::push`] waits while the ingress is full (nothing is dropped); while
//! it waits the socket is not read (the server buffers, then drops a client that falls behind:
//! size the ingress for bursts). A closed ingress (the run ended) ends the thread.
//!
//! **Stop.** When the stop flag is set the thread drains the gates (every pending window is
//! released and pushed), closes the connection and ends. A fatal error or a closed ingress ends
//! it without draining ([`FeedReport::pending_at_end`] says how many windows were left).
//!
//! **Never:** reads a wall clock (the clock is injected), logs or reports a secret (the key and
//! secret are [`Secret`]s, exposed only to build the auth message).

use crate::credentials::Secret;
use crate::ws::{Connector, TlsConfig, Transition, WsClient, WsConfig, WsCounters};
use crate::{
    AlpacaChannels, AlpacaError, BarGates, Control, ErrorAction, FeedCounters, FeedMsg, GateConfig, ReleasedBar,
};
use crate::{SymbolMap, alpaca};
use engine::pipeline::Ingress;
use engine::records::Event;
use mio::{Events, Poll, Token};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The feed thread's name.
pub const THREAD_NAME: &str = "rt-feed-alpaca";

/// The clock the feed reads (ns UTC): it stamps frames and drives the gates and the transport's
/// timers (the same type as the replay feeds').
pub use crate::replay::SharedClock;

const TOKEN: Token = Token(0);

/// What the Alpaca feed thread connects to and how. `Debug` never shows the key or secret.
#[derive(Clone, Debug)]
pub struct AlpacaFeedConfig {
    /// The stream URL, e.g. `wss://stream.data.alpaca.markets/v2/iex`.
    pub url: String,
    /// TLS (webpki roots, an extra root for a local exchange, or plain `ws://`).
    pub tls: TlsConfig,
    /// Transport timers and backoff.
    pub ws: WsConfig,
    /// API key id.
    pub key: Secret,
    /// API secret.
    pub secret: Secret,
    /// When bar windows are final.
    pub gate: GateConfig,
    /// Also subscribe quotes.
    pub quotes: bool,
    /// Also subscribe trades.
    pub trades: bool,
    /// Longest wait for socket readiness before the loop turns again (flushes the gates, checks
    /// the stop flag), ns.
    pub max_wait_ns: i64,
}

impl AlpacaFeedConfig {
    /// Bars and updated bars from `url` with default transport, gate (2 s grace) and a 50 ms
    /// loop bound.
    pub fn new(url: impl Into<String>, tls: TlsConfig, key: Secret, secret: Secret) -> Self {
        AlpacaFeedConfig {
            url: url.into(),
            tls,
            ws: WsConfig::default(),
            key,
            secret,
            gate: GateConfig::default(),
            quotes: false,
            trades: false,
            max_wait_ns: 50_000_000,
        }
    }
}

/// Why the feed thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEnd {
    /// The stop flag was set (pending bars were drained and pushed).
    Stopped,
    /// The ingress refused an event: the run has ended.
    IngressClosed,
    /// The server sent an error retrying cannot fix (402 auth failed, 405, 409).
    Fatal(AlpacaError),
    /// The readiness poll failed.
    Io(String),
}

/// What the feed thread did.
#[derive(Clone, Debug)]
pub struct FeedReport {
    /// Decoder and gate counters.
    pub counters: FeedCounters,
    /// Transport counters (attempts, opens, frames, pings).
    pub ws: WsCounters,
    /// Connections opened after an earlier one closed.
    pub reconnects: u64,
    /// Events pushed into the ingress.
    pub pushed: u64,
    /// Server errors that did not end the feed (`Continue` and `Reconnect` actions).
    pub server_errors: u64,
    /// The channel set the server last confirmed (empty if it never did).
    pub subscribed: AlpacaChannels,
    /// Bar windows still pending in the gates when the feed ended: 0 after a stop (drained and
    /// pushed); after a fatal error or a closed ingress they were not pushed.
    pub pending_at_end: usize,
    /// Why it ended.
    pub end: FeedEnd,
}

/// Start the feed thread [`THREAD_NAME`] (see the [module docs](self)). Fails at once on a
/// configuration error (URL, TLS roots) or when the thread cannot be spawned; everything later
/// is in the [`FeedReport`].
pub fn spawn_alpaca_feed(
    cfg: AlpacaFeedConfig,
    ingress: Ingress,
    symbols: SymbolMap,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<FeedReport>> {
    let poll = Poll::new()?;
    let connector = Connector::new(&cfg.tls).map_err(io::Error::other)?;
    let client =
        WsClient::new(&cfg.url, connector, cfg.ws.clone(), poll.registry(), TOKEN).map_err(io::Error::other)?;
    std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
        let mut feed = Feed::new(cfg, ingress, symbols);
        feed.run(poll, client, &*clock, &stop)
    })
}

/// Where a connection's session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    /// Not connected.
    Down,
    /// Auth sent, waiting for `authenticated`.
    Authenticating,
    /// Subscribed (or subscribing): data flows.
    Live,
}

struct Feed {
    cfg: AlpacaFeedConfig,
    ingress: Ingress,
    symbols: SymbolMap,
    counters: FeedCounters,
    gates: BarGates,
    msgs: Vec<FeedMsg>,
    released: Vec<ReleasedBar>,
    controls: Vec<Control>,
    pushed: u64,
    server_errors: u64,
    ingress_closed: bool,
    session: Session,
    subscribed: AlpacaChannels,
}

impl Feed {
    fn new(cfg: AlpacaFeedConfig, ingress: Ingress, symbols: SymbolMap) -> Self {
        let gates = BarGates::new(cfg.gate);
        Feed {
            cfg,
            ingress,
            symbols,
            counters: FeedCounters::default(),
            gates,
            msgs: Vec::with_capacity(64),
            released: Vec::with_capacity(64),
            controls: Vec::new(),
            pushed: 0,
            server_errors: 0,
            ingress_closed: false,
            session: Session::Down,
            subscribed: AlpacaChannels::default(),
        }
    }

    fn want(&self) -> AlpacaChannels {
        let names: Vec<String> = self.symbols.names().into_iter().map(str::to_owned).collect();
        AlpacaChannels {
            bars: names.clone(),
            updated_bars: names.clone(),
            daily_bars: Vec::new(),
            quotes: if self.cfg.quotes { names.clone() } else { Vec::new() },
            trades: if self.cfg.trades { names } else { Vec::new() },
        }
    }

    fn push(&mut self, ev: Event) {
        if self.ingress_closed {
            return;
        }
        if self.ingress.push(ev).is_err() {
            self.ingress_closed = true;
        } else {
            self.pushed += 1;
        }
    }

    fn push_released(&mut self) {
        let released = std::mem::take(&mut self.released);
        for r in &released {
            self.push(r.event());
        }
        self.released = released;
        self.released.clear();
    }

    /// Decode one frame; bars go through the gates, quotes and trades straight to the ingress,
    /// control messages wait for the loop (which owns the client).
    fn on_frame(&mut self, frame: &[u8], recv_ns: i64) {
        if self.ingress_closed {
            return;
        }
        self.msgs.clear();
        alpaca::decode_stream(frame, recv_ns, &self.symbols, &mut self.counters, &mut self.msgs);
        let msgs = std::mem::take(&mut self.msgs);
        for m in &msgs {
            match m {
                FeedMsg::Bar(u) => {
                    self.gates.offer(u, &mut self.counters, &mut self.released);
                    self.push_released();
                }
                FeedMsg::Quote { .. } | FeedMsg::Trade { .. } => {
                    if let Some(ev) = m.event() {
                        self.push(ev);
                    }
                }
                FeedMsg::Control(c) => self.controls.push(c.clone()),
                // Counted by the decoder.
                FeedMsg::Rejected(_) => {}
            }
        }
        self.msgs = msgs;
    }

    /// Act on the control messages of the last poll; `Some` ends the feed.
    fn on_controls(&mut self, client: &mut WsClient) -> Option<FeedEnd> {
        let controls = std::mem::take(&mut self.controls);
        let mut end = None;
        for c in controls {
            match c {
                Control::Authenticated if self.session == Session::Authenticating => {
                    self.session = Session::Live;
                    let (add, _) = AlpacaChannels::default().diff(&self.want());
                    if !add.is_empty() {
                        // A failed send closed the connection: the client reconnects.
                        let _ = client.send_text(&alpaca::subscribe_message(alpaca::Action::Subscribe, &add));
                    }
                }
                Control::Subscription(ch) => self.subscribed = ch,
                Control::Error(e, _) => match e.action() {
                    ErrorAction::Fatal => {
                        end = Some(FeedEnd::Fatal(e));
                        break;
                    }
                    ErrorAction::Reconnect => {
                        self.server_errors += 1;
                        client.close();
                    }
                    ErrorAction::Continue => self.server_errors += 1,
                },
                _ => {}
            }
        }
        end
    }

    fn on_transition(&mut self, t: Transition, client: &mut WsClient) {
        match t {
            Transition::Opened => {
                self.subscribed = AlpacaChannels::default();
                let auth = alpaca::auth_message(self.cfg.key.expose(), self.cfg.secret.expose());
                self.session = match client.send_text(&auth) {
                    Ok(()) => Session::Authenticating,
                    // The connection closed under the send: a `Closed` transition follows.
                    Err(_) => Session::Down,
                };
            }
            Transition::Closed { .. } => {
                self.session = Session::Down;
                self.subscribed = AlpacaChannels::default();
            }
        }
    }

    fn run(&mut self, mut poll: Poll, mut client: WsClient, clock: &dyn Fn() -> i64, stop: &AtomicBool) -> FeedReport {
        let mut events = Events::with_capacity(16);
        let end = loop {
            if stop.load(Ordering::Relaxed) {
                self.gates.drain(clock(), &mut self.counters, &mut self.released);
                self.push_released();
                client.close();
                break if self.ingress_closed { FeedEnd::IngressClosed } else { FeedEnd::Stopped };
            }
            let now = clock();
            let wait_ns = client.next_deadline_ns().saturating_sub(now).clamp(0, self.cfg.max_wait_ns.max(0));
            match poll.poll(&mut events, Some(Duration::from_nanos(wait_ns as u64))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break FeedEnd::Io(e.to_string()),
            }
            // Polling the client without readiness is cheap (it reads until it would block).
            let t = client.poll(clock, &mut |frame: &[u8], recv_ns| self.on_frame(frame, recv_ns));
            if let Some(end) = self.on_controls(&mut client) {
                client.close();
                break end;
            }
            if let Some(t) = t {
                self.on_transition(t, &mut client);
            }
            self.gates.flush(clock(), &mut self.counters, &mut self.released);
            self.push_released();
            if self.ingress_closed {
                client.close();
                break FeedEnd::IngressClosed;
            }
        };
        let ws = client.counters();
        FeedReport {
            counters: self.counters,
            ws,
            reconnects: ws.reconnects,
            pushed: self.pushed,
            server_errors: self.server_errors,
            subscribed: std::mem::take(&mut self.subscribed),
            pending_at_end: self.gates.pending(),
            end,
        }
    }
}
