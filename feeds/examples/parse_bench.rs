//! Parse benchmark: the production decoders (a strict zero-copy scanner, exact prices from the
//! number's digits) against serde_json with `RawValue` fields (also exact) and simd-json and
//! serde_json into typed `f64` structs, all doing the same normalization.
//!
//! Run: `cargo run --release -p ringtape-feeds --example parse_bench` (results in feeds/PARSING.md).
//! Each case runs 31 batches of 400,000 messages after a warm-up; it reports ns per message
//! (a batch's mean, so timer overhead stays out of the figure) at the batch min / median / max of on-CPU
//! time of the thread (from /proc/thread-self/schedstat, so time lost to other processes on a
//! shared machine is left out) and as the wall-clock p50.
#![allow(missing_docs)] // an example binary
#![allow(clippy::disallowed_methods)] // a benchmark measures wall time with Instant::now

use engine::records::{Bar, Interval, Quote, SymbolId, px_from_f64};
use feeds::{BarKind, BarUpdate, FeedCounters, FeedMsg, SymbolMap, alpaca, num, polygon};
use serde::Deserialize;
use std::hint::black_box;
use std::time::Instant;

const BAR: &str = r#"[{"T":"b","S":"AAPL","o":189.01,"h":189.2,"l":188.95,"c":189.12,"v":51234,"t":"2024-03-01T14:31:00Z","n":412,"vw":189.08}]"#;
const QUOTE: &str = r#"[{"T":"q","S":"AAPL","bx":"V","bp":189.1,"bs":2,"ax":"V","ap":189.12,"as":3,"t":"2024-03-01T14:31:02.123456789Z","c":["R"],"z":"C"}]"#;
const SYMS: [&str; 10] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "NFLX", "INTC"];

fn am_batch() -> String {
    let items: Vec<String> = SYMS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"ev":"AM","sym":"{s}","v":{},"av":8123456,"op":187.5,"vw":189.0801,"o":189.01,"c":189.12,"h":189.2,"l":188.95,"a":188.4411,"z":87,"s":1709303460000,"e":1709303520000}}"#,
                51234 + i
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn alpaca_bar_batch() -> String {
    let items: Vec<String> = SYMS.iter().map(|s| BAR[1..BAR.len() - 1].replace("AAPL", s)).collect();
    format!("[{}]", items.join(","))
}

// ---- serde_json with RawValue fields (exact, what the first version used) ----

type Rv<'a> = Option<&'a serde_json::value::RawValue>;

#[derive(Deserialize)]
struct RBar<'a> {
    #[serde(rename = "T", borrow)]
    ty: Rv<'a>,
    #[serde(rename = "S", borrow)]
    sym: Rv<'a>,
    #[serde(borrow)]
    o: Rv<'a>,
    #[serde(borrow)]
    h: Rv<'a>,
    #[serde(borrow)]
    l: Rv<'a>,
    #[serde(borrow)]
    c: Rv<'a>,
    #[serde(borrow)]
    v: Rv<'a>,
    #[serde(borrow)]
    t: Rv<'a>,
}

fn unquote(r: Rv<'_>) -> Option<&str> {
    let s = r?.get();
    s.strip_prefix('"')?.strip_suffix('"')
}

fn raw_px(r: Rv<'_>) -> Option<i64> {
    num::px_e9(r?.get()).ok()
}

fn raw_bar(b: &RBar<'_>, symbols: &SymbolMap, recv: i64) -> Option<FeedMsg> {
    let bar = Bar {
        ts_event_ns: num::rfc3339_ns(unquote(b.t)?).ok()?,
        open_px_e9: raw_px(b.o)?,
        high_px_e9: raw_px(b.h)?,
        low_px_e9: raw_px(b.l)?,
        close_px_e9: raw_px(b.c)?,
        volume: num::count(b.v?.get()).ok()?,
    };
    bar.validate().ok()?;
    let symbol = symbols.get(unquote(b.sym)?)?;
    (unquote(b.ty)? == "b").then_some(FeedMsg::Bar(BarUpdate {
        symbol,
        interval: Interval::M1,
        kind: BarKind::Closed,
        bar,
        ts_recv_ns: recv,
    }))
}

// ---- the typed-f64 alternatives (same normalization, prices through f64) ----

#[derive(Deserialize)]
struct ABar<'a> {
    #[serde(rename = "T")]
    ty: &'a str,
    #[serde(rename = "S")]
    sym: &'a str,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: u64,
    t: &'a str,
}

#[derive(Deserialize)]
struct AQuote<'a> {
    #[serde(rename = "T")]
    ty: &'a str,
    #[serde(rename = "S")]
    sym: &'a str,
    bp: f64,
    bs: u32,
    ap: f64,
    #[serde(rename = "as")]
    ask_size: u32,
    t: &'a str,
}

