"""Read model: the summary of each settled order, keyed by orderId (co-partitioned with
order-status); also what tells a first outcome from the saga announcing it again."""

from __future__ import annotations

from orderstream.domain.projections import OrderSummary
from orderstream.worker.app import raw_table

summaries_table = raw_table("order_summaries", "Settled order summaries, keyed by orderId.")


def get_summary(order_id: str) -> OrderSummary | None:
    raw = summaries_table.get(order_id.encode())
    return None if raw is None else OrderSummary.model_validate_json(raw)


def put_summary(summary: OrderSummary) -> None:
    summaries_table[summary.orderId.encode()] = summary.model_dump_json().encode()
