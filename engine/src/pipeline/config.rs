//! Engine configuration (the `[pipeline]`, `[risk]`, `[venue]` and `[journal]` tables of the TOML
//! config file).

#[path = "config_check.rs"]
pub mod config_check;

use crate::risk::RiskConfig;
use crate::venue::VenueConfig;

/// How a stage waits when it has nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// Spin on dedicated cores, back off where threads share cores (decided at start).
    #[default]
    Auto,
    /// Busy-spin: lowest latency, needs a core per spinning stage.
    Spin,
    /// Spin briefly, then `sched_yield`.
    Yield,
    /// Spin, yield, then sleep with growing pauses (up to 200 µs): right when stages share cores.
    Backoff,
}

/// Which core each stage is pinned to. Empty means "decide at start".
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreMap {
    /// Sequencer core.
    pub sequencer: Option<usize>,
    /// One core per shard (shard i uses `shards[i % len]`).
    pub shards: Vec<usize>,
    /// Risk core.
    pub risk: Option<usize>,
    /// Execution core.
    pub exec: Option<usize>,
    /// Journal core.
    pub journal: Option<usize>,
}

/// How the stages are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// Pick for the run: `inline` for a replay of files (throughput per core), `threads` for
    /// live inputs (latency, stages on their own cores).
    #[default]
    Auto,
    /// The same stage code called in order on the calling thread: no rings, no threads.
    Inline,
    /// Pinned OS threads joined by the disruptor ring and queues.
    Threads,
}

impl Topology {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Auto => "auto",
            Topology::Inline => "inline",
            Topology::Threads => "threads",
        }
    }
}

/// The threaded pipeline's shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// `inline`, `threads` or `auto` (see [`Topology`]).
    pub topology: Topology,
    /// Clock tick period in milliseconds (0 = no ticks). Ticks come from event time in
    /// backtests and from the wall clock in live runs.
    pub timer_ms: u64,
    /// A stage that makes no progress for this long while it has work ends the run with an
    /// error naming it (threads topology; 0 = never).
    pub stall_timeout_ms: u64,
    /// Strategy shard threads (each symbol belongs to exactly one: `symbol id % shards`).
    pub shards: usize,
    /// Main ring slots (power of two).
    pub ring_size: usize,
    /// Capacity of each side queue (shard->risk, risk->shard, risk->exec, exec->journal).
    pub queue_size: usize,
    /// Wait strategy.
    pub wait: WaitKind,
    /// Pin threads: `true` pins from `cores` (or one stage per core when `cores` is empty and
    /// there are enough cores); `false` never pins.
    pub pin: bool,
    /// Explicit core map.
    pub cores: CoreMap,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            topology: Topology::Auto,
            timer_ms: 1000,
            stall_timeout_ms: 10_000,
            shards: 1,
            ring_size: 1 << 16,
            queue_size: 1 << 16,
            wait: WaitKind::Auto,
            pin: true,
            cores: CoreMap::default(),
        }
    }
}

/// What the journal records of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalInputs {
    /// Record every input event (live and paper runs need this to replay).
    All,
    /// Record control and venue events only; bar inputs are identified by the data set's file
    /// checksums in the journal's metadata (a backtest's inputs are its files).
    #[default]
    Reference,
}

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Which inputs are recorded.
    pub inputs: JournalInputs,
}

/// The whole engine configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Threads and rings.
    pub pipeline: PipelineConfig,
    /// Risk limits.
    pub risk: RiskConfig,
    /// Simulated venue.
    pub venue: VenueConfig,
    /// Journal.
    pub journal: JournalConfig,
}

impl RiskConfig {
    /// True when some limit depends on more than one symbol's state. Then shards wait for risk's
    /// decision on each order; otherwise they compute the same per-symbol decision themselves.
    pub fn is_portfolio_level(&self) -> bool {
        self.max_gross_notional_usd > 0
            || self.max_open_orders > 0
            || self.max_orders_per_sec > 0
            || self.max_daily_loss_usd > 0
            || self.one_active_trade
    }
}
