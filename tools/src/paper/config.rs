//! The paper run's config file: the backtest's tables (`pipeline`, `risk`, `venue`, `journal`,
//! `account`, `strategy`) plus `[feed]` (where live data comes from) and `[paper]` (how the run
//! behaves). The engine tables go through the backtest's checks unchanged, so a paper run's
//! `config.toml` replays with `ringtape replay` like a backtest's.

use crate::backtest::{self, RunConfig};
use crate::exit::bad_input;
use anyhow::Result;
use engine::pipeline::config::{JournalInputs, Topology};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which provider's protocol the feed speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Alpaca market data v2 (minute bars, updated bars, quotes).
    #[default]
    Alpaca,
    /// Polygon/Massive stocks (`AM` per-minute aggregates).
    Polygon,
}

impl Provider {
    /// `alpaca` / `polygon`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Alpaca => "alpaca",
            Provider::Polygon => "polygon",
        }
    }
}

/// The `[feed]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// `alpaca` or `polygon`.
    pub provider: Provider,
    /// The websocket URL (default: the provider's real-time stream).
    pub stream_url: Option<String>,
    /// The REST base URL for warm start and gap backfill (default: the provider's).
    pub rest_url: Option<String>,
    /// Symbols to subscribe.
    pub symbols: Vec<String>,
    /// Minutes of history fetched before live data (0 = no warm start).
    pub warm_start_min: u32,
    /// Also subscribe quotes (Alpaca).
    pub quotes: bool,
    /// An extra trusted root certificate, PEM (a local exchange's generated certificate).
    pub ca_file: Option<PathBuf>,
    /// A credentials file (mode 0600); else the environment (`APCA_API_KEY_ID`,
    /// `APCA_API_SECRET_KEY`, `POLYGON_API_KEY`).
    pub credentials_file: Option<PathBuf>,
    /// Room in the sequencer's ingress, events.
    pub ingress_capacity: usize,
    /// How long a bar window stays open for late updates before it is released, ms.
    pub grace_ms: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            provider: Provider::Alpaca,
            stream_url: None,
            rest_url: None,
            symbols: Vec::new(),
            warm_start_min: 120,
            quotes: false,
            ca_file: None,
            credentials_file: None,
            ingress_capacity: 65_536,
            grace_ms: 1_500,
        }
    }
}

/// The `[paper]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Status line period on stderr, ms (0 = none).
    pub status_ms: u64,
    /// End the run after this many seconds of wall time (0 = until Ctrl-C).
    pub max_runtime_s: u64,
}

impl Default for PaperConfig {
    fn default() -> Self {
        PaperConfig { status_ms: 1_000, max_runtime_s: 0 }
    }
}

/// Where orders go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// The simulated venue (fills from the market data the run sees).
    #[default]
    Sim,
    /// Alpaca's trading API (paper, or live with `live = true` and `--confirm-live`).
    Alpaca,
}

/// What a position mismatch with the broker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MismatchPolicy {
    /// Take the broker's position (logged and counted as an alert).
    #[default]
    Adopt,
    /// Refuse new entries for the rest of the run; exits still go out.
    Halt,
}

/// The `[broker]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `sim` or `alpaca` (`--broker` overrides it).
    pub kind: BrokerKind,
    /// Trading REST base URL (default: Alpaca's paper API; its live API when `live`).
    pub trading_url: Option<String>,
    /// The trade_updates stream URL (default: the trading host's `/stream`).
    pub stream_url: Option<String>,
    /// A live (real money) account: needs `--confirm-live` on the command line as well.
    pub live: bool,
    /// What a position mismatch found at a reconcile does.
    pub on_mismatch: MismatchPolicy,
    /// Cancel every open order at the broker when the trade_updates stream drops, and refuse new
    /// orders until it is back.
    pub cancel_on_disconnect: bool,
    /// At shutdown, how long to wait for the broker to confirm cancels (and flattening fills).
    pub shutdown_wait_s: f64,
    /// HTTP timeout of one trading request, seconds.
    pub request_timeout_s: f64,
    /// Retries of a trading request (429, 5xx, transport) before giving up.
    pub max_retries: u32,
    /// Commands that may wait for the gateway before orders are refused.
    pub queue: usize,
    /// An extra trusted root certificate, PEM (a local exchange's); default: the feed's.
    pub ca_file: Option<PathBuf>,
    /// A credentials file (mode 0600); default: the feed's, else the environment.
    pub credentials_file: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            kind: BrokerKind::Sim,
            trading_url: None,
            stream_url: None,
            live: false,
            on_mismatch: MismatchPolicy::Adopt,
            cancel_on_disconnect: true,
            shutdown_wait_s: 10.0,
            request_timeout_s: 10.0,
            max_retries: 4,
            queue: 4_096,
            ca_file: None,
            credentials_file: None,
        }
    }
}

