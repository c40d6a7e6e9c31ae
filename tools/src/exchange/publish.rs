//! The publisher: releases bars as market time passes each window's end, merging every symbol's
//! sorted bars on time (a heap of one cursor per symbol and interval), applies the bar-stream
//! faults, encodes each element once and hands the batch to every session.

use super::data::{MINUTE_NS, SECOND_NS};
use super::fault::{Fault, When};
use super::server::Shared;
use super::session::{Batch, Item, ItemKind};
use super::wire::{self, DayStats};
use engine::records::Bar;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One cursor: (window end, symbol, 0 = minute / 1 = second, index).
type Cursor = Reverse<(i64, u32, u8, u32)>;

struct Publisher<'a> {
    shared: &'a Shared,
    heap: BinaryHeap<Cursor>,
    minute_day: Vec<DayStats>,
    second_day: Vec<DayStats>,
    /// Bar-stream faults waiting for bars.
    waiting: Vec<Fault>,
    /// The window held back by an out-of-order fault.
    held: Vec<Item>,
    /// Scenario `every_min` faults: next market time each fires.
    every_next: Vec<i64>,
    at_done: Vec<bool>,
}

pub(crate) fn run(shared: &Shared) {
    let tape = &shared.tape;
    let start = shared.clock.market_start_ns;
    let mut p = Publisher {
        shared,
        heap: BinaryHeap::new(),
        minute_day: vec![DayStats::default(); tape.symbols.len()],
        second_day: vec![DayStats::default(); tape.symbols.len()],
        waiting: Vec::new(),
        held: Vec::new(),
        every_next: shared
            .scenario
            .faults
            .iter()
            .map(|(w, _)| match w {
                When::Every(n) => start + i64::from(*n) * MINUTE_NS,
                When::At(t) => *t,
            })
            .collect(),
        at_done: vec![false; shared.scenario.faults.len()],
    };
    for (i, s) in tape.symbols.iter().enumerate() {
        for (kind, bars, len, day) in
            [(0u8, &s.minute, MINUTE_NS, &mut p.minute_day[i]), (1, &s.second, SECOND_NS, &mut p.second_day[i])]
        {
            let first = bars.partition_point(|b| b.ts_event_ns + len <= start);
            // Seed today's running figures from the bars before the start.
            if let Some(b) = bars.get(first) {
                let today = b.ts_event_ns.div_euclid(1440 * MINUTE_NS);
                for h in bars[..first].iter().filter(|h| h.ts_event_ns.div_euclid(1440 * MINUTE_NS) == today) {
                    day.add(h);
                }
                p.heap.push(Reverse((b.ts_event_ns + len, i as u32, kind, first as u32)));
            }
        }
    }
    while !shared.stopping() {
        let now = shared.clock.now_ns();
        p.scenario(now);
        let mut batch = p.release(now);
        p.faults(&mut batch);
        if !batch.items.is_empty() || batch.malformed {
            shared.hub.broadcast(&Arc::new(batch));
        }
        let wait_ns = match p.heap.peek() {
            Some(Reverse((end, ..))) => shared.clock.wall_until(*end),
            None => 50_000_000,
        };
        std::thread::sleep(Duration::from_nanos(wait_ns.clamp(200_000, 20_000_000) as u64));
    }
}

