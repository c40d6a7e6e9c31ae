//! The status line a paper run prints on stderr while it goes: market time, symbols, feed state,
//! bars, how long since data last arrived, orders, fills, realized PnL, and drops.

use engine::pipeline::Counters;
use std::sync::atomic::Ordering::Relaxed;

/// What a feed reports for the status line (a copy of its live counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// `down`, `auth`, `live`, `ended`.
    pub state: &'static str,
    /// Stream messages decoded.
    pub messages: u64,
    /// Events pushed into the engine.
    pub pushed: u64,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Receive time of the last frame, ns on the run's clock (0 = none yet).
    pub last_recv_ns: i64,
    /// Events waiting in the feed's backlog because the ingress was full.
    pub backlog: u64,
    /// Frames or messages refused (parse errors, unknown types, rejected bars).
    pub drops: u64,
    /// Bars dropped as duplicates of a bar the feed already had.
    pub duplicates: u64,
    /// Bars dropped as late (their window was already released).
    pub late: u64,
}

/// One status line.
pub fn line(now_ns: i64, symbols: usize, feed: &FeedStatus, c: &Counters) -> String {
    let g = &c.gauges;
    let t = jiff::Timestamp::from_nanosecond(i128::from(now_ns))
        .map_or_else(|_| "?".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string());
    let since = if feed.last_recv_ns == 0 {
        "-".to_string()
    } else {
        format!("{:.1}s", (now_ns - feed.last_recv_ns).max(0) as f64 / 1e9)
    };
    format!(
        "paper {t} | {symbols} sym | feed {} ({} reconnects) | msgs {} pushed {} | last data {since} ago | orders {} fills {} | realized {:+.2} USD | drops {} backlog {}",
        feed.state,
        feed.reconnects,
        feed.messages,
        feed.pushed,
        g.orders.load(Relaxed),
        g.fills.load(Relaxed),
        g.realized_pnl_e9.load(Relaxed) as f64 / 1e9,
        feed.drops + c.unknown_symbol.load(Relaxed) + c.bad_events.load(Relaxed),
        feed.backlog,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_time_feed_orders_fills_and_pnl() {
        let c = Counters::default();
        c.gauges.orders.store(3, Relaxed);
        c.gauges.fills.store(2, Relaxed);
        c.gauges.realized_pnl_e9.store(-12_500_000_000, Relaxed);
        let f = FeedStatus {
            state: "live",
            messages: 10,
            pushed: 9,
            reconnects: 1,
            last_recv_ns: 1_000_000_000,
            backlog: 0,
            drops: 1,
            duplicates: 0,
            late: 0,
        };
        let l = line(3_500_000_000, 2, &f, &c);
        assert!(l.starts_with("paper 1970-01-01 00:00:03 | 2 sym | feed live (1 reconnects)"), "{l}");
        assert!(
            l.contains("last data 2.5s ago") && l.contains("orders 3 fills 2") && l.contains("realized -12.50 USD"),
            "{l}"
        );
        assert!(l.contains("drops 1 backlog 0"), "{l}");
    }
}
