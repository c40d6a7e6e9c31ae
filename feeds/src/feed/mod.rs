//! The live feed thread, one loop for every provider: one websocket connection carrying every
//! symbol, a provider's session [`Protocol`] (Alpaca: [`spawn_alpaca_feed`], Polygon/Massive:
//! [`spawn_polygon_feed`]), bars ordered and deduped by [`BarGates`], history from a
//! [`History`] for warm start and gap backfill, universe changes through a [`FeedHandle`], and
//! everything published into the engine's [`Ingress`] without ever blocking the socket reader.
//!
//! **Session.** On every `Opened` (the first connection and each reconnect, which starts a fresh
//! server session) the thread sends the protocol's auth message and waits for the control
//! message the protocol calls [`ControlAction::Authenticated`]; then it subscribes the full
//! symbol set and asks history for what is missing (below). A [`ControlAction::Fatal`] message
//! (Alpaca 402/405/409, Polygon `auth_failed`) ends the thread with the typed error in its
//! [`FeedReport`]; [`ControlAction::Reconnect`] closes the connection and the [`WsClient`]
//! reconnects with backoff and jitter; [`ControlAction::Continue`] is counted.
//!
//! **History.** At each subscribe the subscribed symbols' gates are held (live bars are
//! collected, not released) and queued for history in batches of [`FeedConfig::history_chunk`]
//! symbols; fetching starts once the server confirmed the subscription
//! ([`ControlAction::Subscribed`]: it is applied from then on, so no window can fall between the
//! history's end and the first live bar, even when the server applies it late; a server that
//! sends no confirmation within the transport's `dead_after_ns` is not waited for), and one batch
//! is fetched per loop turn, so the socket is read between batches. Per bar interval of the protocol and per symbol: a symbol whose
//! gate already released a window gets `[last released + interval, now floored)` (gap backfill;
//! bars it adds are counted in [`FeedCounters::gaps_filled`]); a symbol with none gets
//! `[now - warm_start, now floored)` (warm start). The bars are ordered with
//! [`crate::order_history`] and offered to the gates as final ([`BarGates::offer_final`]), so
//! the strategy sees history then live bars in one ordered stream, and a live bar for a window
//! history already released is a `duplicate` or `late`, never published twice; then the batch's
//! gates stop holding. Frames that arrive during a (blocking) request wait in the socket and are
//! read after it. Order across symbols is exact within a batch; across batches each symbol's
//! stream is still in order (history, then live). A
//! [`HistoryError::Auth`] ends the feed ([`FatalError::History`]); any other history error is
//! counted and logged in the report, and the feed goes on live.
//!
//! **Never the slow consumer.** Events go into the ingress with [`Ingress::try_push`]; what does
//! not fit waits in a local FIFO backlog (nothing is dropped, order is kept) retried on every
//! loop turn, and while a backlog exists the poll wait is bounded to 1 ms. The socket is read on
//! every turn whatever the backlog ([`FeedReport::backlog_max`] says how far it grew). A retry
//! is skipped while the ingress [`Ingress::is_full`], so the refusals [`Ingress::rejected`]
//! counts are about one each time a backlog formed (its events are retried, never lost), not one
//! per turn. Once the run has ended ([`Ingress::is_closed`]) the thread ends.
//!
//! **Universe.** [`FeedHandle::subscribe`] and [`FeedHandle::unsubscribe`] send a
//! [`FeedCommand`] to the thread (and wake it): the symbol map grows or shrinks, the subscribe
//! or unsubscribe message goes out on the live connection, and a newly added symbol is warm
//! started from history. A removed symbol's pending bars are dropped (counted in
//! [`FeedReport::pending_dropped`]). After a reconnect the full current set is subscribed.
//!
//! **Observability.** [`FeedReport::latency_ns`] is the receive-to-publish latency of every
//! live event (the frame's receive time to the moment the event entered the ingress, so a bar's
//! includes its wait in the gate and the backlog); [`FeedStatus`] is a live view (session state,
//! messages, bars published, reconnects, last receive time, backlog) another thread can print.
//!
//! **Log.** With [`FeedConfig::log`] set, the thread calls the sink with one [`FeedLogLine`] per
//! event below (`kind`, level, symbol when there is one, and a detail text); without a sink
//! nothing is formatted or allocated. No line holds a secret (keys only ever go into the auth
//! message; history errors are scrubbed of them). Kinds:
//!
//! | kind | level | symbol | detail |
//! |---|---|---|---|
//! | `connected` | info | - | `connection N opened to URL` |
//! | `reconnected` | warn | - | `reconnect N` (a connection opened after an earlier one closed) |
//! | `disconnected` | warn | - | the close reason ([`crate::ws::CloseReason`]) and the retry delay |
//! | `server_error` | warn (error when fatal) | - | the server's code and message, and what the feed does (`continue`, `reconnect`, `fatal`) |
//! | `rejected` | warn | the symbol as sent, if any | the [`crate::RejectKind`], message type and field of a refused frame or message |
//! | `late` | warn | yes | `window START: at or before the last released START` (counted in `late`, not released) |
//! | `duplicate` | info | yes | `window START` (counted in `duplicates`) |
//! | `reordered` | info | yes | `window START: arrived after a later window; put back in order` (`reordered`) |
//! | `updated` | info | yes | `window START` (the pending version replaced; `updated`) |
//! | `history_failed` | warn (error when fatal) | - | the request's error |
//! | `gap_filled` | info | yes | `N windows FIRST..=LAST` backfilled from history after a reconnect |
//! | `backlog_start` | warn | - | the ingress was full: events wait in the backlog |
//! | `backlog_end` | info | - | `drained, longest N` |
//! | `ended` | info (error when fatal) | - | why the thread ended ([`FeedEnd`]) |
//!
//! Window starts are RFC 3339 UTC. The sink runs on the feed thread: keep it short (write a line,
//! push into a channel).
//!
//! **Stop.** When the stop flag is set ([`FeedHandle::stop`]) the thread closes the connection,
//! drains the gates and publishes every pending window and the backlog (waiting for room now:
//! the socket is closed), then ends. A fatal error or a closed ingress ends it without draining
//! ([`FeedReport::pending_at_end`], [`FeedReport::backlog_at_end`]).
//!
//! **Never:** reads a wall clock (the clock is injected), logs or reports a secret (keys are
//! [`crate::credentials::Secret`]s, exposed only to build the auth message).