/// Alpaca's paper trading host.
pub const ALPACA_PAPER: &str = "https://paper-api.alpaca.markets";
/// Alpaca's live trading host (real money).
pub const ALPACA_LIVE: &str = "https://api.alpaca.markets";

impl BrokerConfig {
    /// The trading REST URL.
    pub fn trading_url(&self) -> String {
        self.trading_url.clone().unwrap_or_else(|| (if self.live { ALPACA_LIVE } else { ALPACA_PAPER }).to_string())
    }

    /// The trade_updates stream URL: the trading URL's scheme changed to ws(s), path `/stream`.
    pub fn stream_url(&self) -> String {
        self.stream_url.clone().unwrap_or_else(|| {
            let t = self.trading_url();
            let t = t.trim_end_matches('/');
            let ws = t.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
            format!("{ws}/stream")
        })
    }

    /// Refuse a setup that could trade real money by mistake: the live host without `live =
    /// true`, or live without `--confirm-live`.
    pub fn check_live(&self, what: &str, confirmed: bool) -> Result<()> {
        let url = self.trading_url();
        let live_host = url.trim_end_matches('/') == ALPACA_LIVE;
        if live_host && !self.live {
            return Err(bad_input(format!(
                "{what}: broker.trading_url is Alpaca's live (real money) API but broker.live = false: set live = true and pass --confirm-live, or use {ALPACA_PAPER}"
            )));
        }
        if self.live && !confirmed {
            return Err(bad_input(format!(
                "{what}: broker.live = true trades real money: pass --confirm-live to mean it"
            )));
        }
        let timeout_ok = self.request_timeout_s.is_finite() && self.request_timeout_s > 0.0;
        if self.shutdown_wait_s.is_nan() || self.shutdown_wait_s < 0.0 || !timeout_ok || self.queue == 0 {
            return Err(bad_input(format!(
                "{what}: [broker] shutdown_wait_s must be >= 0, request_timeout_s > 0 and queue > 0"
            )));
        }
        Ok(())
    }
}

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct PaperFile {
    /// Engine, account and strategy tables.
    pub run: RunConfig,
    /// `[feed]`.
    pub feed: FeedConfig,
    /// `[paper]`.
    pub paper: PaperConfig,
    /// `[broker]`.
    pub broker: BrokerConfig,
}

