//! The trading REST routes: auth, the rate limit, request parsing and validation, Alpaca's error
//! JSON (`{"code":...,"message":...}`).

use super::book::{NewOrder, Refusal, Tif, Type};
use super::{lock, parse_dec};
use crate::exchange::clock::wall_now_ns;
use crate::exchange::net::Request;
use crate::exchange::server::Shared;
use engine::records::Side;
use serde_json::Value;
use std::io::{self, Write};
use std::sync::atomic::Ordering;

/// A broker response (with extra headers, unlike the market-data side's).
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

fn json(status: u16, body: String) -> Resp {
    Resp { status, body, headers: Vec::new() }
}

fn error(status: u16, code: u32, msg: &str) -> Resp {
    json(status, serde_json::json!({"code": code, "message": msg}).to_string())
}

fn refusal((status, code, msg): Refusal) -> Resp {
    error(status, code, &msg)
}

fn to_json<T: serde::Serialize>(v: &T) -> Resp {
    json(200, serde_json::to_string(v).unwrap_or_default())
}

/// True for the paths the broker serves.
pub(crate) fn owns(path: &str) -> bool {
    path == "/v2/account"
        || path == "/v2/orders"
        || path.starts_with("/v2/orders/")
        || path.starts_with("/v2/orders:")
        || path == "/v2/positions"
        || path.starts_with("/v2/positions/")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Write `resp` (keep-alive unless `close`).
pub(crate) fn write(w: &mut impl Write, resp: &Resp, close: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    if resp.status != 204 {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(if close { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" });
    let mut out = head.into_bytes();
    out.extend_from_slice(resp.body.as_bytes());
    w.write_all(&out)?;
    w.flush()
}

/// Answer a trading request.
pub(crate) fn handle(shared: &Shared, req: &Request) -> Resp {
    match (req.header("apca-api-key-id"), req.header("apca-api-secret-key")) {
        (Some(k), Some(s)) if k == shared.key && s == shared.secret => {}
        _ => return error(401, 40110000, "request is not authorized: send APCA-API-KEY-ID and APCA-API-SECRET-KEY"),
    }
    let b = &shared.broker;
    let lim = b.limit();
    let per_min = b.cfg.rate_limit_per_min;
    let mut resp = if lim.ok {
        let r = route(shared, req);
        if req.method != "GET" {
            b.wake();
        }
        r
    } else {
        b.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut r = error(429, 42910000, "too many requests");
        // An injected 429 (a fault) asks for one second; the window's own for the rest of it.
        let wait = if lim.forced { 1 } else { (lim.reset_s - wall_now_ns() / 1_000_000_000).max(1) };
        r.headers.push(("Retry-After", wait.to_string()));
        r
    };
    if per_min > 0 || !lim.ok {
        resp.headers.push(("X-RateLimit-Limit", per_min.to_string()));
        resp.headers.push(("X-RateLimit-Remaining", if lim.ok { lim.remaining } else { 0 }.to_string()));
        resp.headers.push(("X-RateLimit-Reset", lim.reset_s.to_string()));
    }
    resp
}

fn route(shared: &Shared, req: &Request) -> Resp {
    let path = req.path.as_str();
    let m = req.method.as_str();
    if path == "/v2/account" {
        return if m == "GET" { to_json(&lock(&shared.broker.book).account()) } else { not_allowed() };
    }
    if path == "/v2/orders:by_client_order_id" {
        if m != "GET" {
            return not_allowed();
        }
        let book = lock(&shared.broker.book);
        return match req.param("client_order_id").and_then(|c| book.find_client(c)) {
            Some(i) => to_json(&book.order_view(i)),
            None => error(404, 40410000, "order not found"),
        };
    }
    if path == "/v2/orders" {
        return match m {
            "GET" => list_orders(shared, req),
            "POST" => post_order(shared, req),
            "DELETE" => cancel_all(shared),
            _ => not_allowed(),
        };
    }
    if let Some(id) = path.strip_prefix("/v2/orders/") {
        return match m {
            "GET" => {
                let book = lock(&shared.broker.book);
                match book.find(id) {
                    Some(i) => to_json(&book.order_view(i)),
                    None => error(404, 40410000, "order not found"),
                }
            }
            "DELETE" => cancel_one(shared, id),
            "PATCH" => patch_order(shared, req, id),
            _ => not_allowed(),
        };
    }
    if path == "/v2/positions" {
        return match m {
            "GET" => to_json(&lock(&shared.broker.book).positions()),
            "DELETE" => close_all(shared),
            _ => not_allowed(),
        };
    }
    if let Some(sym) = path.strip_prefix("/v2/positions/") {
        return match m {
            "GET" => {
                let book = lock(&shared.broker.book);
                match book.symbol(sym).and_then(|s| book.position_view(s)) {
                    Some(p) => to_json(&p),
                    None => error(404, 40410000, "position does not exist"),
                }
            }
            "DELETE" => match close_position(shared, sym, req.param("qty")) {
                Ok(i) => to_json(&lock(&shared.broker.book).order_view(i)),
                Err(r) => refusal(r),
            },
            _ => not_allowed(),
        };
    }
    error(404, 40410000, "not found")
}

fn not_allowed() -> Resp {
    error(405, 40510000, "method not allowed")
}

// ---- parsing ------------------------------------------------------------------------------------

/// A JSON string or number as text (`None` for absent or null).
fn text(v: &Value, field: &str) -> Result<Option<String>, Refusal> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err((422, 40010001, format!("{field} must be a string or a number"))),
    }
}

fn qty_of(v: &Value) -> Result<Option<u32>, Refusal> {
    let Some(t) = text(v, "qty")? else { return Ok(None) };
    let bad = || {
        (
            422,
            40010001,
            format!("qty {t}: give a whole number of shares > 0 (fractional orders are not supported here)"),
        )
    };
    let q = parse_dec(&t).ok_or_else(bad)?;
    if q <= 0 || q % 1_000_000_000 != 0 {
        return Err(bad());
    }
    u32::try_from(q / 1_000_000_000).map(Some).map_err(|_| bad())
}

fn price_of(v: &Value, field: &str) -> Result<Option<i64>, Refusal> {
    let Some(t) = text(v, field)? else { return Ok(None) };
    let p =
        parse_dec(&t).filter(|p| *p > 0).ok_or_else(|| (422, 40010001, format!("{field} {t}: give a price > 0")))?;
    // Alpaca's tick rule: 2 decimals at or above $1, 4 below.
    let tick = if p >= 1_000_000_000 { 10_000_000 } else { 100_000 };
    if p % tick != 0 {
        return Err((422, 42210000, "sub-penny increment does not fulfill minimum pricing criteria".into()));
    }
    i64::try_from(p).map(Some).map_err(|_| (422, 40010001, format!("{field} {t} is too large")))
}

fn body_of(req: &Request) -> Result<Value, Refusal> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err((400, 40010000, "request body format is invalid: send a JSON object".into())),
    }
}

