"""Order intake agent: takes each OrderPlaced into the saga (orderstream/worker/agents/saga.py runs
the step), and stops fetching new orders while this worker has `saga_max_open` orders open.

Without the bound, a backlog of orders is taken up as fast as it is fetched, far ahead of the
replies: every order holds stock, the holds per product grow (each reservation then rewrites a
larger record) and deadlines pass in the queue. At the bound the order partitions are taken out
of the consumer's fetch the way Faust does it for a full stream queue (`on_buffer_full`: no
pause, no seek, what was fetched is still handed over) and put back once the open orders fell to
80% of it (orderstream/worker/open_orders.py keeps the count and decides); Faust's own flow
control, which puts such a partition back whenever its stream queue drains, leaves them out
meanwhile (`paused_by_app`, orderstream/faust_ext/consumer.py). The
agent itself never waits (a waiting agent would hold up the hand-over of every partition's
records once its queue is full): the orders already handed over are taken, so a worker holds at
most the bound, plus its queue (ORDER_QUEUE), plus one fetch (`max_poll_records`). Measured in
tests/integration/test_intake_bound.py; before, a bound of 300 let ~3,000 orders in at once
(the queue was 4,096 records, and each drain of it let another fetch in).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.topics import registry
from orderstream.observability.tracing import traced
from orderstream.worker.agents.saga import handle
from orderstream.worker.app import app, settings, topic
from orderstream.worker.dead_letters import guarded
from orderstream.worker.open_orders import open_orders

ORDER_TOPIC = registry(settings)["orders"].name
ORDER_QUEUE = 256  # orders fetched ahead of the intake


@app.agent(topic("orders", maxsize=ORDER_QUEUE), name="order-intake")
async def order_intake(stream: Any) -> None:
    async for event in stream.events():
        if open_orders.intake_full():
            open_orders.hold_intake(app.consumer, ORDER_TOPIC)
        with traced(event, "saga"):
            await guarded("saga", event, partial(handle, event))


@app.timer(interval=0.2)
async def release_order_partitions() -> None:
    open_orders.release_intake(app.consumer)
