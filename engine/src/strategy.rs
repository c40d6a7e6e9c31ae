//! The strategy interface: small, synchronous, pure.
//!
//! A strategy is a per-symbol state machine. The shard that owns the symbol calls it with that
//! symbol's events in sequence order; the strategy answers by pushing order intents through
//! [`Ctx`]. It must not do I/O, read clocks (time comes in the events), allocate per event, or
//! share state with other symbols. Orders are never sent to a venue by a strategy: the shard
//! passes intents to risk, risk to execution.

use crate::records::{Bar, ExecReport, OrderId, OrderType, Quote, Side, SymbolId, Trade};

/// What a strategy asks for. Prices are fixed point (1e-9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Buy or sell.
    pub side: Side,
    /// Shares (> 0).
    pub qty: u32,
    /// Market, limit or stop.
    pub order_type: OrderType,
    /// Limit price (limit orders).
    pub limit_px_e9: i64,
    /// Stop price (stop orders).
    pub stop_px_e9: i64,
    /// Cancel when still working this long after placement (0 = until canceled).
    pub timeout_ns: i64,
    /// True for exits: risk lets reduce-only orders through when it halts new risk.
    pub reduce_only: bool,
    /// Free tag echoed back in reports (e.g. entry / stop / target).
    pub tag: u32,
}

impl OrderRequest {
    /// A market order.
    pub fn market(side: Side, qty: u32) -> Self {
        OrderRequest {
            side,
            qty,
            order_type: OrderType::Market,
            limit_px_e9: 0,
            stop_px_e9: 0,
            timeout_ns: 0,
            reduce_only: false,
            tag: 0,
        }
    }
    /// A limit order.
    pub fn limit(side: Side, qty: u32, limit_px_e9: i64) -> Self {
        OrderRequest { order_type: OrderType::Limit, limit_px_e9, ..Self::market(side, qty) }
    }
    /// A stop order.
    pub fn stop(side: Side, qty: u32, stop_px_e9: i64) -> Self {
        OrderRequest { order_type: OrderType::Stop, stop_px_e9, ..Self::market(side, qty) }
    }
    /// Mark as reduce-only (an exit).
    pub fn reduce_only(mut self) -> Self {
        self.reduce_only = true;
        self
    }
    /// Set the tag.
    pub fn tag(mut self, tag: u32) -> Self {
        self.tag = tag;
        self
    }
    /// Set the timeout.
    pub fn timeout_ns(mut self, ns: i64) -> Self {
        self.timeout_ns = ns;
        self
    }
}

/// An intent emitted by a strategy callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Place a new order with this id.
    Submit(OrderId, OrderRequest),
    /// Cancel a working order.
    Cancel(OrderId),
    /// Change a working order: `qty` is the new total (shares already filled included), a price
    /// of 0 keeps the order's price.
    Replace {
        /// The order.
        id: OrderId,
        /// New total quantity.
        qty: u32,
        /// New limit price (0: unchanged).
        limit_px_e9: i64,
        /// New stop price (0: unchanged).
        stop_px_e9: i64,
    },
}

/// The strategy's view of its symbol during a callback, and its outbox.
#[derive(Debug)]
pub struct Ctx<'a> {
    symbol: SymbolId,
    ts_ns: i64,
    position: i64,
    open_orders: u32,
    next_order_no: &'a mut u32,
    intents: &'a mut Vec<Intent>,
}

