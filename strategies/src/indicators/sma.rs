//! Simple moving average with an exact integer running sum.

use std::cmp::Ordering;

use super::PX_SCALE;
use super::ring::Ring;

/// Simple moving average over the last `period` prices.
///
/// The running sum of `px_e9` over the window is kept exactly in `i128`
/// (it cannot overflow for any window that fits in memory), so
/// [`Sma::sum_e9`] always equals a full recompute, and [`Sma::cmp_exact`] /
/// [`Sma::cmp_px_exact`] compare averages without any float rounding.
/// The value exists from the `period`-th update on.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Ring<i64>,
    sum: i128,
}

impl Sma {
    /// Create an SMA over `period` prices.
    ///
    /// # Panics
    /// Panics if `period == 0` (use [`Sma::try_new`] to avoid that).
    pub fn new(period: usize) -> Self {
        Self::try_new(period).expect("Sma period must be > 0")
    }

    /// Create an SMA over `period` prices; `None` if `period == 0`.
    pub fn try_new(period: usize) -> Option<Self> {
        (period > 0).then(|| Self { window: Ring::with_capacity(period), sum: 0 })
    }

    /// Feed the next price (`px_e9`). O(1), allocation-free.
    #[inline]
    pub fn update(&mut self, px_e9: i64) {
        if let Some(old) = self.window.push_back(px_e9) {
            self.sum -= i128::from(old);
        }
        self.sum += i128::from(px_e9);
    }

    /// The window length `n`.
    #[inline]
    pub fn period(&self) -> usize {
        self.window.capacity()
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

    /// Exact sum of `px_e9` over the full window; `None` until ready.
    #[inline]
    pub fn sum_e9(&self) -> Option<i128> {
        self.is_ready().then_some(self.sum)
    }

    /// The average in USD (`sum / n / 1e9`); `None` until ready.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        self.sum_e9().map(|s| s as f64 / self.period() as f64 / PX_SCALE)
    }

    /// Forget all history (storage is kept).
    pub fn reset(&mut self) {
        self.window.clear();
        self.sum = 0;
    }

    /// Exactly compare the averages of two SMAs: `a.sum/a.n` vs `b.sum/b.n`,
    /// by cross-multiplication in `i128` (no float rounding, so a true tie is
    /// reported as `Equal`). `None` unless both are ready.
    pub fn cmp_exact(a: &Sma, b: &Sma) -> Option<Ordering> {
        let (sa, sb) = (a.sum_e9()?, b.sum_e9()?);
        Some(cmp_fractions(sa, a.period() as i128, sb, b.period() as i128))
    }

    /// Exactly compare this SMA's average with a price: `sum/n` vs `px_e9`.
    /// `None` until ready.
    pub fn cmp_px_exact(&self, px_e9: i64) -> Option<Ordering> {
        let s = self.sum_e9()?;
        Some(cmp_fractions(s, self.period() as i128, i128::from(px_e9), 1))
    }
}

/// Exact comparison of `sa/na` with `sb/nb` for `na, nb > 0`.
///
/// Cross-multiplies in `i128`. Since `|sum| <= n * 2^63`, that can only
/// overflow when `na * nb >= 2^64`; in that case it falls back to
/// [`cmp_fractions_euclid`], which is exact for all inputs.
fn cmp_fractions(sa: i128, na: i128, sb: i128, nb: i128) -> Ordering {
    match (sa.checked_mul(nb), sb.checked_mul(na)) {
        (Some(l), Some(r)) => l.cmp(&r),
        _ => cmp_fractions_euclid(sa, na, sb, nb),
    }
}

