//! Execution: the order manager between risk and the venue. It sends orders risk accepted to the
//! [`Venue`], tracks each order's state (pending new -> working -> done, with pending cancel),
//! keeps the positions the venue reports, and at the end of data cancels what is still working
//! and closes positions out. It never decides whether an order is allowed (that is risk) and
//! never knows which venue it talks to.

use crate::records::{Bar, ExecKind, ExecReport, Order, OrderId, OrderType, Reason, Side, SymbolId};
use crate::risk::IdHash;
use crate::venue::Venue;
use std::collections::HashMap;

/// Where an order is in its life at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrdState {
    /// Risk accepted it; sent to the venue, not yet acknowledged.
    PendingNew,
    /// The venue accepted it (possibly partially filled).
    Working,
    /// A cancel was sent.
    PendingCancel,
    /// A replace was sent.
    PendingReplace,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    order: Order,
    state: OrdState,
    /// When risk sent it, ns (its timeout counts from here).
    placed_ns: i64,
}

/// The order manager and the venue behind it.
pub(crate) struct Execution {
    venue: Box<dyn Venue>,
    orders: HashMap<OrderId, Tracked, IdHash>,
    pos: Vec<i64>,
    /// Reports the venue gave at once; the caller drains and applies them in order.
    pub out: Vec<ExecReport>,
}

impl Execution {
    pub fn new(venue: Box<dyn Venue>, n_symbols: usize) -> Self {
        let mut e = Execution {
            venue,
            orders: HashMap::with_capacity_and_hasher(crate::risk::OPEN_ORDERS_HINT, IdHash::default()),
            pos: Vec::new(),
            out: Vec::with_capacity(16),
        };
        e.ensure_symbols(n_symbols);
        e
    }

    pub fn ensure_symbols(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, 0);
        }
        self.venue.ensure_symbols(n);
    }

    /// Send an order risk accepted.
    pub fn submit(&mut self, order: &Order, ts: i64) {
        self.orders.insert(order.order_id, Tracked { order: *order, state: OrdState::PendingNew, placed_ns: ts });
        self.venue.submit(order, ts, &mut self.out);
    }

    /// Track an order already working at the venue that this run did not send (taken over from
    /// the broker at start): no request goes out.
    pub fn adopt(&mut self, order: &Order, ts: i64) {
        self.orders.entry(order.order_id).or_insert(Tracked { order: *order, state: OrdState::Working, placed_ns: ts });
    }

    /// Set the position of `s` to the broker's (a reconcile under the adopt policy).
    pub fn set_position(&mut self, s: SymbolId, qty: i64) {
        if let Some(p) = self.pos.get_mut(s.0 as usize) {
            *p = qty;
        }
    }

    /// Ask the venue to cancel a live order; an order that is already done is left alone.
    pub fn cancel(&mut self, id: OrderId, ts: i64, reason: Reason) {
        let Some(t) = self.orders.get_mut(&id) else { return };
        if t.state == OrdState::PendingCancel {
            return;
        }
        t.state = OrdState::PendingCancel;
        let symbol = t.order.symbol;
        self.venue.cancel(id, symbol, ts, reason, &mut self.out);
    }

    /// Ask the venue to change a working order (risk accepted the change). An order that is not
    /// working (pending new, pending cancel or replace, or done) is refused by the venue's answer:
    /// a simulated venue reports `ReplaceRejected`.
    pub fn replace(&mut self, id: OrderId, qty: u32, limit_px_e9: i64, stop_px_e9: i64, ts: i64) {
        let symbol = match self.orders.get_mut(&id) {
            Some(t) => {
                if t.state == OrdState::Working {
                    t.state = OrdState::PendingReplace;
                }
                t.order.symbol
            }
            None => {
                return self.out.push(ExecReport {
                    ts_event_ns: ts,
                    order_id: id,
                    kind: ExecKind::ReplaceRejected.raw(),
                    reason: Reason::VenueRejected.raw(),
                    ..Default::default()
                });
            }
        };
        self.venue.replace(id, symbol, qty, limit_px_e9, stop_px_e9, ts, &mut self.out);
    }

    /// Market data for the venue.
    #[inline]
    pub fn on_bar(&mut self, s: SymbolId, bar: &Bar) {
        self.venue.on_bar(s, bar, &mut self.out);
    }

    /// A clock tick: the simulated venue expires orders itself; for a broker, execution cancels
    /// every order still working past its timeout (reason `timeout`), in order id order.
    #[inline]
    pub fn on_timer(&mut self, ts: i64) {
        self.venue.on_timer(ts, &mut self.out);
        if self.venue.simulated() || self.orders.is_empty() {
            return;
        }
        let mut due: Vec<OrderId> = self
            .orders
            .values()
            .filter(|t| {
                t.order.timeout_ns > 0
                    && t.state != OrdState::PendingCancel
                    && t.placed_ns.saturating_add(t.order.timeout_ns) <= ts
            })
            .map(|t| t.order.order_id)
            .collect();
        due.sort_unstable();
        for id in due {
            self.cancel(id, ts, Reason::Timeout);
        }
    }

    /// Apply a venue report to the order's state and the position. Returns false for a report
    /// about an order execution does not know (counted by the caller; still applied to positions).
    pub fn on_report(&mut self, r: &ExecReport) -> bool {
        let Some(kind) = r.exec_kind() else { return false };
        if kind.is_fill()
            && let Some(p) = self.pos.get_mut(r.symbol.0 as usize)
        {
            *p += r.exec_side().map_or(0, Side::sign) * i64::from(r.fill_qty);
        }
        let Some(t) = self.orders.get_mut(&r.order_id) else {
            // End-of-run close-outs are filled on the spot and never tracked.
            return r.reason == Reason::EndOfRun.raw() && kind.is_fill();
        };
        if kind.is_terminal() {
            self.orders.remove(&r.order_id);
        } else if (matches!(kind, ExecKind::Accepted | ExecKind::PartiallyFilled | ExecKind::Replaced)
            && t.state == OrdState::PendingNew)
            || kind == ExecKind::CancelRejected
            || (matches!(kind, ExecKind::Replaced | ExecKind::ReplaceRejected) && t.state == OrdState::PendingReplace)
        {
            t.state = OrdState::Working;
        }
        true
    }

    /// End of data: cancel every live order and, when `flatten`, close every position, symbol by
    /// symbol in id order (a simulated venue fills close-outs at the last price; a broker gets
    /// market orders). `next_id` numbers the close-out orders.
    pub fn end_of_data(&mut self, ts: i64, flatten: bool, next_id: &mut impl FnMut() -> OrderId) {
        let mut live: Vec<(SymbolId, OrderId)> =
            self.orders.values().map(|t| (t.order.symbol, t.order.order_id)).collect();
        live.sort_unstable();
        let mut k = 0;
        for s in 0..self.pos.len() {
            let sym = SymbolId(s as u32);
            while k < live.len() && live[k].0 == sym {
                self.cancel(live[k].1, ts, Reason::EndOfRun);
                k += 1;
            }
            let p = self.pos[s];
            if flatten && p != 0 {
                let order = Order {
                    order_id: next_id(),
                    symbol: sym,
                    qty: u32::try_from(p.unsigned_abs()).unwrap_or(u32::MAX),
                    side: if p > 0 { Side::Sell.raw() } else { Side::Buy.raw() },
                    order_type: OrderType::Market.raw(),
                    reduce_only: 1,
                    ..Default::default()
                };
                if self.venue.simulated() {
                    self.venue.close_out(&order, ts, &mut self.out);
                } else {
                    self.submit(&order, ts);
                }
            }
        }
    }
}
