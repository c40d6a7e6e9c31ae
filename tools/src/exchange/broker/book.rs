//! The account's book: orders, positions, cash, and the simulated venue that fills the orders
//! against the bars the market clock releases. What the API serves of it (order, position and
//! account views, trade_updates events) is in `book/views.rs`.

mod views;

pub use views::{AccountView, OrderView, PositionView};

use super::{Broker, BrokerConfig, uuid};
use crate::exchange::data::{MINUTE_NS, Tape};
use engine::records::{Bar, ExecKind, ExecReport, Order, OrderId, OrderType, Reason, Side, SymbolId};
use engine::venue::{SimVenue, Venue};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

const E9: i128 = 1_000_000_000;

/// Alpaca's order types the broker takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Market,
    Limit,
    Stop,
    StopLimit,
}

impl Type {
    pub fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "market" => Type::Market,
            "limit" => Type::Limit,
            "stop" => Type::Stop,
            "stop_limit" => Type::StopLimit,
            _ => return None,
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Type::Market => "market",
            Type::Limit => "limit",
            Type::Stop => "stop",
            Type::StopLimit => "stop_limit",
        }
    }
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    pub fn parse(s: &str) -> Option<Tif> {
        Some(match s {
            "day" => Tif::Day,
            "gtc" => Tif::Gtc,
            "ioc" => Tif::Ioc,
            "fok" => Tif::Fok,
            _ => return None,
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "day",
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
        }
    }
}

/// Order status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Accepted,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Replaced,
    PendingCancel,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::New => "new",
            Status::PartiallyFilled => "partially_filled",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
            Status::Replaced => "replaced",
            Status::PendingCancel => "pending_cancel",
            Status::Rejected => "rejected",
        }
    }
    pub fn is_open(self) -> bool {
        matches!(self, Status::Accepted | Status::New | Status::PartiallyFilled | Status::PendingCancel)
    }
}

/// A validated new order.
#[derive(Clone, Debug)]
pub(crate) struct NewOrder {
    pub sym: usize,
    pub qty: u32,
    pub side: Side,
    pub typ: Type,
    pub tif: Tif,
    pub limit_e9: i64,
    pub stop_e9: i64,
    pub client_order_id: Option<String>,
    pub extended_hours: bool,
}

#[derive(Clone, Debug)]
struct BOrder {
    id: String,
    client_order_id: String,
    o: NewOrder,
    created_ns: i64,
    updated_ns: i64,
    filled_ns: Option<i64>,
    canceled_ns: Option<i64>,
    expired_ns: Option<i64>,
    failed_ns: Option<i64>,
    replaced_ns: Option<i64>,
    replaced_by: Option<usize>,
    replaces: Option<usize>,
    status: Status,
    filled_qty: u32,
    /// Sum of qty x price over fills, 1e-9 USD.
    filled_value_e9: i128,
    /// The venue's id once the order reached it.
    engine_id: Option<u64>,
    /// Market time it reached the venue.
    placed_ns: i64,
}

/// An error answer: HTTP status, Alpaca code, message.
pub(crate) type Refusal = (u16, u32, String);

fn refuse(status: u16, code: u32, msg: impl Into<String>) -> Refusal {
    (status, code, msg.into())
}

#[derive(Clone, Copy, Debug, Default)]
struct Pos {
    qty: i64,
    avg_e9: i64,
}

/// The account's book.
pub(crate) struct Book {
    venue: SimVenue,
    seed: u64,
    next_id: u64,
    next_engine: u64,
    orders: Vec<BOrder>,
    by_id: HashMap<String, usize>,
    by_client: HashMap<String, usize>,
    by_engine: HashMap<u64, usize>,
    /// (wall due ns, order): acks waiting.
    acks: Vec<(i64, usize)>,
    /// (wall due ns, order): cancels waiting.
    cancels: Vec<(i64, usize)>,
    /// Stop-limit orders at the venue's door, waiting for their stop to trade.
    armed: Vec<usize>,
    /// Working ioc/fok orders (canceled after their first eligible bar).
    ioc: Vec<usize>,
    /// The open orders.
    open_set: BTreeSet<usize>,
    cash_e9: i128,
    start_cash_e9: i128,
    pos: Vec<Pos>,
    last_close: Vec<i64>,
    day_close: Vec<i64>,
    cursor: Vec<usize>,
    names: Vec<String>,
    asset_ids: Vec<String>,
    /// Minute bars per symbol (shared with the tape).
    bars: Vec<Vec<Bar>>,
    created_ns: i64,
}

