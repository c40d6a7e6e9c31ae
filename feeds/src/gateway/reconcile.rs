//! Reconciles: live orders read back, an earlier session's orders taken over, positions
//! compared with the broker's (see the module docs of [`super`]).

use super::book::Entry;
use super::{Broker, Shared};
use crate::broker::BrokerOrder;
use crate::feed::LogLevel;
use engine::records::{Event, Order, OrderId, OrderType, ReconcilePolicy, SymbolId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Read back every live order, take over (at start) ringtape's own orders of an earlier session,
/// then compare positions; see the module docs.
pub(super) fn reconcile(s: &Shared, broker: &dyn Broker, at_start: bool) {
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
