//! Unit tests of every risk check, through the public API only (issue 10).
//!
//! Every test builds its [`Risk`] with [`risk`] and marks symbols with [`bar_close`]: the two
//! helpers are the only code that knows the constructor's and `on_bar`'s signatures, so the
//! planned API change (`Risk::new(cfg, n)`, `on_bar` emitting flattening orders) touches only them.
//!
//! Prices are in whole dollars in the comments (`D` = one dollar in 1e-9 units); commissions are
//! zero unless a test says otherwise.

use super::*;
use crate::records::{ExecKind, ExecReport, Order, OrderId, OrderType, PX_SCALE, Reason, Side, SymbolId};

/// One dollar in 1e-9 units.
const D: i64 = PX_SCALE;
/// One second in ns.
const SEC: i64 = 1_000_000_000;
/// 2019-11-05 14:30:00 UTC (09:30 in New York, EST = UTC-5): the first bar of a session.
const T0: i64 = 1_572_964_200 * SEC;
/// 2019-11-06 05:00:00 UTC: midnight in New York (offset -5 h) -> the next trading day starts.
/// Day numbers: (ts - 5 h) / 86_400 s; T0 -> 18_205, this -> 18_206 (18_206 x 86_400 + 18_000 s).
const NY_MIDNIGHT: i64 = 1_573_016_400 * SEC;
/// Symbols every test's portfolio holds.
const N_SYMBOLS: usize = 3;

/// A fresh portfolio of [`N_SYMBOLS`] symbols.
fn risk(cfg: RiskConfig) -> Risk {
    Risk::new(cfg, N_SYMBOLS)
}

/// A bar of `sym` closes at `px` (open = high = low = close). Returns the flattening orders risk
/// hands to execution on this bar, as `(symbol, side, qty)`; each is checked to be a reduce-only
/// market order with a risk order id.
fn bar_close(r: &mut Risk, sym: u32, ts: i64, px: i64) -> Vec<(u32, Side, u32)> {
    let bar = Bar { ts_event_ns: ts, open_px_e9: px, high_px_e9: px, low_px_e9: px, close_px_e9: px, volume: 0 };
    let mut out = Vec::new();
    r.on_bar(SymbolId(sym), &bar, &mut |o: Order| {
        assert_eq!((o.kind(), o.reduce_only, o.order_id.0 >> 32), (Some(OrderType::Market), 1, 0), "{o:?}");
        out.push((o.symbol.0, o.side().expect("side"), o.qty));
    });
    out
}

/// The `n`-th order of `sym`: `qty` shares, `side`, `kind`; `px` is the limit or stop price.
fn order(sym: u32, n: u32, side: Side, kind: OrderType, qty: u32, px: i64) -> Order {
    Order {
        order_id: OrderId::for_symbol(SymbolId(sym), n),
        symbol: SymbolId(sym),
        qty,
        side: side.raw(),
        order_type: kind.raw(),
        limit_px_e9: if kind == OrderType::Limit { px } else { 0 },
        stop_px_e9: if kind == OrderType::Stop { px } else { 0 },
        ..Default::default()
    }
}

/// A market buy.
fn buy(sym: u32, n: u32, qty: u32) -> Order {
    order(sym, n, Side::Buy, OrderType::Market, qty, 0)
}

/// A market sell (an entry, not reduce-only).
fn sell(sym: u32, n: u32, qty: u32) -> Order {
    order(sym, n, Side::Sell, OrderType::Market, qty, 0)
}

/// The same order, reduce-only.
fn reduce(o: Order) -> Order {
    Order { reduce_only: 1, ..o }
}

/// A report on `o`.
fn report(o: &Order, kind: ExecKind, qty: u32, px: i64, ts: i64) -> ExecReport {
    ExecReport {
        ts_event_ns: ts,
        order_id: o.order_id,
        fill_px_e9: px,
        commission_e9: 0,
        symbol: o.symbol,
        fill_qty: qty,
        leaves_qty: 0,
        kind: kind.raw(),
        side: o.side,
        reason: Reason::None.raw(),
    }
}

/// `o` fills completely at `px`.
fn fill(r: &mut Risk, o: &Order, px: i64, ts: i64) {
    r.on_report(&report(o, ExecKind::Filled, o.qty, px, ts));
}

/// Rejections counted for `reason`.
fn rejected(r: &Risk, reason: Reason) -> u64 {
    r.rejects[reason.raw() as usize]
}

/// Every reason's count, for "nothing else was counted" checks.
fn reject_counts(r: &Risk) -> Vec<(Reason, u64)> {
    Reason::ALL.iter().map(|&x| (x, rejected(r, x))).filter(|&(_, n)| n > 0).collect()
}

