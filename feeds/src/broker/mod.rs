//! The broker clients a gateway thread uses to trade at Alpaca (or at a local exchange speaking
//! the same protocol, PROTOCOLS.md §1.3–1.4): [`TradingRest`] places, cancels, replaces and
//! reads orders, positions and the account over REST; [`TradeUpdatesClient`] listens to the
//! `trade_updates` websocket for fills, cancels, rejections and replaces.
//!
//! **Contract.** Both block or wait only on the thread that owns them (the gateway's), never
//! on a hot-path thread. Neither talks to the engine: the gateway turns their results into
//! execution events. Prices are 1e-9 fixed point (`px_e9`) read from the wire's decimal text
//! exactly (never through `f64`); quantities are whole shares. Keys go in headers and the
//! stream's auth message only; no error, `Debug` or log line shows them.
//!
//! **Orders are never lost or doubled by a retry**: a 429 is retried (nothing was created), an
//! unknown outcome is never retried blindly ([`TradingRest::submit_idempotent`] looks the order
//! up by its client order id first). See [`rest`] for the full retry policy and [`stream`] for
//! the session.
//!
//! ```no_run
//! use engine::records::{OrderType, Side};
//! use feeds::broker::{NewOrder, StreamEvent, Tif, TradeUpdatesClient, TradingConfig, TradingRest};
//! use feeds::credentials::Secret;
//! use std::time::Duration;
//! # fn clock() -> i64 { 0 }
//! let cfg = TradingConfig::alpaca_paper("PK...", Secret::new("..."));
//! let rest = TradingRest::new(&cfg)?;
//! let order = rest.submit_idempotent(&NewOrder {
//!     symbol: "AAPL".into(), qty: 100, side: Side::Buy, order_type: OrderType::Limit, tif: Tif::Day,
//!     limit_px_e9: Some(189_100_000_000), stop_px_e9: None, client_order_id: "rt-42".into(),
//!     extended_hours: false,
//! })?;
//! let mut stream = TradeUpdatesClient::new(&cfg)?;
//! let mut events = Vec::new();
//! loop {
//!     stream.poll(Duration::from_millis(100), &clock, &mut events);
//!     for e in events.drain(..) {
//!         match e {
//!             StreamEvent::Update(u) if u.order.id == order.id => println!("{:?} {:?}", u.event, u.price_e9),
//!             StreamEvent::AuthFailed { message } => return Err(message.into()),
//!             _ => {}
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod rest;
pub mod stream;
mod types;
mod wire;

pub use rest::TradingRest;
pub use stream::TradeUpdatesClient;
pub use types::{
    BrokerAccount, BrokerError, BrokerOrder, BrokerPosition, NewOrder, OrderStatus, RestStats, StreamEvent,
    StreamStats, Tif, TradeEvent, TradeUpdate, TradingConfig,
};
