//! The run journal (`journal.rtj`): its file format and its decoded records.
//!
//! # Format (version 1, little-endian)
//! A 16-byte header, then fixed-size records to the end of the file:
//!
//! | bytes | header field |
//! |---|---|
//! | 0..8 | magic `RTJRNL\0\x01` ([`MAGIC`]) |
//! | 8..10 | version, u16 ([`VERSION`]; [`MIN_VERSION`] and later are read) |
//! | 10..12 | record size, u16 ([`RECORD_SIZE`] = 72) |
//! | 12..16 | reserved, zero |
//!
//! | bytes | record field |
//! |---|---|
//! | 0..8 | `seq` u64: sequence of the input event that caused the record |
//! | 8..16 | `ts` i64: ns since the epoch, UTC (per kind, below) |
//! | 16 | `kind` u8: a [`RecordKind`] |
//! | 17 | `sub` u8 (per kind) |
//! | 18..20 | `aux` u16 (per kind) |
//! | 20..24 | `symbol` u32: a [`SymbolId`] (`u32::MAX` for records of no symbol) |
//! | 24..72 | `payload` `[u64; 6]` (per kind) |
//!
//! Record kinds ([`RecordKind`]):
//! - 1 INPUT: an input event. `ts` = receive time, `sub` = [`EventKind`], `aux` = bar interval in
//!   seconds, payload = the event's payload ([`Bar`], [`Quote`], [`Trade`], [`ExecReport`] or a
//!   control command, see [`ControlCmd`]).
//! - 2 DECISION: risk's decision on a strategy's order. payload = the [`Order`], `aux` = the
//!   [`Reason`] (0 = accepted).
//! - 3 CANCEL: a strategy's cancel request. payload word 0 = the order id.
//! - 4 REPORT: an execution report. payload = the [`ExecReport`], `sub` = its [`ExecKind`], `aux` =
//!   its [`Reason`].
//! - 5 LIFECYCLE: a symbol joins or leaves the run. `sub` = [`Lifecycle`], `aux` = the removal
//!   policy (0 none, else a [`RemovalPolicy`]); for `added`, payload bytes 0..32 = the symbol's
//!   name, NUL padded.
//! - 6 TIMER: a clock tick. `ts` = the tick's time, `aux` = [`TimerClock`].
//!
//! Decoding never panics: unknown record kinds decode as [`Body::Unknown`] and unknown raw values
//! inside known kinds (an event kind, an execution kind, a reason, a control command) decode as
//! the `Unknown`/`None` cases of their fields, so a reader can print them raw and count them.

pub mod reader;

pub use reader::JournalReader;

pub use crate::records::{ControlKind, Lifecycle, RemovalPolicy};

use crate::records::{
    Bar, EventKind, ExecKind, ExecReport, Order, OrderId, Quote, Reason, SymbolId, Trade, unpack_name,
};
use std::path::PathBuf;

/// Journal file magic (8 bytes).
pub const MAGIC: [u8; 8] = *b"RTJRNL\0\x01";
/// The format version this build writes (the pipeline's `JOURNAL_VERSION`).
pub const VERSION: u16 = 2;
/// The oldest version this build reads. Version 1 has the same header and record layout, with
/// fewer record kinds and values (no LIFECYCLE or TIMER records, no add/remove symbol commands).
pub const MIN_VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_SIZE: usize = 16;
/// Record size in bytes.
pub const RECORD_SIZE: usize = 72;
/// The `symbol` field of records that concern no symbol (control inputs, timers).
pub const NO_SYMBOL: u32 = u32::MAX;

/// Why a journal file cannot be read. Every error names the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening or reading the file failed.
    #[error("{}: byte {offset}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Where reading failed.
        offset: u64,
        /// The cause.
        err: std::io::Error,
    },
    /// The file ends inside its 16-byte header.
    #[error("{}: byte {len}: truncated header ({len} of {HEADER_SIZE} bytes): not a complete ringtape journal", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Bytes present.
        len: usize,
    },
    /// The first 8 bytes are not [`MAGIC`].
    #[error("{}: byte 0: bad magic \"{found}\": not a ringtape journal (expected \"RTJRNL\\x00\\x01\")", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The bytes found, escaped.
        found: String,
    },
    /// A version this build does not read.
    #[error("{}: byte 8: journal version {found}, this build reads versions {MIN_VERSION} to {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u16,
    },
    /// A record size other than [`RECORD_SIZE`].
    #[error("{}: byte 10: record size {found}, expected {RECORD_SIZE}", path.display())]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// The size found.
        found: u16,
    },
    /// The file ends inside a record.
    #[error("{}: byte {offset}: truncated record {index} ({len} of {RECORD_SIZE} bytes)", path.display())]
    TruncatedRecord {
        /// The file.
        path: PathBuf,
        /// Offset of the record's first byte.
        offset: u64,
        /// Index of the record (0 = the first after the header).
        index: u64,
        /// Bytes present.
        len: usize,
    },
}

