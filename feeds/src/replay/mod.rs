//! Replay feeds: recorded bars (a bar-file set, or already-parsed CSV series) fed to the pipeline
//! at zero delay or paced against a wall clock (`--speed X`), either as a [`Source`] the sequencer
//! polls ([`PacedReplay`]) or from a feed thread that pushes into the sequencer's [`Ingress`]
//! ([`spawn_replay_into`]), as a live feed does.
//!
//! **Pacing.** A bar is released when the wall clock reaches
//! `start_wall + (bar_end - first_bar_end) / speed`, where `start_wall` is the clock's reading at
//! the first poll (or [`PacedReplay::start_at`]) and `bar_end = ts_event_ns + interval`. Speed 1 is
//! real time, 60 is a minute of data per second; [`Speed::Unpaced`] (`--speed 0` or `inf`) never
//! waits. Release times are computed in integer nanoseconds (the speed is a fixed-point decimal),
//! so they are exact.
//!
//! **Receive times.** Unpaced, an event's `ts_recv_ns` is the bar's end time, exactly as
//! [`engine::pipeline::BarReplay`] stamps it. Paced, it is by default the wall-clock reading at
//! release (what a live feed stamps, [`Stamp::Wall`]), never less than the previous stamp. Note that the simulated venue never
//! fills an order against a bar that starts before the order was placed (placement time is the
//! receive time of the event the strategy answered), so a paced replay whose wall clock runs
//! ahead of the data's own epoch (historical data replayed today) places every order "after"
//! every bar, and nothing ever fills. For a paced replay against the simulated venue, stamp the
//! bars' own end times instead ([`Stamp::BarEnd`]): the pacing is the same, the run trades exactly
//! as an unpaced one.
//!
//! **Waiting.** A [`Source`] never sleeps: it answers [`Next::Idle`] until a bar is due and the
//! sequencer backs off. The feed thread waits with the engine's backoff
//! ([`engine::pipeline::wait::Waiter`]: spin, yield, then sleeps of at most 160 us) and checks its
//! stop flag between polls.
//!
//! The clock is injected (`&dyn Fn() -> i64`, nanoseconds since the Unix epoch): tests drive a
//! fake one, the binary passes the system clock.

use engine::merge::{BarSet, Item};
use engine::pipeline::wait::{Wait, Waiter};
use engine::pipeline::{Ingress, Next, Source};
use engine::records::{Bar, Event, PX_SCALE, SymbolId, parse_px};
use engine::symbols::{SymbolError, SymbolTable};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

mod series;
mod thread;

pub use series::{Series, SeriesError, SeriesSet, SetBars};
pub use thread::{EndReason, ReplayEnd, ReplayThread, spawn_replay_into};

/// The wall clock a paced replay reads: nanoseconds since the Unix epoch.
pub type WallClock<'c> = &'c (dyn Fn() -> i64 + Sync);

/// A wall clock a feed thread can own.
pub type SharedClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What a paced replay writes into an event's `ts_recv_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stamp {
    /// The wall-clock reading at release, as a live feed stamps (never less than the previous one).
    #[default]
    Wall,
    /// The bar's end time, as an unpaced replay stamps: pacing only decides when a bar is released.
    /// Use it when the data's epoch is not the wall clock's (historical data replayed today) and
    /// the venue compares order times with bar times (the simulated venue).
    BarEnd,
}

/// The name of the feed thread [`spawn_replay_into`] starts.
pub const THREAD_NAME: &str = "rt-feed-replay";

// -------------------------------------------------------------------------------------------------
// Speed

/// How fast a replay runs against the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// No pacing: every bar as fast as the consumer takes it (`--speed 0`, `inf`, `max`).
    Unpaced,
    /// `speed_e9 / 1e9` seconds of data per second of wall time (fixed point, always > 0).
    Paced {
        /// The speed in 1e-9 units (1.0 is `1_000_000_000`).
        speed_e9: i64,
    },
}

/// A `--speed` value that is not a speed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedError(String);

impl std::fmt::Display for SpeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--speed {:?}: not a speed (use a positive number such as 1 for real time or 60 for a minute per \
             second; 0 or inf for no pacing)",
            self.0
        )
    }
}

