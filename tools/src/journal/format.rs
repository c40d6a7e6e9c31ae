//! How one journal record reads: its fields decoded and named, as a text line or a JSON object.

use super::*;

/// A field's value.
#[derive(Debug, Clone)]
pub(super) enum V {
    S(String),
    I(i64),
    U(u64),
    /// A fixed-point price (exact decimal).
    Px(i64),
    /// A timestamp, ns UTC.
    Ts(i64),
    Flag(bool),
    Words([u64; 6]),
}

/// How a field shows in text: `value`, `key=value`, or a prefix then the value (`@ 3080.80`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Show {
    Bare,
    Kv,
    Prefix(&'static str),
}

#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) key: &'static str,
    pub(super) val: V,
    pub(super) show: Show,
}

pub(super) fn bare(key: &'static str, val: V) -> Field {
    Field { key, val, show: Show::Bare }
}

pub(super) fn kv(key: &'static str, val: V) -> Field {
    Field { key, val, show: Show::Kv }
}

pub(super) fn name_or_raw(name: Option<&'static str>, raw: impl std::fmt::Display) -> V {
    V::S(name.map_or_else(|| format!("unknown({raw})"), str::to_string))
}

pub(super) fn side(raw: u8) -> V {
    name_or_raw(Side::from_raw(raw).map(Side::as_str), raw)
}

pub(super) fn order_type(raw: u8) -> V {
    let name = OrderType::from_raw(raw).map(|t| match t {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
        OrderType::Stop => "stop",
    });
    name_or_raw(name, raw)
}

pub(super) fn reason(raw: u16) -> V {
    name_or_raw(Reason::from_raw(raw).map(Reason::as_str), raw)
}

pub(super) fn order_fields(o: &Order, reason_raw: u16, names: &Names, f: &mut Vec<Field>) {
    let accepted = reason_raw == Reason::None.raw();
    f.push(bare("status", V::S(if accepted { "accepted" } else { "rejected" }.into())));
    if !accepted {
        f.push(kv("reason", reason(reason_raw)));
    }
    f.push(bare("side", side(o.side)));
    f.push(bare("qty", V::U(u64::from(o.qty))));
    f.push(bare("type", order_type(o.order_type)));
    if o.limit_px_e9 != 0 {
        f.push(kv("limit", V::Px(o.limit_px_e9)));
    }
    if o.stop_px_e9 != 0 {
        f.push(kv("stop", V::Px(o.stop_px_e9)));
    }
    if o.reduce_only != 0 {
        f.push(Field { key: "reduce_only", val: V::Flag(true), show: Show::Bare });
    }
    if o.timeout_ns != 0 {
        f.push(kv("timeout_ns", V::I(o.timeout_ns)));
    }
    f.push(kv("id", V::S(order_id_text(o.order_id, names))));
    if o.tag != 0 {
        f.push(kv("tag", V::U(u64::from(o.tag))));
    }
}

pub(super) fn report_fields(r: &ExecReport, names: &Names, f: &mut Vec<Field>) {
    let kind = ExecKind::from_raw(r.kind);
    f.push(bare("status", name_or_raw(kind.map(ExecKind::as_str), r.kind)));
    f.push(bare("side", side(r.side)));
    if kind.is_none_or(ExecKind::is_fill) {
        f.push(bare("qty", V::U(u64::from(r.fill_qty))));
        f.push(Field { key: "price", val: V::Px(r.fill_px_e9), show: Show::Prefix("@ ") });
        f.push(kv("commission", V::Px(r.commission_e9)));
    }
    f.push(kv("leaves", V::U(u64::from(r.leaves_qty))));
    if r.reason != Reason::None.raw() {
        f.push(kv("reason", reason(r.reason)));
    }
    f.push(kv("id", V::S(order_id_text(r.order_id, names))));
}

/// An order id as `fills.csv` prints it ([`OrderId::write_readable`]: `SP500-12`, `risk-3`);
/// `S<symbol id>-<n>` ([`fmt_order_id`]) for a symbol without a name.
pub(super) fn order_id_text(id: OrderId, names: &Names) -> String {
    let name = match id.symbol() {
        Some(s) => match names.get(s.0) {
            Some(n) => n,
            None => return fmt_order_id(id.0),
        },
        None => "",
    };
    let mut b = Vec::with_capacity(24);
    id.write_readable(&mut b, name);
    String::from_utf8_lossy(&b).into_owned()
}

