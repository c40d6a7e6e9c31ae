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
//! **Orders** (`rt-gw-orders`): each [`VenueCommand`] becomes one REST call. The client order id
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
//! ([`Event::adopt_order`]) instead of being placed twice, and others are left alone and counted
//! as foreign. Then the broker's positions are compared with what the reported fills add up to;
//! a difference that is still there after a second look is sent to the engine as
//! [`Event::reconcile`] with the configured [`ReconcilePolicy`] (adopt the broker's position, or
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

pub use book::BookStats;

use crate::broker::{
    BrokerAccount, BrokerError, BrokerOrder, BrokerPosition, NewOrder, StreamEvent, Tif, TradeUpdatesClient,
    TradingRest,
};
use crate::feed::{FeedLog, FeedLogLine, LogLevel};
use book::{Book, Entry};
use engine::records::{Event, ExecKind, ExecReport, Order, OrderId, OrderType, Reason, ReconcilePolicy, SymbolId};
use engine::venue::{GatewayPort, VenueCommand};
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
    let orders = std::thread::Builder::new().name("rt-gw-orders".into()).spawn(move || orders_loop(&s, b.as_ref()))?;
    let s = Arc::clone(&shared);
    let streamer = std::thread::Builder::new()
        .name("rt-gw-stream".into())
        .spawn(move || stream_loop(&s, broker.as_ref(), stream))?;
    Ok(GatewayHandle { shared, threads: Mutex::new(vec![orders, streamer]) })
}

fn orders_loop(s: &Shared, broker: &dyn Broker) {
    let mut idle = 0u32;
    while !s.live.stopping.load(Ordering::Acquire) {
        let Some(cmd) = s.port.next() else {
            // Spin briefly (an order often follows another), then back off to a short sleep.
            idle = idle.saturating_add(1);
            if idle < 2_000 {
                std::hint::spin_loop();
            } else if idle < 2_200 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
            continue;
        };
        idle = 0;
        match cmd {
            VenueCommand::Submit { order, .. } => submit(s, broker, &order),
            VenueCommand::Cancel { id, reason, .. } => cancel(s, broker, id, reason),
            VenueCommand::Replace { id, qty, limit_px_e9, stop_px_e9, .. } => {
                replace(s, broker, id, qty, limit_px_e9, stop_px_e9);
            }
        }
    }
}

fn submit(s: &Shared, broker: &dyn Broker, order: &Order) {
    let (Some(side), Some(kind)) = (order.side(), order.kind()) else {
        return;
    };
    let name = s.cfg.symbols.get(order.symbol.0 as usize).cloned().unwrap_or_default();
    let cid = order.order_id.client_order_id(&s.cfg.session, &name);
    s.book().insert(Entry::new(order.order_id, order.symbol, side, order.qty, cid.clone()));
    if s.cfg.cancel_on_disconnect && !s.live.connected.load(Ordering::Acquire) {
        return s.refuse(order.order_id, ExecKind::Rejected, Reason::Disconnected, "the order stream is down".into());
    }
    let req = NewOrder {
        symbol: name,
        qty: order.qty,
        side,
        order_type: kind,
        tif: s.cfg.tif,
        limit_px_e9: (kind == OrderType::Limit).then_some(order.limit_px_e9),
        stop_px_e9: (kind == OrderType::Stop).then_some(order.stop_px_e9),
        client_order_id: cid.clone(),
        extended_hours: false,
    };
    s.live.submits.fetch_add(1, Ordering::Relaxed);
    s.sending(order.order_id);
    match broker.submit_idempotent(&req) {
        Ok(o) => {
            let mut out = Vec::new();
            s.book().catch_up(order.order_id, &o, None, s.now(), false, &mut out);
            s.send(&out);
        }
        Err(BrokerError::Unknown { detail }) => {
            s.live.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
            s.log(LogLevel::Warn, "unknown_outcome", Some(order.symbol), format!("{cid}: {detail}"));
        }
        Err(e) => s.refuse(order.order_id, ExecKind::Rejected, reason_of(&e), format!("{cid}: {e}")),
    }
}

/// The broker id of engine order `id`, looking it up by client order id when a submit's
/// outcome was unknown.
fn broker_id(s: &Shared, broker: &dyn Broker, id: OrderId) -> Option<String> {
    let (bid, cid) = {
        let b = s.book();
        let e = b.get(id)?;
        if e.done {
            return None;
        }
        (e.broker_id.clone(), e.cid.clone())
    };
    if bid.is_some() {
        return bid;
    }
    match broker.order_by_client_id(&cid) {
        Ok(Some(o)) => {
            let mut out = Vec::new();
            s.book().catch_up(id, &o, None, s.now(), true, &mut out);
            s.send(&out);
            Some(o.id)
        }
        _ => None,
    }
}

