//! A venue on another thread: the engine side of a broker gateway.
//!
//! [`RemoteVenue`] implements [`Venue`] for execution by queueing [`VenueCommand`]s to a gateway
//! thread ([`GatewayPort::next`]), never waiting: a full queue refuses the order at once
//! (`Rejected`, reason `venue_rejected`, counted). It reports nothing itself. The gateway speaks
//! to the broker and pushes every answer (accepted, fills, cancels, rejections, replaces) into
//! the sequencer's ingress as [`Event::exec`] events ([`GatewayPort::report`]), so broker reports
//! take their place in the one total order, are journaled as inputs and replay exactly.
//!
//! ```text
//!  risk -> execution -> RemoteVenue --(VenueCommand queue)--> gateway thread --> broker
//!                                                              |
//!  sequencer <--------------(Ingress: Exec events)-------------+
//! ```

use super::Venue;
use crate::pipeline::{Ingress, IngressFull};
use crate::records::{Bar, Event, ExecKind, ExecReport, Order, OrderId, Reason, SymbolId};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What execution asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueCommand {
    /// Place an order (risk accepted it at `ts_ns`).
    Submit {
        /// The order (its id is the broker's client order id, with the session prefix).
        order: Order,
        /// Placement time, ns.
        ts_ns: i64,
    },
    /// Cancel a working order.
    Cancel {
        /// The order.
        id: OrderId,
        /// Its symbol.
        symbol: SymbolId,
        /// Request time, ns.
        ts_ns: i64,
        /// Why (requested, timeout, end of run, ...).
        reason: Reason,
    },
    /// Change a working order (new total quantity; a 0 price keeps the old one).
    Replace {
        /// The order.
        id: OrderId,
        /// Its symbol.
        symbol: SymbolId,
        /// New total quantity.
        qty: u32,
        /// New limit price (0: unchanged).
        limit_px_e9: i64,
        /// New stop price (0: unchanged).
        stop_px_e9: i64,
        /// Request time, ns.
        ts_ns: i64,
    },
}

#[derive(Debug)]
struct Shared {
    commands: ArrayQueue<VenueCommand>,
    refused: AtomicU64,
}

/// The engine's side: a [`Venue`] that forwards to a gateway thread.
#[derive(Debug)]
pub struct RemoteVenue {
    name: &'static str,
    shared: Arc<Shared>,
}

/// The gateway thread's side: commands in, reports out.
#[derive(Debug, Clone)]
pub struct GatewayPort {
    shared: Arc<Shared>,
    ingress: Ingress,
}

/// A venue named `name` (for summaries) and the port its gateway thread uses; `capacity`
/// commands may wait before orders are refused.
pub fn remote_venue(name: &'static str, capacity: usize, ingress: Ingress) -> (RemoteVenue, GatewayPort) {
    let shared = Arc::new(Shared { commands: ArrayQueue::new(capacity.max(1)), refused: AtomicU64::new(0) });
    (RemoteVenue { name, shared: Arc::clone(&shared) }, GatewayPort { shared, ingress })
}

impl RemoteVenue {
    /// Commands refused because the gateway's queue was full.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    fn send(&self, cmd: VenueCommand) -> bool {
        if self.shared.commands.push(cmd).is_ok() {
            return true;
        }
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
        false
    }
}

impl GatewayPort {
    /// The next command from execution, if any.
    pub fn next(&self) -> Option<VenueCommand> {
        self.shared.commands.pop()
    }

    /// Hand a broker report to the engine (received at `ts_recv_ns`). Waits while the ingress is
    /// full; `Err` once the run has ended.
    pub fn report(&self, r: &ExecReport, ts_recv_ns: i64) -> Result<(), IngressFull> {
        self.ingress.push(Event::exec(r, ts_recv_ns))
    }

    /// Commands refused because the queue was full.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Hand the engine a control event of the broker's (a reconcile's [`Event::reconcile`], an
    /// order taken over with [`Event::adopt_order`]). Waits while the ingress is full; `Err` once
    /// the run has ended.
    pub fn control(&self, ev: Event) -> Result<(), IngressFull> {
        self.ingress.push(ev)
    }

