//! The small enums that travel inside records as raw integers: each is decoded through a checked
//! conversion that rejects unknown values (count and reject them; never transmute).

macro_rules! checked_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name { $($(#[$vm])* $var = $val),+ }
        impl $name {
            /// Checked decode from the raw value; `None` for unknown values (count and reject them).
            #[inline]
            pub fn from_raw(v: $repr) -> Option<Self> {
                match v { $($val => Some($name::$var),)+ _ => None }
            }
            /// The raw value stored in records.
            #[inline]
            pub fn raw(self) -> $repr { self as $repr }
        }
    };
}

checked_enum! {
    /// Order side.
    Side: u8 {
        /// Buy.
        Buy = 1,
        /// Sell.
        Sell = 2,
    }
}

impl Side {
    /// +1 for buys, -1 for sells.
    #[inline]
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
    /// Lower-case name (`buy`, `sell`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

checked_enum! {
    /// Order type.
    OrderType: u8 {
        /// Fills at the next bar's open (backtest) or at the market (live).
        Market = 1,
        /// Fills at the limit price or better.
        Limit = 2,
        /// Becomes a market order when the stop price trades.
        Stop = 3,
    }
}

checked_enum! {
    /// Kind of execution event.
    ExecKind: u8 {
        /// The venue accepted the order; it is working.
        Accepted = 1,
        /// Part of the order filled; the rest is working.
        PartiallyFilled = 2,
        /// The order filled completely.
        Filled = 3,
        /// The order was canceled (by request, end of run or policy).
        Canceled = 4,
        /// Risk or the venue rejected the order; `reason` says why.
        Rejected = 5,
        /// The order's timeout passed unfilled.
        Expired = 6,
        /// The venue changed the order's quantity or prices (`leaves_qty` is the new rest).
        Replaced = 7,
        /// The venue refused a cancel or replace; the order is unchanged.
        CancelRejected = 8,
        /// The venue refused a replace; the order is unchanged.
        ReplaceRejected = 9,
    }
}

impl ExecKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecKind::Accepted => "accepted",
            ExecKind::PartiallyFilled => "partially_filled",
            ExecKind::Filled => "filled",
            ExecKind::Canceled => "canceled",
            ExecKind::Rejected => "rejected",
            ExecKind::Expired => "expired",
            ExecKind::Replaced => "replaced",
            ExecKind::CancelRejected => "cancel_rejected",
            ExecKind::ReplaceRejected => "replace_rejected",
        }
    }
    /// True for `PartiallyFilled` and `Filled`.
    pub fn is_fill(self) -> bool {
        matches!(self, ExecKind::PartiallyFilled | ExecKind::Filled)
    }
    /// True when the order is done (no longer working).
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecKind::Filled | ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired)
    }
}

checked_enum! {
    /// Why risk (or the venue) rejected or canceled an order.
    Reason: u16 {
        /// No reason (accepted, filled).
        None = 0,
        /// The order would take the symbol past its maximum position.
        MaxPosition = 1,
        /// The order would take gross notional past the limit.
        MaxGrossNotional = 2,
        /// Too many open orders.
        MaxOpenOrders = 3,
        /// Order rate limit hit.
        MaxOrderRate = 4,
        /// Trading halted for the day after the daily loss limit.
        DailyLossHalt = 5,
        /// Another symbol already has an active trade ("one active trade at a time").
        OneActiveTrade = 6,
        /// The order quantity is zero or the price is missing/invalid.
        InvalidOrder = 7,
        /// End of data: working orders are canceled.
        EndOfRun = 8,
        /// Canceled at the strategy's request.
        Requested = 9,
        /// The order's symbol is faulted or unknown.
        SymbolFaulted = 10,
        /// The symbol is being removed from the universe: only orders that reduce its position pass.
        SymbolRemoving = 11,
        /// The venue refused the order or the cancel.
        VenueRejected = 12,
        /// The symbol is still warming up on history (`risk.warmup_gate`): no orders until its
        /// `LiveStart`.
        WarmUp = 13,
        /// The order's timeout passed while it was still working: execution canceled it (a
        /// broker venue; the simulated venue expires such orders itself).
        Timeout = 14,
        /// The broker refused the order (its message is in the gateway's log).
        BrokerRejected = 15,
        /// The broker refused the order for insufficient buying power.
        BuyingPower = 16,
        /// The broker found the order's parameters invalid (HTTP 422).
        BrokerInvalid = 17,
        /// The broker kept answering 429 (rate limited) until the gateway gave up.
        RateLimited = 18,
        /// The broker could not be reached (transport errors, 5xx) after retries.
        BrokerUnavailable = 19,
        /// The broker's order stream is down: orders are refused (and, with
        /// `cancel_on_disconnect`, working ones canceled) until it is back.
        Disconnected = 20,
        /// New orders are halted: a position mismatch with the broker under the `halt` policy,
        /// or a shutdown in progress ([`ControlKind::Halt`]).
        Halted = 21,
    }
}