mod alpaca;
mod event_loop;
mod polygon;

pub use alpaca::{ALPACA_THREAD_NAME, AlpacaFeedConfig, AlpacaProtocol, spawn_alpaca_feed};
pub use polygon::{POLYGON_THREAD_NAME, PolygonFeedConfig, PolygonProtocol, spawn_polygon_feed};

use crate::alpaca::Action;
use crate::ws::{Connector, TlsConfig, WsClient, WsConfig, WsCounters};
use crate::{AlpacaError, BarGates, Control, FeedCounters, FeedMsg, GateConfig, History, HistoryError, SymbolMap};
use engine::pipeline::Ingress;
use engine::records::{Interval, SymbolId};
use mio::{Poll, Token, Waker};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// The clock the feed reads (ns UTC): it stamps frames and drives the gates and the transport's
/// timers (the same type as the replay feeds').
pub use crate::replay::SharedClock;

/// A provider's session on one connection: what to send, how to read frames, what its control
/// messages mean. The loop ([`spawn_feed`]) does everything else.
pub trait Protocol: Send + 'static {
    /// The message to send when a connection opens. It holds credentials: send it, never log it.
    fn auth_message(&self) -> String;
    /// Decode one frame read at `recv_ns` (appending to `out`, counting in `c`).
    fn decode(&self, frame: &[u8], recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>);
    /// What a control message means for the session (the protocol may also note confirmations).
    fn control(&mut self, c: &Control) -> ControlAction;
    /// The message that subscribes (or unsubscribes) `names` on every channel the feed wants;
    /// `None` when there is nothing to send.
    fn subscription(&self, action: Action, names: &[&str]) -> Option<String>;
    /// The bar intervals the subscription delivers (history is fetched for each).
    fn intervals(&self) -> Vec<Interval>;
    /// A connection opened or closed: forget what the old server session confirmed.
    fn reset(&mut self);
    /// The bar symbols the server last confirmed, sorted.
    fn confirmed(&self) -> Vec<String>;
}

