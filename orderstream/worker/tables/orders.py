"""Saga state and read model per order, keyed by orderId. Each write also tells the worker's open
orders (orderstream/worker/open_orders.py) whether the order is still open, and until when."""

from __future__ import annotations

from collections.abc import Iterator

from orderstream.domain.saga import OrderState
from orderstream.domain.state import decode_state
from orderstream.worker.app import raw_table
from orderstream.worker.open_orders import open_orders
from orderstream.worker.tables.model_table import ModelTable

orders_table = raw_table("orders", "Order saga state, keyed by orderId.")
_models = ModelTable(orders_table, OrderState)


def get_order(order_id: str) -> OrderState | None:
    return _models.get(order_id)


def put_order(order: OrderState) -> None:
    _models.put(order.orderId, order)
    open_orders.track(order)


def all_orders() -> Iterator[OrderState]:
    """Every order of this worker's partitions (a scan: after a restart or a rebalance)."""
    for _, raw in orders_table.items():
        yield decode_state(raw, OrderState)
