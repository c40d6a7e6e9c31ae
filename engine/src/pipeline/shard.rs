//! A strategy shard: owns a set of symbols (see [`super::shard_of`]) and runs their strategies,
//! single-threaded and lock-free. It tracks each symbol's position and live orders from the
//! reports risk sends back, turns strategy intents into messages for risk, and runs each
//! symbol's life in the universe (added, removing, removed, faulted).
//!
//! Determinism: a report reaches a strategy exactly before the symbol's first event after the
//! event that made it (or before the event itself when the venue made it while matching that
//! event's bar or tick). When a symbol may have reports in flight (live orders, a position risk
//! could flatten, a removal under way) the shard syncs with risk before handing it an event.
//!
//! Queue full (threads topology): a shard never drops; it counts and waits.

use super::messages::{RiskMsg, ShardMsg, ToRisk};
use super::probes::{Probe, Slot, Stage, metrics_clock_ns};
use super::source::Input;
use super::{Counters, shard_of};
use crate::records::{
    ControlKind, Event, EventKind, ExecReport, Lifecycle, MANUAL_TAG, Order, OrderId, OrderType, Reason, RemovalPolicy,
    Side, SymbolId, pack_name, unpack_name,
};
use crate::strategy::{Ctx, Intent, Strategy, StrategyFactory};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

/// How a shard reaches risk: queues and progress counters between threads, or plain buffers on
/// the inline topology.
pub(crate) trait ShardLink {
    /// Send a message to risk.
    fn send(&mut self, m: RiskMsg);
    /// The next report risk sent that has arrived.
    fn recv(&mut self) -> Option<ShardMsg>;
    /// Make every report for events before `seq`, and those made by phase A of `seq`, arrive
    /// (threads: wait for risk; inline: they already have).
    fn sync(&mut self, seq: u64);
}

pub(crate) struct SymState {
    strategy: Option<Box<dyn Strategy>>,
    name: [i64; 4],
    position: i64,
    open: Vec<OrderId>,
    next_order_no: u32,
    inbox: VecDeque<ShardMsg>,
    faulted: bool,
    removing: Option<RemovalPolicy>,
    removed: bool,
    wants_timer: bool,
    last_ts: i64,
    /// Counted in [`Shard::syncing`].
    counted: bool,
}

impl SymState {
    fn active(&self) -> bool {
        !self.removed && !self.faulted && self.strategy.is_some()
    }
}

const MAX_CASCADE: usize = 16;

pub(crate) struct Shard<'a> {
    k: usize,
    n_shards: usize,
    syms: Vec<Option<SymState>>,
    factory: &'a dyn StrategyFactory,
    counters: &'a Counters,
    /// Risk may flatten positions on its own (a daily loss limit is set).
    risk_flattens: bool,
    intents: Vec<Intent>,
    eod: bool,
    depth: usize,
    /// Symbols whose strategy wants clock ticks, ascending.
    timer_syms: Vec<u32>,
    /// Symbols with reports waiting in their inbox.
    dirty: Vec<u32>,
    /// Symbols that currently need a sync (live orders, a position risk may flatten, removal).
    syncing: usize,
    /// Latency probes (None unless the run's probes are on), the stamps of the event being
    /// handled, and whether the next callback is a market-data one (timed).
    probe: Option<Probe<'a>>,
    slot: Slot,
    timed: bool,
}

impl<'a> Shard<'a> {
    pub fn new(
        k: usize,
        n_shards: usize,
        names: &[String],
        factory: &'a dyn StrategyFactory,
        counters: &'a Counters,
        risk_flattens: bool,
    ) -> Self {
        let mut sh = Shard {
            k,
            n_shards,
            syms: Vec::new(),
            factory,
            counters,
            risk_flattens,
            intents: Vec::with_capacity(16),
            eod: false,
            depth: 0,
            timer_syms: Vec::new(),
            dirty: Vec::new(),
            syncing: 0,
            probe: counters.probes.local(),
            slot: Slot::default(),
            timed: false,
        };
        sh.syms.resize_with(names.len(), || None);
        for (i, name) in names.iter().enumerate() {
            if shard_of(SymbolId(i as u32), n_shards) == k {
                sh.build(i, name, 1);
            }
        }
        sh
    }

