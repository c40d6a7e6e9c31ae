//! What the API serves of the book: orders, positions and the account as Alpaca's JSON objects
//! (numbers as strings, nulls where absent), and trade_updates events.

use super::super::{BrokerSnapshot, dec, time};
use super::*;
use serde::{Deserialize, Serialize};

impl Book {
    /// A trade_updates event as JSON text, the order as it is now.
    pub(super) fn event(&self, kind: &str, idx: usize, ts: i64, fill: Option<(i64, u32, i64, String)>) -> String {
        let mut data = serde_json::json!({
            "event": kind,
            "order": self.order_view(idx),
            "timestamp": time(ts),
        });
        if let Some((px, qty, pos, exec)) = fill {
            data["execution_id"] = exec.into();
            data["price"] = dec(i128::from(px)).into();
            data["qty"] = qty.to_string().into();
            data["position_qty"] = pos.to_string().into();
        }
        serde_json::json!({"stream": "trade_updates", "data": data}).to_string()
    }

    pub fn order_view(&self, idx: usize) -> OrderView {
        let o = &self.orders[idx];
        let t = |v: Option<i64>| v.map(time);
        let px = |v: i64| (v > 0).then(|| dec(i128::from(v)));
        OrderView {
            id: o.id.clone(),
            client_order_id: o.client_order_id.clone(),
            created_at: time(o.created_ns),
            updated_at: time(o.updated_ns),
            submitted_at: time(o.created_ns),
            filled_at: if o.status == Status::Filled { t(o.filled_ns) } else { None },
            expired_at: t(o.expired_ns),
            canceled_at: t(o.canceled_ns),
            failed_at: t(o.failed_ns),
            replaced_at: t(o.replaced_ns),
            replaced_by: o.replaced_by.map(|i| self.orders[i].id.clone()),
            replaces: o.replaces.map(|i| self.orders[i].id.clone()),
            asset_id: self.asset_ids[o.o.sym].clone(),
            symbol: self.names[o.o.sym].clone(),
            asset_class: "us_equity".into(),
            notional: None,
            qty: Some(o.o.qty.to_string()),
            filled_qty: o.filled_qty.to_string(),
            filled_avg_price: (o.filled_qty > 0).then(|| dec(o.filled_value_e9 / i128::from(o.filled_qty))),
            order_class: "simple".into(),
            order_type: o.o.typ.as_str().into(),
            r#type: o.o.typ.as_str().into(),
            side: o.o.side.as_str().into(),
            position_intent: None,
            time_in_force: o.o.tif.as_str().into(),
            limit_price: px(o.o.limit_e9),
            stop_price: px(o.o.stop_e9),
            status: o.status.as_str().into(),
            extended_hours: o.o.extended_hours,
            legs: None,
            trail_percent: None,
            trail_price: None,
            hwm: None,
            subtag: None,
            source: None,
            expires_at: None,
        }
    }

    /// Orders for `GET /v2/orders`: `status` open|closed|all, newest first unless `asc`.
    pub fn list(&self, status: &str, limit: usize, asc: bool, symbols: Option<&[String]>) -> Vec<OrderView> {
        if status == "open" {
            let it = self
                .open_set
                .iter()
                .copied()
                .filter(|&i| symbols.is_none_or(|s| s.iter().any(|n| *n == self.names[self.orders[i].o.sym])));
            let idx: Vec<usize> = if asc { it.take(limit).collect() } else { it.rev().take(limit).collect() };
            return idx.into_iter().map(|i| self.order_view(i)).collect();
        }
        let keep = |o: &BOrder| match status {
            "open" => o.status.is_open(),
            "closed" => !o.status.is_open(),
            _ => true,
        };
        let sym_ok = |o: &BOrder| symbols.is_none_or(|s| s.iter().any(|n| *n == self.names[o.o.sym]));
        let it = self.orders.iter().enumerate().filter(|(_, o)| keep(o) && sym_ok(o)).map(|(i, _)| i);
        let idx: Vec<usize> = if asc { it.take(limit).collect() } else { it.rev().take(limit).collect() };
        idx.into_iter().map(|i| self.order_view(i)).collect()
    }

    /// Indexes of the open orders.
    pub fn open(&self) -> Vec<usize> {
        self.open_set.iter().copied().collect()
    }

    pub fn position_view(&self, sym: usize) -> Option<PositionView> {
        let p = self.pos[sym];
        if p.qty == 0 {
            return None;
        }
        let last = i128::from(self.last_close[sym]);
        let qty = i128::from(p.qty);
        let mv = qty * last;
        let cost = qty * i128::from(p.avg_e9);
        let upl = mv - cost;
        let plpc = if cost != 0 { upl * E9 / cost.abs() } else { 0 };
        let prev = i128::from(self.day_close[sym]);
        let day_pl = qty * (last - prev);
        let day_plpc = if prev != 0 { (last - prev) * E9 / prev * qty.signum() } else { 0 };
        let change = if prev != 0 { (last - prev) * E9 / prev } else { 0 };
        Some(PositionView {
            asset_id: self.asset_ids[sym].clone(),
            symbol: self.names[sym].clone(),
            exchange: "NASDAQ".into(),
            asset_class: "us_equity".into(),
            asset_marginable: true,
            qty: p.qty.to_string(),
            qty_available: p.qty.to_string(),
            side: if p.qty > 0 { "long" } else { "short" }.into(),
            avg_entry_price: dec(i128::from(p.avg_e9)),
            market_value: dec(mv),
            cost_basis: dec(cost),
            unrealized_pl: dec(upl),
            unrealized_plpc: dec(plpc),
            unrealized_intraday_pl: dec(day_pl),
            unrealized_intraday_plpc: dec(day_plpc),
            current_price: dec(last),
            lastday_price: dec(prev),
            change_today: dec(change),
        })
    }

