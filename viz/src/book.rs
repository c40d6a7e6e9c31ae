//! The viewer's book: its picture of the run's orders, built from the flow the pipeline's
//! observer hands over ([`crate::live::observe`]): fills per symbol, working limit and stop
//! orders, manual orders (hotkeys) with their rejections and the stops attached to them, and
//! the lines for the window's message area. It runs on the window's thread only.

use crate::model::{FillMark, WorkingMark};
use engine::pipeline::messages::{Flow, FlowBody};
use engine::records::{Event, ExecKind, MANUAL_TAG, Order, OrderType, Reason, Side, SymbolId};
use std::collections::{HashMap, HashSet, VecDeque};

/// A line for the window's message area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The text.
    pub text: String,
    /// A rejection or failure (drawn in red).
    pub error: bool,
}

/// A manual entry waiting for its fill to send the stop attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attach {
    /// Symbol.
    pub symbol: SymbolId,
    /// Entry side.
    pub side: Side,
    /// Entry order type.
    pub order_type: OrderType,
    /// Entry shares.
    pub qty: u32,
    /// Entry limit (0 for market).
    pub limit_px_e9: i64,
    /// The stop price to attach.
    pub stop_px_e9: i64,
}

#[derive(Clone, Copy, Debug)]
struct Working {
    symbol: SymbolId,
    side: Side,
    kind: OrderType,
    px_e9: i64,
    leaves: u32,
}

/// The window's picture of the run's orders, built from the observed flow.
#[derive(Debug, Default)]
pub struct Book {
    /// Fills per symbol id, in order.
    pub fills: Vec<Vec<FillMark>>,
    working: HashMap<u64, Working>,
    manual: HashSet<u64>,
    /// Entries sent with a stop to attach, not yet matched to an order id.
    pub pending: Vec<Attach>,
    attach: HashMap<u64, Attach>,
    /// Orders risk accepted.
    pub orders: u64,
    /// Fills.
    pub fill_count: u64,
    /// Orders rejected (risk or venue).
    pub rejects: u64,
    /// Manual orders accepted by risk.
    pub manual_orders: u64,
    /// Manual orders rejected.
    pub manual_rejects: u64,
    /// New lines for the message area (the window takes them).
    pub messages: VecDeque<Message>,
}

fn side_str(s: Side) -> &'static str {
    if s == Side::Buy { "buy" } else { "sell" }
}

fn order_str(o: &Order, names: &[String]) -> String {
    let sym = names.get(o.symbol.0 as usize).map_or("?", String::as_str);
    let side = o.side().map_or("?", side_str);
    let px = match o.kind() {
        Some(OrderType::Limit) => format!("LMT {}", crate::chart::fmt_price(o.limit_px_e9, 2)),
        Some(OrderType::Stop) => format!("STP {}", crate::chart::fmt_price(o.stop_px_e9, 2)),
        _ => "MKT".to_string(),
    };
    format!("{side} {} {sym} {px}", o.qty)
}

