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
use engine::strategy::{Ctx, OrderRequest, Strategy, StrategyFactory};

/// Parameters (`[strategy]` table).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
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
