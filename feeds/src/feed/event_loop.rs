//! The feed thread's loop, shared by every [`Protocol`] (see the [module docs](super)).

use super::{
    ControlAction, FatalError, FeedCommand, FeedConfig, FeedEnd, FeedLogLine, FeedReport, FeedStatus, LogLevel,
    Protocol, SessionState, SharedClock,
};
use crate::alpaca::Action;
use crate::ws::{Transition, WsClient};
use crate::{BarGates, Control, FeedCounters, FeedMsg, HistBar, HistoryError, Offer, ReleasedBar, SymbolMap};
use engine::pipeline::{Ingress, IngressFull};
use engine::records::{ControlKind, Event, SymbolId};
use mio::{Events, Poll};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The receive time of an event that came from no frame (history): no latency sample.
const NO_FRAME: i64 = i64::MIN;
/// The poll bound while a backlog waits, wall ns.
const BACKLOG_WAIT_NS: u64 = 1_000_000;
/// History error lines kept in the report.
const HISTORY_LOG_MAX: usize = 32;

pub(super) struct Feed<P: Protocol> {
    cfg: FeedConfig,
    proto: P,
    ingress: Ingress,
    symbols: SymbolMap,
    gates: BarGates,
    clock: SharedClock,
    commands: mpsc::Receiver<FeedCommand>,
    status: Arc<FeedStatus>,
    counters: FeedCounters,
    msgs: Vec<FeedMsg>,
    released: Vec<ReleasedBar>,
    controls: Vec<Control>,
    /// Events the ingress refused, in order, with their frame's receive time.
    backlog: VecDeque<(Event, i64)>,
    /// The longest the current backlog grew (for its `backlog_end` log line).
    backlog_peak: usize,
    /// Symbol batches waiting for history (one batch per loop turn); their gates are held.
    fill_queue: VecDeque<Vec<String>>,
    session: SessionState,
    /// A subscription was sent and the server has not confirmed it yet: history waits (at most
    /// `ws.dead_after_ns` after `sub_sent_ns`, for a server that never confirms).
    awaiting_sub: bool,
    sub_sent_ns: i64,
    ingress_closed: bool,
    last_recv_ns: i64,
    /// Symbols whose `LiveStart` was published (once per symbol id).
    live: HashSet<SymbolId>,
    report: FeedReport,
}

