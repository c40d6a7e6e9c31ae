//! Normalized records: the one schema that flows through backtest, paper and live.
//!
//! Every record is a fixed-size `#[repr(C)]` plain struct (`Copy`, [`bytemuck::Pod`]) with its size
//! asserted at compile time. Prices are fixed-point integers in 1e-9 units (`*_px_e9`, as Databento's
//! DBN does), timestamps are nanoseconds since the Unix epoch in UTC (`ts_*_ns`). Enums that travel as
//! bytes are stored as raw integers and decoded through checked conversions that reject unknown values.

use bytemuck::{Pod, Zeroable};

mod kinds;

pub use kinds::{ControlKind, EventKind, ExecKind, Lifecycle, OrderType, Reason, ReconcilePolicy, RemovalPolicy, Side};

/// Fixed-point scale: 1.0 in price units is `PX_SCALE` in `*_px_e9` fields.
pub const PX_SCALE: i64 = 1_000_000_000;

/// The tag of a manual order ([`ControlKind::ManualOrder`], a hotkey): `MANU` in ASCII.
pub const MANUAL_TAG: u32 = 0x4D41_4E55;

/// Convert a fixed-point price to `f64` (for math that needs floats; never for comparisons that
/// must be exact).
#[inline]
pub fn px_to_f64(px_e9: i64) -> f64 {
    px_e9 as f64 / PX_SCALE as f64
}

/// Convert an `f64` price to fixed point, rounding to the nearest 1e-9. Returns `None` for NaN,
/// infinities and values out of range.
#[inline]
pub fn px_from_f64(px: f64) -> Option<i64> {
    let v = (px * PX_SCALE as f64).round();
    if v.is_finite() && v.abs() < 9.0e18 { Some(v as i64) } else { None }
}

/// Format a fixed-point price exactly, trimming trailing zeros but keeping at least `min_frac`
/// fractional digits (e.g. `3075210000000` -> `"3075.21"` with `min_frac = 2`).
pub fn fmt_px(px_e9: i64, min_frac: usize) -> String {
    let mut b = Vec::with_capacity(24);
    crate::text::write_px(&mut b, px_e9, min_frac);
    String::from_utf8(b).expect("ascii digits")
}

/// Parse a decimal string (`"3080.8"`, `"-1.5"`, `"12"`, `"1e3"` is rejected) into fixed point
/// exactly, without going through floating point. More than 9 fractional digits are rounded half
/// away from zero. Returns `None` for anything that is not a plain decimal number.
pub fn parse_px(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_s, frac_s) = match body.find('.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    if int_s.is_empty() && frac_s.is_empty() {
        return None;
    }
    if !int_s.bytes().all(|b| b.is_ascii_digit()) || !frac_s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut int: i64 = 0;
    for b in int_s.bytes() {
        int = int.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let mut frac: i64 = 0;
    let mut digits = 0;
    let mut round_up = false;
    for (i, b) in frac_s.bytes().enumerate() {
        if i < 9 {
            frac = frac * 10 + i64::from(b - b'0');
            digits += 1;
        } else if i == 9 {
            round_up = b >= b'5';
        }
    }
    while digits < 9 {
        frac *= 10;
        digits += 1;
    }
    let mut v = int.checked_mul(PX_SCALE)?.checked_add(frac)?;
    if round_up {
        v = v.checked_add(1)?;
    }
    Some(if neg { -v } else { v })
}

/// Index of a symbol in the run's [`crate::symbols::SymbolTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Pod, Zeroable)]
#[repr(transparent)]
pub struct SymbolId(pub u32);

/// A nanosecond timestamp, UTC, since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Pod, Zeroable)]
#[repr(transparent)]
pub struct TsNs(pub i64);

/// Order id, unique in a run. Assigned by the shard that owns the symbol:
/// `(symbol id + 1) << 32 | per-symbol counter`, so it is deterministic without coordination.
/// Risk-originated orders use symbol bits 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Pod, Zeroable)]
#[repr(transparent)]
pub struct OrderId(pub u64);

