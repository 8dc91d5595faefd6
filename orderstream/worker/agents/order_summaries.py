"""Order summaries: the first outcome of each order becomes its summary, relayed by customer so
the customer's history is updated on the worker that owns its key. (Sales per product are
recorded by the inventory agent, when a commit sells the order's hold.)"""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.events import StatusEvent, decode
from orderstream.contracts.topics import accepted_types
from orderstream.domain import projections
from orderstream.domain.projections import ORIGIN_HEADER, Origin
from orderstream.observability import metrics
from orderstream.observability.tracing import traced
from orderstream.worker.app import app, relay, topic
from orderstream.worker.dead_letters import guarded
from orderstream.worker.repartition import rehomed
from orderstream.worker.tables.order_summaries import get_summary, put_summary

ACCEPT = accepted_types("order_status")


@app.agent(topic("order_status"), name="order_summaries")
async def order_summaries_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "order-summaries"):
            await guarded("order_summaries", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    msg = event.message
    outcome: StatusEvent = decode(event.value, ACCEPT)  # type: ignore[assignment]
    if await rehomed(event, outcome):  # placed by another partitioner: applied where it belongs
        return
    origin = Origin(partition=msg.partition, offset=msg.offset)
    stored = get_summary(outcome.data.orderId)
    if stored is not None and stored.origin != origin:  # the saga announced it again: once
        metrics.duplicate_dropped("projections")
        return
    # New, or the record that made the summary redelivered (its send may be lost): (re)send,
    # the history drops repeats; stored only once sent, so a failed send leaves no trace.
    summary = stored or projections.summarize(outcome, origin)
    headers = {ORIGIN_HEADER: origin.header()}
    await relay("status_by_customer", summary.customerId, outcome, event.value, headers)
    put_summary(summary)  # again when redelivered: its changelog write may have been lost
