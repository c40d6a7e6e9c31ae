//! A strategy's overlays and fills, recorded by running it once over the bars.
//!
//! The honest path: the real pipeline (`engine::pipeline::run`, inline topology, simulated
//! venue, no journal) over the bar set, with a wrapping [`StrategyFactory`] whose strategies
//! forward every callback to the real one and, after each `on_bar`, ask it for
//! [`Strategy::plot`] and note its fills from `on_order`. The backtest never goes through here.

use crate::model::{FillMark, Overlay, SymbolChart};
use engine::merge::BarSet;
use engine::pipeline::config::{EngineConfig, Topology};
use engine::pipeline::{PipelineError, RunSpec, Script};
use engine::records::{Bar, Event, ExecReport, Quote, Trade};
use engine::strategy::{Ctx, Plot, Strategy, StrategyFactory};
use engine::symbols::SymbolTable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// What one symbol's strategy drew and did.
#[derive(Debug, Default)]
struct Rec {
    bars: usize,
    overlays: Vec<Overlay>,
    fills: Vec<FillMark>,
}

impl Rec {
    fn note(&mut self, plot: &Plot) {
        let i = self.bars;
        self.bars += 1;
        for item in plot.items() {
            let k = match self.overlays.iter().position(|o| o.name == item.name) {
                Some(k) => k,
                None => {
                    self.overlays.push(Overlay { name: item.name.to_string(), style: item.style, values: Vec::new() });
                    self.overlays.len() - 1
                }
            };
            let v = &mut self.overlays[k].values;
            v.resize(i, None);
            v.push(Some(item.px_e9));
        }
    }
}

type Shared = Arc<Mutex<Rec>>;

struct Recording<'a> {
    inner: &'a dyn StrategyFactory,
    recs: Mutex<HashMap<String, Shared>>,
}

struct Recorder {
    inner: Box<dyn Strategy>,
    rec: Shared,
    plot: Plot,
}

fn lock(m: &Mutex<Rec>) -> std::sync::MutexGuard<'_, Rec> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Strategy for Recorder {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar) {
        self.inner.on_bar(ctx, bar);
        self.plot.clear();
        self.inner.plot(&mut self.plot);
        lock(&self.rec).note(&self.plot);
    }
    fn on_quote(&mut self, ctx: &mut Ctx<'_>, q: &Quote) {
        self.inner.on_quote(ctx, q);
    }
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        self.inner.on_trade(ctx, t);
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, r: &ExecReport) {
        if let (Some(kind), Some(side)) = (r.exec_kind(), r.exec_side())
            && kind.is_fill()
        {
            lock(&self.rec).fills.push(FillMark { ts_ns: r.ts_event_ns, side, qty: r.fill_qty, px_e9: r.fill_px_e9 });
        }
        self.inner.on_order(ctx, r);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        self.inner.on_timer(ctx);
    }
    fn wants_timer(&self) -> bool {
        self.inner.wants_timer()
    }
    fn plot(&self, out: &mut Plot) {
        self.inner.plot(out);
    }
}

impl StrategyFactory for Recording<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn build(&self, symbol: &str) -> Box<dyn Strategy> {
        let rec = Shared::default();
        self.recs.lock().unwrap_or_else(PoisonError::into_inner).insert(symbol.to_string(), rec.clone());
        Box::new(Recorder { inner: self.inner.build(symbol), rec, plot: Plot::new() })
    }
}

/// One chart per stream of `set` (bars copied out of the mapping), no overlays or fills.
pub fn charts_of(set: &BarSet) -> Vec<SymbolChart> {
    set.streams()
        .iter()
        .map(|s| SymbolChart::new(set.symbols().name(s.symbol), s.file.header().interval_s, s.file.bars().to_vec()))
        .collect()
}

/// Run `factory`'s strategy over `set` through the inline pipeline (config `cfg`, forced
/// inline) and return one chart per stream with the strategy's overlays and its fills.
pub fn run_strategy(
    cfg: &EngineConfig,
    set: &BarSet,
    factory: &dyn StrategyFactory,
) -> Result<Vec<SymbolChart>, PipelineError> {
    run_strategy_on(cfg, set.symbols(), charts_of(set), factory)
}

/// Run `factory`'s strategy over the bars of `charts` (each chart's symbol in `symbols`; bars
/// delivered at their close, in (close time, symbol) order as a bar set merges them) and fill in
/// each chart's overlays and fills.
pub fn run_strategy_on(
    cfg: &EngineConfig,
    symbols: &SymbolTable,
    charts: Vec<SymbolChart>,
    factory: &dyn StrategyFactory,
) -> Result<Vec<SymbolChart>, PipelineError> {
    let mut events: Vec<Event> = Vec::with_capacity(charts.iter().map(|c| c.bars.len()).sum());
    for c in &charts {
        let Some(id) = symbols.get(&c.symbol) else { continue };
        let len_ns = i64::from(c.interval_s) * 1_000_000_000;
        events.extend(c.bars.iter().map(|b| Event::bar(id, b, c.interval_s, b.ts_event_ns + len_ns)));
    }
    events.sort_by_key(|e| (e.ts_recv_ns, e.symbol.0));
    run_events(cfg, symbols, charts, factory, events)
}

/// Run `factory`'s strategy over `events` (any inputs in time order: bars, quotes, control
/// commands, ticks, e.g. a journal's recorded inputs) through the inline pipeline and fill in
/// the overlays and fills of `charts` (whose bars should be the bars among the events).
pub fn run_events(
    cfg: &EngineConfig,
    symbols: &SymbolTable,
    mut charts: Vec<SymbolChart>,
    factory: &dyn StrategyFactory,
    events: Vec<Event>,
) -> Result<Vec<SymbolChart>, PipelineError> {
    let mut cfg = cfg.clone();
    cfg.pipeline.topology = Topology::Inline;
    let wrap = Recording { inner: factory, recs: Mutex::new(HashMap::new()) };
    let spec = RunSpec::new(&cfg, symbols, &wrap);
    engine::pipeline::run(spec, Script::new(events), &mut |_| {})?;
    let recs = wrap.recs.into_inner().unwrap_or_else(PoisonError::into_inner);
    for c in &mut charts {
        if let Some(r) = recs.get(&c.symbol) {
            let mut r = lock(r);
            let n = c.bars.len();
            for o in &mut r.overlays {
                o.values.resize(n, None);
            }
            c.overlays = std::mem::take(&mut r.overlays);
            c.fills = std::mem::take(&mut r.fills);
        }
    }
    Ok(charts)
}
