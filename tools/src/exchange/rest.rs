//! REST: Alpaca historical bars and Polygon aggregates, paged, never past the market clock.

use super::data::{MINUTE_NS, SECOND_NS, SymbolBars, aggregate};
use super::net::{Request, Response};
use super::server::Shared;
use super::wire;
use engine::records::Bar;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn handle(shared: &Shared, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::json(405, "{\"message\":\"method not allowed\"}".into());
    }
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let alpaca_fail = |status: u16, msg: &str| alpaca_error(status, u32::from(status) * 100_000, msg);
    match parts.as_slice() {
        ["v2", "stocks", "bars"] => alpaca_auth(shared, req)
            .or_else(|| injected_error(shared, alpaca_fail))
            .unwrap_or_else(|| alpaca_bars(shared, req, None)),
        ["v2", "stocks", sym, "bars"] => alpaca_auth(shared, req)
            .or_else(|| injected_error(shared, alpaca_fail))
            .unwrap_or_else(|| alpaca_bars(shared, req, Some(sym))),
        ["v2", "aggs", "ticker", t, "range", mult, span, from, to] => polygon_auth(shared, req)
            .or_else(|| injected_error(shared, polygon_error))
            .unwrap_or_else(|| polygon_aggs(shared, req, t, mult, span, from, to)),
        _ => Response::json(404, "{\"message\":\"not found\"}".into()),
    }
}

/// A pending `rest_error` fault as the provider's error (`error(status, message)`): a 429 carries
/// `Retry-After`. `None` when no fault is pending.
pub(super) fn injected_error(shared: &Shared, error: impl Fn(u16, &str) -> Response) -> Option<Response> {
    let (status, retry_after_s) = shared.faults.take_rest_error()?;
    if status == 429 {
        Some(error(429, "too many requests (injected)").with_header("Retry-After", retry_after_s.to_string()))
    } else {
        Some(error(status, "server error (injected)"))
    }
}

// ---- Alpaca ---------------------------------------------------------------------------------

fn alpaca_error(status: u16, code: u32, msg: &str) -> Response {
    Response::json(status, format!("{{\"code\":{code},\"message\":{}}}", wire::string(msg)))
}

/// `None` when the request carries the configured key and secret.
fn alpaca_auth(shared: &Shared, req: &Request) -> Option<Response> {
    match (req.header("apca-api-key-id"), req.header("apca-api-secret-key")) {
        (Some(k), Some(s)) if k == shared.key && s == shared.secret => None,
        (Some(_), Some(_)) => Some(alpaca_error(403, 40310000, "forbidden")),
        _ => Some(alpaca_error(401, 40110000, "request is not authorized")),
    }
}

/// An Alpaca timeframe (`1Min`, `5Min`, `1Hour`, `1Day`, also `5T`, `1H`, `1D`) in ns.
fn timeframe_ns(tf: &str) -> Option<i64> {
    let split = tf.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = tf.split_at(split);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit_ns = match unit {
        "Min" | "T" => MINUTE_NS,
        "Hour" | "H" => 60 * MINUTE_NS,
        "Day" | "D" if n == 1 => 1440 * MINUTE_NS,
        _ => return None,
    };
    Some(n * unit_ns)
}