impl Reason {
    /// Stable snake_case name used in journals and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::MaxPosition => "max_position",
            Reason::MaxGrossNotional => "max_gross_notional",
            Reason::MaxOpenOrders => "max_open_orders",
            Reason::MaxOrderRate => "max_order_rate",
            Reason::DailyLossHalt => "daily_loss_halt",
            Reason::OneActiveTrade => "one_active_trade",
            Reason::InvalidOrder => "invalid_order",
            Reason::EndOfRun => "end_of_run",
            Reason::Requested => "requested",
            Reason::SymbolFaulted => "symbol_faulted",
            Reason::SymbolRemoving => "symbol_removing",
            Reason::VenueRejected => "venue_rejected",
            Reason::WarmUp => "warm_up",
            Reason::Timeout => "timeout",
            Reason::BrokerRejected => "broker_rejected",
            Reason::BuyingPower => "buying_power",
            Reason::BrokerInvalid => "broker_invalid",
            Reason::RateLimited => "rate_limited",
            Reason::BrokerUnavailable => "broker_unavailable",
            Reason::Disconnected => "disconnected",
            Reason::Halted => "halted",
        }
    }
    /// True for the venue's own refusals (a broker's answer, a gateway that could not deliver),
    /// as opposed to risk's.
    pub fn is_venue(self) -> bool {
        matches!(
            self,
            Reason::VenueRejected
                | Reason::BrokerRejected
                | Reason::BuyingPower
                | Reason::BrokerInvalid
                | Reason::RateLimited
                | Reason::BrokerUnavailable
                | Reason::Disconnected
        )
    }
    /// All reasons, for counters.
    pub const ALL: [Reason; 22] = [
        Reason::None,
        Reason::MaxPosition,
        Reason::MaxGrossNotional,
        Reason::MaxOpenOrders,
        Reason::MaxOrderRate,
        Reason::DailyLossHalt,
        Reason::OneActiveTrade,
        Reason::InvalidOrder,
        Reason::EndOfRun,
        Reason::Requested,
        Reason::SymbolFaulted,
        Reason::SymbolRemoving,
        Reason::VenueRejected,
        Reason::WarmUp,
        Reason::Timeout,
        Reason::BrokerRejected,
        Reason::BuyingPower,
        Reason::BrokerInvalid,
        Reason::RateLimited,
        Reason::BrokerUnavailable,
        Reason::Disconnected,
        Reason::Halted,
    ];
}