/// The kind name and the fields of a record.
pub(super) fn describe(r: &Record, names: &Names) -> (String, Vec<Field>) {
    let mut f = Vec::with_capacity(12);
    let kind = r.kind.map_or_else(|| format!("unknown({})", r.kind_raw), |k| k.as_str().to_string());
    match &r.body {
        Body::Input(input) => match input {
            Input::Bar { bar, interval_s } => {
                f.push(bare("event", V::S("bar".into())));
                let iv =
                    if *interval_s > 0 { Interval { secs: u32::from(*interval_s) }.to_string() } else { "?".into() };
                f.push(bare("interval", V::S(iv)));
                f.push(kv("bar_ts", V::Ts(bar.ts_event_ns)));
                f.push(kv("open", V::Px(bar.open_px_e9)));
                f.push(kv("high", V::Px(bar.high_px_e9)));
                f.push(kv("low", V::Px(bar.low_px_e9)));
                f.push(kv("close", V::Px(bar.close_px_e9)));
                f.push(kv("volume", V::U(bar.volume)));
            }
            Input::Quote(q) => {
                f.push(bare("event", V::S("quote".into())));
                f.push(kv("quote_ts", V::Ts(q.ts_event_ns)));
                f.push(kv("bid", V::Px(q.bid_px_e9)));
                f.push(kv("bid_size", V::U(u64::from(q.bid_size))));
                f.push(kv("ask", V::Px(q.ask_px_e9)));
                f.push(kv("ask_size", V::U(u64::from(q.ask_size))));
            }
            Input::Trade(t) => {
                f.push(bare("event", V::S("trade".into())));
                f.push(kv("trade_ts", V::Ts(t.ts_event_ns)));
                f.push(kv("price", V::Px(t.px_e9)));
                f.push(kv("size", V::U(t.size)));
                f.push(kv("trade_id", V::U(t.trade_id)));
            }
            Input::Exec(rep) => {
                f.push(bare("event", V::S("exec".into())));
                f.push(kv("exec_ts", V::Ts(rep.ts_event_ns)));
                report_fields(rep, names, &mut f);
            }
            Input::Control(c) => {
                f.push(bare("event", V::S("control".into())));
                f.push(bare("command", name_or_raw(c.kind.map(control_name), c.kind_raw)));
                f.push(kv("control_ts", V::Ts(c.ts_event_ns)));
                if let Some(name) = c.added_name() {
                    f.push(kv("name", V::S(name.to_string())));
                } else if c.kind == Some(ControlKind::RemoveSymbol) {
                    let p = u16::try_from(c.args[0]).ok().filter(|&p| p > 0).and_then(policy_name);
                    f.push(kv("policy", name_or_raw(p, c.args[0])));
                } else if c.args != [0; 4] {
                    f.push(kv("args", V::S(c.args.map(|a| a.to_string()).join(","))));
                }
            }
            Input::Timer { ts_ns, clock } => {
                f.push(bare("event", V::S("timer".into())));
                f.push(bare("clock", name_or_raw(clock.map(|c| c.as_str()), r.payload[1])));
                f.push(kv("tick_ts", V::Ts(*ts_ns)));
            }
            Input::BarRefs(words) => {
                f.push(bare("event", V::S("bar_refs".into())));
                f.push(kv("payload", V::Words(*words)));
            }
            Input::Unknown(sub) => {
                f.push(bare("event", V::S(format!("unknown({sub})"))));
                f.push(kv("aux", V::U(u64::from(r.aux))));
                f.push(kv("payload", V::Words(r.payload)));
            }
        },
        Body::Decision { order, .. } => {
            if r.sub == 1 {
                // A replace: the order as it would be after the change.
                f.push(Field { key: "replace", val: V::Flag(true), show: Show::Bare });
            }
            order_fields(order, r.aux, names, &mut f)
        }
        Body::Cancel { order_id } => f.push(kv("id", V::S(order_id_text(*order_id, names)))),
        Body::Report(rep) => report_fields(rep, names, &mut f),
        Body::Lifecycle { change, .. } => {
            f.push(bare("change", name_or_raw(change.map(Lifecycle::as_str), r.sub)));
            if let Some(name) = r.added_name() {
                f.push(kv("name", V::S(name.to_string())));
            }
            f.push(kv("policy", name_or_raw(policy_name(r.aux), r.aux)));
        }
        Body::Timer { clock } => f.push(bare("clock", name_or_raw(clock.map(|c| c.as_str()), r.aux))),
        Body::Unknown => {
            f.push(kv("sub", V::U(u64::from(r.sub))));
            f.push(kv("aux", V::U(u64::from(r.aux))));
            f.push(kv("payload", V::Words(r.payload)));
        }
    }
    (kind, f)
}

