//! The report's table metrics, computed from a run's `fills.csv` and its summary's starting
//! capital (plus the trading days its journal saw, when there is one). Every metric has a one-line
//! definition in [`DEFINITIONS`]; the HTML prints them, so what a number means is in the report.
//!
//! - A **trade** is a round trip per symbol: from flat to flat. A fill that flips a position (long
//!   to short in one order) closes the trade and opens the next; its commission is split between
//!   the two by quantity.
//! - **Equity** here is closed-trade equity: starting capital plus the PnL (after commissions) of
//!   the trades closed so far, sampled after every fill. It is exactly what `fills.csv` says (the
//!   sum over symbols of its `realized_pnl` column) with no marks of stale prices; the summary's
//!   drawdown, which marks open positions at every bar, is shown beside it.
//! - A **day** is a calendar date in the run's risk day (`[risk] day_utc_offset_s` of its
//!   `config.toml`, else UTC). Days the journal saw without fills count as days with zero PnL.

use super::journal::Stop;
use anyhow::{Result, anyhow};
use std::collections::BTreeMap;

/// Trading days per year for annualising daily ratios.
pub const DAYS_PER_YEAR: f64 = 252.0;
/// Fewer days than this give no Sharpe or Sortino in the table (the ratios are computed, but a
/// ratio over a handful of days is noise): the summary's rule.
pub const MIN_RATIO_DAYS: usize = crate::summary::SHARPE_MIN_DAYS;

/// Every metric of the table, with its one-line definition (shown in the report).
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "net PnL",
        "sum of every trade's PnL after commissions (USD); equals ending equity minus starting capital once all positions are closed",
    ),
    ("return", "net PnL / starting capital (starting capital from summary.json)"),
    (
        "CAGR",
        "(ending equity / starting capital)^(365.25 / calendar days) - 1, calendar days from the run's first to its last day, both included",
    ),
    (
        "Sharpe",
        "mean / sample standard deviation of daily equity returns, times sqrt(252); shown from 20 days. Days: those with a fill, plus those the journal saw inputs on (all of them with [journal] inputs = \"all\")",
    ),
    (
        "Sortino",
        "mean daily equity return / downside deviation (root mean square of min(return, 0) over all days), times sqrt(252); shown from 20 days",
    ),
    (
        "max drawdown",
        "largest fall of equity from a running peak, equity sampled after every fill and at each day's end (USD, and % of that peak)",
    ),
    (
        "profit factor",
        "gross win / gross loss: sum of winning trades' PnL over minus the sum of losing trades' PnL (n/a without a losing trade)",
    ),
    ("win rate", "trades with PnL > 0 / trades"),
    ("expectancy", "mean PnL per trade after commissions (USD)"),
    ("trades", "round trips per symbol, flat to flat (a position flip closes one trade and opens the next)"),
    ("fees", "sum of the commission column of fills.csv (USD)"),
    ("holding time", "time from a trade's first fill to the fill that makes it flat"),
    (
        "R-multiple",
        "a trade's PnL / its initial risk (quantity x |entry price - protective stop|); only for trades whose entry order carried a stop",
    ),
    ("time in market", "share of the run's span (first to last fill) with any position open"),
    (
        "exposure",
        "gross notional of open positions, sum of |shares| x their symbol's latest fill price, after every fill (USD)",
    ),
    (
        "daily PnL",
        "equity at a day's last sample minus equity at the previous day's (the first day: minus starting capital)",
    ),
];

/// One line of `fills.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// Fill time, ns UTC.
    pub ts_ns: i64,
    /// Symbol.
    pub symbol: String,
    /// Signed quantity: positive buys, negative sells.
    pub qty: i64,
    /// Price, USD.
    pub price: f64,
    /// Commission, USD.
    pub commission: f64,
    /// The order id as written (e.g. `SP500-3`).
    pub order_id: String,
}

