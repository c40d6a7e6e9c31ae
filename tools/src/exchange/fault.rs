//! Fault injection: the faults, their pending state, and scenario files.
//!
//! A fault is injected by `POST /control/fault` (a JSON [`Fault`], e.g. `{"kind":"disconnect"}`),
//! by [`super::ExchangeHandle::inject`], or by a scenario file (`--scenario FILE`):
//!
//! ```toml
//! [[fault]]
//! at = "2019-11-01T15:00:00Z"   # once, when market time reaches it
//! kind = "disconnect"
//!
//! [[fault]]
//! every_min = 5                 # every 5 market minutes from the start
//! kind = "duplicate_bar"
//!
//! [[fault]]
//! every_min = 7
//! kind = "stall"
//! ms = 3000
//! ```
//!
//! Every injected fault is counted (per kind) and logged on stderr.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Drop every stream session abruptly (no close frame).
    Disconnect,
    /// Send the next published bar twice.
    DuplicateBar,
    /// Swap the next two bar windows (the later window is sent first).
    OutOfOrder,
    /// After the next published bar, send an updated bar `u` for it with a changed close and volume
    /// (Polygon: the same window's `AM` re-sent with the changed values).
    UpdatedBar,
    /// Send one frame that is not valid JSON to every stream session.
    MalformedFrame,
    /// The next auth (either stream) fails.
    AuthFailure,
    /// The next Alpaca auth gets `406 connection limit exceeded` (a lingering old session).
    ConnectionLimit,
    /// The next `count` websocket upgrades get HTTP 429.
    Http429 {
        /// How many upgrades to refuse.
        #[serde(default = "one")]
        count: u32,
    },
    /// Delay the next `count` REST responses by `delay_ms`.
    SlowRest {
        /// Delay in wall milliseconds.
        delay_ms: u64,
        /// How many responses to delay.
        #[serde(default = "one")]
        count: u32,
    },
    /// Every stream session stops sending and stops answering pings for `ms` wall milliseconds.
    Stall {
        /// Stall length in wall milliseconds.
        ms: u64,
    },
    /// Paper broker: the next `count` new orders are rejected, at the REST answer (`via: rest`,
    /// 403) or after it with a `rejected` trade update (`via: stream`).
    OrderReject {
        /// How many orders to reject.
        #[serde(default = "one")]
        count: u32,
        /// Where the rejection shows.
        #[serde(default)]
        via: RejectVia,
    },
    /// Paper broker: acks (`new`) and cancels take `ms` wall milliseconds, for `for_ms`.
    SlowAck {
        /// Latency in wall milliseconds.
        ms: u64,
        /// How long the latency lasts, wall milliseconds.
        for_ms: u64,
    },
    /// Paper broker: close every `trade_updates` connection now (no close frame).
    DropTradeUpdates,
    /// Paper broker: close every `trade_updates` connection and refuse new ones (HTTP 503) for
    /// `ms` wall milliseconds; events of that time are lost (clients reconcile by REST).
    TradeUpdatesOutage {
        /// Outage length in wall milliseconds.
        ms: u64,
    },
    /// Paper broker: the next `count` trading REST requests get 429.
    RateLimit {
        /// How many requests to refuse.
        #[serde(default = "one")]
        count: u32,
    },
    /// The next `count` history REST requests (Alpaca bars, Polygon aggregates, Databento
    /// `timeseries.get_range`) fail with HTTP `status` (default 429, sent with `Retry-After:
    /// retry_after_s`), in each provider's error JSON.
    RestError {
        /// The HTTP status (429, or a 5xx).
        #[serde(default = "too_many")]
        status: u16,
        /// How many requests to fail.
        #[serde(default = "one")]
        count: u32,
        /// The `Retry-After` seconds of a 429.
        #[serde(default = "one_u64")]
        retry_after_s: u64,
    },
    /// The next Databento `timeseries.get_range` response carries one more OHLCV record, for an
    /// instrument id its symbol mappings do not name (a client must count it, never name it).
    UnmappedRecord,
}

/// Where an `order_reject` fault shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectVia {
    /// The REST answer is 403 with the broker's message.
    #[default]
    Rest,
    /// The REST answer is `accepted`; a `rejected` trade update follows.
    Stream,
}

fn one() -> u32 {
    1
}

fn one_u64() -> u64 {
    1
}

fn too_many() -> u16 {
    429
}

/// Number of fault kinds (for the per-kind counters).
pub const KINDS: usize = 17;

