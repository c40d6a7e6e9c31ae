//! `ringtape journal`: print a run's journal (`RUN_DIR/journal.rtj`), one line per record.
//!
//! Text lines are `SEQ TIME KIND SYMBOL FIELDS...`: `TIME` is RFC 3339 UTC, `SYMBOL` the name from
//! `journal.meta.json` (`symbols`, by id) or from a LIFECYCLE `added` record (`-` for records of
//! no symbol, `#ID` for an id without a name); prices are exact fixed-point decimals, order ids
//! print as in `fills.csv` (`SP500-12`, `risk-3`; `S<symbol id>-<n>` when the symbol has no
//! name). `--format jsonl`
//! prints one JSON object per record with the same fields (prices as exact decimal strings, times
//! as RFC 3339 strings plus `ts_ns`). Unknown kinds and values are printed raw and counted on
//! stderr, never fatal; a truncated or foreign file is an error naming the file and byte offset.

use crate::exit::bad_input;
use anyhow::Result;
use engine::journal::{
    Body, ControlKind, Input, JournalReader, Lifecycle, NO_SYMBOL, Record, control_name, fmt_order_id, policy_name,
};
use engine::records::{ExecKind, ExecReport, Interval, Order, OrderId, OrderType, Reason, Side};
use std::io::Write;
use std::path::{Path, PathBuf};

mod format;

pub use format::text_line;
use format::*;

/// Arguments of `ringtape journal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `ringtape backtest` (or its journal.rtj)
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Only records of this symbol (records of no symbol, like control inputs, are left out)
    #[arg(long, value_name = "SYM")]
    pub symbol: Option<String>,
    /// Only records of these kinds (repeat the flag or separate with commas; `fill` = reports that
    /// are fills, `reject` = rejected decisions and reports)
    #[arg(long = "kind", value_name = "K", value_enum, value_delimiter = ',')]
    pub kinds: Vec<KindFilter>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindFilter {
    /// Input events (bars, quotes, trades, venue reports, control commands).
    Input,
    /// Risk's decisions.
    Decision,
    /// Cancel requests.
    Cancel,
    /// Execution reports.
    Report,
    /// Execution reports that are (partial) fills.
    Fill,
    /// Rejected decisions and rejected reports.
    Reject,
    /// Symbol lifecycle changes.
    Lifecycle,
    /// Clock ticks.
    Timer,
    /// Records of an unknown kind.
    Unknown,
}

impl KindFilter {
    fn matches(self, r: &Record) -> bool {
        use engine::journal::RecordKind as K;
        match self {
            KindFilter::Input => r.kind == Some(K::Input),
            KindFilter::Decision => r.kind == Some(K::Decision),
            KindFilter::Cancel => r.kind == Some(K::Cancel),
            KindFilter::Report => r.kind == Some(K::Report),
            KindFilter::Fill => r.is_fill(),
            KindFilter::Reject => r.is_reject(),
            KindFilter::Lifecycle => r.kind == Some(K::Lifecycle),
            KindFilter::Timer => r.kind == Some(K::Timer),
            KindFilter::Unknown => r.kind.is_none(),
        }
    }
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable line per record.
    Text,
    /// One JSON object per line.
    Jsonl,
}

/// Symbol names by id: from `journal.meta.json`, then LIFECYCLE `added` records.
#[derive(Debug, Default)]
pub struct Names(Vec<Option<String>>);

impl Names {
    /// Read `symbols` from a run's `journal.meta.json` (no file: no names).
    pub fn from_meta(path: &Path) -> Result<Names> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Names::default()),
            Err(e) => return Err(bad_input(format!("{}: {e}", path.display()))),
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        let Some(list) = v.get("symbols").and_then(|s| s.as_array()) else {
            return Ok(Names::default());
        };
        let names = list
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_input(format!("{}: `symbols` must be a list of names", path.display())))?;
        Ok(Names(names.into_iter().map(Some).collect()))
    }

    /// Learn a name from a LIFECYCLE `added` record or an `add_symbol` control input.
    pub fn learn(&mut self, r: &Record) {
        let added = match &r.body {
            Body::Input(Input::Control(c)) => c.added_name(),
            _ => r.added_name(),
        };
        if let Some(name) = added {
            let i = r.symbol.0 as usize;
            if r.symbol.0 != NO_SYMBOL && i < 1 << 24 {
                if self.0.len() <= i {
                    self.0.resize(i + 1, None);
                }
                self.0[i] = Some(name.to_string());
            }
        }
    }

    /// The name of symbol id `id`, if known.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.0.get(id as usize).and_then(|n| n.as_deref())
    }
}