fn parse_order(shared: &Shared, v: &Value) -> Result<NewOrder, Refusal> {
    let bad = |m: String| (422, 40010001, m);
    let symbol = text(v, "symbol")?.ok_or_else(|| bad("symbol is required".into()))?;
    let sym = lock(&shared.broker.book).symbol(&symbol).ok_or_else(|| {
        bad(format!("asset {symbol} not found: the local exchange trades only the symbols in its data"))
    })?;
    if text(v, "notional")?.is_some() {
        return Err(bad("notional orders are not supported here: give qty in whole shares".into()));
    }
    let qty = qty_of(v)?.ok_or_else(|| bad("qty is required".into()))?;
    let side = match text(v, "side")?.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        s => return Err(bad(format!("side {}: give buy or sell", s.unwrap_or("(missing)")))),
    };
    let type_s = text(v, "type")?.or(text(v, "order_type")?).unwrap_or_default();
    let typ = match Type::parse(&type_s) {
        Some(t) => t,
        None if type_s == "trailing_stop" => {
            return Err(bad(
                "trailing_stop orders are not supported here: use market, limit, stop or stop_limit".into()
            ));
        }
        None => return Err(bad(format!("type {type_s:?}: give market, limit, stop or stop_limit"))),
    };
    match text(v, "order_class")?.as_deref() {
        None | Some("") | Some("simple") => {}
        Some(c) => return Err(bad(format!("order_class {c} is not supported here: simple orders only"))),
    }
    let tif_s = text(v, "time_in_force")?.unwrap_or_default();
    let tif = match Tif::parse(&tif_s) {
        Some(t) => t,
        None if tif_s == "opg" || tif_s == "cls" => {
            return Err(bad(format!("time_in_force {tif_s} is not supported here: use day, gtc, ioc or fok")));
        }
        None => return Err(bad(format!("time_in_force {tif_s:?}: give day, gtc, ioc or fok"))),
    };
    let limit = price_of(v, "limit_price")?;
    let stop = price_of(v, "stop_price")?;
    let (limit_e9, stop_e9) = match typ {
        Type::Market => (0, 0),
        Type::Limit => (limit.ok_or_else(|| bad("limit_price is required for limit orders".into()))?, 0),
        Type::Stop => (0, stop.ok_or_else(|| bad("stop_price is required for stop orders".into()))?),
        Type::StopLimit => (
            limit.ok_or_else(|| bad("limit_price is required for stop_limit orders".into()))?,
            stop.ok_or_else(|| bad("stop_price is required for stop_limit orders".into()))?,
        ),
    };
    let extended_hours = v.get("extended_hours").and_then(Value::as_bool).unwrap_or(false);
    if extended_hours && !(typ == Type::Limit && tif == Tif::Day) {
        return Err(bad("extended hours order must be DAY limit orders".into()));
    }
    let client_order_id = text(v, "client_order_id")?;
    if client_order_id.as_ref().is_some_and(|c| c.is_empty() || c.len() > 128) {
        return Err(bad("client_order_id must be 1 to 128 characters".into()));
    }
    Ok(NewOrder { sym, qty, side, typ, tif, limit_e9, stop_e9, client_order_id, extended_hours })
}

