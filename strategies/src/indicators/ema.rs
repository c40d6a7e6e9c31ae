//! Exponential moving average, SMA-seeded.

use super::px_to_usd;

/// Exponential moving average with `alpha = 2 / (period + 1)`.
///
/// The first value is the simple mean of the first `period` inputs (so the
/// value exists from the `period`-th update on); after that
/// `ema = alpha * x + (1 - alpha) * ema`.
///
/// Feed prices with [`Ema::update`] (value in USD) or arbitrary floats with
/// [`Ema::update_f64`] (value in the input's unit); don't mix the two on one
/// instance.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    /// Inputs seen, saturating at `period`.
    count: usize,
    /// Sum of the first `period` inputs (warm-up only).
    seed_sum: f64,
    value: f64,
}

impl Ema {
    /// Create an EMA with the given `period`.
    ///
    /// # Panics
    /// Panics if `period == 0` (use [`Ema::try_new`] to avoid that).
    pub fn new(period: usize) -> Self {
        Self::try_new(period).expect("Ema period must be > 0")
    }

    /// Create an EMA with the given `period`; `None` if `period == 0`.
    pub fn try_new(period: usize) -> Option<Self> {
        (period > 0).then(|| Self { period, alpha: 2.0 / (period as f64 + 1.0), count: 0, seed_sum: 0.0, value: 0.0 })
    }

    /// Feed the next price (`px_e9`); the value is in USD. O(1).
    #[inline]
    pub fn update(&mut self, px_e9: i64) {
        self.update_f64(px_to_usd(px_e9));
    }

    /// Feed the next raw float observation. O(1).
    #[inline]
    pub fn update_f64(&mut self, x: f64) {
        if self.count < self.period {
            self.seed_sum += x;
            self.count += 1;
            if self.count == self.period {
                self.value = self.seed_sum / self.period as f64;
            }
        } else {
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value;
        }
    }

    /// The period `n`.
    #[inline]
    pub fn period(&self) -> usize {
        self.period
    }

    /// The smoothing factor `2 / (n + 1)`.
    #[inline]
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// `true` once `period()` inputs have been seen.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.count == self.period
    }

    /// The current EMA; `None` until ready.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        self.is_ready().then_some(self.value)
    }

    /// Forget all history.
    pub fn reset(&mut self) {
        self.count = 0;
        self.seed_sum = 0.0;
        self.value = 0.0;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, opt_close, period, prices};
    use proptest::prelude::*;

    /// Naive EMA straight from the definition over the whole history `xs`.
    pub(crate) fn naive_ema(n: usize, xs: &[f64]) -> Option<f64> {
        if xs.len() < n {
            return None;
        }
        let alpha = 2.0 / (n as f64 + 1.0);
        let mut e = xs[..n].iter().sum::<f64>() / n as f64;
        for &x in &xs[n..] {
            e = alpha * x + (1.0 - alpha) * e;
        }
        Some(e)
    }

    #[test]
    fn hand_computed() {
        // EMA(3): alpha = 2/(3+1) = 0.5.
        //   1, 2     -> not ready
        //   3        -> seed = (1+2+3)/3 = 2
        //   4        -> 0.5*4 + 0.5*2 = 3
        //   10       -> 0.5*10 + 0.5*3 = 6.5
        let mut e = Ema::new(3);
        assert_eq!(e.alpha(), 0.5);
        e.update(USD);
        e.update(2 * USD);
        assert_eq!(e.value(), None);
        e.update(3 * USD);
        assert_eq!(e.value(), Some(2.0));
        e.update(4 * USD);
        assert_eq!(e.value(), Some(3.0));
        e.update(10 * USD);
        assert_eq!(e.value(), Some(6.5));
        e.reset();
        assert!(!e.is_ready());
        // EMA(1): alpha = 1, tracks the input exactly.
        let mut one = Ema::new(1);
        one.update_f64(5.0);
        assert_eq!(one.value(), Some(5.0));
        one.update_f64(-2.0);
        assert_eq!(one.value(), Some(-2.0));
        assert!(Ema::try_new(0).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update the incremental EMA equals a from-scratch
        /// recompute over the history (relative tolerance 1e-9).
        #[test]
        fn matches_recompute(n in period(), pxs in prices()) {
            let mut e = Ema::new(n);
            let usd: Vec<f64> = pxs.iter().map(|&p| p as f64 / 1e9).collect();
            for (i, &px) in pxs.iter().enumerate() {
                e.update(px);
                prop_assert_eq!(e.is_ready(), i + 1 >= n);
                prop_assert!(opt_close(e.value(), naive_ema(n, &usd[..=i]), 1e-9, 1e-12));
            }
        }
    }
}
