//! `report` and `import-dbn`: the research tools' throughput (issue 15's speed aims: `ringtape
//! report` reads at least 100 MB of journal per second; `ringtape import dbn` imports at least
//! 50 M records per second from a plain DBN file).
//!
//! **report.** Data: `ringtape synth --symbols S --days D --interval 1m --seed 1` (default 10 x
//! 400 = 1.56 M bars) backtested with `sma_cross` and `[journal] inputs = "all"` (every bar is a
//! journal INPUT record: about 114 MB of journal), generated on first use in `--dir` (default
//! `target/bench-data/report10x400`). Timed, after one warm-up (files in the page cache):
//! * **journal pass**: `report::journal::JournalStats::read` (records by kind, inputs by event,
//!   decisions by reason and origin, reports, days, stops);
//! * **read run**: `report::read_source` (the journal pass, `fills.csv` parsed, every metric);
//! * **html**: `report::html` over that run (every chart drawn by plotters);
//! * **process**: `ringtape report RUN --out FILE.html`, start to exit.
//!
//! MB/s is journal bytes / time.
//!
//! **import-dbn.** Data: a plain (uncompressed) DBN version 3 file of `--records` OHLCV-1m records
//! (default 10 M, 560 MB) over `--instruments` instruments (default 100), one minute after another,
//! every instrument each minute, all mapped for the whole span, written with the `dbn` crate's
//! encoder on first use in `--dir` (default `target/bench-data/dbn`). Timed, after one warm-up:
//! * **decode+check**: `import_dbn::decode_file` (decode, map ids to symbols, check every record,
//!   build the series) in process;
//! * **process**: `ringtape import dbn FILE --out DIR`, start to exit (bar files written).

#![allow(clippy::disallowed_methods)] // wall-clock timing is the measurement