/// Parse `fills.csv` (header `ts,symbol,side,qty,price,commission,order_id,...`). `name` names
/// the file in errors.
pub fn parse_fills(text: &str, name: &str) -> Result<Vec<Fill>> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else { return Ok(Vec::new()) };
    let cols: Vec<&str> = header.split(',').collect();
    let at = |want: &str| {
        cols.iter().position(|c| *c == want).ok_or_else(|| {
            anyhow!(
                "{name}: no column `{want}` in the header: not a ringtape fills.csv (re-run the backtest to write one)"
            )
        })
    };
    let (ts, sym, side, qty, px, comm) =
        (at("ts")?, at("symbol")?, at("side")?, at("qty")?, at("price")?, at("commission")?);
    let oid = cols.iter().position(|c| *c == "order_id");
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| anyhow!("{name}: line {}: bad {what}: the file is damaged (re-run the backtest)", i + 1);
        let get = |k: usize| f.get(k).copied().unwrap_or("");
        let ts_ns = get(ts)
            .parse::<jiff::Timestamp>()
            .map_err(|_| bad("ts"))
            .and_then(|t| i64::try_from(t.as_nanosecond()).map_err(|_| bad("ts")))?;
        let q: i64 = get(qty).parse().map_err(|_| bad("qty"))?;
        let signed = match get(side) {
            "buy" => q,
            "sell" => -q,
            _ => return Err(bad("side")),
        };
        out.push(Fill {
            ts_ns,
            symbol: get(sym).to_string(),
            qty: signed,
            price: get(px).parse().map_err(|_| bad("price"))?,
            commission: get(comm).parse().map_err(|_| bad("commission"))?,
            order_id: oid.map(|k| get(k).to_string()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// A closed round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    /// Symbol.
    pub symbol: String,
    /// +1 long, -1 short.
    pub direction: i8,
    /// First fill, ns UTC.
    pub open_ns: i64,
    /// The fill that made it flat, ns UTC.
    pub close_ns: i64,
    /// The first fill's price.
    pub entry_price: f64,
    /// The largest absolute position during the trade.
    pub max_qty: i64,
    /// PnL after commissions, USD.
    pub pnl: f64,
    /// Commissions, USD.
    pub fees: f64,
    /// The entry order's id.
    pub entry_order: String,
    /// PnL / initial risk, when the entry order carried a protective stop.
    pub r_multiple: Option<f64>,
}

/// A point of the equity curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// ns UTC.
    pub ts_ns: i64,
    /// Equity, USD.
    pub equity: f64,
    /// Gross exposure, USD.
    pub exposure: f64,
}

/// Per-symbol results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SymbolStats {
    /// Trades.
    pub trades: u64,
    /// Winning trades.
    pub wins: u64,
    /// Net PnL of closed trades, USD.
    pub net_pnl: f64,
    /// Commissions, USD.
    pub fees: f64,
}

/// Everything the tables and charts of one run need.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Starting capital, USD.
    pub capital: f64,
    /// Closed trades in close order.
    pub trades: Vec<Trade>,
    /// Equity after every fill.
    pub curve: Vec<Point>,
    /// (day number since the epoch, equity at the day's end), in day order.
    pub daily_equity: Vec<(i64, f64)>,
    /// Net PnL of closed trades, USD.
    pub net_pnl: f64,
    /// Ending equity (the last point; starting capital without fills).
    pub ending_equity: f64,
    /// Fees, USD.
    pub fees: f64,
    /// Fills.
    pub fills: usize,
    /// Shares still open at the end (per symbol, non-zero only).
    pub open_positions: BTreeMap<String, i64>,
    /// Max drawdown, USD.
    pub max_dd: f64,
    /// Max drawdown as % of its peak.
    pub max_dd_pct: f64,
    /// Compound annual growth rate (fraction), `None` without days.
    pub cagr: Option<f64>,
    /// Annualised Sharpe of daily returns (`None` with fewer than 2 days or no variation).
    pub sharpe: Option<f64>,
    /// Annualised Sortino of daily returns (`None` with fewer than 2 days or no down day).
    pub sortino: Option<f64>,
    /// Gross win / gross loss (`None` without a losing trade).
    pub profit_factor: Option<f64>,
    /// Winning trades / trades (`None` without trades).
    pub win_rate: Option<f64>,
    /// Mean PnL per trade (`None` without trades).
    pub expectancy: Option<f64>,
    /// Share of the fills' span with a position open.
    pub time_in_market: Option<f64>,
    /// Per symbol.
    pub per_symbol: BTreeMap<String, SymbolStats>,
}

