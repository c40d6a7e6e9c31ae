//! Decoding every record kind, and reading whole files (good, truncated, foreign).

use super::*;
use crate::pipeline::messages::{Flow, FlowBody, InputRec, JOURNAL_MAGIC, JOURNAL_RECORD, JOURNAL_VERSION, jkind};
use crate::records::{Event, OrderType, Side, pack_name};

/// An input flow of `e`.
fn input(seq: u64, e: Event) -> Flow {
    Flow { seq, body: FlowBody::Input(InputRec::from(&e)) }
}

const D: i64 = crate::records::PX_SCALE;

fn round_trip(f: Flow) -> Record {
    let bytes = f.encode();
    let r = Record::decode(&bytes);
    assert_eq!(r.encode(), bytes, "decode then encode gives the same bytes");
    assert_eq!(r.seq, f.seq);
    r
}

fn sample_order() -> Order {
    Order {
        order_id: OrderId::for_symbol(SymbolId(2), 5),
        limit_px_e9: 3_080_250_000_000,
        stop_px_e9: 0,
        timeout_ns: 60 * 1_000_000_000,
        symbol: SymbolId(2),
        qty: 100,
        side: Side::Buy.raw(),
        order_type: OrderType::Limit.raw(),
        reduce_only: 1,
        _pad: 0,
        tag: 42,
    }
}

fn sample_report() -> ExecReport {
    ExecReport {
        ts_event_ns: 1_572_964_260_000_000_000,
        order_id: OrderId::for_symbol(SymbolId(2), 5),
        fill_px_e9: 3_080_800_000_000,
        commission_e9: D / 2,
        symbol: SymbolId(2),
        fill_qty: 60,
        leaves_qty: 40,
        kind: ExecKind::PartiallyFilled.raw(),
        side: Side::Buy.raw(),
        reason: Reason::None.raw(),
    }
}

/// A hand-built record.
fn raw(kind: u8, sub: u8, aux: u16, symbol: u32, payload: [u64; 6]) -> [u8; RECORD_SIZE] {
    Record {
        seq: 7,
        ts_ns: 1_000,
        kind_raw: kind,
        kind: None,
        sub,
        aux,
        symbol: SymbolId(symbol),
        payload,
        body: Body::Unknown,
    }
    .encode()
}

#[test]
fn the_format_constants_match_the_writer() {
    assert_eq!(MAGIC, JOURNAL_MAGIC);
    assert_eq!(RECORD_SIZE, JOURNAL_RECORD);
    assert_eq!(RecordKind::Input.raw(), jkind::INPUT);
    assert_eq!(RecordKind::Decision.raw(), jkind::DECISION);
    assert_eq!(RecordKind::Cancel.raw(), jkind::CANCEL);
    assert_eq!(RecordKind::Report.raw(), jkind::REPORT);
    assert_eq!(RecordKind::Lifecycle.raw(), jkind::LIFECYCLE);
    assert_eq!(RecordKind::Timer.raw(), jkind::TIMER);
    assert_eq!(VERSION, JOURNAL_VERSION);
}

