//! One pass over a run's `journal.rtj` for the report: records by kind, inputs by event kind,
//! risk decisions (accepted, rejected by reason; strategy or manual), execution reports by kind,
//! the days the run saw (days with inputs but no fills count in the daily returns), its first and
//! last time, and protective stops for R-multiples.
//!
//! The header is checked by the engine's [`JournalReader`]; records are then read in large blocks
//! and only the fields a count needs are looked at (a DECISION of a stop order is decoded in full),
//! so a report reads a journal at disk speed. A file that ends inside a record is reported, not
//! fatal: everything before it is counted.

use super::metrics::day_of;
use crate::journal::Names;
use engine::journal::{HEADER_SIZE, JournalReader, RECORD_SIZE, Record, RecordKind};
use engine::records::{EventKind, ExecKind, MANUAL_TAG, OrderType, Reason, Side};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

/// An accepted stop order (a protective stop when it is on the other side of an open trade).
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Symbol name.
    pub symbol: String,
    /// Decision time, ns UTC.
    pub ts_ns: i64,
    /// +1 buy, -1 sell.
    pub side: i8,
    /// Stop price, USD.
    pub price: f64,
}

/// What the report takes from a journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalStats {
    /// Bytes of the file.
    pub bytes: u64,
    /// Records read.
    pub records: u64,
    /// Records by kind name (`unknown` for a kind this build does not know).
    pub by_kind: BTreeMap<&'static str, u64>,
    /// INPUT records by event kind name.
    pub inputs: BTreeMap<&'static str, u64>,
    /// DECISION records accepted.
    pub accepted: u64,
    /// DECISION records rejected, by reason name.
    pub rejected: BTreeMap<&'static str, u64>,
    /// DECISION records by origin: `strategy` or `manual` (hotkeys).
    pub by_origin: BTreeMap<&'static str, u64>,
    /// REPORT records by execution kind name.
    pub reports: BTreeMap<&'static str, u64>,
    /// Days (shifted by the risk day's offset) with an input or a clock tick.
    pub days: BTreeSet<i64>,
    /// First and last time of an input or tick, ns UTC.
    pub span_ns: Option<(i64, i64)>,
    /// Accepted stop orders.
    pub stops: Vec<Stop>,
    /// Why reading stopped early (a truncated or unreadable file), if it did.
    pub damaged: Option<String>,
}

fn kind_name(k: u8) -> &'static str {
    RecordKind::from_raw(k).map_or("unknown", RecordKind::as_str)
}

fn event_name(sub: u8) -> &'static str {
    match EventKind::from_raw(sub) {
        Some(EventKind::Bar) => "bar",
        Some(EventKind::Quote) => "quote",
        Some(EventKind::Trade) => "trade",
        Some(EventKind::Exec) => "exec",
        Some(EventKind::Control) => "control",
        Some(EventKind::BarRefs) => "bar_refs",
        Some(_) => "timer",
        None => "unknown",
    }
}