/// Overflow-free exact comparison of `sa/na` with `sb/nb` (`0 < na, nb <= 2^64`):
/// compare the Euclidean quotients, then the remainders `ra/na` vs `rb/nb`
/// by cross-multiplying in `u128` (`ra < na`, `rb < nb`, so no overflow).
fn cmp_fractions_euclid(sa: i128, na: i128, sb: i128, nb: i128) -> Ordering {
    let (qa, ra) = (sa.div_euclid(na), sa.rem_euclid(na));
    let (qb, rb) = (sb.div_euclid(nb), sb.rem_euclid(nb));
    qa.cmp(&qb).then_with(|| (ra as u128 * nb as u128).cmp(&(rb as u128 * na as u128)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, opt_close, period, prices};
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        // SMA(3) of 1, 2, 3, 4 USD:
        //   after 1, 2   -> not ready
        //   after 3      -> (1+2+3)/3 = 2
        //   after 4      -> (2+3+4)/3 = 3
        let mut s = Sma::new(3);
        s.update(USD);
        assert_eq!(s.value(), None);
        s.update(2 * USD);
        assert_eq!(s.value(), None);
        assert!(!s.is_ready());
        s.update(3 * USD);
        assert_eq!(s.value(), Some(2.0));
        assert_eq!(s.sum_e9(), Some(6 * i128::from(USD)));
        s.update(4 * USD);
        assert_eq!(s.value(), Some(3.0));
        assert_eq!(s.len(), 3);
        s.reset();
        assert!(s.is_empty());
        assert_eq!(s.value(), None);
    }

    #[test]
    fn cmp_exact_tie_that_floats_miss() {
        // a = SMA(3) of 1, 1, 2 (e9 units) -> 4/3; b = SMA(6) of 1,1,1,1,2,2 -> 8/6 = 4/3.
        // Exact tie; cross-multiplication: 4*6 == 8*3 == 24.
        let mut a = Sma::new(3);
        let mut b = Sma::new(6);
        for px in [1, 1, 2] {
            a.update(px);
        }
        for px in [1, 1, 1, 1, 2, 2] {
            b.update(px);
        }
        assert_eq!(Sma::cmp_exact(&a, &b), Some(Ordering::Equal));
        // One more e9 unit in a's window: 5/3 > 8/6.
        a.update(2); // window 1, 2, 2 -> 5/3
        assert_eq!(Sma::cmp_exact(&a, &b), Some(Ordering::Greater));
        assert_eq!(Sma::cmp_exact(&b, &a), Some(Ordering::Less));
        // Not ready -> None.
        assert_eq!(Sma::cmp_exact(&a, &Sma::new(2)), None);
        // vs a price: 5/3 vs 1 and 2.
        assert_eq!(a.cmp_px_exact(1), Some(Ordering::Greater));
        assert_eq!(a.cmp_px_exact(2), Some(Ordering::Less));
    }

    #[test]
    fn zero_period_rejected() {
        assert!(Sma::try_new(0).is_none());
        assert!(Sma::try_new(1).is_some());
    }

    #[test]
    fn extreme_prices_do_not_overflow() {
        let mut s = Sma::new(4);
        for _ in 0..10 {
            s.update(i64::MAX);
        }
        assert_eq!(s.sum_e9(), Some(4 * i128::from(i64::MAX)));
        s.update(i64::MIN);
        assert_eq!(s.cmp_px_exact(i64::MAX), Some(Ordering::Less));

        // Cross-multiplication overflow forces the Euclidean fallback:
        // (2^63 * na) / na vs (2^63 * nb) / nb with na = 2^62, nb = 2^62 - 1:
        // both equal 2^63, but the cross products (~2^187) overflow i128.
        let k = 1i128 << 63;
        let (na, nb) = (1i128 << 62, (1i128 << 62) - 1);
        assert!((k * na).checked_mul(nb).is_none());
        assert_eq!(cmp_fractions(k * na, na, k * nb, nb), Ordering::Equal);
        assert_eq!(cmp_fractions(k * na + 1, na, k * nb, nb), Ordering::Greater);
        assert_eq!(cmp_fractions(k * na - 1, na, k * nb, nb), Ordering::Less);
        assert_eq!(cmp_fractions(-k * na, na, k * nb, nb), Ordering::Less);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update the exact sum equals a full recompute over the
        /// last `n` prices, and the float value matches `sum/n/1e9`.
        #[test]
        fn matches_recompute(n in period(), pxs in prices()) {
            let mut s = Sma::new(n);
            for (i, &px) in pxs.iter().enumerate() {
                s.update(px);
                let seen = i + 1;
                prop_assert_eq!(s.len(), seen.min(n));
                if seen < n {
                    prop_assert_eq!(s.sum_e9(), None);
                    prop_assert_eq!(s.value(), None);
                } else {
                    let naive: i128 = pxs[seen - n..seen].iter().map(|&p| i128::from(p)).sum();
                    prop_assert_eq!(s.sum_e9(), Some(naive));
                    let mean = pxs[seen - n..seen].iter().map(|&p| p as f64 / 1e9).sum::<f64>() / n as f64;
                    prop_assert!(opt_close(s.value(), Some(mean), 1e-9, 0.0));
                }
            }
        }

        /// `cmp_exact` agrees with comparing the exact rationals computed
        /// independently (via the overflow-free Euclidean path), including
        /// on ties manufactured by scaling.
        #[test]
        fn cmp_exact_matches_rational(
            na in period(), nb in period(),
            pa in prop::collection::vec(0i64..6, 50),
            pb in prop::collection::vec(0i64..6, 50),
        ) {
            let mut a = Sma::new(na);
            let mut b = Sma::new(nb);
            for &p in &pa[..na] { a.update(p); }
            for &p in &pb[..nb] { b.update(p); }
            let (sa, sb) = (a.sum_e9().unwrap(), b.sum_e9().unwrap());
            let expect = cmp_fractions_euclid(sa, na as i128, sb, nb as i128);
            prop_assert_eq!(Sma::cmp_exact(&a, &b), Some(expect));
            prop_assert_eq!(Sma::cmp_exact(&b, &a), Some(expect.reverse()));
            prop_assert_eq!(Sma::cmp_exact(&a, &a), Some(Ordering::Equal));
        }

        /// The two exact comparison paths agree everywhere, including huge
        /// numerators/denominators where cross-multiplication would overflow.
        #[test]
        fn fraction_paths_agree(
            sa in any::<i64>(), sb in any::<i64>(),
            na in 1i128..=u32::MAX as i128, nb in 1i128..=u32::MAX as i128,
            big in any::<bool>(),
        ) {
            let (sa, sb) = if big {
                (i128::from(sa) * na, i128::from(sb) * nb)
            } else {
                (i128::from(sa), i128::from(sb))
            };
            let direct = (sa * nb).cmp(&(sb * na));
            prop_assert_eq!(cmp_fractions(sa, na, sb, nb), direct);
            prop_assert_eq!(cmp_fractions_euclid(sa, na, sb, nb), direct);
        }
    }
}
