//! `ringtape exchange`: start the local exchange, print its URLs, run until Ctrl-C.

use super::{DEMO_KEY, DEMO_SECRET, Exchange, ExchangeConfig, Scenario};
use crate::exit::bad_input;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// Serve Alpaca and Polygon market data (stream and REST) from bar files on a market clock, and
/// Alpaca paper trading (REST and trade_updates) filled by the backtest venue, with
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
    /// Paper broker: starting cash, USD
    #[arg(long, default_value_t = 100_000.0, value_name = "USD")]
    pub cash: f64,
    /// Paper broker: wall milliseconds from `accepted` to `new`
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub ack_ms: u64,
    /// Paper broker: trading REST requests per minute per key (0 = no limit)
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub rate_limit: u32,
    /// Paper broker: the simulated venue's settings, a TOML file with the fields of the backtest's
    /// `[venue]` table (commission_per_share_e9, slippage, max_volume_ppm, `[venue.perturb]`)
    #[arg(long, value_name = "FILE")]
    pub venue: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Faults: POST /control/fault with JSON, e.g.
  curl -X POST -d '{\"kind\":\"disconnect\"}' http://127.0.0.1:8765/control/fault
kinds: disconnect, duplicate_bar, out_of_order, updated_bar, malformed_frame, auth_failure,
connection_limit, http429 {count}, slow_rest {delay_ms, count}, stall {ms};
history REST (Alpaca, Polygon, Databento): rest_error {status, count, retry_after_s}, unmapped_record;
paper broker: order_reject {count, via: rest|stream}, slow_ack {ms, for_ms}, drop_trade_updates,
trade_updates_outage {ms}, rate_limit {count}. Broker state: GET /control/broker.
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
    if !(args.cash >= 0.0 && args.cash < 1e12) {
        return Err(bad_input(format!("--cash {}: give a non-negative amount of USD below 1e12", args.cash)));
    }
    let venue = match &args.venue {
        None => engine::venue::VenueConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
            toml::from_str(&text).map_err(|e| bad_input(format!("{}: {e}", p.display())))?
        }
    };
    let broker = super::BrokerConfig {
        starting_cash_e9: (args.cash * 1e9).round() as i64,
        ack_latency_ms: args.ack_ms,
        venue,
        rate_limit_per_min: args.rate_limit,
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
        broker,
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
    eprintln!("  Databento REST  {http}://{addr}/v0/timeseries.get_range  (ohlcv-1s/1m/1h/1d as DBN)");
    eprintln!("  trading REST    {http}://{addr}/v2/orders, /v2/positions, /v2/account");
    eprintln!("  trade_updates   {ws}://{addr}/stream");
    eprintln!("  control         {http}://{addr}/control/clock, /control/stats, /control/broker, POST /control/fault");
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
