//! `ringtape synth --symbols N --days D [--interval 1m|1s] [--seed S] [--start DATE] --out DIR`:
//! deterministic synthetic bars.
//!
//! Trading days are the weekdays from `--start` (no holiday calendar). Each day has the regular
//! session 09:30-16:00 America/New_York (390 one-minute or 23,400 one-second bars), placed in UTC
//! per day with jiff so DST changes are right. Per symbol (`SYM000`, `SYM001`, ...): a geometric
//! random walk with its own start price (20..500 USD, log-uniform) and volatility (15..60 % a year),
//! an overnight gap, prices rounded to cents, OHLC consistent by construction (open = previous close
//! within a session, high/low = max/min of open and close widened by random wicks), and volume
//! following the intraday U shape (heavy at the open and close, light at midday) times lognormal
//! noise.
//!
//! Randomness is a self-contained xoshiro256** seeded through SplitMix64 from `(seed, symbol index)`,
//! so symbols are independent, generated in parallel, and the same arguments give byte-identical
//! files on a given platform (the math uses `f64` `exp`/`ln`/`cos`, whose last bit may differ between
//! platforms' libm).
#![allow(clippy::disallowed_methods)] // wall-clock timing of runs and benchmarks is the point here

use crate::exit::bad_input;
use crate::import_csv::bar_file_name;
use crate::progress;
use anyhow::{Context, Result};
use engine::barfile::{Header, write_bar_file};
use engine::records::{Bar, Interval};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Length of the regular session, 09:30-16:00, in seconds.
pub const SESSION_S: u32 = 23_400;

/// Arguments of `ringtape synth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of symbols (named SYM000, SYM001, ...)
    #[arg(long, value_name = "N")]
    pub symbols: u32,
    /// Number of trading days (weekdays from --start)
    #[arg(long, value_name = "D")]
    pub days: u32,
    /// Bar interval; must divide the 6.5-hour session (1s, 1m, 5m, 30m, ...)
    #[arg(long, value_name = "INTERVAL", default_value = "1m", value_parser = parse_interval_arg)]
    pub interval: Interval,
    /// Random seed: the same seed gives byte-identical files
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// First calendar day (YYYY-MM-DD); weekends are skipped
    #[arg(long, value_name = "DATE", default_value = "2024-01-02", value_parser = parse_date_arg)]
    pub start: Date,
    /// Output directory (created if needed)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Worker threads (default: the number of CPUs)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

fn parse_interval_arg(s: &str) -> Result<Interval, String> {
    match Interval::parse(s) {
        Some(iv) if SESSION_S.is_multiple_of(iv.secs) => Ok(iv),
        Some(_) => Err(format!("{s} does not divide the 09:30-16:00 session (23400 s); use e.g. 1s, 1m, 5m, 30m")),
        None => Err(format!("{s:?} is not an interval (use e.g. 1s, 1m, 5m)")),
    }
}

fn parse_date_arg(s: &str) -> Result<Date, String> {
    s.parse::<Date>().map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD): {e}"))
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Number of symbols.
    pub symbols: u32,
    /// Number of trading days.
    pub days: u32,
    /// Bar length in seconds (divides [`SESSION_S`]).
    pub interval_s: u32,
    /// Random seed.
    pub seed: u64,
    /// First calendar day.
    pub start: Date,
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64 (Steele, Lea, Flood): used to expand seeds.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman, Vigna) with a Box-Muller normal sampler.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator for stream `stream` of `seed`: distinct streams are independent.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let key = SplitMix64(seed).next_u64() ^ SplitMix64(stream ^ 0x5EED_5EED_5EED_5EED).next_u64();
        let mut sm = SplitMix64(key);
        let mut s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s, spare: None }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller, both values used).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar

/// The symbol name of index `i`: `SYM000`, `SYM001`, ...
pub fn symbol_name(i: u32) -> String {
    format!("SYM{i:03}")
}

