//! `ringtape paper --broker alpaca`: orders go through the broker gateway (feeds::gateway) to
//! Alpaca's trading API — its paper account by default, a live account only with `[broker] live
//! = true` and `--confirm-live` — or, with `--demo`, to the local exchange's paper broker over the
//! same REST and trade_updates protocols. The engine sees a [`RemoteVenue`]; the broker's answers
//! come back through the sequencer and are journaled, so `ringtape replay` reproduces the run.
//!
//! **Start.** The gateway connects the trade_updates stream and reconciles (orders of an earlier
//! session with the `pp-` prefix are taken over, positions compared) before the feed starts.
//! Refused credentials end the command with exit 1 before anything trades.
//!
//! **Shutdown** ([`wind_down`]): after the feed stopped, new entries are halted
//! ([`Event::halt`]), every symbol's working orders are canceled (or, with `risk.flatten_at_end`,
//! the symbol is flattened: cancels plus a closing market order), the broker's confirmations are
//! awaited (bounded by `shutdown_wait_s`), and a last reconcile runs. Then the pipeline ends.

use super::config::{BrokerKind, MismatchPolicy, PaperFile};
use super::feed::Session;
use crate::exit::bad_input;
use anyhow::Result;
use engine::pipeline::Ingress;
use engine::records::{Event, Reason, ReconcilePolicy, SymbolId};
use engine::symbols::SymbolTable;
use engine::venue::{RemoteVenue, remote_venue};
use feeds::broker::{Tif, TradeUpdatesClient, TradingConfig, TradingRest};
use feeds::credentials::{Credentials, Secret};
use feeds::feed::FeedLog;
use feeds::gateway::{self, GatewayConfig, GatewayHandle, GatewayStatus};
use feeds::ws::TlsConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The prefix of every paper session's id (`pp-xxxxxxxx`): client order ids that start with it
/// are ringtape's own.
pub(crate) const OWN_PREFIX: &str = "pp-";

/// A broker chosen and checked, nothing started.
pub(crate) struct Plan {
    trading: TradingConfig,
    policy: ReconcilePolicy,
    cancel_on_disconnect: bool,
    queue: usize,
    pub shutdown_wait: Duration,
    pub live: bool,
}

impl Plan {
    /// What `journal.meta.json` says of the broker (no secret).
    pub fn meta(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "alpaca",
            "trading_url": self.trading.base_url,
            "stream_url": self.trading.stream_url,
            "live": self.live,
            "on_mismatch": self.policy.as_str(),
            "cancel_on_disconnect": self.cancel_on_disconnect,
        })
    }

    /// One line for the banner.
    pub fn banner(&self) -> String {
        format!(
            "broker: alpaca {} at {} (trade_updates {}), on mismatch {}",
            if self.live { "LIVE (real money)" } else { "paper" },
            self.trading.base_url,
            self.trading.stream_url,
            self.policy.as_str()
        )
    }
}

/// The broker the flags and `[broker]` ask for: `None` for the simulated venue. `demo`: the
/// session's local exchange is the broker (its paper broker, its credentials and certificate).
pub(crate) fn plan(
    file: &PaperFile,
    session: &Session,
    broker_flag: Option<&str>,
    demo: bool,
    confirm_live: bool,
    what: &str,
) -> Result<Option<Plan>> {
    let b = &file.broker;
    let kind = match broker_flag {
        None => b.kind,
        Some("sim") => BrokerKind::Sim,
        Some("alpaca") => BrokerKind::Alpaca,
        Some(other) => {
            return Err(bad_input(format!("--broker {other}: use `sim` (the simulated venue) or `alpaca`")));
        }
    };
    if kind == BrokerKind::Sim {
        return Ok(None);
    }
    let timeout = Duration::from_secs_f64(b.request_timeout_s.max(0.001));
    let trading = if demo {
        // The demo's exchange serves the trading API on the same port as its market data.
        let origin = session.rest_url.trim_end_matches('/').to_string();
        let ws = origin.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        TradingConfig {
            base_url: origin,
            stream_url: format!("{ws}/stream"),
            key_id: session.key.expose().to_string(),
            secret: Secret::new(session.secret.expose()),
            tls: session.tls.clone(),
            timeout,
            max_retries: b.max_retries,
        }
    } else {
        b.check_live(what, confirm_live)?;
        let file_path = b.credentials_file.as_deref().or(file.feed.credentials_file.as_deref());
        let creds = Credentials::load(file_path).map_err(|e| bad_input(e.to_string()))?;
        let keys = creds.alpaca().map_err(|e| bad_input(format!("[broker] {e}")))?;
        let tls =
            match b.ca_file.as_ref().or(file.feed.ca_file.as_ref()) {
                Some(p) => TlsConfig::with_extra_root_pem(std::fs::read_to_string(p).map_err(|e| {
                    bad_input(format!("{}: {e} (check [broker] ca_file, a PEM certificate)", p.display()))
                })?),
                None => TlsConfig::webpki(),
            };
        TradingConfig {
            base_url: b.trading_url(),
            stream_url: b.stream_url(),
            key_id: keys.key_id.expose().to_string(),
            secret: Secret::new(keys.secret_key.expose()),
            tls,
            timeout,
            max_retries: b.max_retries,
        }
    };
    let policy = match b.on_mismatch {
        MismatchPolicy::Adopt => ReconcilePolicy::Adopt,
        MismatchPolicy::Halt => ReconcilePolicy::Halt,
    };
    Ok(Some(Plan {
        trading,
        policy,
        cancel_on_disconnect: b.cancel_on_disconnect,
        queue: b.queue,
        shutdown_wait: Duration::from_secs_f64(b.shutdown_wait_s.max(0.0)),
        live: b.live && !demo,
    }))
}

