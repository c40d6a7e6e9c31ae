//! `ringtape fetch`: provider history into bar files. Alpaca bars or Polygon aggregates over REST
//! (`feeds::rest`: paged, 429s and 5xx retried with backoff, credentials kept to one origin), or
//! Databento's `timeseries.get_range` as DBN ([`databento`], decoded by the DBN importer), one
//! day per request batch, each symbol written to `SYM.<interval>.rtb` in `--out`.
//!
//! **Resumable.** After every day the symbol's bar file is rewritten atomically (a temporary file
//! renamed into place), so the bar files are the checkpoint: run the same command again after an
//! interruption (Ctrl-C, a network failure, a rate limit that outlasted the retries) and each
//! symbol continues after its last bar. Bars are ordered and deduped; a history page can never
//! put a bar into a file twice.
#![allow(clippy::disallowed_methods)] // progress and timing are wall-clock

pub mod databento;

use crate::exit::bad_input;
use crate::import_csv::bar_file_name;
use anyhow::{Context, Result};
use engine::barfile::{BarFile, write_bar_file};
use engine::records::{Bar, Interval, SymbolId};
use feeds::credentials::Credentials;
use feeds::rest::{AlpacaFeedName, AlpacaHistory, PolygonHistory, RestConfig};
use feeds::ws::TlsConfig;
use feeds::{FeedCounters, History, SymbolMap};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `ringtape fetch`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Credentials: APCA_API_KEY_ID / APCA_API_SECRET_KEY (alpaca), POLYGON_API_KEY \
(polygon) or DATABENTO_API_KEY (databento) from the environment, or --credentials-file (mode 0600). Run the same command again to resume \
after an interruption: each symbol continues after the last bar in its file. Exit 0; 1 the provider failed \
(the files hold what was fetched); 2 bad usage; 130 Ctrl-C (the files hold every finished day).")]
pub struct Args {
    /// alpaca, polygon or databento
    #[arg(long, value_name = "NAME", default_value = "alpaca")]
    pub provider: String,
    /// Databento dataset (--provider databento)
    #[arg(long, value_name = "CODE", default_value = "XNAS.ITCH")]
    pub dataset: String,
    /// Symbols, comma-separated
    #[arg(long, value_name = "SYM,...", value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// First day (YYYY-MM-DD, UTC) or RFC 3339 time
    #[arg(long, value_name = "T")]
    pub from: String,
    /// End, exclusive (YYYY-MM-DD: that day is not included)
    #[arg(long, value_name = "T")]
    pub to: String,
    /// Bar interval (1m, 5m, 1h, 1d; polygon also 1s; databento 1s, 1m, 1h, 1d)
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

/// Where the bars come from.
enum Source {
    /// Alpaca or Polygon over `feeds::rest`.
    Rest(Box<dyn History>),
    /// Databento's `timeseries.get_range`.
    Databento(Box<databento::DatabentoHistory>),
}

/// What the providers refused, by reason, for the report.
#[derive(Default)]
struct Refused {
    counters: FeedCounters,
    dbn: BTreeMap<&'static str, u64>,
}

impl Refused {
    fn total(&self) -> u64 {
        self.counters.rejects.iter().sum::<u64>() + self.dbn.values().sum::<u64>()
    }
}

impl Source {
    /// The bars of symbol `sym` (id `id`) with window start in `[t, end)`, in any order.
    #[allow(clippy::too_many_arguments)] // reason: one private helper of `run`, all plain inputs
    fn bars(
        &mut self,
        sym: &str,
        id: SymbolId,
        interval: Interval,
        t: i64,
        end: i64,
        map: &SymbolMap,
        refused: &mut Refused,
    ) -> Result<Vec<Bar>> {
        match self {
            Source::Rest(h) => {
                let got = h.bars(&[sym], interval, t, end, map, &mut refused.counters)?;
                Ok(got.into_iter().filter(|h| h.symbol == id).map(|h| h.bar).collect())
            }
            Source::Databento(d) => {
                let got = d.bars(sym, interval, t, end)?;
                for (reason, n) in &got.report.rejected {
                    *refused.dbn.entry(reason.as_str()).or_insert(0) += n;
                }
                Ok(got.bars)
            }
        }
    }
}

/// The client of `args.provider` at `url`.
fn source(args: &Args, interval: Interval, url: &str, rest: RestConfig) -> Result<Source> {
    let creds = Credentials::load(args.credentials_file.as_deref()).map_err(|e| bad_input(e.to_string()))?;
    let bad_url = |e: feeds::rest::RestConfigError| bad_input(format!("--rest-url {url}: {e}"));
    Ok(match args.provider.as_str() {
        "alpaca" => {
            let k = creds.alpaca().map_err(|e| bad_input(e.to_string()))?;
            let feed = if args.feed == "sip" { AlpacaFeedName::Sip } else { AlpacaFeedName::Iex };
            Source::Rest(Box::new(
                AlpacaHistory::new(rest, k.key_id.clone(), k.secret_key.clone(), feed).map_err(bad_url)?,
            ))
        }
        "polygon" => {
            let k = creds.polygon().map_err(|e| bad_input(e.to_string()))?;
            Source::Rest(Box::new(PolygonHistory::new(rest, k.clone()).map_err(bad_url)?))
        }
        _ => {
            if databento::schema(interval).is_none() {
                return Err(bad_input(format!(
                    "--interval {interval}: Databento serves OHLCV bars of 1s, 1m, 1h and 1d only; fetch one of \
                     those (5m bars can be made from 1m)"
                )));
            }
            let k = creds.databento().map_err(|e| bad_input(e.to_string()))?;
            Source::Databento(Box::new(
                databento::DatabentoHistory::new(rest, k.clone(), &args.dataset).map_err(bad_url)?,
            ))
        }
    })
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
    let default_url = match args.provider.as_str() {
        "alpaca" => "https://data.alpaca.markets",
        "polygon" => "https://api.polygon.io",
        "databento" => databento::DEFAULT_URL,
        p => return Err(bad_input(format!("--provider {p}: use alpaca, polygon or databento"))),
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
    let mut source = source(&args, interval, &url, RestConfig::new(url.clone(), tls))?;
    let mut map = SymbolMap::new();
    for (i, s) in args.symbols.iter().enumerate() {
        map.insert(s, SymbolId(i as u32)).map_err(|e| bad_input(format!("--symbols {s}: {e}")))?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let interval_s = interval.secs;
    let day = 86_400_000_000_000i64;
    let days = ((to - from + day - 1) / day).max(1) as u64;
    let pb = crate::progress::bar("fetch", days * args.symbols.len() as u64, "symbol-days", !args.quiet);
    let mut refused = Refused::default();
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
            let mut new =
                source.bars(sym, SymbolId(i as u32), interval, t, end, &map, &mut refused).with_context(|| {
                    format!("fetching {sym} from {url}; the files hold what was fetched, run again to resume")
                })?;
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
        // The days before the resume point count as done too.
        pb.set_position((i as u64 + 1) * days);
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
        let rej = refused.total();
        if rej > 0 {
            let reasons: Vec<String> = refused.dbn.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
            println!("  refused bars: {rej}{why} (see the provider's data)");
        }
    }
    Ok(())
}