impl<P: Protocol> Feed<P> {
    #[allow(clippy::too_many_arguments)] // reason: private, called once, by `spawn_feed`
    pub(super) fn new(
        cfg: FeedConfig,
        proto: P,
        ingress: Ingress,
        symbols: SymbolMap,
        gates: BarGates,
        clock: SharedClock,
        commands: mpsc::Receiver<FeedCommand>,
        status: Arc<FeedStatus>,
    ) -> Self {
        // Auto-resizing with 3 significant figures cannot fail to build.
        let latency_ns = hdrhistogram::Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfig is valid"));
        Feed {
            cfg,
            proto,
            ingress,
            symbols,
            gates,
            clock,
            commands,
            status,
            counters: FeedCounters::default(),
            msgs: Vec::with_capacity(64),
            released: Vec::with_capacity(64),
            controls: Vec::new(),
            backlog: VecDeque::new(),
            backlog_peak: 0,
            fill_queue: VecDeque::new(),
            session: SessionState::Down,
            awaiting_sub: false,
            sub_sent_ns: 0,
            ingress_closed: false,
            last_recv_ns: 0,
            live: HashSet::new(),
            report: FeedReport {
                counters: FeedCounters::default(),
                ws: Default::default(),
                reconnects: 0,
                pushed: 0,
                server_errors: 0,
                subscribed: Vec::new(),
                pending_at_end: 0,
                backlog_max: 0,
                backlog_at_end: 0,
                history_requests: 0,
                history_bars: 0,
                warm_start_bars: 0,
                history_errors: 0,
                history_log: Vec::new(),
                commands: 0,
                command_errors: 0,
                pending_dropped: 0,
                latency_ns,
                end: FeedEnd::Stopped,
            },
        }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Make a log line and hand it to the sink; nothing is made without a sink. `make` gets the
    /// symbol map (to name a symbol) and returns (symbol, detail).
    fn log(&self, level: LogLevel, kind: &'static str, make: impl FnOnce(&SymbolMap) -> (Option<String>, String)) {
        if let Some(sink) = &self.cfg.log {
            let (symbol, detail) = make(&self.symbols);
            sink(&FeedLogLine { ts_ns: self.now(), level, kind, symbol, detail });
        }
    }

    fn set_session(&mut self, s: SessionState) {
        self.session = s;
        self.status.state.store(s as u8, Ordering::Relaxed);
    }

    /// An event entered the ingress.
    fn published(&mut self, ev: &Event, recv_ns: i64) {
        self.report.pushed += 1;
        if ev.as_bar().is_some() {
            self.status.bars_pushed.fetch_add(1, Ordering::Relaxed);
        }
        if recv_ns != NO_FRAME {
            let lat = self.now().saturating_sub(recv_ns).max(0);
            // Auto-resizing: recording cannot fail for a non-negative value.
            let _ = self.report.latency_ns.record(lat.unsigned_abs());
        }
    }

    /// Publish an event, or queue it behind the backlog (never waits).
    fn publish(&mut self, ev: Event, recv_ns: i64) {
        if self.backlog.is_empty() {
            match self.ingress.try_push(ev) {
                Ok(()) => return self.published(&ev, recv_ns),
                Err(IngressFull(ev)) => {
                    self.backlog.push_back((ev, recv_ns));
                    self.log(LogLevel::Warn, "backlog_start", |_| {
                        (None, "the ingress is full: events wait in the backlog, in order".to_owned())
                    });
                }
            }
        } else {
            self.backlog.push_back((ev, recv_ns));
        }
        self.backlog_peak = self.backlog_peak.max(self.backlog.len());
        self.report.backlog_max = self.report.backlog_max.max(self.backlog.len());
    }

    /// Move what fits from the backlog into the ingress, in order.
    fn retry_backlog(&mut self) {
        while let Some(&(ev, recv_ns)) = self.backlog.front() {
            // A full ingress is not asked (each refusal would be counted as one).
            if self.ingress.is_full() || self.ingress.try_push(ev).is_err() {
                self.ingress_closed = self.ingress.is_closed();
                return;
            }
            self.backlog.pop_front();
            self.published(&ev, recv_ns);
        }
        self.backlog_drained();
    }

    /// After a retry: log the end of a backlog that just emptied.
    fn backlog_drained(&mut self) {
        if self.backlog.is_empty() && self.backlog_peak > 0 {
            let peak = std::mem::take(&mut self.backlog_peak);
            self.log(LogLevel::Info, "backlog_end", |_| (None, format!("drained, longest {peak}")));
        }
    }

    /// At a stop: the socket is closed, so waiting for room is fine now.
    fn flush_backlog_waiting(&mut self) {
        while let Some((ev, recv_ns)) = self.backlog.pop_front() {
            if self.ingress.push(ev).is_err() {
                self.backlog.push_front((ev, recv_ns));
                self.ingress_closed = true;
                return;
            }
            self.published(&ev, recv_ns);
        }
        self.backlog_drained();
    }

    fn publish_released(&mut self) {
        let released = std::mem::take(&mut self.released);
        for r in &released {
            self.publish(r.event(), r.ts_recv_ns);
        }
        self.released = released;
        self.released.clear();
    }

    /// Decode one frame; bars go through the gates, quotes and trades are published, control
    /// messages wait for the loop (which owns the client).
    fn on_frame(&mut self, frame: &[u8], recv_ns: i64) {
        self.last_recv_ns = recv_ns;
        self.msgs.clear();
        self.proto.decode(frame, recv_ns, &self.symbols, &mut self.counters, &mut self.msgs);
        let msgs = std::mem::take(&mut self.msgs);
        for m in &msgs {
            match m {
                FeedMsg::Bar(u) => {
                    let reordered = self.counters.reordered;
                    let offer = self.gates.offer(u, &mut self.counters, &mut self.released);
                    if offer != Offer::New {
                        self.log_offer(offer, u.symbol, u.bar.ts_event_ns);
                    } else if self.counters.reordered != reordered {
                        self.log(LogLevel::Info, "reordered", |m| {
                            let w = rfc3339(u.bar.ts_event_ns);
                            (
                                m.name_of(u.symbol).map(str::to_owned),
                                format!("window {w}: arrived after a later window; put back in order"),
                            )
                        });
                    }
                    self.publish_released();
                }
                FeedMsg::Quote { ts_recv_ns, .. } | FeedMsg::Trade { ts_recv_ns, .. } => {
                    if let Some(ev) = m.event() {
                        self.publish(ev, *ts_recv_ns);
                    }
                }
                FeedMsg::Control(c) => self.controls.push(c.clone()),
                // Counted by the decoder.
                FeedMsg::Rejected(r) => self.log(LogLevel::Warn, "rejected", |_| {
                    let sym = engine::records::unpack_name(&r.symbol).filter(|n| !n.is_empty()).map(str::to_owned);
                    let what = if r.msg_type.is_empty() { "frame" } else { r.msg_type };
                    let field = if r.field.is_empty() { String::new() } else { format!(", field {}", r.field) };
                    (sym, format!("{:?}: {what} message refused{field}", r.kind))
                }),
            }
        }
        self.msgs = msgs;
    }

    /// Log a live bar that did not open a new window.
    fn log_offer(&self, offer: Offer, symbol: SymbolId, start_ns: i64) {
        let (level, kind, detail): (_, _, fn(i64, Option<i64>) -> String) = match offer {
            Offer::New => return,
            Offer::Duplicate => (LogLevel::Info, "duplicate", |w, _| format!("window {}", rfc3339(w))),
            Offer::Updated => {
                (LogLevel::Info, "updated", |w, _| format!("window {}: pending version replaced", rfc3339(w)))
            }
            Offer::Late { .. } => (LogLevel::Warn, "late", |w, r| {
                format!(
                    "window {}: at or before the last released {}; not released",
                    rfc3339(w),
                    rfc3339(r.unwrap_or(w))
                )
            }),
        };
        let released = match offer {
            Offer::Late { released_through_ns } => Some(released_through_ns),
            _ => None,
        };
        self.log(level, kind, |m| (m.name_of(symbol).map(str::to_owned), detail(start_ns, released)));
    }

    /// Act on the control messages of the last poll; `Some` ends the feed.
    fn on_controls(&mut self, client: &mut WsClient) -> Option<FeedEnd> {
        let controls = std::mem::take(&mut self.controls);
        for c in &controls {
            match self.proto.control(c) {
                ControlAction::Authenticated if self.session == SessionState::Authenticating => {
                    self.set_session(SessionState::Live);
                    // A new server session: every symbol is subscribed and filled again.
                    self.fill_queue.clear();
                    let names: Vec<String> = self.symbols.names().into_iter().map(str::to_owned).collect();
                    self.subscribe(client, &names);
                }
                ControlAction::Subscribed => self.awaiting_sub = false,
                ControlAction::Authenticated | ControlAction::Ignore => {}
                ControlAction::Continue => {
                    self.report.server_errors += 1;
                    self.log(LogLevel::Warn, "server_error", |_| (None, format!("{}; continue", describe(c))));
                }
                ControlAction::Reconnect => {
                    self.report.server_errors += 1;
                    self.log(LogLevel::Warn, "server_error", |_| (None, format!("{}; reconnect", describe(c))));
                    client.close();
                }
                ControlAction::Fatal(e) => {
                    self.log(LogLevel::Error, "server_error", |_| (None, format!("{}; fatal", describe(c))));
                    return Some(FeedEnd::Fatal(e));
                }
            }
        }
        None
    }

    /// Subscribe `names` on the live connection, then queue their history (their gates hold
    /// live bars until it is in).
    fn subscribe(&mut self, client: &mut WsClient, names: &[String]) {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Some(msg) = self.proto.subscription(Action::Subscribe, &refs) {
            // A failed send closed the connection: the client reconnects and subscribes again.
            if client.send_text(&msg).is_ok() {
                self.awaiting_sub = true;
                self.sub_sent_ns = self.now();
            }
        }
        if self.cfg.history.is_none() {
            self.go_live(&refs);
            return;
        }
        for id in refs.iter().filter_map(|n| self.symbols.get(n)) {
            self.gates.hold(id);
        }
        for chunk in names.chunks(self.cfg.history_chunk.max(1)) {
            self.fill_queue.push_back(chunk.to_vec());
        }
    }

    /// Fetch the history of the next queued batch (on a live session) and stop holding its
    /// symbols' gates; `Some` ends the feed.
    fn next_fill(&mut self) -> Option<FeedEnd> {
        if self.awaiting_sub && self.now().saturating_sub(self.sub_sent_ns) >= self.cfg.ws.dead_after_ns {
            self.awaiting_sub = false; // a server that never confirms: fetch anyway
        }
        if self.session != SessionState::Live || self.awaiting_sub {
            return None; // the next session queues every symbol again; or not confirmed yet
        }
        let batch = self.fill_queue.pop_front()?;
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let res = self.fill_from_history(&refs);
        for id in refs.iter().filter_map(|n| self.symbols.get(n)) {
            self.gates.unhold(id);
        }
        if res.is_ok() {
            self.go_live(&refs);
        }
        res.err()
    }

    /// Publish a `LiveStart` for each symbol of `names` that has not had one: its warm-start
    /// history (if any) is in the ingress, what follows is live (risk's `warmup_gate` opens).
    fn go_live(&mut self, names: &[&str]) {
        if !self.cfg.live_start {
            return;
        }
        let now = (self.clock)();
        let ids: Vec<SymbolId> = names.iter().filter_map(|n| self.symbols.get(n)).collect();
        for id in ids {
            if self.live.insert(id) {
                let mut ev = Event::control(ControlKind::LiveStart, now, [0; 4]);
                ev.symbol = id;
                self.publish(ev, NO_FRAME);
            }
        }
    }

    /// Warm start (symbols with nothing released) and gap backfill (the others) from history:
    /// see the [module docs](super).
    fn fill_from_history(&mut self, names: &[&str]) -> Result<(), FeedEnd> {
        let Some(history) = self.cfg.history.as_mut() else { return Ok(()) };
        let now = (self.clock)();
        let mut bars: Vec<HistBar> = Vec::new();
        // (symbol, interval secs) whose requests are backfills.
        let mut backfill: HashSet<(SymbolId, u32)> = HashSet::new();
        let mut errors: Vec<HistoryError> = Vec::new();
        for iv in self.proto.intervals() {
            let ivn = iv.nanos().max(1);
            let to = now.div_euclid(ivn) * ivn;
            // One request per start time: symbols released through the same window (the usual
            // case after a reconnect) share a backfill request; fresh symbols share the warm start.
            let mut requests: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
            for &name in names {
                let Some(id) = self.symbols.get(name) else { continue };
                let from = match self.gates.gate(id, iv).and_then(|g| g.released_through_ns()) {
                    Some(last) => {
                        backfill.insert((id, iv.secs));
                        last.saturating_add(ivn)
                    }
                    None if self.cfg.warm_start_ns > 0 => now.saturating_sub(self.cfg.warm_start_ns),
                    None => continue,
                };
                requests.entry(from).or_default().push(name);
            }
            for (from, syms) in requests {
                if from >= to {
                    continue;
                }
                self.report.history_requests += 1;
                match history.bars(&syms, iv, from, to, &self.symbols, &mut self.counters) {
                    Ok(mut got) => {
                        // Only what was asked for: the gates must not see a window past `to`.
                        got.retain(|h| h.interval == iv && (from..to).contains(&h.bar.ts_event_ns));
                        bars.append(&mut got);
                    }
                    Err(e @ HistoryError::Auth { .. }) => {
                        self.log(LogLevel::Error, "history_failed", |_| (None, format!("{e}; fatal")));
                        return Err(FeedEnd::Fatal(FatalError::History(e)));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        for e in errors {
            self.log(LogLevel::Warn, "history_failed", |_| (None, format!("{e}; going on live")));
            self.report.history_errors += 1;
            if self.report.history_log.len() < HISTORY_LOG_MAX {
                self.report.history_log.push(e.to_string());
            }
        }
        self.report.history_bars += bars.len() as u64;
        crate::order_history(&mut bars);
        // Live windows already final go first, so every symbol's history follows them in
        // window order across symbols too.
        self.gates.flush(now, &mut self.counters, &mut self.released);
        self.publish_released();
        // Per symbol: windows backfilled, first and last (for the `gap_filled` lines).
        let mut filled: BTreeMap<SymbolId, (u64, i64, i64)> = BTreeMap::new();
        for h in &bars {
            let offer =
                self.gates.offer_final(h.symbol, h.interval, &h.bar, now, &mut self.counters, &mut self.released);
            if offer == Offer::New {
                if backfill.contains(&(h.symbol, h.interval.secs)) {
                    self.counters.gaps_filled += 1;
                    let t = h.bar.ts_event_ns;
                    let e = filled.entry(h.symbol).or_insert((0, t, t));
                    *e = (e.0 + 1, e.1.min(t), e.2.max(t));
                } else {
                    self.report.warm_start_bars += 1;
                }
            }
            // The history bar itself came from no frame (no latency sample); live windows it
            // released before it did.
            let released = std::mem::take(&mut self.released);
            for r in &released {
                let from_history = (r.symbol, r.interval, r.bar) == (h.symbol, h.interval, h.bar);
                self.publish(r.event(), if from_history { NO_FRAME } else { r.ts_recv_ns });
            }
            self.released = released;
            self.released.clear();
        }
        for (id, (n, first, last)) in filled {
            self.log(LogLevel::Info, "gap_filled", |m| {
                (
                    m.name_of(id).map(str::to_owned),
                    format!("{n} windows {}..={} from history", rfc3339(first), rfc3339(last)),
                )
            });
        }
        Ok(())
    }

    /// Apply universe changes; `Some` ends the feed (a fatal history error).
    fn on_commands(&mut self, client: &mut WsClient) -> Option<FeedEnd> {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                FeedCommand::Subscribe { name, id } => {
                    if self.symbols.get(&name) == Some(id) {
                        continue;
                    }
                    if self.symbols.insert(&name, id).is_err() {
                        self.report.command_errors += 1;
                        continue;
                    }
                    self.report.commands += 1;
                    if self.session == SessionState::Live {
                        self.subscribe(client, std::slice::from_ref(&name));
                    }
                }
                FeedCommand::Unsubscribe { name } => {
                    let Some(id) = self.symbols.remove(&name) else { continue };
                    self.report.commands += 1;
                    self.report.pending_dropped += self.gates.remove_symbol(id);
                    if self.session == SessionState::Live
                        && let Some(msg) = self.proto.subscription(Action::Unsubscribe, &[&name])
                    {
                        let _ = client.send_text(&msg);
                    }
                }
            }
        }
        None
    }

    fn on_transition(&mut self, t: Transition, client: &mut WsClient) {
        self.proto.reset();
        self.awaiting_sub = false;
        match t {
            Transition::Opened => {
                let ws = client.counters();
                self.log(LogLevel::Info, "connected", |_| {
                    (None, format!("connection {} opened to {}", ws.opens, self.cfg.url))
                });
                if ws.reconnects > 0 {
                    self.log(LogLevel::Warn, "reconnected", |_| (None, format!("reconnect {}", ws.reconnects)));
                }
                let auth = self.proto.auth_message();
                match client.send_text(&auth) {
                    Ok(()) => self.set_session(SessionState::Authenticating),
                    // The connection closed under the send: a `Closed` transition follows.
                    Err(_) => self.set_session(SessionState::Down),
                }
            }
            Transition::Closed { reason, retry_at_ns } => {
                self.log(LogLevel::Warn, "disconnected", |_| {
                    let wait_ms = retry_at_ns.saturating_sub(self.now()).max(0) / 1_000_000;
                    (None, format!("{reason}; retry in {wait_ms} ms (feed clock)"))
                });
                self.set_session(SessionState::Down);
            }
        }
    }

    fn update_status(&self, client: &WsClient) {
        let s = &self.status;
        s.messages.store(self.counters.messages, Ordering::Relaxed);
        s.reconnects.store(client.counters().reconnects, Ordering::Relaxed);
        s.last_recv_ns.store(self.last_recv_ns, Ordering::Relaxed);
        s.backlog.store(self.backlog.len() as u64, Ordering::Relaxed);
        s.duplicates.store(self.counters.duplicates, Ordering::Relaxed);
        s.late.store(self.counters.late, Ordering::Relaxed);
        s.refused.store(self.counters.parse_errors, Ordering::Relaxed);
    }

    pub(super) fn run(mut self, mut poll: Poll, mut client: WsClient, stop: &AtomicBool) -> FeedReport {
        let mut events = Events::with_capacity(16);
        let clock = self.clock.clone();
        let end = loop {
            if stop.load(Ordering::Relaxed) {
                client.close();
                self.gates.drain(clock(), &mut self.counters, &mut self.released);
                self.publish_released();
                self.flush_backlog_waiting();
                break if self.ingress_closed { FeedEnd::IngressClosed } else { FeedEnd::Stopped };
            }
            if let Some(end) = self.on_commands(&mut client) {
                client.close();
                break end;
            }
            let now = clock();
            let wait_ns = client.next_deadline_ns().saturating_sub(now).clamp(0, self.cfg.max_wait_ns.max(0));
            // The wait is on the feed's clock; the poll's timeout is wall time.
            let speed = self.cfg.clock_speed;
            let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
            let mut wall_ns = (wait_ns as f64 / speed) as u64;
            if !self.backlog.is_empty() {
                wall_ns = wall_ns.min(BACKLOG_WAIT_NS);
            }
            match poll.poll(&mut events, Some(Duration::from_nanos(wall_ns))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break FeedEnd::Io(e.to_string()),
            }
            // Polling the client without readiness is cheap (it reads until it would block).
            let t = client.poll(&*clock, &mut |frame: &[u8], recv_ns| self.on_frame(frame, recv_ns));
            if let Some(end) = self.on_controls(&mut client) {
                client.close();
                break end;
            }
            if let Some(t) = t {
                self.on_transition(t, &mut client);
            }
            if let Some(end) = self.next_fill() {
                client.close();
                break end;
            }
            self.gates.flush(clock(), &mut self.counters, &mut self.released);
            self.publish_released();
            self.retry_backlog();
            self.update_status(&client);
            if self.ingress_closed {
                client.close();
                break FeedEnd::IngressClosed;
            }
        };
        self.update_status(&client);
        let level = if matches!(end, FeedEnd::Fatal(_) | FeedEnd::Io(_)) { LogLevel::Error } else { LogLevel::Info };
        self.log(level, "ended", |_| {
            let why = match &end {
                FeedEnd::Stopped => "stopped".to_owned(),
                FeedEnd::IngressClosed => "the run ended (ingress closed)".to_owned(),
                FeedEnd::Fatal(e) => format!("fatal: {e}"),
                FeedEnd::Io(e) => format!("poll failed: {e}"),
            };
            (None, why)
        });
        let ws = client.counters();
        FeedReport {
            counters: self.counters,
            ws,
            reconnects: ws.reconnects,
            subscribed: self.proto.confirmed(),
            pending_at_end: self.gates.pending(),
            backlog_at_end: self.backlog.len(),
            end,
            ..self.report
        }
    }
}

/// A control message for a log line (the server's words; never a secret).
fn describe(c: &Control) -> String {
    match c {
        Control::Error(e, msg) => format!("{e} ({msg})"),
        Control::AuthFailed(msg) => format!("auth_failed ({msg})"),
        Control::Status { status, message } => format!("{status} ({message})"),
        other => format!("{other:?}"),
    }
}

/// RFC 3339 UTC of a ns timestamp (the number itself when out of range).
fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| ns.to_string(), |t| t.to_string())
}
