//! JSON text of the messages the exchange sends, written by hand from fixed-point values (prices
//! never go through floating point): Alpaca `b`/`u`/`q` and REST bars, Polygon `A`/`AM` and
//! aggregates REST results.

use engine::records::Bar;
use std::fmt::Write;

/// A 1e-9 fixed-point price as a JSON number with no trailing zeros (`189120000000` -> `189.12`).
pub fn px(out: &mut String, px_e9: i64) {
    if px_e9 < 0 {
        out.push('-');
    }
    let v = px_e9.unsigned_abs();
    let (int, frac) = (v / 1_000_000_000, v % 1_000_000_000);
    let _ = write!(out, "{int}");
    if frac != 0 {
        let mut f = format!("{frac:09}");
        while f.ends_with('0') {
            f.pop();
        }
        out.push('.');
        out.push_str(&f);
    }
}

/// RFC 3339 UTC (`2024-03-01T14:31:00Z`, with fractional seconds only when non-zero).
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| "1970-01-01T00:00:00Z".into(), |t| t.to_string())
}

/// Parse RFC 3339 (`2024-03-01T14:31:00Z`, offsets allowed) or a date `YYYY-MM-DD` (midnight UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).ok();
    }
    let d: jiff::civil::Date = s.parse().ok()?;
    let t = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    i64::try_from(t.as_nanosecond()).ok()
}

/// The synthetic trade count of a bar: one trade per 100 shares, at least one when there is volume.
pub fn trade_count(b: &Bar) -> u64 {
    if b.volume == 0 { 0 } else { b.volume.div_ceil(100) }
}

/// The bar's VWAP stand-in: the typical price (h + l + c) / 3.
pub fn vwap_e9(b: &Bar) -> i64 {
    ((i128::from(b.high_px_e9) + i128::from(b.low_px_e9) + i128::from(b.close_px_e9)) / 3) as i64
}

fn ohlcv(out: &mut String, b: &Bar) {
    out.push_str("\"o\":");
    px(out, b.open_px_e9);
    out.push_str(",\"h\":");
    px(out, b.high_px_e9);
    out.push_str(",\"l\":");
    px(out, b.low_px_e9);
    out.push_str(",\"c\":");
    px(out, b.close_px_e9);
    let _ = write!(out, ",\"v\":{}", b.volume);
}

/// Alpaca stream bar element: `{"T":"b","S":..,"o":..,"h":..,"l":..,"c":..,"v":..,"t":..,"n":..,"vw":..}`
/// (`ty` = `b` or `u`).
pub fn alpaca_bar(out: &mut String, ty: &str, sym: &str, b: &Bar) {
    let _ = write!(out, "{{\"T\":\"{ty}\",\"S\":\"{sym}\",");
    ohlcv(out, b);
    let _ = write!(out, ",\"t\":\"{}\",\"n\":{},\"vw\":", rfc3339(b.ts_event_ns), trade_count(b));
    px(out, vwap_e9(b));
    out.push('}');
}

/// The quote synthesized from a closed bar (see the module docs): bid = close - 0.01, ask = close
/// + 0.01 (bid floored at 0.01), one round lot each side, stamped at the window's end.
pub fn alpaca_quote(out: &mut String, sym: &str, b: &Bar, end_ns: i64) {
    const CENT: i64 = 10_000_000;
    let bid = (b.close_px_e9 - CENT).max(CENT);
    let ask = b.close_px_e9 + CENT;
    let _ = write!(out, "{{\"T\":\"q\",\"S\":\"{sym}\",\"bx\":\"V\",\"bp\":");
    px(out, bid);
    out.push_str(",\"bs\":1,\"ax\":\"V\",\"ap\":");
    px(out, ask);
    let _ = write!(out, ",\"as\":1,\"t\":\"{}\",\"c\":[\"R\"],\"z\":\"C\"}}", rfc3339(end_ns));
}

