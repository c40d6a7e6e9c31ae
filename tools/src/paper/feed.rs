//! The paper run's market data: which provider, where, with which credentials and clock
//! ([`Session`]), and the running feed thread behind [`LiveFeed`].

use super::SharedClock;
use super::config::{PaperFile, Provider};
use super::status::FeedStatus as FeedStatus_;
use crate::exit::bad_input;
use anyhow::Result;
use engine::pipeline::Ingress;
use engine::records::SymbolId;
use engine::symbols::SymbolTable;
use feeds::credentials::{Credentials, Secret};
use feeds::feed::{
    AlpacaFeedConfig, FeedConfig, FeedHandle, FeedLog, FeedReport, FeedStatus, PolygonFeedConfig, SessionState,
    spawn_alpaca_feed, spawn_polygon_feed,
};
use feeds::rest::{AlpacaFeedName, AlpacaHistory, PolygonHistory, RestConfig};
use feeds::ws::{TlsConfig, WsConfig};
use feeds::{GateConfig, History, RejectKind, SymbolMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Everything needed to start the feed, decided before the run directory is made.
pub(crate) struct Session {
    pub provider: &'static str,
    pub stream_url: String,
    pub rest_url: String,
    pub symbols: Vec<String>,
    pub clock: SharedClock,
    pub tls: TlsConfig,
    /// Alpaca: key id and secret; Polygon: the key (twice).
    pub key: Secret,
    pub secret: Secret,
    pub feed: super::config::FeedConfig,
    /// How many times faster than the wall the session's clock runs (1 live; `--speed` in a demo).
    pub timer_scale: f64,
    /// Printed when the run starts.
    pub banner: String,
    /// Keeps an in-process exchange running for the session's life (demo).
    pub _keep: Option<Box<dyn std::any::Any + Send>>,
    /// The demo exchange's paper broker as it stands (account, positions, orders), written to
    /// `exchange.json` at the end so the run shows what the exchange's side holds.
    pub exchange_state: Option<Box<dyn Fn() -> serde_json::Value + Send + Sync>>,
}

/// How a feed thread ended, for `feed.json` and the summary.
pub(crate) struct FeedEnd {
    pub json: serde_json::Value,
    /// Set when the feed ended by itself on an error (refused credentials, ...).
    pub failure: Option<String>,
}

/// A running feed thread.
pub(crate) trait LiveFeed: Send + Sync {
    /// Its live counters.
    fn status(&self) -> FeedStatus_;
    /// True once the thread ended (by itself or after a stop).
    fn finished(&self) -> bool;
    /// Stop it and wait: it releases the bar windows it holds into the ingress first.
    fn stop_and_join(&self) -> FeedEnd;
}

/// The session the config file describes (real providers, credentials from the file or the
/// environment, the wall clock).
pub(crate) fn configured(file: &PaperFile, what: &str) -> Result<Session> {
    let f = &file.feed;
    if f.symbols.is_empty() {
        return Err(bad_input(format!(
            "{what}: [feed] symbols is empty (list the symbols to trade, e.g. symbols = [\"AAPL\"]), or run `ringtape paper --demo`"
        )));
    }
    let creds = Credentials::load(f.credentials_file.as_deref()).map_err(|e| bad_input(e.to_string()))?;
    let (key, secret) = match f.provider {
        Provider::Alpaca => {
            let k = creds.alpaca().map_err(|e| bad_input(e.to_string()))?;
            (k.key_id.clone(), k.secret_key.clone())
        }
        Provider::Polygon => {
            let k = creds.polygon().map_err(|e| bad_input(e.to_string()))?;
            (k.clone(), k.clone())
        }
    };
    let tls = match &f.ca_file {
        Some(p) => TlsConfig::with_extra_root_pem(
            std::fs::read_to_string(p).map_err(|e| bad_input(format!("{}: {e} (feed.ca_file)", p.display())))?,
        ),
        None => TlsConfig::webpki(),
    };
    let (stream_url, rest_url) = match f.provider {
        Provider::Alpaca => (
            f.stream_url.clone().unwrap_or_else(|| "wss://stream.data.alpaca.markets/v2/iex".into()),
            f.rest_url.clone().unwrap_or_else(|| "https://data.alpaca.markets".into()),
        ),
        Provider::Polygon => (
            f.stream_url.clone().unwrap_or_else(|| "wss://socket.polygon.io/stocks".into()),
            f.rest_url.clone().unwrap_or_else(|| "https://api.polygon.io".into()),
        ),
    };
    let tls = if stream_url.starts_with("ws://") { TlsConfig::Plain } else { tls };
    Ok(Session {
        provider: f.provider.as_str(),
        banner: format!(
            "paper: {} feed {stream_url}, {} symbol(s); Ctrl-C stops",
            f.provider.as_str(),
            f.symbols.len()
        ),
        stream_url,
        rest_url,
        symbols: f.symbols.clone(),
        clock: super::wall_clock(),
        tls,
        key,
        secret,
        feed: f.clone(),
        timer_scale: 1.0,
        _keep: None,
        exchange_state: None,
    })
}

/// Start the session's feed thread, pushing into `ingress`: warm start and gap backfill from the
/// provider's REST history, a `LiveStart` per symbol once its history is in (risk's warm-up
/// gate), transport timers scaled to the session's clock.
pub(crate) fn start(s: &Session, symbols: &SymbolTable, ingress: Ingress, log: FeedLog) -> Result<Arc<dyn LiveFeed>> {
    let mut map = SymbolMap::new();
    for (i, name) in symbols.names().iter().enumerate() {
        map.insert(name, SymbolId(i as u32)).map_err(|e| bad_input(format!("symbol {name:?}: {e}")))?;
    }
    let rest_tls = if s.rest_url.starts_with("http://") { TlsConfig::Plain } else { s.tls.clone() };
    let rest = RestConfig::new(s.rest_url.clone(), rest_tls);
    let history: Box<dyn History> = match s.feed.provider {
        Provider::Alpaca => Box::new(
            AlpacaHistory::new(rest, s.key.clone(), s.secret.clone(), alpaca_feed_name(&s.stream_url))
                .map_err(|e| bad_input(format!("feed.rest_url {}: {e}", s.rest_url)))?,
        ),
        Provider::Polygon => Box::new(
            PolygonHistory::new(rest, s.key.clone())
                .map_err(|e| bad_input(format!("feed.rest_url {}: {e}", s.rest_url)))?,
        ),
    };
    let mut fc = FeedConfig::new(s.stream_url.clone(), s.tls.clone());
    fc.ws = scaled(&fc.ws, s.timer_scale);
    fc.max_wait_ns = (fc.max_wait_ns as f64 * s.timer_scale) as i64;
    fc.gate = GateConfig { grace_ns: s.feed.grace_ms as i64 * 1_000_000, release_on_later: false };
    fc.history = Some(history);
    fc.warm_start_ns = i64::from(s.feed.warm_start_min) * 60_000_000_000;
    fc.live_start = true;
    // Deadlines are on the session's clock; the socket wait converts them to wall time.
    fc.clock_speed = s.timer_scale;
    fc.log = Some(log);
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Arc::clone(&s.clock);
    let handle = match s.feed.provider {
        Provider::Alpaca => {
            let mut cfg = AlpacaFeedConfig::new(s.stream_url.clone(), s.tls.clone(), s.key.clone(), s.secret.clone());
            cfg.feed = fc;
            cfg.quotes = s.feed.quotes;
            spawn_alpaca_feed(cfg, ingress, map, clock, stop)
        }
        Provider::Polygon => {
            let mut cfg = PolygonFeedConfig::new(s.stream_url.clone(), s.tls.clone(), s.key.clone());
            cfg.feed = fc;
            spawn_polygon_feed(cfg, ingress, map, clock, stop)
        }
    }
    .map_err(|e| bad_input(format!("feed.stream_url {}: {e}", s.stream_url)))?;
    let status = Arc::clone(handle.status());
    Ok(Arc::new(Running { handle: Mutex::new(Some(handle)), status }))
}

/// `iex` unless the stream URL asks for `sip`.
fn alpaca_feed_name(stream_url: &str) -> AlpacaFeedName {
    if stream_url.trim_end_matches('/').ends_with("/sip") { AlpacaFeedName::Sip } else { AlpacaFeedName::Iex }
}

/// The transport's timers are in the session clock's nanoseconds: on a market clock running
/// `scale` times faster than the wall (a demo), they are stretched so they mean the same wall time.
fn scaled(ws: &WsConfig, scale: f64) -> WsConfig {
    let k = |ns: i64| (ns as f64 * scale) as i64;
    WsConfig {
        ping_interval_ns: k(ws.ping_interval_ns),
        dead_after_ns: k(ws.dead_after_ns),
        connect_timeout_ns: k(ws.connect_timeout_ns),
        backoff_base_ns: k(ws.backoff_base_ns),
        backoff_cap_ns: k(ws.backoff_cap_ns),
        jitter_seed: ws.jitter_seed,
    }
}

struct Running {
    handle: Mutex<Option<FeedHandle>>,
    status: Arc<FeedStatus>,
}

impl LiveFeed for Running {
    fn status(&self) -> FeedStatus_ {
        let st = self.status.snapshot();
        let finished = self.finished();
        FeedStatus_ {
            state: match (finished, st.state) {
                (true, _) => "ended",
                (false, SessionState::Down) => "down",
                (false, SessionState::Authenticating) => "auth",
                (false, SessionState::Live) => "live",
            },
            messages: st.messages,
            pushed: st.bars_pushed,
            reconnects: st.reconnects,
            last_recv_ns: st.last_recv_ns,
            backlog: st.backlog,
            drops: st.refused,
            duplicates: st.duplicates,
            late: st.late,
        }
    }

    fn finished(&self) -> bool {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(FeedHandle::is_finished)
    }

    fn stop_and_join(&self) -> FeedEnd {
        let Some(h) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return FeedEnd { json: serde_json::json!({"error": "the feed was already joined"}), failure: None };
        };
        h.stop();
        match h.join() {
            Ok(r) => report_json(&r),
            Err(_) => FeedEnd {
                json: serde_json::json!({"end": "panicked"}),
                failure: Some("the feed thread panicked".into()),
            },
        }
    }
}

