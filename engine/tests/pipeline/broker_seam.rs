//! What a broker gateway tells the engine besides reports: reconciles (adopt the broker's
//! position, or halt new entries), orders taken over from the broker, and account-wide halts.
//! Scripted control events through the real sequencer, risk and execution, on every topology.

use super::{D, Holding, MIN, Script, ScriptFactory, bar, topologies};
use engine::barfile::write_bar_file;
use engine::merge::BarSet;
use engine::pipeline::{BarReplay, RunSpec, Script as Events, run};
use engine::records::{Bar, Event, ExecKind, Order, OrderId, OrderType, Reason, ReconcilePolicy, Side, SymbolId};

#[test]
fn reconciles_adopt_or_halt_and_orders_taken_over_from_the_broker_are_managed_like_our_own() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bars: Vec<Bar> = (0..8).map(|i| bar(i, 10, 11, 9, 10)).collect();
    write_bar_file(&data.join("T.1m.rtb"), "T", 60, &bars).unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Script { orders: vec![], n: 0, reports: reports.clone() };
    let at = |i: i64| bar(i, 0, 0, 0, 0).ts_event_ns + MIN;
    let t = SymbolId(0);
    let adopted = Order {
        order_id: OrderId::adopted(1),
        symbol: t,
        qty: 5,
        side: Side::Buy.raw(),
        order_type: OrderType::Limit.raw(),
        limit_px_e9: 2 * D,
        ..Default::default()
    };
    let events = vec![
        // The broker holds 50 shares the run never bought: adopted at 10.00.
        Event::reconcile(t, 50, 10 * D, ReconcilePolicy::Adopt, at(0)),
        // A limit order of an earlier session, still working at the broker.
        Event::adopt_order(&adopted, at(1)),
        Event::manual_order(t, Side::Buy, OrderType::Market, 10, 0, 0, at(2)),
        // The broker agrees (no mismatch), then it does not, under the halt policy.
        Event::reconcile(t, 50, 10 * D, ReconcilePolicy::Halt, at(3)),
        Event::reconcile(t, 40, 10 * D, ReconcilePolicy::Halt, at(3)),
        // Halted: an entry is refused; flattening (exits) still goes through and cancels both
        // working orders, the adopted one included.
        Event::manual_order(t, Side::Buy, OrderType::Market, 10, 0, 0, at(4)),
        Event::flatten(t, at(4)),
        // A shutdown-style halt, then a resume: entries pass again.
        Event::halt(Some(Reason::Halted), at(5)),
        Event::halt(None, at(6)),
        Event::manual_order(t, Side::Buy, OrderType::Limit, 1, 3 * D, 0, at(6)),
    ];
    for (name, cfg) in topologies(&engine::pipeline::config::EngineConfig::default()) {
        reports.lock().unwrap().clear();
        let set = BarSet::open_dir(&data, 1).unwrap();
        let out = d.path().join(&name);
        let f = ScriptFactory(script.clone());
        let spec = RunSpec::new(&cfg, set.symbols(), &f)
            .bars(&set)
            .out_dir(&out)
            .venue(Box::<Holding>::default())
            .source(Events::new(events.clone()));
        let r = run(spec, BarReplay::new(set.merged()), &mut |_| {}).unwrap();
        let c = &r.counters;
        assert_eq!(
            (c.reconcile_mismatches, c.reconcile_adopted_shares, c.adopted_orders),
            (2, 50, 1),
            "{name}: two mismatches (0 vs 50, 50 vs 40), 50 shares adopted, one order taken over"
        );
        assert_eq!(r.rejects_for(Reason::Halted), 1, "{name}: the entry while halted");
        assert_eq!(r.positions.symbols[0].position, 50, "{name}: the position tracker adopted too");
        assert_eq!(r.positions.symbols[0].fills, 0, "{name}: an adoption is not a fill");
        assert_eq!(c.unknown_order_reports, 0, "{name}: the adopted order's cancel is known");
        let seen = reports.lock().unwrap().clone();
        let canceled = seen.iter().filter(|(k, _)| *k == ExecKind::Canceled).count();
        // Flatten cancels the adopted limit and the manual market order (the holding venue
        // never fills); the end of the run cancels the flattening sell and the last limit.
        assert_eq!(canceled, 4, "{name}: {seen:?}");
        // The flattening order sells the adopted 50 shares (reduce-only), a decision like any.
        let j = std::fs::read(out.join("journal.rtj")).unwrap();
        let decisions: Vec<(Order, u16)> = j[16..]
            .chunks(72)
            .filter(|r| r[16] == 2)
            .map(|r| {
                let o = bytemuck::cast::<[u8; 48], Order>(r[24..72].try_into().unwrap());
                (o, u16::from_le_bytes([r[18], r[19]]))
            })
            .collect();
        let sells: Vec<&Order> = decisions.iter().map(|(o, _)| o).filter(|o| o.side == Side::Sell.raw()).collect();
        assert_eq!(sells.len(), 1, "{name}: {decisions:?}");
        assert_eq!((sells[0].qty, sells[0].reduce_only), (50, 1), "{name}");
        assert_eq!(decisions.len(), 4, "{name}: two manual entries, the refused one, the flatten sell: {decisions:?}");
    }
}
