//! Databento historical bars over HTTP: `timeseries.get_range` for one symbol and one day at a
//! time, decoded by the DBN importer's decoder ([`crate::import_dbn::decode_reader`]).
//!
//! **The request**, matched to Databento's HTTP API reference (`https://databento.com/docs/api-reference-historical`,
//! "Time series: get_range") and to what its official clients send (databento-python
//! `databento/historical/api/timeseries.py` `TimeseriesHttpAPI.get_range` and `common/http.py`
//! `BentoHttpAPI._stream`; databento-rs `src/historical/timeseries.rs` `get_range_impl` and
//! `src/historical/client.rs`):
//!
//! ```text
//! POST {base}/v0/timeseries.get_range
//! Authorization: Basic base64(KEY:)          (HTTP basic auth: the key as user name, empty password)
//! Accept: application/octet-stream           (databento-rs; the body is not JSON)
//! Content-Type: application/x-www-form-urlencoded
//!
//! dataset=XNAS.ITCH&symbols=AAPL&schema=ohlcv-1m&start=<ns>&end=<ns>&stype_in=raw_symbol
//! &stype_out=instrument_id&encoding=dbn&compression=zstd
//! ```
//!
//! `start` is inclusive and `end` exclusive, both UNIX nanoseconds (as databento-rs sends its
//! `DateTimeRange`). The body is a DBN stream (zstd): metadata with the symbol mappings, then
//! OHLCV records whose `ts_event` is the bar's open. Symbols come from the mappings; a record
//! whose instrument id has no mapping is a counted rejection (the importer's rules, so prices stay
//! the exact 1e-9 integers DBN carries).
//!
//! **Errors**, as the official clients read them: a 4xx or 5xx body is JSON
//! `{"detail": "..."}` (or `{"detail": {"message": ...}}` for business errors), shown as is.
//! 401 means a bad key: the error says to set `DATABENTO_API_KEY`. 403 means the key may not
//! read the dataset. 429 waits `Retry-After` seconds (databento-python's batch downloader does
//! the same) and 5xx and transport failures back off and retry, through
//! [`feeds::rest::RestClient`] (bounded attempts; see its docs). Redirects are not followed.
//! A 206 (some symbols did not resolve) is a success: the stream holds the symbols that did.
//! Not read: the `X-Warning` header the official clients turn into warnings.
//!
//! **Granularity.** One symbol and one UTC day per request, like the other providers: the bar
//! file rewritten after each day is the resume checkpoint. `--to` must not pass the dataset's
//! available end (Databento answers 422 `data_end_after_available_end`, shown as is).
//!
//! **Secrets.** The key travels in the `Authorization` header only; it is scrubbed from every
//! error text and never printed or logged (`ureq` logs through `log`, which `--log` does not
//! collect).

use crate::import_dbn::{DbnReport, decode_reader};
use anyhow::{Result, anyhow};
use engine::records::{Bar, Interval};
use feeds::HistoryError;
use feeds::credentials::{DATABENTO_API_KEY, Secret};
use feeds::rest::{RestClient, RestConfig, RestConfigError};

/// Databento's historical gateway.
pub const DEFAULT_URL: &str = "https://hist.databento.com";

/// The route of `timeseries.get_range` under the base URL.
pub const GET_RANGE: &str = "/v0/timeseries.get_range";

/// A Databento historical client for one dataset.
pub struct DatabentoHistory {
    rest: RestClient,
    key: Secret,
    /// `Basic base64(KEY:)`.
    auth: String,
    dataset: String,
}

impl std::fmt::Debug for DatabentoHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabentoHistory").field("rest", &self.rest).field("dataset", &self.dataset).finish()
    }
}

/// One day of one symbol: its bars (ordered, in the window) and what the decoder reported.
#[derive(Debug)]
pub struct Fetched {
    /// Bars of the symbol asked for, strictly increasing.
    pub bars: Vec<Bar>,
    /// The decoder's counts (rejections by reason).
    pub report: DbnReport,
}