fn cancel(s: &Shared, broker: &dyn Broker, id: OrderId, reason: Reason) {
    if let Some(e) = s.book().get_mut(id) {
        if e.done {
            return;
        }
        e.cancel_reason = Some(reason);
    } else {
        return;
    }
    let Some(bid) = broker_id(s, broker, id) else {
        return s.refuse(id, ExecKind::CancelRejected, Reason::BrokerRejected, "no such order at the broker".into());
    };
    s.live.cancels.fetch_add(1, Ordering::Relaxed);
    s.sending(id);
    match broker.cancel(&bid) {
        // The broker's `canceled` (or a fill that won the race) follows on the stream.
        Ok(()) => {}
        Err(e) => {
            if let Some(en) = s.book().get_mut(id) {
                en.cancel_reason = None;
            }
            s.refuse(id, ExecKind::CancelRejected, reason_of(&e), format!("cancel {bid}: {e}"));
        }
    }
}

fn replace(s: &Shared, broker: &dyn Broker, id: OrderId, qty: u32, limit: i64, stop: i64) {
    let Some(bid) = broker_id(s, broker, id) else {
        return s.refuse(id, ExecKind::ReplaceRejected, Reason::BrokerRejected, "no such order at the broker".into());
    };
    let (rest, cid) = {
        let mut b = s.book();
        let Some(e) = b.get_mut(id) else { return };
        // The new broker order carries what is left of the new total; earlier fills stay.
        let done_before = e.base_filled;
        let n = e.cid.matches(".r").count() + 1;
        let base = e.cid.split(".r").next().unwrap_or(&e.cid).to_string();
        (qty.saturating_sub(done_before), format!("{base}.r{n}"))
    };
    s.live.replaces.fetch_add(1, Ordering::Relaxed);
    let q = (rest > 0).then_some(rest);
    match broker.replace(&bid, q, (limit > 0).then_some(limit), (stop > 0).then_some(stop), Some(&cid)) {
        Ok(o) => {
            let r = s.book().replaced(id, qty, &o, s.now());
            if let Some(r) = r {
                s.send(&[r]);
            }
        }
        Err(e) => s.refuse(id, ExecKind::ReplaceRejected, reason_of(&e), format!("replace {bid}: {e}")),
    }
}

fn stream_loop(s: &Shared, broker: &dyn Broker, mut stream: TradeUpdatesClient) {
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut started = false;
    let mut asked = 0;
    // Wall time for the socket (pings, dead-connection detection, receive stamps for the hooks).
    let clock = wall_ns;
    while !s.live.stopping.load(Ordering::Acquire) {
        stream.poll(Duration::from_millis(20), &clock, &mut events);
        for ev in events.drain(..) {
            match ev {
                StreamEvent::Connected => {
                    s.live.connects.fetch_add(1, Ordering::Relaxed);
                    s.live.connected.store(true, Ordering::Release);
                    s.log(LogLevel::Info, "connected", None, "trade_updates authorized and listening".into());
                    reconcile(s, broker, !started);
                    started = true;
                }
                StreamEvent::Update(u) => {
                    let now = s.now();
                    s.book().on_update(&u, now, &mut out);
                    s.send_received(&out, u.recv_ns);
                    out.clear();
                }
                StreamEvent::Disconnected { reason } => {
                    s.live.disconnects.fetch_add(1, Ordering::Relaxed);
                    s.live.connected.store(false, Ordering::Release);
                    s.log(LogLevel::Warn, "disconnected", None, reason);
                    if s.cfg.cancel_on_disconnect && !s.book().live().is_empty() {
                        s.live.cancel_all_on_disconnect.fetch_add(1, Ordering::Relaxed);
                        {
                            let mut book = s.book();
                            for id in book.live() {
                                if let Some(e) = book.get_mut(id) {
                                    e.cancel_reason = Some(Reason::Disconnected);
                                }
                            }
                        }
                        match broker.cancel_all() {
                            Ok(n) => {
                                s.log(LogLevel::Warn, "cancel_all", None, format!("{n} orders (cancel on disconnect)"))
                            }
                            Err(e) => s.log(LogLevel::Error, "cancel_all", None, e.to_string()),
                        }
                    }
                }
                StreamEvent::AuthFailed { message } => {
                    s.live.auth_failed.store(true, Ordering::Release);
                    s.log(LogLevel::Error, "auth_failed", None, message);
                    stream.close();
                    return;
                }
            }
        }
        let want = s.live.reconcile_asked.load(Ordering::Acquire);
        if want != asked && started {
            asked = want;
            reconcile(s, broker, false);
        }
    }
    stream.close();
}

