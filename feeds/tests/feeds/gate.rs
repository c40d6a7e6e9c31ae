//! Strict ordering and dedupe of bars: the gate on its own and behind the decoders.

use super::*;

pub(super) fn bar_at(w: i64, close: i64) -> Bar {
    Bar { ts_event_ns: T1431 + w * MIN, open_px_e9: 10, high_px_e9: 100, low_px_e9: 1, close_px_e9: close, volume: 1 }
}

const GRACE: i64 = 2_000_000_000;

#[test]
fn gate_replaces_dedupes_orders_and_reports_late() {
    let cfg = GateConfig { grace_ns: GRACE, release_on_later: false };
    let mut g = BarGate::new(AAPL, Interval::M1, cfg);
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    let end0 = T1431 + MIN; // window 0 ends
    assert_eq!(g.offer(&bar_at(0, 50), end0 + 10, &mut c, &mut out), Offer::New);
    assert_eq!(g.offer(&bar_at(0, 50), end0 + 20, &mut c, &mut out), Offer::Duplicate);
    assert_eq!(g.offer(&bar_at(0, 55), end0 + 30, &mut c, &mut out), Offer::Updated);
    assert!(out.is_empty(), "window 0 is still within its grace");
    g.flush(end0 + GRACE - 1, &mut c, &mut out);
    assert!(out.is_empty());
    g.flush(end0 + GRACE, &mut c, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].bar.close_px_e9, out[0].ts_recv_ns, out[0].ts_release_ns), (55, end0 + 30, end0 + GRACE));
    assert_eq!(out[0].event().as_bar(), Some(&bar_at(0, 55)));
    assert_eq!(out[0].event().interval_s, 60);
    // After release: identical = duplicate, different = late; never re-released.
    assert_eq!(g.offer(&bar_at(0, 55), end0 + GRACE + 1, &mut c, &mut out), Offer::Duplicate);
    assert_eq!(g.offer(&bar_at(0, 56), end0 + GRACE + 2, &mut c, &mut out), Offer::Late { released_through_ns: T1431 });
    assert_eq!(
        g.offer(&bar_at(-3, 56), end0 + GRACE + 3, &mut c, &mut out),
        Offer::Late { released_through_ns: T1431 }
    );
    // Window 3 arrives well after its own grace: released at once, a gap of two windows.
    assert_eq!(g.offer(&bar_at(3, 60), T1431 + 10 * MIN, &mut c, &mut out), Offer::New);
    assert_eq!(out.len(), 2);
    assert_eq!((c.gaps_seen, c.windows_missing), (1, 2));
    assert_eq!((c.new_windows, c.updated, c.duplicates, c.late, c.released), (2, 1, 2, 2, 2));
    assert_eq!(g.released_through_ns(), Some(T1431 + 3 * MIN));
}

#[test]
fn gate_release_on_later_window() {
    let cfg = GateConfig { grace_ns: i64::MAX / 4, release_on_later: true };
    let mut g = BarGate::new(AAPL, Interval::M1, cfg);
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    g.offer(&bar_at(0, 50), RECV, &mut c, &mut out);
    g.offer(&bar_at(1, 51), RECV, &mut c, &mut out);
    assert_eq!(out.iter().map(|r| r.bar.close_px_e9).collect::<Vec<_>>(), [50]);
    g.offer(&bar_at(1, 52), RECV, &mut c, &mut out);
    assert_eq!(out.len(), 1, "an update of the pending window does not release it");
    assert_eq!(g.offer(&bar_at(0, 49), RECV, &mut c, &mut out), Offer::Late { released_through_ns: T1431 });
    g.drain(RECV, &mut c, &mut out);
    assert_eq!(out.iter().map(|r| r.bar.close_px_e9).collect::<Vec<_>>(), [50, 52]);
    assert_eq!(g.pending(), 0);
}

#[test]
fn gates_flush_in_time_then_symbol_order() {
    let mut gates = BarGates::new(GateConfig::default());
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    let upd = |symbol, w, interval| feeds::BarUpdate {
        symbol,
        interval,
        kind: BarKind::Closed,
        bar: bar_at(w, 50),
        ts_recv_ns: T1431 + 500_000_000,
    };
    gates.offer(&upd(MSFT, 1, Interval::M1), &mut c, &mut out);
    gates.offer(&upd(AAPL, 1, Interval::M1), &mut c, &mut out);
    gates.offer(&upd(MSFT, 0, Interval::M1), &mut c, &mut out);
    gates.offer(&upd(AAPL, 0, Interval::S1), &mut c, &mut out);
    assert!(out.is_empty());
    assert_eq!(gates.pending(), 4);
    assert_eq!(gates.gate(MSFT, Interval::M1).map(BarGate::pending), Some(2));
    gates.flush(T1431 + 10 * MIN, &mut c, &mut out);
    let got: Vec<_> = out.iter().map(|r| (r.bar.ts_event_ns, r.symbol, r.interval.secs)).collect();
    assert_eq!(got, [(T1431, AAPL, 1), (T1431, MSFT, 60), (T1431 + MIN, AAPL, 60), (T1431 + MIN, MSFT, 60)]);
    gates.offer(&upd(AAPL, 5, Interval::M1), &mut c, &mut out);
    assert_eq!(gates.remove_symbol(AAPL), 1);
    assert!(gates.gate(AAPL, Interval::M1).is_none() && gates.gate(MSFT, Interval::M1).is_some());
}