#[test]
fn input_records_round_trip_every_event_kind() {
    let bar = Bar {
        ts_event_ns: 1_572_964_200_000_000_000,
        open_px_e9: 3_080_800_000_000,
        high_px_e9: 3_081_470_000_000,
        low_px_e9: 3_080_300_000_000,
        close_px_e9: 3_080_490_000_000,
        volume: 12,
    };
    let ts_recv = bar.ts_event_ns + 60_000_000_000;
    let r = round_trip(input(3, Event::bar(SymbolId(1), &bar, 60, ts_recv)));
    assert_eq!((r.kind, r.ts_ns, r.symbol, r.sub, r.aux), (Some(RecordKind::Input), ts_recv, SymbolId(1), 1, 60));
    assert_eq!(r.body, Body::Input(Input::Bar { bar, interval_s: 60 }));
    assert!(!r.has_unknown());

    let q = Quote { ts_event_ns: 5, bid_px_e9: 10 * D, ask_px_e9: 10 * D + D / 100, bid_size: 3, ask_size: 4 };
    let r = round_trip(input(4, Event::quote(SymbolId(0), &q, 6)));
    assert_eq!(r.body, Body::Input(Input::Quote(q)));

    let t = Trade { ts_event_ns: 5, px_e9: 10 * D, size: 300, trade_id: 99 };
    let r = round_trip(input(5, Event::trade(SymbolId(0), &t, 6)));
    assert_eq!(r.body, Body::Input(Input::Trade(t)));

    let rep = sample_report();
    let r = round_trip(input(6, Event::exec(&rep, 8)));
    assert_eq!(r.body, Body::Input(Input::Exec(rep)));

    for kind in [ControlKind::EndOfData, ControlKind::Shutdown, ControlKind::SessionStart] {
        let r = round_trip(input(9, Event::control(kind, 77, [1, -2, 3, 4])));
        assert_eq!(r.symbol.0, NO_SYMBOL);
        let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
        assert_eq!(c, ControlCmd { ts_event_ns: 77, kind_raw: kind.raw(), kind: Some(kind), args: [1, -2, 3, 4] });
        assert_eq!((c.removal_policy(), c.added_name()), (None, None));
    }
    // Adding and removing symbols.
    let r = round_trip(input(10, Event::add_symbol(SymbolId(5), "NEWCO", 77)));
    assert_eq!(r.symbol, SymbolId(5));
    let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
    assert_eq!(
        (c.kind, c.added_name(), control_name(ControlKind::AddSymbol)),
        (Some(ControlKind::AddSymbol), Some("NEWCO"), "add_symbol")
    );
    for policy in [RemovalPolicy::Flatten, RemovalPolicy::ManageUntilFlat] {
        let r = round_trip(input(11, Event::remove_symbol(SymbolId(5), policy, 78)));
        let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
        assert_eq!((c.kind, c.removal_policy(), c.added_name()), (Some(ControlKind::RemoveSymbol), Some(policy), None));
        assert!(!r.has_unknown());
    }
}

/// A control INPUT record built by hand.
fn control_record(kind: u8, args: [i64; 4]) -> Record {
    let payload = [77, u64::from(kind), args[0] as u64, args[1] as u64, args[2] as u64, args[3] as u64];
    Record::decode(&raw(RecordKind::Input.raw(), crate::records::EventKind::Control.raw(), 0, NO_SYMBOL, payload))
}

#[test]
fn new_control_kinds_decode() {
    let r = control_record(4, [0; 4]);
    let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
    assert_eq!((c.kind, c.ts_event_ns), (Some(ControlKind::AddSymbol), 77));
    let r = control_record(5, [9, 0, 0, 0]);
    let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
    assert_eq!(c.removal_policy(), None, "unknown policy");
    // An unknown control kind is kept raw and flagged.
    let r = control_record(200, [0; 4]);
    let Body::Input(Input::Control(c)) = r.body else { panic!("{r:?}") };
    assert_eq!((c.kind, c.kind_raw), (None, 200));
    assert!(r.has_unknown());
    // So is an unknown event kind.
    let r = Record::decode(&raw(RecordKind::Input.raw(), 0, 0, 0, [0; 6]));
    assert_eq!(r.body, Body::Input(Input::Unknown(0)));
    assert!(r.has_unknown());
}

