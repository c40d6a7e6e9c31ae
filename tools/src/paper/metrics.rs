//! Runtime metrics of a paper run: the engine's counters and gauges and the feed's status, taken
//! once a second (the status period) on the calling thread. Each sample is appended to
//! `metrics.jsonl` in the run directory, and, with `--metrics ADDR`, served while the run is live
//! as Prometheus text on `http://ADDR/metrics` (loopback by default; one small thread that answers
//! GETs and never touches the pipeline).

use super::status::FeedStatus;
use anyhow::{Context, Result};
use engine::pipeline::Counters;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

/// One sample as `(name, help, value)` rows.
pub fn sample(c: &Counters, feed: &FeedStatus, now_ns: i64) -> Vec<(&'static str, &'static str, f64)> {
    let s = c.snapshot();
    let g = &c.gauges;
    vec![
        ("ringtape_session_time_seconds", "the run's clock (market time in a demo)", now_ns as f64 / 1e9),
        ("ringtape_inputs_total", "inputs the sequencer took", s.published as f64),
        ("ringtape_orders_total", "orders risk accepted (strategies' and its own)", g.orders.load(Relaxed) as f64),
        ("ringtape_fills_total", "fills recorded", g.fills.load(Relaxed) as f64),
        ("ringtape_realized_pnl_usd", "realized PnL after commissions", g.realized_pnl_e9.load(Relaxed) as f64 / 1e9),
        ("ringtape_ring_full_total", "times the main ring was full (the sequencer waited)", s.ring_full as f64),
        ("ringtape_unknown_symbol_total", "events for symbols not in the universe", s.unknown_symbol as f64),
        ("ringtape_bad_events_total", "events refused as malformed", s.bad_events as f64),
        ("ringtape_venue_rejects_total", "orders the venue refused", s.venue_rejects as f64),
        ("ringtape_strategy_faults_total", "strategies that panicked", s.strategy_faults as f64),
        ("ringtape_feed_live", "1 while the feed session is live", f64::from(u8::from(feed.state == "live"))),
        ("ringtape_feed_messages_total", "stream messages decoded", feed.messages as f64),
        ("ringtape_feed_bars_pushed_total", "bars the feed pushed into the engine", feed.pushed as f64),
        ("ringtape_feed_reconnects_total", "feed reconnects", feed.reconnects as f64),
        ("ringtape_feed_backlog", "events waiting on the feed thread (ingress full)", feed.backlog as f64),
        (
            "ringtape_feed_last_data_age_seconds",
            "session time since the last frame",
            if feed.last_recv_ns == 0 { f64::NAN } else { (now_ns - feed.last_recv_ns).max(0) as f64 / 1e9 },
        ),
    ]
}

/// Prometheus text exposition of a sample.
pub fn prometheus(rows: &[(&str, &str, f64)]) -> String {
    let mut s = String::new();
    for (name, help, v) in rows {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    }
    s
}

/// The latest exposition, served by [`serve`].
pub type Latest = Arc<Mutex<String>>;

/// Serve `latest` on `addr` (`/metrics`; anything else is 404) from a thread; returns the bound
/// address. The thread lives as long as the process (a paper run ends the process).
pub fn serve(addr: SocketAddr, latest: Latest) -> Result<SocketAddr> {
    let l = TcpListener::bind(addr).with_context(|| format!("--metrics {addr}: cannot listen there"))?;
    let bound = l.local_addr()?;
    std::thread::Builder::new().name("rt-metrics".into()).spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut line = String::new();
            let mut r = BufReader::new(&conn);
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let (status, body) = if line.starts_with("GET /metrics ") {
                ("200 OK", latest.lock().unwrap_or_else(|p| p.into_inner()).clone())
            } else {
                ("404 Not Found", "not found: try /metrics\n".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_help_type_and_value_per_metric() {
        let c = Counters::default();
        c.gauges.fills.store(3, Relaxed);
        let f = FeedStatus { state: "live", pushed: 7, ..Default::default() };
        let text = prometheus(&sample(&c, &f, 2_000_000_000));
        assert!(text.contains("# TYPE ringtape_fills_total counter\nringtape_fills_total 3\n"), "{text}");
        assert!(text.contains("ringtape_feed_live 1\n") && text.contains("ringtape_feed_bars_pushed_total 7\n"));
        assert!(text.contains("# TYPE ringtape_feed_backlog gauge"));
    }
}