impl OrderId {
    /// Build the id of the `n`-th order of `symbol`.
    pub fn for_symbol(symbol: SymbolId, n: u32) -> Self {
        OrderId((u64::from(symbol.0) + 1) << 32 | u64::from(n))
    }
    /// Build the id of the `n`-th order created by the risk stage.
    pub fn for_risk(n: u32) -> Self {
        OrderId(u64::from(n))
    }
    /// Build the id of the `n`-th order taken over from the broker ([`ControlKind::AdoptOrder`]):
    /// in risk's space (no symbol bits) from 2^31 up, which risk's own counter never reaches.
    pub fn adopted(n: u32) -> Self {
        OrderId(u64::from(n | 0x8000_0000))
    }
    /// True for an id made by [`OrderId::adopted`].
    pub fn is_adopted(self) -> bool {
        self.0 >> 32 == 0 && self.0 & 0x8000_0000 != 0
    }
    /// The symbol a strategy order belongs to (`None` for risk's own orders).
    pub fn symbol(self) -> Option<SymbolId> {
        let hi = self.0 >> 32;
        (hi > 0).then(|| SymbolId((hi - 1) as u32))
    }
    /// The per-symbol (or per-risk) order number.
    pub fn number(self) -> u32 {
        self.0 as u32
    }
    /// The id a broker sees (its client order id): `<session>-<readable>`, e.g.
    /// `bt-3f2a9c01-SP500-12`. Unique across runs and restarts as long as sessions are.
    pub fn client_order_id(self, session: &str, symbol_name: &str) -> String {
        let mut b = Vec::with_capacity(session.len() + symbol_name.len() + 12);
        b.extend_from_slice(session.as_bytes());
        b.push(b'-');
        self.write_readable(&mut b, symbol_name);
        String::from_utf8(b).unwrap_or_default()
    }

    /// Append the readable form: `<SYMBOL>-<n>` for a strategy's order, `risk-<n>` for risk's own
    /// (e.g. `SP500-12`). With a session prefix (`<session>-SP500-12`) it is a broker client order
    /// id unique across runs and restarts.
    pub fn write_readable(self, out: &mut Vec<u8>, symbol_name: &str) {
        match self.symbol() {
            Some(_) => out.extend_from_slice(symbol_name.as_bytes()),
            None => out.extend_from_slice(b"risk"),
        }
        out.push(b'-');
        crate::text::write_u64(out, u64::from(self.number()));
    }
}

/// A session id for order ids: `<prefix>-<8 hex digits of the XXH3 of `seed`>`. A backtest
/// derives it from its inputs (config, data checksums, strategy), so a replay gets the same ids; a
/// live run from its start time and host, so restarts never reuse one.
pub fn session_id(prefix: &str, seed: &[u8]) -> String {
    format!("{prefix}-{:08x}", xxhash_rust::xxh3::xxh3_64(seed) as u32)
}

/// Bar interval. Stored as seconds in files and as a compact code in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// Length of the bar in seconds (1 for 1 s bars, 60 for 1 min bars, 86_400 for daily bars).
    pub secs: u32,
}

impl Interval {
    /// One-second bars.
    pub const S1: Interval = Interval { secs: 1 };
    /// One-minute bars.
    pub const M1: Interval = Interval { secs: 60 };
    /// One-hour bars.
    pub const H1: Interval = Interval { secs: 3600 };
    /// Daily bars.
    pub const D1: Interval = Interval { secs: 86_400 };

    /// Length in nanoseconds.
    pub fn nanos(self) -> i64 {
        i64::from(self.secs) * 1_000_000_000
    }