// ---- handlers -----------------------------------------------------------------------------------

fn post_order(shared: &Shared, req: &Request) -> Resp {
    let o = match body_of(req).and_then(|v| parse_order(shared, &v)) {
        Ok(o) => o,
        Err(r) => {
            shared.broker.counters.rejects.fetch_add(1, Ordering::Relaxed);
            return refusal(r);
        }
    };
    submit(shared, o).map_or_else(refusal, |v| to_json(&v))
}

fn submit(shared: &Shared, o: NewOrder) -> Result<super::OrderView, Refusal> {
    let b = &shared.broker;
    let latency = b.ack_latency_ms();
    let mut book = lock(&b.book);
    let i = book.submit(o, shared.clock.now_ns(), wall_now_ns(), latency, b, None)?;
    Ok(book.order_view(i))
}

fn list_orders(shared: &Shared, req: &Request) -> Resp {
    let status = req.param("status").unwrap_or("open");
    if !matches!(status, "open" | "closed" | "all") {
        return error(422, 40010001, "status: give open, closed or all");
    }
    let limit = match req.param("limit").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        _ => return error(422, 40010001, "limit: give 1 to 500"),
    };
    let asc = match req.param("direction") {
        None | Some("desc") => false,
        Some("asc") => true,
        _ => return error(422, 40010001, "direction: give asc or desc"),
    };
    let symbols: Option<Vec<String>> =
        req.param("symbols").filter(|s| !s.is_empty()).map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    to_json(&lock(&shared.broker.book).list(status, limit, asc, symbols.as_deref()))
}

fn cancel_one(shared: &Shared, id: &str) -> Resp {
    let b = &shared.broker;
    let latency = b.ack_latency_ms();
    let mut book = lock(&b.book);
    let Some(i) = book.find(id) else { return error(404, 40410000, "order not found") };
    let mut ev = Vec::new();
    let r = book.cancel(i, shared.clock.now_ns(), wall_now_ns(), latency, b, &mut ev);
    b.emit(&book, ev);
    match r {
        Ok(()) => json(204, String::new()),
        Err(r) => refusal(r),
    }
}

