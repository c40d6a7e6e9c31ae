//! Reconnect backoff: exponential, capped, with "equal jitter" from a seeded xorshift generator
//! (deterministic for a given seed, so tests and replays see the same delays).

/// Exponential backoff with jitter. The n-th delay (from 0) is drawn uniformly from
/// `[d/2, d]` where `d = min(cap, base * 2^n)`; [`Backoff::reset`] starts over after a
/// connection opened.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ns: i64,
    cap_ns: i64,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff starting at `base_ns`, never above `cap_ns`, jitter seeded by `seed` (0 is
    /// replaced by a fixed non-zero constant: xorshift needs a non-zero state).
    pub fn new(base_ns: i64, cap_ns: i64, seed: u64) -> Self {
        let base_ns = base_ns.max(1);
        Self {
            base_ns,
            cap_ns: cap_ns.max(base_ns),
            attempt: 0,
            rng: if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed },
        }
    }

    /// The next delay in nanoseconds (and one more attempt counted).
    pub fn next_delay_ns(&mut self) -> i64 {
        let shift = self.attempt.min(40);
        let d = self.base_ns.saturating_mul(1i64 << shift).min(self.cap_ns);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        // `half + 1` > 0, so the modulo is defined; the result stays within [d/2, d].
        half + (self.next_u64() % (d - half + 1) as u64) as i64
    }

    /// How many delays were drawn since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Start over from `base` (call after a connection opened).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// xorshift64* (Vigna): small, fast, good enough for jitter.
    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let (base, cap) = (100, 1_000);
        let mut b = Backoff::new(base, cap, 42);
        let delays: Vec<i64> = (0..8).map(|_| b.next_delay_ns()).collect();
        // d = 100, 200, 400, 800, 1000, 1000, ... ; each delay in [d/2, d].
        for (n, &got) in delays.iter().enumerate() {
            let d = (base << n).min(cap);
            assert!((d / 2..=d).contains(&got), "attempt {n}: {got} not in [{}, {d}]", d / 2);
        }
        // Deterministic for a seed, different for another.
        let mut again = Backoff::new(base, cap, 42);
        assert_eq!(delays, (0..8).map(|_| again.next_delay_ns()).collect::<Vec<_>>());
        let mut other = Backoff::new(base, cap, 43);
        assert_ne!(delays, (0..8).map(|_| other.next_delay_ns()).collect::<Vec<_>>());
        b.reset();
        assert!((50..=100).contains(&b.next_delay_ns()));
        // No overflow after very many attempts.
        for _ in 0..200 {
            assert!(b.next_delay_ns() <= cap);
        }
    }
}
