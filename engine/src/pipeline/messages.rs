//! Messages between stages, and the decision flow that risk hands to the recorder.
//!
//! Every message is tagged with the sequence number of the event that caused it, so a stage can
//! tell exactly which messages belong before a given event: that is what makes results identical
//! across topologies and shard counts.

use crate::records::{Event, EventKind, ExecReport, Lifecycle, Order, OrderId, Reason, SymbolId};

/// Shard -> risk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ToRisk {
    /// A new order from a strategy (or the shard's own flattening order on removal); `at` is
    /// when the shard emitted it ([`super::probes::metrics_clock_ns`], 0 unless probes are on).
    Intent { order: Order, placed_ns: i64, at: u64 },
    /// Cancel an order.
    Cancel { id: OrderId, symbol: SymbolId, ts: i64, reason: Reason },
    /// Change a working order (new total quantity; a 0 price keeps the old one).
    Replace { id: OrderId, symbol: SymbolId, qty: u32, limit_px_e9: i64, stop_px_e9: i64, ts: i64 },
    /// A step in a symbol's life (added, removing, removed, faulted); `name` set for `Added`.
    Lifecycle { symbol: SymbolId, step: Lifecycle, policy: u8, ts: i64, name: [i64; 4] },
}

impl ToRisk {
    /// The symbol the message concerns (messages of one event are applied in symbol order).
    pub fn symbol(&self) -> SymbolId {
        match self {
            ToRisk::Intent { order, .. } => order.symbol,
            ToRisk::Cancel { symbol, .. } | ToRisk::Replace { symbol, .. } | ToRisk::Lifecycle { symbol, .. } => {
                *symbol
            }
        }
    }
}

/// A shard message tagged with the sequence of the event that caused it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RiskMsg {
    pub seq: u64,
    pub body: ToRisk,
}

/// Risk/execution -> shard: an execution report for one of the shard's symbols. `before` marks
/// reports made while handling the market data of event `seq` itself (fills on that bar, expiries
/// on that tick): the strategy sees them before its callback for `seq`. The others are delivered
/// before the symbol's next event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardMsg {
    pub seq: u64,
    pub before: bool,
    pub report: ExecReport,
}

/// An input as the journal keeps it: the event without the ring's 64-byte alignment.
#[derive(Debug, Clone, Copy)]
pub struct InputRec {
    /// Receive time.
    pub ts_recv_ns: i64,
    /// Symbol.
    pub symbol: SymbolId,
    /// Raw [`EventKind`].
    pub kind: u8,
    /// Bar interval (seconds, bars only).
    pub interval_s: u16,
    /// The record.
    pub payload: [u64; 6],
}

impl From<&Event> for InputRec {
    fn from(e: &Event) -> Self {
        InputRec {
            ts_recv_ns: e.ts_recv_ns,
            symbol: e.symbol,
            kind: e.kind,
            interval_s: e.interval_s,
            payload: e.payload,
        }
    }
}

impl InputRec {
    /// Back to a ring event.
    pub fn to_event(&self) -> Event {
        Event {
            ts_recv_ns: self.ts_recv_ns,
            symbol: self.symbol,
            kind: self.kind,
            _pad: 0,
            interval_s: self.interval_s,
            payload: self.payload,
        }
    }
    /// True for a clock tick.
    pub fn is_timer(&self) -> bool {
        self.kind == EventKind::Timer.raw()
    }
}

/// What risk passes to the recorder (positions and journal), in sequence order.
#[derive(Debug, Clone, Copy)]
pub enum FlowBody {
    /// An input event (all inputs in `journal.inputs = "all"` mode; control and venue events always).
    Input(InputRec),
    /// Risk's decision on an order (`Reason::None` = accepted by risk, not yet by the venue).
    Decision {
        /// The order as asked for.
        order: Order,
        /// Accepted (`None`) or why not.
        reason: Reason,
        /// Event time of the decision.
        ts: i64,
    },
    /// Risk's decision on a replace request: `order` is the order as it would be after the
    /// change (same id, new total quantity and prices). Journaled as a decision record with
    /// `sub` = 1.
    Replace {
        /// The changed order.
        order: Order,
        /// Accepted (`None`) or why not.
        reason: Reason,
        /// Event time of the decision.
        ts: i64,
    },
    /// A cancel request sent to the venue.
    Cancel {
        /// The order.
        id: OrderId,
        /// Its symbol.
        symbol: SymbolId,
        /// Event time.
        ts: i64,
    },
    /// An execution report from the venue.
    Report(ExecReport),
    /// A step in a symbol's life; `name` is set for `Added`.
    Lifecycle {
        /// The symbol.
        symbol: SymbolId,
        /// The step.
        step: Lifecycle,
        /// Raw removal policy (0 when not a removal).
        policy: u8,
        /// Event time.
        ts: i64,
        /// Symbol name (NUL padded), for `Added`.
        name: [i64; 4],
    },
}