/// What a control message means (see [`Protocol::control`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// Nothing to do (connected, other status messages...).
    Ignore,
    /// The session is authenticated: subscribe now.
    Authenticated,
    /// The server confirmed a subscription: it delivers the symbols from now on, so the history
    /// that must cover the time before can be fetched now.
    Subscribed,
    /// A server error that leaves the connection usable: count it.
    Continue,
    /// A server error that needs a new connection: count it, close, reconnect with backoff.
    Reconnect,
    /// Retrying cannot help: end the feed.
    Fatal(FatalError),
}

/// An error that ends a feed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FatalError {
    /// An Alpaca error whose action is fatal (402 auth failed, 405, 409).
    #[error("{0}")]
    Alpaca(AlpacaError),
    /// Polygon answered `auth_failed` (the server's message attached).
    #[error("polygon auth failed: {0}")]
    AuthFailed(String),
    /// The history service refused the credentials.
    #[error("{0}")]
    History(HistoryError),
}

/// How much a [`FeedLogLine`] matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Normal operation worth a line (connections, duplicates, gaps filled).
    Info,
    /// Something went wrong and the feed recovers (a disconnect, a refused message, a late bar).
    Warn,
    /// The feed ends because of it.
    Error,
}

impl LogLevel {
    /// `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One structured log line of a feed thread (the kinds are in the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedLogLine {
    /// The feed clock when it happened, ns UTC.
    pub ts_ns: i64,
    /// How much it matters.
    pub level: LogLevel,
    /// What happened: `connected`, `disconnected`, `late`...
    pub kind: &'static str,
    /// The symbol it is about, if any.
    pub symbol: Option<String>,
    /// Details (never a secret).
    pub detail: String,
}

impl std::fmt::Display for FeedLogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.level.as_str(), self.ts_ns, self.kind)?;
        if let Some(s) = &self.symbol {
            write!(f, " {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Where a feed thread's [`FeedLogLine`]s go (called on the feed thread).
pub type FeedLog = Arc<dyn Fn(&FeedLogLine) + Send + Sync>;

/// What a feed thread connects to and how (the provider's credentials are in its own config).
/// `Debug` shows no secret and only whether a history source is set.
pub struct FeedConfig {
    /// The stream URL, e.g. `wss://stream.data.alpaca.markets/v2/iex`.
    pub url: String,
    /// TLS (webpki roots, an extra root for a local exchange, or plain `ws://`).
    pub tls: TlsConfig,
    /// Transport timers and backoff.
    pub ws: WsConfig,
    /// When bar windows are final.
    pub gate: GateConfig,
    /// Longest wait for socket readiness before the loop turns again (flushes the gates, checks
    /// commands and the stop flag), ns. Bounded to 1 ms while a backlog waits.
    pub max_wait_ns: i64,
    /// How many feed-clock nanoseconds pass per wall nanosecond: 1 on the wall clock (live), the
    /// speed of a replayed market clock (a local exchange at `--speed`). Every wait the loop
    /// computes on its clock (`max_wait_ns`, the transport's ping, dead-connection and reconnect
    /// deadlines) is divided by it to become the readiness poll's wall timeout; without it a
    /// market clock running 1800x would turn a 100 ms ping deadline into a 180 s sleep.
    pub clock_speed: f64,
    /// Where warm start and gap backfill get bars; `None`: live only.
    pub history: Option<Box<dyn History>>,
    /// How far back the warm start reaches, ns (0: no warm start; gap backfill still runs).
    pub warm_start_ns: i64,
    /// Symbols per history batch: one batch is fetched per loop turn, so the socket is read
    /// between batches of a large universe.
    pub history_chunk: usize,
    /// Publish a `LiveStart` control event for each symbol once its warm-start history is in
    /// the ingress (right after its first subscribe when there is no history): the engine's
    /// `risk.warmup_gate` lets orders through only after it. Paper and live runs turn it on.
    pub live_start: bool,
    /// Where the thread's structured log lines go (see the [module docs](self)); `None`: no
    /// lines are made.
    pub log: Option<FeedLog>,
}

impl FeedConfig {
    /// `url` with default transport, gate (2 s grace), a 50 ms loop bound and no history.
    pub fn new(url: impl Into<String>, tls: TlsConfig) -> Self {
        FeedConfig {
            url: url.into(),
            tls,
            ws: WsConfig::default(),
            gate: GateConfig::default(),
            max_wait_ns: 50_000_000,
            clock_speed: 1.0,
            history: None,
            warm_start_ns: 0,
            history_chunk: 100,
            live_start: false,
            log: None,
        }
    }
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("ws", &self.ws)
            .field("gate", &self.gate)
            .field("max_wait_ns", &self.max_wait_ns)
            .field("clock_speed", &self.clock_speed)
            .field("history", &self.history.as_ref().map(|_| "History"))
            .field("warm_start_ns", &self.warm_start_ns)
            .field("history_chunk", &self.history_chunk)
            .field("live_start", &self.live_start)
            .field("log", &self.log.as_ref().map(|_| "FeedLog"))
            .finish()
    }
}

/// Why the feed thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEnd {
    /// The stop flag was set (pending bars and the backlog were published).
    Stopped,
    /// The ingress is closed: the run has ended.
    IngressClosed,
    /// An error retrying cannot fix.
    Fatal(FatalError),
    /// The readiness poll failed.
    Io(String),
}

