//! What the decoders produce: normalized market data, control messages and typed rejections.

use engine::records::{Bar, Event, Interval, Quote, SymbolId, Trade};

/// Why a frame or one message in it was refused. Each kind is counted in
/// [`crate::FeedCounters::rejects`]; none is ever formatted into a string on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// The frame is not UTF-8, not valid JSON (includes bare `NaN`/`Infinity` tokens), not an
    /// array of objects, or repeats a field in one object (the whole frame is dropped).
    BadJson,
    /// A required field is missing or `null`.
    MissingField,
    /// A field that must be a JSON number is not one (a string, `true`, an object...).
    NotANumber,
    /// A field that must be a JSON string is not one.
    NotAString,
    /// A number does not fit its field.
    OutOfRange,
    /// A count (volume, size) has a fractional part.
    FractionalCount,
    /// A count (volume, size) is negative.
    NegativeCount,
    /// A price is zero or negative (quotes allow 0 for an empty side, never below).
    NonPositivePrice,
    /// A bar's high is below its low.
    HighBelowLow,
    /// A bar's open or close is outside `[low, high]`.
    OutsideRange,
    /// A timestamp is not RFC 3339 with an offset (Alpaca) or not whole Unix ms (Polygon).
    BadTimestamp,
    /// A Polygon aggregate's window is empty, reversed, not whole seconds, or not the length its
    /// event type promises (`A`: 1 s, `AM`: 1 min).
    BadWindow,
    /// The symbol is not in the feed's [`crate::SymbolMap`] (counted in `unknown_symbols`, not in
    /// `parse_errors`).
    UnknownSymbol,
    /// An Alpaca `error` message without a numeric `code`.
    BadErrorCode,
}

impl RejectKind {
    /// Number of kinds (the length of [`crate::FeedCounters::rejects`]).
    pub const COUNT: usize = 14;
    /// Every kind, in [`RejectKind::index`] order.
    pub const ALL: [RejectKind; Self::COUNT] = [
        RejectKind::BadJson,
        RejectKind::MissingField,
        RejectKind::NotANumber,
        RejectKind::NotAString,
        RejectKind::OutOfRange,
        RejectKind::FractionalCount,
        RejectKind::NegativeCount,
        RejectKind::NonPositivePrice,
        RejectKind::HighBelowLow,
        RejectKind::OutsideRange,
        RejectKind::BadTimestamp,
        RejectKind::BadWindow,
        RejectKind::UnknownSymbol,
        RejectKind::BadErrorCode,
    ];

    /// Position in [`RejectKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::BadJson => "bad json",
            RejectKind::MissingField => "missing field",
            RejectKind::NotANumber => "not a number",
            RejectKind::NotAString => "not a string",
            RejectKind::OutOfRange => "out of range",
            RejectKind::FractionalCount => "fractional count",
            RejectKind::NegativeCount => "negative count",
            RejectKind::NonPositivePrice => "non-positive price",
            RejectKind::HighBelowLow => "high below low",
            RejectKind::OutsideRange => "open/close outside [low, high]",
            RejectKind::BadTimestamp => "bad timestamp",
            RejectKind::BadWindow => "bad window",
            RejectKind::UnknownSymbol => "unknown symbol",
            RejectKind::BadErrorCode => "bad error code",
        }
    }
}

/// A refused frame or message: the kind, the field at fault (`""` for the whole frame), the
/// message type and the symbol as sent (so a log line can name them). `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// What was wrong.
    pub kind: RejectKind,
    /// The wire name of the field at fault (`"h"`, `"t"`...), `""` for a whole frame.
    pub field: &'static str,
    /// The message's type tag (`"b"`, `"AM"`...), `""` when unknown.
    pub msg_type: &'static str,
    /// The symbol as sent, NUL padded ([`engine::records::unpack_name`] reads it); zeros when absent.
    pub symbol: [i64; 4],
}

impl Reject {
    pub(crate) fn new(kind: RejectKind, field: &'static str) -> Self {
        Reject { kind, field, msg_type: "", symbol: [0; 4] }
    }

