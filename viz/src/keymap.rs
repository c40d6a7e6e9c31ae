//! Hotkeys: a keymap in TOML (the documented default is `viz/keymap.default.toml`, built in)
//! and the orders a key makes. A key becomes control events
//! ([`Event::manual_order`], [`Event::flatten`], [`Event::cancel_all`]) that the window pushes
//! into the pipeline's ingress, so risk checks them and the journal records them.

use engine::records::{Event, OrderType, PX_SCALE, Side, SymbolId};
use std::collections::BTreeMap;

/// The built-in keymap.
pub const DEFAULT: &str = include_str!("../keymap.default.toml");

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    /// Buy the focused ticker.
    Buy,
    /// Sell it.
    Sell,
    /// Flatten it (cancel its orders, close the position).
    Flatten,
    /// Flatten every ticker.
    FlattenAll,
    /// Cancel the focused ticker's working orders.
    CancelAll,
    /// Cancel every ticker's working orders.
    CancelAllSymbols,
    /// Focus the next ticker.
    FocusNext,
    /// Focus the previous ticker.
    FocusPrev,
}

/// Reference price of a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceFrom {
    /// The last price (the last bar's close).
    #[default]
    Last,
    /// The bid (the last price without quotes).
    Bid,
    /// The ask.
    Ask,
}

/// Market or limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    /// At the market.
    #[default]
    Market,
    /// A limit at the reference price plus `offset`.
    Limit,
}

/// One key's binding.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// What it does.
    pub action: KeyAction,
    /// Market or limit (orders).
    #[serde(rename = "type", default)]
    pub order_type: EntryType,
    /// Reference price.
    #[serde(default)]
    pub from: PriceFrom,
    /// Dollars added to the reference price for a limit.
    #[serde(default)]
    pub offset: f64,
    /// Size in shares.
    pub shares: Option<u32>,
    /// Size in dollars.
    pub dollars: Option<f64>,
    /// Size by dollar risk to the stop.
    pub risk: Option<f64>,
    /// Distance of the protective stop from the entry, dollars.
    pub stop: Option<f64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    confirm_above_shares: Option<u32>,
    #[serde(default)]
    confirm_above_usd: Option<f64>,
    #[serde(default)]
    keys: BTreeMap<String, Binding>,
}

/// A parsed keymap.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Keymap {
    /// Bindings by minifb key name (`F1`, `B`, `Key1`).
    pub keys: BTreeMap<String, Binding>,
    /// Orders above this many shares need confirming.
    pub confirm_above_shares: Option<u32>,
    /// Orders above this notional need confirming.
    pub confirm_above_usd: Option<f64>,
}

/// Key names a keymap may use (minifb's names).
pub fn valid_key(name: &str) -> bool {
    let letter = name.len() == 1 && name.chars().all(|c| c.is_ascii_uppercase());
    let num = |p: &str| name.strip_prefix(p).is_some_and(|d| d.len() == 1 && d.chars().all(|c| c.is_ascii_digit()));
    let f = name.strip_prefix('F').and_then(|d| d.parse::<u8>().ok()).is_some_and(|n| (1..=15).contains(&n));
    let named = [
        "Space",
        "Enter",
        "Insert",
        "Delete",
        "PageUp",
        "PageDown",
        "Backspace",
        "Apostrophe",
        "Comma",
        "Slash",
        "Semicolon",
        "LeftBracket",
        "RightBracket",
        "Backslash",
        "Backquote",
    ];
    letter || num("Key") || num("NumPad") || f || named.contains(&name)
}

impl Keymap {
    /// Parse keymap `text`; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Keymap, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("keymap {what}: {}", e.message()))?;
        for (k, b) in &f.keys {
            if !valid_key(k) {
                return Err(format!("keymap {what}: key {k:?} is not a key name (use e.g. F1, B, Key1, Space)"));
            }
            if matches!(b.action, KeyAction::Buy | KeyAction::Sell) {
                let sizes = [b.shares.is_some(), b.dollars.is_some(), b.risk.is_some()];
                if sizes.iter().filter(|&&x| x).count() != 1 {
                    return Err(format!("keymap {what}: key {k}: give exactly one of shares, dollars, risk"));
                }
                if b.risk.is_some() && b.stop.is_none() {
                    return Err(format!("keymap {what}: key {k}: risk sizing needs stop (dollars from the entry)"));
                }
                let bad = |v: Option<f64>| v.is_some_and(|x| !(x.is_finite() && x > 0.0));
                if bad(b.dollars) || bad(b.risk) || bad(b.stop) || b.shares == Some(0) || !b.offset.is_finite() {
                    return Err(format!("keymap {what}: key {k}: sizes and stop must be positive numbers"));
                }
            }
        }
        Ok(Keymap {
            keys: f.keys,
            confirm_above_shares: f.confirm_above_shares,
            confirm_above_usd: f.confirm_above_usd,
        })
    }

    /// The built-in keymap.
    pub fn default_keys() -> Keymap {
        Keymap::parse(DEFAULT, "(built-in)").expect("the built-in keymap parses")
    }
}

