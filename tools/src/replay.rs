//! `ringtape replay RUN_DIR`: run a run's recorded inputs again and check that every decision and
//! execution event is reproduced exactly.
//!
//! The inputs come from `RUN_DIR/journal.meta.json`: a backtest (`journal.inputs = "reference"`)
//! names its bar files by XXH3 checksum, so the replay opens the data directory again (the run's
//! own `data/` for the built-in sample), names every file whose checksum changed or that is
//! missing, and runs anyway so the first differing decision can be shown. A run with
//! `journal.inputs = "all"` holds every input in its journal: the INPUT and TIMER records become
//! the replay's events (the closing `EndOfData`/`Shutdown` are left to the sequencer, and no
//! clock ticks are generated: `pipeline.timer_ms = 0`, the journal's ticks are replayed).
//!
//! The replay runs through the same code as `ringtape backtest` (config check, data opening, the
//! one engine call) into a temporary directory, never into RUN_DIR, then compares `journal.rtj`
//! record by record and `fills.csv` line by line. Exit 0: everything reproduced; 1: a difference
//! (the first is shown, decoded as `ringtape journal` prints it, recorded then replayed), or the
//! data changed; 2: RUN_DIR is not a run directory or its metadata cannot be used.

use crate::backtest::{self, Checked};
use crate::exit::{bad_input, interrupted};
use crate::journal::{Names, text_line};
use anyhow::{Context, Result};
use engine::journal::{Body, ControlKind, Input, JournalReader, Record};
use engine::pipeline::Script;
use engine::pipeline::config::JournalInputs;
use engine::pipeline::messages::InputRec;
use engine::records::{Event, EventKind, Interval};
use engine::symbols::SymbolTable;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit code of a replay that found a difference.
pub const EXIT_DIFFERENT: i32 = 1;

/// Arguments of `ringtape replay`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 every journal record and fill reproduced exactly; 1 a \
difference (the first one is shown: record index, seq, recorded and replayed record) or the bar \
files changed since the run; 2 RUN_DIR is not a run directory or its metadata cannot be used.")]
pub struct Args {
    /// Run directory written by `ringtape backtest` (has journal.rtj and journal.meta.json)
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
}

/// One bar file as `journal.meta.json` lists it.
#[derive(Debug, Clone, serde::Deserialize)]
struct MetaFile {
    symbol: String,
    interval_s: u32,
    bars: u64,
    xxh3: String,
}

/// The parts of `journal.meta.json` a replay needs.
#[derive(Debug, Clone, serde::Deserialize)]
struct Meta {
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    files: Vec<MetaFile>,
    #[serde(default)]
    symbols: Vec<String>,
    #[serde(default)]
    config: Option<String>,
}

/// `SP500 1m`.
fn file_label(symbol: &str, interval_s: u32) -> String {
    format!("{symbol} {}", Interval { secs: interval_s })
}

/// The run's inputs as the replay sees them, checked; nothing run yet.
struct Plan {
    run: PathBuf,
    checked: Checked,
    meta: Meta,
    /// The broker a paper run traded with (its reports are journal inputs), if not the simulator.
    broker: Option<&'static str>,
}

fn read_plan(run: &Path) -> Result<Plan> {
    let hint = "RUN_DIR is the --out directory of `ringtape backtest`";
    if !run.is_dir() {
        return Err(bad_input(format!("{}: no such run directory ({hint})", run.display())));
    }
    let mpath = run.join("journal.meta.json");
    let text = match std::fs::read_to_string(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad_input(format!(
                "{}: not found: {} is not a run directory ({hint})",
                mpath.display(),
                run.display()
            )));
        }
        Err(e) => return Err(bad_input(format!("{}: {e} (check its permissions)", mpath.display()))),
    };
    let meta: Meta = serde_json::from_str(&text).map_err(|e| {
        bad_input(format!("{}: {e} (the file is damaged; it is written by `ringtape backtest`)", mpath.display()))
    })?;
    // The effective config: in the metadata, else the run's config.toml.
    let (config_text, what) = match &meta.config {
        Some(c) => (c.clone(), format!("{} (config)", mpath.display())),
        None => {
            let cpath = run.join("config.toml");
            let c = std::fs::read_to_string(&cpath).map_err(|e| {
                bad_input(format!(
                    "{}: {e} (journal.meta.json has no config either: not a replayable run)",
                    cpath.display()
                ))
            })?;
            (c, cpath.display().to_string())
        }
    };
    let rc = backtest::parse_config(&config_text, &what)?;
    let checked = backtest::check_config(rc, None, &what, backtest::machine_cores())?;
    let broker = check_summary(run, checked.rc.engine.journal.inputs)?;
    let jpath = run.join("journal.rtj");
    if !jpath.is_file() {
        return Err(bad_input(format!(
            "{}: not found: {} is not a run directory ({hint})",
            jpath.display(),
            run.display()
        )));
    }
    Ok(Plan { run: run.to_path_buf(), checked, meta, broker })
}

