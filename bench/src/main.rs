//! `ringtape-bench`: micro and macro benchmarks for ringtape.
//!
//! One subcommand per benchmark, one module per subcommand. Each module exposes an `Args` struct
//! (a `clap::Args`) and a `run(&Args) -> anyhow::Result<()>` function; to add a benchmark, add a
//! module, a variant to [`Command`] and an arm to the `match` in [`main`].
//!
//! Benchmarks print a Markdown report to stdout (ready to paste into `BENCHMARKS.md`) and, where
//! supported, write JSON with `--json FILE`.

mod backtest;
mod broker_load;
mod capacity;
mod common;
mod empty_poll;
mod latency;
mod many;
mod order_path;
mod research;
mod ring_hop;
mod tick_to_trade;

use clap::{Parser, Subcommand};

/// ringtape benchmarks.
#[derive(Debug, Parser)]
#[command(name = "ringtape-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Available benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// One hop producer thread -> consumer thread: disruptor vs crossbeam channel vs ArrayQueue
    /// (paced latency with HdrHistogram, and flat-out throughput).
    RingHop(ring_hop::Args),
    /// Backtest throughput: the `ringtape backtest` process end to end, the pipeline in process
    /// (engine-only), open+validate, and single-threaded scan/merge baselines.
    Backtest(backtest::Args),
    /// Many small backtests back to back in one process on the inline topology (total time,
    /// bars/s), and the fixed cost of one run (1-bar backtests).
    Many(many::Args),
    /// Per-event latency from sequencer intake to the venue (paced bars, a market order on every
    /// bar, a timing venue), threads and inline topologies, with HdrHistogram.
    Latency(latency::Args),
    /// Tick-to-trade: a websocket server sends Alpaca bar frames to the real feed thread, whose
    /// ingress feeds the real pipeline; frame read -> order at the venue seam, in HdrHistogram.
    TickToTrade(tick_to_trade::Args),
    /// Capacity: the local exchange streams minute bars of 10,000 symbols to the real Alpaca feed
    /// (one connection) and pipeline at rising message rates; sustained or not, memory per symbol.
    Capacity(capacity::Args),
    /// The broker order path: strategy intent -> the gateway's request, and a trade_updates frame
    /// -> the strategy's on_order, against the local exchange's paper broker, in HdrHistogram.
    OrderPath(order_path::Args),
    /// Paper broker load: K clients send resting limits, cancels and market orders over keep-alive
    /// HTTP for T seconds while one trade_updates session listens; orders/s and event checks.
    BrokerLoad(broker_load::Args),
    /// `ringtape report` over a large journal: MB of journal per second.
    Report(research::ReportArgs),
    /// `ringtape import dbn` over a large plain DBN file: records per second.
    ImportDbn(research::DbnArgs),
    /// The cost of finding the ingress empty: ArrayQueue pop vs an is_empty check first.
    EmptyPoll(empty_poll::Args),
    /// (internal) The local exchange for `capacity`, in a child process.
    #[command(hide = true)]
    CapacityExchange(capacity::ExchangeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::RingHop(args) => ring_hop::run(args),
        Command::EmptyPoll(args) => empty_poll::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Many(args) => many::run(args),
        Command::Latency(args) => latency::run(args),
        Command::TickToTrade(args) => tick_to_trade::run(args),
        Command::Capacity(args) => capacity::run(args),
        Command::Report(args) => research::run_report(args),
        Command::ImportDbn(args) => research::run_dbn(args),
        Command::CapacityExchange(args) => capacity::serve_exchange(args),
        Command::OrderPath(args) => order_path::run(args),
        Command::BrokerLoad(args) => broker_load::run(args),
    }
}
