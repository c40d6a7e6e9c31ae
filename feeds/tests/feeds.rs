//! The feeds crate's integration tests (one binary): replay feeds through the real pipeline and
//! ingress, and credentials that never leak.

#[path = "feeds/credentials.rs"]
mod credentials;
#[path = "feeds/replay.rs"]
mod replay;