    pub fn positions(&self) -> Vec<PositionView> {
        (0..self.pos.len()).filter_map(|s| self.position_view(s)).collect()
    }

    pub fn account(&self) -> AccountView {
        let (l, s) = self.market_values();
        let eq = self.equity();
        let bp = dec(self.buying_power());
        let z = || "0".to_string();
        AccountView {
            id: uuid(self.seed, 0),
            account_number: format!("PA{:010}", self.seed % 10_000_000_000),
            status: "ACTIVE".into(),
            crypto_status: "INACTIVE".into(),
            currency: "USD".into(),
            buying_power: bp.clone(),
            regt_buying_power: bp.clone(),
            daytrading_buying_power: bp.clone(),
            effective_buying_power: bp,
            non_marginable_buying_power: dec(self.cash_e9.max(0)),
            options_buying_power: z(),
            bod_dtbp: z(),
            cash: dec(self.cash_e9),
            accrued_fees: z(),
            pending_transfer_in: z(),
            portfolio_value: dec(eq),
            pattern_day_trader: false,
            trading_blocked: false,
            transfers_blocked: false,
            account_blocked: false,
            created_at: time(self.created_ns),
            trade_suspended_by_user: false,
            multiplier: "2".into(),
            shorting_enabled: true,
            equity: dec(eq),
            last_equity: dec(self.start_cash_e9),
            long_market_value: dec(l),
            short_market_value: dec(s),
            position_market_value: dec(l - s),
            initial_margin: dec((l - s) / 2),
            maintenance_margin: dec((l - s) * 3 / 10),
            last_maintenance_margin: z(),
            sma: z(),
            daytrade_count: 0,
            crypto_tier: 0,
            options_approved_level: 0,
            options_trading_level: 0,
        }
    }

    pub fn snapshot(&self, _market_now: i64) -> BrokerSnapshot {
        BrokerSnapshot {
            account: self.account(),
            positions: self.positions(),
            orders: (0..self.orders.len()).map(|i| self.order_view(i)).collect(),
        }
    }
}

/// An order as the REST endpoints and the stream serve it (numbers as strings, nulls where absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Alpaca's field names; see PROTOCOLS.md section 1.3
pub struct OrderView {
    pub id: String,
    pub client_order_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub submitted_at: String,
    pub filled_at: Option<String>,
    pub expired_at: Option<String>,
    pub canceled_at: Option<String>,
    pub failed_at: Option<String>,
    pub replaced_at: Option<String>,
    pub replaced_by: Option<String>,
    pub replaces: Option<String>,
    pub asset_id: String,
    pub symbol: String,
    pub asset_class: String,
    pub notional: Option<String>,
    pub qty: Option<String>,
    pub filled_qty: String,
    pub filled_avg_price: Option<String>,
    pub order_class: String,
    pub order_type: String,
    pub r#type: String,
    pub side: String,
    pub position_intent: Option<String>,
    pub time_in_force: String,
    pub limit_price: Option<String>,
    pub stop_price: Option<String>,
    pub status: String,
    pub extended_hours: bool,
    pub legs: Option<Vec<OrderView>>,
    pub trail_percent: Option<String>,
    pub trail_price: Option<String>,
    pub hwm: Option<String>,
    pub subtag: Option<String>,
    pub source: Option<String>,
    pub expires_at: Option<String>,
}

/// A position as `GET /v2/positions` serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Alpaca's field names
pub struct PositionView {
    pub asset_id: String,
    pub symbol: String,
    pub exchange: String,
    pub asset_class: String,
    pub asset_marginable: bool,
    pub qty: String,
    pub qty_available: String,
    pub side: String,
    pub avg_entry_price: String,
    pub market_value: String,
    pub cost_basis: String,
    pub unrealized_pl: String,
    pub unrealized_plpc: String,
    pub unrealized_intraday_pl: String,
    pub unrealized_intraday_plpc: String,
    pub current_price: String,
    pub lastday_price: String,
    pub change_today: String,
}

/// The account as `GET /v2/account` serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Alpaca's field names
pub struct AccountView {
    pub id: String,
    pub account_number: String,
    pub status: String,
    pub crypto_status: String,
    pub currency: String,
    pub buying_power: String,
    pub regt_buying_power: String,
    pub daytrading_buying_power: String,
    pub effective_buying_power: String,
    pub non_marginable_buying_power: String,
    pub options_buying_power: String,
    pub bod_dtbp: String,
    pub cash: String,
    pub accrued_fees: String,
    pub pending_transfer_in: String,
    pub portfolio_value: String,
    pub pattern_day_trader: bool,
    pub trading_blocked: bool,
    pub transfers_blocked: bool,
    pub account_blocked: bool,
    pub created_at: String,
    pub trade_suspended_by_user: bool,
    pub multiplier: String,
    pub shorting_enabled: bool,
    pub equity: String,
    pub last_equity: String,
    pub long_market_value: String,
    pub short_market_value: String,
    pub position_market_value: String,
    pub initial_margin: String,
    pub maintenance_margin: String,
    pub last_maintenance_margin: String,
    pub sma: String,
    pub daytrade_count: u32,
    pub crypto_tier: u32,
    pub options_approved_level: u32,
    pub options_trading_level: u32,
}