    /// The ingress the gateway reports into (e.g. for a shutdown's [`Event::halt`]).
    pub fn ingress(&self) -> &Ingress {
        &self.ingress
    }
}

fn refusal(order_id: OrderId, symbol: SymbolId, side: u8, kind: ExecKind, ts_ns: i64) -> ExecReport {
    ExecReport {
        ts_event_ns: ts_ns,
        order_id,
        symbol,
        kind: kind.raw(),
        side,
        reason: Reason::VenueRejected.raw(),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)] // the trait's replace
impl Venue for RemoteVenue {
    fn name(&self) -> &'static str {
        self.name
    }
    fn simulated(&self) -> bool {
        false
    }
    fn ensure_symbols(&mut self, _n: usize) {}
    fn submit(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        if !self.send(VenueCommand::Submit { order: *order, ts_ns }) {
            out.push(refusal(order.order_id, order.symbol, order.side, ExecKind::Rejected, ts_ns));
        }
    }
    fn cancel(&mut self, id: OrderId, symbol: SymbolId, ts_ns: i64, reason: Reason, out: &mut Vec<ExecReport>) {
        if !self.send(VenueCommand::Cancel { id, symbol, ts_ns, reason }) {
            out.push(refusal(id, symbol, 0, ExecKind::CancelRejected, ts_ns));
        }
    }
    fn replace(
        &mut self,
        id: OrderId,
        symbol: SymbolId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
        out: &mut Vec<ExecReport>,
    ) {
        if !self.send(VenueCommand::Replace { id, symbol, qty, limit_px_e9, stop_px_e9, ts_ns }) {
            out.push(refusal(id, symbol, 0, ExecKind::ReplaceRejected, ts_ns));
        }
    }
    fn on_bar(&mut self, _symbol: SymbolId, _bar: &Bar, _out: &mut Vec<ExecReport>) {}
    fn on_timer(&mut self, _ts_ns: i64, _out: &mut Vec<ExecReport>) {}
    fn has_working(&self, _symbol: SymbolId) -> bool {
        false // the broker knows; execution tracks what it sent
    }
    fn close_out(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        self.submit(order, ts_ns, out);
    }
}

/// A broker venue on replay: the broker's reports of the recorded run are inputs of its journal
/// (exec events), so this venue sends nothing and reports nothing; execution and risk see the
/// same reports at the same places in the total order as they did live. `name` is the recorded
/// venue's, so the replay's summary names it too.
#[derive(Debug, Clone, Copy)]
pub struct JournaledVenue {
    /// The recorded venue's name (`alpaca`).
    pub name: &'static str,
}

#[allow(clippy::too_many_arguments)] // the trait's replace
impl Venue for JournaledVenue {
    fn name(&self) -> &'static str {
        self.name
    }
    fn simulated(&self) -> bool {
        false
    }
    fn ensure_symbols(&mut self, _n: usize) {}
    fn submit(&mut self, _order: &Order, _ts_ns: i64, _out: &mut Vec<ExecReport>) {}
    fn cancel(&mut self, _id: OrderId, _s: SymbolId, _ts_ns: i64, _reason: Reason, _out: &mut Vec<ExecReport>) {}
    fn replace(&mut self, _: OrderId, _: SymbolId, _: u32, _: i64, _: i64, _: i64, _: &mut Vec<ExecReport>) {}
    fn on_bar(&mut self, _symbol: SymbolId, _bar: &Bar, _out: &mut Vec<ExecReport>) {}
    fn on_timer(&mut self, _ts_ns: i64, _out: &mut Vec<ExecReport>) {}
    fn has_working(&self, _symbol: SymbolId) -> bool {
        false
    }
    fn close_out(&mut self, _order: &Order, _ts_ns: i64, _out: &mut Vec<ExecReport>) {}
}
