//! Databento's historical `timeseries.get_range` (`POST` or `GET /v0/timeseries.get_range`): the
//! exchange's bars as a DBN stream, written with the `dbn` crate's encoder (zstd when asked).
//!
//! What is served, as Databento's HTTP API documents it and its official clients send it
//! (databento-python `TimeseriesHttpAPI.get_range`, databento-rs `TimeseriesClient::get_range`):
//! - **Auth:** HTTP basic auth, the API key as user name and an empty password. No or another key:
//!   401 `{"detail": ...}`.
//! - **Parameters**, from the form body (`application/x-www-form-urlencoded`) and the query:
//!   `dataset` (required, echoed in the metadata), `symbols` (comma-separated, required),
//!   `schema` (`ohlcv-1s`, `ohlcv-1m`, `ohlcv-1h`, `ohlcv-1d`), `start` (inclusive) and `end`
//!   (exclusive; default: the market clock) as UNIX nanoseconds or ISO 8601, `stype_in`
//!   (`raw_symbol`), `stype_out` (`instrument_id`), `encoding` (`dbn`), `compression` (`zstd` or
//!   `none`), `limit`. Anything else a request gets wrong is 422 `{"detail": ...}` (400 for a
//!   missing parameter), as Databento answers.
//! - **Body:** DBN version 3 metadata (dataset, schema, start, end, `stype_in` raw_symbol,
//!   `stype_out` instrument_id, the symbols asked, `not_found` for the unknown ones, one symbol
//!   mapping per resolved symbol over the request's dates), then OHLCV records of every complete
//!   window by the market clock (no look-ahead), merged across symbols in time order, `ts_event`
//!   the window's start, prices in 1e-9 units as the bar files hold them. Instrument ids are the
//!   symbol's index in the tape + 1. No symbol resolves: 422.
//! - **Faults:** `rest_error` (429 with `Retry-After`, or a 5xx, `{"detail": ...}`) and
//!   `unmapped_record` (one more record for an instrument id the mappings do not name).

use super::data::{MINUTE_NS, SECOND_NS};
use super::net::{Request, Response, percent_decode};
use super::server::Shared;
use dbn::encode::{DbnEncodable, EncodeRecord};
use dbn::{Compression, MappingInterval, Metadata, OhlcvMsg, RecordHeader, SType, Schema, SymbolMapping, rtype};
use std::num::NonZeroU64;

/// The route.
pub(crate) const PATH: &str = "/v0/timeseries.get_range";

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400_000_000_000;

/// A Databento error: `{"detail": msg}`.
pub(crate) fn error(status: u16, msg: &str) -> Response {
    Response::json(status, serde_json::json!({ "detail": msg }).to_string())
}

/// The request's parameters: the form body's, then the query's.
fn params(req: &Request) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let form = req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        let body = String::from_utf8_lossy(&req.body);
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((percent_decode(k, true), percent_decode(v, true)));
        }
    }
    out.extend(req.query.iter().cloned());
    out
}

/// Standard base64 (RFC 4648, with padding) to bytes; `None` when it is not.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim().as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    Some(out)
}

/// `None` when the request carries `Authorization: Basic base64(KEY:)` with the configured key.
fn auth(shared: &Shared, req: &Request) -> Option<Response> {
    let Some(b64) = req.header("authorization").and_then(|a| a.strip_prefix("Basic ")) else {
        return Some(error(401, "Authorization failed: no API key (send HTTP basic auth, the key as user name)"));
    };
    let user_pass = unbase64(b64).and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
    let key = user_pass.split_once(':').map_or(user_pass.as_str(), |(u, _)| u);
    (key != shared.key).then(|| error(401, "Authorization failed: unknown API key"))
}

/// A time parameter: UNIX nanoseconds or ISO 8601.
fn time(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| super::wire::parse_time(s))
}

/// The bar length of an OHLCV schema, with its rtype.
fn schema_len(schema: Schema) -> Option<(i64, u8)> {
    Some(match schema {
        Schema::Ohlcv1S => (SECOND_NS, rtype::OHLCV_1S),
        Schema::Ohlcv1M => (MINUTE_NS, rtype::OHLCV_1M),
        Schema::Ohlcv1H => (60 * MINUTE_NS, rtype::OHLCV_1H),
        Schema::Ohlcv1D => (1440 * MINUTE_NS, rtype::OHLCV_1D),
        _ => return None,
    })
}

/// The UTC date of `ns`.
fn date(ns: i64) -> time::Date {
    // 2440588 is the Julian day of 1970-01-01.
    time::Date::from_julian_day(2_440_588 + ns.div_euclid(DAY_NS) as i32).unwrap_or(time::Date::MIN)
}

/// A checked request.
struct Query {
    dataset: String,
    symbols: Vec<String>,
    schema: Schema,
    start: i64,
    end: i64,
    zstd: bool,
    limit: Option<NonZeroU64>,
}

