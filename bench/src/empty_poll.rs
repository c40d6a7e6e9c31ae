//! `empty-poll`: what the sequencer pays to find its ingress empty.
//!
//! The sequencer polls the ingress (a `crossbeam_queue::ArrayQueue` of events with their push
//! stamp) before every input of a run that has one: `paper`, `backtest --view`. On an empty queue
//! `ArrayQueue::pop` issues a sequentially consistent fence before it reads the tail (an `mfence`
//! on x86), while `is_empty` is two plain loads. This measures, on one thread and the engine's
//! element type, ns per poll of an empty queue three ways, alternated in one run (median of
//! `--rounds`):
//! * `pop()` (the ingress before 2026-11-28);
//! * `is_empty()` then `pop()` (the ingress now; the pop runs only when something is there);
//! * `is_empty()` alone (the floor).
#![allow(clippy::disallowed_methods)] // timing is the measurement

use crossbeam::queue::ArrayQueue;
use engine::records::Event;
use std::hint::black_box;
use std::time::Instant;

/// Options of `ringtape-bench empty-poll`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Polls per measurement
    #[arg(long, default_value_t = 20_000_000)]
    pub polls: u64,
    /// Measurements of each variant (the median is reported)
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Small sizes for CI smoke runs (1 M polls, 3 rounds)
    #[arg(long)]
    pub quick: bool,
}

type Q = ArrayQueue<(Event, u64)>;
/// One way to poll.
type Poll = fn(&Q) -> Option<(Event, u64)>;

fn time(polls: u64, q: &Q, f: Poll) -> f64 {
    let t = Instant::now();
    let mut got = 0u64;
    for _ in 0..polls {
        got += u64::from(black_box(f(black_box(q))).is_some());
    }
    assert_eq!(got, 0, "the queue is empty");
    t.elapsed().as_nanos() as f64 / polls as f64
}

/// Run the benchmark.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (polls, rounds) = if args.quick { (1_000_000, 3) } else { (args.polls, args.rounds.max(1)) };
    let q: Q = ArrayQueue::new(65_536);
    let variants: [(&str, Poll); 3] = [
        ("pop()", |q| q.pop()),
        ("is_empty() then pop()", |q| if q.is_empty() { None } else { q.pop() }),
        ("is_empty() alone", |q| if q.is_empty() { None } else { Some((Event::default(), 0)) }),
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in variants.iter().enumerate() {
            ns[i].push(time(polls, &q, *f));
        }
    }
    println!("## Empty ingress poll: ns per poll (one thread, {polls} polls, median of {rounds})\n");
    println!("| variant | median ns | min ns | max ns |\n|---|--:|--:|--:|");
    for ((name, _), v) in variants.iter().zip(&mut ns) {
        v.sort_by(f64::total_cmp);
        println!("| {name} | {:.2} | {:.2} | {:.2} |", v[v.len() / 2], v[0], v[v.len() - 1]);
    }
    Ok(())
}