/// Start the gateway and wait until its stream is authorized and the start reconcile is done.
pub(crate) fn start(
    plan: &Plan,
    session_id: &str,
    symbols: &SymbolTable,
    ingress: Ingress,
    clock: super::SharedClock,
    log: FeedLog,
) -> Result<(RemoteVenue, GatewayHandle)> {
    let (venue, port) = remote_venue("alpaca", plan.queue, ingress);
    let rest = TradingRest::new(&plan.trading).map_err(|e| bad_input(format!("broker: {e}")))?;
    let stream = TradeUpdatesClient::new(&plan.trading).map_err(|e| bad_input(format!("broker: {e}")))?;
    let cfg = GatewayConfig {
        session: session_id.to_string(),
        own_prefix: OWN_PREFIX.to_string(),
        policy: plan.policy,
        cancel_on_disconnect: plan.cancel_on_disconnect,
        tif: Tif::Day,
        symbols: symbols.names().to_vec(),
    };
    let gw = gateway::spawn(cfg, Arc::new(rest), stream, port, Arc::new(move || clock()), Some(log))?;
    if !gw.wait_ready(Duration::from_secs(20)) {
        let st = gw.stop();
        return Err(if st.auth_failed {
            anyhow::anyhow!(
                "the broker refused the credentials on {} (check APCA_API_KEY_ID / APCA_API_SECRET_KEY or [broker] credentials_file)",
                plan.trading.stream_url
            )
        } else {
            anyhow::anyhow!(
                "the broker's trade_updates stream at {} did not come up within 20 s (check [broker] stream_url and the network)",
                plan.trading.stream_url
            )
        });
    }
    Ok((venue, gw))
}

/// What the shutdown did, for `broker.json`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct WindDown {
    /// Orders still open at the broker when the wait ended (0 = clean).
    pub open_orders_left: usize,
    /// Positions left (with flattening on, 0 = clean).
    pub positions_left: usize,
    /// Seconds waited for the broker's confirmations.
    pub waited_s: f64,
    /// The last reconcile finished in time.
    pub reconciled: bool,
}

/// Stop new entries, cancel (or flatten) everything at the broker, wait for the confirmations,
/// reconcile once more. Call after the feed stopped and before the input ends.
pub(crate) fn wind_down(
    gw: &GatewayHandle,
    ingress: &Ingress,
    symbols: &SymbolTable,
    flatten: bool,
    wait: Duration,
    now: i64,
) -> WindDown {
    let t0 = Instant::now();
    let _ = ingress.push(Event::halt(Some(Reason::Halted), now));
    for i in 0..symbols.len() {
        let s = SymbolId(i as u32);
        let ev = if flatten { Event::flatten(s, now) } else { Event::cancel_all(s, now) };
        let _ = ingress.push(ev);
    }
    let clean = |st: &GatewayStatus| st.open_orders == 0 && (!flatten || st.positions.is_empty());
    // Give the commands a moment to reach the gateway before reading its book.
    std::thread::sleep(Duration::from_millis(50));
    while t0.elapsed() < wait && !clean(&gw.status()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let reconciled = gw.reconcile(Duration::from_secs(5));
    let st = gw.status();
    WindDown {
        open_orders_left: st.open_orders,
        positions_left: st.positions.len(),
        waited_s: t0.elapsed().as_secs_f64(),
        reconciled,
    }
}
