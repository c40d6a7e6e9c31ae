//! Parse benchmark of one Alpaca `trade_updates` `fill` frame (a full order object, numbers as
//! strings, ~900 bytes) through the decoder the trade updates client uses
//! (`feeds::broker::stream::decode_update`: serde_json with borrowed fields, prices read exactly
//! from their text), against serde_json into a generic `Value` (a baseline that decodes nothing).
//!
//! Run: `cargo run --release -p ringtape-feeds --example broker_parse_bench`.
//! Each case runs 31 batches of 100,000 frames after a warm-up and reports ns per frame (a
//! batch's mean) at the batch min / median / max of on-CPU time of the thread (from
//! /proc/thread-self/schedstat, so time other processes held the core on a shared machine is left
//! out), then one batch timed frame by frame on the wall clock (hdrhistogram p50 / p99 / p99.9 /
//! max; includes ~20 ns of timer overhead, and preemptions in the tail).
#![allow(missing_docs)] // an example binary
#![allow(clippy::disallowed_methods)] // a benchmark measures wall time with Instant::now

use feeds::broker::TradeEvent;
use feeds::broker::stream::decode_update;
use hdrhistogram::Histogram;
use std::hint::black_box;
use std::time::Instant;

const FILL: &str = r#"{"stream":"trade_updates","data":{"event":"fill","execution_id":"6b3b4a2e-8d4f-4c1e-9a77-1f0c2d3e4f50","timestamp":"2024-03-01T14:31:02.123456789Z","price":"189.12","qty":"60","position_qty":"100","order":{"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","client_order_id":"rt-1a2b-000042","created_at":"2024-03-01T14:31:00.100000Z","updated_at":"2024-03-01T14:31:02.123456789Z","submitted_at":"2024-03-01T14:31:00.100000Z","filled_at":"2024-03-01T14:31:02.123456789Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"b0b6dd9d-8b9b-48a9-ba46-b9d54906e415","symbol":"AAPL","asset_class":"us_equity","notional":null,"qty":"100","filled_qty":"100","filled_avg_price":"189.116","order_class":"","order_type":"limit","type":"limit","side":"buy","time_in_force":"day","limit_price":"189.12","stop_price":null,"status":"filled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null}}}"#;

const BATCH: usize = 100_000;
const BATCHES: usize = 31;

fn bench(name: &str, mut f: impl FnMut(&[u8], i64) -> u64) {
    let frame = FILL.as_bytes();
    let mut sink = 0u64;
    for i in 0..BATCH {
        sink = sink.wrapping_add(f(frame, i as i64));
    }
    let mut means = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let t = cpu_ns();
        for i in 0..BATCH {
            sink = sink.wrapping_add(f(black_box(frame), i as i64));
        }
        means.push((cpu_ns() - t) as f64 / BATCH as f64);
    }
    means.sort_by(f64::total_cmp);
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..BATCH {
        let t = Instant::now();
        sink = sink.wrapping_add(f(black_box(frame), i as i64));
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    println!(
        "{name:<30} on-CPU {:>5.0} {:>5.0} {:>5.0} ns/frame (min/median/max of {BATCHES} batches) | wall per frame p50 {} p99 {} p99.9 {} max {} ns",
        means[0],
        means[BATCHES / 2],
        means[BATCHES - 1],
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    black_box(sink);
}

/// This thread's time on a CPU so far, ns (`/proc/thread-self/schedstat`, first field).
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn main() {
    let u = decode_update(FILL.as_bytes(), 0).expect("valid").expect("an update");
    assert_eq!(
        (u.event, u.price_e9, u.order.filled_avg_px_e9),
        (TradeEvent::Fill, Some(189_120_000_000), Some(189_116_000_000))
    );
    println!("trade_updates fill frame, {} bytes", FILL.len());
    bench("broker decode_update (exact)", |frame, recv_ns| {
        let u = decode_update(frame, recv_ns).ok().flatten().expect("update");
        u.price_e9.unwrap_or(0) as u64 ^ u.order.qty as u64
    });
    bench("serde_json::Value (baseline)", |frame, _| {
        let v: serde_json::Value = serde_json::from_slice(frame).expect("json");
        v.as_object().map_or(0, |o| o.len() as u64)
    });
}
