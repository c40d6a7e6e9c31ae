//! Runtime metrics of a paper run: the engine's counters and gauges and the feed's status, taken
//! once a second (the status period) on the calling thread. Each sample is appended to
//! `metrics.jsonl` in the run directory, and, with `--metrics ADDR`, served while the run is live
//! as Prometheus text on `http://ADDR/metrics` (loopback by default; one small thread that answers
//! GETs and never touches the pipeline).
//!
//! A paper run records the engine's probes ([`engine::pipeline::probes`]), so a [`Sample`] also
//! holds every pipeline stage's latency (Prometheus `summary`
//! `ringtape_stage_latency_seconds{stage}` with quantiles 0.5, 0.9, 0.99, 0.999, `_sum` and
//! `_count`; in `metrics.jsonl` the object `stages`) and every queue's depth and high-water mark
//! (gauges `ringtape_queue_depth{queue}` and `ringtape_queue_depth_high_water{queue}`; in
//! `metrics.jsonl` the object `queues`). Latencies cover the whole run so far.
//!
//! `ringtape backtest --metrics ADDR` serves and writes the same, engine rows only
//! ([`Sample::engine`]).

use super::status::FeedStatus;
use anyhow::{Context, Result};
use engine::pipeline::Counters;
use engine::pipeline::probes::ProbeSnapshot;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

/// One sample as `(name, help, value)` rows: the session's clock, the engine's rows
/// ([`engine_rows`]), then the feed's.
pub fn sample(c: &Counters, feed: &FeedStatus, now_ns: i64) -> Vec<(&'static str, &'static str, f64)> {
    let mut rows =
        vec![("ringtape_session_time_seconds", "the run's clock (market time in a demo)", now_ns as f64 / 1e9)];
    rows.extend(engine_rows(c));
    rows.extend(feed_rows(feed, now_ns));
    rows
}

/// The engine's counters and gauges as rows (a backtest's whole sample).
pub fn engine_rows(c: &Counters) -> Vec<(&'static str, &'static str, f64)> {
    let s = c.snapshot();
    let g = &c.gauges;
    vec![
        ("ringtape_inputs_total", "inputs the sequencer took", s.published as f64),
        ("ringtape_orders_total", "orders risk accepted (strategies' and its own)", g.orders.load(Relaxed) as f64),
        (
            "ringtape_risk_refusals_total",
            "orders risk refused (summary.json has the reasons)",
            g.refused.load(Relaxed) as f64,
        ),
        ("ringtape_fills_total", "fills recorded", g.fills.load(Relaxed) as f64),
        ("ringtape_realized_pnl_usd", "realized PnL after commissions", g.realized_pnl_e9.load(Relaxed) as f64 / 1e9),
        ("ringtape_ring_full_total", "times the main ring was full (the sequencer waited)", s.ring_full as f64),
        ("ringtape_unknown_symbol_total", "events for symbols not in the universe", s.unknown_symbol as f64),
        ("ringtape_bad_events_total", "events refused as malformed", s.bad_events as f64),
        ("ringtape_venue_rejects_total", "orders the venue refused", s.venue_rejects as f64),
        ("ringtape_strategy_faults_total", "strategies that panicked", s.strategy_faults as f64),
    ]
}

/// The feed's status as rows.
fn feed_rows(feed: &FeedStatus, now_ns: i64) -> Vec<(&'static str, &'static str, f64)> {
    vec![
        ("ringtape_feed_live", "1 while the feed session is live", f64::from(u8::from(feed.state == "live"))),
        ("ringtape_feed_messages_total", "stream messages decoded", feed.messages as f64),
        ("ringtape_feed_bars_pushed_total", "bars the feed pushed into the engine", feed.pushed as f64),
        ("ringtape_feed_reconnects_total", "feed reconnects", feed.reconnects as f64),
        (
            "ringtape_feed_drops_total",
            "frames or messages the feed refused (parse errors, unknown types, rejected bars)",
            feed.drops as f64,
        ),
        (
            "ringtape_feed_duplicate_bars_total",
            "bars dropped as duplicates of a bar already had",
            feed.duplicates as f64,
        ),
        ("ringtape_feed_late_bars_total", "bars dropped as late (their window already released)", feed.late as f64),
        ("ringtape_feed_backlog", "events waiting on the feed thread (ingress full)", feed.backlog as f64),
        (
            "ringtape_feed_last_data_age_seconds",
            "session time since the last frame",
            if feed.last_recv_ns == 0 { f64::NAN } else { (now_ns - feed.last_recv_ns).max(0) as f64 / 1e9 },
        ),
    ]
}

