//! The JSON decoding of Alpaca's order, position, account, cancel-all, error and trade update
//! objects into [`super::types`] (serde_json; numbers read from their text, exactly, never
//! through `f64`).

use super::types::*;
use crate::msg::RejectKind;
use crate::num;
use engine::records::{OrderType, Side};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A JSON value's number text: `"189.10"` -> `189.10`, `189.10` -> itself; `null` and `""` ->
/// `None`.
fn num_text(raw: Option<&RawValue>) -> Option<&str> {
    let t = raw?.get().trim();
    let t = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t);
    if t == "null" || t.is_empty() { None } else { Some(t) }
}

fn bad(what: &str, text: &str, kind: RejectKind) -> String {
    let shown: String = text.chars().take(40).collect();
    format!("{what} {shown:?}: {}", kind_text(kind))
}

fn kind_text(kind: RejectKind) -> &'static str {
    match kind {
        RejectKind::FractionalCount => "not a whole number of shares (ringtape trades whole shares)",
        RejectKind::NegativeCount => "negative",
        RejectKind::OutOfRange => "out of range",
        _ => "not a number",
    }
}

pub(crate) fn px_opt(what: &str, raw: Option<&RawValue>) -> Result<Option<i64>, String> {
    match num_text(raw) {
        None => Ok(None),
        Some(t) => num::px_e9(t).map(Some).map_err(|k| bad(what, t, k)),
    }
}

pub(crate) fn px_req(what: &str, raw: Option<&RawValue>) -> Result<i64, String> {
    px_opt(what, raw)?.ok_or_else(|| format!("{what} missing"))
}

pub(crate) fn shares_opt(what: &str, raw: Option<&RawValue>) -> Result<Option<u32>, String> {
    match num_text(raw) {
        None => Ok(None),
        Some(t) => {
            let n = num::count(t).map_err(|k| bad(what, t, k))?;
            u32::try_from(n).map(Some).map_err(|_| bad(what, t, RejectKind::OutOfRange))
        }
    }
}

/// Signed whole shares (`"-10"`).
pub(crate) fn signed_shares_opt(what: &str, raw: Option<&RawValue>) -> Result<Option<i64>, String> {
    match num_text(raw) {
        None => Ok(None),
        Some(t) => {
            let (neg, body) = match t.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, t),
            };
            let n = num::count(body).map_err(|k| bad(what, t, k))?;
            let n = i64::try_from(n).map_err(|_| bad(what, t, RejectKind::OutOfRange))?;
            Ok(Some(if neg { -n } else { n }))
        }
    }
}

pub(crate) fn time_opt(what: &str, s: Option<&str>) -> Result<Option<i64>, String> {
    match s {
        None | Some("") => Ok(None),
        Some(t) => num::rfc3339_ns(t).map(Some).map_err(|_| format!("{what} {t:?}: not an RFC 3339 time")),
    }
}

fn side(s: &str) -> Result<Side, String> {
    match s {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(format!("order side {other:?}: not buy or sell")),
    }
}

fn order_type(s: &str) -> Option<OrderType> {
    match s {
        "market" => Some(OrderType::Market),
        "limit" => Some(OrderType::Limit),
        "stop" | "stop_limit" => Some(OrderType::Stop),
        _ => None,
    }
}

/// Alpaca's order object (fields ringtape uses; the rest are ignored).
#[derive(Deserialize)]
pub(crate) struct WireOrder<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    side: Cow<'a, str>,
    #[serde(default, borrow, rename = "type")]
    type_: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    order_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    qty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    filled_qty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    filled_avg_price: Option<&'a RawValue>,
    #[serde(default, borrow)]
    limit_price: Option<&'a RawValue>,
    #[serde(default, borrow)]
    stop_price: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, borrow)]
    replaces: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    replaced_by: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    updated_at: Option<Cow<'a, str>>,
}

