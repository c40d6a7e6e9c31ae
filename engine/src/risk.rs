//! Risk: portfolio limits checked in sequence order, so every decision is deterministic.
//!
//! The risk stage sees every event after the shard that owns its symbol has handled it. It keeps
//! the portfolio (positions, cash, marks, open orders) and decides each order intent: accept, or
//! reject with a [`Reason`]. Every rejection is an event in the journal.
//!
//! Checks, in order (the first that fails is the reason):
//! 1. invalid order (zero quantity, unknown side/type, missing limit/stop price);
//! 2. daily loss halt: after the day's loss (realized + unrealized, marked at bar closes) reaches
//!    `max_daily_loss_usd`, only reduce-only orders pass until the next day, and risk flattens every
//!    position itself with market orders at each symbol's next bar;
//! 3. one active trade at a time: a new (not reduce-only) order is refused while another symbol
//!    has a position or open entry orders;
//! 4. max open orders (all symbols);
//! 5. max order rate (orders accepted in the last second of event time);
//! 6. max position per symbol (counting open orders on the same side as if filled);
//! 7. max gross notional (sum of |position| x mark, plus the order at its limit/stop/mark price).
//!
//! Reduce-only orders skip checks 2, 3, 6 and 7. Zero in a limit means "no limit". A symbol being
//! removed from the universe accepts only reduce-only orders. Risk's own flattening orders are
//! handed to execution (see [`Risk::on_bar`], [`Risk::take_flatten`]) and go to the venue like
//! any other order.

use crate::records::{Bar, ExecKind, ExecReport, Order, OrderId, OrderType, PX_SCALE, Reason, Side, SymbolId};

/// Room for working orders made up front (tables grow past it when needed).
pub(crate) const OPEN_ORDERS_HINT: usize = 64;

/// Hasher for order ids: ids are unique integers, so one multiply spreads them well (SipHash's
/// DoS resistance buys nothing here and costs a visible share of the per-order work).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

