//! Incremental technical indicators shared by all strategies.
//!
//! # Conventions
//!
//! * Prices arrive as fixed-point `i64` in units of 1e-9 USD (`px_e9`:
//!   1 USD = `1_000_000_000`). Volumes arrive as `u64`.
//! * Every indicator is incremental: `update(..)` is O(1) amortized, never
//!   allocates (all buffers are preallocated with a fixed capacity in the
//!   constructor), never reads a clock, performs no I/O and does not panic on
//!   ordinary input.
//! * `value()` returns `None` until the indicator is warmed up; `is_ready()`
//!   says whether `value()` is `Some`; `reset()` returns the indicator to its
//!   freshly constructed state without releasing or reallocating storage.
//! * Floating-point outputs that carry a price dimension (SMA, EMA, VWAP,
//!   ATR, Bollinger bands, MACD) are expressed in **USD** (`px_e9 / 1e9`).
//!   RSI is dimensionless (0..=100).
//! * Where the state can be kept as exact integers (SMA sum, rolling
//!   high/low, VWAP sums, Bollinger sums) it is, so the incremental state is
//!   bit-for-bit equal to a full recompute over the same data.
//! * Constructors taking a period panic if the period is zero; each has a
//!   non-panicking `try_new` twin returning `None` instead.

#![forbid(unsafe_code)]

mod atr;
mod bollinger;
mod ema;
mod macd;
mod ring;
mod rolling;
mod rsi;
mod sma;
mod vwap;

pub use atr::Atr;
pub use bollinger::{Bollinger, BollingerBands};
pub use ema::Ema;
pub use macd::{Macd, MacdOutput};
pub use rolling::{RollingHigh, RollingLow};
pub use rsi::Rsi;
pub use sma::Sma;
pub use vwap::Vwap;

/// Number of `px_e9` units in one USD, as `f64`.
pub(crate) const PX_SCALE: f64 = 1_000_000_000.0;

/// Convert a fixed-point `px_e9` price to floating-point USD.
#[inline]
pub(crate) fn px_to_usd(px_e9: i64) -> f64 {
    px_e9 as f64 / PX_SCALE
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Shared helpers for the indicator property tests.

    use proptest::prelude::*;

    /// 1 USD in `px_e9` units.
    pub(crate) const USD: i64 = 1_000_000_000;

    /// A realistic price: 1 USD ..= 1,000,000 USD in `px_e9` units.
    pub(crate) fn price() -> impl Strategy<Value = i64> {
        USD..=1_000_000 * USD
    }

    /// A price series of 1..=300 realistic prices. Half of the series are a
    /// bounded random walk around a random level (so that windows actually
    /// see trends, ties and small moves), the other half are i.i.d. prices.
    pub(crate) fn prices() -> impl Strategy<Value = Vec<i64>> {
        let iid = prop::collection::vec(price(), 1..=300);
        let walk =
            (price(), prop::collection::vec(-1_000_000_000i64..=1_000_000_000, 1..=300)).prop_map(|(start, steps)| {
                let mut px = start;
                steps
                    .into_iter()
                    .map(|s| {
                        px = (px + s).clamp(USD, 1_000_000 * USD);
                        px
                    })
                    .collect()
            });
        prop_oneof![iid, walk]
    }

    /// A window / period size in 1..=50.
    pub(crate) fn period() -> impl Strategy<Value = usize> {
        1usize..=50
    }

    /// `|a - b| <= tol * max(|a|, |b|, floor)`; `floor` keeps the relative
    /// check meaningful when both values are near zero.
    pub(crate) fn close(a: f64, b: f64, tol: f64, floor: f64) -> bool {
        let scale = a.abs().max(b.abs()).max(floor);
        (a - b).abs() <= tol * scale
    }

    /// Compare two `Option<f64>` with [`close`]; both must be `None` or both `Some`.
    pub(crate) fn opt_close(a: Option<f64>, b: Option<f64>, tol: f64, floor: f64) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => close(a, b, tol, floor),
            _ => false,
        }
    }
}
