//! Blocking REST history clients: [`AlpacaHistory`] and [`PolygonHistory`] implement
//! [`crate::History`] over a small HTTP layer ([`RestClient`]) with bounded retries.
//!
//! **Contract.** A client runs on a feed's own thread (warm start before the stream, gap backfill
//! after a reconnect) and blocks it while it waits; it never runs on a hot-path thread. It opens
//! its own connections (kept alive between pages), spawns no thread (no lookup timeout is set,
//! so ureq resolves names on the calling thread) and reads no clock of ours
//! (retry delays are slept through an injectable sleep, [`RestClient::with_sleep`]).
//!
//! **Why ureq.** ureq 3 is a well-kept, widely used blocking HTTP/1.1 client: no async runtime
//! (this crate has none and wants none), rustls over ring (the same TLS stack as the websocket
//! transport, no aws-lc, no OpenSSL), webpki roots bundled, keep-alive pooling, per-phase
//! timeouts, and a small dependency tree. A hand-written HTTP/1.1 + TLS client would be less code
//! to compile but more to get right (chunked bodies, pooling, timeouts).
//!
//! **TLS.** The base URL's scheme must match the [`TlsConfig`]: `https://` with
//! [`TlsConfig::Verified`], `http://` with [`TlsConfig::Plain`] (loopback tests, a local exchange
//! started plain). With no extra roots the server is verified against the bundled webpki roots.
//! With extra roots (a local exchange's generated certificate) the client trusts exactly those
//! roots: ureq takes either its bundled roots or a list of certificates, and a client only ever
//! talks to its one base URL (Polygon's `next_url` must stay on that origin), so the public roots
//! would never be used for it anyway.
//!
//! **Retries** ([`RestClient::get`], [`RestClient::post_form`]): HTTP 429 waits `Retry-After` seconds when the server sends
//! them (capped at [`RestConfig::retry_after_cap`]; the HTTP-date form is not read), else an exponential backoff with seeded
//! jitter ([`crate::ws::Backoff`]), and gives up with [`HistoryError::RateLimited`] after
//! [`RestConfig::max_attempts`] requests. 5xx statuses and transport failures (connect, reset,
//! timeout, a body cut short) are retried with the same backoff, then reported as
//! [`HistoryError::Status`] or [`HistoryError::Transport`]. 401/403 are [`HistoryError::Auth`] at
//! once; any other status is [`HistoryError::Status`] with the first
//! [`STATUS_BODY_BYTES`] bytes of the body. Redirects are not followed (a 3xx is a `Status`
//! error): credentials are sent to the configured origin only.
//!
//! **Symbols.** Requested symbols the [`SymbolMap`] does not know are never requested: each is
//! refused and counted once (an `UnknownSymbol` rejection with `msg_type` `"request"`, also
//! counted in `messages`). Bars a page carries for an unknown symbol are refused one by one by
//! the decoders. Bars outside `[from_ns, to_ns)` are dropped silently (providers' ranges are
//! inclusive at the end; see each client for how the window is sent).
//!
//! **Secrets.** Keys travel in request headers only, never in a URL. Errors never contain them
//! (every header value is also scrubbed from error text, in case a server echoes it), and the
//! clients' `Debug` prints `***` for them. ureq redacts credential headers in its own `debug`
//! logs, but its `trace` level dumps the wire unredacted: never enable `trace` for the `ureq`
//! target.
//!
//! ```no_run
//! use engine::records::{Interval, SymbolId};
//! use feeds::credentials::Secret;
//! use feeds::rest::{AlpacaFeedName, AlpacaHistory, RestConfig};
//! use feeds::ws::TlsConfig;
//! use feeds::{FeedCounters, History, SymbolMap};
//!
//! let mut map = SymbolMap::new();
//! map.insert("AAPL", SymbolId(0)).unwrap();
//! let cfg = RestConfig::new("https://data.alpaca.markets", TlsConfig::webpki());
//! let mut hist = AlpacaHistory::new(cfg, Secret::new("PK..."), Secret::new("..."), AlpacaFeedName::Iex)?;
//! let (from_ns, to_ns) = (1_709_303_400_000_000_000, 1_709_326_800_000_000_000);
//! let mut counters = FeedCounters::default();
//! let bars = hist.bars(&["AAPL"], Interval::M1, from_ns, to_ns, &map, &mut counters)?;
//! println!("{} bars, {:?}", bars.len(), hist.rest_counters());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alpaca;
mod polygon;