/// UTC nanoseconds of 09:30 America/New_York on each of `days` weekdays from `start`.
pub fn session_opens(start: Date, days: u32) -> Result<Vec<i64>> {
    let ny = TimeZone::get("America/New_York").context("loading the America/New_York time zone")?;
    let mut out = Vec::with_capacity(days as usize);
    let mut d = start;
    while out.len() < days as usize {
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            let ts = d
                .at(9, 30, 0, 0)
                .to_zoned(ny.clone())
                .map_err(|e| bad_input(format!("--days {days} from {start}: {d}: {e}")))?
                .timestamp();
            let ns = i64::try_from(ts.as_nanosecond()).map_err(|_| {
                bad_input(format!("--days {days} from {start} runs past 2262, the end of ns timestamps"))
            })?;
            out.push(ns);
        }
        d = d.tomorrow().map_err(|e| bad_input(format!("--days {days} from {start}: {e}")))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Bars

/// Generate the bars of symbol `index` for the sessions starting at `opens`. Calls `day_done`
/// after each day (for progress).
pub fn generate_symbol(cfg: &SynthConfig, opens: &[i64], index: u32, mut day_done: impl FnMut()) -> Vec<Bar> {
    let per_day = (SESSION_S / cfg.interval_s) as usize;
    let interval_ns = i64::from(cfg.interval_s) * 1_000_000_000;
    let mut rng = Rng::new(cfg.seed, u64::from(index));
    // Per-symbol character.
    let mut px = (20f64.ln() + rng.uniform() * (500f64 / 20.0).ln()).exp();
    let annual_vol = 0.15 + 0.45 * rng.uniform();
    let sigma = annual_vol / (252.0 * per_day as f64).sqrt();
    let gap_sigma = 0.4 * annual_vol / 252f64.sqrt();
    let shares_per_min = (2_000f64.ln() + rng.uniform() * 100f64.ln()).exp();
    let base_volume = shares_per_min * f64::from(cfg.interval_s) / 60.0;
    // The intraday U shape, same for every day.
    let shape: Vec<f64> = (0..per_day)
        .map(|i| {
            let x = (i as f64 + 0.5) / per_day as f64;
            0.5 + 2.5 * (-x / 0.06).exp() + 1.8 * (-(1.0 - x) / 0.05).exp()
        })
        .collect();
    const VOL_NOISE: f64 = 0.45;
    let cents = |p: f64| ((p * 100.0).round() as i64).max(1);

    let mut bars = Vec::with_capacity(per_day * opens.len());
    for &open_ns in opens {
        px = (px * (gap_sigma * rng.normal()).exp()).max(0.01);
        let mut prev_close = cents(px);
        for (i, &u) in shape.iter().enumerate() {
            let open = prev_close;
            px = (px * (sigma * rng.normal() - 0.5 * sigma * sigma).exp()).max(0.01);
            let close = cents(px);
            let wick = sigma * px * 100.0 * 0.6;
            let high = open.max(close) + (wick * rng.normal().abs()).round() as i64;
            let low = (open.min(close) - (wick * rng.normal().abs()).round() as i64).max(1);
            let noise = (VOL_NOISE * rng.normal() - 0.5 * VOL_NOISE * VOL_NOISE).exp();
            let volume = (base_volume * u * noise).round() as u64;
            bars.push(Bar {
                ts_event_ns: open_ns + i as i64 * interval_ns,
                open_px_e9: open * 10_000_000,
                high_px_e9: high * 10_000_000,
                low_px_e9: low * 10_000_000,
                close_px_e9: close * 10_000_000,
                volume,
            });
            prev_close = close;
        }
        day_done();
    }
    bars
}

/// Generate every symbol of `cfg` into `out` (`SYMnnn.<interval>.rtb`) on up to `threads` threads,
/// each writing its files as it finishes them. Returns the headers in symbol order.
pub fn write_all(cfg: &SynthConfig, out: &Path, threads: usize, pb: &crate::progress::Progress) -> Result<Vec<Header>> {
    let opens = session_opens(cfg.start, cfg.days)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    let n = cfg.symbols as usize;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Header>>>> = Mutex::new((0..n).map(|_| None).collect());
    let threads = threads.clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let index = i as u32;
                    let bars = generate_symbol(cfg, &opens, index, || pb.inc(1));
                    let symbol = symbol_name(index);
                    let path = out.join(bar_file_name(&symbol, cfg.interval_s));
                    let r = write_bar_file(&path, &symbol, cfg.interval_s, &bars)
                        .with_context(|| format!("writing {}", path.display()));
                    let mut guard = results.lock().unwrap_or_else(|p| p.into_inner());
                    guard[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a synth worker stopped early"))))
        .collect()
}

/// Run `ringtape synth`.
pub fn run(args: Args) -> Result<()> {
    if args.symbols == 0 || args.days == 0 {
        return Err(bad_input("--symbols and --days must be at least 1"));
    }
    let cfg = SynthConfig {
        symbols: args.symbols,
        days: args.days,
        interval_s: args.interval.secs,
        seed: args.seed,
        start: args.start,
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_day = u64::from(SESSION_S / cfg.interval_s);
    let total_days = u64::from(cfg.symbols) * u64::from(cfg.days);
    let total_bars = total_days * per_day;
    let pb = progress::bar("synth", total_days, "symbol-days", total_bars > 200_000);
    // Timing a user-facing command is fine here: nothing generated depends on it.
    let started = std::time::Instant::now();
    let headers = write_all(&cfg, &args.out, threads, &pb);
    pb.finish_and_clear();
    let headers = headers?;
    let secs = started.elapsed().as_secs_f64();
    let (first, last) = headers.first().map_or((0, 0), |h| (h.ts_first_ns, h.ts_last_ns));
    println!(
        "synth: {} symbols x {} days x {per_day} bars ({}) = {total_bars} bars, seed {}, {} .. {} -> {} ({secs:.2} s)",
        cfg.symbols,
        cfg.days,
        args.interval,
        cfg.seed,
        crate::export::fmt_ts(first),
        crate::export::fmt_ts(last),
        args.out.display(),
    );
    const LIST_MAX: usize = 20;
    for h in headers.iter().take(LIST_MAX) {
        println!("  {} ({} bars)", args.out.join(bar_file_name(&h.symbol, h.interval_s)).display(), h.count);
    }
    if headers.len() > LIST_MAX {
        println!("  ... and {} more files", headers.len() - LIST_MAX);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(interval_s: u32, days: u32) -> SynthConfig {
        SynthConfig { symbols: 3, days, interval_s, seed: 7, start: Date::constant(2024, 3, 7) }
    }

    #[test]
    fn sessions_are_weekdays_at_0930_new_york() {
        // 2024-03-07 (Thu), 08 (Fri), 11 (Mon: New York is on EDT since the 10th), 12 (Tue).
        let opens = session_opens(Date::constant(2024, 3, 7), 4).unwrap();
        let want = ["2024-03-07T14:30:00Z", "2024-03-08T14:30:00Z", "2024-03-11T13:30:00Z", "2024-03-12T13:30:00Z"];
        let got: Vec<String> = opens.iter().map(|&ns| crate::export::fmt_ts(ns)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bars_are_valid_and_shaped() {
        let c = cfg(60, 5);
        let opens = session_opens(c.start, c.days).unwrap();
        let bars = generate_symbol(&c, &opens, 0, || {});
        assert_eq!(bars.len(), 5 * 390);
        for w in bars.windows(2) {
            assert!(w[0].ts_event_ns < w[1].ts_event_ns);
        }
        for (d, day) in bars.chunks(390).enumerate() {
            assert_eq!(day[0].ts_event_ns, opens[d]);
            assert_eq!(day[389].ts_event_ns, opens[d] + 389 * 60_000_000_000);
            for b in day {
                b.validate().unwrap();
                assert_eq!(b.close_px_e9 % 10_000_000, 0, "cents");
            }
            for w in day.windows(2) {
                assert_eq!(w[1].open_px_e9, w[0].close_px_e9, "continuous within a session");
            }
        }
        // U shape: the first and last half hours trade more than midday, on average.
        let avg = |r: std::ops::Range<usize>| {
            let n = (r.len() * 5) as f64;
            bars.chunks(390).map(|d| d[r.clone()].iter().map(|b| b.volume as f64).sum::<f64>()).sum::<f64>() / n
        };
        let (open, mid, close) = (avg(0..30), avg(180..210), avg(360..390));
        assert!(open > 1.5 * mid && close > 1.5 * mid, "{open} {mid} {close}");
    }

    #[test]
    fn deterministic_per_seed_and_independent_per_symbol() {
        let c = cfg(60, 2);
        let opens = session_opens(c.start, c.days).unwrap();
        assert_eq!(generate_symbol(&c, &opens, 1, || {}), generate_symbol(&c, &opens, 1, || {}));
        assert_ne!(generate_symbol(&c, &opens, 0, || {}), generate_symbol(&c, &opens, 1, || {}));
        let other = SynthConfig { seed: 8, ..c.clone() };
        assert_ne!(generate_symbol(&c, &opens, 1, || {}), generate_symbol(&other, &opens, 1, || {}));
    }

    #[test]
    fn one_second_bars() {
        let c = cfg(1, 1);
        let opens = session_opens(c.start, 1).unwrap();
        let bars = generate_symbol(&c, &opens, 2, || {});
        assert_eq!(bars.len(), 23_400);
        assert!(bars.iter().all(|b| b.validate().is_ok()));
    }

    #[test]
    fn rng_is_xoshiro256starstar() {
        // Reference: xoshiro256** with state [1, 2, 3, 4] yields 11520, 0, 1509978240, 1215971899390074240.
        let mut r = Rng { s: [1, 2, 3, 4], spare: None };
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
        // SplitMix64 from 0: first output 0xE220A8397B1DCDAF.
        assert_eq!(SplitMix64(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