    /// Build symbol `i`'s strategy. A factory that panics faults the symbol.
    fn build(&mut self, i: usize, name: &str, next_order_no: u32) -> bool {
        let f = self.factory;
        let strategy = catch_unwind(AssertUnwindSafe(|| f.build(name))).ok();
        let ok = strategy.is_some();
        let wants_timer = strategy.as_ref().is_some_and(|s| s.wants_timer());
        self.syms[i] = Some(SymState {
            strategy,
            name: pack_name(name),
            position: 0,
            open: Vec::new(),
            next_order_no,
            inbox: VecDeque::new(),
            faulted: !ok,
            removing: None,
            removed: false,
            wants_timer,
            last_ts: 0,
            counted: false,
        });
        if wants_timer {
            let at = self.timer_syms.partition_point(|&x| (x as usize) < i);
            self.timer_syms.insert(at, i as u32);
        }
        ok
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

    /// The metrics clock when probes are on, else 0.
    #[inline]
    fn stamp(&self) -> u64 {
        if self.probe.is_some() { metrics_clock_ns() } else { 0 }
    }

    #[inline]
    fn needs_sync(&self, st: &SymState) -> bool {
        !st.open.is_empty() || (self.risk_flattens && st.position != 0) || st.removing.is_some()
    }

    /// Handle event `seq`; returns true after shutdown.
    #[inline]
    pub fn handle<L: ShardLink>(&mut self, seq: u64, input: Input<'_>, link: &mut L) -> bool {
        match input {
            Input::Bar { symbol, bar, ts_recv, .. } => {
                let i = symbol.0 as usize;
                let Some(Some(st)) = self.syms.get(i) else { return false };
                if st.removed {
                    return false;
                }
                self.prepare(seq, i, link);
                let b = *bar;
                self.timed = true;
                self.call(seq, i, ts_recv, link, |s, c| s.on_bar(c, &b));
                false
            }
            Input::Event(ev) => self.handle_event(seq, ev, link),
        }
    }

    fn handle_event<L: ShardLink>(&mut self, seq: u64, ev: &Event, link: &mut L) -> bool {
        let i = ev.symbol.0 as usize;
        match ev.event_kind() {
            Some(EventKind::Quote) => {
                if let (Some(q), Some(Some(st))) = (ev.as_quote(), self.syms.get(i))
                    && !st.removed
                {
                    let q = *q;
                    self.prepare(seq, i, link);
                    self.timed = true;
                    self.call(seq, i, ev.ts_recv_ns, link, |s, c| s.on_quote(c, &q));
                }
            }
            Some(EventKind::Trade) => {
                if let (Some(t), Some(Some(st))) = (ev.as_trade(), self.syms.get(i))
                    && !st.removed
                {
                    let t = *t;
                    self.prepare(seq, i, link);
                    self.timed = true;
                    self.call(seq, i, ev.ts_recv_ns, link, |s, c| s.on_trade(c, &t));
                }
            }
            Some(EventKind::Exec) => {
                if matches!(self.syms.get(i), Some(Some(_))) {
                    // Risk applied the report in phase A of this event; deliver it now.
                    link.sync(seq);
                    self.drain(link);
                    self.deliver(seq, i, link);
                }
            }
            Some(EventKind::Timer) => self.on_timer(seq, ev.payload[0] as i64, link),
            Some(EventKind::Control) => {
                let Some(c) = ev.as_control() else { return false };
                match ControlKind::from_raw(c.kind) {
                    Some(ControlKind::AddSymbol) => self.add(seq, ev.symbol, &c.args, c.ts_event_ns, link),
                    Some(ControlKind::RemoveSymbol) => {
                        if let Some(p) = RemovalPolicy::from_raw(c.args[0] as u8) {
                            self.remove(seq, ev.symbol, p, c.ts_event_ns, link);
                        }
                    }
                    Some(ControlKind::EndOfData) => {
                        self.eod = true;
                        self.deliver_all(seq, link);
                    }
                    Some(ControlKind::Shutdown) => {
                        self.deliver_all(seq, link);
                        return true;
                    }
                    Some(ControlKind::ManualOrder | ControlKind::Flatten | ControlKind::CancelAll) => {
                        self.manual(seq, ev.symbol, c, link);
                    }
                    Some(ControlKind::Reconcile) => self.reconcile(ev.symbol, c),
                    Some(ControlKind::AdoptOrder) => {
                        let order = super::risk_stage::adopted_order(ev.symbol, c);
                        if let Some(Some(st)) = self.syms.get_mut(ev.symbol.0 as usize)
                            && order.qty > 0
                            && !st.open.contains(&order.order_id)
                        {
                            st.open.push(order.order_id);
                        }
                    }
                    Some(ControlKind::SessionStart | ControlKind::LiveStart | ControlKind::Halt) | None => {}
                }
            }
            Some(EventKind::Bar | EventKind::BarRefs) => {}
            None => {}
        }
        false
    }

    /// Before symbol `i` handles event `seq`: sync if reports may be in flight, then deliver.
    #[inline]
    fn prepare<L: ShardLink>(&mut self, seq: u64, i: usize, link: &mut L) {
        let st = self.syms[i].as_ref().expect("owned");
        if self.needs_sync(st) {
            link.sync(seq);
        }
        self.drain(link);
        if !self.syms[i].as_ref().expect("owned").inbox.is_empty() {
            self.deliver(seq, i, link);
        }
    }

    /// Move arrived reports into their symbols' inboxes.
    #[inline]
    fn drain<L: ShardLink>(&mut self, link: &mut L) {
        while let Some(m) = link.recv() {
            let i = m.report.symbol.0 as usize;
            match self.syms.get_mut(i) {
                Some(Some(st)) => {
                    if st.inbox.is_empty() {
                        self.dirty.push(i as u32);
                    }
                    st.inbox.push_back(m);
                }
                _ => {
                    self.counters.unknown_symbol.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Deliver symbol `i`'s reports that belong before event `seq`.
    fn deliver<L: ShardLink>(&mut self, seq: u64, i: usize, link: &mut L) {
        loop {
            let st = self.syms[i].as_mut().expect("owned");
            let Some(m) = st.inbox.front().copied().filter(|m| m.seq < seq || (m.seq == seq && m.before)) else {
                break;
            };
            st.inbox.pop_front();
            self.apply_report(seq, i, m.report, link);
        }
    }

    /// Sync and deliver every pending report of every symbol (end of data, shutdown, ticks).
    fn deliver_all<L: ShardLink>(&mut self, seq: u64, link: &mut L) {
        link.sync(seq);
        self.drain(link);
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &i in &dirty {
            self.deliver(seq, i as usize, link);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn on_timer<L: ShardLink>(&mut self, seq: u64, ts: i64, link: &mut L) {
        if self.syncing == 0 && self.timer_syms.is_empty() {
            return;
        }
        self.deliver_all(seq, link);
        for j in 0..self.timer_syms.len() {
            let i = self.timer_syms[j] as usize;
            if self.syms[i].as_ref().is_some_and(SymState::active) {
                self.call(seq, i, ts, link, |s, c| s.on_timer(c));
            }
        }
    }

    /// Apply a report to symbol `i`: position, live orders, the strategy's `on_order`, removal.
    fn apply_report<L: ShardLink>(&mut self, seq: u64, i: usize, r: ExecReport, link: &mut L) {
        let st = self.syms[i].as_mut().expect("owned");
        let Some(kind) = r.exec_kind() else { return };
        if kind.is_fill() {
            st.position += r.exec_side().map_or(0, Side::sign) * i64::from(r.fill_qty);
        }
        if kind.is_terminal()
            && let Some(at) = st.open.iter().position(|&id| id == r.order_id)
        {
            st.open.swap_remove(at);
        }
        if st.active() && st.removing != Some(RemovalPolicy::Flatten) {
            self.cascade(seq, i, r.ts_event_ns, r, link);
        }
        self.check_removed(seq, i, r.ts_event_ns, link);
        self.update_sync(i);
    }

    /// Keep [`Shard::syncing`] equal to the number of symbols that need a sync.
    fn update_sync(&mut self, i: usize) {
        let Some(st) = self.syms[i].as_ref() else { return };
        let now = !st.removed && self.needs_sync(st);
        if now != st.counted {
            if now {
                self.syncing += 1;
            } else {
                self.syncing -= 1;
            }
            self.syms[i].as_mut().expect("owned").counted = now;
        }
    }

    fn cascade<L: ShardLink>(&mut self, seq: u64, i: usize, ts: i64, r: ExecReport, link: &mut L) {
        // A report can make the strategy act (e.g. place a stop after an entry fills); bound the
        // depth so a strategy cannot loop forever on its own reports.
        if self.depth >= MAX_CASCADE {
            self.counters.cascade_limit.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.depth += 1;
        self.call(seq, i, ts, link, |s, c| s.on_order(c, &r));
        self.depth -= 1;
    }

    /// Run a strategy callback, then pass on what it asked for.
    #[inline]
    fn call<L: ShardLink>(
        &mut self,
        seq: u64,
        i: usize,
        ts: i64,
        link: &mut L,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        // Market-data callbacks are timed (probes on): sequencer -> here, and the callback.
        let timed = std::mem::take(&mut self.timed) && self.probe.is_some();
        let st = self.syms[i].as_mut().expect("owned");
        st.last_ts = ts;
        if st.faulted || st.removed || st.removing == Some(RemovalPolicy::Flatten) {
            return;
        }
        let Some(strategy) = st.strategy.as_deref_mut() else { return };
        let t0 = if timed { metrics_clock_ns() } else { 0 };
        self.intents.clear();
        let mut ctx = Ctx::new(
            SymbolId(i as u32),
            ts,
            st.position,
            st.open.len() as u32,
            &mut st.next_order_no,
            &mut self.intents,
        );
        let r = catch_unwind(AssertUnwindSafe(|| f(strategy, &mut ctx)));
        if let (true, Some(p)) = (timed, self.probe.as_mut()) {
            let t1 = metrics_clock_ns();
            p.record(Stage::SequencerToShard, self.slot.published, t0);
            p.record(Stage::Strategy, t0, t1);
        }
        if r.is_err() {
            self.fault(seq, i, ts, link);
            return;
        }
        if !self.intents.is_empty() {
            self.handle_intents(seq, i, ts, link);
        }
    }

    fn handle_intents<L: ShardLink>(&mut self, seq: u64, i: usize, ts: i64, link: &mut L) {
        let at = self.stamp();
        let mut intents = std::mem::take(&mut self.intents);
        for intent in intents.drain(..) {
            if self.eod {
                self.counters.intents_after_end.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let st = self.syms[i].as_mut().expect("owned");
            match intent {
                Intent::Submit(id, req) => {
                    let order = Order {
                        order_id: id,
                        limit_px_e9: req.limit_px_e9,
                        stop_px_e9: req.stop_px_e9,
                        timeout_ns: req.timeout_ns,
                        symbol: SymbolId(i as u32),
                        qty: req.qty,
                        side: req.side.raw(),
                        order_type: req.order_type.raw(),
                        reduce_only: u8::from(req.reduce_only),
                        _pad: 0,
                        tag: req.tag,
                    };
                    st.open.push(id);
                    link.send(RiskMsg { seq, body: ToRisk::Intent { order, placed_ns: ts, at } });
                }
                Intent::Cancel(id) => {
                    let symbol = SymbolId(i as u32);
                    link.send(RiskMsg { seq, body: ToRisk::Cancel { id, symbol, ts, reason: Reason::Requested } });
                }
                Intent::Replace { id, qty, limit_px_e9, stop_px_e9 } => {
                    let symbol = SymbolId(i as u32);
                    link.send(RiskMsg { seq, body: ToRisk::Replace { id, symbol, qty, limit_px_e9, stop_px_e9, ts } });
                }
            }
        }
        self.intents = intents;
        self.update_sync(i);
    }

    fn lifecycle<L: ShardLink>(&mut self, seq: u64, i: usize, step: Lifecycle, policy: u8, ts: i64, link: &mut L) {
        let name = self.syms[i].as_ref().map_or([0; 4], |st| if step == Lifecycle::Added { st.name } else { [0; 4] });
        link.send(RiskMsg { seq, body: ToRisk::Lifecycle { symbol: SymbolId(i as u32), step, policy, ts, name } });
    }

    /// A strategy panicked: stop it, cancel its orders; the rest of the shard goes on.
    fn fault<L: ShardLink>(&mut self, seq: u64, i: usize, ts: i64, link: &mut L) {
        self.counters.strategy_faults.fetch_add(1, Ordering::Relaxed);
        let st = self.syms[i].as_mut().expect("owned");
        st.faulted = true;
        st.strategy = None;
        let open = st.open.clone();
        self.lifecycle(seq, i, Lifecycle::Faulted, 0, ts, link);
        for id in open {
            let symbol = SymbolId(i as u32);
            link.send(RiskMsg { seq, body: ToRisk::Cancel { id, symbol, ts, reason: Reason::SymbolFaulted } });
        }
    }

    fn add<L: ShardLink>(&mut self, seq: u64, s: SymbolId, args: &[i64; 4], ts: i64, link: &mut L) {
        let i = s.0 as usize;
        if self.syms.len() <= i {
            self.syms.resize_with(i + 1, || None);
        }
        if shard_of(s, self.n_shards) != self.k {
            return;
        }
        let Some(name) = unpack_name(args).filter(|n| crate::symbols::check_symbol(n).is_ok()) else { return };
        let next_no = match &self.syms[i] {
            Some(st) if !st.removed => return, // already in the universe (risk counts it)
            Some(st) => st.next_order_no,      // re-added: order ids keep counting
            None => 1,
        };
        let name = name.to_string();
        let ok = self.build(i, &name, next_no);
        self.lifecycle(seq, i, Lifecycle::Added, 0, ts, link);
        if !ok {
            self.counters.strategy_faults.fetch_add(1, Ordering::Relaxed);
            self.lifecycle(seq, i, Lifecycle::Faulted, 0, ts, link);
        }
    }

    fn remove<L: ShardLink>(&mut self, seq: u64, s: SymbolId, policy: RemovalPolicy, ts: i64, link: &mut L) {
        let i = s.0 as usize;
        match self.syms.get(i) {
            Some(Some(st)) if !st.removed && st.removing.is_none() => {}
            _ => return,
        }
        link.sync(seq);
        self.drain(link);
        self.deliver(seq, i, link);
        let st = self.syms[i].as_mut().expect("owned");
        st.removing = Some(policy);
        self.lifecycle(seq, i, Lifecycle::Removing, policy.raw(), ts, link);
        if policy == RemovalPolicy::Flatten {
            let st = self.syms[i].as_mut().expect("owned");
            let open = st.open.clone();
            for id in open {
                link.send(RiskMsg { seq, body: ToRisk::Cancel { id, symbol: s, ts, reason: Reason::Requested } });
            }
            let st = self.syms[i].as_mut().expect("owned");
            if st.position != 0 {
                let id = OrderId::for_symbol(s, st.next_order_no);
                st.next_order_no += 1;
                let order = Order {
                    order_id: id,
                    symbol: s,
                    qty: u32::try_from(st.position.unsigned_abs()).unwrap_or(u32::MAX),
                    side: if st.position > 0 { Side::Sell.raw() } else { Side::Buy.raw() },
                    order_type: OrderType::Market.raw(),
                    reduce_only: 1,
                    ..Default::default()
                };
                st.open.push(id);
                link.send(RiskMsg { seq, body: ToRisk::Intent { order, placed_ns: ts, at: self.stamp() } });
            }
        }
        self.check_removed(seq, i, ts, link);
        self.update_sync(i);
    }

    /// A hand-made command for symbol `s` (a hotkey): a manual order, a flatten or a cancel-all,
    /// sent to risk like the strategy's own intents (the strategy sees the reports, tagged
    /// [`MANUAL_TAG`] for manual orders). Ignored for a symbol this shard does not hold live.
    fn manual<L: ShardLink>(&mut self, seq: u64, s: SymbolId, c: &crate::records::Control, link: &mut L) {
        let i = s.0 as usize;
        if !matches!(self.syms.get(i), Some(Some(st)) if !st.removed) {
            return;
        }
        if self.eod {
            self.counters.intents_after_end.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ts = c.ts_event_ns;
        self.prepare(seq, i, link);
        let st = self.syms[i].as_mut().expect("owned");
        let kind = ControlKind::from_raw(c.kind);
        if matches!(kind, Some(ControlKind::Flatten | ControlKind::CancelAll)) {
            for id in st.open.clone() {
                link.send(RiskMsg { seq, body: ToRisk::Cancel { id, symbol: s, ts, reason: Reason::Requested } });
            }
        }
        let order = match kind {
            Some(ControlKind::ManualOrder) => {
                let a0 = c.args[0];
                Some(Order {
                    qty: (a0 & 0xFFFF_FFFF) as u32,
                    side: ((a0 >> 32) & 0xFF) as u8,
                    order_type: ((a0 >> 40) & 0xFF) as u8,
                    limit_px_e9: c.args[1],
                    stop_px_e9: c.args[2],
                    ..Default::default()
                })
            }
            Some(ControlKind::Flatten) if st.position != 0 => Some(Order {
                qty: u32::try_from(st.position.unsigned_abs()).unwrap_or(u32::MAX),
                side: if st.position > 0 { Side::Sell.raw() } else { Side::Buy.raw() },
                order_type: OrderType::Market.raw(),
                reduce_only: 1,
                ..Default::default()
            }),
            _ => None,
        };
        if let Some(mut order) = order {
            order.order_id = OrderId::for_symbol(s, st.next_order_no);
            order.symbol = s;
            order.tag = MANUAL_TAG;
            st.next_order_no += 1;
            st.open.push(order.order_id);
            link.send(RiskMsg { seq, body: ToRisk::Intent { order, placed_ns: ts, at: self.stamp() } });
        }
        self.update_sync(i);
    }

    /// The broker's position after a reconcile: under the adopt policy the symbol's position
    /// becomes the broker's (risk books the difference; the strategy sees the new position).
    fn reconcile(&mut self, s: SymbolId, c: &crate::records::Control) {
        if crate::records::ReconcilePolicy::from_raw(c.args[2] as u8) == Some(crate::records::ReconcilePolicy::Adopt)
            && let Some(Some(st)) = self.syms.get_mut(s.0 as usize)
        {
            st.position = c.args[0];
        }
    }

    /// A removing symbol that is flat with no live orders is gone: its strategy is dropped.
    fn check_removed<L: ShardLink>(&mut self, seq: u64, i: usize, ts: i64, link: &mut L) {
        let st = self.syms[i].as_mut().expect("owned");
        if st.removing.is_none() || st.removed || st.position != 0 || !st.open.is_empty() {
            return;
        }
        st.removed = true;
        st.strategy = None;
        if st.wants_timer {
            self.timer_syms.retain(|&x| x as usize != i);
        }
        self.lifecycle(seq, i, Lifecycle::Removed, 0, ts, link);
    }
}
