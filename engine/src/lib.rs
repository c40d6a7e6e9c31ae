//! # ringtape engine
//!
//! The spine of ringtape: the normalized records every stage speaks, memory-mapped bar files, the
//! threaded ring pipeline (sequencer -> strategy shards -> risk -> execution -> journal), the
//! simulated venue and the risk checks. The same pipeline runs backtests, paper and live trading;
//! only the source (bar files, websocket feeds) and the venue (simulated, broker) change.
//!
//! Consumes: bar files, or records pushed into the ingress by feeds. Produces: order decisions,
//! execution events, a journal and metrics. It never does network I/O, never reads the wall clock
//! inside strategy or risk logic, and depends on no other ringtape crate.
//!
//! ```
//! use engine::records::{Bar, parse_px};
//! let bar = Bar {
//!     ts_event_ns: 0,
//!     open_px_e9: parse_px("10.00").unwrap(),
//!     high_px_e9: parse_px("10.50").unwrap(),
//!     low_px_e9: parse_px("9.90").unwrap(),
//!     close_px_e9: parse_px("10.25").unwrap(),
//!     volume: 1_000,
//! };
//! assert!(bar.validate().is_ok());
//! ```
#![deny(missing_docs)]
// Unsafe code is allowed in one place only: the mmap in `barfile` (see its SAFETY comment).
#![deny(unsafe_code)]

pub mod barfile;
pub mod journal;
pub mod merge;
pub mod pipeline;
pub mod records;
pub mod risk;
pub mod stats;
pub mod strategy;
pub mod symbols;
pub mod text;
pub mod venue;