pub use alpaca::{AlpacaFeedName, AlpacaHistory};
pub use polygon::PolygonHistory;

use crate::history::HistoryError;
use crate::msg::{Reject, RejectKind};
use crate::ws::{Backoff, TlsConfig};
use crate::{FeedCounters, HistBar, SymbolMap};
use engine::records::{SymbolId, pack_name};
use std::time::Duration;
use ureq::http::Uri;

/// How many bytes of an error response's body a [`HistoryError::Status`] keeps.
pub const STATUS_BODY_BYTES: usize = 200;

/// Where and how a REST client connects, and how hard it retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// `https://host[:port]` (or `http://` with [`TlsConfig::Plain`]), without a path.
    pub base_url: String,
    /// How to secure the connection (see the [module docs](self)).
    pub tls: TlsConfig,
    /// TCP connect timeout. Name lookup is left to the system resolver and its own timeouts
    /// (a ureq lookup timeout would spawn a thread per lookup).
    pub connect_timeout: Duration,
    /// Longest wait for any single read (TLS handshake, headers, body).
    pub read_timeout: Duration,
    /// Longest wait for the response head after the request was sent, and separately for the
    /// whole body to arrive.
    pub response_timeout: Duration,
    /// Requests per page at most (the first try included), for 429, 5xx and transport failures.
    pub max_attempts: u32,
    /// First retry delay (before jitter).
    pub backoff_base: Duration,
    /// Largest retry delay.
    pub backoff_cap: Duration,
    /// Largest `Retry-After` honoured (longer requests are cut to this).
    pub retry_after_cap: Duration,
    /// Seed of the backoff jitter (deterministic delays for a seed).
    pub jitter_seed: u64,
    /// A response body larger than this is refused ([`HistoryError::Payload`]).
    pub max_body_bytes: u64,
    /// Pages per request chain at most (a server that never stops paging is an error).
    pub max_pages: u32,
}

impl RestConfig {
    /// Defaults for a base URL: 10 s connect, 30 s per read, 120 s for the response head and for the body, 5 attempts,
    /// backoff 0.5 s doubling to 30 s, `Retry-After` up to 60 s, 64 MiB bodies, 10 000 pages.
    pub fn new(base_url: impl Into<String>, tls: TlsConfig) -> Self {
        RestConfig {
            base_url: base_url.into(),
            tls,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(120),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
            jitter_seed: 0x5EED_4E57,
            max_body_bytes: 64 << 20,
            max_pages: 10_000,
        }
    }
}

/// What a REST client did (a plain `Copy` struct the owner snapshots into metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestCounters {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Pages decoded.
    pub pages: u64,
    /// Requests repeated after a 429, a 5xx or a transport failure.
    pub retries: u64,
    /// HTTP 429 responses.
    pub rate_limited: u64,
    /// HTTP 5xx responses.
    pub server_errors: u64,
    /// Response body bytes read (successful responses).
    pub bytes: u64,
}

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestConfigError {
    /// The base URL does not parse, has no host, or has a path or query.
    #[error("bad REST base URL {url:?}: {why}")]
    BadUrl {
        /// The URL as configured (it never holds a key: keys travel in headers).
        url: String,
        /// What is wrong.
        why: String,
    },
    /// `https://` without TLS or `http://` with it.
    #[error("REST base URL {url:?} does not match the TLS setting ({tls})")]
    SchemeMismatch {
        /// The URL as configured.
        url: String,
        /// `plain` or `verified`.
        tls: &'static str,
    },
    /// An extra root certificate is not usable PEM.
    #[error("extra root certificate: {0}")]
    Pem(String),
}

