//! Shared decoding helpers: a frame as a JSON array visited object by object (no `Vec` of
//! messages), and fields kept as raw JSON text until their meaning is known (so a price is read
//! from its digits, and a wrong type in one message refuses that message, not the frame).

use crate::counters::FeedCounters;
use crate::msg::{FeedMsg, Reject, RejectKind};
use crate::num;
use crate::scan::{self, Fields};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A field as raw JSON text; `None` when absent or `null`.
pub(crate) type Raw<'a> = Option<&'a str>;

/// A field of a serde-decoded (REST) payload as raw JSON text.
pub(crate) type RawJson<'a> = Option<&'a RawValue>;

/// The text of a [`RawJson`] field.
#[inline]
pub(crate) fn txt(v: RawJson<'_>) -> Raw<'_> {
    v.map(RawValue::get)
}

/// Visit each object of a JSON array frame with the [`scan`] scanner. On a malformed frame (not
/// UTF-8, not JSON, not an array of objects, a repeated field) the caller's output and counters
/// are rolled back to where they were and the frame is counted as one `BadJson` rejection.
pub(crate) fn each_in_frame<'de, T: Fields<'de>>(
    frame: &'de [u8],
    c: &mut FeedCounters,
    out: &mut Vec<FeedMsg>,
    mut f: impl FnMut(T, &mut FeedCounters, &mut Vec<FeedMsg>),
) {
    let (saved, len) = (*c, out.len());
    c.frames += 1;
    let ok = match std::str::from_utf8(frame) {
        Ok(text) => scan::each_object::<T>(text, |m| f(m, c, out)).is_ok(),
        Err(_) => false,
    };
    if !ok {
        *c = saved;
        out.truncate(len);
        c.frames += 1;
        c.messages += 1;
        let r = Reject::new(RejectKind::BadJson, "");
        c.reject(&r);
        out.push(FeedMsg::Rejected(r));
    }
}

/// The raw text of a required field.
#[inline]
pub(crate) fn req<'a>(v: Raw<'a>, field: &'static str) -> Result<&'a str, Reject> {
    v.ok_or(Reject::new(RejectKind::MissingField, field))
}

/// A JSON string's value from its raw text (borrowed unless it has escapes).
#[inline]
pub(crate) fn string<'a>(raw: &'a str, field: &'static str) -> Result<Cow<'a, str>, Reject> {
    let b = raw.as_bytes();
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        let inner = &raw[1..raw.len() - 1];
        if !inner.contains('\\') {
            return Ok(Cow::Borrowed(inner));
        }
        if let Ok(s) = serde_json::from_str::<String>(raw) {
            return Ok(Cow::Owned(s));
        }
    }
    Err(Reject::new(RejectKind::NotAString, field))
}

/// A required string field.
#[inline]
pub(crate) fn req_str<'a>(v: Raw<'a>, field: &'static str) -> Result<Cow<'a, str>, Reject> {
    string(req(v, field)?, field)
}

/// A required price (1e-9 fixed point, sign kept).
#[inline]
pub(crate) fn px(v: Raw<'_>, field: &'static str) -> Result<i64, Reject> {
    num::px_e9(req(v, field)?).map_err(|k| Reject::new(k, field))
}

/// A required non-negative whole count.
#[inline]
pub(crate) fn count(v: Raw<'_>, field: &'static str) -> Result<u64, Reject> {
    num::count(req(v, field)?).map_err(|k| Reject::new(k, field))
}

/// A required RFC 3339 timestamp string, to ns.
#[inline]
pub(crate) fn rfc3339(v: Raw<'_>, field: &'static str) -> Result<i64, Reject> {
    let s = string(req(v, field)?, field).map_err(|_| Reject::new(RejectKind::BadTimestamp, field))?;
    num::rfc3339_ns(&s).map_err(|k| Reject::new(k, field))
}

/// A required Unix-ms timestamp, to ns.
#[inline]
pub(crate) fn unix_ms(v: Raw<'_>, field: &'static str) -> Result<i64, Reject> {
    num::ms_to_ns(req(v, field)?).map_err(|k| Reject::new(k, field))
}

/// A REST history bar from its fields (the time already parsed): exact prices, a whole volume, the
/// bar checks. Alpaca and Polygon pages differ only in how they write the time.
pub(crate) fn rest_bar(
    ts_event_ns: i64,
    o: Raw<'_>,
    h: Raw<'_>,
    l: Raw<'_>,
    c: Raw<'_>,
    v: Raw<'_>,
) -> Result<engine::records::Bar, Reject> {
    let bar = engine::records::Bar {
        ts_event_ns,
        open_px_e9: px(o, "o")?,
        high_px_e9: px(h, "h")?,
        low_px_e9: px(l, "l")?,
        close_px_e9: px(c, "c")?,
        volume: count(v, "v")?,
    };
    check_bar(&bar)?;
    Ok(bar)
}

/// Map a bar's validation fault to a rejection.
pub(crate) fn check_bar(bar: &engine::records::Bar) -> Result<(), Reject> {
    use engine::records::BarFault;
    bar.validate().map_err(|f| {
        let (kind, field) = match f {
            BarFault::NonPositivePrice => (RejectKind::NonPositivePrice, "o/h/l/c"),
            BarFault::HighBelowLow => (RejectKind::HighBelowLow, "h"),
            BarFault::OutsideRange => (RejectKind::OutsideRange, "o/c"),
        };
        Reject::new(kind, field)
    })
}