/// [`std::hash::BuildHasher`] for [`IdHasher`].
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Risk limits (config `[risk]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Max |position| per symbol, shares (0 = none).
    pub max_position_shares: u32,
    /// Max gross notional over all symbols, whole USD (0 = none).
    pub max_gross_notional_usd: u64,
    /// Max open orders over all symbols (0 = none).
    pub max_open_orders: u32,
    /// Max orders accepted per second of event time (0 = none).
    pub max_orders_per_sec: u32,
    /// Daily loss that halts trading and flattens, whole USD (0 = off).
    pub max_daily_loss_usd: u64,
    /// Allow only one symbol with an active trade at a time.
    pub one_active_trade: bool,
    /// Offset from UTC used to cut trading days, seconds (default -5 h: New York standard time;
    /// any offset that puts midnight outside trading hours gives the same days).
    pub day_utc_offset_s: i64,
    /// At the end of the input (the end of a backtest, Ctrl-C in a paper run) working orders are
    /// always canceled; positions are closed too when true (the default), left open when false.
    pub flatten_at_end: bool,
    /// Refuse orders (`warm_up`) for a symbol until its feed says its warm-start history is
    /// over (a `LiveStart` control event): strategies seed indicators on history but never trade
    /// on it. Paper and live runs turn it on; backtests leave it off.
    pub warmup_gate: bool,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            max_position_shares: 0,
            max_gross_notional_usd: 0,
            max_open_orders: 0,
            max_orders_per_sec: 0,
            max_daily_loss_usd: 0,
            one_active_trade: false,
            day_utc_offset_s: -5 * 3600,
            flatten_at_end: true,
            warmup_gate: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sym {
    pos: i64,
    mark_px_e9: i64,
    open_orders: u32,
    open_buy: u64,
    open_sell: u64,
    /// Shares of working reduce-only orders per side (what is already being closed).
    open_reduce_buy: u64,
    open_reduce_sell: u64,
    open_entries: u32,
    active: bool,
    removing: bool,
    /// `LiveStart` seen (only consulted with `warmup_gate`).
    live: bool,
}

/// The portfolio as risk sees it, and the checks.
#[derive(Debug)]
pub struct Risk {
    cfg: RiskConfig,
    syms: Vec<Sym>,
    cash_e9: i128,
    mark_e9: i128,
    gross_e9: i128,
    open_orders: u32,
    active_count: u32,
    rate: std::collections::VecDeque<i64>,
    day: Option<i64>,
    day_start_ns: i64,
    day_end_ns: i64,
    day_start_equity_e9: i128,
    halted: bool,
    /// New entries refused for the whole account (a [`ControlKind::Halt`](crate::records::ControlKind::Halt)
    /// or a reconcile under the halt policy), with the reason given.
    stopped: Option<Reason>,
    peak_e9: i128,
    max_drawdown_e9: i128,
    daily: Vec<(i64, i128)>,
    /// Working orders: the order, its unfilled shares, and the price its notional is counted at
    /// (0 for reduce-only orders).
    open: std::collections::HashMap<OrderId, (Order, u32, i64), IdHash>,
    /// Replace requests risk accepted, waiting for the venue's answer: the changed order.
    replacing: std::collections::HashMap<OrderId, Order, IdHash>,
    /// Notional of working orders that add exposure, 1e-9 USD.
    open_notional_e9: i128,
    flatten: Vec<Order>,
    next_risk_order: u32,
    /// Rejections per [`Reason`] (indexed by the raw reason).
    pub rejects: [u64; 32],
    /// Number of daily-loss halts.
    pub halts: u64,
}

/// What risk did with an intent.
pub type Decision = Result<(), Reason>;

impl Risk {
    /// The limits this risk checks.
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// A fresh portfolio for `n_symbols` symbols (it grows with [`Risk::ensure_symbols`]).
    pub fn new(cfg: RiskConfig, n_symbols: usize) -> Self {
        let rate_cap = cfg.max_orders_per_sec as usize;
        Risk {
            cfg,
            syms: vec![Sym::default(); n_symbols],
            cash_e9: 0,
            mark_e9: 0,
            gross_e9: 0,
            open_orders: 0,
            active_count: 0,
            rate: std::collections::VecDeque::with_capacity(rate_cap + 1),
            day: None,
            day_start_ns: 0,
            day_end_ns: 0,
            day_start_equity_e9: 0,
            halted: false,
            stopped: None,
            peak_e9: 0,
            max_drawdown_e9: 0,
            daily: Vec::with_capacity(1024),
            // Working orders are few at any moment: a small table stays in the core's cache (a
            // 4096-order one was 720 KB, a cache miss per order, and a page-fault bill per run).
            open: std::collections::HashMap::with_capacity_and_hasher(OPEN_ORDERS_HINT, IdHash::default()),
            replacing: std::collections::HashMap::default(),
            open_notional_e9: 0,
            flatten: Vec::new(),
            next_risk_order: 1,
            rejects: [0; 32],
            halts: 0,
        }
    }

    /// Make room for symbol ids below `n` (the universe grew).
    pub fn ensure_symbols(&mut self, n: usize) {
        if self.syms.len() < n {
            self.syms.resize(n, Sym::default());
        }
    }

    /// Number of symbols known.
    pub fn symbols(&self) -> usize {
        self.syms.len()
    }

    /// A fresh id for an order the engine itself places (flattening, end-of-run close-outs).
    pub fn own_order_id(&mut self) -> OrderId {
        let id = OrderId::for_risk(self.next_risk_order);
        self.next_risk_order += 1;
        id
    }

    /// The symbol's warm start is over: orders may pass (see [`RiskConfig::warmup_gate`]).
    pub fn set_live(&mut self, s: SymbolId) {
        if let Some(sym) = self.syms.get_mut(s.0 as usize) {
            sym.live = true;
        }
    }

    /// Mark a symbol as leaving the universe (only reduce-only orders pass) or not.
    pub fn set_removing(&mut self, s: SymbolId, removing: bool) {
        if let Some(sym) = self.syms.get_mut(s.0 as usize) {
            sym.removing = removing;
        }
    }

    /// Equity change since the start: cash plus marked positions, 1e-9 USD.
    pub fn equity_e9(&self) -> i128 {
        self.cash_e9 + self.mark_e9
    }

    /// Position of a symbol (0 for an unknown one).
    pub fn position(&self, s: SymbolId) -> i64 {
        self.syms.get(s.0 as usize).map_or(0, |x| x.pos)
    }

    /// Largest peak-to-trough fall of equity, marked at every bar close and fill, 1e-9 USD.
    pub fn max_drawdown_e9(&self) -> i128 {
        self.max_drawdown_e9
    }

    /// Equity at the end of each trading day so far: (day number, equity e9).
    pub fn daily_equity(&self) -> &[(i64, i128)] {
        &self.daily
    }

    /// True while halted by the daily loss limit.
    pub fn halted(&self) -> bool {
        self.halted
    }

    fn day_of(&self, ts: i64) -> i64 {
        (ts + self.cfg.day_utc_offset_s * 1_000_000_000).div_euclid(86_400 * 1_000_000_000)
    }

    #[inline]
    fn roll_day(&mut self, ts: i64) {
        if ts >= self.day_start_ns && ts < self.day_end_ns {
            return;
        }
        self.roll_day_slow(ts);
    }

    fn roll_day_slow(&mut self, ts: i64) {
        let d = self.day_of(ts);
        const DAY: i64 = 86_400 * 1_000_000_000;
        self.day_start_ns = d * DAY - self.cfg.day_utc_offset_s * 1_000_000_000;
        self.day_end_ns = self.day_start_ns + DAY;
        match self.day {
            Some(cur) if cur == d => {}
            Some(cur) => {
                let eq = self.equity_e9();
                self.daily.push((cur, eq));
                self.day = Some(d);
                self.day_start_equity_e9 = eq;
                self.halted = false;
            }
            None => {
                self.day = Some(d);
                self.day_start_equity_e9 = self.equity_e9();
            }
        }
    }

    /// Close the books at the end of the run: records the last day's equity.
    pub fn finish(&mut self) {
        if let Some(d) = self.day.take() {
            self.daily.push((d, self.equity_e9()));
        }
    }

    fn track_drawdown(&mut self) {
        let eq = self.equity_e9();
        if eq > self.peak_e9 {
            self.peak_e9 = eq;
        } else if self.peak_e9 - eq > self.max_drawdown_e9 {
            self.max_drawdown_e9 = self.peak_e9 - eq;
        }
    }

    fn set_mark(&mut self, s: usize, px: i64) {
        let sym = &mut self.syms[s];
        let d = i128::from(px - sym.mark_px_e9);
        self.mark_e9 += i128::from(sym.pos) * d;
        self.gross_e9 += i128::from(sym.pos.unsigned_abs()) * d;
        sym.mark_px_e9 = px;
    }

    fn update_active(&mut self, s: usize) {
        let sym = &mut self.syms[s];
        let now = sym.pos != 0 || sym.open_entries > 0;
        if now != sym.active {
            sym.active = now;
            if now {
                self.active_count += 1;
            } else {
                self.active_count -= 1;
            }
        }
    }

    /// A bar closed: mark the symbol, track drawdown and the daily loss limit. When the limit is
    /// hit, risk's flattening orders (reduce-only market orders, one per open position) go to
    /// `flatten`, for execution to submit. An unknown symbol is ignored (the stage counts it).
    #[inline]
    pub fn on_bar(&mut self, s: SymbolId, bar: &Bar, flatten: &mut impl FnMut(Order)) {
        self.roll_day(bar.ts_event_ns);
        let i = s.0 as usize;
        let Some(sym) = self.syms.get_mut(i) else { return };
        if sym.pos == 0 {
            // Flat: the mark moves no equity.
            sym.mark_px_e9 = bar.close_px_e9;
        } else {
            self.set_mark(i, bar.close_px_e9);
            self.track_drawdown();
            self.check_daily_loss();
        }
        if !self.flatten.is_empty() {
            self.take_flatten(flatten);
        }
    }

    /// Hand over flattening orders decided since the last call (e.g. after a fill in
    /// [`Risk::on_report`] hit the daily loss limit).
    pub fn take_flatten(&mut self, flatten: &mut impl FnMut(Order)) {
        for o in self.flatten.drain(..) {
            flatten(o);
        }
    }

    /// True when flattening orders wait in [`Risk::take_flatten`].
    pub fn has_flatten(&self) -> bool {
        !self.flatten.is_empty()
    }

    fn check_daily_loss(&mut self) {
        if self.cfg.max_daily_loss_usd == 0 || self.halted {
            return;
        }
        let limit = i128::from(self.cfg.max_daily_loss_usd) * i128::from(PX_SCALE);
        if self.equity_e9() - self.day_start_equity_e9 <= -limit {
            self.halted = true;
            self.halts += 1;
            for i in 0..self.syms.len() {
                let pos = self.syms[i].pos;
                if pos == 0 {
                    continue;
                }
                let sym = &self.syms[i];
                // What is already being closed by working exits needs no second order.
                let closing = if pos > 0 { sym.open_reduce_sell } else { sym.open_reduce_buy };
                let rest = pos.unsigned_abs().saturating_sub(closing);
                if rest == 0 {
                    continue;
                }
                let id = self.own_order_id();
                let order = Order {
                    order_id: id,
                    symbol: SymbolId(i as u32),
                    qty: u32::try_from(rest).unwrap_or(u32::MAX),
                    side: if pos > 0 { Side::Sell.raw() } else { Side::Buy.raw() },
                    order_type: OrderType::Market.raw(),
                    reduce_only: 1,
                    ..Default::default()
                };
                // Risk's own orders are working orders like any other: a strategy exit of the
                // same shares is then refused instead of selling them twice.
                self.register(&order, 0);
                self.flatten.push(order);
            }
        }
    }

    /// Decide an intent placed at event time `ts`. Accepted orders count as open until a
    /// terminal report arrives.
    pub fn check(&mut self, o: &Order, ts: i64) -> Decision {
        let r = self.check_inner(o, ts);
        match r {
            Ok(()) => {
                let i = o.symbol.0 as usize;
                let px = if o.reduce_only != 0 { 0 } else { self.notional_px(o) };
                self.register(o, px);
                if self.cfg.max_orders_per_sec > 0 {
                    if self.rate.len() == self.cfg.max_orders_per_sec as usize {
                        self.rate.pop_front();
                    }
                    self.rate.push_back(ts);
                }
                self.update_active(i);
            }
            Err(reason) => self.rejects[reason.raw() as usize] += 1,
        }
        r
    }

    /// The price an order's notional is counted at: its limit or stop, else the symbol's mark.
    fn notional_px(&self, o: &Order) -> i64 {
        match o.kind() {
            Some(OrderType::Limit) => o.limit_px_e9,
            Some(OrderType::Stop) => o.stop_px_e9,
            _ => self.syms.get(o.symbol.0 as usize).map_or(0, |s| s.mark_px_e9),
        }
    }

    /// The working order `id` as risk counts it (the order as last changed), if any.
    pub fn open_order(&self, id: OrderId) -> Option<Order> {
        self.open.get(&id).map(|&(o, _, _)| o)
    }

    /// Check a request to change working order `id` to `qty` total shares (what already filled
    /// included) and new prices (0 keeps a price): the changed order must pass every check a
    /// new order passes, with the order's current rest left out of the limits. Nothing changes
    /// until the venue reports `Replaced`. Returns the changed order with the decision.
    pub fn check_replace(
        &mut self,
        id: OrderId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts: i64,
    ) -> (Option<Order>, Decision) {
        let Some(&(order, leaves, px)) = self.open.get(&id) else { return (None, Err(Reason::InvalidOrder)) };
        let filled = order.qty.saturating_sub(leaves);
        let mut changed = order;
        changed.qty = qty;
        if limit_px_e9 > 0 {
            changed.limit_px_e9 = limit_px_e9;
        }
        if stop_px_e9 > 0 {
            changed.stop_px_e9 = stop_px_e9;
        }
        if qty <= filled {
            self.rejects[Reason::InvalidOrder.raw() as usize] += 1;
            return (Some(changed), Err(Reason::InvalidOrder));
        }
        // The rest as it would be, checked with the current rest taken out (then put back).
        let mut rest = changed;
        rest.qty = qty - filled;
        let i = order.symbol.0 as usize;
        let saved = (self.syms[i], self.open_orders, self.open_notional_e9);
        self.release(&order, leaves, px);
        self.syms[i].open_orders -= 1;
        self.open_orders -= 1;
        if order.reduce_only == 0 {
            self.syms[i].open_entries -= 1;
        }
        let d = self.check_inner(&rest, ts);
        (self.syms[i], self.open_orders, self.open_notional_e9) = saved;
        match d {
            Ok(()) => {
                self.replacing.insert(id, changed);
                if self.cfg.max_orders_per_sec > 0 {
                    if self.rate.len() == self.cfg.max_orders_per_sec as usize {
                        self.rate.pop_front();
                    }
                    self.rate.push_back(ts);
                }
            }
            Err(reason) => self.rejects[reason.raw() as usize] += 1,
        }
        (Some(changed), d)
    }

    /// Count an order as working.
    fn register(&mut self, o: &Order, px: i64) {
        let i = o.symbol.0 as usize;
        let sym = &mut self.syms[i];
        sym.open_orders += 1;
        let q = u64::from(o.qty);
        match (o.side(), o.reduce_only != 0) {
            (Some(Side::Buy), false) => sym.open_buy += q,
            (Some(Side::Buy), true) => {
                sym.open_buy += q;
                sym.open_reduce_buy += q;
            }
            (_, false) => sym.open_sell += q,
            (_, true) => {
                sym.open_sell += q;
                sym.open_reduce_sell += q;
            }
        }
        if o.reduce_only == 0 {
            sym.open_entries += 1;
        }
        self.open_orders += 1;
        self.open_notional_e9 += i128::from(o.qty) * i128::from(px);
        self.open.insert(o.order_id, (*o, o.qty, px));
        self.update_active(i);
    }

    /// Release `qty` shares of a working order (filled, or done).
    fn release(&mut self, order: &Order, qty: u32, px: i64) {
        let sym = &mut self.syms[order.symbol.0 as usize];
        let q = u64::from(qty);
        match order.side() {
            Some(Side::Buy) => sym.open_buy = sym.open_buy.saturating_sub(q),
            _ => sym.open_sell = sym.open_sell.saturating_sub(q),
        }
        if order.reduce_only != 0 {
            match order.side() {
                Some(Side::Buy) => sym.open_reduce_buy = sym.open_reduce_buy.saturating_sub(q),
                _ => sym.open_reduce_sell = sym.open_reduce_sell.saturating_sub(q),
            }
        }
        self.open_notional_e9 -= i128::from(qty) * i128::from(px);
    }

    fn check_inner(&self, o: &Order, ts: i64) -> Decision {
        let Some(i) = usize::try_from(o.symbol.0).ok().filter(|&i| i < self.syms.len()) else {
            return Err(Reason::SymbolFaulted);
        };
        let (Some(side), Some(kind)) = (o.side(), o.kind()) else {
            return Err(Reason::InvalidOrder);
        };
        let px_ok = match kind {
            OrderType::Market => true,
            OrderType::Limit => o.limit_px_e9 > 0,
            OrderType::Stop => o.stop_px_e9 > 0,
        };
        if o.qty == 0 || !px_ok {
            return Err(Reason::InvalidOrder);
        }
        let sym = &self.syms[i];
        if self.cfg.warmup_gate && !sym.live {
            return Err(Reason::WarmUp);
        }
        let reduce = o.reduce_only != 0;
        if reduce {
            // It must reduce the position net of the exits already working (risk's own included).
            let q = u64::from(o.qty);
            let reduces = (side == Side::Sell && sym.pos > 0 && q + sym.open_reduce_sell <= sym.pos.unsigned_abs())
                || (side == Side::Buy && sym.pos < 0 && q + sym.open_reduce_buy <= sym.pos.unsigned_abs());
            if !reduces {
                return Err(Reason::InvalidOrder);
            }
        }
        if !reduce && self.halted {
            return Err(Reason::DailyLossHalt);
        }
        if !reduce && let Some(why) = self.stopped {
            return Err(why);
        }
        if !reduce && sym.removing {
            return Err(Reason::SymbolRemoving);
        }
        if !reduce && self.cfg.one_active_trade && self.active_count > u32::from(sym.active) {
            return Err(Reason::OneActiveTrade);
        }
        if self.cfg.max_open_orders > 0 && self.open_orders >= self.cfg.max_open_orders {
            return Err(Reason::MaxOpenOrders);
        }
        if self.cfg.max_orders_per_sec > 0
            && self.rate.len() == self.cfg.max_orders_per_sec as usize
            && self.rate.front().is_some_and(|&t| ts - t < 1_000_000_000)
        {
            return Err(Reason::MaxOrderRate);
        }
        if !reduce && self.cfg.max_position_shares > 0 {
            let max = i128::from(self.cfg.max_position_shares);
            let worst = match side {
                Side::Buy => i128::from(sym.pos) + i128::from(sym.open_buy) + i128::from(o.qty),
                Side::Sell => i128::from(sym.pos) - i128::from(sym.open_sell) - i128::from(o.qty),
            };
            if worst.abs() > max {
                return Err(Reason::MaxPosition);
            }
        }
        if !reduce && self.cfg.max_gross_notional_usd > 0 {
            let px = self.notional_px(o);
            if px <= 0 {
                // A market order for a symbol with no price yet cannot be valued: refused.
                return Err(Reason::MaxGrossNotional);
            }
            // Positions at their marks, plus working orders that add exposure, plus this one.
            let after = self.gross_e9 + self.open_notional_e9 + i128::from(o.qty) * i128::from(px);
            if after > i128::from(self.cfg.max_gross_notional_usd) * i128::from(PX_SCALE) {
                return Err(Reason::MaxGrossNotional);
            }
        }
        Ok(())
    }

    /// `dq` shares of symbol `i` changed hands at `px`: position, cash and marks move.
    fn apply_fill(&mut self, i: usize, dq: i64, px: i64, commission_e9: i64) {
        if self.syms[i].mark_px_e9 == 0 {
            self.set_mark(i, px);
        }
        let sym = &mut self.syms[i];
        let mark = i128::from(sym.mark_px_e9);
        self.cash_e9 -= i128::from(dq) * i128::from(px) + i128::from(commission_e9);
        self.mark_e9 += i128::from(dq) * mark;
        let old_abs = i128::from(sym.pos.unsigned_abs());
        sym.pos += dq;
        self.gross_e9 += (i128::from(sym.pos.unsigned_abs()) - old_abs) * mark;
    }

    /// Refuse new entries for the whole account with `reason` (`None`: let them through again).
    /// Exits (reduce-only orders) always pass.
    pub fn stop_entries(&mut self, reason: Option<Reason>) {
        self.stopped = reason;
    }

    /// Why new entries are refused, if they are.
    pub fn entries_stopped(&self) -> Option<Reason> {
        self.stopped
    }

    /// Take the broker's position for symbol `s` (a reconcile under the adopt policy): the
    /// difference is booked as a fill at `avg_px_e9` (the broker's average entry price; the
    /// symbol's mark when that is 0), with no commission. Returns the shares adopted.
    pub fn adopt_position(&mut self, s: SymbolId, broker_qty: i64, avg_px_e9: i64) -> i64 {
        let i = s.0 as usize;
        let Some(sym) = self.syms.get(i) else { return 0 };
        let dq = broker_qty - sym.pos;
        if dq != 0 {
            let px = if avg_px_e9 > 0 { avg_px_e9 } else { sym.mark_px_e9 };
            self.apply_fill(i, dq, px, 0);
            self.update_active(i);
        }
        dq
    }

    /// Count an order working at the broker that this run takes over (`order.qty` = its leaves)
    /// as open, like an order risk accepted.
    pub fn adopt_order(&mut self, order: &Order) {
        if (order.symbol.0 as usize) < self.syms.len() && !self.open.contains_key(&order.order_id) {
            let px = if order.reduce_only != 0 { 0 } else { self.notional_px(order) };
            self.register(order, px);
        }
    }

    /// Apply an execution report (fills move positions and cash; terminal reports close orders).
    /// Reports for orders risk does not know as open (its own flattening orders, end-of-run
    /// liquidations) only move positions and cash.
    pub fn on_report(&mut self, r: &ExecReport) {
        let i = r.symbol.0 as usize;
        if i >= self.syms.len() {
            return;
        }
        let Some(kind) = r.exec_kind() else { return };
        let side = r.exec_side().unwrap_or(Side::Buy);
        if kind.is_fill() && r.fill_qty > 0 {
            self.apply_fill(i, side.sign() * i64::from(r.fill_qty), r.fill_px_e9, r.commission_e9);
        }
        if kind == ExecKind::Replaced {
            if let Some(&(order, leaves, px)) = self.open.get(&r.order_id) {
                // Release the old rest and count the new one (at the changed order's price).
                self.release(&order, leaves, px);
                let filled = order.qty.saturating_sub(leaves);
                let mut changed = self.replacing.remove(&r.order_id).unwrap_or(order);
                changed.qty = filled + r.leaves_qty;
                let mut rest = changed;
                rest.qty = r.leaves_qty;
                self.syms[i].open_orders -= 1;
                self.open_orders -= 1;
                if order.reduce_only == 0 {
                    self.syms[i].open_entries -= 1;
                }
                let new_px = if rest.reduce_only != 0 { 0 } else { self.notional_px(&rest) };
                self.register(&rest, new_px);
                if let Some(e) = self.open.get_mut(&r.order_id) {
                    e.0 = changed;
                }
            }
            return;
        }
        if kind == ExecKind::ReplaceRejected {
            self.replacing.remove(&r.order_id);
        }
        if let Some(&(order, leaves, px)) = self.open.get(&r.order_id) {
            let done = if kind.is_fill() { r.fill_qty.min(leaves) } else { 0 };
            let release = if kind.is_terminal() { leaves } else { done };
            self.release(&order, release, px);
            if kind.is_terminal() {
                self.open.remove(&r.order_id);
                let sym = &mut self.syms[i];
                sym.open_orders = sym.open_orders.saturating_sub(1);
                if order.reduce_only == 0 {
                    sym.open_entries = sym.open_entries.saturating_sub(1);
                }
                self.open_orders = self.open_orders.saturating_sub(1);
            } else if let Some(e) = self.open.get_mut(&r.order_id) {
                e.1 = leaves - done;
            }
        }
        self.update_active(i);
        self.track_drawdown();
        self.check_daily_loss();
    }
}
#[cfg(test)]
#[path = "risk_tests.rs"]
mod tests;