impl JournalStats {
    /// Read `path` (a `journal.rtj`); `names` resolve symbol ids, `offset_s` is the risk day's
    /// offset from UTC. An unreadable header is an error naming the file.
    pub fn read(path: &Path, names: &Names, offset_s: i64) -> anyhow::Result<JournalStats> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e} (the run's journal; re-run to write one)", path.display()))?;
        // The engine's reader checks magic, version and record size; the rest is read here.
        JournalReader::new(&mut f, path)?;
        let mut s = JournalStats { bytes: HEADER_SIZE as u64, ..JournalStats::default() };
        let mut buf = vec![0u8; RECORD_SIZE * 16 * 1024];
        let mut have = 0usize;
        loop {
            let n = match f.read(&mut buf[have..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    s.damaged = Some(format!("read error at byte {}: {e}", s.bytes + have as u64));
                    return Ok(s);
                }
            };
            have += n;
            let whole = have / RECORD_SIZE * RECORD_SIZE;
            for rec in buf[..whole].chunks_exact(RECORD_SIZE) {
                s.add(rec.try_into().expect("chunks_exact"), names, offset_s);
            }
            s.bytes += whole as u64;
            buf.copy_within(whole..have, 0);
            have -= whole;
        }
        if have > 0 {
            s.damaged = Some(format!(
                "truncated record {} at byte {} ({have} of {RECORD_SIZE} bytes): counted the records before it",
                s.records, s.bytes
            ));
            s.bytes += have as u64;
        }
        Ok(s)
    }

    fn add(&mut self, b: &[u8; RECORD_SIZE], names: &Names, offset_s: i64) {
        self.records += 1;
        let ts = i64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        let (kind, sub) = (b[16], b[17]);
        *self.by_kind.entry(kind_name(kind)).or_default() += 1;
        match RecordKind::from_raw(kind) {
            Some(RecordKind::Input) | Some(RecordKind::Timer) => {
                if kind == RecordKind::Input as u8 {
                    *self.inputs.entry(event_name(sub)).or_default() += 1;
                }
                if ts > 0 {
                    self.days.insert(day_of(ts, offset_s));
                    self.span_ns = Some(self.span_ns.map_or((ts, ts), |(a, z)| (a.min(ts), z.max(ts))));
                }
            }
            Some(RecordKind::Decision) => {
                let r = Record::decode(b);
                let engine::journal::Body::Decision { order, reason } = r.body else { return };
                *self.by_origin.entry(if order.tag == MANUAL_TAG { "manual" } else { "strategy" }).or_default() += 1;
                match reason {
                    Some(Reason::None) => {
                        self.accepted += 1;
                        if order.kind() == Some(OrderType::Stop) {
                            self.stops.push(Stop {
                                symbol: names.get(r.symbol.0).unwrap_or("-").to_string(),
                                ts_ns: ts,
                                side: if order.side() == Some(Side::Buy) { 1 } else { -1 },
                                price: order.stop_px_e9 as f64 / 1e9,
                            });
                        }
                    }
                    Some(r) => *self.rejected.entry(r.as_str()).or_default() += 1,
                    None => *self.rejected.entry("unknown").or_default() += 1,
                }
            }
            Some(RecordKind::Report) => {
                // ExecReport's kind is `sub` of the record.
                let name = ExecKind::from_raw(sub).map_or("unknown", ExecKind::as_str);
                *self.reports.entry(name).or_default() += 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::records::{Order, OrderId, SymbolId};

    fn rec(kind: RecordKind, sub: u8, aux: u16, ts: i64, payload: [u64; 6]) -> Record {
        let mut r = Record::decode(&[0; RECORD_SIZE]);
        r.kind_raw = kind as u8;
        r.sub = sub;
        r.aux = aux;
        r.ts_ns = ts;
        r.symbol = SymbolId(0);
        r.payload = payload;
        r
    }

    #[test]
    fn counts_kinds_decisions_days_and_stops_and_reports_a_truncated_tail() {
        let day = 86_400_000_000_000i64;
        let stop = Order {
            order_id: OrderId(7),
            limit_px_e9: 0,
            stop_px_e9: 98_500_000_000,
            timeout_ns: 0,
            symbol: SymbolId(0),
            qty: 10,
            side: Side::Sell.raw(),
            order_type: OrderType::Stop.raw(),
            reduce_only: 1,
            _pad: 0,
            tag: 0,
        };
        let manual = Order { order_type: OrderType::Market.raw(), tag: MANUAL_TAG, ..stop };
        let recs = [
            rec(RecordKind::Input, EventKind::Bar.raw(), 60, 10, [0; 6]),
            rec(RecordKind::Input, EventKind::Bar.raw(), 60, day + 10, [0; 6]),
            rec(RecordKind::Timer, 0, 1, 3 * day, [0; 6]),
            rec(RecordKind::Decision, 0, 0, day + 10, bytemuck::cast(stop)),
            rec(RecordKind::Decision, 0, Reason::MaxPosition.raw(), day + 10, bytemuck::cast(manual)),
            rec(RecordKind::Report, ExecKind::Filled.raw(), 0, day + 10, [0; 6]),
        ];
        let mut bytes = engine::journal::MAGIC.to_vec();
        bytes.extend_from_slice(&engine::journal::VERSION.to_le_bytes());
        bytes.extend_from_slice(&(RECORD_SIZE as u16).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        for r in &recs {
            bytes.extend_from_slice(&r.encode());
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.rtj");
        std::fs::write(&p, &bytes).unwrap();
        let names = Names::from_meta(&d.path().join("none.json")).unwrap();
        let s = JournalStats::read(&p, &names, 0).unwrap();
        assert_eq!(s.records, 6);
        assert_eq!(s.bytes, bytes.len() as u64);
        assert_eq!(s.by_kind["input"], 2);
        assert_eq!(s.inputs["bar"], 2);
        assert_eq!(s.accepted, 1);
        assert_eq!(s.rejected["max_position"], 1);
        assert_eq!(s.by_origin["manual"], 1);
        assert_eq!(s.reports["filled"], 1);
        assert_eq!(s.days, BTreeSet::from([0, 1, 3]));
        assert_eq!(s.span_ns, Some((10, 3 * day)));
        assert_eq!(s.stops, vec![Stop { symbol: "-".into(), ts_ns: day + 10, side: -1, price: 98.5 }]);
        assert!(s.damaged.as_deref().unwrap().starts_with("truncated record 6"), "{:?}", s.damaged);
        std::fs::write(&p, b"nope").unwrap();
        assert!(JournalStats::read(&p, &names, 0).unwrap_err().to_string().contains("bad magic"));
    }
}
