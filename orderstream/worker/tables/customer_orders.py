"""Read model: customers' order histories, in parts, one per saga partition (keyed by
`history_key`: totals and listed orders). A part lives in the partition of its key's saga
steps, with the saga states of the orders it lists (their summaries). The summary records of
earlier versions (keyed by `listed_key`: a part's slot, or a customer and order) are read
still."""

from __future__ import annotations

from orderstream.domain.projections import CustomerOrders, OrderSummary
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

customer_orders_table = raw_table("customer_orders", "Order history per customer.", replayable=True)
# Not remembered: a customer's record comes back once per 500 orders or so (as many customers),
# and 500 decoded histories of 100 listed orders held ~25 MB for a parse saved now and then.
_models = ModelTable(customer_orders_table, CustomerOrders, remember=0)
# the summary records of earlier versions: the same table, other keys
_listed = ModelTable(customer_orders_table, OrderSummary, remember=0)


def get_history(key: str) -> CustomerOrders | None:
    return _models.get(key)


def put_history(key: str, history: CustomerOrders) -> None:
    _models.put(key, history)


def get_listed(key: str) -> OrderSummary | None:
    """The summary stored under a `listed_key` (check its orderId: a slot is written over)."""
    return _listed.get(key)
