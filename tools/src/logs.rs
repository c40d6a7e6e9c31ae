//! Structured logs of every command: `ringtape --log FILE <command>` (or `RINGTAPE_LOG_FILE`)
//! appends one JSON object per line to FILE through `tracing`: the command's start (its argv:
//! credentials never travel on the command line), what each command reports as it goes (a
//! backtest's results, a paper run's feed and broker lines, an import's counts), and its end with
//! the exit code and the wall time. `RINGTAPE_LOG` sets the level (`error`, `warn`, `info`, the
//! default, `debug`, `trace`). Without `--log` nothing is set up and `tracing` calls cost a
//! relaxed load.

use anyhow::{Context, Result};
use std::path::Path;

/// Start writing JSON lines to `path` (appended; created if missing).
pub fn init(path: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open the log file (check --log)", path.display()))?;
    let level = match std::env::var("RINGTAPE_LOG").ok().as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("error") => tracing::Level::ERROR,
        Some("warn") => tracing::Level::WARN,
        Some("debug") => tracing::Level::DEBUG,
        Some("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_current_span(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .map_err(|e| anyhow::anyhow!("{}: cannot start the log: {e}", path.display()))
}