#[test]
fn invalid_orders_are_rejected_and_never_count_as_open() {
    // One open order allowed: if any rejected order were counted open, the last valid one would fail.
    let mut r = risk(RiskConfig { max_open_orders: 1, ..Default::default() });
    let t = T0;
    assert_eq!(r.check(&buy(0, 1, 0), t), Err(Reason::InvalidOrder), "zero quantity");
    for side in [0, 3, 255] {
        let o = Order { side, ..buy(0, 2, 10) };
        assert_eq!(r.check(&o, t), Err(Reason::InvalidOrder), "unknown side {side}");
    }
    for order_type in [0, 4] {
        let o = Order { order_type, ..buy(0, 3, 10) };
        assert_eq!(r.check(&o, t), Err(Reason::InvalidOrder), "unknown type {order_type}");
    }
    assert_eq!(r.check(&order(0, 4, Side::Buy, OrderType::Limit, 10, 0), t), Err(Reason::InvalidOrder), "no limit");
    assert_eq!(r.check(&order(0, 5, Side::Buy, OrderType::Limit, 10, -D), t), Err(Reason::InvalidOrder), "limit < 0");
    assert_eq!(r.check(&order(0, 6, Side::Sell, OrderType::Stop, 10, 0), t), Err(Reason::InvalidOrder), "no stop");
    // A limit order with only a stop price is missing its limit.
    let o = Order { stop_px_e9: 10 * D, ..order(0, 7, Side::Buy, OrderType::Limit, 10, 0) };
    assert_eq!(r.check(&o, t), Err(Reason::InvalidOrder), "stop price on a limit order");
    // Reduce-only while flat has nothing to reduce.
    assert_eq!(r.check(&reduce(sell(0, 8, 10)), t), Err(Reason::InvalidOrder), "reduce-only while flat");
    assert_eq!(r.check(&reduce(buy(0, 9, 10)), t), Err(Reason::InvalidOrder), "reduce-only while flat");
    assert_eq!(r.position(SymbolId(0)), 0);
    assert_eq!(reject_counts(&r), vec![(Reason::InvalidOrder, 12)]);
    // An unknown symbol is not an invalid order: the symbol is unknown (faulted).
    assert_eq!(r.check(&buy(N_SYMBOLS as u32, 1, 10), t), Err(Reason::SymbolFaulted));
    assert_eq!(rejected(&r, Reason::SymbolFaulted), 1);
    // Nothing was counted open: the one allowed open order is still free.
    assert_eq!(r.check(&buy(0, 10, 10), t), Ok(()));
    assert_eq!(r.check(&buy(0, 11, 10), t), Err(Reason::MaxOpenOrders));
}

#[test]
fn reduce_only_must_reduce_the_position() {
    let mut r = risk(RiskConfig::default());
    let entry = buy(0, 1, 100);
    assert_eq!(r.check(&entry, T0), Ok(()));
    fill(&mut r, &entry, 10 * D, T0);
    assert_eq!(r.position(SymbolId(0)), 100);
    // Long 100: a reduce-only buy adds, a reduce-only sell of 101 would flip to short 1.
    assert_eq!(r.check(&reduce(buy(0, 2, 1)), T0), Err(Reason::InvalidOrder), "adds to a long");
    assert_eq!(r.check(&reduce(sell(0, 3, 101)), T0), Err(Reason::InvalidOrder), "more than the position");
    assert_eq!(r.check(&reduce(sell(0, 4, 100)), T0), Ok(()), "exactly the position");
    assert_eq!(r.check(&reduce(sell(1, 5, 1)), T0), Err(Reason::InvalidOrder), "other symbol is flat");
    // Short 50 on symbol 1: only a buy of at most 50 reduces.
    let short = sell(1, 6, 50);
    assert_eq!(r.check(&short, T0), Ok(()));
    fill(&mut r, &short, 10 * D, T0);
    assert_eq!(r.position(SymbolId(1)), -50);
    assert_eq!(r.check(&reduce(sell(1, 7, 1)), T0), Err(Reason::InvalidOrder), "adds to a short");
    assert_eq!(r.check(&reduce(buy(1, 8, 51)), T0), Err(Reason::InvalidOrder), "flips the short");
    assert_eq!(r.check(&reduce(buy(1, 9, 50)), T0), Ok(()));
    assert_eq!(reject_counts(&r), vec![(Reason::InvalidOrder, 5)]);
}

#[test]
fn reduce_only_counts_other_working_exits() {
    let mut r = risk(RiskConfig::default());
    let entry = buy(0, 1, 100);
    assert_eq!(r.check(&entry, T0), Ok(()));
    fill(&mut r, &entry, 10 * D, T0);
    let exit1 = reduce(sell(0, 2, 100));
    assert_eq!(r.check(&exit1, T0), Ok(()));
    // Long 100 with 100 already being sold: a second exit of 100 no longer reduces anything.
    assert_eq!(r.check(&reduce(sell(0, 3, 100)), T0), Err(Reason::InvalidOrder));
}

#[test]
fn max_position_counts_open_orders_on_the_same_side() {
    let mut r = risk(RiskConfig { max_position_shares: 100, ..Default::default() });
    let t = T0;
    let b60 = buy(0, 1, 60);
    let b40 = buy(0, 2, 40);
    assert_eq!(r.check(&b60, t), Ok(()), "worst long: 0 + 0 open + 60 = 60");
    assert_eq!(r.check(&b40, t), Ok(()), "worst long: 0 + 60 open + 40 = 100 (the limit is inclusive)");
    assert_eq!(r.check(&buy(0, 3, 1), t), Err(Reason::MaxPosition), "0 + 100 open + 1 = 101");
    // Limit and stop orders count the same way.
    assert_eq!(r.check(&order(0, 4, Side::Buy, OrderType::Limit, 1, 9 * D), t), Err(Reason::MaxPosition));
    // The sell side has its own worst case: 0 - 0 open - 100 = -100.
    assert_eq!(r.check(&sell(0, 5, 100), t), Ok(()));
    assert_eq!(r.check(&sell(0, 6, 1), t), Err(Reason::MaxPosition), "0 - 100 open - 1 = -101");
    // Each symbol has its own limit.
    assert_eq!(r.check(&buy(1, 1, 100), t), Ok(()));
    // Filling 60 moves them from open to position: still 60 + 40 open + 1 = 101.
    fill(&mut r, &b60, 10 * D, t);
    assert_eq!(r.position(SymbolId(0)), 60);
    assert_eq!(r.check(&buy(0, 7, 1), t), Err(Reason::MaxPosition));
    // Canceling the 40 frees them: 60 + 0 open + 40 = 100.
    r.on_report(&report(&b40, ExecKind::Canceled, 0, 0, t));
    assert_eq!(r.check(&buy(0, 8, 41), t), Err(Reason::MaxPosition), "60 + 41 = 101");
    assert_eq!(r.check(&buy(0, 9, 40), t), Ok(()));
    assert_eq!(reject_counts(&r), vec![(Reason::MaxPosition, 5)]);
}