    /// Parse `1s`, `1m`, `5m`, `1h`, `1d` (and bare seconds like `60`).
    pub fn parse(s: &str) -> Option<Interval> {
        let s = s.trim();
        let (num, mult) = match s.as_bytes().last()? {
            b's' => (&s[..s.len() - 1], 1),
            b'm' => (&s[..s.len() - 1], 60),
            b'h' => (&s[..s.len() - 1], 3600),
            b'd' => (&s[..s.len() - 1], 86_400),
            _ => (s, 1),
        };
        let n: u32 = num.parse().ok()?;
        let secs = n.checked_mul(mult)?;
        (secs > 0).then_some(Interval { secs })
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.secs;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// An OHLCV bar: the record stored in bar files (48 bytes) and carried in events.
/// `ts_event_ns` is the bar's start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Bar {
    /// Bar start, ns since the epoch, UTC.
    pub ts_event_ns: i64,
    /// Open price, 1e-9 units.
    pub open_px_e9: i64,
    /// High price, 1e-9 units.
    pub high_px_e9: i64,
    /// Low price, 1e-9 units.
    pub low_px_e9: i64,
    /// Close price, 1e-9 units.
    pub close_px_e9: i64,
    /// Volume in shares (0 is valid: index data carries no volume).
    pub volume: u64,
}
const _: () = assert!(std::mem::size_of::<Bar>() == 48);

/// Why a bar fails validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarFault {
    /// A price is zero or negative.
    NonPositivePrice,
    /// `high < low`.
    HighBelowLow,
    /// Open or close lies outside `[low, high]`.
    OutsideRange,
}

impl BarFault {
    /// Short stable name, used in error messages and reject counters.
    pub fn as_str(self) -> &'static str {
        match self {
            BarFault::NonPositivePrice => "non-positive price",
            BarFault::HighBelowLow => "high below low",
            BarFault::OutsideRange => "open/close outside [low, high]",
        }
    }
}

impl Bar {
    /// Check the price invariants every bar must hold.
    pub fn validate(&self) -> Result<(), BarFault> {
        if self.open_px_e9 <= 0 || self.high_px_e9 <= 0 || self.low_px_e9 <= 0 || self.close_px_e9 <= 0 {
            return Err(BarFault::NonPositivePrice);
        }
        if self.high_px_e9 < self.low_px_e9 {
            return Err(BarFault::HighBelowLow);
        }
        let r = self.low_px_e9..=self.high_px_e9;
        if !r.contains(&self.open_px_e9) || !r.contains(&self.close_px_e9) {
            return Err(BarFault::OutsideRange);
        }
        Ok(())
    }
}

/// Top of book quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Quote {
    /// Exchange time of the quote, ns UTC.
    pub ts_event_ns: i64,
    /// Best bid, 1e-9 units.
    pub bid_px_e9: i64,
    /// Best ask, 1e-9 units.
    pub ask_px_e9: i64,
    /// Bid size in shares.
    pub bid_size: u32,
    /// Ask size in shares.
    pub ask_size: u32,
}
const _: () = assert!(std::mem::size_of::<Quote>() == 32);

/// A trade print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Trade {
    /// Exchange time of the trade, ns UTC.
    pub ts_event_ns: i64,
    /// Trade price, 1e-9 units.
    pub px_e9: i64,
    /// Size in shares.
    pub size: u64,
    /// Venue trade id (0 when unknown).
    pub trade_id: u64,
}
const _: () = assert!(std::mem::size_of::<Trade>() == 32);

/// An order as a strategy asks for it (an intent) and as risk approves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Order {
    /// Run-unique order id.
    pub order_id: OrderId,
    /// Limit price for limit orders, 1e-9 units (0 otherwise).
    pub limit_px_e9: i64,
    /// Stop price for stop orders, 1e-9 units (0 otherwise).
    pub stop_px_e9: i64,
    /// Cancel the order if still working this many ns after it was placed (0 = good till canceled).
    pub timeout_ns: i64,
    /// Symbol.
    pub symbol: SymbolId,
    /// Quantity in shares (> 0).
    pub qty: u32,
    /// Raw [`Side`].
    pub side: u8,
    /// Raw [`OrderType`].
    pub order_type: u8,
    /// Non-zero when the order only reduces a position (exits, flattening).
    pub reduce_only: u8,
    /// Reserved, zero.
    pub _pad: u8,
    /// The strategy's own tag, echoed back in reports.
    pub tag: u32,
}
const _: () = assert!(std::mem::size_of::<Order>() == 48);

