//! The simulated venue: [`SimBook`] holds one symbol's working orders and the fill rules (see the
//! module docs of [`crate::venue`]); [`SimVenue`] puts one book per symbol behind the [`Venue`] trait.

use super::{PerturbConfig, Slippage, Venue, VenueConfig};
use crate::records::{Bar, ExecKind, ExecReport, Order, OrderId, OrderType, Reason, Side, SymbolId};

#[derive(Debug, Clone, Copy)]
struct Working {
    order: Order,
    placed_ns: i64,
    leaves: u32,
    /// Bars it could have filled on that it still lets pass (order latency).
    skip: u32,
}

/// SplitMix64: a small, fast, seedable generator (the same sequence everywhere).
#[derive(Debug, Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `ppm` / 1e6.
    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.next() % 1_000_000 < u64::from(ppm)
    }
    /// A uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    /// |N(0, 1)| (Box-Muller).
    fn half_normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).abs()
    }
}

impl Working {
    fn deadline(&self) -> i64 {
        if self.order.timeout_ns > 0 { self.placed_ns.saturating_add(self.order.timeout_ns) } else { i64::MAX }
    }
}

/// The working orders of one symbol and the rules that fill them.
#[derive(Debug)]
pub struct SimBook {
    working: Vec<Working>,
    slippage: Box<dyn Slippage>,
    commission_per_share_e9: i64,
    max_volume_ppm: u32,
    perturb: PerturbConfig,
    rng: Rng,
}

impl SimBook {
    /// An empty book.
    pub fn new(cfg: &VenueConfig) -> Self {
        Self::for_symbol(cfg, SymbolId(0))
    }

