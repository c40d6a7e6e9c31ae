//! The broker's vocabulary: configuration, orders, positions, account, errors, trade updates.
//! Their JSON decoding is in `wire.rs`.

use crate::credentials::Secret;
use crate::ws::TlsConfig;
use engine::records::{OrderType, Side};
use std::time::Duration;

/// Where the broker is and how to reach it. Shared by [`super::TradingRest`] and
/// [`super::TradeUpdatesClient`].
///
/// `tls` secures both clients: `https://`/`wss://` URLs need [`TlsConfig::Verified`] (public
/// roots, or exactly the extra root PEM of a local exchange for REST; public roots plus it for
/// the stream), `http://`/`ws://` need [`TlsConfig::Plain`] (loopback only).
#[derive(Clone)]
pub struct TradingConfig {
    /// `https://paper-api.alpaca.markets`, `https://api.alpaca.markets`, or a local exchange
    /// (`https://127.0.0.1:PORT`); scheme, host and port only.
    pub base_url: String,
    /// `wss://paper-api.alpaca.markets/stream` (or a local exchange's `/stream`).
    pub stream_url: String,
    /// `APCA-API-KEY-ID`.
    pub key_id: String,
    /// `APCA-API-SECRET-KEY`.
    pub secret: Secret,
    /// How both clients secure their connections.
    pub tls: TlsConfig,
    /// REST: connect timeout, and the longest wait for the response head, for any one read and
    /// for the body. A request that times out after it was sent has an unknown outcome.
    pub timeout: Duration,
    /// REST: retries after the first try (429s, 5xx and transport failures where safe).
    pub max_retries: u32,
}

impl TradingConfig {
    /// Alpaca paper trading (`https://paper-api.alpaca.markets`, its `/stream`), verified against
    /// the bundled roots, 10 s timeout, 3 retries.
    pub fn alpaca_paper(key_id: impl Into<String>, secret: Secret) -> Self {
        TradingConfig {
            base_url: "https://paper-api.alpaca.markets".to_owned(),
            stream_url: "wss://paper-api.alpaca.markets/stream".to_owned(),
            key_id: key_id.into(),
            secret,
            tls: TlsConfig::webpki(),
            timeout: Duration::from_secs(10),
            max_retries: 3,
        }
    }

    /// Another host (a local exchange): REST at `base_url`, the stream at `stream_url`, 10 s
    /// timeout, 3 retries.
    pub fn new(
        base_url: impl Into<String>,
        stream_url: impl Into<String>,
        key_id: impl Into<String>,
        secret: Secret,
        tls: TlsConfig,
    ) -> Self {
        TradingConfig {
            base_url: base_url.into(),
            stream_url: stream_url.into(),
            key_id: key_id.into(),
            secret,
            tls,
            timeout: Duration::from_secs(10),
            max_retries: 3,
        }
    }
}

impl std::fmt::Debug for TradingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingConfig")
            .field("base_url", &self.base_url)
            .field("stream_url", &self.stream_url)
            .field("key_id", &"***")
            .field("secret", &self.secret)
            .field("tls", &tls_kind(&self.tls))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

fn tls_kind(tls: &TlsConfig) -> &'static str {
    match tls {
        TlsConfig::Plain => "plain",
        TlsConfig::Verified { extra_roots_pem } if extra_roots_pem.is_empty() => "verified",
        TlsConfig::Verified { .. } => "verified+extra root",
    }
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tif {
    /// The regular session of the day.
    Day,
    /// Good till canceled.
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
    /// At the opening auction.
    Opg,
    /// At the closing auction.
    Cls,
}

impl Tif {
    /// Alpaca's name (`day`, `gtc`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "day",
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
            Tif::Opg => "opg",
            Tif::Cls => "cls",
        }
    }
}

