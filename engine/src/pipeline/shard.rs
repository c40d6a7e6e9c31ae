//! A strategy shard: owns a set of symbols, runs their strategies and (in simulation) their
//! order books, single-threaded and lock-free.
//!
//! Ring full / queue full: a shard never drops. When its queue to risk is full it counts the
//! event and waits for risk to drain it.

use super::messages::{RiskMsg, ShardMsg, ToRisk, ToShard};
use super::wait::Waiter;
use super::{Counters, push_wait};
use crate::records::{
    Bar, ControlKind, Event, EventKind, ExecKind, ExecReport, Order, OrderId, Reason, Side, SymbolId,
};
use crate::risk::Risk;
use crate::strategy::{Ctx, Intent, Strategy};
use crate::venue::SimBook;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct SymState {
    pub strategy: Box<dyn Strategy>,
    pub book: SimBook,
    pub position: i64,
    pub open_orders: u32,
    pub next_order_no: u32,
    pub pending_seq: Option<u64>,
    pub inbox: VecDeque<ShardMsg>,
    pub cancel_on_accept: Vec<OrderId>,
    pub last_close: i64,
    pub last_ts: i64,
    pub faulted: bool,
}

pub(crate) struct Shard<'a> {
    pub syms: Vec<Option<SymState>>,
    pub local_risk: Option<Risk>,
    pub to_risk: &'a ArrayQueue<RiskMsg>,
    pub from_risk: &'a ArrayQueue<ShardMsg>,
    pub progress: &'a CachePadded<AtomicU64>,
    /// Messages pushed to risk so far (stored before `progress`, so risk can tell when there is
    /// nothing to pop without touching the queue).
    pub pushed: &'a CachePadded<AtomicU64>,
    pub risk_done: &'a CachePadded<AtomicU64>,
    pub counters: &'a Counters,
    pub waiter: Waiter,
    pub intents: Vec<Intent>,
    pub work: Vec<ExecReport>,
    pub eod: bool,
    /// Nesting of strategy callbacks triggered by reports (bounded by `MAX_CASCADE`).
    pub depth: usize,
}

const MAX_CASCADE: usize = 16;