#[test]
fn decision_cancel_and_report_records_round_trip() {
    let order = sample_order();
    let r = round_trip(Flow { seq: 11, body: FlowBody::Decision { order, reason: Reason::None, ts: 123 } });
    assert_eq!((r.kind, r.ts_ns, r.symbol, r.aux), (Some(RecordKind::Decision), 123, SymbolId(2), 0));
    assert_eq!(r.body, Body::Decision { order, reason: Some(Reason::None) });
    assert!(!r.is_reject() && !r.is_fill() && !r.has_unknown());
    for reason in Reason::ALL.into_iter().skip(1) {
        let r = round_trip(Flow { seq: 11, body: FlowBody::Decision { order, reason, ts: 123 } });
        assert_eq!(r.body, Body::Decision { order, reason: Some(reason) });
        assert!(r.is_reject(), "{reason:?}");
    }
    // An unknown reason is kept raw in `aux`.
    let mut b = round_trip(Flow { seq: 11, body: FlowBody::Decision { order, reason: Reason::None, ts: 1 } }).encode();
    b[18..20].copy_from_slice(&999u16.to_le_bytes());
    let r = Record::decode(&b);
    assert_eq!((r.body, r.aux), (Body::Decision { order, reason: None }, 999));
    assert!(r.has_unknown());

    let id = OrderId::for_risk(4);
    let r = round_trip(Flow { seq: 12, body: FlowBody::Cancel { id, symbol: SymbolId(1), ts: 5 } });
    assert_eq!(
        (r.kind, r.ts_ns, r.symbol, r.body),
        (Some(RecordKind::Cancel), 5, SymbolId(1), Body::Cancel { order_id: id })
    );

    let rep = sample_report();
    let r = round_trip(Flow { seq: 13, body: FlowBody::Report(rep) });
    assert_eq!((r.kind, r.ts_ns, r.sub, r.aux), (Some(RecordKind::Report), rep.ts_event_ns, rep.kind, 0));
    assert_eq!(r.body, Body::Report(rep));
    assert!(r.is_fill() && !r.is_reject());
    for kind in [ExecKind::Accepted, ExecKind::Canceled, ExecKind::Expired] {
        let r = round_trip(Flow { seq: 13, body: FlowBody::Report(ExecReport { kind: kind.raw(), ..rep }) });
        assert!(!r.is_fill() && !r.is_reject(), "{kind:?}");
    }
    let rejected = ExecReport { kind: ExecKind::Rejected.raw(), reason: Reason::MaxPosition.raw(), ..rep };
    let r = round_trip(Flow { seq: 13, body: FlowBody::Report(rejected) });
    assert_eq!(r.aux, Reason::MaxPosition.raw());
    assert!(r.is_reject());
    let r = round_trip(Flow { seq: 13, body: FlowBody::Report(ExecReport { kind: 0, ..rep }) });
    assert!(r.has_unknown(), "unknown exec kind");
    // An invalid order's bad side is data, not an unknown format.
    let bad = Order { side: 0, ..order };
    let r = round_trip(Flow { seq: 14, body: FlowBody::Decision { order: bad, reason: Reason::InvalidOrder, ts: 1 } });
    assert!(r.is_reject() && !r.has_unknown());
}

#[test]
fn lifecycle_records_round_trip() {
    let life = |step: Lifecycle, policy: u8, name: &str| {
        round_trip(Flow {
            seq: 20,
            body: FlowBody::Lifecycle { symbol: SymbolId(3), step, policy, ts: 99, name: pack_name(name) },
        })
    };
    let r = life(Lifecycle::Added, 0, "AAPL");
    assert_eq!((r.kind, r.ts_ns, r.symbol), (Some(RecordKind::Lifecycle), 99, SymbolId(3)));
    assert_eq!(r.added_name(), Some("AAPL"));
    let Body::Lifecycle { change, policy, .. } = r.body else { panic!("{r:?}") };
    assert_eq!((change, policy, policy_name(r.aux)), (Some(Lifecycle::Added), None, Some("none")));
    assert!(!r.has_unknown());
    // A 32-byte name has no NUL; nothing past byte 32 belongs to it.
    let r = life(Lifecycle::Added, 0, &"X".repeat(40));
    assert_eq!(r.added_name(), Some("X".repeat(32).as_str()));
    for (step, policy, want) in [
        (Lifecycle::Removing, RemovalPolicy::Flatten.raw(), Some(RemovalPolicy::Flatten)),
        (Lifecycle::Removed, RemovalPolicy::ManageUntilFlat.raw(), Some(RemovalPolicy::ManageUntilFlat)),
        (Lifecycle::Faulted, 0, None),
    ] {
        let r = life(step, policy, "");
        assert_eq!(r.body, Body::Lifecycle { change: Some(step), policy: want, name: None });
        assert_eq!(r.added_name(), None, "only `added` carries a name");
        assert!(!r.has_unknown());
    }
    assert_eq!(policy_name(1), Some("flatten"));
    assert_eq!(policy_name(2), Some("manage_until_flat"));
    // Unknown steps and policies decode raw and are flagged.
    let r = Record::decode(&raw(5, 9, 7, 3, [0; 6]));
    assert_eq!(r.body, Body::Lifecycle { change: None, policy: None, name: None });
    assert_eq!((r.sub, r.aux, policy_name(r.aux)), (9, 7, None));
    assert!(r.has_unknown());
    assert!(Record::decode(&raw(5, 2, 300, 3, [0; 6])).has_unknown(), "policy beyond u8");
    // An empty name is no name.
    assert_eq!(life(Lifecycle::Added, 0, "").added_name(), None);
}

