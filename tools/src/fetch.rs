//! `ringtape fetch`: provider history into bar files. Alpaca bars or Polygon aggregates over REST
//! (`feeds::rest`: paged, 429s and 5xx retried with backoff, credentials kept to one origin),
//! one day per request batch, each symbol written to `SYM.<interval>.rtb` in `--out`.
//!
//! **Resumable.** After every day the symbol's bar file is rewritten atomically (a temporary file
//! renamed into place), so the bar files are the checkpoint: run the same command again after an
//! interruption (Ctrl-C, a network failure, a rate limit that outlasted the retries) and each
//! symbol continues after its last bar. Bars are ordered and deduped; a history page can never
//! put a bar into a file twice.
#![allow(clippy::disallowed_methods)] // progress and timing are wall-clock

use crate::exit::bad_input;
use crate::import_csv::bar_file_name;
use anyhow::{Context, Result};
use engine::barfile::{BarFile, write_bar_file};
use engine::records::{Bar, Interval, SymbolId};
use feeds::credentials::Credentials;
use feeds::rest::{AlpacaFeedName, AlpacaHistory, PolygonHistory, RestConfig};
use feeds::ws::TlsConfig;
use feeds::{FeedCounters, History, SymbolMap};
use std::path::{Path, PathBuf};

/// Arguments of `ringtape fetch`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Credentials: APCA_API_KEY_ID / APCA_API_SECRET_KEY (alpaca) or POLYGON_API_KEY \
(polygon) from the environment, or --credentials-file (mode 0600). Run the same command again to resume \
after an interruption: each symbol continues after the last bar in its file. Exit 0; 1 the provider failed \
(the files hold what was fetched); 2 bad usage; 130 Ctrl-C (the files hold every finished day).")]
pub struct Args {
    /// alpaca or polygon
    #[arg(long, value_name = "NAME", default_value = "alpaca")]
    pub provider: String,
    /// Symbols, comma-separated
    #[arg(long, value_name = "SYM,...", value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// First day (YYYY-MM-DD, UTC) or RFC 3339 time
    #[arg(long, value_name = "T")]
    pub from: String,
    /// End, exclusive (YYYY-MM-DD: that day is not included)
    #[arg(long, value_name = "T")]
    pub to: String,
    /// Bar interval (1m, 5m, 1h, 1d; polygon also 1s)
    #[arg(long, value_name = "INTERVAL", default_value = "1m")]
    pub interval: String,
    /// Directory for the bar files (created)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// REST base URL (default: the provider's; a local exchange's for tests)
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// An extra trusted root certificate (PEM), e.g. a local exchange's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Credentials file (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Alpaca data feed: iex or sip
    #[arg(long, value_name = "FEED", default_value = "iex")]
    pub feed: String,
    /// No progress and no report
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_time(s: &str, what: &str) -> Result<i64> {
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        let ts = d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| bad_input(format!("{what} {s}: {e}")))?.timestamp();
        return Ok(i64::try_from(ts.as_nanosecond()).unwrap_or(i64::MAX));
    }
    let ts: jiff::Timestamp =
        s.parse().map_err(|_| bad_input(format!("{what} {s}: use YYYY-MM-DD or an RFC 3339 time")))?;
    Ok(i64::try_from(ts.as_nanosecond()).unwrap_or(i64::MAX))
}

/// The bars already in `path` (a resumed fetch), or none.
fn existing(path: &Path) -> Result<Vec<Bar>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let f = BarFile::open(path).map_err(|e| bad_input(format!("{e} (delete the file to fetch it again)")))?;
    Ok(f.bars().to_vec())
}