/// Read and check the parameters (Databento's 400/422 with `detail` otherwise).
fn query(shared: &Shared, req: &Request) -> Result<Query, Response> {
    let p = params(req);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
    let missing = |k: &str| error(400, &format!("missing required parameter `{k}`"));
    let dataset = get("dataset").ok_or_else(|| missing("dataset"))?.to_string();
    let symbols: Vec<String> = get("symbols")
        .ok_or_else(|| missing("symbols"))?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let schema_s = get("schema").ok_or_else(|| missing("schema"))?;
    let schema = schema_s.parse::<Schema>().ok().filter(|s| schema_len(*s).is_some()).ok_or_else(|| {
        error(422, &format!("schema `{schema_s}`: the local exchange serves ohlcv-1s, ohlcv-1m, ohlcv-1h and ohlcv-1d"))
    })?;
    for (k, want) in [("stype_in", "raw_symbol"), ("stype_out", "instrument_id"), ("encoding", "dbn")] {
        if let Some(v) = get(k).filter(|v| *v != want) {
            return Err(error(422, &format!("{k} `{v}`: the local exchange serves {k}={want} only")));
        }
    }
    let zstd = match get("compression") {
        None | Some("none") => false,
        Some("zstd") => true,
        Some(c) => return Err(error(422, &format!("compression `{c}`: use zstd or none"))),
    };
    let start_s = get("start").ok_or_else(|| missing("start"))?;
    let start =
        time(start_s).ok_or_else(|| error(422, &format!("start `{start_s}`: not ISO 8601 or UNIX nanoseconds")))?;
    let end = match get("end") {
        None => shared.clock.now_ns(),
        Some(e) => time(e).ok_or_else(|| error(422, &format!("end `{e}`: not ISO 8601 or UNIX nanoseconds")))?,
    };
    if start >= end {
        return Err(error(422, "`start` must be before `end`"));
    }
    let limit = match get("limit").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => NonZeroU64::new(n),
        Some(Err(_)) => return Err(error(422, "limit: not a whole number")),
    };
    Ok(Query { dataset, symbols, schema, start, end, zstd, limit })
}

/// Answer `timeseries.get_range`.
pub(crate) fn handle(shared: &Shared, req: &Request) -> Response {
    if req.method != "GET" && req.method != "POST" {
        return error(405, "method not allowed: use POST (or GET)");
    }
    if let Some(r) = auth(shared, req) {
        return r;
    }
    if let Some(r) = super::rest::injected_error(shared, error) {
        return r;
    }
    match query(shared, req) {
        Ok(q) => body(shared, &q),
        Err(r) => r,
    }
}

/// The DBN stream for a checked request.
fn body(shared: &Shared, q: &Query) -> Response {
    let (len, rt) = schema_len(q.schema).unwrap_or((MINUTE_NS, rtype::OHLCV_1M));
    let now = shared.clock.now_ns();
    let mut records: Vec<OhlcvMsg> = Vec::new();
    let (mut mappings, mut not_found) = (Vec::new(), Vec::new());
    let last_date = date(q.end - 1).next_day().unwrap_or(time::Date::MAX);
    for sym in &q.symbols {
        let Some(i) = shared.tape.find(sym) else {
            not_found.push(sym.clone());
            continue;
        };
        let id = i as u32 + 1;
        mappings.push(SymbolMapping {
            raw_symbol: sym.clone(),
            intervals: vec![MappingInterval { start_date: date(q.start), end_date: last_date, symbol: id.to_string() }],
        });
        let bars = super::rest::series(&shared.tape.symbols[i], len, now);
        let from = bars.partition_point(|b| b.ts_event_ns < q.start);
        records.extend(bars[from..].iter().take_while(|b| b.ts_event_ns < q.end).map(|b| OhlcvMsg {
            hd: RecordHeader::new::<OhlcvMsg>(rt, dbn::Publisher::XnasItchXnas as u16, id, b.ts_event_ns as u64),
            open: b.open_px_e9,
            high: b.high_px_e9,
            low: b.low_px_e9,
            close: b.close_px_e9,
            volume: b.volume,
        }));
    }
    if mappings.is_empty() {
        return error(422, &format!("None of the symbols could be resolved: {}", q.symbols.join(",")));
    }
    // Databento merges the symbols of one request in time order.
    records.sort_by_key(|r| (r.hd.ts_event, r.hd.instrument_id));
    if let Some(n) = q.limit {
        records.truncate(usize::try_from(n.get()).unwrap_or(usize::MAX));
    }
    if shared.faults.take_unmapped_record() {
        let mut stray = records.first().cloned().unwrap_or(OhlcvMsg {
            hd: RecordHeader::new::<OhlcvMsg>(rt, 2, 0, q.start as u64),
            open: 1_000_000_000,
            high: 1_000_000_000,
            low: 1_000_000_000,
            close: 1_000_000_000,
            volume: 1,
        });
        stray.hd.instrument_id = u32::MAX - 1;
        records.insert(0, stray);
    }
    let meta = Metadata::builder()
        .dataset(q.dataset.clone())
        .schema(Some(q.schema))
        .start(q.start as u64)
        .end(NonZeroU64::new(q.end as u64))
        .limit(q.limit)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .symbols(q.symbols.clone())
        .not_found(not_found)
        .mappings(mappings)
        .build();
    match encode(&meta, &records, q.zstd) {
        Ok(b) => Response::bytes(200, b),
        Err(e) => error(500, &format!("encoding DBN: {e}")),
    }
}

/// `records` after `meta` as DBN, zstd-compressed when `zstd`.
fn encode<R: DbnEncodable>(meta: &Metadata, records: &[R], zstd: bool) -> dbn::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + std::mem::size_of_val(records));
    {
        let compression = if zstd { Compression::Zstd } else { Compression::None };
        let mut enc =
            dbn::encode::DynWriter::new(&mut out, compression).and_then(|w| dbn::encode::dbn::Encoder::new(w, meta))?;
        for r in records {
            enc.encode_record(r)?;
        }
        enc.flush()?;
        // Dropping the encoder finishes the zstd frame.
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(unbase64("a2V5Og==").unwrap(), b"key:");
        assert_eq!(unbase64("YWJj").unwrap(), b"abc");
        assert_eq!(unbase64("YWI=").unwrap(), b"ab");
        assert!(unbase64("a2V5O").is_none());
        assert!(unbase64("a2V5!g==").is_none());
        assert_eq!(date(0), time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap());
    }
}
