//! Alpaca market data v2: the stream's server frames, the historical bars REST pages (warm start,
//! gap backfill) and the client's auth/subscribe messages. See PROTOCOLS.md sections 1.1 and 1.2.

use crate::counters::FeedCounters;
use crate::msg::{AlpacaChannels, AlpacaError, BarKind, BarUpdate, Control, FeedMsg, Reject, RejectKind};
use crate::raw::{self, Raw, RawJson, txt};
use crate::scan::{Fields, LONG_KEY, Malformed, key_code, put};
use crate::symbols::SymbolMap;
use engine::records::{Bar, Interval, Quote, SymbolId, Trade, pack_name};
use serde::Deserialize;
use std::borrow::Cow;

/// Every field any stream message type uses, each kept as raw JSON text (`c` is a close price in
/// bars and a condition list in quotes and trades; the type decides).
#[derive(Default)]
struct Msg<'a> {
    ty: Raw<'a>,
    sym: Raw<'a>,
    o: Raw<'a>,
    h: Raw<'a>,
    l: Raw<'a>,
    c: Raw<'a>,
    v: Raw<'a>,
    t: Raw<'a>,
    bp: Raw<'a>,
    bs: Raw<'a>,
    ap: Raw<'a>,
    ask_size: Raw<'a>,
    p: Raw<'a>,
    s: Raw<'a>,
    i: Raw<'a>,
    msg: Raw<'a>,
    code: Raw<'a>,
    trades: Raw<'a>,
    quotes: Raw<'a>,
    bars: Raw<'a>,
    updated_bars: Raw<'a>,
    daily_bars: Raw<'a>,
}

