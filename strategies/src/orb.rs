//! `orb`: opening-range breakout, a classic intraday momentum strategy.
//!
//! Each trading day (days cut at `day_utc_offset_s`, like risk): the first `range_bars` bars set
//! the opening range (high/low). After it, the first close above the range high, with the close
//! above the session VWAP when volume is reported, enters long at market; a close below the range
//! low enters short when `allow_short`. One entry per day. The stop sits at the other side of the
//! range (or the range midpoint with `stop_at_mid`), the target `target_r` times the risk away.
//! Size: `risk_per_trade_usd / (entry - stop)` shares, capped at `max_qty`. Stop and target are
//! placed when the entry fills and cancel each other (one-cancels-other, by the strategy). Any
//! position still open `exit_after_bars` bars into the day is closed at market.

use crate::indicators::{RollingHigh, RollingLow, Vwap};
use engine::records::{Bar, ExecKind, ExecReport, OrderId, PX_SCALE, Side};
use engine::strategy::{Ctx, OrderRequest, Plot, Strategy, StrategyFactory};

/// Parameters (`[strategy]` table).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrbParams {
    /// Bars in the opening range (15 one-minute bars = 09:30-09:45).
    pub range_bars: usize,
    /// Dollar risk per trade (entry to stop times shares).
    pub risk_per_trade_usd: f64,
    /// Largest position, shares.
    pub max_qty: u32,
    /// Target distance in multiples of the risk.
    pub target_r: f64,
    /// Stop at the range midpoint instead of the far side.
    pub stop_at_mid: bool,
    /// Also trade downside breakouts.
    pub allow_short: bool,
    /// Flatten this many bars into the day (385 one-minute bars = 15:55).
    pub exit_after_bars: usize,
    /// Day cut, seconds from UTC.
    pub day_utc_offset_s: i64,
}

impl Default for OrbParams {
    fn default() -> Self {
        OrbParams {
            range_bars: 15,
            risk_per_trade_usd: 100.0,
            max_qty: 1000,
            target_r: 2.0,
            stop_at_mid: false,
            allow_short: true,
            exit_after_bars: 385,
            day_utc_offset_s: -5 * 3600,
        }
    }
}