/// Prices a key's order is made from, 1e-9 units (0: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    /// Last price.
    pub last: i64,
    /// Best bid.
    pub bid: i64,
    /// Best ask.
    pub ask: i64,
}

/// An order a key asks for, before it is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    /// Symbol.
    pub symbol: SymbolId,
    /// Side.
    pub side: Side,
    /// Market or limit.
    pub order_type: OrderType,
    /// Shares.
    pub qty: u32,
    /// Limit price (0 for market).
    pub limit_px_e9: i64,
    /// Stop to attach after the fill (0: none).
    pub stop_px_e9: i64,
    /// Entry price used for sizing.
    pub entry_px_e9: i64,
}

impl Planned {
    /// Notional at the entry price, dollars.
    pub fn notional_usd(&self) -> f64 {
        self.entry_px_e9 as f64 / PX_SCALE as f64 * f64::from(self.qty)
    }
    /// The manual order event at time `ts_ns`.
    pub fn event(&self, ts_ns: i64) -> Event {
        Event::manual_order(self.symbol, self.side, self.order_type, self.qty, self.limit_px_e9, 0, ts_ns)
    }
    /// True when `km` wants this order confirmed.
    pub fn needs_confirm(&self, km: &Keymap) -> bool {
        km.confirm_above_shares.is_some_and(|s| self.qty > s)
            || km.confirm_above_usd.is_some_and(|u| self.notional_usd() > u)
    }
    /// One line: `buy 100 SPY MKT (~$31,000)`.
    pub fn describe(&self, name: &str) -> String {
        let side = if self.side == Side::Buy { "buy" } else { "sell" };
        let px = if self.order_type == OrderType::Limit {
            format!("LMT {}", crate::chart::fmt_price(self.limit_px_e9, 2))
        } else {
            "MKT".into()
        };
        let stop = if self.stop_px_e9 != 0 {
            format!(" stop {}", crate::chart::fmt_price(self.stop_px_e9, 2))
        } else {
            String::new()
        };
        format!("{side} {} {name} {px}{stop} (~${:.0})", self.qty, self.notional_usd())
    }
}

fn to_e9(d: f64) -> i64 {
    (d * PX_SCALE as f64).round() as i64
}

/// Round to whole cents.
fn cents(px_e9: i64) -> i64 {
    let c = PX_SCALE / 100;
    (px_e9 + c / 2).div_euclid(c) * c
}