    /// The symbol as sent, if the message had one.
    pub fn symbol_name(&self) -> Option<&str> {
        engine::records::unpack_name(&self.symbol).filter(|s| !s.is_empty())
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if !self.field.is_empty() {
            write!(f, " in {:?}", self.field)?;
        }
        if !self.msg_type.is_empty() {
            write!(f, " (type {:?}", self.msg_type)?;
            if let Some(s) = self.symbol_name() {
                write!(f, ", symbol {s}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Which wire message a bar came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// A bar sent once its window closed: Alpaca `b`, Polygon `A` and `AM`, REST history.
    Closed,
    /// Alpaca `u`: a late trade changed a bar already sent; it replaces that bar.
    Updated,
    /// Alpaca `d`: today's daily bar so far (re-sent as the day goes on).
    Daily,
}

/// A normalized bar before ordering and dedupe (feed it to [`crate::BarGates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarUpdate {
    /// Resolved symbol.
    pub symbol: SymbolId,
    /// Window length.
    pub interval: Interval,
    /// Which message it came from.
    pub kind: BarKind,
    /// The bar; `ts_event_ns` is the window start.
    pub bar: Bar,
    /// When the frame was read (the feed thread's clock), ns UTC.
    pub ts_recv_ns: i64,
}

/// An Alpaca market data error (`{"T":"error","code":...,"msg":...}`), one variant per documented code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AlpacaError {
    /// 400: the server could not parse a message we sent.
    #[error("alpaca 400 invalid syntax")]
    InvalidSyntax,
    /// 401: a subscribe or other action before auth.
    #[error("alpaca 401 not authenticated")]
    NotAuthenticated,
    /// 402: wrong key or secret.
    #[error("alpaca 402 auth failed")]
    AuthFailed,
    /// 403: auth sent twice.
    #[error("alpaca 403 already authenticated")]
    AlreadyAuthenticated,
    /// 404: auth not sent in time after connecting.
    #[error("alpaca 404 auth timeout")]
    AuthTimeout,
    /// 405: the subscription exceeds the plan's symbol limit.
    #[error("alpaca 405 symbol limit exceeded")]
    SymbolLimitExceeded,
    /// 406: another connection of this key is open (also while a dead one lingers).
    #[error("alpaca 406 connection limit exceeded")]
    ConnectionLimitExceeded,
    /// 409: the plan does not include this feed (e.g. `sip` on a free plan).
    #[error("alpaca 409 insufficient subscription")]
    InsufficientSubscription,
    /// 500: a server-side failure.
    #[error("alpaca 500 internal error")]
    Internal,
    /// A code not in the documented list (kept, not guessed at).
    #[error("alpaca error code {0}")]
    Other(u16),
}

/// What the connection should do after an [`AlpacaError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAction {
    /// Close, back off with jitter, reconnect (406: the old connection may still linger; 500; 404).
    Reconnect,
    /// Our own message was wrong or premature (400, 401, 403): log it, keep the connection.
    Continue,
    /// Retrying cannot help (402 credentials, 405/409 plan limits): stop this feed and say why.
    Fatal,
}

impl AlpacaError {
    /// The typed error for a wire code.
    pub fn from_code(code: u16) -> Self {
        match code {
            400 => AlpacaError::InvalidSyntax,
            401 => AlpacaError::NotAuthenticated,
            402 => AlpacaError::AuthFailed,
            403 => AlpacaError::AlreadyAuthenticated,
            404 => AlpacaError::AuthTimeout,
            405 => AlpacaError::SymbolLimitExceeded,
            406 => AlpacaError::ConnectionLimitExceeded,
            409 => AlpacaError::InsufficientSubscription,
            500 => AlpacaError::Internal,
            c => AlpacaError::Other(c),
        }
    }

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            AlpacaError::InvalidSyntax => 400,
            AlpacaError::NotAuthenticated => 401,
            AlpacaError::AuthFailed => 402,
            AlpacaError::AlreadyAuthenticated => 403,
            AlpacaError::AuthTimeout => 404,
            AlpacaError::SymbolLimitExceeded => 405,
            AlpacaError::ConnectionLimitExceeded => 406,
            AlpacaError::InsufficientSubscription => 409,
            AlpacaError::Internal => 500,
            AlpacaError::Other(c) => c,
        }
    }

    /// What the transport should do about it.
    pub fn action(self) -> ErrorAction {
        match self {
            AlpacaError::InvalidSyntax | AlpacaError::NotAuthenticated | AlpacaError::AlreadyAuthenticated => {
                ErrorAction::Continue
            }
            AlpacaError::AuthFailed | AlpacaError::SymbolLimitExceeded | AlpacaError::InsufficientSubscription => {
                ErrorAction::Fatal
            }
            AlpacaError::AuthTimeout
            | AlpacaError::ConnectionLimitExceeded
            | AlpacaError::Internal
            | AlpacaError::Other(_) => ErrorAction::Reconnect,
        }
    }
}

