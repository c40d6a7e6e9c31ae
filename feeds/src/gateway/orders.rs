//! The gateway's order thread: each command from execution becomes one REST call.

use super::book::Entry;
use super::{Broker, Shared, reason_of};
use crate::broker::{BrokerError, NewOrder};
use crate::feed::LogLevel;
use engine::records::{ExecKind, Order, OrderId, OrderType, Reason};
use engine::venue::VenueCommand;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) fn orders_loop(s: &Shared, broker: &dyn Broker) {
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

pub(super) fn submit(s: &Shared, broker: &dyn Broker, order: &Order) {
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
pub(super) fn broker_id(s: &Shared, broker: &dyn Broker, id: OrderId) -> Option<String> {
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

pub(super) fn cancel(s: &Shared, broker: &dyn Broker, id: OrderId, reason: Reason) {
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

pub(super) fn replace(s: &Shared, broker: &dyn Broker, id: OrderId, qty: u32, limit: i64, stop: i64) {
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
