//! Session volume-weighted average price with exact integer accumulation.

use super::PX_SCALE;

/// Session VWAP: `sum(typical_px * volume) / sum(volume)`, where the typical
/// price of a bar is `(high + low + close) / 3`.
///
/// To keep the division by 3 exact, the numerator is accumulated as
/// `sum(3 * typical_px_e9 * volume) = sum((high + low + close) * volume)` in
/// `i128`, and the cumulative volume in `u128`; both are therefore equal to a
/// full recompute over the session. They are exact as long as the session
/// numerator stays below ~1.7e38 (e.g. 1e6 USD x 1e14 shares of volume);
/// beyond that arithmetic wraps instead of panicking.
///
/// [`Vwap::value`] is `None` while the session's cumulative volume is 0
/// (index feeds often carry zero volume).
#[derive(Debug, Clone, Default)]
pub struct Vwap {
    /// `sum(3 * typical_px_e9 * volume)`.
    pv3: i128,
    /// `sum(volume)`.
    volume: u128,
}

impl Vwap {
    /// Create an empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one trade / bar whose (typical) price is `px_e9`. O(1).
    #[inline]
    pub fn update(&mut self, px_e9: i64, volume: u64) {
        self.accumulate(3 * i128::from(px_e9), volume);
    }

    /// Feed one bar; its typical price is `(high + low + close) / 3`
    /// (computed exactly, no rounding). O(1).
    #[inline]
    pub fn update_hlc(&mut self, high_e9: i64, low_e9: i64, close_e9: i64, volume: u64) {
        let hlc = i128::from(high_e9) + i128::from(low_e9) + i128::from(close_e9);
        self.accumulate(hlc, volume);
    }

    #[inline]
    fn accumulate(&mut self, px_x3: i128, volume: u64) {
        self.pv3 = self.pv3.wrapping_add(px_x3.wrapping_mul(i128::from(volume)));
        self.volume += u128::from(volume);
    }

    /// Start a new session (clears all sums).
    #[inline]
    pub fn reset_session(&mut self) {
        self.pv3 = 0;
        self.volume = 0;
    }

    /// Same as [`Vwap::reset_session`].
    #[inline]
    pub fn reset(&mut self) {
        self.reset_session();
    }

    /// `true` once the session has non-zero cumulative volume.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.volume > 0
    }

    /// Exact `sum(3 * typical_px_e9 * volume)` for the session (the factor 3
    /// keeps `(h + l + c) / 3` exact).
    #[inline]
    pub fn sum_pv3_e9(&self) -> i128 {
        self.pv3
    }

    /// Exact cumulative session volume.
    #[inline]
    pub fn cum_volume(&self) -> u128 {
        self.volume
    }

    /// Session VWAP in USD; `None` while cumulative volume is 0.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        self.is_ready().then(|| self.pv3 as f64 / (3.0 * self.volume as f64) / PX_SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{USD, opt_close, price};
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        // (10 USD x 1) then (20 USD x 3): (10*1 + 20*3) / (1+3) = 70/4 = 17.5
        let mut v = Vwap::new();
        assert_eq!(v.value(), None);
        v.update(10 * USD, 1);
        assert_eq!(v.value(), Some(10.0));
        v.update(20 * USD, 3);
        assert_eq!(v.value(), Some(17.5));
        assert_eq!(v.cum_volume(), 4);
        assert_eq!(v.sum_pv3_e9(), 3 * 70 * i128::from(USD));

        // New session; bar h=12, l=9, c=9 -> typical (12+9+9)/3 = 10, vol 2;
        // bar h=11, l=10, c=10 (typical 31/3, not an integer) vol 1:
        // (3*10*2 + 31*1) / (3 * 3) = 91/9 = 10.111...
        v.reset_session();
        assert_eq!(v.value(), None);
        v.update_hlc(12 * USD, 9 * USD, 9 * USD, 2);
        assert_eq!(v.value(), Some(10.0));
        v.update_hlc(11 * USD, 10 * USD, 10 * USD, 1);
        assert_eq!(v.sum_pv3_e9(), 91 * i128::from(USD));
        assert!(opt_close(v.value(), Some(91.0 / 9.0), 1e-15, 0.0));
    }

    #[test]
    fn zero_volume_is_none() {
        // Index data: prices with zero volume never produce a VWAP.
        let mut v = Vwap::new();
        v.update(100 * USD, 0);
        v.update_hlc(101 * USD, 99 * USD, 100 * USD, 0);
        assert!(!v.is_ready());
        assert_eq!(v.value(), None);
        // A zero-volume bar after real volume doesn't move the VWAP.
        v.update(50 * USD, 2);
        v.update(1_000 * USD, 0);
        assert_eq!(v.value(), Some(50.0));
    }

    #[derive(Debug, Clone)]
    struct Bar {
        h: i64,
        l: i64,
        c: i64,
        vol: u64,
        hlc: bool,
        new_session: bool,
    }

    fn bar() -> impl Strategy<Value = Bar> {
        (
            price(),
            0i64..=50 * USD,
            0i64..=50 * USD,
            prop_oneof![2 => Just(0u64), 8 => 0u64..=10_000_000],
            any::<bool>(),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(c, up, down, vol, hlc, new_session)| Bar {
                h: c + up,
                l: (c - down).max(1),
                c,
                vol,
                hlc,
                new_session,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update the exact sums equal a full recompute over the
        /// current session, and the value is sum(tp*vol)/sum(vol).
        #[test]
        fn matches_recompute(bars in prop::collection::vec(bar(), 1..=300)) {
            let mut v = Vwap::new();
            let mut start = 0;
            for (i, b) in bars.iter().enumerate() {
                if b.new_session {
                    v.reset_session();
                    start = i;
                }
                if b.hlc {
                    v.update_hlc(b.h, b.l, b.c, b.vol);
                } else {
                    v.update(b.c, b.vol);
                }
                let session = &bars[start..=i];
                let pv3: i128 = session
                    .iter()
                    .map(|b| {
                        let px3 = if b.hlc {
                            i128::from(b.h) + i128::from(b.l) + i128::from(b.c)
                        } else {
                            3 * i128::from(b.c)
                        };
                        px3 * i128::from(b.vol)
                    })
                    .sum();
                let vol: u128 = session.iter().map(|b| u128::from(b.vol)).sum();
                prop_assert_eq!(v.sum_pv3_e9(), pv3);
                prop_assert_eq!(v.cum_volume(), vol);
                // Float recompute from the same definition, in USD.
                let (mut num, mut den) = (0.0f64, 0.0f64);
                for b in session {
                    let tp = if b.hlc {
                        (b.h as f64 + b.l as f64 + b.c as f64) / 3.0
                    } else {
                        b.c as f64
                    } / 1e9;
                    num += tp * b.vol as f64;
                    den += b.vol as f64;
                }
                let naive = (den > 0.0).then(|| num / den);
                prop_assert!(opt_close(v.value(), naive, 1e-9, 0.0));
            }
        }
    }
}