/// The order `b` (a buy or sell binding) makes for `symbol` at `prices`; an error line when
/// it cannot (no price yet, a size of zero shares).
pub fn plan(b: &Binding, symbol: SymbolId, prices: Prices) -> Result<Planned, String> {
    let side = match b.action {
        KeyAction::Buy => Side::Buy,
        KeyAction::Sell => Side::Sell,
        other => return Err(format!("{other:?} is not an order")),
    };
    let reference = match b.from {
        PriceFrom::Bid if prices.bid > 0 => prices.bid,
        PriceFrom::Ask if prices.ask > 0 => prices.ask,
        _ => prices.last,
    };
    if reference <= 0 {
        return Err("no price yet: wait for the first bar".into());
    }
    let (order_type, limit_px_e9, entry) = match b.order_type {
        EntryType::Market => (OrderType::Market, 0, reference),
        EntryType::Limit => {
            let l = cents(reference + to_e9(b.offset));
            if l <= 0 {
                return Err(format!("limit offset {} puts the price at or below zero", b.offset));
            }
            (OrderType::Limit, l, l)
        }
    };
    let stop_px_e9 = match b.stop {
        Some(d) if side == Side::Buy => cents(entry - to_e9(d)),
        Some(d) => cents(entry + to_e9(d)),
        None => 0,
    };
    let entry_usd = entry as f64 / PX_SCALE as f64;
    let qty = if let Some(s) = b.shares {
        f64::from(s)
    } else if let Some(d) = b.dollars {
        (d / entry_usd).floor()
    } else if let Some(r) = b.risk {
        let per_share = (entry - stop_px_e9).abs() as f64 / PX_SCALE as f64;
        if per_share <= 0.0 {
            return Err("risk sizing: the stop is at the entry".into());
        }
        (r / per_share).floor()
    } else {
        0.0
    };
    if qty < 1.0 {
        return Err(format!("size rounds to 0 shares at {entry_usd:.2}"));
    }
    let qty = if qty > f64::from(u32::MAX) { u32::MAX } else { qty as u32 };
    Ok(Planned { symbol, side, order_type, qty, limit_px_e9, stop_px_e9, entry_px_e9: entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(text: &str) -> Binding {
        let km = Keymap::parse(&format!("[keys]\nF1 = {text}\n"), "t").unwrap();
        km.keys["F1"]
    }

    const P: Prices = Prices { last: 50 * PX_SCALE, bid: 49 * PX_SCALE, ask: 51 * PX_SCALE };

    #[test]
    fn the_default_keymap_parses_and_binds_every_order_kind() {
        let km = Keymap::default_keys();
        assert_eq!(km.keys.len(), 10);
        assert_eq!(km.keys["F1"].action, KeyAction::Buy);
        assert_eq!(km.confirm_above_shares, Some(1000));
    }

    #[test]
    fn sizes_by_shares_dollars_and_risk_to_the_stop() {
        let s = SymbolId(3);
        let p = plan(&bind("{ action = \"buy\", shares = 7 }"), s, P).unwrap();
        assert_eq!((p.qty, p.order_type, p.limit_px_e9, p.stop_px_e9), (7, OrderType::Market, 0, 0));
        // $1,000 at 50.00 -> 20 shares.
        assert_eq!(plan(&bind("{ action = \"buy\", dollars = 1010.0 }"), s, P).unwrap().qty, 20);
        // Risk $300 to a stop $1.50 under a 50.00 entry: 300 / 1.5 = 200 shares, stop 48.50.
        let p = plan(&bind("{ action = \"buy\", risk = 300.0, stop = 1.5 }"), s, P).unwrap();
        assert_eq!((p.qty, p.stop_px_e9), (200, 48_500_000_000));
        // A sell limit 10 cents over the ask (51.00): 51.10, stop 2.00 above: 53.10, 100 shares.
        let p = plan(
            &bind("{ action = \"sell\", type = \"limit\", from = \"ask\", offset = 0.10, risk = 200.0, stop = 2.0 }"),
            s,
            P,
        )
        .unwrap();
        assert_eq!((p.side, p.limit_px_e9, p.stop_px_e9, p.qty), (Side::Sell, 51_100_000_000, 53_100_000_000, 100));
        let c = *p.event(9).as_control().unwrap();
        assert_eq!(c.args[1], 51_100_000_000);
        // Without quotes, bid falls back to the last price.
        let noq = Prices { last: P.last, ..Prices::default() };
        let p = plan(&bind("{ action = \"buy\", type = \"limit\", from = \"bid\", shares = 1 }"), s, noq).unwrap();
        assert_eq!(p.limit_px_e9, P.last);
        assert!(plan(&bind("{ action = \"buy\", shares = 1 }"), s, Prices::default()).is_err(), "no price yet");
        assert!(plan(&bind("{ action = \"buy\", dollars = 10.0 }"), s, P).is_err(), "rounds to 0 shares");
    }

    #[test]
    fn confirmation_above_the_configured_size() {
        let km = Keymap::parse("confirm_above_shares = 100\nconfirm_above_usd = 6000.0\n", "t").unwrap();
        let p = |q| Planned { qty: q, ..plan(&bind("{ action = \"buy\", shares = 1 }"), SymbolId(0), P).unwrap() };
        assert!(!p(100).needs_confirm(&km));
        assert!(p(101).needs_confirm(&km));
        assert!(Planned { entry_px_e9: 100 * PX_SCALE, ..p(61) }.needs_confirm(&km), "$6,100 > $6,000");
    }

    #[test]
    fn bad_keymaps_say_what_is_wrong() {
        let e = |t: &str| Keymap::parse(t, "k.toml").unwrap_err();
        assert!(e("[keys]\nF99 = { action = \"flatten\" }").contains("\"F99\" is not a key name"));
        assert!(e("[keys]\nB = { action = \"buy\" }").contains("exactly one of shares, dollars, risk"));
        assert!(e("[keys]\nB = { action = \"buy\", risk = 5.0 }").contains("needs stop"));
        assert!(e("[keys]\nB = { action = \"jump\" }").starts_with("keymap k.toml:"));
    }
}
