"""Sales per product per hour: each confirmed order's line for the product the record is keyed
by is added to the hour it was confirmed in (read model)."""

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
from tables.product_sales import get_sales, put_sales

ACCEPT = accepted_types("order_status")


@app.agent(topic("status_by_product"), name="product_sales")
async def product_sales_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "product-sales"):
            await guarded("product_sales", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    outcome: StatusEvent = decode(event.value, ACCEPT)  # type: ignore[assignment]
    summary = projections.summarize(outcome, Origin.from_headers(event.headers))
    product = (event.key or b"").decode("utf-8", "replace")
    before = get_sales(product)
    decision = projections.record_sale(before, summary, product)
    if decision.duplicate:
        metrics.duplicate_dropped("projections")
        if decision.state is None and before is not None:
            put_sales(before)  # its changelog write may have been lost (not committed over)
    if decision.state is not None:
        put_sales(decision.state)