/// An order to place. `OrderType::Stop` with a limit price is Alpaca's `stop_limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// Ticker.
    pub symbol: String,
    /// Whole shares, > 0.
    pub qty: u32,
    /// Buy or sell (a sell with no position opens a short).
    pub side: Side,
    /// Market, limit or stop (stop + limit price = stop limit).
    pub order_type: OrderType,
    /// Time in force.
    pub tif: Tif,
    /// Limit price (1e-9 units): required for limit (and stop limit) orders, else `None`.
    pub limit_px_e9: Option<i64>,
    /// Stop price (1e-9 units): required for stop orders, else `None`.
    pub stop_px_e9: Option<i64>,
    /// Our id for the order (1..=128 characters, unique per account): the idempotency key.
    pub client_order_id: String,
    /// Eligible for pre- and after-market (Alpaca: limit + day only).
    pub extended_hours: bool,
}

impl NewOrder {
    /// Alpaca's `type` for this order.
    pub fn wire_type(&self) -> &'static str {
        match (self.order_type, self.limit_px_e9) {
            (OrderType::Market, _) => "market",
            (OrderType::Limit, _) => "limit",
            (OrderType::Stop, None) => "stop",
            (OrderType::Stop, Some(_)) => "stop_limit",
        }
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// A value this client does not know (kept, counted; never a panic).
            Unknown(String),
        }
        impl $name {
            /// From Alpaca's name; anything else is `Unknown`.
            pub fn parse(s: &str) -> Self {
                match s { $($s => $name::$var,)+ other => $name::Unknown(other.to_owned()) }
            }
            /// Alpaca's name.
            pub fn as_str(&self) -> &str {
                match self { $($name::$var => $s,)+ $name::Unknown(s) => s }
            }
        }
    };
}

wire_enum! {
    /// An order's status, as Alpaca reports it.
    OrderStatus {
        /// Routed to the exchanges, working.
        New = "new",
        /// Received by Alpaca, not yet routed.
        Accepted = "accepted",
        /// Routed, not yet accepted by the exchange.
        PendingNew = "pending_new",
        /// Accepted for an auction.
        AcceptedForBidding = "accepted_for_bidding",
        /// Part filled, the rest working.
        PartiallyFilled = "partially_filled",
        /// Completely filled.
        Filled = "filled",
        /// Done for the day (no more fills today).
        DoneForDay = "done_for_day",
        /// Canceled.
        Canceled = "canceled",
        /// Expired (time in force).
        Expired = "expired",
        /// Replaced by another order (`replaced_by`).
        Replaced = "replaced",
        /// A cancel is pending.
        PendingCancel = "pending_cancel",
        /// A replace is pending.
        PendingReplace = "pending_replace",
        /// Rejected.
        Rejected = "rejected",
        /// Suspended (not eligible for trading).
        Suspended = "suspended",
        /// Stopped: a trade is guaranteed, not yet done.
        Stopped = "stopped",
        /// Done; settlement calculations pending.
        Calculated = "calculated",
        /// Held (e.g. a bracket leg waiting for its parent).
        Held = "held",
    }
}

impl OrderStatus {
    /// Whether the order may still fill or change: everything but `filled`, `canceled`,
    /// `expired`, `replaced`, `rejected`, `done_for_day` and `calculated`. An unknown status
    /// counts as open (keep tracking it rather than forget a live order).
    pub fn is_open(&self) -> bool {
        !matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Expired
                | OrderStatus::Replaced
                | OrderStatus::Rejected
                | OrderStatus::DoneForDay
                | OrderStatus::Calculated
        )
    }
}