pub(super) fn symbol_text(names: &Names, id: u32) -> Option<String> {
    if id == NO_SYMBOL {
        return None;
    }
    Some(names.get(id).map_or_else(|| format!("#{id}"), str::to_string))
}

pub(super) fn write_val(b: &mut Vec<u8>, v: &V) {
    use engine::text::{write_i64, write_px, write_ts, write_u64};
    match v {
        V::S(s) => b.extend_from_slice(s.as_bytes()),
        V::I(i) => write_i64(b, *i),
        V::U(u) => write_u64(b, *u),
        V::Px(p) => write_px(b, *p, 2),
        V::Ts(t) => write_ts(b, *t),
        V::Flag(x) => b.extend_from_slice(if *x { b"true" } else { b"false" }),
        V::Words(w) => {
            for (k, x) in w.iter().enumerate() {
                if k > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(format!("{x:#018x}").as_bytes());
            }
        }
    }
}

/// One text line (without the newline), as `ringtape journal` prints it (`ringtape replay` shows
/// differing records the same way).
pub fn text_line(b: &mut Vec<u8>, r: &Record, names: &Names) {
    let (kind, fields) = describe(r, names);
    engine::text::write_u64(b, r.seq);
    b.push(b' ');
    engine::text::write_ts(b, r.ts_ns);
    b.push(b' ');
    b.extend_from_slice(kind.as_bytes());
    b.push(b' ');
    b.extend_from_slice(symbol_text(names, r.symbol.0).as_deref().unwrap_or("-").as_bytes());
    for f in &fields {
        b.push(b' ');
        match (f.show, &f.val) {
            (Show::Bare, V::Flag(_)) => b.extend_from_slice(f.key.as_bytes()),
            (Show::Bare, v) => write_val(b, v),
            (Show::Kv, v) => {
                b.extend_from_slice(f.key.as_bytes());
                b.push(b'=');
                write_val(b, v);
            }
            (Show::Prefix(p), v) => {
                b.extend_from_slice(p.as_bytes());
                write_val(b, v);
            }
        }
    }
}

pub(super) fn json_val(v: &V) -> serde_json::Value {
    match v {
        V::S(s) => s.clone().into(),
        V::I(i) => (*i).into(),
        V::U(u) => (*u).into(),
        V::Flag(x) => (*x).into(),
        V::Words(w) => w.iter().map(|&x| serde_json::Value::from(x)).collect::<Vec<_>>().into(),
        V::Px(_) | V::Ts(_) => {
            let mut b = Vec::with_capacity(32);
            write_val(&mut b, v);
            String::from_utf8(b).expect("ascii").into()
        }
    }
}

/// One JSON object (without the newline). Unknown kinds are `"kind": "unknown"` with `kind_raw`.
pub(super) fn json_line(r: &Record, names: &Names) -> serde_json::Value {
    let (kind, fields) = describe(r, names);
    let mut m = serde_json::Map::new();
    m.insert("seq".into(), r.seq.into());
    m.insert("ts".into(), engine::text::fmt_ts(r.ts_ns).into());
    m.insert("ts_ns".into(), r.ts_ns.into());
    if r.kind.is_some() {
        m.insert("kind".into(), kind.into());
    } else {
        m.insert("kind".into(), "unknown".into());
        m.insert("kind_raw".into(), r.kind_raw.into());
    }
    m.insert("symbol".into(), symbol_text(names, r.symbol.0).map_or(serde_json::Value::Null, Into::into));
    m.insert("symbol_id".into(), if r.symbol.0 == NO_SYMBOL { serde_json::Value::Null } else { r.symbol.0.into() });
    for f in &fields {
        m.insert(f.key.into(), json_val(&f.val));
    }
    serde_json::Value::Object(m)
}
