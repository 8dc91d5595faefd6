"""Order intake agent: takes each OrderPlaced into the saga (agents/saga.py runs the step), and
stops fetching new orders while this worker has `saga_max_open` orders open.

Without the bound, a backlog of orders is taken up as fast as it is fetched, far ahead of the
replies: every order holds stock, the holds per product grow (each reservation then rewrites a
larger record) and deadlines pass in the queue. The order partitions are taken out of the fetch
the way Faust does it for a full stream queue (`on_buffer_full`: no pause, no seek, what was
fetched stays in the client), and put back once the open orders fell to 80% of the bound. The
agent itself never waits (a waiting agent would hold up the hand-over of every partition's
records once its queue is full): the orders already queued are taken, so the bound is the
setting plus at most one queue of orders, which is kept short (ORDER_QUEUE; the other streams
queue 4,096 records): with the default queue 500 open orders became ~4,500, and every product's
stock record carried hundreds of holds, rewritten at each reservation.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from agents.saga import handle
from app import metrics
from app.application import app, settings, topic
from app.deadletter import guarded
from app.topics import registry
from app.tracing import traced
from tables.orders import open_deadlines

ORDER_TOPIC = registry(settings)["orders"].name
RESUME_AT = 0.8  # of saga_max_open
ORDER_QUEUE = 256  # orders fetched ahead of the intake
#: Order partitions this worker took out of the fetch (the partition watchdog leaves them be).
throttled: set[Any] = set()


@app.agent(topic("orders", maxsize=ORDER_QUEUE), name="order-intake")
async def order_intake(stream: Any) -> None:
    async for event in stream.events():
        if len(open_deadlines) >= settings.saga_max_open:
            _throttle()
        with traced(event, "saga"):
            await guarded("saga", event, partial(handle, event))


def _throttle() -> None:
    consumer = cast(Any, app.consumer)
    fetched = consumer._get_active_partitions()
    # Also the ones the queue's own flow control put back meanwhile (it drained below 40%).
    for tp in [tp for tp in fetched if tp.topic == ORDER_TOPIC]:
        consumer.on_buffer_full(tp)
        throttled.add(tp)
        metrics.intake_throttled()


@app.timer(interval=0.2)
async def release_order_partitions() -> None:
    _release()


def _release() -> None:
    """Fetch new orders again once enough have settled (or after a rebalance re-counted them)."""
    if throttled and len(open_deadlines) < settings.saga_max_open * RESUME_AT:
        consumer = cast(Any, app.consumer)
        for tp in throttled:
            consumer.on_buffer_drop(tp)
        throttled.clear()