/// A symbol's complete windows of `len_ns` by market time `now`.
pub(super) fn series(s: &SymbolBars, len_ns: i64, now: i64) -> Cow<'_, [Bar]> {
    let done = |bars: &'_ [Bar], len: i64| bars.partition_point(|b| b.ts_event_ns + len <= now);
    if len_ns == MINUTE_NS {
        Cow::Borrowed(&s.minute[..done(&s.minute, MINUTE_NS)])
    } else if len_ns == SECOND_NS && !s.second.is_empty() {
        Cow::Borrowed(&s.second[..done(&s.second, SECOND_NS)])
    } else if len_ns < MINUTE_NS && !s.second.is_empty() {
        Cow::Owned(aggregate(&s.second, len_ns, now))
    } else if len_ns % MINUTE_NS == 0 {
        Cow::Owned(aggregate(&s.minute, len_ns, now))
    } else {
        Cow::Owned(Vec::new())
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

fn alpaca_bars(shared: &Shared, req: &Request, one: Option<&str>) -> Response {
    let now = shared.clock.now_ns();
    let Some(len) = req.param("timeframe").and_then(timeframe_ns) else {
        return alpaca_error(422, 42210000, "invalid timeframe");
    };
    let mut symbols: Vec<String> = match one {
        Some(s) => vec![s.to_string()],
        None => match req.param("symbols") {
            Some(s) if !s.trim().is_empty() => {
                s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
            }
            _ => return alpaca_error(422, 42210000, "missing symbols"),
        },
    };
    symbols.sort();
    symbols.dedup();
    let time = |name: &str, default: i64| match req.param(name) {
        None | Some("") => Some(default),
        Some(t) => wire::parse_time(t),
    };
    let (Some(start), Some(end)) = (time("start", i64::MIN), time("end", i64::MAX)) else {
        return alpaca_error(422, 42210000, "invalid start or end: use RFC 3339 or YYYY-MM-DD");
    };
    let limit = match req.param("limit").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        _ => return alpaca_error(422, 42210000, "invalid limit: 1 to 10000"),
    };
    if req.param("sort").is_some_and(|s| s != "asc") {
        return alpaca_error(422, 42210000, "the local exchange serves sort=asc only");
    }
    // The token is the (symbol, bar start) to resume from, hex-encoded.
    let resume: Option<(String, i64)> = match req.param("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match unhex(t).and_then(|s| {
            let (sym, ts) = s.rsplit_once(' ')?;
            Some((sym.to_string(), ts.parse().ok()?))
        }) {
            Some(r) => Some(r),
            None => return alpaca_error(422, 42210000, "invalid page_token"),
        },
    };
    let mut out = String::with_capacity(256 + 120 * limit.min(2000));
    let mut count = 0usize;
    let mut next: Option<(String, i64)> = None;
    if one.is_some() {
        out.push_str("{\"bars\":[");
    } else {
        out.push_str("{\"bars\":{");
    }
    let mut first_sym = true;
    'syms: for name in &symbols {
        if let Some((rs, _)) = &resume
            && name < rs
        {
            continue;
        }
        let Some(i) = shared.tape.find(name) else { continue };
        let bars = series(&shared.tape.symbols[i], len, now);
        let lo = match &resume {
            Some((rs, rt)) if rs == name => *rt,
            _ => start,
        };
        let from = bars.partition_point(|b| b.ts_event_ns < lo);
        let mut wrote_any = false;
        for b in &bars[from..] {
            if b.ts_event_ns > end {
                break;
            }
            if count == limit {
                next = Some((name.clone(), b.ts_event_ns));
                if wrote_any && one.is_none() {
                    out.push(']');
                }
                break 'syms;
            }
            if !wrote_any {
                if one.is_none() {
                    if !first_sym {
                        out.push(',');
                    }
                    out.push_str(&wire::string(name));
                    out.push_str(":[");
                }
                first_sym = false;
            } else {
                out.push(',');
            }
            wire::alpaca_rest_bar(&mut out, b);
            wrote_any = true;
            count += 1;
        }
        if wrote_any && one.is_none() {
            out.push(']');
        }
    }
    let token = match next {
        Some((s, t)) => wire::string(&hex(&format!("{s} {t}"))),
        None => "null".into(),
    };
    match one {
        Some(sym) => out.push_str(&format!("],\"symbol\":{},\"next_page_token\":{token}}}", wire::string(sym))),
        None => out.push_str(&format!("}},\"next_page_token\":{token}}}")),
    }
    Response::json(200, out)
}

// ---- Polygon --------------------------------------------------------------------------------

fn polygon_error(status: u16, msg: &str) -> Response {
    let id = REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    Response::json(
        status,
        format!("{{\"status\":\"ERROR\",\"request_id\":\"rt-{id}\",\"error\":{}}}", wire::string(msg)),
    )
}

