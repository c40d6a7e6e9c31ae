//! The broker gateway: the engine's orders to a broker and the broker's answers back, on two
//! threads of their own, never on a hot-path thread.
//!
//! ```text
//!  execution -> RemoteVenue --(VenueCommand queue)--> rt-gw-orders: REST (submit, cancel, replace)
//!                                                          |
//!  sequencer <--(Ingress: exec events, reconcile/adopt)----+---- rt-gw-stream: trade_updates,
//!                                                                 reconciles after each (re)connect
//! ```
//!
//! **Orders** (`rt-gw-orders`): each [`VenueCommand`](engine::venue::VenueCommand) becomes one REST call. The client order id
//! is the engine's session-unique order id (`<session>-<SYMBOL>-<n>`), so a submit whose outcome
//! is unknown (a timeout after the request went out) is looked up by that id before it is tried
//! again ([`Broker::submit_idempotent`]): never two orders for one intent. A refusal comes back to
//! the strategy as `Rejected` with the broker's reason mapped ([`reason_of`]: buying power,
//! invalid, rate limited, unavailable, refused) and its text in the log. A cancel remembers the
//! engine's reason (timeout, end of run, requested) and reports it with the broker's `canceled`.
//! A replace sends the rest of the new total as a new broker order (`<cid>.r<n>`); its fills
//! count towards the same engine order.
//!
//! **Stream** (`rt-gw-stream`): `trade_updates` events become execution reports through the
//! [`book`](self) that dedupes them: each share reaches the engine once, whether the stream, a
//! REST answer or a reconcile told it first.
//!
//! **Reconcile**, at start and after every reconnect of the stream (and on request, e.g. at
//! shutdown): every order still live in the book is read back (by client order id) and what the
//! stream missed is reported (fills during the gap, cancels, expiries); at start, open orders
//! with this account's ringtape prefix that this session did not place are taken over
//! ([`Event::adopt_order`](engine::records::Event::adopt_order)) instead of being placed twice, and others are left alone and counted
//! as foreign. Then the broker's positions are compared with what the reported fills add up to;
//! a difference that is still there after a second look is sent to the engine as
//! [`Event::reconcile`](engine::records::Event::reconcile) with the configured [`ReconcilePolicy`] (adopt the broker's position, or
//! halt new entries), logged and counted.
//!
//! **Disconnects.** While the stream is down, with `cancel_on_disconnect` the gateway cancels
//! every open order at the broker (their cancels are reported at the reconcile that follows the
//! reconnect) and refuses new orders with reason `disconnected`.

// The stream's liveness, the REST timeouts and the shutdown's waits are wall time (a demo's
// session clock runs at market speed); everything the engine sees is stamped with the session
// clock passed in.
#![allow(clippy::disallowed_methods)]

mod book;
mod orders;
mod reconcile;
mod stream;

pub use book::BookStats;

use crate::broker::{
    BrokerAccount, BrokerError, BrokerOrder, BrokerPosition, NewOrder, Tif, TradeUpdatesClient, TradingRest,
};
use crate::feed::{FeedLog, FeedLogLine, LogLevel};
use book::Book;
use engine::records::{ExecKind, ExecReport, OrderId, Reason, ReconcilePolicy, SymbolId};
use engine::venue::GatewayPort;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the gateway needs of a broker's REST API ([`TradingRest`] is Alpaca's; tests use fakes).
pub trait Broker: Send + Sync {
    /// Place an order; an unknown outcome is resolved by its client order id, never doubled.
    fn submit_idempotent(&self, o: &NewOrder) -> Result<BrokerOrder, BrokerError>;
    /// The order with this client order id.
    fn order_by_client_id(&self, cid: &str) -> Result<Option<BrokerOrder>, BrokerError>;
    /// Open orders.
    fn open_orders(&self) -> Result<Vec<BrokerOrder>, BrokerError>;
    /// Cancel an order by broker id.
    fn cancel(&self, id: &str) -> Result<(), BrokerError>;
    /// Cancel every open order.
    fn cancel_all(&self) -> Result<usize, BrokerError>;
    /// Replace an order (a new broker order with `client_order_id`).
    fn replace(
        &self,
        id: &str,
        qty: Option<u32>,
        limit_px_e9: Option<i64>,
        stop_px_e9: Option<i64>,
        client_order_id: Option<&str>,
    ) -> Result<BrokerOrder, BrokerError>;
    /// Positions.
    fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError>;
    /// The account.
    fn account(&self) -> Result<BrokerAccount, BrokerError>;
}