impl OrbParams {
    /// Check the parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.range_bars == 0 || self.max_qty == 0 || self.exit_after_bars <= self.range_bars {
            return Err("orb: range_bars and max_qty must be > 0 and exit_after_bars > range_bars".into());
        }
        if !(self.risk_per_trade_usd > 0.0 && self.target_r > 0.0) {
            return Err("orb: risk_per_trade_usd and target_r must be > 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Building the opening range.
    Range,
    /// Waiting for a breakout.
    Armed,
    /// Entry order sent, not filled yet.
    Entering,
    /// In the trade with stop and target working.
    InTrade,
    /// Done for the day.
    Done,
}

/// One symbol's state machine.
#[derive(Debug, Clone)]
pub struct Orb {
    p: OrbParams,
    day: Option<i64>,
    bars_today: usize,
    hi: RollingHigh,
    lo: RollingLow,
    vwap: Vwap,
    phase: Phase,
    side: Side,
    stop_px: i64,
    target_px: i64,
    stop_id: Option<OrderId>,
    target_id: Option<OrderId>,
    exit_id: Option<OrderId>,
}

impl Orb {
    /// A fresh instance.
    pub fn new(p: &OrbParams) -> Self {
        Orb {
            p: p.clone(),
            day: None,
            bars_today: 0,
            hi: RollingHigh::new(p.range_bars),
            lo: RollingLow::new(p.range_bars),
            vwap: Vwap::new(),
            phase: Phase::Range,
            side: Side::Buy,
            stop_px: 0,
            target_px: 0,
            stop_id: None,
            target_id: None,
            exit_id: None,
        }
    }

    fn new_day(&mut self) {
        self.bars_today = 0;
        self.hi.reset();
        self.lo.reset();
        self.vwap.reset_session();
        self.phase = Phase::Range;
        self.stop_id = None;
        self.target_id = None;
        self.exit_id = None;
    }

    fn flatten(&mut self, ctx: &mut Ctx<'_>) {
        for id in [self.stop_id.take(), self.target_id.take()].into_iter().flatten() {
            ctx.cancel(id);
        }
        let pos = ctx.position();
        if pos != 0 && self.exit_id.is_none() {
            let side = if pos > 0 { Side::Sell } else { Side::Buy };
            let qty = u32::try_from(pos.unsigned_abs()).unwrap_or(u32::MAX);
            self.exit_id = Some(ctx.submit(OrderRequest::market(side, qty).reduce_only().tag(3)));
        }
        self.phase = Phase::Done;
    }
}

impl Strategy for Orb {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar) {
        let day = (bar.ts_event_ns + self.p.day_utc_offset_s * 1_000_000_000).div_euclid(86_400 * 1_000_000_000);
        if self.day != Some(day) {
            if self.day.is_some() && ctx.position() != 0 {
                // A position carried over a day boundary (data gap): close it now.
                self.flatten(ctx);
            }
            self.day = Some(day);
            self.new_day();
        }
        self.bars_today += 1;
        self.vwap.update_hlc(bar.high_px_e9, bar.low_px_e9, bar.close_px_e9, bar.volume);
        match self.phase {
            Phase::Range => {
                self.hi.update(bar.high_px_e9);
                self.lo.update(bar.low_px_e9);
                if self.bars_today >= self.p.range_bars {
                    self.phase = Phase::Armed;
                }
            }
            Phase::Armed => {
                let (Some(hi), Some(lo)) = (self.hi.value(), self.lo.value()) else { return };
                let c = bar.close_px_e9;
                let vwap = self.vwap.value().map(|v| (v * PX_SCALE as f64) as i64);
                let long = c > hi && vwap.is_none_or(|v| c > v);
                let short = self.p.allow_short && c < lo && vwap.is_none_or(|v| c < v);
                if !(long || short) || self.bars_today >= self.p.exit_after_bars {
                    return;
                }
                self.side = if long { Side::Buy } else { Side::Sell };
                let mid = lo + (hi - lo) / 2;
                self.stop_px = match (long, self.p.stop_at_mid) {
                    (_, true) => mid,
                    (true, false) => lo,
                    (false, false) => hi,
                };
                let risk_ps = (c - self.stop_px).abs();
                if risk_ps <= 0 {
                    return;
                }
                let qty = (self.p.risk_per_trade_usd * PX_SCALE as f64 / risk_ps as f64).floor();
                let qty = (qty as u64).min(u64::from(self.p.max_qty)) as u32;
                if qty == 0 {
                    return;
                }
                let reward = (risk_ps as f64 * self.p.target_r) as i64;
                self.target_px = if long { c + reward } else { c - reward };
                ctx.submit(OrderRequest::market(self.side, qty).tag(1));
                self.phase = Phase::Entering;
            }
            Phase::Entering | Phase::InTrade => {
                if self.bars_today >= self.p.exit_after_bars {
                    self.flatten(ctx);
                }
            }
            Phase::Done => {}
        }
    }

    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        let Some(kind) = r.exec_kind() else { return };
        match (self.phase, kind) {
            (Phase::Entering, ExecKind::Filled) if r.order_id.0 & 0xffff_ffff != 0 => {
                let qty = u32::try_from(ctx.position().unsigned_abs()).unwrap_or(0);
                if qty == 0 {
                    return;
                }
                let exit = if self.side == Side::Buy { Side::Sell } else { Side::Buy };
                self.stop_id = Some(ctx.submit(OrderRequest::stop(exit, qty, self.stop_px).reduce_only().tag(2)));
                self.target_id = Some(ctx.submit(OrderRequest::limit(exit, qty, self.target_px).reduce_only().tag(4)));
                self.phase = Phase::InTrade;
            }
            (Phase::Entering, ExecKind::Rejected | ExecKind::Canceled | ExecKind::Expired) => {
                self.phase = Phase::Done;
            }
            (Phase::InTrade, ExecKind::Filled) => {
                // One side of the bracket filled: cancel the other.
                if Some(r.order_id) == self.stop_id {
                    self.stop_id = None;
                    if let Some(t) = self.target_id.take() {
                        ctx.cancel(t);
                    }
                    self.phase = Phase::Done;
                } else if Some(r.order_id) == self.target_id {
                    self.target_id = None;
                    if let Some(s) = self.stop_id.take() {
                        ctx.cancel(s);
                    }
                    self.phase = Phase::Done;
                }
            }
            _ => {}
        }
    }

    fn plot(&self, out: &mut Plot) {
        if self.phase != Phase::Range
            && let (Some(hi), Some(lo)) = (self.hi.value(), self.lo.value())
        {
            out.level("range high", hi);
            out.level("range low", lo);
        }
        if let Some(v) = self.vwap.value() {
            out.line("VWAP", (v * PX_SCALE as f64).round() as i64);
        }
        if self.phase == Phase::InTrade {
            out.level("stop", self.stop_px);
            out.level("target", self.target_px);
        }
    }
}

