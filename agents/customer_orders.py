"""Customer order history: each settled order joins its customer's history (read model)."""

from __future__ import annotations

from functools import partial
from typing import Any

from app import metrics
from app.application import app, topic
from app.deadletter import guarded
from app.domain import projections
from app.domain.projections import Origin
from app.events import StatusEvent, decode
from app.topics import accepted_types
from app.tracing import traced
from tables.customer_orders import get_history, put_history

ACCEPT = accepted_types("order_status")


@app.agent(topic("status_by_customer"), name="customer_orders")
async def customer_orders_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "customer-orders"):
            await guarded("customer_orders", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    outcome: StatusEvent = decode(event.value, ACCEPT)  # type: ignore[assignment]
    summary = projections.summarize(outcome, Origin.from_headers(event.headers))
    decision = projections.record_order(get_history(summary.customerId), summary)
    if decision.duplicate:
        metrics.duplicate_dropped("projections")
    if decision.state is not None:
        put_history(decision.state)
