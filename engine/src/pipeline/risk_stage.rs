//! The risk stage: consumes the main ring in sequence order, waits until the shard that owns an
//! event's symbol has handled it, then decides that shard's intents and applies its reports.
//!
//! Queue full: risk never drops; when its queue to execution (or to a shard) is full it counts the
//! event and waits.

use super::config::JournalInputs;
use super::messages::{Flow, FlowBody, RiskMsg, ShardMsg, ToRisk, ToShard};
use super::wait::Waiter;
use super::{Counters, push_wait};
use crate::records::{ControlKind, Event, EventKind, ExecReport, Reason};
use crate::risk::Risk;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

/// No message held aside.
pub(crate) const NONE: u64 = u64::MAX;

pub(crate) struct RiskStage<'a> {
    pub risk: Risk,
    pub n_shards: usize,
    pub portfolio: bool,
    pub inputs: JournalInputs,
    pub from_shards: &'a [ArrayQueue<RiskMsg>],
    pub to_shards: &'a [ArrayQueue<ShardMsg>],
    pub progress: &'a [CachePadded<AtomicU64>],
    pub pushed: &'a [CachePadded<AtomicU64>],
    pub done: &'a CachePadded<AtomicU64>,
    pub to_exec: &'a ArrayQueue<Flow>,
    pub counters: &'a Counters,
    pub waiter: Waiter,
    pub seen: Vec<u64>,
    /// Messages each shard had pushed when its progress was last read, and how many we popped:
    /// while `popped == avail` there is nothing to pop for the events below `seen`.
    pub avail: Vec<u64>,
    pub popped: Vec<u64>,
    pub look: Vec<Option<RiskMsg>>,
    pub look_seq: Vec<u64>,
    pub notices: Vec<Vec<ExecReport>>,
    pub own: Vec<ExecReport>,
    pub end: Vec<RiskMsg>,
}

