//! The risk stage: sees every input in sequence order, keeps the portfolio, decides every order,
//! and drives execution (the order manager and its venue). For each event it works in two
//! phases: (A) market data and venue reports — the venue matches the event's bar or tick, risk
//! marks the position and may decide to flatten — then (B) the intents the owning shard produced
//! for that event, in order. Reports go back to the owning shard tagged with the event's sequence
//! (and whether phase A made them), and everything goes to the recorder.
//!
//! Queue full (threads topology): risk never drops; it counts and waits.

use super::execution::Execution;
use super::messages::{Flow, FlowBody, InputRec, RiskMsg, ShardMsg, ToRisk};
use super::probes::{Probe, Slot, Stage, metrics_clock_ns};
use super::source::Input;
use super::{Counters, shard_of};
use crate::records::{
    ControlKind, Event, EventKind, ExecKind, ExecReport, Lifecycle, Order, OrderId, Reason, ReconcilePolicy,
    RemovalPolicy, SymbolId, unpack_name,
};

/// The order an [`ControlKind::AdoptOrder`] event carries.
pub(crate) fn adopted_order(s: SymbolId, c: &crate::records::Control) -> Order {
    let a0 = c.args[0];
    Order {
        order_id: OrderId(c.args[3] as u64),
        symbol: s,
        qty: (a0 & 0xFFFF_FFFF) as u32,
        side: ((a0 >> 32) & 0xFF) as u8,
        order_type: ((a0 >> 40) & 0xFF) as u8,
        limit_px_e9: c.args[1],
        stop_px_e9: c.args[2],
        ..Default::default()
    }
}
use crate::risk::Risk;
use std::sync::atomic::Ordering;

/// How risk reaches the other stages: queues and progress counters between threads, or plain
/// buffers on the inline topology.
pub(crate) trait RiskLink {
    /// Send a report to shard `k`.
    fn to_shard(&mut self, k: usize, m: ShardMsg);
    /// The next message shard `k` produced for event `seq` (or earlier), once shard `k` has
    /// handled `seq`; `None` when there is no more.
    fn take_from_shard(&mut self, k: usize, seq: u64) -> Option<RiskMsg>;
    /// Pass a step of the decision flow to the recorder.
    fn flow(&mut self, f: Flow);
    /// Phase A of `seq` (whose input is `input`) is done: shards waiting on it may go on (or,
    /// inline, the shard handles the input now).
    fn venue_done(&mut self, seq: u64, input: Input<'_>);
}

/// Where a symbol is in the universe, as risk sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Unknown,
    Active,
    Removing,
    Removed,
}

pub(crate) struct RiskStage<'a> {
    pub risk: Risk,
    pub exec: Execution,
    n_shards: usize,
    inputs_all: bool,
    counters: &'a Counters,
    members: Vec<Member>,
    batch: Vec<RiskMsg>,
    flatten: Vec<Order>,
    /// Orders accepted by risk.
    pub accepted: u64,
    /// Inputs handled (excluding control and ticks) and bars among them.
    pub inputs: u64,
    pub bars: u64,
    /// Latency probes (None unless the run's probes are on) and the stamps of the event handled.
    probe: Option<Probe<'a>>,
    slot: Slot,
}

impl<'a> RiskStage<'a> {
    pub fn new(
        risk: Risk,
        exec: Execution,
        n_symbols: usize,
        n_shards: usize,
        inputs_all: bool,
        counters: &'a Counters,
    ) -> Self {
        RiskStage {
            risk,
            exec,
            n_shards,
            inputs_all,
            counters,
            members: vec![Member::Active; n_symbols],
            batch: Vec::new(),
            flatten: Vec::new(),
            accepted: 0,
            inputs: 0,
            bars: 0,
            probe: counters.probes.local(),
            slot: Slot::default(),
        }
    }

    /// The stamps of the event handled next (probes on).
    #[inline]
    pub fn set_slot(&mut self, slot: Slot) {
        self.slot = slot;
    }

    /// Nothing to do: merge pending latency samples without waiting.
    #[inline]
    pub fn probe_idle(&mut self) {
        if let Some(p) = &mut self.probe {
            p.idle();
        }
    }

    /// Merge every latency sample (the run ended).
    pub fn finish_probe(&mut self) {
        if let Some(p) = &mut self.probe {
            p.finish();
        }
    }

    #[inline]
    fn member(&self, s: SymbolId) -> Member {
        self.members.get(s.0 as usize).copied().unwrap_or(Member::Unknown)
    }