use crate::backtest::ringtape_binary;
use crate::common::{build_profile, command_line, loadavg, machine_info, median};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Options of `ringtape-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Symbols of the synthetic data
    #[arg(long, default_value_t = 10)]
    pub symbols: u32,
    /// Trading days of the synthetic data
    #[arg(long, default_value_t = 400)]
    pub days: u32,
    /// Where the data and the run live [default: target/bench-data/report{SYMBOLS}x{DAYS}]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measured rounds
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Small sizes (seconds): 2 symbols x 20 days, 2 rounds
    #[arg(long)]
    pub quick: bool,
    /// The `ringtape` binary [default: `ringtape` next to this executable]
    #[arg(long)]
    pub ringtape: Option<PathBuf>,
}

/// Options of `ringtape-bench import-dbn`.
#[derive(Debug, clap::Args)]
pub struct DbnArgs {
    /// OHLCV-1m records in the file
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Instruments (one bar each per minute)
    #[arg(long, default_value_t = 100)]
    pub instruments: u32,
    /// Where the file lives [default: target/bench-data/dbn]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measured rounds
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Small sizes (seconds): 200,000 records, 2 rounds
    #[arg(long)]
    pub quick: bool,
    /// The `ringtape` binary [default: `ringtape` next to this executable]
    #[arg(long)]
    pub ringtape: Option<PathBuf>,
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// CPU seconds (user + system) of this process and its waited-for children, from
/// `/proc/self/stat` (clock ticks of 10 ms; 0 where it cannot be read).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime, cutime, cstime follow.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

/// Wall and CPU seconds of one round.
#[derive(Debug, Clone, Copy)]
struct Round {
    wall: f64,
    cpu: f64,
}

/// Runs `f` once as a warm-up and `rounds` times; returns each measured round's times.
fn time_rounds(rounds: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<Round>> {
    f()?;
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (t, c) = (Instant::now(), cpu_s());
        f()?;
        v.push(Round { wall: t.elapsed().as_secs_f64(), cpu: cpu_s() - c });
    }
    Ok(v)
}

fn header(title: &str) {
    let m = machine_info();
    println!("## {title}\n");
    println!("Command: `{}` ({} build)", command_line(), build_profile());
    println!(
        "Machine: {} CPU(s), {}, kernel {}; load average at start {}\n",
        m.nproc,
        m.cpu_model,
        m.kernel,
        loadavg()
    );
}

/// A table row: wall median, min-max, throughput on the median and on the best round, and the
/// CPU time median (on a loaded machine the CPU time is the steadier figure).
fn row(name: &str, rounds: &[Round], unit: f64, unit_name: &str) {
    let wall: Vec<f64> = rounds.iter().map(|r| r.wall).collect();
    let cpu: Vec<f64> = rounds.iter().map(|r| r.cpu).collect();
    let med = median(&wall);
    let (lo, hi) = wall.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let cpu_med = median(&cpu);
    println!(
        "| {name} | {:.1} | {:.1}-{:.1} | {:.1} {unit_name} | {:.1} {unit_name} | {:.0} | {} |",
        med * 1e3,
        lo * 1e3,
        hi * 1e3,
        unit / med,
        unit / lo,
        cpu_med * 1e3,
        if cpu_med > 0.0 { format!("{:.1} {unit_name}", unit / cpu_med) } else { "n/a".into() }
    );
}

const TABLE_HEAD: &str = "| step | median ms | min-max ms | throughput (median) | throughput (best) | CPU ms (median) | per CPU second |\n|---|--:|--:|--:|--:|--:|--:|";

/// Run `ringtape-bench report`.
pub fn run_report(args: &ReportArgs) -> Result<()> {
    let ringtape = ringtape_binary(args.ringtape.as_deref())?;
    let (symbols, days, rounds) = if args.quick { (2, 20, 2) } else { (args.symbols, args.days, args.rounds) };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(format!("target/bench-data/report{symbols}x{days}")));
    let (data, run, cfg) = (dir.join("data"), dir.join("run"), dir.join("journal-all.toml"));
    if !run.join("summary.json").is_file() {
        std::fs::create_dir_all(&dir)?;
        eprintln!(
            "report: generating {} ({symbols} symbols x {days} days, backtest with every input journaled) ...",
            dir.display()
        );
        let mut c = Command::new(&ringtape);
        c.args(["synth", "--symbols", &symbols.to_string(), "--days", &days.to_string(), "--interval", "1m"])
            .args(["--seed", "1", "--out"])
            .arg(&data);
        run_ok(&mut c, "ringtape synth")?;
        std::fs::write(&cfg, "[journal]\ninputs = \"all\"\n")?;
        let _ = std::fs::remove_dir_all(&run);
        let mut c = Command::new(&ringtape);
        c.args(["backtest", "--strategy", "sma_cross", "--quiet", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&run);
        run_ok(&mut c, "ringtape backtest")?;
    }
    let jbytes = std::fs::metadata(run.join("journal.rtj")).context("the run's journal")?.len() as f64;
    let names = ringtape_tools::journal::Names::from_meta(&run.join("journal.meta.json"))?;
    let mut records = 0;
    let pass = time_rounds(rounds, || {
        let s = ringtape_tools::report::journal::JournalStats::read(&run.join("journal.rtj"), &names, -18_000)?;
        records = s.records;
        Ok(())
    })?;
    let mut trades = 0;
    let read = time_rounds(rounds, || {
        let s = ringtape_tools::report::read_source(&run)?;
        if let ringtape_tools::report::Source::Run(r) = &s {
            trades = r.metrics.trades.len();
        }
        Ok(())
    })?;
    let source = ringtape_tools::report::read_source(&run)?;
    let mut html_bytes = 0;
    let html = time_rounds(rounds, || {
        html_bytes = ringtape_tools::report::html(std::slice::from_ref(&source))?.len();
        Ok(())
    })?;
    let out = dir.join("report.html");
    let process = time_rounds(rounds, || {
        let mut c = Command::new(&ringtape);
        c.arg("report").arg(&run).arg("--out").arg(&out);
        run_ok(&mut c, "ringtape report")
    })?;
    header("ringtape report: journal throughput");
    println!(
        "Run: {} ({symbols} symbols x {days} days, sma_cross, journal inputs = all): journal {:.1} MB, {records} records; {trades} trades; HTML {:.1} MB. {rounds} rounds after a warm-up.\n",
        run.display(),
        jbytes / 1e6,
        html_bytes as f64 / 1e6
    );
    println!("{TABLE_HEAD}");
    let mb = jbytes / 1e6;
    row("journal pass (JournalStats::read)", &pass, mb, "MB/s");
    row("read run (journal + fills.csv + metrics)", &read, mb, "MB/s");
    row("html (charts drawn)", &html, mb, "MB/s");
    row("process: `ringtape report RUN --out FILE`", &process, mb, "MB/s");
    println!("\nload average at end {}", loadavg());
    Ok(())
}

/// Write the DBN file: `records` OHLCV-1m records of `instruments` instruments, minute after
/// minute from 2024-01-02, mapped for the whole span.
fn write_dbn(path: &Path, records: u64, instruments: u32) -> Result<()> {
    use dbn::encode::EncodeRecord;
    use dbn::{MappingInterval, Metadata, OhlcvMsg, RecordHeader, SType, Schema, SymbolMapping, rtype};
    let start_ns: u64 = 1_704_153_600_000_000_000; // 2024-01-02T00:00:00Z
    let minutes = records.div_ceil(u64::from(instruments));
    let end_date = time::Date::from_calendar_date(2024, time::Month::January, 2)?
        + time::Duration::days(i64::try_from(minutes / 1440 + 2)?);
    let mappings: Vec<SymbolMapping> = (0..instruments)
        .map(|i| SymbolMapping {
            raw_symbol: format!("S{i:04}"),
            intervals: vec![MappingInterval {
                start_date: time::Date::from_calendar_date(2024, time::Month::January, 1).expect("a date"),
                end_date,
                symbol: (i + 1).to_string(),
            }],
        })
        .collect();
    let meta = Metadata::builder()
        .version(3)
        .dataset("XNAS.ITCH")
        .schema(Some(Schema::Ohlcv1M))
        .start(start_ns)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .symbols(mappings.iter().map(|m| m.raw_symbol.clone()).collect())
        .mappings(mappings)
        .build();
    let tmp = path.with_extension("tmp");
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let mut enc = dbn::encode::dbn::Encoder::new(file, &meta)?;
    let mut n = 0u64;
    'outer: for m in 0..minutes {
        for i in 0..instruments {
            if n == records {
                break 'outer;
            }
            let base = 100_000_000_000
                + i64::from(i) * 1_000_000_000
                + ((m * 7919 + u64::from(i) * 104_729) % 2000) as i64 * 10_000_000;
            let rec = OhlcvMsg {
                hd: RecordHeader::new::<OhlcvMsg>(rtype::OHLCV_1M, 1, i + 1, start_ns + m * 60_000_000_000),
                open: base,
                high: base + 50_000_000,
                low: base - 40_000_000,
                close: base + 10_000_000,
                volume: 100 + m % 1000,
            };
            enc.encode_record(&rec)?;
            n += 1;
        }
    }
    enc.flush()?;
    drop(enc);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Run `ringtape-bench import-dbn`.
pub fn run_dbn(args: &DbnArgs) -> Result<()> {
    let ringtape = ringtape_binary(args.ringtape.as_deref())?;
    let (records, rounds) = if args.quick { (200_000, 2) } else { (args.records, args.rounds) };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench-data/dbn"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("ohlcv1m-{records}x{}.dbn", args.instruments));
    if !file.is_file() {
        eprintln!("import-dbn: writing {} ...", file.display());
        write_dbn(&file, records, args.instruments)?;
    }
    let bytes = std::fs::metadata(&file)?.len() as f64;
    let name = file.display().to_string();
    let mut imported = 0;
    let decode = time_rounds(rounds, || {
        let d = ringtape_tools::import_dbn::decode_file(&file, &name)?;
        imported = d.report.imported;
        Ok(())
    })?;
    if imported != records {
        bail!("decode_file imported {imported} of {records} records: the bench file or the importer is wrong");
    }
    let out = dir.join("out");
    let process = time_rounds(rounds, || {
        let _ = std::fs::remove_dir_all(&out);
        let mut c = Command::new(&ringtape);
        c.args(["import", "dbn"]).arg(&file).arg("--out").arg(&out);
        run_ok(&mut c, "ringtape import dbn")
    })?;
    header("ringtape import dbn: records per second");
    println!(
        "File: {} (plain DBN v3, OHLCV-1m, {records} records of {} instruments, {:.1} MB). {rounds} rounds after a warm-up.\n",
        file.display(),
        args.instruments,
        bytes / 1e6
    );
    println!("{TABLE_HEAD}");
    let m = records as f64 / 1e6;
    row("decode+check (import_dbn::decode_file)", &decode, m, "M records/s");
    row("process: `ringtape import dbn FILE --out DIR` (bar files written and fsynced)", &process, m, "M records/s");
    println!("\nload average at end {}", loadavg());
    Ok(())
}
