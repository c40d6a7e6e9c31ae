//! Polygon/Massive stocks: the websocket's status messages and `A`/`AM` aggregates, the aggregates
//! REST pages (warm start), and the client's auth/subscribe messages. See PROTOCOLS.md 2.1 and 2.2.

use crate::alpaca::{HistBar, HistoryPage, RestBar, RestError, malformed};
use crate::counters::FeedCounters;
use crate::msg::{BarKind, BarUpdate, Control, FeedMsg, Reject, RejectKind};
use crate::raw::{self, Raw, txt};
use crate::scan::{Fields, Malformed, key_code, put};
use crate::symbols::SymbolMap;
use engine::records::{Bar, Interval, pack_name};
use serde::Deserialize;

#[derive(Default)]
struct Msg<'a> {
    ev: Raw<'a>,
    sym: Raw<'a>,
    o: Raw<'a>,
    h: Raw<'a>,
    l: Raw<'a>,
    c: Raw<'a>,
    v: Raw<'a>,
    s: Raw<'a>,
    e: Raw<'a>,
    status: Raw<'a>,
    message: Raw<'a>,
}

impl<'a> Fields<'a> for Msg<'a> {
    #[inline]
    fn set(&mut self, key: &[u8], raw: &'a str) -> Result<(), Malformed> {
        const K_EV: u64 = key_code(b"ev");
        const K_SYM: u64 = key_code(b"sym");
        const K_O: u64 = key_code(b"o");
        const K_H: u64 = key_code(b"h");
        const K_L: u64 = key_code(b"l");
        const K_C: u64 = key_code(b"c");
        const K_V: u64 = key_code(b"v");
        const K_S: u64 = key_code(b"s");
        const K_E: u64 = key_code(b"e");
        const K_STATUS: u64 = key_code(b"status");
        const K_MESSAGE: u64 = key_code(b"message");
        match key_code(key) {
            K_EV => put(&mut self.ev, raw),
            K_SYM => put(&mut self.sym, raw),
            K_O => put(&mut self.o, raw),
            K_H => put(&mut self.h, raw),
            K_L => put(&mut self.l, raw),
            K_C => put(&mut self.c, raw),
            K_V => put(&mut self.v, raw),
            K_S => put(&mut self.s, raw),
            K_E => put(&mut self.e, raw),
            K_STATUS => put(&mut self.status, raw),
            K_MESSAGE => put(&mut self.message, raw),
            _ => Ok(()),
        }
    }
}

/// Decode one websocket frame (an array of `{"ev":...}` objects) read at `ts_recv_ns`. Same rules
/// as [`crate::alpaca::decode_stream`]: never panics, bad elements are refused one by one, unknown
/// event types (`T`, `Q`, `LULD`...) are counted and skipped.
pub fn decode_stream(frame: &[u8], ts_recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
    raw::each_in_frame(frame, c, out, |m: Msg<'_>, c, out| {
        c.messages += 1;
        one(&m, ts_recv_ns, symbols, c, out);
    });
}