/// Scheme, host and port of a URL (the port defaulted from the scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL, `None` for anything else.
    pub(crate) fn of(url: &str) -> Option<Origin> {
        let uri: Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Origin { scheme, host, port: uri.port_u16().unwrap_or(default_port) })
    }
}

type Sleep = Box<dyn FnMut(Duration) + Send>;

/// A blocking HTTP GET client for one origin, with the retry policy of the
/// [module docs](self). Shared by [`AlpacaHistory`] and [`PolygonHistory`].
pub struct RestClient {
    agent: ureq::Agent,
    base_url: String,
    origin: Origin,
    cfg: RestConfig,
    backoff: Backoff,
    counters: RestCounters,
    sleep: Sleep,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient").field("base_url", &self.base_url).field("counters", &self.counters).finish()
    }
}

/// One header to send; its value is scrubbed from every error text.
pub(crate) type Header<'a> = (&'static str, &'a str);

impl RestClient {
    /// Build the client: check the base URL against the TLS setting, build the root store and
    /// the ureq agent (no proxy from the environment, no redirects, HTTP statuses returned as
    /// responses, the configured timeouts).
    pub fn new(cfg: RestConfig) -> Result<Self, RestConfigError> {
        let (agent, base_url, origin) = build_agent(&cfg)?;
        let backoff = Backoff::new(dur_ns(cfg.backoff_base), dur_ns(cfg.backoff_cap), cfg.jitter_seed);
        Ok(RestClient {
            agent,
            base_url,
            origin,
            cfg,
            backoff,
            counters: RestCounters::default(),
            sleep: Box::new(std::thread::sleep),
        })
    }

    /// Replace how retry delays are waited out (default: `std::thread::sleep`). Tests record the
    /// delays instead of sleeping.
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The configuration.
    pub fn config(&self) -> &RestConfig {
        &self.cfg
    }

    /// What the client did so far.
    pub fn counters(&self) -> RestCounters {
        self.counters
    }

    /// Count one decoded page.
    pub(crate) fn count_page(&mut self) {
        self.counters.pages += 1;
    }

    /// Whether `url` has the base URL's scheme, host and port (only then may credentials go to it).
    pub fn same_origin(&self, url: &str) -> bool {
        Origin::of(url).is_some_and(|o| o == self.origin)
    }