/// The kinds of journal record (the `kind` byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// An input event.
    Input = 1,
    /// Risk's decision on an order.
    Decision = 2,
    /// A cancel request.
    Cancel = 3,
    /// An execution report.
    Report = 4,
    /// A symbol lifecycle change.
    Lifecycle = 5,
    /// A clock tick.
    Timer = 6,
}

impl RecordKind {
    /// Checked decode; `None` for unknown values.
    pub fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            1 => RecordKind::Input,
            2 => RecordKind::Decision,
            3 => RecordKind::Cancel,
            4 => RecordKind::Report,
            5 => RecordKind::Lifecycle,
            6 => RecordKind::Timer,
            _ => return None,
        })
    }
    /// The raw value.
    pub fn raw(self) -> u8 {
        self as u8
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Input => "input",
            RecordKind::Decision => "decision",
            RecordKind::Cancel => "cancel",
            RecordKind::Report => "report",
            RecordKind::Lifecycle => "lifecycle",
            RecordKind::Timer => "timer",
        }
    }
}

/// Which clock a TIMER record's tick comes from (its `aux`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum TimerClock {
    /// Event time (backtests, replay).
    EventTime = 0,
    /// The wall clock (paper, live).
    WallClock = 1,
}

impl TimerClock {
    /// Checked decode; `None` for unknown values.
    pub fn from_raw(v: u16) -> Option<Self> {
        Some(match v {
            0 => TimerClock::EventTime,
            1 => TimerClock::WallClock,
            _ => return None,
        })
    }
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerClock::EventTime => "event_time",
            TimerClock::WallClock => "wall_clock",
        }
    }
}

/// The snake_case name of a control command.
pub fn control_name(k: ControlKind) -> &'static str {
    match k {
        ControlKind::EndOfData => "end_of_data",
        ControlKind::Shutdown => "shutdown",
        ControlKind::SessionStart => "session_start",
        ControlKind::AddSymbol => "add_symbol",
        ControlKind::RemoveSymbol => "remove_symbol",
        ControlKind::LiveStart => "live_start",
        ControlKind::ManualOrder => "manual_order",
        ControlKind::Flatten => "flatten",
        ControlKind::CancelAll => "cancel_all",
        ControlKind::Reconcile => "reconcile",
        ControlKind::AdoptOrder => "adopt_order",
        ControlKind::Halt => "halt",
    }
}

/// The snake_case name of a LIFECYCLE record's removal policy (its `aux`): `none` (0, not a
/// removal), `flatten`, `manage_until_flat`; `None` for an unknown value.
pub fn policy_name(aux: u16) -> Option<&'static str> {
    match u8::try_from(aux).ok().map(|v| (v, RemovalPolicy::from_raw(v))) {
        Some((0, _)) => Some("none"),
        Some((_, Some(RemovalPolicy::Flatten))) => Some("flatten"),
        Some((_, Some(RemovalPolicy::ManageUntilFlat))) => Some("manage_until_flat"),
        _ => None,
    }
}

/// A control command from an INPUT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlCmd {
    /// Event time, ns UTC.
    pub ts_event_ns: i64,
    /// The raw command kind.
    pub kind_raw: u8,
    /// The decoded kind (`None`: unknown).
    pub kind: Option<ControlKind>,
    /// Arguments (meaning per kind).
    pub args: [i64; 4],
}

impl ControlCmd {
    /// The removal policy of a `RemoveSymbol` command (`None` for other commands or an unknown
    /// policy).
    pub fn removal_policy(&self) -> Option<RemovalPolicy> {
        (self.kind == Some(ControlKind::RemoveSymbol))
            .then(|| u8::try_from(self.args[0]).ok().and_then(RemovalPolicy::from_raw))
            .flatten()
    }

    /// The symbol name an `AddSymbol` command carries in its args (`None` for other commands, an
    /// empty name or one that is not UTF-8).
    pub fn added_name(&self) -> Option<&str> {
        if self.kind != Some(ControlKind::AddSymbol) {
            return None;
        }
        unpack_name(&self.args).filter(|n| !n.is_empty())
    }
}