/// Read back every live order, take over (at start) ringtape's own orders of an earlier session,
/// then compare positions; see the module docs.
fn reconcile(s: &Shared, broker: &dyn Broker, at_start: bool) {
    let now = s.now();
    let mut out = Vec::new();
    match broker.open_orders() {
        Ok(open) => {
            let mut by_cid: HashMap<&str, &BrokerOrder> = HashMap::new();
            for o in &open {
                by_cid.insert(o.client_order_id.as_str(), o);
            }
            for o in &open {
                if s.book().by_cid(&o.client_order_id).is_some() {
                    continue;
                }
                if at_start && o.client_order_id.starts_with(&s.cfg.own_prefix) {
                    adopt(s, o, now);
                } else {
                    s.live.foreign_orders.fetch_add(1, Ordering::Relaxed);
                    s.log(
                        LogLevel::Warn,
                        "foreign_order",
                        None,
                        format!("{} {} (left alone)", o.symbol, o.client_order_id),
                    );
                }
            }
            let live = s.book().live();
            for id in live {
                let cid = match s.book().get(id) {
                    Some(e) => e.cid.clone(),
                    None => continue,
                };
                let state = match by_cid.get(cid.as_str()) {
                    Some(o) => Some((*o).clone()),
                    None => broker.order_by_client_id(&cid).ok().flatten(),
                };
                if let Some(o) = state {
                    s.book().catch_up(id, &o, None, now, true, &mut out);
                }
            }
        }
        Err(e) => s.log(LogLevel::Error, "reconcile", None, format!("open orders: {e}")),
    }
    s.send(&out);
    s.book().prune();
    positions(s, broker, now, true);
    s.live.reconciles_done.fetch_add(1, Ordering::AcqRel);
}

fn adopt(s: &Shared, o: &BrokerOrder, now: i64) {
    let Some(&symbol) = s.names.get(&o.symbol) else {
        s.live.foreign_orders.fetch_add(1, Ordering::Relaxed);
        return s.log(
            LogLevel::Warn,
            "foreign_order",
            None,
            format!("{} {}: not in this run's universe", o.symbol, o.client_order_id),
        );
    };
    let n = s.live.adopted.fetch_add(1, Ordering::Relaxed) as u32 + 1;
    let id = OrderId::adopted(n);
    let kind = o.order_type.unwrap_or(OrderType::Market);
    let leaves = o.qty.saturating_sub(o.filled_qty);
    let order = Order {
        order_id: id,
        symbol,
        qty: leaves,
        side: o.side.raw(),
        order_type: kind.raw(),
        limit_px_e9: o.limit_px_e9.unwrap_or(0),
        stop_px_e9: o.stop_px_e9.unwrap_or(0),
        ..Default::default()
    };
    // The book counts the broker order's fills so far as reported: they are in the broker's
    // position (the position reconcile that follows deals with them), not news.
    let mut e = Entry::new(id, symbol, o.side, o.qty, o.client_order_id.clone());
    e.broker_id = Some(o.id.clone());
    e.accepted = true;
    e.filled = o.filled_qty;
    e.filled_notional_e9 = i128::from(o.filled_avg_px_e9.unwrap_or(0)) * i128::from(o.filled_qty);
    s.book().insert(e);
    let _ = s.port.control(Event::adopt_order(&order, now));
    s.log(
        LogLevel::Warn,
        "adopted",
        Some(symbol),
        format!("{} {} {} left (an earlier session's order)", o.client_order_id, o.side.as_str(), leaves),
    );
}

/// Compare the broker's positions with the reported fills; `recheck`: look again once before
/// calling a difference a mismatch (a fill may have been in flight).
fn positions(s: &Shared, broker: &dyn Broker, now: i64, recheck: bool) {
    let broker_pos = match broker.positions() {
        Ok(p) => p,
        Err(e) => return s.log(LogLevel::Error, "reconcile", None, format!("positions: {e}")),
    };
    let mut theirs: BTreeMap<SymbolId, (i64, i64)> = BTreeMap::new();
    for p in &broker_pos {
        match s.names.get(&p.symbol) {
            Some(&id) => {
                theirs.insert(id, (p.qty, p.avg_entry_px_e9));
            }
            None => s.log(
                LogLevel::Info,
                "foreign_position",
                None,
                format!("{} {} (not in this run's universe)", p.symbol, p.qty),
            ),
        }
    }
    let ours = s.book().positions.clone();
    let mut differ: Vec<(SymbolId, i64, i64)> = Vec::new();
    for (&sym, &(q, px)) in &theirs {
        if ours.get(&sym).copied().unwrap_or(0) != q {
            differ.push((sym, q, px));
        }
    }
    for (&sym, &q) in &ours {
        if q != 0 && !theirs.contains_key(&sym) {
            differ.push((sym, 0, 0));
        }
    }
    if differ.is_empty() {
        return;
    }
    if recheck {
        std::thread::sleep(Duration::from_millis(100));
        return positions(s, broker, now, false);
    }
    for (sym, q, px) in differ {
        let mine = s.book().positions.get(&sym).copied().unwrap_or(0);
        s.live.mismatches.fetch_add(1, Ordering::Relaxed);
        s.log(
            LogLevel::Warn,
            "position_mismatch",
            Some(sym),
            format!("broker {q}, run {mine}: {}", s.cfg.policy.as_str()),
        );
        if s.cfg.policy == ReconcilePolicy::Adopt {
            s.book().positions.insert(sym, q);
        }
        let _ = s.port.control(Event::reconcile(sym, q, px, s.cfg.policy, now));
    }
}
