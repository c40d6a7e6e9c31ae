//! Hotkey to venue latency: from the moment the window's key handler has a key (keymap binding
//! -> [`viz::keymap::plan`] -> the manual-order event -> `Ingress::try_push`, exactly what
//! `live_window` does) to the order reaching the venue seam (`Venue::submit`), through the real
//! pipeline on its live topology (threads: sequencer, shard with risk and execution, recorder)
//! while it replays bars at full speed, and again with the pipeline idle. One key press per
//! millisecond, alternating buy and sell of one share; p50/p99/p99.9/max from hdrhistogram.
//!
//! Not included: X11 to minifb delivery of the key, which the window samples once per frame (at
//! most one frame, 16.7 ms at 60 fps, after the key went down).
//!
//! `cargo run --release -p ringtape-viz --example hotkey_latency [-- PRESSES]`
#![allow(clippy::disallowed_methods)] // a benchmark times itself

use crossbeam_queue::ArrayQueue;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{Ingress, Next, RunSpec, Source};
use engine::records::{Bar, Event, ExecReport, MANUAL_TAG, Order, OrderId, PX_SCALE, Reason, SymbolId};
use engine::strategy::{Ctx, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use engine::venue::{SimVenue, Venue};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use viz::keymap::{Keymap, Prices, plan};

/// The simulated venue, noting when each manual order arrives.
#[derive(Debug)]
struct Timed {
    inner: SimVenue,
    seen: Arc<ArrayQueue<Instant>>,
}

impl Venue for Timed {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn simulated(&self) -> bool {
        true
    }
    fn ensure_symbols(&mut self, n: usize) {
        self.inner.ensure_symbols(n);
    }
    fn submit(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        if order.tag == MANUAL_TAG {
            let _ = self.seen.push(Instant::now());
        }
        self.inner.submit(order, ts_ns, out);
    }
    fn cancel(&mut self, id: OrderId, symbol: SymbolId, ts_ns: i64, reason: Reason, out: &mut Vec<ExecReport>) {
        self.inner.cancel(id, symbol, ts_ns, reason, out);
    }
    fn replace(
        &mut self,
        id: OrderId,
        symbol: SymbolId,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
        out: &mut Vec<ExecReport>,
    ) {
        self.inner.replace(id, symbol, qty, limit_px_e9, stop_px_e9, ts_ns, out);
    }
    fn on_bar(&mut self, symbol: SymbolId, bar: &Bar, out: &mut Vec<ExecReport>) {
        self.inner.on_bar(symbol, bar, out);
    }
    fn on_timer(&mut self, ts_ns: i64, out: &mut Vec<ExecReport>) {
        self.inner.on_timer(ts_ns, out);
    }
    fn has_working(&self, symbol: SymbolId) -> bool {
        self.inner.has_working(symbol)
    }
    fn close_out(&mut self, order: &Order, ts_ns: i64, out: &mut Vec<ExecReport>) {
        self.inner.close_out(order, ts_ns, out);
    }
}

struct Idle;
impl Strategy for Idle {
    fn on_bar(&mut self, _: &mut Ctx<'_>, _: &Bar) {}
}
struct Nothing;
impl StrategyFactory for Nothing {
    fn name(&self) -> &str {
        "none"
    }
    fn build(&self, _: &str) -> Box<dyn Strategy> {
        Box::new(Idle)
    }
}

/// Bars for symbol 0 until `done` (full speed), or nothing until `done` (idle).
struct Bars<'a> {
    done: &'a AtomicBool,
    busy: bool,
    i: i64,
}

impl Source for Bars<'_> {
    fn next(&mut self) -> Next {
        if self.done.load(Ordering::Relaxed) {
            return Next::End;
        }
        if !self.busy {
            std::thread::sleep(Duration::from_micros(50));
            return Next::Idle;
        }
        self.i += 1;
        let px = (100 + self.i % 7) * PX_SCALE;
        let b = Bar {
            ts_event_ns: self.i * 60_000_000_000,
            open_px_e9: px,
            high_px_e9: px + PX_SCALE,
            low_px_e9: px - PX_SCALE,
            close_px_e9: px,
            volume: 100,
        };
        Next::Event(Event::bar(SymbolId(0), &b, 60, (self.i + 1) * 60_000_000_000))
    }
}

fn measure(presses: usize, busy: bool) -> hdrhistogram::Histogram<u64> {
    let mut cfg = EngineConfig::default();
    cfg.pipeline.topology = Topology::Threads;
    let mut symbols = SymbolTable::new();
    symbols.intern("SYM").unwrap();
    let seen = Arc::new(ArrayQueue::new(presses + 16));
    let venue = Timed { inner: SimVenue::new(&cfg.venue, 1), seen: seen.clone() };
    let ingress = Ingress::new(1024);
    let done = AtomicBool::new(false);
    let km = Keymap::parse(
        "[keys]\nF1 = { action = \"buy\", shares = 1 }\nF2 = { action = \"sell\", shares = 1 }\n",
        "bench",
    )
    .unwrap();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    std::thread::scope(|s| {
        let pressed = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200)); // the pipeline is up
            let mut times = Vec::with_capacity(presses);
            for k in 0..presses {
                let b = km.keys[if k % 2 == 0 { "F1" } else { "F2" }];
                let t = Instant::now();
                let p = plan(&b, SymbolId(0), Prices { last: 100 * PX_SCALE, ..Prices::default() }).unwrap();
                if ingress.try_push(p.event(0)).is_ok() {
                    times.push(t);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(100));
            done.store(true, Ordering::Relaxed);
            times
        });
        let spec = RunSpec::new(&cfg, &symbols, &Nothing).venue(Box::new(venue)).ingress(ingress.clone());
        engine::pipeline::run(spec, Bars { done: &done, busy, i: 0 }, &mut |_| {}).unwrap();
        let times = pressed.join().unwrap();
        let mut k = 0;
        while let Some(t1) = seen.pop() {
            if let Some(t0) = times.get(k) {
                hist.record(t1.duration_since(*t0).as_nanos() as u64).unwrap();
            }
            k += 1;
        }
        assert_eq!(k, times.len(), "every press reached the venue");
    });
    hist
}

fn main() {
    let presses: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    println!("hotkey -> venue seam latency, {presses} presses, threads topology (hdrhistogram, us)");
    for (busy, what) in [(false, "pipeline idle"), (true, "pipeline replaying bars at full speed")] {
        let h = measure(presses, busy);
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  {what:<40} n={:>5}  p50 {:>8.1}  p99 {:>8.1}  p99.9 {:>8.1}  max {:>8.1}",
            h.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            h.max() as f64 / 1000.0
        );
    }
}
