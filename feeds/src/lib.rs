//! # ringtape feeds (placeholder: the live-feeds issue builds this crate)
//!
//! Stage: sources in front of the sequencer. Feeds will turn Alpaca and Polygon websocket
//! messages (mio + tungstenite + rustls, parsed with simd-json) and replayed files into the
//! engine's normalized records ([`engine::records::Event`]) and push them into the sequencer
//! through an [`engine::pipeline::Source`] or an [`engine::pipeline::Ingress`]. A feed never
//! calls strategy, risk or venue code, never blocks a hot-path thread, and never logs a secret.
//!
//! Today the only source is the bar-file replay in the engine ([`engine::pipeline::BarReplay`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
