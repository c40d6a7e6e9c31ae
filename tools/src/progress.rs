//! Progress bars: drawn on stderr only when it is a terminal, hidden in pipes and tests.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar of `len` units with `unit` shown after the counts, or a hidden bar when stderr is
/// not a terminal or `show` is false (small jobs finish before a bar is worth drawing).
pub fn bar(len: u64, unit: &str, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{eta}})");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style.progress_chars("=> "))
}

/// A byte-counting progress bar (for reading files).
pub fn bytes(len: u64, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style.progress_chars("=> "))
}