/// Alpaca REST bar: `{"t":..,"o":..,"h":..,"l":..,"c":..,"v":..,"n":..,"vw":..}`.
pub fn alpaca_rest_bar(out: &mut String, b: &Bar) {
    let _ = write!(out, "{{\"t\":\"{}\",", rfc3339(b.ts_event_ns));
    ohlcv(out, b);
    let _ = write!(out, ",\"n\":{},\"vw\":", trade_count(b));
    px(out, vwap_e9(b));
    out.push('}');
}

/// Today's running figures for Polygon's `av`, `op`, `a`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DayStats {
    /// UTC day number the figures belong to.
    pub day: i64,
    /// Accumulated volume.
    pub av: u64,
    /// Today's first open.
    pub op_e9: i64,
    /// Sum of typical price x volume (for `a`).
    pub pv: i128,
}

impl DayStats {
    /// Add a bar (resetting on a new UTC day).
    pub fn add(&mut self, b: &Bar) {
        let day = b.ts_event_ns.div_euclid(86_400 * 1_000_000_000);
        if day != self.day || self.op_e9 == 0 {
            *self = DayStats { day, av: 0, op_e9: b.open_px_e9, pv: 0 };
        }
        self.av += b.volume;
        self.pv += i128::from(vwap_e9(b)) * i128::from(b.volume);
    }

    fn vwap_e9(&self, b: &Bar) -> i64 {
        if self.av == 0 { vwap_e9(b) } else { (self.pv / i128::from(self.av)) as i64 }
    }
}

/// Polygon aggregate event: `{"ev":"AM","sym":..,"o":..,"h":..,"l":..,"c":..,"v":..,"av":..,"op":..,"vw":..,"a":..,"z":..,"s":ms,"e":ms}`.
pub fn polygon_agg(out: &mut String, ev: &str, sym: &str, b: &Bar, len_ns: i64, day: &DayStats) {
    let _ = write!(out, "{{\"ev\":\"{ev}\",\"sym\":\"{sym}\",");
    ohlcv(out, b);
    let _ = write!(out, ",\"av\":{},\"op\":", day.av);
    px(out, day.op_e9);
    out.push_str(",\"vw\":");
    px(out, vwap_e9(b));
    out.push_str(",\"a\":");
    px(out, day.vwap_e9(b));
    let n = trade_count(b);
    let z = b.volume.checked_div(n).unwrap_or(0);
    let s = b.ts_event_ns / 1_000_000;
    let _ = write!(out, ",\"z\":{z},\"s\":{s},\"e\":{}}}", s + len_ns / 1_000_000);
}

/// Polygon REST aggregate: `{"t":ms,"o":..,"h":..,"l":..,"c":..,"v":..,"vw":..,"n":..}`.
pub fn polygon_rest_bar(out: &mut String, b: &Bar) {
    let _ = write!(out, "{{\"t\":{},", b.ts_event_ns / 1_000_000);
    ohlcv(out, b);
    out.push_str(",\"vw\":");
    px(out, vwap_e9(b));
    let _ = write!(out, ",\"n\":{}}}", trade_count(b));
}

/// A JSON string literal (escaped).
pub fn string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact() {
        let mut s = String::new();
        for v in [189_120_000_000, 1_000_000_000, 1, -2_500_000_000, 0] {
            px(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "189.12 1 0.000000001 -2.5 0 ");
    }

    #[test]
    fn times_round_trip() {
        let t = parse_time("2024-03-01T14:31:00Z").unwrap();
        assert_eq!(rfc3339(t), "2024-03-01T14:31:00Z");
        let mut am = String::new();
        let b = Bar { ts_event_ns: t, open_px_e9: 2, high_px_e9: 3, low_px_e9: 1, close_px_e9: 2, volume: 250 };
        polygon_agg(&mut am, "AM", "X", &b, 60_000_000_000, &DayStats::default());
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&am).unwrap();
        assert_eq!(v.len(), 14, "each field once: {am}");
        assert_eq!(parse_time("2024-03-01"), parse_time("2024-03-01T00:00:00Z"));
    }
}