fn cancel_all(shared: &Shared) -> Resp {
    let b = &shared.broker;
    let latency = b.ack_latency_ms();
    let mut book = lock(&b.book);
    let mut ev = Vec::new();
    let mut out = Vec::new();
    for i in book.open() {
        let st = match book.cancel(i, shared.clock.now_ns(), wall_now_ns(), latency, b, &mut ev) {
            Ok(()) => 200,
            Err((s, ..)) => s,
        };
        let v = book.order_view(i);
        out.push(serde_json::json!({"id": v.id, "status": st, "body": v}));
    }
    b.emit(&book, ev);
    json(207, Value::Array(out).to_string())
}

fn patch_order(shared: &Shared, req: &Request, id: &str) -> Resp {
    let v = match body_of(req) {
        Ok(v) => v,
        Err(r) => return refusal(r),
    };
    let parsed = (|| {
        let qty = qty_of(&v)?;
        let limit = price_of(&v, "limit_price")?;
        let stop = price_of(&v, "stop_price")?;
        let tif = match text(&v, "time_in_force")? {
            None => None,
            Some(t) => Some(Tif::parse(&t).ok_or((
                422,
                40010001,
                format!("time_in_force {t:?}: give day, gtc, ioc or fok"),
            ))?),
        };
        let client = text(&v, "client_order_id")?;
        Ok::<_, Refusal>((qty, limit, stop, tif, client))
    })();
    let (qty, limit, stop, tif, client) = match parsed {
        Ok(p) => p,
        Err(r) => return refusal(r),
    };
    let b = &shared.broker;
    let latency = b.ack_latency_ms();
    let mut book = lock(&b.book);
    let Some(i) = book.find(id) else { return error(404, 40410000, "order not found") };
    let mut ev = Vec::new();
    let r = book.replace(i, qty, limit, stop, tif, client, shared.clock.now_ns(), wall_now_ns(), latency, b, &mut ev);
    b.emit(&book, ev);
    match r {
        Ok(n) => to_json(&book.order_view(n)),
        Err(r) => refusal(r),
    }
}

fn close_position(shared: &Shared, sym: &str, qty: Option<&str>) -> Result<usize, Refusal> {
    let b = &shared.broker;
    let latency = b.ack_latency_ms();
    let mut book = lock(&b.book);
    let s = book.symbol(sym).ok_or((404, 40410000, "position does not exist".to_string()))?;
    let p = book.position_qty(s);
    if p == 0 {
        return Err((404, 40410000, "position does not exist".into()));
    }
    let q = match qty {
        None => p.unsigned_abs(),
        Some(t) => match parse_dec(t) {
            Some(v) if v > 0 && v % 1_000_000_000 == 0 && (v / 1_000_000_000) as u64 <= p.unsigned_abs() => {
                (v / 1_000_000_000) as u64
            }
            _ => return Err((422, 40010001, format!("qty {t}: give whole shares up to the position's size"))),
        },
    };
    let o = NewOrder {
        sym: s,
        qty: u32::try_from(q).unwrap_or(u32::MAX),
        side: if p > 0 { Side::Sell } else { Side::Buy },
        typ: Type::Market,
        tif: Tif::Day,
        limit_e9: 0,
        stop_e9: 0,
        client_order_id: None,
        extended_hours: false,
    };
    book.submit(o, shared.clock.now_ns(), wall_now_ns(), latency, b, None)
}

fn close_all(shared: &Shared) -> Resp {
    let syms: Vec<String> = lock(&shared.broker.book).positions().into_iter().map(|p| p.symbol).collect();
    let mut out = Vec::new();
    for s in syms {
        match close_position(shared, &s, None) {
            Ok(i) => {
                let v = lock(&shared.broker.book).order_view(i);
                out.push(serde_json::json!({"symbol": s, "status": 200, "body": v}));
            }
            Err((st, code, msg)) => {
                out.push(serde_json::json!({"symbol": s, "status": st, "body": {"code": code, "message": msg}}))
            }
        }
    }
    json(207, Value::Array(out).to_string())
}