    /// True when inputs for `s` may be handled; counts the ones that may not.
    #[inline]
    fn admit(&self, s: SymbolId) -> bool {
        match self.member(s) {
            Member::Active | Member::Removing => true,
            Member::Removed => {
                self.counters.removed_symbol_inputs.fetch_add(1, Ordering::Relaxed);
                false
            }
            Member::Unknown => {
                self.counters.unknown_symbol.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Handle event `seq`; returns true after shutdown.
    #[inline]
    pub fn handle<L: RiskLink>(&mut self, seq: u64, input: Input<'_>, link: &mut L) -> bool {
        match input {
            Input::Bar { symbol, bar, ts_recv, .. } => {
                self.inputs += 1;
                self.bars += 1;
                if self.inputs_all {
                    link.flow(Flow { seq, body: FlowBody::Input(InputRec::from(&input.to_event())) });
                }
                if !self.admit(symbol) {
                    link.venue_done(seq, input);
                    return false;
                }
                self.exec.on_bar(symbol, bar);
                if !self.exec.out.is_empty() {
                    self.apply_out(seq, true, link);
                }
                let flatten = &mut self.flatten;
                self.risk.on_bar(symbol, bar, &mut |o| flatten.push(o));
                if !self.flatten.is_empty() {
                    self.submit_flatten(seq, ts_recv, link);
                }
                link.venue_done(seq, input);
                self.consume(seq, shard_of(symbol, self.n_shards), link);
                false
            }
            Input::Event(ev) => self.handle_event(seq, ev, link),
        }
    }

    fn handle_event<L: RiskLink>(&mut self, seq: u64, ev: &Event, link: &mut L) -> bool {
        let Some(kind) = ev.event_kind() else {
            self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
            link.venue_done(seq, Input::Event(ev));
            return false;
        };
        let wall_tick = kind == EventKind::Timer && ev.payload[1] == 1;
        let journal = self.inputs_all || matches!(kind, EventKind::Exec | EventKind::Control) || wall_tick;
        if journal {
            link.flow(Flow { seq, body: FlowBody::Input(InputRec::from(ev)) });
        }
        match kind {
            EventKind::Timer => {
                self.exec.on_timer(ev.payload[0] as i64);
                if !self.exec.out.is_empty() {
                    self.apply_out(seq, true, link);
                }
                link.venue_done(seq, Input::Event(ev));
                self.consume_all(seq, link);
            }
            EventKind::Quote | EventKind::Trade => {
                self.inputs += 1;
                link.venue_done(seq, Input::Event(ev));
                if self.admit(ev.symbol) {
                    self.consume(seq, shard_of(ev.symbol, self.n_shards), link);
                }
            }
            EventKind::Exec => {
                self.inputs += 1;
                if let Some(r) = ev.as_exec() {
                    self.apply(seq, true, *r, link);
                    self.submit_pending_flatten(seq, ev.ts_recv_ns, link);
                }
                link.venue_done(seq, Input::Event(ev));
                self.consume(seq, shard_of(ev.symbol, self.n_shards), link);
            }
            EventKind::Control => return self.control(seq, ev, link),
            EventKind::Bar | EventKind::BarRefs => link.venue_done(seq, Input::Event(ev)),
        }
        false
    }

    fn control<L: RiskLink>(&mut self, seq: u64, ev: &Event, link: &mut L) -> bool {
        let Some(c) = ev.as_control() else { return false };
        let s = ev.symbol;
        match ControlKind::from_raw(c.kind) {
            Some(ControlKind::AddSymbol) => {
                let i = s.0 as usize;
                let fresh = matches!(self.member(s), Member::Unknown | Member::Removed);
                if fresh && unpack_name(&c.args).is_some_and(|n| crate::symbols::check_symbol(n).is_ok()) {
                    if self.members.len() <= i {
                        self.members.resize(i + 1, Member::Unknown);
                    }
                    self.members[i] = Member::Active;
                    self.risk.ensure_symbols(i + 1);
                    self.risk.set_removing(s, false);
                    self.exec.ensure_symbols(i + 1);
                    self.counters.symbols_added.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(ControlKind::RemoveSymbol)
                if self.member(s) == Member::Active && RemovalPolicy::from_raw(c.args[0] as u8).is_some() =>
            {
                self.members[s.0 as usize] = Member::Removing;
                self.risk.set_removing(s, true);
            }
            Some(ControlKind::RemoveSymbol) => {
                self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
            }
            Some(ControlKind::EndOfData) => {
                let risk = &mut self.risk;
                let flatten = risk.config().flatten_at_end;
                self.exec.end_of_data(c.ts_event_ns, flatten, &mut || risk.own_order_id());
                if !self.exec.out.is_empty() {
                    self.apply_out(seq, true, link);
                }
            }
            Some(ControlKind::Shutdown) => {
                link.venue_done(seq, Input::Event(ev));
                self.consume_all(seq, link);
                self.risk.finish();
                return true;
            }
            Some(ControlKind::LiveStart) if self.member(s) == Member::Active => self.risk.set_live(s),
            Some(ControlKind::Reconcile) if self.member(s) != Member::Unknown => self.reconcile(s, c),
            Some(ControlKind::AdoptOrder) if self.member(s) != Member::Unknown => {
                let order = adopted_order(s, c);
                if order.qty > 0 && order.side().is_some() && order.kind().is_some() {
                    self.risk.adopt_order(&order);
                    self.exec.adopt(&order, c.ts_event_ns);
                    self.counters.adopted_orders.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(ControlKind::Halt) => match c.args[0] {
                0 => self.risk.stop_entries(None),
                r => match u16::try_from(r).ok().and_then(Reason::from_raw) {
                    Some(why) => self.risk.stop_entries(Some(why)),
                    None => {
                        self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
                    }
                },
            },
            Some(ControlKind::Reconcile | ControlKind::AdoptOrder) => {
                self.counters.unknown_symbol.fetch_add(1, Ordering::Relaxed);
            }
            // Manual orders, flattening and cancels become the shard's intents (checked here later).
            Some(
                ControlKind::SessionStart
                | ControlKind::LiveStart
                | ControlKind::ManualOrder
                | ControlKind::Flatten
                | ControlKind::CancelAll,
            ) => {}
            None => {
                self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        link.venue_done(seq, Input::Event(ev));
        self.consume_all(seq, link);
        false
    }

    /// The broker's position for `s` after a reconcile: a mismatch is counted, and then adopted
    /// or halts new entries, by the event's policy.
    fn reconcile(&mut self, s: SymbolId, c: &crate::records::Control) {
        let broker = c.args[0];
        if self.risk.position(s) == broker {
            return;
        }
        self.counters.reconcile_mismatches.fetch_add(1, Ordering::Relaxed);
        match ReconcilePolicy::from_raw(c.args[2] as u8) {
            Some(ReconcilePolicy::Adopt) => {
                let dq = self.risk.adopt_position(s, broker, c.args[1]);
                self.exec.set_position(s, broker);
                self.counters.reconcile_adopted_shares.fetch_add(dq.unsigned_abs(), Ordering::Relaxed);
            }
            Some(ReconcilePolicy::Halt) => self.risk.stop_entries(Some(Reason::Halted)),
            None => {
                self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Apply one venue report: execution's order state, the portfolio, the owning shard, the
    /// recorder.
    fn apply<L: RiskLink>(&mut self, seq: u64, before: bool, r: ExecReport, link: &mut L) {
        if !self.exec.on_report(&r) {
            self.counters.unknown_order_reports.fetch_add(1, Ordering::Relaxed);
        }
        if r.kind == ExecKind::Rejected.raw() && r.exec_reason().is_some_and(Reason::is_venue) {
            self.counters.venue_rejects.fetch_add(1, Ordering::Relaxed);
        }
        self.risk.on_report(&r);
        link.to_shard(shard_of(r.symbol, self.n_shards), ShardMsg { seq, before, report: r });
        link.flow(Flow { seq, body: FlowBody::Report(r) });
    }

    /// Apply every report the venue gave at once (and those that follow from them).
    fn apply_out<L: RiskLink>(&mut self, seq: u64, before: bool, link: &mut L) {
        let mut out = std::mem::take(&mut self.exec.out);
        for r in out.drain(..) {
            self.apply(seq, before, r, link);
        }
        self.exec.out = out;
    }

    fn submit_pending_flatten<L: RiskLink>(&mut self, seq: u64, ts: i64, link: &mut L) {
        if self.risk.has_flatten() {
            let flatten = &mut self.flatten;
            self.risk.take_flatten(&mut |o| flatten.push(o));
            self.submit_flatten(seq, ts, link);
        }
    }

    /// Risk's own flattening orders go through execution like any order.
    fn submit_flatten<L: RiskLink>(&mut self, seq: u64, ts: i64, link: &mut L) {
        let mut orders = std::mem::take(&mut self.flatten);
        for o in orders.drain(..) {
            link.flow(Flow { seq, body: FlowBody::Decision { order: o, reason: Reason::None, ts } });
            self.exec.submit(&o, ts);
            self.apply_out(seq, false, link);
        }
        self.flatten = orders;
    }

    #[inline]
    fn consume<L: RiskLink>(&mut self, seq: u64, k: usize, link: &mut L) {
        while let Some(m) = link.take_from_shard(k, seq) {
            self.process(m, link);
        }
    }

    /// Messages of an event every shard handles (ticks, control) are applied in symbol order, so
    /// the result does not depend on the shard count.
    fn consume_all<L: RiskLink>(&mut self, seq: u64, link: &mut L) {
        let mut batch = std::mem::take(&mut self.batch);
        for k in 0..self.n_shards {
            while let Some(m) = link.take_from_shard(k, seq) {
                batch.push(m);
            }
        }
        batch.sort_by_key(|m| (m.seq, m.body.symbol()));
        for m in batch.drain(..) {
            self.process(m, link);
        }
        self.batch = batch;
    }

    fn process<L: RiskLink>(&mut self, m: RiskMsg, link: &mut L) {
        let seq = m.seq;
        match m.body {
            ToRisk::Intent { order, placed_ns, at } => {
                let reason = self.risk.check(&order, placed_ns).err().unwrap_or(Reason::None);
                let decided = if at != 0 { metrics_clock_ns() } else { 0 };
                link.flow(Flow { seq, body: FlowBody::Decision { order, reason, ts: placed_ns } });
                if reason == Reason::None {
                    self.accepted += 1;
                    self.probe_submit(at, decided);
                    self.exec.submit(&order, placed_ns);
                    self.apply_out(seq, false, link);
                } else {
                    if let Some(p) = self.probe.as_mut() {
                        p.record(Stage::ShardToRisk, at, decided);
                    }
                    let r = ExecReport {
                        ts_event_ns: placed_ns,
                        order_id: order.order_id,
                        symbol: order.symbol,
                        kind: ExecKind::Rejected.raw(),
                        side: order.side,
                        reason: reason.raw(),
                        ..Default::default()
                    };
                    link.to_shard(shard_of(order.symbol, self.n_shards), ShardMsg { seq, before: false, report: r });
                }
            }
            ToRisk::Replace { id, symbol, qty, limit_px_e9, stop_px_e9, ts } => {
                let (changed, d) = self.risk.check_replace(id, qty, limit_px_e9, stop_px_e9, ts);
                let reason = d.err().unwrap_or(Reason::None);
                // An order risk no longer holds (done, or never accepted) is journaled by id.
                let order = changed.unwrap_or(Order {
                    order_id: id,
                    symbol,
                    qty,
                    limit_px_e9,
                    stop_px_e9,
                    ..Default::default()
                });
                link.flow(Flow { seq, body: FlowBody::Replace { order, reason, ts } });
                if reason == Reason::None {
                    self.exec.replace(id, qty, limit_px_e9, stop_px_e9, ts);
                    self.apply_out(seq, false, link);
                } else {
                    let r = ExecReport {
                        ts_event_ns: ts,
                        order_id: id,
                        symbol,
                        kind: ExecKind::ReplaceRejected.raw(),
                        side: order.side,
                        reason: reason.raw(),
                        ..Default::default()
                    };
                    link.to_shard(shard_of(symbol, self.n_shards), ShardMsg { seq, before: false, report: r });
                }
            }
            ToRisk::Cancel { id, symbol, ts, reason } => {
                link.flow(Flow { seq, body: FlowBody::Cancel { id, symbol, ts } });
                self.exec.cancel(id, ts, reason);
                self.apply_out(seq, false, link);
            }
            ToRisk::Lifecycle { symbol, step, policy, ts, name } => {
                link.flow(Flow { seq, body: FlowBody::Lifecycle { symbol, step, policy, ts, name } });
                if step == Lifecycle::Removed
                    && let Some(m) = self.members.get_mut(symbol.0 as usize)
                {
                    *m = Member::Removed;
                    self.counters.symbols_removed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.submit_pending_flatten(seq, self.last_ts(&m), link);
    }

    /// An intent emitted at `at`, decided at `decided`, goes to the venue now (probes on).
    #[inline]
    fn probe_submit(&mut self, at: u64, decided: u64) {
        if let Some(p) = self.probe.as_mut()
            && at != 0
        {
            let now = metrics_clock_ns();
            p.record(Stage::ShardToRisk, at, decided);
            p.record(Stage::RiskToVenue, decided, now);
            p.record(Stage::EndToEnd, self.slot.origin, now);
        }
    }

    fn last_ts(&self, m: &RiskMsg) -> i64 {
        match m.body {
            ToRisk::Intent { placed_ns, .. } => placed_ns,
            ToRisk::Cancel { ts, .. } | ToRisk::Replace { ts, .. } | ToRisk::Lifecycle { ts, .. } => ts,
        }
    }
}