fn one(m: &Msg<'_>, ts_recv_ns: i64, symbols: &SymbolMap, c: &mut FeedCounters, out: &mut Vec<FeedMsg>) {
    let ty: &'static str = match m.ev.map(|r| raw::string(r, "ev")) {
        None => return reject(Reject::new(RejectKind::MissingField, "ev"), c, out),
        Some(Err(r)) => return reject(r, c, out),
        Some(Ok(t)) => match &*t {
            "A" => "A",
            "AM" => "AM",
            "status" => "status",
            _ => {
                c.unknown_types += 1;
                return;
            }
        },
    };
    let res = match ty {
        "status" => status(m).map(|ctl| {
            c.control += 1;
            FeedMsg::Control(ctl)
        }),
        _ => aggregate(ty, m, ts_recv_ns, symbols).map(|b| {
            c.bars += 1;
            FeedMsg::Bar(b)
        }),
    };
    match res {
        Ok(msg) => out.push(msg),
        Err(mut r) => {
            r.msg_type = ty;
            if let Some(Ok(s)) = m.sym.map(|s| raw::string(s, "sym")) {
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

fn status(m: &Msg<'_>) -> Result<Control, Reject> {
    let status = raw::req_str(m.status, "status")?;
    let message = match m.message {
        Some(r) => raw::string(r, "message")?.into_owned(),
        None => String::new(),
    };
    Ok(match &*status {
        "connected" => Control::Connected,
        "auth_success" => Control::Authenticated,
        "auth_failed" => Control::AuthFailed(message),
        other => Control::Status { status: other.to_string(), message },
    })
}

fn aggregate(ty: &'static str, m: &Msg<'_>, ts_recv_ns: i64, symbols: &SymbolMap) -> Result<BarUpdate, Reject> {
    let name = raw::req_str(m.sym, "sym")?;
    let symbol = symbols.get(&name).ok_or(Reject::new(RejectKind::UnknownSymbol, "sym"))?;
    let start = raw::unix_ms(m.s, "s")?;
    let end = raw::unix_ms(m.e, "e")?;
    let len = end - start;
    let want = if ty == "A" { 1_000_000_000 } else { 60_000_000_000 };
    if len != want {
        return Err(Reject::new(RejectKind::BadWindow, "e"));
    }
    let bar = Bar {
        ts_event_ns: start,
        open_px_e9: raw::px(m.o, "o")?,
        high_px_e9: raw::px(m.h, "h")?,
        low_px_e9: raw::px(m.l, "l")?,
        close_px_e9: raw::px(m.c, "c")?,
        volume: raw::count(m.v, "v")?,
    };
    raw::check_bar(&bar)?;
    let interval = Interval { secs: (len / 1_000_000_000) as u32 };
    Ok(BarUpdate { symbol, interval, kind: BarKind::Closed, bar, ts_recv_ns })
}

// ---- REST ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AggsPage<'a> {
    ticker: Option<String>,
    status: Option<String>,
    error: Option<String>,
    message: Option<String>,
    #[serde(borrow, default)]
    results: Option<Vec<RestBar<'a>>>,
    next_url: Option<String>,
}

/// Decode a page of `GET /v2/aggs/ticker/{T}/range/{mult}/{span}/{from}/{to}`. `interval` is the
/// requested `mult` x `span`; the symbol is the payload's `ticker`. `results` may be absent (no
/// bars); `status: "ERROR"` is a [`RestError::Service`].
pub fn decode_aggs_page(
    body: &[u8],
    interval: Interval,
    symbols: &SymbolMap,
    c: &mut FeedCounters,
) -> Result<HistoryPage, RestError> {
    c.frames += 1;
    let p: AggsPage<'_> = serde_json::from_slice(body).map_err(|e| malformed(e, c))?;
    if p.status.as_deref() == Some("ERROR") {
        return Err(RestError::Service(p.error.or(p.message).unwrap_or_default()));
    }
    let mut page = HistoryPage { next: p.next_url.filter(|u| !u.is_empty()), ..HistoryPage::default() };
    let ticker = p.ticker.unwrap_or_default();
    let id = symbols.get(&ticker);
    for b in p.results.iter().flatten() {
        c.messages += 1;
        let res = id.ok_or(Reject::new(RejectKind::UnknownSymbol, "ticker")).and_then(|symbol| {
            let ts = raw::unix_ms(txt(b.t), "t")?;
            let bar = raw::rest_bar(ts, txt(b.o), txt(b.h), txt(b.l), txt(b.c), txt(b.v))?;
            Ok(HistBar { symbol, interval, bar })
        });
        page.keep(res, "results", &ticker, c);
    }
    Ok(page)
}

// ---- client messages ------------------------------------------------------------------------

/// A Polygon stocks channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Per-minute aggregates `AM`.
    Minute,
    /// Per-second aggregates `A`.
    Second,
}

impl Channel {
    /// The channel prefix (`AM`, `A`).
    pub fn prefix(self) -> &'static str {
        match self {
            Channel::Minute => "AM",
            Channel::Second => "A",
        }
    }
}

/// The `params` string for channels x symbols: `AM.AAPL,A.AAPL,AM.MSFT,A.MSFT` (`"*"` for all).
pub fn params<'a>(channels: &[Channel], symbols: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for sym in symbols {
        for ch in channels {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(ch.prefix());
            s.push('.');
            s.push_str(sym);
        }
    }
    s
}

/// `{"action":"auth","params":"K"}`. It holds the key: send it, never log it.
pub fn auth_message(key: &str) -> String {
    action_message("auth", key)
}

/// `{"action":"subscribe","params":"..."}` or `unsubscribe` with [`params`].
pub fn subscribe_message(action: crate::alpaca::Action, params: &str) -> String {
    let a = match action {
        crate::alpaca::Action::Subscribe => "subscribe",
        crate::alpaca::Action::Unsubscribe => "unsubscribe",
    };
    action_message(a, params)
}

fn action_message(action: &str, params: &str) -> String {
    #[derive(serde::Serialize)]
    struct A<'a> {
        action: &'a str,
        params: &'a str,
    }
    serde_json::to_string(&A { action, params }).unwrap_or_default()
}