/// A universe change for a running feed (see [`FeedHandle::subscribe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedCommand {
    /// Add `name` as `id`: subscribe it and warm start it from history.
    Subscribe {
        /// The wire name.
        name: String,
        /// The run's id for it.
        id: SymbolId,
    },
    /// Unsubscribe `name` and forget it.
    Unsubscribe {
        /// The wire name.
        name: String,
    },
}

/// Where the feed's session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SessionState {
    /// Not connected (connecting, or waiting to reconnect).
    Down = 0,
    /// Auth sent, waiting for the answer.
    Authenticating = 1,
    /// Authenticated and subscribed: data flows.
    Live = 2,
}

/// A feed's live status, updated by the feed thread once per loop turn (relaxed atomics: each
/// number is current, the set is not one atomic snapshot).
#[derive(Debug, Default)]
pub struct FeedStatus {
    state: AtomicU8,
    messages: AtomicU64,
    bars_pushed: AtomicU64,
    reconnects: AtomicU64,
    last_recv_ns: AtomicI64,
    backlog: AtomicU64,
    duplicates: AtomicU64,
    late: AtomicU64,
    refused: AtomicU64,
}

/// One reading of a [`FeedStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// Session state.
    pub state: SessionState,
    /// Messages decoded.
    pub messages: u64,
    /// Bars published into the ingress (history and live).
    pub bars_pushed: u64,
    /// Connections opened after an earlier one closed.
    pub reconnects: u64,
    /// Receive time of the last frame, ns (0 before the first).
    pub last_recv_ns: i64,
    /// Events waiting in the backlog.
    pub backlog: u64,
    /// Bars the gate dropped as duplicates of a bar it already had.
    pub duplicates: u64,
    /// Bars the gate dropped as late (their window was already released).
    pub late: u64,
    /// Frames and messages refused (parse errors, bad values; see the feed report's reasons).
    pub refused: u64,
}