    /// GET `url` with `headers` and return the body of a 2xx response, retrying as the
    /// [module docs](self) say. Every header value and every string of `secrets` is replaced
    /// by `***` in error texts (in case a server echoes a credential back). A `url` that is not
    /// on the base URL's origin is refused without a request ([`HistoryError::Transport`]), so
    /// `headers` only ever go to the configured origin.
    pub fn get(&mut self, url: &str, headers: &[Header<'_>], secrets: &[&str]) -> Result<Vec<u8>, HistoryError> {
        self.request(url, None, headers, secrets)
    }

    /// POST `form` (`application/x-www-form-urlencoded` pairs, encoded here) to `url`, with the
    /// same origin check, retries and scrubbing as [`RestClient::get`]. For RPC-style history
    /// APIs that take their parameters as a form (Databento's `timeseries.get_range`).
    pub fn post_form(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[Header<'_>],
        secrets: &[&str],
    ) -> Result<Vec<u8>, HistoryError> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        self.request(url, Some(body.join("&").as_bytes()), headers, secrets)
    }

    /// GET (no `form`) or POST a form body, with the retry policy.
    fn request(
        &mut self,
        url: &str,
        form: Option<&[u8]>,
        headers: &[Header<'_>],
        secrets: &[&str],
    ) -> Result<Vec<u8>, HistoryError> {
        if !self.same_origin(url) {
            return Err(HistoryError::Transport(format!(
                "refusing a request outside {} (credentials go to the configured origin only)",
                self.base_url
            )));
        }
        let max = self.cfg.max_attempts.max(1);
        self.backoff.reset();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.counters.retries += 1;
            }
            self.counters.requests += 1;
            let (err, delay) = match self.once(url, form, headers, secrets) {
                Ok(body) => return Ok(body),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::RateLimited { retry_after }) => {
                    self.counters.rate_limited += 1;
                    let delay = match retry_after {
                        Some(d) => d.min(self.cfg.retry_after_cap),
                        None => self.next_backoff(),
                    };
                    (HistoryError::RateLimited { attempts: attempt }, delay)
                }
                Err(Failure::Retry(e)) => (e, self.next_backoff()),
            };
            if attempt >= max {
                return Err(err);
            }
            (self.sleep)(delay);
        }
    }

    fn next_backoff(&mut self) -> Duration {
        Duration::from_nanos(self.backoff.next_delay_ns().max(0) as u64)
    }

    /// One request and its classification.
    fn once(
        &mut self,
        url: &str,
        form: Option<&[u8]>,
        headers: &[Header<'_>],
        secrets: &[&str],
    ) -> Result<Vec<u8>, Failure> {
        let scrub = |s: String| scrub(scrub(s, headers.iter().map(|h| h.1)), secrets.iter().copied());
        let sent = match form {
            None => {
                let mut req = self.agent.get(url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            Some(body) => {
                let mut req = self.agent.post(url).header("Content-Type", "application/x-www-form-urlencoded");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send(body)
            }
        };
        let mut resp = sent.map_err(|e| transport(e, &scrub))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(self.cfg.max_body_bytes)
                    .read_to_vec()
                    .map_err(|e| transport(e, &scrub))?;
                self.counters.bytes += body.len() as u64;
                Ok(body)
            }
            401 | 403 => Err(Failure::Fatal(HistoryError::Auth { status })),
            429 => {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(Failure::RateLimited { retry_after })
            }
            _ => {
                // The start of the body only (an error page can be large; a cut body is fine).
                let head = resp.body_mut().with_config().limit(64 * 1024).read_to_vec().unwrap_or_default();
                let body = scrub(body_start(&head));
                let e = HistoryError::Status { status, body };
                if status >= 500 {
                    self.counters.server_errors += 1;
                    Err(Failure::Retry(e))
                } else {
                    Err(Failure::Fatal(e))
                }
            }
        }
    }
}

/// The ureq agent of a client for `cfg`: the base URL checked against the TLS setting (no path
/// or query), the root store built, no proxy from the environment, no redirects, HTTP statuses
/// returned as responses, the configured timeouts. Returns the agent, the base URL without a
/// trailing `/`, and its origin. Shared with the broker's trading client.
pub(crate) fn build_agent(cfg: &RestConfig) -> Result<(ureq::Agent, String, Origin), RestConfigError> {
    let base_url = cfg.base_url.trim_end_matches('/').to_owned();
    let bad = |why: &str| RestConfigError::BadUrl { url: cfg.base_url.clone(), why: why.to_owned() };
    let origin = Origin::of(&base_url).ok_or_else(|| bad("not an absolute http:// or https:// URL"))?;
    let uri: Uri = base_url.parse().map_err(|_| bad("does not parse"))?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/" && !pq.as_str().is_empty()) {
        return Err(bad("has a path or query (give scheme, host and port only)"));
    }
    let tls = match (&cfg.tls, origin.scheme.as_str()) {
        (TlsConfig::Plain, "http") => None,
        (TlsConfig::Verified { extra_roots_pem }, "https") => Some(tls_config(extra_roots_pem)?),
        (TlsConfig::Plain, _) => {
            return Err(RestConfigError::SchemeMismatch { url: cfg.base_url.clone(), tls: "plain" });
        }
        (TlsConfig::Verified { .. }, _) => {
            return Err(RestConfigError::SchemeMismatch { url: cfg.base_url.clone(), tls: "verified" });
        }
    };
    let mut builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(tls.is_some())
        .proxy(None)
        .max_redirects(0)
        .user_agent(concat!("ringtape/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .timeout_recv_response(Some(cfg.response_timeout))
        .timeout_recv_body(Some(cfg.response_timeout));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls);
    }
    Ok((builder.build().new_agent(), base_url, origin))
}

/// How one request failed.
enum Failure {
    /// Give up now.
    Fatal(HistoryError),
    /// HTTP 429, with the server's `Retry-After` in seconds if it sent one.
    RateLimited { retry_after: Option<Duration> },
    /// Worth another try (5xx, transport).
    Retry(HistoryError),
}

