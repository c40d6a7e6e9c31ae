//! The gateway's order book: which broker order is which engine order, what has been reported
//! to the engine, and the positions those reports add up to. Pure state: every function takes
//! what the broker said and returns the execution reports the engine has not seen yet, so a
//! fill reported by the stream, by a REST answer and again by a reconcile reaches the engine
//! exactly once.

use crate::broker::{BrokerOrder, OrderStatus, TradeEvent, TradeUpdate};
use engine::records::{ExecKind, ExecReport, OrderId, Reason, Side, SymbolId};
use std::collections::HashMap;

/// One engine order at the broker.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: OrderId,
    pub symbol: SymbolId,
    pub side: Side,
    /// The engine's total quantity (changes with replaces).
    pub qty: u32,
    /// The client order id of the broker order now carrying it (a replace makes a new one).
    pub cid: String,
    /// The broker's id of that order, once known.
    pub broker_id: Option<String>,
    /// Shares filled by broker orders this one replaced (their fills stay theirs).
    pub base_filled: u32,
    /// Shares filled on the current broker order, as reported to the engine.
    pub filled: u32,
    /// Notional of those fills, 1e-9 USD (for the price of fills recovered in bulk).
    pub filled_notional_e9: i128,
    pub accepted: bool,
    pub done: bool,
    /// Why the engine asked to cancel it (reported with the broker's `canceled`).
    pub cancel_reason: Option<Reason>,
}

impl Entry {
    pub fn new(id: OrderId, symbol: SymbolId, side: Side, qty: u32, cid: String) -> Self {
        Entry {
            id,
            symbol,
            side,
            qty,
            cid,
            broker_id: None,
            base_filled: 0,
            filled: 0,
            filled_notional_e9: 0,
            accepted: false,
            done: false,
            cancel_reason: None,
        }
    }

    fn total_filled(&self) -> u32 {
        self.base_filled + self.filled
    }

    fn leaves(&self) -> u32 {
        self.qty.saturating_sub(self.total_filled())
    }

    fn report(&self, kind: ExecKind, ts: i64, reason: Reason) -> ExecReport {
        ExecReport {
            ts_event_ns: ts,
            order_id: self.id,
            symbol: self.symbol,
            kind: kind.raw(),
            side: self.side.raw(),
            reason: reason.raw(),
            leaves_qty: self.leaves(),
            ..Default::default()
        }
    }
}

/// Counts of what the book saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BookStats {
    /// Fill events whose shares were already reported (a replayed or duplicated event).
    pub duplicate_fills: u64,
    /// Fills reported from an order's state (REST) instead of a fill event: missed while the
    /// stream was down.
    pub fills_recovered: u64,
    /// Updates about orders this run does not know (placed by someone else).
    pub foreign_updates: u64,
    /// Events that need no report (pending_*, stopped, calculated, suspended, unknown).
    pub ignored_events: u64,
    /// Events of a kind Alpaca does not document.
    pub unknown_events: u64,
}

/// The book.
#[derive(Debug, Default)]
pub(crate) struct Book {
    entries: HashMap<OrderId, Entry>,
    by_cid: HashMap<String, OrderId>,
    /// Net position per symbol from the fills reported.
    pub positions: HashMap<SymbolId, i64>,
    pub stats: BookStats,
}

impl Book {
    pub fn insert(&mut self, e: Entry) {
        self.by_cid.insert(e.cid.clone(), e.id);
        self.entries.insert(e.id, e);
    }

