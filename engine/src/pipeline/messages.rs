//! Messages on the side queues between stages, and the journal's record format.

use crate::records::{Event, ExecReport, Order, OrderId, Reason, SymbolId};

/// Shard -> risk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ToRisk {
    /// A new order from a strategy, with the decision the shard computed itself when risk has
    /// only per-symbol limits (`u16::MAX` when it waits for risk instead).
    Intent { order: Order, placed_ns: i64, predicted: u16 },
    /// The strategy asked to cancel an order.
    Cancel { id: OrderId, symbol: SymbolId, ts: i64 },
    /// A simulated-venue report (fill, cancel, expiry).
    Report(ExecReport),
}

/// A shard message tagged with the sequence of the event that caused it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RiskMsg {
    pub seq: u64,
    pub body: ToRisk,
}

/// Risk -> shard.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ToShard {
    /// Risk's decision on an intent.
    Decision { order: Order, placed_ns: i64, reason: Reason },
    /// Something risk did to the symbol on its own (daily-loss flattening fills).
    Notice(ExecReport),
}

/// A risk message tagged with the sequence at which risk produced it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardMsg {
    pub seq: u64,
    pub body: ToShard,
}

/// What risk passes to execution and the journal, in sequence order.
#[derive(Debug, Clone, Copy)]
pub enum FlowBody {
    /// An input event (all inputs in `journal.inputs = "all"` mode; control and venue events always).
    Input(Event),
    /// Risk's decision on a strategy's order (`Reason::None` = accepted).
    Decision {
        /// The order as the strategy asked for it.
        order: Order,
        /// Accepted (`None`) or why not.
        reason: Reason,
        /// Event time of the decision.
        ts: i64,
    },
    /// A strategy asked to cancel an order.
    Cancel {
        /// The order.
        id: OrderId,
        /// Its symbol.
        symbol: SymbolId,
        /// Event time.
        ts: i64,
    },
    /// An execution report.
    Report(ExecReport),
}

/// One step of the decision flow.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Sequence of the event that caused it.
    pub seq: u64,
    /// What happened.
    pub body: FlowBody,
}

/// Journal file magic.
pub const JOURNAL_MAGIC: [u8; 8] = *b"RTJRNL\0\x01";
/// Journal record size in bytes.
pub const JOURNAL_RECORD: usize = 72;

/// Journal record kinds.
pub mod jkind {
    /// An input event; `sub` is its [`crate::records::EventKind`], `aux` the bar interval.
    pub const INPUT: u8 = 1;
    /// A risk decision; payload is the [`crate::records::Order`], `aux` the reason.
    pub const DECISION: u8 = 2;
    /// A cancel request; payload word 0 is the order id.
    pub const CANCEL: u8 = 3;
    /// An execution report; payload is the [`crate::records::ExecReport`].
    pub const REPORT: u8 = 4;
}

impl Flow {
    /// Encode as a 72-byte journal record:
    /// `seq u64 | ts i64 | kind u8 | sub u8 | aux u16 | symbol u32 | payload [u64; 6]`.
    pub fn encode(&self) -> [u8; JOURNAL_RECORD] {
        let (ts, kind, sub, aux, symbol, payload): (i64, u8, u8, u16, u32, [u64; 6]) = match &self.body {
            FlowBody::Input(e) => (e.ts_recv_ns, jkind::INPUT, e.kind, e.interval_s, e.symbol.0, e.payload),
            FlowBody::Decision { order, reason, ts } => {
                (*ts, jkind::DECISION, 0, reason.raw(), order.symbol.0, bytemuck::cast(*order))
            }
            FlowBody::Cancel { id, symbol, ts } => (*ts, jkind::CANCEL, 0, 0, symbol.0, [id.0, 0, 0, 0, 0, 0]),
            FlowBody::Report(r) => (r.ts_event_ns, jkind::REPORT, r.kind, r.reason, r.symbol.0, bytemuck::cast(*r)),
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
