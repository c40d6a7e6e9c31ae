//! The `ringtape` binary: parses the command line and dispatches to one module per command.
//! Adding a command = one variant here + one match arm calling its module's `run`.

use clap::{Parser, Subcommand};
use ringtape_tools::{backtest, exit, export, import_csv, import_dbn, synth};
use std::process::ExitCode;

/// ringtape: a low-latency day-trading engine (same pipeline for backtest, paper and live).
#[derive(Debug, Parser)]
#[command(name = "ringtape", version, propagate_version = true)]
struct Cli {
    /// Append structured logs (JSON lines: the command's start, progress and end) to FILE; also
    /// RINGTAPE_LOG_FILE. RINGTAPE_LOG sets the level (error, warn, info, debug, trace)
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert market data files into bar files
    #[command(subcommand)]
    Import(Import),
    /// Backtest a strategy over bar files through the threaded pipeline
    Backtest(backtest::Args),
    /// Generate deterministic synthetic bar files
    Synth(synth::Args),
    /// Convert bar files into other formats
    #[command(subcommand)]
    Export(Export),
    /// Print a run's journal, one line (or JSON object) per record
    Journal(ringtape_tools::journal::Args),
    /// Re-run a run's recorded inputs and check every decision and execution is reproduced
    Replay(ringtape_tools::replay::Args),
    /// The local exchange: Alpaca and Polygon market data (stream and REST) with fault injection
    Exchange(ringtape_tools::exchange::cli::Args),
    /// Monte Carlo robustness: many seeded backtests with a perturbed simulated venue
    Mc(ringtape_tools::mc::Args),
    /// Grid search over strategy parameters with walk-forward (out-of-sample) folds
    Sweep(ringtape_tools::sweep::Args),
    /// The results dashboard: one HTML file over run directories
    Report(ringtape_tools::report::Args),
    /// Provider history (Alpaca bars, Polygon aggregates) into bar files, resumable
    Fetch(ringtape_tools::fetch::Args),
    /// Trade live market data through the whole pipeline against the simulated venue
    Paper(ringtape_tools::paper::Args),
    /// Charts of a run or bar files to a PNG (no display needed)
    Render(ringtape_tools::render::Args),
    /// The viewer window over a run or bar files
    View(ringtape_tools::view::Args),
}

#[derive(Debug, Subcommand)]
enum Import {
    /// CSV -> bar files (columns found by header name; bad rows counted and reported)
    Csv(import_csv::Args),
    /// Databento DBN (OHLCV 1s/1m/1h/1d, plain or zstd, DBN v1-v3) -> bar files
    Dbn(import_dbn::Args),
}

#[derive(Debug, Subcommand)]
enum Export {
    /// Bar files -> one CSV (symbol,interval,ts,open,high,low,close,volume)
    Csv(export::Args),
}

fn main() -> ExitCode {
    exit::quiet_pipe_panics();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::clap_failure(e),
    };
    let name = command_name(&cli.command);
    let log = cli.log.clone().or_else(|| std::env::var_os("RINGTAPE_LOG_FILE").map(std::path::PathBuf::from));
    if let Some(path) = &log
        && let Err(e) = ringtape_tools::logs::init(path)
    {
        return exit::fail(&ringtape_tools::exit::bad_input(e.to_string()));
    }
    #[allow(clippy::disallowed_methods)] // the command's wall time, for its log line
    let t0 = std::time::Instant::now();
    let argv: Vec<String> = std::env::args().collect();
    tracing::info!(command = name, argv = ?argv, "started");
    let result = match cli.command {
        Command::Import(Import::Csv(args)) => import_csv::run(args),
        Command::Import(Import::Dbn(args)) => import_dbn::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Export(Export::Csv(args)) => export::run(args),
        Command::Journal(args) => ringtape_tools::journal::run(args),
        Command::Replay(args) => ringtape_tools::replay::run(args),
        Command::Exchange(args) => ringtape_tools::exchange::cli::run(args),
        Command::Paper(args) => ringtape_tools::paper::run(args),
        Command::Mc(args) => ringtape_tools::mc::run(args),
        Command::Sweep(args) => ringtape_tools::sweep::run(args),
        Command::Report(args) => ringtape_tools::report::run(args),
        Command::Fetch(args) => ringtape_tools::fetch::run(args),
        Command::Render(args) => ringtape_tools::render::run(args),
        Command::View(args) => ringtape_tools::view::run(args),
    };
    let secs = t0.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            tracing::info!(command = name, code = 0, secs, "finished");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(command = name, code = exit::code_for(&e), secs, error = %exit::one_line(&e), "failed");
            exit::fail(&e)
        }
    }
}

/// The command's name in logs (`import csv`, `backtest`, ...).
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Import(Import::Csv(_)) => "import csv",
        Command::Import(Import::Dbn(_)) => "import dbn",
        Command::Backtest(_) => "backtest",
        Command::Synth(_) => "synth",
        Command::Export(Export::Csv(_)) => "export csv",
        Command::Journal(_) => "journal",
        Command::Replay(_) => "replay",
        Command::Exchange(_) => "exchange",
        Command::Paper(_) => "paper",
        Command::Mc(_) => "mc",
        Command::Sweep(_) => "sweep",
        Command::Report(_) => "report",
        Command::Fetch(_) => "fetch",
        Command::Render(_) => "render",
        Command::View(_) => "view",
    }
}
