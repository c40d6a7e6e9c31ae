//! Unit tests of the records: fixed-point text, events, enums, ids.
use super::*;
use proptest::prelude::*;

#[test]
fn parse_px_exact() {
    assert_eq!(parse_px("3080.8"), Some(3_080_800_000_000));
    assert_eq!(parse_px("0.000000001"), Some(1));
    assert_eq!(parse_px("-1.5"), Some(-1_500_000_000));
    assert_eq!(parse_px("12"), Some(12_000_000_000));
    assert_eq!(parse_px(".5"), Some(500_000_000));
    // 10th fractional digit rounds half away from zero
    assert_eq!(parse_px("1.0000000005"), Some(1_000_000_001));
    for bad in ["", "abc", "1e3", "1.2.3", "NaN", "inf", "-", "."] {
        assert_eq!(parse_px(bad), None, "{bad}");
    }
}

#[test]
fn event_round_trips_every_payload() {
    let bar = Bar { ts_event_ns: 7, open_px_e9: 1, high_px_e9: 2, low_px_e9: 1, close_px_e9: 2, volume: 9 };
    let e = Event::bar(SymbolId(3), &bar, 60, 8);
    assert_eq!(e.as_bar(), Some(&bar));
    assert_eq!(e.as_quote(), None);
    assert_eq!(e.ts_event_ns(), 7);
    let q = Quote { ts_event_ns: 5, bid_px_e9: 10, ask_px_e9: 11, bid_size: 1, ask_size: 2 };
    assert_eq!(Event::quote(SymbolId(1), &q, 6).as_quote(), Some(&q));
    let t = Trade { ts_event_ns: 5, px_e9: 10, size: 3, trade_id: 4 };
    assert_eq!(Event::trade(SymbolId(1), &t, 6).as_trade(), Some(&t));
    let c = Event::control(ControlKind::Shutdown, 99, [1, 2, 3, 4]);
    assert_eq!(c.as_control().map(|c| c.kind), Some(ControlKind::Shutdown.raw()));
    assert_eq!(c.ts_event_ns(), 99);
}

#[test]
fn order_ids_read_well_and_carry_a_session() {
    let id = OrderId::for_symbol(SymbolId(4), 12);
    assert_eq!((id.symbol(), id.number()), (Some(SymbolId(4)), 12));
    let mut b = Vec::new();
    id.write_readable(&mut b, "SP500");
    assert_eq!(b, b"SP500-12");
    assert_eq!(OrderId::for_risk(3).symbol(), None);
    let s = session_id("bt", b"inputs");
    assert_eq!(s, session_id("bt", b"inputs"), "derived, so a replay gets the same ids");
    assert_ne!(s, session_id("bt", b"other inputs"));
    assert_eq!(id.client_order_id(&s, "SP500"), format!("{s}-SP500-12"));
    assert_eq!(OrderId::for_risk(3).client_order_id("live-1", "X"), "live-1-risk-3");
}

#[test]
fn unknown_enum_values_are_rejected() {
    assert_eq!(Side::from_raw(0), None);
    assert_eq!(Side::from_raw(3), None);
    assert_eq!(ExecKind::from_raw(10), None);
    assert_eq!(EventKind::from_raw(0), None);
    assert_eq!(Reason::from_raw(999), None);
}

#[test]
fn bar_validation() {
    let ok = Bar { ts_event_ns: 0, open_px_e9: 2, high_px_e9: 3, low_px_e9: 1, close_px_e9: 2, volume: 0 };
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(Bar { low_px_e9: 4, ..ok }.validate(), Err(BarFault::HighBelowLow));
    assert_eq!(Bar { open_px_e9: 0, ..ok }.validate(), Err(BarFault::NonPositivePrice));
    assert_eq!(Bar { close_px_e9: 5, high_px_e9: 4, ..ok }.validate(), Err(BarFault::OutsideRange));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn fmt_then_parse_round_trips(v in -1_000_000_000_000_000_000i64..1_000_000_000_000_000_000i64) {
        prop_assert_eq!(parse_px(&fmt_px(v, 0)), Some(v));
    }

    #[test]
    fn interval_display_parse(secs in 1u32..1_000_000) {
        let i = Interval { secs };
        prop_assert_eq!(Interval::parse(&i.to_string()), Some(i));
    }
}