/// Alpaca channel lists, as sent in subscribe/unsubscribe and echoed by `subscription`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlpacaChannels {
    /// Minute bars (`b`); `"*"` = every symbol.
    #[serde(default)]
    pub bars: Vec<String>,
    /// Updated bars (`u`).
    #[serde(default)]
    pub updated_bars: Vec<String>,
    /// Daily bars (`d`).
    #[serde(default)]
    pub daily_bars: Vec<String>,
    /// Quotes (`q`).
    #[serde(default)]
    pub quotes: Vec<String>,
    /// Trades (`t`).
    #[serde(default)]
    pub trades: Vec<String>,
}

impl AlpacaChannels {
    /// True when no channel lists a symbol.
    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|l| l.is_empty())
    }

    fn lists(&self) -> [&Vec<String>; 5] {
        [&self.bars, &self.updated_bars, &self.daily_bars, &self.quotes, &self.trades]
    }

    /// What to send to go from `self` (the set the server last confirmed in a `subscription`
    /// reply) to `want`: `(subscribe, unsubscribe)`, each in `want`'s (resp. `self`'s) order.
    /// Send a list only when it is not [`AlpacaChannels::is_empty`].
    pub fn diff(&self, want: &AlpacaChannels) -> (AlpacaChannels, AlpacaChannels) {
        fn minus(a: &[String], b: &[String]) -> Vec<String> {
            let b: std::collections::HashSet<&str> = b.iter().map(String::as_str).collect();
            a.iter().filter(|s| !b.contains(s.as_str())).cloned().collect()
        }
        let (h, w) = (self.lists(), want.lists());
        let add = AlpacaChannels {
            bars: minus(w[0], h[0]),
            updated_bars: minus(w[1], h[1]),
            daily_bars: minus(w[2], h[2]),
            quotes: minus(w[3], h[3]),
            trades: minus(w[4], h[4]),
        };
        let remove = AlpacaChannels {
            bars: minus(h[0], w[0]),
            updated_bars: minus(h[1], w[1]),
            daily_bars: minus(h[2], w[2]),
            quotes: minus(h[3], w[3]),
            trades: minus(h[4], w[4]),
        };
        (add, remove)
    }
}

/// A control message from the server (rare: allocation is fine here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Alpaca `success` `connected`, Polygon status `connected`.
    Connected,
    /// Alpaca `success` `authenticated`, Polygon status `auth_success`.
    Authenticated,
    /// Polygon status `auth_failed` with its message.
    AuthFailed(String),
    /// An Alpaca `error`, typed, with the server's text.
    Error(AlpacaError, String),
    /// Alpaca `subscription`: the full current channel set.
    Subscription(AlpacaChannels),
    /// Any other `success`/`status` message (e.g. Polygon `success` "subscribed to: AM.AAPL").
    Status {
        /// Alpaca `msg` or Polygon `status`.
        status: String,
        /// Polygon `message` (empty for Alpaca).
        message: String,
    },
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedMsg {
    /// A bar, to be ordered and deduped by [`crate::BarGates`].
    Bar(BarUpdate),
    /// A quote, ready for the engine.
    Quote {
        /// Resolved symbol.
        symbol: SymbolId,
        /// The quote.
        quote: Quote,
        /// Receive time (the feed thread's clock), ns UTC.
        ts_recv_ns: i64,
    },
    /// A trade, ready for the engine.
    Trade {
        /// Resolved symbol.
        symbol: SymbolId,
        /// The trade.
        trade: Trade,
        /// Receive time (the feed thread's clock), ns UTC.
        ts_recv_ns: i64,
    },
    /// A control message for the connection's state machine.
    Control(Control),
    /// A message (or frame) refused: counted, to be logged by the caller.
    Rejected(Reject),
}

impl FeedMsg {
    /// The engine event for a quote or trade (bars go through [`crate::BarGates`] first; control
    /// messages and rejections have none).
    pub fn event(&self) -> Option<Event> {
        match self {
            FeedMsg::Quote { symbol, quote, ts_recv_ns } => Some(Event::quote(*symbol, quote, *ts_recv_ns)),
            FeedMsg::Trade { symbol, trade, ts_recv_ns } => Some(Event::trade(*symbol, trade, *ts_recv_ns)),
            _ => None,
        }
    }
}
