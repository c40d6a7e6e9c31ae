//! Bollinger bands with exact integer window sums.

use super::PX_SCALE;
use super::ring::Ring;

/// One Bollinger-band reading, all in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BollingerBands {
    /// `middle - k * stddev`.
    pub lower: f64,
    /// The simple moving average of the window.
    pub middle: f64,
    /// `middle + k * stddev`.
    pub upper: f64,
    /// Population standard deviation of the window.
    pub stddev: f64,
}

/// Bollinger bands: SMA(`period`) ± `k` population standard deviations.
///
/// The window sums `S1 = sum(px_e9)` (`i128`) and `S2 = sum(px_e9^2)`
/// (`u128`) are kept exactly, so they always equal a full recompute. The
/// standard deviation is derived from the exact integer
/// `n * S2 - S1^2 = n^2 * variance`, so it has a single rounding step and no
/// catastrophic cancellation. `S2` is exact while it fits in `u128`
/// (`n * px^2 < 3.4e38`: e.g. 340 samples of 1e9 USD); the variance numerator
/// is exact while `n * S2` fits too (always, for 1e6 USD prices and windows
/// up to ~3e8), and otherwise falls back to float arithmetic. Nothing panics.
///
/// The value exists from the `period`-th update on.
#[derive(Debug, Clone)]
pub struct Bollinger {
    k: f64,
    window: Ring<i64>,
    sum: i128,
    sum_sq: u128,
}

impl Bollinger {
    /// Create Bollinger bands over `period` prices at `k` standard deviations
    /// (the classic setting is `new(20, 2.0)`).
    ///
    /// # Panics
    /// Panics if `period == 0` (use [`Bollinger::try_new`] to avoid that).
    pub fn new(period: usize, k: f64) -> Self {
        Self::try_new(period, k).expect("Bollinger period must be > 0")
    }

    /// Like [`Bollinger::new`]; `None` if `period == 0`.
    pub fn try_new(period: usize, k: f64) -> Option<Self> {
        (period > 0).then(|| Self { k, window: Ring::with_capacity(period), sum: 0, sum_sq: 0 })
    }

    #[inline]
    fn square(px: i64) -> u128 {
        let a = u128::from(px.unsigned_abs());
        a * a // <= 2^126
    }

    /// Feed the next price (`px_e9`). O(1), allocation-free.
    #[inline]
    pub fn update(&mut self, px_e9: i64) {
        if let Some(old) = self.window.push_back(px_e9) {
            self.sum -= i128::from(old);
            self.sum_sq = self.sum_sq.wrapping_sub(Self::square(old));
        }
        self.sum += i128::from(px_e9);
        // Modular arithmetic: the window total is exact whenever it fits.
        self.sum_sq = self.sum_sq.wrapping_add(Self::square(px_e9));
    }

    /// The window length `n`.
    #[inline]
    pub fn period(&self) -> usize {
        self.window.capacity()
    }

    /// The band width multiplier `k`.
    #[inline]
    pub fn k(&self) -> f64 {
        self.k
    }

