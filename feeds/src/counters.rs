//! Per-feed counters: a plain `Copy` struct the transport exposes (and snapshots into metrics).

use crate::msg::{Reject, RejectKind};

/// Everything a feed counts. Decoders and [`crate::BarGates`] add to it; nothing resets it but
/// the owner. Invariants the tests check: every message lands in exactly one of `bars`, `quotes`,
/// `trades`, `control`, `unknown_types`, `unknown_symbols` or `parse_errors`; every bar offered to
/// a gate lands in exactly one of `new_windows`, `updated`, `duplicates`, `late`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Frames (websocket messages or REST pages) seen.
    pub frames: u64,
    /// Messages (array elements, REST bars) seen, including refused ones.
    pub messages: u64,
    /// Bars decoded (every kind).
    pub bars: u64,
    /// Of `bars`, Alpaca `u` updated bars.
    pub updated_bars: u64,
    /// Of `bars`, Alpaca `d` daily bars.
    pub daily_bars: u64,
    /// Quotes decoded.
    pub quotes: u64,
    /// Trades decoded.
    pub trades: u64,
    /// Control and status messages.
    pub control: u64,
    /// Messages of a type this layer does not handle (Alpaca `s`, `c`, `x`, `l`...): skipped.
    pub unknown_types: u64,
    /// Messages for a symbol not in the symbol map: dropped.
    pub unknown_symbols: u64,
    /// Refused frames and messages (every [`RejectKind`] except `UnknownSymbol`).
    pub parse_errors: u64,
    /// Refusals by kind, indexed by [`RejectKind::index`].
    pub rejects: [u64; RejectKind::COUNT],
    /// Gate: bars that opened a window not seen before.
    pub new_windows: u64,
    /// Gate: bars that replaced a pending window with different values.
    pub updated: u64,
    /// Gate: bars identical to the pending (or last released) bar of their window.
    pub duplicates: u64,
    /// Gate: bars for a window at or before the last released one (never re-released).
    pub late: u64,
    /// Gate: live bars that opened a window earlier than one already pending (out of order
    /// within the grace; released in order). Also in `new_windows`.
    pub reordered: u64,
    /// Gate: bars released, in window order.
    pub released: u64,
    /// Gate: times a released window did not follow the previous one directly.
    pub gaps_seen: u64,
    /// Gate: windows missing in those gaps (normal for minute bars: no trades, no bar).
    pub windows_missing: u64,
    /// Feed: bars released from history after a reconnect that the live stream had missed
    /// (gap backfill).
    pub gaps_filled: u64,
}

impl FeedCounters {
    /// Count a refusal.
    pub(crate) fn reject(&mut self, r: &Reject) {
        self.rejects[r.kind.index()] += 1;
        if r.kind == RejectKind::UnknownSymbol {
            self.unknown_symbols += 1;
        } else {
            self.parse_errors += 1;
        }
    }

    /// Refusals of one kind.
    pub fn rejected(&self, kind: RejectKind) -> u64 {
        self.rejects[kind.index()]
    }
}