/// One step of the decision flow.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Sequence of the event that caused it.
    pub seq: u64,
    /// What happened.
    pub body: FlowBody,
}

/// The journal format's constants live with its reader (one definition).
pub use crate::journal::{MAGIC as JOURNAL_MAGIC, RECORD_SIZE as JOURNAL_RECORD, VERSION as JOURNAL_VERSION};

/// Journal record kinds.
pub mod jkind {
    /// An input event; `sub` is its [`crate::records::EventKind`], `aux` the bar interval.
    pub const INPUT: u8 = 1;
    /// A risk decision; payload is the [`crate::records::Order`], `aux` the reason, `sub` 0 for
    /// a new order and 1 for a replace (the order as changed).
    pub const DECISION: u8 = 2;
    /// A cancel request; payload word 0 is the order id.
    pub const CANCEL: u8 = 3;
    /// An execution report; payload is the [`crate::records::ExecReport`].
    pub const REPORT: u8 = 4;
    /// A symbol lifecycle step: `sub` the [`crate::records::Lifecycle`], `aux` the removal
    /// policy, payload bytes 0..32 the symbol name for `added`.
    pub const LIFECYCLE: u8 = 5;
    /// A clock tick: ts is its time, `aux` 0 for event time, 1 for the wall clock.
    pub const TIMER: u8 = 6;
}

impl Flow {
    /// Encode as a 72-byte journal record:
    /// `seq u64 | ts i64 | kind u8 | sub u8 | aux u16 | symbol u32 | payload [u64; 6]`.
    pub fn encode(&self) -> [u8; JOURNAL_RECORD] {
        let (ts, kind, sub, aux, symbol, payload): (i64, u8, u8, u16, u32, [u64; 6]) = match &self.body {
            FlowBody::Input(e) if e.is_timer() => {
                (e.ts_recv_ns, jkind::TIMER, 0, e.payload[1] as u16, u32::MAX, e.payload)
            }
            FlowBody::Input(e) => (e.ts_recv_ns, jkind::INPUT, e.kind, e.interval_s, e.symbol.0, e.payload),
            FlowBody::Decision { order, reason, ts } => {
                (*ts, jkind::DECISION, 0, reason.raw(), order.symbol.0, bytemuck::cast(*order))
            }
            FlowBody::Replace { order, reason, ts } => {
                (*ts, jkind::DECISION, 1, reason.raw(), order.symbol.0, bytemuck::cast(*order))
            }
            FlowBody::Cancel { id, symbol, ts } => (*ts, jkind::CANCEL, 0, 0, symbol.0, [id.0, 0, 0, 0, 0, 0]),
            FlowBody::Report(r) => (r.ts_event_ns, jkind::REPORT, r.kind, r.reason, r.symbol.0, bytemuck::cast(*r)),
            FlowBody::Lifecycle { symbol, step, policy, ts, name } => {
                let n: [u64; 4] = bytemuck::cast(*name);
                (*ts, jkind::LIFECYCLE, step.raw(), u16::from(*policy), symbol.0, [n[0], n[1], n[2], n[3], 0, 0])
            }
        };
        let mut out = [0u8; JOURNAL_RECORD];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&ts.to_le_bytes());
        out[16] = kind;
        out[17] = sub;
        out[18..20].copy_from_slice(&aux.to_le_bytes());
        out[20..24].copy_from_slice(&symbol.to_le_bytes());
        out[24..72].copy_from_slice(bytemuck::bytes_of(&payload));
        out
    }
}