struct Open {
    qty: i64,
    open_ns: i64,
    entry_price: f64,
    max_qty: i64,
    cash: f64,
    fees: f64,
    entry_order: String,
}

const DAY_NS: i64 = 86_400_000_000_000;

/// The day number of `ts_ns` in a day shifted by `offset_s` from UTC.
pub fn day_of(ts_ns: i64, offset_s: i64) -> i64 {
    (ts_ns + offset_s * 1_000_000_000).div_euclid(DAY_NS)
}

/// Compute the metrics of a run. `days` are extra day numbers the run saw (from its journal:
/// days without fills), `offset_s` the risk day's offset from UTC, `stops` the protective stop
/// orders accepted during the run (from the journal's decisions; empty when unknown): a trade's
/// protective stop is the first one on its symbol, on the closing side, placed while it was open.
pub fn compute(fills: &[Fill], capital: f64, days: &[i64], offset_s: i64, stops: &[Stop]) -> Metrics {
    let mut open: BTreeMap<&str, Open> = BTreeMap::new();
    let mut marks: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
    let mut trades = Vec::new();
    let mut curve = Vec::with_capacity(fills.len());
    let (mut closed, mut fees) = (0.0f64, 0.0f64);
    let mut in_market_ns = 0i64;
    let mut last_ts: Option<i64> = None;
    for f in fills {
        if let Some(t) = last_ts
            && open.values().any(|o| o.qty != 0)
        {
            in_market_ns += f.ts_ns - t;
        }
        last_ts = Some(f.ts_ns);
        fees += f.commission;
        let mut left = f.qty;
        while left != 0 {
            let o = open.entry(f.symbol.as_str()).or_insert_with(|| Open {
                qty: 0,
                open_ns: f.ts_ns,
                entry_price: f.price,
                max_qty: 0,
                cash: 0.0,
                fees: 0.0,
                entry_order: f.order_id.clone(),
            });
            if o.qty == 0 {
                *o = Open {
                    qty: 0,
                    open_ns: f.ts_ns,
                    entry_price: f.price,
                    max_qty: 0,
                    cash: 0.0,
                    fees: 0.0,
                    entry_order: f.order_id.clone(),
                };
            }
            // The part of this fill that belongs to the current trade: all of it, unless it
            // crosses zero (then up to flat).
            let part =
                if o.qty != 0 && o.qty.signum() != left.signum() && left.abs() > o.qty.abs() { -o.qty } else { left };
            let share = part as f64 / f.qty as f64;
            o.qty += part;
            o.max_qty = o.max_qty.max(o.qty.abs());
            o.cash -= part as f64 * f.price;
            o.fees += f.commission * share;
            left -= part;
            if o.qty == 0 {
                let pnl = o.cash - o.fees;
                closed += pnl;
                let direction: i64 = if part < 0 { 1 } else { -1 };
                let r_multiple = stops
                    .iter()
                    .find(|s| {
                        s.symbol == f.symbol
                            && i64::from(s.side) == -direction
                            && (o.open_ns..=f.ts_ns).contains(&s.ts_ns)
                    })
                    .and_then(|s| {
                        let risk = (o.entry_price - s.price).abs() * o.max_qty as f64;
                        (risk > 0.0).then(|| pnl / risk)
                    });
                trades.push(Trade {
                    symbol: f.symbol.clone(),
                    direction: direction as i8,
                    open_ns: o.open_ns,
                    close_ns: f.ts_ns,
                    entry_price: o.entry_price,
                    max_qty: o.max_qty,
                    pnl,
                    fees: o.fees,
                    entry_order: o.entry_order.clone(),
                    r_multiple,
                });
            }
        }
        let pos = open.get(f.symbol.as_str()).map_or(0, |o| o.qty);
        marks.insert(f.symbol.as_str(), (pos, f.price));
        let exposure: f64 = marks.values().map(|&(q, p)| q.abs() as f64 * p).sum();
        curve.push(Point { ts_ns: f.ts_ns, equity: capital + closed, exposure });
    }

    // Day ends: the last sample of each day; days without fills carry the equity forward.
    let mut by_day: BTreeMap<i64, f64> = days.iter().map(|&d| (d, f64::NAN)).collect();
    for p in &curve {
        by_day.insert(day_of(p.ts_ns, offset_s), p.equity);
    }
    let mut daily_equity = Vec::with_capacity(by_day.len());
    let mut carry = capital;
    for (d, e) in by_day {
        if !e.is_nan() {
            carry = e;
        }
        daily_equity.push((d, carry));
    }

    let ending_equity = curve.last().map_or(capital, |p| p.equity);
    let (mut peak, mut max_dd, mut max_dd_pct) = (capital, 0.0f64, 0.0f64);
    for e in curve.iter().map(|p| p.equity) {
        peak = peak.max(e);
        if peak - e > max_dd {
            max_dd = peak - e;
            max_dd_pct = if peak > 0.0 { max_dd / peak * 100.0 } else { 0.0 };
        }
    }

    let mut rets = Vec::with_capacity(daily_equity.len());
    let mut prev = capital;
    for &(_, e) in &daily_equity {
        rets.push(if prev != 0.0 { e / prev - 1.0 } else { 0.0 });
        prev = e;
    }
    let (sharpe, sortino) = ratios(&rets);
    let cagr = match (daily_equity.first(), daily_equity.last()) {
        (Some(a), Some(b)) if capital > 0.0 && ending_equity > 0.0 => {
            let span = (b.0 - a.0 + 1) as f64;
            Some((ending_equity / capital).powf(365.25 / span) - 1.0)
        }
        _ => None,
    };

    let net_pnl: f64 = trades.iter().map(|t| t.pnl).sum();
    let gross_win: f64 = trades.iter().filter(|t| t.pnl > 0.0).map(|t| t.pnl).sum();
    let gross_loss: f64 = -trades.iter().filter(|t| t.pnl < 0.0).map(|t| t.pnl).sum::<f64>();
    let n = trades.len();
    let wins = trades.iter().filter(|t| t.pnl > 0.0).count();
    let mut per_symbol: BTreeMap<String, SymbolStats> = BTreeMap::new();
    for t in &trades {
        let s = per_symbol.entry(t.symbol.clone()).or_default();
        s.trades += 1;
        s.wins += u64::from(t.pnl > 0.0);
        s.net_pnl += t.pnl;
    }
    for f in fills {
        per_symbol.entry(f.symbol.clone()).or_default().fees += f.commission;
    }
    let span = match (fills.first(), fills.last()) {
        (Some(a), Some(b)) if b.ts_ns > a.ts_ns => Some((b.ts_ns - a.ts_ns) as f64),
        _ => None,
    };
    Metrics {
        capital,
        net_pnl,
        ending_equity,
        fees,
        fills: fills.len(),
        open_positions: open.iter().filter(|(_, o)| o.qty != 0).map(|(s, o)| ((*s).to_string(), o.qty)).collect(),
        max_dd,
        max_dd_pct,
        cagr,
        sharpe,
        sortino,
        profit_factor: (gross_loss > 0.0).then(|| gross_win / gross_loss),
        win_rate: (n > 0).then(|| wins as f64 / n as f64),
        expectancy: (n > 0).then(|| net_pnl / n as f64),
        time_in_market: span.map(|s| in_market_ns as f64 / s),
        per_symbol,
        trades,
        curve,
        daily_equity,
    }
}

