//! `ringtape exchange`: start the local exchange, print its URLs, run until Ctrl-C.

use super::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, Scenario};
use crate::exit::bad_input;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// Serve Alpaca and Polygon market data (stream and REST) from bar files on a market clock, with
/// fault injection, on 127.0.0.1.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Bar directory to replay (default: the built-in S&P 500 minute bars)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Market seconds per wall second
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub speed: f64,
    /// Market start time, RFC 3339 or YYYY-MM-DD (default: one hour after the first bar)
    #[arg(long, value_name = "T")]
    pub start: Option<String>,
    /// Port on 127.0.0.1 (0 = any free port)
    #[arg(long, default_value_t = 8765, value_name = "P")]
    pub port: u16,
    /// Serve plain http:// and ws:// instead of TLS
    #[arg(long)]
    pub plain: bool,
    /// Scenario TOML file: faults at market times or every N market minutes
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Accepted Alpaca key (also the Polygon key)
    #[arg(long, value_name = "K", default_value = DEMO_KEY)]
    pub key: String,
    /// Accepted Alpaca secret
    #[arg(long, value_name = "S", default_value = DEMO_SECRET)]
    pub secret: String,
    /// Where to write the CA certificate (default: the data directory, or the temp directory)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Faults: POST /control/fault with JSON, e.g.
  curl -X POST -d '{\"kind\":\"disconnect\"}' http://127.0.0.1:8765/control/fault
kinds: disconnect, duplicate_bar, out_of_order, updated_bar, malformed_frame, auth_failure,
connection_limit, http429 {count}, slow_rest {delay_ms, count}, stall {ms}.
Scenario file (--scenario):
  [[fault]]
  every_min = 5            # or: at = \"2019-11-05T15:00:00Z\" (market time)
  kind = \"stall\"
  ms = 3000
Market time: GET /control/clock; counters: GET /control/stats.";

/// Run the exchange until SIGINT/SIGTERM.
pub fn run(args: Args) -> Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        return Err(bad_input(format!("--speed {}: give a positive number", args.speed)));
    }
    let start_ns = match &args.start {
        None => None,
        Some(t) => Some(
            super::wire::parse_time(t)
                .ok_or_else(|| bad_input(format!("--start {t}: give RFC 3339 (2019-11-01T15:00:00Z) or YYYY-MM-DD")))?,
        ),
    };
    let scenario = match &args.scenario {
        None => Scenario::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
            Scenario::parse(&text).map_err(|e| bad_input(format!("{}: {e}", p.display())))?
        }
    };
    let demo = args.key == DEMO_KEY && args.secret == DEMO_SECRET;
    let stop = crate::interrupt::flag();
    let ex = Exchange::start(ExchangeConfig {
        data: args.data.clone(),
        speed: args.speed,
        start_ns,
        port: args.port,
        plain: args.plain,
        key: args.key,
        secret: args.secret,
        state_dir: args.state_dir,
        scenario,
        ..ExchangeConfig::default()
    })
    .map_err(|e| match &args.data {
        Some(d) => bad_input(format!("{}: {e}", d.display())),
        None => anyhow::anyhow!("starting the exchange: {e}"),
    })?;
    let (http, ws, addr) = (ex.http_scheme(), ex.ws_scheme(), ex.addr());
    let tape = ex.tape();
    eprintln!(
        "ringtape exchange: {} symbols, market time {} at x{}",
        tape.symbols.len(),
        super::wire::rfc3339(ex.clock().market_start_ns),
        args.speed
    );
    eprintln!("  Alpaca stream   {ws}://{addr}/v2/iex  (also /v2/sip, /v2/test)");
    eprintln!("  Alpaca REST     {http}://{addr}/v2/stocks/bars");
    eprintln!("  Polygon stream  {ws}://{addr}/stocks");
    eprintln!("  Polygon REST    {http}://{addr}/v2/aggs/ticker/{{T}}/range/1/minute/{{from}}/{{to}}");
    eprintln!("  control         {http}://{addr}/control/clock, /control/stats, POST /control/fault");
    if let Some(p) = ex.cert_path() {
        eprintln!("  CA certificate  {}", p.display());
    }
    if demo {
        // The demo credentials are public (documented); configured ones are never printed.
        eprintln!("  credentials     demo: key {DEMO_KEY}, secret {DEMO_SECRET} (Polygon apiKey = the key)");
    } else {
        eprintln!("  credentials     as given by --key/--secret (Polygon apiKey = the key)");
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = ex.stats();
    ex.stop();
    eprintln!(
        "ringtape exchange: stopped ({} connections, {} bars published, {} frames sent)",
        s.connections, s.bars_published, s.frames_sent
    );
    Ok(())
}