    /// Number of prices currently in the window (`<= period()`).
    #[inline]
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// `true` if no price has been fed since construction / reset.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// `true` once `period()` prices have been seen.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.window.is_full()
    }

    /// Exact `sum(px_e9)` over the full window; `None` until ready.
    #[inline]
    pub fn sum_e9(&self) -> Option<i128> {
        self.is_ready().then_some(self.sum)
    }

    /// Exact `sum(px_e9^2)` over the full window (units of 1e-18 USD^2);
    /// `None` until ready.
    #[inline]
    pub fn sum_sq_e18(&self) -> Option<u128> {
        self.is_ready().then_some(self.sum_sq)
    }

    /// Exact `n * S2 - S1^2` (= `n^2 * variance` in e18 units) if it fits.
    #[inline]
    fn variance_numerator(&self) -> Option<u128> {
        let n = self.period() as u128;
        let a = n.checked_mul(self.sum_sq)?;
        let s = self.sum.unsigned_abs();
        let b = s.checked_mul(s)?;
        // a >= b mathematically (Cauchy-Schwarz); saturate defensively.
        Some(a.saturating_sub(b))
    }

    /// Population standard deviation in `px_e9` units.
    #[inline]
    fn stddev_e9(&self) -> f64 {
        let n = self.period() as f64;
        match self.variance_numerator() {
            Some(d) => (d as f64).sqrt() / n,
            None => {
                let mean = self.sum as f64 / n;
                (self.sum_sq as f64 / n - mean * mean).max(0.0).sqrt()
            }
        }
    }

    /// The current bands (USD); `None` until ready.
    #[inline]
    pub fn value(&self) -> Option<BollingerBands> {
        if !self.is_ready() {
            return None;
        }
        let middle = self.sum as f64 / self.period() as f64 / PX_SCALE;
        let stddev = self.stddev_e9() / PX_SCALE;
        Some(BollingerBands { lower: middle - self.k * stddev, middle, upper: middle + self.k * stddev, stddev })
    }

    /// Forget all history (storage is kept).
    pub fn reset(&mut self) {
        self.window.clear();
        self.sum = 0;
        self.sum_sq = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, close, period, prices};
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        // Bollinger(8, k=2) over 2, 4, 4, 4, 5, 5, 7, 9 USD:
        //   mean = 40/8 = 5
        //   squared deviations: 9, 1, 1, 1, 0, 0, 4, 16 -> sum 32
        //   population variance = 32/8 = 4 -> stddev = 2
        //   bands = 5 -/+ 2*2 = 1 .. 9
        // Exact numerator: n*S2 - S1^2 = 8*232 - 40^2 = 1856 - 1600 = 256 = 8^2 * 4.
        let mut b = Bollinger::new(8, 2.0);
        for p in [2, 4, 4, 4, 5, 5, 7] {
            b.update(p * USD);
            assert_eq!(b.value(), None);
        }
        b.update(9 * USD);
        let e18 = i128::from(USD) * i128::from(USD);
        assert_eq!(b.sum_e9(), Some(40 * i128::from(USD)));
        assert_eq!(b.sum_sq_e18(), Some(232 * e18 as u128));
        assert_eq!(b.variance_numerator(), Some(256 * e18 as u128));
        assert_eq!(b.value(), Some(BollingerBands { lower: 1.0, middle: 5.0, upper: 9.0, stddev: 2.0 }));
        // Slide: drop 2, add 5 -> 4,4,4,5,5,7,9,5: mean 43/8 = 5.375.
        b.update(5 * USD);
        assert_eq!(b.value().map(|v| v.middle), Some(5.375));
        b.reset();
        assert!(b.is_empty());
        assert!(Bollinger::try_new(0, 2.0).is_none());
    }

    #[test]
    fn constant_series_has_zero_width() {
        let mut b = Bollinger::new(5, 2.0);
        for _ in 0..20 {
            b.update(123_456_789_012_345);
        }
        let v = b.value().unwrap();
        assert_eq!(v.stddev, 0.0);
        assert_eq!(v.lower, v.upper);
    }

    #[test]
    fn extreme_prices_do_not_panic() {
        // Square sums overflow u128 here; the result must still be finite
        // and nothing may panic.
        let mut b = Bollinger::new(8, 2.0);
        for i in 0..40 {
            b.update(if i % 2 == 0 { i64::MAX } else { i64::MIN });
        }
        assert!(b.value().is_some_and(|v| v.stddev.is_finite()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update: the integer sums equal a full recompute
        /// exactly; the stddev equals the one derived from recomputed exact
        /// sums bit-for-bit; and the bands match a two-pass float recompute
        /// within 1e-9 (relative to the price level).
        #[test]
        fn matches_recompute(n in period(), pxs in prices(), k in 0.5f64..3.0) {
            let mut b = Bollinger::new(n, k);
            for (i, &px) in pxs.iter().enumerate() {
                b.update(px);
                let seen = i + 1;
                prop_assert_eq!(b.len(), seen.min(n));
                if seen < n {
                    prop_assert_eq!(b.value(), None);
                    continue;
                }
                let w = &pxs[seen - n..seen];
                let s1: i128 = w.iter().map(|&p| i128::from(p)).sum();
                let s2: u128 = w.iter().map(|&p| (i128::from(p) * i128::from(p)) as u128).sum();
                prop_assert_eq!(b.sum_e9(), Some(s1));
                prop_assert_eq!(b.sum_sq_e18(), Some(s2));
                let d = n as u128 * s2 - s1.unsigned_abs() * s1.unsigned_abs();
                prop_assert_eq!(b.variance_numerator(), Some(d));
                let exact_sd = (d as f64).sqrt() / n as f64 / 1e9;
                let got = b.value().unwrap();
                prop_assert_eq!(got.stddev, exact_sd);

                // Independent two-pass float recompute in USD.
                let usd: Vec<f64> = w.iter().map(|&p| p as f64 / 1e9).collect();
                let mean = usd.iter().sum::<f64>() / n as f64;
                let sd = (usd.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt();
                let scale = mean.abs();
                prop_assert!(close(got.middle, mean, 1e-9, scale));
                prop_assert!(close(got.stddev, sd, 1e-9, scale));
                prop_assert!(close(got.upper, mean + k * sd, 1e-9, scale));
                prop_assert!(close(got.lower, mean - k * sd, 1e-9, scale));
            }
        }
    }
}