/// The event an INPUT record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A bar and its interval in seconds (0 when it does not fit 16 bits).
    Bar {
        /// The bar.
        bar: Bar,
        /// Interval, seconds.
        interval_s: u16,
    },
    /// A quote.
    Quote(Quote),
    /// A trade print.
    Trade(Trade),
    /// A venue's execution report.
    Exec(ExecReport),
    /// A control command.
    Control(ControlCmd),
    /// A clock tick carried as an input (the writer journals ticks as TIMER records instead).
    Timer {
        /// The tick's time, ns UTC.
        ts_ns: i64,
        /// Which clock (`None`: unknown raw value).
        clock: Option<TimerClock>,
    },
    /// Bar references (the journal normally holds the resolved bars): the raw words.
    BarRefs([u64; 6]),
    /// An unknown event kind (the raw `sub`).
    Unknown(u8),
}

/// A decoded record body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// An input event.
    Input(Input),
    /// Risk's decision.
    Decision {
        /// The order as the strategy asked for it.
        order: Order,
        /// `Some(Reason::None)` = accepted; `None` = an unknown raw reason (the record's `aux`).
        reason: Option<Reason>,
    },
    /// A cancel request.
    Cancel {
        /// The order to cancel.
        order_id: OrderId,
    },
    /// An execution report (its kind, side and reason decode through its own checked getters).
    Report(ExecReport),
    /// A symbol lifecycle change.
    Lifecycle {
        /// What changed (`None`: unknown raw `sub`).
        change: Option<Lifecycle>,
        /// The removal policy (`None`: 0, not a removal, or unknown: see [`policy_name`]).
        policy: Option<RemovalPolicy>,
        /// For `added`: the 32 raw name bytes, NUL padded (read them with [`name_from_bytes`] or
        /// [`Record::added_name`]).
        name: Option<[u8; 32]>,
    },
    /// A clock tick.
    Timer {
        /// Which clock (`None`: unknown raw `aux`).
        clock: Option<TimerClock>,
    },
    /// An unknown record kind: only the raw fields are meaningful.
    Unknown,
}

/// One journal record: the raw fields and the decoded body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence of the input event that caused it.
    pub seq: u64,
    /// Time, ns UTC (meaning per kind: see the module docs).
    pub ts_ns: i64,
    /// The raw kind byte.
    pub kind_raw: u8,
    /// The decoded kind (`None`: unknown; the body is then [`Body::Unknown`]).
    pub kind: Option<RecordKind>,
    /// The raw `sub` byte.
    pub sub: u8,
    /// The raw `aux` field.
    pub aux: u16,
    /// The symbol ([`NO_SYMBOL`] for records of no symbol).
    pub symbol: SymbolId,
    /// The raw payload.
    pub payload: [u64; 6],
    /// The decoded body.
    pub body: Body,
}

impl Record {
    /// Decode one 72-byte record. Never fails: unknown values decode as unknown (see the module docs).
    pub fn decode(b: &[u8; RECORD_SIZE]) -> Record {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let seq = u64_at(0);
        let ts_ns = u64_at(8) as i64;
        let kind_raw = b[16];
        let sub = b[17];
        let aux = u16::from_le_bytes([b[18], b[19]]);
        let symbol = SymbolId(u32::from_le_bytes([b[20], b[21], b[22], b[23]]));
        let mut payload = [0u64; 6];
        for (k, w) in payload.iter_mut().enumerate() {
            *w = u64_at(24 + 8 * k);
        }
        let kind = RecordKind::from_raw(kind_raw);
        let body = match kind {
            Some(RecordKind::Input) => Body::Input(decode_input(sub, aux, payload)),
            Some(RecordKind::Decision) => {
                Body::Decision { order: bytemuck::cast(payload), reason: Reason::from_raw(aux) }
            }
            Some(RecordKind::Cancel) => Body::Cancel { order_id: OrderId(payload[0]) },
            Some(RecordKind::Report) => Body::Report(bytemuck::cast(payload)),
            Some(RecordKind::Lifecycle) => {
                let change = Lifecycle::from_raw(sub);
                let name = (change == Some(Lifecycle::Added)).then(|| {
                    let bytes: [u8; 48] = bytemuck::cast(payload);
                    let mut name = [0u8; 32];
                    name.copy_from_slice(&bytes[..32]);
                    name
                });
                let policy = u8::try_from(aux).ok().and_then(RemovalPolicy::from_raw);
                Body::Lifecycle { change, policy, name }
            }
            Some(RecordKind::Timer) => Body::Timer { clock: TimerClock::from_raw(aux) },
            None => Body::Unknown,
        };
        Record { seq, ts_ns, kind_raw, kind, sub, aux, symbol, payload, body }
    }