impl Order {
    /// Decoded side (orders are validated before they enter the pipeline).
    pub fn side(&self) -> Option<Side> {
        Side::from_raw(self.side)
    }
    /// Decoded order type.
    pub fn kind(&self) -> Option<OrderType> {
        OrderType::from_raw(self.order_type)
    }
}

/// An execution event: accepted, (partially) filled, canceled, rejected, expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct ExecReport {
    /// When it happened (event time), ns UTC.
    pub ts_event_ns: i64,
    /// The order it concerns.
    pub order_id: OrderId,
    /// Fill price (fills only), 1e-9 units.
    pub fill_px_e9: i64,
    /// Commission charged on this fill, 1e-9 USD.
    pub commission_e9: i64,
    /// Symbol.
    pub symbol: SymbolId,
    /// Shares filled by this event.
    pub fill_qty: u32,
    /// Shares still working after this event.
    pub leaves_qty: u32,
    /// Raw [`ExecKind`].
    pub kind: u8,
    /// Raw [`Side`].
    pub side: u8,
    /// Raw [`Reason`].
    pub reason: u16,
}
const _: () = assert!(std::mem::size_of::<ExecReport>() == 48);

impl ExecReport {
    /// Decoded kind.
    pub fn exec_kind(&self) -> Option<ExecKind> {
        ExecKind::from_raw(self.kind)
    }
    /// Decoded side.
    pub fn exec_side(&self) -> Option<Side> {
        Side::from_raw(self.side)
    }
    /// Decoded reason.
    pub fn exec_reason(&self) -> Option<Reason> {
        Reason::from_raw(self.reason)
    }
}

/// A symbol name packed into 32 bytes (NUL padded), as carried by `AddSymbol` events.
pub fn pack_name(name: &str) -> [i64; 4] {
    let mut b = [0u8; 32];
    let n = name.len().min(32);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    bytemuck::cast(b)
}

/// The name packed by [`pack_name`] (`None` when it is not UTF-8).
pub fn unpack_name(args: &[i64; 4]) -> Option<&str> {
    let b: &[u8; 32] = bytemuck::cast_ref(args);
    let n = b.iter().position(|&c| c == 0).unwrap_or(32);
    std::str::from_utf8(&b[..n]).ok()
}

/// A control event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Control {
    /// Event time, ns UTC.
    pub ts_event_ns: i64,
    /// Raw [`ControlKind`].
    pub kind: u8,
    /// Reserved.
    pub _pad: [u8; 7],
    /// Command arguments (meaning depends on `kind`).
    pub args: [i64; 4],
}
const _: () = assert!(std::mem::size_of::<Control>() == 48);

/// Most bar references one [`EventKind::BarRefs`] slot carries.
pub const MAX_BAR_REFS: usize = 6;

/// The 64-byte slot of the main ring: a small header and a 48-byte payload holding one record.
/// Its sequence number is its position in the ring (every consumer counts it), so it is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct Event {
    /// When the process received the input, ns UTC (in backtests: the bar's end time).
    pub ts_recv_ns: i64,
    /// Symbol (unused for control events).
    pub symbol: SymbolId,
    /// Raw [`EventKind`].
    pub kind: u8,
    /// Reserved, zero.
    pub _pad: u8,
    /// Bar interval in seconds for bars whose interval fits 16 bits, else 0 (see the symbol table).
    pub interval_s: u16,
    /// The record, interpreted according to `kind`.
    pub payload: [u64; 6],
}
const _: () = assert!(std::mem::size_of::<Event>() == 64);

