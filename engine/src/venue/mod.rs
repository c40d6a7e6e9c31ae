//! The venue seam and the simulated venue.
//!
//! Execution talks to a venue only through the [`Venue`] trait (submit, cancel, replace; reports
//! come back as execution events). [`SimVenue`] (in `sim.rs`) is the simulated one for backtests and
//! `paper --demo`; a broker gateway is another implementation whose reports arrive later through
//! the sequencer.
//!
//! # Fill rules (one symbol, one bar at a time, orders in placement order)
//! An order placed while handling bar *i* can first fill on bar *i + 1* (the next bar of the same
//! symbol): it only matches bars that start at or after its placement time (no look-ahead). On a
//! clock tick, working orders whose timeout has passed expire. On each bar, a working order:
//! - **expires** first if its timeout has passed at the bar's start (`bar.ts >= placed + timeout`);
//! - **market**: fills at the bar's open, plus slippage against the taker;
//! - **limit buy at L**: fills at the open if `open <= L` (the market gapped through: the better
//!   price), else at `L` if `low <= L`; a sell limit mirrors it (`open >= L`, else `high >= L`).
//!   No slippage on limits;
//! - **stop buy at S**: triggers and fills at the open if `open >= S` (gap: the worse price), else
//!   at `S` if `high >= S`, plus slippage; a sell stop mirrors it (`open <= S`, else `low <= S`);
//! - with a participation cap (`max_volume_ppm > 0`) and a bar that reports volume, at most
//!   `volume * ppm / 1e6` shares fill per bar (at least 1); the rest stays working
//!   (partially filled). Bars with zero volume (index data) are not capped.
//!
//! Commission is `qty * commission_per_share` on every fill. Slippage is a pluggable
//! [`Slippage`] model; the same seed and inputs always give the same fills.

mod remote;
mod sim;

pub use remote::{GatewayPort, JournaledVenue, RemoteVenue, VenueCommand, remote_venue};
pub use sim::{SimBook, SimVenue};

use crate::records::{Bar, ExecReport, Order, OrderId, Reason, Side, SymbolId};

/// A slippage model: adjusts a taker fill price against the order.
pub trait Slippage: Send + std::fmt::Debug {
    /// The price actually paid/received when an order of `side` fills at reference `px_e9`.
    fn apply(&mut self, side: Side, px_e9: i64) -> i64;
}

/// No slippage.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSlippage;
impl Slippage for NoSlippage {
    fn apply(&mut self, _side: Side, px_e9: i64) -> i64 {
        px_e9
    }
}

/// A fixed cost in basis points of the price, against the taker.
#[derive(Debug, Clone, Copy)]
pub struct BpsSlippage(pub u32);
impl Slippage for BpsSlippage {
    fn apply(&mut self, side: Side, px_e9: i64) -> i64 {
        let slip = (i128::from(px_e9) * i128::from(self.0) / 10_000) as i64;
        px_e9 + side.sign() * slip
    }
}

/// A fixed amount per share (e.g. one cent), against the taker.
#[derive(Debug, Clone, Copy)]
pub struct FixedSlippage(pub i64);
impl Slippage for FixedSlippage {
    fn apply(&mut self, side: Side, px_e9: i64) -> i64 {
        px_e9 + side.sign() * self.0
    }
}

/// Slippage model selection (config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum SlippageConfig {
    /// None.
    #[default]
    None,
    /// Basis points of the price.
    Bps {
        /// Basis points.
        bps: u32,
    },
    /// Fixed amount per share, in 1e-9 USD.
    Fixed {
        /// Amount per share, 1e-9 USD.
        px_e9: i64,
    },
}

impl SlippageConfig {
    /// Build the model.
    pub fn build(&self) -> Box<dyn Slippage> {
        match *self {
            SlippageConfig::None => Box::new(NoSlippage),
            SlippageConfig::Bps { bps } => Box::new(BpsSlippage(bps)),
            SlippageConfig::Fixed { px_e9 } => Box::new(FixedSlippage(px_e9)),
        }
    }
}

