//! Progress of long jobs: an indicatif bar on stderr when it is a terminal (hidden in pipes and
//! tests), and progress events in the structured log (`ringtape --log FILE`).
//!
//! Every [`Progress`] also emits `tracing` info events with `event = "progress"`, `task` (the
//! command: `mc`, `sweep`, `import csv`...), `done`, `total`, `elapsed_s` and `eta_s` (seconds
//! left at the rate so far): at most one per tenth of the total or per [`EVERY`] of wall time
//! (whichever comes first), and one at completion with `done == total`. Events are ordered:
//! `done` never goes down from one event to the next, whatever thread advanced the bar. With no
//! log set up (or its level above info) the check is made once, when the bar is made, and an
//! advance costs one relaxed atomic add besides the bar's own.
#![allow(clippy::disallowed_methods)] // progress is wall-clock by nature

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest wall time between two progress events while work advances.
pub const EVERY: Duration = Duration::from_secs(5);

/// What the log side of a bar remembers.
#[derive(Debug)]
struct Emitted {
    /// `done` of the last event.
    done: u64,
    /// The completion event was written.
    finished: bool,
}

/// The log side of a bar (present only when progress events are enabled).
#[derive(Debug)]
struct Log {
    task: String,
    start: Instant,
    /// The `done` at which the next event is due (one tenth further on).
    next: AtomicU64,
    /// Nanoseconds from `start` to the last event (read without the lock).
    last_ns: AtomicU64,
    last: Mutex<Emitted>,
}

/// A progress bar that also reports to the structured log (see the [module docs](self)).
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    total: u64,
    done: AtomicU64,
    log: Option<Log>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// A progress bar for `task` of `len` units with `unit` shown after the counts; drawn only when
/// stderr is a terminal and `show` is true (small jobs finish before a bar is worth drawing),
/// logged whenever the log is on.
pub fn bar(task: &str, len: u64, unit: &str, show: bool) -> Progress {
    let template = format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{eta}})");
    Progress::new(task, len, show.then(|| style(&template)))
}

/// A byte-counting progress bar (for reading files).
pub fn bytes(task: &str, len: u64, show: bool) -> Progress {
    Progress::new(task, len, show.then(|| style("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")))
}

impl Progress {
    fn new(task: &str, total: u64, style: Option<ProgressStyle>) -> Progress {
        let bar = match style {
            Some(s) if std::io::stderr().is_terminal() => ProgressBar::new(total).with_style(s),
            _ => ProgressBar::hidden(),
        };
        bar.set_message(task.to_string());
        let log = tracing::enabled!(tracing::Level::INFO).then(|| Log {
            task: task.to_string(),
            start: Instant::now(),
            next: AtomicU64::new(step(total)),
            last_ns: AtomicU64::new(0),
            last: Mutex::new(Emitted { done: 0, finished: false }),
        });
        Progress { bar, total, done: AtomicU64::new(0), log }
    }

    /// A bar that draws nothing and logs nothing (for library calls that report to no one).
    pub fn hidden() -> Progress {
        Progress { bar: ProgressBar::hidden(), total: 0, done: AtomicU64::new(0), log: None }
    }

    /// Advance by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.advanced(done);
    }

    /// Set the position to `n`.
    pub fn set_position(&self, n: u64) {
        self.bar.set_position(n);
        self.done.store(n, Ordering::Relaxed);
        self.advanced(n);
    }

    /// The drawn bar's message (the task name by default).
    pub fn set_message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Run `f` with the drawn bar hidden (for report lines printed while it runs).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Units done so far.
    pub fn position(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The work is done: clear the drawn bar and log the completion event (`done == total`).
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(log) = &self.log {
            let mut last = log.last.lock().unwrap_or_else(|e| e.into_inner());
            if !last.finished {
                last.finished = true;
                let done = self.position().max(self.total);
                self.emit(log, &mut last, done);
            }
        }
    }

    /// Log an event if one is due at `done`.
    fn advanced(&self, done: u64) {
        let Some(log) = &self.log else { return };
        let due_by_count = done >= log.next.load(Ordering::Relaxed);
        let since = nanos(log.start.elapsed()).saturating_sub(log.last_ns.load(Ordering::Relaxed));
        if !due_by_count && since < nanos(EVERY) {
            return;
        }
        let mut last = log.last.lock().unwrap_or_else(|e| e.into_inner());
        // Re-read under the lock: another thread may have gone further and logged it.
        let done = self.position();
        if last.finished || done <= last.done || done >= self.total && self.total > 0 {
            // The completion event is finish_and_clear's.
            return;
        }
        let since = nanos(log.start.elapsed()).saturating_sub(log.last_ns.load(Ordering::Relaxed));
        if due_by_count || since >= nanos(EVERY) {
            log.next.store(done + step(self.total), Ordering::Relaxed);
            self.emit(log, &mut last, done);
        }
    }

    fn emit(&self, log: &Log, last: &mut Emitted, done: u64) {
        let elapsed = log.start.elapsed().as_secs_f64();
        let eta = if done == 0 { 0.0 } else { elapsed * (self.total.saturating_sub(done)) as f64 / done as f64 };
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        tracing::info!(
            event = "progress",
            task = %log.task,
            done,
            total = self.total,
            elapsed_s = round(elapsed),
            eta_s = round(eta),
            "progress"
        );
        last.done = done;
        log.last_ns.store(nanos(log.start.elapsed()), Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One tenth of `total` (at least 1).
fn step(total: u64) -> u64 {
    (total / 10).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_steps() {
        let p = bar("t", 100, "x", false);
        p.inc(3);
        p.inc(4);
        assert_eq!(p.position(), 7);
        p.set_position(50);
        assert_eq!(p.position(), 50);
        p.finish_and_clear();
        assert_eq!(step(5), 1);
        assert_eq!(step(1000), 100);
    }
}