wire_enum! {
    /// The event of a trade update.
    TradeEvent {
        /// Routed to the exchanges.
        New = "new",
        /// Completely filled (`price`, `qty` of this execution, `position_qty`).
        Fill = "fill",
        /// Partly filled.
        PartialFill = "partial_fill",
        /// Canceled.
        Canceled = "canceled",
        /// Expired.
        Expired = "expired",
        /// Done for the day.
        DoneForDay = "done_for_day",
        /// A replace was processed. Alpaca's order here is the OLD order (status `replaced`,
        /// `replaced_by` naming the new one); the new order follows with its own events.
        Replaced = "replaced",
        /// Rejected.
        Rejected = "rejected",
        /// Received, not yet routed.
        PendingNew = "pending_new",
        /// Stopped (a trade is guaranteed).
        Stopped = "stopped",
        /// A cancel is pending.
        PendingCancel = "pending_cancel",
        /// A replace is pending.
        PendingReplace = "pending_replace",
        /// Done; settlement pending.
        Calculated = "calculated",
        /// Suspended.
        Suspended = "suspended",
        /// A replace was refused; the order is unchanged.
        OrderReplaceRejected = "order_replace_rejected",
        /// A cancel was refused; the order is unchanged.
        OrderCancelRejected = "order_cancel_rejected",
    }
}

/// An order as the broker reports it (REST answers and trade updates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerOrder {
    /// The broker's order id.
    pub id: String,
    /// Our client order id (empty if the broker sent none).
    pub client_order_id: String,
    /// Ticker.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Market, limit or stop (`stop_limit` is `Stop` with a limit price); `None` for types
    /// ringtape does not place (`trailing_stop`, unknown).
    pub order_type: Option<OrderType>,
    /// Ordered shares (0 for a notional order).
    pub qty: u32,
    /// Shares filled so far.
    pub filled_qty: u32,
    /// Average fill price so far (1e-9 units).
    pub filled_avg_px_e9: Option<i64>,
    /// Limit price.
    pub limit_px_e9: Option<i64>,
    /// Stop price.
    pub stop_px_e9: Option<i64>,
    /// Status.
    pub status: OrderStatus,
    /// The order this one replaced.
    pub replaces: Option<String>,
    /// The order that replaced this one.
    pub replaced_by: Option<String>,
    /// `updated_at`, ns since the epoch (UTC).
    pub updated_at_ns: Option<i64>,
}

/// A position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPosition {
    /// Ticker.
    pub symbol: String,
    /// Shares; negative = short.
    pub qty: i64,
    /// Average entry price (1e-9 units).
    pub avg_entry_px_e9: i64,
}

/// The account's money and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAccount {
    /// Cash (1e-9 USD).
    pub cash_e9: i64,
    /// Buying power (1e-9 USD).
    pub buying_power_e9: i64,
    /// Equity (1e-9 USD).
    pub equity_e9: i64,
    /// `ACTIVE`, `ACCOUNT_UPDATED`, ...
    pub status: String,
    /// Trading is blocked on the account.
    pub trading_blocked: bool,
}

/// Why a broker call failed. Messages are one line and never contain a key or secret (the
/// broker's text is scrubbed of both before it is kept).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker refused the request (403 buying power, 422 invalid or not cancelable, ...):
    /// nothing was done. `code` and `message` are Alpaca's `{"code":..,"message":..}`.
    #[error("broker refused the request (HTTP {status}{}): {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Alpaca's error code, when the body had one.
        code: Option<u64>,
        /// Alpaca's message (or the start of the body).
        message: String,
    },
    /// No such order or position (HTTP 404).
    #[error("broker has no such order or position (HTTP 404): check the id or symbol")]
    NotFound,
    /// The broker refused the keys (401, or 403 without an Alpaca error code).
    #[error(
        "broker refused the API keys (HTTP {status}): check APCA_API_KEY_ID/APCA_API_SECRET_KEY and that paper keys go to the paper URL"
    )]
    Auth {
        /// HTTP status.
        status: u16,
    },
    /// Still rate limited (HTTP 429) after every retry: nothing was done.
    #[error("broker rate limit (HTTP 429) still hit after {attempts} attempts: send fewer requests")]
    RateLimited {
        /// Requests sent.
        attempts: u32,
    },
    /// The broker could not be reached or kept failing (5xx, connect or transport errors) on a
    /// request that is safe to repeat; nothing is known to have been done.
    #[error("broker unavailable: {detail}")]
    Unavailable {
        /// What failed last.
        detail: String,
    },
    /// A request that changes state (submit, replace, close) may or may not have reached the
    /// broker (timeout or connection lost after sending, or a 5xx): look the order up before
    /// trying again ([`super::TradingRest::submit_idempotent`] does).
    #[error("broker outcome unknown (the request may have been executed): {detail}; look the order up before retrying")]
    Unknown {
        /// What failed.
        detail: String,
    },
    /// A 2xx answer this client could not read.
    #[error("broker response not understood: {detail}")]
    Decode {
        /// What is wrong.
        detail: String,
    },
    /// A request refused here, before sending (e.g. a limit order without a limit price).
    #[error("order not sent: {detail}")]
    Invalid {
        /// What is wrong.
        detail: String,
    },
    /// The configuration is unusable (bad URL, scheme not matching the TLS setting, bad PEM).
    #[error("trading client configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
}