impl Shard<'_> {
    #[inline]
    fn send(&self, msg: RiskMsg, seq: u64) {
        // Count first: risk reads the count after `progress`, so a count that runs ahead is harmless
        // (risk pops until the message's seq is past the event it handles).
        self.pushed.fetch_add(1, Ordering::Release);
        push_wait(self.to_risk, msg, &self.counters.full_shard_to_risk, self.progress, seq);
    }

    /// Handle one event; returns true after the shutdown event.
    #[inline]
    pub fn handle(&mut self, seq: u64, ev: &Event) -> bool {
        let Some(kind) = ev.event_kind() else {
            self.counters.bad_events.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        if kind == EventKind::Control {
            let ctl = ev.as_control().and_then(|c| ControlKind::from_raw(c.kind));
            match ctl {
                Some(ControlKind::EndOfData) => self.eod = true,
                Some(ControlKind::Shutdown) => {
                    self.finish(seq);
                    return true;
                }
                _ => {}
            }
            return false;
        }
        if kind == EventKind::Bar {
            let bar: &Bar = bytemuck::cast_ref(&ev.payload);
            self.handle_bar(seq, ev.symbol, bar, ev.ts_recv_ns);
            return false;
        }
        let i = ev.symbol.0 as usize;
        if !matches!(self.syms.get(i), Some(Some(_))) {
            return false;
        }
        self.deliver(seq, i);
        match kind {
            EventKind::Quote => {
                if let Some(q) = ev.as_quote() {
                    let q = *q;
                    self.call(seq, i, ev.ts_recv_ns, |s, c| s.on_quote(c, &q));
                }
            }
            EventKind::Trade => {
                if let Some(t) = ev.as_trade() {
                    let t = *t;
                    self.call(seq, i, ev.ts_recv_ns, |s, c| s.on_trade(c, &t));
                }
            }
            EventKind::Exec => {
                if let Some(r) = ev.as_exec() {
                    self.apply_report(seq, i, *r, false, ev.ts_recv_ns);
                }
            }
            EventKind::Bar | EventKind::Control | EventKind::BarRefs => {}
        }
        false
    }

    /// Handle one bar event (inline or by reference into a mapped file).
    #[inline]
    pub fn handle_bar(&mut self, seq: u64, symbol: SymbolId, bar: &Bar, ts_recv: i64) {
        let i = symbol.0 as usize;
        if !matches!(self.syms.get(i), Some(Some(_))) {
            return;
        }
        self.deliver(seq, i);
        self.on_bar(seq, i, bar, ts_recv);
    }

    #[inline]
    fn on_bar(&mut self, seq: u64, i: usize, bar: &Bar, ts_recv: i64) {
        let st = self.syms[i].as_mut().expect("owned");
        st.last_close = bar.close_px_e9;
        st.last_ts = bar.ts_event_ns;
        if st.faulted {
            return;
        }
        if !st.book.is_empty() {
            let mut work = std::mem::take(&mut self.work);
            work.clear();
            st.book.on_bar(bar, &mut |r| work.push(r));
            for r in work.drain(..) {
                self.apply_report(seq, i, r, true, ts_recv);
            }
            self.work = work;
        }
        let b = *bar;
        self.call(seq, i, ts_recv, |s, c| s.on_bar(c, &b));
    }

    /// Run a strategy callback, then pass on what it asked for.
    fn call(&mut self, seq: u64, i: usize, ts: i64, f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>)) {
        let st = self.syms[i].as_mut().expect("owned");
        if st.faulted {
            return;
        }
        self.intents.clear();
        let mut ctx =
            Ctx::new(SymbolId(i as u32), ts, st.position, st.open_orders, &mut st.next_order_no, &mut self.intents);
        let strategy = &mut *st.strategy;
        if catch_unwind(AssertUnwindSafe(|| f(strategy, &mut ctx))).is_err() {
            self.fault(seq, i, ts);
            return;
        }
        if !self.intents.is_empty() {
            self.handle_intents(seq, i, ts);
        }
    }

    fn handle_intents(&mut self, seq: u64, i: usize, ts: i64) {
        let mut intents = std::mem::take(&mut self.intents);
        let mut cancels = std::mem::take(&mut self.work);
        cancels.clear();
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
                    st.open_orders += 1;
                    let predicted = match self.local_risk.as_mut() {
                        Some(lr) => {
                            let reason = lr.check(&order, ts).err().unwrap_or(Reason::None);
                            st.inbox
                                .push_back(ShardMsg { seq, body: ToShard::Decision { order, placed_ns: ts, reason } });
                            reason.raw()
                        }
                        None => {
                            st.pending_seq = Some(seq);
                            u16::MAX
                        }
                    };
                    let msg = RiskMsg { seq, body: ToRisk::Intent { order, placed_ns: ts, predicted } };
                    self.send(msg, seq);
                }
                Intent::Cancel(id) => {
                    match st.book.cancel(id, ts, Reason::Requested) {
                        Some(r) => cancels.push(r),
                        None => st.cancel_on_accept.push(id),
                    }
                    let msg = RiskMsg { seq, body: ToRisk::Cancel { id, symbol: SymbolId(i as u32), ts } };
                    self.send(msg, seq);
                }
            }
        }
        self.intents = intents;
        for r in cancels.drain(..) {
            self.apply_report(seq, i, r, true, ts);
        }
        self.work = cancels;
    }

    /// Apply a report to the symbol: position, open orders, local risk, risk (when `to_risk`), and
    /// the strategy's `on_order`.
    fn apply_report(&mut self, seq: u64, i: usize, r: ExecReport, to_risk: bool, ts: i64) {
        let st = self.syms[i].as_mut().expect("owned");
        let Some(kind) = r.exec_kind() else { return };
        if kind.is_fill() {
            let side = r.exec_side().unwrap_or(Side::Buy);
            st.position += side.sign() * i64::from(r.fill_qty);
        }
        if kind.is_terminal() && r.order_id.0 >> 32 == u64::from(r.symbol.0) + 1 && r.reason != Reason::EndOfRun.raw() {
            st.open_orders = st.open_orders.saturating_sub(1);
        }
        if let Some(lr) = self.local_risk.as_mut() {
            lr.on_report(&r);
        }
        if to_risk {
            let msg = RiskMsg { seq, body: ToRisk::Report(r) };
            self.send(msg, seq);
        }
        self.cascade(seq, i, ts, r);
    }

    fn cascade(&mut self, seq: u64, i: usize, ts: i64, r: ExecReport) {
        // A report can make the strategy act (e.g. place a stop after an entry fills); bound the
        // depth so a strategy cannot loop forever on its own reports.
        if self.depth >= MAX_CASCADE {
            self.counters.cascade_limit.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.depth += 1;
        self.call(seq, i, ts, |s, c| s.on_order(c, &r));
        self.depth -= 1;
    }

    /// Before a symbol's next event: wait for risk's decisions on its orders (portfolio limits)
    /// and deliver every decision and notice produced before this event.
    #[inline]
    fn deliver(&mut self, seq: u64, i: usize) {
        let st = self.syms[i].as_ref().expect("owned");
        if let Some(s) = st.pending_seq {
            self.wait_risk(seq, s + 1);
            self.syms[i].as_mut().expect("owned").pending_seq = None;
        }
        let st = self.syms[i].as_ref().expect("owned");
        if st.inbox.front().is_some_and(|m| m.seq < seq) {
            self.apply_inbox(seq, i);
        }
    }

    fn wait_risk(&mut self, seq: u64, need: u64) {
        if self.risk_done.load(Ordering::Acquire) < need {
            self.progress.store(seq, Ordering::Release);
            self.counters.shard_waits.fetch_add(1, Ordering::Relaxed);
            self.waiter.reset();
            while self.risk_done.load(Ordering::Acquire) < need {
                // Keep risk's queue to us moving while we wait, or a full queue could stall it.
                self.drain_from_risk();
                self.waiter.wait();
            }
        }
        self.drain_from_risk();
    }

    pub fn drain_from_risk(&mut self) {
        while let Some(m) = self.from_risk.pop() {
            let sym = match m.body {
                ToShard::Decision { order, .. } => order.symbol,
                ToShard::Notice(r) => r.symbol,
            };
            if let Some(Some(st)) = self.syms.get_mut(sym.0 as usize) {
                st.inbox.push_back(m);
            }
        }
    }

    fn apply_inbox(&mut self, seq: u64, i: usize) {
        loop {
            let st = self.syms[i].as_mut().expect("owned");
            let Some(m) = st.inbox.front().copied().filter(|m| m.seq < seq) else { break };
            st.inbox.pop_front();
            match m.body {
                ToShard::Decision { order, placed_ns, reason } => {
                    let mut r = ExecReport {
                        ts_event_ns: placed_ns,
                        order_id: order.order_id,
                        symbol: order.symbol,
                        leaves_qty: order.qty,
                        side: order.side,
                        ..Default::default()
                    };
                    if reason == Reason::None {
                        r.kind = ExecKind::Accepted.raw();
                        if st.faulted || st.cancel_on_accept.contains(&order.order_id) {
                            st.cancel_on_accept.retain(|&id| id != order.order_id);
                            r.kind = ExecKind::Canceled.raw();
                            r.leaves_qty = 0;
                            r.reason = if st.faulted { Reason::SymbolFaulted.raw() } else { Reason::Requested.raw() };
                            self.apply_report(seq, i, r, true, placed_ns);
                        } else {
                            st.book.add(order, placed_ns);
                            self.cascade(seq, i, placed_ns, r);
                        }
                    } else {
                        r.kind = ExecKind::Rejected.raw();
                        r.reason = reason.raw();
                        r.leaves_qty = 0;
                        st.open_orders = st.open_orders.saturating_sub(1);
                        self.cascade(seq, i, placed_ns, r);
                    }
                }
                ToShard::Notice(r) => self.apply_report(seq, i, r, false, r.ts_event_ns),
            }
        }
    }

    fn fault(&mut self, seq: u64, i: usize, ts: i64) {
        self.counters.strategy_faults.fetch_add(1, Ordering::Relaxed);
        let st = self.syms[i].as_mut().expect("owned");
        st.faulted = true;
        let mut work = std::mem::take(&mut self.work);
        work.clear();
        st.book.cancel_all(ts, Reason::SymbolFaulted, &mut |r| work.push(r));
        for r in work.drain(..) {
            self.apply_report(seq, i, r, true, ts);
        }
        self.work = work;
    }

    /// Shutdown: deliver everything risk decided, cancel working orders, close positions at the
    /// last close (backtest rule), then report done.
    fn finish(&mut self, seq: u64) {
        self.eod = true;
        self.wait_risk(seq, seq);
        for i in 0..self.syms.len() {
            if self.syms[i].is_none() {
                continue;
            }
            self.syms[i].as_mut().expect("owned").pending_seq = None;
            self.apply_inbox(seq, i);
            let st = self.syms[i].as_mut().expect("owned");
            let ts = st.last_ts;
            let mut work = std::mem::take(&mut self.work);
            work.clear();
            st.book.cancel_all(ts, Reason::EndOfRun, &mut |r| work.push(r));
            if st.position != 0 {
                let id = OrderId::for_symbol(SymbolId(i as u32), st.next_order_no);
                st.next_order_no += 1;
                let order = Order {
                    order_id: id,
                    symbol: SymbolId(i as u32),
                    qty: u32::try_from(st.position.unsigned_abs()).unwrap_or(u32::MAX),
                    side: if st.position > 0 { Side::Sell.raw() } else { Side::Buy.raw() },
                    order_type: crate::records::OrderType::Market.raw(),
                    reduce_only: 1,
                    ..Default::default()
                };
                work.push(st.book.liquidation(order, ts, st.last_close));
            }
            for r in work.drain(..) {
                self.apply_report(seq, i, r, true, ts);
            }
            self.work = work;
        }
        self.progress.store(seq + 1, Ordering::Release);
    }
}
