//! The protocol layer's tests (one binary): hand-written frames in PROTOCOLS.md's shapes, every
//! rejection reason, REST pages, client messages, and the bar gate's ordering and dedupe.

use engine::records::{Bar, Interval, Quote, SymbolId, Trade};
use feeds::{
    AlpacaChannels, AlpacaError, BarGate, BarGates, BarKind, Control, ErrorAction, FeedCounters, FeedMsg, GateConfig,
    Offer, RejectKind, RestError, SymbolMap, alpaca, order_history, polygon,
};

const AAPL: SymbolId = SymbolId(0);
const MSFT: SymbolId = SymbolId(1);
const RECV: i64 = 1_709_303_520_100_000_000;
/// 2024-03-01T14:31:00Z
const T1431: i64 = 1_709_303_460_000_000_000;
const MIN: i64 = 60_000_000_000;

fn symbols() -> SymbolMap {
    let mut m = SymbolMap::new();
    m.insert("AAPL", AAPL).unwrap();
    m.insert("MSFT", MSFT).unwrap();
    m
}

fn alpaca_frame(frame: &str) -> (Vec<FeedMsg>, FeedCounters) {
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    alpaca::decode_stream(frame.as_bytes(), RECV, &symbols(), &mut c, &mut out);
    (out, c)
}

fn polygon_frame(frame: &str) -> (Vec<FeedMsg>, FeedCounters) {
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    polygon::decode_stream(frame.as_bytes(), RECV, &symbols(), &mut c, &mut out);
    (out, c)
}

/// Every message lands in exactly one bucket.
fn balanced(c: &FeedCounters) -> bool {
    c.messages == c.bars + c.quotes + c.trades + c.control + c.unknown_types + c.unknown_symbols + c.parse_errors
}

fn one_reject(out: &[FeedMsg]) -> feeds::Reject {
    match out {
        [FeedMsg::Rejected(r)] => *r,
        other => panic!("expected one rejection, got {other:?}"),
    }
}

const BAR: &str = r#"{"T":"b","S":"AAPL","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"t":"2024-03-01T14:31:00Z","n":412,"vw":189.08}"#;

fn aapl_bar() -> Bar {
    Bar {
        ts_event_ns: T1431,
        open_px_e9: 189_010_000_000,
        high_px_e9: 189_200_000_000,
        low_px_e9: 188_950_000_000,
        close_px_e9: 189_120_000_000,
        volume: 51234,
    }
}

// ---- Alpaca stream ------------------------------------------------------------------------

