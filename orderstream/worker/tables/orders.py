"""Saga state and read model per order, keyed by orderId; plus the index of open deadlines."""

from __future__ import annotations

from orderstream.domain.saga import OrderState
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

orders_table = raw_table("orders", "Order saga state, keyed by orderId.")
_models = ModelTable(orders_table, OrderState)

# orderId -> (step, deadline) of orders this worker is driving; rebuilt by a scan after start.
open_deadlines: dict[str, tuple[str, float]] = {}


def get_order(order_id: str) -> OrderState | None:
    return _models.get(order_id)


def put_order(order: OrderState) -> None:
    _models.put(order.orderId, order)
    if order.terminal:
        open_deadlines.pop(order.orderId, None)
    else:
        open_deadlines[order.orderId] = (order.status, order.deadline)


def scan_open_orders() -> int:
    """Fill the deadline index from the table (after a restart or a rebalance)."""
    found = 0
    for _, raw in orders_table.items():
        order = OrderState.model_validate_json(raw)
        if not order.terminal:
            open_deadlines[order.orderId] = (order.status, order.deadline)
            found += 1
    return found