#[test]
fn reduce_only_skips_max_position() {
    let mut r = risk(RiskConfig { max_position_shares: 100, ..Default::default() });
    let b60 = buy(0, 1, 60);
    assert_eq!(r.check(&b60, T0), Ok(()));
    fill(&mut r, &b60, 10 * D, T0);
    // Long 60: a plain sell of 160 is at worst 60 - 0 - 160 = -100, allowed.
    assert_eq!(r.check(&sell(0, 2, 160), T0), Ok(()));
    // Now a plain sell of 1 is 60 - 160 - 1 = -101: rejected.
    assert_eq!(r.check(&sell(0, 3, 1), T0), Err(Reason::MaxPosition));
    // The exit of the 60 would count 60 - 160 - 60 = -160 if it were checked; reduce-only skips it.
    assert_eq!(r.check(&reduce(sell(0, 4, 60)), T0), Ok(()));
}

#[test]
fn max_gross_notional_prices_orders_and_marks_positions() {
    const MGN: Reason = Reason::MaxGrossNotional;
    // Limit 10_000 USD over all symbols: positions at their marks plus working orders that add
    // exposure plus the new order.
    let mut r = risk(RiskConfig { max_gross_notional_usd: 10_000, ..Default::default() });
    bar_close(&mut r, 0, T0, 100 * D);
    bar_close(&mut r, 1, T0, 50 * D);
    // A market order is valued at its symbol's mark (the last close, 100).
    assert_eq!(r.check(&buy(0, 1, 101), T0), Err(MGN), "101 x 100 = 10_100");
    // A limit order is valued at its limit, not the mark; a stop at its stop; sells count too.
    let lim = |n, px| order(0, n, Side::Buy, OrderType::Limit, 100, px);
    assert_eq!(r.check(&lim(3, 101 * D), T0), Err(MGN), "100 x 101 = 10_100");
    let stop = order(0, 5, Side::Sell, OrderType::Stop, 100, 101 * D);
    assert_eq!(r.check(&stop, T0), Err(MGN), "100 x 101");
    let l99 = lim(4, 99 * D);
    assert_eq!(r.check(&l99, T0), Ok(()), "100 x 99 = 9_900");
    // While it works its 9_900 counts: 2 shares of symbol 1 (at 50) still fit, 3 do not.
    assert_eq!(r.check(&buy(1, 1, 3), T0), Err(MGN), "9_900 + 3 x 50 = 10_050");
    let b2 = buy(1, 2, 2);
    assert_eq!(r.check(&b2, T0), Ok(()), "9_900 + 2 x 50 = 10_000");
    // Canceling them frees their notional.
    r.on_report(&report(&l99, ExecKind::Canceled, 0, 0, T0));
    r.on_report(&report(&b2, ExecKind::Canceled, 0, 0, T0));
    let b100 = buy(0, 2, 100);
    assert_eq!(r.check(&b100, T0), Ok(()), "100 x 100 = 10_000 (inclusive)");
    // The 100 shares fill at 100: the order's notional becomes the position's: no room left.
    fill(&mut r, &b100, 100 * D, T0 + 60 * SEC);
    assert_eq!(r.check(&buy(1, 3, 1), T0), Err(MGN), "10_000 + 1 x 50");
    // Positions are marked at bar closes: at 90 the position is worth 9_000, leaving 1_000.
    bar_close(&mut r, 0, T0 + 60 * SEC, 90 * D);
    assert_eq!(r.check(&buy(1, 4, 21), T0), Err(MGN), "9_000 + 21 x 50 = 10_050");
    // A short counts by its absolute size: short 20 of symbol 2 at 50 = 1_000 more.
    bar_close(&mut r, 2, T0, 50 * D);
    let s20 = sell(2, 1, 20);
    assert_eq!(r.check(&s20, T0), Ok(()), "9_000 + 20 x 50 = 10_000");
    fill(&mut r, &s20, 50 * D, T0);
    assert_eq!(r.check(&buy(1, 5, 1), T0), Err(MGN), "9_000 + 1_000 + 50");
    // Reduce-only orders are not checked.
    let exit = reduce(sell(0, 6, 50));
    assert_eq!(r.check(&exit, T0), Ok(()));
    // The exit fills 50 at 90: gross = 50 x 90 + 20 x 50 = 5_500, leaving 4_500 = 90 x 50.
    fill(&mut r, &exit, 90 * D, T0 + 120 * SEC);
    assert_eq!(r.position(SymbolId(0)), 50);
    assert_eq!(r.check(&buy(1, 7, 91), T0), Err(MGN), "5_500 + 91 x 50 = 10_050");
    assert_eq!(r.check(&buy(1, 8, 90), T0), Ok(()), "5_500 + 90 x 50 = 10_000");
    assert_eq!(reject_counts(&r), vec![(MGN, 8)]);
}

#[test]
fn max_gross_notional_refuses_market_orders_it_cannot_price() {
    let mut r = risk(RiskConfig { max_gross_notional_usd: 10_000, ..Default::default() });
    // No bar of symbol 0 yet: 1_000_000 shares at an unknown price should not pass as 0 USD.
    assert_ne!(r.check(&buy(0, 1, 1_000_000), T0), Ok(()));
}

#[test]
fn max_gross_notional_counts_working_orders() {
    let mut r = risk(RiskConfig { max_gross_notional_usd: 10_000, ..Default::default() });
    bar_close(&mut r, 0, T0, 100 * D);
    assert_eq!(r.check(&buy(0, 1, 100), T0), Ok(()), "100 x 100 = 10_000");
    // A second 10_000 USD order while the first is working would make 20_000 once both fill.
    assert_eq!(r.check(&buy(0, 2, 100), T0), Err(Reason::MaxGrossNotional));
}