impl Fault {
    /// The kind's name (as in the JSON `kind`).
    pub fn name(&self) -> &'static str {
        FAULT_NAMES[self.index()]
    }

    /// The kind's index in [`FAULT_NAMES`].
    pub fn index(&self) -> usize {
        match self {
            Fault::Disconnect => 0,
            Fault::DuplicateBar => 1,
            Fault::OutOfOrder => 2,
            Fault::UpdatedBar => 3,
            Fault::MalformedFrame => 4,
            Fault::AuthFailure => 5,
            Fault::ConnectionLimit => 6,
            Fault::Http429 { .. } => 7,
            Fault::SlowRest { .. } => 8,
            Fault::Stall { .. } => 9,
            Fault::OrderReject { .. } => 10,
            Fault::SlowAck { .. } => 11,
            Fault::DropTradeUpdates => 12,
            Fault::TradeUpdatesOutage { .. } => 13,
            Fault::RateLimit { .. } => 14,
            Fault::RestError { .. } => 15,
            Fault::UnmappedRecord => 16,
        }
    }
}

/// Kind names, by [`Fault::index`].
pub const FAULT_NAMES: [&str; KINDS] = [
    "disconnect",
    "duplicate_bar",
    "out_of_order",
    "updated_bar",
    "malformed_frame",
    "auth_failure",
    "connection_limit",
    "http429",
    "slow_rest",
    "stall",
    "order_reject",
    "slow_ack",
    "drop_trade_updates",
    "trade_updates_outage",
    "rate_limit",
    "rest_error",
    "unmapped_record",
];

/// Faults waiting to take effect.
#[derive(Debug, Default)]
pub struct Pending {
    /// Bar-stream faults for the publisher (duplicate, out-of-order, updated, malformed).
    pub publish: Vec<Fault>,
    /// Auth failures still to apply.
    pub auth_fail: u32,
    /// 406s still to apply.
    pub conn_limit: u32,
    /// 429s still to apply.
    pub http429: u32,
    /// REST delays still to apply: (delay_ms, remaining).
    pub slow_rest: Option<(u64, u32)>,
    /// History REST failures still to apply: (status, retry_after_s, remaining).
    pub rest_error: Option<(u16, u64, u32)>,
    /// Unmapped Databento records still to add.
    pub unmapped_record: u32,
}

/// The fault state shared by the servers.
#[derive(Debug, Default)]
pub struct Faults {
    /// What is pending.
    pub pending: Mutex<Pending>,
    /// Injected faults per kind.
    pub injected: [AtomicU64; KINDS],
}

impl Faults {
    fn with<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> R {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    }

    /// Record an injection (count + stderr log) and queue what is queued.
    pub fn record(&self, fault: Fault, market_ns: i64) {
        self.injected[fault.index()].fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "exchange: fault injected: {} at market {}",
            serde_json::to_string(&fault).unwrap_or_default(),
            super::wire::rfc3339(market_ns)
        );
        self.with(|p| match fault {
            Fault::DuplicateBar | Fault::OutOfOrder | Fault::UpdatedBar | Fault::MalformedFrame => {
                p.publish.push(fault)
            }
            Fault::AuthFailure => p.auth_fail += 1,
            Fault::ConnectionLimit => p.conn_limit += 1,
            Fault::Http429 { count } => p.http429 += count,
            Fault::SlowRest { delay_ms, count } => p.slow_rest = Some((delay_ms, count)),
            Fault::RestError { status, count, retry_after_s } if count > 0 => {
                p.rest_error = Some((status, retry_after_s, count))
            }
            Fault::RestError { .. } => {}
            Fault::UnmappedRecord => p.unmapped_record += 1,
            // Stream-wide and broker faults act at injection (`Shared::inject`).
            Fault::Disconnect
            | Fault::Stall { .. }
            | Fault::OrderReject { .. }
            | Fault::SlowAck { .. }
            | Fault::DropTradeUpdates
            | Fault::TradeUpdatesOutage { .. }
            | Fault::RateLimit { .. } => {}
        });
    }

    /// Take the queued publisher faults.
    pub fn take_publish(&self) -> Vec<Fault> {
        self.with(|p| std::mem::take(&mut p.publish))
    }

    /// Consume one pending auth failure.
    pub fn take_auth_fail(&self) -> bool {
        self.with(|p| take(&mut p.auth_fail))
    }

    /// Consume one pending 406.
    pub fn take_conn_limit(&self) -> bool {
        self.with(|p| take(&mut p.conn_limit))
    }

    /// Consume one pending 429.
    pub fn take_http429(&self) -> bool {
        self.with(|p| take(&mut p.http429))
    }

    /// Consume one pending REST delay (ms).
    pub fn take_slow_rest(&self) -> Option<u64> {
        self.with(|p| {
            let (ms, n) = p.slow_rest.as_mut()?;
            let ms = *ms;
            *n -= 1;
            if *n == 0 {
                p.slow_rest = None;
            }
            Some(ms)
        })
    }

    /// Consume one pending history REST failure: (status, retry_after_s).
    pub fn take_rest_error(&self) -> Option<(u16, u64)> {
        self.with(|p| {
            let (status, retry_after_s, n) = p.rest_error.as_mut()?;
            let got = (*status, *retry_after_s);
            *n -= 1;
            if *n == 0 {
                p.rest_error = None;
            }
            Some(got)
        })
    }

    /// Consume one pending unmapped Databento record.
    pub fn take_unmapped_record(&self) -> bool {
        self.with(|p| take(&mut p.unmapped_record))
    }

    /// Injected counts by kind name.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        FAULT_NAMES.iter().zip(&self.injected).map(|(n, c)| (*n, c.load(Ordering::Relaxed))).collect()
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