impl Book {
    pub fn new(cfg: &BrokerConfig, tape: &Tape, start_ns: i64) -> Book {
        let n = tape.symbols.len();
        let seed = super::super::clock::wall_now_ns() as u64;
        let mut cursor = Vec::with_capacity(n);
        let mut last = Vec::with_capacity(n);
        for s in &tape.symbols {
            let c = s.minute.partition_point(|b| b.ts_event_ns + MINUTE_NS <= start_ns);
            cursor.push(c);
            last.push(match c {
                0 => s.minute.first().map_or(0, |b| b.open_px_e9),
                c => s.minute[c - 1].close_px_e9,
            });
        }
        Book {
            venue: SimVenue::new(&cfg.venue, n),
            seed,
            next_id: 0,
            next_engine: 1,
            orders: Vec::new(),
            by_id: HashMap::new(),
            by_client: HashMap::new(),
            by_engine: HashMap::new(),
            acks: Vec::new(),
            cancels: Vec::new(),
            armed: Vec::new(),
            ioc: Vec::new(),
            open_set: BTreeSet::new(),
            cash_e9: i128::from(cfg.starting_cash_e9),
            start_cash_e9: i128::from(cfg.starting_cash_e9),
            pos: vec![Pos::default(); n],
            day_close: last.clone(),
            last_close: last,
            cursor,
            names: tape.symbols.iter().map(|s| s.name.clone()).collect(),
            asset_ids: tape
                .symbols
                .iter()
                .map(|s| {
                    uuid(
                        s.name
                            .bytes()
                            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)),
                        0,
                    )
                })
                .collect(),
            bars: tape.symbols.iter().map(|s| s.minute.clone()).collect(),
            created_ns: start_ns,
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        uuid(self.seed, self.next_id)
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn find_client(&self, id: &str) -> Option<usize> {
        self.by_client.get(id).copied()
    }

