"""Read model: each customer's totals and listed orders (keyed by customerId), and the listed
orders' summaries (keyed by `listed_key`: a customer's slot, in the customer's partition)."""

from __future__ import annotations

from orderstream.domain.projections import CustomerOrders, OrderSummary
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

customer_orders_table = raw_table("customer_orders", "Order history per customer.", replayable=True)
# Not remembered: a customer's record comes back once per 500 orders or so (as many customers),
# and 500 decoded histories of 100 listed orders held ~25 MB for a parse saved now and then.
_models = ModelTable(customer_orders_table, CustomerOrders, remember=0)
_listed = ModelTable(customer_orders_table, OrderSummary, remember=0)  # the same table, other keys


def get_history(customer_id: str) -> CustomerOrders | None:
    return _models.get(customer_id)


def put_history(history: CustomerOrders) -> None:
    _models.put(history.customerId, history)


def get_listed(key: str) -> OrderSummary | None:
    """The summary stored under a `listed_key` (check its orderId: a slot is written over)."""
    return _listed.get(key)


def put_listed(key: str, summary: OrderSummary) -> None:
    _listed.put(key, summary)


def drop_listed(key: str) -> None:
    customer_orders_table.pop(key.encode(), None)