/// The full path: a frame with a bar, its duplicate and its update, then a later window.
#[test]
fn decode_then_gate_releases_each_window_once() {
    let (mut c, mut msgs, mut rel) = (FeedCounters::default(), Vec::new(), Vec::new());
    let mut gates = BarGates::new(GateConfig { grace_ns: GRACE, release_on_later: false });
    let s = symbols();
    let u = BAR.replace(r#""T":"b""#, r#""T":"u""#).replace("189.12", "189.15");
    let next = BAR.replace("14:31:00Z", "14:32:00Z");
    alpaca::decode_stream(format!("[{BAR},{BAR}]").as_bytes(), T1431 + MIN + 5, &s, &mut c, &mut msgs);
    alpaca::decode_stream(format!("[{u}]").as_bytes(), T1431 + MIN + 900_000_000, &s, &mut c, &mut msgs);
    alpaca::decode_stream(format!("[{next}]").as_bytes(), T1431 + 2 * MIN + 5, &s, &mut c, &mut msgs);
    for m in &msgs {
        if let FeedMsg::Bar(b) = m {
            gates.offer(b, &mut c, &mut rel);
        }
    }
    gates.drain(T1431 + 3 * MIN, &mut c, &mut rel);
    let got: Vec<_> = rel.iter().map(|r| (r.bar.ts_event_ns, r.bar.close_px_e9)).collect();
    assert_eq!(got, [(T1431, 189_150_000_000), (T1431 + MIN, 189_120_000_000)]);
    assert_eq!((c.bars, c.duplicates, c.updated, c.late, c.released), (4, 1, 1, 0, 2));
    assert_eq!(c.bars, c.new_windows + c.updated + c.duplicates + c.late);
}

/// History bars are final: released at once after every earlier pending window, replacing a
/// pending live version; a live bar for a window history released is a duplicate or late.
#[test]
fn offer_final_releases_history_at_once_and_live_bars_at_the_seam_are_never_released_twice() {
    let mut gates = BarGates::new(GateConfig { grace_ns: GRACE, release_on_later: false });
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    let now = T1431 + 10 * MIN;
    let live = |w, close, recv| feeds::BarUpdate {
        symbol: AAPL,
        interval: Interval::M1,
        kind: BarKind::Closed,
        bar: bar_at(w, close),
        ts_recv_ns: recv,
    };
    // A live window 0 is pending (inside its grace), and history brings windows 0..=2.
    assert_eq!(gates.offer(&live(0, 50, T1431 + MIN), &mut c, &mut out), Offer::New);
    assert!(out.is_empty());
    let fin = |gates: &mut BarGates, w, close, c: &mut FeedCounters, out: &mut Vec<_>| {
        gates.offer_final(AAPL, Interval::M1, &bar_at(w, close), now, c, out)
    };
    assert_eq!(fin(&mut gates, 0, 51, &mut c, &mut out), Offer::Updated, "history replaces the live version");
    assert_eq!(fin(&mut gates, 1, 60, &mut c, &mut out), Offer::New);
    assert_eq!(fin(&mut gates, 2, 70, &mut c, &mut out), Offer::New);
    let got: Vec<_> = out.iter().map(|r| (r.bar.ts_event_ns, r.bar.close_px_e9, r.ts_recv_ns)).collect();
    assert_eq!(got, [(T1431, 51, now), (T1431 + MIN, 60, now), (T1431 + 2 * MIN, 70, now)]);
    // The live stream then re-sends window 2 (same bar: duplicate) and an older version of 1 (late).
    assert_eq!(gates.offer(&live(2, 70, now), &mut c, &mut out), Offer::Duplicate);
    assert_eq!(gates.offer(&live(1, 61, now), &mut c, &mut out), Offer::Late { released_through_ns: T1431 + 2 * MIN });
    assert_eq!(fin(&mut gates, 2, 70, &mut c, &mut out), Offer::Duplicate, "history again: nothing released");
    assert_eq!(out.len(), 3);
    assert_eq!((c.new_windows, c.updated, c.duplicates, c.late, c.released), (3, 1, 2, 1, 3), "{c:?}");
    assert_eq!(gates.pending(), 0);
}

/// A bar whose arrival makes other symbols' windows final releases those first, in window order,
/// even though their gates saw no bar.
#[test]
fn an_offer_past_the_due_time_releases_every_symbols_final_windows_in_order() {
    let mut gates = BarGates::new(GateConfig { grace_ns: GRACE, release_on_later: false });
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    let upd = |symbol, w, recv| feeds::BarUpdate {
        symbol,
        interval: Interval::M1,
        kind: BarKind::Closed,
        bar: bar_at(w, 50),
        ts_recv_ns: recv,
    };
    gates.offer(&upd(MSFT, 0, T1431 + MIN), &mut c, &mut out);
    gates.offer(&upd(AAPL, 0, T1431 + MIN), &mut c, &mut out);
    assert!(out.is_empty());
    // MSFT's next window arrives after window 0's grace: AAPL 0 leaves before MSFT 0.
    gates.offer(&upd(MSFT, 1, T1431 + 2 * MIN), &mut c, &mut out);
    let got: Vec<_> = out.iter().map(|r| (r.bar.ts_event_ns, r.symbol)).collect();
    assert_eq!(got, [(T1431, AAPL), (T1431, MSFT)]);
}