fn polygon_auth(shared: &Shared, req: &Request) -> Option<Response> {
    let bearer = req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    match req.param("apiKey").or(bearer) {
        Some(k) if k == shared.key => None,
        Some(_) => Some(polygon_error(401, "Unknown API Key")),
        None => Some(polygon_error(401, "API Key was not provided")),
    }
}

/// `from`/`to`: Unix ms or `YYYY-MM-DD` (a date `to` covers the whole day).
fn polygon_time(s: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return ms.checked_mul(1_000_000);
    }
    let t = wire::parse_time(s)?;
    Some(if end_of_day && !s.contains('T') { t + 1440 * MINUTE_NS - 1 } else { t })
}

fn polygon_aggs(
    shared: &Shared,
    req: &Request,
    ticker: &str,
    mult: &str,
    span: &str,
    from: &str,
    to: &str,
) -> Response {
    let now = shared.clock.now_ns();
    let unit = match span {
        "second" => SECOND_NS,
        "minute" => MINUTE_NS,
        "hour" => 60 * MINUTE_NS,
        "day" => 1440 * MINUTE_NS,
        _ => return polygon_error(400, "unsupported timespan: second, minute, hour or day"),
    };
    let Some(mult_n) = mult.parse::<i64>().ok().filter(|m| *m > 0) else {
        return polygon_error(400, "invalid multiplier");
    };
    let (Some(lo), Some(hi)) = (polygon_time(from, false), polygon_time(to, true)) else {
        return polygon_error(400, "invalid from/to: Unix ms or YYYY-MM-DD");
    };
    let limit = match req.param("limit").map(str::parse::<usize>) {
        None => 5000,
        Some(Ok(n)) if (1..=50_000).contains(&n) => n,
        _ => return polygon_error(400, "invalid limit: 1 to 50000"),
    };
    if req.param("sort").is_some_and(|s| s != "asc") {
        return polygon_error(400, "the local exchange serves sort=asc only");
    }
    let bars: Cow<'_, [Bar]> = match shared.tape.find(ticker) {
        Some(i) => series(&shared.tape.symbols[i], mult_n * unit, now),
        None => Cow::Owned(Vec::new()),
    };
    let first = bars.partition_point(|b| b.ts_event_ns < lo);
    let mut results = String::new();
    let mut n = 0usize;
    let mut next_ms = None;
    for b in &bars[first..] {
        if b.ts_event_ns > hi {
            break;
        }
        if n == limit {
            next_ms = Some(b.ts_event_ns / 1_000_000);
            break;
        }
        if n > 0 {
            results.push(',');
        }
        wire::polygon_rest_bar(&mut results, b);
        n += 1;
    }
    let id = REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let mut out =
        format!("{{\"ticker\":{},\"queryCount\":{n},\"resultsCount\":{n},\"adjusted\":true,", wire::string(ticker));
    if n > 0 {
        out.push_str("\"results\":[");
        out.push_str(&results);
        out.push_str("],");
    }
    out.push_str(&format!("\"status\":\"OK\",\"request_id\":\"rt-{id}\""));
    if let Some(ms) = next_ms {
        // Like the real service, the next URL omits apiKey (clients add it or send a Bearer header).
        let query: Vec<String> =
            req.query.iter().filter(|(k, _)| k != "apiKey").map(|(k, v)| format!("{k}={v}")).collect();
        let mut url = format!("{}/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{ms}/{to}", shared.origin);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        out.push_str(&format!(",\"next_url\":{}", wire::string(&url)));
    }
    out.push('}');
    Response::json(200, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframes() {
        assert_eq!(timeframe_ns("1Min"), Some(MINUTE_NS));
        assert_eq!(timeframe_ns("15Min"), Some(15 * MINUTE_NS));
        assert_eq!(timeframe_ns("1Hour"), Some(60 * MINUTE_NS));
        assert_eq!(timeframe_ns("1Day"), Some(1440 * MINUTE_NS));
        assert_eq!(timeframe_ns("2Day"), None);
        assert_eq!(timeframe_ns("Min"), None);
        assert_eq!(unhex(&hex("AAPL 123")).as_deref(), Some("AAPL 123"));
    }
}