/// Standard base64 (RFC 4648, padded).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The DBN schema of an interval, if Databento has one.
pub fn schema(interval: Interval) -> Option<&'static str> {
    Some(match interval.secs {
        1 => "ohlcv-1s",
        60 => "ohlcv-1m",
        3_600 => "ohlcv-1h",
        86_400 => "ohlcv-1d",
        _ => return None,
    })
}

/// The `detail` of a Databento error body, or the body itself.
fn detail(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let d = v.as_ref().and_then(|v| v.get("detail"));
    match d {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(o) => o.get("message").and_then(|m| m.as_str()).map_or_else(|| o.to_string(), str::to_string),
        None => body.to_string(),
    }
}

impl DatabentoHistory {
    /// A client for `cfg.base_url` ([`DEFAULT_URL`], or a local exchange) and `dataset`.
    pub fn new(cfg: RestConfig, key: Secret, dataset: impl Into<String>) -> Result<Self, RestConfigError> {
        let auth = format!("Basic {}", base64(format!("{}:", key.expose()).as_bytes()));
        Ok(DatabentoHistory { rest: RestClient::new(cfg)?, key, auth, dataset: dataset.into() })
    }

    /// The bars of `symbol` at `interval` with window start in `[from_ns, to_ns)`.
    pub fn bars(&mut self, symbol: &str, interval: Interval, from_ns: i64, to_ns: i64) -> Result<Fetched> {
        let schema = schema(interval)
            .ok_or_else(|| anyhow!("Databento has no OHLCV schema for {interval} bars (1s, 1m, 1h, 1d)"))?;
        let url = format!("{}{GET_RANGE}", self.rest.base_url());
        let (start, end) = (from_ns.to_string(), to_ns.to_string());
        let form = [
            ("dataset", self.dataset.as_str()),
            ("symbols", symbol),
            ("schema", schema),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("stype_in", "raw_symbol"),
            ("stype_out", "instrument_id"),
            ("encoding", "dbn"),
            ("compression", "zstd"),
        ];
        let headers = [("Authorization", self.auth.as_str()), ("Accept", "application/octet-stream")];
        let body = self.rest.post_form(&url, &form, &headers, &[self.key.expose()]).map_err(|e| self.explain(e))?;
        let name = format!("Databento {} {symbol} response", self.dataset);
        let decoded = decode_reader(std::io::Cursor::new(&body), &name, body.len() as u64)?;
        let mut bars: Vec<Bar> = decoded
            .series
            .into_iter()
            .filter(|s| s.symbol == symbol && s.interval_s == interval.secs)
            .flat_map(|s| s.bars)
            .filter(|b| (from_ns..to_ns).contains(&b.ts_event_ns))
            .collect();
        bars.sort_by_key(|b| b.ts_event_ns);
        Ok(Fetched { bars, report: decoded.report })
    }

    /// A one-line error for a failed request, with the fix where there is one.
    fn explain(&self, e: HistoryError) -> anyhow::Error {
        match e {
            HistoryError::Auth { status: 401 } => anyhow!(
                "Databento refused the API key (HTTP 401): set {DATABENTO_API_KEY} to a valid key (or put it in the \
                 credentials file)"
            ),
            HistoryError::Auth { status } => anyhow!(
                "Databento refused the request (HTTP {status}): the key in {DATABENTO_API_KEY} may not read dataset \
                 {} (check --dataset and the key's permissions)",
                self.dataset
            ),
            HistoryError::Status { status, body } => anyhow!("Databento answered HTTP {status}: {}", detail(&body)),
            HistoryError::RateLimited { attempts } => anyhow!(
                "Databento rate limit (HTTP 429) still in force after {attempts} attempts; wait and run the same \
                 command again"
            ),
            other => anyhow!("Databento: {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_details() {
        assert_eq!(base64(b"key:"), "a2V5Og==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
        assert_eq!(detail(r#"{"detail":"bad symbol"}"#), "bad symbol");
        assert_eq!(detail(r#"{"detail":{"case":"x","message":"m","docs":"d"}}"#), "m");
        assert_eq!(detail("plain"), "plain");
        assert_eq!(schema(Interval::M1), Some("ohlcv-1m"));
        assert_eq!(schema(Interval { secs: 300 }), None);
    }
}