impl std::error::Error for SpeedError {}

impl Speed {
    /// Real time: one second of data per wall-clock second.
    pub const REAL_TIME: Speed = Speed::Paced { speed_e9: PX_SCALE };

    /// `n` seconds of data per wall-clock second (`times(0)` is [`Speed::Unpaced`]).
    pub fn times(n: u32) -> Speed {
        if n == 0 { Speed::Unpaced } else { Speed::Paced { speed_e9: i64::from(n) * PX_SCALE } }
    }

    /// True unless this is [`Speed::Unpaced`].
    pub fn is_paced(self) -> bool {
        matches!(self, Speed::Paced { .. })
    }

    /// Wall-clock nanoseconds that `data_ns` of data take at this speed (0 when unpaced; exact,
    /// rounded down).
    pub fn wall_ns(self, data_ns: i64) -> i64 {
        match self {
            Speed::Unpaced => 0,
            Speed::Paced { speed_e9 } => {
                let w = i128::from(data_ns) * i128::from(PX_SCALE) / i128::from(speed_e9.max(1));
                i64::try_from(w).unwrap_or(if w < 0 { i64::MIN } else { i64::MAX })
            }
        }
    }
}

impl std::str::FromStr for Speed {
    type Err = SpeedError;

    /// `1`, `60`, `0.5`, `2.25` (exact decimals); `0`, `inf`, `infinity`, `max` mean no pacing.
    fn from_str(s: &str) -> Result<Speed, SpeedError> {
        let t = s.trim();
        if ["inf", "infinity", "max"].iter().any(|w| t.eq_ignore_ascii_case(w)) {
            return Ok(Speed::Unpaced);
        }
        match parse_px(t) {
            Some(0) => Ok(Speed::Unpaced),
            Some(v) if v > 0 => Ok(Speed::Paced { speed_e9: v }),
            _ => Err(SpeedError(s.to_string())),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Unpaced => f.write_str("unpaced"),
            Speed::Paced { speed_e9 } => write!(f, "{}x", engine::records::fmt_px(*speed_e9, 0)),
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Bars to replay

/// One bar to replay: its symbol, interval and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBar {
    /// Symbol id in the replay's symbol table.
    pub symbol: SymbolId,
    /// Bar length in seconds.
    pub interval_s: u32,
    /// The bar (`ts_event_ns` is its start).
    pub bar: Bar,
}

impl ReplayBar {
    /// The bar's end time, ns (its receive time in an unpaced replay).
    #[inline]
    pub fn end_ns(&self) -> i64 {
        self.bar.ts_event_ns.saturating_add(i64::from(self.interval_s) * 1_000_000_000)
    }

    /// The bar as a ring event received at `ts_recv_ns`.
    #[inline]
    pub fn event(&self, ts_recv_ns: i64) -> Event {
        Event::bar(self.symbol, &self.bar, self.interval_s, ts_recv_ns)
    }
}

impl From<Item<'_>> for ReplayBar {
    #[inline]
    fn from(it: Item<'_>) -> Self {
        ReplayBar { symbol: it.symbol, interval_s: it.interval_s, bar: *it.bar }
    }
}

fn no_clock() -> i64 {
    0
}

/// A [`Source`] replaying bars (from [`BarSet::merged`], [`SetBars`] or a [`SeriesSet`]) at zero
/// delay or paced against a wall clock. Never sleeps: answers [`Next::Idle`] until a bar is due.
///
/// ```
/// use engine::pipeline::{Next, Source};
/// use engine::records::Bar;
/// use feeds::replay::{PacedReplay, Series, SeriesSet, Speed};
/// use std::sync::atomic::{AtomicI64, Ordering};
///
/// let bar = |min: i64| Bar { ts_event_ns: min * 60_000_000_000, open_px_e9: 1, high_px_e9: 1,
///     low_px_e9: 1, close_px_e9: 1, volume: 0 };
/// let set = SeriesSet::new(vec![Series { symbol: "T".into(), interval_s: 60,
///     bars: vec![bar(0), bar(1)] }]).unwrap();
/// let now = AtomicI64::new(5_000_000_000); // a fake wall clock, 5 s after the epoch
/// let clock = || now.load(Ordering::Relaxed);
/// let mut src = PacedReplay::new(set.iter(), Speed::times(60), &clock);
/// assert!(matches!(src.next(), Next::Event(e) if e.ts_recv_ns == 5_000_000_000)); // at once
/// assert!(matches!(src.next(), Next::Idle)); // one minute of data = one second at 60x
/// now.store(6_000_000_000, Ordering::Relaxed);
/// assert!(matches!(src.next(), Next::Event(e) if e.ts_recv_ns == 6_000_000_000));
/// assert!(matches!(src.next(), Next::End));
/// ```
pub struct PacedReplay<'c, I> {
    bars: I,
    speed: Speed,
    clock: WallClock<'c>,
    stamp: Stamp,
    head: Option<ReplayBar>,
    start_wall: Option<i64>,
    first_end: Option<i64>,
    last_stamp: i64,
    released: u64,
    idle: u64,
}