impl Book {
    /// Apply one flow message; returns the events to send for it (attached stops whose entry
    /// filled). `names` are the symbol names by id.
    pub fn apply(&mut self, f: &Flow, names: &[String]) -> Vec<Event> {
        let mut out = Vec::new();
        match &f.body {
            FlowBody::Decision { order, reason, ts: _ } | FlowBody::Replace { order, reason, ts: _ } => {
                let replace = matches!(f.body, FlowBody::Replace { .. });
                let manual = order.tag == MANUAL_TAG;
                if manual && !replace {
                    self.manual.insert(order.order_id.0);
                    let key = |a: &Attach| {
                        a.symbol == order.symbol
                            && Some(a.side) == order.side()
                            && Some(a.order_type) == order.kind()
                            && a.qty == order.qty
                            && a.limit_px_e9 == order.limit_px_e9
                    };
                    if let Some(k) = self.pending.iter().position(key) {
                        let a = self.pending.remove(k);
                        if *reason == Reason::None {
                            self.attach.insert(order.order_id.0, a);
                        }
                    }
                }
                if *reason == Reason::None {
                    if !replace {
                        self.orders += 1;
                        if manual {
                            self.manual_orders += 1;
                            self.messages
                                .push_back(Message { text: format!("sent {}", order_str(order, names)), error: false });
                        }
                    }
                    if let (Some(side), Some(kind)) = (order.side(), order.kind())
                        && kind != OrderType::Market
                    {
                        let px_e9 = if kind == OrderType::Limit { order.limit_px_e9 } else { order.stop_px_e9 };
                        let leaves = self.working.get(&order.order_id.0).map_or(order.qty, |w| w.leaves.min(order.qty));
                        self.working
                            .insert(order.order_id.0, Working { symbol: order.symbol, side, kind, px_e9, leaves });
                    }
                } else {
                    self.rejects += 1;
                    if manual {
                        self.manual_rejects += 1;
                        self.messages.push_back(Message {
                            text: format!("REJECTED {}: {}", order_str(order, names), reason.as_str()),
                            error: true,
                        });
                    }
                }
            }
            FlowBody::Report(r) => {
                let Some(kind) = r.exec_kind() else { return out };
                let id = r.order_id.0;
                if kind.is_fill()
                    && let Some(side) = r.exec_side()
                {
                    let i = r.symbol.0 as usize;
                    if self.fills.len() <= i {
                        self.fills.resize_with(i + 1, Vec::new);
                    }
                    self.fills[i].push(FillMark { ts_ns: r.ts_event_ns, side, qty: r.fill_qty, px_e9: r.fill_px_e9 });
                    self.fill_count += 1;
                    if self.manual.contains(&id) {
                        let sym = names.get(i).map_or("?", String::as_str);
                        let px = crate::chart::fmt_price(r.fill_px_e9, 2);
                        self.messages.push_back(Message {
                            text: format!("filled {} {} {sym} @ {px}", side_str(side), r.fill_qty),
                            error: false,
                        });
                    }
                    if let Some(w) = self.working.get_mut(&id) {
                        w.leaves = r.leaves_qty;
                    }
                    if let Some(a) = self.attach.get(&id).copied() {
                        let exit = if a.side == Side::Buy { Side::Sell } else { Side::Buy };
                        out.push(Event::manual_order(
                            a.symbol,
                            exit,
                            OrderType::Stop,
                            r.fill_qty,
                            0,
                            a.stop_px_e9,
                            r.ts_event_ns,
                        ));
                        self.pending.push(Attach {
                            side: exit,
                            order_type: OrderType::Stop,
                            qty: r.fill_qty,
                            limit_px_e9: 0,
                            stop_px_e9: a.stop_px_e9,
                            ..a
                        });
                        if r.leaves_qty == 0 {
                            self.attach.remove(&id);
                        }
                    }
                }
                if kind == ExecKind::Replaced
                    && let Some(w) = self.working.get_mut(&id)
                {
                    w.leaves = r.leaves_qty;
                }
                if kind.is_terminal() || (kind.is_fill() && r.leaves_qty == 0) {
                    self.working.remove(&id);
                    if kind != ExecKind::Filled {
                        self.attach.remove(&id);
                    }
                }
                if kind == ExecKind::Rejected {
                    self.rejects += 1;
                    if self.manual.contains(&id) {
                        self.manual_rejects += 1;
                        let sym = names.get(r.symbol.0 as usize).map_or("?", String::as_str);
                        let why = r.exec_reason().map_or("?", Reason::as_str);
                        self.messages
                            .push_back(Message { text: format!("REJECTED {sym} order {id}: {why}"), error: true });
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Working limit and stop orders of `symbol`, for its chart.
    pub fn working_of(&self, symbol: SymbolId) -> Vec<WorkingMark> {
        let mut v: Vec<WorkingMark> = self
            .working
            .values()
            .filter(|w| w.symbol == symbol && w.leaves > 0)
            .map(|w| WorkingMark { side: w.side, stop: w.kind == OrderType::Stop, qty: w.leaves, px_e9: w.px_e9 })
            .collect();
        v.sort_by_key(|w| std::cmp::Reverse(w.px_e9));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::records::{ExecReport, OrderId, PX_SCALE};

    fn order(id: u64, side: Side, kind: OrderType, qty: u32, px: i64, tag: u32) -> Order {
        Order {
            order_id: OrderId(id),
            limit_px_e9: if kind == OrderType::Limit { px } else { 0 },
            stop_px_e9: if kind == OrderType::Stop { px } else { 0 },
            symbol: SymbolId(0),
            qty,
            side: side.raw(),
            order_type: kind.raw(),
            tag,
            ..Default::default()
        }
    }

    fn report(id: u64, kind: ExecKind, side: Side, fill: u32, leaves: u32, px: i64, reason: Reason) -> Flow {
        let r = ExecReport {
            ts_event_ns: 5,
            order_id: OrderId(id),
            fill_px_e9: px,
            symbol: SymbolId(0),
            fill_qty: fill,
            leaves_qty: leaves,
            kind: kind.raw(),
            side: side.raw(),
            reason: reason.raw(),
            ..Default::default()
        };
        Flow { seq: 1, body: FlowBody::Report(r) }
    }

    #[test]
    fn the_book_follows_orders_fills_rejections_and_sends_attached_stops() {
        let names = vec!["SPY".to_string()];
        let mut b = Book::default();
        let px = 100 * PX_SCALE;
        // A manual limit buy with a stop to attach at 98.
        b.pending.push(Attach {
            symbol: SymbolId(0),
            side: Side::Buy,
            order_type: OrderType::Limit,
            qty: 50,
            limit_px_e9: px,
            stop_px_e9: 98 * PX_SCALE,
        });
        let o = order(7, Side::Buy, OrderType::Limit, 50, px, MANUAL_TAG);
        assert!(
            b.apply(&Flow { seq: 1, body: FlowBody::Decision { order: o, reason: Reason::None, ts: 1 } }, &names)
                .is_empty()
        );
        assert_eq!(b.working_of(SymbolId(0)), vec![WorkingMark { side: Side::Buy, stop: false, qty: 50, px_e9: px }]);
        assert_eq!(b.messages.pop_front().unwrap().text, "sent buy 50 SPY LMT 100.00");
        // It fills: the working line goes, a fill mark comes, the stop is sent for 50 shares.
        let sent = b.apply(&report(7, ExecKind::Filled, Side::Buy, 50, 0, px, Reason::None), &names);
        assert_eq!(b.messages.pop_front().unwrap().text, "filled buy 50 SPY @ 100.00");
        assert!(b.working_of(SymbolId(0)).is_empty());
        assert_eq!(b.fills[0], vec![FillMark { ts_ns: 5, side: Side::Buy, qty: 50, px_e9: px }]);
        assert_eq!(sent.len(), 1);
        let c = sent[0].as_control().unwrap();
        assert_eq!(c.args[0], 50 | (i64::from(Side::Sell.raw()) << 32) | (i64::from(OrderType::Stop.raw()) << 40));
        assert_eq!(c.args[2], 98 * PX_SCALE);
        // A manual order risk rejects: counted and shown with the reason.
        let big = order(8, Side::Buy, OrderType::Market, 9_999, 0, MANUAL_TAG);
        b.apply(&Flow { seq: 2, body: FlowBody::Decision { order: big, reason: Reason::MaxPosition, ts: 2 } }, &names);
        assert_eq!((b.manual_rejects, b.rejects, b.orders), (1, 1, 1));
        let m = b.messages.pop_front().unwrap();
        assert_eq!((m.text.as_str(), m.error), ("REJECTED buy 9999 SPY MKT: max_position", true));
        // A strategy's rejected order is counted but not shown.
        let s = order(9, Side::Sell, OrderType::Market, 1, 0, 0);
        b.apply(&Flow { seq: 3, body: FlowBody::Decision { order: s, reason: Reason::MaxPosition, ts: 3 } }, &names);
        assert_eq!((b.rejects, b.messages.len()), (2, 0));
    }
}