/// A hidden directory in the system's temporary directory, removed when dropped: where the
/// replay writes its journal and fills.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for n in 0u32.. {
            let p = base.join(format!(".ringtape-replay-{}-{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
        unreachable!("the loop returns")
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Refuse runs a replay cannot reproduce, as `summary.json` describes them: a backtest stopped
/// early (its bar files hold more than it ran on) and a backtest against another venue than the
/// simulated one (a broker's reports are not in a reference journal). A paper run against a
/// broker journals the broker's reports as inputs: its venue's name comes back, and the replay
/// feeds those reports instead of simulating fills.
fn check_summary(run: &Path, inputs: JournalInputs) -> Result<Option<&'static str>> {
    let spath = run.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&spath) else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad_input(format!("{}: {e} (the file is damaged; it is written by `ringtape backtest`)", spath.display()))
    })?;
    if inputs == JournalInputs::Reference && v["complete"] == false {
        return Err(bad_input(format!(
            "{}: \"complete\": false: the backtest was stopped early, so its bar files hold more than it ran on; replay a complete run (run the backtest again)",
            spath.display()
        )));
    }
    match v["perf"]["venue"].as_str() {
        None | Some("sim") => Ok(None),
        Some("alpaca") if inputs == JournalInputs::All => Ok(Some("alpaca")),
        Some(venue) => Err(bad_input(format!(
            "{}: venue {venue:?}: only runs against the simulated venue (\"sim\"), or paper runs against a broker, can be replayed",
            spath.display()
        ))),
    }
}

/// What the replay found, printed on stdout.
#[derive(Debug, Default)]
struct Report {
    lines: Vec<String>,
    different: bool,
}

impl Report {
    fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }
}

/// The data directory of a backtest: the run's own `data/` (the built-in sample is written
/// there), else `data_dir` from the metadata (relative paths are from where the backtest ran).
fn data_dir(plan: &Plan) -> Result<PathBuf> {
    let own = plan.run.join("data");
    if own.is_dir() {
        return Ok(own);
    }
    let mpath = plan.run.join("journal.meta.json");
    let Some(d) = plan.meta.data_dir.as_deref().filter(|d| !d.is_empty()) else {
        return Err(bad_input(format!("{}: no data_dir: this run cannot be replayed from bar files", mpath.display())));
    };
    let d = PathBuf::from(d);
    if !d.is_dir() {
        return Err(bad_input(format!(
            "{}: data_dir {} not found (a relative path is from where the backtest ran: run the replay from there, or restore the directory)",
            mpath.display(),
            d.display()
        )));
    }
    Ok(d)
}

/// Compare the data set's checksums with the run's; every change is a line of the report.
fn check_files(meta: &[MetaFile], now: &[(String, u32, u64, u64)], report: &mut Report) {
    let now_by: BTreeMap<(&str, u32), (u64, u64)> =
        now.iter().map(|(s, i, n, h)| ((s.as_str(), *i), (*n, *h))).collect();
    for f in meta {
        let label = file_label(&f.symbol, f.interval_s);
        match now_by.get(&(f.symbol.as_str(), f.interval_s)) {
            None => {
                report.line(format!("{label}: checksum {} in the run, missing now", f.xxh3));
                report.different = true;
            }
            Some(&(n, h)) => {
                let h = format!("{h:016x}");
                if h != f.xxh3 {
                    let counts =
                        if n == f.bars { String::new() } else { format!(" ({} bars in the run, {n} now)", f.bars) };
                    report.line(format!("{label}: checksum {} in the run, {h} now{counts}", f.xxh3));
                    report.different = true;
                }
            }
        }
    }
    for (s, i, _, h) in now {
        if !meta.iter().any(|f| f.symbol == *s && f.interval_s == *i) {
            report.line(format!("{}: not in the run, checksum {h:016x} now", file_label(s, *i)));
            report.different = true;
        }
    }
}

/// The interval a backtest chose: when every file of the run has one interval, only files at that
/// interval are opened (exactly the run's set whether or not it passed `--interval`); files at
/// several intervals mean no interval was chosen.
fn chosen_interval(meta: &[MetaFile]) -> Option<Interval> {
    let first = meta.first()?.interval_s;
    meta.iter().all(|f| f.interval_s == first).then_some(Interval { secs: first })
}