impl<I> std::fmt::Debug for PacedReplay<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacedReplay")
            .field("speed", &self.speed)
            .field("stamp", &self.stamp)
            .field("start_wall", &self.start_wall)
            .field("first_end", &self.first_end)
            .field("released", &self.released)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<'c, I> PacedReplay<'c, I>
where
    I: Iterator,
    I::Item: Into<ReplayBar>,
{
    /// Replay `bars` (in time order) at `speed`, reading `clock` when paced.
    pub fn new(bars: impl IntoIterator<IntoIter = I>, speed: Speed, clock: WallClock<'c>) -> Self {
        PacedReplay {
            bars: bars.into_iter(),
            speed,
            clock,
            stamp: Stamp::Wall,
            head: None,
            start_wall: None,
            first_end: None,
            last_stamp: i64::MIN,
            released: 0,
            idle: 0,
        }
    }

    /// Replay `bars` at zero delay (the clock is never read): event for event what
    /// [`engine::pipeline::BarReplay::new`] yields.
    pub fn unpaced(bars: impl IntoIterator<IntoIter = I>) -> Self {
        Self::new(bars, Speed::Unpaced, &no_clock)
    }

    /// Stamp released bars with `stamp` (default [`Stamp::Wall`]; unpaced replays always stamp the
    /// bar's end).
    pub fn stamp(mut self, stamp: Stamp) -> Self {
        self.stamp = stamp;
        self
    }

    /// Release the first bar at wall time `wall_ns` instead of at the first poll.
    pub fn start_at(mut self, wall_ns: i64) -> Self {
        self.start_wall = Some(wall_ns);
        self
    }

    /// Bars released so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Polls answered with [`Next::Idle`] (waiting for a bar's time).
    pub fn idle_polls(&self) -> u64 {
        self.idle
    }

    /// The speed.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// When the bar held back by the last [`Next::Idle`] is due, wall-clock ns (`None` when no bar
    /// is waiting: unpaced, not yet polled, just released, or at the end).
    pub fn next_due(&self) -> Option<i64> {
        let head = self.head.as_ref()?;
        Some(self.due(self.start_wall?, self.first_end?, head))
    }

    fn due(&self, start: i64, first_end: i64, b: &ReplayBar) -> i64 {
        start.saturating_add(self.speed.wall_ns(b.end_ns().saturating_sub(first_end).max(0)))
    }

    /// The next bar as an event, or `Idle` while it is not due, or `End`.
    fn poll(&mut self) -> Next {
        let head = match self.head.take() {
            Some(h) => h,
            None => match self.bars.next() {
                Some(b) => b.into(),
                None => return Next::End,
            },
        };
        if !self.speed.is_paced() {
            self.released += 1;
            return Next::Event(head.event(head.end_ns()));
        }
        let now = (self.clock)();
        let start = *self.start_wall.get_or_insert(now);
        let first_end = *self.first_end.get_or_insert(head.end_ns());
        if now < self.due(start, first_end, &head) {
            self.head = Some(head);
            self.idle += 1;
            return Next::Idle;
        }
        self.released += 1;
        match self.stamp {
            Stamp::BarEnd => Next::Event(head.event(head.end_ns())),
            Stamp::Wall => {
                // A wall clock may step back (NTP); receive times never do.
                self.last_stamp = self.last_stamp.max(now);
                Next::Event(head.event(self.last_stamp))
            }
        }
    }
}