/// The quantiles of each stage: (Prometheus label, `metrics.jsonl` key).
pub const QUANTILES: [(&str, &str); 4] = [("0.5", "p50_s"), ("0.9", "p90_s"), ("0.99", "p99_s"), ("0.999", "p999_s")];

/// One sample: the counter rows and, when the run records them, the probes.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `(name, help, value)` rows ([`sample`]).
    pub rows: Vec<(&'static str, &'static str, f64)>,
    /// Stage latencies and queue depths (None when the run's probes are off).
    pub probes: Option<ProbeSnapshot>,
}

impl Sample {
    /// Take a sample now.
    pub fn take(c: &Counters, feed: &FeedStatus, now_ns: i64) -> Self {
        Sample { rows: sample(c, feed, now_ns), probes: c.probes.snapshot() }
    }

    /// A sample of the engine alone (a backtest: no feed, no session clock).
    pub fn engine(c: &Counters) -> Self {
        Sample { rows: engine_rows(c), probes: c.probes.snapshot() }
    }

    /// The `metrics.jsonl` line: every row by name, then `stages` (per stage: `count`, `sum_s`,
    /// `p50_s`, `p90_s`, `p99_s`, `p999_s`, `max_s`; seconds) and `queues` (per queue:
    /// `current`, `high_water`).
    pub fn json(&self) -> serde_json::Value {
        let mut obj: serde_json::Map<String, serde_json::Value> =
            self.rows.iter().map(|(n, _, v)| ((*n).to_string(), serde_json::json!(v))).collect();
        if let Some(p) = &self.probes {
            let secs = |ns: u64| ns as f64 / 1e9;
            let stages: serde_json::Map<String, serde_json::Value> = p
                .stages
                .iter()
                .map(|s| {
                    let q = [s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns];
                    let mut o = serde_json::json!({"count": s.count, "sum_s": secs(s.sum_ns), "max_s": secs(s.max_ns)});
                    for ((_, key), ns) in QUANTILES.iter().zip(q) {
                        o[*key] = serde_json::json!(secs(ns));
                    }
                    (s.stage.clone(), o)
                })
                .collect();
            let queues: serde_json::Map<String, serde_json::Value> = p
                .queues
                .iter()
                .map(|q| (q.queue.clone(), serde_json::json!({"current": q.current, "high_water": q.high_water})))
                .collect();
            obj.insert("stages".into(), stages.into());
            obj.insert("queues".into(), queues.into());
        }
        serde_json::Value::Object(obj)
    }

    /// The Prometheus text exposition: the rows, then the probes.
    pub fn prometheus(&self) -> String {
        let mut s = prometheus(&self.rows);
        if let Some(p) = &self.probes {
            s.push_str(&probes_text(p));
        }
        s
    }
}

