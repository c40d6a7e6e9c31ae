//! # ringtape tools
//!
//! The data tools behind the `ringtape` binary: they sit before the pipeline and produce (or read
//! back) the bar files it consumes. `import csv` turns vendor CSV files into bar files, `synth`
//! generates deterministic synthetic bar files, `export csv` turns bar files back into CSV.
//!
//! Consumes: CSV files, bar directories, command-line arguments. Produces: bar files
//! (`DIR/<SYMBOL>.<interval>.rtb`, written atomically by [`engine::barfile::write_bar_file`]), CSV
//! files and reports on stderr. It never silently drops input rows (every rejected row is counted
//! by reason) and never parses prices through floating point.
//!
//! Each command is one module exposing its clap `Args` and `pub fn run(args) -> anyhow::Result<()>`;
//! `main.rs` only parses and dispatches. Errors that are the user's to fix are marked with
//! [`exit::BadInput`] (exit code 2); anything else exits 1.
//!
//! ```
//! use ringtape_tools::import_csv::{ImportOptions, import_reader};
//! let csv = "timestamp,open,high,low,close,volume\n\
//!            2024-03-01 09:00:00,10.00,10.50,9.90,10.25,1000\n\
//!            2024-03-01 10:00:00,10.25,10.40,10.10,10.30,800\n";
//! let imported = import_reader(csv.as_bytes(), "demo.csv", &ImportOptions::default()).unwrap();
//! let series = &imported.series[0];
//! assert_eq!((series.symbol.as_str(), series.interval_s, series.bars.len()), ("DEMO", 3600, 2));
//! assert_eq!(imported.report.rejected_total(), 0);
//! ```

#![forbid(unsafe_code)]

pub mod backtest;
pub mod exchange;
pub mod exit;
pub mod export;
pub mod fetch;
pub mod import_csv;
pub mod import_dbn;
pub mod interrupt;
pub mod journal;
pub mod logs;
pub mod mc;
pub mod paper;
pub mod parallel;
pub mod progress;
pub mod render;
pub mod replay;
pub mod report;
pub mod rundir;
pub mod summary;
pub mod sweep;
pub mod synth;
pub mod view;
pub mod viewer;
