#!/usr/bin/env python3
"""Drive the local exchange's paper broker with the official Alpaca SDK (alpaca-py 0.44.0).

By hand, not CI:
    python3 -m venv /tmp/alpvenv && /tmp/alpvenv/bin/pip install alpaca-py==0.44.0
    cargo build -p ringtape-tools
    target/debug/ringtape exchange --plain --port 18765 --speed 600 &
    /tmp/alpvenv/bin/python tools/scripts/alpaca_py_broker.py 127.0.0.1:18765 SP500

Submits market and limit orders, lists and fetches them, replaces and cancels, reads positions and
the account, closes the position, and listens on TradingStream for the trade updates: every
object must parse into alpaca-py's pydantic models. Exits non-zero on any failure.
"""
import asyncio
import sys
import threading
import time

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
)
from alpaca.trading.stream import TradingStream

KEY, SECRET = "RINGTAPE_DEMO_KEY", "RINGTAPE_DEMO_SECRET"
addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8765"
sym = sys.argv[2] if len(sys.argv) > 2 else "SP500"

updates = []


async def on_update(u):
    updates.append(u)
    print("trade update:", u.event, u.order.status, u.order.symbol, u.qty, u.price, u.position_qty)


stream = TradingStream(KEY, SECRET, paper=True, url_override=f"ws://{addr}/stream")
stream.subscribe_trade_updates(on_update)
threading.Thread(target=stream.run, daemon=True).start()
time.sleep(1.0)

tc = TradingClient(KEY, SECRET, paper=True, url_override=f"http://{addr}")
acct = tc.get_account()
print("account:", acct.status, acct.cash, acct.buying_power, acct.equity)

m = tc.submit_order(MarketOrderRequest(symbol=sym, qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
print("market order:", m.id, m.status)
lim = tc.submit_order(
    LimitOrderRequest(symbol=sym, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00,
                      client_order_id="sdk-limit-1")
)
print("limit order:", lim.id, lim.status, lim.limit_price)

deadline = time.time() + 20
while time.time() < deadline and tc.get_order_by_id(m.id).status.value != "filled":
    time.sleep(0.2)
mo = tc.get_order_by_id(m.id)
assert mo.status.value == "filled", mo.status
print("market filled at", mo.filled_avg_price)

while time.time() < deadline and tc.get_order_by_id(lim.id).status.value != "new":
    time.sleep(0.1)
by_client = tc.get_order_by_client_id("sdk-limit-1")
assert str(by_client.id) == str(lim.id)
rep = tc.replace_order_by_id(lim.id, ReplaceOrderRequest(limit_price=1.10))
print("replaced by:", rep.id, rep.replaces, rep.limit_price)
assert str(rep.replaces) == str(lim.id)
while time.time() < deadline and tc.get_order_by_id(rep.id).status.value != "new":
    time.sleep(0.1)
tc.cancel_order_by_id(rep.id)
orders = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=50))
print("orders:", [(o.status.value, o.type.value, o.qty) for o in orders])
lim2 = tc.submit_order(
    LimitOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00)
)
while time.time() < deadline and tc.get_order_by_id(lim2.id).status.value != "new":
    time.sleep(0.1)
print("cancel all:", [(r.id, r.status) for r in tc.cancel_orders()])

positions = tc.get_all_positions()
print("positions:", [(p.symbol, p.qty, p.side, p.avg_entry_price, p.market_value) for p in positions])
assert positions and positions[0].qty == "3", positions
p = tc.get_open_position(sym)
close = tc.close_position(sym)
print("close order:", close.id, close.side, close.qty)
while time.time() < deadline and tc.get_order_by_id(close.id).status.value != "filled":
    time.sleep(0.2)
assert tc.get_all_positions() == []
acct = tc.get_account()
print("account after:", acct.cash, acct.equity, acct.buying_power)

time.sleep(0.5)
events = sorted({u.event.value if hasattr(u.event, "value") else str(u.event) for u in updates})
print("events seen:", events)
for want in ["new", "fill", "replaced", "canceled"]:
    assert want in events, f"no {want} event"
print("OK: alpaca-py parsed every object")
stream.stop()
