//! A feed thread that replays bars into the engine's ingress ([`spawn_replay_into`]).

use super::*;

/// What a replay feed thread is told: speed, clock, stop flag, and where it counts.
#[derive(Clone)]
pub struct ReplayThread {
    /// Pacing.
    pub speed: Speed,
    /// Receive-time stamps when paced.
    pub stamp: Stamp,
    /// The wall clock (only read when paced).
    pub clock: SharedClock,
    /// Set to stop the feed (checked between bars and while waiting for a bar's time).
    pub stop: Arc<AtomicBool>,
    /// Bars pushed so far (for status displays; the final count is in [`ReplayEnd`]).
    pub pushed: Arc<AtomicU64>,
}

impl std::fmt::Debug for ReplayThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayThread")
            .field("speed", &self.speed)
            .field("stamp", &self.stamp)
            .field("stop", &self.stop)
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl ReplayThread {
    /// A feed at `speed` on `clock` stamping wall-clock receive times, with a fresh stop flag and
    /// counter.
    pub fn new(speed: Speed, clock: SharedClock) -> Self {
        ReplayThread { speed, stamp: Stamp::Wall, clock, stop: Arc::default(), pushed: Arc::default() }
    }
}

/// Why a replay feed thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Every bar was pushed.
    Done,
    /// The stop flag was set.
    Stopped,
    /// The ingress refused a bar: the run ended (the sequencer closed it) while it was full.
    IngressClosed,
}

/// What a replay feed thread did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEnd {
    /// Bars pushed into the ingress.
    pub pushed: u64,
    /// Why it ended.
    pub reason: EndReason,
}

/// Start the feed thread [`THREAD_NAME`]: it replays `bars` (in time order) at `feed.speed` and
/// pushes each bar into `ingress`, waiting when the ingress is full ([`Ingress::push`]:
/// backpressure, nothing dropped). It ends when the bars end, when `feed.stop` is set, or when the
/// run has ended and the ingress refuses a bar.
///
/// A push blocked on a full ingress returns when the sequencer takes an event or when the run
/// ends (a stop request to the run closes the ingress): give the run and the feed the same stop
/// flag.
pub fn spawn_replay_into<B>(ingress: Ingress, bars: B, feed: ReplayThread) -> std::io::Result<JoinHandle<ReplayEnd>>
where
    B: IntoIterator + Send + 'static,
    B::Item: Into<ReplayBar>,
{
    std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
        let clock: WallClock<'_> = &*feed.clock;
        let mut src = PacedReplay::new(bars, feed.speed, clock).stamp(feed.stamp);
        let mut waiter = Waiter::new(Wait::Backoff);
        let mut pushed = 0u64;
        let reason = loop {
            if feed.stop.load(Ordering::Relaxed) {
                break EndReason::Stopped;
            }
            match src.poll() {
                Next::Event(ev) => {
                    waiter.reset();
                    if ingress.push(ev).is_err() {
                        break EndReason::IngressClosed;
                    }
                    pushed += 1;
                    feed.pushed.store(pushed, Ordering::Relaxed);
                }
                Next::Idle => waiter.wait(),
                // A replay never yields bar references.
                Next::End | Next::BarRef { .. } => break EndReason::Done,
            }
        };
        ReplayEnd { pushed, reason }
    })
}