#[test]
fn max_open_orders_released_by_every_terminal_report() {
    let mut r = risk(RiskConfig { max_open_orders: 2, ..Default::default() });
    let t = T0;
    let a = buy(0, 1, 10);
    let b = buy(1, 1, 10);
    assert_eq!(r.check(&a, t), Ok(()));
    assert_eq!(r.check(&b, t), Ok(()), "the limit is over all symbols: 2 open");
    assert_eq!(r.check(&buy(2, 1, 10), t), Err(Reason::MaxOpenOrders));
    // Non-terminal reports keep the order open: accepted, partially filled.
    r.on_report(&report(&a, ExecKind::Accepted, 0, 0, t));
    r.on_report(&report(&a, ExecKind::PartiallyFilled, 4, 10 * D, t));
    assert_eq!(r.check(&buy(2, 2, 10), t), Err(Reason::MaxOpenOrders), "accepted / partial fill keep it open");
    // Each terminal report frees one slot: fill, cancel, expiry, reject.
    let mut next = 3;
    let mut slot_holder = [a, b];
    for (k, kind) in
        [ExecKind::Filled, ExecKind::Canceled, ExecKind::Expired, ExecKind::Rejected].into_iter().enumerate()
    {
        let done = slot_holder[k % 2];
        let qty = if kind == ExecKind::Filled { 6 } else { 0 };
        r.on_report(&report(&done, kind, qty, 10 * D, t));
        let o = buy(2, next, 10);
        next += 1;
        assert_eq!(r.check(&o, t), Ok(()), "{kind:?} released a slot");
        assert_eq!(r.check(&buy(2, next, 10), t), Err(Reason::MaxOpenOrders), "{kind:?}: full again");
        next += 1;
        slot_holder[k % 2] = o;
    }
    // A second terminal report for an order already closed frees nothing.
    r.on_report(&report(&a, ExecKind::Canceled, 0, 0, t));
    assert_eq!(r.check(&buy(2, next, 10), t), Err(Reason::MaxOpenOrders), "duplicate terminal report");
    // Reduce-only orders count too (check 4 applies to every order).
    r.on_report(&report(&slot_holder[0], ExecKind::Canceled, 0, 0, t));
    assert_eq!(r.position(SymbolId(0)), 10, "a filled 4 + 6");
    assert_eq!(r.check(&reduce(sell(0, 9, 10)), t), Ok(()));
    assert_eq!(r.check(&sell(0, 10, 10), t), Err(Reason::MaxOpenOrders), "the exit took the last slot");
    assert_eq!(reject_counts(&r), vec![(Reason::MaxOpenOrders, 8)]);
}

#[test]
fn max_order_rate_is_per_second_of_event_time() {
    let ms = SEC / 1000;
    let mut r = risk(RiskConfig { max_orders_per_sec: 3, ..Default::default() });
    let mut n = 0;
    let mut at = |r: &mut Risk, ts: i64| {
        n += 1;
        r.check(&buy(0, n, 1), ts)
    };
    // Three accepted at 0, 100 and 200 ms.
    assert_eq!(at(&mut r, T0), Ok(()));
    assert_eq!(at(&mut r, T0 + 100 * ms), Ok(()));
    assert_eq!(at(&mut r, T0 + 200 * ms), Ok(()));
    // The fourth inside the second that began at T0 is refused, up to 1 ns before its end.
    assert_eq!(at(&mut r, T0 + 300 * ms), Err(Reason::MaxOrderRate));
    assert_eq!(at(&mut r, T0 + SEC - 1), Err(Reason::MaxOrderRate));
    // Exactly 1 s after the first, it has left the window: accepted (window now 100 ms, 200 ms, 1 s).
    assert_eq!(at(&mut r, T0 + SEC), Ok(()));
    // 1.05 s is 950 ms after the 100 ms order: refused; 1.1 s is exactly 1 s after it: accepted.
    assert_eq!(at(&mut r, T0 + 1050 * ms), Err(Reason::MaxOrderRate));
    assert_eq!(at(&mut r, T0 + 1100 * ms), Ok(()));
    // Rejected orders did not use the rate: after a quiet second, three pass again.
    for k in 0..3 {
        assert_eq!(at(&mut r, T0 + 10 * SEC + k), Ok(()), "order {k} after a quiet period");
    }
    assert_eq!(at(&mut r, T0 + 10 * SEC + 3), Err(Reason::MaxOrderRate));
    assert_eq!(reject_counts(&r), vec![(Reason::MaxOrderRate, 4)]);
    // Orders rejected by an earlier check are not counted against the rate either.
    let mut r = risk(RiskConfig { max_orders_per_sec: 1, ..Default::default() });
    assert_eq!(r.check(&buy(0, 1, 0), T0), Err(Reason::InvalidOrder));
    assert_eq!(r.check(&buy(0, 2, 1), T0), Ok(()));
    // Exits are rate limited as well.
    assert_eq!(r.check(&reduce(sell(0, 3, 1)), T0 + 1), Err(Reason::InvalidOrder), "flat: nothing to reduce");
    fill(&mut r, &buy(0, 2, 1), 10 * D, T0 + 2);
    assert_eq!(r.check(&reduce(sell(0, 4, 1)), T0 + 3), Err(Reason::MaxOrderRate));
}