/// Builds [`Orb`] per symbol.
#[derive(Debug, Clone)]
pub struct OrbFactory(pub OrbParams);

impl StrategyFactory for OrbFactory {
    fn name(&self) -> &str {
        "orb"
    }
    fn build(&self, _symbol: &str) -> Box<dyn Strategy> {
        Box::new(Orb::new(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::records::{OrderId, OrderType, SymbolId};
    use engine::strategy::Intent;

    const D: i64 = PX_SCALE;
    const MIN: i64 = 60_000_000_000;
    /// 2024-01-02 14:30 UTC = 09:30 New York.
    const OPEN: i64 = 1_704_205_800_000_000_000;

    struct Harness {
        s: Orb,
        pos: i64,
        open: u32,
        no: u32,
        log: Vec<Intent>,
    }

    impl Harness {
        fn new(p: OrbParams) -> Self {
            Harness { s: Orb::new(&p), pos: 0, open: 0, no: 1, log: Vec::new() }
        }
        fn bar(&mut self, i: i64, o: i64, h: i64, l: i64, c: i64) -> Vec<Intent> {
            let b = Bar {
                ts_event_ns: OPEN + i * MIN,
                open_px_e9: o * D,
                high_px_e9: h * D,
                low_px_e9: l * D,
                close_px_e9: c * D,
                volume: 0,
            };
            let mut intents = Vec::new();
            let mut ctx = Ctx::new(SymbolId(0), b.ts_event_ns, self.pos, self.open, &mut self.no, &mut intents);
            self.s.on_bar(&mut ctx, &b);
            self.log.extend(intents.iter().copied());
            intents
        }
        fn fill(&mut self, id: OrderId, side: Side, qty: u32, px: i64) -> Vec<Intent> {
            self.pos += side.sign() * i64::from(qty);
            let r = ExecReport {
                order_id: id,
                fill_px_e9: px * D,
                fill_qty: qty,
                kind: ExecKind::Filled.raw(),
                side: side.raw(),
                ..Default::default()
            };
            let mut intents = Vec::new();
            let mut ctx = Ctx::new(SymbolId(0), 0, self.pos, self.open, &mut self.no, &mut intents);
            self.s.on_order(&mut ctx, &r);
            intents
        }
    }

    fn submit(i: &Intent) -> (OrderId, OrderRequest) {
        match i {
            Intent::Submit(id, r) => (*id, *r),
            Intent::Cancel(_) | Intent::Replace { .. } => panic!("expected a submit, got {i:?}"),
        }
    }

    #[test]
    fn long_breakout_sizes_by_risk_brackets_and_cancels_the_other_side() {
        let p = OrbParams { range_bars: 3, risk_per_trade_usd: 100.0, target_r: 2.0, ..OrbParams::default() };
        let mut h = Harness::new(p);
        // Opening range over 3 bars: high 12, low 10.
        for (i, (o, hi, lo, c)) in [(11, 12, 10, 11), (11, 12, 10, 11), (11, 11, 10, 11)].into_iter().enumerate() {
            assert!(h.bar(i as i64, o, hi, lo, c).is_empty(), "no trade while the range forms");
        }
        // Close 11 inside the range: nothing. Close 13 above the high 12: buy.
        assert!(h.bar(3, 11, 12, 11, 11).is_empty());
        let out = h.bar(4, 12, 13, 12, 13);
        let (entry, req) = submit(&out[0]);
        // risk per share = 13 - stop 10 = 3 USD -> floor(100 / 3) = 33 shares, market buy
        assert_eq!((req.side, req.qty, req.order_type), (Side::Buy, 33, OrderType::Market));
        // No second entry while entering.
        assert!(h.bar(5, 13, 14, 13, 14).is_empty());
        // The entry fills: stop at the range low 10, target 13 + 2 x 3 = 19, both reduce-only.
        let out = h.fill(entry, Side::Buy, 33, 13);
        let (stop_id, stop) = submit(&out[0]);
        let (target_id, target) = submit(&out[1]);
        assert_eq!((stop.order_type, stop.side, stop.qty, stop.stop_px_e9), (OrderType::Stop, Side::Sell, 33, 10 * D));
        assert_eq!((target.order_type, target.limit_px_e9), (OrderType::Limit, 19 * D));
        assert!(stop.reduce_only && target.reduce_only);
        // The target fills: the stop is canceled; one trade a day, so nothing more today.
        let out = h.fill(target_id, Side::Sell, 33, 19);
        assert_eq!(out, vec![Intent::Cancel(stop_id)]);
        assert!(h.bar(6, 20, 21, 9, 9).is_empty());
    }

    #[test]
    fn plots_the_range_then_stop_and_target_in_a_trade() {
        let p = OrbParams { range_bars: 2, ..OrbParams::default() };
        let mut h = Harness::new(p);
        let names = |h: &Harness| {
            let mut plot = Plot::new();
            h.s.plot(&mut plot);
            plot.items().iter().map(|i| (i.name, i.px_e9)).collect::<Vec<_>>()
        };
        h.bar(0, 11, 12, 10, 11);
        // Index bars carry no volume: no VWAP; the range is still forming.
        assert!(names(&h).is_empty());
        h.bar(1, 11, 12, 10, 11);
        assert_eq!(names(&h), vec![("range high", 12 * D), ("range low", 10 * D)]);
        let (entry, _) = submit(&h.bar(2, 12, 13, 12, 13)[0]);
        h.fill(entry, Side::Buy, 33, 13);
        // stop at the range low 10, target 13 + 2 x 3 = 19
        assert_eq!(
            names(&h),
            vec![("range high", 12 * D), ("range low", 10 * D), ("stop", 10 * D), ("target", 19 * D)]
        );
    }

    #[test]
    fn short_breakout_and_end_of_day_exit() {
        let p = OrbParams { range_bars: 2, exit_after_bars: 6, max_qty: 10, ..OrbParams::default() };
        let mut h = Harness::new(p);
        h.bar(0, 11, 12, 10, 11);
        h.bar(1, 11, 12, 10, 11);
        // Close 9 below the low 10: sell short; risk 12 - 9 = 3 -> 33 shares, capped at 10.
        let (entry, req) = submit(&h.bar(2, 10, 10, 9, 9)[0]);
        assert_eq!((req.side, req.qty), (Side::Sell, 10));
        let out = h.fill(entry, Side::Sell, 10, 9);
        let (stop_id, _) = submit(&out[0]);
        let (target_id, _) = submit(&out[1]);
        h.bar(3, 9, 9, 8, 9);
        h.bar(4, 9, 9, 8, 9);
        // Bar 6 of the day (exit_after_bars = 6): cancel the bracket, buy back at market.
        let out = h.bar(5, 9, 9, 8, 9);
        assert_eq!(out[0], Intent::Cancel(stop_id));
        assert_eq!(out[1], Intent::Cancel(target_id));
        let (_, exit) = submit(&out[2]);
        assert_eq!((exit.side, exit.qty, exit.order_type, exit.reduce_only), (Side::Buy, 10, OrderType::Market, true));
    }

    #[test]
    fn a_new_day_resets_the_range() {
        let p = OrbParams { range_bars: 2, ..OrbParams::default() };
        let mut h = Harness::new(p);
        h.bar(0, 11, 12, 10, 11);
        h.bar(1, 11, 12, 10, 11);
        // Next day (24 h later): the first two bars form a new range, so no breakout on bar 1.
        assert!(h.bar(24 * 60, 20, 21, 19, 20).is_empty());
        assert!(h.bar(24 * 60 + 1, 20, 21, 19, 21).is_empty());
        assert_eq!(submit(&h.bar(24 * 60 + 2, 21, 23, 21, 22)[0]).1.side, Side::Buy);
    }
}
