//! The seam between a feed thread and its provider's REST history: warm start before live data
//! and gap backfill after a reconnect both ask a [`History`] for bars. The REST clients
//! (`crate::rest`) implement it for Alpaca and Polygon; tests implement it with canned bars.
//!
//! **Contract.** [`History::bars`] returns every bar of `symbols` at `interval` whose window
//! start is in `[from_ns, to_ns)`, across every page, in any order (the caller orders and
//! dedupes them with [`crate::order_history`] and its bar gates). It runs on the feed's own
//! thread (blocking I/O is allowed there, never on a hot-path thread). Symbols the map does not
//! know are refused and counted, never given a made-up id.

use crate::{FeedCounters, HistBar, SymbolMap};
use engine::records::Interval;

/// Why a history request failed as a whole (single bad bars are counted rejections instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The provider refused the credentials (HTTP 401/403). Retrying will not help.
    #[error("history request refused the credentials (HTTP {status}): check the API key and secret")]
    Auth {
        /// The HTTP status.
        status: u16,
    },
    /// Rate limited (HTTP 429) and still limited after the client's bounded retries.
    #[error("history request rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited {
        /// Requests made.
        attempts: u32,
    },
    /// Any other HTTP status; `body` is the start of the provider's message (never a secret).
    #[error("history request failed: HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The first bytes of the response body.
        body: String,
    },
    /// Connect, TLS or read failure.
    #[error("history request failed: {0}")]
    Transport(String),
    /// The payload was not the documented shape.
    #[error("{0}")]
    Payload(String),
}

/// Where history comes from (see the [module docs](self)).
pub trait History: Send {
    /// Every bar of `symbols` at `interval` with window start in `[from_ns, to_ns)`.
    fn bars(
        &mut self,
        symbols: &[&str],
        interval: Interval,
        from_ns: i64,
        to_ns: i64,
        map: &SymbolMap,
        counters: &mut FeedCounters,
    ) -> Result<Vec<HistBar>, HistoryError>;
}