impl Publisher<'_> {
    fn scenario(&mut self, now: i64) {
        for (i, (when, fault)) in self.shared.scenario.faults.iter().enumerate() {
            match when {
                When::At(_) if !self.at_done[i] && now >= self.every_next[i] => {
                    self.at_done[i] = true;
                    self.shared.inject(*fault);
                }
                When::Every(n) => {
                    while now >= self.every_next[i] {
                        self.every_next[i] += i64::from(*n) * MINUTE_NS;
                        self.shared.inject(*fault);
                    }
                }
                When::At(_) => {}
            }
        }
    }

    /// Every bar whose window has ended by `now`, in (end, symbol) order.
    fn release(&mut self, now: i64) -> Batch {
        let tape = &self.shared.tape;
        let mut batch = Batch::default();
        while let Some(&Reverse((end, sym, kind, idx))) = self.heap.peek() {
            if end > now {
                break;
            }
            self.heap.pop();
            let s = &tape.symbols[sym as usize];
            let (bars, len): (&[Bar], i64) = if kind == 0 { (&s.minute, MINUTE_NS) } else { (&s.second, SECOND_NS) };
            let b = bars[idx as usize];
            if let Some(n) = bars.get(idx as usize + 1) {
                self.heap.push(Reverse((n.ts_event_ns + len, sym, kind, idx + 1)));
            }
            self.shared.counters.bars_published.fetch_add(1, Ordering::Relaxed);
            let item = if kind == 0 {
                self.minute_day[sym as usize].add(&b);
                self.item(sym, &b, ItemKind::Bar)
            } else {
                self.second_day[sym as usize].add(&b);
                self.item(sym, &b, ItemKind::Second)
            };
            batch.items.push(item);
        }
        batch
    }

    fn item(&self, sym: u32, b: &Bar, kind: ItemKind) -> Item {
        let name = &self.shared.tape.symbols[sym as usize].name;
        let (len, day) = match kind {
            ItemKind::Second => (SECOND_NS, &self.second_day[sym as usize]),
            _ => (MINUTE_NS, &self.minute_day[sym as usize]),
        };
        let end_ns = b.ts_event_ns + len;
        let (mut alpaca, mut quote, mut polygon) = (String::new(), String::new(), String::new());
        match kind {
            ItemKind::Bar => {
                wire::alpaca_bar(&mut alpaca, "b", name, b);
                wire::alpaca_quote(&mut quote, name, b, end_ns);
                wire::polygon_agg(&mut polygon, "AM", name, b, len, day);
            }
            ItemKind::Updated => {
                wire::alpaca_bar(&mut alpaca, "u", name, b);
                wire::polygon_agg(&mut polygon, "AM", name, b, len, day);
            }
            ItemKind::Second => wire::polygon_agg(&mut polygon, "A", name, b, len, day),
        }
        Item { sym, end_ns, kind, alpaca, quote, polygon }
    }

    /// Apply the queued bar-stream faults to this batch (faults that need bars wait for some).
    fn faults(&mut self, batch: &mut Batch) {
        self.waiting.extend(self.shared.faults.take_publish());
        // A window held back by an out-of-order fault goes out after the next window.
        if !self.held.is_empty() && batch.items.iter().any(|i| i.kind == ItemKind::Bar) {
            let next_end = batch.items.iter().find(|i| i.kind == ItemKind::Bar).map_or(0, |i| i.end_ns);
            let at = batch.items.iter().rposition(|i| i.end_ns <= next_end).map_or(0, |p| p + 1);
            let held = std::mem::take(&mut self.held);
            batch.items.splice(at..at, held);
        }
        let mut keep = Vec::new();
        for f in std::mem::take(&mut self.waiting) {
            let first_bar = batch.items.iter().position(|i| i.kind == ItemKind::Bar);
            match (f, first_bar) {
                (Fault::MalformedFrame, _) => batch.malformed = true,
                (Fault::DuplicateBar, Some(p)) => {
                    let mut dup = batch.items[p].clone();
                    dup.quote.clear();
                    batch.items.insert(p + 1, dup);
                }
                (Fault::UpdatedBar, Some(p)) => {
                    let it = &batch.items[p];
                    let s = &self.shared.tape.symbols[it.sym as usize];
                    let idx = s.minute.partition_point(|b| b.ts_event_ns + MINUTE_NS < it.end_ns);
                    if let Some(orig) = s.minute.get(idx) {
                        let mut b = *orig;
                        b.close_px_e9 = if b.close_px_e9 != b.high_px_e9 { b.high_px_e9 } else { b.low_px_e9 };
                        b.volume += 100;
                        let u = self.item(it.sym, &b, ItemKind::Updated);
                        batch.items.insert(p + 1, u);
                    }
                }
                (Fault::OutOfOrder, Some(p)) => {
                    // Hold the first window back; it goes out right after the next one.
                    let end = batch.items[p].end_ns;
                    let (held, rest): (Vec<Item>, Vec<Item>) = std::mem::take(&mut batch.items)
                        .into_iter()
                        .partition(|i| i.kind == ItemKind::Bar && i.end_ns == end);
                    batch.items = rest;
                    let later = batch.items.iter().find(|i| i.kind == ItemKind::Bar).map(|i| i.end_ns);
                    match later {
                        Some(next_end) => {
                            let at = batch.items.iter().rposition(|i| i.end_ns <= next_end).map_or(0, |q| q + 1);
                            batch.items.splice(at..at, held);
                        }
                        None => self.held = held,
                    }
                }
                (f, _) => keep.push(f),
            }
        }
        self.waiting = keep;
    }
}
