//! Rolling window maximum / minimum via a monotonic deque on a fixed ring.

use super::ring::Ring;

/// Shared monotonic-deque core. `MAX = true` tracks the maximum.
///
/// The deque holds `(sequence number, value)` pairs with values strictly
/// decreasing (for max) from front to back; the front is the extreme of the
/// window. Every value is pushed and popped at most once, so `update` is
/// O(1) amortized. Entries all lie within the last `period` sequence numbers,
/// so the deque never holds more than `period` entries and a ring of that
/// capacity, allocated up front, suffices.
#[derive(Debug, Clone)]
struct Extreme<const MAX: bool> {
    period: usize,
    /// Sequence number of the next update (wrapping).
    seq: u64,
    /// Updates seen, saturating at `period`.
    seen: usize,
    deque: Ring<(u64, i64)>,
}

impl<const MAX: bool> Extreme<MAX> {
    fn try_new(period: usize) -> Option<Self> {
        (period > 0).then(|| Self { period, seq: 0, seen: 0, deque: Ring::with_capacity(period) })
    }

    /// `true` if the existing back value `old` can never again be the
    /// extreme once `new` has arrived.
    #[inline]
    fn dominated(old: i64, new: i64) -> bool {
        if MAX { old <= new } else { old >= new }
    }

    #[inline]
    fn update(&mut self, x: i64) {
        let t = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if self.seen < self.period {
            self.seen += 1;
        }
        // Expire entries that fall out of the window (t - idx >= period).
        while let Some((idx, _)) = self.deque.front() {
            if t.wrapping_sub(idx) >= self.period as u64 {
                self.deque.pop_front();
            } else {
                break;
            }
        }
        // Drop dominated entries from the back.
        while let Some((_, v)) = self.deque.back() {
            if Self::dominated(v, x) {
                self.deque.pop_back();
            } else {
                break;
            }
        }
        // At most period - 1 entries remain (seq numbers t-period+1 ..= t-1),
        // so this push never evicts.
        self.deque.push_back((t, x));
    }

    #[inline]
    fn is_ready(&self) -> bool {
        self.seen == self.period
    }

    #[inline]
    fn value(&self) -> Option<i64> {
        if self.is_ready() { self.deque.front().map(|(_, v)| v) } else { None }
    }

    fn reset(&mut self) {
        self.seq = 0;
        self.seen = 0;
        self.deque.clear();
    }
}

macro_rules! rolling_extreme {
    ($(#[$doc:meta])* $name:ident, $max:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(Extreme<$max>);

        impl $name {
            #[doc = concat!("Create a rolling ", $what, " over the last `period` prices.")]
            ///
            /// # Panics
            /// Panics if `period == 0` (use `try_new` to avoid that).
            pub fn new(period: usize) -> Self {
                Self::try_new(period).expect("rolling window period must be > 0")
            }

            #[doc = concat!("Create a rolling ", $what, " over `period` prices; `None` if `period == 0`.")]
            pub fn try_new(period: usize) -> Option<Self> {
                Extreme::try_new(period).map(Self)
            }

            /// Feed the next price (`px_e9`). O(1) amortized, allocation-free.
            #[inline]
            pub fn update(&mut self, px_e9: i64) {
                self.0.update(px_e9);
            }

            /// The window length `n`.
            #[inline]
            pub fn period(&self) -> usize {
                self.0.period
            }

            /// `true` once `period()` prices have been seen.
            #[inline]
            pub fn is_ready(&self) -> bool {
                self.0.is_ready()
            }

            #[doc = concat!("Exact ", $what, " (`px_e9`) of the last `period()` prices; `None` until ready.")]
            #[inline]
            pub fn value(&self) -> Option<i64> {
                self.0.value()
            }

            /// Forget all history (storage is kept).
            pub fn reset(&mut self) {
                self.0.reset();
            }
        }
    };
}

rolling_extreme!(
    /// Highest price over the last `period` updates (exact `px_e9`), e.g. for
    /// Donchian-channel breakouts. Value exists from the `period`-th update on.
    RollingHigh,
    true,
    "maximum"
);

rolling_extreme!(
    /// Lowest price over the last `period` updates (exact `px_e9`). Value
    /// exists from the `period`-th update on.
    RollingLow,
    false,
    "minimum"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_util::{period, prices};
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        // High(3) over 1, 3, 2, 1, 0, 5:
        //   1, 3     -> not ready
        //   2        -> max(1,3,2) = 3
        //   1        -> max(3,2,1) = 3
        //   0        -> max(2,1,0) = 2   (the 3 expired)
        //   5        -> max(1,0,5) = 5
        let mut h = RollingHigh::new(3);
        let got: Vec<_> = [1, 3, 2, 1, 0, 5]
            .into_iter()
            .map(|p| {
                h.update(p);
                h.value()
            })
            .collect();
        assert_eq!(got, [None, None, Some(3), Some(3), Some(2), Some(5)]);

        // Low(3) over 5, 3, 4, 6, 7, 3:
        //   4 -> min(5,3,4) = 3; 6 -> min(3,4,6) = 3; 7 -> min(4,6,7) = 4;
        //   3 -> min(6,7,3) = 3
        let mut l = RollingLow::new(3);
        let got: Vec<_> = [5, 3, 4, 6, 7, 3]
            .into_iter()
            .map(|p| {
                l.update(p);
                l.value()
            })
            .collect();
        assert_eq!(got, [None, None, Some(3), Some(3), Some(4), Some(3)]);

        l.reset();
        assert_eq!(l.value(), None);
        assert!(RollingHigh::try_new(0).is_none());
        assert!(RollingLow::try_new(0).is_none());
    }

    #[test]
    fn ties_and_period_one() {
        // Equal values: the newest copy survives, so the max stays correct
        // when the older copy expires. High(2) over 4, 4, 1: 4, 4.
        let mut h = RollingHigh::new(2);
        for p in [4, 4, 1] {
            h.update(p);
        }
        assert_eq!(h.value(), Some(4));
        let mut one = RollingLow::new(1);
        for p in [9, -3, i64::MAX, i64::MIN] {
            one.update(p);
            assert_eq!(one.value(), Some(p));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After every update high/low equal max/min of the last n prices
        /// exactly, and the deque never outgrows its preallocated ring.
        #[test]
        fn matches_recompute(n in period(), pxs in prices(), small in any::<bool>()) {
            // Half the cases squash prices into a few levels to force ties.
            let pxs: Vec<i64> = if small { pxs.iter().map(|p| p % 4).collect() } else { pxs };
            let mut hi = RollingHigh::new(n);
            let mut lo = RollingLow::new(n);
            for (i, &px) in pxs.iter().enumerate() {
                hi.update(px);
                lo.update(px);
                let seen = i + 1;
                let (want_hi, want_lo) = if seen < n {
                    (None, None)
                } else {
                    let w = &pxs[seen - n..seen];
                    (w.iter().copied().max(), w.iter().copied().min())
                };
                prop_assert_eq!(hi.value(), want_hi);
                prop_assert_eq!(lo.value(), want_lo);
                prop_assert!(hi.0.deque.len() <= n && lo.0.deque.len() <= n);
                prop_assert_eq!(hi.0.deque.capacity(), n);
            }
        }
    }
}
