"""Read model: the summary of each settled order, keyed by orderId (co-partitioned with
order-status); also what tells a first outcome from the saga announcing it again."""

from __future__ import annotations

from orderstream.domain.projections import OrderSummary
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

summaries_table = raw_table("order_summaries", "Settled order summaries, keyed by orderId.")
# Not remembered: an order's summary is read again only when its outcome is announced again.
_models = ModelTable(summaries_table, OrderSummary, remember=0)


def get_summary(order_id: str) -> OrderSummary | None:
    return _models.get(order_id)


def put_summary(summary: OrderSummary) -> None:
    _models.put(summary.orderId, summary)