/// Prometheus text of the probes: one summary of stage latencies (seconds; quantiles are NaN
/// until a stage has samples), and two gauges per queue.
pub fn probes_text(p: &ProbeSnapshot) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let name = "ringtape_stage_latency_seconds";
    let _ = writeln!(
        s,
        "# HELP {name} pipeline stage latency since the start (ingress_wait, sequencer_to_shard, strategy, shard_to_risk, risk_to_venue, end_to_end)\n# TYPE {name} summary"
    );
    for st in &p.stages {
        let q = [st.p50_ns, st.p90_ns, st.p99_ns, st.p999_ns];
        for ((label, _), ns) in QUANTILES.iter().zip(q) {
            let v = if st.count == 0 { f64::NAN } else { ns as f64 / 1e9 };
            let _ = writeln!(s, "{name}{{stage=\"{}\",quantile=\"{label}\"}} {v}", st.stage);
        }
        let _ = writeln!(s, "{name}_sum{{stage=\"{}\"}} {}", st.stage, st.sum_ns as f64 / 1e9);
        let _ = writeln!(s, "{name}_count{{stage=\"{}\"}} {}", st.stage, st.count);
    }
    for (metric, help, value) in [
        ("ringtape_queue_depth", "events waiting in a pipeline ring or queue now", 0),
        ("ringtape_queue_depth_high_water", "most events waiting at once since the start", 1),
    ] {
        let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} gauge");
        for q in &p.queues {
            let v = if value == 0 { q.current } else { q.high_water };
            let _ = writeln!(s, "{metric}{{queue=\"{}\"}} {v}", q.queue);
        }
    }
    s
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
        c.gauges.refused.store(4, Relaxed);
        let f = FeedStatus { state: "live", pushed: 7, drops: 2, duplicates: 5, late: 6, ..Default::default() };
        let text = prometheus(&sample(&c, &f, 2_000_000_000));
        assert!(text.contains("# TYPE ringtape_fills_total counter\nringtape_fills_total 3\n"), "{text}");
        assert!(text.contains("ringtape_feed_live 1\n") && text.contains("ringtape_feed_bars_pushed_total 7\n"));
        assert!(text.contains("# TYPE ringtape_feed_backlog gauge"));
        assert!(text.contains("ringtape_feed_drops_total 2\n"), "{text}");
        assert!(text.contains("ringtape_feed_duplicate_bars_total 5\n"), "{text}");
        assert!(text.contains("ringtape_feed_late_bars_total 6\n"), "{text}");
        assert!(text.contains("ringtape_risk_refusals_total 4\n"), "{text}");
        assert!(Sample::take(&c, &f, 0).probes.is_none(), "probes off: counters only");
    }

    #[test]
    fn probes_become_a_summary_per_stage_and_two_gauges_per_queue() {
        use engine::pipeline::probes::{QueueStats, StageStats};
        let p = ProbeSnapshot {
            stages: vec![
                StageStats {
                    stage: "strategy".into(),
                    count: 3,
                    sum_ns: 6_000,
                    p50_ns: 1_000,
                    p90_ns: 2_000,
                    p99_ns: 3_000,
                    p999_ns: 3_000,
                    max_ns: 3_000,
                },
                StageStats { stage: "end_to_end".into(), ..Default::default() },
            ],
            queues: vec![QueueStats { queue: "main_ring".into(), current: 2, high_water: 9 }],
        };
        let s = Sample { rows: vec![("ringtape_fills_total", "fills", 1.0)], probes: Some(p) };
        let text = s.prometheus();
        assert!(text.contains("# TYPE ringtape_stage_latency_seconds summary\n"), "{text}");
        assert!(
            text.contains("ringtape_stage_latency_seconds{stage=\"strategy\",quantile=\"0.5\"} 0.000001\n"),
            "{text}"
        );
        assert!(text.contains("ringtape_stage_latency_seconds_count{stage=\"strategy\"} 3\n"), "{text}");
        assert!(
            text.contains("ringtape_stage_latency_seconds{stage=\"end_to_end\",quantile=\"0.99\"} NaN\n"),
            "{text}"
        );
        assert!(text.contains("ringtape_queue_depth{queue=\"main_ring\"} 2\n"), "{text}");
        assert!(text.contains("ringtape_queue_depth_high_water{queue=\"main_ring\"} 9\n"), "{text}");
        let j = s.json();
        assert_eq!(j["ringtape_fills_total"], 1.0);
        assert!((j["stages"]["strategy"]["p99_s"].as_f64().unwrap() - 3e-6).abs() < 1e-15, "{j}");
        assert_eq!(j["stages"]["strategy"]["count"], 3);
        assert_eq!(j["queues"]["main_ring"]["high_water"], 9);
    }
}
