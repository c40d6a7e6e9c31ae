//! Polygon/Massive aggregates (PROTOCOLS.md 2.2) over [`RestClient`].

use super::{Header, RestClient, RestConfig, RestConfigError, RestCounters, check_next, encode, keep_window, scrub};
use crate::credentials::Secret;
use crate::history::{History, HistoryError};
use crate::{FeedCounters, HistBar, SymbolMap, polygon};
use engine::records::Interval;

/// Polygon aggregates, one request chain per symbol:
///
/// ```text
/// GET {base}/v2/aggs/ticker/{T}/range/{mult}/{span}/{from_ms}/{to_ms}?adjusted=true&sort=asc&limit=50000
/// Authorization: Bearer K
/// ```
///
/// then every `next_url` (same header) until there is none; pages are read by
/// [`crate::polygon::decode_aggs_page`].
///
/// **next_url.** The key is sent on a `next_url` page only when that URL has the configured base
/// URL's scheme, host and port; a `next_url` to any other origin (or not an absolute `http(s)`
/// URL) is a [`HistoryError::Payload`] and is never requested, with or without the key.
///
/// **Window.** `from_ms` is `from_ns` rounded down to the millisecond, `to_ms` is `to_ns` rounded
/// up; Polygon's range is inclusive at both ends, so every bar is filtered to window start in
/// `[from_ns, to_ns)` after decoding (a bar starting exactly at `to_ns` is dropped, uncounted).
/// `span` is the largest of `day`, `hour`, `minute`, `second` that divides the interval.
pub struct PolygonHistory {
    rest: RestClient,
    api_key: Secret,
    limit: u32,
}

impl std::fmt::Debug for PolygonHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolygonHistory").field("rest", &self.rest).field("api_key", &self.api_key).finish()
    }
}

/// Polygon's `{mult}/{span}` for an interval, if it has one.
pub(crate) fn range(i: Interval) -> Option<(u32, &'static str)> {
    let s = i.secs;
    Some(match s {
        0 => return None,
        _ if s.is_multiple_of(86_400) => (s / 86_400, "day"),
        _ if s.is_multiple_of(3_600) => (s / 3_600, "hour"),
        _ if s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    })
}

impl PolygonHistory {
    /// A client for `cfg.base_url` (`https://api.polygon.io`, or a local exchange).
    pub fn new(cfg: RestConfig, api_key: Secret) -> Result<Self, RestConfigError> {
        Ok(PolygonHistory { rest: RestClient::new(cfg)?, api_key, limit: 50_000 })
    }

    /// Bars per page asked for (`limit=`, 1..=50000; default 50000).
    pub fn with_page_limit(mut self, n: u32) -> Self {
        self.limit = n.clamp(1, 50_000);
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

    /// Every page of one symbol.
    #[allow(clippy::too_many_arguments)] // reason: one private helper of `bars`, all plain inputs
    fn symbol(
        &mut self,
        sym: &str,
        interval: Interval,
        first: String,
        from_ns: i64,
        to_ns: i64,
        map: &SymbolMap,
        counters: &mut FeedCounters,
        out: &mut Vec<HistBar>,
    ) -> Result<(), HistoryError> {
        let bearer = format!("Bearer {}", self.api_key.expose());
        let headers: [Header<'_>; 1] = [("Authorization", &bearer)];
        let max_pages = self.rest.config().max_pages;
        let mut url = first;
        let mut prev: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let body = self.rest.get(&url, &headers, &[self.api_key.expose()])?;
            let page = polygon::decode_aggs_page(&body, interval, map, counters)
                .map_err(|e| HistoryError::Payload(scrub(e.to_string(), [bearer.as_str(), self.api_key.expose()])))?;
            self.rest.count_page();
            pages += 1;
            keep_window(page.bars, from_ns, to_ns, out);
            check_next(&page.next, &prev, pages, max_pages)?;
            let Some(next) = page.next else { return Ok(()) };
            if !self.rest.same_origin(&next) {
                return Err(HistoryError::Payload(format!(
                    "Polygon next_url for {sym} leaves {} (not followed, the key is never sent there)",
                    self.rest.base_url()
                )));
            }
            url = next.clone();
            prev = Some(next);
        }
    }
}

impl History for PolygonHistory {
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
        let (mult, span) = range(interval)
            .ok_or_else(|| HistoryError::Payload(format!("Polygon has no range for {} s bars", interval.secs)))?;
        let from_ms = from_ns.div_euclid(1_000_000);
        let to_ms = to_ns.div_euclid(1_000_000) + i64::from(to_ns.rem_euclid(1_000_000) != 0);
        for (sym, _) in known {
            let first = format!(
                "{}/v2/aggs/ticker/{}/range/{mult}/{span}/{from_ms}/{to_ms}?adjusted=true&sort=asc&limit={}",
                self.rest.base_url(),
                encode(sym),
                self.limit
            );
            self.symbol(sym, interval, first, from_ns, to_ns, map, counters, &mut out)?;
        }
        Ok(out)
    }
}