impl<'a> Fields<'a> for Msg<'a> {
    #[inline]
    fn set(&mut self, key: &[u8], raw: &'a str) -> Result<(), Malformed> {
        const K_TY: u64 = key_code(b"T");
        const K_SYM: u64 = key_code(b"S");
        const K_O: u64 = key_code(b"o");
        const K_H: u64 = key_code(b"h");
        const K_L: u64 = key_code(b"l");
        const K_C: u64 = key_code(b"c");
        const K_V: u64 = key_code(b"v");
        const K_T: u64 = key_code(b"t");
        const K_BP: u64 = key_code(b"bp");
        const K_BS: u64 = key_code(b"bs");
        const K_AP: u64 = key_code(b"ap");
        const K_ASK_SIZE: u64 = key_code(b"as");
        const K_P: u64 = key_code(b"p");
        const K_S: u64 = key_code(b"s");
        const K_I: u64 = key_code(b"i");
        const K_MSG: u64 = key_code(b"msg");
        const K_CODE: u64 = key_code(b"code");
        const K_TRADES: u64 = key_code(b"trades");
        const K_QUOTES: u64 = key_code(b"quotes");
        const K_BARS: u64 = key_code(b"bars");
        match key_code(key) {
            K_TY => put(&mut self.ty, raw),
            K_SYM => put(&mut self.sym, raw),
            K_O => put(&mut self.o, raw),
            K_H => put(&mut self.h, raw),
            K_L => put(&mut self.l, raw),
            K_C => put(&mut self.c, raw),
            K_V => put(&mut self.v, raw),
            K_T => put(&mut self.t, raw),
            K_BP => put(&mut self.bp, raw),
            K_BS => put(&mut self.bs, raw),
            K_AP => put(&mut self.ap, raw),
            K_ASK_SIZE => put(&mut self.ask_size, raw),
            K_P => put(&mut self.p, raw),
            K_S => put(&mut self.s, raw),
            K_I => put(&mut self.i, raw),
            K_MSG => put(&mut self.msg, raw),
            K_CODE => put(&mut self.code, raw),
            K_TRADES => put(&mut self.trades, raw),
            K_QUOTES => put(&mut self.quotes, raw),
            K_BARS => put(&mut self.bars, raw),
            LONG_KEY => match key {
                b"updatedBars" => put(&mut self.updated_bars, raw),
                b"dailyBars" => put(&mut self.daily_bars, raw),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// Decode one server frame (`[{"T":...}, ...]`) read at `ts_recv_ns`, appending one [`FeedMsg`]
/// per element to `out` (unknown types add nothing but a count). Never panics: a frame that is not
/// a JSON array of objects becomes one `BadJson` rejection; a bad element becomes a typed
/// rejection and the rest of the frame is still decoded.
pub fn decode_stream(frame: &[u8], ts_recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
    raw::each_in_frame(frame, c, out, |m: Msg<'_>, c, out| {
        c.messages += 1;
        one(&m, ts_recv_ns, symbols, c, out);
    });
}

/// The message types this layer decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bar,
    Updated,
    Daily,
    Quote,
    Trade,
    Success,
    Error,
    Subscription,
}

impl Ty {
    #[inline]
    fn from_wire(t: &str) -> Option<Ty> {
        Some(match t.as_bytes() {
            b"b" => Ty::Bar,
            b"u" => Ty::Updated,
            b"d" => Ty::Daily,
            b"q" => Ty::Quote,
            b"t" => Ty::Trade,
            b"success" => Ty::Success,
            b"error" => Ty::Error,
            b"subscription" => Ty::Subscription,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Ty::Bar => "b",
            Ty::Updated => "u",
            Ty::Daily => "d",
            Ty::Quote => "q",
            Ty::Trade => "t",
            Ty::Success => "success",
            Ty::Error => "error",
            Ty::Subscription => "subscription",
        }
    }
}

fn one(m: &Msg<'_>, ts_recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
    let ty = match m.ty.map(|r| raw::string(r, "T")) {
        None => return reject(Reject::new(RejectKind::MissingField, "T"), c, out),
        Some(Err(r)) => return reject(r, c, out),
        Some(Ok(t)) => match Ty::from_wire(&t) {
            Some(ty) => ty,
            None => {
                c.unknown_types += 1;
                return;
            }
        },
    };
    let res = match ty {
        Ty::Success | Ty::Error | Ty::Subscription => control(ty, m, c),
        _ => market(ty, m, ts_recv_ns, symbols, c),
    };
    match res {
        Ok(msg) => out.push(msg),
        Err(mut r) => {
            r.msg_type = ty.as_str();
            if let Some(Ok(s)) = m.sym.map(|s| raw::string(s, "S")) {
                r.symbol = pack_name(&s);
            }
            reject(r, c, out);
        }
    }
}

fn reject(r: Reject, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
    c.reject(&r);
    out.push(FeedMsg::Rejected(r));
}

fn symbol(m: &Msg<'_>, symbols: &SymbolMap) -> Result<SymbolId, Reject> {
    let s = raw::req_str(m.sym, "S")?;
    symbols.get(&s).ok_or(Reject::new(RejectKind::UnknownSymbol, "S"))
}

fn bar_fields(m: &Msg<'_>, ts_field: &'static str) -> Result<Bar, Reject> {
    let bar = Bar {
        ts_event_ns: raw::rfc3339(m.t, ts_field)?,
        open_px_e9: raw::px(m.o, "o")?,
        high_px_e9: raw::px(m.h, "h")?,
        low_px_e9: raw::px(m.l, "l")?,
        close_px_e9: raw::px(m.c, "c")?,
        volume: raw::count(m.v, "v")?,
    };
    raw::check_bar(&bar)?;
    Ok(bar)
}

fn market(ty: Ty, m: &Msg<'_>, ts_recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters) -> Result<FeedMsg, Reject> {
    let symbol = symbol(m, symbols)?;
    match ty {
        Ty::Quote => {
            let quote = Quote {
                ts_event_ns: raw::rfc3339(m.t, "t")?,
                bid_px_e9: raw::px(m.bp, "bp")?,
                ask_px_e9: raw::px(m.ap, "ap")?,
                bid_size: size32(m.bs, "bs")?,
                ask_size: size32(m.ask_size, "as")?,
            };
            // A side with no interest is sent as 0; below zero is never valid.
            if quote.bid_px_e9 < 0 {
                return Err(Reject::new(RejectKind::NonPositivePrice, "bp"));
            }
            if quote.ask_px_e9 < 0 {
                return Err(Reject::new(RejectKind::NonPositivePrice, "ap"));
            }
            c.quotes += 1;
            Ok(FeedMsg::Quote { symbol, quote, ts_recv_ns })
        }
        Ty::Trade => {
            let trade = Trade {
                ts_event_ns: raw::rfc3339(m.t, "t")?,
                px_e9: raw::px(m.p, "p")?,
                size: raw::count(m.s, "s")?,
                trade_id: match m.i {
                    Some(_) => raw::count(m.i, "i")?,
                    None => 0,
                },
            };
            if trade.px_e9 <= 0 {
                return Err(Reject::new(RejectKind::NonPositivePrice, "p"));
            }
            c.trades += 1;
            Ok(FeedMsg::Trade { symbol, trade, ts_recv_ns })
        }
        _ => {
            let bar = bar_fields(m, "t")?;
            let (kind, interval) = match ty {
                Ty::Updated => {
                    c.updated_bars += 1;
                    (BarKind::Updated, Interval::M1)
                }
                Ty::Daily => {
                    c.daily_bars += 1;
                    (BarKind::Daily, Interval::D1)
                }
                _ => (BarKind::Closed, Interval::M1),
            };
            c.bars += 1;
            Ok(FeedMsg::Bar(BarUpdate { symbol, interval, kind, bar, ts_recv_ns }))
        }
    }
}

fn size32(v: Raw<'_>, field: &'static str) -> Result<u32, Reject> {
    u32::try_from(raw::count(v, field)?).map_err(|_| Reject::new(RejectKind::OutOfRange, field))
}

fn opt_string(v: Raw<'_>, field: &'static str) -> Result<String, Reject> {
    match v {
        None => Ok(String::new()),
        Some(r) => raw::string(r, field).map(Cow::into_owned),
    }
}

fn list(v: Raw<'_>, field: &'static str) -> Result<Vec<String>, Reject> {
    match v {
        None => Ok(Vec::new()),
        Some(r) => serde_json::from_str(r).map_err(|_| Reject::new(RejectKind::NotAString, field)),
    }
}

fn control(ty: Ty, m: &Msg<'_>, c: &mut FeedCounters) -> Result<FeedMsg, Reject> {
    let ctl = match ty {
        Ty::Success => match &*opt_string(m.msg, "msg")? {
            "connected" => Control::Connected,
            "authenticated" => Control::Authenticated,
            other => Control::Status { status: other.to_string(), message: String::new() },
        },
        Ty::Error => {
            let code = raw::count(m.code, "code").map_err(|r| Reject::new(RejectKind::BadErrorCode, r.field))?;
            let code = u16::try_from(code).map_err(|_| Reject::new(RejectKind::BadErrorCode, "code"))?;
            Control::Error(AlpacaError::from_code(code), opt_string(m.msg, "msg")?)
        }
        _ => Control::Subscription(AlpacaChannels {
            bars: list(m.bars, "bars")?,
            updated_bars: list(m.updated_bars, "updatedBars")?,
            daily_bars: list(m.daily_bars, "dailyBars")?,
            quotes: list(m.quotes, "quotes")?,
            trades: list(m.trades, "trades")?,
        }),
    };
    c.control += 1;
    Ok(FeedMsg::Control(ctl))
}

// ---- REST history -------------------------------------------------------------------------

/// One bar of a REST history page, its fields kept as raw JSON text (Alpaca's `bars` and
/// Polygon's `results` share the shape; only `t` is written differently).
#[derive(Deserialize)]
pub(crate) struct RestBar<'a> {
    #[serde(borrow)]
    pub(crate) t: RawJson<'a>,
    #[serde(borrow)]
    pub(crate) o: RawJson<'a>,
    #[serde(borrow)]
    pub(crate) h: RawJson<'a>,
    #[serde(borrow)]
    pub(crate) l: RawJson<'a>,
    #[serde(borrow)]
    pub(crate) c: RawJson<'a>,
    #[serde(borrow)]
    pub(crate) v: RawJson<'a>,
}

#[derive(Deserialize)]
struct BarsPage<'a> {
    #[serde(borrow)]
    bars: RawJson<'a>,
    #[serde(borrow)]
    symbol: Option<Cow<'a, str>>,
    next_page_token: Option<String>,
}

