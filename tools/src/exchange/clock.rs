//! The market clock: market time runs `speed` times faster than the wall clock from a chosen start.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock nanoseconds since the Unix epoch (the exchange's one clock read).
#[allow(clippy::disallowed_methods)] // the exchange is the market, not engine logic: it owns the wall clock
pub fn wall_now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// `market_now = market_start + (wall_now - wall_start) * speed`. `GET /control/clock` serves these
/// fields (plus `market_now_ns`) so a paper client can run on the same market time: deserialize
/// the JSON into a `MarketClock` and call [`MarketClock::now_ns`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketClock {
    /// Wall time (ns UTC) at which market time was `market_start_ns`.
    pub wall_start_ns: i64,
    /// Market time (ns UTC) at `wall_start_ns`.
    pub market_start_ns: i64,
    /// Market seconds per wall second.
    pub speed: f64,
}

impl MarketClock {
    /// A clock whose market time is `market_start_ns` now.
    pub fn starting_now(market_start_ns: i64, speed: f64) -> Self {
        MarketClock { wall_start_ns: wall_now_ns(), market_start_ns, speed }
    }

    /// Market time at wall time `wall_ns`.
    pub fn at_wall(&self, wall_ns: i64) -> i64 {
        let elapsed = (wall_ns - self.wall_start_ns).max(0) as f64;
        self.market_start_ns.saturating_add((elapsed * self.speed) as i64)
    }

    /// Market time now.
    pub fn now_ns(&self) -> i64 {
        self.at_wall(wall_now_ns())
    }

    /// Wall nanoseconds until market time reaches `market_ns` (0 if it already has).
    pub fn wall_until(&self, market_ns: i64) -> i64 {
        let ahead = (market_ns - self.now_ns()).max(0) as f64;
        (ahead / self.speed.max(1e-9)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_time_runs_at_speed() {
        let c = MarketClock { wall_start_ns: 1_000, market_start_ns: 5_000_000, speed: 60.0 };
        assert_eq!(c.at_wall(1_000), 5_000_000);
        assert_eq!(c.at_wall(2_000), 5_060_000);
        assert_eq!(c.at_wall(0), 5_000_000, "never before the start");
    }
}
