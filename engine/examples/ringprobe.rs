//! Probe: how fast can the main ring move replayed bars to pollers that do almost nothing?
//! `cargo run --release -p ringtape-engine --example ringprobe -- DIR [POLLERS: 1 or 2]`
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here
use disruptor::{BusySpin, Polling, Producer};
use engine::merge::BarSet;
use engine::pipeline::{BarReplay, Next, Source};
use engine::records::Event;
use std::time::Instant;

macro_rules! drive {
    ($set:expr, $producer:expr, $pollers:expr) => {{
        let set: &BarSet = $set;
        let mut producer = $producer;
        let pollers = $pollers;
        let total = set.total_bars();
        let n = pollers.len();
        let t = Instant::now();
        std::thread::scope(|s| {
            for mut poller in pollers {
                s.spawn(move || {
                    let (mut cnt, mut acc, mut idle) = (0u64, 0i64, 0u32);
                    while cnt < total {
                        match poller.take(256) {
                            Ok(mut g) => {
                                idle = 0;
                                for ev in &mut g {
                                    cnt += 1;
                                    acc = acc.wrapping_add(ev.payload[4] as i64);
                                }
                            }
                            Err(Polling::NoEvents) => {
                                idle += 1;
                                if idle > 100 {
                                    std::thread::yield_now();
                                }
                            }
                            Err(Polling::Shutdown) => break,
                        }
                    }
                    std::hint::black_box(acc);
                });
            }
            let mut src = BarReplay::new(set.merged());
            let mut buf = Vec::with_capacity(256);
            loop {
                buf.clear();
                while buf.len() < 256 {
                    match src.next() {
                        Next::Event(e) => buf.push(e),
                        _ => break,
                    }
                }
                if buf.is_empty() {
                    break;
                }
                while producer
                    .try_batch_publish(buf.len(), |it| {
                        for (slot, e) in it.zip(&buf) {
                            *slot = *e;
                        }
                    })
                    .is_err()
                {
                    std::thread::yield_now();
                }
            }
        });
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!("ring to {n} poller(s): {ms:.1} ms, {:.1} M events/s", total as f64 / ms / 1e3);
    }};
}

fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let n: usize = std::env::args().nth(2).map_or(2, |s| s.parse().expect("poller count"));
    let set = BarSet::open_dir(std::path::Path::new(&dir), 2).expect("bar dir");
    let t = Instant::now();
    let mut src = BarReplay::new(set.merged());
    let mut sum = 0i64;
    while let Next::Event(e) = src.next() {
        sum = sum.wrapping_add(e.ts_recv_ns);
    }
    println!("replay only: {:.1} ms ({sum})", t.elapsed().as_secs_f64() * 1e3);
    let builder = disruptor::build_single_producer(65536, Event::default, BusySpin);
    let (p1, builder) = builder.new_event_poller();
    if n == 1 {
        drive!(&set, builder.build(), vec![p1]);
    } else {
        let (p2, builder) = builder.new_event_poller();
        drive!(&set, builder.build(), vec![p1, p2]);
    }
}
