"""Read model: each customer's totals and listed orders (keyed by customerId), and the listed
orders' summaries (keyed by `history_key`, in the customer's partition)."""

from __future__ import annotations

from orderstream.domain.projections import CustomerOrders, OrderSummary, history_key
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

customer_orders_table = raw_table("customer_orders", "Order history per customer.")
# Not remembered: a customer's record comes back once per 500 orders or so (as many customers),
# and 500 decoded histories of 100 listed orders held ~25 MB for a parse saved now and then.
_models = ModelTable(customer_orders_table, CustomerOrders, remember=0)


def get_history(customer_id: str) -> CustomerOrders | None:
    return _models.get(customer_id)


def put_history(history: CustomerOrders) -> None:
    _models.put(history.customerId, history)


def get_listed(customer_id: str, order_id: str) -> OrderSummary | None:
    raw = customer_orders_table.get(history_key(customer_id, order_id).encode())
    return None if raw is None else OrderSummary.model_validate_json(raw)


def put_listed(summary: OrderSummary) -> None:
    key = history_key(summary.customerId, summary.orderId).encode()
    customer_orders_table[key] = summary.model_dump_json().encode()


def drop_listed(customer_id: str, order_id: str) -> None:
    customer_orders_table.pop(history_key(customer_id, order_id).encode(), None)