/// One REST history bar, normalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistBar {
    /// Resolved symbol.
    pub symbol: SymbolId,
    /// The interval that was requested.
    pub interval: Interval,
    /// The bar (`ts_event_ns` = window start).
    pub bar: Bar,
}

/// One page of REST history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// Bars in document order (Alpaca pages run symbol by symbol, so a warm start collects every
    /// page, then orders by time: see [`crate::order_history`]).
    pub bars: Vec<HistBar>,
    /// Refused bars (also counted).
    pub rejects: Vec<Reject>,
    /// The token (Alpaca) or URL (Polygon) of the next page; `None` on the last page.
    pub next: Option<String>,
}

impl HistoryPage {
    /// Keep a decoded history bar, or count and keep its rejection (`msg_type` names the payload
    /// field, `sym_name` the symbol as the page wrote it).
    pub(crate) fn keep(
        &mut self,
        res: Result<HistBar, Reject>,
        msg_type: &'static str,
        sym_name: &str,
        c: &mut FeedCounters,
    ) {
        match res {
            Ok(h) => {
                c.bars += 1;
                self.bars.push(h);
            }
            Err(mut r) => {
                r.msg_type = msg_type;
                r.symbol = pack_name(sym_name);
                c.reject(&r);
                self.rejects.push(r);
            }
        }
    }
}