    pub fn symbol(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn position_qty(&self, sym: usize) -> i64 {
        self.pos[sym].qty
    }

    // ---- account figures ------------------------------------------------------------------------

    fn market_values(&self) -> (i128, i128) {
        let (mut long, mut short) = (0i128, 0i128);
        for (p, px) in self.pos.iter().zip(&self.last_close) {
            let v = i128::from(p.qty) * i128::from(*px);
            if v >= 0 {
                long += v;
            } else {
                short += v;
            }
        }
        (long, short)
    }

    fn equity(&self) -> i128 {
        let (l, s) = self.market_values();
        self.cash_e9 + l + s
    }

    fn open_notional(&self) -> i128 {
        self.open_set
            .iter()
            .map(|&i| &self.orders[i])
            .map(|o| i128::from(o.o.qty - o.filled_qty) * i128::from(self.ref_px(&o.o)))
            .sum()
    }

    fn ref_px(&self, o: &NewOrder) -> i64 {
        if o.limit_e9 > 0 { o.limit_e9 } else { self.last_close[o.sym] }
    }

    fn buying_power(&self) -> i128 {
        let (l, s) = self.market_values();
        (2 * self.equity() - (l - s) - self.open_notional()).max(0)
    }

    // ---- requests -----------------------------------------------------------------------------

    /// Take a new order (`accepted`); it reaches the venue after `latency_ms`.
    pub fn submit(
        &mut self,
        o: NewOrder,
        market_now: i64,
        wall_now: i64,
        latency_ms: u64,
        b: &Broker,
        replaces: Option<usize>,
    ) -> Result<usize, Refusal> {
        if let Some(c) = &o.client_order_id
            && self.by_client.contains_key(c)
        {
            return Err(refuse(422, 40010001, "client_order_id must be unique"));
        }
        let p = self.pos[o.sym].qty;
        let reduces = p != 0 && (p > 0) == (o.side == Side::Sell) && i64::from(o.qty) <= p.abs();
        if !reduces && replaces.is_none() {
            let need = i128::from(o.qty) * i128::from(self.ref_px(&o));
            if need > self.buying_power() {
                b.counters.rejects.fetch_add(1, Ordering::Relaxed);
                return Err(refuse(403, 40310000, "insufficient buying power"));
            }
        }
        if b.take_rest_reject() {
            b.counters.rejects.fetch_add(1, Ordering::Relaxed);
            return Err(refuse(403, 40310000, "order rejected by the local exchange (order_reject fault)"));
        }
        let id = self.new_id();
        let client_order_id = match &o.client_order_id {
            Some(c) => c.clone(),
            None => self.new_id(),
        };
        let idx = self.orders.len();
        self.by_id.insert(id.clone(), idx);
        self.by_client.insert(client_order_id.clone(), idx);
        self.orders.push(BOrder {
            id,
            client_order_id,
            o,
            created_ns: market_now,
            updated_ns: market_now,
            filled_ns: None,
            canceled_ns: None,
            expired_ns: None,
            failed_ns: None,
            replaced_ns: None,
            replaced_by: None,
            replaces,
            status: Status::Accepted,
            filled_qty: 0,
            filled_value_e9: 0,
            engine_id: None,
            placed_ns: 0,
        });
        self.acks.push((wall_now + (latency_ms as i64) * 1_000_000, idx));
        self.open_set.insert(idx);
        b.counters.orders.fetch_add(1, Ordering::Relaxed);
        Ok(idx)
    }

    /// Ask to cancel: at once (`canceled`) without latency, else `pending_cancel` then `canceled`
    /// when due (unless a fill finished it first).
    pub fn cancel(
        &mut self,
        idx: usize,
        market_now: i64,
        wall_now: i64,
        latency_ms: u64,
        b: &Broker,
        ev: &mut Vec<String>,
    ) -> Result<(), Refusal> {
        let st = self.orders[idx].status;
        if !st.is_open() {
            return Err(refuse(422, 42210000, "order is not cancelable"));
        }
        if st == Status::PendingCancel {
            return Ok(());
        }
        if latency_ms == 0 || st == Status::Accepted {
            self.do_cancel(idx, market_now, b, ev);
        } else {
            let o = &mut self.orders[idx];
            o.status = Status::PendingCancel;
            o.updated_ns = market_now;
            ev.push(self.event("pending_cancel", idx, market_now, None));
            self.cancels.push((wall_now + (latency_ms as i64) * 1_000_000, idx));
        }
        Ok(())
    }

    fn do_cancel(&mut self, idx: usize, market_now: i64, b: &Broker, ev: &mut Vec<String>) {
        if !self.orders[idx].status.is_open() {
            return; // a fill came first: it wins
        }
        self.pull(idx, market_now);
        let o = &mut self.orders[idx];
        o.status = Status::Canceled;
        self.open_set.remove(&idx);
        o.canceled_ns = Some(market_now);
        o.updated_ns = market_now;
        b.counters.cancels.fetch_add(1, Ordering::Relaxed);
        ev.push(self.event("canceled", idx, market_now, None));
    }

    /// Take an order off the venue and every queue.
    fn pull(&mut self, idx: usize, market_now: i64) {
        let o = &self.orders[idx];
        if let Some(e) = o.engine_id {
            let mut out = Vec::new();
            self.venue.cancel(OrderId(e), SymbolId(o.o.sym as u32), market_now, Reason::Requested, &mut out);
        }
        self.acks.retain(|(_, i)| *i != idx);
        self.cancels.retain(|(_, i)| *i != idx);
        self.armed.retain(|i| *i != idx);
        self.ioc.retain(|i| *i != idx);
    }

    /// Replace: a new order (the old one's fields, overridden) replaces the old one.
    #[allow(clippy::too_many_arguments)] // the order and the four things a replace may change
    pub fn replace(
        &mut self,
        idx: usize,
        qty: Option<u32>,
        limit_e9: Option<i64>,
        stop_e9: Option<i64>,
        tif: Option<Tif>,
        client_order_id: Option<String>,
        market_now: i64,
        wall_now: i64,
        latency_ms: u64,
        b: &Broker,
        ev: &mut Vec<String>,
    ) -> Result<usize, Refusal> {
        let old = &self.orders[idx];
        if !matches!(old.status, Status::New | Status::PartiallyFilled) {
            return Err(refuse(422, 42210000, format!("order is not replaceable (status {})", old.status.as_str())));
        }
        let mut n = old.o.clone();
        n.qty = qty.unwrap_or(old.o.qty - old.filled_qty);
        if let Some(l) = limit_e9 {
            if !matches!(n.typ, Type::Limit | Type::StopLimit) {
                return Err(refuse(422, 42210000, "limit_price applies to limit and stop_limit orders only"));
            }
            n.limit_e9 = l;
        }
        if let Some(s) = stop_e9 {
            if !matches!(n.typ, Type::Stop | Type::StopLimit) {
                return Err(refuse(422, 42210000, "stop_price applies to stop and stop_limit orders only"));
            }
            n.stop_e9 = s;
        }
        if let Some(t) = tif {
            n.tif = t;
        }
        n.client_order_id = client_order_id;
        let new = self.submit(n, market_now, wall_now, latency_ms, b, Some(idx))?;
        self.pull(idx, market_now);
        let o = &mut self.orders[idx];
        o.status = Status::Replaced;
        self.open_set.remove(&idx);
        o.replaced_ns = Some(market_now);
        o.replaced_by = Some(new);
        o.updated_ns = market_now;
        ev.push(self.event("replaced", idx, market_now, None));
        Ok(new)
    }

    // ---- the broker thread --------------------------------------------------------------------

    /// The earliest queued ack or cancel (wall ns) and the earliest unreleased bar end (market
    /// ns) of a symbol with open orders.
    pub fn next_wake(&self) -> (Option<i64>, Option<i64>) {
        let due = self.acks.iter().chain(&self.cancels).map(|(d, _)| *d).min();
        let mut syms: Vec<usize> = self.open_set.iter().map(|&i| self.orders[i].o.sym).collect();
        syms.sort_unstable();
        syms.dedup();
        let end =
            syms.iter().filter_map(|&s| self.bars[s].get(self.cursor[s]).map(|b| b.ts_event_ns + MINUTE_NS)).min();
        (due, end)
    }

    /// Acks and cancels due by `wall`, then every bar released by `market_now`, then expiries.
    pub fn step(&mut self, wall: i64, market_now: i64, b: &Broker, ev: &mut Vec<String>) {
        if self.acks.iter().any(|(due, _)| *due <= wall) {
            let mut due: Vec<usize> = Vec::new();
            self.acks.retain(|(d, i)| {
                if *d <= wall {
                    due.push(*i);
                    false
                } else {
                    true
                }
            });
            due.sort_unstable();
            for idx in due {
                self.ack(idx, market_now, b, ev);
            }
        }
        if self.cancels.iter().any(|(due, _)| *due <= wall) {
            let mut due: Vec<usize> = Vec::new();
            self.cancels.retain(|(d, i)| {
                if *d <= wall {
                    due.push(*i);
                    false
                } else {
                    true
                }
            });
            for idx in due {
                self.do_cancel(idx, market_now, b, ev);
            }
        }
        let mut released: Vec<(i64, usize, usize)> = Vec::new();
        for (s, bars) in self.bars.iter().enumerate() {
            let mut c = self.cursor[s];
            while let Some(bar) = bars.get(c) {
                if bar.ts_event_ns + MINUTE_NS > market_now {
                    break;
                }
                released.push((bar.ts_event_ns, s, c));
                c += 1;
            }
            self.cursor[s] = c;
        }
        released.sort_unstable();
        let mut reports = Vec::new();
        for (_, s, c) in released {
            let bar = self.bars[s][c];
            self.venue.on_bar(SymbolId(s as u32), &bar, &mut reports);
            for r in reports.drain(..) {
                self.on_report(&r, b, ev);
            }
            self.last_close[s] = bar.close_px_e9;
            self.after_bar(s, &bar, market_now, b, ev);
        }
        self.venue.on_timer(market_now, &mut reports);
        for r in reports.drain(..) {
            self.on_report(&r, b, ev);
        }
    }

    /// Market time at which a `day` order placed at `ns` expires: 16:00 New York time that day
    /// (the next day's when placed later).
    fn day_end(ns: i64) -> i64 {
        let Ok(tz) = jiff::tz::TimeZone::get("America/New_York") else { return ns + 8 * 3600 * E9 as i64 };
        let Ok(ts) = jiff::Timestamp::from_nanosecond(i128::from(ns)) else { return i64::MAX };
        let z = ts.to_zoned(tz.clone());
        let close = |d: jiff::civil::Date| {
            d.at(16, 0, 0, 0).to_zoned(tz.clone()).ok().and_then(|z| i64::try_from(z.timestamp().as_nanosecond()).ok())
        };
        match close(z.date()) {
            Some(c) if c > ns => c,
            _ => z.date().tomorrow().ok().and_then(close).unwrap_or(i64::MAX),
        }
    }

    fn ack(&mut self, idx: usize, market_now: i64, b: &Broker, ev: &mut Vec<String>) {
        if self.orders[idx].status != Status::Accepted {
            return;
        }
        if b.take_stream_reject() {
            return self.reject(idx, market_now, b, ev);
        }
        let o = &mut self.orders[idx];
        o.status = Status::New;
        o.updated_ns = market_now;
        o.placed_ns = market_now;
        ev.push(self.event("new", idx, market_now, None));
        if self.orders[idx].o.typ == Type::StopLimit {
            self.armed.push(idx);
        } else {
            self.place_at_venue(idx, market_now, b, ev);
        }
    }

    fn reject(&mut self, idx: usize, market_now: i64, b: &Broker, ev: &mut Vec<String>) {
        self.pull(idx, market_now);
        let o = &mut self.orders[idx];
        o.status = Status::Rejected;
        self.open_set.remove(&idx);
        o.failed_ns = Some(market_now);
        o.updated_ns = market_now;
        b.counters.rejects.fetch_add(1, Ordering::Relaxed);
        ev.push(self.event("rejected", idx, market_now, None));
    }

    /// Hand an order to the venue, placed at `placed_ns`.
    fn place_at_venue(&mut self, idx: usize, placed_ns: i64, b: &Broker, ev: &mut Vec<String>) {
        let e = self.next_engine;
        self.next_engine += 1;
        let o = &mut self.orders[idx];
        let (typ, limit, stop) = match o.o.typ {
            Type::Market => (OrderType::Market, 0, 0),
            Type::Limit | Type::StopLimit => (OrderType::Limit, o.o.limit_e9, 0),
            Type::Stop => (OrderType::Stop, 0, o.o.stop_e9),
        };
        let timeout_ns = match o.o.tif {
            Tif::Day => (Self::day_end(o.placed_ns) - placed_ns).max(1),
            _ => 0,
        };
        let order = Order {
            order_id: OrderId(e),
            limit_px_e9: limit,
            stop_px_e9: stop,
            timeout_ns,
            symbol: SymbolId(o.o.sym as u32),
            qty: o.o.qty - o.filled_qty,
            side: o.o.side.raw(),
            order_type: typ.raw(),
            reduce_only: 0,
            _pad: 0,
            tag: 0,
        };
        o.engine_id = Some(e);
        if matches!(o.o.tif, Tif::Ioc | Tif::Fok) {
            self.ioc.push(idx);
        }
        self.by_engine.insert(e, idx);
        let mut out = Vec::new();
        self.venue.submit(&order, placed_ns, &mut out);
        for r in out {
            if r.exec_kind() == Some(ExecKind::Rejected) {
                self.reject(idx, placed_ns, b, ev);
            }
        }
    }

    /// Stop-limit triggers and ioc/fok remainders after a bar of `sym`.
    fn after_bar(&mut self, sym: usize, bar: &Bar, market_now: i64, b: &Broker, ev: &mut Vec<String>) {
        let trig: Vec<usize> = self
            .armed
            .iter()
            .copied()
            .filter(|&i| {
                let o = &self.orders[i];
                o.o.sym == sym
                    && o.placed_ns <= bar.ts_event_ns
                    && match o.o.side {
                        Side::Buy => bar.high_px_e9 >= o.o.stop_e9,
                        Side::Sell => bar.low_px_e9 <= o.o.stop_e9,
                    }
            })
            .collect();
        for i in trig {
            self.armed.retain(|x| *x != i);
            self.place_at_venue(i, bar.ts_event_ns + MINUTE_NS, b, ev);
        }
        let done: Vec<usize> = self
            .ioc
            .iter()
            .copied()
            .filter(|&i| {
                let o = &self.orders[i];
                o.o.sym == sym && o.placed_ns <= bar.ts_event_ns && o.status.is_open()
            })
            .collect();
        for i in done {
            self.do_cancel(i, market_now, b, ev);
        }
        self.ioc.retain(|&i| self.orders[i].status.is_open());
    }

    fn on_report(&mut self, r: &ExecReport, b: &Broker, ev: &mut Vec<String>) {
        let Some(&idx) = self.by_engine.get(&r.order_id.0) else { return };
        let ts = r.ts_event_ns;
        match r.exec_kind() {
            Some(ExecKind::Filled | ExecKind::PartiallyFilled) => self.fill(idx, r, b, ev),
            Some(ExecKind::Expired) => {
                self.pull(idx, ts);
                let o = &mut self.orders[idx];
                o.status = Status::Expired;
                self.open_set.remove(&idx);
                o.expired_ns = Some(ts);
                o.updated_ns = ts;
                ev.push(self.event("expired", idx, ts, None));
            }
            Some(ExecKind::Rejected) => self.reject(idx, ts, b, ev),
            _ => {}
        }
    }

    fn fill(&mut self, idx: usize, r: &ExecReport, b: &Broker, ev: &mut Vec<String>) {
        let ts = r.ts_event_ns;
        let (qty, px) = (r.fill_qty, r.fill_px_e9);
        let o = &mut self.orders[idx];
        let side = o.o.side;
        o.filled_qty += qty;
        o.filled_value_e9 += i128::from(qty) * i128::from(px);
        o.filled_ns = Some(ts);
        o.updated_ns = ts;
        let full = o.filled_qty >= o.o.qty;
        let kind = if full {
            o.status = Status::Filled;
            self.open_set.remove(&idx);
            "fill"
        } else {
            if o.status != Status::PendingCancel {
                o.status = Status::PartiallyFilled;
            }
            "partial_fill"
        };
        let sym = o.o.sym;
        if full {
            self.pull(idx, ts);
        }
        // Cash and position.
        let value = i128::from(qty) * i128::from(px);
        self.cash_e9 -= i128::from(side.sign()) * value + i128::from(r.commission_e9);
        let p = &mut self.pos[sym];
        let d = side.sign() * i64::from(qty);
        let new = p.qty + d;
        if p.qty == 0 || (p.qty > 0) == (d > 0) {
            let tot = i128::from(p.qty.abs()) * i128::from(p.avg_e9) + i128::from(qty) * i128::from(px);
            p.avg_e9 = (tot / i128::from(new.abs())) as i64;
        } else if new == 0 {
            p.avg_e9 = 0;
        } else if (new > 0) != (p.qty > 0) {
            p.avg_e9 = px;
        }
        p.qty = new;
        b.counters.fills.fetch_add(1, Ordering::Relaxed);
        let exec = self.new_id();
        ev.push(self.event(kind, idx, ts, Some((px, qty, new, exec))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_orders_end_at_16_new_york() {
        let t = |s: &str| i64::try_from(s.parse::<jiff::Timestamp>().unwrap().as_nanosecond()).unwrap();
        // Winter (EST, UTC-5) and summer (EDT, UTC-4); after the close: the next day's.
        assert_eq!(Book::day_end(t("2024-03-01T15:30:00Z")), t("2024-03-01T21:00:00Z"));
        assert_eq!(Book::day_end(t("2024-07-01T15:30:00Z")), t("2024-07-01T20:00:00Z"));
        assert_eq!(Book::day_end(t("2024-07-01T20:00:00Z")), t("2024-07-02T20:00:00Z"));
    }
}