#[test]
fn alpaca_bar_updated_and_daily_bars() {
    let u = BAR.replace(r#""T":"b""#, r#""T":"u""#).replace("189.12", "189.15");
    let d = BAR.replace(r#""T":"b""#, r#""T":"d""#).replace("14:31:00Z", "05:00:00Z");
    let (out, c) = alpaca_frame(&format!("[{BAR},{u},{d}]"));
    let bars: Vec<_> = out
        .iter()
        .map(|m| match m {
            FeedMsg::Bar(b) => *b,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bars[0].bar, aapl_bar());
    assert_eq!(
        (bars[0].symbol, bars[0].interval, bars[0].kind, bars[0].ts_recv_ns),
        (AAPL, Interval::M1, BarKind::Closed, RECV)
    );
    assert_eq!((bars[1].kind, bars[1].bar.close_px_e9), (BarKind::Updated, 189_150_000_000));
    assert_eq!((bars[2].kind, bars[2].interval), (BarKind::Daily, Interval::D1));
    assert_eq!(bars[2].bar.ts_event_ns, T1431 - (9 * 3600 + 31 * 60) * 1_000_000_000);
    assert_eq!((c.frames, c.messages, c.bars, c.updated_bars, c.daily_bars), (1, 3, 3, 1, 1));
    assert!(balanced(&c));
}

#[test]
fn alpaca_prices_as_integers_and_exponents_are_exact() {
    let f = BAR.replace("189.01", "189").replace("189.20", "1.892e2").replace("188.95", "18895E-2");
    let (out, _) = alpaca_frame(&format!("[{f}]"));
    let FeedMsg::Bar(b) = &out[0] else { panic!("{out:?}") };
    assert_eq!(
        (b.bar.open_px_e9, b.bar.high_px_e9, b.bar.low_px_e9),
        (189_000_000_000, 189_200_000_000, 188_950_000_000)
    );
}

#[test]
fn alpaca_quote_and_trade() {
    let q = r#"{"T":"q","S":"AAPL","bx":"V","bp":189.10,"bs":2,"ax":"V","ap":189.12,"as":3,"t":"2024-03-01T14:31:02.123456789Z","c":["R"],"z":"C"}"#;
    let t = r#"{"T":"t","S":"MSFT","i":52983525,"x":"V","p":189.11,"s":100,"t":"2024-03-01T14:31:02.5Z","c":["@"],"z":"C"}"#;
    let (out, c) = alpaca_frame(&format!("[{q},{t}]"));
    let want_q = Quote {
        ts_event_ns: T1431 + 2_123_456_789,
        bid_px_e9: 189_100_000_000,
        ask_px_e9: 189_120_000_000,
        bid_size: 2,
        ask_size: 3,
    };
    let want_t = Trade { ts_event_ns: T1431 + 2_500_000_000, px_e9: 189_110_000_000, size: 100, trade_id: 52_983_525 };
    assert_eq!(out[0], FeedMsg::Quote { symbol: AAPL, quote: want_q, ts_recv_ns: RECV });
    assert_eq!(out[1], FeedMsg::Trade { symbol: MSFT, trade: want_t, ts_recv_ns: RECV });
    let ev = out[0].event().unwrap();
    assert_eq!((ev.as_quote(), ev.ts_recv_ns, ev.symbol), (Some(&want_q), RECV, AAPL));
    assert_eq!(out[1].event().unwrap().as_trade(), Some(&want_t));
    assert_eq!((c.quotes, c.trades), (1, 1));
    // An empty side is sent as 0 and accepted; a trade without an id gets 0.
    let (out, _) = alpaca_frame(&format!("[{}]", q.replace("189.10", "0")));
    assert!(matches!(out[0], FeedMsg::Quote { quote: Quote { bid_px_e9: 0, .. }, .. }));
    let (out, _) = alpaca_frame(&format!("[{}]", t.replace(r#""i":52983525,"#, "")));
    assert!(matches!(out[0], FeedMsg::Trade { trade: Trade { trade_id: 0, .. }, .. }));
}

#[test]
fn alpaca_control_messages() {
    let (out, c) = alpaca_frame(r#"[{"T":"success","msg":"connected"}]"#);
    assert_eq!(out, [FeedMsg::Control(Control::Connected)]);
    assert_eq!(c.control, 1);
    let (out, _) = alpaca_frame(r#"[{"T":"success","msg":"authenticated"}]"#);
    assert_eq!(out, [FeedMsg::Control(Control::Authenticated)]);
    let (out, _) = alpaca_frame(
        r#"[{"T":"subscription","trades":[],"quotes":["AAPL"],"bars":["AAPL"],"updatedBars":["AAPL"],"dailyBars":[],"statuses":[],"lulds":[]}]"#,
    );
    let want = AlpacaChannels {
        bars: vec!["AAPL".into()],
        updated_bars: vec!["AAPL".into()],
        quotes: vec!["AAPL".into()],
        ..AlpacaChannels::default()
    };
    assert_eq!(out, [FeedMsg::Control(Control::Subscription(want))]);
}

#[test]
fn alpaca_every_documented_error_code_is_typed() {
    let cases = [
        (400, AlpacaError::InvalidSyntax, ErrorAction::Continue),
        (401, AlpacaError::NotAuthenticated, ErrorAction::Continue),
        (402, AlpacaError::AuthFailed, ErrorAction::Fatal),
        (403, AlpacaError::AlreadyAuthenticated, ErrorAction::Continue),
        (404, AlpacaError::AuthTimeout, ErrorAction::Reconnect),
        (405, AlpacaError::SymbolLimitExceeded, ErrorAction::Fatal),
        (406, AlpacaError::ConnectionLimitExceeded, ErrorAction::Reconnect),
        (409, AlpacaError::InsufficientSubscription, ErrorAction::Fatal),
        (500, AlpacaError::Internal, ErrorAction::Reconnect),
        (418, AlpacaError::Other(418), ErrorAction::Reconnect),
    ];
    for (code, err, action) in cases {
        let (out, c) = alpaca_frame(&format!(r#"[{{"T":"error","code":{code},"msg":"some text"}}]"#));
        assert_eq!(out, [FeedMsg::Control(Control::Error(err, "some text".into()))], "{code}");
        assert_eq!((err.code(), err.action(), c.control), (code, action, 1));
    }
    assert_eq!(AlpacaError::ConnectionLimitExceeded.to_string(), "alpaca 406 connection limit exceeded");
}

#[test]
fn alpaca_unknown_types_are_counted_not_errors() {
    let frame = format!(
        r#"[{{"T":"s","S":"AAPL","sc":"H"}},{{"T":"c","S":"AAPL"}},{{"T":"x","S":"AAPL"}},{{"T":"l","S":"AAPL"}},{BAR}]"#
    );
    let (out, c) = alpaca_frame(&frame);
    assert_eq!(out.len(), 1);
    assert_eq!((c.unknown_types, c.bars, c.parse_errors), (4, 1, 0));
    assert!(balanced(&c));
}

#[test]
fn alpaca_escaped_symbol_resolves() {
    let (out, _) = alpaca_frame(&format!("[{}]", BAR.replace(r#""S":"AAPL""#, r#""S":"AAP\u004C""#)));
    assert!(matches!(out[0], FeedMsg::Bar(b) if b.symbol == AAPL));
}

/// One element altered -> one typed rejection; the good element next to it still decodes.
#[test]
fn every_message_rejection_reason() {
    let cases: &[(&str, &str, RejectKind, &str)] = &[
        (r#""h":189.20,"#, "", RejectKind::MissingField, "h"),
        (r#""h":189.20"#, r#""h":null"#, RejectKind::MissingField, "h"),
        (r#""h":189.20"#, r#""h":"189.20""#, RejectKind::NotANumber, "h"),
        (r#""h":189.20"#, r#""h":"NaN""#, RejectKind::NotANumber, "h"),
        (r#""h":189.20"#, r#""h":1e300"#, RejectKind::OutOfRange, "h"),
        (r#""v":51234"#, r#""v":1.5"#, RejectKind::FractionalCount, "v"),
        (r#""v":51234"#, r#""v":-1"#, RejectKind::NegativeCount, "v"),
        (r#""l":188.95"#, r#""l":-188.95"#, RejectKind::NonPositivePrice, "o/h/l/c"),
        (r#""o":189.01"#, r#""o":0"#, RejectKind::NonPositivePrice, "o/h/l/c"),
        (r#""h":189.20"#, r#""h":188.00"#, RejectKind::HighBelowLow, "h"),
        (r#""o":189.01"#, r#""o":190"#, RejectKind::OutsideRange, "o/c"),
        (r#""t":"2024-03-01T14:31:00Z""#, r#""t":"2024-03-01 14:31""#, RejectKind::BadTimestamp, "t"),
        (r#""t":"2024-03-01T14:31:00Z""#, r#""t":1709303460"#, RejectKind::BadTimestamp, "t"),
        (r#""S":"AAPL""#, r#""S":"ZZZZ""#, RejectKind::UnknownSymbol, "S"),
        (r#""S":"AAPL""#, r#""S":5"#, RejectKind::NotAString, "S"),
        (r#""T":"b""#, r#""T":7"#, RejectKind::NotAString, "T"),
        (r#""T":"b","#, "", RejectKind::MissingField, "T"),
    ];
    for &(from, to, kind, field) in cases {
        let bad = BAR.replace(from, to);
        assert_ne!(bad, BAR, "{from}");
        let (out, c) = alpaca_frame(&format!("[{bad},{BAR}]"));
        let FeedMsg::Rejected(r) = out[0] else { panic!("{from} -> {to}: {out:?}") };
        assert_eq!((r.kind, r.field), (kind, field), "{from} -> {to}");
        assert!(matches!(out[1], FeedMsg::Bar(_)), "the rest of the frame still decodes");
        assert_eq!(c.rejected(kind), 1);
        if kind == RejectKind::UnknownSymbol {
            assert_eq!((c.unknown_symbols, c.parse_errors, r.symbol_name()), (1, 0, Some("ZZZZ")));
        } else {
            assert_eq!((c.unknown_symbols, c.parse_errors), (0, 1));
        }
        assert!(balanced(&c), "{from} -> {to}: {c:?}");
    }
    // Quotes and trades: negative or zero prices.
    let q = r#"{"T":"q","S":"AAPL","bp":-1,"bs":2,"ap":189.12,"as":3,"t":"2024-03-01T14:31:02Z"}"#;
    assert_eq!(one_reject(&alpaca_frame(&format!("[{q}]")).0).kind, RejectKind::NonPositivePrice);
    let q = r#"{"T":"q","S":"AAPL","bp":1,"bs":5000000000,"ap":189.12,"as":3,"t":"2024-03-01T14:31:02Z"}"#;
    assert_eq!(one_reject(&alpaca_frame(&format!("[{q}]")).0).kind, RejectKind::OutOfRange);
    let t = r#"{"T":"t","S":"AAPL","p":0,"s":100,"t":"2024-03-01T14:31:02Z"}"#;
    let r = one_reject(&alpaca_frame(&format!("[{t}]")).0);
    assert_eq!((r.kind, r.field, r.msg_type), (RejectKind::NonPositivePrice, "p", "t"));
    // An error without a numeric code.
    let r = one_reject(&alpaca_frame(r#"[{"T":"error","msg":"?"}]"#).0);
    assert_eq!(r.kind, RejectKind::BadErrorCode);
    let r = one_reject(&alpaca_frame(r#"[{"T":"error","code":"402"}]"#).0);
    assert_eq!(r.kind, RejectKind::BadErrorCode);
}

#[test]
fn reject_kinds_index_their_counters() {
    let mut names = std::collections::HashSet::new();
    for (i, k) in RejectKind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
        assert!(names.insert(k.as_str()), "names are distinct");
    }
}

#[test]
fn reject_reads_well() {
    let (out, _) = alpaca_frame(&format!("[{}]", BAR.replace("188.95", "190")));
    let r = one_reject(&out);
    assert_eq!(r.to_string(), r#"high below low in "h" (type "b", symbol AAPL)"#);
}

#[test]
fn malformed_frames_are_one_counted_rejection_and_roll_back() {
    for frame in [
        format!("[{BAR},"),                                  // truncated
        format!("[{BAR},{}]", BAR.replace("189.20", "NaN")), // bare NaN token
        BAR.to_string(),                                     // an object, not an array
        format!("[{BAR},42]"),                               // an element that is not an object
        format!("[{BAR}] trailing"),                         // garbage after the array
        String::new(),
        "\u{0}\u{1}".to_string(),
    ] {
        let (out, c) = alpaca_frame(&frame);
        let r = one_reject(&out);
        assert_eq!((r.kind, r.field), (RejectKind::BadJson, ""), "{frame}");
        assert_eq!(
            (c.frames, c.messages, c.bars, c.parse_errors),
            (1, 1, 0, 1),
            "{frame}: nothing of it counts as decoded"
        );
        assert!(balanced(&c));
        let (out, c) = polygon_frame(&frame);
        assert_eq!((one_reject(&out).kind, c.parse_errors), (RejectKind::BadJson, 1));
    }
}

// ---- Polygon stream ------------------------------------------------------------------------

const AM: &str = r#"{"ev":"AM","sym":"AAPL","v":51234,"av":8123456,"op":187.50,"vw":189.0801,"o":189.01,"c":189.12,"h":189.20,"l":188.95,"a":188.4411,"z":87,"s":1709303460000,"e":1709303520000}"#;

#[test]
fn polygon_status_messages() {
    let (out, c) = polygon_frame(
        r#"[{"ev":"status","status":"connected","message":"Connected Successfully"},{"ev":"status","status":"auth_success","message":"authenticated"},{"ev":"status","status":"auth_failed","message":"authentication failed"},{"ev":"status","status":"success","message":"subscribed to: AM.AAPL"}]"#,
    );
    assert_eq!(
        out,
        [
            FeedMsg::Control(Control::Connected),
            FeedMsg::Control(Control::Authenticated),
            FeedMsg::Control(Control::AuthFailed("authentication failed".into())),
            FeedMsg::Control(Control::Status { status: "success".into(), message: "subscribed to: AM.AAPL".into() }),
        ]
    );
    assert_eq!(c.control, 4);
    let r = one_reject(&polygon_frame(r#"[{"ev":"status","message":"x"}]"#).0);
    assert_eq!((r.kind, r.field), (RejectKind::MissingField, "status"));
}

#[test]
fn polygon_minute_and_second_aggregates() {
    let a = r#"{"ev":"A","sym":"MSFT","v":200,"o":410.5,"c":410.55,"h":410.6,"l":410.5,"s":1709303461000,"e":1709303462000}"#;
    let am2 = AM.replace("1709303460000", "1709303520000").replace("1709303520000}", "1709303580000}");
    let (out, c) = polygon_frame(&format!(r#"[{AM},{a},{am2},{{"ev":"T","sym":"AAPL","p":1}}]"#));
    let FeedMsg::Bar(b) = out[0] else { panic!("{out:?}") };
    assert_eq!(
        (b.symbol, b.interval, b.kind, b.bar, b.ts_recv_ns),
        (AAPL, Interval::M1, BarKind::Closed, aapl_bar(), RECV)
    );
    let FeedMsg::Bar(b) = out[1] else { panic!("{out:?}") };
    assert_eq!(
        (b.symbol, b.interval, b.bar.ts_event_ns, b.bar.close_px_e9),
        (MSFT, Interval::S1, T1431 + 1_000_000_000, 410_550_000_000)
    );
    let FeedMsg::Bar(b) = out[2] else { panic!("{out:?}") };
    assert_eq!(b.bar.ts_event_ns, T1431 + MIN);
    assert_eq!((c.bars, c.unknown_types, out.len()), (3, 1, 3));
    assert!(balanced(&c));
}

#[test]
fn polygon_rejections() {
    let cases: &[(&str, &str, RejectKind, &str)] = &[
        ("1709303520000}", "1709303519000}", RejectKind::BadWindow, "e"), // 59 s
        ("1709303520000}", "1709303400000}", RejectKind::BadWindow, "e"), // reversed
        ("1709303520000}", "1709303520000.0000001}", RejectKind::BadTimestamp, "e"), // sub-ns
        (r#""s":1709303460000"#, "\"s\":-5", RejectKind::BadTimestamp, "s"),
        (r#""sym":"AAPL""#, r#""sym":"QQQ""#, RejectKind::UnknownSymbol, "sym"),
        (r#""l":188.95"#, r#""l":189.5"#, RejectKind::HighBelowLow, "h"),
        (r#""o":189.01"#, r#""o":-1"#, RejectKind::NonPositivePrice, "o/h/l/c"),
        (r#""c":189.12,"#, "", RejectKind::MissingField, "c"),
        (r#""ev":"AM","#, "", RejectKind::MissingField, "ev"),
    ];
    for &(from, to, kind, field) in cases {
        let bad = AM.replace(from, to);
        assert_ne!(bad, AM, "{from}");
        let (out, c) = polygon_frame(&format!("[{bad},{AM}]"));
        let FeedMsg::Rejected(r) = out[0] else { panic!("{from}: {out:?}") };
        assert_eq!((r.kind, r.field), (kind, field), "{from} -> {to}");
        assert!(matches!(out[1], FeedMsg::Bar(_)));
        assert!(balanced(&c));
    }
    // An A event must be a 1 s window.
    let a = AM.replace(r#""ev":"AM""#, r#""ev":"A""#);
    assert_eq!(one_reject(&polygon_frame(&format!("[{a}]")).0).kind, RejectKind::BadWindow);
}

// ---- REST history -------------------------------------------------------------------------

#[test]
fn alpaca_bars_pages() {
    let body = br#"{"bars":{"AAPL":[{"t":"2024-03-01T14:31:00Z","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"n":412,"vw":189.08},{"t":"2024-03-01T14:32:00Z","o":189.12,"h":189.3,"l":189.0,"c":189.2,"v":100,"n":3,"vw":189.1}],"MSFT":[{"t":"2024-03-01T14:31:00Z","o":410,"h":411,"l":409,"c":410.5,"v":7,"n":1,"vw":410}],"ZZZ":[{"t":"2024-03-01T14:31:00Z","o":1,"h":1,"l":1,"c":1,"v":1}]},"next_page_token":"QUFQTHxNfDIwMjQ="}"#;
    let mut c = FeedCounters::default();
    let page = alpaca::decode_bars_page(body, Interval::M1, &symbols(), &mut c).unwrap();
    assert_eq!(page.next.as_deref(), Some("QUFQTHxNfDIwMjQ="));
    assert_eq!(page.bars.len(), 3);
    assert_eq!((page.bars[0].symbol, page.bars[0].bar), (AAPL, aapl_bar()));
    assert_eq!((page.bars[2].symbol, page.bars[2].bar.close_px_e9), (MSFT, 410_500_000_000));
    assert_eq!(page.rejects.len(), 1);
    assert_eq!((page.rejects[0].kind, page.rejects[0].symbol_name()), (RejectKind::UnknownSymbol, Some("ZZZ")));
    assert_eq!((c.frames, c.messages, c.bars, c.unknown_symbols), (1, 4, 3, 1));

    // Single-symbol form, last page, one bad bar kept out.
    let body = br#"{"bars":[{"t":"2024-03-01T14:31:00Z","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234},{"t":"2024-03-01T14:32:00Z","o":5,"h":4,"l":4.5,"c":4.5,"v":1}],"symbol":"AAPL","next_page_token":null}"#;
    let page = alpaca::decode_bars_page(body, Interval::M1, &symbols(), &mut c).unwrap();
    assert_eq!((page.bars.len(), page.next, page.rejects[0].kind), (1, None, RejectKind::HighBelowLow));
    // No bars at all.
    let page =
        alpaca::decode_bars_page(br#"{"bars":null,"next_page_token":null}"#, Interval::M1, &symbols(), &mut c).unwrap();
    assert!(page.bars.is_empty() && page.next.is_none());
    let page =
        alpaca::decode_bars_page(br#"{"bars":{},"next_page_token":null}"#, Interval::M1, &symbols(), &mut c).unwrap();
    assert!(page.bars.is_empty());
    // Malformed.
    let before = c.parse_errors;
    assert!(matches!(
        alpaca::decode_bars_page(br#"{"bars":{"AAPL":5}}"#, Interval::M1, &symbols(), &mut c),
        Err(RestError::Malformed(_))
    ));
    assert!(matches!(
        alpaca::decode_bars_page(b"<html>", Interval::M1, &symbols(), &mut c),
        Err(RestError::Malformed(_))
    ));
    assert_eq!(c.parse_errors, before + 2);
    assert_eq!(alpaca::timeframe(Interval::M1).as_deref(), Some("1Min"));
    assert_eq!(alpaca::timeframe(Interval { secs: 300 }).as_deref(), Some("5Min"));
    assert_eq!(alpaca::timeframe(Interval::H1).as_deref(), Some("1Hour"));
    assert_eq!(alpaca::timeframe(Interval::D1).as_deref(), Some("1Day"));
    assert_eq!(alpaca::timeframe(Interval::S1), None);
}

#[test]
fn polygon_aggs_pages() {
    let body = br#"{"ticker":"AAPL","queryCount":2,"resultsCount":2,"adjusted":true,"results":[{"t":1709303460000,"o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"vw":189.08,"n":412},{"t":1709303520000,"o":189.12,"h":189.3,"l":189.0,"c":189.2,"v":1.5e2,"vw":189.1,"n":3}],"status":"OK","request_id":"abc","next_url":"https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=xyz"}"#;
    let mut c = FeedCounters::default();
    let page = polygon::decode_aggs_page(body, Interval::M1, &symbols(), &mut c).unwrap();
    assert_eq!(page.bars.len(), 2);
    assert_eq!((page.bars[0].bar, page.bars[1].bar.volume, page.bars[1].interval), (aapl_bar(), 150, Interval::M1));
    assert!(page.next.unwrap().ends_with("cursor=xyz"));
    let page = polygon::decode_aggs_page(
        br#"{"ticker":"AAPL","queryCount":0,"resultsCount":0,"status":"OK"}"#,
        Interval::M1,
        &symbols(),
        &mut c,
    )
    .unwrap();
    assert!(page.bars.is_empty() && page.next.is_none());
    let err =
        polygon::decode_aggs_page(br#"{"status":"ERROR","error":"Unknown API Key"}"#, Interval::M1, &symbols(), &mut c);
    assert_eq!(err, Err(RestError::Service("Unknown API Key".into())));
    let page = polygon::decode_aggs_page(
        br#"{"ticker":"QQQ","results":[{"t":1,"o":1,"h":1,"l":1,"c":1,"v":1}]}"#,
        Interval::M1,
        &symbols(),
        &mut c,
    )
    .unwrap();
    assert_eq!(page.rejects[0].kind, RejectKind::UnknownSymbol);
    assert!(matches!(
        polygon::decode_aggs_page(br#"{"results":7}"#, Interval::M1, &symbols(), &mut c),
        Err(RestError::Malformed(_))
    ));
}

#[test]
fn history_pages_merge_into_one_ordered_stream() {
    let mut c = FeedCounters::default();
    // Alpaca pages run symbol by symbol; the second page repeats AAPL 14:32 with a correction.
    let p1 = br#"{"bars":{"AAPL":[{"t":"2024-03-01T14:31:00Z","o":1,"h":2,"l":1,"c":2,"v":1},{"t":"2024-03-01T14:32:00Z","o":1,"h":2,"l":1,"c":2,"v":1}]},"next_page_token":"p2"}"#;
    let p2 = br#"{"bars":{"AAPL":[{"t":"2024-03-01T14:32:00Z","o":1,"h":3,"l":1,"c":3,"v":2}],"MSFT":[{"t":"2024-03-01T14:31:00Z","o":1,"h":2,"l":1,"c":2,"v":1}]},"next_page_token":null}"#;
    let mut all = alpaca::decode_bars_page(p1, Interval::M1, &symbols(), &mut c).unwrap().bars;
    all.extend(alpaca::decode_bars_page(p2, Interval::M1, &symbols(), &mut c).unwrap().bars);
    assert_eq!(order_history(&mut all), 1);
    let keys: Vec<_> = all.iter().map(|h| (h.bar.ts_event_ns, h.symbol)).collect();
    assert_eq!(keys, [(T1431, AAPL), (T1431, MSFT), (T1431 + MIN, AAPL)]);
    assert_eq!(all[2].bar.close_px_e9, 3_000_000_000, "the later page's version wins");
}

// ---- client messages ----------------------------------------------------------------------

#[test]
fn client_messages() {
    assert_eq!(alpaca::auth_message("K", "S\"x"), r#"{"action":"auth","key":"K","secret":"S\"x"}"#);
    let ch = AlpacaChannels {
        bars: vec!["AAPL".into()],
        updated_bars: vec!["AAPL".into()],
        quotes: vec!["AAPL".into(), "MSFT".into()],
        ..AlpacaChannels::default()
    };
    assert_eq!(
        alpaca::subscribe_message(alpaca::Action::Subscribe, &ch),
        r#"{"action":"subscribe","bars":["AAPL"],"updatedBars":["AAPL"],"dailyBars":[],"quotes":["AAPL","MSFT"],"trades":[]}"#
    );
    assert!(
        alpaca::subscribe_message(alpaca::Action::Unsubscribe, &ch).starts_with(r#"{"action":"unsubscribe","bars""#)
    );
    let params = polygon::params(&[polygon::Channel::Minute, polygon::Channel::Second], ["AAPL", "MSFT"]);
    assert_eq!(params, "AM.AAPL,A.AAPL,AM.MSFT,A.MSFT");
    assert_eq!(polygon::params(&[polygon::Channel::Minute], ["*"]), "AM.*");
    assert_eq!(polygon::auth_message("K"), r#"{"action":"auth","params":"K"}"#);
    assert_eq!(
        polygon::subscribe_message(alpaca::Action::Subscribe, "AM.AAPL,A.AAPL"),
        r#"{"action":"subscribe","params":"AM.AAPL,A.AAPL"}"#
    );
    assert_eq!(
        polygon::subscribe_message(alpaca::Action::Unsubscribe, "AM.AAPL"),
        r#"{"action":"unsubscribe","params":"AM.AAPL"}"#
    );
}

#[test]
fn subscription_diff_follows_the_universe() {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let have = AlpacaChannels { bars: v(&["AAPL", "MSFT"]), quotes: v(&["AAPL"]), ..AlpacaChannels::default() };
    let want = AlpacaChannels {
        bars: v(&["MSFT", "NVDA"]),
        quotes: v(&["AAPL"]),
        trades: v(&["NVDA"]),
        ..AlpacaChannels::default()
    };
    let (add, remove) = have.diff(&want);
    assert_eq!(add, AlpacaChannels { bars: v(&["NVDA"]), trades: v(&["NVDA"]), ..AlpacaChannels::default() });
    assert_eq!(remove, AlpacaChannels { bars: v(&["AAPL"]), ..AlpacaChannels::default() });
    let (add, remove) = want.diff(&want);
    assert!(add.is_empty() && remove.is_empty() && !want.is_empty());
}

#[test]
fn symbol_map() {
    let mut m = symbols();
    assert_eq!(m.names(), ["AAPL", "MSFT"]);
    assert!(m.insert("BAD NAME", SymbolId(9)).is_err());
    assert_eq!(m.remove("MSFT"), Some(MSFT));
    let (mut c, mut out) = (FeedCounters::default(), Vec::new());
    // A removed symbol is unknown from then on.
    alpaca::decode_stream(format!("[{}]", BAR.replace("AAPL", "MSFT")).as_bytes(), RECV, &m, &mut c, &mut out);
    assert_eq!(one_reject(&out).kind, RejectKind::UnknownSymbol);
    let mut t = engine::symbols::SymbolTable::new();
    t.intern("X").unwrap();
    t.intern("Y").unwrap();
    assert_eq!(SymbolMap::from_table(&t).get("Y"), Some(SymbolId(1)));
}

#[path = "gate.rs"]
mod gate;
use gate::bar_at;

mod props {
    use super::*;
    use proptest::prelude::*;

    fn frames() -> Vec<String> {
        let q = r#"{"T":"q","S":"AAPL","bp":189.10,"bs":2,"ap":189.12,"as":3,"t":"2024-03-01T14:31:02.123456789Z","c":["R"]}"#;
        let t = r#"{"T":"t","S":"MSFT","i":52983525,"p":189.11,"s":100,"t":"2024-03-01T14:31:02.5Z"}"#;
        vec![
            format!("[{BAR},{q},{t}]"),
            format!("[{AM},{AM}]"),
            r#"[{"T":"error","code":406,"msg":"connection limit exceeded"},{"T":"subscription","bars":["AAPL"]}]"#
                .into(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Broken frames (bytes deleted, inserted, replaced, truncated) never panic either decoder,
        /// and every message is still counted exactly once.
        #[test]
        fn broken_frames_never_panic(
            base in 0usize..3,
            ops in prop::collection::vec((0usize..3, 0usize..400, any::<u8>()), 1..5),
        ) {
            let mut b = frames()[base].clone().into_bytes();
            for (op, at, c) in ops {
                let at = at % (b.len() + 1);
                match op {
                    0 if at < b.len() => { b.remove(at); }
                    1 => b.insert(at, c),
                    _ if at < b.len() => b[at] = c,
                    _ => b.truncate(at),
                }
            }
            let (mut c, mut out) = (FeedCounters::default(), Vec::new());
            alpaca::decode_stream(&b, RECV, &symbols(), &mut c, &mut out);
            polygon::decode_stream(&b, RECV, &symbols(), &mut c, &mut out);
            prop_assert!(balanced(&c), "{:?}", c);
            let mut gates = BarGates::new(GateConfig::default());
            let mut rel = Vec::new();
            for m in &out {
                if let FeedMsg::Bar(u) = m {
                    prop_assert!(u.bar.validate().is_ok(), "only valid bars leave the decoder");
                    gates.offer(u, &mut c, &mut rel);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let (mut c, mut out) = (FeedCounters::default(), Vec::new());
            alpaca::decode_stream(&b, RECV, &symbols(), &mut c, &mut out);
            polygon::decode_stream(&b, RECV, &symbols(), &mut c, &mut out);
            prop_assert!(balanced(&c));
        }
    }

    /// (window, version) pairs: windows 0..n, 1..=3 versions each, then shuffled and with
    /// duplicated deliveries.
    fn deliveries() -> impl Strategy<Value = Vec<(i64, i64)>> {
        prop::collection::vec((1usize..=3, any::<bool>()), 1..12)
            .prop_flat_map(|ws| {
                let mut v = Vec::new();
                for (w, (versions, skip)) in ws.iter().enumerate() {
                    if *skip && w > 0 {
                        continue; // a minute without trades: no bar
                    }
                    for ver in 0..*versions {
                        v.push((w as i64, ver as i64));
                    }
                }
                let n = v.len();
                (Just(v), prop::collection::vec(0..n, 0..6))
            })
            .prop_flat_map(|(mut v, dups)| {
                let extra: Vec<_> = dups.iter().map(|&i| v[i]).collect();
                v.extend(extra);
                Just(v).prop_shuffle()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any shuffle/duplication delivered within the grace window releases each window exactly
        /// once, in order, with the last delivered version's values.
        #[test]
        fn shuffled_within_grace_releases_each_window_once(d in deliveries()) {
            let n_windows = d.iter().map(|x| x.0).max().unwrap() + 1;
            // Everything arrives before window 0's deadline (end + grace).
            let grace = (n_windows + 1) * MIN;
            let mut g = BarGate::new(AAPL, Interval::M1, GateConfig { grace_ns: grace, release_on_later: false });
            let (mut c, mut out) = (FeedCounters::default(), Vec::new());
            let mut last = std::collections::BTreeMap::new();
            for (k, &(w, ver)) in d.iter().enumerate() {
                g.offer(&bar_at(w, 100 - ver), T1431 + MIN + k as i64, &mut c, &mut out);
                last.insert(w, 100 - ver);
            }
            prop_assert!(out.is_empty());
            g.flush(T1431 + MIN + grace, &mut c, &mut out); // window 0 final
            g.drain(i64::MAX / 2, &mut c, &mut out);
            let got: Vec<_> = out.iter().map(|r| ((r.bar.ts_event_ns - T1431) / MIN, r.bar.close_px_e9)).collect();
            let want: Vec<_> = last.into_iter().collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(c.late, 0);
            prop_assert_eq!(c.new_windows + c.updated + c.duplicates, d.len() as u64);
        }

        /// Any arrival times: releases strictly increase, each value is the last version offered
        /// before its release, and every offer is counted exactly once.
        #[test]
        fn arbitrary_arrivals_keep_the_invariants(
            d in deliveries(),
            delays in prop::collection::vec(0i64..(3 * MIN), 40),
            grace_s in 0i64..120,
            later in any::<bool>(),
        ) {
            let cfg = GateConfig { grace_ns: grace_s * 1_000_000_000, release_on_later: later };
            let mut g = BarGate::new(AAPL, Interval::M1, cfg);
            let (mut c, mut out) = (FeedCounters::default(), Vec::new());
            let mut now = 0i64;
            let mut latest = std::collections::BTreeMap::new(); // window -> last version offered
            let mut released_so_far = 0;
            let mut late_expected = 0u64;
            for (k, &(w, ver)) in d.iter().enumerate() {
                // Receive time: at or after the window's end, never backwards.
                now = now.max(T1431 + (w + 1) * MIN + delays[k % delays.len()]);
                let through = g.released_through_ns();
                let r = g.offer(&bar_at(w, 100 - ver), now, &mut c, &mut out);
                if through.is_some_and(|t| T1431 + w * MIN <= t) {
                    prop_assert!(matches!(r, Offer::Late { .. } | Offer::Duplicate), "{:?}", r);
                    if matches!(r, Offer::Late { .. }) { late_expected += 1; }
                } else {
                    latest.insert(w, 100 - ver);
                }
                for rel in &out[released_so_far..] {
                    let rw = (rel.bar.ts_event_ns - T1431) / MIN;
                    prop_assert_eq!(Some(&rel.bar.close_px_e9), latest.get(&rw));
                }
                released_so_far = out.len();
            }
            g.drain(now, &mut c, &mut out);
            let starts: Vec<_> = out.iter().map(|r| r.bar.ts_event_ns).collect();
            prop_assert!(starts.windows(2).all(|p| p[0] < p[1]), "strictly increasing: {:?}", starts);
            prop_assert_eq!(c.late, late_expected);
            prop_assert_eq!(c.new_windows + c.updated + c.duplicates + c.late, d.len() as u64);
            prop_assert_eq!(c.released, out.len() as u64);
            prop_assert_eq!(c.new_windows, c.released, "every opened window is released once");
        }
    }
}