/// The replay's events from a journal with every input: INPUT and TIMER records, in order,
/// without the closing `EndOfData`/`Shutdown` (the sequencer adds its own).
fn journal_inputs(path: &Path) -> Result<Vec<Event>> {
    let mut reader = JournalReader::open(path).map_err(|e| bad_input(e.to_string()))?;
    let mut events = Vec::new();
    while let Some(r) = reader.next_record().map_err(|e| bad_input(e.to_string()))? {
        let rec = match &r.body {
            Body::Input(Input::Control(c))
                if matches!(c.kind, Some(ControlKind::EndOfData | ControlKind::Shutdown)) =>
            {
                continue;
            }
            Body::Input(Input::Unknown(_) | Input::BarRefs(_)) => {
                return Err(bad_input(format!(
                    "{}: record {} (seq {}): an input this build cannot replay (kind {}); replay it with the ringtape that wrote it",
                    path.display(),
                    reader.records() - 1,
                    r.seq,
                    r.sub
                )));
            }
            Body::Input(_) => {
                InputRec { ts_recv_ns: r.ts_ns, symbol: r.symbol, kind: r.sub, interval_s: r.aux, payload: r.payload }
            }
            Body::Timer { .. } => InputRec {
                ts_recv_ns: r.ts_ns,
                symbol: r.symbol,
                kind: EventKind::Timer.raw(),
                interval_s: 0,
                payload: r.payload,
            },
            _ => continue,
        };
        events.push(rec.to_event());
    }
    Ok(events)
}

/// One record as `ringtape journal` prints it.
fn show(r: &Record, names: &Names) -> String {
    let mut b = Vec::with_capacity(160);
    text_line(&mut b, r, names);
    String::from_utf8_lossy(&b).into_owned()
}

/// Compare two journals record by record; returns the number of records when identical.
fn compare_journals(recorded: &Path, replayed: &Path, meta: &Path, report: &mut Report) -> Result<Option<u64>> {
    let mut a = JournalReader::open(recorded).map_err(|e| bad_input(e.to_string()))?;
    let mut b = JournalReader::open(replayed).context("reading the replayed journal")?;
    let (mut na, mut nb) = (Names::from_meta(meta)?, Names::from_meta(meta)?);
    let mut index = 0u64;
    loop {
        let ra = a.next_record().map_err(|e| bad_input(e.to_string()))?;
        let rb = b.next_record().context("reading the replayed journal")?;
        if let Some(r) = &ra {
            na.learn(r);
        }
        if let Some(r) = &rb {
            nb.learn(r);
        }
        match (ra, rb) {
            (None, None) => return Ok(Some(index)),
            (Some(x), Some(y)) if x == y => index += 1,
            (x, y) => {
                let seq = x.as_ref().or(y.as_ref()).map_or(0, |r| r.seq);
                report.line(format!(
                    "journal.rtj: first difference at record {index} (seq {seq}), after {index} identical records:"
                ));
                let end = |n: u64| format!("(end of journal: {n} records)");
                report.line(format!("  recorded: {}", x.as_ref().map_or_else(|| end(a.records()), |r| show(r, &na))));
                report.line(format!("  replayed: {}", y.as_ref().map_or_else(|| end(b.records()), |r| show(r, &nb))));
                report.different = true;
                return Ok(None);
            }
        }
    }
}

/// Compare two fills files line by line; returns the number of fills when identical.
fn compare_fills(recorded: &Path, replayed: &Path, report: &mut Report) -> Result<Option<u64>> {
    let a = std::fs::read_to_string(recorded)
        .map_err(|e| bad_input(format!("{}: {e} (the run directory is incomplete)", recorded.display())))?;
    let b = std::fs::read_to_string(replayed).with_context(|| format!("reading {}", replayed.display()))?;
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for k in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(k), lb.get(k));
        if x != y {
            let end = |n: usize| format!("(end of file: {} fills)", n.saturating_sub(1));
            report.line(format!("fills.csv: first difference at line {}:", k + 1));
            report.line(format!("  recorded: {}", x.map_or_else(|| end(la.len()), |s| s.to_string())));
            report.line(format!("  replayed: {}", y.map_or_else(|| end(lb.len()), |s| s.to_string())));
            report.different = true;
            return Ok(None);
        }
    }
    Ok(Some(la.len().saturating_sub(1) as u64))
}

