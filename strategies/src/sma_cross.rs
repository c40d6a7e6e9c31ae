//! `sma_cross`: the reference strategy (see `data/expected/REFERENCE_STRATEGY.md`).
//!
//! fast = SMA(10) and slow = SMA(30) of the close, over all bars in time order. On bar *i*, with
//! both averages defined on bars *i-1* and *i*: a cross up (`fast > slow` now, `fast <= slow`
//! before) while flat buys `qty`; a cross down (`fast < slow` now, `fast >= slow` before) while
//! long sells the position. Orders are market orders (the venue fills them at the next bar's
//! open). Averages are compared exactly on fixed-point sums: float rounding would flip ties.

use crate::indicators::Sma;
use engine::records::{Bar, Side};
use engine::strategy::{Ctx, OrderRequest, Plot, Strategy, StrategyFactory};
use std::cmp::Ordering;

/// Parameters (`[strategy]` table).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmaCrossParams {
    /// Fast SMA period.
    pub fast: usize,
    /// Slow SMA period.
    pub slow: usize,
    /// Shares per entry.
    pub qty: u32,
}

impl Default for SmaCrossParams {
    fn default() -> Self {
        SmaCrossParams { fast: 10, slow: 30, qty: 100 }
    }
}

impl SmaCrossParams {
    /// Check the parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.fast == 0 || self.slow == 0 || self.qty == 0 {
            return Err("sma_cross: fast, slow and qty must be > 0".into());
        }
        if self.fast >= self.slow {
            return Err(format!(
                "sma_cross: fast = {} must be less than slow = {} (the fast average is the shorter one)",
                self.fast, self.slow
            ));
        }
        Ok(())
    }
}

/// One symbol's state machine.
#[derive(Debug, Clone)]
pub struct SmaCross {
    fast: Sma,
    slow: Sma,
    prev: Option<Ordering>,
    qty: u32,
}

impl SmaCross {
    /// A fresh instance.
    pub fn new(p: &SmaCrossParams) -> Self {
        SmaCross { fast: Sma::new(p.fast), slow: Sma::new(p.slow), prev: None, qty: p.qty }
    }
}

impl Strategy for SmaCross {
    #[inline]
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar) {
        self.fast.update(bar.close_px_e9);
        self.slow.update(bar.close_px_e9);
        let Some(now) = Sma::cmp_exact(&self.fast, &self.slow) else { return };
        let prev = self.prev.replace(now);
        let Some(prev) = prev else { return };
        let idle = ctx.open_orders() == 0;
        if now == Ordering::Greater && prev != Ordering::Greater && ctx.position() == 0 && idle {
            ctx.submit(OrderRequest::market(Side::Buy, self.qty));
        } else if now == Ordering::Less && prev != Ordering::Less && ctx.position() > 0 && idle {
            let qty = u32::try_from(ctx.position()).unwrap_or(u32::MAX);
            ctx.submit(OrderRequest::market(Side::Sell, qty).reduce_only());
        }
    }

    fn plot(&self, out: &mut Plot) {
        for (name, sma) in [("SMA fast", &self.fast), ("SMA slow", &self.slow)] {
            if let (true, Some(sum)) = (sma.is_ready(), sma.sum_e9()) {
                out.line(name, (sum / sma.period() as i128) as i64);
            }
        }
    }
}

/// Builds [`SmaCross`] per symbol.
#[derive(Debug, Clone)]
pub struct SmaCrossFactory(pub SmaCrossParams);