impl FeedStatus {
    /// The current values.
    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            state: match self.state.load(Ordering::Relaxed) {
                2 => SessionState::Live,
                1 => SessionState::Authenticating,
                _ => SessionState::Down,
            },
            messages: self.messages.load(Ordering::Relaxed),
            bars_pushed: self.bars_pushed.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_recv_ns: self.last_recv_ns.load(Ordering::Relaxed),
            backlog: self.backlog.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// What the feed thread did.
#[derive(Clone, Debug)]
pub struct FeedReport {
    /// Decoder and gate counters (history bars included; [`FeedCounters::gaps_filled`]).
    pub counters: FeedCounters,
    /// Transport counters (attempts, opens, frames, pings).
    pub ws: WsCounters,
    /// Connections opened after an earlier one closed.
    pub reconnects: u64,
    /// Events published into the ingress.
    pub pushed: u64,
    /// Server errors that did not end the feed (`Continue` and `Reconnect` actions).
    pub server_errors: u64,
    /// The bar symbols the server last confirmed, sorted (empty if it never did).
    pub subscribed: Vec<String>,
    /// Bar windows still pending in the gates when the feed ended: 0 after a stop (drained and
    /// published); after a fatal error or a closed ingress they were not published.
    pub pending_at_end: usize,
    /// The longest the backlog (events refused by a full ingress, waiting in order) grew.
    pub backlog_max: usize,
    /// Events still in the backlog when the feed ended (0 after a stop).
    pub backlog_at_end: usize,
    /// History requests made.
    pub history_requests: u64,
    /// Bars history returned (before dedupe).
    pub history_bars: u64,
    /// Windows the warm start released (history bars that opened a window of a symbol with none
    /// released before); gap backfill's are [`FeedCounters::gaps_filled`].
    pub warm_start_bars: u64,
    /// History requests that failed without ending the feed.
    pub history_errors: u64,
    /// One line per failed history request (the first 32), for the log.
    pub history_log: Vec<String>,
    /// Universe commands applied.
    pub commands: u64,
    /// Universe commands refused (a name that is not a valid symbol).
    pub command_errors: u64,
    /// Pending bars dropped because their symbol was unsubscribed.
    pub pending_dropped: usize,
    /// Receive-to-publish latency of live events, ns (frame read to ingress entry).
    pub latency_ns: hdrhistogram::Histogram<u64>,
    /// Why it ended.
    pub end: FeedEnd,
}

/// A running feed thread: its stop flag, its command channel, its live status.
#[derive(Debug)]
pub struct FeedHandle {
    thread: JoinHandle<FeedReport>,
    stop: Arc<AtomicBool>,
    control: mpsc::Sender<FeedCommand>,
    waker: Arc<Waker>,
    status: Arc<FeedStatus>,
}

impl FeedHandle {
    /// Send a universe change (and wake the thread); the command is handed back if the thread
    /// has ended.
    pub fn send(&self, cmd: FeedCommand) -> Result<(), FeedCommand> {
        self.control.send(cmd).map_err(|e| e.0)?;
        let _ = self.waker.wake(); // the loop also turns every `max_wait_ns`
        Ok(())
    }

    /// Add `name` as `id` to the feed's universe. False if the thread has ended.
    pub fn subscribe(&self, name: &str, id: SymbolId) -> bool {
        self.send(FeedCommand::Subscribe { name: name.to_owned(), id }).is_ok()
    }

    /// Remove `name` from the feed's universe. False if the thread has ended.
    pub fn unsubscribe(&self, name: &str) -> bool {
        self.send(FeedCommand::Unsubscribe { name: name.to_owned() }).is_ok()
    }

    /// Ask the thread to stop (it drains and publishes what it holds first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
    }

    /// The stop flag (shared with whoever else may stop the feed).
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// The live status.
    pub fn status(&self) -> &Arc<FeedStatus> {
        &self.status
    }

    /// The feed thread.
    pub fn thread(&self) -> &std::thread::Thread {
        self.thread.thread()
    }

    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wait for the thread's report.
    pub fn join(self) -> std::thread::Result<FeedReport> {
        self.thread.join()
    }
}

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// Start a feed thread named `name` speaking `proto` (see the [module docs](self)). Fails at
/// once on a configuration error (URL, TLS roots) or when the thread cannot be spawned;
/// everything later is in the [`FeedReport`].
pub fn spawn_feed<P: Protocol>(
    name: &str,
    cfg: FeedConfig,
    proto: P,
    ingress: Ingress,
    symbols: SymbolMap,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
) -> io::Result<FeedHandle> {
    let poll = Poll::new()?;
    let connector = Connector::new(&cfg.tls).map_err(io::Error::other)?;
    let client =
        WsClient::new(&cfg.url, connector, cfg.ws.clone(), poll.registry(), SOCKET).map_err(io::Error::other)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let (control, commands) = mpsc::channel();
    let status = Arc::new(FeedStatus::default());
    let gates = BarGates::new(cfg.gate);
    let feed = event_loop::Feed::new(cfg, proto, ingress, symbols, gates, clock, commands, status.clone());
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name(name.into()).spawn(move || feed.run(poll, client, &flag))?;
    Ok(FeedHandle { thread, stop, control, waker, status })
}