/// Why a whole REST payload was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Not JSON of the documented shape; the text is serde_json's message and position.
    #[error("malformed history payload: {0}")]
    Malformed(String),
    /// The service reported an error (`{"status":"ERROR","error":...}` / `{"message":...}`).
    #[error("history request failed: {0}")]
    Service(String),
}

fn rest_bars(
    sym_name: &str,
    bars: &[RestBar<'_>],
    interval: Interval,
    symbols: &SymbolMap,
    c: &mut FeedCounters,
    page: &mut HistoryPage,
) {
    let id = symbols.get(sym_name);
    for b in bars {
        c.messages += 1;
        let res = id.ok_or(Reject::new(RejectKind::UnknownSymbol, "symbol")).and_then(|symbol| {
            let ts = raw::rfc3339(txt(b.t), "t")?;
            let bar = raw::rest_bar(ts, txt(b.o), txt(b.h), txt(b.l), txt(b.c), txt(b.v))?;
            Ok(HistBar { symbol, interval, bar })
        });
        page.keep(res, "bars", sym_name, c);
    }
}

/// Decode a page of `GET /v2/stocks/bars` (multi-symbol: `"bars":{"AAPL":[...],...}`) or
/// `GET /v2/stocks/{symbol}/bars` (`"bars":[...],"symbol":"AAPL"`). `interval` is the requested
/// timeframe. Bad bars are refused one by one; a malformed payload is an error.
pub fn decode_bars_page(
    body: &[u8],
    interval: Interval,
    symbols: &SymbolMap,
    c: &mut FeedCounters,
) -> Result<HistoryPage, RestError> {
    c.frames += 1;
    let p: BarsPage<'_> = serde_json::from_slice(body).map_err(|e| malformed(e, c))?;
    let mut page = HistoryPage { next: p.next_page_token.filter(|t| !t.is_empty()), ..HistoryPage::default() };
    let Some(bars) = p.bars else { return Ok(page) };
    match &p.symbol {
        Some(sym) => {
            let v: Vec<RestBar<'_>> = serde_json::from_str(bars.get()).map_err(|e| malformed(e, c))?;
            rest_bars(sym, &v, interval, symbols, c, &mut page);
        }
        None => {
            let m: std::collections::BTreeMap<Cow<'_, str>, Vec<RestBar<'_>>> =
                serde_json::from_str(bars.get()).map_err(|e| malformed(e, c))?;
            for (sym, v) in &m {
                rest_bars(sym, v, interval, symbols, c, &mut page);
            }
        }
    }
    Ok(page)
}

pub(crate) fn malformed(e: serde_json::Error, c: &mut FeedCounters) -> RestError {
    let r = Reject::new(RejectKind::BadJson, "");
    c.reject(&r);
    RestError::Malformed(e.to_string())
}

/// The Alpaca timeframe string for an interval (`1Min`, `5Min`, `1Hour`, `1Day`), if Alpaca has one.
pub fn timeframe(i: Interval) -> Option<String> {
    let s = i.secs;
    if s == 86_400 {
        Some("1Day".into())
    } else if s.is_multiple_of(3600) {
        Some(format!("{}Hour", s / 3600))
    } else if s.is_multiple_of(60) {
        Some(format!("{}Min", s / 60))
    } else {
        None
    }
}

// ---- client messages -----------------------------------------------------------------------

/// Subscribe or unsubscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add channels.
    Subscribe,
    /// Remove channels.
    Unsubscribe,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Unsubscribe => "unsubscribe",
        }
    }
}

/// The auth message `{"action":"auth","key":"K","secret":"S"}`. It holds the secret: send it,
/// never log it.
pub fn auth_message(key: &str, secret: &str) -> String {
    #[derive(serde::Serialize)]
    struct Auth<'a> {
        action: &'a str,
        key: &'a str,
        secret: &'a str,
    }
    serde_json::to_string(&Auth { action: "auth", key, secret }).unwrap_or_default()
}

/// `{"action":"subscribe","bars":[...],"updatedBars":[...],"dailyBars":[...],"quotes":[...],"trades":[...]}`
/// (or `unsubscribe`) for the given channel lists.
pub fn subscribe_message(action: Action, ch: &AlpacaChannels) -> String {
    #[derive(serde::Serialize)]
    struct Sub<'a> {
        action: &'a str,
        #[serde(flatten)]
        ch: &'a AlpacaChannels,
    }
    serde_json::to_string(&Sub { action: action.as_str(), ch }).unwrap_or_default()
}
