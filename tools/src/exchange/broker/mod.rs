//! # The paper broker: Alpaca's trading REST and `trade_updates` stream on the local exchange
//!
//! | route | what |
//! |---|---|
//! | `POST /v2/orders`, `GET /v2/orders`, `GET/PATCH/DELETE /v2/orders/{id}`, `DELETE /v2/orders` | orders |
//! | `GET /v2/orders:by_client_order_id?client_order_id=X` | one order by its client id |
//! | `GET /v2/positions`, `GET/DELETE /v2/positions/{symbol}` | positions (DELETE: a market order closing it) |
//! | `GET /v2/account` | the account |
//! | `GET /stream` (websocket) | `trade_updates` (auth, listen, events as binary frames of JSON text) |
//! | `GET /control/broker` | account, positions and every order ([`BrokerSnapshot`]) |
//!
//! **One account** per exchange, reached with the exchange's key and secret (REST headers
//! `APCA-API-KEY-ID`/`APCA-API-SECRET-KEY`, else 401). Every trading request counts against a
//! per-key rate limit (default 200 a minute, like Alpaca; 429 with `Retry-After` and
//! `X-RateLimit-*`).
//!
//! **Order life.** `POST /v2/orders` answers `accepted`; after the ack latency the broker thread
//! sends `new` and hands the order to an [`engine::venue::SimVenue`] (the backtest's venue: same
//! fill rules, commission, slippage, participation cap and seeded perturbations). The broker
//! thread feeds that venue every minute bar the market clock releases, so a market order fills at
//! the next bar's open (plus slippage) and a limit fills per the backtest rules. Its reports become
//! `partial_fill`/`fill`/`expired` events; cancels `canceled` (with `pending_cancel` first while a
//! cancel latency is injected; a fill that comes first wins and the cancel does nothing).
//! `time_in_force`: `day` expires at 16:00 New York time of the day it was placed, `gtc` never,
//! `ioc` is canceled after the first bar it could fill on, `fok` likewise (it is not split unless
//! the participation cap or a partial-fill perturbation splits it). `stop_limit` triggers when a
//! bar trades through the stop; the limit then works from the next bar. Replace (`PATCH`) creates
//! a new order that `replaces` the old one (Alpaca's model): the old one gets `replaced` with
//! `replaced_by` (a `replaced` event carrying the old order), the new one goes
//! `accepted` -> `new`. Orders still `accepted`, `pending_new`, `pending_cancel` are not
//! replaceable (422), as at Alpaca.
//!
//! **Account.** Cash moves with fills and commissions. Positions carry a signed qty,
//! `avg_entry_price` (weighted on adds, kept on reductions, reset when the side flips), signed
//! `cost_basis = qty x avg`, and `market_value`/`unrealized_pl` at the last released close.
//! `equity = cash + sum(qty x last)`; `last_equity` is the starting cash. **Buying power** (a 2x
//! margin account): `max(0, 2 x equity - gross position value - notional of open orders)`; an
//! order that only reduces a position is never refused for buying power, any other needs
//! `qty x (limit price, else last close)` of it (else 403 `insufficient buying power`).
//!
//! **Events** go to every authorized and listening `trade_updates` session; an event produced
//! while none listens is lost (as at the real broker: clients reconcile by REST) and counted.
//!
//! **Not served.** `notional` orders, `trailing_stop`, `order_class` other than `simple`,
//! `opg`/`cls`, crypto and options, market hours (orders are taken at any market time and fill
//! on bars), short-sale locates.
//!
//! **Official clients.** Checked by hand with alpaca-py 0.44.0 against `ringtape exchange --plain`
//! (`tools/scripts/alpaca_py_broker.py`): `TradingClient(url_override=...)` `get_account`,
//! `submit_order` (market, limit), `get_orders`, `get_order_by_id`, `get_order_by_client_id`,
//! `replace_order_by_id`, `cancel_order_by_id`, `cancel_orders` (207), `get_all_positions`,
//! `get_open_position`, `close_position`, and `TradingStream(url_override=...)` receiving `new`,
//! `fill`, `replaced`, `pending_cancel`, `canceled`: every object parsed into its pydantic models.

mod book;
pub(crate) mod rest;
pub(crate) mod stream;

use super::clock::wall_now_ns;
use super::data::Tape;
use super::fault::Fault;
use book::Book;
use engine::venue::VenueConfig;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use book::{AccountView, OrderView, PositionView};

/// Paper broker settings (part of [`super::ExchangeConfig`]).
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Starting cash, 1e-9 USD.
    pub starting_cash_e9: i64,
    /// Wall milliseconds from `accepted` to `new` (the order reaches the venue then).
    pub ack_latency_ms: u64,
    /// The simulated venue's settings (commission, slippage, participation cap, perturbations).
    pub venue: VenueConfig,
    /// Trading REST requests per minute per key (0 = no limit).
    pub rate_limit_per_min: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            starting_cash_e9: 100_000 * 1_000_000_000,
            ack_latency_ms: 5,
            venue: VenueConfig::default(),
            rate_limit_per_min: 200,
        }
    }
}

