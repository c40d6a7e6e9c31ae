//! The typed run summary: what `summary.json` holds and what the printed table is made from.
//!
//! `results` are deterministic (the same inputs give the same numbers on any machine and shard
//! count); `perf` holds timings and thread placement. Every money figure is in USD and says so in
//! its name (`*_usd`), percentages end in `_pct`. The CLI writes the file, reads it back through
//! [`Summary::read`] and prints the table from what it read, so the file is the single source.

use anyhow::{Context, Result};
use engine::pipeline::RunOutput;
use engine::records::PX_SCALE;
use engine::symbols::SymbolTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Fewer trading days than this give no Sharpe ratio (`null`): a ratio over a handful of days is
/// noise that reads like a fact.
pub const SHARPE_MIN_DAYS: usize = 20;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The command that made the run: `backtest` or `paper`.
    #[serde(default = "backtest_command")]
    pub command: String,
    /// False when the run did not reach the end of its data (interrupted) or its results are not
    /// trustworthy; `incomplete_reason` says why.
    pub complete: bool,
    /// Why the run is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    /// Deterministic results.
    pub results: Results,
    /// Timings and placement (vary run to run).
    pub perf: Perf,
}

fn backtest_command() -> String {
    "backtest".into()
}

/// Deterministic results of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Strategy name.
    pub strategy: String,
    /// Effective strategy parameters, defaults included.
    pub strategy_params: serde_json::Value,
    /// Symbols in the data set.
    pub symbols: usize,
    /// Bar intervals in the data set (`1m`, ...).
    pub intervals: Vec<String>,
    /// Bars delivered.
    pub bars: u64,
    /// Input events (excluding control).
    pub inputs: u64,
    /// Trading days seen.
    pub days: usize,
    /// Starting capital (`[account] starting_capital_usd`).
    pub starting_capital_usd: f64,
    /// Starting capital plus the equity change.
    pub ending_equity_usd: f64,
    /// Net PnL of all fills after commission (positions open at the end were closed at the last
    /// close: see `end_of_run_closeouts`).
    pub net_pnl_usd: f64,
    /// Equity change (cash + marks).
    pub equity_change_usd: f64,
    /// `equity_change_usd / starting_capital_usd`, in percent.
    pub return_pct: f64,
    /// Commissions paid.
    pub commission_usd: f64,
    /// Largest peak-to-trough fall of equity.
    pub max_drawdown_usd: f64,
    /// `max_drawdown_usd / starting_capital_usd`, in percent.
    pub max_drawdown_pct: f64,
    /// Annualized Sharpe of daily PnL; `null` with fewer than `sharpe_min_days` days.
    pub sharpe_daily_annualized: Option<f64>,
    /// Days needed for a Sharpe ratio.
    pub sharpe_min_days: usize,
    /// Fills.
    pub fills: u64,
    /// Fills that closed a position left open after the last bar (reason `end_of_run`); `null`
    /// when the run wrote no fills file to count them from.
    pub end_of_run_closeouts: Option<u64>,
    /// Orders accepted by risk.
    pub orders_accepted: u64,
    /// Closed round trips.
    pub trades: u64,
    /// Round trips with positive net PnL.
    pub wins: u64,
    /// `wins / trades` in percent (0 without trades).
    pub win_rate_pct: f64,
    /// Risk rejections by reason.
    pub rejects: BTreeMap<String, u64>,
    /// Daily loss halts.
    pub daily_loss_halts: u64,
    /// Strategy panics (each faults its symbol).
    pub strategy_faults: u64,
    /// Per symbol, in symbol order.
    pub per_symbol: Vec<SymbolResult>,
}

/// One symbol's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolResult {
    /// Symbol.
    pub symbol: String,
    /// Fills.
    pub fills: u64,
    /// Closed round trips.
    pub trades: u64,
    /// Winning round trips.
    pub wins: u64,
    /// Net PnL after commission.
    pub net_pnl_usd: f64,
    /// Commissions paid.
    pub commission_usd: f64,
    /// Position at the end, shares (0 after the end-of-run close-out).
    pub final_position_shares: i64,
}

/// Timings and placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perf {
    /// Process work from start to summary, seconds.
    pub wall_s: f64,
    /// Opening and validating the data set, seconds.
    pub open_validate_s: f64,
    /// The pipeline run, seconds.
    pub engine_s: f64,
    /// Bars per second of `engine_s`.
    pub bars_per_s_engine: f64,
    /// Bars per second of `wall_s`.
    pub bars_per_s_wall: f64,
    /// The topology that ran (`inline` or `threads`; `pipeline.topology = "auto"` picks).
    pub topology: String,
    /// The venue orders went to (`sim` for backtests).
    pub venue: String,
    /// Strategy shards (the `threads` topology; `inline` runs every symbol on one thread).
    pub shards: usize,
    /// Where each stage ran.
    pub placement: Vec<StagePlacement>,
    /// The engine's ring and queue counters.
    pub counters: serde_json::Value,
}