/// (Sharpe, Sortino) of daily returns, annualised by sqrt(252).
pub fn ratios(rets: &[f64]) -> (Option<f64>, Option<f64>) {
    let n = rets.len();
    if n < 2 {
        return (None, None);
    }
    let mean = rets.iter().sum::<f64>() / n as f64;
    let var = rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let down = (rets.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n as f64).sqrt();
    let ann = DAYS_PER_YEAR.sqrt();
    let sharpe = (var > 0.0).then(|| mean / var.sqrt() * ann);
    let sortino = (down > 0.0).then(|| mean / down * ann);
    (sharpe, sortino)
}

impl Metrics {
    /// Daily PnL: (day, equity change over the previous day's end).
    pub fn daily_pnl(&self) -> Vec<(i64, f64)> {
        let mut prev = self.capital;
        self.daily_equity
            .iter()
            .map(|&(d, e)| {
                let p = e - prev;
                prev = e;
                (d, p)
            })
            .collect()
    }

    /// Days in the run.
    pub fn days(&self) -> usize {
        self.daily_equity.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(ts_s: i64, sym: &str, qty: i64, price: f64, commission: f64) -> Fill {
        Fill {
            ts_ns: ts_s * 1_000_000_000,
            symbol: sym.into(),
            qty,
            price,
            commission,
            order_id: format!("{sym}-{ts_s}"),
        }
    }

    #[test]
    fn three_trades_known_by_hand() {
        // +100, -50, +25 (no commission): profit factor 125/50 = 2.5, win rate 2/3, expectancy 25.
        let f = [
            fill(0, "A", 10, 100.0, 0.0),
            fill(60, "A", -10, 110.0, 0.0),
            fill(120, "A", 5, 100.0, 0.0),
            fill(180, "A", -5, 90.0, 0.0),
            fill(240, "B", -1, 50.0, 0.0),
            fill(300, "B", 1, 25.0, 0.0),
        ];
        let m = compute(&f, 10_000.0, &[], 0, &[]);
        let pnls: Vec<f64> = m.trades.iter().map(|t| t.pnl).collect();
        assert_eq!(pnls, vec![100.0, -50.0, 25.0]);
        assert_eq!(m.profit_factor, Some(2.5));
        assert_eq!(m.win_rate, Some(2.0 / 3.0));
        assert_eq!(m.expectancy, Some(25.0));
        assert_eq!(m.net_pnl, 75.0);
        assert_eq!(m.ending_equity, 10_075.0);
        assert_eq!(m.trades[2].direction, -1, "B was a short");
        assert_eq!(m.trades[0].close_ns - m.trades[0].open_ns, 60_000_000_000);
        // Equity after each fill: 10000, 10100, 10100, 10050, 10050, 10075; peak 10100 -> 10050.
        assert_eq!(m.max_dd, 50.0);
        // In the market 0-60, 120-180, 240-300 of 0-300 seconds.
        assert_eq!(m.time_in_market, Some(180.0 / 300.0));
        assert_eq!(m.per_symbol["B"].net_pnl, 25.0);
    }

    #[test]
    fn a_flip_closes_one_trade_and_opens_the_next_splitting_the_commission() {
        let f = [fill(0, "A", 10, 10.0, 1.0), fill(10, "A", -30, 12.0, 3.0), fill(20, "A", 20, 11.0, 2.0)];
        let m = compute(&f, 1_000.0, &[], 0, &[]);
        assert_eq!(m.trades.len(), 2);
        // Long 10 @10 -> 12: +20, fees 1 + 1 (a third of 3).
        assert!((m.trades[0].pnl - 18.0).abs() < 1e-9, "{:?}", m.trades[0]);
        // Short 20 @12 -> 11: +20, fees 2 + 2.
        assert!((m.trades[1].pnl - 16.0).abs() < 1e-9, "{:?}", m.trades[1]);
        assert_eq!(m.fees, 6.0);
        assert!((m.net_pnl - 34.0).abs() < 1e-9);
        assert!(m.open_positions.is_empty());
    }

    #[test]
    fn an_open_position_is_marked_and_not_a_trade() {
        let f = [fill(0, "A", 10, 10.0, 0.0), fill(10, "B", 1, 5.0, 0.0), fill(20, "B", -1, 7.0, 0.0)];
        let m = compute(&f, 100.0, &[], 0, &[]);
        assert_eq!(m.trades.len(), 1);
        assert_eq!(m.open_positions, BTreeMap::from([("A".to_string(), 10)]));
        assert_eq!(m.ending_equity, 102.0, "closed trades only");
        assert_eq!(m.curve.last().unwrap().exposure, 100.0);
    }

    #[test]
    fn daily_returns_give_sharpe_sortino_and_cagr() {
        // One fill-free day from the journal between two trading days, offset -1 h moves the first
        // fill (00:30 UTC on day 1) into day 0.
        let day = 86_400;
        let f = [
            fill(day + 1800, "A", 1, 100.0, 0.0),
            fill(day + 7200, "A", -1, 110.0, 0.0),
            fill(3 * day + 7200, "A", 1, 100.0, 0.0),
            fill(3 * day + 7300, "A", -1, 95.0, 0.0),
        ];
        let m = compute(&f, 1000.0, &[2], -3600, &[]);
        assert_eq!(m.daily_equity, vec![(0, 1000.0), (1, 1010.0), (2, 1010.0), (3, 1005.0)]);
        assert_eq!(m.daily_pnl(), vec![(0, 0.0), (1, 10.0), (2, 0.0), (3, -5.0)]);
        // Peak 1010, trough 1005: the day ends of earlier days are not samples after the peak.
        assert_eq!(m.max_dd, 5.0);
        let rets = [0.0, 0.01, 0.0, 1005.0 / 1010.0 - 1.0];
        let mean = rets.iter().sum::<f64>() / 4.0;
        let sd = (rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        let down = (rets[3] * rets[3] / 4.0).sqrt();
        assert!((m.sharpe.unwrap() - mean / sd * 252f64.sqrt()).abs() < 1e-12);
        assert!((m.sortino.unwrap() - mean / down * 252f64.sqrt()).abs() < 1e-12);
        assert!((m.cagr.unwrap() - (1.005f64.powf(365.25 / 4.0) - 1.0)).abs() < 1e-12);
        assert_eq!(ratios(&[0.01]), (None, None));
    }

    #[test]
    fn r_multiples_need_a_stop() {
        let f = [fill(0, "A", 10, 100.0, 0.0), fill(60, "A", -10, 104.0, 0.0)];
        let stops = [
            Stop { symbol: "A".into(), ts_ns: 0, side: 1, price: 90.0 },
            Stop { symbol: "B".into(), ts_ns: 0, side: -1, price: 90.0 },
            Stop { symbol: "A".into(), ts_ns: 0, side: -1, price: 98.0 },
        ];
        let m = compute(&f, 1000.0, &[], 0, &stops);
        assert_eq!(m.trades[0].r_multiple, Some(2.0));
        assert_eq!(compute(&f, 1000.0, &[], 0, &[]).trades[0].r_multiple, None);
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let e = parse_fills("ts,symbol,side,qty,price,commission\n2019-11-05T16:04:00Z,A,hold,1,1,0\n", "x/fills.csv")
            .unwrap_err();
        assert!(e.to_string().starts_with("x/fills.csv: line 2: bad side"), "{e}");
        let e = parse_fills("a,b\n", "x/fills.csv").unwrap_err();
        assert!(e.to_string().contains("no column `ts`"), "{e}");
        let ok = parse_fills(
            "ts,symbol,side,qty,price,commission,order_id\n2019-11-05T16:04:00Z,A,sell,3,1.5,0.25,A-1\n",
            "f",
        )
        .unwrap();
        assert_eq!(ok[0].qty, -3);
        assert_eq!(ok[0].order_id, "A-1");
    }
}
