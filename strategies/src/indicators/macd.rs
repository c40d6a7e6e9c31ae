//! Moving average convergence / divergence.

use super::ema::Ema;

/// One MACD reading, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdOutput {
    /// `ema_fast - ema_slow`.
    pub macd: f64,
    /// EMA of the MACD line over the signal period.
    pub signal: f64,
    /// `macd - signal`.
    pub histogram: f64,
}

/// MACD: `macd = EMA_fast(px) - EMA_slow(px)`, `signal = EMA_signal(macd)`,
/// `histogram = macd - signal`. Defaults to (12, 26, 9).
///
/// All three EMAs are SMA-seeded [`Ema`]s. The MACD line exists once both
/// price EMAs are ready (update `max(fast, slow)`); the signal line, and so
/// [`Macd::value`], after `signal - 1` further updates.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    line: Option<f64>,
}

impl Default for Macd {
    /// The classic MACD(12, 26, 9).
    fn default() -> Self {
        Self::new(12, 26, 9)
    }
}

impl Macd {
    /// Create a MACD with the given fast, slow and signal EMA periods.
    ///
    /// # Panics
    /// Panics if any period is zero (use [`Macd::try_new`] to avoid that).
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Self::try_new(fast, slow, signal).expect("Macd periods must be > 0")
    }

    /// Like [`Macd::new`]; `None` if any period is zero.
    pub fn try_new(fast: usize, slow: usize, signal: usize) -> Option<Self> {
        Some(Self { fast: Ema::try_new(fast)?, slow: Ema::try_new(slow)?, signal: Ema::try_new(signal)?, line: None })
    }

    /// Feed the next price (`px_e9`). O(1).
    #[inline]
    pub fn update(&mut self, px_e9: i64) {
        self.fast.update(px_e9);
        self.slow.update(px_e9);
        if let (Some(f), Some(s)) = (self.fast.value(), self.slow.value()) {
            let m = f - s;
            self.line = Some(m);
            self.signal.update_f64(m);
        }
    }

    /// The (fast, slow, signal) periods.
    #[inline]
    pub fn periods(&self) -> (usize, usize, usize) {
        (self.fast.period(), self.slow.period(), self.signal.period())
    }

    /// The MACD line alone (USD), available before the signal line is.
    #[inline]
    pub fn macd_line(&self) -> Option<f64> {
        self.line
    }

    /// `true` once the signal line exists.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.signal.is_ready()
    }

    /// MACD, signal and histogram (USD); `None` until the signal is ready.
    #[inline]
    pub fn value(&self) -> Option<MacdOutput> {
        let macd = self.line?;
        let signal = self.signal.value()?;
        Some(MacdOutput { macd, signal, histogram: macd - signal })
    }

    /// Forget all history.
    pub fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.signal.reset();
        self.line = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::ema::tests::naive_ema;
    use crate::indicators::test_util::{USD, close, period, prices};
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        // MACD(fast 2, slow 3, signal 2) on 1, 2, 3, 4, 2 USD.
        //   fast alpha = 2/3: seed (1+2)/2 = 1.5 @2; 2/3*3 + 1/3*1.5 = 2.5 @3;
        //                     2/3*4 + 1/3*2.5 = 3.5 @4; 2/3*2 + 1/3*3.5 = 2.5 @5
        //   slow alpha = 1/2: seed (1+2+3)/3 = 2 @3; (4+2)/2 = 3 @4; (2+3)/2 = 2.5 @5
        //   macd: 2.5-2 = 0.5 @3; 3.5-3 = 0.5 @4; 2.5-2.5 = 0 @5
        //   signal alpha = 2/3: seed (0.5+0.5)/2 = 0.5 @4; 2/3*0 + 1/3*0.5 = 1/6 @5
        //   histogram @5 = 0 - 1/6 = -1/6
        let mut m = Macd::new(2, 3, 2);
        m.update(USD);
        m.update(2 * USD);
        assert_eq!(m.macd_line(), None);
        m.update(3 * USD);
        assert!(close(m.macd_line().unwrap(), 0.5, 1e-12, 1.0));
        assert_eq!(m.value(), None);
        m.update(4 * USD);
        let v = m.value().unwrap();
        assert!(close(v.macd, 0.5, 1e-12, 1.0));
        assert!(close(v.signal, 0.5, 1e-12, 1.0));
        assert!(close(v.histogram, 0.0, 1e-12, 1.0));
        m.update(2 * USD);
        let v = m.value().unwrap();
        assert!(close(v.macd, 0.0, 1e-12, 1.0));
        assert!(close(v.signal, 1.0 / 6.0, 1e-12, 1.0));
        assert!(close(v.histogram, -1.0 / 6.0, 1e-12, 1.0));
        m.reset();
        assert_eq!(m.value(), None);
        assert_eq!(m.macd_line(), None);
    }

    #[test]
    fn defaults() {
        let mut m = Macd::default();
        assert_eq!(m.periods(), (12, 26, 9));
        // Ready exactly at update 26 + 9 - 1 = 34.
        for i in 1..=34 {
            assert!(!m.is_ready());
            m.update(i * USD);
        }
        assert!(m.is_ready());
        assert!(Macd::try_new(12, 0, 9).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update the incremental MACD equals a from-scratch
        /// recompute over the history: fast/slow EMAs of all prices, signal =
        /// EMA of the MACD series (tolerance 1e-9 relative to price level).
        #[test]
        fn matches_recompute(fast in period(), slow in period(), sig in 1usize..=20, pxs in prices()) {
            let mut m = Macd::new(fast, slow, sig);
            let usd: Vec<f64> = pxs.iter().map(|&p| p as f64 / 1e9).collect();
            // MACD value at each step j, each from scratch over usd[..=j].
            let line: Vec<Option<f64>> = (0..usd.len())
                .map(|j| Some(naive_ema(fast, &usd[..=j])? - naive_ema(slow, &usd[..=j])?))
                .collect();
            for i in 0..pxs.len() {
                m.update(pxs[i]);
                let scale = usd[i].abs();
                let series: Vec<f64> = line[..=i].iter().flatten().copied().collect();
                match series.last() {
                    None => prop_assert_eq!(m.macd_line(), None),
                    Some(&want) => {
                        prop_assert!(close(m.macd_line().unwrap(), want, 1e-9, scale));
                    }
                }
                match naive_ema(sig, &series) {
                    None => prop_assert_eq!(m.value(), None),
                    Some(want_sig) => {
                        let v = m.value().unwrap();
                        let want_macd = *series.last().unwrap();
                        prop_assert!(close(v.macd, want_macd, 1e-9, scale));
                        prop_assert!(close(v.signal, want_sig, 1e-9, scale));
                        prop_assert!(close(v.histogram, want_macd - want_sig, 1e-9, scale));
                    }
                }
                prop_assert_eq!(m.is_ready(), i + 1 >= fast.max(slow) + sig - 1);
            }
        }
    }
}