#[test]
fn one_active_trade_refuses_a_second_symbol() {
    let mut r = risk(RiskConfig { one_active_trade: true, ..Default::default() });
    let t = T0;
    // Symbol 0 takes the slot with an open entry order.
    let entry = buy(0, 1, 10);
    assert_eq!(r.check(&entry, t), Ok(()));
    assert_eq!(r.check(&buy(1, 1, 10), t), Err(Reason::OneActiveTrade), "open entry on symbol 0");
    assert_eq!(r.check(&sell(2, 1, 10), t), Err(Reason::OneActiveTrade), "either side");
    // The active symbol itself may add.
    let add = buy(0, 2, 5);
    assert_eq!(r.check(&add, t), Ok(()));
    // Canceling the entry with nothing filled frees the slot...
    r.on_report(&report(&entry, ExecKind::Canceled, 0, 0, t));
    assert_eq!(r.check(&buy(1, 2, 10), t), Err(Reason::OneActiveTrade), "the add is still an open entry");
    r.on_report(&report(&add, ExecKind::Expired, 0, 0, t));
    let e1 = buy(1, 3, 10);
    assert_eq!(r.check(&e1, t), Ok(()), "no open entry, no position: free");
    // ...and a position holds it after the entry is done.
    fill(&mut r, &e1, 10 * D, t);
    assert_eq!(r.check(&buy(0, 3, 10), t), Err(Reason::OneActiveTrade), "symbol 1 has a position");
    // A report for an order risk never saw (a live venue's fill, a liquidation) still moves the
    // position: symbol 0 is now long 5 too, so two symbols are active.
    r.on_report(&report(&buy(0, 99, 5), ExecKind::Filled, 5, 10 * D, t));
    assert_eq!(r.position(SymbolId(0)), 5);
    // Reduce-only orders pass on any symbol while others are active.
    assert_eq!(r.check(&reduce(sell(0, 4, 5)), t), Ok(()));
    let exit1 = reduce(sell(1, 4, 10));
    assert_eq!(r.check(&exit1, t), Ok(()));
    assert_eq!(r.check(&buy(2, 2, 10), t), Err(Reason::OneActiveTrade));
    // Symbol 1 goes flat; symbol 0 is still long 5 (its exit is working).
    fill(&mut r, &exit1, 11 * D, t);
    assert_eq!(r.check(&buy(2, 3, 10), t), Err(Reason::OneActiveTrade), "symbol 0 still long");
    r.on_report(&report(&reduce(sell(0, 4, 5)), ExecKind::Filled, 5, 11 * D, t));
    assert_eq!(r.position(SymbolId(0)), 0);
    assert_eq!(r.check(&buy(2, 4, 10), t), Ok(()), "everything flat: free");
    assert_eq!(reject_counts(&r), vec![(Reason::OneActiveTrade, 6)]);
}

/// Long 100 of symbol 0 bought at 100 (flat at the fill: equity 0).
fn long_100_at_100(r: &mut Risk) {
    bar_close(r, 0, T0, 100 * D);
    let entry = buy(0, 1, 100);
    assert_eq!(r.check(&entry, T0), Ok(()));
    fill(r, &entry, 100 * D, T0 + 60 * SEC);
}

#[test]
fn daily_loss_halt_lets_only_reduce_only_orders_pass() {
    let mut r = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    long_100_at_100(&mut r);
    // Close 96: 100 x (96 - 100) = -400 > -500, still trading.
    bar_close(&mut r, 0, T0 + 60 * SEC, 96 * D);
    assert!(!r.halted());
    assert_eq!(r.check(&buy(1, 1, 1), T0 + 60 * SEC), Ok(()));
    // Close 95: -500 reaches the limit: halted.
    bar_close(&mut r, 0, T0 + 120 * SEC, 95 * D);
    assert!(r.halted());
    assert_eq!(r.halts, 1);
    assert_eq!(r.equity_e9(), -500 * i128::from(D));
    // Entries on any symbol are refused; reduce-only exits pass.
    assert_eq!(r.check(&buy(0, 2, 1), T0 + 120 * SEC), Err(Reason::DailyLossHalt));
    assert_eq!(r.check(&sell(1, 2, 1), T0 + 120 * SEC), Err(Reason::DailyLossHalt));
    let limit = order(2, 1, Side::Buy, OrderType::Limit, 1, 10 * D);
    assert_eq!(r.check(&limit, T0 + 120 * SEC), Err(Reason::DailyLossHalt));
    // Risk's own flattening order already sells the 100: a strategy exit of the same shares would
    // sell them twice, so it no longer reduces anything.
    assert_eq!(r.check(&reduce(sell(0, 3, 100)), T0 + 120 * SEC), Err(Reason::InvalidOrder));
    // Further losses do not count a second halt the same day.
    bar_close(&mut r, 0, T0 + 180 * SEC, 90 * D);
    assert!(r.halted());
    assert_eq!(r.halts, 1);
    assert_eq!(reject_counts(&r), vec![(Reason::DailyLossHalt, 3), (Reason::InvalidOrder, 1)]);
}

#[test]
fn halt_flattening_and_a_strategy_exit_do_not_both_sell_the_position() {
    let mut r = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    long_100_at_100(&mut r);
    let mut flat = bar_close(&mut r, 0, T0 + 120 * SEC, 95 * D);
    assert!(r.halted());
    // Risk is already selling the 100; the strategy's stop exit asks to sell them too.
    let exit = reduce(sell(0, 2, 100));
    if r.check(&exit, T0 + 120 * SEC).is_ok() {
        // Both fill on the next bar at 95.
        flat.extend(bar_close(&mut r, 0, T0 + 180 * SEC, 95 * D));
        assert_eq!(flat, vec![(0, Side::Sell, 100)]);
        let risk_order = Order { order_id: OrderId::for_risk(1), ..exit };
        r.on_report(&report(&risk_order, ExecKind::Filled, 100, 95 * D, T0 + 180 * SEC));
        fill(&mut r, &exit, 95 * D, T0 + 180 * SEC);
        assert_eq!(r.position(SymbolId(0)), 0, "flattened once, not sold twice");
    }
}

