//! Relative strength index with Wilder smoothing.

/// Wilder's RSI over `period` price changes.
///
/// The first average gain / loss is the simple mean of the first `period`
/// gains / losses (so `period + 1` prices are needed; the value exists from
/// the `(period + 1)`-th update on). After that both averages are smoothed
/// as `avg = (avg * (n - 1) + x) / n`. `RSI = 100 - 100 / (1 + gain / loss)`,
/// and 100 when the average loss is 0 (including a perfectly flat series).
///
/// Warm-up sums are exact `i128`; the smoothed averages are `f64` in `px_e9`
/// units (RSI is scale-free).
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    prev: Option<i64>,
    /// Price changes seen, saturating at `period`.
    count: usize,
    gain_sum: i128,
    loss_sum: i128,
    avg_gain: f64,
    avg_loss: f64,
}

impl Rsi {
    /// Create an RSI over `period` changes.
    ///
    /// # Panics
    /// Panics if `period == 0` (use [`Rsi::try_new`] to avoid that).
    pub fn new(period: usize) -> Self {
        Self::try_new(period).expect("Rsi period must be > 0")
    }

    /// Create an RSI over `period` changes; `None` if `period == 0`.
    pub fn try_new(period: usize) -> Option<Self> {
        (period > 0).then_some(Self {
            period,
            prev: None,
            count: 0,
            gain_sum: 0,
            loss_sum: 0,
            avg_gain: 0.0,
            avg_loss: 0.0,
        })
    }

    /// Feed the next price (`px_e9`). O(1).
    #[inline]
    pub fn update(&mut self, px_e9: i64) {
        let Some(prev) = self.prev.replace(px_e9) else {
            return;
        };
        let d = i128::from(px_e9) - i128::from(prev);
        let (gain, loss) = if d > 0 { (d, 0) } else { (0, -d) };
        let n = self.period as f64;
        if self.count < self.period {
            self.gain_sum += gain;
            self.loss_sum += loss;
            self.count += 1;
            if self.count == self.period {
                self.avg_gain = self.gain_sum as f64 / n;
                self.avg_loss = self.loss_sum as f64 / n;
            }
        } else {
            self.avg_gain = (self.avg_gain * (n - 1.0) + gain as f64) / n;
            self.avg_loss = (self.avg_loss * (n - 1.0) + loss as f64) / n;
        }
    }

    /// The period `n` (number of price changes averaged).
    #[inline]
    pub fn period(&self) -> usize {
        self.period
    }

    /// `true` once `period() + 1` prices have been seen.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.count == self.period
    }

    /// RSI in `0.0..=100.0`; `None` until ready.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        if !self.is_ready() {
            return None;
        }
        if self.avg_loss == 0.0 {
            return Some(100.0);
        }
        // Algebraically 100 - 100 / (1 + g/l), without the cancellation.
        Some(100.0 * self.avg_gain / (self.avg_gain + self.avg_loss))
    }

    /// Forget all history.
    pub fn reset(&mut self) {
        *self =
            Self { period: self.period, prev: None, count: 0, gain_sum: 0, loss_sum: 0, avg_gain: 0.0, avg_loss: 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, opt_close, period, prices};
    use proptest::prelude::*;

    /// Textbook Wilder RSI over the whole history (USD floats).
    fn naive_rsi(n: usize, pxs: &[i64]) -> Option<f64> {
        if pxs.len() < n + 1 {
            return None;
        }
        let changes: Vec<f64> = pxs.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
        let gain = |d: f64| d.max(0.0);
        let loss = |d: f64| (-d).max(0.0);
        let nf = n as f64;
        let mut g = changes[..n].iter().map(|&d| gain(d)).sum::<f64>() / nf;
        let mut l = changes[..n].iter().map(|&d| loss(d)).sum::<f64>() / nf;
        for &d in &changes[n..] {
            g = (g * (nf - 1.0) + gain(d)) / nf;
            l = (l * (nf - 1.0) + loss(d)) / nf;
        }
        Some(if l == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + g / l) })
    }

    #[test]
    fn hand_computed() {
        // RSI(2) on prices 1, 2, 1, 3, 3 USD; changes +1, -1, +2, 0.
        //   after 1, 2    -> not ready (only 1 change)
        //   after 1 (3rd) -> avg gain = (1+0)/2 = 0.5, avg loss = (0+1)/2 = 0.5
        //                    RS = 1 -> RSI = 100 - 100/2 = 50
        //   after 3       -> gain = (0.5*1 + 2)/2 = 1.25, loss = (0.5*1 + 0)/2 = 0.25
        //                    RS = 5 -> RSI = 100 - 100/6 = 83.333...
        //   after 3 (5th) -> gain = (1.25 + 0)/2 = 0.625, loss = 0.125, RS = 5 again
        let mut r = Rsi::new(2);
        r.update(USD);
        r.update(2 * USD);
        assert_eq!(r.value(), None);
        r.update(USD);
        assert_eq!(r.value(), Some(50.0));
        r.update(3 * USD);
        assert!(opt_close(r.value(), Some(100.0 - 100.0 / 6.0), 1e-12, 1.0));
        r.update(3 * USD);
        assert!(opt_close(r.value(), Some(100.0 - 100.0 / 6.0), 1e-12, 1.0));
    }

    #[test]
    fn no_losses_is_100_and_all_losses_is_0() {
        let mut up = Rsi::new(3);
        let mut down = Rsi::new(3);
        let mut flat = Rsi::new(3);
        for i in 1..=10 {
            up.update(i * USD);
            down.update((20 - i) * USD);
            flat.update(7 * USD);
        }
        assert_eq!(up.value(), Some(100.0));
        assert_eq!(down.value(), Some(0.0));
        assert_eq!(flat.value(), Some(100.0));
        up.reset();
        assert_eq!(up.value(), None);
        assert!(Rsi::try_new(0).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update the incremental RSI equals a from-scratch
        /// textbook recompute (relative tolerance 1e-9 on the 0..100 scale).
        #[test]
        fn matches_recompute(n in period(), pxs in prices()) {
            let mut r = Rsi::new(n);
            for (i, &px) in pxs.iter().enumerate() {
                r.update(px);
                prop_assert_eq!(r.is_ready(), i >= n);
                let got = r.value();
                prop_assert!(opt_close(got, naive_rsi(n, &pxs[..=i]), 1e-9, 1.0),
                    "step {}: {:?} vs {:?}", i, got, naive_rsi(n, &pxs[..=i]));
                if let Some(v) = got {
                    prop_assert!((0.0..=100.0).contains(&v));
                }
            }
        }
    }
}
