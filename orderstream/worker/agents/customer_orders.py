"""Customer order history: each settled order joins its customer's history (read model). The
saga sends each outcome here by customer, marked with its origin; an outcome at or below the
history's watermark for that origin's source partition was applied already."""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.events import StatusEvent, decode
from orderstream.contracts.topics import accepted_types
from orderstream.domain import projections
from orderstream.domain.projections import Origin
from orderstream.observability import metrics
from orderstream.observability.tracing import traced
from orderstream.worker.app import app, topic
from orderstream.worker.dead_letters import guarded
from orderstream.worker.tables.customer_orders import (
    drop_listed,
    get_history,
    get_listed,
    put_history,
    put_listed,
)

ACCEPT = accepted_types("order_status")


@app.agent(topic("status_by_customer"), name="customer_orders")
async def customer_orders_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "customer-orders"):
            await guarded("customer_orders", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    outcome: StatusEvent = decode(event.value, ACCEPT)  # type: ignore[assignment]
    summary = projections.summarize(outcome, Origin.from_headers(event.headers))
    before = get_history(summary.customerId)
    decision = projections.record_order(before, summary)
    if decision.duplicate:
        metrics.duplicate_dropped("projections")
        if decision.state is None and before is not None:  # its changelog writes, again
            ref = projections.listed_ref(before, summary.orderId)
            if ref is not None:
                key = projections.listed_key(summary.customerId, ref)
                listed = get_listed(key)
                if listed is not None and listed.orderId == summary.orderId:
                    put_listed(key, listed)
            put_history(before)
    if decision.state is not None:
        # The listed summaries first, the head (with the watermark) last: after a crash between
        # them the redelivered outcome is not taken for a duplicate, and does it all again.
        added, dropped = projections.relisted(before, decision.state, summary)
        if added is not None:
            put_listed(added, summary)
        for key in dropped:
            drop_listed(key)
        put_history(decision.state)