#[test]
fn timer_ticks_round_trip() {
    for (wall, clock) in [(false, TimerClock::EventTime), (true, TimerClock::WallClock)] {
        let r = round_trip(input(21, Event::timer(1_572_964_200_000_000_000, wall)));
        assert_eq!(
            (r.kind, r.ts_ns, r.symbol.0, r.body),
            (Some(RecordKind::Timer), 1_572_964_200_000_000_000, NO_SYMBOL, Body::Timer { clock: Some(clock) })
        );
        assert!(!r.has_unknown());
    }
    // A tick journaled as an INPUT (not what the writer does) decodes too.
    let e = Event::timer(5, true);
    let r = Record::decode(&raw(RecordKind::Input.raw(), e.kind, 0, NO_SYMBOL, e.payload));
    assert_eq!(r.body, Body::Input(Input::Timer { ts_ns: 5, clock: Some(TimerClock::WallClock) }));
}

#[test]
fn timer_and_unknown_records_decode() {
    let r = Record::decode(&raw(6, 0, 0, NO_SYMBOL, [0; 6]));
    assert_eq!(
        (r.kind, r.ts_ns, r.body),
        (Some(RecordKind::Timer), 1_000, Body::Timer { clock: Some(TimerClock::EventTime) })
    );
    let r = Record::decode(&raw(6, 0, 1, NO_SYMBOL, [0; 6]));
    assert_eq!(r.body, Body::Timer { clock: Some(TimerClock::WallClock) });
    assert!(!r.has_unknown());
    assert!(Record::decode(&raw(6, 0, 2, NO_SYMBOL, [0; 6])).has_unknown());
    for kind in [0, 7, 200, 255] {
        let b = raw(kind, 1, 2, 3, [1, 2, 3, 4, 5, 6]);
        let r = Record::decode(&b);
        assert_eq!((r.kind, r.kind_raw, r.body), (None, kind, Body::Unknown));
        assert_eq!((r.sub, r.aux, r.symbol, r.payload), (1, 2, SymbolId(3), [1, 2, 3, 4, 5, 6]));
        assert!(r.has_unknown());
        assert_eq!(r.encode(), b);
    }
}

#[test]
fn order_ids_format_by_origin() {
    assert_eq!(fmt_order_id(OrderId::for_symbol(SymbolId(0), 1).0), "S0-1");
    assert_eq!(fmt_order_id(OrderId::for_symbol(SymbolId(41), 1234).0), "S41-1234");
    assert_eq!(
        fmt_order_id(OrderId::for_symbol(SymbolId(u32::MAX - 1), u32::MAX).0),
        format!("S{}-{}", u32::MAX - 1, u32::MAX)
    );
    assert_eq!(fmt_order_id(OrderId::for_risk(1).0), "risk-1");
    assert_eq!(fmt_order_id(0), "risk-0");
}

fn header(version: u16, size: u16) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn file_with(records: &[[u8; RECORD_SIZE]]) -> Vec<u8> {
    let mut f = header(VERSION, RECORD_SIZE as u16);
    for r in records {
        f.extend_from_slice(r);
    }
    f
}