/// Where one stage ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlacement {
    /// Stage name.
    pub stage: String,
    /// Pinned core, if any.
    pub core: Option<usize>,
    /// Wait strategy.
    pub wait: String,
}

/// What the results are computed from besides the engine's output.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    /// Strategy name.
    pub strategy: &'a str,
    /// Effective strategy parameters.
    pub strategy_params: serde_json::Value,
    /// Bar intervals of the data set.
    pub intervals: Vec<String>,
    /// Starting capital, USD.
    pub starting_capital_usd: f64,
    /// Fills with reason `end_of_run`, if known.
    pub end_of_run_closeouts: Option<u64>,
}

fn usd(v: i128) -> f64 {
    v as f64 / PX_SCALE as f64
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole != 0.0 { part / whole * 100.0 } else { 0.0 }
}

impl Results {
    /// Results of a run.
    pub fn new(out: &RunOutput, symbols: &SymbolTable, facts: RunFacts<'_>) -> Results {
        let (fills, trades, wins, net, comm) = out.positions.totals();
        let rejects = engine::records::Reason::ALL
            .iter()
            .filter(|r| out.rejects[r.raw() as usize] > 0)
            .map(|r| (r.as_str().to_string(), out.rejects[r.raw() as usize]))
            .collect();
        let per_symbol = symbols
            .names()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let b = &out.positions.symbols[i];
                SymbolResult {
                    symbol: name.clone(),
                    fills: b.fills,
                    trades: b.trades,
                    wins: b.wins,
                    net_pnl_usd: usd(b.net_pnl_e9),
                    commission_usd: usd(b.commission_e9),
                    final_position_shares: b.position,
                }
            })
            .collect();
        let days = out.daily_equity.len();
        let sharpe = out.sharpe();
        let capital = facts.starting_capital_usd;
        let change = usd(out.equity_e9);
        Results {
            strategy: facts.strategy.to_string(),
            strategy_params: facts.strategy_params,
            symbols: symbols.len(),
            intervals: facts.intervals,
            bars: out.bars,
            inputs: out.inputs,
            days,
            starting_capital_usd: capital,
            ending_equity_usd: capital + change,
            net_pnl_usd: usd(net),
            equity_change_usd: change,
            return_pct: pct(change, capital),
            commission_usd: usd(comm),
            max_drawdown_usd: usd(out.max_drawdown_e9),
            max_drawdown_pct: pct(usd(out.max_drawdown_e9), capital),
            sharpe_daily_annualized: (days >= SHARPE_MIN_DAYS && sharpe.is_finite()).then_some(sharpe),
            sharpe_min_days: SHARPE_MIN_DAYS,
            fills,
            end_of_run_closeouts: facts.end_of_run_closeouts,
            orders_accepted: out.accepted,
            trades,
            wins,
            win_rate_pct: if trades > 0 { wins as f64 / trades as f64 * 100.0 } else { 0.0 },
            rejects,
            daily_loss_halts: out.halts,
            strategy_faults: out.counters.strategy_faults,
            per_symbol,
        }
    }
}

impl Summary {
    /// One structured log line (`--log`) for the run directory just written.
    pub fn log(&self, run_dir: &std::path::Path) {
        tracing::info!(
            command = %self.command,
            run_dir = %run_dir.display(),
            complete = self.complete,
            strategy = %self.results.strategy,
            bars = self.results.bars,
            fills = self.results.fills,
            net_pnl_usd = self.results.net_pnl_usd,
            venue = %self.perf.venue,
            engine_s = self.perf.engine_s,
            "run written"
        );
    }
}