/// `feed.json`: the feed's counters, history, transport and receive-to-publish latency.
fn report_json(r: &FeedReport) -> FeedEnd {
    let c = &r.counters;
    let failure = match &r.end {
        feeds::feed::FeedEnd::Stopped | feeds::feed::FeedEnd::IngressClosed => None,
        feeds::feed::FeedEnd::Fatal(e) => Some(e.to_string()),
        feeds::feed::FeedEnd::Io(e) => Some(format!("poll: {e}")),
    };
    let rejects: serde_json::Map<String, serde_json::Value> = RejectKind::ALL
        .iter()
        .zip(c.rejects.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (format!("{k:?}"), serde_json::json!(n)))
        .collect();
    let h = &r.latency_ns;
    let q = |p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p) };
    let json = serde_json::json!({
        "end": format!("{:?}", r.end),
        "pushed": r.pushed,
        "reconnects": r.reconnects,
        "server_errors": r.server_errors,
        "subscribed": r.subscribed,
        "backlog_max": r.backlog_max,
        "pending_at_end": r.pending_at_end,
        "history": {"requests": r.history_requests, "bars": r.history_bars, "warm_start_bars": r.warm_start_bars,
            "errors": r.history_errors, "log": r.history_log},
        "counters": {"frames": c.frames, "messages": c.messages, "bars": c.bars, "updated_bars": c.updated_bars,
            "quotes": c.quotes, "trades": c.trades, "control": c.control, "unknown_types": c.unknown_types,
            "unknown_symbols": c.unknown_symbols, "parse_errors": c.parse_errors, "new_windows": c.new_windows,
            "updated": c.updated, "duplicates": c.duplicates, "late": c.late, "reordered": c.reordered,
            "released": c.released,
            "gaps_seen": c.gaps_seen, "windows_missing": c.windows_missing, "gaps_filled": c.gaps_filled,
            "rejects": rejects},
        "ws": {"attempts": r.ws.attempts, "opens": r.ws.opens, "reconnects": r.ws.reconnects,
            "connect_failures": r.ws.connect_failures, "dead_detected": r.ws.dead_detected,
            "pings_sent": r.ws.pings_sent, "frames": r.ws.frames},
        "receive_to_publish_ns": {"samples": h.len(), "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": h.max()},
    });
    FeedEnd { json, failure }
}
