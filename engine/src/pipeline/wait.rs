//! Wait strategies for stages with nothing to do. Producers never make a syscall to wake a
//! consumer: consumers poll, and back off when configured to share cores politely.

use super::config::WaitKind;
use std::time::Duration;

/// A resolved wait strategy (no `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Busy spin.
    Spin,
    /// Spin, then yield.
    Yield,
    /// Spin, yield, then sleep.
    Backoff,
    /// Sleep at once (10 µs, growing to 160 µs): for a stage that is far ahead of, or far behind,
    /// the work (a sequencer facing a full ring, the recorder facing an empty queue), where
    /// spinning or yielding would only take the core from the stages doing the work.
    Sleep,
}

impl Wait {
    /// Resolve `Auto` given whether the stage has a core of its own.
    pub fn resolve(kind: WaitKind, dedicated_core: bool) -> Wait {
        match kind {
            WaitKind::Spin => Wait::Spin,
            WaitKind::Yield => Wait::Yield,
            WaitKind::Backoff => Wait::Backoff,
            WaitKind::Auto if dedicated_core => Wait::Spin,
            WaitKind::Auto => Wait::Backoff,
        }
    }
}

/// Per-loop waiting state. Call [`Waiter::wait`] each time a poll finds nothing and
/// [`Waiter::reset`] when work arrives.
#[derive(Debug)]
pub struct Waiter {
    wait: Wait,
    n: u32,
    /// Number of times this waiter slept or yielded (a metric of idleness).
    pub parks: u64,
}

const SPINS: u32 = 200;
const YIELDS: u32 = 2_000;

impl Waiter {
    /// A waiter using `wait`.
    pub fn new(wait: Wait) -> Self {
        Waiter { wait, n: 0, parks: 0 }
    }

    /// Work arrived.
    #[inline]
    pub fn reset(&mut self) {
        self.n = 0;
    }

    /// Nothing to do: wait a little, according to the strategy.
    #[inline]
    pub fn wait(&mut self) {
        self.n = self.n.saturating_add(1);
        match self.wait {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => {
                if self.n < SPINS {
                    std::hint::spin_loop();
                } else {
                    self.parks += 1;
                    std::thread::yield_now();
                }
            }
            Wait::Sleep => {
                self.parks += 1;
                let k = self.n.min(4);
                std::thread::sleep(Duration::from_micros(10 << k));
            }
            Wait::Backoff => {
                if self.n < SPINS {
                    std::hint::spin_loop();
                } else if self.n < SPINS + YIELDS {
                    self.parks += 1;
                    std::thread::yield_now();
                } else {
                    self.parks += 1;
                    let k = (self.n - SPINS - YIELDS).min(4);
                    std::thread::sleep(Duration::from_micros(10 << k));
                }
            }
        }
    }
}