#[derive(Deserialize)]
struct PAgg<'a> {
    ev: &'a str,
    sym: &'a str,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: u64,
    s: i64,
    e: i64,
}

fn f64_bar(b: &ABar<'_>, symbols: &SymbolMap, recv: i64) -> Option<FeedMsg> {
    let bar = Bar {
        ts_event_ns: num::rfc3339_ns(b.t).ok()?,
        open_px_e9: px_from_f64(b.o)?,
        high_px_e9: px_from_f64(b.h)?,
        low_px_e9: px_from_f64(b.l)?,
        close_px_e9: px_from_f64(b.c)?,
        volume: b.v,
    };
    bar.validate().ok()?;
    let symbol = symbols.get(b.sym)?;
    (b.ty == "b").then_some(FeedMsg::Bar(BarUpdate {
        symbol,
        interval: Interval::M1,
        kind: BarKind::Closed,
        bar,
        ts_recv_ns: recv,
    }))
}

fn f64_quote(q: &AQuote<'_>, symbols: &SymbolMap, recv: i64) -> Option<FeedMsg> {
    let quote = Quote {
        ts_event_ns: num::rfc3339_ns(q.t).ok()?,
        bid_px_e9: px_from_f64(q.bp)?,
        ask_px_e9: px_from_f64(q.ap)?,
        bid_size: q.bs,
        ask_size: q.ask_size,
    };
    let symbol = symbols.get(q.sym)?;
    (q.ty == "q").then_some(FeedMsg::Quote { symbol, quote, ts_recv_ns: recv })
}

fn f64_agg(a: &PAgg<'_>, symbols: &SymbolMap, recv: i64) -> Option<FeedMsg> {
    let bar = Bar {
        ts_event_ns: a.s * 1_000_000,
        open_px_e9: px_from_f64(a.o)?,
        high_px_e9: px_from_f64(a.h)?,
        low_px_e9: px_from_f64(a.l)?,
        close_px_e9: px_from_f64(a.c)?,
        volume: a.v,
    };
    bar.validate().ok()?;
    let symbol = symbols.get(a.sym)?;
    let secs = ((a.e - a.s) / 1000) as u32;
    (a.ev == "AM").then_some(FeedMsg::Bar(BarUpdate {
        symbol,
        interval: Interval { secs },
        kind: BarKind::Closed,
        bar,
        ts_recv_ns: recv,
    }))
}

/// This thread's time on a CPU so far, ns (`/proc/thread-self/schedstat`, first field). On a
/// shared machine it leaves out the time other processes held the core.
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

struct Figures {
    cpu: (f64, f64, f64),
    wall_p50: f64,
}