#[test]
fn reads_records_in_order_and_counts_unknown_ones() {
    let recs = [
        Flow { seq: 1, body: FlowBody::Decision { order: sample_order(), reason: Reason::None, ts: 1 } }.encode(),
        raw(99, 0, 0, 0, [0; 6]),
        Flow { seq: 2, body: FlowBody::Report(sample_report()) }.encode(),
    ];
    let bytes = file_with(&recs);
    let mut rd = JournalReader::new(&bytes[..], "mem.rtj").unwrap();
    let got: Vec<Record> = rd.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.iter().map(|r| r.kind_raw).collect::<Vec<_>>(), vec![2, 99, 4]);
    assert_eq!((rd.records(), rd.unknown(), rd.offset()), (3, 1, 16 + 3 * 72));
    assert!(rd.next().is_none(), "fused");
    // A header alone is an empty journal.
    assert_eq!(JournalReader::new(&file_with(&[])[..], "e.rtj").unwrap().count(), 0);
}

#[test]
fn a_truncated_last_record_is_an_error_with_its_offset() {
    let rec = Flow { seq: 1, body: FlowBody::Report(sample_report()) }.encode();
    let mut bytes = file_with(&[rec, rec]);
    bytes.extend_from_slice(&rec[..30]);
    let mut rd = JournalReader::new(&bytes[..], "runs/x/journal.rtj").unwrap();
    assert!(rd.next().unwrap().is_ok());
    assert!(rd.next().unwrap().is_ok());
    let err = rd.next().unwrap().unwrap_err();
    // 16-byte header + 2 x 72 = byte 160.
    assert!(matches!(err, JournalError::TruncatedRecord { offset: 160, index: 2, len: 30, .. }), "{err:?}");
    assert_eq!(err.to_string(), "runs/x/journal.rtj: byte 160: truncated record 2 (30 of 72 bytes)");
    assert!(rd.next().is_none(), "no record after an error");
}

#[test]
fn foreign_and_damaged_headers_are_refused() {
    let err = |bytes: &[u8]| JournalReader::new(bytes, "j.rtj").unwrap_err();
    let e = err(b"RTBARS\0\x01 a bar file, not a journal");
    assert!(matches!(e, JournalError::BadMagic { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        r#"j.rtj: byte 0: bad magic "RTBARS\x00\x01": not a ringtape journal (expected "RTJRNL\x00\x01")"#
    );
    assert!(matches!(err(b"hello"), JournalError::BadMagic { .. }));
    let e = err(b"");
    assert!(matches!(e, JournalError::TruncatedHeader { len: 0, .. }), "{e:?}");
    let e = err(&MAGIC[..5]);
    assert!(matches!(e, JournalError::TruncatedHeader { len: 5, .. }), "{e:?}");
    let e = err(&header(VERSION, RECORD_SIZE as u16)[..12]);
    assert_eq!(e.to_string(), "j.rtj: byte 12: truncated header (12 of 16 bytes): not a complete ringtape journal");
    let e = err(&header(VERSION + 1, RECORD_SIZE as u16));
    assert_eq!(e.to_string(), "j.rtj: byte 8: journal version 3, this build reads versions 1 to 2");
    let e = err(&header(0, RECORD_SIZE as u16));
    assert!(matches!(e, JournalError::Version { found: 0, .. }), "{e:?}");
    // Version 1 files (same layout) are read.
    assert_eq!(JournalReader::new(&header(1, RECORD_SIZE as u16)[..], "v1.rtj").unwrap().count(), 0);
    let e = err(&header(VERSION, 64));
    assert_eq!(e.to_string(), "j.rtj: byte 10: record size 64, expected 72");
}

#[test]
fn open_names_a_missing_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("journal.rtj");
    let e = JournalReader::open(&p).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: byte 0: ", p.display())), "{e}");
    std::fs::write(&p, file_with(&[raw(6, 0, 0, NO_SYMBOL, [0; 6])])).unwrap();
    let recs: Vec<_> = JournalReader::open(&p).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 1);
}
