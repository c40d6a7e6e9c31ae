//! Inputs: the [`Source`] trait, bar-file replay (copied or zero-copy), scripted event lists, and
//! how a consumer resolves what the ring carries into one [`Input`].

use crate::merge::{BarSet, Merged};
use crate::records::{Bar, Event, EventKind, MAX_BAR_REFS, SymbolId};

/// What a source has next.
#[derive(Debug, Clone, Copy)]
pub enum Next {
    /// An input event.
    Event(Event),
    /// A bar by reference into the run's bar set (zero-copy replay): stream and bar index as in
    /// [`crate::merge::Item`], and the bar's end time.
    BarRef {
        /// Stream index in [`crate::merge::BarSet::streams`].
        stream: u32,
        /// Bar index in the stream.
        index: u64,
        /// The bar's end time (its receive time in a replay).
        ts_recv_ns: i64,
    },
    /// Nothing right now (live sources); try again.
    Idle,
    /// No more input.
    End,
}

impl Next {
    /// The receive time of an input (`None` for `Idle`/`End`).
    pub fn ts(&self) -> Option<i64> {
        match self {
            Next::Event(e) => Some(e.ts_recv_ns),
            Next::BarRef { ts_recv_ns, .. } => Some(*ts_recv_ns),
            Next::Idle | Next::End => None,
        }
    }
}

/// An input source for the sequencer: bar files, a script of events, a live feed.
pub trait Source: Send {
    /// The next input. Time-ordered sources yield inputs in receive-time order.
    fn next(&mut self) -> Next;
    /// True when the source yields [`Next::BarRef`]s: the run then needs [`super::RunSpec::bars`].
    fn by_reference(&self) -> bool {
        false
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn next(&mut self) -> Next {
        (**self).next()
    }
    fn by_reference(&self) -> bool {
        (**self).by_reference()
    }
}

/// Replays a bar set at zero delay, in merge order. `ts_recv` is the bar's end time.
#[derive(Debug)]
pub struct BarReplay<'a> {
    merged: Merged<'a>,
    by_ref: bool,
}

impl<'a> BarReplay<'a> {
    /// Replay `merged`, copying each bar into its ring event.
    pub fn new(merged: Merged<'a>) -> Self {
        BarReplay { merged, by_ref: false }
    }

    /// Replay `merged` by reference: the ring carries up to six (stream, index) references per
    /// slot and every stage reads the bars in place in the mapped files. Pass the same bar set as
    /// [`super::RunSpec::bars`].
    pub fn zero_copy(merged: Merged<'a>) -> Self {
        BarReplay { merged, by_ref: true }
    }
}

impl Source for BarReplay<'_> {
    #[inline]
    fn next(&mut self) -> Next {
        match self.merged.next() {
            Some(it) => {
                let end = it.bar.ts_event_ns.saturating_add(i64::from(it.interval_s) * 1_000_000_000);
                if self.by_ref {
                    Next::BarRef { stream: it.stream, index: it.index, ts_recv_ns: end }
                } else {
                    Next::Event(Event::bar(it.symbol, it.bar, it.interval_s, end))
                }
            }
            None => Next::End,
        }
    }

    fn by_reference(&self) -> bool {
        self.by_ref
    }
}

/// A fixed list of events in time order: scripted control (universe changes, hotkeys in tests),
/// or inputs read back from a journal for replay.
#[derive(Debug, Clone, Default)]
pub struct Script {
    events: std::collections::VecDeque<Event>,
}

impl Script {
    /// Events to yield in this order (they should be sorted by `ts_recv_ns`).
    pub fn new(events: impl IntoIterator<Item = Event>) -> Self {
        Script { events: events.into_iter().collect() }
    }
}

impl Source for Script {
    fn next(&mut self) -> Next {
        self.events.pop_front().map_or(Next::End, Next::Event)
    }
}

/// The primary source of a live run: nothing of its own (live inputs come through the
/// [`super::Ingress`]) until `done` is set, then the end. Set `done` once every thread that
/// pushes into the ingress has finished: the sequencer drains the ingress before it ends, so
/// nothing pushed is lost.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    done: &'a std::sync::atomic::AtomicBool,
}

impl<'a> Live<'a> {
    /// Idle until `done` is set.
    pub fn until(done: &'a std::sync::atomic::AtomicBool) -> Self {
        Live { done }
    }
}

impl Source for Live<'_> {
    fn next(&mut self) -> Next {
        if self.done.load(std::sync::atomic::Ordering::Acquire) { Next::End } else { Next::Idle }
    }
}

/// A stream of bars as consumers resolve [`EventKind::BarRefs`] slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamRef<'a> {
    pub symbol: SymbolId,
    pub interval_s: u32,
    pub interval_ns: i64,
    pub bars: &'a [Bar],
}

/// Most streams a zero-copy replay can address (16 bits of the reference).
pub(crate) const MAX_STREAMS: usize = 1 << 16;

/// The streams of a bar set, for resolving references.
pub(crate) fn stream_refs(set: &BarSet) -> Vec<StreamRef<'_>> {
    set.streams()
        .iter()
        .map(|st| StreamRef {
            symbol: st.symbol,
            interval_s: st.file.header().interval_s,
            interval_ns: i64::from(st.file.header().interval_s) * 1_000_000_000,
            bars: st.file.bars(),
        })
        .collect()
}

/// One logical input as every stage sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// A bar (in place in a mapped file, or in an event's payload).
    Bar { symbol: SymbolId, bar: &'a Bar, interval_s: u32, ts_recv: i64 },
    /// Any other event.
    Event(&'a Event),
}

impl<'a> Input<'a> {
    /// Resolve an event that is not a `BarRefs` slot.
    #[inline]
    pub fn of(ev: &'a Event) -> Self {
        match ev.as_bar() {
            Some(bar) => {
                Input::Bar { symbol: ev.symbol, bar, interval_s: u32::from(ev.interval_s), ts_recv: ev.ts_recv_ns }
            }
            None => Input::Event(ev),
        }
    }

    /// Resolve a bar reference.
    #[inline]
    pub fn of_ref(streams: &[StreamRef<'a>], r: u64) -> Option<Self> {
        let sr = streams.get((r >> 48) as usize)?;
        let bar = sr.bars.get((r & 0xffff_ffff_ffff) as usize)?;
        Some(Input::Bar {
            symbol: sr.symbol,
            bar,
            interval_s: sr.interval_s,
            ts_recv: bar.ts_event_ns + sr.interval_ns,
        })
    }

    /// A copy as a ring event (for journaling inputs).
    pub fn to_event(self) -> Event {
        match self {
            Input::Bar { symbol, bar, interval_s, ts_recv } => Event::bar(symbol, bar, interval_s, ts_recv),
            Input::Event(e) => *e,
        }
    }
}

/// Call `f` for every logical input in a ring slot starting at sequence `seq` (a `BarRefs` slot
/// holds several); returns how many there were. A reference that does not resolve is counted by
/// the caller through `bad`.
#[inline(always)]
pub(crate) fn expand<'a>(
    ev: &'a Event,
    seq: u64,
    streams: &[StreamRef<'a>],
    bad: &mut u64,
    mut f: impl FnMut(u64, Input<'a>),
) -> u64 {
    if ev.kind != EventKind::BarRefs as u8 {
        f(seq, Input::of(ev));
        return 1;
    }
    let n = usize::from(ev._pad).min(MAX_BAR_REFS);
    for (j, &r) in ev.payload[..n].iter().enumerate() {
        match Input::of_ref(streams, r) {
            Some(input) => f(seq + j as u64, input),
            None => *bad += 1,
        }
    }
    n as u64
}