/// Where the journal of `run` is: `run/journal.rtj`, or `run` itself when it is a file.
fn journal_path(run: &Path) -> PathBuf {
    if run.is_file() { run.to_path_buf() } else { run.join("journal.rtj") }
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let jpath = journal_path(&args.run);
    let meta = jpath.with_file_name("journal.meta.json");
    let mut names = Names::from_meta(&meta)?;
    let mut reader = JournalReader::open(&jpath).map_err(|e| {
        let hint = if args.run.exists() { "" } else { " (RUN_DIR is the --out directory of `ringtape backtest`)" };
        bad_input(format!("{e}{hint}"))
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = Vec::with_capacity(256);
    let mut symbol_seen = false;
    let result = (|| -> Result<()> {
        while let Some(r) = reader.next_record().map_err(|e| bad_input(e.to_string()))? {
            names.learn(&r);
            if let Some(want) = &args.symbol {
                let name = (r.symbol.0 != NO_SYMBOL).then(|| names.get(r.symbol.0)).flatten();
                if !name.is_some_and(|n| n.eq_ignore_ascii_case(want)) {
                    continue;
                }
                symbol_seen = true;
            }
            if !args.kinds.is_empty() && !args.kinds.iter().any(|k| k.matches(&r)) {
                continue;
            }
            line.clear();
            match args.format {
                Format::Text => text_line(&mut line, &r, &names),
                Format::Jsonl => serde_json::to_writer(&mut line, &json_line(&r, &names))?,
            }
            line.push(b'\n');
            out.write_all(&line)?;
        }
        out.flush()?;
        Ok(())
    })();
    match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    if reader.unknown() > 0 {
        eprintln!(
            "note: {} of {} records held unknown kinds or values (printed raw): {} is newer than this ringtape?",
            reader.unknown(),
            reader.records(),
            jpath.display()
        );
    }
    if let Some(want) = &args.symbol
        && !symbol_seen
        && !names.0.iter().flatten().any(|n| n.eq_ignore_ascii_case(want))
    {
        let known: Vec<&str> = names.0.iter().flatten().map(String::as_str).collect();
        return Err(bad_input(format!(
            "{}: no symbol {want:?} in this run (symbols: {})",
            jpath.display(),
            if known.is_empty() { "none named".to_string() } else { known.join(", ") }
        )));
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(|j| j.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::pipeline::messages::{Flow, FlowBody};
    use engine::records::SymbolId;

    fn line(f: Flow, names: &Names) -> String {
        let r = Record::decode(&f.encode());
        let mut b = Vec::new();
        text_line(&mut b, &r, names);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn lines_show_decoded_fields_exactly() {
        let names = Names(vec![Some("SP500".into())]);
        let order = Order {
            order_id: OrderId::for_symbol(SymbolId(0), 3),
            symbol: SymbolId(0),
            qty: 100,
            side: Side::Sell.raw(),
            order_type: OrderType::Limit.raw(),
            limit_px_e9: 3_080_800_000_000,
            reduce_only: 1,
            ..Default::default()
        };
        let ts = 1_572_964_200_000_000_000; // 2019-11-05T14:30:00Z
        assert_eq!(
            line(Flow { seq: 9, body: FlowBody::Decision { order, reason: Reason::None, ts } }, &names),
            "9 2019-11-05T14:30:00Z decision SP500 accepted sell 100 limit limit=3080.80 reduce_only id=SP500-3"
        );
        assert_eq!(
            line(Flow { seq: 9, body: FlowBody::Decision { order, reason: Reason::MaxPosition, ts } }, &names),
            "9 2019-11-05T14:30:00Z decision SP500 rejected reason=max_position sell 100 limit limit=3080.80 reduce_only id=SP500-3"
        );
        let rep = ExecReport {
            ts_event_ns: ts + 60_000_000_000,
            order_id: OrderId::for_risk(2),
            fill_px_e9: 3_080_490_000_000,
            commission_e9: 500_000_000,
            symbol: SymbolId(0),
            fill_qty: 100,
            leaves_qty: 0,
            kind: ExecKind::Filled.raw(),
            side: Side::Buy.raw(),
            reason: Reason::EndOfRun.raw(),
        };
        assert_eq!(
            line(Flow { seq: 10, body: FlowBody::Report(rep) }, &names),
            "10 2019-11-05T14:31:00Z report SP500 filled buy 100 @ 3080.49 commission=0.50 leaves=0 reason=end_of_run id=risk-2"
        );
        let unknown_side = ExecReport { kind: ExecKind::Canceled.raw(), side: 9, symbol: SymbolId(4), ..rep };
        assert_eq!(
            line(Flow { seq: 11, body: FlowBody::Report(unknown_side) }, &names),
            "11 2019-11-05T14:31:00Z report #4 canceled unknown(9) leaves=0 reason=end_of_run id=risk-2"
        );
        let c = engine::records::Event::control(engine::records::ControlKind::EndOfData, ts, [0; 4]);
        assert_eq!(
            line(Flow { seq: 12, body: FlowBody::Input((&c).into()) }, &names),
            "12 2019-11-05T14:30:00Z input - control end_of_data control_ts=2019-11-05T14:30:00Z"
        );
    }

    #[test]
    fn unknown_records_print_raw_and_json_keeps_prices_exact() {
        let mut b = [0u8; engine::journal::RECORD_SIZE];
        b[16] = 42;
        b[24] = 1;
        let r = Record::decode(&b);
        let mut t = Vec::new();
        text_line(&mut t, &r, &Names::default());
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "0 1970-01-01T00:00:00Z unknown(42) #0 sub=0 aux=0 payload=0x0000000000000001,0x0000000000000000,\
             0x0000000000000000,0x0000000000000000,0x0000000000000000,0x0000000000000000"
        );
        let order = Order {
            order_id: OrderId::for_symbol(SymbolId(0), 1),
            qty: 5,
            side: Side::Buy.raw(),
            order_type: OrderType::Stop.raw(),
            stop_px_e9: 1,
            ..Default::default()
        };
        let r =
            Record::decode(&Flow { seq: 1, body: FlowBody::Decision { order, reason: Reason::None, ts: 0 } }.encode());
        let j = json_line(&r, &Names::default());
        assert_eq!(j["stop"], "0.000000001");
        assert_eq!(j["id"], "S0-1");
        assert_eq!(j["symbol"], "#0");
        assert_eq!(j["kind"], "decision");
        assert_eq!(j["ts"], "1970-01-01T00:00:00Z");
    }

    /// A hand-built record: `kind`, `sub`, `aux`, `symbol`, payload.
    fn raw(kind: u8, sub: u8, aux: u16, symbol: u32, payload: [u64; 6]) -> Record {
        let mut b = [0u8; engine::journal::RECORD_SIZE];
        b[0..8].copy_from_slice(&5u64.to_le_bytes());
        b[8..16].copy_from_slice(&1_572_964_200_000_000_000i64.to_le_bytes());
        b[16] = kind;
        b[17] = sub;
        b[18..20].copy_from_slice(&aux.to_le_bytes());
        b[20..24].copy_from_slice(&symbol.to_le_bytes());
        for (k, w) in payload.iter().enumerate() {
            b[24 + 8 * k..32 + 8 * k].copy_from_slice(&w.to_le_bytes());
        }
        Record::decode(&b)
    }

    fn text(r: &Record, names: &Names) -> String {
        let mut b = Vec::new();
        text_line(&mut b, r, names);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn lifecycle_names_symbols_and_new_kinds_print() {
        let mut names = Names(vec![Some("SP500".into())]);
        // Name bytes 0..32 of the payload, NUL padded (little-endian words).
        let added = raw(5, 1, 0, 3, [u64::from_le_bytes(*b"NEWCO\0\0\0"), 0, 0, 0, 0, 0]);
        names.learn(&added);
        assert_eq!((names.get(3), names.get(2), names.get(0)), (Some("NEWCO"), None, Some("SP500")));
        let t = "5 2019-11-05T14:30:00Z";
        assert_eq!(text(&added, &names), format!("{t} lifecycle NEWCO added name=NEWCO policy=none"));
        assert_eq!(text(&raw(5, 2, 1, 3, [0; 6]), &names), format!("{t} lifecycle NEWCO removing policy=flatten"));
        assert_eq!(
            text(&raw(5, 3, 2, 3, [0; 6]), &names),
            format!("{t} lifecycle NEWCO removed policy=manage_until_flat")
        );
        assert_eq!(text(&raw(5, 4, 0, 0, [0; 6]), &names), format!("{t} lifecycle SP500 faulted policy=none"));
        assert_eq!(text(&raw(5, 8, 9, 0, [0; 6]), &names), format!("{t} lifecycle SP500 unknown(8) policy=unknown(9)"));
        assert_eq!(text(&raw(6, 0, 0, NO_SYMBOL, [0; 6]), &names), format!("{t} timer - event_time"));
        assert_eq!(text(&raw(6, 0, 1, NO_SYMBOL, [0; 6]), &names), format!("{t} timer - wall_clock"));
        // Control inputs: the new kinds, with the removal policy of RemoveSymbol.
        let ctl = |kind: u64, arg0: i64| raw(1, 5, 0, NO_SYMBOL, [0, kind, arg0 as u64, 0, 0, 0]);
        assert_eq!(
            text(&ctl(5, 2), &names),
            format!("{t} input - control remove_symbol control_ts=1970-01-01T00:00:00Z policy=manage_until_flat")
        );
        assert_eq!(text(&ctl(4, 0), &names), format!("{t} input - control add_symbol control_ts=1970-01-01T00:00:00Z"));
        assert_eq!(
            text(&ctl(3, 0), &names),
            format!("{t} input - control session_start control_ts=1970-01-01T00:00:00Z")
        );
        assert_eq!(
            text(&ctl(77, 0), &names),
            format!("{t} input - control unknown(77) control_ts=1970-01-01T00:00:00Z")
        );
        // An add_symbol input names its symbol.
        let mut names2 = Names::default();
        let add = Record::decode(
            &Flow {
                seq: 5,
                body: FlowBody::Input((&engine::records::Event::add_symbol(SymbolId(2), "XYZ", 0)).into()),
            }
            .encode(),
        );
        names2.learn(&add);
        assert_eq!(
            text(&add, &names2),
            "5 1970-01-01T00:00:00Z input XYZ control add_symbol control_ts=1970-01-01T00:00:00Z name=XYZ"
        );
        // Quotes and trades.
        let d = engine::records::PX_SCALE as u64;
        let q = raw(1, 2, 0, 0, [0, 10 * d, 10 * d + d / 100, 3 | 4 << 32, 0, 0]);
        assert_eq!(
            text(&q, &names),
            format!("{t} input SP500 quote quote_ts=1970-01-01T00:00:00Z bid=10.00 bid_size=3 ask=10.01 ask_size=4")
        );
        let tr = raw(1, 3, 0, 0, [0, 10 * d + 5, 300, 9, 0, 0]);
        assert_eq!(
            text(&tr, &names),
            format!("{t} input SP500 trade trade_ts=1970-01-01T00:00:00Z price=10.000000005 size=300 trade_id=9")
        );
        let cancel = raw(3, 0, 0, 0, [OrderId::for_symbol(SymbolId(0), 12).0, 0, 0, 0, 0, 0]);
        assert_eq!(text(&cancel, &names), format!("{t} cancel SP500 id=SP500-12"));
        let j = json_line(&added, &names);
        assert_eq!(
            (j["kind"].as_str(), j["change"].as_str(), j["name"].as_str()),
            (Some("lifecycle"), Some("added"), Some("NEWCO"))
        );
    }
}
