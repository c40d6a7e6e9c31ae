//! The gateway's stream thread: `trade_updates` into execution reports, reconciles after each
//! connect, cancel-on-disconnect.

use super::{Broker, Shared, reconcile::reconcile, wall_ns};
use crate::broker::{StreamEvent, TradeUpdatesClient};
use crate::feed::LogLevel;
use engine::records::Reason;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) fn stream_loop(s: &Shared, broker: &dyn Broker, mut stream: TradeUpdatesClient) {
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut started = false;
    let mut asked = 0;
    // Wall time for the socket (pings, dead-connection detection, receive stamps for the hooks).
    let clock = wall_ns;
    while !s.live.stopping.load(Ordering::Acquire) {
        stream.poll(Duration::from_millis(20), &clock, &mut events);
        for ev in events.drain(..) {
            match ev {
                StreamEvent::Connected => {
                    s.live.connects.fetch_add(1, Ordering::Relaxed);
                    s.live.connected.store(true, Ordering::Release);
                    s.log(LogLevel::Info, "connected", None, "trade_updates authorized and listening".into());
                    reconcile(s, broker, !started);
                    started = true;
                }
                StreamEvent::Update(u) => {
                    let now = s.now();
                    s.book().on_update(&u, now, &mut out);
                    s.send_received(&out, u.recv_ns);
                    out.clear();
                }
                StreamEvent::Disconnected { reason } => {
                    s.live.disconnects.fetch_add(1, Ordering::Relaxed);
                    s.live.connected.store(false, Ordering::Release);
                    s.log(LogLevel::Warn, "disconnected", None, reason);
                    if s.cfg.cancel_on_disconnect && !s.book().live().is_empty() {
                        s.live.cancel_all_on_disconnect.fetch_add(1, Ordering::Relaxed);
                        {
                            let mut book = s.book();
                            for id in book.live() {
                                if let Some(e) = book.get_mut(id) {
                                    e.cancel_reason = Some(Reason::Disconnected);
                                }
                            }
                        }
                        match broker.cancel_all() {
                            Ok(n) => {
                                s.log(LogLevel::Warn, "cancel_all", None, format!("{n} orders (cancel on disconnect)"))
                            }
                            Err(e) => s.log(LogLevel::Error, "cancel_all", None, e.to_string()),
                        }
                    }
                }
                StreamEvent::AuthFailed { message } => {
                    s.live.auth_failed.store(true, Ordering::Release);
                    s.log(LogLevel::Error, "auth_failed", None, message);
                    stream.close();
                    return;
                }
            }
        }
        let want = s.live.reconcile_asked.load(Ordering::Acquire);
        if want != asked && started {
            asked = want;
            reconcile(s, broker, false);
        }
    }
    stream.close();
}
