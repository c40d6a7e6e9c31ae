//! `ringtape paper --demo`: the local exchange in this process (the built-in S&P 500 minute bars,
//! replayed from one hour after the first bar at `--speed`), reached over real sockets and TLS,
//! trusted through the certificate it generated, with its demo credentials, and the run living on
//! its market clock.

use super::config::{PaperFile, Provider};
use super::feed::Session;
use crate::exchange::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use feeds::credentials::Secret;
use feeds::ws::TlsConfig;
use std::sync::Arc;

/// The demo exchange's paper account, USD.
pub(crate) const DEMO_CASH_USD: i64 = 1_000_000;

/// Start the exchange and describe the session that trades it.
pub(crate) fn start(file: &PaperFile, speed: f64) -> Result<Session> {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(bad_input(format!(
            "--speed {speed}: use a positive factor, e.g. 60 (one market minute per second)"
        )));
    }
    let ex = Arc::new(
        Exchange::start({
            let mut c = ExchangeConfig { speed, ..ExchangeConfig::default() };
            // The built-in data is the S&P 500 index (about 3,000): the demo account is large
            // enough for sma_cross's 100 units at 2x buying power.
            c.broker.starting_cash_e9 = DEMO_CASH_USD * 1_000_000_000;
            c
        })
        .context("starting the local exchange on 127.0.0.1")?,
    );
    let pem = ex.cert_pem().context("the local exchange made no certificate")?.to_string();
    let addr = ex.addr();
    let market = ex.clock();
    let symbols: Vec<String> = ex.tape().symbols.iter().map(|s| s.name.clone()).collect();
    let mut feed = file.feed.clone();
    feed.provider = Provider::Alpaca;
    let stream_url = format!("wss://{addr}/v2/iex");
    let rest_url = ex.http_origin();
    let banner = format!(
        "paper --demo: local exchange on {addr} (TLS, generated certificate), {} replayed at {speed}x from {}; alpaca feed {stream_url}; Ctrl-C stops",
        symbols.join(", "),
        jiff::Timestamp::from_nanosecond(i128::from(market.market_start_ns))
            .map_or_else(|_| "?".into(), |t| t.to_string()),
    );
    Ok(Session {
        provider: Provider::Alpaca.as_str(),
        stream_url,
        rest_url,
        symbols,
        clock: Arc::new(move || market.now_ns()),
        tls: TlsConfig::with_extra_root_pem(pem),
        key: Secret::new(DEMO_KEY),
        secret: Secret::new(DEMO_SECRET),
        feed,
        timer_scale: speed,
        banner,
        exchange_state: Some(Box::new({
            let ex = std::sync::Arc::clone(&ex);
            move || serde_json::to_value(ex.broker()).unwrap_or_default()
        })),
        _keep: Some(Box::new(ex)),
    })
}
