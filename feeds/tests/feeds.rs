//! The feeds crate's integration tests (one binary): replay feeds through the real pipeline and
//! ingress, credentials that never leak, and the protocol layer (frames, REST pages, client
//! messages, the bar gate), the websocket transport over real sockets and TLS, and the REST history clients against a
//! local HTTP server.

#[path = "feeds/alpaca_feed.rs"]
mod alpaca_feed;
#[path = "feeds/credentials.rs"]
mod credentials;
#[path = "feeds/polygon_feed.rs"]
mod polygon_feed;
#[path = "feeds/protocol.rs"]
mod protocol;
#[path = "feeds/replay.rs"]
mod replay;
#[path = "feeds/rest.rs"]
mod rest;
#[path = "feeds/ws.rs"]
mod ws;