/// The exchange's side of the account: what `GET /control/broker` serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    /// The account, as `GET /v2/account` serves it.
    pub account: AccountView,
    /// Open positions, as `GET /v2/positions` serves them.
    pub positions: Vec<PositionView>,
    /// Every order, oldest first, as the order endpoints serve them.
    pub orders: Vec<OrderView>,
}

/// Broker counters, live.
#[derive(Debug, Default)]
pub(crate) struct BrokerCounters {
    pub orders: AtomicU64,
    pub fills: AtomicU64,
    pub cancels: AtomicU64,
    pub rejects: AtomicU64,
    pub rate_limited: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_lost: AtomicU64,
    pub sessions: AtomicU64,
}

/// Broker faults waiting or in force.
#[derive(Debug, Default)]
pub(crate) struct BrokerFaults {
    /// New orders still to reject at the REST answer.
    pub reject_rest: u32,
    /// New orders still to reject with a stream `rejected` event.
    pub reject_stream: u32,
    /// (latency ms, until wall ns).
    pub slow_ack: Option<(u64, i64)>,
    /// `trade_updates` upgrades refused until this wall time.
    pub outage_until_ns: i64,
    /// Trading requests still to refuse with 429.
    pub rate_limit: u32,
}

/// A per-key request window (one minute, counted from its first request).
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    window_start_ns: i64,
    used: u32,
}

/// The paper broker.
pub(crate) struct Broker {
    pub cfg: BrokerConfig,
    pub book: Mutex<Book>,
    pub streams: stream::Hub,
    pub counters: BrokerCounters,
    pub faults: Mutex<BrokerFaults>,
    pub limiter: Mutex<Limiter>,
    /// The broker thread (unparked when an ack or cancel is queued).
    pub waker: std::sync::OnceLock<std::thread::Thread>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the rate limiter says.
pub(crate) struct Limit {
    pub ok: bool,
    pub remaining: u32,
    pub reset_s: i64,
    /// Refused by an injected `rate_limit` fault (not the window).
    pub forced: bool,
}

impl Broker {
    pub fn new(cfg: &BrokerConfig, tape: &Tape, start_ns: i64) -> Broker {
        Broker {
            cfg: cfg.clone(),
            book: Mutex::new(Book::new(cfg, tape, start_ns)),
            streams: stream::Hub::default(),
            counters: BrokerCounters::default(),
            faults: Mutex::new(BrokerFaults::default()),
            limiter: Mutex::new(Limiter::default()),
            waker: std::sync::OnceLock::new(),
        }
    }

    /// Apply a broker fault (other faults are ignored).
    pub fn inject(&self, fault: Fault) {
        let now = wall_now_ns();
        let mut f = lock(&self.faults);
        match fault {
            Fault::OrderReject { count, via } => match via {
                super::fault::RejectVia::Rest => f.reject_rest += count,
                super::fault::RejectVia::Stream => f.reject_stream += count,
            },
            Fault::SlowAck { ms, for_ms } => f.slow_ack = Some((ms, now + (for_ms as i64) * 1_000_000)),
            Fault::DropTradeUpdates => {
                drop(f);
                self.streams.disconnect_all();
            }
            Fault::TradeUpdatesOutage { ms } => {
                f.outage_until_ns = now + (ms as i64) * 1_000_000;
                drop(f);
                self.streams.disconnect_all();
            }
            Fault::RateLimit { count } => f.rate_limit += count,
            _ => {}
        }
    }

    /// The ack (and cancel) latency now, wall ms.
    pub fn ack_latency_ms(&self) -> u64 {
        let f = lock(&self.faults);
        match f.slow_ack {
            Some((ms, until)) if wall_now_ns() < until => ms,
            _ => self.cfg.ack_latency_ms,
        }
    }

    /// True while a `trade_updates_outage` refuses connections.
    pub fn in_outage(&self) -> bool {
        wall_now_ns() < lock(&self.faults).outage_until_ns
    }

    /// Count one trading request against the limit (and the `rate_limit` fault).
    pub fn limit(&self) -> Limit {
        let now = wall_now_ns();
        let per_min = self.cfg.rate_limit_per_min;
        let forced = {
            let mut f = lock(&self.faults);
            if f.rate_limit > 0 {
                f.rate_limit -= 1;
                true
            } else {
                false
            }
        };
        let mut l = lock(&self.limiter);
        if now - l.window_start_ns >= 60_000_000_000 {
            l.window_start_ns = now;
            l.used = 0;
        }
        let reset_s = (l.window_start_ns + 60_000_000_000) / 1_000_000_000;
        if forced {
            return Limit { ok: false, remaining: 0, reset_s, forced: true };
        }
        if per_min == 0 {
            return Limit { ok: true, remaining: u32::MAX, reset_s, forced: false };
        }
        if l.used >= per_min {
            return Limit { ok: false, remaining: 0, reset_s, forced: false };
        }
        l.used += 1;
        Limit { ok: true, remaining: per_min - l.used, reset_s, forced: false }
    }