impl<'a> Ctx<'a> {
    /// Built by the shard for each callback (public so strategies can be unit-tested alone).
    pub fn new(
        symbol: SymbolId,
        ts_ns: i64,
        position: i64,
        open_orders: u32,
        next_order_no: &'a mut u32,
        intents: &'a mut Vec<Intent>,
    ) -> Self {
        Ctx { symbol, ts_ns, position, open_orders, next_order_no, intents }
    }
    /// The symbol.
    pub fn symbol(&self) -> SymbolId {
        self.symbol
    }
    /// Event time of the event being handled, ns UTC.
    pub fn ts_ns(&self) -> i64 {
        self.ts_ns
    }
    /// Current position in shares (+ long, - short), from the fills seen so far.
    pub fn position(&self) -> i64 {
        self.position
    }
    /// Orders submitted and not yet done (pending risk, or working at the venue), including
    /// those submitted during this callback.
    pub fn open_orders(&self) -> u32 {
        self.open_orders
    }
    /// Submit an order; returns its id (usable to cancel it later).
    pub fn submit(&mut self, req: OrderRequest) -> OrderId {
        let id = OrderId::for_symbol(self.symbol, *self.next_order_no);
        *self.next_order_no += 1;
        self.open_orders += 1;
        self.intents.push(Intent::Submit(id, req));
        id
    }
    /// Ask to cancel a working order.
    pub fn cancel(&mut self, id: OrderId) {
        self.intents.push(Intent::Cancel(id));
    }
    /// Ask to change a working order: `qty` is the new total (what already filled included),
    /// a price of 0 keeps the order's price. Risk checks the changed order like a new one; the
    /// answer comes back as a `Replaced` or `ReplaceRejected` report (with risk's or the venue's
    /// reason).
    pub fn replace(&mut self, id: OrderId, qty: u32, limit_px_e9: i64, stop_px_e9: i64) {
        self.intents.push(Intent::Replace { id, qty, limit_px_e9, stop_px_e9 });
    }
}

/// A per-symbol trading state machine.
pub trait Strategy: Send {
    /// A bar of this symbol closed.
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar);
    /// A quote of this symbol.
    fn on_quote(&mut self, _ctx: &mut Ctx<'_>, _quote: &Quote) {}
    /// A trade print of this symbol.
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _trade: &Trade) {}
    /// An update on one of this strategy's orders (accepted, fill, cancel, reject, expiry).
    /// `ctx.position()` already includes a fill reported here.
    fn on_order(&mut self, _ctx: &mut Ctx<'_>, _report: &ExecReport) {}
    /// A clock tick at `ctx.ts_ns()` (only for strategies whose [`Strategy::wants_timer`] is
    /// true): time-based exits fire here without waiting for the symbol's next bar.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>) {}
    /// True when the strategy wants [`Strategy::on_timer`] calls (asked once, when it is built).
    fn wants_timer(&self) -> bool {
        false
    }
    /// What this strategy wants drawn for its symbol as of its last callback (moving averages,
    /// VWAP, stop and target levels). Only a viewer calls it, after `on_bar`; the pipeline never
    /// does, so a strategy that draws nothing costs nothing.
    fn plot(&self, _out: &mut Plot) {}
}

/// How a plotted value is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotStyle {
    /// A series joined bar to bar (a moving average, VWAP).
    Line,
    /// A horizontal level held from bar to bar (a range edge, a stop, a target).
    Level,
}

/// One named value a strategy wants drawn at the current bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlotItem {
    /// Series name (the legend; the same name on consecutive bars makes one line).
    pub name: &'static str,
    /// Line or level.
    pub style: PlotStyle,
    /// Value, 1e-9 price units.
    pub px_e9: i64,
}

/// The values a strategy wants drawn at one bar, filled by [`Strategy::plot`]. The caller owns
/// it and clears it between bars, so the buffer is reused.
#[derive(Clone, Debug, Default)]
pub struct Plot {
    items: Vec<PlotItem>,
}

impl Plot {
    /// An empty plot.
    pub fn new() -> Self {
        Plot::default()
    }
    /// Forget the values (keeps the buffer).
    pub fn clear(&mut self) {
        self.items.clear();
    }
    /// A line series value.
    pub fn line(&mut self, name: &'static str, px_e9: i64) {
        self.items.push(PlotItem { name, style: PlotStyle::Line, px_e9 });
    }
    /// A horizontal level.
    pub fn level(&mut self, name: &'static str, px_e9: i64) {
        self.items.push(PlotItem { name, style: PlotStyle::Level, px_e9 });
    }
    /// The values pushed since the last clear, in push order.
    pub fn items(&self) -> &[PlotItem] {
        &self.items
    }
}

/// Builds one strategy instance per symbol.
pub trait StrategyFactory: Send + Sync {
    /// Strategy name (as given to `--strategy`).
    fn name(&self) -> &str;
    /// A fresh instance for `symbol`.
    fn build(&self, symbol: &str) -> Box<dyn Strategy>;
}