/// Parse a paper config (`what` names it in errors). Paper runs record every input
/// (`journal.inputs = "all"`, so `ringtape replay` reproduces them), keep strategies from trading
/// on warm-start history (`risk.warmup_gate`) and run on threads unless the file says otherwise.
pub fn parse(text: &str, what: &str) -> Result<PaperFile> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| bad_input(format!("{what}: {e}")))?;
    let feed: FeedConfig = match table.remove("feed") {
        Some(v) => v.try_into().map_err(|e| bad_input(format!("{what}: [feed]: {e} (see ringtape.paper.toml)")))?,
        None => FeedConfig::default(),
    };
    let paper: PaperConfig = match table.remove("paper") {
        Some(v) => v.try_into().map_err(|e| bad_input(format!("{what}: [paper]: {e} (see ringtape.paper.toml)")))?,
        None => PaperConfig::default(),
    };
    let broker: BrokerConfig = match table.remove("broker") {
        Some(v) => v.try_into().map_err(|e| bad_input(format!("{what}: [broker]: {e} (see ringtape.paper.toml)")))?,
        None => BrokerConfig::default(),
    };
    let rest = toml::to_string(&table)?;
    let mut run = backtest::parse_config(&rest, what)?;
    let explicit_journal = table.get("journal").and_then(|j| j.get("inputs")).is_some();
    if explicit_journal && run.engine.journal.inputs != JournalInputs::All {
        return Err(bad_input(format!(
            "{what}: journal.inputs must be \"all\" in a paper run (live inputs exist only in the journal; remove the key)"
        )));
    }
    run.engine.journal.inputs = JournalInputs::All;
    let explicit_gate = table.get("risk").and_then(|r| r.get("warmup_gate")).is_some();
    if !explicit_gate {
        run.engine.risk.warmup_gate = true;
    }
    if run.engine.pipeline.topology == Topology::Auto {
        run.engine.pipeline.topology = Topology::Threads;
    }
    if feed.ingress_capacity == 0 {
        return Err(bad_input(format!("{what}: feed.ingress_capacity = 0 (use e.g. 65536)")));
    }
    Ok(PaperFile { run, feed, paper, broker })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_record_everything_gate_warm_up_and_run_on_threads() {
        let f = parse("", "cfg").unwrap();
        assert_eq!(f.run.engine.journal.inputs, JournalInputs::All);
        assert!(f.run.engine.risk.warmup_gate);
        assert_eq!(f.run.engine.pipeline.topology, Topology::Threads);
        assert_eq!(f.feed.provider, Provider::Alpaca);
        let f = parse("[risk]\nwarmup_gate = false\n[pipeline]\ntopology = \"inline\"\n", "cfg").unwrap();
        assert!(!f.run.engine.risk.warmup_gate, "an explicit choice is kept");
        assert_eq!(f.run.engine.pipeline.topology, Topology::Inline);
    }

    #[test]
    fn feed_and_paper_tables_are_checked_and_the_rest_is_the_backtest_config() {
        let text = "[feed]\nprovider = \"polygon\"\nsymbols = [\"AAPL\"]\n[paper]\nmax_runtime_s = 5\n[strategy]\nname = \"orb\"\n";
        let f = parse(text, "cfg").unwrap();
        assert_eq!(
            (f.feed.provider, f.feed.symbols.clone(), f.paper.max_runtime_s),
            (Provider::Polygon, vec!["AAPL".into()], 5)
        );
        assert_eq!(f.run.strategy_name.as_deref(), Some("orb"));
        let e = parse("[feed]\nprovidr = \"x\"\n", "my.toml").unwrap_err().to_string();
        assert!(e.starts_with("my.toml: [feed]: unknown field `providr`"), "{e}");
        let e = parse("[journal]\ninputs = \"reference\"\n", "my.toml").unwrap_err().to_string();
        assert!(e.contains("journal.inputs must be \"all\""), "{e}");
        let e = parse("[feed]\ningress_capacity = 0\n", "my.toml").unwrap_err().to_string();
        assert!(e.contains("feed.ingress_capacity = 0"), "{e}");
    }

    #[test]
    fn the_broker_table_defaults_to_the_simulator_and_live_trading_needs_two_yeses() {
        let f = parse("", "cfg").unwrap();
        assert_eq!(f.broker.kind, BrokerKind::Sim);
        assert_eq!(f.broker.stream_url(), "wss://paper-api.alpaca.markets/stream");
        let f = parse(
            "[broker]\nkind = \"alpaca\"\ntrading_url = \"http://127.0.0.1:9/\"\non_mismatch = \"halt\"\n",
            "cfg",
        )
        .unwrap();
        assert_eq!((f.broker.kind, f.broker.on_mismatch), (BrokerKind::Alpaca, MismatchPolicy::Halt));
        assert_eq!(f.broker.stream_url(), "ws://127.0.0.1:9/stream");
        f.broker.check_live("cfg", false).unwrap();
        let sneaky =
            parse("[broker]\nkind = \"alpaca\"\ntrading_url = \"https://api.alpaca.markets\"\n", "cfg").unwrap();
        let e = sneaky.broker.check_live("cfg", true).unwrap_err().to_string();
        assert!(e.contains("live (real money)") && e.contains("broker.live = false"), "{e}");
        let live = parse("[broker]\nkind = \"alpaca\"\nlive = true\n", "cfg").unwrap();
        assert_eq!(live.broker.trading_url(), ALPACA_LIVE);
        let e = live.broker.check_live("cfg", false).unwrap_err().to_string();
        assert!(e.contains("--confirm-live"), "{e}");
        live.broker.check_live("cfg", true).unwrap();
        let e = parse("[broker]\nknd = \"x\"\n", "my.toml").unwrap_err().to_string();
        assert!(e.starts_with("my.toml: [broker]: unknown field `knd`"), "{e}");
    }

    #[test]
    fn the_example_paper_config_parses() {
        let f = parse(include_str!("../../../ringtape.paper.toml"), "ringtape.paper.toml").unwrap();
        assert_eq!(f.feed.symbols, vec!["AAPL".to_string(), "MSFT".to_string()]);
        assert_eq!((f.feed.warm_start_min, f.paper.status_ms), (120, 1000));
        assert!(f.run.engine.risk.flatten_at_end && f.run.engine.risk.warmup_gate);
    }
}