impl Broker for TradingRest {
    fn submit_idempotent(&self, o: &NewOrder) -> Result<BrokerOrder, BrokerError> {
        TradingRest::submit_idempotent(self, o)
    }
    fn order_by_client_id(&self, cid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        TradingRest::order_by_client_id(self, cid)
    }
    fn open_orders(&self) -> Result<Vec<BrokerOrder>, BrokerError> {
        TradingRest::open_orders(self)
    }
    fn cancel(&self, id: &str) -> Result<(), BrokerError> {
        TradingRest::cancel(self, id)
    }
    fn cancel_all(&self) -> Result<usize, BrokerError> {
        TradingRest::cancel_all(self).map(|v| v.len())
    }
    fn replace(
        &self,
        id: &str,
        qty: Option<u32>,
        limit_px_e9: Option<i64>,
        stop_px_e9: Option<i64>,
        client_order_id: Option<&str>,
    ) -> Result<BrokerOrder, BrokerError> {
        TradingRest::replace(self, id, qty, limit_px_e9, stop_px_e9, client_order_id)
    }
    fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError> {
        TradingRest::positions(self)
    }
    fn account(&self) -> Result<BrokerAccount, BrokerError> {
        TradingRest::account(self)
    }
}

/// See [`GatewayHooks::on_send`].
pub type SendHook = Arc<dyn Fn(OrderId) + Send + Sync>;
/// See [`GatewayHooks::on_report`].
pub type ReportHook = Arc<dyn Fn(&ExecReport, i64) + Send + Sync>;

/// Callbacks for measuring the order path (benchmarks): `on_send` right before an order's or a
/// cancel's HTTP request is handed to the client, `on_report` right after a report from a
/// trade_updates frame entered the ingress (with the frame's wall receive time). They must be
/// cheap.
#[derive(Clone, Default)]
pub struct GatewayHooks {
    /// An order (or its cancel) is about to go out.
    pub on_send: Option<SendHook>,
    /// A report made from a stream frame received at `recv_ns` reached the ingress.
    pub on_report: Option<ReportHook>,
}

impl std::fmt::Debug for GatewayHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHooks")
            .field("on_send", &self.on_send.is_some())
            .field("on_report", &self.on_report.is_some())
            .finish()
    }
}

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The run's session id: client order ids are `<session>-<SYMBOL>-<n>`.
    pub session: String,
    /// Client order ids starting with this are ringtape's own (orders of an earlier session are
    /// taken over at start); others are foreign and left alone.
    pub own_prefix: String,
    /// What a position mismatch does.
    pub policy: ReconcilePolicy,
    /// Cancel every open order at the broker when the stream drops, and refuse new ones until it
    /// is back.
    pub cancel_on_disconnect: bool,
    /// Time in force of every order.
    pub tif: Tif,
    /// Symbol names by id (the run's symbol table).
    pub symbols: Vec<String>,
    /// Measurement callbacks (none in normal runs).
    pub hooks: GatewayHooks,
}

/// Live state for a status line and the shutdown.
#[derive(Debug, Default)]
struct Live {
    connected: AtomicBool,
    stopping: AtomicBool,
    reconcile_asked: AtomicU64,
    reconciles_done: AtomicU64,
    submits: AtomicU64,
    cancels: AtomicU64,
    replaces: AtomicU64,
    refused: AtomicU64,
    unknown_outcomes: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    mismatches: AtomicU64,
    adopted: AtomicU64,
    foreign_orders: AtomicU64,
    cancel_all_on_disconnect: AtomicU64,
    reports: AtomicU64,
    auth_failed: AtomicBool,
}

