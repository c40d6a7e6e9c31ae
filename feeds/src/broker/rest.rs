//! [`TradingRest`]: Alpaca's trading REST API (orders, positions, account) over one blocking
//! ureq agent with keep-alive, built by the same code as the history clients
//! ([`crate::rest`]: TLS roots, no proxy, no redirects, per-phase timeouts).
//!
//! **What is retried, and what is not.** Every request is classified before it is repeated:
//! - HTTP 429: the request was not executed. Repeated after `Retry-After` seconds (or until
//!   `X-RateLimit-Reset`, Unix seconds, read against the wall clock), capped at 10 s, else after
//!   an exponential backoff with jitter; [`BrokerError::RateLimited`] after `max_retries`.
//! - A failure before the request was sent (name lookup, connect refused or timed out, TLS):
//!   nothing reached the broker; repeated with backoff, then [`BrokerError::Unavailable`].
//! - A 5xx, or a timeout or lost connection after sending: on reads and cancels (safe to
//!   repeat) repeated with backoff, then `Unavailable`. On requests that create or change an
//!   order (submit, replace, close a position) the outcome is unknown: never repeated blindly,
//!   reported as [`BrokerError::Unknown`]. [`TradingRest::submit_idempotent`] resolves it by
//!   looking the order up by its client order id, and only sends it again when the broker does
//!   not have it (Alpaca refuses a second order with the same client order id, so a late first
//!   copy cannot become a double: that refusal is answered by another lookup).
//! - 401, and 403 without an Alpaca error code: [`BrokerError::Auth`] at once. A 403 with a
//!   code (insufficient buying power, ...) and 422 and other 4xx are [`BrokerError::Rejected`]
//!   with Alpaca's code and message; 404 is [`BrokerError::NotFound`] (or `None` for lookups).
//!
//! **Threads.** `TradingRest` is `Send + Sync`: its methods take `&self`, counters are atomics,
//! and ureq's agent pools connections for concurrent callers. It blocks the calling thread (the
//! gateway's), never a hot-path one.
//!
//! **Secrets.** The key id and secret travel in the `APCA-API-KEY-ID`/`APCA-API-SECRET-KEY`
//! headers only; both are scrubbed (`***`) from every error text, and `Debug` shows neither.

use super::types::{
    BrokerAccount, BrokerError, BrokerOrder, BrokerPosition, NewOrder, OrderStatus, RestStats, TradingConfig,
};
use super::wire::{decode_account, decode_cancel_all, decode_error, decode_order, decode_orders, decode_positions};
use crate::credentials::Secret;
use crate::rest::{RestConfig, build_agent, dur_ns, encode, scrub};
use crate::ws::Backoff;
use engine::records::{OrderType, fmt_px};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest `Retry-After`/`X-RateLimit-Reset` wait honoured (Alpaca's window is one minute; a
/// gateway must not stall longer than this on one request).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// First retry delay (doubling, jittered).
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Largest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Largest response body read (an order list of 500 orders is well under this).
const MAX_BODY: u64 = 16 << 20;

type SleepFn = Arc<dyn Fn(Duration) + Send + Sync>;
type ClockFn = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retried_429: AtomicU64,
    retried_5xx: AtomicU64,
    retried_transport: AtomicU64,
    unknown_outcomes: AtomicU64,
    lookups: AtomicU64,
    resubmits: AtomicU64,
    rejected: AtomicU64,
    unknown_statuses: AtomicU64,
    seq: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The HTTP methods used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

/// Whether a request may be repeated when its outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Reads and cancels: repeating does no harm.
    Safe,
    /// Creates or changes an order: an unknown outcome is reported, never repeated.
    Never,
}

/// A response the retry loop hands back (any status but 429/5xx-to-retry).
struct Resp {
    status: u16,
    body: Vec<u8>,
}

/// How one try failed.
enum Try {
    /// 429 (with the wait the server asked for, if any).
    RateLimited(Option<Duration>),
    /// Nothing reached the broker (connect, TLS, lookup).
    NotSent(String),
    /// Sent, then a 5xx or a transport failure.
    AfterSend(String, bool),
    /// Give up now (e.g. an unusable response).
    Fatal(BrokerError),
}