/// Simulated venue settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenueConfig {
    /// Commission per share, 1e-9 USD (0.005 USD = 5_000_000).
    pub commission_per_share_e9: i64,
    /// Slippage model.
    pub slippage: SlippageConfig,
    /// Participation cap in parts per million of bar volume (0 = no cap).
    pub max_volume_ppm: u32,
    /// Seeded perturbations for Monte Carlo studies (all off by default).
    pub perturb: PerturbConfig,
}

impl Default for VenueConfig {
    fn default() -> Self {
        VenueConfig {
            commission_per_share_e9: 5_000_000,
            slippage: SlippageConfig::None,
            max_volume_ppm: 0,
            perturb: PerturbConfig::default(),
        }
    }
}

/// What a Monte Carlo study perturbs in the simulated venue (`[venue.perturb]`), each knob off at
/// 0. Every draw comes from a generator seeded by `seed` and the symbol, consumed in the symbol's
/// event order, so a seed gives the same run on every topology and machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerturbConfig {
    /// The study's seed for this run.
    pub seed: u64,
    /// Extra slippage against the taker on market and stop fills: |N(0, sd)| basis points of the
    /// price, drawn per fill.
    pub slippage_sd_bps: u32,
    /// A bid/ask spread, basis points: market and stop fills pay half of it; a limit fills only
    /// when the market trades through it by half the spread.
    pub spread_bps: u32,
    /// Order latency: an order can fill only from the bar after the next `latency_bars` bars it
    /// could have filled on (fills at a later bar and price).
    pub latency_bars: u32,
    /// Entries (orders that are not reduce-only) the venue misses: refused on arrival with
    /// `venue_rejected`, parts per million.
    pub miss_entry_ppm: u32,
    /// Fills that are partial (half the rest, at least one share) instead of complete, parts per
    /// million; the rest stays working.
    pub partial_fill_ppm: u32,
}

impl PerturbConfig {
    /// True when any knob is on.
    pub fn any(&self) -> bool {
        self.slippage_sd_bps > 0
            || self.spread_bps > 0
            || self.latency_bars > 0
            || self.miss_entry_ppm > 0
            || self.partial_fill_ppm > 0
    }
}

/// The seam between execution and whatever fills orders: the simulated venue, a local exchange's
/// paper broker, or a real broker. Execution calls it in sequence order; reports a venue can give
/// at once (a simulated venue's) go into `out`, the others arrive later as execution events
/// through the sequencer. Strategies and risk never see which venue it is.
pub trait Venue: Send + std::fmt::Debug {
    /// Short name for summaries (`sim`, `alpaca`).
    fn name(&self) -> &'static str;
    /// True when fills come from the market data the run sees (end-of-run close-outs then fill
    /// at the last price); false for brokers.
    fn simulated(&self) -> bool;
    /// Make room for symbol ids below `n` (the universe grew).
    fn ensure_symbols(&mut self, n: usize);
    /// Send an order risk accepted, placed at `ts_ns`.
    fn submit(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>);
    /// Ask to cancel a working order.
    fn cancel(&mut self, id: OrderId, symbol: SymbolId, ts_ns: i64, reason: Reason, out: &mut Vec<ExecReport>);
    /// Ask to change a working order's quantity (new total) and prices (0 keeps a price).
    #[allow(clippy::too_many_arguments)] // the order's identity plus the three things that change
    fn replace(
        &mut self,
        id: OrderId,
        symbol: SymbolId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
        out: &mut Vec<ExecReport>,
    );
    /// A bar of `symbol` closed (a simulated venue matches working orders against it).
    fn on_bar(&mut self, symbol: SymbolId, bar: &Bar, out: &mut Vec<ExecReport>);
    /// A clock tick: expire orders whose timeout has passed.
    fn on_timer(&mut self, ts_ns: i64, out: &mut Vec<ExecReport>);
    /// True when `symbol` has working orders at this venue.
    fn has_working(&self, symbol: SymbolId) -> bool;
    /// Close a position at the end of a simulated run: fill `order` (a reduce-only market
    /// order) at the symbol's last price. Brokers treat it as a market order.
    fn close_out(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>);
}