checked_enum! {
    /// Control commands that travel through the sequencer like market data, so they are journaled
    /// and replayed in order.
    ControlKind: u8 {
        /// The source has no more data: strategies cancel working orders, positions are closed
        /// (backtest policy).
        EndOfData = 1,
        /// Stop: every stage passes it on, drains and exits.
        Shutdown = 2,
        /// Start of a new trading day (risk resets daily counters).
        SessionStart = 3,
        /// Add the event's symbol to the universe; the args hold its name (NUL padded).
        AddSymbol = 4,
        /// Remove the event's symbol; `args[0]` is the [`RemovalPolicy`].
        RemoveSymbol = 5,
        /// The event's symbol has had its warm-start history: what follows is live (a feed sends
        /// it after the history it pushed; with `risk.warmup_gate`, orders wait for it).
        LiveStart = 6,
        /// A manual order for the event's symbol (a hotkey): `args[0]` = qty | side << 32 |
        /// order type << 40, `args[1]` the limit price, `args[2]` the stop price (1e-9 units). It
        /// takes the same road as a strategy's order (risk, execution, journal); its reports reach
        /// the symbol's strategy with the tag [`crate::records::MANUAL_TAG`].
        ManualOrder = 7,
        /// Flatten the event's symbol by hand: cancel its working orders, close its position.
        Flatten = 8,
        /// Cancel every working order of the event's symbol by hand.
        CancelAll = 9,
        /// The broker's view of the event's symbol after a reconcile (the gateway sends it when
        /// the broker's position differs from what the run's fills add up to): `args[0]` the
        /// broker's position (signed shares), `args[1]` its average entry price (1e-9),
        /// `args[2]` the [`ReconcilePolicy`]. Risk and execution count the mismatch; `Adopt`
        /// takes the broker's position (as a fill of the difference at the average price),
        /// `Halt` refuses new entries from then on ([`Reason::Halted`]).
        Reconcile = 10,
        /// An order working at the broker that this run did not place in this session (found
        /// by its client order id at start, e.g. after a restart): execution and risk take it
        /// over as working, under `args[3]` as its order id. `args[0]` = leaves qty | side <<
        /// 32 | order type << 40, `args[1]` limit, `args[2]` stop price (as ManualOrder).
        AdoptOrder = 11,
        /// Stop (`args[0]` = a [`Reason`], e.g. `Halted`) or resume (`args[0]` = 0) new entries
        /// for the whole account; exits still pass. A paper run's shutdown sends it first.
        Halt = 12,
    }
}

checked_enum! {
    /// What a run does when the broker's position differs from its own ([`ControlKind::Reconcile`]).
    ReconcilePolicy: u8 {
        /// Take the broker's position and carry on (an alert is logged and counted).
        Adopt = 1,
        /// Refuse new entries until the run is restarted; exits still pass.
        Halt = 2,
    }
}

impl ReconcilePolicy {
    /// `adopt` / `halt`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcilePolicy::Adopt => "adopt",
            ReconcilePolicy::Halt => "halt",
        }
    }
}

checked_enum! {
    /// What happens to a symbol's position when it leaves the universe.
    RemovalPolicy: u8 {
        /// Cancel its working orders and flatten the position with a market order.
        Flatten = 1,
        /// Keep running its strategy (exits only) until it is flat with no working orders.
        ManageUntilFlat = 2,
    }
}

checked_enum! {
    /// A step in a symbol's life in the universe (journaled).
    Lifecycle: u8 {
        /// The symbol joined: its strategy was built.
        Added = 1,
        /// Removal started (flattening or managing until flat).
        Removing = 2,
        /// The symbol is gone: its strategy was dropped.
        Removed = 3,
        /// Its strategy panicked: orders canceled, no more callbacks.
        Faulted = 4,
    }
}

impl Lifecycle {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Added => "added",
            Lifecycle::Removing => "removing",
            Lifecycle::Removed => "removed",
            Lifecycle::Faulted => "faulted",
        }
    }
}

checked_enum! {
    /// What an [`Event`](super::Event) carries.
    EventKind: u8 {
        /// A [`Bar`](super::Bar).
        Bar = 1,
        /// A [`Quote`](super::Quote).
        Quote = 2,
        /// A [`Trade`](super::Trade).
        Trade = 3,
        /// An [`ExecReport`](super::ExecReport) from a live venue.
        Exec = 4,
        /// A [`Control`](super::Control) command.
        Control = 5,
        /// Up to six bars by reference into the run's mapped bar files (zero-copy replay): `_pad`
        /// holds the count, each payload word `stream << 48 | bar index`. Each reference is one
        /// logical bar event with its own sequence number; consumers resolve it in place.
        BarRefs = 6,
        /// A clock tick: `payload[0]` is its time, `payload[1]` 0 for event time, 1 for the wall
        /// clock. Ticks let timeouts and time-based exits fire without waiting for data.
        Timer = 7,
    }
}