/// One trade update from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeUpdate {
    /// What happened.
    pub event: TradeEvent,
    /// The order after the event (for `replaced`: the old order, see [`TradeEvent::Replaced`]).
    pub order: BrokerOrder,
    /// This execution's price (fills).
    pub price_e9: Option<i64>,
    /// This execution's shares (fills).
    pub qty: Option<u32>,
    /// The position after this execution (negative = short).
    pub position_qty: Option<i64>,
    /// The execution's id.
    pub execution_id: Option<String>,
    /// The event's `timestamp`, ns since the epoch (UTC).
    pub timestamp_ns: Option<i64>,
    /// When the frame's last byte was read, on the caller's clock.
    pub recv_ns: i64,
}

/// What the trade updates stream reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // reason: updates are the common case; boxing would allocate per update
pub enum StreamEvent {
    /// Authorized and listening to `trade_updates` (after every (re)connect: the gateway should
    /// reconcile open orders over REST, since updates sent while disconnected are not replayed).
    Connected,
    /// A trade update.
    Update(TradeUpdate),
    /// The connection closed or an attempt failed; the client reconnects by itself.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The broker refused the keys: fatal, the client stops (no reconnects).
    AuthFailed {
        /// The server's words (scrubbed of secrets).
        message: String,
    },
}

/// What a [`super::TradingRest`] did (a `Copy` snapshot for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestStats {
    /// HTTP requests sent (retries and lookups included).
    pub requests: u64,
    /// Requests repeated after a 429.
    pub retried_429: u64,
    /// Requests repeated after a 5xx.
    pub retried_5xx: u64,
    /// Requests repeated after a transport failure (connect refused, reset, timeout).
    pub retried_transport: u64,
    /// State-changing requests whose outcome was unknown (timeout or 5xx after sending).
    pub unknown_outcomes: u64,
    /// Lookups by client order id after an unknown outcome.
    pub lookups: u64,
    /// Orders sent again after a lookup found nothing.
    pub resubmits: u64,
    /// Refusals by the broker (403/422 and other 4xx answers that are not 401/404/429).
    pub rejected: u64,
    /// Orders with a status this client does not know.
    pub unknown_statuses: u64,
}

/// What a [`super::TradeUpdatesClient`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections that opened (websocket handshake done).
    pub connects: u64,
    /// Closes and failed attempts.
    pub disconnects: u64,
    /// Text and binary frames read.
    pub frames: u64,
    /// Trade updates delivered.
    pub updates: u64,
    /// Updates with an event, or orders with a status, this client does not know (delivered as
    /// `Unknown`), and frames of other streams (skipped).
    pub unknown_events: u64,
    /// Frames that are not valid JSON or lack required fields (skipped).
    pub malformed_frames: u64,
}

// ---- decoding -----------------------------------------------------------------------------------
