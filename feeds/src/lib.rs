//! # ringtape feeds
//!
//! **Stage:** sources in front of the sequencer. Feeds turn market data into the engine's
//! normalized records ([`engine::records::Event`]) and push them into the sequencer through an
//! [`engine::pipeline::Ingress`] (live, from a feed thread) or an [`engine::pipeline::Source`]
//! (replay), and carry a broker's answers back the same way. Eight parts today:
//! - **the protocol layer** ([`alpaca`], [`polygon`], [`BarGates`], [`FeedCounters`],
//!   [`SymbolMap`]): bytes of Alpaca market data v2 and Polygon/Massive stocks websocket frames and
//!   their REST history pages in, records out. The transport ([`ws`]) reads sockets on a feed
//!   thread and calls it.
//! - **the websocket transport** ([`ws`]): non-blocking websocket connections over mio, rustls
//!   (bundled webpki roots; a custom root only for a local exchange) and tungstenite, with
//!   pings, dead-connection detection and reconnect with capped, jittered backoff.
//! - **replay feeds** ([`replay`]): recorded bars at zero delay or paced against a wall clock.
//! - **credentials** ([`credentials`]): keys from the environment or a 0600 file, never printed.
//! - **REST history** ([`rest`], behind the [`History`] seam): blocking Alpaca bars and Polygon
//!   aggregates clients over ureq, with bounded retries, for warm start and gap backfill on a
//!   feed's own thread.
//! - **the live feed threads** ([`feed`]; Alpaca also at [`alpaca_feed`]): one loop for Alpaca
//!   and Polygon, one connection carrying every symbol, authenticated and subscribed, warm
//!   started and backfilled from a [`History`], frames decoded and gated, bars, quotes and
//!   trades published into the engine's ingress without ever blocking the socket reader, the
//!   universe changed at runtime through a [`feed::FeedHandle`].
//! - **the broker's clients** ([`broker`]): Alpaca's trading REST (idempotent submits by client
//!   order id, 429s honoured) and the `trade_updates` stream, over the same transport.
//! - **the broker gateway** ([`gateway`]): the engine's orders (from `engine::venue::RemoteVenue`)
//!   to the broker on an order thread, `trade_updates` back into the ingress as execution reports
//!   on a stream thread, each share once, with reconciles at start and after every reconnect.
//!
//! **Protocol layer, consumes:** one frame (`&[u8]`) plus the feed thread's receive time; a
//! [`SymbolMap`] the universe fills. **Produces:** [`FeedMsg`]s (quotes and trades ready as
//! events, bars, control messages with typed [`AlpacaError`]s, and counted, typed
//! [`Reject`]ions); [`BarGates`] then release bars strictly in window order, deduped, as
//! [`ReleasedBar`]s (when a window is final: [`gate`]); [`FeedCounters`] count everything. Client messages (auth, subscribe,
//! Polygon `params`) are built in [`alpaca`] and [`polygon`]. It opens no socket, spawns no
//! thread and reads no clock (times are passed in).
//!
//! **Never (the whole crate):** calls strategy, risk or venue code; blocks a hot-path thread;
//! panics on input; goes through `f64` for a live price (prices are read from the number's text,
//! exactly, in 1e-9 units); re-releases a bar; logs a secret (the auth builders return the
//! message to send; secrets live in [`credentials::Secret`]).
//!
//! **Parsing.** Stream frames go through a strict zero-copy scanner (full JSON grammar, fields
//! kept as raw text slices, a differential property test holding it to serde_json's verdict):
//! measured faster than both serde_json and simd-json on every frame type, and exact (see
//! `feeds/PARSING.md`). REST pages, which are large and off the hot path, use serde_json.
//!
//! ```
//! use engine::records::{Interval, SymbolId};
//! use feeds::{BarGates, FeedCounters, FeedMsg, GateConfig, SymbolMap, alpaca};
//!
//! let mut symbols = SymbolMap::new();
//! symbols.insert("AAPL", SymbolId(0)).unwrap();
//! let (mut counters, mut msgs, mut released) = (FeedCounters::default(), Vec::new(), Vec::new());
//! let mut gates = BarGates::new(GateConfig { grace_ns: 1_000_000_000, release_on_later: false });
//!
//! let frame = br#"[{"T":"b","S":"AAPL","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"t":"2024-03-01T14:31:00Z","n":412,"vw":189.08}]"#;
//! let recv_ns = 1_709_303_520_100_000_000; // 100 ms after the window closed
//! alpaca::decode_stream(frame, recv_ns, &symbols, &mut counters, &mut msgs);
//! let FeedMsg::Bar(bar) = &msgs[0] else { panic!("a bar") };
//! assert_eq!((bar.bar.high_px_e9, bar.interval), (189_200_000_000, Interval::M1));
//!
//! gates.offer(bar, &mut counters, &mut released); // pending: inside its 1 s grace
//! assert!(released.is_empty());
//! gates.flush(recv_ns + 1_000_000_000, &mut counters, &mut released); // grace passed: final
//! assert_eq!(released[0].event().as_bar(), Some(&bar.bar));
//! assert_eq!((counters.bars, counters.released), (1, 1));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alpaca;
pub mod alpaca_feed;
pub mod broker;
mod counters;
pub mod credentials;
pub mod feed;
pub mod gate;
pub mod gateway;
pub mod history;
mod msg;
pub mod num;
pub mod polygon;
mod raw;
pub mod replay;
pub mod rest;
mod scan;
mod symbols;
pub mod ws;

pub use alpaca::{HistBar, HistoryPage, RestError};
pub use counters::FeedCounters;
pub use gate::{BarGate, BarGates, GateConfig, Offer, ReleasedBar};
pub use history::{History, HistoryError};
pub use msg::{AlpacaChannels, AlpacaError, BarKind, BarUpdate, Control, ErrorAction, FeedMsg, Reject, RejectKind};
pub use symbols::SymbolMap;

/// Put warm-start history (every page of every symbol) into one ordered stream: sorted by
/// (window start, symbol, interval), and where pages overlapped, one bar per key (the last one
/// received). Returns how many duplicates were dropped.
pub fn order_history(bars: &mut Vec<HistBar>) -> usize {
    let before = bars.len();
    // Stable sort keeps arrival order within a key; keep the last of each run.
    bars.sort_by_key(|h| (h.bar.ts_event_ns, h.symbol, h.interval.secs));
    bars.reverse();
    bars.dedup_by_key(|h| (h.bar.ts_event_ns, h.symbol, h.interval.secs));
    bars.reverse();
    before - bars.len()
}