impl WireOrder<'_> {
    pub(crate) fn decode(&self) -> Result<BrokerOrder, String> {
        let kind = self.type_.as_deref().or(self.order_type.as_deref()).unwrap_or("");
        Ok(BrokerOrder {
            id: self.id.clone().into_owned(),
            client_order_id: self.client_order_id.as_deref().unwrap_or("").to_owned(),
            symbol: self.symbol.clone().into_owned(),
            side: side(&self.side)?,
            order_type: order_type(kind),
            qty: shares_opt("order qty", self.qty)?.unwrap_or(0),
            filled_qty: shares_opt("order filled_qty", self.filled_qty)?.unwrap_or(0),
            filled_avg_px_e9: px_opt("order filled_avg_price", self.filled_avg_price)?,
            limit_px_e9: px_opt("order limit_price", self.limit_price)?,
            stop_px_e9: px_opt("order stop_price", self.stop_price)?,
            status: OrderStatus::parse(&self.status),
            replaces: self.replaces.as_deref().filter(|s| !s.is_empty()).map(str::to_owned),
            replaced_by: self.replaced_by.as_deref().filter(|s| !s.is_empty()).map(str::to_owned),
            updated_at_ns: time_opt("order updated_at", self.updated_at.as_deref())?,
        })
    }
}

/// One order object.
pub(crate) fn decode_order(body: &[u8]) -> Result<BrokerOrder, String> {
    let w: WireOrder<'_> = serde_json::from_slice(body).map_err(|e| format!("order object: {e}"))?;
    w.decode()
}

/// A list of order objects.
pub(crate) fn decode_orders(body: &[u8]) -> Result<Vec<BrokerOrder>, String> {
    let ws: Vec<WireOrder<'_>> = serde_json::from_slice(body).map_err(|e| format!("order list: {e}"))?;
    ws.iter().map(WireOrder::decode).collect()
}

#[derive(Deserialize)]
struct WirePosition<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    qty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    side: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    avg_entry_price: Option<&'a RawValue>,
}