struct Shared {
    cfg: GatewayConfig,
    names: HashMap<String, SymbolId>,
    book: Mutex<Book>,
    live: Live,
    port: GatewayPort,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    log: Option<FeedLog>,
    /// Refusals by reason name.
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Shared {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn log(&self, level: LogLevel, kind: &'static str, symbol: Option<SymbolId>, detail: String) {
        if let Some(log) = &self.log {
            let symbol = symbol.and_then(|s| self.cfg.symbols.get(s.0 as usize).cloned());
            log(&FeedLogLine { ts_ns: self.now(), level, kind, symbol, detail });
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, reports: &[ExecReport]) {
        let now = self.now();
        for r in reports {
            if self.port.report(r, now).is_ok() {
                self.live.reports.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reports made from a stream frame received at wall time `recv_ns` (stamped with the
    /// session clock as they enter the ingress; the hook gets the frame's wall stamp).
    fn send_received(&self, reports: &[ExecReport], recv_ns: i64) {
        let now = self.now();
        for r in reports {
            if self.port.report(r, now).is_ok() {
                self.live.reports.fetch_add(1, Ordering::Relaxed);
                if let Some(h) = &self.cfg.hooks.on_report {
                    h(r, recv_ns);
                }
            }
        }
    }

    fn sending(&self, id: OrderId) {
        if let Some(h) = &self.cfg.hooks.on_send {
            h(id);
        }
    }

    fn refuse(&self, id: OrderId, kind: ExecKind, reason: Reason, detail: String) {
        let r = self.book().refused(id, kind, reason, self.now());
        let symbol = r.map(|r| r.symbol);
        *self.refusals.lock().unwrap_or_else(PoisonError::into_inner).entry(reason.as_str()).or_default() += 1;
        self.live.refused.fetch_add(1, Ordering::Relaxed);
        self.log(LogLevel::Warn, "refused", symbol, format!("{}: {detail}", reason.as_str()));
        if let Some(r) = r {
            self.send(&[r]);
        }
    }
}

/// The wall clock, ns UTC.
fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The engine reason for a broker's refusal.
pub fn reason_of(e: &BrokerError) -> Reason {
    match e {
        BrokerError::Rejected { status: 403, code, message } => {
            if *code == Some(40310000) || message.to_ascii_lowercase().contains("buying power") {
                Reason::BuyingPower
            } else {
                Reason::BrokerRejected
            }
        }
        BrokerError::Rejected { status: 422, .. } | BrokerError::Invalid { .. } => Reason::BrokerInvalid,
        BrokerError::Rejected { .. }
        | BrokerError::Auth { .. }
        | BrokerError::NotFound
        | BrokerError::Config { .. } => Reason::BrokerRejected,
        BrokerError::RateLimited { .. } => Reason::RateLimited,
        BrokerError::Unavailable { .. } | BrokerError::Unknown { .. } | BrokerError::Decode { .. } => {
            Reason::BrokerUnavailable
        }
    }
}

/// What the gateway did, for `broker.json` and the status line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GatewayStatus {
    /// The trade_updates stream is authorized and listening.
    pub connected: bool,
    /// Engine orders live at the broker (sent, not done).
    pub open_orders: usize,
    /// Net positions from the reported fills, by symbol.
    pub positions: BTreeMap<String, i64>,
    /// Orders sent.
    pub submits: u64,
    /// Cancels sent.
    pub cancels: u64,
    /// Replaces sent.
    pub replaces: u64,
    /// Orders, cancels and replaces the broker refused (or the gateway could not deliver).
    pub refused: u64,
    /// Refusals by reason.
    pub refusals: BTreeMap<&'static str, u64>,
    /// Submits whose outcome stayed unknown (resolved at the next reconcile).
    pub unknown_outcomes: u64,
    /// Stream connections established (the first included).
    pub connects: u64,
    /// Stream disconnects.
    pub disconnects: u64,
    /// Reconciles done.
    pub reconciles: u64,
    /// Position mismatches sent to the engine.
    pub mismatches: u64,
    /// Orders of an earlier session taken over.
    pub adopted: u64,
    /// Open orders at the broker that are not ringtape's (left alone).
    pub foreign_orders: u64,
    /// Cancel-alls sent because the stream dropped.
    pub cancel_all_on_disconnect: u64,
    /// Execution reports handed to the engine.
    pub reports: u64,
    /// The stream refused the credentials (the gateway stopped trying).
    pub auth_failed: bool,
    /// What the book saw.
    pub book: BookStats,
}

/// A running gateway.
pub struct GatewayHandle {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle").field("session", &self.shared.cfg.session).finish_non_exhaustive()
    }
}

impl GatewayHandle {
    /// The current status.
    pub fn status(&self) -> GatewayStatus {
        let s = &self.shared;
        let l = &s.live;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let book = s.book();
        GatewayStatus {
            connected: l.connected.load(Ordering::Relaxed),
            open_orders: book.live().len(),
            positions: book
                .positions
                .iter()
                .filter(|(_, q)| **q != 0)
                .map(|(sym, q)| (s.cfg.symbols.get(sym.0 as usize).cloned().unwrap_or_default(), *q))
                .collect(),
            submits: get(&l.submits),
            cancels: get(&l.cancels),
            replaces: get(&l.replaces),
            refused: get(&l.refused),
            refusals: s.refusals.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            unknown_outcomes: get(&l.unknown_outcomes),
            connects: get(&l.connects),
            disconnects: get(&l.disconnects),
            reconciles: get(&l.reconciles_done),
            mismatches: get(&l.mismatches),
            adopted: get(&l.adopted),
            foreign_orders: get(&l.foreign_orders),
            cancel_all_on_disconnect: get(&l.cancel_all_on_disconnect),
            reports: get(&l.reports),
            auth_failed: l.auth_failed.load(Ordering::Relaxed),
            book: book.stats,
        }
    }

    /// True once the stream has connected (and the start reconcile is done), or failed auth.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let l = &self.shared.live;
            if l.auth_failed.load(Ordering::Relaxed) {
                return false;
            }
            if l.reconciles_done.load(Ordering::Acquire) > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Engine orders still live at the broker.
    pub fn open_orders(&self) -> usize {
        self.shared.book().live().len()
    }

    /// Reconcile now (on the stream thread) and wait for it, up to `timeout`.
    pub fn reconcile(&self, timeout: Duration) -> bool {
        let l = &self.shared.live;
        let before = l.reconciles_done.load(Ordering::Acquire);
        l.reconcile_asked.fetch_add(1, Ordering::AcqRel);
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if l.reconciles_done.load(Ordering::Acquire) > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Stop both threads (once) and return the last status.
    pub fn stop(&self) -> GatewayStatus {
        self.shared.live.stopping.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
        self.status()
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start the gateway: the order thread takes commands from `port`, the stream thread reads
/// `stream` and reconciles through `broker` after each connect. `clock` stamps reports (the
/// session's time base), `log` gets every line (never a secret).
pub fn spawn(
    cfg: GatewayConfig,
    broker: Arc<dyn Broker>,
    stream: TradeUpdatesClient,
    port: GatewayPort,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    log: Option<FeedLog>,
) -> std::io::Result<GatewayHandle> {
    let names = cfg.symbols.iter().enumerate().map(|(i, n)| (n.clone(), SymbolId(i as u32))).collect();
    let shared = Arc::new(Shared {
        cfg,
        names,
        book: Mutex::new(Book::default()),
        live: Live::default(),
        port,
        clock,
        log,
        refusals: Mutex::new(BTreeMap::new()),
    });
    let s = Arc::clone(&shared);
    let b = Arc::clone(&broker);
    let orders =
        std::thread::Builder::new().name("rt-gw-orders".into()).spawn(move || orders::orders_loop(&s, b.as_ref()))?;
    let s = Arc::clone(&shared);
    let streamer = std::thread::Builder::new()
        .name("rt-gw-stream".into())
        .spawn(move || stream::stream_loop(&s, broker.as_ref(), stream))?;
    Ok(GatewayHandle { shared, threads: Mutex::new(vec![orders, streamer]) })
}