/// Alpaca's trading REST client (see the [module docs](self)).
pub struct TradingRest {
    agent: ureq::Agent,
    base: String,
    key_id: String,
    secret: Secret,
    max_retries: u32,
    counters: Counters,
    sleep: SleepFn,
    wall_ns: ClockFn,
}

impl std::fmt::Debug for TradingRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingRest")
            .field("base", &self.base)
            .field("key_id", &"***")
            .field("secret", &self.secret)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The wall clock, ns since the epoch (only for `X-RateLimit-Reset`, an absolute time).
#[allow(clippy::disallowed_methods)] // reason: X-RateLimit-Reset is a Unix time; not strategy logic
fn system_wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl TradingRest {
    /// Build the client (no request yet). Fails on a bad base URL, a scheme not matching the
    /// TLS setting, or an unusable extra root PEM.
    pub fn new(cfg: &TradingConfig) -> Result<Self, BrokerError> {
        let mut rc = RestConfig::new(cfg.base_url.clone(), cfg.tls.clone());
        rc.connect_timeout = cfg.timeout;
        rc.read_timeout = cfg.timeout;
        rc.response_timeout = cfg.timeout;
        let (agent, base, _) = build_agent(&rc).map_err(|e| BrokerError::Config { detail: e.to_string() })?;
        if cfg.key_id.is_empty() || cfg.secret.expose().is_empty() {
            return Err(BrokerError::Config {
                detail: "empty API key id or secret: set APCA_API_KEY_ID and APCA_API_SECRET_KEY".into(),
            });
        }
        Ok(TradingRest {
            agent,
            base,
            key_id: cfg.key_id.clone(),
            secret: cfg.secret.clone(),
            max_retries: cfg.max_retries,
            counters: Counters::default(),
            sleep: Arc::new(std::thread::sleep),
            wall_ns: Arc::new(system_wall_ns),
        })
    }

    /// Replace how retry delays are waited out (default `std::thread::sleep`); tests record them.
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Arc::new(sleep);
        self
    }

    /// Replace the wall clock (ns since the epoch) used to read `X-RateLimit-Reset`.
    pub fn with_wall_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.wall_ns = Arc::new(clock);
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// What the client did so far.
    pub fn stats(&self) -> RestStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RestStats {
            requests: g(&c.requests),
            retried_429: g(&c.retried_429),
            retried_5xx: g(&c.retried_5xx),
            retried_transport: g(&c.retried_transport),
            unknown_outcomes: g(&c.unknown_outcomes),
            lookups: g(&c.lookups),
            resubmits: g(&c.resubmits),
            rejected: g(&c.rejected),
            unknown_statuses: g(&c.unknown_statuses),
        }
    }

    // ---- the API --------------------------------------------------------------------------------

    /// `POST /v2/orders`. A 429 or a failure before sending is retried (the order was not
    /// created); an outcome that is unknown is [`BrokerError::Unknown`], never retried here.
    pub fn submit(&self, o: &NewOrder) -> Result<BrokerOrder, BrokerError> {
        let body = order_body(o)?;
        let r = self.call(Method::Post, "/v2/orders", Some(&body), Repeat::Never)?;
        self.expect_order(r)
    }

    /// Idempotent submit: when the outcome is unknown (timeout/transport error after sending,
    /// 5xx), look the order up by its client order id before trying again; never creates two
    /// orders for one client order id. Tries at most `max_retries + 1` submits.
    pub fn submit_idempotent(&self, o: &NewOrder) -> Result<BrokerOrder, BrokerError> {
        let mut unknowns = 0u32;
        loop {
            match self.submit(o) {
                Ok(order) => return Ok(order),
                Err(BrokerError::Unknown { detail }) => {
                    unknowns += 1;
                    bump(&self.counters.lookups);
                    match self.order_by_client_id(&o.client_order_id) {
                        Ok(Some(order)) => return Ok(order),
                        Ok(None) if unknowns <= self.max_retries => {
                            bump(&self.counters.resubmits);
                            (self.sleep)(self.backoff(unknowns));
                        }
                        Ok(None) => return Err(BrokerError::Unknown { detail }),
                        Err(e) => {
                            return Err(BrokerError::Unknown {
                                detail: format!("{detail}; then the lookup by client order id failed: {e}"),
                            });
                        }
                    }
                }
                // A copy sent again was refused: the first copy may have landed meanwhile
                // (Alpaca refuses a duplicate client order id). Look once more.
                Err(e @ BrokerError::Rejected { .. }) if unknowns > 0 => {
                    bump(&self.counters.lookups);
                    return match self.order_by_client_id(&o.client_order_id) {
                        Ok(Some(order)) => Ok(order),
                        _ => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `GET /v2/orders:by_client_order_id`: `None` when the broker has no such order.
    pub fn order_by_client_id(&self, cid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let path = format!("/v2/orders:by_client_order_id?client_order_id={}", encode(cid));
        self.maybe_order(self.call(Method::Get, &path, None, Repeat::Safe)?)
    }

    /// `GET /v2/orders/{id}`: `None` when the broker has no such order.
    pub fn order(&self, id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let path = format!("/v2/orders/{}", encode(id));
        self.maybe_order(self.call(Method::Get, &path, None, Repeat::Safe)?)
    }

    /// `GET /v2/orders?status=open&limit=500` (Alpaca's largest page; more open orders than
    /// that are not listed).
    pub fn open_orders(&self) -> Result<Vec<BrokerOrder>, BrokerError> {
        let r = self.call(Method::Get, "/v2/orders?status=open&limit=500&direction=asc", None, Repeat::Safe)?;
        let r = self.ok_or_error(r)?;
        let orders = decode_orders(&r.body).map_err(|detail| BrokerError::Decode { detail })?;
        for o in &orders {
            self.count_status(o);
        }
        Ok(orders)
    }

    /// `DELETE /v2/orders/{id}`: `Ok` on 204 (the cancel was accepted; the final `canceled`
    /// comes on the stream); 422 (not cancelable, e.g. filled) is `Rejected`; 404 `NotFound`.
    pub fn cancel(&self, id: &str) -> Result<(), BrokerError> {
        let path = format!("/v2/orders/{}", encode(id));
        let r = self.call(Method::Delete, &path, None, Repeat::Safe)?;
        self.ok_or_error(r).map(|_| ())
    }

    /// `DELETE /v2/orders` (207 multi-status): each order's id and the HTTP status of its cancel.
    pub fn cancel_all(&self) -> Result<Vec<(String, u16)>, BrokerError> {
        let r = self.call(Method::Delete, "/v2/orders", None, Repeat::Safe)?;
        let r = self.ok_or_error(r)?;
        decode_cancel_all(&r.body).map_err(|detail| BrokerError::Decode { detail })
    }

    /// `PATCH /v2/orders/{id}`: the replacing (new) order, whose `replaces` is `id`. `None`s
    /// keep the old values. Never repeated on an unknown outcome (look the order up).
    pub fn replace(
        &self,
        id: &str,
        qty: Option<u32>,
        limit_px_e9: Option<i64>,
        stop_px_e9: Option<i64>,
        client_order_id: Option<&str>,
    ) -> Result<BrokerOrder, BrokerError> {
        let mut m = serde_json::Map::new();
        if let Some(q) = qty {
            if q == 0 {
                return Err(BrokerError::Invalid { detail: "replace with qty 0 (cancel the order instead)".into() });
            }
            m.insert("qty".into(), q.to_string().into());
        }
        if let Some(px) = limit_px_e9 {
            m.insert("limit_price".into(), price_text("limit", px)?.into());
        }
        if let Some(px) = stop_px_e9 {
            m.insert("stop_price".into(), price_text("stop", px)?.into());
        }
        if let Some(cid) = client_order_id {
            check_cid(cid)?;
            m.insert("client_order_id".into(), cid.into());
        }
        if m.is_empty() {
            return Err(BrokerError::Invalid { detail: "replace changes nothing (give qty or a price)".into() });
        }
        let body = serde_json::Value::Object(m).to_string();
        let path = format!("/v2/orders/{}", encode(id));
        let r = self.call(Method::Patch, &path, Some(&body), Repeat::Never)?;
        self.expect_order(r)
    }

    /// `GET /v2/positions` (shorts negative).
    pub fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError> {
        let r = self.call(Method::Get, "/v2/positions", None, Repeat::Safe)?;
        let r = self.ok_or_error(r)?;
        decode_positions(&r.body).map_err(|detail| BrokerError::Decode { detail })
    }

    /// `GET /v2/account`.
    pub fn account(&self) -> Result<BrokerAccount, BrokerError> {
        let r = self.call(Method::Get, "/v2/account", None, Repeat::Safe)?;
        let r = self.ok_or_error(r)?;
        decode_account(&r.body).map_err(|detail| BrokerError::Decode { detail })
    }

    /// `DELETE /v2/positions/{symbol}`: the closing order (market, whole position). Never
    /// repeated on an unknown outcome (it creates an order).
    pub fn close_position(&self, symbol: &str) -> Result<BrokerOrder, BrokerError> {
        let path = format!("/v2/positions/{}", encode(symbol));
        let r = self.call(Method::Delete, &path, None, Repeat::Never)?;
        self.expect_order(r)
    }

    // ---- plumbing -------------------------------------------------------------------------------

    fn count_status(&self, o: &BrokerOrder) {
        if matches!(o.status, OrderStatus::Unknown(_)) {
            bump(&self.counters.unknown_statuses);
        }
    }

    fn expect_order(&self, r: Resp) -> Result<BrokerOrder, BrokerError> {
        let r = self.ok_or_error(r)?;
        let o = decode_order(&r.body).map_err(|detail| BrokerError::Decode { detail })?;
        self.count_status(&o);
        Ok(o)
    }

    fn maybe_order(&self, r: Resp) -> Result<Option<BrokerOrder>, BrokerError> {
        if r.status == 404 {
            return Ok(None);
        }
        self.expect_order(r).map(Some)
    }

    /// A 2xx response, or its status turned into the error the [module docs](self) name.
    fn ok_or_error(&self, r: Resp) -> Result<Resp, BrokerError> {
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let (code, message) = decode_error(&r.body);
        let message = self.scrub(message);
        match r.status {
            401 => Err(BrokerError::Auth { status: 401 }),
            403 if code.is_none() => Err(BrokerError::Auth { status: 403 }),
            404 => Err(BrokerError::NotFound),
            status => {
                bump(&self.counters.rejected);
                Err(BrokerError::Rejected { status, code, message })
            }
        }
    }

    fn scrub(&self, s: String) -> String {
        scrub(s, [self.key_id.as_str(), self.secret.expose()])
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let seed = self.counters.seq.fetch_add(1, Ordering::Relaxed) ^ 0x5EED_B40C;
        let mut b = Backoff::new(dur_ns(BACKOFF_BASE), dur_ns(BACKOFF_CAP), seed);
        let mut d = 0;
        for _ in 0..attempt.max(1) {
            d = b.next_delay_ns();
        }
        Duration::from_nanos(d.max(0) as u64)
    }

    /// Send `method path` (with a JSON body), retrying as the [module docs](self) say; return
    /// the first response that is not retried.
    fn call(&self, method: Method, path: &str, body: Option<&str>, repeat: Repeat) -> Result<Resp, BrokerError> {
        let url = format!("{}{}", self.base, path);
        let max = self.max_retries.saturating_add(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            bump(&self.counters.requests);
            let failure = match self.once(method, &url, body) {
                Ok(r) => return Ok(r),
                Err(f) => f,
            };
            let last = attempt >= max;
            let delay = match failure {
                Try::Fatal(e) => return Err(e),
                Try::RateLimited(wait) => {
                    if last {
                        return Err(BrokerError::RateLimited { attempts: attempt });
                    }
                    bump(&self.counters.retried_429);
                    wait.map(|w| w.min(RETRY_AFTER_CAP)).unwrap_or_else(|| self.backoff(attempt))
                }
                Try::NotSent(detail) => {
                    if last {
                        return Err(BrokerError::Unavailable { detail });
                    }
                    bump(&self.counters.retried_transport);
                    self.backoff(attempt)
                }
                Try::AfterSend(detail, is_5xx) => {
                    if repeat == Repeat::Never {
                        bump(&self.counters.unknown_outcomes);
                        return Err(BrokerError::Unknown { detail });
                    }
                    if last {
                        return Err(BrokerError::Unavailable { detail });
                    }
                    bump(if is_5xx { &self.counters.retried_5xx } else { &self.counters.retried_transport });
                    self.backoff(attempt)
                }
            };
            (self.sleep)(delay);
        }
    }

    fn once(&self, method: Method, url: &str, body: Option<&str>) -> Result<Resp, Try> {
        let key = ("APCA-API-KEY-ID", self.key_id.as_str());
        let secret = ("APCA-API-SECRET-KEY", self.secret.expose());
        let sent = match (method, body) {
            (Method::Get, _) => self.agent.get(url).header(key.0, key.1).header(secret.0, secret.1).call(),
            (Method::Delete, _) => self.agent.delete(url).header(key.0, key.1).header(secret.0, secret.1).call(),
            (Method::Post | Method::Patch, b) => {
                let req = if method == Method::Post { self.agent.post(url) } else { self.agent.patch(url) };
                req.header(key.0, key.1)
                    .header(secret.0, secret.1)
                    .header("Content-Type", "application/json")
                    .send(b.unwrap_or("{}").as_bytes())
            }
        };
        let mut resp = sent.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        if status == 429 {
            return Err(Try::RateLimited(self.retry_after(resp.headers())));
        }
        let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec();
        if status >= 500 {
            let text = body.as_deref().map(|b| decode_error(b).1).unwrap_or_default();
            return Err(Try::AfterSend(self.scrub(format!("HTTP {status} from the broker: {text}")), true));
        }
        match body {
            Ok(body) => Ok(Resp { status, body }),
            Err(ureq::Error::BodyExceedsLimit(n)) => {
                Err(Try::Fatal(BrokerError::Decode { detail: format!("response body larger than {n} bytes") }))
            }
            // The broker answered (and acted) but the body was lost: unknown for a change.
            Err(e) => Err(Try::AfterSend(self.scrub(format!("response body lost: {e}")), false)),
        }
    }

    /// Whether a ureq error happened before anything was sent.
    fn transport(&self, e: ureq::Error) -> Try {
        use ureq::Timeout;
        let not_sent = match &e {
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
            ureq::Error::Timeout(t) => matches!(t, Timeout::Resolve | Timeout::Connect),
            ureq::Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable
            ),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
            _ => false,
        };
        // rustls errors reach us wrapped in io errors. Certificate and version problems happen in
        // the handshake only (nothing sent, and retrying will not help); other TLS errors may
        // come after the request went out.
        let tls_io = matches!(&e, ureq::Error::Io(io) if io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).is_some_and(|t| matches!(
            t,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::UnsupportedNameType
        )));
        let detail = self.scrub(format!("{e}"));
        match &e {
            _ if tls_io => Try::Fatal(BrokerError::Unavailable { detail: format!("TLS failed: {detail}") }),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                Try::Fatal(BrokerError::Unavailable { detail: format!("TLS or request setup failed: {detail}") })
            }
            _ if not_sent => Try::NotSent(detail),
            _ => Try::AfterSend(detail, false),
        }
    }

    /// `Retry-After` (seconds), else `X-RateLimit-Reset` (Unix seconds) against the wall clock.
    fn retry_after(&self, h: &ureq::http::HeaderMap) -> Option<Duration> {
        let num = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(s) = num("retry-after") {
            return Some(Duration::from_secs(s.max(0) as u64));
        }
        let reset_s = num("x-ratelimit-reset")?;
        let wait_ns = reset_s.saturating_mul(1_000_000_000).saturating_sub((self.wall_ns)());
        Some(Duration::from_nanos(wait_ns.max(0) as u64))
    }
}

fn check_cid(cid: &str) -> Result<(), BrokerError> {
    if cid.is_empty() || cid.len() > 128 {
        return Err(BrokerError::Invalid {
            detail: format!("client order id must be 1..=128 bytes, got {}", cid.len()),
        });
    }
    Ok(())
}

fn price_text(what: &str, px_e9: i64) -> Result<String, BrokerError> {
    if px_e9 <= 0 {
        return Err(BrokerError::Invalid { detail: format!("{what} price {} is not positive", fmt_px(px_e9, 0)) });
    }
    Ok(fmt_px(px_e9, 0))
}

/// The JSON body of `POST /v2/orders` (numbers as strings, as Alpaca documents).
pub(crate) fn order_body(o: &NewOrder) -> Result<String, BrokerError> {
    let invalid = |detail: String| Err(BrokerError::Invalid { detail });
    if o.symbol.is_empty() {
        return invalid("empty symbol".into());
    }
    if o.qty == 0 {
        return invalid(format!("{} order with qty 0", o.symbol));
    }
    check_cid(&o.client_order_id)?;
    match (o.order_type, o.limit_px_e9, o.stop_px_e9) {
        (OrderType::Market, None, None) | (OrderType::Limit, Some(_), None) | (OrderType::Stop, _, Some(_)) => {}
        (OrderType::Market, ..) => return invalid(format!("{} market order with a limit or stop price", o.symbol)),
        (OrderType::Limit, None, _) => return invalid(format!("{} limit order without a limit price", o.symbol)),
        (OrderType::Limit, Some(_), Some(_)) => {
            return invalid(format!("{} limit order with a stop price (use Stop for stop limit)", o.symbol));
        }
        (OrderType::Stop, _, None) => return invalid(format!("{} stop order without a stop price", o.symbol)),
    }
    let mut m = serde_json::Map::new();
    m.insert("symbol".into(), o.symbol.as_str().into());
    m.insert("qty".into(), o.qty.to_string().into());
    m.insert("side".into(), o.side.as_str().into());
    m.insert("type".into(), o.wire_type().into());
    m.insert("time_in_force".into(), o.tif.as_str().into());
    if let Some(px) = o.limit_px_e9 {
        m.insert("limit_price".into(), price_text("limit", px)?.into());
    }
    if let Some(px) = o.stop_px_e9 {
        m.insert("stop_price".into(), price_text("stop", px)?.into());
    }
    m.insert("client_order_id".into(), o.client_order_id.as_str().into());
    m.insert("extended_hours".into(), o.extended_hours.into());
    Ok(serde_json::Value::Object(m).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Tif;
    use engine::records::Side;

    fn order() -> NewOrder {
        NewOrder {
            symbol: "AAPL".into(),
            qty: 100,
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: Tif::Day,
            limit_px_e9: Some(189_100_000_000),
            stop_px_e9: None,
            client_order_id: "rt-42".into(),
            extended_hours: false,
        }
    }

    #[test]
    fn order_body_has_alpacas_fields_with_numbers_as_strings() {
        let v: serde_json::Value = serde_json::from_str(&order_body(&order()).unwrap()).unwrap();
        let want = serde_json::json!({"symbol":"AAPL","qty":"100","side":"buy","type":"limit","time_in_force":"day",
            "limit_price":"189.1","client_order_id":"rt-42","extended_hours":false});
        assert_eq!(v, want);
        let stop_limit = NewOrder { order_type: OrderType::Stop, stop_px_e9: Some(188_000_000_000), ..order() };
        let v: serde_json::Value = serde_json::from_str(&order_body(&stop_limit).unwrap()).unwrap();
        assert_eq!((v["type"].as_str(), v["stop_price"].as_str()), (Some("stop_limit"), Some("188")));
    }

    #[test]
    fn inconsistent_orders_are_refused_before_sending() {
        for bad in [
            NewOrder { qty: 0, ..order() },
            NewOrder { limit_px_e9: None, ..order() },
            NewOrder { order_type: OrderType::Market, ..order() },
            NewOrder { order_type: OrderType::Stop, ..order() },
            NewOrder { client_order_id: String::new(), ..order() },
            NewOrder { client_order_id: "x".repeat(129), ..order() },
            NewOrder { limit_px_e9: Some(-1), ..order() },
        ] {
            assert!(matches!(order_body(&bad), Err(BrokerError::Invalid { .. })), "{bad:?}");
        }
    }
}