    /// An empty book for `symbol` (its perturbation draws are seeded by the study's seed and the
    /// symbol, so symbols do not share a sequence).
    pub fn for_symbol(cfg: &VenueConfig, symbol: SymbolId) -> Self {
        let mut rng = Rng(cfg.perturb.seed ^ (u64::from(symbol.0) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        SimBook {
            working: Vec::with_capacity(8),
            slippage: cfg.slippage.build(),
            commission_per_share_e9: cfg.commission_per_share_e9,
            max_volume_ppm: cfg.max_volume_ppm,
            perturb: cfg.perturb,
            rng,
        }
    }

    /// Whether the venue misses this order on arrival (a perturbed entry).
    pub fn misses(&mut self, order: &Order) -> bool {
        order.reduce_only == 0 && self.rng.chance(self.perturb.miss_entry_ppm)
    }

    /// Half the spread plus a slippage draw, in price units, for a taker fill at `px`.
    fn taker_cost(&mut self, px: i64) -> i64 {
        let p = self.perturb;
        let mut bps = f64::from(p.spread_bps) / 2.0;
        if p.slippage_sd_bps > 0 {
            bps += self.rng.half_normal() * f64::from(p.slippage_sd_bps);
        }
        (px as f64 * bps / 10_000.0).round() as i64
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
        self.working.push(Working { order, placed_ns, leaves: order.qty, skip: self.perturb.latency_bars });
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

    /// Expire orders whose timeout has passed at `ts` (a clock tick); returns the earliest
    /// deadline still pending (`i64::MAX` when none).
    pub fn expire(&mut self, ts: i64, out: &mut impl FnMut(ExecReport)) -> i64 {
        let mut next = i64::MAX;
        let mut i = 0;
        while i < self.working.len() {
            let w = self.working[i];
            let deadline = w.deadline();
            if ts >= deadline {
                out(self.report(&w, ts, ExecKind::Expired, Reason::None, 0, 0));
                self.working.remove(i);
                continue;
            }
            next = next.min(deadline);
            i += 1;
        }
        next
    }

    /// The earliest timeout deadline of the working orders (`i64::MAX` when none).
    pub fn next_deadline(&self) -> i64 {
        self.working.iter().map(Working::deadline).min().unwrap_or(i64::MAX)
    }

    /// Change a working order's quantity (the new total, at least what already filled plus one)
    /// and its limit/stop prices (0 keeps the old one). Returns the `Replaced` report, or `None`
    /// when the order is not working or the quantity is below what already filled.
    pub fn replace(&mut self, id: OrderId, qty: u32, limit_px_e9: i64, stop_px_e9: i64, ts: i64) -> Option<ExecReport> {
        let w = self.working.iter_mut().find(|w| w.order.order_id == id)?;
        let filled = w.order.qty - w.leaves;
        if qty <= filled {
            return None;
        }
        w.leaves = qty - filled;
        w.order.qty = qty;
        if limit_px_e9 > 0 {
            w.order.limit_px_e9 = limit_px_e9;
        }
        if stop_px_e9 > 0 {
            w.order.stop_px_e9 = stop_px_e9;
        }
        let w = *w;
        let mut r = self.report(&w, ts, ExecKind::Replaced, Reason::None, 0, 0);
        r.leaves_qty = w.leaves;
        Some(r)
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
            if w.order.timeout_ns > 0 && ts >= w.deadline() {
                out(self.report(&w, ts, ExecKind::Expired, Reason::None, 0, 0));
                self.working.remove(i);
                continue;
            }
            if w.placed_ns > ts {
                // Placed after this bar started (e.g. on a tick inside it): no look-ahead.
                i += 1;
                continue;
            }
            if w.skip > 0 {
                // Order latency: this bar passes by.
                self.working[i].skip -= 1;
                i += 1;
                continue;
            }
            let side = w.order.side().unwrap_or(Side::Buy);
            // A limit fills only when the market trades through it by half the spread.
            let half_spread = |px: i64, bps: u32| (i128::from(px) * i128::from(bps) / 20_000) as i64;
            let px = match w.order.kind() {
                Some(OrderType::Market) => Some(self.slippage.apply(side, bar.open_px_e9)),
                Some(OrderType::Limit) => {
                    let hs = half_spread(w.order.limit_px_e9, self.perturb.spread_bps);
                    let l = w.order.limit_px_e9 - side.sign() * hs;
                    match side {
                        Side::Buy if bar.open_px_e9 <= l => Some(bar.open_px_e9),
                        Side::Buy if bar.low_px_e9 <= l => Some(w.order.limit_px_e9),
                        Side::Sell if bar.open_px_e9 >= l => Some(bar.open_px_e9),
                        Side::Sell if bar.high_px_e9 >= l => Some(w.order.limit_px_e9),
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
            let Some(mut px) = px else {
                i += 1;
                continue;
            };
            if !matches!(w.order.kind(), Some(OrderType::Limit))
                && (self.perturb.spread_bps > 0 || self.perturb.slippage_sd_bps > 0)
            {
                px += side.sign() * self.taker_cost(px);
            }
            let cap = if self.max_volume_ppm > 0 && bar.volume > 0 {
                let c = (u128::from(bar.volume) * u128::from(self.max_volume_ppm) / 1_000_000).max(1);
                u32::try_from(c).unwrap_or(u32::MAX)
            } else {
                u32::MAX
            };
            let mut qty = w.leaves.min(cap);
            if qty > 1 && self.rng.chance(self.perturb.partial_fill_ppm) {
                qty /= 2;
            }
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
        let w = Working { order, placed_ns: ts, leaves: order.qty, skip: 0 };
        let mut r = self.report(&w, ts, ExecKind::Filled, Reason::EndOfRun, order.qty, px_e9);
        r.leaves_qty = 0;
        r
    }
}

/// The simulated venue: one [`SimBook`] per symbol, matched against that symbol's bars.
#[derive(Debug)]
pub struct SimVenue {
    cfg: VenueConfig,
    books: Vec<Option<SimBook>>,
    /// Each symbol's last bar: (start time, close).
    last: Vec<(i64, i64)>,
    next_deadline: i64,
}

impl SimVenue {
    /// An empty venue for `n` symbols (it grows with the universe).
    pub fn new(cfg: &VenueConfig, n: usize) -> Self {
        let mut v = SimVenue { cfg: cfg.clone(), books: Vec::new(), last: Vec::new(), next_deadline: i64::MAX };
        v.ensure_symbols(n);
        v
    }

    fn book(&mut self, s: SymbolId) -> Option<&mut SimBook> {
        let cfg = &self.cfg;
        self.books.get_mut(s.0 as usize).map(|b| b.get_or_insert_with(|| SimBook::for_symbol(cfg, s)))
    }
}

#[allow(clippy::too_many_arguments)] // the trait's replace
impl Venue for SimVenue {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn simulated(&self) -> bool {
        true
    }
    fn ensure_symbols(&mut self, n: usize) {
        if self.books.len() < n {
            self.books.resize_with(n, || None);
            self.last.resize(n, (0, 0));
        }
    }
    fn submit(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        let Some(book) = self.book(order.symbol) else {
            out.push(ExecReport {
                ts_event_ns: ts_ns,
                order_id: order.order_id,
                symbol: order.symbol,
                kind: ExecKind::Rejected.raw(),
                side: order.side,
                reason: Reason::VenueRejected.raw(),
                ..Default::default()
            });
            return;
        };
        if book.misses(order) {
            out.push(ExecReport {
                ts_event_ns: ts_ns,
                order_id: order.order_id,
                symbol: order.symbol,
                kind: ExecKind::Rejected.raw(),
                side: order.side,
                reason: Reason::VenueRejected.raw(),
                ..Default::default()
            });
            return;
        }
        book.add(*order, ts_ns);
        if order.timeout_ns > 0 {
            self.next_deadline = self.next_deadline.min(ts_ns.saturating_add(order.timeout_ns));
        }
        out.push(ExecReport {
            ts_event_ns: ts_ns,
            order_id: order.order_id,
            symbol: order.symbol,
            leaves_qty: order.qty,
            kind: ExecKind::Accepted.raw(),
            side: order.side,
            ..Default::default()
        });
    }
    fn cancel(&mut self, id: OrderId, symbol: SymbolId, ts_ns: i64, reason: Reason, out: &mut Vec<ExecReport>) {
        if let Some(r) = self.book(symbol).and_then(|b| b.cancel(id, ts_ns, reason)) {
            out.push(r);
        }
    }
    fn replace(
        &mut self,
        id: OrderId,
        symbol: SymbolId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
        out: &mut Vec<ExecReport>,
    ) {
        match self.book(symbol).and_then(|b| b.replace(id, qty, limit_px_e9, stop_px_e9, ts_ns)) {
            Some(r) => out.push(r),
            None => out.push(ExecReport {
                ts_event_ns: ts_ns,
                order_id: id,
                symbol,
                kind: ExecKind::ReplaceRejected.raw(),
                reason: Reason::VenueRejected.raw(),
                ..Default::default()
            }),
        }
    }
    #[inline]
    fn on_bar(&mut self, symbol: SymbolId, bar: &Bar, out: &mut Vec<ExecReport>) {
        let i = symbol.0 as usize;
        if let Some(c) = self.last.get_mut(i) {
            *c = (bar.ts_event_ns, bar.close_px_e9);
        }
        if let Some(Some(book)) = self.books.get_mut(i)
            && !book.is_empty()
        {
            book.on_bar(bar, &mut |r| out.push(r));
        }
    }
    fn on_timer(&mut self, ts_ns: i64, out: &mut Vec<ExecReport>) {
        if ts_ns < self.next_deadline {
            return;
        }
        let mut next = i64::MAX;
        for book in self.books.iter_mut().flatten() {
            if !book.is_empty() {
                next = next.min(book.expire(ts_ns, &mut |r| out.push(r)));
            }
        }
        self.next_deadline = next;
    }
    #[inline]
    fn has_working(&self, symbol: SymbolId) -> bool {
        matches!(self.books.get(symbol.0 as usize), Some(Some(b)) if !b.is_empty())
    }
    /// Fills at the symbol's last close, stamped with that bar's time (the bar file's convention).
    fn close_out(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        let (ts, px) = match self.last.get(order.symbol.0 as usize).copied() {
            Some((t, px)) if px > 0 => (t, px),
            _ => (ts_ns, 0),
        };
        if let Some(book) = self.book(order.symbol) {
            out.push(book.liquidation(*order, ts, px));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SlippageConfig;
    use super::*;

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

    #[test]
    fn no_fill_on_a_bar_that_started_before_the_order() {
        let mut book = SimBook::new(&VenueConfig::default());
        // placed at 1_500, the bar starts at 1_000: it waits for the next bar
        book.add(order(1, Side::Buy, OrderType::Market, 1, 0, 0), 1_500);
        assert!(run(&mut book, &bar(10, 12, 9, 11, 0)).is_empty());
        let mut b2 = bar(11, 12, 9, 11, 0);
        b2.ts_event_ns = 2_000;
        assert_eq!(run(&mut book, &b2), vec![(1, ExecKind::Filled, 1, 11)]);
    }

    #[test]
    fn sim_venue_accepts_expires_on_a_tick_and_replaces() {
        let mut v = SimVenue::new(&VenueConfig::default(), 2);
        let mut out = Vec::new();
        let mut o = order(7, Side::Buy, OrderType::Limit, 10, 5, 0);
        o.timeout_ns = 1_000;
        v.submit(&o, 100, &mut out);
        assert_eq!(out[0].exec_kind(), Some(ExecKind::Accepted));
        assert!(v.has_working(SymbolId(0)));
        v.on_timer(1_099, &mut out); // deadline is 1_100
        assert_eq!(out.len(), 1);
        v.on_timer(1_100, &mut out);
        assert_eq!(out[1].exec_kind(), Some(ExecKind::Expired));
        assert!(!v.has_working(SymbolId(0)));
        // replace: qty 10 -> 20 and the limit 5 -> 6; then a bar at 6 fills all 20 at 6
        out.clear();
        v.submit(&order(8, Side::Buy, OrderType::Limit, 10, 5, 0), 0, &mut out);
        v.replace(OrderId(8), SymbolId(0), 20, 6 * D, 0, 0, &mut out);
        assert_eq!((out[1].exec_kind(), out[1].leaves_qty), (Some(ExecKind::Replaced), 20));
        out.clear();
        v.on_bar(SymbolId(0), &bar(7, 8, 6, 7, 0), &mut out);
        assert_eq!((out[0].fill_qty, out[0].fill_px_e9), (20, 6 * D));
        // a replace of an order that is gone is refused
        v.replace(OrderId(8), SymbolId(0), 30, 0, 0, 0, &mut out);
        assert_eq!(out[1].exec_kind(), Some(ExecKind::ReplaceRejected));
        // an unknown symbol is a venue rejection, not a panic
        out.clear();
        let mut bad = order(9, Side::Buy, OrderType::Market, 1, 0, 0);
        bad.symbol = SymbolId(99);
        v.submit(&bad, 0, &mut out);
        assert_eq!(out[0].exec_reason(), Some(Reason::VenueRejected));
    }

    fn perturbed(p: PerturbConfig) -> VenueConfig {
        VenueConfig { commission_per_share_e9: 0, perturb: p, ..Default::default() }
    }

    /// Reports of one bar with exact prices.
    fn exact(book: &mut SimBook, b: &Bar) -> Vec<(u64, ExecKind, u32, i64)> {
        let mut v = Vec::new();
        book.on_bar(b, &mut |r| v.push((r.order_id.0, r.exec_kind().unwrap(), r.fill_qty, r.fill_px_e9)));
        v
    }

    #[test]
    fn spread_and_latency_move_fills_to_later_bars_and_worse_prices() {
        // 100 bps spread: a market buy pays half of it; a buy limit at 10 needs the market at 9.95.
        let mut book = SimBook::new(&perturbed(PerturbConfig { spread_bps: 100, ..Default::default() }));
        book.add(order(1, Side::Buy, OrderType::Market, 10, 0, 0), 0);
        book.add(order(2, Side::Buy, OrderType::Limit, 10, 10, 0), 0);
        let got = exact(&mut book, &bar(20, 21, 10, 20, 0));
        assert_eq!(
            got,
            vec![(1, ExecKind::Filled, 10, 20 * D + D / 10)],
            "the limit was only touched, not traded through"
        );
        let got = exact(&mut book, &bar(11, 11, 9, 10, 0));
        assert_eq!(got, vec![(2, ExecKind::Filled, 10, 10 * D)], "through by half the spread: at the limit");
        // Two bars of latency: the order lets two fillable bars pass.
        let mut book = SimBook::new(&perturbed(PerturbConfig { latency_bars: 2, ..Default::default() }));
        book.add(order(3, Side::Buy, OrderType::Market, 5, 0, 0), 0);
        assert!(exact(&mut book, &bar(10, 10, 10, 10, 0)).is_empty());
        assert!(exact(&mut book, &bar(11, 11, 11, 11, 0)).is_empty());
        assert_eq!(exact(&mut book, &bar(12, 12, 12, 12, 0)), vec![(3, ExecKind::Filled, 5, 12 * D)]);
    }

    #[test]
    fn missed_entries_partial_fills_and_slippage_follow_the_seed() {
        let cfg = |seed| {
            perturbed(PerturbConfig {
                seed,
                slippage_sd_bps: 10,
                miss_entry_ppm: 300_000,
                partial_fill_ppm: 300_000,
                ..Default::default()
            })
        };
        // One symbol's outcome for 200 market buys of 10 shares, each on its own bar.
        let outcome = |seed: u64| {
            let mut v = SimVenue::new(&cfg(seed), 1);
            let (mut missed, mut partial, mut px_sum, mut out) = (0, 0, 0i64, Vec::new());
            for n in 0..200u64 {
                out.clear();
                let mut o = order(n, Side::Buy, OrderType::Market, 10, 0, 0);
                if n % 10 == 0 {
                    o.reduce_only = 1; // exits are never missed
                }
                v.submit(&o, 0, &mut out);
                if out[0].exec_kind() == Some(ExecKind::Rejected) {
                    assert_eq!((out[0].exec_reason(), o.reduce_only), (Some(Reason::VenueRejected), 0));
                    missed += 1;
                    continue;
                }
                out.clear();
                v.on_bar(SymbolId(0), &bar(100, 100, 100, 100, 0), &mut out);
                if out[0].exec_kind() == Some(ExecKind::PartiallyFilled) {
                    assert_eq!(out[0].fill_qty, 5);
                    partial += 1;
                    v.cancel(OrderId(n), SymbolId(0), 0, Reason::Requested, &mut out);
                }
                assert!(out[0].fill_px_e9 >= 100 * D, "slippage is against the buyer");
                px_sum += out[0].fill_px_e9 - 100 * D;
            }
            (missed, partial, px_sum)
        };
        let a = outcome(7);
        assert_eq!(a, outcome(7), "the same seed, the same run");
        assert_ne!(a, outcome(8), "another seed, another run");
        let (missed, partial, slip) = a;
        // 180 entries at 30 %: 54 expected; partials on 30 % of the fills; slippage about
        // 0.8 x 10 bps = 8 cents a fill on average.
        assert!((30..80).contains(&missed), "{missed}");
        assert!((20..70).contains(&partial), "{partial}");
        let fills = 200 - missed;
        let mean_cents = slip as f64 / fills as f64 / (D as f64 / 100.0);
        assert!((4.0..12.0).contains(&mean_cents), "{mean_cents}");
    }
}