impl<I> Source for PacedReplay<'_, I>
where
    I: Iterator + Send,
    I::Item: Into<ReplayBar>,
{
    #[inline]
    fn next(&mut self) -> Next {
        self.poll()
    }
}

// -------------------------------------------------------------------------------------------------
// The feed thread

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    const S: i64 = 1_000_000_000;

    fn bar(start_s: i64) -> Bar {
        Bar { ts_event_ns: start_s * S, open_px_e9: 2, high_px_e9: 3, low_px_e9: 1, close_px_e9: 2, volume: 7 }
    }

    #[test]
    fn speeds_parse_exactly() {
        assert_eq!("1".parse::<Speed>().unwrap(), Speed::REAL_TIME);
        assert_eq!("60".parse::<Speed>().unwrap(), Speed::times(60));
        assert_eq!("0.5".parse::<Speed>().unwrap(), Speed::Paced { speed_e9: S / 2 });
        for s in ["0", "0.0", "inf", "Infinity", "max"] {
            assert_eq!(s.parse::<Speed>().unwrap(), Speed::Unpaced, "{s}");
        }
        for s in ["", "-1", "fast", "1e3", "NaN"] {
            let e = s.parse::<Speed>().unwrap_err().to_string();
            assert!(e.contains("not a speed"), "{e}");
        }
        assert_eq!(Speed::times(60).to_string(), "60x");
        assert_eq!(Speed::times(7).wall_ns(60 * S), 8_571_428_571);
        assert_eq!(Speed::Unpaced.wall_ns(60 * S), 0);
    }

    #[test]
    fn series_are_checked_and_merged_in_bar_set_order() {
        let s = |sym: &str, iv: u32, starts: &[i64]| Series {
            symbol: sym.into(),
            interval_s: iv,
            bars: starts.iter().map(|&t| bar(t)).collect(),
        };
        // B is given first, but ids come from names; a 1 s bar ending at 60 comes before the
        // 1 min bar ending at 60 (interval breaks the tie, as in a bar set).
        let set = SeriesSet::new(vec![s("B", 60, &[0, 60]), s("A", 60, &[0]), s("A", 1, &[59])]).unwrap();
        assert_eq!(set.symbols().names(), &["A".to_string(), "B".to_string()]);
        let got: Vec<(u32, u32, i64)> = set.iter().map(|b| (b.symbol.0, b.interval_s, b.end_ns() / S)).collect();
        assert_eq!(got, vec![(0, 1, 60), (0, 60, 60), (1, 60, 60), (1, 60, 120)]);
        let e = SeriesSet::new(vec![s("A", 60, &[0, 60, 60])]).unwrap_err().to_string();
        assert!(e.contains("bar 2 does not start after bar 1"), "{e}");
        let e = SeriesSet::new(vec![s("A", 60, &[0]), s("A", 60, &[60])]).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        assert!(SeriesSet::new(vec![s("bad name", 60, &[0])]).is_err());
        assert!(SeriesSet::new(vec![s("A", 0, &[0])]).is_err());
    }

    #[test]
    fn a_paced_replay_waits_for_each_bar_and_stamps_the_wall_clock() {
        let set =
            SeriesSet::new(vec![Series { symbol: "T".into(), interval_s: 60, bars: vec![bar(0), bar(60)] }]).unwrap();
        let now = AtomicI64::new(1_000 * S);
        let clock = || now.load(Ordering::Relaxed);
        let mut r = PacedReplay::new(set.iter(), Speed::REAL_TIME, &clock);
        assert_eq!(r.next_due(), None);
        assert!(matches!(r.next(), Next::Event(e) if e.ts_recv_ns == 1_000 * S));
        // The second bar is due 60 s of wall time after the first poll (speed 1).
        assert!(matches!(r.next(), Next::Idle));
        assert_eq!(r.next_due(), Some(1_060 * S));
        now.store(1_060 * S + 5, Ordering::Relaxed);
        assert!(matches!(r.next(), Next::Event(e) if e.ts_recv_ns == 1_060 * S + 5));
        assert!(matches!(r.next(), Next::End));
        assert_eq!((r.released(), r.idle_polls()), (2, 1));
    }
}