/// Replay and compare; the report says what was found.
fn replay(plan: &Plan) -> Result<Report> {
    let stop = crate::interrupt::flag();
    let mut report = Report::default();
    for w in &plan.checked.warnings {
        crate::exit::report(format_args!("warning: {w}"))?;
    }
    let tmp = TempDir::new()?;
    let factory = plan.checked.params.factory();
    let mut cfg = plan.checked.rc.engine.clone();
    let jpath = plan.run.join("journal.rtj");
    let out = match cfg.journal.inputs {
        JournalInputs::Reference => {
            let dir = data_dir(plan)?;
            let set = backtest::open_data(&dir, chosen_interval(&plan.meta.files))?;
            let mut changed = Report::default();
            check_files(&plan.meta.files, &set.fingerprint(), &mut changed);
            if changed.different {
                report.line(format!("replay: bar files in {} changed since the run:", dir.display()));
                report.lines.extend(changed.lines.into_iter().map(|l| format!("  {l}")));
                report.different = true;
            }
            let total = set.total_bars();
            let pb = crate::progress::bar("replay", total, "bars", total > 500_000);
            let out = backtest::run_engine(&cfg, &set, factory.as_ref(), tmp.path(), stop, &pb)?;
            pb.finish_and_clear();
            out
        }
        JournalInputs::All => {
            let events = journal_inputs(&jpath)?;
            let mut symbols = SymbolTable::new();
            for name in &plan.meta.symbols {
                symbols.intern(name).map_err(|e| {
                    bad_input(format!("{}: symbol {name:?}: {e}", plan.run.join("journal.meta.json").display()))
                })?;
            }
            // Ticks are inputs of the journal: replayed, not generated again.
            cfg.pipeline.timer_ms = 0;
            let total = events.len() as u64;
            let pb = crate::progress::bar("replay", total, "inputs", total > 500_000);
            let out = backtest::run_source(
                &cfg,
                &symbols,
                None,
                Script::new(events),
                factory.as_ref(),
                tmp.path(),
                stop,
                plan.broker
                    .map(|name| Box::new(engine::venue::JournaledVenue { name }) as Box<dyn engine::venue::Venue>),
                &mut |n| pb.set_position(n.min(total)),
            )?;
            pb.finish_and_clear();
            out
        }
    };
    if out.interrupted {
        return Err(interrupted("replay stopped by a signal; nothing compared"));
    }
    let meta = plan.run.join("journal.meta.json");
    let records = compare_journals(&jpath, &tmp.path().join("journal.rtj"), &meta, &mut report)?;
    let fills = compare_fills(&plan.run.join("fills.csv"), &tmp.path().join("fills.csv"), &mut report)?;
    match (records, fills) {
        (Some(n), Some(m)) if !report.different => {
            report.line(format!("replay: {n} journal records and {m} fills reproduced exactly"));
        }
        (Some(n), Some(m)) => report.line(format!(
            "replay: not reproduced from the run's inputs: {n} journal records and {m} fills are identical, but on changed bar files"
        )),
        _ => report.line(format!("replay: not reproduced: {} differs from the replay", plan.run.display())),
    }
    Ok(report)
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let plan = read_plan(&args.run)?;
    let report = replay(&plan)?; // the temporary directory is gone once this returns
    let mut text = report.lines.join("\n");
    text.push('\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing the report"),
        Ok(()) => {}
    }
    if report.different {
        std::process::exit(EXIT_DIFFERENT);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf(symbol: &str, interval_s: u32, xxh3: &str) -> MetaFile {
        MetaFile { symbol: symbol.into(), interval_s, bars: 10, xxh3: xxh3.into() }
    }

    #[test]
    fn changed_missing_and_new_files_are_each_named() {
        let meta = [mf("A", 60, "00000000000000aa"), mf("B", 60, "00000000000000bb"), mf("C", 60, "00000000000000cc")];
        let now = [("A".to_string(), 60, 10, 0xaa), ("B".into(), 60, 11, 0xbc), ("D".into(), 60, 10, 0xdd)];
        let mut r = Report::default();
        check_files(&meta, &now, &mut r);
        assert!(r.different);
        assert_eq!(
            r.lines,
            [
                "B 1m: checksum 00000000000000bb in the run, 00000000000000bc now (10 bars in the run, 11 now)",
                "C 1m: checksum 00000000000000cc in the run, missing now",
                "D 1m: not in the run, checksum 00000000000000dd now",
            ]
        );
        let mut same = Report::default();
        check_files(&meta[..1], &now[..1], &mut same);
        assert!(!same.different && same.lines.is_empty());
    }

    #[test]
    fn the_chosen_interval_is_the_one_all_files_share() {
        assert_eq!(chosen_interval(&[mf("A", 60, ""), mf("B", 60, "")]), Some(Interval { secs: 60 }));
        assert_eq!(chosen_interval(&[mf("A", 60, ""), mf("B", 300, "")]), None);
        assert_eq!(chosen_interval(&[]), None);
    }

    #[test]
    fn journal_inputs_round_trip_to_the_events_that_were_journaled() {
        use engine::pipeline::messages::{Flow, FlowBody};
        use engine::records::{Bar, SymbolId};
        let bar = Bar { ts_event_ns: 60, open_px_e9: 5, high_px_e9: 6, low_px_e9: 4, close_px_e9: 5, volume: 7 };
        let events = [
            Event::timer(100, false),
            Event::bar(SymbolId(1), &bar, 60, 120),
            Event::add_symbol(SymbolId(2), "NEW", 130),
            Event::timer(140, true),
            Event::control(ControlKind::EndOfData, 140, [0; 4]),
            Event::control(ControlKind::Shutdown, 140, [0; 4]),
        ];
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.rtj");
        let mut bytes = engine::journal::MAGIC.to_vec();
        bytes.extend_from_slice(&engine::journal::VERSION.to_le_bytes());
        bytes.extend_from_slice(&(engine::journal::RECORD_SIZE as u16).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        for (k, e) in events.iter().enumerate() {
            bytes.extend_from_slice(&Flow { seq: k as u64, body: FlowBody::Input(e.into()) }.encode());
        }
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(journal_inputs(&p).unwrap(), events[..4], "the closing controls are the sequencer's");
    }
}

/// A run with wall-clock ticks (paper and live runs; no CLI command runs one yet), replayed from
/// its journal through the engine directly.
#[cfg(test)]
mod wall_clock {
    use super::*;
    use engine::pipeline::config::{EngineConfig, WaitKind};
    use engine::pipeline::{Clock, RunSpec};
    use engine::records::{Bar, SymbolId};
    use std::sync::atomic::{AtomicI64, Ordering};

    /// Fails today: the sequencer stamps its closing `EndOfData`/`Shutdown` with the latest input
    /// time, which counts no wall tick in the run (`Sequencer::next` returns a wall tick without
    /// updating `last_ts`) but counts the replayed ticks (they come from a source, and
    /// `next_primary` updates `last_ts` for every source event). A tick after the last input thus
    /// moves the replayed end of data later: every record matches up to the `end_of_data` input,
    /// whose time differs. Ignored until the engine counts ticks the same way in both cases.
    #[test]
    fn a_wall_clock_run_replays_exactly_from_its_journal() {
        let mut cfg = EngineConfig::default();
        cfg.journal.inputs = JournalInputs::All;
        cfg.pipeline.pin = false;
        cfg.pipeline.wait = WaitKind::Backoff;
        let mut symbols = SymbolTable::new();
        symbols.intern("A").unwrap();
        let factory = strategies::factory("sma_cross").unwrap();
        let base = 1_700_000_000_000_000_000i64;
        // Bars received every 100 ms; the wall clock moves 400 ms per look, so ticks (every 1 s)
        // interleave with the bars and the last ones come after the last bar.
        let bars: Vec<Event> = (0..100i64)
            .map(|k| {
                let px = (100 + (k % 20)) * 1_000_000_000;
                let ts_event_ns = base + k * 60_000_000_000;
                let b = Bar { ts_event_ns, open_px_e9: px, high_px_e9: px, low_px_e9: px, close_px_e9: px, volume: 1 };
                Event::bar(SymbolId(0), &b, 60, base + k * 100_000_000)
            })
            .collect();
        let now = AtomicI64::new(base);
        let wall = || now.fetch_add(400_000_000, Ordering::Relaxed);
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("recorded"), d.path().join("replayed"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let spec = RunSpec::new(&cfg, &symbols, factory.as_ref()).out_dir(&a).clock(Clock::Wall(&wall));
        engine::pipeline::run(spec, Script::new(bars), &mut |_| {}).unwrap();
        let events = journal_inputs(&a.join("journal.rtj")).unwrap();
        assert!(events.iter().any(|e| e.kind == EventKind::Timer.raw() && e.payload[1] == 1), "wall ticks journaled");
        cfg.pipeline.timer_ms = 0;
        let spec = RunSpec::new(&cfg, &symbols, factory.as_ref()).out_dir(&b);
        engine::pipeline::run(spec, Script::new(events), &mut |_| {}).unwrap();
        let mut r = Report::default();
        let same = compare_journals(&a.join("journal.rtj"), &b.join("journal.rtj"), &d.path().join("none"), &mut r);
        assert!(same.unwrap().is_some(), "{}", r.lines.join("\n"));
    }
}
