//! Alpaca's historical bars (PROTOCOLS.md 1.2) over [`RestClient`].

use super::{Header, RestClient, RestConfig, RestConfigError, RestCounters, check_next, encode, keep_window, scrub};
use crate::credentials::Secret;
use crate::history::{History, HistoryError};
use crate::{FeedCounters, HistBar, SymbolMap, alpaca};
use engine::records::Interval;

/// Alpaca's data feed (`feed=` of the bars request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlpacaFeedName {
    /// IEX only (the free plan).
    Iex,
    /// All US exchanges (a paid plan).
    Sip,
}

impl AlpacaFeedName {
    /// The query value (`iex`, `sip`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlpacaFeedName::Iex => "iex",
            AlpacaFeedName::Sip => "sip",
        }
    }
}

/// Alpaca historical bars, one request chain per batch of symbols:
///
/// ```text
/// GET {base}/v2/stocks/bars?symbols=A,B&timeframe=1Min&start=RFC3339&end=RFC3339&limit=10000
///     &feed=iex&adjustment=raw&sort=asc[&page_token=T]
/// APCA-API-KEY-ID: ...
/// APCA-API-SECRET-KEY: ...
/// ```
///
/// Symbols go in batches of [`AlpacaHistory::with_batch`] (100 by default), each batch paged
/// until `next_page_token` is null; both page shapes (multi-symbol `"bars":{...}` and
/// single-symbol `"bars":[...],"symbol":...`) are read by [`crate::alpaca::decode_bars_page`].
///
/// **Window.** `start` is `from_ns` rounded down to the second and `end` is `to_ns` rounded up
/// to the second. Alpaca's `end` is inclusive, so a bar starting exactly at `to_ns` can come
/// back: every bar is filtered to window start in `[from_ns, to_ns)` after decoding, and those
/// outside are dropped (not counted as rejections; they were decoded fine).
pub struct AlpacaHistory {
    rest: RestClient,
    key_id: Secret,
    secret_key: Secret,
    feed: AlpacaFeedName,
    batch: usize,
    limit: u32,
}

impl std::fmt::Debug for AlpacaHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpacaHistory")
            .field("rest", &self.rest)
            .field("key_id", &self.key_id)
            .field("secret_key", &self.secret_key)
            .field("feed", &self.feed)
            .field("batch", &self.batch)
            .finish()
    }
}

impl AlpacaHistory {
    /// A client for `cfg.base_url` (`https://data.alpaca.markets`, or a local exchange).
    pub fn new(
        cfg: RestConfig,
        key_id: Secret,
        secret_key: Secret,
        feed: AlpacaFeedName,
    ) -> Result<Self, RestConfigError> {
        Ok(AlpacaHistory { rest: RestClient::new(cfg)?, key_id, secret_key, feed, batch: 100, limit: 10_000 })
    }

    /// Symbols per request (at least 1; default 100, which keeps the URL well under 2 KB).
    pub fn with_batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Bars per page asked for (`limit=`, 1..=10000; default 10000).
    pub fn with_page_limit(mut self, n: u32) -> Self {
        self.limit = n.clamp(1, 10_000);
        self
    }

    /// Replace how retry delays are waited out (see [`RestClient::with_sleep`]).
    pub fn with_sleep(mut self, sleep: impl FnMut(std::time::Duration) + Send + 'static) -> Self {
        self.rest = self.rest.with_sleep(sleep);
        self
    }

    /// What the HTTP layer did so far.
    pub fn rest_counters(&self) -> RestCounters {
        self.rest.counters()
    }

    /// The first page's URL of one batch (`page_token` appended for the next ones).
    fn url(&self, symbols: &[&str], timeframe: &str, start: &str, end: &str) -> String {
        let syms: Vec<String> = symbols.iter().map(|s| encode(s)).collect();
        format!(
            "{}/v2/stocks/bars?symbols={}&timeframe={timeframe}&start={}&end={}&limit={}&feed={}&adjustment=raw&sort=asc",
            self.rest.base_url(),
            syms.join(","),
            encode(start),
            encode(end),
            self.limit,
            self.feed.as_str(),
        )
    }
}

/// RFC 3339 UTC text of whole seconds since the epoch.
pub(crate) fn rfc3339(secs: i64) -> Result<String, HistoryError> {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .map_err(|_| HistoryError::Payload(format!("history time {secs} s is out of range")))
}

impl History for AlpacaHistory {
    fn bars(
        &mut self,
        symbols: &[&str],
        interval: Interval,
        from_ns: i64,
        to_ns: i64,
        map: &SymbolMap,
        counters: &mut FeedCounters,
    ) -> Result<Vec<HistBar>, HistoryError> {
        let known = super::known_symbols(symbols, map, counters);
        let mut out = Vec::new();
        if known.is_empty() || from_ns >= to_ns {
            return Ok(out);
        }
        let timeframe = alpaca::timeframe(interval)
            .ok_or_else(|| HistoryError::Payload(format!("Alpaca has no timeframe for {} s bars", interval.secs)))?;
        let start = rfc3339(from_ns.div_euclid(1_000_000_000))?;
        let end = rfc3339(to_ns.div_euclid(1_000_000_000) + i64::from(to_ns.rem_euclid(1_000_000_000) != 0))?;
        let names: Vec<&str> = known.iter().map(|(s, _)| *s).collect();
        let max_pages = self.rest.config().max_pages;
        for batch in names.chunks(self.batch) {
            let first = self.url(batch, &timeframe, &start, &end);
            let mut token: Option<String> = None;
            let mut pages = 0u32;
            loop {
                let url = match &token {
                    Some(t) => format!("{first}&page_token={}", encode(t)),
                    None => first.clone(),
                };
                let headers: [Header<'_>; 2] =
                    [("APCA-API-KEY-ID", self.key_id.expose()), ("APCA-API-SECRET-KEY", self.secret_key.expose())];
                let body = self.rest.get(&url, &headers, &[])?;
                let page = alpaca::decode_bars_page(&body, interval, map, counters)
                    .map_err(|e| HistoryError::Payload(scrub(e.to_string(), headers.iter().map(|h| h.1))))?;
                self.rest.count_page();
                pages += 1;
                keep_window(page.bars, from_ns, to_ns, &mut out);
                check_next(&page.next, &token, pages, max_pages)?;
                match page.next {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}