/// `GET /v2/positions`: shorts have a negative `qty` (a positive one with `side: "short"` is
/// negated too).
pub(crate) fn decode_positions(body: &[u8]) -> Result<Vec<BrokerPosition>, String> {
    let ws: Vec<WirePosition<'_>> = serde_json::from_slice(body).map_err(|e| format!("position list: {e}"))?;
    ws.iter()
        .map(|w| {
            let mut qty = signed_shares_opt("position qty", w.qty)?.ok_or("position qty missing")?;
            if w.side.as_deref() == Some("short") && qty > 0 {
                qty = -qty;
            }
            Ok(BrokerPosition {
                symbol: w.symbol.clone().into_owned(),
                qty,
                avg_entry_px_e9: px_req("position avg_entry_price", w.avg_entry_price)?,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct WireAccount<'a> {
    #[serde(default, borrow)]
    cash: Option<&'a RawValue>,
    #[serde(default, borrow)]
    buying_power: Option<&'a RawValue>,
    #[serde(default, borrow)]
    equity: Option<&'a RawValue>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default)]
    trading_blocked: Option<bool>,
}

/// `GET /v2/account`.
pub(crate) fn decode_account(body: &[u8]) -> Result<BrokerAccount, String> {
    let w: WireAccount<'_> = serde_json::from_slice(body).map_err(|e| format!("account object: {e}"))?;
    Ok(BrokerAccount {
        cash_e9: px_req("account cash", w.cash)?,
        buying_power_e9: px_req("account buying_power", w.buying_power)?,
        equity_e9: px_req("account equity", w.equity)?,
        status: w.status.as_deref().unwrap_or("").to_owned(),
        trading_blocked: w.trading_blocked.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct WireCancel<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    status: u16,
}

/// `DELETE /v2/orders` (207): `[{"id":..,"status":200,"body":{..}}]`.
pub(crate) fn decode_cancel_all(body: &[u8]) -> Result<Vec<(String, u16)>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let ws: Vec<WireCancel<'_>> = serde_json::from_slice(body).map_err(|e| format!("cancel-all list: {e}"))?;
    Ok(ws.into_iter().map(|w| (w.id.into_owned(), w.status)).collect())
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(default)]
    code: Option<u64>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// Alpaca's error body `{"code":40310000,"message":"..."}`: the code, and the message (or the
/// start of the body when it is not that JSON).
pub(crate) fn decode_error(body: &[u8]) -> (Option<u64>, String) {
    match serde_json::from_slice::<WireError<'_>>(body) {
        Ok(w) if w.code.is_some() || w.message.is_some() => (w.code, w.message.as_deref().unwrap_or("").to_owned()),
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            (None, text.trim().trim_end_matches('\u{FFFD}').to_owned())
        }
    }
}

/// The `data` of a `trade_updates` message.
#[derive(Deserialize)]
pub(crate) struct WireUpdate<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    order: WireOrder<'a>,
    #[serde(default, borrow)]
    execution_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    price: Option<&'a RawValue>,
    #[serde(default, borrow)]
    qty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    position_qty: Option<&'a RawValue>,
}

impl WireUpdate<'_> {
    pub(crate) fn decode(&self, recv_ns: i64) -> Result<TradeUpdate, String> {
        Ok(TradeUpdate {
            event: TradeEvent::parse(&self.event),
            order: self.order.decode()?,
            price_e9: px_opt("update price", self.price)?,
            qty: shares_opt("update qty", self.qty)?,
            position_qty: signed_shares_opt("update position_qty", self.position_qty)?,
            execution_id: self.execution_id.as_deref().filter(|s| !s.is_empty()).map(str::to_owned),
            timestamp_ns: time_opt("update timestamp", self.timestamp.as_deref())?,
            recv_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_strings_or_numbers_parse_exactly() {
        let a = br#"{"id":"o1","symbol":"AAPL","side":"buy","type":"limit","qty":"100","filled_qty":40,
            "filled_avg_price":"189.105","limit_price":189.1,"stop_price":null,"status":"partially_filled",
            "updated_at":"2024-03-01T14:31:02.123456789Z"}"#;
        let o = decode_order(a).unwrap();
        assert_eq!((o.qty, o.filled_qty), (100, 40));
        assert_eq!(
            (o.filled_avg_px_e9, o.limit_px_e9, o.stop_px_e9),
            (Some(189_105_000_000), Some(189_100_000_000), None)
        );
        assert_eq!(o.status, OrderStatus::PartiallyFilled);
        assert_eq!(o.updated_at_ns, Some(1_709_303_462_123_456_789));
        assert_eq!(o.client_order_id, "");
    }

    #[test]
    fn fractional_or_bad_numbers_are_decode_errors() {
        let frac = br#"{"id":"o","symbol":"A","side":"buy","qty":"1.5","status":"new"}"#;
        assert!(decode_order(frac).unwrap_err().contains("whole number"));
        let side = br#"{"id":"o","symbol":"A","side":"long","qty":"1","status":"new"}"#;
        assert!(decode_order(side).unwrap_err().contains("side"));
        let px = br#"{"id":"o","symbol":"A","side":"buy","qty":"1","limit_price":"abc","status":"new"}"#;
        assert!(decode_order(px).unwrap_err().contains("limit_price"));
    }

    #[test]
    fn every_status_and_event_name_round_trips_and_others_are_unknown() {
        for s in [
            "new",
            "accepted",
            "pending_new",
            "accepted_for_bidding",
            "partially_filled",
            "filled",
            "done_for_day",
            "canceled",
            "expired",
            "replaced",
            "pending_cancel",
            "pending_replace",
            "rejected",
            "suspended",
            "stopped",
            "calculated",
            "held",
        ] {
            let st = OrderStatus::parse(s);
            assert!(!matches!(st, OrderStatus::Unknown(_)), "{s}");
            assert_eq!(st.as_str(), s);
        }
        for e in [
            "new",
            "fill",
            "partial_fill",
            "canceled",
            "expired",
            "done_for_day",
            "replaced",
            "rejected",
            "pending_new",
            "stopped",
            "pending_cancel",
            "pending_replace",
            "calculated",
            "suspended",
            "order_replace_rejected",
            "order_cancel_rejected",
        ] {
            let ev = TradeEvent::parse(e);
            assert!(!matches!(ev, TradeEvent::Unknown(_)), "{e}");
            assert_eq!(ev.as_str(), e);
        }
        assert_eq!(OrderStatus::parse("zombie"), OrderStatus::Unknown("zombie".into()));
        assert_eq!(TradeEvent::parse("trade_bust").as_str(), "trade_bust");
        assert!(
            OrderStatus::New.is_open() && !OrderStatus::Filled.is_open() && OrderStatus::Unknown("x".into()).is_open()
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            decode_error(br#"{"code":40310000,"message":"insufficient buying power"}"#),
            (Some(40310000), "insufficient buying power".to_owned())
        );
        assert_eq!(decode_error(b"<html>bad gateway</html>"), (None, "<html>bad gateway</html>".to_owned()));
    }
}