/// (min, median, max).
fn pct(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// ns per message over 31 batches: on-CPU min / median / max, and the wall-clock median.
fn run(msgs_per_frame: usize, mut f: impl FnMut() -> usize) -> Figures {
    // 400k messages per batch (0.1-0.2 s): schedstat advances in scheduler ticks (about 4 ms),
    // so the on-CPU figures are quantized to about 10 ns per message.
    let batch = 400_000 / msgs_per_frame;
    for _ in 0..batch {
        black_box(f());
    }
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..31 {
        let (t, c0) = (Instant::now(), cpu_ns());
        let mut n = 0;
        for _ in 0..batch {
            n += black_box(f());
        }
        let (w, c1) = (t.elapsed().as_nanos() as f64, cpu_ns());
        assert_eq!(n, batch * msgs_per_frame, "every message decoded");
        let msgs = (batch * msgs_per_frame) as f64;
        cpu.push((c1 - c0) as f64 / msgs);
        wall.push(w / msgs);
    }
    Figures { cpu: pct(cpu), wall_p50: pct(wall).1 }
}

fn report(name: &str, r: Figures) {
    println!("| {name:<52} | {:>5.0} | {:>5.0} | {:>6.0} | {:>5.0} |", r.cpu.0, r.cpu.1, r.cpu.2, r.wall_p50);
}

fn main() {
    let mut symbols = SymbolMap::new();
    for (i, s) in SYMS.iter().enumerate() {
        symbols.insert(s, SymbolId(i as u32)).unwrap();
    }
    let recv = 1_709_303_520_100_000_000;
    let am = am_batch();
    let bars10 = alpaca_bar_batch();
    let mut c = FeedCounters::default();
    let mut out: Vec<FeedMsg> = Vec::with_capacity(64);
    let mut buffers = simd_json::Buffers::new(4096);
    let mut scratch: Vec<u8> = Vec::with_capacity(4096);

    // The production path and the alternatives must agree on these frames.
    for frame in [BAR, QUOTE, &bars10] {
        alpaca::decode_stream(frame.as_bytes(), recv, &symbols, &mut c, &mut out);
    }
    polygon::decode_stream(am.as_bytes(), recv, &symbols, &mut c, &mut out);
    assert!(out.iter().all(|m| !matches!(m, FeedMsg::Rejected(_))), "{out:?}");
    assert_eq!(out.len(), 22);

    println!("| case (ns per message)                                | cpu min | cpu p50 | cpu max | wall p50 |");
    println!("|---|---:|---:|---:|---:|");
    macro_rules! serde_exact {
        ($name:expr, $frame:expr, $n:expr, $dec:path) => {{
            let f = $frame.as_bytes();
            report(
                $name,
                run($n, || {
                    out.clear();
                    $dec(f, recv, &symbols, &mut c, &mut out);
                    out.len()
                }),
            );
        }};
    }
    macro_rules! typed {
        ($name:expr, $frame:expr, $n:expr, $ty:ty, $norm:ident, simd) => {{
            let f = $frame.as_bytes();
            report(
                $name,
                run($n, || {
                    out.clear();
                    scratch.clear();
                    scratch.extend_from_slice(f);
                    let v: Vec<$ty> = simd_json::serde::from_slice_with_buffers(&mut scratch, &mut buffers).unwrap();
                    out.extend(v.iter().filter_map(|m| $norm(m, &symbols, recv)));
                    out.len()
                }),
            );
        }};
        ($name:expr, $frame:expr, $n:expr, $ty:ty, $norm:ident, serde) => {{
            let f = $frame.as_bytes();
            report(
                $name,
                run($n, || {
                    out.clear();
                    let v: Vec<$ty> = serde_json::from_slice(f).unwrap();
                    out.extend(v.iter().filter_map(|m| $norm(m, &symbols, recv)));
                    out.len()
                }),
            );
        }};
    }
    {
        // Calibration: CRATES.md's probe case (one 70-byte quote into a typed struct, nothing
        // else) measured 137 ns on a quiet machine; the ratio says how loaded this run was.
        #[derive(Deserialize)]
        #[allow(dead_code)] // fields are only parsed
        struct Q<'a> {
            #[serde(rename = "S")]
            s: &'a str,
            bp: f64,
            bs: u32,
            ap: f64,
            #[serde(rename = "as")]
            ask_size: u32,
            t: &'a str,
        }
        let f = br#"{"S":"AAPL","bp":189.1,"bs":2,"ap":189.12,"as":3,"t":"2024-03-01T14:31:02Z"}"#;
        report(
            "calibration: CRATES.md quote, serde_json typed, no norm.",
            run(1, || {
                black_box(serde_json::from_slice::<Q<'_>>(f).map(|q| q.bs).unwrap_or(0));
                1
            }),
        );
    }
    serde_exact!("alpaca bar x1: scanner, exact (used)", BAR, 1, alpaca::decode_stream);
    typed!("alpaca bar x1: serde_json RawValue fields, exact", BAR, 1, RBar<'_>, raw_bar, serde);
    typed!("alpaca bar x1: simd-json typed f64", BAR, 1, ABar<'_>, f64_bar, simd);
    typed!("alpaca bar x1: serde_json typed f64", BAR, 1, ABar<'_>, f64_bar, serde);
    serde_exact!("alpaca bar x10: scanner, exact (used)", bars10, 10, alpaca::decode_stream);
    typed!("alpaca bar x10: serde_json RawValue fields, exact", bars10, 10, RBar<'_>, raw_bar, serde);
    typed!("alpaca bar x10: simd-json typed f64", bars10, 10, ABar<'_>, f64_bar, simd);
    typed!("alpaca bar x10: serde_json typed f64", bars10, 10, ABar<'_>, f64_bar, serde);
    serde_exact!("alpaca quote x1: scanner, exact (used)", QUOTE, 1, alpaca::decode_stream);
    typed!("alpaca quote x1: simd-json typed f64", QUOTE, 1, AQuote<'_>, f64_quote, simd);
    typed!("alpaca quote x1: serde_json typed f64", QUOTE, 1, AQuote<'_>, f64_quote, serde);
    serde_exact!("polygon AM x10: scanner, exact (used)", am, 10, polygon::decode_stream);
    typed!("polygon AM x10: simd-json typed f64", am, 10, PAgg<'_>, f64_agg, simd);
    typed!("polygon AM x10: serde_json typed f64", am, 10, PAgg<'_>, f64_agg, serde);
    println!(
        "\nframe sizes: bar {} B, quote {} B, alpaca bar x10 {} B, AM x10 {} B",
        BAR.len(),
        QUOTE.len(),
        bars10.len(),
        am.len()
    );
}
