//! The Alpaca market-data feed thread: [`spawn_alpaca_feed`], the shared feed loop of
//! [`crate::feed`] speaking [`AlpacaProtocol`] (kept under this path for existing users).

pub use crate::feed::{
    AlpacaFeedConfig, AlpacaProtocol, FatalError, FeedCommand, FeedConfig, FeedEnd, FeedHandle, FeedReport, FeedStatus,
    SharedClock, spawn_alpaca_feed,
};

/// The feed thread's name.
pub const THREAD_NAME: &str = crate::feed::ALPACA_THREAD_NAME;