impl RiskStage<'_> {
    #[inline]
    fn flow(&self, seq: u64, body: FlowBody) {
        push_wait(self.to_exec, Flow { seq, body }, &self.counters.full_to_exec, self.done, seq);
    }

    /// Handle one event; returns true after shutdown.
    #[inline]
    pub fn handle(&mut self, seq: u64, ev: &Event) -> bool {
        let kind = ev.event_kind();
        let journal_input = self.inputs == JournalInputs::All || matches!(kind, Some(EventKind::Exec));
        if journal_input {
            self.flow(seq, FlowBody::Input(*ev));
        }
        match kind {
            Some(EventKind::Bar) => {
                let bar = ev.as_bar().expect("bar");
                self.on_bar(seq, ev.symbol, bar);
            }
            Some(EventKind::Quote | EventKind::Trade) => self.consume(seq, self.owner(ev)),
            Some(EventKind::Exec) => {
                if let Some(r) = ev.as_exec() {
                    self.risk.on_report(r);
                }
                self.consume(seq, self.owner(ev));
            }
            Some(EventKind::Control) => {
                let c = ev.as_control().expect("control");
                match ControlKind::from_raw(c.kind) {
                    Some(ControlKind::EndOfData) => {
                        if self.inputs != JournalInputs::All {
                            self.flow(seq, FlowBody::Input(*ev));
                        }
                        let mut own = std::mem::take(&mut self.own);
                        own.clear();
                        self.risk.cancel_own(c.ts_event_ns, &mut |r| own.push(r));
                        for r in own.drain(..) {
                            self.own_report(seq, r);
                        }
                        self.own = own;
                        for s in 0..self.notices.len() {
                            self.flush_notices(seq, s);
                        }
                    }
                    Some(ControlKind::Shutdown) => {
                        self.shutdown(seq);
                        if self.inputs != JournalInputs::All {
                            self.flow(seq, FlowBody::Input(*ev));
                        }
                        return true;
                    }
                    _ => {
                        if self.inputs != JournalInputs::All {
                            self.flow(seq, FlowBody::Input(*ev));
                        }
                    }
                }
            }
            Some(EventKind::BarRefs) | None => {}
        }
        false
    }

    /// A bar by reference (zero-copy replay): journal it in `inputs = "all"` mode, then as any bar.
    #[inline]
    pub fn handle_bar_ref(
        &mut self,
        seq: u64,
        symbol: crate::records::SymbolId,
        bar: &crate::records::Bar,
        interval_s: u32,
        ts_recv: i64,
    ) {
        if self.inputs == JournalInputs::All {
            self.flow(seq, FlowBody::Input(Event::bar(symbol, bar, interval_s, ts_recv)));
        }
        self.on_bar(seq, symbol, bar);
    }

    #[inline]
    fn on_bar(&mut self, seq: u64, s: crate::records::SymbolId, bar: &crate::records::Bar) {
        if !self.risk.has_own_orders(s) {
            self.risk.on_bar(s, bar, &mut |_| {});
        } else if (s.0 as usize) < self.notices.len() {
            let mut own = std::mem::take(&mut self.own);
            own.clear();
            self.risk.on_bar(s, bar, &mut |r| own.push(r));
            for r in own.drain(..) {
                self.own_report(seq, r);
            }
            self.own = own;
        }
        self.consume(seq, s.0 as usize % self.n_shards);
    }

    #[inline]
    fn owner(&self, ev: &Event) -> usize {
        ev.symbol.0 as usize % self.n_shards
    }

    fn own_report(&mut self, seq: u64, r: ExecReport) {
        self.risk.on_report(&r);
        self.notices[r.symbol.0 as usize].push(r);
        self.flow(seq, FlowBody::Report(r));
    }

    fn flush_notices(&mut self, seq: u64, s: usize) {
        if self.notices[s].is_empty() {
            return;
        }
        let k = s % self.n_shards;
        for r in std::mem::take(&mut self.notices[s]) {
            let m = ShardMsg { seq, body: ToShard::Notice(r) };
            push_wait(&self.to_shards[k], m, &self.counters.full_risk_to_shard, self.done, seq);
        }
    }

    /// Wait until shard `k` has handled `seq` (events below `progress` are done).
    #[inline]
    fn wait_shard(&mut self, k: usize, seq: u64) {
        if self.seen[k] > seq {
            return;
        }
        self.seen[k] = self.progress[k].load(Ordering::Acquire);
        self.avail[k] = self.pushed[k].load(Ordering::Acquire);
        if self.seen[k] > seq {
            return;
        }
        self.done.store(seq, Ordering::Release);
        self.counters.risk_waits.fetch_add(1, Ordering::Relaxed);
        self.waiter.reset();
        loop {
            self.seen[k] = self.progress[k].load(Ordering::Acquire);
            self.avail[k] = self.pushed[k].load(Ordering::Acquire);
            if self.seen[k] > seq {
                return;
            }
            self.waiter.wait();
        }
    }

    /// The next message of shard `k` for event `seq`, if any. A message for a later event is
    /// kept aside (its seq in `look_seq`, so the common "nothing for this event" case is two
    /// integer compares).
    #[inline]
    fn next_msg(&mut self, k: usize, seq: u64) -> Option<RiskMsg> {
        let held = self.look_seq[k];
        if held != NONE {
            debug_assert!(held >= seq, "shard message from the past");
            if held != seq {
                return None;
            }
            self.look_seq[k] = NONE;
            return self.look[k];
        }
        if self.popped[k] >= self.avail[k] {
            return None;
        }
        let m = self.from_shards[k].pop()?;
        self.popped[k] += 1;
        debug_assert!(m.seq >= seq, "shard message from the past");
        if m.seq == seq {
            Some(m)
        } else {
            self.look[k] = Some(m);
            self.look_seq[k] = m.seq;
            None
        }
    }

    #[inline]
    fn consume(&mut self, seq: u64, k: usize) {
        self.wait_shard(k, seq);
        while let Some(m) = self.next_msg(k, seq) {
            self.process(k, m);
        }
    }

    fn process(&mut self, k: usize, m: RiskMsg) {
        match m.body {
            ToRisk::Intent { order, placed_ns, predicted } => {
                let reason = self.risk.check(&order, placed_ns).err().unwrap_or(Reason::None);
                if predicted != u16::MAX && predicted != reason.raw() {
                    self.counters.prediction_mismatch.fetch_add(1, Ordering::Relaxed);
                }
                if self.portfolio {
                    self.flush_notices(m.seq, order.symbol.0 as usize);
                    let d = ShardMsg { seq: m.seq, body: ToShard::Decision { order, placed_ns, reason } };
                    push_wait(&self.to_shards[k], d, &self.counters.full_risk_to_shard, self.done, m.seq);
                }
                self.flow(m.seq, FlowBody::Decision { order, reason, ts: placed_ns });
            }
            ToRisk::Cancel { id, symbol, ts } => self.flow(m.seq, FlowBody::Cancel { id, symbol, ts }),
            ToRisk::Report(r) => {
                self.risk.on_report(&r);
                self.flow(m.seq, FlowBody::Report(r));
            }
        }
    }

    /// Every shard reports its end-of-run cancels and liquidations at the shutdown sequence; they
    /// are applied in symbol order so the result does not depend on the shard count.
    fn shutdown(&mut self, seq: u64) {
        let mut end = std::mem::take(&mut self.end);
        end.clear();
        for k in 0..self.n_shards {
            self.wait_shard(k, seq);
            while let Some(m) = self.next_msg(k, seq) {
                end.push(m);
            }
        }
        end.sort_by_key(|m| match m.body {
            ToRisk::Intent { order, .. } => order.symbol,
            ToRisk::Cancel { symbol, .. } => symbol,
            ToRisk::Report(r) => r.symbol,
        });
        for m in end.drain(..) {
            let k = 0;
            self.process(k, m);
        }
        self.end = end;
        self.risk.finish();
        self.done.store(seq + 1, Ordering::Release);
    }
}