/// Write `bars` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, symbol: &str, interval_s: u32, bars: &[Bar]) -> Result<()> {
    let tmp = path.with_extension("rtb.partial");
    write_bar_file(&tmp, symbol, interval_s, bars).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let stop = crate::interrupt::flag();
    let interval = Interval::parse(&args.interval)
        .ok_or_else(|| bad_input(format!("--interval {}: use e.g. 1m, 5m, 1h, 1d", args.interval)))?;
    let (from, to) = (parse_time(&args.from, "--from")?, parse_time(&args.to, "--to")?);
    if from >= to {
        return Err(bad_input(format!("--from {} is not before --to {}", args.from, args.to)));
    }
    let creds = Credentials::load(args.credentials_file.as_deref()).map_err(|e| bad_input(e.to_string()))?;
    let default_url = match args.provider.as_str() {
        "alpaca" => "https://data.alpaca.markets",
        "polygon" => "https://api.polygon.io",
        p => return Err(bad_input(format!("--provider {p}: use alpaca or polygon"))),
    };
    let url = args.rest_url.clone().unwrap_or_else(|| default_url.into());
    let tls = if url.starts_with("http://") {
        TlsConfig::Plain
    } else if let Some(p) = &args.ca_file {
        TlsConfig::with_extra_root_pem(
            std::fs::read_to_string(p).map_err(|e| bad_input(format!("{}: {e} (--ca-file)", p.display())))?,
        )
    } else {
        TlsConfig::webpki()
    };
    let rest = RestConfig::new(url.clone(), tls);
    let mut history: Box<dyn History> = match args.provider.as_str() {
        "alpaca" => {
            let k = creds.alpaca().map_err(|e| bad_input(e.to_string()))?;
            let feed = if args.feed == "sip" { AlpacaFeedName::Sip } else { AlpacaFeedName::Iex };
            Box::new(
                AlpacaHistory::new(rest, k.key_id.clone(), k.secret_key.clone(), feed)
                    .map_err(|e| bad_input(format!("--rest-url {url}: {e}")))?,
            )
        }
        _ => {
            let k = creds.polygon().map_err(|e| bad_input(e.to_string()))?;
            Box::new(PolygonHistory::new(rest, k.clone()).map_err(|e| bad_input(format!("--rest-url {url}: {e}")))?)
        }
    };
    let mut map = SymbolMap::new();
    for (i, s) in args.symbols.iter().enumerate() {
        map.insert(s, SymbolId(i as u32)).map_err(|e| bad_input(format!("--symbols {s}: {e}")))?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let interval_s = interval.secs;
    let day = 86_400_000_000_000i64;
    let days = ((to - from + day - 1) / day).max(1) as u64;
    let pb = crate::progress::bar(days * args.symbols.len() as u64, "symbol-days", !args.quiet);
    pb.set_message("fetch");
    let mut counters = FeedCounters::default();
    let mut report = Vec::new();
    for (i, sym) in args.symbols.iter().enumerate() {
        let path = args.out.join(bar_file_name(sym, interval_s));
        let mut bars = existing(&path)?;
        let resumed = bars.len();
        // Continue after the last bar already fetched.
        let mut t = bars.last().map_or(from, |b| (b.ts_event_ns + interval.nanos()).max(from));
        let mut fetched = 0usize;
        while t < to {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(crate::exit::interrupted(format!(
                    "interrupted: {} holds every finished day; run the same command to resume",
                    args.out.display()
                )));
            }
            let end = (t.div_euclid(day) * day + day).min(to);
            let got = history.bars(&[sym.as_str()], interval, t, end, &map, &mut counters).with_context(|| {
                format!("fetching {sym} from {url}; the files hold what was fetched, run again to resume")
            })?;
            let mut new: Vec<Bar> = got.into_iter().filter(|h| h.symbol == SymbolId(i as u32)).map(|h| h.bar).collect();
            new.sort_by_key(|b| b.ts_event_ns);
            new.dedup_by_key(|b| b.ts_event_ns);
            new.retain(|b| bars.last().is_none_or(|l| b.ts_event_ns > l.ts_event_ns));
            fetched += new.len();
            bars.extend(new);
            if !bars.is_empty() {
                write_atomic(&path, sym, interval_s, &bars)?;
            }
            t = end;
            pb.inc(1);
        }
        report.push((sym.clone(), resumed, fetched, bars.len()));
    }
    pb.finish_and_clear();
    if !args.quiet {
        println!(
            "ringtape fetch: {} {} bars of {} symbol(s) into {}",
            args.provider,
            interval,
            args.symbols.len(),
            args.out.display()
        );
        for (sym, resumed, fetched, total) in &report {
            println!("  {sym:<10} {total:>9} bars ({resumed} already there, {fetched} fetched)");
        }
        let rej: u64 = counters.rejects.iter().sum();
        if rej > 0 {
            println!("  refused bars: {rej} (see the provider's data)");
        }
    }
    Ok(())
}
