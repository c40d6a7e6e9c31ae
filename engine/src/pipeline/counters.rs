//! Run counters: updated by stages on rare events (the hot path keeps its own locals), read by
//! the monitor while the run goes and copied into the run's output at the end.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live values a status line shows while a run goes (the recorder updates them).
#[derive(Debug, Default)]
pub struct Gauges {
    /// Realized PnL of the whole run after commissions, 1e-9 USD.
    pub realized_pnl_e9: AtomicI64,
    /// Fills recorded.
    pub fills: AtomicU64,
    /// Orders risk accepted (strategies' and risk's own).
    pub orders: AtomicU64,
    /// Orders risk refused (any reason; `summary.json` has them by reason at the end).
    pub refused: AtomicU64,
}

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),+ $(,)?) => {
        /// Counters shared by all stages.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$m])* pub $name: AtomicU64,)+
            /// Values that go up and down (for a live status line; not in the snapshot).
            pub gauges: Gauges,
            /// Latency histograms and queue gauges (empty unless the run's probes are on; see
            /// [`super::RunSpec::probes`]).
            pub probes: super::probes::Probes,
        }

        /// A plain copy of [`Counters`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct CounterSnapshot {
            $($(#[$m])* pub $name: u64,)+
        }

        impl Counters {
            /// Copy the counters.
            pub fn snapshot(&self) -> CounterSnapshot {
                CounterSnapshot { $($name: self.$name.load(Ordering::Relaxed),)+ }
            }
        }
    };
}

counters! {
    /// Logical inputs taken by the sequencer (bars, quotes, control, ticks...).
    published,
    /// Times the sequencer found the main ring full (it waited; nothing is dropped).
    ring_full,
    /// Times a shard found its queue to risk full (it waited).
    full_shard_to_risk,
    /// Times risk found a queue to a shard full (it waited).
    full_risk_to_shard,
    /// Times risk found its queue to the recorder full (it waited).
    full_to_recorder,
    /// Times a shard waited for risk and execution to catch up with one of its symbols.
    shard_waits,
    /// Times risk waited for a shard.
    risk_waits,
    /// Strategies that panicked (their symbol is faulted).
    strategy_faults,
    /// Events with an unknown kind, or bar references that do not resolve (rejected).
    bad_events,
    /// Events for a symbol id that is not in the universe (rejected, never delivered).
    unknown_symbol,
    /// Inputs for a symbol already removed from the universe (rejected).
    removed_symbol_inputs,
    /// Intents emitted after the end of data (ignored).
    intents_after_end,
    /// Strategy report cascades cut at the depth limit.
    cascade_limit,
    /// Control events refused because the control ingress was full (the sender was told).
    control_rejected,
    /// Times a sender waited for room in the ingress (backpressure).
    ingress_waits,
    /// Clock ticks emitted.
    timer_ticks,
    /// Symbols added while the run went on.
    symbols_added,
    /// Symbols removed while the run went on.
    symbols_removed,
    /// Execution reports for orders execution does not know (counted, applied to positions).
    unknown_order_reports,
    /// Orders the venue refused (`Rejected` with reason `venue_rejected`: a broker's refusal, a
    /// full gateway queue, a simulated missed entry).
    venue_rejects,
    /// Reconciles where the broker's position differed from the run's ([`ControlKind::Reconcile`](crate::records::ControlKind::Reconcile)).
    reconcile_mismatches,
    /// Shares taken from the broker's view by reconciles under the adopt policy (absolute).
    reconcile_adopted_shares,
    /// Orders working at the broker taken over at start ([`ControlKind::AdoptOrder`](crate::records::ControlKind::AdoptOrder)).
    adopted_orders,
}