#[test]
fn daily_loss_counts_realized_and_unrealized() {
    let mut r = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    long_100_at_100(&mut r);
    // Sold at 97: realized 100 x (97 - 100) = -300.
    let exit = reduce(sell(0, 2, 100));
    assert_eq!(r.check(&exit, T0 + 60 * SEC), Ok(()));
    fill(&mut r, &exit, 97 * D, T0 + 120 * SEC);
    assert_eq!(r.equity_e9(), -300 * i128::from(D));
    assert!(!r.halted());
    // Long 100 of symbol 1 at 50, marked at 49: unrealized -100, total -400: trading.
    bar_close(&mut r, 1, T0 + 120 * SEC, 50 * D);
    let e1 = buy(1, 1, 100);
    assert_eq!(r.check(&e1, T0 + 120 * SEC), Ok(()));
    fill(&mut r, &e1, 50 * D, T0 + 180 * SEC);
    bar_close(&mut r, 1, T0 + 180 * SEC, 49 * D);
    assert!(!r.halted(), "-300 - 100 = -400");
    // Marked at 48: -300 - 200 = -500: halted.
    bar_close(&mut r, 1, T0 + 240 * SEC, 48 * D);
    assert!(r.halted(), "-300 - 200 = -500");
    assert_eq!(r.halts, 1);
}

#[test]
fn daily_loss_halt_is_reached_by_a_fill_too() {
    let mut r = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    long_100_at_100(&mut r);
    // The exit fills at 94 (a gap): realized -600 halts at the report, without a bar.
    let exit = reduce(sell(0, 2, 100));
    assert_eq!(r.check(&exit, T0 + 60 * SEC), Ok(()));
    fill(&mut r, &exit, 94 * D, T0 + 120 * SEC);
    assert!(r.halted());
    assert_eq!(r.halts, 1);
}

#[test]
fn daily_loss_halt_resets_on_the_next_trading_day() {
    let mut r = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    long_100_at_100(&mut r);
    bar_close(&mut r, 0, T0 + 120 * SEC, 95 * D);
    assert!(r.halted());
    // 23:59:59.999999999 in New York (04:59:59... UTC on the 6th) is still the 5th: halted.
    bar_close(&mut r, 0, NY_MIDNIGHT - 1, 95 * D);
    assert!(r.halted());
    assert_eq!(r.check(&buy(1, 1, 1), NY_MIDNIGHT - 1), Err(Reason::DailyLossHalt));
    // Midnight in New York: a new day, trading again; its loss counts from the day's start equity
    // (-500), so the same close loses nothing more.
    bar_close(&mut r, 0, NY_MIDNIGHT, 95 * D);
    assert!(!r.halted());
    assert_eq!(r.check(&buy(1, 2, 1), NY_MIDNIGHT), Ok(()));
    assert_eq!(r.daily_equity(), &[(18_205, -500 * i128::from(D))]);
    // A further 500 loss on the new day halts again: 100 x (90 - 95) = -500.
    bar_close(&mut r, 0, NY_MIDNIGHT + 60 * SEC, 90 * D);
    assert!(r.halted());
    assert_eq!(r.halts, 2);
    assert_eq!(rejected(&r, Reason::DailyLossHalt), 1);
}

#[test]
fn trading_days_follow_day_utc_offset() {
    // With offset 0 the day turns at 00:00 UTC; New York's offset (-5 h) turns it 5 h later.
    let utc_midnight = NY_MIDNIGHT - 5 * 3600 * SEC; // 2019-11-06 00:00 UTC
    let mut ny = risk(RiskConfig { max_daily_loss_usd: 500, ..Default::default() });
    let mut utc = risk(RiskConfig { max_daily_loss_usd: 500, day_utc_offset_s: 0, ..Default::default() });
    for r in [&mut ny, &mut utc] {
        long_100_at_100(r);
        bar_close(r, 0, T0 + 120 * SEC, 95 * D);
        assert!(r.halted());
        bar_close(r, 0, utc_midnight, 95 * D);
    }
    assert!(!utc.halted(), "a new UTC day");
    assert!(ny.halted(), "still 19:00 on the 5th in New York");
    // Day numbers: 1_572_964_200 / 86_400 = 18_205 (UTC) for both.
    assert_eq!(utc.daily_equity(), &[(18_205, -500 * i128::from(D))]);
    assert!(ny.daily_equity().is_empty());
}

#[test]
fn daily_loss_halt_produces_flattening_orders_for_every_position() {
    // API-dependent (the lead's change makes `on_bar` emit these orders instead of filling them):
    // only `bar_close` needs to change; this test collects whatever it returns over the halting
    // bar and each symbol's next bar.
    let mut r = risk(RiskConfig { max_daily_loss_usd: 1_000, ..Default::default() });
    // Long 100 of symbol 0 at 100, short 30 of symbol 1 at 50, symbol 2 flat.
    bar_close(&mut r, 0, T0, 100 * D);
    bar_close(&mut r, 1, T0, 50 * D);
    bar_close(&mut r, 2, T0, 20 * D);
    let long = buy(0, 1, 100);
    let short = sell(1, 1, 30);
    assert_eq!(r.check(&long, T0), Ok(()));
    assert_eq!(r.check(&short, T0), Ok(()));
    fill(&mut r, &long, 100 * D, T0 + 60 * SEC);
    fill(&mut r, &short, 50 * D, T0 + 60 * SEC);
    // Symbol 1 rises to 60: 30 x -(60 - 50) = -300; symbol 0 falls to 93: 100 x (93 - 100) = -700;
    // total -1_000 halts.
    let mut flat = bar_close(&mut r, 1, T0 + 120 * SEC, 60 * D);
    assert!(flat.is_empty() && !r.halted(), "-300");
    flat.extend(bar_close(&mut r, 0, T0 + 120 * SEC, 93 * D));
    assert!(r.halted(), "-300 - 700 = -1_000");
    assert_eq!(r.halts, 1);
    for s in 0..N_SYMBOLS as u32 {
        flat.extend(bar_close(&mut r, s, T0 + 180 * SEC, if s == 1 { 60 * D } else { 93 * D }));
    }
    flat.sort_by_key(|&(s, _, _)| s);
    assert_eq!(
        flat,
        vec![(0, Side::Sell, 100), (1, Side::Buy, 30)],
        "one order per open position, nothing for flat symbol 2"
    );
}

