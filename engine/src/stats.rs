//! Positions and trade statistics, driven by execution reports in sequence order.

use crate::records::{ExecReport, PX_SCALE, Side, SymbolId};

/// Per-symbol position and round-trip bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct SymbolBook {
    /// Position in shares.
    pub position: i64,
    /// Fills.
    pub fills: u64,
    /// Closed round trips (flat -> position -> flat; a flip closes one and opens the next).
    pub trades: u64,
    /// Round trips with positive net PnL.
    pub wins: u64,
    /// Net PnL of closed trades plus the cash flow of the open one, 1e-9 USD.
    pub net_pnl_e9: i128,
    /// Commissions paid, 1e-9 USD.
    pub commission_e9: i128,
    /// Net PnL of the closed round trips so far (commissions included), 1e-9 USD.
    pub realized_pnl_e9: i128,
    /// Fills that closed a position at the end of the run.
    pub closeouts: u64,
    trade_cash_e9: i128,
}

/// The position tracker: positions, PnL and round trips per symbol.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    /// Indexed by symbol id.
    pub symbols: Vec<SymbolBook>,
    /// Net PnL of each closed round trip, in close order.
    pub trade_pnls_e9: Vec<i128>,
}

impl Positions {
    /// For `n` symbols.
    pub fn new(n: usize) -> Self {
        Positions { symbols: vec![SymbolBook::default(); n], trade_pnls_e9: Vec::new() }
    }

    /// Make room for symbol ids below `n` (the universe grew).
    pub fn ensure_symbols(&mut self, n: usize) {
        if self.symbols.len() < n {
            self.symbols.resize(n, SymbolBook::default());
        }
    }

    /// Take the broker's position for `s` (a reconcile under the adopt policy): the difference is
    /// booked like a fill at `px_e9` with no commission, but not counted as one.
    pub fn adopt(&mut self, s: SymbolId, qty: i64, px_e9: i64) {
        let Some(b) = self.symbols.get(s.0 as usize) else { return };
        let dq = qty - b.position;
        if dq != 0 {
            self.book_shares(s.0 as usize, dq, px_e9, 0);
        }
    }

    /// Apply a report (only fills change anything).
    pub fn on_report(&mut self, r: &ExecReport) {
        let Some(kind) = r.exec_kind() else { return };
        if !kind.is_fill() || r.fill_qty == 0 {
            return;
        }
        let i = r.symbol.0 as usize;
        let Some(b) = self.symbols.get_mut(i) else { return };
        b.fills += 1;
        if r.reason == crate::records::Reason::EndOfRun.raw() {
            b.closeouts += 1;
        }
        let dq = r.exec_side().unwrap_or(Side::Buy).sign() * i64::from(r.fill_qty);
        self.book_shares(i, dq, r.fill_px_e9, r.commission_e9);
    }

    /// `dq` shares of symbol `i` changed hands at `px_e9`: cash, position and round trips move.
    fn book_shares(&mut self, i: usize, dq: i64, px_e9: i64, commission_e9: i64) {
        let b = &mut self.symbols[i];
        let qty = dq.abs();
        b.commission_e9 += i128::from(commission_e9);
        let cash = -i128::from(dq) * i128::from(px_e9) - i128::from(commission_e9);
        b.net_pnl_e9 += cash;
        let old = b.position;
        let new = old + dq;
        if old != 0 && (new == 0 || new.signum() != old.signum()) {
            // Closing (part of) this fill ends the trade; a flip opens a new one with the rest.
            let closing = old.abs();
            let part = cash * i128::from(closing) / i128::from(qty);
            let pnl = b.trade_cash_e9 + part;
            b.trades += 1;
            b.realized_pnl_e9 += pnl;
            if pnl > 0 {
                b.wins += 1;
            }
            self.trade_pnls_e9.push(pnl);
            b.trade_cash_e9 = cash - part;
        } else {
            b.trade_cash_e9 += cash;
        }
        b.position = new;
    }

    /// Totals over all symbols: (fills, trades, wins, net PnL e9, commissions e9).
    pub fn totals(&self) -> (u64, u64, u64, i128, i128) {
        self.symbols.iter().fold((0, 0, 0, 0, 0), |a, b| {
            (a.0 + b.fills, a.1 + b.trades, a.2 + b.wins, a.3 + b.net_pnl_e9, a.4 + b.commission_e9)
        })
    }

    /// Book of one symbol.
    pub fn symbol(&self, s: SymbolId) -> &SymbolBook {
        &self.symbols[s.0 as usize]
    }
}

/// Annualized Sharpe ratio of daily PnL (`sqrt(252) * mean / stdev`, sample stdev); 0 with fewer
/// than two days or no variation.
pub fn sharpe_daily(daily_pnl_e9: &[i128]) -> f64 {
    let n = daily_pnl_e9.len();
    if n < 2 {
        return 0.0;
    }
    let xs: Vec<f64> = daily_pnl_e9.iter().map(|&v| v as f64 / PX_SCALE as f64).collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    if var <= 0.0 { 0.0 } else { mean / var.sqrt() * 252f64.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ExecKind, OrderId};

    fn fill(side: Side, qty: u32, px: i64, comm: i64) -> ExecReport {
        ExecReport {
            ts_event_ns: 0,
            order_id: OrderId(1),
            fill_px_e9: px * PX_SCALE,
            commission_e9: comm,
            symbol: SymbolId(0),
            fill_qty: qty,
            leaves_qty: 0,
            kind: ExecKind::Filled.raw(),
            side: side.raw(),
            reason: 0,
        }
    }

    #[test]
    fn round_trips_and_flips() {
        let mut p = Positions::new(1);
        // buy 100 @ 10, sell 100 @ 12: +200 - 2 x 0.5 commission = +199
        p.on_report(&fill(Side::Buy, 100, 10, 500_000_000));
        p.on_report(&fill(Side::Sell, 100, 12, 500_000_000));
        // buy 100 @ 12, sell 200 @ 11 (flip short 100), buy 100 @ 11 (flat):
        // trade 2: -1200 + 1100 (half the sell) - 0 = -100; trade 3: +1100 - 1100 = 0
        p.on_report(&fill(Side::Buy, 100, 12, 0));
        p.on_report(&fill(Side::Sell, 200, 11, 0));
        p.on_report(&fill(Side::Buy, 100, 11, 0));
        assert_eq!(p.trade_pnls_e9, vec![199 * PX_SCALE as i128, -100 * PX_SCALE as i128, 0]);
        let (fills, trades, wins, net, comm) = p.totals();
        assert_eq!((fills, trades, wins), (5, 3, 1));
        assert_eq!(net, 99 * PX_SCALE as i128);
        assert_eq!(comm, PX_SCALE as i128);
        assert_eq!(p.symbol(SymbolId(0)).position, 0);
    }

    #[test]
    fn sharpe_of_constant_and_varying_pnl() {
        assert_eq!(sharpe_daily(&[1, 1, 1]), 0.0);
        assert_eq!(sharpe_daily(&[5]), 0.0);
        // pnl 1, 3 USD: mean 2, sample stdev sqrt(2) -> 2 / 1.41421 * 15.8745 = 22.45
        let s = sharpe_daily(&[PX_SCALE as i128, 3 * PX_SCALE as i128]);
        assert!((s - 2.0 / 2f64.sqrt() * 252f64.sqrt()).abs() < 1e-9);
    }
}