    pub fn snapshot(&self, market_now: i64) -> BrokerSnapshot {
        lock(&self.book).snapshot(market_now)
    }

    /// One step of the broker thread: acks due, cancels due, bars released by the clock.
    /// Returns how long the thread may sleep (until the next due ack or cancel or bar end, at
    /// most 20 ms; a queued ack or cancel wakes it at once).
    pub fn step(&self, clock: &super::MarketClock) -> std::time::Duration {
        let wall = wall_now_ns();
        let market_now = clock.at_wall(wall);
        let mut book = lock(&self.book);
        let mut ev = Vec::new();
        book.step(wall, market_now, self, &mut ev);
        self.emit(&book, ev);
        let (due_wall, bar_end) = book.next_wake();
        drop(book);
        let mut wait = 20_000_000i64;
        if let Some(d) = due_wall {
            wait = wait.min(d - wall);
        }
        if let Some(e) = bar_end {
            wait = wait.min(clock.wall_until(e));
        }
        std::time::Duration::from_nanos(wait.clamp(200_000, 20_000_000) as u64)
    }

    /// Wake the broker thread (an ack or cancel was queued).
    pub fn wake(&self) {
        if let Some(t) = self.waker.get() {
            t.unpark();
        }
    }

    /// Take one pending stream rejection.
    pub fn take_stream_reject(&self) -> bool {
        let mut f = lock(&self.faults);
        if f.reject_stream > 0 {
            f.reject_stream -= 1;
            true
        } else {
            false
        }
    }

    /// Take one pending REST rejection.
    pub fn take_rest_reject(&self) -> bool {
        let mut f = lock(&self.faults);
        if f.reject_rest > 0 {
            f.reject_rest -= 1;
            true
        } else {
            false
        }
    }

    /// Send events (rendered when they happened; sent under the book lock so every session sees
    /// them in order).
    pub fn emit(&self, _book: &Book, events: Vec<String>) {
        for text in events {
            let n = self.streams.broadcast(&text);
            if n == 0 {
                self.counters.events_lost.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.events_sent.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// The broker thread: process what is due, sleep until the next thing is (or a request wakes it).
pub(crate) fn run(shared: &super::server::Shared) {
    let _ = shared.broker.waker.set(std::thread::current());
    while !shared.stopping() {
        let wait = shared.broker.step(&shared.clock);
        std::thread::park_timeout(wait);
    }
}

// ---- ids, times, numbers ------------------------------------------------------------------------

/// SplitMix64 step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID from a seed and a counter.
pub(crate) fn uuid(seed: u64, n: u64) -> String {
    let a = mix(seed ^ mix(n));
    let b = mix(a ^ n.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 UTC with nanoseconds (`2024-03-01T14:31:00.000000000Z`).
pub(crate) fn time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let base = jiff::Timestamp::from_second(secs)
        .map_or_else(|_| "1970-01-01T00:00:00".into(), |t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string());
    format!("{base}.{frac:09}Z")
}

/// A 1e-9 fixed-point amount as a decimal string (no trailing zeros).
pub(crate) fn dec(v_e9: i128) -> String {
    let mut s = String::new();
    if v_e9 < 0 {
        s.push('-');
    }
    let v = v_e9.unsigned_abs();
    let (int, frac) = (v / 1_000_000_000, v % 1_000_000_000);
    s.push_str(&int.to_string());
    if frac != 0 {
        let mut f = format!("{frac:09}");
        while f.ends_with('0') {
            f.pop();
        }
        s.push('.');
        s.push_str(&f);
    }
    s
}

/// Parse a decimal (`"189.10"`, `"100"`, `1e2` is refused) into 1e-9 units.
pub(crate) fn parse_dec(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: i128 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    let v = i.checked_mul(1_000_000_000)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_times_and_ids() {
        assert_eq!(parse_dec("189.10"), Some(189_100_000_000));
        assert_eq!(parse_dec("100"), Some(100_000_000_000));
        assert_eq!(parse_dec("-0.5"), Some(-500_000_000));
        assert_eq!(parse_dec("1e2"), None);
        assert_eq!(parse_dec("."), None);
        assert_eq!(dec(189_100_000_000), "189.1");
        assert_eq!(dec(-2_000_000_000), "-2");
        assert_eq!(time(1_709_303_460_000_000_001), "2024-03-01T14:31:00.000000001Z");
        let u = uuid(7, 1);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid(7, 1), uuid(7, 2));
    }
}