#[test]
fn equity_drawdown_and_daily_equity_bookkeeping() {
    let mut r = risk(RiskConfig::default());
    assert_eq!((r.equity_e9(), r.max_drawdown_e9(), r.daily_equity().len()), (0, 0, 0));
    bar_close(&mut r, 0, T0, 100 * D);
    // Buy 100 at 100 paying 0.50 commission (0.005 x 100): equity -0.50, drawdown 0.50 from peak 0.
    let entry = buy(0, 1, 100);
    assert_eq!(r.check(&entry, T0), Ok(()));
    r.on_report(&ExecReport { commission_e9: D / 2, ..report(&entry, ExecKind::Filled, 100, 100 * D, T0) });
    assert_eq!(r.equity_e9(), -i128::from(D) / 2);
    assert_eq!(r.max_drawdown_e9(), i128::from(D) / 2);
    let usd = |x: i64| i128::from(x) * i128::from(D);
    let half = i128::from(D) / 2;
    // Closes 102, 99, 101, 98: equity 199.50 (peak), -100.50 (drawdown 300), 99.50, -200.50 (400).
    for (k, (px, eq, dd)) in [(102, 200, 0), (99, -100, 300), (101, 100, 300), (98, -200, 400)].into_iter().enumerate()
    {
        bar_close(&mut r, 0, T0 + (k as i64 + 1) * 60 * SEC, px * D);
        assert_eq!(r.equity_e9(), usd(eq) - half, "close {px}");
        assert_eq!(r.max_drawdown_e9(), usd(dd).max(half), "close {px}");
    }
    // A flat symbol's bar moves nothing.
    bar_close(&mut r, 1, T0 + 300 * SEC, 7 * D);
    assert_eq!(r.equity_e9(), usd(-200) - half);
    // Next trading day: the first bar closes the 5th at its equity before marking.
    bar_close(&mut r, 0, NY_MIDNIGHT + 10 * 3600 * SEC, 103 * D);
    assert_eq!(r.daily_equity(), &[(18_205, usd(-200) - half)]);
    assert_eq!(r.equity_e9(), usd(300) - half, "100 x (103 - 100) - 0.50");
    // Sold at 103 with 0.50 commission: realized 300 - 1.00 commission.
    let exit = reduce(sell(0, 2, 100));
    assert_eq!(r.check(&exit, NY_MIDNIGHT + 10 * 3600 * SEC), Ok(()));
    r.on_report(&ExecReport {
        commission_e9: D / 2,
        ..report(&exit, ExecKind::Filled, 100, 103 * D, NY_MIDNIGHT + 10 * 3600 * SEC)
    });
    assert_eq!(r.position(SymbolId(0)), 0);
    assert_eq!(r.equity_e9(), usd(299));
    // Flat: a later close changes nothing.
    bar_close(&mut r, 0, NY_MIDNIGHT + 11 * 3600 * SEC, 50 * D);
    assert_eq!(r.equity_e9(), usd(299));
    assert_eq!(r.max_drawdown_e9(), usd(400));
    r.finish();
    assert_eq!(r.daily_equity(), &[(18_205, usd(-200) - half), (18_206, usd(299))]);
}

#[test]
fn partial_fills_move_position_and_release_only_at_the_end() {
    let mut r = risk(RiskConfig { max_position_shares: 100, max_open_orders: 1, ..Default::default() });
    let o = buy(0, 1, 100);
    assert_eq!(r.check(&o, T0), Ok(()));
    r.on_report(&report(&o, ExecKind::PartiallyFilled, 30, 10 * D, T0));
    assert_eq!(r.position(SymbolId(0)), 30);
    r.on_report(&report(&o, ExecKind::PartiallyFilled, 30, 10 * D, T0));
    assert_eq!(r.position(SymbolId(0)), 60);
    assert_eq!(r.check(&buy(0, 2, 1), T0), Err(Reason::MaxOpenOrders), "still working");
    // Canceled with 40 left: those 40 are released, the 60 stay as position: room for 40 more.
    r.on_report(&report(&o, ExecKind::Canceled, 0, 0, T0));
    assert_eq!(r.check(&buy(0, 3, 41), T0), Err(Reason::MaxPosition), "60 + 41 = 101");
    assert_eq!(r.check(&buy(0, 4, 40), T0), Ok(()));
}

#[test]
fn checks_apply_in_the_documented_order() {
    // An order failing several checks is rejected for the first of: invalid, halt, one active
    // trade, open orders, rate, position, gross.
    let cfg = RiskConfig {
        max_position_shares: 10,
        max_gross_notional_usd: 100,
        max_open_orders: 1,
        max_orders_per_sec: 1,
        one_active_trade: true,
        ..Default::default()
    };
    let mut r = risk(cfg.clone());
    bar_close(&mut r, 0, T0, 100 * D);
    bar_close(&mut r, 1, T0, 100 * D);
    // 11 shares at 100: both position (11 > 10) and gross (1_100 > 100) fail: position first.
    assert_eq!(r.check(&buy(0, 1, 11), T0), Err(Reason::MaxPosition));
    assert_eq!(r.check(&buy(0, 2, 1), T0), Ok(()), "1 x 100 = 100");
    // Now the rate (1/s), the open orders (1) and one active trade fail for symbol 1.
    assert_eq!(r.check(&buy(1, 1, 11), T0), Err(Reason::OneActiveTrade));
    assert_eq!(r.check(&buy(0, 3, 11), T0), Err(Reason::MaxOpenOrders), "same symbol: not one-active");
    assert_eq!(r.check(&buy(0, 4, 0), T0), Err(Reason::InvalidOrder));
    r.on_report(&report(&buy(0, 2, 1), ExecKind::Canceled, 0, 0, T0));
    assert_eq!(r.check(&buy(0, 5, 11), T0), Err(Reason::MaxOrderRate), "open order released; rate still full");
    assert_eq!(r.check(&buy(0, 6, 11), T0 + SEC), Err(Reason::MaxPosition));
    assert_eq!(r.check(&buy(0, 7, 2), T0 + SEC), Err(Reason::MaxGrossNotional), "2 x 100 = 200");
    // Counted once each, per reason.
    assert_eq!(
        reject_counts(&r),
        vec![
            (Reason::MaxPosition, 2),
            (Reason::MaxGrossNotional, 1),
            (Reason::MaxOpenOrders, 1),
            (Reason::MaxOrderRate, 1),
            (Reason::OneActiveTrade, 1),
            (Reason::InvalidOrder, 1),
        ]
    );
    // The halt comes before one active trade and open orders.
    let mut r = risk(RiskConfig { max_daily_loss_usd: 1, ..cfg });
    bar_close(&mut r, 0, T0, 100 * D);
    let e = buy(0, 1, 1);
    assert_eq!(r.check(&e, T0), Ok(()));
    fill(&mut r, &e, 100 * D, T0);
    bar_close(&mut r, 0, T0 + 60 * SEC, 99 * D);
    assert!(r.halted(), "1 x (99 - 100) = -1");
    assert_eq!(r.check(&buy(1, 1, 1), T0 + 2 * SEC), Err(Reason::DailyLossHalt));
    assert_eq!(r.check(&buy(1, 2, 0), T0 + 2 * SEC), Err(Reason::InvalidOrder), "invalid before the halt");
}