impl StrategyFactory for SmaCrossFactory {
    fn name(&self) -> &str {
        "sma_cross"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(SmaCross::new(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::records::{PX_SCALE, SymbolId};
    use engine::strategy::Intent;

    /// Drive the strategy directly with closes, applying each signal as an immediate fill
    /// (enough to check signal logic; fills at the next open are the pipeline's job).
    fn signals(closes: &[i64], p: &SmaCrossParams) -> Vec<(usize, Side)> {
        let mut s = SmaCross::new(p);
        let (mut pos, mut no, mut out) = (0i64, 1u32, Vec::new());
        for (i, &c) in closes.iter().enumerate() {
            let px = c * PX_SCALE;
            let bar = Bar {
                ts_event_ns: i as i64,
                open_px_e9: px,
                high_px_e9: px,
                low_px_e9: px,
                close_px_e9: px,
                volume: 0,
            };
            let mut intents = Vec::new();
            let mut ctx = Ctx::new(SymbolId(0), 0, pos, 0, &mut no, &mut intents);
            s.on_bar(&mut ctx, &bar);
            for it in intents {
                if let Intent::Submit(_, req) = it {
                    pos += req.side.sign() * i64::from(req.qty);
                    out.push((i, req.side));
                }
            }
        }
        out
    }

    #[test]
    fn validate_refuses_zero_and_fast_not_below_slow() {
        assert!(SmaCrossParams::default().validate().is_ok());
        let p = |fast, slow, qty| SmaCrossParams { fast, slow, qty }.validate();
        assert!(p(0, 30, 100).unwrap_err().contains("must be > 0"));
        assert!(p(10, 30, 0).unwrap_err().contains("must be > 0"));
        assert_eq!(
            p(30, 30, 100).unwrap_err(),
            "sma_cross: fast = 30 must be less than slow = 30 (the fast average is the shorter one)"
        );
        assert!(p(50, 20, 100).unwrap_err().contains("fast = 50 must be less than slow = 20"));
        assert!(p(29, 30, 100).is_ok());
    }

    #[test]
    fn crosses_up_and_down_with_ties_handled_exactly() {
        let p = SmaCrossParams { fast: 2, slow: 3, qty: 10 };
        // closes:        5  5  5  6  7  4  3  3
        // fast SMA(2):   -  5  5 5.5 6.5 5.5 3.5 3
        // slow SMA(3):   -  -  5 5.33 6  5.67 4.67 3.33
        // bar 2: fast == slow (tie, no signal yet: first bar with both)
        // bar 3: 5.5 > 5.33 and prev 5 <= 5 -> cross up, buy
        // bar 5: 5.5 < 5.67 and prev 6.5 >= 6 -> cross down, sell
        assert_eq!(signals(&[5, 5, 5, 6, 7, 4, 3, 3], &p), vec![(3, Side::Buy), (5, Side::Sell)]);
    }

    #[test]
    fn plots_both_averages_once_ready() {
        let mut s = SmaCross::new(&SmaCrossParams { fast: 2, slow: 3, qty: 1 });
        let mut plot = Plot::new();
        let (mut no, mut intents) = (1u32, Vec::new());
        for (i, c) in [4i64, 6, 8].into_iter().enumerate() {
            let px = c * PX_SCALE;
            let bar = Bar {
                ts_event_ns: i as i64,
                open_px_e9: px,
                high_px_e9: px,
                low_px_e9: px,
                close_px_e9: px,
                volume: 0,
            };
            s.on_bar(&mut Ctx::new(SymbolId(0), 0, 0, 0, &mut no, &mut intents), &bar);
            plot.clear();
            s.plot(&mut plot);
            let names: Vec<_> = plot.items().iter().map(|p| p.name).collect();
            // bar 0: nothing ready; bar 1: fast (2); bar 2: both.
            assert_eq!(names.len(), i, "bar {i}: {names:?}");
        }
        // fast = (6 + 8) / 2 = 7, slow = (4 + 6 + 8) / 3 = 6
        assert_eq!(plot.items()[0].px_e9, 7 * PX_SCALE);
        assert_eq!(plot.items()[1].px_e9, 6 * PX_SCALE);
    }

    #[test]
    fn no_sell_while_flat_and_no_double_buy() {
        let p = SmaCrossParams { fast: 1, slow: 2, qty: 1 };
        // fast = close, slow = mean of the last two. Down first (flat: ignored), then up, up.
        // bar1: 9 < 9.5 (first compare); bar2: 10 > 9.5 cross up -> buy; bar3: 11 > 10.5 no cross
        assert_eq!(signals(&[10, 9, 10, 11], &p), vec![(2, Side::Buy)]);
    }
}