impl Summary {
    /// Write as pretty JSON (results before perf).
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Read a `summary.json`.
    pub fn read(path: &Path) -> Result<Summary> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a ringtape summary", path.display()))
    }

    /// The table a trader reads (units on every figure).
    pub fn table(&self, run_dir: &Path) -> String {
        use std::fmt::Write;
        let r = &self.results;
        let p = &self.perf;
        let mut s = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(s, "  {label:<24}{value:>20}");
        };
        let shape = match p.topology.as_str() {
            "threads" => format!("threads, {} shard(s)", p.shards),
            other => other.to_string(),
        };
        let head = format!(
            "ringtape {}: {} on {} symbol(s), {} bars ({}), {shape}\n",
            self.command,
            r.strategy,
            r.symbols,
            r.bars,
            r.intervals.join(", "),
        );
        line("starting capital", format!("{:.2} USD", r.starting_capital_usd));
        line("ending equity", format!("{:.2} USD", r.ending_equity_usd));
        line("net PnL", format!("{:.4} USD", r.net_pnl_usd));
        line("return", format!("{:.3} %", r.return_pct));
        line("max drawdown", format!("{:.4} USD", r.max_drawdown_usd));
        line(
            "Sharpe (daily, ann.)",
            match r.sharpe_daily_annualized {
                Some(v) => format!("{v:.3}"),
                None => format!("n/a ({} days < {})", r.days, r.sharpe_min_days),
            },
        );
        line("trades", r.trades.to_string());
        line("win rate", format!("{:.1} %", r.win_rate_pct));
        line("fills", r.fills.to_string());
        line("end-of-run close-outs", r.end_of_run_closeouts.map_or_else(|| "unknown".into(), |n| n.to_string()));
        line("commission", format!("{:.4} USD", r.commission_usd));
        line("risk rejects", r.rejects.values().sum::<u64>().to_string());
        line("days", r.days.to_string());
        line(
            "bars/s",
            format!("{:.2} M (engine {:.3} s, total {:.3} s)", p.bars_per_s_wall / 1e6, p.engine_s, p.wall_s),
        );
        line("run dir", run_dir.display().to_string());
        let mut out = head + &s;
        if !self.complete {
            let _ =
                writeln!(out, "  INCOMPLETE: {}", self.incomplete_reason.as_deref().unwrap_or("run did not finish"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            command: "backtest".into(),
            complete: false,
            incomplete_reason: Some("interrupted".into()),
            results: Results {
                strategy: "sma_cross".into(),
                strategy_params: serde_json::json!({"fast": 10, "slow": 30, "qty": 100}),
                symbols: 1,
                intervals: vec!["1m".into()],
                bars: 1563,
                inputs: 1563,
                days: 4,
                starting_capital_usd: 100_000.0,
                ending_equity_usd: 99_711.0,
                net_pnl_usd: -289.0,
                equity_change_usd: -289.0,
                return_pct: -0.289,
                commission_usd: 32.0,
                max_drawdown_usd: 2325.0,
                max_drawdown_pct: 2.325,
                sharpe_daily_annualized: None,
                sharpe_min_days: SHARPE_MIN_DAYS,
                fills: 64,
                end_of_run_closeouts: Some(1),
                orders_accepted: 63,
                trades: 32,
                wins: 10,
                win_rate_pct: 31.25,
                rejects: BTreeMap::from([("max_position".to_string(), 3)]),
                daily_loss_halts: 0,
                strategy_faults: 0,
                per_symbol: vec![SymbolResult {
                    symbol: "SP500".into(),
                    fills: 64,
                    trades: 32,
                    wins: 10,
                    net_pnl_usd: -289.0,
                    commission_usd: 32.0,
                    final_position_shares: 0,
                }],
            },
            perf: Perf {
                wall_s: 0.5,
                open_validate_s: 0.01,
                engine_s: 0.2,
                bars_per_s_engine: 7815.0,
                bars_per_s_wall: 3126.0,
                topology: "inline".into(),
                venue: "sim".into(),
                shards: 1,
                placement: vec![StagePlacement { stage: "rt-seq".into(), core: None, wait: "backoff".into() }],
                counters: serde_json::json!({"ring_full": 0}),
            },
        }
    }

    #[test]
    fn the_file_reads_back_to_the_same_summary_with_results_before_perf() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("summary.json");
        let s = sample();
        s.write(&path).unwrap();
        assert_eq!(Summary::read(&path).unwrap(), s);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("\"results\"").unwrap() < text.find("\"perf\"").unwrap());
        // No Sharpe on 4 days: null, with the days and the minimum beside it.
        assert!(text.contains("\"sharpe_daily_annualized\": null"), "{text}");
        assert!(text.contains("\"sharpe_min_days\": 20"), "{text}");
        std::fs::write(&path, "{\"results\": 1}").unwrap();
        assert!(format!("{:#}", Summary::read(&path).unwrap_err()).contains("not a ringtape summary"));
    }

    #[test]
    fn the_table_shows_units_and_incompleteness() {
        let t = sample().table(Path::new("runs/x"));
        for needle in [
            "starting capital",
            "100000.00 USD",
            "-289.0000 USD",
            "-0.289 %",
            "2325.0000 USD",
            "n/a (4 days < 20)",
            "31.2 %",
            "end-of-run close-outs",
            "32.0000 USD",
            "INCOMPLETE: interrupted",
        ] {
            assert!(t.contains(needle), "{needle:?} not in\n{t}");
        }
    }
}