#[test]
fn a_symbol_being_removed_takes_only_reduce_only_orders() {
    let mut r = risk(RiskConfig::default());
    let entry = buy(0, 1, 10);
    assert_eq!(r.check(&entry, T0), Ok(()));
    fill(&mut r, &entry, 10 * D, T0);
    r.set_removing(SymbolId(0), true);
    assert_eq!(r.check(&buy(0, 2, 1), T0), Err(Reason::SymbolRemoving));
    assert_eq!(r.check(&sell(0, 3, 1), T0), Err(Reason::SymbolRemoving), "a plain sell is not an exit");
    assert_eq!(r.check(&buy(1, 1, 1), T0), Ok(()), "other symbols trade");
    assert_eq!(r.check(&reduce(sell(0, 4, 10)), T0), Ok(()));
    r.set_removing(SymbolId(0), false);
    assert_eq!(r.check(&buy(0, 5, 1), T0), Ok(()));
    assert_eq!(reject_counts(&r), vec![(Reason::SymbolRemoving, 2)]);
}

#[test]
fn with_the_warmup_gate_a_symbol_trades_only_after_its_live_start() {
    let mut r = risk(RiskConfig { warmup_gate: true, ..Default::default() });
    bar_close(&mut r, 0, T0, 10 * D);
    assert_eq!(r.check(&buy(0, 1, 10), T0), Err(Reason::WarmUp), "history seeds indicators, never trades");
    r.set_live(SymbolId(0));
    assert_eq!(r.check(&buy(0, 2, 10), T0), Ok(()));
    assert_eq!(r.check(&buy(1, 1, 10), T0), Err(Reason::WarmUp), "each symbol goes live on its own");
    assert_eq!(reject_counts(&r), vec![(Reason::WarmUp, 2)]);
    let mut off = risk(RiskConfig::default());
    bar_close(&mut off, 0, T0, 10 * D);
    assert_eq!(off.check(&buy(0, 1, 10), T0), Ok(()), "backtests have no gate");
}

#[test]
fn a_replace_is_checked_like_a_new_order_with_the_old_rest_left_out() {
    let mut r = risk(RiskConfig { max_position_shares: 100, max_gross_notional_usd: 2_000, ..Default::default() });
    bar_close(&mut r, 0, T0, 10 * D);
    let limit = order(0, 1, Side::Buy, OrderType::Limit, 60, 9 * D);
    assert_eq!(r.check(&limit, T0), Ok(()));
    // 100 shares in all: the old 60 do not count against the new 100.
    let (changed, d) = r.check_replace(limit.order_id, 100, 0, 0, T0);
    assert_eq!((d, changed.map(|o| (o.qty, o.limit_px_e9))), (Ok(()), Some((100, 9 * D))));
    assert_eq!(r.check_replace(limit.order_id, 101, 0, 0, T0).1, Err(Reason::MaxPosition));
    // 90 x 25.00 = 2,250 USD of working notional is past the 2,000 limit: the new price counts.
    assert_eq!(r.check_replace(limit.order_id, 90, 25 * D, 0, T0).1, Err(Reason::MaxGrossNotional));
    // The venue changes it: 20 of the 60 had filled, the new rest is 80 at 9.50.
    r.on_report(&report(&limit, ExecKind::PartiallyFilled, 20, 9 * D, T0));
    assert_eq!(r.check_replace(limit.order_id, 100, 9_500_000_000, 0, T0).1, Ok(()));
    r.on_report(&ExecReport { leaves_qty: 80, ..report(&limit, ExecKind::Replaced, 0, 0, T0) });
    let now = r.open_order(limit.order_id).expect("still working");
    assert_eq!((now.qty, now.limit_px_e9), (100, 9_500_000_000), "the changed order, what filled included");
    // What filled cannot be replaced away; an unknown or done order cannot change.
    assert_eq!(r.check_replace(limit.order_id, 20, 0, 0, T0).1, Err(Reason::InvalidOrder));
    fill(&mut r, &Order { qty: 80, ..limit }, 9 * D, T0);
    assert_eq!(r.open_order(limit.order_id), None);
    assert_eq!(r.check_replace(limit.order_id, 50, 0, 0, T0), (None, Err(Reason::InvalidOrder)));
    // Position 100 now: a new buy of one share is refused, so the books agree after the replace.
    assert_eq!(r.check(&buy(0, 2, 1), T0), Err(Reason::MaxPosition));
}