    /// Encode back to the 72 bytes [`Record::decode`] read (the raw fields; the body is derived).
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[16] = self.kind_raw;
        out[17] = self.sub;
        out[18..20].copy_from_slice(&self.aux.to_le_bytes());
        out[20..24].copy_from_slice(&self.symbol.0.to_le_bytes());
        for (k, w) in self.payload.iter().enumerate() {
            out[24 + 8 * k..32 + 8 * k].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The symbol name of a LIFECYCLE `added` record.
    pub fn added_name(&self) -> Option<&str> {
        match &self.body {
            Body::Lifecycle { name: Some(b), .. } => name_from_bytes(b),
            _ => None,
        }
    }

    /// True for a REPORT record that is a (partial) fill.
    pub fn is_fill(&self) -> bool {
        matches!(&self.body, Body::Report(r) if r.exec_kind().is_some_and(ExecKind::is_fill))
    }

    /// True for a rejection: a DECISION that is not an acceptance, or a `rejected` REPORT.
    pub fn is_reject(&self) -> bool {
        match &self.body {
            Body::Decision { reason, .. } => *reason != Some(Reason::None),
            Body::Report(r) => r.exec_kind() == Some(ExecKind::Rejected),
            _ => false,
        }
    }

    /// True when the record holds something this build's format does not know: an unknown record
    /// kind, event kind, control command, execution kind, reason, lifecycle change, policy or
    /// clock. (An order's unknown side or type is not counted: invalid orders are data, rejected
    /// by risk and journaled as they came.)
    pub fn has_unknown(&self) -> bool {
        match &self.body {
            Body::Unknown => true,
            Body::Input(Input::Unknown(_)) => true,
            Body::Input(Input::Timer { clock, .. }) => clock.is_none(),
            Body::Input(Input::Control(c)) => c.kind.is_none(),
            // A bad side or order type is data (risk rejects such orders as invalid and says so),
            // not a format this build does not know.
            Body::Input(Input::Exec(r)) | Body::Report(r) => r.exec_kind().is_none() || r.exec_reason().is_none(),
            Body::Decision { reason, .. } => reason.is_none(),
            Body::Lifecycle { change, .. } => change.is_none() || policy_name(self.aux).is_none(),
            Body::Timer { clock } => clock.is_none(),
            Body::Input(_) | Body::Cancel { .. } => false,
        }
    }
}

/// The name in a LIFECYCLE `added` record's 32 name bytes (NUL padding removed; `None` when empty
/// or not UTF-8).
pub fn name_from_bytes(b: &[u8; 32]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).ok().filter(|s| !s.is_empty())
}

fn decode_input(sub: u8, aux: u16, payload: [u64; 6]) -> Input {
    let first32 = |p: [u64; 6]| -> [u64; 4] { [p[0], p[1], p[2], p[3]] };
    match EventKind::from_raw(sub) {
        Some(EventKind::Bar) => Input::Bar { bar: bytemuck::cast(payload), interval_s: aux },
        Some(EventKind::Quote) => Input::Quote(bytemuck::cast(first32(payload))),
        Some(EventKind::Trade) => Input::Trade(bytemuck::cast(first32(payload))),
        Some(EventKind::Exec) => Input::Exec(bytemuck::cast(payload)),
        Some(EventKind::Control) => {
            let kind_raw = (payload[1] & 0xff) as u8;
            Input::Control(ControlCmd {
                ts_event_ns: payload[0] as i64,
                kind_raw,
                kind: ControlKind::from_raw(kind_raw),
                args: [payload[2] as i64, payload[3] as i64, payload[4] as i64, payload[5] as i64],
            })
        }
        Some(EventKind::BarRefs) => Input::BarRefs(payload),
        Some(EventKind::Timer) => Input::Timer {
            ts_ns: payload[0] as i64,
            clock: u16::try_from(payload[1]).ok().and_then(TimerClock::from_raw),
        },
        None => Input::Unknown(sub),
    }
}

/// Format an order id for people: `S<symbol id>-<n>` for a strategy's order (the `n`-th order of
/// that symbol; ids are `(symbol id + 1) << 32 | n`, see [`OrderId::for_symbol`]) and `risk-<n>` for
/// risk's own orders (`n`, see [`OrderId::for_risk`]). Journals and `fills.csv` print ids this way.
///
/// ```
/// use engine::journal::fmt_order_id;
/// use engine::records::{OrderId, SymbolId};
/// assert_eq!(fmt_order_id(OrderId::for_symbol(SymbolId(0), 7).0), "S0-7");
/// assert_eq!(fmt_order_id(OrderId::for_risk(3).0), "risk-3");
/// ```
pub fn fmt_order_id(id: u64) -> String {
    let (hi, n) = (id >> 32, id & 0xffff_ffff);
    if hi == 0 { format!("risk-{n}") } else { format!("S{}-{n}", hi - 1) }
}

#[cfg(test)]
mod tests;