impl Event {
    /// Build a bar event.
    #[inline]
    pub fn bar(symbol: SymbolId, bar: &Bar, interval_s: u32, ts_recv_ns: i64) -> Self {
        Event {
            ts_recv_ns,
            symbol,
            kind: EventKind::Bar.raw(),
            _pad: 0,
            interval_s: u16::try_from(interval_s).unwrap_or(0),
            payload: bytemuck::cast(*bar),
        }
    }
    /// Build a quote event.
    pub fn quote(symbol: SymbolId, q: &Quote, ts_recv_ns: i64) -> Self {
        let mut payload = [0u64; 6];
        payload[..4].copy_from_slice(&bytemuck::cast::<Quote, [u64; 4]>(*q));
        Event { ts_recv_ns, symbol, kind: EventKind::Quote.raw(), _pad: 0, interval_s: 0, payload }
    }
    /// Build a trade event.
    pub fn trade(symbol: SymbolId, t: &Trade, ts_recv_ns: i64) -> Self {
        let mut payload = [0u64; 6];
        payload[..4].copy_from_slice(&bytemuck::cast::<Trade, [u64; 4]>(*t));
        Event { ts_recv_ns, symbol, kind: EventKind::Trade.raw(), _pad: 0, interval_s: 0, payload }
    }
    /// Build an execution-report event (live venues report through the sequencer).
    pub fn exec(r: &ExecReport, ts_recv_ns: i64) -> Self {
        Event {
            ts_recv_ns,
            symbol: r.symbol,
            kind: EventKind::Exec.raw(),
            _pad: 0,
            interval_s: 0,
            payload: bytemuck::cast(*r),
        }
    }
    /// Build a control event.
    pub fn control(kind: ControlKind, ts_event_ns: i64, args: [i64; 4]) -> Self {
        let c = Control { ts_event_ns, kind: kind.raw(), _pad: [0; 7], args };
        Event {
            ts_recv_ns: ts_event_ns,
            symbol: SymbolId(u32::MAX),
            kind: EventKind::Control.raw(),
            _pad: 0,
            interval_s: 0,
            payload: bytemuck::cast(c),
        }
    }
    /// Build a clock tick at `ts_ns` (`wall`: from the wall clock, else from event time).
    pub fn timer(ts_ns: i64, wall: bool) -> Self {
        let mut payload = [0u64; 6];
        payload[0] = ts_ns as u64;
        payload[1] = u64::from(wall);
        Event {
            ts_recv_ns: ts_ns,
            symbol: SymbolId(u32::MAX),
            kind: EventKind::Timer.raw(),
            _pad: 0,
            interval_s: 0,
            payload,
        }
    }
    /// Add `symbol` (its id, chosen by whoever owns the symbol table) named `name` to the universe.
    pub fn add_symbol(symbol: SymbolId, name: &str, ts_ns: i64) -> Self {
        let mut e = Event::control(ControlKind::AddSymbol, ts_ns, pack_name(name));
        e.symbol = symbol;
        e
    }
    /// A manual order (a hotkey) for `symbol`; see [`ControlKind::ManualOrder`].
    #[allow(clippy::too_many_arguments)] // an order's fields
    pub fn manual_order(
        symbol: SymbolId,
        side: Side,
        order_type: OrderType,
        qty: u32,
        limit_px_e9: i64,
        stop_px_e9: i64,
        ts_ns: i64,
    ) -> Self {
        let a0 = i64::from(qty) | (i64::from(side.raw()) << 32) | (i64::from(order_type.raw()) << 40);
        let mut e = Event::control(ControlKind::ManualOrder, ts_ns, [a0, limit_px_e9, stop_px_e9, 0]);
        e.symbol = symbol;
        e
    }
    /// Flatten `symbol` by hand (a hotkey): cancel its orders, close its position.
    pub fn flatten(symbol: SymbolId, ts_ns: i64) -> Self {
        let mut e = Event::control(ControlKind::Flatten, ts_ns, [0; 4]);
        e.symbol = symbol;
        e
    }
    /// Cancel every working order of `symbol` by hand (a hotkey).
    pub fn cancel_all(symbol: SymbolId, ts_ns: i64) -> Self {
        let mut e = Event::control(ControlKind::CancelAll, ts_ns, [0; 4]);
        e.symbol = symbol;
        e
    }
    /// The broker's position in `symbol` after a reconcile; see [`ControlKind::Reconcile`].
    pub fn reconcile(symbol: SymbolId, broker_qty: i64, avg_px_e9: i64, policy: ReconcilePolicy, ts_ns: i64) -> Self {
        let args = [broker_qty, avg_px_e9, i64::from(policy.raw()), 0];
        let mut e = Event::control(ControlKind::Reconcile, ts_ns, args);
        e.symbol = symbol;
        e
    }
    /// Take over an order working at the broker; see [`ControlKind::AdoptOrder`]. `order.qty` is
    /// what is left of it; its id should come from [`OrderId::adopted`].
    pub fn adopt_order(order: &Order, ts_ns: i64) -> Self {
        let a0 = i64::from(order.qty) | (i64::from(order.side) << 32) | (i64::from(order.order_type) << 40);
        let args = [a0, order.limit_px_e9, order.stop_px_e9, order.order_id.0 as i64];
        let mut e = Event::control(ControlKind::AdoptOrder, ts_ns, args);
        e.symbol = order.symbol;
        e
    }
    /// Stop new entries for the account (`Some(reason)`), or let them through again (`None`);
    /// see [`ControlKind::Halt`].
    pub fn halt(reason: Option<Reason>, ts_ns: i64) -> Self {
        Event::control(ControlKind::Halt, ts_ns, [reason.map_or(0, |r| i64::from(r.raw())), 0, 0, 0])
    }
    /// Remove `symbol` from the universe with `policy`.
    pub fn remove_symbol(symbol: SymbolId, policy: RemovalPolicy, ts_ns: i64) -> Self {
        let mut e = Event::control(ControlKind::RemoveSymbol, ts_ns, [i64::from(policy.raw()), 0, 0, 0]);
        e.symbol = symbol;
        e
    }
    /// Decoded kind (`None` for an unknown raw value).
    #[inline]
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::from_raw(self.kind)
    }
    /// The bar, if this is a bar event.
    #[inline]
    pub fn as_bar(&self) -> Option<&Bar> {
        (self.kind == EventKind::Bar as u8).then(|| bytemuck::cast_ref(&self.payload))
    }
    /// The quote, if this is a quote event.
    #[inline]
    pub fn as_quote(&self) -> Option<&Quote> {
        (self.kind == EventKind::Quote as u8).then(|| bytemuck::from_bytes(&bytemuck::bytes_of(&self.payload)[..32]))
    }
    /// The trade, if this is a trade event.
    #[inline]
    pub fn as_trade(&self) -> Option<&Trade> {
        (self.kind == EventKind::Trade as u8).then(|| bytemuck::from_bytes(&bytemuck::bytes_of(&self.payload)[..32]))
    }
    /// The execution report, if this is an exec event.
    #[inline]
    pub fn as_exec(&self) -> Option<&ExecReport> {
        (self.kind == EventKind::Exec as u8).then(|| bytemuck::cast_ref(&self.payload))
    }
    /// The control command, if this is a control event.
    #[inline]
    pub fn as_control(&self) -> Option<&Control> {
        (self.kind == EventKind::Control as u8).then(|| bytemuck::cast_ref(&self.payload))
    }
    /// Event time of whatever the event carries (every payload starts with `ts_event_ns`).
    #[inline]
    pub fn ts_event_ns(&self) -> i64 {
        self.payload[0] as i64
    }
}

#[cfg(test)]
mod tests;