/// When a scenario fault fires.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// Once, at this market time (ns).
    At(i64),
    /// Every this many market minutes after the start.
    Every(u32),
}

/// A scenario: faults at market times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scenario {
    /// The faults and when.
    pub faults: Vec<(When, Fault)>,
}

#[derive(Deserialize)]
struct RawEntry {
    at: Option<String>,
    every_min: Option<u32>,
    #[serde(flatten)]
    fault: toml::Table,
}

#[derive(Deserialize)]
struct RawScenario {
    #[serde(default)]
    fault: Vec<RawEntry>,
}

impl Scenario {
    /// Parse a scenario's TOML text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut faults = Vec::new();
        for (i, e) in raw.fault.into_iter().enumerate() {
            let fault: Fault =
                toml::Value::Table(e.fault).try_into().map_err(|err| format!("fault {}: {err}", i + 1))?;
            let when = match (e.at, e.every_min) {
                (Some(at), None) => When::At(
                    super::wire::parse_time(&at)
                        .ok_or_else(|| format!("fault {}: `at` is not RFC 3339: {at}", i + 1))?,
                ),
                (None, Some(n)) if n > 0 => When::Every(n),
                _ => return Err(format!("fault {}: give exactly one of `at` and `every_min` (> 0)", i + 1)),
            };
            faults.push((when, fault));
        }
        Ok(Scenario { faults })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_json_and_toml() {
        let f: Fault = serde_json::from_str(r#"{"kind":"http429","count":3}"#).unwrap();
        assert_eq!(f, Fault::Http429 { count: 3 });
        let f: Fault = serde_json::from_str(r#"{"kind":"disconnect"}"#).unwrap();
        assert_eq!(f.name(), "disconnect");
        let s = Scenario::parse(
            "[[fault]]\nat = \"2019-11-01T15:00:00Z\"\nkind = \"disconnect\"\n\n[[fault]]\nevery_min = 5\nkind = \"stall\"\nms = 200\n",
        )
        .unwrap();
        assert_eq!(s.faults.len(), 2);
        assert_eq!(s.faults[1], (When::Every(5), Fault::Stall { ms: 200 }));
        assert!(Scenario::parse("[[fault]]\nkind = \"disconnect\"\n").is_err());
        let f: Fault = serde_json::from_str(r#"{"kind":"order_reject","count":2,"via":"stream"}"#).unwrap();
        assert_eq!(f, Fault::OrderReject { count: 2, via: RejectVia::Stream });
        let f: Fault = serde_json::from_str(r#"{"kind":"rest_error"}"#).unwrap();
        assert_eq!(f, Fault::RestError { status: 429, count: 1, retry_after_s: 1 });
        let f: Fault = serde_json::from_str(r#"{"kind":"order_reject"}"#).unwrap();
        assert_eq!(f, Fault::OrderReject { count: 1, via: RejectVia::Rest });
        let s = Scenario::parse("[[fault]]\nevery_min = 3\nkind = \"trade_updates_outage\"\nms = 500\n").unwrap();
        assert_eq!(s.faults[0].1.name(), "trade_updates_outage");
        for (i, n) in FAULT_NAMES.iter().enumerate() {
            assert_eq!(FAULT_NAMES.iter().position(|x| x == n), Some(i), "names are unique");
        }
    }
}