fn transport(e: ureq::Error, scrub: &impl Fn(String) -> String) -> Failure {
    let retry = matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    );
    match e {
        ureq::Error::BodyExceedsLimit(n) => {
            Failure::Fatal(HistoryError::Payload(format!("history response body larger than {n} bytes")))
        }
        e if retry => Failure::Retry(HistoryError::Transport(scrub(e.to_string()))),
        e => Failure::Fatal(HistoryError::Transport(scrub(e.to_string()))),
    }
}

/// Replace every one of `secrets` in `s` by `***`.
pub(crate) fn scrub<'a>(mut s: String, secrets: impl IntoIterator<Item = &'a str>) -> String {
    for v in secrets {
        if !v.is_empty() && s.contains(v) {
            s = s.replace(v, "***");
        }
    }
    s
}

/// The first [`STATUS_BODY_BYTES`] bytes of a body as text (cut on a character boundary).
fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(STATUS_BODY_BYTES)]);
    text.trim().trim_end_matches('\u{FFFD}').to_owned()
}

pub(crate) fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The ureq TLS setup: webpki roots, or exactly the given extra roots.
fn tls_config(extra_roots_pem: &[String]) -> Result<ureq::tls::TlsConfig, RestConfigError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let builder = TlsConfig::builder().provider(TlsProvider::Rustls);
    if extra_roots_pem.is_empty() {
        return Ok(builder.root_certs(RootCerts::WebPki).build());
    }
    let mut certs = Vec::new();
    for pem in extra_roots_pem {
        let before = certs.len();
        for item in ureq::tls::parse_pem(pem.as_bytes()) {
            match item.map_err(|e| RestConfigError::Pem(e.to_string()))? {
                PemItem::Certificate(c) => certs.push(c),
                _ => return Err(RestConfigError::Pem("a private key where a certificate was expected".into())),
            }
        }
        if certs.len() == before {
            return Err(RestConfigError::Pem("no CERTIFICATE block in the extra root".into()));
        }
    }
    Ok(builder.root_certs(RootCerts::new_with_certs(&certs)).build())
}

/// Percent-encode a query value or path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Split the requested symbols into known ones (kept, in order, deduplicated) and unknown ones
/// (refused and counted as one `UnknownSymbol` message each, never requested).
pub(crate) fn known_symbols<'s>(
    symbols: &[&'s str],
    map: &SymbolMap,
    counters: &mut FeedCounters,
) -> Vec<(&'s str, SymbolId)> {
    let mut known: Vec<(&str, SymbolId)> = Vec::with_capacity(symbols.len());
    for &s in symbols {
        match map.get(s) {
            Some(id) => {
                if !known.iter().any(|(k, _)| *k == s) {
                    known.push((s, id));
                }
            }
            None => {
                let mut r = Reject::new(RejectKind::UnknownSymbol, "symbols");
                r.msg_type = "request";
                r.symbol = pack_name(s);
                counters.messages += 1;
                counters.reject(&r);
            }
        }
    }
    known
}

/// Keep the bars with window start in `[from_ns, to_ns)` (providers' ends are inclusive).
pub(crate) fn keep_window(bars: Vec<HistBar>, from_ns: i64, to_ns: i64, out: &mut Vec<HistBar>) {
    out.extend(bars.into_iter().filter(|h| (from_ns..to_ns).contains(&h.bar.ts_event_ns)));
}

/// Paging guard shared by both providers (they follow `next` until `None`): refuse a chain that
/// repeats the previous token or URL, or that runs past `max_pages`.
pub(crate) fn check_next(
    next: &Option<String>,
    prev: &Option<String>,
    pages: u32,
    max_pages: u32,
) -> Result<(), HistoryError> {
    if next.is_some() && next == prev {
        return Err(HistoryError::Payload("history paging repeated the same next page".into()));
    }
    if next.is_some() && pages >= max_pages {
        return Err(HistoryError::Payload(format!("history paging ran past {max_pages} pages")));
    }
    Ok(())
}