    pub fn get(&self, id: OrderId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    pub fn get_mut(&mut self, id: OrderId) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    pub fn by_cid(&self, cid: &str) -> Option<OrderId> {
        self.by_cid.get(cid).copied()
    }

    /// Orders not done, in id order.
    pub fn live(&self) -> Vec<OrderId> {
        let mut v: Vec<OrderId> = self.entries.values().filter(|e| !e.done).map(|e| e.id).collect();
        v.sort_unstable();
        v
    }

    /// Forget orders that are done (keeps the client order ids: a late event is still ours).
    pub fn prune(&mut self) {
        self.entries.retain(|_, e| !e.done);
    }

    fn fill(&mut self, id: OrderId, qty: u32, px_e9: i64, ts: i64, out: &mut Vec<ExecReport>) {
        let Some(e) = self.entries.get_mut(&id) else { return };
        e.filled += qty;
        e.filled_notional_e9 += i128::from(qty) * i128::from(px_e9);
        let kind = if e.leaves() == 0 { ExecKind::Filled } else { ExecKind::PartiallyFilled };
        if kind == ExecKind::Filled {
            e.done = true;
        }
        let mut r = e.report(kind, ts, Reason::None);
        r.fill_qty = qty;
        r.fill_px_e9 = px_e9;
        *self.positions.entry(e.symbol).or_default() += e.side.sign() * i64::from(qty);
        out.push(r);
    }

    /// Report whatever the broker order `o` (the current one of engine order `id`) shows beyond
    /// what was reported: the acknowledgement, fills (at `px_hint` when the shares are exactly
    /// one execution's, else at the average price of the missing shares), and its end.
    pub fn catch_up(
        &mut self,
        id: OrderId,
        o: &BrokerOrder,
        px_hint: Option<(i64, u32)>,
        ts: i64,
        recovered: bool,
        out: &mut Vec<ExecReport>,
    ) {
        let Some(e) = self.entries.get_mut(&id) else { return };
        if e.done {
            return;
        }
        if e.broker_id.is_none() || e.cid == o.client_order_id {
            e.broker_id = Some(o.id.clone());
        }
        if !e.accepted && o.status != OrderStatus::Rejected {
            e.accepted = true;
            out.push(e.report(ExecKind::Accepted, ts, Reason::None));
        }
        if o.filled_qty > e.filled {
            let missing = o.filled_qty - e.filled;
            let px = match (px_hint, o.filled_avg_px_e9) {
                (Some((px, q)), _) if q == missing => px,
                (_, Some(avg)) => {
                    let total = i128::from(avg) * i128::from(o.filled_qty);
                    i64::try_from((total - e.filled_notional_e9) / i128::from(missing)).unwrap_or(avg)
                }
                (Some((px, _)), None) => px,
                (None, None) => 0,
            };
            if recovered {
                self.stats.fills_recovered += 1;
            }
            self.fill(id, missing, px, ts, out);
        } else if px_hint.is_some() {
            self.stats.duplicate_fills += 1;
        }
        let Some(e) = self.entries.get_mut(&id) else { return };
        if e.done {
            return;
        }
        let end = match o.status {
            OrderStatus::Canceled => Some((ExecKind::Canceled, e.cancel_reason.unwrap_or(Reason::None))),
            OrderStatus::Expired | OrderStatus::DoneForDay => Some((ExecKind::Expired, Reason::None)),
            OrderStatus::Rejected => Some((ExecKind::Rejected, Reason::BrokerRejected)),
            // A replaced order lives on in its replacement; filled is handled above.
            _ => None,
        };
        if let Some((kind, reason)) = end {
            e.done = true;
            out.push(e.report(kind, ts, reason));
        }
    }

    /// A trade_updates event: the reports it adds, in order.
    pub fn on_update(&mut self, u: &TradeUpdate, now: i64, out: &mut Vec<ExecReport>) {
        let Some(id) = self.by_cid(&u.order.client_order_id) else {
            self.stats.foreign_updates += 1;
            return;
        };
        let ts = u.timestamp_ns.unwrap_or(now);
        // Events about an order a replace made obsolete (the old one) carry nothing new.
        if self.entries.get(&id).is_some_and(|e| e.cid != u.order.client_order_id) {
            if matches!(u.event, TradeEvent::Fill | TradeEvent::PartialFill) {
                // A fill of the old order before the replace took effect: its shares count.
                self.fill_old(id, u, ts, out);
            } else {
                self.stats.ignored_events += 1;
            }
            return;
        }
        match &u.event {
            TradeEvent::New | TradeEvent::Fill | TradeEvent::PartialFill | TradeEvent::Canceled => {
                let hint = u.price_e9.zip(u.qty);
                self.catch_up(id, &u.order, hint, ts, false, out);
            }
            TradeEvent::Expired | TradeEvent::DoneForDay | TradeEvent::Rejected => {
                self.catch_up(id, &u.order, None, ts, false, out);
            }
            TradeEvent::Replaced => self.stats.ignored_events += 1,
            TradeEvent::OrderCancelRejected => {
                if let Some(e) = self.entries.get_mut(&id)
                    && !e.done
                {
                    e.cancel_reason = None;
                    out.push(e.report(ExecKind::CancelRejected, ts, Reason::BrokerRejected));
                }
            }
            TradeEvent::OrderReplaceRejected => {
                if let Some(e) = self.entries.get_mut(&id)
                    && !e.done
                {
                    out.push(e.report(ExecKind::ReplaceRejected, ts, Reason::BrokerRejected));
                }
            }
            TradeEvent::Unknown(_) => {
                self.stats.unknown_events += 1;
            }
            TradeEvent::PendingNew
            | TradeEvent::PendingCancel
            | TradeEvent::PendingReplace
            | TradeEvent::Stopped
            | TradeEvent::Calculated
            | TradeEvent::Suspended => self.stats.ignored_events += 1,
        }
    }

    /// A fill on an order that was being replaced (the broker filled the old one first).
    fn fill_old(&mut self, id: OrderId, u: &TradeUpdate, ts: i64, out: &mut Vec<ExecReport>) {
        let (Some(px), Some(q)) = (u.price_e9, u.qty) else { return };
        let Some(e) = self.entries.get_mut(&id) else { return };
        if e.done || q == 0 {
            return;
        }
        e.base_filled += q;
        let kind = if e.leaves() == 0 { ExecKind::Filled } else { ExecKind::PartiallyFilled };
        if kind == ExecKind::Filled {
            e.done = true;
        }
        let mut r = e.report(kind, ts, Reason::None);
        r.fill_qty = q;
        r.fill_px_e9 = px;
        *self.positions.entry(e.symbol).or_default() += e.side.sign() * i64::from(q);
        out.push(r);
    }

    /// The engine's report for an order the broker refused outright.
    pub fn refused(&mut self, id: OrderId, kind: ExecKind, reason: Reason, ts: i64) -> Option<ExecReport> {
        let e = self.entries.get_mut(&id)?;
        if kind == ExecKind::Rejected {
            e.done = true;
        }
        Some(e.report(kind, ts, reason))
    }

    /// A replace the broker took: the new broker order `o` now carries engine order `id`, with
    /// the engine's new total `qty`.
    pub fn replaced(&mut self, id: OrderId, qty: u32, o: &BrokerOrder, ts: i64) -> Option<ExecReport> {
        let e = self.entries.get_mut(&id)?;
        e.base_filled += e.filled;
        e.filled = 0;
        e.filled_notional_e9 = 0;
        e.qty = qty;
        e.cid = o.client_order_id.clone();
        e.broker_id = Some(o.id.clone());
        let r = e.report(ExecKind::Replaced, ts, Reason::None);
        self.by_cid.insert(o.client_order_id.clone(), id);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(cid: &str, qty: u32, filled: u32, avg: Option<i64>, status: OrderStatus) -> BrokerOrder {
        BrokerOrder {
            id: format!("b-{cid}"),
            client_order_id: cid.into(),
            symbol: "AAPL".into(),
            side: Side::Buy,
            order_type: None,
            qty,
            filled_qty: filled,
            filled_avg_px_e9: avg,
            limit_px_e9: None,
            stop_px_e9: None,
            status,
            replaces: None,
            replaced_by: None,
            updated_at_ns: None,
        }
    }

    fn update(event: TradeEvent, o: BrokerOrder, px: Option<i64>, q: Option<u32>) -> TradeUpdate {
        TradeUpdate {
            event,
            order: o,
            price_e9: px,
            qty: q,
            position_qty: None,
            execution_id: None,
            timestamp_ns: Some(7),
            recv_ns: 8,
        }
    }

    fn book() -> (Book, OrderId) {
        let mut b = Book::default();
        let id = OrderId::for_symbol(SymbolId(0), 1);
        b.insert(Entry::new(id, SymbolId(0), Side::Buy, 100, "s-AAPL-1".into()));
        (b, id)
    }

    fn kinds(out: &[ExecReport]) -> Vec<(ExecKind, u32, i64, u32)> {
        out.iter().map(|r| (r.exec_kind().unwrap(), r.fill_qty, r.fill_px_e9, r.leaves_qty)).collect()
    }

    #[test]
    fn each_share_is_reported_once_whether_it_comes_from_the_stream_rest_or_a_reconcile() {
        let (mut b, id) = book();
        let mut out = Vec::new();
        b.on_update(
            &update(TradeEvent::New, order("s-AAPL-1", 100, 0, None, OrderStatus::New), None, None),
            0,
            &mut out,
        );
        let o = order("s-AAPL-1", 100, 40, Some(10_000_000_000), OrderStatus::PartiallyFilled);
        b.on_update(&update(TradeEvent::PartialFill, o.clone(), Some(10_000_000_000), Some(40)), 0, &mut out);
        // The same event again (a duplicate) and the order's state from REST: nothing new.
        b.on_update(&update(TradeEvent::PartialFill, o.clone(), Some(10_000_000_000), Some(40)), 0, &mut out);
        b.catch_up(id, &o, None, 0, true, &mut out);
        // The rest filled while the stream was down: recovered from the order at the average.
        let done = order("s-AAPL-1", 100, 100, Some(10_600_000_000), OrderStatus::Filled);
        b.catch_up(id, &done, None, 0, true, &mut out);
        assert_eq!(
            kinds(&out),
            vec![
                (ExecKind::Accepted, 0, 0, 100),
                (ExecKind::PartiallyFilled, 40, 10_000_000_000, 60),
                (ExecKind::Filled, 60, 11_000_000_000, 0),
            ]
        );
        assert_eq!(b.positions[&SymbolId(0)], 100);
        assert_eq!((b.stats.duplicate_fills, b.stats.fills_recovered), (1, 1));
        // A late event after the end changes nothing.
        let mut more = Vec::new();
        b.on_update(&update(TradeEvent::Fill, done, Some(10_000_000_000), Some(60)), 0, &mut more);
        assert!(more.is_empty());
    }

    #[test]
    fn cancels_carry_the_engines_reason_and_a_cancel_that_loses_to_a_fill_reports_the_fill() {
        let (mut b, id) = book();
        let mut out = Vec::new();
        b.get_mut(id).unwrap().cancel_reason = Some(Reason::Timeout);
        b.on_update(
            &update(
                TradeEvent::Canceled,
                order("s-AAPL-1", 100, 10, Some(5_000_000_000), OrderStatus::Canceled),
                None,
                None,
            ),
            0,
            &mut out,
        );
        let k = kinds(&out);
        assert_eq!(k[1], (ExecKind::PartiallyFilled, 10, 5_000_000_000, 90));
        assert_eq!(out[2].exec_kind(), Some(ExecKind::Canceled));
        assert_eq!(out[2].exec_reason(), Some(Reason::Timeout));
        // Another order: the cancel is refused because it filled first.
        let id2 = OrderId::for_symbol(SymbolId(0), 2);
        b.insert(Entry::new(id2, SymbolId(0), Side::Sell, 5, "s-AAPL-2".into()));
        let mut out = Vec::new();
        let filled = order("s-AAPL-2", 5, 5, Some(1_000_000_000), OrderStatus::Filled);
        b.on_update(&update(TradeEvent::Fill, filled.clone(), Some(1_000_000_000), Some(5)), 0, &mut out);
        b.on_update(&update(TradeEvent::OrderCancelRejected, filled, None, None), 0, &mut out);
        assert_eq!(
            kinds(&out),
            vec![(ExecKind::Accepted, 0, 0, 5), (ExecKind::Filled, 5, 1_000_000_000, 0)],
            "the fill wins; a cancel rejection for a done order says nothing"
        );
        assert_eq!(b.positions[&SymbolId(0)], 10 - 5);
    }

    #[test]
    fn a_replace_moves_the_order_to_its_new_broker_order_and_foreign_or_unknown_events_are_counted() {
        let (mut b, id) = book();
        let mut out = Vec::new();
        let o = order("s-AAPL-1", 100, 30, Some(2_000_000_000), OrderStatus::PartiallyFilled);
        b.catch_up(id, &o, Some((2_000_000_000, 30)), 0, false, &mut out);
        // The engine asks for 80 in all: the new broker order carries the 50 left.
        let new = order("s-AAPL-1.r1", 50, 0, None, OrderStatus::New);
        let r = b.replaced(id, 80, &new, 0).unwrap();
        assert_eq!((r.exec_kind(), r.leaves_qty), (Some(ExecKind::Replaced), 50));
        out.clear();
        let f = order("s-AAPL-1.r1", 50, 50, Some(3_000_000_000), OrderStatus::Filled);
        b.on_update(&update(TradeEvent::Fill, f, Some(3_000_000_000), Some(50)), 0, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Filled, 50, 3_000_000_000, 0)]);
        assert_eq!(b.positions[&SymbolId(0)], 80);
        b.on_update(
            &update(TradeEvent::New, order("someone-else", 1, 0, None, OrderStatus::New), None, None),
            0,
            &mut out,
        );
        b.on_update(
            &update(
                TradeEvent::Unknown("brand_new".into()),
                order("s-AAPL-1.r1", 50, 50, None, OrderStatus::Filled),
                None,
                None,
            ),
            0,
            &mut out,
        );
        assert_eq!((b.stats.foreign_updates, b.stats.unknown_events), (1, 1));
    }
}
