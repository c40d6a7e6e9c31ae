//! The simulated venue: deterministic matching of orders against bars.
//!
//! # Fill rules (one symbol, one bar at a time, orders in placement order)
//! An order placed while handling bar *i* can first fill on bar *i + 1* (the next bar of the same
//! symbol). On each bar, a working order:
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

use crate::records::{Bar, ExecKind, ExecReport, Order, OrderId, OrderType, Reason, Side};

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
}

impl Default for VenueConfig {
    fn default() -> Self {
        VenueConfig { commission_per_share_e9: 5_000_000, slippage: SlippageConfig::None, max_volume_ppm: 0 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Working {
    order: Order,
    placed_ns: i64,
    leaves: u32,
}

/// The working orders of one symbol and the rules that fill them.
#[derive(Debug)]
pub struct SimBook {
    working: Vec<Working>,
    slippage: Box<dyn Slippage>,
    commission_per_share_e9: i64,
    max_volume_ppm: u32,
}

impl SimBook {
    /// An empty book.
    pub fn new(cfg: &VenueConfig) -> Self {
        SimBook {
            working: Vec::with_capacity(8),
            slippage: cfg.slippage.build(),
            commission_per_share_e9: cfg.commission_per_share_e9,
            max_volume_ppm: cfg.max_volume_ppm,
        }
    }

    /// Number of working orders.
    pub fn len(&self) -> usize {
        self.working.len()
    }

    /// True when no order is working.
    pub fn is_empty(&self) -> bool {
        self.working.is_empty()
    }

    /// Start working an accepted order placed at `placed_ns`.
    pub fn add(&mut self, order: Order, placed_ns: i64) {
        self.working.push(Working { order, placed_ns, leaves: order.qty });
    }

    fn report(&self, w: &Working, ts: i64, kind: ExecKind, reason: Reason, qty: u32, px: i64) -> ExecReport {
        ExecReport {
            ts_event_ns: ts,
            order_id: w.order.order_id,
            fill_px_e9: px,
            commission_e9: i64::from(qty) * self.commission_per_share_e9,
            symbol: w.order.symbol,
            fill_qty: qty,
            leaves_qty: if kind.is_fill() { w.leaves - qty } else { 0 },
            kind: kind.raw(),
            side: w.order.side,
            reason: reason.raw(),
        }
    }

    /// Cancel one order; returns its report if it was working.
    pub fn cancel(&mut self, id: OrderId, ts: i64, reason: Reason) -> Option<ExecReport> {
        let i = self.working.iter().position(|w| w.order.order_id == id)?;
        let w = self.working.remove(i);
        Some(self.report(&w, ts, ExecKind::Canceled, reason, 0, 0))
    }

    /// Cancel everything, reporting each cancel to `out` in placement order.
    pub fn cancel_all(&mut self, ts: i64, reason: Reason, out: &mut impl FnMut(ExecReport)) {
        for w in std::mem::take(&mut self.working) {
            out(self.report(&w, ts, ExecKind::Canceled, reason, 0, 0));
        }
    }

    /// Match the working orders against `bar`, reporting fills and expiries to `out`.
    pub fn on_bar(&mut self, bar: &Bar, out: &mut impl FnMut(ExecReport)) {
        if self.working.is_empty() {
            return;
        }
        let ts = bar.ts_event_ns;
        let mut i = 0;
        while i < self.working.len() {
            let w = self.working[i];
            if w.order.timeout_ns > 0 && ts >= w.placed_ns.saturating_add(w.order.timeout_ns) {
                out(self.report(&w, ts, ExecKind::Expired, Reason::None, 0, 0));
                self.working.remove(i);
                continue;
            }
            let side = w.order.side().unwrap_or(Side::Buy);
            let px = match w.order.kind() {
                Some(OrderType::Market) => Some(self.slippage.apply(side, bar.open_px_e9)),
                Some(OrderType::Limit) => {
                    let l = w.order.limit_px_e9;
                    match side {
                        Side::Buy if bar.open_px_e9 <= l => Some(bar.open_px_e9),
                        Side::Buy if bar.low_px_e9 <= l => Some(l),
                        Side::Sell if bar.open_px_e9 >= l => Some(bar.open_px_e9),
                        Side::Sell if bar.high_px_e9 >= l => Some(l),
                        _ => None,
                    }
                }
                Some(OrderType::Stop) => {
                    let s = w.order.stop_px_e9;
                    let raw = match side {
                        Side::Buy if bar.open_px_e9 >= s => Some(bar.open_px_e9),
                        Side::Buy if bar.high_px_e9 >= s => Some(s),
                        Side::Sell if bar.open_px_e9 <= s => Some(bar.open_px_e9),
                        Side::Sell if bar.low_px_e9 <= s => Some(s),
                        _ => None,
                    };
                    raw.map(|p| self.slippage.apply(side, p))
                }
                None => None,
            };
            let Some(px) = px else {
                i += 1;
                continue;
            };
            let cap = if self.max_volume_ppm > 0 && bar.volume > 0 {
                let c = (u128::from(bar.volume) * u128::from(self.max_volume_ppm) / 1_000_000).max(1);
                u32::try_from(c).unwrap_or(u32::MAX)
            } else {
                u32::MAX
            };
            let qty = w.leaves.min(cap);
            let kind = if qty == w.leaves { ExecKind::Filled } else { ExecKind::PartiallyFilled };
            out(self.report(&w, ts, kind, Reason::None, qty, px));
            if kind == ExecKind::Filled {
                self.working.remove(i);
            } else {
                self.working[i].leaves -= qty;
                i += 1;
            }
        }
    }

    /// A fill of `qty` shares at `px_e9` outside the order book (end-of-run liquidation).
    pub fn liquidation(&self, order: Order, ts: i64, px_e9: i64) -> ExecReport {
        let w = Working { order, placed_ns: ts, leaves: order.qty };
        let mut r = self.report(&w, ts, ExecKind::Filled, Reason::EndOfRun, order.qty, px_e9);
        r.leaves_qty = 0;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::SymbolId;

    const D: i64 = 1_000_000_000; // one dollar

    fn bar(o: i64, h: i64, l: i64, c: i64, vol: u64) -> Bar {
        Bar {
            ts_event_ns: 1_000,
            open_px_e9: o * D,
            high_px_e9: h * D,
            low_px_e9: l * D,
            close_px_e9: c * D,
            volume: vol,
        }
    }

    fn order(id: u64, side: Side, t: OrderType, qty: u32, limit: i64, stop: i64) -> Order {
        Order {
            order_id: OrderId(id),
            limit_px_e9: limit * D,
            stop_px_e9: stop * D,
            symbol: SymbolId(0),
            qty,
            side: side.raw(),
            order_type: t.raw(),
            ..Default::default()
        }
    }

    fn run(book: &mut SimBook, b: &Bar) -> Vec<(u64, ExecKind, u32, i64)> {
        let mut v = Vec::new();
        book.on_bar(b, &mut |r| v.push((r.order_id.0, r.exec_kind().unwrap(), r.fill_qty, r.fill_px_e9 / D)));
        v
    }

    #[test]
    fn market_fills_at_open_with_commission() {
        let mut book = SimBook::new(&VenueConfig::default());
        book.add(order(1, Side::Buy, OrderType::Market, 100, 0, 0), 0);
        let mut rs = Vec::new();
        book.on_bar(&bar(10, 12, 9, 11, 0), &mut |r| rs.push(r));
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].fill_px_e9, 10 * D);
        // 100 shares * 0.005 USD = 0.50 USD
        assert_eq!(rs[0].commission_e9, 500_000_000);
        assert!(book.is_empty());
    }

    #[test]
    fn limit_and_stop_touch_and_gap_rules() {
        let mut book = SimBook::new(&VenueConfig::default());
        // buy limit 9: bar opens 10, trades down to 9 -> fills at the limit, 9
        book.add(order(1, Side::Buy, OrderType::Limit, 1, 9, 0), 0);
        // buy limit 11: bar opens 10, below the limit -> fills at the open, 10 (gap through)
        book.add(order(2, Side::Buy, OrderType::Limit, 1, 11, 0), 0);
        // sell limit 13: high is 12 -> not touched, stays working
        book.add(order(3, Side::Sell, OrderType::Limit, 1, 13, 0), 0);
        // sell stop 9: low 9 touches -> fills at the stop, 9
        book.add(order(4, Side::Sell, OrderType::Stop, 1, 0, 9), 0);
        // buy stop 8: the open 10 is already above -> fills at the open, 10 (gap, worse price)
        book.add(order(5, Side::Buy, OrderType::Stop, 1, 0, 8), 0);
        let got = run(&mut book, &bar(10, 12, 9, 11, 0));
        assert_eq!(
            got,
            vec![
                (1, ExecKind::Filled, 1, 9),
                (2, ExecKind::Filled, 1, 10),
                (4, ExecKind::Filled, 1, 9),
                (5, ExecKind::Filled, 1, 10)
            ]
        );
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn participation_cap_partially_fills() {
        let cfg = VenueConfig { max_volume_ppm: 100_000, ..Default::default() }; // 10% of volume
        let mut book = SimBook::new(&cfg);
        book.add(order(1, Side::Buy, OrderType::Market, 250, 0, 0), 0);
        // volume 1000 -> at most 100 shares a bar: 100, 100, then the last 50
        assert_eq!(run(&mut book, &bar(10, 10, 10, 10, 1000)), vec![(1, ExecKind::PartiallyFilled, 100, 10)]);
        assert_eq!(run(&mut book, &bar(11, 11, 11, 11, 1000)), vec![(1, ExecKind::PartiallyFilled, 100, 11)]);
        assert_eq!(run(&mut book, &bar(12, 12, 12, 12, 1000)), vec![(1, ExecKind::Filled, 50, 12)]);
    }

    #[test]
    fn timeout_expires_before_matching_and_slippage_applies() {
        let cfg = VenueConfig { slippage: SlippageConfig::Fixed { px_e9: D / 100 }, ..Default::default() };
        let mut book = SimBook::new(&cfg);
        let mut o = order(1, Side::Buy, OrderType::Limit, 1, 5, 0);
        o.timeout_ns = 500;
        book.add(o, 600); // expires at 1100; the bar starts at 1000 -> not yet
        book.add(order(2, Side::Sell, OrderType::Market, 1, 0, 0), 0);
        let mut rs = Vec::new();
        book.on_bar(&bar(10, 12, 9, 11, 0), &mut |r| rs.push(r));
        // the sell pays one cent of slippage: 10.00 - 0.01
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].fill_px_e9, 10 * D - D / 100);
        let mut b2 = bar(10, 12, 9, 11, 0);
        b2.ts_event_ns = 1_100;
        let got = run(&mut book, &b2);
        assert_eq!(got, vec![(1, ExecKind::Expired, 0, 0)]);
    }
}
