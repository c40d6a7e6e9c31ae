//! Average true range with Wilder smoothing.

use super::PX_SCALE;

/// Wilder's average true range over `period` bars.
///
/// True range is `max(high - low, |high - prev_close|, |low - prev_close|)`;
/// the very first bar (no previous close) uses `high - low`. The first ATR is
/// the simple mean of the first `period` true ranges (value exists from the
/// `period`-th bar on); after that `atr = (atr * (n - 1) + tr) / n`.
///
/// True ranges and the warm-up sum are exact integers; the smoothed ATR is
/// `f64`, reported in USD. If a bar arrives with `high < low` the two are
/// swapped rather than producing a negative range.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    prev_close: Option<i64>,
    /// Bars seen, saturating at `period`.
    count: usize,
    tr_sum: i128,
    /// Smoothed ATR in `px_e9` units.
    atr_e9: f64,
}

impl Atr {
    /// Create an ATR over `period` bars.
    ///
    /// # Panics
    /// Panics if `period == 0` (use [`Atr::try_new`] to avoid that).
    pub fn new(period: usize) -> Self {
        Self::try_new(period).expect("Atr period must be > 0")
    }

    /// Create an ATR over `period` bars; `None` if `period == 0`.
    pub fn try_new(period: usize) -> Option<Self> {
        (period > 0).then_some(Self { period, prev_close: None, count: 0, tr_sum: 0, atr_e9: 0.0 })
    }

    /// Exact true range of a bar in `px_e9` units given the previous close.
    #[inline]
    fn true_range(high: i64, low: i64, prev_close: Option<i64>) -> i128 {
        let (h, l) = (i128::from(high.max(low)), i128::from(high.min(low)));
        match prev_close {
            None => h - l,
            Some(pc) => {
                let pc = i128::from(pc);
                (h - l).max((h - pc).abs()).max((l - pc).abs())
            }
        }
    }

    /// Feed the next bar (`px_e9` high, low, close). O(1).
    #[inline]
    pub fn update(&mut self, high_e9: i64, low_e9: i64, close_e9: i64) {
        let tr = Self::true_range(high_e9, low_e9, self.prev_close);
        self.prev_close = Some(close_e9);
        let n = self.period as f64;
        if self.count < self.period {
            self.tr_sum += tr;
            self.count += 1;
            if self.count == self.period {
                self.atr_e9 = self.tr_sum as f64 / n;
            }
        } else {
            self.atr_e9 = (self.atr_e9 * (n - 1.0) + tr as f64) / n;
        }
    }

    /// The period `n`.
    #[inline]
    pub fn period(&self) -> usize {
        self.period
    }

    /// `true` once `period()` bars have been seen.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.count == self.period
    }

    /// ATR in USD; `None` until ready.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        self.is_ready().then(|| self.atr_e9 / PX_SCALE)
    }

    /// Forget all history.
    pub fn reset(&mut self) {
        self.prev_close = None;
        self.count = 0;
        self.tr_sum = 0;
        self.atr_e9 = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, opt_close, period, price};
    use proptest::prelude::*;

    /// Textbook ATR over the whole history of (high, low, close). Works in
    /// f64 `px_e9` units (exact for these integers) and converts to USD at
    /// the end.
    fn naive_atr(n: usize, bars: &[(i64, i64, i64)]) -> Option<f64> {
        if bars.len() < n {
            return None;
        }
        let e9 = |x: i64| x as f64;
        let trs: Vec<f64> = bars
            .iter()
            .enumerate()
            .map(|(i, &(h, l, _))| {
                let (h, l) = (e9(h), e9(l));
                if i == 0 {
                    h - l
                } else {
                    let pc = e9(bars[i - 1].2);
                    (h - l).max((h - pc).abs()).max((l - pc).abs())
                }
            })
            .collect();
        let nf = n as f64;
        let mut atr = trs[..n].iter().sum::<f64>() / nf;
        for &tr in &trs[n..] {
            atr = (atr * (nf - 1.0) + tr) / nf;
        }
        Some(atr / 1e9)
    }

    #[test]
    fn hand_computed() {
        // ATR(2):
        //   bar1 h=10 l=8  c=9  : TR = 10-8 = 2 (no prev close)   -> not ready
        //   bar2 h=11 l=9  c=10 : TR = max(2, |11-9|, |9-9|) = 2  -> ATR = (2+2)/2 = 2
        //   bar3 h=14 l=11 c=12 : TR = max(3, |14-10|, |11-10|) = 4
        //                         ATR = (2*(2-1) + 4)/2 = 3
        //   bar4 h=10 l=9  c=9  : gap down, TR = max(1, |10-12|, |9-12|) = 3
        //                         ATR = (3*1 + 3)/2 = 3
        let mut a = Atr::new(2);
        a.update(10 * USD, 8 * USD, 9 * USD);
        assert_eq!(a.value(), None);
        a.update(11 * USD, 9 * USD, 10 * USD);
        assert_eq!(a.value(), Some(2.0));
        a.update(14 * USD, 11 * USD, 12 * USD);
        assert_eq!(a.value(), Some(3.0));
        a.update(10 * USD, 9 * USD, 9 * USD);
        assert_eq!(a.value(), Some(3.0));
        a.reset();
        assert!(!a.is_ready());
        assert!(Atr::try_new(0).is_none());
    }

    fn bars() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
        prop::collection::vec(
            (price(), 0i64..=20 * USD, 0i64..=20 * USD, 0i64..=100).prop_map(|(mid, up, down, close_pct)| {
                let (h, l) = (mid + up, (mid - down).max(1));
                let c = l + ((h - l) as i128 * i128::from(close_pct) / 100) as i64;
                (h, l, c)
            }),
            1..=300,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every bar the incremental ATR equals a from-scratch
        /// textbook recompute (relative tolerance 1e-9).
        #[test]
        fn matches_recompute(n in period(), bars in bars()) {
            let mut a = Atr::new(n);
            for (i, &(h, l, c)) in bars.iter().enumerate() {
                a.update(h, l, c);
                prop_assert_eq!(a.is_ready(), i + 1 >= n);
                prop_assert!(opt_close(a.value(), naive_atr(n, &bars[..=i]), 1e-9, 1e-9));
            }
        }
    }
}
